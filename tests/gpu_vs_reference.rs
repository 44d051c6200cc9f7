//! The GPU kernels against the CPU reference on odd shapes, random inputs, both conventions and
//! the edge cases of var-spec.md.
//!
//! Tolerances: phi within 1e-5 relative (f32 sum of D squares vs f64); probabilities within
//! 1e-5 relative + 1e-12 absolute (four f32 sums over K keys and one multiply per key). Sink
//! sets must match exactly: every case puts tau far from every phi. A row whose visual mass or
//! sink ratio sits within 1e-5 of its threshold is not counted (f32 may flip it, section 6).

mod support;

use support::Rng;
use visattn::readback::read_vec;
use visattn::reference::{self, RowStats};
use visattn::{
    AttnShape, Convention, HostSession, ImageSpan, KernelSettings, LayerOutput, LayerPlan, LayerRole, PHI_NOT_SCORED, Phi, Rows,
    SequenceShape, VarConfig, VarKernels, VarState, VisualTokens,
};

const REL: f64 = 1e-5;

#[derive(Clone)]
struct Case {
    tokens: usize,
    dim: usize,
    heads: usize,
    queries: usize,
    spans: Vec<ImageSpan>,
    causal: bool,
    /// Tokens given a massive activation (may be image or text tokens).
    planted: Vec<usize>,
    seed: u64,
}

struct Inputs {
    hidden: Vec<f32>,
    probs: Vec<f32>,
    cfg: VarConfig,
    visual: VisualTokens,
    shape: AttnShape,
}

fn make(case: &Case, convention: Convention) -> Inputs {
    let mut rng = Rng::new(case.seed);
    let (t, d) = (case.tokens, case.dim);
    let sink_dims: Vec<u32> = if d == 1 { vec![0] } else { vec![(d / 3) as u32, (d - 1) as u32] };
    let mut hidden: Vec<f32> = (0..t * d).map(|_| rng.normal() as f32).collect();
    for &tok in &case.planted {
        let dim = sink_dims[tok % sink_dims.len()] as usize;
        hidden[tok * d + dim] = (50.0 * (d as f64).sqrt() * if tok % 2 == 0 { 1.0 } else { -1.0 }) as f32;
    }
    // tau halfway between the planted and the rest, so no token sits near it.
    let phi = reference::phi(&hidden, d, &sink_dims);
    let planted_min = case.planted.iter().map(|&i| phi[i]).fold(f64::INFINITY, f64::min);
    let others_max = (0..t).filter(|i| !case.planted.contains(i)).map(|i| phi[i]).fold(0.0, f64::max);
    let tau = if case.planted.is_empty() {
        others_max * 2.0 + 1.0
    } else if planted_min.is_infinite() || others_max == 0.0 {
        planted_min / 2.0
    } else {
        (planted_min + others_max) / 2.0
    };
    assert!(
        planted_min > others_max,
        "case is not separable: planted {planted_min} others {others_max}"
    );

    let visual = VisualTokens::from_spans(&case.spans, t).unwrap();
    let shape = AttnShape::new(case.heads, case.queries, t).unwrap();
    let mut probs = Vec::with_capacity(shape.len());
    for h in 0..case.heads {
        // Heads range from text-centric to image-centric.
        let image_bias = [-2.0, 0.5, 2.0, 1.0][h % 4];
        let sink_bias = [3.0, 4.0, 1.5, 5.0][h % 4];
        for q in 0..case.queries {
            let pos = shape.position(q);
            let logits: Vec<f64> = (0..t)
                .map(|j| {
                    if case.causal && j > pos {
                        return f64::NEG_INFINITY;
                    }
                    let mut x = rng.normal();
                    if visual.is_visual(j) {
                        x += image_bias;
                    }
                    if case.planted.contains(&j) {
                        x += sink_bias;
                    }
                    x
                })
                .collect();
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|&x| (x - m).exp()).collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|&v| (v / s) as f32));
        }
    }
    let cfg = VarConfig {
        tau,
        sink_dims,
        ..VarConfig::for_convention(convention)
    };
    Inputs {
        hidden,
        probs,
        cfg,
        visual,
        shape,
    }
}

