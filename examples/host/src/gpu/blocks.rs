//! The model's blocks, one function each, as HF's modeling files write them: the language
//! model's attention projections and output, MLP and head (shared by prefill and decode: the
//! row count is the only difference), the vision layer and the projector. Each binds its
//! operations once over the buffers it is given and returns the dispatches; the attention
//! itself (visattn's fused kernel at prefill, its split-K session at decode) is the caller's.

use visattn::kernel::Dispatch;
use visattn::wgpu::Buffer;

use super::elementwise::Act;
use super::kernels::Kernels;
use super::weights::{Gpu, Norm, buffer};
use crate::config::{TextConfig, VisionConfig};
use crate::error::{Error, Result};
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
    /// Rows the MLP multiplies at a time: all of them where their stacked gate and up outputs
    /// fit one binding, else blocks of this many (a long prefill: [`record_mlp_in_blocks`]).
    pub mlp_rows: usize,
    /// The MLP's stacked gate and up outputs [mlp_rows, 2 intermediate] (each row the gate's,
    /// then up's), and silu(gate) * up [mlp_rows, intermediate].
    pub gate_up: Buffer,
    pub glu: Buffer,
    /// [mlp_rows, D]: a block's normed rows in, its MLP output out (None: one block).
    pub mlp_block: Option<Buffer>,
}

impl TextActs {
    pub fn new(k: &Kernels, c: &TextConfig, rows: usize) -> Result<Self> {
        let (d, q, kv) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let ctx = &k.ctx;
        let per_row = (2 * c.intermediate * 4) as u64;
        let mlp_rows = rows.min((ctx.max_binding() / per_row).max(1) as usize);
        Ok(Self {
            rows,
            x: buffer(ctx, "hidden", rows * d)?,
            h: buffer(ctx, "normed", rows * d.max(q))?,
            q: buffer(ctx, "q", rows * q)?,
            k: buffer(ctx, "k", rows * kv)?,
            v: buffer(ctx, "v", rows * kv)?,
            o: buffer(ctx, "o", rows * q)?,
            rows_first: (rows > 1).then(|| buffer(ctx, "rows first", rows * q)).transpose()?,
            mlp_rows,
            gate_up: buffer(ctx, "gate and up", mlp_rows * 2 * c.intermediate)?,
            glu: buffer(ctx, "glu", mlp_rows * c.intermediate)?,
            mlp_block: (mlp_rows < rows).then(|| buffer(ctx, "mlp block", mlp_rows * d)).transpose()?,
        })
    }
}

/// The first layer's input norm of the embeddings, h = norm(x), which runs alone; every later
/// input norm, and the final norm, end the layer before ([`mlp`]'s `next`). (A model without
/// layers gets its final norm here.)
pub fn input_norm(k: &Kernels, c: &TextConfig, m: &TextModel<Gpu>, a: &TextActs) -> Result<Dispatch> {
    let norm = m.layers.first().map_or(&m.norm, |first| &first.input_norm);
    k.norm(a.rows, c.rms_eps, &a.x, norm, &a.h)
}

/// LlamaAttention's inputs from the normed h: q, k and v heads first, then `rope` (the
/// caller's RoPE dispatches over q and k, whose positions it owns).
pub fn attention_in(k: &Kernels, c: &TextConfig, w: &TextLayer<Gpu>, a: &TextActs, rope: &[Dispatch]) -> Result<Vec<Dispatch>> {
    let (n, hd) = (a.rows, c.head_dim);
    let mut out = Vec::new();
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

/// LlamaAttention's output: o back to rows, the output projection, then the residual add and
/// the post-attention norm in one pass (x += o_proj(o), h = norm(x)).
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
    out.push(k.add_norm(n, c.rms_eps, &a.x, &w.post_norm, &a.h)?);
    Ok(out)
}

