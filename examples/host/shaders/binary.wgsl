// binary.wgsl: x = x + y (OP 0: the residual add) or x = x * y (OP 1), in place, f32, 4
// elements per invocation (CPU adapters pay per invocation).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/elementwise.rs):
//   0  uniform          p: Len               len
//   1  storage, rw      x: array<f32>        [len]
//   2  storage, read    y: array<f32>        [len]
// Override: OP (0 add, 1 multiply).
// Dispatch: ceil(len / 256) workgroups of 64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

struct Len {
    len: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

override OP: u32 = 0u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 4u;
    for (var e = 0u; e < 4u; e++) {
        let i = base + e;
        if (i < p.len) {
            x[i] = select(x[i] * y[i], x[i] + y[i], OP == 0u);
        }
    }
}
