//! The uniform blocks the kernels share, laid out exactly as the WGSL structs.

use bytemuck::{Pod, Zeroable};

use crate::config::{LayerRole, VarConfig};
use crate::reference::VIS_EPS;

/// WGSL `Config`: the sequence's shape and VAR's settings for one layer role.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct ConfigUniform {
    pub tokens: u32,
    pub hidden: u32,
    pub n_sink_dims: u32,
    pub heads: u32,
    pub queries: u32,
    pub row_start: u32,
    pub first_image_end: u32,
    pub role: u32,
    pub tau: f32,
    pub summ: f32,
    pub rho: f32,
    pub keep: f32,
    pub p: f32,
    pub vis_eps: f32,
    pub pad0: u32,
    pub pad1: u32,
}

/// WGSL `Range`: which heads and tokens a binding holds.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct RangeUniform {
    pub head_offset: u32,
    pub heads: u32,
    pub token_offset: u32,
    pub tokens: u32,
}

/// WGSL `Seq`: one sequence of a batch.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct SeqUniform {
    pub key_offset: u32,
    pub first_row: u32,
    pub first_image_end: u32,
    pub vis_eps: f32,
}

pub(crate) const CONFIG_SIZE: u64 = std::mem::size_of::<ConfigUniform>() as u64;
pub(crate) const RANGE_SIZE: u64 = std::mem::size_of::<RangeUniform>() as u64;
pub(crate) const SEQ_SIZE: u64 = std::mem::size_of::<SeqUniform>() as u64;

/// The three role slots, in [`LayerRole`] order.
pub(crate) const ROLES: [LayerRole; 3] = [LayerRole::Off, LayerRole::Detect, LayerRole::Redistribute];

/// The thresholds are rounded to f32 from f64 once, here, so every kernel compares against the
/// same values (rho_code = 1 - 0.8 is 0.2 exactly in f32 this way).
#[allow(clippy::too_many_arguments)]
pub(crate) fn config_uniform(
    cfg: &VarConfig,
    role: LayerRole,
    tokens: usize,
    hidden: usize,
    heads: usize,
    queries: usize,
    row_start: usize,
    first_image_end: usize,
    n_visual: usize,
) -> ConfigUniform {
    let p = cfg.p_recycled();
    ConfigUniform {
        tokens: tokens as u32,
        hidden: hidden as u32,
        n_sink_dims: cfg.sink_dims.len() as u32,
        heads: heads as u32,
        queries: queries as u32,
        row_start: row_start as u32,
        first_image_end: first_image_end as u32,
        role: role as u32,
        tau: cfg.tau as f32,
        summ: cfg.summ as f32,
        rho: cfg.rho_code() as f32,
        keep: (1.0 - p) as f32,
        p: p as f32,
        vis_eps: (n_visual as f64 * VIS_EPS) as f32,
        pad0: 0,
        pad1: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sizes_match_wgsl() {
        assert_eq!(CONFIG_SIZE, 64);
        assert_eq!(RANGE_SIZE, 16);
    }
}
