//! Bronze: land every source record unchanged, plus provenance, exactly once per file.
//!
//! # Tables
//! `<lake>/bronze/<entity>` holds one row per JSON object of the entity's source files: every
//! contract field as raw text (`STRING`; numbers and booleans as their JSON text, nothing
//! parsed), then `_ingested_at` (timestamp), `_source_file` (path relative to the data
//! directory), `_source_line` (1-based line where the object starts), `_batch_id` (the run)
//! and `_rescued_data` (a JSON object of the fields not in the contract, null when none).
//! `<lake>/bronze/_corrupt_records` holds every line that is not a JSON object (entity, source
//! file, line, the raw line, the parser's error). Nothing is dropped: per entity,
//! rows + corrupt records = non-empty lines (or array elements).
//!
//! # Exactly once
//! Each source file is one commit, carrying the Delta app transaction
//! `medilake-bronze-<entity>` with version = the file's sequence number `seq` (1, 2, ... in
//! ingestion order). Which file has which `seq` is kept in an intent ledger,
//! `<lake>/bronze/_ingest_ledger/<entity>.jsonl`, replaced whole (one put, atomic on every
//! store) *before* the file's commit. On every run:
//! - `V` = the table's committed app-transaction version; ledger entries with `seq <= V` are
//!   ingested; entries with `seq > V` are intents whose commit never happened (a crash
//!   between writing data files and committing): they are retried first, with the same
//!   `seq`, so a retry can never ingest a file twice (a commit of `seq` twice is impossible
//!   because the second run sees `V >= seq`). Orphan data files of a failed attempt are not
//!   in the log and are never read.
//! - Files not in the ledger get the next sequence numbers, in path order.
//!
//! Corrupt lines of file `seq` are committed to `_corrupt_records` right after its data
//! commit, with app transaction `medilake-bronze-corrupt-<entity>` version `seq`; when a run
//! ends with that version behind `V` (the last files had no corrupt lines) a commit with no
//! rows moves it up to `V`. A crash between the two commits leaves it behind `V`; the next run
//! then re-reads the file `V` (only that file: files are committed one after the other) and
//! commits its corrupt lines.
//!
//! One run at a time per lake is the expected use. Should two runs race anyway, delta-core's
//! conflict check refuses the second commit of the same app id in the same window, so the
//! loser fails instead of ingesting a file twice.
//!
//! Memory is bounded: a file is read on a blocking thread in batches of [`BATCH_ROWS`] lines,
//! two batches ahead of the writer. Row values never appear in errors or logs: they name the
//! file, the line and the field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use delta_core::Table;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::contract::{ENTITIES, Entity};
use crate::lake::Lake;

/// Lines per Arrow batch handed to the writer.
pub const BATCH_ROWS: usize = 64 * 1024;
/// The table of corrupt lines, under `<lake>/bronze/`.
pub const CORRUPT_TABLE: &str = "_corrupt_records";
/// Longest raw line kept in `_corrupt_records` (bytes); longer lines are cut (and say so).
const MAX_RAW_LINE: usize = 64 * 1024;

/// What a bronze run reads, where it writes, and the provenance it stamps.
#[derive(Clone, Debug)]
pub struct BronzeOptions {
    /// The data directory (six entities as files or folders; other entries are ignored), a
    /// local path or a URL opened like the lake.
    pub data: Lake,
    /// The lakehouse; tables go under `<lake>/bronze/`.
    pub lake: Lake,
    /// `_ingested_at`, in microseconds since the epoch (UTC).
    pub ingested_at_micros: i64,
    /// `_batch_id` of every row this run writes.
    pub batch_id: String,
}

impl BronzeOptions {
    /// Options for one run.
    #[must_use]
    pub fn new(data: Lake, lake: Lake, ingested_at_micros: i64, batch_id: String) -> Self {
        Self {
            data,
            lake,
            ingested_at_micros,
            batch_id,
        }
    }
}

/// What happened to one bronze table in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSummary {
    /// `bronze.<entity>` or `bronze._corrupt_records`.
    pub table: String,
    /// Source files ingested by this run.
    pub files: u64,
    /// Non-empty lines (array elements) read.
    pub rows_in: u64,
    /// Rows written to the table.
    pub rows_written: u64,
    /// Lines that went to `_corrupt_records`.
    pub corrupt: u64,
    /// The table version after the run (`None` when the table does not exist).
    pub version: Option<u64>,
    /// Whether this run committed to the table.
    pub committed: bool,
    /// Wall time spent on the table, in milliseconds.
    pub millis: u64,
}

