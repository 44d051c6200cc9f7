//! visattn: Visual Attention Redistribution (VAR, Kang et al., ICLR 2025) on any GPU through
//! wgpu.
//!
//! - [`reference`]: the CPU reference, var-spec.md in plain Rust (f64 accumulation).
//! - [`VarKernels`] + [`VarState`]: the embedding API. The caller owns the device, the queue,
//!   the buffers and the encoder; visattn builds pipelines once and records into the caller's
//!   compute pass.
//! - [`HostRunner`]: host slices in and out, for tests and tools.
//! - [`dump`]: the safetensors dump format shared by the CLI, the exporter and the demo.
//!
//! Feature `gpu` (default) brings wgpu and everything that records GPU work; without it the
//! crate is the config, the CPU reference, the dump reader and discovery's ranking (what the
//! fuzz targets exercise, with no GPU stack compiled in).

#[cfg(feature = "gpu")]
pub mod baseline;
pub mod config;
pub mod discover;
pub mod dump;
pub mod error;
#[cfg(feature = "gpu")]
pub mod fused;
#[cfg(feature = "gpu")]
pub mod heatmap;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub mod host;
#[cfg(feature = "gpu")]
pub mod kernels;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub mod readback;
pub mod reference;
pub mod shaders;
pub mod shape;
#[cfg(feature = "gpu")]
pub mod split;
#[cfg(feature = "gpu")]
pub mod state;
#[cfg(feature = "gpu")]
pub mod unfused;
#[cfg(feature = "gpu")]
mod uniforms;
pub mod visual;

pub use config::{Convention, LayerPlan, LayerRole, PRESETS, Preset, VarConfig, preset};
#[cfg(feature = "gpu")]
pub use error::scoped;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub use error::scoped_blocking;
pub use error::{Error, Result};
#[cfg(feature = "gpu")]
pub use fused::{AttentionOptions, FusedAttention, FusedBinding, FusedSettings};
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub use host::{AttentionOutput, HostAttention, HostRunner, LayerOutput, SequenceInput};
#[cfg(feature = "gpu")]
pub use kernels::{KernelSettings, VarKernels, WORKGROUP_SIZE};
pub use shape::{AttnShape, FusedShape};
#[cfg(feature = "gpu")]
pub use split::{DecodeSession, SplitAttention, SplitBinding, SplitInputs};
#[cfg(feature = "gpu")]
pub use state::{BatchEntry, LayerBinding, MAX_SINK_DIMS, Placement, Rows, SequenceShape, SinkBinding, VarState};
#[cfg(feature = "gpu")]
pub use unfused::{UnfusedAttention, UnfusedBinding};
pub use visual::{ImageSpan, VisualTokens};
