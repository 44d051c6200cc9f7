//! Attention heatmaps drawn by wgpu from the buffers VAR works on: a render pipeline
//! (`heatmap.wgsl`) that shows one attention row over the image's patch grid before and after
//! VAR side by side, sinks outlined, with a legend; and a compute pass
//! (`heatmap_gather.wgsl`) that fills its per-patch buffer on the GPU, so a host can record
//! VAR and the picture into one encoder without a round trip.

use std::num::NonZeroU64;
use std::sync::Arc;

use wgpu::{BindGroup, BindGroupLayout, Buffer, BufferUsages, ComputePass, Device, Queue, RenderPass, RenderPipeline};

use crate::error::{Error, Result};
use crate::kernel::PerWorkgroup::Fixed;
use crate::kernel::{Context, Dispatch, Pipeline, Storage};
use crate::shaders;
use crate::{kernel, uniform_block};

kernel! {
    /// One attention row per image patch for the heatmap; items: patches.
    pub(crate) struct HeatmapGather, HeatmapGatherInputs = "heatmap_gather.wgsl", shaders::HEATMAP_GATHER, prelude shaders::PRELUDE;
    overrides [];
    per_workgroup Fixed(64);
    {
        params: uniform(GatherUniform),
        before: storage(f32, read),
        after: storage(f32, read),
        selected: storage(u32, read),
        classes: storage(u32, read),
        values: storage(f32, read_write),
        scale: storage(atomic_u32, read_write),
        sinks: storage(u32, read_write),
    }
}

uniform_block! {
    /// WGSL `GatherParams` (heatmap_gather.wgsl).
    pub(crate) struct GatherUniform = "GatherParams" {
        heads: u32,
        keys: u32,
        image_start: u32,
        grid: u32,
        head: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

/// WGSL `View` (heatmap.wgsl), in bytes.
const VIEW_SIZE: u64 = 16;

/// Gather `head` = this for the mean over the row's selected heads.
pub const MEAN_OF_SELECTED: u32 = u32::MAX;

/// The heatmap pipelines for one color target format.
#[derive(Debug, Clone)]
pub struct Heatmap {
    ctx: Context,
    render_layout: BindGroupLayout,
    render: RenderPipeline,
    gather: Arc<Pipeline>,
}

/// One picture's buffers: per-patch values [2, grid^2] (before, after), the shared scale, the
/// sink flags, and the view uniform.
pub struct HeatmapTarget {
    grid: usize,
    view: Buffer,
    values: Buffer,
    scale: Buffer,
    sinks: Buffer,
    render_group: BindGroup,
}

/// GPU inputs of [`Heatmap::gather`]: the row of every head before and after VAR [H, K], the
/// row's selected flag per head [H] (u32), and the key classes [K] (u32, bit 1 = sink).
pub struct GatherInputs<'a> {
    pub before: &'a Buffer,
    pub after: &'a Buffer,
    pub selected: &'a Buffer,
    pub classes: &'a Buffer,
    pub heads: usize,
    pub keys: usize,
    pub image_start: usize,
    /// A head, or [`MEAN_OF_SELECTED`].
    pub head: u32,
}

/// Bind group of one gather.
pub struct GatherBinding {
    dispatch: Dispatch,
}

/// A fragment-stage storage or uniform buffer entry of the render layout.
fn fragment_buffer(binding: u32, ty: wgpu::BufferBindingType, min_size: u64) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: NonZeroU64::new(min_size),
        },
        count: None,
    }
}

