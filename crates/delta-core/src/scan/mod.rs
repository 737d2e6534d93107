//! Scans: planning (pure pruning over partition values and statistics) and execution.
//!
//! [`ScanBuilder::build`] is pure: it binds the predicate to the table schema, parses every
//! live file's partition values and statistics and decides, file by file, whether the file
//! can hold a matching row ([`prune`]). [`Scan::execute`] then streams Arrow batches from
//! the kept files one file at a time (memory is bounded by one file's row group, not by the
//! table): it reads only the needed columns, maps physical to logical columns (column
//! mapping by name or id), conforms types, materialises partition columns, drops rows hidden
//! by deletion vectors and filters by the predicate.

mod conform;
pub mod prune;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array, new_null_array,
};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{Field, Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;

use crate::action::Add;
use crate::deletion_vector::{DeletionVectorDescriptor, selection_mask};
use crate::expression::{BoundExpression, Expression};
use crate::partition::parse_partition_value;
use crate::schema::{ColumnMappingMode, StructField};
use crate::snapshot::Snapshot;
use crate::storage::Storage;
use crate::{Error, Result};
use conform::{conform, find_physical};
pub use prune::{FileStats, StatsColumn, Verdict};

/// Rows per batch read from data files.
const DEFAULT_BATCH_ROWS: usize = 8192;
/// Files a scan opens at once: their footers (and deletion vectors) are fetched while an
/// earlier file streams, so on a remote store a small file costs one round trip (its data)
/// instead of two. Memory: the parquet metadata of this many files; their rows are still
/// decoded one file at a time, in order.
const FILES_OPENED_AHEAD: usize = 8;

/// Options for a scan; finish with [`ScanBuilder::build`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ScanBuilder {
    snapshot: Snapshot,
    predicate: Option<Expression>,
    columns: Option<Vec<String>>,
    limit: Option<usize>,
    batch_rows: usize,
    session_time_zone: Option<String>,
    /// Columns read from data files by their exact stored name, outside the table schema
    /// (the change data feed's `_change_type` in `_change_data/` files).
    file_columns: Vec<String>,
}

/// Which physical rows of each file a scan returns.
#[derive(Clone, Debug, Default)]
pub(crate) enum RowSelection {
    /// Every row not hidden by the file's deletion vector (a normal read).
    #[default]
    Live,
    /// Exactly these row indexes, whatever the file's deletion vector says (the change data
    /// feed's rows that entered or left a deletion vector).
    Only(Arc<roaring::RoaringTreemap>),
}

/// One live file and the planner's decision about it.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// The `add` action of the file.
    pub add: Add,
    /// Keep or skip, with the reason for skipping.
    pub verdict: Verdict,
    /// Row count from the statistics (physical rows, before deletion vectors).
    pub num_records: Option<u64>,
    /// The statistics as parsed (logical column names), when present.
    pub stats: Option<FileStats>,
    partition_values: HashMap<String, ArrayRef>,
}

impl PlannedFile {
    /// The typed value of partition column `column` (a length-1 array; case-insensitive).
    #[must_use]
    pub fn partition_value(&self, column: &str) -> Option<&ArrayRef> {
        self.partition_values.get(column).or_else(|| {
            self.partition_values
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(column))
                .map(|(_, v)| v)
        })
    }

    /// Whether the file must be read.
    #[must_use]
    pub fn is_kept(&self) -> bool {
        matches!(self.verdict, Verdict::Keep)
    }
}

/// A planned scan: which files to read, and how.
#[derive(Clone, Debug)]
pub struct Scan {
    snapshot: Snapshot,
    files: Vec<PlannedFile>,
    predicate: Option<BoundExpression>,
    output_schema: SchemaRef,
    /// Logical fields read from data files (output columns plus predicate columns).
    read_fields: Vec<(StructField, Field)>,
    limit: Option<usize>,
    batch_rows: usize,
    selection: RowSelection,
}

impl Snapshot {
    /// Start building a scan of this snapshot.
    pub fn scan(&self) -> ScanBuilder {
        ScanBuilder {
            snapshot: self.clone(),
            predicate: None,
            columns: None,
            limit: None,
            batch_rows: DEFAULT_BATCH_ROWS,
            session_time_zone: None,
            file_columns: Vec::new(),
        }
    }
}

