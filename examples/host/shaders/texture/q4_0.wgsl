// Q4_0 in a texture, in planes (gpu/repack.rs): block j of a row is one texel of 16 quant
// bytes (the chunk's blocks first, rows grouped by 8: texel.wgsl's row_texel); then the f16
// scales in groups too (texture/half_scales.wgsl's group_scale, from texel plane_rows() x
// blocks). Value j < 16 is the low nibble of quant byte j, j + 16 its
// high nibble; value = (q - 8) * d.

const BLOCK: u32 = 32u;

// The block's sums apart from the tile's: sum (q - 8) d x = d (sum q x) - 8 d (sum x), where
// sum x over the block is the same for every row, so prep takes it once a block for the
// invocation's rows (x_sums) and a row multiplies its nibbles as they are (no subtraction, no
// scaling a value; tile.wgsl's block_start / block_end).

// The group's scales (texture/half_scales.wgsl) and the block's x sums, once a block for the
// invocation's rows.
fn prep(row: u32, j: u32) {
    let blocks = p.k / 32u;
    prep_group_scales(plane_rows() * blocks, row, j, blocks);
    x_sums(0u);
}

fn nibbles(w: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(w & 0x0f0f0f0fu));
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let q = texel(row_texel(row, j, blocks));
    let d = vec4<f32>(group_scale(row));
    block_start();
    xfma(nibbles(q.x), 0u);
    xfma(nibbles(q.y), 1u);
    xfma(nibbles(q.z), 2u);
    xfma(nibbles(q.w), 3u);
    xfma(nibbles(q.x >> 4u), 4u);
    xfma(nibbles(q.y >> 4u), 5u);
    xfma(nibbles(q.z >> 4u), 6u);
    xfma(nibbles(q.w >> 4u), 7u);
    block_end(d, -8.0 * d);
}
