//! Input files of `table write`: JSON lines, CSV and parquet, read one after the other as
//! a stream of Arrow batches that all have one schema (the *target* schema).
//!
//! Planning ([`InputPlan::new`]) reads a little of every file: the first
//! [`INFER_RECORDS`] records of each JSON and CSV file (to infer column types) and each
//! parquet footer. The target schema is then:
//!
//! - for a new table: every input column, in order of first appearance, with the types
//!   merged across files (integers and floats widen to `double`; other clashes between
//!   text-format files fall back to `string`) and made storable in Delta (`NULL`-only
//!   columns become `string`, unsigned integers widen, CSV timestamps without an offset are
//!   read as UTC);
//! - for an existing table: the table's columns with the table's types, plus (only with
//!   `--merge-schema`) input columns the table lacks. Without it such a column is an
//!   error naming the file.
//!
//! Reading ([`InputPlan::batches`]) is lazy and sequential: one file at a time, one batch
//! at a time, so memory does not grow with the input. JSON and CSV are parsed straight
//! into the target types (JSON strings into the table's timestamp, date and decimal
//! columns, for example); parquet columns are cast, and a value that does not convert is
//! an error (never a silent NULL).
//!
//! Errors name the input file and, where known, the line (JSON, CSV) or row (parquet).
//! They never quote values: the Arrow readers' messages, which do, are rewritten.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use arrow::json::reader::{Decoder, ReaderBuilder, infer_json_schema_from_iterator};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::cli::InputFormat;

/// Records (JSON objects, CSV rows) of each file read to infer column types.
pub const INFER_RECORDS: usize = 1000;

/// Rows per batch handed to the writer. Large enough that splitting a batch by partition still
/// leaves useful slices when a write touches thousands of partitions.
pub const BATCH_ROWS: usize = 65_536;

/// One input file as named on the command line.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The name as given (used in messages).
    pub name: String,
    /// The file's format.
    pub format: InputFormat,
}

impl InputFile {
    /// An input file; its format is `format`, or else follows from its extension.
    ///
    /// # Errors
    /// When there is no `format` and the extension is not a known one.
    pub fn new(name: &str, format: Option<InputFormat>) -> Result<Self> {
        let format = match format {
            Some(format) => format,
            None => format_of(name).with_context(|| {
                format!(
                    "cannot tell the format of input file {name} from its extension \
                     (.jsonl, .ndjson, .json, .csv or .parquet): use --format"
                )
            })?,
        };
        Ok(Self {
            name: name.to_owned(),
            format,
        })
    }

    fn open(&self) -> Result<File> {
        File::open(PathBuf::from(&self.name))
            .with_context(|| format!("cannot open input file {}", self.name))
    }
}

