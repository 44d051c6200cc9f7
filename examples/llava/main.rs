//! A LLaVA-1.5 host on wgpu that embeds visattn through its public API, as a third-party engine
//! would: the folder's config, shards and tokenizer checked against each other, the picture
//! preprocessed as HF's CLIP processor does, the vision tower, projector and language model on
//! the GPU, VAR inside the language model's fused attention (prefill) and split-K decode.

mod bench;
mod generate;
mod questions;

use std::path::PathBuf;
use visattn_host::outln;

/// The command line's errors: the host's, visattn's, and its own messages, each one line.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

use clap::Parser;
use visattn::output::Use;
use visattn_host::{check, config, gpu, image, prompt, reference, weights};

/// LLaVA-1.5 from a HF model folder: image + question in, answer out, VAR on or off.
#[derive(Parser, Debug)]
#[command(name = "llava")]
// One mode a run: each of these prints or writes something else and exits.
#[command(group(clap::ArgGroup::new("mode").args(["tokens", "reference", "check_kernels", "wgsl_out", "bench", "questions"])))]
struct Args {
    /// HF folder (config.json, *.safetensors (+ index), tokenizer.json), or a LLaMA-architecture
    /// GGUF file (a language model: text prompts, no picture yet).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The question (the user's message, through the model's chat template).
    #[arg(long, default_value = "What is in the picture?")]
    prompt: String,
    /// Send --prompt as it is, without the chat template (GGUF files).
    #[arg(long)]
    raw: bool,
    /// The picture (PNG or JPEG).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Answer every question of FILE.jsonl (one object a line: "image", a path relative to
    /// the file; "question" or POPE's "text"; "label", optional) with VAR off and on, the model
    /// loaded once, greedy up to --max-tokens; print both answers and, over the items labelled
    /// yes or no, POPE's accuracy, precision, recall, F1 and yes-ratio for both modes, and the
    /// answers VAR changed (--json: all of it as JSON). A picture that cannot be read is
    /// reported and skipped. HF folders.
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["image", "prompt"])]
    questions: Option<PathBuf>,
    /// Pad the picture to a square before the processor, as the original LLaVA repository does
    /// (and the VAR paper's numbers): read as PIL's convert("RGB") (alpha dropped), centred on
    /// a square of its longer side filled with the processor's image_mean (expand2square).
    /// llava-hf's processor, the default for HF folders, does not pad; llama.cpp's mmproj path
    /// always pads, its own way (resize, then pad), and takes no --pad-square.
    #[arg(long)]
    pad_square: bool,
    /// llama.cpp's mmproj GGUF file of a --model GGUF language model: LLaVA-1.5's CLIP tower
    /// and projector (the picture preprocessed as llama.cpp does it).
    #[arg(long, value_name = "FILE")]
    mmproj: Option<PathBuf>,
    /// Print the prompt's input ids and the picture's pixel_values (JSON) and exit.
    #[arg(long)]
    tokens: bool,
    /// Run the CPU reference of the model (slow, f64 sums): print the logits of every prompt
    /// position and the greedy answer (JSON) and exit.
    #[arg(long)]
    reference: bool,
    /// Run every GPU kernel of the host against the CPU reference (JSON) and exit.
    #[arg(long)]
    check_kernels: bool,
    /// Write every host kernel's composed WGSL (prelude, generated bindings, file) into DIR and
    /// exit.
    #[arg(long, value_name = "DIR")]
    wgsl_out: Option<PathBuf>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// on: VAR in the language model; off: plain attention; compare: both, side by side.
    #[arg(long, default_value = "on", value_parser = ["on", "off", "compare"])]
    var: String,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    temperature: f64,
    /// Nucleus sampling: the smallest set of tokens holding this much probability.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    top_p: f64,
    /// Seed of the sampler (temperature > 0).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Weights on the device: auto (a folder: f16 if saved in f16 or bf16, else f32; a GGUF
    /// file: each matrix in the file's format), f32, f16 (the f16 kernels where the adapter has
    /// SHADER_F16, packed u32 pairs where not), f16-packed (always the packed kernels), or the
    /// language model quantized on load with llama.cpp's reference quantizers (a folder's, or a
    /// GGUF file's requantized): q8_0, q4_0, q4_k (as llama.cpp's quantizer falls back: q4_k
    /// rows that are not whole super-blocks to q5_0, rows that are not whole blocks to f16).
    #[arg(long, default_value = "auto", value_parser = ["auto", "f32", "f16", "f16-packed", "q8_0", "q4_0", "q4_k"])]
    dtype: String,
    /// Where the linear layers' weights live on the device: buffer (storage buffers: the tiled
    /// matmul, GPUs' layout), texture (rgba32uint textures, the activations read as uniforms:
    /// CPU adapters such as lavapipe, where it is ~10x faster; one row of W an invocation),
    /// texture:decode=R,prefill=TxR (R rows of W an invocation, prefill tiles of T tokens), or
    /// auto (a probe times both layouts and the tilings on this adapter, well under a second,
    /// and keeps the fastest; the line it prints names it, to pass here next time).
    #[arg(long, default_value = "auto", value_parser = parse_staging)]
    staging: String,
    /// Ask the device for this storage-binding limit in bytes instead of WebGPU's 128 MiB
    /// (tests: small limits make the host split its weights into row chunks).
    #[arg(long, value_name = "BYTES")]
    max_binding: Option<u64>,
    /// Benchmark prefill and decode tokens/s, VAR off and on: `tiny` (the --model folder, the
    /// tiny fixture by default), `llama-7b` (random LLaMA-7B-shaped weights made on the GPU) or
    /// `gguf` (the --model GGUF language model, its chat-templated --prompt; the weights' bits
    /// per weight by format).
    #[arg(long, value_name = "MODEL", value_parser = ["tiny", "llama-7b", "gguf"])]
    bench: Option<String>,
    /// --bench llama-7b: layers of LLaMA-7B's 32 (each is 0.4 GB of f16 weights).
    #[arg(long, default_value_t = 2, requires = "bench", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=32))]
    bench_layers: usize,
    /// --bench llama-7b: prompt tokens (LLaVA-1.5's prompts are ~640 with 576 image tokens).
    #[arg(long, default_value_t = 128, requires = "bench", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    bench_prompt: usize,
    /// --bench llama-7b: image tokens in the prompt.
    #[arg(long, default_value_t = 64, requires = "bench", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    bench_image: usize,
    /// --bench: decode steps timed after each prefill.
    #[arg(long, default_value_t = 8, requires = "bench", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    bench_steps: usize,
    /// --bench: timed runs per mode (the median is printed).
    #[arg(long, default_value_t = 3, requires = "bench", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    repeats: usize,
    /// --bench: also time HF transformers on this CPU (tools/bench_llava_torch.py, with
    /// VISATTN_PYTHON or python3) and print the ratios.
    #[arg(long, requires = "bench")]
    torch: bool,
    /// --bench gguf: also run llama.cpp's llama-bench on the same file, its CPU build and its
    /// Vulkan build on the same adapter (built by tools/build_llama_cpp.sh and
    /// tools/build_llama_cpp_vulkan.sh, cached), in the same table.
    #[arg(long, requires = "bench")]
    llama_cpp: bool,
    /// Draw where an answer token looked to this PNG: its attention over the picture's patch
    /// grid before and after VAR side by side (the run with VAR on; sinks outlined), in one
    /// layer (--layer) or averaged over the layers VAR redistributes in, one head (--head) or
    /// the mean over the heads VAR selected, with the colour scale's values. Computed in the
    /// forward pass that makes the token.
    /// With --questions: a folder, one picture an item (`line-N.png`, N its line in the file).
    #[arg(long, value_name = "FILE.png", conflicts_with_all = ["tokens", "reference", "check_kernels", "wgsl_out", "bench"])]
    png: Option<PathBuf>,
    /// --png: the answer token to draw (0: the first; token N is chosen by the row of answer
    /// token N - 1).
    #[arg(long, default_value_t = 0, requires = "png")]
    png_token: usize,
    /// --png: one layer instead of the mean over the layers VAR redistributes in.
    #[arg(long, requires = "png")]
    layer: Option<usize>,
    /// --png: one head instead of the mean over the heads VAR selected.
    #[arg(long, requires = "png")]
    head: Option<usize>,
    /// --png: the picture's size, WIDTHxHEIGHT pixels.
    #[arg(long, default_value = "1200x660", requires = "png", value_parser = parse_size)]
    png_size: (u32, u32),
    /// Print JSON: per mode the answer, its tokens, per-layer counts and timings.
    #[arg(long)]
    json: bool,
    /// With --json: the logits of every prompt position too.
    #[arg(long, requires = "json")]
    logits: bool,
    /// With --json: every layer's input hidden states, q, k, v and attention output of the
    /// prefill too (tests; small models only).
    #[arg(long, requires = "json")]
    capture: bool,
    #[command(flatten)]
    var_flags: visattn_host::cli::VarArgs,
}

