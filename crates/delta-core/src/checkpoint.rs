//! Reading checkpoints (protocol "Checkpoints"): classic, multi-part and V2 with sidecars.
//!
//! A parquet checkpoint has one nullable struct column per action type and one action per
//! row. It is replayed batch by batch (never held whole): `add` rows are decoded straight
//! from the Arrow columns, and only those still live after the newer commits are built;
//! the few other rows go through Arrow's JSON writer into the same serde types that commits
//! use, so both paths share one definition of every action. Checkpoints that carry only
//! typed statistics (`add.stats_parsed`) get their JSON `stats` rebuilt from them.
//! Unknown columns and fields (Spark's `maxRowIndex`, Databricks' `rowIdHighWaterMark`,
//! Delta 0.2's `commitInfo` column) are ignored.

use std::collections::HashMap;

use arrow::array::{AsArray, RecordBatch};
use futures::TryStreamExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;

use crate::action::{Action, Add, Sidecar, parse_commit};
use crate::log::Replay;
use crate::storage::Storage;
use crate::{Error, Result};

/// Top-level checkpoint columns that hold table state.
const STATE_COLUMNS: [&str; 8] = [
    "add",
    "remove",
    "metaData",
    "protocol",
    "txn",
    "domainMetadata",
    "sidecar",
    "checkpointMetadata",
];

/// Rows decoded per batch; bounds memory while reading big checkpoints.
const CHECKPOINT_BATCH_ROWS: usize = 8192;

/// Checkpoint files up to this size are fetched with one request and decoded from memory;
/// bigger ones are read column chunk by column chunk, one row group at a time. Small
/// checkpoints are the common case, and there the round trips of ranged reads (footer, then
/// column chunks) cost more than the decoding.
const WHOLE_READ_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Replay one checkpoint file (parquet, or the JSON form of a V2 checkpoint) into `replay`
/// batch by batch, and return the sidecars it names (to be replayed next). Memory stays at
/// one decoded batch whatever the size of the checkpoint.
///
/// # Errors
/// [`Error::Corrupt`] or [`Error::Parquet`] naming the file when it cannot be decoded.
pub(crate) async fn replay_checkpoint_file(
    storage: &Storage,
    location: &Path,
    size: Option<u64>,
    replay: &mut Replay,
) -> Result<Vec<Sidecar>> {
    if location.as_ref().ends_with(".json") {
        let bytes = match size {
            Some(size) => storage.read_sized(location, size).await?,
            None => storage.read(location).await?,
        };
        let actions = parse_commit(&bytes, &storage.display(location))?;
        let sidecars = actions
            .iter()
            .filter_map(|a| match a {
                Action::Sidecar(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        replay.apply(actions, None);
        return Ok(sidecars);
    }
    let mut sink = BatchSink {
        replay,
        sidecars: Vec::new(),
        rows: 0,
    };
    replay_parquet(storage, location, size, &mut sink).await?;
    Ok(sink.sidecars)
}

/// Checkpoint files up to this size may be read and decoded while the log is still being
/// listed; they are then held decoded (a few times their size) until the listing confirms
/// them. Bigger ones are streamed after the listing.
const PREFETCH_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// A single-file parquet checkpoint read and decoded (every `add` built) before the listing
/// confirmed it.
pub(crate) struct PrefetchedCheckpoint {
    location: Path,
    size: u64,
    batches: Vec<DecodedBatch>,
}

/// Read and decode the checkpoint at `location` if it exists and is at most
/// [`PREFETCH_MAX_BYTES`]; `None` otherwise, and on any error or unusual layout (the
/// normal read, if the listing picks this file, reports or handles it).
///
/// The `add` columns are decoded on this task while the other action columns (a third of
/// the decoding, for few rows) are decoded and parsed on a blocking thread, so that on a
/// machine with a free core the load waits for neither the listing nor the second half.
pub(crate) async fn prefetch_checkpoint(
    storage: &Storage,
    location: Path,
) -> Option<PrefetchedCheckpoint> {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    let bytes = storage
        .read_if_at_most(&location, PREFETCH_MAX_BYTES)
        .await
        .ok()??;
    let size = u64::try_from(bytes.len()).ok()?;
    let name = storage.display(&location);
    let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default()).ok()?;
    let schema = metadata.metadata().file_metadata().schema_descr();
    let (add_leaves, other_leaves): (Vec<usize>, Vec<usize>) = state_leaves(metadata.metadata())
        .into_iter()
        .partition(|i| schema.column(*i).path().parts().first().map(String::as_str) == Some("add"));
    if add_leaves.is_empty() {
        return None;
    }
    let others = {
        let (bytes, metadata, name) = (bytes.clone(), metadata.clone(), name.clone());
        let decode = move || decode_other_actions(bytes, metadata, other_leaves, &name);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.spawn_blocking(decode),
            // No runtime to lend a thread: decode in line below.
            Err(_) => return None,
        }
    };
    let adds = decode_all_adds(bytes, metadata, add_leaves);
    let others = others.await.ok()??;
    let adds = adds?;
    if adds.len() != others.len() {
        return None;
    }
    let batches = adds
        .into_iter()
        .zip(others)
        .map(|(adds, others)| DecodedBatch { adds, others })
        .collect();
    Some(PrefetchedCheckpoint {
        location,
        size,
        batches,
    })
}

/// Every `add` of a checkpoint held in memory, batch by batch (`None` if any batch needs
/// the JSON path).
fn decode_all_adds(
    bytes: bytes::Bytes,
    metadata: parquet::arrow::arrow_reader::ArrowReaderMetadata,
    leaves: Vec<usize>,
) -> Option<Vec<Vec<Add>>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
    let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(CHECKPOINT_BATCH_ROWS)
        .build()
        .ok()?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.ok()?;
        let mut adds = Vec::new();
        let rest = decode_adds_into(&batch, &mut adds, |_, _| true).ok()?;
        if rest.num_columns() > 0 {
            return None;
        }
        batches.push(adds);
    }
    Some(batches)
}

