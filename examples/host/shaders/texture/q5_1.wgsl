// Q5_1's scales: a (d, m) f16 pair a block, 4 a texel from texel `first` (block b's in texel
// first + b / 4, word b % 4); value = q * d + m. The last texel read is kept.

var<private> dms_at: u32 = 0xffffffffu;
var<private> dms: vec4<u32>;

fn q5_dm(first: u32, b: u32) -> vec2<f32> {
    let t = first + b / 4u;
    if (t != dms_at) {
        dms = texel(t);
        dms_at = t;
    }
    return unpack2x16float(dms[b % 4u]);
}
