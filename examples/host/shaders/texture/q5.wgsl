// Q5_0 and Q5_1 in a texture, in planes (gpu/repack.rs): block j of a row is one texel of 16
// quant bytes (the chunk's blocks first, rows grouped by 8: texel.wgsl's row_texel); then each
// block's qh (its 32 fifth bits) row after row, 4 a texel (block b = row x blocks + j's in
// texel plane_rows() x blocks + b / 4, word b % 4); then the scales from texel plane_rows() x
// blocks + ceil(m x blocks / 4)
// (q5_dm: texture/q5_0.wgsl, q5_1.wgsl). Value j < 16 is the low nibble of quant byte j with
// bit j of qh as its fifth bit, j + 16 the high nibble with bit j + 16; value = q * d + m
// (Q5_0: m = -16 d), as llama.cpp's dequantize_row_q5_0 / q5_1.

const BLOCK: u32 = 32u;

// The last qh texel read: a lane walking its row reads each once, not once a block.
var<private> qhs_at: u32 = 0xffffffffu;
var<private> qhs: vec4<u32>;

fn block_qh(first: u32, b: u32) -> u32 {
    let t = first + b / 4u;
    if (t != qhs_at) {
        qhs = texel(t);
        qhs_at = t;
    }
    return qhs[b % 4u];
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

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, j: u32) {
    let blocks = p.k / 32u;
    let b = row * blocks + j;
    let q = texel(row_texel(row, j, blocks));
    let qh = block_qh(plane_rows() * blocks, b);
    let dm = q5_dm(plane_rows() * blocks + (p.m * blocks + 3u) / 4u, b);
    xfma(q5_values(q.x, qh, dm), 0u);
    xfma(q5_values(q.y, qh >> 4u, dm), 1u);
    xfma(q5_values(q.z, qh >> 8u, dm), 2u);
    xfma(q5_values(q.w, qh >> 12u, dm), 3u);
    xfma(q5_values(q.x >> 4u, qh >> 16u, dm), 4u);
    xfma(q5_values(q.y >> 4u, qh >> 20u, dm), 5u);
    xfma(q5_values(q.z >> 4u, qh >> 24u, dm), 6u);
    xfma(q5_values(q.w >> 4u, qh >> 28u, dm), 7u);
}
