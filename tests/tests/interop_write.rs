//! Interop of the write path: every table shape MediLake writes (partitioned with special
//! characters and NULL partitions, all column types, after DELETE/UPDATE/overwrite/
//! replaceWhere, after MERGE, with checkpoints, after log cleanup) is read with identical rows by
//! delta-rs (`deltalake`) and by delta-kernel-rs (DuckDB's delta extension), at the latest
//! and at earlier versions; delta-rs parses our per-file statistics to the values we wrote
//! and prunes with them to the same answers.
//!
//! The peers are run through `tests/python/read_with_peers.py` (rows) and
//! `tests/python/peer_stats.py` (delta-rs's view of `add.stats` and its file pruning), with
//! the interpreter in `MEDILAKE_PYTHON` (`./test.sh` exports both variables). Outside CI
//! the tests print SKIPPED when the variables are unset; under `CI=true` they fail.
//!
//! A peer that cannot read one of our tables, or reads it differently, points at a bug in
//! our writer. Such a case is not hidden: it is listed in [`KNOWN_PEER_GAPS`] with the
//! reason, and each test asserts that exactly the listed checks fail, so a fix (or a new
//! failure) shows up.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int32Builder, Int64Array, ListArray, MapBuilder,
    RecordBatch, StringArray, StringBuilder, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema};
use delta_core::expression::parse;
use delta_core::{Error, SaveMode, Snapshot, Table};
use futures::StreamExt;
use serde_json::Value;

/// Checks known to fail because of a gap between our writer and a peer:
/// `(check key, reason)`. A key is `"<table> <engine> v<version>"` for a row comparison,
/// `"<table> stats"` for delta-rs's parse of our statistics and `"<table> prune <sql>"` for
/// a pruned read. Each test asserts that the failing keys of its table are exactly these.
const KNOWN_PEER_GAPS: &[(&str, &str)] = &[];

/// The tables of this file (the first word of a gap key).
const TABLES: &[&str] = &[
    "partitioned",
    "all_types",
    "operations",
    "checkpointed",
    "checkpoint_only",
    "cleaned",
    "maintained",
    "merged",
    "deletion_vectors_cdf",
    "column_mapping_name",
    "column_mapping_id",
];

