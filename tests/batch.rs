//! Batches: sequences of different lengths, rows and image spans (one with two images), left
//! padded into one dispatch per kernel, give bit for bit what each gives alone.

mod support;

use support::Rng;
use visattn::{
    BatchEntry, Convention, HostSession, ImageSpan, LayerOutput, Rows, SequenceInput, SequenceShape, VarConfig, VarKernels, VarState,
    VisualTokens,
};
use wgpu::util::DeviceExt;

const H: usize = 3;
const D: usize = 48;

struct Seq {
    tokens: usize,
    queries: usize,
    visual: VisualTokens,
    hidden: Vec<f32>,
    probs: Vec<f32>,
}

fn seq(rng: &mut Rng, tokens: usize, queries: usize, spans: &[ImageSpan], sinks: &[usize]) -> Seq {
    seq_with(rng, tokens, queries, spans, sinks, true)
}

/// [`seq`], causal or with every row over every key (the row kernel does not assume either).
fn seq_with(rng: &mut Rng, tokens: usize, queries: usize, spans: &[ImageSpan], sinks: &[usize], causal: bool) -> Seq {
    let visual = VisualTokens::from_spans(spans, tokens).unwrap();
    let mut hidden: Vec<f32> = (0..tokens * D).map(|_| rng.normal() as f32).collect();
    for &t in sinks {
        hidden[t * D + 5] = 250.0;
    }
    let mut probs = Vec::new();
    for h in 0..H {
        for q in 0..queries {
            let pos = tokens - queries + q;
            let e: Vec<f64> = (0..tokens)
                .map(|j| {
                    if causal && j > pos {
                        return 0.0;
                    }
                    let mut x = rng.normal();
                    if visual.is_visual(j) {
                        x += [1.5, -1.0, 0.7][h];
                    }
                    if sinks.contains(&j) {
                        x += 3.5;
                    }
                    x.exp()
                })
                .collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|v| (v / s) as f32));
        }
    }
    Seq {
        tokens,
        queries,
        visual,
        hidden,
        probs,
    }
}

fn alone(g: &support::gpu::Gpu, k: &VarKernels, cfg: &VarConfig, s: &Seq, layer: usize, rows: Rows) -> LayerOutput {
    let shape = SequenceShape {
        tokens: s.tokens,
        hidden: D,
        heads: H,
        queries: s.queries,
    };
    let mut r = HostSession::rows(&g.ctx, k, shape, rows).unwrap();
    r.prepare(&g.queue, cfg, &s.visual, 8).unwrap();
    r.run_layer(&g.queue, layer, Some(&s.hidden), &s.probs).unwrap()
}

fn batched(g: &support::gpu::Gpu, k: &VarKernels, cfg: &VarConfig, seqs: &[Seq], layer: usize, rows: Rows) -> Vec<LayerOutput> {
    let shape = SequenceShape {
        tokens: seqs.iter().map(|s| s.tokens).max().unwrap(),
        hidden: D,
        heads: H,
        queries: seqs.iter().map(|s| s.queries).max().unwrap(),
    };
    let mut r = HostSession::rows_batch(&g.ctx, k, shape, seqs.len(), rows).unwrap();
    let entries: Vec<BatchEntry> = seqs
        .iter()
        .map(|s| BatchEntry {
            visual: &s.visual,
            queries: s.queries,
        })
        .collect();
    r.prepare_batch(&g.queue, cfg, &entries, 8).unwrap();
    let inputs: Vec<SequenceInput> = seqs
        .iter()
        .map(|s| SequenceInput {
            hidden: Some(&s.hidden),
            probs: &s.probs,
            queries: s.queries,
            keys: s.tokens,
        })
        .collect();
    r.run_batch_layer(&g.queue, layer, &inputs).unwrap()
}

/// The settings every test here runs: sinks where dimension 5 carries a massive activation.
fn config(convention: Convention) -> VarConfig {
    VarConfig {
        tau: 6.0,
        sink_dims: vec![5],
        ..VarConfig::for_convention(convention)
    }
}

/// Runs `seqs` as one batch, then each alone, and checks they agree bit for bit; returns how
/// many probabilities VAR changed alone.
fn batch_equals_alone(g: &support::gpu::Gpu, k: &VarKernels, cfg: &VarConfig, seqs: &[Seq], layer: usize, rows: Rows, what: &str) -> usize {
    let together = batched(g, k, cfg, seqs, layer, rows);
    let mut changed = 0;
    for (b, s) in seqs.iter().enumerate() {
        let one = alone(g, k, cfg, s, layer, rows);
        same(&together[b], &one, &format!("seq {b} {what}"));
        changed += one.probs.iter().zip(&s.probs).filter(|(a, b)| a != b).count();
    }
    changed
}

