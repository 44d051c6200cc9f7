// Scale and min of sub-block j (of 8) of a Q4_K / Q5_K super-block whose 12 scale bytes start
// at byte s (llama.cpp's get_scale_min_k4): 6 bits each, the high 2 bits of sub-blocks 4..8
// in the top bits of bytes 0..8.
fn scale_min_k4(j: u32, s: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(w_u8(s + j) & 63u, w_u8(s + j + 4u) & 63u);
    }
    let a = w_u8(s + j + 4u);
    return vec2<u32>((a & 15u) | ((w_u8(s + j - 4u) >> 6u) << 4u), (a >> 4u) | ((w_u8(s + j) >> 6u) << 4u));
}
