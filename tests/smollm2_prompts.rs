//! SmolLM2-135M-Instruct from its GGUF file answers five prompts as HF transformers does, with
//! the logits of every position close to HF's dequantized f32 model
//! (tools/record_smollm2_logits.py -> tests/data/smollm2/prompts.safetensors).
//!
//! Five chat-templated prompts ("What is the capital of France?", whose answer names Paris, an
//! arithmetic question, a definition, a translation, a list), each with HF's greedy answer of
//! at most 12 tokens. For each, ONE prefill of prompt + answer (teacher forcing: 243 tokens over
//! the five, 37 to 39 prompt tokens and 8 to 12 answer tokens each) and every position's
//! logits read back, then:
//! - at every position, at the ids HF recorded (the row's 16 largest and 256 fixed random
//!   vocabulary ids), |ours - HF's| <= 1e-3 x HF's largest |logit| of that row;
//! - at the last prompt position and every answer position, the argmax of our full row is HF's
//!   next greedy token (identical argmax at every step: the greedy answers are identical), and
//!   at the last prompt position our top-1 is HF's;
//! - wherever else HF's top-1 leads its top-2 by more than twice the tolerance, our argmax is
//!   HF's top-1 too.
//!
//! The weights go through the texture kernel (`stage(Staging::Texture(..))`, 4 rows of W an
//! invocation in decode steps, tiles of 4 tokens x 2 rows in prefills): worst 4.2e-6 x max|logit|,
//! the five prompts in 16 s on lavapipe (debug test build). Measured earlier (lavapipe,
//! the file's formats kept on the device, `load_gguf(.., None, ..)`, from buffers): worst
//! |ours - HF's| 5.6e-6 x the row's largest |logit| in every prompt (at position 10, inside the
//! system prompt they share), 180 times under the tolerance; our top-1 is HF's at 242 of the 243
//! positions (the one left out leads by under 2e-3); HF's smallest top-1 lead over the answer
//! positions is 3.2e-3 x max|logit| (France; 5.8e-3 to 2.8e-2 for the others), 580 times our
//! worst error. The five prefills, 243 tokens, took 96 to 181 s each on two CPU cores shared
//! with a Rust build (the test about 11 minutes); the test prints each prompt's numbers. Needs
//! the model file, which .ci/run downloads and names in VISATTN_SMOLLM2_GGUF; elsewhere the
//! test says it skipped.

mod support;

use std::path::Path;

use visattn_host::config::LlavaConfig;
use visattn_host::gguf::GgufFile;
use visattn_host::gpu::matrix::Staging;
use visattn_host::gpu::model::{GpuModel, VarMode};

/// The tolerance, a fraction of the row's largest |logit|.
const TOL: f64 = 1e-3;

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap() as u32
}

fn ids(file: &visattn::dump::TensorFile, name: &str) -> (Vec<usize>, Vec<u32>) {
    let (shape, v) = file.i64(name).unwrap();
    (shape, v.iter().map(|&i| u32::try_from(i).unwrap()).collect())
}

