// The texture kernel's block for formats without a texel layout of their own: 8 values
// through the format's load8 (words from word_texture.wgsl's one-texel cache).

const BLOCK: u32 = 8u;

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    let v = load8(row * p.k + j * 8u);
    xfma(vec4<f32>(v[0], v[1], v[2], v[3]), 0u);
    xfma(vec4<f32>(v[4], v[5], v[6], v[7]), 1u);
}