#[test]
fn known_gaps_name_tables_and_reasons() {
    for (key, reason) in KNOWN_PEER_GAPS {
        let table = key.split(' ').next().unwrap_or_default();
        assert!(
            TABLES.contains(&table),
            "KNOWN_PEER_GAPS key `{key}` names no table of this file"
        );
        assert!(
            !reason.trim().is_empty(),
            "KNOWN_PEER_GAPS key `{key}` needs a reason"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Peers

struct Peers {
    python: PathBuf,
    reader: PathBuf,
    stats: PathBuf,
}

/// The peer scripts, or a skip (outside CI) / panic (under CI) when they are not configured.
fn peers(what: &str) -> Option<Peers> {
    let python = std::env::var_os("MEDILAKE_PYTHON").map(PathBuf::from);
    let reader = std::env::var_os("MEDILAKE_PEER_READER").map(PathBuf::from);
    match (python, reader) {
        (Some(python), Some(reader)) if reader.is_file() => {
            let stats = reader.with_file_name("peer_stats.py");
            assert!(stats.is_file(), "{} is missing", stats.display());
            Some(Peers {
                python,
                reader,
                stats,
            })
        }
        _ => {
            assert!(
                !common::in_ci(),
                "MEDILAKE_PYTHON / MEDILAKE_PEER_READER are not set under CI=true: {what} cannot be skipped (run ./test.sh)"
            );
            eprintln!(
                "SKIPPED: {what}: set MEDILAKE_PYTHON and MEDILAKE_PEER_READER (./test.sh does)"
            );
            None
        }
    }
}

const ENGINES: [&str; 2] = ["deltars", "duckdb"];

impl Peers {
    fn run(&self, script: &Path, args: &[String]) -> Result<String, String> {
        let out = Command::new(&self.python)
            .arg(script)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        if out.status.success() {
            String::from_utf8(out.stdout).map_err(|e| format!("peer output is not UTF-8: {e}"))
        } else {
            Err(format!(
                "exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The rows `engine` reads at `version` (latest when `None`), canonical and sorted.
    fn rows(&self, dir: &Path, version: Option<u64>, engine: &str) -> Result<Vec<String>, String> {
        let mut args = vec![
            dir.display().to_string(),
            "--engine".to_owned(),
            engine.to_owned(),
        ];
        if let Some(v) = version {
            args.extend(["--version".to_owned(), v.to_string()]);
        }
        let text = self.run(&self.reader, &args)?;
        let rows: Result<Vec<Value>, _> = text.lines().map(serde_json::from_str).collect();
        Ok(sorted_rows(
            rows.map_err(|e| format!("bad peer line: {e}"))?,
        ))
    }

    /// delta-rs's change data feed from version `from` (`load_cdf`), canonical and sorted,
    /// without `_commit_timestamp`.
    fn changes(&self, dir: &Path, from: u64) -> Result<Vec<String>, String> {
        let args = vec![
            dir.display().to_string(),
            "--changes".to_owned(),
            from.to_string(),
        ];
        let text = self.run(&self.reader, &args)?;
        let rows: Result<Vec<Value>, _> = text.lines().map(serde_json::from_str).collect();
        Ok(sorted_rows(
            rows.map_err(|e| format!("bad peer line: {e}"))?,
        ))
    }

    /// delta-rs's view of each live file's statistics, keyed by `add.path`.
    fn stats(&self, dir: &Path) -> Result<BTreeMap<String, Value>, String> {
        let text = self.run(&self.stats, &[dir.display().to_string()])?;
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("bad peer line: {e}"))?;
            let path = v["path"].as_str().ok_or("no path")?.to_owned();
            out.insert(path, v);
        }
        Ok(out)
    }

    /// delta-rs's pruning with the DNF filter `dnf` (JSON).
    fn prune(&self, dir: &Path, dnf: &str) -> Result<Value, String> {
        let text = self.run(
            &self.stats,
            &[
                dir.display().to_string(),
                "--filter".to_owned(),
                dnf.to_owned(),
            ],
        )?;
        serde_json::from_str(text.trim()).map_err(|e| format!("bad peer output: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// Canonical rows (as in interop_deltars.rs)

use common::{comparable as canonical, sorted_rows};

fn batch_rows(batches: &[RecordBatch]) -> Vec<String> {
    sorted_rows(batches.iter().flat_map(|b| {
        (0..b.num_rows()).map(move |r| pipeline::output::row_to_json(b, r).expect("row_to_json"))
    }))
}

/// Our rows at `version` (latest when `None`).
async fn our_rows(table: &Table, version: Option<u64>) -> delta_core::Result<(u64, Vec<String>)> {
    let snapshot = match version {
        Some(v) => table.snapshot_at(v).await?,
        None => table.snapshot().await?,
    };
    let batches = snapshot.scan().build()?.collect().await?;
    Ok((snapshot.version(), batch_rows(&batches)))
}

fn diff(ours: &[String], theirs: &[String]) -> String {
    let missing: Vec<_> = ours
        .iter()
        .filter(|r| !theirs.contains(r))
        .take(2)
        .collect();
    let extra: Vec<_> = theirs
        .iter()
        .filter(|r| !ours.contains(r))
        .take(2)
        .collect();
    format!(
        "{} rows ours vs {} theirs; ours only {missing:?}; theirs only {extra:?}",
        ours.len(),
        theirs.len()
    )
}

// ---------------------------------------------------------------------------------------
// The checks

/// Failing checks of one table, by key, with the details.
#[derive(Default)]
struct Outcome {
    table: &'static str,
    failures: BTreeMap<String, String>,
    passed: Vec<String>,
}

impl Outcome {
    fn new(table: &'static str) -> Self {
        assert!(TABLES.contains(&table), "add {table} to TABLES");
        Self {
            table,
            ..Self::default()
        }
    }

    fn record(&mut self, key: String, result: Result<(), String>) {
        match result {
            Ok(()) => self.passed.push(key),
            Err(detail) => {
                eprintln!("[{}] FAIL {key}: {detail}", self.table);
                self.failures.insert(key, detail);
            }
        }
    }

    /// Every failing check must be a known gap of this table, and every known gap must fail.
    fn finish(self) {
        let prefix = format!("{} ", self.table);
        let known: BTreeSet<&str> = KNOWN_PEER_GAPS
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.starts_with(&prefix))
            .collect();
        let failing: BTreeSet<&str> = self.failures.keys().map(String::as_str).collect();
        eprintln!(
            "[{}] {} checks passed: {}",
            self.table,
            self.passed.len(),
            self.passed.join(", ")
        );
        let fixed: Vec<_> = known.difference(&failing).collect();
        let new: Vec<_> = failing
            .difference(&known)
            .map(|k| format!("{k}: {}", self.failures[*k]))
            .collect();
        assert!(
            fixed.is_empty() && new.is_empty(),
            "{}: peer checks differ from KNOWN_PEER_GAPS.\n  now passing (remove from the list): {fixed:?}\n  failing (a writer bug?): {new:#?}",
            self.table
        );
    }
}

/// Our rows at each of `versions` (and the latest) equal what each peer reads.
fn check_rows(
    out: &mut Outcome,
    peers: &Peers,
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    versions: &[u64],
) {
    let table = open(dir);
    let mut targets: Vec<Option<u64>> = versions.iter().copied().map(Some).collect();
    targets.push(None);
    for version in targets {
        let (loaded, ours) = rt
            .block_on(our_rows(&table, version))
            .unwrap_or_else(|e| panic!("{} {version:?}: our read failed: {e}", out.table));
        if let Some(v) = version {
            assert_eq!(loaded, v);
        }
        let label = version.map_or_else(|| "latest".to_owned(), |v| format!("v{v}"));
        for engine in ENGINES {
            let result = peers.rows(dir, version, engine).and_then(|theirs| {
                if theirs == ours {
                    Ok(())
                } else {
                    Err(diff(&ours, &theirs))
                }
            });
            out.record(format!("{} {engine} {label}", out.table), result);
        }
    }
}

/// delta-rs parses each file's `add.stats` of the latest snapshot to the values we wrote.
fn check_stats(out: &mut Outcome, peers: &Peers, rt: &tokio::runtime::Runtime, dir: &Path) {
    let snapshot = rt.block_on(open(dir).snapshot()).expect("snapshot");
    let result = peers
        .stats(dir)
        .and_then(|theirs| compare_stats(&snapshot, &theirs));
    out.record(format!("{} stats", out.table), result);
}

/// Physical column paths (`a.b`) to logical ones, under the table's column mapping mode
/// (identity without column mapping).
fn logical_paths(snapshot: &Snapshot) -> HashMap<String, String> {
    fn walk(
        fields: &[delta_core::schema::StructField],
        mode: delta_core::schema::ColumnMappingMode,
        prefix: (&str, &str),
        out: &mut HashMap<String, String>,
    ) {
        for f in fields {
            let join = |p: &str, n: &str| {
                if p.is_empty() {
                    n.to_owned()
                } else {
                    format!("{p}.{n}")
                }
            };
            let physical = join(prefix.0, f.physical_name(mode));
            let logical = join(prefix.1, &f.name);
            if let delta_core::schema::DataType::Struct(s) = &f.data_type {
                walk(&s.fields, mode, (&physical, &logical), out);
            }
            out.insert(physical, logical);
        }
    }
    let mut out = HashMap::new();
    walk(
        &snapshot.schema().fields,
        snapshot.column_mapping(),
        ("", ""),
        &mut out,
    );
    out
}

fn compare_stats(snapshot: &Snapshot, theirs: &BTreeMap<String, Value>) -> Result<(), String> {
    let schema = snapshot.arrow_schema();
    // Statistics and partition values are keyed by physical names; delta-rs keys its
    // statistics so too, its partition values by logical names.
    let logical = logical_paths(snapshot);
    let logical_of = |c: &str| logical.get(c).cloned().unwrap_or_else(|| c.to_owned());
    let mut problems = Vec::new();
    let mut bounds_checked = 0usize;
    let ours: BTreeMap<&str, _> = snapshot
        .files()
        .iter()
        .map(|a| (a.path.as_str(), a))
        .collect();
    let their_paths: BTreeSet<&str> = theirs.keys().map(String::as_str).collect();
    let our_paths: BTreeSet<&str> = ours.keys().copied().collect();
    if their_paths != our_paths {
        return Err(format!(
            "delta-rs lists files {their_paths:?}, we have {our_paths:?}"
        ));
    }
    for (path, add) in &ours {
        let peer = &theirs[*path];
        let stats_text = add
            .stats
            .as_deref()
            .ok_or_else(|| format!("{path}: no stats"))?;
        let stats: Value = serde_json::from_str(&quote_numbers(stats_text))
            .map_err(|e| format!("{path}: our stats do not parse: {e}"))?;
        let num: u64 = stats["numRecords"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("numRecords")?;
        if peer["num_records"].as_u64() != Some(num) {
            problems.push(format!(
                "{path}: numRecords ours {num}, delta-rs {}",
                peer["num_records"]
            ));
        }
        for (kind, peer_kind) in [
            ("minValues", "min"),
            ("maxValues", "max"),
            ("nullCount", "null_count"),
        ] {
            let mut flat = Vec::new();
            flatten(&stats[kind], String::new(), &mut flat);
            for (column, value) in flat {
                let expected = if kind == "nullCount" {
                    value
                        .as_str()
                        .and_then(|s| s.parse::<i64>().ok())
                        .map(Value::from)
                        .unwrap_or(Value::Null)
                } else {
                    let Some(t) = field_type(&schema, &logical_of(&column)) else {
                        problems.push(format!("{path}: {kind}.{column} is not a column"));
                        continue;
                    };
                    canonical_bound(&t, &value)
                };
                let got = &peer[peer_kind][&column];
                if kind == "nullCount" && got.is_null() {
                    // delta-rs does not expose null counts of list and map columns.
                    if field_type(&schema, &logical_of(&column))
                        .is_some_and(|t| matches!(t, DataType::List(_) | DataType::Map(..)))
                    {
                        continue;
                    }
                }
                if canonical(got) != canonical(&expected) {
                    problems.push(format!(
                        "{path}: {kind}.{column} ours {expected}, delta-rs {got}"
                    ));
                } else {
                    bounds_checked += 1;
                }
            }
        }
        // Partition values, typed by delta-rs, equal ours (escaping survives the log).
        for (physical, value) in &add.partition_values {
            let column = &logical_of(physical);
            let t = field_type(&schema, column).ok_or("partition column")?;
            let expected = value.as_ref().map_or(Value::Null, |v| {
                canonical_bound(&t, &Value::String(v.clone()))
            });
            let got = &peer["partition"][column];
            if canonical(got) != canonical(&expected) {
                problems.push(format!(
                    "{path}: partition {column} ours {expected}, delta-rs {got}"
                ));
            }
        }
    }
    if problems.is_empty() {
        eprintln!(
            "  stats: {} files, {bounds_checked} values equal in delta-rs",
            ours.len()
        );
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Our pruned read with `sql` equals delta-rs's read with the equivalent tuple filter `dnf`
/// (delta-rs prunes files with our statistics and pyarrow filters the rows), and, when
/// `must_prune`, delta-rs skips at least one file: it parsed our statistics and used them.
fn check_prune(
    out: &mut Outcome,
    peers: &Peers,
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    sql: &str,
    dnf: &str,
    must_prune: bool,
) {
    let snapshot = rt.block_on(open(dir).snapshot()).expect("snapshot");
    let scan = snapshot
        .scan()
        .with_predicate(parse(sql).expect("predicate"))
        .build()
        .expect("scan");
    let ours_files: BTreeSet<String> = scan
        .kept_files()
        .map(|f| percent_decode(&f.add.path))
        .collect();
    let ours_rows = batch_rows(&rt.block_on(scan.collect()).expect("pruned scan"));
    let total = snapshot.files().len();
    let result = peers.prune(dir, dnf).and_then(|theirs| {
        let rows: Vec<Value> = theirs["rows"].as_array().ok_or("rows")?.clone();
        let their_rows = sorted_rows(rows);
        let files: BTreeSet<String> = theirs["files"]
            .as_array()
            .ok_or("files")?
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        let fragments: BTreeSet<String> = theirs["fragments"]
            .as_array()
            .ok_or("fragments")?
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        let mut problems = Vec::new();
        if their_rows != ours_rows {
            problems.push(format!("rows: {}", diff(&ours_rows, &their_rows)));
        }
        if must_prune && files.len() >= total {
            problems.push(format!("delta-rs skipped no file: it keeps all {total} (did it parse our stats?)"));
        }
        eprintln!(
            "  prune `{sql}`: {} rows; files kept: delta-rs {}, pyarrow fragments {}, ours {} (of {total})",
            ours_rows.len(),
            files.len(),
            fragments.len(),
            ours_files.len()
        );
        // Pruning power may differ (both are sound when the rows agree): shown, not asserted.
        if files != ours_files {
            let only_theirs: Vec<_> = files.difference(&ours_files).collect();
            let only_ours: Vec<_> = ours_files.difference(&files).collect();
            eprintln!("    kept only by delta-rs: {only_theirs:?}; kept only by us: {only_ours:?}");
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    });
    out.record(format!("{} prune {sql}", out.table), result);
}

// ---------------------------------------------------------------------------------------
// Statistics helpers

/// Wrap every JSON number outside strings in quotes, so that decimals and 64-bit integers
/// keep their exact text through `serde_json` (which parses numbers to f64 otherwise).
fn quote_numbers(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    let mut chars = json.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '-' || c.is_ascii_digit() {
            out.push('"');
            out.push(c);
            while let Some(&n) = chars.peek() {
                if n.is_ascii_digit() || matches!(n, '.' | 'e' | 'E' | '+' | '-') {
                    out.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push('"');
        } else {
            out.push(c);
        }
    }
    out
}

/// `{"a": 1, "st": {"b": 2}}` → `[("a", 1), ("st.b", 2)]`.
fn flatten(value: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, key, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix, other.clone())),
    }
}

/// The Arrow type of the (dotted, struct-nested) column `path`.
fn field_type(schema: &Schema, path: &str) -> Option<DataType> {
    let mut parts = path.split('.');
    let mut t = schema
        .field_with_name(parts.next()?)
        .ok()?
        .data_type()
        .clone();
    for part in parts {
        let DataType::Struct(fields) = &t else {
            return None;
        };
        t = fields
            .iter()
            .find(|f| f.name() == part)?
            .data_type()
            .clone();
    }
    Some(t)
}

/// A bound from our stats JSON (numbers quoted by [`quote_numbers`]) in canonical form.
fn canonical_bound(t: &DataType, value: &Value) -> Value {
    let Some(text) = value.as_str() else {
        return value.clone();
    };
    let float = |v: f64| {
        if v.is_nan() {
            Value::from("NaN")
        } else if v.is_infinite() {
            Value::from(if v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            Value::from(v)
        }
    };
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => text
            .parse::<i64>()
            .map_or_else(|_| value.clone(), Value::from),
        DataType::Float32 => text
            .parse::<f32>()
            .map_or_else(|_| value.clone(), |v| float(f64::from(v))),
        DataType::Float64 => text.parse::<f64>().map_or_else(|_| value.clone(), float),
        DataType::Decimal128(_, scale) => {
            Value::from(plain_decimal(text, usize::try_from(*scale).unwrap_or(0)))
        }
        DataType::Timestamp(_, zone) => {
            let (body, z) = text.strip_suffix('Z').map_or((text, ""), |b| (b, "Z"));
            let body = body.replace(' ', "T");
            let (secs, frac) = body.split_once('.').unwrap_or((&body, ""));
            let frac = format!("{frac:0<6}");
            let z = if zone.is_some() { "Z" } else { z };
            Value::from(format!("{secs}.{}{z}", &frac[..6]))
        }
        DataType::Boolean => Value::from(text == "true"),
        _ => value.clone(),
    }
}

/// Decimal text in plain notation with exactly `scale` fractional digits.
fn plain_decimal(text: &str, scale: usize) -> String {
    let (negative, digits) = text.strip_prefix('-').map_or((false, text), |d| (true, d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut frac = frac.to_owned();
    while frac.len() > scale && frac.ends_with('0') {
        frac.pop();
    }
    while frac.len() < scale {
        frac.push('0');
    }
    let int = if int.is_empty() { "0" } else { int };
    let body = if scale == 0 {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    };
    if negative { format!("-{body}") } else { body }
}

/// Decode `%XX` escapes once (an `add.path` is a URI-encoded relative path).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 path")
}

// ---------------------------------------------------------------------------------------
// Writing

/// Where a test writes its tables: a fresh temporary directory, or (to inspect the tables
/// after a run) `$MEDILAKE_INTEROP_WRITE_DIR/<name>`, emptied first.
fn workdir(name: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("MEDILAKE_INTEROP_WRITE_DIR") {
        Some(root) => {
            let dir = PathBuf::from(root).join(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("empty the kept table directory");
            }
            std::fs::create_dir_all(&dir).expect("create the kept table directory");
            (None, dir)
        }
        None => {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    }
}

fn open(dir: &Path) -> Table {
    Table::open(dir.to_str().expect("UTF-8 path"), &HashMap::new()).expect("open table")
}

fn stream(
    batches: Vec<RecordBatch>,
) -> futures::stream::BoxStream<'static, delta_core::Result<RecordBatch>> {
    futures::stream::iter(batches.into_iter().map(Ok)).boxed()
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch")
}

fn log_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("_delta_log"))
        .expect("_delta_log")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !n.ends_with(".tmp"))
        .collect()
}

fn commit_name(v: u64) -> String {
    format!("{v:020}.json")
}

fn checkpoint_name(v: u64) -> String {
    format!("{v:020}.checkpoint.parquet")
}

// ---------------------------------------------------------------------------------------
// (a) partitioned by strings with special characters, NULL partitions, an int partition

const SITES: &[Option<&str>] = &[
    Some("a/b"),
    Some("100%"),
    Some("x y"),
    Some("Zürich"),
    Some("="),
    Some("#"),
    Some("🩺🧬"),
    None,
    Some("a=b/c%20d #1"),
    Some("späce ü/?&:+"),
];

fn partitioned_batch(first_id: i64, n: usize, shift: usize) -> RecordBatch {
    let ids: Vec<i64> = (0..n).map(|i| first_id + i as i64).collect();
    let sites: Vec<Option<&str>> = (0..n).map(|i| SITES[(i + shift) % SITES.len()]).collect();
    let wards: Vec<Option<i32>> = (0..n)
        .map(|i| [Some(1), Some(-7), None][(i + shift) % 3])
        .collect();
    let readings: Vec<Option<f64>> = (0..n)
        .map(|i| (i % 4 != 3).then_some((i as f64) * 1.25 - 3.0))
        .collect();
    let notes: Vec<Option<String>> = (0..n)
        .map(|i| (i % 5 != 4).then(|| format!("note {i} ünï")))
        .collect();
    batch(vec![
        ("id", Arc::new(Int64Array::from(ids))),
        ("site", Arc::new(StringArray::from(sites))),
        ("ward", Arc::new(Int32Array::from(wards))),
        ("reading", Arc::new(Float64Array::from(readings))),
        ("note", Arc::new(StringArray::from(notes))),
    ])
}

#[test]
fn partitioned_special_characters() {
    let Some(peers) = peers("write interop (partitioned)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("partitioned");
    let dir = root.join("partitioned");
    let table = open(&dir);
    rt.block_on(async {
        let v0 = table
            .write()
            .with_partition_columns(["site", "ward"])
            .execute(stream(vec![partitioned_batch(0, 30, 0)]))
            .await
            .unwrap();
        let v1 = table
            .write()
            .execute(stream(vec![partitioned_batch(100, 20, 3)]))
            .await
            .unwrap();
        let v2 = table
            .write()
            .execute(stream(vec![partitioned_batch(200, 15, 7)]))
            .await
            .unwrap();
        let v3 = table
            .delete(Some(parse("site = '100%' AND id >= 100").unwrap()))
            .await
            .unwrap();
        let versions: Vec<_> = [v0, v1, v2, v3].iter().map(|r| r.version).collect();
        assert_eq!(versions, [Some(0), Some(1), Some(2), Some(3)]);
    });
    let mut out = Outcome::new("partitioned");
    check_rows(&mut out, &peers, &rt, &dir, &[0, 1, 2, 3]);
    check_stats(&mut out, &peers, &rt, &dir);
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "site = 'Zürich'",
        r#"[["site", "=", "Zürich"]]"#,
        true,
    );
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "site = 'a/b'",
        r#"[["site", "=", "a/b"]]"#,
        true,
    );
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "ward = -7",
        r#"[["ward", "=", -7]]"#,
        true,
    );
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "id > 150",
        r#"[["id", ">", 150]]"#,
        true,
    );
    out.finish();
}

// ---------------------------------------------------------------------------------------
// (b) every column type

const DAY_0001_01_01: i32 = -719_162;
const DAY_9999_12_31: i32 = 2_932_896;
const US_0001_01_01: i64 = -62_135_596_800_000_000;
const US_9999_12_31_END: i64 = 253_402_300_799_999_999;

/// The first batch holds the extremes (NaN, ±∞, integer limits, years 0001 and 9999); later
/// batches hold values in ranges of their own (offset by `first_id`), so that filters
/// can skip their files, including at the edges where bounds are truncated (timestamps to
/// milliseconds, strings to 32 characters).
fn all_types_batch(first_id: i32) -> RecordBatch {
    let n = 7;
    let first = first_id == 0;
    let pick = |extreme: Option<i64>, own: Option<i64>| if first { extreme } else { own };
    let k = i64::from(first_id);
    let id = Int32Array::from((0..n).map(|i| first_id + i).collect::<Vec<_>>());
    let i8s = Int8Array::from(vec![
        Some(i8::MIN),
        Some(-1),
        None,
        Some(0),
        Some(i8::MAX),
        Some(7),
        None,
    ]);
    let i16s = Int16Array::from(vec![
        Some(i16::MIN),
        None,
        Some(300),
        Some(0),
        Some(i16::MAX),
        Some(-2),
        Some(5),
    ]);
    let i32s = Int32Array::from(vec![
        None,
        Some(if first { i32::MIN } else { first_id + 1 }),
        Some(if first { i32::MAX } else { first_id + 2 }),
        Some(first_id),
        Some(first_id - 5),
        Some(first_id + 3),
        None,
    ]);
    let i64s = Int64Array::from(vec![
        pick(Some(i64::MIN), Some(k * 1_000_000_000_000)),
        pick(Some(i64::MAX), Some(k * 1_000_000_000_000 + 7)),
        None,
        Some(k),
        Some(k - 1),
        pick(Some(1 << 53), Some(k * 1_000_000_000_000 + 3)),
        Some(k),
    ]);
    let f32s = Float32Array::from(vec![
        Some(f32::NAN),
        Some(f32::INFINITY),
        Some(f32::NEG_INFINITY),
        Some(-0.0),
        Some(1.1),
        None,
        Some(3.4e38),
    ]);
    let kf = f64::from(first_id);
    let f64s = Float64Array::from(if first {
        vec![
            Some(-0.0),
            Some(f64::NAN),
            Some(1e-300),
            None,
            Some(f64::MAX),
            Some(f64::NEG_INFINITY),
            Some(0.1),
        ]
    } else {
        vec![
            Some(kf + 0.5),
            Some(kf + 0.25),
            Some(kf + 1e-9),
            None,
            Some(kf + 1.0),
            Some(kf),
            Some(kf + 0.1),
        ]
    });
    let dec10 = Decimal128Array::from(
        [
            pick(Some(1_234_567_890), Some(k * 100 + 1)),
            pick(Some(-9_999_999_999), Some(k * 100 + 99)),
            None,
            Some(k * 100),
            Some(k * 100 + 1),
            Some(k * 100 + 50),
            Some(k * 100),
        ]
        .iter()
        .map(|v| v.map(i128::from))
        .collect::<Vec<_>>(),
    )
    .with_precision_and_scale(10, 2)
    .expect("test data");
    let max38 = 10i128.pow(38) - 1;
    let dec38 = Decimal128Array::from(vec![
        Some(max38),
        Some(-max38),
        None,
        Some(1),
        Some(0),
        Some(123_456_789_012_345_678_901_234_567_890),
        Some(-5),
    ])
    .with_precision_and_scale(38, 10)
    .expect("test data");
    let strings = StringArray::from(if first {
        vec![
            Some("plain".to_owned()),
            Some("Zürich ünïcødé".to_owned()),
            Some("漢字テキスト".to_owned()),
            None,
            Some(String::new()),
            Some("emoji 🩺🧬 mixed".to_owned()),
            Some(format!("{}{}", "a".repeat(31), "ü".repeat(10))),
        ]
    } else {
        // The maximum is longer than 32 characters: its bound is cut and tie-broken.
        vec![
            Some(format!("{first_id} plain")),
            Some(format!("{first_id} Zürich")),
            None,
            Some(format!("{first_id}")),
            Some(format!("{first_id} 🩺")),
            Some(format!("{first_id} ~{}", "ü".repeat(40))),
            Some(format!("{first_id} ~{}", "z".repeat(40))),
        ]
    });
    let bins = BinaryArray::from_opt_vec(vec![
        Some(&[0u8, 1, 255][..]),
        Some(b""),
        None,
        Some(b"abc"),
        Some(&[0xc3, 0x28][..]),
        None,
        Some(b"\n\t"),
    ]);
    let flags = BooleanArray::from(vec![
        Some(true),
        Some(false),
        None,
        Some(true),
        None,
        Some(false),
        Some(true),
    ]);
    let dates = Date32Array::from(if first {
        vec![
            Some(DAY_0001_01_01),
            Some(DAY_9999_12_31),
            None,
            Some(0),
            Some(19_782),
            Some(-1),
            Some(20_000),
        ]
    } else {
        (0..n)
            .map(|i| (i != 2).then_some(19_000 + first_id + i))
            .collect()
    });
    let ts_values: Vec<Option<i64>> = if first {
        vec![
            Some(0),
            Some(1_700_000_000_123_456),
            None,
            Some(-1),
            Some(US_9999_12_31_END),
            Some(US_0001_01_01),
            Some(1_000_000),
        ]
    } else {
        // Sub-millisecond values: the maximum's bound is cut down to milliseconds.
        let base = 1_700_000_000_000_000 + k * 86_400_000_000;
        vec![
            Some(base),
            Some(base + 123_456),
            None,
            Some(base + 1),
            Some(base + 2_000),
            Some(base + 500_999),
            Some(base + 999),
        ]
    };
    let ts = TimestampMicrosecondArray::from(ts_values.clone()).with_timezone("UTC");
    let ts_ntz = TimestampMicrosecondArray::from(ts_values.into_iter().rev().collect::<Vec<_>>());
    let ints = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        Some(vec![]),
        None,
        Some(vec![Some(i32::MIN), Some(i32::MAX)]),
        Some(vec![Some(0)]),
        None,
        Some(vec![Some(5), Some(5)]),
    ]);
    let st_fields = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let st = StructArray::try_new(
        st_fields,
        vec![
            Arc::new(Int32Array::from(vec![
                Some(first_id + 1),
                None,
                Some(0),
                Some(first_id + 3),
                Some(first_id - 1),
                None,
                Some(first_id + 7),
            ])) as ArrayRef,
            Arc::new(StringArray::from(vec![
                Some("x"),
                Some("ü"),
                None,
                None,
                Some(""),
                None,
                Some("🩺"),
            ])),
        ],
        Some(NullBuffer::from(vec![
            true, true, false, true, true, true, true,
        ])),
    )
    .expect("test data");
    let mut maps = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    type Entries<'a> = Option<Vec<(&'a str, Option<i32>)>>;
    let entries: [Entries<'_>; 7] = [
        Some(vec![("a", Some(1)), ("b", None)]),
        Some(vec![]),
        None,
        Some(vec![("ü", Some(-5))]),
        Some(vec![("k", Some(0))]),
        None,
        Some(vec![("x", Some(1)), ("y", Some(2))]),
    ];
    for entry in entries {
        match entry {
            None => maps.append(false).expect("test data"),
            Some(pairs) => {
                for (k, v) in pairs {
                    maps.keys().append_value(k);
                    maps.values().append_option(v);
                }
                maps.append(true).expect("test data");
            }
        }
    }
    let m = maps.finish();
    batch(vec![
        ("id", Arc::new(id)),
        ("i8", Arc::new(i8s)),
        ("i16", Arc::new(i16s)),
        ("i32", Arc::new(i32s)),
        ("i64", Arc::new(i64s)),
        ("f32", Arc::new(f32s)),
        ("f64", Arc::new(f64s)),
        ("dec10_2", Arc::new(dec10)),
        ("dec38_10", Arc::new(dec38)),
        ("s", Arc::new(strings)),
        ("bin", Arc::new(bins)),
        ("flag", Arc::new(flags)),
        ("d", Arc::new(dates)),
        ("ts", Arc::new(ts)),
        ("ts_ntz", Arc::new(ts_ntz)),
        ("ints", Arc::new(ints)),
        ("st", Arc::new(st)),
        ("m", Arc::new(m)),
    ])
}

#[test]
fn all_column_types() {
    let Some(peers) = peers("write interop (all types)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("all_types");
    let dir = root.join("all_types");
    let table = open(&dir);
    rt.block_on(async {
        for first in [0, 100, 200] {
            let r = table
                .write()
                .execute(stream(vec![all_types_batch(first)]))
                .await
                .unwrap();
            assert_eq!(r.version, Some(u64::try_from(first / 100).unwrap()));
        }
        let snapshot = table.snapshot().await.unwrap();
        let protocol = snapshot.protocol();
        assert_eq!(
            (protocol.min_reader_version, protocol.min_writer_version),
            (3, 7)
        );
        assert!(
            protocol
                .reader_features
                .as_ref()
                .unwrap()
                .iter()
                .any(|f| f == "timestampNtz")
        );
    });
    let mut out = Outcome::new("all_types");
    check_rows(&mut out, &peers, &rt, &dir, &[0, 1, 2]);
    check_stats(&mut out, &peers, &rt, &dir);
    // One filter per type with bounds; `true`: some file must be skipped.
    let long = format!("100 ~{}", "ü".repeat(40));
    let filters = [
        (
            "id >= 200".to_owned(),
            r#"[["id", ">=", 200]]"#.to_owned(),
            true,
        ),
        (
            "i32 = 105".to_owned(),
            r#"[["i32", "=", 105]]"#.to_owned(),
            true,
        ),
        (
            "i64 = 200000000000007".to_owned(),
            r#"[["i64", "=", 200000000000007]]"#.to_owned(),
            true,
        ),
        (
            "f64 >= 150 AND f64 <= 250.5".to_owned(),
            r#"[["f64", ">=", 150.0], ["f64", "<=", 250.5]]"#.to_owned(),
            true,
        ),
        (
            "dec10_2 = 100.50".to_owned(),
            r#"[["dec10_2", "=", {"decimal": "100.50"}]]"#.to_owned(),
            true,
        ),
        (
            "d = DATE '2022-04-21'".to_owned(),
            r#"[["d", "=", {"date": "2022-04-21"}]]"#.to_owned(),
            true,
        ),
        (
            "ts = TIMESTAMP '2024-02-22 22:13:20.500999+00:00'".to_owned(),
            r#"[["ts", "=", {"timestamp": "2024-02-22T22:13:20.500999+00:00"}]]"#.to_owned(),
            true,
        ),
        (
            "ts_ntz = TIMESTAMP_NTZ '2024-02-22 22:13:20.500999'".to_owned(),
            r#"[["ts_ntz", "=", {"timestamp_ntz": "2024-02-22T22:13:20.500999"}]]"#.to_owned(),
            true,
        ),
        (
            format!("s = '{long}'"),
            format!(r#"[["s", "=", "{long}"]]"#),
            true,
        ),
        (
            "s >= '200 ~'".to_owned(),
            r#"[["s", ">=", "200 ~"]]"#.to_owned(),
            true,
        ),
    ];
    for (sql, dnf, must_prune) in &filters {
        check_prune(&mut out, &peers, &rt, &dir, sql, dnf, *must_prune);
    }
    out.finish();
}

// ---------------------------------------------------------------------------------------
// (c) after DELETE, UPDATE, overwrite, replaceWhere, dynamic partition overwrite

fn ops_batch(
    ids: std::ops::Range<i64>,
    group: impl Fn(i64) -> Option<&'static str>,
) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    batch(vec![
        (
            "grp",
            Arc::new(StringArray::from(
                ids.iter().map(|i| group(*i)).collect::<Vec<_>>(),
            )),
        ),
        ("id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "amount",
            Arc::new(Float64Array::from(
                ids.iter().map(|i| (*i as f64) * 1.5).collect::<Vec<_>>(),
            )),
        ),
        (
            "label",
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("row {i}")).collect::<Vec<_>>(),
            )),
        ),
    ])
}

