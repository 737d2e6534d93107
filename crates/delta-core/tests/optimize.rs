//! OPTIMIZE: compaction and clustering preserve rows, are idempotent, and clustering
//! brings point probes down to about √n files per column.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions: a panic is how a test fails"
)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::{Curve, Table};
use futures::StreamExt;
use proptest::prelude::*;

fn batch(ids: Vec<i64>, codes: Vec<String>, sites: Vec<&str>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Int64, true),
        Field::new("loinc_code", DataType::Utf8, true),
        Field::new("site", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(codes)),
            Arc::new(StringArray::from(sites)),
        ],
    )
    .unwrap()
}

async fn append(table: &Table, b: RecordBatch, partitioned: bool) {
    let mut w = table.write();
    if partitioned {
        w = w.with_partition_columns(["site"]);
    }
    let _ = w
        .execute(futures::stream::iter(vec![Ok(b)]).boxed())
        .await
        .unwrap();
}

async fn sorted_rows(table: &Table) -> Vec<(i64, String, String)> {
    let s = table.snapshot().await.unwrap();
    let batches = s
        .scan()
        .with_columns(["patient_id", "loinc_code", "site"])
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let codes = b.column(1).as_string::<i32>();
        let sites = b.column(2).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                ids.value(i),
                codes.value(i).to_owned(),
                sites.value(i).to_owned(),
            ));
        }
    }
    out.sort();
    out
}

fn open(dir: &tempfile::TempDir) -> Table {
    Table::open(dir.path().join("t").to_str().unwrap(), &HashMap::new()).unwrap()
}

#[tokio::test]
async fn compaction_packs_small_files_per_partition_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(&dir);
    for i in 0..8i64 {
        let site = if i % 2 == 0 { "north" } else { "south" };
        append(
            &table,
            batch(vec![i, i + 100], vec![format!("c{i}"); 2], vec![site; 2]),
            true,
        )
        .await;
    }
    let before = sorted_rows(&table).await;
    assert_eq!(table.snapshot().await.unwrap().files().len(), 8);
    let dry = table.optimize().with_dry_run(true).run().await.unwrap();
    assert_eq!(dry.bins.len(), 2);
    assert_eq!(table.snapshot().await.unwrap().files().len(), 8);
    let report = table.optimize().run().await.unwrap();
    assert_eq!((report.files_removed, report.files_added), (8, 2));
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.files().len(), 2);
    assert!(snapshot.files().iter().all(|f| !f.data_change));
    assert_eq!(
        snapshot.commit_info().unwrap().operation(),
        Some("OPTIMIZE")
    );
    assert_eq!(sorted_rows(&table).await, before);
    let again = table.optimize().run().await.unwrap();
    assert!(again.bins.is_empty() && again.versions.is_empty());
}

#[tokio::test]
async fn optimize_where_is_restricted_to_partition_columns() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(&dir);
    append(
        &table,
        batch(vec![1], vec!["a".into()], vec!["north"]),
        true,
    )
    .await;
    append(
        &table,
        batch(vec![2], vec!["a".into()], vec!["north"]),
        true,
    )
    .await;
    append(
        &table,
        batch(vec![3], vec!["a".into()], vec!["south"]),
        true,
    )
    .await;
    append(
        &table,
        batch(vec![4], vec!["a".into()], vec!["south"]),
        true,
    )
    .await;
    let err = table
        .optimize()
        .with_predicate(delta_core::expression::parse("patient_id > 1").unwrap())
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition"), "{err}");
    let report = table
        .optimize()
        .with_predicate(delta_core::expression::parse("site = 'north'").unwrap())
        .run()
        .await
        .unwrap();
    assert_eq!(report.files_removed, 2);
    assert_eq!(table.snapshot().await.unwrap().files().len(), 3);
}

/// A deterministic shuffle of 0..n.
fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut state = seed;
    for i in (1..v.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from((state >> 33) % (i as u64 + 1)).unwrap();
        v.swap(i, j);
    }
    v
}

async fn clustered_table(curve: Curve) -> (tempfile::TempDir, Table, usize) {
    let dir = tempfile::tempdir().unwrap();
    let table = open(&dir);
    // 2,000 patients × 20 lab codes, arriving in random order over 10 appends.
    let order = shuffled(40_000, 7);
    for chunk in order.chunks(4_000) {
        let ids: Vec<i64> = chunk
            .iter()
            .map(|r| i64::try_from(r / 20).unwrap())
            .collect();
        let codes: Vec<String> = chunk
            .iter()
            .map(|r| format!("{}-{}", 1000 + r % 20, r % 7))
            .collect();
        append(&table, batch(ids, codes, vec!["all"; chunk.len()]), false).await;
    }
    let bytes: u64 = table
        .snapshot()
        .await
        .unwrap()
        .files()
        .iter()
        .map(|f| u64::try_from(f.size).unwrap())
        .sum();
    // About 20 output files.
    let target = bytes / 20 + 1;
    let _ = table
        .optimize()
        .with_zorder(["patient_id", "loinc_code"], Some(curve))
        .with_target_size(target)
        .run()
        .await
        .unwrap();
    let n = table.snapshot().await.unwrap().files().len();
    (dir, table, n)
}

