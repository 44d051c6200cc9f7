// tile.wgsl: what the texture kernels (linear_texture.wgsl, linear_shared.wgsl) share: the
// tile of TOKENS rows of x a dispatch multiplies by ROWS rows of W an invocation takes, the
// tile's sums, the walk over a row's blocks and the stores. Every step over the tile's tokens
// is one call per token with a constant t, behind a guard on TOKENS (a constant once the
// pipeline's overrides are in): a loop over the tokens indexes the sums with a variable, which
// puts them in memory on a CPU adapter (lavapipe ran a scratch kernel so up to 2x slower).

struct XTile {
    v: array<vec4<f32>, 4096>,
}

// Rows of x a dispatch multiplies (its tile): 1 for a decode step, up to 4 through the uniform
// tile and 16 through the shared one; a tile of fewer rows (the prompt's last) computes the
// rest from the tile's padding and writes only its p.n.
override TOKENS: u32 = 1u;

// Rows of W an invocation multiplies: 1, 2, 4 or 8 (linear::TextureTiling, autotuned), up to
// 128 sums with the tokens (16 x 8: the autotune's probe of LLaMA-7B-like f16 rows ran 16
// tokens in 4.66 ms at 8 rows, 5.10 at 4).
override ROWS: u32 = 1u;

// The sums of the row dot_block is on, one a token of the tile, each 4 partial sums (4 FMAs a
// row and token, the horizontal sum once at the end: a dot product per 4 weights costs 7
// operations on a CPU adapter's SIMD lanes), or, where the x file's chained() says so, one
// chain in .x (y, z, w stay 0: constants the compiler drops).
var<private> acc: array<vec4<f32>, 16>;

// The sums of the invocation's rows after its first, TOKENS a row, while dot_block adds into
// acc.
var<private> held: array<vec4<f32>, 112>;

fn swap_token(t: u32, h: u32) {
    let a = acc[t];
    acc[t] = held[h + t];
    held[h + t] = a;
}

// Swaps row q's sums (1 <= q < ROWS) with acc. q is a constant at every call, so once inlined
// every index is and the arrays live in registers (no per-lane stack traffic).
fn swap(q: u32) {
    let h = TOKENS * (q - 1u);
    swap_token(0u, h);
    if (TOKENS > 1u) { swap_token(1u, h); }
    if (TOKENS > 2u) { swap_token(2u, h); }
    if (TOKENS > 3u) { swap_token(3u, h); }
    if (TOKENS > 4u) { swap_token(4u, h); }
    if (TOKENS > 5u) { swap_token(5u, h); }
    if (TOKENS > 6u) { swap_token(6u, h); }
    if (TOKENS > 7u) { swap_token(7u, h); }
    if (TOKENS > 8u) { swap_token(8u, h); }
    if (TOKENS > 9u) { swap_token(9u, h); }
    if (TOKENS > 10u) { swap_token(10u, h); }
    if (TOKENS > 11u) { swap_token(11u, h); }
    if (TOKENS > 12u) { swap_token(12u, h); }
    if (TOKENS > 13u) { swap_token(13u, h); }
    if (TOKENS > 14u) { swap_token(14u, h); }
    if (TOKENS > 15u) { swap_token(15u, h); }
}

// Block j of row `first + q` (1 <= q < ROWS; rows past the end walk the last row, in bounds,
// and write nothing), into that row's sums.
fn row_block(q: u32, first: u32, j: u32) {
    swap(q);
    dot_block(min(first + q, p.m - 1u), j);
    swap(q);
}

// Where in x the block dot_block is on starts: its vec4 in the row (x_uniform.wgsl) or in the
// windows (x_shared.wgsl: a constant), set by at_block. A format's xfma and x_sums take offsets
// into its block, constants all (the windows are private arrays: an index that is not a
// constant at compile time costs lavapipe a branch ladder a load, and a minute's compile).
var<private> xb: u32;

// Block j of the invocation's rows, the i-th of its x window (x_shared.wgsl; 0 for
// x_uniform.wgsl): what the format loads once for them all (prep), then each row's values
// times the tile. Like every unrolled step, one guarded call a line: a pipeline's source
// has those guards folded before the driver inlines the calls (visattn's kernel::specialize;
// lavapipe took seconds to build a pipeline of dead calls).
fn block(first: u32, j: u32, i: u32) {
    at_block(j, i);
    prep(min(first, p.m - 1u), j);
    dot_block(min(first, p.m - 1u), j);
    if (ROWS > 1u) { row_block(1u, first, j); }
    if (ROWS > 2u) { row_block(2u, first, j); }
    if (ROWS > 3u) { row_block(3u, first, j); }
    if (ROWS > 4u) { row_block(4u, first, j); }
    if (ROWS > 5u) { row_block(5u, first, j); }
    if (ROWS > 6u) { row_block(6u, first, j); }
    if (ROWS > 7u) { row_block(7u, first, j); }
}

fn store_token(t: u32, row: u32, bias: f32) {
    if (t < p.n) {
        let o = (p.t0 + t) * p.ldo + p.col0 + row;
        let v = dot(acc[t], vec4<f32>(1.0));
        if (p.k0 == 0u) {
            out[o] = v + bias;
        } else {
            out[o] += v;
        }
    }
}

