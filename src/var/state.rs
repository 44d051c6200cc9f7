//! A sequence's VAR state on the GPU and the recording of one layer into the caller's pass.
//!
//! The embed pattern: a [`Context`] and [`VarKernels`] once per device, [`VarState::new`] once
//! per sequence shape, [`VarState::prepare`] once per prompt (config, image spans),
//! [`VarState::bind`] once per set of caller buffers, then [`LayerBinding::record`] per layer into
//! the caller's compute pass (or [`LayerBinding::encode`] into its encoder, which may stage the
//! rows in a texture first): the binding carries what it needs.

use std::sync::{Arc, RwLock};

use wgpu::{Buffer, BufferBinding, BufferUsages, CommandEncoder, ComputePass, Queue};

use super::config::{LayerRole, VarConfig};
use super::decls::{
    ConfigUniform, ROLES, RangeUniform, SeqUniform, SinkScore, SinkScoreInputs, SlotShape, VarRows, VarRowsInputs, VarRowsVariant,
};
use super::kernels::{Phi, VarKernels};
use super::staging::{STAGE_WIDTH, StagingLayout, StagingTextures};
use super::visual::VisualTokens;
use super::{CLASS_IMAGE, CLASS_IMAGE_TILE, KEY_TILE, MAX_SINK_DIMS, VIS_EPS};
use crate::error::{Error, Result};
use crate::kernel::{Context, Dispatch, Storage, UniformBlock};

const CONFIG_SIZE: u64 = ConfigUniform::LAYOUT.size;

/// The sizes of one sequence: `tokens` = T = K, `hidden` = D, `heads` = H, `queries` = Q
/// (Q = T in prefill, 1 in a decode step; query row q sits at position T - Q + q).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceShape {
    pub tokens: usize,
    pub hidden: usize,
    pub heads: usize,
    pub queries: usize,
}

impl SequenceShape {
    pub fn attn(&self) -> crate::AttnShape {
        crate::AttnShape {
            heads: self.heads,
            queries: self.queries,
            keys: self.tokens,
        }
    }
    fn validate(&self) -> Result<()> {
        if self.hidden == 0 {
            return Err(Error::Shape("hidden size D must be > 0".into()));
        }
        crate::AttnShape::new(self.heads, self.queries, self.tokens)?;
        if self.tokens.checked_mul(self.hidden).is_none_or(|n| n > u32::MAX as usize) {
            return Err(Error::Shape(format!(
                "hidden states {} x {} are too large",
                self.tokens, self.hidden
            )));
        }
        Ok(())
    }
}

/// Which rows the row kernel visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rows {
    /// Every (head, query row): `selected` is complete. What dumps and reports need.
    #[default]
    All,
    /// Only rows at or after the end of the first image span (the rows that may change):
    /// skips the bandwidth of the rest. `selected` entries of skipped rows are not written.
    MayChange,
}

/// What `prepare` decided for the prompt: each layer's role and the first row the row kernel
/// visits. Shared with the bindings, which read it when they record.
#[derive(Debug)]
pub(crate) struct Prepared {
    roles: Vec<LayerRole>,
    row_start: usize,
    slot_stride: u64,
    /// Every sequence's first key is a multiple of 4 (the vec4 row kernel's groups align).
    keys_aligned: bool,
}

type Plan = Arc<RwLock<Option<Prepared>>>;

/// What recording `layer` needs from the plan prepared last, read under one lock.
struct LayerPlanned {
    role: LayerRole,
    /// The dynamic offset of the role's config slot.
    offset: u32,
    row_start: usize,
    keys_aligned: bool,
}

fn role_of(plan: &Plan, layer: usize) -> Result<LayerPlanned> {
    let guard = plan.read().unwrap_or_else(|e| e.into_inner());
    let p = guard.as_ref().ok_or_else(|| Error::Binding {
        name: "state",
        reason: "VarState::prepare must run before recording".into(),
    })?;
    let role = *p.roles.get(layer).ok_or(Error::Layer {
        layer,
        layers: p.roles.len(),
    })?;
    Ok(LayerPlanned {
        role,
        offset: (role as u64 * p.slot_stride) as u32,
        row_start: p.row_start,
        keys_aligned: p.keys_aligned,
    })
}

