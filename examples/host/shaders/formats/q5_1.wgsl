// load_w: Q5_1, blocks of 32 values in 24 bytes: d: f16, m: f16, qh: u32, qs: 16 bytes (5-bit
// values as Q5_0); value = q * d + m.
fn load_w(i: u32) -> f32 {
    let base = (i / 32u) * 24u;
    let j = i % 32u;
    let low = (w_u8(base + 8u + j % 16u) >> ((j / 16u) * 4u)) & 15u;
    let high = (w_u8(base + 4u + j / 8u) >> (j % 8u)) & 1u;
    return f32(low | (high << 4u)) * w_f16(base) + w_f16(base + 2u);
}
