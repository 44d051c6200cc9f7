// dim_max.wgsl: for sink-dimension discovery, the largest phi_d(x_t) = |x_t[d]| / RMS(x_t)
// over all tokens, per dimension d, of one layer's hidden states (var-spec.md section 1 without
// a fixed D_sink).
//
// Bindings (group 0):
//   0  uniform          params: DimParams      x = tokens T, y = hidden size D
//   1  storage, read    hidden: array<f32>     [T, D]
//   2  storage, rw      best: array<atomic<u32>>   [D], bit pattern of max phi (>= 0, so the
//                                              u32 order is the float order); zero it first
// Dispatch: one workgroup of 64 per token on a 2-D grid (min(T, 65535), ceil(T / 65535), 1).
//   Workgroup memory: 256 B.
// Scaling: the row is divided by the power of two s at or below its max |x| (rows below 2: s = 1)
//   before squaring, so values past ~1.8e19 do not overflow the sum (which gave phi 0 in every
//   dim); powers of two scale exactly, so ordinary rows give the unscaled phi.

struct DimParams {
    tokens: u32,
    hidden: u32,
    pad0: u32,
    pad1: u32,
}

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let token = wg.x + wg.y * nwg.x;
    if (token >= params.tokens) {
        return;
    }
    let base = token * params.hidden;
    var m = 0.0;
    for (var k = lid; k < params.hidden; k += WG) {
        m = max(m, abs(hidden[base + k]));
    }
    partial[lid] = m;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] = max(partial[lid], partial[lid + stride]);
        }
        workgroupBarrier();
    }
    // 2^-k putting max / 2^k in [1, 2), k in [0, 126] (a normal float), as sink_score.wgsl.
    let k2 = clamp(i32((bitcast<u32>(partial[0]) >> 23u) & 0xffu) - 127, 0, 126);
    let s = bitcast<f32>(u32(127 - k2) << 23u);
    workgroupBarrier();
    var sum_sq = 0.0;
    for (var k = lid; k < params.hidden; k += WG) {
        let x = hidden[base + k] * s;
        sum_sq += x * x;
    }
    partial[lid] = sum_sq;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let rms = sqrt(partial[0] / f32(params.hidden) + 1e-6 * s * s);
    for (var k = lid; k < params.hidden; k += WG) {
        atomicMax(&best[k], bitcast<u32>(abs(hidden[base + k] * s) / rms));
    }
}
