// Q5_0 (22-byte blocks: d f16, qh u32, 16 quant bytes) into planes, 22 bytes a block as the
// file: block b's quants at words 4b .. 4b + 4; its qh at word 4 blocks + b; the d of blocks 2i
// and 2i + 1 in word 4 blocks + 4 ceil(blocks / 4) + i (low half first).

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        copy_quants(b * 22u + 6u, 4u * b, 4u);
        out[4u * p.blocks + b] = w_bytes8(b * 22u + 2u).x;
    }
    let d0 = 4u * p.blocks + 4u * ((p.blocks + 3u) / 4u);
    out[d0 + pair] = pair_d(pair, 22u, 0u);
}
