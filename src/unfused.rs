//! The unfused attention path, for engines with eager attention and as the fused kernel's
//! baseline: softmax(Q K^T * scale) into a [H, Tq, Tk] buffer, VAR on it with [`VarState`]
//! (`var_rows.wgsl`), then P V.
//!
//! [`VarState`]: crate::VarState

use wgpu::{BindGroup, BindGroupLayout, Buffer, BufferBinding, ComputePass, ComputePipeline, Device};

use crate::error::{Error, Result};
use crate::fused::{AttentionOptions, AttnUniform, FusedShape, attn_params};
use crate::kernels::{compute_pipeline, grid, storage, uniform};
use crate::shaders;
use crate::state::check_binding;

/// The two unfused kernels of one head_dim.
#[derive(Debug, Clone)]
pub struct UnfusedAttention {
    head_dim: usize,
    layout: BindGroupLayout,
    probs_pipeline: ComputePipeline,
    pv_pipeline: ComputePipeline,
}

/// Bind groups of one set of Q, K, V, P, O buffers.
pub struct UnfusedBinding {
    probs_group: BindGroup,
    pv_group: BindGroup,
    rows: u32,
    _params: Buffer,
}

impl UnfusedAttention {
    pub fn new(device: &Device, head_dim: usize) -> Result<Self> {
        FusedShape {
            heads: 1,
            kv_heads: 1,
            queries: 1,
            keys: 1,
            head_dim,
        }
        .validate()?;
        // Both kernels: params, two inputs, one output.
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("visattn unfused attention"),
            entries: &[
                uniform(0, std::mem::size_of::<AttnUniform>() as u64, false),
                storage(1, true),
                storage(2, true),
                storage(3, false),
            ],
        });
        let constants = [("D", head_dim as f64)];
        let pipeline = |name: &str, source: &str| compute_pipeline(device, name, source, &layout, &constants);
        Ok(Self {
            head_dim,
            probs_pipeline: pipeline("visattn attention_probs", shaders::ATTENTION_PROBS),
            pv_pipeline: pipeline("visattn attention_pv", shaders::ATTENTION_PV),
            layout,
        })
    }

    /// [`UnfusedAttention::new`] inside wgpu error scopes.
    pub async fn new_checked(device: &Device, head_dim: usize) -> Result<Self> {
        crate::error::scoped(device, || Self::new(device, head_dim)).await?
    }

    /// Binds Q, K, V (read), P [H, Tq, Tk] (written, then read) and O (written), f32.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        device: &Device,
        shape: FusedShape,
        options: AttentionOptions,
        q: BufferBinding,
        k: BufferBinding,
        v: BufferBinding,
        probs: BufferBinding,
        o: BufferBinding,
    ) -> Result<UnfusedBinding> {
        shape.validate()?;
        if shape.head_dim != self.head_dim {
            return Err(Error::Shape(format!(
                "head_dim {} but these pipelines were built for {}",
                shape.head_dim, self.head_dim
            )));
        }
        let p_len = shape.heads * shape.queries * shape.keys;
        for (name, b, len) in [
            ("q", &q, shape.q_len()),
            ("k", &k, shape.kv_len()),
            ("v", &v, shape.kv_len()),
            ("probs", &probs, p_len),
            ("o", &o, shape.q_len()),
        ] {
            let size = check_binding(device, name, b)?;
            if size != (len * 4) as u64 {
                return Err(Error::Binding {
                    name,
                    reason: format!("{size} bytes, expected {len} f32 for {shape:?}"),
                });
            }
        }
        let params = attn_params(device, shape, options)?;
        let group = |label, a: BufferBinding, b: BufferBinding, out: BufferBinding| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::Buffer(a),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::Buffer(b),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::Buffer(out),
                    },
                ],
            })
        };
        let probs_group = group("visattn attention_probs", q, k, probs.clone());
        let pv_group = group("visattn attention_pv", probs, v, o);
        Ok(UnfusedBinding {
            probs_group,
            pv_group,
            rows: (shape.heads * shape.queries) as u32,
            _params: params,
        })
    }

    /// Records P = softmax(Q K^T * scale).
    pub fn encode_probs(&self, device: &Device, pass: &mut ComputePass, binding: &UnfusedBinding) {
        let (x, y) = grid(binding.rows, device.limits().max_compute_workgroups_per_dimension);
        pass.set_pipeline(&self.probs_pipeline);
        pass.set_bind_group(0, &binding.probs_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Records O = P V.
    pub fn encode_pv(&self, device: &Device, pass: &mut ComputePass, binding: &UnfusedBinding) {
        let (x, y) = grid(binding.rows, device.limits().max_compute_workgroups_per_dimension);
        pass.set_pipeline(&self.pv_pipeline);
        pass.set_bind_group(0, &binding.pv_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}
