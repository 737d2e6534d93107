//! `medilake table merge`: MERGE INTO the table from source files.
//!
//! The source files are read as `table write` reads its input (with the table's column types),
//! keeping only the columns the files hold, and the clauses given on the command line are
//! handed to [`delta_core::MergeBuilder`]. Prints the merge's metrics on three lines of text:
//!
//! ```text
//! version 4: merged 1000 source rows: 500 updated, 0 deleted, 500 inserted
//! target rows: 9500 copied into 2 rewritten files; 2 of 20 files read (18 pruned)
//! files: 3 added (10482 bytes), 2 removed (9876 bytes)
//! ```
//!
//! or, with `--json`, one object: `operation`, `version` (`null` when nothing changed),
//! `sourceRows`, `rowsInserted`, `rowsUpdated`, `rowsDeleted`, `rowsCopied`, `rowsWritten`,
//! `filesRead`, `filesPruned`, `filesAdded`, `filesRemoved`, `bytesAdded`, `bytesRemoved`,
//! `attempts`.

use std::io::Write;

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use delta_core::expression::{Expression, parse};
use delta_core::{
    MatchedAction, MergeClause, MergeReport, NotMatchedAction, NotMatchedBySourceAction, Table,
};

use super::plural;
use super::write::{files_line, marks_line, parse_assignments};
use crate::cli::MergeArgs;
use crate::input::{InputFile, InputPlan};
use crate::output::Json;

/// An action given on the command line, before it is tied to a clause kind.
#[derive(Debug, PartialEq)]
enum Action {
    Ignore,
    UpdateAll,
    InsertAll,
    Delete,
    Update(Vec<(String, Expression)>),
}

/// Parse `update-all`, `insert-all`, `delete`, `ignore` or `update SET a = x, b = y`.
fn parse_action(flag: &str, text: &str) -> Result<Action> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "ignore" => Action::Ignore,
        "update-all" | "update *" | "update set *" => Action::UpdateAll,
        "insert-all" | "insert *" => Action::InsertAll,
        "delete" => Action::Delete,
        _ if lower.starts_with("update ") => {
            let rest = trimmed["update ".len()..].trim_start();
            let rest = if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case("set ") {
                &rest[4..]
            } else {
                rest
            };
            Action::Update(
                parse_assignments(rest).with_context(|| format!("invalid {flag} assignments"))?,
            )
        }
        _ => bail!(
            "{flag}: unknown action; use update-all, insert-all, delete, ignore or `update SET col = expr, ...`"
        ),
    })
}

fn condition(flag: &str, text: Option<&str>) -> Result<Option<Expression>> {
    text.map(|t| parse(t).with_context(|| format!("invalid {flag}")))
        .transpose()
}

/// The clauses the arguments ask for.
fn clauses(args: &MergeArgs) -> Result<Vec<MergeClause>> {
    let mut clauses = Vec::new();
    if let Some(text) = &args.when_matched {
        let condition = condition(
            "--when-matched-condition",
            args.when_matched_condition.as_deref(),
        )?;
        let action = match parse_action("--when-matched", text)? {
            Action::Ignore => None,
            Action::UpdateAll => Some(MatchedAction::UpdateAll),
            Action::Delete => Some(MatchedAction::Delete),
            Action::Update(sets) => Some(MatchedAction::Update(sets)),
            Action::InsertAll => bail!("--when-matched cannot insert; use update-all or delete"),
        };
        if let Some(action) = action {
            clauses.push(MergeClause::Matched { condition, action });
        }
    }
    if let Some(text) = &args.when_not_matched {
        let condition = condition(
            "--when-not-matched-condition",
            args.when_not_matched_condition.as_deref(),
        )?;
        match parse_action("--when-not-matched", text)? {
            Action::Ignore => {}
            Action::InsertAll => clauses.push(MergeClause::NotMatched {
                condition,
                action: NotMatchedAction::InsertAll,
            }),
            _ => bail!("--when-not-matched takes insert-all or ignore"),
        }
    }
    if let Some(text) = &args.when_not_matched_by_source {
        let condition = condition(
            "--when-not-matched-by-source-condition",
            args.when_not_matched_by_source_condition.as_deref(),
        )?;
        let action = match parse_action("--when-not-matched-by-source", text)? {
            Action::Ignore => None,
            Action::Delete => Some(NotMatchedBySourceAction::Delete),
            Action::Update(sets) => Some(NotMatchedBySourceAction::Update(sets)),
            _ => bail!("--when-not-matched-by-source takes delete, `update SET ...` or ignore"),
        };
        if let Some(action) = action {
            clauses.push(MergeClause::NotMatchedBySource { condition, action });
        }
    }
    if clauses.is_empty() {
        bail!(
            "nothing to do: give at least one of --when-matched, --when-not-matched and \
             --when-not-matched-by-source with an action other than ignore"
        );
    }
    Ok(clauses)
}

