//! What each command does. Every command writes its result to stdout through one locked,
//! buffered writer and returns errors with enough context to name the table, the version
//! and (through `delta_core::Error`) the file or action at fault.

pub mod catalog;
pub mod ehr;
pub mod maintenance;
pub mod merge;
pub mod table;
pub mod write;

use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use arrow::array::RecordBatch;
use futures::StreamExt;
use futures::stream::BoxStream;

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
        Command::Generate(args) => ehr::generate(&args, out).await,
        Command::Run(args) => ehr::run(&args, &options, out).await,
        Command::Catalog(command) => catalog::run(command, &options, out).await,
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

/// The input errors of a stream made by [`engine_input`]: delta-core sees a placeholder, the
/// real error (naming the file and line) is kept here.
#[derive(Clone, Default)]
pub(crate) struct InputErrors(Arc<Mutex<Option<anyhow::Error>>>);

impl InputErrors {
    /// The error to report for a failed operation: the input error that caused it when there
    /// was one, else the engine's own.
    pub(crate) fn explain(&self, engine: delta_core::Error) -> anyhow::Error {
        match self.0.lock().ok().and_then(|mut slot| slot.take()) {
            Some(input) => input,
            None => anyhow::Error::new(engine),
        }
    }
}

/// `prefix`, then the batches read on a blocking thread into `receiver`, as the stream an
/// engine operation consumes. An input error ends up in the returned [`InputErrors`] and
/// reaches delta-core as "cannot read the `what`".
pub(crate) fn engine_input(
    prefix: Vec<RecordBatch>,
    receiver: tokio::sync::mpsc::Receiver<Result<RecordBatch>>,
    what: &'static str,
) -> (
    BoxStream<'static, delta_core::Result<RecordBatch>>,
    InputErrors,
) {
    let errors = InputErrors::default();
    let slot = errors.0.clone();
    let rest = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let batches = futures::stream::iter(prefix.into_iter().map(Ok))
        .chain(rest)
        .map(move |item| {
            item.map_err(|e| {
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(e);
                }
                delta_core::Error::InvalidArgument {
                    message: format!("cannot read the {what}"),
                }
            })
        })
        .boxed();
    (batches, errors)
}
