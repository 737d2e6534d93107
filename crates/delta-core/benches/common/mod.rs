//! Deterministic benchmark tables, generated once into `target/bench-tables/` and reused.
//!
//! Every table is built in `<name>.partial/` and renamed to `<name>/` when complete, so a
//! table directory that exists is whole. Delete `target/bench-tables/` to regenerate (or set
//! `MEDILAKE_BENCH_TABLES` to use another directory). The same tables are read by
//! `tests/python/bench_deltars.py` for the delta-rs side of BENCHMARKS.md.
//!
//! Log tables (`log_1000`, `log_1000_cp`, `files_1m`) only have commit files and
//! checkpoints: nobody opens their data files, so the data files do not exist. The scan
//! table (`scan_2m`) has real parquet files.

#![allow(dead_code, reason = "each bench binary uses a subset of the fixtures")]

use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use delta_core::Table;
use delta_core::action::{Action, Add, CommitInfo, Metadata, Protocol, Remove, format_commit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Milliseconds since the epoch of the first commit (2023-11-14T22:13:20Z).
pub const BASE_TIME_MS: i64 = 1_700_000_000_000;

/// Commits in `log_1000` and `log_1000_cp` (versions 0..=999).
pub const LOG_COMMITS: u64 = 1_000;
/// Files added by every commit of the log tables.
pub const LOG_ADDS_PER_COMMIT: u64 = 4;
/// Every this many commits (from version 10 on), one older file is removed.
pub const LOG_REMOVE_EVERY: u64 = 10;

/// Files added by commit 0 of `files_1m`.
pub const MANY_FILES: u64 = 1_000_000;
/// Single-file commits after the checkpoint of `files_1m` (versions 1..=10,000).
pub const MANY_FILES_TAIL: u64 = 10_000;

/// Data files of `scan_2m`.
pub const SCAN_FILES: u64 = 20;
/// Rows per data file of `scan_2m`.
pub const SCAN_ROWS_PER_FILE: u64 = 100_000;
/// Rows per batch, for both sides of the scan benchmark.
pub const SCAN_BATCH_ROWS: usize = 8192;

const TWO_COLUMNS: &str = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"value","type":"string","nullable":true,"metadata":{}}]}"#;
const FOUR_COLUMNS: &str = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"value","type":"string","nullable":true,"metadata":{}},{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},{"name":"amount","type":"double","nullable":true,"metadata":{}}]}"#;

/// Where the benchmark tables live (created if missing).
#[must_use]
pub fn tables_dir() -> PathBuf {
    let dir = std::env::var_os("MEDILAKE_BENCH_TABLES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-tables"),
        PathBuf::from,
    );
    fs::create_dir_all(&dir).expect("create the bench-tables directory");
    dir.canonicalize()
        .expect("canonicalize the bench-tables directory")
}

/// A path as the `&str` that `Table::open` takes.
#[must_use]
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("bench paths are UTF-8")
}

/// Open the table at `path`.
#[must_use]
pub fn open(path: &Path) -> Table {
    Table::open(path_str(path), &HashMap::new()).expect("open bench table")
}

/// A tokio runtime like an application's: two worker threads.
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// CPU time (user + system, all threads) this process has used so far, in milliseconds,
/// from `/proc/self/stat` (clock ticks: 10 ms at the usual 100 Hz, so average over many
/// loads for short ones). `None` where `/proc` is missing.
#[must_use]
pub fn process_cpu_ms() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1000.0 / CLOCK_TICKS_PER_SECOND)
}

