//! `--png`: where an answer token looked. The attention row of the query that chose answer
//! token N (the last prompt position for N = 0, answer token N - 1's position for N >= 1) over
//! the picture's patch grid, before and after VAR, in one layer or averaged over the layers VAR
//! redistributes in, for one head or the mean over the heads VAR selected.
//!
//! The fused attention never holds probabilities, so after each probed layer's attention the
//! forward pass's own encoder gets four more steps: the row's probabilities over every key
//! (visattn's unfused softmax, one query row per head), a copy of them, VAR's row kernel on the
//! copy (a [`VarState`] of that one row, holding the sinks the prefill found: the rule the fused
//! and split-K kernels apply), and the heatmap's gather. Nothing but the drawn picture comes back.

use visattn::heatmap::{GatherBinding, GatherInputs, Heatmap, HeatmapTarget, MEAN_OF_SELECTED};
use visattn::wgpu::{self, Buffer, BufferBinding, BufferUsages, CommandEncoder};
use visattn::{
    AttentionOptions, DecodeSession, FusedShape, ImageSpan, LayerBinding, LayerRole, ProbsBinding, Rows, SequenceShape, UnfusedAttention,
    VarConfig, VarState, VisualTokens,
};

use super::model::GpuModel;
use crate::error::{Error, Result};

/// What a picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRequest {
    /// Answer token N (0: the first).
    pub token: usize,
    /// One layer, or None for the mean over the layers VAR redistributes in.
    pub layer: Option<usize>,
    /// One head, or None for the mean over the heads whose row VAR selected (all heads in a
    /// layer where none was).
    pub head: Option<usize>,
    /// The frame, width x height pixels.
    pub size: (u32, u32),
}

impl ProbeRequest {
    /// The layer and head asked for exist in a language model of `c`'s shape (checked before
    /// anything is loaded by a host that has the config first).
    pub fn check(&self, c: &crate::config::TextConfig) -> Result<()> {
        if let Some(l) = self.layer.filter(|&l| l >= c.layers) {
            return Err(Error::Input(format!("--layer {l}: the model has {} layers", c.layers)));
        }
        if let Some(h) = self.head.filter(|&h| h >= c.heads) {
            return Err(Error::Input(format!("--head {h}: the model has {} heads", c.heads)));
        }
        Ok(())
    }
}

/// A picture of one generation's answer token: the heatmap pipelines and buffers, filled on
/// the GPU when the token's forward pass runs.
pub struct Probe {
    pub request: ProbeRequest,
    heatmap: Heatmap,
    target: HeatmapTarget,
    unfused: UnfusedAttention,
    /// The layers averaged, once the token's row has been recorded.
    pub(super) drawn: Option<Vec<usize>>,
}

/// The pipelines every probe of a model shares: built once (a question file draws a picture an
/// item).
#[derive(Clone)]
pub struct ProbeKernels {
    heatmap: Heatmap,
    unfused: UnfusedAttention,
}

/// The probed row's buffers and bindings, made when its forward pass is recorded.
pub(super) struct ProbeRow {
    pub(super) layers: Vec<usize>,
    keys: usize,
    q: Buffer,
    /// A decode step's keys, copied out of the cache [Hkv, keys, d] (the prefill's are
    /// contiguous already).
    k: Option<Buffer>,
    before: Buffer,
    after: Buffer,
    state: VarState,
    probs: ProbsBinding,
    rows: LayerBinding,
    gather_first: GatherBinding,
    gather_rest: GatherBinding,
}

/// Where the probed query and its keys are.
pub(super) enum Source<'a> {
    /// The prefill's last row: q [H, T, d], k [Hkv, T, d] and its VarState's classes [T].
    Prefill {
        tokens: usize,
        q: &'a Buffer,
        k: &'a Buffer,
        classes: &'a Buffer,
    },
    /// A decode step: q [H, d]; the keys and classes are the session's.
    Step { q: &'a Buffer, session: &'a DecodeSession },
}

fn whole(buffer: &Buffer, floats: usize) -> BufferBinding<'_> {
    BufferBinding {
        buffer,
        offset: 0,
        size: std::num::NonZeroU64::new((floats * 4) as u64),
    }
}

