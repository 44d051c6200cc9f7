// texel(t): texel t of `wt`, an rgba32uint texture holding a weight matrix's words in order, 4
// a texel, TEXELS_PER_ROW texels a texture row (gpu/matrix.rs stages them so), and xdot, the
// per-token dot products of 4 weights with x (linear_texture.wgsl's uniform tile).

const TEXELS_PER_ROW: u32 = 4096u;

fn texel(t: u32) -> vec4<u32> {
    return textureLoad(wt, vec2<u32>(t % TEXELS_PER_ROW, t / TEXELS_PER_ROW), 0);
}

// Weights e .. e + 4 of a row (c = e / 4) times x's values e .. e + 4 in each of the tile's
// TOKENS rows: one component per row (the unused components stay 0).
fn xdot(w: vec4<f32>, c: u32) -> vec4<f32> {
    let k4 = p.k / 4u;
    var r = vec4<f32>(dot(w, x.v[c]), 0.0, 0.0, 0.0);
    if (TOKENS > 1u) {
        r.y = dot(w, x.v[k4 + c]);
    }
    if (TOKENS > 2u) {
        r.z = dot(w, x.v[2u * k4 + c]);
    }
    if (TOKENS > 3u) {
        r.w = dot(w, x.v[3u * k4 + c]);
    }
    return r;
}
