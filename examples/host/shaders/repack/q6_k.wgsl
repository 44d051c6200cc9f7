// Q6_K (210-byte super-blocks: ql 128, qh 64, 16 i8 scales, d f16) into planes: super-block b's
// first 208 bytes (ql, qh, scales: 13 texels) at words 52b .. 52b + 52, the d of super-blocks
// 2i and 2i + 1 in word 52 blocks + i (low half first).

// Super-block b's d bits, 0 past the last one (an odd count's second half).
fn scale_of(b: u32) -> u32 {
    if (b >= p.blocks) {
        return 0u;
    }
    return w_f16_bits(b * 210u + 208u);
}

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        for (var i = 0u; i < 26u; i++) {
            let q = w_bytes8(b * 210u + 8u * i);
            out[52u * b + 2u * i] = q.x;
            out[52u * b + 2u * i + 1u] = q.y;
        }
    }
    out[52u * p.blocks + pair] = scale_of(2u * pair) | (scale_of(2u * pair + 1u) << 16u);
}
