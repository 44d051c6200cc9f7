// texel(t): texel t of `wt`, an rgba32uint texture holding a weight matrix's words in order, 4
// a texel, TEXELS_PER_ROW texels a texture row (gpu/matrix.rs stages them so), and xfma, which
// adds 4 weights times x to each of the tile's rows' accumulators (linear_texture.wgsl's
// uniform tile): 4 FMAs a row, the horizontal sum once at the end (a dot product per 4 weights
// costs 7 operations on a CPU adapter's SIMD lanes).

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

// The invocation's sums, one per row of the tile, each 4 partial sums.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;

// Weights e .. e + 4 of a row (c = e / 4) times x's values e .. e + 4, added to the
// accumulator of each of the tile's TOKENS rows.
fn xfma(w: vec4<f32>, c: u32) {
    let k4 = p.k / 4u;
    acc0 = fma(w, x.v[c], acc0);
    if (TOKENS > 1u) {
        acc1 = fma(w, x.v[k4 + c], acc1);
    }
    if (TOKENS > 2u) {
        acc2 = fma(w, x.v[2u * k4 + c], acc2);
    }
    if (TOKENS > 3u) {
        acc3 = fma(w, x.v[3u * k4 + c], acc3);
    }
}
