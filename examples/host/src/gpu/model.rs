//! The forward pass on the GPU: vision tower, projector, language model (prefill through
//! visattn's fused attention with VAR inside, decode through its `DecodeSession`). A host as a
//! third-party engine would write it: its own buffers and kernels, visattn's public API.

use std::collections::HashMap;

use visattn::wgpu::{self, Buffer, BufferUsages, CommandEncoder, ComputePass};
use visattn::{
    AttentionInputs, AttentionOptions, Context, DecodeSession, DecodeShape, FusedAttention, FusedSettings, FusedShape, ImageSpan,
    KernelSettings, LayerPlan, Phi, Rows, SequenceShape, SplitAttention, VarConfig, VarKernels, VarState, VisualTokens,
};

use super::elementwise::{Act, Elementwise, Op};
use super::layout::Layout;
use super::linear::{Linear, upload};
use super::matrix::{Matrix, WeightFormat};
use super::norm::Norm;
use super::rope::Rope;
use crate::config::LlavaConfig;
use crate::reference::canonical;
use crate::weights::Weights;

type Result<T> = std::result::Result<T, String>;

fn gpu_err(e: visattn::Error) -> String {
    e.to_string()
}

/// The host's kernels and visattn's, built once per model.
struct Kernels {
    linear: Linear,
    norm: Norm,
    ew: Elementwise,
    layout: Layout,
    var: VarKernels,
    /// VAR inside the text attention, and the same kernel without VAR (VAR off, and its cost).
    text_var: FusedAttention,
    text_plain: FusedAttention,
    vision: FusedAttention,
    split: SplitAttention,
}

/// A model's weights on the device and its kernels.
pub struct GpuModel {
    pub cfg: LlavaConfig,
    ctx: Context,
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// Weight matrices (linear layers, embeddings) in the model's format.
    mats: HashMap<String, Matrix>,
    /// Everything else (norms, biases, class and position embeddings), f32.
    vectors: HashMap<String, Buffer>,
    format: WeightFormat,
    k: Kernels,
    vision_act: Act,
    projector_act: Act,
}

/// What the language model does with VAR in one generation.
#[derive(Debug, Clone)]
pub enum VarMode {
    Off,
    On(VarConfig),
}

/// One layer's tensors in the prefill, read back for tests (`--capture`).
#[derive(Debug, Clone, Default)]
pub struct LayerCapture {
    /// The layer's input hidden states [T, D] (what VAR scores sinks on).
    pub hidden: Vec<f32>,
    /// q [H, T, d], k and v [Hkv, T, d] after RoPE.
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// The attention's output [H, T, d].
    pub o: Vec<f32>,
}

/// Per-layer counts of the prefill under VAR.
#[derive(Debug, Clone, Default)]
pub struct LayerCounts {
    pub sinks: usize,
    pub selected_rows: usize,
}

/// A prefilled prompt, ready to decode.
pub struct Generation {
    session: DecodeSession,
    /// The rotary table of this generation's positions (the prompt and its answer: the
    /// config's maximum may be any number).
    rope: Rope,
    /// Logits of every prompt position [T, V], or of the last one [V].
    pub logits: Vec<f32>,
    pub counts: Vec<LayerCounts>,
    pub captures: Vec<LayerCapture>,
    step: StepBuffers,
}

/// Buffers of one token's pass.
struct StepBuffers {
    id: Buffer,
    x: Buffer,
    h: Buffer,
    q: Buffer,
    k: Buffer,
    v: Buffer,
    o: Buffer,
    f: Buffer,
    g: Buffer,
    u: Buffer,
    logits: Buffer,
}

/// The tensors the host keeps as weight matrices (read by the linear and embedding kernels);
/// the rest (norms, biases, class and position embeddings) are vectors added or scaled in f32.
fn is_matrix(name: &str) -> bool {
    name.ends_with(".weight")
        && [
            "_proj.",
            "fc1.",
            "fc2.",
            "linear_1.",
            "linear_2.",
            "lm_head.",
            "embed_tokens.",
            "patch_embedding.",
        ]
        .iter()
        .any(|part| name.contains(part))
}

fn pass(enc: &mut CommandEncoder) -> ComputePass<'_> {
    enc.begin_compute_pass(&Default::default())
}

