//! Attention with VAR inside: the fused kernel with VAR on and off and the unfused path at a
//! shape's prefill, and decode steps (split-K against the one-row fused kernel).

use visattn::{
    AttentionInputs, AttentionOptions, FusedAttention, FusedSettings, FusedShape, ImageSpan, KvLayout, Rows, SequenceShape, SplitAttention,
    SplitInputs, UnfusedAttention, VarConfig, VarKernels, VarState, VisualTokens,
};
use wgpu::{Buffer, ComputePass};

use crate::context::{Bench, USAGE, median};
use crate::rows::prefill_state;
use crate::shapes::{Shape, noise};

/// Q, K, V and O of one attention on the GPU.
struct Qkvo {
    q: Buffer,
    k: Buffer,
    v: Buffer,
    o: Buffer,
}

impl Qkvo {
    /// Noise Q, K and V (seeds 1, 2, 3) and a zero O for `shape`.
    fn new(b: &Bench, shape: &FusedShape) -> Self {
        Self {
            q: b.upload(&noise(1, shape.q_len()), USAGE),
            k: b.upload(&noise(2, shape.kv_len()), USAGE),
            v: b.upload(&noise(3, shape.kv_len()), USAGE),
            o: b.upload(&vec![0.0; shape.q_len()], USAGE),
        }
    }

    fn inputs(&self) -> AttentionInputs<'_> {
        AttentionInputs {
            q: self.q.as_entire_buffer_binding(),
            k: self.k.as_entire_buffer_binding(),
            v: self.v.as_entire_buffer_binding(),
            o: self.o.as_entire_buffer_binding(),
        }
    }
}

/// One decode step (one query row, 32 heads over 4 kv heads, d 128) over `keys` keys:
/// split-K vs the one-row fused kernel, and each with VAR on (a redistributing layer) vs off.
pub fn decode(b: &Bench, k: &VarKernels, cfg: &VarConfig, keys: usize) {
    let (g, rep) = (&b.g, &b.report);
    let shape = FusedShape {
        heads: 32,
        kv_heads: 4,
        queries: 1,
        keys,
        head_dim: 128,
    };
    let qkvo = Qkvo::new(b, &shape);
    let image = ImageSpan::new(35, (keys * 9 / 10).min(keys - 36).max(1));
    let visual = VisualTokens::from_spans(&[image], keys).unwrap();
    let mut state = VarState::new(
        &g.ctx,
        SequenceShape {
            tokens: keys,
            hidden: 64,
            heads: 32,
            queries: 1,
        },
        Rows::All,
    )
    .unwrap();
    let hidden: Vec<f32> = (0..keys * 64)
        .map(|i| if i % 64 == 7 && (i / 64) % 97 == 0 { 300.0 } else { 1.0 })
        .collect();
    let cfg_dims = VarConfig {
        sink_dims: vec![7],
        tau: 5.0,
        ..cfg.clone()
    };
    state.prepare(&g.queue, &cfg_dims, &visual, 32).unwrap();
    let hb = b.upload(&hidden, USAGE);
    let sinks = state.bind_sinks(k, Some(hb.as_entire_buffer_binding())).unwrap();
    b.time_pass(&|pass: &mut ComputePass| sinks.record(pass, 3).unwrap());
    let opts = AttentionOptions { causal: true, scale: None };
    let median_of = |run: &dyn Fn(&mut ComputePass)| b.median_pass(b.repeats.min(3), run);
    let name = format!("decode-{keys}");
    let split = SplitAttention::new(&g.ctx, 128).unwrap();
    let sb = split
        .bind(
            &state,
            shape,
            opts,
            KvLayout {
                capacity: keys,
                block: 256,
            },
            SplitInputs {
                attention: qkvo.inputs(),
                classes: state.classes_buffer().as_entire_buffer_binding(),
                selected: state.selected_buffer().as_entire_buffer_binding(),
            },
        )
        .unwrap();
    // Layer 3 redistributes, layer 0 is off: same kernels, VAR's final step on or off.
    let split_var = median_of(&|pass: &mut ComputePass| sb.record(pass, 3).unwrap());
    let split_off = median_of(&|pass: &mut ComputePass| sb.record(pass, 0).unwrap());
    rep.line("split_k_var", &name, split_var, None, None);
    rep.line("split_k_var_off", &name, split_off, None, None);
    let mut one_row = Vec::new();
    for var in [true, false] {
        let f = FusedAttention::new(&g.ctx, FusedSettings { head_dim: 128, var }).unwrap();
        let fb = f.bind(&state, shape, opts, qkvo.inputs()).unwrap();
        let secs = median_of(&|pass: &mut ComputePass| fb.record(pass, 3).unwrap());
        rep.line(
            if var { "one_row_fused_var" } else { "one_row_fused_plain" },
            &name,
            secs,
            None,
            None,
        );
        one_row.push(secs);
    }
    rep.summary(format!(
        "decode {keys} keys: split-K is {:.1}x the one-row kernel; VAR costs {:+.1}% in split-K, {:+.1}% in the one-row kernel",
        one_row[0] / split_var,
        (split_var / split_off - 1.0) * 100.0,
        (one_row[0] / one_row[1] - 1.0) * 100.0
    ));
}

