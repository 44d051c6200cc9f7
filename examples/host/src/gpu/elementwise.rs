//! Elementwise kernels: the residual add and product in place (shaders/binary.wgsl), the
//! activations in place (shaders/activation.wgsl) and SwiGLU over the stacked gate and up
//! (shaders/glu.wgsl).

use crate::error::{Error, Result};
use std::sync::Arc;

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::Buffer;
use visattn::{Context, kernel, uniform_block};

uniform_block! {
    /// WGSL `Len`.
    pub struct LenParams = "Len" {
        len: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

kernel! {
    /// x = x + y or x * y (override OP), 4 elements per invocation.
    pub struct BinaryKernel, BinaryInputs = "binary.wgsl", include_str!("../../shaders/binary.wgsl"), prelude "";
    overrides ["OP"];
    per_workgroup PerWorkgroup::Fixed(256);
    {
        p: uniform(LenParams),
        x: storage(f32, read_write),
        y: storage(f32, read),
    }
}

uniform_block! {
    /// WGSL `GluParams`.
    pub struct GluParams = "GluParams" {
        len: u32,
        width: u32,
        pad0: u32,
        pad1: u32,
    }
}

kernel! {
    /// out [rows, width] = silu(gu[:, :width]) * gu[:, width:], 4 outputs per invocation.
    pub struct GluKernel, GluInputs = "glu.wgsl", include_str!("../../shaders/glu.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(256);
    {
        p: uniform(GluParams),
        gu: storage(f32, read),
        out: storage(f32, read_write),
    }
}

kernel! {
    /// x = act(x) (override ACT), 4 elements per invocation.
    pub struct ActivationKernel, ActivationInputs = "activation.wgsl", include_str!("../../shaders/activation.wgsl"), prelude "";
    overrides ["ACT"];
    per_workgroup PerWorkgroup::Fixed(256);
    {
        p: uniform(LenParams),
        x: storage(f32, read_write),
    }
}

/// The binary operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add = 0,
    Mul = 1,
}

/// The activations, by HF's `hidden_act` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    QuickGelu = 0,
    Gelu = 1,
    Silu = 2,
}

impl Act {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Act::QuickGelu),
            "gelu" => Ok(Act::Gelu),
            "silu" => Ok(Act::Silu),
            other => Err(Error::Config(format!("activation '{other}' is not implemented"))),
        }
    }
}

pub struct Elementwise {
    ctx: Context,
    binary: [Arc<Pipeline>; 2],
    activation: [Arc<Pipeline>; 3],
    glu: Arc<Pipeline>,
}

impl Elementwise {
    pub fn new(ctx: &Context) -> Result<Self, visattn::Error> {
        let b = |op: f64| ctx.pipeline::<BinaryKernel>(&[("OP", op)]);
        let a = |act: f64| ctx.pipeline::<ActivationKernel>(&[("ACT", act)]);
        Ok(Self {
            ctx: ctx.clone(),
            binary: [b(0.0)?, b(1.0)?],
            activation: [a(0.0)?, a(1.0)?, a(2.0)?],
            glu: ctx.pipeline::<GluKernel>(&[])?,
        })
    }

    fn len(&self, len: usize) -> Buffer {
        self.ctx.uniform_buffer(
            "elementwise len",
            &LenParams {
                len: len as u32,
                pad0: 0,
                pad1: 0,
                pad2: 0,
            },
        )
    }

    /// x [len] op= y [len].
    pub fn binary(&self, op: Op, len: usize, x: &Buffer, y: &Buffer) -> Result<Dispatch, visattn::Error> {
        let params = self.len(len);
        self.ctx.bind::<BinaryKernel>(
            &self.binary[op as usize],
            BinaryInputs {
                p: params.as_entire_buffer_binding(),
                x: Storage::new(x.as_entire_buffer_binding(), len),
                y: Storage::new(y.as_entire_buffer_binding(), len),
            },
            len as u32,
        )
    }

    /// out [rows, width] = silu(gate) * up of gu [rows, 2 width] (each row the gate's width
    /// values, then up's).
    pub fn glu(&self, (rows, width): (usize, usize), gu: &Buffer, out: &Buffer) -> Result<Dispatch, visattn::Error> {
        let len = rows * width;
        let params = self.ctx.uniform_buffer(
            "glu params",
            &GluParams {
                len: len as u32,
                width: width as u32,
                pad0: 0,
                pad1: 0,
            },
        );
        self.ctx.bind::<GluKernel>(
            &self.glu,
            GluInputs {
                p: params.as_entire_buffer_binding(),
                gu: Storage::new(gu.as_entire_buffer_binding(), 2 * len),
                out: Storage::new(out.as_entire_buffer_binding(), len),
            },
            len as u32,
        )
    }

    /// x [len] = act(x).
    pub fn activation(&self, act: Act, len: usize, x: &Buffer) -> Result<Dispatch, visattn::Error> {
        let params = self.len(len);
        self.ctx.bind::<ActivationKernel>(
            &self.activation[act as usize],
            ActivationInputs {
                p: params.as_entire_buffer_binding(),
                x: Storage::new(x.as_entire_buffer_binding(), len),
            },
            len as u32,
        )
    }
}
