//! `medilake table write|delete|update|checkpoint|set-property|add-constraint`: the commands
//! that make new versions.
//!
//! Each prints what it committed on two lines of text (or, with `--json`, one JSON object):
//!
//! ```text
//! version 3: 120 rows written (append)
//! files: 2 added (10482 bytes), 0 removed (0 bytes)
//! ```
//!
//! The JSON object has `operation`, `version` (`null` when nothing was committed) and the
//! operation's metrics: `filesAdded`, `filesRemoved`, `bytesAdded`, `bytesRemoved`,
//! `rowsWritten` (every row written to a new file, copies included), `rowsAffected` (rows
//! deleted, replaced or updated), `rowsCopied` (unchanged rows copied into rewritten files)
//! and `attempts` (commit attempts; more than one when concurrent writers won first).

use std::io::Write;

use anyhow::{Context, Result, anyhow, bail};
use arrow::array::RecordBatch;
use delta_core::expression::Expression;
use delta_core::{OperationReport, SaveMode, Table};

use super::plural;
use crate::cli::{
    AddConstraintArgs, CheckpointArgs, DeleteArgs, DropColumnArgs, RenameColumnArgs,
    SetPropertyArgs, UpdateArgs, WriteArgs, WriteMode,
};
use crate::input::{InputFile, InputPlan};
use crate::output::Json;

// ---------------------------------------------------------------------------------------------
// write
// ---------------------------------------------------------------------------------------------

/// `table write`: stream the input files into the table (created when missing).
///
/// # Errors
/// Bad input files (named, with the line), schema mismatches, constraint violations
/// (named, with the count of violating rows), commit conflicts, storage errors.
pub async fn write<W: Write>(table: &Table, args: &WriteArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let context = || format!("cannot write to table {uri}");
    let files = args
        .input
        .iter()
        .map(|name| InputFile::new(name, args.format))
        .collect::<Result<Vec<_>>>()?;
    let replace_where = args
        .replace_where
        .as_deref()
        .map(|text| {
            delta_core::expression::parse(text).context("invalid --replace-where predicate")
        })
        .transpose()?;
    let replaces_some = replace_where.is_some() || args.dynamic_partition_overwrite;
    if args.mode == Some(WriteMode::Append) && replaces_some {
        bail!(
            "--replace-where and --dynamic-partition-overwrite replace rows: use them with \
             --mode overwrite or without --mode"
        );
    }
    let overwrite = args.mode == Some(WriteMode::Overwrite) || replaces_some;

    let existing = match table.snapshot().await {
        Ok(snapshot) => Some(snapshot),
        Err(delta_core::Error::NotATable { .. }) => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read table {uri}")),
    };
    if existing.is_some() && !args.properties.is_empty() {
        bail!(
            "--property sets properties of a new table; table {uri} exists: use `medilake table set-property`"
        );
    }
    let table_schema = existing.as_ref().map(delta_core::Snapshot::arrow_schema);
    let merge_schema = args.merge_schema;
    let plan = tokio::task::spawn_blocking(move || {
        InputPlan::new(files, table_schema.as_deref(), merge_schema)
    })
    .await
    .context("the input planning task failed")?
    .with_context(context)?;
    let target = plan.target().clone();

    // Read on a blocking thread, two batches ahead of the writer: parsing and encoding
    // overlap, and memory stays bounded.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        for item in plan.batches() {
            if sender.blocking_send(item).is_err() {
                break;
            }
        }
    });

    // Look for the first row before deciding whether there is anything to do.
    let mut prefix: Vec<RecordBatch> = Vec::new();
    while let Some(item) = receiver.recv().await {
        let batch = item.with_context(context)?;
        let has_rows = batch.num_rows() > 0;
        prefix.push(batch);
        if has_rows {
            break;
        }
    }
    if prefix.iter().all(|b| b.num_rows() == 0) {
        if existing.is_some() && (!overwrite || args.dynamic_partition_overwrite) {
            producer.await.ok();
            return print_nothing(
                out,
                args.json,
                "WRITE",
                "nothing to write: the input files hold no rows",
            );
        }
        // Create an empty table with the input's schema, or overwrite with no rows.
        prefix = vec![RecordBatch::new_empty(target)];
    }

    // An input error surfaces inside delta-core as a placeholder; the real error (with the
    // file and line) is kept and reported instead.
    let (batches, input_errors) = super::engine_input(prefix, receiver, "input files");

    let mut builder = table
        .write()
        .with_mode(if overwrite {
            SaveMode::Overwrite
        } else {
            SaveMode::Append
        })
        .with_merge_schema(args.merge_schema);
    for (key, value) in &args.properties {
        builder = builder.with_property(key.as_str(), value.as_str());
    }
    if let Some(columns) = &args.partition_by {
        builder = builder.with_partition_columns(
            columns
                .iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty()),
        );
    }
    if let Some(predicate) = replace_where {
        builder = builder.with_replace_where(predicate);
    }
    if args.dynamic_partition_overwrite {
        builder = builder.with_dynamic_partition_overwrite();
    }
    let outcome = builder.execute(batches).await;
    // The writer dropped the stream: the producer stops at its next send.
    producer.await.ok();
    let report = match outcome {
        Ok(report) => report,
        Err(e) => return Err(input_errors.explain(e).context(context())),
    };
    let mode = if args.dynamic_partition_overwrite {
        "dynamic partition overwrite"
    } else if args.replace_where.is_some() {
        "overwrite with --replace-where"
    } else if overwrite {
        "overwrite"
    } else {
        "append"
    };
    let new_rows = report.rows_written.saturating_sub(report.rows_copied);
    let mut summary = format!("{} written ({mode})", plural(new_rows, "row"));
    if report.rows_affected > 0 {
        summary.push_str(&format!(
            ", {} replaced",
            plural(report.rows_affected, "row")
        ));
    } else if overwrite && report.files_removed > 0 {
        summary.push_str(&format!(
            ", the rows of {} replaced",
            plural(report.files_removed, "file")
        ));
    }
    print_report(out, args.json, "WRITE", &report, &summary)
}

