// texel(t): texel t of `wt`, an rgba32uint texture holding a weight matrix's words in order, 4
// a texel, TEXELS_PER_ROW texels a texture row (gpu/matrix.rs stages them so).

const TEXELS_PER_ROW: u32 = 4096u;

fn texel(t: u32) -> vec4<u32> {
    return textureLoad(wt, vec2<u32>(t % TEXELS_PER_ROW, t / TEXELS_PER_ROW), 0);
}

// A format's main plane (the floats; the quants of the repacked formats; Q4_K and Q5_K's
// super-blocks) holds `per_row` texels a row of W, the rows in groups of 8 whose texels j lie
// side by side (gpu/interleave.rs stages them so): the rows an invocation multiplies (ROWS <=
// 8, from a multiple of ROWS) and a SIMD group's lanes read neighbouring texels, 8 streams
// through memory where row after row would be 8 x ROWS (lavapipe read an f16 matrix 1.3x
// faster at 8 rows an invocation so). row_texel is row `row`'s texel j there; next(t, i) the
// row's i-th texel after t.
fn row_texel(row: u32, j: u32, per_row: u32) -> u32 {
    return ((row >> 3u) * per_row + j) * 8u + (row & 7u);
}

fn next(t: u32, i: u32) -> u32 {
    return t + 8u * i;
}

// The rows the main plane holds: the chunk's rounded up to whole groups of 8. The planes after
// it (scales) start at plane_rows() x per_row texels and keep the row-after-row order.
fn plane_rows() -> u32 {
    return (p.m + 7u) & ~7u;
}
