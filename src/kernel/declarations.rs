//! Every built-in compute kernel, one declaration each: its WGSL file, its overrides, how many
//! items a workgroup covers, and its bindings in `@binding` order, named as the WGSL `var`s.
//! The render pipeline of the heatmap (vertex + fragment, a texture and a sampler) is not here.

use super::PerWorkgroup::{Fixed, WorkgroupOver};
use super::uniforms::*;
use crate::kernel;
use crate::shaders;

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
    /// Fused attention with VAR inside (section 5); items: heads x blocks of 16 query rows.
    pub struct AttentionVar, AttentionVarInputs = "attention_var.wgsl", shaders::ATTENTION_VAR, prelude shaders::PRELUDE;
    overrides ["D", "VAR"];
    per_workgroup Fixed(1);
    {
        cfg: uniform(ConfigUniform, dynamic),
        att: uniform(AttnUniform),
        q: storage(f32, read),
        k: storage(f32, read),
        v: storage(f32, read),
        classes: storage(u32, read),
        o: storage(f32, read_write),
        selected: storage(u32, read_write),
    }
}

kernel! {
    /// Split-K blocks of decode attention with VAR's partial state; items: head x row x block.
    pub struct AttentionSplit, AttentionSplitInputs = "attention_split.wgsl", shaders::ATTENTION_SPLIT, prelude shaders::PRELUDE;
    overrides ["D"];
    per_workgroup Fixed(1);
    {
        cfg: uniform(ConfigUniform, dynamic),
        att: uniform(SplitUniform),
        q: storage(f32, read),
        k: storage(f32, read),
        v: storage(f32, read),
        classes: storage(u32, read),
        partials: storage(f32, read_write),
    }
}

kernel! {
    /// Merges the split-K blocks and applies VAR once; items: head x row.
    pub struct AttentionCombine, AttentionCombineInputs = "attention_combine.wgsl", shaders::ATTENTION_COMBINE, prelude shaders::PRELUDE;
    overrides ["D"];
    per_workgroup Fixed(1);
    {
        cfg: uniform(ConfigUniform, dynamic),
        att: uniform(SplitUniform),
        partials: storage(f32, read),
        classes: storage(u32, read),
        o: storage(f32, read_write),
        selected: storage(u32, read_write),
    }
}

kernel! {
    /// The unfused path's softmax(Q K^T * scale); items: head x query row.
    pub struct AttentionProbs, AttentionProbsInputs = "attention_probs.wgsl", shaders::ATTENTION_PROBS, prelude shaders::PRELUDE;
    overrides ["D"];
    per_workgroup Fixed(1);
    {
        att: uniform(AttnUniform),
        q: storage(f32, read),
        k: storage(f32, read),
        probs: storage(f32, read_write),
    }
}

kernel! {
    /// The unfused path's P V; items: head x query row.
    pub struct AttentionPv, AttentionPvInputs = "attention_pv.wgsl", shaders::ATTENTION_PV, prelude shaders::PRELUDE;
    overrides ["D"];
    per_workgroup Fixed(1);
    {
        att: uniform(AttnUniform),
        probs: storage(f32, read),
        v: storage(f32, read),
        o: storage(f32, read_write),
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

kernel! {
    /// One attention row per image patch for the heatmap; items: patches.
    pub struct HeatmapGather, HeatmapGatherInputs = "heatmap_gather.wgsl", shaders::HEATMAP_GATHER, prelude shaders::PRELUDE;
    overrides [];
    per_workgroup Fixed(64);
    {
        params: uniform(GatherUniform),
        before: storage(f32, read),
        after: storage(f32, read),
        selected: storage(u32, read),
        classes: storage(u32, read),
        values: storage(f32, read_write),
        scale: storage(atomic_u32, read_write),
        sinks: storage(u32, read_write),
    }
}

kernel! {
    /// The copy baseline (`dst = src`); items: workgroups (`len / per_workgroup`).
    pub struct CopyF32, CopyF32Inputs = "copy_f32.wgsl", shaders::COPY_F32, prelude shaders::PRELUDE;
    overrides [];
    per_workgroup Fixed(1);
    {
        params: uniform(CopyUniform),
        src: storage(f32, read),
        dst: storage(f32, read_write),
    }
}

kernel! {
    /// The read-only baseline (a partial sum per invocation); items: workgroups.
    pub struct ReadF32, ReadF32Inputs = "read_f32.wgsl", shaders::READ_F32, prelude shaders::PRELUDE;
    overrides [];
    per_workgroup Fixed(1);
    {
        params: uniform(CopyUniform),
        src: storage(f32, read),
        dst: storage(f32, read_write),
    }
}