/// The format implied by a file name's extension.
#[must_use]
pub fn format_of(name: &str) -> Option<InputFormat> {
    let extension = std::path::Path::new(name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    match extension.as_str() {
        "jsonl" | "ndjson" | "json" => Some(InputFormat::Jsonl),
        "csv" => Some(InputFormat::Csv),
        "parquet" => Some(InputFormat::Parquet),
        _ => None,
    }
}

/// How one file is read.
#[derive(Debug)]
enum Reading {
    /// JSON lines decoded with this schema (the target schema, with the file's spelling of
    /// column names).
    Json(SchemaRef),
    /// CSV decoded with this schema (the file's header, target types).
    Csv(SchemaRef),
    /// Parquet decoded with its own schema, then cast.
    Parquet,
}

/// The input files and how to read each into the target schema.
#[derive(Debug)]
pub struct InputPlan {
    files: Vec<(InputFile, Reading)>,
    target: SchemaRef,
    /// Names (in the target schema's spelling) of the columns some input file holds.
    present: Vec<String>,
}

/// The columns one file holds (inferred or declared), for planning.
struct FileColumns {
    fields: Vec<FieldRef>,
    /// Types come from text (JSON, CSV): clashes may fall back to string.
    from_text: bool,
}

impl InputPlan {
    /// Plan reading `files` into a table whose current Arrow schema is `table` (`None`
    /// when the table does not exist yet).
    ///
    /// # Errors
    /// Unreadable or malformed files (named, with the line), input columns missing from
    /// an existing table without `merge_schema`, columns whose types clash between files,
    /// and inputs without any column.
    pub fn new(files: Vec<InputFile>, table: Option<&Schema>, merge_schema: bool) -> Result<Self> {
        let mut columns = Vec::with_capacity(files.len());
        for file in &files {
            let fields = match file.format {
                InputFormat::Jsonl => infer_json(file)?,
                InputFormat::Csv => infer_csv(file)?,
                InputFormat::Parquet => parquet_schema(file)?,
            };
            check_unique(file, &fields)?;
            columns.push(FileColumns {
                fields,
                from_text: file.format != InputFormat::Parquet,
            });
        }
        let target = target_schema(&files, &columns, table, merge_schema)?;
        let present = target
            .fields()
            .iter()
            .filter(|t| {
                columns.iter().any(|c| {
                    c.fields
                        .iter()
                        .any(|f| f.name().eq_ignore_ascii_case(t.name()))
                })
            })
            .map(|f| f.name().clone())
            .collect();
        let plan = files
            .into_iter()
            .zip(&columns)
            .map(|(file, columns)| {
                let reading = match file.format {
                    InputFormat::Jsonl => Reading::Json(json_read_schema(&target, columns)),
                    InputFormat::Csv => Reading::Csv(csv_read_schema(&target, columns)),
                    InputFormat::Parquet => Reading::Parquet,
                };
                (file, reading)
            })
            .collect();
        Ok(Self {
            files: plan,
            target,
            present,
        })
    }

    /// The target columns that some input file holds (the others are all NULL), in target
    /// order. A MERGE source keeps only these, so `UPDATE *` never sets absent columns.
    #[must_use]
    pub fn present_columns(&self) -> &[String] {
        &self.present
    }

    /// The schema of every batch [`InputPlan::batches`] yields (all columns nullable).
    #[must_use]
    pub fn target(&self) -> &SchemaRef {
        &self.target
    }

    /// Read every file in order. The iterator stops after the first error.
    pub fn batches(self) -> InputBatches {
        InputBatches {
            files: self.files.into(),
            target: self.target,
            current: None,
            failed: false,
        }
    }
}

/// Column names must be unique ignoring case (Delta column names are case-insensitive).
fn check_unique(file: &InputFile, fields: &[FieldRef]) -> Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if let Some(other) = fields[..i]
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(field.name()))
        {
            bail!(
                "input file {}: columns `{}` and `{}` differ only in case (Delta column names \
                 are case-insensitive)",
                file.name,
                other.name(),
                field.name()
            );
        }
    }
    Ok(())
}

fn find_field<'a>(fields: &'a [FieldRef], name: &str) -> Option<&'a FieldRef> {
    fields
        .iter()
        .find(|f| f.name() == name)
        .or_else(|| fields.iter().find(|f| f.name().eq_ignore_ascii_case(name)))
}

