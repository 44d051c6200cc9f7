//! Weight matrices on the device: f32, or f16 (read as `f16` where the adapter has
//! SHADER_F16, as packed u32 pairs where not), in row chunks that each fit one storage binding
//! (LLaMA-7B's 32000 x 4096 embedding is 262 MB in f16, twice WebGPU's 128 MiB per binding).

use crate::error::{Error, Result};
use visattn::Context;
use visattn::dump::Dtype;
use visattn::half::{bf16_to_f32, f16_to_f32, f32_to_f16};
use visattn::wgpu::{self, Buffer, BufferUsages};

use crate::gguf::quant;
use crate::gguf::types::GgmlType;

/// How the host keeps a weight matrix on the device: a float format, or one of GGML's block
/// formats kept as the GGUF file stores it (bytes as u32 words) and dequantized inside the
/// kernels that read it (`load_w`, shaders/formats/).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    F32,
    /// f16 storage, `array<f16>` in the kernels (Features::SHADER_F16).
    F16,
    /// f16 storage read as `array<u32>` pairs through unpack2x16float: the same bytes, for
    /// adapters without SHADER_F16 (WebGPU without shader-f16, GL).
    F16Packed,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
}

impl WeightFormat {
    /// Every block format, in GGML's order.
    pub const BLOCKS: [WeightFormat; 11] = [
        Self::BF16,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q2_K,
        Self::Q3_K,
        Self::Q4_K,
        Self::Q5_K,
        Self::Q6_K,
    ];

    /// `auto` is f16 for a folder stored in f16 or bf16 (the native kernel where the device
    /// has SHADER_F16), f32 for an f32 folder; `q8_0`, `q4_0`, `q4_k` quantize the language
    /// model's matrices on load ([`Self::for_matrix`]).
    pub fn choose(flag: &str, stored: Dtype, device: &wgpu::Device) -> Result<Self> {
        match flag {
            "auto" if stored == Dtype::F32 => Ok(Self::F32),
            "auto" | "f16" => Ok(Self::f16_for(device)),
            "f32" => Ok(Self::F32),
            "f16-packed" => Ok(Self::F16Packed),
            "q8_0" => Ok(Self::Q8_0),
            "q4_0" => Ok(Self::Q4_0),
            "q4_k" => Ok(Self::Q4_K),
            other => Err(Error::Weights(format!(
                "--dtype {other}: expected auto, f32, f16, f16-packed, q8_0, q4_0 or q4_k"
            ))),
        }
    }

    /// The format a HF folder's matrix `name` (canonical), rows of `cols` values stored as
    /// `stored`, is kept in when the model is loaded as `self`. A float format is every
    /// matrix's. A block format quantizes the language model's matrices (llama.cpp's fallback
    /// where rows are not whole blocks: [`quant::type_for_rows`]); the vision tower and the
    /// projector keep the folder's precision (`auto`), as llama.cpp's mmproj files keep theirs.
    pub fn for_matrix(self, name: &str, cols: usize, stored: Dtype, f16: WeightFormat) -> WeightFormat {
        let Some(ty) = self.block_type() else {
            return self;
        };
        if !name.starts_with("language_model.") {
            return if stored == Dtype::F32 { Self::F32 } else { f16 };
        }
        match quant::type_for_rows(ty, cols) {
            GgmlType::F16 => f16,
            t => Self::BLOCKS.into_iter().find(|f| f.block_type() == Some(t)).unwrap_or(f16),
        }
    }

    /// `x` as a matrix of this format holds it: rounded to f16, or quantized to the format's
    /// blocks and read back (the CPU reference multiplies what the device holds).
    pub fn round_trip(self, name: &str, x: &[f32]) -> Result<Vec<f32>> {
        match self.block_type() {
            None => Ok(x.iter().map(|&v| self.round(v)).collect()),
            Some(ty) => {
                let q = quant::quantize(ty, x).map_err(|e| Error::Weights(format!("{name}: {e}")))?;
                quant::dequantize(ty, &q, x.len())
            }
        }
    }

    /// f16 as the device reads it best: native where it has SHADER_F16, packed pairs where not.
    pub fn f16_for(device: &wgpu::Device) -> Self {
        if device.features().contains(wgpu::Features::SHADER_F16) {
            Self::F16
        } else {
            Self::F16Packed
        }
    }

    /// The GGML type whose blocks this format keeps, for the block formats.
    pub fn block_type(self) -> Option<GgmlType> {
        Some(match self {
            Self::F32 | Self::F16 | Self::F16Packed => return None,
            Self::BF16 => GgmlType::BF16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q5_0 => GgmlType::Q5_0,
            Self::Q5_1 => GgmlType::Q5_1,
            Self::Q2_K => GgmlType::Q2_K,
            Self::Q3_K => GgmlType::Q3_K,
            Self::Q4_K => GgmlType::Q4_K,
            Self::Q5_K => GgmlType::Q5_K,
            Self::Q6_K => GgmlType::Q6_K,
        })
    }

