//! How DELETE, UPDATE and MERGE take rows out of existing data files, and the change data they
//! leave for the change data feed.
//!
//! An operation hands a [`Rewriter`] the rows of each file it changes, batch by batch, with
//! the fate of every row ([`RowFate`]): kept, updated (its new version is in the output) or
//! deleted. The rewriter then works in one of two ways per file:
//!
//! * **copy-on-write**: the file's surviving and updated rows go to new data files and the
//!   file is removed;
//! * **deletion vectors** (`delta.enableDeletionVectors=true` and the `deletionVectors`
//!   feature, PROTOCOL.md §10): only the updated rows are written; the file stays, with a
//!   deletion vector that marks the rows that left it, by physical row index. The old logical
//!   file `(path, oldDv)` is removed and `(path, newDv)` added in the same commit. A file all
//!   of whose rows leave is simply removed.
//!
//! With `delta.enableChangeDataFeed=true` (PROTOCOL.md §12) the rows that change also go to
//! change data files under `_change_data/`, with a `_change_type` column: `delete`,
//! `update_preimage`, `update_postimage` and `insert`. A reader of the feed reads only those
//! files for a version that has any, so once an operation writes change data, every change
//! it makes must be there (inserts included).
//!
//! The deletion vectors of one operation share one `deletion_vector_<uuid>.bin` file, written
//! by [`Rewritten::stage`] after every task has finished; bitmaps of at most
//! [`INLINE_DV_MAX_BYTES`] are stored inline in the descriptor instead.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use roaring::RoaringTreemap;

use crate::action::{Add, Cdc, Metadata};
use crate::deletion_vector::{
    DV_FILE_FORMAT_VERSION, DeletionVectorDescriptor, STORAGE_TYPE_INLINE, STORAGE_TYPE_UUID,
    encode_bitmap, encode_dv_file_entry, z85_encode,
};
use crate::schema::{DataType, PrimitiveType, StructField, StructType};
use crate::write::{CHANGE_TYPE_COLUMN, DataWriter};
use crate::{Error, Result, Snapshot, Table, Transaction};

/// Serialised bitmaps up to this size are stored inline in the descriptor (`storageType`
/// `i`), not in the shared DV file: one or a few deleted rows.
pub(crate) const INLINE_DV_MAX_BYTES: usize = 40;

/// What happens to one row of a file an operation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowFate {
    /// The row stays as it is.
    Kept,
    /// The row is replaced by its new version (in the output, at the row's place).
    Updated,
    /// The row is deleted.
    Deleted,
}

/// How the operation may change files, from the table's properties and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RewriteMode {
    /// Mark removed rows in deletion vectors instead of rewriting files.
    pub(crate) deletion_vectors: bool,
    /// Write change data files.
    pub(crate) change_data: bool,
}

impl RewriteMode {
    /// The mode the table at `snapshot` asks for.
    pub(crate) fn of(snapshot: &Snapshot) -> Self {
        let flag = |key: &str| {
            snapshot
                .property(key)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        let has = |features: Vec<String>| features.iter().any(|f| f == "deletionVectors");
        let protocol = snapshot.protocol();
        Self {
            deletion_vectors: flag("delta.enableDeletionVectors")
                && has(crate::table_features::reader_features(protocol))
                && has(crate::table_features::writer_features(protocol)),
            change_data: flag("delta.enableChangeDataFeed"),
        }
    }
}

/// The row counts of a rewrite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RewriteCounts {
    /// Rows copied unchanged into new files (copy-on-write only).
    pub(crate) rows_copied: u64,
    /// Rows written to new data files (copies, updates and inserts).
    pub(crate) rows_written: u64,
    /// Rows written to change data files.
    pub(crate) change_rows: u64,
}

/// One file being changed: where its rows are, and which leave it.
pub(crate) struct FileEdit {
    add: Add,
    /// Mark rows in a deletion vector (else copy-on-write).
    mark: bool,
    /// Logical rows (after the file's current deletion vector) seen so far.
    offset: u64,
    /// Logical positions of the rows that leave the file (deletion-vector mode).
    leaving: Vec<u64>,
}

/// Writes the outcome of an operation's changes to data files, deletion vectors and change
/// data files. One per task; the results are combined with [`Rewritten::absorb`].
pub(crate) struct Rewriter {
    table: Table,
    mode: RewriteMode,
    /// The schema of the written rows.
    schema: SchemaRef,
    data: DataWriter,
    change: Option<ChangeWriter>,
    out: Rewritten,
}

