// attention_var.wgsl: fused attention with VAR inside (var-spec.md section 5): softmax(Q K^T *
// scale) V with the attention probabilities never in memory. Per query row the online softmax
// keeps the running max m, the normaliser l, the masses l_vis, l_vissink, l_vns, l_sink and
// three output accumulators (sinks, visual non-sinks, the rest); the end applies section 2's
// selection and section 3's redistribution to the accumulators instead of the probabilities.
//
// Bindings (group 0):
//   0  uniform          cfg: Config      the VarState's per-layer-role slot, dynamic offset
//   1  uniform          att: Attn        shapes, scale, causal
//   2  storage, read    q: array<f32>          [H, Tq, D]
//   3  storage, read    k: array<f32>          [Hkv, Tk, D]  (query head h reads kv head
//   4  storage, read    v: array<f32>          [Hkv, Tk, D]   h / (H / Hkv), as HF repeat_kv)
//   5  storage, read    classes: array<u32>    [Tk], bit 0 = image token, bit 1 = sink
//   6  storage, rw      o: array<f32>          [H, Tq, D]
//   7  storage, rw      selected: array<u32>   [H, Tq]
// Overrides: D (head_dim, a multiple of 4, <= 128); VAR (false: plain attention, the same loop
//   with one accumulator, to measure what VAR costs).
// Dispatch: workgroups of 64 = 16 query rows x 4 lanes (each lane owns D / 4 output dims),
//   n = H x ceil(Tq / 16) on a 2-D grid (min(n, 65535), ceil(n / 65535), 1). Keys go through
//   workgroup memory in tiles of 16 (K, then V, in one 8 KiB tile) with 4 KiB of partial dot
//   products: 12 KiB of workgroup memory, four barriers per tile. Causal: query row q sits at position Tk - Tq + q and a
//   workgroup stops at its last row's position.

struct Config {
    tokens: u32,
    hidden: u32,
    n_sink_dims: u32,
    heads: u32,
    queries: u32,
    row_start: u32,
    first_image_end: u32,
    role: u32,
    tau: f32,
    summ: f32,
    rho: f32,
    keep: f32,
    p: f32,
    vis_eps: f32,
    pad0: u32,
    pad1: u32,
}

struct Attn {
    heads: u32,
    kv_heads: u32,
    queries: u32,
    keys: u32,
    causal: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
}

const WG: u32 = 64u;
const LANES: u32 = 4u;
const ROWS: u32 = 16u;
const BC: u32 = 16u;
const MAX_D: u32 = 128u;
const SLICE_MAX: u32 = 32u;
const GUARD: f32 = 1e-12;

override D: u32 = 128u;
override VAR: bool = true;
// Output dims per lane, a pipeline constant so the inner loops have fixed trip counts.
override SLICE: u32 = D / LANES;

@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<uniform> att: Attn;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> classes: array<u32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;
@group(0) @binding(7) var<storage, read_write> selected: array<u32>;

