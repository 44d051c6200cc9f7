// Q8_0 (34-byte blocks: d f16, 32 quant bytes) into planes: block b's quants at words 8b ..
// 8b + 8, the scales of blocks 2i and 2i + 1 in word 8 blocks + i (low half first).

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        copy_quants(b * 34u + 2u, 8u * b, 8u);
    }
    out[8u * p.blocks + pair] = pair_d(pair, 34u, 0u);
}
