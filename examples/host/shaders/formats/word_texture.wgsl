// word(i): the matrix's u32 word i, from `wt`, an rgba32uint texture holding the words in
// order, 4 a texel, TEXELS_PER_ROW texels a texture row (gpu/matrix.rs stages them so). The
// last texel read is kept: a lane walking its row reads each texel once, not once a word
// (lavapipe charges a texel gather like a word gather, so this is 4x fewer for f32).

const TEXELS_PER_ROW: u32 = 4096u;

var<private> cached_at: u32 = 0xffffffffu;
var<private> cached: vec4<u32>;

fn word(i: u32) -> u32 {
    let t = i >> 2u;
    if (t != cached_at) {
        cached = textureLoad(wt, vec2<u32>(t % TEXELS_PER_ROW, t / TEXELS_PER_ROW), 0);
        cached_at = t;
    }
    return cached[i & 3u];
}
