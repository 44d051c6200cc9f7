// Q4_0 in a texture, in planes (gpu/repack.rs): block b's 16 quant bytes are texel b, the
// chunk's blocks first; then the f16 scales, 8 a texel (block b's in texel blocks + b / 8,
// word (b / 2) % 4, half b % 2). Value j < 16 is the low nibble of quant byte j, j + 16 its
// high nibble; value = (q - 8) * d.

const BLOCK: u32 = 32u;

// The last scale texel read: a lane walking its row reads each once, not once a block.
var<private> scales_at: u32 = 0xffffffffu;
var<private> scales: vec4<u32>;

fn half_scale(first: u32, b: u32) -> f32 {
    let t = first + b / 8u;
    if (t != scales_at) {
        scales = texel(t);
        scales_at = t;
    }
    return unpack2x16float(scales[(b / 2u) % 4u] >> ((b & 1u) * 16u)).x;
}

fn nibbles(w: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(w & 0x0f0f0f0fu)) - 8.0;
}

fn dot_block(row: u32, j: u32) -> vec4<f32> {
    let blocks = p.k / 32u;
    let b = row * blocks + j;
    let q = texel(b);
    let d = half_scale(p.m * blocks, b);
    let c = 8u * j;
    let s = xdot(nibbles(q.x), c) + xdot(nibbles(q.y), c + 1u) + xdot(nibbles(q.z), c + 2u) + xdot(nibbles(q.w), c + 3u)
        + xdot(nibbles(q.x >> 4u), c + 4u) + xdot(nibbles(q.y >> 4u), c + 5u) + xdot(nibbles(q.z >> 4u), c + 6u)
        + xdot(nibbles(q.w >> 4u), c + 7u);
    return d * s;
}
