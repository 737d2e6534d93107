//! OPTIMIZE: bin-packing compaction and Z-order/Hilbert clustering.
//!
//! Compaction works per partition: files smaller than the minimum size (or whose deletion
//! vectors hide more than 5% of their rows) are packed into bins of at most the target size;
//! each bin of two or more files (or one file with a heavy deletion vector) is rewritten as
//! target-size files. Clustering (`with_zorder`) maps each clustering column to a coordinate
//! by rank (equal-frequency buckets from a sample of rows, so ties and skew never collapse a
//! dimension), orders rows by the Morton or Hilbert index of their coordinates, and cuts the
//! index range into as many equal-row ranges as target-size files are needed: one pass over
//! the clustering columns to sample, one pass over the rows to route them. Memory is bounded
//! by the sample and the open output files, never by the table.
//!
//! Rewrites commit with `dataChange=false`, in batches of bins. Concurrent appends rebase;
//! a concurrent DELETE of an input file makes the batch fail with a conflict. Output files
//! carry the clustering in `add.tags`, so a second run on unchanged data rewrites nothing and
//! only new (untagged) files are clustered later.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::compute::take_record_batch;
use arrow::row::{RowConverter, Rows, SortField};
use futures::{StreamExt, TryStreamExt};

use crate::action::Add;
use crate::expression::Expression;
use crate::snapshot::Snapshot;
use crate::stats::StatsConfig;
use crate::table::Table;
use crate::write::{DataWriter, WriterOptions};
use crate::{Error, Result};

pub use zorder::Curve;

/// The tag that records how a file was clustered (`<curve>:<col1>,<col2>`).
pub const CLUSTERING_TAG: &str = "medilake.clustering";
/// Default memory budget for clustering.
const DEFAULT_MEMORY_BUDGET_BYTES: usize = 512 << 20;
/// Rows sampled to find each column's rank boundaries and the curve's split points.
const SAMPLE_ROWS: usize = 100_000;
/// The most bits per dimension of curve coordinates (rank buckets per column = 2^bits).
const MAX_BITS_PER_DIMENSION: u32 = 16;
/// The fewest bits per dimension: 4,096 rank buckets per column.
const MIN_BITS_PER_DIMENSION: u32 = 12;
/// Curve cells per output file that the coordinates must at least give, so that the index
/// range splits into files of about equal rows.
const CELLS_PER_FILE: u64 = 256;
/// Bins committed together.
const BINS_PER_COMMIT: usize = 64;
/// A file whose deletion vector hides more than this share of its rows is rewritten.
const DV_REWRITE_RATIO: f64 = 0.05;

/// Options of an OPTIMIZE; finish with [`OptimizeBuilder::run`].
#[derive(Debug)]
#[must_use]
pub struct OptimizeBuilder {
    table: Table,
    predicate: Option<Expression>,
    target_size_bytes: Option<u64>,
    min_file_size_bytes: Option<u64>,
    zorder: Vec<String>,
    curve: Option<Curve>,
    memory_budget_bytes: usize,
    dry_run: bool,
}

/// One group of files rewritten together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bin {
    /// Partition values of the files (physical names).
    pub partition: Vec<(String, Option<String>)>,
    /// The input files.
    pub files: Vec<Add>,
    /// Their total size.
    pub bytes: u64,
}

/// What an OPTIMIZE did (or would do, in a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct OptimizeReport {
    /// The bins planned.
    pub bins: Vec<Bin>,
    /// Versions committed (one per batch of bins).
    pub versions: Vec<u64>,
    /// Files removed.
    pub files_removed: u64,
    /// Files added.
    pub files_added: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
    /// Bytes added.
    pub bytes_added: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Whether it was a dry run.
    pub dry_run: bool,
}

impl Table {
    /// Start an OPTIMIZE.
    pub fn optimize(&self) -> OptimizeBuilder {
        OptimizeBuilder {
            table: self.clone(),
            predicate: None,
            target_size_bytes: None,
            min_file_size_bytes: None,
            zorder: Vec::new(),
            curve: None,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            dry_run: false,
        }
    }
}

