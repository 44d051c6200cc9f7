//! The safetensors shards of a HF folder: `model.safetensors.index.json` (name -> shard) or a
//! single `model.safetensors`. Opening checks that every shard the index names exists;
//! [`Weights::check`] checks every tensor's name, dtype and exact shape against the config from
//! the shards' headers alone; tensors are read one shard at a time, so the model is never twice
//! in host memory.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use visattn::dump::{Dtype, TensorFile};

use crate::config::LlavaConfig;
use crate::model::{Expected, canonical, expected};

/// What a shard's header says of one tensor.
struct Header {
    dtype: String,
    shape: Vec<usize>,
    bytes: u64,
}

/// The tensors a safetensors file's header lists (without reading their data), each checked
/// to fit the file: its offsets within the file and as long as its shape and dtype say.
fn read_header(path: &Path) -> Result<BTreeMap<String, Header>> {
    use std::io::Read;
    let err = |e: &dyn std::fmt::Display| Error::file(path, e);
    let mut file = std::fs::File::open(path).map_err(|e| err(&e))?;
    let size = file.metadata().map_err(|e| err(&e))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| err(&e))?;
    let len = u64::from_le_bytes(len);
    if len > (100 << 20).min(size.saturating_sub(8)) {
        return Err(err(&format!("a header of {len} bytes in a file of {size}")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|e| err(&e))?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| err(&e))?;
    let data = size - 8 - len;
    let mut out = BTreeMap::new();
    for (name, t) in header.as_object().ok_or_else(|| err(&"a header that is not an object"))? {
        if name == "__metadata__" {
            continue;
        }
        let bad = |why: &str| err(&format!("tensor {name}: {why}"));
        let dtype = t["dtype"].as_str().ok_or_else(|| bad("no dtype"))?.to_string();
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .and_then(|a| a.iter().map(|n| n.as_u64().map(|n| n as usize)).collect())
            .ok_or_else(|| bad("no shape"))?;
        let (Some(start), Some(end)) = (t["data_offsets"][0].as_u64(), t["data_offsets"][1].as_u64()) else {
            return Err(bad("no data offsets"));
        };
        let width = match dtype.as_str() {
            "F32" => 4,
            "F16" | "BF16" => 2,
            other => return Err(bad(&format!("dtype {other}, expected F32, F16 or BF16"))),
        };
        let bytes = shape.iter().try_fold(width as u64, |n, &x| n.checked_mul(x as u64));
        if start > end || end > data || bytes != Some(end - start) {
            return Err(bad(&format!(
                "offsets {start}..{end} of {data} data bytes for {shape:?} of {dtype}"
            )));
        }
        out.insert(
            name.clone(),
            Header {
                dtype,
                shape,
                bytes: end - start,
            },
        );
    }
    Ok(out)
}

pub struct Weights {
    /// Shard files in the index's order, and which tensors each holds.
    pub shards: Vec<(PathBuf, Vec<String>)>,
}