/// The non-`add` actions of a checkpoint held in memory, batch by batch (batches line up
/// with [`decode_all_adds`]'s: same row groups, same batch size).
fn decode_other_actions(
    bytes: bytes::Bytes,
    metadata: parquet::arrow::arrow_reader::ArrowReaderMetadata,
    leaves: Vec<usize>,
    name: &str,
) -> Option<Vec<Vec<Action>>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
    let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(CHECKPOINT_BATCH_ROWS)
        .build()
        .ok()?;
    let mut batches = Vec::new();
    let mut first_row = 0;
    for batch in reader {
        let batch = batch.ok()?;
        batches.push(json_rows(&batch, first_row, name).ok()?);
        first_row += batch.num_rows();
    }
    Some(batches)
}

impl PrefetchedCheckpoint {
    /// Whether this is the checkpoint file `file` of a listing (same location and size).
    pub(crate) fn is_for(&self, file: &crate::log::LogFile) -> bool {
        file.location == self.location.as_ref() && file.size == self.size
    }

    /// Replay the decoded actions into `replay` (as [`replay_checkpoint_file`] would,
    /// dropping the adds newer commits decided) and return the sidecars it names.
    pub(crate) fn replay(self, replay: &mut Replay) -> Vec<Sidecar> {
        let mut sink = BatchSink {
            replay,
            sidecars: Vec::new(),
            rows: 0,
        };
        for batch in self.batches {
            sink.replay.append_checkpoint_adds(batch.adds);
            sink.apply_others(batch.others);
        }
        sink.sidecars
    }
}

/// Where decoded checkpoint batches go.
struct BatchSink<'a> {
    replay: &'a mut Replay,
    sidecars: Vec<Sidecar>,
    /// Rows of the file seen so far (row numbers in error messages count from 0).
    rows: usize,
}

/// Replay the actions of a parquet checkpoint or sidecar into `sink`.
async fn replay_parquet(
    storage: &Storage,
    location: &Path,
    size: Option<u64>,
    sink: &mut BatchSink<'_>,
) -> Result<()> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let display = storage.display(location);
    let name = display.as_str();
    if let Some(size) = size.filter(|s| (1..=WHOLE_READ_MAX_BYTES).contains(s)) {
        let bytes = storage.read_sized(location, size).await?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| Error::parquet(name, e))?;
        sink.reserve(builder.metadata());
        let mask = state_projection(&builder);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(CHECKPOINT_BATCH_ROWS)
            .build()
            .map_err(|e| Error::parquet(name, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| Error::parquet(name, e.into()))?;
            sink.batch(&batch, name)?;
        }
        return Ok(());
    }
    let reader = storage.parquet_file(location, size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| Error::parquet(name, e))?;
    sink.reserve(builder.metadata());
    let mask = state_projection(&builder);
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(CHECKPOINT_BATCH_ROWS)
        .build()
        .map_err(|e| Error::parquet(name, e))?;
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| Error::parquet(name, e))?
    {
        sink.batch(&batch, name)?;
    }
    Ok(())
}

/// The leaves of a checkpoint worth decoding: every state column, but not the typed
/// `partitionValues_parsed` (the string form is always there) and not `stats_parsed` when the
/// JSON `stats` column holds values (then the typed form only doubles the decoding work).
fn state_projection<T>(
    builder: &parquet::arrow::arrow_reader::ArrowReaderBuilder<T>,
) -> ProjectionMask {
    let leaves = state_leaves(builder.metadata());
    ProjectionMask::leaves(builder.parquet_schema(), leaves)
}

