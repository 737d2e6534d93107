//! MERGE INTO: update, delete and insert target rows from a source of Arrow batches, with
//! Spark's semantics, copy-on-write.
//!
//! [`Table::merge`] takes the source and the `ON` condition; `when_*` methods add clauses in
//! order; [`MergeBuilder::execute`] runs it. The plan:
//!
//! 1. **Bind.** Columns are qualified by the aliases (`t`, `s` by default; an unqualified name
//!    belongs to the side that has it, and is ambiguous when both do). `ON` is split into
//!    equality keys (`t.expr = s.expr`, at least one) and a residual predicate over the pair.
//!    `UPDATE *`/`INSERT *` expand to one assignment per column; with schema merging, source
//!    columns the table lacks become new nullable columns.
//! 2. **Index the source** (the smaller side): its rows are held in memory (bounded by
//!    [`MergeBuilder::with_memory_budget_bytes`]) and indexed by key ([`join`]).
//! 3. **Prune** (pure): without `NOT MATCHED BY SOURCE` clauses only target rows whose keys occur
//!    in the source can be affected, so files are skipped by partition values and statistics
//!    against the source keys' range (or their distinct values, when few), plus the `ON`
//!    conjuncts that read only the target.
//! 4. **Find touched files**: the kept files are read one at a time, only the columns the
//!    conditions need. Each target row gets its *fate* (untouched, matched and copied, updated
//!    by clause *c*, deleted); a file is touched when some fate changes a row. This pass also
//!    marks the source rows that matched, and fails when a target row is matched ambiguously.
//! 5. **Rewrite** each touched file alone (one new file per old file, so clustering survives):
//!    untouched rows are copied, updated rows computed, deleted rows dropped. Untouched files
//!    are not rewritten. Then the unmatched source rows go through the `NOT MATCHED` clauses
//!    into new files. An insert-only merge therefore only adds files.
//! 6. **Commit** `MERGE` with Spark's operation parameters and metrics; the files read and the
//!    key predicate are the transaction's read set, so a concurrent commit removing a file the
//!    merge read fails it, while blind appends rebase (as for DELETE).
//!
//! Semantics (Spark's): the first clause of a kind whose condition is TRUE acts; a target row
//! that more than one source row matches (`ON` true and, when the merge has only `WHEN MATCHED`
//! clauses, one of their conditions true) is an error unless the only `WHEN MATCHED` clause is an
//! unconditional `DELETE`; an insert-only merge never checks. NULL keys never match.
//!
//! Fates are computed per row before anything is written, so "mark these rows deleted" can later
//! be a deletion vector on the old file instead of a rewrite.

mod join;

use crate::rewrite::{Rewriter, Rewritten, RowFate};
use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StructArray, UInt32Array,
    new_null_array,
};
use arrow::compute::{cast, concat_batches, interleave, take, take_record_batch};
use arrow::datatypes::{DataType as ArrowType, Field, Fields, Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::action::Add;
use crate::expression::{BoundExpression, BoundValue, CompareOp, Expression, Literal};
use crate::operations::{Constraints, new_columns, output_batch, true_mask};
use crate::schema::to_arrow_schema;
use crate::snapshot::Snapshot;
use crate::table::Table;
use crate::{Error, Result};
use join::{KeyIndex, common_key_type};

/// Default memory budget of a merge: the source rows, their key index and the writers' buffers.
const DEFAULT_MEMORY_BUDGET_BYTES: usize = 4 << 30;
/// The writers' buffers get at most this share (1/N) of the budget.
const WRITER_BUDGET_SHARE: usize = 4;
/// Up to this many distinct source keys, files are pruned by the values themselves (`IN`);
/// above it by the keys' range.
const DISTINCT_PRUNING_MAX: usize = 32;
/// Rows of the source that go through the `NOT MATCHED` clauses at once.
const INSERT_CHUNK_ROWS: usize = 64 * 1024;

/// What a `WHEN MATCHED` clause does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchedAction {
    /// `UPDATE SET column = value, ...` (values may read both sides).
    Update(Vec<(String, Expression)>),
    /// `UPDATE *`: every table column from the source column of the same name.
    UpdateAll,
    /// `DELETE`.
    Delete,
}

/// What a `WHEN NOT MATCHED [BY TARGET]` clause does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotMatchedAction {
    /// `INSERT (columns) VALUES (values)` (values read the source only; others are NULL).
    Insert(Vec<(String, Expression)>),
    /// `INSERT *`: every table column from the source column of the same name.
    InsertAll,
}

/// What a `WHEN NOT MATCHED BY SOURCE` clause does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotMatchedBySourceAction {
    /// `UPDATE SET column = value, ...` (values read the target only).
    Update(Vec<(String, Expression)>),
    /// `DELETE`.
    Delete,
}

/// One `WHEN ...` clause of a MERGE, with its optional `AND` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeClause {
    /// `WHEN MATCHED [AND condition] THEN ...`
    Matched {
        /// The extra condition over the pair of rows.
        condition: Option<Expression>,
        /// What to do with the target row.
        action: MatchedAction,
    },
    /// `WHEN NOT MATCHED [AND condition] THEN INSERT ...`
    NotMatched {
        /// The extra condition over the source row.
        condition: Option<Expression>,
        /// What to insert.
        action: NotMatchedAction,
    },
    /// `WHEN NOT MATCHED BY SOURCE [AND condition] THEN ...`
    NotMatchedBySource {
        /// The extra condition over the target row.
        condition: Option<Expression>,
        /// What to do with the target row.
        action: NotMatchedBySourceAction,
    },
}

/// What a merge did (Spark's `operationMetrics`, also recorded in `commitInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct MergeReport {
    /// The committed version (`None` when nothing changed, so nothing was committed).
    pub version: Option<u64>,
    /// Commit attempts.
    pub attempts: u32,
    /// Rows in the source (`numSourceRows`).
    pub source_rows: u64,
    /// Rows inserted (`numTargetRowsInserted`).
    pub rows_inserted: u64,
    /// Rows updated by either kind of clause (`numTargetRowsUpdated`).
    pub rows_updated: u64,
    /// Rows deleted by either kind of clause (`numTargetRowsDeleted`).
    pub rows_deleted: u64,
    /// Rows copied unchanged into rewritten files (`numTargetRowsCopied`).
    pub rows_copied: u64,
    /// Rows updated by `WHEN MATCHED` (`numTargetRowsMatchedUpdated`).
    pub rows_matched_updated: u64,
    /// Rows deleted by `WHEN MATCHED` (`numTargetRowsMatchedDeleted`).
    pub rows_matched_deleted: u64,
    /// Rows updated by `WHEN NOT MATCHED BY SOURCE` (`numTargetRowsNotMatchedBySourceUpdated`).
    pub rows_not_matched_by_source_updated: u64,
    /// Rows deleted by `WHEN NOT MATCHED BY SOURCE` (`numTargetRowsNotMatchedBySourceDeleted`).
    pub rows_not_matched_by_source_deleted: u64,
    /// Rows written (`numOutputRows`: inserted + updated + copied).
    pub rows_written: u64,
    /// Live target files before pruning (`numTargetFilesBeforeSkipping`).
    pub files_before_pruning: u64,
    /// Target files read after pruning (`numTargetFilesAfterSkipping`).
    pub files_read: u64,
    /// Target files skipped by pruning.
    pub files_pruned: u64,
    /// Files added (`numTargetFilesAdded`).
    pub files_added: u64,
    /// Files removed, i.e. rewritten (`numTargetFilesRemoved`).
    pub files_removed: u64,
    /// Bytes of the added files (`numTargetBytesAdded`).
    pub bytes_added: u64,
    /// Bytes of the removed files (`numTargetBytesRemoved`).
    pub bytes_removed: u64,
    /// Files that got a new deletion vector instead of being rewritten
    /// (`numTargetDeletionVectorsAdded`).
    pub deletion_vectors_added: u64,
    /// Deletion vectors replaced or dropped with their file (`numTargetDeletionVectorsRemoved`).
    pub deletion_vectors_removed: u64,
    /// Change data files written (`numTargetChangeFilesAdded`).
    pub change_files_added: u64,
}

/// A MERGE INTO the table; finish with [`MergeBuilder::execute`].
#[must_use]
pub struct MergeBuilder<'a> {
    table: Table,
    source: BoxStream<'a, Result<RecordBatch>>,
    on: Expression,
    target_alias: String,
    source_alias: String,
    clauses: Vec<MergeClause>,
    merge_schema: bool,
    memory_budget_bytes: usize,
    snapshot: Option<Snapshot>,
    app_transaction: Option<(String, i64)>,
}

impl std::fmt::Debug for MergeBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeBuilder")
            .field("on", &self.on.to_string())
            .field("target_alias", &self.target_alias)
            .field("source_alias", &self.source_alias)
            .field("clauses", &self.clauses.len())
            .field("merge_schema", &self.merge_schema)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Start a MERGE of `source` into this table on the condition `on`, which refers to the
    /// target as `t` and to the source as `s` (see [`MergeBuilder::with_target_alias`]).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(table: delta_core::Table,
    /// #     source: futures::stream::BoxStream<'_, delta_core::Result<arrow::array::RecordBatch>>)
    /// #     -> delta_core::Result<()> {
    /// use delta_core::expression::parse;
    /// let report = table
    ///     .merge(source, parse("t.id = s.id")?)
    ///     .when_matched_update_all(None)
    ///     .when_not_matched_insert_all(None)
    ///     .execute()
    ///     .await?;
    /// println!("{} updated, {} inserted", report.rows_updated, report.rows_inserted);
    /// # Ok(()) }
    /// ```
    pub fn merge<'a>(
        &self,
        source: BoxStream<'a, Result<RecordBatch>>,
        on: Expression,
    ) -> MergeBuilder<'a> {
        MergeBuilder {
            table: self.clone(),
            source,
            on,
            target_alias: "t".to_owned(),
            source_alias: "s".to_owned(),
            clauses: Vec::new(),
            merge_schema: false,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            snapshot: None,
            app_transaction: None,
        }
    }
}

impl<'a> MergeBuilder<'a> {
    /// The name the conditions use for the target table (default `t`).
    pub fn with_target_alias(mut self, alias: impl Into<String>) -> Self {
        self.target_alias = alias.into();
        self
    }

