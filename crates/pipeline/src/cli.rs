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
    /// Write a synthetic, deliberately dirty EHR data set (six entities, time-ordered part
    /// files, and a manifest of every injected defect).
    Generate(GenerateArgs),
    /// Run the medallion pipeline (bronze, silver, gold, optimize) over a data directory.
    Run(RunArgs),
    /// The lake's tables by three-level name (`medilake.silver.patients_scd`), with
    /// descriptions, owners and PHI tags from `<lake>/_catalog.json`.
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

/// `medilake catalog ...`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Every table: version, files, rows, PHI columns and owner.
    List(CatalogListArgs),
    /// One table: description, owner, location, version, partitioning, and every column
    /// with its type and tags.
    Describe(CatalogDescribeArgs),
}

/// `medilake catalog list`.
#[derive(Debug, Args)]
pub struct CatalogListArgs {
    /// The lakehouse root (a local path or a URL).
    #[arg(long, value_name = "DIR|URL", default_value = "./lakehouse")]
    pub lake: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `medilake catalog describe`.
#[derive(Debug, Args)]
pub struct CatalogDescribeArgs {
    /// `medilake.<layer>.<table>` or `<layer>.<table>`.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The lakehouse root (a local path or a URL).
    #[arg(long, value_name = "DIR|URL", default_value = "./lakehouse")]
    pub lake: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `medilake generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of patients (about 100 rows per patient in all).
    #[arg(long, value_name = "N")]
    pub patients: u64,
    /// Output directory (`DIR/<entity>/part-0000k.jsonl`, `DIR/manifest.json`).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// Seed of the random stream: the same seed gives byte-identical files.
    #[arg(long, value_name = "S", default_value_t = crate::pipeline::synth::DEFAULT_SEED)]
    pub seed: u64,
    /// Time-ordered part files per entity.
    #[arg(long, value_name = "K", default_value_t = crate::pipeline::synth::DEFAULT_PARTS,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub parts: u32,
    /// Most encounters per patient (12 gives about 100 rows per patient; fewer, a smaller set).
    #[arg(long, value_name = "K", default_value_t = crate::pipeline::synth::DEFAULT_MAX_ENCOUNTERS,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_encounters: u32,
    /// Print the manifest as JSON instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// A stage of `medilake run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// Raw records plus provenance, one table per entity.
    Bronze,
    /// Typed, conformed, deduplicated tables, quarantine and SCD2 patients.
    Silver,
    /// Analytics aggregates.
    Gold,
    /// OPTIMIZE (clustering or compaction), VACUUM and checkpoints of the tables the run changed.
    Optimize,
}

/// `medilake run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The source data directory: a local path or a URL (`s3://`, `az://`, ...).
    #[arg(long, value_name = "DIR|URL", default_value = "./data")]
    pub data: String,
    /// The lakehouse root (`<lake>/<layer>/<table>`): a local path or a URL (`s3://`,
    /// `az://`, `abfss://`, `gs://`, `file://`; credentials from the environment and
    /// `--storage-option`).
    #[arg(long, value_name = "DIR|URL", default_value = "./lakehouse")]
    pub lake: String,
    /// The as-of date of derived fields such as medication activity (silver; default today).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub as_of: Option<NaiveDate>,
    /// The stages to run, in order.
    #[arg(
        long,
        value_name = "STAGES",
        value_delimiter = ',',
        default_value = "bronze,silver,gold,optimize"
    )]
    pub stages: Vec<Stage>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD)"))
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
    /// Print the rows a range of commits inserted, deleted or updated (the change data feed),
    /// then where each version's rows came from.
    Changes(ChangesArgs),
    /// List the live data files with their statistics (and, with --where, which are skipped).
    Files(FilesArgs),
    /// Explain the actions of one commit, action by action.
    Log(LogArgs),
    /// Write rows from JSON-lines, CSV or parquet files (creates the table if needed).
    Write(WriteArgs),
    /// Delete the rows matching a predicate (copy-on-write, or deletion vectors when the table enables them).
    Delete(DeleteArgs),
    /// Set columns of the rows matching a predicate (copy-on-write, or deletion vectors when the table enables them).
    Update(UpdateArgs),
    /// MERGE rows from JSON-lines, CSV or parquet files into the table: update or delete
    /// matched rows, insert new ones (only files with changed rows are rewritten, or marked with deletion vectors when the table enables them).
    Merge(MergeArgs),
    /// Write a checkpoint of the latest version now.
    Checkpoint(CheckpointArgs),
    /// Set table properties (`delta.*` or user keys) in a metadata-only commit.
    SetProperty(SetPropertyArgs),
    /// Add a CHECK constraint, after checking every existing row against it.
    AddConstraint(AddConstraintArgs),
    /// Rename a column (or a struct field, `a.b`) in a metadata-only commit; needs column
    /// mapping (`set-property URI delta.columnMapping.mode=name`).
    RenameColumn(RenameColumnArgs),
    /// Drop columns (or struct fields, `a.b`) in a metadata-only commit; needs column
    /// mapping. The values stay in the data files, unread, until the files are rewritten.
    DropColumn(DropColumnArgs),
    /// Compact small files (bin-packing per partition) or cluster rows along a Hilbert or
    /// Morton curve (--zorder-by); prints the plan and what was rewritten.
    Optimize(OptimizeArgs),
    /// Delete files no version inside the retention window references.
    Vacuum(VacuumArgs),
    /// Measure how many files a point lookup `col = v` must read (clustering quality).
    Clustering(ClusteringArgs),
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

