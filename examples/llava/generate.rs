//! A generation per VAR mode: load the weights onto the GPU (a progress line), encode the
//! picture once, prefill and decode per mode, print the answers (side by side for `compare`),
//! per-layer sink and selected-row counts and tokens/s.

use std::collections::HashMap;
use std::time::Instant;
use visattn_host::outln;

use visattn_host::cli::progress::{Loading, weights_line};
use visattn_host::config::LlavaConfig;
use visattn_host::gpu::matrix::{Staging, WeightFormat};
use visattn_host::gpu::model::{GpuModel, VarMode};
use visattn_host::gpu::prefill::LayerCounts;
use visattn_host::gpu::probe::{Probe, ProbeRequest};
use visattn_host::prompt::Prompter;
use visattn_host::sampling::Sampler;
use visattn_host::weights::Weights;

pub struct Answer {
    pub mode: &'static str,
    pub tokens: Vec<u32>,
    pub text: String,
    pub counts: Vec<LayerCounts>,
    pub prefill_s: f64,
    pub decode_s: f64,
    /// Decode steps run (the first token comes from the prefill's logits).
    pub steps: usize,
    /// Why the answer ended: `eos`, `max_tokens` (--max-tokens), or `context` (the prompt and
    /// the answer filled the model's context before either).
    pub stop: &'static str,
    /// Every prompt position's logits (with --logits).
    pub prompt_logits: Vec<f32>,
    /// The logits the first answer token was chosen from (the last prompt position's).
    pub next_logits: Vec<f32>,
    pub captures: Vec<visattn_host::gpu::prefill::LayerCapture>,
    /// --png's picture, drawn in the generation's forward pass.
    pub probe: Option<Probe>,
}

/// The VAR config the flags give (D_sink has no default: a preset or a list).
pub fn var_config(args: &crate::Args, cfg: &LlavaConfig) -> crate::Result<visattn::VarConfig> {
    let v = &args.var_flags;
    if v.preset.is_none() && v.sink_dims.is_none() {
        return Err(
            "VAR needs the model's sink dimensions: --preset (llava-1.5-7b, ...) or --sink-dims (find them with `visattn discover`), or --var off"
                .into(),
        );
    }
    let mut c = v.config(&HashMap::new())?;
    c.validate_for(cfg.text.hidden, cfg.text.layers).map_err(|e| e.to_string())?;
    v.fit_tau(&mut c, cfg.text.hidden)?;
    Ok(c)
}