/// LlamaMLP on the normed h and its residual, x += down(silu(gate(h)) * up(h)), gate and up as
/// one matmul of their stacked rows, ending with `next` in the same pass as the add: h =
/// next(x), the next layer's input norm or, after the last layer, the model's final norm
/// (what the LM head reads).
///
/// All rows at once; where their activations do not fit one binding (`a.mlp_block`),
/// [`record_mlp_in_blocks`].
pub fn mlp(k: &Kernels, c: &TextConfig, w: &TextLayer<Gpu>, a: &TextActs, next: &Norm) -> Result<Vec<Dispatch>> {
    if a.mlp_block.is_some() {
        return Err(Error::Input(format!(
            "the MLP of {} rows runs in blocks of {} (record_mlp_in_blocks)",
            a.rows, a.mlp_rows
        )));
    }
    let mut out = mlp_product(k, c, w, a, a.rows, &a.h)?;
    out.push(k.add_norm(a.rows, c.rms_eps, &a.x, next, &a.h)?);
    Ok(out)
}

/// The MLP's product on `rows` rows of h (normed), into h: gate and up as one matmul, SwiGLU,
/// down.
fn mlp_product(k: &Kernels, c: &TextConfig, w: &TextLayer<Gpu>, a: &TextActs, rows: usize, h: &Buffer) -> Result<Vec<Dispatch>> {
    let mut out = k.linear(rows, h, &w.gate_up, &a.gate_up)?;
    out.push(k.glu(rows, c.intermediate, &a.gate_up, &a.glu)?);
    out.extend(k.linear(rows, &a.glu, &w.down, h)?);
    Ok(out)
}

/// [`mlp`] for a prefill whose [rows, 2 intermediate] gate and up outputs are over the binding
/// limit (LLaMA-7B's past 1524 tokens under WebGPU's 128 MiB): each block of
/// [`TextActs::mlp_rows`] rows copied into `block` (`a.mlp_block`), multiplied there and
/// copied back, then the residual add and `next` over every row; recorded into `enc`, a pass a
/// block.
pub fn record_mlp_in_blocks(
    k: &Kernels,
    c: &TextConfig,
    (w, next): (&TextLayer<Gpu>, &Norm),
    a: &TextActs,
    block: &Buffer,
    enc: &mut visattn::wgpu::CommandEncoder,
) -> Result<()> {
    let row_bytes = (c.hidden * 4) as u64;
    for r0 in (0..a.rows).step_by(a.mlp_rows) {
        let rows = a.mlp_rows.min(a.rows - r0);
        let bytes = rows as u64 * row_bytes;
        enc.copy_buffer_to_buffer(&a.h, r0 as u64 * row_bytes, block, 0, bytes);
        super::kernels::record(
            &mut enc.begin_compute_pass(&Default::default()),
            &mlp_product(k, c, w, a, rows, block)?,
        );
        enc.copy_buffer_to_buffer(block, 0, &a.h, r0 as u64 * row_bytes, bytes);
    }
    k.add_norm(a.rows, c.rms_eps, &a.x, next, &a.h)?
        .record(&mut enc.begin_compute_pass(&Default::default()), &[]);
    Ok(())
}

/// The norm after layer `l` ([`mlp`]'s `next`): layer l + 1's input norm, the final norm
/// after the last.
pub fn next_norm(m: &TextModel<Gpu>, l: usize) -> &Norm {
    m.layers.get(l + 1).map_or(&m.norm, |next| &next.input_norm)
}

/// The token embeddings of `rows` ids into x.
pub fn embed(k: &Kernels, m: &TextModel<Gpu>, rows: usize, ids: &Buffer, x: &Buffer) -> Result<Vec<Dispatch>> {
    k.embed(rows, ids, &m.embed, x)
}

/// The LM head of h [rows, D], which the last layer's [`mlp`] left normed, into logits
/// [rows, V].
pub fn head(k: &Kernels, m: &TextModel<Gpu>, rows: usize, h: &Buffer, logits: &Buffer) -> Result<Vec<Dispatch>> {
    k.linear(rows, h, &m.lm_head, logits)
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
    after.push(k.add_norm(n, eps, &a.x, &w.norm2, &a.h)?);
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
