//! The built-in prompt: [`visattn::sample::LLAVA_1_5_7B`], LLaVA-1.5-7B-shaped (32 layers, 32
//! heads, D = 4096) with 35 system tokens (BOS first), a 24 x 24 image (576 tokens) and 29
//! question tokens: T = 640. The generator is the library's, shared with the web demo (which
//! runs its smaller preset); each layer is synthesised on demand.

use visattn::sample::{self, LLAVA_1_5_7B as SAMPLE};

pub const LAYERS: usize = SAMPLE.layers;
pub const HEADS: usize = SAMPLE.heads;
pub const HIDDEN: usize = SAMPLE.hidden;
pub const SYSTEM: usize = sample::SYSTEM;
pub const GRID: usize = sample::GRID;
pub const IMAGE: usize = sample::IMAGE;
pub const QUESTION: usize = SAMPLE.question;
pub const TOKENS: usize = SAMPLE.tokens();

/// Residual input of `layer`, [T, D].
pub fn hidden_states(layer: usize) -> Vec<f32> {
    SAMPLE.hidden_states(layer)
}

/// Post-softmax causal attention of `layer`, [H, T, T].
pub fn attention(layer: usize) -> Vec<f32> {
    SAMPLE.attention(layer)
}
