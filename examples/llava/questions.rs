//! `--questions FILE.jsonl`: a folder of pictures and questions, each answered with VAR off and
//! on by the model loaded once, and POPE's yes/no metrics for both modes (issue "See and
//! measure what VAR does"). One JSON object a line: `image` (a path, relative to the file's
//! folder), `question` (or POPE's `text`), `label` (optional; yes / no are scored, anything
//! else is shown). A picture that cannot be read or a prompt that cannot run is reported and
//! skipped; the run goes on.

use std::path::{Path, PathBuf};
use std::time::Instant;

use visattn_host::config::LlavaConfig;
use visattn_host::gpu::model::{GpuModel, VarMode};
use visattn_host::image::Preprocess;
use visattn_host::outln;
use visattn_host::pope::{self, Metrics};
use visattn_host::prompt::Prompter;
use visattn_host::weights::Weights;

/// One line of the question file.
pub struct Item {
    /// 1-based line in the file.
    pub line: usize,
    pub image: PathBuf,
    pub question: String,
    pub label: Option<String>,
    /// POPE's `question_id`, kept as given.
    pub id: Option<serde_json::Value>,
}

/// Reads every line before any model is loaded: a line that is not such an object is an error
/// naming it (blank lines are skipped).
pub fn read(path: &Path) -> crate::Result<Vec<Item>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |why: String| format!("{} line {}: {why}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
        let field = |name: &str| v.get(name).filter(|f| !f.is_null());
        let text_of = |name: &str| -> crate::Result<Option<String>> {
            match field(name) {
                None => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(at(format!("\"{name}\" is {other}, not a string")).into()),
            }
        };
        let image = text_of("image")?.ok_or_else(|| at("no \"image\"".into()))?;
        let question = match text_of("question")? {
            Some(q) => q,
            None => text_of("text")?.ok_or_else(|| at("no \"question\" (or POPE's \"text\")".into()))?,
        };
        items.push(Item {
            line: i + 1,
            image: dir.join(image),
            question,
            label: text_of("label")?,
            id: field("question_id").cloned(),
        });
    }
    if items.is_empty() {
        return Err(format!("{}: no questions", path.display()).into());
    }
    Ok(items)
}

/// What one item got: both answers, or why it was skipped.
struct Outcome {
    off: String,
    on: String,
    seconds: f64,
    /// With --png DIR: the picture of where VAR on's answer looked, or why there is none (the
    /// item's answers count either way).
    picture: Option<Result<PathBuf, String>>,
}

/// --png DIR's picture of the item on `line`.
fn picture_path(dir: &Path, line: usize) -> PathBuf {
    dir.join(format!("line-{line}.png"))
}

