//! The example program as a user runs it: `apply` against the official code's outputs, every
//! kind of bad input (exit status, one-line message, no panic, no output file), and the
//! built-in report.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use visattn::dump::{OutTensor, TensorFile, serialize_tensors};

fn program() -> PathBuf {
    support::example("visattn")
}

fn run(args: &[&str]) -> Output {
    Command::new(program()).args(args).env("RUST_BACKTRACE", "0").output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("visattn-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

type T = OutTensor;

fn f32t(shape: &[usize], v: &[f32]) -> T {
    OutTensor::f32(shape, v)
}

fn write_dump(path: &Path, tensors: Vec<(String, T)>, meta: &[(&str, &str)]) {
    let meta: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    std::fs::write(path, serialize_tensors(&tensors, meta).unwrap()).unwrap();
}

const L: usize = 4;
const H: usize = 2;
const TT: usize = 12;
const D: usize = 64;

/// A small valid dump: 4 layers, 2 heads, 12 tokens, D = 64, image 2:6, sinks in dim 7.
fn small_dump(edit: impl FnOnce(&mut Vec<(String, T)>)) -> Vec<(String, T)> {
    let mut rng = support::Rng::new(5);
    let mut tensors = Vec::new();
    for l in 0..L {
        let mut probs = Vec::new();
        for _ in 0..H * TT {
            let e: Vec<f64> = (0..TT).map(|_| rng.f64() + 0.1).collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|v| (v / s) as f32));
        }
        tensors.push((format!("attentions.{l}"), f32t(&[1, H, TT, TT], &probs)));
        let mut hidden: Vec<f32> = (0..TT * D).map(|_| rng.normal() as f32).collect();
        hidden[3 * D + 7] = 300.0;
        tensors.push((format!("hidden_states.{l}"), f32t(&[1, TT, D], &hidden)));
    }
    edit(&mut tensors);
    tensors
}

fn replace(tensors: &mut [(String, T)], name: &str, t: T) {
    tensors.iter_mut().find(|(n, _)| n == name).unwrap().1 = t;
}

/// Runs `apply` on a dump and asserts a clean failure mentioning `needle`.
fn refuses(tensors: Vec<(String, T)>, meta: &[(&str, &str)], extra: &[&str], needle: &str) {
    let input = tmp(&format!("bad-{}.safetensors", needle.replace(|c: char| !c.is_alphanumeric(), "_")));
    write_dump(&input, tensors, meta);
    refuses_file(&input, extra, needle);
}

fn refuses_file(input: &Path, extra: &[&str], needle: &str) {
    refuses_flags(input, &[&["--sink-dims", "7", "--tau", "5"], extra].concat(), needle);
}

/// `apply --input --output` with exactly `flags`, asserting a clean failure mentioning `needle`.
fn refuses_flags(input: &Path, flags: &[&str], needle: &str) {
    let output = input.with_extension("out.safetensors");
    let _ = std::fs::remove_file(&output);
    let mut args = vec!["apply", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()];
    args.extend_from_slice(flags);
    one_error(&run(&args), needle, needle);
    assert!(!output.exists(), "{needle}: no output file may be left behind");
}

const IMG: &[(&str, &str)] = &[("image_start", "2"), ("image_len", "6")];

/// A dump that names no model (the exporter writes none when it cannot tell the checkpoint)
/// gives no D_sink: `apply` must ask for one instead of using LLaVA-1.5-7B's.
#[test]
fn a_dump_without_a_model_asks_for_sink_dims() {
    let input = tmp("no-model.safetensors");
    write_dump(&input, small_dump(|_| {}), IMG);
    refuses_flags(&input, &["--tau", "5"], "(--preset / --sink-dims), or run `visattn discover`");
    let named = tmp("named-model.safetensors");
    write_dump(&named, small_dump(|_| {}), &[IMG, &[("model", "llama-3-8b")]].concat());
    refuses_flags(&named, &["--tau", "5"], "sink dim 788 is out of range");
}

