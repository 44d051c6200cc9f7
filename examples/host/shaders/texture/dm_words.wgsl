// The (d, m) f16 pairs of the planar Q4_1 and Q5_1 layouts (texture/q4_1.wgsl, q5_1.wgsl): one
// word a block, 4 a texel from texel `first` (block b's in texel first + b / 4, word b % 4).
// The last texel read is kept: a lane walking its row reads each once, not once a block.

var<private> dms_at: u32 = 0xffffffffu;
var<private> dms: vec4<u32>;

fn block_dm(first: u32, b: u32) -> vec2<f32> {
    let t = first + b / 4u;
    if (t != dms_at) {
        dms = texel(t);
        dms_at = t;
    }
    return unpack2x16float(dms[b % 4u]);
}
