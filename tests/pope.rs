//! Issue "See and measure what VAR does": POPE's reading of answers and its metrics
//! (visattn_host::pope), against values worked out by hand from POPE's evaluate.py.

use visattn_host::pope::{Metrics, label, says_yes};

#[test]
fn answers_read_as_popes_evaluate_py_reads_them() {
    for (answer, yes) in [
        ("Yes, there is a dog in the image.", true),
        ("No, there is no dog.", false),
        ("There is not a dog", false),
        // The first sentence only.
        ("Yes. No, not at all.", true),
        ("No.", false),
        ("no", false),
        // Words as split on spaces, case as written: not "no".
        ("Nope", true),
        ("NO", true),
        ("No!", true),
        // Commas dropped before splitting.
        ("Yes,no", true),
        ("Well,no", true),
        ("Well, no", false),
        // An answer that is neither: POPE counts it as yes.
        ("A red car on a road", true),
        ("", true),
    ] {
        assert_eq!(says_yes(answer), yes, "{answer:?}");
    }
    assert_eq!(label(" Yes "), Some(true));
    assert_eq!(label("NO"), Some(false));
    assert_eq!(label("maybe"), None);
}

#[test]
fn metrics_are_popes() {
    // (said yes, label yes): TP, FP, TN, FN, TP.
    let m = Metrics::of(&[(true, true), (true, false), (false, false), (false, true), (true, true)]);
    assert_eq!((m.items, m.true_pos, m.false_pos, m.true_neg, m.false_neg), (5, 2, 1, 1, 1));
    let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-12, "{a:?} vs {b}");
    close(m.accuracy, 3.0 / 5.0);
    close(m.precision, 2.0 / 3.0);
    close(m.recall, 2.0 / 3.0);
    close(m.f1, 2.0 / 3.0);
    close(m.yes_ratio, 3.0 / 5.0);
    // Never "yes": precision and F1 have no value (POPE's script divides by zero there).
    let m = Metrics::of(&[(false, true), (false, false)]);
    assert_eq!((m.precision, m.f1), (None, None));
    close(m.recall, 0.0);
    close(m.accuracy, 0.5);
    close(m.yes_ratio, 0.0);
    let none = Metrics::of(&[]);
    assert_eq!((none.accuracy, none.yes_ratio, none.items), (None, None, 0));
}
