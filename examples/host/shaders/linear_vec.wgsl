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
//   (min(n, 65535), ceil(n / 65535), 1). Each invocation's partial sums of the 4 rows come
//   from linear_vec/rows.wgsl (runs of 8 elements, each x value read once per 4 rows); the 64
//   partial sums of each row are added in workgroup memory (1 KiB), for adapters without
//   subgroups (linear_vec_subgroup.wgsl where they have them).

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row0 = (wg.x + wg.y * nwg.x) * ROWS;
    let acc = rows_partial(row0, lane);
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
