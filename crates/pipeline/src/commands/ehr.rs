//! `medilake generate` and `medilake run`: the EHR pipeline commands.
//!
//! `run` reads the clock once (the run's `_ingested_at` and `_batch_id`), shows progress on
//! stderr (indicatif bars on a terminal, plain lines otherwise) and prints a summary table on
//! stdout per stage, or with `--json` one JSON object with a key per stage run: `"bronze"`
//! (`{"stages", "batchId", "changed", "tables": [{"table", "files", "rowsIn", "rowsWritten",
//! "corrupt", "version", "committed", "millis"}]}`), `"silver"` (per table: rows in, inserted,
//! updated, duplicates, quarantined, dropped, version, `reconciles`), `"gold"` (rows,
//! version) and `"optimize"` (files removed and added per table).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::{GenerateArgs, RunArgs, Stage};
use crate::lake::Lake;
use crate::output::Json;
use crate::pipeline::bronze::{self, BronzeOptions, Progress, ProgressFn, TableSummary};
use crate::pipeline::synth::{self, GenerateOptions};
use crate::progress::StepProgress;

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
/// Any failure of a stage (the stages before it stay committed; a rerun resumes).
pub async fn run<W: Write>(
    args: &RunArgs,
    storage_options: &HashMap<String, String>,
    out: &mut W,
) -> Result<()> {
    let wants = |stage: Stage| args.stages.contains(&stage);
    let data = Lake::open(&args.data, storage_options)?;
    if wants(Stage::Bronze) {
        let (objects, dirs) = data.list_dir("").await?;
        if objects.is_empty() && dirs.is_empty() {
            bail!(
                "the data directory {} does not exist or is empty",
                data.url()
            );
        }
    }
    let lake = Lake::open(&args.lake, storage_options)?;
    // The one clock read of a run: provenance of every row it writes.
    let now = chrono::Utc::now();
    let as_of = args.as_of.unwrap_or_else(|| now.date_naive());
    let batch_id = now.format("run-%Y%m%dT%H%M%S%.6fZ").to_string();
    let mut stages = Vec::new();
    if wants(Stage::Bronze) {
        let options = BronzeOptions::new(
            data.clone(),
            lake.clone(),
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
        stages.push(StageOutcome::Bronze(summaries));
    }
    let mut changed_tables: Vec<String> = Vec::new();
    if wants(Stage::Silver) {
        let started = std::time::Instant::now();
        eprintln!("silver: conforming the bronze versions each silver table has not seen");
        let reporter = Reporter::new(std::io::stderr().is_terminal());
        let progress = {
            let reporter = reporter.clone();
            move |event| reporter.step(event)
        };
        let summaries = crate::silver::stage::run_with(
            &lake,
            as_of,
            crate::silver::spill::BUCKET_ROWS,
            &progress,
        )
        .await?;
        reporter.finish();
        for s in &summaries {
            if s.version.is_some() {
                changed_tables.push(s.table.clone());
            }
        }
        stages.push(StageOutcome::Silver(summaries, started.elapsed()));
    }
    if wants(Stage::Gold) {
        let started = std::time::Instant::now();
        eprintln!("gold: recomputing from changed silver tables");
        let reporter = Reporter::new(std::io::stderr().is_terminal());
        let progress = {
            let reporter = reporter.clone();
            move |event| reporter.step(event)
        };
        let summaries = crate::gold::run_with(&lake, as_of, &progress).await?;
        reporter.finish();
        for s in &summaries {
            if s.version.is_some() {
                changed_tables.push(s.table.clone());
            }
        }
        stages.push(StageOutcome::Gold(summaries, started.elapsed()));
    }
    if wants(Stage::Optimize) {
        let started = std::time::Instant::now();
        eprintln!("optimize: compacting, clustering and checkpointing the tables this run changed");
        let mut done = Vec::new();
        for name in &changed_tables {
            done.push(crate::pipeline::optimize::table(&lake, name).await?);
        }
        stages.push(StageOutcome::Optimize(done, started.elapsed()));
    }
    if crate::catalog::Catalog::ensure(&lake).await? {
        eprintln!(
            "catalog: wrote {} (descriptions, owners, PHI tags; see `medilake catalog list`)",
            lake.display(crate::catalog::CATALOG_FILE)
        );
    }
    print_stages(out, args.json, &batch_id, &stages)
}

#[allow(clippy::cast_precision_loss, reason = "a duration for display")]
fn seconds(millis: u64) -> f64 {
    millis as f64 / 1000.0
}

/// What one stage did.
enum StageOutcome {
    Bronze(Vec<TableSummary>),
    Silver(
        Vec<crate::silver::stage::SilverSummary>,
        std::time::Duration,
    ),
    Gold(Vec<crate::gold::GoldSummary>, std::time::Duration),
    Optimize(Vec<(String, u64, u64)>, std::time::Duration),
}

fn print_stages<W: Write>(
    out: &mut W,
    json: bool,
    batch_id: &str,
    stages: &[StageOutcome],
) -> Result<()> {
    if json {
        let mut names = Vec::new();
        let mut doc = Vec::new();
        for stage in stages {
            match stage {
                StageOutcome::Bronze(s) => {
                    names.push(Json::str("bronze"));
                    let mut buf = Vec::new();
                    print_summary(&mut buf, true, batch_id, s)?;
                    let parsed: serde_json::Value = serde_json::from_slice(&buf)?;
                    doc.push(("bronze", parsed));
                }
                StageOutcome::Silver(s, _) => {
                    names.push(Json::str("silver"));
                    let tables: Vec<serde_json::Value> = s
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "table": t.table, "bronzeVersion": t.bronze_version,
                                "rowsIn": t.rows_in, "inserted": t.inserted, "updated": t.updated,
                                "duplicates": t.duplicates, "quarantined": t.quarantined,
                                "dropped": t.dropped, "version": t.version,
                                "files": t.files, "millis": t.millis,
                                "reconciles": t.reconciles(),
                            })
                        })
                        .collect();
                    doc.push(("silver", serde_json::Value::Array(tables)));
                }
                StageOutcome::Gold(s, _) => {
                    names.push(Json::str("gold"));
                    let tables: Vec<serde_json::Value> = s
                        .iter()
                        .map(|t| serde_json::json!({"table": t.table, "rows": t.rows, "version": t.version, "files": t.files, "millis": t.millis}))
                        .collect();
                    doc.push(("gold", serde_json::Value::Array(tables)));
                }
                StageOutcome::Optimize(s, _) => {
                    names.push(Json::str("optimize"));
                    let tables: Vec<serde_json::Value> = s
                        .iter()
                        .map(|(t, r, a)| serde_json::json!({"table": t, "filesRemoved": r, "filesAdded": a}))
                        .collect();
                    doc.push(("optimize", serde_json::Value::Array(tables)));
                }
            }
        }
        let mut object = serde_json::Map::new();
        object.insert("batchId".into(), batch_id.into());
        for (k, v) in doc {
            object.insert(k.into(), v);
        }
        writeln!(out, "{}", serde_json::Value::Object(object))?;
        return Ok(());
    }
    for stage in stages {
        match stage {
            StageOutcome::Bronze(s) => print_summary(out, false, batch_id, s)?,
            StageOutcome::Silver(s, took) => {
                writeln!(
                    out,
                    "\n{:<26} {:>10} {:>9} {:>8} {:>10} {:>11} {:>7} {:>8} {:>6} {:>8}",
                    "table",
                    "rows in",
                    "inserted",
                    "updated",
                    "duplicates",
                    "quarantined",
                    "dropped",
                    "version",
                    "files",
                    "time"
                )?;
                for t in s {
                    writeln!(
                        out,
                        "{:<26} {:>10} {:>9} {:>8} {:>10} {:>11} {:>7} {:>8} {:>6} {:>7.2}s",
                        t.table,
                        t.rows_in,
                        t.inserted,
                        t.updated,
                        t.duplicates,
                        t.quarantined,
                        t.dropped,
                        t.version.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                        t.files,
                        seconds(t.millis)
                    )?;
                }
                let balanced = s
                    .iter()
                    .all(crate::silver::stage::SilverSummary::reconciles);
                writeln!(
                    out,
                    "silver ({:.2}s): rows in = inserted + updated + duplicates + quarantined + dropped {} for every table",
                    took.as_secs_f64(),
                    if balanced { "holds" } else { "DOES NOT HOLD" }
                )?;
            }
            StageOutcome::Gold(s, took) => {
                writeln!(out)?;
                for t in s {
                    let v = t
                        .version
                        .map_or_else(|| "unchanged".to_owned(), |v| format!("version {v}"));
                    writeln!(
                        out,
                        "{:<36} {:>8} rows  {:>3} files  {:>6.2}s  {v}",
                        t.table,
                        t.rows,
                        t.files,
                        seconds(t.millis)
                    )?;
                }
                writeln!(out, "gold ({:.2}s)", took.as_secs_f64())?;
            }
            StageOutcome::Optimize(s, took) => {
                writeln!(out)?;
                if s.is_empty() {
                    writeln!(
                        out,
                        "optimize ({:.2}s): no table changed; nothing to do",
                        took.as_secs_f64()
                    )?;
                }
                for (t, removed, added) in s {
                    writeln!(
                        out,
                        "optimize {t}: {removed} files rewritten into {added}; vacuumed; checkpointed"
                    )?;
                }
            }
        }
    }
    Ok(())
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

    /// A silver or gold step: a bar of rows on a terminal, plain lines otherwise.
    fn step(&self, event: StepProgress) {
        match &self.bars {
            Some((multi, bars)) => {
                let Ok(mut bars) = bars.lock() else { return };
                match event {
                    StepProgress::Start { table, rows, what } => {
                        let bar = multi.add(ProgressBar::new(rows));
                        if let Ok(style) = ProgressStyle::with_template(
                            "{prefix:<32} {bar:30} {human_pos:>10}/{human_len:<10} rows {msg}",
                        ) {
                            bar.set_style(style);
                        }
                        bar.set_prefix(table.clone());
                        bar.set_message(what);
                        bars.insert(table, bar);
                    }
                    StepProgress::Rows { table, rows } => {
                        if let Some(bar) = bars.get(&table) {
                            bar.inc(rows);
                        }
                    }
                    StepProgress::Done { table, outcome } => {
                        if let Some(bar) = bars.get(&table) {
                            bar.finish_with_message(outcome);
                        }
                    }
                }
            }
            None => {
                let line = match event {
                    StepProgress::Start { table, rows, what } => {
                        format!("{table}: {what} (about {rows} rows)")
                    }
                    StepProgress::Rows { .. } => return,
                    StepProgress::Done { table, outcome } => format!("{table}: {outcome}"),
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
