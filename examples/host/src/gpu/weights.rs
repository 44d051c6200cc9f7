//! The model's weights on the device, as the typed tree of [`crate::model`]: matrices in the
//! model's weight format, the rest f32. Two stores build it: [`Uploaded`] from a checked HF
//! folder, [`Random`] from nothing (benchmarks of shapes nobody stores).

use std::collections::HashMap;

use visattn::Context;
use visattn::wgpu::{self, Buffer};

use super::fill::Fill;
use super::linear::upload;
use super::matrix::{Matrix, WeightFormat};
use crate::config::LlavaConfig;
use crate::error::{Error, Result};
use crate::model::{Llava, Store, Tensors, TextModel, canonical};
use crate::weights::Weights;

/// A linear layer: W [out, in] in the weight format, and its bias where it has one.
pub struct Linear {
    pub weight: Matrix,
    pub bias: Option<Buffer>,
}

/// A norm's weight and, for a LayerNorm, its bias (RMSNorm has none).
pub struct Norm {
    pub weight: Buffer,
    pub bias: Option<Buffer>,
}

/// The tensor kinds of the GPU model.
pub struct Gpu;

impl Tensors for Gpu {
    type Linear = Linear;
    type Norm = Norm;
    type Table = Matrix;
    type Vector = Buffer;
}

impl TextModel<Gpu> {
    /// The language model's linear layers: the LM head, then each layer's six (gate and up
    /// stacked): what a decode step reads, and a prefill multiplies.
    pub fn linears(&self) -> Vec<&Linear> {
        let mut out = vec![&self.lm_head];
        for l in &self.layers {
            out.extend([&l.q, &l.k, &l.v, &l.o, &l.gate_up, &l.down]);
        }
        out
    }
}

impl Llava<Gpu> {
    /// Every weight matrix of the model: the tables and the linear layers' weights.
    pub fn matrices(&self) -> Vec<&Matrix> {
        let mut out = vec![&self.text.embed];
        out.extend(self.text.linears().into_iter().map(|l| &l.weight));
        if let Some((tower, projector)) = &self.vision {
            out.push(&tower.patch_embedding.weight);
            for l in &tower.layers {
                out.extend([&l.q, &l.k, &l.v, &l.out, &l.fc1, &l.fc2].map(|x| &x.weight));
            }
            out.extend([&projector.linear_1.weight, &projector.linear_2.weight]);
        }
        out
    }

    /// The linear layers' weight matrices (every matrix but the embedding table), to restage.
    pub fn linears_mut(&mut self) -> Vec<&mut Matrix> {
        let t = &mut self.text;
        let mut out = vec![&mut t.lm_head.weight];
        for l in &mut t.layers {
            out.extend([&mut l.q, &mut l.k, &mut l.v, &mut l.o, &mut l.gate_up, &mut l.down].map(|x| &mut x.weight));
        }
        if let Some((tower, projector)) = &mut self.vision {
            out.push(&mut tower.patch_embedding.weight);
            for l in &mut tower.layers {
                out.extend([&mut l.q, &mut l.k, &mut l.v, &mut l.out, &mut l.fc1, &mut l.fc2].map(|x| &mut x.weight));
            }
            out.extend([&mut projector.linear_1.weight, &mut projector.linear_2.weight]);
        }
        out
    }
}

impl Linear {
    /// `first`'s rows then `second`'s as one layer ([`Store::stack`], [`Matrix::stack`]):
    /// layers of the same input and no biases.
    pub fn stack((ctx, queue): (&Context, &wgpu::Queue), first: Linear, second: Linear, max_chunk: u64) -> Result<Linear> {
        if first.bias.is_some() || second.bias.is_some() {
            return Err(Error::Weights("stacked linear layers have no biases".into()));
        }
        Ok(Linear {
            weight: first.weight.stack(second.weight, ctx, queue, max_chunk)?,
            bias: None,
        })
    }

    pub fn out(&self) -> usize {
        self.weight.rows
    }
    pub fn inp(&self) -> usize {
        self.weight.cols
    }
}

/// Every tensor of a folder on the device, by canonical name, taken out one by one by the build.
pub struct Uploaded {
    mats: HashMap<String, Matrix>,
    vectors: HashMap<String, Buffer>,
    /// Where stacked layers are joined ([`Store::stack`]).
    ctx: Context,
    queue: wgpu::Queue,
    max_chunk: u64,
}

