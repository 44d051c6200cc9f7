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
        weight: f32,
        accumulate: u32,
        pad0: u32,
    }
}

/// WGSL `View` (heatmap.wgsl), in bytes.
const VIEW_SIZE: u64 = 64;

/// Codes per label of heatmap.wgsl's labels buffer (the caption, the two titles).
const LABEL_CHARS: usize = 64;

/// The longest caption [`HeatmapTarget::set_caption`] takes, in characters.
pub const MAX_CAPTION: usize = LABEL_CHARS - 1;

/// Where `heatmap.wgsl` draws each part of a `width` x `height` frame, in pixels: the caption
/// line, the panels' titles, the two square panels side by side, the legend bar and its values.
/// Computed here once and handed to the shader, so tests and hosts know where every patch and
/// label lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeatmapLayout {
    pub width: u32,
    pub height: u32,
    /// Pixels per font pixel (glyphs are 5 x 7 font pixels in cells of 6 x 10); 0 in frames
    /// too small for labels.
    pub text_scale: u32,
    /// Top-left of the caption.
    pub caption: (u32, u32),
    /// Top of the titles' line (each centred over its panel).
    pub titles_y: u32,
    /// Top-left corners of the panels (before VAR, after VAR) and their side.
    pub panels: [(u32, u32); 2],
    pub side: u32,
    /// The legend bar: x0, y0, x1, y1 (exclusive).
    pub legend: [u32; 4],
    /// Top of the legend's values: 0 at the bar's left, half the scale centred, the top at its
    /// right.
    pub ticks_y: u32,
}

impl HeatmapLayout {
    pub fn new(width: u32, height: u32) -> Self {
        let s = (width / 400).min(height / 280).max(1);
        let m = 4 * s;
        let line = crate::viz::font::LINE_HEIGHT * s;
        let glyph = crate::viz::font::GLYPH_HEIGHT * s;
        let panels_top = m + 2 * line;
        let ticks_y = height.saturating_sub(m + glyph);
        let legend_y1 = ticks_y.saturating_sub(2 * s);
        let legend_y0 = legend_y1.saturating_sub(6 * s);
        let side = (width / 2)
            .saturating_sub(2 * m)
            .min(legend_y0.saturating_sub(m).saturating_sub(panels_top));
        let x = |side: u32, quarter: u32| (quarter * width / 4).saturating_sub(side / 2);
        if side >= 16 {
            return Self {
                width,
                height,
                text_scale: s,
                caption: (m, m),
                titles_y: m + line,
                panels: [(x(side, 1), panels_top), (x(side, 3), panels_top)],
                side,
                legend: [m, legend_y0, width.saturating_sub(m).max(m), legend_y1],
                ticks_y,
            };
        }
        // Too small for text (a thumbnail): the panels and the legend bar alone, no labels
        // (text_scale 0; the text lines sit below the frame).
        let m = (height / 25).max(1);
        let legend_y1 = height.saturating_sub(m);
        let legend_y0 = legend_y1.saturating_sub((height / 10).max(1));
        let side = (width / 2).saturating_sub(2 * m).min(legend_y0.saturating_sub(2 * m));
        Self {
            width,
            height,
            text_scale: 0,
            caption: (m, height),
            titles_y: height,
            panels: [(x(side, 1), m), (x(side, 3), m)],
            side,
            legend: [m, legend_y0, width.saturating_sub(m).max(m), legend_y1],
            ticks_y: height,
        }
    }

    /// The pixel at the centre of patch (row, col) of `panel` in a `grid` x `grid` picture.
    pub fn patch_center(&self, panel: usize, grid: usize, row: usize, col: usize) -> (u32, u32) {
        let (x0, y0) = self.panels[panel.min(1)];
        let cell = self.side as f32 / grid as f32;
        (x0 + ((col as f32 + 0.5) * cell) as u32, y0 + ((row as f32 + 0.5) * cell) as u32)
    }

    /// The View uniform of heatmap.wgsl.
    fn view(&self, grid: usize, has_picture: bool) -> [u32; 16] {
        let [lx0, ly0, lx1, ly1] = self.legend;
        [
            grid as u32,
            has_picture as u32,
            self.text_scale,
            self.side,
            self.panels[0].0,
            self.panels[0].1,
            self.panels[1].0,
            self.panels[1].1,
            lx0,
            ly0,
            lx1,
            ly1,
            self.caption.0,
            self.caption.1,
            self.titles_y,
            self.ticks_y,
        ]
    }
}

