//! The row kernel with its rows staged in a texture (`KernelSettings::stage_in_texture`,
//! `LayerBinding::encode`) against the same kernel reading the caller's buffer: bit for bit,
//! over every copy layout (one copy of whole texture rows, one copy of a row per head at the
//! head stride, per-head copies with a partial row), both row modes, head ranges sharing one
//! texture, and the bindings that cannot stage falling back.

mod support;

use support::Rng;
use visattn::readback::read_vec;
use visattn::{ImageSpan, LayerBinding, Rows, SequenceShape, VarConfig, VarKernels, VarState, VisualTokens};
use wgpu::util::DeviceExt;
use wgpu::{Buffer, BufferUsages};

const D: usize = 64;
const SINK_DIM: usize = 5;

struct Layer {
    shape: SequenceShape,
    hidden: Vec<f32>,
    probs: Vec<f32>,
    visual: VisualTokens,
    cfg: VarConfig,
}

/// Sinks at BOS and two image tokens; heads from text- to image-centric; causal rows for even
/// seeds (their early rows are mostly zeros), every key for odd ones.
fn layer(seed: u64, tokens: usize, queries: usize, heads: usize, image: ImageSpan) -> Layer {
    let causal = seed % 2 == 0;
    let mut rng = Rng::new(seed);
    let planted = [0, image.start + 3, image.start + image.len / 2];
    let mut hidden: Vec<f32> = (0..tokens * D).map(|_| rng.normal() as f32).collect();
    for &t in &planted {
        hidden[t * D + SINK_DIM] = 200.0;
    }
    let visual = VisualTokens::from_spans(&[image], tokens).unwrap();
    let mut probs = Vec::with_capacity(heads * queries * tokens);
    for h in 0..heads {
        let image_bias = [2.0, 1.0, -1.0][h % 3];
        for q in 0..queries {
            let pos = tokens - queries + q;
            let e: Vec<f64> = (0..tokens)
                .map(|j| {
                    if causal && j > pos {
                        return 0.0;
                    }
                    // BOS soaks attention; the image's sinks a little more than their neighbours.
                    let sink = if j == 0 {
                        3.0
                    } else if planted.contains(&j) {
                        1.0
                    } else {
                        0.0
                    };
                    let x = rng.normal() + if visual.is_visual(j) { image_bias } else { 0.0 } + sink;
                    x.exp()
                })
                .collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|v| (v / s) as f32));
        }
    }
    let cfg = VarConfig {
        tau: 6.0,
        sink_dims: vec![SINK_DIM as u32],
        ..VarConfig::paper()
    };
    Layer {
        shape: SequenceShape {
            tokens,
            hidden: D,
            heads,
            queries,
        },
        hidden,
        probs,
        visual,
        cfg,
    }
}

struct Out {
    probs: Vec<f32>,
    selected: Vec<u32>,
    classes: Vec<u32>,
}

fn upload(g: &support::gpu::Gpu, data: &[f32], usage: BufferUsages) -> Buffer {
    g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(data),
        usage,
    })
}

/// Where each range sits in its buffer: after 256 bytes of the host's own.
const AT: u64 = 256;

