//! A LLaMA-architecture GGUF file as the host's model: the language model's config from the
//! `llama.*` metadata, and a [`Store`] that hands the typed tree of [`crate::model`] its tensors
//! under GGUF's names (`blk.{l}.attn_q.weight`, ...), so a GGUF model runs through the same
//! blocks as a HF folder. Tensors are read one at a time and dequantized on the CPU into the
//! model's weight format (the quantized kernels come later: issue "Real weights: GGUF files").
//!
//! llama.cpp's converter reorders the rows of q and k for its RoPE (pairs (i, i + d/2) become
//! adjacent); HF's rotate-half RoPE, which the host runs, needs them back in HF's order: the
//! store undoes the permutation as transformers' GGUF loader does (`reverse_permute_weights`).

use std::collections::BTreeSet;

use super::GgufFile;
use super::quant::dequantize;
use crate::config::TextConfig;
use crate::error::{Error, Result};
use crate::gpu::linear::upload;
use crate::gpu::matrix::{Matrix, WeightFormat};
use crate::gpu::weights::{Gpu, Linear, Norm};
use crate::model::Store;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Gguf(e.to_string())
}

/// The language model of a `general.architecture = llama` file.
pub fn text_config(file: &GgufFile) -> Result<TextConfig> {
    let m = file.metadata();
    let arch = m.get_str("general.architecture")?;
    if arch != "llama" {
        return Err(err(format!(
            "general.architecture = {arch}: this host runs LLaMA-architecture files"
        )));
    }
    let usize_of = |key: &str| -> Result<usize> {
        let v = m.get_u64(key)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| err(format!("{key} = {v}: must be a positive size")))
    };
    let hidden = usize_of("llama.embedding_length")?;
    let heads = usize_of("llama.attention.head_count")?;
    let kv_heads = if m.contains("llama.attention.head_count_kv") {
        usize_of("llama.attention.head_count_kv")?
    } else {
        heads
    };
    let head_dim = if m.contains("llama.attention.key_length") {
        usize_of("llama.attention.key_length")?
    } else {
        hidden / heads
    };
    if heads % kv_heads != 0 || head_dim % 2 != 0 || hidden % heads != 0 {
        return Err(err(format!(
            "{heads} heads over {kv_heads} kv heads of dim {head_dim} at width {hidden}: not a LLaMA this host runs"
        )));
    }
    if m.contains("llama.rope.dimension_count") && usize_of("llama.rope.dimension_count")? != head_dim {
        return Err(err(
            "llama.rope.dimension_count differs from the head dim: partial RoPE is not implemented",
        ));
    }
    let vocab = m.get_str_array("tokenizer.ggml.tokens")?.len();
    let eos = m.get_u32("tokenizer.ggml.eos_token_id")?;
    if eos as usize >= vocab {
        return Err(err(format!(
            "tokenizer.ggml.eos_token_id = {eos} is outside the vocabulary of {vocab}"
        )));
    }
    let f = |key: &str, default: f64| -> Result<f64> {
        let v = if m.contains(key) { m.get_f64(key)? } else { default };
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(err(format!("{key} = {v}: must be finite and > 0")))
        }
    };
    Ok(TextConfig {
        hidden,
        intermediate: usize_of("llama.feed_forward_length")?,
        layers: usize_of("llama.block_count")?,
        heads,
        kv_heads,
        head_dim,
        vocab,
        rms_eps: f("llama.attention.layer_norm_rms_epsilon", 1e-5)?,
        rope_theta: f("llama.rope.freq_base", 10000.0)?,
        max_positions: usize_of("llama.context_length")?,
        eos: vec![eos],
    })
}

/// GGUF's name of one of the tree's tensors (HF's names, [`crate::model::canonical`]).
fn gguf_name(hf: &str) -> Option<String> {
    if let Some(rest) = hf.strip_prefix("language_model.model.layers.") {
        let (l, part) = rest.split_once('.')?;
        let part = match part {
            "input_layernorm.weight" => "attn_norm.weight",
            "self_attn.q_proj.weight" => "attn_q.weight",
            "self_attn.k_proj.weight" => "attn_k.weight",
            "self_attn.v_proj.weight" => "attn_v.weight",
            "self_attn.o_proj.weight" => "attn_output.weight",
            "post_attention_layernorm.weight" => "ffn_norm.weight",
            "mlp.gate_proj.weight" => "ffn_gate.weight",
            "mlp.up_proj.weight" => "ffn_up.weight",
            "mlp.down_proj.weight" => "ffn_down.weight",
            _ => return None,
        };
        return Some(format!("blk.{l}.{part}"));
    }
    Some(
        match hf {
            "language_model.model.embed_tokens.weight" => "token_embd.weight",
            "language_model.model.norm.weight" => "output_norm.weight",
            "language_model.lm_head.weight" => "output.weight",
            _ => return None,
        }
        .to_string(),
    )
}

