//! The dump format (shared/docs/dump-format.md): one safetensors file per prompt holding HF's
//! `attentions.{l}` [H, Q, K] and `hidden_states.{l}` [T, D], plus string metadata.

use std::collections::HashMap;
use std::path::Path;

pub use safetensors::Dtype;
use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::io::output::StagedFile;
use crate::shape::AttnShape;
use crate::var::config::{LayerRole, PRESETS, VarConfig, preset};
use crate::var::visual::{ImageSpan, VisualTokens};

/// A tensor upcast to f32, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

use super::half::{bf16_to_f32, f16_to_f32};

/// The raw bytes of a safetensors file, parsed on demand.
pub struct TensorFile {
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
    names: Vec<String>,
}

impl TensorFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        Self::from_bytes(bytes)
    }

    /// Parses the header; refuses empty, truncated and malformed files and tensors whose
    /// declared extent disagrees with the file (the safetensors crate checks every offset).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Dump(format!("not a valid safetensors file: {e}")))?;
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::Dump(format!("bad header: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(Self { bytes, metadata, names })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }
    pub fn contains(&self, name: &str) -> bool {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
    }

    fn view(&self, name: &str) -> Result<safetensors::tensor::TensorView<'_>> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| Error::Dump(e.to_string()))?;
        st.tensor(name).map_err(|_| Error::Dump(format!("missing tensor '{name}'")))
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.view(name)?.shape().to_vec())
    }

    /// A float tensor (f32, f16 or bf16) upcast to f32. Non-finite values are refused.
    pub fn f32(&self, name: &str) -> Result<Tensor> {
        let v = self.view(name)?;
        let raw = v.data();
        let data: Vec<f32> = match v.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
            Dtype::BF16 => raw.chunks_exact(2).map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
            other => {
                return Err(Error::Dump(format!(
                    "tensor '{name}' has dtype {other:?}; expected f32, f16 or bf16"
                )));
            }
        };
        crate::var::check_finite(name, &data)?;
        Ok(Tensor {
            shape: v.shape().to_vec(),
            data,
        })
    }

    /// Refuses the file when any float tensor (f32, f16 or bf16), whatever its name, holds a NaN
    /// or an infinity, naming the tensor and the flat index (dump-format.md: a file with NaN or
    /// Inf anywhere is refused). Every front end runs it at open, so a tensor a run would not
    /// read (the hidden states of a layer that does not detect sinks) is refused all the same.
    /// One tensor is decoded at a time.
    pub fn check_finite(&self) -> Result<()> {
        for name in &self.names {
            if matches!(self.view(name)?.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                self.f32(name)?;
            }
        }
        Ok(())
    }

    /// A tensor as stored: its dtype, shape and little-endian bytes (no copy, no check).
    pub fn raw(&self, name: &str) -> Result<(Dtype, Vec<usize>, &[u8])> {
        let v = self.view(name)?;
        Ok((v.dtype(), v.shape().to_vec(), v.data()))
    }

    /// A u8 tensor (flags).
    pub fn u8(&self, name: &str) -> Result<(Vec<usize>, Vec<u8>)> {
        let v = self.view(name)?;
        if v.dtype() != Dtype::U8 {
            return Err(Error::Dump(format!("tensor '{name}' has dtype {:?}; expected u8", v.dtype())));
        }
        Ok((v.shape().to_vec(), v.data().to_vec()))
    }

    /// An i64 tensor (token ids, as HF writes them).
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let v = self.view(name)?;
        if v.dtype() != Dtype::I64 {
            return Err(Error::Dump(format!("tensor '{name}' has dtype {:?}; expected i64", v.dtype())));
        }
        let values = v
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        Ok((v.shape().to_vec(), values))
    }
}

/// Drops a leading batch axis of size 1; any other batch size is an error.
pub fn drop_batch(name: &str, mut shape: Vec<usize>, rank: usize) -> Result<Vec<usize>> {
    if shape.len() == rank + 1 {
        if shape[0] != 1 {
            return Err(Error::Dump(format!(
                "tensor '{name}' has batch size {}; a dump holds one sequence",
                shape[0]
            )));
        }
        shape.remove(0);
    }
    if shape.len() != rank {
        return Err(Error::Dump(format!("tensor '{name}' has shape {shape:?}; expected rank {rank}")));
    }
    Ok(shape)
}

