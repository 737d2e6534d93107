//! The silver stage: bronze versions not processed yet → conformed, deduplicated rows merged
//! into `<lake>/silver/<entity>_clean`, quarantined rows appended to
//! `<lake>/silver/quarantine`, and the SCD Type 2 history `<lake>/silver/patients_scd`.
//!
//! Exactly once: every silver commit carries a Delta app transaction
//! (`medilake-silver-<table>`) whose version is the bronze version it has processed. A run
//! reads only the bronze commits after it; a crash between the quarantine append and the
//! silver MERGE is repaired by the next run, which skips the append (its transaction is
//! recorded) and redoes the MERGE. Bronze is append-only, so the rows of bronze versions
//! `(done, latest]` are the `add`s of those commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::error::ArrowError;
use chrono::NaiveDate;
use delta_core::action::{Action, Add};
use delta_core::expression::parse;
use delta_core::{Error as DeltaError, Snapshot, Table};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::conform::{EntitySpec, conform, silver_schema};
use super::spill::{BUCKET_ROWS, BucketIter, Buckets, boundaries};
use super::{derive, entities, latest_per_key, scd2};
use crate::lake::Lake;
use crate::progress::{StepFn, StepProgress, quiet};

/// What the silver stage did to one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SilverSummary {
    /// The silver table (`silver.encounters_clean`).
    pub table: String,
    /// The bronze version processed up to.
    pub bronze_version: Option<u64>,
    /// Bronze rows read (the new ones).
    pub rows_in: u64,
    /// Rows inserted into the silver table.
    pub inserted: u64,
    /// Older versions of a key replaced (CDC updates and late duplicates).
    pub updated: u64,
    /// Rows removed as duplicates within the new bronze rows (exact repeats and superseded
    /// versions of a key).
    pub duplicates: u64,
    /// Rows sent to the quarantine table.
    pub quarantined: u64,
    /// Rows dropped by `drop` rules.
    pub dropped: u64,
    /// The silver version committed, or `None` when there was nothing new.
    pub version: Option<u64>,
    /// Bronze files read (the ones the new bronze versions added).
    pub files: u64,
    /// Wall time spent on the table, in milliseconds.
    pub millis: u64,
}

impl SilverSummary {
    /// An empty summary of `spec`'s silver table.
    fn of(spec: &EntitySpec) -> Self {
        Self {
            table: format!("silver.{}", spec.table),
            ..Self::default()
        }
    }

    /// `rows_in = inserted + updated + duplicates + quarantined + dropped`: every bronze row is
    /// accounted for (for `patients_scd`, `updated` counts the records absorbed into a version).
    pub fn reconciles(&self) -> bool {
        self.rows_in
            == self.inserted + self.updated + self.duplicates + self.quarantined + self.dropped
    }
}