/// The leaf columns [`state_projection`] selects.
fn state_leaves(metadata: &parquet::file::metadata::ParquetMetaData) -> Vec<usize> {
    let schema = metadata.file_metadata().schema_descr();
    let stats_leaf = (0..schema.num_columns()).find(|i| {
        let path = schema.column(*i).path().parts().to_vec();
        path.len() == 2 && path[0] == "add" && path[1] == "stats"
    });
    // JSON stats are present unless the column chunk statistics prove every value null.
    let json_stats_present = stats_leaf.is_some_and(|leaf| {
        metadata.row_groups().iter().any(|rg| {
            let chunk = rg.column(leaf);
            match chunk
                .statistics()
                .and_then(parquet::file::statistics::Statistics::null_count_opt)
            {
                Some(nulls) => u64::try_from(rg.num_rows()).is_ok_and(|rows| nulls < rows),
                None => true,
            }
        })
    });
    // A leaf outside lists and maps whose chunk statistics prove it null in every row adds
    // nothing but decoding work (most checkpoints have no `txn`, `domainMetadata` or
    // deletion vectors): leave it out. Its struct then gets its validity from the leaves
    // that remain, or disappears when none do, which is what an all-null column means.
    let all_null = |leaf: usize| {
        metadata.row_groups().iter().all(|rg| {
            rg.column(leaf)
                .statistics()
                .and_then(parquet::file::statistics::Statistics::null_count_opt)
                .is_some_and(|nulls| u64::try_from(rg.num_rows()).is_ok_and(|rows| nulls == rows))
        })
    };
    (0..schema.num_columns())
        .filter(|i| {
            let column = schema.column(*i);
            let path = column.path().parts();
            let Some(root) = path.first() else {
                return false;
            };
            if !STATE_COLUMNS.contains(&root.as_str()) {
                return false;
            }
            if column.max_rep_level() == 0 && all_null(*i) {
                return false;
            }
            let typed = path.get(1).map(String::as_str);
            !(root == "add"
                && (typed == Some("partitionValues_parsed")
                    || (typed == Some("stats_parsed") && json_stats_present)))
        })
        .collect()
}

impl BatchSink<'_> {
    /// Size the live-file list for the rows of this file: a checkpoint is mostly `add`s.
    fn reserve(&mut self, metadata: &parquet::file::metadata::ParquetMetaData) {
        let rows = metadata.file_metadata().num_rows();
        self.replay
            .reserve_files(usize::try_from(rows).unwrap_or_default());
    }

    /// Replay one checkpoint batch: live `add`s are decoded straight onto the replay's file
    /// list (dead ones are never built), then the other rows.
    fn batch(&mut self, batch: &RecordBatch, name: &str) -> Result<()> {
        let first_row = self.rows;
        self.rows += batch.num_rows();
        let (decided, files) = self.replay.checkpoint_adds();
        let rest = decode_adds_into(batch, files, |path, dv| {
            decided.checkpoint_add_is_live(path, dv)
        })?;
        let others = json_rows(&rest, first_row, name)?;
        self.apply_others(others);
        Ok(())
    }

    /// Apply the non-`add` actions of a batch (or all of them, for a batch that went
    /// through JSON), collecting the sidecars.
    fn apply_others(&mut self, others: Vec<Action>) {
        self.sidecars.extend(others.iter().filter_map(|a| match a {
            Action::Sidecar(s) => Some(s.clone()),
            _ => None,
        }));
        self.replay.apply(others, None);
    }
}

/// The actions of one checkpoint batch, decoded ahead of the replay.
struct DecodedBatch {
    /// `add` rows decoded straight from the columns.
    adds: Vec<Add>,
    /// Every other action, in row order (all of them, `add`s included, when the batch had
    /// to go through JSON).
    others: Vec<Action>,
}

/// Decode the `add` rows of `batch` that `is_live` accepts straight from the columns onto
/// `out`, and return the rest of the batch (the other action columns) for the JSON path.
/// A layout the fast path does not know leaves `out` as it was and returns the whole batch.
fn decode_adds_into(
    batch: &RecordBatch,
    out: &mut Vec<Add>,
    is_live: impl Fn(&str, Option<&crate::deletion_vector::DeletionVectorDescriptor>) -> bool,
) -> Result<RecordBatch> {
    let Some(index) = batch.schema().index_of("add").ok() else {
        return Ok(batch.clone());
    };
    let Some(column) = batch.column(index).as_struct_opt() else {
        return Ok(batch.clone());
    };
    let before = out.len();
    if decode_live_adds(column, is_live, out).is_none() {
        out.truncate(before);
        return Ok(batch.clone());
    }
    let others: Vec<usize> = (0..batch.num_columns()).filter(|c| *c != index).collect();
    Ok(batch.project(&others)?)
}

