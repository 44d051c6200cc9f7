// Q8_0 in a texture, in planes (gpu/repack.rs): block b's 32 quant bytes are texels 2b and
// 2b + 1, the chunk's blocks first; then the f16 scales, 8 a texel (block b's in texel
// 2 blocks + b / 8, word (b / 2) % 4, half b % 2); value j = qs[j] * d.

const BLOCK: u32 = 32u;

// half_scale(first, b): texture/half_scales.wgsl.

fn values(w: u32, d: f32) -> vec4<f32> {
    return vec4<f32>(unpack4xI8(w)) * d;
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let b = row * blocks + j;
    let lo = texel(2u * b);
    let hi = texel(2u * b + 1u);
    let d = half_scale(2u * p.m * blocks, b);
    let c = 8u * j;
    xfma(values(lo.x, d), c);
    xfma(values(lo.y, d), c + 1u);
    xfma(values(lo.z, d), c + 2u);
    xfma(values(lo.w, d), c + 3u);
    xfma(values(hi.x, d), c + 4u);
    xfma(values(hi.y, d), c + 5u);
    xfma(values(hi.z, d), c + 6u);
    xfma(values(hi.w, d), c + 7u);
}
