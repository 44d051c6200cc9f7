//! `visattn apply`: a dump in, VAR's results out (shared/docs/dump-format.md).

use std::collections::HashMap;
use std::path::PathBuf;
use visattn_host::outln;

use clap::Args;
use visattn::dump::{Dump, LayerResult, parse_spans, stage_results};
use visattn::output::{Use, check_distinct};

use visattn::{
    BatchEntry, HostSession, ImageSpan, LayerPlan, LayerRole, Rows, SequenceInput, SequenceShape, VarConfig, VarKernels, VisualTokens,
};
pub use visattn_host::cli::VarArgs;

/// Where the image tokens are, when the dump's metadata does not say.
#[derive(Args, Debug, Clone)]
pub struct ImageArgs {
    #[arg(long, requires = "image_len")]
    pub image_start: Option<usize>,
    #[arg(long, requires = "image_start")]
    pub image_len: Option<usize>,
    /// Several images: start:len,start:len.
    #[arg(long, conflicts_with_all = ["image_start", "image_len"])]
    pub image_spans: Option<String>,
}

impl ImageArgs {
    /// The image spans the flags give, if any (the dump's metadata otherwise: [`Dump::image`]).
    pub fn spans(&self) -> Result<Option<Vec<ImageSpan>>, String> {
        if let Some(list) = &self.image_spans {
            return parse_spans(list).map(Some).map_err(|e| e.to_string());
        }
        Ok(self.image_start.zip(self.image_len).map(|(s, n)| vec![ImageSpan::new(s, n)]))
    }
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A dump; give several (with as many --output) to run them as one batch.
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    #[arg(long, required = true)]
    pub output: Vec<PathBuf>,
    #[command(flatten)]
    pub var: VarArgs,
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub picture: crate::picture::PictureArgs,
}

/// One opened dump with its settings.
struct Job {
    path: String,
    dump: Dump,
    cfg: VarConfig,
    spans: Vec<ImageSpan>,
    visual: VisualTokens,
}

