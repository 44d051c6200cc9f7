// attention_pv.wgsl: the unfused path's second half, O = P V with P [H, Tq, Tk] the (VAR-edited)
// probabilities.
//
// Bindings (group 0):
//   0  uniform          att: Attn              shapes (as attention_var.wgsl)
//   1  storage, read    probs: array<f32>      [H, Tq, Tk]
//   2  storage, read    v: array<f32>          [Hkv, Tk, d], query head h reads h / (H / Hkv)
//   3  storage, rw      o: array<f32>          [H, Tq, d]
// Override: D (head_dim, <= 128).
// Dispatch: one workgroup of 64 per (head, query row), each invocation owning output dims
//   lid and lid + 64; rows = H x Tq on a 2-D grid (min(rows, 65535), ceil(rows / 65535), 1).

override D: u32 = 128u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= att.heads * att.queries) {
        return;
    }
    let head = row / att.queries;
    let v_base = (head / (att.heads / att.kv_heads)) * att.keys * D;
    let p_base = row * att.keys;
    var acc0 = 0.0;
    var acc1 = 0.0;
    let has1 = lid + WG < D;
    for (var j = 0u; j < att.keys; j++) {
        let p = probs[p_base + j];
        if (lid < D) {
            acc0 += p * v[v_base + j * D + lid];
        }
        if (has1) {
            acc1 += p * v[v_base + j * D + lid + WG];
        }
    }
    if (lid < D) {
        o[row * D + lid] = acc0;
    }
    if (has1) {
        o[row * D + lid + WG] = acc1;
    }
}
