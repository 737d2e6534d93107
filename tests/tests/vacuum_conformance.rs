//! VACUUM on tables we did not write: on every conformance table that loads (Spark and
//! Databricks tables with deletion vectors and change data files among them), a dry run
//! with retention 0 and force never lists a live data file or a live deletion-vector file.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use delta_core::Table;

#[derive(serde::Deserialize)]
struct Expectation {
    name: String,
    root: String,
    negative: bool,
}

#[test]
fn vacuum_dry_run_never_lists_live_files_of_spark_tables() {
    let Some(base) = common::input_dir("MEDILAKE_CONFORMANCE_DIR", "vacuum on conformance tables")
    else {
        return;
    };
    let expectations: Vec<Expectation> = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/expectations.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let rt = common::runtime();
    let mut checked = 0;
    let mut with_dvs = 0;
    for exp in expectations.iter().filter(|e| !e.negative) {
        let root = base.join(&exp.root);
        let table = Table::open(root.to_str().unwrap(), &HashMap::new()).unwrap();
        let Ok(snapshot) = rt.block_on(table.snapshot()) else {
            continue;
        };
        let report = match rt.block_on(
            table
                .vacuum()
                .with_retention(Duration::ZERO)
                .with_force(true)
                .with_dry_run(true)
                .run(),
        ) {
            Ok(r) => r,
            // Tables with writer features we do not implement are refused, not vacuumed.
            Err(delta_core::Error::Unsupported { .. }) => continue,
            Err(e) => panic!("{}: {e}", exp.name),
        };
        let mut live: HashSet<String> = HashSet::new();
        for add in snapshot.files() {
            let decoded = percent_decode(&add.path);
            live.insert(decoded);
            if let Some(dv) = &add.deletion_vector
                && let Some(url) = dv.absolute_path(snapshot.table_url()).unwrap()
            {
                let relative = url
                    .as_str()
                    .strip_prefix(snapshot.table_url().as_str())
                    .unwrap()
                    .to_owned();
                live.insert(percent_decode(&relative));
                with_dvs += 1;
            }
        }
        for file in &report.files {
            assert!(
                !live.contains(file),
                "{}: vacuum would delete live file {file}",
                exp.name
            );
            assert!(
                !file.starts_with("_delta_log"),
                "{}: vacuum would touch the log: {file}",
                exp.name
            );
        }
        checked += 1;
    }
    eprintln!("vacuum dry run checked on {checked} tables ({with_dvs} live deletion vectors)");
    assert!(checked >= 140, "only {checked} tables were checked");
    assert!(with_dvs > 10);
}

fn percent_decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}
