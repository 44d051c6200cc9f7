//! LLaVA-1.5's architecture as typed weights: HF's LlavaForConditionalGeneration (a CLIP vision
//! tower, a two-layer projector, a LLaMA language model) as one tree of named parts, built by
//! one function per part from a [`Store`] that hands out tensors by name and shape.
//!
//! The tree is the one place that names the tensors: the GPU model ([`crate::gpu`]), the CPU
//! reference ([`crate::reference`]), the folder check ([`crate::weights`]) and the random bench
//! model are the same build over different stores, so a missing or mis-shaped tensor fails at
//! load, named, whatever reads the weights. Names are HF's, after [`canonical`].

use crate::config::{LlavaConfig, TextConfig, VisionConfig};
use crate::error::Result;

/// What a model's tensors are, for one consumer of the tree (the GPU model, the CPU reference).
pub trait Tensors {
    /// A linear layer's weight [out, in...] and, where it has one, its bias [out].
    type Linear;
    /// A LayerNorm (weight and bias) or an RMSNorm (weight).
    type Norm;
    /// An embedding table [rows, cols], read by row.
    type Table;
    /// Any other tensor, added or copied as it is.
    type Vector;
}

/// Where a model's tensors come from, as `T` wants them. Each call takes the tensor `name` of
/// exactly `shape` (an error when it is missing or shaped otherwise); [`Store::unused`] takes a
/// tensor the architecture holds but the forward pass never reads.
pub trait Store<T: Tensors> {
    /// `{name}.weight` of `shape` ([out, in], or [out, c, h, w] for a convolution read as
    /// [out, c h w]), and `{name}.bias` [out] when `bias`.
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<T::Linear>;
    /// `{name}.weight` [dim], and `{name}.bias` [dim] when `bias` (LayerNorm).
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<T::Norm>;
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<T::Table>;
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<T::Vector>;
    /// A tensor of the architecture that never reaches the answer (CLIP's post_layernorm, the
    /// vision layers after the feature layer): checked, never kept.
    fn unused(&mut self, name: &str, shape: &[usize]) -> Result<()>;
    /// Two linear layers of the same input and no biases as one, `first`'s outputs then
    /// `second`'s (rows stacked: LLaMA's gate_proj and up_proj as one matmul).
    fn stack(&mut self, first: T::Linear, second: T::Linear) -> Result<T::Linear>;
}

/// One decoder layer of the language model (LlamaDecoderLayer).
pub struct TextLayer<T: Tensors> {
    pub input_norm: T::Norm,
    pub q: T::Linear,
    pub k: T::Linear,
    pub v: T::Linear,
    pub o: T::Linear,
    pub post_norm: T::Norm,
    /// gate_proj [I, D] and up_proj [I, D] stacked into one [2 I, D] (Phi-3's gate_up_proj):
    /// one matmul where there were two; the first I outputs are the gate's.
    pub gate_up: T::Linear,
    pub down: T::Linear,
}

/// The language model (LlamaForCausalLM): embeddings, layers, final norm, LM head.
pub struct TextModel<T: Tensors> {
    pub embed: T::Table,
    pub layers: Vec<TextLayer<T>>,
    pub norm: T::Norm,
    pub lm_head: T::Linear,
}

/// One encoder layer of the vision tower (CLIPEncoderLayer).
pub struct VisionLayer<T: Tensors> {
    pub norm1: T::Norm,
    pub q: T::Linear,
    pub k: T::Linear,
    pub v: T::Linear,
    pub out: T::Linear,
    pub norm2: T::Norm,
    pub fc1: T::Linear,
    pub fc2: T::Linear,
}

/// The vision tower (CLIPVisionModel) up to the feature layer.
pub struct VisionTower<T: Tensors> {
    pub class_embedding: T::Vector,
    /// The patch convolution as a linear layer over patches [out, 3 p p].
    pub patch_embedding: T::Linear,
    pub position_embedding: T::Vector,
    pub pre_norm: T::Norm,
    /// The layers the features go through (those after the feature layer are never run).
    pub layers: Vec<VisionLayer<T>>,
}

/// The multimodal projector (LlavaMultiModalProjector): linear, activation, linear.
pub struct Projector<T: Tensors> {
    pub linear_1: T::Linear,
    pub linear_2: T::Linear,
}

/// LLaVA-1.5: the vision tower and projector (absent in text-only models), the language model.
pub struct Llava<T: Tensors> {
    pub vision: Option<(VisionTower<T>, Projector<T>)>,
    pub text: TextModel<T>,
}

