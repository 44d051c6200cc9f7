// Q4_K in a texture, as the file stores it (144-byte super-blocks are 9 texels, a row's in
// order, rows grouped by 8: texel.wgsl's row_texel): texel 0 holds
// d, dmin (f16) and the 12 scale bytes, texels 1..9 the 128 quant bytes. Sub-blocks 2c and
// 2c + 1 (32 values each) are the low and high nibbles of quant bytes 32c .. 32c + 32 (texels
// 1 + 2c, 2 + 2c); value = (d * scale) * q - dmin * min, with llama.cpp's 6-bit scales and mins
// (get_scale_min_k4: sub-blocks 4..8 take their high 2 bits from the top of bytes 0..8).

const BLOCK: u32 = 256u;

// Sub-blocks 2c (scale a0, min b0: low nibbles) and 2c + 1 (a1, b1: high) from their texels.
fn k4_pair(q0: vec4<u32>, q1: vec4<u32>, c: u32, a0: f32, b0: f32, a1: f32, b1: f32) {
    xfma(k4_values(q0.x, a0, b0), c);
    xfma(k4_values(q0.y, a0, b0), c + 1u);
    xfma(k4_values(q0.z, a0, b0), c + 2u);
    xfma(k4_values(q0.w, a0, b0), c + 3u);
    xfma(k4_values(q1.x, a0, b0), c + 4u);
    xfma(k4_values(q1.y, a0, b0), c + 5u);
    xfma(k4_values(q1.z, a0, b0), c + 6u);
    xfma(k4_values(q1.w, a0, b0), c + 7u);
    xfma(k4_values(q0.x >> 4u, a1, b1), c + 8u);
    xfma(k4_values(q0.y >> 4u, a1, b1), c + 9u);
    xfma(k4_values(q0.z >> 4u, a1, b1), c + 10u);
    xfma(k4_values(q0.w >> 4u, a1, b1), c + 11u);
    xfma(k4_values(q1.x >> 4u, a1, b1), c + 12u);
    xfma(k4_values(q1.y >> 4u, a1, b1), c + 13u);
    xfma(k4_values(q1.z >> 4u, a1, b1), c + 14u);
    xfma(k4_values(q1.w >> 4u, a1, b1), c + 15u);
}

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    let t0 = row_texel(row, 9u * j, 9u * (p.k / 256u));
    let s = k_scales(texel(t0));
    k4_pair(texel(next(t0, 1u)), texel(next(t0, 2u)), 0u, s.sc_lo.x, s.mn_lo.x, s.sc_lo.y, s.mn_lo.y);
    k4_pair(texel(next(t0, 3u)), texel(next(t0, 4u)), 16u, s.sc_lo.z, s.mn_lo.z, s.sc_lo.w, s.mn_lo.w);
    k4_pair(texel(next(t0, 5u)), texel(next(t0, 6u)), 32u, s.sc_hi.x, s.mn_hi.x, s.sc_hi.y, s.mn_hi.y);
    k4_pair(texel(next(t0, 7u)), texel(next(t0, 8u)), 48u, s.sc_hi.z, s.mn_hi.z, s.sc_hi.w, s.mn_hi.w);
}
