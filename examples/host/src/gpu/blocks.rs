//! The model's blocks, one function each, as HF's modeling files write them: the language
//! model's attention projections and output, MLP and head (shared by prefill and decode: the
//! row count is the only difference), the vision layer and the projector. Each binds its
//! operations once over the buffers it is given and returns the dispatches; the attention
//! itself (visattn's fused kernel at prefill, its split-K session at decode) is the caller's.

use visattn::kernel::Dispatch;
use visattn::wgpu::Buffer;

use super::elementwise::Act;
use super::kernels::Kernels;
use super::weights::{Gpu, buffer};
use crate::config::{TextConfig, VisionConfig};
use crate::error::Result;
use crate::model::{Projector, TextLayer, TextModel, VisionLayer};

/// The language model's activations over `rows` tokens.
pub struct TextActs {
    pub rows: usize,
    /// The residual stream [rows, D].
    pub x: Buffer,
    /// Scratch [rows, max(D, H d)]: norms' outputs, projections before the residual add.
    pub h: Buffer,
    /// q [H, rows, d], k and v [Hkv, rows, d] after RoPE: heads first, as attention reads them.
    pub q: Buffer,
    pub k: Buffer,
    pub v: Buffer,
    /// The attention's output [H, rows, d].
    pub o: Buffer,
    /// [rows, H d] rows before the swap to heads first and after the swap back (None for one
    /// row, whose [1, H d] already is [H, 1, d]).
    pub rows_first: Option<Buffer>,
    /// The MLP's gate and up [rows, intermediate].
    pub gate: Buffer,
    pub up: Buffer,
}

impl TextActs {
    pub fn new(k: &Kernels, c: &TextConfig, rows: usize) -> Result<Self> {
        let (d, q, kv) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let ctx = &k.ctx;
        Ok(Self {
            rows,
            x: buffer(ctx, "hidden", rows * d)?,
            h: buffer(ctx, "normed", rows * d.max(q))?,
            q: buffer(ctx, "q", rows * q)?,
            k: buffer(ctx, "k", rows * kv)?,
            v: buffer(ctx, "v", rows * kv)?,
            o: buffer(ctx, "o", rows * q)?,
            rows_first: (rows > 1).then(|| buffer(ctx, "rows first", rows * q)).transpose()?,
            gate: buffer(ctx, "gate", rows * c.intermediate)?,
            up: buffer(ctx, "up", rows * c.intermediate)?,
        })
    }
}

/// LlamaAttention's inputs: the input norm, q, k and v heads first, then `rope` (the caller's
/// RoPE dispatches over q and k, whose positions it owns).
pub fn attention_in(k: &Kernels, c: &TextConfig, w: &TextLayer<Gpu>, a: &TextActs, rope: &[Dispatch]) -> Result<Vec<Dispatch>> {
    let (n, hd) = (a.rows, c.head_dim);
    let mut out = vec![k.norm(n, c.rms_eps, &a.x, &w.input_norm, &a.h)?];
    for (proj, heads_first, heads) in [(&w.q, &a.q, c.heads), (&w.k, &a.k, c.kv_heads), (&w.v, &a.v, c.kv_heads)] {
        match &a.rows_first {
            Some(rows) => {
                out.extend(k.linear(n, &a.h, proj, rows)?);
                out.push(k.swap((n, heads, hd), rows, heads_first)?);
            }
            None => out.extend(k.linear(n, &a.h, proj, heads_first)?),
        }
    }
    out.extend_from_slice(rope);
    Ok(out)
}

/// LlamaAttention's output: o back to rows, the output projection, the residual add.
pub fn attention_out(k: &Kernels, c: &TextConfig, w: &TextLayer<Gpu>, a: &TextActs) -> Result<Vec<Dispatch>> {
    let n = a.rows;
    let mut out = Vec::new();
    let rows = match &a.rows_first {
        Some(rows) => {
            out.push(k.swap((c.heads, n, c.head_dim), &a.o, rows)?);
            rows
        }
        None => &a.o,
    };
    out.extend(k.linear(n, rows, &w.o, &a.h)?);
    out.push(k.add(n * c.hidden, &a.x, &a.h)?);
    Ok(out)
}

/// LlamaMLP with its norm and residual: x += down(silu(gate(h)) * up(h)), h = norm(x).
pub fn mlp(k: &Kernels, c: &TextConfig, w: &TextLayer<Gpu>, a: &TextActs) -> Result<Vec<Dispatch>> {
    let (n, i) = (a.rows, c.intermediate);
    let mut out = vec![k.norm(n, c.rms_eps, &a.x, &w.post_norm, &a.h)?];
    out.extend(k.linear(n, &a.h, &w.gate, &a.gate)?);
    out.extend(k.linear(n, &a.h, &w.up, &a.up)?);
    out.push(k.silu_mul(n * i, &a.gate, &a.up)?);
    out.extend(k.linear(n, &a.gate, &w.down, &a.h)?);
    out.push(k.add(n * c.hidden, &a.x, &a.h)?);
    Ok(out)
}

