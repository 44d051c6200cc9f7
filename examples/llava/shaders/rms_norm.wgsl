// rms_norm.wgsl: LLaMA's RMSNorm of every row, out = x / sqrt(mean(x^2) + eps) * w, f32.
//
// Bindings (group 0, generated from the declaration in examples/llava/gpu/norm.rs):
//   0  uniform          p: NormParams        rows, dim, eps
//   1  storage, read    x: array<f32>        [rows, dim]
//   2  storage, read    w: array<f32>        [dim]
//   3  storage, rw      out: array<f32>      [rows, dim]
// Dispatch: one workgroup of 64 per row, n = rows on a 2-D grid (min(n, 65535),
//   ceil(n / 65535), 1); a tree reduction of the squares in 256 B of workgroup memory.

struct NormParams {
    rows: u32,
    dim: u32,
    eps: f32,
    pad0: u32,
}

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    // Workgroups past the end still take part in the barriers; they read and write nothing.
    let live = row < p.rows;
    let base = min(row, p.rows - 1u) * p.dim;
    var s = 0.0;
    for (var i = lid; i < p.dim; i += 64u) {
        let v = select(0.0, x[base + i], live);
        s += v * v;
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(partial[0] / f32(p.dim) + p.eps);
    if (!live) {
        return;
    }
    for (var i = lid; i < p.dim; i += 64u) {
        out[base + i] = x[base + i] * inv * w[i];
    }
}