/// Decode, through JSON, the rows of `batch` where some action column is not null.
fn json_rows(batch: &RecordBatch, first_row: usize, name: &str) -> Result<Vec<Action>> {
    use arrow::array::{Array, UInt32Array};
    let mut present = vec![false; batch.num_rows()];
    for column in batch.columns() {
        match column.logical_nulls() {
            None => present.fill(true),
            Some(nulls) => {
                for (row, valid) in nulls.iter().enumerate() {
                    present[row] |= valid;
                }
            }
        }
    }
    let rows: Vec<u32> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| **p)
        .filter_map(|(row, _)| u32::try_from(row).ok())
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let batch = if rows.len() == batch.num_rows() {
        batch.clone()
    } else {
        arrow::compute::take_record_batch(batch, &UInt32Array::from(rows.clone()))?
    };
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(false)
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        writer
            .write(&batch)
            .map_err(|e| Error::corrupt(name, format!("cannot decode checkpoint rows: {e}")))?;
        writer
            .finish()
            .map_err(|e| Error::corrupt(name, format!("cannot decode checkpoint rows: {e}")))?;
    }
    let mut actions = Vec::with_capacity(rows.len());
    for (line, row) in buf.split(|b| *b == b'\n').zip(&rows) {
        let index = first_row + usize::try_from(*row).unwrap_or_default();
        if line.is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
            .map_err(|e| Error::corrupt(name, format!("row {index}: {e}")))?;
        for (key, mut body) in object {
            if body.is_null() {
                continue;
            }
            if key == "add" {
                normalise_add(&mut body);
            }
            let mut single = serde_json::Map::new();
            single.insert(key, body);
            actions.push(Action::from_json_value(
                serde_json::Value::Object(single),
                name,
                index + 1,
            )?);
        }
    }
    Ok(actions)
}

/// Decode the `add` struct column onto `out`, only the rows `is_live` accepts (see
/// [`Replay::checkpoint_add_is_live`]); rows of dead files are never built. `None` for a
/// layout this fast path does not know (other column types, typed stats that need JSON, a
/// row without path or size), possibly after pushing some rows: the caller then drops
/// those and decodes the batch through JSON, which names what is wrong.
fn decode_live_adds(
    add: &arrow::array::StructArray,
    is_live: impl Fn(&str, Option<&crate::deletion_vector::DeletionVectorDescriptor>) -> bool,
    out: &mut Vec<Add>,
) -> Option<()> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type};
    if add.column_by_name("stats_parsed").is_some() {
        return None;
    }
    let strings = |name: &str| add.column_by_name(name).map(|c| c.as_string_opt::<i32>());
    let path = strings("path")??;
    let stats = match strings("stats") {
        Some(Some(s)) => Some(s),
        Some(None) => return None,
        None => None,
    };
    let longs = |name: &str| match add.column_by_name(name) {
        Some(c) => c.as_primitive_opt::<Int64Type>().map(Some),
        None => Some(None),
    };
    let size = longs("size")??;
    let modification_time = longs("modificationTime")??;
    let base_row_id = longs("baseRowId")?;
    let default_row_commit_version = longs("defaultRowCommitVersion")?;
    let data_change = match add.column_by_name("dataChange") {
        Some(c) => Some(c.as_boolean_opt()?),
        None => None,
    };
    let clustering = match strings("clusteringProvider") {
        Some(Some(s)) => Some(s),
        Some(None) => return None,
        None => None,
    };
    let map_of = |name: &str| -> Option<Option<&arrow::array::MapArray>> {
        match add.column_by_name(name) {
            Some(c) => c.as_map_opt().map(Some),
            None => Some(None),
        }
    };
    let partition_values = map_of("partitionValues")?;
    let tags = map_of("tags")?;
    let dv = match add.column_by_name("deletionVector") {
        Some(c) => Some(c.as_struct_opt()?),
        None => None,
    };
    // Map entries are read through the offsets: `MapArray::value(row)` slices the entry
    // arrays, which allocates and clones their types for every row.
    let partition_values = map_parts(partition_values)?;
    let tags = map_parts(tags)?;
    let read_map = |(map, keys, values): (
        &arrow::array::MapArray,
        &arrow::array::StringArray,
        &arrow::array::StringArray,
    ),
                    row: usize|
     -> HashMap<String, Option<String>> {
        let offsets = map.value_offsets();
        let (start, end) = (offsets[row], offsets[row + 1]);
        let range =
            usize::try_from(start).unwrap_or_default()..usize::try_from(end).unwrap_or_default();
        range
            .map(|i| {
                (
                    keys.value(i).to_owned(),
                    (!values.is_null(i)).then(|| values.value(i).to_owned()),
                )
            })
            .collect()
    };
    out.reserve(add.len() - add.null_count());
    for row in 0..add.len() {
        if add.is_null(row) {
            continue;
        }
        let opt_string = |a: Option<&arrow::array::StringArray>| {
            a.and_then(|a| (!a.is_null(row)).then(|| a.value(row).to_owned()))
        };
        let opt_long = |a: Option<&arrow::array::Int64Array>| {
            a.and_then(|a| (!a.is_null(row)).then(|| a.value(row)))
        };
        let deletion_vector = match dv {
            Some(dv) if !dv.is_null(row) => {
                let text = |n: &str| {
                    dv.column_by_name(n)?
                        .as_string_opt::<i32>()
                        .map(|a| a.value(row).to_owned())
                };
                let int = |n: &str| {
                    let c = dv.column_by_name(n)?;
                    c.as_primitive_opt::<Int32Type>()
                        .and_then(|a| (!a.is_null(row)).then(|| a.value(row)))
                };
                let long = |n: &str| {
                    let c = dv.column_by_name(n)?;
                    c.as_primitive_opt::<Int64Type>()
                        .and_then(|a| (!a.is_null(row)).then(|| a.value(row)))
                };
                Some(crate::deletion_vector::DeletionVectorDescriptor {
                    storage_type: text("storageType")?,
                    path_or_inline_dv: text("pathOrInlineDv")?,
                    offset: int("offset"),
                    size_in_bytes: int("sizeInBytes")?,
                    cardinality: long("cardinality")?,
                })
            }
            _ => None,
        };
        if path.is_null(row) || size.is_null(row) {
            return None;
        }
        if !is_live(path.value(row), deletion_vector.as_ref()) {
            continue;
        }
        out.push(Add {
            path: path.value(row).to_owned(),
            partition_values: match partition_values {
                Some(m) if !m.0.is_null(row) => read_map(m, row),
                _ => HashMap::new(),
            },
            size: size.value(row),
            modification_time: if modification_time.is_null(row) {
                0
            } else {
                modification_time.value(row)
            },
            data_change: data_change.is_some_and(|d| !d.is_null(row) && d.value(row)),
            stats: opt_string(stats),
            tags: match tags {
                Some(m) if !m.0.is_null(row) => Some(read_map(m, row)),
                _ => None,
            },
            deletion_vector,
            base_row_id: opt_long(base_row_id),
            default_row_commit_version: opt_long(default_row_commit_version),
            clustering_provider: opt_string(clustering),
        });
    }
    Some(())
}

