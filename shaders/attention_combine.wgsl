// attention_combine.wgsl: merges attention_split.wgsl's blocks of one (head, row), rescaling
// each by exp(m_block - m), then applies VAR's selection and redistribution once
// (var-spec.md section 5) and writes the output row and its selected flag.
//
// Bindings (group 0):
//   0  uniform          cfg: Config      VarState's per-layer-role slot, dynamic offset
//   1  uniform          att: SplitParams (as attention_split.wgsl)
//   2  storage, read    partials: array<f32>   [H, Tq, blocks, 8 + 3 D]
//   3  storage, read    classes: array<u32>    [capacity] (the row's own class)
//   4  storage, rw      o: array<f32>          [H, Tq, D]
//   5  storage, rw      selected: array<u32>   [H, Tq]
// Override: D (head_dim, <= 128).
// Dispatch: one workgroup of 64 per (head, row): n = H x Tq on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). No workgroup memory: each invocation merges the
//   scalars itself (blocks are few) and its own dims.

override D: u32 = 128u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row_index = wg.x + wg.y * nwg.x;
    if (row_index >= att.attn.heads * att.attn.queries) {
        return;
    }
    let row = row_index % att.attn.queries;
    let pos = att.attn.keys - att.attn.queries + row;
    let stride_p = 8u + 3u * D;
    let base = row_index * att.blocks * stride_p;

    var m = -1e30;
    for (var b = 0u; b < att.blocks; b++) {
        m = max(m, partials[base + b * stride_p]);
    }
    var l = 0.0;
    var l_vis = 0.0;
    var l_vissink = 0.0;
    var l_vns = 0.0;
    var l_sink = 0.0;
    var seen = 0.0;
    for (var b = 0u; b < att.blocks; b++) {
        let at = base + b * stride_p;
        let w = exp(partials[at] - m);
        l += partials[at + 1u] * w;
        l_vis += partials[at + 2u] * w;
        l_vissink += partials[at + 3u] * w;
        l_vns += partials[at + 4u] * w;
        l_sink += partials[at + 5u] * w;
        seen = max(seen, partials[at + 6u]);
    }

    var is_selected = false;
    var gain_sink = 1.0;
    var gain_vns = 1.0;
    if (cfg.role != ROLE_OFF) {
        let ratio = l_vissink / (l_vis + cfg.vis_eps * l);
        is_selected = seen > 0.0 && l_vis / l >= cfg.summ && ratio <= cfg.rho;
        let may_change = pos >= cfg.first_image_end && (classes[pos] & CLASS_IMAGE) == 0u;
        if (is_selected && may_change && cfg.role == ROLE_REDISTRIBUTE && l_vns > GUARD * l) {
            gain_sink = cfg.keep;
            gain_vns = 1.0 + cfg.p * l_sink / l_vns;
        }
    }
    if (lid == 0u) {
        selected[row_index] = select(0u, 1u, is_selected);
    }
    let inv = 1.0 / l;
    for (var t = lid; t < D; t += WG) {
        var acc = 0.0;
        for (var b = 0u; b < att.blocks; b++) {
            let at = base + b * stride_p + 8u;
            let w = exp(partials[base + b * stride_p] - m);
            acc += w * (partials[at + t] + gain_sink * partials[at + D + t] + gain_vns * partials[at + 2u * D + t]);
        }
        o[row_index * D + t] = acc * inv;
    }
}
