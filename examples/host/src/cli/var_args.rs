//! VAR's settings as command-line flags, shared by the visattn CLI and the LLaVA host, so
//! `apply` and a generating model take the same flags.

use std::collections::HashMap;

use clap::Args;
use visattn::dump::sink_dims_for;
use visattn::{Convention, LayerPlan, VarConfig};

/// VAR's settings as flags; flags win over the dump's metadata, which wins over defaults.
#[derive(Args, Debug, Clone)]
pub struct VarArgs {
    /// D_sink from a preset (llava-1.5-7b, llava-1.5-13b, qwen2-vl-7b, llama-3-8b, ...).
    #[arg(long)]
    pub preset: Option<String>,
    /// D_sink as a list, e.g. 1415,2533 (wins over --preset).
    #[arg(long, value_delimiter = ',')]
    pub sink_dims: Option<Vec<u32>>,
    /// Sink threshold on phi (strict >). Default 20.
    #[arg(long, conflicts_with = "tau_rel", allow_negative_numbers = true)]
    pub tau: Option<f64>,
    /// tau as a fraction of sqrt(D), the largest phi possible (e.g. 0.75).
    #[arg(long, allow_negative_numbers = true)]
    pub tau_rel: Option<f64>,
    /// Paper: visual non-sink ratio floor (default 0.8). Released: sink-ratio ceiling (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    pub rho: Option<f64>,
    /// Paper: fraction recycled. Released: fraction kept. Default 0.6.
    #[arg(long, allow_negative_numbers = true)]
    pub p: Option<f64>,
    /// Floor on a row's visual attention mass. Default 0.2.
    #[arg(long, allow_negative_numbers = true)]
    pub summ: Option<f64>,
    /// paper (default) or released.
    #[arg(long)]
    pub convention: Option<String>,
    /// Exactly these layers detect and redistribute (e.g. 2,3,4); default as var-spec.md.
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
}

impl VarArgs {
    /// The config, from flags, then metadata `model`, then defaults; D_sink has no default.
    pub fn config(&self, meta: &HashMap<String, String>) -> Result<VarConfig, String> {
        let convention: Convention = self
            .convention
            .as_deref()
            .unwrap_or("paper")
            .parse()
            .map_err(|e: visattn::Error| e.to_string())?;
        let mut cfg = VarConfig::for_convention(convention);
        cfg.sink_dims = sink_dims_for(meta, self.sink_dims.as_deref(), self.preset.as_deref()).map_err(|e| e.to_string())?;
        if let Some(v) = self.tau {
            cfg.tau = v;
        }
        if let Some(v) = self.rho {
            cfg.rho = v;
        }
        if let Some(v) = self.p {
            cfg.p = v;
        }
        if let Some(v) = self.summ {
            cfg.summ = v;
        }
        if let Some(l) = &self.layers {
            cfg.layers = LayerPlan::Only(l.clone());
        }
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// The first VAR flag given, if any: a run without VAR refuses them rather than ignore them
    /// (the LLaVA host's `--var off`; visattn always runs VAR).
    pub fn first_given(&self) -> Option<&'static str> {
        [
            ("--preset", self.preset.is_some()),
            ("--sink-dims", self.sink_dims.is_some()),
            ("--tau", self.tau.is_some()),
            ("--tau-rel", self.tau_rel.is_some()),
            ("--rho", self.rho.is_some()),
            ("--p", self.p.is_some()),
            ("--summ", self.summ.is_some()),
            ("--convention", self.convention.is_some()),
            ("--layers", self.layers.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }

    /// Applies --tau-rel once D is known, and warns when no token can pass tau.
    pub fn fit_tau(&self, cfg: &mut VarConfig, hidden: usize) -> Result<(), String> {
        let sqrt_d = (hidden as f64).sqrt();
        if let Some(rel) = self.tau_rel {
            if !(rel.is_finite() && rel > 0.0) {
                return Err(format!("invalid config: tau_rel = {rel}: must be finite and > 0"));
            }
            cfg.tau = rel * sqrt_d;
        }
        if cfg.tau >= sqrt_d {
            eprintln!(
                "warning: tau {} >= sqrt(D) = {sqrt_d:.2}: phi never exceeds sqrt(D), so no token can be a sink (try --tau-rel, or `discover`)",
                cfg.tau
            );
        }
        Ok(())
    }
}