pub fn run(
    args: &crate::Args,
    (cfg, weights, prompter, preprocess): (&LlavaConfig, &Weights, &Prompter, &Preprocess),
    file: &Path,
) -> crate::Result<()> {
    let items = read(file)?;
    visattn_host::sampling::Sampler::new(args.temperature, args.top_p, args.seed)?;
    let v = &args.var_flags;
    if args.var != "on" || (v.preset.is_none() && v.sink_dims.is_none()) {
        return Err(
            "--questions answers every item with VAR off and on: give the model's sink dimensions (--preset or --sink-dims), and no --var"
                .into(),
        );
    }
    let var = crate::generate::var_config(args, cfg)?;
    crate::generate::check_png(args, cfg)?;
    if let Some(dir) = &args.png {
        // One picture an item, `line-N.png`, in a folder made if missing (never the model's).
        let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if args.model.as_deref().is_some_and(|m| same(m, dir)) {
            return Err(format!("--png {}: the model's folder; name a folder for the pictures", dir.display()).into());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("--png {}: {e}", dir.display()))?;
        if !dir.is_dir() {
            return Err(format!("--png {}: with --questions, a folder for one picture an item", dir.display()).into());
        }
    }
    let g = visattn::util::gpu_with(visattn_host::gpu::FEATURES, None).map_err(|e| e.to_string())?;
    let format = visattn_host::gpu::matrix::WeightFormat::choose(&args.dtype, weights.stored_dtype()?, &g.device)?;
    let model = crate::generate::load_shown(args, format!("the weights onto {}", g.info.name), |progress| {
        GpuModel::load(&g, cfg, weights, format, g.ctx.max_binding(), progress)
    })?;
    let modes = [("off", VarMode::Off), ("on", VarMode::On(var))];
    let bar = progress(items.len() as u64, args.json);
    let mut outcomes: Vec<Result<Outcome, String>> = Vec::new();
    let mut scored = [Vec::new(), Vec::new()];
    for item in &items {
        let outcome = answer(args, &model, (prompter, preprocess), item, &modes);
        if let Ok(o) = &outcome {
            if let Some(label) = item.label.as_deref().and_then(pope::label) {
                scored[0].push((pope::says_yes(&o.off), label));
                scored[1].push((pope::says_yes(&o.on), label));
            }
        }
        if let Err(why) = &outcome {
            bar.suspend(|| eprintln!("warning: line {} ({}): skipped: {why}", item.line, item.image.display()));
        }
        if let Ok(Outcome {
            picture: Some(Err(why)), ..
        }) = &outcome
        {
            bar.suspend(|| eprintln!("warning: line {}: no picture: {why}", item.line));
        }
        outcomes.push(outcome);
        let acc = |s: &[(bool, bool)]| Metrics::of(s).accuracy.map_or("-".into(), |a| format!("{:.1}%", a * 100.0));
        bar.set_message(format!("accuracy VAR off {} on {}", acc(&scored[0]), acc(&scored[1])));
        bar.inc(1);
    }
    bar.finish_and_clear();
    report(args, &items, &outcomes, [Metrics::of(&scored[0]), Metrics::of(&scored[1])])
}

