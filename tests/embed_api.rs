//! The embedding API as a host uses it (its own buffers, ranges at offsets, its own encoder),
//! and a typed error for every kind of bad input.

mod support;

use std::num::NonZeroU64;

use support::Rng;
use visattn::readback::read_vec;
use visattn::{AttnShape, Error, HostSession, ImageSpan, Rows, SequenceShape, VarConfig, VarKernels, VarState, VisualTokens, reference};
use wgpu::util::DeviceExt;
use wgpu::{BufferBinding, BufferUsages};

const T: usize = 48;
const D: usize = 64;
const H: usize = 2;

fn inputs(seed: u64) -> (Vec<f32>, Vec<f32>, VarConfig, VisualTokens) {
    let mut rng = Rng::new(seed);
    let mut hidden: Vec<f32> = (0..T * D).map(|_| rng.normal() as f32).collect();
    for tok in [0, 10, 11] {
        hidden[tok * D + 7] = 400.0;
    }
    let visual = VisualTokens::from_spans(&[ImageSpan::new(4, 30)], T).unwrap();
    let mut probs = Vec::new();
    for _ in 0..H * T {
        let e: Vec<f64> = (0..T)
            .map(|j| (rng.normal() + if [0, 10, 11].contains(&j) { 3.0 } else { 0.0 } + if (4..34).contains(&j) { 1.0 } else { 0.0 }).exp())
            .collect();
        let s: f64 = e.iter().sum();
        probs.extend(e.iter().map(|v| (v / s) as f32));
    }
    let cfg = VarConfig {
        tau: 5.0,
        sink_dims: vec![7],
        ..VarConfig::paper()
    };
    (hidden, probs, cfg, visual)
}

fn shape() -> SequenceShape {
    SequenceShape {
        tokens: T,
        hidden: D,
        heads: H,
        queries: T,
    }
}

#[test]
fn host_buffers_at_offsets_recorded_into_the_hosts_encoder() {
    let g = support::gpu::gpu();
    let kernels = pollster::block_on(VarKernels::new_checked(&g.ctx, visattn::KernelSettings::default())).expect("pipelines build");
    let (hidden, probs, cfg, visual) = inputs(1);
    // The host keeps both tensors in one arena, after 512 bytes of its own data.
    let mut arena = vec![0u8; 512];
    arena.extend_from_slice(bytemuck::cast_slice(&hidden));
    let probs_at = arena.len().next_multiple_of(256);
    arena.resize(probs_at, 0);
    arena.extend_from_slice(bytemuck::cast_slice(&probs));
    let buffer = g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("host arena"),
        contents: &arena,
        usage: BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST,
    });
    let mut state = VarState::new(&g.ctx, shape(), Rows::All).unwrap();
    state.prepare(&g.queue, &cfg, &visual, 4).unwrap();
    let binding = state
        .bind(
            &kernels,
            Some(BufferBinding {
                buffer: &buffer,
                offset: 512,
                size: NonZeroU64::new((T * D * 4) as u64),
            }),
            BufferBinding {
                buffer: &buffer,
                offset: probs_at as u64,
                size: NonZeroU64::new(probs.len() as u64 * 4),
            },
            0,
        )
        .unwrap();
    let mut encoder = g.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        binding.record(&mut pass, 2).unwrap();
    }
    g.queue.submit([encoder.finish()]);

    let bytes: Vec<u8> = read_vec(&g.device, &g.queue, &buffer, arena.len()).unwrap();
    assert_eq!(&bytes[..probs_at], &arena[..probs_at], "nothing outside the probs range is written");
    let out: &[f32] = bytemuck::cast_slice(&bytes[probs_at..]);
    let mut want = probs.clone();
    let flags = reference::apply_layer(
        &cfg,
        cfg.role(2, 4),
        &visual,
        Some((&hidden, D)),
        &mut want,
        AttnShape::new(H, T, T).unwrap(),
    )
    .unwrap();
    assert!(flags.selected.iter().any(|&s| s), "the test must select rows");
    support::close::assert_close("embedded VAR", out, &want, |w| 1e-5 * w.abs() + 1e-12);
    let selected: Vec<u32> = read_vec(&g.device, &g.queue, state.selected_buffer(), H * T).unwrap();
    assert_eq!(selected.iter().map(|&s| s == 1).collect::<Vec<_>>(), flags.selected);
}

