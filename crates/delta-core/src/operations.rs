//! Table operations that produce new versions: create, append, overwrite (whole table,
//! `replaceWhere`, dynamic partitions), DELETE and UPDATE.
//!
//! Every operation follows the same shape: plan from a snapshot, write new data files
//! (invisible until committed), enforce constraints over everything written, then commit
//! one transaction. A failure before the commit deletes the files it wrote; nothing
//! becomes visible. DELETE and UPDATE are copy-on-write: files whose rows all match are
//! removed without being read, files with some matching rows are rewritten, the rest stay.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{filter_record_batch, not, prep_null_mask_filter};
use arrow::datatypes::{Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::action::{Add, Metadata, Protocol};
use crate::expression::{BoundExpression, BoundValue, Expression};
use crate::rewrite::{Rewriter, RowFate, Staged};
use crate::scan::Verdict;
use crate::schema::{
    ColumnMappingMode, DataType, PrimitiveType, StructField, StructType, from_arrow_schema,
    to_arrow_schema,
};
use crate::snapshot::Snapshot;
use crate::stats::StatsConfig;
use crate::table::Table;
use crate::transaction::{Committed, Transaction};
use crate::write::{DataWriter, WriterOptions};
use crate::{Error, Result};

/// How a write treats existing rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaveMode {
    /// Add rows.
    #[default]
    Append,
    /// Replace rows: all of them, those matching `replaceWhere`, or (dynamic partition
    /// overwrite) those in the partitions the new rows touch.
    Overwrite,
}

/// What an operation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct OperationReport {
    /// The committed version (`None` when there was nothing to commit).
    pub version: Option<u64>,
    /// Files added.
    pub files_added: u64,
    /// Files removed.
    pub files_removed: u64,
    /// Rows written to new files (including rows copied by rewrites).
    pub rows_written: u64,
    /// Rows deleted (DELETE, overwrite) or updated (UPDATE).
    pub rows_affected: u64,
    /// Rows copied unchanged into rewritten files.
    pub rows_copied: u64,
    /// Bytes of the added files.
    pub bytes_added: u64,
    /// Bytes of the removed files.
    pub bytes_removed: u64,
    /// Files that got a new deletion vector instead of being rewritten.
    pub deletion_vectors_added: u64,
    /// Deletion vectors replaced by larger ones or dropped with their file.
    pub deletion_vectors_removed: u64,
    /// Change data files written (`_change_data/`).
    pub change_files_added: u64,
    /// Commit attempts.
    pub attempts: u32,
}

/// Options of a write; finish with [`WriteBuilder::execute`].
#[derive(Debug)]
#[must_use]
pub struct WriteBuilder {
    table: Table,
    mode: SaveMode,
    replace_where: Option<Expression>,
    dynamic_partitions: bool,
    merge_schema: bool,
    partition_columns: Option<Vec<String>>,
    properties: HashMap<String, String>,
    description: Option<String>,
    name: Option<String>,
    app_transaction: Option<(String, i64)>,
}

impl Table {
    /// Start a write (append by default). Creates the table when it does not exist.
    pub fn write(&self) -> WriteBuilder {
        WriteBuilder {
            table: self.clone(),
            mode: SaveMode::Append,
            replace_where: None,
            dynamic_partitions: false,
            merge_schema: false,
            partition_columns: None,
            properties: HashMap::new(),
            description: None,
            name: None,
            app_transaction: None,
        }
    }
}

impl WriteBuilder {
    /// Append (default) or overwrite.
    pub fn with_mode(mut self, mode: SaveMode) -> Self {
        self.mode = mode;
        self
    }

    /// Overwrite only rows matching `predicate`; every written row must match it.
    pub fn with_replace_where(mut self, predicate: Expression) -> Self {
        self.mode = SaveMode::Overwrite;
        self.replace_where = Some(predicate);
        self
    }

    /// Overwrite only the partitions the written rows fall in.
    pub fn with_dynamic_partition_overwrite(mut self) -> Self {
        self.mode = SaveMode::Overwrite;
        self.dynamic_partitions = true;
        self
    }

    /// Add new nullable columns of the input to the table schema instead of failing.
    pub fn with_merge_schema(mut self, merge: bool) -> Self {
        self.merge_schema = merge;
        self
    }

    /// Partition columns for a new table (must match an existing table's).
    pub fn with_partition_columns<S: Into<String>>(
        mut self,
        columns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.partition_columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// A table property (`delta.*` or a user key) for a new table.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The description of a new table.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The name of a new table.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Record an idempotent application transaction with the commit.
    pub fn with_app_transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.app_transaction = Some((app_id.into(), version));
        self
    }

