//! The bandwidth baselines a benchmark divides by, measured on the same device in the same run:
//! a copy (reads N bytes, writes N) and a read-only sum (reads N, writes one partial per
//! invocation), both with the VAR kernels' f32 loads and strided loop. Kernels that mostly
//! read are compared with the read, kernels that read and write with the copy.

use std::sync::Arc;

use wgpu::{Buffer, BufferBinding, BufferUsages, ComputePass};

use crate::error::{Error, Result};
use crate::kernel::PerWorkgroup::Fixed;
use crate::kernel::{Context, Dispatch, Pipeline, Storage};
use crate::shaders;
use crate::{kernel, uniform_block};

kernel! {
    /// The copy baseline (`dst = src`); items: workgroups (`len / per_workgroup`).
    pub(crate) struct CopyF32, CopyF32Inputs = "copy_f32.wgsl", shaders::COPY_F32, prelude shaders::PRELUDE;
    overrides [];
    per_workgroup Fixed(1);
    {
        params: uniform(CopyUniform),
        src: storage(f32, read),
        dst: storage(f32, read_write),
    }
}

kernel! {
    /// The read-only baseline (a partial sum per invocation); items: workgroups.
    pub(crate) struct ReadF32, ReadF32Inputs = "read_f32.wgsl", shaders::READ_F32, prelude shaders::PRELUDE;
    overrides [];
    per_workgroup Fixed(1);
    {
        params: uniform(CopyUniform),
        src: storage(f32, read),
        dst: storage(f32, read_write),
    }
}

uniform_block! {
    /// WGSL `CopyParams`: elements and elements per workgroup of the bandwidth baselines.
    pub(crate) struct CopyUniform = "CopyParams" {
        len: u32,
        per_workgroup: u32,
        pad0: u32,
        pad1: u32,
    }
}

/// Which baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineKind {
    /// `dst[i] = src[i]` (`shaders/copy_f32.wgsl`).
    Copy,
    /// A partial sum per invocation (`shaders/read_f32.wgsl`).
    Read,
}

/// Invocations per workgroup of both shaders.
const WG: u64 = 64;

impl BaselineKind {
    /// f32 elements the output needs for `len` inputs at `per_workgroup` per workgroup.
    pub fn output_len(self, len: u32, per_workgroup: u32) -> u64 {
        match self {
            BaselineKind::Copy => len as u64,
            BaselineKind::Read => (len as u64).div_ceil(per_workgroup.max(1) as u64) * WG,
        }
    }

    /// Bytes read and written by one run over `len` elements.
    pub fn bytes(self, len: u32, per_workgroup: u32) -> (u64, u64) {
        (len as u64 * 4, self.output_len(len, per_workgroup) * 4)
    }
}

/// One baseline's pipeline, from the context's cache.
pub struct Baseline {
    ctx: Context,
    kind: BaselineKind,
    pipeline: Arc<Pipeline>,
}

/// A baseline bound to a source and a destination, ready to record.
pub struct BaselineBinding {
    dispatch: Dispatch,
    /// Bytes one run reads and writes.
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl Baseline {
    pub fn new(ctx: &Context, kind: BaselineKind) -> Result<Self> {
        let pipeline = match kind {
            BaselineKind::Copy => ctx.pipeline::<CopyF32>(&[])?,
            BaselineKind::Read => ctx.pipeline::<ReadF32>(&[])?,
        };
        Ok(Self {
            ctx: ctx.clone(),
            kind,
            pipeline,
        })
    }

    pub fn kind(&self) -> BaselineKind {
        self.kind
    }

    /// Binds `len` f32 of `src` and the output (`BaselineKind::output_len` f32 of `dst`),
    /// `per_workgroup` elements per workgroup. Ranges over the device's binding limit, or too
    /// small for `len`, are errors.
    pub fn bind(&self, src: BufferBinding, dst: BufferBinding, len: u32, per_workgroup: u32) -> Result<BaselineBinding> {
        if len == 0 || per_workgroup == 0 {
            return Err(Error::Binding {
                name: "src",
                reason: format!("len {len} and per_workgroup {per_workgroup} must both be > 0"),
            });
        }
        let (read, written) = self.kind.bytes(len, per_workgroup);
        let params = self.ctx.uniform_buffer(
            "baseline params",
            &CopyUniform {
                len,
                per_workgroup,
                pad0: 0,
                pad1: 0,
            },
        );
        let (src, out) = (Storage::new(src, len as usize), Storage::new(dst, (written / 4) as usize));
        let groups = len.div_ceil(per_workgroup);
        let params_binding = params.as_entire_buffer_binding();
        let dispatch = match self.kind {
            BaselineKind::Copy => self.ctx.bind::<CopyF32>(
                &self.pipeline,
                CopyF32Inputs {
                    params: params_binding,
                    src,
                    dst: out,
                },
                groups,
            )?,
            BaselineKind::Read => self.ctx.bind::<ReadF32>(
                &self.pipeline,
                ReadF32Inputs {
                    params: params_binding,
                    src,
                    dst: out,
                },
                groups,
            )?,
        };
        Ok(BaselineBinding {
            dispatch,
            bytes_read: read,
            bytes_written: written,
        })
    }
}

impl BaselineBinding {
    /// Records one run into the caller's pass.
    pub fn record(&self, pass: &mut ComputePass) {
        self.dispatch.record(pass, &[]);
    }
}

/// A storage buffer of `bytes` for a baseline's source or output.
pub fn buffer(ctx: &Context, bytes: u64) -> Result<Buffer> {
    ctx.storage_buffer("baseline", bytes, BufferUsages::empty())
}
