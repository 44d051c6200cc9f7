//! The model in plain Rust on the CPU (f32 weights, f64 sums): the spec in code that the GPU
//! forward pass is tested against, and itself tested against HF's recorded logits. Written to
//! follow transformers' LlavaForConditionalGeneration, CLIPVisionModel and LlamaForCausalLM
//! line by line, not to be fast.

use crate::error::{Error, Result};
use std::collections::HashMap;

use crate::config::{LlavaConfig, TextConfig, VisionConfig};
use crate::gpu::matrix::WeightFormat;
use crate::model::{Llava, Store, Tensors, TextLayer, VisionLayer, canonical};
use crate::weights::Weights;

pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// LLaVA-1.5 on the CPU: the typed weights of [`crate::model`] as f32 tensors.
pub struct Model {
    cfg: LlavaConfig,
    w: Llava<Cpu>,
}

/// x [n, k] times w [m, k]^T (+ b [m]): [n, m].
pub fn linear(x: &[f32], n: usize, w: &Tensor, b: Option<&Tensor>) -> Vec<f32> {
    let (m, k) = (w.shape[0], w.shape[1]);
    assert_eq!(x.len(), n * k, "linear: input width");
    let mut out = vec![0f32; n * m];
    for i in 0..n {
        let row = &x[i * k..(i + 1) * k];
        for j in 0..m {
            let wr = &w.data[j * k..(j + 1) * k];
            let s: f64 = row.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
            out[i * m + j] = (s + b.map_or(0.0, |b| b.data[j] as f64)) as f32;
        }
    }
    out
}

pub fn layer_norm(x: &[f32], d: usize, w: &Tensor, b: &Tensor, eps: f64) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for i in 0..d {
            o[i] = ((row[i] as f64 - mean) * inv * w.data[i] as f64 + b.data[i] as f64) as f32;
        }
    }
    out
}

pub fn rms_norm(x: &[f32], d: usize, w: &Tensor, eps: f64) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for i in 0..d {
            o[i] = (row[i] as f64 * inv * w.data[i] as f64) as f32;
        }
    }
    out
}

/// erf to about 1e-7 relative (Numerical Recipes' erfc, Chebyshev fit): std has none.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let y = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 { 1.0 - y } else { y - 1.0 }
}

pub fn act(name: &str, x: f32) -> Result<f32> {
    let v = x as f64;
    Ok(match name {
        "quick_gelu" => v / (1.0 + (-1.702 * v).exp()),
        "gelu" => 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)),
        "silu" => v / (1.0 + (-v).exp()),
        other => return Err(Error::Input(format!("activation '{other}' is not implemented"))),
    } as f32)
}

/// The sizes of one attention: `heads` query heads over `kv_heads`, `n` queries over `m` keys of
/// `d` dims; query i sits at position m - n + i when causal.
#[derive(Debug, Clone, Copy)]
struct Dims {
    heads: usize,
    kv_heads: usize,
    n: usize,
    m: usize,
    d: usize,
    causal: bool,
}

/// One query row's softmax numerators over the first `visible` of `keys` (rows of q's length)
/// and their sum, in f64, the largest logit subtracted.
fn exp_weights(qr: &[f32], keys: &[f32], visible: usize, scale: f64) -> (Vec<f64>, f64) {
    let d = qr.len();
    let s: Vec<f64> = (0..visible)
        .map(|j| scale * qr.iter().zip(&keys[j * d..][..d]).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>())
        .collect();
    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|&x| (x - mx).exp()).collect();
    let total = e.iter().sum();
    (e, total)
}

/// Softmax attention of q [H, n, d] over k, v [Hkv, m, d] (query head h reads kv head h /
/// (H / Hkv)). Returns [n, H * d].
fn attention(q: &[f32], k: &[f32], v: &[f32], dims: Dims) -> Vec<f32> {
    let Dims {
        heads,
        kv_heads,
        n,
        m,
        d,
        causal,
    } = dims;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f32; n * heads * d];
    for h in 0..heads {
        let kv = h / (heads / kv_heads);
        for i in 0..n {
            let visible = if causal { m - n + i + 1 } else { m };
            let (e, total) = exp_weights(&q[(h * n + i) * d..][..d], &k[kv * m * d..], visible, scale);
            for t in 0..d {
                let acc: f64 = (0..visible).map(|j| e[j] * v[(kv * m + j) * d + t] as f64).sum();
                out[i * heads * d + h * d + t] = (acc / total) as f32;
            }
        }
    }
    out
}

