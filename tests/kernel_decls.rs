//! Every kernel declaration reflected against its WGSL with naga (no GPU): binding i has the
//! declared name, kind, element type and access; each uniform block's size and field offsets
//! are naga's; the overrides are the shader's. A declaration that drifts from its shader fails
//! here, not as a wgpu validation error on someone's machine.

use naga::{AddressSpace, ArraySize, Module, ScalarKind, StorageAccess, TypeInner};
use visattn::kernel::{Access, BindingKind, Elem, KERNELS, KernelDecl, UNIFORMS, UniformLayout};

/// Every variant of every built-in kernel.
fn decls() -> impl Iterator<Item = &'static KernelDecl> {
    KERNELS.iter().flat_map(|variants| variants.iter())
}

fn module(decl: &KernelDecl) -> Module {
    let source = decl.wgsl();
    naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{}: {}", decl.file, e.emit_to_string(&source)))
}

/// The layout naga gives a struct type.
fn layout_of(m: &Module, ty: naga::Handle<naga::Type>) -> (String, u64, Vec<(String, u64)>) {
    let t = &m.types[ty];
    match &t.inner {
        TypeInner::Struct { members, span } => (
            t.name.clone().unwrap_or_default(),
            *span as u64,
            members
                .iter()
                .map(|mb| (mb.name.clone().unwrap_or_default(), mb.offset as u64))
                .collect(),
        ),
        other => panic!("expected a struct, got {other:?}"),
    }
}

fn check_block(what: &str, m: &Module, ty: naga::Handle<naga::Type>, want: &UniformLayout) {
    let (name, size, fields) = layout_of(m, ty);
    assert_eq!(name, want.wgsl, "{what}: WGSL struct");
    assert_eq!(size, want.size, "{what}: size of {name}");
    let want_fields: Vec<(String, u64)> = want.fields.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    assert_eq!(fields, want_fields, "{what}: fields and offsets of {name}");
}

fn check_elem(what: &str, m: &Module, base: naga::Handle<naga::Type>, elem: &Elem) {
    match (&m.types[base].inner, elem) {
        (TypeInner::Scalar(s), Elem::F32) => assert_eq!((s.kind, s.width), (ScalarKind::Float, 4), "{what}"),
        (TypeInner::Vector { size, scalar: s }, Elem::Vec4F32) => {
            assert_eq!((*size, s.kind, s.width), (naga::VectorSize::Quad, ScalarKind::Float, 4), "{what}")
        }
        (TypeInner::Scalar(s), Elem::F16) => assert_eq!((s.kind, s.width), (ScalarKind::Float, 2), "{what}"),
        (TypeInner::Scalar(s), Elem::U32) => assert_eq!((s.kind, s.width), (ScalarKind::Uint, 4), "{what}"),
        (TypeInner::Atomic(s), Elem::AtomicU32) => assert_eq!((s.kind, s.width), (ScalarKind::Uint, 4), "{what}"),
        (TypeInner::Struct { .. }, Elem::Struct(layout)) => check_block(what, m, base, layout),
        (other, e) => panic!("{what}: declared {e:?}, the shader has {other:?}"),
    }
}

