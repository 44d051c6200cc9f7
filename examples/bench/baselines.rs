//! The rates every row is divided by: the copy and read baselines on the same device (and on
//! CPU adapters the host's memcpy), over the same bytes.

use std::time::Instant;

use visattn::baseline::{Baseline, BaselineKind};
use wgpu::ComputePass;

use crate::context::{Bench, median};
use crate::report::Moved;

/// Both baselines' GB/s over one buffer size, each the best of three work sizes per workgroup
/// (the baseline must be the device's real bandwidth, not a weak kernel), bytes counted as for
/// the kernels: the copy reads and writes its buffer, the read reads it.
pub struct Rates {
    pub copy: f64,
    pub read: f64,
    copy_secs: f64,
    read_secs: f64,
    /// The read's partial sums, in bytes (1/64 of its reads or less).
    read_written: u64,
    /// The buffer both ran over: the size asked for, capped at the binding limit.
    bytes: u64,
    /// On CPU adapters, the host's own memcpy of the same bytes (GB/s counted as the copy's,
    /// read plus write): one thread, all threads. How far the emulated GPU is from the memory.
    pub memcpy: Option<(f64, f64)>,
}

/// A host memcpy of `bytes` (counted read + write, as the copy kernel), one thread and
/// `available_parallelism` threads, median of `repeats` after a warm-up.
fn memcpy_rates(bytes: u64, repeats: usize) -> (f64, f64) {
    let src: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let mut dst = vec![0u8; bytes as usize];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut time = |parts: usize| {
        let mut run = || {
            let chunk = src.len().div_ceil(parts);
            let t0 = Instant::now();
            std::thread::scope(|scope| {
                for (d, s) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                    scope.spawn(move || d.copy_from_slice(s));
                }
            });
            t0.elapsed().as_secs_f64()
        };
        run();
        let secs = median((0..repeats).map(|_| run()).collect());
        2.0 * bytes as f64 / secs / 1e9
    };
    (time(1), time(threads))
}

impl Bench {
    /// Both baselines (and the memcpy on CPU adapters) over `bytes`, median of `repeats`.
    pub fn rates(&self, bytes: u64, repeats: usize) -> Rates {
        let g = &self.g;
        let bytes = bytes.min(g.device.limits().max_storage_buffer_binding_size) / 4 * 4;
        let len = (bytes / 4) as u32;
        let sizes = [640u32, 4096, 16384];
        let src = visattn::baseline::buffer(&g.ctx, bytes).unwrap();
        let best = |kind| {
            let baseline = Baseline::new(&g.ctx, kind).unwrap();
            let dst = visattn::baseline::buffer(&g.ctx, kind.output_len(len, sizes[0]) * 4).unwrap();
            sizes
                .iter()
                .map(|&per_wg| {
                    let b = baseline
                        .bind(src.as_entire_buffer_binding(), dst.as_entire_buffer_binding(), len, per_wg)
                        .unwrap();
                    let secs = self.median_pass(repeats, &|pass: &mut ComputePass| b.record(pass));
                    ((b.bytes_read + b.bytes_written) as f64 / secs / 1e9, secs, b.bytes_written)
                })
                .fold((0.0, 0.0, 0), |best, r| if r.0 > best.0 { r } else { best })
        };
        let (copy, copy_secs, _) = best(BaselineKind::Copy);
        let (read, read_secs, read_written) = best(BaselineKind::Read);
        let memcpy = (g.info.device_type == wgpu::DeviceType::Cpu).then(|| memcpy_rates(bytes, repeats));
        Rates {
            copy,
            read,
            copy_secs,
            read_secs,
            read_written,
            bytes,
            memcpy,
        }
    }

    /// The baseline rows of one buffer size, and a note where the binding limit capped it.
    pub fn baseline_lines(&self, shape: &str, r: &Rates, wanted: u64) {
        let rep = &self.report;
        let n = r.bytes as f64;
        rep.line("copy", shape, r.copy_secs, Some(Moved { read: n, written: n }), Some(r));
        let partials = r.read_written as f64;
        rep.line(
            "read",
            shape,
            r.read_secs,
            Some(Moved {
                read: n,
                written: partials,
            }),
            Some(r),
        );
        if r.bytes < wanted {
            rep.note(&format!(
                "the baselines ran over {:.0} MB, the binding limit, not the shape's {:.0} MB: a rate, still comparable",
                r.bytes as f64 / 1e6,
                wanted as f64 / 1e6
            ));
        }
    }
}
