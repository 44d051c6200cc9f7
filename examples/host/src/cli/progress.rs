//! Loading weights as a person at a terminal sees it: a progress bar once the load has taken a
//! second (indicatif draws nothing when stderr is not a terminal: logs and tests hold only what
//! went wrong), then one line saying what the weights take on the device, in which formats.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::gpu::model::GpuModel;

/// The bar of one load; `update` is the loader's `progress(done, total)`.
pub struct Loading {
    bar: ProgressBar,
    t0: Instant,
    drawn: bool,
    quiet: bool,
}

impl Loading {
    /// `what`: the bar's message ("weights onto llvmpipe"); `quiet` (--json) draws nothing.
    pub fn new(what: String, quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()).with_message(what);
        bar.set_style(
            ProgressStyle::with_template("loading {msg} {bar:30} {pos}/{len} tensors {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bar,
            t0: Instant::now(),
            drawn: false,
            quiet,
        }
    }

    pub fn update(&mut self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        if !self.drawn && !self.quiet && self.t0.elapsed() >= Duration::from_secs(1) {
            self.drawn = true;
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Clears the bar; the seconds the load took.
    pub fn finish(&self) -> f64 {
        self.bar.finish_and_clear();
        self.t0.elapsed().as_secs_f64()
    }
}

/// "126.5 MB of weights: Q4_1 180 matrices 66.4 MB (5.00 bits a weight), ...": what the model's
/// matrices take on the device, by format.
pub fn weights_line(model: &GpuModel) -> String {
    let formats = model.formats();
    let total: u64 = formats.iter().map(|f| f.bytes).sum();
    let mb = |b: u64| b as f64 / 1e6;
    let parts: Vec<String> = formats
        .iter()
        .map(|f| {
            format!(
                "{} {} matrices {:.1} MB ({:.2} bits a weight)",
                f.format.name(),
                f.matrices,
                mb(f.bytes),
                f.bits_per_weight()
            )
        })
        .collect();
    format!("{:.1} MB of weights: {}", mb(total), parts.join(", "))
}
