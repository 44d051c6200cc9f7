//! The model's kernels on wgpu, each one `visattn::kernel!` declaration over its WGSL in
//! examples/llava/shaders/, run through the library's `Context` like the VAR kernels.

pub mod linear;