/// Layer 3 of `l` through the embed API: bound in head ranges of `chunk` heads (each at byte
/// `AT` of its buffer), sinks once, then each range by `encode` (`staged`: through
/// `LayerBinding::encode_rows`) or `record_rows` into one pass. Encoding first runs a layer of
/// junk through the same state, so rows a copy misses read junk, not zeros. Returns the outputs
/// and whether every range staged.
fn run(g: &support::gpu::Gpu, k: &VarKernels, l: &Layer, rows: Rows, chunk: usize, usage: BufferUsages, encode: bool) -> (Out, bool) {
    let s = l.shape;
    let mut state = VarState::new(&g.ctx, s, rows).unwrap();
    state.prepare(&g.queue, &l.cfg, &l.visual, 8).unwrap();
    let hidden = upload(g, &l.hidden, BufferUsages::STORAGE);
    let head = s.queries * s.tokens;
    let pad = vec![0.0f32; AT as usize / 4];
    let bufs: Vec<Buffer> = l
        .probs
        .chunks(chunk * head)
        .map(|p| upload(g, &[&pad[..], p].concat(), usage))
        .collect();
    fn range(b: &Buffer) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: b,
            offset: AT,
            size: None,
        }
    }
    let bindings: Vec<LayerBinding> = bufs
        .iter()
        .enumerate()
        .map(|(c, b)| state.bind(k, Some(hidden.as_entire_buffer_binding()), range(b), c * chunk).unwrap())
        .collect();
    let junk_values: Vec<f32> = (0..(bufs[0].size() / 4) as usize).map(|i| 3.0 + (i % 7) as f32).collect();
    let junk = upload(g, &junk_values, usage);
    let junk_binding = state.bind(k, Some(hidden.as_entire_buffer_binding()), range(&junk), 0).unwrap();
    let mut encoder = g.device.create_command_encoder(&Default::default());
    if encode {
        junk_binding.encode_rows(&mut encoder, 3).unwrap();
    }
    encoder.clear_buffer(state.selected_buffer(), 0, None);
    if encode && bindings.len() == 1 {
        bindings[0].encode(&mut encoder, 3).unwrap();
    } else {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        bindings[0].sinks().record(&mut pass, 3).unwrap();
        if !encode {
            bindings.iter().for_each(|b| b.record_rows(&mut pass, 3).unwrap());
        }
    }
    if encode && bindings.len() > 1 {
        bindings.iter().for_each(|b| b.encode_rows(&mut encoder, 3).unwrap());
    }
    g.queue.submit([encoder.finish()]);
    let mut probs = Vec::new();
    for b in &bufs {
        let all = read_vec::<f32>(&g.device, &g.queue, b, (b.size() / 4) as usize).unwrap();
        probs.extend_from_slice(&all[AT as usize / 4..]);
    }
    let out = Out {
        probs,
        selected: read_vec(&g.device, &g.queue, state.selected_buffer(), s.heads * s.queries).unwrap(),
        classes: read_vec(&g.device, &g.queue, state.classes_buffer(), s.tokens).unwrap(),
    };
    (out, bindings.iter().all(|b| b.stages()))
}

fn same(a: &Out, b: &Out, what: &str) {
    assert_eq!(a.classes, b.classes, "{what}: classes");
    assert_eq!(a.selected, b.selected, "{what}: selected");
    let first = a.probs.iter().zip(&b.probs).position(|(x, y)| x.to_bits() != y.to_bits());
    assert_eq!(first, None, "{what}: probabilities differ at the index shown");
}

const USAGE: BufferUsages = BufferUsages::STORAGE.union(BufferUsages::COPY_SRC).union(BufferUsages::COPY_DST);

#[test]
fn staged_rows_equal_the_buffer_kernel_bit_for_bit() {
    let g = support::gpu::gpu();
    // (tokens, queries, heads, image): 256 x 256 and 128 x 128: whole texture rows, one copy
    // (Rows::All), one row per head at the head stride (Rows::MayChange, whose copies start
    // after the first image); 640 x 1: one row per head; 580 x 580 (84100 texels a head) and
    // 644 x 1 (a head stride off 256 bytes): per-head copies with a partial row. Every head
    // with a positive image bias (the first two of three) must change.
    let shapes = [
        (256, 256, 3, ImageSpan::new(8, 200)),
        (128, 128, 2, ImageSpan::new(4, 100)),
        (640, 1, 3, ImageSpan::new(35, 576)),
        (580, 580, 2, ImageSpan::new(20, 500)),
        (644, 1, 2, ImageSpan::new(12, 600)),
    ];
    let (mut changed, mut selected) = (0, 0);
    for (n, &(tokens, queries, heads, image)) in shapes.iter().enumerate() {
        let l = layer(n as u64 + 1, tokens, queries, heads, image);
        for (lanes, keys) in [(1, 16), (4, 4), (64, 4)] {
            let plain = support::gpu::kernels(&g, lanes, keys);
            let staged = support::gpu::kernels_staged(&g, lanes, keys, true);
            for rows in [Rows::All, Rows::MayChange] {
                let what = format!("T {tokens} Q {queries} H {heads}, lanes {lanes} keys {keys}, {rows:?}");
                let (want, _) = run(&g, &plain, &l, rows, heads, USAGE, false);
                let (got, stages) = run(&g, &staged, &l, rows, heads, USAGE, true);
                assert!(stages, "{what}: must stage");
                same(&got, &want, &what);
                changed += got.probs.iter().zip(&l.probs).filter(|(a, b)| a != b).count();
                selected += got.selected.iter().filter(|&&s| s == 1).count();
                let head = queries * tokens;
                for h in (0..heads).filter(|h| h % 3 < 2) {
                    let span = h * head..(h + 1) * head;
                    assert!(got.probs[span.clone()] != l.probs[span], "{what}: head {h} must change");
                }
            }
        }
    }
    assert!(
        changed > 1000 && selected > 100,
        "VAR must act: {changed} values changed, {selected} rows selected"
    );
}

