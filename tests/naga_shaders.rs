//! Every shader parsed, validated and translated to SPIR-V, MSL, HLSL and GLSL with naga:
//! no GPU needed, so a shader that one backend rejects fails here, not on a user's machine.

mod support;

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// What a pipeline compiles for `name`: a declared kernel's prelude, generated bindings and file;
/// the heatmap's render shader as it is.
fn composed(name: &str, raw: &str) -> String {
    match decls().find(|d| d.file == name) {
        Some(d) => d.wgsl(),
        None => raw.to_string(),
    }
}

/// Every variant of every built-in kernel.
fn decls() -> impl Iterator<Item = &'static visattn::kernel::KernelDecl> {
    visattn::kernel::KERNELS.iter().flat_map(|variants| variants.iter())
}

fn check(name: &str, own: &str) {
    check_composed(name, own, &composed(name, own), true);
}

/// `library`: visattn's kernels are 1-D workgroups of 64 (`WG`); a host's may be any shape of 64.
/// A source that starts with `enable f16;` validates with naga's f16 capability, translates to
/// HLSL at shader model 6.2 (the first with 16-bit types) and skips GLSL: GL adapters have no
/// SHADER_F16, so hosts give them a kernel without f16 (the LLaVA host's packed variants). One
/// that takes subgroup builtins (the LLaVA host's linear_shared.wgsl and linear_vec_subgroup.wgsl) validates with naga's
/// subgroup capability in compute shaders, translates to HLSL at shader model 6.0 (wave
/// intrinsics) and skips GLSL too: wgpu's GL backend offers no SUBGROUP.
fn check_composed(name: &str, own: &str, source: &str, library: bool) {
    let f16 = source.trim_start().starts_with("enable f16;");
    let subgroups = source.contains("subgroup_invocation_id");
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    // pack2x16float / unpack2x16float (core WGSL; naga asks for this capability, which wgpu
    // grants on every backend with DownlevelFlags::SHADER_F16_IN_F32: Vulkan, Metal, DX12, GL ES 3).
    let caps = Capabilities::default()
        | Capabilities::SHADER_FLOAT16_IN_FLOAT32
        | if f16 { Capabilities::SHADER_FLOAT16 } else { Capabilities::empty() }
        | if subgroups { Capabilities::SUBGROUP } else { Capabilities::empty() };
    let mut validator = Validator::new(ValidationFlags::all(), caps);
    if subgroups {
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    let info = validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    // Resolve `override` constants (none need values today; defaults apply) as a pipeline would.
    let (module, info) = naga::back::pipeline_constants::process_overrides(&module, &info, None, &Default::default())
        .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
    assert!(!module.entry_points.is_empty(), "{name}: no entry point");
    let header = own.lines().take(3).collect::<String>();
    assert!(header.contains(name), "{name}: the header comment must name the kernel");
    assert!(
        own.contains("Bindings") && (own.contains("Dispatch") || own.contains("Draw")),
        "{name}: header must name bindings and dispatch"
    );

    let words = spv::write_vec(&module, &info, &spv::Options::default(), None).unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"));
    assert_eq!(words[0], 0x0723_0203, "{name}: SPIR-V magic");

    for entry in &module.entry_points {
        let ep = Some((entry.stage, entry.name.clone()));
        let what = format!("{name} {}", entry.name);
        let (msl_src, _) = msl::write_string(
            &module,
            &info,
            &msl::Options::default(),
            &msl::PipelineOptions {
                entry_point: ep.clone(),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{what}: MSL: {e}"));
        assert!(!msl_src.is_empty());

        let mut hlsl_src = String::new();
        let hlsl_options = hlsl::Options {
            shader_model: if f16 {
                hlsl::ShaderModel::V6_2
            } else if subgroups {
                hlsl::ShaderModel::V6_0
            } else {
                hlsl::Options::default().shader_model
            },
            ..Default::default()
        };
        let hlsl_pipeline = hlsl::PipelineOptions { entry_point: ep };
        hlsl::Writer::new(&mut hlsl_src, &hlsl_options, &hlsl_pipeline)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{what}: HLSL: {e}"));

        if f16 {
            assert!(msl_src.contains("half"), "{what}: MSL lost the f16 type");
            assert!(hlsl_src.contains("half"), "{what}: HLSL lost the f16 type");
            continue;
        }
        if subgroups {
            if source.contains("subgroupBroadcast") {
                assert!(msl_src.contains("simd_broadcast"), "{what}: MSL lost the broadcasts");
                assert!(hlsl_src.contains("WaveReadLaneAt"), "{what}: HLSL lost the broadcasts");
            }
            if source.contains("subgroupAdd") {
                assert!(msl_src.contains("simd_sum"), "{what}: MSL lost the sums");
                assert!(hlsl_src.contains("WaveActiveSum"), "{what}: HLSL lost the sums");
            }
            continue;
        }
        let mut glsl_src = String::new();
        let glsl_options = glsl::Options {
            version: glsl::Version::Embedded {
                version: 310,
                is_webgl: false,
            },
            ..Default::default()
        };
        let glsl_pipeline = glsl::PipelineOptions {
            shader_stage: entry.stage,
            entry_point: entry.name.clone(),
            multiview: None,
        };
        glsl::Writer::new(&mut glsl_src, &module, &info, &glsl_options, &glsl_pipeline, Default::default())
            .and_then(|mut w| w.write())
            .unwrap_or_else(|e| panic!("{what}: GLSL: {e}"));
        if entry.stage == naga::ShaderStage::Compute {
            let [x, y, z] = entry.workgroup_size;
            if library {
                assert_eq!(entry.workgroup_size, [64, 1, 1], "{what}: workgroup size");
            }
            assert_eq!(x * y * z, 64, "{what}: workgroups of 64 invocations");
            assert!(msl_src.contains("kernel"), "{what}: MSL has no kernel");
            assert!(
                hlsl_src.contains(&format!("numthreads({x}, {y}, {z})")),
                "{what}: HLSL lost the workgroup size"
            );
            assert!(
                glsl_src.contains(&format!("local_size_x = {x}, local_size_y = {y}")),
                "{what}: GLSL lost the workgroup size"
            );
        }
    }
}

#[test]
fn every_shader_validates_and_translates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wgsl") && n != "common.wgsl")
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = visattn::shaders::ALL.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "every file in shaders/ must be embedded and checked");
    for (name, source) in visattn::shaders::ALL {
        check(name, source);
    }
    // Variants, if any: the same file under another prelude.
    let variants: Vec<_> = decls().filter(|d| !embedded.iter().any(|n| n == d.file)).collect();
    for d in variants {
        check_composed(d.file.split('.').next().unwrap(), d.body, &d.wgsl(), true);
    }
}

#[test]
fn a_broken_shader_is_caught() {
    let broken = composed("var_rows.wgsl", visattn::shaders::VAR_ROWS).replace("m.w > GUARD", "m.w > 1u");
    let module = naga::front::wgsl::parse_str(&broken);
    let caught = match module {
        Err(_) => true,
        Ok(m) => Validator::new(ValidationFlags::all(), Capabilities::default())
            .validate(&m)
            .is_err(),
    };
    assert!(caught, "a type error in a shader must not validate");
}

/// The composition is a plain prepend: each declared kernel compiles as `common.wgsl`, the
/// `@binding` lines its declaration generates, then its file on disk byte for byte; the files
/// declare no bindings of their own (the declaration is their one list), and no file declares
/// again a struct or constant the prelude holds (one definition of Config, Range, Seq, Attn, the
/// class bits...). The prelude itself validates and declares no bindings or entry points.
#[test]
fn every_kernel_is_the_prelude_its_bindings_then_its_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let prelude = std::fs::read_to_string(dir.join("common.wgsl")).unwrap();
    assert_eq!(visattn::shaders::PRELUDE, prelude);
    let module = naga::front::wgsl::parse_str(&prelude).unwrap_or_else(|e| panic!("common.wgsl: {}", e.emit_to_string(&prelude)));
    Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&module)
        .unwrap_or_else(|e| panic!("common.wgsl: {}", e.emit_to_string(&prelude)));
    assert!(module.entry_points.is_empty() && module.global_variables.is_empty());
    let structs: Vec<String> = module.types.iter().filter_map(|(_, t)| t.name.clone()).collect();
    let consts: Vec<String> = module.constants.iter().filter_map(|(_, c)| c.name.clone()).collect();
    for name in ["Config", "Range", "Seq", "Attn", "SplitParams", "CopyParams"] {
        assert!(structs.iter().any(|s| s == name), "the prelude must hold struct {name}");
    }
    for name in [
        "CLASS_IMAGE",
        "CLASS_SINK",
        "CLASS_IMAGE_TILE",
        "ROLE_OFF",
        "ROLE_DETECT",
        "ROLE_REDISTRIBUTE",
        "WG",
    ] {
        assert!(consts.iter().any(|c| c == name), "the prelude must hold const {name}");
    }
    for (name, source) in visattn::shaders::ALL {
        let own = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(*source, own, "{name}: the embedded file is the file on disk");
        // The file and its variants (`{stem}.{variant}.wgsl`), whose preludes add functions to
        // common.wgsl (the row kernel's load4 over scalar or vec4 arrays).
        let stem = name.trim_end_matches(".wgsl");
        for d in decls().filter(|d| d.file == *name || d.file.starts_with(&format!("{stem}."))) {
            assert!(d.prelude.starts_with(&prelude), "{}: the prelude starts with common.wgsl", d.file);
            assert_eq!(
                d.wgsl(),
                format!("{}{}{own}", d.prelude, d.binding_lines()),
                "{name}: not prelude + bindings + file"
            );
            assert!(!own.contains("@binding("), "{name} declares bindings of its own");
            for s in &structs {
                assert!(!own.contains(&format!("struct {s} ")), "{name} declares struct {s} again");
            }
            for c in &consts {
                assert!(!own.contains(&format!("const {c}:")), "{name} declares const {c} again");
            }
        }
    }
}

