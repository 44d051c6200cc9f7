//! visattn in the browser: the built-in sample (or a user's dump) through the same WGSL kernels
//! and pipeline builder on wgpu's WebGPU backend, the CPU reference beside it for the page to
//! compare, and the heatmap pipeline's pixels for its canvas. Nothing here blocks: readback is
//! async.

use visattn::dump::{Dump, TensorFile, patch_grid, sink_dims_for};
use visattn::heatmap::Heatmap;
use visattn::readback::read_bytes_async;
use visattn::sample;
use visattn::{Context, ImageSpan, KernelSettings, Rows, SequenceShape, VarConfig, VarKernels, VarState, VisualTokens};
use wasm_bindgen::prelude::*;
use wgpu::BufferUsages;

fn js(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// One prompt's tensors: attention [H, Q, K] per layer, hidden states [T, D] where a layer
/// detects sinks (`None` where it is off).
struct Data {
    name: String,
    layers: usize,
    heads: usize,
    queries: usize,
    tokens: usize,
    hidden_dim: usize,
    hidden: Vec<Option<Vec<f32>>>,
    probs: Vec<Vec<f32>>,
    /// Every image span: they are one mask for VAR.
    visual: VisualTokens,
    /// The span the heatmap draws (the first, as `apply --png` does).
    image: ImageSpan,
    grid: usize,
    sink_dims: Vec<u32>,
}

impl Data {
    /// The built-in prompt: visattn's sample generator at its browser preset (8 layers, 8
    /// heads, D = 1024, the question's 9 rows over T = 620 keys; about 20 MB).
    fn sample() -> Self {
        let s = sample::BROWSER;
        let image = ImageSpan::new(sample::SYSTEM, sample::IMAGE);
        Self {
            name: "built-in sample".into(),
            layers: s.layers,
            heads: s.heads,
            queries: s.queries(),
            tokens: s.tokens(),
            hidden_dim: s.hidden,
            hidden: (0..s.layers).map(|l| Some(s.hidden_states(l))).collect(),
            probs: (0..s.layers).map(|l| s.attention(l)).collect(),
            visual: VisualTokens::from_spans(&[image], s.tokens()).expect("the sample's span fits"),
            image,
            grid: sample::GRID,
            sink_dims: s.sink_dims.to_vec(),
        }
    }

    /// A dump per dump-format.md, read whole (the page holds one prompt) and checked by the
    /// same library calls as `visattn apply`: the same spans, D_sink and hidden-state rules,
    /// the same errors. `sink_dims` is the page's D_sink field: a preset name, a list such as
    /// 1415,2533, or empty for the dump's `model`.
    fn from_dump(bytes: Vec<u8>, sink_dims: &str) -> Result<Self, String> {
        let dump = Dump::from_file(TensorFile::from_bytes(bytes).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let field = sink_dims.trim();
        let (dims, preset) = if field.is_empty() {
            (None, None)
        } else if field.starts_with(|c: char| c.is_ascii_digit()) {
            let list = field
                .split(',')
                .map(|d| {
                    d.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("D_sink '{field}': expected a preset name or a list like 1415,2533"))
                })
                .collect::<Result<Vec<u32>, String>>()?;
            (Some(list), None)
        } else {
            (None, Some(field))
        };
        let sink_dims = sink_dims_for(dump.metadata(), dims.as_deref(), preset).map_err(|e| e.to_string())?;
        let (spans, visual) = dump.image(None).map_err(|e| e.to_string())?;
        let image = spans[0];
        let grid = patch_grid(image).map_err(|e| e.to_string())?;
        // Both conventions' layer plans detect in the same layers (they differ only in whether
        // the last one edits), so one check at load covers every later `run`.
        let cfg = VarConfig {
            sink_dims: sink_dims.clone(),
            ..VarConfig::paper()
        };
        let hidden_dim = dump.hidden_for(&cfg).map_err(|e| e.to_string())?;
        let mut hidden = Vec::new();
        let mut probs = Vec::new();
        for l in 0..dump.layers {
            probs.push(dump.attention(l).map_err(|e| e.to_string())?);
            hidden.push(dump.layer_hidden(&cfg, l).map_err(|e| e.to_string())?);
        }
        Ok(Self {
            name: "your dump".into(),
            layers: dump.layers,
            heads: dump.attn.heads,
            queries: dump.attn.queries,
            tokens: dump.attn.keys,
            hidden_dim,
            hidden,
            probs,
            visual,
            image,
            grid,
            sink_dims,
        })
    }
}

/// GPU resources of one data set.
struct Loaded {
    data: Data,
    state: VarState,
    layers: Vec<(wgpu::Buffer, visattn::LayerBinding)>,
}

/// A device and a data set, uploaded once; `run` recomputes for new settings.
#[wasm_bindgen]
pub struct Demo {
    ctx: Context,
    device: wgpu::Device,
    queue: wgpu::Queue,
    kernels: VarKernels,
    heatmap: Heatmap,
    adapter: String,
    loaded: Loaded,
    picture: Option<(Vec<u8>, u32)>,
}

fn upload(ctx: &Context, kernels: &VarKernels, data: Data) -> Result<Loaded, String> {
    let device = ctx.device();
    let shape = SequenceShape {
        tokens: data.tokens,
        hidden: data.hidden_dim,
        heads: data.heads,
        queries: data.queries,
    };
    let state = VarState::new(ctx, shape, Rows::All).map_err(|e| e.to_string())?;
    let mut layers = Vec::new();
    for l in 0..data.layers {
        let hb = data.hidden[l].as_ref().map(|h| {
            wgpu::util::DeviceExt::create_buffer_init(
                device,
                &wgpu::util::BufferInitDescriptor {
                    label: Some("hidden"),
                    contents: bytemuck::cast_slice(h),
                    usage: BufferUsages::STORAGE,
                },
            )
        });
        let pb = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probs"),
            size: (data.probs[l].len() * 4) as u64,
            usage: BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let binding = state
            .bind(
                kernels,
                hb.as_ref().map(|b| b.as_entire_buffer_binding()),
                pb.as_entire_buffer_binding(),
                0,
            )
            .map_err(|e| e.to_string())?;
        layers.push((pb, binding));
    }
    Ok(Loaded { data, state, layers })
}

/// Opens WebGPU. Fails with a readable message when `navigator.gpu` or an adapter is missing.
#[wasm_bindgen]
pub async fn start() -> Result<Demo, JsValue> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = instance.request_adapter(&Default::default()).await.map_err(|e| {
        js(format!(
            "WebGPU is not available in this browser ({e}): try a recent Chrome or Edge"
        ))
    })?;
    let info = adapter.get_info();
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("visattn demo"),
            required_limits: wgpu::Limits::default().using_alignment(adapter.limits()),
            ..Default::default()
        })
        .await
        .map_err(js)?;
    let ctx = Context::new(&device);
    let kernels = VarKernels::new_checked(&ctx, KernelSettings::for_adapter(&info))
        .await
        .map_err(js)?;
    let heatmap = visattn::scoped(&device, || Heatmap::new(&ctx, wgpu::TextureFormat::Rgba8Unorm))
        .await
        .map_err(js)?
        .map_err(js)?;
    let loaded = visattn::scoped(&device, || upload(&ctx, &kernels, Data::sample()))
        .await
        .map_err(js)?
        .map_err(js)?;
    let adapter = format!(
        "{:?} ({})",
        info.backend,
        if info.name.is_empty() {
            "browser adapter".into()
        } else {
            info.name.clone()
        }
    );
    Ok(Demo {
        ctx,
        device,
        queue,
        kernels,
        heatmap,
        adapter,
        loaded,
        picture: None,
    })
}