/// `sysconf(_SC_CLK_TCK)` on Linux (fixed at 100 by the kernel's user ABI).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The table `name`, built by `build` into a scratch directory first if it does not exist.
fn ensure(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let dir = tables_dir();
    let table = dir.join(name);
    if table.is_dir() {
        return table;
    }
    let partial = dir.join(format!("{name}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).expect("remove a half-built table");
    }
    fs::create_dir_all(partial.join("_delta_log")).expect("create _delta_log");
    eprintln!("generating bench table {} ...", table.display());
    let started = std::time::Instant::now();
    build(&partial);
    fs::rename(&partial, &table).expect("publish the bench table");
    eprintln!("generated {} in {:.1?}", table.display(), started.elapsed());
    table
}

/// `log_1000`: 1,000 JSON commits, no checkpoint.
#[must_use]
pub fn log_1000() -> PathBuf {
    ensure("log_1000", write_log_commits)
}

/// `log_1000_cp`: the commits of `log_1000` plus our checkpoint at version 999.
#[must_use]
pub fn log_1000_cp() -> PathBuf {
    ensure("log_1000_cp", |t| {
        write_log_commits(t);
        checkpoint_latest(t);
    })
}

/// `files_1m`: commit 0 adds 1,000,000 files, a checkpoint at 0 (ours), then 10,000
/// commits of one file each.
#[must_use]
pub fn files_1m() -> PathBuf {
    ensure("files_1m", |t| {
        write_many_files_commit(t);
        checkpoint_latest(t);
        for v in 1..=MANY_FILES_TAIL {
            let add = log_add(v, 0, 1);
            write_commit(t, v, &[commit_info(v, "WRITE", 1), Action::Add(add)]);
        }
    })
}

/// `scan_2m`: 20 parquet files of 100,000 rows (`id`, `value`, `ts`, `amount`) and one
/// commit adding them.
#[must_use]
pub fn scan_2m() -> PathBuf {
    ensure("scan_2m", write_scan_table)
}

/// Live files expected in `log_1000` at its latest version.
#[must_use]
pub fn log_1000_live_files() -> usize {
    let removes = (1..LOG_COMMITS)
        .filter(|v| v.is_multiple_of(LOG_REMOVE_EVERY))
        .count();
    usize::try_from(LOG_COMMITS * LOG_ADDS_PER_COMMIT).expect("fits") - removes
}

/// Live files expected in `files_1m` at its latest version.
#[must_use]
pub fn files_1m_live_files() -> usize {
    usize::try_from(MANY_FILES + MANY_FILES_TAIL).expect("fits")
}

/// SplitMix64: a deterministic stream of well-mixed numbers.
#[must_use]
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn to_i64(x: u64) -> i64 {
    i64::try_from(x).expect("bench numbers fit in i64")
}

fn write_commit(table: &Path, version: u64, actions: &[Action]) {
    let path = table.join("_delta_log").join(format!("{version:020}.json"));
    fs::write(path, format_commit(actions)).expect("write commit");
}

fn protocol() -> Action {
    Action::Protocol(Protocol {
        min_reader_version: 1,
        min_writer_version: 2,
        ..Default::default()
    })
}

fn metadata(schema: &str) -> Action {
    Action::Metadata(Metadata {
        id: "6b1f3c1e-8f2a-4d0b-9a57-0c5e2d7f4a10".to_owned(),
        schema_string: schema.to_owned(),
        created_time: Some(BASE_TIME_MS),
        ..Default::default()
    })
}

fn commit_info(version: u64, operation: &str, files: u64) -> Action {
    let value = serde_json::json!({
        "timestamp": BASE_TIME_MS + to_i64(version) * 1_000,
        "operation": operation,
        "operationParameters": {"mode": "Append"},
        "operationMetrics": {"numFiles": files.to_string(), "numOutputRows": (files * 100).to_string()},
        "engineInfo": "medilake-bench",
        "isBlindAppend": operation == "WRITE",
    });
    let serde_json::Value::Object(map) = value else {
        unreachable!("a JSON object literal")
    };
    Action::CommitInfo(CommitInfo(map))
}

/// The deterministic name of file `index` added by commit `version`.
fn file_name(version: u64, index: u64) -> String {
    let h = mix(version << 32 | index);
    format!(
        "part-{version:05}-{index:07}-{:08x}-{:04x}-{:012x}.c000.snappy.parquet",
        h >> 32,
        (h >> 16) & 0xffff,
        mix(h) & 0xffff_ffff_ffff
    )
}

/// The `add` of file `index` of commit `version`; `per_commit` spaces the id ranges.
fn log_add(version: u64, index: u64, per_commit: u64) -> Add {
    let k = version * per_commit + index;
    let (lo, hi) = (k * 100, k * 100 + 99);
    let stats = format!(
        r#"{{"numRecords":100,"minValues":{{"id":{lo},"value":"value-{lo:010}"}},"maxValues":{{"id":{hi},"value":"value-{hi:010}"}},"nullCount":{{"id":0,"value":0}}}}"#
    );
    Add {
        path: file_name(version, index),
        partition_values: HashMap::new(),
        size: 4_096 + to_i64(mix(k) % 2_048),
        modification_time: BASE_TIME_MS + to_i64(version) * 1_000,
        data_change: true,
        stats: Some(stats),
        ..Default::default()
    }
}

/// Commits 0..=999 of the log tables: 4 adds each, and from version 10 on every 10th
/// commit also removes the first file of the commit five versions earlier.
fn write_log_commits(table: &Path) {
    for v in 0..LOG_COMMITS {
        let mut actions = Vec::new();
        let removes = v > 0 && v.is_multiple_of(LOG_REMOVE_EVERY);
        actions.push(commit_info(
            v,
            if removes { "DELETE" } else { "WRITE" },
            LOG_ADDS_PER_COMMIT,
        ));
        if v == 0 {
            actions.push(protocol());
            actions.push(metadata(TWO_COLUMNS));
        }
        if removes {
            let old = log_add(v - 5, 0, LOG_ADDS_PER_COMMIT);
            actions.push(Action::Remove(Remove {
                path: old.path,
                deletion_timestamp: Some(BASE_TIME_MS + to_i64(v) * 1_000),
                data_change: true,
                extended_file_metadata: Some(true),
                partition_values: Some(HashMap::new()),
                size: Some(old.size),
                ..Default::default()
            }));
        }
        for i in 0..LOG_ADDS_PER_COMMIT {
            actions.push(Action::Add(log_add(v, i, LOG_ADDS_PER_COMMIT)));
        }
        write_commit(table, v, &actions);
    }
}

/// Commit 0 of `files_1m`, written one action at a time (about 300 MB of JSON).
fn write_many_files_commit(table: &Path) {
    let path = table.join("_delta_log").join(format!("{:020}.json", 0));
    let file = fs::File::create(path).expect("create commit 0");
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let head = [
        commit_info(0, "WRITE", MANY_FILES),
        protocol(),
        metadata(TWO_COLUMNS),
    ];
    out.write_all(&format_commit(&head))
        .expect("write commit 0");
    for i in 0..MANY_FILES {
        let add = log_add(0, i, MANY_FILES);
        out.write_all(&format_commit(&[Action::Add(add)]))
            .expect("write commit 0");
    }
    out.flush().expect("flush commit 0");
}

/// Write our checkpoint of the table's latest version.
fn checkpoint_latest(table: &Path) {
    let rt = runtime();
    rt.block_on(async {
        let t = open(table);
        let snapshot = t.snapshot().await.expect("load the new bench table");
        t.checkpoint(&snapshot).await.expect("write the checkpoint");
    });
}

/// The Arrow schema of `scan_2m`'s data files (Delta's `timestamp` is µs in UTC).
#[must_use]
pub fn scan_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("value", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("amount", DataType::Float64, true),
    ]))
}

