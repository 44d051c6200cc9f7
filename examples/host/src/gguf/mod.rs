//! GGUF files (llama.cpp's model format, versions 2 and 3): the header, the metadata and the
//! tensor infos read and checked at [`GgufFile::open`], each tensor's bytes read on demand
//! ([`GgufFile::read_tensor`]: seek and read, so a model is never twice in host memory).
//!
//! The layout (little-endian; gguf-py's `gguf_reader.py` is the reference):
//!
//! ```text
//! "GGUF" | u32 version | u64 tensor count | u64 metadata count
//! metadata pairs:  string key | u32 value type | value
//!                  (string = u64 length + UTF-8 bytes; array = u32 element type + u64 count
//!                  + elements, arrays of arrays allowed)
//! tensor infos:    string name | u32 n_dims (<= 4) | u64 dims[n_dims], innermost first
//!                  | u32 ggml type | u64 offset in the data section
//! padding to `general.alignment` (a UINT32 power of two, 32 when absent)
//! data section:    each tensor at its offset, a multiple of the alignment
//! ```
//!
//! A hostile file is one clear [`Error::Gguf`], never a panic nor a large allocation: every
//! count and length is checked against the bytes the file has left before anything is
//! allocated for it; a version other than 2 or 3, a type id ggml does not define, an empty,
//! non-UTF-8 or duplicate key or tensor name, a tensor name of 64 bytes or more (ggml's
//! GGML_MAX_NAME), more than 4 dims, a dim over i64::MAX, an element count or byte size that
//! overflows, an innermost dim that is not a whole number of blocks, a misaligned offset, a
//! tensor past the end of the file and two tensors that overlap are each refused, naming the
//! key or tensor. Arrays nest at most [`MAX_ARRAY_DEPTH`] deep.

pub mod model;
pub mod quant;
pub mod tokenizer;
pub mod types;
pub mod vision;

pub use types::GgmlType;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The data section's alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The most dims a tensor has (GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;
/// Tensor names are shorter than this many bytes (GGML_MAX_NAME).
pub const MAX_NAME: usize = 64;
/// The deepest nesting of arrays in metadata (an array of arrays of ... of scalars).
pub const MAX_ARRAY_DEPTH: u32 = 8;

/// A metadata value's type id, as the file stores it (gguf-py's `GGUFValueType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    /// The type of id `id`, if GGUF defines one.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.get(id as usize).copied()
    }

    /// The id the file stores.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// gguf-py's name: "UINT8", "FLOAT32", "STRING", "ARRAY"...
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "UINT8",
            ValueType::I8 => "INT8",
            ValueType::U16 => "UINT16",
            ValueType::I16 => "INT16",
            ValueType::U32 => "UINT32",
            ValueType::I32 => "INT32",
            ValueType::F32 => "FLOAT32",
            ValueType::Bool => "BOOL",
            ValueType::String => "STRING",
            ValueType::Array => "ARRAY",
            ValueType::U64 => "UINT64",
            ValueType::I64 => "INT64",
            ValueType::F64 => "FLOAT64",
        }
    }

    /// The fewest bytes a value of this type takes in the file (a string its length, an array
    /// its element type and count).
    fn min_bytes(self) -> u64 {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// An array, stored by element type.
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The type as errors name it: "UINT32", "ARRAY[STRING]".
    pub fn type_name(&self) -> String {
        match self {
            Value::Array(a) => a.type_name(),
            v => v.value_type().name().to_string(),
        }
    }

    /// An integer of any width or signedness that is >= 0.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            _ => self.as_i64().and_then(|v| u64::try_from(v).ok()),
        }
    }

    /// An integer of any width or signedness that fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// An integer of any width that fits a u32.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// An integer of any width that fits an i32.
    pub fn as_i32(&self) -> Option<i32> {
        self.as_i64().and_then(|v| i32::try_from(v).ok())
    }

    /// A FLOAT64, or a FLOAT32 widened.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A FLOAT32, or a FLOAT64 rounded to f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short rendering for errors: the value, or an array's length.
    fn brief(&self) -> String {
        match self {
            Value::String(s) if s.len() > 40 => format!("{:?}...", s.chars().take(40).collect::<String>()),
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => format!("of {} elements", a.len()),
            Value::U8(v) => v.to_string(),
            Value::I8(v) => v.to_string(),
            Value::U16(v) => v.to_string(),
            Value::I16(v) => v.to_string(),
            Value::U32(v) => v.to_string(),
            Value::I32(v) => v.to_string(),
            Value::F32(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
        }
    }
}

