// load_w: Q2_K, super-blocks of 256 values in 84 bytes: scales: 16 bytes (4-bit scale | 4-bit
// min per sub-block of 16), qs: 64 bytes (2-bit values), d: f16, dmin: f16. Value
// e = 128 h + 32 s + l is bits 2s..2s+2 of qs[32 h + l], in sub-block 8 h + 2 s + l / 16;
// value = (d * scale) * q - dmin * min (llama.cpp's order: the products are exact).
fn load_w(i: u32) -> f32 {
    let base = (i / 256u) * 84u;
    let e = i % 256u;
    let h = e / 128u;
    let s = (e % 128u) / 32u;
    let l = e % 32u;
    let sc = w_u8(base + h * 8u + s * 2u + l / 16u);
    let q = (w_u8(base + 16u + 32u * h + l) >> (2u * s)) & 3u;
    return w_f16(base + 80u) * f32(sc & 15u) * f32(q) - w_f16(base + 82u) * f32(sc >> 4u);
}