    /// The format that keeps tensors of GGML type `ty` as stored (F16 as the device reads it
    /// best); a clear error for the types the kernels do not read (IQ*, ...).
    pub fn for_type(ty: GgmlType, device: &wgpu::Device) -> Result<Self> {
        match ty {
            GgmlType::F32 => Ok(Self::F32),
            GgmlType::F16 => Ok(Self::f16_for(device)),
            _ => Self::BLOCKS.into_iter().find(|f| f.block_type() == Some(ty)).ok_or_else(|| {
                Error::Gguf(format!(
                    "tensor type {ty} (id {}): the host's kernels read F32, F16, {}",
                    ty.id(),
                    Self::BLOCKS.map(|f| f.name()).join(", ")
                ))
            }),
        }
    }

    /// The bytes of one row of `cols` values, or `None` when `cols` is not a whole number of
    /// the format's blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        match self.block_type() {
            None => Some(cols * if self == Self::F32 { 4 } else { 2 }),
            Some(ty) => ty.bytes_for(cols as u64).map(|b| b as usize),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::F16Packed => "f16 (packed u32)",
            other => other.block_type().map_or("?", GgmlType::name),
        }
    }

    /// A vector's value as a model in this format holds it: f16 formats round to the nearest
    /// f16 (as a folder saved in f16 holds its norms); the rest keep f32 (a GGUF file's norms
    /// are F32 whatever its matrices are).
    pub fn round(self, x: f32) -> f32 {
        match self {
            Self::F16 | Self::F16Packed => f16_to_f32(f32_to_f16(x)),
            _ => x,
        }
    }
}

/// `impl From<WeightFormat>` for the variant enum of a kernel declared once per weight format
/// (the matmul and the embedding lookup: [`weight_kernel!`]).
macro_rules! variant_per_format {
    ($variant:ty) => {
        impl From<$crate::gpu::matrix::WeightFormat> for $variant {
            fn from(f: $crate::gpu::matrix::WeightFormat) -> Self {
                use $crate::gpu::matrix::WeightFormat as W;
                match f {
                    W::F32 => Self::F32,
                    W::F16 => Self::F16,
                    W::F16Packed => Self::Packed,
                    W::BF16 => Self::BF16,
                    W::Q8_0 => Self::Q8_0,
                    W::Q4_0 => Self::Q4_0,
                    W::Q4_1 => Self::Q4_1,
                    W::Q5_0 => Self::Q5_0,
                    W::Q5_1 => Self::Q5_1,
                    W::Q2_K => Self::Q2_K,
                    W::Q3_K => Self::Q3_K,
                    W::Q4_K => Self::Q4_K,
                    W::Q5_K => Self::Q5_K,
                    W::Q6_K => Self::Q6_K,
                }
            }
        }
    };
}
pub(crate) use variant_per_format;

/// A kernel that reads one weight matrix `w` through `load_w(i)`, declared once with a variant
/// per [`WeightFormat`]: the body's file stem names the variants' files (`linear.q4_k.wgsl`).
macro_rules! weight_kernel {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, $inputs:ident, $variant:ident = $body:expr, $stem:literal, $p:ident;
        $($rest:tt)*
    ) => {
        visattn::kernel! {
            $(#[$meta])*
            pub struct $name, $inputs, $variant = $body;
            variants {
                F32 = concat!($stem, ".wgsl"), prelude $crate::gpu::matrix::$p::F32, elem f32;
                F16 = concat!($stem, ".f16.wgsl"), prelude $crate::gpu::matrix::$p::F16, elem f16;
                Packed = concat!($stem, ".packed.wgsl"), prelude $crate::gpu::matrix::$p::PACKED, elem u32;
                BF16 = concat!($stem, ".bf16.wgsl"), prelude $crate::gpu::matrix::$p::BF16, elem u32;
                #[allow(non_camel_case_types)]
                Q8_0 = concat!($stem, ".q8_0.wgsl"), prelude $crate::gpu::matrix::$p::Q8_0, elem u32;
                #[allow(non_camel_case_types)]
                Q4_0 = concat!($stem, ".q4_0.wgsl"), prelude $crate::gpu::matrix::$p::Q4_0, elem u32;
                #[allow(non_camel_case_types)]
                Q4_1 = concat!($stem, ".q4_1.wgsl"), prelude $crate::gpu::matrix::$p::Q4_1, elem u32;
                #[allow(non_camel_case_types)]
                Q5_0 = concat!($stem, ".q5_0.wgsl"), prelude $crate::gpu::matrix::$p::Q5_0, elem u32;
                #[allow(non_camel_case_types)]
                Q5_1 = concat!($stem, ".q5_1.wgsl"), prelude $crate::gpu::matrix::$p::Q5_1, elem u32;
                #[allow(non_camel_case_types)]
                Q2_K = concat!($stem, ".q2_k.wgsl"), prelude $crate::gpu::matrix::$p::Q2_K, elem u32;
                #[allow(non_camel_case_types)]
                Q3_K = concat!($stem, ".q3_k.wgsl"), prelude $crate::gpu::matrix::$p::Q3_K, elem u32;
                #[allow(non_camel_case_types)]
                Q4_K = concat!($stem, ".q4_k.wgsl"), prelude $crate::gpu::matrix::$p::Q4_K, elem u32;
                #[allow(non_camel_case_types)]
                Q5_K = concat!($stem, ".q5_k.wgsl"), prelude $crate::gpu::matrix::$p::Q5_K, elem u32;
                #[allow(non_camel_case_types)]
                Q6_K = concat!($stem, ".q6_k.wgsl"), prelude $crate::gpu::matrix::$p::Q6_K, elem u32;
            }
            $($rest)*
        }
        $crate::gpu::matrix::variant_per_format!($variant);
    };
}
pub(crate) use weight_kernel;

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

