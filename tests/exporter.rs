//! tools/export_hf.py end to end on a tiny randomly initialised LLaMA built in the test (no
//! download): export, read back through the dump reader, run `apply`. Needs torch and
//! transformers; where they are missing the test says so and passes without running.

mod support;

use std::process::Command;

fn python_has_torch() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import torch, transformers"])
        .output()
        .map_err(|e| format!("no python3: {e}"))?;
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

#[test]
fn exporter_round_trip_on_a_tiny_llama() {
    if let Err(why) = python_has_torch() {
        eprintln!("skipped: the exporter test needs torch and transformers in python3 ({why})");
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
         transformers.LlamaForCausalLM(cfg).save_pretrained({model:?})\n\
         tok = transformers.PreTrainedTokenizerFast(tokenizer_object=__import__('tokenizers').Tokenizer(\n\
             __import__('tokenizers').models.WordLevel({{**{{chr(97 + i): i for i in range(26)}}, '[UNK]': 26}}, unk_token='[UNK]')))\n\
         tok.backend_tokenizer.pre_tokenizer = __import__('tokenizers').pre_tokenizers.Whitespace()\n\
         tok.save_pretrained({model:?})\n",
        model = model.to_str().unwrap()
    );
    let out = Command::new("python3").args(["-c", &make]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dump = dir.join("dump.safetensors");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/export_hf.py");
    let out = Command::new("python3")
        .args([
            script.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "a b c d e f g h i j k l m n o p",
        ])
        .args([
            "--image-start",
            "2",
            "--image-len",
            "6",
            "--dtype",
            "f32",
            "--output",
            dump.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = visattn::dump::Dump::open(&dump).unwrap();
    assert_eq!((d.layers, d.attn.heads, d.attn.keys, d.hidden), (4, 4, 16, Some(64)));
    assert_eq!(d.metadata()["image_start"], "2");
    let result = dir.join("var.safetensors");
    let out = Command::new(support::example("visattn"))
        .args([
            "apply",
            "--input",
            dump.to_str().unwrap(),
            "--output",
            result.to_str().unwrap(),
            "--sink-dims",
            "0",
            "--tau-rel",
            "0.3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(visattn::dump::TensorFile::open(&result).unwrap().contains("selected.3"));
}
