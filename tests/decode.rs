//! Decode: split-K attention with VAR equals the CPU path over 1 to 32768 keys and the
//! one-row fused kernel up to 4096 keys (one fused workgroup walks every key; llvmpipe's loop
//! limiter makes that diverge on lavapipe past about 10k keys, which is why decode uses
//! split-K), and a generation loop through DecodeSession equals row-by-row CPU results
//! with the sinks of the prefill kept. Tolerance as in fused_attention.rs: 2e-6 x max|V|.

mod support;

use support::Rng;
use visattn::readback::read_vec;
use visattn::reference::{self, RowStats};
use visattn::{
    AttentionOptions, Convention, DecodeSession, FusedAttention, FusedSettings, FusedShape, HostSession, ImageSpan, LayerPlan, Rows,
    SequenceShape, SplitAttention, SplitInputs, VarConfig, VarKernels, VarState, VisualTokens,
};
use wgpu::util::DeviceExt;

const HIDDEN: usize = 32;

type Data = support::AttentionData;

/// Keys with sinks (0 and a few image tokens) that queries favour, an image span, GQA.
fn make(rng: &mut Rng, s: FusedShape, image: ImageSpan, sinks: &[usize]) -> Data {
    let planting = support::Planting {
        spans: &[image],
        sinks,
        hidden_dim: HIDDEN,
        sink_dim: 3,
        sink_value: 200.0,
        image_pull: [0.6, -0.4, 0.3, 0.45],
    };
    support::attention_data(rng, s, &planting)
}

fn cfg(convention: Convention) -> VarConfig {
    VarConfig {
        tau: 5.0,
        sink_dims: vec![3],
        ..VarConfig::for_convention(convention)
    }
}

fn vmax(v: &[f32]) -> f64 {
    support::close::max_abs(v)
}

/// A row within 1e-4 of a threshold (f32 may flip it); counted in `skips`, which the test caps.
fn near(st: &RowStats, cfg: &VarConfig, skips: &mut support::close::Skips) -> bool {
    let near = (st.visual_mass - cfg.summ).abs() <= 1e-4 || (st.sink_ratio - cfg.rho_code()).abs() <= 1e-4;
    if near {
        skips.skipped += 1;
    } else {
        skips.checked += 1;
    }
    near
}

/// Split-K on the GPU for one decode row: (O, selected).
fn split_gpu(g: &support::gpu::Gpu, k: &VarKernels, s: FusedShape, d: &Data, cfg: &VarConfig, block: u32) -> (Vec<f32>, Vec<bool>) {
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let up = |x: &[f32]| {
        g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(x),
            usage,
        })
    };
    let (qb, kb, vb, hb) = (up(&d.q), up(&d.k), up(&d.v), up(&d.hidden));
    let ob = up(&vec![0.0; s.q_len()]);
    let mut state = VarState::new(
        &g.ctx,
        SequenceShape {
            tokens: s.keys,
            hidden: HIDDEN,
            heads: s.heads,
            queries: s.queries,
        },
        Rows::All,
    )
    .unwrap();
    state.prepare(&g.queue, cfg, &d.visual, 8).unwrap();
    let sinks = state.bind_sinks(k, Some(hb.as_entire_buffer_binding())).unwrap();
    let split = SplitAttention::new(&g.ctx, s.head_dim).unwrap();
    let b = split
        .bind(
            &state,
            s,
            AttentionOptions { causal: true, scale: None },
            visattn::KvLayout { capacity: s.keys, block },
            SplitInputs {
                attention: visattn::AttentionInputs {
                    q: qb.as_entire_buffer_binding(),
                    k: kb.as_entire_buffer_binding(),
                    v: vb.as_entire_buffer_binding(),
                    o: ob.as_entire_buffer_binding(),
                },
                classes: state.classes_buffer().as_entire_buffer_binding(),
                selected: state.selected_buffer().as_entire_buffer_binding(),
            },
        )
        .unwrap();
    let mut enc = g.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        sinks.record(&mut pass, 3).unwrap();
        b.record(&mut pass, 3).unwrap();
    }
    g.queue.submit([enc.finish()]);
    let o: Vec<f32> = read_vec(&g.device, &g.queue, &ob, s.q_len()).unwrap();
    let sel: Vec<u32> = read_vec(&g.device, &g.queue, state.selected_buffer(), s.heads * s.queries).unwrap();
    (o, sel.iter().map(|&x| x != 0).collect())
}