/// The key and value arrays of a map column of strings (`Some(None)` when there is no
/// column, `None` for other types). Entries are then read through the offsets:
/// `MapArray::value(row)` slices the entry arrays, allocating and cloning their types for
/// every row.
fn map_parts(map: Option<&arrow::array::MapArray>) -> Option<MapParts<'_>> {
    let Some(map) = map else {
        return Some(None);
    };
    let keys = map.keys().as_string_opt::<i32>()?;
    let values = map.values().as_string_opt::<i32>()?;
    Some(Some((map, keys, values)))
}

/// A map column of string keys and values: the map and its key and value arrays.
type MapParts<'a> = Option<(
    &'a arrow::array::MapArray,
    &'a arrow::array::StringArray,
    &'a arrow::array::StringArray,
)>;

/// Rebuild `stats` from `stats_parsed` when only the typed form was written, and drop the
/// typed columns (partition values are always present as strings).
fn normalise_add(body: &mut serde_json::Value) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    let parsed = obj.remove("stats_parsed");
    obj.remove("partitionValues_parsed");
    let has_stats = obj.get("stats").is_some_and(|s| !s.is_null());
    if !has_stats && let Some(parsed) = parsed.filter(|p| p.is_object()) {
        obj.insert(
            "stats".to_owned(),
            serde_json::Value::String(parsed.to_string()),
        );
    }
}

/// Replay a sidecar (`_delta_log/_sidecars/<path>`) of a V2 checkpoint into `replay`.
///
/// # Errors
/// As [`replay_checkpoint_file`]; [`Error::Corrupt`] when the sidecar path is not a plain
/// name.
pub(crate) async fn replay_sidecar(
    storage: &Storage,
    sidecar: &Sidecar,
    replay: &mut Replay,
) -> Result<()> {
    let decoded = percent_encoding::percent_decode_str(&sidecar.path).decode_utf8_lossy();
    let name = decoded.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name == ".." || name == "." {
        return Err(Error::corrupt(
            "_delta_log/_sidecars",
            "sidecar action names an invalid file",
        ));
    }
    let location = storage.child(&format!("_delta_log/_sidecars/{name}"), "sidecar action")?;
    let mut sink = BatchSink {
        replay,
        sidecars: Vec::new(),
        rows: 0,
    };
    let size = u64::try_from(sidecar.size_in_bytes).ok();
    replay_parquet(storage, &location, size, &mut sink).await
}

