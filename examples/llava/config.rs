//! config.json of a HF LLaVA-1.5 folder: the language model (LLaMA), the vision tower (CLIP
//! ViT) and how they meet. Anything else (another architecture, a field this host does not
//! implement) is refused with the field named, never guessed.

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

fn field<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("config.json: {path}{key} is missing"))
}

fn usize_of(v: &Value, path: &str, key: &str) -> Result<usize, String> {
    field(v, path, key)?
        .as_u64()
        .filter(|&n| n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| format!("config.json: {path}{key} must be a positive integer"))
}

fn f64_of(v: &Value, path: &str, key: &str) -> Result<f64, String> {
    field(v, path, key)?
        .as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("config.json: {path}{key} must be a finite number"))
}

fn str_of<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a str, String> {
    field(v, path, key)?
        .as_str()
        .ok_or_else(|| format!("config.json: {path}{key} must be a string"))
}

impl LlavaConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        let model_type = str_of(&v, "", "model_type")?;
        if model_type != "llava" {
            return Err(format!(
                "config.json: model_type '{model_type}': this host runs LLaVA-1.5 (model_type 'llava')"
            ));
        }
        let t = field(&v, "", "text_config")?;
        let text_type = str_of(t, "text_config.", "model_type")?;
        if text_type != "llama" {
            return Err(format!(
                "config.json: text_config.model_type '{text_type}': only 'llama' is implemented"
            ));
        }
        let act = str_of(t, "text_config.", "hidden_act")?;
        if act != "silu" {
            return Err(format!("config.json: text_config.hidden_act '{act}': only 'silu' is implemented"));
        }
        let heads = usize_of(t, "text_config.", "num_attention_heads")?;
        let hidden = usize_of(t, "text_config.", "hidden_size")?;
        let kv_heads = t.get("num_key_value_heads").and_then(Value::as_u64).map_or(heads, |n| n as usize);
        let head_dim = t.get("head_dim").and_then(Value::as_u64).map_or(hidden / heads, |n| n as usize);
        if kv_heads == 0 || heads % kv_heads != 0 || head_dim * heads != hidden {
            return Err(format!(
                "config.json: {heads} heads of {head_dim} over {kv_heads} kv heads do not make hidden size {hidden}"
            ));
        }
        // transformers 5 nests the rope settings; 4.x had rope_theta / rope_scaling at the top.
        let rope = t.get("rope_parameters").unwrap_or(t);
        let rope_type = rope.get("rope_type").and_then(Value::as_str).unwrap_or("default");
        if rope_type != "default" || t.get("rope_scaling").is_some_and(|s| !s.is_null()) {
            return Err(format!("config.json: rope type '{rope_type}': only unscaled RoPE is implemented"));
        }
        let eos = match t.get("eos_token_id").or_else(|| v.get("eos_token_id")) {
            Some(Value::Number(n)) => vec![n.as_u64().ok_or("config.json: eos_token_id must be a token id")? as u32],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|n| n as u32)
                        .ok_or("config.json: eos_token_id must be token ids".to_string())
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("config.json: text_config.eos_token_id is missing".into()),
        };
        let text = TextConfig {
            hidden,
            intermediate: usize_of(t, "text_config.", "intermediate_size")?,
            layers: usize_of(t, "text_config.", "num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            vocab: usize_of(t, "text_config.", "vocab_size")?,
            rms_eps: f64_of(t, "text_config.", "rms_norm_eps")?,
            rope_theta: f64_of(rope, "text_config.rope_parameters.", "rope_theta")?,
            max_positions: usize_of(t, "text_config.", "max_position_embeddings")?,
            eos,
        };
        let vc = field(&v, "", "vision_config")?;
        let vision_type = str_of(vc, "vision_config.", "model_type")?;
        if vision_type != "clip_vision_model" {
            return Err(format!(
                "config.json: vision_config.model_type '{vision_type}': only CLIP is implemented"
            ));
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
            return Err("config.json: vision_config: image_size must be a multiple of patch_size, hidden_size of the heads".into());
        }
        let strategy = str_of(&v, "", "vision_feature_select_strategy")?;
        let keep_cls = match strategy {
            "default" => false,
            "full" => true,
            s => return Err(format!("config.json: vision_feature_select_strategy '{s}' (default or full)")),
        };
        let feature_layer = field(&v, "", "vision_feature_layer")?
            .as_i64()
            .ok_or("config.json: vision_feature_layer must be one integer (lists are not implemented)")?;
        let layers = vision.layers as i64;
        if feature_layer > layers || feature_layer < -(layers + 1) {
            return Err(format!(
                "config.json: vision_feature_layer {feature_layer} for {layers} vision layers"
            ));
        }
        let image_token = field(&v, "", "image_token_index")?
            .as_u64()
            .ok_or("config.json: image_token_index must be a token id")? as u32;
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
        let side = self.vision.image_size / self.vision.patch_size;
        side * side + self.keep_cls as usize
    }
}