fn same(a: &LayerOutput, b: &LayerOutput, what: &str) {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.phi), bits(&b.phi), "{what}: phi");
    assert_eq!(a.sinks, b.sinks, "{what}: sinks");
    assert_eq!(a.selected, b.selected, "{what}: selected");
    assert_eq!(bits(&a.probs), bits(&b.probs), "{what}: probabilities");
}

/// A sequence's results against the CPU reference (tests/gpu_vs_reference.rs's tolerances:
/// phi within 1e-5 relative, sinks exact, rows VAR leaves alone bit for bit, changed rows
/// within 1e-5 relative + 1e-12) on the rows `rows` (flags of rows within 1e-5 of a threshold
/// not counted); returns how many of them VAR changed. The long sequences here are past every case gpu_vs_reference runs
/// (4096 keys): without this they were only compared with themselves.
fn matches_reference(cfg: &VarConfig, s: &Seq, layer: usize, out: &LayerOutput, rows: &[usize], what: &str) -> usize {
    let shape = visattn::AttnShape::new(H, s.queries, s.tokens).unwrap();
    let mut want = s.probs.clone();
    let flags = visattn::reference::apply_layer(cfg, cfg.role(layer, 8), &s.visual, Some((&s.hidden, D)), &mut want, shape).unwrap();
    for (t, (&g, &r)) in out.phi.iter().zip(&flags.phi).enumerate() {
        assert!((g as f64 - r).abs() <= 1e-5 * r.max(1.0), "{what}: phi[{t}] GPU {g} ref {r}");
    }
    assert_eq!(out.sinks, flags.sinks, "{what}: sinks");
    let has_vs = (0..s.tokens).any(|j| flags.sinks[j] && s.visual.is_visual(j));
    let t = s.tokens;
    let mut changed = 0;
    for &r in rows {
        let input = &s.probs[r * t..(r + 1) * t];
        let stats = visattn::reference::row_stats(input, &s.visual, &flags.sinks, has_vs, cfg);
        if support::close::near(stats.visual_mass, cfg.summ, 1e-5) || support::close::near(stats.sink_ratio, cfg.rho_code(), 1e-5) {
            continue;
        }
        assert_eq!(out.selected[r], flags.selected[r], "{what}: row {r} selected");
        let (g, w) = (&out.probs[r * t..(r + 1) * t], &want[r * t..(r + 1) * t]);
        if w == input {
            assert!(
                g.iter().zip(input).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: row {r} untouched"
            );
            continue;
        }
        changed += 1;
        for j in 0..t {
            let (gv, wv) = (g[j] as f64, w[j] as f64);
            assert!(
                (gv - wv).abs() <= 1e-5 * wv.abs() + 1e-12,
                "{what}: row {r} key {j}: GPU {gv} ref {wv}"
            );
        }
    }
    changed
}

fn prefill_pair() -> Vec<Seq> {
    let mut rng = Rng::new(21);
    vec![
        seq(&mut rng, 71, 71, &[ImageSpan::new(5, 40)], &[0, 12, 13]),
        seq(&mut rng, 96, 96, &[ImageSpan::new(3, 30), ImageSpan::new(50, 20)], &[0, 10, 55, 80]),
    ]
}

/// Lengths 72 and 96: every sequence's first key on a multiple of 4, so a batch can stage.
fn aligned_pair() -> Vec<Seq> {
    let mut rng = Rng::new(22);
    vec![
        seq(&mut rng, 72, 72, &[ImageSpan::new(5, 40)], &[0, 12, 13]),
        seq(&mut rng, 96, 96, &[ImageSpan::new(3, 60)], &[0, 10, 55, 80]),
    ]
}

#[test]
fn a_batch_equals_each_sequence_alone() {
    let g = support::gpu::gpu();
    let mut changed = 0;
    // Keys per lane count from each sequence's first key, so padding of any width keeps the
    // order of every sum. Staged: the aligned pair stages, the other reads the buffer.
    for (lanes, keys, staged) in [(4, 4, false), (64, 4, false), (2, 16, false), (1, 16, false), (1, 16, true)] {
        let k = support::gpu::kernels_staged(&g, lanes, keys, staged);
        for seqs in [prefill_pair(), aligned_pair()] {
            for convention in [Convention::Paper, Convention::Released] {
                let cfg = config(convention);
                for rows in [Rows::All, Rows::MayChange] {
                    for layer in [3, 7] {
                        let what = format!("lanes {lanes} keys {keys} staged {staged} {convention:?} {rows:?} layer {layer}");
                        changed += batch_equals_alone(&g, &k, &cfg, &seqs, layer, rows, &what);
                    }
                }
            }
        }
    }
    assert!(changed > 0, "the batch must redistribute something");
}