impl GpuModel {
    /// Uploads every tensor the forward pass reads, one shard in host memory at a time, after
    /// [`Weights::check`] held the folder to the config (names, exact shapes: nothing is copied
    /// from a tensor of the wrong length): matrices as `format` in row chunks of at most
    /// `max_chunk` bytes, the rest as f32 (rounded to f16 values when `format` is f16, as a
    /// folder saved in f16 holds them), each scanned for NaN and infinities (named here, not
    /// found later as a NaN logit); `progress(done, total)` after each tensor.
    pub fn load(
        g: &visattn::util::Gpu,
        cfg: &LlavaConfig,
        weights: &Weights,
        format: WeightFormat,
        max_chunk: u64,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let ctx = &g.ctx;
        let want = weights.check(cfg)?;
        let total = weights.tensors();
        let mut done = 0;
        let (mut mats, mut vectors) = (HashMap::new(), HashMap::new());
        weights.for_each_stored(|name, dtype, shape, bytes| {
            let key = canonical(name);
            let e = want
                .get(&key)
                .ok_or_else(|| format!("weights: tensor {name} is not part of the model"))?;
            if shape != e.shape.as_slice() {
                return Err(format!("weights: tensor {name} is {shape:?}, config.json implies {:?}", e.shape));
            }
            if !e.used {
                // Checked, never read: not worth device memory.
            } else if is_matrix(&key) {
                let rows = shape[0];
                let cols = shape[1..].iter().product::<usize>();
                let m = Matrix::upload(ctx, &g.queue, name, (rows, cols), (dtype, bytes), format, max_chunk)?;
                mats.insert(key, m);
            } else {
                let v: Vec<f32> = crate::gpu::matrix::to_f32(name, dtype, bytes)?
                    .into_iter()
                    .map(|x| format.round(x))
                    .collect();
                vectors.insert(key, upload(ctx, &g.queue, "weight", &v).map_err(|e| format!("{name}: {e}"))?);
            }
            done += 1;
            progress(done, total);
            Ok(())
        })?;
        Self::assemble(g, cfg, format, mats, vectors)
    }

    /// A language model of `cfg.text`'s shape with random weights made on the device (no vision
    /// tower: prefill takes image features as given), for benchmarks of shapes nobody stores:
    /// matrices uniform with std 1/sqrt(fan-in), embeddings in [-1, 1), norm weights 1.
    pub fn random(g: &visattn::util::Gpu, cfg: &LlavaConfig, format: WeightFormat, max_chunk: u64, seed: u32) -> Result<Self> {
        let t = &cfg.text;
        let (d, kvd) = (t.hidden, t.kv_heads * t.head_dim);
        let fill = super::fill::Fill::new(&g.ctx).map_err(gpu_err)?;
        let (mut mats, mut vectors) = (HashMap::new(), HashMap::new());
        let mut shapes = vec![
            ("language_model.model.embed_tokens.weight".to_string(), (t.vocab, d)),
            ("language_model.lm_head.weight".to_string(), (t.vocab, d)),
        ];
        let mut norms = vec!["language_model.model.norm.weight".to_string()];
        for l in 0..t.layers {
            let pre = format!("language_model.model.layers.{l}.");
            for (name, shape) in [
                ("self_attn.q_proj", (t.heads * t.head_dim, d)),
                ("self_attn.k_proj", (kvd, d)),
                ("self_attn.v_proj", (kvd, d)),
                ("self_attn.o_proj", (d, t.heads * t.head_dim)),
                ("mlp.gate_proj", (t.intermediate, d)),
                ("mlp.up_proj", (t.intermediate, d)),
                ("mlp.down_proj", (d, t.intermediate)),
            ] {
                shapes.push((format!("{pre}{name}.weight"), shape));
            }
            norms.push(format!("{pre}input_layernorm.weight"));
            norms.push(format!("{pre}post_attention_layernorm.weight"));
        }
        // One submission per matrix: the queue, not the encoder, holds a 7B model's fills.
        for (i, (name, (rows, cols))) in shapes.into_iter().enumerate() {
            let mut enc = g.device.create_command_encoder(&Default::default());
            let scale = if name.contains("embed_tokens") {
                1.0
            } else {
                (3.0 / cols as f32).sqrt()
            };
            let m = Matrix::random(
                &fill,
                &mut pass(&mut enc),
                &name,
                (rows, cols),
                format,
                max_chunk,
                (seed ^ (i as u32 * 0x9e37), scale),
            )?;
            g.queue.submit([enc.finish()]);
            mats.insert(name, m);
        }
        let ones = vec![1f32; d];
        for name in norms {
            vectors.insert(name, upload(&g.ctx, &g.queue, "weight", &ones).map_err(gpu_err)?);
        }
        Self::assemble(g, cfg, format, mats, vectors)
    }

