// linear_texture.wgsl: out = x W^T + b for up to 4 rows of x (a tile of tokens), W kept in an
// rgba32uint texture (texture/texel.wgsl) and x read from a uniform buffer: the layout
// for adapters whose storage loads cost per lane (CPU adapters: lavapipe gathers a texel about
// 10x faster than storage words, and a uniform load every lane shares is one load). x [n, k]
// (this dispatch's tokens t0 .. t0 + p.n), W [m, k], b [m], out [*, ldo] rows t0.. at columns
// col0 .. col0 + m, f32 accumulation. The declaration's variant decodes W: its prelude's
// dot_block(row, j) adds the row's j-th BLOCK values times x to the tile's sums (texture/*.wgsl:
// a texel layout of its own for every format but Q2_K and Q3_K, which go through
// their load8); the tile, its sums and stores are texture/tile.wgsl's, x's loads
// texture/x_uniform.wgsl's (linear_shared.wgsl: the same with x shared through subgroups).
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

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let first = ((wg.x + wg.y * nwg.x) * 64u + lane) * ROWS;
    for (var j = 0u; j < p.k / BLOCK; j++) {
        block(first, j, 0u);
    }
    store_rows(first);
}