/// The Arrow schema of a classic (V1) checkpoint, as Spark writes it.
pub(crate) fn checkpoint_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as T, Field, Fields, Schema};
    use std::sync::Arc;
    let s = || T::Utf8;
    let string_map = || {
        T::Map(
            Arc::new(Field::new(
                "key_value",
                T::Struct(Fields::from(vec![
                    Field::new("key", T::Utf8, false),
                    Field::new("value", T::Utf8, true),
                ])),
                false,
            )),
            false,
        )
    };
    let string_list = || T::List(Arc::new(Field::new("element", T::Utf8, true)));
    let dv = || {
        T::Struct(Fields::from(vec![
            Field::new("storageType", s(), true),
            Field::new("pathOrInlineDv", s(), true),
            Field::new("offset", T::Int32, true),
            Field::new("sizeInBytes", T::Int32, true),
            Field::new("cardinality", T::Int64, true),
        ]))
    };
    let strukt = |fields: Vec<Field>| T::Struct(Fields::from(fields));
    Arc::new(Schema::new(vec![
        Field::new(
            "txn",
            strukt(vec![
                Field::new("appId", s(), true),
                Field::new("version", T::Int64, true),
                Field::new("lastUpdated", T::Int64, true),
            ]),
            true,
        ),
        Field::new(
            "add",
            strukt(vec![
                Field::new("path", s(), true),
                Field::new("partitionValues", string_map(), true),
                Field::new("size", T::Int64, true),
                Field::new("modificationTime", T::Int64, true),
                Field::new("dataChange", T::Boolean, true),
                Field::new("stats", s(), true),
                Field::new("tags", string_map(), true),
                Field::new("deletionVector", dv(), true),
                Field::new("baseRowId", T::Int64, true),
                Field::new("defaultRowCommitVersion", T::Int64, true),
                Field::new("clusteringProvider", s(), true),
            ]),
            true,
        ),
        Field::new(
            "remove",
            strukt(vec![
                Field::new("path", s(), true),
                Field::new("deletionTimestamp", T::Int64, true),
                Field::new("dataChange", T::Boolean, true),
                Field::new("extendedFileMetadata", T::Boolean, true),
                Field::new("partitionValues", string_map(), true),
                Field::new("size", T::Int64, true),
                Field::new("deletionVector", dv(), true),
                Field::new("baseRowId", T::Int64, true),
                Field::new("defaultRowCommitVersion", T::Int64, true),
            ]),
            true,
        ),
        Field::new(
            "metaData",
            strukt(vec![
                Field::new("id", s(), true),
                Field::new("name", s(), true),
                Field::new("description", s(), true),
                Field::new(
                    "format",
                    strukt(vec![
                        Field::new("provider", s(), true),
                        Field::new("options", string_map(), true),
                    ]),
                    true,
                ),
                Field::new("schemaString", s(), true),
                Field::new("partitionColumns", string_list(), true),
                Field::new("configuration", string_map(), true),
                Field::new("createdTime", T::Int64, true),
            ]),
            true,
        ),
        Field::new(
            "protocol",
            strukt(vec![
                Field::new("minReaderVersion", T::Int32, true),
                Field::new("minWriterVersion", T::Int32, true),
                Field::new("readerFeatures", string_list(), true),
                Field::new("writerFeatures", string_list(), true),
            ]),
            true,
        ),
        Field::new(
            "domainMetadata",
            strukt(vec![
                Field::new("domain", s(), true),
                Field::new("configuration", s(), true),
                Field::new("removed", T::Boolean, true),
            ]),
            true,
        ),
    ]))
}

/// Rows per row group and per encoding batch of a written checkpoint.
const CHECKPOINT_WRITE_ROWS: usize = 16_384;

/// Encode the state of a table as a classic checkpoint (parquet bytes, zstd).
///
/// Contains protocol, metadata, live files, tombstones, app transactions and non-removed
/// domains, one action per row; never `commitInfo` or `cdc`; tombstones without stats.
///
/// # Errors
/// [`Error::Arrow`] / [`Error::Parquet`] if encoding fails (a bug, not bad input).
pub fn encode_checkpoint(state: &crate::log::TableState) -> Result<Vec<u8>> {
    use crate::action::Remove;
    let typed = TypedColumns::of(state);
    let schema = match &typed {
        Some(t) => t.extend_schema(&checkpoint_schema()),
        None => checkpoint_schema(),
    };
    let base = checkpoint_schema();
    let mut actions: Vec<Action> =
        Vec::with_capacity(state.files.len() + state.tombstones.len() + 2);
    actions.push(Action::Protocol(state.protocol.clone()));
    actions.push(Action::Metadata(state.metadata.clone()));
    actions.extend(state.txns.values().cloned().map(Action::Txn));
    actions.extend(state.domains.values().cloned().map(Action::DomainMetadata));
    actions.extend(state.tombstones.iter().map(|r| {
        Action::Remove(Remove {
            stats: None,
            tags: None,
            ..r.clone()
        })
    }));
    actions.extend(state.files.iter().cloned().map(Action::Add));
    let props = parquet::file::properties::WriterProperties::builder()
        // Snappy, as Spark and delta-rs write checkpoints: every reader decodes a checkpoint
        // on every load, and zstd's per-column-chunk decoder setup dominates small ones.
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(CHECKPOINT_WRITE_ROWS * 8))
        .build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema.clone(), Some(props))
        .map_err(|e| Error::parquet("checkpoint", e))?;
    for chunk in actions.chunks(CHECKPOINT_WRITE_ROWS) {
        let mut decoder = arrow::json::ReaderBuilder::new(base.clone())
            .with_batch_size(CHECKPOINT_WRITE_ROWS)
            .build_decoder()?;
        let mut lines = Vec::new();
        for action in chunk {
            if let Some(value) = action.to_json_value() {
                lines.extend_from_slice(value.to_string().as_bytes());
                lines.push(b'\n');
            }
        }
        decoder.decode(&lines)?;
        if let Some(batch) = decoder.flush()? {
            let batch = match &typed {
                Some(t) => t.add_to(&batch, chunk, &schema)?,
                None => batch,
            };
            writer
                .write(&batch)
                .map_err(|e| Error::parquet("checkpoint", e))?;
        }
    }
    writer
        .close()
        .map_err(|e| Error::parquet("checkpoint", e))?;
    Ok(out)
}

