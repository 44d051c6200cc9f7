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
    /// workgroup per row; with RESIDUAL, x += out first (the residual add in the same pass).
    pub struct NormKernel, NormInputs = "norm.wgsl", include_str!("../../shaders/norm.wgsl"), prelude "";
    overrides ["LAYER", "RESIDUAL"];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(NormParams),
        x: storage(f32, read_write),
        w: storage(f32, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

/// RMSNorm and LayerNorm, each alone and after the residual add.
pub struct Normalize {
    ctx: Context,
    /// By (LayerNorm, residual add first).
    pipelines: [[Arc<Pipeline>; 2]; 2],
}

impl Normalize {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        let p =
            |layer: bool, residual: bool| ctx.pipeline::<NormKernel>(&[("LAYER", layer as u8 as f64), ("RESIDUAL", residual as u8 as f64)]);
        Ok(Self {
            ctx: ctx.clone(),
            pipelines: [[p(false, false)?, p(false, true)?], [p(true, false)?, p(true, true)?]],
        })
    }

    /// Binds x [rows, dim], w [dim] and out [rows, dim]: with a bias b [dim] the LayerNorm,
    /// without it the RMSNorm; where `residual`, x += out first (out holds the addend) and out
    /// = norm(x) (x and out distinct buffers).
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        (rows, dim): (usize, usize),
        eps: f64,
        x: &Buffer,
        w: &Buffer,
        b: Option<&Buffer>,
        out: &Buffer,
        residual: bool,
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
            &self.pipelines[b.is_some() as usize][residual as usize],
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