/// Image spans from metadata: `image_spans` ("s:n,s:n") or `image_start` + `image_len`.
pub fn spans_from_metadata(meta: &HashMap<String, String>) -> Result<Option<Vec<ImageSpan>>> {
    let num = |key: &str, v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| Error::Dump(format!("metadata '{key}' = '{v}' is not a non-negative integer")))
    };
    if let Some(list) = meta.get("image_spans") {
        return parse_spans(list).map(Some);
    }
    match (meta.get("image_start"), meta.get("image_len")) {
        (Some(s), Some(n)) => Ok(Some(vec![ImageSpan::new(num("image_start", s)?, num("image_len", n)?)])),
        (None, None) => Ok(None),
        _ => Err(Error::Dump("metadata has only one of image_start / image_len".into())),
    }
}

/// D_sink as every front end (CLI, page) resolves it: `dims`, else `preset`, else the dump's
/// `model`; no default. A misspelt preset is an error even where `dims` makes it moot.
pub fn sink_dims_for(meta: &HashMap<String, String>, dims: Option<&[u32]>, preset_name: Option<&str>) -> Result<Vec<u32>> {
    if let Some(name) = preset_name {
        preset(name)?;
    }
    if let Some(dims) = dims {
        return Ok(dims.to_vec());
    }
    match preset_name.or(meta.get("model").map(String::as_str)) {
        Some(name) => Ok(preset(name)?.sink_dims.to_vec()),
        None => Err(Error::NoSinkDims {
            known: PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// The image spans: `given` ones, else the metadata's; none at all is an error.
pub fn image_spans(meta: &HashMap<String, String>, given: Option<Vec<ImageSpan>>) -> Result<Vec<ImageSpan>> {
    match given {
        Some(spans) => Ok(spans),
        None => spans_from_metadata(meta)?.ok_or_else(|| {
            Error::Dump("no image span: pass --image-start/--image-len or --image-spans, or set metadata image_start/image_len".into())
        }),
    }
}

/// The side of the square patch grid an image span is drawn on.
pub fn patch_grid(span: ImageSpan) -> Result<usize> {
    let grid = (span.len as f64).sqrt().round() as usize;
    if grid * grid != span.len {
        return Err(Error::Shape(format!(
            "the image span has {} tokens, not a square patch grid",
            span.len
        )));
    }
    Ok(grid)
}

/// Parses "start:len,start:len".
pub fn parse_spans(list: &str) -> Result<Vec<ImageSpan>> {
    list.split(',')
        .map(|item| {
            let (s, n) = item
                .split_once(':')
                .ok_or_else(|| Error::Dump(format!("image span '{item}' is not start:len")))?;
            let parse = |v: &str| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| Error::Dump(format!("image span '{item}' is not start:len")))
            };
            Ok(ImageSpan::new(parse(s)?, parse(n)?))
        })
        .collect()
}

pub use crate::var::{ROW_SUM_TOLERANCE_BF16, ROW_SUM_TOLERANCE_F16, ROW_SUM_TOLERANCE_F32, check_probabilities};

/// How far a row of probabilities stored as `dtype` may sum from 1 (None: not a float dtype).
pub fn row_sum_tolerance(dtype: Dtype) -> Option<f64> {
    match dtype {
        Dtype::F32 => Some(ROW_SUM_TOLERANCE_F32),
        Dtype::F16 => Some(ROW_SUM_TOLERANCE_F16),
        Dtype::BF16 => Some(ROW_SUM_TOLERANCE_BF16),
        _ => None,
    }
}

/// A dump opened and checked against dump-format.md: layers without gaps, one [H, Q, K] shape
/// for every layer, one [T, D] for every hidden state present, K = T, Q <= K, no NaN or Inf in
/// any float tensor, and every attention row a row of probabilities (no negative entry, a sum
/// within [`row_sum_tolerance`] of 1). Checked at open one tensor at a time, and values are
/// read again layer by layer, so a 32-layer dump is never all in memory.
pub struct Dump {
    pub file: TensorFile,
    pub layers: usize,
    pub attn: AttnShape,
    /// D, when any `hidden_states.{l}` (l < L) is present.
    pub hidden: Option<usize>,
}

fn layer_index(name: &str, prefix: &str) -> Option<Result<usize>> {
    let rest = name.strip_prefix(prefix)?;
    Some(
        rest.parse::<usize>()
            .ok()
            .filter(|i| i.to_string() == rest)
            .ok_or_else(|| Error::Dump(format!("tensor '{name}': '{rest}' is not a layer index"))),
    )
}

impl Dump {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(TensorFile::open(path)?)
    }

    pub fn from_file(file: TensorFile) -> Result<Self> {
        let layers = layer_count(&file, "attentions.").map_err(|e| match e {
            Error::Dump(m) if m.starts_with("no ") => Error::Dump("no 'attentions.{l}' tensors".into()),
            Error::Dump(m) => Error::Dump(m.replace("attentions.{l} are", "attentions are")),
            e => e,
        })?;
        let meta_usize = |key: &str| -> Result<Option<usize>> {
            file.metadata()
                .get(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| Error::Dump(format!("metadata '{key}' = '{v}' is not an integer")))
                })
                .transpose()
        };
        if let Some(n) = meta_usize("layers")? {
            if n != layers {
                return Err(Error::Dump(format!("metadata says {n} layers, the file has {layers} attentions")));
            }
        }
        let mut attn: Option<AttnShape> = None;
        for l in 0..layers {
            let name = format!("attentions.{l}");
            let s = drop_batch(&name, file.shape(&name)?, 3)?;
            let shape = AttnShape::new(s[0], s[1], s[2]).map_err(|e| Error::Dump(format!("{name}: {e}")))?;
            match attn {
                None => attn = Some(shape),
                Some(a) if a != shape => {
                    return Err(Error::Dump(format!(
                        "{name} has shape {s:?}, layer 0 has [{}, {}, {}]",
                        a.heads, a.queries, a.keys
                    )));
                }
                _ => {}
            }
        }
        let attn = attn.expect("at least one layer");
        let mut hidden = None;
        for name in file.names() {
            let Some(l) = layer_index(name, "hidden_states.") else { continue };
            if l? >= layers {
                continue; // HF's final output, hidden_states.{L}, is not used.
            }
            let s = drop_batch(name, file.shape(name)?, 2)?;
            if s[0] != attn.keys {
                return Err(Error::Dump(format!(
                    "{name} has {} tokens, attentions have K = {}",
                    s[0], attn.keys
                )));
            }
            if s[1] == 0 {
                return Err(Error::Dump(format!("{name} has hidden size 0")));
            }
            match hidden {
                None => hidden = Some(s[1]),
                Some(d) if d != s[1] => return Err(Error::Dump(format!("{name} has hidden size {}, others {d}", s[1]))),
                _ => {}
            }
        }
        if let Some(n) = meta_usize("heads")? {
            if n != attn.heads {
                return Err(Error::Dump(format!("metadata says {n} heads, attentions have {}", attn.heads)));
            }
        }
        if let (Some(n), Some(d)) = (meta_usize("hidden")?, hidden) {
            if n != d {
                return Err(Error::Dump(format!("metadata says hidden size {n}, hidden states have {d}")));
            }
        }
        file.check_finite()?;
        for l in 0..layers {
            let name = format!("attentions.{l}");
            let tolerance = row_sum_tolerance(file.view(&name)?.dtype()).unwrap_or(ROW_SUM_TOLERANCE_F32);
            check_probabilities(l, &file.f32(&name)?.data, attn, tolerance)?;
        }
        Ok(Self {
            file,
            layers,
            attn,
            hidden,
        })
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        self.file.metadata()
    }

    /// `attentions.{l}` as f32 [H, Q, K].
    pub fn attention(&self, layer: usize) -> Result<Vec<f32>> {
        Ok(self.file.f32(&format!("attentions.{layer}"))?.data)
    }

    /// `hidden_states.{l}` as f32 [T, D], when present.
    pub fn hidden_states(&self, layer: usize) -> Result<Option<Vec<f32>>> {
        let name = format!("hidden_states.{layer}");
        if !self.file.contains(&name) {
            return Ok(None);
        }
        Ok(Some(self.file.f32(&name)?.data))
    }

    /// The image: `given` spans, else the metadata's, checked against the dump's tokens. Every
    /// span counts (several images are one mask); none at all is an error.
    pub fn image(&self, given: Option<Vec<ImageSpan>>) -> Result<(Vec<ImageSpan>, VisualTokens)> {
        let spans = image_spans(self.metadata(), given)?;
        let visual = VisualTokens::from_spans(&spans, self.attn.keys)?;
        Ok((spans, visual))
    }

    /// The hidden size `cfg` runs at, after checking that every layer that detects sinks has
    /// its `hidden_states.{l}` (never zeros in their place) and that D_sink fits in it. A dump
    /// whose layers all stay off needs no hidden states (D = 1 then).
    pub fn hidden_for(&self, cfg: &VarConfig) -> Result<usize> {
        for l in (0..self.layers).filter(|&l| cfg.role(l, self.layers) != LayerRole::Off) {
            if !self.file.contains(&format!("hidden_states.{l}")) {
                return Err(Error::Dump(format!(
                    "hidden_states.{l} is missing: layer {l} detects sinks and needs it"
                )));
            }
        }
        let hidden = self.hidden.unwrap_or(1);
        cfg.validate_for(hidden, self.layers)?;
        Ok(hidden)
    }

    /// `hidden_states.{l}` where `cfg` detects sinks in layer l, `None` where the layer is off.
    pub fn layer_hidden(&self, cfg: &VarConfig, layer: usize) -> Result<Option<Vec<f32>>> {
        if cfg.role(layer, self.layers) == LayerRole::Off {
            return Ok(None);
        }
        self.hidden_states(layer)?.map(Some).ok_or_else(|| {
            Error::Dump(format!(
                "hidden_states.{layer} is missing: layer {layer} detects sinks and needs it"
            ))
        })
    }

    /// The token strings of metadata `tokens`, when present.
    pub fn tokens(&self) -> Option<Vec<String>> {
        self.metadata().get("tokens").map(|t| t.split(' ').map(String::from).collect())
    }
}

