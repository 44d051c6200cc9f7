//! One decode step, bound once per generation: the step's buffers, every block's dispatches
//! with their uniforms and bind groups, and the RoPE position uniforms are made when the
//! prefill ends; a step writes the token id and the position (a few bytes), records the plan
//! into one encoder and submits once.

use visattn::DecodeSession;
use visattn::kernel::Dispatch;
use visattn::wgpu::{Buffer, CommandEncoder, ComputePass, ComputePassDescriptor};

use super::blocks::{self, TextActs};
use super::kernels::record;
use super::linear::upload;
use super::model::GpuModel;
use super::prefill::{LayerCapture, LayerCounts};
use super::probe::{Probe, Source};
use super::profile::PassClock;
#[cfg(not(target_arch = "wasm32"))]
use super::profile::StepProfile;
use super::rope::Rope;
use super::weights::buffer;
use crate::error::{Error, Result};
use crate::sampling::Draw;

/// A prefilled prompt, ready to decode.
pub struct Generation {
    pub(super) session: DecodeSession,
    /// The rotary table of this generation's positions (the prompt and its answer: the
    /// config's maximum may be any number).
    pub(super) rope: Rope,
    /// Logits of every prompt position [T, V], or of the last one [V].
    pub logits: Vec<f32>,
    pub counts: Vec<LayerCounts>,
    pub captures: Vec<LayerCapture>,
    pub(super) plan: DecodePlan,
    /// Whether VAR ran: asked for and the prompt has an image (without one there is nothing to
    /// redistribute, and the generation is VAR off's).
    pub var_ran: bool,
    /// The picture of an answer token ([`GpuModel::prefill_probed`]).
    pub(super) probe: Option<PendingProbe>,
}

/// A probe and what binding it at a decode step needs: the prompt's VAR config, image span
/// and length.
pub(super) struct PendingProbe {
    pub(super) probe: Probe,
    pub(super) cfg: visattn::VarConfig,
    pub(super) span: visattn::ImageSpan,
    pub(super) prompt: usize,
}

impl Generation {
    /// The picture of an answer token, drawn once its forward pass ran.
    pub fn probe(&self) -> Option<&Probe> {
        self.probe.as_ref().map(|p| &p.probe)
    }
    pub fn take_probe(&mut self) -> Option<Probe> {
        self.probe.take().map(|p| p.probe)
    }
}

/// One layer's step: what runs before the session's attention, and after it.
struct LayerStep {
    attention_in: Vec<Dispatch>,
    after: Vec<Dispatch>,
}

/// Everything a decode step records, bound once.
pub struct DecodePlan {
    a: TextActs,
    id: Buffer,
    logits: Buffer,
    /// The RoPE uniforms of q and k, moved to the step's position before each step.
    rope_q: Buffer,
    rope_k: Buffer,
    embed: Vec<Dispatch>,
    layers: Vec<LayerStep>,
    head: Vec<Dispatch>,
    /// The step's token picked from its logits on the device, into `picked` (the token, and 1
    /// where a logit is not finite).
    sample: super::sample::SampleStep,
    picked: Buffer,
    /// `picked` copied out by the step's own encoder, mapped after it: one submit a step.
    picked_read: Buffer,
}