    /// The name the conditions use for the source (default `s`).
    pub fn with_source_alias(mut self, alias: impl Into<String>) -> Self {
        self.source_alias = alias.into();
        self
    }

    /// Add new nullable columns of the source to the table on `UPDATE *` / `INSERT *`, and let
    /// those fill only the columns the source has.
    pub fn with_merge_schema(mut self, merge: bool) -> Self {
        self.merge_schema = merge;
        self
    }

    /// The memory the source rows may take (default 4 GiB); the writers' buffers get a quarter
    /// of it, at most 256 MiB. Target files are streamed, so the target's size does not count.
    pub fn with_memory_budget_bytes(mut self, bytes: usize) -> Self {
        self.memory_budget_bytes = bytes.max(1);
        self
    }

    /// Merge into this snapshot of the table instead of the latest one (the commit still goes
    /// on top of the latest version when nothing the merge read has changed since).
    pub fn with_snapshot(mut self, snapshot: Snapshot) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Record application `app_id`'s `version` in the merge's commit (a `txn` action), so an
    /// application that retries after a crash can tell whether this merge committed
    /// ([`Snapshot::app_transaction_version`]). The merge then always commits, even when it
    /// changes no row.
    pub fn with_app_transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.app_transaction = Some((app_id.into(), version));
        self
    }

    /// Append a clause (clauses of one kind are tried in the order added).
    pub fn with_clause(mut self, clause: MergeClause) -> Self {
        self.clauses.push(clause);
        self
    }

    /// `WHEN MATCHED [AND condition] THEN UPDATE SET ...`
    pub fn when_matched_update(
        self,
        condition: Option<Expression>,
        assignments: Vec<(String, Expression)>,
    ) -> Self {
        self.with_clause(MergeClause::Matched {
            condition,
            action: MatchedAction::Update(assignments),
        })
    }

    /// `WHEN MATCHED [AND condition] THEN UPDATE *`
    pub fn when_matched_update_all(self, condition: Option<Expression>) -> Self {
        self.with_clause(MergeClause::Matched {
            condition,
            action: MatchedAction::UpdateAll,
        })
    }

    /// `WHEN MATCHED [AND condition] THEN DELETE`
    pub fn when_matched_delete(self, condition: Option<Expression>) -> Self {
        self.with_clause(MergeClause::Matched {
            condition,
            action: MatchedAction::Delete,
        })
    }

    /// `WHEN NOT MATCHED [AND condition] THEN INSERT (columns) VALUES (values)`
    pub fn when_not_matched_insert(
        self,
        condition: Option<Expression>,
        values: Vec<(String, Expression)>,
    ) -> Self {
        self.with_clause(MergeClause::NotMatched {
            condition,
            action: NotMatchedAction::Insert(values),
        })
    }

    /// `WHEN NOT MATCHED [AND condition] THEN INSERT *`
    pub fn when_not_matched_insert_all(self, condition: Option<Expression>) -> Self {
        self.with_clause(MergeClause::NotMatched {
            condition,
            action: NotMatchedAction::InsertAll,
        })
    }

    /// `WHEN NOT MATCHED BY SOURCE [AND condition] THEN UPDATE SET ...`
    pub fn when_not_matched_by_source_update(
        self,
        condition: Option<Expression>,
        assignments: Vec<(String, Expression)>,
    ) -> Self {
        self.with_clause(MergeClause::NotMatchedBySource {
            condition,
            action: NotMatchedBySourceAction::Update(assignments),
        })
    }

    /// `WHEN NOT MATCHED BY SOURCE [AND condition] THEN DELETE`
    pub fn when_not_matched_by_source_delete(self, condition: Option<Expression>) -> Self {
        self.with_clause(MergeClause::NotMatchedBySource {
            condition,
            action: NotMatchedBySourceAction::Delete,
        })
    }

    /// Run the merge and commit it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the clause and column for conditions or values that do
    /// not bind, an `ON` without an equality between the sides, a source without batches or over
    /// the memory budget, and a target row matched by more than one source row where Spark
    /// forbids it; [`Error::ConstraintViolation`] when written rows break a constraint (nothing
    /// is committed); [`Error::Conflict`] when a concurrent commit removed a file the merge read.
    pub async fn execute(self) -> Result<MergeReport> {
        let MergeBuilder {
            table,
            mut source,
            on,
            target_alias,
            source_alias,
            clauses,
            merge_schema,
            memory_budget_bytes,
            snapshot,
            app_transaction,
        } = self;
        if clauses.is_empty() {
            return Err(Error::invalid("MERGE needs at least one WHEN clause"));
        }
        let snapshot = match snapshot {
            Some(s) => s,
            None => table.snapshot().await?,
        };

        // The source, held in memory (it is the side we index).
        let mut batches = Vec::new();
        let mut source_bytes = 0usize;
        while let Some(batch) = source.next().await {
            let batch = batch?;
            source_bytes += batch.get_array_memory_size();
            if source_bytes > memory_budget_bytes {
                return Err(Error::invalid(format!(
                    "the MERGE source takes more than the memory budget of {} MiB; raise the budget or merge in smaller pieces",
                    memory_budget_bytes >> 20
                )));
            }
            batches.push(batch);
        }
        drop(source);
        let Some(first) = batches.first() else {
            return Err(Error::invalid(
                "the MERGE source yielded no batches; pass at least one (possibly empty) batch so that its schema is known",
            ));
        };
        let source_schema = first.schema();
        let source_batch = concat_batches(&source_schema, &batches).map_err(|e| {
            Error::invalid(format!("the MERGE source batches differ in schema: {e}"))
        })?;
        drop(batches);

        // Schema evolution.
        let mut schema = snapshot.schema().clone();
        let mut metadata = snapshot.metadata().clone();
        let has_star = clauses.iter().any(|c| {
            matches!(
                c,
                MergeClause::Matched {
                    action: MatchedAction::UpdateAll,
                    ..
                } | MergeClause::NotMatched {
                    action: NotMatchedAction::InsertAll,
                    ..
                }
            )
        });
        let mut metadata_changed = false;
        if merge_schema && has_star {
            let added = new_columns(&schema, &source_schema, true)?;
            if !added.is_empty() {
                crate::column_mapping::add_columns(
                    &mut metadata,
                    &mut schema,
                    added,
                    table.clock().as_ref(),
                )?;
                metadata_changed = true;
            }
        }
        let output_schema: SchemaRef = Arc::new(to_arrow_schema(&schema)?);

        let plan = Plan::bind(
            &snapshot,
            &source_schema,
            &output_schema,
            &on,
            &target_alias,
            &source_alias,
            &clauses,
            merge_schema,
        )?;
        tracing::debug!(rows = source_batch.num_rows(), "MERGE source read");
        let index = plan.index_source(&source_batch)?;
        tracing::debug!("MERGE source indexed");
        let state = MergeState {
            plan,
            source: source_batch,
            index,
        };
        let rewrites = !state.plan.is_insert_only();

        // Prune.
        let read_predicate = state.read_predicate(&snapshot)?;
        let all_files = snapshot.files();
        let candidates: Vec<Add> = match &read_predicate {
            Some(predicate) => snapshot
                .scan()
                .with_predicate(predicate.clone())
                .build()?
                .kept_files()
                .map(|f| f.add.clone())
                .collect(),
            None => all_files.to_vec(),
        };
        let mut report = MergeReport {
            source_rows: state.source.num_rows() as u64,
            files_before_pruning: all_files.len() as u64,
            files_read: candidates.len() as u64,
            files_pruned: (all_files.len() - candidates.len()) as u64,
            ..MergeReport::default()
        };

        // Pass 1: which files hold rows the merge changes, and which source rows matched.
        // Files are read in parallel tasks (key and condition columns only).
        let parallelism = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, MAX_TASKS);
        let writer_budget = (memory_budget_bytes / WRITER_BUDGET_SHARE)
            .min(crate::write::WriterOptions::default().max_buffered_bytes)
            .max(1 << 20);
        let checks = Constraints::of(&schema, &metadata, &output_schema, None)?;
        let job = Arc::new(Job {
            state,
            table: table.clone(),
            snapshot: snapshot.clone(),
            schema: schema.clone(),
            metadata: metadata.clone(),
            checks,
            writer_budget_bytes: (writer_budget / parallelism).max(1 << 20),
            rewrites,
        });
        let scans: Vec<Result<FileScan>> = futures::stream::iter(candidates.iter().cloned())
            .map(|add| {
                let job = job.clone();
                tokio::spawn(async move { job.scan_file(add).await })
            })
            .buffered(parallelism)
            .map(joined)
            .collect()
            .await;
        let mut matched_sources = vec![false; job.state.source.num_rows()];
        let mut touched = Vec::new();
        for (add, scan) in candidates.iter().zip(scans) {
            let scan = scan?;
            for s in &scan.matched_sources {
                matched_sources[*s as usize] = true;
            }
            if let Some(pairs) = scan.touched_pairs {
                touched.push((add.clone(), pairs));
            }
        }
        tracing::debug!(
            read = candidates.len(),
            touched = touched.len(),
            "MERGE pass 1 done"
        );
        let unmatched: Vec<u32> = matched_sources
            .iter()
            .enumerate()
            .filter(|(_, m)| !**m)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        drop(matched_sources);

        // Pass 2: the inserts (the longest task, so it starts first and overlaps the rest),
        // and each touched file alone, in parallel tasks.
        let mut work: Vec<Work> = Vec::with_capacity(touched.len() + parallelism);
        if !job.state.plan.not_matched.is_empty() && !unmatched.is_empty() {
            // Many inserts are split over the tasks (one file each), so that they are not
            // the one long task that the rest waits for.
            let parts = (unmatched.len() / MIN_INSERT_TASK_ROWS).clamp(1, parallelism);
            let per_part = unmatched.len().div_ceil(parts);
            work.extend(
                unmatched
                    .chunks(per_part)
                    .map(|rows| Work::Insert(rows.to_vec())),
            );
        }
        work.extend(
            touched
                .into_iter()
                .map(|(add, pairs)| Work::Rewrite(Box::new(add), pairs)),
        );
        let written: Vec<Result<Written>> = futures::stream::iter(work)
            .map(|work| {
                let job = job.clone();
                tokio::spawn(async move {
                    match work {
                        Work::Rewrite(add, pairs) => job.rewrite_file(*add, pairs).await,
                        Work::Insert(rows) => job.insert(rows).await,
                    }
                })
            })
            .buffered(parallelism)
            .map(joined)
            .collect()
            .await;
        let mut rewritten = Rewritten::default();
        let mut violations = vec![0u64; job.checks.len()];
        let mut failure = None;
        for result in written {
            match result {
                Ok(w) => {
                    rewritten.absorb(w.rewritten);
                    report.absorb(&w.counts);
                    for (total, v) in violations.iter_mut().zip(&w.violations) {
                        *total += v;
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            rewritten.abort(&table).await;
            return Err(e);
        }
        if let Some(err) = job.checks.first_violation(&violations) {
            rewritten.abort(&table).await;
            return Err(err);
        }
        tracing::debug!(files = rewritten.new_files.len(), "MERGE pass 2 done");
        report.rows_copied = rewritten.counts.rows_copied;
        report.rows_updated =
            report.rows_matched_updated + report.rows_not_matched_by_source_updated;
        report.rows_deleted =
            report.rows_matched_deleted + report.rows_not_matched_by_source_deleted;
        report.rows_written = report.rows_inserted + report.rows_updated + report.rows_copied;
        if rewritten.is_empty() && !metadata_changed && app_transaction.is_none() {
            rewritten.abort(&table).await;
            return Ok(report);
        }

        let mut txn = table
            .transaction(&snapshot)
            .with_operation("MERGE")
            .with_parameter(
                "predicate",
                serde_json::to_string(&[on.to_string()]).unwrap_or_default(),
            );
        for (key, value) in clause_parameters(&clauses) {
            txn = txn.with_parameter(key, value);
        }
        if metadata_changed {
            txn.set_metadata(metadata);
        }
        if let Some((app_id, version)) = app_transaction {
            txn.set_app_transaction(app_id, version);
        }
        txn.read_data(read_predicate, candidates.iter().map(|a| a.path.clone()));
        let staged = rewritten.stage(&table, &mut txn).await?;
        report.files_added = staged.files_added;
        report.files_removed = staged.files_removed;
        report.bytes_added = staged.bytes_added;
        report.bytes_removed = staged.bytes_removed;
        report.deletion_vectors_added = staged.deletion_vectors_added;
        report.deletion_vectors_removed = staged.deletion_vectors_removed;
        report.change_files_added = staged.change_files_added;
        let txn = txn
            .with_metric("numSourceRows", report.source_rows)
            .with_metric("numTargetRowsInserted", report.rows_inserted)
            .with_metric("numTargetRowsUpdated", report.rows_updated)
            .with_metric("numTargetRowsMatchedUpdated", report.rows_matched_updated)
            .with_metric(
                "numTargetRowsNotMatchedBySourceUpdated",
                report.rows_not_matched_by_source_updated,
            )
            .with_metric("numTargetRowsDeleted", report.rows_deleted)
            .with_metric("numTargetRowsMatchedDeleted", report.rows_matched_deleted)
            .with_metric(
                "numTargetRowsNotMatchedBySourceDeleted",
                report.rows_not_matched_by_source_deleted,
            )
            .with_metric("numTargetRowsCopied", report.rows_copied)
            .with_metric("numOutputRows", report.rows_written)
            .with_metric("numTargetFilesAdded", report.files_added)
            .with_metric("numTargetFilesRemoved", report.files_removed)
            .with_metric("numTargetBytesAdded", report.bytes_added)
            .with_metric("numTargetBytesRemoved", report.bytes_removed)
            .with_metric("numTargetFilesBeforeSkipping", report.files_before_pruning)
            .with_metric("numTargetFilesAfterSkipping", report.files_read)
            .with_metric("numTargetChangeFilesAdded", report.change_files_added)
            .with_metric(
                "numTargetDeletionVectorsAdded",
                report.deletion_vectors_added,
            )
            .with_metric(
                "numTargetDeletionVectorsRemoved",
                report.deletion_vectors_removed,
            );
        match txn.commit().await {
            Ok(committed) => {
                report.version = Some(committed.version);
                report.attempts = committed.attempts;
                Ok(report)
            }
            Err(e @ Error::CommitOutcomeUnknown { .. }) => Err(e),
            Err(e) => {
                staged.abort(&table).await;
                Err(e)
            }
        }
    }
}

/// The most files a merge reads or writes at once (each in its own task).
const MAX_TASKS: usize = 4;

/// Rows per stand-in batch of a file whose rows pass 2 does not read.
const PLACEHOLDER_BATCH_ROWS: u32 = 64 * 1024;

/// The fewest inserted rows worth a task of their own.
const MIN_INSERT_TASK_ROWS: usize = 128 * 1024;

/// What the merge's tasks share.
struct Job {
    state: MergeState,
    table: Table,
    snapshot: Snapshot,
    schema: crate::schema::StructType,
    metadata: crate::action::Metadata,
    checks: Constraints,
    writer_budget_bytes: usize,
    rewrites: bool,
}

/// The `ON` pairs of one file (target row positions among its live rows, in order, and their
/// source rows) and how many live rows pass 1 read from it.
struct FilePairs {
    targets: Vec<u32>,
    sources: Vec<u32>,
    rows: u32,
}

/// What pass 1 learnt about one file.
struct FileScan {
    /// The file's pairs, when some row of it changes (it must be rewritten).
    touched_pairs: Option<FilePairs>,
    /// The source rows that matched a row of the file.
    matched_sources: Vec<u32>,
}

/// One task of pass 2.
enum Work {
    Rewrite(Box<Add>, FilePairs),
    Insert(Vec<u32>),
}

/// What one task of pass 2 wrote.
struct Written {
    rewritten: Rewritten,
    counts: MergeReport,
    violations: Vec<u64>,
}

/// A task's result, with a panic in the task passed on.
fn joined<T>(result: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    match result {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::invalid(format!("a MERGE task was cancelled: {e}"))),
    }
}