fn abc(i: i64) -> Option<&'static str> {
    ["a", "b", "c"]
        .get(usize::try_from(i % 3).expect("test data"))
        .copied()
}

#[test]
fn after_delete_update_overwrite_replace_where() {
    let Some(peers) = peers("write interop (operations)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("operations");
    let dir = root.join("operations");
    let table = open(&dir);
    let versions = rt.block_on(async {
        let mut v = Vec::new();
        let mut push = |r: delta_core::OperationReport| v.push(r.version.expect("committed"));
        push(
            table
                .write()
                .with_partition_columns(["grp"])
                .execute(stream(vec![ops_batch(0..30, abc)]))
                .await
                .unwrap(),
        );
        push(
            table
                .write()
                .execute(stream(vec![ops_batch(30..45, abc)]))
                .await
                .unwrap(),
        );
        // Partial files: rewrite.
        push(
            table
                .delete(Some(parse("id >= 10 AND id < 15").unwrap()))
                .await
                .unwrap(),
        );
        // Whole files: removed without rewriting.
        push(
            table
                .delete(Some(parse("grp = 'c'").unwrap()))
                .await
                .unwrap(),
        );
        push(
            table
                .update(
                    &[
                        ("label".to_owned(), parse("'updated ✓'").unwrap()),
                        ("amount".to_owned(), parse("-0.5").unwrap()),
                    ],
                    Some(parse("id < 5").unwrap()),
                )
                .await
                .unwrap(),
        );
        push(
            table
                .write()
                .with_mode(SaveMode::Overwrite)
                .execute(stream(vec![ops_batch(100..112, abc)]))
                .await
                .unwrap(),
        );
        push(
            table
                .write()
                .with_replace_where(parse("grp = 'a'").unwrap())
                .execute(stream(vec![ops_batch(200..205, |_| Some("a"))]))
                .await
                .unwrap(),
        );
        push(
            table
                .write()
                .with_dynamic_partition_overwrite()
                .execute(stream(vec![ops_batch(300..303, |_| Some("b"))]))
                .await
                .unwrap(),
        );
        push(
            table
                .write()
                .execute(stream(vec![ops_batch(400..403, |_| None)]))
                .await
                .unwrap(),
        );
        push(
            table
                .update(
                    &[("label".to_owned(), parse("NULL").unwrap())],
                    Some(parse("grp IS NULL AND id = 401").unwrap()),
                )
                .await
                .unwrap(),
        );
        v
    });
    assert_eq!(versions, (0..10).collect::<Vec<u64>>());
    let mut out = Outcome::new("operations");
    check_rows(&mut out, &peers, &rt, &dir, &versions);
    check_stats(&mut out, &peers, &rt, &dir);
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "id >= 300",
        r#"[["id", ">=", 300]]"#,
        true,
    );
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "grp = 'a'",
        r#"[["grp", "=", "a"]]"#,
        true,
    );
    out.finish();
}

