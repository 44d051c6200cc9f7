//! `--bench`: prefill and decode tokens/s of the language model, VAR off and on, against HF
//! transformers on this machine's CPU (tools/bench_llava_torch.py) in the same run, as ratios.
//! `tiny` is the folder's model with its own prompt and picture; `llama-7b` a LLaMA-7B-shaped
//! model (D 4096, 32 heads, MLP 11008, vocab 32064) whose random weights are made on the device,
//! `--bench-layers` of its 32 layers, a prompt of `--bench-prompt` tokens with `--bench-image`
//! image tokens, massive activations planted in the image features (dim 2533 every 37th token,
//! as LLaVA's visual sinks) so VAR has sinks to find. `gguf` is a GGUF language model (SmolLM2's)
//! with a text prompt, against HF transformers loading the same file (dequantized to f32).

use std::time::Instant;
use visattn_host::outln;

use visattn::wgpu;

use visattn_host::config::{LlavaConfig, TextConfig};
use visattn_host::gpu::bandwidth;
use visattn_host::gpu::decode::Generation;
use visattn_host::gpu::matrix::WeightFormat;
use visattn_host::gpu::model::{GpuModel, VarMode};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// LLaMA-2-7B's language model (LLaVA-1.5-7B's), `layers` of its 32 (the bench gives image
/// features directly: no vision tower, but LLaVA's image token, 32000).
fn llama_7b(layers: usize) -> LlavaConfig {
    let mut cfg = LlavaConfig::text_only(TextConfig {
        hidden: 4096,
        intermediate: 11008,
        layers,
        heads: 32,
        kv_heads: 32,
        head_dim: 128,
        vocab: 32064,
        rms_eps: 1e-5,
        rope_theta: 10000.0,
        max_positions: 4096,
        eos: vec![2],
    });
    cfg.image_token = 32000;
    cfg
}

/// Seconds of one prefill and of `steps` greedy decode steps.
fn time_once(
    model: &GpuModel,
    ids: &[u32],
    image: Option<&(wgpu::Buffer, usize)>,
    var: &VarMode,
    steps: usize,
) -> crate::Result<(f64, f64)> {
    let t0 = Instant::now();
    let mut run = model.prefill(ids, image, var, ids.len() + steps + 1, false, false)?;
    let prefill = t0.elapsed().as_secs_f64();
    let mut token = last_greedy(model, &run)?;
    let t1 = Instant::now();
    for _ in 0..steps {
        token = model.step_greedy(&mut run, token)?;
    }
    Ok((prefill, t1.elapsed().as_secs_f64()))
}

/// Milliseconds to pick a token from `logits` (a row on the device) at temperature 0.8: on the
/// device greedy, top-p 0.9 and top-p 1 (8 bytes read back), and the row read back and picked
/// here at top-p 0.9 (sampling::pick, what a host without the kernel does); the median of
/// `repeats` each.
fn time_picks(model: &GpuModel, logits: &[f32], repeats: usize) -> crate::Result<[f64; 4]> {
    use visattn_host::sampling::{Draw, pick};
    let (ctx, queue, vocab) = (model.context(), model.queue(), logits.len());
    let row = visattn_host::gpu::linear::upload(ctx, queue, "pick logits", logits).map_err(|e| e.to_string())?;
    let out = visattn_host::gpu::linear::upload(ctx, queue, "pick out", &[0f32; 2]).map_err(|e| e.to_string())?;
    let step = visattn_host::gpu::sample::Sample::new(ctx)?.bind(&row, 0, vocab, &out)?;
    let (top_p, full) = (Draw::new(0.8, 0.9, 0.5)?, Draw::new(0.8, 1.0, 0.5)?);
    let time = |f: &mut dyn FnMut() -> crate::Result<()>| -> crate::Result<f64> {
        f()?;
        let mut t = Vec::new();
        for _ in 0..repeats {
            let t0 = Instant::now();
            f()?;
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(t))
    };
    let on_device = |draw: &Draw| -> crate::Result<()> {
        step.set(queue, draw);
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        step.dispatch.record(&mut enc.begin_compute_pass(&Default::default()), &[]);
        queue.submit([enc.finish()]);
        visattn::readback::read_vec::<u32>(ctx.device(), queue, &out, 2)?;
        Ok(())
    };
    let greedy = time(&mut || on_device(&Draw::GREEDY))?;
    let sampled = time(&mut || on_device(&top_p))?;
    let whole = time(&mut || on_device(&full))?;
    let here = time(&mut || {
        let got = visattn::readback::read_vec::<f32>(ctx.device(), queue, &row, vocab)?;
        pick(&got, &top_p)?;
        Ok(())
    })?;
    Ok([greedy, sampled, whole, here])
}