    /// The model's kernels over its weights.
    fn assemble(
        g: &visattn::util::Gpu,
        cfg: &LlavaConfig,
        format: WeightFormat,
        mats: HashMap<String, Matrix>,
        vectors: HashMap<String, Buffer>,
    ) -> Result<Self> {
        let ctx = g.ctx.clone();
        let t = &cfg.text;
        let vd = cfg.vision.hidden / cfg.vision.heads;
        let fused = |head_dim: usize, var: bool| {
            FusedAttention::new(
                &ctx,
                FusedSettings {
                    head_dim: head_dim as u32,
                    var,
                },
            )
        };
        let k = Kernels {
            linear: Linear::new(&ctx, format).map_err(gpu_err)?,
            norm: Norm::new(&ctx).map_err(gpu_err)?,
            ew: Elementwise::new(&ctx).map_err(gpu_err)?,
            layout: Layout::new(&ctx, format).map_err(gpu_err)?,
            var: VarKernels::new(&ctx, KernelSettings::for_adapter(&g.info)).map_err(gpu_err)?,
            text_var: fused(t.head_dim, true).map_err(|e| format!("text attention: {e}"))?,
            text_plain: fused(t.head_dim, false).map_err(|e| format!("text attention: {e}"))?,
            vision: fused(vd, false).map_err(|e| format!("vision attention: {e}"))?,
            split: SplitAttention::new(&ctx, t.head_dim).map_err(gpu_err)?,
        };
        Ok(Self {
            cfg: cfg.clone(),
            ctx,
            device: g.device.clone(),
            queue: g.queue.clone(),
            mats,
            vectors,
            format,
            k,
            vision_act: Act::parse(&cfg.vision.act)?,
            projector_act: Act::parse(&cfg.projector_act)?,
        })
    }

    /// How the weight matrices are stored.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Matrices held in more than one row chunk (over the binding limit).
    pub fn chunked(&self) -> usize {
        self.mats.values().filter(|m| m.chunks.len() > 1).count()
    }

    fn w(&self, name: &str) -> Result<&Buffer> {
        self.vectors.get(name).ok_or_else(|| format!("weights: tensor {name} is missing"))
    }

    fn mat(&self, name: &str) -> Result<&Matrix> {
        self.mats.get(name).ok_or_else(|| format!("weights: tensor {name} is missing"))
    }

    /// Records one dispatch per chunk.
    fn record(pass: &mut ComputePass, dispatches: std::result::Result<Vec<visattn::kernel::Dispatch>, visattn::Error>) -> Result<()> {
        for d in dispatches.map_err(gpu_err)? {
            d.record(pass, &[]);
        }
        Ok(())
    }

    fn buffer(&self, name: &'static str, floats: usize) -> Result<Buffer> {
        self.ctx
            .storage_buffer(name, (floats * 4) as u64, BufferUsages::empty())
            .map_err(gpu_err)
    }

    fn read(&self, b: &Buffer, len: usize) -> Result<Vec<f32>> {
        visattn::readback::read_vec(&self.device, &self.queue, b, len).map_err(gpu_err)
    }

    /// x [n, k] W^T (+ b where the folder has `{w}.bias`, as HF's module has one) into
    /// out [n, m], checking W is [m, k].
    fn linear(&self, pass: &mut ComputePass, (n, m, k): (usize, usize, usize), x: &Buffer, w: &str, out: &Buffer) -> Result<()> {
        let b = self.vectors.get(&format!("{w}.bias"));
        let name = format!("{w}.weight");
        let mat = self.mat(&name)?;
        if (mat.rows, mat.cols) != (m, k) {
            return Err(format!(
                "weights: {name} is [{}, {}], the config implies [{m}, {k}]",
                mat.rows, mat.cols
            ));
        }
        Self::record(pass, self.k.linear.bind(n, x, mat, b, out))
    }

    /// LayerNorm where the folder has `{w}.bias` (CLIP's), RMSNorm where not (LLaMA's).
    fn norm(&self, pass: &mut ComputePass, (rows, dim): (usize, usize), eps: f64, x: &Buffer, w: &str, out: &Buffer) -> Result<()> {
        let b = self.vectors.get(&format!("{w}.bias"));
        self.k
            .norm
            .bind((rows, dim), eps, x, self.w(&format!("{w}.weight"))?, b, out)
            .map_err(gpu_err)?
            .record(pass, &[]);
        Ok(())
    }

