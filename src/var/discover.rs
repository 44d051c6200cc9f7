//! Sink-dimension discovery: which hidden dimensions carry massive activations, on which
//! tokens, and a tau that separates them, measured relative to each token (its RMS and its
//! median |x|), never by absolute thresholds (var-spec.md section 1: small models show ratios of
//! hundreds, LLaMA thousands).

use super::RMS_EPS;
use crate::error::{Error, Result};

/// One layer's per-dimension statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDims {
    /// max over tokens of |x_t[d]| / RMS(x_t) (phi with D_sink = {d}).
    pub max_phi: Vec<f32>,
    /// max over tokens of |x_t[d]| / median_k |x_t[k]|.
    pub max_median_ratio: Vec<f32>,
}

/// The CPU reference of `dim_max.wgsl`, plus the median ratios: hidden [T, D].
pub fn layer_dims(hidden: &[f32], dim: usize) -> LayerDims {
    let mut max_phi = vec![0f32; dim];
    let mut max_median_ratio = vec![0f32; dim];
    let mut scratch = vec![0f32; dim];
    for x in hidden.chunks_exact(dim) {
        let mean_sq = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / dim as f64;
        let rms = (mean_sq + RMS_EPS).sqrt();
        scratch.iter_mut().zip(x).for_each(|(s, v)| *s = v.abs());
        let mid = dim / 2;
        let (_, median, _) = scratch.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
        let median = (*median as f64).max(f64::MIN_POSITIVE);
        for d in 0..dim {
            let a = x[d].abs() as f64;
            max_phi[d] = max_phi[d].max((a / rms) as f32);
            max_median_ratio[d] = max_median_ratio[d].max((a / median) as f32);
        }
    }
    LayerDims { max_phi, max_median_ratio }
}

/// A ranked dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct DimScore {
    pub dim: u32,
    /// Layers in which the dim is extreme (see [`rank`]).
    pub layers: usize,
    /// Mean over layers of its max phi.
    pub mean_phi: f64,
    /// Largest |x[d]| / median |x| over tokens and layers.
    pub max_median_ratio: f64,
}

/// What discovery suggests.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    pub hidden: usize,
    pub layers: usize,
    /// Every dimension extreme in at least one layer, best first.
    pub ranked: Vec<DimScore>,
    /// D_sink: the dims extreme in at least half the layers (at most 4); empty when none is
    /// (`ranked` empty too: no dimension carries massive activations in any layer).
    pub sink_dims: Vec<u32>,
    /// Tokens carrying them: (token, layers in which it carries one).
    pub carriers: Vec<(usize, usize)>,
    /// A tau halfway between the carriers' phi and everyone else's (None without carriers).
    pub tau: Option<f64>,
}

impl Discovery {
    pub fn sqrt_d(&self) -> f64 {
        (self.hidden as f64).sqrt()
    }
}

/// A dimension is extreme in a layer when its max phi is at least 5x the layer's median
/// per-dimension max phi (what an ordinary dimension reaches) and at least half the layer's
/// strongest: both relative, so the same rule fits D = 384 and D = 4096. A phi of 0 is never
/// extreme: in an all-zero layer 0 >= 5 x 0 held for every dim, and discovery named dims
/// 0, 1, 2, 3 (layers of one value everywhere, zero or 3e38, have phi 1 in every dim: none).
const OVER_TYPICAL: f32 = 5.0;
const OF_STRONGEST: f32 = 0.5;
const MAX_SUGGESTED: usize = 4;

fn extreme(stats: &LayerDims) -> Vec<bool> {
    let mut sorted = stats.max_phi.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let typical = sorted[sorted.len() / 2];
    let strongest = sorted[sorted.len() - 1];
    stats
        .max_phi
        .iter()
        .map(|&p| p > 0.0 && p >= OVER_TYPICAL * typical && p >= OF_STRONGEST * strongest)
        .collect()
}

