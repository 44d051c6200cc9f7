// attention_probs.wgsl: the unfused path's first half, softmax(Q K^T * scale) materialised as
// [H, Tq, Tk] (what eager attention hands to var_rows.wgsl). Causal rows write 0 past their
// position (query row q sits at Tk - Tq + q).
//
// Bindings (group 0):
//   0  uniform          att: Attn              shapes, scale, causal (as attention_var.wgsl)
//   1  storage, read    q: array<f32>          [H, Tq, d]
//   2  storage, read    k: array<f32>          [Hkv, Tk, d], query head h reads h / (H / Hkv)
//   3  storage, rw      probs: array<f32>      [H, Tq, Tk]
// Override: D (head_dim).
// Dispatch: one workgroup of 64 per (head, query row), rows = H x Tq, on a 2-D grid
//   (min(rows, 65535), ceil(rows / 65535), 1). Workgroup memory: 256 B.

override D: u32 = 128u;

var<workgroup> red: array<f32, WG>;

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
    let pos = att.keys - att.queries + row % att.queries;
    let visible = select(att.keys, pos + 1u, att.causal != 0u);
    let q_base = row * D;
    let k_base = (head / (att.heads / att.kv_heads)) * att.keys * D;
    let out = row * att.keys;

    var m = -1e30;
    for (var j = lid; j < visible; j += WG) {
        var dot = 0.0;
        for (var t = 0u; t < D; t++) {
            dot += q[q_base + t] * k[k_base + j * D + t];
        }
        let s = dot * att.scale;
        probs[out + j] = s;
        m = max(m, s);
    }
    red[lid] = m;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red[lid] = max(red[lid], red[lid + stride]);
        }
        workgroupBarrier();
    }
    let row_max = red[0];
    workgroupBarrier();

    var sum = 0.0;
    for (var j = lid; j < visible; j += WG) {
        let e = exp(probs[out + j] - row_max);
        probs[out + j] = e;
        sum += e;
    }
    red[lid] = sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];
    for (var j = lid; j < att.keys; j += WG) {
        probs[out + j] = select(0.0, probs[out + j] * inv, j < visible);
    }
}
