// load_w: Q8_0, blocks of 32 values in 34 bytes: d: f16, qs: 32 x i8; value j = qs[j] * d.
fn load_w(i: u32) -> f32 {
    let base = (i / 32u) * 34u;
    return f32(w_i8(base + 2u + i % 32u)) * w_f16(base);
}
