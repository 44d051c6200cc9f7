// word(i): the matrix's u32 word i, from `wt` (texture/texel.wgsl), for the formats the
// texture kernel reads through their load8 (texture/generic.wgsl). The
// last texel read is kept: a lane walking its row reads each texel once, not once a word
// (lavapipe charges a texel gather like a word gather, so this is 4x fewer for f32).

var<private> cached_at: u32 = 0xffffffffu;
var<private> cached: vec4<u32>;

fn word(i: u32) -> u32 {
    let t = i >> 2u;
    if (t != cached_at) {
        cached = texel(t);
        cached_at = t;
    }
    return cached[i & 3u];
}
