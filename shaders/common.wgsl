// common.wgsl: the prelude every kernel in shaders/ is composed with (src/kernel/shaders.rs
// prepends it: WGSL has no includes). It holds what the kernels and the Rust side must agree on:
// the uniform structs (mirrored in src/kernel/uniforms.rs, whose sizes and field offsets a test
// reflects against these), the token classes and layer roles as named constants, and the
// workgroup size. It declares no bindings and has no entry point; unused declarations cost
// nothing. Line numbers in naga's errors count from this file's first line.
//
// Bindings: none (each kernel names its own). Dispatch: none.

// The workgroup size of every compute kernel.
const WG: u32 = 64u;
// The largest head_dim the attention kernels hold (Rust MAX_HEAD_DIM).
const MAX_D: u32 = 128u;
// var-spec.md's 1e-12 guard against dividing by a vanishing mass.
const GUARD: f32 = 1e-12;

// Token classes, one u32 per token in classes[] and visual[].
const CLASS_IMAGE: u32 = 1u;
const CLASS_SINK: u32 = 2u;
// The token's tile of 16 keys (from its batch row's start) holds an image token.
const CLASS_IMAGE_TILE: u32 = 4u;

// Layer roles (Config.role), in Rust LayerRole's order.
const ROLE_OFF: u32 = 0u;
const ROLE_DETECT: u32 = 1u;
const ROLE_REDISTRIBUTE: u32 = 2u;

// A sequence's shape and VAR's settings for one layer role: one slot per role, selected by
// dynamic offset.
struct Config {
    tokens: u32,
    hidden: u32,
    n_sink_dims: u32,
    heads: u32,
    queries: u32,
    row_start: u32,
    first_image_end: u32,
    role: u32,
    tau: f32,
    summ: f32,
    rho: f32,
    keep: f32,
    p: f32,
    vis_eps: f32,
    pad0: u32,
    pad1: u32,
}

// One sequence of a left-padded batch.
struct Seq {
    key_offset: u32,
    first_row: u32,
    first_image_end: u32,
    vis_eps: f32,
}

// Which heads and tokens a binding holds.
struct Range {
    head_offset: u32,
    heads: u32,
    token_offset: u32,
    tokens: u32,
}

// Attention shapes, scale and mask of the fused and unfused kernels.
struct Attn {
    heads: u32,
    kv_heads: u32,
    queries: u32,
    keys: u32,
    causal: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
}

// Attn plus the split-K blocks of decode attention.
struct SplitParams {
    attn: Attn,
    block: u32,
    blocks: u32,
    capacity: u32,
    pad0: u32,
}

// Elements and work per workgroup of the bandwidth baselines.
struct CopyParams {
    len: u32,
    per_workgroup: u32,
    pad0: u32,
    pad1: u32,
}
