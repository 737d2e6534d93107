//! The change data feed against the table itself, property-tested.
//!
//! Random sequences of appends, DELETEs, UPDATEs, MERGEs and OPTIMIZEs run on a table with
//! the change data feed on (with or without deletion vectors, partitioned or not). For every
//! range of versions `[a, b]` after the feed was turned on, the change rows turn the rows of
//! version `a - 1` into the rows of version `b`:
//! `rows(a-1) - delete - update_preimage + insert + update_postimage = rows(b)` (multisets),
//! and each `update_preimage` has its `update_postimage` in the same commit.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::expression::parse;
use delta_core::{ChangeBound, Table};
use futures::StreamExt;
use futures::stream::BoxStream;
use proptest::prelude::*;

/// `(id, grp, v)`.
type Row = (i64, Option<String>, i64);

fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("grp", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn stream(rows: &[Row]) -> BoxStream<'static, delta_core::Result<RecordBatch>> {
    futures::stream::iter([Ok(batch(rows))]).boxed()
}

/// Rows with their change type and commit version (when the batch has them).
fn rows_of(batches: &[RecordBatch]) -> Vec<(Row, Option<String>, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let grp = b.column_by_name("grp").unwrap().as_string::<i32>();
        let v = b.column_by_name("v").unwrap().as_primitive::<Int64Type>();
        let kind = b
            .column_by_name("_change_type")
            .map(|c| c.as_string::<i32>().clone());
        let version = b
            .column_by_name("_commit_version")
            .map(|c| c.as_primitive::<Int64Type>().clone());
        for i in 0..b.num_rows() {
            out.push((
                (
                    id.value(i),
                    grp.is_valid(i).then(|| grp.value(i).to_owned()),
                    v.value(i),
                ),
                kind.as_ref().map(|k| k.value(i).to_owned()),
                version.as_ref().map_or(-1, |v| v.value(i)),
            ));
        }
    }
    out
}

async fn rows_at(table: &Table, version: u64) -> Vec<Row> {
    let snapshot = table.snapshot_at(version).await.unwrap();
    let batches = snapshot
        .scan()
        .with_columns(["id", "grp", "v"])
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows: Vec<Row> = rows_of(&batches).into_iter().map(|(r, _, _)| r).collect();
    rows.sort();
    rows
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<Row>),
    /// DELETE WHERE v % m = r.
    Delete(i64, i64),
    /// UPDATE SET v = v + 100 WHERE id < k.
    Update(i64),
    /// MERGE an upsert of these rows by id (plus a delete of matched rows with v odd).
    Merge(Vec<Row>, bool),
    Optimize,
}

fn row() -> impl Strategy<Value = Row> {
    (
        0i64..30,
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        0i64..50,
    )
        .prop_map(|(id, g, v)| (id, g.map(str::to_owned), v))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(row(), 1..6).prop_map(Op::Append),
        (2i64..5, 0i64..2).prop_map(|(m, r)| Op::Delete(m, r)),
        (0i64..30).prop_map(Op::Update),
        (prop::collection::vec(row(), 1..6), any::<bool>()).prop_map(|(r, d)| Op::Merge(r, d)),
        Just(Op::Optimize),
    ]
}

async fn apply(table: &Table, op: &Op) {
    match op {
        Op::Append(rows) => drop(table.write().execute(stream(rows)).await.unwrap()),
        Op::Delete(m, r) => {
            let p = parse(&format!("v % {m} = {r}")).unwrap();
            drop(table.delete(Some(p)).await.unwrap());
        }
        Op::Update(k) => {
            let p = parse(&format!("id < {k}")).unwrap();
            let set = vec![("v".to_owned(), parse("v + 100").unwrap())];
            drop(table.update(&set, Some(p)).await.unwrap());
        }
        Op::Merge(rows, delete_odd) => {
            // Unique source keys: a target row may match at most one source row.
            let mut unique: Vec<Row> = Vec::new();
            for r in rows {
                if !unique.iter().any(|u| u.0 == r.0) {
                    unique.push(r.clone());
                }
            }
            let mut merge = table.merge(stream(&unique), parse("t.id = s.id").unwrap());
            if *delete_odd {
                merge = merge.when_matched_delete(Some(parse("t.v % 2 = 1").unwrap()));
            }
            let result = merge
                .when_matched_update_all(None)
                .when_not_matched_insert_all(None)
                .execute()
                .await;
            // Duplicate target keys may make a target row ambiguous only if the source had
            // duplicates; it has none, so the merge must succeed.
            drop(result.unwrap());
        }
        Op::Optimize => drop(table.optimize().run().await.unwrap()),
    }
}

async fn check(
    partitioned: bool,
    deletion_vectors: bool,
    first: Vec<Row>,
    ops: Vec<Op>,
    range: (usize, usize),
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(dir.path().join("t").to_str().unwrap(), &HashMap::new()).unwrap();
    let mut create = table
        .write()
        .with_property("delta.enableChangeDataFeed", "true");
    if deletion_vectors {
        create = create.with_property("delta.enableDeletionVectors", "true");
    }
    if partitioned {
        create = create.with_partition_columns(["grp"]);
    }
    drop(create.execute(stream(&first)).await.unwrap());
    for op in &ops {
        apply(&table, op).await;
    }
    let latest = table.snapshot().await.unwrap().version();
    // A range [a, b] with 1 <= a <= b <= latest (version 0 created the table).
    if latest == 0 {
        return Ok(());
    }
    let a = 1 + (range.0 as u64) % latest;
    let b = a + (range.1 as u64) % (latest - a + 1);
    let scan = table
        .changes(ChangeBound::Version(a), Some(ChangeBound::Version(b)))
        .await
        .unwrap();
    let changes = rows_of(&scan.collect().await.unwrap());
    let mut rows = rows_at(&table, a - 1).await;
    // Commit by commit: a row may be inserted by one commit and deleted by a later one.
    for version in a..=b {
        let version = i64::try_from(version).unwrap();
        let of = |kind: &'static str| {
            changes
                .iter()
                .filter(move |(_, k, v)| k.as_deref() == Some(kind) && *v == version)
                .map(|(r, _, _)| r.clone())
        };
        for kind in ["delete", "update_preimage"] {
            for row in of(kind) {
                let at = rows.iter().position(|r| *r == row);
                prop_assert!(
                    at.is_some(),
                    "a {} row of v{} is not in the table before",
                    kind,
                    version
                );
                rows.remove(at.unwrap_or_default());
            }
        }
        for kind in ["insert", "update_postimage"] {
            rows.extend(of(kind));
        }
        let count = |kind: &'static str| of(kind).count();
        prop_assert_eq!(count("update_preimage"), count("update_postimage"));
    }
    prop_assert!(
        changes
            .iter()
            .all(|(_, _, v)| (i64::try_from(a).unwrap()..=i64::try_from(b).unwrap()).contains(v)),
        "a change row outside v{}..v{}",
        a,
        b
    );
    rows.sort();
    prop_assert_eq!(rows, rows_at(&table, b).await, "v{}..v{}", a, b);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn change_rows_turn_one_version_into_another(
        partitioned in any::<bool>(),
        deletion_vectors in any::<bool>(),
        first in prop::collection::vec(row(), 1..8),
        ops in prop::collection::vec(op(), 1..6),
        range in (any::<usize>(), any::<usize>()),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check(partitioned, deletion_vectors, first, ops, range))?;
    }
}
