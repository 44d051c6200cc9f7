//! config.json of a HF LLaVA-1.5 folder: the language model (LLaMA), the vision tower (CLIP
//! ViT) and how they meet. Anything else (another architecture, a field this host does not
//! implement) is refused with the field named, never guessed.

use crate::error::{Error, Result};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    pub rope_theta: f64,
    pub max_positions: usize,
    pub eos: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f64,
    /// `quick_gelu` (CLIP's) or `gelu`.
    pub act: String,
}

impl VisionConfig {
    /// The patches of the picture: (image_size / patch_size)^2.
    pub fn patches(&self) -> usize {
        let side = self.image_size / self.patch_size;
        side * side
    }
}

/// The largest patch grid side a config may declare (CLIP ViT-L/336 has 24; 1024 x 1024 patches
/// would already be a million image tokens).
const MAX_PATCH_SIDE: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct LlavaConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub image_token: u32,
    /// Index into the vision tower's hidden states (embeddings first), negative from the end.
    pub feature_layer: i64,
    /// `default` drops the CLS token, `full` keeps it.
    pub keep_cls: bool,
    pub projector_act: String,
}

impl LlavaConfig {
    /// A language model alone (a GGUF text model, the bench's random LLaMA): no image token
    /// (u32::MAX is outside every vocabulary), and a vision config nothing reads.
    pub fn text_only(text: TextConfig) -> Self {
        Self {
            text,
            vision: VisionConfig {
                hidden: 64,
                intermediate: 64,
                layers: 1,
                heads: 1,
                image_size: 14,
                patch_size: 14,
                layer_norm_eps: 1e-5,
                act: "quick_gelu".into(),
            },
            image_token: u32::MAX,
            feature_layer: -2,
            keep_cls: false,
            projector_act: "gelu".into(),
        }
    }
}

fn field<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a Value> {
    v.get(key)
        .ok_or_else(|| Error::Config(format!("config.json: {path}{key} is missing")))
}

fn usize_of(v: &Value, path: &str, key: &str) -> Result<usize> {
    field(v, path, key)?
        .as_u64()
        .filter(|&n| n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| Error::Config(format!("config.json: {path}{key} must be a positive integer")))
}

fn f64_of(v: &Value, path: &str, key: &str) -> Result<f64> {
    field(v, path, key)?
        .as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| Error::Config(format!("config.json: {path}{key} must be a finite number")))
}

fn str_of<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a str> {
    field(v, path, key)?
        .as_str()
        .ok_or_else(|| Error::Config(format!("config.json: {path}{key} must be a string")))
}

/// A token id of the model: an integer below the vocabulary size.
fn token_id(x: &Value, key: &str, vocab: usize) -> Result<u32> {
    match x.as_u64() {
        Some(n) if n < vocab as u64 => Ok(n as u32),
        _ => Err(Error::Config(format!(
            "config.json: {key} {x} is not a token id of the model's vocabulary of {vocab}"
        ))),
    }
}

