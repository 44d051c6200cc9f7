// Q5_1, blocks of 32 values in 24 bytes: d: f16, m: f16, qh: u32, qs: 16 bytes (5-bit
// values as Q5_0); value = q * d + m.

// load8: values i .. i + 8 (i a multiple of 8): nibbles of 8 bytes, fifth bits from one byte.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 32u) * 24u;
    let j0 = i % 32u;
    let d = w_f16(base);
    let m = w_f16(base + 2u);
    let q = w_bytes8(base + 8u + j0 % 16u);
    let shift = (j0 / 16u) * 4u;
    let high = w_u8(base + 4u + j0 / 8u);
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        let low = (byte_of(q, j) >> shift) & 15u;
        v[j] = f32(low | (((high >> j) & 1u) << 4u)) * d + m;
    }
    return v;
}
