//! Benchmarks: each VAR kernel's bandwidth as a ratio to a plain copy kernel and to a read-only
//! kernel measured on the same device in the same run, one whole LLaVA-1.5-7B prefill, and the
//! CPU reference on the same work. Bytes are counted one way for every row: what the kernel
//! must read plus what it must write (a copy of N bytes moves 2N, a read N). Inputs are already on the GPU (the embedding case): no upload or readback is
//! timed. GPU timestamps when the adapter has TIMESTAMP_QUERY, else wall time around
//! submit + wait. Median of the repeats after one warm-up.
//!
//! The row kernels' settings are autotuned on the adapter first (each candidate's rate is
//! printed) unless `--settings` names them; on CPU adapters a host memcpy of the same bytes (one
//! thread, all threads) is a third baseline; `--torch` times the same prefill as vectorised
//! torch on this CPU; `--markdown` prints the README's table.
//!
//!     cargo run --release --example bench [-- --json | --markdown] [--shape llava-1.5-7b|long|small|decode]
//!         [--repeats N] [--settings lanes=1,keys=16] [--attention-only | --rows-only] [--torch]

use clap::Parser;

use std::time::Instant;

use visattn::baseline::{Baseline, BaselineKind};
use visattn::{AttentionOptions, FusedAttention, FusedSettings, FusedShape, SplitAttention, SplitInputs, UnfusedAttention};
use visattn::{ImageSpan, LayerBinding, LayerRole, Phi, Rows, SequenceShape, VarConfig, VarKernels, VarState, VisualTokens, reference};
use wgpu::util::DeviceExt;
use wgpu::{Buffer, BufferUsages, ComputePass};

struct Shape {
    name: &'static str,
    tokens: usize,
    hidden: usize,
    heads: usize,
    image: ImageSpan,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "llava-1.5-7b",
        tokens: 640,
        hidden: 4096,
        heads: 32,
        image: ImageSpan { start: 35, len: 576 },
    },
    Shape {
        name: "long",
        tokens: 4096,
        hidden: 4096,
        heads: 8,
        image: ImageSpan { start: 35, len: 2880 },
    },
    Shape {
        name: "small",
        tokens: 128,
        hidden: 4096,
        heads: 4,
        image: ImageSpan { start: 8, len: 100 },
    },
];

