// read_texture.wgsl: the read-only bandwidth baseline through a texture, the texture kernel's
// counterpart of visattn's read_f32.wgsl (storage): each invocation sums its share of an
// rgba32uint texture's texels (TEXELS_PER_ROW a row, as weights are staged) and writes one
// partial sum, so the loads cannot be dropped.
//
// With FMAS > 0 it is the floor of a matrix-vector product through a texture: the same read,
// each texel followed by the FMAs its weights need and nothing else. A product must load every
// texel of W and multiply each weight it holds by an x value: this does exactly that much, with
// x held in registers (no loads of x), the texel's words taken as the weights without decoding
// them (a bit mask puts each word's value in [1, 2): no denormals, no NaN), and 8 independent
// sums. FMAS is the weights a texel holds (8 for f16, 15 for Q8_0's 34-byte blocks of 32, 28
// for Q4_0's 18-byte blocks and Q4_K's 144-byte super-blocks of 256: rounded down, so the probe
// counts at most what a kernel must do), or that times the tokens of a prefill tile. No kernel
// that reads W through this texture on the adapter runs faster than this one (bench: the
// decode's and the prefill's floors).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/bandwidth.rs):
//   0  uniform          p: ReadParams        texels to read, texels per workgroup, the lanes'
//                                            order (interleaved or streams)
//   1  texture_2d<u32>  src
//   2  storage, rw      dst: array<u32>      partial sums (the floor's f32 bits), 64 per workgroup
// Dispatch: ceil(texels / per workgroup) workgroups of 64 on a 2-D grid.

struct ReadParams {
    texels: u32,
    per_workgroup: u32,
    streams: u32,
    pad1: u32,
}

const TEXELS_PER_ROW: u32 = 4096u;

// FMAs per texel: 0 for the plain read; else FMAS / 4 chains of 4 (a dot product's shape),
// FMAS % 4 more.
override FMAS: u32 = 0u;

// 4 FMAs into one sum: w . x + a.
fn chain(w: vec4<f32>, x: vec4<f32>, a: f32) -> f32 {
    return fma(w.x, x.x, fma(w.y, x.y, fma(w.z, x.z, fma(w.w, x.w, a))));
}

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
    // x: 8 vectors a lane holds throughout (what a kernel would load).
    let f = f32(lane) * 1e-3;
    let x0 = vec4<f32>(f, f + 0.125, f + 0.25, f + 0.375);
    let x1 = x0 * 0.5;
    let x2 = x0 * 0.25;
    let x3 = x0 * 0.125;
    let x4 = x0 - 0.5;
    let x5 = x1 - 0.5;
    let x6 = x2 - 0.5;
    let x7 = x3 - 0.5;
    var a = array<f32, 8>();
    let chains = FMAS / 4u;
    // The texels a lane reads. Interleaved (p.streams 0): lanes side by side, 64 texels a
    // step, as a GPU's lanes coalesce. Streams (1): each lane its own run of the workgroup's
    // share, one texel after another, as the texture kernels read their rows (grouped by 8:
    // each lane walks its own texels); a CPU adapter runs a workgroup's subgroups one after
    // another, so interleaved lanes read memory at a stride there.
    var first = begin + lane;
    var last = end;
    var step = 64u;
    if (p.streams != 0u) {
        let span = (end - begin + 63u) / 64u;
        first = min(begin + lane * span, end);
        last = min(first + span, end);
        step = 1u;
    }
    for (var t = first; t < last; t += step) {
        let q = textureLoad(src, vec2<u32>(t % TEXELS_PER_ROW, t / TEXELS_PER_ROW), 0);
        if (FMAS == 0u) {
            sum += q;
            continue;
        }
        let w = bitcast<vec4<f32>>((q & vec4<u32>(0x007fffffu)) | vec4<u32>(0x3f800000u));
        // Rounds of 8 chains, one into each sum, then the rest of the chains, then single FMAs.
        for (var r = 0u; r < chains / 8u; r++) {
            a[0] = chain(w, x0, a[0]);
            a[1] = chain(w, x1, a[1]);
            a[2] = chain(w, x2, a[2]);
            a[3] = chain(w, x3, a[3]);
            a[4] = chain(w, x4, a[4]);
            a[5] = chain(w, x5, a[5]);
            a[6] = chain(w, x6, a[6]);
            a[7] = chain(w, x7, a[7]);
        }
        let rest = chains % 8u;
        if (rest > 0u) { a[0] = chain(w, x0, a[0]); }
        if (rest > 1u) { a[1] = chain(w, x1, a[1]); }
        if (rest > 2u) { a[2] = chain(w, x2, a[2]); }
        if (rest > 3u) { a[3] = chain(w, x3, a[3]); }
        if (rest > 4u) { a[4] = chain(w, x4, a[4]); }
        if (rest > 5u) { a[5] = chain(w, x5, a[5]); }
        if (rest > 6u) { a[6] = chain(w, x6, a[6]); }
        let single = FMAS % 4u;
        if (single > 0u) { a[7] = fma(w.x, x7.x, a[7]); }
        if (single > 1u) { a[7] = fma(w.y, x7.y, a[7]); }
        if (single > 2u) { a[7] = fma(w.z, x7.z, a[7]); }
    }
    if (FMAS == 0u) {
        dst[group * 64u + lane] = sum.x ^ sum.y ^ sum.z ^ sum.w;
    } else {
        dst[group * 64u + lane] = bitcast<u32>(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));
    }
}
