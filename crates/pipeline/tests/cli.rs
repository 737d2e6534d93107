//! End-to-end tests of the `medilake` binary.
//!
//! Most tests run against a tiny Delta table written by hand in a temporary directory (two
//! commits, a partition column, stats, a `txn`). When `MEDILAKE_CONFORMANCE_DIR` is set
//! (`./test.sh` sets it), more run against Spark-written golden tables and compare the
//! `jsonl` output with the expected rows, read independently with the `parquet` crate.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use base64::Engine as _;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------------------------

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn medilake(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_medilake"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run medilake");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Run and require success with an empty stderr; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = medilake(args);
    assert_eq!(out.code, 0, "{args:?} failed: {}", out.stderr);
    assert!(
        out.stderr.is_empty(),
        "{args:?} wrote to stderr: {}",
        out.stderr
    );
    out.stdout
}

/// Run and require exit code `code` with exactly one `error: ` line on stderr; returns it.
fn fails(args: &[&str], code: i32) -> String {
    let out = medilake(args);
    assert_eq!(
        out.code, code,
        "{args:?}: stdout {} stderr {}",
        out.stdout, out.stderr
    );
    if code == 1 {
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: not one line: {}", out.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(!out.stderr.contains("backtrace"), "{}", out.stderr);
    }
    out.stderr.trim_end().to_owned()
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

// ---------------------------------------------------------------------------------------------
// a hand-written table
// ---------------------------------------------------------------------------------------------

const SCHEMA_STRING: &str = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}},{"name":"score","type":"double","nullable":true,"metadata":{}},{"name":"day","type":"date","nullable":true,"metadata":{}},{"name":"part","type":"string","nullable":true,"metadata":{}}]}"#;

/// Write the data columns (no partition column) to `path`; returns the file size.
fn write_parquet(
    path: &Path,
    ids: Vec<i64>,
    names: Vec<Option<&str>>,
    scores: Vec<Option<f64>>,
    days: Vec<Option<i32>>,
) -> u64 {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("day", DataType::Date32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)) as ArrayRef,
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(scores)),
            Arc::new(Date32Array::from(days)),
        ],
    )
    .expect("batch");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut writer =
        ArrowWriter::try_new(File::create(path).expect("create"), schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    std::fs::metadata(path).expect("stat").len()
}

fn commit(root: &Path, version: u64, actions: &[Value]) {
    let log = root.join("_delta_log");
    std::fs::create_dir_all(&log).expect("mkdir _delta_log");
    let text: String = actions.iter().map(|a| format!("{a}\n")).collect();
    std::fs::write(log.join(format!("{version:020}.json")), text).expect("write commit");
}

