// linear_vec_subgroup.wgsl: linear_vec.wgsl with each row's 64 partial sums added through
// subgroups, for adapters that have them: subgroupAdd over the 4 rows' sums at once, then one
// value a subgroup through workgroup memory and one barrier, where linear_vec.wgsl's tree
// takes 6 barriers and 64 x 4 stores. out = x W^T + b for one row of x: x [1, k], W [m, k], b
// [m], out [1, ldo] at columns col0 .. col0 + m, f32 accumulation; W's element type and load8 /
// load_w are the declaration's variant.
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/linear.rs):
//   0  uniform          p: LinearParams      n (1), m, k, bias, ldo, col0
//   1  storage, read    x: array<f32>        [k]
//   2  storage, read    w: array<elem>       [m, k] in the variant's storage
//   3  storage, read    b: array<f32>        [col0 + m] (any 1-element buffer when p.bias is 0)
//   4  storage, rw      out: array<f32>      [ldo]
// Dispatch: workgroups of 64, one per 4 rows of W, n = ceil(m / 4) on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1); each invocation's partial sums from
//   linear_vec/rows.wgsl. Any subgroup size: 64 / size subgroups a workgroup (one where a
//   subgroup holds 64 lanes or more), each its slot by subgroup_id.

// Each subgroup's sums of the 4 rows (at most 64 subgroups of 1 lane).
var<workgroup> sums: array<vec4<f32>, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sid: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
) {
    let row0 = (wg.x + wg.y * nwg.x) * ROWS;
    let total = subgroupAdd(rows_partial(row0, lane));
    if (sid == 0u) {
        sums[subgroup] = total;
    }
    workgroupBarrier();
    let row = row0 + lane;
    if (lane < ROWS && row < p.m) {
        var sum = 0.0;
        for (var s = 0u; s < subgroups; s++) {
            sum += sums[s][lane];
        }
        out[p.col0 + row] = sum + select(0.0, b[p.col0 + row], p.bias != 0u);
    }
}
