//! A LLaMA-architecture GGUF file as the host's model: the language model's config from the
//! `llama.*` metadata, and a [`Store`] that hands the typed tree of [`crate::model`] its tensors
//! under GGUF's names (`blk.{l}.attn_q.weight`, ...), so a GGUF model runs through the same
//! blocks as a HF folder. Tensors are read one at a time; matrices stay in the file's format on
//! the device (dequantized inside the kernels) unless the caller asks for one float format.
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
use crate::reference::Tensor;

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

/// GGUF's name of one of the tree's tensors (HF's names, [`crate::model::canonical`]): the
/// language model's as `convert_hf_to_gguf.py` writes them, the vision tower's and projector's
/// as llama.cpp's mmproj converter does (`convert_image_encoder_to_gguf.py`, which names CLIP's
/// fc1 `ffn_down` and fc2 `ffn_up`).
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
    if let Some(rest) = hf.strip_prefix("vision_tower.encoder.layers.") {
        let (l, part) = rest.split_once('.')?;
        let (module, kind) = part.rsplit_once('.')?;
        let module = match module {
            "layer_norm1" => "ln1",
            "layer_norm2" => "ln2",
            "self_attn.q_proj" => "attn_q",
            "self_attn.k_proj" => "attn_k",
            "self_attn.v_proj" => "attn_v",
            "self_attn.out_proj" => "attn_out",
            "mlp.fc1" => "ffn_down",
            "mlp.fc2" => "ffn_up",
            _ => return None,
        };
        return Some(format!("v.blk.{l}.{module}.{kind}"));
    }
    Some(
        match hf {
            "language_model.model.embed_tokens.weight" => "token_embd.weight",
            "language_model.model.norm.weight" => "output_norm.weight",
            "language_model.lm_head.weight" => "output.weight",
            "vision_tower.embeddings.class_embedding" => "v.class_embd",
            "vision_tower.embeddings.patch_embedding.weight" => "v.patch_embd.weight",
            "vision_tower.embeddings.position_embedding.weight" => "v.position_embd.weight",
            "vision_tower.pre_layrnorm.weight" => "v.pre_ln.weight",
            "vision_tower.pre_layrnorm.bias" => "v.pre_ln.bias",
            "vision_tower.post_layernorm.weight" => "v.post_ln.weight",
            "vision_tower.post_layernorm.bias" => "v.post_ln.bias",
            "multi_modal_projector.linear_1.weight" => "mm.0.weight",
            "multi_modal_projector.linear_1.bias" => "mm.0.bias",
            "multi_modal_projector.linear_2.weight" => "mm.2.weight",
            "multi_modal_projector.linear_2.bias" => "mm.2.bias",
            _ => return None,
        }
        .to_string(),
    )
}

/// The file's row behind HF's row `to` of a q or k weight of `heads` heads of `rows / heads`
/// rows that llama.cpp's converter permuted: within each head, HF's rows (i, i + d/2) are the
/// file's (2i, 2i + 1).
fn permuted_row(to: usize, heads: usize, rows: usize) -> usize {
    let half = rows / heads / 2;
    let (h, rem) = (to / (2 * half), to % (2 * half));
    let (j, i) = (rem / half, rem % half);
    h * 2 * half + 2 * i + j
}

/// The tensors of GGUF files (a language model, and an mmproj file's tower and projector) under
/// HF's names, read one at a time: each checked to be of the shape the model asks for, its rows
/// in HF's order. The GPU store and the CPU reference read through it.
pub struct GgufTensors<'a, P: FnMut(usize, usize)> {
    files: Vec<&'a GgufFile>,
    cfg: TextConfig,
    taken: BTreeSet<String>,
    progress: P,
}

/// A tensor as read: its GGUF name, info and bytes, and the head count of its rows where
/// llama.cpp permuted them (the language model's q and k).
struct Read {
    name: String,
    info: super::TensorInfo,
    bytes: Vec<u8>,
    heads: Option<usize>,
}

impl<'a, P: FnMut(usize, usize)> GgufTensors<'a, P> {
    /// `progress(done, total)` after each tensor.
    pub fn new(files: Vec<&'a GgufFile>, cfg: &TextConfig, progress: P) -> Self {
        Self {
            files,
            cfg: cfg.clone(),
            taken: BTreeSet::new(),
            progress,
        }
    }