impl Heatmap {
    pub fn new(ctx: &Context, format: wgpu::TextureFormat) -> Result<Self> {
        use wgpu::BufferBindingType::Uniform;
        let device = ctx.device();
        let frag = wgpu::ShaderStages::FRAGMENT;
        let read = wgpu::BufferBindingType::Storage { read_only: true };
        let render_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("visattn heatmap"),
            entries: &[
                fragment_buffer(0, Uniform, VIEW_SIZE),
                fragment_buffer(1, read, 4),
                fragment_buffer(2, read, 4),
                fragment_buffer(3, read, 4),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: frag,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 5,
                    visibility: frag,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("visattn heatmap"),
            source: wgpu::ShaderSource::Wgsl(shaders::HEATMAP.into()),
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&render_layout)],
            immediate_size: 0,
        });
        let render = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("visattn heatmap"),
            layout: Some(&layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            primitive: Default::default(),
            depth_stencil: None,
            multisample: Default::default(),
            multiview_mask: None,
            cache: None,
        });
        Ok(Self {
            gather: ctx.pipeline::<HeatmapGather>(&[])?,
            ctx: ctx.clone(),
            render_layout,
            render,
        })
    }

    /// Buffers for a `grid` x `grid` patch picture drawn into a `width` x `height` target.
    pub fn target(&self, device: &Device, grid: usize, width: u32, height: u32) -> Result<HeatmapTarget> {
        self.target_over(device, None, grid, width, height)
    }

    /// As [`Heatmap::target`], blended over a picture: RGBA8 pixels, `picture_width` wide.
    pub fn target_over(
        &self,
        device: &Device,
        picture: Option<(&Queue, &[u8], u32)>,
        grid: usize,
        width: u32,
        height: u32,
    ) -> Result<HeatmapTarget> {
        if grid == 0 || width == 0 || height == 0 {
            return Err(Error::Shape(format!("heatmap of a {grid}x{grid} grid into {width}x{height}")));
        }
        let max_side = device.limits().max_texture_dimension_2d;
        if width > max_side || height > max_side {
            return Err(Error::Shape(format!(
                "heatmap frame {width}x{height} is over this device's max_texture_dimension_2d ({max_side})"
            )));
        }
        let cells = grid * grid;
        let buffer = |name, len: usize| self.ctx.storage_buffer(name, (len * 4) as u64, BufferUsages::empty());
        let values = buffer("heatmap values", 2 * cells)?;
        let scale = buffer("heatmap scale", 1)?;
        let sinks = buffer("heatmap sinks", cells)?;
        let picture = match picture {
            Some((queue, rgba, pw)) if pw > 0 && rgba.len() % (4 * pw as usize) == 0 && !rgba.is_empty() => {
                let ph = (rgba.len() / (4 * pw as usize)) as u32;
                Some((queue, fit_picture(rgba, pw, ph, max_side)))
            }
            Some((_, rgba, pw)) => {
                return Err(Error::Shape(format!(
                    "picture of {} bytes is not RGBA rows {pw} pixels wide",
                    rgba.len()
                )));
            }
            None => None,
        };
        let (pw, ph) = picture.as_ref().map_or((1, 1), |(_, p)| (p.1, p.2));
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("visattn heatmap picture"),
            size: wgpu::Extent3d {
                width: pw,
                height: ph,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8UnormSrgb,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        if let Some((queue, (rgba, _, _))) = &picture {
            queue.write_texture(
                texture.as_image_copy(),
                rgba,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4 * pw),
                    rows_per_image: Some(ph),
                },
                wgpu::Extent3d {
                    width: pw,
                    height: ph,
                    depth_or_array_layers: 1,
                },
            );
        }
        let picture_view = texture.create_view(&Default::default());
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let view_data: [u32; 4] = [
            grid as u32,
            (width as f32).to_bits(),
            (height as f32).to_bits(),
            picture.is_some() as u32,
        ];
        let view = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("visattn heatmap view"),
                contents: bytemuck::cast_slice(&view_data),
                usage: BufferUsages::UNIFORM,
            },
        );
        let render_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("visattn heatmap"),
            layout: &self.render_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: view.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: values.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: scale.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: sinks.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::TextureView(&picture_view),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: wgpu::BindingResource::Sampler(&sampler),
                },
            ],
        });
        Ok(HeatmapTarget {
            grid,
            view,
            values,
            scale,
            sinks,
            render_group,
        })
    }

    /// Host path: per-patch values before and after VAR and the sink patches.
    pub fn upload(&self, queue: &Queue, target: &HeatmapTarget, before: &[f32], after: &[f32], sinks: &[bool]) -> Result<()> {
        let cells = target.grid * target.grid;
        if before.len() != cells || after.len() != cells || sinks.len() != cells {
            return Err(Error::Shape(format!("heatmap needs {cells} values per panel and sink flags")));
        }
        crate::var::check_finite("heatmap", before)?;
        crate::var::check_finite("heatmap", after)?;
        let top = before.iter().chain(after).fold(0.0f32, |m, &v| m.max(v));
        queue.write_buffer(&target.values, 0, bytemuck::cast_slice(before));
        queue.write_buffer(&target.values, (cells * 4) as u64, bytemuck::cast_slice(after));
        queue.write_buffer(&target.scale, 0, bytemuck::bytes_of(&top.to_bits()));
        let flags: Vec<u32> = sinks.iter().map(|&s| s as u32).collect();
        queue.write_buffer(&target.sinks, 0, bytemuck::cast_slice(&flags));
        Ok(())
    }

    /// GPU path: binds the row buffers the host's VAR pass used.
    pub fn bind_gather(&self, target: &HeatmapTarget, inputs: GatherInputs) -> Result<GatherBinding> {
        let cells = target.grid * target.grid;
        if inputs.image_start + cells > inputs.keys
            || inputs.heads == 0
            || (inputs.head != MEAN_OF_SELECTED && inputs.head as usize >= inputs.heads)
        {
            return Err(Error::Shape(format!(
                "gather of a {0}x{0} grid from key {1} of {2}, head {3} of {4}",
                target.grid, inputs.image_start, inputs.keys, inputs.head, inputs.heads
            )));
        }
        let params = self.ctx.uniform_buffer(
            "visattn gather params",
            &GatherUniform {
                heads: inputs.heads as u32,
                keys: inputs.keys as u32,
                image_start: inputs.image_start as u32,
                grid: target.grid as u32,
                head: inputs.head,
                pad0: 0,
                pad1: 0,
                pad2: 0,
            },
        );
        let row = inputs.heads * inputs.keys;
        let dispatch = self.ctx.bind::<HeatmapGather>(
            &self.gather,
            HeatmapGatherInputs {
                params: params.as_entire_buffer_binding(),
                before: Storage::new(inputs.before.as_entire_buffer_binding(), row),
                after: Storage::new(inputs.after.as_entire_buffer_binding(), row),
                selected: Storage::new(inputs.selected.as_entire_buffer_binding(), inputs.heads),
                classes: Storage::new(inputs.classes.as_entire_buffer_binding(), inputs.keys),
                values: Storage::whole(&target.values),
                scale: Storage::whole(&target.scale),
                sinks: Storage::whole(&target.sinks),
            },
            cells as u32,
        )?;
        Ok(GatherBinding { dispatch })
    }

    /// Clears the shared scale (an encoder command, before the pass that gathers).
    pub fn reset(&self, encoder: &mut wgpu::CommandEncoder, target: &HeatmapTarget) {
        encoder.clear_buffer(&target.scale, 0, None);
    }

    /// Records the gather into the host's compute pass (after [`Heatmap::reset`]).
    pub fn gather(&self, pass: &mut ComputePass, binding: &GatherBinding) {
        binding.dispatch.record(pass, &[]);
    }

    /// Records the picture into the host's render pass (one full-screen triangle).
    pub fn render(&self, pass: &mut RenderPass, target: &HeatmapTarget) {
        pass.set_pipeline(&self.render);
        pass.set_bind_group(0, &target.render_group, &[]);
        pass.draw(0..3, 0..1);
    }
}

