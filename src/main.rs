//! The `iotids` command: a thin binary over the library crates.
//!
//! Two phases, as ripgrep's: [`cli`] parses the raw flags and [`job`] turns them into one
//! checked job before any input is read or output written; [`cmd`] runs the job, one
//! module per subcommand, through the libraries, and [`output`] prints and writes.
//!
//! Exit codes: 0 success; 1 `audit` found problems, or `compare` could not fit a model; 2
//! bad input or usage (an invalid flag, a file that cannot be read, is not CSV, lacks the
//! label column).

mod cli;
mod cmd;
mod job;
mod output;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    let (job, ui) = match job::resolve(cli::parse()) {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    init_logging(ui.verbose, ui.quiet);
    if let Some(threads) = ui.threads {
        // burn's CPU backend computes on rayon's global pool: size it once, before any
        // tensor work, so --threads bounds training and prediction too (not only ingest).
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.get())
            .build_global()
        {
            eprintln!("warning: --threads {threads}: {e}");
        }
    }
    match cmd::run(job, ui) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IOTIDS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs redirected to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// A closed pipe (`iotids describe f.csv | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes, `: `-separated, skipping a cause whose text the message
/// before it already carries (library errors often print their source inline).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_skips_causes_already_in_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(io).context("a.csv: No such file");
        assert_eq!(error_chain(&e), "a.csv: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
