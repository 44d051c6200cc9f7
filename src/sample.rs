//! A synthetic LLaVA-shaped prompt for demos, parametrised: 35 system tokens (BOS first), a
//! 24 x 24 image (576 tokens) and a question; massive activations in two hidden dimensions on
//! BOS, on a '.' of the question and on six background patches from layer 2 on; causal
//! attention with sink biases and image-centric, text-centric, diffuse and mixed heads (h % 4).
//! Each layer is synthesised on demand from a hash: nothing but one layer is ever in memory.
//!
//! Two presets: [`LLAVA_1_5_7B`], the command line's built-in prompt at LLaVA-1.5-7B's shape,
//! and [`BROWSER`], the web demo's, reduced for a software WebGPU adapter and wasm32 memory.
//! Pure Rust, no GPU: both the native CLI and the wasm demo call it.

/// The image's side in patches.
pub const GRID: usize = 24;
/// System tokens before the image (BOS first).
pub const SYSTEM: usize = 35;
/// Image tokens: one per patch.
pub const IMAGE: usize = GRID * GRID;
/// Background patches (row, col) that carry massive activations: visual sinks.
pub const SINK_PATCHES: [(usize, usize); 6] = [(0, 0), (0, 23), (2, 19), (21, 3), (23, 22), (11, 0)];

/// Which rows of attention a layer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRows {
    /// Every token a query row: [H, T, T] (a prefill).
    All,
    /// Only the question's tokens: [H, question, T] (the rows VAR may change).
    Question,
}

/// How each attention logit's noise is drawn (both uniform in [-0.75, 0.75)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitNoise {
    /// Quantised to 256 levels, exp from a table (the synthesis must not dominate a run over
    /// T x T rows).
    Table,
    /// Exact, exp per logit.
    Exact,
}

/// A sample prompt's shape and what it plants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub layers: usize,
    pub heads: usize,
    /// D.
    pub hidden: usize,
    /// Question tokens after the image.
    pub question: usize,
    pub rows: QueryRows,
    /// The dimensions with massive activations.
    pub sink_dims: [u32; 2],
    /// The '.' that is a text sink: its index in the question.
    pub period: usize,
    /// Massive activation of layer l in `sink_dims[0]`: `massive.0 + massive.1 * l`; in
    /// `sink_dims[1]`: `massive.2`.
    pub massive: (f32, f32, f32),
    pub noise: LogitNoise,
}

/// The command line's built-in prompt: LLaVA-1.5-7B's shape (32 layers, 32 heads, D = 4096),
/// 29 question tokens (T = 640), every row; dims 1415 / 2533 at about 200-400x the median |x|,
/// like LLaMA-2's massive activations.
pub const LLAVA_1_5_7B: Sample = Sample {
    layers: 32,
    heads: 32,
    hidden: 4096,
    question: 29,
    rows: QueryRows::All,
    sink_dims: [1415, 2533],
    period: 12,
    massive: (150.0, 10.0, -90.0),
    noise: LogitNoise::Table,
};

/// The web demo's: 8 layers, 8 heads, D = 1024, 9 question tokens and only their rows, dims
/// 100 / 700. About 20 MB in all.
pub const BROWSER: Sample = Sample {
    layers: 8,
    heads: 8,
    hidden: 1024,
    question: 9,
    rows: QueryRows::Question,
    sink_dims: [100, 700],
    period: 4,
    massive: (60.0, 2.0, -40.0),
    noise: LogitNoise::Exact,
};

impl Sample {
    /// T: system, image and question tokens.
    pub const fn tokens(&self) -> usize {
        SYSTEM + IMAGE + self.question
    }

    /// Query rows per head: T, or the question's.
    pub const fn queries(&self) -> usize {
        match self.rows {
            QueryRows::All => self.tokens(),
            QueryRows::Question => self.question,
        }
    }

    /// The token of the '.' that is a text sink.
    pub const fn period_token(&self) -> usize {
        SYSTEM + IMAGE + self.period
    }

    /// Whether `token` carries massive activations in `layer`.
    pub fn is_massive(&self, layer: usize, token: usize) -> bool {
        layer >= 2 && (token == 0 || token == self.period_token() || is_patch_sink(token))
    }