    /// Write `batches` and commit.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for columns that do not fit the schema (unless merging);
    /// [`Error::ConstraintViolation`] naming the constraint and the count of violating rows
    /// (nothing is committed then); [`Error::Conflict`] when a concurrent commit clashes.
    pub async fn execute(
        self,
        batches: BoxStream<'_, Result<RecordBatch>>,
    ) -> Result<OperationReport> {
        let mut batches = batches.peekable();
        let existing = match self.table.snapshot().await {
            Ok(s) => Some(s),
            Err(Error::NotATable { .. }) => None,
            Err(e) => return Err(e),
        };
        let first_schema = match std::pin::Pin::new(&mut batches).peek().await {
            Some(Ok(b)) => Some(b.schema()),
            Some(Err(_)) | None => None,
        };
        let (mut txn, schema, partition_columns, metadata) = match &existing {
            None => {
                let input = first_schema.ok_or_else(|| {
                    Error::invalid("cannot create a table from an empty input (no batches)")
                })?;
                let mut schema = from_arrow_schema(&input)?;
                let partition_columns = self.partition_columns.clone().unwrap_or_default();
                let (protocol, metadata) = new_table_actions(
                    &self.table,
                    &mut schema,
                    &partition_columns,
                    &self.properties,
                    self.name.clone(),
                    self.description.clone(),
                )?;
                let mut txn = self
                    .table
                    .create_transaction()
                    .with_operation("CREATE TABLE AS SELECT");
                txn.set_protocol(protocol);
                txn.set_metadata(metadata.clone());
                (txn, schema, partition_columns, metadata)
            }
            Some(snapshot) => {
                if let Some(cols) = &self.partition_columns
                    && cols != snapshot.partition_columns()
                {
                    return Err(Error::invalid(format!(
                        "the table is partitioned by {:?}, not {:?}",
                        snapshot.partition_columns(),
                        cols
                    )));
                }
                let mut schema = snapshot.schema().clone();
                let mut metadata = snapshot.metadata().clone();
                let mut txn = self.table.transaction(snapshot).with_operation("WRITE");
                if let Some(input) = &first_schema {
                    let added = new_columns(&schema, input, self.merge_schema)?;
                    if !added.is_empty() {
                        crate::column_mapping::add_columns(
                            &mut metadata,
                            &mut schema,
                            added,
                            self.table.clock().as_ref(),
                        )?;
                        txn.set_metadata(metadata.clone());
                    }
                }
                (txn, schema, snapshot.partition_columns().to_vec(), metadata)
            }
        };
        let mode_name = match self.mode {
            SaveMode::Append => "Append",
            SaveMode::Overwrite => "Overwrite",
        };
        txn = txn.with_parameter("mode", mode_name).with_parameter(
            "partitionBy",
            serde_json::to_string(&partition_columns).unwrap_or_default(),
        );
        if let Some(p) = &self.replace_where {
            txn = txn.with_parameter("predicate", p.to_string());
        }
        if self.dynamic_partitions {
            txn = txn.with_parameter("partitionOverwriteMode", "DYNAMIC");
        }

        // Write the new rows, checking constraints and replaceWhere over all of them.
        let arrow_schema: SchemaRef = Arc::new(to_arrow_schema(&schema)?);
        let checks = Constraints::of(
            &schema,
            &metadata,
            &arrow_schema,
            self.replace_where.as_ref(),
        )?;
        let mut writer = new_writer(&self.table, &schema, &partition_columns, &metadata, None)?;
        let mut violations = vec![0u64; checks.len()];
        let mut rows_written = 0u64;
        let outcome: Result<()> = async {
            while let Some(batch) = batches.next().await {
                let batch = conform_input(&batch?, &arrow_schema)?;
                checks.count(&batch, &mut violations)?;
                rows_written += u64::try_from(batch.num_rows()).unwrap_or(u64::MAX);
                writer.write(&batch).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            writer.abort().await.ok();
            return Err(e);
        }
        if let Some(err) = checks.first_violation(&violations) {
            writer.abort().await.ok();
            return Err(err);
        }
        let adds = writer.finish().await?;
        let mut report = OperationReport {
            files_added: adds.len() as u64,
            rows_written,
            bytes_added: adds
                .iter()
                .map(|a| u64::try_from(a.size).unwrap_or(0))
                .sum(),
            ..OperationReport::default()
        };

        // What the overwrite replaces.
        let mut replaced: Option<Staged> = None;
        if let (SaveMode::Overwrite, Some(snapshot)) = (self.mode, &existing) {
            if let Some(predicate) = &self.replace_where {
                // The new rows would have to join the change data of the replaced ones.
                let deleted = match refuse_cdf_rewrites(snapshot, "overwrite with replaceWhere") {
                    Ok(()) => delete_rows(&self.table, snapshot, Some(predicate), &mut txn).await,
                    Err(e) => Err(e),
                };
                match deleted {
                    Ok((d, staged)) => {
                        report.absorb_delete(&d);
                        replaced = Some(staged);
                    }
                    Err(e) => {
                        abort_adds(&self.table, &adds).await;
                        return Err(e);
                    }
                }
            } else if self.dynamic_partitions {
                let touched: HashSet<Vec<(String, Option<String>)>> =
                    adds.iter().map(partition_key).collect();
                let replaced: Vec<Add> = snapshot
                    .files()
                    .iter()
                    .filter(|f| touched.contains(&partition_key(f)))
                    .cloned()
                    .collect();
                report.files_removed = replaced.len() as u64;
                report.bytes_removed = replaced
                    .iter()
                    .map(|a| u64::try_from(a.size).unwrap_or(0))
                    .sum();
                report.rows_affected = replaced.iter().map(|a| file_rows(snapshot, a)).sum();
                txn.read_data(None, replaced.iter().map(|a| a.path.clone()));
                txn.remove_files(replaced, true);
            } else {
                let all = snapshot.files().to_vec();
                report.files_removed = all.len() as u64;
                report.bytes_removed = all.iter().map(|a| u64::try_from(a.size).unwrap_or(0)).sum();
                report.rows_affected = all.iter().map(|a| file_rows(snapshot, a)).sum();
                txn.read_data(None, all.iter().map(|a| a.path.clone()));
                txn.remove_files(all, true);
            }
        }
        let changes_nothing = adds.is_empty()
            && report.files_removed == 0
            && report.deletion_vectors_added == 0
            && existing.is_some()
            && self.app_transaction.is_none()
            && !txn
                .actions()
                .iter()
                .any(|a| matches!(a, crate::action::Action::Metadata(_)));
        if changes_nothing {
            return Ok(report);
        }
        txn.add_files(adds.clone());
        if let Some((app, version)) = &self.app_transaction {
            txn.set_app_transaction(app.clone(), *version);
        }
        let txn = report.record_metrics(txn);
        match txn.commit().await {
            Ok(committed) => Ok(report.committed(&committed)),
            Err(e @ Error::CommitOutcomeUnknown { .. }) => Err(e),
            Err(e) => {
                abort_adds(&self.table, &adds).await;
                if let Some(staged) = replaced {
                    staged.abort(&self.table).await;
                }
                Err(e)
            }
        }
    }
}

impl OperationReport {
    fn absorb_delete(&mut self, d: &OperationReport) {
        self.files_added += d.files_added;
        self.files_removed += d.files_removed;
        self.rows_written += d.rows_written;
        self.rows_affected += d.rows_affected;
        self.rows_copied += d.rows_copied;
        self.bytes_added += d.bytes_added;
        self.bytes_removed += d.bytes_removed;
        self.deletion_vectors_added += d.deletion_vectors_added;
        self.deletion_vectors_removed += d.deletion_vectors_removed;
        self.change_files_added += d.change_files_added;
    }

