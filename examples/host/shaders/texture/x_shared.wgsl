// x_shared.wgsl: x for linear_shared.wgsl, shared through subgroups (adapters with subgroups
// of 8 or more lanes): for every 32 values of a row (8 vec4, a window), lane l of each 8 loads
// vec4 l of each token (load_window, once for the invocation's rows and the window's blocks),
// then spreads the window to every lane with 8 broadcasts a token, and a row's FMAs take x
// from there. lavapipe gathers a uniform load lane by lane where its index varies in a loop,
// so x through the uniform tile costs a gather every 4 values; here one every 32 and 8
// broadcasts (LLaMA-7B shapes: decode 1.3x, prefill tiles of 8-16 tokens 2x faster in scratch
// kernels). Broadcasts with constant lanes, not subgroupShuffle: lavapipe's shuffle is a loop
// over the lanes.
//
// x comes from 4 uniform bindings of 64 KiB, TILE_TOKENS tokens each: token t's values e .. e +
// 4 at x{t / TILE_TOKENS}.v[(t % TILE_TOKENS) * kn / 4 + e / 4] (the dispatch's slice of x's
// values, kn of them from k0: all k where 16 tokens fit the bindings). Blocks of 64 values or fewer
// only (a window spans whole blocks; a block of 64 is a window of two halves, each lane
// loading a vec4 of each): lavapipe took a minute and more to compile a K-quant kernel of 8
// windows a block, so Q4_K comes a pair of sub-blocks at a time here and Q5_K and Q6_K one
// (texture/q4_k_sub.wgsl, q5_k_sub.wgsl, q6_k_sub.wgsl).

const_assert BLOCK <= 64u;

// Tokens a 64 KiB x binding holds (16384 / kn rounded down to a power of two, at most 16).
override TILE_TOKENS: u32 = 1u;

// The values a window holds: 32, or a block of 64.
const WINDOW: u32 = max(BLOCK, 32u);

// The blocks a window spans (4 for f16, 8 for f32).
const GROUP: u32 = WINDOW / BLOCK;

// The invocation's lane among each 8 of its subgroup (linear_shared.wgsl sets it).
var<private> lane8: u32;

// Token t's window, all 8 (or 16) vec4 (load_window).
var<private> xw: array<array<vec4<f32>, 16>, 16>;

// Token t's vec4 i (constant t: the binding folds).
fn x_at(t: u32, i: u32) -> vec4<f32> {
    let e = (t % TILE_TOKENS) * (p.kn / 4u) + i;
    let binding = t / TILE_TOKENS;
    if (binding == 0u) {
        return x0.v[e];
    }
    if (binding == 1u) {
        return x1.v[e];
    }
    if (binding == 2u) {
        return x2.v[e];
    }
    return x3.v[e];
}

// Token t's half window h (32 values from vec4 c + 8 h) into xw[t][8 h ..].
fn half_window(t: u32, c: u32, h: u32) {
    let v = x_at(t, c + 8u * h + lane8);
    xw[t][8u * h] = subgroupBroadcast(v, 0u);
    xw[t][8u * h + 1u] = subgroupBroadcast(v, 1u);
    xw[t][8u * h + 2u] = subgroupBroadcast(v, 2u);
    xw[t][8u * h + 3u] = subgroupBroadcast(v, 3u);
    xw[t][8u * h + 4u] = subgroupBroadcast(v, 4u);
    xw[t][8u * h + 5u] = subgroupBroadcast(v, 5u);
    xw[t][8u * h + 6u] = subgroupBroadcast(v, 6u);
    xw[t][8u * h + 7u] = subgroupBroadcast(v, 7u);
}

fn window_token(t: u32, c: u32) {
    half_window(t, c, 0u);
    if (BLOCK > 32u) { half_window(t, c, 1u); }
}

// The window from vec4 c on (c a multiple of WINDOW / 4), every token's, in every lane.
fn load_window(c: u32) {
    window_token(0u, c);
    if (TOKENS > 1u) { window_token(1u, c); }
    if (TOKENS > 2u) { window_token(2u, c); }
    if (TOKENS > 3u) { window_token(3u, c); }
    if (TOKENS > 4u) { window_token(4u, c); }
    if (TOKENS > 5u) { window_token(5u, c); }
    if (TOKENS > 6u) { window_token(6u, c); }
    if (TOKENS > 7u) { window_token(7u, c); }
    if (TOKENS > 8u) { window_token(8u, c); }
    if (TOKENS > 9u) { window_token(9u, c); }
    if (TOKENS > 10u) { window_token(10u, c); }
    if (TOKENS > 11u) { window_token(11u, c); }
    if (TOKENS > 12u) { window_token(12u, c); }
    if (TOKENS > 13u) { window_token(13u, c); }
    if (TOKENS > 14u) { window_token(14u, c); }
    if (TOKENS > 15u) { window_token(15u, c); }
}

