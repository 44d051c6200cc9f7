// Q4_K a sub-block (32 values) at a time, for linear_shared.wgsl, whose x windows span whole
// blocks (texture/q4_k.wgsl walks super-blocks of 256: 8 windows a block made lavapipe take
// minutes to compile the shared kernel). The texture as q4_k.wgsl reads it (144-byte
// super-blocks of 9 texels, rows grouped by 8); block b is sub-block s = b % 8 of super-block
// b / 8: its scale and min from the super-block's texel 0 (llama.cpp's get_scale_min_k4 for
// s), its 32 nibbles the low (s even) or high (s odd) halves of texels 1 + 2 (s / 2) and
// 2 + 2 (s / 2). A row reads texel 0 once a sub-block, not once a super-block: 3 texels a 32
// values where q4_k.wgsl reads 2.25.

const BLOCK: u32 = 32u;

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, b: u32) {
    let s = b % 8u;
    let t0 = row_texel(row, 9u * (b / 8u), 9u * (p.k / 256u));
    let am = k4_sub_scale(texel(t0), s);
    let q0 = texel(next(t0, 1u + 2u * (s / 2u)));
    let q1 = texel(next(t0, 2u + 2u * (s / 2u)));
    let shift = (s & 1u) * 4u;
    xfma(k4_values(q0.x >> shift, am.x, am.y), 0u);
    xfma(k4_values(q0.y >> shift, am.x, am.y), 1u);
    xfma(k4_values(q0.z >> shift, am.x, am.y), 2u);
    xfma(k4_values(q0.w >> shift, am.x, am.y), 3u);
    xfma(k4_values(q1.x >> shift, am.x, am.y), 4u);
    xfma(k4_values(q1.y >> shift, am.x, am.y), 5u);
    xfma(k4_values(q1.z >> shift, am.x, am.y), 6u);
    xfma(k4_values(q1.w >> shift, am.x, am.y), 7u);
}
