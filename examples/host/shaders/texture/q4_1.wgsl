// Q4_1 in a texture, in planes (gpu/repack.rs): block j of a row is one texel of 16 quant
// bytes (the chunk's blocks first, rows grouped by 8: texel.wgsl's row_texel); then each
// block's (d, m) f16 pair as one word, in groups too (texture/dm_words.wgsl's group_dm, from
// texel plane_rows() x blocks). Nibbles as Q4_0's; value = q * d + m.

const BLOCK: u32 = 32u;

fn values(w: u32, dm: vec2<f32>) -> vec4<f32> {
    return fma(vec4<f32>(unpack4xU8(w & 0x0f0f0f0fu)), vec4<f32>(dm.x), vec4<f32>(dm.y));
}

// The group's (d, m) pairs, once a block for the invocation's rows (texture/dm_words.wgsl).
fn prep(row: u32, j: u32) {
    let blocks = p.k / 32u;
    prep_group_dm(plane_rows() * blocks, row, j, blocks);
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let q = texel(row_texel(row, j, blocks));
    let dm = group_dm(row);
    xfma(values(q.x, dm), 0u);
    xfma(values(q.y, dm), 1u);
    xfma(values(q.z, dm), 2u);
    xfma(values(q.w, dm), 3u);
    xfma(values(q.x >> 4u, dm), 4u);
    xfma(values(q.y >> 4u, dm), 5u);
    xfma(values(q.z >> 4u, dm), 6u);
    xfma(values(q.w >> 4u, dm), 7u);
}
