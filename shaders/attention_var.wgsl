// attention_var.wgsl: fused attention with VAR inside (var-spec.md section 5): softmax(Q K^T *
// scale) V with the attention probabilities never in memory. Per query row the online softmax
// keeps the running max m, the normaliser l, the masses l_vis, l_vissink, l_vns, l_sink and
// three output accumulators (sinks, visual non-sinks, the rest); the end applies section 2's
// selection and section 3's redistribution to the accumulators instead of the probabilities.
//
// VAR keeps the tile loop as plain attention's: the keys go by in runs of tiles that hold image
// keys or none (the host marks the image tiles, state.rs), and each run has one hot accumulator
// and normaliser per row, for its class (text, or image non-sinks); the other class's are parked
// between runs, so the split costs a swap per image edge, not a branch per tile. Keys that fit
// neither (sinks, and the text keys of a tile where an image starts or ends) are deferred: the
// loop leaves them out and stashes their scores in workgroup memory, and the end adds them one
// by one with their V rows, sinks into the third accumulator.
//
// Bindings (group 0):
//   0  uniform          cfg: Config      the VarState's per-layer-role slot, dynamic offset
//   1  uniform          att: Attn        shapes, scale, causal
//   2  storage, read    q: array<f32>          [H, Tq, D]
//   3  storage, read    k: array<f32>          [Hkv, Tk, D]  (query head h reads kv head
//   4  storage, read    v: array<f32>          [Hkv, Tk, D]   h / (H / Hkv), as HF repeat_kv)
//   5  storage, read    classes: array<u32>    [Tk], bit 0 = image token, bit 1 = sink, bit 2 =
//                                              the key's tile of 16 holds an image token
//   6  storage, rw      o: array<f32>          [H, Tq, D]
//   7  storage, rw      selected: array<u32>   [H, Tq]
// Overrides: D (head_dim, a multiple of 4, <= 128); VAR (false: plain attention, the same loop
//   with one accumulator, to measure what VAR costs).
// Dispatch: workgroups of 64 = 16 query rows x 4 lanes (each lane owns D / 4 output dims),
//   n = H x ceil(Tq / 16) on a 2-D grid (min(n, 65535), ceil(n / 65535), 1). Keys go through
//   workgroup memory in tiles of 16 (K, then V, in one 8 KiB tile) with 4 KiB of partial dot
//   products and a 3 KiB stash of deferred scores: 15.2 KiB of workgroup memory, four barriers
//   per tile. Causal: query row q sits at position Tk - Tq + q and a workgroup stops at its
//   last row's position.

const LANES: u32 = 4u;
const ROWS: u32 = 16u;
const BC: u32 = 16u;
const SLICE_MAX: u32 = 32u;

override D: u32 = 128u;
override VAR: bool = true;
// Output dims per lane, a pipeline constant so the inner loops have fixed trip counts.
override SLICE: u32 = D / LANES;