fn target_schema(
    files: &[InputFile],
    columns: &[FileColumns],
    table: Option<&Schema>,
    merge_schema: bool,
) -> Result<SchemaRef> {
    // Every input column, types merged across files: (field, from_text, first file).
    let mut merged: Vec<(FieldRef, bool, usize)> = Vec::new();
    for (index, file_columns) in columns.iter().enumerate() {
        for field in &file_columns.fields {
            let existing = merged
                .iter_mut()
                .find(|(f, _, _)| f.name().eq_ignore_ascii_case(field.name()));
            match existing {
                None => merged.push((field.clone(), file_columns.from_text, index)),
                Some((known, known_text, first)) => {
                    let text = *known_text && file_columns.from_text;
                    let data_type = merge_types(known.data_type(), field.data_type(), text)
                        .with_context(|| {
                            format!(
                                "column `{}` is {} in input file {} but {} in input file {}",
                                field.name(),
                                known.data_type(),
                                files[*first].name,
                                field.data_type(),
                                files[index].name
                            )
                        })?;
                    *known = Arc::new(known.as_ref().clone().with_data_type(data_type));
                    *known_text = text;
                }
            }
        }
    }

    let mut fields: Vec<Field> = match table {
        Some(table) => table
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect(),
        None => Vec::new(),
    };
    for (field, _, first) in &merged {
        if fields
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(field.name()))
        {
            continue;
        }
        if table.is_some() && !merge_schema {
            bail!(
                "input file {} has column `{}`, which is not in the table schema (use \
                 --merge-schema to add it)",
                files[*first].name,
                field.name()
            );
        }
        fields.push(Field::new(
            field.name(),
            storable_type(field.data_type(), files[*first].format == InputFormat::Csv),
            true,
        ));
    }
    if fields.is_empty() {
        bail!("the input files hold no columns (no JSON objects, no CSV header): nothing to write");
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// The type two files' columns of one name get. `None` when they cannot be reconciled.
fn merge_types(a: &DataType, b: &DataType, from_text: bool) -> Option<DataType> {
    use DataType as D;
    if a == b {
        return Some(a.clone());
    }
    let merged = match (a, b) {
        (D::Null, other) | (other, D::Null) => other.clone(),
        (x, y) if x.is_integer() && y.is_integer() => D::Int64,
        (x, y) if x.is_numeric() && y.is_numeric() => D::Float64,
        (D::Timestamp(_, tz_a), D::Timestamp(_, tz_b)) => {
            D::Timestamp(TimeUnit::Microsecond, tz_a.clone().or_else(|| tz_b.clone()))
        }
        (D::Date32, D::Timestamp(unit, tz)) | (D::Timestamp(unit, tz), D::Date32) if from_text => {
            D::Timestamp(*unit, tz.clone())
        }
        (D::List(x), D::List(y)) => D::List(Arc::new(Field::new(
            x.name(),
            merge_types(x.data_type(), y.data_type(), from_text)?,
            true,
        ))),
        (D::Struct(x), D::Struct(y)) => {
            let mut fields: Vec<Field> = x.iter().map(|f| f.as_ref().clone()).collect();
            for field in y {
                match fields.iter_mut().find(|f| f.name() == field.name()) {
                    Some(known) => {
                        let data_type =
                            merge_types(known.data_type(), field.data_type(), from_text)?;
                        *known = known.clone().with_data_type(data_type).with_nullable(true);
                    }
                    None => fields.push(field.as_ref().clone().with_nullable(true)),
                }
            }
            D::Struct(Fields::from(fields))
        }
        _ if from_text => D::Utf8,
        _ => return None,
    };
    Some(merged)
}

/// A type Delta can store that holds every value of `data_type`.
fn storable_type(data_type: &DataType, csv: bool) -> DataType {
    use DataType as D;
    match data_type {
        D::Null => D::Utf8,
        D::UInt8 => D::Int16,
        D::UInt16 => D::Int32,
        D::UInt32 | D::UInt64 => D::Int64,
        D::Float16 => D::Float32,
        D::Date64 => D::Date32,
        D::LargeUtf8 | D::Utf8View => D::Utf8,
        D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => D::Binary,
        // Delta timestamps are microseconds; an instant with any zone is stored as UTC.
        D::Timestamp(_, Some(_)) => D::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        // CSV text without an offset is read as UTC (the project's session time zone).
        D::Timestamp(_, None) if csv => D::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        D::Timestamp(_, None) => D::Timestamp(TimeUnit::Microsecond, None),
        D::Dictionary(_, value) => storable_type(value, csv),
        D::List(element) | D::LargeList(element) | D::FixedSizeList(element, _) => {
            D::List(Arc::new(Field::new(
                "element",
                storable_type(element.data_type(), csv),
                true,
            )))
        }
        D::Struct(fields) => D::Struct(
            fields
                .iter()
                .map(|f| Field::new(f.name(), storable_type(f.data_type(), csv), true))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The target schema with column names spelled as in this file (JSON keys match exactly).
fn json_read_schema(target: &SchemaRef, columns: &FileColumns) -> SchemaRef {
    let fields: Vec<Field> = target
        .fields()
        .iter()
        .map(|field| {
            let name = find_field(&columns.fields, field.name())
                .map_or_else(|| field.name().clone(), |f| f.name().clone());
            field.as_ref().clone().with_name(name).with_nullable(true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The file's header columns, each with its target type (text for types CSV cannot hold).
fn csv_read_schema(target: &SchemaRef, columns: &FileColumns) -> SchemaRef {
    let fields: Vec<Field> = columns
        .fields
        .iter()
        .map(|column| {
            let data_type = target
                .fields()
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(column.name()))
                .map_or(DataType::Utf8, |f| f.data_type().clone());
            let data_type = if csv_parses(&data_type) {
                data_type
            } else {
                DataType::Utf8
            };
            Field::new(column.name(), data_type, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Types arrow-csv parses from text.
fn csv_parses(data_type: &DataType) -> bool {
    use DataType as D;
    data_type.is_numeric()
        || matches!(
            data_type,
            D::Boolean
                | D::Utf8
                | D::LargeUtf8
                | D::Utf8View
                | D::Date32
                | D::Date64
                | D::Timestamp(_, _)
                | D::Null
        )
}

// ---------------------------------------------------------------------------------------------
// inference
// ---------------------------------------------------------------------------------------------

/// The columns of the first [`INFER_RECORDS`] objects of a JSON-lines file.
fn infer_json(file: &InputFile) -> Result<Vec<FieldRef>> {
    let mut reader = BufReader::new(file.open()?);
    let mut values = Vec::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    while values.len() < INFER_RECORDS {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read input file {}", file.name))?;
        if read == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&line).map_err(|e| {
            let column = if e.line() == 1 && e.column() > 0 {
                format!(" at column {}", e.column())
            } else {
                String::new()
            };
            anyhow!(
                "input file {} line {number}: invalid JSON{column}: {}",
                file.name,
                serde_message(&e)
            )
        })?;
        if !value.is_object() {
            bail!(
                "input file {} line {number}: expected a JSON object, found {}",
                file.name,
                json_kind(&value)
            );
        }
        values.push(value);
    }
    let schema = infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| anyhow!("input file {}: {}", file.name, redact(&e.to_string())))?;
    Ok(schema.fields().iter().cloned().collect())
}

/// serde_json's message without its ` at line L column C` suffix.
fn serde_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The header and inferred types of a CSV file (first [`INFER_RECORDS`] rows).
fn infer_csv(file: &InputFile) -> Result<Vec<FieldRef>> {
    let format = arrow::csv::reader::Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(file.open()?, Some(INFER_RECORDS))
        .map_err(|e| {
            anyhow!(
                "input file {}: cannot read the CSV header and first rows: {}",
                file.name,
                redact(&e.to_string())
            )
        })?;
    Ok(schema.fields().iter().cloned().collect())
}

/// The Arrow schema in a parquet file's footer.
fn parquet_schema(file: &InputFile) -> Result<Vec<FieldRef>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.open()?)
        .with_context(|| format!("input file {} is not a readable parquet file", file.name))?;
    Ok(builder.schema().fields().iter().cloned().collect())
}

// ---------------------------------------------------------------------------------------------
// reading
// ---------------------------------------------------------------------------------------------

/// The batches of every input file, aligned to the target schema; see [`InputPlan`].
pub struct InputBatches {
    files: VecDeque<(InputFile, Reading)>,
    target: SchemaRef,
    current: Option<FileBatches>,
    failed: bool,
}

/// The batches of one file.
struct FileBatches {
    file: InputFile,
    source: Source,
    /// Rows read from this file so far (for messages).
    rows: u64,
}

enum Source {
    Json(Box<JsonLines>),
    Csv(Box<arrow::csv::Reader<File>>, SchemaRef),
    Parquet(ParquetRecordBatchReader),
    SplitParquet(SplitParquet),
}

/// Parquet files at least this large, with two or more columns, are decoded by two threads,
/// each reading half of the columns (one row group cannot be split by rows).
const SPLIT_PARQUET_BYTES: u64 = 4 << 20;

/// A parquet file decoded as two column halves: the second half on its own thread, a few
/// batches ahead, the first half here; batch `i` of both covers the same rows (same row
/// groups, same batch size), so they are put side by side in the file's column order.
struct SplitParquet {
    first: ParquetRecordBatchReader,
    second: std::sync::mpsc::Receiver<std::result::Result<RecordBatch, String>>,
    schema: SchemaRef,
    /// For every output column: (half, index in that half).
    order: Vec<(usize, usize)>,
}

impl SplitParquet {
    /// `None` when the file is small, has one column, or the machine one core.
    fn open(file: &InputFile) -> Result<Option<Self>> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let handle = file.open()?;
        let bytes = handle.metadata().map(|m| m.len()).unwrap_or(0);
        if cores < 2 || bytes < SPLIT_PARQUET_BYTES {
            return Ok(None);
        }
        let unreadable = || format!("input file {} is not a readable parquet file", file.name);
        let builder = ParquetRecordBatchReaderBuilder::try_new(handle).with_context(unreadable)?;
        let roots = builder.parquet_schema().root_schema().get_fields().len();
        if roots < 2 {
            return Ok(None);
        }
        let schema = builder.schema().clone();
        let mask = |range: std::ops::Range<usize>| {
            parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), range)
        };
        let (first_mask, second_mask) = (mask(0..roots / 2), mask(roots / 2..roots));
        let second = ParquetRecordBatchReaderBuilder::try_new(file.open()?)
            .and_then(|b| {
                b.with_batch_size(BATCH_ROWS)
                    .with_projection(second_mask)
                    .build()
            })
            .with_context(unreadable)?;
        let first = builder
            .with_batch_size(BATCH_ROWS)
            .with_projection(first_mask)
            .build()
            .with_context(unreadable)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        std::thread::spawn(move || {
            for batch in second {
                if sender.send(batch.map_err(|e| e.to_string())).is_err() {
                    break;
                }
            }
        });
        // Root columns map one to one onto Arrow's top-level fields.
        let half = roots / 2;
        let order = (0..schema.fields().len())
            .map(|i| if i < half { (0, i) } else { (1, i - half) })
            .collect();
        Ok(Some(Self {
            first,
            second: receiver,
            schema,
            order,
        }))
    }

    fn next(&mut self) -> Option<std::result::Result<RecordBatch, String>> {
        let first = match self.first.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(e.to_string())),
        };
        let second = match self.second.recv() {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => return Some(Err(e)),
            Err(_) => return Some(Err("the second half of the columns ended early".into())),
        };
        if first.num_rows() != second.num_rows() {
            return Some(Err("the column halves disagree on the row count".into()));
        }
        let halves = [&first, &second];
        let columns = self
            .order
            .iter()
            .map(|(half, i)| halves[*half].column(*i).clone())
            .collect();
        Some(RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string()))
    }
}

impl Iterator for InputBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_batch().transpose();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

impl InputBatches {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.current.is_none() {
                let Some((file, reading)) = self.files.pop_front() else {
                    return Ok(None);
                };
                tracing::debug!(file = %file.name, "reading input file");
                self.current = Some(FileBatches::open(file, reading)?);
            }
            let Some(current) = self.current.as_mut() else {
                continue;
            };
            match current.next_batch()? {
                Some(batch) => {
                    let first_row = current.rows;
                    current.rows += batch.num_rows() as u64;
                    return align(&batch, &self.target, &current.file, first_row).map(Some);
                }
                None => self.current = None,
            }
        }
    }
}

