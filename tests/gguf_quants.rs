//! The host's CPU reference of GGML's weight formats (examples/host/src/gguf/quant.rs) against
//! tests/data/quants.safetensors (tools/make_quant_fixtures.py): every format's dequantization
//! bit for bit against gguf-py's `gguf.quants.dequantize` of random blocks (the script checks
//! gguf-py against llama.cpp's `dequantize_row_*` too), the quantizers byte for byte against
//! gguf-py's `gguf.quants.quantize` (F16, BF16, Q8_0, Q4_0, Q5_0) and llama.cpp's
//! `quantize_row_q4_K_ref` (Q4_K), and the refusals: sizes that do not match and unsupported
//! types, named.

use std::path::Path;

use visattn::dump::{Dtype, TensorFile};
use visattn::half::f16_to_f32;
use visattn_host::gguf::GgmlType;
use visattn_host::gguf::quant::{self, DEQUANTIZE_TYPES, QUANTIZE_TYPES};

fn fixtures() -> TensorFile {
    TensorFile::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quants.safetensors")).unwrap()
}

fn bytes(file: &TensorFile, name: &str) -> Vec<u8> {
    let (dtype, _, raw) = file.raw(name).unwrap();
    assert_eq!(dtype, Dtype::U8, "{name}");
    raw.to_vec()
}

/// A float tensor's values exactly as stored (f32 bits as they are, f16 upcast exactly).
fn floats(file: &TensorFile, name: &str) -> Vec<f32> {
    let (dtype, _, raw) = file.raw(name).unwrap();
    match dtype {
        Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => raw.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
        _ => panic!("{name}: dtype {dtype:?}"),
    }
}

/// Asserts `got` is `want` bit for bit, naming the first element that differs.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        panic!(
            "{what}: element {i} is {} (bits {:#x}), gguf-py has {} (bits {:#x}); max abs difference {worst}",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

#[test]
fn every_format_dequantizes_bit_for_bit_like_gguf_py() {
    let file = fixtures();
    for &ty in DEQUANTIZE_TYPES {
        let raw = bytes(&file, &format!("dequant.{}.bytes", ty.name()));
        let want = floats(&file, &format!("dequant.{}.values", ty.name()));
        assert!(
            want.len() >= 64 && want.len() % ty.block_elems() as usize == 0,
            "{ty}: fixture too small"
        );
        let got = quant::dequantize(ty, &raw, want.len()).unwrap();
        assert_bits(ty.name(), &got, &want);

        // Into a caller's buffer, and block by block from a later block on: the same values.
        let mut into = vec![f32::NAN; want.len()];
        quant::dequantize_into(ty, &raw, &mut into).unwrap();
        assert_bits(ty.name(), &into, &want);
        let (e, b) = (ty.block_elems() as usize, ty.block_bytes() as usize);
        let tail = quant::dequantize(ty, &raw[b..], want.len() - e).unwrap();
        assert_bits(ty.name(), &tail, &want[e..]);
    }
}

/// The per-format block functions, called on their own.
#[test]
fn block_functions_read_one_block() {
    let file = fixtures();
    let raw = bytes(&file, "dequant.Q6_K.bytes");
    let want = floats(&file, "dequant.Q6_K.values");
    let mut y = [0f32; 256];
    quant::dequantize_q6_k(raw[210..420].try_into().unwrap(), &mut y);
    assert_bits("Q6_K block 1", &y, &want[256..512]);

    let raw = bytes(&file, "dequant.Q4_K.bytes");
    let want = floats(&file, "dequant.Q4_K.values");
    quant::dequantize_q4_k(raw[..144].try_into().unwrap(), &mut y);
    assert_bits("Q4_K block 0", &y, &want[..256]);

    // By hand: Q4_0 with d = 0.5, low nibbles 0..16 and high nibbles 15: (q - 8) * d.
    let mut block = [0u8; 18];
    block[..2].copy_from_slice(&0x3800u16.to_le_bytes());
    for j in 0..16 {
        block[2 + j] = j as u8 | 0xf0;
    }
    let mut y = [0f32; 32];
    quant::dequantize_q4_0(&block, &mut y);
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
        assert_eq!(y[16 + j], 3.5);
    }
}

