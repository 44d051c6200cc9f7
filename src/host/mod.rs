//! Host slices in, host vectors out: upload, run one layer, read back. For tests, tools and the
//! CLI; engines that already hold their tensors on the GPU bind their buffers to [`VarState`]
//! and the attention kernels directly. One [`HostSession`] serves both ways a layer arrives:
//! as probabilities (eager attention: the row kernel edits them) or as Q, K, V (the fused or
//! split-K attention with VAR inside). Every call runs inside wgpu error scopes.

mod batch;
pub(crate) mod discover;

use wgpu::{Buffer, BufferUsages, Queue};

pub use batch::SequenceInput;

use crate::attention::fused::{FusedAttention, FusedBinding};
use crate::attention::split::{KvLayout, SplitAttention, SplitBinding, SplitInputs};
use crate::attention::{AttentionInputs, AttentionOptions, FusedShape};
use crate::error::{Error, Result, scoped_blocking};
use crate::kernel::Context;
use crate::readback::{read_bytes, read_vec};
use crate::shape::AttnShape;
use crate::var::CLASS_SINK;
use crate::var::check_finite;
use crate::var::config::{LayerRole, VarConfig};
use crate::var::kernels::VarKernels;
use crate::var::state::{BatchEntry, LayerBinding, Placement, Rows, SequenceShape, SinkBinding, VarState};
use crate::var::visual::VisualTokens;

/// One layer's results from probabilities, read back.
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

/// One layer of attention with VAR inside, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionOutput {
    /// [H, Tq, d]
    pub o: Vec<f32>,
    /// [H, Tq]
    pub selected: Vec<bool>,
    /// [Tk]
    pub sinks: Vec<bool>,
}

