//! VAR's core: the config and presets, the image tokens, the CPU reference (the spec in code),
//! sink-dimension discovery, and on the GPU the per-sequence state and its two kernels. The
//! constants the reference and the kernels must agree on live here, once.

#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub(crate) mod autotune;
pub mod config;
#[cfg(feature = "gpu")]
pub(crate) mod decls;
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

/// How far a row of stored probabilities may sum from 1, by the dtype it was stored in. A
/// correctly rounded softmax in f32 sums to 1 within a few units of 2^-24 whatever K (each
/// value's error is relative); storing it rounds each value by up to 2^-11 (f16) or 2^-8
/// (bf16) relative, so its sum by up to that much. Measured worst rows: the real f32 dumps in
/// shared/data 2.5e-7 (minilm-real 2.1e-7, the official fixture 2.5e-7); the same rounded to
/// f16 3.4e-4, to bf16 2.7e-3. Each tolerance is 2.5x to 4x its dtype's bound, and f32's
/// also admits an f16 model's probabilities saved as f32 (3.4e-4 measured).
pub const ROW_SUM_TOLERANCE_F32: f64 = 1e-3;
pub const ROW_SUM_TOLERANCE_F16: f64 = 2e-3;
pub const ROW_SUM_TOLERANCE_BF16: f64 = 1e-2;

/// Refuses rows of `probs` [H, Q, K] of layer `layer` that are not probability rows: a negative
/// (or NaN) entry, or a sum (in f64) off 1 by more than `tolerance` (all-zero rows included),
/// naming layer, head and row. VAR's masses (V >= 0.2, the sink ratio) and its redistribution
/// (which keeps the row's sum) mean nothing on rows that are not distributions.
pub fn check_probabilities(layer: usize, probs: &[f32], shape: crate::shape::AttnShape, tolerance: f64) -> Result<()> {
    shape.check_probs(probs.len())?;
    let k = shape.keys;
    for (r, row) in probs.chunks_exact(k).enumerate() {
        let (head, row_index) = (r / shape.queries, r % shape.queries);
        let bad = |reason: String| Error::NotProbabilities {
            layer,
            head,
            row: row_index,
            reason,
        };
        // `!(v >= 0)` also catches NaN; -0.0 passes.
        if let Some(j) = row.iter().position(|&v| !(v >= 0.0)) {
            return Err(bad(format!("key {j} holds {}", row[j])));
        }
        let sum: f64 = row.iter().map(|&v| v as f64).sum();
        if !((sum - 1.0).abs() <= tolerance) {
            return Err(bad(format!(
                "it sums to {sum:.6}, not 1 within {tolerance:e} (the tolerance of its dtype)"
            )));
        }
    }
    Ok(())
}

/// The most sink dimensions a config may name on the GPU (the presets use at most 3).
pub const MAX_SINK_DIMS: usize = 64;
