//! Benchmarks: each VAR kernel's bandwidth as a ratio to a plain copy kernel and to a read-only
//! kernel measured on the same device in the same run, one whole LLaVA-1.5-7B prefill, and the
//! CPU reference on the same work. Bytes are counted one way for every row: what the kernel
//! must read plus what it must write (a copy of N bytes moves 2N, a read N). Inputs are already
//! on the GPU (the embedding case): no upload or readback is timed. GPU timestamps when the
//! adapter has TIMESTAMP_QUERY, else wall time around submit + wait. Median of the repeats
//! after one warm-up.
//!
//! The row kernels' settings are autotuned on the adapter first (each candidate's rate is
//! printed) unless `--settings` names them; on CPU adapters a host memcpy of the same bytes (one
//! thread, all threads) is a third baseline; `--torch` times the same prefill as vectorised
//! torch on this CPU; `--markdown` prints the README's table.
//!
//!     cargo run --release --example bench [-- --json | --markdown] [--shape llava-1.5-7b|long|small|decode]
//!         [--repeats N] [--settings lanes=1,keys=16] [--attention-only | --rows-only] [--torch]
//!
//! Every measurement runs in a [`Bench`](context::Bench) (device, timer, report, repeats); each
//! shape ([`shapes`]) carries what it measures besides the row kernels as data.

mod attention;
mod baselines;
mod context;
mod report;
mod rows;
mod shapes;
mod torch;
mod tune;

use clap::Parser;
use visattn::{VarConfig, VarKernels};

use context::{Bench, Timer};
use report::Report;
use shapes::{DECODE, SHAPES};

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
    let only = args.shape.clone();
    let g = visattn::util::gpu_with(wgpu::Features::TIMESTAMP_QUERY, None).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let timer = Timer::new(&g);
    let report = Report {
        summaries: Default::default(),
        json: args.json,
        markdown: args.markdown,
        torch: args.torch,
        adapter: g.info.name.clone(),
        backend: format!("{:?}", g.info.backend),
        timer: timer.name(),
    };
    let b = Bench {
        g,
        timer,
        report,
        repeats: args.repeats as usize,
    };
    let rep = &b.report;
    if !rep.json {
        println!(
            "adapter: {} ({}), timer: {}, median of {}{}",
            rep.adapter,
            rep.backend,
            rep.timer,
            b.repeats,
            if rep.markdown {
                format!(", {} (UTC)", today())
            } else {
                String::new()
            }
        );
    }
    if rep.markdown {
        println!();
        println!("| kernel | shape | time | MB moved | GB/s | ratio_to_copy | ratio_to_read | ratio_to_memcpy (1 thread / all) |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    let settings = match args.settings {
        Some(s) => s,
        None => b.autotune_lines(),
    };
    let k = VarKernels::new(&b.g.ctx, settings).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    if !rep.json && !rep.markdown {
        println!("row kernel settings: {settings}");
    }
    let cfg = VarConfig::paper();

    for s in SHAPES.iter().filter(|s| only.as_deref().is_none_or(|o| o == s.name)) {
        // --attention-only: only the fused/unfused attention measurement (profiling it).
        if !args.attention_only {
            rows::row_kernels(&b, &k, &cfg, s);
        }
        if s.attention && !args.rows_only {
            attention::attention(&b, &k, &cfg, s);
        }
    }
    if !args.attention_only && !args.rows_only && only.as_deref().is_none_or(|o| o == DECODE.name) {
        for keys in DECODE.keys {
            attention::decode(&b, &k, &cfg, keys);
        }
    }
    if rep.markdown {
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
