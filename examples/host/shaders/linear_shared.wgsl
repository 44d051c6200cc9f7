// linear_shared.wgsl: linear_texture.wgsl with x shared through subgroups
// (texture/x_shared.wgsl), for adapters with subgroups of 8 or more lanes: out = x W^T + b for
// up to 16 rows of x (a tile of tokens), W in an rgba32uint texture (texture/texel.wgsl) in a
// format of blocks of 64 values or fewer (the K-quants' sub-blocks: texture/q4_k_sub.wgsl), x
// from 4 uniform bindings of TILE_TOKENS rows each. x [n, kn] (this dispatch's tokens t0 .. t0 +
// p.n; its slice of k), W [m, k], b [m], out [*, ldo] rows t0.. at columns col0 .. col0 + m, f32
// accumulation; the declaration's variant decodes W (texture/*.wgsl's dot_block, as
// linear_texture.wgsl's).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/linear.rs):
//   0  uniform          p: LinearParams      n (<= 16), m, k (a multiple of 32), bias, ldo, col0,
//                                            t0, the tile's first token; k0, kn, the slice of
//                                            k this dispatch multiplies (a multiple of 64
//                                            each; after the first, it adds to out)
//   1-4 uniform         x0 .. x3: XTile      64 KiB each, from tokens t0, t0 + TILE_TOKENS, ..
//                                            (a binding no token of the tile reads: any range)
//   5  texture_2d<u32>  wt                   W's words (a row chunk of it)
//   6  storage, read    b: array<f32>        [col0 + m] (any 1-element buffer when p.bias is 0)
//   7  storage, rw      out: array<f32>      [(t0 + n) * ldo]
// Dispatch: workgroups of 64, ROWS rows of W per invocation, n = ceil(m / ROWS) on a 2-D grid
//   (min(ceil(n / 64), 65535), ...). No workgroup memory, no barriers; every invocation of a
//   subgroup runs every shuffle (rows past m walk the last row), so all of them take part.

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    lane8 = sid & 7u;
    let first = ((wg.x + wg.y * nwg.x) * 64u + lane) * ROWS;
    // A window's blocks one after the other, each with a constant offset in it (x_of's index
    // folds: a variable one would put the window in memory).
    for (var g = 0u; g < p.kn / WINDOW; g++) {
        load_window(g * (WINDOW / 4u));
        let j = p.k0 / BLOCK + g * GROUP;
        block(first, j, 0u);
        // GROUP (WINDOW / BLOCK) blocks a window: one guarded call a line, on BLOCK (a literal
        // constant, which the pipeline's specialization folds).
        if (BLOCK < 32u) { block(first, j + 1u, 1u); }
        if (BLOCK < 32u) { block(first, j + 2u, 2u); }
        if (BLOCK < 32u) { block(first, j + 3u, 3u); }
        if (BLOCK < 8u) { block(first, j + 4u, 4u); }
        if (BLOCK < 8u) { block(first, j + 5u, 5u); }
        if (BLOCK < 8u) { block(first, j + 6u, 6u); }
        if (BLOCK < 8u) { block(first, j + 7u, 7u); }
    }
    store_rows(first);
}