/// A metadata array: its elements by type, as compact as the file stores them (an array of
/// a million UINT8 is a million bytes, not a million [`Value`]s). An array of arrays holds
/// arrays of any element types.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

/// `$e` with `$v` bound to the elements of whichever variant `$a` is.
macro_rules! each_array {
    ($a:expr, $v:ident => $e:expr) => {
        match $a {
            Array::U8($v) => $e,
            Array::I8($v) => $e,
            Array::U16($v) => $e,
            Array::I16($v) => $e,
            Array::U32($v) => $e,
            Array::I32($v) => $e,
            Array::F32($v) => $e,
            Array::Bool($v) => $e,
            Array::String($v) => $e,
            Array::Array($v) => $e,
            Array::U64($v) => $e,
            Array::I64($v) => $e,
            Array::F64($v) => $e,
        }
    };
}

impl Array {
    /// The type every element has.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    /// "ARRAY[INT32]".
    pub fn type_name(&self) -> String {
        format!("ARRAY[{}]", self.elem_type())
    }

    pub fn len(&self) -> usize {
        each_array!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a [`Value`] (copied; an inner array cloned).
    pub fn get(&self, i: usize) -> Option<Value> {
        Some(match self {
            Array::U8(v) => Value::U8(*v.get(i)?),
            Array::I8(v) => Value::I8(*v.get(i)?),
            Array::U16(v) => Value::U16(*v.get(i)?),
            Array::I16(v) => Value::I16(*v.get(i)?),
            Array::U32(v) => Value::U32(*v.get(i)?),
            Array::I32(v) => Value::I32(*v.get(i)?),
            Array::F32(v) => Value::F32(*v.get(i)?),
            Array::Bool(v) => Value::Bool(*v.get(i)?),
            Array::String(v) => Value::String(v.get(i)?.clone()),
            Array::Array(v) => Value::Array(v.get(i)?.clone()),
            Array::U64(v) => Value::U64(*v.get(i)?),
            Array::I64(v) => Value::I64(*v.get(i)?),
            Array::F64(v) => Value::F64(*v.get(i)?),
        })
    }

    /// The elements as [`Value`]s (copied).
    pub fn values(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("in range"))
    }

    /// The elements of an ARRAY[STRING].
    pub fn as_strs(&self) -> Option<&[String]> {
        match self {
            Array::String(v) => Some(v),
            _ => None,
        }
    }

    /// The elements of an array of arrays.
    pub fn as_arrays(&self) -> Option<&[Array]> {
        match self {
            Array::Array(v) => Some(v),
            _ => None,
        }
    }

    /// Every element as `f` reads it, or `None` when one is not what `f` takes.
    fn map<T>(&self, f: impl Fn(&Value) -> Option<T>) -> Option<Vec<T>> {
        match self {
            Array::String(_) | Array::Array(_) | Array::Bool(_) => None,
            _ => self.values().map(|v| f(&v)).collect(),
        }
    }
}