    fn binary(&self, pass: &mut ComputePass, op: Op, len: usize, x: &Buffer, y: &Buffer) -> Result<()> {
        self.k.ew.binary(op, len, x, y).map_err(gpu_err)?.record(pass, &[]);
        Ok(())
    }

    fn act(&self, pass: &mut ComputePass, act: Act, len: usize, x: &Buffer) -> Result<()> {
        self.k.ew.activation(act, len, x).map_err(gpu_err)?.record(pass, &[]);
        Ok(())
    }

    fn swap(&self, pass: &mut ComputePass, dims: (usize, usize, usize), x: &Buffer, out: &Buffer) -> Result<()> {
        self.k.layout.swap(dims, x, out).map_err(gpu_err)?.record(pass, &[]);
        Ok(())
    }

    /// The image features [tokens, text hidden] of pixel_values [3, S, S], left on the GPU.
    pub fn image_features(&self, pixels: &[f32]) -> Result<(Buffer, usize)> {
        let v = &self.cfg.vision;
        let (s, p, d) = (v.image_size, v.patch_size, v.hidden);
        let side = s / p;
        let (patches, n) = (side * side, side * side + 1);
        if pixels.len() != 3 * s * s {
            return Err(format!("pixel_values of {} values for a {s}x{s} vision tower", pixels.len()));
        }
        // The patch convolution as a matmul: the pixels regrouped per patch in the conv
        // weight's (channel, row, column) order. A permutation, done where the pixels are.
        let kk = 3 * p * p;
        let mut cols = Vec::with_capacity(patches * kk);
        for (py, px) in (0..side).flat_map(|y| (0..side).map(move |x| (y, x))) {
            for c in 0..3 {
                for i in 0..p {
                    let row = (c * s + py * p + i) * s + px * p;
                    cols.extend_from_slice(&pixels[row..row + p]);
                }
            }
        }
        let cols = upload(&self.ctx, &self.queue, "patches", &cols).map_err(gpu_err)?;
        let pe = self.buffer("patch embeds", patches * d)?;
        let x0 = self.buffer("vision embeddings", n * d)?;
        let x = self.buffer("vision hidden", n * d)?;
        let h = self.buffer("vision normed", n * d)?;
        let (qr, kr, vr) = (self.buffer("vq", n * d)?, self.buffer("vk", n * d)?, self.buffer("vv", n * d)?);
        let (q, k, vv, o) = (
            self.buffer("vq'", n * d)?,
            self.buffer("vk'", n * d)?,
            self.buffer("vv'", n * d)?,
            self.buffer("vo", n * d)?,
        );
        let f = self.buffer("vision mlp", n * v.intermediate.max(d))?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.linear(
            &mut pass(&mut enc),
            (patches, d, kk),
            &cols,
            "vision_tower.embeddings.patch_embedding",
            &pe,
        )?;
        enc.copy_buffer_to_buffer(self.w("vision_tower.embeddings.class_embedding")?, 0, &x0, 0, (d * 4) as u64);
        enc.copy_buffer_to_buffer(&pe, 0, &x0, (d * 4) as u64, (patches * d * 4) as u64);
        let eps = v.layer_norm_eps;
        let idx = self.cfg.vision_layers_run();
        let hd = d / v.heads;
        let shape = FusedShape {
            heads: v.heads,
            kv_heads: v.heads,
            queries: n,
            keys: n,
            head_dim: hd,
        };
        let attention = self
            .k
            .vision
            .bind_plain(
                &self.ctx,
                shape,
                AttentionOptions {
                    causal: false,
                    scale: None,
                },
                AttentionInputs {
                    q: q.as_entire_buffer_binding(),
                    k: k.as_entire_buffer_binding(),
                    v: vv.as_entire_buffer_binding(),
                    o: o.as_entire_buffer_binding(),
                },
            )
            .map_err(gpu_err)?;
        {
            let mut pass = pass(&mut enc);
            self.binary(
                &mut pass,
                Op::Add,
                n * d,
                &x0,
                self.w("vision_tower.embeddings.position_embedding.weight")?,
            )?;
            self.norm(&mut pass, (n, d), eps, &x0, "vision_tower.pre_layrnorm", &x)?;
            // Only the layers up to the feature layer: what comes after it is never used.
            for l in 0..idx {
                let pre = format!("vision_tower.encoder.layers.{l}.");
                let nm = |s: &str| format!("{pre}{s}");
                self.norm(&mut pass, (n, d), eps, &x, &nm("layer_norm1"), &h)?;
                for (proj, rows, heads) in [("q_proj", &qr, &q), ("k_proj", &kr, &k), ("v_proj", &vr, &vv)] {
                    self.linear(&mut pass, (n, d, d), &h, &nm(&format!("self_attn.{proj}")), rows)?;
                    self.swap(&mut pass, (n, v.heads, hd), rows, heads)?;
                }
                attention.record(&mut pass);
                self.swap(&mut pass, (v.heads, n, hd), &o, &qr)?;
                self.linear(&mut pass, (n, d, d), &qr, &nm("self_attn.out_proj"), &h)?;
                self.binary(&mut pass, Op::Add, n * d, &x, &h)?;
                self.norm(&mut pass, (n, d), eps, &x, &nm("layer_norm2"), &h)?;
                self.linear(&mut pass, (n, v.intermediate, d), &h, &nm("mlp.fc1"), &f)?;
                self.act(&mut pass, self.vision_act, n * v.intermediate, &f)?;
                self.linear(&mut pass, (n, d, v.intermediate), &f, &nm("mlp.fc2"), &h)?;
                self.binary(&mut pass, Op::Add, n * d, &x, &h)?;
            }
        }
        let first = if self.cfg.keep_cls { 0 } else { 1 };
        let tokens = n - first;
        let feat = self.buffer("image features", tokens * d)?;
        enc.copy_buffer_to_buffer(&x, (first * d * 4) as u64, &feat, 0, (tokens * d * 4) as u64);
        let td = self.cfg.text.hidden;
        let mid = self.mat("multi_modal_projector.linear_1.weight")?.rows;
        let hmid = self.buffer("projector hidden", tokens * mid)?;
        let out = self.buffer("image features (text)", tokens * td)?;
        {
            let mut pass = pass(&mut enc);
            self.linear(&mut pass, (tokens, mid, d), &feat, "multi_modal_projector.linear_1", &hmid)?;
            self.act(&mut pass, self.projector_act, tokens * mid, &hmid)?;
            self.linear(&mut pass, (tokens, td, mid), &hmid, "multi_modal_projector.linear_2", &out)?;
        }
        self.queue.submit([enc.finish()]);
        Ok((out, tokens))
    }

