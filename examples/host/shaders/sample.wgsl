// sample.wgsl: the next token from a row of logits, picked on the device as the host's sampler
// picks it (sampling.rs's `pick`), so that a decode step reads back 8 bytes, not the logits:
// - greedy: the argmax in f32::total_cmp's order, ties to the lowest index;
// - else the softmax at the temperature, restricted to the top-p nucleus (the smallest prefix
//   of the tokens sorted by logit, ties by index, whose mass reaches top_p of the total), and
//   the token where u x the nucleus' mass falls in that prefix's running mass.
// There is no sort. Each crossing (the nucleus' last token, then the drawn one) is a radix
// search over the sort key, the logit's order bits then the index, four bits a pass: a pass
// sums the weights of the tokens still in the group into 16 bins of the next digit, and the
// group narrows to the bin where the running mass crosses the goal (8 passes over the key,
// ceil(bits(n - 1) / 4) over the index). The passes read the row only while they must: once
// the tokens they search number at most CAP, one more pass gathers them (index and bits) into
// workgroup memory and the rest read those. One pass bins the row by distance below the top,
// (top - logit) / temperature: where the closest bins that hold the searches' goals (with
// 1e-4 to spare) hold at most CAP tokens, both searches run over those (three passes over the
// row in all: the argmax, the bins, the gathering); else each search gathers its group once it
// is that small.
// The weights are f32 and summed in bins (the sampler's are f64, summed in sorted order): the
// token is the sampler's unless top_p x the total or u x the mass falls within rounding of a
// token's boundary (check.rs accepts what the sampler picks at targets 1e-4 either side).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/sample.rs):
//   0  uniform          p: SampleParams      n, offset (of the row's first value), greedy,
//                                            inv_temperature, top_p, u
//   1  storage, read    v: array<u32>        the row's f32 bits
//   2  storage, rw      out: array<u32>      [2]: the token, 1 if a value is NaN or infinite
// Dispatch: one workgroup of 64 (14.7 KiB of workgroup memory: the gathered tokens, each
//   lane's bins, the argmax's tree).

struct SampleParams {
    n: u32,
    offset: u32,
    greedy: u32,
    inv_temperature: f32,
    top_p: f32,
    u: f32,
    pad0: u32,
    pad1: u32,
}

const WG: u32 = 64u;
const BINS: u32 = 16u;
const NONE: u32 = 0xffffffffu;
// The most tokens gathered into workgroup memory.
const CAP: u32 = 768u;

var<workgroup> keys: array<u32, 64>;
var<workgroup> indices: array<u32, 64>;
var<workgroup> not_finite: atomic<u32>;
var<workgroup> row_bad: u32;
var<workgroup> row_best: u32;
// Each lane's bins ([lane][bin]: weights, tokens), then their sums (lanes 0..16 add a column
// of weights each, lanes 16..32 a column of tokens).
var<workgroup> lane_mass: array<f32, 1024>;
var<workgroup> lane_count: array<f32, 1024>;
var<workgroup> bin_mass: array<f32, 16>;
var<workgroup> bin_count: array<f32, 16>;
// The gathered tokens: their indices and f32 bits, in no order.
var<workgroup> slot_index: array<u32, 768>;
var<workgroup> slot_bits: array<u32, 768>;
var<workgroup> slots: atomic<u32>;
// Lane 0's decisions, read by every lane through workgroupUniformLoad.
var<workgroup> chosen_digit: u32;
var<workgroup> chosen_above: f32;
var<workgroup> chosen_mass: f32;
var<workgroup> chosen_count: f32;
var<workgroup> shared_u32: u32;

var<private> lane: u32;
// The largest logit: weights are exp((logit - top) x inv_temperature), as the sampler's.
var<private> top: f32;
// The search's group: the tokens whose key under key_mask is group_key and whose index under
// index_mask is group_index; `above` is the mass sorted before it, `last_mass` the mass of the
// bin it narrowed to last (once narrowed to one token, that token's weight).
var<private> group_key: u32;
var<private> key_mask: u32;
var<private> group_index: u32;
var<private> index_mask: u32;
var<private> above: f32;
var<private> last_mass: f32;
// The searches' tokens: the gathered ones where `gathered`, else the row. (Decisions to pass a
// barrier or not follow values from workgroupUniformLoad, never this private copy: WGSL's
// uniformity analysis takes a private variable for non-uniform.)
var<private> gathered: bool;
var<private> gathered_n: u32;