    /// The file's tensor behind `hf`, checked to be of `shape` (row-major). The LM head falls
    /// back to the embedding table where the file ties them.
    fn read(&mut self, hf: &str, shape: &[usize]) -> Result<Read> {
        let mut name = gguf_name(hf).ok_or_else(|| err(format!("the model asks for {hf}, which GGUF files do not name")))?;
        let holds = |name: &str| self.files.iter().copied().find(|f| f.tensor(name).is_some());
        if name == "output.weight" && holds(&name).is_none() {
            name = "token_embd.weight".into(); // tied embeddings
        }
        let file = holds(&name).ok_or_else(|| err(format!("tensor {name} is missing")))?;
        let info = file.require(&name)?.clone();
        if info.shape != shape {
            return Err(err(format!("{name} is {:?}, the model needs {shape:?}", info.shape)));
        }
        let bytes = file.read_tensor(&info)?;
        if self.taken.insert(name.clone()) {
            let total = self.files.iter().map(|f| f.tensors().len()).sum();
            (self.progress)(self.taken.len(), total);
        }
        // llama.cpp permutes the language model's q and k rows for its RoPE (the tower's are
        // as HF stores them).
        let heads = if !name.starts_with("blk.") {
            None
        } else if name.ends_with(".attn_q.weight") {
            Some(self.cfg.heads)
        } else if name.ends_with(".attn_k.weight") {
            Some(self.cfg.kv_heads)
        } else {
            None
        };
        Ok(Read { name, info, bytes, heads })
    }

    /// `hf`'s f32 values, rows in HF's order.
    pub fn values(&mut self, hf: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let r = self.read(hf, shape)?;
        dequantized(&r, shape[1..].iter().product())
    }

    /// A tensor the model does not run (an mmproj file's post-layernorm, which LLaVA's features
    /// skip): checked and counted as used where the files hold it.
    fn unused(&mut self, hf: &str, shape: &[usize]) -> Result<()> {
        let held = gguf_name(hf).is_some_and(|name| self.files.iter().any(|f| f.tensor(&name).is_some()));
        if held {
            self.read(hf, shape)?;
        }
        Ok(())
    }

    /// After the build: every tensor of the files went into the model.
    pub fn finish(self) -> Result<()> {
        match self.files.iter().flat_map(|f| f.tensors()).find(|t| !self.taken.contains(&t.name)) {
            None => Ok(()),
            Some(t) => Err(err(format!("tensor {} is not part of the model this host runs", t.name))),
        }
    }
}

/// A tensor's f32 values, rows of `cols` in HF's order.
fn dequantized(r: &Read, cols: usize) -> Result<Vec<f32>> {
    let elems = usize::try_from(r.info.elements).map_err(|_| err(format!("{}: {} values", r.name, r.info.elements)))?;
    let values = dequantize(r.info.ggml_type, &r.bytes, elems)?;
    visattn::check_finite(&r.name, &values)?;
    Ok(match r.heads {
        None => values,
        Some(_) => {
            let rows = elems / cols.max(1);
            hf_rows(&values, cols, r.heads, rows, 0..rows)
        }
    })
}

/// Rows `range` of `data` (`rows` rows of `row_len` items: values, or a block format's bytes)
/// in HF's order: where llama.cpp permuted them (`heads`), each from its permuted place.
fn hf_rows<T: Copy>(data: &[T], row_len: usize, heads: Option<usize>, rows: usize, range: std::ops::Range<usize>) -> Vec<T> {
    match heads {
        None => data[range.start * row_len..range.end * row_len].to_vec(),
        Some(heads) => range
            .flat_map(|row| {
                let from = permuted_row(row, heads, rows);
                data[from * row_len..(from + 1) * row_len].iter().copied()
            })
            .collect(),
    }
}

/// The GPU model's weights from GGUF files: matrices kept as the file stores them (or
/// requantized, [`GgufStore::new`]), vectors as f32.
pub struct GgufStore<'a, P: FnMut(usize, usize)> {
    tensors: GgufTensors<'a, P>,
    g: &'a visattn::util::Gpu,
    format: Option<WeightFormat>,
    max_chunk: u64,
}

impl<'a, P: FnMut(usize, usize)> GgufStore<'a, P> {
    /// `format`: `None` keeps each matrix in its file's format; `Some(f)` dequantizes the
    /// matrices and keeps them as a HF folder loaded as `f` keeps its own
    /// ([`WeightFormat::for_matrix`]: a float format every matrix, a block format the language
    /// model's), vectors rounded as `f` rounds them; `progress(done, total)` after each tensor.
    pub fn new(
        files: Vec<&'a GgufFile>,
        g: &'a visattn::util::Gpu,
        cfg: &TextConfig,
        format: Option<WeightFormat>,
        max_chunk: u64,
        progress: P,
    ) -> Self {
        Self {
            tensors: GgufTensors::new(files, cfg, progress),
            g,
            format,
            max_chunk,
        }
    }

