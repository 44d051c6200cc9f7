// fma_peak.wgsl: the adapter's f32 FMA rate, the ceiling any matmul kernel runs under: each
// invocation runs 4 independent chains of vec4 FMAs in registers (no memory reads), 4 steps of
// each an iteration, and writes one value, so the chains cannot be dropped. 4 chains: 16 f32
// registers a lane, what a CPU adapter's 8-lane SIMD has (8 chains spill on lavapipe); 4 steps
// an iteration: the loop's own cost there is several FMAs' (1 step an iteration measured 2.3x
// under this on lavapipe).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/bandwidth.rs):
//   0  uniform          p: PeakParams        iterations (each 16 vec4 FMAs: 128 flops)
//   1  storage, rw      dst: array<f32>      one value per invocation
// Dispatch: workgroups of 64, n = invocations on a 2-D grid.

struct PeakParams {
    iterations: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * 64u + lane;
    let m = vec4<f32>(0.999999);
    let a = vec4<f32>(1e-7);
    var c0 = vec4<f32>(f32(i & 7u));
    var c1 = c0 + 1.0;
    var c2 = c0 + 2.0;
    var c3 = c0 + 3.0;
    for (var n = 0u; n < p.iterations; n++) {
        c0 = fma(c0, m, a);
        c1 = fma(c1, m, a);
        c2 = fma(c2, m, a);
        c3 = fma(c3, m, a);
        c0 = fma(c0, m, a);
        c1 = fma(c1, m, a);
        c2 = fma(c2, m, a);
        c3 = fma(c3, m, a);
        c0 = fma(c0, m, a);
        c1 = fma(c1, m, a);
        c2 = fma(c2, m, a);
        c3 = fma(c3, m, a);
        c0 = fma(c0, m, a);
        c1 = fma(c1, m, a);
        c2 = fma(c2, m, a);
        c3 = fma(c3, m, a);
    }
    let s = c0 + c1 + c2 + c3;
    dst[i] = s.x + s.y + s.z + s.w;
}
