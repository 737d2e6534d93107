//! Interop of the pipeline's tables: every table `medilake run` writes from the
//! bundled sample (`data/`), including `_corrupt_records`, is read by delta-rs and by
//! DuckDB's delta extension with exactly our rows, at the latest version and at version 0.
//!
//! The peers run through `tests/python/read_with_peers.py` with the interpreter in
//! `MEDILAKE_PYTHON` (`./test.sh` exports both variables); outside CI the test prints
//! SKIPPED when they are unset, under `CI=true` it fails.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::RecordBatch;
use common::sorted_rows;
use delta_core::Table;
use pipeline::lake::Lake;
use pipeline::pipeline::bronze::{self, BronzeOptions};
use pipeline::pipeline::contract::ENTITIES;
use serde_json::Value;

fn peer_rows(
    python: &Path,
    reader: &Path,
    dir: &Path,
    engine: &str,
    version: Option<u64>,
) -> Vec<String> {
    let mut command = Command::new(python);
    command.arg(reader).arg(dir).args(["--engine", engine]);
    if let Some(v) = version {
        command.args(["--version", &v.to_string()]);
    }
    let out = command.output().expect("run the peer reader");
    assert!(
        out.status.success(),
        "{engine} cannot read {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    sorted_rows(
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("peer JSON")),
    )
}

/// The peer interpreter and reader script, or a skip (outside CI) / panic (under CI).
fn peers(what: &str) -> Option<(PathBuf, PathBuf)> {
    let python = std::env::var_os("MEDILAKE_PYTHON").map(PathBuf::from);
    let reader = std::env::var_os("MEDILAKE_PEER_READER").map(PathBuf::from);
    let (Some(python), Some(reader)) = (python, reader) else {
        assert!(
            !common::in_ci(),
            "MEDILAKE_PYTHON / MEDILAKE_PEER_READER are not set under CI=true (run ./test.sh)"
        );
        eprintln!("SKIPPED: {what}: set MEDILAKE_PYTHON and MEDILAKE_PEER_READER");
        return None;
    };
    Some((python, reader))
}

fn batch_rows(batches: &[RecordBatch]) -> Vec<String> {
    sorted_rows(batches.iter().flat_map(|b| {
        (0..b.num_rows()).map(move |r| pipeline::output::row_to_json(b, r).expect("row_to_json"))
    }))
}

#[test]
fn peers_read_every_bronze_table_of_the_sample() {
    let Some((python, reader)) = peers("bronze interop") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let lake = dir.path().join("lake");
    let runtime = common::runtime();
    runtime.block_on(async {
        let options = BronzeOptions::new(
            Lake::open(data.to_str().expect("utf-8"), &HashMap::new()).expect("data"),
            Lake::open(lake.to_str().expect("utf-8"), &HashMap::new()).expect("lake"),
            1_764_000_000_000_000,
            "interop".to_owned(),
        );
        let quiet: bronze::ProgressFn = Arc::new(|_| {});
        bronze::run(&options, &quiet).await.expect("bronze run");
    });
    let mut tables: Vec<&str> = ENTITIES.iter().map(|e| e.name).collect();
    tables.push(bronze::CORRUPT_TABLE);
    for name in tables {
        let path = lake.join("bronze").join(name);
        let table = Table::open(path.to_str().expect("utf-8"), &HashMap::new()).expect("open");
        for version in [None, Some(0)] {
            let ours = runtime.block_on(async {
                let snapshot = match version {
                    Some(v) => table.snapshot_at(v).await.expect("snapshot"),
                    None => table.snapshot().await.expect("snapshot"),
                };
                let batches = snapshot
                    .scan()
                    .build()
                    .expect("scan")
                    .collect()
                    .await
                    .expect("rows");
                batch_rows(&batches)
            });
            assert!(!ours.is_empty(), "{name} {version:?}");
            for engine in ["deltars", "duckdb"] {
                let theirs = peer_rows(&python, &reader, &path, engine, version);
                assert_eq!(theirs.len(), ours.len(), "{name} {engine} {version:?}");
                assert!(
                    theirs == ours,
                    "{name}: {engine} reads other rows at {version:?}"
                );
            }
        }
    }
}

/// The whole pipeline over the bundled sample: every silver and gold table is read by
/// delta-rs and DuckDB with exactly our rows; the silver counts reconcile; a second run of
/// silver and gold commits nothing.
#[test]
fn peers_read_every_silver_and_gold_table_of_the_sample() {
    let Some((python, reader)) = peers("silver/gold interop") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let lake = dir.path().join("lake");
    let handle = Lake::open(lake.to_str().expect("utf-8"), &HashMap::new()).expect("lake");
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 6, 1).expect("date");
    let runtime = common::runtime();
    let (silver, gold) = runtime.block_on(async {
        let data = Lake::open(data.to_str().expect("utf-8"), &HashMap::new()).expect("data");
        let options = BronzeOptions::new(data, handle.clone(), 1_764_000_000_000_000, "e2e".into());
        let quiet: bronze::ProgressFn = Arc::new(|_| {});
        bronze::run(&options, &quiet).await.expect("bronze run");
        let silver = pipeline::silver::stage::run(&handle, as_of)
            .await
            .expect("silver");
        let gold = pipeline::gold::run(&handle, as_of).await.expect("gold");
        (silver, gold)
    });
    for s in &silver {
        assert!(s.reconciles(), "{s:?}");
        assert!(s.rows_in > 0 && s.version.is_some(), "{s:?}");
    }
    assert!(
        silver.iter().any(|s| s.quarantined > 0),
        "the sample is dirty"
    );
    for g in &gold {
        assert!(g.rows > 0 && g.version.is_some(), "{g:?}");
    }
    let mut tables: Vec<(String, String)> = silver
        .iter()
        .chain([&pipeline::silver::stage::SilverSummary {
            table: "silver.quarantine".into(),
            ..Default::default()
        }])
        .map(|s| s.table.clone())
        .chain(gold.iter().map(|g| g.table.clone()))
        .map(|t| {
            let (layer, name) = t.split_once('.').expect("layer.table");
            (layer.to_owned(), name.to_owned())
        })
        .collect();
    tables.sort();
    for (layer, name) in &tables {
        let path = lake.join(layer).join(name);
        let table = Table::open(path.to_str().expect("utf-8"), &HashMap::new()).expect("open");
        let ours = runtime.block_on(async {
            let batches = table
                .snapshot()
                .await
                .expect("snapshot")
                .scan()
                .build()
                .expect("scan")
                .collect()
                .await
                .expect("rows");
            batch_rows(&batches)
        });
        assert!(!ours.is_empty(), "{layer}.{name}");
        for engine in ["deltars", "duckdb"] {
            let theirs = peer_rows(&python, &reader, &path, engine, None);
            assert_eq!(theirs.len(), ours.len(), "{layer}.{name} {engine}");
            assert!(theirs == ours, "{layer}.{name}: {engine} reads other rows");
        }
    }
    // A rerun with no new bronze data changes no silver or gold table.
    let (silver, gold) = runtime.block_on(async {
        (
            pipeline::silver::stage::run(&handle, as_of)
                .await
                .expect("silver"),
            pipeline::gold::run(&handle, as_of).await.expect("gold"),
        )
    });
    assert!(silver.iter().all(|s| s.version.is_none()), "{silver:?}");
    assert!(gold.iter().all(|g| g.version.is_none()), "{gold:?}");
}
