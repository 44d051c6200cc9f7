//! The shapes the bench measures, each carrying what it runs besides the kernels every shape
//! gets (sink scoring, the row kernels), and the synthetic layers it runs them on.

use visattn::{ImageSpan, SequenceShape, VisualTokens};

/// The layers of the prefills and batches (LLaVA-1.5-7B's 32).
pub const LAYERS: usize = 32;

/// A prefill shape: its sizes, one image span, and which measurements it adds.
pub struct Shape {
    pub name: &'static str,
    pub tokens: usize,
    pub hidden: usize,
    pub heads: usize,
    pub image: ImageSpan,
    /// Fused attention with VAR on and off, and the unfused path, at this prefill (too slow on
    /// the longest shape for a CPU adapter).
    pub attention: bool,
    /// The rows of [`LAYERS`] layers that share a role run as one batch, sequence b = layer b:
    /// what a host holding every layer at once (dumps) records.
    pub batched_layers: bool,
    /// One whole 32-layer prefill (every phi, then as engines bind it) against the CPU
    /// reference, and the torch anchor with `--torch`.
    pub whole_prefill: bool,
}

pub const SHAPES: [Shape; 3] = [
    Shape {
        name: "llava-1.5-7b",
        tokens: 640,
        hidden: 4096,
        heads: 32,
        image: ImageSpan { start: 35, len: 576 },
        attention: true,
        batched_layers: false,
        whole_prefill: true,
    },
    Shape {
        name: "long",
        tokens: 4096,
        hidden: 4096,
        heads: 8,
        image: ImageSpan { start: 35, len: 2880 },
        attention: false,
        batched_layers: false,
        whole_prefill: false,
    },
    Shape {
        name: "small",
        tokens: 128,
        hidden: 4096,
        heads: 4,
        image: ImageSpan { start: 8, len: 100 },
        attention: true,
        batched_layers: true,
        whole_prefill: false,
    },
];

/// Decode steps (one query row, 32 heads over 4 kv heads, d 128) over each key count.
pub struct DecodeShapes {
    pub name: &'static str,
    pub keys: [usize; 3],
}

pub const DECODE: DecodeShapes = DecodeShapes {
    name: "decode",
    keys: [640, 4096, 32768],
};

pub fn hash(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

/// `n` values uniform in [-1, 1) from `seed`.
pub fn noise(seed: u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (hash(seed, i as u64) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

impl Shape {
    /// Its image tokens: the one span.
    pub fn visual(&self) -> VisualTokens {
        VisualTokens::from_spans(&[self.image], self.tokens).unwrap()
    }

    /// A prefill of the shape: every token a query row.
    pub fn sequence(&self) -> SequenceShape {
        SequenceShape {
            tokens: self.tokens,
            hidden: self.hidden,
            heads: self.heads,
            queries: self.tokens,
        }
    }

    fn is_sink(&self, t: usize) -> bool {
        t == 0 || (t >= self.image.start && t < self.image.end() && (t - self.image.start) % 97 == 5)
    }

    /// Hidden states with massive activations on BOS and a few patches.
    pub fn hidden(&self, layer: usize) -> Vec<f32> {
        let mut x = noise(layer as u64, self.tokens * self.hidden);
        for t in (0..self.tokens).filter(|&t| self.is_sink(t)) {
            x[t * self.hidden + 1415] = 200.0;
        }
        x
    }

    /// Causal post-softmax probabilities [H, T, T], heads from image-centric to text-centric.
    pub fn probs(&self, layer: usize) -> Vec<f32> {
        let t = self.tokens;
        let table: Vec<f32> = (0..256).map(|i| ((i as f32 / 255.0 - 0.5) * 1.5).exp()).collect();
        let mut out = vec![0f32; self.heads * t * t];
        for h in 0..self.heads {
            let image = [1.2f32, -1.5, 0.6, 0.2][h % 4];
            let base: Vec<f32> = (0..t)
                .map(|j| {
                    let mut b = if (self.image.start..self.image.end()).contains(&j) {
                        image
                    } else {
                        0.0
                    };
                    if j == 0 {
                        b += 6.0;
                    } else if self.is_sink(j) {
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
}
