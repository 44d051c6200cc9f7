//! Heatmaps drawn by wgpu on lavapipe: the pixels at known patches show what the CPU reference
//! predicts (a sink patch colder after VAR, an object patch warmer), from buffers VAR wrote on
//! the GPU and gathered without a round trip.

mod support;

use support::Rng;
use support::pixels::colormap_position;
use visattn::heatmap::{GatherInputs, Heatmap, HeatmapLayout, MEAN_OF_SELECTED, render_to_pixels};
use visattn::{AttnShape, ImageSpan, Rows, SequenceShape, VarConfig, VarKernels, VarState, VisualTokens, reference};
use wgpu::util::DeviceExt;

const GRID: usize = 6;
const W: u32 = 480;
const H: u32 = 240;

/// Where the picture puts patch (row, col) of a panel.
fn patch_center(panel: usize, row: usize, col: usize) -> (u32, u32) {
    HeatmapLayout::new(W, H).patch_center(panel, GRID, row, col)
}

fn pixel(pixels: &[u8], (x, y): (u32, u32)) -> &[u8] {
    let at = ((y * W + x) * 4) as usize;
    &pixels[at..at + 3]
}

#[test]
fn uploaded_values_land_on_their_patches() {
    let g = support::gpu::gpu();
    let hm = Heatmap::new(&g.ctx, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    let target = hm.target(&g.device, GRID, W, H).unwrap();
    let before: Vec<f32> = (0..GRID * GRID).map(|i| i as f32 / 35.0).collect();
    let after: Vec<f32> = (0..GRID * GRID).map(|i| 1.0 - i as f32 / 35.0).collect();
    let mut sinks = vec![false; GRID * GRID];
    sinks[7] = true;
    hm.upload(&g.queue, &target, &before, &after, &sinks).unwrap();
    let px = render_to_pixels(&g.device, &g.queue, &hm, &target, W, H).unwrap();
    for p in 0..GRID * GRID {
        for (panel, v) in [(0, before[p]), (1, after[p])] {
            let t = colormap_position(pixel(&px, patch_center(panel, p / GRID, p % GRID)));
            assert!((t - v).abs() < 0.01, "panel {panel} patch {p}: colour at {t}, value {v}");
        }
    }
    // The sink patch's outline is red at its edge.
    let (cx, cy) = patch_center(0, 1, 1);
    let edge = pixel(
        &px,
        (cx, cy - (HeatmapLayout::new(W, H).side as f32 / GRID as f32 * 0.45) as u32 + 1),
    );
    assert!(edge[0] > 200 && edge[1] < 80, "sink outline {edge:?}");
    assert!(hm.upload(&g.queue, &target, &before[1..], &after, &sinks).is_err());
}

/// The labels read back glyph by glyph: the caption as set, each panel's title over it, and the
/// legend's values (0, half and the top of the scale, formatted by the shader from the scale the
/// GPU holds) at a text scale of 1 and 2.
#[test]
fn labels_and_the_legend_values_are_written_in_the_picture() {
    use support::pixels::{read_line, read_text};
    let g = support::gpu::gpu();
    let hm = Heatmap::new(&g.ctx, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    let cells = GRID * GRID;
    for ((w, h), top, ticks) in [
        ((W, H), 1.0f32, ["0", "0.500", "1.00"]),
        ((900, 600), 0.0123, ["0", "0.00615", "0.0123"]),
        ((420, 300), 3.72e-6, ["0", "1.86e-6", "3.72e-6"]),
        ((480, 290), 250.0, ["0", "125", "250"]),
    ] {
        let target = hm.target(&g.device, GRID, w, h).unwrap();
        let layout = target.layout();
        let before: Vec<f32> = (0..cells).map(|i| top * i as f32 / cells as f32).collect();
        let mut after = before.clone();
        after[3] = top;
        hm.upload(&g.queue, &target, &before, &after, &vec![false; cells]).unwrap();
        let caption = "layer 14 (of 2-30), token 0 'Yes', heads: mean[sel]";
        target.set_caption(&g.queue, caption).unwrap();
        let px = render_to_pixels(&g.device, &g.queue, &hm, &target, w, h).unwrap();
        assert_eq!(read_text(&px, &layout, layout.caption, caption.len() + 2), caption, "{w}x{h}");
        let half = w / 2;
        assert_eq!(read_line(&px, &layout, (0, half), layout.titles_y), "before VAR", "{w}x{h}");
        assert_eq!(read_line(&px, &layout, (half, w), layout.titles_y), "after VAR", "{w}x{h}");
        let [x0, _, x1, _] = layout.legend;
        let third = (x1 - x0) / 3;
        let read = |a, b| read_line(&px, &layout, (a, b), layout.ticks_y);
        assert_eq!(
            [read(x0, x0 + third), read(x0 + third, x1 - third), read(x1 - third, x1)],
            ticks,
            "{w}x{h}"
        );
    }
    // A caption past the label's room is refused, not cut; characters without a glyph draw as '?'.
    let target = hm.target(&g.device, GRID, W, H).unwrap();
    assert!(
        target
            .set_caption(&g.queue, &"x".repeat(visattn::heatmap::MAX_CAPTION + 1))
            .is_err()
    );
    target.set_caption(&g.queue, "café").unwrap();
    hm.upload(&g.queue, &target, &vec![0.0; cells], &vec![0.0; cells], &vec![false; cells])
        .unwrap();
    let px = render_to_pixels(&g.device, &g.queue, &hm, &target, W, H).unwrap();
    let layout = target.layout();
    assert_eq!(read_text(&px, &layout, layout.caption, 6), "caf?");
}

#[test]
fn var_cools_a_sink_patch_and_warms_an_object_patch_in_the_picture() {
    let g = support::gpu::gpu();
    let (t, d, heads) = (2 + GRID * GRID + 10, 32, 4);
    let image = ImageSpan::new(2, GRID * GRID);
    let visual = VisualTokens::from_spans(&[image], t).unwrap();
    let sink_patch = 7; // token 9
    let object_patch = 20; // token 22
    let mut rng = Rng::new(8);
    let mut hidden: Vec<f32> = (0..t * d).map(|_| rng.normal() as f32).collect();
    for tok in [0, 2 + sink_patch] {
        hidden[tok * d + 4] = 200.0;
    }
    let mut probs = Vec::new();
    for _ in 0..heads {
        for q in 0..t {
            let e: Vec<f64> = (0..t)
                .map(|j| {
                    if j > q {
                        return 0.0;
                    }
                    let mut x = rng.normal() * 0.3;
                    if visual.is_visual(j) {
                        x += 1.5;
                    }
                    if j == 2 + object_patch {
                        x += 1.0;
                    }
                    if j == 0 || j == 2 + sink_patch {
                        x += 2.5;
                    }
                    x.exp()
                })
                .collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|v| (v / s) as f32));
        }
    }
    let cfg = VarConfig {
        tau: 4.0,
        sink_dims: vec![4],
        ..VarConfig::paper()
    };
    let row = t - 1;

    // CPU prediction for the row, mean over the selected heads.
    let mut want = probs.clone();
    let flags = reference::apply_layer(
        &cfg,
        cfg.role(3, 8),
        &visual,
        Some((&hidden, d)),
        &mut want,
        AttnShape::new(heads, t, t).unwrap(),
    )
    .unwrap();
    let sel: Vec<usize> = (0..heads).filter(|&h| flags.selected[h * t + row]).collect();
    assert!(!sel.is_empty(), "the row must be selected in some head");
    let mean = |v: &[f32], key: usize| sel.iter().map(|&h| v[(h * t + row) * t + key]).sum::<f32>() / sel.len() as f32;
    let (sb, sa) = (mean(&probs, 2 + sink_patch), mean(&want, 2 + sink_patch));
    let (ob, oa) = (mean(&probs, 2 + object_patch), mean(&want, 2 + object_patch));
    assert!(sa < sb && oa > ob, "reference: sink {sb} -> {sa}, object {ob} -> {oa}");

    // GPU: VAR in place, the row copied before and after, gathered and drawn; nothing read back
    // but the picture.
    let k = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let up = |x: &[f32]| {
        g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(x),
            usage,
        })
    };
    let (pb, hb) = (up(&probs), up(&hidden));
    let rows = |label| {
        g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (heads * t * 4) as u64,
            usage,
            mapped_at_creation: false,
        })
    };
    let (before, after) = (rows("before"), rows("after"));
    let selected_row = g.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (heads * 4) as u64,
        usage,
        mapped_at_creation: false,
    });
    let mut state = VarState::new(
        &g.ctx,
        SequenceShape {
            tokens: t,
            hidden: d,
            heads,
            queries: t,
        },
        Rows::All,
    )
    .unwrap();
    state.prepare(&g.queue, &cfg, &visual, 8).unwrap();
    let binding = state
        .bind(&k, Some(hb.as_entire_buffer_binding()), pb.as_entire_buffer_binding(), 0)
        .unwrap();
    let hm = Heatmap::new(&g.ctx, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    let target = hm.target(&g.device, GRID, W, H).unwrap();
    let gather = hm
        .bind_gather(
            &target,
            GatherInputs {
                before: &before,
                after: &after,
                selected: &selected_row,
                classes: state.classes_buffer(),
                heads,
                keys: t,
                image_start: 2,
                head: MEAN_OF_SELECTED,
            },
        )
        .unwrap();
    let row_bytes = (t * 4) as u64;
    let mut enc = g.device.create_command_encoder(&Default::default());
    for h in 0..heads as u64 {
        enc.copy_buffer_to_buffer(&pb, (h * t as u64 + row as u64) * row_bytes, &before, h * row_bytes, row_bytes);
    }
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        binding.record(&mut pass, 3).unwrap();
    }
    for h in 0..heads as u64 {
        enc.copy_buffer_to_buffer(&pb, (h * t as u64 + row as u64) * row_bytes, &after, h * row_bytes, row_bytes);
        enc.copy_buffer_to_buffer(state.selected_buffer(), (h * t as u64 + row as u64) * 4, &selected_row, h * 4, 4);
    }
    hm.reset(&mut enc, &target);
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        hm.gather(&mut pass, &gather);
    }
    g.queue.submit([enc.finish()]);
    let px = render_to_pixels(&g.device, &g.queue, &hm, &target, W, H).unwrap();

    let top = [sb, sa, ob, oa]
        .into_iter()
        .chain((0..GRID * GRID).flat_map(|p| [mean(&probs, 2 + p), mean(&want, 2 + p)]))
        .fold(0.0f32, f32::max);
    let at = |panel, p: usize| colormap_position(pixel(&px, patch_center(panel, p / GRID, p % GRID)));
    let (tsb, tsa, tob, toa) = (at(0, sink_patch), at(1, sink_patch), at(0, object_patch), at(1, object_patch));
    assert!(tsa < tsb, "the sink patch must be colder after VAR: {tsb} -> {tsa}");
    assert!(toa > tob, "the object patch must be warmer after VAR: {tob} -> {toa}");
    for (t_px, v) in [(tsb, sb), (tsa, sa), (tob, ob), (toa, oa)] {
        assert!((t_px - v / top).abs() < 0.01, "colour {t_px} vs reference {}", v / top);
    }
}

