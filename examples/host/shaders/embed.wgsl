// embed.wgsl: out [tokens, dim] = table [ids, dim], the token embedding lookup over one row
// chunk of the table (ids first .. first + rows); ids outside it leave their rows untouched, so
// one dispatch per chunk fills every row (the host refuses ids past the vocabulary before
// uploading them; image rows are written by a copy of the projector's output afterwards).
// The table's element type is the declaration's: f32, f16, or f16 pairs in u32 (load_w).
//
// Bindings (group 0, generated from the declaration in examples/llava/gpu/layout.rs):
//   0  uniform          p: EmbedParams       tokens, dim, rows, first
//   1  storage, read    ids: array<u32>      [tokens]
//   2  storage, read    w: array<f32 | f16 | u32>  [rows, dim] (u32: ceil(rows dim / 2) pairs)
//   3  storage, rw      out: array<f32>      [tokens, dim]
// Dispatch: 4 consecutive outputs per invocation, n = ceil(tokens x dim / 256) workgroups of
//   64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

struct EmbedParams {
    tokens: u32,
    dim: u32,
    rows: u32,
    first: u32,
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 4u;
    for (var e = 0u; e < 4u; e++) {
        let o = base + e;
        if (o < p.tokens * p.dim) {
            // Wraps for ids below the chunk: those fail the test too.
            let row = ids[o / p.dim] - p.first;
            if (row < p.rows) {
                out[o] = load_w(row * p.dim + o % p.dim);
            }
        }
    }
}
