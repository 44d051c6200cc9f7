//! The forward pass on the GPU: the typed weights of [`crate::model`] on the device, the
//! model's kernels, and the vision tower + projector. The language model's prefill is in
//! [`super::prefill`], its decode step, bound once per generation, in [`super::decode`]. A host
//! as a third-party engine would write it: its own buffers and kernels, visattn's public API.

use visattn::wgpu::{self, Buffer};
use visattn::{AttentionInputs, AttentionOptions, FusedShape, VarConfig};

use super::blocks::{self, VisionActs};
use super::elementwise::Act;
use super::kernels::{Kernels, record};
use super::linear::upload;
use super::matrix::{Staging, WeightFormat};
use super::weights::{Gpu, Random, Uploaded, buffer};
use crate::config::LlavaConfig;
use crate::error::{Error, Result};
use crate::model::{Llava, TextModel};
use crate::weights::Weights;

/// A model's weights on the device and its kernels.
pub struct GpuModel {
    pub cfg: LlavaConfig,
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) weights: Llava<Gpu>,
    pub(super) k: Kernels,
    vision_act: Act,
    projector_act: Act,
    staging: Staging,
    /// `--png`'s pipelines (the heatmap's, the one-row softmax), built by the first probe.
    pub(super) probe_kernels: std::sync::OnceLock<super::probe::ProbeKernels>,
}

/// The weight matrices of one format: how many, their values, their bytes on the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FormatUse {
    pub format: WeightFormat,
    pub matrices: usize,
    pub values: u64,
    pub bytes: u64,
}

impl FormatUse {
    /// Bits a weight takes on the device (4.5 for Q4_0, 5 for Q4_1, 8.5 for Q8_0).
    pub fn bits_per_weight(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.values.max(1) as f64
    }
}

/// [`GpuModel::time_matmuls`]' measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulTiming {
    pub tokens: usize,
    /// (rows, cols, how many matrices) of the language model's linear layers.
    pub shapes: Vec<(usize, usize, usize)>,
    pub flops: f64,
    pub seconds: f64,
    /// Each shape's first matrix timed alone (the median of as many runs): its GFLOPS.
    pub shape_gflops: Vec<f64>,
}

impl MatmulTiming {
    pub fn gflops(&self) -> f64 {
        self.flops / self.seconds.max(1e-12) / 1e9
    }
}

/// What the language model does with VAR in one generation.
#[derive(Debug, Clone)]
pub enum VarMode {
    Off,
    On(VarConfig),
}

impl GpuModel {
    /// The model of `cfg` from a HF folder (see [`Uploaded::load`]); `progress(done, total)`
    /// after each tensor.
    pub fn load(
        g: &visattn::util::Gpu,
        cfg: &LlavaConfig,
        weights: &Weights,
        format: WeightFormat,
        max_chunk: u64,
        progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let mut store = Uploaded::load(g, cfg, weights, format, max_chunk, progress)?;
        let model = Llava::build(cfg, &mut store)?;
        store.finish()?;
        Self::assemble(g, cfg, model)
    }

    /// The language model of a LLaMA-architecture GGUF file (`cfg` from
    /// [`crate::gguf::model::text_config`], as [`LlavaConfig::text_only`]), read one tensor at
    /// a time: matrices kept in their file's format (`None`: 4.5-bit weights stay 4.5 bits on
    /// the device, dequantized in the kernels) or requantized as `Some(format)` says
    /// ([`crate::gguf::model::GgufStore::new`]); every tensor
    /// of the file must be used; `progress(done, total)` after each tensor.
    pub fn load_gguf(
        g: &visattn::util::Gpu,
        cfg: &LlavaConfig,
        file: &crate::gguf::GgufFile,
        format: Option<WeightFormat>,
        max_chunk: u64,
        progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let mut store = crate::gguf::model::GgufStore::new(vec![file], g, &cfg.text, format, max_chunk, progress);
        let model = Llava::build_text(&cfg.text, &mut store)?;
        store.finish()?;
        Self::assemble(g, cfg, model)
    }