/// The metadata pairs in the file's order, looked up by key. The typed getters (`get_u32`,
/// `get_str`...) are an error naming the key when it is missing, and naming the key, the type
/// found and the value when it is not what they return; the integer getters take any integer
/// type whose value fits (a UINT32 as `get_u64`, an INT32 >= 0 as `get_u32`).
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys in the file's order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The pairs in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// `key`'s value as `f` reads it; `want` names what `f` takes, for the error.
    fn typed<'a, T>(&'a self, key: &str, want: &str, f: impl FnOnce(&'a Value) -> Option<T>) -> Result<T> {
        let v = self
            .get(key)
            .ok_or_else(|| Error::Gguf(format!("GGUF metadata {key} is missing")))?;
        f(v).ok_or_else(|| Error::Gguf(format!("GGUF metadata {key} is {} {}, expected {want}", v.type_name(), v.brief())))
    }

    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.typed(key, "an integer that fits a u32", Value::as_u32)
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.typed(key, "an integer >= 0", Value::as_u64)
    }

    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.typed(key, "an integer that fits an i32", Value::as_i32)
    }

    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.typed(key, "an integer that fits an i64", Value::as_i64)
    }

    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.typed(key, "FLOAT32 or FLOAT64", Value::as_f32)
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.typed(key, "FLOAT32 or FLOAT64", Value::as_f64)
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.typed(key, "BOOL", Value::as_bool)
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.typed(key, "STRING", Value::as_str)
    }

    /// An array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&Array> {
        self.typed(key, "ARRAY", Value::as_array)
    }

    /// An ARRAY[STRING] (a vocabulary, merges).
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        self.typed(key, "ARRAY[STRING]", |v| v.as_array()?.as_strs())
    }

    /// An ARRAY[FLOAT32] (or FLOAT64, rounded).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.typed(key, "ARRAY[FLOAT32]", |v| match v.as_array()? {
            Array::F32(x) => Some(x.clone()),
            Array::F64(x) => Some(x.iter().map(|&x| x as f32).collect()),
            _ => None,
        })
    }

    /// An array of integers of any type that each fit an i32 (INT32 as llama.cpp writes token
    /// types).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.typed(key, "an ARRAY of integers that fit an i32", |v| v.as_array()?.map(Value::as_i32))
    }

    /// An array of integers of any type that each fit a u32.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>> {
        self.typed(key, "an ARRAY of integers that fit a u32", |v| v.as_array()?.map(Value::as_u32))
    }
}

/// One tensor of the file, checked at open: its bytes lie within the file, at an aligned
/// offset, overlapping no other tensor's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Row-major, outermost first, as the rest of the host shapes tensors: GGUF lists dims
    /// innermost first (ggml's ne[0] is the contiguous one), this is that list reversed. A
    /// linear layer's weight of `[out, in]` (HF's shape) is stored as ne = [in, out]. Empty for
    /// a tensor stored with 0 dims (a scalar).
    pub shape: Vec<usize>,
    pub ggml_type: GgmlType,
    /// The product of the dims.
    pub elements: u64,
    /// The bytes the data takes: elements / block_elems * block_bytes.
    pub bytes: u64,
    /// The offset as the file stores it, from the start of the data section.
    pub offset: u64,
    /// Where the data starts in the file (the data section's start + `offset`).
    pub file_offset: u64,
}

impl TensorInfo {
    /// GGUF's dims, innermost first (ggml's ne).
    pub fn ggml_dims(&self) -> Vec<u64> {
        self.shape.iter().rev().map(|&d| d as u64).collect()
    }

    /// The innermost dim (elements per row), 1 for a scalar.
    pub fn row_elems(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// The number of rows: the product of the outer dims.
    pub fn rows(&self) -> usize {
        self.shape.iter().rev().skip(1).product()
    }
}

/// An open GGUF file: its header, metadata and tensor infos in memory, the tensor data on
/// disk until [`GgufFile::read_tensor`] reads it.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    file: Mutex<File>,
    size: u64,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

impl GgufFile {
    /// Reads and checks the header, the metadata and the tensor infos (not the data).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let err = |e: String| Error::Gguf(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(|e| err(e.to_string()))?;
        let size = file.metadata().map_err(|e| err(e.to_string()))?.len();
        let parsed = parse(&mut BufReader::with_capacity(1 << 16, &file), size).map_err(err)?;
        let by_name = parsed.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            size,
            version: parsed.version,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            by_name,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the data section starts in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The file's size in bytes when it was opened.
    pub fn file_size(&self) -> u64 {
        self.size
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The tensors in the file's order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// `name`'s info, or an error naming the tensor and the file.
    pub fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| self.error(format!("no tensor {name} ({} tensors)", self.tensors.len())))
    }

    fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::Gguf(format!("{}: {reason}", self.path.display()))
    }

    /// The tensor's bytes as stored (`info.bytes` of them), read from the file.
    pub fn read_tensor(&self, info: &TensorInfo) -> Result<Vec<u8>> {
        let len = self.checked_len(info)?;
        let mut out = vec![0u8; len];
        self.read_tensor_into(info, &mut out)?;
        Ok(out)
    }

    /// The tensor's bytes into `out`, which must be exactly `info.bytes` long.
    pub fn read_tensor_into(&self, info: &TensorInfo, out: &mut [u8]) -> Result<()> {
        let len = self.checked_len(info)?;
        if out.len() != len {
            return Err(self.error(format!("tensor {}: {} bytes asked into a buffer of {}", info.name, len, out.len())));
        }
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.seek(SeekFrom::Start(info.file_offset))
            .and_then(|_| file.read_exact(out))
            .map_err(|e| {
                self.error(format!(
                    "tensor {}: reading {} bytes at {}: {e}",
                    info.name, info.bytes, info.file_offset
                ))
            })
    }

    /// `info.bytes` as a usize, once `info` is known to be one of this file's tensors (not one
    /// made up or from another file, whose size nothing checked).
    fn checked_len(&self, info: &TensorInfo) -> Result<usize> {
        if self.tensor(&info.name) != Some(info) {
            return Err(self.error(format!("tensor {} is not this file's", info.name)));
        }
        usize::try_from(info.bytes).map_err(|_| self.error(format!("tensor {}: {} bytes do not fit in memory", info.name, info.bytes)))
    }
}

/// What [`parse`] finds.
struct Parsed {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
}

/// A reader of the header that knows how many bytes the file has left, so that nothing is
/// allocated for a length or count the file cannot hold. Its errors are messages; the caller
/// names the file.
struct Cursor<'a, R> {
    r: &'a mut R,
    pos: u64,
    size: u64,
}

type Res<T> = std::result::Result<T, String>;

