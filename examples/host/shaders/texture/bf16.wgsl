// BF16 in a texture: 8 values a texel, pairs in each word, the low half first; a bf16 is the
// high 16 bits of an f32 (k / 8 texels a row, rows grouped by 8: texel.wgsl's row_texel).

const BLOCK: u32 = 8u;

fn bf16_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    let t = texel(row_texel(row, j, p.k / 8u));
    let a = vec4<f32>(bf16_pair(t.x), bf16_pair(t.y));
    let b = vec4<f32>(bf16_pair(t.z), bf16_pair(t.w));
    xfma(a, 0u);
    xfma(b, 1u);
}