/// Progress events of a run, for the CLI's bars or plain lines.
#[derive(Debug, Clone)]
pub enum Progress {
    /// An entity starts: files to ingest and their total size.
    Start {
        /// The bronze table.
        table: String,
        /// Files to ingest.
        files: u64,
        /// Their total size in bytes.
        bytes: u64,
    },
    /// Bytes of source read so far for the table (cumulative within the file).
    Read {
        /// The bronze table.
        table: String,
        /// Bytes read since the last event.
        bytes: u64,
    },
    /// A file was committed.
    File {
        /// The bronze table.
        table: String,
        /// The file, relative to the data directory.
        file: String,
        /// Rows written.
        rows: u64,
        /// Corrupt lines.
        corrupt: u64,
        /// The committed version.
        version: u64,
    },
    /// An entity is done.
    Done {
        /// The bronze table.
        table: String,
    },
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The app-transaction id of an entity's bronze table.
#[must_use]
pub fn app_id(entity: &str) -> String {
    format!("medilake-bronze-{entity}")
}

/// The app-transaction id of an entity's corrupt records.
#[must_use]
pub fn corrupt_app_id(entity: &str) -> String {
    format!("medilake-bronze-corrupt-{entity}")
}

/// The Arrow schema of `bronze.<entity>`: contract fields as strings, then provenance.
#[must_use]
pub fn schema(entity: &Entity) -> SchemaRef {
    let mut fields: Vec<Field> = entity
        .fields
        .iter()
        .map(|name| Field::new(*name, DataType::Utf8, true))
        .collect();
    fields.extend(provenance_fields());
    Arc::new(Schema::new(fields))
}

fn provenance_fields() -> [Field; 5] {
    [
        Field::new(
            "_ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_source_line", DataType::Int64, false),
        Field::new("_batch_id", DataType::Utf8, false),
        Field::new("_rescued_data", DataType::Utf8, true),
    ]
}

/// The Arrow schema of `bronze._corrupt_records`.
#[must_use]
pub fn corrupt_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("entity", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_line", DataType::Int64, false),
        Field::new("raw_line", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new(
            "_ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("_batch_id", DataType::Utf8, false),
    ]))
}

/// A source file of an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the data directory, `/`-separated (`lab_results/part-00001.jsonl`).
    pub relative: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The source files of `entity` under `data`: `data/<entity>.json` and the `*.json`/`*.jsonl`
/// files of `data/<entity>/`, sorted by path.
///
/// # Errors
/// Unreadable directories.
pub async fn discover(data: &Lake, entity: &Entity) -> Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    let single = format!("{}.json", entity.name);
    let (objects, _) = data.list_dir("").await?;
    if let Some((_, bytes)) = objects.iter().find(|(name, _)| *name == single) {
        files.push(SourceFile {
            relative: single,
            bytes: *bytes,
        });
    }
    let (objects, _) = data.list_dir(&format!("{}/", entity.name)).await?;
    for (name, bytes) in objects {
        let wanted = Path::new(&name)
            .extension()
            .is_some_and(|e| e == "json" || e == "jsonl");
        if wanted && !name.starts_with('.') {
            files.push(SourceFile {
                relative: format!("{}/{name}", entity.name),
                bytes,
            });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

// ---------------------------------------------------------------------------------------
// The ledger

/// One intent: file `file` is ingested as sequence number `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Intent {
    seq: i64,
    file: String,
}

/// The ledger of `entity`, relative to the lake root.
fn ledger_path(entity: &str) -> String {
    format!("bronze/_ingest_ledger/{entity}.jsonl")
}

async fn read_ledger(lake: &Lake, relative: &str) -> Result<Vec<Intent>> {
    let name = lake.display(relative);
    let Some(bytes) = lake.read(relative).await? else {
        return Ok(Vec::new());
    };
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{name} is not UTF-8"))?;
    let mut intents = Vec::new();
    let lines = text.lines().count();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("{name} line {}: not JSON", index + 1))?;
        let seq = value.get("seq").and_then(Value::as_i64);
        let file = value.get("file").and_then(Value::as_str);
        match (seq, file) {
            (Some(seq), Some(file)) => intents.push(Intent {
                seq,
                file: file.to_owned(),
            }),
            // A torn last line (a crash while a non-atomic store wrote it) is an intent
            // that never committed.
            _ if index + 1 == lines => {}
            _ => bail!("{name} line {}: no seq or file", index + 1),
        }
    }
    Ok(intents)
}

