//! Standard output that never panics (`println!` does when stdout is closed or full): a full
//! disk or a closed file is an error the caller returns (one `error:` line, exit 1), and a
//! reader that went away (`| head`) ends the program quietly with exit 0, as ripgrep and
//! coreutils' tools do.

use std::io::Write;

/// Writes `args` to stdout and flushes, so a failed write surfaces here and not at exit.
pub fn write(args: std::fmt::Arguments) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("writing standard output: {e}")),
    }
}

/// `println!` that returns `Result<(), String>` instead of panicking.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::stdout::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::stdout::write(format_args!("{}\n", format_args!($($arg)*))) };
}
