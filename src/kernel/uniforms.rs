//! The uniform blocks (and storage structs) the kernels read, laid out exactly as the WGSL
//! structs of `shaders/common.wgsl` and the kernels' own files; tests/kernel_decls.rs checks
//! each size and field offset against naga's layout of the WGSL.

use crate::uniform_block;
use crate::var::VIS_EPS;
use crate::var::config::{LayerRole, VarConfig};

uniform_block! {
    /// WGSL `Config`: the sequence's shape and VAR's settings for one layer role.
    pub struct ConfigUniform = "Config" {
        tokens: u32,
        hidden: u32,
        n_sink_dims: u32,
        heads: u32,
        queries: u32,
        row_start: u32,
        first_image_end: u32,
        role: u32,
        tau: f32,
        summ: f32,
        rho: f32,
        keep: f32,
        p: f32,
        vis_eps: f32,
        pad0: u32,
        pad1: u32,
    }
}

uniform_block! {
    /// WGSL `Range`: which heads and tokens a binding holds.
    pub struct RangeUniform = "Range" {
        head_offset: u32,
        heads: u32,
        token_offset: u32,
        tokens: u32,
    }
}

uniform_block! {
    /// WGSL `Seq`: one sequence of a batch (a storage array element).
    pub struct SeqUniform = "Seq" {
        key_offset: u32,
        first_row: u32,
        first_image_end: u32,
        vis_eps: f32,
    }
}

uniform_block! {
    /// WGSL `Attn`: shapes, scale and mask of the fused and unfused attention.
    pub struct AttnUniform = "Attn" {
        heads: u32,
        kv_heads: u32,
        queries: u32,
        keys: u32,
        causal: u32,
        scale: f32,
        pad0: u32,
        pad1: u32,
    }
}

uniform_block! {
    /// WGSL `SplitParams`: `Attn` plus split-K's blocks.
    pub struct SplitUniform = "SplitParams" {
        attn: AttnUniform,
        block: u32,
        blocks: u32,
        capacity: u32,
        pad0: u32,
    }
}

uniform_block! {
    /// WGSL `CopyParams`: elements and elements per workgroup of the bandwidth baselines.
    pub struct CopyUniform = "CopyParams" {
        len: u32,
        per_workgroup: u32,
        pad0: u32,
        pad1: u32,
    }
}

uniform_block! {
    /// WGSL `DimParams` (dim_max.wgsl).
    pub struct DimUniform = "DimParams" {
        tokens: u32,
        hidden: u32,
        pad0: u32,
        pad1: u32,
    }
}

uniform_block! {
    /// WGSL `GatherParams` (heatmap_gather.wgsl).
    pub struct GatherUniform = "GatherParams" {
        heads: u32,
        keys: u32,
        image_start: u32,
        grid: u32,
        head: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

/// The three role slots, in [`LayerRole`] order.
pub(crate) const ROLES: [LayerRole; 3] = [LayerRole::Off, LayerRole::Detect, LayerRole::Redistribute];

/// What one role slot of [`ConfigUniform`] describes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotShape {
    pub tokens: usize,
    pub hidden: usize,
    pub heads: usize,
    pub queries: usize,
    pub row_start: usize,
    pub first_image_end: usize,
    pub n_visual: usize,
}

impl ConfigUniform {
    /// The thresholds are rounded to f32 from f64 once, here, so every kernel compares against
    /// the same values (rho_code = 1 - 0.8 is 0.2 exactly in f32 this way).
    pub(crate) fn new(cfg: &VarConfig, role: LayerRole, s: SlotShape) -> Self {
        let p = cfg.p_recycled();
        Self {
            tokens: s.tokens as u32,
            hidden: s.hidden as u32,
            n_sink_dims: cfg.sink_dims.len() as u32,
            heads: s.heads as u32,
            queries: s.queries as u32,
            row_start: s.row_start as u32,
            first_image_end: s.first_image_end as u32,
            role: role as u32,
            tau: cfg.tau as f32,
            summ: cfg.summ as f32,
            rho: cfg.rho_code() as f32,
            keep: (1.0 - p) as f32,
            p: p as f32,
            vis_eps: (s.n_visual as f64 * VIS_EPS) as f32,
            pad0: 0,
            pad1: 0,
        }
    }
}
