// Q5_0's scales: d as f16, 8 a texel from texel `first` (texture/half_scales.wgsl); value =
// (q - 16) * d = q * d - 16 d.
fn q5_dm(first: u32, b: u32) -> vec2<f32> {
    let d = half_scale(first, b);
    return vec2<f32>(d, -16.0 * d);
}
