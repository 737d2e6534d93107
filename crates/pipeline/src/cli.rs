//! Command-line syntax of `medilake` (clap derive types).
//!
//! Parsing only: every value that can be checked without touching a table (time stamps,
//! `key=value` options, output formats) is checked here, so a malformed argument is a usage
//! error (exit code 2) rather than a failure (exit code 1).

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// `medilake`: inspect, read and write Delta Lake tables.
#[derive(Debug, Parser)]
#[command(name = "medilake", version, about, long_about = None)]
pub struct Cli {
    /// Object-store setting passed to the table, e.g. `aws_region=eu-west-1` (repeatable).
    #[arg(
        long = "storage-option",
        value_name = "KEY=VALUE",
        global = true,
        value_parser = parse_key_value
    )]
    pub storage_options: Vec<(String, String)>,

    /// Log progress to stderr (`-v` debug, `-vv` trace; default: warnings only).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read, inspect and write one Delta table.
    #[command(subcommand)]
    Table(TableCommand),
}

/// `medilake table ...`.
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Print the rows of a table (optionally filtered, projected, time-travelled).
    Show(ShowArgs),
    /// Summarise a table: protocol, features, schema, partitioning, properties, sizes.
    Describe(DescribeArgs),
    /// List the commits of a table, newest first.
    History(HistoryArgs),
    /// List the live data files with their statistics (and, with --where, which are skipped).
    Files(FilesArgs),
    /// Explain the actions of one commit, action by action.
    Log(LogArgs),
    /// Write rows from JSON-lines, CSV or parquet files (creates the table if needed).
    Write(WriteArgs),
    /// Delete the rows matching a predicate (copy-on-write).
    Delete(DeleteArgs),
    /// Set columns of the rows matching a predicate (copy-on-write).
    Update(UpdateArgs),
    /// Write a checkpoint of the latest version now.
    Checkpoint(CheckpointArgs),
    /// Set table properties (`delta.*` or user keys) in a metadata-only commit.
    SetProperty(SetPropertyArgs),
    /// Add a CHECK constraint, after checking every existing row against it.
    AddConstraint(AddConstraintArgs),
}

/// Which snapshot to read: latest, a version, or the version in force at a time.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct TimeTravel {
    /// Read the table as of this version.
    #[arg(long, value_name = "N", conflicts_with = "timestamp")]
    pub version: Option<u64>,

    /// Read the table as of this time: RFC 3339, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` (UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp_ms)]
    pub timestamp: Option<i64>,
}

/// Output format of `table show`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// One JSON object per row.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

/// Arguments of `table show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Table location: a local path or a file://, s3://, az://, abfss:// or gs:// URL.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Which snapshot to read.
    #[command(flatten)]
    pub time_travel: TimeTravel,

    /// Keep only rows matching this SQL predicate, e.g. `state = 'CA' AND age > 40`.
    #[arg(long = "where", value_name = "EXPR")]
    pub predicate: Option<String>,

    /// Output only these columns, in this order (comma-separated).
    #[arg(long, value_name = "a,b", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,

    /// Stop after this many rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
    pub format: ShowFormat,
}

/// Arguments of `table describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Which snapshot to describe.
    #[command(flatten)]
    pub time_travel: TimeTravel,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Print one JSON object per commit.
    #[arg(long)]
    pub json: bool,

    /// Show at most this many commits (the newest).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// Arguments of `table files`.
#[derive(Debug, Args)]
pub struct FilesArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Mark each file `kept` or `skipped` for this SQL predicate (data skipping).
    #[arg(long = "where", value_name = "EXPR")]
    pub predicate: Option<String>,

    /// Print one JSON object per file and a final `{"kept":K,"total":N}` object.
    #[arg(long)]
    pub json: bool,

    /// Which snapshot to list.
    #[command(flatten)]
    pub time_travel: TimeTravel,
}

/// Arguments of `table log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// The commit to explain (default: the latest).
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
}

/// Format of the input files of `table write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`).
    Jsonl,
    /// Comma-separated values with a header line (`.csv`).
    Csv,
    /// Apache Parquet (`.parquet`).
    Parquet,
}

/// How `table write` treats the rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriteMode {
    /// Add the rows.
    Append,
    /// Replace the rows: all of them, those matching --replace-where, or (with
    /// --dynamic-partition-overwrite) those in the partitions the input touches.
    Overwrite,
}

/// Arguments of `table write`.
#[derive(Debug, Args)]
#[command(after_help = "\
Column types: when the table is created (and for the columns --merge-schema adds), they are \
inferred from the first 1000 records of every input file; when the table exists, its own \
column types are used.

JSON lines: integers become long, other numbers double, true/false boolean, objects structs, \
arrays arrays, and everything else string: arrow-json infers timestamps and dates as strings. \
Into an existing table, JSON strings are parsed as its timestamp, date and decimal columns \
(text without an offset is UTC).

CSV (with a header line): integers become long, other numbers double, true/false boolean, \
YYYY-MM-DD date, and timestamps timestamp (text without an offset is read as UTC); the \
rest string.

Parquet: the file's own types (unsigned integers widened to signed ones).")]
pub struct WriteArgs {
    /// Table location: a local path or a file://, s3://, az://, abfss:// or gs:// URL.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Input files, read in this order (repeatable; `--input a.jsonl b.jsonl` works too).
    #[arg(long, short = 'i', value_name = "FILE", required = true, num_args = 1..)]
    pub input: Vec<String>,

    /// Format of every input file (default: from each file's extension).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,

    /// Append (default) or overwrite.
    #[arg(long, value_enum)]
    pub mode: Option<WriteMode>,

