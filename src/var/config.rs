//! VAR's hyper-parameters, both conventions of var-spec.md section 4, and the D_sink presets
//! of section 1.

use crate::error::{Error, Result};

/// How the user's `rho` and `p` are read, and whether the last layer is edited
/// (var-spec.md section 4). Nothing else differs between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Convention {
    /// The paper: rho is a visual non-sink ratio floor, p the fraction recycled, layer L-1
    /// scored but not edited.
    #[default]
    Paper,
    /// The released code: rho is a sink-ratio ceiling, p the fraction kept, layer L-1 edited.
    Released,
}

impl std::str::FromStr for Convention {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "paper" => Ok(Convention::Paper),
            "released" | "code" => Ok(Convention::Released),
            _ => Err(Error::Config {
                field: "convention",
                value: s.to_string(),
                reason: "expected 'paper' or 'released'".into(),
            }),
        }
    }
}

/// Which layers detect sinks and which redistribute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerPlan {
    /// var-spec.md: detect in 2..=L-1; redistribute in 2..=L-2 (Paper) or 2..=L-1 (Released).
    #[default]
    Spec,
    /// Exactly these layers detect and redistribute; all others are left alone.
    Only(Vec<usize>),
}

/// What one layer does under a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerRole {
    /// No sinks, nothing selected, nothing changed.
    Off = 0,
    /// Sinks and selections computed; probabilities left unchanged.
    Detect = 1,
    /// Sinks, selections and the redistribution.
    Redistribute = 2,
}

/// VAR's settings. Build with [`VarConfig::paper`], [`VarConfig::released`] or
/// [`VarConfig::preset`], adjust the fields, and [`VarConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct VarConfig {
    pub convention: Convention,
    /// Sink threshold on phi, strict `>` (section 1).
    pub tau: f64,
    /// Floor on a row's visual attention mass (section 2's 0.2).
    pub summ: f64,
    /// As the convention reads it (see [`VarConfig::rho_code`]).
    pub rho: f64,
    /// As the convention reads it (see [`VarConfig::p_recycled`]).
    pub p: f64,
    /// The massive-activation dimensions D_sink.
    pub sink_dims: Vec<u32>,
    pub layers: LayerPlan,
}

impl Default for VarConfig {
    fn default() -> Self {
        Self::paper()
    }
}

impl VarConfig {
    /// The paper's defaults: tau 20, summ 0.2, rho 0.8, p 0.6, LLaVA-1.5-7B's sink dims.
    pub fn paper() -> Self {
        Self {
            convention: Convention::Paper,
            tau: 20.0,
            summ: 0.2,
            rho: 0.8,
            p: 0.6,
            sink_dims: vec![1415, 2533],
            layers: LayerPlan::Spec,
        }
    }

    /// The released code's shipped config: rho 0.5 (ceiling), p 0.6 (kept), last layer edited.
    pub fn released() -> Self {
        Self {
            convention: Convention::Released,
            rho: 0.5,
            p: 0.6,
            ..Self::paper()
        }
    }

    /// Paper defaults with the sink dims of a named preset.
    pub fn preset(name: &str) -> Result<Self> {
        Ok(Self {
            sink_dims: preset(name)?.sink_dims.to_vec(),
            ..Self::paper()
        })
    }

    /// The defaults of a convention (rho 0.8 / 0.5, p 0.6 in both, as var-spec.md ships them).
    pub fn for_convention(convention: Convention) -> Self {
        match convention {
            Convention::Paper => Self::paper(),
            Convention::Released => Self::released(),
        }
    }

    /// The sink-ratio ceiling the selection test uses (rho_code in var-spec.md).
    pub fn rho_code(&self) -> f64 {
        match self.convention {
            Convention::Paper => 1.0 - self.rho,
            Convention::Released => self.rho,
        }
    }

    /// The fraction of sink attention handed to visual non-sinks (p_paper).
    pub fn p_recycled(&self) -> f64 {
        match self.convention {
            Convention::Paper => self.p,
            Convention::Released => 1.0 - self.p,
        }
    }

