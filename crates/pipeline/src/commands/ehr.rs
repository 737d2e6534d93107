//! `medilake generate` and `medilake run`: the EHR pipeline commands.
//!
//! `run` reads the clock once (the run's `_ingested_at` and `_batch_id`), shows progress on
//! stderr (indicatif bars on a terminal, plain lines otherwise) and prints a summary table on
//! stdout, or with `--json` one JSON object: `{"stages": [...], "tables": [{"table", "files",
//! "rowsIn", "rowsWritten", "corrupt", "version", "committed", "millis"}], "changed": bool}`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::{GenerateArgs, RunArgs, Stage};
use crate::output::Json;
use crate::pipeline::bronze::{self, BronzeOptions, Progress, ProgressFn, TableSummary};
use crate::pipeline::synth::{self, GenerateOptions};

/// `medilake generate`.
///
/// # Errors
/// I/O errors writing the output directory.
pub async fn generate<W: Write>(args: &GenerateArgs, out: &mut W) -> Result<()> {
    let options = GenerateOptions {
        patients: args.patients,
        seed: args.seed,
        parts: args.parts,
        max_encounters: args.max_encounters,
    };
    let dir = args.out.clone();
    let started = std::time::Instant::now();
    let manifest = tokio::task::spawn_blocking(move || synth::generate(&dir, &options))
        .await
        .context("the generator task failed")?
        .with_context(|| format!("cannot generate into {}", args.out.display()))?;
    if args.json {
        writeln!(out, "{}", manifest.json)?;
    } else {
        writeln!(
            out,
            "generated {} patients: {} lines in {} part files per entity under {} ({:.1} s); \
             injected defects in {}",
            args.patients,
            manifest.total_lines,
            args.parts,
            args.out.display(),
            started.elapsed().as_secs_f64(),
            args.out.join("manifest.json").display()
        )?;
    }
    Ok(())
}

/// `medilake run`.
///
/// # Errors
/// Stages that are not built yet (before anything runs), then any failure of a stage.
pub async fn run<W: Write>(args: &RunArgs, out: &mut W) -> Result<()> {
    let missing: Vec<&str> = args
        .stages
        .iter()
        .filter(|s| **s != Stage::Bronze)
        .map(|s| match s {
            Stage::Bronze => "bronze",
            Stage::Silver => "silver",
            Stage::Gold => "gold",
            Stage::Optimize => "optimize",
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "stage {} not built yet: only bronze is; run `medilake run --stages bronze`",
            missing.join(", ")
        );
    }
    if !args.data.is_dir() {
        bail!("the data directory {} does not exist", args.data.display());
    }
    // The one clock read of a run: provenance of every row it writes.
    let now = chrono::Utc::now();
    let batch_id = now.format("run-%Y%m%dT%H%M%S%.6fZ").to_string();
    let options = BronzeOptions::new(
        args.data.clone(),
        args.lake.clone(),
        now.timestamp_micros(),
        batch_id.clone(),
    );
    let reporter = Reporter::new(std::io::stderr().is_terminal());
    let progress: ProgressFn = {
        let reporter = reporter.clone();
        Arc::new(move |event| reporter.event(event))
    };
    let summaries = bronze::run(&options, &progress).await?;
    reporter.finish();
    print_summary(out, args.json, &batch_id, &summaries)
}

fn print_summary<W: Write>(
    out: &mut W,
    json: bool,
    batch_id: &str,
    summaries: &[TableSummary],
) -> Result<()> {
    let changed = summaries.iter().any(|s| s.committed);
    if json {
        let tables = summaries
            .iter()
            .map(|s| {
                Json::object([
                    ("table", Json::str(s.table.as_str())),
                    ("files", Json::from(s.files)),
                    ("rowsIn", Json::from(s.rows_in)),
                    ("rowsWritten", Json::from(s.rows_written)),
                    ("corrupt", Json::from(s.corrupt)),
                    ("version", Json::opt(s.version)),
                    ("committed", Json::Bool(s.committed)),
                    ("millis", Json::from(s.millis)),
                ])
            })
            .collect();
        let doc = Json::object([
            ("stages", Json::Array(vec![Json::str("bronze")])),
            ("batchId", Json::str(batch_id)),
            ("changed", Json::Bool(changed)),
            ("tables", Json::Array(tables)),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<26} {:>6} {:>10} {:>12} {:>8} {:>8} {:>9}",
        "table", "files", "rows in", "rows written", "corrupt", "version", "time"
    )?;
    for s in summaries {
        let version = match (s.version, s.committed) {
            (Some(v), true) => format!("{v}"),
            (Some(v), false) => format!("{v} (=)"),
            (None, _) => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<26} {:>6} {:>10} {:>12} {:>8} {:>8} {:>8.2}s",
            s.table,
            s.files,
            s.rows_in,
            s.rows_written,
            s.corrupt,
            version,
            s.millis as f64 / 1000.0
        )?;
    }
    if changed {
        let rows: u64 = summaries
            .iter()
            .filter(|s| !s.table.ends_with(bronze::CORRUPT_TABLE))
            .map(|s| s.rows_in)
            .sum();
        writeln!(out, "bronze: {rows} source lines ingested ({batch_id})")?;
    } else {
        writeln!(out, "bronze: no new source files; no table changed")?;
    }
    Ok(())
}

/// The bars of a terminal run, one per table.
type Bars = (MultiProgress, Arc<Mutex<HashMap<String, ProgressBar>>>);

/// Progress on stderr: a bar per table on a terminal, plain lines otherwise.
#[derive(Clone)]
struct Reporter {
    bars: Option<Bars>,
}

impl Reporter {
    fn new(terminal: bool) -> Self {
        Self {
            bars: terminal.then(|| (MultiProgress::new(), Arc::default())),
        }
    }

    fn event(&self, event: Progress) {
        match &self.bars {
            Some((multi, bars)) => {
                let Ok(mut bars) = bars.lock() else { return };
                match event {
                    Progress::Start {
                        table,
                        files,
                        bytes,
                    } => {
                        let bar = multi.add(ProgressBar::new(bytes));
                        if let Ok(style) = ProgressStyle::with_template(
                            "{prefix:<22} {bar:30} {bytes:>10}/{total_bytes:<10} {msg}",
                        ) {
                            bar.set_style(style);
                        }
                        bar.set_prefix(table.clone());
                        bar.set_message(format!("{files} new files"));
                        bars.insert(table, bar);
                    }
                    Progress::Read { table, bytes } => {
                        if let Some(bar) = bars.get(&table) {
                            bar.inc(bytes);
                        }
                    }
                    Progress::File { table, version, .. } => {
                        if let Some(bar) = bars.get(&table) {
                            bar.set_message(format!("version {version}"));
                        }
                    }
                    Progress::Done { table } => {
                        if let Some(bar) = bars.get(&table) {
                            bar.finish();
                        }
                    }
                }
            }
            None => {
                let line = match event {
                    Progress::Start { files: 0, .. } => return,
                    Progress::Start {
                        table,
                        files,
                        bytes,
                    } => {
                        format!("{table}: {files} new source files ({bytes} bytes)")
                    }
                    Progress::File {
                        table,
                        file,
                        rows,
                        corrupt,
                        version,
                    } => format!(
                        "{table}: {file} -> version {version} ({rows} rows, {corrupt} corrupt)"
                    ),
                    Progress::Read { .. } | Progress::Done { .. } => return,
                };
                let mut err = std::io::stderr().lock();
                writeln!(err, "{line}").ok();
            }
        }
    }

    fn finish(&self) {
        if let Some((multi, _)) = &self.bars {
            multi.clear().ok();
        }
    }
}