// f32 bits as a u32 in total_cmp's order (the sign flips the rest, as IEEE 754's totalOrder).
fn order_key(bits: u32) -> u32 {
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// Whether (ka, ia) comes before (kb, ib): the larger key, the lower index on a tie.
fn better(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

// (top - logit) / temperature: 0 at the top (where 0 x inf would be NaN for temperatures below
// f32's range), infinite where the weight is 0.
fn distance(bits: u32) -> f32 {
    let d = top - bitcast<f32>(bits);
    return select(d * p.inv_temperature, 0.0, d == 0.0);
}

fn weight(bits: u32) -> f32 {
    return exp(-distance(bits));
}

// Distance d's bin: bin b holds distances below ((b + 1) / 2.75)^2 (0.13, 0.53, 1.2, ..., 30),
// bin 15 the rest.
fn distance_bin(d: f32) -> u32 {
    return u32(min(floor(sqrt(d) * 2.75), 15.0));
}

// Every lane's bins (its `mass` and `count`, through lane_mass and lane_count) summed into
// bin_mass and bin_count.
fn sum_bins(mass: array<f32, 16>, count: array<f32, 16>) {
    for (var b = 0u; b < BINS; b++) {
        lane_mass[lane * BINS + b] = mass[b];
        lane_count[lane * BINS + b] = count[b];
    }
    workgroupBarrier();
    if (lane < BINS) {
        var m = 0.0;
        for (var l = 0u; l < WG; l++) {
            m += lane_mass[l * BINS + lane];
        }
        bin_mass[lane] = m;
    } else if (lane < 2u * BINS) {
        var c = 0.0;
        for (var l = 0u; l < WG; l++) {
            c += lane_count[l * BINS + lane - BINS];
        }
        bin_count[lane - BINS] = c;
    }
    workgroupBarrier();
}

// Gathers the row's tokens within `below` distance bins, or (NONE) in the search's group, into
// the slots (at most CAP: the caller counted them) and makes them the searches' tokens.
fn gather(below: u32) {
    if (lane == 0u) {
        atomicStore(&slots, 0u);
    }
    workgroupBarrier();
    for (var i = lane; i < p.n; i += WG) {
        let bits = v[p.offset + i];
        var keep: bool;
        if (below == NONE) {
            keep = (order_key(bits) & key_mask) == group_key;
        } else {
            keep = distance_bin(distance(bits)) <= below;
        }
        if (keep) {
            let slot = atomicAdd(&slots, 1u);
            if (slot < CAP) {
                slot_index[slot] = i;
                slot_bits[slot] = bits;
            }
        }
    }
    workgroupBarrier();
    if (lane == 0u) {
        shared_u32 = min(atomicLoad(&slots), CAP);
    }
    gathered_n = workgroupUniformLoad(&shared_u32);
    gathered = true;
}

// One pass: the group's weights into bins of the digit at `shift` (of the key where `by_key`,
// else of the index), then the group narrows to the first bin in sorted order (key digits
// descending, index digits ascending) where the running mass passes `goal` (or reaches it,
// where !strict); past the last token, the last bin of any mass. Returns the group's tokens.
fn narrow(by_key: bool, shift: u32, goal: f32, strict: bool) -> f32 {
    // Bins in registers, each added to through a select: an index that differs by lane would
    // make every add a scatter (lavapipe runs lanes side by side in SIMD registers).
    var mass: array<f32, 16>;
    var count: array<f32, 16>;
    let n = select(p.n, gathered_n, gathered);
    for (var j = lane; j < n; j += WG) {
        var i = j;
        var bits: u32;
        if (gathered) {
            i = slot_index[j];
            bits = slot_bits[j];
        } else {
            bits = v[p.offset + j];
        }
        let k = order_key(bits);
        let inside = (k & key_mask) == group_key && (i & index_mask) == group_index;
        let w = select(0.0, weight(bits), inside);
        let c = select(0.0, 1.0, inside);
        let d = (select(i, k, by_key) >> shift) & 15u;
        for (var b = 0u; b < BINS; b++) {
            mass[b] += select(0.0, w, d == b);
            count[b] += select(0.0, c, d == b);
        }
    }
    sum_bins(mass, count);
    if (lane == 0u) {
        var run = above;
        var chosen = NONE;
        var last = 0u;
        var before_last = above;
        for (var j = 0u; j < BINS; j++) {
            let b = select(j, BINS - 1u - j, by_key);
            // A bin of no mass is never where the mass crosses, nor the last bin of mass.
            if (bin_mass[b] == 0.0) {
                continue;
            }
            let next = run + bin_mass[b];
            if (next > goal || (!strict && next == goal)) {
                chosen = b;
                break;
            }
            last = b;
            before_last = run;
            run = next;
        }
        if (chosen == NONE) {
            chosen = last;
            run = before_last;
        }
        chosen_digit = chosen;
        chosen_above = run;
        chosen_mass = bin_mass[chosen];
        chosen_count = bin_count[chosen];
    }
    let digit = workgroupUniformLoad(&chosen_digit);
    above = workgroupUniformLoad(&chosen_above);
    last_mass = workgroupUniformLoad(&chosen_mass);
    if (by_key) {
        group_key |= digit << shift;
        key_mask |= 15u << shift;
    } else {
        group_index |= digit << shift;
        index_mask |= 15u << shift;
    }
    return workgroupUniformLoad(&chosen_count);
}

// Narrows the searches' tokens to the one where the running mass crosses `goal`: 8 key
// digits, then `index_digits`; a search over the row gathers its group once it holds at most
// CAP tokens (`on_slots`: the search starts on gathered tokens).
fn crossing(goal: f32, strict: bool, index_digits: u32, on_slots: bool) {
    group_key = 0u;
    key_mask = 0u;
    group_index = 0u;
    index_mask = 0u;
    above = 0.0;
    gathered = on_slots;
    var slotted = on_slots;
    for (var s = 0u; s < 8u; s++) {
        let group = narrow(true, 28u - 4u * s, goal, strict);
        if (!slotted && group <= f32(CAP)) {
            gather(NONE);
            slotted = true;
        }
    }
    for (var s = 0u; s < index_digits; s++) {
        narrow(false, 4u * (index_digits - 1u - s), goal, strict);
    }
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) local: u32) {
    lane = local;
    // The argmax, and whether any value is not finite.
    var best_key = 0u;
    var best = NONE;
    var bad = 0u;
    for (var i = lane; i < p.n; i += WG) {
        let bits = v[p.offset + i];
        bad |= u32((bits & 0x7f800000u) == 0x7f800000u);
        let k = order_key(bits);
        if (best == NONE || k > best_key) {
            best_key = k;
            best = i;
        }
    }
    keys[lane] = best_key;
    indices[lane] = best;
    if (bad != 0u) {
        atomicOr(&not_finite, 1u);
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            let k = keys[lane + s];
            let i = indices[lane + s];
            if (i != NONE && (indices[lane] == NONE || better(k, i, keys[lane], indices[lane]))) {
                keys[lane] = k;
                indices[lane] = i;
            }
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        row_best = indices[0];
        row_bad = atomicLoad(&not_finite);
    }
    let argmax = workgroupUniformLoad(&row_best);
    let flagged = workgroupUniformLoad(&row_bad);
    if (p.greedy != 0u || flagged != 0u) {
        if (lane == 0u) {
            out[0] = argmax;
            out[1] = flagged;
        }
        return;
    }
    top = bitcast<f32>(v[p.offset + argmax]);
    // The tokens' mass and count by distance below the top.
    var mass: array<f32, 16>;
    var count: array<f32, 16>;
    for (var i = lane; i < p.n; i += WG) {
        let d = distance(v[p.offset + i]);
        let w = exp(-d);
        let bin = distance_bin(d);
        for (var b = 0u; b < BINS; b++) {
            mass[b] += select(0.0, w, bin == b);
            count[b] += select(0.0, 1.0, bin == b);
        }
    }
    sum_bins(mass, count);
    // The closest bins that hold the searches' goal: top_p of the total, or with no nucleus to
    // find (top_p 1), the draw's share of it; all of them where the row is CAP tokens or fewer.
    var total = 0.0;
    for (var b = 0u; b < BINS; b++) {
        total += bin_mass[b];
    }
    if (lane == 0u) {
        let goal = select(p.top_p, p.u, p.top_p >= 1.0) * total * (1.0 + 1e-4);
        var below = NONE;
        var held = 0.0;
        var tokens = 0.0;
        for (var b = 0u; b < BINS; b++) {
            held += bin_mass[b];
            tokens += bin_count[b];
            if (held > goal) {
                if (tokens <= f32(CAP)) {
                    below = b;
                }
                break;
            }
        }
        if (p.n <= CAP) {
            below = BINS - 1u;
        }
        shared_u32 = below;
    }
    let below = workgroupUniformLoad(&shared_u32);
    let on_slots = below != NONE;
    if (on_slots) {
        gather(below);
    }
    // Index digits: 4 bits a pass, enough for n - 1 (none for a row of one).
    let index_digits = (32u - countLeadingZeros(p.n - 1u) + 3u) / 4u;
    // The nucleus' last token: the first whose running mass reaches top_p of the total.
    var nucleus = total;
    var cut_key = 0u;
    var cut_index = 0u;
    if (p.top_p < 1.0) {
        crossing(p.top_p * total, false, index_digits, on_slots);
        cut_key = group_key;
        cut_index = group_index;
        nucleus = above + last_mass;
    }
    // The drawn token: the first whose running mass passes u x the nucleus' mass; never past
    // the nucleus (where rounding would carry it there, the sampler's last kept token).
    // (Where the first search gathered its own group, the drawn token may lie above it: the
    // second starts from the row again.)
    crossing(p.u * nucleus, true, index_digits, on_slots);
    let past = p.top_p < 1.0 && (group_key < cut_key || (group_key == cut_key && group_index > cut_index));
    if (lane == 0u) {
        out[0] = select(group_index, cut_index, past);
        out[1] = 0u;
    }
}
