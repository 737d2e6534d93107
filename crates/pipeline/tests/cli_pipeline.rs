//! `medilake generate` and `medilake run` through the binary: stages that are not built are
//! rejected by name before anything runs, a first run prints the summary table, a second run
//! says that nothing changed, `--json` prints the summary as one object.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn medilake(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medilake"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run medilake");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

#[test]
fn generate_then_run_bronze_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = medilake(
        &[
            "generate",
            "--patients",
            "30",
            "--parts",
            "3",
            "--out",
            "data",
        ],
        dir.path(),
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("generated 30 patients"), "{out}");

    // A stage with nothing before it: silver without bronze tables writes nothing.
    let (code, out, err) = medilake(&["run", "--stages", "silver"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("silver.encounters_clean"), "{out}");
    assert!(
        !dir.path()
            .join("lakehouse/silver/encounters_clean")
            .exists()
    );
    let (code, _, err) = medilake(&["run", "--stages", "platinum"], dir.path());
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = medilake(&["run", "--stages", "bronze"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("table "), "{out}");
    for name in ["patients", "lab_results", "_corrupt_records"] {
        assert!(out.contains(&format!("bronze.{name}")), "{out}");
        assert!(
            dir.path()
                .join("lakehouse/bronze")
                .join(name)
                .join("_delta_log")
                .is_dir()
        );
    }
    // Not a terminal: plain progress lines naming files, never values.
    assert!(
        err.contains("patients/part-00001.jsonl -> version 0"),
        "{err}"
    );

    let (code, out, _) = medilake(&["run", "--stages", "bronze", "--json"], dir.path());
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let doc = &doc["bronze"];
    assert_eq!(doc["changed"], false);
    let tables = doc["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 7);
    assert!(
        tables
            .iter()
            .all(|t| t["committed"] == false && t["files"] == 0)
    );
    assert_eq!(tables[0]["version"], 2);

    let (code, out, _) = medilake(&["run", "--stages", "bronze"], dir.path());
    assert_eq!(code, 0);
    assert!(
        out.contains("no new source files; no table changed"),
        "{out}"
    );
}
