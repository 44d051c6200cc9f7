//! visattn: Visual Attention Redistribution (VAR, Kang et al., ICLR 2025) on any GPU through
//! wgpu.
//!
//! - [`var`]: VAR's core: config and presets, image tokens, the CPU reference (var-spec.md in
//!   plain Rust, f64 accumulation), discovery, and on the GPU [`VarKernels`] + [`VarState`].
//! - [`kernel`]: one declaration per kernel, and the [`Context`] that builds, caches and binds
//!   them. The caller owns the device, the queue, the buffers and the encoder; bindings record
//!   into the caller's compute pass.
//! - [`attention`]: fused, split-K (decode) and unfused attention with VAR inside.
//! - [`io`]: the dump format shared by the CLI, the exporter and the demo; readback for tests.
//! - [`viz`]: heatmaps drawn by wgpu. [`host`]: host slices in and out, for tests and tools.
//!
//! Feature `gpu` (default) brings wgpu and everything that records GPU work; without it the
//! crate is the config, the CPU reference, the dump reader and discovery's ranking (what the
//! fuzz targets exercise, with no GPU stack compiled in).

#[cfg(feature = "gpu")]
pub mod attention;
#[cfg(feature = "gpu")]
pub mod baseline;
pub mod error;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub mod host;
pub mod io;
#[cfg(feature = "gpu")]
pub mod kernel;
pub mod shaders;
pub mod shape;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub mod util;
pub mod var;
#[cfg(feature = "gpu")]
pub mod viz;

// The modules most code names directly, by their short paths.
#[cfg(feature = "gpu")]
pub use attention::{fused, split, unfused};
pub use io::dump;
#[cfg(feature = "gpu")]
pub use io::readback;
pub use var::{config, discover, reference, visual};
#[cfg(feature = "gpu")]
pub use viz::heatmap;

/// The wgpu this crate is built against (hosts declaring kernels name its types through it).
#[cfg(feature = "gpu")]
pub use wgpu;

#[cfg(feature = "gpu")]
pub use attention::AttentionOptions;
#[cfg(feature = "gpu")]
pub use attention::decode::{DecodeSession, DecodeShape};
#[cfg(feature = "gpu")]
pub use attention::fused::{FusedAttention, FusedBinding, FusedInputs, FusedSettings};
#[cfg(feature = "gpu")]
pub use attention::split::{KvLayout, SplitAttention, SplitBinding, SplitInputs};
#[cfg(feature = "gpu")]
pub use attention::unfused::{UnfusedAttention, UnfusedBinding, UnfusedInputs};
pub use config::{Convention, LayerPlan, LayerRole, PRESETS, Preset, VarConfig, preset};
#[cfg(feature = "gpu")]
pub use error::scoped;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub use error::scoped_blocking;
pub use error::{Error, Result};
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub use host::{AttentionOutput, HostAttention, HostRunner, LayerOutput, SequenceInput};
#[cfg(feature = "gpu")]
pub use kernel::Context;
pub use shape::{AttnShape, FusedShape};
pub use var::MAX_SINK_DIMS;
#[cfg(feature = "gpu")]
pub use var::kernels::{KernelSettings, VarKernels};
#[cfg(feature = "gpu")]
pub use var::state::{BatchEntry, LayerBinding, Placement, Rows, SequenceShape, SinkBinding, VarState};
pub use visual::{ImageSpan, VisualTokens};
