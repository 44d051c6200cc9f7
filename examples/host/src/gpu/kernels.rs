//! The model's kernels, built once per model: the host's own (matmul, norms, elementwise, axis
//! swap, embedding lookup) and visattn's (the sink and row kernels, fused attention with and
//! without VAR, split-K decode). Each method binds one operation on typed weights and returns
//! its dispatches, to be recorded as often as the caller likes: bound once.

use visattn::kernel::Dispatch;
use visattn::wgpu::Buffer;
use visattn::{Context, FusedAttention, FusedSettings, KernelSettings, SplitAttention, VarKernels};

use super::elementwise::{Act, Elementwise, Op};
use super::layout::Layout;
use super::linear::Matmul;
use super::matrix::Matrix;
use super::norm::Normalize;
use super::weights::{Linear, Norm};
use crate::config::LlavaConfig;
use crate::error::{Error, Result};

pub struct Kernels {
    pub ctx: Context,
    pub matmul: Matmul,
    normalize: Normalize,
    ew: Elementwise,
    layout: Layout,
    pub var: VarKernels,
    /// VAR inside the text attention, and the same kernel without VAR (VAR off, and its cost).
    pub text_var: FusedAttention,
    pub text_plain: FusedAttention,
    pub vision: FusedAttention,
    pub split: SplitAttention,
}

impl Kernels {
    pub fn new(g: &visattn::util::Gpu, cfg: &LlavaConfig) -> Result<Self> {
        let ctx = &g.ctx;
        let fused = |head_dim: usize, var: bool, what: &str| {
            FusedAttention::new(
                ctx,
                FusedSettings {
                    head_dim: head_dim as u32,
                    var,
                },
            )
            .map_err(|e| Error::Config(format!("{what} attention: {e}")))
        };
        let t = &cfg.text;
        Ok(Self {
            ctx: ctx.clone(),
            matmul: Matmul::new(ctx),
            normalize: Normalize::new(ctx)?,
            ew: Elementwise::new(ctx)?,
            layout: Layout::new(ctx)?,
            var: VarKernels::new(ctx, KernelSettings::for_adapter(&g.info))?,
            text_var: fused(t.head_dim, true, "text")?,
            text_plain: fused(t.head_dim, false, "text")?,
            vision: fused(cfg.vision.hidden / cfg.vision.heads.max(1), false, "vision")?,
            split: SplitAttention::new(ctx, t.head_dim)?,
        })
    }

    /// out [rows, w.out] = x [rows, w.in] W^T (+ b): one dispatch per row chunk of W.
    pub fn linear(&self, rows: usize, x: &Buffer, w: &Linear, out: &Buffer) -> Result<Vec<Dispatch>> {
        Ok(self.matmul.bind(rows, x, &w.weight, w.bias.as_ref(), out)?)
    }

    /// out [rows, dim] = norm(x): LayerNorm where the weights have a bias, RMSNorm where not.
    pub fn norm(&self, rows: usize, eps: f64, x: &Buffer, n: &Norm, out: &Buffer) -> Result<Dispatch> {
        let dim = (n.weight.size() / 4) as usize;
        Ok(self.normalize.bind((rows, dim), eps, x, &n.weight, n.bias.as_ref(), out, false)?)
    }

    /// The residual add and the next norm in one pass: x [rows, dim] += h, then h = norm(x).
    pub fn add_norm(&self, rows: usize, eps: f64, x: &Buffer, n: &Norm, h: &Buffer) -> Result<Dispatch> {
        let dim = (n.weight.size() / 4) as usize;
        Ok(self.normalize.bind((rows, dim), eps, x, &n.weight, n.bias.as_ref(), h, true)?)
    }

    /// x [len] += y.
    pub fn add(&self, len: usize, x: &Buffer, y: &Buffer) -> Result<Dispatch> {
        Ok(self.ew.binary(Op::Add, len, x, y)?)
    }

    /// x [len] *= y.
    pub fn mul(&self, len: usize, x: &Buffer, y: &Buffer) -> Result<Dispatch> {
        Ok(self.ew.binary(Op::Mul, len, x, y)?)
    }

    /// out [rows, width] = silu(gate) * up, gu [rows, 2 width] the stacked gate and up's
    /// outputs: SwiGLU in one pass.
    pub fn glu(&self, rows: usize, width: usize, gu: &Buffer, out: &Buffer) -> Result<Dispatch> {
        Ok(self.ew.glu((rows, width), gu, out)?)
    }

    /// x [len] = act(x).
    pub fn act(&self, act: Act, len: usize, x: &Buffer) -> Result<Dispatch> {
        Ok(self.ew.activation(act, len, x)?)
    }

    /// out [b, a, c] = x [a, b, c].
    pub fn swap(&self, dims: (usize, usize, usize), x: &Buffer, out: &Buffer) -> Result<Dispatch> {
        Ok(self.layout.swap(dims, x, out)?)
    }

    /// out [tokens, dim] = table [ids].
    pub fn embed(&self, tokens: usize, ids: &Buffer, table: &Matrix, out: &Buffer) -> Result<Vec<Dispatch>> {
        Ok(self.layout.embed(tokens, ids, table, out)?)
    }
}

/// Records bound dispatches in order.
pub fn record(pass: &mut visattn::wgpu::ComputePass, dispatches: &[Dispatch]) {
    for d in dispatches {
        d.record(pass, &[]);
    }
}