/// Per-sequence GPU state: the role-slot uniforms, the image mask, the sink dims, and the
/// outputs phi, classes and selected, which the caller may copy out after each layer.
pub struct VarState {
    ctx: Context,
    shape: SequenceShape,
    batch: usize,
    rows: Rows,
    phi_mode: Phi,
    slot_stride: u64,
    config: Buffer,
    sink_dims: Buffer,
    seqs: Buffer,
    visual: Buffer,
    phi: Buffer,
    classes: Buffer,
    selected: Buffer,
    placeholder: Buffer,
    plan: Plan,
    staging: StagingTextures,
}

/// Bind groups for one set of caller buffers: the hidden states of a layer (optional for layers
/// that do not detect) and a range of heads of its probabilities.
pub struct LayerBinding {
    sinks: SinkBinding,
    rows: Dispatch,
    /// The row kernel over vec4 probabilities, where K is a multiple of 4; recorded instead
    /// of `rows` when the prepared sequence's first key is one too.
    rows_vec4: Option<Dispatch>,
    /// The vec4 row kernel reading a texture copy of the rows, where the settings stage them
    /// and the caller's buffer can be copied from; recorded by [`LayerBinding::encode`].
    staged: Option<Staged>,
    heads: usize,
    queries: usize,
    /// Heads per block of rows (var_rows.wgsl): each block starts on a workgroup of its own.
    block_heads: usize,
    rows_per_workgroup: usize,
}

/// The staged row kernel's bind group and what its copy needs.
struct Staged {
    dispatch: Dispatch,
    texture: wgpu::Texture,
    buffer: Buffer,
    offset: u64,
    layout: StagingLayout,
}

/// The sink kernel's bind group: the caller's hidden states and the state's outputs.
pub struct SinkBinding {
    dispatch: Dispatch,
    has_hidden: bool,
    plan: Plan,
}

/// One sequence of a batch: its image tokens over its own keys, and its query rows. Shorter
/// sequences are left-padded (as HF pads) to the state's [T] keys and [Q] rows.
#[derive(Debug, Clone, Copy)]
pub struct BatchEntry<'a> {
    pub visual: &'a VisualTokens,
    pub queries: usize,
}

/// Where a sequence sits in the padded batch layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// First real key (and token) of the sequence: T - its keys.
    pub key_offset: usize,
    /// First real query row: Q - its rows.
    pub row_offset: usize,
}

impl VarState {
    /// Allocates the buffers of one sequence. Fails when an output would exceed a device limit.
    pub fn new(ctx: &Context, shape: SequenceShape, rows: Rows) -> Result<Self> {
        Self::new_batch(ctx, shape, 1, rows)
    }

    /// Allocates the buffers of a batch of `batch` sequences, each at most `shape` (the padded
    /// sizes): hidden states [B, T, D], probabilities [B, H, Q, K] with heads counted over B x H.
    pub fn new_batch(ctx: &Context, shape: SequenceShape, batch: usize, rows: Rows) -> Result<Self> {
        shape.validate()?;
        if batch == 0 {
            return Err(Error::Shape("a batch needs at least one sequence".into()));
        }
        let align = ctx.limits().min_uniform_buffer_offset_alignment;
        let slot_stride = CONFIG_SIZE.div_ceil(align) * align;
        let config = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("visattn config slots"),
            size: slot_stride * ROLES.len() as u64,
            usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let buffer = |name, len: usize| ctx.storage_buffer(name, (len * 4) as u64, BufferUsages::empty());
        let tokens = batch * shape.tokens;
        Ok(Self {
            selected: buffer("selected", batch * shape.heads * shape.queries)?,
            sink_dims: buffer("visattn sink dims", MAX_SINK_DIMS)?,
            seqs: buffer("visattn sequences", batch * 4)?,
            visual: buffer("visattn image mask", tokens)?,
            phi: buffer("visattn phi", tokens)?,
            classes: buffer("visattn classes", tokens)?,
            placeholder: buffer("visattn no hidden states", 4)?,
            ctx: ctx.clone(),
            shape,
            batch,
            rows,
            phi_mode: Phi::All,
            slot_stride,
            config,
            plan: Default::default(),
            staging: Default::default(),
        })
    }

