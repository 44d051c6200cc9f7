//! tools/export_hf.py end to end on a tiny randomly initialised LLaMA built in the test (no
//! download): export, read back through the dump reader, run `apply`. Needs torch and
//! transformers; where they are missing the test says so and passes without running.

mod support;

use std::process::Command;

/// The Python that runs the exporter: `VISATTN_PYTHON` (CI's cached torch venv), else python3.
fn python() -> String {
    std::env::var("VISATTN_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_has_torch() -> Result<(), String> {
    let out = Command::new(python())
        .args(["-c", "import torch, transformers"])
        .output()
        .map_err(|e| format!("no {}: {e}", python()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("import failed")
            .to_string())
    }
}

/// The exporter's preset naming on the configs of real checkpoints (values as their
/// config.json files give them), without torch: a preset's D_sink belongs to one set of trained
/// weights, so a 4096-wide LLaMA-3 must not be tagged LLaVA-1.5-7B, and a config the rules do not
/// pin down gets no preset.
#[test]
fn exporter_names_presets_only_for_the_checkpoints_they_belong_to() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/export_hf.py");
    let probe = format!(
        r#"
import importlib.util
from types import SimpleNamespace as C
spec = importlib.util.spec_from_file_location("export_hf", {script:?})
e = importlib.util.module_from_spec(spec); spec.loader.exec_module(e)
def llama(**kw):
    base = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, vocab_size=32000, rope_theta=10000.0,
                max_position_embeddings=4096, rope_scaling=None, _name_or_path="")
    base.update(kw); return C(**base)
cases = {{
    "llava-hf/llava-1.5-7b-hf": C(model_type="llava", _name_or_path="llava-hf/llava-1.5-7b-hf",
        text_config=llama(vocab_size=32064, _name_or_path="lmsys/vicuna-7b-v1.5")),
    "llava-hf/llava-1.5-13b-hf": C(model_type="llava", _name_or_path="llava-hf/llava-1.5-13b-hf",
        text_config=llama(hidden_size=5120, num_hidden_layers=40, vocab_size=32064)),
    "meta-llama/Llama-2-7b-hf": llama(_name_or_path="meta-llama/Llama-2-7b-hf"),
    "meta-llama/Meta-Llama-3-8B": llama(vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
        _name_or_path="meta-llama/Meta-Llama-3-8B"),
    "meta-llama/Llama-3.1-8B (local copy)": llama(vocab_size=128256, rope_theta=500000.0, max_position_embeddings=131072,
        rope_scaling={{"rope_type": "llama3", "factor": 8.0}}, _name_or_path="/models/unnamed"),
    "transformers 5 rope_parameters": llama(vocab_size=128256, rope_theta=None, rope_parameters={{"rope_type": "default", "rope_theta": 500000.0}}),
    "huggyllama/llama-7b (LLaMA-1, 2048 positions)": llama(max_position_embeddings=2048),
    "codellama/CodeLlama-7b-hf": llama(vocab_size=32016, rope_theta=1000000.0, max_position_embeddings=16384),
    "LLaMA-2-7B-32K (linear RoPE scaling)": llama(rope_scaling={{"type": "linear", "factor": 8.0}}),
    "a llama-3 name on a LLaMA-2 config": llama(_name_or_path="someone/llama-3-8b-finetune"),
    "mistralai/Mistral-7B-v0.1": C(model_type="mistral", hidden_size=4096, num_hidden_layers=32, vocab_size=32000,
        rope_theta=10000.0, _name_or_path="mistralai/Mistral-7B-v0.1"),
    "mistralai/Mixtral-8x7B-v0.1": C(model_type="mixtral", hidden_size=4096, num_hidden_layers=32, vocab_size=32000,
        rope_theta=1000000.0, num_local_experts=8, _name_or_path="mistralai/Mixtral-8x7B-v0.1"),
    "Qwen/Qwen2-VL-7B-Instruct": C(model_type="qwen2_vl", _name_or_path="Qwen/Qwen2-VL-7B-Instruct",
        text_config=C(model_type="qwen2_vl_text", hidden_size=3584, num_hidden_layers=28, vocab_size=152064,
            rope_theta=1000000.0, rope_scaling={{"type": "mrope"}})),
    "Qwen/Qwen2.5-VL-7B-Instruct": C(model_type="qwen2_5_vl", _name_or_path="Qwen/Qwen2.5-VL-7B-Instruct",
        text_config=C(model_type="qwen2_5_vl_text", hidden_size=3584, num_hidden_layers=28, vocab_size=152064,
            rope_theta=1000000.0)),
    "a tiny random llama": llama(hidden_size=64, num_hidden_layers=4, vocab_size=256),
}}
for name, config in cases.items():
    print(f"{{name}} => {{e.identify_preset(config)}}")
"#,
        script = script.to_str().unwrap()
    );
    let out = Command::new("python3")
        .args(["-c", &probe])
        .output()
        .expect("python3 runs tools/export_hf.py; install python3 to run the tests");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = String::from_utf8(out.stdout).unwrap();
    let want = [
        ("llava-hf/llava-1.5-7b-hf", "llava-1.5-7b"),
        ("llava-hf/llava-1.5-13b-hf", "llava-1.5-13b"),
        ("meta-llama/Llama-2-7b-hf", "llava-1.5-7b"),
        ("meta-llama/Meta-Llama-3-8B", "llama-3-8b"),
        ("meta-llama/Llama-3.1-8B (local copy)", "llama-3-8b"),
        ("transformers 5 rope_parameters", "llama-3-8b"),
        ("huggyllama/llama-7b (LLaMA-1, 2048 positions)", "None"),
        ("codellama/CodeLlama-7b-hf", "None"),
        ("LLaMA-2-7B-32K (linear RoPE scaling)", "None"),
        ("a llama-3 name on a LLaMA-2 config", "None"),
        ("mistralai/Mistral-7B-v0.1", "mistral-7b"),
        ("mistralai/Mixtral-8x7B-v0.1", "mixtral-8x7b"),
        ("Qwen/Qwen2-VL-7B-Instruct", "qwen2-vl-7b"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl-7b"),
        ("a tiny random llama", "None"),
    ];
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), want.len(), "{got}");
    for (line, (name, preset)) in lines.iter().zip(want) {
        assert_eq!(*line, format!("{name} => {preset}"));
        if preset != "None" {
            visattn::preset(preset).expect("the exporter names only presets the library knows");
        }
    }
}

