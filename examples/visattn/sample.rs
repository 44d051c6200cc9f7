//! The built-in prompt: LLaVA-1.5-7B-shaped (32 layers, 32 heads, D = 4096) with 35 system
//! tokens (BOS first), a 24 x 24 image (576 tokens) and 29 question tokens: T = 640.
//! Massive activations in dims 1415 / 2533 on BOS, on a '.' and on a few background patches
//! from layer 2 on; attention with sink biases and image-centric, text-centric and mixed heads.
//! Each layer is synthesised on demand from a hash: nothing but one layer is ever in memory.

pub const LAYERS: usize = 32;
pub const HEADS: usize = 32;
pub const HIDDEN: usize = 4096;
pub const SYSTEM: usize = 35;
pub const GRID: usize = 24;
pub const IMAGE: usize = GRID * GRID;
pub const QUESTION: usize = 29;
pub const TOKENS: usize = SYSTEM + IMAGE + QUESTION;
pub const SINK_DIMS: [u32; 2] = [1415, 2533];

/// Background patches (row, col) that carry massive activations: visual sinks.
pub const SINK_PATCHES: [(usize, usize); 6] = [(0, 0), (0, 23), (2, 19), (21, 3), (23, 22), (11, 0)];
/// The '.' at the end of the question's first sentence: a text sink.
pub const PERIOD: usize = SYSTEM + IMAGE + 12;

pub fn patch_token(row: usize, col: usize) -> usize {
    SYSTEM + row * GRID + col
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

pub fn is_massive(layer: usize, token: usize) -> bool {
    layer >= 2 && (token == 0 || token == PERIOD || SINK_PATCHES.iter().any(|&(r, c)| patch_token(r, c) == token))
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

/// Residual input of `layer`, [T, D].
pub fn hidden_states(layer: usize) -> Vec<f32> {
    let mut x = vec![0f32; TOKENS * HIDDEN];
    for t in 0..TOKENS {
        let row = &mut x[t * HIDDEN..(t + 1) * HIDDEN];
        for (d, v) in row.iter_mut().enumerate() {
            *v = noise(layer as u64, t as u64, d as u64);
        }
        if is_massive(layer, t) {
            // ~200-400x the median |x|, like LLaMA-2's massive activations.
            row[SINK_DIMS[0] as usize] = 150.0 + 10.0 * layer as f32;
            row[SINK_DIMS[1] as usize] = -90.0;
        }
    }
    x
}

/// Post-softmax causal attention of `layer`, [H, T, T].
pub fn attention(layer: usize) -> Vec<f32> {
    let mut out = vec![0f32; HEADS * TOKENS * TOKENS];
    // exp of the per-(row, key) noise, from a table: the synthesis must not dominate the run.
    let table: Vec<f32> = (0..256).map(|i| ((i as f32 / 255.0 - 0.5) * 1.5).exp()).collect();
    let sink_strength = if layer < 2 { 1.0 } else { 4.5 };
    for h in 0..HEADS {
        // h % 4: 0 image-centric on the object, 1 text-centric, 2 diffuse image, 3 mixed.
        let (image, object) = match h % 4 {
            0 => (1.2, 1.8),
            1 => (-1.5, 0.0),
            2 => (0.9, 0.3),
            _ => (0.2, 0.8),
        };
        let base: Vec<f32> = (0..TOKENS)
            .map(|j| {
                let mut b = 0.0f32;
                if (SYSTEM..SYSTEM + IMAGE).contains(&j) {
                    b += image;
                    if is_object(j) {
                        b += object;
                    }
                }
                if j == 0 || j == PERIOD {
                    b += sink_strength + 1.5;
                } else if is_massive(2, j) {
                    // Visual sinks: strong per patch, yet a modest share of a whole image.
                    b += sink_strength - 1.5 + (h % 3) as f32 * 0.6;
                }
                b.exp()
            })
            .collect();
        for q in 0..TOKENS {
            let row = &mut out[(h * TOKENS + q) * TOKENS..(h * TOKENS + q + 1) * TOKENS];
            let mut sum = 0.0f64;
            let seed = hash(layer as u64, h as u64, q as u64);
            for j in 0..=q {
                let e = base[j] * table[(hash(seed, j as u64, 7) & 255) as usize];
                row[j] = e;
                sum += e as f64;
            }
            let inv = (1.0 / sum) as f32;
            row[..=q].iter_mut().for_each(|v| *v *= inv);
        }
    }
    out
}