/// The change data writer and its schema (the table's columns plus `_change_type`).
struct ChangeWriter {
    writer: DataWriter,
    schema: SchemaRef,
}

/// What a rewrite produced, before its deletion vectors are stored.
#[derive(Default)]
pub(crate) struct Rewritten {
    /// New data files.
    pub(crate) new_files: Vec<Add>,
    /// Logical files (path and current deletion vector) that leave the table.
    pub(crate) removed: Vec<Add>,
    /// Files that stay with more rows deleted: the file and all its deleted physical rows.
    marked: Vec<(Add, RoaringTreemap)>,
    /// Change data files.
    pub(crate) change_files: Vec<Add>,
    /// Row counts.
    pub(crate) counts: RewriteCounts,
}

/// What [`Rewritten::stage`] put into a transaction, and how to undo its files.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Every file written (data, change data, deletion vectors): deleted on abort.
    written: Vec<String>,
    /// New data files added.
    pub(crate) files_added: u64,
    /// Their bytes.
    pub(crate) bytes_added: u64,
    /// Files removed whole (not kept with a deletion vector).
    pub(crate) files_removed: u64,
    /// Their bytes.
    pub(crate) bytes_removed: u64,
    /// Files that got a new deletion vector.
    pub(crate) deletion_vectors_added: u64,
    /// Deletion vectors replaced or dropped with their file.
    pub(crate) deletion_vectors_removed: u64,
    /// Change data files added.
    pub(crate) change_files_added: u64,
    /// The logical files removed (for the transaction's read footprint).
    pub(crate) removed_paths: Vec<String>,
}

impl Rewriter {
    /// A rewriter writing rows of `schema` (the table's schema after the operation) into
    /// `table`, read at `snapshot`, with at most `max_buffered_bytes` of rows buffered.
    pub(crate) fn new(
        table: &Table,
        snapshot: &Snapshot,
        schema: &StructType,
        metadata: &Metadata,
        max_buffered_bytes: Option<usize>,
    ) -> Result<Self> {
        let mode = RewriteMode::of(snapshot);
        let data = crate::operations::new_writer(
            table,
            schema,
            snapshot.partition_columns(),
            metadata,
            max_buffered_bytes,
        )?;
        let change = if mode.change_data {
            let mut change_schema = schema.clone();
            if change_schema.field(CHANGE_TYPE_COLUMN).is_some() {
                return Err(Error::invalid(format!(
                    "the table has a column named {CHANGE_TYPE_COLUMN}, which the change data feed reserves"
                )));
            }
            change_schema.fields.push(StructField {
                name: CHANGE_TYPE_COLUMN.to_owned(),
                data_type: DataType::Primitive(PrimitiveType::String),
                nullable: true,
                metadata: Default::default(),
            });
            let writer = crate::operations::new_writer(
                table,
                &change_schema,
                snapshot.partition_columns(),
                metadata,
                max_buffered_bytes.map(|b| b / 4),
            )?
            .into_change_data_writer()?;
            Some(ChangeWriter {
                writer,
                schema: Arc::new(change_schema.to_arrow()?),
            })
        } else {
            None
        };
        Ok(Self {
            table: table.clone(),
            mode,
            schema: Arc::new(schema.to_arrow()?),
            data,
            change,
            out: Rewritten::default(),
        })
    }

    /// Whether change data files are written.
    pub(crate) fn writes_change_data(&self) -> bool {
        self.change.is_some()
    }

    /// This rewriter without change data (its rows are plain appends, which the change
    /// feed reads from the `add` actions).
    pub(crate) fn without_change_data(mut self) -> Self {
        self.change = None;
        self
    }

    /// Start changing the file `add`.
    pub(crate) fn begin(&self, add: &Add) -> FileEdit {
        FileEdit {
            add: add.clone(),
            // A deletion vector needs the file's physical row count in its statistics.
            mark: self.mode.deletion_vectors && add.num_records().is_some(),
            offset: 0,
            leaving: Vec::new(),
        }
    }

    /// The next batch of the file's rows: `original` as read (in file order, after its current
    /// deletion vector), `output` the rows that stay or replace them (`Deleted` rows dropped,
    /// the others in order) and the fate of every original row.
    pub(crate) async fn batch(
        &mut self,
        edit: &mut FileEdit,
        original: &RecordBatch,
        output: &RecordBatch,
        fates: &[RowFate],
    ) -> Result<()> {
        self.some_rows(edit, original.num_rows(), None, original, output, fates)
            .await
    }