/// Refuses a block whose f16 scale or minimum is NaN or infinite (its 32 or 256 values would
/// be), naming the tensor and the block's first element.
fn check_blocks_finite(name: &str, ty: GgmlType, offset: usize, bytes: &[u8]) -> Result<()> {
    let (elems, size) = (ty.block_elems() as usize, ty.block_bytes() as usize);
    let fields = quant::half_fields(ty);
    for (b, block) in bytes.chunks_exact(size).enumerate() {
        for &at in fields {
            let h = u16::from_le_bytes([block[at], block[at + 1]]);
            let bad = match ty {
                GgmlType::BF16 => h & 0x7f80 == 0x7f80,
                _ => h & 0x7c00 == 0x7c00,
            };
            if bad {
                let value = if ty == GgmlType::BF16 { bf16_to_f32(h) } else { f16_to_f32(h) };
                return Err(Error::Weights(format!(
                    "{name}: the {ty} block of elements {}.. holds {value} (byte {at})",
                    offset + b * elems
                )));
            }
        }
    }
    Ok(())
}

/// Rows [row0, row0 + rows) of a matrix, in one buffer or one texture.
pub struct Chunk {
    pub store: ChunkStore,
    pub row0: usize,
    pub rows: usize,
}

/// Where a chunk's words live.
pub enum ChunkStore {
    /// A storage buffer, read as the variant's element type.
    Buffer(Buffer),
    /// An rgba32uint texture, [`TEXELS_PER_ROW`] texels (16 bytes each) a row, the words in
    /// order ([`Staging::Texture`]); `bytes` of them are the matrix's.
    Texture {
        texture: wgpu::Texture,
        view: wgpu::TextureView,
        bytes: u64,
    },
}

/// Texels a row of a weight texture holds (shaders/texture/texel.wgsl's constant): 64 KiB.
pub const TEXELS_PER_ROW: u32 = 4096;

/// An rgba32uint texture of `height` rows of [`TEXELS_PER_ROW`] texels, for words to read with
/// textureLoad ([`Staging::Texture`]'s weights, the texture read baseline).
pub fn weight_texture(device: &wgpu::Device, label: &'static str, height: u32) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: TEXELS_PER_ROW,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Uint,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

/// How the linear layers' weights are kept on the device: which layout the adapter reads
/// faster, chosen per adapter by [`super::linear::autotune_staging`] (or by the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Staging {
    /// Storage buffers: the tiled matmul and the matrix-vector kernel (GPUs).
    Buffer,
    /// rgba32uint textures, activations read as uniforms (shaders/linear_texture.wgsl): CPU
    /// adapters, where storage loads cost per lane (lavapipe: 10x faster), tiled as it says.
    Texture(TextureTiling),
}

/// How the texture kernel splits its work: rows of W per invocation in a decode step, and a
/// prefill's tokens per dispatch (its x tile) and rows per invocation. More rows share each x
/// value an invocation loads, at the cost of registers; the best differs per adapter and
/// format, so [`super::linear::autotune_staging`] times them. Written (and parsed) as
/// `decode=R,prefill=TxR`, each with an `s` after it where x is shared through subgroups
/// (`decode=1s,prefill=16x1s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextureTiling {
    pub decode_rows: u32,
    pub prefill_tokens: u32,
    pub prefill_rows: u32,
    /// x shared through subgroups (linear_shared.wgsl; prefill tiles of up to 16 tokens) in a
    /// decode step and in a prefill, where the device runs it (linear::subgroups_usable) and
    /// the rows allow it; elsewhere the uniform tile's kernel, its tiles cut to 4 tokens.
    pub decode_shared: bool,
    pub prefill_shared: bool,
}

impl TextureTiling {
    /// The rows an invocation may take (the kernel's ROWS override).
    pub const ROWS: [u32; 4] = [1, 2, 4, 8];
    /// The tokens a prefill tile may hold through the uniform tile (at most 4 rows of x)...
    pub const TOKENS: [u32; 3] = [1, 2, 4];
    /// ... and with x shared through subgroups (4 bindings of up to 16 rows): up to 16 x 8 =
    /// 128 sums an invocation, one FMA chain each (tile.wgsl).
    pub const SHARED_TOKENS: [u32; 5] = [1, 2, 4, 8, 16];

    /// One row per invocation, the largest token tiles, x through the uniform tile: no
    /// assumption about the adapter.
    pub const PLAIN: TextureTiling = TextureTiling {
        decode_rows: 1,
        prefill_tokens: 4,
        prefill_rows: 1,
        decode_shared: false,
        prefill_shared: false,
    };
}

impl Default for TextureTiling {
    fn default() -> Self {
        Self::PLAIN
    }
}

