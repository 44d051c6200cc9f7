//! Which [`KernelSettings`] are fastest on the adapter at hand, measured rather than guessed: a
//! small probe layer (sink scoring and the row kernel over every row, the work whose speed the
//! settings change) timed once per candidate. Hosts cache the answer by adapter
//! (`KernelSettings::to_string` / `parse`) and pay the probe once.

use std::time::Instant;

use wgpu::util::DeviceExt;
use wgpu::{BufferUsages, Device, Queue};

use super::config::VarConfig;
use super::decls::VarRowsVariant;
use super::kernels::{KernelSettings, Phi, VarKernels};
use super::state::{Rows, SequenceShape, VarState};
use super::visual::{ImageSpan, VisualTokens};
use crate::error::{Error, Result};
use crate::kernel::Context;

/// The candidates: lanes per row from one to a workgroup, 4 to 16 keys per lane, loading the
/// rows from the caller's buffer or from a texture copy of them.
pub const CANDIDATES: [KernelSettings; 8] = {
    const fn s(lanes_per_row: u32, keys_per_lane: u32, stage_in_texture: bool) -> KernelSettings {
        KernelSettings {
            lanes_per_row,
            keys_per_lane,
            stage_in_texture,
        }
    }
    [
        s(1, 16, false),
        s(4, 4, false),
        s(4, 16, false),
        s(16, 4, false),
        s(64, 4, false),
        s(1, 16, true),
        s(4, 16, true),
        s(64, 4, true),
    ]
};

/// What the probe measured.
#[derive(Debug, Clone)]
pub struct Autotune {
    /// The fastest candidate.
    pub best: KernelSettings,
    /// Every candidate with its median seconds on the probe, in [`CANDIDATES`] order.
    pub timings: Vec<(KernelSettings, f64)>,
    /// Bytes of attention probabilities and hidden states the probe layer reads.
    pub probe_bytes: u64,
}

// The probe: a LLaVA-like layer, small enough to time in milliseconds, large enough that
// bandwidth, not dispatch, dominates (2.4 MB of probabilities).
const TOKENS: usize = 384;
const HEADS: usize = 4;
const HIDDEN: usize = 512;
const REPEATS: usize = 5;
// A candidate whose first timed run takes this many times the best first run is out: that run
// is its timing (on CPU adapters the 64-lane candidate is 5-10x slower).
const CUTOFF: f64 = 2.0;

