//! `medilake catalog list|describe`: the lake's tables by three-level name, with the
//! catalog's descriptions, owners and column tags next to what each Delta log says.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use delta_core::{Error as DeltaError, Snapshot, action::Add};
use serde_json::json;

use crate::catalog::{CATALOG, Catalog, LAYERS, TableEntry, short_name};
use crate::cli::{CatalogCommand, CatalogDescribeArgs, CatalogListArgs};
use crate::commands::table::type_label;
use crate::lake::Lake;

/// Run a `medilake catalog` command.
///
/// # Errors
/// Storage errors, an unreadable catalog file, an unknown table name.
pub async fn run<W: Write>(
    command: CatalogCommand,
    options: &HashMap<String, String>,
    out: &mut W,
) -> Result<()> {
    match command {
        CatalogCommand::List(args) => list(&args, options, out).await,
        CatalogCommand::Describe(args) => describe(&args, options, out).await,
    }
}

/// The table's snapshot, or `None` when it does not exist (yet).
async fn snapshot(lake: &Lake, name: &str) -> Result<Option<Snapshot>> {
    let (layer, table) = name.split_once('.').unwrap_or((name, ""));
    match lake.table(layer, table)?.snapshot().await {
        Ok(s) => Ok(Some(s)),
        Err(DeltaError::NotATable { .. }) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {CATALOG}.{name}"))),
    }
}

/// Every `layer.table` that the catalog names or the lake holds.
async fn table_names(lake: &Lake, catalog: &Catalog) -> Result<Vec<String>> {
    let mut names: Vec<String> = catalog.tables.keys().cloned().collect();
    for layer in LAYERS {
        let (_, dirs) = lake.list_dir(&format!("{layer}/")).await?;
        for table in dirs.into_iter().filter(|t| !t.starts_with('_')) {
            names.push(format!("{layer}.{table}"));
        }
    }
    // Bookkeeping tables (`bronze._corrupt_records`) are listed when the catalog has them.
    names.sort_by_key(|n| {
        let layer = n.split('.').next().unwrap_or_default();
        (LAYERS.iter().position(|l| *l == layer), n.clone())
    });
    names.dedup();
    Ok(names)
}

fn rows(snapshot: &Snapshot) -> u64 {
    snapshot.files().iter().filter_map(Add::logical_rows).sum()
}

fn phi_columns(entry: Option<&TableEntry>) -> usize {
    entry.map_or(0, |e| {
        e.columns
            .values()
            .filter(|tags| tags.iter().any(|t| t.starts_with("phi")))
            .count()
    })
}