pub fn generate(
    model: &GpuModel,
    ids: &[u32],
    image: Option<&(visattn::wgpu::Buffer, usize)>,
    (mode, var): (&'static str, &VarMode),
    args: &crate::Args,
    decode: &dyn Fn(&[u32]) -> crate::Result<String>,
    probe: Option<Probe>,
) -> crate::Result<Answer> {
    let text = &model.cfg.text;
    let room = text.max_positions.saturating_sub(ids.len());
    let max = args.max_tokens.min(room);
    let mut sampler = Sampler::new(args.temperature, args.top_p, args.seed)?;
    let t0 = Instant::now();
    let mut generation = model.prefill_probed(ids, image, var, (ids.len() + max + 1, args.logits, args.capture), probe)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let last = generation.logits[generation.logits.len() - text.vocab..].to_vec();
    let t1 = Instant::now();
    let mut tokens = Vec::new();
    let mut steps = 0;
    let mut next = sampler.next(&last)?;
    let limit = if max < args.max_tokens { "context" } else { "max_tokens" };
    let stop = loop {
        if text.eos.contains(&next) {
            break "eos";
        }
        if tokens.len() == max {
            break limit;
        }
        tokens.push(next);
        if tokens.len() == max {
            // No step for a token nobody reads.
            break limit;
        }
        // The token picked on the device (greedy or top-p), 8 bytes read back, not the logits.
        next = model.step_pick(&mut generation, next, &sampler.draw())?;
        steps += 1;
    };
    let decode_s = t1.elapsed().as_secs_f64();
    Ok(Answer {
        mode,
        text: decode(&tokens)?,
        tokens,
        counts: std::mem::take(&mut generation.counts),
        prefill_s,
        decode_s,
        steps,
        stop,
        prompt_logits: if args.logits {
            std::mem::take(&mut generation.logits)
        } else {
            Vec::new()
        },
        next_logits: last,
        captures: std::mem::take(&mut generation.captures),
        probe: generation.take_probe(),
    })
}

/// --png's flags against the model, before any answer is generated.
pub fn check_png(args: &crate::Args, cfg: &LlavaConfig) -> crate::Result<()> {
    if args.png.is_none() {
        return Ok(());
    }
    if args.png_token >= args.max_tokens {
        return Err(format!(
            "--png-token {}: the answer has at most --max-tokens {} tokens",
            args.png_token, args.max_tokens
        )
        .into());
    }
    Ok(png_request(args).check(&cfg.text)?)
}

/// What --png asks to draw.
fn png_request(args: &crate::Args) -> ProbeRequest {
    ProbeRequest {
        token: args.png_token,
        layer: args.layer,
        head: args.head,
        size: args.png_size,
    }
}

/// --png's probe for the run with VAR on (its flags checked by [`check_png`] before the model
/// loaded): `picture` is what the model saw (RGBA8, its width).
pub fn png_probe(args: &crate::Args, model: &GpuModel, image_tokens: usize, picture: (&[u8], u32)) -> crate::Result<Option<Probe>> {
    if args.png.is_none() {
        return Ok(None);
    }
    Ok(Some(model.probe(png_request(args), image_tokens, Some(picture))?))
}

/// Draws --png's picture of the VAR-on answer, captioned with the layers, the token and the
/// heads, and writes it to `path` (staged beside it, renamed into place whole).
pub fn write_png(
    path: &std::path::Path,
    args: &crate::Args,
    model: &GpuModel,
    answer: &Answer,
    decode: &dyn Fn(&[u32]) -> crate::Result<String>,
) -> crate::Result<()> {
    let Some(probe) = &answer.probe else {
        return Ok(());
    };
    let n = args.png_token;
    let layers = match probe.layers() {
        Some([l]) => format!("layer {l}"),
        Some(ls) if ls.windows(2).all(|w| w[1] == w[0] + 1) => format!("layers {}-{} mean", ls[0], ls[ls.len() - 1]),
        Some(ls) => format!("{} layers' mean", ls.len()),
        None => {
            return Err(format!(
                "--png-token {n}: the answer ended after {} tokens ({}), before it was computed",
                answer.tokens.len(),
                answer.stop
            )
            .into());
        }
    };
    // Computed but not in the answer: the token that ended it.
    let text: String = match answer.tokens.get(n) {
        Some(&token) => decode(&[token])?.trim().chars().take(12).collect(),
        None => "(end)".into(),
    };
    let heads = match args.head {
        Some(h) => format!("head {h}"),
        None => "selected heads".into(),
    };
    let caption = format!("{layers}, token {n} '{text}', {heads}");
    let rgba = probe.render(model, &caption)?;
    visattn::output::StagedFile::write(path, |tmp| {
        visattn_host::image::write_png(tmp, args.png_size, &rgba).map_err(|e| visattn::Error::Io(e.to_string()))
    })?
    .commit()?;
    Ok(())
}

pub fn run(
    args: &crate::Args,
    cfg: &LlavaConfig,
    weights: &Weights,
    prompter: &Prompter,
    ids: &[u32],
    (pixels, picture): (&[f32], (&[u8], u32)),
) -> crate::Result<()> {
    // Every flag checked before any weight is uploaded.
    Sampler::new(args.temperature, args.top_p, args.seed)?;
    let modes = var_modes(args, cfg)?;
    check_png(args, cfg)?;
    let limits = args.max_binding.map(|bytes| visattn::wgpu::Limits {
        max_storage_buffer_binding_size: bytes,
        ..visattn::wgpu::Limits::default()
    });
    let g = visattn::util::gpu_with(visattn_host::gpu::FEATURES, limits).map_err(|e| e.to_string())?;
    let format = WeightFormat::choose(&args.dtype, weights.stored_dtype()?, &g.device)?;
    let model = load_shown(args, format!("the weights onto {}", g.info.name), |progress| {
        GpuModel::load(&g, cfg, weights, format, g.ctx.max_binding(), progress)
    })?;
    answer(args, &g, &model, (ids, pixels, picture), &modes, &|t| Ok(prompter.decode(t)?))
}

/// The modes --var asks for (`compare`: off, then on).
fn var_modes(args: &crate::Args, cfg: &LlavaConfig) -> crate::Result<Vec<(&'static str, VarMode)>> {
    Ok(match args.var.as_str() {
        "off" => vec![("off", VarMode::Off)],
        "on" => vec![("on", VarMode::On(var_config(args, cfg)?))],
        _ => vec![("off", VarMode::Off), ("on", VarMode::On(var_config(args, cfg)?))],
    })
}

/// The answers of a loaded LLaVA model to a prompt with a picture, one per mode, printed (or
/// as JSON): what `run` does after loading, for HF folders and llama.cpp's file pairs alike.
fn answer(
    args: &crate::Args,
    g: &visattn::util::Gpu,
    model: &GpuModel,
    (ids, pixels, picture): (&[u32], &[f32], (&[u8], u32)),
    modes: &[(&'static str, VarMode)],
    decode: &dyn Fn(&[u32]) -> crate::Result<String>,
) -> crate::Result<()> {
    let cfg = &model.cfg;
    let image = model.image_features(pixels)?;
    let mut answers = Vec::new();
    for (name, var) in modes {
        let probe = match var {
            VarMode::On(_) => png_probe(args, model, image.1, picture)?,
            VarMode::Off => None,
        };
        answers.push(generate(model, ids, Some(&image), (name, var), args, decode, probe)?);
    }
    for a in answers.iter().filter(|a| a.stop == "context") {
        // Not an error, but the answer is not what was asked for: say so where a reader of
        // stdout alone would not see it.
        eprintln!(
            "warning: VAR {}: the answer stopped after {} of --max-tokens {}: the prompt's {} tokens and the answer filled the model's context of {}",
            a.mode,
            a.tokens.len(),
            args.max_tokens,
            ids.len(),
            cfg.text.max_positions
        );
    }
    let span = ids.iter().position(|&i| i == cfg.image_token).map(|s| [s, image.1]);
    if args.json {
        // --png's values per patch, what the picture draws.
        let heatmaps = answers
            .iter()
            .map(|a| match a.probe.as_ref().filter(|p| p.layers().is_some()) {
                None => Ok(None),
                Some(probe) => {
                    let (before, after, sinks) = probe.values(model)?;
                    Ok(Some(serde_json::json!({
                        "token": args.png_token, "layers": probe.layers(), "grid": probe.grid(),
                        "before": before, "after": after, "sinks": sinks,
                    })))
                }
            })
            .collect::<crate::Result<Vec<_>>>()?;
        let json: Vec<_> = answers
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut v = serde_json::json!({
                    "var": a.mode,
                    "answer": a.text,
                    "tokens": a.tokens,
                    "stop": a.stop,
                    "layers": a.counts.iter().map(|c| serde_json::json!({ "sinks": c.sinks, "selected_rows": c.selected_rows })).collect::<Vec<_>>(),
                    "prefill_tokens_per_s": ids.len() as f64 / a.prefill_s,
                    "decode_tokens_per_s": a.steps as f64 / a.decode_s.max(1e-9),
                    "image_span": span,
                    "next_logits": a.next_logits,
                });
                if args.logits {
                    v["logits"] = serde_json::json!(a.prompt_logits);
                }
                if let Some(Some(h)) = heatmaps.get(i) {
                    v["heatmap"] = h.clone();
                }
                if args.capture {
                    v["capture"] = a
                        .captures
                        .iter()
                        .map(|c| serde_json::json!({ "hidden": c.hidden, "q": c.q, "k": c.k, "v": c.v, "o": c.o }))
                        .collect();
                }
                v
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "adapter": g.info.name, "weights": model.format().name(), "formats": formats_json(model), "chunked_matrices": model.chunked(),
                "input_ids": ids, "answers": json,
            })
        )?;
    } else {
        print_answers(&answers, ids.len(), cfg.text.layers)?;
    }
    // After the answers: a picture that cannot be drawn loses nothing else.
    match (&args.png, answers.iter().find(|a| a.probe.is_some())) {
        (Some(path), Some(on)) => write_png(path, args, model, on, decode),
        _ => Ok(()),
    }
}

