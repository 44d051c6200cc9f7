//! Decode attention over long contexts: split-K blocks of keys write VAR's partial state, a
//! combine pass merges them and applies VAR once (var-spec.md section 5). Sinks come from the
//! prefill and stay fixed for the whole generation (section 1); [`DecodeSession`] keeps them,
//! grows the KV cache, and makes each step's row eligible (section 3).

use std::num::NonZeroU64;

use bytemuck::{Pod, Zeroable};
use wgpu::{BindGroup, BindGroupLayout, Buffer, BufferBinding, BufferUsages, ComputePass, ComputePipeline, Device, Queue};

use crate::error::{Error, Result};
use crate::kernels::{compute_pipeline, grid, storage, uniform};
use crate::shaders;
use crate::shape::FusedShape;
use crate::state::{VarState, check_binding};
use crate::uniforms::CONFIG_SIZE;

/// Keys per split-K block (at most 1024, the kernel's workgroup array).
pub const DEFAULT_BLOCK: u32 = 256;
const MAX_BLOCK: u32 = 1024;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct SplitUniform {
    heads: u32,
    kv_heads: u32,
    queries: u32,
    keys: u32,
    causal: u32,
    scale: f32,
    block: u32,
    blocks: u32,
    capacity: u32,
    pad: [u32; 3],
}

/// The split and combine kernels of one head_dim.
#[derive(Debug, Clone)]
pub struct SplitAttention {
    head_dim: usize,
    split_layout: BindGroupLayout,
    combine_layout: BindGroupLayout,
    split: ComputePipeline,
    combine: ComputePipeline,
}

/// The buffers of one split-K attention: Q [H, Tq, d]; K, V [Hkv, capacity, d] of which the
/// first `keys` are used; the key classes [capacity]; outputs O [H, Tq, d] and selected [H, Tq].
pub struct SplitInputs<'a> {
    pub q: BufferBinding<'a>,
    pub k: BufferBinding<'a>,
    pub v: BufferBinding<'a>,
    pub classes: BufferBinding<'a>,
    pub o: BufferBinding<'a>,
    pub selected: BufferBinding<'a>,
}

/// Bind groups, the block partials and the shape uniform (keys can grow: [`SplitBinding::set_keys`]).
pub struct SplitBinding {
    split_group: BindGroup,
    combine_group: BindGroup,
    params: Buffer,
    uniform: SplitUniform,
    _partials: Buffer,
}

