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
// Dispatch: workgroups of 64, one row of W per invocation, n = m on a 2-D grid
//   (min(ceil(m / 64), 65535), ...). No workgroup memory, no barriers: each invocation walks
//   its row a block at a time, each block decoded once for the tile's TOKENS rows.

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

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row = (wg.x + wg.y * nwg.x) * 64u + lane;
    // Rows past the end walk the last row (in bounds) and write nothing.
    let r = min(row, p.m - 1u);
    for (var j = 0u; j < p.k / BLOCK; j++) {
        dot_block(r, j);
    }
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