fn print_answers(answers: &[Answer], prompt: usize, layers: usize) -> crate::Result<()> {
    for a in answers {
        outln!("VAR {:<3} | {}", a.mode, a.text.trim())?;
    }
    for a in answers {
        let decoded = a.steps;
        outln!(
            "VAR {:<3} | prefill {prompt} tokens {:.1} ms ({:.1} tokens/s), decode {} tokens {:.1} ms ({:.1} tokens/s)",
            a.mode,
            a.prefill_s * 1e3,
            prompt as f64 / a.prefill_s,
            decoded,
            a.decode_s * 1e3,
            decoded as f64 / a.decode_s.max(1e-9)
        )?;
    }
    if let [off, on] = answers {
        // Greedy answers can agree while VAR moved the distribution: say by how much.
        let change = off
            .next_logits
            .iter()
            .zip(&on.next_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let mut sorted = off.next_logits.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        outln!(
            "VAR moved the first answer token's logits by up to {change:.4} (VAR off: top logit {:.4}, margin to the second {:.4})",
            sorted[0],
            sorted[0] - sorted.get(1).copied().unwrap_or(sorted[0])
        )?;
    }
    if let Some(on) = answers.iter().find(|a| a.mode == "on") {
        outln!("layer | sinks | selected (head, row) pairs")?;
        for l in 0..layers {
            outln!("{l:>5} | {:>5} | {:>5}", on.counts[l].sinks, on.counts[l].selected_rows)?;
        }
    }
    Ok(())
}

/// A LLaMA-architecture GGUF language model (no image): the prompt through the file's chat
/// template (`--raw`: as it is) and tokenizer, the weights dequantized onto the GPU, greedy or
/// sampled decoding. VAR has no visual sinks to find in a text prompt: it is said, and the
/// answer is VAR off's.
pub fn run_gguf(args: &crate::Args, path: &std::path::Path) -> crate::Result<()> {
    use visattn_host::gguf::{GgufFile, model::text_config};
    if args.tokens || args.reference {
        return Err("--tokens and --reference read HF folders; a GGUF file is not supported there yet".into());
    }
    if args.questions.is_some() {
        return Err("--questions reads HF folders; a GGUF file is not supported there yet".into());
    }
    if args.pad_square {
        return Err("--pad-square: llama.cpp's preprocessing of an mmproj file pads to a square already (resize, then pad with CLIP's mean); --pad-square is for HF folders".into());
    }
    match (&args.mmproj, &args.image) {
        (Some(mmproj), Some(picture)) => return run_gguf_llava(args, path, mmproj, picture),
        (Some(_), None) => return Err("--mmproj: LLaVA's tower needs a picture: pass --image".into()),
        (None, Some(_)) => {
            return Err("--image: this GGUF file is a language model; LLaVA's picture needs its mmproj file: pass --mmproj".into());
        }
        (None, None) => {}
    }
    Sampler::new(args.temperature, args.top_p, args.seed)?;
    let file = GgufFile::open(path)?;
    let cfg = LlavaConfig::text_only(text_config(&file)?);
    let tok = gguf_tokenizer(path, &file, args.json)?;
    let ids = gguf_prompt(args, &file, &tok, &cfg)?;
    if args.var != "off" {
        eprintln!("note: a text prompt has no image: VAR finds no visual sinks and changes nothing; the answer is VAR off's");
    }
    let g = visattn::util::gpu_with(visattn_host::gpu::FEATURES, None)?;
    let format = gguf_format(args, &g.device)?;
    let what = format!("{} ({} tensors) onto {}", path.display(), file.tensors().len(), g.info.name);
    let model = load_shown(args, what, |progress| {
        GpuModel::load_gguf(&g, &cfg, &file, format, g.ctx.max_binding(), progress)
    })?;
    let decode = |t: &[u32]| -> crate::Result<String> { Ok(tok.decode(t, true).map_err(|e| format!("tokenizer: {e}"))?) };
    let a = generate(&model, &ids, None, ("off", &VarMode::Off), args, &decode, None)?;
    if a.stop == "context" {
        eprintln!(
            "warning: the answer stopped after {} tokens: the prompt and the answer filled the model's context",
            a.tokens.len()
        );
    }
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "adapter": g.info.name, "weights": model.format().name(), "formats": formats_json(&model), "input_ids": ids, "var_ran": false,
                "answers": [{ "var": "off", "answer": a.text, "tokens": a.tokens, "stop": a.stop,
                    "prefill_tokens_per_s": ids.len() as f64 / a.prefill_s,
                    "decode_tokens_per_s": a.steps as f64 / a.decode_s.max(1e-9) }],
            })
        )?;
        return Ok(());
    }
    outln!("{}", a.text.trim())?;
    outln!(
        "prefill {} tokens {:.1} ms ({:.1} tokens/s), decode {} tokens {:.1} ms ({:.1} tokens/s)",
        ids.len(),
        a.prefill_s * 1e3,
        ids.len() as f64 / a.prefill_s,
        a.steps,
        a.decode_s * 1e3,
        a.steps as f64 / a.decode_s.max(1e-9)
    )?;
    Ok(())
}

