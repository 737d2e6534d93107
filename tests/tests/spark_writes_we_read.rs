//! Spark writes, we read: tables written by Delta on Apache Spark (one per feature, each
//! with several versions; built at test time by `tests/spark/make_spark_tables.py` inside
//! the Spark peer and cached under target/ by the generator's hash) read by us at every
//! version give exactly the rows Spark itself reads at that version.
//!
//! A table we cannot read must be refused with an error that names its feature, and be
//! listed in [`KNOWN_REFUSED`]; a table we read differently from Spark is a bug, listed in
//! [`KNOWN_MISREAD`] with the reason until fixed. The test fails on anything else, and also
//! when a listed table starts to pass (so the list shrinks with each fix). Both lists are
//! mirrored in tests/SPARK.md.

mod common;
#[path = "common/spark.rs"]
mod spark;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use delta_core::Table;
use serde_json::Value;

/// Tables we refuse on purpose: `(table, word the error must contain, reason)`.
const KNOWN_REFUSED: &[(&str, &str, &str)] = &[];

/// Tables (or `table vN`) we read differently from Spark: `(key, reason)`. Engine bugs.
const KNOWN_MISREAD: &[(&str, &str)] = &[];

fn tables_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/spark/spark-written")
}

#[test]
fn spark_written_tables_read_the_same_at_every_version() {
    let Some(mut spark) = spark::Spark::connect("Spark-written tables") else {
        return;
    };
    let started = Instant::now();
    let dir = tables_dir();
    let manifest = spark
        .make_tables(&dir)
        .unwrap_or_else(|e| panic!("the Spark generator failed: {e}"));
    let tables = manifest["tables"].as_object().expect("manifest tables");
    assert!(
        tables.len() >= 10,
        "expected at least 10 Spark-written tables, got {}",
        tables.len()
    );
    let rt = common::runtime();

    let mut compared_versions = 0usize;
    let mut compared_tables = 0usize;
    // Versions both Spark and we refuse to read.
    let mut refused_versions = 0usize;
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut misread: Vec<(String, String)> = Vec::new();
    for (name, info) in tables {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json")))
                .expect("expected rows"),
        )
        .expect("expected json");
        let path = dir.join(name);
        let mut table_refusal = None;
        let mut table_ok = true;
        let versions = expected["versions"].as_object().expect("versions");
        for (version, rows) in versions {
            let version: u64 = version.parse().expect("version");
            let got = rt.block_on(async {
                let table = Table::open(path.to_str().expect("UTF-8"), &HashMap::new())?;
                let snapshot = table.snapshot_at(version).await?;
                let batches = snapshot.scan().build()?.collect().await?;
                Ok::<_, delta_core::Error>((snapshot.version(), batches))
            });
            match got {
                Err(e) => {
                    table_refusal = Some(e.to_string());
                    table_ok = false;
                    break;
                }
                Ok((loaded, batches)) => {
                    assert_eq!(loaded, version, "{name}");
                    let ours = spark::sorted_rows(batches.iter().flat_map(|b| {
                        (0..b.num_rows())
                            .map(move |r| pipeline::output::row_to_json(b, r).expect("row_to_json"))
                    }));
                    let theirs = spark::sorted_rows(rows.as_array().expect("rows").iter().cloned());
                    if ours == theirs {
                        compared_versions += 1;
                    } else {
                        table_ok = false;
                        let detail = spark::diff(&ours, &theirs);
                        eprintln!("[{name}] v{version} MISREAD: {detail}");
                        misread.push((format!("{name} v{version}"), detail));
                    }
                }
            }
        }
        if let Some(err) = table_refusal {
            eprintln!("[{name}] REFUSED: {err}");
            refused.push((name.clone(), err));
        }
        // Versions Spark cannot read (log cleanup deleted their commits, VACUUM their
        // files): we must not read them either.
        for version in info["unreadable_by_spark"]
            .as_object()
            .map(|v| v.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let version: u64 = version.parse().expect("version");
            let read = rt.block_on(async {
                let table = Table::open(path.to_str().expect("UTF-8"), &HashMap::new())?;
                let snapshot = table.snapshot_at(version).await?;
                snapshot.scan().build()?.collect().await?;
                Ok::<_, delta_core::Error>(())
            });
            if read.is_ok() {
                table_ok = false;
                misread.push((
                    format!("{name} v{version}"),
                    "read a version that Spark cannot read".to_owned(),
                ));
            } else {
                refused_versions += 1;
            }
        }
        if table_ok {
            compared_tables += 1;
        }
    }

    // Every refusal is listed, and names the feature it refuses.
    let mut problems = Vec::new();
    for (name, err) in &refused {
        match KNOWN_REFUSED.iter().find(|(t, _, _)| t == name) {
            None => problems.push(format!("{name}: refused but not in KNOWN_REFUSED: {err}")),
            Some((_, word, _)) if !err.to_lowercase().contains(&word.to_lowercase()) => {
                problems.push(format!("{name}: refusal does not name `{word}`: {err}"));
            }
            Some(_) => {}
        }
    }
    for (t, _, _) in KNOWN_REFUSED {
        if !refused.iter().any(|(n, _)| n == t) {
            problems.push(format!(
                "{t}: listed in KNOWN_REFUSED but now read: drop it from the list"
            ));
        }
    }
    for (key, detail) in &misread {
        let table = key.split(' ').next().unwrap_or_default();
        if !KNOWN_MISREAD.iter().any(|(k, _)| k == key || *k == table) {
            problems.push(format!("{key}: read differently from Spark: {detail}"));
        }
    }
    for (k, _) in KNOWN_MISREAD {
        if !misread
            .iter()
            .any(|(key, _)| key == k || key.split(' ').next() == Some(k))
        {
            problems.push(format!(
                "{k}: listed in KNOWN_MISREAD but now reads like Spark: drop it from the list"
            ));
        }
    }
    spark::summary(&format!(
        "Spark -> us: {} Spark-written tables, {compared_tables} read identically at all versions, \
         {compared_versions} table versions compared, {refused_versions} versions that Spark \
         cannot read refused by us too, {} refused, {} misread versions ({:.1}s; Spark {})",
        tables.len(),
        refused.len(),
        misread.len(),
        started.elapsed().as_secs_f64(),
        manifest["spark"].as_str().unwrap_or("?"),
    ));
    assert!(
        problems.is_empty(),
        "Spark-written tables:\n  {}",
        problems.join("\n  ")
    );
}