// Block j, the i-th of its window, starts at the window's vec4 i x BLOCK / 4 (a constant).
fn at_block(j: u32, i: u32) {
    xb = i * (BLOCK / 4u);
}

// Token t's vec4 c of the block, from the window.
fn x_of(t: u32, c: u32) -> vec4<f32> {
    return xw[t][(xb + c) & 15u];
}

// A tile of several tokens keeps each token's sum as one chain of FMAs (tile.wgsl's
// chained): with 4 partial sums a token, 8 tokens x 4 rows are 128 sums, which lavapipe spills
// to memory at every FMA; with one they stay in registers and the tokens' chains interleave
// (scratch kernels at LLaMA-7B's shapes, 8 tokens x 4 rows: f16 1.35x, Q4_0 1.6x, Q8_0 1.5x
// faster). A decode step (one token) keeps 4: a single chain would wait on every FMA.
fn chained() -> bool {
    return TOKENS > 1u;
}

fn xfma_token(t: u32, w: vec4<f32>, c: u32) {
    let x = x_of(t, c);
    if (chained()) {
        acc[t].x = fma(w.w, x.w, fma(w.z, x.z, fma(w.y, x.y, fma(w.x, x.x, acc[t].x))));
    } else {
        acc[t] = fma(w, x, acc[t]);
    }
}

// Weights e .. e + 4 of the block (c = e / 4) times x's values there, added to each of the
// tile's tokens' sums.
fn xfma(w: vec4<f32>, c: u32) {
    xfma_token(0u, w, c);
    if (TOKENS > 1u) { xfma_token(1u, w, c); }
    if (TOKENS > 2u) { xfma_token(2u, w, c); }
    if (TOKENS > 3u) { xfma_token(3u, w, c); }
    if (TOKENS > 4u) { xfma_token(4u, w, c); }
    if (TOKENS > 5u) { xfma_token(5u, w, c); }
    if (TOKENS > 6u) { xfma_token(6u, w, c); }
    if (TOKENS > 7u) { xfma_token(7u, w, c); }
    if (TOKENS > 8u) { xfma_token(8u, w, c); }
    if (TOKENS > 9u) { xfma_token(9u, w, c); }
    if (TOKENS > 10u) { xfma_token(10u, w, c); }
    if (TOKENS > 11u) { xfma_token(11u, w, c); }
    if (TOKENS > 12u) { xfma_token(12u, w, c); }
    if (TOKENS > 13u) { xfma_token(13u, w, c); }
    if (TOKENS > 14u) { xfma_token(14u, w, c); }
    if (TOKENS > 15u) { xfma_token(15u, w, c); }
}

fn sum_token(t: u32, c: u32) {
    x_sum[t] = ((x_of(t, c) + x_of(t, c + 1u)) + (x_of(t, c + 2u) + x_of(t, c + 3u))) + ((x_of(t, c + 4u) + x_of(t, c + 5u)) + (x_of(t, c + 6u) + x_of(t, c + 7u)));
}

// x_sum: each token's 32 values from the block's vec4 c (0 or 8), as 4 partial sums (tile.wgsl's
// block_end).
fn x_sums(c: u32) {
    sum_token(0u, c);
    if (TOKENS > 1u) { sum_token(1u, c); }
    if (TOKENS > 2u) { sum_token(2u, c); }
    if (TOKENS > 3u) { sum_token(3u, c); }
    if (TOKENS > 4u) { sum_token(4u, c); }
    if (TOKENS > 5u) { sum_token(5u, c); }
    if (TOKENS > 6u) { sum_token(6u, c); }
    if (TOKENS > 7u) { sum_token(7u, c); }
    if (TOKENS > 8u) { sum_token(8u, c); }
    if (TOKENS > 9u) { sum_token(9u, c); }
    if (TOKENS > 10u) { sum_token(10u, c); }
    if (TOKENS > 11u) { sum_token(11u, c); }
    if (TOKENS > 12u) { sum_token(12u, c); }
    if (TOKENS > 13u) { sum_token(13u, c); }
    if (TOKENS > 14u) { sum_token(14u, c); }
    if (TOKENS > 15u) { sum_token(15u, c); }
}
