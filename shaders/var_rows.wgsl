// var_rows.wgsl: image-centric row selection and redistribution, in place, for one layer
// (var-spec.md sections 2 and 3).
//
// Per (head, query row) of post-softmax probabilities [H, Q, K]:
//   V  = sum_{vis} a,  Vs = sum_{vis & sink} a,  S = sum_{sink} a,  VNS = sum_{vis & !sink} a
//   selected <=> layer has a visual sink && V >= summ && Vs / (V + n_vis * 1e-6) <= rho_code
//   if selected, role == redistribute, the row may change and VNS > 1e-12:
//     sinks *= 1 - p;  visual non-sinks *= 1 + p * S / VNS;  other keys untouched (not written)
//
// Bindings (group 0):
//   0  uniform          cfg: Config      per-layer-role slot, dynamic offset
//   1  uniform          rng: Range       which heads the bound probability range holds
//   2  storage, rw      probs: array<f32>      [rng.heads, Q, K] (a range of [B x H, Q, K])
//   3  storage, read    classes: array<u32>    [B, K], bit 0 = image token, bit 1 = sink
//   4  storage, rw      selected: array<u32>   [B, H, Q], 1 = the row passes section 2
//   5  storage, read    seqs: array<Seq>       [B], each sequence's left padding and image
//   6  texture_2d<f32>  staged                 (var_rows.staged.wgsl only) a copy of the rows
// Three preludes give the group accessors begin_row / load4 / class4 / scale4 (src/shaders.rs):
// PRELUDE_ROWS_SCALAR over array<f32> (any K, any padding); PRELUDE_ROWS_VEC4 over
// array<vec4<f32>> (declaration var_rows.vec4.wgsl), one load and one store per group, for a
// sequence whose K and first key are multiples of 4, so every group sits on 16 bytes; the host
// records it when the prepared prompt allows (LayerBinding::record_rows); PRELUDE_ROWS_STAGED
// (var_rows.staged.wgsl), the vec4 kernel loading from an rgba32float copy of the rows that
// LayerBinding::encode makes first (CPU adapters fetch texels much faster than storage).
// A batch is B sequences left-padded to [B, H, Q, K] (as HF pads): sequence b's keys start at
// seqs[b].key_offset and its rows at seqs[b].first_row; heads are counted over B x H, so a
// binding's head range may cross sequences. Keys are visited in groups of 4 from the
// sequence's first key, so each sequence sums in exactly the order it would alone.
// Overrides: PACKED (below); LANES (1, 2, 4, ..., 64) invocations per row, so 64 / LANES rows
//   per workgroup;
//   KEYS (4, 8, 16) consecutive keys a lane takes per step (lane l: keys KEYS l .. from the
//   sequence's first key, then every LANES x KEYS). 64 x 4 suits GPUs; CPU-emulated adapters
//   pay per invocation, per load and per barrier, and run faster with few lanes and more keys
//   each. KernelSettings::autotune measures which.
// Dispatch: workgroups of 64 over rows = rng.heads x (Q - cfg.row_start) (row_start > 0 skips
//   the rows before the image when only rows that may change are wanted):
//   n = ceil(rows / (64 / LANES)) on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).
//   Workgroup memory: 1284 B + 8 KiB of packed classes (sequences up to 32768 keys).
// Role 0 (layer does not detect) writes selected = 0 without reading probs.

override LANES: u32 = 64u;
override KEYS: u32 = 4u;

