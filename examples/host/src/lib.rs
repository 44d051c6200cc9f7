//! A model host on visattn, as a third-party engine would write it: LLaVA-1.5 from a HF folder
//! (config, safetensors shards, tokenizer, image processor) on the GPU through visattn's public
//! API, VAR inside the language model's fused attention (prefill) and split-K decode, and a
//! plain CPU reference of the same model (f64 sums) that the GPU path is tested against.
//! The `llava` example (examples/llava) is its command line; the tests and the bench use it too.

pub mod chat;
#[cfg(not(target_arch = "wasm32"))]
pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod error;
pub mod gguf;
pub mod gpu;
pub mod image;
pub mod model;
pub mod pope;
pub mod prompt;
pub mod random;
pub mod reference;
pub mod sampling;
pub mod weights;

pub use error::{Error, Result};
/// The tokenizers crate the host's tokenizers are built with (GGUF files' among them).
pub use tokenizers;
