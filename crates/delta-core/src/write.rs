//! Writing data files: partitioning, parquet encoding and `add` actions with statistics.
//!
//! A [`DataWriter`] takes record batches with logical column names, conforms them to the table
//! schema (column order, lossless casts, nulls for missing nullable columns), splits them by
//! partition value, and streams each partition's rows into zstd-compressed parquet files laid out
//! Hive style (`col=value/part-00000-<uuid>-c000.zstd.parquet`, PROTOCOL.md §1, §7). Data files
//! use the physical column names of the table (and parquet field ids in `id` column mapping mode,
//! §11) and never contain partition columns or `void` columns.
//!
//! Memory stays bounded however many partitions a write touches, without cutting small files.
//! Rows are first buffered per partition as Arrow batches (a fresh parquet row group holds some
//! tens of KiB of encoder state per column, too much to keep open for thousands of partitions).
//! A partition's rows are encoded into its open file as one row group when they reach a row
//! group's worth, or earlier when the buffered bytes of the whole writer (pending rows plus every
//! open file's upload buffer) exceed [`WriterOptions::max_buffered_bytes`]: then the partition
//! with the most pending bytes is encoded first. A file stays open between row groups (it then
//! holds only its upload buffer) and is completed at the target size or at the end; only when the
//! upload buffers alone exceed the budget are the largest open files completed early.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{
    CastOptions, can_cast_types, cast_with_options, concat_batches, take_record_batch,
};
use arrow::datatypes::{
    DataType as ArrowDataType, Schema as ArrowSchema, SchemaRef, TimeUnit, TimestampNanosecondType,
};
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::task::JoinSet;

use crate::action::{Add, Metadata, PartitionValues};
use crate::clock::Clock;
use crate::partition::{format_partition_value, partition_dir_segment};
use crate::schema::{ColumnMappingMode, DataType, StructType, to_physical_arrow_schema};
use crate::stats::{StatsCollector, StatsConfig};
use crate::storage::Storage;
use crate::{Error, Result};

/// One mebibyte.
const MIB: usize = 1024 * 1024;
/// Default `delta.targetFileSize`: 128 MiB.
const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;
/// Default maximum rows per parquet row group.
const DEFAULT_ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Maximum encoded bytes per parquet row group (also capped by the memory budget).
const ROW_GROUP_BYTES: usize = 64 * MIB;
/// Default memory budget across all open files.
const DEFAULT_MAX_BUFFERED_BYTES: usize = 192 * MIB;
/// Default size of one multipart upload part (the S3 minimum).
const DEFAULT_UPLOAD_PART_BYTES: usize = 5 * MIB;
/// The table property naming the target data file size in bytes.
const TARGET_FILE_SIZE_KEY: &str = "delta.targetFileSize";
/// The most rows handed to a parquet writer at once, so that roll-over and the memory budget are
/// checked at a fine grain even when one batch holds a whole partition.
const MAX_CHUNK_ROWS: usize = 8192;
/// The smallest in-memory size a write chunk is allowed to be cut to.
const MIN_CHUNK_BYTES: usize = 64 * 1024;
/// The largest in-memory size of a write chunk.
const MAX_CHUNK_BYTES: usize = 4 * MIB;
/// How many encoding tasks a [`DataWriter`] runs at once (the CLI's runtime has one worker per
/// core; the splitting of batches goes on beside them).
const ENCODE_CONCURRENCY: usize = 2;
/// How many files [`DataWriter::finish`] completes at once.
const COMPLETE_CONCURRENCY: usize = 16;
/// A partition's pending batches are merged into one when there are this many (small batches
/// are what a write with many partitions produces: one per partition and input batch).
const COALESCE_BATCHES: usize = 8;
/// The memory of a batch that [`RecordBatch::get_array_memory_size`] does not count (the array
/// structures themselves, their `Arc`s and buffer headers), per column: small, but a write to
/// thousands of partitions holds tens of thousands of small batches.
const ARRAY_OVERHEAD_BYTES: usize = 256;
/// Pending batches at least this large are left alone when merging.
const COALESCE_MAX_BYTES: usize = MIB;
/// The file name prefix when none is given.
const DEFAULT_FILE_PREFIX: &str = "part";
/// The directory of change data files (PROTOCOL.md §12).
pub(crate) const CHANGE_DATA_DIR: &str = "_change_data";
/// The column of change data files that says what kind of change a row is.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";

/// Characters percent-encoded in `add.path`: everything except RFC 3986 unreserved characters,
/// `/` (the separator) and `=` (Hive `col=value` directories), as Spark writes paths. A `%` from
/// Hive escaping therefore becomes `%25` (`x=A%2FA` → `x=A%252FA`).
const PATH_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b'=');

/// How data files are written.
#[derive(Clone, Debug)]
pub(crate) struct WriterOptions {
    /// A file is completed once its written plus buffered bytes reach this size
    /// (`delta.targetFileSize`, default 128 MiB).
    pub(crate) target_file_size_bytes: u64,
    /// The most rows in one parquet row group (default 1 Mi rows; row groups are also cut at
    /// 64 MiB of encoded data, or at the memory budget when that is smaller).
    pub(crate) row_group_rows: usize,
    /// The memory budget across all open files (default 192 MiB): when the buffered bytes of the
    /// open files exceed it, the largest open files are completed early.
    pub(crate) max_buffered_bytes: usize,
    /// The upload buffer of each open file and the multipart part size (default 5 MiB, capped
    /// by [`Storage::upload_part_cap`]: 64 KiB on local disk).
    pub(crate) upload_part_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            target_file_size_bytes: DEFAULT_TARGET_FILE_SIZE,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            upload_part_bytes: DEFAULT_UPLOAD_PART_BYTES,
        }
    }
}

impl WriterOptions {
    /// The options of a table: `delta.targetFileSize` (bytes, optionally with a `k`/`m`/`g`/`t`
    /// suffix with or without `b`, binary units as Spark's `byteStringAsBytes`) and defaults for
    /// everything else. An unusable `delta.targetFileSize` is ignored with a warning.
    pub(crate) fn from_metadata(metadata: &Metadata) -> Self {
        let mut options = Self::default();
        if let Some(value) = metadata.property(TARGET_FILE_SIZE_KEY) {
            match parse_byte_size(value) {
                Some(size) if size > 0 => options.target_file_size_bytes = size,
                _ => tracing::warn!(
                    "ignoring table property {TARGET_FILE_SIZE_KEY}: not a positive byte size"
                ),
            }
        }
        options
    }
}

/// Parses a byte size such as `134217728`, `128m`, `128mb` or `1g` (binary units).
fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        "p" | "pb" => 50,
        _ => return None,
    };
    number.checked_mul(1u64.checked_shl(shift)?)
}

/// The formatted partition values of a partition, in partition column order (`None` is NULL).
type PartitionKey = Vec<Option<String>>;

/// The column layout of the table, computed once per writer.
#[derive(Debug)]
struct Layout {
    /// The logical Arrow schema of the whole table (logical names, table nullability).
    logical: SchemaRef,
    /// Schema indices of the partition columns, in partition column order.
    partition_indices: Vec<usize>,
    /// Physical names of the partition columns (keys of `partitionValues`, directory names).
    partition_physical: Vec<String>,
    /// Schema indices of the data (non-partition) columns, in schema order.
    data_indices: Vec<usize>,
    /// Positions, within the data columns, of the columns written to parquet (all but `void`).
    written_positions: Vec<usize>,
    /// The physical Arrow schema of the parquet files.
    physical: SchemaRef,
}

impl Layout {
    /// The layout of `schema` partitioned by `partition_columns` under `mode`.
    fn new(
        schema: &StructType,
        partition_columns: &[String],
        mode: ColumnMappingMode,
    ) -> Result<Self> {
        let logical = Arc::new(schema.to_arrow()?);
        let mut partition_indices = Vec::with_capacity(partition_columns.len());
        let mut partition_physical = Vec::with_capacity(partition_columns.len());
        for column in partition_columns {
            let index = schema.index_of(column).ok_or_else(|| {
                Error::invalid(format!(
                    "partition column `{column}` is not in the table schema"
                ))
            })?;
            if partition_indices.contains(&index) {
                return Err(Error::invalid(format!(
                    "partition column `{column}` is listed more than once"
                )));
            }
            let field = schema
                .fields
                .get(index)
                .ok_or_else(|| Error::invalid(format!("partition column `{column}` is missing")))?;
            if !matches!(field.data_type, DataType::Primitive(_)) {
                return Err(Error::invalid(format!(
                    "partition column `{column}` has a nested type, which cannot be a partition column"
                )));
            }
            partition_indices.push(index);
            partition_physical.push(field.physical_name(mode).to_string());
        }
        let data_indices: Vec<usize> = (0..schema.fields.len())
            .filter(|i| !partition_indices.contains(i))
            .collect();
        let full_physical = to_physical_arrow_schema(schema, mode)?;
        let mut written_positions = Vec::with_capacity(data_indices.len());
        let mut physical_fields = Vec::with_capacity(data_indices.len());
        for (position, index) in data_indices.iter().enumerate() {
            let field = full_physical.fields().get(*index).ok_or_else(|| {
                Error::invalid("the physical schema does not match the table schema")
            })?;
            if field.data_type() != &ArrowDataType::Null {
                written_positions.push(position);
                physical_fields.push(field.clone());
            }
        }
        Ok(Self {
            logical,
            partition_indices,
            partition_physical,
            data_indices,
            written_positions,
            physical: Arc::new(ArrowSchema::new(physical_fields)),
        })
    }
}

