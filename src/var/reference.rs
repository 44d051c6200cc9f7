//! The CPU reference: var-spec.md sections 1-3 written as plainly as possible, accumulating in
//! f64. Every GPU kernel is tested against these functions.

use crate::error::{Error, Result};
use crate::shape::AttnShape;
use crate::var::config::{LayerRole, VarConfig};
use crate::var::visual::VisualTokens;

use super::{GUARD, RMS_EPS, VIS_EPS, check_finite};

/// phi(x_t) for every token of `hidden` [T, D] (section 1).
///
/// Each row is divided by s, the power of two at or below its max |x| (1 for rows below 2),
/// before squaring, as the kernels do where f32 would overflow: phi = |x[d] s| / sqrt(mean
/// (x s)^2 + 1e-6 s^2) is the same ratio. In f64 the scaling is exact and changes no bit (f64
/// holds the square of any f32, 1.2e77), so it only states what the kernels compute.
pub fn phi(hidden: &[f32], dim: usize, sink_dims: &[u32]) -> Vec<f64> {
    hidden
        .chunks_exact(dim)
        .map(|x| {
            let max = x.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
            let s = inv_pow2_below(max);
            let mean_sq = x.iter().map(|&v| (v as f64 * s) * (v as f64 * s)).sum::<f64>() / dim as f64;
            let rms = (mean_sq + RMS_EPS * s * s).sqrt();
            sink_dims
                .iter()
                .map(|&d| (x[d as usize] as f64 * s / rms).abs())
                .fold(0.0, f64::max)
        })
        .collect()
}

/// 2^-k for the k that puts `m` / 2^k in [1, 2), k clamped to [0, 126] (WGSL
/// `inv_pow2_below` in sink_score.wgsl): values below 2 are not scaled.
pub fn inv_pow2_below(m: f64) -> f64 {
    let k = if m >= 1.0 { (m.log2().floor() as i32).clamp(0, 126) } else { 0 };
    // log2 may round up just below a power of two: keep m / 2^k below 2 as the bits would.
    let k = if k > 0 && m < 2f64.powi(k) { k - 1 } else { k };
    2f64.powi(-k)
}

/// S_l = { t : phi(x_t) > tau }, strict as in the released code.
pub fn sink_mask(phi: &[f64], tau: f64) -> Vec<bool> {
    phi.iter().map(|&v| v > tau).collect()
}

/// Section 2's quantities for one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    /// V_i: attention on image tokens.
    pub visual_mass: f64,
    /// Vs_i / sum_{j in I_vis} (a_ij + 1e-6).
    pub sink_ratio: f64,
    /// Attention on all sinks, visual and text.
    pub sink_mass: f64,
    /// Attention on visual non-sinks.
    pub visual_nonsink_mass: f64,
    /// The row passes section 2's test.
    pub selected: bool,
}

/// Section 2 for one row of post-softmax probabilities over all keys.
pub fn row_stats(row: &[f32], visual: &VisualTokens, sinks: &[bool], layer_has_visual_sink: bool, cfg: &VarConfig) -> RowStats {
    let (mut vis, mut vis_sink, mut sink, mut vns) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (j, &a) in row.iter().enumerate() {
        let a = a as f64;
        let is_vis = visual.is_visual(j);
        if sinks[j] {
            sink += a;
        }
        if is_vis {
            vis += a;
            if sinks[j] {
                vis_sink += a;
            } else {
                vns += a;
            }
        }
    }
    let sink_ratio = vis_sink / (vis + visual.count() as f64 * VIS_EPS);
    let selected = layer_has_visual_sink && vis >= cfg.summ && sink_ratio <= cfg.rho_code();
    RowStats {
        visual_mass: vis,
        sink_ratio,
        sink_mass: sink,
        visual_nonsink_mass: vns,
        selected,
    }
}

/// Section 3 on one selected row that may change: sinks keep `1 - p`, visual non-sinks receive
/// the rest in proportion to their attention. Returns false (row untouched) under the guard.
pub fn redistribute_row(row: &mut [f32], visual: &VisualTokens, sinks: &[bool], p: f64) -> bool {
    let sink: f64 = (0..row.len()).filter(|&j| sinks[j]).map(|j| row[j] as f64).sum();
    let vns: f64 = (0..row.len())
        .filter(|&j| visual.is_visual(j) && !sinks[j])
        .map(|j| row[j] as f64)
        .sum();
    if vns <= GUARD {
        return false;
    }
    let omega = p * sink;
    for j in 0..row.len() {
        let a = row[j] as f64;
        if sinks[j] {
            row[j] = ((1.0 - p) * a) as f32;
        } else if visual.is_visual(j) {
            row[j] = (a + omega * a / vns) as f32;
        }
    }
    true
}

/// What a layer produced besides its edited probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerFlags {
    /// phi per token (zeros where the layer does not detect).
    pub phi: Vec<f64>,
    /// The sink set S_l.
    pub sinks: Vec<bool>,
    /// Section 2's flag per (head, query row), for every row.
    pub selected: Vec<bool>,
}