    /// What layer `layer` of `layers` does.
    pub fn role(&self, layer: usize, layers: usize) -> LayerRole {
        match &self.layers {
            LayerPlan::Only(list) => {
                if list.contains(&layer) {
                    LayerRole::Redistribute
                } else {
                    LayerRole::Off
                }
            }
            LayerPlan::Spec => {
                if layer < 2 || layer >= layers {
                    LayerRole::Off
                } else if layer + 1 == layers && self.convention == Convention::Paper {
                    LayerRole::Detect
                } else {
                    LayerRole::Redistribute
                }
            }
        }
    }

    /// Checks every field on its own.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, value: f64, reason: &str| Error::Config {
            field,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if !self.tau.is_finite() || self.tau <= 0.0 {
            return Err(bad("tau", self.tau, "must be finite and > 0"));
        }
        for (field, v) in [("summ", self.summ), ("rho", self.rho), ("p", self.p)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(field, v, "must be in [0, 1]"));
            }
        }
        if self.sink_dims.is_empty() {
            return Err(Error::Config {
                field: "sink_dims",
                value: "[]".into(),
                reason: "at least one sink dimension is needed".into(),
            });
        }
        let mut dims = self.sink_dims.clone();
        dims.sort_unstable();
        if let Some(w) = dims.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Config {
                field: "sink_dims",
                value: format!("{:?}", self.sink_dims),
                reason: format!("dimension {} is listed twice", w[0]),
            });
        }
        Ok(())
    }

    /// [`validate`](Self::validate) plus the checks that need the model's sizes.
    pub fn validate_for(&self, hidden: usize, layers: usize) -> Result<()> {
        self.validate()?;
        if let Some(&dim) = self.sink_dims.iter().find(|&&d| d as usize >= hidden) {
            return Err(Error::SinkDimOutOfRange { dim, hidden });
        }
        if let LayerPlan::Only(list) = &self.layers {
            if let Some(&layer) = list.iter().find(|&&l| l >= layers) {
                return Err(Error::Layer { layer, layers });
            }
        }
        Ok(())
    }
}

/// One row of var-spec.md's D_sink table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    /// Other names users type for the same backbone.
    pub aliases: &'static [&'static str],
    pub backbone: &'static str,
    pub sink_dims: &'static [u32],
    /// Where the dims come from, and how sure that is.
    pub source: &'static str,
}

/// Every preset of var-spec.md section 1.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "llava-1.5-7b",
        aliases: &["llama-2-7b", "vicuna-7b", "llama-v2-7b"],
        backbone: "LLaMA-2-7B / Vicuna-7B, d=4096",
        sink_dims: &[1415, 2533],
        source: "VAR code; Sun et al. 2024",
    },
    Preset {
        name: "llava-1.5-13b",
        aliases: &["llama-2-13b", "vicuna-13b", "llama-v2-13b"],
        backbone: "LLaMA-2-13B / Vicuna-13B, d=5120",
        sink_dims: &[2100, 4743],
        source: "VAR code; Sun et al. 2024",
    },
    Preset {
        name: "qwen2-vl-7b",
        aliases: &["qwen2-7b"],
        backbone: "Qwen2-7B, d=3584",
        sink_dims: &[458, 2570],
        source: "VAR paper appendix (as reported)",
    },
    Preset {
        name: "internvl2-8b",
        aliases: &["internlm2.5-7b"],
        backbone: "InternLM2.5-7B",
        sink_dims: &[3584],
        source: "third-party notes, unverified",
    },
    Preset {
        name: "qwen2.5-vl-7b",
        aliases: &["qwen2.5-7b"],
        backbone: "Qwen2.5-7B",
        sink_dims: &[458, 2570],
        source: "third-party use, unverified",
    },
    Preset {
        name: "llama-3-8b",
        aliases: &["llama-3.1-8b", "llama3-8b"],
        backbone: "LLaMA-3 / 3.1-8B, d=4096",
        sink_dims: &[788, 1384, 4062],
        source: "third-party, not in the VAR paper",
    },
    Preset {
        name: "mistral-7b",
        aliases: &[],
        backbone: "Mistral-7B, d=4096",
        sink_dims: &[2070],
        source: "Sun et al. plotting config",
    },
    Preset {
        name: "mixtral-8x7b",
        aliases: &[],
        backbone: "Mixtral-8x7B, d=4096",
        sink_dims: &[2070, 3398],
        source: "Sun et al. plotting config",
    },
];