fn seq(i: &Inputs, dim: usize) -> SequenceShape {
    SequenceShape {
        tokens: i.shape.keys,
        hidden: dim,
        heads: i.shape.heads,
        queries: i.shape.queries,
    }
}

fn run_gpu(g: &support::gpu::Gpu, k: &VarKernels, i: &Inputs, dim: usize, role: LayerRole, rows: Rows) -> LayerOutput {
    // Three layers: 0 Off, 1 Detect, 2 Redistribute under an explicit plan mapping.
    let (layer, layers, cfg) = role_layer(&i.cfg, role);
    let mut r = HostSession::rows(&g.ctx, k, seq(i, dim), rows).unwrap();
    r.prepare(&g.queue, &cfg, &i.visual, layers).unwrap();
    assert_eq!(r.role(layer).unwrap(), role);
    r.run_layer(&g.queue, layer, Some(&i.hidden), &i.probs).unwrap()
}

/// A config and layer index that give `role` under the config's own convention.
fn role_layer(cfg: &VarConfig, role: LayerRole) -> (usize, usize, VarConfig) {
    let mut cfg = cfg.clone();
    cfg.layers = LayerPlan::Spec;
    match (role, cfg.convention) {
        (LayerRole::Off, _) => (1, 8, cfg),
        (LayerRole::Redistribute, _) => (3, 8, cfg),
        (LayerRole::Detect, Convention::Paper) => (7, 8, cfg),
        (LayerRole::Detect, Convention::Released) => {
            cfg.convention = Convention::Paper;
            // Same rho_code and p_paper as the released reading.
            let (rho, p) = (cfg.rho, cfg.p);
            cfg.rho = 1.0 - rho;
            cfg.p = 1.0 - p;
            (7, 8, cfg)
        }
    }
}

struct Compared {
    rows: usize,
    skipped: usize,
    selected: usize,
    changed: usize,
}

fn near(x: f64, threshold: f64) -> bool {
    support::close::near(x, threshold, REL)
}

fn compare(i: &Inputs, dim: usize, role: LayerRole, gpu: &LayerOutput, what: &str) -> Compared {
    let mut want = i.probs.clone();
    let flags = reference::apply_layer(&i.cfg, role, &i.visual, Some((&i.hidden, dim)), &mut want, i.shape).unwrap();
    let t = i.shape.keys;
    assert_eq!(gpu.probs.len(), i.probs.len(), "{what}: GPU probabilities");
    assert_eq!(gpu.selected.len(), i.shape.rows(), "{what}: GPU selection flags");
    assert_eq!(gpu.phi.len(), t, "{what}: GPU phi");
    if role == LayerRole::Off {
        assert!(gpu.phi.iter().all(|&v| v == 0.0), "{what}: phi of a layer that does not detect");
    } else {
        for tok in 0..t {
            let (g, r) = (gpu.phi[tok] as f64, flags.phi[tok]);
            assert!((g - r).abs() <= REL * r.max(1.0), "{what}: phi[{tok}] GPU {g} ref {r}");
        }
    }
    assert_eq!(gpu.sinks, flags.sinks, "{what}: sink sets differ");
    let has_vs = (0..t).any(|j| flags.sinks[j] && i.visual.is_visual(j));
    let mut c = Compared {
        rows: 0,
        skipped: 0,
        selected: 0,
        changed: 0,
    };
    for r in 0..i.shape.rows() {
        let input = &i.probs[r * t..(r + 1) * t];
        let stats: RowStats = reference::row_stats(input, &i.visual, &flags.sinks, has_vs, &i.cfg);
        if has_vs && role != LayerRole::Off && (near(stats.visual_mass, i.cfg.summ) || near(stats.sink_ratio, i.cfg.rho_code())) {
            c.skipped += 1;
            continue;
        }
        c.rows += 1;
        assert_eq!(gpu.selected[r], flags.selected[r], "{what}: row {r} selected flag ({stats:?})");
        c.selected += flags.selected[r] as usize;
        let (g, w) = (&gpu.probs[r * t..(r + 1) * t], &want[r * t..(r + 1) * t]);
        let row_changed = w != input;
        c.changed += row_changed as usize;
        if !row_changed {
            // Rows VAR leaves alone are never rewritten: bit-identical.
            assert!(
                g.iter().zip(input).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: row {r} must be untouched"
            );
            continue;
        }
        let keep = (1.0 - i.cfg.p_recycled()) as f32;
        for j in 0..t {
            let (gv, wv) = (g[j] as f64, w[j] as f64);
            assert!(
                (gv - wv).abs() <= REL * wv.abs() + 1e-12,
                "{what}: row {r} key {j}: GPU {gv} ref {wv}"
            );
            if flags.sinks[j] {
                assert_eq!(g[j].to_bits(), (input[j] * keep).to_bits(), "{what}: sink scaled by exactly 1 - p");
            } else if !i.visual.is_visual(j) {
                assert_eq!(g[j].to_bits(), input[j].to_bits(), "{what}: text keys untouched");
            }
        }
        let (sin, sout): (f64, f64) = (input.iter().map(|&v| v as f64).sum(), g.iter().map(|&v| v as f64).sum());
        assert!((sin - sout).abs() <= REL * sin, "{what}: row {r} sum {sin} -> {sout}");
    }
    support::close::Skips {
        checked: c.rows,
        skipped: c.skipped,
    }
    .assert_few(what);
    c
}