// ---------------------------------------------------------------------------------------
// (c2) after MERGE: upsert, conditional delete with NOT MATCHED BY SOURCE, insert-only,
// schema evolution

#[test]
fn after_merge() {
    let Some(peers) = peers("write interop (merge)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("merged");
    let dir = root.join("merged");
    let table = open(&dir);
    let versions = rt.block_on(async {
        let mut v = Vec::new();
        for (rows, partitioned) in [(0..30, true), (30..45, false)] {
            let mut write = table.write();
            if partitioned {
                write = write.with_partition_columns(["grp"]);
            }
            let r = write
                .execute(stream(vec![ops_batch(rows, abc)]))
                .await
                .unwrap();
            v.push(r.version.expect("committed"));
        }
        let mut push = |r: delta_core::MergeReport| v.push(r.version.expect("committed"));
        // Upsert: ids 40..50 (40..44 exist), with new amounts and labels.
        let source = ops_batch(40..50, abc);
        push(
            table
                .merge(stream(vec![source]), parse("t.id = s.id").unwrap())
                .when_matched_update_all(None)
                .when_not_matched_insert_all(None)
                .execute()
                .await
                .unwrap(),
        );
        // Delete matched rows of group a, mark the rows the source lacks in group b.
        push(
            table
                .merge(
                    stream(vec![ops_batch(0..20, abc)]),
                    parse("t.id = s.id").unwrap(),
                )
                .when_matched_delete(Some(parse("t.grp = 'a'").unwrap()))
                .when_not_matched_by_source_update(
                    Some(parse("t.grp = 'b'").unwrap()),
                    vec![("label".to_owned(), parse("'gone ✓'").unwrap())],
                )
                .execute()
                .await
                .unwrap(),
        );
        // Insert-only, with NULL partition values.
        push(
            table
                .merge(
                    stream(vec![ops_batch(45..60, |i| (i % 2 == 0).then_some("c"))]),
                    parse("t.id = s.id").unwrap(),
                )
                .when_not_matched_insert_all(Some(parse("s.id % 3 <> 0").unwrap()))
                .execute()
                .await
                .unwrap(),
        );
        // Schema evolution: a new column from the source.
        let extra = batch(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 500]))),
            (
                "grp",
                Arc::new(StringArray::from(vec![Some("b"), Some("c"), None])),
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![0.25, 0.5, 0.75])),
            ),
            ("label", Arc::new(StringArray::from(vec!["x", "y", "z"]))),
            (
                "note",
                Arc::new(StringArray::from(vec![Some("n1"), None, Some("n3")])),
            ),
        ]);
        push(
            table
                .merge(stream(vec![extra]), parse("t.id = s.id").unwrap())
                .with_merge_schema(true)
                .when_matched_update_all(None)
                .when_not_matched_insert_all(None)
                .execute()
                .await
                .unwrap(),
        );
        v
    });
    assert_eq!(versions, (0..6).collect::<Vec<u64>>());
    let mut out = Outcome::new("merged");
    check_rows(&mut out, &peers, &rt, &dir, &versions);
    check_stats(&mut out, &peers, &rt, &dir);
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "id >= 45",
        r#"[["id", ">=", 45]]"#,
        true,
    );
    out.finish();
}