impl Job {
    /// Pass 1 over one file: its pairs, and whether any of its rows changes.
    async fn scan_file(&self, add: Add) -> Result<FileScan> {
        let state = &self.state;
        let mut stream = self
            .snapshot
            .scan()
            .with_columns(state.plan.target_needed.iter().cloned())
            .build_for(std::slice::from_ref(&add))?
            .execute();
        let mut offset = 0u32;
        let mut touched = false;
        let (mut file_targets, mut file_sources) = (Vec::new(), Vec::new());
        while let Some(batch) = stream.try_next().await? {
            let (pair_target, pair_source) = state.find_pairs(&batch)?;
            if self.rewrites {
                let matches = state.decide(&batch, &pair_target, &pair_source, false)?;
                touched |= matches.fates.iter().any(Fate::changes_row);
            }
            file_targets.extend(pair_target.iter().map(|t| t + offset));
            file_sources.extend(pair_source);
            offset = u32::try_from(batch.num_rows())
                .ok()
                .and_then(|n| offset.checked_add(n))
                .ok_or_else(|| Error::invalid("a MERGE target file holds over 4 billion rows"))?;
        }
        let matched_sources = file_sources.clone();
        Ok(FileScan {
            touched_pairs: touched.then_some(FilePairs {
                targets: file_targets,
                sources: file_sources,
                rows: offset,
            }),
            matched_sources,
        })
    }

    fn rewriter(&self) -> Result<Rewriter> {
        let rewriter = Rewriter::new(
            &self.table,
            &self.snapshot,
            &self.schema,
            &self.metadata,
            Some(self.writer_budget_bytes),
        )?;
        // An insert-only merge changes no existing row: its adds are its change data.
        Ok(if self.rewrites {
            rewriter
        } else {
            rewriter.without_change_data()
        })
    }