impl TextureTiling {
    /// The mark after a tiling where x is shared through subgroups (`8s`, `8x4s`).
    pub fn shared_mark(shared: bool) -> &'static str {
        if shared { "s" } else { "" }
    }
}

impl std::fmt::Display for TextureTiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = Self::shared_mark;
        write!(
            f,
            "decode={}{},prefill={}x{}{}",
            self.decode_rows,
            shared(self.decode_shared),
            self.prefill_tokens,
            self.prefill_rows,
            shared(self.prefill_shared)
        )
    }
}

impl std::str::FromStr for TextureTiling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Input(format!(
                "texture tiling {s:?}: expected decode=R,prefill=TxR with R in 1, 2, 4, 8, T in 1, 2, 4, each followed by s where x is shared through subgroups (then T may be 8 or 16 too)"
            ))
        };
        let (decode, prefill) = s.split_once(',').ok_or_else(bad)?;
        let rows = decode.strip_prefix("decode=").ok_or_else(bad)?;
        let (tokens, prefill_rows) = prefill.strip_prefix("prefill=").and_then(|p| p.split_once('x')).ok_or_else(bad)?;
        let (rows, decode_shared) = rows.strip_suffix('s').map_or((rows, false), |r| (r, true));
        let (prefill_rows, prefill_shared) = prefill_rows.strip_suffix('s').map_or((prefill_rows, false), |r| (r, true));
        let num = |v: &str, allowed: &[u32]| v.parse::<u32>().ok().filter(|n| allowed.contains(n)).ok_or_else(bad);
        let tiling = Self {
            decode_rows: num(rows, &Self::ROWS)?,
            prefill_tokens: num(tokens, if prefill_shared { &Self::SHARED_TOKENS } else { &Self::TOKENS })?,
            prefill_rows: num(prefill_rows, &Self::ROWS)?,
            decode_shared,
            prefill_shared,
        };
        Ok(tiling)
    }
}

impl std::fmt::Display for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staging::Buffer => f.write_str("buffer"),
            Staging::Texture(tiling) => write!(f, "texture:{tiling}"),
        }
    }
}

/// `buffer`, `texture` (one row per invocation, [`TextureTiling::PLAIN`]) or
/// `texture:decode=R,prefill=TxR` ([`Staging`]'s Display: what an autotune found, cached).
impl std::str::FromStr for Staging {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "buffer" => Ok(Staging::Buffer),
            "texture" => Ok(Staging::Texture(TextureTiling::PLAIN)),
            other => match other.strip_prefix("texture:") {
                Some(tiling) => Ok(Staging::Texture(tiling.parse()?)),
                None => Err(Error::Input(format!(
                    "weight staging {other:?}: expected buffer, texture or texture:decode=R,prefill=TxR"
                ))),
            },
        }
    }
}

impl Chunk {
    /// The chunk's storage buffer (a texture-staged chunk has none).
    pub fn buffer(&self) -> Result<&Buffer> {
        match &self.store {
            ChunkStore::Buffer(b) => Ok(b),
            ChunkStore::Texture { .. } => Err(Error::Input("a weight chunk staged in a texture has no storage buffer".into())),
        }
    }

    fn bytes(&self) -> u64 {
        match &self.store {
            ChunkStore::Buffer(b) => b.size(),
            ChunkStore::Texture { bytes, .. } => *bytes,
        }
    }
}

/// A [rows, cols] matrix (a HF Linear's weight, an embedding table) on the device.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub format: WeightFormat,
    pub chunks: Vec<Chunk>,
}

impl Matrix {
    /// Uploads a stored float tensor (f32, f16 or bf16 bytes) as `format`, in row chunks of at
    /// most `max_chunk` bytes (the binding limit): f16 as stored, other pairs converted, block
    /// formats quantized with llama.cpp's reference quantizers ([`quant::quantize`]), row
    /// chunk by row chunk, never the whole tensor twice.
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
        if bytes.len() != rows * cols * stored {
            return Err(Error::Weights(format!(
                "{name}: {} bytes for [{rows}, {cols}] of {dtype:?}",
                bytes.len()
            )));
        }
        Self::chunked(ctx, queue, name, (rows, cols), format, max_chunk, |row0, n| {
            let src = &bytes[row0 * cols * stored..(row0 + n) * cols * stored];
            Ok(match (format, dtype) {
                // Uploaded as stored, so scanned here: a NaN weight is named at load, not found
                // later as a NaN logit.
                (WeightFormat::F32, Dtype::F32) | (WeightFormat::F16 | WeightFormat::F16Packed, Dtype::F16) => {
                    check_stored_finite(name, dtype, row0 * cols, src)?;
                    src.to_vec()
                }
                (WeightFormat::F32, _) => bytemuck::cast_slice(&to_f32(name, dtype, src)?).to_vec(),
                (WeightFormat::F16 | WeightFormat::F16Packed, _) => {
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
                (_, _) => {
                    let ty = format.block_type().expect("a block format");
                    let q = quant::quantize(ty, &to_f32(name, dtype, src)?).map_err(|e| Error::Weights(format!("{name}: {e}")))?;
                    check_blocks_finite(name, ty, row0 * cols, &q)?;
                    q
                }
            })
        })
    }