#[test]
fn split_k_equals_the_cpu_path_and_the_one_row_kernel() {
    let g = support::gpu::gpu();
    let k = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let mut rng = Rng::new(40);
    let mut redistributed = 0;
    let mut skips = support::close::Skips::default();
    for (keys, head_dim) in [(1, 64), (17, 64), (640, 128), (4096, 64), (32768, 64)] {
        for convention in [Convention::Paper, Convention::Released] {
            let s = FusedShape {
                heads: 4,
                kv_heads: 2,
                queries: 1,
                keys,
                head_dim,
            };
            let image = if keys > 2 {
                ImageSpan::new(1, (keys * 3 / 4).max(1))
            } else {
                ImageSpan::new(0, 1)
            };
            let sinks: Vec<usize> = [0, 5, keys / 3].into_iter().filter(|&t| t < keys).collect();
            let d = make(&mut rng, s, image, &sinks);
            let c = cfg(convention);
            let (o, selected) = split_gpu(&g, &k, s, &d, &c, if keys > 4096 { 1024 } else { 256 });
            let sink_mask = reference::sink_mask(&reference::phi(&d.hidden, HIDDEN, &[3]), 5.0);
            let scale = 1.0 / (head_dim as f64).sqrt();
            let (want, stats) = reference::attention_var(
                &c,
                c.role(3, 8),
                &d.visual,
                &sink_mask,
                reference::Qkv {
                    q: &d.q,
                    k: &d.k,
                    v: &d.v,
                    shape: s,
                    causal: true,
                    scale,
                },
            )
            .unwrap();
            // The one-row fused kernel on the same row.
            let row = (keys <= 4096).then(|| {
                let fused = FusedAttention::new(
                    &g.ctx,
                    FusedSettings {
                        head_dim: head_dim as u32,
                        var: true,
                    },
                )
                .unwrap();
                let mut one = HostSession::attention(
                    &g.ctx,
                    &k,
                    visattn::Attention::Fused(&fused),
                    s,
                    HIDDEN,
                    AttentionOptions { causal: true, scale: None },
                )
                .unwrap();
                one.prepare(&g.queue, &c, &d.visual, 8).unwrap();
                one.run_attention(&g.queue, 3, Some(&d.hidden), &d.q, &d.k, &d.v).unwrap()
            });
            let vm = vmax(&d.v);
            for (r, st) in stats.iter().enumerate() {
                if near(st, &c, &mut skips) {
                    continue;
                }
                assert_eq!(selected[r], st.selected, "Tk {keys} {convention:?} head {r}");
                if let Some(row) = &row {
                    assert_eq!(row.selected[r], st.selected);
                }
                redistributed += (st.selected && c.role(3, 8) == visattn::LayerRole::Redistribute) as usize;
                for i in 0..head_dim {
                    let (a, w) = (o[r * head_dim + i] as f64, want[r * head_dim + i]);
                    assert!((a - w).abs() <= 2e-6 * vm, "Tk {keys} head {r} dim {i}: split {a} ref {w}");
                    if let Some(row) = &row {
                        let b = row.o[r * head_dim + i] as f64;
                        assert!((a - b).abs() <= 2e-6 * vm, "Tk {keys} head {r} dim {i}: split {a} one-row {b}");
                    }
                }
            }
        }
    }
    assert!(redistributed > 4, "decode rows must be redistributed: {redistributed}");
    skips.assert_few("split-K");
}

