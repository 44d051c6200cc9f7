//! A GGUF file's tokenizer as a `tokenizers::Tokenizer`, built from its metadata as HF
//! transformers builds it when loading a GGUF file (`AutoTokenizer.from_pretrained(dir,
//! gguf_file=...)`): `tokenizer.ggml.model` names the kind, `tokenizer.ggml.tokens` the
//! vocabulary (id = index), `tokenizer.ggml.merges` the BPE merges, `tokenizer.ggml.token_type`
//! which tokens are control tokens (added as special tokens, never split).
//!
//! `gpt2` (byte-level BPE): the byte-level pre-tokenizer with GPT-2's split regex, no prefix
//! space, the byte-level decoder. `tokenizer.ggml.pre` names llama.cpp's split regex; for the
//! files this host has met (`smollm`, `gpt2`) it is GPT-2's, which is also what HF uses for every
//! `pre`, so a `pre` this host has not checked is refused rather than guessed. `llama`
//! (SentencePiece with scores) is not built yet.

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::GgufFile;
use crate::error::{Error, Result};

/// llama.cpp's token types (`tokenizer.ggml.token_type`): 3 is a control token.
const TOKEN_CONTROL: i32 = 3;

/// The `tokenizer.ggml.pre` values whose split regex is GPT-2's in llama.cpp (llama-vocab.cpp).
const GPT2_SPLIT: &[&str] = &["gpt2", "smollm", "default"];

fn err(what: impl std::fmt::Display) -> Error {
    Error::Tokenizer(what.to_string())
}

/// The tokenizer `file`'s metadata describes.
pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let meta = file.metadata();
    let model = meta.get_str("tokenizer.ggml.model")?;
    match model {
        "gpt2" => gpt2(file),
        other => Err(err(format!(
            "tokenizer.ggml.model = {other}: this host builds gpt2 (byte-level BPE) tokenizers"
        ))),
    }
}

fn gpt2(file: &GgufFile) -> Result<Tokenizer> {
    let meta = file.metadata();
    if meta.contains("tokenizer.ggml.pre") {
        let pre = meta.get_str("tokenizer.ggml.pre")?;
        if !GPT2_SPLIT.contains(&pre) {
            return Err(err(format!(
                "tokenizer.ggml.pre = {pre}: a pre-tokenizer this host has not checked (it knows {GPT2_SPLIT:?})"
            )));
        }
    }
    let tokens = meta.get_str_array("tokenizer.ggml.tokens")?;
    let vocab_size = u32::try_from(tokens.len()).map_err(|_| err("a vocabulary of over 2^32 tokens"))?;
    let types = if meta.contains("tokenizer.ggml.token_type") {
        meta.get_i32_array("tokenizer.ggml.token_type")?
    } else {
        vec![1; tokens.len()]
    };
    if types.len() != tokens.len() {
        return Err(err(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let mut vocab = tokenizers::models::bpe::Vocab::default();
    for (id, t) in tokens.iter().enumerate() {
        if vocab.insert(t.clone(), id as u32).is_some() {
            return Err(err(format!("token {t:?} is in the vocabulary twice")));
        }
    }
    let merges = meta
        .get_str_array("tokenizer.ggml.merges")?
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').ok_or_else(|| err(format!("merge {m:?} is not two tokens")))?;
            if !vocab.contains_key(a) || !vocab.contains_key(b) || !vocab.contains_key(&format!("{a}{b}")) {
                return Err(err(format!("merge {m:?} names tokens outside the vocabulary")));
            }
            Ok((a.to_string(), b.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| err(format!("BPE: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| **t == TOKEN_CONTROL)
        .map(|(s, _)| AddedToken::from(s.clone(), true))
        .collect();
    tok.add_special_tokens(special).map_err(|e| err(format!("special tokens: {e}")))?;
    for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"] {
        if meta.contains(key) && meta.get_u32(key)? >= vocab_size {
            return Err(err(format!(
                "{key} = {} is outside the vocabulary of {vocab_size}",
                meta.get_u32(key)?
            )));
        }
    }
    Ok(tok)
}