    /// Uploads a GGUF tensor's data, `ty` blocks as the file stores them, as `format` (the
    /// format [`WeightFormat::for_type`] names for it: kept as stored), in row chunks of at most
    /// `max_chunk` bytes; each chunk's scales (or values) scanned for NaN and infinities.
    /// `stored(row0, n)` hands the bytes of rows row0..row0 + n (a store may reorder rows).
    pub fn upload_stored(
        ctx: &Context,
        queue: &wgpu::Queue,
        name: &str,
        (rows, cols): (usize, usize),
        (ty, format): (GgmlType, WeightFormat),
        max_chunk: u64,
        mut stored: impl FnMut(usize, usize) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let row_bytes =
            ty.bytes_for(cols as u64)
                .ok_or_else(|| Error::Weights(format!("{name}: rows of {cols} values are not whole {ty} blocks")))? as usize;
        if format.row_bytes(cols) != Some(row_bytes) {
            return Err(Error::Weights(format!("{name}: {ty} data cannot be kept as {}", format.name())));
        }
        Self::chunked(ctx, queue, name, (rows, cols), format, max_chunk, |row0, n| {
            let bytes = stored(row0, n)?;
            if bytes.len() != n * row_bytes {
                return Err(Error::Weights(format!("{name}: {} bytes for {n} rows of {row_bytes}", bytes.len())));
            }
            match ty {
                GgmlType::F32 | GgmlType::F16 => {
                    check_stored_finite(name, if ty == GgmlType::F32 { Dtype::F32 } else { Dtype::F16 }, row0 * cols, &bytes)?
                }
                _ => check_blocks_finite(name, ty, row0 * cols, &bytes)?,
            }
            Ok(bytes)
        })
    }

    /// The chunk loop of the uploads: `data(row0, n)` gives the stored bytes of rows
    /// row0..row0 + n, uploaded into one buffer each (padded to whole words).
    fn chunked(
        ctx: &Context,
        queue: &wgpu::Queue,
        name: &str,
        (rows, cols): (usize, usize),
        format: WeightFormat,
        max_chunk: u64,
        mut data: impl FnMut(usize, usize) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        if rows * cols == 0 {
            return Err(Error::Weights(format!("{name}: an empty matrix [{rows}, {cols}]")));
        }
        let per_chunk = rows_per_chunk(name, cols, format, max_chunk)?;
        let mut chunks = Vec::new();
        for row0 in (0..rows).step_by(per_chunk) {
            let n = per_chunk.min(rows - row0);
            let mut data = data(row0, n)?;
            // write_buffer moves whole words; an odd count of f16 (or block bytes) gets zeros.
            data.resize(data.len().next_multiple_of(4), 0);
            let buffer = ctx
                .storage_buffer("weight", data.len() as u64, BufferUsages::empty())
                .map_err(|e| Error::Weights(format!("{name}: {e}")))?;
            queue.write_buffer(&buffer, 0, &data);
            chunks.push(Chunk {
                store: ChunkStore::Buffer(buffer),
                row0,
                rows: n,
            });
        }
        Ok(Self {
            rows,
            cols,
            format,
            chunks,
        })
    }