impl DecodePlan {
    /// The plan of `session`'s steps: its step buffers bound to the session once.
    pub(super) fn new(model: &GpuModel, rope: &Rope, session: &mut DecodeSession) -> Result<Self> {
        let (k, c, text) = (&model.k, &model.cfg.text, model.text());
        let a = TextActs::new(k, c, 1)?;
        session.bind_step_buffers(&a.q, &a.k, &a.v, &a.o)?;
        let id = upload(&k.ctx, &model.queue, "step id", &[0.0])?;
        let logits = buffer(&k.ctx, "step logits", c.vocab)?;
        let (rope_dq, rope_q) = rope.bind_step(c.heads, &a.q)?;
        let (rope_dk, rope_k) = rope.bind_step(c.kv_heads, &a.k)?;
        let ropes = [rope_dq, rope_dk];
        let layers = text
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let mut after = blocks::attention_out(k, c, layer, &a)?;
                after.extend(blocks::mlp(k, c, layer, &a, blocks::next_norm(text, l))?);
                Ok(LayerStep {
                    attention_in: blocks::attention_in(k, c, layer, &a, &ropes)?,
                    after,
                })
            })
            .collect::<Result<_>>()?;
        let mut embed = blocks::embed(k, text, 1, &id, &a.x)?;
        embed.push(blocks::input_norm(k, c, text, &a)?);
        let picked = buffer(&k.ctx, "step token", 2)?;
        let sample = super::sample::Sample::new(&k.ctx)?.bind(&logits, 0, c.vocab, &picked)?;
        let picked_read = k.ctx.device().create_buffer(&visattn::wgpu::BufferDescriptor {
            label: Some("step token read"),
            size: 8,
            usage: visattn::wgpu::BufferUsages::MAP_READ | visattn::wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            sample,
            picked,
            picked_read,
            embed,
            head: blocks::head(k, text, 1, &a.h, &logits)?,
            layers,
            a,
            id,
            logits,
            rope_q,
            rope_k,
        })
    }
}