/// The weights on the device by format, for --json: what `weights_line` says on stderr.
fn formats_json(model: &GpuModel) -> serde_json::Value {
    model
        .formats()
        .iter()
        .map(|f| {
            serde_json::json!({
                "format": f.format.name(), "matrices": f.matrices, "values": f.values, "bytes": f.bytes,
                "bits_per_weight": f.bits_per_weight(),
            })
        })
        .collect()
}

/// The prompt's ids for a GGUF language model: `--prompt` as the user's message through the
/// file's chat template (or as it is with --raw), checked against the context.
pub fn gguf_prompt(
    args: &crate::Args,
    file: &visattn_host::gguf::GgufFile,
    tok: &visattn_host::tokenizers::Tokenizer,
    cfg: &LlavaConfig,
) -> crate::Result<Vec<u32>> {
    use visattn_host::chat::{ChatTemplate, Message};
    let meta = file.metadata();
    // (text, whether the tokenizer adds its special tokens): a chat template writes its own
    // (`{{ bos_token }}`), as HF tokenizes apply_chat_template's text without adding them.
    let (text, special) = if args.raw {
        (args.prompt.clone(), true)
    } else {
        let tokens = meta.get_str_array("tokenizer.ggml.tokens")?;
        // The template may name the BOS and EOS tokens (none where the file names none).
        let name = |key: &str| -> crate::Result<String> {
            if !meta.contains(key) {
                return Ok(String::new());
            }
            let id = meta.get_u32(key)?;
            Ok(tokens
                .get(id as usize)
                .cloned()
                .ok_or_else(|| format!("{key} = {id} is outside the vocabulary"))?)
        };
        if meta.contains("tokenizer.chat_template") {
            let source = meta.get_str("tokenizer.chat_template")?;
            let text = ChatTemplate::new(source, &name("tokenizer.ggml.bos_token_id")?, &name("tokenizer.ggml.eos_token_id")?)?
                .render(&[Message::user(&args.prompt)], true)?;
            (text, false)
        } else if is_llava(file) {
            // llama.cpp's LLaVA-1.5 conversions carry no template: LLaVA-1.5's own, without the
            // picture a language model alone cannot see.
            let text = visattn_host::prompt::TEMPLATE
                .replace("<image>\n", "")
                .replace("{prompt}", &args.prompt);
            (text, true)
        } else {
            return Err("the file has no tokenizer.chat_template: pass --raw to send the prompt as it is".into());
        }
    };
    let ids = tok
        .encode(text.as_str(), special)
        .map_err(|e| format!("tokenizer: {e}"))?
        .get_ids()
        .to_vec();
    if ids.is_empty() {
        return Err("the prompt is empty".into());
    }
    if ids.len() > cfg.text.max_positions {
        return Err(format!(
            "the prompt is {} tokens, over the model's context of {}",
            ids.len(),
            cfg.text.max_positions
        )
        .into());
    }
    Ok(ids)
}

