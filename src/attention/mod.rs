//! Attention with VAR inside: the fused kernel (prefill, the attention matrix never in memory),
//! split-K (decode over long contexts, with [`DecodeSession`]) and the unfused path (eager
//! engines, and the fused kernel's baseline).

pub(crate) mod decls;
pub mod decode;
pub mod fused;
pub mod split;
pub mod unfused;

use crate::error::{Error, Result};
pub(crate) use crate::shape::FusedShape;
pub(crate) use crate::shape::check_head_dim;
use decls::AttnUniform;

/// The caller's buffers of one attention: Q [H, Tq, d], K and V [Hkv, Tk, d] (read) and O
/// [H, Tq, d] (written), f32. Split-K's K and V hold `capacity` keys per kv head.
#[derive(Debug, Clone)]
pub struct AttentionInputs<'a> {
    pub q: wgpu::BufferBinding<'a>,
    pub k: wgpu::BufferBinding<'a>,
    pub v: wgpu::BufferBinding<'a>,
    pub o: wgpu::BufferBinding<'a>,
}

/// Per-binding attention options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionOptions {
    /// Bottom-right aligned causal mask: query row q sits at position keys - queries + q.
    pub causal: bool,
    /// Defaults to 1 / sqrt(head_dim).
    pub scale: Option<f32>,
}

impl AttentionOptions {
    /// The softmax scale: the given one, or 1 / sqrt(head_dim); refused when not finite.
    pub fn resolve_scale(&self, head_dim: usize) -> Result<f32> {
        let scale = self.scale.unwrap_or(1.0 / (head_dim as f32).sqrt());
        if !scale.is_finite() {
            return Err(Error::Config {
                field: "scale",
                value: scale.to_string(),
                reason: "must be finite".into(),
            });
        }
        Ok(scale)
    }

    /// Refuses an attention output O [H, Tq, d] of `layer` that holds a NaN or an infinity,
    /// naming the layer, head and query row ([`Error::NonFiniteOutput`]). Finite inputs can still
    /// overflow f32 in a logit (scale x q . k past 3.4e38, e.g. q and k near 1e20, or a scale of
    /// 1e38): the online softmax then subtracts inf from inf and the row is NaN. Hosts that read
    /// O back run this before they use it; `visattn attend` does before writing `o.{l}`.
    pub fn check_output(layer: usize, shape: FusedShape, o: &[f32]) -> Result<()> {
        if o.len() != shape.q_len() {
            return Err(Error::Shape(format!("O has {} values, expected {}", o.len(), shape.q_len())));
        }
        match o.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(i) => {
                let row = i / shape.head_dim;
                Err(Error::NonFiniteOutput {
                    layer,
                    head: row / shape.queries,
                    row: row % shape.queries,
                    value: o[i],
                })
            }
        }
    }

    /// The `Attn` uniform of `shape` under these options.
    pub(crate) fn uniform(&self, shape: FusedShape) -> Result<AttnUniform> {
        Ok(AttnUniform {
            heads: shape.heads as u32,
            kv_heads: shape.kv_heads as u32,
            queries: shape.queries as u32,
            keys: shape.keys as u32,
            causal: self.causal as u32,
            scale: self.resolve_scale(shape.head_dim)?,
            pad0: 0,
            pad1: 0,
        })
    }
}

/// A shape's head_dim against the one a pipeline was built for.
pub(crate) fn check_built_for(shape: &FusedShape, head_dim: usize) -> Result<()> {
    shape.validate()?;
    if shape.head_dim != head_dim {
        return Err(Error::Shape(format!(
            "head_dim {} but this pipeline was built for {head_dim}",
            shape.head_dim
        )));
    }
    Ok(())
}