/// One layer of `apply`'s output.
pub struct LayerResult {
    pub attentions: Vec<f32>,
    pub phi: Vec<f32>,
    pub sinks: Vec<bool>,
    pub selected: Vec<bool>,
}

/// A tensor to write: f32 or u8 with its shape.
pub struct OutTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl OutTensor {
    /// Raw little-endian bytes of any dtype (e.g. f16 or bf16 dumps).
    pub fn raw(dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Self {
        Self {
            dtype,
            shape: shape.to_vec(),
            bytes,
        }
    }
    pub fn f32(shape: &[usize], data: &[f32]) -> Self {
        Self {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            bytes: bytemuck::cast_slice(data).to_vec(),
        }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn flags(shape: &[usize], data: &[bool]) -> Self {
        Self {
            dtype: Dtype::U8,
            shape: shape.to_vec(),
            bytes: data.iter().map(|&b| b as u8).collect(),
        }
    }
}

impl safetensors::View for &OutTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes named tensors and string metadata into a staged output ([`StagedFile`]: whole or
/// not at all, never over an input, a device or a directory), to be committed by the caller
/// once every output of its run exists.
pub fn stage_tensors(path: impl AsRef<Path>, tensors: &[(String, OutTensor)], metadata: HashMap<String, String>) -> Result<StagedFile> {
    let path = path.as_ref();
    StagedFile::write(path, |tmp| {
        safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata), tmp)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    })
}

/// [`stage_tensors`], committed at once.
pub fn write_tensors(path: impl AsRef<Path>, tensors: &[(String, OutTensor)], metadata: HashMap<String, String>) -> Result<()> {
    stage_tensors(path, tensors, metadata)?.commit()
}

/// The bytes of a safetensors file holding `tensors` (tests and tools that write dumps).
pub fn serialize_tensors(tensors: &[(String, OutTensor)], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata)).map_err(|e| Error::Dump(e.to_string()))
}

