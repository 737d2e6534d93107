//! Cold snapshot load of `files_1m`: a checkpoint of 1,000,000 files followed by 10,000
//! single-file JSON commits. Prints the load time and the process's peak resident memory.
//!
//! `cargo bench -p delta-core --bench snapshot_1m`. The first run generates the table
//! (several minutes); the measurement then runs in a fresh child process so that the peak
//! memory (`VmHWM`) is the load's, not the generator's. Output lines are `key value`:
//!
//! - `load_ms`: the first load in the process (nothing cached in-process; the OS page cache
//!   may hold the files); `load_cpu_ms`: the CPU time (all threads) it used;
//! - `peak_rss_mib`: `VmHWM` right after that load, `rss_before_mib`: `VmRSS` before it;
//! - `warm_load_ms_min` / `warm_load_ms_median`: further loads in the same process
//!   (`MEDILAKE_BENCH_REPEAT`, default 5);
//! - `checkpoint_only_ms_min`: loads of version 0 (the checkpoint alone), to split the time
//!   between the checkpoint and the 10,000 commits.

mod common;

use std::time::{Duration, Instant};

const CHILD_ENV: &str = "MEDILAKE_BENCH_1M_CHILD";

/// A `kB` field of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn min_median(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    (samples[0], median)
}

fn measure() {
    let path = common::tables_dir().join("files_1m");
    let repeat: usize = std::env::var("MEDILAKE_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let rt = common::runtime();
    let before = status_mib("VmRSS:").unwrap_or(f64::NAN);

    let cpu_before = common::process_cpu_ms().unwrap_or(f64::NAN);
    let started = Instant::now();
    let table = common::open(&path);
    let snapshot = rt.block_on(table.snapshot()).expect("load files_1m");
    let cold = started.elapsed();
    let cpu = common::process_cpu_ms().unwrap_or(f64::NAN) - cpu_before;
    let peak = status_mib("VmHWM:").unwrap_or(f64::NAN);
    let files = snapshot.files().len();
    let version = snapshot.version();
    assert_eq!(files, common::files_1m_live_files());
    assert_eq!(version, common::MANY_FILES_TAIL);
    drop(snapshot);

    println!("table {}", path.display());
    println!("version {version}");
    println!("files {files}");
    println!("load_ms {:.1}", ms(cold));
    println!("load_cpu_ms {cpu:.0}");
    println!("rss_before_mib {before:.1}");
    println!("peak_rss_mib {peak:.1}");

    let mut warm = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        let snapshot = rt.block_on(common::open(&path).snapshot()).expect("load");
        warm.push(ms(started.elapsed()));
        drop(snapshot);
    }
    let (min, median) = min_median(warm);
    println!("warm_load_ms_min {min:.1}");
    println!("warm_load_ms_median {median:.1}");

    let mut checkpoint_only = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        let snapshot = rt
            .block_on(common::open(&path).snapshot_at(0))
            .expect("load v0");
        checkpoint_only.push(ms(started.elapsed()));
        drop(snapshot);
    }
    let (min, _) = min_median(checkpoint_only);
    println!("checkpoint_only_ms_min {min:.1}");
}

/// The name a benchmark filter (`cargo bench -- FILTER`) is matched against.
const NAME: &str = "snapshot_1m/files_1m";

fn main() {
    // `cargo bench -- snapshot_load/...` passes the filter to every bench binary: honour it
    // here too, so that filtering another benchmark does not generate or load this table.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return;
    }
    if std::env::var_os(CHILD_ENV).is_some() {
        measure();
        return;
    }
    // Generate the table here if needed, then measure in a fresh process.
    let _ = common::files_1m();
    let exe = std::env::current_exe().expect("own path");
    let status = std::process::Command::new(exe)
        .env(CHILD_ENV, "1")
        .status()
        .expect("run the measuring child");
    std::process::exit(status.code().unwrap_or(1));
}
