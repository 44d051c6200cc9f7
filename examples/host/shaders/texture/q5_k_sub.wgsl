// Q5_K a sub-block (32 values) at a time, for linear_shared.wgsl (as texture/q4_k_sub.wgsl
// for Q4_K). The texture as texture/q5_k.wgsl reads it (176-byte super-blocks of 11 texels,
// rows grouped by 8); block b is sub-block s = b % 8 of super-block b / 8: its scale and min
// from texel 0 (texture/k_scales.wgsl's k4_sub_scale), its nibbles the low (s even) or high
// (s odd) halves of texels 3 + 2 (s / 2) and 4 + 2 (s / 2), its fifth bits bit s of the qh
// bytes in texels 1 (values 0..16) and 2 (16..32).

const BLOCK: u32 = 32u;

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, b: u32) {
    let s = b % 8u;
    let t0 = row_texel(row, 11u * (b / 8u), 11u * (p.k / 256u));
    let am = k4_sub_scale(texel(t0), s);
    let h0 = texel(next(t0, 1u));
    let h1 = texel(next(t0, 2u));
    let q0 = texel(next(t0, 3u + 2u * (s / 2u)));
    let q1 = texel(next(t0, 4u + 2u * (s / 2u)));
    let shift = (s & 1u) * 4u;
    xfma(k5_values(q0.x >> shift, h0.x >> s, am.x, am.y), 0u);
    xfma(k5_values(q0.y >> shift, h0.y >> s, am.x, am.y), 1u);
    xfma(k5_values(q0.z >> shift, h0.z >> s, am.x, am.y), 2u);
    xfma(k5_values(q0.w >> shift, h0.w >> s, am.x, am.y), 3u);
    xfma(k5_values(q1.x >> shift, h1.x >> s, am.x, am.y), 4u);
    xfma(k5_values(q1.y >> shift, h1.y >> s, am.x, am.y), 5u);
    xfma(k5_values(q1.z >> shift, h1.z >> s, am.x, am.y), 6u);
    xfma(k5_values(q1.w >> shift, h1.w >> s, am.x, am.y), 7u);
}