/// `table merge`.
///
/// # Errors
/// Bad arguments or source files (named, with the line), conditions that do not bind (naming
/// the clause and column), ambiguous matches, constraint violations, conflicts, storage errors.
pub async fn merge<W: Write>(table: &Table, args: &MergeArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let context = || format!("cannot merge into table {uri}");
    let on = parse(&args.on).context("invalid --on condition")?;
    let clauses = clauses(args)?;
    let files = args
        .source
        .iter()
        .map(|name| InputFile::new(name, args.format))
        .collect::<Result<Vec<_>>>()?;
    let snapshot = table
        .snapshot()
        .await
        .with_context(|| format!("cannot read table {uri}"))?;
    let table_schema = snapshot.arrow_schema();
    let plan =
        tokio::task::spawn_blocking(move || InputPlan::new(files, Some(&table_schema), true))
            .await
            .context("the input planning task failed")?
            .with_context(context)?;
    // Keep only the columns the files hold: an absent column must not read as NULLs.
    let target = plan.target().clone();
    let keep: Vec<usize> = plan
        .present_columns()
        .iter()
        .filter_map(|name| target.index_of(name).ok())
        .collect();

    // Read on a blocking thread, two batches ahead of the merge.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        for item in plan.batches() {
            let item = item.and_then(|b| b.project(&keep).map_err(anyhow::Error::from));
            if sender.blocking_send(item).is_err() {
                break;
            }
        }
    });
    // An input error surfaces inside delta-core as a placeholder; the real error (with the
    // file and line) is kept and reported instead.
    let (batches, input_errors) = super::engine_input(Vec::new(), receiver, "source files");

    let mut builder = table
        .merge(batches, on)
        .with_snapshot(snapshot)
        .with_merge_schema(args.merge_schema);
    for clause in clauses {
        builder = builder.with_clause(clause);
    }
    let outcome = builder.execute().await;
    producer.await.ok();
    let report = match outcome {
        Ok(report) => report,
        Err(e) => return Err(input_errors.explain(e).context(context())),
    };
    print_merge(out, args.json, &report)
}

fn print_merge<W: Write>(out: &mut W, json: bool, report: &MergeReport) -> Result<()> {
    if json {
        let object = Json::object([
            ("operation", Json::str("MERGE")),
            ("version", Json::opt(report.version)),
            ("sourceRows", Json::from(report.source_rows)),
            ("rowsInserted", Json::from(report.rows_inserted)),
            ("rowsUpdated", Json::from(report.rows_updated)),
            ("rowsDeleted", Json::from(report.rows_deleted)),
            ("rowsCopied", Json::from(report.rows_copied)),
            ("rowsWritten", Json::from(report.rows_written)),
            ("filesRead", Json::from(report.files_read)),
            ("filesPruned", Json::from(report.files_pruned)),
            ("filesAdded", Json::from(report.files_added)),
            ("filesRemoved", Json::from(report.files_removed)),
            (
                "deletionVectorsAdded",
                Json::from(report.deletion_vectors_added),
            ),
            (
                "deletionVectorsRemoved",
                Json::from(report.deletion_vectors_removed),
            ),
            ("changeFilesAdded", Json::from(report.change_files_added)),
            ("bytesAdded", Json::from(report.bytes_added)),
            ("bytesRemoved", Json::from(report.bytes_removed)),
            ("attempts", Json::from(u64::from(report.attempts))),
        ]);
        writeln!(out, "{}", object.to_json_string())?;
        return Ok(());
    }
    let summary = format!(
        "merged {}: {} updated, {} deleted, {} inserted",
        plural(report.source_rows, "source row"),
        report.rows_updated,
        report.rows_deleted,
        report.rows_inserted
    );
    match report.version {
        Some(version) => writeln!(out, "version {version}: {summary}")?,
        None => writeln!(out, "{summary}; nothing changed, no new version")?,
    }
    writeln!(
        out,
        "target rows: {} copied into {} rewritten; {} of {} read ({} pruned)",
        report.rows_copied,
        plural(report.files_removed, "file"),
        report.files_read,
        plural(report.files_before_pruning, "file"),
        report.files_pruned
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse() {
        assert_eq!(parse_action("f", "update-all").unwrap(), Action::UpdateAll);
        assert_eq!(parse_action("f", " Delete ").unwrap(), Action::Delete);
        assert_eq!(parse_action("f", "IGNORE").unwrap(), Action::Ignore);
        let Action::Update(sets) = parse_action("f", "update SET v = s.v + 1, w = 'x'").unwrap()
        else {
            panic!("not an update");
        };
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].0, "v");
        assert!(parse_action("f", "upsert").is_err());
    }
}