    pub fn shape(&self) -> SequenceShape {
        self.shape
    }

    /// Which tokens get a phi score from bindings made after this call (default [`Phi::All`]).
    pub fn with_phi(mut self, phi: Phi) -> Self {
        self.phi_mode = phi;
        self
    }

    pub fn phi(&self) -> Phi {
        self.phi_mode
    }

    /// Sequences in the batch (1 unless built with [`VarState::new_batch`]).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Uploads a prompt's settings: the config for each layer role, the image mask and the
    /// sink dims. Call once per prompt (sinks are per prompt, var-spec.md section 1).
    pub fn prepare(&mut self, queue: &Queue, cfg: &VarConfig, visual: &VisualTokens, layers: usize) -> Result<()> {
        if visual.tokens() != self.shape.tokens {
            return Err(Error::Shape(format!(
                "image mask covers {} tokens, the sequence has {}",
                visual.tokens(),
                self.shape.tokens
            )));
        }
        let queries = self.shape.queries;
        self.prepare_batch(queue, cfg, &[BatchEntry { visual, queries }], layers)
            .map(|_| ())
    }

    /// [`prepare`](Self::prepare) for a batch: one entry per sequence, each with its own length,
    /// rows and image spans. Returns where each sequence sits in the padded layout.
    pub fn prepare_batch(&mut self, queue: &Queue, cfg: &VarConfig, entries: &[BatchEntry], layers: usize) -> Result<Vec<Placement>> {
        cfg.validate_for(self.shape.hidden, layers)?;
        if cfg.sink_dims.len() > MAX_SINK_DIMS {
            return Err(Error::Config {
                field: "sink_dims",
                value: cfg.sink_dims.len().to_string(),
                reason: format!("at most {MAX_SINK_DIMS} sink dimensions on the GPU"),
            });
        }
        let s = self.shape;
        if entries.len() != self.batch {
            return Err(Error::Shape(format!(
                "{} sequences given for a batch of {}",
                entries.len(),
                self.batch
            )));
        }
        let mut placements = Vec::with_capacity(entries.len());
        let mut seqs = Vec::with_capacity(entries.len());
        let mut mask = vec![0u32; self.batch * s.tokens];
        for (b, e) in entries.iter().enumerate() {
            let keys = e.visual.tokens();
            if keys > s.tokens || e.queries == 0 || e.queries > s.queries || e.queries > keys {
                return Err(Error::Shape(format!(
                    "sequence {b}: {} rows over {keys} keys does not fit the batch's {} rows over {} keys",
                    e.queries, s.queries, s.tokens
                )));
            }
            let p = Placement {
                key_offset: s.tokens - keys,
                row_offset: s.queries - e.queries,
            };
            let first = match self.rows {
                Rows::All => 0,
                Rows::MayChange => (e.visual.first_end() + e.queries).saturating_sub(keys).min(e.queries),
            };
            seqs.push(SeqUniform {
                key_offset: p.key_offset as u32,
                first_row: (p.row_offset + first) as u32,
                first_image_end: (p.key_offset + e.visual.first_end()) as u32,
                vis_eps: (e.visual.count() as f64 * VIS_EPS) as f32,
            });
            for (j, &m) in e.visual.mask().iter().enumerate() {
                mask[b * s.tokens + p.key_offset + j] = if m { CLASS_IMAGE } else { 0 };
            }
            // The fused kernel finds its runs of image tiles with this bit, one load per tile
            // instead of one per key.
            for tile in mask[b * s.tokens..(b + 1) * s.tokens].chunks_mut(KEY_TILE) {
                if tile.iter().any(|m| m & CLASS_IMAGE != 0) {
                    tile.iter_mut().for_each(|m| *m |= CLASS_IMAGE_TILE);
                }
            }
            placements.push(p);
        }
        let row_start = seqs.iter().map(|q| q.first_row as usize).min().unwrap_or(0);
        let mut slots = vec![0u8; (self.slot_stride * ROLES.len() as u64) as usize];
        for (i, role) in ROLES.iter().enumerate() {
            // The single-sequence fields of Config (image end, epsilon) describe sequence 0:
            // the fused kernel reads them and runs batches of one.
            let u = ConfigUniform::new(
                cfg,
                *role,
                SlotShape {
                    tokens: s.tokens,
                    hidden: s.hidden,
                    heads: s.heads,
                    queries: s.queries,
                    row_start,
                    first_image_end: seqs[0].first_image_end as usize,
                    n_visual: entries[0].visual.count(),
                },
            );
            let at = i * self.slot_stride as usize;
            slots[at..at + CONFIG_SIZE as usize].copy_from_slice(bytemuck::bytes_of(&u));
        }
        queue.write_buffer(&self.config, 0, &slots);
        queue.write_buffer(&self.sink_dims, 0, bytemuck::cast_slice(&cfg.sink_dims));
        queue.write_buffer(&self.seqs, 0, bytemuck::cast_slice(&seqs));
        queue.write_buffer(&self.visual, 0, bytemuck::cast_slice(&mask));
        *self.plan.write().unwrap_or_else(|e| e.into_inner()) = Some(Prepared {
            roles: (0..layers).map(|l| cfg.role(l, layers)).collect(),
            row_start,
            slot_stride: self.slot_stride,
            keys_aligned: placements.iter().all(|p| p.key_offset % 4 == 0),
        });
        Ok(placements)
    }

