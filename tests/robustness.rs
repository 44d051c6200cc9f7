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

// The command line on bad numbers: one `error:` line, exit 1, no output file, never a panic
// and never a NaN written (tests/cli.rs holds the rest of the CLI's refusals).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use visattn::dump::{Dtype, OutTensor, serialize_tensors};
use visattn::half::{f32_to_bf16, f32_to_f16};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("visattn-robustness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_dump(path: &Path, tensors: &[(String, OutTensor)], meta: &[(&str, &str)]) {
    let meta: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    std::fs::write(path, serialize_tensors(tensors, meta).unwrap()).unwrap();
}

fn visattn(args: &[&str]) -> Output {
    std::process::Command::new(support::example("visattn"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// Runs `visattn <command> --input <dump> --output <out> <flags>` and asserts one clean
/// `error:` line holding every needle, exit 1 and no output file.
fn cli_refuses(command: &str, tensors: &[(String, OutTensor)], meta: &[(&str, &str)], flags: &[&str], needles: &[&str]) {
    let stem = format!("{command}-{}", needles[0].replace(|c: char| !c.is_alphanumeric(), "_"));
    let input = tmp(&format!("{stem}.safetensors"));
    let output = tmp(&format!("{stem}.out.safetensors"));
    write_dump(&input, tensors, meta);
    let _ = std::fs::remove_file(&output);
    let mut args = vec![command, "--input", input.to_str().unwrap()];
    if command != "discover" {
        args.extend(["--output", output.to_str().unwrap()]);
    }
    args.extend_from_slice(flags);
    let out = visattn(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")).collect();
    assert_eq!(out.status.code(), Some(1), "{needles:?}: exit status; stderr {stderr}");
    assert!(!stderr.contains("panicked"), "{needles:?}: {stderr}");
    assert_eq!(lines.len(), 1, "{needles:?}: one line on stderr, got {lines:?}");
    for needle in needles {
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(needle),
            "{needle}: message was {:?}",
            lines[0]
        );
    }
    assert!(!output.exists(), "{needles:?}: no output file may be written");
}

const HEADS: usize = 2;
const TOKENS: usize = 12;
const HIDDEN: usize = 64;

/// An `apply` dump: 4 layers, 2 heads, 12 tokens, D = 64, softmax rows, sinks in dim 7
/// (`--sink-dims 7 --tau 5`, image 2:6), stored as `dtype`.
fn probs_dump(dtype: Dtype, edit: impl Fn(usize, &mut Vec<f32>, &mut Vec<f32>)) -> Vec<(String, OutTensor)> {
    let mut rng = support::Rng::new(31);
    let mut tensors = Vec::new();
    let store = |shape: &[usize], v: &[f32]| match dtype {
        Dtype::F16 => OutTensor::raw(dtype, shape, v.iter().flat_map(|&x| f32_to_f16(x).to_le_bytes()).collect()),
        Dtype::BF16 => OutTensor::raw(dtype, shape, v.iter().flat_map(|&x| f32_to_bf16(x).to_le_bytes()).collect()),
        _ => OutTensor::f32(shape, v),
    };
    for l in 0..4 {
        let mut probs = Vec::new();
        for _ in 0..HEADS * TOKENS {
            let e: Vec<f64> = (0..TOKENS).map(|_| rng.f64() + 0.1).collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|v| (v / s) as f32));
        }
        let mut hidden: Vec<f32> = (0..TOKENS * HIDDEN).map(|_| rng.normal() as f32).collect();
        hidden[3 * HIDDEN + 7] = 300.0;
        edit(l, &mut probs, &mut hidden);
        tensors.push((format!("attentions.{l}"), store(&[1, HEADS, TOKENS, TOKENS], &probs)));
        tensors.push((format!("hidden_states.{l}"), store(&[1, TOKENS, HIDDEN], &hidden)));
    }
    tensors
}

const APPLY_FLAGS: &[&str] = &["--sink-dims", "7", "--tau", "5", "--image-start", "2", "--image-len", "6"];

#[test]
fn apply_refuses_rows_that_are_not_probabilities() {
    // Row 5 of head 1 in layer 2: summing to 3, holding a negative entry (the sum still 1),
    // all zeros; and a sum off by twice the dtype's tolerance. Every dtype the format allows.
    let row = (TOKENS + 5) * TOKENS;
    type Edit = Box<dyn Fn(&mut [f32])>;
    let edits: Vec<(&str, Edit)> = vec![
        ("it sums to ", Box::new(|r: &mut [f32]| r.iter_mut().for_each(|v| *v *= 3.0))),
        (
            "key 4 holds -0.25",
            Box::new(|r: &mut [f32]| {
                let was = r[4];
                r[4] = -0.25;
                r[5] += was + 0.25; // the row still sums to 1
            }),
        ),
        (
            "it sums to 0.000000,",
            Box::new(|r: &mut [f32]| r.iter_mut().for_each(|v| *v = 0.0)),
        ),
    ];
    for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
        for (needle, edit) in &edits {
            let tensors = probs_dump(dtype, |l, p, _| {
                if l == 2 {
                    edit(&mut p[row..row + TOKENS]);
                }
            });
            cli_refuses(
                "apply",
                &tensors,
                &[],
                APPLY_FLAGS,
                &["attentions.2, head 1, row 5 is not a row of probabilities", needle],
            );
        }
        // Twice the tolerance off (in a dtype's units: the stored values round).
        let tol = visattn::dump::row_sum_tolerance(dtype).unwrap();
        let tensors = probs_dump(dtype, |l, p, _| {
            if l == 2 {
                p[row] += 2.0 * tol as f32;
            }
        });
        cli_refuses(
            "apply",
            &tensors,
            &[],
            APPLY_FLAGS,
            &["attentions.2, head 1, row 5", "not 1 within"],
        );
        // The same dump untouched goes through.
        let input = tmp(&format!("ok-{dtype:?}.safetensors"));
        let output = tmp(&format!("ok-{dtype:?}.out.safetensors"));
        write_dump(&input, &probs_dump(dtype, |_, _, _| {}), &[]);
        let _ = std::fs::remove_file(&output);
        let out = visattn(
            &[
                &["apply", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()],
                APPLY_FLAGS,
            ]
            .concat(),
        );
        assert!(out.status.success(), "{dtype:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The worst |row sum - 1| over every attention row of a dump, as stored.
fn worst_row_sum_error(dump: &visattn::dump::Dump) -> f64 {
    let k = dump.attn.keys;
    (0..dump.layers)
        .flat_map(|l| {
            dump.attention(l)
                .unwrap()
                .chunks(k)
                .map(|r| (r.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max)
}

#[test]
fn the_real_dumps_are_rows_of_probabilities_with_margin() {
    // The tolerances' margin, measured: the real f32 dumps sum to 1 within 2.5e-7, and the
    // official fixture rounded to f16 / bf16 (tests/half_precision.rs) within 3.4e-4 / 2.7e-3.
    for name in ["minilm-real.safetensors", "official-var-fixture.safetensors"] {
        let dump = visattn::dump::Dump::open(support::shared_data(name)).unwrap();
        let worst = worst_row_sum_error(&dump);
        println!("{name}: worst row-sum error {worst:e}");
        assert!(worst * 100.0 <= visattn::dump::ROW_SUM_TOLERANCE_F32, "{name}: {worst}");
    }
    let src = TensorFile::open(support::shared_data("official-var-fixture.safetensors")).unwrap();
    for (dtype, tol) in [
        (Dtype::F16, visattn::dump::ROW_SUM_TOLERANCE_F16),
        (Dtype::BF16, visattn::dump::ROW_SUM_TOLERANCE_BF16),
    ] {
        let mut tensors = Vec::new();
        for name in src
            .names()
            .iter()
            .filter(|n| n.starts_with("attentions.") || n.starts_with("hidden_states."))
        {
            let t = src.f32(name).unwrap();
            let bytes: Vec<u8> = t
                .data
                .iter()
                .flat_map(|&x| if dtype == Dtype::F16 { f32_to_f16(x) } else { f32_to_bf16(x) }.to_le_bytes())
                .collect();
            tensors.push((name.clone(), OutTensor::raw(dtype, &t.shape, bytes)));
        }
        let bytes = serialize_tensors(&tensors, src.metadata().clone()).unwrap();
        let dump = visattn::dump::Dump::from_file(TensorFile::from_bytes(bytes).unwrap()).unwrap();
        let worst = worst_row_sum_error(&dump);
        println!("official fixture as {dtype:?}: worst row-sum error {worst:e}");
        assert!(worst * 2.5 <= tol, "{dtype:?}: {worst}");
    }
}

#[test]
fn nan_anywhere_refuses_the_file_in_every_command() {
    // hidden_states.0: layer 0 never detects sinks, so `apply` never read it and wrote results
    // from a file the format refuses; `discover` refused it. One rule: checked at open.
    for (tensor, index) in [("hidden_states.0", 70usize), ("attentions.1", 13), ("hidden_states.3", 5)] {
        for value in [f32::NAN, f32::INFINITY] {
            let tensors = probs_dump(Dtype::F32, |l, p, h| {
                if tensor == format!("hidden_states.{l}") {
                    h[index] = value;
                } else if tensor == format!("attentions.{l}") {
                    p[index] = value;
                }
            });
            let needle = format!("non-finite value {value} in {tensor} at flat index {index}");
            cli_refuses("apply", &tensors, &[], APPLY_FLAGS, &[&needle]);
            cli_refuses("discover", &tensors, &[], &[], &[&needle]);
        }
    }
    // `attend`: a q/k/v dump whose layer 0 (no sink detection) has a NaN hidden state.
    let mut tensors = attend_dump(1.0);
    tensors.iter_mut().find(|(n, _)| n == "hidden_states.0").unwrap().1 = {
        let mut h = vec![1.0f32; TOKENS * HIDDEN];
        h[9] = f32::NAN;
        OutTensor::f32(&[TOKENS, HIDDEN], &h)
    };
    cli_refuses(
        "attend",
        &tensors,
        &[("image_start", "2"), ("image_len", "6")],
        &["--sink-dims", "7", "--tau", "5"],
        &["non-finite value NaN in hidden_states.0 at flat index 9"],
    );
}

/// A q/k/v dump for `attend`: 4 layers, 2 heads, Tq = Tk = 12, d = 16, q and k times `scale`.
fn attend_dump(scale: f32) -> Vec<(String, OutTensor)> {
    let mut rng = support::Rng::new(41);
    let d = 16;
    let mut tensors = Vec::new();
    for l in 0..4 {
        let mut draw = |n: usize, s: f32| (0..n).map(|_| rng.normal() as f32 * s).collect::<Vec<f32>>();
        tensors.push((
            format!("q.{l}"),
            OutTensor::f32(&[HEADS, TOKENS, d], &draw(HEADS * TOKENS * d, scale)),
        ));
        tensors.push((
            format!("k.{l}"),
            OutTensor::f32(&[HEADS, TOKENS, d], &draw(HEADS * TOKENS * d, scale)),
        ));
        tensors.push((
            format!("v.{l}"),
            OutTensor::f32(&[HEADS, TOKENS, d], &draw(HEADS * TOKENS * d, 1.0)),
        ));
        let mut hidden = draw(TOKENS * HIDDEN, 1.0);
        hidden[3 * HIDDEN + 7] = 300.0;
        tensors.push((format!("hidden_states.{l}"), OutTensor::f32(&[TOKENS, HIDDEN], &hidden)));
    }
    tensors
}

#[test]
fn attend_refuses_logits_that_overflow_instead_of_writing_nan() {
    let meta = [("image_start", "2"), ("image_len", "6")];
    let flags = ["--sink-dims", "7", "--tau", "5"];
    // q and k near 1e30: q . k near 1e60, past f32; finite inputs, so the input check passes.
    cli_refuses(
        "attend",
        &attend_dump(1e30),
        &meta,
        &flags,
        &["layer 0, head 0, query row 0", "overflowed f32"],
    );
    // Ordinary q and k, a scale of 1e38.
    cli_refuses(
        "attend",
        &attend_dump(1.0),
        &meta,
        &[&flags[..], &["--scale", "1e38"]].concat(),
        &["layer 0, head ", "overflowed f32"],
    );
    // The same dump at its default scale goes through, every output finite.
    let (input, output) = (tmp("attend-ok.safetensors"), tmp("attend-ok.out.safetensors"));
    write_dump(&input, &attend_dump(1.0), &meta);
    let out = visattn(
        &[
            &["attend", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()],
            &flags[..],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = TensorFile::open(&output).unwrap();
    for l in 0..4 {
        assert!(got.f32(&format!("o.{l}")).is_ok(), "o.{l} finite");
    }
}

#[test]
fn discover_says_no_dimension_carries_massive_activations() {
    // All zeros, and one huge value everywhere (its sum of squares overflows f32): no
    // dimension stands out, where discovery once suggested D_sink 0,1,2,3 with phi 0.00.
    for value in [0.0f32, 3e38] {
        let tensors = probs_dump(Dtype::F32, |_, _, h| h.iter_mut().for_each(|v| *v = value));
        let input = tmp(&format!("discover-{value}.safetensors"));
        write_dump(&input, &tensors, &[]);
        let out = visattn(&["discover", "--input", input.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{value}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains("suggested D_sink: none: no dimension carries massive activations"),
            "{value}: {stdout}"
        );
        assert!(!stdout.contains("suggested tau"), "{value}: {stdout}");
        let out = visattn(&["discover", "--input", input.to_str().unwrap(), "--json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("\"ranked\":[]") && stdout.contains("\"sink_dims\":[]"),
            "{value}: {stdout}"
        );
    }
}
