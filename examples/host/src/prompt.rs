//! The LLaVA-1.5 prompt: `USER: <image>\n{prompt} ASSISTANT:` through the folder's own
//! tokenizer.json (HF's `tokenizers`: its post-processor adds BOS where the tokenizer says so),
//! then the image token expanded to one id per image feature.

use crate::error::{Error, Result};
use std::path::Path;

use tokenizers::Tokenizer;

use crate::config::LlavaConfig;

pub const TEMPLATE: &str = "USER: <image>\n{prompt} ASSISTANT:";

pub struct Prompter {
    tokenizer: Tokenizer,
    image_token: u32,
    image_tokens: usize,
}

impl Prompter {
    /// Loads tokenizer.json and checks it against the config: its vocabulary fits the model's
    /// and the config's image token is the tokenizer's `<image>`.
    pub fn open(dir: &Path, cfg: &LlavaConfig) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > cfg.text.vocab {
            return Err(Error::Tokenizer(format!(
                "{}: {vocab} tokens, but the model's vocabulary has {}: a tokenizer of another model",
                path.display(),
                cfg.text.vocab
            )));
        }
        match tokenizer.id_to_token(cfg.image_token) {
            Some(t) if t == "<image>" => {}
            other => {
                return Err(Error::Tokenizer(format!(
                    "{}: token {} is {other:?}, but config.json's image_token_index says it is <image>: a tokenizer of another model",
                    path.display(),
                    cfg.image_token
                )));
            }
        }
        Ok(Self {
            tokenizer,
            image_token: cfg.image_token,
            image_tokens: cfg.image_tokens(),
        })
    }

    /// The template's ids as the tokenizer gives them (one image token).
    pub fn text_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        let text = TEMPLATE.replace("{prompt}", prompt);
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenizer(format!("tokenizing the prompt: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The model's input ids: the image token repeated once per image feature.
    pub fn input_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        let text = self.text_ids(prompt)?;
        if text.iter().filter(|&&t| t == self.image_token).count() != 1 {
            return Err(Error::Tokenizer(
                "the prompt must not contain <image> itself: the template places the picture".into(),
            ));
        }
        Ok(text
            .into_iter()
            .flat_map(|t| {
                let n = if t == self.image_token { self.image_tokens } else { 1 };
                std::iter::repeat_n(t, n)
            })
            .collect())
    }

    /// Text of generated ids, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(format!("decoding: {e}")))
    }
}
