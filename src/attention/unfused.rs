//! The unfused attention path, for engines with eager attention and as the fused kernel's
//! baseline: softmax(Q K^T * scale) into a [H, Tq, Tk] buffer, VAR on it with [`VarState`]
//! (`var_rows.wgsl`), then P V.
//!
//! [`VarState`]: crate::VarState

use std::sync::Arc;

use wgpu::{BufferBinding, ComputePass};

use super::decls::{AttentionProbs, AttentionProbsInputs, AttentionPv, AttentionPvInputs};
use super::{AttentionInputs, AttentionOptions, FusedShape, check_built_for, check_head_dim};
use crate::error::Result;
use crate::kernel::{Context, Dispatch, Pipeline, Storage};

/// The two unfused kernels of one head_dim.
#[derive(Debug, Clone)]
pub struct UnfusedAttention {
    ctx: Context,
    head_dim: usize,
    probs: Arc<Pipeline>,
    pv: Arc<Pipeline>,
}

/// The two dispatches of one set of Q, K, V, P, O buffers.
pub struct UnfusedBinding {
    probs: ProbsBinding,
    pv: Dispatch,
}

/// The first half alone: P = softmax(Q K^T * scale) of one set of Q, K, P buffers (what a
/// picture of the attention needs: the rows, no output).
pub struct ProbsBinding {
    probs: Dispatch,
}

impl UnfusedAttention {
    pub fn new(ctx: &Context, head_dim: usize) -> Result<Self> {
        check_head_dim(head_dim)?;
        let constants = [("D", head_dim as f64)];
        Ok(Self {
            ctx: ctx.clone(),
            head_dim,
            probs: ctx.pipeline::<AttentionProbs>(&constants)?,
            pv: ctx.pipeline::<AttentionPv>(&constants)?,
        })
    }

    /// [`UnfusedAttention::new`] inside wgpu error scopes.
    pub async fn new_checked(ctx: &Context, head_dim: usize) -> Result<Self> {
        crate::error::scoped(ctx.device(), || Self::new(ctx, head_dim)).await?
    }

    /// Binds Q, K and the probabilities `p` [H, Tq, Tk] f32 (written) for the first half alone.
    pub fn bind_probs(
        &self,
        shape: FusedShape,
        options: AttentionOptions,
        q: BufferBinding,
        k: BufferBinding,
        p: BufferBinding,
    ) -> Result<ProbsBinding> {
        check_built_for(&shape, self.head_dim)?;
        let params = self.ctx.uniform_buffer("visattn attention params", &options.uniform(shape)?);
        self.probs_with(&params, shape, q, k, p)
    }

    /// The softmax's dispatch over the shape uniform `params` (shared with P V's in `bind`).
    fn probs_with(
        &self,
        params: &wgpu::Buffer,
        shape: FusedShape,
        q: BufferBinding,
        k: BufferBinding,
        p: BufferBinding,
    ) -> Result<ProbsBinding> {
        let probs = self.ctx.bind::<AttentionProbs>(
            &self.probs,
            AttentionProbsInputs {
                att: params.as_entire_buffer_binding(),
                q: Storage::new(q, shape.q_len()),
                k: Storage::new(k, shape.kv_len()),
                probs: Storage::new(p, shape.heads * shape.queries * shape.keys),
            },
            (shape.heads * shape.queries) as u32,
        )?;
        Ok(ProbsBinding { probs })
    }

    /// Binds Q, K, V, O and the probabilities `p` [H, Tq, Tk] f32 (written, then read).
    pub fn bind(&self, shape: FusedShape, options: AttentionOptions, inputs: AttentionInputs, p: BufferBinding) -> Result<UnfusedBinding> {
        check_built_for(&shape, self.head_dim)?;
        let params = self.ctx.uniform_buffer("visattn attention params", &options.uniform(shape)?);
        let probs = self.probs_with(&params, shape, inputs.q, inputs.k, p.clone())?;
        let rows = (shape.heads * shape.queries) as u32;
        let p_len = shape.heads * shape.queries * shape.keys;
        let pv = self.ctx.bind::<AttentionPv>(
            &self.pv,
            AttentionPvInputs {
                att: params.as_entire_buffer_binding(),
                probs: Storage::new(p, p_len),
                v: Storage::new(inputs.v, shape.kv_len()),
                o: Storage::new(inputs.o, shape.q_len()),
            },
            rows,
        )?;
        Ok(UnfusedBinding { probs, pv })
    }
}

impl UnfusedBinding {
    /// Records P = softmax(Q K^T * scale).
    pub fn record_probs(&self, pass: &mut ComputePass) {
        self.probs.record(pass);
    }

    /// Records O = P V.
    pub fn record_pv(&self, pass: &mut ComputePass) {
        self.pv.record(pass, &[]);
    }
}

impl ProbsBinding {
    /// Records P = softmax(Q K^T * scale).
    pub fn record(&self, pass: &mut ComputePass) {
        self.probs.record(pass, &[]);
    }
}
