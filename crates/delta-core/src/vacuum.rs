//! VACUUM: delete data files that no version inside the retention window references.
//!
//! A file under the table root is deleted only when all of these hold: it is not a live
//! data file or deletion-vector file of the latest version; no tombstone younger than the
//! retention (`delta.deletedFileRetentionDuration`, 7 days) names it (those files are still
//! readable by time travel inside the window); it is not under a hidden path (`_delta_log`,
//! names starting with `_` or `.`, except `_change_data`); and it was last modified before
//! the cut-off (so files of in-flight writes survive). `_change_data` files go by age alone.
//! A retention shorter than the table's is refused unless forced. The run is recorded as
//! `VACUUM START` / `VACUUM END` commits, as Spark does.

use std::collections::HashSet;
use std::time::Duration;

use object_store::path::Path;

use crate::action::Add;
use crate::deletion_vector::DeletionVectorDescriptor;
use crate::log::canonical_path;
use crate::snapshot::Snapshot;
use crate::table::Table;
use crate::table_features::check_writable;
use crate::{Error, Result};

/// Default `delta.deletedFileRetentionDuration`: 7 days.
const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Options of a VACUUM; finish with [`VacuumBuilder::run`].
#[derive(Debug)]
#[must_use]
pub struct VacuumBuilder {
    table: Table,
    retention: Option<Duration>,
    dry_run: bool,
    force: bool,
}

/// What a VACUUM deleted (or would delete, in a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct VacuumReport {
    /// Paths relative to the table root, sorted.
    pub files: Vec<String>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Whether nothing was deleted (dry run).
    pub dry_run: bool,
    /// The retention used, in milliseconds.
    pub retention_ms: i64,
}

impl Table {
    /// Start a VACUUM.
    pub fn vacuum(&self) -> VacuumBuilder {
        VacuumBuilder {
            table: self.clone(),
            retention: None,
            dry_run: false,
            force: false,
        }
    }
}

impl VacuumBuilder {
    /// Keep files removed within `retention` (default: the table's
    /// `delta.deletedFileRetentionDuration`, 7 days).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// List what would be deleted without deleting or committing anything.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Allow a retention shorter than the table's setting (breaks time travel and
    /// concurrent readers of old versions).
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Plan and (unless dry) delete.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a retention below the table's without force;
    /// [`Error::Unsupported`] when the table has writer features this crate lacks (the
    /// `vacuumProtocolCheck` rule); storage errors.
    pub async fn run(self) -> Result<VacuumReport> {
        let snapshot = self.table.snapshot().await?;
        check_writable(snapshot.protocol(), snapshot.metadata())?;
        let table_retention = snapshot
            .property("delta.deletedFileRetentionDuration")
            .and_then(crate::table::parse_interval_ms)
            .unwrap_or(DEFAULT_RETENTION_MS);
        let retention_ms = match self.retention {
            Some(r) => i64::try_from(r.as_millis()).unwrap_or(i64::MAX),
            None => table_retention,
        };
        if retention_ms < table_retention && !self.force {
            return Err(Error::invalid(format!(
                "retention of {} hours is shorter than the table's delta.deletedFileRetentionDuration ({} hours); \
                 readers of older versions could lose files: pass force to do it anyway",
                retention_ms / 3_600_000,
                table_retention / 3_600_000
            )));
        }
        let now = self.table.clock().now_ms();
        let cutoff = now.saturating_sub(retention_ms);
        let keep = referenced_files(&snapshot, cutoff)?;
        let storage = self.table.storage();
        let mut doomed: Vec<(String, Path, u64)> = Vec::new();
        for file in storage.list_files().await? {
            let Some(first) = file.relative.first() else {
                continue;
            };
            let is_cdc = first == "_change_data";
            if !is_cdc && file.relative.iter().any(|segment| is_hidden(segment)) {
                continue;
            }
            if file.last_modified_ms >= cutoff {
                continue;
            }
            let path = file.relative.join("/");
            if !is_cdc && keep.contains(&path) {
                continue;
            }
            doomed.push((path, file.location, file.size));
        }
        doomed.sort_by(|a, b| a.0.cmp(&b.0));
        let report = VacuumReport {
            files: doomed.iter().map(|d| d.0.clone()).collect(),
            bytes: doomed.iter().map(|d| d.2).sum(),
            dry_run: self.dry_run,
            retention_ms,
        };
        if self.dry_run {
            return Ok(report);
        }
        let start = self
            .table
            .transaction(&snapshot)
            .with_operation("VACUUM START")
            .with_parameter("retentionCheckEnabled", (!self.force).to_string())
            .with_parameter("defaultRetentionMillis", table_retention.to_string())
            .with_parameter("specifiedRetentionMillis", retention_ms.to_string())
            .with_metric("numFilesToDelete", report.files.len() as u64)
            .with_metric("sizeOfDataToDelete", report.bytes);
        let _started = start.commit().await?;
        // Batched and bounded by the store (S3 deletes 1000 keys per request); a file that
        // is already gone (a concurrent VACUUM) counts as deleted on every backend.
        storage
            .delete_many(
                doomed
                    .iter()
                    .map(|(_, location, _)| location.clone())
                    .collect(),
            )
            .await?;
        let after = self.table.snapshot().await?;
        let end = self
            .table
            .transaction(&after)
            .with_operation("VACUUM END")
            .with_parameter("status", "COMPLETED")
            .with_metric("numDeletedFiles", report.files.len() as u64)
            .with_metric("numVacuumedDirectories", 0);
        let _ended = end.commit().await?;
        Ok(report)
    }
}

/// Hidden per the protocol: names starting with `_` or `.`, except partition directories
/// (`_col=value`).
fn is_hidden(segment: &str) -> bool {
    (segment.starts_with('_') || segment.starts_with('.')) && !segment.contains('=')
}

/// Relative, decoded paths of every file a version inside the window may read.
fn referenced_files(snapshot: &Snapshot, cutoff: i64) -> Result<HashSet<String>> {
    let root = snapshot.table_url().clone();
    let mut keep = HashSet::new();
    let mut add = |path: &str, dv: Option<&DeletionVectorDescriptor>| -> Result<()> {
        keep.insert(relative(&root, path));
        if let Some(dv) = dv
            && let Some(url) = dv.absolute_path(&root)?
        {
            keep.insert(relative(&root, url.as_str()));
        }
        Ok(())
    };
    for file in snapshot.files() {
        let Add {
            path,
            deletion_vector,
            ..
        } = file;
        add(path, deletion_vector.as_ref())?;
    }
    for tombstone in snapshot.tombstones() {
        if tombstone.deletion_timestamp.unwrap_or(0) >= cutoff {
            add(&tombstone.path, tombstone.deletion_vector.as_ref())?;
        }
    }
    Ok(keep)
}

/// A path of the log (URI-encoded, relative or absolute) as a decoded path relative to the
/// table root.
fn relative(root: &url::Url, path: &str) -> String {
    let root_text = root.as_str();
    let stripped = path.strip_prefix(root_text).unwrap_or(path);
    let decoded = canonical_path(stripped);
    let root_path = canonical_path(root.path());
    decoded
        .strip_prefix(&root_path)
        .map(str::to_owned)
        .unwrap_or(decoded)
}