fn cases() -> Vec<Case> {
    let sp = |s, n| ImageSpan::new(s, n);
    vec![
        Case {
            tokens: 1,
            dim: 1,
            heads: 1,
            queries: 1,
            spans: vec![sp(0, 1)],
            causal: false,
            planted: vec![],
            seed: 1,
        },
        Case {
            tokens: 63,
            dim: 63,
            heads: 3,
            queries: 63,
            spans: vec![sp(5, 30)],
            causal: true,
            planted: vec![0, 9, 12, 50],
            seed: 2,
        },
        Case {
            tokens: 65,
            dim: 65,
            heads: 4,
            queries: 7,
            spans: vec![sp(10, 40)],
            causal: false,
            planted: vec![0, 15, 20],
            seed: 3,
        },
        Case {
            tokens: 577,
            dim: 577,
            heads: 2,
            queries: 577,
            spans: vec![sp(1, 500)],
            causal: true,
            planted: vec![0, 40, 41, 300, 560],
            seed: 4,
        },
        Case {
            tokens: 577,
            dim: 4096,
            heads: 4,
            queries: 65,
            spans: vec![sp(35, 500)],
            causal: true,
            planted: vec![0, 35, 200, 201, 536],
            seed: 5,
        },
        Case {
            tokens: 4096,
            dim: 65,
            heads: 1,
            queries: 63,
            spans: vec![sp(100, 3000)],
            causal: true,
            planted: vec![0, 150, 2000, 3500],
            seed: 6,
        },
        Case {
            tokens: 640,
            dim: 4096,
            heads: 3,
            queries: 1,
            spans: vec![sp(35, 576)],
            causal: true,
            planted: vec![0, 100, 400],
            seed: 7,
        },
        Case {
            tokens: 200,
            dim: 128,
            heads: 2,
            queries: 200,
            spans: vec![sp(10, 50), sp(100, 40)],
            causal: true,
            planted: vec![0, 20, 110, 180],
            seed: 8,
        },
    ]
}

#[test]
fn random_odd_shapes_match_the_reference_in_both_conventions() {
    let g = support::gpu::gpu();
    let (mut selected, mut changed, mut rows) = (0, 0, 0);
    // Lanes-per-row and keys-per-lane specialisations: 64 x 4 (GPUs), 8 x 4 and 4 x 16 (CPU
    // adapters), 1 x 4, 2 x 8 and 1 x 16 (edge cases; groups that overrun odd row ends); odd
    // token counts take the scalar kernel, multiples of 4 the vec4 one.
    // Each case also with its rows staged in a texture (where K is a multiple of 4).
    for ((n, case), staged) in cases().into_iter().enumerate().flat_map(|c| [(c.clone(), false), (c, true)]) {
        let (lanes, keys) = [(64, 4), (8, 4), (1, 4), (2, 8), (4, 16), (1, 16)][n % 6];
        let k = support::gpu::kernels_staged(&g, lanes, keys, staged);
        for convention in [Convention::Paper, Convention::Released] {
            let i = make(&case, convention);
            let what = format!(
                "T={} D={} H={} Q={} {convention:?} lanes {lanes} keys {keys} staged {staged}",
                case.tokens, case.dim, case.heads, case.queries
            );
            let out = run_gpu(&g, &k, &i, case.dim, LayerRole::Redistribute, Rows::All);
            let c = compare(&i, case.dim, LayerRole::Redistribute, &out, &what);
            selected += c.selected;
            changed += c.changed;
            rows += c.rows;
        }
    }
    // The random cases must exercise selection and redistribution, not only the no-op path.
    assert!(
        selected > 100 && changed > 100,
        "selected {selected}, changed {changed} of {rows} rows"
    );
}

