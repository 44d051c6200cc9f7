//! Weight matrices on the device: f32, or f16 (read as `f16` where the adapter has
//! SHADER_F16, as packed u32 pairs where not), in row chunks that each fit one storage binding
//! (LLaMA-7B's 32000 x 4096 embedding is 262 MB in f16, twice WebGPU's 128 MiB per binding).

use crate::error::{Error, Result};
use visattn::Context;
use visattn::dump::Dtype;
use visattn::half::{bf16_to_f32, f16_to_f32, f32_to_f16};
use visattn::wgpu::{self, Buffer, BufferUsages};

/// How the host keeps its weights on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    F32,
    /// f16 storage, `array<f16>` in the kernels (Features::SHADER_F16).
    F16,
    /// f16 storage read as `array<u32>` pairs through unpack2x16float: the same bytes, for
    /// adapters without SHADER_F16 (WebGPU without shader-f16, GL).
    F16Packed,
}

impl WeightFormat {
    /// `auto` is f16 for a folder stored in f16 or bf16 (the native kernel where the device
    /// has SHADER_F16), f32 for an f32 folder.
    pub fn choose(flag: &str, stored: Dtype, device: &wgpu::Device) -> Result<Self> {
        let f16 = if device.features().contains(wgpu::Features::SHADER_F16) {
            Self::F16
        } else {
            Self::F16Packed
        };
        match flag {
            "auto" if stored == Dtype::F32 => Ok(Self::F32),
            "auto" | "f16" => Ok(f16),
            "f32" => Ok(Self::F32),
            "f16-packed" => Ok(Self::F16Packed),
            other => Err(Error::Weights(format!("--dtype {other}: expected auto, f32, f16 or f16-packed"))),
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::F16Packed => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::F16Packed => "f16 (packed u32)",
        }
    }

    /// A value as this format stores it (f16 formats round to the nearest f16).
    pub fn round(self, x: f32) -> f32 {
        match self {
            Self::F32 => x,
            Self::F16 | Self::F16Packed => f16_to_f32(f32_to_f16(x)),
        }
    }
}

/// `impl From<WeightFormat>` for the variant enum of a kernel declared once per weight format
/// (variants `F32`, `F16`, `Packed`: the matmul and the embedding lookup).
macro_rules! variant_per_format {
    ($variant:ty) => {
        impl From<$crate::gpu::matrix::WeightFormat> for $variant {
            fn from(f: $crate::gpu::matrix::WeightFormat) -> Self {
                match f {
                    $crate::gpu::matrix::WeightFormat::F32 => Self::F32,
                    $crate::gpu::matrix::WeightFormat::F16 => Self::F16,
                    $crate::gpu::matrix::WeightFormat::F16Packed => Self::Packed,
                }
            }
        }
    };
}
pub(crate) use variant_per_format;

/// The f32 values of a stored float tensor.
pub fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let v: Vec<f32> = match dtype {
        Dtype::F32 => bytemuck::pod_collect_to_vec(bytes),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        other => return Err(Error::Weights(format!("{name}: dtype {other:?}, expected f32, f16 or bf16"))),
    };
    visattn::check_finite(name, &v)?;
    Ok(v)
}

