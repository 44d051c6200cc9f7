//! The LLaVA host (examples/llava) on the tiny model of tests/data/tiny-llava
//! (tools/make_tiny_llava.py): the prompt's input ids equal HF's, every shard loads, and bad
//! folders get one clear error each. The forward pass's tests come with it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn llava(args: &[&str]) -> std::process::Output {
    Command::new(support::example("llava")).args(args).output().unwrap()
}

/// A copy of the tiny folder to break.
fn copy_of_tiny(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("visattn-llava-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(support::tiny_llava()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

/// A copy of the tiny folder whose config.json has `from` replaced by `to`.
fn tiny_with_config(name: &str, from: &str, to: &str) -> PathBuf {
    let dir = copy_of_tiny(name);
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(cfg.contains(from), "{from} is not in config.json");
    std::fs::write(dir.join("config.json"), cfg.replacen(from, to, 1)).unwrap();
    dir
}

/// A copy of the tiny folder whose `file` has `from` replaced by `to`.
fn tiny_with(name: &str, file: &str, from: &str, to: &str) -> PathBuf {
    let dir = copy_of_tiny(name);
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    assert!(text.contains(from), "{from} is not in {file}");
    std::fs::write(dir.join(file), text.replacen(from, to, 1)).unwrap();
    dir
}

/// A copy of the tiny folder with tensor `name` changed by `edit(shape, values)` in its shard.
fn tiny_with_tensor(dir_name: &str, name: &str, edit: impl FnOnce(&mut Vec<usize>, &mut Vec<f32>)) -> PathBuf {
    use visattn::dump::{OutTensor, TensorFile, write_tensors};
    let dir = copy_of_tiny(dir_name);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    let path = dir.join(index["weight_map"][name].as_str().unwrap());
    let src = TensorFile::open(&path).unwrap();
    let mut edit = Some(edit);
    let tensors: Vec<(String, OutTensor)> = src
        .names()
        .iter()
        .map(|n| {
            let t = src.f32(n).unwrap();
            let (mut shape, mut data) = (t.shape, t.data);
            if n == name {
                (edit.take().unwrap())(&mut shape, &mut data);
            }
            (n.clone(), OutTensor::f32(&shape, &data))
        })
        .collect();
    write_tensors(&path, &tensors, src.metadata().clone()).unwrap();
    dir
}

/// `llava(args)` with its address space capped at 2 GiB: a huge allocation fails at once (an
/// abort, exit 134) instead of taking the machine's memory.
fn llava_capped(args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", 2u64 << 20))
        .arg(support::example("llava"))
        .args(args)
        .output()
        .unwrap()
}

fn one_error_line(out: &std::process::Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: exit 1 expected, stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: one error line, got: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{what}: '{needle}' not in: {err}"
    );
}

#[test]
fn input_ids_match_hf() {
    let expected = visattn::dump::TensorFile::open(support::tiny_llava().join("expected.safetensors")).unwrap();
    let prompt = expected.metadata()["prompt"].clone();
    let out = llava(&["--model", support::tiny_llava().to_str().unwrap(), "--prompt", &prompt, "--tokens"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<i64> = v["input_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    let (shape, want) = expected.i64("input_ids").unwrap();
    assert_eq!(shape, vec![want.len()]);
    assert_eq!(got, want, "input ids differ from HF's processor");
    assert_eq!(v["shards"], 5);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(support::tiny_llava().join("model.safetensors.index.json")).unwrap()).unwrap();
    assert_eq!(v["parameters"], index["metadata"]["total_parameters"]);
}

/// HF's CLIP processor (PIL backend) on picture.png: resize of the shortest side with PIL's
/// bicubic, center crop, rescale, normalise. Bit for bit.
#[test]
fn pixel_values_match_hf_bit_for_bit() {
    let expected = visattn::dump::TensorFile::open(support::tiny_llava().join("expected.safetensors")).unwrap();
    let want = expected.f32("pixel_values").unwrap();
    let picture = support::tiny_llava().join("picture.png");
    let out = llava(&[
        "--model",
        support::tiny_llava().to_str().unwrap(),
        "--image",
        picture.to_str().unwrap(),
        "--tokens",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["pixel_values"];
    assert_eq!(
        vec![3, p["height"].as_u64().unwrap() as usize, p["width"].as_u64().unwrap() as usize],
        want.shape
    );
    let got: Vec<f32> = p["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(got.len(), want.data.len());
    assert_same_bits("pixel_values", &got, &want.data);
}

/// The host's CPU reference of the whole model (CLIP tower, projector, LLaMA) against HF's
/// recorded logits of every prompt position, within 1e-4 of the largest logit (measured: 7.5e-7),
/// and the same 12 greedy tokens.
#[test]
fn reference_logits_and_greedy_answer_match_hf() {
    let expected = visattn::dump::TensorFile::open(support::tiny_llava().join("expected.safetensors")).unwrap();
    let want = expected.f32("logits").unwrap();
    let (_, generated) = expected.i64("generated").unwrap();
    let picture = support::tiny_llava().join("picture.png");
    let out = llava(&[
        "--model",
        support::tiny_llava().to_str().unwrap(),
        "--image",
        picture.to_str().unwrap(),
        "--reference",
        "--max-tokens",
        &generated.len().to_string(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<f32> = v["logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    let scale = want.data.iter().fold(0f32, |m, x| m.max(x.abs()));
    support::close::assert_close("reference logits", &got, &want.data, |_| 1e-4 * scale as f64);
    let greedy: Vec<i64> = v["greedy"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(greedy, generated, "greedy tokens differ from HF's generate");
    assert_eq!(v["answer"].as_str().unwrap(), expected.metadata()["answer"]);
}

/// The GPU host's JSON answers for `flags` on the tiny model and its picture.
fn gpu_answers(flags: &[&str]) -> Vec<serde_json::Value> {
    gpu_json(&support::tiny_llava(), flags)["answers"].as_array().unwrap().clone()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

/// `got` equals HF's `want` bit for bit (pixel values): else how many differ and the first.
fn assert_same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let off: Vec<usize> = (0..got.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).collect();
    assert!(
        off.is_empty(),
        "{what}: {} of {} values differ, first at {}: {} vs HF's {}",
        off.len(),
        got.len(),
        off[0],
        got[off[0]],
        want[off[0]]
    );
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f32, |m, x| m.max(x.abs())) as f64
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max)
}

/// f16 weights: every weight rounded to f16 (matrices stored as f16, read by the f16 kernels or
/// as packed u32 pairs; the rest f32 holding f16 values), sums in f32. Against HF's logits of the
/// same f16-rounded weights computed in f32: within 1e-4 of the largest logit, HF's greedy
/// tokens. Against HF's f32 logits: within the f16 rounding budget, taken as what rounding does
/// to HF itself (1.5 x max |HF f32 - HF f16 weights|). A folder saved in f16 (`--dtype auto`)
/// gives bit for bit what f16 from the f32 folder gives.
#[test]
fn f16_weights_match_hf_within_the_rounding_budget() {
    let expected = visattn::dump::TensorFile::open(support::tiny_llava().join("expected.safetensors")).unwrap();
    let (want16, want32) = (
        expected.f32("logits_f16_weights").unwrap().data,
        expected.f32("logits").unwrap().data,
    );
    let (_, generated) = expected.i64("generated_f16_weights").unwrap();
    let scale = max_abs(&want16);
    let budget = 1.5 * max_diff(&want16, &want32);
    assert!(budget > 1e-4 * scale, "the fixture's f16 rounding shows in its logits ({budget:e})");
    let n = generated.len().to_string();
    let mut first: Option<Vec<f32>> = None;
    for dtype in ["f16", "f16-packed"] {
        let out = gpu_json(
            &support::tiny_llava(),
            &["--var", "off", "--logits", "--max-tokens", &n, "--dtype", dtype],
        );
        assert_eq!(out["weights"], if dtype == "f16" { "f16" } else { "f16 (packed u32)" });
        let a = &out["answers"][0];
        let got = floats(&a["logits"]);
        support::close::assert_close(&format!("{dtype} logits"), &got, &want16, |_| 1e-4 * scale);
        assert!(
            max_diff(&got, &want32) <= budget,
            "{dtype}: {:e} from HF's f32 logits",
            max_diff(&got, &want32)
        );
        assert_eq!(ids(&a["tokens"]), generated, "{dtype}: greedy tokens differ from HF's");
        match &first {
            None => first = Some(got),
            Some(f) => assert!(max_diff(f, &got) <= 1e-6 * scale, "f16 and packed kernels disagree"),
        }
    }
    let folder = tiny_in_f16("f16-folder");
    let out = gpu_json(&folder, &["--var", "off", "--logits", "--max-tokens", "1", "--dtype", "auto"]);
    assert!(out["weights"].as_str().unwrap().starts_with("f16"), "{}", out["weights"]);
    let same = gpu_json(
        &support::tiny_llava(),
        &[
            "--var",
            "off",
            "--logits",
            "--max-tokens",
            "1",
            "--dtype",
            out["weights"].as_str().unwrap().split(' ').next().unwrap(),
        ],
    );
    assert_eq!(
        floats(&out["answers"][0]["logits"]),
        floats(&same["answers"][0]["logits"]),
        "an f16 folder"
    );
    let _ = std::fs::remove_dir_all(folder);
}

/// Issue "Real weights: GGUF files": an HF folder quantized on load answers from the command
/// line with VAR off and on, and says what its weights take in which formats: `--dtype q4_k`
/// keeps the language model's 38 matrices in Q5_0 (the embedding, the LM head and each of 6
/// layers' six, gate and up stacked into one; the tiny model's rows of 64 and 160 values
/// are not whole Q4_K super-blocks: llama.cpp's fallback) and the vision tower in f32; the
/// weights line goes to stderr. Its numbers against the CPU reference: tests/host_model.rs.
#[test]
fn a_folder_quantized_on_load_answers_from_the_command_line() {
    let (dim, tau_rel) = support::planted_sinks();
    let (dim, tau) = (dim.to_string(), tau_rel.to_string());
    let flags = [
        "--var",
        "compare",
        "--sink-dims",
        &dim,
        "--tau-rel",
        &tau,
        "--max-tokens",
        "3",
        "--dtype",
        "q4_k",
    ];
    let out = gpu_json(&support::tiny_llava(), &flags);
    let formats = out["formats"].as_array().unwrap();
    let of = |name: &str| formats.iter().find(|f| f["format"] == name).cloned();
    let q5 = of("Q5_0").unwrap_or_else(|| panic!("no Q5_0 matrices: {formats:?}"));
    assert_eq!(q5["matrices"], 2 + 6 * 6, "{formats:?}");
    // The patch embedding, the 2 layers of 3 up to the feature layer (-2), the projector's 2.
    assert_eq!(
        of("f32").unwrap()["matrices"],
        1 + 2 * 6 + 2,
        "the vision tower and projector: {formats:?}"
    );
    // 32 values in 22 bytes: 5.5 bits a weight.
    let lm_values = 2 * 402 * 64 + 6 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 160 * 64);
    assert_eq!(q5["bytes"].as_u64().unwrap(), (lm_values / 32 * 22) as u64, "{formats:?}");
    let answers = out["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2);
    assert!(answers.iter().all(|a| a["tokens"].as_array().is_some_and(|t| !t.is_empty())));
    let (dir, picture) = (support::tiny_llava(), support::tiny_llava().join("picture.png"));
    let mut args = vec!["--model", dir.to_str().unwrap(), "--image", picture.to_str().unwrap()];
    args.extend_from_slice(&flags);
    let text = llava(&args);
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stderr.contains("MB of weights: ") && stderr.contains("Q5_0 38 matrices"),
        "{stderr}"
    );
}

/// Weights split into row chunks (a storage-binding limit of 32 KiB instead of 128 MiB: the
/// tiny model's 402 x 64 embedding and LM head and its 160 x 64 MLP matrices become 2 to 4 chunks
/// each, as LLaMA-7B's embedding and LM head do in f16 under WebGPU's limit; the KV cache is a
/// buffer per layer) give bit for bit the logits and tokens of one chunk each, VAR on.
#[test]
fn weights_over_the_binding_limit_are_split_into_row_chunks() {
    let (dim, tau_rel) = support::planted_sinks();
    let (dim, tau) = (dim.to_string(), tau_rel.to_string());
    for dtype in ["f32", "f16-packed"] {
        let flags = [
            "--var",
            "on",
            "--sink-dims",
            &dim,
            "--tau-rel",
            &tau,
            "--max-tokens",
            "4",
            "--dtype",
            dtype,
            // The storage layout on both sides (the texture layout's chunks are checked by
            // --check-kernels; its sums run in another order, so not bit for bit these).
            "--staging",
            "buffer",
        ];
        let whole = gpu_json(&support::tiny_llava(), &flags);
        let mut small = flags.to_vec();
        small.extend_from_slice(&["--max-binding", "32768"]);
        let split = gpu_json(&support::tiny_llava(), &small);
        assert_eq!(whole["chunked_matrices"], 0);
        assert!(
            split["chunked_matrices"].as_u64().unwrap() >= 2,
            "{dtype}: {}",
            split["chunked_matrices"]
        );
        let (a, b) = (&whole["answers"][0], &split["answers"][0]);
        assert_eq!(floats(&a["next_logits"]), floats(&b["next_logits"]), "{dtype}: chunked logits");
        assert_eq!(a["tokens"], b["tokens"], "{dtype}: chunked tokens");
    }
}

/// A copy of the tiny folder with every shard re-encoded in f16 (as llava-hf's folders are).
fn tiny_in_f16(name: &str) -> PathBuf {
    use visattn::dump::{Dtype, OutTensor, TensorFile, write_tensors};
    let dir = copy_of_tiny(name);
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        if !(file.starts_with("model-") && file.ends_with(".safetensors")) {
            continue;
        }
        let src = TensorFile::open(&path).unwrap();
        let tensors: Vec<(String, OutTensor)> = src
            .names()
            .iter()
            .map(|n| {
                let t = src.f32(n).unwrap();
                let bytes = t.data.iter().flat_map(|&x| visattn::half::f32_to_f16(x).to_le_bytes()).collect();
                (n.clone(), OutTensor::raw(Dtype::F16, &t.shape, bytes))
            })
            .collect();
        write_tensors(&path, &tensors, src.metadata().clone()).unwrap();
    }
    dir
}

/// The GPU host's whole JSON output for `flags` on the folder and the tiny model's picture.
fn gpu_json(dir: &Path, flags: &[&str]) -> serde_json::Value {
    let picture = support::tiny_llava().join("picture.png");
    let mut args = vec!["--model", dir.to_str().unwrap(), "--image", picture.to_str().unwrap(), "--json"];
    args.extend_from_slice(flags);
    let out = llava(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The GPU forward pass (f32 weights; prefill through the fused attention kernel, decode
/// through split-K over the KV cache) against HF's recorded logits of every prompt position,
/// within 1e-4 of the largest logit (measured 1.3e-6), and HF's 12 greedy tokens (11 of them
/// decode steps) and answer.
#[test]
fn gpu_logits_and_greedy_answer_match_hf() {
    let expected = visattn::dump::TensorFile::open(support::tiny_llava().join("expected.safetensors")).unwrap();
    let want = expected.f32("logits").unwrap();
    let (_, generated) = expected.i64("generated").unwrap();
    let a = &gpu_answers(&["--var", "off", "--logits", "--max-tokens", &generated.len().to_string()])[0];
    let scale = want.data.iter().fold(0f32, |m, x| m.max(x.abs()));
    support::close::assert_close("GPU logits", &floats(&a["logits"]), &want.data, |_| 1e-4 * scale as f64);
    let tokens: Vec<i64> = a["tokens"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(tokens, generated, "greedy tokens differ from HF's generate");
    assert_eq!(a["answer"].as_str().unwrap(), expected.metadata()["answer"]);
}

/// VAR inside the forward pass, layer by layer: each layer's fused attention output equals the
/// materialised path on the CPU (softmax of the captured q k^T, visattn::reference's VAR with
/// the sinks of the captured hidden states, times v; f64) within 2e-6 x max|v| (the fused
/// kernel's tolerance, tests/fused_attention.rs). Dim 0 at tau 0.3 sqrt(D) makes one sink in
/// The fixture's planted sink dimension (make_tiny_llava.py: BOS and one or two image patches,
/// with heads that attend to them) at tau 0.5 sqrt(D) makes sinks in layers 2 and 3; layers 0-1
/// are off (var-spec.md's plan), so there it is plain attention. VAR then changes the logits
/// (by more than 1e-4 of the largest), while with a dimension that holds no sink it leaves them
/// as VAR off does (within 1e-5).
#[test]
fn var_in_the_forward_pass_equals_the_reference_layer_by_layer() {
    use visattn::reference;
    let (dim, tau_rel) = support::planted_sinks();
    let dim_s = dim.to_string();
    let tau_s = tau_rel.to_string();
    let flags = ["--sink-dims", &dim_s, "--tau-rel", &tau_s, "--max-tokens", "1", "--logits"];
    let mut args = vec!["--var", "compare", "--capture"];
    args.extend_from_slice(&flags);
    let answers = gpu_answers(&args);
    let (off, on) = (&answers[0], &answers[1]);
    let span = on["image_span"].as_array().unwrap();
    let (start, len) = (span[0].as_u64().unwrap() as usize, span[1].as_u64().unwrap() as usize);
    let layers = on["capture"].as_array().unwrap();
    assert_eq!(layers.len(), 6);
    let tokens = floats(&layers[0]["hidden"]).len() / 64;
    let visual = visattn::VisualTokens::from_spans(&[visattn::ImageSpan::new(start, len)], tokens).unwrap();
    let mut cfg = visattn::VarConfig::paper();
    cfg.sink_dims = vec![dim];
    cfg.tau = tau_rel * 8.0;
    let shape = visattn::FusedShape {
        heads: 4,
        kv_heads: 2,
        queries: tokens,
        keys: tokens,
        head_dim: 16,
    };
    let mut sinks_seen = 0;
    for (l, c) in layers.iter().enumerate() {
        let (hidden, q, k, v, o) = (
            floats(&c["hidden"]),
            floats(&c["q"]),
            floats(&c["k"]),
            floats(&c["v"]),
            floats(&c["o"]),
        );
        let role = cfg.role(l, 6);
        let sinks = if role == visattn::LayerRole::Off {
            vec![false; tokens]
        } else {
            reference::sink_mask(&reference::phi(&hidden, 64, &cfg.sink_dims), cfg.tau)
        };
        let counted = on["layers"][l]["sinks"].as_u64().unwrap() as usize;
        assert_eq!(counted, sinks.iter().filter(|&&s| s).count(), "layer {l}: sinks");
        sinks_seen += counted;
        let (want, _) = reference::attention_var(
            &cfg,
            role,
            &visual,
            &sinks,
            reference::Qkv {
                q: &q,
                k: &k,
                v: &v,
                shape,
                causal: true,
                scale: 0.25,
            },
        )
        .unwrap();
        let vmax = v.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        support::close::assert_close(&format!("layer {l} attention"), &o, &want, |_| 2e-6 * vmax);
    }
    assert!(sinks_seen > 0, "the test needs sinks to mean something");
    let scale = floats(&off["logits"]).iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
    let diff = |a: &serde_json::Value, b: &serde_json::Value| {
        floats(&a["logits"])
            .iter()
            .zip(floats(&b["logits"]))
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max)
    };
    assert!(
        diff(off, on) > 1e-4 * scale,
        "VAR with sinks left the logits as they were ({:e})",
        diff(off, on)
    );
    let none = gpu_answers(&[
        "--var",
        "compare",
        "--sink-dims",
        "5",
        "--tau-rel",
        &tau_s,
        "--max-tokens",
        "1",
        "--logits",
    ]);
    assert_eq!(none[1]["layers"][2]["sinks"], 0);
    assert!(diff(&none[0], &none[1]) <= 1e-5 * scale, "no sinks: VAR must not change the logits");
    assert_eq!(floats(&none[0]["logits"]), floats(&off["logits"]), "VAR off ignores VAR's flags");
}

#[test]
fn bad_folders_get_one_clear_error_each() {
    let missing = copy_of_tiny("shard");
    std::fs::remove_file(missing.join("model-00003-of-00005.safetensors")).unwrap();
    one_error_line(
        &llava(&["--model", missing.to_str().unwrap(), "--tokens"]),
        "missing shard",
        "shard model-00003-of-00005.safetensors is missing",
    );

    let other = tiny_with_config("arch", "\"model_type\": \"llava\"", "\"model_type\": \"qwen2_vl\"");
    one_error_line(
        &llava(&["--model", other.to_str().unwrap(), "--tokens"]),
        "another architecture",
        "model_type 'qwen2_vl'",
    );

    let mismatch = tiny_with_config("tokenizer", "\"image_token_index\": 400", "\"image_token_index\": 7");
    one_error_line(
        &llava(&["--model", mismatch.to_str().unwrap(), "--tokens"]),
        "tokenizer mismatch",
        "a tokenizer of another model",
    );

    let long = "the picture shows a bowl of fruit on a wooden table ".repeat(20);
    one_error_line(
        &llava(&["--model", support::tiny_llava().to_str().unwrap(), "--prompt", &long, "--tokens"]),
        "prompt too long",
        "over the model's context of 128",
    );

    one_error_line(&llava(&["--model", "/nonexistent", "--tokens"]), "no folder", "config.json");

    let junk = std::env::temp_dir().join(format!("visattn-llava-junk-{}.png", std::process::id()));
    std::fs::write(&junk, b"not a picture at all").unwrap();
    one_error_line(
        &llava(&[
            "--model",
            support::tiny_llava().to_str().unwrap(),
            "--image",
            junk.to_str().unwrap(),
            "--tokens",
        ]),
        "undecodable image",
        "cannot decode the picture",
    );
    let _ = std::fs::remove_file(junk);
    for dir in [missing, other, mismatch] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The host's GPU kernels against its CPU reference on odd shapes and random inputs in [-1, 1),
/// outputs pre-filled with NaN (an element never written fails):
/// - linear (1 x 1 x 1 up to 17 x 577 x 33, with and without bias, W in one binding and in row
///   chunks of 101; f32, f16 and packed-f16 weights, the reference multiplying the f16-rounded
///   values): |gpu - cpu| <= 1e-6 x k (f32 sums of k terms against f64; measured 5.8e-8 x k on
///   lavapipe);
/// - rms_norm and layer_norm (rows x dim from 1 x 1 to 70 x 4096, rows of different scales
///   and offsets): |gpu - cpu| <= 1e-6 x (|cpu| + 1) (measured 1.5e-7 and 2.3e-7); the same
///   after the residual add in the same pass (add_rms_norm, add_layer_norm: x + y left in x,
///   the norm of it in out, both within that bound);
/// - add, mul (exact) and quick_gelu, gelu (erf form), silu on lengths 1, 255, 256, 257, 70001
///   of inputs in [-6, 6): the same bound (measured 9.5e-8); glu (SwiGLU over stacked gate
///   and up rows, 1 x 1 to 7 x 10001): the same bound;
/// - rope (head dims 4, 16, 128; positions up to 4095; theta 1e4 and 5e5): the same bound
///   (measured 6.7e-8: the host's table is computed in f64);
/// - swap (first two axes, 1 x 1 x 1 to 63 x 5 x 7) and embed (vocab 1 to 1000, 513 ids; the
///   table whole and in chunks of 301 rows; f32, f16, packed f16; value by value, and 8 at a
///   time where rows are whole groups of 8): exact.
///
/// And every GGML block format the host keeps on the device (BF16, Q8_0, Q4_0, Q4_1, Q5_0,
/// Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), as random blocks (random bytes, random f16 scales and
/// minimums, some subnormal) dequantized inside the kernels:
/// - embed (rows of 1 and 2 blocks, vocab 1 to 1000, chunks of 301 rows; each format's load8,
///   8 values at a time and value by value through load_w, one of its eight): bit for bit the CPU reference's
///   dequantization (gguf::quant, itself bit for bit gguf-py's: tests/gguf_quants.rs);
/// - linear (k of 1 to 3 blocks and 4352, W in one binding and in chunks of 7 rows, with and
///   without bias) against the CPU matmul of the dequantized values: |gpu - cpu| <= 1e-6 x k x
///   max|w|; one row of x (a decode step) with its sums added in workgroup memory and through
///   subgroups (linear_vec_subgroup.wgsl) where the adapter has them; the same matrices staged in textures (linear_texture, x as uniform tiles), in
///   four tilings (rows of W an invocation 1, 2, 4 and 8, past m included; tokens a tile 1,
///   2, 4), and four with x shared through subgroups (linear_shared.wgsl: tiles of 16, 8, 4
///   tokens, 1 to 8 rows; k 4352 in two slices for tiles of 16) where the adapter has
///   subgroups (lavapipe does), for every format (the K-quants a sub-block or two at a time
///   there: texture/q4_k_sub.wgsl).
#[test]
fn host_kernels_match_the_cpu_reference() {
    let out = llava(&["--check-kernels"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = v["cases"].as_array().unwrap();
    // f16 weights where the adapter has SHADER_F16 (lavapipe does), packed u32 pairs always.
    let f16 = v["shader_f16"].as_bool().unwrap();
    // A decode step's buffer matmul (2 shapes of one row of x) again with its sums added
    // through subgroups, where the adapter has them (lavapipe does).
    let sums = if v["subgroups"].as_bool().unwrap() { 2 } else { 0 };
    let blocks = [
        "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
    ];
    let mut expected: Vec<(String, usize)> = [
        ("linear", 9 + sums),
        ("linear_packed", 9 + sums),
        ("linear_f16", if f16 { 9 + sums } else { 0 }),
        // Staged in textures: the shapes whose rows the texture kernel takes (k a multiple
        // of 8, tiles of x on 256-byte offsets), one k (4352) in tiles of 3 rows; each in 8
        // tilings (rows of W an invocation 1, 2, 4, 8; tokens a tile 1, 2, 4, and 16, 8, 4
        // with x shared, 16 x 8 the most sums).
        ("linear_texture", 40),
        ("linear_texture_packed", 40),
        ("linear_texture_f16", if f16 { 40 } else { 0 }),
        ("embed", 7),
        ("embed_packed", 7),
        ("embed_f16", if f16 { 7 } else { 0 }),
        ("rms_norm", 6),
        ("layer_norm", 6),
        ("add_rms_norm", 6),
        ("add_layer_norm", 6),
        ("add", 5),
        ("mul", 5),
        ("quick_gelu", 5),
        ("gelu", 5),
        ("silu", 5),
        ("glu", 5),
        ("rope", 5),
        ("swap", 5),
        ("argmax", 8),
        ("top_p", 27),
        // Stacked matrices in 5 formats, 4 of them staged in textures too; stacking matrices of
        // other columns refused.
        ("linear_stacked", 9),
        ("stack_mismatch", 1),
    ]
    .iter()
    .map(|&(k, n)| (k.to_string(), n))
    .collect();
    for b in blocks {
        // BF16's blocks are single values: the float shapes.
        let (linear, embed) = if b == "bf16" { (9 + sums, 7) } else { (5 + sums, 6) };
        expected.push((format!("linear_{b}"), linear));
        expected.push((format!("linear_texture_{b}"), 40));
        expected.push((format!("embed_{b}"), embed));
    }
    for (kernel, n) in &expected {
        assert_eq!(
            cases.iter().filter(|c| c["kernel"] == kernel.as_str()).count(),
            *n,
            "{kernel} cases"
        );
    }
    let weights = expected
        .iter()
        .filter(|(k, n)| (k.starts_with("linear") || k.starts_with("embed")) && *n > 0)
        .map(|(k, _)| k.as_str());
    for kernel in weights {
        assert!(
            cases.iter().any(|c| c["kernel"] == kernel && c["chunks"].as_u64() > Some(1)),
            "a chunked case of {kernel}"
        );
    }
    // x shared through subgroups (lavapipe has them): a decode and a prefill of several tiles
    // (n 35 in tiles of 16) of every format, and k 4352 in 2 slices of 2176 for tiles of 16
    // tokens (21 of them: a whole tile and 5).
    if v["subgroups"].as_bool().unwrap() {
        let shared = |kernel: &str, n: u64, slices: u64| {
            cases
                .iter()
                .any(|c| c["kernel"] == kernel && c["shared"] == true && c["n"].as_u64() == Some(n) && c["slices"].as_u64() == Some(slices))
        };
        for (kernel, n) in &expected {
            if kernel.starts_with("linear_texture") && *n > 0 {
                assert!(
                    shared(kernel, 1, 1) && shared(kernel, 35, 1) && shared(kernel, 21, 2),
                    "{kernel}: shared x"
                );
            }
        }
    }
    // Each stack joined its 7 chunks (2, 2, 1 rows on 2, 2, 2, 1) into runs of up to 4 rows,
    // a run after one odd row only where that row ends on a word (not so for 18-byte Q4_0
    // blocks and 33 f16).
    for c in cases.iter().filter(|c| c["kernel"] == "linear_stacked") {
        assert_eq!(c["parts"], 7, "{c}");
        let odd = ["Q4_0", "f16 (packed u32)"].contains(&c["format"].as_str().unwrap());
        let rows = if odd { [4, 1, 4, 3] } else { [4, 3, 4, 1] };
        assert_eq!(c["chunk_rows"], serde_json::json!(rows), "{c}");
    }
    for c in cases {
        let err = c["error"].as_f64().expect("a finite error");
        let kernel = c["kernel"].as_str().unwrap();
        let exact = ["add", "mul", "swap", "argmax", "top_p"].contains(&kernel) || kernel.starts_with("embed");
        assert!(err <= if exact { 0.0 } else { 1e-6 }, "{c}");
        if kernel.starts_with("embed") {
            assert_eq!(c["bits_differ"], 0, "{c}");
        }
    }
}

/// Generation flags that cannot work: one clear error each, before any GPU work.
#[test]
fn bad_generation_flags_get_one_clear_error_each() {
    let (dir, picture) = (support::tiny_llava(), support::tiny_llava().join("picture.png"));
    let run = |extra: &[&str]| {
        let mut args = vec!["--model", dir.to_str().unwrap(), "--image", picture.to_str().unwrap()];
        args.extend_from_slice(extra);
        llava(&args)
    };
    one_error_line(&run(&["--var", "on"]), "no sink dims", "--sink-dims");
    one_error_line(&run(&["--var", "on", "--sink-dims", "64"]), "sink dim past D", "64");
    one_error_line(&run(&["--var", "off", "--temperature=-1"]), "negative temperature", "--temperature");
    one_error_line(&run(&["--var", "off", "--top-p", "0"]), "top-p 0", "--top-p");
    one_error_line(&run(&["--var", "sometimes"]), "unknown mode", "sometimes");
    // A cached tiling that names rows the kernel has no variant for.
    one_error_line(
        &run(&["--var", "off", "--staging", "texture:decode=3,prefill=4x4"]),
        "3 rows an invocation",
        "decode=R,prefill=TxR",
    );
    let no_picture = llava(&["--model", dir.to_str().unwrap(), "--var", "off"]);
    one_error_line(&no_picture, "no picture", "--image");
}

/// Issue "No file clobbered, no NaN written, no abort", config.json against the weights: a
/// config of 3 layers over weights of 6 is not a 3-layer model (the tensors it would not use
/// are refused by name), a norm weight longer than hidden_size is refused with both shapes,
/// token ids are range-checked (2^32 + k is not token k; an id past the vocabulary is no id).
#[test]
fn folders_that_disagree_with_their_config_are_refused() {
    let fewer = tiny_with_config("layers", "\"num_hidden_layers\": 6", "\"num_hidden_layers\": 3");
    one_error_line(
        &llava(&["--model", fewer.to_str().unwrap(), "--tokens"]),
        "3 layers over weights of 6",
        "tensor language_model.model.layers.3.input_layernorm.weight is not part of the model",
    );
    let long = tiny_with_tensor("long-norm", "language_model.model.norm.weight", |shape, v| {
        shape[0] += 1;
        v.push(1.0);
    });
    one_error_line(
        &llava(&["--model", long.to_str().unwrap(), "--tokens"]),
        "norm weight longer than hidden_size",
        "tensor language_model.model.norm.weight is [65], config.json implies [64]",
    );
    let mut dirs = vec![fewer, long];
    for (name, from, to, needle) in [
        (
            "eos",
            "\"eos_token_id\": 2",
            "\"eos_token_id\": 4294967298",
            "eos_token_id 4294967298",
        ),
        ("eos-vocab", "\"eos_token_id\": 2", "\"eos_token_id\": 402", "eos_token_id 402"),
        ("eos-list", "\"eos_token_id\": 2", "\"eos_token_id\": [2, -1]", "eos_token_id -1"),
        (
            "image",
            "\"image_token_index\": 400",
            "\"image_token_index\": 4294967696",
            "image_token_index 4294967696",
        ),
    ] {
        let dir = tiny_with_config(name, from, to);
        let out = llava(&["--model", dir.to_str().unwrap(), "--tokens"]);
        one_error_line(&out, name, needle);
        one_error_line(&out, name, "is not a token id of the model's vocabulary of 402");
        dirs.push(dir);
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Issue "No file clobbered, ...": pictures whose conversion to RGB is more than a decode, as
/// HF's processor (PIL backend) makes them, bit for bit (tools/make_llava_pictures.py): an
/// RGBA picture with transparency (composited onto white, not stripped of its alpha), a 16-bit
/// grey one (PIL's I;16, clipped at 255 on its way to RGB, not scaled), a 3 x 400 one whose
/// 28 x 3733 resize is computed in the crop's window only, and a 37 x 120 one whose height
/// shrinks by more than twice its width (Pillow 13 resamples it vertically first).
#[test]
fn converted_pictures_match_hf_bit_for_bit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llava-pictures");
    let expected = visattn::dump::TensorFile::open(dir.join("expected.safetensors")).unwrap();
    for name in ["alpha", "grey16", "thin", "tall"] {
        let want = expected.f32(name).unwrap();
        let (shape, got) = tiny_pixels(&dir.join(format!("{name}.png")), &[]);
        assert_eq!(shape, want.shape, "{name}");
        assert_same_bits(name, &got, &want.data);
    }
}

/// The tiny model's pixel_values of `picture` (`--tokens`, 2 GiB of address space), with
/// `flags`: ([3, height, width], values).
fn tiny_pixels(picture: &Path, flags: &[&str]) -> (Vec<usize>, Vec<f32>) {
    let model = support::tiny_llava();
    let mut args = vec!["--model", model.to_str().unwrap(), "--image", picture.to_str().unwrap(), "--tokens"];
    args.extend_from_slice(flags);
    let out = llava_capped(&args);
    assert!(
        out.status.success(),
        "{}: {}",
        picture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["pixel_values"];
    let side = |k: &str| p[k].as_u64().unwrap() as usize;
    (vec![3, side("height"), side("width")], floats(&p["values"]))
}

/// Issue "See and measure what VAR does", `--pad-square`: the original LLaVA repository's
/// preprocessing (what the VAR paper's numbers used): the picture read as PIL's
/// convert("RGB") (alpha dropped: alpha.png's pixels differ from HF's composite onto white),
/// expand2square with the processor's image_mean as the fill (wide, tall and 3 x 400), then the
/// processor; recorded by tools/make_llava_pictures.py. Bit for bit. A GGUF + mmproj run
/// refuses the flag (llama.cpp pads its own way).
#[test]
fn pad_square_matches_llava_expand2square_bit_for_bit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llava-pictures");
    let expected = visattn::dump::TensorFile::open(dir.join("expected.safetensors")).unwrap();
    for name in ["alpha", "grey16", "thin", "tall"] {
        let want = expected.f32(&format!("{name}_pad_square")).unwrap();
        let (shape, got) = tiny_pixels(&dir.join(format!("{name}.png")), &["--pad-square"]);
        assert_eq!(shape, want.shape, "{name}");
        assert_same_bits(name, &got, &want.data);
        // Not the processor's pixels without the pad.
        assert_ne!(got, expected.f32(name).unwrap().data, "{name}");
    }
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava-gguf");
    let picture = gguf.join("picture28.png");
    let out = llava(&[
        "--model",
        gguf.join("lm-f32.gguf").to_str().unwrap(),
        "--mmproj",
        gguf.join("mmproj-f32.gguf").to_str().unwrap(),
        "--image",
        picture.to_str().unwrap(),
        "--pad-square",
    ]);
    one_error_line(&out, "--pad-square with llama.cpp's files", "pads to a square already");
}

/// Issue "See and measure what VAR does", `--questions`: tests/data/questions/questions.jsonl
/// (pictures relative to the file, POPE's "text" and "question_id", a missing picture, a file
/// that is no picture, an item without a label) with the model loaded once, VAR off and on.
/// The unreadable items are reported and skipped, the run goes on; the unlabelled one is
/// answered, not scored. The tiny model's answers are token salad without "no" or "not", so
/// POPE reads every one as yes: by hand, over the 3 answered items labelled yes / no (yes, no,
/// No), TP 1, FP 2: accuracy 1/3, precision 1/3, recall 1, F1 1/2, yes-ratio 1, both modes.
/// Item 1's answers are what `--var compare` answers to the same picture and question.
#[test]
fn a_question_file_is_answered_with_var_off_and_on_and_scored_as_pope() {
    let (dim, tau_rel) = support::planted_sinks();
    let (dim, tau) = (dim.to_string(), tau_rel.to_string());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/questions/questions.jsonl");
    let var = ["--sink-dims", dim.as_str(), "--tau-rel", tau.as_str(), "--max-tokens", "4"];
    let model = support::tiny_llava();
    let pictures = std::env::temp_dir().join(format!("visattn-questions-png-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pictures);
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--questions",
        file.to_str().unwrap(),
        "--json",
        "--png",
        pictures.to_str().unwrap(),
    ];
    args.extend_from_slice(&var);
    let out = llava(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(
        items.iter().map(|i| i["line"].as_u64().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 5, 6, 7]
    );
    assert_eq!((v["answered"].as_u64(), v["skipped"].as_u64()), (Some(4), Some(2)));
    for (line, why) in [(3, "missing.png"), (6, "cannot decode the picture")] {
        let item = items.iter().find(|i| i["line"] == line).unwrap();
        assert!(item["skipped"].as_str().unwrap().contains(why), "{item}");
        assert!(item.get("off").is_none(), "{item}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("line 6"),
        "the skipped items are reported: {stderr}"
    );
    assert_eq!(items[1]["question_id"], 7);
    assert_eq!(items[1]["question"], "Is there a cat in the image?");
    assert!(items[3]["label"].is_null());
    for item in items.iter().filter(|i| i.get("skipped").is_none()) {
        for mode in ["off", "on"] {
            assert!(!item[mode]["answer"].as_str().unwrap().is_empty(), "{item}");
            assert_eq!(item[mode]["pope"], "yes", "{item}");
        }
    }
    for mode in ["off", "on"] {
        let m = &v["metrics"][mode];
        assert_eq!(
            [
                &m["items"],
                &m["true_positives"],
                &m["false_positives"],
                &m["true_negatives"],
                &m["false_negatives"]
            ],
            [3, 1, 2, 0, 0].map(serde_json::Value::from).each_ref(),
            "{mode}: {m}"
        );
        for (key, want) in [
            ("accuracy", 1.0 / 3.0),
            ("precision", 1.0 / 3.0),
            ("recall", 1.0),
            ("f1", 0.5),
            ("yes_ratio", 1.0),
        ] {
            assert!((m[key].as_f64().unwrap() - want).abs() < 1e-12, "{mode} {key}: {m}");
        }
    }
    assert_eq!(v["flips"], serde_json::json!([]));
    // --png DIR: a picture of where VAR on's answer looked for each answered item, none for the
    // skipped ones.
    for item in items {
        let line = item["line"].as_u64().unwrap();
        let path = pictures.join(format!("line-{line}.png"));
        if item.get("skipped").is_some() {
            assert!(!path.exists() && item.get("png").is_none(), "{item}");
        } else {
            assert_eq!(item["png"].as_str().map(PathBuf::from), Some(path.clone()), "{item}");
            let img = image::open(&path).unwrap().to_rgba8();
            let layout = visattn::heatmap::HeatmapLayout::new(img.width(), img.height());
            let titles = support::pixels::read_line(img.as_raw(), &layout, (img.width() / 2, img.width()), layout.titles_y);
            assert_eq!(titles, "after VAR", "{}", path.display());
        }
    }
    let _ = std::fs::remove_dir_all(&pictures);
    // Item 1 as a single run (gpu_json: the tiny model's picture.png, --json).
    let mut single = vec!["--prompt", "Is there a dog in the image?", "--var", "compare"];
    single.extend_from_slice(&var);
    let one = gpu_json(&support::tiny_llava(), &single);
    for (k, mode) in ["off", "on"].iter().enumerate() {
        assert_eq!(one["answers"][k]["var"], *mode);
        assert_eq!(
            one["answers"][k]["answer"].as_str().unwrap().trim(),
            items[0][mode]["answer"],
            "{mode}"
        );
    }
    // A line that is not a question: one error naming it, before any model is loaded.
    let dir = std::env::temp_dir().join(format!("visattn-questions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"image\": \"a.png\", \"question\": \"Is it?\"}\n{\"image\": \"b.png\"}\n").unwrap();
    one_error_line(
        &llava(&[
            "--model",
            support::tiny_llava().to_str().unwrap(),
            "--questions",
            bad.to_str().unwrap(),
            "--var",
            "off",
        ]),
        "a line without a question",
        "line 2: no \"question\"",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // Both modes always: no sink dims, or --var off, is one clear error.
    for flags in [&["--var", "off"][..], &[]] {
        let mut a = vec!["--model", model.to_str().unwrap(), "--questions", file.to_str().unwrap()];
        a.extend_from_slice(flags);
        one_error_line(&llava(&a), "--questions without VAR's dims", "VAR off and on");
    }
}

/// Issue "No file clobbered, ...": nothing is sized from a declared number before it is
/// checked. A max_position_embeddings of 2^40 sizes nothing (the rotary table and KV cache hold
/// the prompt and its answer: the answer is HF's); a shortest_edge of 200000 and a crop the
/// vision tower cannot take are refused before any picture is read; a 7.8 KB PNG of 1 x 2000000
/// pixels is refused from its header (it took 8 GB). Pictures run with 2 GiB of address space.
#[test]
fn declared_sizes_are_checked_before_anything_is_sized_from_them() {
    let expected = visattn::dump::TensorFile::open(support::tiny_llava().join("expected.safetensors")).unwrap();
    let (_, generated) = expected.i64("generated").unwrap();
    let huge = tiny_with_config(
        "positions",
        "\"max_position_embeddings\": 128",
        "\"max_position_embeddings\": 1099511627776",
    );
    let out = gpu_json(&huge, &["--var", "off", "--max-tokens", "3"]);
    assert_eq!(ids(&out["answers"][0]["tokens"]), generated[..3], "2^40 positions");

    let picture = support::tiny_llava().join("picture.png");
    let tokens =
        |dir: &Path, picture: &Path| llava_capped(&["--model", dir.to_str().unwrap(), "--image", picture.to_str().unwrap(), "--tokens"]);
    let edge = tiny_with(
        "edge",
        "preprocessor_config.json",
        "\"shortest_edge\": 28",
        "\"shortest_edge\": 200000",
    );
    one_error_line(
        &tokens(&edge, &picture),
        "shortest_edge 200000",
        "size 200000 is over this host's 4096",
    );
    let crop = tiny_with(
        "crop",
        "preprocessor_config.json",
        "\"height\": 28,\n    \"width\": 28",
        "\"height\": 20,\n    \"width\": 20",
    );
    one_error_line(
        &tokens(&crop, &picture),
        "a crop the tower cannot take",
        "makes 20x20 pixel values, the vision tower takes 28x28",
    );

    let tall = std::env::temp_dir().join(format!("visattn-llava-tall-{}.png", std::process::id()));
    image::GrayImage::from_fn(1, 2_000_000, |_, y| image::Luma([(y % 251) as u8]))
        .save(&tall)
        .unwrap();
    one_error_line(
        &tokens(&support::tiny_llava(), &tall),
        "1 x 2000000 picture",
        "a 1x2000000 picture is over this host's limits",
    );
    let _ = std::fs::remove_file(tall);
    for dir in [huge, edge, crop] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Issue "No file clobbered, ...": a class embedding shorter than hidden_size panicked in a
/// wgpu copy (exit 101). Every tensor's shape is checked at load, the tensor named.
#[test]
fn a_short_class_embedding_is_refused_at_load() {
    let dir = tiny_with_tensor("cls", "vision_tower.embeddings.class_embedding", |shape, v| {
        shape[0] = 16;
        v.truncate(16);
    });
    let picture = support::tiny_llava().join("picture.png");
    one_error_line(
        &llava(&[
            "--model",
            dir.to_str().unwrap(),
            "--image",
            picture.to_str().unwrap(),
            "--var",
            "off",
        ]),
        "short class embedding",
        "tensor vision_tower.embeddings.class_embedding is [16], config.json implies [32]",
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue "No file clobbered, ...": a NaN in a weight matrix (uploaded as stored, f32 and f16)
/// was reported only as "logit 0 is NaN"; the loader names the tensor and the index.
#[test]
fn a_nan_weight_is_named_at_load() {
    let name = "language_model.model.layers.0.self_attn.q_proj.weight";
    let dir = tiny_with_tensor("nan", name, |_, v| v[70] = f32::NAN);
    let picture = support::tiny_llava().join("picture.png");
    for dtype in ["f32", "f16"] {
        let out = llava(&[
            "--model",
            dir.to_str().unwrap(),
            "--image",
            picture.to_str().unwrap(),
            "--var",
            "off",
            "--dtype",
            dtype,
        ]);
        one_error_line(&out, dtype, &format!("non-finite value NaN in {name} at flat index 70"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue "No file clobbered, ...": an answer cut short by the context (prompt + answer reaching
/// max_position_embeddings) ended like a finished one. It says so: `stop` is "context" in the
/// JSON and a warning line goes to stderr; an answer that reaches --max-tokens says
/// "max_tokens", with no warning.
#[test]
fn an_answer_cut_by_the_context_says_so() {
    let expected = visattn::dump::TensorFile::open(support::tiny_llava().join("expected.safetensors")).unwrap();
    let (_, generated) = expected.i64("generated").unwrap();
    let (_, input) = expected.i64("input_ids").unwrap();
    let context = input.len() + 4;
    let dir = tiny_with_config(
        "context",
        "\"max_position_embeddings\": 128",
        &format!("\"max_position_embeddings\": {context}"),
    );
    let picture = support::tiny_llava().join("picture.png");
    for json in [true, false] {
        let mut args = vec![
            "--model",
            dir.to_str().unwrap(),
            "--image",
            picture.to_str().unwrap(),
            "--var",
            "off",
        ];
        args.extend_from_slice(&["--max-tokens", "12"]);
        if json {
            args.push("--json");
        }
        let out = llava(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let warning: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
        assert_eq!(warning.len(), 1, "one warning: {err}");
        assert!(
            warning[0].contains("stopped after 4 of --max-tokens 12") && warning[0].contains(&format!("context of {context}")),
            "{}",
            warning[0]
        );
        if json {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let a = &v["answers"][0];
            assert_eq!(a["stop"], "context");
            assert_eq!(ids(&a["tokens"]), generated[..4]);
        }
    }
    let full = gpu_json(&support::tiny_llava(), &["--var", "off", "--max-tokens", "4"]);
    assert_eq!(full["answers"][0]["stop"], "max_tokens");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue "See and measure what VAR does": `--png` writes where the first answer token looked,
/// before and after VAR, over the picture: the labels read back glyph by glyph (caption,
/// titles, the scale's top equal to the values --json reports), each patch's colour under the
/// picture's grey at its value on that scale, the planted sink patches colder after VAR; bad
/// uses refused before anything is written.
#[test]
fn png_draws_where_the_answer_looked_before_and_after_var() {
    use support::pixels::{read_line, read_text};
    use visattn::heatmap::{HeatmapLayout, viridis};
    let (dim, tau_rel) = support::planted_sinks();
    let (dim, tau) = (dim.to_string(), tau_rel.to_string());
    let dir = std::env::temp_dir().join(format!("visattn-llava-png-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("answer.png");
    let (model, picture) = (support::tiny_llava(), support::tiny_llava().join("picture.png"));
    let (model, picture, png_s) = (model.to_str().unwrap(), picture.to_str().unwrap(), png.to_str().unwrap());
    let picture_bytes = std::fs::read(picture).unwrap();
    let base = [
        "--model",
        model,
        "--image",
        picture,
        "--sink-dims",
        &dim,
        "--tau-rel",
        &tau,
        "--max-tokens",
        "3",
    ];
    let run = |extra: &[&str]| llava(&[&base[..], extra].concat());
    let out = run(&["--var", "compare", "--png", png_s, "--png-size", "800x440", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["answers"][0].get("heatmap").is_none(), "VAR off draws nothing");
    let heat = &v["answers"][1]["heatmap"];
    assert_eq!(heat["layers"], serde_json::json!([2, 3, 4]), "the layers VAR redistributes in");
    let (before, after) = (floats(&heat["before"]), floats(&heat["after"]));
    let sinks: Vec<bool> = heat["sinks"].as_array().unwrap().iter().map(|s| s.as_bool().unwrap()).collect();
    let grid = heat["grid"].as_u64().unwrap() as usize;
    let top = before.iter().chain(&after).fold(0f32, |m, &x| m.max(x));

    let img = image::open(&png).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (800, 440));
    let px = img.into_raw();
    let layout = HeatmapLayout::new(800, 440);
    let caption = read_text(&px, &layout, layout.caption, 63);
    assert!(
        caption.starts_with("layers 2-4 mean, token 0 '") && caption.ends_with("', selected heads"),
        "{caption}"
    );
    assert_eq!(read_line(&px, &layout, (0, 400), layout.titles_y), "before VAR");
    assert_eq!(read_line(&px, &layout, (400, 800), layout.titles_y), "after VAR");
    let [x0, _, x1, _] = layout.legend;
    let drawn_top: f32 = read_line(&px, &layout, (x1 - (x1 - x0) / 3, x1), layout.ticks_y).parse().unwrap();
    assert!(
        (drawn_top - top).abs() <= 0.01 * top,
        "scale's top written {drawn_top}, values' {top}"
    );
    // Each panel's pixel is 0.4 of the picture's grey and 0.6 of the colormap: the colormap
    // position fitted with the grey free.
    let position = |(x, y): (u32, u32)| -> f32 {
        let at = ((y * 800 + x) * 4) as usize;
        let p: Vec<f32> = px[at..at + 3].iter().map(|&c| c as f32 / 255.0).collect();
        let misfit = |t: f32| {
            let r: Vec<f32> = viridis(t).iter().zip(&p).map(|(c, p)| p - 0.6 * c).collect();
            let grey = r.iter().sum::<f32>() / 3.0;
            r.iter().map(|x| (x - grey).powi(2)).sum::<f32>()
        };
        (0..=1023)
            .map(|i| i as f32 / 1023.0)
            .min_by(|a, b| misfit(*a).total_cmp(&misfit(*b)))
            .unwrap()
    };
    for p in 0..grid * grid {
        for (panel, v) in [(0, before[p]), (1, after[p])] {
            let t = position(layout.patch_center(panel, grid, p / grid, p % grid));
            assert!(
                (t - v / top).abs() < 0.03,
                "panel {panel} patch {p}: colour at {t}, value {}",
                v / top
            );
        }
    }
    let sink_patches: Vec<usize> = (0..grid * grid).filter(|&p| sinks[p]).collect();
    assert!(!sink_patches.is_empty(), "the fixture plants sinks in the picture");
    for &p in &sink_patches {
        assert!(after[p] < before[p], "sink patch {p}: {} -> {}", before[p], after[p]);
        let at = |panel| position(layout.patch_center(panel, grid, p / grid, p % grid));
        assert!(at(1) < at(0), "sink patch {p} drawn colder after VAR");
    }

    // Refused, the file untouched: VAR off, a token past --max-tokens, the picture as the
    // output, a layer or head the model lacks.
    let written = std::fs::read(&png).unwrap();
    for (flags, needle) in [
        (vec!["--var", "off", "--png", png_s], "needs --var on"),
        (vec!["--png", png_s, "--png-token", "3"], "--max-tokens"),
        (vec!["--png", picture], "--image"),
        (vec!["--png", png_s, "--layer", "6"], "--layer 6"),
        (vec!["--png", png_s, "--head", "9"], "--head 9"),
        (vec!["--png", png_s, "--png-size", "20x20"], "WIDTHxHEIGHT"),
        (vec!["--png", png_s, "--tokens"], "cannot be used with"),
    ] {
        let out = run(&flags);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{flags:?}: {err}");
    }
    assert_eq!(std::fs::read(&png).unwrap(), written, "a refused run left the picture as it was");
    assert_eq!(std::fs::read(picture).unwrap(), picture_bytes, "the input picture untouched");
    let _ = std::fs::remove_dir_all(dir);
}
