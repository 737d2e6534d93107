//! Interop: tables written by delta-rs (`deltalake` from PyPI; partitions, many commits,
//! overwrite, delete, a checkpoint, schema evolution, every type) read by us give, at every
//! version, exactly the rows delta-rs itself reads back. The tables and their expected rows
//! are made by `tests/python/make_deltars_tables.py` (run by `./test.sh`).

mod common;

use std::collections::HashMap;

use delta_core::Table;
use serde_json::Value;

use common::sorted_rows;

#[test]
fn deltars_tables_read_the_same_at_every_version() {
    let Some(dir) = common::input_dir("MEDILAKE_DELTARS_TABLES", "delta-rs interop") else {
        return;
    };
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let tables = manifest["tables"].as_object().expect("manifest tables");
    assert!(tables.len() >= 6, "expected the six delta-rs tables");
    let rt = common::runtime();
    let mut checked = 0;
    for (name, info) in tables {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let table = Table::open(dir.join(name).to_str().unwrap(), &HashMap::new()).unwrap();
        let latest = info["latest_version"].as_u64().unwrap();
        for (version, rows) in expected["versions"].as_object().unwrap() {
            let version: u64 = version.parse().unwrap();
            let got = rt.block_on(async {
                let snapshot = table.snapshot_at(version).await?;
                let batches = snapshot.scan().build()?.collect().await?;
                Ok::<_, delta_core::Error>((snapshot.version(), batches))
            });
            let (loaded, batches) = got.unwrap_or_else(|e| panic!("{name} v{version}: {e}"));
            assert_eq!(loaded, version);
            let ours = sorted_rows(batches.iter().flat_map(|b| {
                (0..b.num_rows()).map(move |r| pipeline::output::row_to_json(b, r).unwrap())
            }));
            let theirs = sorted_rows(rows.as_array().unwrap().iter().cloned());
            if ours != theirs {
                let missing: Vec<_> = theirs
                    .iter()
                    .filter(|r| !ours.contains(r))
                    .take(2)
                    .collect();
                let extra: Vec<_> = ours
                    .iter()
                    .filter(|r| !theirs.contains(r))
                    .take(2)
                    .collect();
                panic!(
                    "{name} v{version}: {} rows vs delta-rs {}; missing {missing:?}; unexpected {extra:?}",
                    ours.len(),
                    theirs.len()
                );
            }
            checked += 1;
        }
        // The latest snapshot loads without time travel too (through the checkpoint, if any).
        let latest_snapshot = rt.block_on(table.snapshot()).unwrap();
        assert_eq!(latest_snapshot.version(), latest, "{name}");
    }
    eprintln!("{checked} table versions written by delta-rs read identically");
}