    fn record_metrics(&self, txn: Transaction) -> Transaction {
        txn.with_metric("numFiles", self.files_added)
            .with_metric("numAddedFiles", self.files_added)
            .with_metric("numRemovedFiles", self.files_removed)
            .with_metric("numOutputRows", self.rows_written)
            .with_metric("numOutputBytes", self.bytes_added)
            .with_metric("numRemovedBytes", self.bytes_removed)
            .with_metric("numAffectedRows", self.rows_affected)
            .with_metric("numCopiedRows", self.rows_copied)
            .with_metric("numDeletionVectorsAdded", self.deletion_vectors_added)
            .with_metric("numDeletionVectorsRemoved", self.deletion_vectors_removed)
            .with_metric("numAddedChangeFiles", self.change_files_added)
    }

    /// Take the file counts of a staged rewrite.
    fn absorb_staged(&mut self, staged: &Staged) {
        self.files_added += staged.files_added;
        self.bytes_added += staged.bytes_added;
        self.files_removed += staged.files_removed;
        self.bytes_removed += staged.bytes_removed;
        self.deletion_vectors_added += staged.deletion_vectors_added;
        self.deletion_vectors_removed += staged.deletion_vectors_removed;
        self.change_files_added += staged.change_files_added;
    }

    fn committed(mut self, committed: &Committed) -> Self {
        self.version = Some(committed.version);
        self.attempts = committed.attempts;
        self
    }
}

/// Partition values of a file as a comparable key.
fn partition_key(add: &Add) -> Vec<(String, Option<String>)> {
    let mut key: Vec<_> = add
        .partition_values
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    key.sort();
    key
}

pub(crate) async fn abort_adds(table: &Table, adds: &[Add]) {
    let locations = adds
        .iter()
        .filter_map(|add| {
            table
                .storage()
                .resolve_file(&add.path, "aborted write")
                .ok()
        })
        .collect();
    table.storage().delete_many(locations).await.ok();
}

/// Protocol and metadata for a new table: the least protocol its features need. With column
/// mapping asked for, `schema` gains its ids and physical names.
fn new_table_actions(
    table: &Table,
    schema: &mut StructType,
    partition_columns: &[String],
    properties: &HashMap<String, String>,
    name: Option<String>,
    description: Option<String>,
) -> Result<(Protocol, Metadata)> {
    for column in partition_columns {
        let field = schema.field(column).ok_or_else(|| {
            Error::invalid(format!("partition column `{column}` is not in the input"))
        })?;
        if !matches!(field.data_type, DataType::Primitive(_)) {
            return Err(Error::invalid(format!(
                "partition column `{column}` must have a primitive type"
            )));
        }
    }
    if partition_columns.len() == schema.fields.len() && !partition_columns.is_empty() {
        return Err(Error::invalid(
            "a table needs at least one column that is not a partition column",
        ));
    }
    let mut reader_features = Vec::new();
    let mut writer_features = Vec::new();
    if uses_timestamp_ntz(schema) {
        reader_features.push("timestampNtz".to_owned());
        writer_features.push("timestampNtz".to_owned());
    }
    let flag = |key: &str| {
        properties
            .get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    if flag("delta.enableDeletionVectors") {
        reader_features.push("deletionVectors".to_owned());
        writer_features.push("deletionVectors".to_owned());
    }
    if flag("delta.enableInCommitTimestamps") {
        writer_features.push("inCommitTimestamp".to_owned());
    }
    if flag("delta.enableChangeDataFeed") {
        writer_features.push("changeDataFeed".to_owned());
    }
    if properties
        .keys()
        .any(|k| k.starts_with("delta.constraints."))
    {
        writer_features.push("checkConstraints".to_owned());
    }
    let mapping = properties
        .get(crate::schema::COLUMN_MAPPING_MODE_KEY)
        .map_or(Ok(ColumnMappingMode::None), |m| ColumnMappingMode::parse(m))?;
    if mapping != ColumnMappingMode::None {
        reader_features.push("columnMapping".to_owned());
        writer_features.push("columnMapping".to_owned());
    }
    let protocol = if reader_features.is_empty() && writer_features.is_empty() {
        Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        }
    } else {
        // Table features: list every legacy feature writer version 2 implies too.
        let mut writer = vec!["appendOnly".to_owned(), "invariants".to_owned()];
        writer.extend(writer_features);
        Protocol {
            min_reader_version: if reader_features.is_empty() { 1 } else { 3 },
            min_writer_version: 7,
            reader_features: (!reader_features.is_empty()).then_some(reader_features),
            writer_features: Some(writer),
        }
    };
    let mut metadata = Metadata {
        id: table.clock().unique_id().to_string(),
        name,
        description,
        format: crate::action::Format::default(),
        schema_string: schema.to_json_string(),
        partition_columns: partition_columns.to_vec(),
        created_time: Some(table.clock().now_ms()),
        configuration: properties
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
    };
    crate::column_mapping::map_new_table(&mut metadata, schema, table.clock().as_ref())?;
    Ok((protocol, metadata))
}

fn uses_timestamp_ntz(schema: &StructType) -> bool {
    fn walk(dt: &DataType) -> bool {
        match dt {
            DataType::Primitive(PrimitiveType::TimestampNtz) => true,
            DataType::Primitive(_) => false,
            DataType::Struct(s) => s.fields.iter().any(|f| walk(&f.data_type)),
            DataType::Array(a) => walk(&a.element_type),
            DataType::Map(m) => walk(&m.key_type) || walk(&m.value_type),
        }
    }
    schema.fields.iter().any(|f| walk(&f.data_type))
}

/// Columns of `input` that the table lacks: added (nullable) when merging, else an error.
pub(crate) fn new_columns(
    schema: &StructType,
    input: &Schema,
    merge: bool,
) -> Result<Vec<StructField>> {
    let mut added = Vec::new();
    for field in input.fields() {
        if schema.field(field.name()).is_some() {
            continue;
        }
        if !merge {
            return Err(Error::invalid(format!(
                "column `{}` is not in the table schema; write with schema merge to add it",
                field.name()
            )));
        }
        let data_type = crate::schema::data_type_from_arrow(field.data_type())?;
        added.push(StructField::new(field.name().clone(), data_type, true));
    }
    Ok(added)
}

/// Reorder, cast and complete an input batch to the table's logical schema.
fn conform_input(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let input = batch.schema();
    for field in input.fields() {
        if schema.field_with_name(field.name()).is_err()
            && !schema
                .fields()
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(field.name()))
        {
            return Err(Error::invalid(format!(
                "column `{}` is not in the table schema",
                field.name()
            )));
        }
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let index = input.index_of(field.name()).ok().or_else(|| {
            input
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(field.name()))
        });
        let column = match index {
            Some(i) => {
                let column = batch.column(i);
                if column.data_type() == field.data_type() {
                    column.clone()
                } else {
                    let strict = arrow::compute::CastOptions {
                        safe: false,
                        ..arrow::compute::CastOptions::default()
                    };
                    arrow::compute::cast_with_options(column, field.data_type(), &strict).map_err(
                        |e| {
                            Error::invalid(format!(
                                "column `{}` of type {} cannot be written as {}: {e}",
                                field.name(),
                                column.data_type(),
                                field.data_type()
                            ))
                        },
                    )?
                }
            }
            None => arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    output_batch(schema, columns, batch.num_rows())
}

/// `columns` as a batch of `schema`'s fields (every field nullable: the writer checks NOT
/// NULL), with the columns' own types.
pub(crate) fn output_batch(
    schema: &Schema,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| {
            f.as_ref()
                .clone()
                .with_nullable(true)
                .with_data_type(c.data_type().clone())
        })
        .collect();
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

pub(crate) fn new_writer(
    table: &Table,
    schema: &StructType,
    partition_columns: &[String],
    metadata: &Metadata,
    max_buffered_bytes: Option<usize>,
) -> Result<DataWriter> {
    // From `metadata`, not the snapshot: a table being created has none yet.
    let mode = crate::column_mapping::mode_of(metadata)?;
    let mut options = WriterOptions::from_metadata(metadata);
    if let Some(bytes) = max_buffered_bytes {
        options.max_buffered_bytes = bytes;
    }
    DataWriter::new(
        table.storage().clone(),
        schema.clone(),
        partition_columns.to_vec(),
        mode,
        StatsConfig::from_metadata(metadata),
        options,
        table.clock().clone(),
        None,
    )
}

/// Table constraints checked over every written row: NOT NULL columns, column invariants,
/// `delta.constraints.*` CHECKs, and the `replaceWhere` predicate.
pub(crate) struct Constraints {
    checks: Vec<(String, String, Check)>,
}

enum Check {
    NotNull(usize),
    Predicate(BoundExpression),
}

impl Constraints {
    pub(crate) fn of(
        schema: &StructType,
        metadata: &Metadata,
        arrow_schema: &SchemaRef,
        replace_where: Option<&Expression>,
    ) -> Result<Self> {
        let mut checks = Vec::new();
        for (i, field) in schema.fields.iter().enumerate() {
            if !field.nullable {
                checks.push((
                    format!("NOT NULL {}", field.name),
                    format!("{} IS NOT NULL", field.name),
                    Check::NotNull(i),
                ));
            }
            if let Some(invariant) = field
                .metadata
                .get("delta.invariants")
                .and_then(serde_json::Value::as_str)
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| {
                    v.pointer("/expression/expression")
                        .and_then(|e| e.as_str().map(str::to_owned))
                })
            {
                let bound = crate::expression::parse(&invariant)?.bind(arrow_schema)?;
                checks.push((
                    format!("invariant on {}", field.name),
                    invariant,
                    Check::Predicate(bound),
                ));
            }
        }
        let mut names: Vec<_> = metadata
            .configuration
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("delta.constraints.")
                    .map(|n| (n.to_owned(), v.clone()))
            })
            .collect();
        names.sort();
        for (name, expression) in names {
            let expression = expression.unwrap_or_default();
            let bound = crate::expression::parse(&expression)
                .and_then(|e| e.bind(arrow_schema))
                .map_err(|e| {
                    Error::invalid(format!("CHECK constraint {name} cannot be evaluated: {e}"))
                })?;
            checks.push((name, expression, Check::Predicate(bound)));
        }
        if let Some(predicate) = replace_where {
            checks.push((
                "replaceWhere".to_owned(),
                predicate.to_string(),
                Check::Predicate(predicate.bind(arrow_schema)?),
            ));
        }
        Ok(Self { checks })
    }

    pub(crate) fn len(&self) -> usize {
        self.checks.len()
    }

    /// Add the number of rows of `batch` violating each check (not TRUE counts).
    pub(crate) fn count(&self, batch: &RecordBatch, violations: &mut [u64]) -> Result<()> {
        for ((_, _, check), count) in self.checks.iter().zip(violations.iter_mut()) {
            let bad = match check {
                Check::NotNull(i) => batch.column(*i).null_count(),
                Check::Predicate(p) => {
                    let result = p.evaluate(batch)?;
                    result.len() - result.true_count()
                }
            };
            *count += u64::try_from(bad).unwrap_or(u64::MAX);
        }
        Ok(())
    }

    pub(crate) fn first_violation(&self, violations: &[u64]) -> Option<Error> {
        self.checks
            .iter()
            .zip(violations)
            .find(|(_, n)| **n > 0)
            .map(|((name, expression, _), n)| Error::ConstraintViolation {
                name: name.clone(),
                expression: expression.clone(),
                violations: *n,
            })
    }
}

