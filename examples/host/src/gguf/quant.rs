//! The CPU reference of GGML's weight formats: dequantization of every format llama.cpp's LLaVA
//! conversions are published in, and llama.cpp's reference quantizers for the formats this host
//! quantizes HF weights to on load. The spec in code that the GPU kernels are tested against.
//!
//! Semantics are llama.cpp's (`ggml/src/ggml-common.h` for the block layouts,
//! `ggml/src/ggml-quants.c` for `dequantize_row_*` and `quantize_row_*_ref`), with the same f32
//! operations in the same order and no fused multiply-adds, so results are bit for bit those of
//! gguf-py's `gguf.quants` (tests/gguf_quants.rs) and of ggml built without FMA contraction.
//!
//! Every block function reads one block, little-endian as stored in a GGUF file, and writes or
//! returns its elements in order. [`dequantize`] and [`quantize`] run them over whole tensors
//! and check the sizes; they return errors, never panic.

use visattn::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};

use super::types::GgmlType;
use crate::{Error, Result};

/// The types [`dequantize`] reads.
pub const DEQUANTIZE_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// The types [`quantize`] writes.
pub const QUANTIZE_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q4_K,
];

/// Whether [`dequantize`] reads this type.
pub fn is_supported(ty: GgmlType) -> bool {
    DEQUANTIZE_TYPES.contains(&ty)
}

/// Elements of a K-quant super-block.
pub const QK_K: usize = 256;