/// The typed `add.stats_parsed` and `add.partitionValues_parsed` columns of a checkpoint
/// (physical column names), so readers can skip files without parsing JSON.
struct TypedColumns {
    stats: Option<arrow::datatypes::Field>,
    partitions: Option<(arrow::datatypes::Field, Vec<PartitionSpec>)>,
}

/// A partition column: logical name, physical name, logical type.
type PartitionSpec = (String, String, arrow::datatypes::DataType);

impl TypedColumns {
    fn of(state: &crate::log::TableState) -> Option<Self> {
        use crate::schema::{ColumnMappingMode, StructType, to_arrow_schema};
        use arrow::datatypes::{DataType as T, Field, Fields};
        let schema = StructType::parse(&state.metadata.schema_string).ok()?;
        let mode = state
            .metadata
            .property("delta.columnMapping.mode")
            .map_or(Ok(ColumnMappingMode::None), ColumnMappingMode::parse)
            .ok()?;
        let logical = to_arrow_schema(&schema).ok()?;
        let partition_columns = &state.metadata.partition_columns;
        // min/max: orderable leaf types; nullCount: every leaf, as long.
        fn bounds(t: &T) -> Option<T> {
            match t {
                T::Struct(fields) => {
                    let children: Vec<Field> = fields
                        .iter()
                        .filter_map(|f| {
                            bounds(f.data_type()).map(|t| Field::new(f.name(), t, true))
                        })
                        .collect();
                    (!children.is_empty()).then(|| T::Struct(Fields::from(children)))
                }
                T::Boolean | T::Binary | T::List(_) | T::Map(_, _) | T::Null => None,
                other => Some(other.clone()),
            }
        }
        fn counts(t: &T) -> T {
            match t {
                T::Struct(fields) => T::Struct(Fields::from(
                    fields
                        .iter()
                        .map(|f| Field::new(f.name(), counts(f.data_type()), true))
                        .collect::<Vec<_>>(),
                )),
                _ => T::Int64,
            }
        }
        let physical = crate::schema::to_physical_arrow_schema(&schema, mode).ok()?;
        let mut min_fields = Vec::new();
        let mut count_fields = Vec::new();
        let mut partition_fields = Vec::new();
        let mut partition_specs = Vec::new();
        for (field, physical_field) in schema.fields.iter().zip(physical.fields()) {
            let name = physical_field.name();
            let logical_type = logical
                .field_with_name(&field.name)
                .ok()?
                .data_type()
                .clone();
            if partition_columns.contains(&field.name) {
                partition_fields.push(Field::new(name, logical_type.clone(), true));
                partition_specs.push((field.name.clone(), name.clone(), logical_type));
                continue;
            }
            if let Some(t) = bounds(&logical_type) {
                min_fields.push(Field::new(name, t, true));
            }
            count_fields.push(Field::new(name, counts(&logical_type), true));
        }
        let stats = (!count_fields.is_empty()).then(|| {
            let mut fields = vec![Field::new("numRecords", T::Int64, true)];
            if !min_fields.is_empty() {
                fields.push(Field::new(
                    "minValues",
                    T::Struct(Fields::from(min_fields.clone())),
                    true,
                ));
                fields.push(Field::new(
                    "maxValues",
                    T::Struct(Fields::from(min_fields)),
                    true,
                ));
            }
            fields.push(Field::new(
                "nullCount",
                T::Struct(Fields::from(count_fields)),
                true,
            ));
            Field::new("stats_parsed", T::Struct(Fields::from(fields)), true)
        });
        let partitions = (!partition_fields.is_empty()).then(|| {
            (
                Field::new(
                    "partitionValues_parsed",
                    T::Struct(Fields::from(partition_fields)),
                    true,
                ),
                partition_specs,
            )
        });
        Some(Self { stats, partitions })
    }

