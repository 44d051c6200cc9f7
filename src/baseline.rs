//! The bandwidth baselines a benchmark divides by, measured on the same device in the same run:
//! a copy (reads N bytes, writes N) and a read-only sum (reads N, writes one partial per
//! invocation), both with the VAR kernels' f32 loads and strided loop. Kernels that mostly
//! read are compared with the read, kernels that read and write with the copy.

use wgpu::util::DeviceExt;
use wgpu::{BindGroup, BindGroupLayout, Buffer, BufferBinding, BufferUsages, ComputePass, ComputePipeline, Device};

use crate::error::{Error, Result};
use crate::kernels::{compute_pipeline, grid, storage, uniform};
use crate::state::check_binding;

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

/// One baseline's pipeline, built once per device.
pub struct Baseline {
    kind: BaselineKind,
    layout: BindGroupLayout,
    pipeline: ComputePipeline,
}

/// A baseline bound to a source and a destination, ready to record.
pub struct BaselineBinding {
    group: BindGroup,
    grid: (u32, u32),
    /// Bytes one run reads and writes.
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl Baseline {
    pub fn new(device: &Device, kind: BaselineKind) -> Self {
        let (name, source) = match kind {
            BaselineKind::Copy => ("copy_f32", crate::shaders::COPY_F32),
            BaselineKind::Read => ("read_f32", crate::shaders::READ_F32),
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &[uniform(0, 16, false), storage(1, true), storage(2, false)],
        });
        let pipeline = compute_pipeline(device, name, source, &layout, &[]);
        Self { kind, layout, pipeline }
    }

    pub fn kind(&self) -> BaselineKind {
        self.kind
    }

    /// Binds `len` f32 of `src` and the output (`BaselineKind::output_len` f32 of `dst`),
    /// `per_workgroup` elements per workgroup. Ranges over the device's binding limit, or too
    /// small for `len`, are errors.
    pub fn bind(&self, device: &Device, src: BufferBinding, dst: BufferBinding, len: u32, per_workgroup: u32) -> Result<BaselineBinding> {
        if len == 0 || per_workgroup == 0 {
            return Err(Error::Binding {
                name: "src",
                reason: format!("len {len} and per_workgroup {per_workgroup} must both be > 0"),
            });
        }
        let (read, written) = self.kind.bytes(len, per_workgroup);
        for (name, b, need) in [("src", &src, read), ("dst", &dst, written)] {
            let size = check_binding(device, name, b)?;
            if size < need {
                return Err(Error::Binding {
                    name,
                    reason: format!("{size} bytes, need {need} for {len} elements"),
                });
            }
        }
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("baseline params"),
            contents: bytemuck::cast_slice(&[len, per_workgroup, 0, 0]),
            usage: BufferUsages::UNIFORM,
        });
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("baseline"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Buffer(src),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::Buffer(dst),
                },
            ],
        });
        let max = device.limits().max_compute_workgroups_per_dimension;
        Ok(BaselineBinding {
            group,
            grid: grid(len.div_ceil(per_workgroup), max),
            bytes_read: read,
            bytes_written: written,
        })
    }

    /// Records one run into the caller's pass.
    pub fn record(&self, pass: &mut ComputePass, binding: &BaselineBinding) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.group, &[]);
        pass.dispatch_workgroups(binding.grid.0, binding.grid.1, 1);
    }
}

/// A storage buffer of `bytes` for a baseline's source or output.
pub fn buffer(device: &Device, bytes: u64) -> Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("baseline"),
        size: bytes.max(4),
        usage: BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}