/// Fused attention with VAR on and off, and the unfused GPU path, at the shape's prefill (its
/// heads, head_dim 128, causal). Compute-bound: seconds, no GB/s.
pub fn attention(b: &Bench, k: &VarKernels, cfg: &VarConfig, s: &Shape) {
    let (g, rep) = (&b.g, &b.report);
    let shape = FusedShape {
        heads: s.heads,
        kv_heads: s.heads,
        queries: s.tokens,
        keys: s.tokens,
        head_dim: 128,
    };
    let qkvo = Qkvo::new(b, &shape);
    let hb = b.upload(&s.hidden(3), USAGE);
    let pb = b.upload(&vec![0.0; s.heads * s.tokens * s.tokens], USAGE);
    let opts = AttentionOptions { causal: true, scale: None };
    let state = prefill_state(b, s, cfg, Rows::MayChange);
    let sinks = state.bind_sinks(k, Some(hb.as_entire_buffer_binding())).unwrap();
    let bind = |f: &FusedAttention| f.bind(&state, shape, opts, qkvo.inputs()).unwrap();
    // Sinks once so the classes are real for every timed run.
    b.time_pass(&|pass: &mut ComputePass| sinks.record(pass, 3).unwrap());
    // Plain and VAR interleaved, run by run, so load on a shared machine hits both alike; VAR's
    // cost is the median of the paired ratios.
    let kernels = [false, true].map(|var| bind(&FusedAttention::new(&g.ctx, FusedSettings { head_dim: 128, var }).unwrap()));
    let run = |i: usize| {
        let fb = &kernels[i];
        b.time_pass(&|pass: &mut ComputePass| fb.record(pass, 3).unwrap())
    };
    run(0);
    run(1);
    let pairs: Vec<(f64, f64)> = (0..b.repeats).map(|_| (run(0), run(1))).collect();
    let seconds = [
        median(pairs.iter().map(|p| p.0).collect()),
        median(pairs.iter().map(|p| p.1).collect()),
    ];
    let var_cost = median(pairs.iter().map(|p| p.1 / p.0).collect()) - 1.0;
    rep.line("fused_attention_plain", s.name, seconds[0], None, None);
    rep.line("fused_attention_var", s.name, seconds[1], None, None);
    let un = UnfusedAttention::new(&g.ctx, 128).unwrap();
    let ub = un.bind(shape, opts, qkvo.inputs(), pb.as_entire_buffer_binding()).unwrap();
    let lb = state
        .bind(k, Some(hb.as_entire_buffer_binding()), pb.as_entire_buffer_binding(), 0)
        .unwrap();
    let unfused = b.median_pass(b.repeats, &|pass: &mut ComputePass| {
        ub.record_probs(pass);
        lb.record(pass, 3).unwrap();
        ub.record_pv(pass);
    });
    rep.line("unfused_attention_var", s.name, unfused, None, None);
    rep.summary(format!(
        "attention {}: VAR costs {:+.1}% over the same fused kernel without it (median of paired runs); fused is {:.2}x the unfused GPU path",
        s.name,
        var_cost * 100.0,
        unfused / seconds[1]
    ));
}