// x: visual, y: visual sinks, z: all sinks, w: visual non-sinks.
var<workgroup> masses: array<vec4<f32>, WG>;
var<workgroup> visual_sink_seen: array<u32, WG>;
// PACKED: the classes of the sequence, 2 bits a key (image, sink), 16 keys a word, packed once
// per workgroup, so its rows read one word per 16 keys instead of one u32 per key (on CPU
// adapters the class loads were 60% of the kernel). The host sets it for one sequence of at
// most 16 x PACKED_WORDS keys; batches (rows of a workgroup may span sequences) and longer
// sequences read classes[] directly. An override, not a branch: CPU adapters pay for both
// sides of a branch they cannot prove uniform.
override PACKED: bool = false;
const PACKED_WORDS: u32 = 2048u;
var<workgroup> packed_classes: array<u32, PACKED_WORDS>;
// Packed: bit 0 set when a key of the sequence is an image token and a sink, found while
// packing (every row reads every key of its sequence, so it is the same for all of them).
var<workgroup> packed_visual_sink: atomic<u32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows_per_head = cfg.queries - cfg.row_start;
    let lane = lid % LANES;
    let index = (wg.x + wg.y * nwg.x) * (WG / LANES) + lid / LANES;
    let head = index / rows_per_head;
    let q = cfg.row_start + index % rows_per_head;
    // Rows past the end, and padding rows, still take part in the barriers; they load nothing.
    var valid = index < rng.heads * rows_per_head;
    let batch_head = rng.head_offset + min(head, rng.heads - 1u);
    let b = batch_head / cfg.heads;
    let sq = seqs[b];
    valid = valid && q >= sq.first_row;
    let base = (head * cfg.queries + q) * cfg.tokens;
    let flag = batch_head * cfg.queries + q;
    let class_base = b * cfg.tokens;
    begin_row(head, q, base);
    if (cfg.role == ROLE_OFF) {
        if (valid && lane == 0u) {
            selected[flag] = 0u;
        }
        return;
    }
    let packed = PACKED;
    if (packed) {
        let words = min((cfg.tokens + 15u) / 16u, PACKED_WORDS);
        for (var w = lid; w < words; w += WG) {
            var word = 0u;
            for (var e = 0u; e < 16u; e++) {
                let j = min(w * 16u + e, cfg.tokens - 1u);
                let c = select(0u, classes[j] & 3u, w * 16u + e < cfg.tokens);
                word |= c << (2u * e);
            }
            packed_classes[w] = word;
            if ((word & (word >> 1u) & 0x55555555u) != 0u) {
                atomicOr(&packed_visual_sink, 1u);
            }
        }
        workgroupBarrier();
    }

    // Pass 1: the four masses; every row reads every class, so "the layer has a visual sink"
    // comes for free. VNS is accumulated directly: V - Vs cancels when sinks dominate.
    var vis_mass = 0.0;
    var vis_sink_mass = 0.0;
    var sink_mass = 0.0;
    var vns_mass = 0.0;
    var seen = 0u;
    let end = select(0u, cfg.tokens, valid);
    for (var j0 = sq.key_offset + lane * KEYS; j0 < end; j0 += LANES * KEYS) {
        // A step's KEYS <= 16 keys lie in at most two packed words.
        let step = step_classes(packed, j0);
        for (var g = 0u; g < KEYS; g += 4u) {
            let j = j0 + g;
            // Keys past the row's end are of class 0; groups of only other keys add nothing
            // and are not loaded (the rows' text before and after the image).
            let c = classes4(packed, step, g, j, class_base, end);
            if (j < end && any(c != vec4<u32>(0u))) {
                let a = load4(base + j, base + end);
                let on_image = select(vec4<f32>(0.0), a, (c & vec4<u32>(CLASS_IMAGE)) != vec4<u32>(0u));
                let is_sink = (c & vec4<u32>(CLASS_SINK)) != vec4<u32>(0u);
                vis_mass += sum4(on_image);
                sink_mass += sum4(select(vec4<f32>(0.0), a, is_sink));
                vis_sink_mass += sum4(select(vec4<f32>(0.0), on_image, is_sink));
                vns_mass += sum4(select(on_image, vec4<f32>(0.0), is_sink));
                if (!packed) {
                    // Bit 0: this key is an image token and a sink.
                    let both = c & (c >> vec4<u32>(1u));
                    seen |= both.x | both.y | both.z | both.w;
                }
            }
        }
    }
    if (packed) {
        seen = atomicLoad(&packed_visual_sink);
    }
    masses[lid] = vec4<f32>(vis_mass, vis_sink_mass, sink_mass, vns_mass);
    visual_sink_seen[lid] = seen;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            masses[lid] += masses[lid + stride];
            visual_sink_seen[lid] |= visual_sink_seen[lid + stride];
        }
        workgroupBarrier();
    }
    if (!valid) {
        return;
    }
    let first = lid - lane;
    let m = masses[first];
    let ratio = m.y / (m.x + sq.vis_eps);
    let is_selected = (visual_sink_seen[first] & 1u) != 0u && m.x >= cfg.summ && ratio <= cfg.rho;
    if (lane == 0u) {
        selected[flag] = select(0u, 1u, is_selected);
    }

    // Pass 2, only for rows that change: one multiply per sink and per visual non-sink.
    let pos = cfg.tokens - cfg.queries + q;
    let may_change = pos >= sq.first_image_end && (class_at(class_base + pos, class_base + cfg.tokens) & CLASS_IMAGE) == 0u;
    if (is_selected && may_change && cfg.role == ROLE_REDISTRIBUTE && m.w > GUARD) {
        let gain = 1.0 + cfg.p * m.z / m.w;
        let row_end = base + cfg.tokens;
        for (var j0 = sq.key_offset + lane * KEYS; j0 < cfg.tokens; j0 += LANES * KEYS) {
            let step = step_classes(packed, j0);
            for (var g = 0u; g < KEYS; g += 4u) {
                let j = j0 + g;
                let c = classes4(packed, step, g, j, class_base, cfg.tokens);
                // Other keys are not written.
                if (j < cfg.tokens && any(c != vec4<u32>(0u))) {
                    let on_image = (c & vec4<u32>(CLASS_IMAGE)) != vec4<u32>(0u);
                    let is_sink = (c & vec4<u32>(CLASS_SINK)) != vec4<u32>(0u);
                    let f = select(select(vec4<f32>(1.0), vec4<f32>(gain), on_image), vec4<f32>(cfg.keep), is_sink);
                    scale4(base + j, row_end, f, on_image | is_sink);
                }
            }
        }
    }
}

// The classes of the step's keys j0 .. j0 + KEYS - 1 (KEYS <= 16), 2 bits a key from bit 0,
// from the one or two packed words they lie in (0 when not packed).
fn step_classes(packed: bool, j0: u32) -> u32 {
    if (!packed) {
        return 0u;
    }
    let w0 = packed_classes[min(j0 / 16u, PACKED_WORDS - 1u)];
    let w1 = packed_classes[min((j0 + KEYS - 1u) / 16u, PACKED_WORDS - 1u)];
    let s = 2u * (j0 % 16u);
    return (w0 >> s) | select(0u, w1 << ((32u - s) & 31u), s != 0u);
}

// The classes (image, sink bits) of keys j .. j + 3 of a row (group g of its step), 0 at and
// past end: from the step's packed classes, or from classes[] at class_base.
fn classes4(packed: bool, step: u32, g: u32, j: u32, class_base: u32, end: u32) -> vec4<u32> {
    if (!packed) {
        return class4(class_base + j, class_base + end) & vec4<u32>(CLASS_IMAGE | CLASS_SINK);
    }
    let c = (vec4<u32>(step >> (2u * g)) >> vec4<u32>(0u, 2u, 4u, 6u)) & vec4<u32>(3u);
    return select(vec4<u32>(0u), c, vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end));
}

// The 4 lanes summed in a fixed order.
fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}