#[test]
fn head_ranges_share_one_texture_in_one_encoder() {
    // Three ranges (2, 2 and 1 heads) of one layer bound to one state: their copies and rows
    // follow each other in one encoder through the state's one texture.
    let g = support::gpu::gpu();
    let l = layer(9, 256, 256, 5, ImageSpan::new(10, 180));
    let staged = support::gpu::kernels_staged(&g, 1, 16, true);
    let plain = support::gpu::kernels(&g, 1, 16);
    for rows in [Rows::All, Rows::MayChange] {
        let (want, _) = run(&g, &plain, &l, rows, 5, USAGE, false);
        let (got, stages) = run(&g, &staged, &l, rows, 2, USAGE, true);
        assert!(stages, "every range stages");
        same(&got, &want, &format!("ranges of 2 heads, {rows:?}"));
        assert!(got.probs != l.probs, "VAR must change the layer");
    }
}

#[test]
fn bindings_that_cannot_stage_read_the_buffer() {
    let g = support::gpu::gpu();
    let staged = support::gpu::kernels_staged(&g, 4, 16, true);
    let plain = support::gpu::kernels(&g, 4, 16);
    // K not a multiple of 4; a buffer without COPY_SRC; then a device whose textures are
    // narrower than a staging row.
    let odd = layer(3, 63, 63, 2, ImageSpan::new(5, 40));
    let even = layer(4, 64, 64, 2, ImageSpan::new(5, 40));
    for rows in [Rows::All, Rows::MayChange] {
        let (want, _) = run(&g, &plain, &odd, rows, 2, USAGE, false);
        let (got, stages) = run(&g, &staged, &odd, rows, 2, USAGE, true);
        assert!(!stages, "K = 63 cannot stage");
        same(&got, &want, "K = 63");
    }
    // Without COPY_SRC (nothing can read it back either: the binding must not stage, and
    // encoding it must not trip wgpu's validation).
    let mut state = VarState::new(&g.ctx, even.shape, Rows::All).unwrap();
    state.prepare(&g.queue, &even.cfg, &even.visual, 8).unwrap();
    let hidden = upload(&g, &even.hidden, BufferUsages::STORAGE);
    let probs = upload(&g, &even.probs, BufferUsages::STORAGE);
    let binding = state
        .bind(
            &staged,
            Some(hidden.as_entire_buffer_binding()),
            probs.as_entire_buffer_binding(),
            0,
        )
        .unwrap();
    assert!(!binding.stages(), "a buffer without COPY_SRC cannot stage");
    let encoded = visattn::scoped_blocking(&g.device, || {
        let mut encoder = g.device.create_command_encoder(&Default::default());
        binding.encode(&mut encoder, 3)?;
        g.queue.submit([encoder.finish()]);
        Ok::<_, visattn::Error>(())
    });
    assert!(matches!(encoded, Ok(Ok(()))), "{encoded:?}");
    let small = support::gpu::gpu_with_limits(Some(wgpu::Limits {
        max_texture_dimension_2d: 2048,
        ..wgpu::Limits::default()
    }));
    let staged = support::gpu::kernels_staged(&small, 4, 16, true);
    let plain = support::gpu::kernels(&small, 4, 16);
    let (want, _) = run(&small, &plain, &even, Rows::All, 2, USAGE, false);
    let (got, stages) = run(&small, &staged, &even, Rows::All, 2, USAGE, true);
    assert!(!stages, "2048-texel textures cannot hold a 4096-texel staging row");
    same(&got, &want, "small textures");
}

