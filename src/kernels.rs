//! Pipelines and bind group layouts, built once per device and shared by every sequence.

use std::num::NonZeroU64;

use wgpu::{BindGroupLayout, BindGroupLayoutEntry, BindingType, BufferBindingType, ComputePipeline, Device, ShaderStages};

use crate::error::{Error, Result};
use crate::shaders;
use crate::uniforms::{CONFIG_SIZE, RANGE_SIZE, SEQ_SIZE};

/// The compiled VAR kernels of one device. Pipelines depend only on kernel settings, never
/// on tensor shapes (those travel in uniforms), so one `VarKernels` serves every sequence
/// and every layer; cloning it is cheap (wgpu handles are reference-counted).
#[derive(Debug, Clone)]
pub struct VarKernels {
    pub(crate) settings: KernelSettings,
    pub(crate) sink_layout: BindGroupLayout,
    pub(crate) rows_layout: BindGroupLayout,
    pub(crate) sink_pipeline: ComputePipeline,
    pub(crate) rows_pipeline: ComputePipeline,
}

/// Threads per workgroup of both kernels (the WGSL `WG` constant).
pub const WORKGROUP_SIZE: u32 = 64;

/// The kernel settings pipelines are specialised on (WGSL `override` constants). Shapes never
/// are: they travel in uniforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelSettings {
    /// Invocations per row of the row kernel and per token of the sink kernel (a power of two,
    /// 1..=64): 64 / lanes rows (tokens) share a workgroup. 64 for GPUs; CPU-emulated adapters (lavapipe, SwiftShader, WARP) pay per
    /// barrier and run faster with fewer.
    pub lanes_per_row: u32,
}

impl Default for KernelSettings {
    fn default() -> Self {
        Self { lanes_per_row: 64 }
    }
}

impl KernelSettings {
    /// What suits an adapter: fewer lanes per row on CPU adapters (measured on lavapipe with
    /// `examples/bench.rs --lanes`), 64 elsewhere.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        match info.device_type {
            wgpu::DeviceType::Cpu => Self { lanes_per_row: CPU_LANES },
            _ => Self::default(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !self.lanes_per_row.is_power_of_two() || self.lanes_per_row > WORKGROUP_SIZE {
            return Err(Error::Config {
                field: "lanes_per_row",
                value: self.lanes_per_row.to_string(),
                reason: format!("must be a power of two in 1..={WORKGROUP_SIZE}"),
            });
        }
        Ok(())
    }

    /// Rows one row-kernel workgroup covers.
    pub fn rows_per_workgroup(&self) -> u32 {
        WORKGROUP_SIZE / self.lanes_per_row
    }
}

const CPU_LANES: u32 = 4;

/// A uniform buffer entry for a compute bind group layout (`size`: the struct's bytes).
pub(crate) fn uniform(binding: u32, size: u64, dynamic: bool) -> BindGroupLayoutEntry {
    buffer_entry(binding, ShaderStages::COMPUTE, BufferBindingType::Uniform, size, dynamic)
}

/// A storage buffer entry of f32/u32 elements.
pub(crate) fn storage(binding: u32, read_only: bool) -> BindGroupLayoutEntry {
    storage_sized(binding, read_only, 4)
}

/// A storage buffer entry whose element is `element` bytes.
pub(crate) fn storage_sized(binding: u32, read_only: bool, element: u64) -> BindGroupLayoutEntry {
    buffer_entry(
        binding,
        ShaderStages::COMPUTE,
        BufferBindingType::Storage { read_only },
        element,
        false,
    )
}

/// A buffer entry of any stage; `min_size` is what the shader's declaration needs.
pub(crate) fn buffer_entry(
    binding: u32,
    visibility: ShaderStages,
    ty: BufferBindingType,
    min_size: u64,
    dynamic: bool,
) -> BindGroupLayoutEntry {
    BindGroupLayoutEntry {
        binding,
        visibility,
        ty: BindingType::Buffer {
            ty,
            has_dynamic_offset: dynamic,
            min_binding_size: NonZeroU64::new(min_size),
        },
        count: None,
    }
}

/// The `main` entry point of a WGSL compute shader with an explicit one-group layout,
/// specialised on `constants` (its `override`s).
pub(crate) fn compute_pipeline(
    device: &Device,
    name: &str,
    source: &str,
    layout: &BindGroupLayout,
    constants: &[(&str, f64)],
) -> ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(name),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            ..Default::default()
        },
        cache: None,
    })
}

impl VarKernels {
    /// Builds both pipelines with the default (GPU) settings. wgpu reports a failure here
    /// through the device's uncaptured error handler; use [`VarKernels::new_checked`] to get it
    /// as an [`Error`] instead.
    pub fn new(device: &Device) -> Self {
        Self::build(device, KernelSettings::default())
    }

    /// Builds both pipelines specialised on `settings`.
    pub fn with_settings(device: &Device, settings: KernelSettings) -> Result<Self> {
        settings.validate()?;
        Ok(Self::build(device, settings))
    }

    pub fn settings(&self) -> KernelSettings {
        self.settings
    }

    fn build(device: &Device, settings: KernelSettings) -> Self {
        let sink_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("visattn sink_score"),
            entries: &[
                uniform(0, CONFIG_SIZE, true),
                uniform(1, RANGE_SIZE, false),
                storage(2, true),
                storage(3, true),
                storage(4, true),
                storage(5, false),
                storage(6, false),
                storage_sized(7, true, SEQ_SIZE),
            ],
        });
        let rows_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("visattn var_rows"),
            entries: &[
                uniform(0, CONFIG_SIZE, true),
                uniform(1, RANGE_SIZE, false),
                storage(2, false),
                storage(3, true),
                storage(4, false),
                storage_sized(5, true, SEQ_SIZE),
            ],
        });
        let lanes = [("LANES", settings.lanes_per_row as f64)];
        let sink_pipeline = compute_pipeline(device, "visattn sink_score", shaders::SINK_SCORE, &sink_layout, &lanes);
        let rows_pipeline = compute_pipeline(device, "visattn var_rows", shaders::VAR_ROWS, &rows_layout, &lanes);
        Self {
            settings,
            sink_layout,
            rows_layout,
            sink_pipeline,
            rows_pipeline,
        }
    }

    /// [`VarKernels::new`] inside a validation error scope: a shader or layout the device
    /// refuses comes back as [`Error::Gpu`] rather than reaching the uncaptured-error handler.
    pub async fn new_checked(device: &Device, settings: KernelSettings) -> Result<Self> {
        settings.validate()?;
        crate::error::scoped(device, || Self::build(device, settings)).await
    }
}

/// A 2-D grid of `n` workgroups within the per-dimension limit; kernels rebuild the flat
/// index as `x + y * num_workgroups.x` and skip the overshoot.
pub(crate) fn grid(n: u32, max_per_dim: u32) -> (u32, u32) {
    let x = n.min(max_per_dim).max(1);
    (x, n.div_ceil(x))
}

#[cfg(test)]
mod tests {
    use super::grid;
    #[test]
    fn grid_covers_and_stays_in_limits() {
        assert_eq!(grid(1, 65535), (1, 1));
        assert_eq!(grid(65535, 65535), (65535, 1));
        assert_eq!(grid(65536, 65535), (65535, 2));
        let (x, y) = grid(20_480_000, 65535);
        assert!(x <= 65535 && y <= 65535 && (x as u64 * y as u64) >= 20_480_000);
    }
}