// ---------------------------------------------------------------------------------------------
// delete, update
// ---------------------------------------------------------------------------------------------

/// `table delete`.
///
/// # Errors
/// Bad predicates, conflicts (a concurrent commit touched the same files), storage errors.
pub async fn delete<W: Write>(table: &Table, args: &DeleteArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let predicate = rows_predicate(args.predicate.as_deref(), args.all)?;
    let report = table
        .delete(predicate)
        .await
        .with_context(|| format!("cannot delete from table {uri}"))?;
    if report.version.is_none() {
        return print_nothing(out, args.json, "DELETE", "nothing to delete: no rows match");
    }
    let mut summary = format!("{} deleted", plural(report.rows_affected, "row"));
    if report.rows_copied > 0 {
        summary.push_str(&format!(
            ", {} copied into rewritten files",
            plural(report.rows_copied, "row")
        ));
    }
    print_report(out, args.json, "DELETE", &report, &summary)
}

/// `table update`.
///
/// # Errors
/// A malformed `--set` list or predicate, unknown columns, values of the wrong type,
/// constraint violations, conflicts, storage errors.
pub async fn update<W: Write>(table: &Table, args: &UpdateArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let assignments = parse_assignments(&args.set)?;
    let predicate = rows_predicate(args.predicate.as_deref(), args.all)?;
    let report = table
        .update(&assignments, predicate)
        .await
        .with_context(|| format!("cannot update table {uri}"))?;
    if report.version.is_none() {
        return print_nothing(out, args.json, "UPDATE", "nothing to update: no rows match");
    }
    let mut summary = format!("{} updated", plural(report.rows_affected, "row"));
    if report.rows_copied > 0 {
        summary.push_str(&format!(
            ", {} copied into rewritten files",
            plural(report.rows_copied, "row")
        ));
    }
    print_report(out, args.json, "UPDATE", &report, &summary)
}

/// The `--where` predicate, or `None` for `--all`.
fn rows_predicate(text: Option<&str>, all: bool) -> Result<Option<Expression>> {
    match (text, all) {
        (Some(text), false) => delta_core::expression::parse(text)
            .context("invalid --where predicate")
            .map(Some),
        (None, true) => Ok(None),
        _ => bail!("give exactly one of --where EXPR and --all"),
    }
}

