//! The model's kernels on wgpu, each one `visattn::kernel!` declaration over its WGSL in
//! examples/llava/shaders/, run through the library's `Context` like the VAR kernels.

pub mod elementwise;
pub mod fill;
pub mod layout;
pub mod linear;
pub mod matrix;
pub mod model;
pub mod norm;
pub mod rope;

/// Every kernel of the host, for `--wgsl-out` (tests/naga_shaders.rs validates and translates
/// what it writes).
pub const KERNELS: &[visattn::kernel::KernelDecl] = &[
    <linear::LinearKernel as visattn::kernel::Kernel>::DECL,
    <linear::LinearF16Kernel as visattn::kernel::Kernel>::DECL,
    <linear::LinearPackedKernel as visattn::kernel::Kernel>::DECL,
    <norm::NormKernel as visattn::kernel::Kernel>::DECL,
    <elementwise::BinaryKernel as visattn::kernel::Kernel>::DECL,
    <elementwise::ActivationKernel as visattn::kernel::Kernel>::DECL,
    <rope::RopeKernel as visattn::kernel::Kernel>::DECL,
    <layout::SwapKernel as visattn::kernel::Kernel>::DECL,
    <layout::EmbedKernel as visattn::kernel::Kernel>::DECL,
    <layout::EmbedF16Kernel as visattn::kernel::Kernel>::DECL,
    <layout::EmbedPackedKernel as visattn::kernel::Kernel>::DECL,
    <fill::FillKernel as visattn::kernel::Kernel>::DECL,
];