impl OptimizeBuilder {
    /// Only partitions matching `predicate` (partition columns only).
    pub fn with_predicate(mut self, predicate: Expression) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// Target file size (default `delta.targetFileSize`, 128 MiB).
    pub fn with_target_size(mut self, bytes: u64) -> Self {
        self.target_size_bytes = Some(bytes.max(1));
        self
    }

    /// Files smaller than this are compacted (default: the target size).
    pub fn with_min_file_size(mut self, bytes: u64) -> Self {
        self.min_file_size_bytes = Some(bytes);
        self
    }

    /// Cluster by these columns along `curve` (Hilbert by default for two or more columns).
    pub fn with_zorder<S: Into<String>>(
        mut self,
        columns: impl IntoIterator<Item = S>,
        curve: Option<Curve>,
    ) -> Self {
        self.zorder = columns.into_iter().map(Into::into).collect();
        self.curve = curve;
        self
    }

    /// Memory budget for clustering (default 512 MiB).
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget_bytes = bytes.max(1 << 20);
        self
    }

    /// Plan only.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    fn curve(&self) -> Curve {
        self.curve.unwrap_or(if self.zorder.len() >= 2 {
            Curve::Hilbert
        } else {
            Curve::Morton
        })
    }

    fn signature(&self) -> String {
        let curve = match self.curve() {
            Curve::Morton => "morton",
            Curve::Hilbert => "hilbert",
        };
        format!("{curve}:{}", self.zorder.join(","))
    }

    /// Plan the bins. Pure over the snapshot.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a predicate on non-partition columns or unknown
    /// clustering columns.
    pub fn plan(&self, snapshot: &Snapshot) -> Result<Vec<Bin>> {
        let target = self.target_size_bytes.unwrap_or_else(|| {
            WriterOptions::from_metadata(snapshot.metadata()).target_file_size_bytes
        });
        let min_size = self.min_file_size_bytes.unwrap_or(target);
        if let Some(p) = &self.predicate {
            for column in p.columns() {
                if !snapshot
                    .partition_columns()
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&column))
                {
                    return Err(Error::invalid(format!(
                        "OPTIMIZE --where may only use partition columns; `{column}` is not one"
                    )));
                }
            }
        }
        if self.zorder.len() > 8 {
            return Err(Error::invalid("clustering supports at most 8 columns"));
        }
        for column in &self.zorder {
            if snapshot.schema().field(column).is_none() {
                return Err(Error::invalid(format!(
                    "unknown clustering column `{column}`"
                )));
            }
            if snapshot.partition_columns().contains(column) {
                return Err(Error::invalid(format!(
                    "`{column}` is a partition column: clustering by it is pointless"
                )));
            }
        }
        let mut scan = snapshot.scan();
        if let Some(p) = &self.predicate {
            scan = scan.with_predicate(p.clone());
        }
        let scan = scan.build()?;
        let mut partitions: BTreeMap<Vec<(String, Option<String>)>, Vec<Add>> = BTreeMap::new();
        for planned in scan.kept_files() {
            let mut key: Vec<_> = planned
                .add
                .partition_values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.sort();
            partitions.entry(key).or_default().push(planned.add.clone());
        }
        let signature = self.signature();
        let mut bins = Vec::new();
        for (partition, mut files) in partitions {
            if self.zorder.is_empty() {
                files.retain(|f| {
                    u64::try_from(f.size).unwrap_or(0) < min_size || dv_ratio(f) > DV_REWRITE_RATIO
                });
                files.sort_by(|a, b| a.size.cmp(&b.size).then(a.path.cmp(&b.path)));
                let mut current: Vec<Add> = Vec::new();
                let mut bytes = 0u64;
                let mut close = |current: &mut Vec<Add>, bytes: &mut u64| {
                    let worth =
                        current.len() > 1 || current.iter().any(|f| dv_ratio(f) > DV_REWRITE_RATIO);
                    if worth {
                        bins.push(Bin {
                            partition: partition.clone(),
                            files: std::mem::take(current),
                            bytes: *bytes,
                        });
                    } else {
                        current.clear();
                    }
                    *bytes = 0;
                };
                for file in files {
                    let size = u64::try_from(file.size).unwrap_or(0);
                    if !current.is_empty() && bytes + size > target {
                        close(&mut current, &mut bytes);
                    }
                    bytes += size;
                    current.push(file);
                }
                close(&mut current, &mut bytes);
            } else {
                // Incremental clustering: files already clustered the same way stay.
                let untagged: Vec<Add> = files
                    .into_iter()
                    .filter(|f| {
                        f.tags
                            .as_ref()
                            .and_then(|t| t.get(CLUSTERING_TAG))
                            .and_then(Option::as_deref)
                            != Some(signature.as_str())
                    })
                    .collect();
                if untagged.len() > 1
                    || untagged
                        .iter()
                        .any(|f| u64::try_from(f.size).unwrap_or(0) > target)
                {
                    let bytes = untagged
                        .iter()
                        .map(|f| u64::try_from(f.size).unwrap_or(0))
                        .sum();
                    bins.push(Bin {
                        partition,
                        files: untagged,
                        bytes,
                    });
                }
            }
        }
        Ok(bins)
    }

    /// Plan and (unless dry) rewrite and commit.
    ///
    /// # Errors
    /// As [`OptimizeBuilder::plan`], plus [`Error::Conflict`] when a concurrent commit
    /// removed an input file, and storage errors.
    pub async fn run(self) -> Result<OptimizeReport> {
        let snapshot = self.table.snapshot().await?;
        crate::table_features::check_writable(snapshot.protocol(), snapshot.metadata())?;
        let bins = self.plan(&snapshot)?;
        let mut report = OptimizeReport {
            bins: bins.clone(),
            dry_run: self.dry_run,
            ..OptimizeReport::default()
        };
        if self.dry_run || bins.is_empty() {
            return Ok(report);
        }
        let target = self.target_size_bytes.unwrap_or_else(|| {
            WriterOptions::from_metadata(snapshot.metadata()).target_file_size_bytes
        });
        for batch in bins.chunks(BINS_PER_COMMIT) {
            let mut adds = Vec::new();
            let mut removed = Vec::new();
            let mut rows = 0u64;
            for bin in batch {
                let (bin_adds, bin_rows) = if self.zorder.is_empty() {
                    self.compact(&snapshot, bin, target).await?
                } else {
                    self.cluster(&snapshot, bin, target).await?
                };
                adds.extend(bin_adds);
                rows += bin_rows;
                removed.extend(bin.files.iter().cloned());
            }
            let mut txn = self
                .table
                .transaction(&snapshot)
                .with_operation("OPTIMIZE")
                .with_parameter(
                    "predicate",
                    serde_json::to_string(
                        &self
                            .predicate
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or_default(),
                )
                .with_parameter(
                    "zOrderBy",
                    serde_json::to_string(&self.zorder).unwrap_or_default(),
                );
            if !self.zorder.is_empty() {
                txn = txn.with_parameter("curve", self.signature());
            }
            let added_bytes: u64 = adds
                .iter()
                .map(|a: &Add| u64::try_from(a.size).unwrap_or(0))
                .sum();
            let removed_bytes: u64 = removed
                .iter()
                .map(|a: &Add| u64::try_from(a.size).unwrap_or(0))
                .sum();
            txn = txn
                .with_metric("numAddedFiles", adds.len() as u64)
                .with_metric("numRemovedFiles", removed.len() as u64)
                .with_metric("numAddedBytes", added_bytes)
                .with_metric("numRemovedBytes", removed_bytes)
                .with_metric("numBins", batch.len() as u64);
            report.files_added += adds.len() as u64;
            report.files_removed += removed.len() as u64;
            report.bytes_added += added_bytes;
            report.bytes_removed += removed_bytes;
            report.rows += rows;
            txn.remove_files(removed, false);
            txn.add_files(adds);
            let committed = txn.commit().await?;
            report.versions.push(committed.version);
        }
        Ok(report)
    }

    fn writer(&self, snapshot: &Snapshot, target: u64, budget: usize) -> Result<DataWriter> {
        let mut options = WriterOptions::from_metadata(snapshot.metadata());
        options.target_file_size_bytes = target;
        options.max_buffered_bytes = budget.max(1 << 20);
        DataWriter::new(
            self.table.storage().clone(),
            snapshot.schema().clone(),
            snapshot.partition_columns().to_vec(),
            snapshot.column_mapping(),
            StatsConfig::from_metadata(snapshot.metadata()),
            options,
            self.table.clock().clone(),
            None,
        )
    }

    /// Rewrite one bin's rows as target-size files.
    async fn compact(
        &self,
        snapshot: &Snapshot,
        bin: &Bin,
        target: u64,
    ) -> Result<(Vec<Add>, u64)> {
        let mut writer = self.writer(snapshot, target, self.memory_budget_bytes / 2)?;
        let mut rows = 0u64;
        // Small files (most of a compaction) are decoded whole on tasks ahead of the writer,
        // a bounded number of bytes ahead, and written in their order; a large file is
        // streamed here once the ones before it are written.
        let mut ahead: std::collections::VecDeque<(
            u64,
            tokio::task::JoinHandle<Result<Vec<RecordBatch>>>,
        )> = std::collections::VecDeque::new();
        let mut in_flight = 0u64;
        let mut next = 0usize;
        let files = &bin.files;
        let outcome: Result<()> = async {
            while next < files.len() || !ahead.is_empty() {
                while next < files.len() && ahead.len() < MAX_FILES_DECODED_AHEAD {
                    let size = u64::try_from(files[next].size).unwrap_or(0);
                    if size > WHOLE_FILE_DECODE_BYTES
                        || (!ahead.is_empty() && in_flight + size > DECODE_AHEAD_BYTES)
                    {
                        break;
                    }
                    let scan = snapshot
                        .scan()
                        .build_for(std::slice::from_ref(&files[next]))?;
                    ahead.push_back((size, tokio::spawn(async move { scan.collect().await })));
                    in_flight += size;
                    next += 1;
                }
                if let Some((size, task)) = ahead.pop_front() {
                    in_flight -= size;
                    let batches = match task.await {
                        Ok(result) => result?,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(e) => {
                            return Err(Error::invalid(format!(
                                "an OPTIMIZE read task was cancelled: {e}"
                            )));
                        }
                    };
                    for batch in batches {
                        rows += batch.num_rows() as u64;
                        writer.write(&batch).await?;
                    }
                    continue;
                }
                let mut stream = snapshot
                    .scan()
                    .build_for(std::slice::from_ref(&files[next]))?
                    .execute();
                next += 1;
                while let Some(batch) = stream.try_next().await? {
                    rows += batch.num_rows() as u64;
                    writer.write(&batch).await?;
                }
            }
            Ok(())
        }
        .await;
        for (_, task) in ahead {
            task.abort();
        }
        if let Err(e) = outcome {
            writer.abort().await.ok();
            return Err(e);
        }
        let adds = writer.finish().await?;
        Ok((rearranged(adds, None), rows))
    }

    /// Cluster one partition's files along the curve into target-size files.
    async fn cluster(
        &self,
        snapshot: &Snapshot,
        bin: &Bin,
        target: u64,
    ) -> Result<(Vec<Add>, u64)> {
        let columns = &self.zorder;
        let dims = columns.len();
        let curve = self.curve();
        let files = usize::try_from(bin.bytes.div_ceil(target).max(1)).unwrap_or(1);
        let bits = curve_bits(dims, files);
        let buckets = 1u64 << bits;
        // Pass 1: sample rows of the clustering columns (deterministic, evenly spaced by a
        // stride that doubles as the input grows, so the sample stays under SAMPLE_ROWS).
        let key_scan = snapshot
            .scan()
            .with_columns(columns.iter().cloned())
            .build_for(&bin.files)?;
        let converters: Vec<RowConverter> = key_scan
            .schema()
            .fields()
            .iter()
            .map(|f| RowConverter::new(vec![SortField::new(f.data_type().clone())]))
            .collect::<std::result::Result<_, _>>()?;
        let mut sample: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut stride = 1u64;
        let mut seen = 0u64;
        let mut stream = key_scan.execute();
        while let Some(batch) = stream.try_next().await? {
            let keys = row_keys(&converters, batch.columns())?;
            for row in 0..batch.num_rows() {
                if seen.is_multiple_of(stride) {
                    sample.push(keys.iter().map(|k| k.row(row).as_ref().to_vec()).collect());
                    if sample.len() >= 2 * SAMPLE_ROWS {
                        sample = sample.into_iter().step_by(2).collect();
                        stride *= 2;
                    }
                }
                seen += 1;
            }
        }
        let total_rows = seen;
        tracing::debug!(
            rows = total_rows,
            sample = sample.len(),
            "OPTIMIZE clustering: pass 1 (sample) done"
        );
        if total_rows == 0 {
            return Ok((Vec::new(), 0));
        }
        let boundaries: Vec<zorder::rank::ByteBoundaries> = (0..dims)
            .map(|d| {
                let mut keys: Vec<Vec<u8>> = sample.iter().map(|r| r[d].clone()).collect();
                keys.sort_unstable();
                zorder::rank::ByteBoundaries::new(zorder::rank::Boundaries::from_sorted_sample(
                    &keys,
                    u32::try_from(buckets).unwrap_or(u32::MAX),
                ))
            })
            .collect();
        let key_positions: Vec<usize> = {
            let schema = snapshot.arrow_schema();
            columns
                .iter()
                .map(|c| {
                    schema.index_of(
                        &snapshot
                            .schema()
                            .field(c)
                            .map(|f| f.name.clone())
                            .unwrap_or_default(),
                    )
                })
                .collect::<std::result::Result<_, _>>()?
        };
        let mut router = Router {
            converters,
            boundaries,
            splits: Vec::new(),
            key_positions,
            curve,
            bits,
        };
        let mut sample_indices: Vec<u128> = sample
            .iter()
            .map(|r| {
                let mut keys: [&[u8]; 8] = [&[]; 8];
                for (slot, key) in keys.iter_mut().zip(r) {
                    *slot = key.as_slice();
                }
                router.index_of(&keys[..dims])
            })
            .collect();
        drop(sample);
        sample_indices.sort_unstable();
        router.splits = (1..files)
            .map(|i| sample_indices[i * sample_indices.len() / files])
            .collect();
        drop(sample_indices);
        let router = Arc::new(router);
        tracing::debug!(files, "OPTIMIZE clustering: boundaries and splits done");

        // Pass 2: route every row to the file of its index range. The input files are read
        // and routed by parallel tasks (the decoding and the curve indexes are most of the
        // work), and the routed parts are written here, in the order they arrive: which rows
        // go to which file does not depend on that order, only their order inside a file.
        let budget = self.memory_budget_bytes / 2;
        let mut writers: Vec<DataWriter> = (0..files)
            .map(|_| self.writer(snapshot, target.saturating_mul(2), budget / files))
            .collect::<Result<_>>()?;
        let readers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, MAX_ROUTING_TASKS)
            .min(bin.files.len().max(1));
        let (sender, mut receiver) =
            tokio::sync::mpsc::channel::<Result<Vec<(usize, RecordBatch)>>>(2 * readers);
        let tasks: Vec<tokio::task::JoinHandle<()>> = split_by_size(&bin.files, readers)
            .into_iter()
            .map(|group| {
                let (sender, router, snapshot) = (sender.clone(), router.clone(), snapshot.clone());
                tokio::spawn(async move {
                    let mut stream = match snapshot.scan().build_for(&group) {
                        Ok(scan) => scan.execute(),
                        Err(e) => {
                            sender.send(Err(e)).await.ok();
                            return;
                        }
                    };
                    while let Some(batch) = stream.next().await {
                        let routed = batch.and_then(|b| router.route(&b));
                        let failed = routed.is_err();
                        // The receiver is gone when the write failed: stop reading.
                        if sender.send(routed).await.is_err() || failed {
                            return;
                        }
                    }
                })
            })
            .collect();
        drop(sender);
        let mut rows = 0u64;
        let outcome: Result<()> = async {
            while let Some(parts) = receiver.recv().await {
                for (file, part) in parts? {
                    rows += part.num_rows() as u64;
                    writers[file].write(&part).await?;
                }
            }
            Ok(())
        }
        .await;
        drop(receiver);
        for task in tasks {
            if let Err(e) = task.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        if let Err(e) = outcome {
            for writer in writers {
                writer.abort().await.ok();
            }
            return Err(e);
        }
        let mut adds = Vec::new();
        for writer in writers {
            adds.extend(writer.finish().await?);
        }
        tracing::debug!(
            files = adds.len(),
            "OPTIMIZE clustering: pass 2 (route and write) done"
        );
        let mut tags = HashMap::new();
        tags.insert(CLUSTERING_TAG.to_owned(), Some(self.signature()));
        Ok((rearranged(adds, Some(tags)), rows))
    }
}

