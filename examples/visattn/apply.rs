//! `visattn apply`: a dump in, VAR's results out (shared/docs/dump-format.md).

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use visattn::dump::{Dump, LayerResult, parse_spans, spans_from_metadata, write_results};
use visattn::{Convention, HostRunner, ImageSpan, LayerPlan, LayerRole, Rows, SequenceShape, VarConfig, VarKernels, VisualTokens};

/// VAR's settings as flags; flags win over the dump's metadata, which wins over defaults.
#[derive(Args, Debug, Clone)]
pub struct VarArgs {
    /// D_sink from a preset (llava-1.5-7b, llava-1.5-13b, qwen2-vl-7b, llama-3-8b, ...).
    #[arg(long)]
    pub preset: Option<String>,
    /// D_sink as a list, e.g. 1415,2533 (wins over --preset).
    #[arg(long, value_delimiter = ',')]
    pub sink_dims: Option<Vec<u32>>,
    /// Sink threshold on phi (strict >). Default 20.
    #[arg(long, conflicts_with = "tau_rel")]
    pub tau: Option<f64>,
    /// tau as a fraction of sqrt(D), the largest phi possible (e.g. 0.75).
    #[arg(long)]
    pub tau_rel: Option<f64>,
    /// Paper: visual non-sink ratio floor (default 0.8). Released: sink-ratio ceiling (default 0.5).
    #[arg(long)]
    pub rho: Option<f64>,
    /// Paper: fraction recycled. Released: fraction kept. Default 0.6.
    #[arg(long)]
    pub p: Option<f64>,
    /// Floor on a row's visual attention mass. Default 0.2.
    #[arg(long)]
    pub summ: Option<f64>,
    /// paper or released.
    #[arg(long, default_value = "paper")]
    pub convention: String,
    #[arg(long, requires = "image_len")]
    pub image_start: Option<usize>,
    #[arg(long, requires = "image_start")]
    pub image_len: Option<usize>,
    /// Several images: start:len,start:len.
    #[arg(long, conflicts_with_all = ["image_start", "image_len"])]
    pub image_spans: Option<String>,
    /// Exactly these layers detect and redistribute (e.g. 2,3,4); default as var-spec.md.
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
}

