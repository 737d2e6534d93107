//! `medilake table ...`: show, describe, history, files and log; the commands that write
//! (write, delete, update, checkpoint, set-property, add-constraint) are in
//! [`super::write`], the maintenance commands (optimize, vacuum, clustering) in
//! [`super::maintenance`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use delta_core::action::{Action, Add, CommitInfo, PartitionValues};
use delta_core::scan::{PlannedFile, Verdict};
use delta_core::schema::{ColumnMappingMode, DataType, StructField, StructType};
use delta_core::{
    CHANGE_TYPE_COLUMN, COMMIT_VERSION_COLUMN, ChangeBound, ChangeScan, ChangeSource, Snapshot,
    Table,
};
use futures::StreamExt;

use super::plural;
use crate::cli::{
    ChangesArgs, DescribeArgs, FilesArgs, HistoryArgs, LogArgs, ShowArgs, ShowFormat, TableCommand,
    TimeTravel,
};
use crate::output::{Json, RowWriter, format_millis};

/// Run one `table` subcommand.
///
/// # Errors
/// Failures to open or read the table, bad predicates or columns, and output errors.
pub async fn run<W: Write>(
    command: TableCommand,
    options: &HashMap<String, String>,
    out: &mut W,
) -> Result<()> {
    let uri = command.uri().to_owned();
    let table = Table::open(&resolve_location(&uri), options)
        .with_context(|| format!("cannot open table {uri}"))?;
    match command {
        TableCommand::Show(args) => show(&table, &args, out).await,
        TableCommand::Describe(args) => describe(&table, &args, out).await,
        TableCommand::History(args) => history(&table, &args, out).await,
        TableCommand::Changes(args) => changes(&table, &args, out).await,
        TableCommand::Files(args) => files(&table, &args, out).await,
        TableCommand::Log(args) => log(&table, &args, out).await,
        TableCommand::Write(args) => super::write::write(&table, &args, out).await,
        TableCommand::Delete(args) => super::write::delete(&table, &args, out).await,
        TableCommand::Update(args) => super::write::update(&table, &args, out).await,
        TableCommand::Merge(args) => super::merge::merge(&table, &args, out).await,
        TableCommand::Checkpoint(args) => super::write::checkpoint(&table, &args, out).await,
        TableCommand::SetProperty(args) => super::write::set_property(&table, &args, out).await,
        TableCommand::AddConstraint(args) => super::write::add_constraint(&table, &args, out).await,
        TableCommand::RenameColumn(args) => super::write::rename_column(&table, &args, out).await,
        TableCommand::DropColumn(args) => super::write::drop_column(&table, &args, out).await,
        TableCommand::Optimize(args) => super::maintenance::optimize(&table, &args, out).await,
        TableCommand::Vacuum(args) => super::maintenance::vacuum(&table, &args, out).await,
        TableCommand::Clustering(args) => super::maintenance::clustering(&table, &args, out).await,
    }
}

/// A local path as an absolute path without `.`/`..` segments (object-store paths refuse
/// them, so `../data/t` would otherwise be rejected); URLs and paths that do not exist are
/// passed through unchanged (the table layer then reports them).
fn resolve_location(uri: &str) -> String {
    if uri.contains("://") || uri.starts_with("file:") {
        return uri.to_owned();
    }
    std::fs::canonicalize(uri)
        .ok()
        .and_then(|path| path.to_str().map(str::to_owned))
        .unwrap_or_else(|| uri.to_owned())
}

/// Load the snapshot chosen by `--version` / `--timestamp` (latest by default).
pub(crate) async fn load_snapshot(
    table: &Table,
    uri: &str,
    time_travel: TimeTravel,
) -> Result<Snapshot> {
    match (time_travel.version, time_travel.timestamp) {
        (Some(version), _) => table
            .snapshot_at(version)
            .await
            .with_context(|| format!("cannot read table {uri} at version {version}")),
        (None, Some(ms)) => table
            .snapshot_at_timestamp(ms)
            .await
            .with_context(|| format!("cannot read table {uri} as of {}", format_millis(ms))),
        (None, None) => table
            .snapshot()
            .await
            .with_context(|| format!("cannot read table {uri}")),
    }
}

/// Parse a `--where` predicate. The predicate text is not repeated in the message (it may
/// hold patient data); the parser's message names the problem.
pub(crate) fn parse_predicate(text: &str) -> Result<delta_core::expression::Expression> {
    delta_core::expression::parse(text).context("invalid --where predicate")
}

// ---------------------------------------------------------------------------------------------
// show
// ---------------------------------------------------------------------------------------------