/// Replace the ledger by `intents` (committed ones plus the new intent) with one whole-object
/// put: readers see the old ledger or the new one.
async fn write_ledger(lake: &Lake, relative: &str, intents: &[Intent]) -> Result<()> {
    let mut text = String::new();
    for intent in intents {
        let line = serde_json::json!({"seq": intent.seq, "file": intent.file});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    lake.replace(relative, text.into()).await
}

// ---------------------------------------------------------------------------------------
// Reading a source file

/// A line (or array element) of a source file.
struct RawRecord {
    line: i64,
    text: String,
}

/// A corrupt record, kept until its file is committed.
#[derive(Debug, Clone)]
struct Corrupt {
    line: i64,
    raw: String,
    error: String,
}

/// What reading a file produced, besides the batches.
#[derive(Debug, Default)]
struct FileOutcome {
    rows_in: u64,
    rows: u64,
    corrupt: Vec<Corrupt>,
}

/// Turns records into bronze batches.
struct BatchBuilder {
    entity: Entity,
    schema: SchemaRef,
    index: HashMap<&'static str, usize>,
    columns: Vec<StringBuilder>,
    lines: Int64Builder,
    rescued: StringBuilder,
    rows: usize,
    file: String,
    ingested_at: i64,
    batch_id: String,
}

impl BatchBuilder {
    fn new(entity: Entity, file: &str, ingested_at: i64, batch_id: &str) -> Self {
        Self {
            entity,
            schema: schema(&entity),
            index: entity
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| (*f, i))
                .collect(),
            columns: entity.fields.iter().map(|_| StringBuilder::new()).collect(),
            lines: Int64Builder::new(),
            rescued: StringBuilder::new(),
            rows: 0,
            file: file.to_owned(),
            ingested_at,
            batch_id: batch_id.to_owned(),
        }
    }

    /// Add one record; `Err` holds the reason it is corrupt.
    fn push(&mut self, record: &RawRecord) -> std::result::Result<(), String> {
        let value: Value = serde_json::from_str(&record.text).map_err(|e| {
            // serde_json's messages name a position, never the text.
            format!("invalid JSON: {e}")
        })?;
        let Value::Object(map) = value else {
            return Err(format!("not a JSON object but {}", kind(&value)));
        };
        let mut seen = vec![false; self.columns.len()];
        let mut rescued = Map::new();
        for (key, value) in map {
            match self.index.get(key.as_str()) {
                Some(&i) if !seen[i] => {
                    seen[i] = true;
                    match value {
                        Value::Null => self.columns[i].append_null(),
                        Value::String(text) => self.columns[i].append_value(text),
                        other => self.columns[i].append_value(other.to_string()),
                    }
                }
                _ => {
                    rescued.insert(key, value);
                }
            }
        }
        for (i, seen) in seen.iter().enumerate() {
            if !seen {
                self.columns[i].append_null();
            }
        }
        if rescued.is_empty() {
            self.rescued.append_null();
        } else {
            self.rescued
                .append_value(Value::Object(rescued).to_string());
        }
        self.lines.append_value(record.line);
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from(vec![self.ingested_at; rows]).with_timezone("UTC"),
        ));
        let mut files = StringBuilder::with_capacity(rows, rows * self.file.len());
        let mut batches = StringBuilder::with_capacity(rows, rows * self.batch_id.len());
        for _ in 0..rows {
            files.append_value(&self.file);
            batches.append_value(&self.batch_id);
        }
        arrays.push(Arc::new(files.finish()));
        arrays.push(Arc::new(self.lines.finish()));
        arrays.push(Arc::new(batches.finish()));
        arrays.push(Arc::new(self.rescued.finish()));
        RecordBatch::try_new(self.schema.clone(), arrays).with_context(|| {
            format!(
                "internal error: building a batch of bronze.{}",
                self.entity.name
            )
        })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits a source file into records: JSON Lines, or (when the first non-blank byte is `[`)
/// the elements of one JSON array, each with the line it starts on. Streams: holds one
/// record at a time.
struct Records<R: BufRead> {
    reader: R,
    line: i64,
    array: Option<bool>,
    done: bool,
    buffer: Vec<u8>,
    read_bytes: u64,
}