    /// Binds the caller's buffers: `hidden` holds [T, D] f32 (None when the bound layers never
    /// detect sinks), `probs` holds heads `first_head..` of [H, Q, K] f32 (whole heads; a range
    /// of heads lets a layer over the binding limit go through in chunks).
    pub fn bind(
        &self,
        kernels: &VarKernels,
        hidden: Option<BufferBinding>,
        probs: BufferBinding,
        first_head: usize,
    ) -> Result<LayerBinding> {
        let s = self.shape;
        let row_bytes = (s.queries * s.tokens * 4) as u64;
        let probs_size = crate::kernel::check_binding(self.ctx.limits(), "probs", &probs)?;
        if probs_size == 0 || probs_size % row_bytes != 0 {
            return Err(Error::Binding {
                name: "probs",
                reason: format!(
                    "{probs_size} bytes is not a whole number of heads of Q x K = {} x {} f32",
                    s.queries, s.tokens
                ),
            });
        }
        let heads = (probs_size / row_bytes) as usize;
        if first_head + heads > self.batch * s.heads {
            return Err(Error::Binding {
                name: "probs",
                reason: format!(
                    "heads {first_head}..{} exceed the {} heads of {} sequence(s)",
                    first_head + heads,
                    s.heads,
                    self.batch
                ),
            });
        }
        let sinks = self.bind_sinks(kernels, hidden)?;
        let range = self.range_buffer(first_head, heads);
        // Every workgroup's rows in one sequence (one sequence, or whole sequences of a batch):
        // its classes packed once per workgroup.
        let whole_sequences = first_head % s.heads == 0 && heads % s.heads == 0;
        let packed = (self.batch == 1 || whole_sequences) && s.tokens <= crate::var::kernels::MAX_PACKED_TOKENS;
        let elements = heads * s.queries * s.tokens;
        // The row kernel's variants bind the same buffers: probs counted in f32 or in vec4,
        // and the staging texture where the variant loads from it.
        let bind_rows = |variant, packed, staged: Option<&wgpu::TextureView>| -> Result<Dispatch> {
            let need = match variant {
                VarRowsVariant::Scalar => elements,
                VarRowsVariant::Vec4 | VarRowsVariant::Staged => elements / 4,
            };
            let inputs = VarRowsInputs {
                cfg: self.config_binding(),
                rng: range.as_entire_buffer_binding(),
                probs: Storage::new(probs.clone(), need),
                classes: Storage::whole(&self.classes),
                selected: Storage::whole(&self.selected),
                seqs: Storage::whole(&self.seqs),
                staged,
            };
            self.ctx.bind::<VarRows>(&kernels.rows(variant, packed)?, inputs, 0)
        };
        let rows = bind_rows(VarRowsVariant::Scalar, packed, None)?;
        // One load and one store per group of 4 keys, where every group sits on 16 bytes (the
        // binding's offset too: some drivers align storage offsets to 4 only).
        let vec4 = packed && s.tokens % 4 == 0 && probs.offset % 16 == 0;
        let rows_vec4 = if vec4 {
            Some(bind_rows(VarRowsVariant::Vec4, true, None)?)
        } else {
            None
        };
        // Staged where the copy is possible (the caller's buffer allows COPY_SRC) and the rows
        // fit a texture; otherwise encode records the buffer kernels, with the same results.
        let layout = StagingLayout {
            heads,
            queries: s.queries,
            tokens: s.tokens,
        };
        let max_side = self.ctx.device().limits().max_texture_dimension_2d;
        let staged = if vec4
            && kernels.settings.stage_in_texture
            && probs.buffer.usage().contains(BufferUsages::COPY_SRC)
            && STAGE_WIDTH <= max_side
            && layout.height() <= max_side as u64
        {
            let (texture, view) = self.staging.get(self.ctx.device(), layout.height() as u32);
            let dispatch = bind_rows(VarRowsVariant::Staged, true, Some(&view))?;
            Some(Staged {
                dispatch,
                texture,
                buffer: probs.buffer.clone(),
                offset: probs.offset,
                layout,
            })
        } else {
            None
        };
        Ok(LayerBinding {
            sinks,
            rows,
            rows_vec4,
            staged,
            heads,
            queries: s.queries,
            block_heads: if packed { heads.min(s.heads) } else { heads },
            rows_per_workgroup: kernels.settings.rows_per_workgroup() as usize,
        })
    }

