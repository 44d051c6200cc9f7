// Q6_K in a texture, in planes (gpu/repack.rs): super-block j of a row's ql (128 bytes), qh
// (64) and 16 i8 scales are 13 texels (the chunk's super-blocks first, rows grouped by 8:
// texel.wgsl's row_texel); then the f16 d's in groups too (texture/half_scales.wgsl's
// group_scale, from texel 13 plane_rows() x blocks). In half h of 128 values, value 128h + 32s
// + l (l < 32) has its low 4 bits in ql[64h + l + 32 (s & 1)] (the high nibble for s >= 2), its
// high 2 bits in bits 2s .. 2s + 2 of qh[32h + l], its scale scales[8h + l / 16 + 2s];
// value = (d * scale) * (q - 32), as llama.cpp's dequantize_row_q6_K.

const BLOCK: u32 = 256u;

fn six(w: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(w)) - 32.0;
}

// Four values of each of the 4 sub-blocks s from one word of ql's first half (a), of its
// second half (b) and of qh (h); s0..s3 the sub-blocks' scales (times d); c the vec4 of s = 0.
fn q6_word(a: u32, b: u32, h: u32, c: u32, s0: f32, s1: f32, s2: f32, s3: f32) {
    xfma(six((a & 0x0f0f0f0fu) | ((h & 0x03030303u) << 4u)) * s0, c);
    xfma(six((b & 0x0f0f0f0fu) | (((h >> 2u) & 0x03030303u) << 4u)) * s1, c + 8u);
    xfma(six(((a >> 4u) & 0x0f0f0f0fu) | (((h >> 4u) & 0x03030303u) << 4u)) * s2, c + 16u);
    xfma(six(((b >> 4u) & 0x0f0f0f0fu) | (((h >> 6u) & 0x03030303u) << 4u)) * s3, c + 24u);
}

// Values l = 16q .. 16q + 16 of half h's 4 sub-blocks (their texels of ql, ql + 32, qh).
fn q6_group(a: vec4<u32>, b: vec4<u32>, h: vec4<u32>, c: u32, s0: f32, s1: f32, s2: f32, s3: f32) {
    q6_word(a.x, b.x, h.x, c, s0, s1, s2, s3);
    q6_word(a.y, b.y, h.y, c + 1u, s0, s1, s2, s3);
    q6_word(a.z, b.z, h.z, c + 2u, s0, s1, s2, s3);
    q6_word(a.w, b.w, h.w, c + 3u, s0, s1, s2, s3);
}

// The group's scales, once a super-block for the invocation's rows (texture/half_scales.wgsl).
fn prep(row: u32, j: u32) {
    let blocks = p.k / 256u;
    prep_group_scales(13u * plane_rows() * blocks, row, j, blocks);
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 256u;
    let t0 = row_texel(row, 13u * j, 13u * blocks);
    let d = group_scale(row);
    let st = texel(next(t0, 12u));
    let sc0 = vec4<f32>(unpack4xI8(st.x)) * d;
    let sc1 = vec4<f32>(unpack4xI8(st.y)) * d;
    let sc2 = vec4<f32>(unpack4xI8(st.z)) * d;
    let sc3 = vec4<f32>(unpack4xI8(st.w)) * d;
    // Half 0: scales 0..8 (sc0, sc1); half 1: 8..16 (sc2, sc3). Group q takes scale q + 2s.
    q6_group(texel(t0), texel(next(t0, 2u)), texel(next(t0, 8u)), 0u, sc0.x, sc0.z, sc1.x, sc1.z);
    q6_group(texel(next(t0, 1u)), texel(next(t0, 3u)), texel(next(t0, 9u)), 4u, sc0.y, sc0.w, sc1.y, sc1.w);
    q6_group(texel(next(t0, 4u)), texel(next(t0, 6u)), texel(next(t0, 10u)), 32u, sc2.x, sc2.z, sc3.x, sc3.z);
    q6_group(texel(next(t0, 5u)), texel(next(t0, 7u)), texel(next(t0, 11u)), 36u, sc2.y, sc2.w, sc3.y, sc3.w);
}
