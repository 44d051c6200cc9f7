// Q5_1's scale word: d, m; value = q * d + m.
fn q5_dm(w: u32) -> vec2<f32> {
    return unpack2x16float(w);
}