impl<R: Read> Cursor<'_, R> {
    fn left(&self) -> u64 {
        self.size - self.pos
    }

    /// Fails unless `n` more bytes are in the file.
    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Res<()> {
        if n > self.left() {
            return Err(format!(
                "{}: {n} bytes at offset {}, only {} left in the file of {}",
                what(),
                self.pos,
                self.left(),
                self.size
            ));
        }
        Ok(())
    }

    fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Res<Vec<u8>> {
        self.need(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| format!("{}: reading {n} bytes at offset {}: {e}", what(), self.pos))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Res<[u8; N]> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| format!("{}: reading {N} bytes at offset {}: {e}", what(), self.pos))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Res<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Res<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A u64 length and that many bytes of UTF-8.
    fn string(&mut self, what: &dyn Fn() -> String) -> Res<String> {
        let at = self.pos;
        let len = self.u64(&|| format!("{} (its length)", what()))?;
        if len > self.left() {
            return Err(format!(
                "{}: a string of {len} bytes at offset {at}, only {} left in the file",
                what(),
                self.left()
            ));
        }
        let bytes = self.bytes(len, what)?;
        String::from_utf8(bytes).map_err(|e| format!("{}: a string at offset {at} that is not UTF-8 ({e})", what()))
    }

    /// A value of type `ty`; `depth` arrays deep.
    fn value(&mut self, ty: ValueType, depth: u32, what: &dyn Fn() -> String) -> Res<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let at = self.pos;
                match self.array::<1>(what)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => return Err(format!("{}: a BOOL of byte {b} at offset {at}, not 0 or 1", what())),
                }
            }
            ValueType::String => Value::String(self.string(what)?),
            ValueType::Array => Value::Array(self.array_value(depth, what)?),
        })
    }

    /// An array's element type, count and elements; `depth` arrays deep.
    fn array_value(&mut self, depth: u32, what: &dyn Fn() -> String) -> Res<Array> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(format!("{}: arrays nested more than {MAX_ARRAY_DEPTH} deep", what()));
        }
        let at = self.pos;
        let id = self.u32(&|| format!("{} (array element type)", what()))?;
        let elem = ValueType::from_id(id).ok_or_else(|| format!("{}: an array of unknown value type {id} at offset {at}", what()))?;
        let count = self.u64(&|| format!("{} (array length)", what()))?;
        let fits = count.checked_mul(elem.min_bytes()).filter(|&n| n <= self.left());
        let Some(bytes) = fits else {
            return Err(format!(
                "{}: an array of {count} {elem} at offset {at}, which cannot fit in the {} bytes left in the file",
                what(),
                self.left()
            ));
        };
        // Fixed-size elements: read at once (no more than the file holds), then converted.
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                let raw = self.bytes(bytes, what)?;
                Array::$variant(
                    raw.chunks_exact(size_of::<$t>())
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of the type's size")))
                        .collect(),
                )
            }};
        }
        Ok(match elem {
            ValueType::U8 => Array::U8(self.bytes(bytes, what)?),
            ValueType::I8 => fixed!(I8, i8),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => {
                let raw = self.bytes(bytes, what)?;
                let bools = raw.iter().map(|&b| (b <= 1).then_some(b == 1)).collect::<Option<Vec<_>>>();
                Array::Bool(bools.ok_or_else(|| {
                    let i = raw.iter().position(|&b| b > 1).unwrap_or(0);
                    format!(
                        "{}[{i}]: a BOOL of byte {} at offset {}, not 0 or 1",
                        what(),
                        raw[i],
                        at + 12 + i as u64
                    )
                })?)
            }
            // Each element takes 8 bytes of the file at least (a string's length, an inner
            // array's type and count 12): what is allocated here is bounded by the file.
            ValueType::String => {
                let mut items = Vec::with_capacity(count as usize);
                for i in 0..count {
                    items.push(self.string(&|| format!("{}[{i}]", what()))?);
                }
                Array::String(items)
            }
            ValueType::Array => {
                let mut items = Vec::with_capacity(count as usize);
                for i in 0..count {
                    items.push(self.array_value(depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                Array::Array(items)
            }
        })
    }
}

/// The fewest bytes a metadata pair takes: key length, a 1-byte key, type, a 1-byte value.
const MIN_PAIR_BYTES: u64 = 8 + 1 + 4 + 1;
/// The fewest bytes a tensor info takes: name length, a 1-byte name, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 4 + 8;

fn parse<R: Read>(r: &mut R, size: u64) -> Res<Parsed> {
    let mut c = Cursor { r, pos: 0, size };
    let magic = c.array::<4>(&|| "magic".into())?;
    if &magic != b"GGUF" {
        return Err(format!("not a GGUF file: it starts with {magic:02x?}, not \"GGUF\""));
    }
    let version = c.u32(&|| "version".into())?;
    match version {
        2 | 3 => {}
        1 => return Err("GGUF version 1 (32-bit counts, 2023) is not read: convert the file to version 3".into()),
        v if v & 0xffff == 0 => {
            return Err(format!(
                "GGUF version {v} read little-endian ({} big-endian): big-endian files are not read",
                v.swap_bytes()
            ));
        }
        v => return Err(format!("GGUF version {v} is not read (versions 2 and 3 are)")),
    }
    let tensor_count = c.u64(&|| "tensor count".into())?;
    let kv_count = c.u64(&|| "metadata count".into())?;
    for (count, what, min) in [
        (kv_count, "metadata pairs", MIN_PAIR_BYTES),
        (tensor_count, "tensors", MIN_TENSOR_INFO_BYTES),
    ] {
        if count.checked_mul(min).is_none_or(|n| n > c.left()) {
            return Err(format!(
                "{count} {what} cannot fit in the {} bytes after the header ({min} bytes each at least)",
                c.left()
            ));
        }
    }

    let mut metadata = Metadata::default();
    for i in 0..kv_count {
        let at = c.pos;
        let key = c.string(&|| format!("metadata pair {i}: key"))?;
        if key.is_empty() {
            return Err(format!("metadata pair {i} at offset {at}: an empty key"));
        }
        if metadata.contains(&key) {
            return Err(format!("metadata key {key} appears twice (again at offset {at})"));
        }
        let what = || format!("metadata {key}");
        let type_at = c.pos;
        let id = c.u32(&what)?;
        let ty = ValueType::from_id(id).ok_or_else(|| format!("metadata {key}: unknown value type {id} at offset {type_at}"))?;
        let value = c.value(ty, 0, &what)?;
        metadata.index.insert(key.clone(), metadata.entries.len());
        metadata.entries.push((key, value));
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(&Value::U32(a)) if a.is_power_of_two() => a.into(),
        Some(v) => {
            return Err(format!(
                "general.alignment is {} {}, expected a UINT32 power of two",
                v.type_name(),
                v.brief()
            ));
        }
    };

    let mut tensors = Vec::new();
    let mut names = std::collections::HashSet::new();
    for i in 0..tensor_count {
        let at = c.pos;
        let name = c.string(&|| format!("tensor {i}: name"))?;
        if name.is_empty() {
            return Err(format!("tensor {i} at offset {at}: an empty name"));
        }
        if name.len() >= MAX_NAME {
            return Err(format!(
                "tensor {i} at offset {at}: a name of {} bytes, ggml takes {} at most ({:?}...)",
                name.len(),
                MAX_NAME - 1,
                name.chars().take(40).collect::<String>()
            ));
        }
        if !names.insert(name.clone()) {
            return Err(format!("tensor {name} appears twice (again at offset {at})"));
        }
        let what = || format!("tensor {name}");
        let n_dims = c.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(format!("tensor {name}: {n_dims} dims, ggml has {MAX_DIMS} at most"));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(&what)?);
        }
        let type_id = c.u32(&what)?;
        let ggml_type = GgmlType::from_id(type_id).map_err(|e| format!("tensor {name}: {}", gguf_reason(e)))?;
        let offset = c.u64(&what)?;

        if let Some(d) = dims.iter().find(|&&d| d > i64::MAX as u64) {
            return Err(format!("tensor {name}: dim {d} of {dims:?} is over i64::MAX"));
        }
        let elements = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| format!("tensor {name}: dims {dims:?} have more than i64::MAX elements"))?;
        let inner = dims.first().copied().unwrap_or(1);
        if !inner.is_multiple_of(ggml_type.block_elems()) {
            return Err(format!(
                "tensor {name}: {ggml_type} of dims {dims:?} (innermost first): the innermost dim {inner} is not a multiple of the block of {}",
                ggml_type.block_elems()
            ));
        }
        let bytes = ggml_type
            .bytes_for(elements)
            .ok_or_else(|| format!("tensor {name}: {ggml_type} of dims {dims:?}: the size in bytes overflows"))?;
        if !offset.is_multiple_of(alignment) {
            return Err(format!(
                "tensor {name}: offset {offset} is not a multiple of the alignment {alignment}"
            ));
        }
        let shape = dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| format!("tensor {name}: dims {dims:?} do not fit this machine's usize"))?;
        tensors.push(TensorInfo {
            name,
            shape,
            ggml_type,
            elements,
            bytes,
            offset,
            file_offset: 0,
        });
    }

    // The data section starts at the next multiple of the alignment (no padding is needed
    // when there are no tensors: llama.cpp's writer leaves none).
    let header_end = c.pos;
    let data_offset = header_end
        .div_ceil(alignment)
        .checked_mul(alignment)
        .ok_or_else(|| format!("the data section's start past {header_end} overflows"))?;
    if !tensors.is_empty() && data_offset > size {
        return Err(format!(
            "the data section would start at {data_offset} (the header ends at {header_end}, alignment {alignment}), past the end of the file of {size} bytes"
        ));
    }
    for t in &mut tensors {
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|start| Some((start, start.checked_add(t.bytes)?)));
        match end {
            Some((start, end)) if end <= size => t.file_offset = start,
            _ => {
                return Err(format!(
                    "tensor {}: {} bytes at offset {} of the data section (which starts at {data_offset}) run past the end of the file of {size} bytes",
                    t.name, t.bytes, t.offset
                ));
            }
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| (t.offset, t.bytes));
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.offset + a.bytes > b.offset {
            return Err(format!(
                "tensors {} (bytes {}..{} of the data section) and {} ({}..{}) overlap",
                a.name,
                a.offset,
                a.offset + a.bytes,
                b.name,
                b.offset,
                b.offset + b.bytes
            ));
        }
    }
    Ok(Parsed {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}

/// The message of an [`Error::Gguf`] (the types module's errors), for wrapping.
fn gguf_reason(e: Error) -> String {
    match e {
        Error::Gguf(s) => s,
        e => e.to_string(),
    }
}
