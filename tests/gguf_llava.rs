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
    let picture = visattn_host::image::load(&data("picture28.png")).unwrap();
    let got = visattn_host::image::llama_cpp_pixels(&picture, 28, tower.image_mean, tower.image_std).unwrap();
    let want = expected.f32("pixel_values_llamacpp").unwrap().data;
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
        "llama.cpp's pixels bit for bit"
    );
}

/// Each file pair's image features and the logits of every prompt position within f32's
/// tolerance of HF's with the same weights (1e-4 of the largest), HF's 8 greedy tokens, the
/// prompt's ids as llama.cpp's LLaVA-1.5 path builds them (its text pieces tokenized apart,
/// the image's 16 rows between them), VAR off.
#[test]
fn the_file_pair_answers_like_hf_with_the_same_weights() {
    let expected = visattn::dump::TensorFile::open(data("expected-mmproj.safetensors")).unwrap();
    let (before, after) = (ids(&expected, "ids_before"), ids(&expected, "ids_after"));
    let g = support::gpu::gpu();
    let lm = GgufFile::open(data("lm-f32.gguf")).unwrap();
    let picture = visattn_host::image::load(&data("picture28.png")).unwrap();
    for (mmproj, tag) in [("mmproj-f32.gguf", "mmproj_f32"), ("mmproj-f16.gguf", "mmproj_f16")] {
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