#[test]
fn decode_equals_the_prefill_kernels_last_row() {
    let g = support::gpu::gpu();
    let k = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let mut rng = Rng::new(41);
    let keys = 200;
    let full = FusedShape {
        heads: 4,
        kv_heads: 4,
        queries: keys,
        keys,
        head_dim: 64,
    };
    let d = make(&mut rng, full, ImageSpan::new(10, 120), &[0, 30, 31]);
    let c = cfg(Convention::Released);
    let fused = FusedAttention::new(&g.ctx, FusedSettings { head_dim: 64, var: true }).unwrap();
    let mut prefill = HostSession::attention(
        &g.ctx,
        &k,
        visattn::Attention::Fused(&fused),
        full,
        HIDDEN,
        AttentionOptions { causal: true, scale: None },
    )
    .unwrap();
    prefill.prepare(&g.queue, &c, &d.visual, 8).unwrap();
    let all = prefill.run_attention(&g.queue, 3, Some(&d.hidden), &d.q, &d.k, &d.v).unwrap();
    let last = FusedShape { queries: 1, ..full };
    let q_last: Vec<f32> = (0..4)
        .flat_map(|h| d.q[(h * keys + keys - 1) * 64..(h * keys + keys) * 64].to_vec())
        .collect();
    let one = Data {
        q: q_last,
        hidden: d.hidden.clone(),
        k: d.k.clone(),
        v: d.v.clone(),
        visual: d.visual.clone(),
    };
    let (o, selected) = split_gpu(&g, &k, last, &one, &c, 64);
    let vm = vmax(&d.v);
    for h in 0..4 {
        assert_eq!(selected[h], all.selected[h * keys + keys - 1], "head {h}");
        for i in 0..64 {
            let (a, b) = (o[h * 64 + i], all.o[(h * keys + keys - 1) * 64 + i]);
            assert!(((a - b) as f64).abs() <= 2e-6 * vm, "head {h} dim {i}: decode {a} prefill {b}");
        }
    }
}

/// A generation to decode: a prompt of 120 tokens (an image at 8..98, sinks at 0, 20 and 21)
/// and `steps` more, over `layers` layers of 4 heads (2 KV heads) of 64 dims, VAR at the spec's
/// layers.
struct Generation {
    layers: usize,
    heads: usize,
    kv_heads: usize,
    dim: usize,
    prompt: usize,
    total: usize,
    image: ImageSpan,
    data: Vec<Data>,
    c: VarConfig,
}

impl Generation {
    fn new(layers: usize, steps: usize) -> Self {
        let mut rng = Rng::new(42);
        let (heads, kv_heads, dim, prompt) = (4, 2, 64, 120);
        let total = prompt + steps;
        let shape = FusedShape {
            heads,
            kv_heads,
            queries: total,
            keys: total,
            head_dim: dim,
        };
        let image = ImageSpan::new(8, 90);
        // Whole-sequence data per layer; the prompt part is the prefill, the rest comes step by step.
        let data = (0..layers).map(|_| make(&mut rng, shape, image, &[0, 20, 21])).collect();
        let c = VarConfig {
            layers: LayerPlan::Spec,
            ..cfg(Convention::Released)
        };
        Self {
            layers,
            heads,
            kv_heads,
            dim,
            prompt,
            total,
            image,
            data,
            c,
        }
    }

    /// Positions from..to of x [h_n, total, dim], head after head.
    fn rows(&self, x: &[f32], h_n: usize, from: usize, to: usize) -> Vec<f32> {
        let (total, dim) = (self.total, self.dim);
        (0..h_n)
            .flat_map(|h| x[(h * total + from) * dim..(h * total + to) * dim].to_vec())
            .collect()
    }

    /// `n` sessions after the prompt's prefill, started: per layer its sinks found from the
    /// prompt's hidden states and captured, its KV stored.
    fn sessions(&self, g: &support::gpu::Gpu, n: usize) -> Vec<DecodeSession> {
        let k = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
        let (heads, prompt) = (self.heads, self.prompt);
        let mut state = VarState::new(
            &g.ctx,
            SequenceShape {
                tokens: prompt,
                hidden: HIDDEN,
                heads,
                queries: prompt,
            },
            Rows::All,
        )
        .unwrap();
        let visual_prompt = VisualTokens::from_spans(&[self.image], prompt).unwrap();
        state.prepare(&g.queue, &self.c, &visual_prompt, self.layers).unwrap();
        let split = SplitAttention::new(&g.ctx, self.dim).unwrap();
        let shape = visattn::DecodeShape {
            layers: self.layers,
            heads,
            kv_heads: self.kv_heads,
            capacity: self.total,
        };
        let opts = AttentionOptions { causal: true, scale: None };
        let mut sessions: Vec<DecodeSession> = (0..n).map(|_| DecodeSession::new(&state, &split, shape, opts).unwrap()).collect();
        for (l, d) in self.data.iter().enumerate() {
            let hb = g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(&d.hidden[..prompt * HIDDEN]),
                usage: wgpu::BufferUsages::STORAGE,
            });
            let sb = state.bind_sinks(&k, Some(hb.as_entire_buffer_binding())).unwrap();
            let mut enc = g.device.create_command_encoder(&Default::default());
            sb.record(&mut enc.begin_compute_pass(&Default::default()), l).unwrap();
            for session in &sessions {
                session.capture_classes(&mut enc, &state, l).unwrap();
            }
            g.queue.submit([enc.finish()]);
            let (kp, vp) = (self.rows(&d.k, self.kv_heads, 0, prompt), self.rows(&d.v, self.kv_heads, 0, prompt));
            for session in &mut sessions {
                session.write_prefill_kv(&g.queue, l, prompt, &kp, &vp).unwrap();
            }
        }
        for session in &mut sessions {
            session.start(prompt).unwrap();
        }
        sessions
    }
}