    /// Binds only the hidden states [T, D] (None for layers that never detect), for kernels
    /// that read the classes without a probability matrix (the fused attention).
    pub fn bind_sinks(&self, kernels: &VarKernels, hidden: Option<BufferBinding>) -> Result<SinkBinding> {
        let s = self.shape;
        let hidden_len = self.batch * s.tokens * s.hidden;
        let has_hidden = hidden.is_some();
        let hidden = match hidden {
            Some(h) => Storage::new(h, hidden_len),
            None => Storage::whole(&self.placeholder),
        };
        let range = self.range_buffer(0, self.batch * s.heads);
        let dispatch = self.ctx.bind::<SinkScore>(
            &kernels.sink(self.phi_mode)?,
            SinkScoreInputs {
                cfg: self.config_binding(),
                rng: range.as_entire_buffer_binding(),
                hidden,
                sink_dims: Storage::whole(&self.sink_dims),
                visual: Storage::whole(&self.visual),
                phi: Storage::whole(&self.phi),
                classes: Storage::whole(&self.classes),
                seqs: Storage::whole(&self.seqs),
            },
            (self.batch * s.tokens) as u32,
        )?;
        Ok(SinkBinding {
            dispatch,
            has_hidden,
            plan: self.plan.clone(),
        })
    }

    fn range_buffer(&self, first_head: usize, heads: usize) -> Buffer {
        self.ctx.uniform_buffer(
            "visattn range",
            &RangeUniform {
                head_offset: first_head as u32,
                heads: heads as u32,
                token_offset: 0,
                tokens: (self.batch * self.shape.tokens) as u32,
            },
        )
    }