/// Whether a GGUF language model says it is LLaVA's (`general.name` or `general.basename`, as
/// llama.cpp's converter writes them from the folder: "llava-v1.5-7b", "llava-1.5-7b-hf").
fn is_llava(file: &visattn_host::gguf::GgufFile) -> bool {
    let meta = file.metadata();
    ["general.name", "general.basename"]
        .iter()
        .filter(|k| meta.contains(k))
        .filter_map(|k| meta.get_str(k).ok())
        .any(|v| v.to_ascii_lowercase().contains("llava"))
}

/// A GGUF file's tokenizer: a `tokenizer.json` beside the file overrides the one its metadata
/// describes (said on stderr), as for files whose metadata tokenizer is not the model's own.
pub fn gguf_tokenizer(
    path: &std::path::Path,
    file: &visattn_host::gguf::GgufFile,
    quiet: bool,
) -> crate::Result<visattn_host::tokenizers::Tokenizer> {
    let beside = path.with_file_name("tokenizer.json");
    if beside.is_file() {
        if !quiet {
            eprintln!("note: using {} instead of the file's own tokenizer", beside.display());
        }
        return Ok(visattn_host::tokenizers::Tokenizer::from_file(&beside).map_err(|e| format!("{}: {e}", beside.display()))?);
    }
    Ok(visattn_host::gguf::tokenizer::from_gguf(file)?)
}

