//! The next token from a row of logits: greedy at temperature 0 (ties to the lowest id, as the
//! CPU reference and torch's argmax), else softmax at the temperature restricted to the top-p
//! nucleus, drawn from a seeded generator (reproducible answers). [`pick`] is the spec; the
//! decode step picks on the device (shaders/sample.wgsl) from the same [`Draw`].

pub struct Sampler {
    temperature: f64,
    top_p: f64,
    state: u64,
}

/// What picking one token needs beside the logits: the settings and, when sampling, the
/// uniform number in [0, 1) that chooses within the nucleus.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    temperature: f64,
    top_p: f64,
    u: f64,
}

impl Draw {
    /// The argmax (what temperature 0 picks).
    pub const GREEDY: Self = Self {
        temperature: 0.0,
        top_p: 1.0,
        u: 0.0,
    };

    /// A draw at `temperature` (0: greedy) from the `top_p` nucleus at `u` in [0, 1).
    pub fn new(temperature: f64, top_p: f64, u: f64) -> Result<Self> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::Input(format!("--temperature {temperature}: must be finite and >= 0")));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(Error::Input(format!("--top-p {top_p}: must be in (0, 1]")));
        }
        if !(0.0..1.0).contains(&u) {
            return Err(Error::Input(format!("a draw's uniform number {u} is not in [0, 1)")));
        }
        Ok(Self { temperature, top_p, u })
    }

    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    pub fn top_p(&self) -> f64 {
        self.top_p
    }

    pub fn u(&self) -> f64 {
        self.u
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

impl Sampler {
    pub fn new(temperature: f64, top_p: f64, seed: u64) -> Result<Self> {
        Draw::new(temperature, top_p, 0.0)?;
        Ok(Self {
            temperature,
            top_p,
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        })
    }

    fn uniform(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next token's draw: a uniform number from the generator where sampling (none at
    /// temperature 0).
    pub fn draw(&mut self) -> Draw {
        let u = if self.temperature == 0.0 { 0.0 } else { self.uniform() };
        Draw {
            temperature: self.temperature,
            top_p: self.top_p,
            u,
        }
    }

    pub fn next(&mut self, logits: &[f32]) -> Result<u32> {
        let draw = self.draw();
        pick(logits, &draw)
    }
}

/// The token `draw` picks from `logits`: the argmax at temperature 0, else the token where
/// u x the nucleus' mass falls in the running mass of the tokens sorted by logit (ties by id).
pub fn pick(logits: &[f32], draw: &Draw) -> Result<u32> {
    if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("logit {i} is {}: the forward pass went wrong", logits[i])));
    }
    if logits.is_empty() {
        return Err(Error::Input("no logits to pick a token from".into()));
    }
    if draw.is_greedy() {
        return Ok((0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
            .unwrap_or(0) as u32);
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let top = logits[order[0]] as f64;
    let weights: Vec<f64> = order.iter().map(|&i| ((logits[i] as f64 - top) / draw.temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    // The smallest prefix of the sorted tokens whose mass reaches top_p (at least one).
    let mut kept = 0;
    let mut mass = 0.0;
    while kept < weights.len() && (kept == 0 || mass < draw.top_p * total) {
        mass += weights[kept];
        kept += 1;
    }
    let mut r = draw.u * mass;
    for (j, &w) in weights[..kept].iter().enumerate() {
        if r < w {
            return Ok(order[j] as u32);
        }
        r -= w;
    }
    Ok(order[kept - 1] as u32)
}

use crate::error::{Error, Result};