/// apply's outputs on an exported dump against the CPU reference on the same (upcast) values.
fn check_apply_against_reference(dump: &std::path::Path, result: &std::path::Path, cfg: &visattn::VarConfig) -> (usize, usize) {
    let d = visattn::dump::Dump::open(dump).unwrap();
    let (spans, visual) = d.image(None).unwrap();
    assert_eq!(spans, vec![visattn::ImageSpan::new(2, 6)]);
    let out = visattn::dump::TensorFile::open(result).unwrap();
    let (mut sinks, mut moved_rows) = (0, 0);
    for l in 0..d.layers {
        let original = d.attention(l).unwrap();
        let mut want = original.clone();
        let hidden = d.layer_hidden(cfg, l).unwrap();
        let flags = visattn::reference::apply_layer(
            cfg,
            cfg.role(l, d.layers),
            &visual,
            hidden.as_deref().map(|h| (h, d.hidden.unwrap())),
            &mut want,
            d.attn,
        )
        .unwrap();
        let got = out.f32(&format!("attentions.{l}")).unwrap().data;
        support::close::assert_close(&format!("attentions.{l}"), &got, &want, |_| 1e-5);
        let (_, got_sinks) = out.u8(&format!("sinks.{l}")).unwrap();
        let (_, got_selected) = out.u8(&format!("selected.{l}")).unwrap();
        assert_eq!(got_sinks.iter().map(|&v| v != 0).collect::<Vec<_>>(), flags.sinks, "sinks.{l}");
        assert_eq!(
            got_selected.iter().map(|&v| v != 0).collect::<Vec<_>>(),
            flags.selected,
            "selected.{l}"
        );
        sinks += flags.sinks.iter().filter(|&&s| s).count();
        moved_rows += want
            .chunks(d.attn.keys)
            .zip(original.chunks(d.attn.keys))
            .filter(|(a, b)| a != b)
            .count();
    }
    (sinks, moved_rows)
}