impl HeatmapTarget {
    pub fn grid(&self) -> usize {
        self.grid
    }
    /// The per-patch values [2, grid^2] (for inspection).
    pub fn values_buffer(&self) -> &Buffer {
        &self.values
    }
    pub fn view_buffer(&self) -> &Buffer {
        &self.view
    }
}

/// A picture whose sides fit in `max_side` texels: itself, or box-filtered down by the smallest
/// whole factor that fits (a 9000 x 100 photo on an 8192 limit becomes 4500 x 50).
fn fit_picture(rgba: &[u8], pw: u32, ph: u32, max_side: u32) -> (std::borrow::Cow<'_, [u8]>, u32, u32) {
    let max_side = max_side.max(1);
    if pw <= max_side && ph <= max_side {
        return (std::borrow::Cow::Borrowed(rgba), pw, ph);
    }
    let f = pw.max(ph).div_ceil(max_side);
    let (w, h) = (pw.div_ceil(f), ph.div_ceil(f));
    let mut out = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0u32; 4];
            let mut n = 0;
            for sy in y * f..((y + 1) * f).min(ph) {
                for sx in x * f..((x + 1) * f).min(pw) {
                    let i = ((sy * pw + sx) * 4) as usize;
                    for c in 0..4 {
                        sum[c] += rgba[i + c] as u32;
                    }
                    n += 1;
                }
            }
            out.extend(sum.map(|v| ((v + n / 2) / n) as u8));
        }
    }
    (std::borrow::Cow::Owned(out), w, h)
}