var<workgroup> tile: array<f32, 2048>;      // BC x MAX_D: K, then V, of 16 keys
var<workgroup> partial: array<f32, 1024>;   // WG x BC partial dot products
var<workgroup> visual_sink_seen: atomic<u32>;
// The tile's classes as bits: 0-15 image keys, 16-31 sinks (keys past the end: none).
var<workgroup> tile_bits: atomic<u32>;
// Deferred keys (sinks, and the text keys of a tile where an image starts or ends): the tile
// loop leaves them out and stashes their scores (per row) and indices; the end adds them one by
// one. Past DEFER_CAP in a workgroup they are found again and their scores recomputed.
const DEFER_CAP: u32 = 48u;
// deferred_key: the key in bits 0-29, its class (bit 0 image, bit 1 sink) in bits 30-31. K's
// binding (Tk x D x 4 bytes, D >= 4, at most 4 GiB) keeps Tk below 2^28.
const KEY_BITS: u32 = 0x3fffffffu;
var<workgroup> deferred_score: array<f32, ROWS * DEFER_CAP>;
var<workgroup> deferred_key: array<u32, DEFER_CAP>;

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
    var acc: array<f32, SLICE_MAX>;
    var park: array<f32, SLICE_MAX>;
    var hot_is_image = false;
    var m_park = -1e30;
    var l_park = 0.0;
    let q_base = (head * att.queries + min(row, att.queries - 1u)) * D + dim0;
    for (var t = 0u; t < slice; t++) {
        qs[t] = q[q_base + t] * att.scale;
        acc[t] = 0.0;
        park[t] = 0.0;
    }
    var m = -1e30;
    var l = 0.0;
    var s: array<f32, BC>;
    var n_deferred = 0u;
    let stash = (lid / LANES) * DEFER_CAP;

    // Every loop inside the tile loop has a trip count known at pipeline creation (BC, D):
    // llvmpipe caps the iterations of dynamic loops at 65535 per invocation over the whole
    // dispatch, which a 16-key tile loop with dynamic inner loops reached near 8k keys; with
    // these only the tile and run loops count (tiles + 2 per run). Keys past the end weigh zero.
    var t0 = 0u;
    loop {
        if (t0 >= kv_end) {
            break;
        }
        // A run of tiles that all hold image keys, or none: one hot accumulator and normaliser
        // for the run, the other class's parked (with the max they were kept at) until the next
        // run. The swap sits out here because llvmpipe pays for a branch in the tile loop on
        // every tile, taken or not: there it cost 4.5 of VAR's 6 points.
        if (VAR) {
            let image = tile_holds_image(t0);
            if (image != hot_is_image) {
                let c = exp(m_park - m);
                m_park = m;
                let l_parked = l_park * c;
                l_park = l;
                l = l_parked;
                for (var t = 0u; t < slice; t++) {
                    let x = park[t] * c;
                    park[t] = acc[t];
                    acc[t] = x;
                }
                hot_is_image = image;
            }
        }
        for (; t0 < kv_end && (!VAR || tile_holds_image(t0) == hot_is_image); t0 += BC) {
            let n = min(BC, kv_end - t0);
            for (var r = 0u; r < BC * D / WG; r++) {
                let i = lid + r * WG;
                let jj = i / D;
                tile[jj * MAX_D + i % D] = select(0.0, k[kv_base + min(t0 + jj, att.keys - 1u) * D + i % D], jj < n);
            }
            if (VAR && lid < BC && t0 + lid < att.keys) {
                let c = classes[t0 + lid];
                atomicOr(&tile_bits, ((c & 1u) << lid) | (((c >> 1u) & 1u) << (lid + BC)));
            }
            workgroupBarrier();
            let bits = atomicLoad(&tile_bits);
            for (var jj = 0u; jj < BC; jj++) {
                var dot = 0.0;
                for (var t = 0u; t < slice; t++) {
                    dot += qs[t] * tile[jj * MAX_D + dim0 + t];
                }
                partial[lid * BC + jj] = dot;
            }
            workgroupBarrier();
            if (lid == 0u) {
                atomicStore(&tile_bits, 0u);
            }
            // K is no longer read: V goes into the same tile while the partials are summed.
            for (var r = 0u; r < BC * D / WG; r++) {
                let i = lid + r * WG;
                let jj = i / D;
                tile[jj * MAX_D + i % D] = select(0.0, v[kv_base + min(t0 + jj, att.keys - 1u) * D + i % D], jj < n);
            }
            // Keys this tile weighs here, as bits: with VAR, all but the deferred ones. The masks
            // depend on the keys only, so every branch on them is uniform across the workgroup.
            var here = (1u << n) - 1u;
            var deferred = 0u;
            if (VAR) {
                let images = bits & 0xffffu;
                let texts = ((1u << min(BC, att.keys - t0)) - 1u) & ~images;
                let sinks = bits >> BC;
                deferred = (sinks | select(0u, texts, hot_is_image)) & here;
                here &= ~deferred;
            }
            let lead = lid - lane;
            var tile_max = m;
            for (var jj = 0u; jj < BC; jj++) {
                s[jj] = partial[lead * BC + jj] + partial[(lead + 1u) * BC + jj]
                      + partial[(lead + 2u) * BC + jj] + partial[(lead + 3u) * BC + jj];
                if (((here >> jj) & 1u) != 0u && (att.causal == 0u || t0 + jj <= pos)) {
                    tile_max = max(tile_max, s[jj]);
                }
            }
            if (deferred != 0u) {
                // Set aside in key order, the whole workgroup at once: invocation lid sums key
                // lid % BC's score for rows lid / BC, + 4, + 8, + 12.
                let jj = lid % BC;
                let slot = n_deferred + countOneBits(deferred & ((1u << jj) - 1u));
                if (((deferred >> jj) & 1u) != 0u && slot < DEFER_CAP) {
                    for (var r = lid / BC; r < ROWS; r += WG / BC) {
                        let p = r * LANES * BC + jj;
                        deferred_score[r * DEFER_CAP + slot] = partial[p] + partial[p + BC] + partial[p + 2u * BC] + partial[p + 3u * BC];
                    }
                    if (lid < BC) {
                        deferred_key[slot] = (t0 + jj) | (((bits >> jj) & 1u) << 30u) | (((bits >> (jj + BC)) & 1u) << 31u);
                    }
                }
                n_deferred += countOneBits(deferred);
            }
            workgroupBarrier();

            // Online softmax: rescale what is kept only when the max grows, then add this tile.
            if (tile_max > m) {
                let c = exp(m - tile_max);
                m = tile_max;
                l *= c;
                for (var t = 0u; t < slice; t++) {
                    acc[t] *= c;
                }
            }
            var e_sum = 0.0;
            for (var jj = 0u; jj < BC; jj++) {
                let e = select(0.0, exp(s[jj] - m), ((here >> jj) & 1u) != 0u && (att.causal == 0u || t0 + jj <= pos));
                s[jj] = e;
                e_sum += e;
            }
            l += e_sum;
            for (var jj = 0u; jj < BC; jj++) {
                for (var t = 0u; t < slice; t++) {
                    acc[t] += s[jj] * tile[jj * MAX_D + dim0 + t];
                }
            }
            workgroupBarrier();
        }
    }

    if (!valid) {
        return;
    }
    // The max over the stashed keys this row sees first, so that adding them needs no rescale.
    var m_end = m;
    for (var i = 0u; i < min(n_deferred, DEFER_CAP); i++) {
        if (att.causal != 0u && (deferred_key[i] & KEY_BITS) > pos) {
            break;
        }
        m_end = max(m_end, deferred_score[stash + i]);
    }
    // From here acc holds the text keys (O_rest) and park the image non-sinks (O_vns), at m_end.
    let c_hot = exp(m - m_end);
    let c_park = exp(m_park - m_end);
    let l_hot = l * c_hot;
    let l_parked = l_park * c_park;
    // Every image key the loop weighed is a non-sink (sinks are deferred).
    var l_vis = select(l_parked, l_hot, hot_is_image);
    var l_vns = l_vis;
    l = l_hot + l_parked;
    m = m_end;
    for (var t = 0u; t < slice; t++) {
        let hot = acc[t] * c_hot;
        let parked = park[t] * c_park;
        park[t] = select(parked, hot, hot_is_image);
        acc[t] = select(hot, parked, hot_is_image);
    }
    var l_sink = 0.0;
    var l_vissink = 0.0;
    var acc_sink: array<f32, SLICE_MAX>;
    for (var t = 0u; t < slice; t++) {
        acc_sink[t] = 0.0;
    }
    // The deferred keys this row sees, in key order, one online-softmax step each.
    var key = 0u;
    for (var i = 0u; i < n_deferred; i++) {
        var score = 0.0;
        var c = 0u;
        if (i < DEFER_CAP) {
            key = deferred_key[i] & KEY_BITS;
            c = deferred_key[i] >> 30u;
            score = deferred_score[stash + i];
        } else {
            key = next_deferred(key + 1u);
            c = classes[key] & (CLASS_IMAGE | CLASS_SINK);
            let q_row = (head * att.queries + row) * D;
            for (var t = 0u; t < D; t++) {
                score += q[q_row + t] * att.scale * k[kv_base + key * D + t];
            }
        }
        if (att.causal != 0u && key > pos) {
            break;
        }
        if (score > m) {
            let c = exp(m - score);
            m = score;
            l *= c;
            l_vis *= c;
            l_vns *= c;
            l_sink *= c;
            l_vissink *= c;
            for (var t = 0u; t < slice; t++) {
                acc[t] *= c;
                park[t] *= c;
                acc_sink[t] *= c;
            }
        }
        let e = exp(score - m);
        let vk = kv_base + key * D + dim0;
        l += e;
        if ((c & CLASS_IMAGE) != 0u) {
            l_vis += e;
        }
        if ((c & CLASS_SINK) != 0u) {
            l_sink += e;
            l_vissink += select(0.0, e, (c & CLASS_IMAGE) != 0u);
            for (var t = 0u; t < slice; t++) {
                acc_sink[t] += e * v[vk + t];
            }
        } else if ((c & CLASS_IMAGE) != 0u) {
            l_vns += e;
            for (var t = 0u; t < slice; t++) {
                park[t] += e * v[vk + t];
            }
        } else {
            for (var t = 0u; t < slice; t++) {
                acc[t] += e * v[vk + t];
            }
        }
    }

    var is_selected = false;
    var gain_sink = 1.0;
    var gain_vns = 1.0;
    if (VAR && cfg.role != ROLE_OFF) {
        let ratio = l_vissink / (l_vis + cfg.vis_eps * l);
        is_selected = atomicLoad(&visual_sink_seen) != 0u && l_vis / l >= cfg.summ && ratio <= cfg.rho;
        let may_change = pos >= cfg.first_image_end && (classes[pos] & CLASS_IMAGE) == 0u;
        if (is_selected && may_change && cfg.role == ROLE_REDISTRIBUTE && l_vns > GUARD * l) {
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
        o[o_base + t] = (acc[t] + gain_sink * acc_sink[t] + gain_vns * park[t]) * inv;
    }
}

// Whether tile t0 (< att.keys) holds an image key: bit 2 of a key's class, set by the host
// for every key of such a tile (state.rs). A read-only binding at a uniform index, so the answer
// is uniform and may bound the loops with barriers.
fn tile_holds_image(t0: u32) -> bool {
    return (classes[t0] & CLASS_IMAGE_TILE) != 0u;
}

// The first deferred key at or after `start` (one exists: the tile loop counted it): a sink, or
// a text key in a tile that holds an image key. Only for workgroups past DEFER_CAP.
fn next_deferred(start: u32) -> u32 {
    var key = start;
    while (!is_deferred(key)) {
        key++;
    }
    return key;
}

// The tile loop's rule: a sink, or a text key of a tile that holds an image key.
fn is_deferred(key: u32) -> bool {
    let c = classes[key];
    return (c & CLASS_SINK) != 0u || ((c & CLASS_IMAGE) == 0u && tile_holds_image(key - key % BC));
}
