//! Pictures drawn by wgpu from the buffers VAR works on.

pub mod font;
pub mod heatmap;