/// Order-preserving byte keys of each of `columns`, one converter each (NULL first, NaN last).
fn row_keys<'a>(
    converters: &[RowConverter],
    columns: impl IntoIterator<Item = &'a ArrayRef>,
) -> Result<Vec<Rows>> {
    converters
        .iter()
        .zip(columns)
        .map(|(converter, column)| Ok(converter.convert_columns(std::slice::from_ref(column))?))
        .collect()
}

/// Bits per dimension for clustering `dims` columns into `files` files: enough that the curve
/// has [`CELLS_PER_FILE`] cells per file, at least [`MIN_BITS_PER_DIMENSION`], at most
/// [`MAX_BITS_PER_DIMENSION`] and `128 / dims` (the index is a `u128`). Fewer buckets keep
/// each column's boundaries small enough to stay in the CPU cache while every row is looked
/// up; the files' clustering does not need more than that resolution.
fn curve_bits(dims: usize, files: usize) -> u32 {
    let dims = u32::try_from(dims.clamp(1, 8)).unwrap_or(8);
    let cells = (files as u64).max(1).saturating_mul(CELLS_PER_FILE);
    let total_bits = u64::BITS - (cells - 1).leading_zeros();
    total_bits
        .div_ceil(dims)
        .clamp(MIN_BITS_PER_DIMENSION, MAX_BITS_PER_DIMENSION)
        .min(128 / dims)
}

