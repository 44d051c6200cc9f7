//! The WGSL sources, embedded at compile time from `shaders/`, each composed as
//! `shaders/common.wgsl` followed by the kernel's own file: a plain prepend (WGSL has no
//! includes), checked by tests/naga_shaders.rs. Line numbers in naga's errors therefore count
//! from the prelude's first line; subtract [`PRELUDE_LINES`] to find the kernel's.

/// `shaders/common.wgsl`: the structs, class bits, roles and constants every kernel shares.
pub const PRELUDE: &str = include_str!("../shaders/common.wgsl");

/// Lines of [`PRELUDE`] before a kernel's own first line.
pub const PRELUDE_LINES: usize = {
    let bytes = PRELUDE.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            n += 1;
        }
        i += 1;
    }
    n
};

/// A kernel's source: the prelude, then `shaders/<file>`.
macro_rules! kernel_source {
    ($file:literal) => {
        concat!(include_str!("../shaders/common.wgsl"), include_str!(concat!("../shaders/", $file)))
    };
}

/// `shaders/sink_score.wgsl`: phi and per-token classes.
pub const SINK_SCORE: &str = kernel_source!("sink_score.wgsl");
/// `shaders/var_rows.wgsl`: row selection and redistribution.
pub const VAR_ROWS: &str = kernel_source!("var_rows.wgsl");

/// `shaders/attention_var.wgsl`: fused attention with VAR inside.
pub const ATTENTION_VAR: &str = kernel_source!("attention_var.wgsl");
/// `shaders/attention_split.wgsl`: split-K blocks of decode attention with VAR's partial state.
pub const ATTENTION_SPLIT: &str = kernel_source!("attention_split.wgsl");
/// `shaders/attention_combine.wgsl`: merges the split-K blocks and applies VAR.
pub const ATTENTION_COMBINE: &str = kernel_source!("attention_combine.wgsl");
/// `shaders/attention_probs.wgsl`: the unfused path's softmax(Q K^T * scale).
pub const ATTENTION_PROBS: &str = kernel_source!("attention_probs.wgsl");
/// `shaders/attention_pv.wgsl`: the unfused path's P V.
pub const ATTENTION_PV: &str = kernel_source!("attention_pv.wgsl");
/// `shaders/dim_max.wgsl`: per-dimension max phi, for sink-dimension discovery.
pub const DIM_MAX: &str = kernel_source!("dim_max.wgsl");
/// `shaders/heatmap.wgsl`: the heatmap render pipeline (vertex + fragment).
pub const HEATMAP: &str = kernel_source!("heatmap.wgsl");
/// `shaders/heatmap_gather.wgsl`: one attention row per patch for the heatmap, on the GPU.
pub const HEATMAP_GATHER: &str = kernel_source!("heatmap_gather.wgsl");
/// `shaders/copy_f32.wgsl`: the bandwidth baseline the benchmarks compare against.
pub const COPY_F32: &str = kernel_source!("copy_f32.wgsl");
/// `shaders/read_f32.wgsl`: the read-only bandwidth baseline.
pub const READ_F32: &str = kernel_source!("read_f32.wgsl");

/// Every shader with its file name, for validation tools and tests.
pub const ALL: &[(&str, &str)] = &[
    ("sink_score.wgsl", SINK_SCORE),
    ("var_rows.wgsl", VAR_ROWS),
    ("attention_var.wgsl", ATTENTION_VAR),
    ("attention_split.wgsl", ATTENTION_SPLIT),
    ("attention_combine.wgsl", ATTENTION_COMBINE),
    ("attention_probs.wgsl", ATTENTION_PROBS),
    ("attention_pv.wgsl", ATTENTION_PV),
    ("dim_max.wgsl", DIM_MAX),
    ("heatmap.wgsl", HEATMAP),
    ("heatmap_gather.wgsl", HEATMAP_GATHER),
    ("copy_f32.wgsl", COPY_F32),
    ("read_f32.wgsl", READ_F32),
];
