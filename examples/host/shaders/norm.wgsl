// norm.wgsl: the row norms of both towers, f32, one workgroup per row:
//   LAYER false: LLaMA's RMSNorm,  out = x / sqrt(mean(x^2) + eps) * w
//   LAYER true:  CLIP's LayerNorm, out = (x - mean) / sqrt(var + eps) * w + b
// With RESIDUAL the residual add before it in the same pass: x += out, then out = norm(x)
// (a block's output projection wrote out; the next block reads the norm from out and the
// residual stream from x), one pass over the rows where the add and the norm took two.
//
// Bindings (group 0, generated from the declarations in examples/host/src/gpu/norm.rs):
//   0  uniform          p: NormParams        rows, dim, eps
//   1  storage, rw      x: array<f32>        [rows, dim] (written only with RESIDUAL)
//   2  storage, read    w: array<f32>        [dim]
//   3  storage, read    b: array<f32>        [dim] (RMSNorm: any buffer, not read)
//   4  storage, rw      out: array<f32>      [rows, dim] (with RESIDUAL: the addend in)
// Overrides: LAYER (false RMSNorm, true LayerNorm), RESIDUAL (the add first).
// Dispatch: one workgroup of 64 per row, n = rows on a 2-D grid (min(n, 65535),
//   ceil(n / 65535), 1); tree reductions in 256 B of workgroup memory.

struct NormParams {
    rows: u32,
    dim: u32,
    eps: f32,
    pad0: u32,
}

override LAYER: bool = false;
override RESIDUAL: bool = false;

var<workgroup> partial: array<f32, 64>;

fn row_sum(lid: u32, v: f32) -> f32 {
    workgroupBarrier();
    partial[lid] = v;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    return partial[0];
}

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
    // Each invocation adds the values it reads below (the same indices): no barrier needed.
    if (RESIDUAL && live) {
        for (var i = lid; i < p.dim; i += 64u) {
            x[base + i] += out[base + i];
        }
    }
    var mean = 0.0;
    if (LAYER) {
        var s = 0.0;
        for (var i = lid; i < p.dim; i += 64u) {
            s += select(0.0, x[base + i], live);
        }
        mean = row_sum(lid, s) / f32(p.dim);
    }
    var s = 0.0;
    for (var i = lid; i < p.dim; i += 64u) {
        let v = select(0.0, x[base + i], live) - mean;
        s += v * v;
    }
    let inv = inverseSqrt(row_sum(lid, s) / f32(p.dim) + p.eps);
    if (!live) {
        return;
    }
    for (var i = lid; i < p.dim; i += 64u) {
        let v = (x[base + i] - mean) * inv * w[i];
        out[base + i] = select(v, v + b[i], LAYER);
    }
}