#[test]
fn a_generation_loop_keeps_the_prefill_sinks() {
    let g = support::gpu::gpu();
    let steps = 4;
    let generation = Generation::new(4, steps);
    let Generation {
        layers,
        heads,
        kv_heads,
        dim,
        prompt,
        total,
        image,
        ref data,
        ref c,
    } = generation;
    let mut session = generation.sessions(&g, 1).pop().unwrap();

    let mut checked = 0;
    let mut skips = support::close::Skips::default();
    for step in 0..steps {
        let pos = prompt + step;
        session.begin_step(&g.queue).unwrap();
        let mut enc = g.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for (l, d) in data.iter().enumerate() {
                let q: Vec<f32> = (0..heads)
                    .flat_map(|h| d.q[(h * total + pos) * dim..(h * total + pos + 1) * dim].to_vec())
                    .collect();
                let kk: Vec<f32> = (0..kv_heads)
                    .flat_map(|h| d.k[(h * total + pos) * dim..(h * total + pos + 1) * dim].to_vec())
                    .collect();
                let vv: Vec<f32> = (0..kv_heads)
                    .flat_map(|h| d.v[(h * total + pos) * dim..(h * total + pos + 1) * dim].to_vec())
                    .collect();
                session.write_step(&g.queue, l, &q, &kk, &vv).unwrap();
                session.record_step(&mut pass, l).unwrap();
            }
        }
        g.queue.submit([enc.finish()]);
        session.end_step();

        for (l, d) in data.iter().enumerate() {
            let (at, n) = session.output_range(l);
            let bytes = visattn::readback::read_bytes(&g.device, &g.queue, session.output_buffer(), at, (n * 4) as u64).unwrap();
            let o: &[f32] = bytemuck::cast_slice(&bytes);
            let (sat, sn) = session.selected_range(l);
            let sel_bytes = visattn::readback::read_bytes(&g.device, &g.queue, session.selected_buffer(), sat, (sn * 4) as u64).unwrap();
            let sel: &[u32] = bytemuck::cast_slice(&sel_bytes);
            // CPU: keys 0..=pos, prompt sinks kept, new tokens never sinks nor image.
            let keys = pos + 1;
            let s1 = FusedShape {
                heads,
                kv_heads,
                queries: 1,
                keys,
                head_dim: dim,
            };
            let q: Vec<f32> = (0..heads)
                .flat_map(|h| d.q[(h * total + pos) * dim..(h * total + pos + 1) * dim].to_vec())
                .collect();
            let cut = |x: &[f32]| -> Vec<f32> {
                (0..kv_heads)
                    .flat_map(|h| x[h * total * dim..(h * total + keys) * dim].to_vec())
                    .collect()
            };
            let mut sinks = if c.role(l, layers) == visattn::LayerRole::Off {
                vec![false; prompt]
            } else {
                reference::sink_mask(&reference::phi(&d.hidden[..prompt * HIDDEN], HIDDEN, &[3]), 5.0)
            };
            sinks.resize(keys, false);
            let visual = VisualTokens::from_spans(&[image], keys).unwrap();
            let scale = 1.0 / (dim as f64).sqrt();
            let (want, stats) = reference::attention_var(
                &c,
                c.role(l, layers),
                &visual,
                &sinks,
                reference::Qkv {
                    q: &q,
                    k: &cut(&d.k),
                    v: &cut(&d.v),
                    shape: s1,
                    causal: true,
                    scale,
                },
            )
            .unwrap();
            let vm = vmax(&d.v);
            for (h, st) in stats.iter().enumerate() {
                if near(st, &c, &mut skips) {
                    continue;
                }
                assert_eq!(sel[h] == 1, st.selected, "step {step} layer {l} head {h}");
                checked += st.selected as usize;
                for i in 0..dim {
                    assert!(
                        ((o[h * dim + i] as f64) - want[h * dim + i]).abs() <= 2e-6 * vm,
                        "step {step} layer {l} head {h} dim {i}"
                    );
                }
            }
        }
    }
    assert!(checked > 0, "the loop must select decode rows");
    skips.assert_few("decode loop");
    assert_eq!(session.len(), total);
}

