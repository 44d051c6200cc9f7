// Q4_K and Q5_K's 8 sub-block scales and mins, times d and dmin, from a super-block's first
// texel h: d and dmin (f16) in h.x, the 12 scale bytes in h.y (bytes 0..4), h.z (4..8) and h.w
// (8..12), unpacked as llama.cpp's get_scale_min_k4 (sub-blocks 4..8 take their high 2 bits
// from the top of bytes 0..8): all 8 (k_scales, texture/q4_k.wgsl and q5_k.wgsl) or one
// (k4_sub_scale, q4_k_sub.wgsl and q5_k_sub.wgsl); and their values.

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

// Sub-block s's scale times d and min times dmin (s < 8, a variable).
fn k4_sub_scale(h: vec4<u32>, s: u32) -> vec2<f32> {
    let dm = unpack2x16float(h.x);
    let shift = (s & 3u) * 8u;
    let y = (h.y >> shift) & 0xffu;
    let z = (h.z >> shift) & 0xffu;
    let w = (h.w >> shift) & 0xffu;
    let high = s >= 4u;
    let sc = select(y & 63u, (w & 15u) | ((y >> 6u) << 4u), high);
    let mn = select(z & 63u, (w >> 4u) | ((z >> 6u) << 4u), high);
    return vec2<f32>(f32(sc) * dm.x, f32(mn) * dm.y);
}

// Four 4-bit values (the nibbles of w's low halves) as a q - b.
fn k4_values(w: u32, a: f32, b: f32) -> vec4<f32> {
    return fma(vec4<f32>(unpack4xU8(w & 0x0f0f0f0fu)), vec4<f32>(a), vec4<f32>(-b));
}

// Four 5-bit values: nibbles (already shifted down) and the fifth bits (bit 0 of each byte).
fn k5_values(nibbles: u32, fifth: u32, a: f32, b: f32) -> vec4<f32> {
    let q = (nibbles & 0x0f0f0f0fu) | ((fifth & 0x01010101u) << 4u);
    return fma(vec4<f32>(unpack4xU8(q)), vec4<f32>(a), vec4<f32>(-b));
}
