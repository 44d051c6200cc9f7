//! Moving values without arithmetic: the first-two-axes swap between tokens-first and
//! heads-first layouts (shaders/swap.wgsl) and the embedding lookup (shaders/embed.wgsl).

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::Buffer;
use visattn::{Context, kernel, uniform_block};

use super::matrix::{ChunkStore, Matrix};

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
        by8: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
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

super::matrix::weight_kernel! {
    /// out [tokens, dim] = w [ids - first, dim] for the ids in one row chunk of the table; one
    /// variant per weight format, as the linear kernel's.
    pub struct EmbedKernel, EmbedInputs, EmbedVariant = include_str!("../../shaders/embed.wgsl"), "embed", buffer_prelude;
    overrides [];
    per_workgroup PerWorkgroup::Fixed(512);
    {
        p: uniform(EmbedParams),
        ids: storage(u32, read),
        w: storage(elem, read),
        out: storage(f32, read_write),
    }
}

pub struct Layout {
    ctx: Context,
    swap: Arc<Pipeline>,
}

impl Layout {
    /// The swap; the lookup's variant for each table's format is built on first use (cached
    /// by the context).
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            swap: ctx.pipeline::<SwapKernel>(&[])?,
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
    /// of the table, each writing the rows whose id it holds; 8 values per load8 where rows are
    /// whole groups of 8.
    pub fn embed(&self, tokens: usize, ids: &Buffer, table: &Matrix, out: &Buffer) -> Result<Vec<Dispatch>, visattn::Error> {
        self.embed_by(tokens, ids, table, out, table.cols.is_multiple_of(8))
    }

    /// [`Self::embed`] with the reads chosen: `by8` (rows of whole groups of 8) through load8,
    /// else value by value through load_w (--check-kernels checks both).
    pub fn embed_by(&self, tokens: usize, ids: &Buffer, table: &Matrix, out: &Buffer, by8: bool) -> Result<Vec<Dispatch>, visattn::Error> {
        if by8 && !table.cols.is_multiple_of(8) {
            return Err(visattn::Error::Binding {
                name: "w",
                reason: format!("rows of {} values read 8 at a time", table.cols),
            });
        }
        let pipeline = self.ctx.pipeline_variant::<EmbedKernel>(table.format.into(), &[])?;
        let dim = table.cols;
        table
            .chunks
            .iter()
            .map(|chunk| {
                let ChunkStore::Buffer(buffer) = &chunk.store else {
                    return Err(visattn::Error::Binding {
                        name: "w",
                        reason: "the embedding lookup reads a table in buffers, this one is in textures".into(),
                    });
                };
                let params = self.ctx.uniform_buffer(
                    "embed params",
                    &EmbedParams {
                        tokens: tokens as u32,
                        dim: dim as u32,
                        rows: chunk.rows as u32,
                        first: chunk.row0 as u32,
                        by8: by8 as u32,
                        pad0: 0,
                        pad1: 0,
                        pad2: 0,
                    },
                );
                self.ctx.bind::<EmbedKernel>(
                    &pipeline,
                    EmbedInputs {
                        p: params.as_entire_buffer_binding(),
                        ids: Storage::new(ids.as_entire_buffer_binding(), tokens),
                        w: Storage::new(buffer.as_entire_buffer_binding(), table.elements(chunk)),
                        out: Storage::new(out.as_entire_buffer_binding(), tokens * dim),
                    },
                    (tokens * dim) as u32,
                )
            })
            .collect()
    }
}
