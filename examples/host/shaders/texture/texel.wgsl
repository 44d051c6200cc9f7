// texel(t): texel t of `wt`, an rgba32uint texture holding a weight matrix's words in order, 4
// a texel, TEXELS_PER_ROW texels a texture row (gpu/matrix.rs stages them so), and xfma, which
// adds 4 weights times x to each of the tile's rows' accumulators (linear_texture.wgsl's
// uniform tile): 4 FMAs a row, the horizontal sum once at the end (a dot product per 4 weights
// costs 7 operations on a CPU adapter's SIMD lanes).

const TEXELS_PER_ROW: u32 = 4096u;

fn texel(t: u32) -> vec4<u32> {
    return textureLoad(wt, vec2<u32>(t % TEXELS_PER_ROW, t / TEXELS_PER_ROW), 0);
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
