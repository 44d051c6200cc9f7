//! The two VAR kernels of one device and the settings they are specialised on: the
//! [`KernelSettings`] of the row kernel and the [`Phi`] mode of the sink kernel (which the
//! state takes from here: the dependency runs state -> kernels).

use std::sync::Arc;

use super::decls::{SinkScore, VarRows, VarRowsVariant};
use crate::error::{Error, Result};
use crate::kernel::{Context, Pipeline, WG};

/// The compiled VAR kernels (sink scoring, row selection and redistribution) of one
/// [`Context`]. Pipelines depend only on kernel settings, never on tensor shapes (those travel
/// in uniforms), so one `VarKernels` serves every sequence and every layer; cloning it is cheap.
/// [`VarKernels::new`] builds every specialisation the bindings may pick (into the context's
/// cache, which bindings read them from).
#[derive(Debug, Clone)]
pub struct VarKernels {
    pub(crate) settings: KernelSettings,
    ctx: Context,
}

/// The longest sequence the packed row kernel holds (8 KiB of workgroup memory, 2 bits a key).
pub const MAX_PACKED_TOKENS: usize = 16 * 2048;

/// The kernel settings pipelines are specialised on (WGSL `override` constants). Shapes never
/// are: they travel in uniforms. [`KernelSettings::autotune`] measures the fastest on the
/// adapter at hand; [`KernelSettings::for_adapter`] is the no-probe default. `to_string` /
/// `parse` give a cache key's text form (`lanes=4,keys=4,staging=none`), so a host measures once
/// per adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelSettings {
    /// Invocations per row of the row kernel and per token of the sink kernel (a power of two,
    /// 1..=64): 64 / lanes rows (tokens) share a workgroup. 64 for GPUs; CPU-emulated adapters
    /// (lavapipe, SwiftShader, WARP) pay per barrier and run faster with fewer.
    pub lanes_per_row: u32,
    /// Consecutive keys one row-kernel lane takes per step, in groups of 4 (4, 8 or 16): more
    /// work per loop trip, which CPU-emulated adapters pay for per invocation.
    pub keys_per_lane: u32,
    /// Copy the rows the row kernel reads into an rgba32float texture first and load them from
    /// there ([`LayerBinding::encode`](crate::LayerBinding::encode) records the copy; `record`
    /// into a pass cannot, and reads the buffer). CPU adapters fetch texels about 5x faster than
    /// they load storage (lavapipe: one lane at a time, a branch and a bounds check per float);
    /// on GPUs the copy is work the kernel did not need.
    pub stage_in_texture: bool,
}

impl Default for KernelSettings {
    fn default() -> Self {
        Self {
            lanes_per_row: WG,
            keys_per_lane: 4,
            stage_in_texture: false,
        }
    }
}

const CPU_LANES: u32 = 4;
const CPU_KEYS: u32 = 4;
/// The most keys per lane a pipeline is specialised on.
pub const MAX_KEYS_PER_LANE: u32 = 16;

impl KernelSettings {
    /// What suits an adapter without measuring: 4 lanes of 4 keys a row and the rows staged in
    /// a texture on CPU adapters (a host that only `record`s into passes compiles the staged
    /// kernel for nothing there); 64 lanes of 4 keys elsewhere. [`KernelSettings::autotune`]
    /// measures instead.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        match info.device_type {
            wgpu::DeviceType::Cpu => Self {
                lanes_per_row: CPU_LANES,
                keys_per_lane: CPU_KEYS,
                stage_in_texture: true,
            },
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
        if !self.keys_per_lane.is_power_of_two() || !(4..=MAX_KEYS_PER_LANE).contains(&self.keys_per_lane) {
            return Err(Error::Config {
                field: "keys_per_lane",
                value: self.keys_per_lane.to_string(),
                reason: format!("must be 4, 8 or {MAX_KEYS_PER_LANE}"),
            });
        }
        Ok(())
    }

    /// Rows one row-kernel workgroup covers.
    pub fn rows_per_workgroup(&self) -> u32 {
        WG / self.lanes_per_row
    }

    /// The text form `to_string` writes (`lanes=4,keys=4,staging=none`), checked; `staging=`
    /// may be left out (none: the form before it existed).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::Config {
            field: "kernel settings",
            value: text.to_string(),
            reason,
        };
        let (mut lanes, mut keys, mut staging) = (None, None, None);
        for part in text.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(format!("'{part}' is not key=value")))?;
            let (key, value) = (key.trim(), value.trim());
            let number = || value.parse::<u32>().map_err(|_| bad(format!("'{value}' is not a number")));
            let once = |seen: bool| if seen { Err(bad(format!("{key}= given twice"))) } else { Ok(()) };
            match key {
                "lanes" => {
                    once(lanes.is_some())?;
                    lanes = Some(number()?)
                }
                "keys" => {
                    once(keys.is_some())?;
                    keys = Some(number()?)
                }
                "staging" => {
                    once(staging.is_some())?;
                    staging = Some(match value {
                        "texture" => true,
                        "none" => false,
                        other => return Err(bad(format!("staging '{other}' is not texture or none"))),
                    })
                }
                other => return Err(bad(format!("unknown setting '{other}' (lanes, keys, staging)"))),
            }
        }
        let settings = Self {
            lanes_per_row: lanes.ok_or_else(|| bad("no lanes=".into()))?,
            keys_per_lane: keys.ok_or_else(|| bad("no keys=".into()))?,
            stage_in_texture: staging.unwrap_or(false),
        };
        settings.validate()?;
        Ok(settings)
    }
}

