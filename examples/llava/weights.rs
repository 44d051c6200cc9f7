//! The safetensors shards of a HF folder: `model.safetensors.index.json` (name -> shard) or a
//! single `model.safetensors`. Opening checks that every shard the index names exists; tensors
//! are read one shard at a time, so the model is never twice in host memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use visattn::dump::{Dtype, TensorFile};

pub struct Weights {
    /// Shard files in the index's order, and which tensors each holds.
    pub shards: Vec<(PathBuf, Vec<String>)>,
}

impl Weights {
    pub fn open(dir: &Path) -> Result<Self, String> {
        let index = dir.join("model.safetensors.index.json");
        let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| format!("{}: no weight_map", index.display()))?;
            for (name, shard) in map {
                let shard = shard
                    .as_str()
                    .ok_or_else(|| format!("{}: shard of {name} is not a file name", index.display()))?;
                by_shard.entry(shard.to_string()).or_default().push(name.clone());
            }
        } else if dir.join("model.safetensors").exists() {
            let file = TensorFile::open(dir.join("model.safetensors")).map_err(|e| format!("model.safetensors: {e}"))?;
            by_shard.insert("model.safetensors".into(), file.names().to_vec());
        } else {
            return Err(format!(
                "{}: neither model.safetensors.index.json nor model.safetensors",
                dir.display()
            ));
        }
        let mut shards = Vec::new();
        for (file, mut names) in by_shard {
            let path = dir.join(&file);
            if !path.is_file() {
                return Err(format!(
                    "{}: shard {file} is missing ({} tensors listed in it)",
                    dir.display(),
                    names.len()
                ));
            }
            names.sort();
            shards.push((path, names));
        }
        Ok(Self { shards })
    }

    pub fn tensors(&self) -> usize {
        self.shards.iter().map(|(_, n)| n.len()).sum()
    }

    /// Calls `f(name, shape, values as f32)` for every tensor, one shard in memory at a time.
    pub fn for_each(&self, mut f: impl FnMut(&str, &[usize], Vec<f32>) -> Result<(), String>) -> Result<(), String> {
        self.for_each_stored(|name, dtype, shape, bytes| f(name, shape, crate::gpu::matrix::to_f32(name, dtype, bytes)?))
    }

    /// Calls `f(name, dtype, shape, bytes as stored)` for every tensor, one shard in memory at
    /// a time.
    pub fn for_each_stored(&self, mut f: impl FnMut(&str, Dtype, &[usize], &[u8]) -> Result<(), String>) -> Result<(), String> {
        for (path, names) in &self.shards {
            let file = TensorFile::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for name in names {
                let (dtype, shape, bytes) = file.raw(name).map_err(|e| format!("{}: {e}", path.display()))?;
                f(name, dtype, &shape, bytes)?;
            }
        }
        Ok(())
    }

    /// The dtype most of the first shard's bytes are stored in (HF writes one throughout),
    /// from its header alone.
    pub fn stored_dtype(&self) -> Result<Dtype, String> {
        use std::io::Read;
        let path = &self.shards.first().ok_or("no shards")?.0;
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let mut file = std::fs::File::open(path).map_err(|e| err(&e))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| err(&e))?;
        let len = u64::from_le_bytes(len);
        if len > 100 << 20 {
            return Err(err(&format!("a header of {len} bytes")));
        }
        let mut header = vec![0u8; len as usize];
        file.read_exact(&mut header).map_err(|e| err(&e))?;
        let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| err(&e))?;
        let mut by_dtype: BTreeMap<String, u64> = BTreeMap::new();
        for (name, t) in header.as_object().ok_or_else(|| err(&"a header that is not an object"))? {
            if name == "__metadata__" {
                continue;
            }
            let (Some(dtype), Some([a, b])) = (t["dtype"].as_str(), t["data_offsets"].as_array().map(|v| v.as_slice())) else {
                return Err(err(&format!("tensor {name} has no dtype or offsets")));
            };
            *by_dtype.entry(dtype.to_string()).or_default() += b.as_u64().unwrap_or(0).saturating_sub(a.as_u64().unwrap_or(0));
        }
        match by_dtype.into_iter().max_by_key(|&(_, n)| n).map(|(d, _)| d).as_deref() {
            Some("F32") => Ok(Dtype::F32),
            Some("F16") => Ok(Dtype::F16),
            Some("BF16") => Ok(Dtype::BF16),
            other => Err(err(&format!("weights stored as {other:?}, expected F32, F16 or BF16"))),
        }
    }
}
