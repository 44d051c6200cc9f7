//! out = x W^T + b on the GPU (shaders/linear.wgsl), W an f32 or f16 [`Matrix`] in row chunks.

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::{self, Buffer, BufferUsages};
use visattn::{Context, kernel, uniform_block};

use super::matrix::{LOAD_F16, LOAD_F32, LOAD_PACKED, Matrix, WeightFormat};

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

kernel! {
    /// out [n, ldo] at col0.. = x [n, k] W [m, k]^T + b, 16 x 16 output tiles; one variant per
    /// weight format (W's element type and `load_w` differ).
    pub struct LinearKernel, LinearInputs, LinearVariant = include_str!("../../shaders/linear.wgsl");
    variants {
        F32 = "linear.wgsl", prelude LOAD_F32, elem f32;
        F16 = "linear.f16.wgsl", prelude LOAD_F16, elem f16;
        Packed = "linear.packed.wgsl", prelude LOAD_PACKED, elem u32;
    }
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

super::matrix::variant_per_format!(LinearVariant);

const TILE: usize = 16;

/// The matmul of every linear layer, for one weight format.
pub struct Matmul {
    ctx: Context,
    format: WeightFormat,
    pipeline: Arc<Pipeline>,
}

impl Matmul {
    /// The kernel for matrices of `format` (an f16 one needs a device with SHADER_F16).
    pub fn new(ctx: &Context, format: WeightFormat) -> Result<Self, visattn::Error> {
        let pipeline = ctx.pipeline_variant::<LinearKernel>(format.into(), &[])?;
        Ok(Self {
            ctx: ctx.clone(),
            format,
            pipeline,
        })
    }

    /// Binds x [n, w.cols], w [m, k], an optional bias [m] and out [n, m]: one dispatch per row
    /// chunk of w, each writing its columns of out.
    pub fn bind(&self, n: usize, x: &Buffer, w: &Matrix, b: Option<&Buffer>, out: &Buffer) -> Result<Vec<Dispatch>, visattn::Error> {
        if w.format != self.format {
            return Err(visattn::Error::Binding {
                name: "w",
                reason: format!("a {} matrix for the {} kernel", w.format.name(), self.format.name()),
            });
        }
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
                let tiles = (n.div_ceil(TILE) * chunk.rows.div_ceil(TILE)) as u32;
                self.ctx.bind::<LinearKernel>(
                    &self.pipeline,
                    LinearInputs {
                        p: params.as_entire_buffer_binding(),
                        x: Storage::new(x.as_entire_buffer_binding(), n * k),
                        w: Storage::new(chunk.buffer.as_entire_buffer_binding(), w.elements(chunk)),
                        b: Storage::new(b.unwrap_or(x).as_entire_buffer_binding(), if b.is_some() { m } else { 1 }),
                        out: Storage::new(out.as_entire_buffer_binding(), n * m),
                    },
                    tiles,
                )
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