#[test]
fn a_picture_over_the_texture_limit_is_scaled_down_and_a_frame_over_it_refused() {
    let g = support::gpu::gpu();
    let max = g.device.limits().max_texture_dimension_2d;
    let hm = Heatmap::new(&g.ctx, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    // A panorama wider than the device's largest texture: the left half white, the right black.
    let (pw, ph) = (max + 808, 100u32);
    let mut rgba = Vec::with_capacity((pw * ph * 4) as usize);
    for _ in 0..ph {
        for x in 0..pw {
            rgba.extend(if x < pw / 2 { [255, 255, 255, 255] } else { [0, 0, 0, 255] });
        }
    }
    let target = visattn::scoped_blocking(&g.device, || hm.target_over(&g.device, Some((&g.queue, &rgba, pw)), GRID, W, H))
        .expect("no GPU error")
        .expect("the picture is scaled to fit");
    let cells = GRID * GRID;
    hm.upload(&g.queue, &target, &vec![0.0; cells], &vec![0.0; cells], &vec![false; cells])
        .unwrap();
    let px = render_to_pixels(&g.device, &g.queue, &hm, &target, W, H).unwrap();
    // Under a flat heatmap the picture shows through: a patch on its left is lighter than one
    // on its right.
    let light = |p: &[u8]| p.iter().map(|&c| c as u32).sum::<u32>();
    let (l, r) = (
        pixel(&px, patch_center(0, GRID / 2, 0)),
        pixel(&px, patch_center(0, GRID / 2, GRID - 1)),
    );
    assert!(light(l) > light(r) + 30, "picture drawn under the grid: left {l:?}, right {r:?}");

    let err = hm.target(&g.device, GRID, max + 1, H).err().expect("a frame over the limit");
    assert!(err.to_string().contains("max_texture_dimension_2d"), "{err}");

    // A thumbnail has panels and no labels; a frame with no room for panels is refused.
    let thumb = HeatmapLayout::new(64, 32);
    assert_eq!(thumb.text_scale, 0);
    assert!(thumb.side >= 20 && thumb.panels[1].0 >= thumb.panels[0].0 + thumb.side, "{thumb:?}");
    assert!(hm.target(&g.device, GRID, 64, 32).is_ok());
    let err = hm.target(&g.device, GRID, 4, 4).err().expect("no room for panels");
    assert!(err.to_string().contains("no room"), "{err}");
}

/// Bad uses of the GPU path's pieces get typed errors: classes copied from a buffer too small
/// for the state, a mean over no layers.
#[test]
fn classes_from_a_short_buffer_and_a_mean_of_no_layers_are_refused() {
    let g = support::gpu::gpu();
    let state = VarState::new(
        &g.ctx,
        SequenceShape {
            tokens: 40,
            hidden: 8,
            heads: 2,
            queries: 1,
        },
        Rows::All,
    )
    .unwrap();
    let short = g.ctx.storage_buffer("short", 39 * 4, wgpu::BufferUsages::empty()).unwrap();
    let mut enc = g.device.create_command_encoder(&Default::default());
    assert!(state.copy_classes(&mut enc, &short, 0).is_err());
    let enough = g.ctx.storage_buffer("enough", 41 * 4, wgpu::BufferUsages::empty()).unwrap();
    assert!(state.copy_classes(&mut enc, &enough, 4).is_ok());
    assert!(state.copy_classes(&mut enc, &enough, 8).is_err());
    assert!(state.copy_classes(&mut enc, &enough, 2).is_err());
    let hm = Heatmap::new(&g.ctx, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    let target = hm.target(&g.device, 2, W, H).unwrap();
    let rows = g.ctx.storage_buffer("rows", 2 * 40 * 4, wgpu::BufferUsages::empty()).unwrap();
    let inputs = || GatherInputs {
        before: &rows,
        after: &rows,
        selected: state.selected_buffer(),
        classes: state.classes_buffer(),
        heads: 2,
        keys: 40,
        image_start: 3,
        head: MEAN_OF_SELECTED,
    };
    assert!(hm.bind_gather_mean(&target, inputs(), 0, true).is_err());
    assert!(hm.bind_gather_mean(&target, inputs(), 3, false).is_ok());
}