    /// Partition columns of a new table (an existing table must already be partitioned so).
    #[arg(long, value_name = "a,b", value_delimiter = ',')]
    pub partition_by: Option<Vec<String>>,

    /// Overwrite only the rows matching this SQL predicate; every input row must match it.
    #[arg(
        long,
        value_name = "EXPR",
        conflicts_with = "dynamic_partition_overwrite"
    )]
    pub replace_where: Option<String>,

    /// Overwrite only the partitions the input rows fall in.
    #[arg(long)]
    pub dynamic_partition_overwrite: bool,

    /// Add input columns the table lacks (as nullable columns) instead of failing.
    #[arg(long)]
    pub merge_schema: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table delete`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("rows").required(true).args(["predicate", "all"])))]
pub struct DeleteArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Delete the rows matching this SQL predicate, e.g. `state = 'CA' AND age > 40`.
    #[arg(long = "where", value_name = "EXPR")]
    pub predicate: Option<String>,

    /// Delete every row.
    #[arg(long)]
    pub all: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table update`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("rows").required(true).args(["predicate", "all"])))]
pub struct UpdateArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Comma-separated assignments `col = value`; a value is a literal (`'x'`, `42`,
    /// `NULL`, `DATE '2024-01-01'`) or another column of the same row.
    #[arg(long, value_name = "col = expr, ...")]
    pub set: String,

    /// Update the rows matching this SQL predicate.
    #[arg(long = "where", value_name = "EXPR")]
    pub predicate: Option<String>,

    /// Update every row.
    #[arg(long)]
    pub all: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table set-property`.
#[derive(Debug, Args)]
pub struct SetPropertyArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Properties to set, e.g. `delta.appendOnly=true` (one or more).
    #[arg(value_name = "KEY=VALUE", required = true, value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table add-constraint`.
#[derive(Debug, Args)]
pub struct AddConstraintArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Constraint name (stored as the property `delta.constraints.<NAME>`).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The CHECK expression every row must satisfy, e.g. `age >= 0`.
    #[arg(value_name = "EXPR")]
    pub expression: String,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The `--storage-option` pairs as a map (a later repetition of a key wins).
    #[must_use]
    pub fn storage_options(&self) -> std::collections::HashMap<String, String> {
        self.storage_options.iter().cloned().collect()
    }
}

impl TableCommand {
    /// The URI argument of the command.
    #[must_use]
    pub fn uri(&self) -> &str {
        match self {
            Self::Show(a) => &a.uri,
            Self::Describe(a) => &a.uri,
            Self::History(a) => &a.uri,
            Self::Files(a) => &a.uri,
            Self::Log(a) => &a.uri,
            Self::Write(a) => &a.uri,
            Self::Delete(a) => &a.uri,
            Self::Update(a) => &a.uri,
            Self::Checkpoint(a) => &a.uri,
            Self::SetProperty(a) => &a.uri,
            Self::AddConstraint(a) => &a.uri,
        }
    }
}

/// Parse `key=value` (the key must be non-empty; the value may contain `=`).
///
/// # Errors
/// A message for clap when there is no `=` or the key is empty.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// Parse a point in time into milliseconds since the epoch.
///
/// Accepts RFC 3339 (`2024-01-02T03:04:05Z`, `2024-01-02T03:04:05.5+01:00`), and, read as
/// UTC, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.fff]` and `YYYY-MM-DD HH:MM:SS[.fff]`.
///
/// # Errors
/// A message for clap naming the accepted forms.
pub fn parse_timestamp_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(format!(
        "`{s}` is not a time: use RFC 3339 (2024-01-02T03:04:05Z), YYYY-MM-DD or \
         YYYY-MM-DDTHH:MM:SS (UTC)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_timestamp_ms("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert_eq!(parse_timestamp_ms("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:02"), Ok(2000));
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:02.5"), Ok(2500));
        assert!(parse_timestamp_ms("yesterday").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("a=b=c"),
            Ok(("a".to_owned(), "b=c".to_owned()))
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }

    #[test]
    fn write_command_lines() {
        let cli = Cli::try_parse_from([
            "medilake",
            "table",
            "write",
            "t",
            "--input",
            "a.jsonl",
            "b.csv",
            "--partition-by",
            "x,y",
            "--mode",
            "overwrite",
        ])
        .expect("parses");
        let Command::Table(TableCommand::Write(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.input, ["a.jsonl", "b.csv"]);
        assert_eq!(
            args.partition_by,
            Some(vec!["x".to_owned(), "y".to_owned()])
        );
        assert_eq!(args.mode, Some(WriteMode::Overwrite));
        // DELETE needs --where or --all, not both.
        assert!(Cli::try_parse_from(["medilake", "table", "delete", "t"]).is_err());
        assert!(
            Cli::try_parse_from(["medilake", "table", "delete", "t", "--all", "--where", "x"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["medilake", "table", "set-property", "t"]).is_err());
        let cli = Cli::try_parse_from(["medilake", "table", "set-property", "t", "a=1", "b=2"])
            .expect("parses");
        let Command::Table(TableCommand::SetProperty(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.properties.len(), 2);
    }

    #[test]
    fn version_flag_on_subcommands() {
        let cli = Cli::try_parse_from(["medilake", "table", "show", "t", "--version", "3"])
            .expect("parses");
        let Command::Table(TableCommand::Show(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.time_travel.version, Some(3));
        assert!(
            Cli::try_parse_from([
                "medilake",
                "table",
                "show",
                "t",
                "--version",
                "3",
                "--timestamp",
                "2024-01-01"
            ])
            .is_err()
        );
    }
}