/// One Spark-built CDF table: its statements (`{t}` is the table) and the version ranges
/// whose change rows are compared.
struct ChangeCase {
    name: &'static str,
    statements: &'static [&'static str],
    ranges: &'static [(u64, Option<u64>)],
}

const CHANGE_CASES: &[ChangeCase] = &[
    ChangeCase {
        name: "copy-on-write, partitioned",
        statements: &[
            "CREATE TABLE {t} (id INT, name STRING, grp STRING) USING delta PARTITIONED BY (grp) \
             TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true', 'delta.enableDeletionVectors' = 'false')",
            "INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'x'), (3, 'c', 'y'), (4, 'd', 'y')",
            "INSERT INTO {t} VALUES (5, 'e', 'z')",
            "UPDATE {t} SET name = 'bb' WHERE id = 2",
            "DELETE FROM {t} WHERE id = 3",
            "MERGE INTO {t} AS t USING (SELECT * FROM VALUES (1, 'aa', 'x'), (6, 'f', 'z') AS s(id, name, grp)) AS s \
             ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
            "DELETE FROM {t} WHERE grp = 'z'",
            "ALTER TABLE {t} ADD COLUMNS (score DOUBLE)",
            "INSERT INTO {t} VALUES (7, 'g', 'x', 1.5)",
            "OPTIMIZE {t}",
        ],
        ranges: &[(0, None), (3, Some(5)), (6, Some(6)), (9, None)],
    },
    ChangeCase {
        name: "deletion vectors",
        statements: &[
            "CREATE TABLE {t} (id INT, name STRING) USING delta \
             TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true', 'delta.enableDeletionVectors' = 'true')",
            "INSERT INTO {t} SELECT /*+ REPARTITION(1) */ CAST(id AS INT) AS id, concat('n', CAST(id AS STRING)) AS name FROM range(0, 20)",
            "DELETE FROM {t} WHERE id % 5 = 0",
            "UPDATE {t} SET name = 'u' WHERE id = 7",
            "DELETE FROM {t} WHERE id = 8",
            "MERGE INTO {t} AS t USING (SELECT * FROM VALUES (9, 'm'), (100, 'new') AS s(id, name)) AS s \
             ON t.id = s.id WHEN MATCHED AND s.id = 9 THEN DELETE WHEN NOT MATCHED THEN INSERT *",
            "OPTIMIZE {t}",
            "DELETE FROM {t}",
        ],
        ranges: &[(0, None), (2, Some(4))],
    },
    ChangeCase {
        name: "column mapping by name",
        statements: &[
            "CREATE TABLE {t} (id INT, name STRING) USING delta \
             TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true', 'delta.columnMapping.mode' = 'name')",
            "INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            "UPDATE {t} SET name = 'bb' WHERE id = 2",
            "ALTER TABLE {t} ADD COLUMNS (extra STRING)",
            "INSERT INTO {t} VALUES (4, 'd', 'e')",
            "DELETE FROM {t} WHERE id = 1",
        ],
        ranges: &[(0, None), (0, Some(2))],
    },
];