impl GpuModel {
    /// A probe for a generation whose picture has `image_tokens` features (a square grid of
    /// patches); pass it to [`GpuModel::prefill_probed`]. `picture`: the image the model saw,
    /// RGBA8 rows `width` pixels wide, drawn under the grid.
    pub fn probe(&self, request: ProbeRequest, image_tokens: usize, picture: Option<(&[u8], u32)>) -> Result<Probe> {
        let c = &self.cfg.text;
        request.check(c)?;
        let v = |e: visattn::Error| Error::Input(e.to_string());
        let grid = visattn::dump::patch_grid(ImageSpan::new(0, image_tokens)).map_err(v)?;
        let (width, height) = request.size;
        let ctx = &self.k.ctx;
        let ProbeKernels { heatmap, unfused } = match self.probe_kernels.get() {
            Some(k) => k.clone(),
            None => {
                let k = ProbeKernels {
                    heatmap: Heatmap::new(ctx, wgpu::TextureFormat::Rgba8Unorm).map_err(v)?,
                    unfused: UnfusedAttention::new(ctx, c.head_dim).map_err(v)?,
                };
                self.probe_kernels.get_or_init(|| k).clone()
            }
        };
        let target = heatmap
            .target_over(&self.device, picture.map(|(rgba, w)| (&self.queue, rgba, w)), grid, width, height)
            .map_err(v)?;
        Ok(Probe {
            unfused,
            request,
            heatmap,
            target,
            drawn: None,
        })
    }

    /// Binds the probed row of `keys` keys: its buffers, a VarState of one query row prepared as
    /// the prompt's, the softmax, VAR's rows and the gathers.
    pub(super) fn bind_probe(&self, probe: &Probe, cfg: &VarConfig, span: ImageSpan, source: &Source) -> Result<ProbeRow> {
        let c = &self.cfg.text;
        let (heads, kvh, hd) = (c.heads, c.kv_heads, c.head_dim);
        let keys = match source {
            Source::Prefill { tokens, .. } => *tokens,
            Source::Step { session, .. } => session.len() + 1,
        };
        let layers: Vec<usize> = match probe.request.layer {
            Some(l) => vec![l],
            None => (0..c.layers)
                .filter(|&l| cfg.role(l, c.layers) == LayerRole::Redistribute)
                .collect(),
        };
        if layers.is_empty() {
            return Err(Error::Input("VAR redistributes in no layer: name one with --layer".into()));
        }
        let ctx = &self.k.ctx;
        let v = |e: visattn::Error| Error::Input(e.to_string());
        let buffer = |name, floats: usize| ctx.storage_buffer(name, (floats * 4) as u64, BufferUsages::empty()).map_err(v);
        let mut state = VarState::new(
            ctx,
            SequenceShape {
                tokens: keys,
                hidden: c.hidden,
                heads,
                queries: 1,
            },
            Rows::All,
        )
        .map_err(v)?;
        state
            .prepare(&self.queue, cfg, &VisualTokens::from_spans(&[span], keys).map_err(v)?, c.layers)
            .map_err(v)?;
        let q = buffer("probe q", heads * hd)?;
        let k = match source {
            Source::Prefill { .. } => None,
            Source::Step { .. } => Some(buffer("probe keys", kvh * keys * hd)?),
        };
        let before = buffer("probe row before VAR", heads * keys)?;
        let after = buffer("probe row after VAR", heads * keys)?;
        let keys_buffer = match source {
            Source::Prefill { k, .. } => *k,
            Source::Step { .. } => k.as_ref().ok_or_else(|| Error::Input("a step's keys are copied".into()))?,
        };
        let k_binding = whole(keys_buffer, kvh * keys * hd);
        let probs = probe
            .unfused
            .bind_probs(
                FusedShape {
                    heads,
                    kv_heads: kvh,
                    queries: 1,
                    keys,
                    head_dim: hd,
                },
                AttentionOptions { causal: true, scale: None },
                whole(&q, heads * hd),
                k_binding,
                whole(&before, heads * keys),
            )
            .map_err(v)?;
        let rows = state.bind(&self.k.var, None, whole(&after, heads * keys), 0).map_err(v)?;
        let gather = |first| {
            probe.heatmap.bind_gather_mean(
                &probe.target,
                GatherInputs {
                    before: &before,
                    after: &after,
                    selected: state.selected_buffer(),
                    classes: state.classes_buffer(),
                    heads,
                    keys,
                    image_start: span.start,
                    head: probe.request.head.map_or(MEAN_OF_SELECTED, |h| h as u32),
                },
                layers.len(),
                first,
            )
        };
        let (gather_first, gather_rest) = (gather(true).map_err(v)?, gather(false).map_err(v)?);
        Ok(ProbeRow {
            layers,
            keys,
            q,
            k,
            before,
            after,
            state,
            probs,
            rows,
            gather_first,
            gather_rest,
        })
    }