/// VAR in the reference model: its config, the image span and how many tokens the prefill
/// scored (the rest were generated after it).
#[derive(Debug, Clone)]
pub struct Var<'a> {
    pub cfg: &'a visattn::VarConfig,
    pub image: Option<visattn::ImageSpan>,
    pub prompt: usize,
}

/// The sinks of a layer with `role`: scored on its input x [T, D] over the first `var.prompt`
/// tokens (the prefill's), none where the layer does not detect.
fn layer_sinks(var: &Var, role: visattn::LayerRole, (x, d): (&[f32], usize), t_n: usize) -> Vec<bool> {
    use visattn::reference::{phi, sink_mask};
    let mut sinks = vec![false; t_n];
    if role != visattn::LayerRole::Off {
        let p = var.prompt.min(t_n);
        let scored = sink_mask(&phi(&x[..p * d], d, &var.cfg.sink_dims), var.cfg.tau);
        sinks[..p].copy_from_slice(&scored);
    }
    sinks
}

/// One query row's attention in one layer, before and after VAR (what `--png` draws).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// The row of every head over every key, [H, T] (0 past the row's position).
    pub before: Vec<f32>,
    pub after: Vec<f32>,
    /// Section 2's flag per head.
    pub selected: Vec<bool>,
    /// The layer's sinks [T].
    pub sinks: Vec<bool>,
}

/// Row `row` of the causal softmax(q k^T / sqrt(d)) of every head, then VAR on it as the
/// layer's role and the row rule say (visattn's reference row_stats and redistribute_row).
fn probe_row(
    var: &Var,
    (layer, layers): (usize, usize),
    (x, d): (&[f32], usize),
    (q, k): (&[f32], &[f32]),
    dims: Dims,
    row: usize,
) -> Result<LayerRow> {
    use visattn::reference::{redistribute_row, row_stats};
    let Dims {
        heads,
        kv_heads,
        m: t_n,
        d: hd,
        ..
    } = dims;
    let role = var.cfg.role(layer, layers);
    let sinks = layer_sinks(var, role, (x, d), t_n);
    let visual = visattn::VisualTokens::from_spans(var.image.as_slice(), t_n)?;
    let has_visual_sink = (0..t_n).any(|j| sinks[j] && visual.is_visual(j));
    let scale = 1.0 / (hd as f64).sqrt();
    let (mut before, mut after, mut selected) = (Vec::new(), Vec::new(), Vec::new());
    for h in 0..heads {
        let kv = h / (heads / kv_heads);
        let (e, total) = exp_weights(&q[(h * t_n + row) * hd..][..hd], &k[kv * t_n * hd..], row + 1, scale);
        let mut a: Vec<f32> = e.iter().map(|&x| (x / total) as f32).collect();
        a.resize(t_n, 0.0);
        before.extend_from_slice(&a);
        let sel = role != visattn::LayerRole::Off && row_stats(&a, &visual, &sinks, has_visual_sink, var.cfg).selected;
        if sel && role == visattn::LayerRole::Redistribute && visual.row_may_change(row) {
            redistribute_row(&mut a, &visual, &sinks, var.cfg.p_recycled());
        }
        after.extend_from_slice(&a);
        selected.push(sel);
    }
    Ok(LayerRow {
        before,
        after,
        selected,
        sinks,
    })
}