/// A sequence's steps of image non-sinks get a loop of their own from lists the row kernel
/// builds per workgroup, up to 2048 steps; past that (here 2050 steps of 4 keys) it runs every
/// step through the class arithmetic. Alone and in a batch, either way, the same bits.
#[test]
fn a_sequence_too_long_for_the_step_lists_equals_itself_in_a_batch() {
    let g = support::gpu::gpu();
    let mut rng = Rng::new(5);
    let seqs = vec![
        seq(&mut rng, 8200, 3, &[ImageSpan::new(1, 8198)], &[0, 40, 41, 3000, 8100]),
        seq(&mut rng, 71, 2, &[ImageSpan::new(5, 40)], &[0, 12]),
    ];
    let cfg = config(Convention::Paper);
    let mut changed = 0;
    for (lanes, keys) in [(1, 4), (4, 4), (1, 16)] {
        let k = support::gpu::kernels(&g, lanes, keys);
        let what = format!("lanes {lanes} keys {keys}");
        changed += batch_equals_alone(&g, &k, &cfg, &seqs, 3, Rows::All, &what);
        // And the 8200-key sequence against the reference: every one of its 9 rows.
        let one = alone(&g, &k, &cfg, &seqs[0], 3, Rows::All);
        let rows: Vec<usize> = (0..H * seqs[0].queries).collect();
        matches_reference(&cfg, &seqs[0], 3, &one, &rows, &format!("8200 keys {what}"));
    }
    assert!(changed > 0, "the batch must redistribute something");
}

/// The longest layout the packed kernel holds (32768 keys), a sequence padded by 4 keys whose
/// probabilities are junk (1.0: nothing should read them): its last step of 16 keys runs 4
/// keys past the row. Those keys must not count as image tokens, or the step would be "pure"
/// and load the next row's first keys, the junk. Every row sees every key here, so the text
/// rows before the image that ends the sequence (rows that may change) see that step.
#[test]
fn past_the_end_keys_never_make_a_step_pure() {
    let g = support::gpu::gpu();
    let mut rng = Rng::new(9);
    let (t, q, pad) = (32768, 20, 4);
    let spans = [ImageSpan::new(1, 30000), ImageSpan::new(t - pad - 16, 16)];
    let s = seq_with(&mut rng, t - pad, q, &spans, &[0, 50], false);
    let cfg = config(Convention::Paper);
    let mut hidden = vec![0.0f32; t * D];
    hidden[pad * D..].copy_from_slice(&s.hidden);
    let mut padded = vec![1.0f32; H * q * t];
    for (r, row) in s.probs.chunks(s.tokens).enumerate() {
        padded[r * t + pad..(r + 1) * t].copy_from_slice(row);
    }
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let upload = |data: &[f32]| {
        g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(data),
            usage,
        })
    };
    let shape = SequenceShape {
        tokens: t,
        hidden: D,
        heads: H,
        queries: q,
    };
    for (lanes, keys) in [(1, 16), (4, 16)] {
        let k = support::gpu::kernels(&g, lanes, keys);
        let mut state = VarState::new_batch(&g.ctx, shape, 1, Rows::All).unwrap();
        let entry = BatchEntry {
            visual: &s.visual,
            queries: q,
        };
        state.prepare_batch(&g.queue, &cfg, &[entry], 8).unwrap();
        let (hidden_buf, probs) = (upload(&hidden), upload(&padded));
        let binding = state
            .bind(&k, Some(hidden_buf.as_entire_buffer_binding()), probs.as_entire_buffer_binding(), 0)
            .unwrap();
        let mut encoder = g.device.create_command_encoder(&Default::default());
        binding.encode(&mut encoder, 3).unwrap();
        g.queue.submit([encoder.finish()]);
        let got: Vec<f32> = visattn::readback::read_vec(&g.device, &g.queue, &probs, padded.len()).unwrap();
        let unpadded: Vec<f32> = got.chunks(t).flat_map(|row| row[pad..].to_vec()).collect();
        let one = alone(&g, &k, &cfg, &s, 3, Rows::All);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&unpadded) == bits(&one.probs),
            "lanes {lanes}: the padded sequence gives its bits alone"
        );
        assert!(one.probs != s.probs, "the text rows before the last image must change");
        // 32764 keys against the reference: all 60 rows (the reference runs the whole layer
        // anyway), the changed ones among them.
        let rows: Vec<usize> = (0..H * q).collect();
        assert!(matches_reference(&cfg, &s, 3, &one, &rows, &format!("32764 keys lanes {lanes}")) > 0);
    }
}