/// Rows of one partition waiting to be encoded, as conformed logical batches that own their
/// memory (never slices that keep a larger input batch alive).
#[derive(Default)]
struct Pending {
    /// The batches, in arrival order.
    batches: Vec<RecordBatch>,
    /// Their rows.
    rows: usize,
    /// Their Arrow memory.
    bytes: usize,
    /// The partition's rank in order of first appearance (for a deterministic file order).
    first_seen: u64,
}

impl Pending {
    /// Merges the small batches into one when there are many, so that statistics and encoding
    /// work on batches of a useful size. Every byte is copied a few times at most: a merged batch
    /// that reaches [`COALESCE_MAX_BYTES`] is never merged again.
    fn coalesce(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.batches.len() < COALESCE_BATCHES {
            return Ok(());
        }
        let (small, mut kept): (Vec<RecordBatch>, Vec<RecordBatch>) =
            std::mem::take(&mut self.batches)
                .into_iter()
                .partition(|b| b.get_array_memory_size() < COALESCE_MAX_BYTES);
        if small.len() > 1 {
            kept.push(concat_batches(schema, &small)?);
        } else {
            kept.extend(small);
        }
        self.bytes = kept.iter().map(batch_memory).sum();
        self.batches = kept;
        Ok(())
    }
}

/// A data file being written.
struct OpenFile {
    /// The parquet writer streaming into the upload.
    writer: AsyncArrowWriter<BufWriter>,
    /// How the file is named in error messages.
    display: String,
    /// The URI-encoded relative path for `add.path`.
    add_path: String,
    /// The partition values keyed by physical column name.
    partition_values: PartitionValues,
    /// Statistics of the rows written so far.
    stats: StatsCollector,
    /// The bytes this file holds in memory, as last measured (see [`OpenFile::measure`]).
    buffered: usize,
    /// The file's number in this writer (the counter in its name), for deterministic order.
    sequence: u64,
}

impl OpenFile {
    /// The memory this file holds: the parquet writer's in-progress row group (its estimated
    /// memory or encoded size, whichever is larger; none between row groups) plus what the
    /// upload may buffer.
    ///
    /// Encoded bytes reach the upload only when a row group is flushed; it keeps them in memory
    /// up to its capacity (`upload_part_bytes`) and then sends them as multipart parts, so it
    /// holds at most `min(bytes_written, upload_part_bytes)`. Charging the full capacity to every
    /// open file instead would cap the open files at `budget / part size` (51 with the defaults)
    /// and cut tiny files whenever a write touches more partitions than that.
    fn measure(&self, upload_part_bytes: usize) -> usize {
        let upload = self.writer.bytes_written().min(upload_part_bytes);
        self.writer
            .memory_size()
            .max(self.writer.in_progress_size())
            .saturating_add(upload)
    }

    /// The size the file would have if completed now (written bytes plus the in-progress row
    /// group's estimated encoded size).
    fn estimated_size(&self) -> u64 {
        let size = self
            .writer
            .bytes_written()
            .saturating_add(self.writer.in_progress_size());
        u64::try_from(size).unwrap_or(u64::MAX)
    }
}

/// Writes the rows of a stream of batches as data files of a table and returns their `add`
/// actions.
///
/// Call [`DataWriter::write`] for every batch, then [`DataWriter::finish`] for the adds. When a
/// write fails, or the commit that should publish the files fails, call [`DataWriter::abort`] to
/// delete every file written so far. ([`DataWriter::finish`] cleans up by itself when it fails.)
pub(crate) struct DataWriter {
    /// What encoding tasks share: where and how files are written.
    files: Arc<FileFactory>,
    /// Groups rows by partition (`None` for unpartitioned tables).
    converter: Option<RowConverter>,
    /// The rows waiting to be encoded, by formatted partition values.
    pending: HashMap<PartitionKey, Pending>,
    /// The number of partitions seen so far (the next [`Pending::first_seen`]).
    partitions_seen: u64,
    /// The open files by formatted partition values (in partition column order), except those
    /// lent to an encoding task.
    open: HashMap<PartitionKey, OpenFile>,
    /// The encoding tasks running: each encodes the pending rows of one partition into its file
    /// on a runtime worker, so that encoding runs beside the splitting of the next batches.
    encoding: JoinSet<EncodeOutcome>,
    /// The bytes each running encoding task took out of [`DataWriter::buffered_bytes`]'s
    /// accounting (its rows and its file's buffer; still counted until it returns).
    in_flight: HashMap<PartitionKey, usize>,
    /// The adds of completed files, with the files' sequence numbers.
    adds: Vec<(u64, Add)>,
    /// The sum of [`Pending::bytes`], of [`OpenFile::buffered`] over the open files and of the
    /// bytes held by encoding tasks.
    buffered_bytes: usize,
    /// The largest value [`DataWriter::buffered_bytes`] reached (before early completions).
    peak_buffered_bytes: usize,
    /// Set when a write failed half-way: the writer must then be aborted.
    failed: bool,
}

impl std::fmt::Debug for DataWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataWriter")
            .field("table", &self.files.storage.url().as_str())
            .field("partition_columns", &self.files.partition_columns)
            .field("mode", &self.files.mode)
            .field("options", &self.files.options)
            .field("pending_partitions", &self.pending.len())
            .field("open_files", &self.open.len())
            .field("encoding", &self.in_flight.len())
            .field("completed_files", &self.adds.len())
            .field("buffered_bytes", &self.buffered_bytes)
            .finish_non_exhaustive()
    }
}