    /// Pass 2 over one touched file: copy, update and drop its rows into new files.
    async fn rewrite_file(&self, add: Add, pairs: FilePairs) -> Result<Written> {
        let mut writer = self.rewriter()?;
        let mut edit = writer.begin(&add);
        let mut counts = MergeReport::default();
        let mut violations = vec![0u64; self.checks.len()];
        let outcome: Result<()> = async {
            let mut scan = self.snapshot.scan();
            let mut read_nothing = false;
            if Rewriter::marks(&edit) && !writer.writes_change_data() {
                let table_schema = self.snapshot.arrow_schema();
                let columns = self.state.plan.marked_file_columns(&table_schema);
                // Nothing the changing rows are computed from is in the file (UPDATE * or
                // SETs of source values, DELETE): its rows need not be read again, only
                // counted, which pass 1 did.
                read_nothing = !self.state.plan.clauses_read_target
                    && self.state.plan.by_source.is_empty()
                    && columns.len() == self.state.plan.target_needed.len();
                scan = scan.with_columns(columns);
            }
            let FilePairs {
                targets,
                sources,
                rows: live_rows,
            } = pairs;
            let mut stream = if read_nothing {
                self.state.plan.placeholder_batches(live_rows)?
            } else {
                scan.build_for(std::slice::from_ref(&add))?.execute()
            };
            let mut cursor = 0usize;
            let mut offset = 0u32;
            while let Some(batch) = stream.try_next().await? {
                let rows = u32::try_from(batch.num_rows()).unwrap_or(u32::MAX);
                let end = offset.saturating_add(rows);
                let first = cursor;
                while cursor < targets.len() && targets[cursor] < end {
                    cursor += 1;
                }
                let batch_targets: Vec<u32> =
                    targets[first..cursor].iter().map(|t| t - offset).collect();
                let matches =
                    self.state
                        .decide(&batch, &batch_targets, &sources[first..cursor], true)?;
                if Rewriter::marks(&edit) {
                    // The file keeps its rows: only the changing ones are computed and written.
                    let changed: Vec<u32> = matches
                        .fates
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.changes_row())
                        .filter_map(|(i, _)| u32::try_from(i).ok())
                        .collect();
                    let (subset, sub_matches) = matches.select(&batch, &changed)?;
                    let output = self
                        .state
                        .rewrite_batch(&subset, &sub_matches, &mut counts)?;
                    if output.num_rows() > 0 {
                        self.checks.count(&output, &mut violations)?;
                    }
                    let fates: Vec<RowFate> =
                        sub_matches.fates.iter().map(Fate::row_fate).collect();
                    writer
                        .changed_rows(
                            &mut edit,
                            batch.num_rows(),
                            &changed,
                            &subset,
                            &output,
                            &fates,
                        )
                        .await?;
                } else {
                    let output = self.state.rewrite_batch(&batch, &matches, &mut counts)?;
                    if output.num_rows() > 0 {
                        self.checks.count(&output, &mut violations)?;
                    }
                    let fates: Vec<RowFate> = matches.fates.iter().map(Fate::row_fate).collect();
                    writer.batch(&mut edit, &batch, &output, &fates).await?;
                }
                offset = end;
            }
            // Data files are immutable: both passes read the same rows in the same order.
            if cursor != targets.len() {
                return Err(Error::corrupt(
                    &add.path,
                    "the data file yielded fewer rows on its second read than on its first",
                ));
            }
            Ok(())
        }
        .await;
        let outcome = match outcome {
            Ok(()) => writer.end(edit).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            writer.abort().await;
            return Err(e);
        }
        Ok(Written {
            rewritten: writer.finish().await?,
            counts,
            violations,
        })
    }

    /// The rows the `NOT MATCHED` clauses insert for the unmatched source rows.
    async fn insert(&self, unmatched: Vec<u32>) -> Result<Written> {
        let mut writer = self.rewriter()?;
        let mut counts = MergeReport::default();
        let mut violations = vec![0u64; self.checks.len()];
        let outcome: Result<()> = async {
            for chunk in unmatched.chunks(INSERT_CHUNK_ROWS) {
                let output = self.state.insert_batch(chunk)?;
                if output.num_rows() > 0 {
                    counts.rows_inserted += output.num_rows() as u64;
                    self.checks.count(&output, &mut violations)?;
                    writer.insert(&output).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            writer.abort().await;
            return Err(e);
        }
        Ok(Written {
            rewritten: writer.finish().await?,
            counts,
            violations,
        })
    }
}

impl MergeReport {
    /// Add the row counts of one task.
    fn absorb(&mut self, other: &MergeReport) {
        self.rows_inserted += other.rows_inserted;
        self.rows_copied += other.rows_copied;
        self.rows_matched_updated += other.rows_matched_updated;
        self.rows_matched_deleted += other.rows_matched_deleted;
        self.rows_not_matched_by_source_updated += other.rows_not_matched_by_source_updated;
        self.rows_not_matched_by_source_deleted += other.rows_not_matched_by_source_deleted;
    }
}

/// Spark's `matchedPredicates` / `notMatchedPredicates` / `notMatchedBySourcePredicates`:
/// JSON arrays of `{"predicate": "...", "actionType": "update|delete|insert"}`.
fn clause_parameters(clauses: &[MergeClause]) -> Vec<(&'static str, String)> {
    let entry = |condition: &Option<Expression>, action: &str| {
        let mut map = serde_json::Map::new();
        if let Some(c) = condition {
            map.insert("predicate".to_owned(), c.to_string().into());
        }
        map.insert("actionType".to_owned(), action.into());
        serde_json::Value::Object(map)
    };
    let mut matched = Vec::new();
    let mut not_matched = Vec::new();
    let mut by_source = Vec::new();
    for clause in clauses {
        match clause {
            MergeClause::Matched { condition, action } => matched.push(entry(
                condition,
                match action {
                    MatchedAction::Update(_) | MatchedAction::UpdateAll => "update",
                    MatchedAction::Delete => "delete",
                },
            )),
            MergeClause::NotMatched { condition, .. } => {
                not_matched.push(entry(condition, "insert"));
            }
            MergeClause::NotMatchedBySource { condition, action } => by_source.push(entry(
                condition,
                match action {
                    NotMatchedBySourceAction::Update(_) => "update",
                    NotMatchedBySourceAction::Delete => "delete",
                },
            )),
        }
    }
    let json = |v: Vec<serde_json::Value>| serde_json::Value::Array(v).to_string();
    vec![
        ("matchedPredicates", json(matched)),
        ("notMatchedPredicates", json(not_matched)),
        ("notMatchedBySourcePredicates", json(by_source)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------------------------

/// Which side of the merge a column reference belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Target,
    Source,
}

/// Which sides a clause may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Both,
    SourceOnly,
    TargetOnly,
}

/// Resolves column references to `alias.column` paths and records which columns each side needs.
struct Names<'s> {
    target_alias: String,
    source_alias: String,
    target: &'s Schema,
    source: &'s Schema,
    target_needed: Vec<String>,
    source_needed: Vec<String>,
    /// Whether the `ON` condition is being qualified (its target columns are read in pass 1).
    in_on: bool,
    /// Whether a clause (not `ON`) reads a target column.
    clauses_read_target: bool,
}

fn find_name<'f>(schema: &'f Schema, name: &str) -> Option<&'f String> {
    schema
        .fields()
        .iter()
        .find(|f| f.name() == name)
        .or_else(|| {
            schema
                .fields()
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(name))
        })
        .map(|f| f.name())
}

impl Names<'_> {
    /// `expr` with every column qualified by its side's alias, checked against `scope`.
    fn qualify(&mut self, expr: &Expression, scope: Scope, clause: &str) -> Result<Expression> {
        map_columns(expr, &mut |path| {
            let (side, rest) = self.side_of(path, scope, clause)?;
            let (schema, alias) = match side {
                Side::Target => (self.target, self.target_alias.clone()),
                Side::Source => (self.source, self.source_alias.clone()),
            };
            let Some(first) = rest.first() else {
                return Err(Error::invalid(format!(
                    "{clause}: `{alias}` alone is not a column"
                )));
            };
            let name = find_name(schema, first).cloned().ok_or_else(|| {
                Error::invalid(format!("{clause}: unknown column `{alias}`.`{first}`"))
            })?;
            match (side, scope) {
                (Side::Target, Scope::SourceOnly) => {
                    return Err(Error::invalid(format!(
                        "{clause}: target column `{alias}`.`{name}` cannot be read here; only source columns can"
                    )));
                }
                (Side::Source, Scope::TargetOnly) => {
                    return Err(Error::invalid(format!(
                        "{clause}: source column `{alias}`.`{name}` cannot be read here; only target columns can"
                    )));
                }
                _ => {}
            }
            if side == Side::Target && !self.in_on {
                self.clauses_read_target = true;
            }
            let needed = match side {
                Side::Target => &mut self.target_needed,
                Side::Source => &mut self.source_needed,
            };
            if !needed.contains(&name) {
                needed.push(name.clone());
            }
            let mut qualified = vec![alias, name];
            qualified.extend(rest[1..].iter().cloned());
            Ok(Expression::Column(qualified))
        })
    }

    fn side_of<'p>(
        &self,
        path: &'p [String],
        scope: Scope,
        clause: &str,
    ) -> Result<(Side, &'p [String])> {
        if path.len() >= 2 {
            if path[0].eq_ignore_ascii_case(&self.target_alias) {
                return Ok((Side::Target, &path[1..]));
            }
            if path[0].eq_ignore_ascii_case(&self.source_alias) {
                return Ok((Side::Source, &path[1..]));
            }
        }
        let name = path.first().map(String::as_str).unwrap_or_default();
        let in_target = scope != Scope::SourceOnly && find_name(self.target, name).is_some();
        let in_source = scope != Scope::TargetOnly && find_name(self.source, name).is_some();
        match (in_target, in_source) {
            (true, true) => Err(Error::invalid(format!(
                "{clause}: column `{name}` is ambiguous (both the target and the source have it); qualify it as `{}`.`{name}` or `{}`.`{name}`",
                self.target_alias, self.source_alias
            ))),
            (true, false) => Ok((Side::Target, path)),
            (false, true) => Ok((Side::Source, path)),
            (false, false) => Err(Error::invalid(format!("{clause}: unknown column `{name}`"))),
        }
    }
}

/// `expr` with every column reference replaced by `f(path)`.
fn map_columns(
    expr: &Expression,
    f: &mut dyn FnMut(&[String]) -> Result<Expression>,
) -> Result<Expression> {
    let boxed = |e: &Expression, f: &mut dyn FnMut(&[String]) -> Result<Expression>| {
        map_columns(e, f).map(Box::new)
    };
    Ok(match expr {
        Expression::Column(path) => f(path)?,
        Expression::Literal(_) => expr.clone(),
        Expression::Compare { op, left, right } => Expression::Compare {
            op: *op,
            left: boxed(left, f)?,
            right: boxed(right, f)?,
        },
        Expression::And(children) => Expression::And(
            children
                .iter()
                .map(|c| map_columns(c, f))
                .collect::<Result<_>>()?,
        ),
        Expression::Or(children) => Expression::Or(
            children
                .iter()
                .map(|c| map_columns(c, f))
                .collect::<Result<_>>()?,
        ),
        Expression::Not(inner) => Expression::Not(boxed(inner, f)?),
        Expression::IsNull { expr, negated } => Expression::IsNull {
            expr: boxed(expr, f)?,
            negated: *negated,
        },
        Expression::InList {
            expr,
            list,
            negated,
        } => Expression::InList {
            expr: boxed(expr, f)?,
            list: list
                .iter()
                .map(|c| map_columns(c, f))
                .collect::<Result<_>>()?,
            negated: *negated,
        },
        Expression::Between {
            expr,
            low,
            high,
            negated,
        } => Expression::Between {
            expr: boxed(expr, f)?,
            low: boxed(low, f)?,
            high: boxed(high, f)?,
            negated: *negated,
        },
        Expression::Arithmetic { op, left, right } => Expression::Arithmetic {
            op: *op,
            left: boxed(left, f)?,
            right: boxed(right, f)?,
        },
        Expression::Negate(inner) => Expression::Negate(boxed(inner, f)?),
        Expression::Concat { left, right } => Expression::Concat {
            left: boxed(left, f)?,
            right: boxed(right, f)?,
        },
        Expression::Case { branches, else_ } => Expression::Case {
            branches: branches
                .iter()
                .map(|(c, v)| Ok((map_columns(c, f)?, map_columns(v, f)?)))
                .collect::<Result<_>>()?,
            else_: else_.as_ref().map(|e| boxed(e, f)).transpose()?,
        },
        Expression::Function { name, args } => Expression::Function {
            name: *name,
            args: args
                .iter()
                .map(|c| map_columns(c, f))
                .collect::<Result<_>>()?,
        },
        Expression::Cast { expr, to } => Expression::Cast {
            expr: boxed(expr, f)?,
            to: *to,
        },
    })
}

