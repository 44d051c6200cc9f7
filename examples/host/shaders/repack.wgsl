// repack.wgsl: a block-format matrix chunk (its GGUF bytes as u32 words) into the planes the
// texture kernel reads (texture/q4_0.wgsl, q4_1.wgsl, q8_0.wgsl): each block's quant bytes on
// a texel boundary, the chunk's blocks first, then their scales. The variant's prelude
// (repack/*.wgsl) moves one pair of blocks: its quants and the scale word(s) the pair fills.
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/repack.rs):
//   0  uniform          p: RepackParams      blocks (of the chunk)
//   1  storage, read    w: array<u32>        the chunk's words as stored
//   2  storage, rw      out: array<u32>      the planes (gpu/matrix.rs pads them to texture rows)
// Dispatch: workgroups of 64, one pair of blocks per invocation, n = ceil(blocks / 2) on a
//   2-D grid (min(n / 64, 65535), ...).

struct RepackParams {
    blocks: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// What the formats with one f16 d a block share (repack/q4_0.wgsl, q5_0.wgsl, q8_0.wgsl,
// q6_k.wgsl): block b's d bits, at byte `at` of its `size` bytes, 0 past the last block (an
// odd count's second half) ...
fn d_bits(b: u32, size: u32, at: u32) -> u32 {
    if (b >= p.blocks) {
        return 0u;
    }
    return w_f16_bits(b * size + at);
}

// ... the pair's two d in one word, the first block's in the low half ...
fn pair_d(pair: u32, size: u32, at: u32) -> u32 {
    return d_bits(2u * pair, size, at) | (d_bits(2u * pair + 1u, size, at) << 16u);
}

// ... and `words` words of quant bytes from byte `at` of the chunk into out from word `to`.
fn copy_quants(at: u32, to: u32, words: u32) {
    for (var i = 0u; i < words / 2u; i++) {
        let q = w_bytes8(at + 8u * i);
        out[to + 2u * i] = q.x;
        out[to + 2u * i + 1u] = q.y;
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let pair = (wg.x + wg.y * nwg.x) * 64u + lane;
    if (2u * pair < p.blocks) {
        repack_pair(pair);
    }
}
