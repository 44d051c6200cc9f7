//! Folds a kernel's one-line guards on constants before the driver sees its source.
//!
//! Kernels unroll by hand what must keep constant indices (sums in registers, not memory), one
//! call per line behind a guard on an override or a constant:
//!
//! ```wgsl
//! xfma_token(0u, w, c);
//! if (TOKENS > 1u) { xfma_token(1u, w, c); }
//! ```
//!
//! The guards are constants once a pipeline's overrides are in, but drivers inline every call
//! before they drop dead branches, so a kernel of nested unrolled calls reaches the compiler
//! many times its live size: lavapipe took 2.3-2.7 s to build each tiled matmul pipeline, 0.1-0.2
//! s once its guards were folded. A pipeline's source is therefore specialised first: a line
//! that is exactly `if (NAME OP N) { BODY }` (OP one of `<`, `>`, `<=`, `>=`, `==`, `!=`; N an
//! integer literal, `u` or `i` suffixed or not; BODY without braces), NAME one of the
//! pipeline's overrides or a module-scope `const NAME: T = N;` of the source, becomes BODY where
//! the condition holds and goes where it does not. Nothing else changes, so the folded source
//! computes what the source does (the names must not be shadowed by locals, which the kernels
//! never do); guards on anything else stay for the driver.

use std::borrow::Cow;

/// `source` with its guards on known constants folded ([module docs](self)); borrowed when
/// nothing folds.
pub fn specialize<'a>(source: &'a str, overrides: &[(&str, f64)]) -> Cow<'a, str> {
    let consts: Vec<(&str, f64)> = source.lines().filter_map(literal_const).collect();
    let value = |name: &str| overrides.iter().chain(&consts).find(|(n, _)| *n == name).map(|&(_, v)| v);
    let mut out = String::with_capacity(source.len());
    let mut folded = false;
    for line in source.split_inclusive('\n') {
        match guard(line).and_then(|(name, op, n, body)| value(name).map(|v| (op.holds(v, n), body))) {
            Some((holds, body)) => {
                folded = true;
                if holds {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    out.push_str(indent);
                    out.push_str(body);
                    if line.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
            _ => out.push_str(line),
        }
    }
    if folded { Cow::Owned(out) } else { Cow::Borrowed(source) }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Gt => a > b,
            Op::Le => a <= b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// An integer literal with an optional `u` or `i` suffix.
fn literal(s: &str) -> Option<f64> {
    let digits = s.strip_suffix(['u', 'i']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().map(|v| v as f64)
}

fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_') && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A module-scope `const NAME: T = N;` (or `const NAME = N;`): its name and value.
fn literal_const(line: &str) -> Option<(&str, f64)> {
    let rest = line.strip_prefix("const ")?;
    let (lhs, rhs) = rest.split_once('=')?;
    let name = lhs.split(':').next()?.trim();
    let value = literal(rhs.trim().strip_suffix(';')?.trim())?;
    is_name(name).then_some((name, value))
}

/// A line `if (NAME OP N) { BODY }`: its parts.
fn guard(line: &str) -> Option<(&str, Op, f64, &str)> {
    let rest = line.trim().strip_prefix("if (")?;
    let (cond, rest) = rest.split_once(") { ")?;
    let body = rest.strip_suffix(" }")?;
    if body.contains(['{', '}']) {
        return None;
    }
    let mut parts = cond.split(' ');
    let (name, op, n) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_name(name) {
        return None;
    }
    let op = match op {
        "<" => Op::Lt,
        ">" => Op::Gt,
        "<=" => Op::Le,
        ">=" => Op::Ge,
        "==" => Op::Eq,
        "!=" => Op::Ne,
        _ => return None,
    };
    Some((name, op, literal(n)?, body))
}

#[cfg(test)]
mod tests {
    use super::specialize;

    #[test]
    fn guards_on_overrides_and_consts_fold() {
        let src = "const BLOCK: u32 = 8u;\noverride TOKENS: u32 = 1u;\nfn f() {\n    a(0u);\n    if (TOKENS > 1u) { a(1u); }\n    if (TOKENS > 2u) { a(2u); }\n    if (BLOCK < 32u) { b(1u); }\n    if (BLOCK < 8u) { b(4u); }\n    if (BLOCK == 8) { c(); }\n    if (BLOCK != 8u) { d(); }\n}\n";
        let out = specialize(src, &[("TOKENS", 2.0)]);
        assert_eq!(
            out,
            "const BLOCK: u32 = 8u;\noverride TOKENS: u32 = 1u;\nfn f() {\n    a(0u);\n    a(1u);\n    b(1u);\n    c();\n}\n"
        );
    }

    #[test]
    fn anything_else_stays_as_written() {
        // Unknown names, locals, other shapes of condition, bodies with braces, else branches,
        // multi-line guards, and a const whose value is an expression.
        let src = "const GROUP: u32 = 32u / BLOCK;\nfn f(q: u32) {\n    if (q < ROWS) { a(); }\n    if (GROUP > 1u) { a(); }\n    if (TOKENS > 1u && x) { a(); }\n    if (TOKENS > 1u) { if (y) { a(); } }\n    if (TOKENS > 1u) { a(); } else { b(); }\n    if (TOKENS > 1u) {\n        a();\n    }\n    if (TOKENS > one) { a(); }\n}";
        let out = specialize(src, &[("TOKENS", 4.0)]);
        assert!(matches!(out, std::borrow::Cow::Borrowed(_)), "{out}");
        assert_eq!(out, src);
    }

    #[test]
    fn a_source_without_a_final_newline_keeps_its_last_line() {
        let out = specialize("fn f() {\n    if (N > 1u) { a(); }\n}", &[("N", 2.0)]);
        assert_eq!(out, "fn f() {\n    a();\n}");
        assert_eq!(specialize("if (N > 1u) { a(); }", &[("N", 1.0)]), "");
        assert_eq!(specialize("if (N > 1u) { a(); }", &[("N", 2.0)]), "a();");
    }
}