/// The sides a qualified expression reads.
fn sides_of(expr: &Expression, target_alias: &str) -> (bool, bool) {
    let mut target = false;
    let mut source = false;
    let _ = map_columns(expr, &mut |path| {
        if path.first().is_some_and(|p| p == target_alias) {
            target = true;
        } else {
            source = true;
        }
        Ok(Expression::Column(path.to_vec()))
    });
    (target, source)
}

/// The conjuncts of a predicate (`a AND (b AND c)` gives `a`, `b`, `c`).
fn conjuncts(expr: &Expression) -> Vec<Expression> {
    match expr {
        Expression::And(children) => children.iter().flat_map(conjuncts).collect(),
        other => vec![other.clone()],
    }
}

/// One equality key of `ON`: the two sides' values and the type they are compared in.
#[derive(Debug)]
struct JoinKey {
    target: BoundValue,
    source: BoundValue,
    common: ArrowType,
    /// The target column when the target side is a plain top-level column (used for pruning).
    target_column: Option<String>,
}

/// What a clause does to a target row: new values for some output columns, or delete it.
#[derive(Debug)]
enum RowAction {
    Update(Vec<(usize, BoundValue)>),
    Delete,
}

#[derive(Debug)]
struct BoundClause<A> {
    condition: Option<BoundExpression>,
    action: A,
}

/// The merge's conditions and values bound to the pair schema `(t struct, s struct)`.
#[derive(Debug)]
struct Plan {
    target_alias: String,
    source_alias: String,
    output_schema: SchemaRef,
    keys: Vec<JoinKey>,
    residual: Option<BoundExpression>,
    matched: Vec<BoundClause<RowAction>>,
    not_matched: Vec<BoundClause<Vec<(usize, BoundValue)>>>,
    by_source: Vec<BoundClause<RowAction>>,
    /// Target columns any condition or value reads (what pass 1 reads).
    target_needed: Vec<String>,
    /// Source columns any condition or value reads.
    source_needed: Vec<String>,
    /// Conjuncts of `ON` that read only the target, with plain column names (for pruning).
    target_only: Vec<Expression>,
    /// Whether multiple matches are allowed (the only MATCHED clause is an unconditional DELETE).
    multiple_matches_allowed: bool,
    /// Whether only pairs with a TRUE matched condition count towards the multiple-match check
    /// (Spark: when the merge has only MATCHED clauses).
    check_only_acting_pairs: bool,
    /// Whether a WHEN clause's condition or values read a target column.
    clauses_read_target: bool,
}

