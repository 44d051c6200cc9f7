// activation.wgsl: x = act(x) in place, f32, 4 elements per invocation: ACT 0 quick_gelu
// (CLIP's x * sigmoid(1.702 x)), 1 gelu (erf form, the projector's), 2 silu (LLaMA's gate).
//
// Bindings (group 0, generated from the declaration in examples/llava/gpu/elementwise.rs):
//   0  uniform          p: Len               len
//   1  storage, rw      x: array<f32>        [len]
// Override: ACT (0 quick_gelu, 1 gelu, 2 silu).
// Dispatch: ceil(len / 256) workgroups of 64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

struct Len {
    len: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

override ACT: u32 = 0u;

// erf to about 1e-7 (Numerical Recipes' erfc Chebyshev fit; WGSL has no erf).
fn erf(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let y = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277)))))))));
    return select(y - 1.0, 1.0 - y, x >= 0.0);
}

fn act(v: f32) -> f32 {
    switch ACT {
        case 0u: { return v / (1.0 + exp(-1.702 * v)); }
        case 1u: { return 0.5 * v * (1.0 + erf(v * 0.70710678118654752)); }
        default: { return v / (1.0 + exp(-v)); }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = ((wg.x + wg.y * nwg.x) * 64u + lid) * 4u;
    for (var e = 0u; e < 4u; e++) {
        let i = base + e;
        if (i < p.len) {
            x[i] = act(x[i]);
        }
    }
}
