// The f16 scales of the planar texture layouts.
//
// Q4_0, Q8_0 and Q6_K keep them in groups, like their quants (gpu/interleave.rs): from texel
// `first`, one texel a group of 8 rows and block, row r's d in word (r % 8) / 2, half r % 2.
// An invocation's rows lie in one group, so their prep loads that texel once a block for them
// all (prep_group_scales) and group_scale(row) takes a row's d from it: no load and no branch
// a row (lavapipe ran Q4_0's decode 1.3x faster so than loading each row's scale).
//
// Q5_0 keeps them row after row, 8 a texel: block b's in texel first + b / 8, word (b / 2) % 4,
// half b % 2 (half_scale). The last scale texel read is kept: a lane walking its row reads each
// once, not once a block.

var<private> group_scales: vec4<u32>;

fn prep_group_scales(first: u32, row: u32, j: u32, blocks: u32) {
    group_scales = texel(first + (row >> 3u) * blocks + j);
}

fn group_scale(row: u32) -> f32 {
    return unpack2x16float(group_scales[(row & 7u) >> 1u] >> ((row & 1u) * 16u)).x;
}


var<private> scales_at: u32 = 0xffffffffu;
var<private> scales: vec4<u32>;

fn half_scale(first: u32, b: u32) -> f32 {
    let t = first + b / 8u;
    if (t != scales_at) {
        scales = texel(t);
        scales_at = t;
    }
    return unpack2x16float(scales[(b / 2u) % 4u] >> ((b & 1u) * 16u)).x;
}
