//! Fused attention with VAR inside (var-spec.md section 5): O = softmax(Q K^T * scale) V with
//! VAR applied on the way, the attention matrix never in memory. Sinks come from the same
//! [`VarState`] (run its sink kernel for the layer first); flags land in its `selected` buffer.

use bytemuck::{Pod, Zeroable};
use wgpu::{BindGroup, BindGroupLayout, Buffer, BufferBinding, BufferUsages, ComputePass, ComputePipeline, Device};

use crate::error::{Error, Result};
use crate::kernels::{compute_pipeline, grid, storage, uniform};
use crate::shaders;
pub use crate::shape::{FusedShape, MAX_HEAD_DIM};
use crate::state::{VarState, check_binding};
use crate::uniforms::CONFIG_SIZE;

/// Query rows per workgroup of `attention_var.wgsl`.
pub const ROWS_PER_WORKGROUP: u32 = 16;

/// What the pipeline is specialised on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FusedSettings {
    pub head_dim: u32,
    /// false: plain attention (one accumulator), for measuring what VAR costs.
    pub var: bool,
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
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct AttnUniform {
    heads: u32,
    kv_heads: u32,
    queries: u32,
    keys: u32,
    causal: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
}

/// The fused kernel of one (head_dim, VAR on/off) specialisation.
#[derive(Debug, Clone)]
pub struct FusedAttention {
    settings: FusedSettings,
    layout: BindGroupLayout,
    pipeline: ComputePipeline,
}

/// Bind group of one set of Q, K, V, O buffers.
pub struct FusedBinding {
    group: BindGroup,
    shape: FusedShape,
    _params: Buffer,
}

impl FusedAttention {
    pub fn new(device: &Device, settings: FusedSettings) -> Result<Self> {
        FusedShape {
            heads: 1,
            kv_heads: 1,
            queries: 1,
            keys: 1,
            head_dim: settings.head_dim as usize,
        }
        .validate()?;
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("visattn attention_var"),
            entries: &[
                uniform(0, CONFIG_SIZE, true),
                uniform(1, std::mem::size_of::<AttnUniform>() as u64, false),
                storage(2, true),
                storage(3, true),
                storage(4, true),
                storage(5, true),
                storage(6, false),
                storage(7, false),
            ],
        });
        let constants = [("D", settings.head_dim as f64), ("VAR", settings.var as u32 as f64)];
        let pipeline = compute_pipeline(device, "visattn attention_var", shaders::ATTENTION_VAR, &layout, &constants);
        Ok(Self {
            settings,
            layout,
            pipeline,
        })
    }

    /// [`FusedAttention::new`] inside wgpu error scopes (a device whose limits the kernel
    /// exceeds gives [`Error::Gpu`], not a panic in the uncaptured-error handler).
    pub async fn new_checked(device: &Device, settings: FusedSettings) -> Result<Self> {
        crate::error::scoped(device, || Self::new(device, settings)).await?
    }

    pub fn settings(&self) -> FusedSettings {
        self.settings
    }

    /// Binds Q [H, Tq, d], K and V [Hkv, Tk, d] (read) and O [H, Tq, d] (written), f32. The
    /// state's shape must agree: tokens = Tk, heads = H, queries = Tq.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        device: &Device,
        state: &VarState,
        shape: FusedShape,
        options: AttentionOptions,
        q: BufferBinding,
        k: BufferBinding,
        v: BufferBinding,
        o: BufferBinding,
    ) -> Result<FusedBinding> {
        shape.validate()?;
        if shape.head_dim != self.settings.head_dim as usize {
            return Err(Error::Shape(format!(
                "head_dim {} but this pipeline was built for {}",
                shape.head_dim, self.settings.head_dim
            )));
        }
        let s = state.shape();
        if state.batch() != 1 {
            return Err(Error::Shape(format!(
                "the fused kernel runs one sequence; this VarState holds {}",
                state.batch()
            )));
        }
        if (s.tokens, s.heads, s.queries) != (shape.keys, shape.heads, shape.queries) {
            return Err(Error::Shape(format!(
                "VarState has T={} H={} Q={}, attention has Tk={} H={} Tq={}",
                s.tokens, s.heads, s.queries, shape.keys, shape.heads, shape.queries
            )));
        }
        for (name, b, len) in [
            ("q", &q, shape.q_len()),
            ("k", &k, shape.kv_len()),
            ("v", &v, shape.kv_len()),
            ("o", &o, shape.q_len()),
        ] {
            let size = check_binding(device, name, b)?;
            if size != (len * 4) as u64 {
                return Err(Error::Binding {
                    name,
                    reason: format!("{size} bytes, expected {} f32 for {shape:?}", len),
                });
            }
        }
        let params = attn_params(device, shape, options)?;
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("visattn attention_var"),
            layout: &self.layout,
            entries: &[
                entry(0, wgpu::BindingResource::Buffer(state.config_binding())),
                entry(1, params.as_entire_binding()),
                entry(2, wgpu::BindingResource::Buffer(q)),
                entry(3, wgpu::BindingResource::Buffer(k)),
                entry(4, wgpu::BindingResource::Buffer(v)),
                entry(5, state.classes_buffer().as_entire_binding()),
                entry(6, wgpu::BindingResource::Buffer(o)),
                entry(7, state.selected_buffer().as_entire_binding()),
            ],
        });
        Ok(FusedBinding {
            group,
            shape,
            _params: params,
        })
    }

    /// Records the attention of `layer` (its role picks the VAR behaviour). Record the state's
    /// sink kernel for the layer before it.
    pub fn encode(&self, device: &Device, pass: &mut ComputePass, state: &VarState, binding: &FusedBinding, layer: usize) -> Result<()> {
        let (_, offset) = state.role_of(layer)?;
        let s = binding.shape;
        let groups = (s.heads as u32) * (s.queries as u32).div_ceil(ROWS_PER_WORKGROUP);
        let (x, y) = grid(groups, device.limits().max_compute_workgroups_per_dimension);
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.group, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }
}

/// The `Attn` uniform of the attention kernels.
pub(crate) fn attn_params(device: &Device, shape: FusedShape, options: AttentionOptions) -> Result<Buffer> {
    let scale = options.resolve_scale(shape.head_dim)?;
    Ok(wgpu::util::DeviceExt::create_buffer_init(
        device,
        &wgpu::util::BufferInitDescriptor {
            label: Some("visattn attention params"),
            contents: bytemuck::bytes_of(&AttnUniform {
                heads: shape.heads as u32,
                kv_heads: shape.kv_heads as u32,
                queries: shape.queries as u32,
                keys: shape.keys as u32,
                causal: options.causal as u32,
                scale,
                pad0: 0,
                pad1: 0,
            }),
            usage: BufferUsages::UNIFORM,
        },
    ))
}
