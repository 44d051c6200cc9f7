//! The next token on the device (shaders/sample.wgsl): a decode step picks its token from its
//! logits where they are, greedy or top-p, and reads back 8 bytes (the token, and whether a
//! logit was not finite) instead of the vocabulary's row.

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::{Buffer, Queue};
use visattn::{Context, kernel, uniform_block};

use crate::sampling::Draw;

uniform_block! {
    /// WGSL `SampleParams`.
    pub struct SampleParams = "SampleParams" {
        n: u32,
        offset: u32,
        greedy: u32,
        inv_temperature: f32,
        top_p: f32,
        u: f32,
        pad0: u32,
        pad1: u32,
    }
}

kernel! {
    /// out[0] = the token sampling.rs's `pick` draws from the row (the argmax, total_cmp's
    /// order, ties to the lowest, where greedy), out[1] = 1 where a value is NaN or infinite.
    pub struct SampleKernel, SampleInputs = "sample.wgsl", include_str!("../../shaders/sample.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(SampleParams),
        v: storage(u32, read),
        out: storage(u32, read_write),
    }
}

/// The sampling kernel's pipeline.
pub struct Sample {
    ctx: Context,
    pipeline: Arc<Pipeline>,
}

/// A row bound to the kernel: its draw set before each submit.
pub struct SampleStep {
    pub dispatch: Dispatch,
    params: Buffer,
    n: u32,
    offset: u32,
}

impl Sample {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        Ok(Self {
            ctx: ctx.clone(),
            pipeline: ctx.pipeline::<SampleKernel>(&[])?,
        })
    }

    /// Binds values `offset .. offset + n` of `row` (f32) and `out` (two u32): one workgroup,
    /// greedy until [`SampleStep::set`] says otherwise.
    pub fn bind(&self, row: &Buffer, offset: usize, n: usize, out: &Buffer) -> Result<SampleStep, visattn::Error> {
        if n == 0 {
            return Err(visattn::Error::Shape("sampling from a row of no values".into()));
        }
        let (n32, offset32) = match (u32::try_from(n), u32::try_from(offset)) {
            (Ok(n), Ok(o)) if o.checked_add(n).is_some() => (n, o),
            _ => return Err(visattn::Error::Shape(format!("a row of {n} values at {offset}: past u32 indices"))),
        };
        let params = self.ctx.uniform_buffer("sample params", &params(n32, offset32, &Draw::GREEDY));
        let dispatch = self.ctx.bind::<SampleKernel>(
            &self.pipeline,
            SampleInputs {
                p: params.as_entire_buffer_binding(),
                v: Storage::new(row.as_entire_buffer_binding(), offset + n),
                out: Storage::new(out.as_entire_buffer_binding(), 2),
            },
            1,
        )?;
        Ok(SampleStep {
            dispatch,
            params,
            n: n32,
            offset: offset32,
        })
    }
}

impl SampleStep {
    /// The draw of the next submit that records this step.
    pub fn set(&self, queue: &Queue, draw: &Draw) {
        queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params(self.n, self.offset, draw)));
    }
}

fn params(n: u32, offset: u32, draw: &Draw) -> SampleParams {
    SampleParams {
        n,
        offset,
        greedy: draw.is_greedy() as u32,
        // Infinite below f32's range (the kernel weighs the top 1 all the same); the smallest
        // normal above it, where 0 would make every weight 1 exactly as the sampler's.
        inv_temperature: if draw.is_greedy() {
            0.0
        } else {
            ((1.0 / draw.temperature()) as f32).max(f32::MIN_POSITIVE)
        },
        top_p: draw.top_p() as f32,
        u: draw.u() as f32,
        pad0: 0,
        pad1: 0,
    }
}
