//! VAR's core: the config and presets, the image tokens, the CPU reference (the spec in code),
//! sink-dimension discovery, and on the GPU the per-sequence state and its two kernels. The
//! constants the reference and the kernels must agree on live here, once.

#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub(crate) mod autotune;
pub mod config;
pub mod discover;
#[cfg(feature = "gpu")]
pub(crate) mod kernels;
pub mod reference;
#[cfg(feature = "gpu")]
pub(crate) mod staging;
#[cfg(feature = "gpu")]
pub(crate) mod state;
pub mod visual;

/// The per-visual-token epsilon of section 2's sink ratio.
pub const VIS_EPS: f64 = 1e-6;
/// The RMS epsilon of section 1.
pub const RMS_EPS: f64 = 1e-6;
/// Section 3's guard on the visual non-sink mass.
pub const GUARD: f64 = 1e-12;

/// Token class bits of the GPU `classes` buffer (WGSL `CLASS_*` in common.wgsl).
pub const CLASS_IMAGE: u32 = 1;
pub const CLASS_SINK: u32 = 2;
/// The token's tile of [`KEY_TILE`] keys holds an image token (the fused kernel's runs).
pub const CLASS_IMAGE_TILE: u32 = 4;
/// Keys per tile of the fused attention kernel (`BC` in attention_var.wgsl).
pub const KEY_TILE: usize = 16;

use crate::error::{Error, Result};

/// Refuses NaN and infinities, naming the tensor and the first bad index.
pub fn check_finite(tensor: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            tensor: tensor.to_string(),
            index,
            value: data[index],
        }),
    }
}

/// The most sink dimensions a config may name on the GPU (the presets use at most 3).
pub const MAX_SINK_DIMS: usize = 64;
