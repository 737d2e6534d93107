//! Latency of small blind appends as a table grows (issue 3's benchmark).
//!
//! Creates a lab-results table with one row, then makes `--appends` (default 1,000)
//! appends of `--rows` rows (default 1) through `table.write().execute(...)`, each timed
//! from the call to its return: the snapshot load, the data file, the commit and any
//! checkpoint the commit triggers are all inside. A fresh `Table` handle is opened for every
//! append, so nothing is cached between appends except by the operating system, as when
//! appends come from separate processes or jobs.
//!
//! ```text
//! cargo bench -p pipeline --bench append_latency -- [--appends N] [--rows R]
//!     [--dir DIR] [--csv FILE] [--keep]
//! ```
//!
//! Prints the p50 of the first 100 and of the last 100 appends (and p90, max, mean overall);
//! `--csv FILE` writes `append,ms` for every append. The table lives in a temporary
//! directory (or `--dir DIR`, which must not exist yet) and is deleted unless `--keep`.
//! `tests/bench/append_latency.sh` runs this and the delta-rs counterpart
//! (`tests/python/bench_write_deltars.py appends`) side by side.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use delta_core::Table;
use futures::StreamExt as _;

struct Options {
    appends: usize,
    rows: usize,
    dir: Option<PathBuf>,
    csv: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Options {
    let mut options = Options {
        appends: 1000,
        rows: 1,
        dir: None,
        csv: None,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match arg.as_str() {
            "--appends" => options.appends = value("--appends").parse().expect("--appends N"),
            "--rows" => options.rows = value("--rows").parse().expect("--rows R"),
            "--dir" => options.dir = Some(PathBuf::from(value("--dir"))),
            "--csv" => options.csv = Some(PathBuf::from(value("--csv"))),
            "--keep" => options.keep = true,
            // `cargo bench` passes --bench to harness = false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        options.appends >= 1 && options.rows >= 1,
        "--appends and --rows must be >= 1"
    );
    options
}

fn lab_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("lab_result_id", DataType::Utf8, true),
        Field::new("encounter_id", DataType::Int64, true),
        Field::new("patient_id", DataType::Int64, true),
        Field::new("loinc_code", DataType::Utf8, true),
        Field::new("test_name", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("unit", DataType::Utf8, true),
        Field::new("reference_low", DataType::Float64, true),
        Field::new("reference_high", DataType::Float64, true),
        Field::new("result_date", DataType::Utf8, true),
    ]))
}

/// `rows` lab rows, the first numbered `first`; the same values as the delta-rs script.
fn lab_batch(schema: &SchemaRef, first: usize, rows: usize) -> RecordBatch {
    let ids: Vec<usize> = (first..first + rows).collect();
    let patient = |i: usize| 1_000_001 + i64::try_from(i % 50_000).unwrap_or(0);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("LR{i:010}")),
        )),
        Arc::new(Int64Array::from_iter_values(
            ids.iter().map(|&i| patient(i) * 1000 + 7),
        )),
        Arc::new(Int64Array::from_iter_values(
            ids.iter().map(|&i| patient(i)),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "2345-7"))),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|_| "Glucose SerPl-mCnc"),
        )),
        Arc::new(Float64Array::from_iter_values(
            ids.iter().map(|&i| 70.0 + (i % 60) as f64 / 2.0),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "mg/dL"))),
        Arc::new(Float64Array::from_iter_values(ids.iter().map(|_| 70.0))),
        Arc::new(Float64Array::from_iter_values(ids.iter().map(|_| 99.0))),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|_| "2024-01-01"),
        )),
    ];
    RecordBatch::try_new(schema.clone(), columns).expect("lab batch")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn append(location: &str, batch: RecordBatch) -> delta_core::Result<Option<u64>> {
    let table = Table::open(location, &HashMap::new())?;
    let stream = futures::stream::iter(vec![Ok(batch)]).boxed();
    Ok(table.write().execute(stream).await?.version)
}

fn main() {
    let options = parse_args();
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = options
        .dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("appends"));
    assert!(!dir.exists(), "{} exists already", dir.display());
    std::fs::create_dir_all(&dir).expect("table directory");
    let location = dir.to_str().expect("UTF-8 path").to_owned();
    let schema = lab_schema();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let started = Instant::now();
    let created = runtime
        .block_on(append(&location, lab_batch(&schema, 0, options.rows)))
        .expect("create");
    let create_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(created, Some(0));

    let mut latencies = Vec::with_capacity(options.appends);
    for i in 0..options.appends {
        let batch = lab_batch(&schema, (i + 1) * options.rows, options.rows);
        let started = Instant::now();
        let version = runtime.block_on(append(&location, batch)).expect("append");
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(version, Some(i as u64 + 1));
    }

    if let Some(csv) = &options.csv {
        let mut f = std::fs::File::create(csv).expect("csv file");
        writeln!(f, "append,ms").expect("csv");
        for (i, ms) in latencies.iter().enumerate() {
            writeln!(f, "{},{ms:.3}", i + 1).expect("csv");
        }
    }
    let window = 100.min(latencies.len());
    let first = median(&latencies[..window]);
    let last = median(&latencies[latencies.len() - window..]);
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    println!("engine medilake");
    println!("appends {}", options.appends);
    println!("rows_per_append {}", options.rows);
    println!("create_ms {create_ms:.2}");
    println!("p50_first100_ms {first:.2}");
    println!("p50_last100_ms {last:.2}");
    println!("p50_ms {:.2}", percentile(&sorted, 50.0));
    println!("p90_ms {:.2}", percentile(&sorted, 90.0));
    println!("p99_ms {:.2}", percentile(&sorted, 99.0));
    println!("max_ms {:.2}", sorted.last().copied().unwrap_or(f64::NAN));
    println!("mean_ms {mean:.2}");
    println!("total_s {:.2}", latencies.iter().sum::<f64>() / 1e3);
    if options.keep || options.dir.is_some() {
        println!("table {location}");
    }
    if options.keep && options.dir.is_none() {
        // Leave the temporary directory (and the table in it) behind.
        let _kept = tmp.keep();
    }
}