/// The greedy token of a prefill's last logits (the sampler's, ties to the lowest id).
fn last_greedy(model: &GpuModel, run: &Generation) -> crate::Result<u32> {
    let last = &run.logits[run.logits.len() - model.cfg.text.vocab..];
    Ok(visattn_host::sampling::pick(last, &visattn_host::sampling::Draw::GREEDY)?)
}

/// The median (by its span) of `steps` greedy decode steps of `run` (a prefill with room for
/// them) timed on the device's clock; None where the device has no timestamp queries.
fn profile_step(model: &GpuModel, run: &mut Generation, steps: usize) -> crate::Result<Option<visattn_host::gpu::profile::StepProfile>> {
    let mut token = last_greedy(model, run)?;
    let mut profiles = Vec::new();
    for _ in 0..steps {
        let (next, p) = model.step_profiled(run, token)?;
        let Some(p) = p else {
            return Ok(None);
        };
        token = next;
        profiles.push(p);
    }
    profiles.sort_by(|a, b| a.total.total_cmp(&b.total));
    Ok(profiles.get(steps / 2).copied())
}

/// llama.cpp's `llama-bench` on the same GGUF file: (label, prefill tok/s, decode tok/s) of its
/// CPU build (this machine's threads) and of its Vulkan build on the same adapter, each where
/// tools/build_llama_cpp.sh / build_llama_cpp_vulkan.sh left it (VISATTN_LLAMA_CPP_DIR), or
/// why not.
fn llama_cpp(path: &std::path::Path, prompt: usize, steps: usize, repeats: usize) -> Vec<Result<(String, f64, f64), String>> {
    let dir = std::env::var_os("VISATTN_LLAMA_CPP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/visattn/llama.cpp-0.3.36"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    [
        ("build", "CPU", "tools/build_llama_cpp.sh"),
        ("build-vulkan", "Vulkan", "tools/build_llama_cpp_vulkan.sh"),
    ]
    .into_iter()
    .map(|(build, what, script)| {
        let bin = dir.join(build).join("bin/llama-bench");
        if !bin.exists() {
            return Err(format!("llama.cpp {what}: no {} (run {script})", bin.display()));
        }
        let mut cmd = std::process::Command::new(&bin);
        cmd.arg("-m").arg(path).args(["-p", &prompt.to_string(), "-n", &steps.to_string()]);
        cmd.args(["-r", &repeats.to_string(), "-o", "json"]);
        if what == "CPU" {
            cmd.args(["-t", &threads.to_string(), "-ngl", "0"]);
        } else {
            // llama.cpp skips CPU-type Vulkan devices (lavapipe) unless named.
            cmd.env("GGML_VK_VISIBLE_DEVICES", "0").args(["-ngl", "99"]);
        }
        let out = cmd.output().map_err(|e| format!("llama.cpp {what}: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("llama.cpp {what} failed: {}", err.lines().last().unwrap_or("")));
        }
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("llama.cpp {what}: its JSON: {e}"))?;
        // Without a Vulkan device in use llama.cpp falls back to its CPU code and still says
        // "Vulkan" in `backends`; `gpu_info` names the device it ran on.
        let device = rows
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["gpu_info"].as_str())
            .unwrap_or("");
        if what == "Vulkan" && device.is_empty() {
            return Err("llama.cpp Vulkan found no Vulkan device (GGML_VK_VISIBLE_DEVICES=0 was set)".to_string());
        }
        let rate = |prefill: bool| {
            rows.as_array()
                .into_iter()
                .flatten()
                .find(|r| (r["n_prompt"].as_u64().unwrap_or(0) > 0) == prefill && (r["n_gen"].as_u64().unwrap_or(0) > 0) != prefill)
                .and_then(|r| r["avg_ts"].as_f64())
                .unwrap_or(f64::NAN)
        };
        let label = if what == "CPU" {
            format!("llama.cpp CPU, {threads} threads")
        } else {
            format!("llama.cpp Vulkan, {device}")
        };
        Ok((label, rate(true), rate(false)))
    })
    .collect()
}

