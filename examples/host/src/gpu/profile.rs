//! Where a decode step's time goes on the device: GPU timestamps at the start and end of each of
//! its compute passes (`Features::TIMESTAMP_QUERY`, where the adapter has it), summed by the
//! part of the model each pass runs (the step is recorded a pass a part for it). The bench
//! prints it.

use visattn::wgpu;

/// Seconds of one decode step's passes on the device's clock, summed over the layers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepProfile {
    /// The token's embedding and the first layer's input norm.
    pub embed: f64,
    /// Each layer's q, k and v projections and RoPE.
    pub attention_in: f64,
    /// Each layer's attention over the KV cache (split-K blocks and their merge, VAR in it).
    pub attention: f64,
    /// Each layer's output projection, MLP and the norms after them.
    pub after: f64,
    /// The final norm's output through the LM head, and the token picked on the device.
    pub head: f64,
    /// Between passes: their changes (a timed step runs a pass a part of each layer; an untimed
    /// one records the whole step into one pass).
    pub between: f64,
    /// From the first pass's start to the last one's end.
    pub total: f64,
}

/// The timestamps of one step's passes: 2 a pass, resolved into a buffer read back after.
pub(super) struct PassClock {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    passes: u32,
}

impl PassClock {
    /// A clock for `passes` passes, or None where the device has no timestamp queries (native:
    /// its read waits for the GPU).
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn new(device: &wgpu::Device, passes: usize) -> Option<Self> {
        if !device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let passes = passes as u32;
        Some(Self {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("step timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * passes,
            }),
            resolved: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step timestamps"),
                size: 16 * passes as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            passes,
        })
    }

    /// Pass `i`'s descriptor: its start and end timestamps.
    pub(super) fn pass(&self, i: usize) -> wgpu::ComputePassDescriptor<'_> {
        let i = (i as u32).min(self.passes - 1);
        wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &self.queries,
                beginning_of_pass_write_index: Some(2 * i),
                end_of_pass_write_index: Some(2 * i + 1),
            }),
        }
    }

    /// Records the timestamps' resolve into the buffer [`PassClock::read`] reads.
    pub(super) fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        enc.resolve_query_set(&self.queries, 0..2 * self.passes, &self.resolved, 0);
    }

    /// The submitted step's profile: pass 0 the embedding, then 3 a layer (attention in, the
    /// attention, after it), the last the head. Native: it waits for the GPU.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn read(&self, device: &wgpu::Device, queue: &wgpu::Queue) -> Result<StepProfile, visattn::Error> {
        let ticks: Vec<u64> = visattn::readback::read_vec(device, queue, &self.resolved, 2 * self.passes as usize)?;
        let tick = queue.get_timestamp_period() as f64 * 1e-9;
        let span = |a: u64, b: u64| b.saturating_sub(a) as f64 * tick;
        let n = self.passes as usize;
        let mut p = StepProfile {
            total: span(ticks[0], ticks[2 * n - 1]),
            ..Default::default()
        };
        for i in 0..n {
            let s = span(ticks[2 * i], ticks[2 * i + 1]);
            match i {
                0 => p.embed += s,
                _ if i == n - 1 => p.head += s,
                _ => match (i - 1) % 3 {
                    0 => p.attention_in += s,
                    1 => p.attention += s,
                    _ => p.after += s,
                },
            }
            if i + 1 < n {
                p.between += span(ticks[2 * i + 1], ticks[2 * i + 2]);
            }
        }
        Ok(p)
    }
}