// ---------------------------------------------------------------------------------------
// Deletion vectors and the change data feed

#[test]
fn deletion_vectors_and_change_data() {
    let Some(peers) = peers("write interop (deletion vectors, change data feed)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("deletion_vectors_cdf");
    let dir = root.join("deletion_vectors_cdf");
    let table = open(&dir);
    rt.block_on(common::deletion_vectors_cdf(&table, &|ids| {
        ops_batch(ids, abc)
    }))
    .expect("build");
    let snapshot = rt.block_on(table.snapshot()).expect("snapshot");
    let versions: Vec<u64> = (0..=snapshot.version()).collect();
    let mut out = Outcome::new("deletion_vectors_cdf");
    check_rows(&mut out, &peers, &rt, &dir, &versions);
    // The change data feed, from the version that turned it on: delta-rs's `load_cdf` rows
    // equal ours (without `_commit_timestamp`, which delta-rs reads the same way but we leave
    // out of the comparison of two peers' clocks).
    let ours: Vec<String> = rt
        .block_on(common::our_changes(&dir, 1, None))
        .expect("our change data feed")
        .iter()
        .map(|line| {
            let mut row: Value = serde_json::from_str(line).expect("row");
            if let Some(map) = row.as_object_mut() {
                map.remove("_commit_timestamp");
            }
            row
        })
        .map(|row| canonical(&row).to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let result = peers.changes(&dir, 1).and_then(|theirs| {
        let kinds: BTreeSet<&str> = ["delete", "insert", "update_postimage", "update_preimage"]
            .into_iter()
            .filter(|k| theirs.iter().any(|r| r.contains(k)))
            .collect();
        if kinds.len() < 4 {
            return Err(format!("delta-rs saw only the change types {kinds:?}"));
        }
        let mut ours = ours.clone();
        ours.sort();
        if ours == theirs {
            Ok(())
        } else {
            Err(diff(&ours, &theirs))
        }
    });
    out.record("deletion_vectors_cdf deltars changes".to_owned(), result);
    out.finish();
}

/// Column mapping written by us, in name and id mode, through renames (of the partition
/// column too), a drop, the dropped name added again, DELETE and UPDATE: delta-rs and DuckDB
/// read every version as we do, and delta-rs parses our statistics (keyed by physical names).
#[test]
fn column_mapping() {
    let Some(peers) = peers("write interop (column mapping)") else {
        return;
    };
    let rt = common::runtime();
    for (mode, name) in [("name", "column_mapping_name"), ("id", "column_mapping_id")] {
        let (_tmp, root) = workdir(name);
        let dir = root.join(name);
        let table = open(&dir);
        rt.block_on(common::column_mapping_renames(&table, mode, &|ids| {
            ops_batch(ids, abc)
        }))
        .expect("build");
        let snapshot = rt.block_on(table.snapshot()).expect("snapshot");
        let versions: Vec<u64> = (0..=snapshot.version()).collect();
        let mut out = Outcome::new(name);
        check_rows(&mut out, &peers, &rt, &dir, &versions);
        check_stats(&mut out, &peers, &rt, &dir);
        out.finish();
    }
}

// ---------------------------------------------------------------------------------------
// (d) checkpoints: automatic at v10, explicit at v11

fn dose_batch(commit: i64) -> RecordBatch {
    let ids: Vec<i64> = (0..3).map(|i| commit * 10 + i).collect();
    batch(vec![
        ("id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "day",
            Arc::new(Date32Array::from(
                ids.iter()
                    .map(|i| Some(19_700 + i32::try_from(i % 4).expect("test data")))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "dose_mg",
            Arc::new(Int32Array::from(
                ids.iter()
                    .map(|i| Some(i32::try_from(i % 5).expect("test data") * 20))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "drug",
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| (i % 7 != 0).then(|| format!("drug-{}", i % 3)))
                    .collect::<Vec<_>>(),
            )),
        ),
    ])
}

#[test]
fn with_checkpoints() {
    let Some(peers) = peers("write interop (checkpoints)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("checkpointed");
    let dir = root.join("checkpointed");
    let table = open(&dir);
    rt.block_on(async {
        for commit in 0..12 {
            let mut write = table.write();
            if commit == 0 {
                write = write.with_partition_columns(["day"]);
            }
            let r = write
                .execute(stream(vec![dose_batch(commit)]))
                .await
                .unwrap();
            assert_eq!(r.version, Some(u64::try_from(commit).unwrap()));
        }
        let snapshot = table.snapshot().await.unwrap();
        assert_eq!(snapshot.version(), 11);
        table.checkpoint(&snapshot).await.unwrap();
        let r = table
            .delete(Some(parse("dose_mg = 40").unwrap()))
            .await
            .unwrap();
        assert_eq!(r.version, Some(12));
        let r = table
            .write()
            .execute(stream(vec![dose_batch(13)]))
            .await
            .unwrap();
        assert_eq!(r.version, Some(13));
    });
    let names = log_names(&dir);
    assert!(
        names.contains(&checkpoint_name(10)),
        "automatic checkpoint at v10: {names:?}"
    );
    assert!(
        names.contains(&checkpoint_name(11)),
        "explicit checkpoint at v11: {names:?}"
    );
    let last: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("_delta_log/_last_checkpoint")).unwrap(),
    )
    .unwrap();
    assert_eq!(last["version"], 11);
    let mut out = Outcome::new("checkpointed");
    check_rows(&mut out, &peers, &rt, &dir, &(0..=13).collect::<Vec<_>>());
    check_stats(&mut out, &peers, &rt, &dir);
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "id >= 120",
        r#"[["id", ">=", 120]]"#,
        true,
    );
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "dose_mg = 20",
        r#"[["dose_mg", "=", 20]]"#,
        false,
    );

    // The same table with every commit up to the explicit checkpoint gone: readers must
    // rebuild v11..v13 from our checkpoint parquet alone.
    let copy = root.join("checkpoint_only");
    copy_dir(&dir, &copy);
    for v in 0..=11 {
        std::fs::remove_file(copy.join("_delta_log").join(commit_name(v))).unwrap();
    }
    std::fs::remove_file(copy.join("_delta_log").join(checkpoint_name(10))).unwrap();
    let mut out2 = Outcome::new("checkpoint_only");
    check_rows(&mut out2, &peers, &rt, &copy, &[11, 12]);
    check_stats(&mut out2, &peers, &rt, &copy);
    out.finish();
    out2.finish();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy the table");
    for entry in std::fs::read_dir(from).expect("copy the table") {
        let entry = entry.expect("copy the table");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("copy the table").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy the table");
        }
    }
}