#[test]
fn layer_roles_off_and_detect() {
    let g = support::gpu::gpu();
    // 200 keys: the staged kernel's Off layers record no copy, its Detect layers one.
    let case = &cases()[7];
    for (convention, staged) in [Convention::Paper, Convention::Released]
        .into_iter()
        .flat_map(|c| [(c, false), (c, true)])
    {
        let k = support::gpu::kernels_staged(&g, 4, 16, staged);
        let i = make(case, convention);
        let off = run_gpu(&g, &k, &i, case.dim, LayerRole::Off, Rows::All);
        assert_eq!(off.probs, i.probs);
        assert!(off.selected.iter().all(|&s| !s) && off.sinks.iter().all(|&s| !s));
        compare(&i, case.dim, LayerRole::Off, &off, "off");
        let det = run_gpu(&g, &k, &i, case.dim, LayerRole::Detect, Rows::All);
        assert_eq!(det.probs, i.probs, "a detect-only layer changes nothing");
        let c = compare(&i, case.dim, LayerRole::Detect, &det, "detect");
        assert!(c.selected > 0, "detect-only layers still flag rows");
    }
}

#[test]
fn rows_may_change_mode_skips_only_rows_before_the_image() {
    let g = support::gpu::gpu();
    for (case, lanes, keys, staged) in [
        (&cases()[3], 64, 4, false),
        (&cases()[7], 8, 8, false),
        (&cases()[2], 4, 16, false),
        (&cases()[7], 1, 16, true),
        (&cases()[6], 4, 4, true),
    ] {
        let k = support::gpu::kernels_staged(&g, lanes, keys, staged);
        let i = make(case, Convention::Paper);
        let all = run_gpu(&g, &k, &i, case.dim, LayerRole::Redistribute, Rows::All);
        let fast = run_gpu(&g, &k, &i, case.dim, LayerRole::Redistribute, Rows::MayChange);
        assert_eq!(all.probs, fast.probs);
        for r in 0..i.shape.rows() {
            let pos = i.shape.position(r % i.shape.queries);
            if pos >= i.visual.first_end() {
                assert_eq!(all.selected[r], fast.selected[r]);
            } else {
                assert!(!fast.selected[r], "rows before the image are not visited");
            }
        }
    }
}

fn edge(
    planted: Vec<usize>,
    spans: Vec<ImageSpan>,
    convention: Convention,
    tweak: impl Fn(&mut Inputs),
) -> (Inputs, LayerOutput, Compared) {
    let g = support::gpu::gpu();
    let k = support::gpu::kernels(&g, 8, 4);
    let case = Case {
        tokens: 96,
        dim: 96,
        heads: 4,
        queries: 96,
        spans,
        causal: true,
        planted,
        seed: 11,
    };
    let mut i = make(&case, convention);
    tweak(&mut i);
    let out = run_gpu(&g, &k, &i, case.dim, LayerRole::Redistribute, Rows::All);
    let c = compare(&i, case.dim, LayerRole::Redistribute, &out, "edge");
    (i, out, c)
}

#[test]
fn no_sinks_changes_nothing() {
    let (i, out, _) = edge(vec![], vec![ImageSpan::new(8, 60)], Convention::Paper, |_| {});
    assert_eq!(out.probs, i.probs);
    assert!(out.selected.iter().all(|&s| !s));
}

#[test]
fn text_sinks_only_select_nothing() {
    // BOS and a '.' are sinks, no image token is: the released code selects nothing.
    let (i, out, _) = edge(vec![0, 80], vec![ImageSpan::new(8, 60)], Convention::Released, |_| {});
    assert!(out.sinks[0] && out.sinks[80]);
    assert_eq!(out.probs, i.probs);
    assert!(out.selected.iter().all(|&s| !s));
}