impl Snapshot {
    /// Whether `add` could hold a row matching `predicate` (by partition values and
    /// statistics; `true` when unsure). Used by conflict detection.
    #[must_use]
    pub fn file_may_match(&self, predicate: &Expression, add: &Add) -> bool {
        let Ok(scan) = self
            .scan()
            .with_predicate(predicate.clone())
            .build_for(std::slice::from_ref(add))
        else {
            return true;
        };
        scan.files.first().is_none_or(PlannedFile::is_kept)
    }
}

impl ScanBuilder {
    /// Keep only rows where `predicate` is true (also used to skip files).
    pub fn with_predicate(mut self, predicate: Expression) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// Output only these columns, in this order.
    pub fn with_columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Stop after `limit` rows.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Rows per output batch (upper bound).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// The zone in which legacy `YYYY-MM-DD HH:MM:SS` timestamp partition values were
    /// written (Spark's session time zone); UTC when unset.
    pub fn with_session_time_zone(mut self, zone: impl Into<String>) -> Self {
        self.session_time_zone = Some(zone.into());
        self
    }

    /// Also output string column `name`, read from each data file by its exact stored name
    /// (no column mapping; NULL where a file lacks it), after the table's columns.
    pub(crate) fn with_file_column(mut self, name: &str) -> Self {
        self.file_columns.push(name.to_owned());
        self
    }

    /// Plan the scan. Pure: no I/O.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for unknown columns or a predicate that does not bind;
    /// [`Error::Corrupt`] for partition values that do not parse.
    pub fn build(self) -> Result<Scan> {
        let files = self.snapshot.files().to_vec();
        self.build_for(&files)
    }

    /// Plan over `adds` instead of the snapshot's live files: the files of some commits (an
    /// incremental reader of an append-only table), or the files a rewrite reads. They are
    /// read with the snapshot's schema and column mapping.
    ///
    /// # Errors
    /// As [`ScanBuilder::build`].
    pub fn build_for(self, adds: &[Add]) -> Result<Scan> {
        let snapshot = self.snapshot;
        let schema = snapshot.schema().clone();
        let table_schema = snapshot.arrow_schema();
        let mode = snapshot.column_mapping();
        let predicate = self
            .predicate
            .as_ref()
            .map(|p| p.bind(&table_schema))
            .transpose()?;
        let output_names: Vec<String> = match &self.columns {
            Some(cols) => cols
                .iter()
                .map(|c| {
                    schema
                        .field(c)
                        .map(|f| f.name.clone())
                        .ok_or_else(|| Error::invalid(format!("unknown column `{c}`")))
                })
                .collect::<Result<_>>()?,
            None => schema.fields.iter().map(|f| f.name.clone()).collect(),
        };
        let mut needed = output_names.clone();
        if let Some(p) = &self.predicate {
            for c in p.columns() {
                if let Some(f) = schema.field(&c)
                    && !needed.contains(&f.name)
                {
                    needed.push(f.name.clone());
                }
            }
        }
        let mut read_fields = Vec::new();
        for name in &needed {
            let (Some(field), Ok(arrow_field)) =
                (schema.field(name), table_schema.field_with_name(name))
            else {
                return Err(Error::invalid(format!("unknown column `{name}`")));
            };
            read_fields.push((field.clone(), arrow_field.clone()));
        }
        let mut output_fields: Vec<Field> = output_names
            .iter()
            .filter_map(|n| table_schema.field_with_name(n).ok().cloned())
            .collect();
        // Extra file columns come right after the output columns (the output is a prefix of
        // the read fields), before any column only the predicate needs.
        for (i, name) in self.file_columns.iter().enumerate() {
            let field = StructField {
                name: name.clone(),
                data_type: crate::schema::DataType::Primitive(crate::schema::PrimitiveType::String),
                nullable: true,
                metadata: serde_json::Map::new(),
            };
            let arrow_field = Field::new(name, arrow::datatypes::DataType::Utf8, true);
            output_fields.push(arrow_field.clone());
            read_fields.insert(output_names.len() + i, (field, arrow_field));
        }
        let output_schema = Arc::new(Schema::new(output_fields));

        let partition_columns: Vec<(StructField, Field)> = snapshot
            .partition_columns()
            .iter()
            .map(|name| {
                let field = schema.field(name).ok_or_else(|| {
                    Error::corrupt(
                        "metaData.partitionColumns",
                        format!("partition column `{name}` is not in the schema"),
                    )
                })?;
                let arrow_field = table_schema.field_with_name(&field.name)?.clone();
                Ok((field.clone(), arrow_field))
            })
            .collect::<Result<_>>()?;
        let stats_columns: Vec<StatsColumn> = schema
            .fields
            .iter()
            .filter(|f| !snapshot.partition_columns().contains(&f.name))
            .filter_map(|f| {
                let arrow_field = table_schema.field_with_name(&f.name).ok()?;
                Some(StatsColumn {
                    logical_name: f.name.clone(),
                    physical_path: vec![f.physical_name(mode).to_owned()],
                    data_type: arrow_field.data_type().clone(),
                })
            })
            .collect();

        let zone = self.session_time_zone.as_deref();
        let mut files = Vec::with_capacity(adds.len());
        for add in adds {
            let partition_values = parse_partitions(add, &partition_columns, mode, zone)?;
            let stats = add
                .stats
                .as_deref()
                .and_then(|s| FileStats::from_json(s, &stats_columns).ok());
            let verdict = match &predicate {
                Some(p) => prune::prune(p, &partition_values, stats.as_ref()),
                None => Verdict::Keep,
            };
            files.push(PlannedFile {
                add: add.clone(),
                verdict,
                num_records: stats.as_ref().and_then(|s| s.num_records),
                stats,
                partition_values,
            });
        }
        Ok(Scan {
            snapshot,
            files,
            predicate,
            output_schema,
            read_fields,
            limit: self.limit,
            batch_rows: self.batch_rows,
            selection: RowSelection::Live,
        })
    }
}