    /// Residual input of `layer`, [T, D].
    pub fn hidden_states(&self, layer: usize) -> Vec<f32> {
        let (t, d) = (self.tokens(), self.hidden);
        let mut x: Vec<f32> = (0..t * d).map(|i| noise(layer as u64, (i / d) as u64, (i % d) as u64)).collect();
        for token in (0..t).filter(|&token| self.is_massive(layer, token)) {
            let row = &mut x[token * d..(token + 1) * d];
            row[self.sink_dims[0] as usize] = self.massive.0 + self.massive.1 * layer as f32;
            row[self.sink_dims[1] as usize] = self.massive.2;
        }
        x
    }

    /// Post-softmax causal attention of `layer`, [H, Q, T] (query row q at position T - Q + q).
    pub fn attention(&self, layer: usize) -> Vec<f32> {
        let (t, queries) = (self.tokens(), self.queries());
        let mut out = vec![0f32; self.heads * queries * t];
        let table: Vec<f32> = match self.noise {
            LogitNoise::Table => (0..256).map(|i| ((i as f32 / 255.0 - 0.5) * 1.5).exp()).collect(),
            LogitNoise::Exact => Vec::new(),
        };
        let sink_strength = if layer < 2 { 1.0 } else { 4.5 };
        for h in 0..self.heads {
            // h % 4: 0 image-centric on the object, 1 text-centric, 2 diffuse image, 3 mixed.
            let (image, object) = [(1.2f32, 1.8f32), (-1.5, 0.0), (0.9, 0.3), (0.2, 0.8)][h % 4];
            let logits: Vec<f32> = (0..t)
                .map(|j| {
                    let mut b = 0.0f32;
                    if (SYSTEM..SYSTEM + IMAGE).contains(&j) {
                        b += image;
                        if is_object(j) {
                            b += object;
                        }
                    }
                    if j == 0 || j == self.period_token() {
                        b += sink_strength + 1.5;
                    } else if is_patch_sink(j) {
                        // Visual sinks: strong per patch, yet a modest share of a whole image.
                        b += sink_strength - 1.5 + (h % 3) as f32 * 0.6;
                    }
                    b
                })
                .collect();
            let base: Vec<f32> = match self.noise {
                LogitNoise::Table => logits.iter().map(|b| b.exp()).collect(),
                LogitNoise::Exact => Vec::new(),
            };
            for q in 0..queries {
                let pos = t - queries + q;
                let row = &mut out[(h * queries + q) * t..(h * queries + q + 1) * t];
                let mut sum = 0.0f64;
                match self.noise {
                    LogitNoise::Table => {
                        let seed = hash(layer as u64, h as u64, q as u64);
                        for j in 0..=pos {
                            row[j] = base[j] * table[(hash(seed, j as u64, 7) & 255) as usize];
                            sum += row[j] as f64;
                        }
                    }
                    LogitNoise::Exact => {
                        for j in 0..=pos {
                            row[j] = (logits[j] + 0.75 * noise(layer as u64 * 31 + h as u64, q as u64, j as u64)).exp();
                            sum += row[j] as f64;
                        }
                    }
                }
                let inv = (1.0 / sum) as f32;
                row[..=pos].iter_mut().for_each(|v| *v *= inv);
            }
        }
        out
    }
}

/// The token of patch (row, col).
pub const fn patch_token(row: usize, col: usize) -> usize {
    SYSTEM + row * GRID + col
}

fn is_patch_sink(token: usize) -> bool {
    SINK_PATCHES.iter().any(|&(r, c)| patch_token(r, c) == token)
}

/// The object the question asks about: a disc of patches around the grid's centre.
pub fn is_object(token: usize) -> bool {
    if !(SYSTEM..SYSTEM + IMAGE).contains(&token) {
        return false;
    }
    let (r, c) = ((token - SYSTEM) / GRID, (token - SYSTEM) % GRID);
    let (dr, dc) = (r as f64 - 12.5, c as f64 - 13.0);
    dr * dr + dc * dc <= 30.0
}

fn hash(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ c.wrapping_mul(0x1656_67b1_9e37_79f9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in [-1, 1).
fn noise(a: u64, b: u64, c: u64) -> f32 {
    (hash(a, b, c) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}
