//! The web demo's built-in prompt: the native example's LLaVA-shaped sample reduced for a
//! software WebGPU adapter and wasm32 memory: 8 layers, 8 heads, 35 system tokens, the 24 x 24
//! image, 9 question tokens (the query rows), hidden size 1024 with massive activations in
//! dims 100 and 700 on BOS, a '.' and six background patches. About 20 MB in all.

pub const LAYERS: usize = 8;
pub const HEADS: usize = 8;
pub const HIDDEN: usize = 1024;
pub const SYSTEM: usize = 35;
pub const GRID: usize = 24;
pub const IMAGE: usize = GRID * GRID;
pub const QUESTION: usize = 9;
pub const TOKENS: usize = SYSTEM + IMAGE + QUESTION;
/// Only the question rows are query rows: the rows VAR may change.
pub const QUERIES: usize = QUESTION;
pub const SINK_DIMS: [u32; 2] = [100, 700];
const PERIOD: usize = SYSTEM + IMAGE + 4;
const SINK_PATCHES: [(usize, usize); 6] = [(0, 0), (0, 23), (2, 19), (21, 3), (23, 22), (11, 0)];

fn is_patch_sink(token: usize) -> bool {
    SINK_PATCHES.iter().any(|&(r, c)| SYSTEM + r * GRID + c == token)
}

/// The object the question is about: a disc of patches near the centre.
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

fn noise(a: u64, b: u64, c: u64) -> f32 {
    (hash(a, b, c) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

pub fn hidden_states(layer: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..TOKENS * HIDDEN)
        .map(|i| noise(layer as u64, (i / HIDDEN) as u64, (i % HIDDEN) as u64))
        .collect();
    if layer >= 2 {
        for t in (0..TOKENS).filter(|&t| t == 0 || t == PERIOD || is_patch_sink(t)) {
            x[t * HIDDEN + SINK_DIMS[0] as usize] = 60.0 + 2.0 * layer as f32;
            x[t * HIDDEN + SINK_DIMS[1] as usize] = -40.0;
        }
    }
    x
}

/// Post-softmax attention of the question rows [H, QUERIES, TOKENS], causal.
pub fn attention(layer: usize) -> Vec<f32> {
    let mut out = vec![0f32; HEADS * QUERIES * TOKENS];
    let strength = if layer < 2 { 1.0 } else { 4.5 };
    for h in 0..HEADS {
        let (image, object) = [(1.2f32, 1.8f32), (-1.5, 0.0), (0.9, 0.3), (0.2, 0.8)][h % 4];
        for q in 0..QUERIES {
            let pos = TOKENS - QUERIES + q;
            let row = &mut out[(h * QUERIES + q) * TOKENS..(h * QUERIES + q + 1) * TOKENS];
            let mut sum = 0.0f64;
            for (j, v) in row.iter_mut().enumerate().take(pos + 1) {
                let mut b = 0.0f32;
                if (SYSTEM..SYSTEM + IMAGE).contains(&j) {
                    b += image + if is_object(j) { object } else { 0.0 };
                }
                if j == 0 || j == PERIOD {
                    b += strength + 1.5;
                } else if is_patch_sink(j) {
                    b += strength - 1.5 + (h % 3) as f32 * 0.6;
                }
                *v = (b + 0.75 * noise(layer as u64 * 31 + h as u64, q as u64, j as u64)).exp();
                sum += *v as f64;
            }
            let inv = (1.0 / sum) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
    out
}
