//! The change data feed reader: the row-level changes a range of commits made
//! (protocol "Change Data Files", PROTOCOL.md §12).
//!
//! Planning ([`Table::changes`]) resolves the bounds to versions, reads the range's commits
//! and decides, commit by commit, which files hold its change rows:
//!
//! | the commit has                        | rows read                                         | `_change_type`   |
//! |---------------------------------------|---------------------------------------------------|------------------|
//! | any `cdc` action                      | only the `cdc` files (under `_change_data/`)      | as stored        |
//! | `add`, `dataChange=true`              | the file, minus its own deletion vector           | `insert`         |
//! | `remove`, `dataChange=true`           | the file, minus the remove's deletion vector      | `delete`         |
//! | `remove`+`add` of one path (new DV)   | rows entering the DV / rows leaving it            | `delete`/`insert`|
//! | only `dataChange=false` actions       | nothing                                           |                  |
//!
//! Execution ([`ChangeScan::execute`]) streams one file at a time through the ordinary scan
//! (column mapping, type conforming, partition values), so memory is bounded by one file's
//! batches. Rows come in one schema, chosen as Spark chooses it: the latest version's, or
//! the end version's on column-mapping tables (columns an older file lacks are NULL),
//! followed by `_change_type`, `_commit_version` and `_commit_timestamp`.
//!
//! Invariant: a range is readable only if `delta.enableChangeDataFeed` was true at its start
//! and no `metaData` inside it turns it off; every commit file of the range must still exist.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::action::{Action, Add, Metadata};
use crate::deletion_vector::DeletionVectorDescriptor;
use crate::log::LogPath;
use crate::scan::{RowSelection, load_deletion_vector};
use crate::schema::ColumnMappingMode;
use crate::snapshot::Snapshot;
use crate::table::{Table, ict_enablement_version};
use crate::{Error, Result, Version};

/// The change type column: `insert`, `delete`, `update_preimage`, `update_postimage` (or
/// whatever string a `cdc` file holds).
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";
/// The commit version column (`Int64`).
pub const COMMIT_VERSION_COLUMN: &str = "_commit_version";
/// The commit timestamp column (`Timestamp(Microsecond, "UTC")`).
pub const COMMIT_TIMESTAMP_COLUMN: &str = "_commit_timestamp";

/// The table property that makes writers record changes.
const ENABLE_PROPERTY: &str = "delta.enableChangeDataFeed";
/// How many commit files planning reads at once.
const COMMIT_READ_CONCURRENCY: usize = 16;

/// One end of a change range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeBound {
    /// A table version (inclusive).
    Version(Version),
    /// A commit timestamp in milliseconds since the epoch. As a start it means the first
    /// version committed at or after it; as an end, the last version committed at or
    /// before it (Spark's rules).
    Timestamp(i64),
}

/// Where a commit's change rows come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeSource {
    /// The commit wrote `cdc` files under `_change_data/`; only those are read.
    CdcFiles,
    /// No `cdc` action: `add` and `remove` actions with `dataChange=true` stand for inserted
    /// and deleted rows (for a deletion-vector update, only the rows that entered or left
    /// the deletion vector).
    AddRemove,
    /// The commit changed no rows (no actions, or only `dataChange=false` ones such as
    /// OPTIMIZE's).
    Nothing,
}

/// One commit of a change range, as planned.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeCommit {
    /// The commit version.
    pub version: Version,
    /// Its timestamp in ms: the in-commit timestamp when the table has them, else the commit
    /// file's modification time.
    pub timestamp_ms: i64,
    /// The operation recorded in `commitInfo` (`WRITE`, `UPDATE`, ...), when any.
    pub operation: Option<String>,
    /// Where the rows come from.
    pub source: ChangeSource,
    /// How many files are read for this commit.
    pub file_count: usize,
    /// How many files had their deletion vector replaced (a remove/add pair of one path,
    /// read for the rows that entered or left the vector).
    pub deletion_vector_updates: usize,
}

/// Which rows of a file a read keeps.
#[derive(Clone, Debug)]
enum Rows {
    /// Rows not hidden by the (synthetic) add's deletion vector.
    Live,
    /// Rows in `entering` that are not in `leaving` (a deletion-vector difference).
    Difference {
        entering: Option<DeletionVectorDescriptor>,
        leaving: Option<DeletionVectorDescriptor>,
    },
}

