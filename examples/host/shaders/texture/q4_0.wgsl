// Q4_0 in a texture, in planes (gpu/repack.rs): block j of a row is one texel of 16 quant
// bytes (the chunk's blocks first, rows grouped by 8: texel.wgsl's row_texel); then the f16
// scales in groups too (texture/half_scales.wgsl's group_scale, from texel plane_rows() x
// blocks). Value j < 16 is the low nibble of quant byte j, j + 16 its
// high nibble; value = (q - 8) * d.

const BLOCK: u32 = 32u;

// The block's sums apart from the tile's: sum (q - 8) d x = d (sum q x) - 8 d (sum x), where
// sum x over the block is the same for every row, so prep takes it once a block for the
// invocation's rows (x_sum0 .. 3, one a token of the tile) and a row multiplies its nibbles
// as they are (no subtraction, no scaling a value).
var<private> x_sum0: vec4<f32>;
var<private> x_sum1: vec4<f32>;
var<private> x_sum2: vec4<f32>;
var<private> x_sum3: vec4<f32>;

// x's 32 values of the block from vec4 c, as 4 partial sums.
fn x_block(c: u32) -> vec4<f32> {
    return ((x.v[c] + x.v[c + 1u]) + (x.v[c + 2u] + x.v[c + 3u])) + ((x.v[c + 4u] + x.v[c + 5u]) + (x.v[c + 6u] + x.v[c + 7u]));
}

// The group's scales (texture/half_scales.wgsl) and the block's x sums, once a block for the
// invocation's rows.
fn prep(row: u32, j: u32) {
    let blocks = p.k / 32u;
    prep_group_scales(plane_rows() * blocks, row, j, blocks);
    let c = 8u * j;
    let k4 = p.k / 4u;
    x_sum0 = x_block(c);
    if (TOKENS > 1u) {
        x_sum1 = x_block(k4 + c);
    }
    if (TOKENS > 2u) {
        x_sum2 = x_block(2u * k4 + c);
    }
    if (TOKENS > 3u) {
        x_sum3 = x_block(3u * k4 + c);
    }
}

fn nibbles(w: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(w & 0x0f0f0f0fu));
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let q = texel(row_texel(row, j, blocks));
    let d = vec4<f32>(group_scale(row));
    let m = -8.0 * d;
    let kept = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    acc0 = vec4<f32>(0.0);
    acc1 = vec4<f32>(0.0);
    acc2 = vec4<f32>(0.0);
    acc3 = vec4<f32>(0.0);
    let c = 8u * j;
    xfma(nibbles(q.x), c);
    xfma(nibbles(q.y), c + 1u);
    xfma(nibbles(q.z), c + 2u);
    xfma(nibbles(q.w), c + 3u);
    xfma(nibbles(q.x >> 4u), c + 4u);
    xfma(nibbles(q.y >> 4u), c + 5u);
    xfma(nibbles(q.z >> 4u), c + 6u);
    xfma(nibbles(q.w >> 4u), c + 7u);
    acc0 = fma(d, acc0, fma(m, x_sum0, kept[0]));
    acc1 = fma(d, acc1, fma(m, x_sum1, kept[1]));
    acc2 = fma(d, acc2, fma(m, x_sum2, kept[2]));
    acc3 = fma(d, acc3, fma(m, x_sum3, kept[3]));
}