impl Plan {
    #[allow(
        clippy::too_many_arguments,
        reason = "the independent inputs of binding, private"
    )]
    #[allow(
        clippy::too_many_lines,
        reason = "one pass over the clauses, easier to read in one place"
    )]
    fn bind(
        snapshot: &Snapshot,
        source_schema: &Schema,
        output_schema: &SchemaRef,
        on: &Expression,
        target_alias: &str,
        source_alias: &str,
        clauses: &[MergeClause],
        merge_schema: bool,
    ) -> Result<Self> {
        if target_alias.eq_ignore_ascii_case(source_alias) {
            return Err(Error::invalid(
                "the MERGE target and source aliases must differ",
            ));
        }
        let target_schema = snapshot.arrow_schema();
        let pair_schema = Schema::new(vec![
            Field::new(
                target_alias,
                ArrowType::Struct(nullable_fields(target_schema.fields())),
                true,
            ),
            Field::new(
                source_alias,
                ArrowType::Struct(nullable_fields(source_schema.fields())),
                true,
            ),
        ]);
        let mut names = Names {
            target_alias: target_alias.to_owned(),
            source_alias: source_alias.to_owned(),
            target: &target_schema,
            source: source_schema,
            target_needed: Vec::new(),
            source_needed: Vec::new(),
            in_on: true,
            clauses_read_target: false,
        };

        // ON: equality keys and the residual.
        let qualified_on = names.qualify(on, Scope::Both, "ON")?;
        names.in_on = false;
        let mut keys = Vec::new();
        let mut residual = Vec::new();
        let mut target_only = Vec::new();
        for conjunct in conjuncts(&qualified_on) {
            let key = match &conjunct {
                Expression::Compare {
                    op: CompareOp::Eq,
                    left,
                    right,
                } => {
                    let l = sides_of(left, target_alias);
                    let r = sides_of(right, target_alias);
                    match (l, r) {
                        ((true, false), (false, true)) => Some((left, right)),
                        ((false, true), (true, false)) => Some((right, left)),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some((t, s)) = key {
                let target = t.bind_value(&pair_schema, None)?;
                let source = s.bind_value(&pair_schema, None)?;
                let common =
                    common_key_type(target.data_type(), source.data_type()).ok_or_else(|| {
                        Error::invalid(format!(
                            "ON: `{conjunct}` compares {} with {}; CAST one side",
                            target.data_type(),
                            source.data_type()
                        ))
                    })?;
                let target_column = match t.as_ref() {
                    Expression::Column(path) if path.len() == 2 => Some(path[1].clone()),
                    _ => None,
                };
                keys.push(JoinKey {
                    target,
                    source,
                    common,
                    target_column,
                });
                continue;
            }
            if sides_of(&conjunct, target_alias) == (true, false) {
                target_only.push(strip_alias(&conjunct));
            }
            residual.push(conjunct);
        }
        if keys.is_empty() {
            return Err(Error::invalid(
                "ON needs at least one equality between a target and a source value (`t.key = s.key`)",
            ));
        }
        let residual = match residual.len() {
            0 => None,
            1 => Some(residual.remove(0).bind(&pair_schema)?),
            _ => Some(Expression::And(residual).bind(&pair_schema)?),
        };

        // Clauses.
        let mut matched = Vec::new();
        let mut not_matched = Vec::new();
        let mut by_source = Vec::new();
        let (mut n_matched, mut n_not_matched, mut n_by_source) = (0, 0, 0);
        for clause in clauses {
            match clause {
                MergeClause::Matched { condition, action } => {
                    n_matched += 1;
                    let name = format!("WHEN MATCHED clause {n_matched}");
                    let condition =
                        bind_condition(&mut names, condition, Scope::Both, &name, &pair_schema)?;
                    let action = match action {
                        MatchedAction::Delete => RowAction::Delete,
                        MatchedAction::Update(sets) => RowAction::Update(bind_assignments(
                            &mut names,
                            sets,
                            Scope::Both,
                            &format!("{name} (UPDATE)"),
                            &pair_schema,
                            output_schema,
                        )?),
                        MatchedAction::UpdateAll => {
                            let sets = star_assignments(
                                output_schema,
                                source_schema,
                                source_alias,
                                merge_schema,
                                &format!("{name} (UPDATE *)"),
                            )?;
                            RowAction::Update(bind_assignments(
                                &mut names,
                                &sets,
                                Scope::Both,
                                &format!("{name} (UPDATE *)"),
                                &pair_schema,
                                output_schema,
                            )?)
                        }
                    };
                    matched.push(BoundClause { condition, action });
                }
                MergeClause::NotMatched { condition, action } => {
                    n_not_matched += 1;
                    let name = format!("WHEN NOT MATCHED clause {n_not_matched}");
                    let condition = bind_condition(
                        &mut names,
                        condition,
                        Scope::SourceOnly,
                        &name,
                        &pair_schema,
                    )?;
                    let sets = match action {
                        NotMatchedAction::Insert(sets) => sets.clone(),
                        NotMatchedAction::InsertAll => star_assignments(
                            output_schema,
                            source_schema,
                            source_alias,
                            merge_schema,
                            &format!("{name} (INSERT *)"),
                        )?,
                    };
                    let action = bind_assignments(
                        &mut names,
                        &sets,
                        Scope::SourceOnly,
                        &format!("{name} (INSERT)"),
                        &pair_schema,
                        output_schema,
                    )?;
                    not_matched.push(BoundClause { condition, action });
                }
                MergeClause::NotMatchedBySource { condition, action } => {
                    n_by_source += 1;
                    let name = format!("WHEN NOT MATCHED BY SOURCE clause {n_by_source}");
                    let condition = bind_condition(
                        &mut names,
                        condition,
                        Scope::TargetOnly,
                        &name,
                        &pair_schema,
                    )?;
                    let action = match action {
                        NotMatchedBySourceAction::Delete => RowAction::Delete,
                        NotMatchedBySourceAction::Update(sets) => {
                            RowAction::Update(bind_assignments(
                                &mut names,
                                sets,
                                Scope::TargetOnly,
                                &format!("{name} (UPDATE)"),
                                &pair_schema,
                                output_schema,
                            )?)
                        }
                    };
                    by_source.push(BoundClause { condition, action });
                }
            }
        }
        let multiple_matches_allowed = matched.len() == 1
            && matched[0].condition.is_none()
            && matches!(matched[0].action, RowAction::Delete);
        let check_only_acting_pairs = not_matched.is_empty() && by_source.is_empty();
        let Names {
            target_needed,
            source_needed,
            clauses_read_target,
            ..
        } = names;
        Ok(Self {
            target_alias: target_alias.to_owned(),
            source_alias: source_alias.to_owned(),
            output_schema: output_schema.clone(),
            keys,
            residual,
            matched,
            not_matched,
            by_source,
            target_needed,
            source_needed,
            target_only,
            multiple_matches_allowed,
            check_only_acting_pairs,
            clauses_read_target,
        })
    }

    fn is_insert_only(&self) -> bool {
        self.matched.is_empty() && self.by_source.is_empty()
    }

    /// Build the key index over the source rows.
    fn index_source(&self, source: &RecordBatch) -> Result<KeyIndex> {
        let batch = side_batch(&self.source_alias, source, &self.source_needed, None)?;
        let keys = self
            .keys
            .iter()
            .map(|k| key_array(&k.source, &k.common, &batch, "source"))
            .collect::<Result<Vec<_>>>()?;
        KeyIndex::build(&keys)
    }
}

fn nullable_fields(fields: &Fields) -> Fields {
    fields
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect()
}

/// A qualified expression with the alias removed (`t.a` → `a`), for predicates over the table.
fn strip_alias(expr: &Expression) -> Expression {
    map_columns(expr, &mut |path| {
        Ok(Expression::Column(path.get(1..).unwrap_or(path).to_vec()))
    })
    .unwrap_or_else(|_| expr.clone())
}

fn bind_condition(
    names: &mut Names<'_>,
    condition: &Option<Expression>,
    scope: Scope,
    clause: &str,
    pair_schema: &Schema,
) -> Result<Option<BoundExpression>> {
    condition
        .as_ref()
        .map(|c| {
            names
                .qualify(c, scope, clause)?
                .bind(pair_schema)
                .map_err(|e| in_clause(clause, e))
        })
        .transpose()
}

fn in_clause(clause: &str, error: Error) -> Error {
    match error {
        Error::InvalidArgument { message } if !message.starts_with(clause) => {
            Error::invalid(format!("{clause}: {message}"))
        }
        other => other,
    }
}

/// `UPDATE *` / `INSERT *` as assignments: each table column from the same-named source column.
fn star_assignments(
    output_schema: &Schema,
    source_schema: &Schema,
    source_alias: &str,
    merge_schema: bool,
    clause: &str,
) -> Result<Vec<(String, Expression)>> {
    let mut sets = Vec::new();
    for field in output_schema.fields() {
        match find_name(source_schema, field.name()) {
            Some(name) => sets.push((
                field.name().clone(),
                Expression::Column(vec![source_alias.to_owned(), name.clone()]),
            )),
            None if merge_schema => {}
            None => {
                return Err(Error::invalid(format!(
                    "{clause}: the source has no column `{}`; add it, list the columns, or merge with schema evolution",
                    field.name()
                )));
            }
        }
    }
    Ok(sets)
}

/// Bind `column = value` assignments to output column indices.
fn bind_assignments(
    names: &mut Names<'_>,
    sets: &[(String, Expression)],
    scope: Scope,
    clause: &str,
    pair_schema: &Schema,
    output_schema: &Schema,
) -> Result<Vec<(usize, BoundValue)>> {
    let mut bound: Vec<(usize, BoundValue)> = Vec::with_capacity(sets.len());
    for (column, value) in sets {
        let plain = column
            .split_once('.')
            .filter(|(alias, _)| alias.eq_ignore_ascii_case(&names.target_alias))
            .map_or(column.as_str(), |(_, rest)| rest)
            .trim_matches('`');
        let name = find_name(output_schema, plain)
            .ok_or_else(|| Error::invalid(format!("{clause}: unknown target column `{plain}`")))?;
        let index = output_schema.index_of(name)?;
        if bound.iter().any(|(i, _)| *i == index) {
            return Err(Error::invalid(format!(
                "{clause}: column `{name}` is assigned twice"
            )));
        }
        let qualified = names.qualify(value, scope, clause)?;
        let target_type = output_schema.field(index).data_type();
        let value = qualified
            .bind_value(pair_schema, Some(target_type))
            .map_err(|e| in_clause(&format!("{clause} `{name}`"), e))?;
        bound.push((index, value));
    }
    Ok(bound)
}

// ---------------------------------------------------------------------------------------------
// Execution over batches (pure: batches in, batches out)
// ---------------------------------------------------------------------------------------------

/// What happens to one target row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// No source row matched it and no `NOT MATCHED BY SOURCE` clause applies.
    Untouched,
    /// Matched, but no `WHEN MATCHED` clause applies: copied if its file is rewritten.
    Matched,
    /// Updated by `WHEN MATCHED` clause `clause`, with the values of pair `pair`.
    MatchedUpdate { clause: usize, pair: u32 },
    /// Deleted by a `WHEN MATCHED` clause.
    MatchedDelete,
    /// Updated by `WHEN NOT MATCHED BY SOURCE` clause `clause`.
    BySourceUpdate { clause: usize },
    /// Deleted by a `WHEN NOT MATCHED BY SOURCE` clause.
    BySourceDelete,
}

impl Fate {
    fn changes_row(&self) -> bool {
        !matches!(self, Self::Untouched | Self::Matched)
    }

    /// What the row's file sees.
    fn row_fate(&self) -> RowFate {
        match self {
            Self::Untouched | Self::Matched => RowFate::Kept,
            Self::MatchedUpdate { .. } | Self::BySourceUpdate { .. } => RowFate::Updated,
            Self::MatchedDelete | Self::BySourceDelete => RowFate::Deleted,
        }
    }
}

/// The merge's view of one batch of target rows.
#[derive(Debug)]
struct BatchMatches {
    /// The pairs as a `(t, s)` batch, when some `WHEN MATCHED` clause needs them.
    pair_batch: Option<RecordBatch>,
    /// The target rows as a `(t, s = NULL)` batch, when `NOT MATCHED BY SOURCE` clauses exist.
    target_batch: Option<RecordBatch>,
    /// One per target row.
    fates: Vec<Fate>,
}

impl BatchMatches {
    /// The target rows at `rows` of `target` (the batch these matches are of), with their
    /// matches: pairs are kept whole (fates point into them), per-row state is taken.
    fn select(&self, target: &RecordBatch, rows: &[u32]) -> Result<(RecordBatch, BatchMatches)> {
        let indices = UInt32Array::from(rows.to_vec());
        let subset = take_record_batch(target, &indices)?;
        let target_batch = self
            .target_batch
            .as_ref()
            .map(|b| take_record_batch(b, &indices))
            .transpose()?;
        let fates = rows.iter().map(|r| self.fates[*r as usize]).collect();
        Ok((
            subset,
            BatchMatches {
                pair_batch: self.pair_batch.clone(),
                target_batch,
                fates,
            },
        ))
    }
}

struct MergeState {
    plan: Plan,
    source: RecordBatch,
    index: KeyIndex,
}

impl MergeState {
    /// The predicate over table columns that every affected target row satisfies (`None` when
    /// every row may be affected: `NOT MATCHED BY SOURCE` clauses).
    fn read_predicate(&self, snapshot: &Snapshot) -> Result<Option<Expression>> {
        if !self.plan.by_source.is_empty() {
            return Ok(None);
        }
        let table_schema = snapshot.arrow_schema();
        let batch = side_batch(
            &self.plan.source_alias,
            &self.source,
            &self.plan.source_needed,
            None,
        )?;
        let mut conjuncts = Vec::new();
        for key in &self.plan.keys {
            let Some(column) = &key.target_column else {
                continue;
            };
            let values = key_array(&key.source, &key.common, &batch, "source")?;
            if let Some(p) = key_predicate(column, &values, self.index.distinct_hashes()) {
                // A literal that does not fit the column's type cannot prune: drop it.
                if p.bind(&table_schema).is_ok() {
                    conjuncts.push(p);
                }
            }
        }
        for p in &self.plan.target_only {
            if p.bind(&table_schema).is_ok() {
                conjuncts.push(p.clone());
            }
        }
        Ok(match conjuncts.len() {
            0 => Some(Expression::Literal(Literal::Boolean(true))),
            1 => conjuncts.pop(),
            _ => Some(Expression::And(conjuncts)),
        })
    }

    /// The pairs of (target row, source row) of a batch of target rows for which the whole
    /// `ON` condition is TRUE, in target row order.
    fn find_pairs(&self, target: &RecordBatch) -> Result<(Vec<u32>, Vec<u32>)> {
        let plan = &self.plan;
        let t_batch = side_batch(&plan.target_alias, target, &plan.target_needed, None)?;
        let keys = plan
            .keys
            .iter()
            .map(|k| key_array(&k.target, &k.common, &t_batch, "target"))
            .collect::<Result<Vec<_>>>()?;
        let pairs = self.index.probe(&keys)?;
        let (pair_target, pair_source) = (pairs.target, pairs.source);
        let Some(residual) = &plan.residual else {
            return Ok((pair_target, pair_source));
        };
        if pair_target.is_empty() {
            return Ok((pair_target, pair_source));
        }
        let batch = self.pair_batch(target, &pair_target, &pair_source)?;
        let keep = true_mask(&residual.evaluate(&batch)?);
        let kept = |v: &[u32]| -> Vec<u32> {
            v.iter()
                .zip(keep.values().iter())
                .filter(|(_, k)| *k)
                .map(|(x, _)| *x)
                .collect()
        };
        Ok((kept(&pair_target), kept(&pair_source)))
    }

    /// Decide the fate of every row of a batch of target rows, given its `ON` pairs.
    ///
    /// `with_values` also prepares what [`MergeState::rewrite_batch`] needs to compute the
    /// updated values (pass 2); pass 1 only needs the fates.
    fn decide(
        &self,
        target: &RecordBatch,
        pair_target: &[u32],
        pair_source: &[u32],
        with_values: bool,
    ) -> Result<BatchMatches> {
        let plan = &self.plan;
        let rows = target.num_rows();
        let mut fates = vec![Fate::Untouched; rows];
        let mut pair_batch = None;

        // WHEN MATCHED: the first clause whose condition holds, per pair.
        let mut pair_clause: Vec<Option<usize>> = vec![None; pair_target.len()];
        let needs_pair_batch = plan.matched.iter().any(|c| {
            c.condition.is_some() || (with_values && matches!(c.action, RowAction::Update(_)))
        });
        if !plan.matched.is_empty() && !pair_target.is_empty() {
            let batch = if needs_pair_batch {
                Some(self.pair_batch(target, pair_target, pair_source)?)
            } else {
                None
            };
            assign_clauses(&plan.matched, batch.as_ref(), &mut pair_clause)?;
            pair_batch = batch;
        }
        // Spark's multiple-match rule.
        if !plan.multiple_matches_allowed {
            let mut counts = vec![0u8; rows];
            for (i, t) in pair_target.iter().enumerate() {
                if plan.check_only_acting_pairs && pair_clause[i].is_none() {
                    continue;
                }
                let count = &mut counts[*t as usize];
                *count = count.saturating_add(1);
                if *count > 1 {
                    return Err(Error::invalid(
                        "MERGE: a target row matched more than one source row and a WHEN MATCHED clause would change it, which is ambiguous (Spark refuses it too); make the source unique on the ON keys",
                    ));
                }
            }
        }
        for (i, t) in pair_target.iter().enumerate() {
            let fate = &mut fates[*t as usize];
            if *fate == Fate::Untouched {
                *fate = Fate::Matched;
            }
            if *fate == Fate::Matched
                && let Some(c) = pair_clause[i]
            {
                *fate = match plan.matched[c].action {
                    RowAction::Delete => Fate::MatchedDelete,
                    RowAction::Update(_) => Fate::MatchedUpdate {
                        clause: c,
                        pair: u32::try_from(i).unwrap_or(u32::MAX),
                    },
                };
            }
        }

        // WHEN NOT MATCHED BY SOURCE: the first clause whose condition holds, per unmatched row.
        let mut target_batch = None;
        let needs_target_batch = plan.by_source.iter().any(|c| {
            c.condition.is_some() || (with_values && matches!(c.action, RowAction::Update(_)))
        });
        if !plan.by_source.is_empty() && fates.contains(&Fate::Untouched) {
            let batch = if needs_target_batch {
                Some(self.target_only_batch(target)?)
            } else {
                None
            };
            let mut row_clause: Vec<Option<usize>> = fates
                .iter()
                .map(|f| (*f != Fate::Untouched).then_some(usize::MAX))
                .collect();
            assign_clauses(&plan.by_source, batch.as_ref(), &mut row_clause)?;
            for (fate, clause) in fates.iter_mut().zip(&row_clause) {
                if let (Fate::Untouched, Some(c)) = (*fate, *clause)
                    && c != usize::MAX
                {
                    *fate = match plan.by_source[c].action {
                        RowAction::Delete => Fate::BySourceDelete,
                        RowAction::Update(_) => Fate::BySourceUpdate { clause: c },
                    };
                }
            }
            target_batch = batch;
        }
        Ok(BatchMatches {
            pair_batch,
            target_batch,
            fates,
        })
    }

    /// The `(t, s)` batch of the given pairs, with the columns the plan reads.
    fn pair_batch(&self, target: &RecordBatch, t: &[u32], s: &[u32]) -> Result<RecordBatch> {
        let t_idx = UInt32Array::from(t.to_vec());
        let s_idx = UInt32Array::from(s.to_vec());
        let t_struct = side_struct(target, &self.plan.target_needed, Some(&t_idx))?;
        let s_struct = side_struct(&self.source, &self.plan.source_needed, Some(&s_idx))?;
        pair_of(
            &self.plan.target_alias,
            t_struct,
            &self.plan.source_alias,
            s_struct,
        )
    }

    /// The `(t, s = NULL)` batch of all target rows.
    fn target_only_batch(&self, target: &RecordBatch) -> Result<RecordBatch> {
        let t_struct = side_struct(target, &self.plan.target_needed, None)?;
        let s_struct = null_struct(&self.source, &self.plan.source_needed, target.num_rows());
        pair_of(
            &self.plan.target_alias,
            t_struct,
            &self.plan.source_alias,
            s_struct,
        )
    }

    /// The rows of a rewritten batch: copies, updates; deletions dropped. Counts into `report`.
    fn rewrite_batch(
        &self,
        target: &RecordBatch,
        matches: &BatchMatches,
        report: &mut MergeReport,
    ) -> Result<RecordBatch> {
        let plan = &self.plan;
        let output_schema = &plan.output_schema;
        let rows = target.num_rows();
        let target = conform_target(target, output_schema)?;
        // The value arrays of each update clause: (clause kind, clause) -> [(column, values)].
        let mut matched_values: Vec<Vec<(usize, ArrayRef)>> = Vec::new();
        for (c, clause) in plan.matched.iter().enumerate() {
            let RowAction::Update(sets) = &clause.action else {
                matched_values.push(Vec::new());
                continue;
            };
            let Some(batch) = &matches.pair_batch else {
                matched_values.push(Vec::new());
                continue;
            };
            let mut mask = vec![false; batch.num_rows()];
            let mut any = false;
            for fate in &matches.fates {
                if let Fate::MatchedUpdate { clause, pair } = fate
                    && *clause == c
                {
                    mask[*pair as usize] = true;
                    any = true;
                }
            }
            if !any {
                matched_values.push(Vec::new());
                continue;
            }
            let mask = BooleanArray::from(mask);
            let values = sets
                .iter()
                .map(|(i, v)| Ok((*i, v.evaluate_where(batch, &mask)?)))
                .collect::<Result<Vec<_>>>()?;
            matched_values.push(values);
        }
        let mut by_source_values: Vec<Vec<(usize, ArrayRef)>> = Vec::new();
        for (c, clause) in plan.by_source.iter().enumerate() {
            let (RowAction::Update(sets), Some(batch)) = (&clause.action, &matches.target_batch)
            else {
                by_source_values.push(Vec::new());
                continue;
            };
            let mask: BooleanArray = matches
                .fates
                .iter()
                .map(|f| Some(*f == Fate::BySourceUpdate { clause: c }))
                .collect();
            if mask.true_count() == 0 {
                by_source_values.push(Vec::new());
                continue;
            }
            let values = sets
                .iter()
                .map(|(i, v)| Ok((*i, v.evaluate_where(batch, &mask)?)))
                .collect::<Result<Vec<_>>>()?;
            by_source_values.push(values);
        }

        let mut columns = Vec::with_capacity(output_schema.fields().len());
        for (j, field) in output_schema.fields().iter().enumerate() {
            let original = target.column(j);
            let mut arrays: Vec<&dyn Array> = vec![original.as_ref()];
            // Slot of clause c's values for column j, if clause c sets it.
            let mut matched_slot = vec![None; matched_values.len()];
            let mut by_source_slot = vec![None; by_source_values.len()];
            let mut casted = Vec::new();
            for (c, values) in matched_values.iter().enumerate() {
                if let Some((_, array)) = values.iter().find(|(i, _)| *i == j) {
                    casted.push((true, c, fit(array, original.data_type(), field.name())?));
                }
            }
            for (c, values) in by_source_values.iter().enumerate() {
                if let Some((_, array)) = values.iter().find(|(i, _)| *i == j) {
                    casted.push((false, c, fit(array, original.data_type(), field.name())?));
                }
            }
            for (is_matched, c, array) in &casted {
                let slot = Some(arrays.len());
                arrays.push(array.as_ref());
                if *is_matched {
                    matched_slot[*c] = slot;
                } else {
                    by_source_slot[*c] = slot;
                }
            }
            let mut indices = Vec::with_capacity(rows);
            for (row, fate) in matches.fates.iter().enumerate() {
                match fate {
                    Fate::Untouched | Fate::Matched => indices.push((0, row)),
                    Fate::MatchedDelete | Fate::BySourceDelete => {}
                    Fate::MatchedUpdate { clause, pair } => match matched_slot[*clause] {
                        Some(slot) => indices.push((slot, *pair as usize)),
                        None => indices.push((0, row)),
                    },
                    Fate::BySourceUpdate { clause } => match by_source_slot[*clause] {
                        Some(slot) => indices.push((slot, row)),
                        None => indices.push((0, row)),
                    },
                }
            }
            columns.push(interleave(&arrays, &indices)?);
        }
        for fate in &matches.fates {
            match fate {
                Fate::Untouched | Fate::Matched => report.rows_copied += 1,
                Fate::MatchedUpdate { .. } => report.rows_matched_updated += 1,
                Fate::MatchedDelete => report.rows_matched_deleted += 1,
                Fate::BySourceUpdate { .. } => report.rows_not_matched_by_source_updated += 1,
                Fate::BySourceDelete => report.rows_not_matched_by_source_deleted += 1,
            }
        }
        let kept = matches
            .fates
            .iter()
            .filter(|f| !matches!(f, Fate::MatchedDelete | Fate::BySourceDelete))
            .count();
        output_batch(output_schema, columns, kept)
    }

    /// The rows the `NOT MATCHED` clauses insert for the unmatched source rows `rows`.
    fn insert_batch(&self, rows: &[u32]) -> Result<RecordBatch> {
        let plan = &self.plan;
        let output_schema = &plan.output_schema;
        let s_idx = UInt32Array::from(rows.to_vec());
        let s_struct = side_struct(&self.source, &plan.source_needed, Some(&s_idx))?;
        let t_struct = null_struct_of(&plan.target_needed_fields(), rows.len());
        let batch = pair_of(&plan.target_alias, t_struct, &plan.source_alias, s_struct)?;
        let mut row_clause = vec![None; rows.len()];
        assign_clauses(&plan.not_matched, Some(&batch), &mut row_clause)?;
        let mut values: Vec<Vec<(usize, ArrayRef)>> = Vec::new();
        for (c, clause) in plan.not_matched.iter().enumerate() {
            let mask: BooleanArray = row_clause.iter().map(|r| Some(*r == Some(c))).collect();
            if mask.true_count() == 0 {
                values.push(Vec::new());
                continue;
            }
            values.push(
                clause
                    .action
                    .iter()
                    .map(|(i, v)| Ok((*i, v.evaluate_where(&batch, &mask)?)))
                    .collect::<Result<_>>()?,
            );
        }
        let inserted = row_clause.iter().filter(|c| c.is_some()).count();
        let mut columns = Vec::with_capacity(output_schema.fields().len());
        for (j, field) in output_schema.fields().iter().enumerate() {
            let null = new_null_array(field.data_type(), 1);
            let mut arrays: Vec<ArrayRef> = vec![null];
            let mut slot = vec![None; values.len()];
            for (c, vals) in values.iter().enumerate() {
                if let Some((_, array)) = vals.iter().find(|(i, _)| *i == j) {
                    slot[c] = Some(arrays.len());
                    arrays.push(fit(array, field.data_type(), field.name())?);
                }
            }
            let indices: Vec<(usize, usize)> = row_clause
                .iter()
                .enumerate()
                .filter_map(|(row, c)| c.map(|c| slot[c].map_or((0, 0), |s| (s, row))))
                .collect();
            let refs: Vec<&dyn Array> = arrays.iter().map(AsRef::as_ref).collect();
            columns.push(interleave(&refs, &indices)?);
        }
        output_batch(output_schema, columns, inserted)
    }
}

impl Plan {
    /// The columns of `target` that pass 2 must read from a file that keeps its rows behind a
    /// deletion vector, when no change data is written: only changing rows are computed, so
    /// what conditions and values read and every column some UPDATE leaves as it was (a
    /// column every UPDATE sets comes from the source; deleted rows are not written).
    fn marked_file_columns(&self, target: &Schema) -> Vec<String> {
        let mut columns = self.target_needed.clone();
        let updates = self
            .matched
            .iter()
            .chain(&self.by_source)
            .filter_map(|c| match &c.action {
                RowAction::Update(sets) => Some(sets),
                RowAction::Delete => None,
            });
        let mut kept = vec![false; self.output_schema.fields().len()];
        for sets in updates {
            for (j, k) in kept.iter_mut().enumerate() {
                *k |= !sets.iter().any(|(i, _)| *i == j);
            }
        }
        for (field, k) in self.output_schema.fields().iter().zip(kept) {
            if k && target.field_with_name(field.name()).is_ok() && !columns.contains(field.name())
            {
                columns.push(field.name().clone());
            }
        }
        columns
    }

    /// Batches of `rows` rows in total holding NULL in every column of `target_needed`:
    /// stand-ins for a file's rows when pass 2 computes nothing from them.
    fn placeholder_batches(&self, rows: u32) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let schema: SchemaRef = Arc::new(Schema::new(self.target_needed_fields()));
        let mut batches = Vec::new();
        let mut start = 0u32;
        while start < rows {
            let len = (rows - start).min(PLACEHOLDER_BATCH_ROWS);
            let columns = schema
                .fields()
                .iter()
                .map(|f| arrow::array::new_null_array(f.data_type(), len as usize))
                .collect();
            batches.push(Ok(RecordBatch::try_new(schema.clone(), columns)?));
            start += len;
        }
        Ok(futures::stream::iter(batches).boxed())
    }

    /// The fields of the target columns the plan reads (from the output schema, which holds
    /// every target column).
    fn target_needed_fields(&self) -> Vec<Field> {
        self.target_needed
            .iter()
            .filter_map(|n| self.output_schema.field_with_name(n).ok())
            .map(|f| f.clone().with_nullable(true))
            .collect()
    }
}

