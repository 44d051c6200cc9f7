// Q6_K (210-byte super-blocks: ql 128, qh 64, 16 i8 scales, d f16) into planes: super-block b's
// first 208 bytes (ql, qh, scales: 13 texels) at words 52b .. 52b + 52, the d of super-blocks
// 2i and 2i + 1 in word 52 blocks + i (low half first).

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        copy_quants(b * 210u, 52u * b, 52u);
    }
    out[52u * p.blocks + pair] = pair_d(pair, 210u, 208u);
}
