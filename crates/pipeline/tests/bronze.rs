//! Bronze over the bundled sample (`data/`, copied to a temporary directory): every table
//! exists, rows reconcile exactly with the source lines, rescued fields are kept, a rerun
//! commits nothing, a new part file is ingested alone, and a crash injected at any store
//! call of a run, followed by a rerun, gives exactly the tables of an uninterrupted run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use delta_core::Table;
use delta_core::testing::{Fault, FaultyStore};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use pipeline::cli::Cli;
use pipeline::lake::Lake;
use pipeline::pipeline::bronze::{self, BronzeOptions, ProgressFn, TableSummary};
use pipeline::pipeline::contract::ENTITIES;
use serde_json::Value;

const INGESTED_AT: i64 = 1_764_000_000_000_000;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// A copy of the sample's six entity folders (and its manifest) in `dir`.
fn copy_sample(dir: &Path) {
    let src = sample_dir();
    for entity in ENTITIES {
        let from = src.join(entity.name);
        let to = dir.join(entity.name);
        std::fs::create_dir_all(&to).expect("test step");
        for item in std::fs::read_dir(&from).expect("test step") {
            let item = item.expect("test step");
            std::fs::copy(item.path(), to.join(item.file_name())).expect("test step");
        }
    }
    std::fs::copy(src.join("manifest.json"), dir.join("manifest.json")).expect("test step");
}

fn options(data: &Path, lake: &Path) -> BronzeOptions {
    BronzeOptions::new(
        Lake::open(data.to_str().expect("utf-8"), &Default::default()).expect("data"),
        Lake::open(lake.to_str().expect("utf-8"), &Default::default()).expect("lake"),
        INGESTED_AT,
        "test-batch".to_owned(),
    )
}

fn quiet() -> ProgressFn {
    Arc::new(|_| {})
}

async fn run(options: &BronzeOptions) -> anyhow::Result<Vec<TableSummary>> {
    bronze::run(options, &quiet()).await
}

/// The rows of a table as sorted JSON lines (through `medilake table show`).
async fn rows(table: &Path) -> Vec<String> {
    let cli = Cli::try_parse_from([
        "medilake",
        "table",
        "show",
        table.to_str().expect("test step"),
        "--format",
        "jsonl",
        "--limit",
        "100000000",
    ])
    .expect("test step");
    let mut out = Vec::new();
    pipeline::commands::run_with_output(cli, &mut out)
        .await
        .expect("test step");
    let mut lines: Vec<String> = String::from_utf8(out)
        .expect("test step")
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

async fn version(table: &Path) -> Option<u64> {
    let table =
        Table::open(table.to_str().expect("test step"), &Default::default()).expect("test step");
    table.snapshot().await.ok().map(|s| s.version())
}

/// Every bronze table's rows.
async fn contents(lake: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for name in ENTITIES
        .iter()
        .map(|e| e.name)
        .chain([bronze::CORRUPT_TABLE])
    {
        out.insert(name.to_owned(), rows(&lake.join("bronze").join(name)).await);
    }
    out
}

fn manifest(data: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data.join("manifest.json")).expect("test step"))
        .expect("test step")
}