/// Compaction decodes input files of at most this many bytes whole, on tasks ahead of the
/// writer.
const WHOLE_FILE_DECODE_BYTES: u64 = 8 << 20;
/// The most input bytes compaction decodes ahead of the writer (one file at least).
const DECODE_AHEAD_BYTES: u64 = 32 << 20;
/// The most input files compaction decodes ahead of the writer.
const MAX_FILES_DECODED_AHEAD: usize = 8;

/// Tasks that read and route the rows of a clustered bin in parallel.
const MAX_ROUTING_TASKS: usize = 4;

/// What routes a row to its output file: the rank boundaries of each clustering column, the
/// curve, and the index values that split the curve into the output files.
struct Router {
    converters: Vec<RowConverter>,
    boundaries: Vec<zorder::rank::ByteBoundaries>,
    splits: Vec<u128>,
    /// The positions of the clustering columns in the scanned batches.
    key_positions: Vec<usize>,
    curve: Curve,
    bits: u32,
}

impl Router {
    /// The curve index of a row given the byte keys of its clustering columns.
    fn index_of(&self, keys: &[&[u8]]) -> u128 {
        let mut point = [0u32; 8];
        for ((coordinate, key), b) in point.iter_mut().zip(keys).zip(&self.boundaries) {
            *coordinate = zorder::rank::spread(b.bucket(key), b.bucket_count(), self.bits);
        }
        curve_index(self.curve, &point[..keys.len()], self.bits)
    }

