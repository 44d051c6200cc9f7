// Q8_0 (34-byte blocks: d f16, 32 quant bytes) into planes: block b's quants at words 8b ..
// 8b + 8, the scales of blocks 2i and 2i + 1 in word 8 blocks + i (low half first).

// Block b's scale bits, 0 past the last block (an odd count's second half).
fn scale_of(b: u32) -> u32 {
    if (b >= p.blocks) {
        return 0u;
    }
    return w_f16_bits(b * 34u);
}

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        for (var i = 0u; i < 4u; i++) {
            let q = w_bytes8(b * 34u + 2u + 8u * i);
            out[8u * b + 2u * i] = q.x;
            out[8u * b + 2u * i + 1u] = q.y;
        }
    }
    out[8u * p.blocks + pair] = scale_of(2u * pair) | (scale_of(2u * pair + 1u) << 16u);
}
