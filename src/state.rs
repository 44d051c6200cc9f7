//! A sequence's VAR state on the GPU and the recording of one layer into the caller's pass.
//!
//! The embed pattern: [`VarKernels::new`] once per device, [`VarState::new`] once per sequence
//! shape, [`VarState::prepare`] once per prompt (config, image spans), [`VarState::bind`] once per
//! set of caller buffers, then [`VarState::encode`] per layer into the caller's compute pass.

use wgpu::{BindGroup, Buffer, BufferBinding, BufferUsages, ComputePass, Device, Queue};

use crate::config::{LayerRole, VarConfig};
use crate::error::{Error, Result};
use crate::kernels::{VarKernels, grid};
use crate::uniforms::{CONFIG_SIZE, ROLES, RangeUniform, SeqUniform, config_uniform};
use crate::visual::VisualTokens;

/// The fused attention kernel's key tile (`BC` in attention_var.wgsl): the image mask marks
/// the tiles of 16 keys, from the start of each batch row, that hold an image key.
const KEY_TILE: usize = 16;

/// The most sink dimensions a config may name on the GPU (the presets use at most 3).
pub const MAX_SINK_DIMS: usize = 64;

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

struct Prepared {
    roles: Vec<LayerRole>,
    row_start: usize,
}

/// Per-sequence GPU state: the role-slot uniforms, the image mask, the sink dims, and the
/// outputs phi, classes and selected, which the caller may copy out after each layer.
pub struct VarState {
    shape: SequenceShape,
    batch: usize,
    rows: Rows,
    slot_stride: u64,
    config: Buffer,
    sink_dims: Buffer,
    seqs: Buffer,
    visual: Buffer,
    phi: Buffer,
    classes: Buffer,
    selected: Buffer,
    placeholder: Buffer,
    prepared: Option<Prepared>,
}

/// Bind groups for one set of caller buffers: the hidden states of a layer (optional for layers
/// that do not detect) and a range of heads of its probabilities.
pub struct LayerBinding {
    sinks: SinkBinding,
    rows_group: BindGroup,
    heads: usize,
    _range: Buffer,
}

/// The sink kernel's bind group: the caller's hidden states and the state's outputs.
pub struct SinkBinding {
    group: BindGroup,
    has_hidden: bool,
    _range: Buffer,
}

impl AsRef<SinkBinding> for SinkBinding {
    fn as_ref(&self) -> &SinkBinding {
        self
    }
}

impl AsRef<SinkBinding> for LayerBinding {
    fn as_ref(&self) -> &SinkBinding {
        &self.sinks
    }
}

/// A storage buffer of `len` u32/f32 elements.
fn storage_buffer(device: &Device, label: &str, len: usize, extra: BufferUsages) -> Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (len.max(1) * 4) as u64,
        usage: BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC | extra,
        mapped_at_creation: false,
    })
}