/// Export a tiny random LLaMA whose embedding plants a massive activation in dimension 0 of
/// one image token (the residual stream carries it through every layer, as trained models'
/// sinks are carried), in f32 and in f16, and hold `apply` on each dump to the CPU reference.
/// Skips where torch is missing, except where `VISATTN_REQUIRE_TORCH=1` (CI) makes that a failure.
#[test]
fn exporter_round_trip_on_a_tiny_llama() {
    if let Err(why) = python_has_torch() {
        assert!(
            std::env::var("VISATTN_REQUIRE_TORCH").as_deref() != Ok("1"),
            "VISATTN_REQUIRE_TORCH=1 but {} has no torch and transformers ({why})",
            python()
        );
        eprintln!("skipped: the exporter test needs torch and transformers in {} ({why})", python());
        return;
    }
    let dir = std::env::temp_dir().join(format!("visattn-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("tiny-llama");
    let make = format!(
        "import transformers, torch\n\
         torch.manual_seed(0)\n\
         cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4,\n\
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)\n\
         m = transformers.LlamaForCausalLM(cfg)\n\
         m.model.embed_tokens.weight.data[3, 0] = 40.0\n\
         m.save_pretrained({model:?})\n\
         tok = transformers.PreTrainedTokenizerFast(tokenizer_object=__import__('tokenizers').Tokenizer(\n\
             __import__('tokenizers').models.WordLevel({{**{{chr(97 + i): i for i in range(26)}}, '[UNK]': 26}}, unk_token='[UNK]')))\n\
         tok.backend_tokenizer.pre_tokenizer = __import__('tokenizers').pre_tokenizers.Whitespace()\n\
         tok.save_pretrained({model:?})\n",
        model = model.to_str().unwrap()
    );
    let out = Command::new(python()).args(["-c", &make]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/export_hf.py");
    // tau = 0.5 sqrt(64) = 4: the planted token's phi is near 8, a random token's rarely past 3.
    let cfg = visattn::VarConfig {
        sink_dims: vec![0],
        tau: 4.0,
        ..visattn::VarConfig::paper()
    };
    for dtype in ["f32", "f16"] {
        let dump = dir.join(format!("dump-{dtype}.safetensors"));
        let out = Command::new(python())
            .args([script.to_str().unwrap(), "--model", model.to_str().unwrap()])
            .args([
                "--prompt",
                "a b c d e f g h i j k l m n o p",
                "--image-start",
                "2",
                "--image-len",
                "6",
            ])
            .args(["--dtype", dtype, "--output", dump.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // A tiny random LLaMA is no checkpoint a preset belongs to: no `model` key, and a note.
        assert!(String::from_utf8_lossy(&out.stderr).contains("no visattn preset matches"));
        let d = visattn::dump::Dump::open(&dump).unwrap();
        assert_eq!((d.layers, d.attn.heads, d.attn.keys, d.hidden), (4, 4, 16, Some(64)));
        assert_eq!(d.metadata()["image_start"], "2");
        assert!(!d.metadata().contains_key("model"));
        assert_eq!(d.file.f32("attentions.0").unwrap().data.len(), 4 * 16 * 16);
        let result = dir.join(format!("var-{dtype}.safetensors"));
        let out = Command::new(support::example("visattn"))
            .args(["apply", "--input", dump.to_str().unwrap(), "--output", result.to_str().unwrap()])
            .args(["--sink-dims", "0", "--tau", "4"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let (sinks, moved) = check_apply_against_reference(&dump, &result, &cfg);
        // Layers 2 and 3 detect; the planted token is a visual sink in both, and VAR moves mass.
        eprintln!("{dtype}: {sinks} sinks over the layers, {moved} rows changed by VAR, all as the reference");
        assert!(
            sinks >= 2 && moved > 0,
            "{dtype}: {sinks} sinks, {moved} rows changed: the test would compare nothing"
        );
    }
}
