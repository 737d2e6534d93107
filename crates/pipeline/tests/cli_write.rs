//! End-to-end tests of the `medilake` commands that write: `table write` (JSON lines, CSV,
//! parquet; append, overwrite, replace-where, dynamic partition overwrite, schema merge),
//! `delete`, `update`, `checkpoint`, `set-property` and `add-constraint`, and concurrent
//! writers in separate OS processes. Every table lives in a temporary directory and is read
//! back with `table show --format jsonl`.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------------------------

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn medilake_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medilake"));
    command.args(args).env_remove("RUST_LOG");
    command
}

fn medilake(args: &[&str]) -> Output {
    let output = medilake_command(args).output().expect("run medilake");
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
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {}", out.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
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

/// The rows of the table at `uri` as JSON objects, sorted by `id`.
fn rows(uri: &str) -> Vec<Value> {
    let mut rows = jsonl(&ok(&["table", "show", uri, "--format", "jsonl"]));
    rows.sort_by_key(|r| r["id"].as_i64().unwrap_or(i64::MIN));
    rows
}

fn ids(uri: &str) -> Vec<i64> {
    rows(uri).iter().filter_map(|r| r["id"].as_i64()).collect()
}

/// The versions listed by `table history --json`, oldest first.
fn versions(uri: &str) -> Vec<u64> {
    let mut versions: Vec<u64> = jsonl(&ok(&["table", "history", uri, "--json"]))
        .iter()
        .filter_map(|c| c["version"].as_u64())
        .collect();
    versions.sort_unstable();
    versions
}

fn describe(uri: &str) -> Value {
    serde_json::from_str(&ok(&["table", "describe", uri, "--json"])).expect("describe JSON")
}

/// `name: type` of every column of the table.
fn column_types(uri: &str) -> Vec<String> {
    describe(uri)["schema"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            let data_type = match &f["type"] {
                Value::String(s) => s.clone(),
                other => other["type"].as_str().unwrap_or("?").to_owned(),
            };
            format!("{}: {data_type}", f["name"].as_str().unwrap_or("?"))
        })
        .collect()
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write input");
    path_str(&path).to_owned()
}

/// The version number in the first line of a write command's text output.
fn committed_version(stdout: &str) -> u64 {
    let first = stdout.lines().next().expect("output line");
    first
        .strip_prefix("version ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {stdout}"))
}

// ---------------------------------------------------------------------------------------------
// table write: formats
// ---------------------------------------------------------------------------------------------

#[test]
fn write_jsonl_creates_a_partitioned_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("patients");
    let uri = path_str(&table);
    let input = write_file(
        dir.path(),
        "patients.jsonl",
        concat!(
            r#"{"id": 1, "name": "ann", "state": "CA", "score": 1.5, "tags": ["a", "b"]}"#,
            "\n",
            r#"{"id": 2, "name": "bob", "state": "NY", "score": 2, "visit": {"n": 3}}"#,
            "\n\n",
            r#"{"id": 3, "name": null, "state": null, "seen": "2024-01-02T03:04:05Z"}"#,
            "\n",
        ),
    );
    let out = ok(&[
        "table",
        "write",
        uri,
        "--input",
        &input,
        "--partition-by",
        "state",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "version 0: 3 rows written (append)", "{out}");
    assert!(
        lines[1].starts_with("files: 3 added (") && lines[1].contains("0 removed"),
        "{out}"
    );

    assert_eq!(
        rows(uri),
        vec![
            json!({"id": 1, "name": "ann", "state": "CA", "score": 1.5, "tags": ["a", "b"], "visit": null, "seen": null}),
            json!({"id": 2, "name": "bob", "state": "NY", "score": 2.0, "tags": null, "visit": {"n": 3}, "seen": null}),
            // arrow-json infers timestamps as strings.
            json!({"id": 3, "name": null, "state": null, "score": null, "tags": null, "visit": null, "seen": "2024-01-02T03:04:05Z"}),
        ]
    );
    assert_eq!(
        column_types(uri),
        [
            "id: long",
            "name: string",
            "state: string",
            "score: double",
            "tags: array",
            "visit: struct",
            "seen: string"
        ]
    );
    let doc = describe(uri);
    assert_eq!(doc["partitionColumns"], json!(["state"]));
    assert_eq!(doc["protocol"]["minWriterVersion"], 2);
    assert!(table.join("state=CA").is_dir());
    assert!(table.join("state=__HIVE_DEFAULT_PARTITION__").is_dir());
    assert_eq!(
        ok(&[
            "table",
            "show",
            uri,
            "--format",
            "jsonl",
            "--where",
            "state = 'NY'"
        ])
        .lines()
        .count(),
        1
    );
}

