// Q4_0 (18-byte blocks: d f16, 16 quant bytes) into planes: block b's quants at words 4b ..
// 4b + 4, the scales of blocks 2i and 2i + 1 in word 4 blocks + i (low half first).

// Block b's scale bits, 0 past the last block (an odd count's second half).
fn scale_of(b: u32) -> u32 {
    if (b >= p.blocks) {
        return 0u;
    }
    return w_f16_bits(b * 18u);
}

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        let lo = w_bytes8(b * 18u + 2u);
        let hi = w_bytes8(b * 18u + 10u);
        out[4u * b] = lo.x;
        out[4u * b + 1u] = lo.y;
        out[4u * b + 2u] = hi.x;
        out[4u * b + 3u] = hi.y;
    }
    out[4u * p.blocks + pair] = scale_of(2u * pair) | (scale_of(2u * pair + 1u) << 16u);
}
