//! Tolerance checks for every test: each fails on a NaN on either side and on a length
//! mismatch (a `fold(0.0, f32::max)` drops NaN and a bare `zip` stops at the shorter slice, so
//! NaN or truncated GPU output would pass), and the rule for skipping rows near a threshold.

/// Largest |a - b|. Panics when the lengths differ; NaN when either side holds a NaN (so any
/// `d <= tol` check fails).
pub fn max_abs_diff(what: &str, a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "{what}: {} values vs {}", a.len(), b.len());
    let mut worst = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = (x as f64 - y as f64).abs();
        if d.is_nan() {
            return f64::NAN;
        }
        worst = worst.max(d);
    }
    worst
}

/// Largest |v|, NaN when `v` holds one.
pub fn max_abs(v: &[f32]) -> f64 {
    let mut m = 0.0f64;
    for &x in v {
        if x.is_nan() {
            return f64::NAN;
        }
        m = m.max((x as f64).abs());
    }
    m
}

/// Asserts `got` and `want` have the same length and |got - want| <= tol(want) everywhere; a
/// NaN anywhere fails (NaN compares false).
pub fn assert_close<W: Copy + Into<f64>>(what: &str, got: &[f32], want: &[W], tol: impl Fn(f64) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: {} values vs {} expected", got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w.into());
        assert!((g - w).abs() <= tol(w), "{what} [{i}]: got {g}, want {w}");
    }
}

/// Whether `x` sits within `rel` (relative, at least 1e-3 absolute scale) of `threshold`.
pub fn near(x: f64, threshold: f64, rel: f64) -> bool {
    (x - threshold).abs() <= rel * threshold.abs().max(1e-3)
}

/// Rows a comparison left out because f32 may flip them at a threshold (var-spec.md section 6),
/// against the rows it checked: at most one in twenty may be skipped, so a kernel that gets
/// many rows wrong cannot hide behind the rule.
#[derive(Default, Debug)]
pub struct Skips {
    pub checked: usize,
    pub skipped: usize,
}

impl Skips {
    pub fn assert_few(&self, what: &str) {
        assert!(
            self.skipped * 20 <= self.checked.max(1),
            "{what}: too many near-threshold rows skipped ({} of {} checked)",
            self.skipped,
            self.checked
        );
    }
}
