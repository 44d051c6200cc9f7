//! f16 and bf16 dumps give the f32 dump's results within what their rounding allows
//! (var-spec.md section 6): the official fixture re-encoded, through the dump reader and `apply`.

mod support;

use std::collections::HashMap;
use std::process::Command;

use visattn::dump::{Dtype, OutTensor, TensorFile, serialize_tensors, spans_from_metadata};
use visattn::half::{f32_to_bf16, f32_to_f16};
use visattn::{Convention, VarConfig, VisualTokens};

fn reencode(src: &TensorFile, dtype: Dtype, path: &std::path::Path) {
    let mut tensors = Vec::new();
    for name in src.names() {
        if !(name.starts_with("attentions.") || name.starts_with("hidden_states.")) {
            continue;
        }
        let t = src.f32(name).unwrap();
        let bytes: Vec<u8> = t
            .data
            .iter()
            .flat_map(|&x| match dtype {
                Dtype::F16 => f32_to_f16(x).to_le_bytes(),
                _ => f32_to_bf16(x).to_le_bytes(),
            })
            .collect();
        tensors.push((name.clone(), OutTensor::raw(dtype, &t.shape, bytes)));
    }
    let meta: HashMap<String, String> = src.metadata().clone();
    std::fs::write(path, serialize_tensors(&tensors, meta).unwrap()).unwrap();
}

fn apply(input: &std::path::Path, output: &std::path::Path) {
    let bin = support::example("visattn");
    let out = Command::new(bin)
        .args([
            "apply",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--sink-dims",
            "1415,2533",
            "--convention",
            "released",
            "--rho",
            "0.5",
            "--p",
            "0.6",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn f16_and_bf16_dumps_match_the_f32_dump() {
    let src_path = support::shared_data("official-var-fixture.safetensors");
    let src = TensorFile::open(&src_path).unwrap();
    let dir = std::env::temp_dir().join(format!("visattn-half-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f32_out = dir.join("f32.out.safetensors");
    apply(&src_path, &f32_out);
    let base = TensorFile::open(&f32_out).unwrap();
    let spans = spans_from_metadata(src.metadata())
        .unwrap()
        .expect("the fixture declares its image span");
    let keys = base.f32("phi.0").unwrap().data.len();
    let visual = VisualTokens::from_spans(&spans, keys).unwrap();
    // What `apply` runs below: the released convention, rho 0.5 (a sink-ratio ceiling).
    let cfg = VarConfig {
        convention: Convention::Released,
        rho: 0.5,
        p: 0.6,
        ..VarConfig::released()
    };
    // Relative rounding of one value: f16 2^-11, bf16 2^-8. Outputs are sums and products of a
    // few such values: 4 units of rounding.
    for (dtype, unit) in [(Dtype::F16, 2f32.powi(-11)), (Dtype::BF16, 2f32.powi(-8))] {
        let input = dir.join(format!("{dtype:?}.safetensors"));
        let output = dir.join(format!("{dtype:?}.out.safetensors"));
        reencode(&src, dtype, &input);
        apply(&input, &output);
        let got = TensorFile::open(&output).unwrap();
        let mut skips = support::close::Skips::default();
        let mut compared = 0;
        for l in 0..6 {
            let phi = base.f32(&format!("phi.{l}")).unwrap().data;
            let (want_sinks, got_sinks) = (base.u8(&format!("sinks.{l}")).unwrap().1, got.u8(&format!("sinks.{l}")).unwrap().1);
            let mut flipped = false;
            for t in 0..phi.len() {
                if want_sinks[t] != got_sinks[t] {
                    // Only a token within the rounding of tau may flip.
                    assert!(
                        (phi[t] - 20.0).abs() <= 4.0 * unit * 20.0,
                        "{dtype:?} layer {l} token {t}: phi {} flipped",
                        phi[t]
                    );
                    flipped = true;
                }
            }
            if flipped {
                continue;
            }
            let (a, b) = (
                base.f32(&format!("attentions.{l}")).unwrap().data,
                got.f32(&format!("attentions.{l}")).unwrap().data,
            );
            let (sa, sb) = (
                base.u8(&format!("selected.{l}")).unwrap().1,
                got.u8(&format!("selected.{l}")).unwrap().1,
            );
            let keys = phi.len();
            assert_eq!(a.len(), b.len(), "{dtype:?} layer {l}: attention sizes");
            assert_eq!(
                (sa.len(), sb.len()),
                (a.len() / keys, a.len() / keys),
                "{dtype:?} layer {l}: selection sizes"
            );
            let input = src.f32(&format!("attentions.{l}")).unwrap().data;
            let sinks: Vec<bool> = want_sinks.iter().map(|&s| s != 0).collect();
            let has_vs = (0..keys).any(|j| sinks[j] && visual.is_visual(j));
            for (r, (ra, rb)) in a.chunks(keys).zip(b.chunks(keys)).enumerate() {
                if sa[r] != sb[r] {
                    // Only a row whose f32 visual mass or sink ratio sits within the rounding
                    // of its threshold may flip (section 6), and only a few of them.
                    let st = visattn::reference::row_stats(&input[r * keys..(r + 1) * keys], &visual, &sinks, has_vs, &cfg);
                    let budget = 4.0 * unit as f64;
                    assert!(
                        (st.visual_mass - cfg.summ).abs() <= budget * cfg.summ
                            || (st.sink_ratio - cfg.rho_code()).abs() <= budget * cfg.rho_code(),
                        "{dtype:?} layer {l} row {r}: selection flipped away from any threshold ({st:?})"
                    );
                    skips.skipped += 1;
                    continue;
                }
                skips.checked += 1;
                for (x, y) in ra.iter().zip(rb) {
                    assert!(
                        (x - y).abs() <= 4.0 * unit * x.abs().max(1e-4) + 1e-7,
                        "{dtype:?} layer {l} row {r}: {x} vs {y}"
                    );
                }
                compared += 1;
            }
        }
        assert!(compared > 1000, "{dtype:?}: too few rows compared ({compared})");
        skips.assert_few(&format!("{dtype:?}"));
    }
}