    /// One role slot of the config uniform (selected per layer by dynamic offset).
    pub(crate) fn config_binding(&self) -> BufferBinding<'_> {
        BufferBinding {
            buffer: &self.config,
            offset: 0,
            size: std::num::NonZeroU64::new(CONFIG_SIZE),
        }
    }

    /// What `layer` does under the prepared config.
    pub fn role(&self, layer: usize) -> Result<LayerRole> {
        role_of(&self.plan, layer).map(|p| p.role)
    }

    /// `dispatches` recording with this state's config slots (the attention bindings).
    pub(crate) fn planned(&self, dispatches: Vec<Dispatch>) -> PlannedDispatch {
        PlannedDispatch {
            plan: self.plan.clone(),
            dispatches,
        }
    }

    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    /// phi per token, f32 [B, T], of the last layer encoded ([`PHI_NOT_SCORED`](super::kernels::PHI_NOT_SCORED) for tokens
    /// [`Phi::SinksOnly`] ruled out early).
    pub fn phi_buffer(&self) -> &Buffer {
        &self.phi
    }
    /// Records a copy of classes found elsewhere into this state's (u32 [B, T] from `offset`
    /// bytes of `source`, which needs COPY_SRC): a state built to edit one row (a decode step's,
    /// for a picture of it) takes the sinks its sequence's prefill found, as a decode session
    /// keeps them, instead of scoring hidden states it no longer has. Record the row kernel
    /// without the sinks after it ([`LayerBinding::encode_rows`]).
    pub fn copy_classes(&self, encoder: &mut CommandEncoder, source: &Buffer, offset: u64) -> Result<()> {
        let bytes = (self.batch * self.shape.tokens * 4) as u64;
        if offset % 4 != 0 || offset.checked_add(bytes).is_none_or(|end| end > source.size()) {
            return Err(Error::Binding {
                name: "classes",
                reason: format!("{bytes} bytes of classes from byte {offset} of a buffer of {}", source.size()),
            });
        }
        encoder.copy_buffer_to_buffer(source, offset, &self.classes, 0, bytes);
        Ok(())
    }
    /// Token classes, u32 [B, T]: bit 0 image token, bit 1 sink (0 for padding).
    pub fn classes_buffer(&self) -> &Buffer {
        &self.classes
    }
    /// Section 2's flag per (head, query row), u32 [B, H, Q].
    pub fn selected_buffer(&self) -> &Buffer {
        &self.selected
    }
}

/// Dispatches that read the state's config slots: each records with the slot of the layer's
/// role under the plan prepared last.
pub(crate) struct PlannedDispatch {
    plan: Plan,
    pub(crate) dispatches: Vec<Dispatch>,
}

impl PlannedDispatch {
    pub(crate) fn record(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        let offset = role_of(&self.plan, layer)?.offset;
        for d in &self.dispatches {
            d.record(pass, &[offset]);
        }
        Ok(())
    }
}

impl SinkBinding {
    /// Records sink scoring of `layer` (phi and classes for all tokens). Run it once per layer,
    /// before the row kernel or the attention that reads the classes.
    pub fn record(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        let planned = role_of(&self.plan, layer)?;
        self.check(layer, &planned)?;
        self.dispatch.record(pass, &[planned.offset]);
        Ok(())
    }

    fn check(&self, layer: usize, planned: &LayerPlanned) -> Result<()> {
        if planned.role != LayerRole::Off && !self.has_hidden {
            return Err(Error::Binding {
                name: "hidden",
                reason: format!("layer {layer} detects sinks but the binding has no hidden states"),
            });
        }
        Ok(())
    }
}

impl LayerBinding {
    /// The sink half of this binding (for [`SinkBinding::record`] once per layer when several
    /// head ranges share one layer).
    pub fn sinks(&self) -> &SinkBinding {
        &self.sinks
    }