impl Uploaded {
    /// Uploads every tensor the forward pass reads, one shard in host memory at a time, after
    /// [`Weights::check`] held the folder to the config (names, exact shapes: nothing is copied
    /// from a tensor of the wrong length): matrices as `format` ([`WeightFormat::for_matrix`]:
    /// block formats quantize the language model's) in row chunks of at most
    /// `max_chunk` bytes, the rest as f32 (rounded to f16 values when `format` is f16, as a
    /// folder saved in f16 holds them), each scanned for NaN and infinities (named here, not
    /// found later as a NaN logit); `progress(done, total)` after each tensor.
    pub fn load(
        g: &visattn::util::Gpu,
        cfg: &LlavaConfig,
        weights: &Weights,
        format: WeightFormat,
        max_chunk: u64,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let want = weights.check(cfg)?;
        let total = weights.tensors();
        let mut done = 0;
        let (mut mats, mut vectors) = (HashMap::new(), HashMap::new());
        weights.for_each_stored(|name, dtype, shape, bytes| {
            let key = canonical(name);
            let e = want
                .get(&key)
                .ok_or_else(|| Error::Weights(format!("tensor {name} is not part of the model")))?;
            if shape != e.shape.as_slice() {
                return Err(Error::Weights(format!(
                    "tensor {name} is {shape:?}, config.json implies {:?}",
                    e.shape
                )));
            }
            if !e.used {
                // Checked, never read: not worth device memory.
            } else if e.matrix {
                let rows = shape[0];
                let cols = shape[1..].iter().product::<usize>();
                let kept = format.for_matrix(&key, cols, dtype, WeightFormat::f16_for(&g.device));
                let m = Matrix::upload(&g.ctx, &g.queue, name, (rows, cols), (dtype, bytes), kept, max_chunk)?;
                mats.insert(key, m);
            } else {
                let v: Vec<f32> = super::matrix::to_f32(name, dtype, bytes)?
                    .into_iter()
                    .map(|x| format.round(x))
                    .collect();
                vectors.insert(
                    key,
                    upload(&g.ctx, &g.queue, "weight", &v).map_err(|e| Error::Weights(format!("{name}: {e}")))?,
                );
            }
            done += 1;
            progress(done, total);
            Ok(())
        })?;
        Ok(Self {
            mats,
            vectors,
            ctx: g.ctx.clone(),
            queue: g.queue.clone(),
            max_chunk,
        })
    }

    fn matrix(&mut self, name: &str, shape: &[usize]) -> Result<Matrix> {
        let m = self
            .mats
            .remove(name)
            .ok_or_else(|| Error::Weights(format!("tensor {name} is missing")))?;
        let cols: usize = shape[1..].iter().product();
        if (m.rows, m.cols) != (shape[0], cols) {
            return Err(Error::Weights(format!(
                "tensor {name} is [{}, {}], the model needs {shape:?}",
                m.rows, m.cols
            )));
        }
        Ok(m)
    }

    fn take_vector(&mut self, name: &str, len: usize) -> Result<Buffer> {
        let b = self
            .vectors
            .remove(name)
            .ok_or_else(|| Error::Weights(format!("tensor {name} is missing")))?;
        if b.size() != (len * 4).max(4) as u64 {
            return Err(Error::Weights(format!(
                "tensor {name} has {} values, the model needs {len}",
                b.size() / 4
            )));
        }
        Ok(b)
    }

    /// After the build: every uploaded tensor went into the model.
    pub fn finish(self) -> Result<()> {
        match self.mats.keys().chain(self.vectors.keys()).next() {
            None => Ok(()),
            Some(name) => Err(Error::Weights(format!("tensor {name} was uploaded but the model does not read it"))),
        }
    }
}

impl Store<Gpu> for Uploaded {
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.matrix(&format!("{name}.weight"), shape)?,
            bias: bias.then(|| self.take_vector(&format!("{name}.bias"), shape[0])).transpose()?,
        })
    }
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<Norm> {
        Ok(Norm {
            weight: self.take_vector(&format!("{name}.weight"), dim)?,
            bias: bias.then(|| self.take_vector(&format!("{name}.bias"), dim)).transpose()?,
        })
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        self.matrix(name, &[rows, cols])
    }
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<Buffer> {
        self.take_vector(name, shape.iter().product())
    }
    fn unused(&mut self, _name: &str, _shape: &[usize]) -> Result<()> {
        // Checked against the folder by Weights::check, never uploaded.
        Ok(())
    }
    fn stack(&mut self, first: Linear, second: Linear) -> Result<Linear> {
        Linear::stack((&self.ctx, &self.queue), first, second, self.max_chunk)
    }
}

