//! LLaMA's RMSNorm and CLIP's LayerNorm on the GPU (shaders/norm.wgsl).

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::Buffer;
use visattn::{Context, kernel, uniform_block};

uniform_block! {
    /// WGSL `NormParams`.
    pub struct NormParams = "NormParams" {
        rows: u32,
        dim: u32,
        eps: f32,
        pad0: u32,
    }
}

kernel! {
    /// out [rows, dim] = RMSNorm(x) * w or LayerNorm(x) * w + b (override LAYER), one
    /// workgroup per row.
    pub struct NormKernel, NormInputs = "norm.wgsl", include_str!("../../shaders/norm.wgsl"), prelude "";
    overrides ["LAYER"];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(NormParams),
        x: storage(f32, read),
        w: storage(f32, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

/// RMSNorm and LayerNorm.
pub struct Normalize {
    ctx: Context,
    rms: Arc<Pipeline>,
    layer: Arc<Pipeline>,
}

impl Normalize {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            rms: ctx.pipeline::<NormKernel>(&[("LAYER", 0.0)])?,
            layer: ctx.pipeline::<NormKernel>(&[("LAYER", 1.0)])?,
        })
    }

    /// Binds x [rows, dim], w [dim] and out [rows, dim]: with a bias b [dim] the LayerNorm,
    /// without it the RMSNorm.
    pub fn bind(
        &self,
        (rows, dim): (usize, usize),
        eps: f64,
        x: &Buffer,
        w: &Buffer,
        b: Option<&Buffer>,
        out: &Buffer,
    ) -> Result<Dispatch, visattn::Error> {
        let params = self.ctx.uniform_buffer(
            "norm params",
            &NormParams {
                rows: rows as u32,
                dim: dim as u32,
                eps: eps as f32,
                pad0: 0,
            },
        );
        self.ctx.bind::<NormKernel>(
            if b.is_some() { &self.layer } else { &self.rms },
            NormInputs {
                p: params.as_entire_buffer_binding(),
                x: Storage::new(x.as_entire_buffer_binding(), rows * dim),
                w: Storage::new(w.as_entire_buffer_binding(), dim),
                b: Storage::new(b.unwrap_or(w).as_entire_buffer_binding(), dim),
                out: Storage::new(out.as_entire_buffer_binding(), rows * dim),
            },
            rows as u32,
        )
    }
}
