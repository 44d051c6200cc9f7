//! The tokenizer built from a GGUF file's metadata (visattn_host::gguf::tokenizer) against HF
//! transformers' for the same file, id for id:
//! - `gpt2`: SmolLM2-135M-Instruct's byte-level BPE (tools/record_smollm2_tokens.py ->
//!   tests/data/smollm2/tokens.json) on 40 strings (spaces, digits, unicode, code, chat markup,
//!   control tokens) and its chat-templated prompt. Needs the model file, which .ci/run downloads
//!   and names in VISATTN_SMOLLM2_GGUF; elsewhere those tests say they skipped.
//! - `llama`: the tiny LLaVA's language model converted by llama.cpp's convert_hf_to_gguf.py
//!   (tools/make_tiny_llava_gguf.py -> tests/data/tiny-llava-gguf/): a SentencePiece vocabulary
//!   whose merges follow from its scores, byte fallback, control tokens, on 34 strings and the
//!   prompt, and HF's decodes of them. Committed, so it always runs.

mod support;

use std::path::{Path, PathBuf};

use visattn_host::gguf::GgufFile;
use visattn_host::gguf::tokenizer::from_gguf;

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
    let err = tokenizer_error(
        "rwkv",
        &[
            ("tokenizer.ggml.model", Kv::Str("rwkv")),
            ("tokenizer.ggml.pre", Kv::Str("default")),
        ],
    );
    assert!(err.contains("rwkv"), "{err}");
    let err = tokenizer_error(
        "qwen2",
        &[("tokenizer.ggml.model", Kv::Str("gpt2")), ("tokenizer.ggml.pre", Kv::Str("qwen2"))],
    );
    assert!(err.contains("qwen2"), "{err}");
}