    /// The rows of `self` then those of `below` (the same format and columns) as one matrix:
    /// their chunks one after the other, each run of them that fits one binding (`max_chunk`
    /// bytes) joined into one buffer on the device where each seam falls on a whole word (so a
    /// matmul over the stack is one dispatch where the two took two; LLaMA-7B's f16 gate and
    /// up, 90 MB each, stay two chunks). Chunks staged in textures are kept as they are.
    pub fn stack(self, below: Matrix, ctx: &Context, queue: &wgpu::Queue, max_chunk: u64) -> Result<Matrix> {
        if (self.format, self.cols) != (below.format, below.cols) {
            return Err(Error::Weights(format!(
                "stacking a [{}, {}] {} matrix on a [{}, {}] {} one: they need the same format and columns",
                below.rows,
                below.cols,
                below.format.name(),
                self.rows,
                self.cols,
                self.format.name()
            )));
        }
        let (rows, cols, format) = (self.rows + below.rows, self.cols, self.format);
        let row_bytes = format
            .row_bytes(cols)
            .ok_or_else(|| Error::Weights(format!("rows of {cols} values are not whole {} blocks", format.name())))?;
        let per_chunk = rows_per_chunk("stacked matrix", cols, format, max_chunk)?;
        let shift = self.rows;
        let parts = self
            .chunks
            .into_iter()
            .chain(below.chunks.into_iter().map(|c| Chunk { row0: c.row0 + shift, ..c }));
        // Runs of chunks to join: each chunk joins the run before it where the run's bytes end
        // on a word (copies move whole words) and the rows fit one binding.
        let mut runs: Vec<Vec<Chunk>> = Vec::new();
        for c in parts {
            let joins = runs.last().is_some_and(|run| {
                let run_rows: usize = run.iter().map(|c| c.rows).sum();
                let buffers = run.iter().chain([&c]).all(|c| matches!(c.store, ChunkStore::Buffer(_)));
                buffers && run_rows + c.rows <= per_chunk && (run_rows * row_bytes).is_multiple_of(4)
            });
            match runs.last_mut() {
                Some(run) if joins => run.push(c),
                _ => runs.push(vec![c]),
            }
        }
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        let mut chunks = Vec::new();
        for mut run in runs {
            if run.len() == 1 {
                chunks.extend(run.pop());
                continue;
            }
            let run_rows: usize = run.iter().map(|c| c.rows).sum();
            let bytes = ((run_rows * row_bytes) as u64).next_multiple_of(4);
            let joined = ctx
                .storage_buffer("weight", bytes, BufferUsages::empty())
                .map_err(|e| Error::Weights(format!("stacking matrices: {e}")))?;
            let mut offset = 0u64;
            for (i, c) in run.iter().enumerate() {
                let ChunkStore::Buffer(src) = &c.store else {
                    unreachable!("runs of more than one chunk are buffers")
                };
                // The run's last chunk brings its padding to a word (every upload pads so); the
                // others end on a word.
                let size = ((c.rows * row_bytes) as u64).next_multiple_of(4);
                debug_assert!(i + 1 == run.len() || size == (c.rows * row_bytes) as u64);
                enc.copy_buffer_to_buffer(src, 0, &joined, offset, size);
                offset += (c.rows * row_bytes) as u64;
            }
            chunks.push(Chunk {
                store: ChunkStore::Buffer(joined),
                row0: run[0].row0,
                rows: run_rows,
            });
        }
        queue.submit([enc.finish()]);
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
        if format.block_type().is_some() {
            return Err(Error::Weights(format!(
                "{name}: random weights are made in f32 or f16, not {}",
                format.name()
            )));
        }
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
            chunks.push(Chunk {
                store: ChunkStore::Buffer(buffer),
                row0,
                rows: n,
            });
        }
        Ok(Self {
            rows,
            cols,
            format,
            chunks,
        })
    }

    /// A random matrix of `format` for the timing probes: random blocks for a block format (not
    /// every one has a quantizer: Q4_1 files are only read), random values rounded to a float
    /// format.
    pub fn probe(ctx: &Context, queue: &wgpu::Queue, (rows, cols): (usize, usize), format: WeightFormat, seed: u64) -> Result<Self> {
        match format.block_type() {
            Some(ty) => Self::upload_stored(ctx, queue, "probe", (rows, cols), (ty, format), ctx.max_binding(), |_, n| {
                Ok(crate::random::random_blocks(ty, n * cols, 0.05, seed))
            }),
            None => Self::from_f32(
                ctx,
                queue,
                "probe",
                (rows, cols),
                &crate::random::random(rows * cols, seed),
                format,
                ctx.max_binding(),
            ),
        }
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
        match self.format {
            WeightFormat::F32 | WeightFormat::F16 => chunk.rows * self.cols,
            // u32 words; rows are whole blocks (checked at upload).
            f => (chunk.rows * f.row_bytes(self.cols).unwrap_or(0)).div_ceil(4),
        }
    }

    /// The bytes the matrix takes on the device.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(Chunk::bytes).sum()
    }

    /// Values (a token tile) the texture kernel multiplies at once: up to 4 rows of x whose
    /// `cols` values fit a 64 KiB uniform binding, each tile's offset a multiple of 256 bytes;
    /// `None` when rows of this matrix cannot go through it (`cols` not a multiple of 8 or
    /// over 16384, or tiles off the uniform offset alignment).
    pub fn texture_tile(cols: usize) -> Option<usize> {
        let tile = (super::linear::X_TILE_VALUES / cols.max(1)).min(4);
        (tile > 0 && cols % 8 == 0 && (cols * 4 * tile) % 256 == 0).then_some(tile)
    }

    /// Moves every chunk into an rgba32uint texture ([`Staging::Texture`]), on the device:
    /// repacked into planes where the format has them (gpu/repack.rs), its main plane's rows
    /// grouped by 8 (gpu/interleave.rs), through buffers padded to whole texture rows, one
    /// chunk at a time (two chunks' bytes more at the peak). A matrix [`Self::texture_tile`]
    /// refuses stays in buffers (returns false).
    pub fn stage_in_texture(&mut self, ctx: &Context, queue: &wgpu::Queue) -> Result<bool> {
        if Self::texture_tile(self.cols).is_none() {
            return Ok(false);
        }
        let device = ctx.device();
        let repack = super::repack::Repack::for_format(self.format);
        let blocks_per_row = self.format.block_type().map_or(0, |t| self.cols / t.block_elems() as usize);
        let row_bytes = TEXELS_PER_ROW as u64 * 16;
        let max_rows = device.limits().max_texture_dimension_2d as u64;
        let padded_buffer = |label: &'static str, bytes: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.div_ceil(row_bytes) * row_bytes,
                usage: BufferUsages::COPY_SRC | BufferUsages::COPY_DST | BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        for chunk in &mut self.chunks {
            let ChunkStore::Buffer(buffer) = &chunk.store else {
                continue;
            };
            // Planes for the repacked formats (the same bytes, scales after the quants).
            let blocks = chunk.rows * blocks_per_row;
            let bytes = repack.map_or(buffer.size(), |r| r.bytes(blocks));
            // What the texture holds: the main plane grows to whole groups of rows.
            let grouping = super::interleave::Grouping::of(self.format, self.cols, chunk.rows);
            let grouped = grouping.map_or(bytes, |g| g.texels(bytes) * 16);
            let height = grouped.div_ceil(row_bytes);
            if height > max_rows {
                return Err(Error::Weights(format!(
                    "a weight chunk of {grouped} bytes needs a texture of {height} rows, over the device's {max_rows}"
                )));
            }
            let padded = padded_buffer("weight staging", bytes);
            let texture = weight_texture(device, "weight", height as u32);
            let mut enc = device.create_command_encoder(&Default::default());
            match repack {
                Some(r) => r
                    .record(ctx, &mut enc, buffer, &padded, blocks)
                    .map_err(|e| Error::Weights(format!("repacking a {} chunk: {e}", self.format.name())))?,
                None => enc.copy_buffer_to_buffer(buffer, 0, &padded, 0, bytes),
            }
            let staged = match grouping {
                Some(g) => {
                    let out = padded_buffer("weight rows grouped", grouped);
                    super::interleave::record(ctx, &mut enc, (&padded, bytes), &out, g)
                        .map_err(|e| Error::Weights(format!("grouping a {} chunk's rows: {e}", self.format.name())))?;
                    out
                }
                None => padded,
            };
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &staged,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(row_bytes as u32),
                        rows_per_image: Some(height as u32),
                    },
                },
                texture.as_image_copy(),
                wgpu::Extent3d {
                    width: TEXELS_PER_ROW,
                    height: height as u32,
                    depth_or_array_layers: 1,
                },
            );
            queue.submit([enc.finish()]);
            let view = texture.create_view(&Default::default());
            chunk.store = ChunkStore::Texture { texture, view, bytes };
        }
        Ok(true)
    }
}