/// One layer's causal attention with VAR: sinks from the layer's input x [T, D] over the first
/// `var.prompt` tokens, then visattn's reference attention. Returns [T, H d].
fn var_attention(
    var: &Var,
    (layer, layers): (usize, usize),
    (x, d): (&[f32], usize),
    (q, k, v): (&[f32], &[f32], &[f32]),
    (heads, kv_heads, t_n, hd): (usize, usize, usize, usize),
) -> Result<Vec<f32>> {
    use visattn::reference::{Qkv, attention_var};
    let role = var.cfg.role(layer, layers);
    let sinks = layer_sinks(var, role, (x, d), t_n);
    let visual = visattn::VisualTokens::from_spans(var.image.as_slice(), t_n)?;
    let shape = visattn::FusedShape {
        heads,
        kv_heads,
        queries: t_n,
        keys: t_n,
        head_dim: hd,
    };
    let (o, _) = attention_var(
        var.cfg,
        role,
        &visual,
        &sinks,
        Qkv {
            q,
            k,
            v,
            shape,
            causal: true,
            scale: 1.0 / (hd as f64).sqrt(),
        },
    )?;
    // O [H, T, d] to rows [T, H d].
    let mut out = vec![0f32; t_n * heads * hd];
    for h in 0..heads {
        for i in 0..t_n {
            for t in 0..hd {
                out[(i * heads + h) * hd + t] = o[(h * t_n + i) * hd + t] as f32;
            }
        }
    }
    Ok(out)
}

/// HF's default RoPE in place on v [heads, tokens, d] at positions pos0.. (rotate-half pairs).
pub fn rope(v: &mut [f32], (heads, tokens, d): (usize, usize, usize), pos0: usize, theta: f64) {
    let half = d / 2;
    for h in 0..heads {
        for t in 0..tokens {
            let r = &mut v[(h * tokens + t) * d..][..d];
            for j in 0..half {
                let angle = (pos0 + t) as f64 / theta.powf(2.0 * j as f64 / d as f64);
                let (cos, sin) = (angle.cos(), angle.sin());
                let (a, b) = (r[j] as f64, r[j + half] as f64);
                r[j] = (a * cos - b * sin) as f32;
                r[j + half] = (b * cos + a * sin) as f32;
            }
        }
    }
}

/// [n, H * d] rows to [H, n, d].
fn heads_first(x: &[f32], n: usize, heads: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for i in 0..n {
        for h in 0..heads {
            out[(h * n + i) * d..][..d].copy_from_slice(&x[(i * heads + h) * d..][..d]);
        }
    }
    out
}

/// A linear layer on the CPU: W [out, in] and its bias where it has one.
pub struct Linear {
    pub w: Tensor,
    pub b: Option<Tensor>,
}

/// A LayerNorm (with a bias) or an RMSNorm (without).
pub struct Norm {
    pub w: Tensor,
    pub b: Option<Tensor>,
}

impl Linear {
    /// `first`'s rows then `second`'s ([`Store::stack`]): layers of the same input, no biases.
    pub fn stack(first: Linear, second: Linear) -> Result<Linear> {
        let (a, b) = (&first.w.shape, &second.w.shape);
        if a.len() != 2 || b.len() != 2 || a[1] != b[1] || first.b.is_some() || second.b.is_some() {
            return Err(Error::Weights(format!(
                "stacking linear layers of shapes {a:?} and {b:?}: they need the same input and no biases"
            )));
        }
        let shape = vec![a[0] + b[0], a[1]];
        let mut data = first.w.data;
        data.extend(second.w.data);
        Ok(Linear {
            w: Tensor { shape, data },
            b: None,
        })
    }

    /// x [n, in] W^T + b: [n, out].
    fn apply(&self, x: &[f32], n: usize) -> Vec<f32> {
        linear(x, n, &self.w, self.b.as_ref())
    }
}

impl Norm {
    fn apply(&self, x: &[f32], eps: f64) -> Vec<f32> {
        let d = self.w.data.len();
        match &self.b {
            Some(b) => layer_norm(x, d, &self.w, b, eps),
            None => rms_norm(x, d, &self.w, eps),
        }
    }
}

/// The tensor kinds of the CPU reference: f32 values upcast from the folder's dtype.
pub struct Cpu;

impl Tensors for Cpu {
    type Linear = Linear;
    type Norm = Norm;
    type Table = Tensor;
    type Vector = Tensor;
}

/// A folder's tensors by canonical name, taken out one by one by the build.
struct Loaded(HashMap<String, Tensor>);

