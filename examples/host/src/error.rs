//! The host's one error type: each class of failure a variant, visattn's own errors wrapped.

/// Everything that can go wrong in the host, by where it comes from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the library: shapes, limits, GPU validation errors, bad VAR settings.
    #[error(transparent)]
    Visattn(#[from] visattn::Error),
    /// A file of the model folder that cannot be read.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// config.json (or generation_config.json) that describes no model this host runs.
    #[error("{0}")]
    Config(String),
    /// The weights: a tensor missing, of the wrong shape or dtype, not part of the model, or
    /// holding NaN.
    #[error("weights: {0}")]
    Weights(String),
    /// The tokenizer or the chat template.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A picture that cannot be read, or a preprocessor config that cannot take it.
    #[error("{0}")]
    Picture(String),
    /// What the caller asked for: a prompt, token ids, sampling settings or positions out of
    /// range.
    #[error("{0}")]
    Input(String),
    /// A GGUF file or its tensors: a malformed header, an unknown or unsupported tensor type, a
    /// byte count that does not match the tensor's shape.
    #[error("gguf: {0}")]
    Gguf(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A file's error, naming it.
    pub fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