/// For each row of `batch`, the first clause whose condition is TRUE (rows already assigned,
/// `Some`, are left alone).
fn assign_clauses<A>(
    clauses: &[BoundClause<A>],
    batch: Option<&RecordBatch>,
    assigned: &mut [Option<usize>],
) -> Result<()> {
    for (c, clause) in clauses.iter().enumerate() {
        if assigned.iter().all(Option::is_some) {
            break;
        }
        match &clause.condition {
            None => {
                for a in assigned.iter_mut().filter(|a| a.is_none()) {
                    *a = Some(c);
                }
            }
            Some(condition) => {
                let batch = batch.ok_or_else(|| {
                    Error::invalid("internal error: a MERGE condition without its rows")
                })?;
                let holds = true_mask(&condition.evaluate(batch)?);
                for (a, h) in assigned.iter_mut().zip(holds.values().iter()) {
                    if a.is_none() && h {
                        *a = Some(c);
                    }
                }
            }
        }
    }
    Ok(())
}

/// A key side's values in the common key type, floats normalized.
fn key_array(
    value: &BoundValue,
    common: &ArrowType,
    batch: &RecordBatch,
    side: &str,
) -> Result<ArrayRef> {
    let array = value
        .evaluate(batch)
        .map_err(|e| in_clause(&format!("ON ({side} key)"), e))?;
    let array = if array.data_type() == common {
        array
    } else {
        cast(&array, common)?
    };
    Ok(crate::expression::normalize_floats(array))
}

