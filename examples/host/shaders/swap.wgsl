// swap.wgsl: out [b, a, c] = x [a, b, c], f32: the two first axes swapped. Linear layers give
// tokens first, [T, H, d]; attention wants heads first, [H, T, d], and gives it back that way.
//
// Bindings (group 0, generated from the declaration in examples/llava/gpu/layout.rs):
//   0  uniform          p: SwapParams        a, b, c
//   1  storage, read    x: array<f32>        [a, b, c]
//   2  storage, rw      out: array<f32>      [b, a, c]
// Dispatch: 4 consecutive outputs per invocation (CPU adapters pay per invocation),
//   n = ceil(a x b x c / 256) workgroups of 64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

struct SwapParams {
    a: u32,
    b: u32,
    c: u32,
    pad0: u32,
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 4u;
    let len = p.a * p.b * p.c;
    for (var e = 0u; e < 4u; e++) {
        let o = base + e;
        if (o < len) {
            let k = o % p.c;
            let j = (o / p.c) % p.a;
            let i = o / (p.c * p.a);
            out[o] = x[(j * p.b + i) * p.c + k];
        }
    }
}