    /// Whether `edit`'s file keeps its rows behind a deletion vector: then only the rows that
    /// change matter, and [`Rewriter::changed_rows`] may be given them alone.
    pub(crate) fn marks(edit: &FileEdit) -> bool {
        edit.mark
    }

    /// Like [`Rewriter::batch`] for a file that [`Rewriter::marks`]: of a batch of `batch_rows`
    /// rows, only the rows at `positions` (ascending) are given, all of them changing; the
    /// others are kept.
    pub(crate) async fn changed_rows(
        &mut self,
        edit: &mut FileEdit,
        batch_rows: usize,
        positions: &[u32],
        original: &RecordBatch,
        output: &RecordBatch,
        fates: &[RowFate],
    ) -> Result<()> {
        if !edit.mark || positions.len() != original.num_rows() {
            return Err(Error::invalid(
                "internal: changed rows given for a file that is rewritten",
            ));
        }
        self.some_rows(edit, batch_rows, Some(positions), original, output, fates)
            .await
    }

    async fn some_rows(
        &mut self,
        edit: &mut FileEdit,
        batch_rows: usize,
        positions: Option<&[u32]>,
        original: &RecordBatch,
        output: &RecordBatch,
        fates: &[RowFate],
    ) -> Result<()> {
        if fates.len() != original.num_rows() {
            return Err(Error::invalid(
                "internal: the fates do not match the rows of the batch",
            ));
        }
        let any_change = fates.iter().any(|f| *f != RowFate::Kept);
        let updated_out: BooleanArray = fates
            .iter()
            .filter(|f| **f != RowFate::Deleted)
            .map(|f| Some(*f == RowFate::Updated))
            .collect();
        if edit.mark {
            for (i, fate) in fates.iter().enumerate() {
                if *fate != RowFate::Kept {
                    let row = positions.map_or(i as u64, |p| u64::from(p[i]));
                    edit.leaving.push(edit.offset + row);
                }
            }
            if updated_out.true_count() > 0 {
                let updated = filter_record_batch(output, &updated_out)?;
                self.out.counts.rows_written += updated.num_rows() as u64;
                self.data.write(&updated).await?;
            }
        } else if output.num_rows() > 0 {
            self.out.counts.rows_written += output.num_rows() as u64;
            self.out.counts.rows_copied +=
                fates.iter().filter(|f| **f == RowFate::Kept).count() as u64;
            self.data.write(output).await?;
        }
        edit.offset += batch_rows as u64;
        if any_change && self.change.is_some() {
            let original = conform(original, &self.schema)?;
            let of = |fate: RowFate| -> BooleanArray {
                fates.iter().map(|f| Some(*f == fate)).collect()
            };
            self.change_rows(
                &filter_record_batch(&original, &of(RowFate::Deleted))?,
                "delete",
            )
            .await?;
            self.change_rows(
                &filter_record_batch(&original, &of(RowFate::Updated))?,
                "update_preimage",
            )
            .await?;
            self.change_rows(
                &filter_record_batch(output, &updated_out)?,
                "update_postimage",
            )
            .await?;
        }
        Ok(())
    }

    /// The file is done: it leaves the table (copy-on-write, or every row gone) or stays with a
    /// larger deletion vector.
    pub(crate) async fn end(&mut self, edit: FileEdit) -> Result<()> {
        let FileEdit {
            add, mark, leaving, ..
        } = edit;
        if !mark {
            self.out.removed.push(add);
            return Ok(());
        }
        if leaving.is_empty() {
            return Ok(());
        }
        let old = match &add.deletion_vector {
            Some(dv) => {
                Some(crate::scan::load_deletion_vector(self.table.storage(), dv, &add.path).await?)
            }
            None => None,
        };
        let deleted = physical_rows(&leaving, old.as_ref());
        let records = add.num_records().unwrap_or(u64::MAX);
        if deleted.len() >= records {
            self.out.removed.push(add);
        } else {
            self.out.marked.push((add, deleted));
        }
        Ok(())
    }

    /// New rows (MERGE inserts): to the data files, and to the change data as `insert`.
    pub(crate) async fn insert(&mut self, rows: &RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        self.out.counts.rows_written += rows.num_rows() as u64;
        self.data.write(rows).await?;
        self.change_rows(rows, "insert").await
    }