/// LLaVA-1.5 from llama.cpp's two files: the language model GGUF and its mmproj (CLIP tower and
/// projector), the picture preprocessed as llama.cpp does it, the prompt as llama.cpp's
/// LLaVA-1.5 path builds it: LLaVA-1.5's template split at the picture, each text piece
/// tokenized on its own (the first with BOS), the image's embeddings between them.
fn run_gguf_llava(args: &crate::Args, path: &std::path::Path, mmproj: &std::path::Path, picture: &std::path::Path) -> crate::Result<()> {
    use visattn_host::gguf::{GgufFile, model::text_config, vision::Mmproj};
    if args.raw {
        return Err("--raw: a picture's place in the prompt is LLaVA-1.5's template's".into());
    }
    Sampler::new(args.temperature, args.top_p, args.seed)?;
    let lm = GgufFile::open(path)?;
    let mm = GgufFile::open(mmproj).map_err(|e| format!("{}: {e}", mmproj.display()))?;
    let tower = Mmproj::read(&mm).map_err(|e| format!("{}: {e}", mmproj.display()))?;
    let cfg = tower.llava(text_config(&lm)?)?;
    let modes = var_modes(args, &cfg)?;
    check_png(args, &cfg)?;
    let tok = gguf_tokenizer(path, &lm, args.json)?;
    let template = visattn_host::prompt::TEMPLATE.replace("{prompt}", &args.prompt);
    let (before, after) = template.split_once("<image>").ok_or("LLaVA-1.5's template has a picture")?;
    let encode = |text: &str, special: bool| -> crate::Result<Vec<u32>> {
        Ok(tok.encode(text, special).map_err(|e| format!("tokenizer: {e}"))?.get_ids().to_vec())
    };
    let patches = cfg.vision.patches();
    let mut ids = encode(before, true)?;
    ids.extend(std::iter::repeat_n(cfg.image_token, patches));
    ids.extend(encode(after, false)?);
    if ids.len() > cfg.text.max_positions {
        return Err(format!(
            "the prompt is {} tokens with the picture's {patches}, over the model's context of {}",
            ids.len(),
            cfg.text.max_positions
        )
        .into());
    }
    let pixels = visattn_host::image::llama_cpp_pixels(
        &visattn_host::image::load_as_llama_cpp(picture)?,
        cfg.vision.image_size,
        tower.image_mean,
        tower.image_std,
    )?;
    let g = visattn::util::gpu_with(visattn_host::gpu::FEATURES, None)?;
    let format = gguf_format(args, &g.device)?;
    let what = format!("{} and {} onto {}", path.display(), mmproj.display(), g.info.name);
    let model = load_shown(args, what, |progress| {
        GpuModel::load_gguf_llava(&g, &cfg, (&lm, &mm), format, g.ctx.max_binding(), progress)
    })?;
    let decode = |t: &[u32]| -> crate::Result<String> { Ok(tok.decode(t, true).map_err(|e| format!("tokenizer: {e}"))?) };
    let side = cfg.vision.image_size;
    let f64s = |v: [f32; 3]| v.map(f64::from);
    let rgba = match args.png {
        Some(_) => {
            visattn_host::image::rgba_of_values((side, side), &pixels, (f64s(tower.image_mean), f64s(tower.image_std)), 1.0 / 255.0)?
        }
        None => Vec::new(),
    };
    answer(args, &g, &model, (&ids, &pixels, (&rgba, side as u32)), &modes, &decode)
}