    /// The rows of `batch` split by output file: `(file, rows)` for each file that gets some.
    fn route(&self, batch: &RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        let dims = self.key_positions.len();
        let keys = row_keys(
            &self.converters,
            self.key_positions.iter().map(|i| batch.column(*i)),
        )?;
        let mut routes: Vec<Vec<u64>> = vec![Vec::new(); self.splits.len() + 1];
        for row in 0..batch.num_rows() {
            let mut row_keys: [&[u8]; 8] = [&[]; 8];
            for (slot, k) in row_keys.iter_mut().zip(&keys) {
                *slot = k.row(row).data();
            }
            let index = self.index_of(&row_keys[..dims]);
            let file = self.splits.partition_point(|s| *s <= index);
            routes[file].push(row as u64);
        }
        let mut parts = Vec::new();
        for (file, indices) in routes.into_iter().enumerate() {
            if indices.len() == batch.num_rows() {
                parts.push((file, batch.clone()));
            } else if !indices.is_empty() {
                parts.push((file, take_record_batch(batch, &UInt64Array::from(indices))?));
            }
        }
        Ok(parts)
    }
}

/// `files` split into at most `groups` groups of about equal bytes (largest first, each to
/// the lightest group; a group keeps its files in their original order).
fn split_by_size(files: &[Add], groups: usize) -> Vec<Vec<Add>> {
    let groups = groups.clamp(1, files.len().max(1));
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(files[*i].size));
    let mut loads = vec![0i64; groups];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for i in order {
        let lightest = (0..groups).min_by_key(|g| loads[*g]).unwrap_or(0);
        loads[lightest] += files[i].size.max(1);
        members[lightest].push(i);
    }
    members
        .into_iter()
        .filter(|m| !m.is_empty())
        .map(|mut m| {
            m.sort_unstable();
            m.into_iter().map(|i| files[i].clone()).collect()
        })
        .collect()
}

