//! out = x W^T + b on the GPU (shaders/linear.wgsl), W a [`Matrix`] of any weight format in
//! row chunks.

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::{self, Buffer, BufferUsages};
use visattn::{Context, uniform_block};

use super::matrix::{Matrix, WeightFormat};

uniform_block! {
    /// WGSL `LinearParams`.
    pub struct LinearParams = "LinearParams" {
        n: u32,
        m: u32,
        k: u32,
        bias: u32,
        ldo: u32,
        col0: u32,
        pad0: u32,
        pad1: u32,
    }
}

super::matrix::weight_kernel! {
    /// out [n, ldo] at col0.. = x [n, k] W [m, k]^T + b, 16 x 16 output tiles; one variant per
    /// weight format (W's element type and `load_w` differ).
    pub struct LinearKernel, LinearInputs, LinearVariant = include_str!("../../shaders/linear.wgsl"), "linear";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(LinearParams),
        x: storage(f32, read),
        w: storage(elem, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

super::matrix::weight_kernel! {
    /// out [1, ldo] at col0.. = x [1, k] W [m, k]^T + b: the matrix-vector product of a decode
    /// step, 4 rows per workgroup of 64; one variant per weight format.
    pub struct LinearVecKernel, LinearVecInputs, LinearVecVariant = include_str!("../../shaders/linear_vec.wgsl"), "linear_vec";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(VEC_ROWS as u32);
    {
        p: uniform(LinearParams),
        x: storage(f32, read),
        w: storage(elem, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

/// Rows of W per workgroup of the matrix-vector kernel.
const VEC_ROWS: usize = 4;

const TILE: usize = 16;

/// The matmul of every linear layer: the kernel variant of each matrix's weight format,
/// built on first use and cached by the context.
pub struct Matmul {
    ctx: Context,
}

impl Matmul {
    pub fn new(ctx: &Context) -> Self {
        Self { ctx: ctx.clone() }
    }

    /// The kernel for matrices of `format` (an f16 one needs a device with SHADER_F16).
    pub fn pipeline(&self, format: WeightFormat) -> Result<Arc<Pipeline>, visattn::Error> {
        self.ctx.pipeline_variant::<LinearKernel>(format.into(), &[])
    }

    /// Binds x [n, w.cols], w [m, k], an optional bias [m] and out [n, m]: one dispatch per row
    /// chunk of w, each writing its columns of out. One row of x (a decode step) goes through
    /// the matrix-vector kernel, more through the tiled matmul.
    pub fn bind(&self, n: usize, x: &Buffer, w: &Matrix, b: Option<&Buffer>, out: &Buffer) -> Result<Vec<Dispatch>, visattn::Error> {
        let (m, k) = (w.rows, w.cols);
        w.chunks
            .iter()
            .map(|chunk| {
                let params = self.ctx.uniform_buffer(
                    "linear params",
                    &LinearParams {
                        n: n as u32,
                        m: chunk.rows as u32,
                        k: k as u32,
                        bias: b.is_some() as u32,
                        ldo: m as u32,
                        col0: chunk.row0 as u32,
                        pad0: 0,
                        pad1: 0,
                    },
                );
                let (p, x, wb, bb, o) = (
                    params.as_entire_buffer_binding(),
                    Storage::new(x.as_entire_buffer_binding(), n * k),
                    Storage::new(chunk.buffer.as_entire_buffer_binding(), w.elements(chunk)),
                    Storage::new(b.unwrap_or(x).as_entire_buffer_binding(), if b.is_some() { m } else { 1 }),
                    Storage::new(out.as_entire_buffer_binding(), n * m),
                );
                if n == 1 {
                    let pipeline = self.ctx.pipeline_variant::<LinearVecKernel>(w.format.into(), &[])?;
                    let inputs = LinearVecInputs {
                        p,
                        x,
                        w: wb,
                        b: bb,
                        out: o,
                    };
                    self.ctx.bind::<LinearVecKernel>(&pipeline, inputs, chunk.rows as u32)
                } else {
                    let pipeline = self.pipeline(w.format)?;
                    let inputs = LinearInputs {
                        p,
                        x,
                        w: wb,
                        b: bb,
                        out: o,
                    };
                    let tiles = (n.div_ceil(TILE) * chunk.rows.div_ceil(TILE)) as u32;
                    self.ctx.bind::<LinearKernel>(&pipeline, inputs, tiles)
                }
            })
            .collect()
    }
}

/// A storage buffer holding `data`.
pub fn upload(ctx: &Context, queue: &wgpu::Queue, name: &'static str, data: &[f32]) -> Result<Buffer, visattn::Error> {
    let b = ctx.storage_buffer(name, (data.len() * 4) as u64, BufferUsages::empty())?;
    queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    Ok(b)
}
