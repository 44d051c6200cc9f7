//! Failure classes that embedding hosts meet: limits a device cannot meet, a lost device, and
//! hostile files, each as a typed error and never a panic.

mod support;

use visattn::dump::TensorFile;
use visattn::{
    Error, FusedAttention, FusedSettings, HostSession, ImageSpan, KernelSettings, Rows, SequenceShape, VarConfig, VarKernels, VisualTokens,
};

#[test]
fn a_device_too_small_for_the_kernels_is_an_error_not_a_panic() {
    // The sink kernel binds 6 storage buffers, the fused kernel 6 and 15.2 KiB of workgroup memory.
    let limits = wgpu::Limits {
        max_storage_buffers_per_shader_stage: 4,
        ..Default::default()
    };
    let g = support::gpu::gpu_with_limits(Some(limits));
    match pollster::block_on(VarKernels::new_checked(&g.ctx, KernelSettings::default())) {
        Err(Error::Gpu(message)) => assert!(!message.is_empty()),
        other => panic!("expected Error::Gpu, got {:?}", other.map(|_| ())),
    }
    // The fused kernel builds on a device with WebGPU's default limits, with VAR and without, at
    // the largest head_dim (wgpu does not check workgroup memory: tests/naga_shaders.rs does).
    let g = support::gpu::gpu_with_limits(Some(wgpu::Limits::default()));
    for var in [true, false] {
        assert!(pollster::block_on(FusedAttention::new_checked(&g.ctx, FusedSettings { head_dim: 128, var })).is_ok());
    }
    let limits = wgpu::Limits {
        max_storage_buffers_per_shader_stage: 5,
        ..Default::default()
    };
    let g = support::gpu::gpu_with_limits(Some(limits));
    assert!(matches!(
        pollster::block_on(FusedAttention::new_checked(&g.ctx, FusedSettings { head_dim: 128, var: true })),
        Err(Error::Gpu(_))
    ));
}

#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let g = support::gpu::gpu();
    let k = VarKernels::new(&g.ctx, visattn::KernelSettings::default()).unwrap();
    let shape = SequenceShape {
        tokens: 16,
        hidden: 8,
        heads: 2,
        queries: 16,
    };
    let mut runner = HostSession::rows(&g.ctx, &k, shape, Rows::All).unwrap();
    let visual = VisualTokens::from_spans(&[ImageSpan::new(2, 6)], 16).unwrap();
    runner
        .prepare(
            &g.queue,
            &VarConfig {
                tau: 2.0,
                sink_dims: vec![1],
                ..VarConfig::paper()
            },
            &visual,
            4,
        )
        .unwrap();
    let probs = vec![1.0 / 16.0; 2 * 16 * 16];
    let hidden = vec![1.0; 16 * 8];
    assert!(runner.run_layer(&g.queue, 2, Some(&hidden), &probs).is_ok());
    g.device.destroy();
    match runner.run_layer(&g.queue, 2, Some(&hidden), &probs) {
        Err(Error::Gpu(_)) => {}
        other => panic!("expected Error::Gpu after device loss, got {other:?}"),
    }
}

fn header_file(header: &str, data: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data, 0);
    bytes
}

#[test]
fn hostile_files_are_refused() {
    let cases = [
        // Declares 2 GiB in a 64-byte file.
        (
            r#"{"attentions.0":{"dtype":"F32","shape":[32,4096,4096],"data_offsets":[0,2147483648]}}"#,
            64,
        ),
        // Overlapping tensors.
        (
            r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
            24,
        ),
        // Offsets past the end.
        (r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}"#, 16),
        // Shape and extent disagree.
        (r#"{"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#, 16),
        // Shape whose element count overflows.
        (
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#,
            16,
        ),
        // Not JSON.
        ("{{{{", 0),
    ];
    for (header, data) in cases {
        assert!(
            matches!(TensorFile::from_bytes(header_file(header, data)), Err(Error::Dump(_))),
            "{header}"
        );
    }
    // A header length far past the file.
    let mut lying = u64::MAX.to_le_bytes().to_vec();
    lying.extend_from_slice(b"{}");
    assert!(matches!(TensorFile::from_bytes(lying), Err(Error::Dump(_))));
    assert!(matches!(TensorFile::from_bytes(vec![]), Err(Error::Dump(_))));
}