#[test]
fn all_visual_tokens_sinks_hit_the_guard() {
    // Paper rho = 0 makes rho_code = 1: every row that sees enough image is selected, but no
    // visual non-sink is left to receive attention, so the guard leaves every row unchanged.
    let spans = vec![ImageSpan::new(8, 60)];
    let planted: Vec<usize> = (8..68).collect();
    let (i, out, c) = edge(planted, spans, Convention::Paper, |i| i.cfg.rho = 0.0);
    assert!(c.selected > 0, "rows are selected");
    assert_eq!(out.probs, i.probs, "the guard leaves them unchanged");
}

#[test]
fn rows_that_see_no_image_are_never_selected() {
    let (i, out, c) = edge(vec![0, 40, 41], vec![ImageSpan::new(30, 40)], Convention::Paper, |_| {});
    assert!(c.selected > 0 && c.changed > 0);
    for r in 0..i.shape.rows() {
        let pos = i.shape.position(r % i.shape.queries);
        if pos < 30 {
            assert!(!out.selected[r], "row at {pos} cannot see the image (causal)");
        }
    }
}

#[test]
fn layer_over_the_binding_limit_goes_through_in_chunks() {
    // A device with a 64 KiB binding limit: a [4, 96, 96] f32 layer (144 KiB) is split by heads.
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 64 * 1024,
        ..Default::default()
    };
    let g = support::gpu::gpu_with_limits(Some(limits));
    let case = Case {
        tokens: 96,
        dim: 96,
        heads: 4,
        queries: 96,
        spans: vec![ImageSpan::new(8, 60)],
        causal: true,
        planted: vec![0, 20, 21],
        seed: 12,
    };
    let i = make(&case, Convention::Paper);
    // Each chunk staged too: the chunks share the state's staging texture.
    for settings in [
        KernelSettings::default(),
        KernelSettings::parse("lanes=4,keys=16,staging=texture").unwrap(),
    ] {
        let k = VarKernels::new(&g.ctx, settings).unwrap();
        let mut r = HostSession::rows(&g.ctx, &k, seq(&i, case.dim), Rows::All).unwrap();
        assert!(r.chunks() > 1, "the layer must be split");
        r.prepare(&g.queue, &i.cfg, &i.visual, 8).unwrap();
        let out = r.run_layer(&g.queue, 3, Some(&i.hidden), &i.probs).unwrap();
        let c = compare(&i, case.dim, LayerRole::Redistribute, &out, &format!("chunked {settings}"));
        assert!(c.changed > 0);
    }
}

/// phi and classes of one detecting layer through the embed API, with `phi` scoring.
fn sink_outputs(g: &support::gpu::Gpu, k: &VarKernels, i: &Inputs, dim: usize, phi: Phi) -> (Vec<f32>, Vec<u32>) {
    use wgpu::util::DeviceExt;
    let (layer, layers, cfg) = role_layer(&i.cfg, LayerRole::Detect);
    let mut state = VarState::new(&g.ctx, seq(i, dim), Rows::All).unwrap().with_phi(phi);
    state.prepare(&g.queue, &cfg, &i.visual, layers).unwrap();
    let hidden = g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&i.hidden),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let sinks = state.bind_sinks(k, Some(hidden.as_entire_buffer_binding())).unwrap();
    let mut e = g.device.create_command_encoder(&Default::default());
    sinks.record(&mut e.begin_compute_pass(&Default::default()), layer).unwrap();
    g.queue.submit([e.finish()]);
    let t = i.shape.keys;
    (
        read_vec(&g.device, &g.queue, state.phi_buffer(), t).unwrap(),
        read_vec(&g.device, &g.queue, state.classes_buffer(), t).unwrap(),
    )
}