#[test]
fn smollm2_answers_five_prompts_like_hf() {
    let Some(path) = support::smollm2_gguf("smollm2_answers_five_prompts_like_hf") else {
        return;
    };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2");
    let want = visattn::dump::TensorFile::open(data.join("prompts.safetensors")).unwrap();
    let prompts: Vec<String> = serde_json::from_str(&want.metadata()["prompts"]).unwrap();
    let answers: Vec<String> = serde_json::from_str(&want.metadata()["answers"]).unwrap();
    assert_eq!((prompts.len(), answers.len()), (5, 5));
    assert!(answers[0].contains("Paris"), "HF's answer to {:?}: {:?}", prompts[0], answers[0]);
    // The France prompt and answer are tests/gguf_model.rs's.
    let france = visattn::dump::TensorFile::open(data.join("logits.safetensors")).unwrap();
    let (_, mut seq) = ids(&france, "input_ids");
    seq.extend(ids(&france, "greedy").1);
    assert_eq!(
        seq,
        ids(&want, "p0.ids").1,
        "prompts.safetensors' France sequence is logits.safetensors'"
    );
    let (_, samples) = ids(&want, "sample_ids");

    let file = GgufFile::open(&path).unwrap();
    let cfg = LlavaConfig::text_only(visattn_host::gguf::model::text_config(&file).unwrap());
    let v = cfg.text.vocab;
    let g = support::gpu::gpu();
    let mut model = GpuModel::load_gguf(&g, &cfg, &file, None, g.ctx.max_binding(), |_, _| {}).unwrap();
    // The linear layers in textures (lavapipe's fast layout, issue "Tokens per second"): the
    // real model through the texture kernel; tests/gguf_model.rs runs it from buffers.
    // Four rows of W an invocation in decode steps, tiles of 4 tokens times 2 rows in prefill.
    let tiling = "texture:decode=4,prefill=4x2".parse::<Staging>().unwrap();
    // Each layer's six linear layers (gate and up stacked into one) and the LM head.
    assert_eq!(model.stage(tiling).unwrap(), 6 * cfg.text.layers + 1);

    let mut tokens = 0;
    for (k, (prompt, answer)) in prompts.iter().zip(&answers).enumerate() {
        let (_, seq) = ids(&want, &format!("p{k}.ids"));
        let p = ids(&want, &format!("p{k}.prompt_len")).1[0] as usize;
        let t_n = seq.len();
        let (top_shape, top_ids) = ids(&want, &format!("p{k}.top_ids"));
        let top = top_shape[1];
        let top_logits = want.f32(&format!("p{k}.top_logits")).unwrap().data;
        let sample_logits = want.f32(&format!("p{k}.sample_logits")).unwrap().data;
        let max_abs = want.f32(&format!("p{k}.max_abs")).unwrap().data;
        let margin = want.f32(&format!("p{k}.margin")).unwrap().data;
        assert_eq!((top_shape[0], max_abs.len(), sample_logits.len()), (t_n, t_n, t_n * samples.len()));
        let what = format!("prompt {k} {prompt:?} (HF's answer {answer:?})");
        // An answer shorter than 12 tokens ended on an end-of-sequence token: our argmax there
        // makes the generation stop where HF's does.
        assert!(
            t_n - p == 12 || cfg.text.eos.contains(&seq[t_n - 1]),
            "{what}: a short answer ends with EOS"
        );

        let started = std::time::Instant::now();
        let run = model.prefill(&seq, None, &VarMode::Off, t_n + 1, true, false).unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(run.logits.len(), t_n * v, "{what}: every position's logits");
        tokens += t_n;

        let (mut worst, mut worst_at, mut argmax_checked) = (0f64, (0, 0), 0);
        for t in 0..t_n {
            let row = &run.logits[t * v..(t + 1) * v];
            let scale = max_abs[t] as f64;
            let recorded = (0..top).map(|j| (top_ids[t * top + j], top_logits[t * top + j]));
            let sampled = samples
                .iter()
                .enumerate()
                .map(|(j, &id)| (id, sample_logits[t * samples.len() + j]));
            for (id, hf) in recorded.chain(sampled) {
                let d = (row[id as usize] as f64 - hf as f64).abs() / scale;
                assert!(
                    d <= TOL,
                    "{what}: position {t}, token {id}: ours {} vs HF's {hf} (max |logit| {scale}): {d:.3e} x max|logit| over {TOL:e}",
                    row[id as usize]
                );
                if d > worst {
                    (worst, worst_at) = (d, (t, id));
                }
            }
            let ours = argmax(row);
            if t >= p - 1 && t + 1 < t_n {
                assert_eq!(
                    ours,
                    seq[t + 1],
                    "{what}: answer token {} (position {t}): our argmax is not HF's greedy token",
                    t + 1 - p
                );
            }
            if t == p - 1 || margin[t] as f64 > 2.0 * TOL * scale {
                assert_eq!(ours, top_ids[t * top], "{what}: position {t}: our top-1 is not HF's");
                argmax_checked += 1;
            }
        }
        let lead = (p - 1..t_n - 1)
            .map(|t| margin[t] as f64 / max_abs[t] as f64)
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "{what}: {p} + {} tokens in {secs:.1} s; worst |ours - HF's| {worst:.2e} x max|logit| (position {}, token {}); \
             top-1 checked at {argmax_checked} of {t_n} positions; HF's smallest answer lead {lead:.2e} x max|logit|",
            t_n - p,
            worst_at.0,
            worst_at.1
        );
    }
    eprintln!("{tokens} tokens through the prefill");
}