#[test]
fn spark_change_data_feed_equals_ours() {
    let Some(mut spark) = spark::Spark::connect("Spark change data feed") else {
        return;
    };
    let rt = common::runtime();
    let mut problems = Vec::new();
    let mut compared = 0usize;
    for case in CHANGE_CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t");
        if let Err(e) = spark.sql(&path, case.statements) {
            problems.push(format!(
                "{}: Spark failed to build the table: {e}",
                case.name
            ));
            continue;
        }
        for (start, end) in case.ranges {
            let theirs = spark
                .changes(&path, *start, *end)
                .unwrap_or_else(|e| panic!("{}: Spark's changes from {start}: {e}", case.name));
            let theirs = spark::sorted_rows(theirs);
            match rt.block_on(common::our_changes(&path, *start, *end)) {
                Ok(ours) if ours == theirs => compared += ours.len(),
                Ok(ours) => problems.push(format!(
                    "{} v{start}..{end:?}: {}",
                    case.name,
                    spark::diff(&ours, &theirs)
                )),
                Err(e) => problems.push(format!("{} v{start}..{end:?}: {e}", case.name)),
            }
        }
    }

    // Both refuse a range over a version where the feed was off.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t");
    spark
        .sql(
            &path,
            &[
                "CREATE TABLE {t} (id INT) USING delta TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')",
                "INSERT INTO {t} VALUES (1)",
                "ALTER TABLE {t} SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'false')",
                "INSERT INTO {t} VALUES (2)",
            ],
        )
        .expect("Spark builds the table");
    let spark_error = spark.changes(&path, 0, None).expect_err("Spark refuses");
    let ours = rt.block_on(common::our_changes(&path, 0, None));
    assert!(
        matches!(
            ours,
            Err(delta_core::Error::ChangeDataNotRecorded { version: 2, .. })
        ),
        "ours: {ours:?}; Spark: {spark_error}"
    );

    spark::summary(&format!(
        "Spark change data feed: {} cases, {compared} change rows identical",
        CHANGE_CASES.len()
    ));
    assert!(
        problems.is_empty(),
        "change data feed differs from Spark's:\n  {}",
        problems.join("\n  ")
    );
}
