//! visattn: Visual Attention Redistribution (VAR, Kang et al., ICLR 2025) on any GPU through
//! wgpu.
//!
//! - [`reference`]: the CPU reference, var-spec.md in plain Rust (f64 accumulation).
//! - [`VarKernels`] + [`VarState`]: the embedding API. The caller owns the device, the queue,
//!   the buffers and the encoder; visattn builds pipelines once and records into the caller's
//!   compute pass.
//! - [`HostRunner`]: host slices in and out, for tests and tools.
//! - [`dump`]: the safetensors dump format shared by the CLI, the exporter and the demo.

pub mod config;
pub mod discover;
pub mod dump;
pub mod error;
pub mod fused;
#[cfg(not(target_arch = "wasm32"))]
pub mod host;
pub mod kernels;
#[cfg(not(target_arch = "wasm32"))]
pub mod readback;
pub mod reference;
pub mod shaders;
pub mod shape;
pub mod state;
pub mod unfused;
mod uniforms;
pub mod visual;

pub use config::{Convention, LayerPlan, LayerRole, PRESETS, Preset, VarConfig, preset};
pub use error::{Error, Result};
pub use fused::{AttentionOptions, FusedAttention, FusedBinding, FusedSettings, FusedShape};
#[cfg(not(target_arch = "wasm32"))]
pub use host::{AttentionOutput, HostAttention, HostRunner, LayerOutput, SequenceInput};
pub use kernels::{KernelSettings, VarKernels, WORKGROUP_SIZE};
pub use shape::AttnShape;
pub use unfused::{UnfusedAttention, UnfusedBinding};
pub use state::{BatchEntry, LayerBinding, Placement, MAX_SINK_DIMS, Rows, SequenceShape, SinkBinding, VarState};
pub use visual::{ImageSpan, VisualTokens};
