//! The prompt through the language model: every layer's blocks bound once for the prompt's
//! length, visattn's fused attention with VAR inside (or without), the KV cache and the sink
//! classes handed to the decode session, and the generation's decode plan built.

use visattn::wgpu::Buffer;
use visattn::{
    AttentionInputs, AttentionOptions, DecodeSession, DecodeShape, FusedShape, ImageSpan, LayerPlan, Phi, Rows, SequenceShape, VarConfig,
    VarState, VisualTokens,
};

use super::blocks::{self, TextActs};
use super::decode::{DecodePlan, Generation, PendingProbe};
use super::kernels::record;
use super::linear::upload;
use super::model::{GpuModel, VarMode};
use super::probe::{Probe, Source};
use super::rope::Rope;
use super::weights::buffer;
use crate::error::{Error, Result};

/// One layer's tensors in the prefill, read back for tests (`--capture`).
#[derive(Debug, Clone, Default)]
pub struct LayerCapture {
    /// The layer's input hidden states [T, D] (what VAR scores sinks on).
    pub hidden: Vec<f32>,
    /// q [H, T, d], k and v [Hkv, T, d] after RoPE.
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// The attention's output [H, T, d].
    pub o: Vec<f32>,
}

/// Per-layer counts of the prefill under VAR.
#[derive(Debug, Clone, Default)]
pub struct LayerCounts {
    pub sinks: usize,
    pub selected_rows: usize,
}