#[test]
fn bad_inputs_get_typed_errors() {
    let g = support::gpu::gpu();
    let kernels = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let (hidden, probs, cfg, visual) = inputs(2);
    let mut runner = HostSession::rows(&g.ctx, &kernels, shape(), Rows::All).unwrap();

    // Config checked against the model.
    let wide = VarConfig {
        sink_dims: vec![D as u32],
        ..cfg.clone()
    };
    assert_eq!(
        runner.prepare(&g.queue, &wide, &visual, 4),
        Err(Error::SinkDimOutOfRange { dim: D as u32, hidden: D })
    );
    let short = VisualTokens::from_spans(&[ImageSpan::new(0, 3)], T - 1).unwrap();
    assert!(matches!(runner.prepare(&g.queue, &cfg, &short, 4), Err(Error::Shape(_))));
    // Running before prepare.
    assert!(matches!(
        runner.run_layer(&g.queue, 2, Some(&hidden), &probs),
        Err(Error::Binding { name: "state", .. })
    ));

    runner.prepare(&g.queue, &cfg, &visual, 4).unwrap();
    let mut nan = probs.clone();
    nan[77] = f32::NAN;
    assert!(matches!(
        runner.run_layer(&g.queue, 2, Some(&hidden), &nan),
        Err(Error::NonFinite { ref tensor, index: 77, .. }) if tensor == "attentions"
    ));
    let mut inf = hidden.clone();
    inf[5] = f32::INFINITY;
    assert!(matches!(
        runner.run_layer(&g.queue, 2, Some(&inf), &probs),
        Err(Error::NonFinite { ref tensor, index: 5, .. }) if tensor == "hidden_states"
    ));
    assert!(matches!(
        runner.run_layer(&g.queue, 2, Some(&hidden), &probs[1..]),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        runner.run_layer(&g.queue, 2, Some(&hidden[1..]), &probs),
        Err(Error::Shape(_))
    ));
    assert!(matches!(runner.run_layer(&g.queue, 2, None, &probs), Err(Error::Shape(_))));
    assert_eq!(
        runner.run_layer(&g.queue, 9, Some(&hidden), &probs),
        Err(Error::Layer { layer: 9, layers: 4 })
    );
    // Layer 0 does not detect: it needs no hidden states.
    assert_eq!(runner.run_layer(&g.queue, 0, None, &probs).unwrap().probs, probs);

    // Bindings.
    let state = VarState::new(&g.ctx, shape(), Rows::All).unwrap();
    let buf = |usage, size| {
        g.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    let probs_bytes = (probs.len() * 4) as u64;
    let no_storage = buf(BufferUsages::COPY_DST, probs_bytes);
    let good = buf(BufferUsages::STORAGE, probs_bytes + 256);
    let bind = |probs: BufferBinding| state.bind(&kernels, None, probs, 0).map(|_| ());
    assert!(matches!(
        bind(no_storage.as_entire_buffer_binding()),
        Err(Error::Binding { name: "probs", .. })
    ));
    assert!(matches!(
        bind(BufferBinding {
            buffer: &good,
            offset: 4,
            size: None
        }),
        Err(Error::Binding { name: "probs", .. })
    ));
    assert!(matches!(
        bind(BufferBinding {
            buffer: &good,
            offset: 0,
            size: NonZeroU64::new(probs_bytes - 4)
        }),
        Err(Error::Binding { name: "probs", .. })
    ));
    assert!(matches!(
        bind(BufferBinding {
            buffer: &good,
            offset: 256,
            size: NonZeroU64::new(probs_bytes + 4)
        }),
        Err(Error::Binding { name: "probs", .. })
    ));
    assert!(
        bind(BufferBinding {
            buffer: &good,
            offset: 256,
            size: NonZeroU64::new(probs_bytes)
        })
        .is_ok()
    );
    // Heads past the sequence's.
    assert!(matches!(
        state.bind(
            &kernels,
            None,
            BufferBinding {
                buffer: &good,
                offset: 0,
                size: NonZeroU64::new(probs_bytes)
            },
            1
        ),
        Err(Error::Binding { name: "probs", .. })
    ));
    let small_hidden = buf(BufferUsages::STORAGE, 64);
    assert!(matches!(
        state.bind(
            &kernels,
            Some(small_hidden.as_entire_buffer_binding()),
            good.as_entire_buffer_binding().clone(),
            0
        ),
        Err(Error::Binding { .. })
    ));

    // Kernel settings.
    for lanes in [0, 3, 128] {
        assert!(matches!(
            VarKernels::new(
                &g.ctx,
                visattn::KernelSettings {
                    lanes_per_row: lanes,
                    keys_per_lane: 4,
                    stage_in_texture: false,
                }
            ),
            Err(Error::Config {
                field: "lanes_per_row",
                ..
            })
        ));
    }
    for keys in [0, 1, 2, 3, 32] {
        assert!(matches!(
            VarKernels::new(
                &g.ctx,
                visattn::KernelSettings {
                    lanes_per_row: 4,
                    keys_per_lane: keys,
                    stage_in_texture: true,
                }
            ),
            Err(Error::Config {
                field: "keys_per_lane",
                ..
            })
        ));
    }
    // The cache-key form round-trips and refuses what it cannot mean.
    for s in [visattn::KernelSettings::default(), visattn::KernelSettings::for_adapter(&g.info)] {
        assert_eq!(visattn::KernelSettings::parse(&s.to_string()).unwrap(), s);
    }
    let staged = visattn::KernelSettings::parse("lanes=1,keys=16,staging=texture").unwrap();
    assert!(staged.stage_in_texture && staged.to_string() == "lanes=1,keys=16,staging=texture");
    // The form before staging existed reads as no staging.
    assert!(!visattn::KernelSettings::parse("lanes=4,keys=4").unwrap().stage_in_texture);
    for bad in [
        "",
        "lanes=4",
        "lanes=4,keys=3",
        "lanes=x,keys=1",
        "lanes=4,keys=1,rows=2",
        "lanes=4,keys=4,staging=yes",
        "lanes=4,keys=4,lanes=8",
        "lanes:4",
    ] {
        assert!(matches!(visattn::KernelSettings::parse(bad), Err(Error::Config { .. })), "{bad}");
    }

    // Shapes.
    assert!(matches!(
        VarState::new(&g.ctx, SequenceShape { queries: T + 1, ..shape() }, Rows::All),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        VarState::new(&g.ctx, SequenceShape { hidden: 0, ..shape() }, Rows::All),
        Err(Error::Shape(_))
    ));

    // The reference refuses the same inputs.
    let mut nan = probs.clone();
    nan[3] = f32::NAN;
    assert!(matches!(
        reference::apply_layer(
            &cfg,
            cfg.role(2, 4),
            &visual,
            Some((&hidden, D)),
            &mut nan,
            AttnShape::new(H, T, T).unwrap()
        ),
        Err(Error::NonFinite { index: 3, .. })
    ));
}

#[test]
fn outputs_over_a_device_limit_are_refused_not_truncated() {
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 4096,
        ..Default::default()
    };
    let g = support::gpu::gpu_with_limits(Some(limits));
    // A single head of 48 x 48 f32 is 9 KiB: cannot be split by heads any further.
    let kernels = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    assert!(matches!(
        HostSession::rows(&g.ctx, &kernels, shape(), Rows::All),
        Err(Error::Limit { .. })
    ));
}

/// Autotuning times every candidate on the adapter at hand and returns the fastest (no speed is
/// asserted: machines differ; the bench prints the timings). Its answer round-trips through the
/// cache-key form and builds kernels.
#[test]
fn autotune_measures_every_candidate_and_returns_the_fastest() {
    let g = support::gpu::gpu();
    let tuned = visattn::KernelSettings::autotune(&g.device, &g.queue).unwrap();
    assert_eq!(tuned.timings.len(), visattn::CANDIDATES.len());
    for ((s, secs), c) in tuned.timings.iter().zip(visattn::CANDIDATES) {
        assert_eq!(*s, c);
        assert!(secs.is_finite() && *secs > 0.0, "{s}: {secs}");
    }
    let fastest = tuned.timings.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
    assert_eq!(tuned.timings.iter().find(|t| t.0 == tuned.best).unwrap().1, fastest);
    let again = visattn::KernelSettings::parse(&tuned.best.to_string()).unwrap();
    assert_eq!(again, tuned.best);
    VarKernels::new(&g.ctx, again).unwrap();
}
