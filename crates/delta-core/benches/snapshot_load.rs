//! Read-path benchmarks: snapshot load from a long JSON log, with and without a checkpoint,
//! and the overhead of a full scan over reading the same parquet files directly.
//!
//! `cargo bench -p delta-core --bench snapshot_load` (tables are generated on first use into
//! `target/bench-tables/`; see `benches/common/mod.rs`). Figures are in BENCHMARKS.md.
//! `MEDILAKE_BENCH_PAIRS=N` also times the two scans alternately for N rounds first and
//! prints the median ratio, which is steadier than two criterion figures on a busy machine;
//! `MEDILAKE_BENCH_CPU=N` loads each log table N times first and prints the CPU time per load.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// Footer bytes fetched with the first read: the same hint delta-core's scan uses.
const FOOTER_HINT: usize = 64 * 1024;

/// The plainest `AsyncFileReader` over an object store (the pattern of parquet's
/// `examples/object_store.rs`): the baseline does the same I/O as delta-core's scan, so the
/// comparison isolates what delta-core adds (planning, type conforming, batch assembly).
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    location: StorePath,
    size: u64,
}

fn external(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.location, range)
                .await
                .map_err(external)
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        Box::pin(async move {
            self.store
                .get_ranges(&self.location, &ranges)
                .await
                .map_err(external)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(FOOTER_HINT))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

fn snapshot_load(c: &mut Criterion) {
    let rt = common::runtime();
    let log = common::log_1000();
    let log_cp = common::log_1000_cp();
    let expected = common::log_1000_live_files();

    // Check once that both tables load to the state the fixture describes.
    for path in [&log, &log_cp] {
        let snapshot = rt
            .block_on(common::open(path).snapshot())
            .expect("load bench table");
        assert_eq!(snapshot.version(), common::LOG_COMMITS - 1);
        assert_eq!(snapshot.files().len(), expected, "{}", path.display());
    }

    if let Some(loads) = std::env::var("MEDILAKE_BENCH_CPU")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        for (name, path) in [("log_1000", &log), ("log_1000_cp", &log_cp)] {
            load_cpu(&rt, name, path, loads.max(1));
        }
    }

    let mut group = c.benchmark_group("snapshot_load");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for (name, path) in [("log_1000", &log), ("log_1000_cp", &log_cp)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let table = common::open(path);
                let snapshot = rt.block_on(table.snapshot()).expect("load");
                black_box(snapshot.files().len())
            });
        });
    }
    group.finish();
}

/// Load `path` `loads` times and print the median wall time and the mean CPU time (all
/// threads) per load: CPU time is far less moved than wall time by other work on the machine.
fn load_cpu(rt: &tokio::runtime::Runtime, name: &str, path: &std::path::Path, loads: usize) {
    let mut wall = Vec::with_capacity(loads);
    let cpu_before = common::process_cpu_ms().unwrap_or(f64::NAN);
    for _ in 0..loads {
        let started = std::time::Instant::now();
        let snapshot = rt.block_on(common::open(path).snapshot()).expect("load");
        black_box(snapshot.files().len());
        drop(snapshot);
        wall.push(started.elapsed().as_secs_f64() * 1e3);
    }
    #[allow(clippy::cast_precision_loss, reason = "a count of loads")]
    let cpu = (common::process_cpu_ms().unwrap_or(f64::NAN) - cpu_before) / loads as f64;
    wall.sort_by(f64::total_cmp);
    println!(
        "snapshot_load/{name} over {loads} loads: wall median {:.2} ms, min {:.2} ms; cpu mean {cpu:.2} ms",
        wall[wall.len() / 2],
        wall[0]
    );
}

/// Count the rows of a full scan through delta-core.
async fn scan_delta_core(snapshot: &delta_core::Snapshot) -> usize {
    let scan = snapshot
        .scan()
        .with_batch_rows(common::SCAN_BATCH_ROWS)
        .build()
        .expect("plan scan");
    let mut stream = scan.execute();
    let mut rows = 0;
    while let Some(batch) = stream.try_next().await.expect("scan batch") {
        rows += black_box(batch).num_rows();
    }
    rows
}

/// Count the rows of the same files read with the parquet crate's async reader, one file
/// at a time, all columns, same batch size, same store.
async fn scan_parquet(store: &Arc<dyn ObjectStore>, files: &[(StorePath, u64)]) -> usize {
    let mut rows = 0;
    for (path, size) in files {
        let reader = StoreReader {
            store: store.clone(),
            location: path.clone(),
            size: *size,
        };
        let mut stream = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .expect("parquet metadata")
            .with_batch_size(common::SCAN_BATCH_ROWS)
            .build()
            .expect("parquet stream");
        while let Some(batch) = stream.try_next().await.expect("parquet batch") {
            rows += black_box(batch).num_rows();
        }
    }
    rows
}

fn scan_overhead(c: &mut Criterion) {
    let rt = common::runtime();
    let path = common::scan_2m();
    let table = common::open(&path);
    let snapshot = rt.block_on(table.snapshot()).expect("load scan table");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let root = StorePath::from_filesystem_path(&path).expect("table root as a store path");
    let mut files: Vec<(StorePath, u64)> = snapshot
        .files()
        .iter()
        .map(|add| {
            let size = u64::try_from(add.size).expect("non-negative size");
            (root.clone().join(add.path.as_str()), size)
        })
        .collect();
    files.sort();
    let total = usize::try_from(common::SCAN_FILES * common::SCAN_ROWS_PER_FILE).expect("fits");
    assert_eq!(rt.block_on(scan_delta_core(&snapshot)), total);
    assert_eq!(rt.block_on(scan_parquet(&store, &files)), total);

    if let Some(pairs) = std::env::var("MEDILAKE_BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        paired_scan(&rt, pairs.max(1), &snapshot, &store, &files);
    }

    let mut group = c.benchmark_group("scan");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(u64::try_from(total).expect("fits")));
    group.bench_function(
        BenchmarkId::new("full_vs_parquet", "delta_core_scan"),
        |b| {
            b.iter(|| rt.block_on(scan_delta_core(&snapshot)));
        },
    );
    group.bench_function(
        BenchmarkId::new("full_vs_parquet", "parquet_async_reader"),
        |b| {
            b.iter(|| rt.block_on(scan_parquet(&store, &files)));
        },
    );
    group.finish();
}

/// Time the two scans alternately (`MEDILAKE_BENCH_PAIRS` rounds) and print the medians and
/// the median of the per-round ratios: on a shared machine, the load others put on it drifts
/// between criterion's two measurement windows, but hardly within one round.
fn paired_scan(
    rt: &tokio::runtime::Runtime,
    pairs: usize,
    snapshot: &delta_core::Snapshot,
    store: &Arc<dyn ObjectStore>,
    files: &[(StorePath, u64)],
) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut ours, mut raw, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs {
        let started = std::time::Instant::now();
        black_box(rt.block_on(scan_delta_core(snapshot)));
        let a = started.elapsed().as_secs_f64() * 1e3;
        let started = std::time::Instant::now();
        black_box(rt.block_on(scan_parquet(store, files)));
        let b = started.elapsed().as_secs_f64() * 1e3;
        ours.push(a);
        raw.push(b);
        ratios.push(a / b);
    }
    println!(
        "scan/full_vs_parquet paired over {pairs} rounds: delta_core_scan median {:.1} ms, \
         parquet_async_reader median {:.1} ms, ratio median {:.3}",
        median(ours),
        median(raw),
        median(ratios)
    );
}

criterion_group!(benches, snapshot_load, scan_overhead);
criterion_main!(benches);