impl Loaded {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .0
            .remove(name)
            .ok_or_else(|| Error::Weights(format!("tensor {name} is missing")))?;
        if t.shape != shape {
            return Err(Error::Weights(format!("tensor {name} is {:?}, the model needs {shape:?}", t.shape)));
        }
        Ok(t)
    }
}

impl Store<Cpu> for Loaded {
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<Linear> {
        let mut w = self.take(&format!("{name}.weight"), shape)?;
        // A convolution's [out, c, h, w] read as [out, c h w].
        w.shape = vec![shape[0], shape[1..].iter().product()];
        Ok(Linear {
            w,
            b: bias.then(|| self.take(&format!("{name}.bias"), &shape[..1])).transpose()?,
        })
    }
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<Norm> {
        Ok(Norm {
            w: self.take(&format!("{name}.weight"), &[dim])?,
            b: bias.then(|| self.take(&format!("{name}.bias"), &[dim])).transpose()?,
        })
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<Tensor> {
        self.take(name, &[rows, cols])
    }
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.take(name, shape)
    }
    fn unused(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        self.take(name, shape).map(drop)
    }
    fn stack(&mut self, first: Linear, second: Linear) -> Result<Linear> {
        Linear::stack(first, second)
    }
}

/// CLIPEncoderLayer on x [n, D] in place.
fn vision_layer(v: &VisionConfig, w: &VisionLayer<Cpu>, x: &mut [f32], n: usize) -> Result<()> {
    let (d, eps) = (v.hidden, v.layer_norm_eps);
    let hd = d / v.heads;
    let h = w.norm1.apply(x, eps);
    let q = heads_first(&w.q.apply(&h, n), n, v.heads, hd);
    let k = heads_first(&w.k.apply(&h, n), n, v.heads, hd);
    let vv = heads_first(&w.v.apply(&h, n), n, v.heads, hd);
    let a = attention(
        &q,
        &k,
        &vv,
        Dims {
            heads: v.heads,
            kv_heads: v.heads,
            n,
            m: n,
            d: hd,
            causal: false,
        },
    );
    let a = w.out.apply(&a, n);
    x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
    let h = w.norm2.apply(x, eps);
    let mut f = w.fc1.apply(&h, n);
    for y in &mut f {
        *y = act(&v.act, *y)?;
    }
    let f = w.fc2.apply(&f, n);
    x.iter_mut().zip(&f).for_each(|(x, f)| *x += f);
    Ok(())
}

/// LlamaDecoderLayer `l` on x [T, D] in place, VAR in its attention where `var` says.
fn text_layer(
    c: &TextConfig,
    (l, w): (usize, &TextLayer<Cpu>),
    x: &mut [f32],
    var: Option<&Var>,
    probe: Option<(usize, &mut Vec<LayerRow>)>,
) -> Result<()> {
    let (d, hd, t_n) = (c.hidden, c.head_dim, x.len() / c.hidden);
    let h = w.input_norm.apply(x, c.rms_eps);
    let mut q = heads_first(&w.q.apply(&h, t_n), t_n, c.heads, hd);
    let mut k = heads_first(&w.k.apply(&h, t_n), t_n, c.kv_heads, hd);
    let v = heads_first(&w.v.apply(&h, t_n), t_n, c.kv_heads, hd);
    rope(&mut q, (c.heads, t_n, hd), 0, c.rope_theta);
    rope(&mut k, (c.kv_heads, t_n, hd), 0, c.rope_theta);
    let dims = Dims {
        heads: c.heads,
        kv_heads: c.kv_heads,
        n: t_n,
        m: t_n,
        d: hd,
        causal: true,
    };
    if let (Some(var), Some((row, rows))) = (var, probe) {
        rows.push(probe_row(var, (l, c.layers), (x, d), (&q, &k), dims, row)?);
    }
    let a = match var {
        Some(var) => var_attention(var, (l, c.layers), (x, d), (&q, &k, &v), (c.heads, c.kv_heads, t_n, hd))?,
        None => attention(&q, &k, &v, dims),
    };
    let a = w.o.apply(&a, t_n);
    x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
    let h = w.post_norm.apply(x, c.rms_eps);
    // Each row: the gate's I outputs, then up's.
    let i = c.intermediate;
    let gate_up = w.gate_up.apply(&h, t_n);
    let gu: Vec<f32> = gate_up
        .chunks_exact(2 * i)
        .flat_map(|row| row[..i].iter().zip(&row[i..]))
        .map(|(&g, &u)| act("silu", g).map(|s| s * u))
        .collect::<Result<_>>()?;
    let f = w.down.apply(&gu, t_n);
    x.iter_mut().zip(&f).for_each(|(x, f)| *x += f);
    Ok(())
}

