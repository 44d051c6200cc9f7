// Q2_K, super-blocks of 256 values in 84 bytes: scales: 16 bytes (4-bit scale | 4-bit
// min per sub-block of 16), qs: 64 bytes (2-bit values), d: f16, dmin: f16. Value
// e = 128 h + 32 s + l is bits 2s..2s+2 of qs[32 h + l], in sub-block 8 h + 2 s + l / 16;
// value = (d * scale) * q - dmin * min (llama.cpp's order: the products are exact).

// load8: values i .. i + 8 (i a multiple of 8, all in one sub-block of 16): its scale and min
// once, 2 bits of 8 consecutive bytes.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 256u) * 84u;
    let e = i % 256u;
    let h = e / 128u;
    let s = (e % 128u) / 32u;
    let l = e % 32u;
    let sc = w_u8(base + h * 8u + s * 2u + l / 16u);
    let dl = w_f16(base + 80u) * f32(sc & 15u);
    let ml = w_f16(base + 82u) * f32(sc >> 4u);
    let q = w_bytes8(base + 16u + 32u * h + l);
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        v[j] = dl * f32((byte_of(q, j) >> (2u * s)) & 3u) - ml;
    }
    return v;
}