#[test]
fn every_declaration_matches_its_shader() {
    for decl in decls() {
        let m = module(decl);
        let mut globals: Vec<_> = m
            .global_variables
            .iter()
            .filter_map(|(_, g)| g.binding.as_ref().map(|b| (b.group, b.binding, g)))
            .collect();
        globals.sort_by_key(|(g, b, _)| (*g, *b));
        // A binding declared `only` for other variants is not in this one's WGSL; the others
        // keep their declared numbers.
        let present: Vec<_> = decl.bindings.iter().enumerate().filter(|(_, b)| b.present).collect();
        assert_eq!(globals.len(), present.len(), "{}: binding count", decl.file);
        for ((group, binding, g), (i, d)) in globals.iter().zip(present) {
            let what = format!("{} binding {i} ({})", decl.file, d.name);
            assert_eq!((*group, *binding), (0, i as u32), "{what}: group 0, bindings numbered in order");
            assert_eq!(g.name.as_deref(), Some(d.name), "{what}: the WGSL var's name");
            match (g.space, d.kind) {
                (AddressSpace::Uniform, BindingKind::Uniform { block, .. }) => check_block(&what, &m, g.ty, &block),
                (AddressSpace::Storage { access }, BindingKind::Storage { elem, access: declared }) => {
                    let want = match declared {
                        Access::Read => StorageAccess::LOAD,
                        Access::ReadWrite => StorageAccess::LOAD | StorageAccess::STORE,
                    };
                    assert_eq!(access & (StorageAccess::LOAD | StorageAccess::STORE), want, "{what}: access");
                    match &m.types[g.ty].inner {
                        TypeInner::Array {
                            base,
                            size: ArraySize::Dynamic,
                            ..
                        } => check_elem(&what, &m, *base, &elem),
                        other => panic!("{what}: expected a runtime-sized array, got {other:?}"),
                    }
                }
                (AddressSpace::Handle, BindingKind::Texture) => match &m.types[g.ty].inner {
                    TypeInner::Image {
                        dim: naga::ImageDimension::D2,
                        arrayed: false,
                        class:
                            naga::ImageClass::Sampled {
                                kind: ScalarKind::Float,
                                multi: false,
                            },
                    } => {}
                    other => panic!("{what}: declared texture_2d<f32>, the shader has {other:?}"),
                },
                (AddressSpace::Handle, BindingKind::TextureU32) => match &m.types[g.ty].inner {
                    TypeInner::Image {
                        dim: naga::ImageDimension::D2,
                        arrayed: false,
                        class:
                            naga::ImageClass::Sampled {
                                kind: ScalarKind::Uint,
                                multi: false,
                            },
                    } => {}
                    other => panic!("{what}: declared texture_2d<u32>, the shader has {other:?}"),
                },
                (space, kind) => panic!("{what}: declared {kind:?}, the shader has {space:?}"),
            }
        }
        let mut overrides: Vec<&str> = m.overrides.iter().filter_map(|(_, o)| o.name.as_deref()).collect();
        // attention_var's SLICE is derived from D inside the shader, never set by the host.
        overrides.retain(|o| *o != "SLICE");
        overrides.sort();
        let mut declared = decl.overrides.to_vec();
        declared.sort();
        assert_eq!(overrides, declared, "{}: overrides", decl.file);
        assert_eq!(
            m.entry_points.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["main"],
            "{}",
            decl.file
        );
    }
}

#[test]
fn every_compute_shader_is_declared_once() {
    let mut declared: Vec<&str> = decls().map(|d| d.file).collect();
    declared.sort();
    let before = declared.len();
    declared.dedup();
    assert_eq!(declared.len(), before, "a kernel declared twice");
    let mut compute: Vec<&str> = visattn::shaders::ALL
        .iter()
        .filter(|(_, src)| src.contains("@compute"))
        .map(|(name, _)| *name)
        .collect();
    compute.sort();
    // A variant (`{stem}.{variant}.wgsl`: the same file, another prelude) declares its file too.
    let file_of = |name: &str| match name.split('.').collect::<Vec<_>>()[..] {
        [stem, _variant, "wgsl"] => format!("{stem}.wgsl"),
        _ => name.to_string(),
    };
    let mut files: Vec<String> = declared.iter().map(|n| file_of(n)).collect();
    files.dedup();
    assert_eq!(files, compute);
    for d in decls() {
        let file = file_of(d.file);
        let (_, source) = visattn::shaders::ALL.iter().find(|(n, _)| *n == file).unwrap();
        assert_eq!(d.body, *source, "{}: the declaration's body is the file {file}", d.file);
    }
}

#[test]
fn every_uniform_block_is_read_by_a_kernel_with_its_layout() {
    for layout in UNIFORMS {
        let used = decls().any(|d| {
            d.bindings.iter().any(|b| match b.kind {
                BindingKind::Uniform { block, .. } => block == *layout,
                BindingKind::Storage { elem: Elem::Struct(s), .. } => s == *layout,
                _ => false,
            })
        });
        assert!(used, "{} is declared but no kernel binds it", layout.wgsl);
    }
}

/// The checks see drift: a field moved in the WGSL of a copy of Config fails.
#[test]
fn a_drifted_declaration_is_caught() {
    let decl = decls().find(|d| d.file == "var_rows.wgsl").unwrap();
    let source = decl.wgsl();
    let drifted = source.replacen(
        "    row_start: u32,\n    first_image_end: u32,",
        "    first_image_end: u32,\n    row_start: u32,",
        1,
    );
    assert_ne!(drifted, source);
    let m = naga::front::wgsl::parse_str(&drifted).unwrap();
    let (_, g) = m.global_variables.iter().find(|(_, g)| g.name.as_deref() == Some("cfg")).unwrap();
    let BindingKind::Uniform { block, .. } = decl.bindings[0].kind else {
        panic!()
    };
    let (_, _, fields) = layout_of(&m, g.ty);
    let want: Vec<(String, u64)> = block.fields.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    assert_ne!(fields, want);
}
