//! Host slices in, host vectors out: upload, run one layer, read back. For tests, tools and the
//! CLI; engines that already hold their tensors on the GPU use [`VarState`] directly.

use wgpu::{Buffer, BufferUsages, Device, Queue};

use crate::attention::fused::{FusedAttention, FusedBinding, FusedInputs};
use crate::attention::split::{KvLayout, SplitAttention, SplitBinding, SplitInputs};
use crate::attention::{AttentionOptions, FusedShape};
use crate::config::{LayerRole, VarConfig};
use crate::error::{Error, Result};
use crate::kernel::Context;
use crate::readback::{read_bytes, read_vec};
use crate::reference::check_finite;
use crate::shape::AttnShape;
use crate::var::CLASS_SINK;
use crate::var::kernels::VarKernels;
use crate::var::state::{BatchEntry, LayerBinding, Placement, Rows, SequenceShape, SinkBinding, VarState};
use crate::visual::VisualTokens;

/// One layer's results, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerOutput {
    /// [H, Q, K] after VAR.
    pub probs: Vec<f32>,
    /// [T]; zeros where the layer does not detect.
    pub phi: Vec<f32>,
    /// [T]
    pub sinks: Vec<bool>,
    /// [H, Q]; with [`Rows::MayChange`], false for the rows not visited.
    pub selected: Vec<bool>,
}

struct Chunk {
    buffer: Buffer,
    first_head: usize,
    heads: usize,
    binding: LayerBinding,
}

/// Owns upload buffers for one sequence shape and runs layers from host slices. A layer whose
/// probabilities exceed the device's binding or buffer limit goes through in chunks of heads.
pub struct HostRunner {
    ctx: Context,
    state: VarState,
    hidden: Buffer,
    chunks: Vec<Chunk>,
    placements: Vec<Placement>,
}

/// One sequence's inputs to [`HostRunner::run_batch_layer`]: its own hidden states [T_b, D]
/// (None for layers that do not detect) and probabilities [H, Q_b, K_b], unpadded.
#[derive(Debug, Clone, Copy)]
pub struct SequenceInput<'a> {
    pub hidden: Option<&'a [f32]>,
    pub probs: &'a [f32],
    pub queries: usize,
    pub keys: usize,
}

impl HostRunner {
    pub fn new(ctx: &Context, kernels: &VarKernels, shape: SequenceShape, rows: Rows) -> Result<Self> {
        Self::new_batch(ctx, kernels, shape, 1, rows)
    }

    /// A runner for batches of `batch` sequences of at most `shape` (see [`VarState::new_batch`]).
    pub fn new_batch(ctx: &Context, kernels: &VarKernels, shape: SequenceShape, batch: usize, rows: Rows) -> Result<Self> {
        crate::error::scoped_blocking(ctx.device(), || Self::build(ctx, kernels, shape, batch, rows))?
    }