/// The attention kernel a session runs its layers through.
#[derive(Debug, Clone, Copy)]
pub enum Attention<'a> {
    /// Prefill-shaped: [`FusedAttention`].
    Fused(&'a FusedAttention),
    /// Decode rows over long contexts: [`SplitAttention`].
    Split(&'a SplitAttention),
}

/// A head range of the probabilities, uploaded into its own buffer.
struct Chunk {
    buffer: Buffer,
    first_head: usize,
    heads: usize,
    binding: LayerBinding,
}

enum Work {
    /// Probabilities [B x H, Q, K] in chunks of heads within the binding limit.
    Rows(Vec<Chunk>),
    Attention(Box<AttentionWork>),
}

enum AttentionBinding {
    Fused(FusedBinding),
    Split(SplitBinding),
}

struct AttentionWork {
    shape: FusedShape,
    binding: AttentionBinding,
    sinks: SinkBinding,
    q: Buffer,
    k: Buffer,
    v: Buffer,
    o: Buffer,
}

/// Owns the upload buffers of one sequence shape (or a batch) and runs layers from host
/// slices. A layer whose probabilities exceed the device's binding or buffer limit goes through
/// in chunks of heads.
pub struct HostSession {
    ctx: Context,
    state: VarState,
    hidden: Buffer,
    work: Work,
    placements: Vec<Placement>,
}

impl HostSession {
    /// A session over probabilities [H, Q, K] of one sequence.
    pub fn rows(ctx: &Context, kernels: &VarKernels, shape: SequenceShape, rows: Rows) -> Result<Self> {
        Self::rows_batch(ctx, kernels, shape, 1, rows)
    }

    /// A session over batches of `batch` sequences of at most `shape` (see [`VarState::new_batch`]).
    pub fn rows_batch(ctx: &Context, kernels: &VarKernels, shape: SequenceShape, batch: usize, rows: Rows) -> Result<Self> {
        scoped_blocking(ctx.device(), || {
            let state = VarState::new_batch(ctx, shape, batch, rows)?;
            let hidden = upload_buffer(ctx, "hidden", (batch * shape.tokens * shape.hidden) as u64 * 4)?;
            let chunks = chunk_heads(ctx, kernels, &state, &hidden, batch * shape.heads)?;
            Ok(Self {
                ctx: ctx.clone(),
                state,
                hidden,
                work: Work::Rows(chunks),
                placements: Vec::new(),
            })
        })?
    }

    /// A session over Q, K, V of `shape` through `kernel`, with hidden states of `hidden_dim`.
    pub fn attention(
        ctx: &Context,
        kernels: &VarKernels,
        kernel: Attention,
        shape: FusedShape,
        hidden_dim: usize,
        options: AttentionOptions,
    ) -> Result<Self> {
        scoped_blocking(ctx.device(), || {
            shape.validate()?;
            let seq = SequenceShape {
                tokens: shape.keys,
                hidden: hidden_dim,
                heads: shape.heads,
                queries: shape.queries,
            };
            let state = VarState::new(ctx, seq, Rows::All)?;
            let f32s = |name, len: usize| upload_buffer(ctx, name, (len * 4) as u64);
            let hidden = f32s("hidden", shape.keys * hidden_dim)?;
            let (q, k, v, o) = (
                f32s("q", shape.q_len())?,
                f32s("k", shape.kv_len())?,
                f32s("v", shape.kv_len())?,
                f32s("o", shape.q_len())?,
            );
            let sinks = state.bind_sinks(kernels, Some(hidden.as_entire_buffer_binding()))?;
            let binding = match kernel {
                Attention::Fused(f) => AttentionBinding::Fused(f.bind(
                    &state,
                    shape,
                    options,
                    AttentionInputs {
                        q: q.as_entire_buffer_binding(),
                        k: k.as_entire_buffer_binding(),
                        v: v.as_entire_buffer_binding(),
                        o: o.as_entire_buffer_binding(),
                    },
                )?),
                Attention::Split(s) => AttentionBinding::Split(s.bind(
                    &state,
                    shape,
                    options,
                    KvLayout::new(shape.keys),
                    SplitInputs {
                        attention: AttentionInputs {
                            q: q.as_entire_buffer_binding(),
                            k: k.as_entire_buffer_binding(),
                            v: v.as_entire_buffer_binding(),
                            o: o.as_entire_buffer_binding(),
                        },
                        classes: state.classes_buffer().as_entire_buffer_binding(),
                        selected: state.selected_buffer().as_entire_buffer_binding(),
                    },
                )?),
            };
            Ok(Self {
                ctx: ctx.clone(),
                state,
                hidden,
                work: Work::Attention(Box::new(AttentionWork {
                    shape,
                    binding,
                    sinks,
                    q,
                    k,
                    v,
                    o,
                })),
                placements: Vec::new(),
            })
        })?
    }

    /// How many head chunks a layer of probabilities is split into on this device.
    pub fn chunks(&self) -> usize {
        match &self.work {
            Work::Rows(chunks) => chunks.len(),
            Work::Attention(_) => 1,
        }
    }

    /// Uploads one prompt's settings.
    pub fn prepare(&mut self, queue: &Queue, cfg: &VarConfig, visual: &VisualTokens, layers: usize) -> Result<()> {
        scoped_blocking(self.ctx.device(), || self.state.prepare(queue, cfg, visual, layers))??;
        self.placements = vec![Placement {
            key_offset: 0,
            row_offset: 0,
        }];
        Ok(())
    }

    /// One prompt per sequence of the batch: each its own image spans and length.
    pub fn prepare_batch(&mut self, queue: &Queue, cfg: &VarConfig, entries: &[BatchEntry], layers: usize) -> Result<()> {
        self.placements = scoped_blocking(self.ctx.device(), || self.state.prepare_batch(queue, cfg, entries, layers))??;
        Ok(())
    }

    pub fn role(&self, layer: usize) -> Result<LayerRole> {
        self.state.role(layer)
    }

    /// Runs `layer` on `probs` [H, Q, K] with `hidden` [T, D] (None only for layers that do not
    /// detect sinks) and reads everything back.
    pub fn run_layer(&self, queue: &Queue, layer: usize, hidden: Option<&[f32]>, probs: &[f32]) -> Result<LayerOutput> {
        if self.state.batch() != 1 {
            return Err(Error::Shape("a batch session takes run_batch_layer".into()));
        }
        self.run_padded(queue, layer, hidden, probs)
    }

    /// Runs `layer`'s attention of `q` [H, Tq, d], `k` and `v` [Hkv, Tk, d] with `hidden` [Tk, D]
    /// (None only for layers that do not detect sinks) and reads the output back.
    pub fn run_attention(
        &self,
        queue: &Queue,
        layer: usize,
        hidden: Option<&[f32]>,
        q: &[f32],
        k: &[f32],
        v: &[f32],
    ) -> Result<AttentionOutput> {
        let Work::Attention(work) = &self.work else {
            return Err(Error::Shape("this session runs probabilities: use run_layer".into()));
        };
        let s = work.shape;
        for (name, data, len) in [("q", q, s.q_len()), ("k", k, s.kv_len()), ("v", v, s.kv_len())] {
            if data.len() != len {
                return Err(Error::Shape(format!("{name} has {} values, expected {len} for {s:?}", data.len())));
            }
            check_finite(name, data)?;
        }
        self.check_hidden(layer, hidden)?;
        let device = self.ctx.device();
        scoped_blocking(device, || -> Result<()> {
            if let Some(h) = hidden {
                queue.write_buffer(&self.hidden, 0, bytemuck::cast_slice(h));
            }
            queue.write_buffer(&work.q, 0, bytemuck::cast_slice(q));
            queue.write_buffer(&work.k, 0, bytemuck::cast_slice(k));
            queue.write_buffer(&work.v, 0, bytemuck::cast_slice(v));
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                work.sinks.record(&mut pass, layer)?;
                match &work.binding {
                    AttentionBinding::Fused(b) => b.record(&mut pass, layer)?,
                    AttentionBinding::Split(b) => b.record(&mut pass, layer)?,
                }
            }
            queue.submit([encoder.finish()]);
            Ok(())
        })??;
        let (sinks, selected) = self.read_flags(queue)?;
        let o = read_vec(device, queue, &work.o, s.q_len())?;
        // Finite inputs can still overflow a logit: NaN is refused here, never handed back.
        crate::AttentionOptions::check_output(layer, s, &o)?;
        Ok(AttentionOutput { o, selected, sinks })
    }

    /// Hidden states of the expected size, present wherever the layer detects; finite.
    fn check_hidden(&self, layer: usize, hidden: Option<&[f32]>) -> Result<()> {
        let s = self.state.shape();
        let len = self.state.batch() * s.tokens * s.hidden;
        let role = self.state.role(layer)?;
        match hidden {
            Some(h) if h.len() != len => Err(Error::Shape(format!(
                "hidden states have {} values, expected B x T x D = {} x {} x {}",
                h.len(),
                self.state.batch(),
                s.tokens,
                s.hidden
            ))),
            Some(h) => check_finite("hidden_states", h),
            None if role != LayerRole::Off => Err(Error::Shape(format!("layer {layer} detects sinks and needs its hidden states"))),
            None => Ok(()),
        }
    }

    /// Runs the whole padded layout: hidden [B, T, D], probs [B, H, Q, K].
    fn run_padded(&self, queue: &Queue, layer: usize, hidden: Option<&[f32]>, probs: &[f32]) -> Result<LayerOutput> {
        let Work::Rows(chunks) = &self.work else {
            return Err(Error::Shape("this session runs attention: use run_attention".into()));
        };
        let s = self.state.shape();
        let padded = AttnShape {
            heads: self.state.batch() * s.heads,
            ..s.attn()
        };
        padded.check_probs(probs.len())?;
        check_finite("attentions", probs)?;
        self.check_hidden(layer, hidden)?;
        let device = self.ctx.device();
        scoped_blocking(device, || -> Result<()> {
            if let Some(h) = hidden {
                queue.write_buffer(&self.hidden, 0, bytemuck::cast_slice(h));
            }
            let head_len = s.queries * s.tokens;
            for c in chunks {
                let part = &probs[c.first_head * head_len..(c.first_head + c.heads) * head_len];
                queue.write_buffer(&c.buffer, 0, bytemuck::cast_slice(part));
            }
            let mut encoder = device.create_command_encoder(&Default::default());
            // Rows::MayChange leaves skipped rows unwritten: clear so they read as "not selected".
            encoder.clear_buffer(self.state.selected_buffer(), 0, None);
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("visattn sinks"),
                    timestamp_writes: None,
                });
                chunks[0].binding.sinks().record(&mut pass, layer)?;
            }
            // Into the encoder: chunks whose settings stage their rows copy them first.
            for c in chunks {
                c.binding.encode_rows(&mut encoder, layer)?;
            }
            queue.submit([encoder.finish()]);
            Ok(())
        })??;
        let mut out = Vec::with_capacity(probs.len());
        for c in chunks {
            let bytes = read_bytes(device, queue, &c.buffer, 0, c.buffer.size())?;
            out.extend_from_slice(bytemuck::cast_slice::<u8, f32>(&bytes));
        }
        let (sinks, selected) = self.read_flags(queue)?;
        Ok(LayerOutput {
            probs: out,
            phi: read_vec(device, queue, self.state.phi_buffer(), self.state.batch() * s.tokens)?,
            sinks,
            selected,
        })
    }

    /// The sink flag of every token and the selected flag of every row, read back.
    fn read_flags(&self, queue: &Queue) -> Result<(Vec<bool>, Vec<bool>)> {
        let s = self.state.shape();
        let b = self.state.batch();
        let device = self.ctx.device();
        let classes: Vec<u32> = read_vec(device, queue, self.state.classes_buffer(), b * s.tokens)?;
        let selected: Vec<u32> = read_vec(device, queue, self.state.selected_buffer(), b * s.heads * s.queries)?;
        Ok((
            classes.iter().map(|c| c & CLASS_SINK != 0).collect(),
            selected.iter().map(|&v| v != 0).collect(),
        ))
    }
}

