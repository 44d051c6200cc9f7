//! A host that owns its device, queue and frame loop, and calls visattn per frame through the
//! embedding API: VAR on a layer's attention, the heatmap gather and the heatmap render, all
//! recorded into the host's own encoder, one submit per frame. Nothing is read back but the
//! final frame (written as a PNG when a path is given). The minimal pattern for engines.
//!
//!     cargo run --release --example embed [-- OUT.png]

// The CLI's built-in prompt; the embed example takes its layout, not every constant.
#[path = "visattn/sample.rs"]
#[allow(dead_code)]
mod sample;

use visattn::heatmap::{GatherInputs, Heatmap, MEAN_OF_SELECTED};
use visattn::{ImageSpan, KernelSettings, Rows, SequenceShape, VarConfig, VarKernels, VarState, VisualTokens};
use wgpu::BufferUsages;

const WIDTH: u32 = 1024;
const HEIGHT: u32 = 512;
const FRAMES: std::ops::Range<usize> = 12..16;

fn main() {
    // SAFETY: no thread has started yet.
    unsafe { visattn::util::quiet_vulkan_probe() };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    if let Err(e) = run(std::env::args().nth(1)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(png: Option<String>) -> Result<(), String> {
    use sample::*;
    // The host's device and resources.
    let g = visattn::util::gpu().map_err(|e| e.to_string())?;
    let e = |e: visattn::Error| e.to_string();
    let usage = BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC;
    let buffer = |label, floats: usize| {
        g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (floats * 4) as u64,
            usage,
            mapped_at_creation: false,
        })
    };
    let probs = buffer("host attention probabilities", HEADS * TOKENS * TOKENS);
    let hidden = buffer("host hidden states", TOKENS * HIDDEN);
    let before = buffer("heatmap row before", HEADS * TOKENS);
    let after = buffer("heatmap row after", HEADS * TOKENS);
    let selected_row = buffer("heatmap selected", HEADS);
    let frame = g.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("host frame"),
        size: wgpu::Extent3d {
            width: WIDTH,
            height: HEIGHT,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let frame_view = frame.create_view(&Default::default());

    // visattn: pipelines once, state once per sequence shape, prepare once per prompt.
    let kernels = pollster::block_on(VarKernels::new_checked(&g.ctx, KernelSettings::for_adapter(&g.info))).map_err(e)?;
    let mut state = VarState::new(
        &g.ctx,
        SequenceShape {
            tokens: TOKENS,
            hidden: HIDDEN,
            heads: HEADS,
            queries: TOKENS,
        },
        Rows::All,
    )
    .map_err(e)?;
    let visual = VisualTokens::from_spans(&[ImageSpan::new(SYSTEM, IMAGE)], TOKENS).map_err(e)?;
    state
        .prepare(&g.queue, &VarConfig::preset("llava-1.5-7b").map_err(e)?, &visual, LAYERS)
        .map_err(e)?;
    let binding = state
        .bind(
            &kernels,
            Some(hidden.as_entire_buffer_binding()),
            probs.as_entire_buffer_binding(),
            0,
        )
        .map_err(e)?;
    let heatmap = Heatmap::new(&g.ctx, wgpu::TextureFormat::Rgba8Unorm).map_err(e)?;
    let target = heatmap.target(&g.device, GRID, WIDTH, HEIGHT).map_err(e)?;
    let gather = heatmap
        .bind_gather(
            &target,
            GatherInputs {
                before: &before,
                after: &after,
                selected: &selected_row,
                classes: state.classes_buffer(),
                heads: HEADS,
                keys: TOKENS,
                image_start: SYSTEM,
                head: MEAN_OF_SELECTED,
            },
        )
        .map_err(e)?;

    let row = TOKENS - 1;
    let row_bytes = (TOKENS * 4) as u64;
    for layer in FRAMES {
        // The host's model would have produced these on the GPU; here they are uploaded.
        g.queue.write_buffer(&probs, 0, bytemuck::cast_slice(&attention(layer)));
        g.queue.write_buffer(&hidden, 0, bytemuck::cast_slice(&hidden_states(layer)));

        let mut encoder = g
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("host frame") });
        for h in 0..HEADS as u64 {
            encoder.copy_buffer_to_buffer(
                &probs,
                (h * TOKENS as u64 + row as u64) * row_bytes,
                &before,
                h * row_bytes,
                row_bytes,
            );
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            binding.record(&mut pass, layer).map_err(e)?;
        }
        for h in 0..HEADS as u64 {
            encoder.copy_buffer_to_buffer(
                &probs,
                (h * TOKENS as u64 + row as u64) * row_bytes,
                &after,
                h * row_bytes,
                row_bytes,
            );
            encoder.copy_buffer_to_buffer(
                state.selected_buffer(),
                (h * TOKENS as u64 + row as u64) * 4,
                &selected_row,
                h * 4,
                4,
            );
        }
        heatmap.reset(&mut encoder, &target);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            heatmap.gather(&mut pass, &gather);
        }
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("host frame"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &frame_view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                ..Default::default()
            });
            heatmap.render(&mut pass, &target);
        }
        g.queue.submit([encoder.finish()]);
        println!("frame {layer}: VAR, gather and heatmap recorded into one encoder");
    }

    // The only readback: the last frame.
    let bytes_per_row = (WIDTH * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let staging = g.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (bytes_per_row * HEIGHT) as u64,
        usage: BufferUsages::COPY_DST | BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = g.device.create_command_encoder(&Default::default());
    encoder.copy_texture_to_buffer(
        frame.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(bytes_per_row),
                rows_per_image: Some(HEIGHT),
            },
        },
        wgpu::Extent3d {
            width: WIDTH,
            height: HEIGHT,
            depth_or_array_layers: 1,
        },
    );
    g.queue.submit([encoder.finish()]);
    let bytes = visattn::readback::read_bytes(&g.device, &g.queue, &staging, 0, staging.size()).map_err(e)?;
    let pixels: Vec<u8> = bytes
        .chunks(bytes_per_row as usize)
        .flat_map(|r| r[..(WIDTH * 4) as usize].to_vec())
        .collect();
    let lit = pixels.chunks(4).filter(|p| p[0] > 40 || p[1] > 40 || p[2] > 40).count();
    println!("final frame {WIDTH}x{HEIGHT}: {lit} lit pixels");
    if let Some(path) = png {
        let file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&pixels).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        println!("wrote {path}");
    }
    Ok(())
}
