// Q6_K a sub-block (32 values) at a time, for linear_shared.wgsl (as texture/q4_k_sub.wgsl
// for Q4_K). The planes as texture/q6_k.wgsl reads them (13 texels a super-block: ql, qh, the
// 16 i8 scales; d in groups); block b is sub-block s = b % 4 of half h = (b % 8) / 4 of
// super-block b / 8, values 128h + 32s + l (l < 32): low 4 bits in ql bytes 64h + 32 (s & 1)
// + l (texels 4h + 2 (s & 1) and the next; the high nibble for s >= 2), high 2 bits bits 2s
// .. 2s + 2 of qh bytes 32h + l (texels 8 + 2h and the next), scales 8h + 2s (l < 16) and 8h
// + 2s + 1 (texel 12, word 2h + s / 2).

const BLOCK: u32 = 32u;

// The group's scales, once a block for the invocation's rows (texture/half_scales.wgsl).
fn prep(row: u32, b: u32) {
    let blocks = p.k / 256u;
    prep_group_scales(13u * plane_rows() * blocks, row, b / 8u, blocks);
}

// Four values: their low 4 bits and high 2 bits (both already shifted down), times the scale.
fn q6_values(low: u32, high: u32, scale: f32) -> vec4<f32> {
    return (vec4<f32>(unpack4xU8((low & 0x0f0f0f0fu) | ((high & 0x03030303u) << 4u))) - 32.0) * scale;
}

fn dot_block(row: u32, b: u32) {
    let s = b % 4u;
    let h = (b % 8u) / 4u;
    let t0 = row_texel(row, 13u * (b / 8u), 13u * (p.k / 256u));
    let d = group_scale(row);
    let q0 = texel(next(t0, 4u * h + 2u * (s & 1u)));
    let q1 = texel(next(t0, 4u * h + 2u * (s & 1u) + 1u));
    let h0 = texel(next(t0, 8u + 2u * h));
    let h1 = texel(next(t0, 9u + 2u * h));
    let sc = texel(next(t0, 12u))[2u * h + s / 2u] >> (16u * (s & 1u));
    // The two i8 scales, sign-extended by arithmetic shifts.
    let a = f32(i32(sc << 24u) >> 24u) * d;
    let c = f32(i32(sc << 16u) >> 24u) * d;
    let nibble = select(0u, 4u, s >= 2u);
    let bits = 2u * s;
    xfma(q6_values(q0.x >> nibble, h0.x >> bits, a), 0u);
    xfma(q6_values(q0.y >> nibble, h0.y >> bits, a), 1u);
    xfma(q6_values(q0.z >> nibble, h0.z >> bits, a), 2u);
    xfma(q6_values(q0.w >> nibble, h0.w >> bits, a), 3u);
    xfma(q6_values(q1.x >> nibble, h1.x >> bits, c), 4u);
    xfma(q6_values(q1.y >> nibble, h1.y >> bits, c), 5u);
    xfma(q6_values(q1.z >> nibble, h1.z >> bits, c), 6u);
    xfma(q6_values(q1.w >> nibble, h1.w >> bits, c), 7u);
}