    /// LLaVA from llama.cpp's two files: a LLaMA-architecture language model and its mmproj
    /// file (the CLIP tower and the projector; `cfg` from
    /// [`crate::gguf::vision::Mmproj::llava`]), read as [`GpuModel::load_gguf`] reads one file;
    /// every tensor of both must be used.
    pub fn load_gguf_llava(
        g: &visattn::util::Gpu,
        cfg: &LlavaConfig,
        (lm, mmproj): (&crate::gguf::GgufFile, &crate::gguf::GgufFile),
        format: Option<WeightFormat>,
        max_chunk: u64,
        progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let mut store = crate::gguf::model::GgufStore::new(vec![lm, mmproj], g, &cfg.text, format, max_chunk, progress);
        let model = Llava::build(cfg, &mut store)?;
        store.finish()?;
        Self::assemble(g, cfg, model)
    }

    /// A language model of `cfg.text`'s shape with random weights made on the device (no vision
    /// tower: prefill takes image features as given), for benchmarks of shapes nobody stores.
    pub fn random(g: &visattn::util::Gpu, cfg: &LlavaConfig, format: WeightFormat, max_chunk: u64, seed: u32) -> Result<Self> {
        let mut store = Random::new(g, format, max_chunk, seed)?;
        let model = Llava::build_text(&cfg.text, &mut store)?;
        Self::assemble(g, cfg, model)
    }

