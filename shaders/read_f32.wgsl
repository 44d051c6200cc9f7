// read_f32.wgsl: the read-only bandwidth baseline of the benchmarks. Each invocation sums its
// share of src with copy_f32.wgsl's loop (same load width, same work per invocation) and writes
// one partial sum, so the loads cannot be dropped and the writes are 1 / (elements per
// invocation) of the reads. Kernels that mostly read (sink scoring, rows that seldom change)
// are compared with this, not only with a copy that writes as much as it reads.
//
// Bindings (group 0):
//   0  uniform          n: CopyParams       x = elements to read, y = elements per workgroup
//   1  storage, read    src: array<f32>
//   2  storage, rw      dst: array<f32>     partial sums, 64 per workgroup: dst[w * 64 + lane]
// Dispatch: ceil(x / y) workgroups of 64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = wg.x + wg.y * nwg.x;
    let begin = group * params.per_workgroup;
    if begin >= params.len {
        return; // the grid's padding workgroups
    }
    let end = min(begin + params.per_workgroup, params.len);
    var sum = 0.0;
    for (var i = begin + lid; i < end; i += WG) {
        sum += src[i];
    }
    dst[group * WG + lid] = sum;
}