/// The token embeddings of `rows` ids into x.
pub fn embed(k: &Kernels, m: &TextModel<Gpu>, rows: usize, ids: &Buffer, x: &Buffer) -> Result<Vec<Dispatch>> {
    k.embed(rows, ids, &m.embed, x)
}

/// The final norm and LM head of x [rows, D] into logits [rows, V] (h is scratch).
pub fn head(
    k: &Kernels,
    c: &TextConfig,
    m: &TextModel<Gpu>,
    rows: usize,
    (x, h): (&Buffer, &Buffer),
    logits: &Buffer,
) -> Result<Vec<Dispatch>> {
    let mut out = vec![k.norm(rows, c.rms_eps, x, &m.norm, h)?];
    out.extend(k.linear(rows, h, &m.lm_head, logits)?);
    Ok(out)
}

/// The vision tower's activations over its `n` positions.
pub struct VisionActs {
    pub n: usize,
    pub x: Buffer,
    pub h: Buffer,
    /// [n, D] rows for the projections' outputs and the attention output's swap back.
    pub rows: Buffer,
    pub q: Buffer,
    pub k: Buffer,
    pub v: Buffer,
    pub o: Buffer,
    pub f: Buffer,
}

impl VisionActs {
    pub fn new(k: &Kernels, v: &VisionConfig, n: usize) -> Result<Self> {
        let (ctx, d) = (&k.ctx, v.hidden);
        Ok(Self {
            n,
            x: buffer(ctx, "vision hidden", n * d)?,
            h: buffer(ctx, "vision normed", n * d)?,
            rows: buffer(ctx, "vision rows", n * d)?,
            q: buffer(ctx, "vision q", n * d)?,
            k: buffer(ctx, "vision k", n * d)?,
            v: buffer(ctx, "vision v", n * d)?,
            o: buffer(ctx, "vision o", n * d)?,
            f: buffer(ctx, "vision mlp", n * v.intermediate.max(d))?,
        })
    }
}

/// CLIPEncoderLayer: pre-norm attention (no mask) and a pre-norm MLP, each with its residual.
/// `attention` is the caller's binding over a's q, k, v and o.
pub fn vision_layer(
    k: &Kernels,
    v: &VisionConfig,
    w: &VisionLayer<Gpu>,
    a: &VisionActs,
    act: Act,
    attention: &visattn::PlainBinding,
    pass: &mut visattn::wgpu::ComputePass,
) -> Result<()> {
    let (n, d, eps) = (a.n, v.hidden, v.layer_norm_eps);
    let hd = d / v.heads;
    let mut before = vec![k.norm(n, eps, &a.x, &w.norm1, &a.h)?];
    for (proj, heads_first) in [(&w.q, &a.q), (&w.k, &a.k), (&w.v, &a.v)] {
        before.extend(k.linear(n, &a.h, proj, &a.rows)?);
        before.push(k.swap((n, v.heads, hd), &a.rows, heads_first)?);
    }
    super::kernels::record(pass, &before);
    attention.record(pass);
    let mut after = vec![k.swap((v.heads, n, hd), &a.o, &a.rows)?];
    after.extend(k.linear(n, &a.rows, &w.out, &a.h)?);
    after.push(k.add(n * d, &a.x, &a.h)?);
    after.push(k.norm(n, eps, &a.x, &w.norm2, &a.h)?);
    after.extend(k.linear(n, &a.h, &w.fc1, &a.f)?);
    after.push(k.act(act, n * v.intermediate, &a.f)?);
    after.extend(k.linear(n, &a.f, &w.fc2, &a.h)?);
    after.push(k.add(n * d, &a.x, &a.h)?);
    super::kernels::record(pass, &after);
    Ok(())
}

/// LlavaMultiModalProjector: linear, activation, linear, from features [tokens, vision D] into
/// out [tokens, text D] (mid is scratch [tokens, text D]).
pub fn projector(
    k: &Kernels,
    p: &Projector<Gpu>,
    act: Act,
    tokens: usize,
    (feat, mid): (&Buffer, &Buffer),
    out: &Buffer,
) -> Result<Vec<Dispatch>> {
    let mut d = k.linear(tokens, feat, &p.linear_1, mid)?;
    d.push(k.act(act, tokens * p.linear_1.out(), mid)?);
    d.extend(k.linear(tokens, mid, &p.linear_2, out)?);
    Ok(d)
}