async fn show<W: Write>(table: &Table, args: &ShowArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let snapshot = load_snapshot(table, uri, args.time_travel).await?;
    let version = snapshot.version();
    let mut builder = snapshot.scan();
    if let Some(text) = &args.predicate {
        builder = builder.with_predicate(parse_predicate(text)?);
    }
    if let Some(columns) = &args.columns {
        builder = builder.with_columns(columns.iter().map(|c| c.trim().to_owned()));
    }
    if let Some(limit) = args.limit {
        builder = builder.with_limit(limit);
    }
    let scan = builder
        .build()
        .with_context(|| format!("cannot plan a scan of {uri} at version {version}"))?;
    let kept = scan.planned_files().iter().filter(|f| f.is_kept()).count();
    tracing::debug!(
        version,
        kept,
        total = scan.planned_files().len(),
        "scan planned"
    );

    let mut writer = RowWriter::new(&mut *out, args.format, scan.schema());
    let mut batches = scan.execute();
    while let Some(batch) = batches.next().await {
        let batch =
            batch.with_context(|| format!("cannot read rows of {uri} at version {version}"))?;
        writer.write_batch(&batch)?;
    }
    writer.finish()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// changes
// ---------------------------------------------------------------------------------------------

async fn changes<W: Write>(table: &Table, args: &ChangesArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let from = match (args.from, args.from_timestamp) {
        (Some(version), _) => ChangeBound::Version(version),
        (None, Some(ms)) => ChangeBound::Timestamp(ms),
        (None, None) => anyhow::bail!("give --from or --from-timestamp"),
    };
    let to = match (args.to, args.to_timestamp) {
        (Some(version), _) => Some(ChangeBound::Version(version)),
        (None, Some(ms)) => Some(ChangeBound::Timestamp(ms)),
        (None, None) => None,
    };
    let scan = table
        .changes(from, to)
        .await
        .with_context(|| format!("cannot read the changes of {uri}"))?;
    let mut counts: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    let mut writer = RowWriter::new(&mut *out, args.format, scan.schema());
    let mut batches = scan.execute();
    while let Some(batch) = batches.next().await {
        let batch = batch.with_context(|| format!("cannot read the changes of {uri}"))?;
        count_changes(&batch, &mut counts);
        writer.write_batch(&batch)?;
    }
    writer.finish()?;
    if args.format == ShowFormat::Table {
        write_change_summary(&scan, &counts, out)?;
    }
    Ok(())
}

/// Add the rows of `batch` to `counts` (version -> change type -> rows).
fn count_changes(batch: &RecordBatch, counts: &mut BTreeMap<u64, BTreeMap<String, u64>>) {
    let (Some(kinds), Some(versions)) = (
        batch.column_by_name(CHANGE_TYPE_COLUMN),
        batch.column_by_name(COMMIT_VERSION_COLUMN),
    ) else {
        return;
    };
    let (Some(kinds), Some(versions)) = (
        kinds.as_string_opt::<i32>(),
        versions.as_primitive_opt::<Int64Type>(),
    ) else {
        return;
    };
    for row in 0..batch.num_rows() {
        let kind = if kinds.is_null(row) {
            "NULL"
        } else {
            kinds.value(row)
        };
        let version = u64::try_from(versions.value(row)).unwrap_or_default();
        *counts
            .entry(version)
            .or_default()
            .entry(kind.to_owned())
            .or_default() += 1;
    }
}

/// One line per version of the range: its change counts and where they were read from.
fn write_change_summary<W: Write>(
    scan: &ChangeScan,
    counts: &BTreeMap<u64, BTreeMap<String, u64>>,
    out: &mut W,
) -> Result<()> {
    writeln!(
        out,
        "\nchanges of versions {} to {} (columns of version {}):",
        scan.start_version(),
        scan.end_version(),
        scan.schema_version()
    )?;
    let width = scan
        .commits()
        .iter()
        .map(|c| c.operation.as_deref().unwrap_or("-").len())
        .max()
        .unwrap_or(1);
    let version_width = scan.end_version().to_string().len() + 1;
    for commit in scan.commits() {
        let rows = counts.get(&commit.version).map_or_else(
            || "no rows".to_owned(),
            |by_kind| {
                by_kind
                    .iter()
                    .map(|(kind, n)| format!("{n} {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        let files = plural(commit.file_count as u64, "file");
        let source = match commit.source {
            ChangeSource::CdcFiles => format!("from cdc actions ({files} in _change_data/)"),
            ChangeSource::AddRemove if commit.deletion_vector_updates > 0 => format!(
                "from add/remove actions ({files}, no cdc files; {}: only the rows entering or leaving the vector)",
                plural(
                    commit.deletion_vector_updates as u64,
                    "deletion-vector update"
                )
            ),
            ChangeSource::AddRemove => format!("from add/remove actions ({files}, no cdc files)"),
            ChangeSource::Nothing => {
                "no data change (no cdc, and no add/remove with dataChange=true)".to_owned()
            }
        };
        writeln!(
            out,
            "  {:<version_width$}  {}  {:<width$}  {rows}: {source}",
            format!("v{}", commit.version),
            format_millis(commit.timestamp_ms),
            commit.operation.as_deref().unwrap_or("-"),
        )?;
    }
    if scan.commits().is_empty() {
        writeln!(out, "  no version lies between the two timestamps")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// describe
// ---------------------------------------------------------------------------------------------

/// Totals over the live files of a snapshot.
#[derive(Debug, Default)]
struct FileTotals {
    files: usize,
    bytes: i64,
    /// Sum of `numRecords` over files that have it.
    rows: u64,
    /// Files whose statistics lack `numRecords`.
    files_without_row_count: usize,
    /// Sum of deletion-vector cardinalities.
    rows_hidden: u64,
    files_with_deletion_vectors: usize,
}

impl FileTotals {
    fn of(files: &[Add]) -> Self {
        let mut totals = Self::default();
        for add in files {
            totals.files += 1;
            totals.bytes += add.size;
            match stats_num_records(add.stats.as_deref()) {
                Some(n) => totals.rows += n,
                None => totals.files_without_row_count += 1,
            }
            if let Some(cardinality) = dv_cardinality(add) {
                totals.rows_hidden += cardinality;
                totals.files_with_deletion_vectors += 1;
            }
        }
        totals
    }

    /// The physical row total, when every file has a row count.
    fn total_rows(&self) -> Option<u64> {
        (self.files_without_row_count == 0).then_some(self.rows)
    }
}

/// `numRecords` of an `add.stats` JSON string.
fn stats_num_records(stats: Option<&str>) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(stats?).ok()?;
    value.get("numRecords")?.as_u64()
}

/// The deletion vector of `add` as its JSON object (camelCase protocol field names).
fn dv_json(add: &Add) -> Option<serde_json::Value> {
    add.deletion_vector
        .as_ref()
        .and_then(|dv| serde_json::to_value(dv).ok())
}

/// How many rows the deletion vector of `add` hides.
fn dv_cardinality(add: &Add) -> Option<u64> {
    dv_json(add)?.get("cardinality")?.as_u64()
}

async fn describe<W: Write>(table: &Table, args: &DescribeArgs, out: &mut W) -> Result<()> {
    let snapshot = load_snapshot(table, &args.uri, args.time_travel).await?;
    let protocol = snapshot.protocol();
    let metadata = snapshot.metadata();
    let reader_features = delta_core::table_features::reader_features(protocol);
    let writer_features = delta_core::table_features::writer_features(protocol);
    let totals = FileTotals::of(snapshot.files());
    let properties: BTreeMap<&String, &Option<String>> = metadata.configuration.iter().collect();
    let txns: BTreeMap<&String, _> = snapshot.app_transactions().iter().collect();
    let domains: BTreeMap<&String, _> = snapshot.domains().iter().collect();

    if args.json {
        let schema_value: serde_json::Value =
            serde_json::from_str(&snapshot.schema().to_json_string())
                .context("cannot render the schema as JSON")?;
        let doc = Json::object([
            ("table", Json::str(snapshot.table_url().as_str())),
            ("version", Json::from(snapshot.version())),
            ("id", Json::str(&metadata.id)),
            ("name", Json::opt(metadata.name.clone())),
            ("description", Json::opt(metadata.description.clone())),
            (
                "createdTime",
                Json::opt(metadata.created_time.map(format_millis)),
            ),
            (
                "protocol",
                Json::object([
                    ("minReaderVersion", Json::from(protocol.min_reader_version)),
                    ("minWriterVersion", Json::from(protocol.min_writer_version)),
                    (
                        "readerFeatures",
                        string_list_opt(protocol.reader_features.as_deref()),
                    ),
                    (
                        "writerFeatures",
                        string_list_opt(protocol.writer_features.as_deref()),
                    ),
                ]),
            ),
            (
                "features",
                Json::object([
                    ("reader", string_list(&reader_features)),
                    ("writer", string_list(&writer_features)),
                ]),
            ),
            (
                "columnMapping",
                Json::str(snapshot.column_mapping().to_string()),
            ),
            (
                "partitionColumns",
                string_list(snapshot.partition_columns()),
            ),
            (
                "properties",
                Json::Object(
                    properties
                        .iter()
                        .map(|(k, v)| ((*k).clone(), Json::opt((*v).clone())))
                        .collect(),
                ),
            ),
            ("schema", Json::from(schema_value)),
            ("numFiles", Json::from(totals.files)),
            ("totalBytes", Json::from(totals.bytes)),
            ("totalRows", Json::opt(totals.total_rows())),
            (
                "filesWithoutRowCount",
                Json::from(totals.files_without_row_count),
            ),
            (
                "rowsHiddenByDeletionVectors",
                Json::from(totals.rows_hidden),
            ),
            (
                "visibleRows",
                Json::opt(
                    totals
                        .total_rows()
                        .map(|r| r.saturating_sub(totals.rows_hidden)),
                ),
            ),
            (
                "appTransactions",
                Json::Array(
                    txns.values()
                        .map(|t| {
                            Json::object([
                                ("appId", Json::str(&t.app_id)),
                                ("version", Json::from(t.version)),
                                ("lastUpdated", Json::opt(t.last_updated.map(format_millis))),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "domains",
                Json::Array(
                    domains
                        .values()
                        .map(|d| {
                            Json::object([
                                ("domain", Json::str(&d.domain)),
                                ("configuration", Json::str(&d.configuration)),
                            ])
                        })
                        .collect(),
                ),
            ),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
        return Ok(());
    }

    let mut text = String::new();
    let mut line = |label: &str, value: &str| {
        text.push_str(&format!("{:<19}{value}\n", format!("{label}:")));
    };
    line("table", snapshot.table_url().as_str());
    line("version", &snapshot.version().to_string());
    line("id", &metadata.id);
    line("name", metadata.name.as_deref().unwrap_or("-"));
    line(
        "description",
        metadata.description.as_deref().unwrap_or("-"),
    );
    line(
        "created",
        &metadata
            .created_time
            .map_or_else(|| "-".to_owned(), format_millis),
    );
    line(
        "protocol",
        &format!(
            "reader v{}, writer v{}{}",
            protocol.min_reader_version,
            protocol.min_writer_version,
            if protocol.min_reader_version >= 3 || protocol.min_writer_version >= 7 {
                " (table features)"
            } else {
                " (legacy versions; features implied)"
            }
        ),
    );
    line("reader features", &list_or_none(&reader_features));
    line("writer features", &list_or_none(&writer_features));
    line("column mapping", snapshot.column_mapping().as_str());
    line(
        "partition columns",
        &list_or_none(snapshot.partition_columns()),
    );
    line("files", &totals.files.to_string());
    line("total bytes", &totals.bytes.to_string());
    let rows = match totals.total_rows() {
        Some(rows) => format!("{rows} (from file statistics)"),
        None => format!(
            "unknown ({} of {} files have no row count in their statistics)",
            totals.files_without_row_count, totals.files
        ),
    };
    line("total rows", &rows);
    let hidden = if totals.files_with_deletion_vectors == 0 {
        "0 (no deletion vectors)".to_owned()
    } else {
        format!(
            "{} (deleted through the deletion vectors of {})",
            totals.rows_hidden,
            plural(totals.files_with_deletion_vectors as u64, "file")
        )
    };
    line("hidden rows", &hidden);
    if let Some(rows) = totals.total_rows() {
        line(
            "visible rows",
            &rows.saturating_sub(totals.rows_hidden).to_string(),
        );
    }
    if properties.is_empty() {
        line("properties", "(none)");
    } else {
        text.push_str("properties:\n");
        for (key, value) in &properties {
            text.push_str(&format!(
                "  {key} = {}\n",
                value.as_deref().unwrap_or("null")
            ));
        }
    }
    if txns.is_empty() {
        text.push_str(&format!("{:<19}(none)\n", "app transactions:"));
    } else {
        text.push_str("app transactions:\n");
        for txn in txns.values() {
            let when = txn
                .last_updated
                .map(|ms| format!(" (last updated {})", format_millis(ms)))
                .unwrap_or_default();
            text.push_str(&format!(
                "  {}: version {}{when}\n",
                txn.app_id, txn.version
            ));
        }
    }
    if domains.is_empty() {
        text.push_str(&format!("{:<19}(none)\n", "domains:"));
    } else {
        text.push_str("domains:\n");
        for domain in domains.values() {
            text.push_str(&format!("  {}: {}\n", domain.domain, domain.configuration));
        }
    }
    text.push_str("schema:\n");
    text.push_str(&schema_tree(
        snapshot.schema(),
        snapshot.column_mapping().as_str() != "none",
    ));
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// `1 byte`, `2 bytes` (sizes from the log are signed).
fn bytes(n: i64) -> String {
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

fn string_list(items: &[String]) -> Json {
    Json::Array(items.iter().map(|s| Json::str(s.as_str())).collect())
}

fn string_list_opt(items: Option<&[String]>) -> Json {
    items.map_or(Json::Null, string_list)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// The schema as a Spark-style tree:
///
/// ```text
/// root
///  |-- id: long (nullable = false)
///  |-- address: struct (nullable = true)
///  |    |-- city: string (nullable = true)
/// ```
///
/// With column mapping on, each field also shows its physical name and id.
fn schema_tree(schema: &StructType, column_mapping: bool) -> String {
    let mut out = String::from("root\n");
    for field in &schema.fields {
        field_tree(field, 1, column_mapping, &mut out);
    }
    out
}

fn field_tree(field: &StructField, depth: usize, column_mapping: bool, out: &mut String) {
    let mut mapping = String::new();
    if column_mapping
        && let Some(physical) = field
            .metadata
            .get("delta.columnMapping.physicalName")
            .and_then(|v| v.as_str())
    {
        mapping.push_str(&format!(" [physical name {physical}"));
        if let Some(id) = field.metadata.get("delta.columnMapping.id") {
            mapping.push_str(&format!(", id {id}"));
        }
        mapping.push(']');
    }
    out.push_str(&format!(
        "{}|-- {}: {} (nullable = {}){mapping}\n",
        indent(depth),
        field.name,
        type_label(&field.data_type),
        field.nullable
    ));
    type_children(&field.data_type, depth + 1, column_mapping, out);
}

fn indent(depth: usize) -> String {
    " |   ".repeat(depth.saturating_sub(1)) + " "
}

pub(crate) fn type_label(data_type: &DataType) -> String {
    match data_type {
        DataType::Primitive(p) => p.to_string(),
        DataType::Struct(_) => "struct".to_owned(),
        DataType::Array(_) => "array".to_owned(),
        DataType::Map(_) => "map".to_owned(),
    }
}

fn type_children(data_type: &DataType, depth: usize, column_mapping: bool, out: &mut String) {
    match data_type {
        DataType::Primitive(_) => {}
        DataType::Struct(s) => {
            for field in &s.fields {
                field_tree(field, depth, column_mapping, out);
            }
        }
        DataType::Array(a) => {
            out.push_str(&format!(
                "{}|-- element: {} (containsNull = {})\n",
                indent(depth),
                type_label(&a.element_type),
                a.contains_null
            ));
            type_children(&a.element_type, depth + 1, column_mapping, out);
        }
        DataType::Map(m) => {
            out.push_str(&format!(
                "{}|-- key: {}\n",
                indent(depth),
                type_label(&m.key_type)
            ));
            type_children(&m.key_type, depth + 1, column_mapping, out);
            out.push_str(&format!(
                "{}|-- value: {} (valueContainsNull = {})\n",
                indent(depth),
                type_label(&m.value_type),
                m.value_contains_null
            ));
            type_children(&m.value_type, depth + 1, column_mapping, out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// history
// ---------------------------------------------------------------------------------------------

/// `history` fails with "not a delta table" when no commit file is left, even if a
/// checkpoint makes the table readable (its older commits were cleaned up): say so.
async fn explain_missing_commits(table: &Table, error: delta_core::Error) -> anyhow::Error {
    if matches!(error, delta_core::Error::NotATable { .. })
        && let Ok(snapshot) = table.snapshot().await
    {
        return anyhow::anyhow!(
            "no commit files are retained: the table is at version {} but its log holds only \
             a checkpoint (older commits were cleaned up)",
            snapshot.version()
        );
    }
    error.into()
}

async fn history<W: Write>(table: &Table, args: &HistoryArgs, out: &mut W) -> Result<()> {
    let entries = match table.history(args.limit).await {
        Ok(entries) => entries,
        Err(e) => {
            return Err(explain_missing_commits(table, e).await)
                .with_context(|| format!("cannot read the history of {}", args.uri));
        }
    };
    let version_width = entries
        .iter()
        .map(|e| e.version.to_string().len())
        .max()
        .unwrap_or(1);
    let operation_width = entries
        .iter()
        .map(|e| operation(e.commit_info.as_ref()).len())
        .max()
        .unwrap_or(1);
    for entry in &entries {
        let info = entry.commit_info.as_ref();
        let parameters = info
            .and_then(|ci| ci.0.get("operationParameters"))
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let metrics = info
            .and_then(|ci| ci.0.get("operationMetrics"))
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if args.json {
            let line = Json::object([
                ("version", Json::from(entry.version)),
                ("timestamp", Json::str(format_millis(entry.timestamp_ms))),
                ("timestampMs", Json::from(entry.timestamp_ms)),
                ("operation", Json::opt(info.and_then(CommitInfo::operation))),
                ("parameters", Json::from(parameters)),
                ("metrics", Json::from(metrics)),
                (
                    "engineInfo",
                    Json::opt(
                        info.and_then(|ci| ci.0.get("engineInfo"))
                            .and_then(|v| v.as_str()),
                    ),
                ),
                (
                    "commitInfo",
                    Json::opt(info.map(|ci| serde_json::Value::Object(ci.0.clone()))),
                ),
            ]);
            writeln!(out, "{}", line.to_json_string())?;
        } else {
            writeln!(
                out,
                "{:>version_width$}  {}  {:<operation_width$}  {}  {}",
                entry.version,
                format_millis(entry.timestamp_ms),
                operation(info),
                compact(&parameters),
                compact(&metrics),
            )?;
        }
    }
    Ok(())
}

fn operation(info: Option<&CommitInfo>) -> &str {
    info.and_then(CommitInfo::operation).unwrap_or("-")
}

/// Compact JSON, `{}` for a missing value.
fn compact(value: &serde_json::Value) -> String {
    if value.is_null() {
        "{}".to_owned()
    } else {
        value.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// files
// ---------------------------------------------------------------------------------------------

async fn files<W: Write>(table: &Table, args: &FilesArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let snapshot = load_snapshot(table, uri, args.time_travel).await?;
    let version = snapshot.version();
    let mut builder = snapshot.scan();
    if let Some(text) = &args.predicate {
        builder = builder.with_predicate(parse_predicate(text)?);
    }
    let scan = builder
        .build()
        .with_context(|| format!("cannot plan a scan of {uri} at version {version}"))?;
    let planned = scan.planned_files();
    let schema = snapshot.schema();
    let partition_columns = snapshot.partition_columns();
    let kept = planned.iter().filter(|f| f.is_kept()).count();

    let mode = snapshot.column_mapping();
    for file in planned {
        if args.json {
            let line = file_json(file, schema, mode, partition_columns);
            writeln!(out, "{}", line.to_json_string())?;
        } else {
            write_file_text(
                out,
                file,
                schema,
                mode,
                partition_columns,
                args.predicate.is_some(),
            )?;
        }
    }
    if args.json {
        let summary = Json::object([
            ("kept", Json::from(kept)),
            ("total", Json::from(planned.len())),
        ]);
        writeln!(out, "{}", summary.to_json_string())?;
    } else if args.predicate.is_some() {
        writeln!(out, "kept {kept} of {} files", planned.len())?;
    } else {
        let totals = FileTotals::of(snapshot.files());
        let rows = totals
            .total_rows()
            .map_or_else(|| "unknown".to_owned(), |r| r.to_string());
        let hidden = if totals.rows_hidden > 0 {
            format!(
                ", {} of them hidden by deletion vectors",
                totals.rows_hidden
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "{}, {} bytes, {rows} rows{hidden}",
            plural(totals.files as u64, "file"),
            totals.bytes
        )?;
    }
    Ok(())
}

/// Partition values in partition-column order (other keys after them, alphabetically).
fn ordered_partition_values<'a>(
    values: &'a PartitionValues,
    partition_columns: &[String],
) -> Vec<(&'a String, &'a Option<String>)> {
    let mut entries: Vec<_> = values.iter().collect();
    entries.sort_by_key(|(name, _)| {
        (
            partition_columns
                .iter()
                .position(|c| c == *name)
                .unwrap_or(usize::MAX),
            (*name).clone(),
        )
    });
    entries
}

fn verdict_parts(verdict: &Verdict) -> (&'static str, Option<&str>) {
    match verdict {
        Verdict::Keep => ("kept", None),
        Verdict::Skip(reason) => ("skipped", Some(reason.as_str())),
    }
}

/// A file's statistics as written in the log (`add.stats`), keyed by logical column names.
///
/// These are shown instead of the planner's parsed [`delta_core::scan::FileStats`], whose
/// bounds are deliberately widened for safe pruning (a float bound moves by an ulp, a
/// millisecond timestamp bound by up to 999 µs), so they would not match the log.
struct LogStats {
    num_records: Option<u64>,
    min_values: Vec<(String, Json)>,
    max_values: Vec<(String, Json)>,
    null_count: Vec<(String, Json)>,
    /// `tightBounds`; absent means true.
    tight_bounds: bool,
}

impl LogStats {
    fn of(add: &Add, schema: &StructType, mode: ColumnMappingMode) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(add.stats.as_deref()?).ok()?;
        let section = |key: &str| match value.get(key) {
            Some(serde_json::Value::Object(map)) => logical_stats(map, &schema.fields, mode),
            _ => Vec::new(),
        };
        Some(Self {
            num_records: value.get("numRecords").and_then(serde_json::Value::as_u64),
            min_values: section("minValues"),
            max_values: section("maxValues"),
            null_count: section("nullCount"),
            tight_bounds: value
                .get("tightBounds")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(true),
        })
    }
}

/// A stats object (keyed by physical names) re-keyed by the logical names of `fields`, in
/// schema order, recursing into structs; keys that match no field follow, as written.
fn logical_stats(
    map: &serde_json::Map<String, serde_json::Value>,
    fields: &[StructField],
    mode: ColumnMappingMode,
) -> Vec<(String, Json)> {
    let mut used = HashSet::new();
    let mut out = Vec::with_capacity(map.len());
    for field in fields {
        let physical = field.physical_name(mode);
        let (key, value) = match (map.get(physical), map.get(&field.name)) {
            (Some(v), _) => (physical, v),
            (None, Some(v)) => (field.name.as_str(), v),
            (None, None) => continue,
        };
        used.insert(key.to_owned());
        let value = match (&field.data_type, value) {
            (DataType::Struct(inner), serde_json::Value::Object(nested)) => {
                Json::Object(logical_stats(nested, &inner.fields, mode))
            }
            _ => Json::from(value.clone()),
        };
        out.push((field.name.clone(), value));
    }
    for (key, value) in map {
        if !used.contains(key) {
            out.push((key.clone(), Json::from(value.clone())));
        }
    }
    out
}

/// Nested stats flattened to `a.b` column paths.
fn flatten_stats(entries: &[(String, Json)], prefix: &str, out: &mut Vec<(String, Json)>) {
    for (key, value) in entries {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Json::Object(inner) => flatten_stats(inner, &path, out),
            leaf => out.push((path, leaf.clone())),
        }
    }
}

fn file_json(
    file: &PlannedFile,
    schema: &StructType,
    mode: ColumnMappingMode,
    partition_columns: &[String],
) -> Json {
    let add = &file.add;
    let (status, reason) = verdict_parts(&file.verdict);
    let partition_values = Json::Object(
        ordered_partition_values(&add.partition_values, partition_columns)
            .into_iter()
            .map(|(k, v)| (k.clone(), Json::opt(v.clone())))
            .collect(),
    );
    let stats = LogStats::of(add, schema, mode);
    let rows = file
        .num_records
        .or_else(|| stats.as_ref().and_then(|s| s.num_records));
    let (min_values, max_values, null_count, tight_bounds) = match stats {
        Some(stats) => (
            Json::Object(stats.min_values),
            Json::Object(stats.max_values),
            Json::Object(stats.null_count),
            Json::Bool(stats.tight_bounds),
        ),
        None => (Json::Null, Json::Null, Json::Null, Json::Null),
    };
    Json::object([
        ("path", Json::str(&add.path)),
        ("size", Json::from(add.size)),
        ("rows", Json::opt(rows)),
        ("partitionValues", partition_values),
        ("deletionVector", Json::opt(dv_json(add))),
        ("minValues", min_values),
        ("maxValues", max_values),
        ("nullCount", null_count),
        ("tightBounds", tight_bounds),
        ("status", Json::str(status)),
        ("reason", Json::opt(reason)),
    ])
}

fn write_file_text<W: Write>(
    out: &mut W,
    file: &PlannedFile,
    schema: &StructType,
    mode: ColumnMappingMode,
    partition_columns: &[String],
    with_status: bool,
) -> Result<()> {
    let add = &file.add;
    let (status, reason) = verdict_parts(&file.verdict);
    let pad = if with_status { "         " } else { "  " };
    if with_status {
        writeln!(out, "{status:<8} {}", add.path)?;
        if let Some(reason) = reason {
            writeln!(out, "{pad}reason: {reason}")?;
        }
    } else {
        writeln!(out, "{}", add.path)?;
    }

    let stats = LogStats::of(add, schema, mode);
    let rows = file
        .num_records
        .or_else(|| stats.as_ref().and_then(|s| s.num_records));
    let mut details = vec![bytes(add.size)];
    details.push(match rows {
        Some(n) => plural(n, "row"),
        None => "rows unknown (no stats)".to_owned(),
    });
    if !add.partition_values.is_empty() {
        details.push(format!(
            "partition {}",
            partition_text(&add.partition_values, partition_columns)
        ));
    }
    if let Some(dv) = dv_json(add) {
        let cardinality = dv.get("cardinality").and_then(serde_json::Value::as_u64);
        let storage = dv
            .get("storageType")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?");
        details.push(format!(
            "deletion vector hides {} (storage type {storage})",
            cardinality.map_or_else(|| "? rows".to_owned(), |c| plural(c, "row"))
        ));
    }
    writeln!(out, "{pad}{}", details.join(", "))?;

    let Some(stats) = stats else {
        return Ok(());
    };
    let (mut min, mut max, mut nulls) = (Vec::new(), Vec::new(), Vec::new());
    flatten_stats(&stats.min_values, "", &mut min);
    flatten_stats(&stats.max_values, "", &mut max);
    flatten_stats(&stats.null_count, "", &mut nulls);
    // Columns in the order they first appear (each section is in schema order).
    let mut names: Vec<&String> = Vec::new();
    for (name, _) in nulls.iter().chain(&min).chain(&max) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let lookup = |list: &[(String, Json)], name: &str| -> Option<String> {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_json_string())
    };
    let mut columns: Vec<String> = Vec::new();
    for name in names {
        let mut text = name.clone();
        match (lookup(&min, name), lookup(&max, name)) {
            (Some(lo), Some(hi)) => text.push_str(&format!(" {lo}..{hi}")),
            (Some(lo), None) => text.push_str(&format!(" >= {lo}")),
            (None, Some(hi)) => text.push_str(&format!(" <= {hi}")),
            (None, None) => {}
        }
        match nulls.iter().find(|(n, _)| n == name).map(|(_, v)| v) {
            Some(Json::Number(n)) if n.as_u64() == Some(0) => {}
            Some(Json::Number(n)) => {
                let count = n.as_u64().unwrap_or_default();
                text.push_str(&format!(" ({})", plural(count, "null")));
            }
            _ => {}
        }
        if text != *name {
            columns.push(text);
        }
    }
    if !stats.tight_bounds {
        columns.push(
            "(bounds not tight: rows hidden by a deletion vector may hold the min or max)"
                .to_owned(),
        );
    }
    if !columns.is_empty() {
        writeln!(out, "{pad}stats: {}", columns.join(", "))?;
    }
    Ok(())
}

/// `{k=v, k2=null}` in partition-column order.
fn partition_text(values: &PartitionValues, partition_columns: &[String]) -> String {
    let inner: Vec<String> = ordered_partition_values(values, partition_columns)
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

// ---------------------------------------------------------------------------------------------
// log
// ---------------------------------------------------------------------------------------------

async fn log<W: Write>(table: &Table, args: &LogArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let version = match args.version {
        Some(version) => version,
        None => match table.history(Some(1)).await {
            Ok(entries) => entries
                .first()
                .map(|entry| entry.version)
                .with_context(|| format!("cannot find the latest commit of {uri}: no commits"))?,
            Err(e) => {
                return Err(explain_missing_commits(table, e).await)
                    .with_context(|| format!("cannot find the latest commit of {uri}"));
            }
        },
    };
    let actions = table
        .commit_actions(version)
        .await
        .with_context(|| format!("cannot read commit {version} of {uri}"))?;

    let removed: HashSet<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Remove(r) => Some(r.path.as_str()),
            _ => None,
        })
        .collect();
    let added: HashSet<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Add(a) => Some(a.path.as_str()),
            _ => None,
        })
        .collect();

    let noun = if actions.len() == 1 {
        "action"
    } else {
        "actions"
    };
    writeln!(
        out,
        "version {version} of {uri}: {} {noun} in _delta_log/{version:020}.json",
        actions.len()
    )?;
    for action in &actions {
        writeln!(out)?;
        writeln!(out, "{}", explain(action, &added, &removed))?;
        match action.to_json_value() {
            Some(value) => writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?,
            None => writeln!(out, "(content not shown: unknown action)")?,
        }
    }
    Ok(())
}

/// A one-line English explanation of what `action` does to the table.
#[must_use]
pub fn explain(action: &Action, added: &HashSet<&str>, removed: &HashSet<&str>) -> String {
    match action {
        Action::Add(add) => explain_add(add, removed),
        Action::Remove(remove) => {
            let mut text = format!("remove: removes logical file {} (tombstone", remove.path);
            if let Some(ts) = remove.deletion_timestamp {
                text.push_str(&format!(", deletion timestamp {}", format_millis(ts)));
            }
            text.push(')');
            if let Some(size) = remove.size {
                text.push_str(&format!(", {}", bytes(size)));
            }
            if let Some(dv) = remove
                .deletion_vector
                .as_ref()
                .and_then(|dv| serde_json::to_value(dv).ok())
            {
                let hidden = dv.get("cardinality").and_then(serde_json::Value::as_u64);
                text.push_str(&format!(
                    "; the removed logical file had a deletion vector hiding {}",
                    hidden.map_or_else(|| "? rows".to_owned(), |c| plural(c, "row"))
                ));
            }
            if added.contains(remove.path.as_str()) {
                text.push_str(
                    "; the same data file is added again in this commit (with a new deletion \
                     vector), so only its set of visible rows changes",
                );
            } else {
                text.push_str(
                    "; the data file stays on storage until VACUUM deletes it, so older \
                     versions can still read it",
                );
            }
            text.push_str(&format!(" [dataChange={}]", remove.data_change));
            if !remove.data_change {
                text.push_str(" (rearranges data, e.g. OPTIMIZE: no rows were deleted)");
            }
            text
        }
        Action::Metadata(m) => {
            let columns = delta_core::schema::StructType::parse(&m.schema_string).map_or_else(
                |_| "unparsable schema".to_owned(),
                |s| {
                    let n = s.fields.len();
                    format!("{n} column{}", if n == 1 { "" } else { "s" })
                },
            );
            let properties: BTreeMap<&String, &Option<String>> = m.configuration.iter().collect();
            let properties: Vec<String> = properties
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
                .collect();
            let mut text = format!(
                "metaData: sets the schema ({columns}), partition columns [{}], properties {{{}}}",
                m.partition_columns.join(", "),
                properties.join(", ")
            );
            text.push_str(&format!(" of table {}", m.id));
            if let Some(name) = &m.name {
                text.push_str(&format!(" ({name})"));
            }
            if let Some(mode) = m
                .property("delta.columnMapping.mode")
                .filter(|mode| !mode.eq_ignore_ascii_case("none"))
            {
                text.push_str(&format!(
                    "; column mapping `{mode}`: data files, statistics and partition values name columns by \
                     their delta.columnMapping.physicalName{}, so a rename or a drop changes only \
                     this schema",
                    if mode.eq_ignore_ascii_case("id") {
                        " and parquet field id (delta.columnMapping.id)"
                    } else {
                        ""
                    }
                ));
            }
            text.push_str("; replaces any earlier metaData");
            text
        }
        Action::Protocol(p) => {
            let reader = delta_core::table_features::reader_features(p);
            let writer = delta_core::table_features::writer_features(p);
            let how = if p.min_reader_version >= 3 || p.min_writer_version >= 7 {
                "features"
            } else {
                "features implied by the legacy versions"
            };
            format!(
                "protocol: requires reader v{} / writer v{} ({how}: reader [{}], writer [{}]); \
                 clients that lack any of them must refuse the table",
                p.min_reader_version,
                p.min_writer_version,
                reader.join(", "),
                writer.join(", ")
            )
        }
        Action::CommitInfo(ci) => {
            let operation = ci.operation().unwrap_or("(unnamed)");
            let when = ci
                .in_commit_timestamp()
                .or_else(|| ci.timestamp())
                .map_or_else(|| "an unrecorded time".to_owned(), format_millis);
            let engine =
                ci.0.get("engineInfo")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("an unnamed engine");
            let mut text =
                format!("commitInfo: provenance — operation {operation} at {when} by {engine}");
            if ci.in_commit_timestamp().is_some() {
                text.push_str(" (in-commit timestamp: the authoritative commit time)");
            } else {
                text.push_str(" (informational: readers do not need it to rebuild the table)");
            }
            text
        }
        Action::Txn(t) => {
            let mut text = format!(
                "txn: records that application {} committed its version {}",
                t.app_id, t.version
            );
            if let Some(ts) = t.last_updated {
                text.push_str(&format!(" at {}", format_millis(ts)));
            }
            text.push_str(
                " (lets the application skip a batch it already wrote: idempotent writes)",
            );
            text
        }
        Action::Cdc(c) => {
            let mut text = format!("cdc: adds change data file {} ({}", c.path, bytes(c.size));
            if !c.partition_values.is_empty() {
                text.push_str(&format!(
                    ", partition {}",
                    partition_text(&c.partition_values, &[])
                ));
            }
            text.push_str(
                ") holding this commit's row-level changes for the change data feed; it is never \
                 part of the table's rows",
            );
            text
        }
        Action::DomainMetadata(d) => {
            let owner = if d.domain.starts_with("delta.") {
                "system-controlled"
            } else {
                "user-controlled"
            };
            if d.removed {
                format!(
                    "domainMetadata: removes the {owner} metadata domain {}",
                    d.domain
                )
            } else {
                format!(
                    "domainMetadata: sets the configuration of the {owner} metadata domain {} \
                     ({} bytes)",
                    d.domain,
                    d.configuration.len()
                )
            }
        }
        Action::Sidecar(s) => format!(
            "sidecar: points to the checkpoint sidecar file {} ({} bytes) that holds file \
             actions of a V2 checkpoint",
            s.path, s.size_in_bytes
        ),
        Action::CheckpointMetadata(c) => format!(
            "checkpointMetadata: marks this file as a V2 checkpoint of version {}",
            c.version
        ),
        Action::Unknown(name) => format!(
            "{name}: an action this reader does not know; the protocol says readers ignore \
             unknown actions"
        ),
    }
}

fn explain_add(add: &Add, removed: &HashSet<&str>) -> String {
    let rows = stats_num_records(add.stats.as_deref());
    let mut details = vec![bytes(add.size)];
    details.push(rows.map_or_else(
        || "rows unknown (no stats)".to_owned(),
        |n| plural(n, "row"),
    ));
    if !add.partition_values.is_empty() {
        details.push(format!(
            "partition {}",
            partition_text(&add.partition_values, &[])
        ));
    }
    let mut text = match dv_json(add) {
        Some(dv) => {
            let hidden = dv
                .get("cardinality")
                .and_then(serde_json::Value::as_u64)
                .map_or_else(|| "? rows".to_owned(), |c| plural(c, "row"));
            let storage = match dv.get("storageType").and_then(serde_json::Value::as_str) {
                Some("u") => "stored in a deletion vector file under the table root",
                Some("i") => "stored inline in the log",
                Some("p") => "stored in a file at an absolute path",
                _ => "of an unknown storage type",
            };
            let verb = if removed.contains(add.path.as_str()) {
                "re-adds"
            } else {
                "adds"
            };
            format!(
                "add: {verb} file {} with deletion vector hiding {hidden} ({storage}; {})",
                add.path,
                details.join(", ")
            )
        }
        None => format!("add: adds data file {} ({})", add.path, details.join(", ")),
    };
    text.push_str(&format!(" [dataChange={}]", add.data_change));
    if !add.data_change {
        text.push_str(" (rearranges existing rows, e.g. OPTIMIZE: no new data)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn num_records_from_stats() {
        assert_eq!(stats_num_records(Some(r#"{"numRecords":7}"#)), Some(7));
        assert_eq!(stats_num_records(Some(r#"{"minValues":{}}"#)), None);
        assert_eq!(stats_num_records(Some("not json")), None);
        assert_eq!(stats_num_records(None), None);
    }

    #[test]
    fn schema_tree_is_spark_like() {
        let schema = StructType::parse(
            r#"{"type":"struct","fields":[
                {"name":"id","type":"long","nullable":false,"metadata":{}},
                {"name":"s","type":{"type":"struct","fields":[{"name":"x","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},
                {"name":"a","type":{"type":"array","elementType":"integer","containsNull":true},"nullable":true,"metadata":{}},
                {"name":"m","type":{"type":"map","keyType":"string","valueType":"double","valueContainsNull":false},"nullable":true,"metadata":{}}
            ]}"#,
        )
        .expect("schema");
        let tree = schema_tree(&schema, false);
        assert_eq!(
            tree,
            "root\n \
             |-- id: long (nullable = false)\n \
             |-- s: struct (nullable = true)\n \
             |    |-- x: string (nullable = true)\n \
             |-- a: array (nullable = true)\n \
             |    |-- element: integer (containsNull = true)\n \
             |-- m: map (nullable = true)\n \
             |    |-- key: string\n \
             |    |-- value: double (valueContainsNull = false)\n"
        );
    }

    #[test]
    fn explains_column_mapping_in_metadata() {
        let none = HashSet::new();
        let metadata = |mode: Option<&str>| {
            Action::Metadata(delta_core::action::Metadata {
                id: "t".to_owned(),
                schema_string: r#"{"type":"struct","fields":[]}"#.to_owned(),
                configuration: mode
                    .map(|m| [("delta.columnMapping.mode".to_owned(), Some(m.to_owned()))].into())
                    .unwrap_or_default(),
                ..delta_core::action::Metadata::default()
            })
        };
        let name = explain(&metadata(Some("name")), &none, &none);
        assert!(name.contains("column mapping `name`"), "{name}");
        assert!(!name.contains("field id"), "{name}");
        let id = explain(&metadata(Some("id")), &none, &none);
        assert!(id.contains("parquet field id"), "{id}");
        for plain in [metadata(None), metadata(Some("none"))] {
            assert!(!explain(&plain, &none, &none).contains("column mapping"));
        }
    }

    #[test]
    fn explains_txn_and_unknown() {
        let none = HashSet::new();
        let txn = Action::Txn(delta_core::action::Txn {
            app_id: "job".to_owned(),
            version: 3,
            last_updated: None,
        });
        assert!(
            explain(&txn, &none, &none)
                .starts_with("txn: records that application job committed its version 3")
        );
        let unknown = Action::Unknown("futureAction".to_owned());
        assert!(explain(&unknown, &none, &none).starts_with("futureAction: "));
    }
}
