//! Kernels as declarations: each compute kernel is one [`kernel!`](crate::kernel!) entry
//! (`declarations.rs`) naming its WGSL file, bindings, overrides and dispatch rule; a
//! [`Context`] builds and caches its pipelines and turns a typed inputs struct into a
//! [`Dispatch`] that records with `dispatch.record(&mut pass, offsets)`. Hosts declare their own
//! kernels the same way (examples/llava).

pub(crate) mod context;
mod decl;
pub(crate) mod declarations;
pub(crate) mod uniforms;

pub(crate) use context::Context;
pub(crate) use context::check_binding;
pub use context::{Dispatch, Limits, Pipeline};
pub use decl::{
    Access, Arg, BindingDecl, BindingKind, Elem, Inputs, Kernel, KernelDecl, PerWorkgroup, Storage, UniformBlock, UniformLayout, Variant,
};

/// Invocations per workgroup of every built-in kernel (WGSL `WG` in common.wgsl).
pub const WG: u32 = 64;

/// Every built-in kernel's declarations, one slice per kernel holding each of its variants
/// (most have one), for validation tools and the reflection test.
pub const KERNELS: &[&[KernelDecl]] = {
    use declarations::*;
    &[
        <SinkScore as Kernel>::VARIANTS,
        <VarRows as Kernel>::VARIANTS,
        <AttentionVar as Kernel>::VARIANTS,
        <AttentionSplit as Kernel>::VARIANTS,
        <AttentionCombine as Kernel>::VARIANTS,
        <AttentionProbs as Kernel>::VARIANTS,
        <AttentionPv as Kernel>::VARIANTS,
        <DimMaxKernel as Kernel>::VARIANTS,
        <HeatmapGather as Kernel>::VARIANTS,
        <CopyF32 as Kernel>::VARIANTS,
        <ReadF32 as Kernel>::VARIANTS,
    ]
};

/// Every uniform block and storage struct the built-in kernels read, for the reflection test.
pub const UNIFORMS: &[UniformLayout] = {
    use uniforms::*;
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