#[test]
fn write_csv_infers_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = dir.path().join("t");
    let uri = path_str(&uri);
    let input = write_file(
        dir.path(),
        "visits.csv",
        "id,name,amount,active,day,seen\n\
         1,ann,1.5,true,2024-01-02,2024-01-02 03:04:05\n\
         2,\"b, \"\"q\"\"\",,false,2024-02-29,2024-01-02T03:04:05+01:00\n\
         3,,7,,,\n",
    );
    let out = ok(&["table", "write", uri, "--input", &input]);
    assert!(
        out.starts_with("version 0: 3 rows written (append)\n"),
        "{out}"
    );
    assert_eq!(
        column_types(uri),
        [
            "id: long",
            "name: string",
            "amount: double",
            "active: boolean",
            "day: date",
            "seen: timestamp"
        ]
    );
    assert_eq!(
        rows(uri),
        vec![
            json!({"id": 1, "name": "ann", "amount": 1.5, "active": true, "day": "2024-01-02", "seen": "2024-01-02T03:04:05.000000Z"}),
            json!({"id": 2, "name": "b, \"q\"", "amount": null, "active": false, "day": "2024-02-29", "seen": "2024-01-02T02:04:05.000000Z"}),
            json!({"id": 3, "name": null, "amount": 7.0, "active": null, "day": null, "seen": null}),
        ]
    );
}

/// A parquet file with an unsigned, a float32 and a nanosecond timestamp column.
fn make_parquet_input(path: &Path, ids: Vec<u32>, names: Vec<Option<&str>>) {
    let n = ids.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("ratio", DataType::Float32, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            true,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(UInt32Array::from(ids)) as ArrayRef,
            Arc::new(StringArray::from(names)),
            Arc::new(Float32Array::from(vec![0.5f32; n])),
            Arc::new(
                TimestampNanosecondArray::from(vec![1_704_164_645_123_456_789i64; n])
                    .with_timezone("+02:00"),
            ),
        ],
    )
    .expect("batch");
    let mut writer =
        ArrowWriter::try_new(File::create(path).expect("create"), schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

#[test]
fn write_parquet_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = dir.path().join("t");
    let uri = path_str(&uri);
    let input = dir.path().join("in.parquet");
    make_parquet_input(&input, vec![7, 8], vec![Some("x"), None]);
    ok(&["table", "write", uri, "--input", path_str(&input)]);
    assert_eq!(
        column_types(uri),
        ["id: long", "name: string", "ratio: float", "at: timestamp"]
    );
    assert_eq!(
        rows(uri),
        vec![
            json!({"id": 7, "name": "x", "ratio": 0.5, "at": "2024-01-02T03:04:05.123456Z"}),
            json!({"id": 8, "name": null, "ratio": 0.5, "at": "2024-01-02T03:04:05.123456Z"}),
        ]
    );
    // Formats mix in one write; --format overrides the extension.
    let csv = write_file(dir.path(), "more.txt", "id,name\n9,z\n");
    let out = ok(&["table", "write", uri, "--input", &csv, "--format", "csv"]);
    assert_eq!(committed_version(&out), 1);
    let json = write_file(dir.path(), "more.ndjson", "{\"id\": 10}\n");
    ok(&["table", "write", uri, "--input", &json, path_str(&input)]);
    assert_eq!(ids(uri), [7, 7, 8, 8, 9, 10]);
}

// ---------------------------------------------------------------------------------------------
// table write: modes and schemas
// ---------------------------------------------------------------------------------------------

/// A table of `id`, `name`, `st` (partition) and `v` at `dir/t`: ids 1-4 in CA, CA, NY,
/// TX, named `p1`..`p4`, with `v` 10..40.
fn partitioned_table(dir: &Path) -> String {
    let uri = dir.join("t");
    let text: String = [(1, "CA"), (2, "CA"), (3, "NY"), (4, "TX")]
        .iter()
        .map(|(id, st)| {
            format!(
                "{{\"id\":{id},\"name\":\"p{id}\",\"st\":\"{st}\",\"v\":{}}}\n",
                id * 10
            )
        })
        .collect();
    let input = write_file(dir, "base.jsonl", &text);
    ok(&[
        "table",
        "write",
        path_str(&uri),
        "--input",
        &input,
        "--partition-by",
        "st",
    ]);
    path_str(&uri).to_owned()
}