impl FileBatches {
    fn open(file: InputFile, reading: Reading) -> Result<Self> {
        let source = match reading {
            Reading::Json(schema) => Source::Json(Box::new(JsonLines::new(&file, schema)?)),
            Reading::Csv(schema) => {
                let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                    .with_header(true)
                    .with_batch_size(BATCH_ROWS)
                    .build(file.open()?)
                    .map_err(|e| anyhow!("input file {}: {}", file.name, redact(&e.to_string())))?;
                Source::Csv(Box::new(reader), schema)
            }
            Reading::Parquet if let Some(split) = SplitParquet::open(&file)? => {
                Source::SplitParquet(split)
            }
            Reading::Parquet => {
                let reader = ParquetRecordBatchReaderBuilder::try_new(file.open()?)
                    .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
                    .with_context(|| {
                        format!("input file {} is not a readable parquet file", file.name)
                    })?;
                Source::Parquet(reader)
            }
        };
        Ok(Self {
            file,
            source,
            rows: 0,
        })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let name = &self.file.name;
        match &mut self.source {
            Source::Json(lines) => lines.next_batch(),
            Source::Csv(reader, schema) => reader
                .next()
                .transpose()
                .map_err(|e| anyhow!("input file {name}: {}", csv_error(&e.to_string(), schema))),
            Source::Parquet(reader) => reader.next().transpose().map_err(|e| {
                anyhow!(
                    "input file {name}: cannot read parquet rows after row {}: {}",
                    self.rows,
                    redact(&e.to_string())
                )
            }),
            Source::SplitParquet(reader) => reader.next().transpose().map_err(|e| {
                anyhow!(
                    "input file {name}: cannot read parquet rows after row {}: {}",
                    self.rows,
                    redact(&e)
                )
            }),
        }
    }
}

