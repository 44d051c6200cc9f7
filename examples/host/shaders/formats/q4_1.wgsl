// Q4_1, blocks of 32 values in 20 bytes: d: f16, m: f16, qs: 16 bytes (nibbles as
// Q4_0); value = q * d + m.

// load8: values i .. i + 8 (i a multiple of 8): one nibble of 8 consecutive bytes.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 32u) * 20u;
    let j0 = i % 32u;
    let d = w_f16(base);
    let m = w_f16(base + 2u);
    let q = w_bytes8(base + 4u + j0 % 16u);
    let shift = (j0 / 16u) * 4u;
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        v[j] = f32((byte_of(q, j) >> shift) & 15u) * d + m;
    }
    return v;
}
