// Q5_K, super-blocks of 256 values in 176 bytes: d: f16, dmin: f16, scales: 12 bytes,
// qh: 32 bytes, qs: 128 bytes. Q4_K's nibbles plus bit 2 c + hi of qh[l] as bit 4;
// value = (d * scale) * q - dmin * min.

// load8: values i .. i + 8 (i a multiple of 8, all in one sub-block of 32): its scale and min
// once, nibbles of 8 consecutive bytes, fifth bits from 8 bytes of qh.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 256u) * 176u;
    let e = i % 256u;
    let c = e / 64u;
    let hi = (e % 64u) / 32u;
    let l = e % 32u;
    let sub = 2u * c + hi;
    let sm = scale_min_k4(sub, base + 4u);
    let dl = w_f16(base) * f32(sm.x);
    let ml = w_f16(base + 2u) * f32(sm.y);
    let q = w_bytes8(base + 48u + 32u * c + l);
    let qh = w_bytes8(base + 16u + l);
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        let low = (byte_of(q, j) >> (4u * hi)) & 15u;
        let high = (byte_of(qh, j) >> sub) & 1u;
        v[j] = dl * f32(low | (high << 4u)) - ml;
    }
    return v;
}
