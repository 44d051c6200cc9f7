// f32 in a texture: 4 values a texel (rows of k values are k / 4 texels, rows grouped by 8:
// texel.wgsl's row_texel).

const BLOCK: u32 = 4u;

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    xfma(bitcast<vec4<f32>>(texel(row_texel(row, j, p.k / 4u))), 0u);
}