/// Checks a caller's buffer range and returns its size in bytes.
pub(crate) fn check_binding(device: &Device, name: &'static str, b: &BufferBinding) -> Result<u64> {
    let err = |reason: String| Error::Binding { name, reason };
    if !b.buffer.usage().contains(BufferUsages::STORAGE) {
        return Err(err("buffer was created without BufferUsages::STORAGE".into()));
    }
    let limits = device.limits();
    let align = limits.min_storage_buffer_offset_alignment as u64;
    if b.offset % align != 0 {
        return Err(err(format!(
            "offset {} is not a multiple of min_storage_buffer_offset_alignment {align}",
            b.offset
        )));
    }
    let available = b
        .buffer
        .size()
        .checked_sub(b.offset)
        .ok_or_else(|| err(format!("offset {} is past the end of a {}-byte buffer", b.offset, b.buffer.size())))?;
    let size = b.size.map_or(available, |s| s.get());
    if size > available {
        return Err(err(format!(
            "range of {size} bytes at offset {} overruns a {}-byte buffer",
            b.offset,
            b.buffer.size()
        )));
    }
    if size > limits.max_storage_buffer_binding_size {
        return Err(Error::Limit {
            name,
            needed: size,
            limit: limits.max_storage_buffer_binding_size,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    Ok(size)
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
    pub fn new(device: &Device, shape: SequenceShape, rows: Rows) -> Result<Self> {
        Self::new_batch(device, shape, 1, rows)
    }

    /// Allocates the buffers of a batch of `batch` sequences, each at most `shape` (the padded
    /// sizes): hidden states [B, T, D], probabilities [B, H, Q, K] with heads counted over B x H.
    pub fn new_batch(device: &Device, shape: SequenceShape, batch: usize, rows: Rows) -> Result<Self> {
        shape.validate()?;
        if batch == 0 {
            return Err(Error::Shape("a batch needs at least one sequence".into()));
        }
        let limits = device.limits();
        let selected_bytes = (batch * shape.heads * shape.queries * 4) as u64;
        if selected_bytes > limits.max_storage_buffer_binding_size {
            return Err(Error::Limit {
                name: "selected",
                needed: selected_bytes,
                limit: limits.max_storage_buffer_binding_size,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        let align = limits.min_uniform_buffer_offset_alignment as u64;
        let slot_stride = CONFIG_SIZE.div_ceil(align) * align;
        let config = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("visattn config slots"),
            size: slot_stride * ROLES.len() as u64,
            usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let none = BufferUsages::empty();
        let tokens = batch * shape.tokens;
        Ok(Self {
            shape,
            batch,
            rows,
            slot_stride,
            config,
            sink_dims: storage_buffer(device, "visattn sink dims", MAX_SINK_DIMS, none),
            seqs: storage_buffer(device, "visattn sequences", batch * 4, none),
            visual: storage_buffer(device, "visattn image mask", tokens, none),
            phi: storage_buffer(device, "visattn phi", tokens, none),
            classes: storage_buffer(device, "visattn classes", tokens, none),
            selected: storage_buffer(device, "visattn selected", batch * shape.heads * shape.queries, none),
            placeholder: storage_buffer(device, "visattn no hidden states", 4, none),
            prepared: None,
        })
    }

    pub fn shape(&self) -> SequenceShape {
        self.shape
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
                vis_eps: (e.visual.count() as f64 * crate::reference::VIS_EPS) as f32,
            });
            for (j, &m) in e.visual.mask().iter().enumerate() {
                mask[b * s.tokens + p.key_offset + j] = m as u32;
            }
            // Bit 2: the key's tile holds an image key. The fused kernel finds its runs of image
            // tiles with this, one load per tile instead of one per key.
            for tile in mask[b * s.tokens..(b + 1) * s.tokens].chunks_mut(KEY_TILE) {
                if tile.iter().any(|m| m & 1 != 0) {
                    tile.iter_mut().for_each(|m| *m |= 4);
                }
            }
            placements.push(p);
        }
        let row_start = seqs.iter().map(|q| q.first_row as usize).min().unwrap_or(0);
        let mut slots = vec![0u8; (self.slot_stride * ROLES.len() as u64) as usize];
        for (i, role) in ROLES.iter().enumerate() {
            // The single-sequence fields of Config (image end, epsilon) describe sequence 0:
            // the fused kernel reads them and runs batches of one.
            let u = config_uniform(
                cfg,
                *role,
                s.tokens,
                s.hidden,
                s.heads,
                s.queries,
                row_start,
                seqs[0].first_image_end as usize,
                entries[0].visual.count(),
            );
            let at = i * self.slot_stride as usize;
            slots[at..at + CONFIG_SIZE as usize].copy_from_slice(bytemuck::bytes_of(&u));
        }
        queue.write_buffer(&self.config, 0, &slots);
        queue.write_buffer(&self.sink_dims, 0, bytemuck::cast_slice(&cfg.sink_dims));
        queue.write_buffer(&self.seqs, 0, bytemuck::cast_slice(&seqs));
        queue.write_buffer(&self.visual, 0, bytemuck::cast_slice(&mask));
        self.prepared = Some(Prepared {
            roles: (0..layers).map(|l| cfg.role(l, layers)).collect(),
            row_start,
        });
        Ok(placements)
    }

    /// Binds the caller's buffers: `hidden` holds [T, D] f32 (None when the bound layers never
    /// detect sinks), `probs` holds heads `first_head..` of [H, Q, K] f32 (whole heads; a range
    /// of heads lets a layer over the binding limit go through in chunks).
    pub fn bind(
        &self,
        device: &Device,
        kernels: &VarKernels,
        hidden: Option<BufferBinding>,
        probs: BufferBinding,
        first_head: usize,
    ) -> Result<LayerBinding> {
        let s = self.shape;
        let row_bytes = (s.queries * s.tokens * 4) as u64;
        let probs_size = check_binding(device, "probs", &probs)?;
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
        let sinks = self.bind_sinks(device, kernels, hidden)?;
        let range = self.range_buffer(device, first_head, heads);
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let rows_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("visattn var_rows"),
            layout: &kernels.rows_layout,
            entries: &[
                entry(0, wgpu::BindingResource::Buffer(self.config_binding())),
                entry(1, range.as_entire_binding()),
                entry(2, wgpu::BindingResource::Buffer(probs)),
                entry(3, self.classes.as_entire_binding()),
                entry(4, self.selected.as_entire_binding()),
                entry(5, self.seqs.as_entire_binding()),
            ],
        });
        Ok(LayerBinding {
            sinks,
            rows_group,
            heads,
            _range: range,
        })
    }

    /// Binds only the hidden states [T, D] (None for layers that never detect), for kernels
    /// that read the classes without a probability matrix (the fused attention).
    pub fn bind_sinks(&self, device: &Device, kernels: &VarKernels, hidden: Option<BufferBinding>) -> Result<SinkBinding> {
        let s = self.shape;
        let hidden_bytes = (self.batch * s.tokens * s.hidden * 4) as u64;
        let hidden = match hidden {
            Some(h) => {
                let size = check_binding(device, "hidden", &h)?;
                if size < hidden_bytes {
                    return Err(Error::Binding {
                        name: "hidden",
                        reason: format!(
                            "{size} bytes, need B x T x D = {} x {} x {} f32 = {hidden_bytes}",
                            self.batch, s.tokens, s.hidden
                        ),
                    });
                }
                Some(BufferBinding {
                    buffer: h.buffer,
                    offset: h.offset,
                    size: std::num::NonZeroU64::new(hidden_bytes),
                })
            }
            None => None,
        };
        let has_hidden = hidden.is_some();
        let range = self.range_buffer(device, 0, self.batch * s.heads);
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let hidden_resource = match hidden {
            Some(h) => wgpu::BindingResource::Buffer(h),
            None => self.placeholder.as_entire_binding(),
        };
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("visattn sink_score"),
            layout: &kernels.sink_layout,
            entries: &[
                entry(0, wgpu::BindingResource::Buffer(self.config_binding())),
                entry(1, range.as_entire_binding()),
                entry(2, hidden_resource),
                entry(3, self.sink_dims.as_entire_binding()),
                entry(4, self.visual.as_entire_binding()),
                entry(5, self.phi.as_entire_binding()),
                entry(6, self.classes.as_entire_binding()),
                entry(7, self.seqs.as_entire_binding()),
            ],
        });
        Ok(SinkBinding {
            group,
            has_hidden,
            _range: range,
        })
    }

    fn range_buffer(&self, device: &Device, first_head: usize, heads: usize) -> Buffer {
        let range = RangeUniform {
            head_offset: first_head as u32,
            heads: heads as u32,
            token_offset: 0,
            tokens: (self.batch * self.shape.tokens) as u32,
        };
        wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("visattn range"),
                contents: bytemuck::bytes_of(&range),
                usage: BufferUsages::UNIFORM,
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
        self.role_of(layer).map(|(role, _)| role)
    }

    pub(crate) fn role_of(&self, layer: usize) -> Result<(LayerRole, u32)> {
        let p = self.prepared.as_ref().ok_or_else(|| Error::Binding {
            name: "state",
            reason: "VarState::prepare must run before encode".into(),
        })?;
        let role = *p.roles.get(layer).ok_or(Error::Layer {
            layer,
            layers: p.roles.len(),
        })?;
        Ok((role, (role as u64 * self.slot_stride) as u32))
    }

    /// Records sink scoring of `layer` (phi and classes for all tokens). Run it once per layer,
    /// before [`encode_rows`](Self::encode_rows) on each head range.
    pub fn encode_sinks(
        &self,
        kernels: &VarKernels,
        pass: &mut ComputePass,
        binding: &impl AsRef<SinkBinding>,
        layer: usize,
        max_workgroups: u32,
    ) -> Result<()> {
        let binding = binding.as_ref();
        let (role, offset) = self.role_of(layer)?;
        if role != LayerRole::Off && !binding.has_hidden {
            return Err(Error::Binding {
                name: "hidden",
                reason: format!("layer {layer} detects sinks but the binding has no hidden states"),
            });
        }
        let groups = ((self.batch * self.shape.tokens) as u32).div_ceil(kernels.settings.rows_per_workgroup());
        let (x, y) = grid(groups, max_workgroups);
        pass.set_pipeline(&kernels.sink_pipeline);
        pass.set_bind_group(0, &binding.group, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }

    /// Records the row kernel of `layer` over the binding's heads.
    pub fn encode_rows(
        &self,
        kernels: &VarKernels,
        pass: &mut ComputePass,
        binding: &LayerBinding,
        layer: usize,
        max_workgroups: u32,
    ) -> Result<()> {
        let (_, offset) = self.role_of(layer)?;
        let row_start = self.prepared.as_ref().map_or(0, |p| p.row_start);
        let rows = binding.heads * (self.shape.queries - row_start);
        if rows == 0 {
            return Ok(());
        }
        let groups = (rows as u32).div_ceil(kernels.settings.rows_per_workgroup());
        let (x, y) = grid(groups, max_workgroups);
        pass.set_pipeline(&kernels.rows_pipeline);
        pass.set_bind_group(0, &binding.rows_group, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }

    /// Records one whole layer (sinks, then rows) into the caller's compute pass.
    pub fn encode(
        &self,
        device: &Device,
        kernels: &VarKernels,
        pass: &mut ComputePass,
        binding: &LayerBinding,
        layer: usize,
    ) -> Result<()> {
        let max = device.limits().max_compute_workgroups_per_dimension;
        self.encode_sinks(kernels, pass, binding, layer, max)?;
        self.encode_rows(kernels, pass, binding, layer, max)
    }

    /// phi per token, f32 [B, T], of the last layer encoded.
    pub fn phi_buffer(&self) -> &Buffer {
        &self.phi
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