    fn extend_schema(&self, base: &arrow::datatypes::SchemaRef) -> arrow::datatypes::SchemaRef {
        use arrow::datatypes::{DataType as T, Field, Fields, Schema};
        let fields: Vec<Field> = base
            .fields()
            .iter()
            .map(|f| {
                if f.name() != "add" {
                    return f.as_ref().clone();
                }
                let T::Struct(children) = f.data_type() else {
                    return f.as_ref().clone();
                };
                let mut children: Vec<Field> =
                    children.iter().map(|c| c.as_ref().clone()).collect();
                children.extend(self.partitions.as_ref().map(|p| p.0.clone()));
                children.extend(self.stats.clone());
                Field::new("add", T::Struct(Fields::from(children)), true)
            })
            .collect();
        std::sync::Arc::new(Schema::new(fields))
    }

    /// Append the typed children to the `add` column of `batch` (rows = `actions`).
    fn add_to(
        &self,
        batch: &RecordBatch,
        actions: &[Action],
        schema: &arrow::datatypes::SchemaRef,
    ) -> Result<RecordBatch> {
        use arrow::array::{Array, ArrayRef, AsArray, StructArray, new_null_array};
        let rows: Vec<Option<&crate::action::Add>> = actions
            .iter()
            .filter(|a| a.to_json_value().is_some())
            .map(|a| match a {
                Action::Add(add) => Some(add),
                _ => None,
            })
            .collect();
        let index = batch.schema().index_of("add")?;
        let add = batch.column(index).as_struct();
        let arrow::datatypes::DataType::Struct(target_fields) =
            schema.field(index).data_type().clone()
        else {
            return Ok(batch.clone());
        };
        let mut children: Vec<ArrayRef> = add.columns().to_vec();
        if let Some((field, specs)) = &self.partitions {
            let arrow::datatypes::DataType::Struct(fields) = field.data_type() else {
                return Ok(batch.clone());
            };
            let mut columns = Vec::with_capacity(specs.len());
            for (logical, physical, data_type) in specs {
                let mut values: Vec<ArrayRef> = Vec::with_capacity(rows.len());
                for row in &rows {
                    let value = match row {
                        Some(add) => {
                            let raw = add
                                .partition_values
                                .get(physical)
                                .or_else(|| add.partition_values.get(logical))
                                .and_then(Option::as_deref);
                            crate::partition::parse_partition_value(raw, data_type, logical, None)
                                .unwrap_or_else(|_| new_null_array(data_type, 1))
                        }
                        None => new_null_array(data_type, 1),
                    };
                    values.push(value);
                }
                let refs: Vec<&dyn Array> = values.iter().map(AsRef::as_ref).collect();
                columns.push(arrow::compute::concat(&refs)?);
            }
            children.push(std::sync::Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                add.nulls().cloned(),
            )?));
        }
        if let Some(field) = &self.stats {
            let stats_schema =
                std::sync::Arc::new(arrow::datatypes::Schema::new(match field.data_type() {
                    arrow::datatypes::DataType::Struct(f) => f.clone(),
                    _ => arrow::datatypes::Fields::empty(),
                }));
            let mut lines = Vec::new();
            for row in &rows {
                match row.and_then(|a| a.stats.as_deref()) {
                    Some(stats) if !stats.contains('\n') => {
                        lines.extend_from_slice(stats.as_bytes())
                    }
                    _ => lines.extend_from_slice(b"{}"),
                }
                lines.push(b'\n');
            }
            let decoded = arrow::json::ReaderBuilder::new(stats_schema.clone())
                .with_batch_size(rows.len().max(1))
                .with_strict_mode(false)
                .build_decoder()
                .and_then(|mut d| {
                    d.decode(&lines)?;
                    d.flush()
                });
            let parsed: ArrayRef = match decoded {
                Ok(Some(stats)) if stats.num_rows() == rows.len() => {
                    std::sync::Arc::new(StructArray::try_new(
                        stats_schema.fields().clone(),
                        stats.columns().to_vec(),
                        add.nulls().cloned(),
                    )?)
                }
                // Stats another writer wrote that do not decode: leave the typed form out
                // (the JSON form is still there).
                _ => new_null_array(field.data_type(), rows.len()),
            };
            children.push(parsed);
        }
        let new_add = StructArray::try_new(target_fields, children, add.nulls().cloned())?;
        let mut columns = batch.columns().to_vec();
        columns[index] = std::sync::Arc::new(new_add);
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod typed_tests {
    #[test]
    fn typed_columns_exist_for_a_plain_schema() {
        let mut state = crate::log::TableState::default();
        state.metadata.schema_string = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"site","type":"string","nullable":true,"metadata":{}}]}"#.into();
        state.metadata.partition_columns = vec!["site".into()];
        let typed = super::TypedColumns::of(&state).expect("typed columns");
        assert!(typed.stats.is_some() && typed.partitions.is_some());
    }
}