/// One file read of the plan.
#[derive(Clone, Debug)]
struct FileRead {
    /// Index into `ChangeScan::commits`.
    commit: usize,
    /// The file as an `add` (a `cdc` or `remove` turned into one), so the scan can read it.
    add: Add,
    /// The change type of every row, or `None` to take the file's `_change_type` column.
    change_type: Option<&'static str>,
    rows: Rows,
}

/// A planned change data feed read; stream its rows with [`ChangeScan::execute`].
#[derive(Clone, Debug)]
pub struct ChangeScan {
    snapshot: Snapshot,
    start: Version,
    end: Version,
    commits: Vec<ChangeCommit>,
    reads: Vec<FileRead>,
    schema: SchemaRef,
}

impl Table {
    /// Plan a read of the rows changed by the commits from `from` to `to` (both inclusive;
    /// `to = None` means the latest version). Reads the range's commit files, not data.
    ///
    /// # Errors
    /// [`Error::ChangeDataNotRecorded`] when `delta.enableChangeDataFeed` was not true at
    /// some version of the range; [`Error::VersionNotFound`] when `from` is after the
    /// latest version or a commit of the range was cleaned up (naming the earliest retained
    /// version); [`Error::InvalidArgument`] when the start is after the end or a timestamp
    /// lies outside the table's history; [`Error::Unsupported`] when a table column uses a
    /// change-feed column name; log errors as [`Table::snapshot`].
    pub async fn changes(&self, from: ChangeBound, to: Option<ChangeBound>) -> Result<ChangeScan> {
        let latest = self.snapshot().await?;
        let mut files = self.commit_files().await?;
        files.sort_by_key(|f| f.log_path.version());
        let ict_from = ict_enablement_version(&latest);
        let latest_version = latest.version();
        let earliest = files
            .first()
            .and_then(|f| f.log_path.version())
            .unwrap_or(latest_version);

        let start = match from {
            ChangeBound::Version(v) if v > latest_version => {
                return Err(Error::VersionNotFound {
                    requested: v,
                    reason: format!(
                        "the change range starts after the latest version {latest_version}"
                    ),
                });
            }
            ChangeBound::Version(v) => v,
            ChangeBound::Timestamp(t) => {
                let start = match self.commit_at_timestamp(&files, ict_from, t).await? {
                    None => earliest,
                    Some((v, ts)) if ts >= t => v,
                    Some((v, _)) => v + 1,
                };
                if start > latest_version {
                    return Err(Error::invalid(format!(
                        "starting timestamp {t} ms is after the latest commit (version {latest_version})"
                    )));
                }
                start
            }
        };
        let end = match to {
            None => latest_version,
            Some(ChangeBound::Version(v)) => v.min(latest_version),
            Some(ChangeBound::Timestamp(t)) => {
                match self.commit_at_timestamp(&files, ict_from, t).await? {
                    Some((v, _)) => v,
                    None => {
                        return Err(Error::invalid(format!(
                            "ending timestamp {t} ms is before the earliest retained commit (version {earliest})"
                        )));
                    }
                }
            }
        };
        if start > end {
            // Two timestamps between the same pair of commits select no version: empty,
            // as in Spark. Anything else is a caller error.
            if matches!(
                (from, to),
                (ChangeBound::Timestamp(_), Some(ChangeBound::Timestamp(_)))
            ) {
                return empty_scan(latest, start, end);
            }
            return Err(Error::invalid(format!(
                "the change range starts at version {start}, after its end version {end}"
            )));
        }

        // Every commit of the range must still be in the log.
        let retained: HashMap<Version, &crate::log::LogFile> = files
            .iter()
            .filter_map(|f| match f.log_path {
                LogPath::Commit(v) if (start..=end).contains(&v) => Some((v, f)),
                _ => None,
            })
            .collect();
        if let Some(missing) = (start..=end).find(|v| !retained.contains_key(v)) {
            return Err(Error::VersionNotFound {
                requested: missing,
                reason: format!(
                    "its commit file was cleaned up; the earliest retained commit is version {earliest}"
                ),
            });
        }

        // The schema rows are given in, as Spark gives them: the latest version's, except on
        // column-mapping tables, where a later rename or drop would misname older rows, so
        // the end version's (Delta's default `endVersion` schema mode for them).
        let snapshot =
            if end == latest_version || latest.column_mapping() == ColumnMappingMode::None {
                latest
            } else {
                self.snapshot_at(end).await?
            };
        for name in [
            CHANGE_TYPE_COLUMN,
            COMMIT_VERSION_COLUMN,
            COMMIT_TIMESTAMP_COLUMN,
        ] {
            if snapshot.schema().field(name).is_some() {
                return Err(Error::Unsupported {
                    kind: "change data feed on a table with column",
                    feature: name.to_owned(),
                });
            }
        }
        let start_snapshot = if start == snapshot.version() {
            snapshot.clone()
        } else {
            self.snapshot_at(start).await?
        };
        if !records_changes(start_snapshot.metadata()) {
            return Err(Error::ChangeDataNotRecorded {
                version: start,
                start,
                end,
            });
        }

        let reads: Vec<_> = (start..=end)
            .map(|v| {
                let table = self.clone();
                async move { Ok::<_, Error>((v, table.commit_actions(v).await?)) }
            })
            .collect();
        let mut actions = futures::stream::iter(reads).buffered(COMMIT_READ_CONCURRENCY);
        let mut plan = Plan::default();
        while let Some((version, commit)) = actions.try_next().await? {
            if commit
                .iter()
                .any(|a| matches!(a, Action::Metadata(m) if !records_changes(m)))
            {
                return Err(Error::ChangeDataNotRecorded {
                    version,
                    start,
                    end,
                });
            }
            let use_ict = ict_from.is_some_and(|e| version >= e);
            let file_time = retained.get(&version).map_or(0, |f| f.last_modified_ms);
            plan.add_commit(&snapshot, version, &commit, use_ict, file_time)?;
        }
        tracing::debug!(
            start,
            end,
            files = plan.reads.len(),
            schema_version = snapshot.version(),
            "change data feed planned"
        );
        Ok(ChangeScan {
            schema: change_schema(&snapshot),
            snapshot,
            start,
            end,
            commits: plan.commits,
            reads: plan.reads,
        })
    }
}

