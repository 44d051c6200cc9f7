// Q4_K two sub-blocks (64 values) at a time, for linear_shared.wgsl, whose x windows span whole
// blocks (texture/q4_k.wgsl walks super-blocks of 256: 8 windows a block made lavapipe take
// minutes to compile the shared kernel). The texture as q4_k.wgsl reads it (144-byte
// super-blocks of 9 texels, rows grouped by 8): block b is sub-blocks 2 i and 2 i + 1 of
// super-block b / 4 (i = b % 4), whose 64 nibbles are texels 1 + 2 i and 2 + 2 i, the low
// halves sub-block 2 i's and the high 2 i + 1's; their scales and mins from the super-block's
// texel 0 (llama.cpp's get_scale_min_k4). 3 texels a 64 values: a sub-block at a time read 3
// a 32 (each quant texel twice, the scales' once a sub-block): LLaMA-7B's prefill matmuls 51.5
// -> 59.5 GFLOPS, its decode through this kernel 0.99 -> 0.90 ms on the autotune's probe.

const BLOCK: u32 = 64u;

// Nothing to load once a block for the invocation's rows (see texture/q4_0.wgsl's prep).
fn prep(row: u32, j: u32) {}

fn dot_block(row: u32, b: u32) {
    let i = b % 4u;
    let t0 = row_texel(row, 9u * (b / 4u), 9u * (p.k / 256u));
    let h = texel(t0);
    let lo = k4_sub_scale(h, 2u * i);
    let hi = k4_sub_scale(h, 2u * i + 1u);
    let q0 = texel(next(t0, 1u + 2u * i));
    let q1 = texel(next(t0, 2u + 2u * i));
    xfma(k4_values(q0.x, lo.x, lo.y), 0u);
    xfma(k4_values(q0.y, lo.x, lo.y), 1u);
    xfma(k4_values(q0.z, lo.x, lo.y), 2u);
    xfma(k4_values(q0.w, lo.x, lo.y), 3u);
    xfma(k4_values(q1.x, lo.x, lo.y), 4u);
    xfma(k4_values(q1.y, lo.x, lo.y), 5u);
    xfma(k4_values(q1.z, lo.x, lo.y), 6u);
    xfma(k4_values(q1.w, lo.x, lo.y), 7u);
    xfma(k4_values(q0.x >> 4u, hi.x, hi.y), 8u);
    xfma(k4_values(q0.y >> 4u, hi.x, hi.y), 9u);
    xfma(k4_values(q0.z >> 4u, hi.x, hi.y), 10u);
    xfma(k4_values(q0.w >> 4u, hi.x, hi.y), 11u);
    xfma(k4_values(q1.x >> 4u, hi.x, hi.y), 12u);
    xfma(k4_values(q1.y >> 4u, hi.x, hi.y), 13u);
    xfma(k4_values(q1.z >> 4u, hi.x, hi.y), 14u);
    xfma(k4_values(q1.w >> 4u, hi.x, hi.y), 15u);
}