impl LlavaConfig {
    pub fn parse(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::Config(format!("config.json: {e}")))?;
        let model_type = str_of(&v, "", "model_type")?;
        if model_type != "llava" {
            return Err(Error::Config(format!(
                "config.json: model_type '{model_type}': this host runs LLaVA-1.5 (model_type 'llava')"
            )));
        }
        let t = field(&v, "", "text_config")?;
        let text_type = str_of(t, "text_config.", "model_type")?;
        if text_type != "llama" {
            return Err(Error::Config(format!(
                "config.json: text_config.model_type '{text_type}': only 'llama' is implemented"
            )));
        }
        let act = str_of(t, "text_config.", "hidden_act")?;
        if act != "silu" {
            return Err(Error::Config(format!(
                "config.json: text_config.hidden_act '{act}': only 'silu' is implemented"
            )));
        }
        let heads = usize_of(t, "text_config.", "num_attention_heads")?;
        let hidden = usize_of(t, "text_config.", "hidden_size")?;
        let kv_heads = t.get("num_key_value_heads").and_then(Value::as_u64).map_or(heads, |n| n as usize);
        let head_dim = t.get("head_dim").and_then(Value::as_u64).map_or(hidden / heads, |n| n as usize);
        if kv_heads == 0 || heads % kv_heads != 0 || head_dim % 2 != 0 || head_dim.checked_mul(heads) != Some(hidden) {
            return Err(Error::Config(format!(
                "config.json: {heads} heads of {head_dim} (even) over {kv_heads} kv heads do not make hidden size {hidden}"
            )));
        }
        // transformers 5 nests the rope settings; 4.x had rope_theta / rope_scaling at the top.
        let rope = t.get("rope_parameters").unwrap_or(t);
        let rope_type = rope.get("rope_type").and_then(Value::as_str).unwrap_or("default");
        if rope_type != "default" || t.get("rope_scaling").is_some_and(|s| !s.is_null()) {
            return Err(Error::Config(format!(
                "config.json: rope type '{rope_type}': only unscaled RoPE is implemented"
            )));
        }
        let vocab = usize_of(t, "text_config.", "vocab_size")?;
        // Ids are range-checked, never cast: 2^32 + k as u32 would silently be token k.
        let eos = match t.get("eos_token_id").or_else(|| v.get("eos_token_id")) {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|x| token_id(x, "text_config.eos_token_id", vocab))
                .collect::<Result<_, _>>()?,
            Some(x @ Value::Number(_)) => vec![token_id(x, "text_config.eos_token_id", vocab)?],
            Some(x) => {
                return Err(Error::Config(format!(
                    "config.json: text_config.eos_token_id {x}: expected a token id or a list of them"
                )));
            }
            None => return Err(Error::Config("config.json: text_config.eos_token_id is missing".into())),
        };
        // Biases in LLaMA's layers and a tied LM head change which tensors exist and what they
        // mean; this host implements neither.
        for (path, obj, key) in [
            ("text_config.", t, "attention_bias"),
            ("text_config.", t, "mlp_bias"),
            ("text_config.", t, "tie_word_embeddings"),
            ("", &v, "tie_word_embeddings"),
        ] {
            match obj.get(key) {
                None | Some(Value::Null | Value::Bool(false)) => {}
                Some(x) => return Err(Error::Config(format!("config.json: {path}{key} {x}: only false is implemented"))),
            }
        }
        let rms_eps = f64_of(t, "text_config.", "rms_norm_eps")?;
        let rope_theta = f64_of(rope, "text_config.rope_parameters.", "rope_theta")?;
        if rms_eps <= 0.0 || rope_theta <= 0.0 {
            return Err(Error::Config(format!(
                "config.json: text_config: rms_norm_eps {rms_eps} and rope_theta {rope_theta} must be positive"
            )));
        }
        let text = TextConfig {
            hidden,
            intermediate: usize_of(t, "text_config.", "intermediate_size")?,
            layers: usize_of(t, "text_config.", "num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            vocab,
            rms_eps,
            rope_theta,
            max_positions: usize_of(t, "text_config.", "max_position_embeddings")?,
            eos,
        };
        let vc = field(&v, "", "vision_config")?;
        let vision_type = str_of(vc, "vision_config.", "model_type")?;
        if vision_type != "clip_vision_model" {
            return Err(Error::Config(format!(
                "config.json: vision_config.model_type '{vision_type}': only CLIP is implemented"
            )));
        }
        let vision = VisionConfig {
            hidden: usize_of(vc, "vision_config.", "hidden_size")?,
            intermediate: usize_of(vc, "vision_config.", "intermediate_size")?,
            layers: usize_of(vc, "vision_config.", "num_hidden_layers")?,
            heads: usize_of(vc, "vision_config.", "num_attention_heads")?,
            image_size: usize_of(vc, "vision_config.", "image_size")?,
            patch_size: usize_of(vc, "vision_config.", "patch_size")?,
            layer_norm_eps: f64_of(vc, "vision_config.", "layer_norm_eps")?,
            act: str_of(vc, "vision_config.", "hidden_act")?.to_string(),
        };
        if vision.image_size % vision.patch_size != 0 || vision.hidden % vision.heads != 0 {
            return Err(Error::Config(
                "config.json: vision_config: image_size must be a multiple of patch_size, hidden_size of the heads".into(),
            ));
        }
        // The patch grid sizes the prompt and the position embeddings: bounded before either
        // (CLIP's largest is 24 x 24; the weights' check then holds it to the folder's).
        let side = vision.image_size / vision.patch_size;
        if side > MAX_PATCH_SIDE {
            return Err(Error::Config(format!(
                "config.json: vision_config: image_size {} / patch_size {} is a {side} x {side} patch grid, over this host's {MAX_PATCH_SIDE} x {MAX_PATCH_SIDE}",
                vision.image_size, vision.patch_size
            )));
        }
        if vision.layer_norm_eps <= 0.0 {
            return Err(Error::Config(format!(
                "config.json: vision_config.layer_norm_eps {} must be positive",
                vision.layer_norm_eps
            )));
        }
        let strategy = str_of(&v, "", "vision_feature_select_strategy")?;
        let keep_cls = match strategy {
            "default" => false,
            "full" => true,
            s => {
                return Err(Error::Config(format!(
                    "config.json: vision_feature_select_strategy '{s}' (default or full)"
                )));
            }
        };
        let feature_layer = field(&v, "", "vision_feature_layer")?
            .as_i64()
            .ok_or_else(|| Error::Config("config.json: vision_feature_layer must be one integer (lists are not implemented)".into()))?;
        let layers = vision.layers as i64;
        if feature_layer > layers || feature_layer < -(layers + 1) {
            return Err(Error::Config(format!(
                "config.json: vision_feature_layer {feature_layer} for {layers} vision layers"
            )));
        }
        let image_token = token_id(field(&v, "", "image_token_index")?, "image_token_index", text.vocab)?;
        if text.eos.contains(&image_token) {
            return Err(Error::Config(format!(
                "config.json: image_token_index {image_token} is also an eos_token_id"
            )));
        }
        // LLaVA-1.5's projector has biases (HF's default); without them other tensors exist.
        match v.get("multimodal_projector_bias") {
            None | Some(Value::Null | Value::Bool(true)) => {}
            Some(x) => {
                return Err(Error::Config(format!(
                    "config.json: multimodal_projector_bias {x}: only true is implemented"
                )));
            }
        }
        Ok(Self {
            text,
            vision,
            image_token,
            feature_layer,
            keep_cls,
            projector_act: str_of(&v, "", "projector_hidden_act")?.to_string(),
        })
    }

    /// Image tokens the vision config implies: one per patch, plus CLS under `full`.
    pub fn image_tokens(&self) -> usize {
        self.vision.patches() + self.keep_cls as usize
    }

    /// How many of the vision tower's layers the features go through (the feature layer's
    /// index into the hidden states, embeddings first): the layers after it are never run.
    pub fn vision_layers_run(&self) -> usize {
        let layers = self.vision.layers as i64;
        (if self.feature_layer < 0 {
            layers + 1 + self.feature_layer
        } else {
            self.feature_layer
        }) as usize
    }
}