/// A metadata value of a hand-made GGUF file.
enum Kv<'a> {
    Str(&'a str),
    Strs(&'a [&'a str]),
    F32s(&'a [f32]),
    I32s(&'a [i32]),
    U32(u32),
    Bool(bool),
}

/// A GGUF v3 file of metadata and no tensors.
fn tiny_gguf(kv: &[(&str, Kv)]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend((kv.len() as u64).to_le_bytes());
    let s = |b: &mut Vec<u8>, x: &str| {
        b.extend((x.len() as u64).to_le_bytes());
        b.extend(x.as_bytes());
    };
    let array = |b: &mut Vec<u8>, elem: u32, n: usize| {
        b.extend(9u32.to_le_bytes()); // ARRAY
        b.extend(elem.to_le_bytes());
        b.extend((n as u64).to_le_bytes());
    };
    for (k, v) in kv {
        s(&mut b, k);
        match v {
            Kv::Str(x) => {
                b.extend(8u32.to_le_bytes()); // STRING
                s(&mut b, x);
            }
            Kv::Strs(x) => {
                array(&mut b, 8, x.len());
                x.iter().for_each(|x| s(&mut b, x));
            }
            Kv::F32s(x) => {
                array(&mut b, 6, x.len()); // FLOAT32
                x.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
            Kv::I32s(x) => {
                array(&mut b, 5, x.len()); // INT32
                x.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
            Kv::U32(x) => {
                b.extend(4u32.to_le_bytes()); // UINT32
                b.extend(x.to_le_bytes());
            }
            Kv::Bool(x) => {
                b.extend(7u32.to_le_bytes()); // BOOL
                b.push(*x as u8);
            }
        }
    }
    b
}

/// `kv` written to a file of its own (`name`, unique in this process) and opened.
fn open_tiny(name: &str, kv: &[(&str, Kv)]) -> GgufFile {
    let dir = std::env::temp_dir().join(format!("visattn-gguf-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.gguf"));
    std::fs::write(&p, tiny_gguf(kv)).unwrap();
    GgufFile::open(&p).unwrap()
}

/// The error of building the tokenizer of `kv`.
fn tokenizer_error(name: &str, kv: &[(&str, Kv)]) -> String {
    match from_gguf(&open_tiny(name, kv)) {
        Ok(_) => panic!("{name}: the tokenizer was built"),
        Err(e) => e.to_string(),
    }
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

fn tiny_llava_gguf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava-gguf").join(name)
}

/// The `llama` tokenizer of the tiny LLaVA's converted language model equals the one HF
/// transformers builds from the same file: the ids (BOS added, as the file asks) of 34 strings
/// chosen to cross every part of it (metaspace and leading, repeated and trailing spaces; bytes
/// for what the 402-token vocabulary lacks: digits, accents, CJK, Cyrillic, emoji, tabs and
/// newlines; <s>, </s>, <unk>, <image> and <pad> matched whole anywhere, a byte token's name
/// and a literal `▁` not), the decodes with and without the special tokens, and the prompt's ids.
/// Both files carry the same vocabulary, so the q8_0 file's tokenizer must give the same.
#[test]
fn tiny_llava_llama_tokenizer_equals_hf() {
    let expected = visattn::dump::TensorFile::open(tiny_llava_gguf("expected.safetensors")).unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&expected.metadata()["tokens"]).unwrap();
    let strings = recorded.as_array().unwrap();
    assert!(strings.len() >= 30);
    let prompt = &expected.metadata()["prompt"];
    let prompt_ids: Vec<u32> = expected.i64("prompt_ids").unwrap().1.iter().map(|&i| i as u32).collect();
    for name in ["lm-f32.gguf", "lm-q8_0.gguf"] {
        let file = GgufFile::open(tiny_llava_gguf(name)).unwrap();
        assert_eq!(file.metadata().get_str("tokenizer.ggml.model").unwrap(), "llama");
        let tok = from_gguf(&file).unwrap();
        for s in strings {
            let text = s["text"].as_str().unwrap();
            let got = tok.encode(text, true).unwrap().get_ids().to_vec();
            assert_eq!(got, ids(&s["ids"]), "{name}: {text:?}");
            assert_eq!(
                tok.decode(&got, false).unwrap(),
                s["decoded"].as_str().unwrap(),
                "{name}: decode of {text:?}"
            );
            assert_eq!(
                tok.decode(&got, true).unwrap(),
                s["decoded_skip"].as_str().unwrap(),
                "{name}: decode of {text:?} without the special tokens"
            );
        }
        assert_eq!(
            tok.encode(prompt.as_str(), true).unwrap().get_ids(),
            prompt_ids.as_slice(),
            "{name}: the prompt"
        );
    }
}

/// A `llama` vocabulary small enough to work out by hand: which of two merges applies first is
/// the scores' to say, higher first (ties go to the longer left part), BOS and EOS go where the
/// flags say, and a file whose scores cannot be read as merges is refused with one clear error.
#[test]
fn llama_merges_follow_the_scores() {
    //                0        1      2       3      4    5    6     7     8
    let tokens = ["<unk>", "<s>", "</s>", "\u{2581}", "a", "b", "\u{2581}a", "ab", "<0x0A>"];
    let types = [2, 3, 3, 1, 1, 1, 1, 1, 6];
    let build = |name: &str, scores: &[f32], extra: Vec<(&str, Kv)>| {
        let mut kv = vec![
            ("tokenizer.ggml.model", Kv::Str("llama")),
            ("tokenizer.ggml.tokens", Kv::Strs(&tokens)),
            ("tokenizer.ggml.scores", Kv::F32s(scores)),
            ("tokenizer.ggml.token_type", Kv::I32s(&types)),
            ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
            ("tokenizer.ggml.eos_token_id", Kv::U32(2)),
        ];
        kv.extend(extra);
        from_gguf(&open_tiny(name, &kv)).unwrap()
    };
    let ids = |tok: &visattn_host::tokenizers::Tokenizer, text: &str| tok.encode(text, true).unwrap().get_ids().to_vec();
    // "ab" is "\u{2581}ab": (\u{2581}, a) and (a, b) compete for the a.
    let ab_first = build("ab-first", &[0.0, 0.0, 0.0, -3.0, -4.0, -5.0, -2.0, -1.0, 0.0], vec![]);
    assert_eq!(ids(&ab_first, "ab"), [1, 3, 7]);
    let space_a_first = build("space-a-first", &[0.0, 0.0, 0.0, -3.0, -4.0, -5.0, -1.0, -2.0, 0.0], vec![]);
    assert_eq!(ids(&space_a_first, "ab"), [1, 6, 5]);
    // Equal scores, and both merges join two 1-character parts: the vocabulary's order decides,
    // \u{2581}a (6) before ab (7).
    let tied = build("tied", &[0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0, -1.0, 0.0], vec![]);
    assert_eq!(ids(&tied, "ab"), [1, 6, 5]);
    // A newline has no token but its byte's; <s> in the text is the control token; the decoder
    // gives the text back.
    assert_eq!(ids(&ab_first, "ab\n<s>"), [1, 3, 7, 8, 1]);
    assert_eq!(ab_first.decode(&ids(&ab_first, "ab\nab"), true).unwrap(), "ab\nab");
    // Equal scores between tokens: the merge with the longer left part first, then the one with
    // the longer right part (HF's sort key), whatever the vocabulary's order says.
    let ties = |name: &str, tokens: &[&str], scores: &[f32]| {
        from_gguf(&open_tiny(
            name,
            &[
                ("tokenizer.ggml.model", Kv::Str("llama")),
                ("tokenizer.ggml.tokens", Kv::Strs(tokens)),
                ("tokenizer.ggml.scores", Kv::F32s(scores)),
                ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
            ],
        ))
        .unwrap()
    };
    let base = ["<unk>", "<s>", "</s>", "\u{2581}", "a", "b", "c"];
    let scores = [0.0, 0.0, 0.0, -9.0, -9.0, -9.0, -9.0, -1.0, -2.0, -2.0];
    // \u{2581}a b c: (\u{2581}a, b) before (b, c), though bc comes first in the vocabulary.
    let longer_left = ties("longer-left", &[&base[..], &["\u{2581}a", "bc", "\u{2581}ab"]].concat(), &scores);
    assert_eq!(ids(&longer_left, "abc"), [1, 9, 6]);
    // \u{2581} a bc: (a, bc) before (\u{2581}, a), though \u{2581}a comes first.
    let longer_right = ties("longer-right", &[&base[..], &["bc", "\u{2581}a", "abc"]].concat(), &scores);
    assert_eq!(ids(&longer_right, "abc"), [1, 3, 9]);

    let flags = build(
        "flags",
        &[0.0, 0.0, 0.0, -3.0, -4.0, -5.0, -2.0, -1.0, 0.0],
        vec![
            ("tokenizer.ggml.add_bos_token", Kv::Bool(false)),
            ("tokenizer.ggml.add_eos_token", Kv::Bool(true)),
        ],
    );
    assert_eq!(ids(&flags, "ab"), [3, 7, 2]);

    let base = |scores: &'static [f32]| {
        vec![
            ("tokenizer.ggml.model", Kv::Str("llama")),
            ("tokenizer.ggml.tokens", Kv::Strs(&tokens)),
            ("tokenizer.ggml.scores", Kv::F32s(scores)),
        ]
    };
    let err = tokenizer_error("short-scores", &base(&[0.0; 8]));
    assert!(err.contains("scores") && err.contains("8 entries for 9 tokens"), "{err}");
    let err = tokenizer_error("nan-score", &base(&[0.0, 0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0]));
    assert!(err.contains("finite"), "{err}");
    let mut kv = base(&[0.0; 9]);
    kv.push(("tokenizer.ggml.bos_token_id", Kv::U32(9)));
    let err = tokenizer_error("bos-outside", &kv);
    assert!(err.contains("bos_token_id = 9"), "{err}");
    let err = tokenizer_error("no-scores", &base(&[0.0; 9])[..2]);
    assert!(err.contains("tokenizer.ggml.scores"), "{err}");
}
