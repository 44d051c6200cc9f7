//! The kernel mechanism: a compute kernel is one [`kernel!`](crate::kernel!) declaration naming
//! its WGSL file, bindings, overrides and dispatch rule (and its variants, where one body runs
//! under several preludes); a [`Context`] builds and caches its pipelines and turns a typed
//! inputs struct into a [`Dispatch`] that records with `dispatch.record(&mut pass, offsets)`.
//! Each domain declares its kernels beside its code (`var/decls.rs`, `attention/decls.rs`,
//! `viz/heatmap.rs`, `baseline.rs`); hosts declare their own the same way (examples/host).

pub(crate) mod context;
mod decl;
pub mod specialize;

pub(crate) use context::Context;
pub(crate) use context::check_binding;
pub use context::{Dispatch, Limits, Pipeline};
pub use decl::{
    Access, Arg, BindingDecl, BindingKind, Elem, Inputs, Kernel, KernelDecl, PerWorkgroup, Storage, UniformBlock, UniformLayout, Variant,
};

/// Invocations per workgroup of every built-in kernel (WGSL `WG` in common.wgsl).
pub const WG: u32 = 64;

/// Every built-in kernel's declarations, one slice per kernel holding each of its variants
/// (most have one), gathered from the domains for validation tools and the reflection test.
pub const KERNELS: &[&[KernelDecl]] = {
    use crate::attention::decls::*;
    use crate::baseline::{CopyF32, ReadF32};
    use crate::var::decls::*;
    use crate::viz::heatmap::HeatmapGather;
    &[
        <SinkScore as Kernel>::VARIANTS,
        <VarRows as Kernel>::VARIANTS,
        <AttentionVar as Kernel>::VARIANTS,
        <AttentionSplit as Kernel>::VARIANTS,
        <AttentionCombine as Kernel>::VARIANTS,
        <AttentionAppend as Kernel>::VARIANTS,
        <AttentionProbs as Kernel>::VARIANTS,
        <AttentionPv as Kernel>::VARIANTS,
        <DimMaxKernel as Kernel>::VARIANTS,
        <HeatmapGather as Kernel>::VARIANTS,
        <CopyF32 as Kernel>::VARIANTS,
        <ReadF32 as Kernel>::VARIANTS,
    ]
};

/// Every uniform block and storage struct the built-in kernels read, gathered from the domains
/// for the reflection test.
pub const UNIFORMS: &[UniformLayout] = {
    use crate::attention::decls::{AttnUniform, SplitUniform};
    use crate::baseline::CopyUniform;
    use crate::var::decls::{ConfigUniform, DimUniform, RangeUniform, SeqUniform};
    use crate::viz::heatmap::GatherUniform;
    &[
        ConfigUniform::LAYOUT,
        RangeUniform::LAYOUT,
        SeqUniform::LAYOUT,
        AttnUniform::LAYOUT,
        SplitUniform::LAYOUT,
        CopyUniform::LAYOUT,
        DimUniform::LAYOUT,
        GatherUniform::LAYOUT,
    ]
};
