// Q4_1 (20-byte blocks: d f16, m f16, 16 quant bytes; whole words) into planes: block b's
// quants at words 4b .. 4b + 4, its (d, m) word at 4 blocks + b.

fn repack_pair(pair: u32) {
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        let w0 = b * 5u;
        out[4u * b] = w[w0 + 1u];
        out[4u * b + 1u] = w[w0 + 2u];
        out[4u * b + 2u] = w[w0 + 3u];
        out[4u * b + 3u] = w[w0 + 4u];
        out[4u * p.blocks + b] = w[w0];
    }
}