impl VarArgs {
    /// The config, from flags, then metadata `model`, then defaults.
    pub fn config(&self, meta: &HashMap<String, String>) -> Result<VarConfig, String> {
        let convention: Convention = self.convention.parse().map_err(|e: visattn::Error| e.to_string())?;
        let mut cfg = VarConfig::for_convention(convention);
        // A misspelt --preset is an error even when --sink-dims makes it moot.
        if let Some(name) = &self.preset {
            visattn::preset(name).map_err(|e| e.to_string())?;
        }
        let model = self.preset.as_deref().or(meta.get("model").map(String::as_str));
        if let Some(dims) = &self.sink_dims {
            cfg.sink_dims = dims.clone();
        } else if let Some(name) = model {
            cfg.sink_dims = visattn::preset(name).map_err(|e| e.to_string())?.sink_dims.to_vec();
        }
        if let Some(v) = self.tau {
            cfg.tau = v;
        }
        if let Some(v) = self.rho {
            cfg.rho = v;
        }
        if let Some(v) = self.p {
            cfg.p = v;
        }
        if let Some(v) = self.summ {
            cfg.summ = v;
        }
        if let Some(l) = &self.layers {
            cfg.layers = LayerPlan::Only(l.clone());
        }
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Applies --tau-rel once D is known, and warns when no token can pass tau.
    pub fn fit_tau(&self, cfg: &mut VarConfig, hidden: usize) -> Result<(), String> {
        let sqrt_d = (hidden as f64).sqrt();
        if let Some(rel) = self.tau_rel {
            if !(rel.is_finite() && rel > 0.0) {
                return Err(format!("invalid config: tau_rel = {rel}: must be finite and > 0"));
            }
            cfg.tau = rel * sqrt_d;
        }
        if cfg.tau >= sqrt_d {
            eprintln!(
                "warning: tau {} >= sqrt(D) = {sqrt_d:.2}: phi never exceeds sqrt(D), so no token can be a sink (try --tau-rel, or `discover`)",
                cfg.tau
            );
        }
        Ok(())
    }

    /// The image spans, from flags, then metadata.
    pub fn spans(&self, meta: &HashMap<String, String>) -> Result<Vec<ImageSpan>, String> {
        if let Some(list) = &self.image_spans {
            return parse_spans(list).map_err(|e| e.to_string());
        }
        if let (Some(s), Some(n)) = (self.image_start, self.image_len) {
            return Ok(vec![ImageSpan::new(s, n)]);
        }
        spans_from_metadata(meta)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no image span: pass --image-start/--image-len or --image-spans, or set metadata image_start/image_len".into())
    }
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub var: VarArgs,
}

pub fn run(args: &ApplyArgs) -> Result<(), String> {
    let e = |e: visattn::Error| format!("{}: {e}", args.input.display());
    let dump = Dump::open(&args.input).map_err(e)?;
    let meta = dump.metadata().clone();
    let mut cfg = args.var.config(&meta)?;
    let spans = args.var.spans(&meta)?;
    let attn = dump.attn;
    let visual = VisualTokens::from_spans(&spans, attn.keys).map_err(|e| e.to_string())?;
    let detecting: Vec<usize> = (0..dump.layers).filter(|&l| cfg.role(l, dump.layers) != LayerRole::Off).collect();
    let hidden = match dump.hidden {
        Some(d) => d,
        None if detecting.is_empty() => 1,
        None => return Err(format!("{}: no hidden_states.{{l}}: layers {detecting:?} need them to find sinks", args.input.display())),
    };
    cfg.validate_for(hidden, dump.layers).map_err(|e| e.to_string())?;
    if !detecting.is_empty() {
        args.var.fit_tau(&mut cfg, hidden)?;
    }

    let g = crate::gpu::try_gpu(None)?;
    let kernels = VarKernels::with_settings(&g.device, visattn::KernelSettings::for_adapter(&g.info)).map_err(|e| e.to_string())?;
    let shape = SequenceShape { tokens: attn.keys, hidden, heads: attn.heads, queries: attn.queries };
    let mut runner = HostRunner::new(&g.device, &kernels, shape, Rows::All).map_err(|e| e.to_string())?;
    runner.prepare(&g.queue, &cfg, &visual, dump.layers).map_err(|e| e.to_string())?;

    let mut results = Vec::with_capacity(dump.layers);
    for l in 0..dump.layers {
        let probs = dump.attention(l).map_err(e)?;
        let hidden = if detecting.contains(&l) {
            Some(dump.hidden_states(l).map_err(e)?.ok_or_else(|| {
                format!("{}: layer {l} detects sinks but hidden_states.{l} is missing", args.input.display())
            })?)
        } else {
            None
        };
        let out = runner.run_layer(&g.device, &g.queue, l, hidden.as_deref(), &probs).map_err(e)?;
        results.push(LayerResult { attentions: out.probs, phi: out.phi, sinks: out.sinks, selected: out.selected });
    }

    let meta_out = config_metadata(&cfg, &spans, dump.layers);
    write_results(&args.output, attn, &results, meta_out).map_err(|e| e.to_string())?;
    let selected: usize = results.iter().map(|r| r.selected.iter().filter(|&&s| s).count()).sum();
    println!(
        "{} layers, {} heads, Q = {}, K = {}: {selected} rows selected; wrote {}",
        dump.layers,
        attn.heads,
        attn.queries,
        attn.keys,
        args.output.display()
    );
    Ok(())
}

/// The config a result was made with, as string metadata (dump-format.md).
pub fn config_metadata(cfg: &VarConfig, spans: &[ImageSpan], layers: usize) -> HashMap<String, String> {
    let join = |v: Vec<String>| v.join(",");
    let mut m = HashMap::new();
    m.insert("convention".into(), format!("{:?}", cfg.convention).to_lowercase());
    m.insert("tau".into(), cfg.tau.to_string());
    m.insert("rho".into(), cfg.rho.to_string());
    m.insert("p".into(), cfg.p.to_string());
    m.insert("summ".into(), cfg.summ.to_string());
    m.insert("sink_dims".into(), join(cfg.sink_dims.iter().map(|d| d.to_string()).collect()));
    m.insert("image_spans".into(), join(spans.iter().map(|s| format!("{}:{}", s.start, s.len)).collect()));
    m.insert("layers".into(), layers.to_string());
    if let LayerPlan::Only(l) = &cfg.layers {
        m.insert("var_layers".into(), join(l.iter().map(|d| d.to_string()).collect()));
    }
    m
}