#[test]
fn phi_of_sinks_only_gives_the_classes_of_every_phi() {
    // Phi::SinksOnly stops reading a token's hidden state once part of it proves phi <= tau.
    // Its classes must equal Phi::All's bit for bit, its scored phi too, and every token it did
    // not score must have a reference phi <= tau. Tokens that put all their energy in the first
    // 64 values and sit at tau x (1 +- 1e-7 .. 1e-3) are decided at the first checkpoint unless
    // the kernel's margin holds: they test it.
    let g = support::gpu::gpu();
    let (mut skipped, mut scored, mut borderline) = (0, 0, 0);
    for (case, lanes) in cases().into_iter().flat_map(|c| [1, 4, 64].map(|l| (c.clone(), l))) {
        let k = support::gpu::kernels(&g, lanes, 4);
        let mut i = make(&case, Convention::Paper);
        let d = case.dim;
        if d > 64 {
            let dim = i.cfg.sink_dims[0] as usize;
            for (b, rel) in [1e-7, -1e-7, 1e-5, -1e-5, 1e-3, -1e-3].into_iter().enumerate() {
                let tok = (b * 7 + 3) % case.tokens;
                if case.planted.contains(&tok) {
                    continue;
                }
                // The first 64 values hold all the energy but the sink dim's: phi(x) = |x_s| /
                // sqrt((e + x_s^2) / D + 1e-6) = tau (1 + rel), solved for x_s.
                let row = &mut i.hidden[tok * d..(tok + 1) * d];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = if j < 64 { if j % 2 == 0 { 1.0 } else { -0.5 } } else { 0.0 };
                }
                let e: f64 = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() - (row[dim] as f64).powi(2);
                let target = i.cfg.tau * (1.0 + rel);
                let a = target * target / d as f64;
                assert!(a < 1.0, "{target} is over sqrt(D)");
                row[dim] = (target * target * (e / d as f64 + 1e-6) / (1.0 - a)).sqrt() as f32;
                borderline += 1;
            }
        }
        let what = format!("T={} D={d} lanes {lanes}", case.tokens);
        let want = reference::phi(&i.hidden, d, &i.cfg.sink_dims);
        let (phi_all, classes_all) = sink_outputs(&g, &k, &i, d, Phi::All);
        let (phi, classes) = sink_outputs(&g, &k, &i, d, Phi::SinksOnly);
        assert_eq!(classes, classes_all, "{what}: classes");
        for t in 0..case.tokens {
            if phi[t] == PHI_NOT_SCORED {
                assert!(
                    want[t] <= i.cfg.tau,
                    "{what}: token {t} not scored, phi {} > tau {}",
                    want[t],
                    i.cfg.tau
                );
                assert_eq!(classes[t] & 2, 0, "{what}: token {t} not scored yet a sink");
                skipped += 1;
            } else {
                assert_eq!(phi[t].to_bits(), phi_all[t].to_bits(), "{what}: token {t} phi");
                scored += 1;
            }
        }
    }
    assert!(
        borderline > 90 && skipped > 3000 && scored > 120,
        "skipped {skipped}, scored {scored}"
    );
    // Extreme taus the config accepts: squared, 1e-20 underflows to 0 in f32 (every token with a
    // non-zero sink value is a sink) and 1e30 overflows (none is).
    let k = VarKernels::new(&g.ctx, KernelSettings::default()).unwrap();
    for tau in [1e-20, 1e30] {
        let mut i = make(&cases()[3], Convention::Paper);
        i.cfg.tau = tau;
        let d = cases()[3].dim;
        let (_, classes_all) = sink_outputs(&g, &k, &i, d, Phi::All);
        let (_, classes) = sink_outputs(&g, &k, &i, d, Phi::SinksOnly);
        assert_eq!(classes, classes_all, "tau {tau}: classes");
        let sinks = classes.iter().filter(|&&c| c & 2 != 0).count();
        assert_eq!(sinks, if tau < 1.0 { classes.len() } else { 0 }, "tau {tau}: sinks");
    }
}