impl DataWriter {
    /// A writer of data files for the table at `storage` with logical `schema`, partitioned by
    /// `partition_columns` (logical names), under column mapping `mode`. `file_prefix` defaults
    /// to `part`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a partition column is not in the schema (or is nested or
    /// listed twice), or the file prefix is not a plain file name; [`Error::Corrupt`] when the
    /// schema lacks column mapping ids in `id` mode.
    #[allow(
        clippy::too_many_arguments,
        reason = "the writer's inputs are independent parts of a table"
    )]
    pub(crate) fn new(
        storage: Storage,
        schema: StructType,
        partition_columns: Vec<String>,
        mode: ColumnMappingMode,
        stats: StatsConfig,
        options: WriterOptions,
        clock: Arc<dyn Clock>,
        file_prefix: Option<String>,
    ) -> Result<Self> {
        // Before any file exists: a store whose commits could not be atomic is refused.
        storage.check_commits()?;
        let file_prefix = file_prefix.unwrap_or_else(|| DEFAULT_FILE_PREFIX.to_string());
        if file_prefix.is_empty()
            || file_prefix.contains('/')
            || file_prefix.starts_with(['.', '_'])
            || file_prefix.chars().any(char::is_control)
        {
            return Err(Error::invalid(format!(
                "data file prefix `{file_prefix}` is not a plain, visible file name"
            )));
        }
        let layout = Layout::new(&schema, &partition_columns, mode)?;
        // Fail early on a statistics configuration that does not fit the schema.
        StatsCollector::new(&schema, &partition_columns, mode, &stats)?;
        let converter = if layout.partition_indices.is_empty() {
            None
        } else {
            let fields = layout
                .partition_indices
                .iter()
                .map(|i| {
                    let field = layout.logical.fields().get(*i).ok_or_else(|| {
                        Error::invalid("partition column missing from the arrow schema")
                    })?;
                    Ok(SortField::new(field.data_type().clone()))
                })
                .collect::<Result<Vec<_>>>()?;
            Some(RowConverter::new(fields)?)
        };
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES.min(options.max_buffered_bytes).max(1)))
            .build();
        let options = WriterOptions {
            target_file_size_bytes: options.target_file_size_bytes.max(1),
            row_group_rows: options.row_group_rows.max(1),
            max_buffered_bytes: options.max_buffered_bytes,
            upload_part_bytes: options
                .upload_part_bytes
                .min(storage.upload_part_cap())
                .max(1),
        };
        Ok(Self {
            files: Arc::new(FileFactory {
                storage,
                schema,
                partition_columns,
                mode,
                stats_config: stats,
                options,
                clock,
                file_prefix,
                directory: String::new(),
                layout,
                properties,
                next_file: AtomicU64::new(0),
                started: Mutex::new(Vec::new()),
            }),
            converter,
            pending: HashMap::new(),
            partitions_seen: 0,
            open: HashMap::new(),
            encoding: JoinSet::new(),
            in_flight: HashMap::new(),
            adds: Vec::new(),
            buffered_bytes: 0,
            peak_buffered_bytes: 0,
            failed: false,
        })
    }

    /// Write one batch.
    ///
    /// The batch has logical column names, in any order. It must hold every non-nullable table
    /// column; missing nullable columns are written as nulls. A column whose type differs from
    /// the table's is cast when that is lossless (wider integers and floats, wider decimals,
    /// string/binary flavours, timestamps to microseconds — nanoseconds only when no value has
    /// sub-microsecond digits —, dictionaries, list/struct/map of such).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the column for a column not in the schema, a missing
    /// non-nullable column, nulls in a non-nullable column or a type that cannot be converted
    /// losslessly (the writer stays usable); [`Error::Parquet`] or [`Error::Storage`] when
    /// encoding or uploading fails (the writer must then be aborted).
    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.failed {
            return Err(failed_error());
        }
        let logical = self.conform(batch)?;
        if logical.num_rows() == 0 {
            return Ok(());
        }
        let groups = self.group_by_partition(&logical)?;
        let result = self.write_groups(&logical, groups).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Make this (fresh) writer write change data files: `_change_data/<partition dirs>/cdc-…`
    /// (PROTOCOL.md §12). Its schema must already hold the `_change_type` column.
    pub(crate) fn into_change_data_writer(mut self) -> Result<Self> {
        let files = Arc::get_mut(&mut self.files).ok_or_else(|| {
            Error::invalid("a data writer that has started cannot change its directory")
        })?;
        files.directory = format!("{CHANGE_DATA_DIR}/");
        files.file_prefix = "cdc".to_owned();
        Ok(self)
    }

    /// Close every open file and return the adds (`dataChange` true), in the order the files
    /// were completed.
    ///
    /// # Errors
    /// [`Error::Parquet`] or [`Error::Storage`] when completing a file fails; every file written
    /// by this writer is then deleted (best effort) before the error is returned.
    pub(crate) async fn finish(mut self) -> Result<Vec<Add>> {
        if self.failed {
            let _ = self.abort().await;
            return Err(failed_error());
        }
        let flushed = match self.flush_all_pending().await {
            Ok(()) => self.join_all().await,
            Err(e) => Err(e),
        };
        if let Err(e) = flushed {
            let _ = self.abort().await;
            return Err(e);
        }
        tracing::debug!(
            peak_buffered_bytes = self.peak_buffered_bytes,
            completed_files = self.adds.len(),
            open_files = self.open.len(),
            "data writer finishing"
        );
        let mut files: Vec<OpenFile> = self.open.drain().map(|(_, file)| file).collect();
        files.sort_by_key(|f| f.sequence);
        self.buffered_bytes = 0;
        // Completing a file is mostly waiting for storage (on local disk: a directory, a staged
        // file and a rename), so several complete at once. Every file runs to its end, so that
        // on an error none is left half-uploaded, and `abort` then deletes them all.
        let clock = self.files.clock.clone();
        let results: Vec<Result<(u64, Add)>> = futures::stream::iter(files)
            .map(|file| complete_file(file, clock.as_ref()))
            .buffered(COMPLETE_CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(add) => self.adds.push(add),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            let _ = self.abort().await;
            return Err(e);
        }
        // Encoding tasks complete files in no fixed order: order the adds by file number.
        let mut adds = std::mem::take(&mut self.adds);
        adds.sort_by_key(|(sequence, _)| *sequence);
        Ok(adds.into_iter().map(|(_, add)| add).collect())
    }

    /// Abort: cancel the uploads of open files and delete every file written or started so far
    /// (used when a write or the commit fails). Best effort: every file is attempted.
    ///
    /// # Errors
    /// The first [`Error::Storage`] met while deleting, after all deletions were attempted.
    pub(crate) async fn abort(mut self) -> Result<()> {
        self.pending.clear();
        // Let running encoding tasks end (never drop an upload half-way), then cancel every
        // upload still open.
        while let Some(joined) = self.encoding.join_next().await {
            if let Ok(outcome) = joined
                && let Ok(Some(file)) = outcome.result.map(|(file, _)| file)
            {
                cancel_upload(file).await;
            }
        }
        for (_, file) in self.open.drain() {
            cancel_upload(file).await;
        }
        let started = std::mem::take(&mut *self.files.started());
        let storage = &self.files.storage;
        let count = started.len();
        match storage.delete_many(started.into_iter().collect()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(
                    "cannot delete the {count} aborted data files under {}: {e}",
                    storage.url()
                );
                Err(e)
            }
        }
    }

    /// The largest total of buffered bytes seen right after a write (before early completions).
    #[cfg(test)]
    fn peak_buffered_bytes(&self) -> usize {
        self.peak_buffered_bytes
    }

    /// The batch as the table's logical columns, in schema order, with the table's types.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.files.schema.fields.len()];
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            let index = self.files.schema.index_of(name).ok_or_else(|| {
                Error::invalid(format!("column `{name}` is not in the table schema"))
            })?;
            let (Some(slot), Some(target)) = (
                columns.get_mut(index),
                self.files.layout.logical.fields().get(index),
            ) else {
                return Err(Error::invalid(format!(
                    "column `{name}` is not in the table schema"
                )));
            };
            if slot.is_some() {
                return Err(Error::invalid(format!(
                    "column `{name}` appears more than once in the batch"
                )));
            }
            *slot = Some(conform_column(array, target.data_type(), name)?);
        }
        let mut arrays = Vec::with_capacity(columns.len());
        for (column, field) in columns.into_iter().zip(self.files.layout.logical.fields()) {
            let array = match column {
                Some(array) => array,
                None if field.is_nullable() => {
                    arrow::array::new_null_array(field.data_type(), rows)
                }
                None => {
                    return Err(Error::invalid(format!(
                        "column `{}` is not nullable but missing from the batch",
                        field.name()
                    )));
                }
            };
            if !field.is_nullable() && array.logical_null_count() > 0 {
                return Err(Error::invalid(format!(
                    "column `{}` is not nullable but the batch has nulls in it",
                    field.name()
                )));
            }
            arrays.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.files.layout.logical.clone(),
            arrays,
            &options,
        )?)
    }

    /// Writes the rows of a conformed batch, partition by partition (see
    /// [`DataWriter::group_by_partition`]).
    async fn write_groups(
        &mut self,
        logical: &RecordBatch,
        groups: Vec<(PartitionKey, Option<UInt32Array>)>,
    ) -> Result<()> {
        for (key, indices) in groups {
            // `take` copies the partition's rows, so that buffering them does not keep the
            // whole input batch alive.
            let rows = match indices {
                Some(indices) => take_record_batch(logical, &indices)?,
                None => logical.clone(),
            };
            self.buffer(key, rows).await?;
        }
        self.enforce_budget().await
    }

    /// The rows of each partition in the batch: its formatted partition values and the row
    /// indices (`None` when the whole batch is one partition), in order of first appearance.
    fn group_by_partition(
        &self,
        logical: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, Option<UInt32Array>)>> {
        let Some(converter) = &self.converter else {
            return Ok(vec![(Vec::new(), None)]);
        };
        let columns: Vec<ArrayRef> = self
            .files
            .layout
            .partition_indices
            .iter()
            .map(|i| logical.column(*i).clone())
            .collect();
        let rows = converter.convert_columns(&columns)?;
        let mut group_of_row: HashMap<arrow::row::Row<'_>, usize> = HashMap::new();
        let mut groups: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let index = u32::try_from(i)
                .map_err(|_| Error::invalid("a batch may hold at most 2^32 rows"))?;
            match group_of_row.entry(row) {
                Entry::Occupied(entry) => {
                    if let Some((_, indices)) = groups.get_mut(*entry.get()) {
                        indices.push(index);
                    }
                }
                Entry::Vacant(entry) => {
                    entry.insert(groups.len());
                    groups.push((i, vec![index]));
                }
            }
        }
        let whole = groups.len() == 1;
        groups
            .into_iter()
            .map(|(first, indices)| {
                let key = columns
                    .iter()
                    .map(|column| {
                        // Readers treat an empty partition value as NULL: write it as NULL.
                        Ok(format_partition_value(column.as_ref(), first)?
                            .filter(|value| !value.is_empty()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let indices = (!whole).then(|| UInt32Array::from(indices));
                Ok((key, indices))
            })
            .collect()
    }

    /// Adds rows to a partition's pending batches, encoding them as a row group once they are a
    /// row group's worth.
    async fn buffer(&mut self, key: PartitionKey, rows: RecordBatch) -> Result<()> {
        let bytes = batch_memory(&rows);
        let row_group_bytes = self.pending_row_group_bytes();
        let row_group_rows = self.files.options.row_group_rows;
        let schema = self.files.layout.logical.clone();
        let next_rank = self.partitions_seen;
        let pending = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            first_seen: next_rank,
            ..Pending::default()
        });
        if pending.first_seen == next_rank {
            self.partitions_seen += 1;
        }
        let before = pending.bytes;
        pending.rows += rows.num_rows();
        pending.bytes += bytes;
        pending.batches.push(rows);
        pending.coalesce(&schema)?;
        let full = pending.rows >= row_group_rows || pending.bytes >= row_group_bytes;
        self.buffered_bytes = self
            .buffered_bytes
            .saturating_sub(before)
            .saturating_add(pending.bytes);
        self.peak_buffered_bytes = self.peak_buffered_bytes.max(self.buffered_bytes);
        if full {
            self.flush_partition(&key).await?;
        }
        Ok(())
    }

    /// The pending Arrow bytes at which a partition's rows are encoded as a row group.
    fn pending_row_group_bytes(&self) -> usize {
        ROW_GROUP_BYTES
            .min(self.files.options.max_buffered_bytes / 4)
            .max(1)
    }

    /// Encodes pending rows until the buffered bytes fit the budget: the partition with the most
    /// pending bytes first, waiting for running encodings when they hold enough; when nothing is
    /// pending or encoding, the open file with the largest upload buffer is completed.
    async fn enforce_budget(&mut self) -> Result<()> {
        let budget = self.files.options.max_buffered_bytes;
        while self.buffered_bytes > budget {
            let in_flight: usize = self.in_flight.values().sum();
            let largest_pending = self
                .pending
                .iter()
                .filter(|(key, p)| p.bytes > 0 && !self.in_flight.contains_key(*key))
                .max_by_key(|(_, p)| (p.bytes, Reverse(p.first_seen)))
                .map(|(key, _)| key.clone());
            if self.buffered_bytes.saturating_sub(in_flight) > budget
                && let Some(key) = largest_pending
            {
                self.flush_partition(&key).await?;
                continue;
            }
            if !self.encoding.is_empty() {
                self.join_one().await?;
                continue;
            }
            let largest_file = self
                .open
                .iter()
                .max_by_key(|(_, f)| (f.buffered, Reverse(f.sequence)))
                .map(|(key, _)| key.clone());
            match largest_file {
                Some(key) => self.complete(&key).await?,
                None => break,
            }
        }
        Ok(())
    }

    /// Encodes every pending partition, in order of first appearance.
    async fn flush_all_pending(&mut self) -> Result<()> {
        let mut keys: Vec<(u64, PartitionKey)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.rows > 0)
            .map(|(key, p)| (p.first_seen, key.clone()))
            .collect();
        keys.sort_unstable();
        for (_, key) in keys {
            self.flush_partition(&key).await?;
        }
        Ok(())
    }

    /// Starts encoding a partition's pending rows into its open file (opening one when needed,
    /// rolling over at the target size), as a task of its own; the task ends the row group, so
    /// that the file holds no encoder state until its next rows. At most
    /// [`ENCODE_CONCURRENCY`] tasks run at once, and one partition is encoded by one task at a
    /// time (its rows stay in order).
    async fn flush_partition(&mut self, key: &[Option<String>]) -> Result<()> {
        while self.in_flight.contains_key(key) {
            self.join_one().await?;
        }
        while self.encoding.len() >= ENCODE_CONCURRENCY {
            self.join_one().await?;
        }
        let Some(pending) = self.pending.get_mut(key) else {
            return Ok(());
        };
        if pending.rows == 0 {
            return Ok(());
        }
        let batches = std::mem::take(&mut pending.batches);
        let mut held = std::mem::take(&mut pending.bytes);
        pending.rows = 0;
        let file = self.open.remove(key);
        held += file.as_ref().map_or(0, |f| f.buffered);
        let key = key.to_vec();
        self.in_flight.insert(key.clone(), held);
        let files = self.files.clone();
        self.encoding.spawn(async move {
            let result = encode_rows(&files, &key, file, batches).await;
            EncodeOutcome { key, result }
        });
        Ok(())
    }

    /// Waits for one encoding task and takes back its file and its completed files.
    async fn join_one(&mut self) -> Result<()> {
        let Some(joined) = self.encoding.join_next().await else {
            return Ok(());
        };
        let outcome = joined.map_err(|e| {
            Error::invalid(format!("a data file encoding task did not finish: {e}"))
        })?;
        let held = self.in_flight.remove(&outcome.key).unwrap_or(0);
        self.buffered_bytes = self.buffered_bytes.saturating_sub(held);
        let (file, adds) = outcome.result?;
        self.adds.extend(adds);
        if let Some(mut file) = file {
            file.buffered = file.measure(self.files.options.upload_part_bytes);
            self.buffered_bytes = self.buffered_bytes.saturating_add(file.buffered);
            self.open.insert(outcome.key, file);
        }
        Ok(())
    }

    /// Waits for every encoding task.
    async fn join_all(&mut self) -> Result<()> {
        while !self.encoding.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    /// Completes the open file of partition `key` and records its add.
    async fn complete(&mut self, key: &[Option<String>]) -> Result<()> {
        let Some(file) = self.open.remove(key) else {
            return Ok(());
        };
        self.buffered_bytes = self.buffered_bytes.saturating_sub(file.buffered);
        let add = complete_file(file, self.files.clock.as_ref()).await?;
        self.adds.push(add);
        Ok(())
    }
}

