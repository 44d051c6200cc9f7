// attention_split.wgsl: split-K attention with VAR's partial state, for decode (one or a few
// query rows over a long context). Each workgroup takes one block of keys of one (head, row)
// and writes what the online softmax keeps: m, l, l_vis, l_vissink, l_vns, l_sink, whether
// the block holds a visual sink, and the three output accumulators (sinks, visual non-sinks,
// the rest) over D dims. attention_combine.wgsl merges the blocks and applies VAR once.
//
// Bindings (group 0):
//   0  uniform          cfg: Config      VarState's per-layer-role slot, dynamic offset
//   1  uniform          att: SplitParams shapes, scale, causal, block length, blocks per row
//   2  storage, read    q: array<f32>          [H, Tq, D]
//   3  storage, read    k: array<f32>          [Hkv, capacity, D] (keys 0..att.attn.keys used;
//   4  storage, read    v: array<f32>          [Hkv, capacity, D]  head h reads h / (H / Hkv))
//   5  storage, read    classes: array<u32>    [capacity], bit 0 = image token, bit 1 = sink
//   6  storage, rw      partials: array<f32>   [H, Tq, blocks, 8 + 3 D]
// Override: D (head_dim, <= 128).
// Dispatch: one workgroup of 64 per (head, row, block): n = H x Tq x blocks on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). Workgroup memory: q (512 B), the block's weights
//   (att.block <= 1024 keys: 4 KiB) and reductions (1.3 KiB).

const MAX_BLOCK: u32 = 1024u;

override D: u32 = 128u;

var<workgroup> q_row: array<f32, MAX_D>;
var<workgroup> weights: array<f32, MAX_BLOCK>;
var<workgroup> red: array<vec4<f32>, WG>;
var<workgroup> red2: array<vec2<f32>, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let index = wg.x + wg.y * nwg.x;
    if (index >= att.attn.heads * att.attn.queries * att.blocks) {
        return;
    }
    let block = index % att.blocks;
    let row_index = index / att.blocks;
    let head = row_index / att.attn.queries;
    let row = row_index % att.attn.queries;
    let pos = att.attn.keys - att.attn.queries + row;
    let visible = select(att.attn.keys, pos + 1u, att.attn.causal != 0u);
    let k0 = block * att.block;
    let k_all = min(k0 + att.block, att.attn.keys);
    let k1 = min(k_all, visible);
    let kv_base = (head / (att.attn.heads / att.attn.kv_heads)) * att.capacity * D;

    for (var t = lid; t < D; t += WG) {
        q_row[t] = q[row_index * D + t] * att.attn.scale;
    }
    workgroupBarrier();

    // Scores of this block's visible keys, and their max.
    var local_max = -1e30;
    for (var j = k0 + lid; j < k1; j += WG) {
        var dot = 0.0;
        for (var t = 0u; t < D; t++) {
            dot += q_row[t] * k[kv_base + j * D + t];
        }
        weights[j - k0] = dot;
        local_max = max(local_max, dot);
    }
    red[lid] = vec4<f32>(local_max, 0.0, 0.0, 0.0);
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red[lid].x = max(red[lid].x, red[lid + stride].x);
        }
        workgroupBarrier();
    }
    let m = red[0].x;
    workgroupBarrier();

    // Weights and masses; "a visual sink in the block" over all its keys, visible or not.
    var masses = vec4<f32>(0.0); // l, l_vis, l_vissink, l_vns
    var extra = vec2<f32>(0.0);  // l_sink, seen
    for (var j = k0 + lid; j < k_all; j += WG) {
        let c = classes[j];
        extra.y = max(extra.y, f32(c & (c >> 1u) & 1u));
        if (j < k1) {
            let e = exp(weights[j - k0] - m);
            weights[j - k0] = e;
            let on_image = (c & CLASS_IMAGE) != 0u;
            let is_sink = (c & CLASS_SINK) != 0u;
            masses += vec4<f32>(e, select(0.0, e, on_image), select(0.0, e, on_image && is_sink), select(0.0, e, on_image && !is_sink));
            extra.x += select(0.0, e, is_sink);
        }
    }
    red[lid] = masses;
    red2[lid] = extra;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
            red2[lid] = vec2<f32>(red2[lid].x + red2[lid + stride].x, max(red2[lid].y, red2[lid + stride].y));
        }
        workgroupBarrier();
    }

    // Accumulators: each invocation owns dims lid and lid + 64; keys in order.
    let stride_p = 8u + 3u * D;
    let out = (row_index * att.blocks + block) * stride_p;
    for (var t = lid; t < D; t += WG) {
        var acc_rest = 0.0;
        var acc_sink = 0.0;
        var acc_vns = 0.0;
        for (var j = k0; j < k1; j++) {
            let c = classes[j];
            let x = weights[j - k0] * v[kv_base + j * D + t];
            if ((c & CLASS_SINK) != 0u) {
                acc_sink += x;
            } else if ((c & CLASS_IMAGE) != 0u) {
                acc_vns += x;
            } else {
                acc_rest += x;
            }
        }
        partials[out + 8u + t] = acc_rest;
        partials[out + 8u + D + t] = acc_sink;
        partials[out + 8u + 2u * D + t] = acc_vns;
    }
    if (lid == 0u) {
        let s = red[0];
        partials[out] = m;
        partials[out + 1u] = s.x;
        partials[out + 2u] = s.y;
        partials[out + 3u] = s.z;
        partials[out + 4u] = s.w;
        partials[out + 5u] = red2[0].x;
        partials[out + 6u] = red2[0].y;
        partials[out + 7u] = 0.0;
    }
}
