// fill.wgsl: random weights made on the device (the bench's LLaMA-7B-shaped model: 13 GB that
// are never stored nor uploaded). Word i of out gets offset + scale x u, u uniform in [-1, 1)
// from a hash of (seed, element index): as one f32 (PACK 0), or as two f16 (PACK 1: elements
// 2i and 2i + 1 in its low and high halves, the f16 weights' layout).
//
// Bindings (group 0, generated from the declaration in examples/llava/gpu/fill.rs):
//   0  uniform          p: FillParams        words, seed, scale, offset
//   1  storage, rw      out: array<u32>      [words]
// Override: PACK (0 f32, 1 f16 pairs).
// Dispatch: 4 words per invocation, ceil(words / 256) workgroups of 64 on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1).

struct FillParams {
    words: u32,
    seed: u32,
    scale: f32,
    offset: f32,
}

override PACK: u32 = 0u;

// PCG-style integer hash (Jarzynski and Olano, "Hash Functions for GPU Rendering", 2020).
fn hash(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn value(i: u32) -> f32 {
    let u = f32(hash(i ^ hash(p.seed)) >> 8u) / 8388608.0 - 1.0;
    return p.offset + p.scale * u;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 4u;
    for (var e = 0u; e < 4u; e++) {
        let i = base + e;
        if (i < p.words) {
            if (PACK == 0u) {
                out[i] = bitcast<u32>(value(i));
            } else {
                out[i] = pack2x16float(vec2<f32>(value(2u * i), value(2u * i + 1u)));
            }
        }
    }
}