// Writes acc (+ bias) as row `row`'s outputs for the tile's p.n tokens.
fn store(row: u32) {
    if (row >= p.m) {
        return;
    }
    let bias = select(0.0, b[p.col0 + row], p.bias != 0u);
    store_token(0u, row, bias);
    if (TOKENS > 1u) { store_token(1u, row, bias); }
    if (TOKENS > 2u) { store_token(2u, row, bias); }
    if (TOKENS > 3u) { store_token(3u, row, bias); }
    if (TOKENS > 4u) { store_token(4u, row, bias); }
    if (TOKENS > 5u) { store_token(5u, row, bias); }
    if (TOKENS > 6u) { store_token(6u, row, bias); }
    if (TOKENS > 7u) { store_token(7u, row, bias); }
    if (TOKENS > 8u) { store_token(8u, row, bias); }
    if (TOKENS > 9u) { store_token(9u, row, bias); }
    if (TOKENS > 10u) { store_token(10u, row, bias); }
    if (TOKENS > 11u) { store_token(11u, row, bias); }
    if (TOKENS > 12u) { store_token(12u, row, bias); }
    if (TOKENS > 13u) { store_token(13u, row, bias); }
    if (TOKENS > 14u) { store_token(14u, row, bias); }
    if (TOKENS > 15u) { store_token(15u, row, bias); }
}

fn row_store(q: u32, first: u32) {
    swap(q);
    store(first + q);
}

fn store_rows(first: u32) {
    store(first);
    if (ROWS > 1u) { row_store(1u, first); }
    if (ROWS > 2u) { row_store(2u, first); }
    if (ROWS > 3u) { row_store(3u, first); }
    if (ROWS > 4u) { row_store(4u, first); }
    if (ROWS > 5u) { row_store(5u, first); }
    if (ROWS > 6u) { row_store(6u, first); }
    if (ROWS > 7u) { row_store(7u, first); }
}

// A block's sum with a term every row shares taken out (texture/q4_0.wgsl: sum (q - 8) d x =
// d sum q x - 8 d sum x): block_start keeps the row's sums and clears them for the block's raw
// products, block_end adds d times those and m times x's block sums (x_sum, from the x
// prelude's x_sums) to what it kept (d and m splats, the same in each component: chained sums
// take d.x).
var<private> kept: array<vec4<f32>, 16>;
var<private> x_sum: array<vec4<f32>, 16>;

fn start_token(t: u32) {
    kept[t] = acc[t];
    acc[t] = vec4<f32>(0.0);
}

fn block_start() {
    start_token(0u);
    if (TOKENS > 1u) { start_token(1u); }
    if (TOKENS > 2u) { start_token(2u); }
    if (TOKENS > 3u) { start_token(3u); }
    if (TOKENS > 4u) { start_token(4u); }
    if (TOKENS > 5u) { start_token(5u); }
    if (TOKENS > 6u) { start_token(6u); }
    if (TOKENS > 7u) { start_token(7u); }
    if (TOKENS > 8u) { start_token(8u); }
    if (TOKENS > 9u) { start_token(9u); }
    if (TOKENS > 10u) { start_token(10u); }
    if (TOKENS > 11u) { start_token(11u); }
    if (TOKENS > 12u) { start_token(12u); }
    if (TOKENS > 13u) { start_token(13u); }
    if (TOKENS > 14u) { start_token(14u); }
    if (TOKENS > 15u) { start_token(15u); }
}

fn end_token(t: u32, d: vec4<f32>, m: vec4<f32>) {
    if (chained()) {
        acc[t] = vec4<f32>(fma(d.x, acc[t].x, dot(m, x_sum[t]) + kept[t].x), 0.0, 0.0, 0.0);
    } else {
        acc[t] = fma(d, acc[t], fma(m, x_sum[t], kept[t]));
    }
}

fn block_end(d: vec4<f32>, m: vec4<f32>) {
    end_token(0u, d, m);
    if (TOKENS > 1u) { end_token(1u, d, m); }
    if (TOKENS > 2u) { end_token(2u, d, m); }
    if (TOKENS > 3u) { end_token(3u, d, m); }
    if (TOKENS > 4u) { end_token(4u, d, m); }
    if (TOKENS > 5u) { end_token(5u, d, m); }
    if (TOKENS > 6u) { end_token(6u, d, m); }
    if (TOKENS > 7u) { end_token(7u, d, m); }
    if (TOKENS > 8u) { end_token(8u, d, m); }
    if (TOKENS > 9u) { end_token(9u, d, m); }
    if (TOKENS > 10u) { end_token(10u, d, m); }
    if (TOKENS > 11u) { end_token(11u, d, m); }
    if (TOKENS > 12u) { end_token(12u, d, m); }
    if (TOKENS > 13u) { end_token(13u, d, m); }
    if (TOKENS > 14u) { end_token(14u, d, m); }
    if (TOKENS > 15u) { end_token(15u, d, m); }
}
