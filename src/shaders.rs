//! The WGSL files of `shaders/`, embedded at compile time as they are on disk. A compute
//! kernel's pipeline gets more than its file: `shaders/common.wgsl` (the prelude), then the
//! `@binding` lines its Rust declaration generates, then the file
//! ([`KernelDecl::wgsl`](crate::kernel::KernelDecl::wgsl)): WGSL has no includes, so this is a
//! plain prepend, checked by tests/naga_shaders.rs. naga's line numbers in an error count from
//! the prelude's first line.

/// `shaders/common.wgsl`: the structs, class bits, roles and constants every kernel shares.
pub const PRELUDE: &str = include_str!("../shaders/common.wgsl");

/// `shaders/sink_score.wgsl`: phi and per-token classes.
pub const SINK_SCORE: &str = include_str!("../shaders/sink_score.wgsl");
/// `shaders/var_rows.wgsl`: row selection and redistribution.
pub const VAR_ROWS: &str = include_str!("../shaders/var_rows.wgsl");

/// A row-kernel prelude: common.wgsl, the class accessors every variant shares (`class_at`,
/// `class4`: classes of keys i .. i + 3 from array<u32> classes, 0 past `end`), then the
/// variant's own probability accessors.
macro_rules! rows_prelude {
    ($variant:literal) => {
        concat!(
            include_str!("../shaders/common.wgsl"),
            r#"
fn class_at(i: u32, end: u32) -> u32 {
    return select(0u, classes[min(i, end - 1u)], i < end);
}
fn class4(i: u32, end: u32) -> vec4<u32> {
    return vec4<u32>(class_at(i, end), class_at(i + 1u, end), class_at(i + 2u, end), class_at(i + 3u, end));
}
"#,
            $variant
        )
    };
}

/// The row kernel's prelude over scalar arrays (any K): `load4` / `class4` read keys i .. i + 3
/// (0 past `end`), `scale4` multiplies the ones `mask` names.
pub const PRELUDE_ROWS_SCALAR: &str = rows_prelude!(
    r#"
// var_rows over array<f32> probs and array<u32> classes (any K).
fn prob_at(i: u32, end: u32) -> f32 {
    return select(0.0, probs[min(i, end - 1u)], i < end);
}
fn load4(i: u32, end: u32) -> vec4<f32> {
    return vec4<f32>(prob_at(i, end), prob_at(i + 1u, end), prob_at(i + 2u, end), prob_at(i + 3u, end));
}
fn begin_row(head: u32, q: u32, base: u32) {}
fn scale4(i: u32, end: u32, f: vec4<f32>, mask: vec4<bool>) {
    for (var e = 0u; e < 4u; e++) {
        if (mask[e] && i + e < end) {
            probs[i + e] = probs[i + e] * f[e];
        }
    }
}
"#
);

/// The row kernel's prelude over `array<vec4<f32>>` probabilities: one load (and one store) per
/// group of 4 keys instead of four, which CPU-emulated adapters pay per invocation. Only for
/// rows whose groups all sit on 16 bytes inside the row (K and every sequence's first key
/// multiples of 4): the host picks it when they are.
pub const PRELUDE_ROWS_VEC4: &str = rows_prelude!(
    r#"
// var_rows over array<vec4<f32>> probs (K % 4 == 0, groups from a multiple of 4) and array<u32> classes.
fn load4(i: u32, end: u32) -> vec4<f32> {
    return probs[i / 4u];
}
fn begin_row(head: u32, q: u32, base: u32) {}
// Keys outside `mask` are written back as they were (one 16-byte store).
fn scale4(i: u32, end: u32, f: vec4<f32>, mask: vec4<bool>) {
    let v = probs[i / 4u];
    probs[i / 4u] = select(v, v * f, mask);
}
"#
);