fn non_empty_lines(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .expect("test step")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_lands_in_bronze_and_reconciles() {
    let dir = tempfile::tempdir().expect("test step");
    let (data, lake) = (dir.path().join("data"), dir.path().join("lake"));
    copy_sample(&data);
    let manifest = manifest(&data);
    let summaries = run(&options(&data, &lake)).await.expect("test step");
    let corrupt_rows = rows(&lake.join("bronze").join(bronze::CORRUPT_TABLE)).await;
    let mut total_corrupt = 0;
    for entity in ENTITIES {
        let m = &manifest["entities"][entity.name];
        let summary = summaries
            .iter()
            .find(|s| s.table == format!("bronze.{}", entity.name))
            .expect("test step");
        let lines = m["lines"].as_u64().expect("test step");
        let corrupt = m["defects"]["corrupt_line"].as_u64().unwrap_or(0);
        let table_rows = rows(&lake.join("bronze").join(entity.name)).await;
        let corrupt_here = corrupt_rows
            .iter()
            .filter(|r| {
                serde_json::from_str::<Value>(r).expect("test step")["entity"] == entity.name
            })
            .count() as u64;
        // rows + corrupt = non-empty lines, from the files, the manifest and the summary.
        let root = Lake::open(data.to_str().expect("utf-8"), &Default::default()).expect("data");
        let file_lines: u64 = bronze::discover(&root, &entity)
            .await
            .expect("test step")
            .iter()
            .map(|f| non_empty_lines(&data.join(&f.relative)))
            .sum();
        assert_eq!(file_lines, lines, "{}", entity.name);
        assert_eq!(
            table_rows.len() as u64 + corrupt_here,
            lines,
            "{}",
            entity.name
        );
        assert_eq!(corrupt_here, corrupt, "{}", entity.name);
        assert_eq!(summary.rows_in, lines);
        assert_eq!(summary.rows_written, table_rows.len() as u64);
        assert_eq!(summary.corrupt, corrupt);
        assert_eq!(summary.files, 4);
        // One commit per part file, each with its sequence number as app transaction.
        assert_eq!(summary.version, Some(3));
        let table = Table::open(
            lake.join("bronze")
                .join(entity.name)
                .to_str()
                .expect("test step"),
            &Default::default(),
        )
        .expect("test step");
        let snapshot = table.snapshot().await.expect("test step");
        assert_eq!(
            snapshot.app_transaction_version(&bronze::app_id(entity.name)),
            Some(4)
        );
        // Extra fields are rescued, as JSON objects of the fields not in the contract.
        let rescued: Vec<Value> = table_rows
            .iter()
            .map(|r| serde_json::from_str::<Value>(r).expect("test step"))
            .filter_map(|r| r["_rescued_data"].as_str().map(str::to_owned))
            .map(|text| serde_json::from_str(&text).expect("test step"))
            .collect();
        assert_eq!(
            rescued.len() as u64,
            m["defects"]["extra_field"].as_u64().unwrap_or(0),
            "{}",
            entity.name
        );
        for object in &rescued {
            let keys: Vec<&String> = object.as_object().expect("test step").keys().collect();
            assert_eq!(keys.len(), 1);
            assert!(["source_system", "feed_version", "ingest_note"].contains(&keys[0].as_str()));
        }
        total_corrupt += corrupt;
    }
    assert_eq!(corrupt_rows.len() as u64, total_corrupt);
    // Raw text: booleans and numbers are kept as their JSON text.
    let diagnoses = rows(&lake.join("bronze/diagnoses")).await;
    assert!(
        diagnoses
            .iter()
            .any(|r| r.contains(r#""is_primary":"true""#))
    );
    let labs = rows(&lake.join("bronze/lab_results")).await;
    let first: Value = serde_json::from_str(&labs[0]).expect("test step");
    assert!(first["reference_low"].is_string());
    assert_eq!(first["_batch_id"], "test-batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_commits_nothing_and_new_files_are_ingested_alone() {
    let dir = tempfile::tempdir().expect("test step");
    let (data, lake) = (dir.path().join("data"), dir.path().join("lake"));
    copy_sample(&data);
    run(&options(&data, &lake)).await.expect("test step");
    let before = contents(&lake).await;
    let mut versions = BTreeMap::new();
    for entity in ENTITIES {
        versions.insert(
            entity.name,
            version(&lake.join("bronze").join(entity.name)).await,
        );
    }
    let corrupt_version = version(&lake.join("bronze").join(bronze::CORRUPT_TABLE)).await;

    let again = run(&options(&data, &lake)).await.expect("test step");
    assert!(
        again.iter().all(|s| !s.committed && s.files == 0),
        "{again:?}"
    );
    for entity in ENTITIES {
        assert_eq!(
            versions[entity.name],
            version(&lake.join("bronze").join(entity.name)).await
        );
    }
    assert_eq!(
        corrupt_version,
        version(&lake.join("bronze").join(bronze::CORRUPT_TABLE)).await
    );

    // A new part file, with one corrupt line and one rescued field.
    let new_file = data.join("procedures/part-00005.jsonl");
    std::fs::write(
        &new_file,
        concat!(
            r#"{"procedure_id":"X99999991","encounter_id":"E1","patient_id":"P1","cpt_code":"99213","description":"visit","procedure_date":"2025-01-02"}"#,
            "\n\n",
            r#"{"procedure_id":"X99999992","encounter_id":"E1","patient_id":"P1","cpt_code":"93000","description":"ECG","procedure_date":"2025-01-02","site":"north"}"#,
            "\n",
            r#"{"procedure_id":"X9999"#,
            "\n"
        ),
    )
    .expect("test step");
    let summaries = run(&options(&data, &lake)).await.expect("test step");
    for s in &summaries {
        match s.table.as_str() {
            "bronze.procedures" => {
                assert_eq!(
                    (s.files, s.rows_in, s.rows_written, s.corrupt),
                    (1, 3, 2, 1)
                );
                assert_eq!(s.version, Some(4));
            }
            "bronze._corrupt_records" => assert_eq!((s.rows_written, s.files), (1, 1)),
            _ => assert!(!s.committed, "{s:?}"),
        }
    }
    let after = contents(&lake).await;
    let procedures = &after["procedures"];
    assert_eq!(procedures.len(), before["procedures"].len() + 2);
    let new_rows: Vec<Value> = procedures
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).expect("test step"))
        .filter(|r| r["_source_file"] == "procedures/part-00005.jsonl")
        .collect();
    assert_eq!(new_rows.len(), 2);
    let lines: Vec<i64> = new_rows
        .iter()
        .map(|r| r["_source_line"].as_i64().expect("test step"))
        .collect();
    assert!(lines.contains(&1) && lines.contains(&3), "{lines:?}");
    let corrupt: Vec<Value> = after[bronze::CORRUPT_TABLE]
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).expect("test step"))
        .filter(|r| r["source_file"] == "procedures/part-00005.jsonl")
        .collect();
    assert_eq!(corrupt.len(), 1);
    assert_eq!(corrupt[0]["source_line"], 4);
    assert!(
        corrupt[0]["error"]
            .as_str()
            .expect("test step")
            .starts_with("invalid JSON")
    );
}

