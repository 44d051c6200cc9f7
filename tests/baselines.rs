//! The benchmarks' bandwidth baselines do the work they are credited with: the copy copies
//! every element, the read sums every element exactly once (odd lengths, a length that is not
//! a whole number of workgroups, more workgroups than one grid row holds), and bad bindings
//! are typed errors.

mod support;

use visattn::baseline::{Baseline, BaselineKind, buffer};
use visattn::readback::read_vec;
use wgpu::util::DeviceExt;

fn source(g: &support::gpu::Gpu, len: usize, seed: u64) -> (wgpu::Buffer, Vec<f32>) {
    let mut rng = support::Rng::new(seed);
    // Small integers: every partial sum is exact in f32, whatever the summation order.
    let data: Vec<f32> = (0..len).map(|_| rng.below(17) as f32 - 8.0).collect();
    let buf = g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&data),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    (buf, data)
}

fn run(g: &support::gpu::Gpu, binding: &visattn::baseline::BaselineBinding) {
    let mut enc = g.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        binding.record(&mut pass);
    }
    g.queue.submit([enc.finish()]);
}

#[test]
fn copy_and_read_baselines_touch_every_element_once() {
    let g = support::gpu::gpu();
    let copy = Baseline::new(&g.ctx, BaselineKind::Copy).unwrap();
    let read = Baseline::new(&g.ctx, BaselineKind::Read).unwrap();
    // 70_001 elements at one per workgroup need a second row of the 65535-wide grid.
    for (len, per_wg) in [(1usize, 640u32), (63, 640), (65, 64), (577, 1), (70_001, 1), (1_000_003, 4096)] {
        let (src, data) = source(&g, len, len as u64);
        let dst = buffer(&g.ctx, copy.kind().output_len(len as u32, per_wg) * 4).unwrap();
        let bound = copy
            .bind(src.as_entire_buffer_binding(), dst.as_entire_buffer_binding(), len as u32, per_wg)
            .unwrap();
        assert_eq!((bound.bytes_read, bound.bytes_written), (4 * len as u64, 4 * len as u64));
        run(&g, &bound);
        let got: Vec<f32> = read_vec(&g.device, &g.queue, &dst, len).unwrap();
        assert!(got == data, "copy of {len} at {per_wg} per workgroup differs");

        let out_len = read.kind().output_len(len as u32, per_wg) as usize;
        let partial = buffer(&g.ctx, out_len as u64 * 4).unwrap();
        let bound = read
            .bind(
                src.as_entire_buffer_binding(),
                partial.as_entire_buffer_binding(),
                len as u32,
                per_wg,
            )
            .unwrap();
        assert_eq!(bound.bytes_written, out_len as u64 * 4);
        run(&g, &bound);
        let got: Vec<f32> = read_vec(&g.device, &g.queue, &partial, out_len).unwrap();
        // Workgroup w's lane l sums elements w * per_wg + l + 64 k.
        let mut want = vec![0f32; out_len];
        for (i, v) in data.iter().enumerate() {
            let (w, l) = (i / per_wg as usize, (i % per_wg as usize) % 64);
            want[w * 64 + l] += v;
        }
        assert!(got == want, "partial sums of {len} at {per_wg} per workgroup differ");
    }
}

#[test]
fn baseline_bindings_refuse_bad_ranges() {
    let g = support::gpu::gpu();
    let read = Baseline::new(&g.ctx, BaselineKind::Read).unwrap();
    let (src, _) = source(&g, 100, 1);
    let small = buffer(&g.ctx, 4).unwrap();
    let err = read
        .bind(src.as_entire_buffer_binding(), small.as_entire_buffer_binding(), 100, 64)
        .err()
        .expect("two workgroups' partials do not fit in 4 bytes");
    assert!(matches!(err, visattn::Error::Binding { name: "dst", .. }), "{err}");
    let out = buffer(&g.ctx, 1024).unwrap();
    let err = read
        .bind(src.as_entire_buffer_binding(), out.as_entire_buffer_binding(), 101, 64)
        .err()
        .expect("101 elements do not fit in a 100-element source");
    assert!(matches!(err, visattn::Error::Binding { name: "src", .. }), "{err}");
    assert!(
        read.bind(src.as_entire_buffer_binding(), out.as_entire_buffer_binding(), 100, 0)
            .is_err()
    );
}