/// Arguments of `table changes`.
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Table location: a local path or a file://, s3://, az://, abfss:// or gs:// URL.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// First version of the range (inclusive).
    #[arg(
        long = "from",
        value_name = "V",
        conflicts_with = "from_timestamp",
        required_unless_present = "from_timestamp"
    )]
    pub from: Option<u64>,

    /// Last version of the range (inclusive; default: the latest).
    #[arg(long = "to", value_name = "V", conflicts_with = "to_timestamp")]
    pub to: Option<u64>,

    /// Start at the first version committed at or after this time: RFC 3339, `YYYY-MM-DD` or
    /// `YYYY-MM-DDTHH:MM:SS` (UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp_ms)]
    pub from_timestamp: Option<i64>,

    /// End at the last version committed at or before this time.
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp_ms)]
    pub to_timestamp: Option<i64>,

    /// Output format (`table` ends with a per-version summary; `jsonl` and `csv` print only
    /// rows).
    #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
    pub format: ShowFormat,
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

    /// A property of the new table (repeatable), e.g. `delta.columnMapping.mode=name` or
    /// `delta.enableDeletionVectors=true`; an existing table takes `table set-property`.
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,

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

/// Arguments of `table merge`.
#[derive(Debug, Args)]
#[command(after_help = "\
The ON condition and the conditions and values refer to the table as `t` and to the source \
as `s` (unqualified names belong to the side that has them). ON must hold at least one \
equality `t.<col> = s.<col>`; files whose statistics or partition values cannot hold a \
source key are not read.

Spark's rules apply: the first clause whose condition holds acts, and a target row matched \
by more than one source row is an error (unless the only WHEN MATCHED action is an \
unconditional delete).

Source files are read as by `table write`, with the table's column types.

Example: medilake table merge ./labs --source new.jsonl --on 't.lab_result_id = \
s.lab_result_id' --when-matched update-all --when-not-matched insert-all")]
pub struct MergeArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Source files, read in this order (repeatable).
    #[arg(long, short = 's', value_name = "FILE", required = true, num_args = 1..)]
    pub source: Vec<String>,

    /// Format of every source file (default: from each file's extension).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,

    /// The merge condition, e.g. `t.id = s.id` or `t.id = s.id AND t.site = s.site`.
    #[arg(long, value_name = "EXPR")]
    pub on: String,

    /// WHEN MATCHED action: `update-all`, `delete`, `update SET col = expr, ...` or `ignore`.
    #[arg(long, value_name = "ACTION")]
    pub when_matched: Option<String>,

    /// Extra condition of the WHEN MATCHED clause (may read `t.*` and `s.*`).
    #[arg(long, value_name = "EXPR", requires = "when_matched")]
    pub when_matched_condition: Option<String>,

    /// WHEN NOT MATCHED action: `insert-all` or `ignore`.
    #[arg(long, value_name = "ACTION")]
    pub when_not_matched: Option<String>,

    /// Extra condition of the WHEN NOT MATCHED clause (may read `s.*`).
    #[arg(long, value_name = "EXPR", requires = "when_not_matched")]
    pub when_not_matched_condition: Option<String>,

    /// WHEN NOT MATCHED BY SOURCE action: `delete`, `update SET col = expr, ...` or `ignore`.
    #[arg(long, value_name = "ACTION")]
    pub when_not_matched_by_source: Option<String>,

    /// Extra condition of the WHEN NOT MATCHED BY SOURCE clause (may read `t.*`).
    #[arg(long, value_name = "EXPR", requires = "when_not_matched_by_source")]
    pub when_not_matched_by_source_condition: Option<String>,

    /// Add source columns the table lacks (as nullable columns) on update-all/insert-all.
    #[arg(long)]
    pub merge_schema: bool,

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

