// Q8_0 in a texture, in planes (gpu/repack.rs): block j of a row is two texels of 32 quant
// bytes (the chunk's blocks first, rows grouped by 8: texel.wgsl's row_texel); then the f16
// scales in groups too (texture/half_scales.wgsl's group_scale, from texel 2 plane_rows() x
// blocks); value j = qs[j] * d.

const BLOCK: u32 = 32u;

// The group's scales, once a block for the invocation's rows (texture/half_scales.wgsl).
fn prep(row: u32, j: u32) {
    let blocks = p.k / 32u;
    prep_group_scales(2u * plane_rows() * blocks, row, j, blocks);
}

// A decode step (one token) takes the block's sum as d (sum q x): the quants multiply x as they
// are and d scales the sum once (tile.wgsl's block_start / block_end), not each value. A
// prefill tile scales the values as it decodes them, once for all its tokens: the kept sums
// block_start holds would cost it registers it has none left for.
fn quants(w: u32, d: f32) -> vec4<f32> {
    let q = vec4<f32>(unpack4xI8(w));
    return select(q * d, q, TOKENS == 1u);
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let t = row_texel(row, 2u * j, 2u * blocks);
    let lo = texel(t);
    let hi = texel(next(t, 1u));
    let d = group_scale(row);
    if (TOKENS == 1u) { block_start(); }
    xfma(quants(lo.x, d), 0u);
    xfma(quants(lo.y, d), 1u);
    xfma(quants(lo.z, d), 2u);
    xfma(quants(lo.w, d), 3u);
    xfma(quants(hi.x, d), 4u);
    xfma(quants(hi.y, d), 5u);
    xfma(quants(hi.z, d), 6u);
    xfma(quants(hi.w, d), 7u);
    if (TOKENS == 1u) { block_end(vec4<f32>(d), vec4<f32>(0.0)); }
}
