//! LLaMA's RMSNorm on the GPU (shaders/rms_norm.wgsl).

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
    /// out [rows, dim] = RMSNorm(x) * w, one workgroup per row.
    pub struct RmsNormKernel, RmsNormInputs = "rms_norm.wgsl", include_str!("../shaders/rms_norm.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(NormParams),
        x: storage(f32, read),
        w: storage(f32, read),
        out: storage(f32, read_write),
    }
}

pub struct RmsNorm {
    ctx: Context,
    pipeline: Arc<Pipeline>,
}

pub struct RmsNormBinding {
    pub dispatch: Dispatch,
    _params: Buffer,
}

impl RmsNorm {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            pipeline: ctx.pipeline::<RmsNormKernel>(&[])?,
        })
    }

    /// Binds x [rows, dim], w [dim] and out [rows, dim].
    pub fn bind(
        &self,
        (rows, dim): (usize, usize),
        eps: f64,
        x: &Buffer,
        w: &Buffer,
        out: &Buffer,
    ) -> Result<RmsNormBinding, visattn::Error> {
        let params = self.ctx.uniform_buffer(
            "rms_norm params",
            &NormParams {
                rows: rows as u32,
                dim: dim as u32,
                eps: eps as f32,
                pad0: 0,
            },
        );
        let dispatch = self.ctx.bind::<RmsNormKernel>(
            &self.pipeline,
            RmsNormInputs {
                p: params.as_entire_buffer_binding(),
                x: Storage::new(x.as_entire_buffer_binding(), rows * dim),
                w: Storage::new(w.as_entire_buffer_binding(), dim),
                out: Storage::new(out.as_entire_buffer_binding(), rows * dim),
            },
            rows as u32,
        )?;
        Ok(RmsNormBinding { dispatch, _params: params })
    }
}