/// The table's snapshot, or `None` when it does not exist yet.
async fn snapshot_if_any(table: &Table) -> Result<Option<Snapshot>> {
    match table.snapshot().await {
        Ok(s) => Ok(Some(s)),
        Err(DeltaError::NotATable { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The bronze files added by versions after `done` (all live files when `done` is `None`).
async fn new_bronze_files(
    bronze: &Table,
    snapshot: &Snapshot,
    done: Option<u64>,
) -> Result<Vec<Add>> {
    let Some(done) = done else {
        return Ok(snapshot.files().to_vec());
    };
    let mut adds = Vec::new();
    for version in done + 1..=snapshot.version() {
        for action in bronze.commit_actions(version).await? {
            if let Action::Add(add) = action
                && add.data_change
            {
                adds.push(add);
            }
        }
    }
    Ok(adds)
}

/// Read `files` of `snapshot` and conform them: the rows that pass go to `rows` (when
/// given), the quarantined rows are returned, the counts go to `summary`.
async fn read_conformed(
    spec: &EntitySpec,
    snapshot: &Snapshot,
    files: &[Add],
    summary: &mut SilverSummary,
    mut rows: Option<&mut Buckets>,
    progress: &StepFn,
) -> Result<Vec<RecordBatch>> {
    let mut quarantine = Vec::new();
    if files.is_empty() {
        return Ok(quarantine);
    }
    let mut stream = snapshot.scan().build_for(files)?.execute();
    while let Some(batch) = stream.try_next().await? {
        summary.rows_in += batch.num_rows() as u64;
        progress(StepProgress::Rows {
            table: summary.table.clone(),
            rows: batch.num_rows() as u64,
        });
        let out = conform(spec, &batch)?;
        summary.quarantined += out.quarantine.num_rows() as u64;
        summary.dropped += out.dropped;
        if let Some(rows) = rows.as_deref_mut() {
            rows.push(out.rows)?;
        }
        if out.quarantine.num_rows() > 0 {
            quarantine.push(out.quarantine);
        }
    }
    Ok(quarantine)
}

/// Key-range boundaries for the new bronze rows of `files`: none when they fit one bucket
/// (`bucket_rows`, counted from the files' statistics), else from a sample of their keys (a
/// scan of the key column alone).
async fn key_boundaries(
    spec: &EntitySpec,
    snapshot: &Snapshot,
    files: &[Add],
    bucket_rows: u64,
) -> Result<Vec<String>> {
    let estimate: u64 = files.iter().filter_map(Add::num_records).sum();
    let bucket_rows = bucket_rows.max(1);
    if estimate <= bucket_rows {
        return Ok(Vec::new());
    }
    let buckets = estimate.div_ceil(bucket_rows);
    // About 256 keys per bucket are plenty for even buckets.
    let step = usize::try_from(estimate / (256 * buckets))
        .unwrap_or(1)
        .max(1);
    let buckets = usize::try_from(buckets).unwrap_or(usize::MAX);
    let mut sample = Vec::new();
    let mut seen = 0usize;
    let mut keys = snapshot
        .scan()
        .with_columns([spec.key])
        .build_for(files)?
        .execute();
    while let Some(batch) = keys.try_next().await? {
        let column = batch
            .column(0)
            .as_string_opt::<i32>()
            .with_context(|| format!("bronze {} key {} is not a string", spec.entity, spec.key))?;
        for key in column.iter().flatten() {
            if seen.is_multiple_of(step) {
                // The key as silver will see it (conform trims ids).
                sample.push(key.trim().to_owned());
            }
            seen += 1;
        }
    }
    Ok(boundaries(sample, buckets))
}

/// The latest record per key of every bucket, with derived fields: one batch per bucket,
/// produced when the writer asks for it. Removed duplicates are added to `duplicates`.
fn deduplicated(
    spec: &'static EntitySpec,
    buckets: BucketIter,
    as_of: NaiveDate,
    duplicates: Arc<AtomicU64>,
) -> BoxStream<'static, delta_core::Result<RecordBatch>> {
    let schema = buckets.schema().clone();
    futures::stream::iter(buckets)
        .map(move |bucket| {
            let batch = || -> Result<RecordBatch> {
                let batches = bucket?;
                let all = concat_batches(&schema, &batches)?;
                drop(batches);
                let (unique, removed) = latest_per_key(spec, &all)?;
                drop(all);
                duplicates.fetch_add(removed, Ordering::Relaxed);
                derive(spec, &unique, as_of)
            };
            batch().map_err(|e| DeltaError::Arrow(ArrowError::ExternalError(e.into())))
        })
        .boxed()
}

/// Append quarantined rows of `table` for bronze version `version`, once.
async fn quarantine(lake: &Lake, table: &str, version: u64, rows: Vec<RecordBatch>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let target = lake.table("silver", "quarantine")?;
    let app = format!("medilake-silver-quarantine-{table}");
    if let Some(s) = snapshot_if_any(&target).await?
        && s.app_transaction_version(&app)
            .is_some_and(|v| v >= i64::try_from(version).unwrap_or(i64::MAX))
    {
        return Ok(());
    }
    let stream = futures::stream::iter(rows.into_iter().map(Ok)).boxed();
    let _ = target
        .write()
        .with_app_transaction(app, i64::try_from(version)?)
        .execute(stream)
        .await
        .with_context(|| "cannot append to silver.quarantine")?;
    Ok(())
}

/// How silver rows meet their table.
struct Upsert<'a> {
    /// The MERGE condition.
    on: &'a str,
    /// Delete target rows the source does not have (the source is the whole table).
    by_source_delete: bool,
    /// The partition column when the table is created.
    partition_by: Option<&'a str>,
}

/// Merge `rows` into `target` as `how` says, or create it with them, recording the app
/// transaction `app` at `version`. Returns (inserted, updated, version).
async fn upsert(
    target: &Table,
    exists: bool,
    rows: BoxStream<'static, delta_core::Result<RecordBatch>>,
    how: &Upsert<'_>,
    app: &str,
    version: u64,
) -> Result<(u64, u64, Option<u64>)> {
    let version = i64::try_from(version)?;
    if !exists {
        let report = target
            .write()
            .with_partition_columns(how.partition_by)
            .with_app_transaction(app, version)
            .execute(rows)
            .await?;
        return Ok((report.rows_written, 0, report.version));
    }
    let mut merge = target
        .merge(rows, parse(how.on)?)
        .with_app_transaction(app, version)
        .when_matched_update_all(None)
        .when_not_matched_insert_all(None);
    if how.by_source_delete {
        merge = merge.when_not_matched_by_source_delete(None);
    }
    let report = merge.execute().await?;
    Ok((report.rows_inserted, report.rows_updated, report.version))
}

/// The silver table's work: the bronze files of the versions it has not processed yet.
struct Pending {
    bronze_snapshot: Snapshot,
    target: Table,
    target_snapshot: Option<Snapshot>,
    /// The silver table's app transaction id.
    app: String,
    /// The latest bronze version (the app transaction's version once done).
    latest: u64,
    files: Vec<Add>,
}

/// What `spec`'s silver table still has to process, or `None` when it is up to date (or
/// bronze does not exist yet). Records the bronze version in `summary`.
async fn pending(
    lake: &Lake,
    spec: &EntitySpec,
    summary: &mut SilverSummary,
    progress: &StepFn,
) -> Result<Option<Pending>> {
    let bronze = lake.table("bronze", spec.entity)?;
    let Some(bronze_snapshot) = snapshot_if_any(&bronze).await? else {
        return Ok(None);
    };
    let target = lake.table("silver", spec.table)?;
    let target_snapshot = snapshot_if_any(&target).await?;
    let app = format!("medilake-silver-{}", spec.table);
    let done = target_snapshot
        .as_ref()
        .and_then(|s| s.app_transaction_version(&app))
        .and_then(|v| u64::try_from(v).ok());
    let latest = bronze_snapshot.version();
    summary.bronze_version = Some(latest);
    if done.is_some_and(|d| d >= latest) {
        return Ok(None);
    }
    let files = new_bronze_files(&bronze, &bronze_snapshot, done).await?;
    summary.files = files.len() as u64;
    progress(StepProgress::Start {
        table: summary.table.clone(),
        rows: files.iter().filter_map(Add::num_records).sum(),
        what: "conforming new bronze rows",
    });
    Ok(Some(Pending {
        bronze_snapshot,
        target,
        target_snapshot,
        app,
        latest,
        files,
    }))
}

/// Process one non-patient entity.
async fn entity(
    lake: &Lake,
    spec: &'static EntitySpec,
    as_of: NaiveDate,
    bucket_rows: u64,
    progress: &StepFn,
) -> Result<SilverSummary> {
    let name = spec.table;
    let mut summary = SilverSummary::of(spec);
    let Some(work) = pending(lake, spec, &mut summary, progress).await? else {
        return Ok(summary);
    };
    let Pending {
        bronze_snapshot,
        target,
        target_snapshot,
        app,
        latest,
        files,
    } = work;
    // New rows beyond one bucket's worth are split into key ranges and spilled to local
    // disk, so deduplication holds one bucket at a time.
    let bounds = key_boundaries(spec, &bronze_snapshot, &files, bucket_rows).await?;
    let mut buckets = Buckets::new(silver_schema(spec), spec.key, bounds)?;
    let quarantined = read_conformed(
        spec,
        &bronze_snapshot,
        &files,
        &mut summary,
        Some(&mut buckets),
        progress,
    )
    .await?;
    quarantine(lake, name, latest, quarantined).await?;
    let duplicates = Arc::new(AtomicU64::new(0));
    let rows = deduplicated(spec, buckets.finish()?, as_of, duplicates.clone());
    let on = format!("t.{key} = s.{key}", key = spec.key);
    let how = Upsert {
        on: &on,
        by_source_delete: false,
        partition_by: spec.partition_by.map(|(_, month)| month),
    };
    let (inserted, updated, version) =
        upsert(&target, target_snapshot.is_some(), rows, &how, &app, latest).await?;
    summary.duplicates = duplicates.load(Ordering::Relaxed);
    summary.inserted = inserted;
    summary.updated = updated;
    summary.version = version;
    Ok(summary)
}

/// Process patients: quarantine the new records, rebuild the SCD2 history from every
/// record, and merge it into `patients_scd` (new versions inserted, closed ones updated,
/// versions a late record split replaced).
async fn patients(lake: &Lake, progress: &StepFn) -> Result<SilverSummary> {
    let spec = &entities::PATIENTS;
    let name = spec.table;
    let mut summary = SilverSummary::of(spec);
    let Some(work) = pending(lake, spec, &mut summary, progress).await? else {
        return Ok(summary);
    };
    let Pending {
        bronze_snapshot,
        target,
        target_snapshot,
        app,
        latest,
        files,
    } = work;
    let quarantined =
        read_conformed(spec, &bronze_snapshot, &files, &mut summary, None, progress).await?;
    quarantine(lake, name, latest, quarantined).await?;
    // The history of every record so far (a late record may reshape any version).
    let mut everything = SilverSummary::default();
    let mut all_rows = Buckets::new(silver_schema(spec), spec.key, Vec::new())?;
    read_conformed(
        spec,
        &bronze_snapshot,
        bronze_snapshot.files(),
        &mut everything,
        Some(&mut all_rows),
        &quiet,
    )
    .await?;
    let all_rows = all_rows.finish()?.collect::<Result<Vec<_>>>()?.concat();
    let all = concat_batches(&silver_schema(spec), &all_rows)?;
    drop(all_rows);
    let history = scd2::history(&all)?;
    let before = target_snapshot.as_ref().map_or(0, count_rows);
    let versions = history.rows.num_rows() as u64;
    let (_, _, version) = upsert(
        &target,
        target_snapshot.is_some(),
        futures::stream::iter([Ok(history.rows)]).boxed(),
        &Upsert {
            on: "t.patient_id = s.patient_id AND t.valid_from = s.valid_from",
            by_source_delete: true,
            partition_by: None,
        },
        &app,
        latest,
    )
    .await?;
    // New records either opened versions or were absorbed into one.
    let opened = versions.saturating_sub(before);
    summary.inserted = opened;
    summary.updated =
        (summary.rows_in - summary.quarantined - summary.dropped).saturating_sub(opened);
    summary.version = version;
    Ok(summary)
}

/// The rows a reader sees in `snapshot` (from statistics).
fn count_rows(snapshot: &Snapshot) -> u64 {
    snapshot.files().iter().filter_map(Add::logical_rows).sum()
}

/// Run the silver stage over `lake`, as of `as_of`, quietly.
///
/// # Errors
/// Storage and commit errors, a `fail` rule, unreadable bronze tables.
pub async fn run(lake: &Lake, as_of: NaiveDate) -> Result<Vec<SilverSummary>> {
    run_with(lake, as_of, BUCKET_ROWS, &quiet).await
}

/// [`run`], deduplicating new rows in key-range buckets of about `bucket_rows` rows (the
/// result does not depend on it; memory does), reporting each table's progress.
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    lake: &Lake,
    as_of: NaiveDate,
    bucket_rows: u64,
    progress: &StepFn,
) -> Result<Vec<SilverSummary>> {
    let timed = |mut summary: SilverSummary, started: Instant| {
        summary.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if summary.files > 0 {
            progress(StepProgress::Done {
                table: summary.table.clone(),
                outcome: summary.version.map_or_else(
                    || "nothing to commit".to_owned(),
                    |v| format!("version {v}"),
                ),
            });
        }
        summary
    };
    let started = Instant::now();
    let mut out = vec![timed(patients(lake, progress).await?, started)];
    for spec in entities::ALL.iter().skip(1) {
        let started = Instant::now();
        let summary = entity(lake, spec, as_of, bucket_rows, progress).await?;
        out.push(timed(summary, started));
    }
    Ok(out)
}