#[test]
fn phi_of_huge_and_tiny_rows_matches_the_reference() {
    // Rows scaled by 1e20 (their sum of squares overflows f32 at 1.8e19), by 1e-20 (their
    // squares underflow), one value 3e38 everywhere, and a sink whose massive activation alone
    // is 1e20. phi is scale-free but for the 1e-6, so the scaled sinks stay sinks: before the
    // kernel scaled the row they got phi 0 (x / sqrt(inf)) and silently were not sinks.
    let g = support::gpu::gpu();
    for n in [7usize, 4] {
        let case = &cases()[n];
        let d = case.dim;
        let mut i = make(case, Convention::Paper);
        let sink_dim = i.cfg.sink_dims[0] as usize;
        let row = |t: usize| t * d..(t + 1) * d;
        for (t, scale) in [
            (case.planted[0], 1e20f32),
            (case.planted[1], 1e-20),
            (3, 1e20),
            (5, 1e-20),
            (6, 1e-38),
        ] {
            i.hidden[row(t)].iter_mut().for_each(|v| *v *= scale);
        }
        i.hidden[row(8)].iter_mut().for_each(|v| *v = 3e38);
        i.hidden[9 * d + sink_dim] = 1e20;
        let want = reference::phi(&i.hidden, d, &i.cfg.sink_dims);
        // The CPU reference, by hand: phi is scale-free up to the 1e-6.
        let sqrt_d = (d as f64).sqrt();
        assert!((want[8] - 1.0).abs() < 1e-12, "{}", want[8]);
        assert!((want[9] - sqrt_d).abs() < 1e-9 * sqrt_d, "{}", want[9]);
        assert!(want[9] > i.cfg.tau && want[case.planted[0]] > i.cfg.tau && want[case.planted[1]] < 1e-10);
        for lanes in [1, 4, 64] {
            let k = support::gpu::kernels(&g, lanes, 4);
            let what = format!("T={} D={d} lanes {lanes}", case.tokens);
            let out = run_gpu(&g, &k, &i, d, LayerRole::Redistribute, Rows::All);
            compare(&i, d, LayerRole::Redistribute, &out, &what);
            let (phi_all, classes_all) = sink_outputs(&g, &k, &i, d, Phi::All);
            let (phi, classes) = sink_outputs(&g, &k, &i, d, Phi::SinksOnly);
            assert_eq!(classes, classes_all, "{what}: SinksOnly classes");
            for t in [case.planted[0], 8, 9] {
                assert_eq!(phi[t].to_bits(), phi_all[t].to_bits(), "{what}: token {t} phi");
                assert!(
                    (phi[t] as f64 - want[t]).abs() <= REL * want[t],
                    "{what}: token {t} phi {} ref {}",
                    phi[t],
                    want[t]
                );
            }
        }
    }
    // Discovery's per-dimension maxima (dim_max.wgsl) against their CPU reference.
    let kernel = visattn::discover::DimMax::new(&g.ctx).unwrap();
    let d = 96;
    let mut rng = Rng::new(3);
    let mut hidden: Vec<f32> = (0..8 * d).map(|_| rng.normal() as f32).collect();
    hidden[..d].iter_mut().for_each(|v| *v *= 1e20);
    hidden[d..2 * d].iter_mut().for_each(|v| *v *= 1e-20);
    hidden[2 * d..3 * d].iter_mut().for_each(|v| *v = 3e38);
    hidden[3 * d + 11] = 1e20;
    let got = kernel.run(&g.queue, &hidden, d).unwrap();
    let want = visattn::discover::layer_dims(&hidden, d).max_phi;
    support::close::assert_close("dim_max", &got, &want, |w| REL * w.max(1.0));
    assert!((got[11] as f64 - (d as f64).sqrt()).abs() < 1e-3, "{}", got[11]);
}

#[test]
fn every_autotune_candidate_matches_the_reference() {
    // The autotune may pick any of visattn::CANDIDATES on some adapter: each one runs every
    // case against the CPU reference (untouched rows and sinks bit for bit, the rest within
    // REL), staged in a texture where the candidate says so, both conventions across the cases.
    let g = support::gpu::gpu();
    for settings in visattn::CANDIDATES {
        let k = VarKernels::new(&g.ctx, settings).unwrap();
        let (mut selected, mut changed) = (0, 0);
        for (n, case) in cases().into_iter().enumerate() {
            let convention = [Convention::Paper, Convention::Released][n % 2];
            let i = make(&case, convention);
            let what = format!(
                "{settings}: T={} D={} H={} Q={} {convention:?}",
                case.tokens, case.dim, case.heads, case.queries
            );
            let out = run_gpu(&g, &k, &i, case.dim, LayerRole::Redistribute, Rows::All);
            let c = compare(&i, case.dim, LayerRole::Redistribute, &out, &what);
            selected += c.selected;
            changed += c.changed;
        }
        assert!(selected > 50 && changed > 50, "{settings}: selected {selected}, changed {changed}");
    }
}
