//! A host declares its own kernel with visattn's `kernel!` and runs it through a `Context`, as
//! the model host (examples/llava) does for its matmuls: one declaration, its WGSL, no binding
//! plumbing. The result is checked against the CPU on odd lengths, and the one size rule
//! refuses a short range by the binding's declared name.

mod support;

use visattn::kernel::{PerWorkgroup, Storage};
use visattn::{kernel, uniform_block};

uniform_block! {
    /// WGSL `Scale`.
    pub struct ScaleUniform = "Scale" {
        len: u32,
        factor: f32,
        pad0: u32,
        pad1: u32,
    }
}

const PRELUDE: &str = "struct Scale { len: u32, factor: f32, pad0: u32, pad1: u32, }\n";
const BODY: &str = "
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = id.x + id.y * n.x * 64u;
    if (i < params.len) {
        dst[i] = src[i] * params.factor;
    }
}
";

kernel! {
    /// dst = src * factor, one element per invocation.
    pub struct ScaleKernel, ScaleInputs = "scale.wgsl", BODY, prelude PRELUDE;
    overrides [];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        params: uniform(ScaleUniform),
        src: storage(f32, read),
        dst: storage(f32, read_write),
    }
}

#[test]
fn a_host_kernel_is_one_declaration() {
    let g = support::gpu::gpu();
    let pipeline = g.ctx.pipeline::<ScaleKernel>(&[]).unwrap();
    for len in [1usize, 63, 65, 577, 70001] {
        let data: Vec<f32> = (0..len).map(|i| (i % 97) as f32 - 48.5).collect();
        let src = g.ctx.storage_buffer("src", (len * 4) as u64, wgpu::BufferUsages::empty()).unwrap();
        g.queue.write_buffer(&src, 0, bytemuck::cast_slice(&data));
        let dst = g.ctx.storage_buffer("dst", (len * 4) as u64, wgpu::BufferUsages::empty()).unwrap();
        let params = g.ctx.uniform_buffer(
            "scale",
            &ScaleUniform {
                len: len as u32,
                factor: -0.5,
                pad0: 0,
                pad1: 0,
            },
        );
        let dispatch = g
            .ctx
            .bind::<ScaleKernel>(
                &pipeline,
                ScaleInputs {
                    params: params.as_entire_buffer_binding(),
                    src: Storage::new(src.as_entire_buffer_binding(), len),
                    dst: Storage::new(dst.as_entire_buffer_binding(), len),
                },
                len as u32,
            )
            .unwrap();
        let mut enc = g.device.create_command_encoder(&Default::default());
        dispatch.record(&mut enc.begin_compute_pass(&Default::default()), &[]);
        g.queue.submit([enc.finish()]);
        let got: Vec<f32> = visattn::readback::read_vec(&g.device, &g.queue, &dst, len).unwrap();
        let want: Vec<f32> = data.iter().map(|x| x * -0.5).collect();
        assert_eq!(got, want, "len {len}");
    }
    // The size rule names the binding as declared.
    let small = g.ctx.storage_buffer("small", 16, wgpu::BufferUsages::empty()).unwrap();
    let params = g.ctx.uniform_buffer(
        "scale",
        &ScaleUniform {
            len: 8,
            factor: 1.0,
            pad0: 0,
            pad1: 0,
        },
    );
    let err = g
        .ctx
        .bind::<ScaleKernel>(
            &pipeline,
            ScaleInputs {
                params: params.as_entire_buffer_binding(),
                src: Storage::new(small.as_entire_buffer_binding(), 4),
                dst: Storage::new(small.as_entire_buffer_binding(), 8),
            },
            8,
        )
        .expect_err("8 elements do not fit in 16 bytes");
    assert!(matches!(err, visattn::Error::Binding { name: "dst", .. }), "{err}");
    // Overrides the kernel does not declare are refused.
    assert!(matches!(
        g.ctx.pipeline::<ScaleKernel>(&[("D", 64.0)]),
        Err(visattn::Error::Config { .. })
    ));
}