/// The row kernel's prelude reading the probabilities from `staged`, an rgba32float copy of the
/// rows it visits made just before the dispatch, and writing them to `array<vec4<f32>>` probs.
/// lavapipe loads storage one SIMD lane at a time (a loop with a branch and a bounds check per
/// float) but fetches texels as a vector gather, about 5x faster, and copies a buffer into a
/// texture at memcpy speed. Same conditions as the vec4 prelude.
pub const PRELUDE_ROWS_STAGED: &str = rows_prelude!(
    r#"
// var_rows reading probs from the texture `staged` (K % 4 == 0, groups from a multiple of 4).
// The texture holds each bound head's rows row_start.. as consecutive texels, 4 keys a texel,
// STAGE_WIDTH texels a texture row, every head from a texture row of its own
// (StagingLayout in src/var/staging.rs).
const STAGE_WIDTH: u32 = 4096u;
var<private> stage_texel: u32;
var<private> stage_base: u32;
// The row that starts at element `base` is row q of the binding's head `head`.
fn begin_row(head: u32, q: u32, base: u32) {
    let texels = (cfg.queries - cfg.row_start) * (cfg.tokens / 4u);
    let rows_per_head = (texels + STAGE_WIDTH - 1u) / STAGE_WIDTH;
    stage_texel = head * rows_per_head * STAGE_WIDTH + (q - cfg.row_start) * (cfg.tokens / 4u);
    stage_base = base;
}
fn staged_at(i: u32) -> vec4<f32> {
    let t = stage_texel + (i - stage_base) / 4u;
    return textureLoad(staged, vec2<u32>(t % STAGE_WIDTH, t / STAGE_WIDTH), 0);
}
fn load4(i: u32, end: u32) -> vec4<f32> {
    return staged_at(i);
}
// Keys outside `mask` are written back as they were (one 16-byte store).
fn scale4(i: u32, end: u32, f: vec4<f32>, mask: vec4<bool>) {
    let v = staged_at(i);
    probs[i / 4u] = select(v, v * f, mask);
}
"#
);

/// `shaders/attention_var.wgsl`: fused attention with VAR inside.
pub const ATTENTION_VAR: &str = include_str!("../shaders/attention_var.wgsl");
/// `shaders/attention_split.wgsl`: split-K blocks of decode attention with VAR's partial state.
pub const ATTENTION_SPLIT: &str = include_str!("../shaders/attention_split.wgsl");
/// `shaders/attention_combine.wgsl`: merges the split-K blocks and applies VAR.
pub const ATTENTION_COMBINE: &str = include_str!("../shaders/attention_combine.wgsl");
/// `shaders/attention_append.wgsl`: a decode step's q, k and v into its split-K session.
pub const ATTENTION_APPEND: &str = include_str!("../shaders/attention_append.wgsl");
/// `shaders/attention_probs.wgsl`: the unfused path's softmax(Q K^T * scale).
pub const ATTENTION_PROBS: &str = include_str!("../shaders/attention_probs.wgsl");
/// `shaders/attention_pv.wgsl`: the unfused path's P V.
pub const ATTENTION_PV: &str = include_str!("../shaders/attention_pv.wgsl");
/// `shaders/dim_max.wgsl`: per-dimension max phi, for sink-dimension discovery.
pub const DIM_MAX: &str = include_str!("../shaders/dim_max.wgsl");
/// `shaders/heatmap.wgsl`: the heatmap render pipeline (vertex + fragment).
pub const HEATMAP: &str = include_str!("../shaders/heatmap.wgsl");
/// `shaders/heatmap_gather.wgsl`: one attention row per patch for the heatmap, on the GPU.
pub const HEATMAP_GATHER: &str = include_str!("../shaders/heatmap_gather.wgsl");
/// `shaders/copy_f32.wgsl`: the bandwidth baseline the benchmarks compare against.
pub const COPY_F32: &str = include_str!("../shaders/copy_f32.wgsl");
/// `shaders/read_f32.wgsl`: the read-only bandwidth baseline.
pub const READ_F32: &str = include_str!("../shaders/read_f32.wgsl");

/// Every shader with its file name, for validation tools and tests.
pub const ALL: &[(&str, &str)] = &[
    ("sink_score.wgsl", SINK_SCORE),
    ("var_rows.wgsl", VAR_ROWS),
    ("attention_var.wgsl", ATTENTION_VAR),
    ("attention_split.wgsl", ATTENTION_SPLIT),
    ("attention_combine.wgsl", ATTENTION_COMBINE),
    ("attention_append.wgsl", ATTENTION_APPEND),
    ("attention_probs.wgsl", ATTENTION_PROBS),
    ("attention_pv.wgsl", ATTENTION_PV),
    ("dim_max.wgsl", DIM_MAX),
    ("heatmap.wgsl", HEATMAP),
    ("heatmap_gather.wgsl", HEATMAP_GATHER),
    ("copy_f32.wgsl", COPY_F32),
    ("read_f32.wgsl", READ_F32),
];
