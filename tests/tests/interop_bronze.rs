//! Interop of the bronze layer: every table `medilake run --stages bronze` writes from the
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

fn batch_rows(batches: &[RecordBatch]) -> Vec<String> {
    sorted_rows(batches.iter().flat_map(|b| {
        (0..b.num_rows()).map(move |r| pipeline::output::row_to_json(b, r).expect("row_to_json"))
    }))
}

#[test]
fn peers_read_every_bronze_table_of_the_sample() {
    let python = std::env::var_os("MEDILAKE_PYTHON").map(PathBuf::from);
    let reader = std::env::var_os("MEDILAKE_PEER_READER").map(PathBuf::from);
    let (Some(python), Some(reader)) = (python, reader) else {
        assert!(
            !common::in_ci(),
            "MEDILAKE_PYTHON / MEDILAKE_PEER_READER are not set under CI=true (run ./test.sh)"
        );
        eprintln!("SKIPPED: bronze interop: set MEDILAKE_PYTHON and MEDILAKE_PEER_READER");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let lake = dir.path().join("lake");
    let runtime = common::runtime();
    runtime.block_on(async {
        let options = BronzeOptions::new(
            data.clone(),
            lake.clone(),
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