/// Arguments of `table rename-column`.
#[derive(Debug, Args)]
pub struct RenameColumnArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// The column to rename: a top-level column, or `a.b` for field `b` of struct `a`.
    #[arg(value_name = "COLUMN")]
    pub column: String,

    /// Its new name (within the same struct).
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table drop-column`.
#[derive(Debug, Args)]
pub struct DropColumnArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// The columns to drop (one or more): top-level columns, or `a.b` for struct fields.
    #[arg(value_name = "COLUMN", required = true)]
    pub columns: Vec<String>,

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

/// The space-filling curve of `table optimize --zorder-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CurveArg {
    /// Hilbert curve (the default for two or more columns): neighbours on the curve are
    /// neighbours in value space, so files cover compact boxes.
    Hilbert,
    /// Z-order (Morton) curve: bit interleaving of the column ranks.
    Morton,
}

/// Arguments of `table optimize`.
#[derive(Debug, Args)]
#[command(after_help = "\
Sizes: plain bytes or a number with a unit: KiB, MiB, GiB, TiB (powers of 1024), KB, MB, GB, \
TB (powers of 1000), or K, M, G, T (powers of 1024, as in Spark), e.g. 4MiB, 128MB, 1G, 1.5GiB; \
units are case-insensitive.

Without --zorder-by, the files smaller than the target size (or whose deletion vectors hide \
more than 5% of their rows) of each partition are packed into bins of at most the target \
size, and each bin of two or more files is rewritten. With --zorder-by, the files of each \
partition not yet clustered the same way are rewritten in curve order into files of about \
the target size. Rewrites commit with dataChange=false; rows do not change.")]
pub struct OptimizeArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Only the partitions matching this predicate (partition columns only).
    #[arg(long = "where", value_name = "EXPR")]
    pub predicate: Option<String>,

    /// Target size of the files written (default: `delta.targetFileSize`, or 128 MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub target_size: Option<u64>,

    /// Cluster the rows by these columns (comma-separated, at most 8; not partition columns).
    #[arg(long, value_name = "a,b", value_delimiter = ',')]
    pub zorder_by: Option<Vec<String>>,

    /// The curve of --zorder-by (default: hilbert for two or more columns).
    #[arg(long, value_enum, requires = "zorder_by")]
    pub curve: Option<CurveArg>,

    /// Print the plan only: nothing is written or committed.
    #[arg(long)]
    pub dry_run: bool,

    /// Memory budget of the rewrite (default 512 MiB; at least 1 MiB is used).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub memory_budget: Option<u64>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table vacuum`.
