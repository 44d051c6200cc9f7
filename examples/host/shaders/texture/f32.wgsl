// f32 in a texture: 4 values a texel (rows of k values are k / 4 texels).

const BLOCK: u32 = 4u;

fn dot_block(row: u32, j: u32) {
    xfma(bitcast<vec4<f32>>(texel(row * (p.k / 4u) + j)), j);
}