/// The colormap of `heatmap.wgsl` on the CPU (for tests and legends).
pub fn viridis(t: f32) -> [f32; 3] {
    const C: [[f32; 3]; 7] = [
        [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
        [0.105_093_04, 1.404_613_5, 1.384_590_2],
        [-0.330_861_83, 0.214_847_56, 0.095_095_16],
        [-4.634_230_5, -5.799_101, -19.332_441],
        [6.228_27, 14.179_933, 56.690_55],
        [4.776_385, -13.745_145, -65.353_03],
        [-5.435_456, 4.645_852_6, 26.312_435],
    ];
    let x = t.clamp(0.0, 1.0);
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let mut v = C[6][c];
        for k in (0..6).rev() {
            v = C[k][c] + x * v;
        }
        *o = v.clamp(0.0, 1.0);
    }
    out
}

/// An offscreen frame: [`encode_frame`] records the picture and the copy into `staging`;
/// once the GPU is done its rows (`bytes_per_row` apart) hold the RGBA8 pixels.
pub struct Frame {
    pub staging: Buffer,
    pub bytes_per_row: u32,
    pub width: u32,
    pub height: u32,
}

impl Frame {
    /// The pixels, `width * 4` bytes a row, from the mapped staging bytes.
    pub fn pixels(&self, staging_bytes: &[u8]) -> Vec<u8> {
        staging_bytes
            .chunks(self.bytes_per_row as usize)
            .take(self.height as usize)
            .flat_map(|r| r[..(self.width * 4) as usize].to_vec())
            .collect()
    }
}

/// Records `target` drawn into a new `width` x `height` RGBA8 texture and its copy into a
/// staging buffer (COPY_SRC, for the caller's own readback: blocking natively, async in the
/// browser).
pub fn encode_frame(
    device: &Device,
    encoder: &mut wgpu::CommandEncoder,
    heatmap: &Heatmap,
    target: &HeatmapTarget,
    width: u32,
    height: u32,
) -> Frame {
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("visattn heatmap frame"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = texture.create_view(&Default::default());
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("visattn heatmap"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            ..Default::default()
        });
        heatmap.render(&mut pass, target);
    }
    let bytes_per_row = (width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("visattn heatmap pixels"),
        size: (bytes_per_row * height) as u64,
        usage: BufferUsages::COPY_DST | BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(bytes_per_row),
                rows_per_image: Some(height),
            },
        },
        wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
    );
    Frame {
        staging,
        bytes_per_row,
        width,
        height,
    }
}

/// Renders `target` offscreen and reads the pixels back (tools and tests; a host renders into
/// its own pass with [`Heatmap::render`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn render_to_pixels(
    device: &Device,
    queue: &Queue,
    heatmap: &Heatmap,
    target: &HeatmapTarget,
    width: u32,
    height: u32,
) -> Result<Vec<u8>> {
    crate::error::scoped_blocking(device, || -> Result<Vec<u8>> {
        let mut encoder = device.create_command_encoder(&Default::default());
        let frame = encode_frame(device, &mut encoder, heatmap, target, width, height);
        queue.submit([encoder.finish()]);
        let bytes = crate::readback::read_bytes(device, queue, &frame.staging, 0, frame.staging.size())?;
        Ok(frame.pixels(&bytes))
    })?
}