fn run(args: Args) -> crate::Result<()> {
    if let Some(png) = args.png.as_ref().filter(|_| args.questions.is_none()) {
        if args.var == "off" {
            return Err("--png draws the attention before and after VAR: it needs --var on or compare".into());
        }
        let image = args
            .image
            .as_deref()
            .ok_or("--png draws the attention over a picture: pass --image")?;
        let mut paths = vec![("--image", image, Use::Read), ("--png", png.as_path(), Use::Write)];
        paths.extend(args.model.as_deref().map(|m| ("--model", m, Use::Read)));
        paths.extend(args.mmproj.as_deref().map(|m| ("--mmproj", m, Use::Read)));
        visattn::output::check_distinct(&paths)?;
    }
    if args.var == "off" {
        if let Some(flag) = args.var_flags.first_given() {
            return Err(format!("{flag} is a VAR setting and --var off runs without VAR: drop one of them").into());
        }
    }
    if let Some(out) = &args.wgsl_out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        for k in gpu::kernels() {
            let path = out.join(k.file);
            visattn::output::write_file(&path, |tmp| std::fs::write(tmp, k.wgsl()).map_err(visattn::Error::from))
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    if args.check_kernels {
        outln!("{}", check::run()?)?;
        return Ok(());
    }
    if args.bench.is_some() {
        return bench::run(&args);
    }
    let dir = args.model.as_ref().ok_or("--model DIR is required (see --help)")?;
    if dir.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        return generate::run_gguf(&args, dir);
    }
    if args.raw {
        return Err("--raw is for GGUF files; a HF LLaVA folder's prompt always goes through its template".into());
    }
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = config::LlavaConfig::parse(&text).map_err(|e| format!("{}: {e}", dir.display()))?;
    let weights = weights::Weights::open(dir)?;
    // The folder held to the config before anything is sized from the config's numbers.
    weights.check(&cfg)?;
    let prompter = prompt::Prompter::open(dir, &cfg)?;
    let preprocess = image::Preprocess::from_dir(dir)?;
    preprocess
        .check_for(cfg.vision.image_size)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(file) = &args.questions {
        return questions::run(&args, (&cfg, &weights, &prompter, &preprocess), file);
    }
    if args.pad_square && args.image.is_none() {
        return Err("--pad-square pads a picture: pass --image (or --questions)".into());
    }
    let ids = prompter.input_ids(&args.prompt)?;
    let pixels = match &args.image {
        Some(path) => Some(picture(&args, &preprocess, path)?),
        None => None,
    };
    fits_context(&ids, &cfg)?;
    if args.tokens {
        // Every tensor read (one shard at a time), upcast and checked finite.
        let mut parameters = 0usize;
        weights.for_each(|_, shape, _| {
            parameters += shape.iter().product::<usize>();
            Ok(())
        })?;
        let json = serde_json::json!({
            "input_ids": ids,
            "text": prompter.decode(&ids)?,
            "shards": weights.shards.len(),
            "tensors": weights.tensors(),
            "parameters": parameters,
            "pixel_values": pixels.map(|(h, w, v)| serde_json::json!({ "height": h, "width": w, "values": v })),
        });
        outln!("{json}")?;
        return Ok(());
    }
    if args.reference {
        let (_, _, pixels) = pixels.ok_or("--reference needs --image")?;
        let model = reference::Model::load(&cfg, &weights)?;
        let image = model.image_features(&pixels)?;
        let logits = model.logits(&ids, Some(&image))?;
        let greedy = model.greedy(&ids, Some(&image), args.max_tokens)?;
        let json = serde_json::json!({
            "logits": logits,
            "greedy": greedy,
            "answer": prompter.decode(&greedy)?,
        });
        outln!("{json}")?;
        return Ok(());
    }
    let (h, w, pixels) = pixels.ok_or("--image is required: LLaVA answers about a picture")?;
    let rgba = picture_seen(&args, &preprocess, (h, w), &pixels)?;
    generate::run(&args, &cfg, &weights, &prompter, &ids, (&pixels, (&rgba, w as u32)))
}

