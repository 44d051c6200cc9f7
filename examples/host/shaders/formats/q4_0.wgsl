// Q4_0, blocks of 32 values in 18 bytes: d: f16, qs: 16 bytes; value j < 16 is the
// low nibble of qs[j], value j + 16 its high nibble; value = (q - 8) * d.

// load8: values i .. i + 8 (i a multiple of 8): one nibble of 8 consecutive bytes.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 32u) * 18u;
    let j0 = i % 32u;
    let d = w_f16(base);
    let q = w_bytes8(base + 2u + j0 % 16u);
    let shift = (j0 / 16u) * 4u;
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        v[j] = f32(i32((byte_of(q, j) >> shift) & 15u) - 8) * d;
    }
    return v;
}