    fn assemble(g: &visattn::util::Gpu, cfg: &LlavaConfig, weights: Llava<Gpu>) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            device: g.device.clone(),
            queue: g.queue.clone(),
            weights,
            k: Kernels::new(g, cfg)?,
            vision_act: Act::parse(&cfg.vision.act)?,
            projector_act: Act::parse(&cfg.projector_act)?,
            staging: Staging::Buffer,
            probe_kernels: std::sync::OnceLock::new(),
        })
    }

    /// Keeps the linear layers' weights as `staging` says: [`Staging::Texture`] moves each
    /// matrix whose rows the texture kernel takes into textures (the others stay in buffers),
    /// multiplied with its tiling from then on (a second call only changes the tiling);
    /// returns how many moved. Waits for the copies (each chunk's buffer is freed as it goes).
    pub fn stage(&mut self, staging: Staging) -> Result<usize> {
        let Staging::Texture(tiling) = staging else {
            return Ok(0);
        };
        if let Some(why) = super::linear::texture_unavailable(&self.k.ctx) {
            return Err(Error::Input(format!("weights in textures: {why}")));
        }
        let mut moved = 0;
        for m in self.weights.linears_mut() {
            moved += m.stage_in_texture(&self.k.ctx, &self.queue)? as usize;
            self.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Weights(format!("staging weights in textures: {e}")))?;
        }
        self.k.matmul.tiling = tiling;
        self.staging = staging;
        Ok(moved)
    }

    /// The context the model's kernels and buffers come from.
    pub fn context(&self) -> &visattn::Context {
        &self.k.ctx
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// How the linear layers' weights are kept ([`Self::stage`]).
    pub fn staging(&self) -> Staging {
        self.staging
    }

    /// How the weight matrices are kept on the device, by format, the most bytes first.
    pub fn formats(&self) -> Vec<FormatUse> {
        let mut out: Vec<FormatUse> = Vec::new();
        for m in self.weights.matrices() {
            let i = match out.iter().position(|f| f.format == m.format) {
                Some(i) => i,
                None => {
                    out.push(FormatUse {
                        format: m.format,
                        matrices: 0,
                        values: 0,
                        bytes: 0,
                    });
                    out.len() - 1
                }
            };
            out[i].matrices += 1;
            out[i].values += (m.rows * m.cols) as u64;
            out[i].bytes += m.bytes();
        }
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes));
        out
    }

    /// Bytes of the weights a decode step reads: the language model's linear layers and its LM
    /// head (the embedding table gives one row a step, the vision tower does not run).
    pub fn decode_weight_bytes(&self) -> u64 {
        self.weights.text.linears().iter().map(|l| l.weight.bytes()).sum()
    }

    /// Bytes of the LM head's weights.
    pub fn lm_head_bytes(&self) -> u64 {
        self.weights.text.lm_head.weight.bytes()
    }

    /// The language model's matmuls alone, timed: every linear layer's matrix (the LM head
    /// included) multiplied with `tokens` rows of x, as a prefill of `tokens` runs them, in one
    /// submit, the median of `repeats` wall-clock runs waited for (one more first, not timed).
    /// The bench's prefill GFLOPS; its shapes go to torch for the same product.
    pub fn time_matmuls(&self, tokens: usize, repeats: usize) -> Result<MatmulTiming> {
        let linears = self.weights.text.linears();
        let ctx = &self.k.ctx;
        let (max_k, max_m) = linears.iter().fold((1, 1), |(k, m), l| (k.max(l.inp()), m.max(l.out())));
        let x = buffer(ctx, "matmul probe x", tokens * max_k)?;
        let xs: Vec<f32> = (0..tokens * max_k).map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0).collect();
        self.queue.write_buffer(&x, 0, bytemuck::cast_slice(&xs));
        let out = buffer(ctx, "matmul probe out", tokens * max_m)?;
        let mut dispatches = Vec::new();
        let mut shapes: Vec<(usize, usize, usize)> = Vec::new();
        let mut firsts = Vec::new();
        for l in &linears {
            let bound = self.k.linear(tokens, &x, l, &out)?;
            match shapes.iter_mut().find(|s| (s.0, s.1) == (l.out(), l.inp())) {
                Some(s) => s.2 += 1,
                None => {
                    shapes.push((l.out(), l.inp(), 1));
                    firsts.push(bound.clone());
                }
            }
            dispatches.extend(bound);
        }
        let time = |dispatches: &[visattn::kernel::Dispatch]| {
            super::bandwidth::median_seconds(&self.device, &self.queue, repeats, |pass| {
                for d in dispatches {
                    d.record(pass, &[]);
                }
            })
        };
        let seconds = time(&dispatches)?;
        let shape_gflops = shapes
            .iter()
            .zip(&firsts)
            .map(|(&(m, k, _), d)| Ok(2.0 * (tokens * m * k) as f64 / time(d)?.max(1e-12) / 1e9))
            .collect::<Result<Vec<f64>>>()?;
        let flops = shapes.iter().map(|&(m, k, c)| 2.0 * (tokens * m * k * c) as f64).sum();
        Ok(MatmulTiming {
            tokens,
            shapes,
            flops,
            seconds,
            shape_gflops,
        })
    }

    /// The format most of the weights' bytes are in.
    pub fn format(&self) -> WeightFormat {
        self.formats().first().map_or(WeightFormat::F32, |f| f.format)
    }

    pub(super) fn text(&self) -> &TextModel<Gpu> {
        &self.weights.text
    }

    /// Matrices held in more than one row chunk (over the binding limit).
    pub fn chunked(&self) -> usize {
        self.weights.matrices().iter().filter(|m| m.chunks.len() > 1).count()
    }

    /// `len` values of `b`, f32 or u32. Native: the device is polled and the read waits, so the
    /// future is ready when first polled. Browser: the event loop maps the buffer.
    pub(super) async fn read<T: bytemuck::Pod>(&self, b: &Buffer, len: usize) -> Result<Vec<T>> {
        #[cfg(not(target_arch = "wasm32"))]
        return Ok(visattn::readback::read_vec(&self.device, &self.queue, b, len)?);
        #[cfg(target_arch = "wasm32")]
        return Ok(visattn::readback::read_vec_async(&self.device, &self.queue, b, len).await?);
    }

    /// The image features [tokens, text hidden] of pixel_values [3, S, S], left on the GPU:
    /// CLIPVisionEmbeddings, the encoder layers up to the feature layer, the projector.
    pub fn image_features(&self, pixels: &[f32]) -> Result<(Buffer, usize)> {
        let (tower, projector) = self
            .weights
            .vision
            .as_ref()
            .ok_or_else(|| Error::Input("this model has no vision tower".into()))?;
        let v = &self.cfg.vision;
        let (s, p, d) = (v.image_size, v.patch_size, v.hidden);
        let side = s / p;
        let (patches, n) = (side * side, side * side + 1);
        if pixels.len() != 3 * s * s {
            return Err(Error::Input(format!(
                "pixel_values of {} values for a {s}x{s} vision tower",
                pixels.len()
            )));
        }
        // The patch convolution as a matmul: the pixels regrouped per patch in the conv
        // weight's (channel, row, column) order. A permutation, done where the pixels are.
        let mut cols = Vec::with_capacity(patches * 3 * p * p);
        for (py, px) in (0..side).flat_map(|y| (0..side).map(move |x| (y, x))) {
            for c in 0..3 {
                for i in 0..p {
                    let row = (c * s + py * p + i) * s + px * p;
                    cols.extend_from_slice(&pixels[row..row + p]);
                }
            }
        }
        let ctx = &self.k.ctx;
        let cols = upload(ctx, &self.queue, "patches", &cols)?;
        let pe = buffer(ctx, "patch embeds", patches * d)?;
        let x0 = buffer(ctx, "vision embeddings", n * d)?;
        let a = VisionActs::new(&self.k, v, n)?;
        let shape = FusedShape {
            heads: v.heads,
            kv_heads: v.heads,
            queries: n,
            keys: n,
            head_dim: d / v.heads,
        };
        let attention = self.k.vision.bind_plain(
            ctx,
            shape,
            AttentionOptions {
                causal: false,
                scale: None,
            },
            AttentionInputs {
                q: a.q.as_entire_buffer_binding(),
                k: a.k.as_entire_buffer_binding(),
                v: a.v.as_entire_buffer_binding(),
                o: a.o.as_entire_buffer_binding(),
            },
        )?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        record(
            &mut enc.begin_compute_pass(&Default::default()),
            &self.k.linear(patches, &cols, &tower.patch_embedding, &pe)?,
        );
        enc.copy_buffer_to_buffer(&tower.class_embedding, 0, &x0, 0, (d * 4) as u64);
        enc.copy_buffer_to_buffer(&pe, 0, &x0, (d * 4) as u64, (patches * d * 4) as u64);
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            record(
                &mut pass,
                &[
                    self.k.add(n * d, &x0, &tower.position_embedding)?,
                    self.k.norm(n, v.layer_norm_eps, &x0, &tower.pre_norm, &a.x)?,
                ],
            );
            for layer in &tower.layers {
                blocks::vision_layer(&self.k, v, layer, &a, self.vision_act, &attention, &mut pass)?;
            }
        }
        let first = if self.cfg.keep_cls { 0 } else { 1 };
        let tokens = n - first;
        let feat = buffer(ctx, "image features", tokens * d)?;
        enc.copy_buffer_to_buffer(&a.x, (first * d * 4) as u64, &feat, 0, (tokens * d * 4) as u64);
        let mid = buffer(ctx, "projector hidden", tokens * projector.linear_1.out())?;
        let out = buffer(ctx, "image features (text)", tokens * self.cfg.text.hidden)?;
        record(
            &mut enc.begin_compute_pass(&Default::default()),
            &blocks::projector(&self.k, projector, self.projector_act, tokens, (&feat, &mid), &out)?,
        );
        self.queue.submit([enc.finish()]);
        Ok((out, tokens))
    }
}
