//! What the command lines (examples/visattn, examples/llava) share, behind the `cli` feature:
//! VAR's flags, argument errors as one line, standard output that never panics, and the
//! loading progress bar.

pub mod progress;
pub mod stdout;
pub mod var_args;

/// The progress bars' crate (the loading bar here, the question runner's in the llava example).
pub use indicatif;
pub use var_args::VarArgs;

/// `--help` and `--version` print clap's text and succeed; an argument error is one `error:`
/// line and exit 1, like every other error (clap's own default is its usage text and exit 2).
/// The line keeps what clap says before its usage block, so the arguments it names (a missing
/// `--input`, the two flags of a conflict) are in it.
pub fn argument_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = stdout::write(format_args!("{e}"));
        return std::process::ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let said: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
    let said = said.join(" ");
    let said = said.strip_prefix("error: ").unwrap_or(&said);
    let said = if said.is_empty() { "bad arguments" } else { said };
    eprintln!("error: {said} (see --help)");
    std::process::ExitCode::FAILURE
}