fn parse_partitions(
    add: &Add,
    partition_columns: &[(StructField, Field)],
    mode: ColumnMappingMode,
    zone: Option<&str>,
) -> Result<HashMap<String, ArrayRef>> {
    let mut out = HashMap::with_capacity(partition_columns.len());
    for (field, arrow_field) in partition_columns {
        let physical = field.physical_name(mode);
        let raw = add
            .partition_values
            .get(physical)
            .or_else(|| add.partition_values.get(&field.name))
            .and_then(Option::as_deref);
        let value = parse_partition_value(raw, arrow_field.data_type(), &field.name, zone)?;
        out.insert(field.name.clone(), value);
    }
    Ok(out)
}

impl Scan {
    /// Every live file with the planner's verdict, in path order.
    #[must_use]
    pub fn planned_files(&self) -> &[PlannedFile] {
        &self.files
    }

    /// The files that will be read.
    pub fn kept_files(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files.iter().filter(|f| f.is_kept())
    }

    /// The schema of the batches [`Scan::execute`] yields.
    #[must_use]
    pub fn schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// Return exactly `selection`'s rows of each file (see [`RowSelection`]).
    pub(crate) fn with_row_selection(mut self, selection: RowSelection) -> Self {
        self.selection = selection;
        self
    }

    /// Stream the matching rows, file by file (in plan order; up to 8 files are opened
    /// ahead, one at a time when the scan has a limit).
    ///
    /// # Errors
    /// Each item fails with [`Error::Storage`], [`Error::Parquet`] or [`Error::Corrupt`]
    /// (naming the data file) when a file cannot be read or does not match the schema.
    pub fn execute(&self) -> BoxStream<'static, Result<RecordBatch>> {
        let scan = Arc::new(self.clone());
        let files: Vec<usize> = (0..self.files.len())
            .filter(|i| self.files[*i].is_kept())
            .collect();
        let limit = self.limit;
        // Open files ahead (footer, deletion vector) while earlier ones stream; a scan with
        // a limit opens one at a time, so it never reads files it will not need.
        let ahead = if limit.is_some() {
            1
        } else {
            FILES_OPENED_AHEAD
        };
        let stream = futures::stream::iter(files)
            .map(move |index| {
                let scan = scan.clone();
                async move { scan.read_file(index).await }
            })
            .buffered(ahead)
            .try_flatten();
        match limit {
            None => stream.boxed(),
            Some(limit) => {
                let mut remaining = limit;
                stream
                    .try_take_while(move |_| futures::future::ready(Ok(remaining > 0)))
                    .map_ok(move |batch| {
                        let take = batch.num_rows().min(remaining);
                        remaining -= take;
                        batch.slice(0, take)
                    })
                    .try_filter(|b| futures::future::ready(b.num_rows() > 0))
                    .boxed()
            }
        }
    }

    /// Collect every matching row (convenience for small tables and tests).
    ///
    /// # Errors
    /// As [`Scan::execute`].
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        self.execute().try_collect().await
    }

    async fn read_file(
        self: Arc<Self>,
        index: usize,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let planned = &self.files[index];
        let storage = self.snapshot.storage().clone();
        let location =
            storage.resolve_file(&planned.add.path, &format!("add {}", planned.add.path))?;
        let file_name = storage.display(&location);
        let deleted = match (&self.selection, &planned.add.deletion_vector) {
            (RowSelection::Only(_), _) | (RowSelection::Live, None) => None,
            (RowSelection::Live, Some(dv)) => {
                Some(load_deletion_vector(&storage, dv, &file_name).await?)
            }
        };
        let mut reader = storage
            .open_parquet(&location, u64::try_from(planned.add.size).ok())
            .await?;
        let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| Error::parquet(&file_name, e))?;
        // INT96 timestamps decode to nanoseconds by default, which overflows for dates past
        // 2262; ask for microseconds directly (Delta's unit).
        let file_schema = metadata.schema().clone();
        let hinted = int96_hint(&file_schema);
        let metadata = match hinted {
            Some(hint) => ArrowReaderMetadata::try_new(
                metadata.metadata().clone(),
                ArrowReaderOptions::new().with_schema(hint),
            )
            .unwrap_or(metadata),
            None => metadata,
        };
        let file_fields = metadata.schema().fields().clone();
        let mode = self.snapshot.column_mapping();
        let partition_columns = self.snapshot.partition_columns();
        // For each read field: where it is in the file (None: missing or a partition column).
        let mut sources = Vec::with_capacity(self.read_fields.len());
        let mut roots = Vec::new();
        for (field, _) in &self.read_fields {
            let is_partition = partition_columns.contains(&field.name);
            let found = if is_partition {
                None
            } else {
                find_physical(&file_fields, field, mode)
            };
            if let Some(i) = found {
                roots.push(i);
            }
            sources.push(found);
        }
        roots.sort_unstable();
        roots.dedup();
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let stream = builder
            .with_projection(mask)
            .with_batch_size(self.batch_rows)
            .build()
            .map_err(|e| Error::parquet(&file_name, e))?;
        // Position of each file column in the projected batches.
        let projected_index: HashMap<usize, usize> = roots
            .iter()
            .enumerate()
            .map(|(pos, root)| (*root, pos))
            .collect();
        let scan = self.clone();
        let mut row_offset: u64 = 0;
        let out = stream
            .map_err({
                let file_name = file_name.clone();
                move |e| Error::parquet(&file_name, e)
            })
            .and_then(move |batch| {
                let first_row = row_offset;
                row_offset += u64::try_from(batch.num_rows()).unwrap_or(u64::MAX);
                let result = scan.assemble(
                    index,
                    &batch,
                    &sources,
                    &projected_index,
                    deleted.as_ref(),
                    first_row,
                    &file_name,
                );
                futures::future::ready(result)
            })
            .try_filter(|b| futures::future::ready(b.num_rows() > 0));
        Ok(out.boxed())
    }

    /// Turn one batch of a file into output rows.
    #[allow(
        clippy::too_many_arguments,
        reason = "private plumbing of one file's read state"
    )]
    fn assemble(
        &self,
        index: usize,
        batch: &RecordBatch,
        sources: &[Option<usize>],
        projected_index: &HashMap<usize, usize>,
        deleted: Option<&roaring::RoaringTreemap>,
        first_row: u64,
        file: &str,
    ) -> Result<RecordBatch> {
        let planned = &self.files[index];
        let rows = batch.num_rows();
        let mode = self.snapshot.column_mapping();
        let mut columns = Vec::with_capacity(self.read_fields.len());
        let mut fields = Vec::with_capacity(self.read_fields.len());
        for ((field, arrow_field), source) in self.read_fields.iter().zip(sources) {
            let column = if let Some(value) = planned.partition_values.get(&field.name) {
                repeat(value, rows)?
            } else if let Some(pos) = source.and_then(|s| projected_index.get(&s)) {
                conform(batch.column(*pos), field, arrow_field, mode, file)?
            } else {
                new_null_array(arrow_field.data_type(), rows)
            };
            fields.push(
                Field::new(
                    arrow_field.name(),
                    column.data_type().clone(),
                    arrow_field.is_nullable() || column.null_count() > 0,
                )
                .with_metadata(arrow_field.metadata().clone()),
            );
            columns.push(column);
        }
        let schema = Arc::new(Schema::new(fields));
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let mut assembled = RecordBatch::try_new_with_options(schema, columns, &options)?;
        if let Some(deleted) = deleted {
            let keep: BooleanArray = selection_mask(deleted, first_row, rows);
            assembled = filter_record_batch(&assembled, &keep)?;
        }
        if let RowSelection::Only(wanted) = &self.selection {
            let keep = arrow::compute::not(&selection_mask(wanted, first_row, rows))?;
            assembled = filter_record_batch(&assembled, &keep)?;
        }
        if let Some(predicate) = &self.predicate {
            assembled = predicate.filter(&assembled)?;
        }
        // Project to the output columns (the first `output_schema.len()` read fields).
        let n = self.output_schema.fields().len();
        let projection: Vec<usize> = (0..n).collect();
        Ok(assembled.project(&projection)?)
    }
}