/// Two commits: v0 creates the table (partition `part`) with three rows in `part=a`;
/// v1 appends two rows in `part=b` and records app transaction `test-app` → 7.
fn tiny_table() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // 2024-01-01 = day 19723
    let size_a = write_parquet(
        &root.join("part=a/a.parquet"),
        vec![1, 2, 3],
        vec![Some("ann"), None, Some("c\"q")],
        vec![Some(1.5), Some(f64::NAN), Some(-0.25)],
        vec![Some(19_723), None, Some(-1)],
    );
    let size_b = write_parquet(
        &root.join("part=b/b.parquet"),
        vec![10, 11],
        vec![Some("x"), Some("y")],
        vec![None, Some(f64::INFINITY)],
        vec![Some(19_782), Some(19_783)],
    );
    commit(
        root,
        0,
        &[
            json!({"commitInfo": {"timestamp": 1_704_067_200_000_i64, "operation": "WRITE",
                "operationParameters": {"mode": "Append", "partitionBy": "[\"part\"]"},
                "operationMetrics": {"numFiles": "1", "numOutputRows": "3"},
                "engineInfo": "medilake-tests"}}),
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            json!({"metaData": {"id": "00000000-0000-0000-0000-000000000001", "name": "tiny",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": SCHEMA_STRING, "partitionColumns": ["part"],
                "configuration": {"delta.checkpointInterval": "100"},
                "createdTime": 1_704_067_200_000_i64}}),
            json!({"add": {"path": "part=a/a.parquet", "partitionValues": {"part": "a"},
                "size": size_a, "modificationTime": 1_704_067_200_000_i64, "dataChange": true,
                "stats": r#"{"numRecords":3,"minValues":{"id":1,"name":"ann","day":"1969-12-31"},"maxValues":{"id":3,"name":"c\"q","day":"2024-01-01"},"nullCount":{"id":0,"name":1,"day":1}}"#}}),
        ],
    );
    commit(
        root,
        1,
        &[
            json!({"commitInfo": {"timestamp": 1_704_153_600_000_i64, "operation": "WRITE",
                "operationParameters": {"mode": "Append"}, "engineInfo": "medilake-tests"}}),
            json!({"add": {"path": "part=b/b.parquet", "partitionValues": {"part": "b"},
                "size": size_b, "modificationTime": 1_704_153_600_000_i64, "dataChange": true,
                "stats": r#"{"numRecords":2,"minValues":{"id":10,"name":"x"},"maxValues":{"id":11,"name":"y"},"nullCount":{"id":0,"name":0}}"#}}),
            json!({"txn": {"appId": "test-app", "version": 7}}),
        ],
    );
    dir
}

fn sorted_by_id(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r["id"].as_i64().unwrap_or(i64::MIN));
    rows
}

// ---------------------------------------------------------------------------------------------
// show
// ---------------------------------------------------------------------------------------------

#[test]
fn show_jsonl_formats_values_and_keeps_column_order() {
    let dir = tiny_table();
    let uri = path_str(dir.path());
    let out = ok(&["table", "show", uri, "--format", "jsonl"]);
    for line in out.lines() {
        let positions: Vec<usize> = [
            "\"id\":",
            "\"name\":",
            "\"score\":",
            "\"day\":",
            "\"part\":",
        ]
        .iter()
        .map(|k| {
            line.find(k)
                .unwrap_or_else(|| panic!("{k} missing in {line}"))
        })
        .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key order: {line}"
        );
    }
    let rows = sorted_by_id(jsonl(&out));
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "name": "ann", "score": 1.5, "day": "2024-01-01", "part": "a"}),
            json!({"id": 2, "name": null, "score": "NaN", "day": null, "part": "a"}),
            json!({"id": 3, "name": "c\"q", "score": -0.25, "day": "1969-12-31", "part": "a"}),
            json!({"id": 10, "name": "x", "score": null, "day": "2024-02-29", "part": "b"}),
            json!({"id": 11, "name": "y", "score": "Infinity", "day": "2024-03-01", "part": "b"}),
        ]
    );
}

