//! A real trained model from its GGUF file through the host's blocks: SmolLM2-135M-Instruct
//! (LLaMA architecture, 30 layers, Q4_1 / Q8_0 weights dequantized to f32 on load) against HF
//! transformers' f32 model of the same file (tools/record_smollm2_logits.py ->
//! tests/data/smollm2/logits.safetensors): the last prompt position's logits within 1e-3 of the
//! largest, HF's greedy answer to "What is the capital of France?", and `discover` naming its
//! massive-activation dimension 507 from the captured hidden states. Needs the model file,
//! which .ci/run downloads and names in VISATTN_SMOLLM2_GGUF; elsewhere the test says it skipped.

mod support;

use std::path::Path;

use visattn_host::config::LlavaConfig;
use visattn_host::gguf::GgufFile;
use visattn_host::gpu::model::{GpuModel, VarMode};

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap() as u32
}

#[test]
fn smollm2_from_its_gguf_answers_like_hf() {
    let Some(path) = support::smollm2_gguf("smollm2_from_its_gguf_answers_like_hf") else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let cfg = LlavaConfig::text_only(visattn_host::gguf::model::text_config(&file).unwrap());
    assert_eq!(
        (cfg.text.layers, cfg.text.hidden, cfg.text.heads, cfg.text.kv_heads),
        (30, 576, 9, 3)
    );
    let expected =
        visattn::dump::TensorFile::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2/logits.safetensors")).unwrap();
    let ids: Vec<u32> = expected.i64("input_ids").unwrap().1.iter().map(|&i| i as u32).collect();
    let want = expected.f32("last_logits").unwrap().data;
    let greedy: Vec<u32> = expected.i64("greedy").unwrap().1.iter().map(|&i| i as u32).collect();

    let g = support::gpu::gpu();
    let model = GpuModel::load_gguf(&g, &cfg, &file, None, g.ctx.max_binding(), |_, _| {}).unwrap();
    let steps = greedy.len();
    // With every layer's input hidden states captured: discover's ranking names SmolLM2's
    // massive-activation dimension, 507 (phi about 20-23 on the first token, sqrt(576) = 24).
    let mut run = model
        .prefill(&ids, None, &VarMode::Off, ids.len() + steps + 1, false, true)
        .unwrap();
    let d = cfg.text.hidden;
    let stats: Vec<_> = run.captures.iter().map(|c| visattn::discover::layer_dims(&c.hidden, d)).collect();
    let found = visattn::discover::rank(&stats, &|l| Ok(run.captures[l].hidden.clone()), ids.len()).unwrap();
    assert_eq!(
        found.sink_dims.first(),
        Some(&507),
        "discover on SmolLM2's hidden states: {:?}",
        found.sink_dims
    );
    assert!(
        found.carriers.iter().any(|&(t, _)| t == 0),
        "the first token carries it: {:?}",
        found.carriers
    );
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
    support::close::assert_close("SmolLM2 last logits", &run.logits, &want, |_| 1e-3 * scale);
    let mut answer = vec![argmax(&run.logits)];
    while answer.len() < steps && !cfg.text.eos.contains(answer.last().unwrap()) {
        let logits = model.step(&mut run, *answer.last().unwrap()).unwrap();
        answer.push(argmax(&logits));
    }
    assert_eq!(
        answer,
        greedy[..answer.len()],
        "HF's greedy answer: {}",
        expected.metadata()["answer"]
    );
    assert!(cfg.text.eos.contains(answer.last().unwrap()), "the answer ends where HF's does");
}

