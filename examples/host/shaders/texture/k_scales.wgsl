// Q4_K and Q5_K's 8 sub-block scales and mins, times d and dmin, from a super-block's first
// texel h: d and dmin (f16) in h.x, the 12 scale bytes in h.y (bytes 0..4), h.z (4..8) and h.w
// (8..12), unpacked as llama.cpp's get_scale_min_k4 (sub-blocks 4..8 take their high 2 bits
// from the top of bytes 0..8).

struct KScales {
    // Scales and mins of sub-blocks 0..4, and of 4..8.
    sc_lo: vec4<f32>,
    mn_lo: vec4<f32>,
    sc_hi: vec4<f32>,
    mn_hi: vec4<f32>,
}

fn k_scales(h: vec4<u32>) -> KScales {
    let dm = unpack2x16float(h.x);
    return KScales(
        vec4<f32>(unpack4xU8(h.y & 0x3f3f3f3fu)) * dm.x,
        vec4<f32>(unpack4xU8(h.z & 0x3f3f3f3fu)) * dm.y,
        vec4<f32>(unpack4xU8((h.w & 0x0f0f0f0fu) | ((h.y >> 2u) & 0x30303030u))) * dm.x,
        vec4<f32>(unpack4xU8(((h.w >> 4u) & 0x0f0f0f0fu) | ((h.z >> 2u) & 0x30303030u))) * dm.y,
    );
}