async fn list<W: Write>(
    args: &CatalogListArgs,
    options: &HashMap<String, String>,
    out: &mut W,
) -> Result<()> {
    let lake = Lake::open(&args.lake, options)?;
    let catalog = Catalog::load(&lake).await?;
    let mut entries = Vec::new();
    for name in table_names(&lake, &catalog).await? {
        let snapshot = snapshot(&lake, &name).await?;
        let entry = catalog.tables.get(&name);
        entries.push((name, snapshot, entry));
    }
    if args.json {
        let tables: Vec<_> = entries
            .iter()
            .map(|(name, snapshot, entry)| {
                json!({
                    "name": format!("{CATALOG}.{name}"),
                    "exists": snapshot.is_some(),
                    "version": snapshot.as_ref().map(Snapshot::version),
                    "files": snapshot.as_ref().map(|s| s.files().len()),
                    "rows": snapshot.as_ref().map(rows),
                    "phiColumns": phi_columns(*entry),
                    "owner": entry.map(|e| e.owner.clone()),
                    "description": entry.map(|e| e.description.clone()),
                    "catalogued": entry.is_some(),
                })
            })
            .collect();
        writeln!(out, "{}", json!({ "catalog": CATALOG, "tables": tables }))?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<46} {:>7} {:>6} {:>10} {:>4}  owner",
        "table", "version", "files", "rows", "phi"
    )?;
    for (name, snapshot, entry) in &entries {
        let (version, files, count) = match snapshot {
            Some(s) => (
                s.version().to_string(),
                s.files().len().to_string(),
                rows(s).to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let owner = entry.map_or("(not catalogued)", |e| e.owner.as_str());
        writeln!(
            out,
            "{:<46} {version:>7} {files:>6} {count:>10} {:>4}  {owner}",
            format!("{CATALOG}.{name}"),
            phi_columns(*entry)
        )?;
    }
    let missing = entries.iter().filter(|(_, s, _)| s.is_none()).count();
    if missing > 0 {
        writeln!(
            out,
            "{missing} catalogued tables do not exist yet (version `-`): `medilake run` creates them"
        )?;
    }
    Ok(())
}

async fn describe<W: Write>(
    args: &CatalogDescribeArgs,
    options: &HashMap<String, String>,
    out: &mut W,
) -> Result<()> {
    let name = short_name(&args.name)?;
    let lake = Lake::open(&args.lake, options)?;
    let catalog = Catalog::load(&lake).await?;
    let entry = catalog.tables.get(&name);
    let snapshot = snapshot(&lake, &name).await?;
    if entry.is_none() && snapshot.is_none() {
        anyhow::bail!(
            "no table {CATALOG}.{name} in the catalog or the lake {}",
            lake.url()
        );
    }
    let (layer, table) = name.split_once('.').unwrap_or((&name, ""));
    let location = lake.table_url(layer, table)?;
    let no_tags = Vec::new();
    let tags = |column: &str| {
        entry
            .and_then(|e| e.columns.get(column))
            .unwrap_or(&no_tags)
    };
    // The columns: the table's schema when it exists, else the catalogued columns.
    let columns: Vec<(String, Option<String>, Option<bool>)> = match &snapshot {
        Some(s) => s
            .schema()
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    Some(type_label(&f.data_type)),
                    Some(f.nullable),
                )
            })
            .collect(),
        None => entry
            .map(|e| e.columns.keys().map(|c| (c.clone(), None, None)).collect())
            .unwrap_or_default(),
    };
    if args.json {
        let columns: Vec<_> = columns
            .iter()
            .map(|(column, kind, nullable)| {
                json!({"name": column, "type": kind, "nullable": nullable, "tags": tags(column)})
            })
            .collect();
        let value = json!({
            "name": format!("{CATALOG}.{name}"),
            "location": location.as_str(),
            "description": entry.map(|e| e.description.clone()),
            "owner": entry.map(|e| e.owner.clone()),
            "version": snapshot.as_ref().map(Snapshot::version),
            "files": snapshot.as_ref().map(|s| s.files().len()),
            "rows": snapshot.as_ref().map(rows),
            "partitionColumns": snapshot.as_ref().map(|s| s.partition_columns().to_vec()),
            "columns": columns,
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    writeln!(out, "{CATALOG}.{name}")?;
    writeln!(
        out,
        "  description: {}",
        entry.map_or("(not catalogued)", |e| e.description.as_str())
    )?;
    writeln!(
        out,
        "  owner:       {}",
        entry.map_or("-", |e| e.owner.as_str())
    )?;
    writeln!(out, "  location:    {location}")?;
    match &snapshot {
        Some(s) => {
            writeln!(
                out,
                "  version:     {} ({} files, {} rows)",
                s.version(),
                s.files().len(),
                rows(s)
            )?;
            let partitions = s.partition_columns();
            writeln!(
                out,
                "  partitioned: {}",
                if partitions.is_empty() {
                    "no".to_owned()
                } else {
                    format!("by {}", partitions.join(", "))
                }
            )?;
        }
        None => writeln!(out, "  version:     - (not created yet)")?,
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:<13} {:<8} tags",
        "column", "type", "nullable"
    )?;
    for (column, kind, nullable) in &columns {
        let line = format!(
            "{column:<28} {:<13} {:<8} {}",
            kind.as_deref().unwrap_or("-"),
            nullable.map_or("-", |n| if n { "yes" } else { "no" }),
            tags(column).join(", ")
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
