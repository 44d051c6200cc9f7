// Q4_0 (18-byte blocks: d f16, 16 quant bytes) into planes: block b's quants at words 4b ..
// 4b + 4, the scales of blocks 2i and 2i + 1 in word 4 blocks + i (low half first).

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        copy_quants(b * 18u + 2u, 4u * b, 4u);
    }
    out[4u * p.blocks + pair] = pair_d(pair, 18u, 0u);
}