pub fn run(args: &ApplyArgs) -> Result<(), String> {
    if args.input.len() != args.output.len() {
        return Err(format!(
            "{} --input but {} --output: give one output per input",
            args.input.len(),
            args.output.len()
        ));
    }
    let mut paths: Vec<(&str, &std::path::Path, Use)> = args.input.iter().map(|p| ("--input", p.as_path(), Use::Read)).collect();
    paths.extend(args.output.iter().map(|p| ("--output", p.as_path(), Use::Write)));
    paths.extend(args.picture.paths());
    check_distinct(&paths).map_err(|e| e.to_string())?;
    let mut jobs = Vec::with_capacity(args.input.len());
    for input in &args.input {
        let path = input.display().to_string();
        let dump = Dump::open(input).map_err(|e| format!("{path}: {e}"))?;
        let meta = dump.metadata().clone();
        let cfg = args.var.config(&meta)?;
        let (spans, visual) = dump.image(args.image.spans()?).map_err(|e| format!("{path}: {e}"))?;
        jobs.push(Job {
            path,
            dump,
            cfg,
            spans,
            visual,
        });
    }
    // A batch shares the model: layers, heads, hidden size and config.
    let first = &jobs[0];
    let layers = first.dump.layers;
    let heads = first.dump.attn.heads;
    for j in &jobs[1..] {
        if (j.dump.layers, j.dump.attn.heads) != (layers, heads) || j.dump.hidden != first.dump.hidden {
            return Err(format!(
                "{}: a batch needs one model: {} layers x {} heads, D {:?} here vs {layers} x {heads}, D {:?} in {}",
                j.path, j.dump.layers, j.dump.attn.heads, j.dump.hidden, first.dump.hidden, first.path
            ));
        }
        if j.cfg != first.cfg {
            return Err(format!(
                "{}: its metadata gives a different config than {} (pass --sink-dims / --preset)",
                j.path, first.path
            ));
        }
    }
    if args.picture.png.is_some() {
        if jobs.len() != 1 {
            return Err("--png draws one dump: give one --input".into());
        }
        let span = first.spans[0];
        args.picture
            .check(layers, heads, first.dump.attn.queries, span.len)
            .map_err(|m| format!("{}: {m}", first.path))?;
    }
    let mut cfg = first.cfg.clone();
    let detecting: Vec<usize> = (0..layers).filter(|&l| cfg.role(l, layers) != LayerRole::Off).collect();
    let mut hidden = 1;
    for j in &jobs {
        hidden = j.dump.hidden_for(&cfg).map_err(|e| format!("{}: {e}", j.path))?;
    }
    if !detecting.is_empty() {
        args.var.fit_tau(&mut cfg, hidden)?;
    }

    let g = visattn::util::gpu().map_err(|e| e.to_string())?;
    let kernels =
        pollster::block_on(VarKernels::new_checked(&g.ctx, visattn::KernelSettings::for_adapter(&g.info))).map_err(|e| e.to_string())?;
    let shape = SequenceShape {
        tokens: jobs.iter().map(|j| j.dump.attn.keys).max().unwrap_or(1),
        hidden,
        heads,
        queries: jobs.iter().map(|j| j.dump.attn.queries).max().unwrap_or(1),
    };
    let mut runner = HostSession::rows_batch(&g.ctx, &kernels, shape, jobs.len(), Rows::All).map_err(|e| e.to_string())?;
    let entries: Vec<BatchEntry> = jobs
        .iter()
        .map(|j| BatchEntry {
            visual: &j.visual,
            queries: j.dump.attn.queries,
        })
        .collect();
    runner.prepare_batch(&g.queue, &cfg, &entries, layers).map_err(|e| e.to_string())?;

    let mut results: Vec<Vec<LayerResult>> = jobs.iter().map(|_| Vec::with_capacity(layers)).collect();
    let mut drawn = None;
    for l in 0..layers {
        let mut probs = Vec::with_capacity(jobs.len());
        let mut hidden_states = Vec::with_capacity(jobs.len());
        for j in &jobs {
            let e = |e: visattn::Error| format!("{}: {e}", j.path);
            probs.push(j.dump.attention(l).map_err(e)?);
            hidden_states.push(j.dump.layer_hidden(&cfg, l).map_err(e)?);
        }
        let inputs: Vec<SequenceInput> = jobs
            .iter()
            .enumerate()
            .map(|(b, j)| SequenceInput {
                hidden: hidden_states[b].as_deref(),
                probs: &probs[b],
                queries: j.dump.attn.queries,
                keys: j.dump.attn.keys,
            })
            .collect();
        let outs = runner
            .run_batch_layer(&g.queue, l, &inputs)
            .map_err(|e| format!("{}: {e}", jobs[0].path))?;
        if args.picture.png.is_some() && l == args.picture.layer_or(layers) {
            let (j, o) = (&jobs[0], &outs[0]);
            let a = j.dump.attn;
            drawn = Some(crate::picture::draw(
                &g,
                &args.picture,
                crate::picture::Layer {
                    index: l,
                    shape: visattn::AttnShape {
                        heads: a.heads,
                        queries: a.queries,
                        keys: a.keys,
                    },
                    before: &probs[0],
                    after: &o.probs,
                    selected: &o.selected,
                    sinks: &o.sinks,
                },
                visattn::ImageSpan::new(j.spans[0].start, j.spans[0].len),
            )?);
        }
        for (b, out) in outs.into_iter().enumerate() {
            results[b].push(LayerResult {
                attentions: out.probs,
                phi: out.phi,
                sinks: out.sinks,
                selected: out.selected,
            });
        }
    }

    // All or nothing: every output and the PNG are written beside their targets first, then
    // renamed into place; a failed write leaves the targets as they were (no half a result,
    // no result of a previous run removed).
    let mut staged = Vec::with_capacity(jobs.len() + 1);
    for ((j, result), output) in jobs.iter().zip(&results).zip(&args.output) {
        let meta_out = config_metadata(&cfg, &j.spans, layers);
        staged.push(stage_results(output, j.dump.attn, result, meta_out).map_err(|e| e.to_string())?);
    }
    if let (Some(d), Some(path)) = (&drawn, &args.picture.png) {
        staged.push(d.stage(path)?);
    }
    for s in staged {
        s.commit().map_err(|e| e.to_string())?;
    }
    for ((j, result), output) in jobs.iter().zip(&results).zip(&args.output) {
        let selected: usize = result.iter().map(|r| r.selected.iter().filter(|&&s| s).count()).sum();
        let a = j.dump.attn;
        outln!(
            "{layers} layers, {} heads, Q = {}, K = {}: {selected} rows selected; wrote {}",
            a.heads,
            a.queries,
            a.keys,
            output.display()
        )?;
    }
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
    m.insert(
        "image_spans".into(),
        join(spans.iter().map(|s| format!("{}:{}", s.start, s.len)).collect()),
    );
    m.insert("layers".into(), layers.to_string());
    if let LayerPlan::Only(l) = &cfg.layers {
        m.insert("var_layers".into(), join(l.iter().map(|d| d.to_string()).collect()));
    }
    m
}
