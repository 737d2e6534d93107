//! End-to-end tests of the `medilake` maintenance commands: `table optimize` (bin-packing,
//! dry run, `--where`, Z-order/Hilbert clustering), `table clustering` (files read per point
//! probe, before and after clustering) and `table vacuum` (retention check, `--force`,
//! dry run, real run). Tables are created with `table write` in temporary directories and
//! read back with `table show --format jsonl`. When `MEDILAKE_CONFORMANCE_DIR` is set, a
//! forced VACUUM with retention 0 also runs on copies of Spark- and Databricks-written
//! tables with deletion vectors and change data files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {}", out.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out.stderr.trim_end().to_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines().map(json).collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The rows of the table as JSON objects, sorted by `lab_id`.
fn rows(uri: &str) -> Vec<Value> {
    let mut rows = jsonl(&ok(&["table", "show", uri, "--format", "jsonl"]));
    rows.sort_by_key(|r| r["lab_id"].as_i64().unwrap_or(i64::MIN));
    rows
}

/// The paths of the live files.
fn live_files(uri: &str) -> BTreeSet<String> {
    jsonl(&ok(&["table", "files", uri, "--json"]))
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_owned))
        .collect()
}

/// Operations of `table history`, newest first.
fn operations(uri: &str) -> Vec<String> {
    jsonl(&ok(&["table", "history", uri, "--json"]))
        .iter()
        .map(|c| c["operation"].as_str().unwrap_or("-").to_owned())
        .collect()
}

fn latest_version(uri: &str) -> u64 {
    json(&ok(&["table", "describe", uri, "--json"]))["version"]
        .as_u64()
        .expect("version")
}

/// Append the JSON-lines `lines` to the table (creating it, partitioned by `partition_by`).
fn append(dir: &Path, uri: &str, name: &str, lines: &[String], partition_by: Option<&str>) {
    let input = dir.join(name);
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let mut args = vec!["table", "write", uri, "--input", path_str(&input)];
    if let Some(columns) = partition_by {
        args.extend(["--partition-by", columns]);
    }
    ok(&args);
}