impl std::fmt::Display for KernelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let staging = if self.stage_in_texture { "texture" } else { "none" };
        write!(f, "lanes={},keys={},staging={staging}", self.lanes_per_row, self.keys_per_lane)
    }
}

impl std::str::FromStr for KernelSettings {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Which tokens get a phi score (the classes are the same either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phi {
    /// Every token's phi: what reports, heatmaps and dumps show.
    #[default]
    All,
    /// Only what the classes need: the sink kernel stops reading a token's hidden state at a
    /// checkpoint (after 64, 256, 1024, ... values) once the part read proves phi <= tau (the
    /// sum of squares only grows), and writes [`PHI_NOT_SCORED`] for it. Sinks and tokens near
    /// tau read their whole row and get the phi and class of [`Phi::All`], bit for bit. What
    /// engines want: most tokens are ruled out after a few percent of their row.
    SinksOnly,
}

/// The phi [`Phi::SinksOnly`] writes for a token it ruled out early (its phi is <= tau).
pub const PHI_NOT_SCORED: f32 = -1.0;

impl VarKernels {
    /// Both pipelines specialised on `settings`, from the context's cache. wgpu reports a shader
    /// the device refuses through its uncaptured-error handler; [`VarKernels::new_checked`]
    /// returns it as an [`Error`] instead.
    pub fn new(ctx: &Context, settings: KernelSettings) -> Result<Self> {
        let kernels = Self::on_demand(ctx, settings)?;
        kernels.sink(Phi::All)?;
        kernels.sink(Phi::SinksOnly)?;
        kernels.rows(VarRowsVariant::Scalar, false)?;
        kernels.rows(VarRowsVariant::Scalar, true)?;
        kernels.rows(VarRowsVariant::Vec4, true)?;
        if settings.stage_in_texture {
            kernels.rows(VarRowsVariant::Staged, true)?;
        }
        Ok(kernels)
    }

    /// Pipelines built at first use (the autotune probe compiles only what it records).
    pub(crate) fn on_demand(ctx: &Context, settings: KernelSettings) -> Result<Self> {
        settings.validate()?;
        Ok(Self {
            settings,
            ctx: ctx.clone(),
        })
    }

    fn lanes(&self) -> (&'static str, f64) {
        ("LANES", self.settings.lanes_per_row as f64)
    }

    fn keys(&self) -> (&'static str, f64) {
        ("KEYS", self.settings.keys_per_lane as f64)
    }

    /// Sink scoring; [`Phi::SinksOnly`] stops reading tokens that cannot be sinks.
    pub(crate) fn sink(&self, phi: Phi) -> Result<Arc<Pipeline>> {
        let early = if phi == Phi::SinksOnly { 1.0 } else { 0.0 };
        self.ctx.pipeline::<SinkScore>(&[self.lanes(), ("EARLY", early)])
    }

    /// The row kernel: `variant` over f32 probabilities, over vec4 ones (K and the sequence's
    /// first key multiples of 4) or loading them from a texture copy of the rows; `packed`: a
    /// sequence's classes packed in workgroup memory (sequences of at most
    /// [`MAX_PACKED_TOKENS`] keys, bound alone or as whole sequences of a batch: one sequence a
    /// workgroup; the vec4 and staged variants are only built packed).
    pub(crate) fn rows(&self, variant: VarRowsVariant, packed: bool) -> Result<Arc<Pipeline>> {
        let packed = ("PACKED", if packed { 1.0 } else { 0.0 });
        self.ctx.pipeline_variant::<VarRows>(variant, &[self.lanes(), self.keys(), packed])
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