impl KernelSettings {
    /// Times every [`CANDIDATES`] entry on a probe layer (sink scoring and the row kernel over
    /// all 1536 rows of 4 heads x 384 tokens, 2.4 MB) on this device: a warm-up run each, then
    /// 5 rounds over the candidates in turn, each candidate's timing the median of its rounds (a
    /// candidate whose first round is over twice the best first round keeps that one time), and
    /// returns the fastest with every timing. Only the pipelines the probe records are built.
    /// Waits for the GPU (native only; a browser host measures in a worker or uses
    /// [`KernelSettings::for_adapter`]). Pipelines are built in a context of its own: the host's
    /// cache only gets the winner when it uses it.
    pub fn autotune(device: &Device, queue: &Queue) -> Result<Autotune> {
        let ctx = Context::new(device);
        let shape = SequenceShape {
            tokens: TOKENS,
            hidden: HIDDEN,
            heads: HEADS,
            queries: TOKENS,
        };
        let visual = VisualTokens::from_spans(&[ImageSpan::new(16, 288)], TOKENS)?;
        let cfg = VarConfig {
            sink_dims: vec![7],
            tau: 0.5 * (HIDDEN as f64).sqrt(),
            ..VarConfig::paper()
        };
        let mut state = VarState::new(&ctx, shape, Rows::All)?;
        state.prepare(queue, &cfg, &visual, 32)?;
        // Sinks at BOS and every 50th image token; causal rows leaning on BOS and the image.
        let hidden: Vec<f32> = (0..TOKENS * HIDDEN)
            .map(|i| {
                let (t, d) = (i / HIDDEN, i % HIDDEN);
                let sink = d == 7 && (t == 0 || ((16..304).contains(&t) && (t - 16) % 50 == 3));
                if sink {
                    40.0
                } else {
                    ((i * 2_654_435_761) % 1000) as f32 / 1000.0 - 0.5
                }
            })
            .collect();
        let mut probs = vec![0f32; HEADS * TOKENS * TOKENS];
        for (r, row) in probs.chunks_exact_mut(TOKENS).enumerate() {
            let q = r % TOKENS;
            let n = (q + 1) as f32;
            for (j, p) in row.iter_mut().enumerate().take(q + 1) {
                *p = if j == 0 { 0.3 } else { 0.7 / n };
            }
        }
        let usage = BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC;
        let upload = |data: &[f32]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("autotune probe"),
                contents: bytemuck::cast_slice(data),
                usage,
            })
        };
        let (hidden_buf, probs_buf) = (upload(&hidden), upload(&probs));
        build_all(&ctx)?;
        let bindings = CANDIDATES
            .iter()
            .map(|&settings| {
                let kernels = VarKernels::on_demand(&ctx, settings)?;
                state.bind(
                    &kernels,
                    Some(hidden_buf.as_entire_buffer_binding()),
                    probs_buf.as_entire_buffer_binding(),
                    0,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let run = |i: usize| -> Result<f64> {
            let t0 = Instant::now();
            let mut encoder = device.create_command_encoder(&Default::default());
            bindings[i].encode(&mut encoder, 3)?;
            queue.submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Gpu(format!("autotune: {e}")))?;
            Ok(t0.elapsed().as_secs_f64())
        };
        // Rounds over the candidates in turn, not each candidate's runs back to back: a few
        // slow milliseconds of the machine then slow one run of every candidate, not all the
        // runs of one (that once picked a candidate 2x slower on real shapes).
        for i in 0..bindings.len() {
            run(i)?;
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(REPEATS); bindings.len()];
        let mut alive: Vec<usize> = (0..bindings.len()).collect();
        for round in 0..REPEATS {
            for &i in &alive {
                times[i].push(run(i)?);
            }
            if round == 0 {
                let best = times.iter().map(|t| t[0]).fold(f64::INFINITY, f64::min);
                alive.retain(|&i| times[i][0] <= CUTOFF * best);
            }
        }
        let timings: Vec<(KernelSettings, f64)> = CANDIDATES
            .iter()
            .zip(&mut times)
            .map(|(&settings, t)| {
                t.sort_by(f64::total_cmp);
                (settings, t[t.len() / 2])
            })
            .collect();
        let best = timings
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|&(s, _)| s)
            .unwrap_or_default();
        Ok(Autotune {
            best,
            timings,
            probe_bytes: ((probs.len() + hidden.len()) * 4) as u64,
        })
    }
}

/// The pipelines the probe records, for one candidate.
fn build(ctx: &Context, settings: KernelSettings) -> Result<()> {
    let kernels = VarKernels::on_demand(ctx, settings)?;
    kernels.sink(Phi::All)?;
    kernels.rows(VarRowsVariant::Scalar, true)?;
    kernels.rows(VarRowsVariant::Vec4, true)?;
    if settings.stage_in_texture {
        kernels.rows(VarRowsVariant::Staged, true)?;
    }
    Ok(())
}

/// Compiling is most of the probe's time on CPU adapters (LLVM, tens of ms a pipeline): every
/// candidate's pipelines at once, a thread each, into the probe's cache.
#[cfg(not(target_arch = "wasm32"))]
fn build_all(ctx: &Context) -> Result<()> {
    std::thread::scope(|scope| {
        // Error scopes belong to a thread: each worker opens its own, so a shader the device
        // refuses comes back as an error, not to the uncaptured-error handler.
        let builds: Vec<_> = CANDIDATES
            .iter()
            .map(|&s| scope.spawn(move || crate::error::scoped_blocking(ctx.device(), || build(ctx, s))?))
            .collect();
        builds.into_iter().try_for_each(|b| {
            b.join()
                .unwrap_or_else(|_| Err(Error::Gpu("autotune: a pipeline build panicked".into())))
        })
    })
}

#[cfg(target_arch = "wasm32")]
fn build_all(ctx: &Context) -> Result<()> {
    CANDIDATES.iter().try_for_each(|&s| build(ctx, s))
}
