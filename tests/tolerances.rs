//! The tolerance helpers every test compares through must fail on NaN output and on output of
//! the wrong length (the official-parity test once folded with `f32::max`, which drops NaN,
//! and zipped without comparing lengths).

#![allow(clippy::neg_cmp_op_on_partial_ord)] // "not <= tol" is exactly what a NaN must fail

mod support;

use std::panic::catch_unwind;

use support::close::{Skips, assert_close, max_abs, max_abs_diff};

#[test]
fn max_abs_diff_sees_nan_on_either_side() {
    assert_eq!(max_abs_diff("ok", &[1.0, 2.0], &[1.0, 2.5]), 0.5);
    assert!(!(max_abs_diff("nan got", &[0.0, f32::NAN, 0.0], &[0.0, 0.0, 0.0]) <= 1e-5));
    assert!(!(max_abs_diff("nan want", &[0.0, 0.0], &[f32::NAN, 0.0]) <= 1e-5));
    assert!(!(max_abs_diff("inf", &[f32::INFINITY], &[0.0]) <= 1e-5));
    assert!(max_abs(&[1.0, f32::NAN, -3.0]).is_nan());
    assert_eq!(max_abs(&[1.0, -3.0]), 3.0);
}

#[test]
fn max_abs_diff_refuses_truncated_output() {
    assert!(catch_unwind(|| max_abs_diff("short", &[0.0], &[0.0, 0.0])).is_err());
    assert!(catch_unwind(|| max_abs_diff("long", &[0.0, 0.0], &[0.0])).is_err());
}

#[test]
fn assert_close_fails_on_nan_and_length() {
    assert_close("ok", &[1.0, 2.0], &[1.0f32, 2.0], |_| 1e-6);
    assert_close("f64 want", &[1.0], &[1.0f64 + 1e-9], |_| 1e-6);
    assert!(catch_unwind(|| assert_close("nan", &[f32::NAN], &[0.0f32], |_| 1.0)).is_err());
    assert!(catch_unwind(|| assert_close("nan want", &[0.0], &[f64::NAN], |_| 1.0)).is_err());
    assert!(catch_unwind(|| assert_close("nan tol", &[0.0], &[0.0f64], |_| f64::NAN)).is_err());
    assert!(catch_unwind(|| assert_close("short", &[0.0], &[0.0f32, 0.0], |_| 1.0)).is_err());
    assert!(catch_unwind(|| assert_close("far", &[0.0], &[1.0f32], |_| 0.5)).is_err());
}

#[test]
fn skipped_rows_are_capped() {
    Skips { checked: 100, skipped: 5 }.assert_few("5 of 100");
    Skips { checked: 0, skipped: 0 }.assert_few("none");
    assert!(catch_unwind(|| Skips { checked: 100, skipped: 6 }.assert_few("6 of 100")).is_err());
    assert!(catch_unwind(|| Skips { checked: 0, skipped: 1 }.assert_few("all skipped")).is_err());
}
