//! out = x W^T + b on the GPU (shaders/linear.wgsl).

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::{self, Buffer, BufferUsages};
use visattn::{Context, kernel, uniform_block};

uniform_block! {
    /// WGSL `LinearParams`.
    pub struct LinearParams = "LinearParams" {
        n: u32,
        m: u32,
        k: u32,
        bias: u32,
    }
}

kernel! {
    /// out [n, m] = x [n, k] W [m, k]^T + b [m], 16 x 16 output tiles.
    pub struct LinearKernel, LinearInputs = "linear.wgsl", include_str!("../shaders/linear.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(LinearParams),
        x: storage(f32, read),
        w: storage(f32, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

const TILE: usize = 16;

pub struct Linear {
    ctx: Context,
    pipeline: Arc<Pipeline>,
}

impl Linear {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            pipeline: ctx.pipeline::<LinearKernel>(&[])?,
        })
    }

    /// Binds x [n, k], w [m, k], an optional bias [m] and out [n, m].
    pub fn bind(
        &self,
        (n, m, k): (usize, usize, usize),
        x: &Buffer,
        w: &Buffer,
        b: Option<&Buffer>,
        out: &Buffer,
    ) -> Result<Dispatch, visattn::Error> {
        let params = self.ctx.uniform_buffer(
            "linear params",
            &LinearParams {
                n: n as u32,
                m: m as u32,
                k: k as u32,
                bias: b.is_some() as u32,
            },
        );
        let tiles = (n.div_ceil(TILE) * m.div_ceil(TILE)) as u32;
        self.ctx.bind::<LinearKernel>(
            &self.pipeline,
            LinearInputs {
                p: params.as_entire_buffer_binding(),
                x: Storage::new(x.as_entire_buffer_binding(), n * k),
                w: Storage::new(w.as_entire_buffer_binding(), m * k),
                b: Storage::new(b.unwrap_or(x).as_entire_buffer_binding(), if b.is_some() { m } else { 1 }),
                out: Storage::new(out.as_entire_buffer_binding(), n * m),
            },
            tiles,
        )
    }
}

/// A storage buffer holding `data`.
pub fn upload(ctx: &Context, queue: &wgpu::Queue, name: &'static str, data: &[f32]) -> Result<Buffer, visattn::Error> {
    let b = ctx.storage_buffer(name, (data.len() * 4) as u64, BufferUsages::empty())?;
    queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    Ok(b)
}
