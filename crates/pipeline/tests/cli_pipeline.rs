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

#[test]
fn the_catalog_lists_and_describes_tables_with_phi_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let data = data.to_str().expect("utf-8");
    // Before any run: the catalogued tables are listed as not created.
    let (code, out, err) = medilake(&["catalog", "list"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("medilake.silver.patients_scd"), "{out}");
    assert!(out.contains("do not exist yet"), "{out}");

    let (code, _, err) = medilake(
        &[
            "run",
            "--data",
            data,
            "--as-of",
            "2024-06-01",
            "--stages",
            "bronze,silver",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("catalog: wrote"), "{err}");
    let catalog = dir.path().join("lakehouse/_catalog.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&catalog).expect("catalog file"))
            .expect("JSON");
    // A hand edit: another owner for one table.
    doc["tables"]["silver.patients_scd"]["owner"] = "privacy-office".into();
    std::fs::write(&catalog, doc.to_string()).expect("edit");

    let (code, out, err) = medilake(&["catalog", "list", "--json"], dir.path());
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(out.trim()).expect("JSON");
    let tables = list["tables"].as_array().expect("tables");
    let scd = tables
        .iter()
        .find(|t| t["name"] == "medilake.silver.patients_scd")
        .expect("listed");
    assert_eq!(scd["owner"], "privacy-office");
    assert_eq!(scd["exists"], true);
    assert!(scd["rows"].as_u64().expect("rows") > 0);
    assert_eq!(scd["phiColumns"], 11);
    let gold = tables
        .iter()
        .find(|t| t["name"] == "medilake.gold.lab_abnormal_trends")
        .expect("listed");
    assert_eq!(gold["exists"], false);

    let (code, out, err) = medilake(
        &[
            "catalog",
            "describe",
            "medilake.silver.patients_scd",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let table: Value = serde_json::from_str(out.trim()).expect("JSON");
    let column = |name: &str| {
        table["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no column {name}: {table}"))
    };
    for (name, tag) in [
        ("first_name", "phi:name"),
        ("address_line1", "phi:address"),
        ("phone", "phi:phone"),
        ("email", "phi:email"),
        ("insurance_member_id", "phi:member_id"),
    ] {
        assert_eq!(column(name)["tags"], serde_json::json!([tag]), "{name}");
    }
    assert_eq!(column("valid_from")["type"], "timestamp_ntz");
    assert_eq!(column("sex")["tags"], serde_json::json!([]));
    // The rerun keeps the hand edit.
    let (code, _, err) = medilake(
        &[
            "run",
            "--data",
            data,
            "--as-of",
            "2024-06-01",
            "--stages",
            "bronze,silver",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("catalog: wrote"), "{err}");
    let (_, out, _) = medilake(&["catalog", "describe", "silver.patients_scd"], dir.path());
    assert!(out.contains("owner:       privacy-office"), "{out}");
    assert!(out.contains("partitioned: no"), "{out}");
    let (_, out, _) = medilake(
        &["catalog", "describe", "medilake.silver.encounters_clean"],
        dir.path(),
    );
    assert!(out.contains("partitioned: by encounter_month"), "{out}");

    for bad in ["medilake.platinum.x", "silver.nope", "nope"] {
        let (code, _, err) = medilake(&["catalog", "describe", bad], dir.path());
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(err.lines().count() == 1, "{err}");
    }
}
