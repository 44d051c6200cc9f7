//! Issue "See and measure what VAR does": the picture of where an answer token looked, made in
//! the tiny LLaVA's forward pass (the prefill's for the first answer token, a decode step's for
//! a later one) and read back: per patch, before and after VAR, within 1e-5 of the colour scale
//! of the CPU reference (the issue asks for 1%) (f64 softmax of the same row, visattn's reference VAR on it), the
//! fixture's planted sink patches colder after VAR, and the drawn frame's colours and labels.

mod support;

use support::pixels::{colormap_position, read_line, read_text};
use visattn::heatmap::HeatmapLayout;
use visattn_host::gpu::matrix::WeightFormat;
use visattn_host::gpu::model::{GpuModel, VarMode};
use visattn_host::gpu::probe::ProbeRequest;
use visattn_host::reference::{self, Var};

#[test]
fn an_answer_tokens_attention_is_drawn_as_the_reference_computes_it() {
    let support::TinyLlava { cfg, weights, ids, pixels } = support::TinyLlava::open();
    let g = support::gpu::gpu();
    let model = GpuModel::load(&g, &cfg, &weights, WeightFormat::F32, g.ctx.max_binding(), |_, _| {}).unwrap();
    let cpu = reference::Model::load(&cfg, &weights).unwrap();
    let image = model.image_features(&pixels).unwrap();
    let image_cpu = cpu.image_features(&pixels).unwrap();
    let start = ids.iter().position(|&i| i == cfg.image_token).unwrap();
    let span = visattn::ImageSpan::new(start, image.1);
    let var_cfg = support::planted_var_config(cfg.text.hidden);
    let layers = cfg.text.layers;
    let redistributing: Vec<usize> = (0..layers)
        .filter(|&l| var_cfg.role(l, layers) == visattn::LayerRole::Redistribute)
        .collect();
    let (w, h) = (600, 330);
    let grid = (image.1 as f64).sqrt() as usize;

    // The first answer token (the prefill's last row) and the third (the second decode step's
    // row), the mean over the redistributing layers and heads VAR selected, one layer, one head.
    for (token, layer, head) in [(0, None, None), (2, None, None), (0, Some(3), Some(1)), (1, Some(2), None)] {
        let what = format!("token {token}, layer {layer:?}, head {head:?}");
        let request = ProbeRequest {
            token,
            layer,
            head,
            size: (w, h),
        };
        let probe = model.probe(request, image.1, None).unwrap();
        let mode = VarMode::On(var_cfg.clone());
        let mut run = model
            .prefill_probed(&ids, Some(&image), &mode, (ids.len() + 4, true, false), Some(probe))
            .unwrap();
        let vocab = cfg.text.vocab;
        let last = &run.logits[(ids.len() - 1) * vocab..];
        let mut answer = vec![(0..vocab).max_by(|&a, &b| last[a].total_cmp(&last[b]).then(b.cmp(&a))).unwrap() as u32];
        while answer.len() <= token {
            let next = model.step_greedy(&mut run, *answer.last().unwrap()).unwrap();
            answer.push(next);
        }
        let probe = run.take_probe().unwrap();
        let shown: Vec<usize> = layer.map_or(redistributing.clone(), |l| vec![l]);
        assert_eq!(probe.layers(), Some(&shown[..]), "{what}");
        let (before, after, sinks) = probe.values(&model).unwrap();

        // The reference: the same row of the sequence the token was chosen from.
        let seq: Vec<u32> = ids.iter().chain(&answer[..token]).copied().collect();
        let var = Var {
            cfg: &var_cfg,
            image: Some(span),
            prompt: ids.len(),
        };
        let rows = cpu.attention_rows(&seq, Some(&image_cpu), var, seq.len() - 1).unwrap();
        let t_n = seq.len();
        let heads = cfg.text.heads;
        let mut want = [vec![0f64; image.1], vec![0f64; image.1]];
        let mut want_sinks = vec![false; image.1];
        for &l in &shown {
            let r = &rows[l];
            let chosen: Vec<usize> = match head {
                Some(h) => vec![h],
                None if r.selected.iter().any(|&s| s) => (0..heads).filter(|&h| r.selected[h]).collect(),
                None => (0..heads).collect(),
            };
            for p in 0..image.1 {
                let key = span.start + p;
                for (panel, row) in [&r.before, &r.after].into_iter().enumerate() {
                    let mean = chosen.iter().map(|&h| row[h * t_n + key] as f64).sum::<f64>() / chosen.len() as f64;
                    want[panel][p] += mean / shown.len() as f64;
                }
                want_sinks[p] |= r.sinks[key];
            }
        }
        let top = want.iter().flatten().fold(0f64, |m, &v| m.max(v));
        for (panel, got) in [&before, &after].into_iter().enumerate() {
            for p in 0..image.1 {
                let diff = (got[p] as f64 - want[panel][p]).abs();
                // The issue asks for 1% of the scale; f32 against f64 holds to 1e-5 of it, and
                // the bound catches a key left out of the row.
                assert!(
                    diff <= 1e-5 * top,
                    "{what}: panel {panel} patch {p}: {} against the reference's {} (scale {top})",
                    got[p],
                    want[panel][p]
                );
            }
        }
        assert_eq!(sinks, want_sinks, "{what}: sink patches");
        let sink_patches: Vec<usize> = (0..image.1).filter(|&p| sinks[p]).collect();
        assert!(!sink_patches.is_empty(), "{what}: the fixture plants sinks in the picture");
        // VAR moved attention in what the picture shows (always for the first token's mean
        // over the layers: the fixture's planted sinks are in all of them), and off every sink.
        let changed = (0..image.1).any(|p| (want[0][p] - want[1][p]).abs() > 0.05 * top);
        assert!(changed || token > 0 || layer.is_some(), "{what}: VAR changed nothing to draw");
        for &p in &sink_patches {
            assert!(
                after[p] <= before[p],
                "{what}: sink patch {p} warmer after VAR: {} -> {}",
                before[p],
                after[p]
            );
            assert!(
                !changed || after[p] < before[p],
                "{what}: sink patch {p} not colder after VAR: {}",
                before[p]
            );
        }

        // The frame: each patch's colour at its value on the shared scale, the scale's top
        // written under the legend, the caption and titles over the panels.
        let caption = format!("token {token}");
        let rgba = probe.render(&model, &caption).unwrap();
        let frame = HeatmapLayout::new(w, h);
        for p in 0..image.1 {
            for (panel, v) in [(0, want[0][p]), (1, want[1][p])] {
                let (x, y) = frame.patch_center(panel, grid, p / grid, p % grid);
                let at = ((y * w + x) * 4) as usize;
                let t = colormap_position(&rgba[at..at + 3]);
                assert!(
                    (t as f64 - v / top).abs() < 0.015,
                    "{what}: panel {panel} patch {p} drawn at {t}, reference {}",
                    v / top
                );
            }
        }
        let [x0, _, x1, _] = frame.legend;
        let drawn_top: f64 = read_line(&rgba, &frame, (x1 - (x1 - x0) / 3, x1), frame.ticks_y).parse().unwrap();
        assert!(
            (drawn_top - top).abs() <= 0.01 * top,
            "{what}: the scale's top is written {drawn_top}, reference {top}"
        );
        assert_eq!(read_text(&rgba, &frame, frame.caption, 12), caption);
        assert_eq!(read_line(&rgba, &frame, (w / 2, w), frame.titles_y), "after VAR");
    }

    // What a probe cannot draw: a layer or head the model lacks, an image that is no square
    // grid, VAR off.
    let request = |layer, head| ProbeRequest {
        token: 0,
        layer,
        head,
        size: (w, h),
    };
    assert!(model.probe(request(Some(layers), None), image.1, None).is_err());
    assert!(model.probe(request(None, Some(cfg.text.heads)), image.1, None).is_err());
    assert!(model.probe(request(None, None), image.1 + 1, None).is_err());
    let probe = model.probe(request(None, None), image.1, None).unwrap();
    let err = model
        .prefill_probed(&ids, Some(&image), &VarMode::Off, (ids.len() + 4, false, false), Some(probe))
        .err()
        .expect("VAR off has nothing to draw");
    assert!(err.to_string().contains("VAR on"), "{err}");
}