/// Rows of `cols` values of `format` that one binding of `max_chunk` bytes holds.
fn rows_per_chunk(name: &str, cols: usize, format: WeightFormat, max_chunk: u64) -> Result<usize> {
    let row_bytes = format
        .row_bytes(cols)
        .ok_or_else(|| Error::Weights(format!("{name}: rows of {cols} values are not whole {} blocks", format.name())))?
        as u64;
    // The kernels index a chunk's values with u32: a chunk holds under 2^32 of them.
    let by_index = (u32::MAX as usize / cols.max(1)) as u64;
    match (max_chunk / row_bytes.max(1)).min(by_index) as usize {
        // Whole groups of rows (gpu/interleave.rs): the texture layout pads only the last chunk.
        n if n >= super::interleave::GROUP => Ok(n / super::interleave::GROUP * super::interleave::GROUP),
        0 => Err(Error::Weights(format!(
            "{name}: one row of {cols} values is {row_bytes} bytes, over the device's {max_chunk}-byte binding limit"
        ))),
        n => Ok(n),
    }
}

/// A block format's prelude: how W's words are read (`$word`: formats/word_buffer.wgsl or
/// word_texture.wgsl), the byte reads (bytes.wgsl), load_w as one of load8's values
/// (block8.wgsl), then the format's files (its load8; Q4_K and Q5_K's shared scale unpacking
/// first).
macro_rules! block_prelude {
    ($word:literal; $($file:literal),+) => {
        concat!(
            include_str!(concat!("../../shaders/formats/", $word)),
            include_str!("../../shaders/formats/bytes.wgsl"),
            include_str!("../../shaders/formats/block8.wgsl"),
            $(include_str!(concat!("../../shaders/formats/", $file))),+
        )
    };
}

