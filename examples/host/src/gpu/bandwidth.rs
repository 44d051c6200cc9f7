//! The ceilings the bench divides by, measured on the device in the same run: the read
//! bandwidth a decode step's weights come at (visattn's read-only baseline over storage,
//! `visattn::baseline`, and its counterpart through a texture, shaders/read_texture.wgsl, the
//! layout `Staging::Texture` reads weights in: a matrix-vector product reads no faster than the
//! faster of the two), whether the decode kernel is bound by those reads or by its arithmetic
//! ([`resident_rates`]), the floor of any product through a texture: the read plus the FMAs
//! the weights need ([`floor_rate`]), and the FMA rate no matmul exceeds ([`fma_peak`]).

use std::time::Instant;

use visattn::kernel::{PerWorkgroup, Storage};
use visattn::wgpu::{self, BufferUsages};
use visattn::{Context, kernel, uniform_block};

use super::matrix::TEXELS_PER_ROW;
use crate::error::{Error, Result};

uniform_block! {
    /// WGSL `ReadParams`.
    pub struct ReadParams = "ReadParams" {
        texels: u32,
        per_workgroup: u32,
        /// 0: lanes interleaved, 64 texels a step; 1: each lane its own run (read_texture.wgsl).
        streams: u32,
        pad1: u32,
    }
}

kernel! {
    /// The texture read baseline: a partial sum of texels per invocation; with FMAS > 0 the
    /// floor of a product through a texture (the read plus FMAS FMAs a texel, x in registers,
    /// no decoding).
    pub struct ReadTexture, ReadTextureInputs = "read_texture.wgsl", include_str!("../../shaders/read_texture.wgsl"), prelude "";
    overrides ["FMAS"];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(ReadParams),
        src: texture_u32(),
        dst: storage(u32, read_write),
    }
}