/// `batch` with the target schema: columns matched by name (exactly, else ignoring case),
/// cast to the target types (a value that does not convert is an error), missing ones NULL.
fn align(
    batch: &RecordBatch,
    target: &SchemaRef,
    file: &InputFile,
    first_row: u64,
) -> Result<RecordBatch> {
    let input = batch.schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let index = input.index_of(field.name()).ok().or_else(|| {
            input
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(field.name()))
        });
        let column = match index {
            None => new_null_array(field.data_type(), batch.num_rows()),
            Some(i) => convert(batch.column(i), field, file, first_row)?,
        };
        columns.push(column);
    }
    for field in input.fields() {
        if !target
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(field.name()))
        {
            bail!(
                "input file {}: column `{}` is not in the table schema (use --merge-schema to \
                 add it)",
                file.name,
                field.name()
            );
        }
    }
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .with_context(|| format!("input file {}: cannot assemble rows", file.name))
}

/// `column` as `field`'s type; an error naming the first row whose value does not convert.
fn convert(column: &ArrayRef, field: &Field, file: &InputFile, first_row: u64) -> Result<ArrayRef> {
    let target = field.data_type();
    if column.data_type() == target {
        return Ok(column.clone());
    }
    let cannot = || {
        format!(
            "input file {}: column `{}` of type {} cannot be written as {}",
            file.name,
            field.name(),
            column.data_type(),
            target
        )
    };
    // A safe cast turns values that do not convert into NULLs: find the first such row.
    let safe = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let converted = cast_with_options(column, target, &safe)
        .map_err(|e| anyhow!("{}: {}", cannot(), redact(&e.to_string())))?;
    if converted.null_count() > column.null_count()
        && let Some(row) = (0..column.len()).find(|&i| column.is_valid(i) && converted.is_null(i))
    {
        bail!(
            "{}: the value in row {} does not convert",
            cannot(),
            first_row + row as u64 + 1
        );
    }
    Ok(converted)
}

