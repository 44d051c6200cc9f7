// Q6_K, super-blocks of 256 values in 210 bytes: ql: 128 bytes (low 4 bits), qh: 64
// bytes (high 2 bits), scales: 16 x i8, d: f16. Value e = 128 h + 32 s + l takes its low bits
// from ql[64 h + l + 32 (s & 1)] (low nibble for s < 2), its high bits from bits 2s..2s+2 of
// qh[32 h + l], its scale from scales[8 h + l / 16 + 2 s]; value = (d * scale) * (q - 32).

// load8: values i .. i + 8 (i a multiple of 8, all in one sub-block of 16): its scale once,
// low bits from 8 consecutive bytes of ql, high bits from 8 of qh.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 256u) * 210u;
    let e = i % 256u;
    let h = e / 128u;
    let s = (e % 128u) / 32u;
    let l = e % 32u;
    let dl = w_f16(base + 208u) * f32(w_i8(base + 192u + 8u * h + l / 16u + 2u * s));
    let ql = w_bytes8(base + 64u * h + l + 32u * (s & 1u));
    let qh = w_bytes8(base + 128u + 32u * h + l);
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        let low = (byte_of(ql, j) >> (4u * (s / 2u))) & 15u;
        let high = (byte_of(qh, j) >> (2u * s)) & 3u;
        v[j] = dl * f32(i32(low | (high << 4u)) - 32);
    }
    return v;
}