uniform_block! {
    /// WGSL `PeakParams`.
    pub struct PeakParams = "PeakParams" {
        iterations: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

kernel! {
    /// The FMA peak: 8 independent vec4 FMA chains per invocation, no memory reads.
    pub struct FmaPeak, FmaPeakInputs = "fma_peak.wgsl", include_str!("../../shaders/fma_peak.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        p: uniform(PeakParams),
        dst: storage(f32, read_write),
    }
}

/// The adapter's f32 FMA rate in flop/s (2 per FMA): [`FmaPeak`] over 32768 invocations of
/// 2048 iterations (8.6 GFLOP), the median of 3 runs. No matmul runs faster on the adapter.
pub fn fma_peak(ctx: &Context, queue: &wgpu::Queue) -> Result<f64> {
    let v = |e: visattn::Error| Error::Input(e.to_string());
    let (invocations, iterations) = (32768u32, 2048u32);
    let pipeline = ctx.pipeline::<FmaPeak>(&[]).map_err(v)?;
    let dst = ctx
        .storage_buffer("fma peak out", invocations as u64 * 4, BufferUsages::empty())
        .map_err(v)?;
    let params = ctx.uniform_buffer(
        "fma peak params",
        &PeakParams {
            iterations,
            pad0: 0,
            pad1: 0,
            pad2: 0,
        },
    );
    let d = ctx
        .bind::<FmaPeak>(
            &pipeline,
            FmaPeakInputs {
                p: params.as_entire_buffer_binding(),
                dst: Storage::whole(&dst),
            },
            invocations,
        )
        .map_err(v)?;
    let secs = median_seconds(ctx.device(), queue, 3, |pass| d.record(pass, &[]))?;
    Ok(invocations as f64 * iterations as f64 * 128.0 / secs)
}

/// What the two baselines read, in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadRates {
    pub storage: f64,
    pub texture: f64,
    /// Bytes each read.
    pub bytes: u64,
}

impl ReadRates {
    /// The faster read: what a decode step's weights can be read at, at best.
    pub fn best(&self) -> f64 {
        self.storage.max(self.texture)
    }
}

/// Median seconds of `repeats` runs of `record`, each submitted alone and waited for (as a
/// decode step is), after one untimed run: how every probe of the host is timed.
pub fn median_seconds(device: &wgpu::Device, queue: &wgpu::Queue, repeats: usize, record: impl Fn(&mut wgpu::ComputePass)) -> Result<f64> {
    let run = || -> Result<f64> {
        let t0 = Instant::now();
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            record(&mut pass);
        }
        queue.submit([enc.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Input(format!("timing a probe: {e}")))?;
        Ok(t0.elapsed().as_secs_f64())
    };
    run()?;
    let mut t = (0..repeats.max(1)).map(|_| run()).collect::<Result<Vec<_>>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// Both read baselines over `bytes` (at most one storage binding), the best of three workgroup
/// sizes each, median of `repeats` wall-clock runs.
pub fn read_rates(ctx: &Context, queue: &wgpu::Queue, bytes: u64, repeats: usize) -> Result<ReadRates> {
    use visattn::baseline::{Baseline, BaselineKind};
    let device = ctx.device();
    let row = TEXELS_PER_ROW as u64 * 16;
    // Whole texture rows, within one binding.
    let bytes = (bytes.min(ctx.max_binding()) / row).max(1) * row;
    let v = |e: visattn::Error| Error::Input(e.to_string());

    let len = (bytes / 4) as u32;
    let src = visattn::baseline::buffer(ctx, bytes).map_err(v)?;
    let baseline = Baseline::new(ctx, BaselineKind::Read).map_err(v)?;
    let mut storage = 0f64;
    for per_wg in [640u32, 4096, 16384] {
        let dst = visattn::baseline::buffer(ctx, BaselineKind::Read.output_len(len, per_wg) * 4).map_err(v)?;
        let b = baseline
            .bind(src.as_entire_buffer_binding(), dst.as_entire_buffer_binding(), len, per_wg)
            .map_err(v)?;
        let secs = median_seconds(device, queue, repeats, |pass| b.record(pass))?;
        storage = storage.max(b.bytes_read as f64 / secs);
    }

    let texture = texture_read(ctx, queue, bytes, 1, repeats)?;
    Ok(ReadRates { storage, texture, bytes })
}

/// The FMAs a texel of `format` asks of a tile of `tokens` rows of x: the weights its 16 bytes
/// hold (rounded down: 8 for f16, 15 for Q8_0, 28 for Q4_0 and Q4_K) times the tokens. None
/// for a format without a byte size per row.
pub fn fmas_per_texel(format: super::matrix::WeightFormat, tokens: usize) -> Option<u32> {
    // A row long enough for every block size (256 values a K-quant super-block).
    let cols = 4096;
    let bytes = format.row_bytes(cols)?;
    Some((16 * cols * tokens / bytes) as u32)
}

/// The floor of a matrix-vector product (or a prefill tile) over `bytes` of weights in a
/// texture: bytes / s of the texture read with `fmas` FMAs a texel and nothing else
/// (shaders/read_texture.wgsl with FMAS: x in registers, no decoding, the read's texels in its
/// order), the best of the read's three workgroup sizes. No kernel that reads those bytes through a texture and
/// does those FMAs runs faster on the adapter.
pub fn floor_rate(ctx: &Context, queue: &wgpu::Queue, bytes: u64, fmas: u32, repeats: usize) -> Result<f64> {
    if fmas == 0 {
        return Err(Error::Input("the floor of a product needs at least one FMA a texel".into()));
    }
    texture_pass(ctx, queue, bytes, 1, repeats, Some(fmas))
}

/// The texture read baseline over `bytes` (whole texture rows), each run reading them `times`
/// times (one dispatch each): bytes x times / the median run, the best of three workgroup sizes.
fn texture_read(ctx: &Context, queue: &wgpu::Queue, bytes: u64, times: usize, repeats: usize) -> Result<f64> {
    texture_pass(ctx, queue, bytes, times, repeats, None)
}

/// [`texture_read`], or with `fmas` the floor's read ([`floor_rate`]): the same texels in
/// the same order.
fn texture_pass(ctx: &Context, queue: &wgpu::Queue, bytes: u64, times: usize, repeats: usize, fmas: Option<u32>) -> Result<f64> {
    let device = ctx.device();
    let v = |e: visattn::Error| Error::Input(e.to_string());
    let row = TEXELS_PER_ROW as u64 * 16;
    let height = (bytes / row) as u32;
    let texture = super::matrix::weight_texture(device, "read baseline", height);
    let view = texture.create_view(&Default::default());
    let texels = (bytes / 16) as u32;
    let pipeline = ctx.pipeline::<ReadTexture>(&[("FMAS", fmas.unwrap_or(0) as f64)]).map_err(v)?;
    let mut texture_rate = 0f64;
    // Every workgroup share in both orders (lanes interleaved, each lane its own run): the
    // fastest is the adapter's read.
    for (per_wg, streams) in [640u32, 4096, 16384].into_iter().flat_map(|w| [(w, 0u32), (w, 1)]) {
        let groups = texels.div_ceil(per_wg);
        let dst = ctx
            .storage_buffer("read baseline out", groups as u64 * 64 * 4, BufferUsages::empty())
            .map_err(v)?;
        let params = ctx.uniform_buffer(
            "read baseline params",
            &ReadParams {
                texels,
                per_workgroup: per_wg,
                streams,
                pad1: 0,
            },
        );
        let d = ctx
            .bind::<ReadTexture>(
                &pipeline,
                ReadTextureInputs {
                    p: params.as_entire_buffer_binding(),
                    src: &view,
                    dst: Storage::whole(&dst),
                },
                groups,
            )
            .map_err(v)?;
        let secs = median_seconds(device, queue, repeats, |pass| {
            for _ in 0..times {
                d.record(pass, &[]);
            }
        })?;
        texture_rate = texture_rate.max((bytes * times as u64) as f64 / secs);
    }
    Ok(texture_rate)
}

/// Whether the texture kernel's decode is bound by the reads or by its own arithmetic: a
/// matrix-vector product over a matrix of `format` small enough to stay in a CPU adapter's
/// caches (2048 rows x 1024 values, at most 8 MiB: an L3 cache holds it), and the texture read
/// of as many bytes, each repeated 32 times a run (as many dispatches each, so both pay the
/// same dispatch costs). Returns (the product's weight bytes / s, the read's bytes / s): with
/// memory out of the way, a product under the read is bound by its own arithmetic (decoding,
/// FMAs) by that much. The product runs in the model's `tiling`.
pub fn resident_rates(
    ctx: &Context,
    queue: &wgpu::Queue,
    format: super::matrix::WeightFormat,
    tiling: super::matrix::TextureTiling,
) -> Result<(f64, f64)> {
    use super::matrix::Matrix;
    let (rows, cols, times) = (2048usize, 1024usize, 32usize);
    let mut w = Matrix::probe(ctx, queue, (rows, cols), format, 11)?;
    if !w.stage_in_texture(ctx, queue)? {
        return Err(Error::Input(format!("a {} probe matrix does not go into a texture", format.name())));
    }
    let x = super::weights::buffer(ctx, "probe x", cols)?;
    queue.write_buffer(&x, 0, bytemuck::cast_slice(&crate::random::random(cols, 12)));
    let out = super::weights::buffer(ctx, "probe out", rows)?;
    let dispatches = super::linear::Matmul::tiled(ctx, tiling)
        .bind(1, &x, &w, None, &out)
        .map_err(|e| Error::Input(e.to_string()))?;
    let secs = median_seconds(ctx.device(), queue, 5, |pass| {
        for _ in 0..times {
            for d in &dispatches {
                d.record(pass, &[]);
            }
        }
    })?;
    let bytes = w.bytes();
    let row = TEXELS_PER_ROW as u64 * 16;
    let read = texture_read(ctx, queue, bytes.div_ceil(row) * row, times, 5)?;
    Ok(((bytes * times as u64) as f64 / secs, read))
}