#[derive(Debug, Args)]
#[command(after_help = "\
A file is deleted when no version inside the retention window can read it: it is not live, \
no tombstone younger than the retention names it, it is older than the retention, and it is \
not under a hidden path (_delta_log, or names starting with _ or ., except _change_data). \
A retention shorter than the table's delta.deletedFileRetentionDuration (default 7 days) \
breaks time travel to older versions and readers still using them, so it needs --force.")]
pub struct VacuumArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Keep files removed within this many hours (default: the table's
    /// `delta.deletedFileRetentionDuration`, 168 hours); fractions allowed.
    #[arg(long, value_name = "H", value_parser = parse_hours)]
    pub retain_hours: Option<f64>,

    /// List the files that would be deleted, without deleting or committing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Allow a retention shorter than the table's setting.
    #[arg(long)]
    pub force: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `table clustering`.
#[derive(Debug, Args)]
pub struct ClusteringArgs {
    /// Table location.
    #[arg(value_name = "URI")]
    pub uri: String,

    /// Columns to probe (comma-separated); with two or more, their conjunction too.
    #[arg(long, value_name = "a,b", value_delimiter = ',', required = true)]
    pub columns: Vec<String>,

    /// Rows sampled (evenly) for the probe values.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,

    /// Which snapshot to measure.
    #[command(flatten)]
    pub time_travel: TimeTravel,

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
            Self::Changes(a) => &a.uri,
            Self::Files(a) => &a.uri,
            Self::Log(a) => &a.uri,
            Self::Write(a) => &a.uri,
            Self::Delete(a) => &a.uri,
            Self::Update(a) => &a.uri,
            Self::Merge(a) => &a.uri,
            Self::Checkpoint(a) => &a.uri,
            Self::SetProperty(a) => &a.uri,
            Self::AddConstraint(a) => &a.uri,
            Self::RenameColumn(a) => &a.uri,
            Self::DropColumn(a) => &a.uri,
            Self::Optimize(a) => &a.uri,
            Self::Vacuum(a) => &a.uri,
            Self::Clustering(a) => &a.uri,
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

/// Parse a size in bytes: plain digits, or a number (fractions allowed) with a unit:
/// `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), `KB`/`MB`/`GB`/`TB` (powers of 1000), or
/// `K`/`M`/`G`/`T` (powers of 1024, as Spark reads `1g`); `B` for bytes. Units are
/// case-insensitive and may follow a space. The result is rounded down to whole bytes and
/// must be at least 1.
///
/// # Errors
/// A message for clap naming the accepted forms.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let bad = || {
        format!(
            "`{s}` is not a size: use bytes (4194304) or a number with a unit \
             (4MiB, 128MB, 1G, 1.5GiB)"
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty())
        || fraction.contains('.')
        || fraction.len() > 18
        || whole.len() > 20
    {
        return Err(bad());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| bad())?);
    let bytes = whole
        .checked_mul(multiplier)
        .and_then(|b| b.checked_add(fraction_value * multiplier / scale))
        .ok_or_else(bad)?;
    let bytes = u64::try_from(bytes).map_err(|_| format!("`{s}` is too large a size"))?;
    if bytes == 0 {
        return Err(format!("`{s}`: a size must be at least 1 byte"));
    }
    Ok(bytes)
}

/// Parse a non-negative, finite number of hours (`0`, `24`, `1.5`).
///
/// # Errors
/// A message for clap.
pub fn parse_hours(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(hours) if (0.0..=1e9).contains(&hours) => Ok(hours),
        _ => Err(format!(
            "`{s}` is not a number of hours: use a non-negative number such as 0, 24 or 1.5"
        )),
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
    fn sizes() {
        assert_eq!(parse_size("4194304"), Ok(4_194_304));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("4 mib"), Ok(4 << 20));
        assert_eq!(parse_size("128MB"), Ok(128_000_000));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size(".5k"), Ok(512));
        assert_eq!(parse_size("10b"), Ok(10));
        assert_eq!(parse_size("2KB"), Ok(2_000));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        for bad in [
            "", "MiB", "1.2.3M", "-1", "1X", "1 M B", ".", "0", "0.0001K",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn hours() {
        assert_eq!(parse_hours("0"), Ok(0.0));
        assert_eq!(parse_hours("1.5"), Ok(1.5));
        assert!(parse_hours("-1").is_err());
        assert!(parse_hours("inf").is_err());
        assert!(parse_hours("NaN").is_err());
        assert!(parse_hours("a week").is_err());
    }

    #[test]
    fn maintenance_command_lines() {
        let cli = Cli::try_parse_from([
            "medilake",
            "table",
            "optimize",
            "t",
            "--zorder-by",
            "a,b",
            "--curve",
            "morton",
            "--target-size",
            "4MiB",
            "--dry-run",
        ])
        .expect("parses");
        let Command::Table(TableCommand::Optimize(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.zorder_by, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(args.curve, Some(CurveArg::Morton));
        assert_eq!(args.target_size, Some(4 << 20));
        assert!(args.dry_run);
        // --curve only with --zorder-by.
        assert!(
            Cli::try_parse_from(["medilake", "table", "optimize", "t", "--curve", "hilbert"])
                .is_err()
        );
        let cli = Cli::try_parse_from([
            "medilake",
            "table",
            "vacuum",
            "t",
            "--retain-hours",
            "0",
            "--force",
        ])
        .expect("parses");
        let Command::Table(TableCommand::Vacuum(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.retain_hours, Some(0.0));
        assert!(args.force && !args.dry_run);
        // --columns is required; --samples defaults to 200 and must be positive.
        assert!(Cli::try_parse_from(["medilake", "table", "clustering", "t"]).is_err());
        let cli = Cli::try_parse_from(["medilake", "table", "clustering", "t", "--columns", "a"])
            .expect("parses");
        let Command::Table(TableCommand::Clustering(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.samples, 200);
        assert!(
            Cli::try_parse_from([
                "medilake",
                "table",
                "clustering",
                "t",
                "--columns",
                "a",
                "--samples",
                "0"
            ])
            .is_err()
        );
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
