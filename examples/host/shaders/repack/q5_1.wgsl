// Q5_1 (24-byte blocks: d f16, m f16, qh u32, 16 quant bytes; whole words) into planes, 24
// bytes a block as the file: block b's quants at words 4b .. 4b + 4; its qh at word
// 4 blocks + b; its (d, m) word at 4 blocks + 4 ceil(blocks / 4) + b.

fn repack_pair(pair: u32) {
    let dm0 = 4u * p.blocks + 4u * ((p.blocks + 3u) / 4u);
    for (var b = 2u * pair; b < min(2u * pair + 2u, p.blocks); b++) {
        let w0 = b * 6u;
        out[4u * b] = w[w0 + 2u];
        out[4u * b + 1u] = w[w0 + 3u];
        out[4u * b + 2u] = w[w0 + 4u];
        out[4u * b + 3u] = w[w0 + 5u];
        out[4u * p.blocks + b] = w[w0 + 1u];
        out[dm0 + b] = w[w0];
    }
}
