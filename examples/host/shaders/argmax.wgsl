// argmax.wgsl: the index of a row's largest value, as the host's greedy sampler picks it
// (sampling.rs: f32::total_cmp's order, ties to the lowest index), and whether any value is
// not finite (the sampler refuses such a row: the forward pass went wrong), so that a greedy
// decode step reads back 8 bytes, not the logits.
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/argmax.rs):
//   0  uniform          p: ArgmaxParams      n (values), offset (of the row's first value)
//   1  storage, read    v: array<u32>        the row's f32 bits
//   2  storage, rw      out: array<u32>      [2]: the index, 1 if a value is NaN or infinite
// Dispatch: one workgroup of 64: each invocation scans a strided share, then a tree in
//   workgroup memory (512 bytes and a flag).

struct ArgmaxParams {
    n: u32,
    offset: u32,
    pad0: u32,
    pad1: u32,
}

const WG: u32 = 64u;

var<workgroup> keys: array<u32, 64>;
var<workgroup> indices: array<u32, 64>;
var<workgroup> not_finite: atomic<u32>;

// f32 bits as a u32 in total_cmp's order (the sign flips the rest, as IEEE 754's totalOrder).
fn order_key(bits: u32) -> u32 {
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// Whether (ka, ia) comes before (kb, ib): the larger key, the lower index on a tie.
fn better(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lane: u32) {
    var best_key = 0u;
    var best = 0xffffffffu;
    var bad = 0u;
    for (var i = lane; i < p.n; i += WG) {
        let bits = v[p.offset + i];
        bad |= u32((bits & 0x7f800000u) == 0x7f800000u);
        let k = order_key(bits);
        if (best == 0xffffffffu || k > best_key) {
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
            if (i != 0xffffffffu && (indices[lane] == 0xffffffffu || better(k, i, keys[lane], indices[lane]))) {
                keys[lane] = k;
                indices[lane] = i;
            }
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        out[0] = indices[0];
        out[1] = atomicLoad(&not_finite);
    }
}