/// `text` as label codes, NUL-padded to a slot (characters without a glyph as '?').
fn label_codes(text: &str) -> [u32; LABEL_CHARS] {
    let mut codes = [0u32; LABEL_CHARS];
    for (c, slot) in text.chars().zip(&mut codes[..MAX_CAPTION]) {
        *slot = crate::viz::font::code(c);
    }
    codes
}

/// Gather `head` = this for the mean over the row's selected heads.
pub const MEAN_OF_SELECTED: u32 = u32::MAX;

/// The heatmap pipelines for one color target format.
#[derive(Debug, Clone)]
pub struct Heatmap {
    ctx: Context,
    render_layout: BindGroupLayout,
    render: RenderPipeline,
    gather: Arc<Pipeline>,
    /// The label font (font.rs), uploaded once.
    font: Buffer,
}

/// One picture's buffers: per-patch values [2, grid^2] (before, after), the shared scale, the
/// sink flags, and the view uniform.
pub struct HeatmapTarget {
    grid: usize,
    layout: HeatmapLayout,
    view: Buffer,
    /// Label codes [3 x 64]: the caption, "before VAR", "after VAR".
    labels: Buffer,
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
                fragment_buffer(6, read, 4),
                fragment_buffer(7, read, 4),
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
        let font = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("visattn heatmap font"),
                contents: bytemuck::cast_slice(&crate::viz::font::glyph_words()),
                usage: BufferUsages::STORAGE,
            },
        );
        Ok(Self {
            gather: ctx.pipeline::<HeatmapGather>(&[])?,
            ctx: ctx.clone(),
            render_layout,
            render,
            font,
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
        let layout = HeatmapLayout::new(width, height);
        if layout.side == 0 {
            return Err(Error::Shape(format!(
                "a {width}x{height} frame leaves no room for the heatmap's panels"
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
        let view_data = layout.view(grid, picture.is_some());
        let labels: Vec<u32> = ["", "before VAR", "after VAR"].iter().flat_map(|t| label_codes(t)).collect();
        let labels = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("visattn heatmap labels"),
                contents: bytemuck::cast_slice(&labels),
                usage: BufferUsages::STORAGE | BufferUsages::COPY_DST,
            },
        );
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
                wgpu::BindGroupEntry {
                    binding: 6,
                    resource: self.font.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 7,
                    resource: labels.as_entire_binding(),
                },
            ],
        });
        Ok(HeatmapTarget {
            grid,
            layout,
            labels,
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
        self.bind_gather_mean(target, inputs, 1, true)
    }

    /// [`bind_gather`](Self::bind_gather) for one of `layers` layers whose mean the picture
    /// shows: each adds 1 / `layers` of its values; the `first` one recorded writes them (record
    /// it first), the others add theirs. Bind one of each and record the second per further
    /// layer, its row buffers refilled in between.
    pub fn bind_gather_mean(&self, target: &HeatmapTarget, inputs: GatherInputs, layers: usize, first: bool) -> Result<GatherBinding> {
        if layers == 0 {
            return Err(Error::Shape("a mean over 0 layers".into()));
        }
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
                weight: 1.0 / layers as f32,
                accumulate: !first as u32,
                pad0: 0,
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
    /// Where the frame's parts lie.
    pub fn layout(&self) -> HeatmapLayout {
        self.layout
    }
    /// Writes the caption line over the panels (what the picture shows: the layer, the token,
    /// the heads). Characters the font lacks draw as '?'; more than [`MAX_CAPTION`] characters
    /// are refused (write a shorter caption rather than lose its end).
    pub fn set_caption(&self, queue: &Queue, caption: &str) -> Result<()> {
        let n = caption.chars().count();
        if n > MAX_CAPTION {
            return Err(Error::Shape(format!(
                "a heatmap caption of {n} characters (at most {MAX_CAPTION}): {caption:?}"
            )));
        }
        queue.write_buffer(&self.labels, 0, bytemuck::cast_slice(&label_codes(caption)));
        Ok(())
    }
    /// The sink flags [grid^2] (u32, for inspection).
    pub fn sinks_buffer(&self) -> &Buffer {
        &self.sinks
    }
    /// The shared colour scale: the bits of the largest value (for inspection).
    pub fn scale_buffer(&self) -> &Buffer {
        &self.scale
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