impl Model {
    pub fn load(cfg: &LlavaConfig, weights: &Weights) -> Result<Self> {
        Self::load_as(cfg, weights, WeightFormat::F32)
    }

    /// The model holding the values the GPU model of `format` holds: matrices rounded or
    /// quantized and read back as [`WeightFormat::for_matrix`] keeps them, vectors rounded as
    /// [`WeightFormat::round`] does.
    pub fn load_as(cfg: &LlavaConfig, weights: &Weights, format: WeightFormat) -> Result<Self> {
        // Names and exact shapes first: the build below sizes everything from the config.
        let want = weights.check(cfg)?;
        let mut loaded = Loaded(HashMap::new());
        weights.for_each_stored(|name, dtype, shape, bytes| {
            let key = canonical(name);
            let data = crate::gpu::matrix::to_f32(name, dtype, bytes)?;
            let data = if want.get(&key).is_some_and(|e| e.matrix) {
                let cols = shape[1..].iter().product::<usize>();
                format.for_matrix(&key, cols, dtype, WeightFormat::F16).round_trip(name, &data)?
            } else {
                data.into_iter().map(|x| format.round(x)).collect()
            };
            loaded.0.insert(
                key,
                Tensor {
                    shape: shape.to_vec(),
                    data,
                },
            );
            Ok(())
        })?;
        let w = Llava::build(cfg, &mut loaded)?;
        if let Some(name) = loaded.0.keys().next() {
            return Err(Error::Weights(format!("tensor {name} is not part of the model")));
        }
        Ok(Self { cfg: cfg.clone(), w })
    }

