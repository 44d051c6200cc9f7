// rope.wgsl: LLaMA's rotary embedding in place on q or k [heads, tokens, dim] (HF's
// rotate-half layout: pairs are (i, i + dim/2)); token t sits at position pos0 + t. The host
// computes the cos / sin table once (f64, rounded to f32), as HF's rotary cache does.
//
// Bindings (group 0, generated from the declaration in examples/llava/gpu/rope.rs):
//   0  uniform          p: RopeParams        heads, tokens, dim, pos0
//   1  storage, rw      x: array<f32>        [heads, tokens, dim]
//   2  storage, read    cos: array<f32>      [positions, dim / 2]
//   3  storage, read    sin: array<f32>      [positions, dim / 2]
// Dispatch: one invocation per rotated pair, n = ceil(heads x tokens x dim / 2 / 64)
//   workgroups of 64 on a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

struct RopeParams {
    heads: u32,
    tokens: u32,
    dim: u32,
    pos0: u32,
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let half = p.dim / 2u;
    let pair = (wg.x + wg.y * nwg.x) * 64u + lid;
    if (pair >= p.heads * p.tokens * half) {
        return;
    }
    let i = pair % half;
    let row = pair / half;
    let t = row % p.tokens;
    let at = row * p.dim + i;
    let c = cos[(p.pos0 + t) * half + i];
    let s = sin[(p.pos0 + t) * half + i];
    let a = x[at];
    let b = x[at + half];
    x[at] = a * c - b * s;
    x[at + half] = b * c + a * s;
}