/// The curve index of a point of 1 to 8 dimensions with `bits` per dimension
/// (`bits * dimensions <= 128`, guaranteed by the caller).
fn curve_index(curve: Curve, point: &[u32], bits: u32) -> u128 {
    fn at<const D: usize>(curve: Curve, point: &[u32], bits: u32) -> u128 {
        let mut p = [0u32; D];
        p.copy_from_slice(&point[..D]);
        zorder::Grid::<D>::new(bits).map_or(0, |grid| curve.index::<D>(p, grid))
    }
    match point.len() {
        1 => at::<1>(curve, point, bits),
        2 => at::<2>(curve, point, bits),
        3 => at::<3>(curve, point, bits),
        4 => at::<4>(curve, point, bits),
        5 => at::<5>(curve, point, bits),
        6 => at::<6>(curve, point, bits),
        7 => at::<7>(curve, point, bits),
        _ => at::<8>(curve, point, bits),
    }
}

/// Mark rewritten files as rearrangements, with optional tags.
fn rearranged(adds: Vec<Add>, tags: Option<HashMap<String, Option<String>>>) -> Vec<Add> {
    adds.into_iter()
        .map(|mut a| {
            a.data_change = false;
            if let Some(tags) = &tags {
                a.tags = Some(tags.clone());
            }
            a
        })
        .collect()
}

