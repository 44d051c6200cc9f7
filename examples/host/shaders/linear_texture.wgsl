// linear_texture.wgsl: out = x W^T + b for up to 4 rows of x (a tile of tokens), W kept in an
// rgba32uint texture (texture/texel.wgsl) and x read from a uniform buffer: the layout
// for adapters whose storage loads cost per lane (CPU adapters: lavapipe gathers a texel about
// 10x faster than storage words, and a uniform load every lane shares is one load). x [n, k]
// (this dispatch's tokens t0 .. t0 + p.n), W [m, k], b [m], out [*, ldo] rows t0.. at columns
// col0 .. col0 + m, f32 accumulation. The declaration's variant decodes W: its prelude's
// dot_block(row, j) adds the row's j-th BLOCK values times x to the tile's sums (texture/*.wgsl:
// a texel layout of its own for every format but Q2_K and Q3_K, which go through
// their load8).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/linear.rs):
//   0  uniform          p: LinearParams      n (<= 4), m, k (a multiple of 8), bias, ldo, col0,
//                                            t0, the tile's first token
//   1  uniform          x: XTile             64 KiB from token t0 on: x[t * k + e] (n * k <= 16384)
//   2  texture_2d<u32>  wt                   W's words (a row chunk of it)
//   3  storage, read    b: array<f32>        [col0 + m] (any 1-element buffer when p.bias is 0)
//   4  storage, rw      out: array<f32>      [(t0 + n) * ldo]
// Dispatch: workgroups of 64, ROWS rows of W per invocation, n = ceil(m / ROWS) on a 2-D grid
//   (min(ceil(n / 64), 65535), ...). No workgroup memory, no barriers: each invocation walks
//   its rows a block at a time, each block decoded once for the tile's TOKENS rows of x, and
//   each x value it loads used for all ROWS rows (a CPU adapter pays per uniform load what
//   several FMAs cost: lavapipe runs a Q4_0 decode step 1.7x faster with 8 rows than with 1).

struct LinearParams {
    n: u32,
    m: u32,
    k: u32,
    bias: u32,
    ldo: u32,
    col0: u32,
    t0: u32,
    pad1: u32,
}

struct XTile {
    v: array<vec4<f32>, 4096>,
}

// Rows of x a dispatch multiplies (its tile): 1 for a decode step, up to 4 in a prefill; a
// tile of fewer rows (the prompt's last) computes the rest from the tile's padding and writes
// only its p.n.
override TOKENS: u32 = 1u;

// Rows of W an invocation multiplies: 1, 2, 4 or 8 (linear::TextureTiling, autotuned).
override ROWS: u32 = 1u;

// The sums of the invocation's rows after its first, 4 a row (one per token of the tile),
// while dot_block adds into acc0 .. acc3 (texture/texel.wgsl).
var<private> held: array<vec4<f32>, 28>;

// Swaps row q's sums (1 <= q < ROWS) with acc0 .. acc3. q is a constant at every call, so
// once inlined every index is and the array lives in registers (no per-lane stack traffic).
fn swap(q: u32) {
    let i = 4u * (q - 1u);
    let t0 = acc0;
    acc0 = held[i];
    held[i] = t0;
    if (TOKENS > 1u) {
        let t1 = acc1;
        acc1 = held[i + 1u];
        held[i + 1u] = t1;
    }
    if (TOKENS > 2u) {
        let t2 = acc2;
        acc2 = held[i + 2u];
        held[i + 2u] = t2;
    }
    if (TOKENS > 3u) {
        let t3 = acc3;
        acc3 = held[i + 3u];
        held[i + 3u] = t3;
    }
}

// Block j of row `first + q` (rows past the end walk the last row, in bounds, and write
// nothing), into that row's sums.
fn row_block(q: u32, first: u32, j: u32) {
    if (q < ROWS) {
        swap(q);
        dot_block(min(first + q, p.m - 1u), j);
        swap(q);
    }
}

// Writes acc0 .. acc3 (+ bias) as row `row`'s outputs for the tile's p.n tokens.
fn store(row: u32) {
    if (row >= p.m) {
        return;
    }
    let one = vec4<f32>(1.0);
    let acc = vec4<f32>(dot(acc0, one), dot(acc1, one), dot(acc2, one), dot(acc3, one));
    let bias = select(0.0, b[p.col0 + row], p.bias != 0u);
    for (var t = 0u; t < p.n; t++) {
        out[(p.t0 + t) * p.ldo + p.col0 + row] = acc[t] + bias;
    }
}

fn row_store(q: u32, first: u32) {
    if (q < ROWS) {
        swap(q);
        store(first + q);
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let first = ((wg.x + wg.y * nwg.x) * 64u + lane) * ROWS;
    for (var j = 0u; j < p.k / BLOCK; j++) {
        prep(min(first, p.m - 1u), j);
        dot_block(min(first, p.m - 1u), j);
        row_block(1u, first, j);
        row_block(2u, first, j);
        row_block(3u, first, j);
        row_block(4u, first, j);
        row_block(5u, first, j);
        row_block(6u, first, j);
        row_block(7u, first, j);
    }
    store(first);
    row_store(1u, first);
    row_store(2u, first);
    row_store(3u, first);
    row_store(4u, first);
    row_store(5u, first);
    row_store(6u, first);
    row_store(7u, first);
}
