//! Conformance: every table in `../shared/conformance` (written by Spark, Databricks and
//! the Delta kernels, not by us) gives what its INDEX.md says: the expected rows (multiset,
//! all columns) where an `expected/` folder exists, the row count per version, the
//! live-file count for log-only tables, and an error for NEGATIVE tables.
//!
//! The per-table expectations are `tests/conformance/expectations.json`, derived from the
//! index by `tests/conformance/make_expectations.py`. Tables we cannot pass yet are listed
//! with the reason in `tests/conformance/known_failures.txt`; the test fails if a table
//! fails that is not listed, or if a listed table starts passing (so the list stays true).
//! Set `MEDILAKE_WRITE_CONFORMANCE=1` to rewrite `tests/CONFORMANCE.md` from the run.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use delta_core::{Snapshot, Table};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Expectation {
    name: String,
    source: String,
    root: String,
    feature: String,
    negative: bool,
    version: Option<u64>,
    rows: Option<u64>,
    expected_dir: Option<String>,
    rows_by_version: Option<Vec<serde_json::Value>>,
    live_files: Option<usize>,
    #[serde(default)]
    dat_versions: Option<Vec<u64>>,
}

/// Tables whose legacy `YYYY-MM-DD HH:MM:SS` timestamp partition values were written in a
/// session zone other than UTC: Spark reads them in its session zone, and so do we.
fn session_zone(name: &str) -> Option<&'static str> {
    match name {
        "data-reader-partition-values" => Some("America/Los_Angeles"),
        _ => None,
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn open(root: &Path) -> Result<Table, String> {
    Table::open(root.to_str().ok_or("non-UTF-8 path")?, &HashMap::new()).map_err(|e| e.to_string())
}

async fn scan_rows(
    snapshot: &Snapshot,
    zone: Option<&str>,
) -> Result<Vec<arrow::array::RecordBatch>, String> {
    let mut builder = snapshot.scan();
    if let Some(zone) = zone {
        builder = builder.with_session_time_zone(zone);
    }
    let scan = builder.build().map_err(|e| e.to_string())?;
    scan.collect().await.map_err(|e| e.to_string())
}

fn count(batches: &[arrow::array::RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

async fn check_table(base: &Path, exp: &Expectation) -> Result<String, String> {
    let root = base.join(&exp.root);
    let table = open(&root).await?;
    if exp.negative {
        return match table.snapshot().await {
            Err(e) => Ok(format!("refused: {e}")),
            Ok(s) => match scan_rows(&s, None).await {
                Err(e) => Ok(format!("refused at scan: {e}")),
                Ok(_) => Err("NEGATIVE table loaded without error".to_owned()),
            },
        };
    }
    let snapshot = match exp.version {
        Some(v) => table.snapshot_at(v).await,
        None => table.snapshot().await,
    }
    .map_err(|e| e.to_string())?;
    if let Some(v) = exp.version
        && snapshot.version() != v
    {
        return Err(format!(
            "loaded version {} instead of {v}",
            snapshot.version()
        ));
    }
    let mut notes = Vec::new();
    if let Some(n) = exp.live_files {
        if snapshot.files().len() != n {
            return Err(format!(
                "{} live files, expected {n}",
                snapshot.files().len()
            ));
        }
        notes.push(format!("{n} files"));
    }
    let zone = session_zone(&exp.name);
    if let Some(rows) = exp.rows {
        let batches = scan_rows(&snapshot, zone).await?;
        if count(&batches) != rows {
            return Err(format!("{} rows, expected {rows}", count(&batches)));
        }
        notes.push(format!("{rows} rows"));
        if let Some(dir) = &exp.expected_dir {
            let dir = base.join(dir);
            let expected_dir = if exp.source == "G" {
                dir.join("latest")
            } else {
                dir
            };
            compare_rows(&batches, &expected_dir)?;
            notes.push("rows = expected".to_owned());
        }
    }
    if let Some(per_version) = &exp.rows_by_version {
        for (v, want) in per_version.iter().enumerate() {
            let v = v as u64;
            match want {
                serde_json::Value::Number(n) => {
                    let want = n.as_u64().unwrap_or_default();
                    let s = table
                        .snapshot_at(v)
                        .await
                        .map_err(|e| format!("v{v}: {e}"))?;
                    let got = count(
                        &scan_rows(&s, zone)
                            .await
                            .map_err(|e| format!("v{v}: {e}"))?,
                    );
                    if got != want {
                        return Err(format!("v{v}: {got} rows, expected {want}"));
                    }
                }
                serde_json::Value::String(g)
                    if g == "gone" && table.snapshot_at(v).await.is_ok() =>
                {
                    return Err(format!(
                        "v{v} should not be reconstructable (history cleaned)"
                    ));
                }
                _ => {}
            }
        }
        notes.push(format!("{} versions", per_version.len()));
    }
    if let Some(versions) = &exp.dat_versions {
        for v in versions {
            let s = table
                .snapshot_at(*v)
                .await
                .map_err(|e| format!("v{v}: {e}"))?;
            let batches = scan_rows(&s, zone)
                .await
                .map_err(|e| format!("v{v}: {e}"))?;
            let dir = base
                .join(exp.expected_dir.as_deref().unwrap_or_default())
                .join(format!("v{v}"));
            compare_rows(&batches, &dir).map_err(|e| format!("v{v}: {e}"))?;
        }
        notes.push(format!("versions {versions:?} = expected"));
    }
    Ok(notes.join(", "))
}

fn compare_rows(batches: &[arrow::array::RecordBatch], expected_dir: &Path) -> Result<(), String> {
    let expected = common::canonical_rows(&common::read_parquet_dir(expected_dir));
    let got = common::canonical_rows(batches);
    if expected == got {
        return Ok(());
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|r| !got.contains(r))
        .take(2)
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|r| !expected.contains(r))
        .take(2)
        .collect();
    Err(format!(
        "rows differ from expected/ ({} vs {} rows); first missing {:?}; first unexpected {:?}",
        got.len(),
        expected.len(),
        missing,
        extra
    ))
}

fn known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(manifest_dir().join("conformance/known_failures.txt"))
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn conformance_tables_read_as_spark_wrote_them() {
    let Some(base) = common::input_dir("MEDILAKE_CONFORMANCE_DIR", "conformance suite") else {
        return;
    };
    let expectations: Vec<Expectation> = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("conformance/expectations.json")).unwrap(),
    )
    .unwrap();
    let known = known_failures();
    let rt = common::runtime();
    let mut report = String::new();
    let mut unexpected = Vec::new();
    let mut passed = 0;
    for exp in &expectations {
        let key = format!("{}/{}", exp.source, exp.name);
        let result = rt.block_on(check_table(&base, exp));
        let (status, reason) = match &result {
            Ok(note) => ("pass", note.clone()),
            Err(e) => (
                "FAIL",
                known.get(&key).cloned().unwrap_or_else(|| e.clone()),
            ),
        };
        match (&result, known.contains_key(&key)) {
            (Ok(_), true) => unexpected.push(format!(
                "{key}: passes now; remove it from known_failures.txt"
            )),
            (Err(e), false) => unexpected.push(format!("{key}: {e}")),
            (Ok(_), false) => passed += 1,
            (Err(_), true) => {}
        }
        let _ = writeln!(
            report,
            "| {} | `{}` | {} | {} | {} |",
            exp.source,
            exp.name,
            exp.feature.replace('|', "/"),
            status,
            reason.replace('|', "/").replace('\n', " ")
        );
    }
    let header = format!(
        "# Conformance results\n\nGenerated by `tests/tests/conformance.rs` (run with `MEDILAKE_WRITE_CONFORMANCE=1 ./test.sh --test conformance`).\n\
         {passed} of {} tables pass; tables that do not are listed with the reason.\n\n\
         | Source | Table | Exercises | Result | Reason / what was checked |\n|---|---|---|---|---|\n",
        expectations.len()
    );
    let full = header + &report;
    if std::env::var_os("MEDILAKE_WRITE_CONFORMANCE").is_some() {
        std::fs::write(manifest_dir().join("CONFORMANCE.md"), &full).unwrap();
    }
    eprintln!("{passed} of {} conformance tables pass", expectations.len());
    assert!(
        unexpected.is_empty(),
        "unexpected conformance results:\n{}",
        unexpected.join("\n")
    );
}
