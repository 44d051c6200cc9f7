//! A GGUF file's tokenizer as a `tokenizers::Tokenizer`, built from its metadata as HF
//! transformers builds it when loading a GGUF file (`AutoTokenizer.from_pretrained(dir,
//! gguf_file=...)`, transformers 5.24's `integrations/gguf/gguf_tokenizer_mapping.py`):
//! `tokenizer.ggml.model` names the kind, `tokenizer.ggml.tokens` the vocabulary (id = index),
//! `tokenizer.ggml.merges` the BPE merges, `tokenizer.ggml.token_type` which tokens are control
//! tokens (added as special tokens, never split) or user-defined ones (added, not special).
//!
//! `gpt2` (byte-level BPE): the byte-level pre-tokenizer with GPT-2's split regex, no prefix
//! space, the byte-level decoder. `tokenizer.ggml.pre` names llama.cpp's split regex; for the
//! files this host has met (`smollm`, `gpt2`) it is GPT-2's, which is also what HF uses for every
//! `pre`, so a `pre` this host has not checked is refused rather than guessed.
//!
//! `llama` (SentencePiece, as LLaVA-1.5's Vicuna files carry): a BPE over the vocabulary with
//! byte fallback (`<0x41>` tokens) whose merges, where the file lists none, follow from
//! `tokenizer.ggml.scores` as HF's `generate_merges` derives them: every split of a token into
//! two tokens, best score first (ties: the longer left part, then the longer right part, then
//! the vocabulary's order). Spaces become `▁` with one prepended at the start of the text (not
//! after a special token: Metaspace's `first`), no normalizer; the decoder turns `▁` back into
//! spaces, byte tokens into bytes, and strips the one leading space. Like HF, it does not read
//! `tokenizer.ggml.add_space_prefix` (llama.cpp does: a file that sets it to false tokenizes
//! differently there). The control tokens and the tokens BOS, EOS, unknown and padding name are
//! special; BOS goes in front where `tokenizer.ggml.add_bos_token` says so (true where absent, as
//! llama.cpp assumes for SentencePiece files), EOS at the end where `add_eos_token` does.

use std::collections::HashMap;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
use tokenizers::{AddedToken, Tokenizer};

use super::{GgufFile, Metadata};
use crate::error::{Error, Result};

/// llama.cpp's token types (`tokenizer.ggml.token_type`): 3 is a control token, 4 a
/// user-defined one.
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// The `tokenizer.ggml.pre` values whose split regex is GPT-2's in llama.cpp (llama-vocab.cpp).
const GPT2_SPLIT: &[&str] = &["gpt2", "smollm", "default"];

/// SentencePiece's word boundary, what `llama` vocabularies spell a space as.
const METASPACE: char = '\u{2581}';

fn err(what: impl std::fmt::Display) -> Error {
    Error::Tokenizer(what.to_string())
}

/// The tokenizer `file`'s metadata describes.
pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let meta = file.metadata();
    let model = meta.get_str("tokenizer.ggml.model")?;
    match model {
        "gpt2" => gpt2(file),
        "llama" => llama(file),
        other => Err(err(format!(
            "tokenizer.ggml.model = {other}: this host builds gpt2 (byte-level BPE) and llama \
             (SentencePiece BPE) tokenizers"
        ))),
    }
}

/// A file's vocabulary: its tokens (id = index), token -> id (every token once), and each
/// token's type (1, normal, where the file gives none).
struct Vocabulary<'a> {
    tokens: &'a [String],
    ids: HashMap<String, u32>,
    types: Vec<i32>,
}

fn vocabulary(meta: &Metadata) -> Result<Vocabulary<'_>> {
    let tokens = meta.get_str_array("tokenizer.ggml.tokens")?;
    u32::try_from(tokens.len()).map_err(|_| err("a vocabulary of over 2^32 tokens"))?;
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
    let mut ids = HashMap::with_capacity(tokens.len());
    for (id, t) in tokens.iter().enumerate() {
        if ids.insert(t.clone(), id as u32).is_some() {
            return Err(err(format!("token {t:?} is in the vocabulary twice")));
        }
    }
    Ok(Vocabulary { tokens, ids, types })
}

/// The token `key` names (`tokenizer.ggml.bos_token_id`, ...), where the file names one.
fn named_token(meta: &Metadata, key: &str, vocab_size: usize) -> Result<Option<u32>> {
    if !meta.contains(key) {
        return Ok(None);
    }
    let id = meta.get_u32(key)?;
    if id as usize >= vocab_size {
        return Err(err(format!("{key} = {id} is outside the vocabulary of {vocab_size}")));
    }
    Ok(Some(id))
}

/// The merges the file lists (`a b`, each part and their concatenation in the vocabulary).
fn listed_merges(meta: &Metadata, vocab: &HashMap<String, u32>) -> Result<Vec<(String, String)>> {
    meta.get_str_array("tokenizer.ggml.merges")?
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').ok_or_else(|| err(format!("merge {m:?} is not two tokens")))?;
            if !vocab.contains_key(a) || !vocab.contains_key(b) || !vocab.contains_key(&format!("{a}{b}")) {
                return Err(err(format!("merge {m:?} names tokens outside the vocabulary")));
            }
            Ok((a.to_string(), b.to_string()))
        })
        .collect()
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
    let Vocabulary { tokens, ids: vocab, types } = vocabulary(meta)?;
    let merges = listed_merges(meta, &vocab)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(), merges)
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
        named_token(meta, key, tokens.len())?;
    }
    Ok(tok)
}