impl SplitAttention {
    pub fn new(device: &Device, head_dim: usize) -> Result<Self> {
        FusedShape {
            heads: 1,
            kv_heads: 1,
            queries: 1,
            keys: 1,
            head_dim,
        }
        .validate()?;
        let params = std::mem::size_of::<SplitUniform>() as u64;
        let split_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("visattn attention_split"),
            entries: &[
                uniform(0, CONFIG_SIZE, true),
                uniform(1, params, false),
                storage(2, true),
                storage(3, true),
                storage(4, true),
                storage(5, true),
                storage(6, false),
            ],
        });
        let combine_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("visattn attention_combine"),
            entries: &[
                uniform(0, CONFIG_SIZE, true),
                uniform(1, params, false),
                storage(2, true),
                storage(3, true),
                storage(4, false),
                storage(5, false),
            ],
        });
        let constants = [("D", head_dim as f64)];
        let pipeline = |name: &str, source: &str, layout: &BindGroupLayout| compute_pipeline(device, name, source, layout, &constants);
        Ok(Self {
            head_dim,
            split: pipeline("visattn attention_split", shaders::ATTENTION_SPLIT, &split_layout),
            combine: pipeline("visattn attention_combine", shaders::ATTENTION_COMBINE, &combine_layout),
            split_layout,
            combine_layout,
        })
    }

    /// [`SplitAttention::new`] inside wgpu error scopes.
    pub async fn new_checked(device: &Device, head_dim: usize) -> Result<Self> {
        crate::error::scoped(device, || Self::new(device, head_dim)).await?
    }

    /// Binds a split-K attention of `shape` (keys = the keys in use now) over KV buffers of
    /// `capacity` keys, in blocks of `block` keys. `state` supplies the VAR config slots.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        device: &Device,
        state: &VarState,
        shape: FusedShape,
        capacity: usize,
        options: crate::fused::AttentionOptions,
        block: u32,
        inputs: SplitInputs,
    ) -> Result<SplitBinding> {
        shape.validate()?;
        if shape.head_dim != self.head_dim {
            return Err(Error::Shape(format!(
                "head_dim {} but these pipelines were built for {}",
                shape.head_dim, self.head_dim
            )));
        }
        if shape.keys > capacity {
            return Err(Error::Shape(format!("{} keys over a capacity of {capacity}", shape.keys)));
        }
        if block == 0 || block > MAX_BLOCK {
            return Err(Error::Config {
                field: "block",
                value: block.to_string(),
                reason: format!("must be in 1..={MAX_BLOCK}"),
            });
        }
        let d = shape.head_dim;
        let kv = shape.kv_heads * capacity * d;
        for (name, b, len) in [
            ("q", &inputs.q, shape.q_len()),
            ("k", &inputs.k, kv),
            ("v", &inputs.v, kv),
            ("classes", &inputs.classes, capacity),
            ("o", &inputs.o, shape.q_len()),
            ("selected", &inputs.selected, shape.heads * shape.queries),
        ] {
            let size = check_binding(device, name, b)?;
            if size < (len * 4) as u64 {
                return Err(Error::Binding {
                    name,
                    reason: format!("{size} bytes, need {len} x 4 for {shape:?} with capacity {capacity}"),
                });
            }
        }
        let scale = options.resolve_scale(d)?;
        let max_blocks = capacity.div_ceil(block as usize);
        let partial_bytes = (shape.heads * shape.queries * max_blocks * (8 + 3 * d) * 4) as u64;
        let limit = device.limits().max_storage_buffer_binding_size;
        if partial_bytes > limit {
            return Err(Error::Limit {
                name: "split partials",
                needed: partial_bytes,
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        let partials = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("visattn split partials"),
            size: partial_bytes,
            usage: BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let uniform = SplitUniform {
            heads: shape.heads as u32,
            kv_heads: shape.kv_heads as u32,
            queries: shape.queries as u32,
            keys: shape.keys as u32,
            causal: options.causal as u32,
            scale,
            block,
            blocks: (shape.keys as u32).div_ceil(block),
            capacity: capacity as u32,
            pad: [0; 3],
        };
        let params = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("visattn split params"),
                contents: bytemuck::bytes_of(&uniform),
                usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
            },
        );
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let res = wgpu::BindingResource::Buffer;
        let split_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("visattn attention_split"),
            layout: &self.split_layout,
            entries: &[
                entry(0, res(state.config_binding())),
                entry(1, params.as_entire_binding()),
                entry(2, res(inputs.q)),
                entry(3, res(inputs.k)),
                entry(4, res(inputs.v)),
                entry(5, res(inputs.classes.clone())),
                entry(6, partials.as_entire_binding()),
            ],
        });
        let combine_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("visattn attention_combine"),
            layout: &self.combine_layout,
            entries: &[
                entry(0, res(state.config_binding())),
                entry(1, params.as_entire_binding()),
                entry(2, partials.as_entire_binding()),
                entry(3, res(inputs.classes)),
                entry(4, res(inputs.o)),
                entry(5, res(inputs.selected)),
            ],
        });
        Ok(SplitBinding {
            split_group,
            combine_group,
            params,
            uniform,
            _partials: partials,
        })
    }

    /// Records the split pass and the combine pass for `layer` (its role from `state`).
    pub fn encode(&self, device: &Device, pass: &mut ComputePass, state: &VarState, binding: &SplitBinding, layer: usize) -> Result<()> {
        let (_, offset) = state.role_of(layer)?;
        let u = binding.uniform;
        let max = device.limits().max_compute_workgroups_per_dimension;
        let (x, y) = grid(u.heads * u.queries * u.blocks, max);
        pass.set_pipeline(&self.split);
        pass.set_bind_group(0, &binding.split_group, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
        let (x, y) = grid(u.heads * u.queries, max);
        pass.set_pipeline(&self.combine);
        pass.set_bind_group(0, &binding.combine_group, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }
}

impl SplitBinding {
    /// Keys in use now (the KV cache grew); takes effect for work submitted after it.
    pub fn set_keys(&mut self, queue: &Queue, keys: usize) -> Result<()> {
        if keys == 0 || keys > self.uniform.capacity as usize || (keys as u32) < self.uniform.queries {
            return Err(Error::Shape(format!(
                "{keys} keys for a capacity of {} and {} rows",
                self.uniform.capacity, self.uniform.queries
            )));
        }
        self.uniform.keys = keys as u32;
        self.uniform.blocks = (keys as u32).div_ceil(self.uniform.block);
        queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&self.uniform));
        Ok(())
    }

    pub fn keys(&self) -> usize {
        self.uniform.keys as usize
    }
}