/// --dtype for GGUF files: `auto` keeps every matrix in the file's format (dequantized in the
/// kernels); the others dequantize on load and keep them as a folder loaded so would be.
pub fn gguf_format(args: &crate::Args, device: &visattn::wgpu::Device) -> crate::Result<Option<WeightFormat>> {
    Ok(match args.dtype.as_str() {
        "auto" => None,
        other => Some(WeightFormat::choose(other, visattn::dump::Dtype::F32, device)?),
    })
}

/// A model loaded under a progress bar (`what`: what goes where), then one stderr line (not with
/// --json) saying how long it took and what its weights take on the device, by format.
pub fn load_shown(
    args: &crate::Args,
    what: String,
    load: impl FnOnce(&mut dyn FnMut(usize, usize)) -> visattn_host::Result<GpuModel>,
) -> crate::Result<GpuModel> {
    let mut loading = Loading::new(what.clone(), args.json);
    let model = load(&mut |done, total| loading.update(done, total));
    let secs = loading.finish();
    let mut model = model?;
    if !args.json {
        eprintln!("loaded {what} in {secs:.1} s: {}", weights_line(&model));
    }
    let line = stage(args, &mut model)?;
    if !args.json {
        eprintln!("{line}");
    }
    Ok(model)
}

/// Moves the weights into the layout `--staging` names (auto: the one the probe times faster
/// on this adapter); a line saying which and why.
pub fn stage(args: &crate::Args, model: &mut GpuModel) -> crate::Result<String> {
    let (staging, why) = match args.staging.as_str() {
        "auto" => {
            let tune = visattn_host::gpu::linear::autotune_staging(model.context(), model.queue(), model.format())?;
            (tune.best, tune.to_string())
        }
        other => {
            let s: Staging = other.parse()?;
            (s, format!("weights as --staging says: {s}"))
        }
    };
    let moved = model.stage(staging)?;
    Ok(match staging {
        Staging::Texture(_) => format!("{why}: {moved} matrices moved"),
        Staging::Buffer => why,
    })
}