impl<T: Tensors> TextLayer<T> {
    pub fn build(t: &TextConfig, l: usize, s: &mut impl Store<T>) -> Result<Self> {
        let pre = format!("language_model.model.layers.{l}.");
        let (d, q, kv, i) = (t.hidden, t.heads * t.head_dim, t.kv_heads * t.head_dim, t.intermediate);
        Ok(Self {
            input_norm: s.norm(&format!("{pre}input_layernorm"), d, false)?,
            q: s.linear(&format!("{pre}self_attn.q_proj"), &[q, d], false)?,
            k: s.linear(&format!("{pre}self_attn.k_proj"), &[kv, d], false)?,
            v: s.linear(&format!("{pre}self_attn.v_proj"), &[kv, d], false)?,
            o: s.linear(&format!("{pre}self_attn.o_proj"), &[d, q], false)?,
            post_norm: s.norm(&format!("{pre}post_attention_layernorm"), d, false)?,
            gate_up: {
                let gate = s.linear(&format!("{pre}mlp.gate_proj"), &[i, d], false)?;
                let up = s.linear(&format!("{pre}mlp.up_proj"), &[i, d], false)?;
                s.stack(gate, up)?
            },
            down: s.linear(&format!("{pre}mlp.down_proj"), &[d, i], false)?,
        })
    }
}

impl<T: Tensors> TextModel<T> {
    pub fn build(t: &TextConfig, s: &mut impl Store<T>) -> Result<Self> {
        Ok(Self {
            embed: s.table("language_model.model.embed_tokens.weight", t.vocab, t.hidden)?,
            layers: (0..t.layers).map(|l| TextLayer::build(t, l, s)).collect::<Result<_>>()?,
            norm: s.norm("language_model.model.norm", t.hidden, false)?,
            lm_head: s.linear("language_model.lm_head", &[t.vocab, t.hidden], false)?,
        })
    }
}

impl<T: Tensors> VisionLayer<T> {
    pub fn build(v: &VisionConfig, l: usize, s: &mut impl Store<T>) -> Result<Self> {
        let pre = format!("vision_tower.encoder.layers.{l}.");
        let (d, i) = (v.hidden, v.intermediate);
        Ok(Self {
            norm1: s.norm(&format!("{pre}layer_norm1"), d, true)?,
            q: s.linear(&format!("{pre}self_attn.q_proj"), &[d, d], true)?,
            k: s.linear(&format!("{pre}self_attn.k_proj"), &[d, d], true)?,
            v: s.linear(&format!("{pre}self_attn.v_proj"), &[d, d], true)?,
            out: s.linear(&format!("{pre}self_attn.out_proj"), &[d, d], true)?,
            norm2: s.norm(&format!("{pre}layer_norm2"), d, true)?,
            fc1: s.linear(&format!("{pre}mlp.fc1"), &[i, d], true)?,
            fc2: s.linear(&format!("{pre}mlp.fc2"), &[d, i], true)?,
        })
    }

    /// The tensors of a layer after the feature layer: part of the checkpoint, never run.
    fn unused(v: &VisionConfig, l: usize, s: &mut impl Store<T>) -> Result<()> {
        let pre = format!("vision_tower.encoder.layers.{l}.");
        let (d, i) = (v.hidden, v.intermediate);
        for (name, out, inp) in [
            ("layer_norm1", d, 0),
            ("layer_norm2", d, 0),
            ("self_attn.q_proj", d, d),
            ("self_attn.k_proj", d, d),
            ("self_attn.v_proj", d, d),
            ("self_attn.out_proj", d, d),
            ("mlp.fc1", i, d),
            ("mlp.fc2", d, i),
        ] {
            let weight = if inp == 0 { vec![out] } else { vec![out, inp] };
            s.unused(&format!("{pre}{name}.weight"), &weight)?;
            s.unused(&format!("{pre}{name}.bias"), &[out])?;
        }
        Ok(())
    }
}

