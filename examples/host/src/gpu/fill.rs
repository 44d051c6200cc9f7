//! Random weights made on the device (shaders/fill.wgsl), for the bench's models that are
//! never stored.

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::Buffer;
use visattn::{Context, kernel, uniform_block};

uniform_block! {
    /// WGSL `FillParams`.
    pub struct FillParams = "FillParams" {
        words: u32,
        seed: u32,
        scale: f32,
        offset: f32,
    }
}

kernel! {
    /// out = offset + scale x uniform[-1, 1), as f32 words or f16 pairs (override PACK).
    pub struct FillKernel, FillInputs = "fill.wgsl", include_str!("../../shaders/fill.wgsl"), prelude "";
    overrides ["PACK"];
    per_workgroup PerWorkgroup::Fixed(256);
    {
        p: uniform(FillParams),
        out: storage(u32, read_write),
    }
}

pub struct Fill {
    ctx: Context,
    f32: Arc<Pipeline>,
    f16: Arc<Pipeline>,
}

impl Fill {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            f32: ctx.pipeline::<FillKernel>(&[("PACK", 0.0)])?,
            f16: ctx.pipeline::<FillKernel>(&[("PACK", 1.0)])?,
        })
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Fills the first `words` u32 of `out`: f32 values, or f16 pairs when `pairs`.
    pub fn bind(
        &self,
        out: &Buffer,
        words: usize,
        pairs: bool,
        seed: u32,
        (offset, scale): (f32, f32),
    ) -> Result<Dispatch, visattn::Error> {
        let params = self.ctx.uniform_buffer(
            "fill params",
            &FillParams {
                words: words as u32,
                seed,
                scale,
                offset,
            },
        );
        self.ctx.bind::<FillKernel>(
            if pairs { &self.f16 } else { &self.f32 },
            FillInputs {
                p: params.as_entire_buffer_binding(),
                out: Storage::new(out.as_entire_buffer_binding(), words),
            },
            words as u32,
        )
    }
}
