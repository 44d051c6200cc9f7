//! The model on wgpu: its kernels (each one `visattn::kernel!` declaration over its WGSL in
//! examples/host/shaders/, run through the library's `Context` like the VAR kernels), its
//! weights on the device, its blocks, the prefill and the decode step.

pub mod bandwidth;
pub mod blocks;
pub mod decode;
pub mod elementwise;
pub mod fill;
pub mod interleave;
pub mod kernels;
pub mod layout;
pub mod linear;
pub mod matrix;
pub mod model;
pub mod norm;
pub mod prefill;
pub mod probe;
pub mod profile;
pub mod repack;
pub mod rope;
pub mod sample;
pub mod weights;

/// The optional features the host uses where the adapter has them: f16 weights (SHADER_F16),
/// x shared through subgroups (SUBGROUP, linear_shared.wgsl; a decode step's sums in
/// linear_vec_subgroup.wgsl) and the bench's account of a
/// decode step (TIMESTAMP_QUERY, profile.rs). A host asks for them (`features &
/// adapter.features()`, as visattn::util::gpu_with does).
pub const FEATURES: visattn::wgpu::Features = visattn::wgpu::Features::SHADER_F16
    .union(visattn::wgpu::Features::SUBGROUP)
    .union(visattn::wgpu::Features::TIMESTAMP_QUERY);

/// Every kernel of the host, every variant, for `--wgsl-out` (tests/naga_shaders.rs validates
/// and translates what it writes).
pub fn kernels() -> Vec<visattn::kernel::KernelDecl> {
    use visattn::kernel::Kernel;
    [
        <linear::LinearKernel as Kernel>::VARIANTS,
        <linear::LinearVecKernel as Kernel>::VARIANTS,
        <linear::LinearVecSubgroupKernel as Kernel>::VARIANTS,
        <linear::LinearTextureKernel as Kernel>::VARIANTS,
        <linear::LinearSharedKernel as Kernel>::VARIANTS,
        <repack::RepackKernel as Kernel>::VARIANTS,
        <interleave::InterleaveKernel as Kernel>::VARIANTS,
        <bandwidth::ReadTexture as Kernel>::VARIANTS,
        <bandwidth::FmaPeak as Kernel>::VARIANTS,
        <sample::SampleKernel as Kernel>::VARIANTS,
        <norm::NormKernel as Kernel>::VARIANTS,
        <elementwise::BinaryKernel as Kernel>::VARIANTS,
        <elementwise::ActivationKernel as Kernel>::VARIANTS,
        <elementwise::GluKernel as Kernel>::VARIANTS,
        <rope::RopeKernel as Kernel>::VARIANTS,
        <layout::SwapKernel as Kernel>::VARIANTS,
        <layout::EmbedKernel as Kernel>::VARIANTS,
        <fill::FillKernel as Kernel>::VARIANTS,
    ]
    .concat()
}