/// Rows of a batch for which `mask` is TRUE.
pub(crate) fn true_mask(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    }
}

/// The candidate files of a DELETE/UPDATE and whether each can be dropped whole.
struct Candidates {
    /// Files all of whose rows match (removed without reading).
    whole: Vec<Add>,
    /// Files that may hold some matching rows (read and rewritten if they do).
    partial: Vec<Add>,
}

/// Split the live files into untouched, wholly matching and partially matching ones.
fn candidates(snapshot: &Snapshot, predicate: Option<&Expression>) -> Result<Candidates> {
    let Some(predicate) = predicate else {
        return Ok(Candidates {
            whole: snapshot.files().to_vec(),
            partial: Vec::new(),
        });
    };
    let scan = snapshot.scan().with_predicate(predicate.clone()).build()?;
    // A file all of whose rows match: the negated predicate prunes it AND no referenced
    // column can be NULL in it (a NULL makes the predicate NULL, and such rows survive).
    let negated = Expression::Not(Box::new(predicate.clone()));
    let inverse = snapshot.scan().with_predicate(negated).build()?;
    let columns = predicate.columns();
    let mut whole = Vec::new();
    let mut partial = Vec::new();
    for (planned, inverse) in scan.planned_files().iter().zip(inverse.planned_files()) {
        if !planned.is_kept() {
            continue;
        }
        let all_match = matches!(inverse.verdict, Verdict::Skip(_))
            && planned.add.deletion_vector.is_none()
            // No referenced value may be NULL: a NULL makes the predicate NULL, and such
            // rows survive a DELETE. Partition values are exact; data columns need stats.
            && columns.iter().all(|c| match planned.partition_value(c) {
                Some(value) => !value.is_null(0),
                None => planned.stats.as_ref().is_some_and(|s| s.null_count.get(c) == Some(&0)),
            });
        if all_match {
            whole.push(planned.add.clone());
        } else {
            partial.push(planned.add.clone());
        }
    }
    Ok(Candidates { whole, partial })
}

