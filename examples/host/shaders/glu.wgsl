// glu.wgsl: LLaMA's SwiGLU after its gate and up ran as one matmul (their rows stacked, gate
// first): out [rows, width] = silu(gu[:, :width]) * gu[:, width:], gu [rows, 2 width]; silu as
// activation.wgsl's. f32, 4 outputs per invocation (CPU adapters pay per invocation).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/elementwise.rs):
//   0  uniform          p: GluParams         len (rows x width), width
//   1  storage, read    gu: array<f32>       [rows, 2 width]
//   2  storage, rw      out: array<f32>      [rows, width]
// Dispatch: ceil(len / 256) workgroups of 64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

struct GluParams {
    len: u32,
    width: u32,
    pad0: u32,
    pad1: u32,
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 4u;
    for (var e = 0u; e < 4u; e++) {
        let i = base + e;
        if (i < p.len) {
            // Output (r, j) = i reads gu's (r, j) and (r, width + j): i + r width and past it.
            let at = i + (i / p.width) * p.width;
            let g = gu[at];
            out[i] = g / (1.0 + exp(-g)) * gu[at + p.width];
        }
    }
}