impl<R: BufRead> Records<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            line: 0,
            array: None,
            done: false,
            buffer: Vec::new(),
            read_bytes: 0,
        }
    }

    fn next_record(&mut self) -> std::io::Result<Option<RawRecord>> {
        if self.done {
            return Ok(None);
        }
        if self.array.is_none() {
            let start = self.reader.fill_buf()?;
            let first = start.iter().find(|b| !b.is_ascii_whitespace()).copied();
            self.array = Some(first == Some(b'['));
            if self.array == Some(true) {
                self.skip_to_array_start()?;
            }
        }
        if self.array == Some(true) {
            return self.next_element();
        }
        loop {
            self.buffer.clear();
            let n = self.reader.read_until(b'\n', &mut self.buffer)?;
            if n == 0 {
                self.done = true;
                return Ok(None);
            }
            self.read_bytes += n as u64;
            self.line += 1;
            if self.buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = String::from_utf8_lossy(&self.buffer).trim_end().to_owned();
            return Ok(Some(RawRecord {
                line: self.line,
                text,
            }));
        }
    }

    fn next_byte(&mut self) -> std::io::Result<Option<u8>> {
        let buf = self.reader.fill_buf()?;
        let Some(&byte) = buf.first() else {
            return Ok(None);
        };
        self.reader.consume(1);
        self.read_bytes += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Ok(Some(byte))
    }

    fn skip_to_array_start(&mut self) -> std::io::Result<()> {
        self.line = 1;
        while let Some(byte) = self.next_byte()? {
            if byte == b'[' {
                break;
            }
        }
        Ok(())
    }

    /// The next top-level element of the array (its raw text), tracking strings and nesting.
    fn next_element(&mut self) -> std::io::Result<Option<RawRecord>> {
        self.buffer.clear();
        let mut start_line = self.line;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let Some(byte) = self.next_byte()? else {
                self.done = true;
                let text = String::from_utf8_lossy(&self.buffer).trim().to_owned();
                // Text after the last element that is not a closed array is a corrupt record.
                return Ok((!text.is_empty()).then_some(RawRecord {
                    line: start_line,
                    text,
                }));
            };
            if in_string {
                self.buffer.push(byte);
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            match byte {
                b',' | b']' if depth == 0 => {
                    if byte == b']' {
                        self.done = true;
                    }
                    let text = String::from_utf8_lossy(&self.buffer).trim().to_owned();
                    if text.is_empty() {
                        if self.done {
                            return Ok(None);
                        }
                        continue;
                    }
                    return Ok(Some(RawRecord {
                        line: start_line,
                        text,
                    }));
                }
                _ if self.buffer.is_empty() && byte.is_ascii_whitespace() => {
                    start_line = self.line;
                }
                _ => {
                    match byte {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    if self.buffer.is_empty() {
                        start_line = self.line;
                    }
                    self.buffer.push(byte);
                }
            }
        }
    }
}

