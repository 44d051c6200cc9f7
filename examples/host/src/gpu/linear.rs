//! out = x W^T + b on the GPU (shaders/linear.wgsl), W a [`Matrix`] of any weight format in
//! row chunks.

use std::sync::{Arc, Mutex};

use visattn::kernel::{Dispatch, PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::{self, Buffer, BufferUsages};
use visattn::{Context, uniform_block};

use super::matrix::{ChunkStore, Matrix, Staging, TextureTiling, WeightFormat};

uniform_block! {
    /// WGSL `LinearParams`.
    pub struct LinearParams = "LinearParams" {
        n: u32,
        m: u32,
        k: u32,
        bias: u32,
        ldo: u32,
        col0: u32,
        /// The token tile's first row of x and out (the texture kernel; 0 elsewhere).
        t0: u32,
        /// The slice of k the shared kernel's dispatch multiplies, values k0 .. k0 + kn (x's
        /// rows in its bindings are kn long; a slice after the first adds to out); 0 and k
        /// elsewhere.
        k0: u32,
        kn: u32,
        pad1: u32,
        pad2: u32,
        pad3: u32,
    }
}

uniform_block! {
    /// WGSL `XTile`: rows of x as the texture kernels read them, 64 KiB (WebGPU's default
    /// uniform binding limit) from a tile's first row (4 rows of 4096 values).
    pub struct XTile = "XTile" {
        v: [[f32; 4]; 4096],
    }
}

super::matrix::weight_kernel! {
    /// out [n, ldo] at col0.. = x [n, k] W [m, k]^T + b, 32 x 32 output tiles (4 x 4 an invocation); one variant per
    /// weight format (W's element type and `load_w` differ).
    pub struct LinearKernel, LinearInputs, LinearVariant = concat!(include_str!("../../shaders/linear/params.wgsl"), include_str!("../../shaders/linear.wgsl")), "linear", buffer_prelude;
    overrides [];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(LinearParams),
        x: storage(f32, read),
        w: storage(elem, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

super::matrix::weight_kernel! {
    /// out [1, ldo] at col0.. = x [1, k] W [m, k]^T + b: the matrix-vector product of a decode
    /// step, 4 rows per workgroup of 64; one variant per weight format.
    pub struct LinearVecKernel, LinearVecInputs, LinearVecVariant = concat!(include_str!("../../shaders/linear/params.wgsl"), include_str!("../../shaders/linear_vec/rows.wgsl"), include_str!("../../shaders/linear_vec.wgsl")), "linear_vec", buffer_prelude;
    overrides [];
    per_workgroup PerWorkgroup::Fixed(VEC_ROWS as u32);
    {
        p: uniform(LinearParams),
        x: storage(f32, read),
        w: storage(elem, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

super::matrix::weight_kernel! {
    /// [`LinearVecKernel`] with each row's partial sums added through subgroups (SUBGROUP):
    /// one barrier where the workgroup-memory tree takes 6.
    pub struct LinearVecSubgroupKernel, LinearVecSubgroupInputs, LinearVecSubgroupVariant = concat!(include_str!("../../shaders/linear/params.wgsl"), include_str!("../../shaders/linear_vec/rows.wgsl"), include_str!("../../shaders/linear_vec_subgroup.wgsl")), "linear_vec_subgroup", buffer_prelude;
    overrides [];
    per_workgroup PerWorkgroup::Fixed(VEC_ROWS as u32);
    {
        p: uniform(LinearParams),
        x: storage(f32, read),
        w: storage(elem, read),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

super::matrix::weight_kernel! {
    /// out [t0.., ldo] at col0.. = x [n <= 4, k] W [m, k]^T + b with W's words in an rgba32uint
    /// texture and x in a uniform binding, ROWS rows of W per invocation ([`Staging::Texture`],
    /// [`TextureTiling`]); one variant per weight format.
    pub struct LinearTextureKernel, LinearTextureInputs, LinearTextureVariant = include_str!("../../shaders/linear_texture.wgsl"), "linear_texture", texture_prelude;
    overrides ["TOKENS", "ROWS"];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        p: uniform(LinearParams),
        x: uniform(XTile),
        wt: texture_u32(),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

super::matrix::weight_kernel! {
    /// [`LinearTextureKernel`] with x shared through subgroups (adapters with subgroups of 8 or
    /// more lanes, [`subgroups_usable`]): tiles of up to 16 rows of x from 4 uniform bindings of
    /// TILE_TOKENS rows each ([`TextureTiling::prefill_shared`]); one variant per weight format.
    pub struct LinearSharedKernel, LinearSharedInputs, LinearSharedVariant = include_str!("../../shaders/linear_shared.wgsl"), "linear_shared", shared_prelude;
    overrides ["TOKENS", "ROWS", "TILE_TOKENS"];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        p: uniform(LinearParams),
        x0: uniform(XTile),
        x1: uniform(XTile),
        x2: uniform(XTile),
        x3: uniform(XTile),
        wt: texture_u32(),
        b: storage(f32, read),
        out: storage(f32, read_write),
    }
}

/// Whether the device runs [`LinearSharedKernel`]: subgroups (`Features::SUBGROUP`) of 8 lanes
/// or more, off the web (wgpu hands WGSL to a browser as written, and naga reads no `enable
/// subgroups;` yet, which a browser needs).
pub fn subgroups_usable(ctx: &Context) -> bool {
    let device = ctx.device();
    !cfg!(target_arch = "wasm32") && device.features().contains(wgpu::Features::SUBGROUP) && device.adapter_info().subgroup_min_size >= 8
}

/// Bytes of the texture kernel's uniform x binding: an activation buffer it reads holds this
/// much past a tile's first row ([`super::weights::buffer`] pads them).
pub const X_TILE_BYTES: u64 = std::mem::size_of::<XTile>() as u64;

/// Values of x one such binding holds (tokens x k <= this).
pub const X_TILE_VALUES: usize = X_TILE_BYTES as usize / 4;

/// Why the device cannot run the texture kernel, if it cannot: its uniform bindings must hold
/// an x tile (WebGPU's default 64 KiB does), and its storage bindings room for padded
/// activations (4 x tiles at least).
pub fn texture_unavailable(ctx: &Context) -> Option<String> {
    let uniform = ctx.device().limits().max_uniform_buffer_binding_size as u64;
    if uniform < X_TILE_BYTES {
        return Some(format!(
            "the device's uniform bindings hold {uniform} bytes, the texture kernel reads {X_TILE_BYTES}"
        ));
    }
    let storage = ctx.max_binding();
    (storage < 4 * X_TILE_BYTES)
        .then(|| format!("the storage binding limit of {storage} bytes leaves no room for activations padded by {X_TILE_BYTES} bytes"))
}

/// Rows of W per workgroup of the matrix-vector kernel.
const VEC_ROWS: usize = 4;

/// The tiled matmul's output tile (linear.wgsl): TILE x TILE outputs a workgroup.
const TILE: usize = 32;

/// The matmul of every linear layer: the kernel variant of each matrix's weight format,
/// built on first use and cached by the context; matrices in textures go through the texture
/// kernel as `tiling` says.
pub struct Matmul {
    ctx: Context,
    pub tiling: TextureTiling,
    /// A decode step's matrix-vector product over matrices in buffers adds each row's partial
    /// sums through subgroups (where the device has them, off the web: [`subgroups_usable`];
    /// else in workgroup memory).
    pub subgroup_sums: bool,
    /// Where the shared kernel takes x in slices of k: x copied slice after slice
    /// ([`SharedTile::slices`]), one buffer every bind of this matmul shares, grown to the
    /// largest x.
    slices: Mutex<Option<Buffer>>,
}

/// How the shared kernel ([`LinearSharedKernel`]) takes `n` rows of x of `k` values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SharedTile {
    /// Tokens a dispatch multiplies.
    tile: usize,
    /// Tokens an x binding holds (TILE_TOKENS).
    tile_tokens: usize,
    /// Rows of W an invocation multiplies.
    rows: usize,
    /// Slices of k, each a dispatch a tile adding to out after the first: 1, or as many as
    /// make the tile's tokens fit the 4 x bindings where a row of k values is too long for
    /// them (LLaMA-7B's down projection, k 11008: 4 tokens a tile unsliced, 16 in 4 slices).
    slices: usize,
}

impl Matmul {
    pub fn new(ctx: &Context) -> Self {
        Self::tiled(ctx, TextureTiling::PLAIN)
    }

    pub fn tiled(ctx: &Context, tiling: TextureTiling) -> Self {
        Self {
            ctx: ctx.clone(),
            tiling,
            subgroup_sums: subgroups_usable(ctx),
            slices: Mutex::new(None),
        }
    }

    /// The kernel for matrices of `format` (an f16 one needs a device with SHADER_F16).
    pub fn pipeline(&self, format: WeightFormat) -> Result<Arc<Pipeline>, visattn::Error> {
        self.ctx.pipeline_variant::<LinearKernel>(format.into(), &[])
    }

    /// Binds x [n, w.cols], w [m, k], an optional bias [m] and out [n, m]: one dispatch per row
    /// chunk of w, each writing its columns of out. One row of x (a decode step) goes through
    /// the matrix-vector kernel, more through the tiled matmul. Where the shared kernel takes
    /// x in slices of k, the first dispatch copies x into this matmul's slices buffer, which
    /// its every bind shares: record a bind's dispatches together and in order, with no other
    /// sliced bind of this matmul between its copy and its last slice (as every caller does).
    /// The buffer stays with the matmul, grown to the largest x sliced.
    pub fn bind(&self, n: usize, x: &Buffer, w: &Matrix, b: Option<&Buffer>, out: &Buffer) -> Result<Vec<Dispatch>, visattn::Error> {
        let (m, k) = (w.rows, w.cols);
        let mut dispatches = Vec::new();
        let textures = w.chunks.iter().any(|c| matches!(c.store, ChunkStore::Texture { .. }));
        let shared = self.shared_tile(n, k).filter(|_| textures);
        // x slice after slice, [slices, n, kn] (x [n, slices, kn] with its first two axes
        // swapped): a slice's rows of kn values side by side, as the kernel's bindings read
        // them. One row needs no copy: its slices are side by side already.
        let sliced = match shared {
            Some(s) if s.slices > 1 && n > 1 => {
                let xs = self.slices_buffer(n * k)?;
                dispatches.push(super::layout::Layout::new(&self.ctx)?.swap((n, s.slices, k / s.slices), x, &xs)?);
                xs
            }
            _ => x.clone(),
        };
        for chunk in &w.chunks {
            let params = |rows: usize, t0: usize, k0: usize, kn: usize| {
                self.ctx.uniform_buffer(
                    "linear params",
                    &LinearParams {
                        n: rows as u32,
                        m: chunk.rows as u32,
                        k: k as u32,
                        bias: b.is_some() as u32,
                        ldo: m as u32,
                        col0: chunk.row0 as u32,
                        t0: t0 as u32,
                        k0: k0 as u32,
                        kn: kn as u32,
                        pad1: 0,
                        pad2: 0,
                        pad3: 0,
                    },
                )
            };
            let bias = || Storage::new(b.unwrap_or(x).as_entire_buffer_binding(), if b.is_some() { m } else { 1 });
            let buffer = match &chunk.store {
                ChunkStore::Buffer(buffer) => buffer,
                ChunkStore::Texture { view, .. } => {
                    if let Some(SharedTile {
                        tile,
                        tile_tokens,
                        rows,
                        slices,
                    }) = shared
                    {
                        let pipeline = self.ctx.pipeline_variant::<LinearSharedKernel>(
                            w.format.into(),
                            &[
                                ("TOKENS", tile.min(n) as f64),
                                ("ROWS", rows as f64),
                                ("TILE_TOKENS", tile_tokens as f64),
                            ],
                        )?;
                        let kn = k / slices;
                        for (s, t0) in (0..slices).flat_map(|s| (0..n).step_by(tile).map(move |t0| (s, t0))) {
                            // Binding i from token t0 + i x tile_tokens of slice s; one no
                            // token of the tile reads takes t0's range (any range would do).
                            let range = |i: usize| {
                                let t = t0 + i * tile_tokens;
                                x_tile(&sliced, kn, s * n + if t < n && t < t0 + tile { t } else { t0 })
                            };
                            let p = params(tile.min(n - t0), t0, s * kn, kn);
                            let inputs = LinearSharedInputs {
                                p: p.as_entire_buffer_binding(),
                                x0: range(0)?,
                                x1: range(1)?,
                                x2: range(2)?,
                                x3: range(3)?,
                                wt: view,
                                b: bias(),
                                out: Storage::new(out.as_entire_buffer_binding(), n * m),
                            };
                            dispatches.push(
                                self.ctx
                                    .bind::<LinearSharedKernel>(&pipeline, inputs, chunk.rows.div_ceil(rows) as u32)?,
                            );
                        }
                        continue;
                    }
                    // Token tiles of up to 4 rows, x read as a uniform from each tile's row.
                    let largest = Matrix::texture_tile(k).ok_or_else(|| visattn::Error::Binding {
                        name: "wt",
                        reason: format!("rows of {k} values do not go through the texture kernel"),
                    })?;
                    let (tile, rows) = self.tile(n, k, largest);
                    // Pipelines specialised on the rows of x a tile multiplies (1 in a decode
                    // step) and the rows of W an invocation takes.
                    let pipeline = self.ctx.pipeline_variant::<LinearTextureKernel>(
                        w.format.into(),
                        &[("TOKENS", tile.min(n) as f64), ("ROWS", rows as f64)],
                    )?;
                    for t0 in (0..n).step_by(tile) {
                        let p = params(tile.min(n - t0), t0, 0, k);
                        let inputs = LinearTextureInputs {
                            p: p.as_entire_buffer_binding(),
                            x: x_tile(x, k, t0)?,
                            wt: view,
                            b: bias(),
                            out: Storage::new(out.as_entire_buffer_binding(), n * m),
                        };
                        dispatches.push(
                            self.ctx
                                .bind::<LinearTextureKernel>(&pipeline, inputs, chunk.rows.div_ceil(rows) as u32)?,
                        );
                    }
                    continue;
                }
            };
            let p = params(n, 0, 0, k);
            let (p, xs, wb, o) = (
                p.as_entire_buffer_binding(),
                Storage::new(x.as_entire_buffer_binding(), n * k),
                Storage::new(buffer.as_entire_buffer_binding(), w.elements(chunk)),
                Storage::new(out.as_entire_buffer_binding(), n * m),
            );
            dispatches.push(if n == 1 && self.subgroup_sums {
                let pipeline = self.ctx.pipeline_variant::<LinearVecSubgroupKernel>(w.format.into(), &[])?;
                let inputs = LinearVecSubgroupInputs {
                    p,
                    x: xs,
                    w: wb,
                    b: bias(),
                    out: o,
                };
                self.ctx.bind::<LinearVecSubgroupKernel>(&pipeline, inputs, chunk.rows as u32)?
            } else if n == 1 {
                let pipeline = self.ctx.pipeline_variant::<LinearVecKernel>(w.format.into(), &[])?;
                let inputs = LinearVecInputs {
                    p,
                    x: xs,
                    w: wb,
                    b: bias(),
                    out: o,
                };
                self.ctx.bind::<LinearVecKernel>(&pipeline, inputs, chunk.rows as u32)?
            } else {
                let pipeline = self.pipeline(w.format)?;
                let inputs = LinearInputs {
                    p,
                    x: xs,
                    w: wb,
                    b: bias(),
                    out: o,
                };
                let tiles = (n.div_ceil(TILE) * chunk.rows.div_ceil(TILE)) as u32;
                self.ctx.bind::<LinearKernel>(&pipeline, inputs, tiles)?
            });
        }
        Ok(dispatches)
    }
}

/// The uniform range of x [*, k] the texture kernels read from token t0 on: 64 KiB.
fn x_tile(x: &Buffer, k: usize, t0: usize) -> Result<wgpu::BufferBinding<'_>, visattn::Error> {
    let offset = (t0 * k * 4) as u64;
    if offset + X_TILE_BYTES > x.size() || !x.usage().contains(BufferUsages::UNIFORM) {
        return Err(visattn::Error::Binding {
            name: "x",
            reason: format!(
                "the texture kernel reads {X_TILE_BYTES} bytes of x as a uniform from byte {offset}: x needs UNIFORM usage and {} bytes (it has {})",
                offset + X_TILE_BYTES,
                x.size()
            ),
        });
    }
    Ok(wgpu::BufferBinding {
        buffer: x,
        offset,
        size: std::num::NonZeroU64::new(X_TILE_BYTES),
    })
}

impl Matmul {
    /// How the shared kernel takes `n` rows of x of `k` values, where the tiling asks for it
    /// and the device runs it, else None (the uniform tile's kernel): the tiling's tokens a
    /// tile (1 in a decode step), in slices of k where a row is too long for 4 bindings of 64
    /// KiB to hold them ([`Self::slices_of`]; a slice's values a multiple of 64, so its
    /// bindings keep the uniform offset alignment of 256 bytes), else as many as fit unsliced;
    /// the bindings hold the largest power of two of rows up to 16 that fits 64 KiB.
    fn shared_tile(&self, n: usize, k: usize) -> Option<SharedTile> {
        let t = &self.tiling;
        let shared = if n == 1 { t.decode_shared } else { t.prefill_shared };
        if !shared || k % 32 != 0 || !subgroups_usable(&self.ctx) {
            return None;
        }
        // The tokens a tile takes: the tiling's, or all n where fewer (2 tokens of k 11008 fit
        // unsliced: one dispatch, no copy).
        let (wanted, rows) = if n == 1 {
            (1, t.decode_rows as usize)
        } else {
            ((t.prefill_tokens as usize).min(n), t.prefill_rows as usize)
        };
        let slices = Self::slices_of(k, X_TILE_VALUES / wanted.div_ceil(4)).unwrap_or(1);
        let kn = k / slices;
        if kn > X_TILE_VALUES {
            return None;
        }
        let fits = X_TILE_VALUES / kn;
        let tile_tokens = if n == 1 {
            1
        } else {
            [16, 8, 4, 2, 1].into_iter().find(|&t| t <= fits)?
        };
        let tile = wanted.min(4 * tile_tokens);
        let aligned = (0..n)
            .step_by(tile)
            .flat_map(|t0| (0..4).map(move |i| t0 + i * tile_tokens))
            .all(|t| t >= n || (t * kn * 4) % 256 == 0);
        aligned.then_some(SharedTile {
            tile,
            tile_tokens,
            rows,
            slices,
        })
    }

    /// The fewest slices of a row of `k` values, each at most `most` values and a multiple of
    /// 64 (x's bindings' alignment, whole windows and blocks of every format), at most 8 of
    /// them: 1 where the row fits; None where no such slicing exists (the shared kernel then
    /// takes fewer tokens a tile, or none past 16384 values).
    fn slices_of(k: usize, most: usize) -> Option<usize> {
        if k <= most {
            return Some(1);
        }
        (k.div_ceil(most)..=8).find(|&s| k % s == 0 && (k / s) % 64 == 0)
    }

    /// The slices buffer with room for `floats` values (and a tile's read past them), grown
    /// where it has less.
    fn slices_buffer(&self, floats: usize) -> Result<Buffer, visattn::Error> {
        let mut held = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = held.as_ref().filter(|b| b.size() >= (floats * 4) as u64 + X_TILE_BYTES) {
            return Ok(b.clone());
        }
        // As an activation buffer (weights::buffer): UNIFORM usage, padded where it fits (where
        // not, the last tiles' x bindings are refused by x_tile, as for any unpadded x).
        let bytes = (floats * 4) as u64 + X_TILE_BYTES;
        let size = if bytes <= self.ctx.max_binding() {
            bytes
        } else {
            bytes - X_TILE_BYTES
        };
        let b = self.ctx.storage_buffer("x slices", size, BufferUsages::UNIFORM)?;
        *held = Some(b.clone());
        Ok(b)
    }

    /// Whether `n` rows of x of `k` values times a texture matrix go through
    /// [`LinearSharedKernel`] (else [`LinearTextureKernel`]).
    pub fn shares(&self, n: usize, k: usize) -> bool {
        self.shared_tile(n, k).is_some()
    }

    /// The slices of k the shared kernel takes `n` rows of x of `k` values in (1 where it
    /// takes them whole or does not take them).
    pub fn slices(&self, n: usize, k: usize) -> usize {
        self.shared_tile(n, k).map_or(1, |s| s.slices)
    }

    /// The texture kernel's (tokens a dispatch, rows of W an invocation) for `n` rows of x of
    /// `k` values: the tiling's, where the tiles' x offsets keep the uniform offset alignment
    /// (256 bytes) and fit `largest` (the matrix's largest tile), else the largest tile.
    fn tile(&self, n: usize, k: usize, largest: usize) -> (usize, usize) {
        if n == 1 {
            return (1, self.tiling.decode_rows as usize);
        }
        let tokens = self.tiling.prefill_tokens as usize;
        let tile = if tokens <= largest && (k * 4 * tokens) % 256 == 0 {
            tokens
        } else {
            largest
        };
        (tile, self.tiling.prefill_rows as usize)
    }
}

/// A storage buffer holding `data`.
pub fn upload(ctx: &Context, queue: &wgpu::Queue, name: &'static str, data: &[f32]) -> Result<Buffer, visattn::Error> {
    let b = ctx.storage_buffer(name, (data.len() * 4) as u64, BufferUsages::empty())?;
    queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    Ok(b)
}

/// What the weight-staging probe measured ([`autotune_staging`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StagingTune {
    /// The faster layout (with the fastest tiling when textures).
    pub best: Staging,
    /// Median seconds of the probe in each layout (textures with [`TextureTiling::PLAIN`]).
    pub buffer_s: f64,
    pub texture_s: f64,
    /// Seconds of a decode step over the tiling probe (the fastest of 5 turns), by (rows per
    /// invocation, x shared through subgroups).
    pub decode: Vec<((u32, bool), f64)>,
    /// Seconds of 16 tokens' prefill over the tiling probe (the fastest of 5), by (tokens a
    /// tile, rows, shared).
    pub prefill: Vec<((u32, u32, bool), f64)>,
}

impl std::fmt::Display for StagingTune {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.texture_s.is_nan() {
            return write!(f, "weights in buffers (this device cannot run the texture kernel)");
        }
        let layout = if matches!(self.best, Staging::Buffer) {
            "buffers"
        } else {
            "textures"
        };
        write!(
            f,
            "weights in {layout} (probe: buffers {:.2} ms, textures {:.2} ms)",
            self.buffer_s * 1e3,
            self.texture_s * 1e3
        )?;
        if let Staging::Texture(tiling) = self.best {
            let ms = |s: f64| format!("{:.2}", s * 1e3);
            let shared = TextureTiling::shared_mark;
            let decode: Vec<String> = self
                .decode
                .iter()
                .map(|((r, sh), s)| format!("{r}{}: {}", shared(*sh), ms(*s)))
                .collect();
            let prefill: Vec<String> = self
                .prefill
                .iter()
                .map(|((t, r, sh), s)| format!("{t}x{r}{}: {}", shared(*sh), ms(*s)))
                .collect();
            write!(
                f,
                ", tiled {tiling} (decode ms by rows {}; 16 tokens' prefill ms by tokens x rows {}; s: x shared through subgroups)",
                decode.join(", "),
                prefill.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The candidate of the fewest seconds.
fn fastest<K: Copy>(timed: &[(K, f64)]) -> Option<K> {
    timed.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|c| c.0)
}

/// Which weight layout the adapter runs faster, and the texture kernel's tiling, measured. The
/// layouts: a probe matrix of `format` (512 x 2048 values) multiplied with one row of x (a
/// decode step) and with 4 (a prefill tile), in storage buffers and in textures, each timed as
/// the median of 5 wall-clock runs waited for; lavapipe picks textures (storage loads cost per
/// lane there), GPUs usually buffers. Where textures win, the tilings: a decode step with 1, 2,
/// 4 and 8 rows of W per invocation, and 16 tokens' prefill in tiles of 4 (1, 2, 4 or 8 rows),
/// 2 (4, 8) and 1 (8); with x shared through subgroups too where the device runs that
/// ([`subgroups_usable`]): decode rows 1 to 8, prefill tiles of 16 (2, 4, 8 rows), 8 (2, 4, 8) and 4
/// (4). Over a 4096 x 2048 probe (a few milliseconds a run on a CPU adapter, so the
/// dispatch's fixed cost does not decide; rows enough for 8 workgroups at 8 an invocation),
/// each the fastest of 5 turns taken in rotation (a few seconds in all on lavapipe, most of it
/// compiling). The answer is a word a host can cache per adapter (`Staging`'s Display /
/// FromStr, e.g. `texture:decode=8s,prefill=8x4s`). Native only.
pub fn autotune_staging(ctx: &Context, queue: &wgpu::Queue, format: WeightFormat) -> crate::Result<StagingTune> {
    let mut tune = StagingTune {
        best: Staging::Buffer,
        buffer_s: f64::NAN,
        texture_s: f64::NAN,
        decode: Vec::new(),
        prefill: Vec::new(),
    };
    if texture_unavailable(ctx).is_some() {
        return Ok(tune);
    }
    let cols = 2048usize;
    // Tokens of the layouts' prefill probe, and of the tilings' (a whole tile of 16).
    let (tokens, tiling_tokens) = (4usize, 16usize);
    let xs: Vec<f32> = (0..tiling_tokens * cols).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
    let x = super::weights::buffer(ctx, "probe x", tiling_tokens * cols)?;
    queue.write_buffer(&x, 0, bytemuck::cast_slice(&xs));
    let out = super::weights::buffer(ctx, "probe out", tiling_tokens * 4096)?;
    // Median seconds of `n` rows of x times w, with `matmul`.
    let time = |matmul: &Matmul, w: &Matrix, ns: &[usize]| -> crate::Result<f64> {
        let mut dispatches = Vec::new();
        for &n in ns {
            dispatches.extend(matmul.bind(n, &x, w, None, &out)?);
        }
        super::bandwidth::median_seconds(ctx.device(), queue, 5, |pass| {
            for d in &dispatches {
                d.record(pass, &[]);
            }
        })
    };
    let plain = Matmul::new(ctx);
    let mut w = Matrix::probe(ctx, queue, (512, cols), format, 7)?;
    tune.buffer_s = time(&plain, &w, &[1, tokens])?;
    tune.texture_s = if w.stage_in_texture(ctx, queue)? {
        time(&plain, &w, &[1, tokens])?
    } else {
        f64::INFINITY
    };
    if tune.buffer_s <= tune.texture_s {
        return Ok(tune);
    }
    let mut w = Matrix::probe(ctx, queue, (4096, cols), format, 8)?;
    w.stage_in_texture(ctx, queue)?;
    let mut tiling = TextureTiling::PLAIN;
    // Every candidate bound first, then timed in turns, each its fastest of 5 turns: a CPU
    // adapter's speed drifts with the machine's other work, and drift only adds time, so
    // neither the order nor a slow spell picks the winner.
    // x through the uniform tile, and shared through subgroups where the device runs that.
    let ways: &[bool] = if subgroups_usable(ctx) { &[false, true] } else { &[false] };
    let decode: Vec<TextureTiling> = ways
        .iter()
        .flat_map(|&subgroup| {
            TextureTiling::ROWS.into_iter().map(move |rows| TextureTiling {
                decode_rows: rows,
                decode_shared: subgroup,
                ..tiling
            })
        })
        .collect();
    let prefill: Vec<TextureTiling> = ways
        .iter()
        .flat_map(|&subgroup| {
            let tiles: &[(u32, u32)] = if subgroup {
                &[(16, 2), (16, 4), (16, 8), (8, 2), (8, 4), (8, 8), (4, 4)]
            } else {
                &[(4, 1), (4, 2), (4, 4), (4, 8), (2, 4), (2, 8), (1, 8)]
            };
            tiles.iter().map(move |&(tokens_a_tile, rows)| TextureTiling {
                prefill_tokens: tokens_a_tile,
                prefill_rows: rows,
                prefill_shared: subgroup,
                ..tiling
            })
        })
        .collect();
    let mut candidates = Vec::new();
    for (t, n) in decode.iter().map(|t| (t, 1)).chain(prefill.iter().map(|t| (t, tiling_tokens))) {
        candidates.push(Matmul::tiled(ctx, *t).bind(n, &x, &w, None, &out)?);
    }
    let mut best = vec![f64::INFINITY; candidates.len()];
    for _ in 0..5 {
        for (dispatches, best) in candidates.iter().zip(&mut best) {
            let s = super::bandwidth::median_seconds(ctx.device(), queue, 1, |pass| {
                for d in dispatches {
                    d.record(pass, &[]);
                }
            })?;
            *best = best.min(s);
        }
    }
    let (decode_s, prefill_s) = best.split_at(decode.len());
    tune.decode = decode
        .iter()
        .zip(decode_s)
        .map(|(t, &s)| ((t.decode_rows, t.decode_shared), s))
        .collect();
    tune.prefill = prefill
        .iter()
        .zip(prefill_s)
        .map(|(t, &s)| ((t.prefill_tokens, t.prefill_rows, t.prefill_shared), s))
        .collect();
    (tiling.decode_rows, tiling.decode_shared) = fastest(&tune.decode).unwrap_or((1, false));
    (tiling.prefill_tokens, tiling.prefill_rows, tiling.prefill_shared) = fastest(&tune.prefill).unwrap_or((4, 1, false));
    tune.best = Staging::Texture(tiling);
    Ok(tune)
}