/// 32-bit FNV-1a of a byte sequence (web/test.mjs hashes `apply`'s flag tensors the same way).
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u32 {
    bytes.fold(0x811c_9dc5, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// Reads a buffer back without blocking (the library's async readback; the browser drives the
/// map callback).
async fn read(device: &wgpu::Device, queue: &wgpu::Queue, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, JsValue> {
    read_bytes_async(device, queue, src, 0, size).await.map_err(js)
}

#[wasm_bindgen]
impl Demo {
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Layers of the current data set.
    pub fn layers(&self) -> usize {
        self.loaded.data.layers
    }
    pub fn heads(&self) -> usize {
        self.loaded.data.heads
    }
    pub fn name(&self) -> String {
        self.loaded.data.name.clone()
    }

    /// Replaces the sample with a user's dump (dump-format.md), with D_sink from `sink_dims`
    /// (a preset, a list, or empty for the dump's `model`). The error `apply` gives otherwise.
    pub async fn load_dump(&mut self, bytes: Vec<u8>, sink_dims: String) -> Result<String, JsValue> {
        let data = Data::from_dump(bytes, &sink_dims).map_err(js)?;
        let summary = format!(
            "{} layers, {} heads, {} tokens, image {}x{} at {}",
            data.layers, data.heads, data.tokens, data.grid, data.grid, data.image.start
        );
        self.loaded = visattn::scoped(&self.device, || upload(&self.ctx, &self.kernels, data))
            .await
            .map_err(js)?
            .map_err(js)?;
        self.picture = None;
        Ok(summary)
    }

    /// A picture to draw under the patch grid: RGBA pixels, `width` wide.
    pub fn set_picture(&mut self, rgba: Vec<u8>, width: u32) -> Result<(), JsValue> {
        if width == 0 || rgba.is_empty() || !rgba.len().is_multiple_of(4 * width as usize) {
            return Err(js("the picture is not RGBA rows of the given width"));
        }
        self.picture = Some((rgba, width));
        Ok(())
    }

    /// Runs every layer with these settings on WebGPU and in the CPU reference; returns JSON
    /// with both, per layer (sinks, selected rows, mass moved) and the drawn layer's per-patch
    /// heatmap values. Draws the heatmap pipeline's pixels into `pixels` (RGBA, width x height).
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &mut self,
        tau: f64,
        rho: f64,
        p: f64,
        convention: String,
        layer: usize,
        head: i32,
        pixels: &mut [u8],
        width: u32,
        height: u32,
    ) -> Result<String, JsValue> {
        let Loaded { data, state, layers } = &mut self.loaded;
        let cfg = VarConfig {
            tau,
            rho,
            p,
            sink_dims: data.sink_dims.clone(),
            ..VarConfig::for_convention(convention.parse().map_err(js)?)
        };
        let visual = data.visual.clone();
        state.prepare(&self.queue, &cfg, &visual, data.layers).map_err(js)?;
        let (t, q, heads) = (data.tokens, data.queries, data.heads);
        let mut out = String::from("{\"layers\":[");
        let mut drawn = None;
        for (l, (buffer, binding)) in layers.iter().enumerate() {
            self.queue.write_buffer(buffer, 0, bytemuck::cast_slice(&data.probs[l]));
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                binding.record(&mut pass, l).map_err(js)?;
            }
            self.queue.submit([enc.finish()]);
            let gpu_probs: Vec<f32> =
                bytemuck::cast_slice(&read(&self.device, &self.queue, buffer, (data.probs[l].len() * 4) as u64).await?).to_vec();
            let classes: Vec<u32> =
                bytemuck::cast_slice(&read(&self.device, &self.queue, state.classes_buffer(), (t * 4) as u64).await?).to_vec();
            let selected: Vec<u32> =
                bytemuck::cast_slice(&read(&self.device, &self.queue, state.selected_buffer(), (heads * q * 4) as u64).await?).to_vec();

            let mut cpu = data.probs[l].clone();
            let flags = visattn::reference::apply_layer(
                &cfg,
                cfg.role(l, data.layers),
                &visual,
                data.hidden[l].as_deref().map(|h| (h, data.hidden_dim)),
                &mut cpu,
                visattn::AttnShape::new(heads, q, t).map_err(js)?,
            )
            .map_err(js)?;
            let original = &data.probs[l];
            let stats = |probs: &[f32], sinks: &dyn Fn(usize) -> bool, sel: &dyn Fn(usize) -> bool| {
                let moved: f64 = probs
                    .chunks(t)
                    .zip(original.chunks(t))
                    .map(|(a, b)| (0..t).filter(|&j| sinks(j)).map(|j| (b[j] - a[j]) as f64).sum::<f64>())
                    .sum();
                let n_sel = (0..heads * q).filter(|&r| sel(r)).count();
                let text = (0..t).filter(|&j| sinks(j) && !visual.is_visual(j)).count();
                let vis = (0..t).filter(|&j| sinks(j) && visual.is_visual(j)).count();
                // Which rows and tokens, not only how many: the flags as apply writes them
                // (`selected.{l}` u8 [H, Q], `sinks.{l}` u8 [T]), hashed.
                let selected_hash = fnv1a((0..heads * q).map(|r| sel(r) as u8));
                let sinks_hash = fnv1a((0..t).map(|j| sinks(j) as u8));
                format!(
                    "{{\"text_sinks\":{text},\"visual_sinks\":{vis},\"selected\":{n_sel},\"moved\":{moved:.6},\"selected_hash\":{selected_hash},\"sinks_hash\":{sinks_hash}}}"
                )
            };
            let gpu = stats(&gpu_probs, &|j| classes[j] & visattn::CLASS_SINK != 0, &|r| selected[r] != 0);
            let reference = stats(&cpu, &|j| flags.sinks[j], &|r| flags.selected[r]);
            out.push_str(&format!(
                "{}{{\"layer\":{l},\"gpu\":{gpu},\"reference\":{reference}}}",
                if l > 0 { "," } else { "" }
            ));
            if l == layer {
                drawn = Some((gpu_probs, selected, classes, cpu));
            }
        }
        out.push(']');
        let (gpu_probs, selected, classes, cpu) = drawn.ok_or_else(|| js(format!("layer {layer} out of range")))?;
        // The last query row, one head or the mean over its selected heads.
        let row = q - 1;
        let chosen: Vec<usize> = if head >= 0 {
            vec![head as usize % heads]
        } else {
            let s: Vec<usize> = (0..heads).filter(|&h| selected[h * q + row] != 0).collect();
            if s.is_empty() { (0..heads).collect() } else { s }
        };
        let (start, cells) = (data.image.start, data.image.len);
        let mean = |v: &[f32], key: usize| chosen.iter().map(|&h| v[(h * q + row) * t + key]).sum::<f32>() / chosen.len() as f32;
        let before: Vec<f32> = (0..cells).map(|c| mean(&data.probs[layer], start + c)).collect();
        let after: Vec<f32> = (0..cells).map(|c| mean(&gpu_probs, start + c)).collect();
        let after_cpu: Vec<f32> = (0..cells).map(|c| mean(&cpu, start + c)).collect();
        let sinks: Vec<bool> = (0..cells).map(|c| classes[start + c] & visattn::CLASS_SINK != 0).collect();
        let list = |v: &[f32]| v.iter().map(|x| format!("{x:.7}")).collect::<Vec<_>>().join(",");
        out.push_str(&format!(
            ",\"heatmap\":{{\"before\":[{}],\"after\":[{}],\"after_reference\":[{}]}}",
            list(&before),
            list(&after),
            list(&after_cpu)
        ));
        out.push_str(&format!(",\"data\":{:?},\"adapter\":{:?}}}", data.name, self.adapter));

        // The same heatmap pipeline as the native renderer, into an offscreen texture.
        let picture = self.picture.as_ref().map(|(rgba, w)| (&self.queue, rgba.as_slice(), *w));
        let target = self
            .heatmap
            .target_over(&self.device, picture, data.grid, width, height)
            .map_err(js)?;
        self.heatmap.upload(&self.queue, &target, &before, &after, &sinks).map_err(js)?;
        let heads_shown = match chosen[..] {
            [h] if head >= 0 => format!("head {h}"),
            _ => format!("mean of {} heads", chosen.len()),
        };
        target
            .set_caption(&self.queue, &format!("layer {layer}, query row {row}, {heads_shown}"))
            .map_err(js)?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        let frame = visattn::heatmap::encode_frame(&self.device, &mut enc, &self.heatmap, &target, width, height);
        self.queue.submit([enc.finish()]);
        let bytes = read(&self.device, &self.queue, &frame.staging, frame.staging.size()).await?;
        let drawn = frame.pixels(&bytes);
        let n = drawn.len().min(pixels.len());
        pixels[..n].copy_from_slice(&drawn[..n]);
        Ok(out)
    }
}