#[test]
fn a_valid_small_dump_goes_through() {
    let input = tmp("ok.safetensors");
    let output = tmp("ok.out.safetensors");
    write_dump(&input, small_dump(|_| {}), IMG);
    let out = run(&[
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--sink-dims",
        "7",
        "--tau",
        "5",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let f = TensorFile::open(&output).unwrap();
    for l in 0..L {
        assert_eq!(f.shape(&format!("attentions.{l}")).unwrap(), vec![H, TT, TT]);
        assert_eq!(f.shape(&format!("phi.{l}")).unwrap(), vec![TT]);
        let (s, sinks) = f.u8(&format!("sinks.{l}")).unwrap();
        assert_eq!(s, vec![TT]);
        assert_eq!(sinks[3], (l >= 2) as u8, "token 3 is a sink from layer 2 on");
        assert_eq!(f.u8(&format!("selected.{l}")).unwrap().0, vec![H, TT]);
    }
    assert_eq!(f.metadata()["convention"], "paper");
    assert_eq!(f.metadata()["image_spans"], "2:6");
    assert_eq!(f.metadata()["sink_dims"], "7");
}

#[test]
fn bad_dumps_fail_cleanly() {
    refuses(
        small_dump(|t| t.retain(|(n, _)| !n.starts_with("attentions"))),
        IMG,
        &[],
        "no 'attentions",
    );
    refuses(
        small_dump(|t| t.retain(|(n, _)| n != "attentions.1")),
        IMG,
        &[],
        "layer 1 is missing",
    );
    refuses(
        small_dump(|t| replace(t, "attentions.0", f32t(&[2, H, TT, TT], &vec![0.1; 2 * H * TT * TT]))),
        IMG,
        &[],
        "batch size 2",
    );
    refuses(
        small_dump(|t| replace(t, "attentions.2", f32t(&[H + 1, TT, TT], &vec![0.1; (H + 1) * TT * TT]))),
        IMG,
        &[],
        "attentions.2 has shape",
    );
    refuses(
        small_dump(|t| replace(t, "hidden_states.2", f32t(&[TT - 1, D], &vec![0.1; (TT - 1) * D]))),
        IMG,
        &[],
        "hidden_states.2 has 11 tokens",
    );
    refuses(
        small_dump(|t| {
            let mut v = vec![0.1; H * TT * TT];
            v[17] = f32::NAN;
            replace(t, "attentions.3", f32t(&[H, TT, TT], &v))
        }),
        IMG,
        &[],
        "non-finite value NaN in attentions.3",
    );
    refuses(
        small_dump(|t| {
            let mut v = vec![0.1; TT * D];
            v[5] = f32::INFINITY;
            replace(t, "hidden_states.2", f32t(&[TT, D], &v))
        }),
        IMG,
        &[],
        "non-finite value inf in hidden_states.2",
    );
    refuses(small_dump(|_| {}), &[], &[], "no image span");
    refuses(
        small_dump(|_| {}),
        &[("image_start", "10"), ("image_len", "6")],
        &[],
        "span ends past the last token",
    );
    refuses(small_dump(|_| {}), IMG, &["--sink-dims", "64"], "sink dim 64 is out of range");
    refuses(small_dump(|_| {}), IMG, &["--rho", "1.5"], "rho = 1.5");
    refuses(small_dump(|_| {}), IMG, &["--p=-0.1"], "p = -0.1");
    refuses(small_dump(|_| {}), IMG, &["--tau", "0"], "tau = 0");
    refuses(small_dump(|_| {}), IMG, &["--preset", "gpt-9"], "unknown preset");
    refuses(small_dump(|_| {}), IMG, &["--layers", "2,9"], "layer 9 out of range");
    refuses(small_dump(|_| {}), IMG, &["--convention", "both"], "expected 'paper' or 'released'");
}

#[test]
fn broken_files_fail_cleanly() {
    let empty = tmp("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    refuses_file(&empty, &[], "not a valid safetensors file");

    let garbage = tmp("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a tensor file at all, just some words").unwrap();
    refuses_file(&garbage, &[], "not a valid safetensors file");

    let good = tmp("whole.safetensors");
    write_dump(&good, small_dump(|_| {}), IMG);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = tmp("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    refuses_file(&truncated, &[], "not a valid safetensors file");

    // A header that declares a tensor far larger than the file.
    let header = r#"{"attentions.0":{"dtype":"F32","shape":[32,4096,4096],"data_offsets":[0,2147483648]}}"#;
    let mut huge = (header.len() as u64).to_le_bytes().to_vec();
    huge.extend_from_slice(header.as_bytes());
    huge.extend_from_slice(&[0u8; 64]);
    let lying = tmp("lying.safetensors");
    std::fs::write(&lying, huge).unwrap();
    refuses_file(&lying, &[], "not a valid safetensors file");

    refuses_file(&tmp("does-not-exist.safetensors"), &[], "No such file");
}

fn official(convention: &str, p: &str) {
    let input = support::shared_data("official-var-fixture.safetensors");
    let output = tmp(&format!("official-{convention}.safetensors"));
    let out = run(&[
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--convention",
        convention,
        "--rho",
        "0.5",
        "--p",
        p,
        "--sink-dims",
        "1415,2533",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = TensorFile::open(&input).unwrap();
    let got = TensorFile::open(&output).unwrap();
    for l in 0..6 {
        assert_eq!(
            got.u8(&format!("sinks.{l}")).unwrap().1,
            want.u8(&format!("expected.sinks.{l}")).unwrap().1,
            "layer {l} sinks"
        );
        assert_eq!(
            got.u8(&format!("selected.{l}")).unwrap().1,
            want.u8(&format!("expected.selected.{l}")).unwrap().1,
            "layer {l} selected"
        );
        let a = got.f32(&format!("attentions.{l}")).unwrap().data;
        let expected = if convention == "paper" && l == 5 {
            "attentions.5".to_string()
        } else {
            format!("expected.attentions.{l}")
        };
        let b = want.f32(&expected).unwrap().data;
        let d = support::close::max_abs_diff(&format!("layer {l}"), &a, &b);
        assert!(d <= 1e-5, "layer {l}: {d}");
    }
}

#[test]
fn apply_reproduces_the_official_code_released() {
    official("released", "0.6");
}

#[test]
fn apply_reproduces_the_official_code_paper() {
    official("paper", "0.4");
}

#[test]
fn the_built_in_report_shows_sinks_selections_and_moved_mass() {
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("adapter:"), "{stdout}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 32, "{stdout}");
    for (l, r) in rows.iter().enumerate() {
        // layer role text_sinks / visual_sinks selected / total changed moved (mean)
        let text: usize = r[2].parse().unwrap();
        let visual: usize = r[4].parse().unwrap();
        let selected: usize = r[5].parse().unwrap();
        let changed: usize = r[8].parse().unwrap();
        let moved: f64 = r[9].parse().unwrap();
        if l < 2 {
            assert_eq!((text, visual, selected, changed), (0, 0, 0, 0), "layer {l}: {r:?}");
        } else {
            assert!(text >= 1 && visual >= 1 && selected > 0, "layer {l}: {r:?}");
            if l < 31 {
                assert!(changed > 0 && moved > 0.0, "layer {l} must move mass: {r:?}");
            } else {
                assert_eq!(changed, 0, "the paper leaves the last layer unedited");
            }
        }
    }
    assert!(stdout.contains("time:"));
}

/// q/k/v dump: 4 layers, 4 heads over 2 kv heads, Tq = Tk = 40, d = 64; image 4:24, sinks
/// planted in hidden dim 7 on tokens 0 and 9.
fn attend_dump(head_dim: usize) -> (Vec<(String, T)>, Vec<Vec<f32>>) {
    let mut rng = support::Rng::new(77);
    let (h, hkv, t, hd) = (4, 2, 40, 64);
    let mut tensors = Vec::new();
    let mut raw = Vec::new();
    for l in 0..4 {
        let q: Vec<f32> = (0..h * t * head_dim).map(|_| rng.normal() as f32).collect();
        let mut k: Vec<f32> = (0..hkv * t * head_dim).map(|_| rng.normal() as f32).collect();
        for kv in 0..hkv {
            for j in [0usize, 9] {
                // Sinks draw attention: a large key along q's mean direction (0 here) would not;
                // scale the whole key instead.
                for i in 0..head_dim {
                    k[(kv * t + j) * head_dim + i] *= 3.0;
                }
            }
        }
        let v: Vec<f32> = (0..hkv * t * head_dim).map(|_| rng.normal() as f32).collect();
        let mut hid: Vec<f32> = (0..t * hd).map(|_| rng.normal() as f32).collect();
        for j in [0usize, 9] {
            hid[j * hd + 7] = 300.0;
        }
        tensors.push((format!("q.{l}"), f32t(&[1, h, t, head_dim], &q)));
        tensors.push((format!("k.{l}"), f32t(&[hkv, t, head_dim], &k)));
        tensors.push((format!("v.{l}"), f32t(&[hkv, t, head_dim], &v)));
        tensors.push((format!("hidden_states.{l}"), f32t(&[t, hd], &hid)));
        raw.extend([q, k, v, hid]);
    }
    (tensors, raw)
}

/// `attend`'s output for `attend_dump(64)` (image 4:24, sinks in dim 7 at tau 5, causal, the
/// last `queries` rows of every head) against the CPU path; returns the rows selected.
fn check_attend_output(got: &TensorFile, raw: &[Vec<f32>], cfg: &visattn::VarConfig, queries: usize) -> usize {
    let visual = visattn::VisualTokens::from_spans(&[visattn::ImageSpan::new(4, 24)], 40).unwrap();
    let shape = visattn::FusedShape {
        heads: 4,
        kv_heads: 2,
        queries,
        keys: 40,
        head_dim: 64,
    };
    let mut selected_total = 0;
    for l in 0..4 {
        let (q, k, v, hid) = (&raw[4 * l], &raw[4 * l + 1], &raw[4 * l + 2], &raw[4 * l + 3]);
        let rows: Vec<f32> = (0..4)
            .flat_map(|h| q[(h * 40 + 40 - queries) * 64..(h * 40 + 40) * 64].to_vec())
            .collect();
        let role = cfg.role(l, 4);
        let sinks = if role == visattn::LayerRole::Off {
            vec![false; 40]
        } else {
            visattn::reference::sink_mask(&visattn::reference::phi(hid, 64, &[7]), 5.0)
        };
        let (want, stats) = visattn::reference::attention_var(
            cfg,
            role,
            &visual,
            &sinks,
            visattn::reference::Qkv {
                q: &rows,
                k,
                v,
                shape,
                causal: true,
                scale: 0.125,
            },
        )
        .unwrap();
        let o = got.f32(&format!("o.{l}")).unwrap().data;
        let vmax = support::close::max_abs(v);
        support::close::assert_close(&format!("layer {l} O"), &o, &want, |_| 2e-6 * vmax);
        let sel = got.u8(&format!("selected.{l}")).unwrap().1;
        assert_eq!(sel, stats.iter().map(|s| s.selected as u8).collect::<Vec<_>>(), "layer {l}");
        selected_total += sel.iter().filter(|&&s| s == 1).count();
    }
    selected_total
}

#[test]
fn attend_matches_the_reference_and_refuses_bad_dumps() {
    let (tensors, raw) = attend_dump(64);
    let input = tmp("attend.safetensors");
    let output = tmp("attend.out.safetensors");
    write_dump(&input, tensors, &[("image_start", "4"), ("image_len", "24"), ("causal", "true")]);
    let out = run(&[
        "attend",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--sink-dims",
        "7",
        "--tau",
        "5",
        "--convention",
        "released",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = TensorFile::open(&output).unwrap();
    assert_eq!(got.metadata()["causal"], "true");
    let cfg = visattn::VarConfig {
        tau: 5.0,
        sink_dims: vec![7],
        ..visattn::VarConfig::released()
    };
    let selected_total = check_attend_output(&got, &raw, &cfg, 40);
    assert!(selected_total > 0, "the dump must select rows");

    let attend_refuses = |tensors: Vec<(String, T)>, needle: &str| {
        let input = tmp(&format!(
            "attend-bad-{}.safetensors",
            needle.replace(|c: char| !c.is_alphanumeric(), "_")
        ));
        write_dump(&input, tensors, &[("image_start", "4"), ("image_len", "24")]);
        let output = input.with_extension("out.safetensors");
        let out = run(&[
            "attend",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--sink-dims",
            "7",
            "--tau",
            "5",
        ]);
        one_error(&out, needle, needle);
        assert!(!output.exists());
    };
    attend_refuses(attend_dump(6).0, "head_dim 6");
    let (mut t, _) = attend_dump(64);
    t.retain(|(n, _)| n != "k.2");
    attend_refuses(t, "missing tensor 'k.2'");
    let (mut t, _) = attend_dump(64);
    t.retain(|(n, _)| n != "hidden_states.3");
    attend_refuses(t, "hidden_states.3 is missing");
    let (mut t, _) = attend_dump(64);
    replace(&mut t, "v.1", f32t(&[2, 39, 64], &vec![0.0; 2 * 39 * 64]));
    attend_refuses(t, "v.1 has shape");
}

#[test]
fn discover_names_the_sink_dimensions_and_their_tokens() {
    let minilm = support::shared_data("minilm-real.safetensors");
    let out = run(&["discover", "--input", minilm.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("suggested D_sink: 99\n"), "{stdout}");
    assert!(stdout.contains("carried by token 0 ([CLS])"), "{stdout}");
    let first = stdout.lines().find(|l| l.trim_start().starts_with("1 ")).unwrap();
    assert_eq!(first.split_whitespace().nth(1), Some("99"), "{first}");
    let json = run(&["discover", "--input", minilm.to_str().unwrap(), "--json"]);
    let text = String::from_utf8_lossy(&json.stdout);
    assert!(
        text.trim_start().starts_with('{') && text.contains("\"sink_dims\":[99]") && text.contains("\"string\":\"[CLS]\""),
        "{text}"
    );

    let fixture = support::shared_data("official-var-fixture.safetensors");
    let out = run(&["discover", "--input", fixture.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("suggested D_sink: 1415,2533") || stdout.contains("suggested D_sink: 2533,1415"),
        "{stdout}"
    );
}

#[test]
fn tau_relative_to_sqrt_d_and_the_warning() {
    let input = tmp("taurel.safetensors");
    write_dump(&input, small_dump(|_| {}), IMG);
    let output = tmp("taurel.out.safetensors");
    // D = 64: sqrt(D) = 8, so tau 9 can never be passed.
    let out = run(&[
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--sink-dims",
        "7",
        "--tau",
        "9",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: tau 9 >= sqrt(D) = 8.00"), "{stderr}");
    let none = TensorFile::open(&output).unwrap();
    assert!(none.u8("sinks.2").unwrap().1.iter().all(|&s| s == 0));
    let out = run(&[
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--sink-dims",
        "7",
        "--tau-rel",
        "0.5",
    ]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("warning"));
    let f = TensorFile::open(&output).unwrap();
    assert_eq!(f.metadata()["tau"], "4");
    assert_eq!(f.u8("sinks.2").unwrap().1[3], 1);
}

/// A dump with two images (spans 1:3 and 7:3 over 12 tokens) and its reference results.
#[test]
fn two_image_dump_and_a_batch_of_dumps() {
    let spans = "1:3,7:3";
    let two = tmp("two-images.safetensors");
    write_dump(&two, small_dump(|_| {}), &[("image_spans", spans)]);
    let one = tmp("one-image.safetensors");
    // A second, shorter prompt: 12 -> 9 tokens (drop the first 3 keys and rows).
    write_dump(
        &one,
        small_dump(|t| {
            for (name, tensor) in t.iter_mut() {
                let data: Vec<f32> = bytemuck::cast_slice(tensor.bytes()).to_vec();
                let cut: Vec<f32> = if name.starts_with("attentions") {
                    let mut v = Vec::new();
                    for h in 0..H {
                        for q in 3..TT {
                            let row = &data[(h * TT + q) * TT + 3..(h * TT + q + 1) * TT];
                            let s: f32 = row.iter().sum();
                            v.extend(row.iter().map(|x| x / s));
                        }
                    }
                    *tensor = f32t(&[H, TT - 3, TT - 3], &v);
                    continue;
                } else {
                    data[3 * D..].to_vec()
                };
                *tensor = f32t(&[TT - 3, D], &cut);
            }
        }),
        &[("image_start", "1"), ("image_len", "4")],
    );
    let (out_two, out_one) = (tmp("two-images.out.safetensors"), tmp("one-image.out.safetensors"));
    let alone = tmp("two-images.alone.safetensors");
    let common = ["--sink-dims", "7", "--tau", "5", "--convention", "released"];
    let mut args = vec!["apply", "--input", two.to_str().unwrap(), "--output", alone.to_str().unwrap()];
    args.extend(common);
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut args = vec![
        "apply",
        "--input",
        two.to_str().unwrap(),
        "--input",
        one.to_str().unwrap(),
        "--output",
        out_two.to_str().unwrap(),
        "--output",
        out_one.to_str().unwrap(),
    ];
    args.extend(common);
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The two-image dump against the CPU reference, alone and in the batch.
    let input = TensorFile::open(&two).unwrap();
    let cfg = visattn::VarConfig {
        tau: 5.0,
        sink_dims: vec![7],
        ..visattn::VarConfig::released()
    };
    let visual = visattn::VisualTokens::from_spans(&visattn::dump::parse_spans(spans).unwrap(), TT).unwrap();
    let (batched, single) = (TensorFile::open(&out_two).unwrap(), TensorFile::open(&alone).unwrap());
    assert_eq!(batched.metadata()["image_spans"], spans);
    let mut changed = 0;
    for l in 0..L {
        let mut want = input.f32(&format!("attentions.{l}")).unwrap().data;
        let before = want.clone();
        let hidden = input.f32(&format!("hidden_states.{l}")).unwrap().data;
        let flags = visattn::reference::apply_layer(
            &cfg,
            cfg.role(l, L),
            &visual,
            Some((&hidden, D)),
            &mut want,
            visattn::AttnShape::new(H, TT, TT).unwrap(),
        )
        .unwrap();
        for f in [&batched, &single] {
            let got = f.f32(&format!("attentions.{l}")).unwrap().data;
            support::close::assert_close(&format!("layer {l}"), &got, &want, |w| 1e-5 * w.abs() + 1e-12);
            assert_eq!(
                f.u8(&format!("selected.{l}")).unwrap().1,
                flags.selected.iter().map(|&s| s as u8).collect::<Vec<_>>()
            );
        }
        // In the batch, exactly what it gives alone.
        assert_eq!(
            batched.f32(&format!("attentions.{l}")).unwrap().data,
            single.f32(&format!("attentions.{l}")).unwrap().data
        );
        changed += want.iter().zip(&before).filter(|(a, b)| a != b).count();
    }
    assert!(changed > 0, "the two-image dump must change something");
    assert_eq!(
        TensorFile::open(&out_one).unwrap().shape("attentions.2").unwrap(),
        vec![H, TT - 3, TT - 3]
    );

    let out = run(&[
        "apply",
        "--input",
        two.to_str().unwrap(),
        "--input",
        one.to_str().unwrap(),
        "--output",
        out_two.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one output per input"));
}

#[test]
fn attend_uses_split_k_for_a_decode_row() {
    let (mut tensors, raw) = attend_dump(64);
    // Keep only the last query row of every layer: a decode step over 40 keys.
    for l in 0..4 {
        let q = &raw[4 * l];
        let last: Vec<f32> = (0..4).flat_map(|h| q[(h * 40 + 39) * 64..(h * 40 + 40) * 64].to_vec()).collect();
        replace(&mut tensors, &format!("q.{l}"), f32t(&[4, 1, 64], &last));
    }
    let input = tmp("decode.safetensors");
    let output = tmp("decode.out.safetensors");
    write_dump(&input, tensors, &[("image_start", "4"), ("image_len", "24"), ("causal", "true")]);
    let out = run(&[
        "attend",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--sink-dims",
        "7",
        "--tau",
        "5",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = TensorFile::open(&output).unwrap();
    let cfg = visattn::VarConfig {
        tau: 5.0,
        sink_dims: vec![7],
        ..visattn::VarConfig::paper()
    };
    check_attend_output(&got, &raw, &cfg, 1);
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    )
}

/// `apply --png` on the official fixture with its own D_sink (1415, 2533; shared/data/README.md),
/// so that a failure these tests expect comes from the PNG path, not from a missing setting.
fn apply_png(input: &Path, output: &Path, png: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--sink-dims",
        "1415,2533",
        "--png",
        png.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn apply_draws_a_heatmap_png() {
    let input = support::shared_data("official-var-fixture.safetensors");
    let (output, png) = (tmp("fixture.png.out.safetensors"), tmp("fixture-heatmap.png"));
    let out = apply_png(
        &input,
        &output,
        &png,
        &["--convention", "released", "--layer", "3", "--size", "320x160"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(png_size(&png), (320, 160));
    // Over a picture: the heatmap itself as the image (any PNG will do).
    let over = tmp("fixture-over.png");
    let out = apply_png(
        &input,
        &output,
        &over,
        &["--convention", "released", "--image", png.to_str().unwrap(), "--size", "200x100"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(png_size(&over), (200, 100));
    let missing = apply_png(&input, &output, &over, &["--image", "/nonexistent.png"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.png"));
    let bad = apply_png(&input, &output, &png, &["--size", "huge"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--size huge"));
    let small = tmp("nonsquare.safetensors");
    write_dump(&small, small_dump(|_| {}), IMG);
    let bad = run(&[
        "apply",
        "--input",
        small.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--sink-dims",
        "7",
        "--tau",
        "5",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a square patch grid"));
}

#[test]
fn the_embed_example_renders_its_final_frame() {
    let bin = support::example("embed");
    let png = tmp("embed.png");
    let out = Command::new(bin).arg(&png).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("recorded into one encoder").count(), 4, "{stdout}");
    assert_eq!(png_size(&png), (1024, 512));
}

#[test]
fn argument_errors_are_one_line_and_exit_1() {
    for (args, needle) in [
        (&["apply", "--frobnicate"][..], "--frobnicate"),
        (&["apply", "--input"][..], "--input"),
        (&["apply", "--input", "x", "--output", "y", "--tau", "abc"][..], "abc"),
        (&["nonsense-subcommand"][..], "nonsense-subcommand"),
    ] {
        one_error(&run(args), &format!("{args:?}"), needle);
    }
    let help = run(&["apply", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--input"));
}

#[test]
fn a_failed_png_leaves_nothing_and_the_png_follows_the_outputs() {
    let input = support::shared_data("official-var-fixture.safetensors");
    let apply = |output: &Path, png: &Path| apply_png(&input, output, png, &["--convention", "released", "--size", "64x32"]);
    // The PNG's name is taken by a directory: the write fails, no temporary file stays, and
    // no output is written either.
    let (output, png) = (tmp("blocked.out.safetensors"), tmp("blocked.png"));
    std::fs::create_dir_all(&png).unwrap();
    let out = apply(&output, &png);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("blocked.png"),
        "fails on the PNG: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stray = |name: &str| {
        leftovers(png.parent().unwrap())
            .into_iter()
            .filter(|n| n.contains(name))
            .collect::<Vec<_>>()
    };
    assert!(stray("blocked.png").is_empty(), "a failed --png leaves a temporary file behind");
    assert!(!output.exists(), "no output beside a failed --png");
    // The output cannot be written: no PNG appears without it.
    let (output, png) = (tmp("no-such-dir/out.safetensors"), tmp("orphan.png"));
    let out = apply(&output, &png);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-dir"),
        "fails on the output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!png.exists(), "a PNG was written although the output failed");
    assert!(stray("orphan.png").is_empty(), "a temporary PNG stayed behind");
}

/// The bench's flags fail as the CLI's do: one `error:` line, exit 1, no panic, before any
/// GPU work (a flag without its value, a bad number, zero repeats, an unknown shape).
#[test]
fn bench_refuses_bad_flags_with_one_line() {
    let bench = support::example("bench");
    for (args, needle) in [
        (&["--repeats"][..], "--repeats"),
        (&["--repeats", "many"][..], "many"),
        (&["--repeats", "0"][..], "0"),
        (&["--shape", "huge"][..], "huge"),
        (&["--settings", "lanes=four,keys=4"][..], "four"),
        (&["--settings", "lanes=4,keys=3"][..], "keys_per_lane"),
        (&["--markdown", "--json"][..], "--json"),
        (&["--shape"][..], "--shape"),
    ] {
        let out = Command::new(&bench).args(args).env("RUST_BACKTRACE", "0").output().unwrap();
        one_error(&out, &format!("{args:?}"), needle);
        assert!(out.stdout.is_empty(), "{args:?}: no measurement may start");
    }
}

/// One clean failure: exit 1, one `error:` line holding `needle`, no panic.
fn one_error(out: &Output, what: &str, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(1), "{what}: exit code; stderr {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: panicked: {stderr}");
    assert_eq!(lines.len(), 1, "{what}: one line on stderr, got {lines:?}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{what}: '{needle}' not in {:?}",
        lines[0]
    );
}

/// A fresh folder for one test (the per-process tmp() folder is shared by tests running at
/// the same time, and these tests list their folder).
fn fresh_dir(name: &str) -> PathBuf {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh folder holding the small valid dump as `in.safetensors`.
fn dir_with_dump(name: &str) -> (PathBuf, PathBuf) {
    let dir = fresh_dir(name);
    let input = dir.join("in.safetensors");
    write_dump(&input, small_dump(|_| {}), IMG);
    (dir, input)
}

/// Names in `dir` that look like a staged output left behind.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

fn apply_small(input: &Path, outputs: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["apply", "--input", input.to_str().unwrap()];
    for o in outputs {
        args.extend(["--output", o.to_str().unwrap()]);
    }
    args.extend(["--sink-dims", "7", "--tau", "5"]);
    args.extend_from_slice(extra);
    run(&args)
}

/// An output that names an input or another output is refused before anything is written,
/// however the path is spelled (`./`, a symlink, a hard link), and the file is left as it was.
#[test]
fn outputs_never_name_an_input_or_each_other() {
    let dir = fresh_dir("same-file");
    let input = dir.join("x.safetensors");
    write_dump(&input, small_dump(|_| {}), IMG);
    let original = std::fs::read(&input).unwrap();
    let output = dir.join("y.safetensors");
    let dotted = format!("{}/./x.safetensors", dir.display());
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let hard = dir.join("hard.safetensors");
    std::fs::hard_link(&input, &hard).unwrap();
    for (what, out, needle) in [
        ("the input itself", input.clone(), "x.safetensors"),
        ("the input through ./", PathBuf::from(&dotted), "x.safetensors"),
        ("a symlink to the input", link.clone(), "link.safetensors"),
        ("a hard link to the input", hard.clone(), "hard.safetensors"),
    ] {
        let got = apply_small(&input, &[&out], &[]);
        one_error(&got, what, "name the same file");
        assert!(String::from_utf8_lossy(&got.stderr).contains(needle), "{what}: names the path");
        assert_eq!(std::fs::read(&input).unwrap(), original, "{what}: the input changed");
    }
    // --png over the input, over the output, and over the picture it draws on.
    let png_args = ["--layer", "1", "--size", "64x32"];
    let grid_dump = dir.join("grid.safetensors");
    write_dump(&grid_dump, small_dump(|_| {}), &[("image_start", "2"), ("image_len", "4")]);
    let grid_original = std::fs::read(&grid_dump).unwrap();
    for (what, png, needle) in [
        ("--png naming the input", grid_dump.clone(), "--png"),
        ("--png naming the output", output.clone(), "--png"),
    ] {
        let mut extra = vec!["--png", png.to_str().unwrap()];
        extra.extend(png_args);
        let got = apply_small(&grid_dump, &[&output], &extra);
        one_error(&got, what, needle);
        assert_eq!(std::fs::read(&grid_dump).unwrap(), grid_original, "{what}: the input changed");
        assert!(!output.exists(), "{what}: an output was written");
    }
    let picture = dir.join("under.png");
    std::fs::write(&picture, b"not looked at").unwrap();
    let mut extra = vec!["--png", picture.to_str().unwrap(), "--image", picture.to_str().unwrap()];
    extra.extend(png_args);
    one_error(&apply_small(&grid_dump, &[&output], &extra), "--png naming --image", "--image");
    // Two outputs of a batch with one path.
    let second = dir.join("x2.safetensors");
    std::fs::copy(&input, &second).unwrap();
    let got = run(&[
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--input",
        second.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--output",
        &format!("{}/./y.safetensors", dir.display()),
        "--sink-dims",
        "7",
        "--tau",
        "5",
    ]);
    one_error(&got, "two outputs, one file", "name the same file");
    assert!(!output.exists());
    // attend's --output over its --input.
    let got = run(&["attend", "--input", input.to_str().unwrap(), "--output", link.to_str().unwrap()]);
    one_error(&got, "attend over its input", "name the same file");
    assert_eq!(std::fs::read(&input).unwrap(), original);
    assert!(leftovers(&dir).is_empty(), "left behind: {:?}", leftovers(&dir));
}

/// Outputs replace regular files only: a FIFO, a directory or a symlink to either is refused
/// and stays what it was; a symlink to a regular file is followed (the link stays a link).
/// New outputs get the mode the umask gives; a replaced file keeps its own.
#[test]
fn outputs_replace_regular_files_only_with_the_usual_mode() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let (dir, input) = dir_with_dump("not-regular");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo");
    let to_fifo = dir.join("to-fifo");
    std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink(dir.join("nothing-here"), &dangling).unwrap();
    for (what, out, needle) in [
        ("a FIFO", &fifo, "not a regular file"),
        ("a symlink to a FIFO", &to_fifo, "not a regular file"),
        ("a directory", &folder, "a directory"),
        ("a dangling symlink", &dangling, "symlink to nothing"),
    ] {
        one_error(&apply_small(&input, &[out], &[]), what, needle);
    }
    assert!(
        std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );
    assert!(std::fs::symlink_metadata(&to_fifo).unwrap().file_type().is_symlink());
    assert!(std::fs::metadata(&folder).unwrap().is_dir());
    assert!(leftovers(&dir).is_empty(), "left behind: {:?}", leftovers(&dir));

    // Through a symlink to a regular file: the file gets the result, the link stays.
    let real = dir.join("real.safetensors");
    std::fs::write(&real, b"old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let got = apply_small(&input, &[&link], &[]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    assert!(
        std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link was replaced"
    );
    TensorFile::open(&real).expect("the linked file holds the result");
    assert_eq!(
        std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o640,
        "a replaced file keeps its mode"
    );

    // New files: 0666 under the umask, as any program's `>` would make them.
    for (umask, mode) in [("022", 0o644), ("027", 0o640)] {
        let out = dir.join(format!("new-{umask}.safetensors"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" apply --input \"$1\" --output \"$2\" --sink-dims 7 --tau 5 >/dev/null"
            ))
            .arg(program())
            .arg(&input)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, mode, "umask {umask}");
    }
    assert!(leftovers(&dir).is_empty(), "left behind: {:?}", leftovers(&dir));
}

/// A full stdout is one error line and exit 1; a reader that went away ends the run quietly
/// (exit 0, nothing on stderr). Never a panic.
#[test]
fn a_full_or_closed_stdout_is_an_error_line_never_a_panic() {
    let (dir, input) = dir_with_dump("stdout");
    let output = dir.join("out.safetensors");
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["discover", "--input", input.to_str().unwrap()],
        vec!["discover", "--input", input.to_str().unwrap(), "--json"],
        vec![
            "apply",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--sink-dims",
            "7",
            "--tau",
            "5",
        ],
    ];
    for args in &commands {
        let got = Command::new(program())
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .stdout(full())
            .output()
            .unwrap();
        one_error(&got, &format!("{args:?} > /dev/full"), "writing standard output");
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let got = Command::new(program())
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&got.stderr);
        assert_eq!(got.status.code(), Some(0), "{args:?} | closed pipe: {stderr}");
        assert!(stderr.is_empty(), "{args:?} | closed pipe: quiet, got {stderr}");
    }
    // apply wrote its result before stdout failed: it stays, whole.
    TensorFile::open(&output).expect("apply's output is whole");
    // The LLaVA host's JSON the same way.
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava");
    let got = Command::new(support::example("llava"))
        .args(["--model", tiny.to_str().unwrap(), "--tokens"])
        .env("RUST_BACKTRACE", "0")
        .stdout(full())
        .output()
        .unwrap();
    one_error(&got, "llava --tokens > /dev/full", "writing standard output");
}

/// Argument errors name the arguments; negative numbers are values (then range-checked);
/// conflicting or meaningless flags are refused.
#[test]
fn argument_errors_name_the_arguments_and_negative_numbers_are_values() {
    let (dir, input) = dir_with_dump("args");
    let i = input.to_str().unwrap();
    let o = dir.join("out.safetensors");
    let o = o.to_str().unwrap();
    for (args, needle) in [
        (&["apply"][..], "--input <INPUT>"),
        (&["apply", "--input", i][..], "--output <OUTPUT>"),
        (&["apply", "--input", i, "--output", o, "--image-start", "2"][..], "--image-len"),
        (
            &["apply", "--input", i, "--output", o, "--image-spans", "2:6", "--image-start", "2"][..],
            "--image-start",
        ),
        (
            &["apply", "--input", i, "--output", o, "--sink-dims", "7", "--p", "-0.1"][..],
            "p = -0.1",
        ),
        (
            &["apply", "--input", i, "--output", o, "--sink-dims", "7", "--tau", "-5"][..],
            "tau = -5",
        ),
        (
            &["apply", "--input", i, "--output", o, "--sink-dims", "7", "--rho", "-1e3"][..],
            "rho = -1000",
        ),
    ] {
        one_error(&run(args), &format!("{args:?}"), needle);
    }
    assert!(!Path::new(o).exists());
}

/// A PNG whose header declares a huge picture is refused before anything is allocated for it.
#[test]
fn a_picture_declaring_a_huge_size_is_refused_before_decoding() {
    let dir = fresh_dir("huge-png");
    // 60000 x 60000 RGB declared; the data is one empty zlib stream (69 bytes in all).
    let png = huge_png(60000, 60000);
    let picture = dir.join("huge.png");
    std::fs::write(&picture, &png).unwrap();
    let input = support::shared_data("official-var-fixture.safetensors");
    let got = apply_png(
        &input,
        &dir.join("out.safetensors"),
        &dir.join("heat.png"),
        &["--image", picture.to_str().unwrap(), "--size", "64x32"],
    );
    one_error(&got, "60000x60000 PNG", "60000x60000");
    assert!(!dir.join("out.safetensors").exists() && !dir.join("heat.png").exists());
}

/// A PNG file with an IHDR of `width` x `height` (8-bit RGB) and an empty IDAT.
fn huge_png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Without a display server, Mesa's device-select layer would print "XDG_RUNTIME_DIR is
/// invalid or not set" twice at every start: a run prints its one line of output and nothing
/// else on stderr.
#[test]
fn no_display_server_noise_on_stderr() {
    let (dir, input) = dir_with_dump("xdg");
    let out = dir.join("out.safetensors");
    let got = Command::new(program())
        .args([
            "apply",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--sink-dims",
            "7",
            "--tau",
            "5",
        ])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "stderr must stay empty: {stderr}");
}

fn llava(args: &[&str]) -> Output {
    Command::new(support::example("llava"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// The LLaVA host refuses conflicting or meaningless flags with one line naming them.
#[test]
fn llava_refuses_conflicting_and_meaningless_flags() {
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava");
    let (m, img) = (tiny.to_str().unwrap(), tiny.join("picture.png"));
    let img = img.to_str().unwrap();
    for (args, needle) in [
        (&["--model", m, "--tokens", "--reference"][..], "--reference"),
        (
            &["--model", m, "--image", img, "--var", "off", "--sink-dims", "999"][..],
            "--sink-dims",
        ),
        (
            &["--model", m, "--image", img, "--var", "off", "--convention", "released"][..],
            "--convention",
        ),
        (&["--bench", "tiny", "--repeats", "0"][..], "--repeats"),
        (&["--bench", "tiny", "--bench-steps", "0"][..], "--bench-steps"),
        (&["--model", m, "--image", img, "--repeats", "2"][..], "--bench"),
        (&["--model", m, "--image", img, "--temperature", "-1"][..], "temperature"),
        (&["--model"][..], "--model"),
    ] {
        let got = llava(args);
        one_error(&got, &format!("{args:?}"), needle);
        assert!(got.stdout.is_empty(), "{args:?}: nothing may run");
    }
}