    /// The prompt through the language model: `ids` with the image's tokens (one contiguous run
    /// of the config's image token) replaced by `image` [n, D]. Returns the generation, ready
    /// for [`Self::step`]; `all_logits` keeps every position's logits, `capture` every layer's
    /// tensors (tests).
    pub fn prefill(
        &self,
        ids: &[u32],
        image: Option<&(Buffer, usize)>,
        var: &VarMode,
        capacity: usize,
        all_logits: bool,
        capture: bool,
    ) -> Result<Generation> {
        let c = &self.cfg.text;
        let (t_n, d, hd) = (ids.len(), c.hidden, c.head_dim);
        let (heads, kvh, inter) = (c.heads, c.kv_heads, c.intermediate);
        if t_n == 0 {
            return Err("an empty prompt".into());
        }
        if t_n > c.max_positions {
            return Err(format!(
                "a prompt of {t_n} tokens is over the model's context of {}",
                c.max_positions
            ));
        }
        // Positions the prompt and its answer take, never more than the context: what the KV
        // cache and the rotary table are sized for.
        let capacity = capacity.min(c.max_positions).max(t_n + 1);
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= c.vocab) {
            return Err(format!("token {id} is outside the vocabulary of {}", c.vocab));
        }
        let image_at: Vec<usize> = (0..t_n).filter(|&i| ids[i] == self.cfg.image_token).collect();
        let span = match (image_at.first(), image) {
            (None, _) => None,
            (Some(_), None) => return Err("the prompt has image tokens but no picture".into()),
            (Some(&s), Some((_, n))) => {
                if image_at.len() != *n || image_at.last() != Some(&(s + n - 1)) {
                    return Err(format!(
                        "{} image tokens (contiguous: {}) for {n} image features",
                        image_at.len(),
                        image_at.last() == Some(&(s + image_at.len() - 1))
                    ));
                }
                Some(ImageSpan::new(s, *n))
            }
        };
        let visual = VisualTokens::from_spans(span.as_slice(), t_n).map_err(gpu_err)?;
        let (cfg, var_on) = match var {
            VarMode::On(cfg) => (cfg.clone(), true),
            // Every layer off: the state only carries the decode session's (empty) classes.
            VarMode::Off => (
                VarConfig {
                    sink_dims: vec![0],
                    layers: LayerPlan::Only(vec![]),
                    ..VarConfig::paper()
                },
                false,
            ),
        };
        cfg.validate_for(d, c.layers).map_err(gpu_err)?;
        let mut state = VarState::new(
            &self.ctx,
            SequenceShape {
                tokens: t_n,
                hidden: d,
                heads,
                queries: t_n,
            },
            Rows::MayChange,
        )
        .map_err(gpu_err)?
        // The host reads the classes, never phi: most tokens are ruled out early.
        .with_phi(Phi::SinksOnly);
        state.prepare(&self.queue, &cfg, &visual, c.layers).map_err(gpu_err)?;
        let mut session = DecodeSession::new(
            &state,
            &self.k.split,
            DecodeShape {
                layers: c.layers,
                heads,
                kv_heads: kvh,
                capacity,
            },
            AttentionOptions { causal: true, scale: None },
        )
        .map_err(gpu_err)?;
        // After the KV cache, which holds the device to its limits: the table is smaller.
        let rope = Rope::new(&self.ctx, &self.queue, capacity, hd, c.rope_theta).map_err(gpu_err)?;

