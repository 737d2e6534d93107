//! `medilake`: inspect, read and write Delta Lake tables. See the `pipeline` crate docs.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use pipeline::cli::Cli;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than the system allocator: a partitioned write allocates and frees many small
/// buffers, and glibc's malloc spent a quarter of its time in its free lists (and mimalloc held a
/// third more memory at peak).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Set by the panic hook, which prints the one error line itself.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    init_tracing(cli.verbose);
    // A write to thousands of partitions keeps one staged file open per partition on local
    // disk: raise the soft limit on open files to the hard limit (where that is allowed).
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::debug!("cannot raise the open file limit: {e}");
    }
    // One line, no backtrace, even when something panics.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // Only the first panic is reported (a panicking worker task may be followed by
        // an error about the failed task, or by another panic).
        if !PANICKED.swap(true, Ordering::SeqCst) {
            eprintln!("error: internal error{location}: {}", one_line(&message));
        }
    }));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(pipeline::run(cli))
    }));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // The reader went away (`medilake ... | head`): not a failure.
        Ok(Err(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            if !PANICKED.load(Ordering::SeqCst) {
                eprintln!("error: {}", error_message(&e));
            }
            ExitCode::FAILURE
        }
        // The panic hook already printed the message.
        Err(_) => ExitCode::FAILURE,
    }
}

/// `--help` and `--version` print to stdout and exit 0; a usage error prints one line
/// (clap's message without the usage section) and exits 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = error.render().to_string();
    // The message is everything before the first blank line (then come usage and hints).
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .collect();
    let message = one_line(&message.join("\n"));
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: {message} (see --help)");
    ExitCode::from(2)
}

/// The error and its causes on one line, `: `-separated. A cause whose text its parent
/// already includes (common with wrapped library errors) is not repeated.
fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = one_line(&cause.to_string());
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Warnings only by default (or `RUST_LOG`); `-v` debug and `-vv` trace for this project.
fn init_tracing(verbose: u8) {
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("warn,delta_core=debug,pipeline=debug,medilake=debug"),
        _ => EnvFilter::new("debug,delta_core=trace,pipeline=trace,medilake=trace"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Whether the failure is a write to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The message on one line: line breaks (some storage errors have them) become spaces.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
