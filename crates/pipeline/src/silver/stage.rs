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

use std::collections::HashMap;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use chrono::NaiveDate;
use delta_core::action::{Action, Add};
use delta_core::expression::parse;
use delta_core::{Error as DeltaError, Snapshot, Table};
use futures::{StreamExt, TryStreamExt};

use super::conform::{EntitySpec, conform, silver_schema};
use super::{derive, entities, latest_per_key, scd2};

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
}

impl SilverSummary {
    /// `rows_in = inserted + updated + duplicates + quarantined + dropped`: every bronze row is
    /// accounted for (for `patients_scd`, `updated` counts the records absorbed into a version).
    pub fn reconciles(&self) -> bool {
        self.rows_in
            == self.inserted + self.updated + self.duplicates + self.quarantined + self.dropped
    }
}

fn uri(lake: &str, layer: &str, name: &str) -> String {
    format!("{}/{layer}/{name}", lake.trim_end_matches('/'))
}

fn open(location: &str) -> Result<Table> {
    Table::open(location, &HashMap::new()).with_context(|| format!("cannot open {location}"))
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

/// Read `files` of `snapshot` and conform them: the rows that pass, the quarantined rows and
/// the counts.
async fn read_conformed(
    spec: &EntitySpec,
    snapshot: &Snapshot,
    files: &[Add],
    summary: &mut SilverSummary,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let mut rows = Vec::new();
    let mut quarantine = Vec::new();
    if files.is_empty() {
        return Ok((rows, quarantine));
    }
    let mut stream = snapshot.scan().build_for(files)?.execute();
    while let Some(batch) = stream.try_next().await? {
        summary.rows_in += batch.num_rows() as u64;
        let out = conform(spec, &batch)?;
        summary.quarantined += out.quarantine.num_rows() as u64;
        summary.dropped += out.dropped;
        rows.push(out.rows);
        if out.quarantine.num_rows() > 0 {
            quarantine.push(out.quarantine);
        }
    }
    Ok((rows, quarantine))
}

/// Append quarantined rows of `table` for bronze version `version`, once.
async fn quarantine(lake: &str, table: &str, version: u64, rows: Vec<RecordBatch>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let target = open(&uri(lake, "silver", "quarantine"))?;
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

/// Merge `rows` (of `schema`) into `target` by `on`, or create it with them, recording the
/// app transaction. Returns (inserted, updated, version).
async fn upsert(
    target: &Table,
    exists: bool,
    rows: RecordBatch,
    on: &str,
    app: &str,
    version: u64,
    by_source_delete: bool,
) -> Result<(u64, u64, Option<u64>)> {
    let version = i64::try_from(version)?;
    let stream = futures::stream::iter([Ok(rows.clone())]).boxed();
    if !exists {
        let report = target
            .write()
            .with_app_transaction(app, version)
            .execute(stream)
            .await?;
        return Ok((rows.num_rows() as u64, 0, report.version));
    }
    let mut merge = target
        .merge(stream, parse(on)?)
        .with_app_transaction(app, version)
        .when_matched_update_all(None)
        .when_not_matched_insert_all(None);
    if by_source_delete {
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
    lake: &str,
    spec: &EntitySpec,
    summary: &mut SilverSummary,
) -> Result<Option<Pending>> {
    let bronze = open(&uri(lake, "bronze", spec.entity))?;
    let Some(bronze_snapshot) = snapshot_if_any(&bronze).await? else {
        return Ok(None);
    };
    let target = open(&uri(lake, "silver", spec.table))?;
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
async fn entity(lake: &str, spec: &EntitySpec, as_of: NaiveDate) -> Result<SilverSummary> {
    let name = spec.table;
    let mut summary = SilverSummary {
        table: format!("silver.{name}"),
        ..SilverSummary::default()
    };
    let Some(work) = pending(lake, spec, &mut summary).await? else {
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
    let (rows, quarantined) = read_conformed(spec, &bronze_snapshot, &files, &mut summary).await?;
    quarantine(lake, name, latest, quarantined).await?;
    let schema = silver_schema(spec);
    let all = concat_batches(&schema, &rows)?;
    let (unique, duplicates) = latest_per_key(spec, &all)?;
    summary.duplicates = duplicates;
    let derived = derive(spec, &unique, as_of)?;
    let on = format!("t.{key} = s.{key}", key = spec.key);
    let (inserted, updated, version) = upsert(
        &target,
        target_snapshot.is_some(),
        derived,
        &on,
        &app,
        latest,
        false,
    )
    .await?;
    summary.inserted = inserted;
    summary.updated = updated;
    summary.version = version;
    Ok(summary)
}

/// Process patients: quarantine the new records, rebuild the SCD2 history from every
/// record, and merge it into `patients_scd` (new versions inserted, closed ones updated,
/// versions a late record split replaced).
async fn patients(lake: &str) -> Result<SilverSummary> {
    let spec = &entities::PATIENTS;
    let name = spec.table;
    let mut summary = SilverSummary {
        table: format!("silver.{name}"),
        ..SilverSummary::default()
    };
    let Some(work) = pending(lake, spec, &mut summary).await? else {
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
    let (_, quarantined) = read_conformed(spec, &bronze_snapshot, &files, &mut summary).await?;
    quarantine(lake, name, latest, quarantined).await?;
    // The history of every record so far (a late record may reshape any version).
    let mut everything = SilverSummary::default();
    let (all_rows, _) = read_conformed(
        spec,
        &bronze_snapshot,
        bronze_snapshot.files(),
        &mut everything,
    )
    .await?;
    let all = concat_batches(&silver_schema(spec), &all_rows)?;
    let history = scd2::history(&all)?;
    let before = target_snapshot.as_ref().map_or(Ok(0), count_rows)?;
    let versions = history.rows.num_rows() as u64;
    let (_, _, version) = upsert(
        &target,
        target_snapshot.is_some(),
        history.rows,
        "t.patient_id = s.patient_id AND t.valid_from = s.valid_from",
        &app,
        latest,
        true,
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

fn count_rows(snapshot: &Snapshot) -> Result<u64> {
    Ok(snapshot
        .files()
        .iter()
        .map(|a| {
            a.stats
                .as_deref()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| v["numRecords"].as_u64())
                .unwrap_or(0)
                .saturating_sub(
                    a.deletion_vector
                        .as_ref()
                        .map_or(0, |d| u64::try_from(d.cardinality).unwrap_or(0)),
                )
        })
        .sum())
}

/// Run the silver stage over the lake at `lake` (local path or URL), as of `as_of`.
///
/// # Errors
/// Storage and commit errors, a `fail` rule, unreadable bronze tables.
pub async fn run(lake: &str, as_of: NaiveDate) -> Result<Vec<SilverSummary>> {
    let mut out = vec![patients(lake).await?];
    for spec in entities::ALL.iter().skip(1) {
        out.push(entity(lake, spec, as_of).await?);
    }
    Ok(out)
}
