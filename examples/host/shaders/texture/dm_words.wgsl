// The (d, m) f16 pairs of the planar Q4_1 and Q5_1 layouts, one word a block.
//
// Q4_1 keeps them in groups, like its quants (gpu/interleave.rs): from texel `first`, two
// texels a group of 8 rows and block, row r's word r % 8 of the pair. An invocation's rows lie
// in one group, so its prep loads the pair once a block for them all (prep_group_dm) and
// group_dm(row) takes a row's pair from it (as texture/half_scales.wgsl's group_scale).
//
// Q5_1 keeps them row after row, 4 a texel from texel `first` (block b's in texel first + b /
// 4, word b % 4: block_dm). The last texel read is kept: a lane walking its row reads each
// once, not once a block.

var<private> group_dms: array<vec4<u32>, 2>;

fn prep_group_dm(first: u32, row: u32, j: u32, blocks: u32) {
    let t = first + 2u * ((row >> 3u) * blocks + j);
    group_dms[0] = texel(t);
    group_dms[1] = texel(t + 1u);
}

fn group_dm(row: u32) -> vec2<f32> {
    let w = select(group_dms[0], group_dms[1], (row & 4u) != 0u);
    return unpack2x16float(w[row & 3u]);
}

var<private> dms_at: u32 = 0xffffffffu;
var<private> dms: vec4<u32>;

fn block_dm(first: u32, b: u32) -> vec2<f32> {
    let t = first + b / 4u;
    if (t != dms_at) {
        dms = texel(t);
        dms_at = t;
    }
    return unpack2x16float(dms[b % 4u]);
}