/// Workgroup memory per kernel, from naga's types: WebGPU's default limit is 16 KiB, and wgpu
/// does not check it at pipeline creation, so a kernel over it would only fail on a browser.
fn workgroup_bytes(source: &str) -> u32 {
    let module = naga::front::wgsl::parse_str(source).unwrap();
    module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
        .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
        .sum()
}

#[test]
fn every_kernel_fits_webgpu_default_workgroup_memory() {
    for (name, source) in visattn::shaders::ALL {
        let bytes = workgroup_bytes(&composed(name, source));
        assert!(bytes <= 16 << 10, "{name}: {bytes} bytes of workgroup memory, over 16 KiB");
    }
    // The fused kernel's budget, as its header states: tile 8 KiB + partials 4 KiB + stash 3 KiB
    // (+ 3 flags); a stash of 64 per row would not fit.
    let fused = composed("attention_var.wgsl", visattn::shaders::ATTENTION_VAR);
    assert_eq!(workgroup_bytes(&fused), 8192 + 4096 + 16 * 48 * 4 + 48 * 4 + 8);
    let over = fused.replace("const DEFER_CAP: u32 = 48u;", "const DEFER_CAP: u32 = 64u;");
    assert!(workgroup_bytes(&over) > 16 << 10);
}

/// The model host's kernels (examples/host/shaders/), every variant as its declaration composes
/// it: the example writes each composed source (`--wgsl-out`), and each goes through the same
/// checks, WebGPU's 16 KiB of workgroup memory included.
#[test]
fn every_host_shader_validates_and_translates() {
    let out_dir = std::env::temp_dir().join(format!("visattn-host-wgsl-{}", std::process::id()));
    let status = std::process::Command::new(support::example("llava"))
        .arg("--wgsl-out")
        .arg(&out_dir)
        .status()
        .unwrap();
    assert!(status.success());
    let files = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".wgsl"))
            .collect();
        v.sort();
        v
    };
    // A declaration variant (the same file with another prelude, e.g. f16 weights) is written
    // as `{file stem}.{variant}.wgsl`.
    let file_of = |name: &str| match name.split('.').collect::<Vec<_>>()[..] {
        [stem, _variant, "wgsl"] => format!("{stem}.wgsl"),
        _ => name.to_string(),
    };
    let own = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/host/shaders");
    let mut declared: Vec<String> = files(&out_dir).iter().map(|n| file_of(n)).collect();
    declared.dedup();
    assert_eq!(declared, files(&own), "every host shader must be declared and written");
    assert!(
        files(&out_dir).iter().any(|n| n.ends_with(".f16.wgsl")),
        "the f16 variants are checked too"
    );
    let mut most = 0;
    for name in files(&out_dir) {
        let composed = std::fs::read_to_string(out_dir.join(&name)).unwrap();
        let raw = std::fs::read_to_string(own.join(file_of(&name))).unwrap();
        assert!(composed.ends_with(&raw), "{name}: the composed source ends with the file");
        check_composed(&file_of(&name), &raw, &composed, false);
        // A pipeline's source has its guards on the overrides folded (visattn::kernel::
        // specialize): the texture kernels' at their smallest and largest tiles still validate,
        // with fewer lines.
        if composed.contains("override TOKENS") {
            for (tokens, rows) in [(1.0, 1.0), (16.0, 4.0), (8.0, 8.0)] {
                let folded = visattn::kernel::specialize::specialize(&composed, &[("TOKENS", tokens), ("ROWS", rows)]);
                assert!(folded.lines().count() < composed.lines().count(), "{name}: nothing folded");
                check_composed(&file_of(&name), &raw, &folded, false);
            }
        }
        let bytes = workgroup_bytes(&composed);
        assert!(bytes <= 16 << 10, "{name}: {bytes} bytes of workgroup memory, over 16 KiB");
        most = most.max(bytes);
    }
    assert!(
        most > 0,
        "the tiled matmul holds its tiles in workgroup memory: the check must see them"
    );
    let _ = std::fs::remove_dir_all(out_dir);
}

