// load_w: Q4_1, blocks of 32 values in 20 bytes: d: f16, m: f16, qs: 16 bytes (nibbles as
// Q4_0); value = q * d + m.
fn load_w(i: u32) -> f32 {
    let base = (i / 32u) * 20u;
    let j = i % 32u;
    let q = (w_u8(base + 4u + j % 16u) >> ((j / 16u) * 4u)) & 15u;
    return f32(q) * w_f16(base) + w_f16(base + 2u);
}