// ---------------------------------------------------------------------------------------------
// JSON lines with line numbers
// ---------------------------------------------------------------------------------------------

/// A JSON-lines reader that knows which line an error comes from. It feeds arrow-json's
/// decoder line by line and keeps the raw lines of the batch being decoded, so that a
/// conversion error (reported by arrow-json only when the batch is flushed) can be traced
/// to its line by re-decoding those lines one at a time.
struct JsonLines {
    name: String,
    reader: BufReader<File>,
    schema: SchemaRef,
    decoder: Decoder,
    /// The number of the last line read.
    line: u64,
    /// Raw text of the lines in the decoder, and where each ends in it.
    pending: Vec<u8>,
    pending_lines: Vec<(u64, usize)>,
    ready: VecDeque<RecordBatch>,
    done: bool,
}

impl JsonLines {
    fn new(file: &InputFile, schema: SchemaRef) -> Result<Self> {
        Ok(Self {
            name: file.name.clone(),
            reader: BufReader::with_capacity(1 << 16, file.open()?),
            decoder: json_decoder(&schema, 2 * BATCH_ROWS)
                .map_err(|e| anyhow!("input file {}: {}", file.name, redact(&e.to_string())))?,
            schema,
            line: 0,
            pending: Vec::new(),
            pending_lines: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut line = Vec::new();
        while self.ready.is_empty() && !self.done {
            line.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read input file {}", self.name))?;
            if read == 0 {
                self.done = true;
                if self.decoder.has_partial_record() {
                    bail!(
                        "input file {} line {}: the last JSON object is incomplete",
                        self.name,
                        self.line
                    );
                }
                self.flush()?;
                break;
            }
            self.line += 1;
            self.pending.extend_from_slice(&line);
            self.pending_lines.push((self.line, self.pending.len()));
            let mut offset = 0;
            while offset < line.len() {
                let used = self.decoder.decode(&line[offset..]).map_err(|e| {
                    anyhow!(
                        "input file {} line {}: {}",
                        self.name,
                        self.line,
                        json_error(&e.to_string())
                    )
                })?;
                offset += used;
                if offset < line.len() {
                    // The decoder is full in the middle of a line (many objects on it).
                    self.flush()?;
                }
            }
            if self.decoder.len() >= BATCH_ROWS && !self.decoder.has_partial_record() {
                self.flush()?;
            }
        }
        Ok(self.ready.pop_front())
    }

    fn flush(&mut self) -> Result<()> {
        match self.decoder.flush() {
            Ok(Some(batch)) => self.ready.push_back(batch),
            Ok(None) => {}
            Err(e) => return Err(self.locate(&e.to_string())),
        }
        // Keep the current line when it is only partly decoded.
        if self.decoder.has_partial_record() {
            let start = self
                .pending_lines
                .iter()
                .rev()
                .nth(1)
                .map_or(0, |(_, end)| *end);
            self.pending.drain(..start);
            let last = self.pending_lines.pop();
            self.pending_lines.clear();
            if let Some((number, _)) = last {
                self.pending_lines.push((number, self.pending.len()));
            }
        } else {
            self.pending.clear();
            self.pending_lines.clear();
        }
        Ok(())
    }

    /// Find the line of a conversion error by decoding the pending lines one at a time.
    fn locate(&self, message: &str) -> anyhow::Error {
        let mut start = 0;
        for (number, end) in &self.pending_lines {
            let text = &self.pending[start..*end];
            start = *end;
            let Ok(mut decoder) = json_decoder(&self.schema, 16) else {
                break;
            };
            let outcome = decoder.decode(text).and_then(|_| decoder.flush());
            if let Err(e) = outcome {
                return anyhow!(
                    "input file {} line {number}: {}",
                    self.name,
                    json_error(&e.to_string())
                );
            }
        }
        let first = self.pending_lines.first().map_or(0, |(n, _)| *n);
        anyhow!(
            "input file {} lines {first}-{}: {}",
            self.name,
            self.line,
            json_error(message)
        )
    }
}

fn json_decoder(
    schema: &SchemaRef,
    batch_size: usize,
) -> Result<Decoder, arrow::error::ArrowError> {
    ReaderBuilder::new(schema.clone())
        .with_batch_size(batch_size)
        .with_strict_mode(true)
        .with_coerce_primitive(true)
        .build_decoder()
}

// ---------------------------------------------------------------------------------------------
// messages without values
// ---------------------------------------------------------------------------------------------

/// An arrow-json error, rewritten so that no value of the input appears in it.
fn json_error(message: &str) -> String {
    let mut rest = message.trim();
    rest = rest.strip_prefix("Json error: ").unwrap_or(rest);
    // "whilst decoding field 'a': whilst decoding field 'b': <cause>"
    let mut path: Vec<&str> = Vec::new();
    while let Some(tail) = rest.strip_prefix("whilst decoding field '") {
        let Some(end) = tail.find("': ") else {
            break;
        };
        path.push(&tail[..end]);
        rest = &tail[end + 3..];
    }
    let cause = if let Some(tail) = rest.strip_prefix("expected ")
        && let Some(got) = tail.find(" got ")
    {
        format!(
            "expected {}, found {}",
            &tail[..got],
            text_kind(&tail[got + 5..])
        )
    } else if rest.starts_with("failed to parse ")
        && let Some(at) = rest.rfind(" as ")
    {
        format!("a value cannot be parsed as {}", &rest[at + 4..])
    } else if let Some(tail) = rest.strip_prefix("Encountered unexpected '")
        && let Some(at) = tail.find("' whilst ")
    {
        format!(
            "invalid JSON: unexpected character whilst {}",
            &tail[at + 9..]
        )
    } else if let Some(tail) = rest.strip_prefix("column '")
        && let Some(name) = tail.strip_suffix("' missing from schema")
    {
        format!(
            "column `{name}` is not in the table schema and was not seen in the first \
             {INFER_RECORDS} records of any input file (use --merge-schema to add columns to \
             an existing table)"
        )
    } else {
        redact(rest)
    };
    if path.is_empty() {
        cause
    } else {
        format!("column `{}`: {cause}", path.join("."))
    }
}

/// What kind of JSON value a serialized value is, without showing it.
fn text_kind(text: &str) -> &'static str {
    match text.trim_start().chars().next() {
        Some('"') => "a string",
        Some('{') => "an object",
        Some('[') => "an array",
        Some('t' | 'f') => "a boolean",
        Some('n') => "null",
        Some(c) if c == '-' || c.is_ascii_digit() => "a number",
        _ => "another value",
    }
}

/// An arrow-csv error, rewritten without values; column numbers become names.
fn csv_error(message: &str, schema: &Schema) -> String {
    let column_name = |text: &str| -> String {
        text.trim()
            .parse::<usize>()
            .ok()
            .and_then(|i| schema.fields().get(i))
            .map_or_else(
                || format!("number {}", text.trim()),
                |f| format!("`{}`", f.name()),
            )
    };
    let rest = message.trim();
    let rest = rest.strip_prefix("Parser error: ").unwrap_or(rest);
    // "Error while parsing value '<v>' as type '<T>' for column <n> at line <l>. Row data: ..."
    if rest.starts_with("Error while parsing value ")
        && let Some(as_type) = rest.find("' as type '")
        && let Some(for_column) = rest[as_type..].find("' for column ")
    {
        let data_type = &rest[as_type + 11..as_type + for_column];
        let tail = &rest[as_type + for_column + 13..];
        if let Some(at_line) = tail.find(" at line ") {
            let column = column_name(&tail[..at_line]);
            let line = file_line(&tail[at_line + 9..]);
            return format!(
                "line {line}: column {column}: a value cannot be parsed as {data_type}"
            );
        }
    }
    // "Error parsing column <n> at line <l>: <cause with the value>"
    if let Some(tail) = rest.strip_prefix("Error parsing column ")
        && let Some(at_line) = tail.find(" at line ")
    {
        let column = column_name(&tail[..at_line]);
        let line = file_line(&tail[at_line + 9..]);
        let data_type = schema
            .fields()
            .iter()
            .find(|f| format!("`{}`", f.name()) == column)
            .map_or_else(String::new, |f| format!(" as {}", f.data_type()));
        return format!("line {line}: column {column}: a value cannot be parsed{data_type}");
    }
    redact(rest)
}

/// The file line of arrow-csv's value-error "line", which counts records from 0 with the
/// header as record 0 (exact unless quoted values span lines).
fn file_line(text: &str) -> String {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse::<u64>()
        .map_or(digits, |n| (n + 1).to_string())
}

/// Replace every quoted part of a message (`'…'`, `"…"`) and any `Row data:` tail: the
/// Arrow readers quote input values there.
#[must_use]
pub fn redact(message: &str) -> String {
    let message = match message.find("Row data:") {
        Some(at) => message[..at].trim_end(),
        None => message,
    };
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_parquet_file_read_in_column_halves_gives_the_same_rows() {
        use arrow::array::{Int64Array, StringArray, StructArray};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.parquet");
        let rows = 200_000usize;
        // Hard-to-compress strings so that the file passes the split threshold.
        let text: Vec<Option<String>> = (0..rows)
            .map(|i| {
                (i % 13 != 0)
                    .then(|| format!("{:x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            })
            .collect();
        let nested = StructArray::from(vec![(
            Arc::new(Field::new("n", DataType::Int64, false)),
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(|i| i * 3),
            )) as ArrayRef,
        )]);
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..rows as i64)) as ArrayRef,
            ),
            (
                "text",
                Arc::new(StringArray::from(text.clone())) as ArrayRef,
            ),
            ("nested", Arc::new(nested) as ArrayRef),
            ("more", Arc::new(StringArray::from(text)) as ArrayRef),
        ])
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(70_000))
            .set_dictionary_enabled(false)
            .build();
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            File::create(&path).unwrap(),
            batch.schema(),
            Some(props),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() >= SPLIT_PARQUET_BYTES);

        let file = InputFile::new(path.to_str().unwrap(), None).unwrap();
        assert!(
            SplitParquet::open(&file).unwrap().is_some()
                || std::thread::available_parallelism().map_or(1, |p| p.get()) < 2
        );
        let plan = InputPlan::new(vec![file], None, false).unwrap();
        let read: Vec<RecordBatch> = plan.batches().collect::<Result<_>>().unwrap();
        let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        assert_eq!(read.num_rows(), rows);
        assert_eq!(read.schema().fields().len(), 4);
        for (i, name) in ["id", "text", "nested", "more"].iter().enumerate() {
            assert_eq!(read.schema().field(i).name(), name);
            if *name == "nested" {
                use arrow::array::AsArray;
                let (got, want) = (read.column(i).as_struct(), batch.column(i).as_struct());
                assert_eq!(got.null_count(), 0);
                assert_eq!(got.column(0).as_ref(), want.column(0).as_ref(), "{name}.n");
            } else {
                assert_eq!(read.column(i).as_ref(), batch.column(i).as_ref(), "{name}");
            }
        }
    }

    #[test]
    fn formats_from_extensions() {
        assert_eq!(format_of("a/b.JSONL"), Some(InputFormat::Jsonl));
        assert_eq!(format_of("x.ndjson"), Some(InputFormat::Jsonl));
        assert_eq!(format_of("x.csv"), Some(InputFormat::Csv));
        assert_eq!(format_of("x.parquet"), Some(InputFormat::Parquet));
        assert_eq!(format_of("x.txt"), None);
        assert_eq!(format_of("noext"), None);
    }

    #[test]
    fn json_errors_hide_values() {
        assert_eq!(
            json_error(
                "Json error: whilst decoding field 'a': whilst decoding field 'b': expected string got {\"secret\":1}"
            ),
            "column `a.b`: expected string, found an object"
        );
        assert_eq!(
            json_error(
                "Json error: whilst decoding field 'n': failed to parse \"SECRET\" as Int64"
            ),
            "column `n`: a value cannot be parsed as Int64"
        );
        assert_eq!(
            json_error("Json error: Encountered unexpected 'S' whilst parsing value"),
            "invalid JSON: unexpected character whilst parsing value"
        );
        assert!(json_error("Json error: column 'zz' missing from schema").contains("`zz`"));
        assert!(!json_error("Json error: something 'SECRET'").contains("SECRET"));
    }

    #[test]
    fn csv_errors_hide_values() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("age", DataType::Int64, true),
        ]);
        let message = "Parser error: Error while parsing value 'SECRET' as type 'Int64' for column 1 at line 7. Row data: '[1,SECRET]'";
        assert_eq!(
            csv_error(message, &schema),
            "line 8: column `age`: a value cannot be parsed as Int64"
        );
        let message = "Parser error: Error parsing column 0 at line 3: Parser error: Error parsing timestamp from 'SECRET'";
        let text = csv_error(message, &schema);
        assert!(text.starts_with("line 4: column `id`"), "{text}");
        assert!(!text.contains("SECRET"));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("Cannot cast string 'SECRET' to value of Int64 type"),
            "Cannot cast string '…' to value of Int64 type"
        );
        assert_eq!(redact("a \"b\" c 'd"), "a \"…\" c '…");
        assert_eq!(redact("x. Row data: '[1,2]'"), "x.");
    }

    #[test]
    fn merging_types() {
        use DataType as D;
        assert_eq!(merge_types(&D::Int64, &D::Float64, false), Some(D::Float64));
        assert_eq!(merge_types(&D::Null, &D::Boolean, false), Some(D::Boolean));
        assert_eq!(merge_types(&D::Int64, &D::Utf8, true), Some(D::Utf8));
        assert_eq!(merge_types(&D::Int64, &D::Utf8, false), None);
        assert_eq!(storable_type(&D::Null, false), D::Utf8);
        assert_eq!(
            storable_type(&D::Timestamp(TimeUnit::Second, None), true),
            D::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(storable_type(&D::UInt32, false), D::Int64);
    }
}
