//! Moving values without arithmetic: the first-two-axes swap between tokens-first and
//! heads-first layouts (shaders/swap.wgsl) and the embedding lookup (shaders/embed.wgsl).

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::Buffer;
use visattn::{Context, kernel, uniform_block};

use super::matrix::{LOAD_F16, LOAD_F32, LOAD_PACKED, Matrix, WeightFormat};

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
        rows: u32,
        first: u32,
    }
}

kernel! {
    /// out [b, a, c] = x [a, b, c], 4 outputs per invocation.
    pub struct SwapKernel, SwapInputs = "swap.wgsl", include_str!("../../shaders/swap.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(256);
    {
        p: uniform(SwapParams),
        x: storage(f32, read),
        out: storage(f32, read_write),
    }
}

/// One declaration per weight format of the table, as the linear kernel's.
macro_rules! embed_kernel {
    ($name:ident, $inputs:ident, $file:literal, $elem:tt, $prelude:expr) => {
        kernel! {
            /// out [tokens, dim] = w [ids - first, dim] for the ids in one row chunk of the table.
            pub struct $name, $inputs = $file, include_str!("../../shaders/embed.wgsl"), prelude $prelude;
            overrides [];
            per_workgroup PerWorkgroup::Fixed(256);
            {
                p: uniform(EmbedParams),
                ids: storage(u32, read),
                w: storage($elem, read),
                out: storage(f32, read_write),
            }
        }
    };
}

embed_kernel!(EmbedKernel, EmbedInputs, "embed.wgsl", f32, LOAD_F32);
embed_kernel!(EmbedF16Kernel, EmbedF16Inputs, "embed.f16.wgsl", f16, LOAD_F16);
embed_kernel!(EmbedPackedKernel, EmbedPackedInputs, "embed.packed.wgsl", u32, LOAD_PACKED);

pub struct Layout {
    ctx: Context,
    swap: Arc<Pipeline>,
    embed: Arc<Pipeline>,
    format: WeightFormat,
}

impl Layout {
    /// The swap, and the lookup for tables of `format`.
    pub fn new(ctx: &Context, format: WeightFormat) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            swap: ctx.pipeline::<SwapKernel>(&[])?,
            embed: match format {
                WeightFormat::F32 => ctx.pipeline::<EmbedKernel>(&[])?,
                WeightFormat::F16 => ctx.pipeline::<EmbedF16Kernel>(&[])?,
                WeightFormat::F16Packed => ctx.pipeline::<EmbedPackedKernel>(&[])?,
            },
            format,
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

    /// out [tokens, dim] = table [ids, dim] for `tokens` ids (u32): one dispatch per row chunk
    /// of the table, each writing the rows whose id it holds.
    pub fn embed(&self, tokens: usize, ids: &Buffer, table: &Matrix, out: &Buffer) -> Result<Vec<Dispatch>, visattn::Error> {
        if table.format != self.format {
            return Err(visattn::Error::Binding {
                name: "w",
                reason: format!("a {} table for the {} kernel", table.format.name(), self.format.name()),
            });
        }
        let dim = table.cols;
        table
            .chunks
            .iter()
            .map(|chunk| {
                let params = self.ctx.uniform_buffer(
                    "embed params",
                    &EmbedParams {
                        tokens: tokens as u32,
                        dim: dim as u32,
                        rows: chunk.rows as u32,
                        first: chunk.row0 as u32,
                    },
                );
                macro_rules! bind_as {
                    ($k:ty, $i:ident) => {
                        self.ctx.bind::<$k>(
                            &self.embed,
                            $i {
                                p: params.as_entire_buffer_binding(),
                                ids: Storage::new(ids.as_entire_buffer_binding(), tokens),
                                w: Storage::new(chunk.buffer.as_entire_buffer_binding(), table.elements(chunk)),
                                out: Storage::new(out.as_entire_buffer_binding(), tokens * dim),
                            },
                            (tokens * dim) as u32,
                        )
                    };
                }
                match self.format {
                    WeightFormat::F32 => bind_as!(EmbedKernel, EmbedInputs),
                    WeightFormat::F16 => bind_as!(EmbedF16Kernel, EmbedF16Inputs),
                    WeightFormat::F16Packed => bind_as!(EmbedPackedKernel, EmbedPackedInputs),
                }
            })
            .collect()
    }
}
