//! Reproducible random values and GGML weight blocks: the inputs of `--check-kernels` and the
//! weights of benchmarks of shapes nobody stores.

use visattn::half::{f32_to_bf16, f32_to_f16};

use crate::gguf::quant;
use crate::gguf::types::GgmlType;

/// Uniform in [-1, 1), reproducible (xorshift).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `values` values of a block format as random blocks: random bytes, the f16 scales and
/// minimums replaced by random values of magnitude up to `scale` (small ones subnormal), so
/// every bit pattern of the quants occurs.
pub fn random_blocks(ty: GgmlType, values: usize, scale: f32, seed: u64) -> Vec<u8> {
    let size = ty.block_bytes() as usize;
    let blocks = values / ty.block_elems() as usize;
    let noise = random(blocks * size, seed);
    let mut bytes: Vec<u8> = noise.iter().map(|v| ((v + 1.0) * 128.0) as u8).collect();
    let halves = random(blocks * 2, seed ^ 0x5eed);
    for (b, block) in bytes.chunks_exact_mut(size).enumerate() {
        for (f, &at) in quant::half_fields(ty).iter().enumerate() {
            let v = halves[2 * b + f] * scale;
            let h = if ty == GgmlType::BF16 { f32_to_bf16(v) } else { f32_to_f16(v) };
            block[at..at + 2].copy_from_slice(&h.to_le_bytes());
        }
    }
    bytes
}

/// The largest |quant x sub-block scale| of a block format's values over its f16 scale: what
/// scales of `bound / quant_range(ty)` give values of magnitude up to about `bound`.
pub fn quant_range(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::Q8_0 => 127.0,
        GgmlType::Q4_0 | GgmlType::Q5_0 => 16.0,
        GgmlType::Q4_1 => 15.0,
        GgmlType::Q5_1 => 31.0,
        GgmlType::Q2_K => 45.0,
        GgmlType::Q3_K => 128.0,
        GgmlType::Q4_K => 945.0,
        GgmlType::Q5_K => 1953.0,
        GgmlType::Q6_K => 4096.0,
        _ => 1.0,
    }
}