        let idb = upload(&self.ctx, &self.queue, "input ids", bytemuck::cast_slice(ids)).map_err(gpu_err)?;
        let x = self.buffer("hidden", t_n * d)?;
        let h = self.buffer("normed", t_n * d)?;
        let (qr, kr, vr) = (
            self.buffer("q rows", t_n * heads * hd)?,
            self.buffer("k rows", t_n * kvh * hd)?,
            self.buffer("v rows", t_n * kvh * hd)?,
        );
        let (q, k, v, o) = (
            self.buffer("q", t_n * heads * hd)?,
            self.buffer("k", t_n * kvh * hd)?,
            self.buffer("v", t_n * kvh * hd)?,
            self.buffer("o", t_n * heads * hd)?,
        );
        let (gb, ub) = (self.buffer("gate", t_n * inter)?, self.buffer("up", t_n * inter)?);
        let classes = self.buffer("classes per layer", c.layers * t_n)?;
        let selected = self.buffer("selected per layer", c.layers * heads * t_n)?;

        let shape = FusedShape {
            heads,
            kv_heads: kvh,
            queries: t_n,
            keys: t_n,
            head_dim: hd,
        };
        let opts = AttentionOptions { causal: true, scale: None };
        let inputs = AttentionInputs {
            q: q.as_entire_buffer_binding(),
            k: k.as_entire_buffer_binding(),
            v: v.as_entire_buffer_binding(),
            o: o.as_entire_buffer_binding(),
        };
        let (fused, plain) = if var_on {
            (Some(self.k.text_var.bind(&state, shape, opts, inputs).map_err(gpu_err)?), None)
        } else {
            (
                None,
                Some(self.k.text_plain.bind_plain(&self.ctx, shape, opts, inputs).map_err(gpu_err)?),
            )
        };
        let sinks = state.bind_sinks(&self.k.var, Some(x.as_entire_buffer_binding())).map_err(gpu_err)?;