fn records_changes(metadata: &Metadata) -> bool {
    metadata
        .property(ENABLE_PROPERTY)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn empty_scan(snapshot: Snapshot, start: Version, end: Version) -> Result<ChangeScan> {
    Ok(ChangeScan {
        schema: change_schema(&snapshot),
        snapshot,
        start,
        end,
        commits: Vec::new(),
        reads: Vec::new(),
    })
}

/// The table's columns (nullable: older files may lack them) and the three change columns.
fn change_schema(snapshot: &Snapshot) -> SchemaRef {
    let mut fields: Vec<Field> = snapshot
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.extend(change_fields());
    Arc::new(Schema::new(fields))
}

fn change_fields() -> [Field; 3] {
    [
        Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, true),
        Field::new(COMMIT_VERSION_COLUMN, DataType::Int64, false),
        Field::new(
            COMMIT_TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]
}

/// The plan being built, commit by commit. Pure: no I/O.
#[derive(Default)]
struct Plan {
    commits: Vec<ChangeCommit>,
    reads: Vec<FileRead>,
}

impl Plan {
    fn add_commit(
        &mut self,
        snapshot: &Snapshot,
        version: Version,
        actions: &[Action],
        use_ict: bool,
        file_time_ms: i64,
    ) -> Result<()> {
        let commit_info = actions.iter().find_map(|a| match a {
            Action::CommitInfo(ci) => Some(ci),
            _ => None,
        });
        let timestamp_ms = commit_info
            .and_then(|ci| use_ict.then(|| ci.in_commit_timestamp()).flatten())
            .unwrap_or(file_time_ms);
        let index = self.commits.len();
        let before = self.reads.len();
        let mut deletion_vector_updates = 0;
        let cdcs: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Cdc(c) => Some(c),
                _ => None,
            })
            .collect();
        let source = if cdcs.is_empty() {
            self.add_remove_reads(
                snapshot,
                index,
                version,
                actions,
                &mut deletion_vector_updates,
            )?
        } else {
            for cdc in cdcs {
                self.reads.push(FileRead {
                    commit: index,
                    add: Add {
                        path: cdc.path.clone(),
                        partition_values: cdc.partition_values.clone(),
                        size: cdc.size,
                        ..Add::default()
                    },
                    change_type: None,
                    rows: Rows::Live,
                });
            }
            ChangeSource::CdcFiles
        };
        self.commits.push(ChangeCommit {
            version,
            timestamp_ms,
            operation: commit_info.and_then(|ci| ci.operation().map(str::to_owned)),
            source,
            file_count: self.reads.len() - before,
            deletion_vector_updates,
        });
        Ok(())
    }

    /// The fallback without `cdc` actions: adds are inserts, removes deletes, and a
    /// remove/add pair of one path is a deletion-vector difference.
    fn add_remove_reads(
        &mut self,
        snapshot: &Snapshot,
        index: usize,
        version: Version,
        actions: &[Action],
        deletion_vector_updates: &mut usize,
    ) -> Result<ChangeSource> {
        let storage = snapshot.storage();
        let context = format!("commit {version}");
        // Canonical location (paths may be spelled encoded, absolute, ...) of each action.
        let mut removed: HashMap<String, usize> = HashMap::new();
        let mut added: HashMap<String, usize> = HashMap::new();
        for (i, action) in actions.iter().enumerate() {
            match action {
                Action::Remove(r) if r.data_change => {
                    removed.insert(storage.resolve_file(&r.path, &context)?.to_string(), i);
                }
                Action::Add(a) if a.data_change => {
                    added.insert(storage.resolve_file(&a.path, &context)?.to_string(), i);
                }
                _ => {}
            }
        }
        if removed.is_empty() && added.is_empty() {
            return Ok(ChangeSource::Nothing);
        }
        let partitioned = !snapshot.partition_columns().is_empty();
        for action in actions {
            match action {
                Action::Remove(r) if r.data_change => {
                    let key = storage.resolve_file(&r.path, &context)?.to_string();
                    let partition_values = match &r.partition_values {
                        Some(p) => p.clone(),
                        None if partitioned => {
                            return Err(Error::corrupt(
                                format!("{context}: remove {}", r.path),
                                "a remove without partitionValues cannot give its rows' partition columns",
                            ));
                        }
                        None => HashMap::new(),
                    };
                    let add = Add {
                        path: r.path.clone(),
                        partition_values,
                        size: r.size.unwrap_or(-1),
                        deletion_vector: r.deletion_vector.clone(),
                        ..Add::default()
                    };
                    match added.get(&key).and_then(|j| match &actions[*j] {
                        Action::Add(a) => Some(a),
                        _ => None,
                    }) {
                        // Rows that left the deletion vector came back: inserts.
                        Some(new) => {
                            self.reads.push(FileRead {
                                commit: index,
                                add,
                                change_type: Some("insert"),
                                rows: Rows::Difference {
                                    entering: r.deletion_vector.clone(),
                                    leaving: new.deletion_vector.clone(),
                                },
                            });
                        }
                        None => self.reads.push(FileRead {
                            commit: index,
                            add,
                            change_type: Some("delete"),
                            rows: Rows::Live,
                        }),
                    }
                }
                Action::Add(a) if a.data_change => {
                    let key = storage.resolve_file(&a.path, &context)?.to_string();
                    match removed.get(&key).and_then(|j| match &actions[*j] {
                        Action::Remove(r) => Some(r),
                        _ => None,
                    }) {
                        // Rows newly in the deletion vector were deleted.
                        Some(old) => {
                            *deletion_vector_updates += 1;
                            self.reads.push(FileRead {
                                commit: index,
                                add: a.clone(),
                                change_type: Some("delete"),
                                rows: Rows::Difference {
                                    entering: a.deletion_vector.clone(),
                                    leaving: old.deletion_vector.clone(),
                                },
                            });
                        }
                        None => self.reads.push(FileRead {
                            commit: index,
                            add: a.clone(),
                            change_type: Some("insert"),
                            rows: Rows::Live,
                        }),
                    }
                }
                _ => {}
            }
        }
        Ok(ChangeSource::AddRemove)
    }
}