/// The torch anchor's JSON, or why there is none.
fn torch(spec: serde_json::Value) -> crate::Result<serde_json::Value> {
    let python = std::env::var("VISATTN_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench_llava_torch.py");
    let has = std::process::Command::new(&python)
        .args(["-c", "import torch, transformers"])
        .output();
    if !has.map(|o| o.status.success()).unwrap_or(false) {
        return Err(format!("{python} has no torch and transformers (set VISATTN_PYTHON)").into());
    }
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(spec.to_string())
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("tools/bench_llava_torch.py failed: {}", err.lines().last().unwrap_or("")).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).map_err(|e| format!("torch bench output: {e}").into())
}

pub fn run(args: &crate::Args) -> crate::Result<()> {
    let g = visattn::util::gpu_with(visattn_host::gpu::FEATURES, None).map_err(|e| e.to_string())?;
    let (steps, repeats) = (args.bench_steps, args.repeats);
    let shape = args.bench.as_deref().unwrap_or("tiny");
    let (model, ids, image, var, what, torch_spec) = match shape {
        "tiny" => {
            let dir = args
                .model
                .clone()
                .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava"));
            let text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| format!("{}: {e}", dir.display()))?;
            let cfg = LlavaConfig::parse(&text)?;
            let weights = visattn_host::weights::Weights::open(&dir)?;
            let ids = visattn_host::prompt::Prompter::open(&dir, &cfg)?.input_ids(&args.prompt)?;
            let picture = args.image.clone().unwrap_or_else(|| dir.join("picture.png"));
            let (_, _, pixels) = visattn_host::image::Preprocess::from_dir(&dir)?.pixel_values(&visattn_host::image::load(&picture)?)?;
            let format = WeightFormat::choose(&args.dtype, weights.stored_dtype()?, &g.device)?;
            let model = GpuModel::load(&g, &cfg, &weights, format, g.ctx.max_binding(), |_, _| {})?;
            let image = model.image_features(&pixels)?;
            let var = crate::generate::var_config(args, &cfg)?;
            let what = format!("{} ({} layers), its prompt of {} tokens", dir.display(), cfg.text.layers, ids.len());
            let spec = serde_json::json!({ "model": dir, "prompt": ids.len() });
            (model, ids, Some(image), var, what, spec)
        }
        "gguf" => {
            let path = args
                .model
                .clone()
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")))
                .ok_or("--bench gguf needs --model FILE.gguf")?;
            let file = visattn_host::gguf::GgufFile::open(&path)?;
            let cfg = LlavaConfig::text_only(visattn_host::gguf::model::text_config(&file)?);
            let tok = crate::generate::gguf_tokenizer(&path, &file, false)?;
            let ids = crate::generate::gguf_prompt(args, &file, &tok, &cfg)?;
            let format = crate::generate::gguf_format(args, &g.device)?;
            let model = GpuModel::load_gguf(&g, &cfg, &file, format, g.ctx.max_binding(), |_, _| {})?;
            let var = crate::generate::var_config(args, &cfg)?;
            let what = format!(
                "{} ({} layers), a text prompt of {} tokens",
                path.display(),
                cfg.text.layers,
                ids.len()
            );
            let spec = serde_json::json!({ "gguf": path, "ids": ids, "prompt": ids.len() });
            (model, ids, None, var, what, spec)
        }
        "llama-7b" => {
            let cfg = llama_7b(args.bench_layers);
            let (t, n_img) = (args.bench_prompt, args.bench_image);
            if n_img + 36 > t {
                return Err(format!("--bench-prompt {t} has no room for 35 system tokens, {n_img} image tokens and a question").into());
            }
            let format = match args.dtype.as_str() {
                "auto" => WeightFormat::choose("f16", visattn::dump::Dtype::F16, &g.device)?,
                other => WeightFormat::choose(other, visattn::dump::Dtype::F16, &g.device)?,
            };
            eprintln!(
                "making {} layers of random LLaMA-7B weights on {} as {}",
                cfg.text.layers,
                g.info.name,
                format.name()
            );
            let model = GpuModel::random(&g, &cfg, format, g.ctx.max_binding(), 7)?;
            // A prompt as LLaVA's: system text, the image's tokens, the question.
            let ids: Vec<u32> = (0..t)
                .map(|i| {
                    if (35..35 + n_img).contains(&i) {
                        cfg.image_token
                    } else {
                        ((i * 7919 + 13) % 31999 + 1) as u32
                    }
                })
                .collect();
            let mut feats: Vec<f32> = (0..n_img * cfg.text.hidden)
                .map(|i| ((i * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            for j in (10..n_img).step_by(37) {
                feats[j * cfg.text.hidden + 2533] = 150.0;
            }
            let buf = visattn_host::gpu::linear::upload(&g.ctx, &g.queue, "image features", &feats).map_err(|e| e.to_string())?;
            let var = visattn::VarConfig::preset("llava-1.5-7b").map_err(|e| e.to_string())?;
            var.validate_for(cfg.text.hidden, cfg.text.layers).map_err(|e| e.to_string())?;
            let what = format!(
                "LLaMA-7B-shaped, {} of 32 layers, random weights; prompt {t} tokens ({n_img} image)",
                cfg.text.layers
            );
            let t = &cfg.text;
            let spec = serde_json::json!({
                "hidden": t.hidden, "intermediate": t.intermediate, "layers": t.layers, "heads": t.heads,
                "kv_heads": t.kv_heads, "vocab": t.vocab, "prompt": ids.len(),
            });
            (model, ids, Some((buf, n_img)), var, what, spec)
        }
        other => return Err(format!("--bench {other}: expected tiny, llama-7b or gguf").into()),
    };
    let mut model = model;
    let staged = crate::generate::stage(args, &mut model)?;
    let format = model.format();
    outln!(
        "llava bench on {} ({:?}), weights {}: {what}; {steps} decode steps, median of {repeats}",
        g.info.name,
        g.info.backend,
        format.name()
    )?;
    for f in model.formats() {
        outln!(
            "  {:<16} {:>4} matrices {:>9.1} MB, {:.2} bits a weight",
            f.format.name(),
            f.matrices,
            f.bytes as f64 / 1e6,
            f.bits_per_weight()
        )?;
    }
    outln!("  {staged}")?;
    // VAR off and on alternate, run by run: a CPU adapter's speed drifts by more than VAR's
    // cost over a bench (other work on the machine), and each pair's ratio sees the same drift.
    let modes = [("off", VarMode::Off), ("on", VarMode::On(var.clone()))];
    for (_, mode) in &modes {
        // The first run builds pipelines and allocates: not timed.
        time_once(&model, &ids, image.as_ref(), mode, 1)?;
    }
    let mut runs = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for r in 0..repeats {
        for ((name, mode), (pre, dec)) in modes.iter().zip(&mut runs) {
            let (p, d) = time_once(&model, &ids, image.as_ref(), mode, steps)?;
            eprintln!("  VAR {name}, run {}: prefill {p:.3} s, {steps} decode steps {d:.3} s", r + 1);
            pre.push(p);
            dec.push(d);
        }
    }
    // VAR's cost two ways: the fastest run of each (the machine's other work only adds time,
    // so the fastest runs are the least disturbed), and the median of the alternating pairs'
    // ratios.
    let cost = |off: &[f64], on: &[f64]| {
        let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        (
            fastest(on) / fastest(off) - 1.0,
            median(on.iter().zip(off).map(|(a, b)| a / b).collect()) - 1.0,
        )
    };
    let (prefill_cost, decode_cost) = (cost(&runs[0].0, &runs[1].0), cost(&runs[0].1, &runs[1].1));
    let rows: Vec<(&str, f64, f64)> = modes
        .iter()
        .zip(runs)
        .map(|((name, _), (pre, dec))| (*name, median(pre), median(dec)))
        .collect();
    let off = rows[0];
    let tps = |n: usize, s: f64| n as f64 / s.max(1e-12);
    outln!("{:<36} | {:>13} | {:>12}", "", "prefill tok/s", "decode tok/s")?;
    for (name, p, d) in &rows {
        outln!(
            "{:<36} | {:>13.1} | {:>12.2}",
            format!("visattn, VAR {name}"),
            tps(ids.len(), *p),
            tps(steps, *d)
        )?;
    }
    outln!(
        "VAR's cost: prefill {:+.1}%, decode {:+.1}% (fastest run on / fastest off - 1; the median of the {repeats} alternating pairs' on / off - 1: {:+.1}%, {:+.1}%)",
        prefill_cost.0 * 100.0,
        decode_cost.0 * 100.0,
        prefill_cost.1 * 100.0,
        decode_cost.1 * 100.0
    )?;
    if args.llama_cpp {
        let path = args
            .model
            .as_deref()
            .filter(|_| shape == "gguf")
            .ok_or("--llama-cpp needs --bench gguf")?;
        for row in llama_cpp(path, ids.len(), steps, repeats) {
            match row {
                Ok((label, p, d)) => outln!("{label:<36} | {p:>13.1} | {d:>12.2}")?,
                Err(why) => outln!("{why}")?,
            }
        }
    }
    // The step's token from the prompt's last logits, on the device and here; the same prefill
    // then decodes the steps the device's clock times below.
    let vocab = model.cfg.text.vocab;
    let profiled = repeats.max(3);
    let mut run = model.prefill(&ids, image.as_ref(), &VarMode::Off, ids.len() + profiled + 1, false, false)?;
    let [greedy, sampled, whole, here] = time_picks(&model, &run.logits[run.logits.len() - vocab..], repeats.max(5))?;
    outln!(
        "picking a step's token from the prompt's {vocab} last logits, temperature 0.8: on the device (8 bytes read back) greedy {greedy:.2} ms, top-p 0.9 {sampled:.2} ms, top-p 1 {whole:.2} ms; the logits read back and picked here (top-p 0.9) {here:.2} ms"
    )?;
    // A decode step reads every weight once: its floor is their bytes over the read bandwidth.
    let weight_bytes = model.decode_weight_bytes();
    let read = bandwidth::read_rates(model.context(), model.queue(), weight_bytes, repeats.max(3))?;
    let step = off.2 / steps as f64;
    let t = &model.cfg.text;
    let kv = (t.layers * 2 * t.kv_heads * t.head_dim * 4 * ids.len()) as f64;
    let rate = weight_bytes as f64 / step;
    outln!(
        "decode reads {:.1} MB of weights a step (and {:.2} MB of KV cache at the prompt's length): {:.2} GB/s of weights, {:.3} of the best read baseline on this adapter (textures {:.2} GB/s, storage {:.2} GB/s, over {:.0} MB)",
        weight_bytes as f64 / 1e6,
        kv / 1e6,
        rate / 1e9,
        rate / read.best(),
        read.texture / 1e9,
        read.storage / 1e9,
        read.bytes as f64 / 1e6
    )?;
    // How much of the step is its matmuls: every linear layer at one token, alone, one submit.
    let mv = model.time_matmuls(1, repeats.max(3))?;
    outln!(
        "  its matmuls alone (every linear layer at one token, one submit): {:.1} ms of the step's {:.1} ms, {:.2} GB/s of weights ({:.3} of the read); the rest is attention, norms, RoPE, copies and the dispatches' fixed costs",
        mv.seconds * 1e3,
        step * 1e3,
        weight_bytes as f64 / mv.seconds / 1e9,
        weight_bytes as f64 / mv.seconds / read.best()
    )?;
    // Where a step's time goes, on the device's clock.
    if let Some(p) = profile_step(&model, &mut run, profiled)? {
        outln!(
            "  a step on the device's clock (timestamps around its passes, the median of {} steps): embedding {:.2} ms, q/k/v and RoPE {:.2}, attention {:.2}, output projection, MLP and norms {:.2}, LM head and the pick {:.2}, between passes (their changes: the timed step runs a pass a part, the untimed one pass in all) {:.2}; {:.2} ms first to last",
            profiled,
            p.embed * 1e3,
            p.attention_in * 1e3,
            p.attention * 1e3,
            p.after * 1e3,
            p.head * 1e3,
            p.between * 1e3,
            p.total * 1e3
        )?;
    }
    // The floor: the texture read plus the FMAs a texel's weights need, nothing else; a prefill
    // tile of T tokens reads a texel once for T x its weights' FMAs (1 token: a decode step).
    let mut tiles = Vec::new();
    for tokens in [1usize, 2, 4, 8, 16] {
        if let Some(fmas) = bandwidth::fmas_per_texel(format, tokens) {
            let rate = bandwidth::floor_rate(model.context(), model.queue(), read.bytes, fmas, repeats.max(3))?;
            tiles.push((tokens, fmas, rate));
        }
    }
    if let Some(&(1, fmas, floor)) = tiles.first() {
        outln!(
            "  the floor of a decode step through textures ({fmas} FMAs a texel of {}, x in registers, no decoding, the read's order): {:.2} GB/s, {:.3} of the best read{}",
            format.name(),
            floor / 1e9,
            floor / read.best(),
            if floor < 0.7 * read.best() {
                format!(
                    ": its FMAs alone take {:.2} of the read's time, so no kernel that reads these weights through textures reaches 0.7 of the read here",
                    read.best() / floor - 1.0
                )
            } else {
                String::new()
            }
        )?;
    }
    if let visattn_host::gpu::matrix::Staging::Texture(tiling) = model.staging() {
        // Memory or arithmetic? The same kernel over a matrix that stays in the caches.
        let (kernel, read) = bandwidth::resident_rates(model.context(), model.queue(), format, tiling)?;
        outln!(
            "  the decode kernel ({}) over a cache-resident matrix: {:.2} GB/s, the texture read of as many bytes in as many dispatches {:.2} GB/s: with memory out of the way it runs at {:.3} of the read, its own arithmetic (decoding, FMAs) the rest",
            format.name(),
            kernel / 1e9,
            read / 1e9,
            kernel / read
        )?;
    }
    // Prefill is matmul-bound: the language model's matmuls alone at the prompt's length.
    let mm = model.time_matmuls(ids.len(), repeats)?;
    let peak = bandwidth::fma_peak(model.context(), model.queue())?;
    outln!(
        "prefill matmuls ({} tokens, {} shapes, {:.1} GFLOP): {:.2} s, {:.2} GFLOPS; the adapter's FMA peak {:.1} GFLOPS (no memory reads)",
        ids.len(),
        mm.shapes.len(),
        mm.flops / 1e9,
        mm.seconds,
        mm.gflops(),
        peak / 1e9
    )?;
    let by_shape: Vec<String> = mm
        .shapes
        .iter()
        .zip(&mm.shape_gflops)
        .map(|((m, k, c), g)| format!("{m} x {k} ({c}) {g:.1}"))
        .collect();
    outln!(
        "  by shape (rows x columns (matrices), GFLOPS of one alone): {}",
        by_shape.join(", ")
    )?;
    // The prefill tiles' floors in flop/s: bytes / s x FMAs a texel / 16 bytes a texel x 2
    // flops an FMA.
    let tile_flops: Vec<(usize, u32, f64)> = tiles.iter().map(|&(t, f, rate)| (t, f, rate * f as f64 / 8.0)).collect();
    let best_floor = tile_flops.iter().map(|t| t.2).fold(0.0, f64::max);
    if !tile_flops.is_empty() {
        let list: Vec<String> = tile_flops
            .iter()
            .map(|(t, f, g)| format!("{t} ({f} FMAs a texel) {:.1}", g / 1e9))
            .collect();
        outln!(
            "  the floor of a prefill tile through textures (the texture read, the tile's FMAs a texel, x in registers, 8 sums), GFLOPS by tokens a tile: {}",
            list.join(", ")
        )?;
    }
    if shape == "llama-7b" && t.layers < 32 {
        // LLaMA-7B's 32 layers at this run's rates: per layer, then the whole model.
        let n = t.layers as f64;
        let head_bytes = model.lm_head_bytes() as f64;
        let layer_bytes = (weight_bytes as f64 - head_bytes) / n;
        let head_flops = 2.0 * (t.vocab * t.hidden) as f64;
        let layer_flops = (mm.flops / ids.len() as f64 - head_flops) / n;
        outln!(
            "per layer: {:.1} MB of weights, {:.2} GFLOP a token; LLaMA-7B's 32 layers at these rates: decode {:.2} tokens/s ({:.0} MB a step at {:.2} GB/s), prefill matmuls {:.2} tokens/s (at {:.2} GFLOPS)",
            layer_bytes / 1e6,
            layer_flops / 1e9,
            rate / (32.0 * layer_bytes + head_bytes),
            (32.0 * layer_bytes + head_bytes) / 1e6,
            rate / 1e9,
            mm.gflops() * 1e9 / (32.0 * layer_flops + head_flops),
            mm.gflops()
        )?;
    }
    if !args.torch {
        outln!("torch: not run (--torch runs HF transformers on this CPU in the same run)")?;
        return Ok(());
    }
    let mut spec = torch_spec;
    spec["decode"] = steps.into();
    spec["repeats"] = repeats.into();
    // HF dequantizes a GGUF file to f32; a folder runs in the precision of its weights here.
    spec["dtype"] = if format == WeightFormat::F32 || shape == "gguf" {
        "float32"
    } else {
        "float16"
    }
    .into();
    match torch(spec) {
        Ok(t) => {
            let (tp, td) = (
                t["prefill_s"].as_f64().unwrap_or(f64::NAN),
                t["decode_s"].as_f64().unwrap_or(f64::NAN),
            );
            let label = format!(
                "torch {} CPU, {} threads, {}",
                t["torch"].as_str().unwrap_or("?"),
                t["threads"],
                t["dtype"].as_str().unwrap_or("?")
            );
            outln!("{:<36} | {:>13.1} | {:>12.2}", label, tps(ids.len(), tp), tps(steps, td))?;
            outln!(
                "visattn VAR off / torch: prefill {:.2}x, decode {:.2}x (tokens/s ratios; > 1 is faster than torch)",
                tp / off.1,
                td / off.2
            )?;
        }
        Err(why) => outln!("torch: skipped: {why}")?,
    }
    let shapes: Vec<[usize; 3]> = mm.shapes.iter().map(|&(m, k, c)| [m, k, c]).collect();
    match torch(serde_json::json!({ "matmuls": shapes, "tokens": mm.tokens, "repeats": repeats })) {
        Ok(t) => {
            let gflops = t["gflops"].as_f64().unwrap_or(f64::NAN);
            outln!(
                "torch {} f32 matmuls at the same shapes ({} threads): {:.2} GFLOPS; visattn / torch {:.3} (the adapter's FMA peak / torch {:.3}, the best prefill floor / torch {:.3})",
                t["torch"].as_str().unwrap_or("?"),
                t["threads"],
                gflops,
                mm.gflops() / gflops,
                peak / 1e9 / gflops,
                best_floor / 1e9 / gflops
            )?;
        }
        Err(why) => outln!("torch matmuls: skipped: {why}")?,
    }
    Ok(())
}
