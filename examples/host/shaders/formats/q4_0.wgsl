// load_w: Q4_0, blocks of 32 values in 18 bytes: d: f16, qs: 16 bytes; value j < 16 is the
// low nibble of qs[j], value j + 16 its high nibble; value = (q - 8) * d.
fn load_w(i: u32) -> f32 {
    let base = (i / 32u) * 18u;
    let j = i % 32u;
    let q = (w_u8(base + 2u + j % 16u) >> ((j / 16u) * 4u)) & 15u;
    return f32(i32(q) - 8) * w_f16(base);
}
