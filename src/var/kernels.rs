//! The two VAR kernels of one device and the settings they are specialised on.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::kernel::declarations::{SinkScore, VarRows};
use crate::kernel::{Context, Pipeline, WG};

/// The compiled VAR kernels (sink scoring, row selection and redistribution) of one
/// [`Context`]. Pipelines depend only on kernel settings, never on tensor shapes (those travel
/// in uniforms), so one `VarKernels` serves every sequence and every layer; cloning it is cheap.
#[derive(Debug, Clone)]
pub struct VarKernels {
    pub(crate) settings: KernelSettings,
    pub(crate) sink: Arc<Pipeline>,
    pub(crate) rows: Arc<Pipeline>,
}

/// The kernel settings pipelines are specialised on (WGSL `override` constants). Shapes never
/// are: they travel in uniforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelSettings {
    /// Invocations per row of the row kernel and per token of the sink kernel (a power of two,
    /// 1..=64): 64 / lanes rows (tokens) share a workgroup. 64 for GPUs; CPU-emulated adapters
    /// (lavapipe, SwiftShader, WARP) pay per barrier and run faster with fewer.
    pub lanes_per_row: u32,
}

impl Default for KernelSettings {
    fn default() -> Self {
        Self { lanes_per_row: WG }
    }
}

const CPU_LANES: u32 = 4;

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
        if !self.lanes_per_row.is_power_of_two() || self.lanes_per_row > WG {
            return Err(Error::Config {
                field: "lanes_per_row",
                value: self.lanes_per_row.to_string(),
                reason: format!("must be a power of two in 1..={WG}"),
            });
        }
        Ok(())
    }

    /// Rows one row-kernel workgroup covers.
    pub fn rows_per_workgroup(&self) -> u32 {
        WG / self.lanes_per_row
    }
}

impl VarKernels {
    /// Both pipelines specialised on `settings`, from the context's cache. wgpu reports a shader
    /// the device refuses through its uncaptured-error handler; [`VarKernels::new_checked`]
    /// returns it as an [`Error`] instead.
    pub fn new(ctx: &Context, settings: KernelSettings) -> Result<Self> {
        settings.validate()?;
        let lanes = [("LANES", settings.lanes_per_row as f64)];
        Ok(Self {
            settings,
            sink: ctx.pipeline::<SinkScore>(&lanes)?,
            rows: ctx.pipeline::<VarRows>(&lanes)?,
        })
    }

    /// [`VarKernels::new`] inside a validation error scope.
    pub async fn new_checked(ctx: &Context, settings: KernelSettings) -> Result<Self> {
        settings.validate()?;
        crate::error::scoped(ctx.device(), || Self::new(ctx, settings)).await?
    }

    pub fn settings(&self) -> KernelSettings {
        self.settings
    }
}
