// Q8_0, blocks of 32 values in 34 bytes: d: f16, qs: 32 x i8; value j = qs[j] * d.

// load8: values i .. i + 8 (i a multiple of 8): the scale once, the 8 quants in 2 or 3 loads.
fn load8(i: u32) -> array<f32, 8> {
    let base = (i / 32u) * 34u;
    let d = w_f16(base);
    let q = w_bytes8(base + 2u + i % 32u);
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        v[j] = f32(bitcast<i32>(byte_of(q, j) << 24u) >> 24u) * d;
    }
    return v;
}
