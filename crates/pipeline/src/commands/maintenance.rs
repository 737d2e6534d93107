//! `medilake table optimize|vacuum|clustering`: table maintenance, and how to see what it
//! bought.
//!
//! `optimize` prints its plan (one line per bin: partition, files, bytes) and then what it
//! rewrote; `vacuum` lists (dry run) or counts (real run) the files it deletes;
//! `clustering` measures how many files a point lookup reads. Each has `--json` for one
//! JSON object. Partition values and file paths are printed (they are the plan), row values
//! never.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use delta_core::{Bin, Curve, ProbeStats, Snapshot, Table};

use super::plural;
use crate::cli::{ClusteringArgs, CurveArg, OptimizeArgs, VacuumArgs};
use crate::output::Json;

// ---------------------------------------------------------------------------------------------
// optimize
// ---------------------------------------------------------------------------------------------

/// `table optimize`: bin-packing compaction, or clustering with `--zorder-by`.
///
/// # Errors
/// A bad `--where` (or one on non-partition columns), unknown or partition clustering
/// columns, conflicts with concurrent commits that removed input files, storage errors.
pub async fn optimize<W: Write>(table: &Table, args: &OptimizeArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let context = || format!("cannot optimize table {uri}");
    let zorder: Vec<String> = args
        .zorder_by
        .iter()
        .flatten()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if args.zorder_by.is_some() && zorder.is_empty() {
        bail!("--zorder-by needs at least one column");
    }
    // The snapshot the plan is printed against (partition names, column mapping); OPTIMIZE
    // itself reads the latest snapshot again.
    let snapshot = table.snapshot().await.with_context(context)?;

    let mut builder = table.optimize().with_dry_run(args.dry_run);
    if let Some(text) = &args.predicate {
        builder = builder.with_predicate(super::table::parse_predicate(text)?);
    }
    if let Some(bytes) = args.target_size {
        builder = builder.with_target_size(bytes);
    }
    if let Some(bytes) = args.memory_budget {
        builder = builder.with_memory_budget(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
    // delta-core's default: Hilbert for two or more columns; one column is the same order
    // on either curve (reported as Morton).
    let curve = (!zorder.is_empty()).then_some(match args.curve {
        Some(CurveArg::Hilbert) => Curve::Hilbert,
        Some(CurveArg::Morton) => Curve::Morton,
        None if zorder.len() >= 2 => Curve::Hilbert,
        None => Curve::Morton,
    });
    if let Some(curve) = curve {
        builder = builder.with_zorder(zorder.iter().cloned(), Some(curve));
    }
    let report = builder.run().await.with_context(context)?;

    let names = PartitionNames::of(&snapshot);
    let curve_name = curve.map(curve_name);
    let version = report.versions.last().copied();
    if args.json {
        let bins = report
            .bins
            .iter()
            .map(|bin| {
                Json::object([
                    ("partition", names.json(bin)),
                    ("files", Json::from(bin.files.len())),
                    ("bytes", Json::from(bin.bytes)),
                ])
            })
            .collect();
        let doc = Json::object([
            ("operation", Json::str("OPTIMIZE")),
            ("dryRun", Json::from(report.dry_run)),
            (
                "zOrderBy",
                Json::Array(zorder.iter().map(|c| Json::str(c.as_str())).collect()),
            ),
            ("curve", Json::opt(curve_name)),
            ("targetSize", Json::opt(args.target_size)),
            ("numBins", Json::from(report.bins.len())),
            (
                "numFiles",
                Json::from(report.bins.iter().map(|b| b.files.len()).sum::<usize>()),
            ),
            (
                "numBytes",
                Json::from(report.bins.iter().map(|b| b.bytes).sum::<u64>()),
            ),
            ("bins", Json::Array(bins)),
            ("version", Json::opt(version)),
            (
                "versions",
                Json::Array(report.versions.iter().map(|v| Json::from(*v)).collect()),
            ),
            ("filesRemoved", Json::from(report.files_removed)),
            ("filesAdded", Json::from(report.files_added)),
            ("bytesRemoved", Json::from(report.bytes_removed)),
            ("bytesAdded", Json::from(report.bytes_added)),
            ("rows", Json::from(report.rows)),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
        return Ok(());
    }

    let what = match curve_name {
        Some(name) => format!("cluster by {} along the {name} curve", zorder.join(", ")),
        None => "compact".to_owned(),
    };
    if report.bins.is_empty() {
        let why = if zorder.is_empty() {
            "no partition has two or more files below the target size (or a file whose \
             deletion vector hides more than 5% of its rows)"
        } else {
            "every file is already clustered this way"
        };
        writeln!(out, "nothing to optimize ({what}): {why}; no new version")?;
        return Ok(());
    }
    let files: usize = report.bins.iter().map(|b| b.files.len()).sum();
    let bytes: u64 = report.bins.iter().map(|b| b.bytes).sum();
    writeln!(
        out,
        "plan ({what}): {}, {}, {}",
        plural(report.bins.len() as u64, "bin"),
        plural(files as u64, "file"),
        plural(bytes, "byte")
    )?;
    let width = report.bins.len().to_string().len();
    for (i, bin) in report.bins.iter().enumerate() {
        writeln!(
            out,
            "  bin {:>width$}: {}: {}, {}",
            i + 1,
            names.text(bin),
            plural(bin.files.len() as u64, "file"),
            plural(bin.bytes, "byte")
        )?;
    }
    if report.dry_run {
        writeln!(out, "dry run: nothing written; no new version")?;
        return Ok(());
    }
    let versions = match report.versions.as_slice() {
        [] => return Err(anyhow!("internal error: OPTIMIZE reported no version")),
        [one] => format!("version {one}"),
        [first, .., last] => format!(
            "versions {first}-{last} ({} commits)",
            report.versions.len()
        ),
    };
    writeln!(
        out,
        "{versions}: {} rewritten (data unchanged)",
        plural(report.rows, "row")
    )?;
    writeln!(
        out,
        "files: {} removed ({}), {} added ({})",
        report.files_removed,
        plural(report.bytes_removed, "byte"),
        report.files_added,
        plural(report.bytes_added, "byte")
    )?;
    Ok(())
}

fn curve_name(curve: Curve) -> &'static str {
    match curve {
        Curve::Hilbert => "hilbert",
        Curve::Morton => "morton",
    }
}

/// Logical names and order of the partition columns, for printing bins (whose partition
/// values are keyed by physical names under column mapping).
struct PartitionNames {
    /// Physical name → (position, logical name).
    by_physical: HashMap<String, (usize, String)>,
}

impl PartitionNames {
    fn of(snapshot: &Snapshot) -> Self {
        let mode = snapshot.column_mapping();
        let by_physical = snapshot
            .partition_columns()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let physical = snapshot
                    .schema()
                    .field(name)
                    .map_or_else(|| name.clone(), |f| f.physical_name(mode).to_owned());
                (physical, (i, name.clone()))
            })
            .collect();
        Self { by_physical }
    }

    /// `(logical name, value)` pairs in partition-column order (unknown keys last).
    fn entries<'a>(&self, bin: &'a Bin) -> Vec<(String, &'a Option<String>)> {
        let mut entries: Vec<(usize, String, &Option<String>)> = bin
            .partition
            .iter()
            .map(|(key, value)| match self.by_physical.get(key) {
                Some((i, name)) => (*i, name.clone(), value),
                None => (usize::MAX, key.clone(), value),
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        entries.into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    fn text(&self, bin: &Bin) -> String {
        if bin.partition.is_empty() {
            return "(unpartitioned)".to_owned();
        }
        let inner: Vec<String> = self
            .entries(bin)
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
            .collect();
        format!("{{{}}}", inner.join(", "))
    }

    fn json(&self, bin: &Bin) -> Json {
        Json::Object(
            self.entries(bin)
                .into_iter()
                .map(|(k, v)| (k, Json::opt(v.clone())))
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// vacuum
// ---------------------------------------------------------------------------------------------

/// `table vacuum`.
///
/// # Errors
/// A retention below the table's without `--force` (the message says so), tables with
/// writer features this engine lacks, storage errors.
pub async fn vacuum<W: Write>(table: &Table, args: &VacuumArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let mut builder = table
        .vacuum()
        .with_dry_run(args.dry_run)
        .with_force(args.force);
    if let Some(hours) = args.retain_hours {
        let retention = Duration::try_from_secs_f64(hours * 3600.0)
            .map_err(|_| anyhow!("--retain-hours {hours} is out of range"))?;
        builder = builder.with_retention(retention);
    }
    let report = match builder.run().await {
        Ok(report) => report,
        Err(delta_core::Error::InvalidArgument { message })
            if !args.force && message.contains("force") =>
        {
            // delta-core says "pass force"; on the command line that is --force.
            bail!(
                "cannot vacuum table {uri}: {}",
                message.replace("pass force", "pass --force")
            );
        }
        Err(e) => return Err(e).with_context(|| format!("cannot vacuum table {uri}")),
    };
    let retention = hours_text(report.retention_ms);
    if args.json {
        let doc = Json::object([
            ("operation", Json::str("VACUUM")),
            ("dryRun", Json::from(report.dry_run)),
            ("retentionHours", Json::float(hours(report.retention_ms))),
            ("retentionMs", Json::from(report.retention_ms)),
            ("numFiles", Json::from(report.files.len())),
            ("bytes", Json::from(report.bytes)),
            (
                "files",
                Json::Array(report.files.iter().map(|f| Json::str(f.as_str())).collect()),
            ),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
        return Ok(());
    }
    let count = plural(report.files.len() as u64, "file");
    let size = plural(report.bytes, "byte");
    if report.dry_run {
        if report.files.is_empty() {
            writeln!(
                out,
                "dry run: nothing to delete with a retention of {retention}; no new version"
            )?;
        } else {
            writeln!(
                out,
                "dry run: {count} ({size}) would be deleted with a retention of {retention}:"
            )?;
            for file in &report.files {
                writeln!(out, "  {file}")?;
            }
        }
    } else {
        writeln!(
            out,
            "deleted {count} ({size}) with a retention of {retention}; recorded as VACUUM \
             START and VACUUM END commits"
        )?;
    }
    Ok(())
}

/// Milliseconds as hours.
fn hours(ms: i64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "a retention, printed")]
    let ms = ms as f64;
    ms / 3_600_000.0
}

/// `168 hours`, `1.5 hours`, `1 hour`.
fn hours_text(ms: i64) -> String {
    let h = hours(ms);
    if (h - 1.0).abs() < f64::EPSILON {
        "1 hour".to_owned()
    } else {
        format!("{h} hours")
    }
}

// ---------------------------------------------------------------------------------------------
// clustering
// ---------------------------------------------------------------------------------------------

/// `table clustering`: files read per point probe, per column and for the conjunction.
///
/// # Errors
/// Unknown columns, read errors.
pub async fn clustering<W: Write>(table: &Table, args: &ClusteringArgs, out: &mut W) -> Result<()> {
    let uri = args.uri.as_str();
    let columns: Vec<String> = args
        .columns
        .iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if columns.is_empty() {
        bail!("--columns needs at least one column");
    }
    let snapshot = super::table::load_snapshot(table, uri, args.time_travel).await?;
    let version = snapshot.version();
    let samples = usize::try_from(args.samples).unwrap_or(usize::MAX);
    let report = snapshot
        .clustering_report(&columns, samples)
        .await
        .with_context(|| format!("cannot measure the clustering of {uri} at version {version}"))?;
    let (singles, combined): (Vec<&ProbeStats>, Vec<&ProbeStats>) =
        report.probes.iter().partition(|p| p.columns.len() == 1);
    let combined = combined.first().copied();

    if args.json {
        let doc = Json::object([
            ("version", Json::from(version)),
            ("totalFiles", Json::from(report.total_files)),
            ("samples", Json::from(samples)),
            (
                "columns",
                Json::Array(singles.iter().copied().map(probe_json).collect()),
            ),
            ("combined", combined.map_or(Json::Null, probe_json)),
        ]);
        writeln!(out, "{}", doc.to_json_string())?;
        return Ok(());
    }

    writeln!(
        out,
        "version {version}: {}; point probes `col = v` on up to {} sampled values",
        plural(report.total_files as u64, "live file"),
        samples
    )?;
    let label = |p: &ProbeStats| p.columns.join(" AND ");
    let width = report
        .probes
        .iter()
        .map(|p| label(p).len())
        .max()
        .unwrap_or(0)
        .max("column".len());
    writeln!(
        out,
        "{:<width$}  {:>6}  {:>9}  {:>9}  {:>13}",
        "column", "probes", "avg files", "max files", "overlap depth"
    )?;
    for probe in singles.iter().copied().chain(combined) {
        writeln!(
            out,
            "{:<width$}  {:>6}  {:>9.2}  {:>9}  {:>13}",
            label(probe),
            probe.probes,
            probe.average_files,
            probe.max_files,
            probe
                .overlap_depth
                .map_or_else(|| "-".to_owned(), |d| d.to_string())
        )?;
    }
    writeln!(
        out,
        "(files read per probe, of {}; overlap depth: the most files whose min/max ranges \
         share a value)",
        report.total_files
    )?;
    Ok(())
}

fn probe_json(probe: &ProbeStats) -> Json {
    Json::object([
        (
            "columns",
            Json::Array(
                probe
                    .columns
                    .iter()
                    .map(|c| Json::str(c.as_str()))
                    .collect(),
            ),
        ),
        ("probes", Json::from(probe.probes)),
        ("averageFiles", Json::float(probe.average_files)),
        ("maxFiles", Json::from(probe.max_files)),
        ("overlapDepth", Json::opt(probe.overlap_depth)),
    ])
}
