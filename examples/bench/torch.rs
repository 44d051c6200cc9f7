//! The torch anchor: the same prefill as a few vectorised torch ops per layer on this CPU.

use crate::report::Report;

/// Times tools/torch_var_prefill.py (all cores) and prints var_prefill's speed as a ratio to it;
/// a summary saying why where python has no torch.
pub fn torch_anchor(rep: &Report, shape: &str, gpu_secs: f64) {
    let python = std::env::var("VISATTN_PYTHON").unwrap_or_else(|_| "python3".into());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/torch_var_prefill.py");
    let out = std::process::Command::new(&python).arg(&script).args(["29", &threads]).output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named 'torch'") => {
            rep.summary(format!("torch: skipped: {python} has no torch (set VISATTN_PYTHON)"));
            return;
        }
        Ok(o) => {
            println!(
                "torch: skipped: {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            return;
        }
        Err(e) => {
            rep.summary(format!("torch: skipped: {python}: {e}"));
            return;
        }
    };
    // "... min 0.251 s, median 0.262 s"
    let Some(secs) = text
        .split("min ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse::<f64>().ok())
    else {
        rep.summary(format!("torch: skipped: unexpected output {text:?}"));
        return;
    };
    rep.line(&format!("torch_prefill ({threads} threads)"), shape, secs, None, None);
    rep.summary(format!(
        "var_prefill: {:.2}x the speed of vectorised torch on this CPU (torch best of 3 / visattn median)",
        secs / gpu_secs
    ));
}
