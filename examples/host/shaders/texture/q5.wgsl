// Q5_0 and Q5_1 in a texture, in planes (gpu/repack.rs): block b's 16 quant bytes are texel b,
// the chunk's blocks first; then two words a block, 2 blocks a texel (block b's in texel
// blocks + b / 2, words 2 (b % 2) and 2 (b % 2) + 1): qh (the 32 fifth bits) and the scale word
// (Q5_0: d; Q5_1: d, m; q5_dm in texture/q5_0.wgsl, q5_1.wgsl). Value j < 16 is the low nibble
// of quant byte j with bit j of qh as its fifth bit, j + 16 the high nibble with bit j + 16;
// value = q * d + m (Q5_0: m = -16 d), as llama.cpp's dequantize_row_q5_0 / q5_1.

const BLOCK: u32 = 32u;

// The last side texel read: a lane walking its row reads each once, not once a block.
var<private> side_at: u32 = 0xffffffffu;
var<private> side: vec4<u32>;

fn block_side(first: u32, b: u32) -> vec2<u32> {
    let t = first + b / 2u;
    if (t != side_at) {
        side = texel(t);
        side_at = t;
    }
    return select(side.xy, side.zw, (b & 1u) != 0u);
}

// Bits 0..4 of `bits` as bit 0 of bytes 0..4.
fn spread4(bits: u32) -> u32 {
    return (bits & 1u) | ((bits & 2u) << 7u) | ((bits & 4u) << 14u) | ((bits & 8u) << 21u);
}

// Four values: nibbles (already shifted down) with their fifth bits (bits 0..4 of `fifth`).
fn q5_values(nibbles: u32, fifth: u32, dm: vec2<f32>) -> vec4<f32> {
    let q = (nibbles & 0x0f0f0f0fu) | (spread4(fifth) << 4u);
    return fma(vec4<f32>(unpack4xU8(q)), vec4<f32>(dm.x), vec4<f32>(dm.y));
}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let b = row * blocks + j;
    let q = texel(b);
    let s = block_side(p.m * blocks, b);
    let qh = s.x;
    let dm = q5_dm(s.y);
    let c = 8u * j;
    xfma(q5_values(q.x, qh, dm), c);
    xfma(q5_values(q.y, qh >> 4u, dm), c + 1u);
    xfma(q5_values(q.z, qh >> 8u, dm), c + 2u);
    xfma(q5_values(q.w, qh >> 12u, dm), c + 3u);
    xfma(q5_values(q.x >> 4u, qh >> 16u, dm), c + 4u);
    xfma(q5_values(q.y >> 4u, qh >> 20u, dm), c + 5u);
    xfma(q5_values(q.z >> 4u, qh >> 24u, dm), c + 6u);
    xfma(q5_values(q.w >> 4u, qh >> 28u, dm), c + 7u);
}
