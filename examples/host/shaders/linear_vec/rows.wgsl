// linear_vec/rows.wgsl: what the matrix-vector kernels (linear_vec.wgsl, which adds a row's
// 64 lanes in workgroup memory, and linear_vec_subgroup.wgsl, through subgroups) share after
// linear/params.wgsl: each lane's partial sums of the workgroup's 4 rows. Each lane walks runs of 8
// consecutive elements (load8: a block format's scale read once, its 8 quants in 2 or 3 word
// loads) for the 4 rows at once, so each x value is read once per 4 rows.

const LANES: u32 = 64u;
const ROWS: u32 = 4u;
const RUN: u32 = 8u;

// Lane `lane`'s partial sums of rows row0 .. row0 + 4 (rows past the end read the last row, in
// bounds, and are never written).
fn rows_partial(row0: u32, lane: u32) -> vec4<f32> {
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
    return acc;
}