/// Parse `col = expr, col2 = expr`: assignments are separated by commas outside quotes
/// and parentheses; the column may be quoted with backquotes or double quotes; each value
/// is parsed by the predicate language (a literal or a column name).
///
/// # Errors
/// An empty list, an assignment without `=` or without a column, an unparsable value,
/// or a column set twice. Values are not quoted in messages (they may be patient data).
pub fn parse_assignments(text: &str) -> Result<Vec<(String, Expression)>> {
    let mut assignments: Vec<(String, Expression)> = Vec::new();
    for (index, part) in split_top_level(text, ',').into_iter().enumerate() {
        let number = index + 1;
        let part = part.trim();
        if part.is_empty() {
            bail!("invalid --set: assignment {number} is empty");
        }
        let Some(eq) = find_top_level(part, '=') else {
            bail!("invalid --set: assignment {number} has no `=` (write `column = value`)");
        };
        let column = unquote_identifier(part[..eq].trim());
        if column.is_empty() {
            bail!("invalid --set: assignment {number} has no column before `=`");
        }
        let value = part[eq + 1..].trim();
        if value.is_empty() {
            bail!("invalid --set: assignment {number} (column `{column}`) has no value");
        }
        let expression = delta_core::expression::parse(value).with_context(|| {
            format!("invalid --set: the value of column `{column}` (assignment {number})")
        })?;
        if assignments
            .iter()
            .any(|(c, _)| c.eq_ignore_ascii_case(&column))
        {
            bail!("invalid --set: column `{column}` is set twice");
        }
        assignments.push((column, expression));
    }
    if assignments.is_empty() {
        bail!("invalid --set: no assignments");
    }
    Ok(assignments)
}

/// Split on `separator` where it is outside quotes (`'…'`, `"…"`, `` `…` ``, with doubled
/// quotes as escapes) and parentheses.
fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (at, _) in top_level_positions(text).filter(|(_, c)| *c == separator) {
        parts.push(&text[start..at]);
        start = at + separator.len_utf8();
    }
    parts.push(&text[start..]);
    parts
}

/// The byte offset of the first `wanted` outside quotes and parentheses.
fn find_top_level(text: &str, wanted: char) -> Option<usize> {
    top_level_positions(text)
        .find(|(_, c)| *c == wanted)
        .map(|(at, _)| at)
}

/// The characters of `text` outside quotes and parentheses, with their byte offsets.
fn top_level_positions(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    text.char_indices().filter(move |&(_, c)| {
        if let Some(q) = quote {
            // A doubled quote closes and reopens: the net effect is the same.
            if c == q {
                quote = None;
            }
            return false;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                false
            }
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        }
    })
}

/// `` `a b` `` or `"a b"` → `a b` (doubled quotes inside unescaped); plain names as they are.
fn unquote_identifier(text: &str) -> String {
    for quote in ['`', '"'] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            let inner = &text[1..text.len() - 1];
            let doubled: String = [quote, quote].iter().collect();
            return inner.replace(&doubled, &quote.to_string());
        }
    }
    text.to_owned()
}

// ---------------------------------------------------------------------------------------------
// checkpoint, set-property, add-constraint
// ---------------------------------------------------------------------------------------------