#[tokio::test]
async fn clustering_brings_point_probes_to_about_sqrt_n_files() {
    for curve in [Curve::Hilbert, Curve::Morton] {
        let (_dir, table, n) = clustered_table(curve).await;
        assert!((15..=25).contains(&n), "{curve:?}: {n} files");
        let snapshot = table.snapshot().await.unwrap();
        let report = snapshot
            .clustering_report(&["patient_id".to_owned(), "loinc_code".to_owned()], 200)
            .await
            .unwrap();
        // The target is 1.5·√n per column for the default curve (Hilbert); Morton's
        // Z jumps make the cut of a non-power-of-4 file count uneven, so it gets 2·√n.
        #[allow(clippy::cast_precision_loss, reason = "small counts")]
        let bound = match curve {
            Curve::Hilbert => 1.5,
            Curve::Morton => 2.0,
        } * (n as f64).sqrt();
        let [id, code, both] = &report.probes[..] else {
            panic!("three probe groups expected")
        };
        eprintln!(
            "{curve:?}: n={n} id={:.2} code={:.2} both={:.2}",
            id.average_files, code.average_files, both.average_files
        );
        assert!(
            id.average_files <= bound,
            "{curve:?}: patient_id probes read {} files",
            id.average_files
        );
        assert!(
            code.average_files <= bound,
            "{curve:?}: loinc_code probes read {} files",
            code.average_files
        );
        assert!(
            both.average_files <= 2.0,
            "{curve:?}: combined probes read {} files",
            both.average_files
        );
        // Idempotent: clustering unchanged data again rewrites nothing.
        let again = table
            .optimize()
            .with_zorder(["patient_id", "loinc_code"], Some(curve))
            .run()
            .await
            .unwrap();
        assert_eq!(again.bytes_removed, 0);
        assert!(again.versions.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn optimize_preserves_the_multiset_of_rows(
        appends in proptest::collection::vec(proptest::collection::vec((0i64..50, 0u8..5, 0u8..3), 1..30), 2..6),
        zorder in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let table = open(&dir);
            for rows in &appends {
                let ids = rows.iter().map(|r| r.0).collect();
                let codes = rows.iter().map(|r| format!("c{}", r.1)).collect();
                let sites = rows.iter().map(|r| ["a", "b", "c"][usize::from(r.2)]).collect();
                append(&table, batch(ids, codes, sites), true).await;
            }
            let before = sorted_rows(&table).await;
            let builder = table.optimize();
            let builder = if zorder { builder.with_zorder(["patient_id", "loinc_code"], None).with_target_size(2_000) } else { builder };
            let _ = builder.run().await.unwrap();
            assert_eq!(sorted_rows(&table).await, before);
        });
    }
}

/// Compaction decodes small inputs whole on tasks ahead of the writer and streams large ones
/// in place: a bin that mixes both keeps every row, in input order.
#[tokio::test]
async fn compaction_of_small_and_large_files_keeps_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(dir.path().join("t").to_str().unwrap(), &HashMap::new()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("blob", DataType::Binary, false),
    ]));
    // Incompressible values: 10 rows of 1 MiB make a file over the 8 MiB whole-decode limit.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    };
    let sizes: [(usize, usize); 4] = [(3, 100), (10, 1 << 20), (5, 100), (4, 100)];
    let mut next_id = 0i64;
    for (rows, bytes) in sizes {
        let ids: Vec<i64> = (next_id..next_id + rows as i64).collect();
        next_id += rows as i64;
        let blobs: Vec<Vec<u8>> = (0..rows).map(|_| noise(bytes)).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(arrow::array::BinaryArray::from_iter_values(blobs)),
            ],
        )
        .unwrap();
        let _ = table
            .write()
            .execute(futures::stream::iter([Ok(b)]).boxed())
            .await
            .unwrap();
    }
    let snapshot = table.snapshot().await.unwrap();
    assert!(
        snapshot.files().iter().any(|a| a.size > 8 << 20),
        "one input must be over the whole-decode limit"
    );
    let report = table
        .optimize()
        .with_min_file_size(64 << 20)
        .with_target_size(256 << 20)
        .run()
        .await
        .unwrap();
    assert_eq!(report.files_removed, 4);
    assert_eq!(report.files_added, 1);
    // The bin's order of files, each file's rows in file order.
    let ids_of = |batches: Vec<RecordBatch>| -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    };
    let mut expected = Vec::new();
    for add in &report.bins[0].files {
        let scan = snapshot
            .clone()
            .scan()
            .with_columns(["id"])
            .build_for(std::slice::from_ref(add))
            .unwrap();
        expected.extend(ids_of(scan.collect().await.unwrap()));
    }
    let mut all = expected.clone();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..next_id).collect::<Vec<_>>(),
        "the bin holds every row"
    );
    let batches = table
        .snapshot()
        .await
        .unwrap()
        .scan()
        .with_columns(["id"])
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        ids_of(batches),
        expected,
        "every row, in the bin's file order"
    );
}
