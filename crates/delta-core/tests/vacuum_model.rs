//! Model-based VACUUM: random histories of appends, deletes, compactions and vacuums under a
//! fake clock. After every VACUUM, every version committed inside the retention window still
//! reads back exactly the rows the model recorded for it, and the latest version always does.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions: a panic is how a test fails"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::Table;
use delta_core::clock::ManualClock;
use delta_core::expression::parse;
use futures::StreamExt;
use object_store::memory::InMemory;
use proptest::prelude::*;

const HOUR_MS: i64 = 3_600_000;

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<i64>),
    DeleteBelow(i64),
    Optimize,
    Advance(i64),
    Vacuum(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(0i64..100, 1..8).prop_map(Op::Append),
        2 => (0i64..100).prop_map(Op::DeleteBelow),
        1 => Just(Op::Optimize),
        3 => (1i64..200).prop_map(Op::Advance),
        2 => (0i64..300).prop_map(Op::Vacuum),
    ]
}

async fn rows_at(table: &Table, version: u64) -> Vec<i64> {
    let snapshot = table.snapshot_at(version).await.unwrap();
    let batches = snapshot.scan().build().unwrap().collect().await.unwrap();
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    out.sort_unstable();
    out
}

async fn run(ops: Vec<Op>) {
    let clock = Arc::new(ManualClock::new(
        chrono::Utc::now().timestamp_millis(),
        1,
        3,
    ));
    let store = Arc::new(InMemory::new());
    let table = Table::with_store(store, url::Url::parse("memory:///t/").unwrap())
        .unwrap()
        .with_clock(clock.clone());
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let first =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1000]))]).unwrap();
    // The clock jumps weeks ahead: keep the log (this test is about data files, and log
    // cleanup compares file times, which a fake clock does not move).
    let _ = table
        .write()
        .with_property("delta.logRetentionDuration", "interval 3650 days")
        .execute(futures::stream::iter(vec![Ok(first)]).boxed())
        .await
        .unwrap();
    // version -> (commit time, rows)
    let mut history: BTreeMap<u64, (i64, Vec<i64>)> = BTreeMap::new();
    let mut current = vec![1000];
    history.insert(0, (clock.now_ms_peek(), current.clone()));
    // Files older than the latest cut-off of any VACUUM so far may be gone.
    let mut max_cutoff = i64::MIN;
    for op in ops {
        // A version is stamped with the start of the operation that made it: every
        // timestamp that operation writes (commit, tombstones) is at or after it.
        let started = clock.now_ms_peek();
        match op {
            Op::Append(ids) => {
                let b = RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from(ids.clone()))],
                )
                .unwrap();
                let r = table
                    .write()
                    .execute(futures::stream::iter(vec![Ok(b)]).boxed())
                    .await
                    .unwrap();
                current.extend(ids);
                current.sort_unstable();
                history.insert(r.version.unwrap(), (started, current.clone()));
            }
            Op::DeleteBelow(k) => {
                let r = table
                    .delete(Some(parse(&format!("id < {k}")).unwrap()))
                    .await
                    .unwrap();
                current.retain(|v| *v >= k);
                if let Some(v) = r.version {
                    history.insert(v, (started, current.clone()));
                }
            }
            Op::Optimize => {
                let r = table.optimize().run().await.unwrap();
                for v in r.versions {
                    history.insert(v, (started, current.clone()));
                }
            }
            Op::Advance(hours) => clock.advance(hours * HOUR_MS),
            Op::Vacuum(hours) => {
                let retention = Duration::from_millis(u64::try_from(hours * HOUR_MS).unwrap());
                let now = clock.now_ms_peek();
                let _ = table
                    .vacuum()
                    .with_retention(retention)
                    .with_force(true)
                    .run()
                    .await
                    .unwrap();
                max_cutoff = max_cutoff.max(now - hours * HOUR_MS);
                let cutoff = max_cutoff;
                let latest = table.snapshot().await.unwrap().version();
                // Every version that was current at some point inside the window reads back.
                let versions: Vec<u64> = history.keys().copied().collect();
                for (i, v) in versions.iter().enumerate() {
                    let superseded_at =
                        versions.get(i + 1).map_or(i64::MAX, |next| history[next].0);
                    if superseded_at >= cutoff {
                        assert_eq!(
                            rows_at(&table, *v).await,
                            history[v].1,
                            "version {v} after vacuum of {hours} h"
                        );
                    }
                }
                assert_eq!(rows_at(&table, latest).await, current);
            }
        }
    }
}

trait Peek {
    fn now_ms_peek(&self) -> i64;
}

impl Peek for ManualClock {
    fn now_ms_peek(&self) -> i64 {
        use delta_core::clock::Clock;
        self.now_ms()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn vacuum_never_deletes_what_a_version_in_the_window_reads(ops in proptest::collection::vec(op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
