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
//   the rows before the image when only rows that may change are wanted), in blocks of
//   block_heads = min(rng.heads, cfg.heads) heads when PACKED (else one block of every head):
//   n = (rng.heads / block_heads) x ceil(block_heads x (Q - row_start) / (64 / LANES))
//   on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).
//   Workgroup memory: 1284 B + 8 KiB of packed classes (sequences up to 32768 keys) + 4.5 KiB
//   of step lists.
// Role 0 (layer does not detect) writes selected = 0 without reading probs.

override LANES: u32 = 64u;
override KEYS: u32 = 4u;

// x: visual, y: visual sinks, z: all sinks, w: visual non-sinks.
var<workgroup> masses: array<vec4<f32>, WG>;
var<workgroup> visual_sink_seen: array<u32, WG>;
// PACKED: the classes of the sequence, 2 bits a key (image, sink), 16 keys a word, packed once
// per workgroup, so its rows read one word per 16 keys instead of one u32 per key (on CPU
// adapters the class loads were 60% of the kernel). The host sets it for sequences of at most
// 16 x PACKED_WORDS keys bound alone or in whole sequences (every workgroup's rows then lie in
// one sequence); head ranges that cut a batch's sequences and longer sequences read classes[]
// directly. An override, not a branch: CPU adapters pay for both
// sides of a branch they cannot prove uniform.
override PACKED: bool = false;
const PACKED_WORDS: u32 = 2048u;
var<workgroup> packed_classes: array<u32, PACKED_WORDS>;
// Packed: bit 0 set when a key of the sequence is an image token and a sink, found while
// packing (every row reads every key of its sequence, so it is the same for all of them).
var<workgroup> packed_visual_sink: atomic<u32>;
// Step lists (PACKED only). A lane's keys come in steps of KEYS (step s: keys from
// key_offset + s x KEYS; lane l takes the steps s = l mod LANES, in order). Most steps of a
// LLaVA row are "pure", only image non-sinks: their masses need one sum per group of 4 and their
// edit one multiply, where the other steps need the class arithmetic. CPU adapters run both
// sides of every `if` and at least one trip of every loop, so the kinds get loops of their own,
// over lists built once per workgroup (by its first invocation, after the packing): for each
// lane residue, its pure steps, then its other steps with an image or sink key (text-only steps
// are in neither). Sums stay in key order per kind: a lane adds each pure step's sum to P and
// every other step's to M, and V = P + M_V, VNS = P + M_VNS, the same bits however the steps
// were found (without lists, every step goes through the class arithmetic and is routed by its
// classes).
// step_list: step indices, two u16 a word; list_at[k]: where pure residue k (k < LANES), other
// residue k - LANES and the end (2 LANES) begin; more than MAX_LISTED steps: no lists.
// Built only where a workgroup holds 16 rows or more (LANES <= LISTS_MAX_LANES, the CPU
// settings): one invocation builds them while the rest wait, which on a GPU (64 lanes a row,
// one row a workgroup) would cost more than the branches it saves.
const MAX_LISTED: u32 = 2048u;
const LISTS_MAX_LANES: u32 = 4u;
var<workgroup> step_list: array<u32, MAX_LISTED / 2u>;
var<workgroup> list_at: array<u32, 2u * WG + 1u>;
var<workgroup> steps_listed: u32;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows_per_head = cfg.queries - cfg.row_start;
    let lane = lid % LANES;
    // Packed, the rows come in blocks of heads of one sequence, each from a workgroup of its
    // own (one block: the binding's heads of a sequence alone; a batch binding of whole
    // sequences: one block a sequence), so every workgroup packs one sequence's classes.
    // Unpacked: one block of every row.
    let per_wg = WG / LANES;
    let block_heads = select(rng.heads, min(rng.heads, cfg.heads), PACKED);
    let block_rows = block_heads * rows_per_head;
    let wgs_per_block = (block_rows + per_wg - 1u) / per_wg;
    let wg_index = wg.x + wg.y * nwg.x;
    let local = (wg_index % wgs_per_block) * per_wg + lid / LANES;
    let block_start = (wg_index / wgs_per_block) * block_heads;
    let head = block_start + local / rows_per_head;
    let q = cfg.row_start + local % rows_per_head;
    // Rows past the end, and padding rows, still take part in the barriers; they load nothing.
    var valid = local < block_rows && head < rng.heads;
    // Past the block's rows, a lane reads its block's last head: the sequence it packs.
    let batch_head = rng.head_offset + min(head, min(block_start + block_heads, rng.heads) - 1u);
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
                let j = class_base + min(w * 16u + e, cfg.tokens - 1u);
                let c = select(0u, classes[j] & 3u, w * 16u + e < cfg.tokens);
                word |= c << (2u * e);
            }
            packed_classes[w] = word;
            if ((word & (word >> 1u) & 0x55555555u) != 0u) {
                atomicOr(&packed_visual_sink, 1u);
            }
        }
        workgroupBarrier();
        if (LANES <= LISTS_MAX_LANES) {
            if (lid == 0u) {
                build_step_lists(steps_of(sq.key_offset), sq.key_offset);
            }
            workgroupBarrier();
        }
    }
    let listed = packed && LANES <= LISTS_MAX_LANES && steps_listed != 0u;
    let steps = steps_of(sq.key_offset);
    // This lane's steps when they are not listed: s = lane, lane + LANES, ... < steps.
    let lane_steps = (steps + LANES - 1u - min(lane, steps)) / LANES;
    let pure_lo = select(0u, list_at[lane], listed);
    let pure_hi = select(0u, list_at[lane + 1u], listed);
    let other_lo = select(0u, list_at[LANES + lane], listed);
    let other_hi = select(0u, list_at[LANES + lane + 1u], listed);
    let n_other = select(lane_steps, other_hi - other_lo, listed);

    // Pass 1: the four masses; every row reads every class, so "the layer has a visual sink"
    // comes for free. VNS is accumulated directly: V - Vs cancels when sinks dominate.
    // P (pure_mass): the pure steps' sums; M (other_mass): V, Vs, S and VNS of the other steps.
    var pure_mass = 0.0;
    var other_mass = vec4<f32>(0.0);
    var seen = 0u;
    let end = select(0u, cfg.tokens, valid);
    for (var k = pure_lo; k < select(pure_lo, pure_hi, valid); k++) {
        let j0 = sq.key_offset + listed_step(k) * KEYS;
        var v = 0.0;
        for (var g = 0u; g < KEYS; g += 4u) {
            v += sum4(load4(base + j0 + g, base + end));
        }
        pure_mass += v;
    }
    for (var k = 0u; k < select(0u, n_other, valid); k++) {
        let s = select(lane + k * LANES, listed_step(other_lo + k), listed);
        let j0 = sq.key_offset + s * KEYS;
        // A step's KEYS <= 16 keys lie in at most two packed words.
        let step = step_classes(packed, j0);
        // This step's V, Vs, S, VNS, and whether its keys are all image non-sinks.
        var part = vec4<f32>(0.0);
        var pure = true;
        for (var g = 0u; g < KEYS; g += 4u) {
            let j = j0 + g;
            // Keys past the row's end are of class 0; groups of only other keys add nothing
            // and are not loaded (the rows' text before and after the image).
            let c = classes4(packed, step, g, j, class_base, end);
            pure = pure && all(c == vec4<u32>(CLASS_IMAGE));
            if (j < end && any(c != vec4<u32>(0u))) {
                let a = load4(base + j, base + end);
                let on_image = select(vec4<f32>(0.0), a, (c & vec4<u32>(CLASS_IMAGE)) != vec4<u32>(0u));
                let is_sink = (c & vec4<u32>(CLASS_SINK)) != vec4<u32>(0u);
                part.x += sum4(on_image);
                part.y += sum4(select(vec4<f32>(0.0), on_image, is_sink));
                part.z += sum4(select(vec4<f32>(0.0), a, is_sink));
                part.w += sum4(select(on_image, vec4<f32>(0.0), is_sink));
                if (!packed) {
                    // Bit 0: this key is an image token and a sink.
                    let both = c & (c >> vec4<u32>(1u));
                    seen |= both.x | both.y | both.z | both.w;
                }
            }
        }
        // Unlisted steps are routed here by their classes (listed other steps are never pure).
        pure_mass += select(0.0, part.x, pure);
        other_mass += select(part, vec4<f32>(0.0), pure);
    }
    if (packed) {
        seen = atomicLoad(&packed_visual_sink);
    }
    var m = vec4<f32>(pure_mass + other_mass.x, other_mass.y, other_mass.z, pure_mass + other_mass.w);
    // A row's lanes add their masses up in workgroup memory; one lane a row has them already
    // (CPU adapters pay for each workgroup load and store, lane by lane).
    if (LANES > 1u) {
        masses[lid] = m;
        visual_sink_seen[lid] = seen;
        workgroupBarrier();
        for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
            if (lane < stride) {
                masses[lid] += masses[lid + stride];
                visual_sink_seen[lid] |= visual_sink_seen[lid + stride];
            }
            workgroupBarrier();
        }
        m = masses[lid - lane];
        seen = visual_sink_seen[lid - lane];
    }
    if (!valid) {
        return;
    }
    let ratio = m.y / (m.x + sq.vis_eps);
    let is_selected = (seen & 1u) != 0u && m.x >= cfg.summ && ratio <= cfg.rho;
    if (lane == 0u) {
        selected[flag] = select(0u, 1u, is_selected);
    }

    // Pass 2, only for rows that change: one multiply per sink and per visual non-sink.
    let pos = cfg.tokens - cfg.queries + q;
    let may_change = pos >= sq.first_image_end && (class_at(class_base + pos, class_base + cfg.tokens) & CLASS_IMAGE) == 0u;
    if (is_selected && may_change && cfg.role == ROLE_REDISTRIBUTE && m.w > GUARD) {
        let gain = 1.0 + cfg.p * m.z / m.w;
        let row_end = base + cfg.tokens;
        for (var k = pure_lo; k < pure_hi; k++) {
            let j0 = sq.key_offset + listed_step(k) * KEYS;
            for (var g = 0u; g < KEYS; g += 4u) {
                scale4(base + j0 + g, row_end, vec4<f32>(gain), vec4<bool>(true));
            }
        }
        for (var k = 0u; k < n_other; k++) {
            let j0 = sq.key_offset + select(lane + k * LANES, listed_step(other_lo + k), listed) * KEYS;
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

// Steps of KEYS keys from the sequence's first key to the end of the row.
fn steps_of(key_offset: u32) -> u32 {
    return (cfg.tokens - min(key_offset, cfg.tokens) + KEYS - 1u) / KEYS;
}

// Entry k of step_list.
fn listed_step(k: u32) -> u32 {
    return (step_list[min(k / 2u, MAX_LISTED / 2u - 1u)] >> (16u * (k % 2u))) & 0xffffu;
}

// 0: step s's keys are all text (or past the row), 1: all image non-sinks, 2: anything else.
// Only the keys before the row's end count (step_classes past the last packed word repeats
// it), and a step that runs past the end is never pure: its loop would load past the row.
fn step_kind(key_offset: u32, s: u32) -> u32 {
    let j0 = key_offset + s * KEYS;
    let keys = min(KEYS, cfg.tokens - min(j0, cfg.tokens));
    let width = 2u * keys;
    let mask = select(0xffffffffu, (1u << (width & 31u)) - 1u, width < 32u);
    let bits = step_classes(true, j0) & mask;
    if (bits == 0u) {
        return 0u;
    }
    return select(2u, 1u, keys == KEYS && bits == (0x55555555u & mask));
}

// Packed, one invocation: the step lists and list_at (see step_list), steps_listed = 1 when
// they fit.
fn build_step_lists(steps: u32, key_offset: u32) {
    var n = 0u;
    for (var kind = 1u; kind <= 2u; kind++) {
        for (var r = 0u; r < LANES; r++) {
            list_at[(kind - 1u) * LANES + r] = n;
            for (var s = r; s < steps; s += LANES) {
                if (step_kind(key_offset, s) == kind) {
                    if (n < MAX_LISTED) {
                        let w = n / 2u;
                        step_list[w] = select(s, step_list[w] | (s << 16u), n % 2u == 1u);
                    }
                    n += 1u;
                }
            }
        }
    }
    list_at[2u * LANES] = n;
    steps_listed = select(0u, 1u, n <= MAX_LISTED);
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
