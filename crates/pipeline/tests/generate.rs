//! `medilake generate`: the same seed gives byte-identical output; the manifest's counts
//! describe exactly what is in the files (re-derived here from the lines themselves); the
//! bundled sample in `data/` is the generator's own output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;
use pipeline::pipeline::contract::{ENTITIES, Entity};
use pipeline::pipeline::synth::{GenerateOptions, generate};
use serde_json::Value;

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).expect("test step") {
            let path = item.expect("test step").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).expect("test step").to_path_buf(),
                    std::fs::read(&path).expect("test step"),
                );
            }
        }
    }
    out
}

fn options(patients: u64, seed: u64) -> GenerateOptions {
    GenerateOptions {
        patients,
        seed,
        parts: 5,
        max_encounters: 12,
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let dir = tempfile::tempdir().expect("test step");
    generate(&dir.path().join("a"), &options(120, 7)).expect("test step");
    generate(&dir.path().join("b"), &options(120, 7)).expect("test step");
    generate(&dir.path().join("c"), &options(120, 8)).expect("test step");
    let a = files(&dir.path().join("a"));
    assert_eq!(a.len(), 6 * 5 + 1);
    assert!(a == files(&dir.path().join("b")));
    assert!(a != files(&dir.path().join("c")));
}

/// The defects of the lines of one entity, counted from the text.
fn count_defects(entity: &Entity, lines: &[String]) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut add = |key: &str| *counts.entry(key.to_owned()).or_default() += 1;
    let mut previous: Option<&String> = None;
    for line in lines {
        if previous == Some(line) {
            add("duplicate");
        }
        previous = Some(line);
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
            add("corrupt_line");
            continue;
        };
        if record[entity.id_field].is_null() {
            add("null_id");
        }
        if record.keys().any(|k| !entity.fields.contains(&k.as_str())) {
            add("extra_field");
        }
        let date = record[entity.date_field].as_str().unwrap_or_default();
        if NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
            let kind = if date.is_empty() {
                "empty_date"
            } else if date == "N/A" {
                "na_date"
            } else if date.contains('/') {
                "us_format_date"
            } else {
                "impossible_date"
            };
            add(kind);
        }
        if entity.name == "encounters"
            && record["discharge_ts"].as_str() < record["admit_ts"].as_str()
        {
            add("discharge_before_admit");
        }
        if entity.name == "lab_results" {
            match &record["value"] {
                Value::Null => add("null_lab_value"),
                Value::String(_) => add("non_numeric_lab_value"),
                _ => {}
            }
        }
        if entity.name == "patients" && record["op"] == "U" {
            add("cdc_update");
        }
    }
    counts
}

#[test]
fn the_manifest_counts_what_is_in_the_files() {
    let dir = tempfile::tempdir().expect("test step");
    let manifest = generate(dir.path(), &options(400, 11)).expect("test step");
    let doc = &manifest.json;
    let mut total = 0;
    for entity in ENTITIES {
        let m = &doc["entities"][entity.name];
        let mut lines = Vec::new();
        let mut last_max: Option<String> = None;
        for file in m["files"].as_array().expect("test step") {
            let text =
                std::fs::read_to_string(dir.path().join(file["path"].as_str().expect("test step")))
                    .expect("test step");
            let part: Vec<String> = text.lines().map(str::to_owned).collect();
            assert_eq!(
                part.len() as u64,
                file["lines"].as_u64().expect("test step")
            );
            // Time-ordered parts: encounters of a later part are not earlier than the
            // latest of the previous part (bad dates aside).
            if entity.name == "encounters" {
                let dates: Vec<String> = part
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter_map(|r| r["encounter_date"].as_str().map(str::to_owned))
                    .filter(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
                    .collect();
                if let (Some(prev), Some(min)) = (&last_max, dates.iter().min()) {
                    assert!(
                        min >= prev,
                        "part {} starts before the previous ends",
                        file["path"]
                    );
                }
                last_max = dates.iter().max().cloned();
            }
            lines.extend(part);
        }
        assert_eq!(lines.len() as u64, m["lines"].as_u64().expect("test step"));
        let mut expected: BTreeMap<String, u64> = m["defects"]
            .as_object()
            .expect("test step")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("test step")))
            .collect();
        // Late arrival is a property of where a line is, not of its text.
        let late = expected.remove("late_cdc_update").unwrap_or(0);
        assert!(late <= expected.get("cdc_update").copied().unwrap_or(0));
        assert_eq!(count_defects(&entity, &lines), expected, "{}", entity.name);
        // Every generic defect shows up in the largest entity at this size.
        if entity.name == "lab_results" {
            for key in [
                "null_id",
                "duplicate",
                "extra_field",
                "corrupt_line",
                "impossible_date",
                "na_date",
                "us_format_date",
                "empty_date",
                "null_lab_value",
                "non_numeric_lab_value",
            ] {
                assert!(
                    expected.get(key).copied().unwrap_or(0) > 0,
                    "{} {key}",
                    entity.name
                );
            }
        }
        total += lines.len() as u64;
    }
    assert_eq!(total, manifest.total_lines);
    // About 100 rows per patient.
    assert!((80 * 400..120 * 400).contains(&total), "{total}");
    let patients = &doc["entities"]["patients"]["defects"];
    assert!(patients["late_cdc_update"].as_u64().expect("test step") > 0);
    assert!(
        doc["entities"]["encounters"]["defects"]["discharge_before_admit"]
            .as_u64()
            .expect("test step")
            > 0
    );
}

#[test]
fn the_bundled_sample_is_generator_output() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(sample.join("manifest.json")).expect("test step"),
    )
    .expect("test step");
    let dir = tempfile::tempdir().expect("test step");
    let out = Command::new(env!("CARGO_BIN_EXE_medilake"))
        .args(["generate", "--patients"])
        .arg(manifest["patients"].to_string())
        .arg("--seed")
        .arg(manifest["seed"].to_string())
        .arg("--parts")
        .arg(manifest["parts"].to_string())
        .arg("--max-encounters")
        .arg(manifest["max_encounters"].to_string())
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("test step");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = files(dir.path());
    for (path, bytes) in &generated {
        let committed = std::fs::read(sample.join(path)).expect("test step");
        assert!(
            &committed == bytes,
            "data/{} differs from the generator's output",
            path.display()
        );
    }
    let size: usize = generated.values().map(Vec::len).sum();
    assert!(size < 2 * 1024 * 1024, "{size} bytes");
}