impl ChangeScan {
    /// The first version of the range.
    #[must_use]
    pub fn start_version(&self) -> Version {
        self.start
    }

    /// The last version of the range (the latest version when no end was given).
    #[must_use]
    pub fn end_version(&self) -> Version {
        self.end
    }

    /// The version whose schema the rows are given in (see [`ChangeScan::schema`]).
    #[must_use]
    pub fn schema_version(&self) -> Version {
        self.snapshot.version()
    }

    /// The commits of the range in version order, with where their rows come from.
    #[must_use]
    pub fn commits(&self) -> &[ChangeCommit] {
        &self.commits
    }

    /// The schema of the rows: the table's columns (at the latest version; at the end
    /// version on column-mapping tables, as in Spark), then `_change_type`,
    /// `_commit_version` and `_commit_timestamp`. Batches may differ only in nullability.
    #[must_use]
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Stream the change rows, commit by commit and file by file (one file's batches in
    /// memory at a time).
    ///
    /// # Errors
    /// Each item fails as [`crate::scan::Scan::execute`] does when a file cannot be read.
    pub fn execute(&self) -> BoxStream<'static, Result<RecordBatch>> {
        let scan = Arc::new(self.clone());
        futures::stream::iter(0..self.reads.len())
            .then(move |i| {
                let scan = scan.clone();
                async move { scan.read(i).await }
            })
            .try_flatten()
            .boxed()
    }