    /// The model of `cfg` from any store of CPU tensors (GGUF files: [`crate::gguf::model::GgufTensors`]).
    pub fn build(cfg: &LlavaConfig, store: &mut impl Store<Cpu>) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            w: Llava::build(cfg, store)?,
        })
    }

    /// The image features [tokens, text hidden] of pixel_values [3, S, S].
    pub fn image_features(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let (tower, projector) = self
            .w
            .vision
            .as_ref()
            .ok_or_else(|| Error::Input("this model has no vision tower".into()))?;
        let v = &self.cfg.vision;
        let (s, p, d) = (v.image_size, v.patch_size, v.hidden);
        let side = s / p;
        let n = side * side + 1;
        if pixels.len() != 3 * s * s {
            return Err(Error::Input(format!(
                "pixel_values of {} values for a {s}x{s} vision tower",
                pixels.len()
            )));
        }
        let (conv, cls, pos) = (&tower.patch_embedding.w, &tower.class_embedding, &tower.position_embedding);
        let mut x = vec![0f32; n * d];
        for (x, (c, p)) in x[..d].iter_mut().zip(cls.data.iter().zip(&pos.data)) {
            *x = (*c as f64 + *p as f64) as f32;
        }
        for (patch, (py, px)) in (0..side).flat_map(|y| (0..side).map(move |x| (y, x))).enumerate() {
            for o in 0..d {
                let mut acc = 0f64;
                for c in 0..3 {
                    for i in 0..p {
                        for j in 0..p {
                            let wv = conv.data[((o * 3 + c) * p + i) * p + j] as f64;
                            acc += wv * pixels[(c * s + py * p + i) * s + px * p + j] as f64;
                        }
                    }
                }
                let at = (patch + 1) * d + o;
                x[at] = (acc as f32 as f64 + pos.data[at] as f64) as f32;
            }
        }
        let mut x = tower.pre_norm.apply(&x, v.layer_norm_eps);
        // The tree holds the layers up to the feature layer: its output is the features.
        for layer in &tower.layers {
            vision_layer(v, layer, &mut x, n)?;
        }
        let feat = if self.cfg.keep_cls { &x[..] } else { &x[d..] };
        let tokens = feat.len() / d;
        let mut h = projector.linear_1.apply(feat, tokens);
        for y in &mut h {
            *y = act(&self.cfg.projector_act, *y)?;
        }
        Ok(projector.linear_2.apply(&h, tokens))
    }

    /// Logits [T, vocab] of every position of `ids`, image tokens replaced by `image` [n, D].
    pub fn logits(&self, ids: &[u32], image: Option<&[f32]>) -> Result<Vec<f32>> {
        self.logits_with(ids, image, None)
    }

    /// [`Model::logits`] with VAR in the language model's attention, as the GPU host runs it:
    /// each layer that detects sinks scores the first `var.prompt` tokens (the prefill's; the
    /// tokens generated after them are never sinks nor image tokens), and every attention row
    /// goes through visattn's reference `attention_var` (sections 2 and 3, f64).
    pub fn logits_with(&self, ids: &[u32], image: Option<&[f32]>, var: Option<Var>) -> Result<Vec<f32>> {
        self.forward(ids, image, var, None)
    }

    /// Query row `row`'s attention in every layer before and after VAR, as [`Model::logits_with`]
    /// runs it (what `--png` draws: row T - 1 for the first answer token of a T-token prompt).
    pub fn attention_rows(&self, ids: &[u32], image: Option<&[f32]>, var: Var, row: usize) -> Result<Vec<LayerRow>> {
        if row >= ids.len() {
            return Err(Error::Input(format!("row {row} of {} tokens", ids.len())));
        }
        let mut rows = Vec::new();
        self.forward(ids, image, Some(var), Some((row, &mut rows)))?;
        Ok(rows)
    }

    fn forward(
        &self,
        ids: &[u32],
        image: Option<&[f32]>,
        var: Option<Var>,
        mut probe: Option<(usize, &mut Vec<LayerRow>)>,
    ) -> Result<Vec<f32>> {
        let c = &self.cfg.text;
        let text = &self.w.text;
        let (d, t_n) = (c.hidden, ids.len());
        let mut x = vec![0f32; t_n * d];
        let mut next_image = 0;
        for (i, &id) in ids.iter().enumerate() {
            let row = if id == self.cfg.image_token {
                let img = image.ok_or_else(|| Error::Input("the prompt has image tokens but no picture".into()))?;
                let r = img
                    .get(next_image * d..(next_image + 1) * d)
                    .ok_or_else(|| Error::Input("more image tokens than image features".into()))?;
                next_image += 1;
                r
            } else {
                text.embed
                    .data
                    .get(id as usize * d..(id as usize + 1) * d)
                    .ok_or_else(|| Error::Input(format!("token {id} is outside the vocabulary")))?
            };
            x[i * d..(i + 1) * d].copy_from_slice(row);
        }
        if let Some(img) = image
            && next_image * d != img.len()
        {
            return Err(Error::Input(format!(
                "{next_image} image tokens for {} image features",
                img.len() / d
            )));
        }
        for layer in text.layers.iter().enumerate() {
            let probe = probe.as_mut().map(|(row, rows)| (*row, &mut **rows));
            text_layer(c, layer, &mut x, var.as_ref(), probe)?;
        }
        let h = text.norm.apply(&x, c.rms_eps);
        Ok(text.lm_head.apply(&h, t_n))
    }

    /// Greedy continuation of `ids` (recomputing the whole prefix each step: the reference is
    /// not a cache), stopping at an eos token or after `max` tokens.
    pub fn greedy(&self, ids: &[u32], image: Option<&[f32]>, max: usize) -> Result<Vec<u32>> {
        let vocab = self.cfg.text.vocab;
        let mut seq = ids.to_vec();
        let mut out = Vec::new();
        for _ in 0..max {
            let logits = self.logits(&seq, image)?;
            let last = &logits[(seq.len() - 1) * vocab..];
            let next = (0..vocab).max_by(|&a, &b| last[a].total_cmp(&last[b]).then(b.cmp(&a))).unwrap_or(0) as u32;
            if self.cfg.text.eos.contains(&next) {
                break;
            }
            out.push(next);
            seq.push(next);
        }
        Ok(out)
    }
}