/// Stage a DELETE of rows matching `predicate` into `txn`: files all of whose rows match are
/// removed unread; files with some matching rows are rewritten without them, or keep their
/// rows behind a deletion vector (see [`crate::rewrite`]). Returns what to delete if the
/// commit fails.
async fn delete_rows(
    table: &Table,
    snapshot: &Snapshot,
    predicate: Option<&Expression>,
    txn: &mut Transaction,
) -> Result<(OperationReport, Staged)> {
    let Candidates {
        mut whole,
        mut partial,
    } = candidates(snapshot, predicate)?;
    let mut rewriter = Rewriter::new(
        table,
        snapshot,
        snapshot.schema(),
        snapshot.metadata(),
        None,
    )?;
    // A change feed reader reads only the change data of a version that has any: once some
    // is written, the rows of wholly deleted files must be in it too.
    if rewriter.writes_change_data() && predicate.is_some() && !partial.is_empty() {
        partial.append(&mut whole);
    }
    let mut report = OperationReport::default();
    let table_schema = snapshot.arrow_schema();
    let bound = predicate.map(|p| p.bind(&table_schema)).transpose()?;
    for add in &whole {
        report.rows_affected += file_rows(snapshot, add);
    }
    let rewrite: Result<()> = async {
        for add in &partial {
            let mut stream = snapshot
                .scan()
                .build_for(std::slice::from_ref(add))?
                .execute();
            let mut matched_in_file = 0u64;
            let mut batches = Vec::new();
            while let Some(batch) = stream.try_next().await? {
                let mask = match &bound {
                    Some(p) => true_mask(&p.evaluate(&batch)?),
                    None => BooleanArray::from(vec![true; batch.num_rows()]),
                };
                matched_in_file += u64::try_from(mask.true_count()).unwrap_or(u64::MAX);
                batches.push((batch, mask));
            }
            if matched_in_file == 0 {
                continue;
            }
            report.rows_affected += matched_in_file;
            let mut edit = rewriter.begin(add);
            for (batch, mask) in &batches {
                let fates: Vec<RowFate> = mask
                    .values()
                    .iter()
                    .map(|m| if m { RowFate::Deleted } else { RowFate::Kept })
                    .collect();
                let kept = filter_record_batch(batch, &not(mask)?)?;
                rewriter.batch(&mut edit, batch, &kept, &fates).await?;
            }
            rewriter.end(edit).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = rewrite {
        rewriter.abort().await;
        return Err(e);
    }
    let mut rewritten = rewriter.finish().await?;
    rewritten.removed.extend(whole);
    report.rows_copied = rewritten.counts.rows_copied;
    report.rows_written = rewritten.counts.rows_written;
    let staged = rewritten.stage(table, txn).await?;
    report.absorb_staged(&staged);
    txn.read_data(predicate.cloned(), staged.removed_paths.iter().cloned());
    Ok((report, staged))
}

/// Physical rows of a file minus the rows its deletion vector hides (from statistics).
pub(crate) fn file_rows(snapshot: &Snapshot, add: &Add) -> u64 {
    let _ = snapshot;
    add.logical_rows().unwrap_or(0)
}

pub(crate) fn refuse_cdf_rewrites(snapshot: &Snapshot, operation: &str) -> Result<()> {
    if snapshot
        .property("delta.enableChangeDataFeed")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(Error::Unsupported {
            kind: "operation",
            feature: format!(
                "{operation} on a table with the change data feed enabled (cdc files are not written yet)"
            ),
        });
    }
    Ok(())
}

impl Table {
    /// DELETE the rows matching `predicate` (all rows when `None`), copy-on-write.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a predicate that does not bind; [`Error::Conflict`];
    /// [`Error::ConstraintViolation`] on an append-only table.
    pub async fn delete(&self, predicate: Option<Expression>) -> Result<OperationReport> {
        let snapshot = self.snapshot().await?;
        let mut txn = self.transaction(&snapshot).with_operation("DELETE");
        txn = txn.with_parameter(
            "predicate",
            serde_json::to_string(&[predicate
                .as_ref()
                .map_or_else(|| "true".to_owned(), ToString::to_string)])
            .unwrap_or_default(),
        );
        let (report, staged) = delete_rows(self, &snapshot, predicate.as_ref(), &mut txn).await?;
        if staged.removed_paths.is_empty() {
            return Ok(report);
        }
        let txn = report
            .record_metrics(txn)
            .with_metric("numDeletedRows", report.rows_affected);
        match txn.commit().await {
            Ok(committed) => Ok(report.committed(&committed)),
            Err(e @ Error::CommitOutcomeUnknown { .. }) => Err(e),
            Err(e) => {
                staged.abort(self).await;
                Err(e)
            }
        }
    }

    /// UPDATE: for rows matching `predicate` (all when `None`), set each column to the
    /// value of its expression (any value expression: literals, columns, arithmetic, CASE,
    /// COALESCE, CAST; see [`crate::expression::parse_value`]), copy-on-write.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for unknown columns or values of the wrong type;
    /// [`Error::ConstraintViolation`] when updated rows break a constraint; conflicts.
    pub async fn update(
        &self,
        assignments: &[(String, Expression)],
        predicate: Option<Expression>,
    ) -> Result<OperationReport> {
        let snapshot = self.snapshot().await?;
        let schema = snapshot.schema().clone();
        let arrow_schema = snapshot.arrow_schema();
        for (column, _) in assignments {
            if schema.field(column).is_none() {
                return Err(Error::invalid(format!("unknown column `{column}` in SET")));
            }
            if snapshot.partition_columns().contains(column) {
                return Err(Error::invalid(format!(
                    "cannot UPDATE partition column `{column}`"
                )));
            }
        }
        let values: Vec<(usize, Value)> = assignments
            .iter()
            .map(|(column, expr)| {
                let index = arrow_schema.index_of(
                    &schema
                        .field(column)
                        .map(|f| f.name.clone())
                        .unwrap_or_default(),
                )?;
                Ok((
                    index,
                    Value::bind(
                        expr,
                        column,
                        arrow_schema.field(index).data_type(),
                        &arrow_schema,
                    )?,
                ))
            })
            .collect::<Result<_>>()?;
        let bound = predicate
            .as_ref()
            .map(|p| p.bind(&arrow_schema))
            .transpose()?;
        let checks = Constraints::of(&schema, snapshot.metadata(), &arrow_schema, None)?;
        let mut violations = vec![0u64; checks.len()];
        let Candidates { whole, partial } = candidates(&snapshot, predicate.as_ref())?;
        let mut txn = self
            .transaction(&snapshot)
            .with_operation("UPDATE")
            .with_parameter(
                "predicate",
                serde_json::to_string(&[predicate
                    .as_ref()
                    .map_or_else(|| "true".to_owned(), ToString::to_string)])
                .unwrap_or_default(),
            );
        let mut rewriter = Rewriter::new(self, &snapshot, &schema, snapshot.metadata(), None)?;
        let mut report = OperationReport::default();
        let outcome: Result<()> = async {
            for add in whole.iter().chain(&partial) {
                let mut stream = snapshot
                    .scan()
                    .build_for(std::slice::from_ref(add))?
                    .execute();
                let mut batches = Vec::new();
                let mut matched = 0u64;
                while let Some(batch) = stream.try_next().await? {
                    let mask = match &bound {
                        Some(p) => true_mask(&p.evaluate(&batch)?),
                        None => BooleanArray::from(vec![true; batch.num_rows()]),
                    };
                    let n = u64::try_from(mask.true_count()).unwrap_or(u64::MAX);
                    matched += n;
                    if n == 0 {
                        batches.push((batch.clone(), batch, mask));
                        continue;
                    }
                    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                    for (index, value) in &values {
                        let new = value.evaluate(&batch, &mask)?;
                        columns[*index] = zip(&mask, &new, &batch.column(*index))?;
                    }
                    let updated = RecordBatch::try_new(batch.schema(), columns).or_else(|_| {
                        let fields: Vec<_> = batch
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| f.as_ref().clone().with_nullable(true))
                            .collect();
                        RecordBatch::try_new(
                            Arc::new(Schema::new(fields)),
                            batch.columns().to_vec(),
                        )
                    })?;
                    // Only changed rows can break a constraint: the others were checked when
                    // they were written.
                    checks.count(&filter_record_batch(&updated, &mask)?, &mut violations)?;
                    batches.push((batch, updated, mask));
                }
                if matched == 0 {
                    continue;
                }
                report.rows_affected += matched;
                let mut edit = rewriter.begin(add);
                for (original, updated, mask) in &batches {
                    let fates: Vec<RowFate> = mask
                        .values()
                        .iter()
                        .map(|m| if m { RowFate::Updated } else { RowFate::Kept })
                        .collect();
                    rewriter.batch(&mut edit, original, updated, &fates).await?;
                }
                rewriter.end(edit).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            rewriter.abort().await;
            return Err(e);
        }
        if let Some(err) = checks.first_violation(&violations) {
            rewriter.abort().await;
            return Err(err);
        }
        let rewritten = rewriter.finish().await?;
        if rewritten.is_empty() {
            rewritten.abort(self).await;
            return Ok(report);
        }
        report.rows_copied = rewritten.counts.rows_copied;
        report.rows_written = rewritten.counts.rows_written;
        let staged = rewritten.stage(self, &mut txn).await?;
        report.absorb_staged(&staged);
        txn.read_data(predicate.clone(), staged.removed_paths.iter().cloned());
        let txn = report
            .record_metrics(txn)
            .with_metric("numUpdatedRows", report.rows_affected);
        match txn.commit().await {
            Ok(committed) => Ok(report.committed(&committed)),
            Err(e @ Error::CommitOutcomeUnknown { .. }) => Err(e),
            Err(e) => {
                staged.abort(self).await;
                Err(e)
            }
        }
    }

    /// Set table properties (`delta.*` or user keys) in a metadata-only commit.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for properties this engine cannot honour; conflicts.
    pub async fn set_properties(&self, properties: &[(String, String)]) -> Result<Committed> {
        let snapshot = self.snapshot().await?;
        let mut metadata = snapshot.metadata().clone();
        let mut protocol = snapshot.protocol().clone();
        let mut upgraded = false;
        for (key, value) in properties {
            if key == crate::schema::COLUMN_MAPPING_MODE_KEY {
                let current = snapshot.column_mapping();
                let wanted = ColumnMappingMode::parse(value)?;
                if wanted == current {
                    continue;
                }
                if (current, wanted) != (ColumnMappingMode::None, ColumnMappingMode::Name) {
                    return Err(Error::invalid(format!(
                        "changing delta.columnMapping.mode from {current} to {wanted} is not supported (only none to name, as in Spark)"
                    )));
                }
                let mut schema = snapshot.schema().clone();
                crate::column_mapping::enable_name_mode(
                    &mut metadata,
                    &mut schema,
                    self.clock().as_ref(),
                );
                if let Some(next) =
                    crate::table_features::enable(&protocol, &metadata, "columnMapping", true)
                {
                    protocol = next;
                    upgraded = true;
                }
                continue;
            }
            if key == crate::column_mapping::MAX_COLUMN_ID_KEY {
                return Err(Error::invalid(format!(
                    "{key} is maintained by the engine and cannot be set"
                )));
            }
            metadata
                .configuration
                .insert(key.clone(), Some(value.clone()));
        }
        // Properties that turn on a table feature upgrade the protocol in the same commit.
        for (key, feature, reader) in [
            ("delta.enableDeletionVectors", "deletionVectors", true),
            ("delta.enableChangeDataFeed", "changeDataFeed", false),
        ] {
            let on = properties
                .iter()
                .any(|(k, v)| k == key && v.eq_ignore_ascii_case("true"));
            if on
                && let Some(next) =
                    crate::table_features::enable(&protocol, &metadata, feature, reader)
            {
                protocol = next;
                upgraded = true;
            }
        }
        let mut txn = self
            .transaction(&snapshot)
            .with_operation("SET TBLPROPERTIES")
            .with_parameter(
                "properties",
                serde_json::to_string(&properties.iter().cloned().collect::<HashMap<_, _>>())
                    .unwrap_or_default(),
            );
        if upgraded {
            txn.set_protocol(protocol);
        }
        txn.set_metadata(metadata);
        txn.commit().await
    }

    /// Add a CHECK constraint after validating every existing row against it.
    ///
    /// # Errors
    /// [`Error::ConstraintViolation`] with the count of existing rows that break it.
    pub async fn add_constraint(&self, name: &str, expression: &str) -> Result<Committed> {
        let snapshot = self.snapshot().await?;
        let key = format!("delta.constraints.{name}");
        if snapshot.property(&key).is_some() {
            return Err(Error::invalid(format!("constraint {name} already exists")));
        }
        let parsed = crate::expression::parse(expression)?;
        let bound = parsed.bind(&snapshot.arrow_schema())?;
        let mut stream = snapshot.scan().build()?.execute();
        let mut violations = 0u64;
        while let Some(batch) = stream.try_next().await? {
            let result = bound.evaluate(&batch)?;
            violations += u64::try_from(result.len() - result.true_count()).unwrap_or(u64::MAX);
        }
        if violations > 0 {
            return Err(Error::ConstraintViolation {
                name: name.to_owned(),
                expression: expression.to_owned(),
                violations,
            });
        }
        let mut metadata = snapshot.metadata().clone();
        metadata
            .configuration
            .insert(key, Some(expression.to_owned()));
        let mut txn = self
            .transaction(&snapshot)
            .with_operation("ADD CONSTRAINT")
            .with_parameter("name", name)
            .with_parameter("expr", expression);
        let protocol = snapshot.protocol();
        let has_feature = crate::table_features::writer_features(protocol)
            .iter()
            .any(|f| f == "checkConstraints");
        if !has_feature {
            let mut upgraded = protocol.clone();
            if upgraded.min_writer_version < 7 {
                upgraded.min_writer_version = upgraded.min_writer_version.max(3);
            } else if let Some(features) = &mut upgraded.writer_features {
                features.push("checkConstraints".to_owned());
            }
            txn.set_protocol(upgraded);
        }
        txn.set_metadata(metadata);
        // Rows appended concurrently were not validated: any concurrent data conflicts.
        txn.read_data(None, Vec::<String>::new());
        txn.commit().await
    }
}

/// A value for `SET column = value`: any value expression of the expression language, bound with
/// the column's type as its target (literals take that type; the result is converted to it under
/// store assignment, see [`Expression::bind_value`]).
struct Value {
    column: String,
    bound: BoundValue,
}

impl Value {
    fn bind(
        expr: &Expression,
        column: &str,
        target: &arrow::datatypes::DataType,
        schema: &SchemaRef,
    ) -> Result<Self> {
        let bound = expr
            .bind_value(schema, Some(target))
            .map_err(|e| Self::in_set(column, e))?;
        Ok(Self {
            column: column.to_owned(),
            bound,
        })
    }

    /// The new values of the rows selected by `mask` (NULL elsewhere); rows not selected are not
    /// computed, so they cannot fail (an overflow in a row the WHERE clause excludes is no error).
    fn evaluate(&self, batch: &RecordBatch, mask: &BooleanArray) -> Result<ArrayRef> {
        self.bound
            .evaluate_where(batch, mask)
            .map_err(|e| Self::in_set(&self.column, e))
    }

    fn in_set(column: &str, error: Error) -> Error {
        match error {
            Error::InvalidArgument { message } => {
                Error::invalid(format!("SET `{column}`: {message}"))
            }
            other => other,
        }
    }
}
