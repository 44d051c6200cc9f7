//! LLaVA-1.5 from llama.cpp's two files (issue "llama.cpp's LLaVA files"): the tiny LLaVA's
//! language model as `convert_hf_to_gguf.py` writes it and its mmproj file as llama.cpp's legacy
//! scripts write it (tools/make_tiny_llava_gguf.py, tools/make_tiny_llava_mmproj.py ->
//! tests/data/tiny-llava-gguf/), through `GpuModel::load_gguf_llava`, against HF transformers
//! with the same weights and the same pixels (expected-mmproj.safetensors).
//!
//! The mmproj converter keeps the layers up to LLaVA's feature layer (2 of the tower's 3) and
//! always stores the patch embedding and the projector's matrices in F16, even with --use-f32:
//! the expected values `*_mmproj_f32` / `*_mmproj_f16` are HF's model holding exactly each file's
//! weights. The 28 x 28 picture is the model's size: llama.cpp's preprocessing and HF's
//! processor both leave it as it is, so the pixels are the same bit for bit.

mod support;

use std::path::{Path, PathBuf};

use visattn_host::gguf::GgufFile;
use visattn_host::gguf::vision::Mmproj;
use visattn_host::gpu::model::{GpuModel, VarMode};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava-gguf").join(name)
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap() as u32
}

fn ids(expected: &visattn::dump::TensorFile, name: &str) -> Vec<u32> {
    expected.i64(name).unwrap().1.iter().map(|&i| i as u32).collect()
}

/// The mmproj file's tower as clip.cpp reads it, and llama.cpp's pixels of the picture.
#[test]
fn the_mmproj_file_reads_as_clip_cpp_reads_it() {
    let mm = GgufFile::open(data("mmproj-f32.gguf")).unwrap();
    let tower = Mmproj::read(&mm).unwrap();
    let v = &tower.vision;
    assert_eq!(
        (
            v.hidden,
            v.intermediate,
            v.layers,
            v.heads,
            v.image_size,
            v.patch_size,
            v.act.as_str()
        ),
        (32, 64, 2, 4, 28, 7, "quick_gelu"),
        "2 of the tower's 3 layers: the converter drops those after LLaVA's feature layer"
    );
    assert_eq!(tower.projection, 64);
    let expected = visattn::dump::TensorFile::open(data("expected-mmproj.safetensors")).unwrap();
    let picture = visattn_host::image::load_as_llama_cpp(&data("picture28.png")).unwrap();
    let got = visattn_host::image::llama_cpp_pixels(&picture, 28, tower.image_mean, tower.image_std).unwrap();
    let want = expected.f32("pixel_values_llamacpp").unwrap().data;
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
        "llama.cpp's pixels bit for bit"
    );
}

/// Each file pair's image features and the logits of every prompt position within f32's
/// tolerance of HF's with the same weights (1e-4 of the largest), HF's 8 greedy tokens (their
/// steps won by 0.014 at least), for the F32 and F16 mmproj files and the Q8_0 language model,
/// the
/// prompt's ids as llama.cpp's LLaVA-1.5 path builds them (its text pieces tokenized apart,
/// the image's 16 rows between them), VAR off.
#[test]
fn the_file_pair_answers_like_hf_with_the_same_weights() {
    let expected = visattn::dump::TensorFile::open(data("expected-mmproj.safetensors")).unwrap();
    let (before, after) = (ids(&expected, "ids_before"), ids(&expected, "ids_after"));
    let g = support::gpu::gpu();
    let picture = visattn_host::image::load_as_llama_cpp(&data("picture28.png")).unwrap();
    for (lm, mmproj, tag) in [
        ("lm-f32.gguf", "mmproj-f32.gguf", "mmproj_f32"),
        ("lm-f32.gguf", "mmproj-f16.gguf", "mmproj_f16"),
        // Q8_0 blocks kept on the device; HF holds their dequantized values.
        ("lm-q8_0.gguf", "mmproj-f16.gguf", "q8_0_mmproj_f16"),
    ] {
        let lm = GgufFile::open(data(lm)).unwrap();
        let mm = GgufFile::open(data(mmproj)).unwrap();
        let tower = Mmproj::read(&mm).unwrap();
        let cfg = tower.llava(visattn_host::gguf::model::text_config(&lm).unwrap()).unwrap();
        let model = GpuModel::load_gguf_llava(&g, &cfg, (&lm, &mm), None, g.ctx.max_binding(), |_, _| {}).unwrap();
        let pixels = visattn_host::image::llama_cpp_pixels(&picture, 28, tower.image_mean, tower.image_std).unwrap();
        let image = model.image_features(&pixels).unwrap();
        assert_eq!(image.1, 16);
        let got = visattn::readback::read_vec(&g.device, &g.queue, &image.0, 16 * 64).unwrap();
        let want = expected.f32(&format!("image_features_{tag}")).unwrap().data;
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        support::close::assert_close(&format!("{mmproj}: image features"), &got, &want, |_| 1e-5 * scale);

        let mut prompt = before.clone();
        prompt.extend(std::iter::repeat_n(cfg.image_token, 16));
        prompt.extend(&after);
        let hf: Vec<u32> = ids(&expected, "prompt_ids");
        let same = prompt.iter().zip(&hf).all(|(&a, &b)| a == b || (a == cfg.image_token && b == 400));
        assert!(same && prompt.len() == hf.len(), "{prompt:?} against HF's {hf:?}");

        let greedy = ids(&expected, &format!("greedy_{tag}"));
        let mut run = model
            .prefill(&prompt, Some(&image), &VarMode::Off, prompt.len() + greedy.len() + 1, true, false)
            .unwrap();
        let want = expected.f32(&format!("logits_{tag}")).unwrap().data;
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        support::close::assert_close(&format!("{mmproj}: logits"), &run.logits, &want, |_| 1e-4 * scale);
        let vocab = cfg.text.vocab;
        let mut answer = vec![argmax(&run.logits[(prompt.len() - 1) * vocab..])];
        while answer.len() < greedy.len() {
            let logits = model.step(&mut run, *answer.last().unwrap()).unwrap();
            answer.push(argmax(&logits));
        }
        assert_eq!(answer, greedy, "{mmproj}: HF's greedy answer");
    }
}