    /// Rows of `batch` (in the written schema) as change data of `kind`.
    async fn change_rows(&mut self, batch: &RecordBatch, kind: &str) -> Result<()> {
        let Some(change) = &mut self.change else {
            return Ok(());
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![kind; batch.num_rows()])));
        let with_type = crate::operations::output_batch(&change.schema, columns, batch.num_rows())?;
        self.out.counts.change_rows += batch.num_rows() as u64;
        change.writer.write(&with_type).await
    }

    /// Finish the data and change data files.
    ///
    /// # Errors
    /// Storage or encoding errors; every file this rewriter wrote is then deleted.
    pub(crate) async fn finish(self) -> Result<Rewritten> {
        let Self {
            data,
            change,
            mut out,
            table,
            ..
        } = self;
        let new_files = match data.finish().await {
            Ok(adds) => adds,
            Err(e) => {
                if let Some(change) = change {
                    change.writer.abort().await.ok();
                }
                return Err(e);
            }
        };
        out.new_files = new_files;
        if let Some(change) = change {
            match change.writer.finish().await {
                Ok(files) => out.change_files = files,
                Err(e) => {
                    crate::operations::abort_adds(&table, &out.new_files).await;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Abandon everything written.
    pub(crate) async fn abort(self) {
        self.data.abort().await.ok();
        if let Some(change) = self.change {
            change.writer.abort().await.ok();
        }
    }
}

impl Rewritten {
    /// Add another task's outcome.
    pub(crate) fn absorb(&mut self, other: Rewritten) {
        self.new_files.extend(other.new_files);
        self.removed.extend(other.removed);
        self.marked.extend(other.marked);
        self.change_files.extend(other.change_files);
        self.counts.rows_copied += other.counts.rows_copied;
        self.counts.rows_written += other.counts.rows_written;
        self.counts.change_rows += other.counts.change_rows;
    }

    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.new_files.is_empty() && self.removed.is_empty() && self.marked.is_empty()
    }

    /// Delete every file written (the operation failed before staging).
    pub(crate) async fn abort(&self, table: &Table) {
        crate::operations::abort_adds(table, &self.new_files).await;
        crate::operations::abort_adds(table, &self.change_files).await;
    }

    /// Store the deletion vectors (one shared file, or inline) and stage every action into
    /// `txn`: removes of the old logical files, adds of the new data files and of the marked
    /// files with their new deletion vectors, and `cdc` actions.
    ///
    /// # Errors
    /// Storage errors writing the deletion vector file; the written files are then deleted.
    pub(crate) async fn stage(self, table: &Table, txn: &mut Transaction) -> Result<Staged> {
        let mut staged = Staged::default();
        staged
            .written
            .extend(self.new_files.iter().map(|a| a.path.clone()));
        staged
            .written
            .extend(self.change_files.iter().map(|a| a.path.clone()));
        let mut dv_file = vec![DV_FILE_FORMAT_VERSION];
        let dv_uuid = table.clock().unique_id();
        let mut descriptors = Vec::with_capacity(self.marked.len());
        for (_, bitmap) in &self.marked {
            let bitmap_bytes = encode_bitmap(bitmap);
            let size_in_bytes = i32::try_from(bitmap_bytes.len())
                .map_err(|_| Error::invalid("a deletion vector larger than 2 GiB"))?;
            let cardinality = i64::try_from(bitmap.len()).unwrap_or(i64::MAX);
            if bitmap_bytes.len() <= INLINE_DV_MAX_BYTES {
                descriptors.push(DeletionVectorDescriptor {
                    storage_type: STORAGE_TYPE_INLINE.to_owned(),
                    path_or_inline_dv: z85_encode(&bitmap_bytes),
                    offset: None,
                    size_in_bytes,
                    cardinality,
                });
                continue;
            }
            let offset = i32::try_from(dv_file.len())
                .map_err(|_| Error::invalid("a deletion vector file larger than 2 GiB"))?;
            dv_file.extend(encode_dv_file_entry(&bitmap_bytes)?);
            descriptors.push(DeletionVectorDescriptor {
                storage_type: STORAGE_TYPE_UUID.to_owned(),
                path_or_inline_dv: z85_encode(dv_uuid.as_bytes()),
                offset: Some(offset),
                size_in_bytes,
                cardinality,
            });
        }
        if dv_file.len() > 1 {
            let name = format!("deletion_vector_{dv_uuid}.bin");
            let location = table.storage().child(&name, "deletion vector file")?;
            if let Err(e) = table.storage().put(&location, Bytes::from(dv_file)).await {
                self.abort(table).await;
                return Err(e);
            }
            staged.written.push(name);
        }
        let now = table.clock().now_ms();
        let mut re_added = Vec::with_capacity(self.marked.len());
        let mut removed = self.removed;
        for ((add, _), dv) in self.marked.into_iter().zip(descriptors) {
            staged.deletion_vectors_added += 1;
            let mut new = add.clone();
            new.deletion_vector = Some(dv);
            new.data_change = true;
            new.modification_time = now;
            new.stats = new.stats.as_deref().map(loose_bounds);
            removed.push(add);
            re_added.push(new);
        }
        for add in &removed {
            if add.deletion_vector.is_some() {
                staged.deletion_vectors_removed += 1;
            }
        }
        let kept_paths: std::collections::HashSet<&str> =
            re_added.iter().map(|a| a.path.as_str()).collect();
        let whole: Vec<&Add> = removed
            .iter()
            .filter(|a| !kept_paths.contains(a.path.as_str()))
            .collect();
        staged.files_removed = whole.len() as u64;
        staged.bytes_removed = whole
            .iter()
            .map(|a| u64::try_from(a.size).unwrap_or(0))
            .sum();
        staged.files_added = self.new_files.len() as u64;
        staged.bytes_added = self
            .new_files
            .iter()
            .map(|a| u64::try_from(a.size).unwrap_or(0))
            .sum();
        staged.change_files_added = self.change_files.len() as u64;
        staged.removed_paths = removed.iter().map(|a| a.path.clone()).collect();
        txn.remove_files(removed, true);
        txn.add_files(self.new_files);
        txn.add_files(re_added);
        txn.add_change_files(self.change_files.into_iter().map(|a| Cdc {
            path: a.path,
            partition_values: a.partition_values,
            size: a.size,
            data_change: false,
            tags: None,
        }));
        Ok(staged)
    }
}

impl Staged {
    /// Delete the files written for a transaction that did not commit.
    pub(crate) async fn abort(&self, table: &Table) {
        let locations = self
            .written
            .iter()
            .filter_map(|path| table.storage().resolve_file(path, "aborted write").ok())
            .collect();
        table.storage().delete_many(locations).await.ok();
    }
}

/// Statistics of a file whose rows are partly deleted: the bounds still hold, but no longer
/// tightly (`tightBounds: false`, PROTOCOL.md §10).
fn loose_bounds(stats: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(stats) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("tightBounds".to_owned(), serde_json::Value::Bool(false));
            serde_json::Value::Object(map).to_string()
        }
        _ => stats.to_owned(),
    }
}