/// One whole layer: sinks from `hidden` [T, D] (needed unless the role is Off), flags for every
/// row of `probs` [H, Q, K], and the redistribution in place where the role and the row rule
/// allow it.
pub fn apply_layer(
    cfg: &VarConfig,
    role: LayerRole,
    visual: &VisualTokens,
    hidden: Option<(&[f32], usize)>,
    probs: &mut [f32],
    shape: AttnShape,
) -> Result<LayerFlags> {
    shape.check_probs(probs.len())?;
    if visual.tokens() != shape.keys {
        return Err(Error::Shape(format!(
            "image mask covers {} tokens, attention has {} keys",
            visual.tokens(),
            shape.keys
        )));
    }
    check_finite("attentions", probs)?;
    let t = shape.keys;
    if role == LayerRole::Off {
        return Ok(LayerFlags {
            phi: vec![0.0; t],
            sinks: vec![false; t],
            selected: vec![false; shape.rows()],
        });
    }
    let (hidden, dim) = hidden.ok_or_else(|| Error::Shape("a layer that detects sinks needs its hidden states".into()))?;
    if dim == 0 || hidden.len() != t * dim {
        return Err(Error::Shape(format!(
            "hidden states have {} values, expected T x D = {t} x {dim}",
            hidden.len()
        )));
    }
    cfg.validate_for(dim, usize::MAX)?;
    check_finite("hidden_states", hidden)?;

    let phi = phi(hidden, dim, &cfg.sink_dims);
    let sinks = sink_mask(&phi, cfg.tau);
    let has_visual_sink = (0..t).any(|j| sinks[j] && visual.is_visual(j));
    let mut selected = Vec::with_capacity(shape.rows());
    for (r, row) in probs.chunks_exact_mut(t).enumerate() {
        let stats = row_stats(row, visual, &sinks, has_visual_sink, cfg);
        selected.push(stats.selected);
        let pos = shape.position(r % shape.queries);
        if stats.selected && role == LayerRole::Redistribute && visual.row_may_change(pos) {
            redistribute_row(row, visual, &sinks, cfg.p_recycled());
        }
    }
    Ok(LayerFlags { phi, sinks, selected })
}

/// One attention's inputs for [`attention_var`]: Q [H, Tq, d], K and V [Hkv, Tk, d], the mask
/// and the softmax scale.
#[derive(Debug, Clone, Copy)]
pub struct Qkv<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub shape: crate::shape::FusedShape,
    pub causal: bool,
    pub scale: f64,
}

/// The unfused path the fused kernel must equal: materialise Q K^T * scale, softmax (with the
/// bottom-right causal mask), VAR on every row (sections 2 and 3, in f64), multiply by V.
/// Returns O [H, Tq, d] and section 2's statistics per (head, row).
pub fn attention_var(
    cfg: &VarConfig,
    role: LayerRole,
    visual: &VisualTokens,
    sinks: &[bool],
    attn: Qkv,
) -> Result<(Vec<f64>, Vec<RowStats>)> {
    let Qkv {
        q,
        k,
        v,
        shape,
        causal,
        scale,
    } = attn;
    shape.validate()?;
    let (h_n, tq, tk, d) = (shape.heads, shape.queries, shape.keys, shape.head_dim);
    if q.len() != shape.q_len() || k.len() != shape.kv_len() || v.len() != shape.kv_len() {
        return Err(Error::Shape(format!("q/k/v lengths do not match {shape:?}")));
    }
    if sinks.len() != tk || visual.tokens() != tk {
        return Err(Error::Shape(format!("sink/image masks must cover {tk} keys")));
    }
    let has_visual_sink = (0..tk).any(|j| sinks[j] && visual.is_visual(j));
    let mut out = vec![0.0f64; shape.q_len()];
    let mut stats = Vec::with_capacity(h_n * tq);
    let group = h_n / shape.kv_heads;
    for h in 0..h_n {
        let kv = h / group;
        for r in 0..tq {
            let pos = tk - tq + r;
            let qrow = &q[(h * tq + r) * d..(h * tq + r + 1) * d];
            let visible = if causal { pos + 1 } else { tk };
            let scores: Vec<f64> = (0..visible)
                .map(|j| {
                    let krow = &k[(kv * tk + j) * d..(kv * tk + j + 1) * d];
                    scale * qrow.iter().zip(krow).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|&s| (s - m).exp()).collect();
            let l: f64 = e.iter().sum();
            let mut a: Vec<f64> = e.iter().map(|&x| x / l).collect();
            a.resize(tk, 0.0);

            let (mut vis, mut vis_sink, mut sink, mut vns) = (0.0, 0.0, 0.0, 0.0);
            for j in 0..tk {
                if sinks[j] {
                    sink += a[j];
                }
                if visual.is_visual(j) {
                    vis += a[j];
                    if sinks[j] {
                        vis_sink += a[j];
                    } else {
                        vns += a[j];
                    }
                }
            }
            let ratio = vis_sink / (vis + visual.count() as f64 * VIS_EPS);
            let sel = role != LayerRole::Off && has_visual_sink && vis >= cfg.summ && ratio <= cfg.rho_code();
            stats.push(RowStats {
                visual_mass: vis,
                sink_ratio: ratio,
                sink_mass: sink,
                visual_nonsink_mass: vns,
                selected: sel,
            });
            if sel && role == LayerRole::Redistribute && visual.row_may_change(pos) && vns > GUARD {
                let p = cfg.p_recycled();
                let omega = p * sink;
                for j in 0..tk {
                    if sinks[j] {
                        a[j] *= 1.0 - p;
                    } else if visual.is_visual(j) {
                        a[j] += omega * a[j] / vns;
                    }
                }
            }
            let orow = &mut out[(h * tq + r) * d..(h * tq + r + 1) * d];
            for (j, &w) in a.iter().enumerate().take(visible) {
                let vrow = &v[(kv * tk + j) * d..(kv * tk + j + 1) * d];
                for (o, &x) in orow.iter_mut().zip(vrow) {
                    *o += w * x as f64;
                }
            }
        }
    }
    Ok((out, stats))
}