/// A batch binding of whole sequences runs the packed kernels (one sequence a workgroup) and
/// stages; a head range that cuts a sequence of a batch runs the unpacked scalar kernel and
/// does not (tests/batch.rs checks both give each sequence's bits alone).
#[test]
fn whole_sequences_of_a_batch_stage() {
    let g = support::gpu::gpu();
    let k = support::gpu::kernels_staged(&g, 1, 16, true);
    let l = layer(7, 64, 64, 2, ImageSpan::new(5, 40));
    let state = VarState::new_batch(&g.ctx, l.shape, 2, Rows::All).unwrap();
    let head = (64 * 64 * 4) as u64;
    let probs = g.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4 * head,
        usage: USAGE,
        mapped_at_creation: false,
    });
    let range = |first: u64, heads: u64| wgpu::BufferBinding {
        buffer: &probs,
        offset: first * head,
        size: std::num::NonZeroU64::new(heads * head),
    };
    let bind = |first: usize, heads: u64| state.bind(&k, None, range(first as u64, heads), first).unwrap();
    assert!(bind(0, 4).stages(), "both sequences");
    assert!(bind(2, 2).stages(), "the second sequence");
    assert!(!bind(1, 2).stages(), "a range across the two sequences");
}

#[test]
fn a_prompt_whose_keys_are_off_4_reads_the_buffer() {
    // Bound staged (K = 100), then prepared as a padded batch of one whose first key is 29:
    // its groups are not on 16 bytes, so encode records the scalar kernel, as record does.
    let g = support::gpu::gpu();
    let l = layer(5, 100, 100, 2, ImageSpan::new(40, 40));
    let short = layer(6, 71, 71, 2, ImageSpan::new(5, 40));
    let k = support::gpu::kernels_staged(&g, 1, 16, true);
    let mut state = VarState::new_batch(&g.ctx, l.shape, 1, Rows::All).unwrap();
    // The short sequence left-padded into the 100-key layout.
    let mut padded_hidden = vec![0.0f32; 100 * D];
    padded_hidden[29 * D..].copy_from_slice(&short.hidden);
    let hidden = upload(&g, &padded_hidden, BufferUsages::STORAGE);
    let mut padded = vec![0.0f32; 2 * 100 * 100];
    for (r, row) in short.probs.chunks(71).enumerate() {
        let (h, q) = (r / 71, r % 71);
        let at = (h * 100 + 29 + q) * 100 + 29;
        padded[at..at + 71].copy_from_slice(row);
    }
    let probs = upload(&g, &padded, USAGE);
    let binding = state
        .bind(&k, Some(hidden.as_entire_buffer_binding()), probs.as_entire_buffer_binding(), 0)
        .unwrap();
    assert!(binding.stages());
    let entry = visattn::BatchEntry {
        visual: &short.visual,
        queries: 71,
    };
    state.prepare_batch(&g.queue, &short.cfg, &[entry], 8).unwrap();
    let mut encoder = g.device.create_command_encoder(&Default::default());
    binding.encode(&mut encoder, 3).unwrap();
    g.queue.submit([encoder.finish()]);
    let got: Vec<f32> = read_vec(&g.device, &g.queue, &probs, padded.len()).unwrap();
    let (alone, _) = run(&g, &support::gpu::kernels(&g, 1, 16), &short, Rows::All, 2, USAGE, false);
    let mut unpadded = Vec::new();
    for h in 0..2 {
        for q in 0..71 {
            let at = (h * 100 + 29 + q) * 100 + 29;
            unpadded.extend_from_slice(&got[at..at + 71]);
        }
    }
    assert_eq!(unpadded, alone.probs, "the padded sequence gives what it gives alone");
    assert!(alone.probs != short.probs, "VAR must change the sequence");
}
