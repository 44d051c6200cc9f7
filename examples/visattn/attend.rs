//! `visattn attend`: fused attention with VAR inside, from a dump of q/k/v (and the hidden
//! states for the sinks) to `o.{l}` and `selected.{l}`.

use std::collections::HashMap;
use std::path::PathBuf;
use visattn_host::outln;

use clap::Args;
use visattn::dump::{OutTensor, TensorFile, drop_batch, layer_count, write_tensors};
use visattn::{
    AttentionOptions, FusedAttention, FusedSettings, FusedShape, HostSession, LayerRole, SplitAttention, VarKernels, VisualTokens,
};

use crate::apply::{ImageArgs, VarArgs, config_metadata};

#[derive(Args, Debug)]
pub struct AttendArgs {
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    /// Causal mask, aligned bottom-right (also metadata causal = "true").
    #[arg(long)]
    pub causal: bool,
    /// Softmax scale; default 1 / sqrt(head_dim).
    #[arg(long, allow_negative_numbers = true)]
    pub scale: Option<f32>,
    #[command(flatten)]
    pub var: VarArgs,
    #[command(flatten)]
    pub image: ImageArgs,
}

fn shape3(file: &TensorFile, name: &str) -> Result<Vec<usize>, String> {
    let s = file.shape(name).map_err(|e| e.to_string())?;
    drop_batch(name, s, 3).map_err(|e| e.to_string())
}

pub fn run(args: &AttendArgs) -> Result<(), String> {
    use visattn::output::Use;
    visattn::output::check_distinct(&[("--input", &args.input, Use::Read), ("--output", &args.output, Use::Write)])
        .map_err(|e| e.to_string())?;
    let path = args.input.display().to_string();
    let e = |e: visattn::Error| format!("{path}: {e}");
    let file = TensorFile::open(&args.input).map_err(e)?;
    file.check_finite().map_err(e)?;
    let layers = layer_count(&file, "q.").map_err(e)?;
    let meta = file.metadata().clone();
    let qs = shape3(&file, "q.0").map_err(|m| format!("{path}: {m}"))?;
    let ks = shape3(&file, "k.0").map_err(|m| format!("{path}: {m}"))?;
    let shape = FusedShape {
        heads: qs[0],
        kv_heads: ks[0],
        queries: qs[1],
        keys: ks[1],
        head_dim: qs[2],
    };
    for l in 0..layers {
        for (name, want) in [
            ("q", [shape.heads, shape.queries, shape.head_dim]),
            ("k", [shape.kv_heads, shape.keys, shape.head_dim]),
            ("v", [shape.kv_heads, shape.keys, shape.head_dim]),
        ] {
            let got = shape3(&file, &format!("{name}.{l}")).map_err(|m| format!("{path}: {m}"))?;
            if got != want {
                return Err(format!("{path}: {name}.{l} has shape {got:?}, expected {want:?}"));
            }
        }
    }
    shape.validate().map_err(e)?;
    let mut cfg = args.var.config(&meta)?;
    let spans = visattn::dump::image_spans(&meta, args.image.spans()?).map_err(|e| e.to_string())?;
    let visual = VisualTokens::from_spans(&spans, shape.keys).map_err(|e| e.to_string())?;
    let causal = args.causal || meta.get("causal").is_some_and(|v| v == "true");

    let detecting: Vec<usize> = (0..layers).filter(|&l| cfg.role(l, layers) != LayerRole::Off).collect();
    let mut hidden_dim = None;
    for &l in &detecting {
        let name = format!("hidden_states.{l}");
        let s = file
            .shape(&name)
            .map_err(|_| format!("{path}: layer {l} detects sinks but {name} is missing"))?;
        let s = drop_batch(&name, s, 2).map_err(e)?;
        if s[0] != shape.keys {
            return Err(format!("{path}: {name} has {} tokens, k has {}", s[0], shape.keys));
        }
        if hidden_dim.is_some_and(|d| d != s[1]) {
            return Err(format!("{path}: {name} has hidden size {}, other layers differ", s[1]));
        }
        hidden_dim = Some(s[1]);
    }
    let hidden_dim = hidden_dim.unwrap_or(1);
    cfg.validate_for(hidden_dim, layers).map_err(|e| e.to_string())?;
    if !detecting.is_empty() {
        args.var.fit_tau(&mut cfg, hidden_dim)?;
    }

    let g = visattn::util::gpu().map_err(|e| e.to_string())?;
    let kernels =
        pollster::block_on(VarKernels::new_checked(&g.ctx, visattn::KernelSettings::for_adapter(&g.info))).map_err(|e| e.to_string())?;
    let options = AttentionOptions { causal, scale: args.scale };
    // One query row (a decode step): split-K over the keys; otherwise the fused prefill kernel.
    let mut host = if shape.queries == 1 {
        let split = pollster::block_on(SplitAttention::new_checked(&g.ctx, shape.head_dim)).map_err(|e| e.to_string())?;
        HostSession::attention(&g.ctx, &kernels, visattn::Attention::Split(&split), shape, hidden_dim, options)
    } else {
        let fused = pollster::block_on(FusedAttention::new_checked(
            &g.ctx,
            FusedSettings {
                head_dim: shape.head_dim as u32,
                var: true,
            },
        ))
        .map_err(|e| e.to_string())?;
        HostSession::attention(&g.ctx, &kernels, visattn::Attention::Fused(&fused), shape, hidden_dim, options)
    }
    .map_err(|e| e.to_string())?;
    host.prepare(&g.queue, &cfg, &visual, layers).map_err(|e| e.to_string())?;

    let mut tensors = Vec::new();
    let mut total_selected = 0;
    for l in 0..layers {
        let get = |name: String| file.f32(&name).map(|t| t.data).map_err(e);
        let hidden = if detecting.contains(&l) {
            Some(get(format!("hidden_states.{l}"))?)
        } else {
            None
        };
        let out = host
            .run_attention(
                &g.queue,
                l,
                hidden.as_deref(),
                &get(format!("q.{l}"))?,
                &get(format!("k.{l}"))?,
                &get(format!("v.{l}"))?,
            )
            .map_err(e)?; // refuses an output that overflowed (Error::NonFiniteOutput)
        total_selected += out.selected.iter().filter(|&&s| s).count();
        tensors.push((
            format!("o.{l}"),
            OutTensor::f32(&[shape.heads, shape.queries, shape.head_dim], &out.o),
        ));
        tensors.push((
            format!("selected.{l}"),
            OutTensor::flags(&[shape.heads, shape.queries], &out.selected),
        ));
    }
    let mut meta_out: HashMap<String, String> = config_metadata(&cfg, &spans, layers);
    meta_out.insert("causal".into(), causal.to_string());
    meta_out.insert(
        "scale".into(),
        options.resolve_scale(shape.head_dim).map_err(|e| e.to_string())?.to_string(),
    );
    write_tensors(&args.output, &tensors, meta_out).map_err(|e| e.to_string())?;
    outln!(
        "{layers} layers, {} heads ({} kv), Tq = {}, Tk = {}, d = {}: {total_selected} rows selected; wrote {}",
        shape.heads,
        shape.kv_heads,
        shape.queries,
        shape.keys,
        shape.head_dim,
        args.output.display()
    )?;
    Ok(())
}