impl GpuModel {
    /// [`GpuModel::step_async`], waiting for the GPU (native hosts and tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&self, run: &mut Generation, token: u32) -> Result<Vec<f32>> {
        pollster::block_on(self.step_async(run, token))
    }

    /// [`GpuModel::step_greedy_async`], waiting for the GPU.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step_greedy(&self, run: &mut Generation, token: u32) -> Result<u32> {
        pollster::block_on(self.step_greedy_async(run, token))
    }

    /// [`GpuModel::step_pick_async`], waiting for the GPU.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step_pick(&self, run: &mut Generation, token: u32, draw: &Draw) -> Result<u32> {
        pollster::block_on(self.step_pick_async(run, token, draw))
    }

    /// One decode step: `token` at the next position; returns the logits [V].
    pub async fn step_async(&self, run: &mut Generation, token: u32) -> Result<Vec<f32>> {
        self.submit_step(run, token, None, None)?;
        self.read(&run.plan.logits, self.cfg.text.vocab).await
    }

    /// One decode step that returns its greedy token (the argmax of the logits, ties to the
    /// lowest id, as the sampler at temperature 0), found on the device: 8 bytes read back. A
    /// NaN or infinite logit is an error, as the sampler's.
    pub async fn step_greedy_async(&self, run: &mut Generation, token: u32) -> Result<u32> {
        self.step_pick_async(run, token, &Draw::GREEDY).await
    }

    /// One decode step that returns the token `draw` picks from its logits (greedy, or top-p at
    /// the draw's temperature and uniform number, as `sampling::pick`), picked on the device: 8
    /// bytes read back. A NaN or infinite logit is an error, as the sampler's.
    pub async fn step_pick_async(&self, run: &mut Generation, token: u32, draw: &Draw) -> Result<u32> {
        self.submit_step(run, token, Some(draw), None)?;
        self.picked_async(run).await
    }

    /// One greedy decode step (as [`GpuModel::step_greedy`]), its passes timed on the device's
    /// clock where the device has timestamp queries (else no profile): the bench's account of
    /// a step.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step_profiled(&self, run: &mut Generation, token: u32) -> Result<(u32, Option<StepProfile>)> {
        let clock = PassClock::new(&self.device, 2 + 3 * run.plan.layers.len());
        self.submit_step(run, token, Some(&Draw::GREEDY), clock.as_ref())?;
        let picked = pollster::block_on(self.picked_async(run))?;
        let profile = clock.map(|c| c.read(&self.device, &self.queue)).transpose()?;
        Ok((picked, profile))
    }

    /// The token of the step just submitted, copied out by its own encoder (one submit a step;
    /// a NaN or infinite logit is an error, as the sampler's).
    async fn picked_async(&self, run: &Generation) -> Result<u32> {
        #[cfg(not(target_arch = "wasm32"))]
        let bytes = visattn::readback::map_read(&self.device, &run.plan.picked_read, 8)?;
        #[cfg(target_arch = "wasm32")]
        let bytes = visattn::readback::map_read_async(&run.plan.picked_read, 8).await?;
        match bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)[..] {
            [picked, 0] => Ok(picked),
            _ => Err(Error::Input(
                "a logit of the step is NaN or infinite: the forward pass went wrong".into(),
            )),
        }
    }

    /// Records and submits a decode step (and the token `draw` picks from its logits, where
    /// there is one; with `clock`, timestamps around its passes).
    fn submit_step(&self, run: &mut Generation, token: u32, draw: Option<&Draw>, clock: Option<&PassClock>) -> Result<()> {
        let c = &self.cfg.text;
        if token as usize >= c.vocab {
            return Err(Error::Input(format!("token {token} is outside the vocabulary of {}", c.vocab)));
        }
        let pos = run.session.len();
        if pos >= c.max_positions {
            return Err(Error::Input(format!(
                "position {pos} is past the model's context of {}",
                c.max_positions
            )));
        }
        run.session.begin_step(&self.queue)?;
        let p = &run.plan;
        self.queue.write_buffer(&p.id, 0, bytemuck::bytes_of(&token));
        run.rope.set_position(&self.queue, &p.rope_q, c.heads, pos)?;
        run.rope.set_position(&self.queue, &p.rope_k, c.kv_heads, pos)?;
        // The step that computes the probed answer token records its row.
        let source = Source::Step {
            q: &p.a.q,
            session: &run.session,
        };
        let probed = match &run.probe {
            Some(pp) if pp.probe.drawn.is_none() && pp.prompt + pp.probe.request.token == pos + 1 => {
                Some((&pp.probe, self.bind_probe(&pp.probe, &pp.cfg, pp.span, &source)?))
            }
            _ => None,
        };
        // One pass for the whole step (the session's record_layer keeps the attention's copies
        // inside it); a pass a part of each layer where a clock times them (pass i's
        // descriptor: its timestamps), and the probe records its own passes after the
        // attention it draws.
        let split = clock.is_some() || probed.is_some();
        let timed = |i: usize| clock.map_or_else(Default::default, |c| c.pass(i));
        let mut enc = self.device.create_command_encoder(&Default::default());
        let mut pass = enc.begin_compute_pass(&timed(0)).forget_lifetime();
        record(&mut pass, &p.embed);
        for (l, layer) in p.layers.iter().enumerate() {
            if split {
                pass = next_pass(pass, &mut enc, &timed(1 + 3 * l));
            }
            record(&mut pass, &layer.attention_in);
            if split {
                pass = next_pass(pass, &mut enc, &timed(2 + 3 * l));
            }
            run.session.record_layer(&mut pass, l)?;
            if let Some((probe, row)) = &probed {
                drop(pass);
                self.record_probe(probe, row, &mut enc, l, &source)?;
                pass = enc.begin_compute_pass(&timed(3 + 3 * l)).forget_lifetime();
            } else if split {
                pass = next_pass(pass, &mut enc, &timed(3 + 3 * l));
            }
            record(&mut pass, &layer.after);
        }
        if split {
            pass = next_pass(pass, &mut enc, &timed(1 + 3 * p.layers.len()));
        }
        record(&mut pass, &p.head);
        if let Some(draw) = draw {
            p.sample.set(&self.queue, draw);
            p.sample.dispatch.record(&mut pass, &[]);
        }
        drop(pass);
        if draw.is_some() {
            enc.copy_buffer_to_buffer(&p.picked, 0, &p.picked_read, 0, 8);
        }
        if let Some(c) = clock {
            c.resolve(&mut enc);
        }
        self.queue.submit([enc.finish()]);
        let drawn = probed.map(|(_, row)| row.layers);
        if let (Some(pp), Some(layers)) = (&mut run.probe, drawn) {
            pp.probe.drawn = Some(layers);
        }
        run.session.end_step();
        Ok(())
    }
}

/// Ends `pass` and begins the next on `enc`.
fn next_pass(pass: ComputePass<'static>, enc: &mut CommandEncoder, desc: &ComputePassDescriptor<'_>) -> ComputePass<'static> {
    drop(pass);
    enc.begin_compute_pass(desc).forget_lifetime()
}