/// The item's picture through the processor (with `--pad-square` as asked), its prompt, and
/// both modes' answers; any failure is the item's, not the run's.
fn answer(
    args: &crate::Args,
    model: &GpuModel,
    (prompter, preprocess): (&Prompter, &Preprocess),
    item: &Item,
    modes: &[(&'static str, VarMode); 2],
) -> Result<Outcome, String> {
    let t0 = Instant::now();
    let (h, w, pixels) = crate::picture(args, preprocess, &item.image).map_err(|e| e.to_string())?;
    let ids = prompter.input_ids(&item.question).map_err(|e| e.to_string())?;
    crate::fits_context(&ids, &model.cfg).map_err(|e| e.to_string())?;
    let image = model.image_features(&pixels).map_err(|e| e.to_string())?;
    let decode = |t: &[u32]| -> crate::Result<String> { Ok(prompter.decode(t)?) };
    let rgba = crate::picture_seen(args, preprocess, (h, w), &pixels).map_err(|e| e.to_string())?;
    let mut texts = Vec::new();
    let mut picture = None;
    for (name, mode) in modes {
        let probe = match (mode, &args.png) {
            (VarMode::On(_), Some(_)) => crate::generate::png_probe(args, model, image.1, (&rgba, w as u32)).map_err(|e| e.to_string())?,
            _ => None,
        };
        let a = crate::generate::generate(model, &ids, Some(&image), (name, mode), args, &decode, probe).map_err(|e| e.to_string())?;
        if let Some(dir) = &args.png
            && a.probe.is_some()
        {
            let path = picture_path(dir, item.line);
            picture = Some(
                crate::generate::write_png(&path, args, model, &a, &decode)
                    .map(|()| path)
                    .map_err(|e| e.to_string()),
            );
        }
        texts.push(a.text.trim().to_string());
    }
    let on = texts.pop().unwrap_or_default();
    let off = texts.pop().unwrap_or_default();
    Ok(Outcome {
        off,
        on,
        seconds: t0.elapsed().as_secs_f64(),
        picture,
    })
}

/// indicatif's bar over the items with the running accuracy (hidden off a terminal and with
/// --json, whose stdout is the answer).
fn progress(items: u64, json: bool) -> visattn_host::cli::indicatif::ProgressBar {
    if json {
        return visattn_host::cli::indicatif::ProgressBar::hidden();
    }
    let bar = visattn_host::cli::indicatif::ProgressBar::new(items);
    if let Ok(style) =
        visattn_host::cli::indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} questions, {elapsed} ({eta} left) {msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn report(args: &crate::Args, items: &[Item], outcomes: &[Result<Outcome, String>], metrics: [Metrics; 2]) -> crate::Result<()> {
    let answered: Vec<(&Item, &Outcome)> = items
        .iter()
        .zip(outcomes)
        .filter_map(|(i, o)| o.as_ref().ok().map(|o| (i, o)))
        .collect();
    // Items whose POPE reading VAR changed: fixed (now right), broken (now wrong), or changed
    // without a yes/no label to judge by.
    let flips: Vec<(&Item, bool, bool, &str)> = answered
        .iter()
        .filter_map(|(i, o)| {
            let (off, on) = (pope::says_yes(&o.off), pope::says_yes(&o.on));
            (off != on).then(|| {
                let verdict = match i.label.as_deref().and_then(pope::label) {
                    Some(label) if on == label => "fixed",
                    Some(_) => "broken",
                    None => "unlabelled",
                };
                (*i, off, on, verdict)
            })
        })
        .collect();
    let mean_s = answered.iter().map(|(_, o)| o.seconds).sum::<f64>() / answered.len().max(1) as f64;
    let yes = |b: bool| if b { "yes" } else { "no" };
    if args.json {
        let json = serde_json::json!({
            "items": items.iter().zip(outcomes).map(|(i, o)| {
                let mut v = serde_json::json!({
                    "line": i.line, "image": i.image, "question": i.question, "label": i.label, "question_id": i.id,
                });
                match o {
                    Ok(o) => {
                        v["off"] = serde_json::json!({ "answer": o.off, "pope": yes(pope::says_yes(&o.off)) });
                        v["on"] = serde_json::json!({ "answer": o.on, "pope": yes(pope::says_yes(&o.on)) });
                        v["seconds"] = o.seconds.into();
                        match &o.picture {
                            Some(Ok(path)) => v["png"] = serde_json::json!(path),
                            Some(Err(why)) => v["png_error"] = why.as_str().into(),
                            None => {}
                        }
                    }
                    Err(why) => v["skipped"] = why.as_str().into(),
                }
                v
            }).collect::<Vec<_>>(),
            "metrics": { "off": metrics[0].json(), "on": metrics[1].json() },
            "flips": flips.iter().map(|(i, off, on, verdict)| serde_json::json!({
                "line": i.line, "off": yes(*off), "on": yes(*on), "verdict": verdict,
            })).collect::<Vec<_>>(),
            "answered": answered.len(),
            "skipped": outcomes.len() - answered.len(),
            "seconds_per_item": mean_s,
        });
        outln!("{json}")?;
        return Ok(());
    }
    for (i, o) in items.iter().zip(outcomes) {
        match o {
            Ok(o) => outln!(
                "line {} {} | {} | label {} | VAR off: {} | VAR on: {} | {:.1} s",
                i.line,
                i.image.display(),
                i.question,
                i.label.as_deref().unwrap_or("-"),
                o.off,
                o.on,
                o.seconds
            )?,
            Err(why) => outln!("line {} {} | skipped: {why}", i.line, i.image.display())?,
        }
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", v * 100.0));
    outln!(
        "POPE metrics over {} items labelled yes or no (answers read as POPE's evaluate.py does):",
        metrics[0].items
    )?;
    outln!("VAR | accuracy | precision | recall | F1    | yes-ratio")?;
    for (name, m) in ["off", "on"].iter().zip(&metrics) {
        outln!(
            "{name:<3} | {:>8} | {:>9} | {:>6} | {:>5} | {:>9}",
            pct(m.accuracy),
            pct(m.precision),
            pct(m.recall),
            pct(m.f1),
            pct(m.yes_ratio)
        )?;
    }
    outln!(
        "{} answered ({} skipped), {:.1} s an item (VAR off and on); VAR changed {} answers:",
        answered.len(),
        outcomes.len() - answered.len(),
        mean_s,
        flips.len()
    )?;
    for (i, off, on, verdict) in &flips {
        outln!("  line {}: {} -> {} ({verdict})", i.line, yes(*off), yes(*on))?;
    }
    Ok(())
}
