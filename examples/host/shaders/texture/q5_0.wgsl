// Q5_0's scale word: d in its low half; value = (q - 16) * d = q * d - 16 d.
fn q5_dm(w: u32) -> vec2<f32> {
    let d = unpack2x16float(w).x;
    return vec2<f32>(d, -16.0 * d);
}
