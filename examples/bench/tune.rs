//! The row kernels' settings autotuned on the adapter, each candidate's rate printed.

use std::time::Instant;

use crate::context::Bench;

impl Bench {
    /// Autotunes the row kernels on this adapter and prints each candidate's rate on the probe
    /// against a copy of the probe's bytes; returns the winner.
    pub fn autotune_lines(&self) -> visattn::KernelSettings {
        let (g, rep) = (&self.g, &self.report);
        let t0 = Instant::now();
        let tuned = visattn::KernelSettings::autotune(&g.device, &g.queue).unwrap_or_else(|e| {
            eprintln!("error: autotune: {e}");
            std::process::exit(1)
        });
        let took = t0.elapsed().as_secs_f64();
        let base = self.rates(tuned.probe_bytes, 3);
        let fastest = tuned.timings.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        for (s, secs) in &tuned.timings {
            let gbps = tuned.probe_bytes as f64 / secs / 1e9;
            if rep.markdown {
                println!(
                    "| autotune {s} | probe | {:.3} ms | {:.1} | {gbps:.2} | {:.2} | | ratio_to_best {:.2}{} |",
                    secs * 1e3,
                    tuned.probe_bytes as f64 / 1e6,
                    gbps / base.copy,
                    fastest / secs,
                    if *s == tuned.best { ", chosen" } else { "" }
                );
            } else if rep.json {
                println!(
                    "{{\"autotune\":\"{s}\",\"seconds\":{secs:.6e},\"gbps\":{gbps:.3},\"ratio_to_copy\":{:.3},\"ratio_to_best\":{:.3},\"best\":{}}}",
                    gbps / base.copy,
                    fastest / secs,
                    *s == tuned.best
                );
            } else {
                println!(
                    "autotune {:<16} {:>8.3} ms  {:>6.2} GB/s  ratio_to_copy {:>5.2}  ratio_to_best {:>5.2}{}",
                    s.to_string(),
                    secs * 1e3,
                    gbps,
                    gbps / base.copy,
                    fastest / secs,
                    if *s == tuned.best { "  <- chosen" } else { "" }
                );
            }
        }
        rep.note(&format!(
            "autotune: {} candidates on a {:.1} MB probe layer (wall time, median of 5 rounds over the candidates after a warm-up; pipeline builds included) in {took:.2} s",
            tuned.timings.len(),
            tuned.probe_bytes as f64 / 1e6
        ));
        tuned.best
    }
}