#[test]
fn append_overwrite_replace_where_and_dynamic_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = partitioned_table(dir.path());
    let uri = uri.as_str();

    let more = write_file(
        dir.path(),
        "more.jsonl",
        "{\"id\":5,\"st\":\"NY\",\"v\":50}\n",
    );
    let out: Value = serde_json::from_str(&ok(&[
        "table", "write", uri, "--input", &more, "--mode", "append", "--json",
    ]))
    .expect("json");
    assert_eq!(out["operation"], "WRITE");
    assert_eq!(out["version"], 1);
    assert_eq!(out["rowsWritten"], 1);
    assert_eq!(out["filesAdded"], 1);
    assert_eq!(out["filesRemoved"], 0);
    assert_eq!(out["attempts"], 1);
    assert_eq!(ids(uri), [1, 2, 3, 4, 5]);

    // replaceWhere: the CA rows are replaced by the input's.
    let ca = write_file(
        dir.path(),
        "ca.jsonl",
        "{\"id\":6,\"st\":\"CA\",\"v\":60}\n",
    );
    let out = ok(&[
        "table",
        "write",
        uri,
        "--input",
        &ca,
        "--replace-where",
        "st = 'CA'",
    ]);
    assert_eq!(
        out.lines().next(),
        Some("version 2: 1 row written (overwrite with --replace-where), 2 rows replaced")
    );
    assert_eq!(ids(uri), [3, 4, 5, 6]);
    // Every written row must match the predicate; nothing is committed otherwise.
    let err = fails(
        &[
            "table",
            "write",
            uri,
            "--input",
            &more,
            "--replace-where",
            "st = 'CA'",
        ],
        1,
    );
    assert!(err.contains("replaceWhere violated by 1 row"), "{err}");
    assert_eq!(versions(uri), [0, 1, 2]);

    // Dynamic partition overwrite: only NY (ids 3 and 5) is replaced.
    let ny = write_file(
        dir.path(),
        "ny.jsonl",
        "{\"id\":7,\"st\":\"NY\",\"v\":70}\n",
    );
    ok(&[
        "table",
        "write",
        uri,
        "--input",
        &ny,
        "--dynamic-partition-overwrite",
    ]);
    assert_eq!(ids(uri), [4, 6, 7]);

    // Whole-table overwrite.
    let out = ok(&[
        "table",
        "write",
        uri,
        "--input",
        &more,
        "--mode",
        "overwrite",
    ]);
    assert_eq!(committed_version(&out), 4);
    assert_eq!(ids(uri), [5]);
    // Older versions are still readable.
    assert_eq!(
        ok(&["table", "show", uri, "--format", "jsonl", "--version", "0"])
            .lines()
            .count(),
        4
    );

    // Usage: replacing rows is not an append.
    let err = fails(
        &[
            "table",
            "write",
            uri,
            "--input",
            &ca,
            "--mode",
            "append",
            "--replace-where",
            "st = 'CA'",
        ],
        1,
    );
    assert!(err.contains("--mode overwrite"), "{err}");
    // An existing table keeps its partitioning.
    let err = fails(
        &["table", "write", uri, "--input", &ca, "--partition-by", "v"],
        1,
    );
    assert!(err.contains("partitioned by"), "{err}");
    // An empty input appends nothing and commits nothing.
    let empty = write_file(dir.path(), "empty.jsonl", "");
    let out = ok(&["table", "write", uri, "--input", &empty]);
    assert!(out.starts_with("nothing to write"), "{out}");
    assert_eq!(versions(uri), [0, 1, 2, 3, 4]);
}

