//! The `Bench` context every measurement runs in: the device, its timer, the report and the
//! repeats, with the timing, upload and restore helpers.

use std::time::Instant;

use wgpu::util::DeviceExt;
use wgpu::{Buffer, BufferUsages, CommandEncoder, ComputePass};

use crate::report::Report;
use crate::rows::Layer;

/// GPU timestamps where the adapter has them, else wall time around submit + wait.
pub struct Timer {
    query: Option<(wgpu::QuerySet, Buffer, f64)>,
}

impl Timer {
    pub fn new(g: &visattn::util::Gpu) -> Self {
        Self {
            query: g.device.features().contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
                let q = g.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: None,
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                });
                let b = g.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: 16,
                    usage: BufferUsages::QUERY_RESOLVE | BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                (q, b, g.queue.get_timestamp_period() as f64)
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        if self.query.is_some() { "gpu-timestamps" } else { "wall" }
    }
}

/// What every measurement needs: the device, its timer, where rows go, and the timed runs per
/// measurement (after one warm-up).
pub struct Bench {
    pub g: visattn::util::Gpu,
    pub timer: Timer,
    pub report: Report,
    pub repeats: usize,
}

impl Bench {
    /// Seconds one recorded pass takes.
    pub fn time_pass(&self, record: &dyn Fn(&mut ComputePass)) -> f64 {
        let mut encoder = self.g.device.create_command_encoder(&Default::default());
        {
            let timestamp_writes = self.timer.query.as_ref().map(|(q, _, _)| wgpu::ComputePassTimestampWrites {
                query_set: q,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("bench"),
                timestamp_writes,
            });
            record(&mut pass);
        }
        self.submit_timed(encoder)
    }

    /// The median of `repeats` timings of one pass after a warm-up.
    pub fn median_pass(&self, repeats: usize, record: &dyn Fn(&mut ComputePass)) -> f64 {
        self.time_pass(record);
        self.median_of_passes(repeats, record)
    }

    /// The median of `repeats` timings of one pass, no warm-up (the caller ran one).
    pub fn median_of_passes(&self, repeats: usize, record: &dyn Fn(&mut ComputePass)) -> f64 {
        median((0..repeats).map(|_| self.time_pass(record)).collect())
    }

    /// Seconds what `record` puts in an encoder takes (its own passes, copies between them): GPU
    /// timestamps at the start of an empty pass before it and the end of one after it.
    pub fn time_encoder(&self, record: &dyn Fn(&mut CommandEncoder)) -> f64 {
        let mut encoder = self.g.device.create_command_encoder(&Default::default());
        let mark = |encoder: &mut CommandEncoder, begin: bool| {
            let timestamp_writes = self.timer.query.as_ref().map(|(q, _, _)| wgpu::ComputePassTimestampWrites {
                query_set: q,
                beginning_of_pass_write_index: begin.then_some(0),
                end_of_pass_write_index: (!begin).then_some(1),
            });
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("bench mark"),
                timestamp_writes,
            });
        };
        mark(&mut encoder, true);
        record(&mut encoder);
        mark(&mut encoder, false);
        self.submit_timed(encoder)
    }

    /// Submits `encoder` (which wrote timestamps 0 and 1 when the adapter has them) and returns
    /// the seconds between them, else the wall time of submit + wait.
    fn submit_timed(&self, mut encoder: CommandEncoder) -> f64 {
        let g = &self.g;
        if let Some((q, resolve, _)) = &self.timer.query {
            encoder.resolve_query_set(q, 0..2, resolve, 0);
        }
        let start = Instant::now();
        g.queue.submit([encoder.finish()]);
        g.device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
        let wall = start.elapsed().as_secs_f64();
        match &self.timer.query {
            None => wall,
            Some((_, resolve, period)) => {
                let ts: Vec<u64> = visattn::readback::read_vec(&g.device, &g.queue, resolve, 2).unwrap();
                (ts[1].saturating_sub(ts[0])) as f64 * period * 1e-9
            }
        }
    }

    /// The median of `repeats` timings of what `run` encodes, after a warm-up, each from the
    /// layers' pristine probabilities (the kernels edit them in place).
    pub fn time_restored(&self, layers: &[&Layer], repeats: usize, run: &dyn Fn(&mut CommandEncoder)) -> f64 {
        let mut times = Vec::new();
        for i in 0..=repeats {
            self.restore(layers);
            let t = self.time_encoder(run);
            if i > 0 {
                times.push(t);
            }
        }
        median(times)
    }

    /// Copies each layer's pristine probabilities over the ones the kernels edit.
    fn restore(&self, layers: &[&Layer]) {
        let g = &self.g;
        let mut e = g.device.create_command_encoder(&Default::default());
        for l in layers {
            for (dst, src) in l.probs.iter().zip(&l.pristine) {
                e.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
            }
        }
        g.queue.submit([e.finish()]);
        g.device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    }

    pub fn upload(&self, data: &[f32], usage: BufferUsages) -> Buffer {
        self.g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(data),
            usage,
        })
    }
}

/// What the benchmark's own buffers allow: bound, copied from (staging, restores), written.
pub const USAGE: BufferUsages = BufferUsages::STORAGE.union(BufferUsages::COPY_SRC).union(BufferUsages::COPY_DST);

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