impl<T: Tensors> VisionTower<T> {
    pub fn build(cfg: &LlavaConfig, s: &mut impl Store<T>) -> Result<Self> {
        let v = &cfg.vision;
        let (d, p) = (v.hidden, v.patch_size);
        let run = cfg.vision_layers_run();
        let tower = Self {
            class_embedding: s.vector("vision_tower.embeddings.class_embedding", &[d])?,
            patch_embedding: s.linear("vision_tower.embeddings.patch_embedding", &[d, 3, p, p], false)?,
            position_embedding: s.vector("vision_tower.embeddings.position_embedding.weight", &[v.patches() + 1, d])?,
            pre_norm: s.norm("vision_tower.pre_layrnorm", d, true)?,
            layers: (0..run).map(|l| VisionLayer::build(v, l, s)).collect::<Result<_>>()?,
        };
        for l in run..v.layers {
            VisionLayer::unused(v, l, s)?;
        }
        s.unused("vision_tower.post_layernorm.weight", &[d])?;
        s.unused("vision_tower.post_layernorm.bias", &[d])?;
        Ok(tower)
    }
}

impl<T: Tensors> Projector<T> {
    pub fn build(cfg: &LlavaConfig, s: &mut impl Store<T>) -> Result<Self> {
        let (d, vd) = (cfg.text.hidden, cfg.vision.hidden);
        Ok(Self {
            linear_1: s.linear("multi_modal_projector.linear_1", &[d, vd], true)?,
            linear_2: s.linear("multi_modal_projector.linear_2", &[d, d], true)?,
        })
    }
}

impl<T: Tensors> Llava<T> {
    /// The whole model of `cfg` from `s`.
    pub fn build(cfg: &LlavaConfig, s: &mut impl Store<T>) -> Result<Self> {
        Ok(Self {
            vision: Some((VisionTower::build(cfg, s)?, Projector::build(cfg, s)?)),
            text: TextModel::build(&cfg.text, s)?,
        })
    }

    /// The language model alone (no image input).
    pub fn build_text(cfg: &TextConfig, s: &mut impl Store<T>) -> Result<Self> {
        Ok(Self {
            vision: None,
            text: TextModel::build(cfg, s)?,
        })
    }
}

/// The names this host uses for a tensor of either HF layout (llava-hf's
/// `vision_tower.vision_model.` and transformers 5's `model.` prefixes).
pub fn canonical(name: &str) -> String {
    for (from, to) in [
        ("vision_tower.vision_model.", "vision_tower."),
        ("model.vision_tower.", "vision_tower."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
        ("model.language_model.", "language_model.model."),
        ("lm_head.", "language_model.lm_head."),
    ] {
        if let Some(rest) = name.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    name.to_string()
}

/// A tensor the architecture names: its exact shape, and whether the forward pass reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub shape: Vec<usize>,
    pub used: bool,
    /// A weight matrix (a linear layer's weight, an embedding table), kept in the model's
    /// weight format; the rest (norms, biases, class and position embeddings) are f32 vectors.
    pub matrix: bool,
}

/// A [`Store`] that records what the build asks for: every tensor of the model with its exact
/// shape, by canonical name (the folder check reads the shards' headers against it).
#[derive(Default)]
pub struct Names(pub std::collections::BTreeMap<String, Expected>);

impl Names {
    fn add(&mut self, name: String, shape: &[usize], used: bool, matrix: bool) {
        self.0.insert(
            name,
            Expected {
                shape: shape.to_vec(),
                used,
                matrix,
            },
        );
    }
}

/// No tensors at all: what [`Names`] builds.
pub struct NoTensors;

impl Tensors for NoTensors {
    type Linear = ();
    type Norm = ();
    type Table = ();
    type Vector = ();
}

impl Store<NoTensors> for Names {
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<()> {
        self.add(format!("{name}.weight"), shape, true, true);
        if bias {
            self.add(format!("{name}.bias"), &shape[..1], true, false);
        }
        Ok(())
    }
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<()> {
        self.add(format!("{name}.weight"), &[dim], true, false);
        if bias {
            self.add(format!("{name}.bias"), &[dim], true, false);
        }
        Ok(())
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<()> {
        self.add(name.to_string(), &[rows, cols], true, true);
        Ok(())
    }
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        self.add(name.to_string(), shape, true, false);
        Ok(())
    }
    fn unused(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        self.add(name.to_string(), shape, false, false);
        Ok(())
    }
    fn stack(&mut self, _first: (), _second: ()) -> Result<()> {
        Ok(())
    }
}

/// Every tensor a LLaVA-1.5 folder of `cfg` holds, with its exact shape: nothing more, nothing
/// less (HF's LlavaForConditionalGeneration, CLIPVisionModel and LlamaForCausalLM state dicts).
pub fn expected(cfg: &LlavaConfig) -> std::collections::BTreeMap<String, Expected> {
    let mut names = Names::default();
    // Recording never fails.
    let _ = Llava::<NoTensors>::build(cfg, &mut names);
    names.0
}
