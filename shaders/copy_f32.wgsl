// copy_f32.wgsl: the bandwidth baseline of the benchmarks: dst = src, with the same load width
// (f32) and the same work per invocation (coalesced strided loop) as the VAR kernels.
//
// Bindings (group 0):
//   0  uniform          n: CopyParams       x = elements to copy, y = elements per workgroup
//   1  storage, read    src: array<f32>
//   2  storage, rw      dst: array<f32>
// Dispatch: ceil(x / y) workgroups of 64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let begin = (wg.x + wg.y * nwg.x) * params.per_workgroup;
    let end = min(begin + params.per_workgroup, params.len);
    for (var i = begin + lid; i < end; i += WG) {
        dst[i] = src[i];
    }
}
