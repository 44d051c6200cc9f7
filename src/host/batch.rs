//! Batches on the host: sequences of their own lengths left-padded (as HF pads) into the
//! session's layout, run in one dispatch per kernel, and unpadded again.

use wgpu::Queue;

use super::{HostSession, LayerOutput};
use crate::error::{Error, Result};
use crate::shape::AttnShape;
use crate::var::check_finite;
use crate::var::config::LayerRole;

/// One sequence's inputs to [`HostSession::run_batch_layer`]: its own hidden states [T_b, D]
/// (None for layers that do not detect) and probabilities [H, Q_b, K_b], unpadded.
#[derive(Debug, Clone, Copy)]
pub struct SequenceInput<'a> {
    pub hidden: Option<&'a [f32]>,
    pub probs: &'a [f32],
    pub queries: usize,
    pub keys: usize,
}

impl HostSession {
    /// Runs `layer` on every sequence of the batch in one dispatch per kernel (left-padding
    /// them into the batch layout), and returns each sequence's results, unpadded.
    pub fn run_batch_layer(&self, queue: &Queue, layer: usize, inputs: &[SequenceInput]) -> Result<Vec<LayerOutput>> {
        let s = self.state.shape();
        let batch = self.state.batch();
        if inputs.len() != batch || self.placements.len() != batch {
            return Err(Error::Shape(format!(
                "{} sequences for a batch of {batch} (prepare_batch first)",
                inputs.len()
            )));
        }
        let detects = self.state.role(layer)? != LayerRole::Off;
        let mut hidden = detects.then(|| vec![0f32; batch * s.tokens * s.hidden]);
        let mut probs = vec![0f32; batch * s.heads * s.queries * s.tokens];
        for (b, (input, p)) in inputs.iter().zip(&self.placements).enumerate() {
            if (input.keys, input.queries) != (s.tokens - p.key_offset, s.queries - p.row_offset) {
                return Err(Error::Shape(format!(
                    "sequence {b}: {} rows x {} keys, but it was prepared with {} x {}",
                    input.queries,
                    input.keys,
                    s.queries - p.row_offset,
                    s.tokens - p.key_offset
                )));
            }
            AttnShape::new(s.heads, input.queries, input.keys)?.check_probs(input.probs.len())?;
            check_finite("attentions", input.probs)?;
            for h in 0..s.heads {
                for q in 0..input.queries {
                    let src = &input.probs[(h * input.queries + q) * input.keys..][..input.keys];
                    let row = (b * s.heads + h) * s.queries + p.row_offset + q;
                    probs[row * s.tokens + p.key_offset..][..input.keys].copy_from_slice(src);
                }
            }
            if let Some(hidden) = hidden.as_mut() {
                let h = input
                    .hidden
                    .ok_or_else(|| Error::Shape(format!("layer {layer} detects sinks: sequence {b} needs its hidden states")))?;
                if h.len() != input.keys * s.hidden {
                    return Err(Error::Shape(format!(
                        "sequence {b}: hidden states have {} values, expected {} x {}",
                        h.len(),
                        input.keys,
                        s.hidden
                    )));
                }
                check_finite("hidden_states", h)?;
                hidden[(b * s.tokens + p.key_offset) * s.hidden..][..h.len()].copy_from_slice(h);
            }
        }
        let all = self.run_padded(queue, layer, hidden.as_deref(), &probs)?;
        let mut out = Vec::with_capacity(batch);
        for (b, (input, p)) in inputs.iter().zip(&self.placements).enumerate() {
            let mut seq_probs = Vec::with_capacity(s.heads * input.queries * input.keys);
            let mut selected = Vec::with_capacity(s.heads * input.queries);
            for h in 0..s.heads {
                for q in 0..input.queries {
                    let row = (b * s.heads + h) * s.queries + p.row_offset + q;
                    seq_probs.extend_from_slice(&all.probs[row * s.tokens + p.key_offset..][..input.keys]);
                    selected.push(all.selected[row]);
                }
            }
            let tokens = b * s.tokens + p.key_offset..(b + 1) * s.tokens;
            out.push(LayerOutput {
                probs: seq_probs,
                phi: all.phi[tokens.clone()].to_vec(),
                sinks: all.sinks[tokens].to_vec(),
                selected,
            });
        }
        Ok(out)
    }
}