impl GpuModel {
    /// The image span of `ids`: one contiguous run of the config's image token, as many as the
    /// image has features.
    fn image_span(&self, ids: &[u32], image: Option<&(Buffer, usize)>) -> Result<Option<ImageSpan>> {
        let at: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == self.cfg.image_token).collect();
        match (at.first(), image) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(Error::Input("the prompt has image tokens but no picture".into())),
            (Some(&s), Some((_, n))) => {
                if at.len() != *n || at.last() != Some(&(s + n - 1)) {
                    return Err(Error::Input(format!(
                        "{} image tokens (contiguous: {}) for {n} image features",
                        at.len(),
                        at.last() == Some(&(s + at.len() - 1))
                    )));
                }
                Ok(Some(ImageSpan::new(s, *n)))
            }
        }
    }

    /// [`GpuModel::prefill_async`], waiting for the GPU (native hosts and tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn prefill(
        &self,
        ids: &[u32],
        image: Option<&(Buffer, usize)>,
        var: &VarMode,
        capacity: usize,
        all_logits: bool,
        capture: bool,
    ) -> Result<Generation> {
        pollster::block_on(self.prefill_async(ids, image, var, capacity, all_logits, capture))
    }

    /// [`GpuModel::prefill`] with a picture of one answer token's attention (VAR on, a
    /// picture in the prompt): drawn in this prefill's encoder for the first answer token, in
    /// the decode step that computes it for a later one. The generation holds it
    /// ([`Generation::probe`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn prefill_probed(
        &self,
        ids: &[u32],
        image: Option<&(Buffer, usize)>,
        var: &VarMode,
        (capacity, all_logits, capture): (usize, bool, bool),
        probe: Option<Probe>,
    ) -> Result<Generation> {
        pollster::block_on(self.prefill_with(ids, image, var, (capacity, all_logits, capture), probe))
    }

    /// The prompt through the language model: `ids` with the image's tokens replaced by
    /// `image` [n, D]. Returns the generation, ready for [`GpuModel::step_async`]; `all_logits`
    /// keeps every position's logits, `capture` every layer's tensors (tests).
    pub async fn prefill_async(
        &self,
        ids: &[u32],
        image: Option<&(Buffer, usize)>,
        var: &VarMode,
        capacity: usize,
        all_logits: bool,
        capture: bool,
    ) -> Result<Generation> {
        self.prefill_with(ids, image, var, (capacity, all_logits, capture), None).await
    }

    async fn prefill_with(
        &self,
        ids: &[u32],
        image: Option<&(Buffer, usize)>,
        var: &VarMode,
        (capacity, all_logits, capture): (usize, bool, bool),
        mut probe: Option<Probe>,
    ) -> Result<Generation> {
        let c = &self.cfg.text;
        let (t_n, d, hd) = (ids.len(), c.hidden, c.head_dim);
        let (heads, kvh) = (c.heads, c.kv_heads);
        if t_n == 0 {
            return Err(Error::Input("an empty prompt".into()));
        }
        if t_n > c.max_positions {
            return Err(Error::Input(format!(
                "a prompt of {t_n} tokens is over the model's context of {}",
                c.max_positions
            )));
        }
        // Positions the prompt and its answer take, never more than the context: what the KV
        // cache and the rotary table are sized for.
        let capacity = capacity.min(c.max_positions).max(t_n + 1);
        // The image's place may be an id past the vocabulary (llama.cpp's file pairs name none).
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= c.vocab && id != self.cfg.image_token) {
            return Err(Error::Input(format!("token {id} is outside the vocabulary of {}", c.vocab)));
        }
        let span = self.image_span(ids, image)?;
        let visual = match span {
            Some(span) => VisualTokens::from_spans(&[span], t_n)?,
            None => VisualTokens::none(t_n),
        };
        let (cfg, var_on) = match var {
            // Without an image there are no visual sinks and nothing to redistribute: every
            // layer runs as with VAR off (Generation::var_ran says so).
            VarMode::On(cfg) if span.is_some() => (cfg.clone(), true),
            // Every layer off: the state only carries the decode session's (empty) classes.
            VarMode::On(_) | VarMode::Off => (
                VarConfig {
                    sink_dims: vec![0],
                    layers: LayerPlan::Only(vec![]),
                    ..VarConfig::paper()
                },
                false,
            ),
        };
        cfg.validate_for(d, c.layers)?;
        if probe.is_some() && !var_on {
            return Err(Error::Input(
                "a picture of what VAR changes needs VAR on and a picture in the prompt".into(),
            ));
        }
        let ctx = &self.k.ctx;
        let mut state = VarState::new(
            ctx,
            SequenceShape {
                tokens: t_n,
                hidden: d,
                heads,
                queries: t_n,
            },
            Rows::MayChange,
        )?
        // The host reads the classes, never phi: most tokens are ruled out early.
        .with_phi(Phi::SinksOnly);
        state.prepare(&self.queue, &cfg, &visual, c.layers)?;
        let opts = AttentionOptions { causal: true, scale: None };
        let mut session = DecodeSession::new(
            &state,
            &self.k.split,
            DecodeShape {
                layers: c.layers,
                heads,
                kv_heads: kvh,
                capacity,
            },
            opts,
        )?;
        // After the KV cache, which holds the device to its limits: the table is smaller.
        let rope = Rope::new(ctx, &self.queue, capacity, hd, c.rope_theta)?;

        let idb = upload(ctx, &self.queue, "input ids", bytemuck::cast_slice(ids))?;
        let a = TextActs::new(&self.k, c, t_n)?;
        let classes = buffer(ctx, "classes per layer", c.layers * t_n)?;
        let selected = buffer(ctx, "selected per layer", c.layers * heads * t_n)?;
        let shape = FusedShape {
            heads,
            kv_heads: kvh,
            queries: t_n,
            keys: t_n,
            head_dim: hd,
        };
        let inputs = AttentionInputs {
            q: a.q.as_entire_buffer_binding(),
            k: a.k.as_entire_buffer_binding(),
            v: a.v.as_entire_buffer_binding(),
            o: a.o.as_entire_buffer_binding(),
        };
        let (fused, plain) = if var_on {
            (Some(self.k.text_var.bind(&state, shape, opts, inputs)?), None)
        } else {
            (None, Some(self.k.text_plain.bind_plain(ctx, shape, opts, inputs)?))
        };
        let sinks = state.bind_sinks(&self.k.var, Some(a.x.as_entire_buffer_binding()))?;
        let ropes = [rope.bind((heads, t_n), 0, &a.q)?, rope.bind((kvh, t_n), 0, &a.k)?];

        let probed = match (&probe, span) {
            (Some(p), Some(span)) if p.request.token == 0 => {
                let source = Source::Prefill {
                    tokens: t_n,
                    q: &a.q,
                    k: &a.k,
                    classes: state.classes_buffer(),
                };
                Some((self.bind_probe(p, &cfg, span, &source)?, source))
            }
            _ => None,
        };
        let text = self.text();
        let mut enc = self.device.create_command_encoder(&Default::default());
        record(
            &mut enc.begin_compute_pass(&Default::default()),
            &blocks::embed(&self.k, text, t_n, &idb, &a.x)?,
        );
        if let (Some(span), Some((img, n))) = (span, image) {
            enc.copy_buffer_to_buffer(img, 0, &a.x, (span.start * d * 4) as u64, (n * d * 4) as u64);
        }
        blocks::input_norm(&self.k, c, text, &a)?.record(&mut enc.begin_compute_pass(&Default::default()), &[]);
        let mut captures = Vec::new();
        for (l, layer) in text.layers.iter().enumerate() {
            let attention_in = blocks::attention_in(&self.k, c, layer, &a, &ropes)?;
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                if var_on {
                    sinks.record(&mut pass, l)?;
                }
                record(&mut pass, &attention_in);
                match (&fused, &plain) {
                    (Some(f), _) => f.record(&mut pass, l)?,
                    (_, Some(p)) => p.record(&mut pass),
                    _ => unreachable!("one of the two is bound"),
                }
            }
            session.copy_prefill_kv(&mut enc, l, t_n, &a.k, &a.v)?;
            if var_on {
                session.capture_classes(&mut enc, &state, l)?;
                enc.copy_buffer_to_buffer(state.classes_buffer(), 0, &classes, (l * t_n * 4) as u64, (t_n * 4) as u64);
                enc.copy_buffer_to_buffer(
                    state.selected_buffer(),
                    0,
                    &selected,
                    (l * heads * t_n * 4) as u64,
                    (heads * t_n * 4) as u64,
                );
            }
            if let (Some(p), Some((row, source))) = (&probe, &probed) {
                self.record_probe(p, row, &mut enc, l, source)?;
            }
            if capture {
                self.queue
                    .submit([std::mem::replace(&mut enc, self.device.create_command_encoder(&Default::default())).finish()]);
                captures.push(LayerCapture {
                    hidden: self.read(&a.x, t_n * d).await?,
                    q: self.read(&a.q, t_n * heads * hd).await?,
                    k: self.read(&a.k, t_n * kvh * hd).await?,
                    v: self.read(&a.v, t_n * kvh * hd).await?,
                    o: self.read(&a.o, t_n * heads * hd).await?,
                });
            }
            let next = blocks::next_norm(text, l);
            let mut after = blocks::attention_out(&self.k, c, layer, &a)?;
            match &a.mlp_block {
                None => {
                    after.extend(blocks::mlp(&self.k, c, layer, &a, next)?);
                    record(&mut enc.begin_compute_pass(&Default::default()), &after);
                }
                Some(block) => {
                    record(&mut enc.begin_compute_pass(&Default::default()), &after);
                    blocks::record_mlp_in_blocks(&self.k, c, (layer, next), &a, block, &mut enc)?;
                }
            }
        }
        let rows = if all_logits { t_n } else { 1 };
        let last = buffer(ctx, "last hidden", rows * d)?;
        // The last layer left the final norm of every row in h.
        enc.copy_buffer_to_buffer(&a.h, ((t_n - rows) * d * 4) as u64, &last, 0, (rows * d * 4) as u64);
        let logits = buffer(ctx, "logits", rows * c.vocab)?;
        record(
            &mut enc.begin_compute_pass(&Default::default()),
            &blocks::head(&self.k, text, rows, &last, &logits)?,
        );
        self.queue.submit([enc.finish()]);
        let logits = self.read(&logits, rows * c.vocab).await?;
        let counts = if var_on {
            let cl: Vec<u32> = self.read(&classes, c.layers * t_n).await?;
            let se: Vec<u32> = self.read(&selected, c.layers * heads * t_n).await?;
            (0..c.layers)
                .map(|l| LayerCounts {
                    sinks: cl[l * t_n..(l + 1) * t_n].iter().filter(|&&x| x & visattn::CLASS_SINK != 0).count(),
                    selected_rows: se[l * heads * t_n..(l + 1) * heads * t_n].iter().filter(|&&x| x != 0).count(),
                })
                .collect()
        } else {
            vec![LayerCounts::default(); c.layers]
        };
        session.start(t_n)?;
        let plan = DecodePlan::new(self, &rope, &mut session)?;
        if let (Some(p), Some((row, _))) = (&mut probe, &probed) {
            p.drawn = Some(row.layers.clone());
        }
        drop(probed);
        Ok(Generation {
            probe: probe.zip(span).map(|(probe, span)| PendingProbe {
                probe,
                cfg: cfg.clone(),
                span,
                prompt: t_n,
            }),
            session,
            rope,
            logits,
            counts,
            captures,
            plan,
            var_ran: var_on,
        })
    }
}