/// Repeat a length-1 array `rows` times.
fn repeat(value: &ArrayRef, rows: usize) -> Result<ArrayRef> {
    if value.is_null(0) {
        return Ok(new_null_array(value.data_type(), rows));
    }
    let indices = UInt32Array::from(vec![0u32; rows]);
    Ok(take(value.as_ref(), &indices, None)?)
}

/// A schema hint that reads INT96 (nanosecond, zone-less) timestamps as microseconds.
fn int96_hint(schema: &Schema) -> Option<SchemaRef> {
    use arrow::datatypes::{DataType as T, TimeUnit};
    fn fix(dt: &T) -> (T, bool) {
        match dt {
            T::Timestamp(TimeUnit::Nanosecond, None) => {
                (T::Timestamp(TimeUnit::Microsecond, None), true)
            }
            T::Struct(fields) => {
                let mut changed = false;
                let fields: Vec<Field> = fields
                    .iter()
                    .map(|f| {
                        let (t, c) = fix(f.data_type());
                        changed |= c;
                        f.as_ref().clone().with_data_type(t)
                    })
                    .collect();
                (T::Struct(fields.into()), changed)
            }
            T::List(f) => {
                let (t, c) = fix(f.data_type());
                (T::List(Arc::new(f.as_ref().clone().with_data_type(t))), c)
            }
            T::Map(f, sorted) => {
                let (t, c) = fix(f.data_type());
                (
                    T::Map(Arc::new(f.as_ref().clone().with_data_type(t)), *sorted),
                    c,
                )
            }
            other => (other.clone(), false),
        }
    }
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let (t, c) = fix(f.data_type());
            changed |= c;
            f.as_ref().clone().with_data_type(t)
        })
        .collect();
    changed.then(|| Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}

/// Load the rows a deletion vector hides.
pub(crate) async fn load_deletion_vector(
    storage: &Storage,
    dv: &DeletionVectorDescriptor,
    data_file: &str,
) -> Result<roaring::RoaringTreemap> {
    let Some(url) = dv.absolute_path(storage.url())? else {
        return crate::deletion_vector::parse_inline(dv);
    };
    let relative = url
        .as_str()
        .strip_prefix(storage.url().as_str())
        .ok_or_else(|| Error::corrupt(data_file, "deletion vector lies outside the table root"))?
        .to_owned();
    let location = storage.resolve_file(&relative, &format!("deletion vector of {data_file}"))?;
    let range = dv.byte_range().ok_or_else(|| {
        Error::corrupt(
            data_file,
            "deletion vector descriptor has an invalid offset or size",
        )
    })?;
    let bytes = storage.read_range(&location, range).await?;
    dv.read_range(&bytes, &storage.display(&location))
}