/// The physical rows of a file given the logical positions `leaving` (ascending) of rows
/// that leave it and the rows `old` already deleted, together with those old rows.
///
/// The logical row `l` is the `l`-th physical row not in `old`.
pub(crate) fn physical_rows(leaving: &[u64], old: Option<&RoaringTreemap>) -> RoaringTreemap {
    let Some(old) = old else {
        return leaving.iter().copied().collect();
    };
    let mut deleted = old.clone();
    let mut holes = old.iter().peekable();
    let mut skipped = 0u64;
    for &logical in leaving {
        let mut physical = logical + skipped;
        while holes.next_if(|&d| d <= physical).is_some() {
            skipped += 1;
            physical += 1;
        }
        deleted.insert(physical);
    }
    deleted
}

/// `batch` with the columns of `schema` (columns it lacks are null: the schema grew).
pub(crate) fn conform(batch: &RecordBatch, schema: &Schema) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            batch
                .column_by_name(f.name())
                .cloned()
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), batch.num_rows()))
        })
        .collect();
    crate::operations::output_batch(schema, columns, batch.num_rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_rows_map_past_deleted_rows() {
        let old: RoaringTreemap = [0u64, 2, 3, 7].into_iter().collect();
        // Physical rows left: 1, 4, 5, 6, 8, 9 → logical 0..6.
        let all = physical_rows(&[0, 1, 3, 4, 5], Some(&old));
        let got: Vec<u64> = all.iter().collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 6, 7, 8, 9]);
        let none = physical_rows(&[2, 5], None);
        assert_eq!(none.iter().collect::<Vec<_>>(), vec![2, 5]);
    }

    #[test]
    fn loose_bounds_marks_stats() {
        let s = loose_bounds(r#"{"numRecords":3,"tightBounds":true}"#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["tightBounds"], serde_json::Value::Bool(false));
        assert_eq!(v["numRecords"], 3);
    }
}