/// Ranks dimensions over layers, then finds the carriers and a tau from the hidden states.
/// `hidden(l)` returns layer l's [T, D]; `stats[l]` its [`LayerDims`] (GPU or CPU).
pub fn rank(stats: &[LayerDims], hidden: &dyn Fn(usize) -> Result<Vec<f32>>, tokens: usize) -> Result<Discovery> {
    let dim = stats
        .first()
        .map(|s| s.max_phi.len())
        .ok_or_else(|| Error::Dump("no hidden states to discover from".into()))?;
    let layers = stats.len();
    let flags: Vec<Vec<bool>> = stats.iter().map(extreme).collect();
    let mut ranked: Vec<DimScore> = (0..dim)
        .filter_map(|d| {
            let n = flags.iter().filter(|f| f[d]).count();
            (n > 0).then(|| DimScore {
                dim: d as u32,
                layers: n,
                mean_phi: stats.iter().map(|s| s.max_phi[d] as f64).sum::<f64>() / layers as f64,
                max_median_ratio: stats.iter().map(|s| s.max_median_ratio[d] as f64).fold(0.0, f64::max),
            })
        })
        .collect();
    ranked.sort_by(|a, b| b.layers.cmp(&a.layers).then(b.mean_phi.total_cmp(&a.mean_phi)));
    let sink_dims: Vec<u32> = ranked
        .iter()
        .filter(|s| 2 * s.layers >= layers)
        .take(MAX_SUGGESTED)
        .map(|s| s.dim)
        .collect();

    // Carriers: per layer, the tokens within half of that layer's top phi over the suggested
    // dims; a carrier of the prompt is one in at least half the layers that have any.
    let mut carried = vec![0usize; tokens];
    let mut phis: Vec<Vec<f64>> = Vec::new();
    for (l, layer_flags) in flags.iter().enumerate() {
        if !sink_dims.iter().any(|&d| layer_flags[d as usize]) {
            continue;
        }
        let h = hidden(l)?;
        let phi = crate::reference::phi(&h, dim, &sink_dims);
        let top = phi.iter().cloned().fold(0.0, f64::max);
        for (t, &p) in phi.iter().enumerate() {
            if p >= 0.5 * top {
                carried[t] += 1;
            }
        }
        phis.push(phi);
    }
    let need = phis.len().div_ceil(2).max(1);
    let carriers: Vec<(usize, usize)> = (0..tokens).filter(|&t| carried[t] >= need).map(|t| (t, carried[t])).collect();
    // tau from the layers where the activations are at their strongest (within 2x of the
    // strongest layer): halfway between the lowest carrier and the highest other token there.
    let tops: Vec<f64> = phis.iter().map(|p| p.iter().cloned().fold(0.0, f64::max)).collect();
    let strongest = tops.iter().cloned().fold(0.0, f64::max);
    let (mut low, mut high) = (f64::INFINITY, 0.0f64);
    for (phi, &top) in phis.iter().zip(&tops) {
        if top < 0.5 * strongest {
            continue;
        }
        for &p in phi {
            if p >= 0.5 * top {
                low = low.min(p);
            } else {
                high = high.max(p);
            }
        }
    }
    let tau = low.is_finite().then(|| (low + high) / 2.0);
    Ok(Discovery {
        hidden: dim,
        layers,
        ranked,
        sink_dims,
        carriers,
        tau,
    })
}

/// Binds `dim_max.wgsl` over hidden states already on the GPU: `hidden` [tokens, dim] f32 in,
/// `best` [dim] u32 out (each dimension's max phi as f32 bits, atomically maxed: zero it first);
/// one item a token. What [`DimMax`](crate::discover::DimMax) records between its upload and
/// its readback.
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub(crate) fn bind_dim_max(
    ctx: &crate::kernel::Context,
    pipeline: &std::sync::Arc<crate::kernel::Pipeline>,
    hidden: wgpu::BufferBinding,
    best: wgpu::BufferBinding,
    tokens: usize,
    dim: usize,
) -> Result<crate::kernel::Dispatch> {
    use crate::kernel::Storage;
    use crate::var::decls::{DimMaxInputs, DimMaxKernel, DimUniform};
    let params = ctx.uniform_buffer(
        "dim_max params",
        &DimUniform {
            tokens: tokens as u32,
            hidden: dim as u32,
            pad0: 0,
            pad1: 0,
        },
    );
    ctx.bind::<DimMaxKernel>(
        pipeline,
        DimMaxInputs {
            params: params.as_entire_buffer_binding(),
            hidden: Storage::new(hidden, tokens * dim),
            best: Storage::new(best, dim),
        },
        tokens as u32,
    )
}

/// The pipeline [`bind_dim_max`] binds, from the context's cache.
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub(crate) fn dim_max_pipeline(ctx: &crate::kernel::Context) -> Result<std::sync::Arc<crate::kernel::Pipeline>> {
    ctx.pipeline::<crate::var::decls::DimMaxKernel>(&[])
}
