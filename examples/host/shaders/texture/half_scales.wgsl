// The f16 scales of the planar texture layouts (texture/q4_0.wgsl, q8_0.wgsl, q6_k.wgsl): 8 a texel,
// block b's in texel first + b / 8, word (b / 2) % 4, half b % 2. The last scale texel read is
// kept: a lane walking its row reads each once, not once a block.

var<private> scales_at: u32 = 0xffffffffu;
var<private> scales: vec4<u32>;

fn half_scale(first: u32, b: u32) -> f32 {
    let t = first + b / 8u;
    if (t != scales_at) {
        scales = texel(t);
        scales_at = t;
    }
    return unpack2x16float(scales[(b / 2u) % 4u] >> ((b & 1u) * 16u)).x;
}
