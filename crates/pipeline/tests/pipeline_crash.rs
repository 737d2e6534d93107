//! The whole pipeline (bronze, silver, gold, optimize) under injected crashes: a run that
//! crashes at any store call after bronze leaves every table readable, and the next run
//! ends with the same rows in every table as an uninterrupted run; silver's key-range
//! buckets do not change its result.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Parser;
use delta_core::testing::{Fault, FaultyStore};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use pipeline::cli::Cli;
use pipeline::lake::Lake;
use pipeline::pipeline::bronze::{self, BronzeOptions, ProgressFn};
use pipeline::pipeline::contract::ENTITIES;

const INGESTED_AT: i64 = 1_764_000_000_000_000;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 1).expect("date")
}

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn local_lake(path: &Path) -> Lake {
    Lake::open(path.to_str().expect("utf-8"), &HashMap::new()).expect("lake")
}

fn faulty_lake(path: &Path, fault: Fault) -> (Lake, Arc<FaultyStore>) {
    std::fs::create_dir_all(path).expect("lake dir");
    let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let store = Arc::new(FaultyStore::new(local, fault));
    let url = url::Url::from_directory_path(path).expect("absolute path");
    (Lake::with_store(store.clone(), url), store)
}

async fn bronze_stage(lake: &Lake) -> Result<()> {
    let data = local_lake(&sample());
    let options = BronzeOptions::new(data, lake.clone(), INGESTED_AT, "crash-test".into());
    let quiet: ProgressFn = Arc::new(|_| {});
    bronze::run(&options, &quiet).await?;
    Ok(())
}

/// Silver, gold and the optimization of the tables they changed, as `medilake run` does.
async fn later_stages(lake: &Lake) -> Result<()> {
    let silver = pipeline::silver::stage::run(lake, as_of()).await?;
    let gold = pipeline::gold::run(lake, as_of()).await?;
    let changed = silver
        .iter()
        .filter(|s| s.version.is_some())
        .map(|s| s.table.clone())
        .chain(
            gold.iter()
                .filter(|g| g.version.is_some())
                .map(|g| g.table.clone()),
        );
    for table in changed {
        pipeline::pipeline::optimize::table(lake, &table).await?;
    }
    Ok(())
}

/// The rows of a table as sorted JSON lines (through `medilake table show`).
async fn rows(table: &Path) -> Vec<String> {
    let cli = Cli::try_parse_from([
        "medilake",
        "table",
        "show",
        table.to_str().expect("utf-8"),
        "--format",
        "jsonl",
        "--limit",
        "100000000",
    ])
    .expect("args");
    let mut out = Vec::new();
    pipeline::commands::run_with_output(cli, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{} is unreadable: {e:#}", table.display()));
    let mut lines: Vec<String> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Every table of the lake that exists, by `layer.table`.
async fn contents(lake: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for layer in ["bronze", "silver", "gold"] {
        let Ok(entries) = std::fs::read_dir(lake.join(layer)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("_delta_log").is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let rows = rows(&lake.join(layer).join(&name)).await;
            out.insert(format!("{layer}.{name}"), rows);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_silver_gold_or_optimize_then_a_rerun_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The reference, and where the later stages' store calls start and end.
    let reference = dir.path().join("reference");
    let (lake, store) = faulty_lake(&reference, Fault::None);
    bronze_stage(&lake).await.expect("bronze");
    let first = store.calls();
    later_stages(&lake).await.expect("later stages");
    let calls = store.calls();
    let expected = contents(&reference).await;
    let tables: Vec<&String> = expected.keys().collect();
    assert_eq!(
        expected.len(),
        (ENTITIES.len() + 1) + (ENTITIES.len() + 1) + 4,
        "{tables:?}"
    );
    assert!(calls > first + 50, "{first} then {calls}");

    // Crash points spread over silver, gold and optimize (bronze has its own sweep in
    // tests/bronze.rs); every call under SLOW_TESTS=1.
    let step = if std::env::var_os("SLOW_TESTS").is_some() {
        1
    } else {
        ((calls - first) / 16).max(1)
    };
    for at in (first..calls).step_by(step) {
        let path = dir.path().join(format!("crash-{at}"));
        let (lake, _) = faulty_lake(&path, Fault::CrashAt(at));
        bronze_stage(&lake)
            .await
            .expect("bronze before the crash point");
        assert!(
            later_stages(&lake).await.is_err(),
            "crash at call {at} of {calls} went unnoticed"
        );
        // Whatever was committed is readable as it stands.
        let _ = contents(&path).await;
        // The next run (all stages, as `medilake run` does) repairs and completes.
        let lake = local_lake(&path);
        bronze_stage(&lake).await.expect("bronze rerun");
        later_stages(&lake).await.expect("rerun");
        assert_eq!(
            contents(&path).await,
            expected,
            "crash at store call {at} of {calls}"
        );
        std::fs::remove_dir_all(&path).expect("cleanup");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silver_buckets_do_not_change_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results = Vec::new();
    // One bucket, then buckets of 40 rows (tens of key ranges per entity, spilled to disk).
    for (name, bucket_rows) in [("one", u64::MAX), ("many", 40)] {
        let path = dir.path().join(name);
        let lake = local_lake(&path);
        bronze_stage(&lake).await.expect("bronze");
        let mut summaries = pipeline::silver::stage::run_with(
            &lake,
            as_of(),
            bucket_rows,
            &pipeline::progress::quiet,
        )
        .await
        .expect("silver");
        for s in &mut summaries {
            assert!(s.reconciles(), "{s:?}");
            s.millis = 0;
        }
        let silver: BTreeMap<String, Vec<String>> = contents(&path)
            .await
            .into_iter()
            .filter(|(table, _)| table.starts_with("silver."))
            .collect();
        results.push((summaries, silver));
    }
    assert_eq!(results[0].0, results[1].0, "summaries");
    assert_eq!(results[0].1.len(), ENTITIES.len() + 1);
    for (table, rows) in &results[0].1 {
        assert!(!rows.is_empty(), "{table}");
        assert_eq!(Some(rows), results[1].1.get(table), "{table}");
    }
}
