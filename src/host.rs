//! Host slices in, host vectors out: upload, run one layer, read back. For tests, tools and the
//! CLI; engines that already hold their tensors on the GPU use [`VarState`] directly.

use wgpu::{Buffer, BufferUsages, Device, Queue};

use crate::config::{LayerRole, VarConfig};
use crate::error::{Error, Result};
use crate::kernels::VarKernels;
use crate::readback::{read_bytes, read_vec};
use crate::reference::check_finite;
use crate::state::{LayerBinding, Rows, SequenceShape, VarState};
use crate::visual::VisualTokens;

/// One layer's results, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerOutput {
    /// [H, Q, K] after VAR.
    pub probs: Vec<f32>,
    /// [T]; zeros where the layer does not detect.
    pub phi: Vec<f32>,
    /// [T]
    pub sinks: Vec<bool>,
    /// [H, Q]; with [`Rows::MayChange`], false for the rows not visited.
    pub selected: Vec<bool>,
}

struct Chunk {
    buffer: Buffer,
    first_head: usize,
    heads: usize,
    binding: LayerBinding,
}

/// Owns upload buffers for one sequence shape and runs layers from host slices. A layer whose
/// probabilities exceed the device's binding or buffer limit goes through in chunks of heads.
pub struct HostRunner {
    kernels: VarKernels,
    state: VarState,
    hidden: Buffer,
    chunks: Vec<Chunk>,
}

impl HostRunner {
    pub fn new(device: &Device, kernels: &VarKernels, shape: SequenceShape, rows: Rows) -> Result<Self> {
        let state = VarState::new(device, shape, rows)?;
        let limits = device.limits();
        let max_bytes = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let head_bytes = (shape.queries * shape.tokens * 4) as u64;
        let hidden_bytes = (shape.tokens * shape.hidden * 4) as u64;
        if head_bytes > max_bytes {
            return Err(Error::Limit {
                name: "probs (one head)",
                needed: head_bytes,
                limit: max_bytes,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        if hidden_bytes > max_bytes {
            return Err(Error::Limit {
                name: "hidden",
                needed: hidden_bytes,
                limit: max_bytes,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        let new_buffer = |label, size| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let hidden = new_buffer("visattn hidden upload", hidden_bytes);
        let heads_per_chunk = ((max_bytes / head_bytes) as usize).min(shape.heads);
        let mut chunks = Vec::new();
        for first_head in (0..shape.heads).step_by(heads_per_chunk) {
            let heads = heads_per_chunk.min(shape.heads - first_head);
            let buffer = new_buffer("visattn probs upload", heads as u64 * head_bytes);
            let binding = state.bind(
                device,
                kernels,
                Some(hidden.as_entire_buffer_binding()),
                buffer.as_entire_buffer_binding(),
                first_head,
            )?;
            chunks.push(Chunk {
                buffer,
                first_head,
                heads,
                binding,
            });
        }
        Ok(Self {
            kernels: kernels.clone(),
            state,
            hidden,
            chunks,
        })
    }

    /// How many head chunks a layer is split into on this device.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    pub fn prepare(&mut self, queue: &Queue, cfg: &VarConfig, visual: &VisualTokens, layers: usize) -> Result<()> {
        self.state.prepare(queue, cfg, visual, layers)
    }

    pub fn role(&self, layer: usize) -> Result<LayerRole> {
        self.state.role(layer)
    }

    /// Runs `layer` on `probs` [H, Q, K] with `hidden` [T, D] (None only for layers that do not
    /// detect sinks) and reads everything back.
    pub fn run_layer(
        &self,
        device: &Device,
        queue: &Queue,
        layer: usize,
        hidden: Option<&[f32]>,
        probs: &[f32],
    ) -> Result<LayerOutput> {
        let s = self.state.shape();
        s.attn().check_probs(probs.len())?;
        check_finite("attentions", probs)?;
        let role = self.state.role(layer)?;
        match hidden {
            Some(h) => {
                if h.len() != s.tokens * s.hidden {
                    return Err(Error::Shape(format!(
                        "hidden states have {} values, expected T x D = {} x {}",
                        h.len(),
                        s.tokens,
                        s.hidden
                    )));
                }
                check_finite("hidden_states", h)?;
                queue.write_buffer(&self.hidden, 0, bytemuck::cast_slice(h));
            }
            None if role != LayerRole::Off => {
                return Err(Error::Shape(format!("layer {layer} detects sinks and needs its hidden states")));
            }
            None => {}
        }
        let head_len = s.queries * s.tokens;
        for c in &self.chunks {
            let part = &probs[c.first_head * head_len..(c.first_head + c.heads) * head_len];
            queue.write_buffer(&c.buffer, 0, bytemuck::cast_slice(part));
        }

        let mut encoder = device.create_command_encoder(&Default::default());
        // Rows::MayChange leaves skipped rows unwritten: clear so they read as "not selected".
        encoder.clear_buffer(self.state.selected_buffer(), 0, None);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("visattn layer"),
                timestamp_writes: None,
            });
            let max = device.limits().max_compute_workgroups_per_dimension;
            self.state
                .encode_sinks(&self.kernels, &mut pass, &self.chunks[0].binding, layer, max)?;
            for c in &self.chunks {
                self.state.encode_rows(&self.kernels, &mut pass, &c.binding, layer, max)?;
            }
        }
        queue.submit([encoder.finish()]);

        let mut out = Vec::with_capacity(probs.len());
        for c in &self.chunks {
            let bytes = read_bytes(device, queue, &c.buffer, 0, c.buffer.size())?;
            out.extend_from_slice(bytemuck::cast_slice::<u8, f32>(&bytes));
        }
        let phi: Vec<f32> = read_vec(device, queue, self.state.phi_buffer(), s.tokens)?;
        let classes: Vec<u32> = read_vec(device, queue, self.state.classes_buffer(), s.tokens)?;
        let selected: Vec<u32> = read_vec(device, queue, self.state.selected_buffer(), s.heads * s.queries)?;
        Ok(LayerOutput {
            probs: out,
            phi,
            sinks: classes.iter().map(|c| c & 2 != 0).collect(),
            selected: selected.iter().map(|&v| v != 0).collect(),
        })
    }
}
