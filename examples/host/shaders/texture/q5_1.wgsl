// Q5_1's scales: a (d, m) f16 pair a block, as Q4_1's (texture/dm_words.wgsl); value =
// q * d + m.
fn q5_dm(first: u32, b: u32) -> vec2<f32> {
    return block_dm(first, b);
}
