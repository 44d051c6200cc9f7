// Q5_0 (22-byte blocks: d f16, qh u32, 16 quant bytes) into planes, 22 bytes a block as the
// file: block b's quants at words 4b .. 4b + 4; its qh at word 4 blocks + b; the d of blocks 2i
// and 2i + 1 in word 4 blocks + 4 ceil(blocks / 4) + i (low half first).

// Block b's d bits, 0 past the last block (an odd count's second half).
fn scale_of(b: u32) -> u32 {
    if (b >= p.blocks) {
        return 0u;
    }
    return w_f16_bits(b * 22u);
}

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        let lo = w_bytes8(b * 22u + 6u);
        let hi = w_bytes8(b * 22u + 14u);
        out[4u * b] = lo.x;
        out[4u * b + 1u] = lo.y;
        out[4u * b + 2u] = hi.x;
        out[4u * b + 3u] = hi.y;
        out[4u * p.blocks + b] = w_bytes8(b * 22u + 2u).x;
    }
    let d0 = 4u * p.blocks + 4u * ((p.blocks + 3u) / 4u);
    out[d0 + pair] = scale_of(2u * pair) | (scale_of(2u * pair + 1u) << 16u);
}