var<workgroup> tile: array<f32, 2048>;      // BC x MAX_D: K, then V, of 16 keys
var<workgroup> partial: array<f32, 1024>;   // WG x BC partial dot products
var<workgroup> visual_sink_seen: atomic<u32>;
// The tile's key classes, loaded once per workgroup instead of once per invocation.
var<workgroup> tile_classes: array<u32, BC>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let blocks = (att.queries + ROWS - 1u) / ROWS;
    let index = wg.x + wg.y * nwg.x;
    if (index >= att.heads * blocks) {
        return;
    }
    let head = index / blocks;
    let first_row = (index % blocks) * ROWS;
    let lane = lid % LANES;
    let row = first_row + lid / LANES;
    let valid = row < att.queries;
    let pos = att.keys - att.queries + row;
    let kv_base = (head / (att.heads / att.kv_heads)) * att.keys * D;
    let slice = SLICE;
    let dim0 = lane * slice;

    // Keys this workgroup needs (uniform: depends on the workgroup only).
    var kv_end = att.keys;
    if (att.causal != 0u) {
        let last_row = min(first_row + ROWS, att.queries) - 1u;
        kv_end = min(att.keys, att.keys - att.queries + last_row + 1u);
    }

    // Section 2's "the layer has a visual sink" needs every key, not only the visible ones.
    if (VAR) {
        var seen = 0u;
        for (var j = lid; j < att.keys; j += WG) {
            let c = classes[j];
            seen |= c & (c >> 1u);
        }
        atomicOr(&visual_sink_seen, seen & 1u);
    }

    var qs: array<f32, SLICE_MAX>;
    var acc_rest: array<f32, SLICE_MAX>;
    var acc_sink: array<f32, SLICE_MAX>;
    var acc_vns: array<f32, SLICE_MAX>;
    let q_base = (head * att.queries + min(row, att.queries - 1u)) * D + dim0;
    for (var t = 0u; t < slice; t++) {
        qs[t] = q[q_base + t] * att.scale;
        acc_rest[t] = 0.0;
        acc_sink[t] = 0.0;
        acc_vns[t] = 0.0;
    }
    var m = -1e30;
    var l = 0.0;
    var l_vis = 0.0;
    var l_vissink = 0.0;
    var l_vns = 0.0;
    var l_sink = 0.0;
    var s: array<f32, BC>;
    var sink_w: array<f32, BC>;
    var image_w: array<f32, BC>;

    // Every loop inside the tile loop has a trip count known at pipeline creation (BC, D):
    // llvmpipe caps the iterations of dynamic loops at 65535 per invocation over the whole
    // dispatch, which a 16-key tile loop with dynamic inner loops reached near 8k keys; with
    // these only the tile loop itself counts (65535 tiles). Keys past the end weigh zero.
    for (var t0 = 0u; t0 < kv_end; t0 += BC) {
        let n = min(BC, kv_end - t0);
        for (var r = 0u; r < BC * D / WG; r++) {
            let i = lid + r * WG;
            let jj = i / D;
            tile[jj * MAX_D + i % D] = select(0.0, k[kv_base + min(t0 + jj, att.keys - 1u) * D + i % D], jj < n);
        }
        if (VAR && lid < BC) {
            tile_classes[lid] = select(0u, classes[min(t0 + lid, att.keys - 1u)], lid < n);
        }
        workgroupBarrier();
        for (var jj = 0u; jj < BC; jj++) {
            var dot = 0.0;
            for (var t = 0u; t < slice; t++) {
                dot += qs[t] * tile[jj * MAX_D + dim0 + t];
            }
            partial[lid * BC + jj] = dot;
        }
        workgroupBarrier();
        // K is no longer read: V goes into the same tile while the partials are summed.
        for (var r = 0u; r < BC * D / WG; r++) {
            let i = lid + r * WG;
            let jj = i / D;
            tile[jj * MAX_D + i % D] = select(0.0, v[kv_base + min(t0 + jj, att.keys - 1u) * D + i % D], jj < n);
        }
        let lead = lid - lane;
        var tile_max = m;
        for (var jj = 0u; jj < BC; jj++) {
            s[jj] = partial[lead * BC + jj] + partial[(lead + 1u) * BC + jj]
                  + partial[(lead + 2u) * BC + jj] + partial[(lead + 3u) * BC + jj];
            let key = t0 + jj;
            if (jj < n && (att.causal == 0u || key <= pos)) {
                tile_max = max(tile_max, s[jj]);
            }
        }
        workgroupBarrier();

        // Online softmax: rescale what is kept only when the max grows (rarely, once a sink
        // has been seen), then add this tile.
        if (tile_max > m) {
            let c = exp(m - tile_max);
            m = tile_max;
            l *= c;
            l_vis *= c;
            l_vissink *= c;
            l_vns *= c;
            l_sink *= c;
            for (var t = 0u; t < slice; t++) {
                acc_rest[t] *= c;
                if (VAR) {
                    acc_sink[t] *= c;
                    acc_vns[t] *= c;
                }
            }
        }
        // Control flow here depends on the key only (the same for every row of the workgroup,
        // so compilers keep it uniform); the causal mask is a zero weight, not a branch.
        // Weights first: sinks (a handful of keys) apart from the rest. The class tests below
        // depend on the keys only, so every branch is uniform across the workgroup.
        // The tile's classes: most tiles hold text only or image non-sinks only (an image is a
        // span; sinks are a handful of keys), and weigh their keys without any per-key class work.
        var any_sink = false;
        var any_image = false;
        var any_text = false;
        if (VAR) {
            for (var jj = 0u; jj < BC; jj++) {
                let c = tile_classes[jj];
                let live = jj < n;
                any_sink = any_sink || (live && (c & 2u) != 0u);
                any_image = any_image || (live && c == 1u);
                any_text = any_text || (live && c == 0u);
            }
        } else {
            any_text = true;
        }
        if (!any_sink && !(any_image && any_text)) {
            var e_sum = 0.0;
            for (var jj = 0u; jj < BC; jj++) {
                let e = select(0.0, exp(s[jj] - m), jj < n && (att.causal == 0u || t0 + jj <= pos));
                s[jj] = e;
                e_sum += e;
            }
            l += e_sum;
            if (any_image) {
                l_vis += e_sum;
                l_vns += e_sum;
            }
        } else {
            for (var jj = 0u; jj < BC; jj++) {
                let key = t0 + jj;
                let e = select(0.0, exp(s[jj] - m), jj < n && (att.causal == 0u || key <= pos));
                l += e;
                let key_class = tile_classes[jj];
                let on_image = (key_class & 1u) != 0u;
                let is_sink = (key_class & 2u) != 0u;
                l_vis += select(0.0, e, on_image);
                l_sink += select(0.0, e, is_sink);
                l_vissink += select(0.0, e, on_image && is_sink);
                l_vns += select(0.0, e, on_image && !is_sink);
                s[jj] = select(e, 0.0, is_sink);
                sink_w[jj] = select(0.0, e, is_sink);
                image_w[jj] = select(0.0, 1.0, on_image);
            }
        }
        // Non-sinks: one accumulator per tile unless an image starts or ends inside it.
        if (!any_image) {
            for (var jj = 0u; jj < BC; jj++) {
                for (var t = 0u; t < slice; t++) {
                    acc_rest[t] += s[jj] * tile[jj * MAX_D + dim0 + t];
                }
            }
        } else if (!any_text) {
            for (var jj = 0u; jj < BC; jj++) {
                for (var t = 0u; t < slice; t++) {
                    acc_vns[t] += s[jj] * tile[jj * MAX_D + dim0 + t];
                }
            }
        } else {
            for (var jj = 0u; jj < BC; jj++) {
                let w_vns = s[jj] * image_w[jj];
                let w_rest = s[jj] - w_vns;
                for (var t = 0u; t < slice; t++) {
                    let x = tile[jj * MAX_D + dim0 + t];
                    acc_vns[t] += w_vns * x;
                    acc_rest[t] += w_rest * x;
                }
            }
        }
        if (any_sink) {
            for (var jj = 0u; jj < BC; jj++) {
                if (jj >= n || (tile_classes[jj] & 2u) == 0u) {
                    continue;
                }
                for (var t = 0u; t < slice; t++) {
                    acc_sink[t] += sink_w[jj] * tile[jj * MAX_D + dim0 + t];
                }
            }
        }
        workgroupBarrier();
    }

    if (!valid) {
        return;
    }
    var is_selected = false;
    var gain_sink = 1.0;
    var gain_vns = 1.0;
    if (VAR && cfg.role != 0u) {
        let ratio = l_vissink / (l_vis + cfg.vis_eps * l);
        is_selected = atomicLoad(&visual_sink_seen) != 0u && l_vis / l >= cfg.summ && ratio <= cfg.rho;
        let may_change = pos >= cfg.first_image_end && (classes[pos] & 1u) == 0u;
        if (is_selected && may_change && cfg.role == 2u && l_vns > GUARD * l) {
            gain_sink = cfg.keep;
            gain_vns = 1.0 + cfg.p * l_sink / l_vns;
        }
    }
    if (lane == 0u) {
        selected[head * att.queries + row] = select(0u, 1u, is_selected);
    }
    let inv = 1.0 / l;
    let o_base = (head * att.queries + row) * D + dim0;
    for (var t = 0u; t < slice; t++) {
        o[o_base + t] = (acc_rest[t] + gain_sink * acc_sink[t] + gain_vns * acc_vns[t]) * inv;
    }
}