    /// Records the row kernel of `layer` over the binding's heads, for the prompt prepared last
    /// (its roles, first row and key alignment are read now: prepare before recording).
    pub fn record_rows(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        let planned = role_of(&self.sinks.plan, layer)?;
        self.record_rows_planned(pass, &planned);
        Ok(())
    }

    fn record_rows_planned(&self, pass: &mut ComputePass, planned: &LayerPlanned) {
        let items = self.row_items(planned);
        if items == 0 {
            return;
        }
        let dispatch = match &self.rows_vec4 {
            Some(vec4) if planned.keys_aligned => vec4,
            _ => &self.rows,
        };
        dispatch.record_items(pass, &[planned.offset], items);
    }

    /// The row kernel's items: its rows, each block of `block_heads` heads padded to whole
    /// workgroups (0: no rows to visit).
    fn row_items(&self, planned: &LayerPlanned) -> u32 {
        let block_rows = self.block_heads * (self.queries - planned.row_start);
        let per_block = block_rows.div_ceil(self.rows_per_workgroup) * self.rows_per_workgroup;
        ((self.heads / self.block_heads) * per_block) as u32
    }

    /// Records one whole layer (sinks, then rows) into the caller's compute pass.
    pub fn record(&self, pass: &mut ComputePass, layer: usize) -> Result<()> {
        self.sinks.record(pass, layer)?;
        self.record_rows(pass, layer)
    }

    /// Whether [`encode`](Self::encode) stages this binding's rows in a texture: the settings
    /// ask for it and the binding allows it (sequences of K <= 32768 keys bound alone or as whole
    /// sequences of a batch, K a multiple of 4, the probabilities' range at a multiple of 16
    /// bytes in a buffer with `COPY_SRC`, its rows within `max_texture_dimension_2d` texture rows
    /// of 4096 texels). A prompt prepared with a first key off a multiple of 4 (padding) is
    /// encoded unstaged.
    pub fn stages(&self) -> bool {
        self.staged.is_some()
    }

    /// Records one whole layer into the caller's encoder: where the binding
    /// [`stages`](Self::stages) its rows, the copy of the rows the kernel visits into the
    /// state's staging texture, then a compute pass with the sinks and the rows reading it; else
    /// one pass as [`record`](Self::record) makes. The results are the same bit for bit either
    /// way. The copy reads the first row prepared now: prepare before encoding, and submit before
    /// the next prepare.
    pub fn encode(&self, encoder: &mut CommandEncoder, layer: usize) -> Result<()> {
        self.encode_with(encoder, layer, true)
    }

    /// [`encode`](Self::encode) without the sinks (several head ranges of one layer: record
    /// [`sinks`](Self::sinks) once, then this per range).
    pub fn encode_rows(&self, encoder: &mut CommandEncoder, layer: usize) -> Result<()> {
        self.encode_with(encoder, layer, false)
    }

    fn encode_with(&self, encoder: &mut CommandEncoder, layer: usize, sinks: bool) -> Result<()> {
        // One read of the plan for the copy and both dispatches; errors before anything is
        // recorded.
        let planned = role_of(&self.sinks.plan, layer)?;
        if sinks {
            self.sinks.check(layer, &planned)?;
        }
        let staged = self.staged.as_ref().filter(|_| planned.keys_aligned);
        let rows = self.row_items(&planned);
        // An Off layer's rows only clear their flags: nothing reads the texture.
        if let Some(st) = staged.filter(|_| rows > 0 && planned.role != LayerRole::Off) {
            st.layout.copy(encoder, &st.buffer, st.offset, &st.texture, planned.row_start);
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("visattn layer"),
            timestamp_writes: None,
        });
        if sinks {
            self.sinks.dispatch.record(&mut pass, &[planned.offset]);
        }
        match staged {
            Some(st) if rows > 0 => st.dispatch.record_items(&mut pass, &[planned.offset], rows),
            _ => self.record_rows_planned(&mut pass, &planned),
        }
        Ok(())
    }
}