/// HF's row order of a q or k weight [heads * d, cols] that llama.cpp's converter permuted:
/// within each head, rows (2i, 2i + 1) go back to (i, i + d/2).
fn reverse_permute(values: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let half = rows / heads / 2;
    let mut out = vec![0f32; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let from = h * 2 * half + i * 2 + j;
                let to = h * 2 * half + j * half + i;
                out[to * cols..(to + 1) * cols].copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// The tensors of a GGUF file for the GPU model, read and dequantized one at a time.
pub struct GgufStore<'a> {
    file: &'a GgufFile,
    g: &'a visattn::util::Gpu,
    cfg: TextConfig,
    format: WeightFormat,
    max_chunk: u64,
    taken: BTreeSet<String>,
}

impl<'a> GgufStore<'a> {
    pub fn new(file: &'a GgufFile, g: &'a visattn::util::Gpu, cfg: &TextConfig, format: WeightFormat, max_chunk: u64) -> Self {
        Self {
            file,
            g,
            cfg: cfg.clone(),
            format,
            max_chunk,
            taken: BTreeSet::new(),
        }
    }

    /// The f32 values of `hf`'s tensor, checked to be of `shape` (row-major), q and k rows in
    /// HF's order. The LM head falls back to the embedding table where the file ties them.
    fn values(&mut self, hf: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let mut name = gguf_name(hf).ok_or_else(|| err(format!("the model asks for {hf}, which GGUF files do not name")))?;
        if name == "output.weight" && self.file.tensor(&name).is_none() {
            name = "token_embd.weight".into(); // tied embeddings
        }
        let info = self.file.require(&name)?;
        if info.shape != shape {
            return Err(err(format!("{name} is {:?}, the model needs {shape:?}", info.shape)));
        }
        let bytes = self.file.read_tensor(info)?;
        let elems = usize::try_from(info.elements).map_err(|_| err(format!("{name}: {} values", info.elements)))?;
        let values = dequantize(info.ggml_type, &bytes, elems)?;
        visattn::check_finite(&name, &values)?;
        self.taken.insert(name.clone());
        let cols: usize = shape[1..].iter().product();
        Ok(if name.ends_with(".attn_q.weight") {
            reverse_permute(&values, self.cfg.heads, cols)
        } else if name.ends_with(".attn_k.weight") {
            reverse_permute(&values, self.cfg.kv_heads, cols)
        } else {
            values
        })
    }

    fn matrix(&mut self, hf: &str, shape: &[usize]) -> Result<Matrix> {
        let values = self.values(hf, shape)?;
        let cols: usize = shape[1..].iter().product();
        Matrix::from_f32(
            &self.g.ctx,
            &self.g.queue,
            hf,
            (shape[0], cols),
            &values,
            self.format,
            self.max_chunk,
        )
    }

    fn vector(&mut self, hf: &str, shape: &[usize]) -> Result<visattn::wgpu::Buffer> {
        let values: Vec<f32> = self.values(hf, shape)?.into_iter().map(|x| self.format.round(x)).collect();
        Ok(upload(&self.g.ctx, &self.g.queue, "weight", &values)?)
    }

    /// After the build: every tensor of the file went into the model.
    pub fn finish(self) -> Result<()> {
        match self.file.tensors().iter().find(|t| !self.taken.contains(&t.name)) {
            None => Ok(()),
            Some(t) => Err(err(format!("tensor {} is not part of the model this host runs", t.name))),
        }
    }
}

impl Store<Gpu> for GgufStore<'_> {
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<Linear> {
        if bias {
            return Err(err(format!("{name}: biases are not part of a LLaMA GGUF")));
        }
        Ok(Linear {
            weight: self.matrix(&format!("{name}.weight"), shape)?,
            bias: None,
        })
    }
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<Norm> {
        if bias {
            return Err(err(format!("{name}: LayerNorms are not part of a LLaMA GGUF")));
        }
        Ok(Norm {
            weight: self.vector(&format!("{name}.weight"), &[dim])?,
            bias: None,
        })
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        self.matrix(name, &[rows, cols])
    }
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<visattn::wgpu::Buffer> {
        GgufStore::vector(self, name, shape)
    }
    fn unused(&mut self, _name: &str, _shape: &[usize]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Two heads of dim 4 (rows 0..8, one column): llama.cpp's order [0, 2, 1, 3 | 4, 6, 5, 7]
    /// back to [0, 1, 2, 3 | 4, 5, 6, 7].
    #[test]
    fn reverse_permute_undoes_llama_cpp_rows() {
        let permuted = [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0];
        assert_eq!(
            super::reverse_permute(&permuted, 2, 1),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        );
    }
}