/// A picture's pixel values as the folder's processor makes them (after LLaVA's expand2square
/// with --pad-square): (height, width, values).
fn picture(args: &Args, preprocess: &image::Preprocess, path: &std::path::Path) -> crate::Result<(usize, usize, Vec<f32>)> {
    let img = if args.pad_square {
        image::expand_to_square(&image::load_dropping_alpha(path)?, preprocess.square_fill()?)
    } else {
        image::load(path)?
    };
    Ok(preprocess.pixel_values(&img)?)
}

/// The picture the model saw, under --png's heatmap (RGBA8; empty without --png).
fn picture_seen(args: &Args, preprocess: &image::Preprocess, (h, w): (usize, usize), pixels: &[f32]) -> crate::Result<Vec<u8>> {
    Ok(match args.png {
        Some(_) => preprocess.rgba_of((h, w), pixels)?,
        None => Vec::new(),
    })
}

/// A prompt (with its picture's tokens) within the model's context.
fn fits_context(ids: &[u32], cfg: &config::LlavaConfig) -> crate::Result<()> {
    if ids.len() > cfg.text.max_positions {
        return Err(format!(
            "the prompt is {} tokens with the picture, over the model's context of {}",
            ids.len(),
            cfg.text.max_positions
        )
        .into());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    // SAFETY: no thread has started yet.
    unsafe { visattn::util::quiet_vulkan_probe() };
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return visattn_host::cli::argument_error(e),
    };
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--png-size`: WIDTHxHEIGHT, sides 64..8192.
fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let side = |v: &str| v.parse::<u32>().ok().filter(|n| (64..=8192).contains(n));
    match s.split_once('x').map(|(w, h)| (side(w), side(h))) {
        Some((Some(w), Some(h))) => Ok((w, h)),
        _ => Err(format!("{s}: expected WIDTHxHEIGHT, sides 64..8192 pixels")),
    }
}

/// `--staging`: auto, or what [`Staging`](visattn_host::gpu::matrix::Staging) parses.
fn parse_staging(s: &str) -> std::result::Result<String, String> {
    if s != "auto" {
        s.parse::<visattn_host::gpu::matrix::Staging>().map_err(|e| e.to_string())?;
    }
    Ok(s.to_string())
}