fn hash(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

fn is_sink(s: &Shape, t: usize) -> bool {
    t == 0 || (t >= s.image.start && t < s.image.end() && (t - s.image.start) % 97 == 5)
}

/// Hidden states with massive activations on BOS and a few patches.
fn hidden(s: &Shape, layer: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..s.tokens * s.hidden)
        .map(|i| (hash(layer as u64, i as u64) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    for t in (0..s.tokens).filter(|&t| is_sink(s, t)) {
        x[t * s.hidden + 1415] = 200.0;
    }
    x
}

/// Causal post-softmax probabilities [H, T, T], heads from image-centric to text-centric.
fn probs(s: &Shape, layer: usize) -> Vec<f32> {
    let t = s.tokens;
    let table: Vec<f32> = (0..256).map(|i| ((i as f32 / 255.0 - 0.5) * 1.5).exp()).collect();
    let mut out = vec![0f32; s.heads * t * t];
    for h in 0..s.heads {
        let image = [1.2f32, -1.5, 0.6, 0.2][h % 4];
        let base: Vec<f32> = (0..t)
            .map(|j| {
                let mut b = if (s.image.start..s.image.end()).contains(&j) { image } else { 0.0 };
                if j == 0 {
                    b += 6.0;
                } else if is_sink(s, j) {
                    b += 3.0;
                }
                b.exp()
            })
            .collect();
        for q in 0..t {
            let row = &mut out[(h * t + q) * t..(h * t + q + 1) * t];
            let seed = hash(layer as u64 * 7919 + h as u64, q as u64);
            let mut sum = 0.0f32;
            for j in 0..=q {
                row[j] = base[j] * table[(hash(seed, j as u64) & 255) as usize];
                sum += row[j];
            }
            row[..=q].iter_mut().for_each(|v| *v /= sum);
        }
    }
    out
}

struct Timer {
    query: Option<(wgpu::QuerySet, Buffer, f64)>,
}

impl Timer {
    fn name(&self) -> &'static str {
        if self.query.is_some() { "gpu-timestamps" } else { "wall" }
    }
}

/// Seconds one recorded pass takes.
fn time_pass(g: &visattn::util::Gpu, timer: &Timer, record: &dyn Fn(&mut ComputePass)) -> f64 {
    let mut encoder = g.device.create_command_encoder(&Default::default());
    {
        let timestamp_writes = timer.query.as_ref().map(|(q, _, _)| wgpu::ComputePassTimestampWrites {
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
    submit_timed(g, timer, encoder)
}

/// Seconds what `record` puts in an encoder takes (its own passes, copies between them): GPU
/// timestamps at the start of an empty pass before it and the end of one after it.
fn time_encoder(g: &visattn::util::Gpu, timer: &Timer, record: &dyn Fn(&mut wgpu::CommandEncoder)) -> f64 {
    let mut encoder = g.device.create_command_encoder(&Default::default());
    let mark = |encoder: &mut wgpu::CommandEncoder, begin: bool| {
        let timestamp_writes = timer.query.as_ref().map(|(q, _, _)| wgpu::ComputePassTimestampWrites {
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
    submit_timed(g, timer, encoder)
}

/// Submits `encoder` (which wrote timestamps 0 and 1 when the adapter has them) and returns the
/// seconds between them, else the wall time of submit + wait.
fn submit_timed(g: &visattn::util::Gpu, timer: &Timer, mut encoder: wgpu::CommandEncoder) -> f64 {
    if let Some((q, resolve, _)) = &timer.query {
        encoder.resolve_query_set(q, 0..2, resolve, 0);
    }
    let start = Instant::now();
    g.queue.submit([encoder.finish()]);
    g.device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let wall = start.elapsed().as_secs_f64();
    match &timer.query {
        None => wall,
        Some((_, resolve, period)) => {
            let ts: Vec<u64> = visattn::readback::read_vec(&g.device, &g.queue, resolve, 2).unwrap();
            (ts[1].saturating_sub(ts[0])) as f64 * period * 1e-9
        }
    }
}

/// The median of `repeats` timings of what `run` encodes, after a warm-up, each from the layers'
/// pristine probabilities (the kernels edit them in place).
fn time_restored(g: &visattn::util::Gpu, timer: &Timer, layers: &[&Layer], repeats: usize, run: &dyn Fn(&mut wgpu::CommandEncoder)) -> f64 {
    let mut times = Vec::new();
    for i in 0..=repeats {
        restore(g, layers);
        let t = time_encoder(g, timer, run);
        if i > 0 {
            times.push(t);
        }
    }
    median(times)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Report<'a> {
    /// Summary lines held back until the markdown table ends.
    summaries: std::cell::RefCell<Vec<String>>,
    json: bool,
    /// Run the torch anchor after the prefill.
    torch: bool,
    /// Rows of the README's markdown table instead of the text lines.
    markdown: bool,
    adapter: String,
    backend: String,
    timer: &'a str,
}

/// Bytes a kernel must read and must write in one run.
#[derive(Clone, Copy, Default)]
struct Moved {
    read: f64,
    written: f64,
}

impl Moved {
    fn total(self) -> f64 {
        self.read + self.written
    }
}

impl std::ops::AddAssign for Moved {
    fn add_assign(&mut self, o: Moved) {
        self.read += o.read;
        self.written += o.written;
    }
}

impl Report<'_> {
    /// One row: time, bytes moved, GB/s, and the ratio to each baseline's GB/s (same counting).
    fn line(&self, kernel: &str, shape: &str, seconds: f64, moved: Option<Moved>, base: Option<&Rates>) {
        let gbps = moved.map(|m| m.total() / seconds / 1e9);
        let ratio = |rate: fn(&Rates) -> f64| gbps.zip(base).map(|(a, b)| a / rate(b));
        let (to_copy, to_read) = (ratio(|b| b.copy), ratio(|b| b.read));
        let to_memcpy = |one: bool| {
            gbps.zip(base.and_then(|b| b.memcpy))
                .map(|(a, (m1, mall))| a / if one { m1 } else { mall })
        };
        let opt = |v: Option<f64>, p: usize| v.map_or("null".to_string(), |v| format!("{v:.p$}"));
        if self.json {
            println!(
                "{{\"kernel\":\"{kernel}\",\"shape\":\"{shape}\",\"seconds\":{seconds:.6e},\"bytes_read\":{},\"bytes_written\":{},\"gbps\":{},\"ratio_to_copy\":{},\"ratio_to_read\":{},\"ratio_to_memcpy_1_thread\":{},\"ratio_to_memcpy_all_threads\":{},\"adapter\":{:?},\"backend\":\"{}\",\"timer\":\"{}\"}}",
                opt(moved.map(|m| m.read), 0),
                opt(moved.map(|m| m.written), 0),
                opt(gbps, 3),
                opt(to_copy, 3),
                opt(to_read, 3),
                opt(to_memcpy(true), 3),
                opt(to_memcpy(false), 3),
                self.adapter,
                self.backend,
                self.timer
            );
        } else if self.markdown {
            let time = if seconds >= 0.1 {
                format!("{seconds:.3} s")
            } else {
                format!("{:.3} ms", seconds * 1e3)
            };
            let dash = |v: Option<f64>, p: usize| v.map_or("".to_string(), |v| format!("{v:.p$}"));
            println!(
                "| {kernel} | {shape} | {time} | {} | {} | {} | {} | {} / {} |",
                dash(moved.map(|m| m.total() / 1e6), 1),
                dash(gbps, 2),
                dash(to_copy, 2),
                dash(to_read, 2),
                dash(to_memcpy(true), 2),
                dash(to_memcpy(false), 2),
            );
        } else {
            let memcpy = match (to_memcpy(true), to_memcpy(false)) {
                (Some(a), Some(b)) => format!("  ratio_to_memcpy {a:>5.2} / {b:>5.2}"),
                _ => String::new(),
            };
            println!(
                "{kernel:<22} {shape:<14} {:>10.3} ms {:>9} MB {:>8} GB/s  ratio_to_copy {:>6}  ratio_to_read {:>6}{memcpy}",
                seconds * 1e3,
                opt(moved.map(|m| m.total() / 1e6), 1),
                opt(gbps, 2),
                opt(to_copy, 2),
                opt(to_read, 2)
            );
        }
    }

    /// A finding of the run (a ratio, a cost): a line of its own, or after the table in
    /// markdown, so the table stays one table.
    fn summary(&self, text: String) {
        if self.json {
            return;
        }
        if self.markdown {
            self.summaries.borrow_mut().push(text);
        } else {
            println!("{text}");
        }
    }

    fn note(&self, text: &str) {
        if !self.json && !self.markdown {
            println!("  note: {text}");
        }
    }
}

struct Layer {
    probs: Vec<Buffer>,
    pristine: Vec<Buffer>,
    hidden: Buffer,
    bindings: Vec<LayerBinding>,
}

fn upload(g: &visattn::util::Gpu, data: &[f32], usage: BufferUsages) -> Buffer {
    g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(data),
        usage,
    })
}

fn make_layer(g: &visattn::util::Gpu, k: &VarKernels, state: &VarState, s: &Shape, layer: usize) -> (Layer, Vec<f32>, Vec<f32>) {
    let p = probs(s, layer);
    let h = hidden(s, layer);
    let head = s.tokens * s.tokens;
    let limit = g.device.limits().max_storage_buffer_binding_size as usize;
    let per_chunk = (limit / (head * 4)).min(s.heads);
    let usage = BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST;
    let hidden = upload(g, &h, usage);
    let (mut probs_bufs, mut pristine, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for first in (0..s.heads).step_by(per_chunk) {
        let n = per_chunk.min(s.heads - first);
        let part = &p[first * head..(first + n) * head];
        let buf = upload(g, part, usage);
        pristine.push(upload(g, part, BufferUsages::COPY_SRC));
        bindings.push(
            state
                .bind(k, Some(hidden.as_entire_buffer_binding()), buf.as_entire_buffer_binding(), first)
                .unwrap(),
        );
        probs_bufs.push(buf);
    }
    (
        Layer {
            probs: probs_bufs,
            pristine,
            hidden,
            bindings,
        },
        p,
        h,
    )
}

/// A layer's buffers bound to another state, head chunks as `make_layer` cut them.
fn bind_layer(k: &VarKernels, state: &VarState, s: &Shape, layer: &Layer) -> Vec<LayerBinding> {
    let head_bytes = (s.tokens * s.tokens * 4) as u64;
    let mut first = 0;
    layer
        .probs
        .iter()
        .map(|b| {
            let binding = state
                .bind(
                    k,
                    Some(layer.hidden.as_entire_buffer_binding()),
                    b.as_entire_buffer_binding(),
                    first,
                )
                .unwrap();
            first += (b.size() / head_bytes) as usize;
            binding
        })
        .collect()
}

/// The share of the hidden states Phi::SinksOnly reads: per token, values up to the first
/// checkpoint (64, 256, ... as in sink_score.wgsl) where the partial sum of squares rules it
/// out, or all of them (f64 here; the kernel's margin makes the GPU read at least as much).
fn early_read_fraction(cfg: &VarConfig, hidden: &[f32], dim: usize) -> f64 {
    let mut read = 0usize;
    for x in hidden.chunks_exact(dim) {
        let top = cfg.sink_dims.iter().map(|&d| (x[d as usize] as f64).abs()).fold(0.0, f64::max);
        let (mut sum, mut at, mut stop) = (0.0f64, 0usize, 64usize);
        loop {
            let end = stop.min(dim);
            sum += x[at..end].iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            at = end;
            if end == dim || top <= cfg.tau * (sum / dim as f64 + 1e-6).sqrt() * (1.0 - 1e-4) {
                break;
            }
            stop *= 4;
        }
        read += at + cfg.sink_dims.len();
    }
    read as f64 / hidden.len() as f64
}

fn restore(g: &visattn::util::Gpu, layers: &[&Layer]) {
    let mut e = g.device.create_command_encoder(&Default::default());
    for l in layers {
        for (dst, src) in l.probs.iter().zip(&l.pristine) {
            e.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
        }
    }
    g.queue.submit([e.finish()]);
    g.device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
}

/// Both baselines' GB/s over one buffer size, each the best of three work sizes per workgroup
/// (the baseline must be the device's real bandwidth, not a weak kernel), bytes counted as for
/// the kernels: the copy reads and writes its buffer, the read reads it.
struct Rates {
    copy: f64,
    read: f64,
    copy_secs: f64,
    read_secs: f64,
    /// The read's partial sums, in bytes (1/64 of its reads or less).
    read_written: u64,
    /// The buffer both ran over: the size asked for, capped at the binding limit.
    bytes: u64,
    /// On CPU adapters, the host's own memcpy of the same bytes (GB/s counted as the copy's,
    /// read plus write): one thread, all threads. How far the emulated GPU is from the memory.
    memcpy: Option<(f64, f64)>,
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

fn rates(g: &visattn::util::Gpu, timer: &Timer, bytes: u64, repeats: usize) -> Rates {
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
                let run = |pass: &mut ComputePass| b.record(pass);
                time_pass(g, timer, &run);
                let secs = median((0..repeats).map(|_| time_pass(g, timer, &run)).collect());
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
fn baseline_lines(rep: &Report, shape: &str, r: &Rates, wanted: u64) {
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

/// The bench's flags; a bad one is one `error:` line and exit 1, never a panic.
#[derive(Parser, Debug)]
#[command(about = "visattn benchmarks: each kernel against a copy and a read on the same device")]
struct Args {
    /// One JSON object per line instead of the table.
    #[arg(long)]
    json: bool,
    /// Only this shape.
    #[arg(long, value_parser = ["llava-1.5-7b", "long", "small", "decode"])]
    shape: Option<String>,
    /// Timed runs per measurement, after one warm-up (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Row-kernel settings (`lanes=4,keys=4`, as KernelSettings::to_string writes them) instead
    /// of autotuning them on this adapter.
    #[arg(long, value_parser = |s: &str| visattn::KernelSettings::parse(s).map_err(|e| e.to_string()))]
    settings: Option<visattn::KernelSettings>,
    /// Only the fused / unfused attention measurement.
    #[arg(long)]
    attention_only: bool,
    /// Only the row kernels, sink scoring and the prefill (no attention, no decode).
    #[arg(long, conflicts_with = "attention_only")]
    rows_only: bool,
    /// The README's table: markdown rows, the run's date and adapter first.
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
    /// Also time the same prefill as vectorised torch on this CPU (tools/torch_var_prefill.py,
    /// with VISATTN_PYTHON or python3) and print var_prefill's ratio to it; skipped with a
    /// message where python has no torch.
    #[arg(long)]
    torch: bool,
}

fn parse_args() -> Args {
    Args::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            print!("{e}");
            std::process::exit(0);
        }
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("bad arguments");
        eprintln!("error: {} (see --help)", first.strip_prefix("error: ").unwrap_or(first));
        std::process::exit(1)
    })
}

fn main() {
    // SAFETY: no thread has started yet.
    unsafe { visattn::util::quiet_vulkan_probe() };
    let args = parse_args();
    let (json, only, repeats) = (args.json, args.shape.clone(), args.repeats as usize);
    let g = visattn::util::gpu_with(wgpu::Features::TIMESTAMP_QUERY, None).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let timer = Timer {
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
    };
    let rep = Report {
        summaries: Default::default(),
        json,
        markdown: args.markdown,
        torch: args.torch,
        adapter: g.info.name.clone(),
        backend: format!("{:?}", g.info.backend),
        timer: timer.name(),
    };
    if !json {
        println!(
            "adapter: {} ({}), timer: {}, median of {repeats}{}",
            rep.adapter,
            rep.backend,
            rep.timer,
            if args.markdown {
                format!(", {} (UTC)", today())
            } else {
                String::new()
            }
        );
    }
    if args.markdown {
        println!();
        println!("| kernel | shape | time | MB moved | GB/s | ratio_to_copy | ratio_to_read | ratio_to_memcpy (1 thread / all) |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    let settings = match args.settings {
        Some(s) => s,
        None => autotune_lines(&g, &timer, &rep),
    };
    let k = VarKernels::new(&g.ctx, settings).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    if !json && !args.markdown {
        println!("row kernel settings: {settings}");
    }
    let cfg = VarConfig::paper();
    // Only the fused/unfused attention measurement (profiling the fused kernel).
    let attention_only = args.attention_only;

    for s in SHAPES.iter().filter(|s| only.as_deref().is_none_or(|o| o == s.name)) {
        let visual = VisualTokens::from_spans(&[s.image], s.tokens).unwrap();
        if !attention_only {
            row_kernels(&g, &timer, &rep, &k, s, &cfg, &visual, repeats);
        }
        if s.name != "long" && !args.rows_only {
            attention(&g, &timer, &rep, &k, s, &cfg, &visual, repeats);
        }
    }
    if !attention_only && !args.rows_only && only.as_deref().is_none_or(|o| o == "decode") {
        for keys in [640, 4096, 32768] {
            decode(&g, &timer, &rep, &k, &cfg, keys, repeats);
        }
    }
    if args.markdown {
        println!();
        for line in rep.summaries.borrow().iter() {
            println!("- {line}");
        }
    }
}

/// Today's date (UTC) from the system clock, as the README's tables are dated.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The same prefill as a few vectorised torch ops per layer on this CPU
/// (tools/torch_var_prefill.py, all cores), and var_prefill's speed as a ratio to it.
fn torch_anchor(rep: &Report, shape: &str, gpu_secs: f64) {
    let python = std::env::var("VISATTN_PYTHON").unwrap_or_else(|_| "python3".into());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/torch_var_prefill.py");
    let out = std::process::Command::new(&python).arg(&script).args(["29", &threads]).output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named 'torch'") => {
            rep.summary(format!("torch: skipped: {python} has no torch (set VISATTN_PYTHON)"));
            return;
        }
        Ok(o) => {
            println!(
                "torch: skipped: {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            return;
        }
        Err(e) => {
            rep.summary(format!("torch: skipped: {python}: {e}"));
            return;
        }
    };
    // "... min 0.251 s, median 0.262 s"
    let Some(secs) = text
        .split("min ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse::<f64>().ok())
    else {
        rep.summary(format!("torch: skipped: unexpected output {text:?}"));
        return;
    };
    rep.line(&format!("torch_prefill ({threads} threads)"), shape, secs, None, None);
    rep.summary(format!(
        "var_prefill: {:.2}x the speed of vectorised torch on this CPU (torch best of 3 / visattn median)",
        secs / gpu_secs
    ));
}

/// Autotunes the row kernels on this adapter and prints each candidate's rate on the probe
/// against a copy of the probe's bytes; returns the winner.
fn autotune_lines(g: &visattn::util::Gpu, timer: &Timer, rep: &Report) -> visattn::KernelSettings {
    let t0 = Instant::now();
    let tuned = visattn::KernelSettings::autotune(&g.device, &g.queue).unwrap_or_else(|e| {
        eprintln!("error: autotune: {e}");
        std::process::exit(1)
    });
    let took = t0.elapsed().as_secs_f64();
    let base = rates(g, timer, tuned.probe_bytes, 3);
    let fastest = tuned.timings.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
    for (s, secs) in &tuned.timings {
        let gbps = tuned.probe_bytes as f64 / secs / 1e9;
        if rep.markdown {
            println!(
                "| autotune {s} | probe | {:.3} ms | {:.1} | {gbps:.2} | {:.2} | | ratio_to_best {:.2}{} |",
                secs * 1e3,
                tuned.probe_bytes as f64 / 1e6,
                gbps / base.copy,
                fastest / secs,
                if *s == tuned.best { ", chosen" } else { "" }
            );
        } else if rep.json {
            println!(
                "{{\"autotune\":\"{s}\",\"seconds\":{secs:.6e},\"gbps\":{gbps:.3},\"ratio_to_copy\":{:.3},\"ratio_to_best\":{:.3},\"best\":{}}}",
                gbps / base.copy,
                fastest / secs,
                *s == tuned.best
            );
        } else {
            println!(
                "autotune {:<16} {:>8.3} ms  {:>6.2} GB/s  ratio_to_copy {:>5.2}  ratio_to_best {:>5.2}{}",
                s.to_string(),
                secs * 1e3,
                gbps,
                gbps / base.copy,
                fastest / secs,
                if *s == tuned.best { "  <- chosen" } else { "" }
            );
        }
    }
    rep.note(&format!(
        "autotune: {} candidates on a {:.1} MB probe layer (wall time, median of 5 rounds over the candidates after a warm-up; pipeline builds included) in {took:.2} s",
        tuned.timings.len(),
        tuned.probe_bytes as f64 / 1e6
    ));
    tuned.best
}

/// A 32-layer prefill's state for one of the shapes: every query row, prepared with `cfg`.
fn prefill_state(g: &visattn::util::Gpu, s: &Shape, cfg: &VarConfig, visual: &VisualTokens, rows: Rows) -> VarState {
    let seq = SequenceShape {
        tokens: s.tokens,
        hidden: s.hidden,
        heads: s.heads,
        queries: s.tokens,
    };
    let mut state = VarState::new(&g.ctx, seq, rows).unwrap();
    state.prepare(&g.queue, cfg, visual, 32).unwrap();
    state
}

/// Sink scoring and the row kernel against a copy of the same size, and for `llava-1.5-7b` the
/// whole 32-layer prefill against the CPU reference.
#[allow(clippy::too_many_arguments)]
fn row_kernels(
    g: &visattn::util::Gpu,
    timer: &Timer,
    rep: &Report,
    k: &VarKernels,
    s: &Shape,
    cfg: &VarConfig,
    visual: &VisualTokens,
    repeats: usize,
) {
    let all = prefill_state(g, s, cfg, visual, Rows::All);
    let fast = prefill_state(g, s, cfg, visual, Rows::MayChange);
    // What an engine binds: rows that may change, phi only where the classes need it.
    let engine = prefill_state(g, s, cfg, visual, Rows::MayChange).with_phi(Phi::SinksOnly);
    let (layer, p, h) = make_layer(g, k, &all, s, 3);
    let fast_bindings = bind_layer(k, &fast, s, &layer);

    // Bytes as every row counts them: what the kernel must read plus what it must write.
    // Sink scoring reads [T, D] hidden states and the image mask, writes phi and classes; the
    // row kernel reads the rows it is asked to consider and writes the rows that change (once)
    // and a selection flag per row.
    let shape = visattn::AttnShape::new(s.heads, s.tokens, s.tokens).unwrap();
    let changed_rows = |layer: usize, p: &[f32], h: &[f32]| {
        let mut want = p.to_vec();
        reference::apply_layer(cfg, cfg.role(layer, 32), visual, Some((h, s.hidden)), &mut want, shape).unwrap();
        want.chunks_exact(s.tokens)
            .zip(p.chunks_exact(s.tokens))
            .filter(|(a, b)| a != b)
            .count()
    };
    let changed = changed_rows(3, &p, &h);
    let row_bytes = (s.tokens * 4) as f64;
    let probs_bytes = (p.len() * 4) as u64;
    let hidden_bytes = (s.tokens * s.hidden * 4) as u64;
    let rows_after = s.heads * s.tokens.saturating_sub(visual.first_end());
    let sink_moved = Moved {
        read: hidden_bytes as f64 + s.tokens as f64 * 4.0,
        written: s.tokens as f64 * 8.0,
    };
    let rows_moved = |rows: usize, changed: usize| Moved {
        read: rows as f64 * row_bytes,
        written: changed as f64 * row_bytes + rows as f64 * 4.0,
    };

    let probs_rates = rates(g, timer, probs_bytes, repeats);
    baseline_lines(rep, s.name, &probs_rates, probs_bytes);
    let hidden_rates = rates(g, timer, hidden_bytes, repeats);

    let sink_run = |pass: &mut ComputePass| layer.bindings[0].sinks().record(pass, 3).unwrap();
    time_pass(g, timer, &sink_run);
    // The rows-that-may-change state reads its own classes: score them once.
    time_pass(g, timer, &|pass: &mut ComputePass| {
        fast_bindings[0].sinks().record(pass, 3).unwrap()
    });
    let secs = median((0..repeats).map(|_| time_pass(g, timer, &sink_run)).collect());
    rep.line("sink_score", s.name, secs, Some(sink_moved), Some(&hidden_rates));
    // Phi::SinksOnly: the same classes, most rows read in part. Its rate counts the bytes it
    // reads (the share of the hidden states up to each token's last checkpoint), as every other
    // row counts what its kernel reads: crediting it with the full kernel's bytes made it look
    // 13x faster than a copy.
    let early = engine.bind_sinks(k, Some(layer.hidden.as_entire_buffer_binding())).unwrap();
    let early_run = |pass: &mut ComputePass| early.record(pass, 3).unwrap();
    time_pass(g, timer, &early_run);
    let early_secs = median((0..repeats).map(|_| time_pass(g, timer, &early_run)).collect());
    let fraction = early_read_fraction(cfg, &h, s.hidden);
    let early_moved = |fraction: f64| Moved {
        read: fraction * hidden_bytes as f64 + s.tokens as f64 * 4.0,
        written: s.tokens as f64 * 8.0,
    };
    rep.line(
        "sink_score_sinks_only",
        s.name,
        early_secs,
        Some(early_moved(fraction)),
        Some(&hidden_rates),
    );
    rep.summary(format!(
        "sink_score {}: Phi::SinksOnly reads {:.1}% of the hidden states ({:.1}x faster than every phi; same classes)",
        s.name,
        100.0 * fraction,
        secs / early_secs
    ));

    for (name, bindings, rows) in [
        ("var_rows_all", &layer.bindings, s.heads * s.tokens),
        ("var_rows_may_change", &fast_bindings, rows_after),
    ] {
        // encode: the rows staged in a texture where the settings say so.
        let run = |encoder: &mut wgpu::CommandEncoder| {
            for b in bindings.iter() {
                b.encode_rows(encoder, 3).unwrap();
            }
        };
        let secs = time_restored(g, timer, &[&layer], repeats, &run);
        rep.line(name, s.name, secs, Some(rows_moved(rows, changed)), Some(&probs_rates));
    }

    if s.name == "small" {
        // A host that holds every layer at once (dumps) runs the layers that share a role as a
        // batch, sequence b = layer b: one copy and one dispatch for all their rows.
        const LAYERS: usize = 32;
        let role_layer = 3;
        let seq = SequenceShape {
            tokens: s.tokens,
            hidden: s.hidden,
            heads: s.heads,
            queries: s.tokens,
        };
        let usage = BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST;
        let (mut all_p, mut all_h, mut changed) = (Vec::new(), Vec::new(), 0);
        for l in 0..LAYERS {
            let (p, h) = (probs(s, l), hidden(s, l));
            let mut want = p.clone();
            reference::apply_layer(cfg, cfg.role(role_layer, 32), visual, Some((&h, s.hidden)), &mut want, shape).unwrap();
            changed += want
                .chunks_exact(s.tokens)
                .zip(p.chunks_exact(s.tokens))
                .filter(|(a, b)| a != b)
                .count();
            all_p.extend(p);
            all_h.extend(h);
        }
        let hidden_buf = upload(g, &all_h, usage);
        let probs_buf = upload(g, &all_p, usage);
        for (name, rows_mode, rows) in [
            ("var_rows_all_32_layers", Rows::All, LAYERS * s.heads * s.tokens),
            ("var_rows_may_change_32_layers", Rows::MayChange, LAYERS * rows_after),
        ] {
            let mut state = VarState::new_batch(&g.ctx, seq, LAYERS, rows_mode).unwrap();
            let entries: Vec<visattn::BatchEntry> = (0..LAYERS).map(|_| visattn::BatchEntry { visual, queries: s.tokens }).collect();
            state.prepare_batch(&g.queue, cfg, &entries, 32).unwrap();
            let binding = state
                .bind(
                    k,
                    Some(hidden_buf.as_entire_buffer_binding()),
                    probs_buf.as_entire_buffer_binding(),
                    0,
                )
                .unwrap();
            let layer = Layer {
                probs: vec![probs_buf.clone()],
                pristine: vec![upload(g, &all_p, BufferUsages::COPY_SRC)],
                hidden: hidden_buf.clone(),
                bindings: vec![],
            };
            time_pass(g, timer, &|pass: &mut ComputePass| {
                binding.sinks().record(pass, role_layer).unwrap()
            });
            let run = |encoder: &mut wgpu::CommandEncoder| binding.encode_rows(encoder, role_layer).unwrap();
            let secs = time_restored(g, timer, &[&layer], repeats, &run);
            rep.line(name, s.name, secs, Some(rows_moved(rows, changed)), Some(&probs_rates));
        }
    }

    if s.name == "llava-1.5-7b" {
        // One whole prefill: 32 layers, sinks and rows in every layer, one encoder; every phi
        // (`fast`), then as an engine binds it (`engine`: phi only where the classes need it).
        let layers: Vec<(Layer, Vec<f32>, Vec<f32>)> = (0..32).map(|l| make_layer(g, k, &fast, s, l)).collect();
        let refs: Vec<&Layer> = layers.iter().map(|(l, _, _)| l).collect();
        let engine_bindings: Vec<Vec<LayerBinding>> = refs.iter().map(|l| bind_layer(k, &engine, s, l)).collect();
        let every_phi: Vec<&[LayerBinding]> = layers.iter().map(|(l, _, _)| &l.bindings[..]).collect();
        let engine_refs: Vec<&[LayerBinding]> = engine_bindings.iter().map(|b| &b[..]).collect();
        let time_prefill = |bindings: &[&[LayerBinding]]| {
            let run = |encoder: &mut wgpu::CommandEncoder| {
                for (l, layer) in bindings.iter().enumerate() {
                    layer[0].encode(encoder, l).unwrap();
                    for b in &layer[1..] {
                        b.encode_rows(encoder, l).unwrap();
                    }
                }
            };
            time_restored(g, timer, &refs, repeats.min(3), &run)
        };
        let every_phi_secs = time_prefill(&every_phi);
        let gpu_secs = time_prefill(&engine_refs);
        // Off layers need nothing; a detecting layer scores sinks; a redistributing one also
        // reads the rows that may change and writes those that do. With Phi::SinksOnly a
        // detecting layer reads only its share of the hidden states (`early`).
        let (mut moved, mut early) = (Moved::default(), Moved::default());
        for (l, (_, p, h)) in layers.iter().enumerate() {
            let role = cfg.role(l, 32);
            if role == LayerRole::Off {
                continue;
            }
            moved += sink_moved;
            early += early_moved(early_read_fraction(cfg, h, s.hidden));
            if role == LayerRole::Redistribute {
                let rows = rows_moved(rows_after, changed_rows(l, p, h));
                moved += rows;
                early += rows;
            }
        }
        // Mostly hidden-state reads: the hidden-sized baselines are the like-for-like rates.
        rep.line("var_prefill_every_phi", s.name, every_phi_secs, Some(moved), Some(&hidden_rates));
        rep.line("var_prefill", s.name, gpu_secs, Some(early), Some(&hidden_rates));
        rep.summary(format!(
            "var_prefill: phi only where the classes need it (Phi::SinksOnly, what engines bind) is {:.2}x the prefill with every phi; it reads {:.1} of the {:.1} MB the prefill with every phi moves, and its ratios count those",
            every_phi_secs / gpu_secs,
            early.total() / 1e6,
            moved.total() / 1e6
        ));

        let start = Instant::now();
        for (l, (_, p, h)) in layers.iter().enumerate() {
            let mut work = p.clone();
            reference::apply_layer(cfg, cfg.role(l, 32), visual, Some((h, s.hidden)), &mut work, shape).unwrap();
        }
        let cpu = start.elapsed().as_secs_f64();
        rep.line("cpu_reference_prefill", s.name, cpu, None, None);
        if rep.torch {
            torch_anchor(rep, s.name, gpu_secs);
        }
        rep.summary(format!(
            "var_prefill: GPU {:.1}x faster than the CPU reference (f64, one thread)",
            cpu / gpu_secs
        ));
    }
}

/// One decode step (one query row, 32 heads over 4 kv heads, d 128) over `keys` keys:
/// split-K vs the one-row fused kernel, and each with VAR on (a redistributing layer) vs off.
fn decode(g: &visattn::util::Gpu, timer: &Timer, rep: &Report, k: &VarKernels, cfg: &VarConfig, keys: usize, repeats: usize) {
    let shape = FusedShape {
        heads: 32,
        kv_heads: 4,
        queries: 1,
        keys,
        head_dim: 128,
    };
    let noise = |seed: u64, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (hash(seed, i as u64) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    };
    let usage = BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST;
    let (qb, kb, vb) = (
        upload(g, &noise(1, shape.q_len()), usage),
        upload(g, &noise(2, shape.kv_len()), usage),
        upload(g, &noise(3, shape.kv_len()), usage),
    );
    let ob = upload(g, &vec![0.0; shape.q_len()], usage);
    let image = ImageSpan::new(35, (keys * 9 / 10).min(keys - 36).max(1));
    let visual = VisualTokens::from_spans(&[image], keys).unwrap();
    let mut state = VarState::new(
        &g.ctx,
        SequenceShape {
            tokens: keys,
            hidden: 64,
            heads: 32,
            queries: 1,
        },
        Rows::All,
    )
    .unwrap();
    let hidden: Vec<f32> = (0..keys * 64)
        .map(|i| if i % 64 == 7 && (i / 64) % 97 == 0 { 300.0 } else { 1.0 })
        .collect();
    let cfg_dims = VarConfig {
        sink_dims: vec![7],
        tau: 5.0,
        ..cfg.clone()
    };
    state.prepare(&g.queue, &cfg_dims, &visual, 32).unwrap();
    let hb = upload(g, &hidden, usage);
    let sinks = state.bind_sinks(k, Some(hb.as_entire_buffer_binding())).unwrap();
    time_pass(g, timer, &|pass: &mut ComputePass| sinks.record(pass, 3).unwrap());
    let opts = AttentionOptions { causal: true, scale: None };
    let median_of = |run: &dyn Fn(&mut ComputePass)| {
        time_pass(g, timer, run);
        median((0..repeats.min(3)).map(|_| time_pass(g, timer, run)).collect())
    };
    let name = format!("decode-{keys}");
    let split = SplitAttention::new(&g.ctx, 128).unwrap();
    let sb = split
        .bind(
            &state,
            shape,
            opts,
            visattn::KvLayout {
                capacity: keys,
                block: 256,
            },
            SplitInputs {
                attention: visattn::AttentionInputs {
                    q: qb.as_entire_buffer_binding(),
                    k: kb.as_entire_buffer_binding(),
                    v: vb.as_entire_buffer_binding(),
                    o: ob.as_entire_buffer_binding(),
                },
                classes: state.classes_buffer().as_entire_buffer_binding(),
                selected: state.selected_buffer().as_entire_buffer_binding(),
            },
        )
        .unwrap();
    // Layer 3 redistributes, layer 0 is off: same kernels, VAR's final step on or off.
    let split_var = median_of(&|pass: &mut ComputePass| sb.record(pass, 3).unwrap());
    let split_off = median_of(&|pass: &mut ComputePass| sb.record(pass, 0).unwrap());
    rep.line("split_k_var", &name, split_var, None, None);
    rep.line("split_k_var_off", &name, split_off, None, None);
    let mut one_row = Vec::new();
    for var in [true, false] {
        let f = FusedAttention::new(&g.ctx, FusedSettings { head_dim: 128, var }).unwrap();
        let b = f
            .bind(
                &state,
                shape,
                opts,
                visattn::AttentionInputs {
                    q: qb.as_entire_buffer_binding(),
                    k: kb.as_entire_buffer_binding(),
                    v: vb.as_entire_buffer_binding(),
                    o: ob.as_entire_buffer_binding(),
                },
            )
            .unwrap();
        let secs = median_of(&|pass: &mut ComputePass| b.record(pass, 3).unwrap());
        rep.line(
            if var { "one_row_fused_var" } else { "one_row_fused_plain" },
            &name,
            secs,
            None,
            None,
        );
        one_row.push(secs);
    }
    rep.summary(format!(
        "decode {keys} keys: split-K is {:.1}x the one-row kernel; VAR costs {:+.1}% in split-K, {:+.1}% in the one-row kernel",
        one_row[0] / split_var,
        (split_var / split_off - 1.0) * 100.0,
        (one_row[0] / one_row[1] - 1.0) * 100.0
    ));
}

/// Fused attention with VAR on and off, and the unfused GPU path, at the shape's prefill (32
/// or 4 heads, head_dim 128, causal). Compute-bound: seconds, no GB/s.
#[allow(clippy::too_many_arguments)]
fn attention(
    g: &visattn::util::Gpu,
    timer: &Timer,
    rep: &Report,
    k: &VarKernels,
    s: &Shape,
    cfg: &VarConfig,
    visual: &VisualTokens,
    repeats: usize,
) {
    let shape = FusedShape {
        heads: s.heads,
        kv_heads: s.heads,
        queries: s.tokens,
        keys: s.tokens,
        head_dim: 128,
    };
    let noise = |seed: u64, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (hash(seed, i as u64) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    };
    let (q, kk, v, h) = (
        noise(1, shape.q_len()),
        noise(2, shape.kv_len()),
        noise(3, shape.kv_len()),
        hidden(s, 3),
    );
    let usage = BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST;
    let (qb, kb, vb, hb) = (
        upload(g, &q, usage),
        upload(g, &kk, usage),
        upload(g, &v, usage),
        upload(g, &h, usage),
    );
    let ob = upload(g, &vec![0.0; shape.q_len()], usage);
    let pb = upload(g, &vec![0.0; s.heads * s.tokens * s.tokens], usage);
    let opts = AttentionOptions { causal: true, scale: None };
    let state = prefill_state(g, s, cfg, visual, Rows::MayChange);
    let sinks = state.bind_sinks(k, Some(hb.as_entire_buffer_binding())).unwrap();
    let bind = |f: &FusedAttention| {
        f.bind(
            &state,
            shape,
            opts,
            visattn::AttentionInputs {
                q: qb.as_entire_buffer_binding(),
                k: kb.as_entire_buffer_binding(),
                v: vb.as_entire_buffer_binding(),
                o: ob.as_entire_buffer_binding(),
            },
        )
        .unwrap()
    };
    let median_of = |run: &dyn Fn(&mut ComputePass)| {
        time_pass(g, timer, run);
        median((0..repeats).map(|_| time_pass(g, timer, run)).collect())
    };
    // Sinks once so the classes are real for every timed run.
    time_pass(g, timer, &|pass: &mut ComputePass| sinks.record(pass, 3).unwrap());
    // Plain and VAR interleaved, run by run, so load on a shared machine hits both alike; VAR's
    // cost is the median of the paired ratios.
    let kernels = [false, true].map(|var| bind(&FusedAttention::new(&g.ctx, FusedSettings { head_dim: 128, var }).unwrap()));
    let run = |i: usize| {
        let b = &kernels[i];
        time_pass(g, timer, &|pass: &mut ComputePass| b.record(pass, 3).unwrap())
    };
    run(0);
    run(1);
    let pairs: Vec<(f64, f64)> = (0..repeats).map(|_| (run(0), run(1))).collect();
    let seconds = [
        median(pairs.iter().map(|p| p.0).collect()),
        median(pairs.iter().map(|p| p.1).collect()),
    ];
    let var_cost = median(pairs.iter().map(|p| p.1 / p.0).collect()) - 1.0;
    rep.line("fused_attention_plain", s.name, seconds[0], None, None);
    rep.line("fused_attention_var", s.name, seconds[1], None, None);
    let un = UnfusedAttention::new(&g.ctx, 128).unwrap();
    let ub = un
        .bind(
            shape,
            opts,
            visattn::AttentionInputs {
                q: qb.as_entire_buffer_binding(),
                k: kb.as_entire_buffer_binding(),
                v: vb.as_entire_buffer_binding(),
                o: ob.as_entire_buffer_binding(),
            },
            pb.as_entire_buffer_binding(),
        )
        .unwrap();
    let lb = state
        .bind(k, Some(hb.as_entire_buffer_binding()), pb.as_entire_buffer_binding(), 0)
        .unwrap();
    let unfused = median_of(&|pass: &mut ComputePass| {
        ub.record_probs(pass);
        lb.record(pass, 3).unwrap();
        ub.record_pv(pass);
    });
    rep.line("unfused_attention_var", s.name, unfused, None, None);
    rep.summary(format!(
        "attention {}: VAR costs {:+.1}% over the same fused kernel without it (median of paired runs); fused is {:.2}x the unfused GPU path",
        s.name,
        var_cost * 100.0,
        unfused / seconds[1]
    ));
}