/// The struct of `columns` of `batch` (taken at `indices` when given).
fn side_struct(
    batch: &RecordBatch,
    columns: &[String],
    indices: Option<&UInt32Array>,
) -> Result<ArrayRef> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for name in columns {
        let Some(array) = batch.column_by_name(name) else {
            continue;
        };
        let array = match indices {
            Some(i) => take(array.as_ref(), i, None)?,
            None => array.clone(),
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let len = indices.map_or(batch.num_rows(), Array::len);
    if fields.is_empty() {
        return Ok(Arc::new(StructArray::new_empty_fields(len, None)));
    }
    Ok(Arc::new(StructArray::try_new(
        Fields::from(fields),
        arrays,
        None,
    )?))
}

/// An all-NULL struct with the `columns` of `batch`'s schema.
fn null_struct(batch: &RecordBatch, columns: &[String], len: usize) -> ArrayRef {
    let fields: Vec<Field> = columns
        .iter()
        .filter_map(|n| batch.schema().field_with_name(n).ok().cloned())
        .map(|f| f.with_nullable(true))
        .collect();
    null_struct_of(&fields, len)
}

fn null_struct_of(fields: &[Field], len: usize) -> ArrayRef {
    if fields.is_empty() {
        return Arc::new(StructArray::new_empty_fields(
            len,
            Some(arrow::buffer::NullBuffer::new_null(len)),
        ));
    }
    Arc::new(StructArray::new_null(Fields::from(fields.to_vec()), len))
}

/// A batch with one struct column named `alias` (the columns the plan reads from one side).
fn side_batch(
    alias: &str,
    batch: &RecordBatch,
    columns: &[String],
    indices: Option<&UInt32Array>,
) -> Result<RecordBatch> {
    let array = side_struct(batch, columns, indices)?;
    let schema = Schema::new(vec![Field::new(alias, array.data_type().clone(), true)]);
    Ok(RecordBatch::try_new_with_options(
        Arc::new(schema),
        vec![array],
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

fn pair_of(
    target_alias: &str,
    t: ArrayRef,
    source_alias: &str,
    s: ArrayRef,
) -> Result<RecordBatch> {
    let rows = t.len();
    let schema = Schema::new(vec![
        Field::new(target_alias, t.data_type().clone(), true),
        Field::new(source_alias, s.data_type().clone(), true),
    ]);
    Ok(RecordBatch::try_new_with_options(
        Arc::new(schema),
        vec![t, s],
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// A target batch with the output schema's columns (new columns of schema evolution as NULL).
fn conform_target(batch: &RecordBatch, output_schema: &Schema) -> Result<RecordBatch> {
    let columns = output_schema
        .fields()
        .iter()
        .map(|f| {
            batch
                .column_by_name(f.name())
                .cloned()
                .unwrap_or_else(|| new_null_array(f.data_type(), batch.num_rows()))
        })
        .collect();
    output_batch(output_schema, columns, batch.num_rows())
}

/// `array` in `data_type` (values are bound to the column's type; nested nullability may
/// differ between the bound and the scanned type).
fn fit(array: &ArrayRef, data_type: &ArrowType, column: &str) -> Result<ArrayRef> {
    if array.data_type() == data_type {
        return Ok(array.clone());
    }
    cast(array, data_type).map_err(|e| {
        Error::invalid(format!(
            "the new values of column `{column}` cannot be stored as {data_type}: {e}"
        ))
    })
}

/// A pruning predicate over `column` from the source key values: their distinct values when
/// few, else their range. `None` when the values' type has no literal form.
fn key_predicate(column: &str, values: &ArrayRef, distinct_hashes: usize) -> Option<Expression> {
    let col = Expression::Column(vec![column.to_owned()]);
    if values.len() == values.null_count() {
        // No key can match: a predicate no file satisfies.
        return Some(Expression::Literal(Literal::Boolean(false)));
    }
    if let ArrowType::Float32 | ArrowType::Float64 = values.data_type() {
        // NaN sorts above every number; a range would need it as a bound.
        let floats = cast(values, &ArrowType::Float64).ok()?;
        let floats = floats
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()?;
        if floats.iter().flatten().any(f64::is_nan) {
            return None;
        }
    }
    if distinct_hashes <= DISTINCT_PRUNING_MAX {
        let mut seen = HashSet::new();
        let mut list = Vec::new();
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            let literal = literal_at(values, i)?;
            if seen.insert(format!("{literal:?}")) {
                list.push(Expression::Literal(literal));
            }
        }
        return Some(Expression::InList {
            expr: Box::new(col),
            list,
            negated: false,
        });
    }
    let converter =
        arrow::row::RowConverter::new(vec![arrow::row::SortField::new(values.data_type().clone())])
            .ok()?;
    let rows = converter
        .convert_columns(std::slice::from_ref(values))
        .ok()?;
    let mut min: Option<usize> = None;
    let mut max: Option<usize> = None;
    for i in 0..values.len() {
        if values.is_null(i) {
            continue;
        }
        if min.is_none_or(|m| rows.row(i) < rows.row(m)) {
            min = Some(i);
        }
        if max.is_none_or(|m| rows.row(i) > rows.row(m)) {
            max = Some(i);
        }
    }
    Some(Expression::Between {
        expr: Box::new(col),
        low: Box::new(Expression::Literal(literal_at(values, min?)?)),
        high: Box::new(Expression::Literal(literal_at(values, max?)?)),
        negated: false,
    })
}

/// The literal of `array[i]` for key types with a literal form.
fn literal_at(array: &ArrayRef, i: usize) -> Option<Literal> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Date32Type, TimeUnit, TimestampMicrosecondType};
    Some(match array.data_type() {
        ArrowType::Int8
        | ArrowType::Int16
        | ArrowType::Int32
        | ArrowType::Int64
        | ArrowType::UInt8
        | ArrowType::UInt16
        | ArrowType::UInt32
        | ArrowType::UInt64
        | ArrowType::Decimal128(_, _) => {
            Literal::Number(arrow::util::display::array_value_to_string(array, i).ok()?)
        }
        ArrowType::Float32 | ArrowType::Float64 => {
            let text = arrow::util::display::array_value_to_string(array, i).ok()?;
            if text.contains(['i', 'n', 'N']) {
                return None;
            }
            Literal::Number(text)
        }
        ArrowType::Utf8 => Literal::String(array.as_string::<i32>().value(i).to_owned()),
        ArrowType::Date32 => Literal::Date(array.as_primitive::<Date32Type>().value(i)),
        ArrowType::Timestamp(TimeUnit::Microsecond, zone) => {
            let v = array.as_primitive::<TimestampMicrosecondType>().value(i);
            if zone.is_some() {
                Literal::Timestamp(v)
            } else {
                Literal::TimestampNtz(v)
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
