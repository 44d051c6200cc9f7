// Q4_1 in a texture, in planes (gpu/repack.rs): block j of a row is one texel of 16 quant
// bytes (the chunk's blocks first, rows grouped by 8: texel.wgsl's row_texel); then each
// block's (d, m) f16 pair as one word, row after row, 4 a texel (block b = row x blocks + j's
// in texel plane_rows() x blocks + b / 4, word b % 4). Nibbles as Q4_0's; value = q * d + m.

const BLOCK: u32 = 32u;

// block_dm(first, b): texture/dm_words.wgsl.

fn values(w: u32, dm: vec2<f32>) -> vec4<f32> {
    return fma(vec4<f32>(unpack4xU8(w & 0x0f0f0f0fu)), vec4<f32>(dm.x), vec4<f32>(dm.y));
}

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let b = row * blocks + j;
    let q = texel(row_texel(row, j, blocks));
    let dm = block_dm(plane_rows() * blocks, b);
    let c = 8u * j;
    xfma(values(q.x, dm), c);
    xfma(values(q.y, dm), c + 1u);
    xfma(values(q.z, dm), c + 2u);
    xfma(values(q.w, dm), c + 3u);
    xfma(values(q.x >> 4u, dm), c + 4u);
    xfma(values(q.y >> 4u, dm), c + 5u);
    xfma(values(q.z >> 4u, dm), c + 6u);
    xfma(values(q.w >> 4u, dm), c + 7u);
}