        let mut enc = self.device.create_command_encoder(&Default::default());
        self.embed(&mut pass(&mut enc), t_n, &idb, &x)?;
        if let (Some(span), Some((img, n))) = (span, image) {
            enc.copy_buffer_to_buffer(img, 0, &x, (span.start * d * 4) as u64, (n * d * 4) as u64);
        }
        let mut captures = Vec::new();
        for l in 0..c.layers {
            let pre = format!("language_model.model.layers.{l}.");
            let nm = |s: &str| format!("{pre}{s}");
            {
                let mut pass = pass(&mut enc);
                if var_on {
                    sinks.record(&mut pass, l).map_err(gpu_err)?;
                }
                self.norm(&mut pass, (t_n, d), c.rms_eps, &x, &nm("input_layernorm"), &h)?;
                for (proj, rows, out, nh) in [("q_proj", &qr, &q, heads), ("k_proj", &kr, &k, kvh), ("v_proj", &vr, &v, kvh)] {
                    self.linear(&mut pass, (t_n, nh * hd, d), &h, &nm(&format!("self_attn.{proj}")), rows)?;
                    self.swap(&mut pass, (t_n, nh, hd), rows, out)?;
                }
                for (buf, nh) in [(&q, heads), (&k, kvh)] {
                    rope.bind((nh, t_n), 0, buf).map_err(gpu_err)?.record(&mut pass, &[]);
                }
                match (&fused, &plain) {
                    (Some(f), _) => f.record(&mut pass, l).map_err(gpu_err)?,
                    (_, Some(p)) => p.record(&mut pass),
                    _ => unreachable!("one of the two is bound"),
                }
            }
            session.copy_prefill_kv(&mut enc, l, t_n, &k, &v).map_err(gpu_err)?;
            if var_on {
                session.capture_classes(&mut enc, &state, l).map_err(gpu_err)?;
                enc.copy_buffer_to_buffer(state.classes_buffer(), 0, &classes, (l * t_n * 4) as u64, (t_n * 4) as u64);
                enc.copy_buffer_to_buffer(
                    state.selected_buffer(),
                    0,
                    &selected,
                    (l * heads * t_n * 4) as u64,
                    (heads * t_n * 4) as u64,
                );
            }
            if capture {
                self.queue
                    .submit([std::mem::replace(&mut enc, self.device.create_command_encoder(&Default::default())).finish()]);
                captures.push(LayerCapture {
                    hidden: self.read(&x, t_n * d)?,
                    q: self.read(&q, t_n * heads * hd)?,
                    k: self.read(&k, t_n * kvh * hd)?,
                    v: self.read(&v, t_n * kvh * hd)?,
                    o: self.read(&o, t_n * heads * hd)?,
                });
            }
            let mut pass = pass(&mut enc);
            self.swap(&mut pass, (heads, t_n, hd), &o, &qr)?;
            self.linear(&mut pass, (t_n, d, heads * hd), &qr, &nm("self_attn.o_proj"), &h)?;
            self.binary(&mut pass, Op::Add, t_n * d, &x, &h)?;
            self.mlp(&mut pass, l, t_n, &x, &h, (&gb, &ub))?;
        }
        let rows = if all_logits { t_n } else { 1 };
        let last = self.buffer("last hidden", rows * d)?;
        enc.copy_buffer_to_buffer(&x, ((t_n - rows) * d * 4) as u64, &last, 0, (rows * d * 4) as u64);
        let logits = self.buffer("logits", rows * c.vocab)?;
        self.head(&mut pass(&mut enc), rows, &last, &h, &logits)?;
        self.queue.submit([enc.finish()]);
        let logits = self.read(&logits, rows * c.vocab)?;
        let counts = if var_on {
            let cl: Vec<u32> = visattn::readback::read_vec(&self.device, &self.queue, &classes, c.layers * t_n).map_err(gpu_err)?;
            let se: Vec<u32> =
                visattn::readback::read_vec(&self.device, &self.queue, &selected, c.layers * heads * t_n).map_err(gpu_err)?;
            (0..c.layers)
                .map(|l| LayerCounts {
                    sinks: cl[l * t_n..(l + 1) * t_n].iter().filter(|&&x| x & 2 != 0).count(),
                    selected_rows: se[l * heads * t_n..(l + 1) * heads * t_n].iter().filter(|&&x| x != 0).count(),
                })
                .collect()
        } else {
            vec![LayerCounts::default(); c.layers]
        };
        session.start(t_n).map_err(gpu_err)?;
        let one = |name| self.buffer(name, d.max(heads * hd));
        let step = StepBuffers {
            id: upload(&self.ctx, &self.queue, "step id", &[0.0]).map_err(gpu_err)?,
            x: one("step hidden")?,
            h: one("step normed")?,
            q: one("step q")?,
            k: one("step k")?,
            v: one("step v")?,
            o: one("step o")?,
            f: one("step f")?,
            g: self.buffer("step gate", inter)?,
            u: self.buffer("step up", inter)?,
            logits: self.buffer("step logits", c.vocab)?,
        };
        Ok(Generation {
            session,
            rope,
            logits,
            counts,
            captures,
            step,
        })
    }

    /// The token embeddings of `tokens` ids into x [tokens, D].
    fn embed(&self, pass: &mut ComputePass, tokens: usize, ids: &Buffer, x: &Buffer) -> Result<()> {
        let c = &self.cfg.text;
        let name = "language_model.model.embed_tokens.weight";
        let table = self.mat(name)?;
        if (table.rows, table.cols) != (c.vocab, c.hidden) {
            return Err(format!(
                "weights: {name} is [{}, {}], the config implies [{}, {}]",
                table.rows, table.cols, c.vocab, c.hidden
            ));
        }
        Self::record(pass, self.k.layout.embed(tokens, ids, table, x))
    }

    /// The SiLU-gated MLP of layer `l` on x [rows, D], added into x (h is scratch).
    fn mlp(&self, pass: &mut ComputePass, l: usize, rows: usize, x: &Buffer, h: &Buffer, (g, u): (&Buffer, &Buffer)) -> Result<()> {
        let c = &self.cfg.text;
        let (d, inter) = (c.hidden, c.intermediate);
        let pre = format!("language_model.model.layers.{l}.");
        self.norm(pass, (rows, d), c.rms_eps, x, &format!("{pre}post_attention_layernorm"), h)?;
        self.linear(pass, (rows, inter, d), h, &format!("{pre}mlp.gate_proj"), g)?;
        self.linear(pass, (rows, inter, d), h, &format!("{pre}mlp.up_proj"), u)?;
        self.act(pass, Act::Silu, rows * inter, g)?;
        self.binary(pass, Op::Mul, rows * inter, g, u)?;
        self.linear(pass, (rows, d, inter), g, &format!("{pre}mlp.down_proj"), h)?;
        self.binary(pass, Op::Add, rows * d, x, h)
    }

    /// Final norm and LM head of x [rows, D] into logits [rows, V] (h is scratch).
    fn head(&self, pass: &mut ComputePass, rows: usize, x: &Buffer, h: &Buffer, logits: &Buffer) -> Result<()> {
        let c = &self.cfg.text;
        self.norm(pass, (rows, c.hidden), c.rms_eps, x, "language_model.model.norm", h)?;
        self.linear(pass, (rows, c.vocab, c.hidden), h, "language_model.lm_head", logits)
    }

    /// One decode step: `token` at the next position; returns the logits [V].
    pub fn step(&self, run: &mut Generation, token: u32) -> Result<Vec<f32>> {
        let c = &self.cfg.text;
        let (d, hd, heads, kvh) = (c.hidden, c.head_dim, c.heads, c.kv_heads);
        if token as usize >= c.vocab {
            return Err(format!("token {token} is outside the vocabulary of {}", c.vocab));
        }
        let pos = run.session.len();
        if pos >= c.max_positions {
            return Err(format!("position {pos} is past the model's context of {}", c.max_positions));
        }
        run.session.begin_step(&self.queue).map_err(gpu_err)?;
        let s = &run.step;
        self.queue.write_buffer(&s.id, 0, bytemuck::bytes_of(&token));
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.embed(&mut pass(&mut enc), 1, &s.id, &s.x)?;
        for l in 0..c.layers {
            let pre = format!("language_model.model.layers.{l}.");
            let nm = |x: &str| format!("{pre}{x}");
            {
                let mut pass = pass(&mut enc);
                self.norm(&mut pass, (1, d), c.rms_eps, &s.x, &nm("input_layernorm"), &s.h)?;
                // One token's rows [1, H * d] are already heads-first [H, 1, d].
                for (proj, out, nh) in [("q_proj", &s.q, heads), ("k_proj", &s.k, kvh), ("v_proj", &s.v, kvh)] {
                    self.linear(&mut pass, (1, nh * hd, d), &s.h, &nm(&format!("self_attn.{proj}")), out)?;
                }
                for (buf, nh) in [(&s.q, heads), (&s.k, kvh)] {
                    run.rope.bind((nh, 1), pos, buf).map_err(gpu_err)?.record(&mut pass, &[]);
                }
            }
            run.session.copy_step(&mut enc, l, &s.q, &s.k, &s.v).map_err(gpu_err)?;
            run.session.record_step(&mut pass(&mut enc), l).map_err(gpu_err)?;
            run.session.copy_output(&mut enc, l, &s.o).map_err(gpu_err)?;
            let mut pass = pass(&mut enc);
            self.linear(&mut pass, (1, d, heads * hd), &s.o, &nm("self_attn.o_proj"), &s.h)?;
            self.binary(&mut pass, Op::Add, d, &s.x, &s.h)?;
            self.mlp(&mut pass, l, 1, &s.x, &s.h, (&s.g, &s.u))?;
        }
        self.head(&mut pass(&mut enc), 1, &s.x, &s.f, &s.logits)?;
        self.queue.submit([enc.finish()]);
        let logits = self.read(&s.logits, c.vocab)?;
        run.session.end_step();
        Ok(logits)
    }
}