/// Stages `apply`'s tensors per dump-format.md (see [`stage_tensors`]).
pub fn stage_results(
    path: impl AsRef<Path>,
    attn: AttnShape,
    layers: &[LayerResult],
    metadata: HashMap<String, String>,
) -> Result<StagedFile> {
    let mut tensors = Vec::new();
    for (l, r) in layers.iter().enumerate() {
        tensors.push((
            format!("attentions.{l}"),
            OutTensor::f32(&[attn.heads, attn.queries, attn.keys], &r.attentions),
        ));
        tensors.push((format!("phi.{l}"), OutTensor::f32(&[attn.keys], &r.phi)));
        tensors.push((format!("sinks.{l}"), OutTensor::flags(&[attn.keys], &r.sinks)));
        tensors.push((format!("selected.{l}"), OutTensor::flags(&[attn.heads, attn.queries], &r.selected)));
    }
    stage_tensors(path, &tensors, metadata)
}

/// [`stage_results`], committed at once.
pub fn write_results(path: impl AsRef<Path>, attn: AttnShape, layers: &[LayerResult], metadata: HashMap<String, String>) -> Result<()> {
    stage_results(path, attn, layers, metadata)?.commit()
}

/// The layers of a file: the indices l of `{prefix}{l}` tensors, which must run 0..L-1.
pub fn layer_count(file: &TensorFile, prefix: &str) -> Result<usize> {
    let mut layers = Vec::new();
    for name in file.names() {
        if let Some(l) = layer_index(name, prefix) {
            layers.push(l?);
        }
    }
    layers.sort_unstable();
    if layers.is_empty() {
        return Err(Error::Dump(format!("no '{prefix}{{l}}' tensors")));
    }
    if let Some(gap) = (0..layers.len()).find(|&i| layers[i] != i) {
        return Err(Error::Dump(format!(
            "{prefix}{{l}} are not numbered 0..L-1: layer {gap} is missing"
        )));
    }
    Ok(layers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn spans_parse() {
        assert_eq!(
            parse_spans("5:64,100:2").unwrap(),
            vec![ImageSpan::new(5, 64), ImageSpan::new(100, 2)]
        );
        assert!(parse_spans("5-64").is_err());
        assert!(parse_spans("5:x").is_err());
    }
}
