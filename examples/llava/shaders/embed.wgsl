// embed.wgsl: out [tokens, dim] = table [ids, dim], f32: the token embedding lookup. An id past
// the table leaves its row untouched (the host refuses such ids before uploading them; image
// rows are written by a copy of the projector's output afterwards).
//
// Bindings (group 0, generated from the declaration in examples/llava/gpu/layout.rs):
//   0  uniform          p: EmbedParams       tokens, dim, vocab
//   1  storage, read    ids: array<u32>      [tokens]
//   2  storage, read    table: array<f32>    [vocab, dim]
//   3  storage, rw      out: array<f32>      [tokens, dim]
// Dispatch: 4 consecutive outputs per invocation, n = ceil(tokens x dim / 256) workgroups of
//   64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

struct EmbedParams {
    tokens: u32,
    dim: u32,
    vocab: u32,
    pad0: u32,
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 4u;
    for (var e = 0u; e < 4u; e++) {
        let o = base + e;
        if (o < p.tokens * p.dim) {
            let id = ids[o / p.dim];
            if (id < p.vocab) {
                out[o] = table[id * p.dim + o % p.dim];
            }
        }
    }
}
