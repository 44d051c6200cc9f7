//! The tokenizer built from a GGUF file's metadata (visattn_host::gguf::tokenizer) against HF
//! transformers' for the same file (tools/record_smollm2_tokens.py ->
//! tests/data/smollm2/tokens.json): SmolLM2-135M-Instruct's byte-level BPE on 40 strings
//! (spaces, digits, unicode, code, chat markup, control tokens) and its chat-templated prompt,
//! id for id. Needs the model file, which .ci/run downloads and names in VISATTN_SMOLLM2_GGUF;
//! elsewhere the test says it skipped.

mod support;

use std::path::Path;

use visattn_host::gguf::GgufFile;

fn recorded() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn smollm2_tokenizer_equals_hf() {
    let Some(path) = support::smollm2_gguf("smollm2_tokenizer_equals_hf") else {
        return;
    };
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
    let Some(path) = support::smollm2_gguf("an_unknown_tokenizer_model_is_refused") else {
        return;
    };
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

/// The chat template of the file (tokenizer.chat_template) rendered with minijinja as HF's
/// apply_chat_template renders it: the same text, hence the same ids.
#[test]
fn smollm2_chat_template_renders_like_hf() {
    use visattn_host::chat::{ChatTemplate, Message};
    let Some(path) = support::smollm2_gguf("smollm2_chat_template_renders_like_hf") else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let meta = file.metadata();
    let tokens = meta.get_str_array("tokenizer.ggml.tokens").unwrap();
    let token = |key: &str| tokens[meta.get_u32(key).unwrap() as usize].clone();
    let template = ChatTemplate::new(
        meta.get_str("tokenizer.chat_template").unwrap(),
        &token("tokenizer.ggml.bos_token_id"),
        &token("tokenizer.ggml.eos_token_id"),
    )
    .unwrap();
    let want = recorded();
    let chat = &want["chat"];
    let text = template.render(&[Message::user(chat["question"].as_str().unwrap())], true).unwrap();
    assert_eq!(text, chat["text"].as_str().unwrap());
    let tok = visattn_host::gguf::tokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.encode(text.as_str(), true).unwrap().get_ids(), ids(&chat["ids"]).as_slice());
}

/// HF's template conventions: blocks trimmed (trim_blocks, lstrip_blocks) and
/// raise_exception an error naming its message.
#[test]
fn chat_templates_follow_hf_conventions() {
    use visattn_host::chat::{ChatTemplate, Message};
    let t = ChatTemplate::new(
        "{% for m in messages %}\n  {% if m.role == 'user' %}\nU: {{ m.content }}\n  {% endif %}\n{% endfor %}",
        "<s>",
        "</s>",
    )
    .unwrap();
    assert_eq!(t.render(&[Message::user("hi")], false).unwrap(), "U: hi\n");
    let t = ChatTemplate::new("{{ raise_exception('only user turns') }}", "<s>", "</s>").unwrap();
    let err = t.render(&[Message::user("hi")], false).unwrap_err().to_string();
    assert!(err.contains("only user turns"), "{err}");
}
