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
// Overrides: LANES (1, 2, 4, ..., 64) invocations per token, 64 / LANES tokens per workgroup
//   (as in var_rows.wgsl: 64 on GPUs, few on CPU-emulated adapters); EARLY (below): stop
//   reading a row once it cannot be a sink (checkpoints after 64, 256, 1024, ... values).
// Dispatch: workgroups of 64, n = ceil(rng.tokens / (64 / LANES)), on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). Workgroup memory: 256 B.
// Role 0 (layer does not detect) writes phi = 0 and no sink bit without reading hidden.
// Overflow: a sum of squares past f32's range (a value above ~1.8e19, or D values near it) is
//   recomputed from the row divided by a power of two near its max |x| (scaled_phi): exact
//   scaling, so ordinary rows keep the unscaled sum and its bits, and huge rows get their phi
//   instead of 0 (x / sqrt(inf)). Tiny rows need no scaling: squares that underflow are far
//   below the 1e-6 they are added to.
// classes[] is what the row kernel reads: one u32 per key instead of two masks.

override LANES: u32 = 64u;
// EARLY (Phi::SinksOnly): a token stops reading its row at a checkpoint once the part already
// read proves phi <= tau (its sum of squares can only grow), and gets phi = PHI_NOT_SCORED.
// Sinks, and tokens within EARLY_MARGIN of tau, read the whole row and get the phi and class
// the full kernel gives, bit for bit (same loads, same order, same final expression).
override EARLY: bool = false;
// Values per token read before the first checkpoint; each later one reads 4x as many.
const FIRST_CHECK: u32 = 64u;
// Relative margin on the test: the checkpoint's lane sums are combined as the final sum's
// are, but sqrt and division need not round monotonically on every adapter.
const EARLY_MARGIN: f32 = 1e-4;
// phi of a token ruled out early (Rust PHI_NOT_SCORED): not a score, phi <= tau.
const PHI_NOT_SCORED: f32 = -1.0;
// The largest finite f32: a sum of squares above it overflowed.
const F32_MAX: f32 = 0x1.fffffep+127f;
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

    let base = local_token * cfg.hidden;
    // A sink needs top > tau sqrt(sum_sq / D + 1e-6): the early test's left side (not squared:
    // tau and top squared underflow for tiny tau).
    var top = 0.0;
    if (EARLY && valid) {
        for (var i = 0u; i < cfg.n_sink_dims; i++) {
            top = max(top, abs(hidden[base + sink_dims[i]]));
        }
    }
    // Each invocation sums D / LANES squares, coalesced across a token's lanes, in the same
    // order with or without checkpoints.
    var reading = valid;
    var sum_sq = 0.0;
    var k = lane;
    var stop = select(cfg.hidden, FIRST_CHECK, EARLY);
    loop {
        let end = select(0u, min(stop, cfg.hidden), reading);
        for (; k < end; k += LANES) {
            let x = hidden[base + k];
            sum_sq += x * x;
        }
        if (stop >= cfg.hidden) {
            break;
        }
        let part = token_sum(lid, lane, sum_sq);
        // An overflowed part proves nothing (the row's max may be a sink dim): read on.
        if (part <= F32_MAX && top <= cfg.tau * sqrt(part / f32(cfg.hidden) + 1e-6) * (1.0 - EARLY_MARGIN)) {
            reading = false;
        }
        stop = select(stop * 4u, cfg.hidden, stop >= cfg.hidden / 4u);
    }
    let total = token_sum(lid, lane, sum_sq);

    if (valid && lane == 0u) {
        if (!reading) {
            phi[token] = PHI_NOT_SCORED;
            classes[token] = visual[token] & IMAGE_BITS;
            return;
        }
        var score = 0.0;
        if (total > F32_MAX) {
            score = scaled_phi(base);
        } else {
            let rms = sqrt(total / f32(cfg.hidden) + 1e-6);
            for (var i = 0u; i < cfg.n_sink_dims; i++) {
                score = max(score, abs(hidden[base + sink_dims[i]] / rms));
            }
        }
        phi[token] = score;
        classes[token] = (visual[token] & IMAGE_BITS) | select(0u, CLASS_SINK, score > cfg.tau);
    }
}

// The sum of `value` over a token's LANES lanes (a tree in workgroup memory), in every lane.
// Called by the whole workgroup.
fn token_sum(lid: u32, lane: u32, value: f32) -> f32 {
    if (LANES == 1u) {
        return value;
    }
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[lid - lane];
    workgroupBarrier();
    return total;
}

// 2^-k for the k that puts m / 2^k in [1, 2), k clamped to [0, 126] (2^-k stays a normal
// float; m / 2^126 is below 4): rows below 2 are not scaled. Rust: reference::inv_pow2_below.
fn inv_pow2_below(m: f32) -> f32 {
    let k = clamp(i32((bitcast<u32>(m) >> 23u) & 0xffu) - 127, 0, 126);
    return bitcast<f32>(u32(127 - k) << 23u);
}

// phi of the token at `base` whose sum of squares overflowed, by one invocation: the row
// divided by s = inv_pow2_below(max |x|) before squaring, phi = |x[d] s| / sqrt(mean (x s)^2
// + 1e-6 s^2) (the same ratio; 1e-6 s^2 may underflow to 0, beside a mean of at least 1 / D).
// Phi::All and Phi::SinksOnly both run it, so they agree bit for bit here too.
fn scaled_phi(base: u32) -> f32 {
    var m = 0.0;
    for (var k = 0u; k < cfg.hidden; k++) {
        m = max(m, abs(hidden[base + k]));
    }
    let s = inv_pow2_below(m);
    // Sums of 64 squares, then their sum: one invocation adds all D squares, and one running
    // sum of a row of equal values (3e38 everywhere) gained 3e-5 at D = 4096, over the tests'
    // 1e-5. (A compensated sum did not help on llvmpipe: its compiler may reassociate.)
    var sum_sq = 0.0;
    for (var b = 0u; b < cfg.hidden; b += 64u) {
        var block = 0.0;
        for (var k = b; k < min(b + 64u, cfg.hidden); k++) {
            let x = hidden[base + k] * s;
            block += x * x;
        }
        sum_sq += block;
    }
    let rms = sqrt(sum_sq / f32(cfg.hidden) + 1e-6 * s * s);
    var score = 0.0;
    for (var i = 0u; i < cfg.n_sink_dims; i++) {
        score = max(score, abs(hidden[base + sink_dims[i]] * s / rms));
    }
    return score;
}
