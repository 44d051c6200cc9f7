//! `visattn discover`: which hidden dimensions carry massive activations, on which tokens, and
//! a tau for them (GPU per-dimension maxima, CPU median ratios and ranking).

use std::path::PathBuf;
use visattn_host::outln;

use clap::Args;
use visattn::discover::{DimMax, LayerDims, layer_dims, rank};
use visattn::dump::{TensorFile, drop_batch, layer_count};

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    #[arg(long)]
    pub input: PathBuf,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Dimensions to list.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn run(args: &DiscoverArgs) -> Result<(), String> {
    let path = args.input.display().to_string();
    let e = |e: visattn::Error| format!("{path}: {e}");
    let file = TensorFile::open(&args.input).map_err(e)?;
    // NaN or Inf anywhere refuses the file, as `apply` and `attend` do (dump-format.md).
    file.check_finite().map_err(e)?;
    // Residual inputs of layers 0..L-1; HF's final output (hidden_states.{L}) is not one.
    let last = layer_count(&file, "attentions.").ok();
    let mut layers: Vec<usize> = file
        .names()
        .iter()
        .filter_map(|n| n.strip_prefix("hidden_states.").and_then(|l| l.parse::<usize>().ok()))
        .filter(|&l| last.is_none_or(|n| l < n))
        .collect();
    layers.sort_unstable();
    if layers.is_empty() {
        return Err(format!("{path}: no hidden_states.{{l}} tensors to discover from"));
    }
    let load = |l: usize| -> Result<(Vec<f32>, usize, usize), String> {
        let name = format!("hidden_states.{l}");
        let t = file.f32(&name).map_err(e)?;
        let s = drop_batch(&name, t.shape.clone(), 2).map_err(e)?;
        Ok((t.data, s[0], s[1]))
    };
    let g = visattn::util::gpu().map_err(|e| e.to_string())?;
    let kernel = visattn::scoped_blocking(&g.device, || DimMax::new(&g.ctx))
        .and_then(|k| k)
        .map_err(|e| e.to_string())?;
    let mut stats = Vec::new();
    let (mut tokens, mut dim) = (0, 0);
    for &l in &layers {
        let (h, t, d) = load(l)?;
        if stats.is_empty() {
            (tokens, dim) = (t, d);
        } else if (t, d) != (tokens, dim) {
            return Err(format!("{path}: hidden_states.{l} is [{t}, {d}], others are [{tokens}, {dim}]"));
        }
        let max_phi = kernel.run(&g.queue, &h, d).map_err(e)?;
        let max_median_ratio = layer_dims(&h, d).max_median_ratio;
        stats.push(LayerDims { max_phi, max_median_ratio });
    }
    let found = rank(
        &stats,
        &|i| load(layers[i]).map(|(h, _, _)| h).map_err(visattn::Error::Dump),
        tokens,
    )
    .map_err(e)?;
    let words: Vec<String> = file
        .metadata()
        .get("tokens")
        .map(|t| t.split(' ').map(String::from).collect())
        .unwrap_or_default();
    let word = |t: usize| if words.len() == tokens { words[t].clone() } else { String::new() };
    let sqrt_d = found.sqrt_d();

    if args.json {
        let dims: Vec<String> = found
            .ranked
            .iter()
            .take(args.top)
            .map(|s| {
                format!(
                    "{{\"dim\":{},\"layers\":{},\"mean_phi\":{:.4},\"max_median_ratio\":{:.2}}}",
                    s.dim, s.layers, s.mean_phi, s.max_median_ratio
                )
            })
            .collect();
        let carriers: Vec<String> = found
            .carriers
            .iter()
            .map(|&(t, n)| format!("{{\"token\":{t},\"string\":{},\"layers\":{n}}}", json_str(&word(t))))
            .collect();
        let tau = found.tau.map_or("null".into(), |t| format!("{t:.4}"));
        let tau_rel = found.tau.map_or("null".into(), |t| format!("{:.4}", t / sqrt_d));
        outln!(
            "{{\"hidden\":{dim},\"tokens\":{tokens},\"layers\":{},\"sqrt_d\":{sqrt_d:.4},\"ranked\":[{}],\"sink_dims\":[{}],\"carriers\":[{}],\"tau\":{tau},\"tau_rel\":{tau_rel}}}",
            found.layers,
            dims.join(","),
            found.sink_dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
            carriers.join(",")
        )?;
        return Ok(());
    }
    outln!(
        "{} layers of hidden states, T = {tokens}, D = {dim} (sqrt(D) = {sqrt_d:.2}, the largest phi possible)",
        found.layers
    )?;
    outln!()?;
    outln!("rank  dim    layers extreme  mean max phi  max |x|/median|x|")?;
    for (i, s) in found.ranked.iter().take(args.top).enumerate() {
        outln!(
            "{:>4}  {:<6} {:>6} / {:<6}  {:>12.2}  {:>17.1}",
            i + 1,
            s.dim,
            s.layers,
            found.layers,
            s.mean_phi,
            s.max_median_ratio
        )?;
    }
    outln!()?;
    let list = found.sink_dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    outln!(
        "suggested D_sink: {}",
        if found.ranked.is_empty() {
            "none: no dimension carries massive activations (no dimension's phi stands out in any layer)".into()
        } else if list.is_empty() {
            "none (no dimension is extreme in half the layers)".into()
        } else {
            list.clone()
        }
    )?;
    for &(t, n) in &found.carriers {
        let w = word(t);
        outln!(
            "  carried by token {t}{} in {n} layers",
            if w.is_empty() { String::new() } else { format!(" ({w})") }
        )?;
    }
    if let Some(tau) = found.tau {
        outln!(
            "suggested tau: {tau:.2} (--tau-rel {:.3}); use: --sink-dims {list} --tau {tau:.2}",
            tau / sqrt_d
        )?;
    }
    Ok(())
}
