// Q4_K, super-blocks of 256 values in 144 bytes: d: f16, dmin: f16, scales: 12 bytes
// (8 6-bit scales and mins), qs: 128 bytes. Value e = 64 c + 32 hi + l is the low (hi = 0) or
// high nibble of qs[32 c + l], in sub-block 2 c + hi; value = (d * scale) * q - dmin * min.

// load8: values i .. i + 8 (i a multiple of 8, all in one sub-block of 32): its scale and min
// once, one nibble of 8 consecutive bytes.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 256u) * 144u;
    let e = i % 256u;
    let c = e / 64u;
    let hi = (e % 64u) / 32u;
    let sm = scale_min_k4(2u * c + hi, base + 4u);
    let dl = w_f16(base) * f32(sm.x);
    let ml = w_f16(base + 2u) * f32(sm.y);
    let q = w_bytes8(base + 16u + 32u * c + e % 32u);
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        v[j] = dl * f32((byte_of(q, j) >> (4u * hi)) & 15u) - ml;
    }
    return v;
}