fn write_scan_table(table: &Path) {
    let schema = scan_schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(usize::try_from(SCAN_ROWS_PER_FILE).expect("fits")))
        .build();
    let mut actions = vec![
        commit_info(0, "WRITE", SCAN_FILES),
        protocol(),
        metadata(FOUR_COLUMNS),
    ];
    for f in 0..SCAN_FILES {
        let first = f * SCAN_ROWS_PER_FILE;
        let rows = first..first + SCAN_ROWS_PER_FILE;
        let ids: Vec<i64> = rows.clone().map(to_i64).collect();
        let values: Vec<String> = rows
            .clone()
            .map(|r| format!("patient-{:08}", mix(r) % 100_000_000))
            .collect();
        let ts: Vec<i64> = rows
            .clone()
            .map(|r| (BASE_TIME_MS + to_i64(r)) * 1_000)
            .collect();
        let amounts: Vec<Option<f64>> = rows
            .clone()
            .map(|r| {
                let h = mix(r ^ 0xA5A5);
                #[allow(clippy::cast_precision_loss, reason = "synthetic amounts")]
                (!h.is_multiple_of(50)).then(|| (h % 1_000_000) as f64 / 100.0)
            })
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(values.clone())),
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(Float64Array::from(amounts.clone())),
            ],
        )
        .expect("scan batch");
        let name = file_name(0, f);
        let file = fs::File::create(table.join(&name)).expect("create data file");
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))
            .expect("parquet writer");
        writer.write(&batch).expect("write data file");
        writer.close().expect("close data file");
        let size = fs::metadata(table.join(&name))
            .expect("stat data file")
            .len();
        let present: Vec<f64> = amounts.iter().flatten().copied().collect();
        let min_amount = present.iter().copied().fold(f64::INFINITY, f64::min);
        let max_amount = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let nulls = amounts.len() - present.len();
        let min_value = values.iter().min().expect("rows");
        let max_value = values.iter().max().expect("rows");
        let stats = serde_json::json!({
            "numRecords": SCAN_ROWS_PER_FILE,
            "minValues": {"id": ids[0], "value": min_value, "amount": min_amount},
            "maxValues": {"id": ids[ids.len() - 1], "value": max_value, "amount": max_amount},
            "nullCount": {"id": 0, "value": 0, "ts": 0, "amount": nulls},
        });
        actions.push(Action::Add(Add {
            path: name,
            partition_values: HashMap::new(),
            size: to_i64(size),
            modification_time: BASE_TIME_MS,
            data_change: true,
            stats: Some(stats.to_string()),
            ..Default::default()
        }));
    }
    write_commit(table, 0, &actions);
}
