// Q3_K, super-blocks of 256 values in 110 bytes: hmask: 32 bytes (high bits), qs: 64
// bytes (low 2 bits), scales: 12 bytes (16 6-bit scales), d: f16. Value e = 128 h + 32 s + l
// (sub-block j = 8 h + 2 s + l / 16) has low bits 2s..2s+2 of qs[32 h + l], and 4 is
// subtracted unless bit 4 h + s of hmask[l] is set; value = (d * (scale_j - 32)) * q.

// load8: values i .. i + 8 (i a multiple of 8, all in one sub-block of 16): its scale once,
// low bits from 8 consecutive bytes of qs, high bits from 8 of hmask.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 256u) * 110u;
    let e = i % 256u;
    let h = e / 128u;
    let s = (e % 128u) / 32u;
    let l = e % 32u;
    let j = h * 8u + s * 2u + l / 16u;
    let low = (w_u8(base + 96u + j % 8u) >> ((j / 8u) * 4u)) & 15u;
    let high = (w_u8(base + 104u + j % 4u) >> (2u * (j / 4u))) & 3u;
    let dl = w_f16(base + 108u) * f32(i32(low | (high << 4u)) - 32);
    let q = w_bytes8(base + 32u + 32u * h + l);
    let hm = w_bytes8(base + l);
    var v: array<f32, 8>;
    for (var t = 0u; t < 8u; t++) {
        let bits = i32((byte_of(q, t) >> (2u * s)) & 3u);
        let high_bit = ((byte_of(hm, t) >> (4u * h + s)) & 1u) != 0u;
        v[t] = dl * f32(bits - select(4, 0, high_bit));
    }
    return v;
}
