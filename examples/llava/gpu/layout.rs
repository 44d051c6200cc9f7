//! Moving values without arithmetic: the first-two-axes swap between tokens-first and
//! heads-first layouts (shaders/swap.wgsl) and the embedding lookup (shaders/embed.wgsl).

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::Buffer;
use visattn::{Context, kernel, uniform_block};

uniform_block! {
    /// WGSL `SwapParams`.
    pub struct SwapParams = "SwapParams" {
        a: u32,
        b: u32,
        c: u32,
        pad0: u32,
    }
}

uniform_block! {
    /// WGSL `EmbedParams`.
    pub struct EmbedParams = "EmbedParams" {
        tokens: u32,
        dim: u32,
        vocab: u32,
        pad0: u32,
    }
}

kernel! {
    /// out [b, a, c] = x [a, b, c], 4 outputs per invocation.
    pub struct SwapKernel, SwapInputs = "swap.wgsl", include_str!("../shaders/swap.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(256);
    {
        p: uniform(SwapParams),
        x: storage(f32, read),
        out: storage(f32, read_write),
    }
}

kernel! {
    /// out [tokens, dim] = table [ids, dim], 4 outputs per invocation.
    pub struct EmbedKernel, EmbedInputs = "embed.wgsl", include_str!("../shaders/embed.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(256);
    {
        p: uniform(EmbedParams),
        ids: storage(u32, read),
        table: storage(f32, read),
        out: storage(f32, read_write),
    }
}

pub struct Layout {
    ctx: Context,
    swap: Arc<Pipeline>,
    embed: Arc<Pipeline>,
}

impl Layout {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            swap: ctx.pipeline::<SwapKernel>(&[])?,
            embed: ctx.pipeline::<EmbedKernel>(&[])?,
        })
    }

    /// out [b, a, c] = x [a, b, c].
    pub fn swap(&self, (a, b, c): (usize, usize, usize), x: &Buffer, out: &Buffer) -> Result<Dispatch, visattn::Error> {
        let params = self.ctx.uniform_buffer(
            "swap params",
            &SwapParams {
                a: a as u32,
                b: b as u32,
                c: c as u32,
                pad0: 0,
            },
        );
        let len = a * b * c;
        self.ctx.bind::<SwapKernel>(
            &self.swap,
            SwapInputs {
                p: params.as_entire_buffer_binding(),
                x: Storage::new(x.as_entire_buffer_binding(), len),
                out: Storage::new(out.as_entire_buffer_binding(), len),
            },
            len as u32,
        )
    }

    /// out [tokens, dim] = table [ids, dim] for `tokens` ids (u32) of a [vocab, dim] table.
    pub fn embed(&self, (tokens, dim, vocab): (usize, usize, usize), ids: &Buffer, table: &Buffer, out: &Buffer) -> Result<Dispatch, visattn::Error> {
        let params = self.ctx.uniform_buffer(
            "embed params",
            &EmbedParams {
                tokens: tokens as u32,
                dim: dim as u32,
                vocab: vocab as u32,
                pad0: 0,
            },
        );
        self.ctx.bind::<EmbedKernel>(
            &self.embed,
            EmbedInputs {
                p: params.as_entire_buffer_binding(),
                ids: Storage::new(ids.as_entire_buffer_binding(), tokens),
                table: Storage::new(table.as_entire_buffer_binding(), vocab * dim),
                out: Storage::new(out.as_entire_buffer_binding(), tokens * dim),
            },
            (tokens * dim) as u32,
        )
    }
}
