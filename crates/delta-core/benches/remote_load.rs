//! Cold snapshot loads from a remote-like store: an in-memory store behind `FaultyStore`
//! with a fixed latency per request (30 ms by default), so wall time counts round trips.
//! The tables are addressed as `s3://bench/t/` (over the in-memory store), so the engine
//! treats the store as remote, as it does a real S3 bucket.
//!
//! `cargo bench -p delta-core --bench remote_load` prints, for tables with a checkpoint at
//! v10 and `n` commits after it (and for tables of `n` commits without any checkpoint), the
//! requests of one cold load by kind and the median wall time of five loads, then the
//! median wall time of a full scan of those tables (one small file per commit). Set
//! `MEDILAKE_BENCH_LATENCY_MS` for another latency. Figures are in BENCHMARKS.md
//! ("Object stores").

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::Table;
use delta_core::testing::{Fault, FaultyStore};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;

/// Commits after the checkpoint (or in all, without one).
const TAILS: [i64; 6] = [0, 5, 10, 20, 50, 100];
/// Loads timed per table.
const LOADS: usize = 5;

fn batch(v: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).expect("batch")
}

async fn append(table: &Table, v: i64) {
    let report = table
        .write()
        .with_property("delta.checkpointInterval", "100000")
        .execute(futures::stream::iter([Ok(batch(v))]).boxed())
        .await
        .expect("append");
    assert_eq!(report.version, Some(u64::try_from(v).expect("version")));
}

/// A table in `store` at `url`: `checkpoint` = a checkpoint at v10, then `tail` commits;
/// otherwise `tail + 1` commits (v0..=tail) and no checkpoint.
async fn build(store: Arc<dyn ObjectStore>, url: &str, checkpoint: bool, tail: i64) {
    let table = Table::with_store(store, url::Url::parse(url).expect("url")).expect("table");
    let last = if checkpoint { 10 + tail } else { tail };
    for v in 0..=last {
        append(&table, v).await;
        if checkpoint && v == 10 {
            let snapshot = table.snapshot().await.expect("snapshot");
            table.checkpoint(&snapshot).await.expect("checkpoint");
        }
    }
}

fn main() {
    let latency = Duration::from_millis(
        std::env::var("MEDILAKE_BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "cold snapshot load, {} ms per request (median of {LOADS})",
        latency.as_millis()
    );
    println!("| log | requests (get/list) | load ms | scan ms |");
    println!("|---|---|---|---|");
    runtime.block_on(async {
        for checkpoint in [true, false] {
            for tail in TAILS {
                let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
                let url = "s3://bench/t/";
                build(inner.clone(), url, checkpoint, tail).await;
                let mut times = Vec::with_capacity(LOADS);
                let mut scans = Vec::with_capacity(LOADS);
                let mut counts = None;
                for _ in 0..LOADS {
                    let faulty = Arc::new(
                        FaultyStore::new(inner.clone(), Fault::None).with_latency(latency),
                    );
                    let table =
                        Table::with_store(faulty.clone(), url::Url::parse(url).expect("url"))
                            .expect("table");
                    let started = Instant::now();
                    let snapshot = table.snapshot().await.expect("load");
                    times.push(started.elapsed());
                    assert_eq!(
                        snapshot.files().len(),
                        usize::try_from(if checkpoint { 11 + tail } else { tail + 1 })
                            .expect("count")
                    );
                    counts = Some(faulty.request_counts());
                    let started = Instant::now();
                    let batches = snapshot
                        .scan()
                        .build()
                        .expect("scan")
                        .collect()
                        .await
                        .expect("rows");
                    scans.push(started.elapsed());
                    assert_eq!(
                        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                        snapshot.files().len()
                    );
                }
                times.sort();
                scans.sort();
                let counts = counts.expect("at least one load");
                let log = if checkpoint {
                    format!("checkpoint at v10 + {tail} commits")
                } else {
                    format!("{} commits, no checkpoint", tail + 1)
                };
                println!(
                    "| {log} | {} ({}/{}) | {:.0} | {:.0} |",
                    counts.total(),
                    counts.gets,
                    counts.lists,
                    times[LOADS / 2].as_secs_f64() * 1000.0,
                    scans[LOADS / 2].as_secs_f64() * 1000.0
                );
            }
        }
    });
}
