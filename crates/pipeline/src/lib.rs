//! `pipeline`: the `medilake` command-line tool (and, later, the EHR medallion pipeline).
//!
//! The binary is a thin shell (`src/main.rs`): it parses the command line with [`cli::Cli`],
//! sets up logging and a tokio runtime, calls [`run`] and turns the outcome into an exit
//! code (0 success, 1 failure, 2 usage error) and a one-line `error: ...` message.
//!
//! Commands (on top of `delta_core`). Reading:
//!
//! ```text
//! medilake table show     URI [--version N | --timestamp T] [--where EXPR] [--columns a,b]
//!                             [--limit N] [--format table|jsonl|csv]
//! medilake table describe URI [--version N | --timestamp T] [--json]
//! medilake table history  URI [--limit N] [--json]
//! medilake table files    URI [--version N | --timestamp T] [--where EXPR] [--json]
//! medilake table log      URI [--version N]
//! ```
//!
//! Writing (each prints the committed version and its metrics, or `--json`):
//!
//! ```text
//! medilake table write          URI --input FILE... [--format jsonl|csv|parquet]
//!                                   [--mode append|overwrite] [--partition-by a,b]
//!                                   [--replace-where EXPR | --dynamic-partition-overwrite]
//!                                   [--merge-schema] [--json]
//! medilake table delete         URI (--where EXPR | --all) [--json]
//! medilake table update         URI --set "col = expr, ..." (--where EXPR | --all) [--json]
//! medilake table checkpoint     URI [--json]
//! medilake table set-property   URI KEY=VALUE... [--json]
//! medilake table add-constraint URI NAME EXPR [--json]
//! ```
//!
//! Maintenance (each prints its plan or findings and its metrics, or `--json`):
//!
//! ```text
//! medilake table optimize   URI [--where EXPR] [--target-size BYTES] [--zorder-by a,b]
//!                               [--curve hilbert|morton] [--dry-run] [--memory-budget BYTES]
//!                               [--json]
//! medilake table vacuum     URI [--retain-hours H] [--dry-run] [--force] [--json]
//! medilake table clustering URI --columns a,b [--samples N] [--version N | --timestamp T]
//!                               [--json]
//! ```
//!
//! The EHR pipeline (see [`pipeline`]):
//!
//! ```text
//! medilake generate --patients N --out DIR [--seed S] [--parts K] [--json]
//! medilake run [--data DIR] [--lake DIR] [--as-of DATE] [--stages bronze,...] [--json]
//! ```
//!
//! Global options: `--storage-option KEY=VALUE` (repeatable; object-store settings such as
//! credentials or regions) and `-v`/`--verbose` (debug logs on stderr).
//!
//! Module map: [`cli`] (argument syntax), [`commands`] (what each command does),
//! [`input`] (JSON-lines, CSV and parquet input files as Arrow batches), [`output`] (how
//! Arrow values become JSON lines, CSV or a text table).

pub mod catalog;
pub mod cli;
pub mod commands;
pub mod gold;
pub mod input;
pub mod lake;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod silver;

pub use commands::run;
