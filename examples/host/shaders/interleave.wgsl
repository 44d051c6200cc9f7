// interleave.wgsl: a staged weight chunk (its planes row after row, gpu/matrix.rs) into the
// texture layout the texture kernel reads (texture/texel.wgsl's row_texel): the main plane's
// rows in groups of 8, texel j of a group's rows side by side (rows past the chunk's last are
// zeros up to the group's end), then the rest (the scale planes) as it was, moved up by
// those padding rows.
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/interleave.rs):
//   0  uniform          p: InterleaveParams  rows, texels a row of the main plane, texels after it
//   1  storage, read    src: array<u32>      rows x per_row texels (4 words each), then tail texels
//   2  storage, rw      dst: array<u32>      ceil(rows / 8) x 8 x per_row texels, then the tail
// Dispatch: one texel of dst per invocation, workgroups of 64 on a 2-D grid.

struct InterleaveParams {
    rows: u32,
    per_row: u32,
    tail: u32,
    pad0: u32,
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
    } else if (i < plane + p.tail) {
        copy_texel(i - plane + p.rows * p.per_row, i);
    }
}
