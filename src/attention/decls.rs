//! The attention kernels as declarations (fused with VAR inside, split-K and its combine, the
//! unfused path's two halves) and the uniform blocks they read besides VAR's
//! [`ConfigUniform`](crate::var::decls::ConfigUniform); tests/kernel_decls.rs reflects each
//! against its WGSL.

use crate::kernel::PerWorkgroup::Fixed;
use crate::shaders;
use crate::var::decls::ConfigUniform;
use crate::{kernel, uniform_block};

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
        k: storage(vec4_f32, read),
        v: storage(vec4_f32, read),
        classes: storage(u32, read),
        partials: storage(f32, read_write),
    }
}

kernel! {
    /// A decode step's q into the session's rows and its k and v into the caches at the step's
    /// position; items: (H + 2 Hkv) D values.
    pub struct AttentionAppend, AttentionAppendInputs = "attention_append.wgsl", shaders::ATTENTION_APPEND, prelude shaders::PRELUDE;
    overrides ["D"];
    per_workgroup Fixed(64);
    {
        att: uniform(SplitUniform),
        q_in: storage(f32, read),
        k_in: storage(f32, read),
        v_in: storage(f32, read),
        q: storage(f32, read_write),
        k: storage(f32, read_write),
        v: storage(f32, read_write),
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