/// A storage buffer the session uploads into.
fn upload_buffer(ctx: &Context, name: &'static str, bytes: u64) -> Result<Buffer> {
    ctx.storage_buffer(name, bytes, BufferUsages::empty())
}

/// The probabilities of `heads` heads in chunks of whole heads, each within the binding limit
/// (the one head-chunking routine: a layer over the limit goes through chunk by chunk).
fn chunk_heads(ctx: &Context, kernels: &VarKernels, state: &VarState, hidden: &Buffer, heads: usize) -> Result<Vec<Chunk>> {
    let s = state.shape();
    let max_bytes = ctx.max_binding();
    let head_bytes = (s.queries * s.tokens * 4) as u64;
    if head_bytes > max_bytes {
        return Err(Error::Limit {
            name: "probs (one head)",
            needed: head_bytes,
            limit: max_bytes,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    let per_chunk = ((max_bytes / head_bytes) as usize).min(heads);
    (0..heads)
        .step_by(per_chunk)
        .map(|first_head| {
            let n = per_chunk.min(heads - first_head);
            let buffer = upload_buffer(ctx, "probs", n as u64 * head_bytes)?;
            let binding = state.bind(
                kernels,
                Some(hidden.as_entire_buffer_binding()),
                buffer.as_entire_buffer_binding(),
                first_head,
            )?;
            Ok(Chunk {
                buffer,
                first_head,
                heads: n,
                binding,
            })
        })
        .collect()
}