// ---------------------------------------------------------------------------------------
// (e) after log cleanup (delta.logRetentionDuration = interval 0 days)

fn cleanup_batch(commit: i64) -> RecordBatch {
    let ids: Vec<i64> = (0..4).map(|i| commit * 10 + i).collect();
    batch(vec![
        ("id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "value",
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("v{i}")).collect::<Vec<_>>(),
            )),
        ),
    ])
}

#[test]
fn after_log_cleanup() {
    let Some(peers) = peers("write interop (log cleanup)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("cleaned");
    let dir = root.join("cleaned");
    let table = open(&dir);
    // Our rows at every version, taken while the version was still retained.
    let mut history: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut log_after: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    rt.block_on(async {
        for commit in 0..23 {
            let r = if commit == 15 {
                table.delete(Some(parse("id < 50").unwrap())).await.unwrap()
            } else {
                let mut write = table.write();
                if commit == 0 {
                    write = write.with_property("delta.logRetentionDuration", "interval 0 days");
                }
                write
                    .execute(stream(vec![cleanup_batch(commit)]))
                    .await
                    .unwrap()
            };
            let v = r.version.unwrap();
            assert_eq!(v, u64::try_from(commit).unwrap());
            history.insert(v, our_rows(&table, Some(v)).await.unwrap().1);
            log_after.insert(v, log_names(&dir));
        }
    });
    // What cleanup did: the checkpoint at v10 made commits 0..9 expire at once (0-day
    // retention; their files are older than "now"); the one at v20 removed 10..19 and the
    // v10 checkpoint.
    let expect_retained = |after: u64, from: u64| {
        let names = &log_after[&after];
        for v in 0..=after {
            assert_eq!(
                names.contains(&commit_name(v)),
                v >= from,
                "after v{after}: commit {v} in {names:?}"
            );
        }
    };
    expect_retained(9, 0);
    expect_retained(10, 10);
    expect_retained(19, 10);
    expect_retained(20, 20);
    expect_retained(22, 20);
    assert!(log_after[&10].contains(&checkpoint_name(10)));
    assert!(
        !log_after[&22].contains(&checkpoint_name(10)),
        "{:?}",
        log_after[&22]
    );
    assert!(log_after[&22].contains(&checkpoint_name(20)));

    // Our reader: time travel before the retained checkpoint fails cleanly.
    for gone in [0, 5, 10, 15, 19] {
        match rt.block_on(open(&dir).snapshot_at(gone)) {
            Err(Error::VersionNotFound { requested, reason }) => {
                assert_eq!(requested, gone);
                eprintln!("  our reader at v{gone}: VersionNotFound ({reason})");
            }
            Err(other) => panic!("v{gone}: expected VersionNotFound, got {other}"),
            Ok(s) => panic!("v{gone}: cleaned-up version loaded as v{}", s.version()),
        }
    }
    let mut out = Outcome::new("cleaned");
    check_rows(&mut out, &peers, &rt, &dir, &[20, 21, 22]);
    for v in [20, 21, 22] {
        let (_, now) = rt.block_on(our_rows(&table, Some(v))).unwrap();
        assert_eq!(now, history[&v], "v{v} reads the same after cleanup");
    }
    // Peers at a cleaned-up version: an error, or (never) rows that differ.
    for gone in [5, 15] {
        for engine in ENGINES {
            let key = format!("cleaned {engine} gone v{gone}");
            let result = match peers.rows(&dir, Some(gone), engine) {
                Err(e) => {
                    eprintln!("  {engine} at cleaned-up v{gone}: fails ({e})");
                    Ok(())
                }
                Ok(rows) if rows == history[&gone] => {
                    eprintln!("  {engine} at cleaned-up v{gone}: reads the right rows");
                    Ok(())
                }
                Ok(rows) => Err(format!(
                    "wrong rows for a cleaned-up version: {}",
                    diff(&history[&gone], &rows)
                )),
            };
            out.record(key, result);
        }
    }
    check_stats(&mut out, &peers, &rt, &dir);
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "id >= 210",
        r#"[["id", ">=", 210]]"#,
        true,
    );
    out.finish();
}