#[test]
fn show_where_columns_limit_and_time_travel() {
    let dir = tiny_table();
    let uri = path_str(dir.path());

    let out = ok(&[
        "table",
        "show",
        uri,
        "--format",
        "jsonl",
        "--where",
        "id >= 3 AND id < 11",
    ]);
    let ids: Vec<i64> = sorted_by_id(jsonl(&out))
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![3, 10]);

    let out = ok(&[
        "table",
        "show",
        uri,
        "--format",
        "jsonl",
        "--columns",
        "name,id",
        "--where",
        "part = 'b'",
    ]);
    for line in out.lines() {
        assert!(line.starts_with("{\"name\":"), "projection order: {line}");
        assert!(!line.contains("\"part\""), "{line}");
    }
    assert_eq!(out.lines().count(), 2);

    let out = ok(&["table", "show", uri, "--format", "jsonl", "--limit", "1"]);
    assert_eq!(out.lines().count(), 1);

    let out = ok(&["table", "show", uri, "--format", "jsonl", "--version", "0"]);
    assert_eq!(out.lines().count(), 3);

    // Commit files were written just now; far in the future is the latest version.
    let out = ok(&[
        "table",
        "show",
        uri,
        "--format",
        "jsonl",
        "--timestamp",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(out.lines().count(), 5);
    let err = fails(&["table", "show", uri, "--timestamp", "2000-01-01"], 1);
    assert!(err.contains(uri), "{err}");
}

#[test]
fn show_csv_and_table() {
    let dir = tiny_table();
    let uri = path_str(dir.path());
    let out = ok(&[
        "table", "show", uri, "--format", "csv", "--where", "id <= 3",
    ]);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.remove(0), "id,name,score,day,part");
    lines.sort_unstable();
    assert_eq!(
        lines,
        vec![
            "1,ann,1.5,2024-01-01,a",
            "2,,NaN,,a",
            "3,\"c\"\"q\",-0.25,1969-12-31,a",
        ]
    );

    let out = ok(&["table", "show", uri]);
    assert!(out.contains("| id"), "{out}");
    assert!(out.contains("ann"), "{out}");
    assert!(out.trim_end().ends_with("5 rows"), "{out}");

    let out = ok(&["table", "show", uri, "--where", "id > 100"]);
    assert!(
        out.contains("| id"),
        "an empty result still shows the columns: {out}"
    );
    assert!(out.trim_end().ends_with("0 rows"), "{out}");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let dir = tiny_table();
    let mut child = Command::new(env!("CARGO_BIN_EXE_medilake"))
        .args(["table", "show", path_str(dir.path()), "--format", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{:?}", output);
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// describe, history, files, log
// ---------------------------------------------------------------------------------------------

#[test]
fn describe_text_and_json() {
    let dir = tiny_table();
    let uri = path_str(dir.path());
    let out = ok(&["table", "describe", uri]);
    for needle in [
        "version:           1",
        "reader v1, writer v2",
        "appendOnly, invariants",
        "partition columns: part",
        "files:             2",
        "total rows:        5",
        "delta.checkpointInterval = 100",
        "test-app: version 7",
        " |-- id: long (nullable = false)",
        " |-- part: string (nullable = true)",
        "name:              tiny",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }

    let doc: Value =
        serde_json::from_str(&ok(&["table", "describe", uri, "--json"])).expect("json");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["numFiles"], 2);
    assert_eq!(doc["totalRows"], 5);
    assert_eq!(doc["rowsHiddenByDeletionVectors"], 0);
    assert_eq!(doc["protocol"]["minWriterVersion"], 2);
    assert_eq!(
        doc["features"]["writer"],
        json!(["appendOnly", "invariants"])
    );
    assert_eq!(doc["partitionColumns"], json!(["part"]));
    assert_eq!(doc["schema"]["fields"][0]["name"], "id");
    assert_eq!(doc["appTransactions"][0]["appId"], "test-app");

    let doc: Value =
        serde_json::from_str(&ok(&["table", "describe", uri, "--json", "--version", "0"]))
            .expect("json");
    assert_eq!(doc["version"], 0);
    assert_eq!(doc["totalRows"], 3);
}

#[test]
fn history_newest_first() {
    let dir = tiny_table();
    let uri = path_str(dir.path());
    let out = ok(&["table", "history", uri]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("1  "), "{out}");
    assert!(lines[1].starts_with("0  "), "{out}");
    assert!(lines[1].contains("WRITE"), "{out}");
    assert!(
        lines[1].contains(r#"{"mode":"Append","partitionBy":"[\"part\"]"}"#),
        "{out}"
    );
    assert!(lines[1].contains(r#""numOutputRows":"3""#), "{out}");

    let rows = jsonl(&ok(&["table", "history", uri, "--json"]));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["version"], 1);
    assert_eq!(rows[1]["operation"], "WRITE");
    assert_eq!(rows[1]["parameters"]["mode"], "Append");
    let timestamp = rows[1]["timestamp"].as_str().expect("timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'),
        "{timestamp}"
    );

    assert_eq!(
        ok(&["table", "history", uri, "--limit", "1"])
            .lines()
            .count(),
        1
    );
}

#[test]
fn files_with_and_without_predicate() {
    let dir = tiny_table();
    let uri = path_str(dir.path());

    let out = ok(&["table", "files", uri]);
    assert!(out.contains("part=a/a.parquet"), "{out}");
    assert!(out.contains("3 rows"), "{out}");
    assert!(out.contains("id 1..3"), "{out}");

    let out = ok(&["table", "files", uri, "--where", "part = 'a'"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last().copied(), Some("kept 1 of 2 files"), "{out}");
    assert!(out.contains("kept     part=a/a.parquet"), "{out}");
    assert!(out.contains("skipped  part=b/b.parquet"), "{out}");

    let out = ok(&["table", "files", uri, "--where", "id > 5", "--json"]);
    let rows = jsonl(&out);
    assert_eq!(rows.last(), Some(&json!({"kept": 1, "total": 2})));
    let a = &rows[0];
    assert_eq!(a["path"], "part=a/a.parquet");
    assert_eq!(a["rows"], 3);
    assert_eq!(a["partitionValues"], json!({"part": "a"}));
    assert_eq!(a["status"], "skipped");
    assert!(a["reason"].as_str().is_some_and(|r| !r.is_empty()), "{a}");
    assert_eq!(a["minValues"]["id"], 1);
    assert_eq!(a["maxValues"]["id"], 3);
    assert_eq!(a["nullCount"]["name"], 1);
    assert_eq!(a["deletionVector"], Value::Null);
    assert_eq!(rows[1]["status"], "kept");
    assert_eq!(rows[1]["reason"], Value::Null);
}

#[test]
fn log_explains_each_action() {
    let dir = tiny_table();
    let uri = path_str(dir.path());
    let out = ok(&["table", "log", uri, "--version", "0"]);
    for needle in [
        "commitInfo: provenance — operation WRITE at 2024-01-01T00:00:00.000Z by medilake-tests",
        "protocol: requires reader v1 / writer v2",
        "metaData: sets the schema (5 columns), partition columns [part], properties {delta.checkpointInterval=100}",
        "add: adds data file part=a/a.parquet (",
        "3 rows, partition {part=a}) [dataChange=true]",
        "\"minReaderVersion\": 1",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let latest = ok(&["table", "log", uri]);
    assert!(
        latest.contains("txn: records that application test-app committed its version 7"),
        "{latest}"
    );
    assert!(latest.starts_with("version 1 of "), "{latest}");
}

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_are_one_line_with_exit_code_1() {
    let empty = tempfile::tempdir().expect("tempdir");
    let err = fails(&["table", "show", path_str(empty.path())], 1);
    assert!(err.contains(path_str(empty.path())), "{err}");
    fails(&["table", "describe", path_str(empty.path())], 1);
    fails(&["table", "history", path_str(empty.path())], 1);
    fails(&["table", "files", path_str(empty.path())], 1);
    fails(&["table", "log", path_str(empty.path())], 1);

    let dir = tiny_table();
    let uri = path_str(dir.path());
    let err = fails(&["table", "show", uri, "--where", "id >"], 1);
    assert!(err.contains("--where"), "{err}");
    let err = fails(&["table", "show", uri, "--where", "no_such_column = 1"], 1);
    assert!(err.contains("no_such_column"), "{err}");
    let err = fails(&["table", "files", uri, "--where", "id ="], 1);
    assert!(err.contains("--where"), "{err}");
    let err = fails(&["table", "show", uri, "--columns", "id,nope"], 1);
    assert!(err.contains("nope"), "{err}");
    let err = fails(&["table", "show", uri, "--version", "9"], 1);
    assert!(err.contains("version 9"), "{err}");
    let err = fails(&["table", "log", uri, "--version", "9"], 1);
    assert!(err.contains('9'), "{err}");
    // A predicate's literal must not be echoed (it may be patient data).
    let err = fails(
        &["table", "show", uri, "--where", "name = 'SECRET-VALUE' AND"],
        1,
    );
    assert!(!err.contains("SECRET-VALUE"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    fails(&["table", "show"], 2);
    fails(&["table", "show", "x", "--timestamp", "yesterday"], 2);
    fails(&["table", "show", "x", "--format", "xml"], 2);
    fails(
        &[
            "table",
            "show",
            "x",
            "--version",
            "1",
            "--timestamp",
            "2024-01-01",
        ],
        2,
    );
    fails(&["--storage-option", "novalue", "table", "show", "x"], 2);
}

// ---------------------------------------------------------------------------------------------
// sample table (data/sample/patients)
// ---------------------------------------------------------------------------------------------

fn sample_table() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample/patients")
}

#[test]
fn sample_patients_table() {
    let root = sample_table();
    if !root.join("_delta_log").is_dir() {
        eprintln!("skipping: {} is missing", root.display());
        return;
    }
    // Also checks that a path with `..` segments works.
    let uri = path_str(&root);
    assert!(uri.contains(".."));
    let rows = jsonl(&ok(&["table", "show", uri, "--format", "jsonl"]));
    assert_eq!(rows.len(), 34);
    assert!(rows.iter().all(|r| r["active"] == true));
    assert_eq!(
        jsonl(&ok(&[
            "table",
            "show",
            uri,
            "--format",
            "jsonl",
            "--version",
            "1"
        ]))
        .len(),
        40
    );
    let ca = jsonl(&ok(&[
        "table",
        "show",
        uri,
        "--format",
        "jsonl",
        "--where",
        "state = 'CA'",
    ]));
    assert!(ca.iter().all(|r| r["state"] == "CA"));
    let copay = rows[0]["copay"].as_str().expect("decimal as string");
    assert_eq!(copay.split('.').nth(1).map(str::len), Some(2), "{copay}");
    let admitted = rows[0]["admitted_at"].as_str().expect("timestamp");
    assert!(
        admitted.ends_with('Z') && admitted.len() == 27,
        "{admitted}"
    );
    assert_eq!(ok(&["table", "history", uri]).lines().count(), 3);
}

// ---------------------------------------------------------------------------------------------
// conformance tables (MEDILAKE_CONFORMANCE_DIR)
// ---------------------------------------------------------------------------------------------

fn conformance(table: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("MEDILAKE_CONFORMANCE_DIR")?;
    let path = PathBuf::from(dir)
        .join("delta-kernel-rs-golden")
        .join(table);
    assert!(path.is_dir(), "{} does not exist", path.display());
    Some(path)
}

/// Every row of `<table>/expected/*.parquet`, read with the parquet crate.
fn expected_batches(table: &Path) -> Vec<RecordBatch> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(table.join("expected"))
        .expect("expected/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut batches = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&file).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        batches.extend(reader.map(|b| b.expect("batch")));
    }
    batches
}

/// The JSON the CLI must print for a flat value, computed here independently of the CLI.
fn expected_json(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Boolean => json!(array.as_boolean().value(row)),
        // Widened to double exactly (the project's canonical form).
        DataType::Float32 => json!(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Binary => json!(
            base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i32>().value(row))
        ),
        DataType::Decimal128(_, scale) => {
            let unscaled = array.as_primitive::<Decimal128Type>().value(row);
            let scale = u32::try_from(*scale).expect("non-negative scale");
            let factor = 10i128.pow(scale);
            let sign = if unscaled < 0 { "-" } else { "" };
            let (int, frac) = (unscaled.abs() / factor, unscaled.abs() % factor);
            if scale == 0 {
                json!(format!("{sign}{int}"))
            } else {
                json!(format!(
                    "{sign}{int}.{frac:0width$}",
                    width = scale as usize
                ))
            }
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + chrono::Duration::days(i64::from(days));
            json!(date.to_string())
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let t = chrono::DateTime::from_timestamp_micros(micros).expect("in range");
            let base = t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string();
            let fraction = micros.rem_euclid(1_000_000);
            let zone = if tz.is_some() { "Z" } else { "" };
            json!(format!("{base}.{fraction:06}{zone}"))
        }
        other => panic!("no independent formatter for {other}"),
    }
}

/// Check the `jsonl` output of a golden table against its expected parquet for the given
/// flat columns; rows are matched by `key` (a column with unique non-null values).
fn check_golden_flat_columns(table: &str, key: &str, columns: &[&str]) {
    let Some(dir) = conformance(table) else {
        return;
    };
    let out = ok(&[
        "table",
        "show",
        path_str(&dir.join("delta")),
        "--format",
        "jsonl",
    ]);
    let actual = jsonl(&out);
    let batches = expected_batches(&dir);
    let expected_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(actual.len(), expected_rows, "{table}: row count");

    let mut checked = 0;
    for batch in &batches {
        let key_column = batch.column_by_name(key).expect("key column");
        for row in 0..batch.num_rows() {
            let key_value = expected_json(key_column.as_ref(), row);
            if key_value.is_null() {
                continue;
            }
            let matches: Vec<&Value> = actual.iter().filter(|r| r[key] == key_value).collect();
            assert_eq!(matches.len(), 1, "{table}: rows with {key}={key_value}");
            for column in columns {
                let array = batch.column_by_name(column).expect("column");
                let (got, want) = (&matches[0][*column], expected_json(array.as_ref(), row));
                // serde_json (without `float_roundtrip`) may parse a float one ulp off, so
                // numbers are compared with a relative tolerance of a few ulps.
                let close = match (got.as_f64(), want.as_f64()) {
                    (Some(a), Some(b)) if got.is_f64() || want.is_f64() => {
                        (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs())
                    }
                    _ => *got == want,
                };
                assert!(
                    close,
                    "{table}: {column} of row {key}={key_value}: got {got}, want {want}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "{table}: nothing checked");
}

#[test]
fn golden_data_reader_primitives() {
    check_golden_flat_columns(
        "data-reader-primitives",
        "as_int",
        &[
            "as_long",
            "as_byte",
            "as_short",
            "as_boolean",
            "as_float",
            "as_double",
            "as_string",
            "as_binary",
            "as_big_decimal",
        ],
    );
    let Some(dir) = conformance("data-reader-primitives") else {
        return;
    };
    let out = ok(&[
        "table",
        "show",
        path_str(&dir.join("delta")),
        "--format",
        "jsonl",
    ]);
    // Keys in schema order, and the all-null row.
    for line in out.lines() {
        assert!(line.starts_with("{\"as_int\":"), "{line}");
    }
    assert!(out.lines().any(|l| l == r#"{"as_int":null,"as_long":null,"as_byte":null,"as_short":null,"as_boolean":null,"as_float":null,"as_double":null,"as_string":null,"as_binary":null,"as_big_decimal":null}"#), "{out}");
    assert!(out.lines().any(|l| l == r#"{"as_int":4,"as_long":4,"as_byte":4,"as_short":4,"as_boolean":true,"as_float":4.0,"as_double":4.0,"as_string":"4","as_binary":"BAQ=","as_big_decimal":"4"}"#), "{out}");
}

#[test]
fn golden_parquet_all_types() {
    check_golden_flat_columns(
        "parquet-all-types",
        "IntegerType",
        &[
            "ByteType",
            "ShortType",
            "LongType",
            "FloatType",
            "DoubleType",
            "decimal",
            "BooleanType",
            "StringType",
            "BinaryType",
            "DateType",
            "TimestampType",
            "TimestampNTZType",
        ],
    );
    let Some(dir) = conformance("parquet-all-types") else {
        return;
    };
    let out = ok(&[
        "table",
        "show",
        path_str(&dir.join("delta")),
        "--format",
        "jsonl",
        "--where",
        "IntegerType = 1",
    ]);
    assert_eq!(
        out.trim_end(),
        r#"{"ByteType":1,"ShortType":1,"IntegerType":1,"LongType":2,"FloatType":0.23399999737739563,"DoubleType":234234.23,"decimal":"123.52","BooleanType":false,"StringType":"1","BinaryType":"MQ==","DateType":"1970-01-01","TimestampType":"1970-01-01T06:30:23.523000Z","TimestampNTZType":"1970-01-03T17:03:54.000200","nested_struct":{"aa":"1","ac":{"aca":1}},"array_of_prims":null,"array_of_arrays":null,"array_of_structs":null,"map_of_prims":null,"map_of_rows":null,"map_of_arrays":null}"#
    );
}

#[test]
fn golden_maps_and_arrays() {
    if let Some(dir) = conformance("data-reader-map") {
        let out = ok(&[
            "table",
            "show",
            path_str(&dir.join("delta")),
            "--format",
            "jsonl",
            "--where",
            "i = 1",
        ]);
        assert_eq!(
            out.trim_end(),
            r#"{"i":1,"a":{"1":1},"b":{"1":1},"c":{"1":false},"d":{"1.0":1.0},"e":{"1":"1"},"f":{"1":[{"val":1},{"val":1},{"val":1}]}}"#
        );
    }
    if let Some(dir) = conformance("data-reader-array-primitives") {
        let out = ok(&[
            "table",
            "show",
            path_str(&dir.join("delta")),
            "--format",
            "jsonl",
        ]);
        assert!(
            out.lines().any(|l| l == r#"{"as_array_int":[1],"as_array_long":[1],"as_array_byte":[1],"as_array_short":[1],"as_array_boolean":[false],"as_array_float":[1.0],"as_array_double":[1.0],"as_array_string":["1"],"as_array_binary":["AQE="],"as_array_big_decimal":["1"]}"#),
            "{out}"
        );
    }
}

#[test]
fn golden_inserts_deletes_checkpoint() {
    let Some(dir) = conformance("basic-with-inserts-deletes-checkpoint") else {
        return;
    };
    let uri = dir.join("delta");
    let uri = path_str(&uri);
    assert_eq!(
        ok(&["table", "show", uri, "--format", "jsonl"])
            .lines()
            .count(),
        41
    );
    assert_eq!(
        ok(&["table", "show", uri, "--format", "jsonl", "--version", "4"])
            .lines()
            .count(),
        50
    );
    let doc: Value =
        serde_json::from_str(&ok(&["table", "describe", uri, "--json"])).expect("json");
    assert_eq!(doc["version"], 13);
    assert_eq!(doc["totalRows"], 41);
    assert_eq!(ok(&["table", "history", uri]).lines().count(), 14);
    let files = jsonl(&ok(&["table", "files", uri, "--json"]));
    let summary = files.last().expect("summary");
    assert_eq!(summary["kept"], summary["total"]);
    let log = ok(&["table", "log", uri, "--version", "5"]);
    assert!(log.contains("remove: removes logical file"), "{log}");
    assert!(
        log.contains("commitInfo: provenance — operation DELETE"),
        "{log}"
    );
}

#[test]
fn golden_deletion_vectors() {
    let Some(dir) = conformance("dv-partitioned-with-checkpoint") else {
        return;
    };
    let uri = dir.join("delta");
    let uri = path_str(&uri);
    assert_eq!(
        ok(&["table", "show", uri, "--format", "jsonl"])
            .lines()
            .count(),
        35
    );
    let doc: Value =
        serde_json::from_str(&ok(&["table", "describe", uri, "--json"])).expect("json");
    assert_eq!(doc["totalRows"], 37);
    assert_eq!(doc["rowsHiddenByDeletionVectors"], 2);
    assert_eq!(doc["visibleRows"], 35);
    let log = ok(&["table", "log", uri, "--version", "15"]);
    assert!(log.contains("with deletion vector hiding"), "{log}");
}

#[test]
fn golden_negative_tables_fail_cleanly() {
    if let Some(dir) = conformance("deltalog-invalid-protocol-version") {
        fails(&["table", "show", path_str(&dir.join("delta"))], 1);
        // The log is still readable as a teaching tool.
        let log = ok(&[
            "table",
            "log",
            path_str(&dir.join("delta")),
            "--version",
            "0",
        ]);
        assert!(log.contains("requires reader v99"), "{log}");
    }
    if let Some(dir) = conformance("no-delta-log-folder") {
        fails(&["table", "describe", path_str(&dir.join("delta"))], 1);
    }
}