/// `averageFiles` of each single-column probe and of the combined one, from
/// `table clustering --json`.
fn probe_averages(report: &Value) -> (Vec<f64>, f64) {
    let columns = report["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|p| p["averageFiles"].as_f64().expect("averageFiles"))
        .collect();
    let combined = report["combined"]["averageFiles"]
        .as_f64()
        .expect("combined averageFiles");
    (columns, combined)
}

// ---------------------------------------------------------------------------------------------
// compaction and vacuum
// ---------------------------------------------------------------------------------------------

/// Four appends of six rows over two `day` partitions: eight small files.
fn partitioned_table(dir: &Path) -> String {
    let uri = path_str(&dir.join("labs")).to_owned();
    for append_no in 0..4 {
        let lines: Vec<String> = (0..6)
            .map(|i| {
                let id = append_no * 6 + i;
                format!(
                    r#"{{"lab_id": {id}, "patient_id": {}, "test": "t{}", "value": {}.5, "day": "2024-03-0{}"}}"#,
                    id % 5,
                    id % 3,
                    id,
                    1 + i % 2
                )
            })
            .collect();
        append(
            dir,
            &uri,
            &format!("in{append_no}.jsonl"),
            &lines,
            Some("day"),
        );
    }
    uri
}

#[test]
fn optimize_compacts_and_vacuum_deletes_the_old_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = partitioned_table(dir.path());
    let uri = uri.as_str();
    let before_rows = rows(uri);
    assert_eq!(before_rows.len(), 24);
    let small_files = live_files(uri);
    assert_eq!(small_files.len(), 8);
    assert_eq!(latest_version(uri), 3);

    // Dry run: the plan, and nothing changes.
    let plan = ok(&["table", "optimize", uri, "--dry-run"]);
    assert!(
        plan.starts_with("plan (compact): 2 bins, 8 files, "),
        "{plan}"
    );
    assert!(
        plan.contains("bin 1: {day=2024-03-01}: 4 files, "),
        "{plan}"
    );
    assert!(
        plan.contains("bin 2: {day=2024-03-02}: 4 files, "),
        "{plan}"
    );
    assert!(plan.contains("dry run: nothing written"), "{plan}");
    let dry = json(&ok(&["table", "optimize", uri, "--dry-run", "--json"]));
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["numBins"], 2);
    assert_eq!(dry["numFiles"], 8);
    assert_eq!(dry["version"], Value::Null);
    assert_eq!(dry["bins"][0]["partition"]["day"], "2024-03-01");
    assert_eq!(dry["bins"][0]["files"], 4);
    assert_eq!(dry["filesRemoved"], 0);
    assert_eq!(latest_version(uri), 3);
    assert_eq!(live_files(uri), small_files);

    // --where only on partition columns; a bad size is a usage error.
    let error = fails(&["table", "optimize", uri, "--where", "value > 1"], 1);
    assert!(error.contains("partition columns"), "{error}");
    let error = fails(&["table", "optimize", uri, "--target-size", "4XB"], 2);
    assert!(error.contains("not a size"), "{error}");
    // --where on a partition: only that partition's bin.
    let one = json(&ok(&[
        "table",
        "optimize",
        uri,
        "--where",
        "day = '2024-03-02'",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(one["numBins"], 1);
    assert_eq!(one["bins"][0]["partition"]["day"], "2024-03-02");

    // The real run: one file per partition, the same rows.
    let text = ok(&["table", "optimize", uri, "--target-size", "128MiB"]);
    assert!(text.contains("plan (compact): 2 bins, 8 files"), "{text}");
    assert!(
        text.contains("version 4: 24 rows rewritten (data unchanged)"),
        "{text}"
    );
    assert!(text.contains("files: 8 removed ("), "{text}");
    assert!(text.contains("), 2 added ("), "{text}");
    let compacted = live_files(uri);
    assert_eq!(compacted.len(), 2);
    assert!(compacted.is_disjoint(&small_files));
    assert_eq!(rows(uri), before_rows);
    // A second run has nothing to do.
    let again = ok(&["table", "optimize", uri]);
    assert!(again.starts_with("nothing to optimize"), "{again}");
    let again = json(&ok(&["table", "optimize", uri, "--json"]));
    assert_eq!(again["numBins"], 0);
    assert_eq!(again["version"], Value::Null);
    assert_eq!(latest_version(uri), 4);

    // VACUUM: the removed files are within the default 7-day retention.
    let dry = ok(&["table", "vacuum", uri, "--dry-run"]);
    assert_eq!(
        dry,
        "dry run: nothing to delete with a retention of 168 hours; no new version\n"
    );
    let error = fails(&["table", "vacuum", uri, "--retain-hours", "0"], 1);
    assert!(error.contains("--force"), "{error}");
    let error = fails(
        &["table", "vacuum", uri, "--retain-hours", "0", "--dry-run"],
        1,
    );
    assert!(error.contains("--force"), "{error}");
    assert_eq!(latest_version(uri), 4);

    // Forced dry run: exactly the eight compacted-away files, none deleted.
    let listed = ok(&[
        "table",
        "vacuum",
        uri,
        "--retain-hours",
        "0",
        "--force",
        "--dry-run",
    ]);
    assert!(listed.starts_with("dry run: 8 files ("), "{listed}");
    for file in &small_files {
        assert!(listed.contains(&format!("  {file}\n")), "{file}: {listed}");
    }
    let listed = json(&ok(&[
        "table",
        "vacuum",
        uri,
        "--retain-hours",
        "0",
        "--force",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(listed["dryRun"], true);
    assert_eq!(listed["retentionHours"], 0.0);
    let listed_files: BTreeSet<String> = listed["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    assert_eq!(listed_files, small_files);
    let listed_bytes = listed["bytes"].as_u64().expect("bytes");
    assert!(listed_bytes > 0);
    for file in &small_files {
        assert!(
            Path::new(uri).join(file).exists(),
            "{file} deleted by a dry run"
        );
    }
    assert_eq!(latest_version(uri), 4);

    // The real run deletes them; every row is still there.
    let done = ok(&["table", "vacuum", uri, "--retain-hours", "0", "--force"]);
    assert_eq!(
        done,
        format!(
            "deleted 8 files ({listed_bytes} bytes) with a retention of 0 hours; recorded as \
             VACUUM START and VACUUM END commits\n"
        )
    );
    for file in &small_files {
        assert!(!Path::new(uri).join(file).exists(), "{file} not deleted");
    }
    for file in &compacted {
        assert!(Path::new(uri).join(file).exists(), "live {file} deleted");
    }
    assert_eq!(rows(uri), before_rows);
    let after = json(&ok(&[
        "table",
        "vacuum",
        uri,
        "--retain-hours",
        "0",
        "--force",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(after["numFiles"], 0);
    assert_eq!(
        operations(uri)[..3],
        ["VACUUM END", "VACUUM START", "OPTIMIZE"]
    );
    // What --force costs: versions before OPTIMIZE can no longer be read.
    fails(&["table", "show", uri, "--version", "3"], 1);
}

// ---------------------------------------------------------------------------------------------
// clustering
// ---------------------------------------------------------------------------------------------

/// A deterministic permutation of `0..n` (Fisher-Yates with xorshift64*).
fn shuffled(n: usize, mut seed: u64) -> Vec<usize> {
    let mut items: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = usize::try_from(r % (i as u64 + 1)).expect("index");
        items.swap(i, j);
    }
    items
}

/// 10,000 lab rows (every pair of 100 patients and 100 LOINC codes), shuffled and written
/// in ten appends of 1,000 rows: ten unpartitioned files that each span every value.
fn shuffled_table(dir: &Path) -> String {
    let uri = path_str(&dir.join("lab_results")).to_owned();
    let order = shuffled(10_000, 0x9E37_79B9_7F4A_7C15);
    for (chunk_no, chunk) in order.chunks(1_000).enumerate() {
        let lines: Vec<String> = chunk
            .iter()
            .map(|&id| {
                format!(
                    r#"{{"lab_id": {id}, "patient_id": {}, "loinc_code": "{:05}-{}", "value": {}.25}}"#,
                    1_000 + id / 100,
                    10_000 + (id % 100) * 37,
                    id % 10,
                    id % 997
                )
            })
            .collect();
        append(dir, &uri, &format!("chunk{chunk_no}.jsonl"), &lines, None);
    }
    uri
}

fn clustering_report(uri: &str) -> Value {
    json(&ok(&[
        "table",
        "clustering",
        uri,
        "--columns",
        "patient_id,loinc_code",
        "--json",
    ]))
}

#[test]
fn zorder_clusters_so_point_probes_read_fewer_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = shuffled_table(dir.path());
    let uri = uri.as_str();
    let before_rows = rows(uri);
    assert_eq!(before_rows.len(), 10_000);

    let before = clustering_report(uri);
    assert_eq!(before["totalFiles"], 10);
    assert_eq!(before["samples"], 200);
    assert_eq!(before["columns"][0]["columns"][0], "patient_id");
    assert_eq!(before["columns"][0]["probes"], 200);
    assert_eq!(before["combined"]["columns"][1], "loinc_code");
    let (before_columns, before_combined) = probe_averages(&before);
    // Shuffled appends: every file spans every value.
    for average in &before_columns {
        assert!((average - 10.0).abs() < 1e-9, "{before}");
    }
    assert!((before_combined - 10.0).abs() < 1e-9, "{before}");
    assert_eq!(before["columns"][0]["overlapDepth"], 10);
    let text = ok(&[
        "table",
        "clustering",
        uri,
        "--columns",
        "patient_id,loinc_code",
    ]);
    assert!(text.contains("patient_id AND loinc_code"), "{text}");
    assert!(text.contains("overlap depth"), "{text}");

    // A target size of a tenth of the table: about ten files.
    let total_bytes = json(&ok(&["table", "describe", uri, "--json"]))["totalBytes"]
        .as_u64()
        .expect("totalBytes");
    let target = (total_bytes / 10 + 1).to_string();
    let plan = ok(&[
        "table",
        "optimize",
        uri,
        "--zorder-by",
        "patient_id,loinc_code",
        "--target-size",
        &target,
        "--dry-run",
    ]);
    assert!(
        plan.starts_with(
            "plan (cluster by patient_id, loinc_code along the hilbert curve): 1 bin, 10 files, "
        ),
        "{plan}"
    );
    assert!(plan.contains("bin 1: (unpartitioned): 10 files"), "{plan}");
    let report = json(&ok(&[
        "table",
        "optimize",
        uri,
        "--zorder-by",
        "patient_id,loinc_code",
        "--target-size",
        &target,
        "--json",
    ]));
    assert_eq!(report["curve"], "hilbert");
    assert_eq!(report["dryRun"], false);
    assert_eq!(report["filesRemoved"], 10);
    assert_eq!(report["rows"], 10_000);
    let added = report["filesAdded"].as_u64().expect("filesAdded");
    assert!((8..=12).contains(&added), "{report}");
    assert_eq!(rows(uri), before_rows);

    let after = clustering_report(uri);
    assert_eq!(after["totalFiles"], added);
    let (after_columns, after_combined) = probe_averages(&after);
    // √10 ≈ 3.2 is the floor for each column; require clearly fewer than before.
    for (b, a) in before_columns.iter().zip(&after_columns) {
        assert!(*a <= b / 2.0, "before {before} after {after}");
    }
    assert!(after_combined <= 2.5, "before {before} after {after}");
    for column in after["columns"].as_array().expect("columns") {
        assert!(
            column["overlapDepth"].as_u64().expect("depth") < 10,
            "{after}"
        );
    }

    // The same clustering again rewrites nothing.
    let again = json(&ok(&[
        "table",
        "optimize",
        uri,
        "--zorder-by",
        "patient_id,loinc_code",
        "--target-size",
        &target,
        "--json",
    ]));
    assert_eq!(again["numBins"], 0, "{again}");
    assert_eq!(again["version"], Value::Null);

    // Morton is a different clustering: it rewrites every file, and also beats the
    // shuffled layout.
    let morton = json(&ok(&[
        "table",
        "optimize",
        uri,
        "--zorder-by",
        "patient_id,loinc_code",
        "--curve",
        "morton",
        "--target-size",
        &target,
        "--json",
    ]));
    assert_eq!(morton["curve"], "morton");
    assert_eq!(morton["filesRemoved"], added);
    assert_eq!(rows(uri), before_rows);
    let (morton_columns, _) = probe_averages(&clustering_report(uri));
    for (b, m) in before_columns.iter().zip(&morton_columns) {
        assert!(m < b, "before {before_columns:?} morton {morton_columns:?}");
    }
    let operations = operations(uri);
    assert_eq!(operations[..2], ["OPTIMIZE", "OPTIMIZE"]);

    // Time travel: the clustering of the shuffled version is still measurable.
    let old = json(&ok(&[
        "table",
        "clustering",
        uri,
        "--columns",
        "patient_id",
        "--version",
        "9",
        "--json",
    ]));
    assert_eq!(old["version"], 9);
    assert_eq!(old["totalFiles"], 10);
    assert_eq!(old["combined"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// conformance tables (MEDILAKE_CONFORMANCE_DIR)
// ---------------------------------------------------------------------------------------------

/// Copy a directory tree (file names byte-exact).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// `%XX` escapes decoded (log paths are URI-encoded; VACUUM lists decoded paths).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        if bytes[i] == b'%'
            && let Some(hex) = hex
        {
            let digits = std::str::from_utf8(hex).expect("ASCII");
            out.push(u8::from_str_radix(digits, 16).expect("hex digits"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 path")
}

/// The rows of any table as sorted JSON lines.
fn row_lines(uri: &str) -> Vec<String> {
    let mut lines: Vec<String> = ok(&["table", "show", uri, "--format", "jsonl"])
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// On copies of tables with deletion vectors and `_change_data` files, a forced VACUUM with
/// retention 0 never lists a live data file, and after the real run every row is still
/// readable (so no live data or deletion-vector file was deleted).
#[test]
fn forced_vacuum_keeps_live_files_of_spark_tables() {
    let Some(root) = std::env::var_os("MEDILAKE_CONFORMANCE_DIR").map(PathBuf::from) else {
        return;
    };
    let tables = [
        "delta-kernel-rs-data/cdf-table-with-cdc-and-dvs",
        "delta-kernel-rs-data/cdf-table",
        "delta-kernel-rs-data/cdf-table-partitioned",
        "delta-kernel-java-tests/basic-dv-with-checkpoint",
        "delta-rs/table_with_deletion_logs",
        "delta-kernel-rs-golden/dv-partitioned-with-checkpoint",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for table in tables {
        let mut source = root.join(table);
        if source.join("delta").join("_delta_log").is_dir() {
            source = source.join("delta");
        }
        assert!(
            source.join("_delta_log").is_dir(),
            "{} missing",
            source.display()
        );
        let copy = dir.path().join(table.replace('/', "__"));
        copy_dir(&source, &copy);
        let uri = path_str(&copy);
        let before = row_lines(uri);
        let live: BTreeSet<String> = live_files(uri).iter().map(|p| percent_decode(p)).collect();

        let listed = json(&ok(&[
            "table",
            "vacuum",
            uri,
            "--retain-hours",
            "0",
            "--force",
            "--dry-run",
            "--json",
        ]));
        let listed: Vec<String> = listed["files"]
            .as_array()
            .expect("files")
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        assert!(!listed.is_empty(), "{table}: nothing to vacuum");
        for file in &listed {
            assert!(!live.contains(file), "{table}: live file {file} listed");
            assert!(!file.starts_with("_delta_log"), "{table}: {file} listed");
            assert!(copy.join(file).is_file(), "{table}: {file} does not exist");
        }

        let done = ok(&["table", "vacuum", uri, "--retain-hours", "0", "--force"]);
        assert!(
            done.starts_with(&format!("deleted {} file", listed.len())),
            "{table}: {done}"
        );
        for file in &live {
            assert!(copy.join(file).is_file(), "{table}: live {file} deleted");
        }
        assert_eq!(row_lines(uri), before, "{table}: rows changed");
        assert_eq!(
            operations(uri)[..2],
            ["VACUUM END", "VACUUM START"],
            "{table}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

#[test]
fn maintenance_errors_are_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = partitioned_table(dir.path());
    let uri = uri.as_str();
    // Usage errors (exit 2).
    fails(&["table", "optimize", uri, "--curve", "hilbert"], 2);
    fails(
        &[
            "table",
            "optimize",
            uri,
            "--curve",
            "peano",
            "--zorder-by",
            "x",
        ],
        2,
    );
    fails(&["table", "clustering", uri], 2);
    fails(
        &[
            "table",
            "clustering",
            uri,
            "--columns",
            "lab_id",
            "--samples",
            "0",
        ],
        2,
    );
    fails(&["table", "vacuum", uri, "--retain-hours", "-1"], 2);
    fails(&["table", "optimize", uri, "--memory-budget", "lots"], 2);
    // Failures (exit 1), naming the column but no row value.
    let error = fails(&["table", "optimize", uri, "--zorder-by", "day"], 1);
    assert!(error.contains("partition column"), "{error}");
    let error = fails(&["table", "optimize", uri, "--zorder-by", "nope"], 1);
    assert!(error.contains("`nope`"), "{error}");
    let error = fails(&["table", "optimize", uri, "--where", "day = "], 1);
    assert!(error.contains("invalid --where predicate"), "{error}");
    let error = fails(&["table", "clustering", uri, "--columns", "nope"], 1);
    assert!(error.contains("`nope`"), "{error}");
    let missing = path_str(&dir.path().join("missing")).to_owned();
    fails(&["table", "optimize", &missing], 1);
    fails(&["table", "vacuum", &missing], 1);
    fails(&["table", "clustering", &missing, "--columns", "a"], 1);
    // None of this changed the table.
    assert_eq!(latest_version(uri), 3);
}
