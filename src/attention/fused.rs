//! Fused attention with VAR inside (var-spec.md section 5): O = softmax(Q K^T * scale) V with
//! VAR applied on the way, the attention matrix never in memory. Sinks come from the same
//! [`VarState`] (record its sink kernel for the layer first); flags land in its `selected` buffer.

use std::sync::Arc;

use wgpu::ComputePass;

use super::decls::{AttentionVar, AttentionVarInputs};
use super::{AttentionInputs, AttentionOptions, FusedShape, check_built_for, check_head_dim};
use crate::error::{Error, Result};
use crate::kernel::{Context, Dispatch, Pipeline, Storage};
use crate::var::decls::ConfigUniform;
use crate::var::state::{PlannedDispatch, VarState};

/// Query rows per workgroup of `attention_var.wgsl`.
pub const ROWS_PER_WORKGROUP: u32 = 16;

/// What the pipeline is specialised on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FusedSettings {
    pub head_dim: u32,
    /// false: plain attention (one accumulator), for measuring what VAR costs.
    pub var: bool,
}

/// The fused kernel of one (head_dim, VAR on/off) specialisation.
#[derive(Debug, Clone)]
pub struct FusedAttention {
    settings: FusedSettings,
    pipeline: Arc<Pipeline>,
}

/// One set of Q, K, V, O buffers bound with a state's classes and flags: records itself.
pub struct FusedBinding {
    dispatch: PlannedDispatch,
}

/// Plain attention (a `var: false` kernel) over the caller's buffers, bound without a
/// [`VarState`]: towers that never see VAR (a vision encoder) and VAR-off runs of a model.
pub struct PlainBinding {
    dispatch: Dispatch,
}

impl FusedAttention {
    pub fn new(ctx: &Context, settings: FusedSettings) -> Result<Self> {
        check_head_dim(settings.head_dim as usize)?;
        let constants = [("D", settings.head_dim as f64), ("VAR", settings.var as u32 as f64)];
        Ok(Self {
            settings,
            pipeline: ctx.pipeline::<AttentionVar>(&constants)?,
        })
    }

    /// [`FusedAttention::new`] inside wgpu error scopes (a device whose limits the kernel
    /// exceeds gives [`Error::Gpu`], not a panic in the uncaptured-error handler).
    pub async fn new_checked(ctx: &Context, settings: FusedSettings) -> Result<Self> {
        crate::error::scoped(ctx.device(), || Self::new(ctx, settings)).await?
    }

    pub fn settings(&self) -> FusedSettings {
        self.settings
    }

    /// Binds the caller's buffers with `state`'s config, classes and flags. The state's shape
    /// must agree: tokens = Tk, heads = H, queries = Tq.
    pub fn bind(&self, state: &VarState, shape: FusedShape, options: AttentionOptions, inputs: AttentionInputs) -> Result<FusedBinding> {
        check_built_for(&shape, self.settings.head_dim as usize)?;
        let s = state.shape();
        if state.batch() != 1 {
            return Err(Error::Shape(format!(
                "the fused kernel runs one sequence; this VarState holds {}",
                state.batch()
            )));
        }
        if (s.tokens, s.heads, s.queries) != (shape.keys, shape.heads, shape.queries) {
            return Err(Error::Shape(format!(
                "VarState has T={} H={} Q={}, attention has Tk={} H={} Tq={}",
                s.tokens, s.heads, s.queries, shape.keys, shape.heads, shape.queries
            )));
        }
        let ctx = state.context();
        let params = ctx.uniform_buffer("visattn attention params", &options.uniform(shape)?);
        let dispatch = ctx.bind::<AttentionVar>(
            &self.pipeline,
            AttentionVarInputs {
                cfg: state.config_binding(),
                att: params.as_entire_buffer_binding(),
                q: Storage::new(inputs.q, shape.q_len()),
                k: Storage::new(inputs.k, shape.kv_len()),
                v: Storage::new(inputs.v, shape.kv_len()),
                classes: Storage::whole(state.classes_buffer()),
                o: Storage::new(inputs.o, shape.q_len()),
                selected: Storage::whole(state.selected_buffer()),
            },
            (shape.heads as u32) * (shape.queries as u32).div_ceil(ROWS_PER_WORKGROUP),
        )?;
        Ok(FusedBinding {
            dispatch: state.planned(vec![dispatch]),
        })
    }
}

impl FusedAttention {
    /// Binds Q, K, V, O for plain softmax attention: needs a kernel built with `var: false`
    /// (a VAR kernel without a state would have no sinks to act on, so it is refused).
    pub fn bind_plain(&self, ctx: &Context, shape: FusedShape, options: AttentionOptions, inputs: AttentionInputs) -> Result<PlainBinding> {
        if self.settings.var {
            return Err(Error::Binding {
                name: "state",
                reason: "a VAR attention kernel binds with a VarState (FusedAttention::bind); plain attention wants FusedSettings { var: false }".into(),
            });
        }
        check_built_for(&shape, self.settings.head_dim as usize)?;
        let params = ctx.uniform_buffer("visattn attention params", &options.uniform(shape)?);
        // The plain kernel reads neither the config nor the classes; the layout still names
        // them, so they get stand-ins. It writes a false flag per row, so those are sized.
        let cfg = ctx.uniform_buffer("visattn plain config", &<ConfigUniform as bytemuck::Zeroable>::zeroed());
        let unused = ctx.storage_buffer("visattn plain classes", 4, wgpu::BufferUsages::empty())?;
        let flags = ctx.storage_buffer(
            "visattn plain flags",
            (shape.heads * shape.queries * 4) as u64,
            wgpu::BufferUsages::empty(),
        )?;
        let dispatch = ctx.bind::<AttentionVar>(
            &self.pipeline,
            AttentionVarInputs {
                cfg: cfg.as_entire_buffer_binding(),
                att: params.as_entire_buffer_binding(),
                q: Storage::new(inputs.q, shape.q_len()),
                k: Storage::new(inputs.k, shape.kv_len()),
                v: Storage::new(inputs.v, shape.kv_len()),
                classes: Storage::whole(&unused),
                o: Storage::new(inputs.o, shape.q_len()),
                selected: Storage::whole(&flags),
            },
            (shape.heads as u32) * (shape.queries as u32).div_ceil(ROWS_PER_WORKGROUP),
        )?;
        Ok(PlainBinding { dispatch })
    }
}

impl PlainBinding {
    pub fn record(&self, pass: &mut ComputePass) {
        self.dispatch.record(pass, &[0]);
    }
}

impl FusedBinding {
    /// Records the attention of `layer` (its role picks the VAR behaviour). Record the state's
    /// sink kernel for the layer before it.
    pub fn record(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        self.dispatch.record(pass, layer)
    }
}
