//! The greedy token on the device (shaders/argmax.wgsl): a decode step that only needs the
//! argmax of its logits reads back 8 bytes (the index, and whether a logit was not finite)
//! instead of the vocabulary's row.

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::Buffer;
use visattn::{Context, kernel, uniform_block};

uniform_block! {
    /// WGSL `ArgmaxParams`.
    pub struct ArgmaxParams = "ArgmaxParams" {
        n: u32,
        offset: u32,
        pad0: u32,
        pad1: u32,
    }
}

kernel! {
    /// out[0] = the index of the row's largest value (total_cmp's order, ties to the lowest),
    /// out[1] = 1 where a value is NaN or infinite.
    pub struct ArgmaxKernel, ArgmaxInputs = "argmax.wgsl", include_str!("../../shaders/argmax.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(ArgmaxParams),
        v: storage(u32, read),
        out: storage(u32, read_write),
    }
}

/// The argmax kernel's pipeline.
pub struct Argmax {
    ctx: Context,
    pipeline: Arc<Pipeline>,
}

impl Argmax {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            pipeline: ctx.pipeline::<ArgmaxKernel>(&[])?,
        })
    }

    /// Binds values `offset .. offset + n` of `row` (f32) and `out` (two u32): one workgroup.
    pub fn bind(&self, row: &Buffer, offset: usize, n: usize, out: &Buffer) -> Result<Dispatch, visattn::Error> {
        let params = self.ctx.uniform_buffer(
            "argmax params",
            &ArgmaxParams {
                n: n as u32,
                offset: offset as u32,
                pad0: 0,
                pad1: 0,
            },
        );
        self.ctx.bind::<ArgmaxKernel>(
            &self.pipeline,
            ArgmaxInputs {
                p: params.as_entire_buffer_binding(),
                v: Storage::new(row.as_entire_buffer_binding(), offset + n),
                out: Storage::new(out.as_entire_buffer_binding(), 2),
            },
            1,
        )
    }
}