/// The command line with a GGUF file: a picture or an HF-folder-only mode is refused with one
/// line (a language model file takes no picture without its mmproj), and --raw is for GGUF
/// files only. Fast: nothing is loaded onto the GPU.
#[test]
fn the_command_line_refuses_what_a_gguf_language_model_cannot_do() {
    let Some(path) = support::smollm2_gguf("the_command_line_refuses_what_a_gguf_language_model_cannot_do") else {
        return;
    };
    let llava = |args: &[&str]| {
        std::process::Command::new(support::example("llava"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let model = path.to_str().unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava");
    let picture = tiny.join("picture.png");
    for (args, needle) in [
        (vec!["--model", model, "--image", picture.to_str().unwrap()], "mmproj"),
        (vec!["--model", model, "--tokens"], "--tokens"),
        (
            vec!["--model", tiny.to_str().unwrap(), "--image", picture.to_str().unwrap(), "--raw"],
            "--raw",
        ),
    ] {
        let out = llava(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// A model file holding a tensor of a type the kernels do not read (llama.cpp's IQ formats: the
/// tiny Q8_0 conversion of tests/data/tiny-llava-gguf with one tensor's type rewritten to
/// IQ4_NL, whose blocks are smaller, so the file stays well-formed) is refused at load with one
/// line naming the tensor's type and what the host reads, never a panic; `--bench gguf` without
/// a GGUF file is refused the same way. Needs no model download.
#[test]
fn a_tensor_type_the_kernels_do_not_read_is_refused_by_name() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava-gguf/lm-q8_0.gguf");
    let mut bytes = std::fs::read(&source).unwrap();
    let name = b"blk.0.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * dims;
    assert_eq!(u32::from_le_bytes(bytes[ty..ty + 4].try_into().unwrap()), 8, "Q8_0 before");
    bytes[ty..ty + 4].copy_from_slice(&20u32.to_le_bytes()); // IQ4_NL
    let path = std::env::temp_dir().join(format!("visattn-iq4-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new(support::example("llava"))
        .args(["--model", path.to_str().unwrap(), "--prompt", "hi", "--raw", "--max-tokens", "1"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains("IQ4_NL") && error[0].contains("Q4_K") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let bench = std::process::Command::new(support::example("llava"))
        .args(["--bench", "gguf", "--model", "tests/data/tiny-llava"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bench.stderr);
    assert_eq!(bench.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--bench gguf needs --model FILE.gguf"), "{stderr}");
}

/// The tiny LLaVA's language model as llama.cpp converts it (tests/data/tiny-llava-gguf) in a
/// fresh folder, `general.name` rewritten in place ("Tiny Llama" -> "Tiny Llava", same length).
fn tiny_gguf_named(tag: &str, name: &[u8; 10]) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava-gguf/lm-f32.gguf");
    let mut bytes = std::fs::read(&source).unwrap();
    let at = bytes
        .windows(10)
        .position(|w| w == b"Tiny Llama")
        .expect("the converter's general.name");
    bytes[at..at + 10].copy_from_slice(name);
    let dir = std::env::temp_dir().join(format!("visattn-gguf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lm.gguf");
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// Issue "Real weights: GGUF files": a LLaVA-1.5 language model file without a chat template
/// (llama.cpp's conversions carry none) takes LLaVA-1.5's own, `USER: {prompt} ASSISTANT:`
/// without the picture; another model without one asks for --raw; a `tokenizer.json` beside the
/// file overrides the metadata's tokenizer (here one that lowercases: other ids).
#[test]
fn llava_files_take_llava_s_template_and_a_tokenizer_json_beside_overrides() {
    // The prompt's ids a successful --json run reports.
    let input_ids = |out: &std::process::Output| -> Vec<u32> {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    let run = |path: &Path| {
        std::process::Command::new(support::example("llava"))
            .args(["--model", path.to_str().unwrap(), "--prompt", "What is it?", "--var", "off"])
            .args(["--max-tokens", "1", "--json"])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava");
    let hf = visattn_host::tokenizers::Tokenizer::from_file(tiny.join("tokenizer.json")).unwrap();
    let want = hf.encode("USER: What is it? ASSISTANT:", true).unwrap().get_ids().to_vec();

    let llava = tiny_gguf_named("llava", b"Tiny Llava");
    let out = run(&llava);
    let ids = input_ids(&out);
    assert_eq!(ids, want, "LLaVA-1.5's template through the file's own tokenizer");

    let other = tiny_gguf_named("llama", b"Tiny Llama");
    let out = run(&other);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no tokenizer.chat_template") && stderr.contains("--raw"),
        "{stderr}"
    );

    let mut lower: serde_json::Value = serde_json::from_slice(&std::fs::read(tiny.join("tokenizer.json")).unwrap()).unwrap();
    let norms = lower["normalizer"]["normalizers"].as_array_mut().unwrap();
    norms.insert(0, serde_json::json!({ "type": "Lowercase" }));
    std::fs::write(llava.with_file_name("tokenizer.json"), lower.to_string()).unwrap();
    let lowered = visattn_host::tokenizers::Tokenizer::from_file(llava.with_file_name("tokenizer.json")).unwrap();
    let want_lower = lowered.encode("USER: What is it? ASSISTANT:", true).unwrap().get_ids().to_vec();
    assert_ne!(want_lower, want, "the override must tokenize differently to show");
    let out = run(&llava);
    let ids = input_ids(&out);
    assert_eq!(ids, want_lower, "the tokenizer.json beside the file");
    for p in [llava, other] {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