/// Options whose tables go through one fault-injecting store.
fn faulty_options(data: &Path, lake: &Path, fault: Fault) -> (BronzeOptions, Arc<FaultyStore>) {
    let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let store = Arc::new(FaultyStore::new(local, fault));
    let mut options = options(data, lake);
    options.lake = Lake::with_store(
        store.clone(),
        url::Url::from_directory_path(lake).expect("absolute path"),
    );
    (options, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_point_then_a_rerun_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("test step");
    let data = dir.path().join("data");
    copy_sample(&data);
    // The reference, and the number of store calls of a whole run.
    let reference_lake = dir.path().join("reference");
    let (counting, store) = faulty_options(&data, &reference_lake, Fault::None);
    run(&counting).await.expect("test step");
    let calls = store.calls();
    let expected = contents(&reference_lake).await;
    assert!(calls > 50, "{calls}");

    // Crash points spread over the run (every call under SLOW_TESTS=1).
    let step = if std::env::var_os("SLOW_TESTS").is_some() {
        1
    } else {
        (calls / 24).max(1)
    };
    for at in (0..calls).step_by(step) {
        let lake = dir.path().join(format!("crash-{at}"));
        let (crashing, _) = faulty_options(&data, &lake, Fault::CrashAt(at));
        let result = run(&crashing).await;
        assert!(
            result.is_err(),
            "crash at call {at} of {calls} went unnoticed"
        );
        // An ambiguous commit (written, then reported as failed) must not double-ingest
        // either: the next run sees the app transaction.
        run(&options(&data, &lake)).await.expect("test step");
        let got = contents(&lake).await;
        assert_eq!(got, expected, "crash at store call {at} of {calls}");
        // And the run after that is a no-op.
        let again = run(&options(&data, &lake)).await.expect("test step");
        assert!(
            again.iter().all(|s| !s.committed),
            "crash at {at}: {again:?}"
        );
        std::fs::remove_dir_all(&lake).expect("test step");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_commits_are_not_ingested_twice() {
    let dir = tempfile::tempdir().expect("test step");
    let data = dir.path().join("data");
    copy_sample(&data);
    let reference_lake = dir.path().join("reference");
    let (counting, store) = faulty_options(&data, &reference_lake, Fault::None);
    run(&counting).await.expect("test step");
    let calls = store.calls();
    let expected = contents(&reference_lake).await;
    let step = (calls / 12).max(1);
    for at in (0..calls).step_by(step) {
        let lake = dir.path().join(format!("ambiguous-{at}"));
        let (faulty, _) = faulty_options(&data, &lake, Fault::AmbiguousPutAt(at));
        // The run may or may not notice (only puts are made ambiguous).
        let _ = run(&faulty).await;
        run(&options(&data, &lake)).await.expect("test step");
        assert_eq!(
            contents(&lake).await,
            expected,
            "ambiguous put at call {at}"
        );
        std::fs::remove_dir_all(&lake).expect("test step");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_array_files_and_single_entity_files_are_read() {
    let dir = tempfile::tempdir().expect("test step");
    let (data, lake) = (dir.path().join("data"), dir.path().join("lake"));
    std::fs::create_dir_all(data.join("sample/patients")).expect("test step");
    std::fs::write(data.join("sample/patients/ignored.json"), "{}").expect("test step");
    std::fs::write(data.join("notes.txt"), "not an entity").expect("test step");
    std::fs::write(
        data.join("medications.json"),
        "[\n  {\"medication_id\": \"M1\", \"status\": \"active\", \"end_date\": null},\n  {\"medication_id\": \"M2\", \"dose\": 5},\n  7\n]\n",
    )
    .expect("test step");
    let summaries = run(&options(&data, &lake)).await.expect("test step");
    let meds = summaries
        .iter()
        .find(|s| s.table == "bronze.medications")
        .expect("test step");
    assert_eq!(
        (meds.files, meds.rows_in, meds.rows_written, meds.corrupt),
        (1, 3, 2, 1)
    );
    let patients = summaries
        .iter()
        .find(|s| s.table == "bronze.patients")
        .expect("test step");
    assert_eq!((patients.files, patients.version), (0, None));
    let got = rows(&lake.join("bronze/medications")).await;
    let m2: Value = serde_json::from_str(&got[1]).expect("test step");
    assert_eq!(m2["dose"], "5");
    assert_eq!(m2["_source_line"], 3);
    assert_eq!(m2["_source_file"], "medications.json");
}
