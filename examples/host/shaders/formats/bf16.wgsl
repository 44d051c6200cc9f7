// load_w: BF16, pairs in u32 (the low half first): the high 16 bits of an f32.
fn load_w(i: u32) -> f32 {
    let pair = word(i >> 1u);
    return bitcast<f32>(select(pair << 16u, pair & 0xffff0000u, (i & 1u) != 0u));
}