    /// Records the probed row of `layer` (after its attention, before the next layer's sinks)
    /// into the forward pass's encoder; nothing for layers the picture does not show.
    pub(super) fn record_probe(
        &self,
        probe: &Probe,
        row: &ProbeRow,
        enc: &mut CommandEncoder,
        layer: usize,
        source: &Source,
    ) -> Result<()> {
        let Some(at) = row.layers.iter().position(|&l| l == layer) else {
            return Ok(());
        };
        let c = &self.cfg.text;
        let (heads, kvh, d) = (c.heads as u64, c.kv_heads as u64, (c.head_dim * 4) as u64);
        let keys = row.keys as u64;
        let v = |e: visattn::Error| Error::Input(e.to_string());
        if at == 0 {
            probe.heatmap.reset(enc, &probe.target);
        }
        match source {
            Source::Prefill { q, classes, .. } => {
                // Row T - 1 of each head of q [H, T, d].
                for h in 0..heads {
                    enc.copy_buffer_to_buffer(q, (h * keys + keys - 1) * d, &row.q, h * d, d);
                }
                row.state.copy_classes(enc, classes, 0).map_err(v)?;
            }
            Source::Step { q, session } => {
                enc.copy_buffer_to_buffer(q, 0, &row.q, 0, heads * d);
                let cache = session.key_buffer(layer).map_err(v)?;
                let capacity = session.capacity() as u64;
                let k = row.k.as_ref().ok_or_else(|| Error::Input("a step's keys are copied".into()))?;
                for h in 0..kvh {
                    enc.copy_buffer_to_buffer(cache, h * capacity * d, k, h * keys * d, keys * d);
                }
                row.state
                    .copy_classes(enc, session.classes_buffer(), session.classes_offset(layer))
                    .map_err(v)?;
            }
        }
        row.probs.record(&mut enc.begin_compute_pass(&Default::default()));
        enc.copy_buffer_to_buffer(&row.before, 0, &row.after, 0, heads * keys * 4);
        row.rows.encode_rows(enc, layer).map_err(v)?;
        let gather = if at == 0 { &row.gather_first } else { &row.gather_rest };
        probe.heatmap.gather(&mut enc.begin_compute_pass(&Default::default()), gather);
        Ok(())
    }
}

impl Probe {
    /// The layers the picture averages, once its token's forward pass ran (None before, or when
    /// the answer ended first).
    pub fn layers(&self) -> Option<&[usize]> {
        self.drawn.as_deref()
    }

    /// Draws the picture with `caption` over it: RGBA8 pixels of the requested size.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn render(&self, model: &GpuModel, caption: &str) -> Result<Vec<u8>> {
        let v = |e: visattn::Error| Error::Input(e.to_string());
        if self.drawn.is_none() {
            return Err(Error::Input(format!(
                "answer token {} was never computed: the answer ended before it",
                self.request.token
            )));
        }
        self.target.set_caption(&model.queue, caption).map_err(v)?;
        let (w, h) = self.request.size;
        visattn::heatmap::render_to_pixels(&model.device, &model.queue, &self.heatmap, &self.target, w, h).map_err(v)
    }

    /// What the picture shows per patch: the values before and after VAR [grid^2] each, and
    /// the sink flags (tests, --json).
    pub async fn values_async(&self, model: &GpuModel) -> Result<(Vec<f32>, Vec<f32>, Vec<bool>)> {
        let cells = self.target.grid() * self.target.grid();
        let values: Vec<f32> = model.read(self.target.values_buffer(), 2 * cells).await?;
        let sinks: Vec<u32> = model.read(self.target.sinks_buffer(), cells).await?;
        Ok((
            values[..cells].to_vec(),
            values[cells..].to_vec(),
            sinks.iter().map(|&s| s != 0).collect(),
        ))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn values(&self, model: &GpuModel) -> Result<(Vec<f32>, Vec<f32>, Vec<bool>)> {
        pollster::block_on(self.values_async(model))
    }

    pub fn grid(&self) -> usize {
        self.target.grid()
    }
}
