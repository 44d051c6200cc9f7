// linear_vec.wgsl: out = x W^T + b for one row of x (a decode step's matrix-vector product):
// x [1, k], W [m, k] (rows of a HF Linear's weight, or one row chunk of it), b [m], out [1, ldo]
// written at columns col0 .. col0 + m, f32 accumulation. W's element type and load_w are the
// declaration's variant (f32, f16, f16 pairs, or a GGML block format read as u32 words).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/linear.rs):
//   0  uniform          p: LinearParams      n (1), m, k, bias, ldo, col0
//   1  storage, read    x: array<f32>        [k]
//   2  storage, read    w: array<elem>       [m, k] in the variant's storage
//   3  storage, read    b: array<f32>        [col0 + m] (any 1-element buffer when p.bias is 0)
//   4  storage, rw      out: array<f32>      [ldo]
// Dispatch: workgroups of 64, one per 4 rows of W, n = ceil(m / 4) on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). Each invocation walks runs of 8 consecutive elements
//   (load8: a block format's scale read once, its 8 quants in 2 or 3 word loads) for the 4
//   rows at once, so each x value is read once per 4 rows; the 64 partial sums of each row
//   are added in workgroup memory (1 KiB).

struct LinearParams {
    n: u32,
    m: u32,
    k: u32,
    bias: u32,
    ldo: u32,
    col0: u32,
    t0: u32,
    k0: u32,
    kn: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

const LANES: u32 = 64u;
const ROWS: u32 = 4u;
const RUN: u32 = 8u;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row0 = (wg.x + wg.y * nwg.x) * ROWS;
    // Rows past the end read the last row (in bounds) and are never written.
    let last = p.m - 1u;
    let w0 = min(row0, last) * p.k;
    let w1 = min(row0 + 1u, last) * p.k;
    let w2 = min(row0 + 2u, last) * p.k;
    let w3 = min(row0 + 3u, last) * p.k;
    var acc = vec4<f32>(0.0);
    for (var start = lane * RUN; start < p.k; start += LANES * RUN) {
        if (start + RUN <= p.k) {
            let a = load8(w0 + start);
            let b = load8(w1 + start);
            let c = load8(w2 + start);
            let d = load8(w3 + start);
            for (var j = 0u; j < RUN; j++) {
                acc += x[start + j] * vec4<f32>(a[j], b[j], c[j], d[j]);
            }
        } else {
            // The tail of a row that is not whole runs (float formats only).
            for (var e = start; e < p.k; e++) {
                acc += x[e] * vec4<f32>(load_w(w0 + e), load_w(w1 + e), load_w(w2 + e), load_w(w3 + e));
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        partial[r * LANES + lane] = acc[r];
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            for (var r = 0u; r < ROWS; r++) {
                partial[r * LANES + lane] += partial[r * LANES + lane + s];
            }
        }
        workgroupBarrier();
    }
    let row = row0 + lane;
    if (lane < ROWS && row < p.m) {
        out[p.col0 + row] = partial[lane * LANES] + select(0.0, b[p.col0 + row], p.bias != 0u);
    }
}