/// What an encoding task gives back: the partition, and its file (still open, or `None` when
/// its last file was completed) with the adds of the files it completed.
struct EncodeOutcome {
    /// The partition.
    key: PartitionKey,
    /// The open file and the completed files' adds (with their sequence numbers).
    result: Result<Encoded>,
}

/// What encoding a partition's rows leaves: its file, still open (or `None` when the last file
/// was completed), and the adds of the files completed, with their sequence numbers.
type Encoded = (Option<OpenFile>, Vec<(u64, Add)>);

/// Where and how a [`DataWriter`]'s files are written: shared by its encoding tasks.
struct FileFactory {
    /// Where the files go.
    storage: Storage,
    /// The logical table schema.
    schema: StructType,
    /// Logical names of the partition columns.
    partition_columns: Vec<String>,
    /// The column mapping mode.
    mode: ColumnMappingMode,
    /// Which statistics to collect.
    stats_config: StatsConfig,
    /// Sizes and budgets.
    options: WriterOptions,
    /// Time stamps and file ids.
    clock: Arc<dyn Clock>,
    /// The first part of every file name (`part`).
    file_prefix: String,
    /// The directory the files go under, relative to the table root, with a trailing `/`
    /// (empty for data files; `_change_data/` for change data files).
    directory: String,
    /// The column layout.
    layout: Layout,
    /// The parquet writer properties.
    properties: WriterProperties,
    /// The number of the next file.
    next_file: AtomicU64,
    /// Every file started, completed or not, for [`DataWriter::abort`].
    started: Mutex<Vec<Path>>,
}

impl FileFactory {
    /// The list of started files (a poisoned lock still holds a usable list).
    fn started(&self) -> std::sync::MutexGuard<'_, Vec<Path>> {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many rows of `batch` to hand to a parquet writer at once, so that roll-over at the
    /// target size is checked at a fine grain.
    fn chunk_rows(&self, batch: &RecordBatch) -> usize {
        let per_row = (batch.get_array_memory_size() / batch.num_rows().max(1)).max(1);
        let target = usize::try_from(self.options.target_file_size_bytes / 8).unwrap_or(usize::MAX);
        let chunk_bytes = target.clamp(MIN_CHUNK_BYTES, MAX_CHUNK_BYTES);
        (chunk_bytes / per_row).clamp(1, MAX_CHUNK_ROWS)
    }

    /// Writes rows of one partition to `file`: statistics, then the physical columns.
    async fn write_chunk(&self, file: &mut OpenFile, chunk: &RecordBatch) -> Result<()> {
        let data = chunk.project(&self.layout.data_indices)?;
        let written = self
            .layout
            .written_positions
            .iter()
            .map(|i| data.column(*i).clone())
            .collect();
        // Nested fields keep their logical names inside the arrays: the parquet writer takes the
        // (physical) names and field ids from the schema and only needs the types to agree.
        let options = RecordBatchOptions::new()
            .with_row_count(Some(chunk.num_rows()))
            .with_match_field_names(false);
        let physical =
            RecordBatch::try_new_with_options(self.layout.physical.clone(), written, &options)?;
        file.stats.update(&data)?;
        file.writer
            .write(&physical)
            .await
            .map_err(|e| Error::parquet(&file.display, e))
    }

    /// Opens a new data file for the partition `key`.
    fn open_file(&self, key: &[Option<String>]) -> Result<OpenFile> {
        let mut relative = self.directory.clone();
        let mut partition_values = PartitionValues::with_capacity(key.len());
        for (column, value) in self.layout.partition_physical.iter().zip(key) {
            relative.push_str(&partition_dir_segment(column, value.as_deref()));
            relative.push('/');
            partition_values.insert(column.clone(), value.clone());
        }
        let sequence = self.next_file.fetch_add(1, Ordering::Relaxed);
        relative.push_str(&format!(
            "{}-{sequence:05}-{}-c000.zstd.parquet",
            self.file_prefix,
            self.clock.unique_id()
        ));
        let location = self.storage.child(&relative, "data file").map_err(|_| {
            Error::invalid(format!(
                "a value of partition column(s) {} cannot be part of a storage path (it has control characters)",
                self.partition_columns.join(", ")
            ))
        })?;
        let display = self.storage.display(&location);
        let upload = self
            .storage
            .upload(&location, self.options.upload_part_bytes);
        let writer = AsyncArrowWriter::try_new(
            upload,
            self.layout.physical.clone(),
            Some(self.properties.clone()),
        )
        .map_err(|e| Error::parquet(&display, e))?;
        let stats = StatsCollector::new(
            &self.schema,
            &self.partition_columns,
            self.mode,
            &self.stats_config,
        )?;
        self.started().push(location);
        Ok(OpenFile {
            writer,
            display,
            add_path: utf8_percent_encode(&relative, PATH_ENCODE_SET).to_string(),
            partition_values,
            stats,
            buffered: 0,
            sequence,
        })
    }
}

/// Encodes rows of the partition `key` into `file` (or a new file), completing files at the
/// target size, and ends the row group. On an error the open file's upload is cancelled.
async fn encode_rows(
    files: &FileFactory,
    key: &[Option<String>],
    file: Option<OpenFile>,
    batches: Vec<RecordBatch>,
) -> Result<Encoded> {
    let mut file = file;
    let mut adds = Vec::new();
    let outcome = encode_into(files, key, &mut file, batches, &mut adds).await;
    match outcome {
        Ok(()) => Ok((file, adds)),
        Err(e) => {
            if let Some(file) = file {
                cancel_upload(file).await;
            }
            Err(e)
        }
    }
}

