// Q5_K in a texture, as the file stores it (176-byte super-blocks are 11 texels, a row's in
// order, rows grouped by 8: texel.wgsl's row_texel): texel 0
// holds d, dmin (f16) and the 12 scale bytes (as Q4_K's), texels 1, 2 the 32 qh bytes, texels
// 3..11 the 128 quant bytes. Sub-blocks 2c and 2c + 1 (32 values each) are the low and high
// nibbles of quant bytes 32c .. 32c + 32 (texels 3 + 2c, 4 + 2c), their fifth bits bits 2c
// and 2c + 1 of qh[l]; value = (d * scale) * q - dmin * min, as llama.cpp's
// dequantize_row_q5_K.

const BLOCK: u32 = 256u;

// Sub-blocks 2c (scale a0, min b0) and 2c + 1 (a1, b1): quant texels q0, q1, qh texels h0, h1,
// the fifth bits at bit 2c (shift s) and 2c + 1.
fn k5_pair(q0: vec4<u32>, q1: vec4<u32>, h0: vec4<u32>, h1: vec4<u32>, s: u32, c: u32, a0: f32, b0: f32, a1: f32, b1: f32) {
    xfma(k5_values(q0.x, h0.x >> s, a0, b0), c);
    xfma(k5_values(q0.y, h0.y >> s, a0, b0), c + 1u);
    xfma(k5_values(q0.z, h0.z >> s, a0, b0), c + 2u);
    xfma(k5_values(q0.w, h0.w >> s, a0, b0), c + 3u);
    xfma(k5_values(q1.x, h1.x >> s, a0, b0), c + 4u);
    xfma(k5_values(q1.y, h1.y >> s, a0, b0), c + 5u);
    xfma(k5_values(q1.z, h1.z >> s, a0, b0), c + 6u);
    xfma(k5_values(q1.w, h1.w >> s, a0, b0), c + 7u);
    xfma(k5_values(q0.x >> 4u, h0.x >> (s + 1u), a1, b1), c + 8u);
    xfma(k5_values(q0.y >> 4u, h0.y >> (s + 1u), a1, b1), c + 9u);
    xfma(k5_values(q0.z >> 4u, h0.z >> (s + 1u), a1, b1), c + 10u);
    xfma(k5_values(q0.w >> 4u, h0.w >> (s + 1u), a1, b1), c + 11u);
    xfma(k5_values(q1.x >> 4u, h1.x >> (s + 1u), a1, b1), c + 12u);
    xfma(k5_values(q1.y >> 4u, h1.y >> (s + 1u), a1, b1), c + 13u);
    xfma(k5_values(q1.z >> 4u, h1.z >> (s + 1u), a1, b1), c + 14u);
    xfma(k5_values(q1.w >> 4u, h1.w >> (s + 1u), a1, b1), c + 15u);
}

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    let t0 = row_texel(row, 11u * j, 11u * (p.k / 256u));
    let s = k_scales(texel(t0));
    let h0 = texel(next(t0, 1u));
    let h1 = texel(next(t0, 2u));
    k5_pair(texel(next(t0, 3u)), texel(next(t0, 4u)), h0, h1, 0u, 0u, s.sc_lo.x, s.mn_lo.x, s.sc_lo.y, s.mn_lo.y);
    k5_pair(texel(next(t0, 5u)), texel(next(t0, 6u)), h0, h1, 2u, 16u, s.sc_lo.z, s.mn_lo.z, s.sc_lo.w, s.mn_lo.w);
    k5_pair(texel(next(t0, 7u)), texel(next(t0, 8u)), h0, h1, 4u, 32u, s.sc_hi.x, s.mn_hi.x, s.sc_hi.y, s.mn_hi.y);
    k5_pair(texel(next(t0, 9u)), texel(next(t0, 10u)), h0, h1, 6u, 48u, s.sc_hi.z, s.mn_hi.z, s.sc_hi.w, s.mn_hi.w);
}
