//! The shared data: the official PyTorch code's outputs (parity in both conventions, through
//! the GPU and through the CPU reference) and real MiniLM activations.

mod support;

use visattn::dump::{TensorFile, drop_batch, spans_from_metadata};
use visattn::reference;
use visattn::{AttnShape, Convention, HostSession, LayerPlan, Rows, SequenceShape, VarConfig, VarKernels, VisualTokens};

struct Layer {
    hidden: Option<Vec<f32>>,
    probs: Vec<f32>,
}

fn load_layers(file: &TensorFile, layers: usize) -> (Vec<Layer>, AttnShape, usize) {
    let mut out = Vec::new();
    let mut shape = None;
    let mut dim = 0;
    for l in 0..layers {
        let a = file.f32(&format!("attentions.{l}")).unwrap();
        let s = drop_batch("attentions", a.shape.clone(), 3).unwrap();
        shape = Some(AttnShape::new(s[0], s[1], s[2]).unwrap());
        let hidden = file.f32(&format!("hidden_states.{l}")).ok().map(|h| {
            let hs = drop_batch("hidden_states", h.shape.clone(), 2).unwrap();
            dim = hs[1];
            h.data
        });
        out.push(Layer { hidden, probs: a.data });
    }
    (out, shape.unwrap(), dim)
}

fn official_config(convention: Convention) -> VarConfig {
    VarConfig {
        convention,
        tau: 20.0,
        summ: 0.2,
        rho: 0.5,
        p: match convention {
            Convention::Released => 0.6,
            Convention::Paper => 0.4,
        },
        sink_dims: vec![1415, 2533],
        layers: LayerPlan::Spec,
    }
}

fn official_parity(convention: Convention) {
    let file = TensorFile::open(support::shared_data("official-var-fixture.safetensors")).unwrap();
    let layers = (0..).take_while(|l| file.contains(&format!("attentions.{l}"))).count();
    assert_eq!(layers, 6);
    let (inputs, shape, dim) = load_layers(&file, layers);
    let spans = spans_from_metadata(file.metadata())
        .unwrap()
        .expect("fixture declares its image span");
    let visual = VisualTokens::from_spans(&spans, shape.keys).unwrap();
    let cfg = official_config(convention);

    let g = support::gpu::gpu();
    let kernels = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let seq = SequenceShape {
        tokens: shape.keys,
        hidden: dim,
        heads: shape.heads,
        queries: shape.queries,
    };
    let mut runner = HostSession::rows(&g.ctx, &kernels, seq, Rows::All).unwrap();
    runner.prepare(&g.queue, &cfg, &visual, layers).unwrap();

    let mut total_selected = 0;
    let mut total_changed = 0;
    for (l, input) in inputs.iter().enumerate() {
        let (_, want_sinks) = file.u8(&format!("expected.sinks.{l}")).unwrap();
        let (_, want_selected) = file.u8(&format!("expected.selected.{l}")).unwrap();
        let released_out = file.f32(&format!("expected.attentions.{l}")).unwrap().data;
        // In the paper convention the last layer is scored but left as it was.
        let want_probs = if convention == Convention::Paper && l + 1 == layers {
            &input.probs
        } else {
            &released_out
        };

        let gpu = runner.run_layer(&g.queue, l, input.hidden.as_deref(), &input.probs).unwrap();
        let gpu_sinks: Vec<u8> = gpu.sinks.iter().map(|&b| b as u8).collect();
        let gpu_selected: Vec<u8> = gpu.selected.iter().map(|&b| b as u8).collect();
        assert_eq!(gpu_sinks, want_sinks, "layer {l}: GPU sinks differ from the official code");
        assert_eq!(
            gpu_selected, want_selected,
            "layer {l}: GPU selections differ from the official code"
        );
        let d = support::close::max_abs_diff(&format!("layer {l} GPU"), &gpu.probs, want_probs);
        assert!(d <= 1e-5, "layer {l}: GPU attention differs by {d}");

        let mut cpu = input.probs.clone();
        let role = cfg.role(l, layers);
        let flags = reference::apply_layer(&cfg, role, &visual, input.hidden.as_deref().map(|h| (h, dim)), &mut cpu, shape).unwrap();
        let cpu_sinks: Vec<u8> = flags.sinks.iter().map(|&b| b as u8).collect();
        let cpu_selected: Vec<u8> = flags.selected.iter().map(|&b| b as u8).collect();
        assert_eq!(cpu_sinks, want_sinks, "layer {l}: reference sinks differ");
        assert_eq!(cpu_selected, want_selected, "layer {l}: reference selections differ");
        let d = support::close::max_abs_diff(&format!("layer {l} reference"), &cpu, want_probs);
        assert!(d <= 1e-5, "layer {l}: reference attention differs by {d}");

        total_selected += want_selected.iter().filter(|&&s| s == 1).count();
        total_changed += (0..cpu.len()).filter(|&i| cpu[i] != input.probs[i]).count();
    }
    // The fixture is only a test if it exercises the maths.
    assert!(
        total_selected > 0 && total_changed > 0,
        "fixture selected {total_selected}, changed {total_changed}"
    );
}

#[test]
fn official_code_parity_released_convention() {
    official_parity(Convention::Released);
}

#[test]
fn official_code_parity_paper_convention() {
    official_parity(Convention::Paper);
}

#[test]
fn minilm_cls_is_the_only_sink() {
    let file = TensorFile::open(support::shared_data("minilm-real.safetensors")).unwrap();
    let (inputs, shape, dim) = load_layers(&file, 6);
    assert_eq!(dim, 384);
    // MiniLM has no image; the test declares one so VAR has a span to work with.
    let visual = VisualTokens::from_spans(&[visattn::ImageSpan::new(1, 20)], shape.keys).unwrap();
    let cfg = VarConfig {
        tau: 15.0,
        sink_dims: vec![99],
        layers: LayerPlan::Only(vec![1, 2, 3, 4, 5]),
        ..VarConfig::paper()
    };
    let g = support::gpu::gpu();
    let kernels = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let seq = SequenceShape {
        tokens: shape.keys,
        hidden: dim,
        heads: shape.heads,
        queries: shape.queries,
    };
    let mut runner = HostSession::rows(&g.ctx, &kernels, seq, Rows::All).unwrap();
    runner.prepare(&g.queue, &cfg, &visual, 6).unwrap();
    for (l, input) in inputs.iter().enumerate().skip(1) {
        let hidden = input.hidden.as_deref().unwrap();
        let out = runner.run_layer(&g.queue, l, Some(hidden), &input.probs).unwrap();
        let sinks: Vec<usize> = (0..shape.keys).filter(|&t| out.sinks[t]).collect();
        assert_eq!(sinks, vec![0], "layer {l}: GPU sinks");
        let phi = reference::phi(hidden, dim, &[99]);
        assert_eq!(reference::sink_mask(&phi, 15.0).iter().filter(|&&s| s).count(), 1);
        assert!((18.5..19.7).contains(&phi[0]), "layer {l}: phi(CLS) = {}", phi[0]);
        assert!(
            ((out.phi[0] as f64) - phi[0]).abs() <= 1e-5 * phi[0],
            "layer {l}: GPU phi {} vs {}",
            out.phi[0],
            phi[0]
        );
    }
}
