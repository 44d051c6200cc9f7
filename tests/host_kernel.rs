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

// A second kernel whose file is named like the first: the cache must not hand it the first's
// pipeline (it was keyed by file name).
const ADD_BODY: &str = "
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = id.x + id.y * n.x * 64u;
    if (i < params.len) {
        dst[i] = src[i] + params.factor;
    }
}
";

kernel! {
    /// dst = src + factor: another kernel under the same file name.
    pub struct AddKernel, AddInputs = "scale.wgsl", ADD_BODY, prelude PRELUDE;
    overrides [];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        params: uniform(ScaleUniform),
        src: storage(f32, read),
        dst: storage(f32, read_write),
    }
}

/// The params, src and dst buffers of a one-element-per-invocation kernel over `data`.
fn buffers(g: &visattn::util::Gpu, data: &[f32], factor: f32) -> [wgpu::Buffer; 3] {
    let len = data.len();
    let src = g.ctx.storage_buffer("src", (len * 4) as u64, wgpu::BufferUsages::empty()).unwrap();
    g.queue.write_buffer(&src, 0, bytemuck::cast_slice(data));
    let dst = g.ctx.storage_buffer("dst", (len * 4) as u64, wgpu::BufferUsages::empty()).unwrap();
    let params = g.ctx.uniform_buffer(
        "params",
        &ScaleUniform {
            len: len as u32,
            factor,
            pad0: 0,
            pad1: 0,
        },
    );
    [params, src, dst]
}

/// Binds `inputs` on `pipeline`, runs it over `len` items and reads `dst` back.
fn run_read<K: visattn::kernel::Kernel>(
    g: &visattn::util::Gpu,
    pipeline: &std::sync::Arc<visattn::kernel::Pipeline>,
    inputs: K::Inputs<'_>,
    dst: &wgpu::Buffer,
    len: usize,
) -> Vec<f32> {
    let dispatch = g.ctx.bind::<K>(pipeline, inputs, len as u32).unwrap();
    let mut enc = g.device.create_command_encoder(&Default::default());
    dispatch.record(&mut enc.begin_compute_pass(&Default::default()), &[]);
    g.queue.submit([enc.finish()]);
    visattn::readback::read_vec(&g.device, &g.queue, dst, len).unwrap()
}

#[test]
fn pipelines_are_cached_by_kernel_type_not_file_name() {
    let g = support::gpu::gpu();
    let data: Vec<f32> = (0..100).map(|i| i as f32).collect();
    let scale = g.ctx.pipeline::<ScaleKernel>(&[]).unwrap();
    let add = g.ctx.pipeline::<AddKernel>(&[]).unwrap();
    let n = data.len();
    let [params, src, dst] = buffers(&g, &data, 2.0);
    let (p, s, d) = (
        params.as_entire_buffer_binding(),
        src.as_entire_buffer_binding(),
        dst.as_entire_buffer_binding(),
    );
    let inputs = AddInputs {
        params: p.clone(),
        src: Storage::new(s.clone(), n),
        dst: Storage::new(d.clone(), n),
    };
    let got = run_read::<AddKernel>(&g, &add, inputs, &dst, n);
    assert_eq!(
        got,
        data.iter().map(|x| x + 2.0).collect::<Vec<_>>(),
        "AddKernel ran another kernel's pipeline"
    );
    let inputs = ScaleInputs {
        params: p,
        src: Storage::new(s, n),
        dst: Storage::new(d, n),
    };
    let got = run_read::<ScaleKernel>(&g, &scale, inputs, &dst, n);
    assert_eq!(got, data.iter().map(|x| x * 2.0).collect::<Vec<_>>());
    // Inputs of one kernel on another's pipeline are an error, not a wrong dispatch.
    let len = 4;
    let buf = g.ctx.storage_buffer("buf", 16, wgpu::BufferUsages::empty()).unwrap();
    let params = g.ctx.uniform_buffer(
        "p",
        &ScaleUniform {
            len,
            factor: 1.0,
            pad0: 0,
            pad1: 0,
        },
    );
    let err = g
        .ctx
        .bind::<AddKernel>(
            &scale,
            AddInputs {
                params: params.as_entire_buffer_binding(),
                src: Storage::new(buf.as_entire_buffer_binding(), 4),
                dst: Storage::new(buf.as_entire_buffer_binding(), 4),
            },
            len,
        )
        .expect_err("AddInputs on ScaleKernel's pipeline");
    assert!(matches!(err, visattn::Error::Binding { name: "pipeline", .. }), "{err}");
}

