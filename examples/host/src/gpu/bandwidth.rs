//! The read bandwidth a decode step is divided by, measured on the device in the same run:
//! visattn's read-only baseline over storage (`visattn::baseline`) and its counterpart through a
//! texture (shaders/read_texture.wgsl), the layout [`Staging::Texture`] reads weights in. A
//! matrix-vector product reads no faster than the faster of the two.

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
        pad0: u32,
        pad1: u32,
    }
}

kernel! {
    /// The texture read baseline: a partial sum of texels per invocation.
    pub struct ReadTexture, ReadTextureInputs = "read_texture.wgsl", include_str!("../../shaders/read_texture.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(1);
    {
        p: uniform(ReadParams),
        src: texture_u32(),
        dst: storage(u32, read_write),
    }
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
/// decode step is), after one untimed run.
fn time(device: &wgpu::Device, queue: &wgpu::Queue, repeats: usize, record: impl Fn(&mut wgpu::ComputePass)) -> Result<f64> {
    let run = || -> Result<f64> {
        let t0 = Instant::now();
        let mut enc = device.create_command_encoder(&Default::default());
        record(&mut enc.begin_compute_pass(&Default::default()));
        queue.submit([enc.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Input(format!("timing a read baseline: {e}")))?;
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
        let secs = time(device, queue, repeats, |pass| b.record(pass))?;
        storage = storage.max(b.bytes_read as f64 / secs);
    }

    let height = (bytes / row) as u32;
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("read baseline"),
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
    });
    let view = texture.create_view(&Default::default());
    let texels = (bytes / 16) as u32;
    let pipeline = ctx.pipeline::<ReadTexture>(&[]).map_err(v)?;
    let mut texture_rate = 0f64;
    for per_wg in [640u32, 4096, 16384] {
        let groups = texels.div_ceil(per_wg);
        let dst = ctx
            .storage_buffer("read baseline out", groups as u64 * 64 * 4, BufferUsages::empty())
            .map_err(v)?;
        let params = ctx.uniform_buffer(
            "read baseline params",
            &ReadParams {
                texels,
                per_workgroup: per_wg,
                pad0: 0,
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
        let secs = time(device, queue, repeats, |pass| d.record(pass, &[]))?;
        texture_rate = texture_rate.max(bytes as f64 / secs);
    }
    Ok(ReadRates {
        storage,
        texture: texture_rate,
        bytes,
    })
}