/// The share of a file's rows its deletion vector hides.
fn dv_ratio(add: &Add) -> f64 {
    let Some(dv) = &add.deletion_vector else {
        return 0.0;
    };
    let records = add
        .stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("numRecords").and_then(serde_json::Value::as_f64))
        .unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss, reason = "a ratio of row counts")]
    let hidden = dv.cardinality as f64;
    if records <= 0.0 {
        1.0
    } else {
        hidden / records
    }
}

#[cfg(test)]
mod curve_bits_tests {
    use super::curve_bits;

    #[test]
    fn curve_bits_grow_with_the_files_within_bounds() {
        // 20 files of 2 columns: 5,120 cells need 13 bits in all, 7 per column: the floor.
        assert_eq!(curve_bits(2, 20), 12);
        // One column into 8,000 files: 2,048,000 cells need 21 bits: the ceiling of 16.
        assert_eq!(curve_bits(1, 8_000), 16);
        // One column into 100 files: 25,600 cells need 15 bits.
        assert_eq!(curve_bits(1, 100), 15);
        // Cells saturate at 2^64: eight columns get 8 bits each, raised to the floor of 12,
        // and never more than 128 bits in all.
        assert_eq!(curve_bits(8, usize::MAX), 12);
        assert!(curve_bits(8, usize::MAX) * 8 <= 128);
        assert_eq!(curve_bits(2, usize::MAX), 16);
        assert_eq!(curve_bits(3, 1), 12);
    }
}
