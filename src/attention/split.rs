//! Decode attention over long contexts: split-K blocks of keys write VAR's partial state, a
//! combine pass merges them and applies VAR once (var-spec.md section 5). Sinks come from the
//! prefill and stay fixed for the whole generation (section 1); [`DecodeSession`] keeps them,
//! grows the KV cache, and makes each step's row eligible (section 3).
//!
//! [`DecodeSession`]: super::decode::DecodeSession

use std::sync::Arc;

use wgpu::{Buffer, BufferBinding, BufferUsages, ComputePass, Queue};

use super::decls::{
    AttentionAppend, AttentionAppendInputs, AttentionCombine, AttentionCombineInputs, AttentionSplit, AttentionSplitInputs, SplitUniform,
};
use super::{AttentionInputs, AttentionOptions, FusedShape, check_built_for, check_head_dim};
use crate::error::{Error, Result};
use crate::kernel::{Context, Dispatch, Pipeline, Storage};
use crate::var::state::{PlannedDispatch, VarState};

/// Keys per split-K block (at most 1024, the kernel's workgroup array).
pub const DEFAULT_BLOCK: u32 = 256;
const MAX_BLOCK: u32 = 1024;

/// The split and combine kernels of one head_dim.
#[derive(Debug, Clone)]
pub struct SplitAttention {
    head_dim: usize,
    split: Arc<Pipeline>,
    combine: Arc<Pipeline>,
    append: Arc<Pipeline>,
}

/// The buffers of one split-K attention: Q, K, V, O (K and V [Hkv, capacity, d], of which the
/// first `keys` are used), the key classes [capacity] and the selected flags [H, Tq].
pub struct SplitInputs<'a> {
    pub attention: AttentionInputs<'a>,
    pub classes: BufferBinding<'a>,
    pub selected: BufferBinding<'a>,
}

/// How the KV buffers are laid out: room for `capacity` keys, walked in blocks of `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    pub capacity: usize,
    pub block: u32,
}

impl KvLayout {
    /// `capacity` keys in blocks of [`DEFAULT_BLOCK`].
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            block: DEFAULT_BLOCK,
        }
    }
}

/// The two dispatches, the block partials and the shape uniform (keys can grow:
/// [`SplitBinding::set_keys`]).
pub struct SplitBinding {
    /// The split pass, then the combine pass.
    dispatches: PlannedDispatch,
    params: Buffer,
    uniform: SplitUniform,
}

impl SplitAttention {
    pub fn new(ctx: &Context, head_dim: usize) -> Result<Self> {
        check_head_dim(head_dim)?;
        let constants = [("D", head_dim as f64)];
        Ok(Self {
            head_dim,
            split: ctx.pipeline::<AttentionSplit>(&constants)?,
            combine: ctx.pipeline::<AttentionCombine>(&constants)?,
            append: ctx.pipeline::<AttentionAppend>(&constants)?,
        })
    }