/// Looks a preset up by name or alias, case-insensitively.
pub fn preset(name: &str) -> Result<&'static Preset> {
    let wanted = name.trim().to_ascii_lowercase();
    PRESETS
        .iter()
        .find(|p| p.name == wanted || p.aliases.contains(&wanted.as_str()))
        .ok_or_else(|| Error::UnknownPreset {
            name: name.to_string(),
            known: PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions_translate_rho_and_p() {
        let paper = VarConfig::paper();
        assert!((paper.rho_code() - 0.2).abs() < 1e-12);
        assert!((paper.p_recycled() - 0.6).abs() < 1e-12);
        let released = VarConfig::released();
        assert_eq!(released.rho_code(), 0.5);
        assert!((released.p_recycled() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn spec_layer_roles() {
        let paper = VarConfig::paper();
        let roles: Vec<_> = (0..6).map(|l| paper.role(l, 6)).collect();
        use LayerRole::*;
        assert_eq!(roles, [Off, Off, Redistribute, Redistribute, Redistribute, Detect]);
        let released = VarConfig::released();
        assert_eq!(released.role(5, 6), Redistribute);
        assert_eq!(released.role(1, 6), Off);
    }

    #[test]
    fn every_field_is_validated() {
        let mut c = VarConfig::paper();
        c.tau = f64::NAN;
        assert!(matches!(c.validate(), Err(Error::Config { field: "tau", .. })));
        let mut c = VarConfig::paper();
        c.rho = 1.5;
        assert!(matches!(c.validate(), Err(Error::Config { field: "rho", .. })));
        let mut c = VarConfig::paper();
        c.p = -0.1;
        assert!(matches!(c.validate(), Err(Error::Config { field: "p", .. })));
        let mut c = VarConfig::paper();
        c.summ = 2.0;
        assert!(matches!(c.validate(), Err(Error::Config { field: "summ", .. })));
        let mut c = VarConfig::paper();
        c.sink_dims = vec![];
        assert!(matches!(c.validate(), Err(Error::Config { field: "sink_dims", .. })));
        c.sink_dims = vec![3, 3];
        assert!(matches!(c.validate(), Err(Error::Config { field: "sink_dims", .. })));
        let c = VarConfig::paper();
        assert_eq!(c.validate_for(2048, 32), Err(Error::SinkDimOutOfRange { dim: 2533, hidden: 2048 }));
        let mut c = VarConfig::paper();
        c.layers = LayerPlan::Only(vec![3, 40]);
        assert_eq!(c.validate_for(4096, 32), Err(Error::Layer { layer: 40, layers: 32 }));
    }

    #[test]
    fn presets_cover_the_spec_table() {
        assert_eq!(preset("llava-1.5-7b").unwrap().sink_dims, &[1415, 2533]);
        assert_eq!(preset("LLaVA-1.5-13B").unwrap().sink_dims, &[2100, 4743]);
        assert_eq!(preset("qwen2-vl-7b").unwrap().sink_dims, &[458, 2570]);
        assert_eq!(preset("llama-3-8b").unwrap().sink_dims, &[788, 1384, 4062]);
        assert_eq!(preset("mixtral-8x7b").unwrap().sink_dims, &[2070, 3398]);
        assert_eq!(preset("vicuna-7b").unwrap().name, "llava-1.5-7b");
        assert!(matches!(preset("gpt-9"), Err(Error::UnknownPreset { .. })));
        assert_eq!(PRESETS.len(), 8);
    }
}
