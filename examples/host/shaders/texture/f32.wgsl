// f32 in a texture: 4 values a texel (rows of k values are k / 4 texels, rows grouped by 8:
// texel.wgsl's row_texel).

const BLOCK: u32 = 4u;

fn dot_block(row: u32, j: u32) {
    xfma(bitcast<vec4<f32>>(texel(row_texel(row, j, p.k / 4u))), j);
}