fn names(types: &[GgmlType]) -> String {
    types.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

/// The bytes `elems` elements of `ty` take: an error unless they are whole blocks.
fn size_of(ty: GgmlType, elems: usize) -> Result<usize> {
    let per = ty.block_elems() as usize;
    if !elems.is_multiple_of(per) {
        return Err(Error::Gguf(format!(
            "{elems} elements are not a whole number of {} blocks ({per} elements each)",
            ty.name()
        )));
    }
    (elems / per)
        .checked_mul(ty.block_bytes() as usize)
        .ok_or_else(|| Error::Gguf(format!("{elems} {} elements overflow a byte count", ty.name())))
}

/// Checks that `elems` elements of `ty` are whole blocks stored in exactly `bytes` bytes.
fn check_size(ty: GgmlType, bytes: usize, elems: usize) -> Result<()> {
    let expected = size_of(ty, elems)?;
    if bytes != expected {
        return Err(Error::Gguf(format!(
            "{elems} {} elements take {expected} bytes ({} blocks of {}), not {bytes}",
            ty.name(),
            elems / ty.block_elems() as usize,
            ty.block_bytes()
        )));
    }
    Ok(())
}

/// The f32 values of `elems` elements of type `ty` stored in `bytes` (a tensor's data as a GGUF
/// file holds it). `elems` must be a whole number of blocks and `bytes` exactly their size.
pub fn dequantize(ty: GgmlType, bytes: &[u8], elems: usize) -> Result<Vec<f32>> {
    if !is_supported(ty) {
        return Err(unsupported(ty, "dequantize", DEQUANTIZE_TYPES));
    }
    check_size(ty, bytes.len(), elems)?;
    let mut out = vec![0f32; elems];
    dequantize_into(ty, bytes, &mut out)?;
    Ok(out)
}

/// [`dequantize`] into a caller's buffer: `out.len()` elements.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    if !is_supported(ty) {
        return Err(unsupported(ty, "dequantize", DEQUANTIZE_TYPES));
    }
    check_size(ty, bytes.len(), out.len())?;
    match ty {
        GgmlType::F32 => {
            for (b, y) in bytes.chunks_exact(4).zip(out.iter_mut()) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (b, y) in bytes.chunks_exact(2).zip(out.iter_mut()) {
                *y = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        GgmlType::BF16 => {
            for (b, y) in bytes.chunks_exact(2).zip(out.iter_mut()) {
                *y = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        GgmlType::Q8_0 => blocks(bytes, out, dequantize_q8_0),
        GgmlType::Q4_0 => blocks(bytes, out, dequantize_q4_0),
        GgmlType::Q4_1 => blocks(bytes, out, dequantize_q4_1),
        GgmlType::Q5_0 => blocks(bytes, out, dequantize_q5_0),
        GgmlType::Q5_1 => blocks(bytes, out, dequantize_q5_1),
        GgmlType::Q2_K => blocks(bytes, out, dequantize_q2_k),
        GgmlType::Q3_K => blocks(bytes, out, dequantize_q3_k),
        GgmlType::Q4_K => blocks(bytes, out, dequantize_q4_k),
        GgmlType::Q5_K => blocks(bytes, out, dequantize_q5_k),
        GgmlType::Q6_K => blocks(bytes, out, dequantize_q6_k),
        _ => return Err(unsupported(ty, "dequantize", DEQUANTIZE_TYPES)),
    }
    Ok(())
}

/// `values` quantized to `ty` with llama.cpp's reference rounding (`quantize_row_*_ref`; f16
/// and bf16 to nearest, ties to even). `values.len()` must be a whole number of blocks.
pub fn quantize(ty: GgmlType, values: &[f32]) -> Result<Vec<u8>> {
    if !QUANTIZE_TYPES.contains(&ty) {
        return Err(unsupported(ty, "quantize", QUANTIZE_TYPES));
    }
    let size = size_of(ty, values.len())?;
    let mut out = Vec::with_capacity(size);
    match ty {
        GgmlType::F32 => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => values.iter().for_each(|&v| out.extend_from_slice(&f32_to_f16(v).to_le_bytes())),
        GgmlType::BF16 => values.iter().for_each(|&v| out.extend_from_slice(&f32_to_bf16(v).to_le_bytes())),
        GgmlType::Q8_0 => quantize_blocks(values, &mut out, quantize_q8_0),
        GgmlType::Q4_0 => quantize_blocks(values, &mut out, quantize_q4_0),
        GgmlType::Q5_0 => quantize_blocks(values, &mut out, quantize_q5_0),
        GgmlType::Q4_K => quantize_blocks(values, &mut out, quantize_q4_k),
        _ => return Err(unsupported(ty, "quantize", QUANTIZE_TYPES)),
    }
    Ok(out)
}

fn unsupported(ty: GgmlType, what: &str, types: &[GgmlType]) -> Error {
    Error::Gguf(format!(
        "cannot {what} {} tensors (type id {}): this host supports {}",
        ty.name(),
        ty.id(),
        names(types)
    ))
}

/// The byte offsets of a block's f16 fields (its scales and minimums; every value of BF16's
/// one-element blocks): where a NaN or an infinity would spoil a whole block.
pub fn half_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Runs a block function over whole blocks (sizes already checked).
fn blocks<const B: usize, const E: usize>(bytes: &[u8], out: &mut [f32], f: fn(&[u8; B], &mut [f32; E])) {
    for (b, y) in bytes.chunks_exact(B).zip(out.chunks_exact_mut(E)) {
        if let (Some(b), Some(y)) = (b.first_chunk::<B>(), y.first_chunk_mut::<E>()) {
            f(b, y);
        }
    }
}

fn quantize_blocks<const B: usize, const E: usize>(values: &[f32], out: &mut Vec<u8>, f: fn(&[f32; E]) -> [u8; B]) {
    for x in values.chunks_exact(E) {
        if let Some(x) = x.first_chunk::<E>() {
            out.extend_from_slice(&f(x));
        }
    }
}

/// An f16 stored at `b[at..at + 2]`, as f32.
fn half(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

// ---------------------------------------------------------------------------------------------
// Legacy formats: blocks of 32, one f16 scale (and an f16 minimum for the _1 types).
// ---------------------------------------------------------------------------------------------

/// Bytes of a Q8_0 block: `d: f16`, `qs: [i8; 32]`.
pub const Q8_0_BYTES: usize = 34;
/// Bytes of a Q4_0 block: `d: f16`, `qs: [u8; 16]` (nibbles).
pub const Q4_0_BYTES: usize = 18;
/// Bytes of a Q4_1 block: `d: f16`, `m: f16`, `qs: [u8; 16]`.
pub const Q4_1_BYTES: usize = 20;
/// Bytes of a Q5_0 block: `d: f16`, `qh: u32` (fifth bits), `qs: [u8; 16]`.
pub const Q5_0_BYTES: usize = 22;
/// Bytes of a Q5_1 block: `d: f16`, `m: f16`, `qh: u32`, `qs: [u8; 16]`.
pub const Q5_1_BYTES: usize = 24;

/// Q8_0: `y[j] = qs[j] * d`.
pub fn dequantize_q8_0(b: &[u8; Q8_0_BYTES], y: &mut [f32; 32]) {
    let d = half(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

/// Q4_0: element j is the low nibble of `qs[j]`, element j + 16 its high nibble;
/// `y = (q - 8) * d`.
pub fn dequantize_q4_0(b: &[u8; Q4_0_BYTES], y: &mut [f32; 32]) {
    let d = half(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32 - 8;
        let x1 = (qs[j] >> 4) as i32 - 8;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// Q4_1: nibbles as Q4_0, `y = q * d + m`.
pub fn dequantize_q4_1(b: &[u8; Q4_1_BYTES], y: &mut [f32; 32]) {
    let d = half(b, 0);
    let m = half(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32;
        let x1 = (qs[j] >> 4) as i32;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

/// The fifth bit of element j of a Q5 block: bit j of `qh`, as 0 or 16.
fn fifth_bit(qh: u32, j: usize) -> i32 {
    (((qh >> j) & 1) << 4) as i32
}

/// Q5_0: nibbles as Q4_0 plus bit j of `qh` as bit 4 of element j; `y = (q - 16) * d`.
pub fn dequantize_q5_0(b: &[u8; Q5_0_BYTES], y: &mut [f32; 32]) {
    let d = half(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let x0 = ((qs[j] & 0x0f) as i32 | fifth_bit(qh, j)) - 16;
        let x1 = ((qs[j] >> 4) as i32 | fifth_bit(qh, j + 16)) - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// Q5_1: 5-bit quants as Q5_0, `y = q * d + m`.
pub fn dequantize_q5_1(b: &[u8; Q5_1_BYTES], y: &mut [f32; 32]) {
    let d = half(b, 0);
    let m = half(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32 | fifth_bit(qh, j);
        let x1 = (qs[j] >> 4) as i32 | fifth_bit(qh, j + 16);
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

// ---------------------------------------------------------------------------------------------
// K-quants: super-blocks of 256 with quantized sub-block scales.
// ---------------------------------------------------------------------------------------------

/// Bytes of a Q2_K super-block: `scales: [u8; 16]` (4-bit scale | 4-bit min per 16),
/// `qs: [u8; 64]` (2-bit), `d: f16`, `dmin: f16`.
pub const Q2_K_BYTES: usize = 84;
/// Bytes of a Q3_K super-block: `hmask: [u8; 32]` (high bits), `qs: [u8; 64]` (low 2 bits),
/// `scales: [u8; 12]` (16 6-bit scales), `d: f16`.
pub const Q3_K_BYTES: usize = 110;
/// Bytes of a Q4_K super-block: `d: f16`, `dmin: f16`, `scales: [u8; 12]` (8 6-bit scales and
/// mins), `qs: [u8; 128]` (nibbles).
pub const Q4_K_BYTES: usize = 144;
/// Bytes of a Q5_K super-block: `d: f16`, `dmin: f16`, `scales: [u8; 12]`, `qh: [u8; 32]`
/// (fifth bits), `qs: [u8; 128]`.
pub const Q5_K_BYTES: usize = 176;
/// Bytes of a Q6_K super-block: `ql: [u8; 128]` (low 4 bits), `qh: [u8; 64]` (high 2 bits),
/// `scales: [i8; 16]`, `d: f16`.
pub const Q6_K_BYTES: usize = 210;

/// Q2_K: 16 sub-blocks of 16. Sub-block s has scale `d * (scales[s] & 15)` and min
/// `dmin * (scales[s] >> 4)`; element e = 128 h + 32 i + l (h < 2, i < 4, l < 32) is bits 2i..2i+2
/// of `qs[32 h + l]`; `y = dl * q - ml`.
pub fn dequantize_q2_k(b: &[u8; Q2_K_BYTES], y: &mut [f32; QK_K]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = half(b, 80);
    let min = half(b, 82);
    let mut k = 0;
    let mut is = 0;
    for h in 0..2 {
        let q = &qs[32 * h..32 * h + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0f) as f32;
                let ml = min * (sc >> 4) as f32;
                for l in 0..16 {
                    y[k] = dl * ((q[16 * part + l] >> shift) & 3) as f32 - ml;
                    k += 1;
                }
            }
        }
    }
}

/// The 16 signed 6-bit scales of a Q3_K block: low 4 bits from `s[0..8]` (low nibbles for
/// sub-blocks 0..8, high nibbles for 8..16), high 2 bits from `s[8..12]`, minus 32.
fn q3_k_scales(s: &[u8]) -> [i32; 16] {
    let mut out = [0; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 { s[i] & 0x0f } else { s[i - 8] >> 4 };
        let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = (low | (high << 4)) as i32 - 32;
    }
    out
}

/// Q3_K: 16 sub-blocks of 16 with scale `d * scale[s]`. Element e = 128 h + 32 i + l has low
/// bits 2i..2i+2 of `qs[32 h + l]`, and 4 is subtracted unless bit 4h + i of `hmask[l]` is set;
/// `y = dl * q`.
pub fn dequantize_q3_k(b: &[u8; Q3_K_BYTES], y: &mut [f32; QK_K]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let scales = q3_k_scales(&b[96..108]);
    let d = half(b, 108);
    let mut k = 0;
    let mut is = 0;
    let mut m = 1u8;
    for h in 0..2 {
        let q = &qs[32 * h..32 * h + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let dl = d * scales[is] as f32;
                is += 1;
                for l in 16 * part..16 * part + 16 {
                    let low = ((q[l] >> shift) & 3) as i32;
                    let minus = if hmask[l] & m != 0 { 0 } else { 4 };
                    y[k] = dl * (low - minus) as f32;
                    k += 1;
                }
            }
            m = m.wrapping_shl(1);
        }
    }
}

/// Scale and min of sub-block j (of 8) from a Q4_K/Q5_K `scales` field (llama.cpp's
/// `get_scale_min_k4`): 6 bits each, the high 2 bits of sub-blocks 4..8 in the top bits of
/// bytes 0..8.
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q4_K: 8 sub-blocks of 32 with scale `d * sc` and min `dmin * m` (`scale_min_k4`). Chunk c of
/// 64 reads `qs[32 c..32 c + 32]`: low nibbles are sub-block 2c, high nibbles 2c + 1;
/// `y = dl * q - ml`.
pub fn dequantize_q4_k(b: &[u8; Q4_K_BYTES], y: &mut [f32; QK_K]) {
    let d = half(b, 0);
    let min = half(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        let (sc, m) = scale_min_k4(2 * c, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * c + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for l in 0..32 {
            y[64 * c + l] = d1 * (q[l] & 0x0f) as f32 - m1;
            y[64 * c + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// Q5_K: Q4_K plus a fifth bit: element 32 s + l (sub-block s) adds 16 when bit s of `qh[l]`
/// is set.
pub fn dequantize_q5_k(b: &[u8; Q5_K_BYTES], y: &mut [f32; QK_K]) {
    let d = half(b, 0);
    let min = half(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let ql = &b[48..176];
    for c in 0..4 {
        let q = &ql[32 * c..32 * c + 32];
        let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
        let (sc, m) = scale_min_k4(2 * c, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * c + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for l in 0..32 {
            let high1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let high2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[64 * c + l] = d1 * ((q[l] & 0x0f) + high1) as f32 - m1;
            y[64 * c + 32 + l] = d2 * ((q[l] >> 4) + high2) as f32 - m2;
        }
    }
}

/// Q6_K: 16 sub-blocks of 16 with scale `d * scales[s]` (signed). Half h (128 elements) reads
/// `ql[64 h..]` and `qh[32 h..]`: element 128 h + 32 i + l takes its low 4 bits from
/// `ql[64 h + l + 32 (i & 1)]` (low nibble for i < 2, high for i >= 2) and its high 2 bits from
/// bits 2i..2i+2 of `qh[32 h + l]`; `y = (d * sc) * (q - 32)`.
pub fn dequantize_q6_k(b: &[u8; Q6_K_BYTES], y: &mut [f32; QK_K]) {
    let d = half(b, 208);
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let dl = |i: usize| d * (sc[i] as i8) as f32;
        let y = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = dl(is) * q1 as f32;
            y[l + 32] = dl(is + 2) * q2 as f32;
            y[l + 64] = dl(is + 4) * q3 as f32;
            y[l + 96] = dl(is + 6) * q4 as f32;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers (llama.cpp's quantize_row_*_ref, one block at a time).
// ---------------------------------------------------------------------------------------------

/// `quantize_row_q8_0_ref`: `d = max|x| / 127`, `q = round(x / d)` (half away from zero).
pub fn quantize_q8_0(x: &[f32; 32]) -> [u8; Q8_0_BYTES] {
    let amax = x.iter().fold(0f32, |a, v| if a > v.abs() { a } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; Q8_0_BYTES];
    out[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    for j in 0..32 {
        out[2 + j] = ((x[j] * id).round() as i8) as u8;
    }
    out
}

/// `quantize_row_q4_0_ref`: `d = max / -8` where max is the (first) value of largest magnitude,
/// `q = min(15, trunc(x / d + 8.5))`.
pub fn quantize_q4_0(x: &[f32; 32]) -> [u8; Q4_0_BYTES] {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    let mut out = [0u8; Q4_0_BYTES];
    out[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    for j in 0..16 {
        out[2 + j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
    out
}

/// `quantize_row_q5_0_ref`: `d = max / -16` where max is the (first) value of largest magnitude,
/// `q = min(31, trunc(x / d + 16.5))`, bit 4 of element j in bit j of `qh`.
pub fn quantize_q5_0(x: &[f32; 32]) -> [u8; Q5_0_BYTES] {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = |v: f32| ((v * id + 16.5) as i32).clamp(0, 31) as u32;
    let mut out = [0u8; Q5_0_BYTES];
    out[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..16 {
        let (x0, x1) = (q(x[j]), q(x[j + 16]));
        out[6 + j] = ((x0 & 0x0f) | ((x1 & 0x0f) << 4)) as u8;
        qh |= ((x0 & 0x10) >> 4) << j;
        qh |= ((x1 & 0x10) >> 4) << (j + 16);
    }
    out[2..6].copy_from_slice(&qh.to_le_bytes());
    out
}

/// The type a matrix with rows of `cols` values is quantized to when `ty` is asked for, as
/// llama.cpp's quantizer decides (`llama_tensor_get_type`): K-quant rows that are not whole
/// super-blocks of 256 fall back (Q4_K to Q5_0), and rows that are not whole blocks of the
/// result stay F16.
pub fn type_for_rows(ty: GgmlType, cols: usize) -> GgmlType {
    let ty = match ty {
        GgmlType::Q4_K if !cols.is_multiple_of(QK_K) => GgmlType::Q5_0,
        other => other,
    };
    if cols.is_multiple_of(ty.block_elems() as usize) {
        ty
    } else {
        GgmlType::F16
    }
}

/// llama.cpp's `nearest_int`: round to nearest, ties to even, through the f32 magic number
/// 1.5 * 2^23 (valid for |x| <= 2^22; outside it, the same bits llama.cpp computes).
fn nearest_int(x: f32) -> i32 {
    let val = x + 12582912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// llama.cpp's `make_qkx2_quants` (weighted min/scale search for an asymmetric n-level fit of
/// `x`): returns the scale and `-min`, and leaves the levels in `levels`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut aux = [0u8; 32];
    let laux = &mut aux[..n];
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let err = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        levels[i] = l.clamp(0, nmax) as u8;
        let diff = scale * levels[i] as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            sum_l += w * l as f32;
            sum_l2 += w * l as f32 * l as f32;
            sum_xl += w * l as f32 * x[i];
        }
        let dd = sum_w * sum_l2 - sum_l * sum_l;
        if dd > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / dd;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / dd;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                levels.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `quantize_row_q4_K_ref`: per sub-block of 32 a weighted asymmetric 4-bit fit
/// (`make_qkx2_quants`, weights `rms + |x|`), the 8 scales and mins quantized to 6 bits against
/// the largest, then every element re-rounded to the stored scale and min.
pub fn quantize_q4_k(x: &[f32; QK_K]) -> [u8; Q4_K_BYTES] {
    let mut levels = [0u8; QK_K];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(15, xs, &weights, &mut levels[32 * j..32 * j + 32], -1.0, 0.1, 20, false);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let mut out = [0u8; Q4_K_BYTES];
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    {
        let packed = &mut out[4..16];
        for j in 0..8 {
            // C: uint8_t ls = nearest_int(...) (modulo 256), then MIN(63, ls).
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            if j < 4 {
                packed[j] = ls;
                packed[j + 4] = lm;
            } else {
                packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
                packed[j - 4] |= (ls >> 4) << 6;
                packed[j] |= (lm >> 4) << 6;
            }
        }
    }
    let d16 = f32_to_f16(max_scale / 63.0);
    let dmin16 = f32_to_f16(max_min / 63.0);
    out[0..2].copy_from_slice(&d16.to_le_bytes());
    out[2..4].copy_from_slice(&dmin16.to_le_bytes());

    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &out[4..16]);
        let d = f16_to_f32(d16) * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = f16_to_f32(dmin16) * m as f32;
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / d);
            levels[32 * j + ii] = l.clamp(0, 15) as u8;
        }
    }

    let qs = &mut out[16..144];
    for c in 0..4 {
        for l in 0..32 {
            qs[32 * c + l] = levels[64 * c + l] | (levels[64 * c + l + 32] << 4);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.7), -1);
        assert_eq!(nearest_int(14.49), 14);
    }

    #[test]
    fn q4_k_round_trips_within_a_step() {
        let x: [f32; QK_K] = std::array::from_fn(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0);
        let q = quantize_q4_k(&x);
        let mut y = [0f32; QK_K];
        dequantize_q4_k(&q, &mut y);
        let worst = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 0.15, "{worst}");
    }
}
