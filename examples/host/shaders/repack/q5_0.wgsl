// Q5_0 (22-byte blocks: d f16, qh u32, 16 quant bytes) into planes: block b's quants at words
// 4b .. 4b + 4, its qh at word 4 blocks + 2b and its d (low half) at 4 blocks + 2b + 1.

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        let lo = w_bytes8(b * 22u + 6u);
        let hi = w_bytes8(b * 22u + 14u);
        out[4u * b] = lo.x;
        out[4u * b + 1u] = lo.y;
        out[4u * b + 2u] = hi.x;
        out[4u * b + 3u] = hi.y;
        out[4u * p.blocks + 2u * b] = w_bytes8(b * 22u + 2u).x;
        out[4u * p.blocks + 2u * b + 1u] = w_f16_bits(b * 22u);
    }
}
