//! What the bench prints: one row per measurement (text, JSON or the README's markdown),
//! summaries and notes.

use crate::baselines::Rates;

pub struct Report {
    /// Summary lines held back until the markdown table ends.
    pub summaries: std::cell::RefCell<Vec<String>>,
    pub json: bool,
    /// Run the torch anchor after the prefill.
    pub torch: bool,
    /// Rows of the README's markdown table instead of the text lines.
    pub markdown: bool,
    pub adapter: String,
    pub backend: String,
    pub timer: &'static str,
}

/// Bytes a kernel must read and must write in one run.
#[derive(Clone, Copy, Default)]
pub struct Moved {
    pub read: f64,
    pub written: f64,
}

impl Moved {
    pub fn total(self) -> f64 {
        self.read + self.written
    }
}

impl std::ops::AddAssign for Moved {
    fn add_assign(&mut self, o: Moved) {
        self.read += o.read;
        self.written += o.written;
    }
}

impl Report {
    /// One row: time, bytes moved, GB/s, and the ratio to each baseline's GB/s (same counting).
    pub fn line(&self, kernel: &str, shape: &str, seconds: f64, moved: Option<Moved>, base: Option<&Rates>) {
        let gbps = moved.map(|m| m.total() / seconds / 1e9);
        let ratio = |rate: fn(&Rates) -> f64| gbps.zip(base).map(|(a, b)| a / rate(b));
        let (to_copy, to_read) = (ratio(|b| b.copy), ratio(|b| b.read));
        let to_memcpy = |one: bool| {
            gbps.zip(base.and_then(|b| b.memcpy))
                .map(|(a, (m1, mall))| a / if one { m1 } else { mall })
        };
        let opt = |v: Option<f64>, p: usize| v.map_or("null".to_string(), |v| format!("{v:.p$}"));
        if self.json {
            println!(
                "{{\"kernel\":\"{kernel}\",\"shape\":\"{shape}\",\"seconds\":{seconds:.6e},\"bytes_read\":{},\"bytes_written\":{},\"gbps\":{},\"ratio_to_copy\":{},\"ratio_to_read\":{},\"ratio_to_memcpy_1_thread\":{},\"ratio_to_memcpy_all_threads\":{},\"adapter\":{:?},\"backend\":\"{}\",\"timer\":\"{}\"}}",
                opt(moved.map(|m| m.read), 0),
                opt(moved.map(|m| m.written), 0),
                opt(gbps, 3),
                opt(to_copy, 3),
                opt(to_read, 3),
                opt(to_memcpy(true), 3),
                opt(to_memcpy(false), 3),
                self.adapter,
                self.backend,
                self.timer
            );
        } else if self.markdown {
            let time = if seconds >= 0.1 {
                format!("{seconds:.3} s")
            } else {
                format!("{:.3} ms", seconds * 1e3)
            };
            let dash = |v: Option<f64>, p: usize| v.map_or("".to_string(), |v| format!("{v:.p$}"));
            println!(
                "| {kernel} | {shape} | {time} | {} | {} | {} | {} | {} / {} |",
                dash(moved.map(|m| m.total() / 1e6), 1),
                dash(gbps, 2),
                dash(to_copy, 2),
                dash(to_read, 2),
                dash(to_memcpy(true), 2),
                dash(to_memcpy(false), 2),
            );
        } else {
            let memcpy = match (to_memcpy(true), to_memcpy(false)) {
                (Some(a), Some(b)) => format!("  ratio_to_memcpy {a:>5.2} / {b:>5.2}"),
                _ => String::new(),
            };
            println!(
                "{kernel:<22} {shape:<14} {:>10.3} ms {:>9} MB {:>8} GB/s  ratio_to_copy {:>6}  ratio_to_read {:>6}{memcpy}",
                seconds * 1e3,
                opt(moved.map(|m| m.total() / 1e6), 1),
                opt(gbps, 2),
                opt(to_copy, 2),
                opt(to_read, 2)
            );
        }
    }

    /// A finding of the run (a ratio, a cost): a line of its own, or after the table in
    /// markdown, so the table stays one table.
    pub fn summary(&self, text: String) {
        if self.json {
            return;
        }
        if self.markdown {
            self.summaries.borrow_mut().push(text);
        } else {
            println!("{text}");
        }
    }

    pub fn note(&self, text: &str) {
        if !self.json && !self.markdown {
            println!("  note: {text}");
        }
    }
}