/// The body of [`encode_rows`].
async fn encode_into(
    files: &FileFactory,
    key: &[Option<String>],
    file: &mut Option<OpenFile>,
    batches: Vec<RecordBatch>,
    adds: &mut Vec<(u64, Add)>,
) -> Result<()> {
    let target = files.options.target_file_size_bytes;
    for batch in batches {
        let rows = batch.num_rows();
        let chunk_rows = files.chunk_rows(&batch);
        let mut offset = 0;
        while offset < rows {
            let len = chunk_rows.min(rows - offset);
            let open = match file {
                Some(open) => open,
                None => file.insert(files.open_file(key)?),
            };
            files.write_chunk(open, &batch.slice(offset, len)).await?;
            offset += len;
            if open.estimated_size() >= target
                && let Some(full) = file.take()
            {
                adds.push(complete_file(full, files.clock.as_ref()).await?);
            }
        }
    }
    if let Some(open) = file.as_mut() {
        open.writer
            .flush()
            .await
            .map_err(|e| Error::parquet(&open.display, e))?;
    }
    Ok(())
}

/// The memory a buffered batch holds: its buffers plus the array structures around them.
fn batch_memory(batch: &RecordBatch) -> usize {
    batch.get_array_memory_size() + ARRAY_OVERHEAD_BYTES * (batch.num_columns() + 1)
}

/// The error of using a writer after a failed write.
fn failed_error() -> Error {
    Error::invalid("an earlier write of this data writer failed; abort it")
}

/// Cancels the upload of a file that was never completed (best effort).
async fn cancel_upload(file: OpenFile) {
    // The upload of a file that was never completed was never shut down, so it can be aborted.
    let mut upload = file.writer.into_inner();
    if let Err(e) = upload.abort().await {
        tracing::warn!("cannot cancel the upload of {}: {e}", file.display);
    }
}

/// Finishes the parquet file and uploads its tail; returns its add.
async fn complete_file(mut file: OpenFile, clock: &dyn Clock) -> Result<(u64, Add)> {
    file.writer
        .finish()
        .await
        .map_err(|e| Error::parquet(&file.display, e))?;
    let size = i64::try_from(file.writer.bytes_written())
        .map_err(|_| Error::invalid(format!("{} is too large", file.display)))?;
    let stats = file.stats.finish()?;
    let add = Add {
        path: file.add_path,
        partition_values: file.partition_values,
        size,
        modification_time: clock.now_ms(),
        data_change: true,
        stats: Some(stats),
        ..Default::default()
    };
    Ok((file.sequence, add))
}