    fn matrix(&mut self, hf: &str, shape: &[usize]) -> Result<Matrix> {
        let r = self.tensors.read(hf, shape)?;
        let (rows, cols) = (shape[0], shape[1..].iter().product::<usize>());
        let (ctx, queue) = (&self.g.ctx, &self.g.queue);
        let Some(format) = self.format else {
            let (name, ty) = (&r.name, r.info.ggml_type);
            let format = WeightFormat::for_type(ty, &self.g.device).map_err(|e| match e {
                Error::Gguf(why) => err(format!("{name}: {why}")),
                other => other,
            })?;
            let row_bytes =
                ty.bytes_for(cols as u64)
                    .ok_or_else(|| err(format!("{name}: rows of {cols} values are not whole {ty} blocks")))? as usize;
            return Matrix::upload_stored(ctx, queue, hf, (rows, cols), (ty, format), self.max_chunk, |row0, n| {
                Ok(hf_rows(&r.bytes, row_bytes, r.heads, rows, row0..row0 + n))
            });
        };
        let values = dequantized(&r, cols)?;
        // Requantized as a HF folder is (a block format: the language model's matrices, with
        // llama.cpp's fallback for rows that are not whole blocks).
        let f16 = WeightFormat::f16_for(&self.g.device);
        // The tower keeps an F16 file's precision (what for_matrix does with a folder's).
        let stored = if r.info.ggml_type == super::GgmlType::F32 {
            visattn::dump::Dtype::F32
        } else {
            visattn::dump::Dtype::F16
        };
        let format = format.for_matrix(hf, cols, stored, f16);
        Matrix::from_f32(ctx, queue, hf, (rows, cols), &values, format, self.max_chunk)
    }

    fn vector(&mut self, hf: &str, shape: &[usize]) -> Result<visattn::wgpu::Buffer> {
        let values = self.tensors.values(hf, shape)?;
        let values: Vec<f32> = values.into_iter().map(|x| self.format.map_or(x, |f| f.round(x))).collect();
        Ok(upload(&self.g.ctx, &self.g.queue, "weight", &values)?)
    }

    /// After the build: every tensor of the files went into the model.
    pub fn finish(self) -> Result<()> {
        self.tensors.finish()
    }
}

/// The CPU reference's weights from GGUF files: every tensor dequantized to f32 (the values the
/// GPU model holds, whatever their format there).
impl<P: FnMut(usize, usize)> Store<crate::reference::Cpu> for GgufTensors<'_, P> {
    fn unused(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        GgufTensors::unused(self, name, shape)
    }
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<crate::reference::Linear> {
        let cols: usize = shape[1..].iter().product();
        Ok(crate::reference::Linear {
            w: Tensor {
                shape: vec![shape[0], cols],
                data: self.values(&format!("{name}.weight"), shape)?,
            },
            b: bias.then(|| self.vector_tensor(&format!("{name}.bias"), &shape[..1])).transpose()?,
        })
    }
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<crate::reference::Norm> {
        Ok(crate::reference::Norm {
            w: self.vector_tensor(&format!("{name}.weight"), &[dim])?,
            b: bias.then(|| self.vector_tensor(&format!("{name}.bias"), &[dim])).transpose()?,
        })
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<Tensor> {
        self.vector_tensor(name, &[rows, cols])
    }
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.vector_tensor(name, shape)
    }
    fn stack(&mut self, first: crate::reference::Linear, second: crate::reference::Linear) -> Result<crate::reference::Linear> {
        crate::reference::Linear::stack(first, second)
    }
}

impl<P: FnMut(usize, usize)> GgufTensors<'_, P> {
    fn vector_tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor {
            shape: shape.to_vec(),
            data: self.values(name, shape)?,
        })
    }
}

impl<P: FnMut(usize, usize)> Store<Gpu> for GgufStore<'_, P> {
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.matrix(&format!("{name}.weight"), shape)?,
            bias: bias.then(|| self.vector(&format!("{name}.bias"), &shape[..1])).transpose()?,
        })
    }
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<Norm> {
        Ok(Norm {
            weight: self.vector(&format!("{name}.weight"), &[dim])?,
            bias: bias.then(|| self.vector(&format!("{name}.bias"), &[dim])).transpose()?,
        })
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        self.matrix(name, &[rows, cols])
    }
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<visattn::wgpu::Buffer> {
        GgufStore::vector(self, name, shape)
    }
    fn unused(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        self.tensors.unused(name, shape)
    }
    fn stack(&mut self, first: Linear, second: Linear) -> Result<Linear> {
        Linear::stack((&self.g.ctx, &self.g.queue), first, second, self.max_chunk)
    }
}

#[cfg(test)]
mod tests {
    /// Two heads of dim 4 (rows 0..8): llama.cpp's order [0, 2, 1, 3 | 4, 6, 5, 7] holds HF's
    /// row 1 at 2 and 2 at 1 in each head.
    #[test]
    fn permuted_rows_undo_llama_cpp_order() {
        let from: Vec<usize> = (0..8).map(|r| super::permuted_row(r, 2, 8)).collect();
        assert_eq!(from, vec![0, 2, 1, 3, 4, 6, 5, 7]);
        // Head dim 6: HF rows (0, 1, 2 | 3, 4, 5) are the file's (0, 2, 4 | 1, 3, 5).
        let from: Vec<usize> = (0..6).map(|r| super::permuted_row(r, 1, 6)).collect();
        assert_eq!(from, vec![0, 2, 4, 1, 3, 5]);
    }
}
