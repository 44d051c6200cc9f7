// Q5_1 (24-byte blocks: d f16, m f16, qh u32, 16 quant bytes; whole words) into planes: block
// b's quants at words 4b .. 4b + 4, its qh at word 4 blocks + 2b and its (d, m) word at
// 4 blocks + 2b + 1.

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        let w0 = b * 6u;
        out[4u * b] = w[w0 + 2u];
        out[4u * b + 1u] = w[w0 + 3u];
        out[4u * b + 2u] = w[w0 + 4u];
        out[4u * b + 3u] = w[w0 + 5u];
        out[4u * p.blocks + 2u * b] = w[w0 + 1u];
        out[4u * p.blocks + 2u * b + 1u] = w[w0];
    }
}
