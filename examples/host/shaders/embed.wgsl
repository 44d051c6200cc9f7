// embed.wgsl: out [tokens, dim] = table [ids, dim], the token embedding lookup over one row
// chunk of the table (ids first .. first + rows); ids outside it leave their rows untouched, so
// one dispatch per chunk fills every row (the host refuses ids past the vocabulary before
// uploading them; image rows are written by a copy of the projector's output afterwards).
// The table's element type is the declaration's variant (load_w, load8: f32, f16, f16 pairs, or
// a GGML block format read as u32 words).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/layout.rs):
//   0  uniform          p: EmbedParams       tokens, dim, rows, first, by8
//   1  storage, read    ids: array<u32>      [tokens]
//   2  storage, read    w: array<elem>       [rows, dim] in the variant's storage
//   3  storage, rw      out: array<f32>      [tokens, dim]
// Dispatch: 8 consecutive outputs per invocation, n = ceil(tokens x dim / 512) workgroups of
//   64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1). With p.by8 (dim a multiple of 8) the
//   8 share a row and come from one load8 (a block format's scale read once); else each is a
//   load_w.

struct EmbedParams {
    tokens: u32,
    dim: u32,
    rows: u32,
    first: u32,
    by8: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 8u;
    let len = p.tokens * p.dim;
    if (p.by8 != 0u) {
        if (base < len) {
            // Wraps for ids below the chunk: those fail the test too.
            let row = ids[base / p.dim] - p.first;
            if (row < p.rows) {
                let v = load8(row * p.dim + base % p.dim);
                for (var j = 0u; j < 8u; j++) {
                    out[base + j] = v[j];
                }
            }
        }
        return;
    }
    for (var e = 0u; e < 8u; e++) {
        let o = base + e;
        if (o < len) {
            let row = ids[o / p.dim] - p.first;
            if (row < p.rows) {
                out[o] = load_w(row * p.dim + o % p.dim);
            }
        }
    }
}
