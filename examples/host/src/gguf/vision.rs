//! llama.cpp's mmproj files: the CLIP vision tower and LLaVA-1.5's projector of a language-model
//! GGUF, as `tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py` writes them (`clip.*`
//! metadata, `v.*` and `mm.*` tensors) and `tools/mtmd/clip.cpp` reads them. Only LLaVA-1.5's
//! kind is run here: `clip.projector_type = mlp` (two linear layers, GELU between), a fixed
//! image size (no `clip.vision.image_grid_pinpoints`: LLaVA-NeXT's tiling), a vision width the
//! projector maps to the language model's. The converter keeps the layers up to the feature
//! layer (LLaVA-1.5 reads the second-to-last: it drops the last), so every layer stored runs and
//! the features are the last one's output, without the post-layernorm.

use super::GgufFile;
use crate::config::{LlavaConfig, TextConfig, VisionConfig};
use crate::error::{Error, Result};

fn err(e: impl std::fmt::Display) -> Error {
    Error::Gguf(e.to_string())
}

/// What an mmproj file says about its tower and the pictures it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Mmproj {
    pub vision: VisionConfig,
    /// The per-channel mean and std the pixels are normalised with.
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// The width the projector maps to (the language model's hidden size).
    pub projection: usize,
}

impl Mmproj {
    /// The mmproj file's tower, checked to be LLaVA-1.5's kind.
    pub fn read(file: &GgufFile) -> Result<Self> {
        let m = file.metadata();
        let flag = |key: &str| -> Result<bool> { Ok(m.contains(key) && m.get_bool(key)?) };
        if !flag("clip.has_vision_encoder")? {
            return Err(err("not an mmproj file with a vision encoder (clip.has_vision_encoder)"));
        }
        let projector = if m.contains("clip.projector_type") {
            m.get_str("clip.projector_type")?.to_string()
        } else if flag("clip.has_llava_projector")? {
            "mlp".to_string()
        } else {
            return Err(err("the mmproj file names no projector (clip.projector_type)"));
        };
        if projector != "mlp" {
            return Err(err(format!(
                "clip.projector_type = {projector}: this host runs LLaVA-1.5's mmproj files (projector type mlp)"
            )));
        }
        if m.contains("clip.vision.image_grid_pinpoints") {
            return Err(err(
                "clip.vision.image_grid_pinpoints: a LLaVA-NeXT (tiled, any-resolution) mmproj file; this host runs LLaVA-1.5's fixed image size",
            ));
        }
        let size = |key: &str| -> Result<usize> {
            let v = m.get_u64(key)?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v <= 1 << 20)
                .ok_or_else(|| err(format!("{key} = {v}: not a size this host takes")))
        };
        let vision = VisionConfig {
            hidden: size("clip.vision.embedding_length")?,
            intermediate: size("clip.vision.feed_forward_length")?,
            layers: size("clip.vision.block_count")?,
            heads: size("clip.vision.attention.head_count")?,
            image_size: size("clip.vision.image_size")?,
            patch_size: size("clip.vision.patch_size")?,
            layer_norm_eps: {
                let e = m.get_f64("clip.vision.attention.layer_norm_epsilon")?;
                if !(e.is_finite() && e > 0.0) {
                    return Err(err(format!(
                        "clip.vision.attention.layer_norm_epsilon = {e}: must be finite and > 0"
                    )));
                }
                e
            },
            // clip.cpp: GELU where clip.use_gelu, else CLIP's quick GELU.
            act: if flag("clip.use_gelu")? { "gelu" } else { "quick_gelu" }.to_string(),
        };
        let side = vision.image_size / vision.patch_size;
        if !vision.image_size.is_multiple_of(vision.patch_size) || !vision.hidden.is_multiple_of(vision.heads) || side > 1024 {
            return Err(err(format!(
                "image size {} in patches of {}, width {} over {} heads: not a CLIP tower this host runs",
                vision.image_size, vision.patch_size, vision.hidden, vision.heads
            )));
        }
        let three = |key: &str| -> Result<[f32; 3]> {
            let v = m.get_f32_array(key)?;
            match <[f32; 3]>::try_from(v.as_slice()) {
                Ok(a) if a.iter().all(|x| x.is_finite()) => Ok(a),
                _ => Err(err(format!("{key}: expected 3 finite values, got {v:?}"))),
            }
        };
        let image_std = three("clip.vision.image_std")?;
        if image_std.iter().any(|&s| s <= 0.0) {
            return Err(err(format!("clip.vision.image_std = {image_std:?}: must be > 0")));
        }
        let projection = file
            .require("mm.2.weight")
            .map_err(|_| err("the mmproj file has no mm.2.weight (LLaVA-1.5's projector)"))?
            .shape
            .first()
            .copied()
            .unwrap_or(0);
        if m.contains("clip.vision.feature_layer") {
            // Newer conversions name the layers whose features the projector reads; LLaVA-1.5's
            // one is the last layer kept.
            let layers = m.get_i32_array("clip.vision.feature_layer")?;
            if layers != [vision.layers as i32] {
                return Err(err(format!(
                    "clip.vision.feature_layer = {layers:?} over {} layers: this host reads the last layer's features (LLaVA-1.5)",
                    vision.layers
                )));
            }
        }
        Ok(Self {
            vision,
            image_mean: three("clip.vision.image_mean")?,
            image_std,
            projection,
        })
    }

    /// The LLaVA config of this tower over a language model: every stored layer runs (the
    /// converter kept those up to the feature layer), the class token dropped, the projector's
    /// GELU; the image's place in the prompt is the first id past the vocabulary (llama.cpp
    /// places the embeddings, no token names them).
    pub fn llava(&self, text: TextConfig) -> Result<LlavaConfig> {
        if self.projection != text.hidden {
            return Err(err(format!(
                "the mmproj file's projector gives rows of {}, the language model's width is {}: they are not a pair",
                self.projection, text.hidden
            )));
        }
        let image_token = u32::try_from(text.vocab).map_err(|_| err("a vocabulary of over 2^32 tokens"))?;
        Ok(LlavaConfig {
            vision: self.vision.clone(),
            image_token,
            feature_layer: -1,
            keep_cls: false,
            projector_act: "gelu".into(),
            text,
        })
    }
}