/// Random weights made on the device: matrices uniform with std 1/sqrt(fan-in), embedding
/// tables in [-1, 1), norm weights 1. One submission per matrix: the queue, not one encoder,
/// holds a 7B model's fills.
pub struct Random<'a> {
    pub g: &'a visattn::util::Gpu,
    pub fill: Fill,
    pub format: WeightFormat,
    pub max_chunk: u64,
    pub seed: u32,
    made: u32,
}

impl<'a> Random<'a> {
    pub fn new(g: &'a visattn::util::Gpu, format: WeightFormat, max_chunk: u64, seed: u32) -> Result<Self> {
        Ok(Self {
            g,
            fill: Fill::new(&g.ctx)?,
            format,
            max_chunk,
            seed,
            made: 0,
        })
    }

    fn matrix(&mut self, name: &str, (rows, cols): (usize, usize), scale: f32) -> Result<Matrix> {
        let seed = self.seed ^ self.made.wrapping_mul(0x9e37);
        self.made += 1;
        if let Some(ty) = self.format.block_type() {
            // Random blocks made on the CPU (a fill kernel per format is not worth it): scales
            // that give values of about the float formats' magnitude.
            let scale = scale / crate::random::quant_range(ty);
            let row_bytes = self.format.row_bytes(cols).unwrap_or(0);
            let per = ty.block_elems() as usize;
            return Matrix::upload_stored(
                &self.g.ctx,
                &self.g.queue,
                name,
                (rows, cols),
                (ty, self.format),
                self.max_chunk,
                |row0, n| {
                    let bytes = crate::random::random_blocks(ty, n * cols, scale, seed as u64 ^ (row0 as u64) << 20);
                    debug_assert_eq!(bytes.len(), n * row_bytes);
                    debug_assert!(cols.is_multiple_of(per));
                    Ok(bytes)
                },
            );
        }
        let mut enc = self.g.device.create_command_encoder(&Default::default());
        let m = Matrix::random(
            &self.fill,
            &mut enc.begin_compute_pass(&Default::default()),
            name,
            (rows, cols),
            self.format,
            self.max_chunk,
            (seed, scale),
        )?;
        self.g.queue.submit([enc.finish()]);
        Ok(m)
    }

    fn ones(&self, len: usize) -> Result<Buffer> {
        Ok(upload(&self.g.ctx, &self.g.queue, "weight", &vec![1f32; len])?)
    }
}

impl Store<Gpu> for Random<'_> {
    fn linear(&mut self, name: &str, shape: &[usize], bias: bool) -> Result<Linear> {
        if bias {
            return Err(Error::Weights(format!("{name}: random weights have no biases")));
        }
        let cols: usize = shape[1..].iter().product();
        Ok(Linear {
            weight: self.matrix(name, (shape[0], cols), (3.0 / cols as f32).sqrt())?,
            bias: None,
        })
    }
    fn norm(&mut self, name: &str, dim: usize, bias: bool) -> Result<Norm> {
        if bias {
            return Err(Error::Weights(format!("{name}: random weights have no LayerNorms")));
        }
        Ok(Norm {
            weight: self.ones(dim)?,
            bias: None,
        })
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        self.matrix(name, (rows, cols), 1.0)
    }
    fn vector(&mut self, name: &str, _shape: &[usize]) -> Result<Buffer> {
        Err(Error::Weights(format!("{name}: random weights are a language model only")))
    }
    fn unused(&mut self, _name: &str, _shape: &[usize]) -> Result<()> {
        Ok(())
    }
    fn stack(&mut self, first: Linear, second: Linear) -> Result<Linear> {
        Linear::stack((&self.g.ctx, &self.g.queue), first, second, self.max_chunk)
    }
}

/// A storage buffer of `floats` f32 for activations, also usable as a uniform and padded so
/// that the texture matmul can read a 64 KiB uniform tile from any of its rows
/// ([`super::linear::X_TILE_BYTES`]; not past the device's binding limit).
pub fn buffer(ctx: &Context, name: &'static str, floats: usize) -> Result<Buffer> {
    let bytes = (floats * 4) as u64;
    let padded = bytes + super::linear::X_TILE_BYTES;
    let size = if padded <= ctx.max_binding() { padded } else { bytes };
    Ok(ctx.storage_buffer(name, size, wgpu::BufferUsages::UNIFORM)?)
}