    /// Collect every change row (convenience for small ranges and tests).
    ///
    /// # Errors
    /// As [`ChangeScan::execute`].
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        self.execute().try_collect().await
    }

    async fn read(
        self: Arc<Self>,
        index: usize,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let read = &self.reads[index];
        let commit = &self.commits[read.commit];
        let mut builder = self.snapshot.scan();
        if read.change_type.is_none() {
            builder = builder.with_file_column(CHANGE_TYPE_COLUMN);
        }
        let mut scan = builder.build_for(std::slice::from_ref(&read.add))?;
        if let Rows::Difference { entering, leaving } = &read.rows {
            let storage = self.snapshot.storage();
            let file = format!("{} (commit {})", read.add.path, commit.version);
            let mut rows = match entering {
                Some(dv) => load_deletion_vector(storage, dv, &file).await?,
                None => roaring::RoaringTreemap::new(),
            };
            if let Some(dv) = leaving {
                rows -= load_deletion_vector(storage, dv, &file).await?;
            }
            if rows.is_empty() {
                return Ok(futures::stream::empty().boxed());
            }
            scan = scan.with_row_selection(RowSelection::Only(Arc::new(rows)));
        }
        let change_type = read.change_type;
        let version = commit.version;
        let timestamp_us = commit.timestamp_ms.saturating_mul(1000);
        Ok(scan
            .execute()
            .and_then(move |batch| {
                futures::future::ready(with_change_columns(
                    &batch,
                    change_type,
                    version,
                    timestamp_us,
                ))
            })
            .boxed())
    }
}

