// x_uniform.wgsl: x for linear_texture.wgsl, from its uniform tile: token t's values e .. e + 4
// at x.v[t * k / 4 + e / 4] (up to 4 tokens in 64 KiB). A uniform load every lane shares is
// one load where the adapter has scalar loads (GPUs); lavapipe gathers it lane by lane where
// the index varies in a loop (linear_shared.wgsl shares x through subgroups there).

// Each token's sum stays 4 partial sums (tile.wgsl's chained).
fn chained() -> bool {
    return false;
}

fn xfma_token(t: u32, w: vec4<f32>, c: u32) {
    acc[t] = fma(w, x.v[t * (p.k / 4u) + xb + c], acc[t]);
}

// Block j starts at x's vec4 j x BLOCK / 4 of each token.
fn at_block(j: u32, i: u32) {
    xb = j * (BLOCK / 4u);
}

// Weights e .. e + 4 of the block (c = e / 4) times x's values there, added to each of the
// tile's tokens' sums.
fn xfma(w: vec4<f32>, c: u32) {
    xfma_token(0u, w, c);
    if (TOKENS > 1u) { xfma_token(1u, w, c); }
    if (TOKENS > 2u) { xfma_token(2u, w, c); }
    if (TOKENS > 3u) { xfma_token(3u, w, c); }
}

fn sum_token(t: u32, c: u32) {
    let i = t * (p.k / 4u) + xb + c;
    x_sum[t] = ((x.v[i] + x.v[i + 1u]) + (x.v[i + 2u] + x.v[i + 3u])) + ((x.v[i + 4u] + x.v[i + 5u]) + (x.v[i + 6u] + x.v[i + 7u]));
}

// x_sum: each token's 32 values from the block's vec4 c, as 4 partial sums (tile.wgsl's
// block_end).
fn x_sums(c: u32) {
    sum_token(0u, c);
    if (TOKENS > 1u) { sum_token(1u, c); }
    if (TOKENS > 2u) { sum_token(2u, c); }
    if (TOKENS > 3u) { sum_token(3u, c); }
}
