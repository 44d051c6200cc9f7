//! The safetensors shards of a HF folder: `model.safetensors.index.json` (name -> shard) or a
//! single `model.safetensors`. Opening checks that every shard the index names exists; tensors
//! are read one shard at a time, so the model is never twice in host memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use visattn::dump::TensorFile;

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
        for (path, names) in &self.shards {
            let file = TensorFile::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for name in names {
                let t = file.f32(name).map_err(|e| format!("{}: {e}", path.display()))?;
                f(name, &t.shape, t.data)?;
            }
        }
        Ok(())
    }
}
