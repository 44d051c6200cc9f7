// linear_texture.wgsl: out = x W^T + b for up to 4 rows of x (a tile of tokens), W kept in an
// rgba32uint texture (formats/word_texture.wgsl) and x read from a uniform buffer: the layout
// for adapters whose storage loads cost per lane (CPU adapters: lavapipe gathers a texel about
// 10x faster than storage words, and a uniform load every lane shares is one load). x [n, k]
// (this dispatch's tokens t0 .. t0 + p.n), W [m, k], b [m], out [*, ldo] rows t0.. at columns
// col0 .. col0 + m, f32 accumulation. W's words are decoded by the declaration's variant
// (load8: f32, f16 pairs, or a GGML block format).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/linear.rs):
//   0  uniform          p: LinearParams      n (<= 4), m, k (a multiple of 8), bias, ldo, col0,
//                                            t0, the tile's first token
//   1  uniform          x: XTile             64 KiB from token t0 on: x[t * k + e] (n * k <= 16384)
//   2  texture_2d<u32>  wt                   W's words (a row chunk of it)
//   3  storage, read    b: array<f32>        [col0 + m] (any 1-element buffer when p.bias is 0)
//   4  storage, rw      out: array<f32>      [(t0 + n) * ldo]
// Dispatch: workgroups of 64, one row of W per invocation, n = m on a 2-D grid
//   (min(ceil(m / 64), 65535), ...). No workgroup memory, no barriers: each invocation walks
//   its row in runs of 8 (load8), each run multiplied with the tile's n tokens.

struct LinearParams {
    n: u32,
    m: u32,
    k: u32,
    bias: u32,
    ldo: u32,
    col0: u32,
    t0: u32,
    pad1: u32,
}

struct XTile {
    v: array<vec4<f32>, 4096>,
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row = (wg.x + wg.y * nwg.x) * 64u + lane;
    // Rows past the end walk the last row (in bounds) and write nothing.
    let base = min(row, p.m - 1u) * p.k;
    let k4 = p.k / 4u;
    var acc = vec4<f32>(0.0);
    for (var s = 0u; s < p.k; s += 8u) {
        let v = load8(base + s);
        let lo = vec4<f32>(v[0], v[1], v[2], v[3]);
        let hi = vec4<f32>(v[4], v[5], v[6], v[7]);
        let c = s / 4u;
        acc[0] += dot(lo, x.v[c]) + dot(hi, x.v[c + 1u]);
        if (p.n > 1u) {
            acc[1] += dot(lo, x.v[k4 + c]) + dot(hi, x.v[k4 + c + 1u]);
        }
        if (p.n > 2u) {
            acc[2] += dot(lo, x.v[2u * k4 + c]) + dot(hi, x.v[2u * k4 + c + 1u]);
        }
        if (p.n > 3u) {
            acc[3] += dot(lo, x.v[3u * k4 + c]) + dot(hi, x.v[3u * k4 + c + 1u]);
        }
    }
    if (row >= p.m) {
        return;
    }
    let bias = select(0.0, b[p.col0 + row], p.bias != 0u);
    for (var t = 0u; t < p.n; t++) {
        out[(p.t0 + t) * p.ldo + p.col0 + row] = acc[t] + bias;
    }
}
