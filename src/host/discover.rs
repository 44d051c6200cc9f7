//! The GPU side of sink-dimension discovery from host slices: a layer's hidden states uploaded,
//! `dim_max.wgsl` recorded (by [`crate::var::discover`]), each dimension's max phi read back.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::kernel::{Context, Pipeline};
use crate::var::check_finite;
use crate::var::discover::{bind_dim_max, dim_max_pipeline};

/// The GPU side of discovery: `dim_max.wgsl` over one layer.
pub struct DimMax {
    ctx: Context,
    pipeline: Arc<Pipeline>,
}

impl DimMax {
    pub fn new(ctx: &Context) -> Result<Self> {
        Ok(Self {
            ctx: ctx.clone(),
            pipeline: dim_max_pipeline(ctx)?,
        })
    }

    /// Max phi per dimension of hidden [T, D], computed on the GPU and read back.
    pub fn run(&self, queue: &wgpu::Queue, hidden: &[f32], dim: usize) -> Result<Vec<f32>> {
        crate::error::scoped_blocking(self.ctx.device(), || self.run_unscoped(queue, hidden, dim))?
    }

    fn run_unscoped(&self, queue: &wgpu::Queue, hidden: &[f32], dim: usize) -> Result<Vec<f32>> {
        if dim == 0 || hidden.is_empty() || hidden.len() % dim != 0 {
            return Err(Error::Shape(format!("{} values are not a [T, {dim}] matrix", hidden.len())));
        }
        check_finite("hidden_states", hidden)?;
        let ctx = &self.ctx;
        let input = ctx.storage_buffer("hidden", (hidden.len() * 4) as u64, wgpu::BufferUsages::empty())?;
        queue.write_buffer(&input, 0, bytemuck::cast_slice(hidden));
        let best = ctx.storage_buffer("best", (dim * 4) as u64, wgpu::BufferUsages::empty())?;
        let tokens = hidden.len() / dim;
        let dispatch = bind_dim_max(
            ctx,
            &self.pipeline,
            input.as_entire_buffer_binding(),
            best.as_entire_buffer_binding(),
            tokens,
            dim,
        )?;
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            dispatch.record(&mut pass, &[]);
        }
        queue.submit([encoder.finish()]);
        let bits: Vec<u32> = crate::readback::read_vec(ctx.device(), queue, &best, dim)?;
        Ok(bits.into_iter().map(f32::from_bits).collect())
    }
}