#[test]
fn quantizers_match_llama_cpp_byte_for_byte() {
    let file = fixtures();
    for ty in [
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q4_K,
    ] {
        let input = floats(&file, &format!("quant.{}.input", ty.name()));
        let want = bytes(&file, &format!("quant.{}.bytes", ty.name()));
        let got = quant::quantize(ty, &input).unwrap();
        assert_eq!(got.len(), want.len(), "{ty}: length");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            let block = i / ty.block_bytes() as usize;
            panic!("{ty}: byte {i} (block {block}) is {:#04x}, expected {:#04x}", got[i], want[i]);
        }
        // What was quantized reads back close to the input: within one quantization step of
        // each block's scale (checked loosely: half the block's largest magnitude), except in
        // blocks so small that their f16 scale underflows to 0 (Q8_0's 1e-6 block).
        let back = quant::dequantize(ty, &got, input.len()).unwrap();
        for (x, y) in input.chunks(ty.block_elems() as usize).zip(back.chunks(ty.block_elems() as usize)) {
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            if amax < 1e-4 {
                continue;
            }
            for (a, b) in x.iter().zip(y) {
                if b.is_finite() {
                    assert!((a - b).abs() <= 0.5 * amax + 1e-6, "{ty}: {a} read back as {b}");
                }
            }
        }
    }
    // F32 stores the values as they are.
    let x = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.0e38];
    let raw = quant::quantize(GgmlType::F32, &x).unwrap();
    assert_bits("F32", &quant::dequantize(GgmlType::F32, &raw, 4).unwrap(), &x);
    assert!(QUANTIZE_TYPES.iter().all(|t| quant::is_supported(*t)));
}

#[test]
fn sizes_that_do_not_match_are_refused() {
    let q4k = vec![0u8; 144 * 2];
    // One byte short, one too many.
    let short = quant::dequantize(GgmlType::Q4_K, &q4k[..287], 512).unwrap_err().to_string();
    assert!(short.contains("288") && short.contains("287") && short.contains("Q4_K"), "{short}");
    let long = vec![0u8; 289];
    assert!(quant::dequantize(GgmlType::Q4_K, &long, 512).is_err());
    // Elements that are not whole blocks.
    let partial = quant::dequantize(GgmlType::Q4_K, &q4k, 500).unwrap_err().to_string();
    assert!(
        partial.contains("500") && partial.contains("Q4_K") && partial.contains("256"),
        "{partial}"
    );
    let partial = quant::dequantize(GgmlType::Q8_0, &[0u8; 34], 33).unwrap_err().to_string();
    assert!(partial.contains("33") && partial.contains("Q8_0"), "{partial}");
    assert!(quant::dequantize(GgmlType::F16, &[0u8; 3], 2).is_err());
    let mut out = [0f32; 255];
    assert!(quant::dequantize_into(GgmlType::Q6_K, &[0u8; 210], &mut out).is_err());
    // An element count past what a usize holds refuses, not overflows.
    assert!(quant::dequantize(GgmlType::Q4_0, &[], usize::MAX - 31).is_err());
    // Nothing at all is zero blocks.
    assert_eq!(quant::dequantize(GgmlType::Q5_K, &[], 0).unwrap(), Vec::<f32>::new());
    // Quantizing a partial block.
    let err = quant::quantize(GgmlType::Q4_0, &[0.0; 40]).unwrap_err().to_string();
    assert!(err.contains("40") && err.contains("Q4_0"), "{err}");
}

#[test]
fn unsupported_types_are_refused_by_name() {
    let err = quant::dequantize(GgmlType::IQ2_XXS, &[0u8; 66], 256).unwrap_err().to_string();
    assert!(err.contains("IQ2_XXS") && err.contains("Q4_K"), "{err}");
    for &ty in GgmlType::ALL {
        if quant::is_supported(ty) {
            continue;
        }
        let (e, b) = (ty.block_elems() as usize, ty.block_bytes() as usize);
        let err = quant::dequantize(ty, &vec![0u8; b], e).unwrap_err().to_string();
        assert!(err.contains(ty.name()), "{ty}: {err}");
        let mut out = vec![0f32; e];
        assert!(quant::dequantize_into(ty, &vec![0u8; b], &mut out).is_err());
    }
    let err = quant::quantize(GgmlType::Q6_K, &[0.0; 256]).unwrap_err().to_string();
    assert!(err.contains("Q6_K") && err.contains("quantize"), "{err}");
    let err = quant::quantize(GgmlType::IQ4_NL, &[0.0; 32]).unwrap_err().to_string();
    assert!(err.contains("IQ4_NL"), "{err}");
}
