//! LLaMA's rotary embedding on the GPU (shaders/rope.wgsl), over a cos / sin table the host
//! computes once.

use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::{Buffer, Queue};
use visattn::{Context, kernel, uniform_block};

uniform_block! {
    /// WGSL `RopeParams`.
    pub struct RopeParams = "RopeParams" {
        heads: u32,
        tokens: u32,
        dim: u32,
        pos0: u32,
    }
}

kernel! {
    /// Rotates q or k [heads, tokens, dim] in place at positions pos0..; one invocation per pair.
    pub struct RopeKernel, RopeInputs = "rope.wgsl", include_str!("../../shaders/rope.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        p: uniform(RopeParams),
        x: storage(f32, read_write),
        cos: storage(f32, read),
        sin: storage(f32, read),
    }
}

/// HF's default RoPE table: angle(pos, i) = pos / theta^(2i / dim), [positions, dim / 2].
pub fn table(positions: usize, dim: usize, theta: f64) -> (Vec<f32>, Vec<f32>) {
    let half = dim / 2;
    let (mut c, mut s) = (Vec::with_capacity(positions * half), Vec::with_capacity(positions * half));
    for pos in 0..positions {
        for i in 0..half {
            let angle = pos as f64 / theta.powf(2.0 * i as f64 / dim as f64);
            c.push(angle.cos() as f32);
            s.push(angle.sin() as f32);
        }
    }
    (c, s)
}

pub struct Rope {
    ctx: Context,
    pipeline: Arc<Pipeline>,
    cos: Buffer,
    sin: Buffer,
    positions: usize,
    dim: usize,
}

impl Rope {
    /// The table for `positions` positions of head dim `dim`, uploaded once.
    pub fn new(ctx: &Context, queue: &Queue, positions: usize, dim: usize, theta: f64) -> Result<Self, visattn::Error> {
        let (c, s) = table(positions, dim, theta);
        Ok(Self {
            ctx: ctx.clone(),
            pipeline: ctx.pipeline::<RopeKernel>(&[])?,
            cos: crate::gpu::linear::upload(ctx, queue, "rope cos", &c)?,
            sin: crate::gpu::linear::upload(ctx, queue, "rope sin", &s)?,
            positions,
            dim,
        })
    }

    /// Binds x [heads, tokens, dim] for positions pos0..pos0 + tokens.
    pub fn bind(&self, (heads, tokens): (usize, usize), pos0: usize, x: &Buffer) -> Result<Dispatch, visattn::Error> {
        let params = self.ctx.uniform_buffer("rope params", &self.params((heads, tokens), pos0)?);
        self.bind_with(&params, (heads, tokens), x)
    }

    /// Binds x [heads, 1, dim] at a position [`Rope::set_position`] writes before each step into
    /// the returned uniform: a decode step's RoPE, bound once.
    pub fn bind_step(&self, heads: usize, x: &Buffer) -> Result<(Dispatch, Buffer), visattn::Error> {
        let params = self.ctx.uniform_buffer("rope step params", &self.params((heads, 1), 0)?);
        Ok((self.bind_with(&params, (heads, 1), x)?, params))
    }

    /// Moves a [`Rope::bind_step`] binding to position `pos`.
    pub fn set_position(&self, queue: &Queue, params: &Buffer, heads: usize, pos: usize) -> Result<(), visattn::Error> {
        queue.write_buffer(params, 0, bytemuck::bytes_of(&self.params((heads, 1), pos)?));
        Ok(())
    }

    fn params(&self, (heads, tokens): (usize, usize), pos0: usize) -> Result<RopeParams, visattn::Error> {
        if pos0 + tokens > self.positions {
            return Err(visattn::Error::Shape(format!(
                "positions {pos0}..{} past the rotary table's {}",
                pos0 + tokens,
                self.positions
            )));
        }
        Ok(RopeParams {
            heads: heads as u32,
            tokens: tokens as u32,
            dim: self.dim as u32,
            pos0: pos0 as u32,
        })
    }

    fn bind_with(&self, params: &Buffer, (heads, tokens): (usize, usize), x: &Buffer) -> Result<Dispatch, visattn::Error> {
        self.ctx.bind::<RopeKernel>(
            &self.pipeline,
            RopeInputs {
                p: params.as_entire_buffer_binding(),
                x: Storage::new(x.as_entire_buffer_binding(), heads * tokens * self.dim),
                cos: Storage::whole(&self.cos),
                sin: Storage::whole(&self.sin),
            },
            (heads * tokens * self.dim / 2) as u32,
        )
    }
}