    /// [`SplitAttention::new`] inside wgpu error scopes.
    pub async fn new_checked(ctx: &Context, head_dim: usize) -> Result<Self> {
        crate::error::scoped(ctx.device(), || Self::new(ctx, head_dim)).await?
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Binds a split-K attention of `shape` (keys = the keys in use now) over KV buffers laid
    /// out as `kv`. `state` supplies the VAR config slots.
    pub fn bind(
        &self,
        state: &VarState,
        shape: FusedShape,
        options: AttentionOptions,
        kv: KvLayout,
        inputs: SplitInputs,
    ) -> Result<SplitBinding> {
        check_built_for(&shape, self.head_dim)?;
        let KvLayout { capacity, block } = kv;
        if shape.keys > capacity {
            return Err(Error::Shape(format!("{} keys over a capacity of {capacity}", shape.keys)));
        }
        if block == 0 || block > MAX_BLOCK {
            return Err(Error::Config {
                field: "block",
                value: block.to_string(),
                reason: format!("must be in 1..={MAX_BLOCK}"),
            });
        }
        let ctx = state.context();
        let d = shape.head_dim;
        let kv_len = shape.kv_heads * capacity * d;
        let max_blocks = capacity.div_ceil(block as usize);
        let partials = ctx.storage_buffer(
            "split partials",
            (shape.heads * shape.queries * max_blocks * (8 + 3 * d) * 4) as u64,
            BufferUsages::empty(),
        )?;
        let uniform = SplitUniform {
            attn: options.uniform(shape)?,
            block,
            blocks: (shape.keys as u32).div_ceil(block),
            capacity: capacity as u32,
            pad0: 0,
        };
        let params = ctx.uniform_buffer("visattn split params", &uniform);
        let rows = uniform.attn.heads * uniform.attn.queries;
        let split = ctx.bind::<AttentionSplit>(
            &self.split,
            AttentionSplitInputs {
                cfg: state.config_binding(),
                att: params.as_entire_buffer_binding(),
                q: Storage::new(inputs.attention.q, shape.q_len()),
                k: Storage::new(inputs.attention.k, kv_len / 4),
                v: Storage::new(inputs.attention.v, kv_len / 4),
                classes: Storage::new(inputs.classes.clone(), capacity),
                partials: Storage::whole(&partials),
            },
            rows * uniform.blocks,
        )?;
        let combine = ctx.bind::<AttentionCombine>(
            &self.combine,
            AttentionCombineInputs {
                cfg: state.config_binding(),
                att: params.as_entire_buffer_binding(),
                partials: Storage::whole(&partials),
                classes: Storage::new(inputs.classes, capacity),
                o: Storage::new(inputs.attention.o, shape.q_len()),
                selected: Storage::new(inputs.selected, shape.heads * shape.queries),
            },
            rows,
        )?;
        Ok(SplitBinding {
            dispatches: state.planned(vec![split, combine]),
            params,
            uniform,
        })
    }

    /// Binds a decode step's new token into `binding`'s session (one row): `step` = the host's
    /// q [H, d], k and v [Hkv, d] rows; `session` = where they go: q the session's rows of the
    /// layer, k and v its caches [Hkv, capacity, d] (o unused), at the binding's keys - 1.
    pub(crate) fn bind_append(
        &self,
        ctx: &Context,
        binding: &SplitBinding,
        step: [BufferBinding; 3],
        session: AttentionInputs,
    ) -> Result<Dispatch> {
        let u = &binding.uniform;
        let d = self.head_dim;
        let (nq, nkv) = (u.attn.heads as usize * d, u.attn.kv_heads as usize * d);
        let cache = u.attn.kv_heads as usize * u.capacity as usize * d;
        let [q_in, k_in, v_in] = step;
        ctx.bind::<AttentionAppend>(
            &self.append,
            AttentionAppendInputs {
                att: binding.params.as_entire_buffer_binding(),
                q_in: Storage::new(q_in, nq),
                k_in: Storage::new(k_in, nkv),
                v_in: Storage::new(v_in, nkv),
                q: Storage::new(session.q, nq),
                k: Storage::new(session.k, cache),
                v: Storage::new(session.v, cache),
            },
            (nq + 2 * nkv) as u32,
        )
    }
}

impl SplitBinding {
    /// Records the split pass and the combine pass for `layer` (its role from the state's plan).
    pub fn record(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        self.dispatches.record(pass, layer)
    }

    /// Keys in use now (the KV cache grew); takes effect for work submitted after it.
    pub fn set_keys(&mut self, queue: &Queue, keys: usize) -> Result<()> {
        if keys == 0 || keys > self.uniform.capacity as usize || (keys as u32) < self.uniform.attn.queries {
            return Err(Error::Shape(format!(
                "{keys} keys for a capacity of {} and {} rows",
                self.uniform.capacity, self.uniform.attn.queries
            )));
        }
        self.uniform.attn.keys = keys as u32;
        self.uniform.blocks = (keys as u32).div_ceil(self.uniform.block);
        self.dispatches.dispatches[0].set_items(self.uniform.attn.heads * self.uniform.attn.queries * self.uniform.blocks);
        queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&self.uniform));
        Ok(())
    }

    pub fn keys(&self) -> usize {
        self.uniform.attn.keys as usize
    }
}