#[test]
fn decode_rows_of_different_lengths_batch_together() {
    let g = support::gpu::gpu();
    let k = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let mut rng = Rng::new(5);
    let seqs = vec![
        seq(&mut rng, 40, 1, &[ImageSpan::new(2, 30)], &[0, 8]),
        seq(&mut rng, 65, 1, &[ImageSpan::new(4, 20), ImageSpan::new(30, 20)], &[0, 40]),
        seq(&mut rng, 17, 1, &[ImageSpan::new(1, 10)], &[0, 3]),
    ];
    let cfg = config(Convention::Paper);
    let together = batched(&g, &k, &cfg, &seqs, 3, Rows::All);
    for (b, s) in seqs.iter().enumerate() {
        same(&together[b], &alone(&g, &k, &cfg, s, 3, Rows::All), &format!("decode seq {b}"));
    }
}

#[test]
fn head_chunks_may_cross_sequences() {
    // 64 KiB bindings: 2 x 3 heads of 96 x 96 f32 (36 KiB a head) go one head per chunk.
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 64 * 1024,
        ..Default::default()
    };
    // Cut chunks run the unpacked kernel (every step through the class arithmetic, routed by its
    // classes); alone, a sequence runs the packed one, with step lists where lanes <= 4.
    let g = support::gpu::gpu_with_limits(Some(limits));
    let big = support::gpu::gpu();
    let seqs = prefill_pair();
    let cfg = config(Convention::Paper);
    for (lanes, keys) in [(64, 4), (4, 4), (2, 16), (1, 16)] {
        let k = support::gpu::kernels(&g, lanes, keys);
        let together = batched(&g, &k, &cfg, &seqs, 3, Rows::All);
        let kb = support::gpu::kernels(&big, lanes, keys);
        for (b, s) in seqs.iter().enumerate() {
            same(
                &together[b],
                &alone(&big, &kb, &cfg, s, 3, Rows::All),
                &format!("chunked seq {b} lanes {lanes} keys {keys}"),
            );
        }
    }
}

#[test]
fn a_padded_batch_of_one_equals_the_sequence_alone() {
    // One sequence left-padded into 100 keys: its first key at 29 (off 16 bytes: the scalar row
    // kernel) or 28 (the vec4 one); alone, 71 keys take the scalar kernel and 72 the vec4 one.
    let g = support::gpu::gpu();
    let mut rng = Rng::new(8);
    let cfg = config(Convention::Paper);
    let mut changed = 0;
    for (lanes, keys) in [(1, 16), (4, 4), (64, 8)] {
        let k = support::gpu::kernels(&g, lanes, keys);
        for tokens in [71, 72] {
            let s = seq(&mut rng, tokens, tokens, &[ImageSpan::new(5, 40)], &[0, 12, 13]);
            for rows in [Rows::All, Rows::MayChange] {
                let shape = SequenceShape {
                    tokens: 100,
                    hidden: D,
                    heads: H,
                    queries: 100,
                };
                let mut r = HostSession::rows_batch(&g.ctx, &k, shape, 1, rows).unwrap();
                let entry = BatchEntry {
                    visual: &s.visual,
                    queries: s.queries,
                };
                r.prepare_batch(&g.queue, &cfg, &[entry], 8).unwrap();
                let input = SequenceInput {
                    hidden: Some(&s.hidden),
                    probs: &s.probs,
                    queries: s.queries,
                    keys: s.tokens,
                };
                let padded = r.run_batch_layer(&g.queue, 3, &[input]).unwrap();
                let one = alone(&g, &k, &cfg, &s, 3, rows);
                changed += one.probs.iter().zip(&s.probs).filter(|(a, b)| a != b).count();
                same(
                    &padded[0],
                    &one,
                    &format!("{tokens} keys in 100, lanes {lanes} keys {keys} {rows:?}"),
                );
            }
        }
    }
    assert!(changed > 0, "VAR must change the padded layers");
}
