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
//   3  storage, read    k: array<vec4<f32>>    [Hkv, capacity, D / 4] (keys 0..att.attn.keys
//   4  storage, read    v: array<vec4<f32>>    [Hkv, capacity, D / 4]  used; head h reads
//                                              h / (H / Hkv))
//   5  storage, read    classes: array<u32>    [capacity], bit 0 = image token, bit 1 = sink
//   6  storage, rw      partials: array<f32>   [H, Tq, blocks, 8 + 3 D]
// Override: D (head_dim, <= 128).
// Dispatch: one workgroup of 64 per (head, row, block): n = H x Tq x blocks on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). Workgroup memory: q (512 B), the block's weights and
//   classes (att.block <= 1024 keys: 8 KiB) and reductions (1.3 KiB).
// K and V are read 4 dims a load (D is a multiple of 4): a CPU adapter pays for each load
// lane by lane (lavapipe ran LLaMA-7B's decode attention ~5x faster so than a dim a load).

const MAX_BLOCK: u32 = 1024u;

override D: u32 = 128u;

var<workgroup> q_row: array<vec4<f32>, 32>;
var<workgroup> weights: array<f32, MAX_BLOCK>;
var<workgroup> block_classes: array<u32, MAX_BLOCK>;
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
    // In vec4s: D4 of them a key.
    let d4 = D / 4u;
    let kv_base = (head / (att.attn.heads / att.attn.kv_heads)) * att.capacity * d4;

    for (var t = lid; t < d4; t += WG) {
        let at = row_index * D + 4u * t;
        q_row[t] = vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]) * att.attn.scale;
    }
    workgroupBarrier();

    // Scores of this block's visible keys, and their max.
    var local_max = -1e30;
    for (var j = k0 + lid; j < k1; j += WG) {
        var s = 0.0;
        for (var t = 0u; t < d4; t++) {
            s += dot(q_row[t], k[kv_base + j * d4 + t]);
        }
        weights[j - k0] = s;
        local_max = max(local_max, s);
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
        block_classes[j - k0] = c;
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

    // Accumulators: each invocation owns 4 dims (lid's vec4); keys in order.
    let stride_p = 8u + 3u * D;
    let out = (row_index * att.blocks + block) * stride_p;
    for (var t = lid; t < d4; t += WG) {
        var acc_rest = vec4<f32>(0.0);
        var acc_sink = vec4<f32>(0.0);
        var acc_vns = vec4<f32>(0.0);
        for (var j = k0; j < k1; j++) {
            let c = block_classes[j - k0];
            let x = weights[j - k0] * v[kv_base + j * d4 + t];
            let sink = (c & CLASS_SINK) != 0u;
            let image = (c & CLASS_IMAGE) != 0u;
            acc_sink += select(vec4<f32>(0.0), x, sink);
            acc_vns += select(vec4<f32>(0.0), x, !sink && image);
            acc_rest += select(vec4<f32>(0.0), x, !sink && !image);
        }
        for (var i = 0u; i < 4u; i++) {
            partials[out + 8u + 4u * t + i] = acc_rest[i];
            partials[out + 8u + D + 4u * t + i] = acc_sink[i];
            partials[out + 8u + 2u * D + 4u * t + i] = acc_vns[i];
        }
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
