//! What each command does. Every command writes its result to stdout through one locked,
//! buffered writer and returns errors with enough context to name the table, the version
//! and (through `delta_core::Error`) the file or action at fault.

pub mod maintenance;
pub mod merge;
pub mod table;
pub mod write;

use std::io::{BufWriter, Write};

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Run a parsed command line, writing to stdout.
///
/// # Errors
/// Any failure of the command, with context; a write to a closed pipe surfaces as an
/// [`std::io::Error`] of kind `BrokenPipe` somewhere in the chain.
pub async fn run(cli: Cli) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    run_with_output(cli, &mut out).await?;
    out.flush()?;
    Ok(())
}

/// Run a parsed command line, writing to `out`.
///
/// # Errors
/// As [`run`].
pub async fn run_with_output<W: Write>(cli: Cli, out: &mut W) -> Result<()> {
    let options = cli.storage_options();
    match cli.command {
        Command::Table(command) => table::run(command, &options, out).await,
    }
}

/// `1 row`, `2 rows`: a count with its noun, plural unless the count is one.
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