/// VAR on the file pair, end to end: the prompt's logits and 4 decode steps' against the CPU
/// reference built from the same two files (`GgufTensors`: every tensor dequantized, the
/// reference running VAR in f64), within 1e-4 of the largest logit; the tiny fixture's own
/// 94 x 71 picture, which llama.cpp's preprocessing resizes and pads, and on which the planted
/// sink dimension 11 makes VAR select rows (on picture28 it finds only BOS).
#[test]
fn var_on_the_file_pair_matches_the_cpu_reference() {
    var_on_matches_the_cpu_reference("lm-f32.gguf", "mmproj-f32.gguf");
}

/// The same with the quantized language model (Q8_0 blocks kept on the device, dequantized in
/// the kernels; the reference dequantizes the same blocks on the CPU) and the F16 mmproj file.
#[test]
fn var_on_a_quantized_file_pair_matches_the_cpu_reference() {
    var_on_matches_the_cpu_reference("lm-q8_0.gguf", "mmproj-f16.gguf");
}

fn var_on_matches_the_cpu_reference(lm: &str, mm: &str) {
    let g = support::gpu::gpu();
    let (lm, mm) = (GgufFile::open(data(lm)).unwrap(), GgufFile::open(data(mm)).unwrap());
    let tower = Mmproj::read(&mm).unwrap();
    let cfg = tower.llava(visattn_host::gguf::model::text_config(&lm).unwrap()).unwrap();
    let model = GpuModel::load_gguf_llava(&g, &cfg, (&lm, &mm), None, g.ctx.max_binding(), |_, _| {}).unwrap();
    let kept = model.formats();
    let quantized = lm.tensors().iter().any(|t| t.ggml_type == visattn_host::gguf::GgmlType::Q8_0);
    assert_eq!(
        kept.iter().any(|f| f.format == visattn_host::gpu::matrix::WeightFormat::Q8_0),
        quantized,
        "the file's Q8_0 blocks stay Q8_0 on the device: {kept:?}"
    );
    let mut tensors = visattn_host::gguf::model::GgufTensors::new(vec![&lm, &mm], &cfg.text, |_, _| {});
    let cpu = visattn_host::reference::Model::build(&cfg, &mut tensors).unwrap();
    tensors.finish().unwrap();

    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-llava");
    let picture = visattn_host::image::load_as_llama_cpp(&tiny.join("picture.png")).unwrap();
    assert_ne!(
        (picture.width, picture.height),
        (28, 28),
        "a picture llama.cpp's preprocessing resizes and pads"
    );
    let pixels = visattn_host::image::llama_cpp_pixels(&picture, 28, tower.image_mean, tower.image_std).unwrap();
    let image = model.image_features(&pixels).unwrap();
    let image_cpu = cpu.image_features(&pixels).unwrap();
    let expected = visattn::dump::TensorFile::open(data("expected-mmproj.safetensors")).unwrap();
    let mut prompt = ids(&expected, "ids_before");
    let start = prompt.len();
    prompt.extend(std::iter::repeat_n(cfg.image_token, 16));
    prompt.extend(ids(&expected, "ids_after"));

    let mut var = visattn::VarConfig::paper();
    var.sink_dims = vec![11];
    var.tau = 0.5 * (cfg.text.hidden as f64).sqrt();
    let reference_var = visattn_host::reference::Var {
        cfg: &var,
        image: Some(visattn::ImageSpan::new(start, 16)),
        prompt: prompt.len(),
    };
    let steps = 4;
    let mut run = model
        .prefill(
            &prompt,
            Some(&image),
            &VarMode::On(var.clone()),
            prompt.len() + steps + 1,
            true,
            false,
        )
        .unwrap();
    assert!(
        run.counts.iter().any(|c| c.selected_rows > 0),
        "VAR selected rows: {:?}",
        run.counts
    );
    let want = cpu.logits_with(&prompt, Some(&image_cpu), Some(reference_var.clone())).unwrap();
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
    support::close::assert_close("VAR on: prompt logits", &run.logits, &want, |_| 1e-4 * scale);
    let off = cpu.logits_with(&prompt, Some(&image_cpu), None).unwrap();
    assert!(
        off != want,
        "the reference's VAR changed nothing: the comparison would prove nothing"
    );

    let vocab = cfg.text.vocab;
    let mut seq = prompt.clone();
    let mut next = argmax(&run.logits[(prompt.len() - 1) * vocab..]);
    for step in 0..steps {
        seq.push(next);
        let got = model.step(&mut run, next).unwrap();
        let all = cpu.logits_with(&seq, Some(&image_cpu), Some(reference_var.clone())).unwrap();
        let want = &all[(seq.len() - 1) * vocab..];
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        support::close::assert_close(&format!("VAR on: decode step {step}"), &got, want, |_| 1e-4 * scale);
        next = argmax(&got);
    }
}

