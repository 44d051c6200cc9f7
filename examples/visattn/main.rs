//! visattn's command line: `cargo run --release --example visattn` runs VAR on a built-in
//! LLaVA-1.5-7B-shaped prompt and prints a per-layer report; `apply` runs it on a dump
//! (shared/docs/dump-format.md). Errors are one line on stderr and a non-zero exit.

mod apply;
mod attend;
mod discover;
mod picture;
mod sample;

use std::process::ExitCode;
use std::time::Instant;
use visattn_host::outln;

use clap::{Parser, Subcommand};
use visattn::{HostSession, ImageSpan, LayerRole, Rows, SequenceShape, VarConfig, VarKernels, VisualTokens};

#[derive(Parser)]
#[command(
    name = "visattn",
    about = "Visual Attention Redistribution (VAR) on any GPU",
    version,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Heatmap of the built-in prompt (without a subcommand).
    #[command(flatten)]
    picture: picture::PictureArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run VAR on a dump's attentions and hidden states; write the results.
    Apply(apply::ApplyArgs),
    /// Fused attention with VAR inside from a dump's q/k/v and hidden states.
    Attend(attend::AttendArgs),
    /// Rank hidden dimensions by massive activations; suggest D_sink and tau.
    Discover(discover::DiscoverArgs),
}

fn main() -> ExitCode {
    // SAFETY: no thread has started yet.
    unsafe { visattn::util::quiet_vulkan_probe() };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return visattn_host::cli::argument_error(e),
    };
    let result = match cli.command {
        None => demo(&cli.picture),
        Some(Command::Apply(args)) => apply::run(&args),
        Some(Command::Attend(args)) => attend::run(&args),
        Some(Command::Discover(args)) => discover::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(pic: &picture::PictureArgs) -> Result<(), String> {
    use sample::*;
    pic.check(LAYERS, HEADS, TOKENS, IMAGE)?;
    visattn::output::check_distinct(&pic.paths()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let g = visattn::util::gpu().map_err(|e| e.to_string())?;
    outln!("adapter: {} ({:?}, {:?})", g.info.name, g.info.backend, g.info.device_type)?;
    outln!(
        "built-in prompt: LLaVA-1.5-7B shape, {LAYERS} layers x {HEADS} heads, T = {TOKENS} ({SYSTEM} system + {IMAGE} image on a {GRID}x{GRID} grid + {QUESTION} question), D = {HIDDEN}"
    )?;
    let cfg = VarConfig::preset("llava-1.5-7b").map_err(|e| e.to_string())?;
    outln!(
        "config: {:?}, tau {}, rho {} (sink-ratio ceiling {:.2}), p {} recycled, sink dims {:?}",
        cfg.convention,
        cfg.tau,
        cfg.rho,
        cfg.rho_code(),
        cfg.p_recycled(),
        cfg.sink_dims
    )?;
    let visual = VisualTokens::from_spans(&[ImageSpan::new(SYSTEM, IMAGE)], TOKENS).map_err(|e| e.to_string())?;
    let kernels =
        pollster::block_on(VarKernels::new_checked(&g.ctx, visattn::KernelSettings::for_adapter(&g.info))).map_err(|e| e.to_string())?;
    let shape = SequenceShape {
        tokens: TOKENS,
        hidden: HIDDEN,
        heads: HEADS,
        queries: TOKENS,
    };
    let mut runner = HostSession::rows(&g.ctx, &kernels, shape, Rows::All).map_err(|e| e.to_string())?;
    runner.prepare(&g.queue, &cfg, &visual, LAYERS).map_err(|e| e.to_string())?;

    outln!()?;
    outln!("layer  role          sinks text/visual  rows selected  rows changed  mass moved sink->image (mean per changed row)")?;
    let mut gpu_time = 0.0;
    let (mut total_selected, mut total_changed, mut total_moved) = (0usize, 0usize, 0f64);
    for layer in 0..LAYERS {
        let role = runner.role(layer).map_err(|e| e.to_string())?;
        let hidden = (role != LayerRole::Off).then(|| hidden_states(layer));
        let probs = attention(layer);
        let t0 = Instant::now();
        let out = runner
            .run_layer(&g.queue, layer, hidden.as_deref(), &probs)
            .map_err(|e| e.to_string())?;
        gpu_time += t0.elapsed().as_secs_f64();
        if let Some(path) = pic.png.as_deref().filter(|_| layer == pic.layer_or(LAYERS)) {
            let drawn = picture::draw(
                &g,
                pic,
                crate::picture::Layer {
                    index: layer,
                    shape: visattn::AttnShape {
                        heads: HEADS,
                        queries: TOKENS,
                        keys: TOKENS,
                    },
                    before: &probs,
                    after: &out.probs,
                    selected: &out.selected,
                    sinks: &out.sinks,
                },
                visattn::ImageSpan::new(SYSTEM, IMAGE),
            )?;
            drawn.stage(path)?.commit().map_err(|e| e.to_string())?;
        }

        let text_sinks = (0..TOKENS).filter(|&t| out.sinks[t] && !visual.is_visual(t)).count();
        let visual_sinks = (0..TOKENS).filter(|&t| out.sinks[t] && visual.is_visual(t)).count();
        let selected = out.selected.iter().filter(|&&s| s).count();
        let (mut changed, mut moved) = (0usize, 0f64);
        for (a, b) in probs.chunks_exact(TOKENS).zip(out.probs.chunks_exact(TOKENS)) {
            if a != b {
                changed += 1;
                moved += (0..TOKENS).filter(|&j| out.sinks[j]).map(|j| (a[j] - b[j]) as f64).sum::<f64>();
            }
        }
        total_selected += selected;
        total_changed += changed;
        total_moved += moved;
        let role = match role {
            LayerRole::Off => "off",
            LayerRole::Detect => "detect",
            LayerRole::Redistribute => "redistribute",
        };
        let mean = if changed > 0 { moved / changed as f64 } else { 0.0 };
        outln!(
            "{layer:>5}  {role:<12}  {text_sinks:>6} / {visual_sinks:<6}   {selected:>7} / {}  {changed:>12}  {moved:>10.2} ({mean:.3})",
            HEADS * TOKENS
        )?;
    }
    outln!()?;
    outln!(
        "total: {total_selected} rows selected, {total_changed} rows changed, {total_moved:.1} attention mass moved from sinks to image patches"
    )?;
    if let Some(path) = &pic.png {
        outln!(
            "heatmap of layer {}, row {}, head {}: {}",
            pic.layer_or(LAYERS),
            pic.row.unwrap_or(TOKENS - 1),
            pic.head,
            path.display()
        )?;
    }
    outln!(
        "time: {:.2} s total, {:.2} s in VAR on the GPU (upload, kernels, readback of {} MB per layer)",
        start.elapsed().as_secs_f64(),
        gpu_time,
        HEADS * TOKENS * TOKENS * 4 / 1_000_000
    )?;
    Ok(())
}