    fn build(ctx: &Context, kernels: &VarKernels, shape: SequenceShape, batch: usize, rows: Rows) -> Result<Self> {
        let state = VarState::new_batch(ctx, shape, batch, rows)?;
        let max_bytes = ctx.max_binding();
        let head_bytes = (shape.queries * shape.tokens * 4) as u64;
        let hidden_bytes = (batch * shape.tokens * shape.hidden * 4) as u64;
        let all_heads = batch * shape.heads;
        if head_bytes > max_bytes {
            return Err(Error::Limit {
                name: "probs (one head)",
                needed: head_bytes,
                limit: max_bytes,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        if hidden_bytes > max_bytes {
            return Err(Error::Limit {
                name: "hidden",
                needed: hidden_bytes,
                limit: max_bytes,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        let new_buffer = |name, size| ctx.storage_buffer(name, size, BufferUsages::empty());
        let hidden = new_buffer("hidden", hidden_bytes)?;
        let heads_per_chunk = ((max_bytes / head_bytes) as usize).min(all_heads);
        let mut chunks = Vec::new();
        for first_head in (0..all_heads).step_by(heads_per_chunk) {
            let heads = heads_per_chunk.min(all_heads - first_head);
            let buffer = new_buffer("probs", heads as u64 * head_bytes)?;
            let binding = state.bind(
                kernels,
                Some(hidden.as_entire_buffer_binding()),
                buffer.as_entire_buffer_binding(),
                first_head,
            )?;
            chunks.push(Chunk {
                buffer,
                first_head,
                heads,
                binding,
            });
        }
        Ok(Self {
            ctx: ctx.clone(),
            state,
            hidden,
            chunks,
            placements: Vec::new(),
        })
    }

    /// How many head chunks a layer is split into on this device.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Uploads one prompt's settings (inside wgpu error scopes, like every call here).
    pub fn prepare(&mut self, queue: &Queue, cfg: &VarConfig, visual: &VisualTokens, layers: usize) -> Result<()> {
        crate::error::scoped_blocking(self.ctx.device(), || self.state.prepare(queue, cfg, visual, layers))??;
        self.placements = vec![Placement {
            key_offset: 0,
            row_offset: 0,
        }];
        Ok(())
    }

    /// One prompt per sequence of the batch: each its own image spans and length.
    pub fn prepare_batch(&mut self, queue: &Queue, cfg: &VarConfig, entries: &[BatchEntry], layers: usize) -> Result<()> {
        self.placements = crate::error::scoped_blocking(self.ctx.device(), || self.state.prepare_batch(queue, cfg, entries, layers))??;
        Ok(())
    }

    /// Runs `layer` on every sequence of the batch in one dispatch per kernel (left-padding
    /// them into the batch layout), and returns each sequence's results, unpadded.
    pub fn run_batch_layer(&self, queue: &Queue, layer: usize, inputs: &[SequenceInput]) -> Result<Vec<LayerOutput>> {
        let s = self.state.shape();
        let batch = self.state.batch();
        if inputs.len() != batch || self.placements.len() != batch {
            return Err(Error::Shape(format!(
                "{} sequences for a batch of {batch} (prepare_batch first)",
                inputs.len()
            )));
        }
        let detects = self.state.role(layer)? != LayerRole::Off;
        let mut hidden = detects.then(|| vec![0f32; batch * s.tokens * s.hidden]);
        let mut probs = vec![0f32; batch * s.heads * s.queries * s.tokens];
        for (b, (input, p)) in inputs.iter().zip(&self.placements).enumerate() {
            if (input.keys, input.queries) != (s.tokens - p.key_offset, s.queries - p.row_offset) {
                return Err(Error::Shape(format!(
                    "sequence {b}: {} rows x {} keys, but it was prepared with {} x {}",
                    input.queries,
                    input.keys,
                    s.queries - p.row_offset,
                    s.tokens - p.key_offset
                )));
            }
            AttnShape::new(s.heads, input.queries, input.keys)?.check_probs(input.probs.len())?;
            check_finite("attentions", input.probs)?;
            for h in 0..s.heads {
                for q in 0..input.queries {
                    let src = &input.probs[(h * input.queries + q) * input.keys..][..input.keys];
                    let row = (b * s.heads + h) * s.queries + p.row_offset + q;
                    probs[row * s.tokens + p.key_offset..][..input.keys].copy_from_slice(src);
                }
            }
            if let Some(hidden) = hidden.as_mut() {
                let h = input
                    .hidden
                    .ok_or_else(|| Error::Shape(format!("layer {layer} detects sinks: sequence {b} needs its hidden states")))?;
                if h.len() != input.keys * s.hidden {
                    return Err(Error::Shape(format!(
                        "sequence {b}: hidden states have {} values, expected {} x {}",
                        h.len(),
                        input.keys,
                        s.hidden
                    )));
                }
                check_finite("hidden_states", h)?;
                hidden[(b * s.tokens + p.key_offset) * s.hidden..][..h.len()].copy_from_slice(h);
            }
        }
        let all = self.run_padded(queue, layer, hidden.as_deref(), &probs)?;
        let mut out = Vec::with_capacity(batch);
        for (b, (input, p)) in inputs.iter().zip(&self.placements).enumerate() {
            let mut seq_probs = Vec::with_capacity(s.heads * input.queries * input.keys);
            let mut selected = Vec::with_capacity(s.heads * input.queries);
            for h in 0..s.heads {
                for q in 0..input.queries {
                    let row = (b * s.heads + h) * s.queries + p.row_offset + q;
                    seq_probs.extend_from_slice(&all.probs[row * s.tokens + p.key_offset..][..input.keys]);
                    selected.push(all.selected[row]);
                }
            }
            let tokens = b * s.tokens + p.key_offset..(b + 1) * s.tokens;
            out.push(LayerOutput {
                probs: seq_probs,
                phi: all.phi[tokens.clone()].to_vec(),
                sinks: all.sinks[tokens].to_vec(),
                selected,
            });
        }
        Ok(out)
    }

    pub fn role(&self, layer: usize) -> Result<LayerRole> {
        self.state.role(layer)
    }

    /// Runs `layer` on `probs` [H, Q, K] with `hidden` [T, D] (None only for layers that do not
    /// detect sinks) and reads everything back.
    pub fn run_layer(&self, queue: &Queue, layer: usize, hidden: Option<&[f32]>, probs: &[f32]) -> Result<LayerOutput> {
        if self.state.batch() != 1 {
            return Err(Error::Shape("a batch runner takes run_batch_layer".into()));
        }
        self.run_padded(queue, layer, hidden, probs)
    }

    /// Runs the whole padded layout: hidden [B, T, D], probs [B, H, Q, K].
    fn run_padded(&self, queue: &Queue, layer: usize, hidden: Option<&[f32]>, probs: &[f32]) -> Result<LayerOutput> {
        self.check_and_submit(queue, layer, hidden, probs)?;
        self.read_all(self.ctx.device(), queue, probs.len())
    }

    fn check_and_submit(&self, queue: &Queue, layer: usize, hidden: Option<&[f32]>, probs: &[f32]) -> Result<()> {
        let s = self.state.shape();
        let batch = self.state.batch();
        let padded = AttnShape {
            heads: batch * s.heads,
            ..s.attn()
        };
        padded.check_probs(probs.len())?;
        check_finite("attentions", probs)?;
        let role = self.state.role(layer)?;
        match hidden {
            Some(h) => {
                if h.len() != batch * s.tokens * s.hidden {
                    return Err(Error::Shape(format!(
                        "hidden states have {} values, expected T x D = {} x {}",
                        h.len(),
                        s.tokens,
                        s.hidden
                    )));
                }
                check_finite("hidden_states", h)?;
            }
            None if role != LayerRole::Off => {
                return Err(Error::Shape(format!("layer {layer} detects sinks and needs its hidden states")));
            }
            None => {}
        }
        // Everything that talks to wgpu runs in error scopes: a lost device or a validation
        // error comes back as Error::Gpu, never as a panic in the uncaptured-error handler.
        let device = self.ctx.device();
        crate::error::scoped_blocking(device, || self.submit(device, queue, layer, hidden, probs))??;
        Ok(())
    }

    fn submit(&self, device: &Device, queue: &Queue, layer: usize, hidden: Option<&[f32]>, probs: &[f32]) -> Result<()> {
        let s = self.state.shape();
        if let Some(h) = hidden {
            queue.write_buffer(&self.hidden, 0, bytemuck::cast_slice(h));
        }
        let head_len = s.queries * s.tokens;
        for c in &self.chunks {
            let part = &probs[c.first_head * head_len..(c.first_head + c.heads) * head_len];
            queue.write_buffer(&c.buffer, 0, bytemuck::cast_slice(part));
        }

        let mut encoder = device.create_command_encoder(&Default::default());
        // Rows::MayChange leaves skipped rows unwritten: clear so they read as "not selected".
        encoder.clear_buffer(self.state.selected_buffer(), 0, None);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("visattn layer"),
                timestamp_writes: None,
            });
            self.chunks[0].binding.sinks().record(&mut pass, layer)?;
            for c in &self.chunks {
                c.binding.record_rows(&mut pass, layer)?;
            }
        }
        queue.submit([encoder.finish()]);
        Ok(())
    }

    fn read_all(&self, device: &Device, queue: &Queue, probs_len: usize) -> Result<LayerOutput> {
        let s = self.state.shape();
        let batch = self.state.batch();

        let mut out = Vec::with_capacity(probs_len);
        for c in &self.chunks {
            let bytes = read_bytes(device, queue, &c.buffer, 0, c.buffer.size())?;
            out.extend_from_slice(bytemuck::cast_slice::<u8, f32>(&bytes));
        }
        let phi: Vec<f32> = read_vec(device, queue, self.state.phi_buffer(), batch * s.tokens)?;
        let classes: Vec<u32> = read_vec(device, queue, self.state.classes_buffer(), batch * s.tokens)?;
        let selected: Vec<u32> = read_vec(device, queue, self.state.selected_buffer(), batch * s.heads * s.queries)?;
        Ok(LayerOutput {
            probs: out,
            phi,
            sinks: classes.iter().map(|c| c & CLASS_SINK != 0).collect(),
            selected: selected.iter().map(|&v| v != 0).collect(),
        })
    }
}

/// One layer of fused attention, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionOutput {
    /// [H, Tq, d]
    pub o: Vec<f32>,
    /// [H, Tq]
    pub selected: Vec<bool>,
    /// [Tk]
    pub sinks: Vec<bool>,
}

/// Host slices through the sink kernel and the fused attention kernel.
pub struct HostAttention {
    ctx: Context,
    kernel: AttentionKernel,
    state: VarState,
    shape: FusedShape,
    hidden: Buffer,
    q: Buffer,
    k: Buffer,
    v: Buffer,
    o: Buffer,
    sinks: SinkBinding,
}

/// The kernel a [`HostAttention`] is built for.
enum Choice<'a> {
    Fused(&'a FusedAttention),
    Split(&'a SplitAttention),
}

/// Which attention kernel a [`HostAttention`] runs.
enum AttentionKernel {
    Fused(FusedBinding),
    Split(SplitBinding),
}

impl HostAttention {
    pub fn new(
        ctx: &Context,
        kernels: &VarKernels,
        fused: &FusedAttention,
        shape: FusedShape,
        hidden_dim: usize,
        options: AttentionOptions,
    ) -> Result<Self> {
        crate::error::scoped_blocking(ctx.device(), || {
            Self::build(ctx, kernels, Choice::Fused(fused), shape, hidden_dim, options)
        })?
    }

    /// As [`HostAttention::new`] with the split-K kernels (decode rows over long contexts).
    pub fn new_split(
        ctx: &Context,
        kernels: &VarKernels,
        split: &SplitAttention,
        shape: FusedShape,
        hidden_dim: usize,
        options: AttentionOptions,
    ) -> Result<Self> {
        crate::error::scoped_blocking(ctx.device(), || {
            Self::build(ctx, kernels, Choice::Split(split), shape, hidden_dim, options)
        })?
    }

    fn build(
        ctx: &Context,
        kernels: &VarKernels,
        choice: Choice,
        shape: FusedShape,
        hidden_dim: usize,
        options: AttentionOptions,
    ) -> Result<Self> {
        shape.validate()?;
        let seq = SequenceShape {
            tokens: shape.keys,
            hidden: hidden_dim,
            heads: shape.heads,
            queries: shape.queries,
        };
        let state = VarState::new(ctx, seq, Rows::All)?;
        let new_buffer = |name: &'static str, len: usize| ctx.storage_buffer(name, (len * 4) as u64, BufferUsages::empty());
        let hidden = new_buffer("hidden", shape.keys * hidden_dim)?;
        let q = new_buffer("q", shape.q_len())?;
        let k = new_buffer("k", shape.kv_len())?;
        let v = new_buffer("v", shape.kv_len())?;
        let o = new_buffer("o", shape.q_len())?;
        let sinks = state.bind_sinks(kernels, Some(hidden.as_entire_buffer_binding()))?;
        let kernel = match choice {
            Choice::Fused(fused) => AttentionKernel::Fused(fused.bind(
                &state,
                shape,
                options,
                FusedInputs {
                    q: q.as_entire_buffer_binding(),
                    k: k.as_entire_buffer_binding(),
                    v: v.as_entire_buffer_binding(),
                    o: o.as_entire_buffer_binding(),
                },
            )?),
            Choice::Split(split) => AttentionKernel::Split(split.bind(
                &state,
                shape,
                options,
                KvLayout::new(shape.keys),
                SplitInputs {
                    q: q.as_entire_buffer_binding(),
                    k: k.as_entire_buffer_binding(),
                    v: v.as_entire_buffer_binding(),
                    classes: state.classes_buffer().as_entire_buffer_binding(),
                    o: o.as_entire_buffer_binding(),
                    selected: state.selected_buffer().as_entire_buffer_binding(),
                },
            )?),
        };
        Ok(Self {
            ctx: ctx.clone(),
            kernel,
            state,
            shape,
            hidden,
            q,
            k,
            v,
            o,
            sinks,
        })
    }

    /// Uploads one prompt's settings, inside wgpu error scopes.
    pub fn prepare(&mut self, queue: &Queue, cfg: &VarConfig, visual: &VisualTokens, layers: usize) -> Result<()> {
        crate::error::scoped_blocking(self.ctx.device(), || self.state.prepare(queue, cfg, visual, layers))?
    }

    pub fn run_layer(
        &self,
        queue: &Queue,
        layer: usize,
        hidden: Option<&[f32]>,
        q: &[f32],
        k: &[f32],
        v: &[f32],
    ) -> Result<AttentionOutput> {
        let device = self.ctx.device();
        let s = self.shape;
        let seq = self.state.shape();
        for (name, data, len) in [("q", q, s.q_len()), ("k", k, s.kv_len()), ("v", v, s.kv_len())] {
            if data.len() != len {
                return Err(Error::Shape(format!("{name} has {} values, expected {len} for {s:?}", data.len())));
            }
            check_finite(name, data)?;
        }
        let role = self.state.role(layer)?;
        match hidden {
            Some(h) if h.len() == seq.tokens * seq.hidden => {
                check_finite("hidden_states", h)?;
                crate::error::scoped_blocking(device, || queue.write_buffer(&self.hidden, 0, bytemuck::cast_slice(h)))?;
            }
            Some(h) => {
                return Err(Error::Shape(format!(
                    "hidden states have {} values, expected {} x {}",
                    h.len(),
                    seq.tokens,
                    seq.hidden
                )));
            }
            None if role != LayerRole::Off => {
                return Err(Error::Shape(format!("layer {layer} detects sinks and needs its hidden states")));
            }
            None => {}
        }
        crate::error::scoped_blocking(device, || -> Result<()> {
            queue.write_buffer(&self.q, 0, bytemuck::cast_slice(q));
            queue.write_buffer(&self.k, 0, bytemuck::cast_slice(k));
            queue.write_buffer(&self.v, 0, bytemuck::cast_slice(v));
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.sinks.record(&mut pass, layer)?;
                match &self.kernel {
                    AttentionKernel::Fused(b) => b.record(&mut pass, layer)?,
                    AttentionKernel::Split(b) => b.record(&mut pass, layer)?,
                }
            }
            queue.submit([encoder.finish()]);
            Ok(())
        })??;
        let o: Vec<f32> = read_vec(device, queue, &self.o, s.q_len())?;
        let selected: Vec<u32> = read_vec(device, queue, self.state.selected_buffer(), s.heads * s.queries)?;
        let classes: Vec<u32> = read_vec(device, queue, self.state.classes_buffer(), s.keys)?;
        Ok(AttentionOutput {
            o,
            selected: selected.iter().map(|&x| x != 0).collect(),
            sinks: classes.iter().map(|c| c & CLASS_SINK != 0).collect(),
        })
    }
}
