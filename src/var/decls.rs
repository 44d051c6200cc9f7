//! VAR's kernels as declarations (sink scoring, the row kernel and its variants, the
//! per-dimension max of discovery) and the uniform blocks they read, laid out exactly as the
//! WGSL structs of `shaders/common.wgsl` and the kernels' own files: tests/kernel_decls.rs
//! reflects each against naga's layout of the WGSL. The attention kernels read [`ConfigUniform`]
//! too.

use super::VIS_EPS;
use super::config::{LayerRole, VarConfig};
use crate::kernel::PerWorkgroup::{Fixed, WorkgroupOver};
use crate::shaders;
use crate::{kernel, uniform_block};

kernel! {
    /// Phi and the class of every token of one layer (var-spec.md section 1).
    pub struct SinkScore, SinkScoreInputs = "sink_score.wgsl", shaders::SINK_SCORE, prelude shaders::PRELUDE;
    overrides ["LANES", "EARLY"];
    per_workgroup WorkgroupOver("LANES");
    {
        cfg: uniform(ConfigUniform, dynamic),
        rng: uniform(RangeUniform),
        hidden: storage(f32, read),
        sink_dims: storage(u32, read),
        visual: storage(u32, read),
        phi: storage(f32, read_write),
        classes: storage(u32, read_write),
        seqs: storage(SeqUniform, read),
    }
}

kernel! {
    /// Row selection and redistribution in place (sections 2 and 3), one body under three
    /// preludes: over f32 probabilities (any K); over `vec4<f32>` for rows whose groups of 4
    /// keys all sit on 16 bytes (K and every sequence's first key multiples of 4); and loading
    /// them from `staged`, an rgba32float texture copy of the rows it visits
    /// (LayerBinding::encode copies them first), storing to `probs`.
    pub struct VarRows, VarRowsInputs, VarRowsVariant = shaders::VAR_ROWS;
    variants {
        Scalar = "var_rows.wgsl", prelude shaders::PRELUDE_ROWS_SCALAR, elem f32;
        Vec4 = "var_rows.vec4.wgsl", prelude shaders::PRELUDE_ROWS_VEC4, elem vec4_f32;
        Staged = "var_rows.staged.wgsl", prelude shaders::PRELUDE_ROWS_STAGED, elem vec4_f32;
    }
    overrides ["LANES", "KEYS", "PACKED"];
    per_workgroup WorkgroupOver("LANES");
    {
        cfg: uniform(ConfigUniform, dynamic),
        rng: uniform(RangeUniform),
        probs: storage(elem, read_write),
        classes: storage(u32, read),
        selected: storage(u32, read_write),
        seqs: storage(SeqUniform, read),
        staged: texture(only Staged),
    }
}

kernel! {
    /// Max phi per hidden dimension, for sink-dimension discovery; items: tokens.
    pub struct DimMaxKernel, DimMaxInputs = "dim_max.wgsl", shaders::DIM_MAX, prelude shaders::PRELUDE;
    overrides [];
    per_workgroup Fixed(1);
    {
        params: uniform(DimUniform),
        hidden: storage(f32, read),
        best: storage(atomic_u32, read_write),
    }
}

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
    /// WGSL `DimParams` (dim_max.wgsl).
    pub struct DimUniform = "DimParams" {
        tokens: u32,
        hidden: u32,
        pad0: u32,
        pad1: u32,
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