/// The preludes of one weight layout, one per format: `load_w(i)`, W's element i as f32, and
/// `load8(i)`, elements i .. i + 8 (i a multiple of 8 in the block formats, whose rows are
/// whole blocks). `enable f16;` must come before any declaration.
macro_rules! preludes {
    ($(#[$meta:meta])* $module:ident, $word:literal, f32 $f32:expr, f16 $f16:expr) => {
        $(#[$meta])*
        pub mod $module {
            pub const F32: &str = concat!($f32, include_str!("../../shaders/formats/float8.wgsl"));
            pub const F16: &str = concat!($f16, include_str!("../../shaders/formats/float8.wgsl"));
            pub const PACKED: &str = concat!(
                include_str!(concat!("../../shaders/formats/", $word)),
                "// load_w: f16 pairs in u32, the low half first (little-endian f16 storage)\nfn load_w(i: u32) -> f32 {\n    let pair = unpack2x16float(word(i >> 1u));\n    return select(pair.x, pair.y, (i & 1u) != 0u);\n}\n",
                include_str!("../../shaders/formats/float8.wgsl")
            );
            pub const BF16: &str = concat!(
                include_str!(concat!("../../shaders/formats/", $word)),
                include_str!("../../shaders/formats/bf16.wgsl"),
                include_str!("../../shaders/formats/float8.wgsl")
            );
            pub const Q8_0: &str = block_prelude!($word; "q8_0.wgsl");
            pub const Q4_0: &str = block_prelude!($word; "q4_0.wgsl");
            pub const Q4_1: &str = block_prelude!($word; "q4_1.wgsl");
            pub const Q5_0: &str = block_prelude!($word; "q5_0.wgsl");
            pub const Q5_1: &str = block_prelude!($word; "q5_1.wgsl");
            pub const Q2_K: &str = block_prelude!($word; "q2_k.wgsl");
            pub const Q3_K: &str = block_prelude!($word; "q3_k.wgsl");
            pub const Q4_K: &str = block_prelude!($word; "k4_scales.wgsl", "q4_k.wgsl");
            pub const Q5_K: &str = block_prelude!($word; "k4_scales.wgsl", "q5_k.wgsl");
            pub const Q6_K: &str = block_prelude!($word; "q6_k.wgsl");
        }
    };
}

preludes!(
    /// W in a storage binding `w` of the variant's element type (f32, f16, u32 words).
    buffer_prelude,
    "word_buffer.wgsl",
    f32 "// load_w: f32 storage\nfn load_w(i: u32) -> f32 {\n    return w[i];\n}\n",
    f16 "enable f16;\n// load_w: f16 storage\nfn load_w(i: u32) -> f32 {\n    return f32(w[i]);\n}\n"
);

/// The texture kernels' preludes, one module per way of reading x (the x file after
/// texture/texel.wgsl and texture/tile.wgsl: the tile's sums and walk): each format's `BLOCK`
/// and `dot_block`, a texel layout of its own for the floats, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
/// Q6_K (repacked into planes, gpu/repack.rs), Q4_K and Q5_K (as stored: 9 and 11 texels a
/// super-block); Q2_K and Q3_K through their load8 a word at a time (texture/generic.wgsl).
macro_rules! texture_prelude_of {
    ($x:literal; $($file:literal),+) => {
        concat!(
            include_str!("../../shaders/linear/params.wgsl"),
            include_str!("../../shaders/texture/texel.wgsl"),
            include_str!("../../shaders/texture/tile.wgsl"),
            include_str!(concat!("../../shaders/", $x)),
            $(include_str!(concat!("../../shaders/", $file))),+
        )
    };
}

macro_rules! generic_prelude_of {
    ($x:literal; $($file:literal),+) => {
        texture_prelude_of!(
            $x;
            "formats/word_texture.wgsl",
            "formats/bytes.wgsl",
            "formats/block8.wgsl",
            $($file,)+
            "texture/generic.wgsl"
        )
    };
}

macro_rules! texture_preludes {
    ($(#[$meta:meta])* $name:ident, $x:literal, k_quants $q4_k:literal, $q5_k:literal, $q6_k:literal) => {
        $(#[$meta])*
        pub mod $name {
            pub const F32: &str = texture_prelude_of!($x; "texture/f32.wgsl");
            /// f16 as stored (pairs in words), whether or not the adapter has SHADER_F16.
            pub const F16: &str = texture_prelude_of!($x; "texture/f16.wgsl");
            pub const PACKED: &str = F16;
            pub const BF16: &str = texture_prelude_of!($x; "texture/bf16.wgsl");
            pub const Q8_0: &str = texture_prelude_of!($x; "texture/half_scales.wgsl", "texture/q8_0.wgsl");
            pub const Q4_0: &str = texture_prelude_of!($x; "texture/half_scales.wgsl", "texture/q4_0.wgsl");
            pub const Q4_1: &str = texture_prelude_of!($x; "texture/dm_words.wgsl", "texture/q4_1.wgsl");
            pub const Q5_0: &str = texture_prelude_of!($x; "texture/half_scales.wgsl", "texture/q5.wgsl", "texture/q5_0.wgsl");
            pub const Q5_1: &str = texture_prelude_of!($x; "texture/dm_words.wgsl", "texture/q5.wgsl", "texture/q5_1.wgsl");
            pub const Q2_K: &str = generic_prelude_of!($x; "formats/q2_k.wgsl");
            pub const Q3_K: &str = generic_prelude_of!($x; "formats/q3_k.wgsl");
            pub const Q4_K: &str = texture_prelude_of!($x; "texture/k_scales.wgsl", $q4_k);
            pub const Q5_K: &str = texture_prelude_of!($x; "texture/k_scales.wgsl", $q5_k);
            pub const Q6_K: &str = texture_prelude_of!($x; "texture/half_scales.wgsl", $q6_k);
        }
    };
}

texture_preludes!(
    /// linear_texture.wgsl's: x from its uniform tile (texture/x_uniform.wgsl), the K-quants a
    /// super-block at a time.
    texture_prelude,
    "texture/x_uniform.wgsl",
    k_quants "texture/q4_k.wgsl", "texture/q5_k.wgsl", "texture/q6_k.wgsl"
);
texture_preludes!(
    /// linear_shared.wgsl's: x shared through subgroups (texture/x_shared.wgsl), a window of
    /// 32 values at a time, so the K-quants a sub-block at a time.
    shared_prelude,
    "texture/x_shared.wgsl",
    k_quants "texture/q4_k_sub.wgsl", "texture/q5_k_sub.wgsl", "texture/q6_k_sub.wgsl"
);