/// HF's merges of a SentencePiece vocabulary with scores (`generate_merges(vocab, scores)` in
/// transformers' tokenization_utils_base.py): for each token in vocabulary order, every split
/// into a left and a right token, by the pair's ids; then all of them best score first, a
/// longer left part first, then a longer right part (in characters), the order so far among
/// equals (Python's sort is stable, and so is Rust's).
fn merges_from_scores(tokens: &[String], scores: &[f32], vocab: &HashMap<String, u32>) -> Vec<(String, String)> {
    struct Merge<'a> {
        left: &'a str,
        right: &'a str,
        ids: (u32, u32),
        score: f32,
        lens: (usize, usize),
    }
    let mut merges = Vec::new();
    for (token, &score) in tokens.iter().zip(scores) {
        let mut local: Vec<Merge> = token
            .char_indices()
            .skip(1)
            .filter_map(|(i, _)| {
                let (left, right) = token.split_at(i);
                Some(Merge {
                    left,
                    right,
                    ids: (*vocab.get(left)?, *vocab.get(right)?),
                    score,
                    lens: (left.chars().count(), right.chars().count()),
                })
            })
            .collect();
        local.sort_by_key(|m| m.ids);
        merges.extend(local);
    }
    merges.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.lens.0.cmp(&a.lens.0))
            .then(b.lens.1.cmp(&a.lens.1))
    });
    merges.into_iter().map(|m| (m.left.to_string(), m.right.to_string())).collect()
}

fn llama(file: &GgufFile) -> Result<Tokenizer> {
    let meta = file.metadata();
    let Vocabulary { tokens, ids: vocab, types } = vocabulary(meta)?;
    let merges = if meta.contains("tokenizer.ggml.merges") {
        listed_merges(meta, &vocab)?
    } else {
        let scores = meta.get_f32_array("tokenizer.ggml.scores")?;
        if scores.len() != tokens.len() {
            return Err(err(format!(
                "tokenizer.ggml.scores has {} entries for {} tokens",
                scores.len(),
                tokens.len()
            )));
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(err(format!("token {:?} scores {}: scores must be finite", tokens[i], scores[i])));
        }
        merges_from_scores(tokens, &scores, &vocab)
    };
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(), merges)
        .fuse_unk(true)
        .byte_fallback(true);
    // As HF's converter: a character with no token and no byte token is the unknown token.
    if let Some(unk) = named_token(meta, "tokenizer.ggml.unknown_token_id", tokens.len())? {
        bpe = bpe.unk_token(tokens[unk as usize].clone());
    }
    let bpe = bpe.build().map_err(|e| err(format!("BPE: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(Metaspace::new(METASPACE, PrependScheme::First, false)));
    let decoders: Vec<DecoderWrapper> = vec![
        Replace::new(METASPACE.to_string(), " ")
            .map_err(|e| err(format!("decoder: {e}")))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', 1, 0).into(),
    ];
    tok.with_decoder(Some(Sequence::new(decoders)));

    // Special: the control tokens, then the ones the file names (HF adds a named token that is
    // not a control token, an UNKNOWN-typed <unk> say, as special too). User-defined tokens are
    // matched whole but are not special.
    let n = tokens.len();
    let named = |key: &str| named_token(meta, key, n);
    let (bos, eos) = (named("tokenizer.ggml.bos_token_id")?, named("tokenizer.ggml.eos_token_id")?);
    let (unk, pad) = (named("tokenizer.ggml.unknown_token_id")?, named("tokenizer.ggml.padding_token_id")?);
    let mut special: Vec<u32> = (0..n as u32).filter(|&i| types[i as usize] == TOKEN_CONTROL).collect();
    for id in [bos, eos, unk, pad].into_iter().flatten() {
        if !special.contains(&id) {
            special.push(id);
        }
    }
    let added = |ids: &[u32], is_special: bool| -> Vec<AddedToken> {
        ids.iter()
            .map(|&i| AddedToken::from(tokens[i as usize].clone(), is_special).normalized(false))
            .collect()
    };
    tok.add_special_tokens(added(&special, true))
        .map_err(|e| err(format!("special tokens: {e}")))?;
    let user: Vec<u32> = (0..n as u32)
        .filter(|&i| types[i as usize] == TOKEN_USER_DEFINED && !special.contains(&i))
        .collect();
    tok.add_tokens(added(&user, false))
        .map_err(|e| err(format!("user-defined tokens: {e}")))?;

    let flag = |key: &str, default: bool| -> Result<bool> { if meta.contains(key) { meta.get_bool(key) } else { Ok(default) } };
    let add_bos = flag("tokenizer.ggml.add_bos_token", true)?;
    let add_eos = flag("tokenizer.ggml.add_eos_token", false)?;
    // The post-processor: BOS in front and EOS at the end, where the file asks for them and
    // names the token (as HF's update_post_processor builds it).
    let bos = bos.filter(|_| add_bos);
    let eos = eos.filter(|_| add_eos);
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = Vec::new();
    if let Some(id) = bos {
        single.push("bos:0".to_string());
        specials.push(SpecialToken::new("bos".into(), vec![id], vec![tokens[id as usize].clone()]));
    }
    single.push("$A:0".into());
    if let Some(id) = eos {
        single.push("eos:0".into());
        specials.push(SpecialToken::new("eos".into(), vec![id], vec![tokens[id as usize].clone()]));
    }
    pair.extend(single.iter().cloned());
    for part in &single {
        pair.push(part.replace(":0", ":1").replace("$A", "$B"));
    }
    let specials = specials
        .into_iter()
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| err(format!("post-processor: {e}")))?;
    let template = TemplateProcessing::builder()
        .try_single(single.join(" "))
        .and_then(|b| b.try_pair(pair.join(" ")))
        .map_err(|e| err(format!("post-processor: {e}")))?
        .special_tokens(specials)
        .build()
        .map_err(|e| err(format!("post-processor: {e}")))?;
    tok.with_post_processor(Some(template));
    Ok(tok)
}