impl Weights {
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::Weights(format!("{}: {e}", index.display())))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Weights(format!("{}: {e}", index.display())))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::Weights(format!("{}: no weight_map", index.display())))?;
            for (name, shard) in map {
                let shard = shard
                    .as_str()
                    .ok_or_else(|| Error::Weights(format!("{}: shard of {name} is not a file name", index.display())))?;
                by_shard.entry(shard.to_string()).or_default().push(name.clone());
            }
        } else if dir.join("model.safetensors").exists() {
            // The header alone: the data is read once, when the weights are loaded.
            let names = read_header(&dir.join("model.safetensors"))?.into_keys().collect();
            by_shard.insert("model.safetensors".into(), names);
        } else {
            return Err(Error::Weights(format!(
                "{}: neither model.safetensors.index.json nor model.safetensors",
                dir.display()
            )));
        }
        let mut shards = Vec::new();
        for (file, mut names) in by_shard {
            let path = dir.join(&file);
            if !path.is_file() {
                return Err(Error::Weights(format!(
                    "{}: shard {file} is missing ({} tensors listed in it)",
                    dir.display(),
                    names.len()
                )));
            }
            names.sort();
            shards.push((path, names));
        }
        Ok(Self { shards })
    }

    /// Checks the folder against the model `cfg` describes, from the shards' headers alone
    /// (before anything is sized from the config): every tensor it implies is there with its
    /// exact shape in F32, F16 or BF16, and every tensor there is one it implies (a 6-layer
    /// folder is no 3-layer model). Returns the expected tensors by canonical name.
    pub fn check(&self, cfg: &LlavaConfig) -> Result<BTreeMap<String, Expected>> {
        let want = expected(cfg);
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (path, names) in &self.shards {
            let header = read_header(path)?;
            if let Some(extra) = header.keys().find(|n| !names.contains(n)) {
                return Err(Error::Weights(format!(
                    "{}: tensor {extra} is not in the index: the folder's index and shards disagree",
                    path.display()
                )));
            }
            for name in names {
                let h = header.get(name).ok_or_else(|| {
                    Error::Weights(format!(
                        "{}: tensor {name} is listed in the index but not in this shard",
                        path.display()
                    ))
                })?;
                let key = canonical(name);
                let e = want.get(&key).ok_or_else(|| {
                    Error::Weights(                    format!(
                        "{}: tensor {name} is not part of the model config.json describes ({} text layers, {} vision layers): a tensor it would not use",
                        path.display(),
                        cfg.text.layers,
                        cfg.vision.layers
                    )
                )
                })?;
                if h.shape != e.shape {
                    return Err(Error::Weights(format!(
                        "{}: tensor {name} is {:?}, config.json implies {:?}",
                        path.display(),
                        h.shape,
                        e.shape
                    )));
                }
                if let Some(other) = seen.insert(key, name.clone()) {
                    return Err(Error::Weights(format!(
                        "{}: tensors {other} and {name} are the same weight",
                        path.display()
                    )));
                }
            }
        }
        if let Some((name, e)) = want.iter().find(|(n, _)| !seen.contains_key(*n)) {
            return Err(Error::Weights(format!(
                "weights: tensor {name} ({:?}) is missing: config.json implies it",
                e.shape
            )));
        }
        Ok(want)
    }

    pub fn tensors(&self) -> usize {
        self.shards.iter().map(|(_, n)| n.len()).sum()
    }

    /// Calls `f(name, shape, values as f32)` for every tensor, one shard in memory at a time.
    pub fn for_each(&self, mut f: impl FnMut(&str, &[usize], Vec<f32>) -> Result<()>) -> Result<()> {
        self.for_each_stored(|name, dtype, shape, bytes| f(name, shape, crate::gpu::matrix::to_f32(name, dtype, bytes)?))
    }

    /// Calls `f(name, dtype, shape, bytes as stored)` for every tensor, one shard in memory at
    /// a time.
    pub fn for_each_stored(&self, mut f: impl FnMut(&str, Dtype, &[usize], &[u8]) -> Result<()>) -> Result<()> {
        for (path, names) in &self.shards {
            let file = TensorFile::open(path).map_err(|e| Error::Weights(format!("{}: {e}", path.display())))?;
            for name in names {
                let (dtype, shape, bytes) = file.raw(name).map_err(|e| Error::Weights(format!("{}: {e}", path.display())))?;
                f(name, dtype, &shape, bytes)?;
            }
        }
        Ok(())
    }

    /// The dtype most of the first shard's bytes are stored in (HF writes one throughout),
    /// from its header alone.
    pub fn stored_dtype(&self) -> Result<Dtype> {
        let path = &self.shards.first().ok_or_else(|| Error::Weights("no shards".into()))?.0;
        let mut by_dtype: BTreeMap<String, u64> = BTreeMap::new();
        for h in read_header(path)?.into_values() {
            *by_dtype.entry(h.dtype).or_default() += h.bytes;
        }
        match by_dtype.into_iter().max_by_key(|&(_, n)| n).map(|(d, _)| d).as_deref() {
            Some("F32") => Ok(Dtype::F32),
            Some("F16") => Ok(Dtype::F16),
            Some("BF16") => Ok(Dtype::BF16),
            other => Err(Error::Weights(format!(
                "{}: weights stored as {other:?}, expected F32, F16 or BF16",
                path.display()
            ))),
        }
    }
}
