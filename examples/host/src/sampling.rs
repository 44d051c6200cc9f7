//! The next token from a row of logits: greedy at temperature 0 (ties to the lowest id, as the
//! CPU reference and torch's argmax), else softmax at the temperature restricted to the top-p
//! nucleus, drawn from a seeded generator (reproducible answers).

pub struct Sampler {
    temperature: f64,
    top_p: f64,
    state: u64,
}

impl Sampler {
    pub fn new(temperature: f64, top_p: f64, seed: u64) -> Result<Self> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::Input(format!("--temperature {temperature}: must be finite and >= 0")));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(Error::Input(format!("--top-p {top_p}: must be in (0, 1]")));
        }
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

    pub fn next(&mut self, logits: &[f32]) -> Result<u32> {
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("logit {i} is {}: the forward pass went wrong", logits[i])));
        }
        let greedy = || {
            (0..logits.len())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
                .unwrap_or(0) as u32
        };
        if self.temperature == 0.0 {
            return Ok(greedy());
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let top = logits[order[0]] as f64;
        let weights: Vec<f64> = order.iter().map(|&i| ((logits[i] as f64 - top) / self.temperature).exp()).collect();
        let total: f64 = weights.iter().sum();
        // The smallest prefix of the sorted tokens whose mass reaches top_p (at least one).
        let mut kept = 0;
        let mut mass = 0.0;
        while kept < weights.len() && (kept == 0 || mass < self.top_p * total) {
            mass += weights[kept];
            kept += 1;
        }
        let mut r = self.uniform() * mass;
        for (j, &w) in weights[..kept].iter().enumerate() {
            if r < w {
                return Ok(order[j] as u32);
            }
            r -= w;
        }
        Ok(order[kept - 1] as u32)
    }
}
use crate::error::{Error, Result};