/// One generation: the KV cache of every layer with room for `capacity` tokens, the sink
/// classes of every layer captured at prefill (new tokens are never sinks nor image tokens), and
/// per layer a split-K binding whose key count follows the cache.
pub struct DecodeSession {
    split: SplitAttention,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
    k: Buffer,
    v: Buffer,
    classes: Buffer,
    q: Buffer,
    o: Buffer,
    selected: Buffer,
    bindings: Vec<SplitBinding>,
}

fn range(b: &Buffer, at: usize, len: usize) -> BufferBinding<'_> {
    BufferBinding {
        buffer: b,
        offset: (at * 4) as u64,
        size: NonZeroU64::new((len * 4) as u64),
    }
}

impl DecodeSession {
    /// `state` is the prompt's prepared [`VarState`] (its config and roles); `capacity` is
    /// rounded up to a multiple of 64 so every layer's slice is aligned.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        device: &Device,
        state: &VarState,
        split: &SplitAttention,
        layers: usize,
        heads: usize,
        kv_heads: usize,
        capacity: usize,
        options: crate::fused::AttentionOptions,
    ) -> Result<Self> {
        let head_dim = split.head_dim;
        FusedShape {
            heads,
            kv_heads,
            queries: 1,
            keys: 1,
            head_dim,
        }
        .validate()?;
        if state.batch() != 1 || state.shape().heads != heads {
            return Err(Error::Shape(
                "a decode session follows one sequence with the same heads as its VarState".into(),
            ));
        }
        let capacity = capacity.max(1).next_multiple_of(64);
        let usage = BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC;
        let buffer = |label: &str, len: usize| -> Result<Buffer> {
            let size = (len * 4) as u64;
            let limit = device.limits().max_storage_buffer_binding_size.min(device.limits().max_buffer_size);
            if size > limit {
                return Err(Error::Limit {
                    name: "decode cache",
                    needed: size,
                    limit,
                    limit_name: "max_buffer_size",
                });
            }
            Ok(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            }))
        };
        let layer_kv = kv_heads * capacity * head_dim;
        let k = buffer("visattn decode k", layers * layer_kv)?;
        let v = buffer("visattn decode v", layers * layer_kv)?;
        let classes = buffer("visattn decode classes", layers * capacity)?;
        let q = buffer("visattn decode q", layers * heads * head_dim.next_multiple_of(64))?;
        let o = buffer("visattn decode o", layers * heads * head_dim.next_multiple_of(64))?;
        let selected = buffer("visattn decode selected", layers * 64 * heads.div_ceil(64))?;
        let shape = FusedShape {
            heads,
            kv_heads,
            queries: 1,
            keys: 1,
            head_dim,
        };
        let mut bindings = Vec::with_capacity(layers);
        for l in 0..layers {
            let qo = heads * head_dim.next_multiple_of(64);
            let sel = 64 * heads.div_ceil(64);
            bindings.push(split.bind(
                device,
                state,
                shape,
                capacity,
                options,
                DEFAULT_BLOCK,
                SplitInputs {
                    q: range(&q, l * qo, heads * head_dim),
                    k: range(&k, l * layer_kv, layer_kv),
                    v: range(&v, l * layer_kv, layer_kv),
                    classes: range(&classes, l * capacity, capacity),
                    o: range(&o, l * qo, heads * head_dim),
                    selected: range(&selected, l * sel, heads),
                },
            )?);
        }
        Ok(Self {
            split: split.clone(),
            layers,
            heads,
            kv_heads,
            head_dim,
            capacity,
            len: 0,
            k,
            v,
            classes,
            q,
            o,
            selected,
            bindings,
        })
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn kv_offset(&self, layer: usize, kv_head: usize, token: usize) -> u64 {
        (((layer * self.kv_heads + kv_head) * self.capacity + token) * self.head_dim * 4) as u64
    }

    /// Stores layer `layer`'s prefill keys and values, [Hkv, tokens, d] each.
    pub fn write_prefill_kv(&mut self, queue: &Queue, layer: usize, tokens: usize, k: &[f32], v: &[f32]) -> Result<()> {
        let per = tokens * self.head_dim;
        if layer >= self.layers || tokens > self.capacity || k.len() != self.kv_heads * per || v.len() != k.len() {
            return Err(Error::Shape(format!(
                "prefill k/v of {} values for {tokens} tokens, layer {layer}",
                k.len()
            )));
        }
        crate::reference::check_finite("k", k)?;
        crate::reference::check_finite("v", v)?;
        for h in 0..self.kv_heads {
            queue.write_buffer(
                &self.k,
                self.kv_offset(layer, h, 0),
                bytemuck::cast_slice(&k[h * per..(h + 1) * per]),
            );
            queue.write_buffer(
                &self.v,
                self.kv_offset(layer, h, 0),
                bytemuck::cast_slice(&v[h * per..(h + 1) * per]),
            );
        }
        Ok(())
    }

    /// Copies the classes the VarState's sink kernel found for `layer` at prefill (record after
    /// `encode_sinks` of that layer). They stay fixed for the whole generation.
    pub fn capture_classes(&self, encoder: &mut wgpu::CommandEncoder, state: &VarState, layer: usize) -> Result<()> {
        let tokens = state.shape().tokens;
        if layer >= self.layers || tokens > self.capacity {
            return Err(Error::Shape(format!(
                "layer {layer} / {tokens} prefill tokens do not fit the session"
            )));
        }
        encoder.copy_buffer_to_buffer(
            state.classes_buffer(),
            0,
            &self.classes,
            (layer * self.capacity * 4) as u64,
            (tokens * 4) as u64,
        );
        Ok(())
    }

    /// After the prefill: `tokens` are in the cache.
    pub fn start(&mut self, tokens: usize) -> Result<()> {
        if tokens == 0 || tokens >= self.capacity {
            return Err(Error::Shape(format!("{tokens} prefill tokens for a capacity of {}", self.capacity)));
        }
        self.len = tokens;
        Ok(())
    }

    /// Before recording a step: every layer will attend over the cache plus the new token.
    pub fn begin_step(&mut self, queue: &Queue) -> Result<()> {
        if self.len + 1 > self.capacity {
            return Err(Error::Limit {
                name: "decode cache",
                needed: (self.len + 1) as u64,
                limit: self.capacity as u64,
                limit_name: "session capacity",
            });
        }
        for b in &mut self.bindings {
            b.set_keys(queue, self.len + 1)?;
        }
        Ok(())
    }

    /// The new token's q [H, d], k and v [Hkv, d] for `layer`.
    pub fn write_step(&self, queue: &Queue, layer: usize, q: &[f32], k: &[f32], v: &[f32]) -> Result<()> {
        let d = self.head_dim;
        if layer >= self.layers || q.len() != self.heads * d || k.len() != self.kv_heads * d || v.len() != k.len() {
            return Err(Error::Shape(format!(
                "step q/k/v of {}/{}/{} values for layer {layer}",
                q.len(),
                k.len(),
                v.len()
            )));
        }
        for (name, x) in [("q", q), ("k", k), ("v", v)] {
            crate::reference::check_finite(name, x)?;
        }
        queue.write_buffer(
            &self.q,
            (layer * self.heads * d.next_multiple_of(64) * 4) as u64,
            bytemuck::cast_slice(q),
        );
        for h in 0..self.kv_heads {
            queue.write_buffer(
                &self.k,
                self.kv_offset(layer, h, self.len),
                bytemuck::cast_slice(&k[h * d..(h + 1) * d]),
            );
            queue.write_buffer(
                &self.v,
                self.kv_offset(layer, h, self.len),
                bytemuck::cast_slice(&v[h * d..(h + 1) * d]),
            );
        }
        Ok(())
    }

    /// Records `layer`'s split-K attention of the new token.
    pub fn encode_step(&self, device: &Device, pass: &mut ComputePass, state: &VarState, layer: usize) -> Result<()> {
        let b = self.bindings.get(layer).ok_or(Error::Layer {
            layer,
            layers: self.layers,
        })?;
        self.split.encode(device, pass, state, b, layer)
    }

    /// After the step's work is submitted: the new token is part of the cache.
    pub fn end_step(&mut self) {
        self.len += 1;
    }

    /// The output rows [H, d] of `layer` (within the o buffer: offset and length in f32).
    pub fn output_range(&self, layer: usize) -> (u64, usize) {
        (
            (layer * self.heads * self.head_dim.next_multiple_of(64) * 4) as u64,
            self.heads * self.head_dim,
        )
    }
    /// The selected flags [H] of `layer` (offset in bytes, count).
    pub fn selected_range(&self, layer: usize) -> (u64, usize) {
        ((layer * 64 * self.heads.div_ceil(64) * 4) as u64, self.heads)
    }
    pub fn output_buffer(&self) -> &Buffer {
        &self.o
    }
    pub fn selected_buffer(&self) -> &Buffer {
        &self.selected
    }
}
