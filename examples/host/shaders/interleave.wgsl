// interleave.wgsl: a staged weight chunk (its planes row after row, gpu/matrix.rs) into the
// texture layout the texture kernel reads (texture/texel.wgsl's row_texel): the main plane's
// rows in groups of 8, texel j of a group's rows side by side (rows past the chunk's last are
// zeros up to the group's end), then the rest: as it was (moved up by those padding rows), or,
// where p.scales is the blocks a row, their scales in groups too: Q4_0, Q8_0, Q6_K's rest is one
// f16 d a block (p.words 0): one texel a group of 8 rows and block, row r's d in word (r % 8) /
// 2, half r % 2 (texture/half_scales.wgsl's group_scale); Q4_1's is one (d, m) word a block
// (p.words 1): two texels a group and block, row r's word r % 8 of the pair
// (texture/dm_words.wgsl's group_dm).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/interleave.rs):
//   0  uniform          p: InterleaveParams  rows, texels a row of the main plane, texels after it,
//                                            blocks a row (0: the rest copied as it is), words
//                                            a block's scale (0: an f16 half, 1: a word)
//   1  storage, read    src: array<u32>      rows x per_row texels (4 words each), then tail texels
//   2  storage, rw      dst: array<u32>      ceil(rows / 8) x 8 x per_row texels, then the tail
//                                            (or the grouped scales: ceil(rows / 8) x scales
//                                            texels of halves, twice as many of words)
// Dispatch: one texel of dst per invocation, workgroups of 64 on a 2-D grid.

struct InterleaveParams {
    rows: u32,
    per_row: u32,
    tail: u32,
    scales: u32,
    words: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// The f16 d of block j of row `row` in the row-after-row scale plane from word `first` of src
// (0 past the chunk's rows).
fn half_d(first: u32, row: u32, j: u32) -> u32 {
    if (row >= p.rows) {
        return 0u;
    }
    let h = row * p.scales + j;
    return (src[first + h / 2u] >> ((h & 1u) * 16u)) & 0xffffu;
}

// The scale word of block j of row `row` in the row-after-row plane from word `first` (0 past
// the chunk's rows).
fn word_d(first: u32, row: u32, j: u32) -> u32 {
    if (row >= p.rows) {
        return 0u;
    }
    return src[first + row * p.scales + j];
}

fn copy_texel(s: u32, d: u32) {
    for (var c = 0u; c < 4u; c++) {
        dst[4u * d + c] = src[4u * s + c];
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * 64u + lane;
    let plane = ((p.rows + 7u) / 8u) * 8u * p.per_row;
    if (i < plane) {
        let group = i / (8u * p.per_row);
        let j = (i / 8u) % p.per_row;
        let row = group * 8u + i % 8u;
        if (row < p.rows) {
            copy_texel(row * p.per_row + j, i);
        } else {
            for (var c = 0u; c < 4u; c++) {
                dst[4u * i + c] = 0u;
            }
        }
    } else if (p.scales > 0u) {
        // Texel (group, j) of the grouped scales (texel h of the pair where words).
        let k = (i - plane) >> p.words;
        let h = (i - plane) & p.words;
        if (k < ((p.rows + 7u) / 8u) * p.scales) {
            let first = 4u * p.rows * p.per_row;
            let row = (k / p.scales) * 8u;
            let j = k % p.scales;
            for (var w = 0u; w < 4u; w++) {
                if (p.words == 0u) {
                    dst[4u * i + w] = half_d(first, row + 2u * w, j) | (half_d(first, row + 2u * w + 1u, j) << 16u);
                } else {
                    dst[4u * i + w] = word_d(first, row + 4u * h + w, j);
                }
            }
        }
    } else if (i < plane + p.tail) {
        copy_texel(i - plane + p.rows * p.per_row, i);
    }
}