/// Append `_change_type` (unless the batch already ends with it, read from a `cdc` file),
/// `_commit_version` and `_commit_timestamp`.
fn with_change_columns(
    batch: &RecordBatch,
    change_type: Option<&str>,
    version: Version,
    timestamp_us: i64,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let version = i64::try_from(version)
        .map_err(|_| Error::invalid(format!("version {version} does not fit a long")))?;
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let [type_field, version_field, timestamp_field] = change_fields();
    if let Some(change_type) = change_type {
        fields.push(type_field);
        columns.push(Arc::new(StringArray::from(vec![change_type; rows])));
    }
    fields.push(version_field);
    columns.push(Arc::new(Int64Array::from(vec![version; rows])));
    fields.push(timestamp_field);
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![timestamp_us; rows]).with_timezone("UTC"),
    ));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    use object_store::memory::InMemory;

    use super::*;
    use crate::SaveMode;
    use crate::clock::ManualClock;
    use crate::deletion_vector::{STORAGE_TYPE_INLINE, encode_bitmap, z85_encode};

    fn memory_table() -> Table {
        let url = url::Url::parse("memory:///t/").expect("static URL");
        Table::with_store(Arc::new(InMemory::new()), url)
            .expect("in-memory table")
            .with_clock(Arc::new(ManualClock::new(1_700_000_000_000, 1000, 7)))
    }

    fn ids(values: &[i64]) -> BoxStream<'static, Result<RecordBatch>> {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("one column");
        futures::stream::iter([Ok(batch)]).boxed()
    }

    async fn write(table: &Table, values: &[i64], mode: SaveMode, cdf: Option<&str>) {
        let mut builder = table.write().with_mode(mode);
        if let Some(flag) = cdf {
            builder = builder.with_property(ENABLE_PROPERTY, flag);
        }
        let _ = builder.execute(ids(values)).await.expect("write");
    }

    /// `(version, change type, id)` of every change row, sorted.
    async fn rows(scan: &ChangeScan) -> Vec<(i64, String, i64)> {
        let mut out = Vec::new();
        for batch in scan.collect().await.expect("read changes") {
            let id = batch
                .column_by_name("id")
                .expect("id")
                .as_primitive::<Int64Type>();
            let kind = batch
                .column_by_name(CHANGE_TYPE_COLUMN)
                .expect("type")
                .as_string::<i32>();
            let version = batch
                .column_by_name(COMMIT_VERSION_COLUMN)
                .expect("version")
                .as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                out.push((version.value(i), kind.value(i).to_owned(), id.value(i)));
            }
        }
        out.sort();
        out
    }

    fn counts(rows: &[(i64, String, i64)]) -> BTreeMap<(i64, String), usize> {
        let mut out = BTreeMap::new();
        for (v, kind, _) in rows {
            *out.entry((*v, kind.clone())).or_insert(0) += 1;
        }
        out
    }

    #[tokio::test]
    async fn appends_and_overwrite_fall_back_to_adds_and_removes() {
        let table = memory_table();
        write(&table, &[1, 2, 3], SaveMode::Append, Some("true")).await;
        write(&table, &[4, 5], SaveMode::Append, None).await;
        write(&table, &[9], SaveMode::Overwrite, None).await;
        let scan = table
            .changes(ChangeBound::Version(0), None)
            .await
            .expect("plan");
        assert_eq!((scan.start_version(), scan.end_version()), (0, 2));
        let sources: Vec<_> = scan.commits().iter().map(|c| c.source).collect();
        assert_eq!(sources, vec![ChangeSource::AddRemove; 3]);
        let got = rows(&scan).await;
        let want: Vec<(i64, String, i64)> = [
            (0, "insert", 1),
            (0, "insert", 2),
            (0, "insert", 3),
            (1, "insert", 4),
            (1, "insert", 5),
            (2, "delete", 1),
            (2, "delete", 2),
            (2, "delete", 3),
            (2, "delete", 4),
            (2, "delete", 5),
            (2, "insert", 9),
        ]
        .into_iter()
        .map(|(v, k, i)| (v, k.to_owned(), i))
        .collect();
        assert_eq!(got, want);

        let later = table
            .changes(ChangeBound::Version(1), Some(ChangeBound::Version(1)))
            .await
            .expect("plan");
        assert_eq!(rows(&later).await, want[3..5].to_vec());
        let batch = &later.collect().await.expect("read")[0];
        assert_eq!(batch.schema().fields().len(), 4);
        let ts = batch
            .column_by_name(COMMIT_TIMESTAMP_COLUMN)
            .expect("timestamp")
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), later.commits()[0].timestamp_ms * 1000);
    }

    #[tokio::test]
    async fn data_change_false_commits_produce_no_rows() {
        let table = memory_table();
        write(&table, &[1, 2], SaveMode::Append, Some("true")).await;
        write(&table, &[3], SaveMode::Append, None).await;
        let report = table.optimize().run().await.expect("optimize");
        assert_eq!(report.versions, vec![2], "optimize committed a compaction");
        let scan = table
            .changes(ChangeBound::Version(2), None)
            .await
            .expect("plan");
        assert_eq!(scan.commits().len(), 1);
        assert_eq!(scan.commits()[0].source, ChangeSource::Nothing);
        assert!(rows(&scan).await.is_empty());
    }

    #[tokio::test]
    async fn disabled_feed_errors_naming_the_version() {
        let table = memory_table();
        write(&table, &[1], SaveMode::Append, None).await;
        let err = table.changes(ChangeBound::Version(0), None).await;
        assert!(
            matches!(
                err,
                Err(Error::ChangeDataNotRecorded {
                    version: 0,
                    start: 0,
                    end: 0
                })
            ),
            "{err:?}"
        );

        let table = memory_table();
        write(&table, &[1], SaveMode::Append, Some("true")).await;
        let _ = table
            .set_properties(&[(ENABLE_PROPERTY.to_owned(), "false".to_owned())])
            .await
            .expect("disable");
        write(&table, &[2], SaveMode::Append, None).await;
        let _ = table
            .set_properties(&[(ENABLE_PROPERTY.to_owned(), "true".to_owned())])
            .await
            .expect("enable");
        write(&table, &[3], SaveMode::Append, None).await;
        let err = table
            .changes(ChangeBound::Version(0), None)
            .await
            .expect_err("v1 disabled the feed");
        assert!(
            matches!(err, Error::ChangeDataNotRecorded { version: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("version 1"), "{err}");
        let err = table
            .changes(ChangeBound::Version(2), Some(ChangeBound::Version(4)))
            .await
            .expect_err("v2 is inside the disabled stretch");
        assert!(
            matches!(err, Error::ChangeDataNotRecorded { version: 2, .. }),
            "{err}"
        );
        let scan = table
            .changes(ChangeBound::Version(3), None)
            .await
            .expect("enabled again from v3");
        assert_eq!(rows(&scan).await, vec![(4, "insert".to_owned(), 3)]);
    }

    #[tokio::test]
    async fn bad_ranges_are_refused() {
        let table = memory_table();
        write(&table, &[1], SaveMode::Append, Some("true")).await;
        write(&table, &[2], SaveMode::Append, None).await;
        let err = table
            .changes(ChangeBound::Version(1), Some(ChangeBound::Version(0)))
            .await
            .expect_err("start after end");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let err = table
            .changes(ChangeBound::Version(5), None)
            .await
            .expect_err("start after latest");
        assert!(
            matches!(err, Error::VersionNotFound { requested: 5, .. }),
            "{err}"
        );
        // An end past the latest version is clamped, as Spark does.
        let scan = table
            .changes(ChangeBound::Version(1), Some(ChangeBound::Version(9)))
            .await
            .expect("clamped");
        assert_eq!(scan.end_version(), 1);
    }

    #[tokio::test]
    async fn timestamp_bounds_map_to_versions_like_spark() {
        let table = memory_table();
        let mut builder = table
            .write()
            .with_property(ENABLE_PROPERTY, "true")
            .with_property("delta.enableInCommitTimestamps", "true");
        builder = builder.with_mode(SaveMode::Append);
        let _ = builder.execute(ids(&[0])).await.expect("create");
        for i in 1..4 {
            write(&table, &[i], SaveMode::Append, None).await;
        }
        let times: Vec<i64> = table
            .changes(ChangeBound::Version(0), None)
            .await
            .expect("plan")
            .commits()
            .iter()
            .map(|c| c.timestamp_ms)
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        let history = table.history(None).await.expect("history");
        for entry in &history {
            assert_eq!(
                times[usize::try_from(entry.version).expect("small")],
                entry.timestamp_ms
            );
        }

        // Start between v1 and v2: the first version at or after it is v2. End exactly at
        // v3's timestamp: v3 is included.
        let scan = table
            .changes(
                ChangeBound::Timestamp(times[1] + 1),
                Some(ChangeBound::Timestamp(times[3])),
            )
            .await
            .expect("plan");
        assert_eq!((scan.start_version(), scan.end_version()), (2, 3));
        assert_eq!(
            rows(&scan).await,
            vec![(2, "insert".to_owned(), 2), (3, "insert".to_owned(), 3)]
        );
        // A start exactly at a commit includes it; an end between commits stops before.
        let scan = table
            .changes(
                ChangeBound::Timestamp(times[1]),
                Some(ChangeBound::Timestamp(times[2] - 1)),
            )
            .await
            .expect("plan");
        assert_eq!((scan.start_version(), scan.end_version()), (1, 1));
        // Both bounds between the same two commits: no versions, no error.
        let scan = table
            .changes(
                ChangeBound::Timestamp(times[2] + 1),
                Some(ChangeBound::Timestamp(times[3] - 1)),
            )
            .await
            .expect("empty");
        assert!(scan.commits().is_empty());
        assert!(scan.collect().await.expect("read").is_empty());
        // Before the first commit: start at the first version; after the last: an error.
        let scan = table
            .changes(ChangeBound::Timestamp(0), Some(ChangeBound::Version(0)))
            .await
            .expect("plan");
        assert_eq!(scan.start_version(), 0);
        let err = table
            .changes(ChangeBound::Timestamp(times[3] + 1), None)
            .await
            .expect_err("after the latest commit");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let err = table
            .changes(ChangeBound::Version(0), Some(ChangeBound::Timestamp(0)))
            .await
            .expect_err("end before the first commit");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    }

    #[tokio::test]
    async fn cdc_files_are_read_alone_with_their_change_types_and_partition_values() {
        let table = memory_table();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("grp", DataType::Utf8, true),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .expect("two columns");
        let _ = table
            .write()
            .with_partition_columns(["grp"])
            .with_property(ENABLE_PROPERTY, "true")
            .execute(futures::stream::iter([Ok(rows)]).boxed())
            .await
            .expect("create");
        // A cdc file as writers store it: data columns without the partition column, plus
        // `_change_type` (here the non-standard values some Spark tests wrote).
        let cdc_schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, true),
        ]));
        let cdc_rows = RecordBatch::try_new(
            cdc_schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 1])),
                Arc::new(StringArray::from(vec!["update_pre", "update_post"])),
            ],
        )
        .expect("two columns");
        let mut bytes = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, cdc_schema, None)
            .expect("parquet writer");
        writer.write(&cdc_rows).expect("write");
        writer.close().expect("close");
        let storage = table.storage();
        let cdc_path = "_change_data/grp=a/cdc-00000.snappy.parquet";
        let size = i64::try_from(bytes.len()).expect("small");
        storage
            .put(
                &storage.child(cdc_path, "test").expect("path"),
                bytes.into(),
            )
            .await
            .expect("put cdc file");
        // The commit also rewrites the file (add/remove), which a reader must then ignore.
        let snapshot = table.snapshot().await.expect("snapshot");
        let old = snapshot
            .files()
            .iter()
            .find(|f| f.partition_values.get("grp") == Some(&Some("a".to_owned())))
            .expect("the grp=a file")
            .clone();
        let actions = vec![
            Action::Remove(crate::action::Remove {
                path: old.path.clone(),
                data_change: true,
                partition_values: Some(old.partition_values.clone()),
                ..Default::default()
            }),
            Action::Add(old.clone()),
            Action::Cdc(crate::action::Cdc {
                path: cdc_path.to_owned(),
                partition_values: old.partition_values.clone(),
                size,
                data_change: false,
                tags: None,
            }),
        ];
        storage
            .put(
                &storage.log_location(&LogPath::Commit(1).file_name()),
                crate::action::format_commit(&actions).into(),
            )
            .await
            .expect("put commit");

        let scan = table
            .changes(ChangeBound::Version(1), None)
            .await
            .expect("plan");
        assert_eq!(scan.commits()[0].source, ChangeSource::CdcFiles);
        assert_eq!(scan.commits()[0].file_count, 1);
        let batches = scan.collect().await.expect("read");
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "grp",
                CHANGE_TYPE_COLUMN,
                COMMIT_VERSION_COLUMN,
                COMMIT_TIMESTAMP_COLUMN
            ]
        );
        let grp = batch.column(1).as_string::<i32>();
        let kind = batch.column(2).as_string::<i32>();
        let got: Vec<_> = (0..batch.num_rows())
            .map(|i| (grp.value(i), kind.value(i)))
            .collect();
        assert_eq!(got, [("a", "update_pre"), ("a", "update_post")]);
    }

    fn inline_dv(rows: &[u64]) -> DeletionVectorDescriptor {
        let bitmap: roaring::RoaringTreemap = rows.iter().copied().collect();
        let bytes = encode_bitmap(&bitmap);
        DeletionVectorDescriptor {
            storage_type: STORAGE_TYPE_INLINE.to_owned(),
            path_or_inline_dv: z85_encode(&bytes),
            offset: None,
            size_in_bytes: i32::try_from(bytes.len()).expect("small"),
            cardinality: i64::try_from(rows.len()).expect("small"),
        }
    }

    /// Replace the deletion vector of the table's only file in one remove/add commit.
    async fn set_dv(table: &Table, rows: &[u64]) {
        let snapshot = table.snapshot().await.expect("snapshot");
        let old = snapshot.files()[0].clone();
        let mut new = old.clone();
        new.deletion_vector = (!rows.is_empty()).then(|| inline_dv(rows));
        let mut txn = table.transaction(&snapshot).with_operation("DELETE");
        txn.remove_files([old], true);
        txn.add_files([new]);
        let _ = txn.commit().await.expect("commit");
    }

    #[tokio::test]
    async fn deletion_vector_updates_yield_only_the_rows_that_changed() {
        let table = memory_table();
        write(
            &table,
            &[10, 11, 12, 13, 14],
            SaveMode::Append,
            Some("true"),
        )
        .await;
        set_dv(&table, &[1]).await; // v1: row 1 deleted
        set_dv(&table, &[1, 3, 4]).await; // v2: rows 3 and 4 deleted
        set_dv(&table, &[4]).await; // v3: row 1 and 3 restored (a RESTORE-like rewrite)
        let scan = table
            .changes(ChangeBound::Version(1), None)
            .await
            .expect("plan");
        let got = rows(&scan).await;
        let want: Vec<(i64, String, i64)> = [
            (1, "delete", 11),
            (2, "delete", 13),
            (2, "delete", 14),
            (3, "insert", 11),
            (3, "insert", 13),
        ]
        .into_iter()
        .map(|(v, k, i)| (v, k.to_owned(), i))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            counts(&got).get(&(2, "delete".to_owned())),
            Some(&2),
            "only the rows entering the deletion vector"
        );
        // The DV is honoured for plain removes too: removing the file deletes only the
        // rows still visible.
        let snapshot = table.snapshot().await.expect("snapshot");
        let mut txn = table.transaction(&snapshot).with_operation("DELETE");
        txn.remove_files(snapshot.files().to_vec(), true);
        let _ = txn.commit().await.expect("commit");
        let scan = table
            .changes(ChangeBound::Version(4), None)
            .await
            .expect("plan");
        let deleted: Vec<i64> = rows(&scan).await.into_iter().map(|r| r.2).collect();
        assert_eq!(deleted, vec![10, 11, 12, 13]);
    }
}