#[test]
fn json_into_an_existing_table_uses_its_types_and_merges_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = dir.path().join("t");
    let uri = path_str(&uri);
    let csv = write_file(
        dir.path(),
        "first.csv",
        "id,seen,day,amount\n1,2024-01-02 03:04:05,2024-01-02,1.5\n",
    );
    ok(&["table", "write", uri, "--input", &csv]);
    // Timestamps and dates in JSON are parsed as the table's column types; an integer
    // goes into a double column.
    let json = write_file(
        dir.path(),
        "more.jsonl",
        "{\"id\": 2, \"seen\": \"2024-03-01T00:00:00+01:00\", \"day\": \"2024-03-01\", \"amount\": 2}\n",
    );
    // Column names match ignoring case (as Delta's do).
    let upper = write_file(
        dir.path(),
        "upper.jsonl",
        "{\"ID\": 3, \"Seen\": \"2024-03-01 05:00:00\"}\n",
    );
    ok(&["table", "write", uri, "--input", &json, &upper]);
    assert_eq!(
        rows(uri),
        vec![
            json!({"id": 1, "seen": "2024-01-02T03:04:05.000000Z", "day": "2024-01-02", "amount": 1.5}),
            json!({"id": 2, "seen": "2024-02-29T23:00:00.000000Z", "day": "2024-03-01", "amount": 2.0}),
            json!({"id": 3, "seen": "2024-03-01T05:00:00.000000Z", "day": null, "amount": null}),
        ]
    );

    // A column the table lacks: an error naming the file and column, unless merging.
    let extra = write_file(dir.path(), "extra.jsonl", "{\"id\": 4, \"note\": \"n\"}\n");
    let err = fails(&["table", "write", uri, "--input", &extra], 1);
    assert!(err.contains("extra.jsonl"), "{err}");
    assert!(err.contains("`note`"), "{err}");
    assert!(err.contains("--merge-schema"), "{err}");
    assert_eq!(versions(uri), [0, 1]);
    ok(&["table", "write", uri, "--input", &extra, "--merge-schema"]);
    assert_eq!(
        column_types(uri),
        [
            "id: long",
            "seen: timestamp",
            "day: date",
            "amount: double",
            "note: string"
        ]
    );
    let last = rows(uri).pop().expect("row");
    assert_eq!(last["note"], "n");
    assert_eq!(rows(uri)[0]["note"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// delete, update
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_and_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = partitioned_table(dir.path());
    let uri = uri.as_str();

    let out = ok(&["table", "delete", uri, "--where", "v > 100"]);
    assert_eq!(
        out.trim_end(),
        "nothing to delete: no rows match; no new version"
    );
    let out: Value = serde_json::from_str(&ok(&[
        "table", "delete", uri, "--where", "v > 100", "--json",
    ]))
    .expect("json");
    assert_eq!(out["version"], Value::Null);
    assert_eq!(versions(uri), [0]);

    // Part of the CA file: one row deleted, one copied.
    let out = ok(&["table", "delete", uri, "--where", "id = 1"]);
    assert_eq!(
        out.lines().next(),
        Some("version 1: 1 row deleted, 1 row copied into rewritten files")
    );
    assert_eq!(ids(uri), [2, 3, 4]);
    let out: Value = serde_json::from_str(&ok(&[
        "table",
        "delete",
        uri,
        "--where",
        "st = 'TX'",
        "--json",
    ]))
    .expect("json");
    assert_eq!(out["version"], 2);
    assert_eq!(out["rowsAffected"], 1);
    assert_eq!(out["filesRemoved"], 1);
    assert_eq!(out["filesAdded"], 0);
    assert_eq!(ids(uri), [2, 3]);

    // SET with a string holding `,` and `=`, and a column reference.
    let out = ok(&[
        "table",
        "update",
        uri,
        "--set",
        "v = id, name = 'a, b = c'",
        "--where",
        "st = 'NY'",
    ]);
    assert!(out.starts_with("version 3: 1 row updated\n"), "{out}");
    assert_eq!(
        rows(uri),
        vec![
            json!({"id": 2, "name": "p2", "st": "CA", "v": 20}),
            json!({"id": 3, "name": "a, b = c", "st": "NY", "v": 3}),
        ]
    );
    let out = ok(&["table", "update", uri, "--set", "v = NULL", "--all"]);
    assert!(out.starts_with("version 4: 2 rows updated\n"), "{out}");
    assert!(rows(uri).iter().all(|r| r["v"].is_null()));
    let out = ok(&[
        "table", "update", uri, "--set", "v = 1", "--where", "id = 99",
    ]);
    assert!(out.starts_with("nothing to update"), "{out}");

    let err = fails(
        &[
            "table", "update", uri, "--set", "nope = 1", "--where", "id = 2",
        ],
        1,
    );
    assert!(err.contains("nope"), "{err}");
    let err = fails(&["table", "update", uri, "--set", "st = 'XX'", "--all"], 1);
    assert!(err.contains("partition column"), "{err}");
    let err = fails(&["table", "update", uri, "--set", "v 1", "--all"], 1);
    assert!(err.contains("--set"), "{err}");

    let out = ok(&["table", "delete", uri, "--all"]);
    assert!(out.starts_with("version 5: 2 rows deleted\n"), "{out}");
    assert!(rows(uri).is_empty());

    // --where or --all is required.
    fails(&["table", "delete", uri], 2);
    fails(&["table", "update", uri, "--set", "v = 1"], 2);
    let err = fails(&["table", "delete", uri, "--where", "v >"], 1);
    assert!(err.contains("--where"), "{err}");
    let err = fails(
        &[
            "table",
            "delete",
            path_str(&dir.path().join("missing")),
            "--all",
        ],
        1,
    );
    assert!(err.contains("not a delta table"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// checkpoint, set-property, add-constraint
// ---------------------------------------------------------------------------------------------

#[test]
fn merge_updates_inserts_and_prints_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = partitioned_table(dir.path());
    let uri = uri.as_str();
    // id 2 (CA) is updated, 9 inserted; `name` is absent, so update-all fails, and
    // insert-all needs --merge-schema to insert NULL names.
    let source = write_file(
        dir.path(),
        "source.jsonl",
        "{\"id\":2,\"st\":\"CA\",\"v\":-2}\n{\"id\":9,\"st\":\"WA\",\"v\":90}\n",
    );
    let message = fails(
        &[
            "table",
            "merge",
            uri,
            "--source",
            &source,
            "--on",
            "t.id = s.id",
            "--when-matched",
            "update-all",
        ],
        1,
    );
    assert!(
        message.contains("WHEN MATCHED clause 1 (UPDATE *)") && message.contains("`name`"),
        "{message}"
    );
    let out = ok(&[
        "table",
        "merge",
        uri,
        "--source",
        &source,
        "--on",
        "t.id = s.id",
        "--when-matched",
        "update SET v = s.v, name = 'changed'",
        "--when-not-matched",
        "insert-all",
        "--merge-schema",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "version 1: merged 2 source rows: 1 updated, 0 deleted, 1 inserted"
    );
    assert_eq!(
        lines[1],
        "target rows: 1 copied into 1 file rewritten; 1 of 3 files read (2 pruned)"
    );
    let rows = rows(uri);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1]["v"], json!(-2));
    assert_eq!(rows[1]["name"], json!("changed"));
    assert_eq!(rows[4]["id"], json!(9));
    assert_eq!(rows[4]["name"], Value::Null);

    // NOT MATCHED BY SOURCE deletes what the source lacks; JSON output.
    let keep = write_file(dir.path(), "keep.jsonl", "{\"id\":3}\n{\"id\":9}\n");
    let out: Value = serde_json::from_str(&ok(&[
        "table",
        "merge",
        uri,
        "--source",
        &keep,
        "--on",
        "t.id = s.id",
        "--when-not-matched-by-source",
        "delete",
        "--when-not-matched-by-source-condition",
        "t.v > 0",
        "--json",
    ]))
    .expect("json");
    assert_eq!(out["operation"], json!("MERGE"));
    assert_eq!(out["version"], json!(2));
    assert_eq!(out["rowsDeleted"], json!(2), "ids 1 and 4 (id 2 has v < 0)");
    assert_eq!(out["filesRead"], json!(4));
    assert_eq!(ids(uri), [2, 3, 9]);
    let history = jsonl(&ok(&["table", "history", uri, "--json"]));
    assert_eq!(history[0]["operation"], json!("MERGE"));

    // Ambiguous source: a usage of data, exit code 1, no values in the message.
    let dup = write_file(
        dir.path(),
        "dup.jsonl",
        "{\"id\":3,\"v\":1}\n{\"id\":3,\"v\":2}\n",
    );
    let message = fails(
        &[
            "table",
            "merge",
            uri,
            "--source",
            &dup,
            "--on",
            "t.id = s.id",
            "--when-matched",
            "update SET v = s.v",
        ],
        1,
    );
    assert!(message.contains("more than one source row"), "{message}");
    let message = fails(
        &[
            "table",
            "merge",
            uri,
            "--source",
            &dup,
            "--on",
            "t.id = s.id",
            "--when-matched",
            "upsert",
        ],
        1,
    );
    assert!(message.contains("unknown action"), "{message}");
    assert_eq!(versions(uri), [0, 1, 2]);
}

#[test]
fn checkpoint_set_property_and_constraints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = partitioned_table(dir.path());
    let uri = uri.as_str();
    let log = Path::new(uri).join("_delta_log");

    let out = ok(&["table", "checkpoint", uri]);
    assert_eq!(
        out.trim_end(),
        "checkpoint of version 0 written: _delta_log/00000000000000000000.checkpoint.parquet \
         (3 live files)"
    );
    assert!(
        log.join("00000000000000000000.checkpoint.parquet")
            .is_file()
    );
    let hint: Value = serde_json::from_str(
        &std::fs::read_to_string(log.join("_last_checkpoint")).expect("_last_checkpoint"),
    )
    .expect("json");
    assert_eq!(hint["version"], 0);
    assert_eq!(hint["numOfAddFiles"], 3);
    assert_eq!(ids(uri), [1, 2, 3, 4]);

    let out = ok(&[
        "table",
        "set-property",
        uri,
        "team=ehr",
        "delta.appendOnly=false",
    ]);
    assert_eq!(
        out.trim_end(),
        "version 1: set team=ehr, delta.appendOnly=false"
    );
    let doc = describe(uri);
    assert_eq!(doc["properties"]["team"], "ehr");
    assert_eq!(doc["properties"]["delta.appendOnly"], "false");
    fails(&["table", "set-property", uri, "novalue"], 2);

    // Existing rows that violate the constraint: its name and their count.
    let err = fails(&["table", "add-constraint", uri, "small", "v < 25"], 1);
    assert!(err.contains("constraint small violated by 2 row"), "{err}");
    assert_eq!(versions(uri), [0, 1]);
    let out: Value = serde_json::from_str(&ok(&[
        "table",
        "add-constraint",
        uri,
        "positive",
        "v > 0",
        "--json",
    ]))
    .expect("json");
    assert_eq!(out["version"], 2);
    assert_eq!(out["constraint"], "positive");
    assert_eq!(
        describe(uri)["properties"]["delta.constraints.positive"],
        "v > 0"
    );
    let err = fails(&["table", "add-constraint", uri, "positive", "v > 1"], 1);
    assert!(err.contains("already exists"), "{err}");

    // A write that breaks it fails with the count and commits nothing.
    let bad = write_file(
        dir.path(),
        "bad.jsonl",
        "{\"id\":8,\"st\":\"CA\",\"v\":-1}\n{\"id\":9,\"st\":\"CA\",\"v\":-2}\n{\"id\":10,\"st\":\"CA\",\"v\":3}\n",
    );
    let err = fails(&["table", "write", uri, "--input", &bad], 1);
    assert!(
        err.contains("constraint positive violated by 2 row"),
        "{err}"
    );
    assert!(!err.contains("-1") && !err.contains("-2"), "{err}");
    let err = fails(
        &[
            "table", "update", uri, "--set", "v = -5", "--where", "id = 1",
        ],
        1,
    );
    assert!(
        err.contains("constraint positive violated by 1 row"),
        "{err}"
    );
    assert_eq!(versions(uri), [0, 1, 2]);
    assert_eq!(ids(uri), [1, 2, 3, 4]);
    let err = fails(&["table", "add-constraint", uri, "bad", "v >"], 1);
    assert!(err.contains("constraint bad"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// input errors
// ---------------------------------------------------------------------------------------------

#[test]
fn column_mapping_rename_and_drop_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A plain table: renames need column mapping, and the error says how to turn it on.
    let uri = partitioned_table(dir.path());
    let uri = uri.as_str();
    let err = fails(&["table", "rename-column", uri, "name", "full_name"], 1);
    assert!(err.contains("delta.columnMapping.mode = name"), "{err}");
    ok(&[
        "table",
        "set-property",
        uri,
        "delta.columnMapping.mode=name",
    ]);
    let out = ok(&["table", "rename-column", uri, "name", "full_name"]);
    assert!(
        out.starts_with("version 2: renamed name to full_name"),
        "{out}"
    );
    let out: Value =
        serde_json::from_str(&ok(&["table", "drop-column", uri, "v", "--json"])).expect("json");
    assert_eq!(out["operation"], "DROP COLUMNS");
    assert_eq!(out["version"], 3);
    let err = fails(&["table", "drop-column", uri, "st"], 1);
    assert!(err.contains("partition column"), "{err}");
    let all = rows(uri);
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["full_name"], "p1");
    assert!(
        all.iter()
            .all(|r| r.get("v").is_none() && r.get("name").is_none())
    );
    let described = ok(&["table", "describe", uri]);
    assert!(described.contains("full_name"), "{described}");
    assert!(described.contains("[physical name name"), "{described}");

    // A new table created with column mapping: physical names are fresh, ids are listed.
    let input = write_file(dir.path(), "m.jsonl", "{\"id\":1,\"site\":\"a b\"}\n");
    let mapped = dir.path().join("mapped");
    let mapped = path_str(&mapped);
    ok(&[
        "table",
        "write",
        mapped,
        "--input",
        &input,
        "--property",
        "delta.columnMapping.mode=id",
    ]);
    let doc = describe(mapped);
    assert_eq!(doc["properties"]["delta.columnMapping.mode"], "id");
    assert_eq!(doc["properties"]["delta.columnMapping.maxColumnId"], "2");
    ok(&["table", "rename-column", mapped, "site", "clinic"]);
    assert_eq!(rows(mapped)[0]["clinic"], "a b");
    let err = fails(
        &[
            "table",
            "write",
            mapped,
            "--input",
            &input,
            "--property",
            "x=y",
        ],
        1,
    );
    assert!(err.contains("use `medilake table set-property`"), "{err}");
}

#[test]
fn input_errors_name_the_file_and_line_but_no_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = dir.path().join("t");
    let uri = path_str(&uri);
    let good = write_file(dir.path(), "good.jsonl", "{\"id\": 1, \"name\": \"a\"}\n");

    // A new table: nothing is created when an input file is bad.
    let syntax = write_file(
        dir.path(),
        "syntax.jsonl",
        "{\"id\": 2}\n{\"id\": 3, \"name\": \"SECRET-1\"\n",
    );
    let err = fails(&["table", "write", uri, "--input", &good, &syntax], 1);
    assert!(err.contains("syntax.jsonl line 2"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    assert!(!Path::new(uri).join("_delta_log").exists());

    ok(&["table", "write", uri, "--input", &good]);
    // A type error beyond the lines read for inference is found when decoding.
    let mut text = String::new();
    for i in 0..1500 {
        text.push_str(&format!("{{\"id\": {i}, \"name\": \"n\"}}\n"));
    }
    text.push_str("{\"id\": \"SECRET-2\", \"name\": \"n\"}\n");
    let late = write_file(dir.path(), "late.jsonl", &text);
    let err = fails(&["table", "write", uri, "--input", &late], 1);
    assert!(err.contains("late.jsonl line 1501"), "{err}");
    assert!(err.contains("column `id`"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    // A field never seen while inferring.
    let mut text: String = (0..1500)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"n\"}}\n"))
        .collect();
    text.push_str("{\"id\": 1, \"zz\": 1}\n");
    let new_field = write_file(dir.path(), "newfield.jsonl", &text);
    let err = fails(&["table", "write", uri, "--input", &new_field], 1);
    assert!(err.contains("newfield.jsonl line 1501"), "{err}");
    assert!(err.contains("`zz`"), "{err}");
    let not_object = write_file(dir.path(), "array.jsonl", "[1, 2]\n");
    let err = fails(&["table", "write", uri, "--input", &not_object], 1);
    assert!(
        err.contains("array.jsonl line 1: expected a JSON object"),
        "{err}"
    );

    let csv = write_file(dir.path(), "bad.csv", "id,name\n1,a\nSECRET-3,b\n");
    let err = fails(&["table", "write", uri, "--input", &csv], 1);
    assert!(err.contains("bad.csv: line 3: column `id`"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    let ragged = write_file(dir.path(), "ragged.csv", "id,name\n1,a,x\n");
    let err = fails(&["table", "write", uri, "--input", &ragged], 1);
    assert!(err.contains("ragged.csv"), "{err}");

    // A parquet string column that does not convert to the table's long.
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec!["5", "SECRET-4"])) as ArrayRef],
    )
    .expect("batch");
    let parquet = dir.path().join("bad.parquet");
    let mut writer = ArrowWriter::try_new(File::create(&parquet).expect("create"), schema, None)
        .expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let err = fails(&["table", "write", uri, "--input", path_str(&parquet)], 1);
    assert!(err.contains("bad.parquet"), "{err}");
    assert!(err.contains("row 2"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    let not_parquet = write_file(dir.path(), "fake.parquet", "not parquet");
    let err = fails(&["table", "write", uri, "--input", &not_parquet], 1);
    assert!(err.contains("fake.parquet"), "{err}");

    let err = fails(&["table", "write", uri, "--input", "notes.txt"], 1);
    assert!(err.contains("--format"), "{err}");
    let missing = dir.path().join("missing.jsonl");
    let err = fails(&["table", "write", uri, "--input", path_str(&missing)], 1);
    assert!(err.contains("missing.jsonl"), "{err}");
    fails(&["table", "write", uri], 2);
    fails(
        &["table", "write", uri, "--input", &good, "--format", "xml"],
        2,
    );

    // Nothing of the failed writes became visible.
    assert_eq!(versions(uri), [0]);
    assert_eq!(ids(uri), [1]);
}

// ---------------------------------------------------------------------------------------------
// concurrent processes
// ---------------------------------------------------------------------------------------------

fn spawn(args: &[&str]) -> Child {
    medilake_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn medilake")
}

#[test]
fn many_processes_append_to_one_table() {
    const WRITERS: i64 = 8;
    const ROWS: i64 = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = dir.path().join("t");
    let uri = path_str(&uri);
    let first = write_file(dir.path(), "first.jsonl", "{\"id\": -1, \"writer\": -1}\n");
    ok(&["table", "write", uri, "--input", &first]);

    let inputs: Vec<String> = (0..WRITERS)
        .map(|w| {
            let text: String = (0..ROWS)
                .map(|r| format!("{{\"id\": {}, \"writer\": {w}}}\n", w * 1000 + r))
                .collect();
            write_file(dir.path(), &format!("w{w}.jsonl"), &text)
        })
        .collect();
    // Start every process before waiting for any.
    let children: Vec<Child> = inputs
        .iter()
        .map(|input| spawn(&["table", "write", uri, "--input", input]))
        .collect();
    let mut committed = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "a writer failed: {stderr}");
        committed.push(committed_version(&stdout));
    }
    committed.sort_unstable();
    let expected: Vec<u64> = (1..=WRITERS as u64).collect();
    assert_eq!(committed, expected, "each writer committed its own version");
    // Gap-free history: versions 0..=N.
    assert_eq!(versions(uri), (0..=WRITERS as u64).collect::<Vec<_>>());
    // Every row exactly once.
    let mut want: Vec<i64> = (0..WRITERS)
        .flat_map(|w| (0..ROWS).map(move |r| w * 1000 + r))
        .collect();
    want.push(-1);
    want.sort_unstable();
    assert_eq!(ids(uri), want);
}

#[test]
fn concurrent_deletes_of_one_file_conflict_or_serialize() {
    for round in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let uri = dir.path().join("t");
        let uri = path_str(&uri);
        let text: String = (1..=20).map(|i| format!("{{\"id\": {i}}}\n")).collect();
        let input = write_file(dir.path(), "rows.jsonl", &text);
        ok(&["table", "write", uri, "--input", &input]);
        assert_eq!(
            jsonl(&ok(&["table", "files", uri, "--json"]))
                .last()
                .expect("summary")["total"],
            1,
            "one data file"
        );

        // Both predicates touch the one file: each rewrites it.
        let low = spawn(&["table", "delete", uri, "--where", "id <= 5"]);
        let high = spawn(&["table", "delete", uri, "--where", "id >= 16"]);
        let outcomes: Vec<(bool, String)> = [low, high]
            .into_iter()
            .map(|child| {
                let output = child.wait_with_output().expect("wait");
                (
                    output.status.success(),
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                )
            })
            .collect();
        let low_range: Vec<i64> = (1..=5).collect();
        let high_range: Vec<i64> = (16..=20).collect();
        let remaining = |deleted: &[&[i64]]| -> Vec<i64> {
            (1..=20)
                .filter(|i| !deleted.iter().any(|d| d.contains(i)))
                .collect()
        };
        let expected = match (&outcomes[0], &outcomes[1]) {
            ((true, _), (true, _)) => {
                assert_eq!(versions(uri), [0, 1, 2], "round {round}");
                remaining(&[&low_range, &high_range])
            }
            ((true, _), (false, err)) => {
                assert!(err.contains("conflict"), "round {round}: {err}");
                assert_eq!(err.lines().count(), 1, "{err}");
                remaining(&[&low_range])
            }
            ((false, err), (true, _)) => {
                assert!(err.contains("conflict"), "round {round}: {err}");
                assert_eq!(err.lines().count(), 1, "{err}");
                remaining(&[&high_range])
            }
            ((false, a), (false, b)) => panic!("round {round}: both deletes failed: {a} / {b}"),
        };
        assert_eq!(ids(uri), expected, "round {round}");
        if outcomes.iter().any(|(ok, _)| !ok) {
            assert_eq!(versions(uri), [0, 1], "round {round}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// table changes
// ---------------------------------------------------------------------------------------------

#[test]
fn changes_print_rows_and_where_they_came_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("t");
    let uri = path_str(&table);
    let first = write_file(dir.path(), "a.jsonl", "{\"id\": 1}\n{\"id\": 2}\n");
    let second = write_file(dir.path(), "b.jsonl", "{\"id\": 3}\n");
    let _ = ok(&["table", "write", uri, "--input", &first]);
    let _ = ok(&[
        "table",
        "set-property",
        uri,
        "delta.enableChangeDataFeed=true",
    ]);
    let _ = ok(&["table", "write", uri, "--input", &second]);
    let _ = ok(&[
        "table",
        "write",
        uri,
        "--input",
        &second,
        "--mode",
        "overwrite",
    ]);

    let rows = jsonl(&ok(&[
        "table", "changes", uri, "--from", "1", "--format", "jsonl",
    ]));
    let mut got: Vec<(i64, String, i64)> = rows
        .iter()
        .map(|r| {
            assert!(r["_commit_timestamp"].is_string(), "{r}");
            (
                r["_commit_version"].as_i64().expect("version"),
                r["_change_type"].as_str().expect("type").to_owned(),
                r["id"].as_i64().expect("id"),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(i64, String, i64)> = [
        (2, "insert", 3),
        (3, "delete", 1),
        (3, "delete", 2),
        (3, "delete", 3),
        (3, "insert", 3),
    ]
    .into_iter()
    .map(|(v, k, i)| (v, k.to_owned(), i))
    .collect();
    assert_eq!(got, want);

    let text = ok(&["table", "changes", uri, "--from", "2", "--to", "2"]);
    assert!(
        text.contains("| 3  | insert       | 2               |"),
        "{text}"
    );
    assert!(text.contains("\n1 row\n"), "{text}");
    let summary: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("changes of versions"))
        .collect();
    assert_eq!(
        summary[0],
        "changes of versions 2 to 2 (columns of version 3):"
    );
    assert!(summary[1].starts_with("  v2  "), "{text}");
    assert!(
        summary[1].ends_with("1 insert: from add/remove actions (1 file, no cdc files)"),
        "{text}"
    );
    let text = ok(&["table", "changes", uri, "--from", "1", "--to", "1"]);
    assert!(text.contains("no rows: no data change"), "{text}");

    // Version 0 was written before the feed was enabled.
    let err = fails(&["table", "changes", uri, "--from", "0"], 1);
    assert!(err.contains("not recorded at version 0"), "{err}");
    let err = fails(&["table", "changes", uri, "--from", "3", "--to", "2"], 1);
    assert!(err.contains("after its end version 2"), "{err}");
    let _ = fails(&["table", "changes", uri], 2);
    let _ = fails(
        &[
            "table",
            "changes",
            uri,
            "--from",
            "1",
            "--from-timestamp",
            "2024-01-01",
        ],
        2,
    );
}
