//! The model in plain Rust on the CPU (f32 weights, f64 sums): the spec in code that the GPU
//! forward pass is tested against, and itself tested against HF's recorded logits. Written to
//! follow transformers' LlavaForConditionalGeneration, CLIPVisionModel and LlamaForCausalLM
//! line by line, not to be fast.

use crate::error::{Error, Result};
use std::collections::HashMap;

use crate::config::LlavaConfig;
use crate::model::canonical;
use crate::weights::Weights;

pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct Model {
    cfg: LlavaConfig,
    w: HashMap<String, Tensor>,
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
struct Dims {
    heads: usize,
    kv_heads: usize,
    n: usize,
    m: usize,
    d: usize,
    causal: bool,
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
            let qr = &q[(h * n + i) * d..][..d];
            let s: Vec<f64> = (0..visible)
                .map(|j| {
                    scale
                        * qr.iter()
                            .zip(&k[(kv * m + j) * d..][..d])
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|&x| (x - mx).exp()).collect();
            let total: f64 = e.iter().sum();
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

/// One layer's causal attention with VAR: sinks from the layer's input x [T, D] over the first
/// `var.prompt` tokens, then visattn's reference attention. Returns [T, H d].
fn var_attention(
    var: &Var,
    (layer, layers): (usize, usize),
    (x, d): (&[f32], usize),
    (q, k, v): (&[f32], &[f32], &[f32]),
    (heads, kv_heads, t_n, hd): (usize, usize, usize, usize),
) -> Result<Vec<f32>> {
    use visattn::reference::{Qkv, attention_var, phi, sink_mask};
    let role = var.cfg.role(layer, layers);
    let mut sinks = vec![false; t_n];
    if role != visattn::LayerRole::Off {
        let p = var.prompt.min(t_n);
        let scored = sink_mask(&phi(&x[..p * d], d, &var.cfg.sink_dims), var.cfg.tau);
        sinks[..p].copy_from_slice(&scored);
    }
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

impl Model {
    pub fn load(cfg: &LlavaConfig, weights: &Weights) -> Result<Self> {
        // Names and exact shapes first: the code below indexes the tensors by the config.
        weights.check(cfg)?;
        let mut w = HashMap::new();
        weights.for_each(|name, shape, data| {
            w.insert(
                canonical(name),
                Tensor {
                    shape: shape.to_vec(),
                    data,
                },
            );
            Ok(())
        })?;
        Ok(Self { cfg: cfg.clone(), w })
    }

    fn t(&self, name: &str) -> Result<&Tensor> {
        self.w
            .get(name)
            .ok_or_else(|| Error::Input(format!("weights: tensor {name} is missing")))
    }

    /// The image features [tokens, text hidden] of pixel_values [3, S, S].
    pub fn image_features(&self, pixels: &[f32]) -> Result<Vec<f32>> {
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
        let conv = self.t("vision_tower.embeddings.patch_embedding.weight")?;
        let cls = self.t("vision_tower.embeddings.class_embedding")?;
        let pos = self.t("vision_tower.embeddings.position_embedding.weight")?;
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
        let eps = v.layer_norm_eps;
        let mut x = layer_norm(
            &x,
            d,
            self.t("vision_tower.pre_layrnorm.weight")?,
            self.t("vision_tower.pre_layrnorm.bias")?,
            eps,
        );
        let mut states = vec![x.clone()];
        let hd = d / v.heads;
        for l in 0..v.layers {
            let pre = format!("vision_tower.encoder.layers.{l}.");
            let t = |s: &str| self.t(&format!("{pre}{s}"));
            let h = layer_norm(&x, d, t("layer_norm1.weight")?, t("layer_norm1.bias")?, eps);
            let q = heads_first(
                &linear(&h, n, t("self_attn.q_proj.weight")?, Some(t("self_attn.q_proj.bias")?)),
                n,
                v.heads,
                hd,
            );
            let k = heads_first(
                &linear(&h, n, t("self_attn.k_proj.weight")?, Some(t("self_attn.k_proj.bias")?)),
                n,
                v.heads,
                hd,
            );
            let vv = heads_first(
                &linear(&h, n, t("self_attn.v_proj.weight")?, Some(t("self_attn.v_proj.bias")?)),
                n,
                v.heads,
                hd,
            );
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
            let a = linear(&a, n, t("self_attn.out_proj.weight")?, Some(t("self_attn.out_proj.bias")?));
            x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
            let h = layer_norm(&x, d, t("layer_norm2.weight")?, t("layer_norm2.bias")?, eps);
            let mut f = linear(&h, n, t("mlp.fc1.weight")?, Some(t("mlp.fc1.bias")?));
            for y in &mut f {
                *y = act(&v.act, *y)?;
            }
            let f = linear(&f, n, t("mlp.fc2.weight")?, Some(t("mlp.fc2.bias")?));
            x.iter_mut().zip(&f).for_each(|(x, f)| *x += f);
            states.push(x.clone());
        }
        let fl = self.cfg.feature_layer;
        let idx = if fl < 0 { states.len() as i64 + fl } else { fl } as usize;
        let feat = &states[idx];
        let feat = if self.cfg.keep_cls { feat.clone() } else { feat[d..].to_vec() };
        let tokens = feat.len() / d;
        let mut h = linear(
            &feat,
            tokens,
            self.t("multi_modal_projector.linear_1.weight")?,
            self.w.get("multi_modal_projector.linear_1.bias"),
        );
        for y in &mut h {
            *y = act(&self.cfg.projector_act, *y)?;
        }
        Ok(linear(
            &h,
            tokens,
            self.t("multi_modal_projector.linear_2.weight")?,
            self.w.get("multi_modal_projector.linear_2.bias"),
        ))
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
        let c = &self.cfg.text;
        let (d, t_n) = (c.hidden, ids.len());
        let emb = self.t("language_model.model.embed_tokens.weight")?;
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
                emb.data
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
        let hd = c.head_dim;
        for l in 0..c.layers {
            let pre = format!("language_model.model.layers.{l}.");
            let t = |s: &str| self.t(&format!("{pre}{s}"));
            let h = rms_norm(&x, d, t("input_layernorm.weight")?, c.rms_eps);
            let mut q = heads_first(&linear(&h, t_n, t("self_attn.q_proj.weight")?, None), t_n, c.heads, hd);
            let mut k = heads_first(&linear(&h, t_n, t("self_attn.k_proj.weight")?, None), t_n, c.kv_heads, hd);
            let v = heads_first(&linear(&h, t_n, t("self_attn.v_proj.weight")?, None), t_n, c.kv_heads, hd);
            rope(&mut q, (c.heads, t_n, hd), 0, c.rope_theta);
            rope(&mut k, (c.kv_heads, t_n, hd), 0, c.rope_theta);
            let a = if let Some(var) = &var {
                var_attention(var, (l, c.layers), (&x, d), (&q, &k, &v), (c.heads, c.kv_heads, t_n, hd))?
            } else {
                attention(
                    &q,
                    &k,
                    &v,
                    Dims {
                        heads: c.heads,
                        kv_heads: c.kv_heads,
                        n: t_n,
                        m: t_n,
                        d: hd,
                        causal: true,
                    },
                )
            };
            let a = linear(&a, t_n, t("self_attn.o_proj.weight")?, None);
            x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
            let h = rms_norm(&x, d, t("post_attention_layernorm.weight")?, c.rms_eps);
            let g = linear(&h, t_n, t("mlp.gate_proj.weight")?, None);
            let u = linear(&h, t_n, t("mlp.up_proj.weight")?, None);
            let gu: Vec<f32> = g
                .iter()
                .zip(&u)
                .map(|(&g, &u)| act("silu", g).map(|s| s * u))
                .collect::<Result<_, _>>()?;
            let f = linear(&gu, t_n, t("mlp.down_proj.weight")?, None);
            x.iter_mut().zip(&f).for_each(|(x, f)| *x += f);
        }
        let h = rms_norm(&x, d, self.t("language_model.model.norm.weight")?, c.rms_eps);
        Ok(linear(&h, t_n, self.t("language_model.lm_head.weight")?, None))
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
