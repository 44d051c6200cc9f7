//! Sink-dimension discovery on real MiniLM activations and on the official fixture, through the
//! GPU kernel, checked against the CPU reference.

mod support;

use visattn::discover::{DimMax, LayerDims, layer_dims, rank};
use visattn::dump::{TensorFile, drop_batch, layer_count};

fn hidden_layers(file: &TensorFile) -> (Vec<Vec<f32>>, usize, usize) {
    let layers = layer_count(file, "attentions.").unwrap();
    let mut out = Vec::new();
    let (mut t, mut d) = (0, 0);
    for l in 0..layers {
        let name = format!("hidden_states.{l}");
        if let Ok(h) = file.f32(&name) {
            let s = drop_batch(&name, h.shape.clone(), 2).unwrap();
            (t, d) = (s[0], s[1]);
            out.push(h.data);
        }
    }
    (out, t, d)
}

fn discover(name: &str) -> (visattn::discover::Discovery, Vec<String>) {
    let file = TensorFile::open(support::shared_data(name)).unwrap();
    let (layers, tokens, dim) = hidden_layers(&file);
    let g = support::gpu::gpu();
    let kernel = DimMax::new(&g.ctx).unwrap();
    let mut stats = Vec::new();
    for h in &layers {
        let cpu = layer_dims(h, dim);
        let gpu = kernel.run(&g.queue, h, dim).unwrap();
        support::close::assert_close(&format!("{name} max phi"), &gpu, &cpu.max_phi, |c| 1e-5 * c.max(1.0));
        stats.push(LayerDims {
            max_phi: gpu,
            max_median_ratio: cpu.max_median_ratio,
        });
    }
    let found = rank(&stats, &|l| Ok(layers[l].clone()), tokens).unwrap();
    let words = file
        .metadata()
        .get("tokens")
        .map(|t| t.split(' ').map(String::from).collect())
        .unwrap_or_default();
    (found, words)
}

#[test]
fn minilm_dimension_99_on_cls() {
    let (found, words) = discover("minilm-real.safetensors");
    assert_eq!(found.ranked[0].dim, 99, "{:?}", &found.ranked[..3.min(found.ranked.len())]);
    assert_eq!(found.sink_dims, vec![99]);
    assert_eq!(found.carriers.first().map(|c| c.0), Some(0), "carriers {:?}", found.carriers);
    assert_eq!(found.carriers.len(), 1, "only [CLS] carries it: {:?}", found.carriers);
    assert_eq!(words.first().map(String::as_str), Some("[CLS]"));
    // Relative size: hundreds of times the token's median, as the data's README says.
    assert!(found.ranked[0].max_median_ratio > 200.0, "{:?}", found.ranked[0]);
    let tau = found.tau.unwrap();
    assert!(
        tau < found.sqrt_d() && tau > 5.0,
        "tau {tau} must sit below sqrt(D) = {}",
        found.sqrt_d()
    );
}

#[test]
fn fixture_dimensions_1415_and_2533() {
    let (found, _) = discover("official-var-fixture.safetensors");
    let mut top: Vec<u32> = found.ranked.iter().take(2).map(|s| s.dim).collect();
    top.sort();
    assert_eq!(top, vec![1415, 2533], "{:?}", &found.ranked[..4.min(found.ranked.len())]);
    let mut dims = found.sink_dims.clone();
    dims.sort();
    assert_eq!(dims, vec![1415, 2533]);
    assert!(
        found.carriers.iter().any(|&(t, _)| t == 0),
        "BOS carries them: {:?}",
        found.carriers
    );
}

#[test]
fn gpu_dim_max_matches_on_random_shapes() {
    let g = support::gpu::gpu();
    let kernel = DimMax::new(&g.ctx).unwrap();
    let mut rng = support::Rng::new(3);
    for (t, d) in [(1, 1), (63, 65), (577, 63), (65, 4096)] {
        let mut h: Vec<f32> = (0..t * d).map(|_| rng.normal() as f32).collect();
        h[(t / 2) * d + d / 3] = 1000.0;
        let gpu = kernel.run(&g.queue, &h, d).unwrap();
        let cpu = layer_dims(&h, d);
        support::close::assert_close(&format!("T={t} D={d} max phi"), &gpu, &cpu.max_phi, |c| 1e-5 * c.max(1.0));
    }
    assert!(kernel.run(&g.queue, &[1.0, f32::NAN], 2).is_err());
    assert!(kernel.run(&g.queue, &[1.0, 2.0, 3.0], 2).is_err());
}
