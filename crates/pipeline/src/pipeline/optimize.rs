//! The optimization stage: after the layers, each table a run changed is compacted (or
//! clustered), vacuumed with its retention, and checkpointed.

use anyhow::{Context, Result};

use crate::lake::Lake;

/// Tables clustered by (patient, encounter) along a Hilbert curve; the others are compacted.
pub const CLUSTERED: [&str; 2] = ["silver.encounters_clean", "silver.lab_results_clean"];

/// OPTIMIZE (clustering or compaction), VACUUM with the table's retention and a checkpoint
/// of the table `name` (`layer.table`). Returns (table, files removed, files added).
///
/// # Errors
/// A bad name, storage and commit errors.
pub async fn table(lake: &Lake, name: &str) -> Result<(String, u64, u64)> {
    let (layer, table) = name
        .split_once('.')
        .with_context(|| format!("bad table name {name}"))?;
    let table_handle = lake.table(layer, table)?;
    let mut optimize = table_handle.optimize();
    if CLUSTERED.contains(&name) {
        optimize = optimize.with_zorder(
            ["patient_id", "encounter_id"],
            Some(delta_core::Curve::Hilbert),
        );
    }
    let report = optimize.run().await?;
    let _ = table_handle.vacuum().run().await?;
    let snapshot = table_handle.snapshot().await?;
    table_handle.checkpoint(&snapshot).await?;
    Ok((name.to_owned(), report.files_removed, report.files_added))
}