/// `table checkpoint`: a classic checkpoint of the latest version.
///
/// # Errors
/// Failures to read the table or write the checkpoint.
pub async fn checkpoint<W: Write>(table: &Table, args: &CheckpointArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let snapshot = table
        .snapshot()
        .await
        .with_context(|| format!("cannot read table {uri}"))?;
    let version = snapshot.version();
    table
        .checkpoint(&snapshot)
        .await
        .with_context(|| format!("cannot write a checkpoint of {uri} at version {version}"))?;
    let path = format!("_delta_log/{version:020}.checkpoint.parquet");
    let files = snapshot.files().len();
    if args.json {
        let doc = Json::object([
            ("operation", Json::str("CHECKPOINT")),
            ("version", Json::from(version)),
            ("checkpoint", Json::str(path)),
            ("numFiles", Json::from(files)),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
    } else {
        writeln!(
            out,
            "checkpoint of version {version} written: {path} ({})",
            plural(files as u64, "live file")
        )?;
    }
    Ok(())
}

/// `table set-property`.
///
/// # Errors
/// Properties the engine cannot honour (e.g. changing column mapping), conflicts.
pub async fn set_property<W: Write>(
    table: &Table,
    args: &SetPropertyArgs,
    out: &mut W,
) -> Result<()> {
    let uri = args.uri.as_str();
    let committed = table
        .set_properties(&args.properties)
        .await
        .with_context(|| format!("cannot set properties of table {uri}"))?;
    if args.json {
        let doc = Json::object([
            ("operation", Json::str("SET TBLPROPERTIES")),
            ("version", Json::from(committed.version)),
            (
                "properties",
                Json::Object(
                    args.properties
                        .iter()
                        .map(|(k, v)| (k.clone(), Json::str(v.as_str())))
                        .collect(),
                ),
            ),
            ("attempts", Json::from(u64::from(committed.attempts))),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
    } else {
        let set: Vec<String> = args
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(out, "version {}: set {}", committed.version, set.join(", "))?;
    }
    Ok(())
}

/// `table rename-column`.
///
/// # Errors
/// A table without column mapping, an unknown column, a name already taken, a column a
/// CHECK constraint reads; conflicts.
pub async fn rename_column<W: Write>(
    table: &Table,
    args: &RenameColumnArgs,
    out: &mut W,
) -> Result<()> {
    let uri = args.uri.as_str();
    let committed = table
        .rename_column(&args.column, &args.new_name)
        .await
        .with_context(|| format!("cannot rename column {} of table {uri}", args.column))?;
    if args.json {
        let doc = Json::object([
            ("operation", Json::str("RENAME COLUMN")),
            ("version", Json::from(committed.version)),
            ("column", Json::str(args.column.as_str())),
            ("new_name", Json::str(args.new_name.as_str())),
            ("attempts", Json::from(u64::from(committed.attempts))),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
    } else {
        writeln!(
            out,
            "version {}: renamed {} to {} (metadata only: the data files keep the column under its physical name)",
            committed.version, args.column, args.new_name
        )?;
    }
    Ok(())
}

/// `table drop-column`.
///
/// # Errors
/// A table without column mapping, an unknown column, a partition column, a column a CHECK
/// constraint reads, no data column left; conflicts.
pub async fn drop_column<W: Write>(
    table: &Table,
    args: &DropColumnArgs,
    out: &mut W,
) -> Result<()> {
    let uri = args.uri.as_str();
    let columns: Vec<&str> = args.columns.iter().map(String::as_str).collect();
    let committed = table
        .drop_columns(&columns)
        .await
        .with_context(|| format!("cannot drop columns {} of table {uri}", columns.join(", ")))?;
    if args.json {
        let doc = Json::object([
            ("operation", Json::str("DROP COLUMNS")),
            ("version", Json::from(committed.version)),
            (
                "columns",
                Json::Array(columns.iter().map(|c| Json::str(*c)).collect()),
            ),
            ("attempts", Json::from(u64::from(committed.attempts))),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
    } else {
        writeln!(
            out,
            "version {}: dropped {} (metadata only: the values stay in the data files until they are rewritten)",
            committed.version,
            columns.join(", ")
        )?;
    }
    Ok(())
}

/// `table add-constraint`.
///
/// # Errors
/// An unparsable expression, existing rows that violate it (with their count), a name
/// already in use, conflicts.
pub async fn add_constraint<W: Write>(
    table: &Table,
    args: &AddConstraintArgs,
    out: &mut W,
) -> Result<()> {
    let uri = args.uri.as_str();
    let name = args.name.trim();
    if name.is_empty() {
        bail!("the constraint name is empty");
    }
    delta_core::expression::parse(&args.expression)
        .with_context(|| format!("invalid expression for constraint {name}"))?;
    let committed = table
        .add_constraint(name, &args.expression)
        .await
        .with_context(|| format!("cannot add constraint {name} to table {uri}"))?;
    if args.json {
        let doc = Json::object([
            ("operation", Json::str("ADD CONSTRAINT")),
            ("version", Json::from(committed.version)),
            ("constraint", Json::str(name)),
            ("expression", Json::str(args.expression.as_str())),
            ("attempts", Json::from(u64::from(committed.attempts))),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
    } else {
        writeln!(
            out,
            "version {}: added constraint {name} CHECK ({}); every existing row satisfies it",
            committed.version, args.expression
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// output
// ---------------------------------------------------------------------------------------------

fn print_report<W: Write>(
    out: &mut W,
    json: bool,
    operation: &str,
    report: &OperationReport,
    summary: &str,
) -> Result<()> {
    let version = report
        .version
        .ok_or_else(|| anyhow!("internal error: {operation} reported no version"))?;
    if json {
        writeln!(out, "{}", report_json(operation, report).to_json_string())?;
        return Ok(());
    }
    writeln!(out, "version {version}: {summary}")?;
    writeln!(
        out,
        "{}",
        files_line(
            (report.files_added, report.bytes_added),
            (report.files_removed, report.bytes_removed),
            report.attempts
        )
    )?;
    if let Some(line) = marks_line(
        report.deletion_vectors_added,
        report.deletion_vectors_removed,
        report.change_files_added,
    ) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn print_nothing<W: Write>(out: &mut W, json: bool, operation: &str, text: &str) -> Result<()> {
    if json {
        let report = OperationReport::default();
        writeln!(out, "{}", report_json(operation, &report).to_json_string())?;
    } else {
        writeln!(out, "{text}; no new version")?;
    }
    Ok(())
}

fn report_json(operation: &str, report: &OperationReport) -> Json {
    Json::object([
        ("operation", Json::str(operation)),
        ("version", Json::opt(report.version)),
        ("filesAdded", Json::from(report.files_added)),
        ("filesRemoved", Json::from(report.files_removed)),
        ("bytesAdded", Json::from(report.bytes_added)),
        ("bytesRemoved", Json::from(report.bytes_removed)),
        ("rowsWritten", Json::from(report.rows_written)),
        ("rowsAffected", Json::from(report.rows_affected)),
        ("rowsCopied", Json::from(report.rows_copied)),
        (
            "deletionVectorsAdded",
            Json::from(report.deletion_vectors_added),
        ),
        (
            "deletionVectorsRemoved",
            Json::from(report.deletion_vectors_removed),
        ),
        ("changeFilesAdded", Json::from(report.change_files_added)),
        ("attempts", Json::from(u64::from(report.attempts))),
    ])
}

/// The line that explains deletion vectors and change data files, when there are any.
pub(crate) fn marks_line(dvs_added: u64, dvs_removed: u64, change_files: u64) -> Option<String> {
    let mut parts = Vec::new();
    if dvs_added > 0 {
        let mut text = format!(
            "deletion vectors: {} kept with deleted rows marked, not rewritten",
            plural(dvs_added, "file")
        );
        if dvs_removed > 0 {
            text.push_str(&format!(
                " ({} replaced by a larger one)",
                plural(dvs_removed, "earlier vector")
            ));
        }
        parts.push(text);
    }
    if change_files > 0 {
        parts.push(format!(
            "change data: {} under _change_data/",
            plural(change_files, "file")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The `files: ...` line of an operation's report: files and bytes added and removed, and the
/// attempt that committed when concurrent commits came first.
pub(crate) fn files_line(added: (u64, u64), removed: (u64, u64), attempts: u32) -> String {
    let mut line = format!(
        "files: {} added ({}), {} removed ({})",
        added.0,
        plural(added.1, "byte"),
        removed.0,
        plural(removed.1, "byte")
    );
    if attempts > 1 {
        line.push_str(&format!(
            "; committed on attempt {attempts} (concurrent commits came first)"
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_split_outside_quotes_and_parentheses() {
        let parsed = parse_assignments("a = 'x, y', `b c` = 2, \"d\" = other_col").expect("parses");
        let names: Vec<&str> = parsed.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["a", "b c", "d"]);
        assert!(matches!(parsed[2].1, Expression::Column(_)));
        let parsed = parse_assignments("a = 'it''s = fine'").expect("parses");
        assert_eq!(parsed.len(), 1);
        assert_eq!(split_top_level("f(a, b), c", ','), ["f(a, b)", " c"]);
    }

    #[test]
    fn assignment_errors() {
        assert!(parse_assignments("").is_err());
        assert!(parse_assignments("a").is_err());
        assert!(parse_assignments("= 1").is_err());
        assert!(parse_assignments("a = ").is_err());
        assert!(parse_assignments("a = 1, a = 2").is_err());
        assert!(parse_assignments("a = 1,").is_err());
        let err = format!(
            "{:#}",
            parse_assignments("name = 'SECRET' 'x'").expect_err("fails")
        );
        assert!(err.contains("`name`"), "{err}");
    }
}
