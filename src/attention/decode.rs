//! One generation on the GPU: the KV cache of every layer, the prefill's sink classes, and a
//! split-K binding per layer whose key count follows the cache.

use std::num::NonZeroU64;

use wgpu::{Buffer, BufferBinding, BufferUsages, ComputePass, Queue};

use super::split::{KvLayout, SplitAttention, SplitBinding, SplitInputs};
use super::{AttentionInputs, AttentionOptions, FusedShape};
use crate::baseline::{Baseline, BaselineBinding, BaselineKind};
use crate::error::{Error, Result};
use crate::kernel::{Context, Dispatch};
use crate::var::check_finite;
use crate::var::state::VarState;

/// A generation's sizes: `layers` of `heads` query heads over `kv_heads` key/value heads, with
/// room for `capacity` tokens (rounded up to a multiple of 64 so every layer's slice is aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeShape {
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub capacity: usize,
}

/// One generation: the KV cache of every layer with room for `capacity` tokens (a buffer per
/// layer for keys and one for values, so a model's cache is bounded by the binding limit per
/// layer, not in all: LLaMA-7B's 32 layers at 704 tokens are 369 MB of keys), the sink
/// classes of every layer captured at prefill (new tokens are never sinks nor image tokens), and
/// per layer a split-K binding whose key count follows the cache.
pub struct DecodeSession {
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
    k: Vec<Buffer>,
    v: Vec<Buffer>,
    classes: Buffer,
    q: Buffer,
    o: Buffer,
    selected: Buffer,
    bindings: Vec<SplitBinding>,
    ctx: Context,
    split: SplitAttention,
    /// Per layer, the host's step buffers bound once ([`DecodeSession::bind_step_buffers`]):
    /// the new token's q, k, v into the session, and the output out of it.
    step: Vec<(Dispatch, BaselineBinding)>,
}

fn range(b: &Buffer, at: usize, len: usize) -> BufferBinding<'_> {
    BufferBinding {
        buffer: b,
        offset: (at * 4) as u64,
        size: NonZeroU64::new((len * 4) as u64),
    }
}

