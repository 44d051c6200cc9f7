// sink_score.wgsl: phi and the sink flag of every token of one layer (var-spec.md section 1).
//
//   phi(x) = max_{d in D_sink} | x[d] / sqrt(mean_k x[k]^2 + 1e-6) |,   sink <=> phi > tau
//
// Bindings (group 0):
//   0  uniform          cfg: Config      per-layer-role slot, dynamic offset
//   1  uniform          rng: Range       which tokens the bound hidden range holds
//   2  storage, read    hidden: array<f32>      [rng.tokens, D] (a range of [B x T, D])
//   3  storage, read    sink_dims: array<u32>   [cfg.n_sink_dims]
//   4  storage, read    visual: array<u32>      [B x T], bit 0 = image token, bit 2 = the key's
//                                               tile of 16 (from its batch row's start) holds one
//   5  storage, rw      phi: array<f32>         [B x T]
//   6  storage, rw      classes: array<u32>     [B x T], bit 0 = image token, bit 1 = sink,
//                                               bit 2 = visual's bit 2
//   7  storage, read    seqs: array<Seq>        [B]: left padding (tokens before key_offset
//                                               are padding: phi 0, class 0, not read)
// Override: LANES (1, 2, 4, ..., 64) invocations per token, 64 / LANES tokens per workgroup
//   (as in var_rows.wgsl: 64 on GPUs, few on CPU-emulated adapters).
// Dispatch: workgroups of 64, n = ceil(rng.tokens / (64 / LANES)), on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). Workgroup memory: 256 B.
// Role 0 (layer does not detect) writes phi = 0 and no sink bit without reading hidden.
// classes[] is what the row kernel reads: one u32 per key instead of two masks.

override LANES: u32 = 64u;
// The image bits of visual[] (0 and 2) that classes[] carries on.
const IMAGE_BITS: u32 = CLASS_IMAGE | CLASS_IMAGE_TILE;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lane = lid % LANES;
    let local_token = (wg.x + wg.y * nwg.x) * (WG / LANES) + lid / LANES;
    // Tokens past the end, and padding, still take part in the barriers; they load nothing.
    let in_range = local_token < rng.tokens;
    let token = rng.token_offset + min(local_token, rng.tokens - 1u);
    let padding = token % cfg.tokens < seqs[token / cfg.tokens].key_offset;
    let valid = in_range && !padding;
    if (in_range && padding && lane == 0u) {
        phi[token] = 0.0;
        classes[token] = 0u;
    }
    if (cfg.role == ROLE_OFF) {
        if (valid && lane == 0u) {
            phi[token] = 0.0;
            classes[token] = visual[token] & IMAGE_BITS;
        }
        return;
    }

    // Each invocation sums D / LANES squares; coalesced across a token's lanes.
    let base = local_token * cfg.hidden;
    var sum_sq = 0.0;
    let end = select(0u, cfg.hidden, valid);
    for (var k = lane; k < end; k += LANES) {
        let x = hidden[base + k];
        sum_sq += x * x;
    }
    partial[lid] = sum_sq;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }

    if (valid && lane == 0u) {
        let rms = sqrt(partial[lid] / f32(cfg.hidden) + 1e-6);
        var score = 0.0;
        for (var i = 0u; i < cfg.n_sink_dims; i++) {
            score = max(score, abs(hidden[base + sink_dims[i]] / rms));
        }
        phi[token] = score;
        classes[token] = (visual[token] & IMAGE_BITS) | select(0u, CLASS_SINK, score > cfg.tau);
    }
}
