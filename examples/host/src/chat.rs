//! Chat templates: a model's Jinja template (`tokenizer.chat_template` in a GGUF file,
//! `chat_template` in a HF tokenizer_config.json) rendered with minijinja as HF transformers
//! renders it in `apply_chat_template`: `trim_blocks` and `lstrip_blocks` on, loop controls,
//! `raise_exception(message)` an error, and `messages`, `add_generation_prompt`, `bos_token`,
//! `eos_token` in the context.

use std::collections::BTreeMap;

use minijinja::{Environment, Value};

use crate::error::{Error, Result};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn user(content: &str) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template and the special tokens it may name.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("chat template: {e}"))
}

impl ChatTemplate {
    /// Compiles `source`; `bos` and `eos` are the tokenizer's BOS and EOS strings.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(err)?,
        );
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source.to_string()).map_err(err)?;
        Ok(Self {
            env,
            bos: bos.into(),
            eos: eos.into(),
        })
    }

    /// The conversation as the model's prompt text; `add_generation_prompt` opens the
    /// assistant's turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from(BTreeMap::from([
                    ("role".to_string(), Value::from(m.role.as_str())),
                    ("content".to_string(), Value::from(m.content.as_str())),
                ]))
            })
            .collect();
        let ctx = Value::from(BTreeMap::from([
            ("messages".to_string(), Value::from(messages)),
            ("add_generation_prompt".to_string(), Value::from(add_generation_prompt)),
            ("bos_token".to_string(), Value::from(self.bos.as_str())),
            ("eos_token".to_string(), Value::from(self.eos.as_str())),
        ]));
        self.env.get_template("chat").map_err(err)?.render(ctx).map_err(err)
    }
}