/// Converts one batch column to the table's logical type `target`.
fn conform_column(array: &ArrayRef, target: &ArrowDataType, name: &str) -> Result<ArrayRef> {
    let from = array.data_type();
    if from == target {
        return Ok(array.clone());
    }
    if from == &ArrowDataType::Null {
        return Ok(arrow::array::new_null_array(target, array.len()));
    }
    let cannot = || {
        Error::invalid(format!(
            "column `{name}` has type {from}, which cannot be converted losslessly to the table type {target}"
        ))
    };
    let allowed = match (from, target) {
        (
            ArrowDataType::Timestamp(TimeUnit::Nanosecond, from_tz),
            ArrowDataType::Timestamp(TimeUnit::Microsecond, to_tz),
        ) if from_tz.is_some() == to_tz.is_some() => {
            let values = array.as_primitive::<TimestampNanosecondType>();
            if values.iter().flatten().any(|v| v % 1000 != 0) {
                return Err(Error::invalid(format!(
                    "column `{name}` has nanosecond timestamps with sub-microsecond digits; the table stores microseconds"
                )));
            }
            true
        }
        _ => lossless(from, target),
    };
    if !allowed || !can_cast_types(from, target) {
        return Err(cannot());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    // The cast error may quote a value: report the column and types only.
    cast_with_options(array, target, &options).map_err(|_| {
        Error::invalid(format!(
            "column `{name}` has a value that does not fit the table type {target}"
        ))
    })
}

/// Whether every value of type `from` converts to `to` without loss (the writer's implicit casts).
fn lossless(from: &ArrowDataType, to: &ArrowDataType) -> bool {
    use ArrowDataType as T;
    if from == to {
        return true;
    }
    match (from, to) {
        (T::Null, _) => true,
        (T::Dictionary(_, values), _) => lossless(values, to),
        (T::Int8, T::Int16 | T::Int32 | T::Int64 | T::Float32 | T::Float64)
        | (T::Int16, T::Int32 | T::Int64 | T::Float32 | T::Float64)
        | (T::Int32, T::Int64 | T::Float64)
        | (T::UInt8, T::Int16 | T::Int32 | T::Int64 | T::Float32 | T::Float64)
        | (T::UInt16, T::Int32 | T::Int64 | T::Float32 | T::Float64)
        | (T::UInt32, T::Int64 | T::Float64)
        | (T::Float16, T::Float32 | T::Float64)
        | (T::Float32, T::Float64)
        | (T::LargeUtf8 | T::Utf8View, T::Utf8)
        | (T::LargeBinary | T::BinaryView | T::FixedSizeBinary(_), T::Binary) => true,
        (T::Decimal32(p, s) | T::Decimal64(p, s) | T::Decimal128(p, s), T::Decimal128(tp, ts)) => {
            decimal_fits(i16::from(*p), i16::from(*s), *tp, *ts)
        }
        (_, T::Decimal128(tp, ts)) => {
            integer_digits(from).is_some_and(|digits| decimal_fits(digits, 0, *tp, *ts))
        }
        (T::Timestamp(unit, from_tz), T::Timestamp(TimeUnit::Microsecond, to_tz)) => {
            matches!(
                unit,
                TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond
            ) && from_tz.is_some() == to_tz.is_some()
        }
        (
            T::List(a)
            | T::LargeList(a)
            | T::ListView(a)
            | T::LargeListView(a)
            | T::FixedSizeList(a, _),
            T::List(b),
        ) => lossless(a.data_type(), b.data_type()),
        (T::Struct(a), T::Struct(b)) => {
            a.len() == b.len()
                && b.iter().all(|to_field| {
                    a.iter()
                        .find(|f| f.name() == to_field.name())
                        .is_some_and(|f| lossless(f.data_type(), to_field.data_type()))
                })
        }
        (T::Map(a, _), T::Map(b, _)) => match (a.data_type(), b.data_type()) {
            (T::Struct(a), T::Struct(b)) if a.len() == 2 && b.len() == 2 => a
                .iter()
                .zip(b.iter())
                .all(|(f, t)| lossless(f.data_type(), t.data_type())),
            _ => false,
        },
        _ => false,
    }
}

/// Whether a decimal with precision `p` and scale `s` fits `decimal(tp, ts)` exactly.
fn decimal_fits(p: i16, s: i16, tp: u8, ts: i8) -> bool {
    let (tp, ts) = (i16::from(tp), i16::from(ts));
    ts >= s && tp - ts >= p - s
}

/// The decimal digits an integer type may need.
fn integer_digits(data_type: &ArrowDataType) -> Option<i16> {
    match data_type {
        ArrowDataType::Int8 | ArrowDataType::UInt8 => Some(3),
        ArrowDataType::Int16 | ArrowDataType::UInt16 => Some(5),
        ArrowDataType::Int32 | ArrowDataType::UInt32 => Some(10),
        ArrowDataType::Int64 => Some(19),
        ArrowDataType::UInt64 => Some(20),
        _ => None,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use arrow::array::{
        Float64Array, Int32Array, Int64Array, StringArray, StructArray, TimestampMicrosecondArray,
        TimestampNanosecondArray,
    };
    use arrow::datatypes::{Field, Fields, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use bytes::Bytes;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::LogicalType;
    use parquet::file::metadata::ParquetMetaData;
    use url::Url;

    use super::*;
    use crate::action::{Action, Protocol, format_commit};
    use crate::clock::ManualClock;
    use crate::schema::{
        COLUMN_MAPPING_ID_KEY, COLUMN_MAPPING_MODE_KEY, COLUMN_MAPPING_PHYSICAL_NAME_KEY,
        PrimitiveType, StructField,
    };

    const URL: &str = "memory:///t/";

    fn storage(store: &Arc<InMemory>) -> Storage {
        Storage::new(store.clone(), Url::parse(URL).unwrap()).unwrap()
    }

    fn stats_config() -> StatsConfig {
        StatsConfig::from_metadata(&Metadata::default())
    }

    fn writer(
        store: &Arc<InMemory>,
        schema: &StructType,
        partitions: &[&str],
        mode: ColumnMappingMode,
        options: WriterOptions,
    ) -> DataWriter {
        DataWriter::new(
            storage(store),
            schema.clone(),
            partitions.iter().map(|p| (*p).to_string()).collect(),
            mode,
            stats_config(),
            options,
            Arc::new(ManualClock::new(0, 1, 42)),
            None,
        )
        .unwrap()
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        let arrays = columns.into_iter().map(|(_, a)| a).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    /// The decoded store path of an add.
    fn location(store: &Arc<InMemory>, add: &Add) -> Path {
        storage(store).resolve_file(&add.path, "test").unwrap()
    }

    /// Reads a data file back with the parquet crate.
    async fn read_file(
        store: &Arc<InMemory>,
        add: &Add,
    ) -> (Arc<ParquetMetaData>, Vec<RecordBatch>) {
        let bytes: Bytes = store
            .get(&location(store, add))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(usize::try_from(add.size).unwrap(), bytes.len(), "add.size");
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let metadata = builder.metadata().clone();
        let batches = builder
            .build()
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap();
        (metadata, batches)
    }

    /// Commits the adds as version 0 and scans the table with the existing reader.
    async fn scan(
        store: &Arc<InMemory>,
        schema: &StructType,
        partitions: &[&str],
        configuration: &[(&str, &str)],
        protocol: (i32, i32),
        adds: &[Add],
    ) -> Vec<RecordBatch> {
        let mut actions = vec![
            Action::Protocol(Protocol {
                min_reader_version: protocol.0,
                min_writer_version: protocol.1,
                ..Protocol::default()
            }),
            Action::Metadata(Metadata {
                id: "test-table".into(),
                schema_string: schema.to_json_string(),
                partition_columns: partitions.iter().map(|p| (*p).to_string()).collect(),
                created_time: Some(0),
                configuration: configuration
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), Some((*v).to_string())))
                    .collect(),
                ..Metadata::default()
            }),
        ];
        actions.extend(adds.iter().cloned().map(Action::Add));
        let log = storage(store).log_location("00000000000000000000.json");
        store
            .put(&log, Bytes::from(format_commit(&actions)).into())
            .await
            .unwrap();
        crate::Table::with_store(store.clone(), Url::parse(URL).unwrap())
            .unwrap()
            .snapshot()
            .await
            .unwrap()
            .scan()
            .build()
            .unwrap()
            .collect()
            .await
            .unwrap()
    }

    /// The rows of `batches` as sorted strings of the named columns (a multiset).
    fn rows(batches: &[RecordBatch], columns: &[&str]) -> Vec<String> {
        let options = FormatOptions::default().with_null("NULL");
        let mut out = Vec::new();
        for batch in batches {
            let formatters: Vec<_> = columns
                .iter()
                .map(|c| {
                    let column = batch
                        .column_by_name(c)
                        .unwrap_or_else(|| panic!("no column {c} in {:?}", batch.schema()));
                    ArrayFormatter::try_new(column.as_ref(), &options).unwrap()
                })
                .collect();
            for row in 0..batch.num_rows() {
                let values: Vec<String> = formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect();
                out.push(values.join("|"));
            }
        }
        out.sort();
        out
    }

    fn field(name: &str, data_type: DataType, nullable: bool) -> StructField {
        StructField::new(name, data_type, nullable)
    }

    fn ts_type() -> DataType {
        DataType::Primitive(PrimitiveType::Timestamp)
    }

    fn utc_micros(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    }

    fn file_rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    async fn list(store: &Arc<InMemory>) -> Vec<String> {
        let mut names: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        names.sort();
        names
    }

    #[tokio::test]
    async fn unpartitioned_write_round_trips() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("id", DataType::LONG, false),
            field("name", DataType::STRING, true),
            field("ts", ts_type(), true),
            field("score", DataType::DOUBLE, true),
        ]);
        let mut w = writer(
            &store,
            &schema,
            &[],
            ColumnMappingMode::None,
            WriterOptions::default(),
        );
        // Columns out of order, `id` as Int32 (widened), `score` missing (nullable: nulls).
        let first = batch(vec![
            (
                "ts",
                utc_micros(vec![Some(1_000_000), None, Some(86_400_000_000)]),
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ),
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3]))),
        ]);
        let second = batch(vec![
            ("id", Arc::new(Int64Array::from(vec![4, 5]))),
            ("name", Arc::new(StringArray::from(vec!["d", "e"]))),
            ("ts", utc_micros(vec![Some(-1), Some(0)])),
            ("score", Arc::new(Float64Array::from(vec![Some(1.5), None]))),
        ]);
        w.write(&first).await.unwrap();
        w.write(&second).await.unwrap();
        let adds = w.finish().await.unwrap();
        assert_eq!(adds.len(), 1);
        let add = &adds[0];
        assert!(add.partition_values.is_empty());
        assert!(add.data_change);
        assert!(
            add.path.starts_with("part-00000-") && add.path.ends_with("-c000.zstd.parquet"),
            "{}",
            add.path
        );
        assert!(
            add.stats.as_deref().unwrap().contains("\"numRecords\":5"),
            "{:?}",
            add.stats
        );

        let (metadata, batches) = read_file(&store, add).await;
        assert_eq!(file_rows(&batches), 5);
        let descr = metadata.file_metadata().schema_descr();
        let names: Vec<&str> = descr.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, ["id", "name", "ts", "score"]);
        let ts = descr.column(2);
        assert_eq!(ts.physical_type(), parquet::basic::Type::INT64);
        match ts.logical_type_ref() {
            Some(LogicalType::Timestamp(t)) => {
                assert!(t.is_adjusted_to_u_t_c);
                assert!(format!("{:?}", t.unit).contains("MICROS"));
            }
            other => panic!("timestamp written as {other:?}"),
        }
        for column in metadata.row_group(0).columns() {
            assert!(
                matches!(column.compression(), Compression::ZSTD(_)),
                "{:?}",
                column.compression()
            );
            assert!(column.statistics().is_some());
        }

        let expected = rows(&[first, second], &["id", "name", "ts"]);
        let scanned = scan(&store, &schema, &[], &[], (1, 2), &adds).await;
        assert_eq!(rows(&scanned, &["id", "name", "ts"]), expected);
        assert_eq!(
            rows(&scanned, &["score"]),
            ["1.5", "NULL", "NULL", "NULL", "NULL"]
        );
    }

    #[tokio::test]
    async fn void_columns_are_not_materialized() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("id", DataType::LONG, true),
            field("nothing", DataType::Primitive(PrimitiveType::Void), true),
        ]);
        let mut w = writer(
            &store,
            &schema,
            &[],
            ColumnMappingMode::None,
            WriterOptions::default(),
        );
        let b = batch(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2]))),
            ("nothing", Arc::new(arrow::array::NullArray::new(2))),
        ]);
        w.write(&b).await.unwrap();
        let adds = w.finish().await.unwrap();
        let (metadata, _) = read_file(&store, &adds[0]).await;
        let names: Vec<&str> = metadata
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(names, ["id"]);
        let scanned = scan(&store, &schema, &[], &[], (1, 2), &adds).await;
        assert_eq!(rows(&scanned, &["id", "nothing"]), ["1|NULL", "2|NULL"]);
    }

    #[tokio::test]
    async fn timestamp_ntz_is_not_adjusted_to_utc() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([field(
            "t",
            DataType::Primitive(PrimitiveType::TimestampNtz),
            true,
        )]);
        let mut w = writer(
            &store,
            &schema,
            &[],
            ColumnMappingMode::None,
            WriterOptions::default(),
        );
        let values: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![Some(5), None]));
        w.write(&batch(vec![("t", values)])).await.unwrap();
        let adds = w.finish().await.unwrap();
        let (metadata, _) = read_file(&store, &adds[0]).await;
        match metadata
            .file_metadata()
            .schema_descr()
            .column(0)
            .logical_type_ref()
        {
            Some(LogicalType::Timestamp(t)) => {
                assert!(!t.is_adjusted_to_u_t_c);
                assert!(format!("{:?}", t.unit).contains("MICROS"));
            }
            other => panic!("timestamp_ntz written as {other:?}"),
        }
    }

    #[tokio::test]
    async fn partitioned_write_escapes_values_and_round_trips() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("v", DataType::LONG, false),
            field("p", DataType::STRING, true),
            field("q", DataType::INTEGER, true),
        ]);
        let mut w = writer(
            &store,
            &schema,
            &["p", "q"],
            ColumnMappingMode::None,
            WriterOptions::default(),
        );
        let values = [
            Some("a/b"),
            Some("100%"),
            Some("with space"),
            Some("k=v"),
            Some("😀"),
            None,
            Some("null"),
        ];
        let mut batches = Vec::new();
        for part in 0..2 {
            let n = 35;
            let v: Vec<i64> = (0..n).map(|i| i64::from(part * n + i)).collect();
            let p: Vec<Option<&str>> = (0..n)
                .map(|i| values[usize::try_from(i).unwrap() % values.len()])
                .collect();
            let q: Vec<Option<i32>> = (0..n).map(|i| (i % 2 == 0).then_some(i % 3)).collect();
            batches.push(batch(vec![
                ("q", Arc::new(Int32Array::from(q))),
                ("v", Arc::new(Int64Array::from(v))),
                ("p", Arc::new(StringArray::from(p))),
            ]));
        }
        for b in &batches {
            w.write(b).await.unwrap();
        }
        let adds = w.finish().await.unwrap();
        // One file per distinct (p, q) in the input.
        let mut partitions = HashSet::new();
        for b in &batches {
            let p = b.column_by_name("p").unwrap().as_string::<i32>();
            let q = b
                .column_by_name("q")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int32Type>();
            for row in 0..b.num_rows() {
                partitions.insert((
                    p.is_valid(row).then(|| p.value(row).to_string()),
                    q.is_valid(row).then(|| q.value(row)),
                ));
            }
        }
        assert!(partitions.len() > 20, "{} partitions", partitions.len());
        assert_eq!(adds.len(), partitions.len());
        let mut seen = HashSet::new();
        for add in &adds {
            assert_eq!(add.partition_values.len(), 2);
            let p = add.partition_values["p"].as_deref();
            let q = add.partition_values["q"].as_deref();
            assert!(seen.insert((p, q)), "partition {p:?}/{q:?} written twice");
            let p_dir = match p {
                Some("a/b") => "p=a%252Fb/",
                Some("100%") => "p=100%2525/",
                Some("with space") => "p=with%20space/",
                Some("k=v") => "p=k%253Dv/",
                Some("😀") => "p=%F0%9F%98%80/",
                Some("null") => "p=null/",
                None => "p=__HIVE_DEFAULT_PARTITION__/",
                Some(other) => panic!("unexpected partition value {other}"),
            };
            assert!(add.path.starts_with(p_dir), "{} for {p:?}", add.path);
            let q_dir = match q {
                Some(q) => format!("q={q}/"),
                None => "q=__HIVE_DEFAULT_PARTITION__/".to_string(),
            };
            assert!(add.path[p_dir.len()..].starts_with(&q_dir), "{}", add.path);
            let (metadata, data) = read_file(&store, add).await;
            // Partition columns are not in the data files.
            let names: Vec<&str> = metadata
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .map(|c| c.name())
                .collect();
            assert_eq!(names, ["v"]);
            assert!(file_rows(&data) > 0);
        }
        // The raw (decoded) store path uses the Hive-escaped directory names.
        let listed = list(&store).await;
        assert!(
            listed.iter().any(|l| l.starts_with("t/p=a%2Fb/q=")),
            "{listed:?}"
        );
        assert!(
            listed.iter().any(|l| l.starts_with("t/p=😀/q=")),
            "{listed:?}"
        );
        assert!(
            listed.iter().any(|l| l.starts_with("t/p=with space/q=")),
            "{listed:?}"
        );

        let scanned = scan(&store, &schema, &["p", "q"], &[], (1, 2), &adds).await;
        assert_eq!(
            rows(&scanned, &["v", "p", "q"]),
            rows(&batches, &["v", "p", "q"])
        );
    }

    #[tokio::test]
    async fn hive_escaped_percent_is_uri_encoded_once_more() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("x", DataType::STRING, true),
            field("v", DataType::LONG, true),
        ]);
        let mut w = writer(
            &store,
            &schema,
            &["x"],
            ColumnMappingMode::None,
            WriterOptions::default(),
        );
        let b = batch(vec![
            ("x", Arc::new(StringArray::from(vec!["A/A", "A/A"]))),
            ("v", Arc::new(Int64Array::from(vec![1, 2]))),
        ]);
        w.write(&b).await.unwrap();
        let adds = w.finish().await.unwrap();
        assert_eq!(adds.len(), 1);
        assert!(
            adds[0].path.starts_with("x=A%252FA/part-00000-"),
            "{}",
            adds[0].path
        );
        assert_eq!(adds[0].partition_values["x"].as_deref(), Some("A/A"));
        let raw = location(&store, &adds[0]);
        assert!(raw.as_ref().starts_with("t/x=A%2FA/part-00000-"), "{raw}");
        let scanned = scan(&store, &schema, &["x"], &[], (1, 2), &adds).await;
        assert_eq!(rows(&scanned, &["x", "v"]), rows(&[b], &["x", "v"]));
    }

    #[tokio::test]
    async fn empty_string_partition_value_is_written_as_null() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("p", DataType::STRING, true),
            field("v", DataType::LONG, true),
        ]);
        let mut w = writer(
            &store,
            &schema,
            &["p"],
            ColumnMappingMode::None,
            WriterOptions::default(),
        );
        let b = batch(vec![
            ("p", Arc::new(StringArray::from(vec![Some(""), None]))),
            ("v", Arc::new(Int64Array::from(vec![1, 2]))),
        ]);
        w.write(&b).await.unwrap();
        let adds = w.finish().await.unwrap();
        assert_eq!(adds.len(), 1, "\"\" and NULL are the same partition");
        assert_eq!(adds[0].partition_values["p"], None);
        assert!(adds[0].path.starts_with("p=__HIVE_DEFAULT_PARTITION__/"));
    }

    fn long_strings(start: usize, n: usize) -> ArrayRef {
        Arc::new(StringArray::from(
            (start..start + n)
                .map(|i| format!("row {i} with some text {}", i.wrapping_mul(2_654_435_761)))
                .collect::<Vec<_>>(),
        ))
    }

    fn ids(start: usize, n: usize) -> ArrayRef {
        Arc::new(Int64Array::from(
            (start..start + n)
                .map(|i| i64::try_from(i).unwrap())
                .collect::<Vec<_>>(),
        ))
    }

    #[tokio::test]
    async fn files_roll_over_at_the_target_size() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("id", DataType::LONG, true),
            field("s", DataType::STRING, true),
        ]);
        let options = WriterOptions {
            target_file_size_bytes: 8 * 1024,
            ..WriterOptions::default()
        };
        let mut w = writer(&store, &schema, &[], ColumnMappingMode::None, options);
        let mut batches = Vec::new();
        for i in 0..10 {
            let b = batch(vec![
                ("id", ids(i * 500, 500)),
                ("s", long_strings(i * 500, 500)),
            ]);
            w.write(&b).await.unwrap();
            batches.push(b);
        }
        let adds = w.finish().await.unwrap();
        assert!(adds.len() > 2, "{} files", adds.len());
        let mut total = 0;
        let mut names = HashSet::new();
        for (i, add) in adds.iter().enumerate() {
            assert!(
                add.path.starts_with(&format!("part-{i:05}-")),
                "{}",
                add.path
            );
            assert!(names.insert(add.path.clone()));
            let (_, data) = read_file(&store, add).await;
            total += file_rows(&data);
        }
        assert_eq!(total, 5000);
        let scanned = scan(&store, &schema, &[], &[], (1, 2), &adds).await;
        assert_eq!(rows(&scanned, &["id", "s"]), rows(&batches, &["id", "s"]));
    }

    /// A schema with column mapping metadata: `a` (id 1), `s` struct (id 2) of `x` (id 3), and
    /// partition column `p` (id 4).
    fn mapped_schema() -> StructType {
        let mapped = |f: StructField, id: i64, physical: &str| {
            f.with_metadata_entry(COLUMN_MAPPING_ID_KEY, id)
                .with_metadata_entry(COLUMN_MAPPING_PHYSICAL_NAME_KEY, physical)
        };
        let inner = StructType::new([mapped(field("x", DataType::LONG, true), 3, "col-x")]);
        StructType::new([
            mapped(field("a", DataType::LONG, true), 1, "col-a"),
            mapped(field("s", DataType::Struct(inner), true), 2, "col-s"),
            mapped(field("p", DataType::STRING, true), 4, "col-p"),
        ])
    }

    fn mapped_batch() -> RecordBatch {
        let x: ArrayRef = Arc::new(Int64Array::from(vec![Some(10), None, Some(30)]));
        let s: ArrayRef = Arc::new(StructArray::new(
            Fields::from(vec![Field::new("x", ArrowDataType::Int64, true)]),
            vec![x],
            None,
        ));
        batch(vec![
            ("a", Arc::new(Int64Array::from(vec![1, 2, 3]))),
            ("s", s),
            ("p", Arc::new(StringArray::from(vec!["one", "two", "one"]))),
        ])
    }

    async fn column_mapping_round_trip(mode: ColumnMappingMode) {
        let store = Arc::new(InMemory::new());
        let schema = mapped_schema();
        let mut w = writer(&store, &schema, &["p"], mode, WriterOptions::default());
        let b = mapped_batch();
        w.write(&b).await.unwrap();
        let adds = w.finish().await.unwrap();
        assert_eq!(adds.len(), 2);
        for add in &adds {
            assert!(add.path.starts_with("col-p=one/") || add.path.starts_with("col-p=two/"));
            assert_eq!(add.partition_values.keys().collect::<Vec<_>>(), ["col-p"]);
            let (metadata, _) = read_file(&store, add).await;
            let root = metadata.file_metadata().schema_descr().root_schema();
            let top: Vec<(&str, Option<i32>)> = root
                .get_fields()
                .iter()
                .map(|f| {
                    let info = f.get_basic_info();
                    (f.name(), info.has_id().then(|| info.id()))
                })
                .collect();
            let nested: Vec<(&str, Option<i32>)> = root.get_fields()[1]
                .get_fields()
                .iter()
                .map(|f| {
                    let info = f.get_basic_info();
                    (f.name(), info.has_id().then(|| info.id()))
                })
                .collect();
            match mode {
                ColumnMappingMode::Id => {
                    assert_eq!(top, [("col-a", Some(1)), ("col-s", Some(2))]);
                    assert_eq!(nested, [("col-x", Some(3))]);
                }
                _ => {
                    assert_eq!(top, [("col-a", None), ("col-s", None)]);
                    assert_eq!(nested, [("col-x", None)]);
                }
            }
        }
        let scanned = scan(
            &store,
            &schema,
            &["p"],
            &[
                (COLUMN_MAPPING_MODE_KEY, mode.as_str()),
                ("delta.columnMapping.maxColumnId", "4"),
            ],
            (2, 5),
            &adds,
        )
        .await;
        assert_eq!(
            rows(&scanned, &["a", "s", "p"]),
            rows(&[b], &["a", "s", "p"])
        );
    }

    #[tokio::test]
    async fn column_mapping_name_mode_uses_physical_names() {
        column_mapping_round_trip(ColumnMappingMode::Name).await;
    }

    #[tokio::test]
    async fn column_mapping_id_mode_writes_field_ids() {
        column_mapping_round_trip(ColumnMappingMode::Id).await;
    }

    #[tokio::test]
    async fn abort_deletes_completed_and_open_files() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("id", DataType::LONG, true),
            field("s", DataType::STRING, true),
            field("p", DataType::INTEGER, true),
        ]);
        // Small row groups, so that rows are encoded (and files roll over) during the writes.
        let options = WriterOptions {
            target_file_size_bytes: 8 * 1024,
            row_group_rows: 100,
            ..WriterOptions::default()
        };
        let mut w = writer(&store, &schema, &["p"], ColumnMappingMode::None, options);
        for i in 0..4 {
            let p: ArrayRef = Arc::new(Int32Array::from(vec![i32::try_from(i % 2).unwrap(); 500]));
            let b = batch(vec![
                ("id", ids(i * 500, 500)),
                ("s", long_strings(i * 500, 500)),
                ("p", p),
            ]);
            w.write(&b).await.unwrap();
        }
        // A write of one row group to another partition leaves a file open; a smaller one to a
        // third partition leaves rows pending.
        let b = batch(vec![
            ("id", ids(9000, 150)),
            ("s", long_strings(9000, 150)),
            ("p", Arc::new(Int32Array::from(vec![7; 150]))),
        ]);
        w.write(&b).await.unwrap();
        let b = batch(vec![
            ("id", ids(9500, 3)),
            ("s", long_strings(9500, 3)),
            ("p", Arc::new(Int32Array::from(vec![8; 3]))),
        ]);
        w.write(&b).await.unwrap();
        assert!(!w.adds.is_empty(), "some files completed by roll-over");
        assert!(
            !w.open.is_empty() || !w.in_flight.is_empty(),
            "some files still open"
        );
        assert!(w.pending.values().any(|p| p.rows > 0), "some rows pending");
        assert!(!list(&store).await.is_empty());
        w.abort().await.unwrap();
        assert_eq!(list(&store).await, Vec::<String>::new());
    }

    #[tokio::test]
    async fn many_partitions_stay_within_the_memory_budget() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("id", DataType::LONG, false),
            field("part", DataType::INTEGER, true),
            field("s", DataType::STRING, true),
        ]);
        // 200 partitions: a fresh row group holds some 76 KiB of column writer buffers, so 200
        // files in the middle of a row group would take the budget four times over; buffering
        // rows per partition keeps one file per partition anyway.
        let budget = 4 * MIB;
        let part_bytes = 8 * 1024;
        let options = WriterOptions {
            max_buffered_bytes: budget,
            upload_part_bytes: part_bytes,
            ..WriterOptions::default()
        };
        let mut w = writer(&store, &schema, &["part"], ColumnMappingMode::None, options);
        let partitions = 200;
        let per_batch = 4000;
        let batches = 10;
        let mut largest_batch = 0;
        for i in 0..batches {
            let start = i * per_batch;
            let part: ArrayRef = Arc::new(Int32Array::from(
                (start..start + per_batch)
                    .map(|r| i32::try_from((r * 7) % partitions).unwrap())
                    .collect::<Vec<_>>(),
            ));
            let b = batch(vec![
                ("id", ids(start, per_batch)),
                ("part", part),
                ("s", long_strings(start, per_batch)),
            ]);
            largest_batch = largest_batch.max(b.get_array_memory_size());
            w.write(&b).await.unwrap();
            assert!(
                w.buffered_bytes <= budget,
                "{} after a write",
                w.buffered_bytes
            );
        }
        let peak = w.peak_buffered_bytes();
        assert!(peak > 0);
        assert!(
            peak <= budget + largest_batch + part_bytes,
            "peak {peak} > budget {budget} + batch {largest_batch} + upload buffer {part_bytes}"
        );
        let adds = w.finish().await.unwrap();
        assert_eq!(
            adds.len(),
            partitions,
            "one file per partition: the budget must not cut files early"
        );
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for add in &adds {
            let part: i64 = add.partition_values["part"]
                .as_deref()
                .unwrap()
                .parse()
                .unwrap();
            let (_, data) = read_file(&store, add).await;
            for b in &data {
                let id = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
                for id in id.values() {
                    assert_eq!((id * 7) % 200, part, "row {id} in the wrong partition");
                    *seen.entry(*id).or_default() += 1;
                }
            }
        }
        let total = i64::try_from(batches * per_batch).unwrap();
        assert_eq!(seen.len(), usize::try_from(total).unwrap());
        assert!(seen.values().all(|n| *n == 1), "a row was written twice");
        assert_eq!(
            seen.keys().copied().collect::<Vec<_>>(),
            (0..total).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn invalid_batches_are_refused_naming_the_column() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([
            field("id", DataType::LONG, false),
            field("name", DataType::STRING, true),
            field("ts", ts_type(), true),
        ]);
        let mut w = writer(
            &store,
            &schema,
            &[],
            ColumnMappingMode::None,
            WriterOptions::default(),
        );
        let id: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let cases: Vec<(RecordBatch, &str)> = vec![
            (
                batch(vec![("id", id.clone()), ("extra", id.clone())]),
                "`extra`",
            ),
            (
                batch(vec![("name", Arc::new(StringArray::from(vec!["x"])))]),
                "`id`",
            ),
            (
                batch(vec![("id", Arc::new(StringArray::from(vec!["1"])))]),
                "`id`",
            ),
            (
                batch(vec![("id", Arc::new(Int64Array::from(vec![None::<i64>])))]),
                "`id`",
            ),
            (
                batch(vec![("id", id.clone()), ("ID", id.clone())]),
                "more than once",
            ),
            (
                batch(vec![
                    ("id", id.clone()),
                    ("ts", Arc::new(TimestampMicrosecondArray::from(vec![1]))),
                ]),
                "`ts`",
            ),
            (
                batch(vec![
                    ("id", id.clone()),
                    (
                        "ts",
                        Arc::new(TimestampNanosecondArray::from(vec![1_001]).with_timezone("UTC")),
                    ),
                ]),
                "`ts`",
            ),
        ];
        for (b, needle) in cases {
            let err = w.write(&b).await.unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
            assert!(
                err.to_string().contains(needle),
                "{err} should name {needle}"
            );
        }
        // The writer is still usable; whole-microsecond nanoseconds convert losslessly.
        let ok = batch(vec![
            ("id", id),
            (
                "ts",
                Arc::new(TimestampNanosecondArray::from(vec![2_000]).with_timezone("+01:00")),
            ),
        ]);
        w.write(&ok).await.unwrap();
        let adds = w.finish().await.unwrap();
        assert_eq!(adds.len(), 1);
        let scanned = scan(&store, &schema, &[], &[], (1, 2), &adds).await;
        assert_eq!(
            rows(&scanned, &["id", "name", "ts"]),
            ["1|NULL|1970-01-01T00:00:00.000002Z"]
        );
    }

    #[test]
    fn bad_partition_columns_are_refused() {
        let store = Arc::new(InMemory::new());
        let schema = StructType::new([field("a", DataType::LONG, true)]);
        let err = DataWriter::new(
            storage(&store),
            schema,
            vec!["b".into()],
            ColumnMappingMode::None,
            stats_config(),
            WriterOptions::default(),
            Arc::new(ManualClock::new(0, 1, 42)),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`b`"), "{err}");
    }

    #[test]
    fn target_file_size_comes_from_the_table_property() {
        let with = |value: &str| {
            WriterOptions::from_metadata(&Metadata {
                configuration: [(TARGET_FILE_SIZE_KEY.to_string(), Some(value.to_string()))]
                    .into_iter()
                    .collect(),
                ..Metadata::default()
            })
            .target_file_size_bytes
        };
        assert_eq!(with("1048576"), 1_048_576);
        assert_eq!(with("64mb"), 64 * 1024 * 1024);
        assert_eq!(with("2G"), 2 * 1024 * 1024 * 1024);
        assert_eq!(with("junk"), DEFAULT_TARGET_FILE_SIZE);
        assert_eq!(with("0"), DEFAULT_TARGET_FILE_SIZE);
        assert_eq!(
            WriterOptions::from_metadata(&Metadata::default()).target_file_size_bytes,
            DEFAULT_TARGET_FILE_SIZE
        );
    }

    #[test]
    fn lossless_casts() {
        use ArrowDataType as T;
        assert!(lossless(&T::Int32, &T::Int64));
        assert!(!lossless(&T::Int64, &T::Int32));
        assert!(!lossless(&T::Int64, &T::Float64));
        assert!(lossless(&T::Decimal128(5, 2), &T::Decimal128(10, 3)));
        assert!(!lossless(&T::Decimal128(10, 3), &T::Decimal128(10, 2)));
        assert!(lossless(&T::Int32, &T::Decimal128(12, 2)));
        assert!(!lossless(&T::Int64, &T::Decimal128(12, 2)));
        assert!(!lossless(&T::Utf8, &T::Int64));
        let utc = T::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert!(lossless(
            &T::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            &utc
        ));
        assert!(!lossless(&T::Timestamp(TimeUnit::Millisecond, None), &utc));
    }
}