impl DecodeSession {
    /// `state` is the prompt's prepared [`VarState`] (its config and roles).
    pub fn new(state: &VarState, split: &SplitAttention, shape: DecodeShape, options: AttentionOptions) -> Result<Self> {
        let DecodeShape {
            layers,
            heads,
            kv_heads,
            capacity,
        } = shape;
        let head_dim = split.head_dim();
        let step = FusedShape {
            heads,
            kv_heads,
            queries: 1,
            keys: 1,
            head_dim,
        };
        step.validate()?;
        if state.batch() != 1 || state.shape().heads != heads {
            return Err(Error::Shape(
                "a decode session follows one sequence with the same heads as its VarState".into(),
            ));
        }
        let capacity = capacity.max(1).next_multiple_of(64);
        let ctx = state.context();
        let buffer = |len: usize| ctx.storage_buffer("decode cache", (len * 4) as u64, BufferUsages::empty());
        let layer_kv = kv_heads * capacity * head_dim;
        let k = (0..layers).map(|_| buffer(layer_kv)).collect::<Result<Vec<_>>>()?;
        let v = (0..layers).map(|_| buffer(layer_kv)).collect::<Result<Vec<_>>>()?;
        let classes = buffer(layers * capacity)?;
        let q = buffer(layers * heads * head_dim.next_multiple_of(64))?;
        let o = buffer(layers * heads * head_dim.next_multiple_of(64))?;
        let selected = buffer(layers * 64 * heads.div_ceil(64))?;
        let mut bindings = Vec::with_capacity(layers);
        for l in 0..layers {
            let qo = heads * head_dim.next_multiple_of(64);
            let sel = 64 * heads.div_ceil(64);
            bindings.push(split.bind(
                state,
                step,
                options,
                KvLayout::new(capacity),
                SplitInputs {
                    attention: AttentionInputs {
                        q: range(&q, l * qo, heads * head_dim),
                        k: range(&k[l], 0, layer_kv),
                        v: range(&v[l], 0, layer_kv),
                        o: range(&o, l * qo, heads * head_dim),
                    },
                    classes: range(&classes, l * capacity, capacity),
                    selected: range(&selected, l * sel, heads),
                },
            )?);
        }
        Ok(Self {
            layers,
            heads,
            kv_heads,
            head_dim,
            capacity,
            len: 0,
            k,
            v,
            classes,
            q,
            o,
            selected,
            bindings,
            ctx: ctx.clone(),
            split: split.clone(),
            step: Vec::new(),
        })
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A layer of the session (a shape error, as the step's buffers' sizes).
    fn check_layer(&self, layer: usize) -> Result<()> {
        if layer >= self.layers {
            return Err(Error::Shape(format!("layer {layer} of a session of {} layers", self.layers)));
        }
        Ok(())
    }

    /// The host's q [H, d], k and v [Hkv, d] buffers hold a step's rows.
    fn check_step_inputs(&self, q: &Buffer, k: &Buffer, v: &Buffer) -> Result<()> {
        let d = (self.head_dim * 4) as u64;
        let (nq, nkv) = (d * self.heads as u64, d * self.kv_heads as u64);
        if q.size() < nq || k.size() < nkv || v.size() < nkv {
            return Err(Error::Shape(format!(
                "step q/k/v buffers of {}/{}/{} bytes (need {nq}/{nkv}/{nkv})",
                q.size(),
                k.size(),
                v.size()
            )));
        }
        Ok(())
    }

    /// The host's output buffer holds a step's [H, d].
    fn check_step_output(&self, out: &Buffer) -> Result<()> {
        let need = (self.heads * self.head_dim * 4) as u64;
        if out.size() < need {
            return Err(Error::Shape(format!("step output buffer of {} bytes (need {need})", out.size())));
        }
        Ok(())
    }

    /// Room in the cache for the step's token.
    fn check_room(&self) -> Result<()> {
        if self.len >= self.capacity {
            return Err(Error::Limit {
                name: "decode cache",
                needed: (self.len + 1) as u64,
                limit: self.capacity as u64,
                limit_name: "session capacity",
            });
        }
        Ok(())
    }

    /// Where (kv_head, token) starts in a layer's key or value buffer.
    fn kv_offset(&self, kv_head: usize, token: usize) -> u64 {
        ((kv_head * self.capacity + token) * self.head_dim * 4) as u64
    }

    /// Stores layer `layer`'s prefill keys and values, [Hkv, tokens, d] each.
    pub fn write_prefill_kv(&mut self, queue: &Queue, layer: usize, tokens: usize, k: &[f32], v: &[f32]) -> Result<()> {
        let per = tokens * self.head_dim;
        if layer >= self.layers || tokens > self.capacity || k.len() != self.kv_heads * per || v.len() != k.len() {
            return Err(Error::Shape(format!(
                "prefill k/v of {} values for {tokens} tokens, layer {layer}",
                k.len()
            )));
        }
        check_finite("k", k)?;
        check_finite("v", v)?;
        for h in 0..self.kv_heads {
            queue.write_buffer(
                &self.k[layer],
                self.kv_offset(h, 0),
                bytemuck::cast_slice(&k[h * per..(h + 1) * per]),
            );
            queue.write_buffer(
                &self.v[layer],
                self.kv_offset(h, 0),
                bytemuck::cast_slice(&v[h * per..(h + 1) * per]),
            );
        }
        Ok(())
    }

    /// [`Self::write_prefill_kv`] from the host's GPU buffers: k and v [Hkv, tokens, d] from
    /// offset 0 of buffers with COPY_SRC usage, copied on the GPU (record outside a pass).
    pub fn copy_prefill_kv(&self, encoder: &mut wgpu::CommandEncoder, layer: usize, tokens: usize, k: &Buffer, v: &Buffer) -> Result<()> {
        let per = (tokens * self.head_dim * 4) as u64;
        let need = per * self.kv_heads as u64;
        if layer >= self.layers || tokens > self.capacity || k.size() < need || v.size() < need {
            return Err(Error::Shape(format!(
                "prefill k/v buffers of {} / {} bytes for {tokens} tokens of layer {layer} (need {need})",
                k.size(),
                v.size()
            )));
        }
        for h in 0..self.kv_heads {
            let at = self.kv_offset(h, 0);
            encoder.copy_buffer_to_buffer(k, h as u64 * per, &self.k[layer], at, per);
            encoder.copy_buffer_to_buffer(v, h as u64 * per, &self.v[layer], at, per);
        }
        Ok(())
    }

    /// [`Self::write_step`] from the host's GPU buffers: q [H, d], k and v [Hkv, d] from offset
    /// 0 of buffers with COPY_SRC usage, copied on the GPU (record outside a pass, after
    /// [`Self::begin_step`]).
    pub fn copy_step(&self, encoder: &mut wgpu::CommandEncoder, layer: usize, q: &Buffer, k: &Buffer, v: &Buffer) -> Result<()> {
        self.check_layer(layer)?;
        self.check_step_inputs(q, k, v)?;
        self.check_room()?;
        let d = (self.head_dim * 4) as u64;
        let nq = d * self.heads as u64;
        encoder.copy_buffer_to_buffer(
            q,
            0,
            &self.q,
            (layer * self.heads * self.head_dim.next_multiple_of(64) * 4) as u64,
            nq,
        );
        for h in 0..self.kv_heads {
            let at = self.kv_offset(h, self.len);
            encoder.copy_buffer_to_buffer(k, h as u64 * d, &self.k[layer], at, d);
            encoder.copy_buffer_to_buffer(v, h as u64 * d, &self.v[layer], at, d);
        }
        Ok(())
    }

    /// Binds the host's step buffers once, for every layer's [`DecodeSession::record_layer`]:
    /// `q` [H, d], `k` and `v` [Hkv, d] (what the step's projections wrote) and `out` [H, d]
    /// (where the step reads the attention's output). Buffers too small are errors.
    pub fn bind_step_buffers(&mut self, q: &Buffer, k: &Buffer, v: &Buffer, out: &Buffer) -> Result<()> {
        self.check_step_inputs(q, k, v)?;
        self.check_step_output(out)?;
        let d = self.head_dim;
        let (nq, nkv) = (self.heads * d, self.kv_heads * d);
        let qo = self.heads * d.next_multiple_of(64);
        let layer_kv = self.kv_heads * self.capacity * d;
        let copy = Baseline::new(&self.ctx, BaselineKind::Copy)?;
        self.step = (0..self.layers)
            .map(|l| {
                let append = self.split.bind_append(
                    &self.ctx,
                    &self.bindings[l],
                    [range(q, 0, nq), range(k, 0, nkv), range(v, 0, nkv)],
                    AttentionInputs {
                        q: range(&self.q, l * qo, nq),
                        k: range(&self.k[l], 0, layer_kv),
                        v: range(&self.v[l], 0, layer_kv),
                        o: range(&self.o, l * qo, nq),
                    },
                )?;
                let output = copy.bind(range(&self.o, l * qo, nq), range(out, 0, nq), nq as u32, 256)?;
                Ok((append, output))
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// `layer`'s attention of the step in the caller's pass (after [`DecodeSession::begin_step`]
    /// and [`DecodeSession::bind_step_buffers`]): the new token's q, k and v into the session,
    /// the split-K attention with VAR, its output into the bound `out`. What
    /// [`DecodeSession::copy_step`], [`DecodeSession::record_step`] and
    /// [`DecodeSession::copy_output`] do, as dispatches: a host records a whole step into one
    /// pass of its own, with no copies between passes to order. (On lavapipe a SmolLM2 step
    /// runs as fast either way: 1.000 as a paired ratio over 199 alternating steps.)
    pub fn record_layer(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        let (append, output) = self.step.get(layer).ok_or_else(|| {
            if layer >= self.layers {
                Error::Layer {
                    layer,
                    layers: self.layers,
                }
            } else {
                Error::Binding {
                    name: "step buffers",
                    reason: "record_layer needs bind_step_buffers first".into(),
                }
            }
        })?;
        self.check_room()?;
        append.record(pass, &[]);
        self.record_step(pass, layer)?;
        output.record(pass);
        Ok(())
    }

    /// Copies `layer`'s step output [H, d] into the host's `out` (offset 0, COPY_DST usage).
    pub fn copy_output(&self, encoder: &mut wgpu::CommandEncoder, layer: usize, out: &Buffer) -> Result<()> {
        self.check_layer(layer)?;
        self.check_step_output(out)?;
        let (offset, len) = self.output_range(layer);
        encoder.copy_buffer_to_buffer(&self.o, offset, out, 0, (len * 4) as u64);
        Ok(())
    }

    /// Copies the classes the VarState's sink kernel found for `layer` at prefill (record after
    /// `encode_sinks` of that layer). They stay fixed for the whole generation.
    pub fn capture_classes(&self, encoder: &mut wgpu::CommandEncoder, state: &VarState, layer: usize) -> Result<()> {
        let tokens = state.shape().tokens;
        if layer >= self.layers || tokens > self.capacity {
            return Err(Error::Shape(format!(
                "layer {layer} / {tokens} prefill tokens do not fit the session"
            )));
        }
        encoder.copy_buffer_to_buffer(
            state.classes_buffer(),
            0,
            &self.classes,
            (layer * self.capacity * 4) as u64,
            (tokens * 4) as u64,
        );
        Ok(())
    }

    /// After the prefill: `tokens` are in the cache.
    pub fn start(&mut self, tokens: usize) -> Result<()> {
        if tokens == 0 || tokens >= self.capacity {
            return Err(Error::Shape(format!("{tokens} prefill tokens for a capacity of {}", self.capacity)));
        }
        self.len = tokens;
        Ok(())
    }

    /// Before recording a step: every layer will attend over the cache plus the new token.
    pub fn begin_step(&mut self, queue: &Queue) -> Result<()> {
        self.check_room()?;
        for b in &mut self.bindings {
            b.set_keys(queue, self.len + 1)?;
        }
        Ok(())
    }

    /// The new token's q [H, d], k and v [Hkv, d] for `layer`.
    pub fn write_step(&self, queue: &Queue, layer: usize, q: &[f32], k: &[f32], v: &[f32]) -> Result<()> {
        let d = self.head_dim;
        if layer >= self.layers || q.len() != self.heads * d || k.len() != self.kv_heads * d || v.len() != k.len() {
            return Err(Error::Shape(format!(
                "step q/k/v of {}/{}/{} values for layer {layer}",
                q.len(),
                k.len(),
                v.len()
            )));
        }
        for (name, x) in [("q", q), ("k", k), ("v", v)] {
            check_finite(name, x)?;
        }
        queue.write_buffer(
            &self.q,
            (layer * self.heads * d.next_multiple_of(64) * 4) as u64,
            bytemuck::cast_slice(q),
        );
        for h in 0..self.kv_heads {
            queue.write_buffer(
                &self.k[layer],
                self.kv_offset(h, self.len),
                bytemuck::cast_slice(&k[h * d..(h + 1) * d]),
            );
            queue.write_buffer(
                &self.v[layer],
                self.kv_offset(h, self.len),
                bytemuck::cast_slice(&v[h * d..(h + 1) * d]),
            );
        }
        Ok(())
    }

    /// Records `layer`'s split-K attention of the new token.
    pub fn record_step(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        let b = self.bindings.get(layer).ok_or(Error::Layer {
            layer,
            layers: self.layers,
        })?;
        b.record(pass, layer)
    }

    /// After the step's work is submitted: the new token is part of the cache.
    pub fn end_step(&mut self) {
        self.len += 1;
    }

    /// The output rows [H, d] of `layer` (within the o buffer: offset and length in f32).
    pub fn output_range(&self, layer: usize) -> (u64, usize) {
        (
            (layer * self.heads * self.head_dim.next_multiple_of(64) * 4) as u64,
            self.heads * self.head_dim,
        )
    }
    /// The selected flags [H] of `layer` (offset in bytes, count).
    pub fn selected_range(&self, layer: usize) -> (u64, usize) {
        ((layer * 64 * self.heads.div_ceil(64) * 4) as u64, self.heads)
    }
    /// Room in tokens (the requested capacity rounded up to a multiple of 64).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// `layer`'s key cache, [Hkv, capacity, d] f32: kv head h's token t at
    /// ((h x capacity + t) x d) x 4 bytes.
    pub fn key_buffer(&self, layer: usize) -> Result<&Buffer> {
        self.k.get(layer).ok_or(Error::Layer {
            layer,
            layers: self.layers,
        })
    }
    /// The classes `layer` keeps for the generation, u32 [capacity] (offset in bytes) in
    /// [`classes_buffer`](Self::classes_buffer): the prefill's, 0 for tokens generated since.
    pub fn classes_offset(&self, layer: usize) -> u64 {
        (layer * self.capacity * 4) as u64
    }
    pub fn classes_buffer(&self) -> &Buffer {
        &self.classes
    }
    pub fn output_buffer(&self) -> &Buffer {
        &self.o
    }
    pub fn selected_buffer(&self) -> &Buffer {
        &self.selected
    }
}
