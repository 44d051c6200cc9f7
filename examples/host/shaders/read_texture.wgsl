// read_texture.wgsl: the read-only bandwidth baseline through a texture, the texture kernel's
// counterpart of visattn's read_f32.wgsl (storage): each invocation sums its share of an
// rgba32uint texture's texels (TEXELS_PER_ROW a row, as weights are staged) and writes one
// partial sum, so the loads cannot be dropped.
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/bandwidth.rs):
//   0  uniform          p: ReadParams        texels to read, texels per workgroup
//   1  texture_2d<u32>  src
//   2  storage, rw      dst: array<u32>      partial sums, 64 per workgroup
// Dispatch: ceil(texels / per workgroup) workgroups of 64 on a 2-D grid.

struct ReadParams {
    texels: u32,
    per_workgroup: u32,
    pad0: u32,
    pad1: u32,
}

const TEXELS_PER_ROW: u32 = 4096u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let group = wg.x + wg.y * nwg.x;
    let begin = group * p.per_workgroup;
    if (begin >= p.texels) {
        return;
    }
    let end = min(begin + p.per_workgroup, p.texels);
    var sum = vec4<u32>(0u);
    for (var t = begin + lane; t < end; t += 64u) {
        sum += textureLoad(src, vec2<u32>(t % TEXELS_PER_ROW, t / TEXELS_PER_ROW), 0);
    }
    dst[group * 64u + lane] = sum.x ^ sum.y ^ sum.z ^ sum.w;
}