fn llava(args: &[&str]) -> std::process::Output {
    std::process::Command::new(support::example("llava"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// A copy of the tiny mmproj file with `edit` applied to its bytes, in the temp dir.
fn edited_mmproj(tag: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(data("mmproj-f32.gguf")).unwrap();
    edit(&mut bytes);
    let path = std::env::temp_dir().join(format!("visattn-mmproj-{tag}-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// The command on the fixture: `--model lm.gguf --mmproj mmproj.gguf --image x
/// --var compare` answers twice (HF's greedy answer with VAR off) and prints VAR's per-layer
/// counts; the file pairs it cannot run are one error line each: an mmproj of another projector
/// type, a LLaVA-NeXT one (tiled), one whose projector's width is not the language model's, a
/// prompt whose image tokens
/// overflow the context, a picture without its mmproj and an mmproj without a picture.
#[test]
fn the_command_line_answers_from_the_file_pair_and_refuses_what_it_cannot_run() {
    let (lm, mm, picture) = (data("lm-f32.gguf"), data("mmproj-f32.gguf"), data("picture28.png"));
    let (lm, mm, picture) = (lm.to_str().unwrap(), mm.to_str().unwrap(), picture.to_str().unwrap());
    let base = ["--model", lm, "--mmproj", mm, "--image", picture];
    let out = llava(
        &[
            &base[..],
            &["--var", "compare", "--sink-dims", "11", "--tau-rel", "0.5", "--max-tokens", "8"],
        ]
        .concat(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = visattn::dump::TensorFile::open(data("expected-mmproj.safetensors")).unwrap();
    let answer = &expected.metadata()["answer_mmproj_f32"];
    assert!(stdout.contains(&format!("VAR off | {answer}")), "{stdout}");
    assert!(stdout.contains("VAR on  | ") && stdout.contains("layer | sinks"), "{stdout}");

    let one_error = |args: &[&str], needle: &str| {
        let out = llava(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(errors[0].contains(needle) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    };
    let ldp = edited_mmproj("ldp", |b| {
        let at = b.windows(3).position(|w| w == b"mlp").unwrap();
        b[at..at + 3].copy_from_slice(b"ldp");
    });
    one_error(
        &["--model", lm, "--mmproj", ldp.to_str().unwrap(), "--image", picture],
        "clip.projector_type = ldp",
    );
    // mm.2.weight [64, 64] F16 declared [32, 64]: a projector to a width of 32.
    let narrow = edited_mmproj("narrow", |b| {
        let name = b"mm.2.weight";
        let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        assert_eq!(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()), 2);
        b[at + 12..at + 20].copy_from_slice(&32u64.to_le_bytes());
    });
    one_error(
        &["--model", lm, "--mmproj", narrow.to_str().unwrap(), "--image", picture],
        "gives rows of 32, the language model's width is 64",
    );
    // A LLaVA-NeXT file (tiled, any resolution) names its grid: a key of the same length renamed.
    let next = edited_mmproj("next", |b| {
        let key = b"clip.vision.attention.head_count";
        let at = b.windows(key.len()).position(|w| w == key).unwrap();
        b[at..at + key.len()].copy_from_slice(b"clip.vision.image_grid_pinpoints");
    });
    one_error(
        &["--model", lm, "--mmproj", next.to_str().unwrap(), "--image", picture],
        "LLaVA-NeXT",
    );
    let long = "the picture ".repeat(60);
    one_error(
        &[&base[..], &["--var", "off", "--prompt", &long]].concat(),
        "over the model's context of 128",
    );
    one_error(&["--model", lm, "--image", picture], "--mmproj");
    one_error(&["--model", lm, "--mmproj", mm], "--image");
    for p in [ldp, narrow, next] {
        let _ = std::fs::remove_file(p);
    }
}

/// The picture path of llama.cpp's LLaVA-1.5 preprocessing against llama.cpp's own C++ code
/// (tools/record_llamacpp_pixels.py: stb_image's decode and mtmd-image.cpp's fixed-size
/// preprocessing compiled from the sdist, recorded in llamacpp-pixels.safetensors) on 9 pictures
/// at sizes 28 and 56: RGBA (alpha dropped, not composited as HF does), 16-bit grey (the high
/// byte, where PIL clips), a palette with transparency, a 1-pixel-wide one, tall, thin, odd
/// sizes that shrink and grow, the model's own size. PNGs: the decode, the 8-bit resized and
/// padded square (checked through the values) and the normalised values bit for bit. The JPEG is
/// decoded by this host's decoder, not stb's: its pixels within 12 levels of stb's at worst and
/// 1 on average (sharp colour edges of 4:2:0 chroma; stb and libjpeg-turbo differ by up to 3),
/// and stb's own decode through the host's resize and normalisation bit for bit.
#[test]
fn pictures_preprocess_as_llama_cpp_preprocesses_them() {
    let file = visattn::dump::TensorFile::open(data("llamacpp-pixels.safetensors")).unwrap();
    let pictures: serde_json::Value = serde_json::from_str(&file.metadata()["pictures"]).unwrap();
    let raw = |name: &str| file.raw(name).unwrap().2.to_vec();
    let (mean, std) = ([0.48145466f32, 0.4578275, 0.40821073], [0.26862954f32, 0.26130258, 0.27577711]);
    let mut checked = 0;
    for (name, p) in pictures.as_object().unwrap() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(p["path"].as_str().unwrap());
        let decoded = raw(&format!("{name}.decoded"));
        let ours = visattn_host::image::load_as_llama_cpp(&path).unwrap();
        let (w, h) = (p["width"].as_u64().unwrap() as usize, p["height"].as_u64().unwrap() as usize);
        assert_eq!((ours.width, ours.height), (w, h), "{name}: size");
        let jpeg = path.extension().is_some_and(|e| e == "jpg");
        let worst = ours.data.iter().zip(&decoded).map(|(&a, &b)| a.abs_diff(b)).max().unwrap();
        if jpeg {
            // The image crate's decoder (zune-jpeg) upsamples 4:2:0 chroma otherwise than stb:
            // sharp colour edges move by up to 9 levels (measured), the rest by a level or none.
            let mean = ours.data.iter().zip(&decoded).map(|(&a, &b)| a.abs_diff(b) as f64).sum::<f64>() / decoded.len() as f64;
            assert!(
                worst <= 12 && mean <= 1.0,
                "{name}: the host's JPEG decode is {worst} levels from stb's at worst, {mean:.2} on average"
            );
        } else {
            assert_eq!(worst, 0, "{name}: the decode as stb's");
        }
        // stb's own decode, so the JPEG's resize is checked bit for bit too.
        let stb = visattn_host::image::Rgb {
            width: w,
            height: h,
            data: decoded,
        };
        for size in p["sizes"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as usize) {
            let want = file.f32(&format!("{name}.S{size}.pixels")).unwrap().data;
            let inputs: &[(&str, &visattn_host::image::Rgb)] = if jpeg { &[("stb's decode", &stb)] } else { &[("the file", &ours)] };
            for (what, img) in inputs {
                let got = visattn_host::image::llama_cpp_pixels(img, size, mean, std).unwrap();
                let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differ, 0, "{name} at {size} from {what}: {differ} values differ from llama.cpp's");
                checked += 1;
            }
        }
    }
    assert!(checked >= 13, "every picture at every size: {checked}");
}
