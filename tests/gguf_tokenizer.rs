//! The tokenizer built from a GGUF file's metadata (visattn_host::gguf::tokenizer) against HF
//! transformers' for the same file (tools/record_smollm2_tokens.py ->
//! tests/data/smollm2/tokens.json): SmolLM2-135M-Instruct's byte-level BPE on 40 strings
//! (spaces, digits, unicode, code, chat markup, control tokens) and its chat-templated prompt,
//! id for id. Needs the model file, which .ci/run downloads and names in VISATTN_SMOLLM2_GGUF;
//! elsewhere the test says it skipped.

use std::path::{Path, PathBuf};

use visattn_host::gguf::GgufFile;

fn smollm2() -> Option<PathBuf> {
    let path = std::env::var_os("VISATTN_SMOLLM2_GGUF").map(PathBuf::from).filter(|p| p.is_file());
    if path.is_none() {
        eprintln!("SKIPPED: VISATTN_SMOLLM2_GGUF names no SmolLM2-135M-Instruct.Q4_1.gguf (.ci/run downloads it)");
    }
    path
}

fn recorded() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn smollm2_tokenizer_equals_hf() {
    let Some(path) = smollm2() else { return };
    let file = GgufFile::open(&path).unwrap();
    let tok = visattn_host::gguf::tokenizer::from_gguf(&file).unwrap();
    let want = recorded();
    let strings = want["strings"].as_array().unwrap();
    assert!(strings.len() >= 30);
    for s in strings {
        let text = s["text"].as_str().unwrap();
        let got = tok.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(got, ids(&s["ids"]), "{text:?}");
        // Byte-level BPE decodes what it encoded (control tokens kept).
        assert_eq!(tok.decode(&got, false).unwrap(), text, "decode of {text:?}");
    }
    let chat = &want["chat"];
    let got = tok.encode(chat["text"].as_str().unwrap(), true).unwrap().get_ids().to_vec();
    assert_eq!(got, ids(&chat["ids"]), "the chat-templated prompt");
}

/// A GGUF whose tokenizer this host does not build is refused by name.
#[test]
fn an_unknown_tokenizer_model_is_refused() {
    let Some(path) = smollm2() else { return };
    let _ = path;
    // Built from a small file: tokenizer.ggml.model = "rwkv".
    let dir = std::env::temp_dir().join(format!("visattn-gguf-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("rwkv.gguf");
    std::fs::write(
        &p,
        tiny_gguf(&[("tokenizer.ggml.model", "rwkv"), ("tokenizer.ggml.pre", "default")]),
    )
    .unwrap();
    let err = visattn_host::gguf::tokenizer::from_gguf(&GgufFile::open(&p).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("rwkv"), "{err}");
    std::fs::write(&p, tiny_gguf(&[("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.pre", "qwen2")])).unwrap();
    let err = visattn_host::gguf::tokenizer::from_gguf(&GgufFile::open(&p).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("qwen2"), "{err}");
}

/// A GGUF v3 file of string metadata and no tensors.
fn tiny_gguf(kv: &[(&str, &str)]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend((kv.len() as u64).to_le_bytes());
    let s = |b: &mut Vec<u8>, x: &str| {
        b.extend((x.len() as u64).to_le_bytes());
        b.extend(x.as_bytes());
    };
    for (k, v) in kv {
        s(&mut b, k);
        b.extend(8u32.to_le_bytes()); // STRING
        s(&mut b, v);
    }
    b
}