/// The decimal float literals of a WGSL source (hex floats and integers skipped), with their
/// line numbers.
fn decimal_floats(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let chars: Vec<char> = code.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let starts =
                chars[i].is_ascii_digit() && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == '.'));
            if !starts {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_alphanumeric()
                    || chars[j] == '.'
                    || ((chars[j] == '+' || chars[j] == '-') && matches!(chars[j - 1], 'e' | 'E' | 'p' | 'P')))
            {
                j += 1;
            }
            let token: String = chars[i..j].iter().collect();
            let hex = token.starts_with("0x") || token.starts_with("0X");
            let body = token.trim_end_matches(['f', 'h']);
            if !hex && (body.contains('.') || body.contains('e') || body.contains('E')) {
                out.push((n + 1, body.to_string()));
            }
            i = j;
        }
    }
    out
}

/// naga takes a float literal past f32's largest finite value (it rounds it), Chrome's Tint
/// refuses the shader ("cannot be represented as 'f32'"): every decimal literal of every kernel,
/// the host's too, must lie within f32's range (write the largest as the hex 0x1.fffffep+127f).
#[test]
fn every_float_literal_is_representable_in_f32() {
    let mut sources: Vec<(String, String)> = visattn::shaders::ALL.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
    // The host's kernels and the weight formats' preludes (shaders/formats/).
    let own = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/host/shaders");
    for dir in [own.clone(), own.join("formats")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "wgsl") {
                sources.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut seen = 0;
    for (name, source) in &sources {
        for (line, lit) in decimal_floats(source) {
            let v: f64 = lit.parse().unwrap_or_else(|e| panic!("{name}:{line}: {lit}: {e}"));
            assert!(
                v.abs() <= f32::MAX as f64,
                "{name}:{line}: {lit} is past f32's largest finite value"
            );
            seen += 1;
        }
    }
    assert!(seen > 20, "the scan must see the kernels' literals ({seen})");
    assert_eq!(
        decimal_floats("const A: f32 = 3.40282347e+38; let b = 1e-6; let c = 0x1p4f; x1.0"),
        vec![(1, "3.40282347e+38".to_string()), (1, "1e-6".to_string())]
    );
}