/// Refuses a NaN or an infinity in f32 or f16 bytes whose first value is the tensor's element
/// `offset`, in visattn::check_finite's words (the tensor and the flat index named).
fn check_stored_finite(name: &str, dtype: Dtype, offset: usize, bytes: &[u8]) -> Result<()> {
    let (index, value) = match dtype {
        Dtype::F32 => match bytes
            .chunks_exact(4)
            .position(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000)
        {
            Some(i) => (i, f32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"))),
            None => return Ok(()),
        },
        Dtype::F16 => match bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00)
        {
            Some(i) => (i, f16_to_f32(u16::from_le_bytes([bytes[i * 2], bytes[i * 2 + 1]]))),
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    Err(visattn::Error::NonFinite {
        tensor: name.to_string(),
        index: offset + index,
        value,
    }
    .into())
}

/// Rows [row0, row0 + rows) of a matrix, in one buffer.
pub struct Chunk {
    pub buffer: Buffer,
    pub row0: usize,
    pub rows: usize,
}

/// A [rows, cols] matrix (a HF Linear's weight, an embedding table) on the device.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub format: WeightFormat,
    pub chunks: Vec<Chunk>,
}

impl Matrix {
    /// Uploads a stored tensor (f32, f16 or bf16 bytes) as `format`, in row chunks of at most
    /// `max_chunk` bytes (the binding limit). f16 is uploaded as stored; other dtypes are
    /// converted row chunk by row chunk, never the whole tensor twice.
    pub fn upload(
        ctx: &Context,
        queue: &wgpu::Queue,
        name: &str,
        (rows, cols): (usize, usize),
        (dtype, bytes): (Dtype, &[u8]),
        format: WeightFormat,
        max_chunk: u64,
    ) -> Result<Self> {
        let stored = match dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            other => return Err(Error::Weights(format!("{name}: dtype {other:?}, expected f32, f16 or bf16"))),
        };
        if rows * cols == 0 {
            return Err(Error::Weights(format!("{name}: an empty matrix [{rows}, {cols}]")));
        }
        if bytes.len() != rows * cols * stored {
            return Err(Error::Weights(format!(
                "{name}: {} bytes for [{rows}, {cols}] of {dtype:?}",
                bytes.len()
            )));
        }
        let per_chunk = rows_per_chunk(name, cols, format, max_chunk)?;
        let mut chunks = Vec::new();
        for row0 in (0..rows).step_by(per_chunk) {
            let n = per_chunk.min(rows - row0);
            let src = &bytes[row0 * cols * stored..(row0 + n) * cols * stored];
            let mut data: Vec<u8> = match (format, dtype) {
                // Uploaded as stored, so scanned here: a NaN weight is named at load, not found
                // later as a NaN logit.
                (WeightFormat::F32, Dtype::F32) | (WeightFormat::F16 | WeightFormat::F16Packed, Dtype::F16) => {
                    check_stored_finite(name, dtype, row0 * cols, src)?;
                    src.to_vec()
                }
                (WeightFormat::F32, _) => bytemuck::cast_slice(&to_f32(name, dtype, src)?).to_vec(),
                (_, _) => {
                    let mut out = Vec::with_capacity(src.len() / stored * 2);
                    for x in to_f32(name, dtype, src)? {
                        let h = f32_to_f16(x);
                        if h & 0x7c00 == 0x7c00 {
                            return Err(Error::Weights(format!("{name}: {x} is outside f16's range: use --dtype f32")));
                        }
                        out.extend_from_slice(&h.to_le_bytes());
                    }
                    out
                }
            };
            // write_buffer moves whole words; an odd count of f16 gets a zero pair.
            data.resize(data.len().next_multiple_of(4), 0);
            let buffer = ctx
                .storage_buffer("weight", data.len() as u64, BufferUsages::empty())
                .map_err(|e| Error::Weights(format!("{name}: {e}")))?;
            queue.write_buffer(&buffer, 0, &data);
            chunks.push(Chunk { buffer, row0, rows: n });
        }
        Ok(Self {
            rows,
            cols,
            format,
            chunks,
        })
    }

    /// A matrix of `offset + scale x uniform[-1, 1)` values made on the device (no upload):
    /// one fill dispatch per chunk, recorded into `pass`.
    pub fn random(
        fill: &super::fill::Fill,
        pass: &mut wgpu::ComputePass,
        name: &str,
        (rows, cols): (usize, usize),
        format: WeightFormat,
        max_chunk: u64,
        (seed, scale): (u32, f32),
    ) -> Result<Self> {
        let per_chunk = rows_per_chunk(name, cols, format, max_chunk)?;
        let mut chunks = Vec::new();
        for (i, row0) in (0..rows).step_by(per_chunk).enumerate() {
            let n = per_chunk.min(rows - row0);
            let words = match format {
                WeightFormat::F32 => n * cols,
                _ => (n * cols).div_ceil(2),
            };
            let buffer = fill
                .context()
                .storage_buffer("weight", (words * 4) as u64, BufferUsages::empty())
                .map_err(|e| Error::Weights(format!("{name}: {e}")))?;
            fill.bind(
                &buffer,
                words,
                format != WeightFormat::F32,
                seed.wrapping_add(i as u32 * 7919),
                (0.0, scale),
            )
            .map_err(|e| Error::Weights(format!("{name}: {e}")))?
            .record(pass, &[]);
            chunks.push(Chunk { buffer, row0, rows: n });
        }
        Ok(Self {
            rows,
            cols,
            format,
            chunks,
        })
    }

    /// [`Self::upload`] of f32 values.
    pub fn from_f32(
        ctx: &Context,
        queue: &wgpu::Queue,
        name: &str,
        shape: (usize, usize),
        values: &[f32],
        format: WeightFormat,
        max_chunk: u64,
    ) -> Result<Self> {
        Self::upload(
            ctx,
            queue,
            name,
            shape,
            (Dtype::F32, bytemuck::cast_slice(values)),
            format,
            max_chunk,
        )
    }

    /// Elements a chunk's binding must hold, in the kernel's element type (f16 pairs count
    /// once when packed).
    pub fn elements(&self, chunk: &Chunk) -> usize {
        let n = chunk.rows * self.cols;
        match self.format {
            WeightFormat::F16Packed => n.div_ceil(2),
            _ => n,
        }
    }
}

/// Rows of `cols` values of `format` that one binding of `max_chunk` bytes holds.
fn rows_per_chunk(name: &str, cols: usize, format: WeightFormat, max_chunk: u64) -> Result<usize> {
    let row_bytes = (cols * format.bytes()) as u64;
    match (max_chunk / row_bytes.max(1)) as usize {
        0 => Err(Error::Weights(format!(
            "{name}: one row of {cols} values is {row_bytes} bytes, over the device's {max_chunk}-byte binding limit"
        ))),
        n => Ok(n),
    }
}

/// `load_w(i)`, W's element i as f32, for each format: the prelude of the kernels that read a
/// matrix (its binding is named `w`). `enable f16;` must come before any declaration.
pub const LOAD_F32: &str = "// load_w: f32 storage\nfn load_w(i: u32) -> f32 {\n    return w[i];\n}\n";
pub const LOAD_F16: &str = "enable f16;\n// load_w: f16 storage\nfn load_w(i: u32) -> f32 {\n    return f32(w[i]);\n}\n";
pub const LOAD_PACKED: &str = "// load_w: f16 pairs in u32, the low half first (little-endian f16 storage)\nfn load_w(i: u32) -> f32 {\n    let pair = unpack2x16float(w[i >> 1u]);\n    return select(pair.x, pair.y, (i & 1u) != 0u);\n}\n";
