//! `medilake run` with the data directory and the lake on object storage (the S3 and Azure
//! emulators that `./test.sh` starts; see tests/objectstores/): the run completes and its
//! gold tables hold the same rows as a run over the same files on local disk. A second run
//! changes nothing.
//!
//! Outside CI, without `MEDILAKE_S3_URL`/`MEDILAKE_AZURE_URL`, the test says so and returns;
//! under `CI=true` a missing emulator fails it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use pipeline::lake::Lake;

const GOLD: [&str; 4] = [
    "patient_clinical_summary",
    "hospital_utilization_metrics",
    "disease_prevalence_daily",
    "lab_abnormal_trends",
];

fn medilake(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medilake"))
        .args(args)
        .output()
        .expect("run medilake");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

/// The emulator URLs to run against; fails under CI when one is missing.
fn backends() -> Vec<String> {
    let mut out = Vec::new();
    for var in ["MEDILAKE_S3_URL", "MEDILAKE_AZURE_URL"] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => out.push(url),
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but {var} is not set: ./test.sh starts the emulators")
            }
            _ => eprintln!("{var} not set (run ./test.sh to start the emulators): skipped"),
        }
    }
    out
}

/// Copy the bundled sample's entity folders to `root/data/`.
async fn upload_sample(root: &str) -> String {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let data = format!("{root}/data");
    let target = Lake::open(&data, &HashMap::new()).expect("data root");
    for entity in pipeline::pipeline::contract::ENTITIES {
        for item in std::fs::read_dir(sample.join(entity.name)).expect("sample") {
            let path = item.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).expect("read");
            target
                .replace(&format!("{}/{name}", entity.name), Bytes::from(bytes))
                .await
                .expect("upload");
        }
    }
    data
}

/// The gold tables' rows, sorted, through `medilake table show`.
fn gold_rows(lake: &str) -> BTreeMap<&'static str, Vec<String>> {
    GOLD.iter()
        .map(|name| {
            let table = format!("{}/gold/{name}", lake.trim_end_matches('/'));
            let (code, out, err) = medilake(&[
                "table",
                "show",
                &table,
                "--format",
                "jsonl",
                "--limit",
                "100000000",
            ]);
            assert_eq!(code, 0, "{table}: {err}");
            let mut rows: Vec<String> = out.lines().map(str::to_owned).collect();
            rows.sort();
            (*name, rows)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_object_storage_gives_the_gold_tables_of_a_local_run() {
    let backends = backends();
    if backends.is_empty() {
        return;
    }
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let local = tempfile::tempdir().expect("tempdir");
    let local_lake = local.path().join("lake");
    let local_lake = local_lake.to_str().expect("utf-8");
    let as_of = "2024-06-01";
    let (code, _, err) = medilake(&[
        "run",
        "--data",
        sample.to_str().expect("utf-8"),
        "--lake",
        local_lake,
        "--as-of",
        as_of,
    ]);
    assert_eq!(code, 0, "{err}");
    let expected = gold_rows(local_lake);
    assert!(expected.values().all(|rows| !rows.is_empty()));

    for base in backends {
        let root = format!(
            "{}/pipeline-{}",
            base.trim_end_matches('/'),
            uuid::Uuid::new_v4()
        );
        let data = upload_sample(&root).await;
        let lake = format!("{root}/lake");
        let (code, out, err) = medilake(&[
            "run", "--data", &data, "--lake", &lake, "--as-of", as_of, "--json",
        ]);
        assert_eq!(code, 0, "{lake}: {err}");
        let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        assert!(
            summary["silver"]
                .as_array()
                .expect("silver")
                .iter()
                .all(|t| t["reconciles"] == true),
            "{summary}"
        );
        assert_eq!(gold_rows(&lake), expected, "{lake}");
        // The catalog file went to the same store.
        let (code, out, err) = medilake(&["catalog", "list", "--lake", &lake, "--json"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("medilake.gold.lab_abnormal_trends"), "{out}");
        // A rerun changes no table.
        let (code, out, err) = medilake(&[
            "run", "--data", &data, "--lake", &lake, "--as-of", as_of, "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let again: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        assert_eq!(again["bronze"]["changed"], false, "{again}");
        for layer in ["silver", "gold"] {
            assert!(
                again[layer]
                    .as_array()
                    .expect("layer")
                    .iter()
                    .all(|t| t["version"].is_null()),
                "{again}"
            );
        }
    }
}