// One kernel, three variants: the same body over f32, vec4<f32> and a texture (only the
// texture variant has that binding).
const VARIANT_BODY: &str = "
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = id.x + id.y * n.x * 64u;
    if (i < params.len) {
        dst[i] = load(i) * params.factor;
    }
}
";
const PRELUDE_F32: &str = "struct Scale { len: u32, factor: f32, pad0: u32, pad1: u32, }
fn load(i: u32) -> f32 { return src[i]; }
";
const PRELUDE_VEC4: &str = "struct Scale { len: u32, factor: f32, pad0: u32, pad1: u32, }
fn load(i: u32) -> f32 { return src[i / 4u][i % 4u]; }
";
const PRELUDE_TEXEL: &str = "struct Scale { len: u32, factor: f32, pad0: u32, pad1: u32, }
fn load(i: u32) -> f32 { return textureLoad(texels, vec2<u32>((i / 4u) % 64u, i / 256u), 0)[i % 4u]; }
";

kernel! {
    /// dst = src * factor with src as f32, vec4 or rgba32float texels.
    pub struct LoadScale, LoadScaleInputs, LoadScaleVariant = VARIANT_BODY;
    variants {
        Scalar = "load_scale.wgsl", prelude PRELUDE_F32, elem f32;
        Vec4 = "load_scale.vec4.wgsl", prelude PRELUDE_VEC4, elem vec4_f32;
        Texel = "load_scale.texel.wgsl", prelude PRELUDE_TEXEL, elem vec4_f32;
    }
    overrides [];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        params: uniform(ScaleUniform),
        src: storage(elem, read),
        dst: storage(f32, read_write),
        texels: texture(only Texel),
    }
}

#[test]
fn a_kernel_with_variants_is_one_declaration() {
    use visattn::kernel::{Elem, Kernel};
    let decls = <LoadScale as Kernel>::VARIANTS;
    assert_eq!(decls.len(), 3);
    assert!(decls[0].wgsl().contains("var<storage, read> src: array<f32>") && !decls[0].wgsl().contains("texels"));
    assert!(decls[1].wgsl().contains("var<storage, read> src: array<vec4<f32>>"));
    assert!(decls[2].wgsl().contains("var texels: texture_2d<f32>"));
    assert!(matches!(
        decls[1].bindings[1].kind,
        visattn::kernel::BindingKind::Storage { elem: Elem::Vec4F32, .. }
    ));

    let g = support::gpu::gpu();
    let len = 300usize;
    let data: Vec<f32> = (0..len).map(|i| (i % 37) as f32 - 18.0).collect();
    let want: Vec<f32> = data.iter().map(|x| x * 3.0).collect();
    let texture = g.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("texels"),
        size: wgpu::Extent3d {
            width: 64,
            height: 2,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let mut padded = data.clone();
    padded.resize(64 * 2 * 4, 0.0);
    g.queue.write_texture(
        texture.as_image_copy(),
        bytemuck::cast_slice(&padded),
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(64 * 16),
            rows_per_image: None,
        },
        wgpu::Extent3d {
            width: 64,
            height: 2,
            depth_or_array_layers: 1,
        },
    );
    let view = texture.create_view(&Default::default());
    for variant in [LoadScaleVariant::Scalar, LoadScaleVariant::Vec4, LoadScaleVariant::Texel] {
        let pipeline = g.ctx.pipeline_variant::<LoadScale>(variant, &[]).unwrap();
        let texels = (variant == LoadScaleVariant::Texel).then_some(&view);
        let [params, src, dst] = buffers(&g, &data, 3.0);
        let elements = if variant == LoadScaleVariant::Scalar { len } else { len / 4 };
        let inputs = LoadScaleInputs {
            params: params.as_entire_buffer_binding(),
            src: Storage::new(src.as_entire_buffer_binding(), elements),
            dst: Storage::new(dst.as_entire_buffer_binding(), len),
            texels,
        };
        let got = run_read::<LoadScale>(&g, &pipeline, inputs, &dst, len);
        assert_eq!(got, want, "{variant:?}");
        // The optional binding: required by its variant, refused by the others.
        let buf = g.ctx.storage_buffer("buf", 1600, wgpu::BufferUsages::empty()).unwrap();
        let params = g.ctx.uniform_buffer(
            "p",
            &ScaleUniform {
                len: 4,
                factor: 1.0,
                pad0: 0,
                pad1: 0,
            },
        );
        let wrong = if texels.is_some() { None } else { Some(&view) };
        let err = g
            .ctx
            .bind::<LoadScale>(
                &pipeline,
                LoadScaleInputs {
                    params: params.as_entire_buffer_binding(),
                    src: Storage::new(buf.as_entire_buffer_binding(), 1),
                    dst: Storage::new(buf.as_entire_buffer_binding(), 4),
                    texels: wrong,
                },
                4,
            )
            .expect_err("the texture given to the wrong variants");
        assert!(matches!(err, visattn::Error::Binding { name: "texels", .. }), "{variant:?}: {err}");
    }
}