/// `DecodeSession::record_layer` (the step's q, k, v into the session, the attention and its
/// output, as dispatches in the caller's pass, on buffers bound once) equals the copies around
/// `record_step` bit for bit, step after step, VAR redistributing; and refuses a layer past the
/// session's, a call before its buffers are bound, and buffers too small.
#[test]
fn record_layer_equals_the_copies_around_record_step() {
    let g = support::gpu::gpu();
    let steps = 3;
    let generation = Generation::new(4, steps);
    let (layers, heads, kv_heads, dim, prompt) = (
        generation.layers,
        generation.heads,
        generation.kv_heads,
        generation.dim,
        generation.prompt,
    );
    let mut sessions = generation.sessions(&g, 2);
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let buffer = |floats: usize| {
        g.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (floats * 4) as u64,
            usage,
            mapped_at_creation: false,
        })
    };
    let (q, kb, vb) = (buffer(heads * dim), buffer(kv_heads * dim), buffer(kv_heads * dim));
    let (out_copied, out_bound) = (buffer(heads * dim), buffer(heads * dim));
    let [copied, bound] = &mut sessions[..] else { unreachable!() };
    // Refused: a layer before the buffers are bound, buffers too small, a layer past the last.
    {
        let mut enc = g.device.create_command_encoder(&Default::default());
        let mut pass = enc.begin_compute_pass(&Default::default());
        assert!(matches!(bound.record_layer(&mut pass, 0), Err(visattn::Error::Binding { .. })));
    }
    assert!(matches!(
        bound.bind_step_buffers(&q, &buffer(kv_heads * dim - 1), &vb, &out_bound),
        Err(visattn::Error::Shape(_))
    ));
    bound.bind_step_buffers(&q, &kb, &vb, &out_bound).unwrap();
    {
        let mut enc = g.device.create_command_encoder(&Default::default());
        let mut pass = enc.begin_compute_pass(&Default::default());
        assert!(matches!(bound.record_layer(&mut pass, layers), Err(visattn::Error::Layer { .. })));
    }
    let mut redistributed = 0;
    for step in 0..steps {
        let pos = prompt + step;
        for s in [&mut *copied, &mut *bound] {
            s.begin_step(&g.queue).unwrap();
        }
        for (l, d) in generation.data.iter().enumerate() {
            g.queue
                .write_buffer(&q, 0, bytemuck::cast_slice(&generation.rows(&d.q, heads, pos, pos + 1)));
            g.queue
                .write_buffer(&kb, 0, bytemuck::cast_slice(&generation.rows(&d.k, kv_heads, pos, pos + 1)));
            g.queue
                .write_buffer(&vb, 0, bytemuck::cast_slice(&generation.rows(&d.v, kv_heads, pos, pos + 1)));
            let mut enc = g.device.create_command_encoder(&Default::default());
            copied.copy_step(&mut enc, l, &q, &kb, &vb).unwrap();
            copied.record_step(&mut enc.begin_compute_pass(&Default::default()), l).unwrap();
            copied.copy_output(&mut enc, l, &out_copied).unwrap();
            bound.record_layer(&mut enc.begin_compute_pass(&Default::default()), l).unwrap();
            g.queue.submit([enc.finish()]);
            let a: Vec<u32> = read_vec(&g.device, &g.queue, &out_copied, heads * dim).unwrap();
            let b: Vec<u32> = read_vec(&g.device, &g.queue, &out_bound, heads * dim).unwrap();
            assert_eq!(a, b, "step {step} layer {l}: the output's bits");
            let (at, n) = copied.selected_range(l);
            let sel =
                |s: &DecodeSession| visattn::readback::read_bytes(&g.device, &g.queue, s.selected_buffer(), at, (n * 4) as u64).unwrap();
            let (sa, sb) = (sel(copied), sel(bound));
            assert_eq!(sa, sb, "step {step} layer {l}: the selected heads");
            redistributed += bytemuck::cast_slice::<u8, u32>(&sa).iter().filter(|&&x| x != 0).count();
        }
        for s in [&mut *copied, &mut *bound] {
            s.end_step();
        }
    }
    assert!(
        redistributed > 0,
        "VAR must select decode rows for the comparison to mean something"
    );
}