// ---------------------------------------------------------------------------------------
// (f) table maintenance: compaction, Hilbert and Morton clustering, VACUUM

#[test]
fn after_optimize_zorder_and_vacuum() {
    let Some(peers) = peers("write interop (maintenance)") else {
        return;
    };
    let rt = common::runtime();
    let (_tmp, root) = workdir("maintained");
    let dir = root.join("maintained");
    let table = open(&dir);
    let versions = rt.block_on(async {
        let mut v = Vec::new();
        // Many small appends over two partitions, rows in a scrambled order.
        for i in 0..8i64 {
            let ids: Vec<i64> = (0..40).map(|k| (k * 37 + i * 11) % 320).collect();
            let b = batch(vec![
                (
                    "grp",
                    Arc::new(StringArray::from(
                        ids.iter().map(|i| abc(*i % 2)).collect::<Vec<_>>(),
                    )),
                ),
                ("id", Arc::new(Int64Array::from(ids.clone()))),
                (
                    "code",
                    Arc::new(StringArray::from(
                        ids.iter()
                            .map(|i| format!("code-{}", i % 13))
                            .collect::<Vec<_>>(),
                    )),
                ),
            ]);
            let mut w = table.write();
            if i == 0 {
                w = w.with_partition_columns(["grp"]);
            }
            v.push(
                w.execute(stream(vec![b]))
                    .await
                    .unwrap()
                    .version
                    .expect("committed"),
            );
        }
        // Compaction, then Hilbert and Morton clustering of each partition.
        let report = table.optimize().run().await.unwrap();
        v.extend(report.versions);
        let report = table
            .optimize()
            .with_zorder(["id", "code"], Some(delta_core::Curve::Morton))
            .with_target_size(400)
            .run()
            .await
            .unwrap();
        v.extend(report.versions);
        let report = table
            .optimize()
            .with_zorder(["id", "code"], Some(delta_core::Curve::Hilbert))
            .with_target_size(400)
            .run()
            .await
            .unwrap();
        v.extend(report.versions);
        let _ = table
            .vacuum()
            .with_retention(std::time::Duration::ZERO)
            .with_force(true)
            .run()
            .await
            .unwrap();
        v
    });
    assert!(versions.len() >= 11, "{versions:?}");
    // After VACUUM with retention 0 only the latest version's files remain: compare the
    // latest (through `check_rows`' latest target) and the versions VACUUM itself wrote.
    let latest = rt.block_on(table.snapshot()).unwrap().version();
    let mut out = Outcome::new("maintained");
    check_rows(&mut out, &peers, &rt, &dir, &[latest - 1, latest]);
    check_stats(&mut out, &peers, &rt, &dir);
    check_prune(
        &mut out,
        &peers,
        &rt,
        &dir,
        "id >= 300",
        r#"[["id", ">=", 300]]"#,
        true,
    );
    out.finish();
}