/// Read `file` on the calling (blocking) thread, sending batches to `sender` when given.
fn read_file(
    name: &str,
    file: Box<dyn Read + Send>,
    builder: &mut BatchBuilder,
    sender: Option<&tokio::sync::mpsc::Sender<Result<RecordBatch>>>,
    progress: &dyn Fn(u64),
) -> Result<FileOutcome> {
    let mut records = Records::new(BufReader::with_capacity(1 << 20, file));
    let mut outcome = FileOutcome::default();
    let mut reported = 0u64;
    loop {
        let record = records
            .next_record()
            .with_context(|| format!("cannot read {name} near line {}", records.line))?;
        let Some(record) = record else { break };
        outcome.rows_in += 1;
        match builder.push(&record) {
            Ok(()) => outcome.rows += 1,
            Err(error) => {
                let mut raw = record.text;
                if raw.len() > MAX_RAW_LINE {
                    let mut cut = MAX_RAW_LINE;
                    while !raw.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    raw.truncate(cut);
                }
                outcome.corrupt.push(Corrupt {
                    line: record.line,
                    raw,
                    error,
                });
            }
        }
        if builder.rows >= BATCH_ROWS {
            let batch = builder.finish()?;
            if let Some(sender) = sender
                && sender.blocking_send(Ok(batch)).is_err()
            {
                bail!("the writer stopped");
            }
            progress(records.read_bytes - reported);
            reported = records.read_bytes;
        }
    }
    if builder.rows > 0 {
        let batch = builder.finish()?;
        if let Some(sender) = sender
            && sender.blocking_send(Ok(batch)).is_err()
        {
            bail!("the writer stopped");
        }
    }
    progress(records.read_bytes - reported);
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------
// The run

/// Ingest every new source file of every entity into `<lake>/bronze`.
///
/// Returns one summary per entity table, then one for `_corrupt_records`.
///
/// # Errors
/// Unreadable source files, a damaged ledger, storage errors and commit failures (naming the
/// table and the file). What was committed before the error stays committed; the next run
/// resumes.
pub async fn run(options: &BronzeOptions, progress: &ProgressFn) -> Result<Vec<TableSummary>> {
    let corrupt_table = options.lake.table("bronze", CORRUPT_TABLE)?;
    let mut summaries = Vec::new();
    let mut corrupt_summary = TableSummary {
        table: format!("bronze.{CORRUPT_TABLE}"),
        ..TableSummary::default()
    };
    for entity in ENTITIES {
        let summary = ingest_entity(
            options,
            &entity,
            &corrupt_table,
            &mut corrupt_summary,
            progress,
        )
        .await
        .with_context(|| format!("bronze.{}", entity.name))?;
        summaries.push(summary);
    }
    corrupt_summary.version = table_version(&corrupt_table).await?;
    summaries.push(corrupt_summary);
    Ok(summaries)
}

async fn table_version(table: &Table) -> Result<Option<u64>> {
    match table.snapshot().await {
        Ok(snapshot) => Ok(Some(snapshot.version())),
        Err(delta_core::Error::NotATable { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn app_version(table: &Table, app: &str) -> Result<i64> {
    match table.snapshot().await {
        Ok(snapshot) => Ok(snapshot.app_transaction_version(app).unwrap_or(0)),
        Err(delta_core::Error::NotATable { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

async fn ingest_entity(
    options: &BronzeOptions,
    entity: &Entity,
    corrupt_table: &Table,
    corrupt_summary: &mut TableSummary,
    progress: &ProgressFn,
) -> Result<TableSummary> {
    let started = Instant::now();
    let name = format!("bronze.{}", entity.name);
    let table = options.lake.table("bronze", entity.name)?;
    let app = app_id(entity.name);
    let corrupt_app = corrupt_app_id(entity.name);
    let committed = app_version(&table, &app).await?;
    let ledger_file = ledger_path(entity.name);
    let ledger = read_ledger(&options.lake, &ledger_file).await?;
    let done: Vec<Intent> = ledger
        .iter()
        .filter(|i| i.seq <= committed)
        .cloned()
        .collect();
    if i64::try_from(done.len()).unwrap_or(i64::MAX) != committed {
        bail!(
            "the ingest ledger {} lists {} committed files but the table has committed {committed}; \
             the ledger was edited or lost",
            options.lake.display(&ledger_file),
            done.len()
        );
    }
    let mut summary = TableSummary {
        table: name.clone(),
        ..TableSummary::default()
    };

    // A crash between the data commit and the corrupt-records commit of the last file.
    let corrupt_committed = app_version(corrupt_table, &corrupt_app).await?;
    if corrupt_committed < committed
        && let Some(last) = done.last()
    {
        let name = options.data.display(&last.file);
        let file = options.data.reader(&last.file).await?;
        let mut builder = BatchBuilder::new(
            *entity,
            &last.file,
            options.ingested_at_micros,
            &options.batch_id,
        );
        let outcome = tokio::task::spawn_blocking(move || {
            read_file(&name, file, &mut builder, None, &|_| {})
        })
        .await
        .context("the reader task failed")??;
        commit_corrupt(
            options,
            entity,
            corrupt_table,
            &corrupt_app,
            last,
            &outcome.corrupt,
            corrupt_summary,
        )
        .await?;
    }

    let available = discover(&options.data, entity).await?;
    let known: BTreeSet<&str> = ledger.iter().map(|i| i.file.as_str()).collect();
    let mut plan: Vec<Intent> = ledger
        .iter()
        .filter(|i| i.seq > committed)
        .cloned()
        .collect();
    let mut next = ledger
        .iter()
        .map(|i| i.seq)
        .max()
        .unwrap_or(0)
        .max(committed)
        + 1;
    for file in &available {
        if !known.contains(file.relative.as_str()) {
            plan.push(Intent {
                seq: next,
                file: file.relative.clone(),
            });
            next += 1;
        }
    }
    let sizes: BTreeMap<&str, u64> = available
        .iter()
        .map(|f| (f.relative.as_str(), f.bytes))
        .collect();
    for intent in &plan {
        if !sizes.contains_key(intent.file.as_str()) {
            bail!(
                "{} was planned for ingestion (sequence {}) by an interrupted run but is gone \
                 from the data directory; put it back to finish that run",
                intent.file,
                intent.seq
            );
        }
    }
    progress(Progress::Start {
        table: name.clone(),
        files: plan.len() as u64,
        bytes: plan.iter().map(|i| sizes[i.file.as_str()]).sum(),
    });

    let mut intents = done;
    for intent in plan {
        intents.push(intent.clone());
        write_ledger(&options.lake, &ledger_file, &intents).await?;
        let (outcome, version) = ingest_file(options, entity, &table, &app, &intent, progress)
            .await
            .with_context(|| format!("cannot ingest {}", intent.file))?;
        summary.files += 1;
        summary.rows_in += outcome.rows_in;
        summary.rows_written += outcome.rows;
        summary.corrupt += outcome.corrupt.len() as u64;
        summary.committed = true;
        progress(Progress::File {
            table: name.clone(),
            file: intent.file.clone(),
            rows: outcome.rows,
            corrupt: outcome.corrupt.len() as u64,
            version,
        });
        commit_corrupt(
            options,
            entity,
            corrupt_table,
            &corrupt_app,
            &intent,
            &outcome.corrupt,
            corrupt_summary,
        )
        .await?;
    }
    // Bring the corrupt-records marker up to the last file, so no file is re-read next run.
    let committed = app_version(&table, &app).await?;
    if app_version(corrupt_table, &corrupt_app).await? < committed {
        let marker = Intent {
            seq: committed,
            file: String::new(),
        };
        commit_corrupt(
            options,
            entity,
            corrupt_table,
            &corrupt_app,
            &marker,
            &[],
            corrupt_summary,
        )
        .await?;
    }
    summary.version = table_version(&table).await?;
    summary.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    progress(Progress::Done { table: name });
    Ok(summary)
}

/// Stream one file into the entity's table and commit it with app transaction `seq`.
async fn ingest_file(
    options: &BronzeOptions,
    entity: &Entity,
    table: &Table,
    app: &str,
    intent: &Intent,
    progress: &ProgressFn,
) -> Result<(FileOutcome, u64)> {
    let name = options.data.display(&intent.file);
    let file = options.data.reader(&intent.file).await?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let mut builder = BatchBuilder::new(
        *entity,
        &intent.file,
        options.ingested_at_micros,
        &options.batch_id,
    );
    let table_name = format!("bronze.{}", entity.name);
    let reporter = progress.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let result = read_file(&name, file, &mut builder, Some(&sender), &|bytes| {
            reporter(Progress::Read {
                table: table_name.clone(),
                bytes,
            });
        });
        if let Err(e) = &result {
            sender.blocking_send(Err(anyhow::anyhow!("{e:#}"))).ok();
        }
        result
    });
    // Look at the first batch: an empty file still commits (its sequence number), with an
    // empty batch that carries the schema so the first commit can create the table.
    let first = receiver.recv().await;
    let prefix = match first {
        Some(Ok(batch)) => vec![batch],
        Some(Err(e)) => {
            reader.await.ok();
            return Err(e);
        }
        None => vec![RecordBatch::new_empty(schema(entity))],
    };
    let (batches, input_errors) = crate::commands::engine_input(prefix, receiver, "source file");
    let report = table
        .write()
        .with_app_transaction(app, intent.seq)
        .with_description(format!(
            "Bronze {}: raw source records as text, with provenance",
            entity.name
        ))
        .execute(batches.boxed())
        .await;
    let outcome = reader.await.context("the reader task failed")?;
    let report = report.map_err(|e| input_errors.explain(e))?;
    let outcome = outcome?;
    let version = report
        .version
        .context("internal error: a bronze write committed no version")?;
    Ok((outcome, version))
}

/// Commit the corrupt lines of one file (or, with none, only the app-transaction marker).
async fn commit_corrupt(
    options: &BronzeOptions,
    entity: &Entity,
    corrupt_table: &Table,
    app: &str,
    intent: &Intent,
    corrupt: &[Corrupt],
    summary: &mut TableSummary,
) -> Result<()> {
    if corrupt.is_empty() && !intent.file.is_empty() {
        return Ok(());
    }
    if app_version(corrupt_table, app).await? >= intent.seq {
        return Ok(());
    }
    let started = Instant::now();
    let rows = corrupt.len();
    let mut entities = StringBuilder::new();
    let mut files = StringBuilder::new();
    let mut lines = Int64Builder::new();
    let mut raws = StringBuilder::new();
    let mut errors = StringBuilder::new();
    let mut batch_ids = StringBuilder::new();
    for record in corrupt {
        entities.append_value(entity.name);
        files.append_value(&intent.file);
        lines.append_value(record.line);
        raws.append_value(&record.raw);
        errors.append_value(&record.error);
        batch_ids.append_value(&options.batch_id);
    }
    let batch = RecordBatch::try_new(
        corrupt_schema(),
        vec![
            Arc::new(entities.finish()),
            Arc::new(files.finish()),
            Arc::new(lines.finish()),
            Arc::new(raws.finish()),
            Arc::new(errors.finish()),
            Arc::new(
                TimestampMicrosecondArray::from(vec![options.ingested_at_micros; rows])
                    .with_timezone("UTC"),
            ),
            Arc::new(batch_ids.finish()),
        ],
    )?;
    let report = corrupt_table
        .write()
        .with_app_transaction(app, intent.seq)
        .with_description("Bronze: source lines that are not JSON objects, with file and line")
        .execute(futures::stream::iter([Ok(batch)]).boxed())
        .await
        .with_context(|| format!("cannot commit the corrupt lines of {}", intent.file))?;
    summary.rows_written += rows as u64;
    summary.rows_in += rows as u64;
    summary.corrupt += rows as u64;
    if !intent.file.is_empty() {
        summary.files += 1;
    }
    summary.committed = true;
    summary.version = report.version;
    summary.millis += u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<(i64, String)> {
        let mut reader = Records::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().expect("reads") {
            out.push((r.line, r.text));
        }
        out
    }

    #[test]
    fn json_lines_skip_blank_lines_and_keep_numbers() {
        let got = records("{\"a\":1}\n\n  \n{\"a\":2}\r\nnot json\n");
        assert_eq!(
            got,
            [
                (1, "{\"a\":1}".to_owned()),
                (4, "{\"a\":2}".to_owned()),
                (5, "not json".to_owned())
            ]
        );
    }

    #[test]
    fn arrays_split_into_elements_with_their_lines() {
        let got = records("[\n {\"a\": \"x,]\"},\n {\"b\": [1, {\"c\": 2}]},\n 3\n]\n");
        assert_eq!(
            got,
            [
                (2, "{\"a\": \"x,]\"}".to_owned()),
                (3, "{\"b\": [1, {\"c\": 2}]}".to_owned()),
                (4, "3".to_owned())
            ]
        );
        // A truncated array: the tail is one (corrupt) record.
        let got = records("[{\"a\":1}, {\"b\":");
        assert_eq!(
            got,
            [(1, "{\"a\":1}".to_owned()), (1, "{\"b\":".to_owned())]
        );
    }

    #[test]
    fn records_keep_contract_fields_as_text_and_rescue_the_rest() {
        let entity = super::super::contract::PROCEDURES;
        let mut builder = BatchBuilder::new(entity, "procedures/p.jsonl", 0, "b1");
        let record = RawRecord {
            line: 7,
            text: r#"{"procedure_id":12,"cpt_code":"99213","extra":{"x":true},"description":null}"#
                .to_owned(),
        };
        builder.push(&record).expect("an object");
        assert!(
            builder
                .push(&RawRecord {
                    line: 8,
                    text: "[1]".into()
                })
                .is_err()
        );
        let batch = builder.finish().expect("batch");
        assert_eq!(batch.num_rows(), 1);
        let text = |name: &str| {
            let column = batch.column_by_name(name).expect("column");
            arrow::util::display::array_value_to_string(column, 0).expect("display")
        };
        assert_eq!(text("procedure_id"), "12");
        assert_eq!(text("cpt_code"), "99213");
        assert_eq!(text("_rescued_data"), r#"{"extra":{"x":true}}"#);
        assert_eq!(text("_source_line"), "7");
        assert!(
            batch
                .column_by_name("description")
                .expect("column")
                .is_null(0)
        );
    }
}
