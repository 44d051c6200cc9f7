// f16 in a texture: 8 values a texel, pairs in each word, the low half first (k / 8 texels a
// row, rows grouped by 8: texel.wgsl's row_texel).

const BLOCK: u32 = 8u;

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    let t = texel(row_texel(row, j, p.k / 8u));
    let a = vec4<f32>(unpack2x16float(t.x), unpack2x16float(t.y));
    let b = vec4<f32>(unpack2x16float(t.z), unpack2x16float(t.w));
    xfma(a, 0u);
    xfma(b, 1u);
}
