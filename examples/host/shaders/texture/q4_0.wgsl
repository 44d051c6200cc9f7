// Q4_0 in a texture, in planes (gpu/repack.rs): block j of a row is one texel of 16 quant
// bytes (the chunk's blocks first, rows grouped by 8: texel.wgsl's row_texel); then the f16
// scales in groups too (texture/half_scales.wgsl's group_scale, from texel plane_rows() x
// blocks). Value j < 16 is the low nibble of quant byte j, j + 16 its
// high nibble; value = (q - 8) * d.

const BLOCK: u32 = 32u;

// The group's scales, once a block for the invocation's rows (texture/half_scales.wgsl).
fn prep(row: u32, j: u32) {
    let blocks = p.k / 32u;
    prep_group_scales(plane_rows() * blocks, row, j, blocks);
}

fn values(w: u32, d: f32) -> vec4<f32> {
    return (vec4<f32>(unpack4xU8(w & 0x0f0f0f0fu)) - 8.0) * d;
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let q = texel(row_texel(row, j, blocks));
    let d = group_scale(row);
    let c = 8u * j;
    xfma(values(q.x, d), c);
    xfma(values(q.y, d), c + 1u);
    xfma(values(q.z, d), c + 2u);
    xfma(values(q.w, d), c + 3u);
    xfma(values(q.x >> 4u, d), c + 4u);
    xfma(values(q.y >> 4u, d), c + 5u);
    xfma(values(q.z >> 4u, d), c + 6u);
    xfma(values(q.w >> 4u, d), c + 7u);
}
