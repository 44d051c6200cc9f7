//! visattn: Visual Attention Redistribution (VAR, Kang et al., ICLR 2025) on any GPU through
//! wgpu.
//!
//! Every name has one public path. The embedding API sits at the root: a [`Context`] per
//! device, [`VarKernels`] and a [`VarState`] per sequence, the attention kernels
//! ([`FusedAttention`], [`SplitAttention`] + [`DecodeSession`], [`UnfusedAttention`]) and their
//! bindings, which record into the caller's compute pass; [`HostSession`] for host slices.
//! Namespaces hold the rest:
//!
//! - [`reference`]: the CPU reference, var-spec.md in plain Rust (f64 accumulation);
//!   [`discover`]: sink-dimension discovery;
//! - [`kernel`]: one declaration per kernel ([`kernel!`]), for hosts that add their own;
//!   [`shaders`]: the WGSL files;
//! - [`dump`]: the safetensors dump format shared by the CLI, the exporter and the demo;
//!   [`readback`]: buffers back to the host (tests and tools); [`heatmap`]: pictures drawn by
//!   wgpu; [`baseline`]: the bandwidth baselines of the benchmarks; [`util`]: a device for the
//!   examples and tests; [`sample`]: the synthetic prompt of the command line and the web demo.
//!
//! The source tree shows the layers: `var/` (VAR's core: config, image tokens, reference,
//! discovery, the GPU state and its kernels), `kernel/`, `attention/`, `io/`, `viz/`, `host/`.
//!
//! Feature `gpu` (default) brings wgpu and everything that records GPU work; without it the
//! crate is the config, the CPU reference, the dump reader and discovery's ranking (what the
//! fuzz targets exercise, with no GPU stack compiled in).

#[cfg(feature = "gpu")]
mod attention;
#[cfg(feature = "gpu")]
pub mod baseline;
mod error;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
mod host;
mod io;
#[cfg(feature = "gpu")]
pub mod kernel;
pub mod sample;
pub mod shaders;
mod shape;
#[cfg(feature = "gpu")]
pub mod util;
mod var;
#[cfg(feature = "gpu")]
mod viz;

pub use io::dump;
pub use io::half;
pub use io::output;
#[cfg(feature = "gpu")]
pub use io::readback;
pub use var::reference;

/// Sink-dimension discovery: which hidden dimensions carry massive activations, on which
/// tokens, and a tau that separates them (the ranking and the CPU statistics, in VAR's core),
/// and [`DimMax`](discover::DimMax), the per-dimension max phi on the GPU from a host slice
/// (the host layer: upload, record, read back).
pub mod discover {
    #[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
    pub use crate::host::discover::DimMax;
    pub use crate::var::discover::*;
}
#[cfg(feature = "gpu")]
pub use viz::font;
#[cfg(feature = "gpu")]
pub use viz::heatmap;

/// The wgpu this crate is built against (hosts declaring kernels name its types through it).
#[cfg(feature = "gpu")]
pub use wgpu;

#[cfg(feature = "gpu")]
pub use attention::decode::{DecodeSession, DecodeShape};
#[cfg(feature = "gpu")]
pub use attention::fused::{FusedAttention, FusedBinding, FusedSettings, PlainBinding, ROWS_PER_WORKGROUP};
#[cfg(feature = "gpu")]
pub use attention::split::{DEFAULT_BLOCK, KvLayout, SplitAttention, SplitBinding, SplitInputs};
#[cfg(feature = "gpu")]
pub use attention::unfused::{ProbsBinding, UnfusedAttention, UnfusedBinding};
#[cfg(feature = "gpu")]
pub use attention::{AttentionInputs, AttentionOptions};
#[cfg(feature = "gpu")]
pub use error::scoped;
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub use error::scoped_blocking;
pub use error::{Error, Result};
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub use host::{Attention, AttentionOutput, HostSession, LayerOutput, SequenceInput};
#[cfg(feature = "gpu")]
pub use kernel::context::Context;
pub use shape::{AttnShape, FusedShape, MAX_HEAD_DIM};
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub use var::autotune::{Autotune, CANDIDATES};
pub use var::config::{Convention, LayerPlan, LayerRole, PRESETS, Preset, VarConfig, preset};
#[cfg(feature = "gpu")]
pub use var::kernels::{KernelSettings, MAX_KEYS_PER_LANE, PHI_NOT_SCORED, Phi, VarKernels};
#[cfg(feature = "gpu")]
pub use var::state::{BatchEntry, LayerBinding, Placement, Rows, SequenceShape, SinkBinding, VarState};
pub use var::visual::{ImageSpan, VisualTokens};
pub use var::{CLASS_IMAGE, CLASS_IMAGE_TILE, CLASS_SINK, GUARD, KEY_TILE, MAX_SINK_DIMS, RMS_EPS, VIS_EPS, check_finite};
