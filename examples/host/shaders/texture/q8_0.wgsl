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

fn values(w: u32, d: f32) -> vec4<f32> {
    return vec4<f32>(unpack4xI8(w)) * d;
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let t = row_texel(row, 2u * j, 2u * blocks);
    let lo = texel(t);
    let hi = texel(next(t, 1u));
    let d = group_scale(row);
    xfma(values(lo.x, d), 0u);
    xfma(values(lo.y, d), 1u);
    xfma(values(lo.z, d), 2u);
    xfma(values(lo.w, d), 3u);
    xfma(values(hi.x, d), 4u);
    xfma(values(hi.y, d), 5u);
    xfma(values(hi.z, d), 6u);
    xfma(values(hi.w, d), 7u);
}
