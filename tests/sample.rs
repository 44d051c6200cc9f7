//! The synthetic prompt the command line and the web demo share (`visattn::sample`): each
//! preset's shape, and its layers pinned bit for bit (the CLI's report and the demo's results
//! are computed from them; the checksums are the generators' before they became one).

use visattn::sample::{self, BROWSER, LLAVA_1_5_7B, Sample};

/// FNV-1a over the values' bits.
fn checksum(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ v.to_bits() as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn sums(s: &Sample, layer: usize) -> (u64, u64) {
    (checksum(&s.hidden_states(layer)), checksum(&s.attention(layer)))
}

#[test]
fn the_presets_have_their_shapes() {
    assert_eq!((LLAVA_1_5_7B.layers, LLAVA_1_5_7B.heads, LLAVA_1_5_7B.hidden), (32, 32, 4096));
    assert_eq!((LLAVA_1_5_7B.tokens(), LLAVA_1_5_7B.queries()), (640, 640));
    assert_eq!((BROWSER.layers, BROWSER.heads, BROWSER.hidden), (8, 8, 1024));
    assert_eq!((BROWSER.tokens(), BROWSER.queries()), (620, 9));
    for s in [LLAVA_1_5_7B, BROWSER] {
        assert_eq!(s.hidden_states(0).len(), s.tokens() * s.hidden);
        let probs = s.attention(3);
        assert_eq!(probs.len(), s.heads * s.queries() * s.tokens());
        for (r, row) in probs.chunks_exact(s.tokens()).enumerate() {
            let pos = s.tokens() - s.queries() + r % s.queries();
            let sum: f64 = row.iter().map(|&v| v as f64).sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {r} sums to {sum}");
            assert!(row[pos + 1..].iter().all(|&v| v == 0.0), "row {r} is causal");
        }
        let h = s.hidden_states(2);
        let massive = |t: usize| h[t * s.hidden + s.sink_dims[0] as usize];
        assert!(massive(0) > 50.0 && massive(s.period_token()) > 50.0 && massive(sample::patch_token(2, 19)) > 50.0);
        assert!(massive(1).abs() <= 1.0);
    }
}

#[test]
fn the_presets_generate_what_they_did() {
    assert_eq!(sums(&LLAVA_1_5_7B, 0), PINNED_LLAVA[0]);
    assert_eq!(sums(&LLAVA_1_5_7B, 2), PINNED_LLAVA[1]);
    assert_eq!(sums(&BROWSER, 0), PINNED_BROWSER[0]);
    assert_eq!(sums(&BROWSER, 7), PINNED_BROWSER[1]);
}

/// (hidden states, attention) checksums of layers 0 and 2 (LLaVA) and 0 and 7 (browser), from
/// examples/visattn/sample.rs and web/src/sample.rs as they were.
const PINNED_LLAVA: [(u64, u64); 2] = [
    (0xe607_0b17_5b9c_775f, 0x0fec_474f_b46f_3989),
    (0x1c48_b43d_35b7_5725, 0x6c8c_bccd_927f_390a),
];
const PINNED_BROWSER: [(u64, u64); 2] = [
    (0xa9c1_b981_f955_186d, 0x35d5_bc10_8b5c_92a1),
    (0xa7e6_bae1_44d9_4693, 0x94db_6402_ce78_e7dc),
];
