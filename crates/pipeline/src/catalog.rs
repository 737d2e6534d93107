//! The lake's catalog: every pipeline table by three-level name
//! (`medilake.<layer>.<table>`), with a description, an owner and tags on columns, kept in
//! one JSON file at `<lake>/_catalog.json`.
//!
//! `medilake run` writes the file when the lake has none and adds the pipeline's tables and
//! tags that are missing from it; it never overwrites what is there, so owners, descriptions
//! and tags edited by hand stay. (A column's tags can be changed or emptied by hand; a
//! column entry deleted by hand comes back with the pipeline's tags, so PHI is never
//! untagged by omission.) `medilake catalog list|describe` read it together with the
//! tables' Delta logs (schema, version, files, rows).
//!
//! PHI tags mark the columns that identify a patient: names (`phi:name`), street address,
//! city and ZIP (`phi:address`), `phi:phone`, `phi:email`, the insurance member id
//! (`phi:member_id`), the birth date (`phi:birth_date`), the patient id, a medical record
//! number (`phi:record_number`), and raw payloads that may hold any of them (`phi:raw`). Dates
//! of service are not tagged: the analytics tables are built on them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::lake::Lake;

/// The catalog's name, the first part of every three-level name.
pub const CATALOG: &str = "medilake";
/// Where the catalog lives, relative to the lake root.
pub const CATALOG_FILE: &str = "_catalog.json";
/// The layers, in order.
pub const LAYERS: [&str; 3] = ["bronze", "silver", "gold"];

/// The catalog file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Tables by `layer.table`.
    pub tables: BTreeMap<String, TableEntry>,
}

/// One table's entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// What the table holds.
    #[serde(default)]
    pub description: String,
    /// Who answers for it.
    #[serde(default)]
    pub owner: String,
    /// Tags by column name.
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
}

const ENGINEERING: &str = "data-engineering";
const ANALYTICS: &str = "clinical-analytics";

/// Tags of the patient columns wherever they appear.
const PATIENT_PHI: [(&str, &str); 12] = [
    ("patient_id", "phi:record_number"),
    ("first_name", "phi:name"),
    ("last_name", "phi:name"),
    ("birth_date", "phi:birth_date"),
    ("address_line1", "phi:address"),
    ("address_line2", "phi:address"),
    ("city", "phi:address"),
    ("zip", "phi:address"),
    ("phone", "phi:phone"),
    ("email", "phi:email"),
    ("insurance_member_id", "phi:member_id"),
    ("_rescued_data", "phi:raw"),
];

/// The pipeline's tables: (layer.table, description, owner, the PHI columns it has).
fn builtin() -> Vec<(String, &'static str, &'static str, Vec<&'static str>)> {
    let entity = |name: &str| -> Vec<&'static str> {
        if name == "patients" {
            PATIENT_PHI.iter().map(|(c, _)| *c).collect()
        } else {
            vec!["patient_id", "_rescued_data"]
        }
    };
    let mut out = Vec::new();
    for e in crate::pipeline::contract::ENTITIES {
        out.push((
            format!("bronze.{}", e.name),
            "Raw source records of one entity, every field as text, plus ingestion provenance \
             (_ingested_at, _source_file, _source_line, _batch_id) and _rescued_data; append-only, \
             each source file ingested exactly once",
            ENGINEERING,
            entity(e.name),
        ));
    }
    out.push((
        format!("bronze.{}", crate::pipeline::bronze::CORRUPT_TABLE),
        "Source lines that are not JSON objects, with entity, file, line and the parser's error",
        ENGINEERING,
        vec!["raw_line"],
    ));
    for spec in crate::silver::entities::ALL {
        let description = if spec.entity == "patients" {
            "Patient demographics as SCD Type 2: one row per version of the tracked columns, \
             valid_from/valid_to/is_current, exactly one current row per patient"
        } else {
            "Typed, conformed and deduplicated records (latest per key), CDC applied with MERGE \
             from new bronze versions; rows failing rules are in silver.quarantine"
        };
        let mut phi = entity(spec.entity);
        phi.retain(|c| *c != "_rescued_data");
        out.push((
            format!("silver.{}", spec.table),
            description,
            ENGINEERING,
            phi,
        ));
    }
    out.push((
        "silver.quarantine".to_owned(),
        "Rows that failed a quarantine rule: table, rule names, source file and line, the raw record",
        ENGINEERING,
        vec!["raw_record"],
    ));
    for (name, description) in [
        (
            "patient_clinical_summary",
            "Per current patient: demographics, age, encounters, last visit, inpatient days, \
             active medications, chronic conditions, abnormal labs, last lab date",
        ),
        (
            "hospital_utilization_metrics",
            "Per facility, department and day: admissions, discharges, ED visits, average and \
             median length of stay, 30-day readmissions",
        ),
        (
            "disease_prevalence_daily",
            "Per day and ICD-10 code: new diagnoses, distinct and cumulative patients",
        ),
        (
            "lab_abnormal_trends",
            "Per day and LOINC code: results, abnormal high and low counts and rates, 7-day \
             rolling abnormal rate",
        ),
    ] {
        let phi = if name == "patient_clinical_summary" {
            vec![
                "patient_id",
                "first_name",
                "last_name",
                "birth_date",
                "city",
            ]
        } else {
            Vec::new()
        };
        out.push((format!("gold.{name}"), description, ANALYTICS, phi));
    }
    out
}

/// The tag of a PHI column.
fn phi_tag(column: &str) -> &'static str {
    match column {
        "raw_line" | "raw_record" => "phi:raw",
        other => PATIENT_PHI
            .iter()
            .find(|(c, _)| *c == other)
            .map_or("phi", |(_, tag)| *tag),
    }
}

impl Catalog {
    /// The pipeline's own catalog.
    #[must_use]
    pub fn builtin() -> Self {
        let mut tables = BTreeMap::new();
        for (name, description, owner, phi) in builtin() {
            let columns = phi
                .into_iter()
                .map(|c| (c.to_owned(), vec![phi_tag(c).to_owned()]))
                .collect();
            tables.insert(
                name,
                TableEntry {
                    description: description.to_owned(),
                    owner: owner.to_owned(),
                    columns,
                },
            );
        }
        Self { tables }
    }

    /// Add what `other` has and `self` lacks: tables, then tags of columns; what `self`
    /// has (descriptions, owners, tags) stays. Returns whether anything was added.
    pub fn fill_from(&mut self, other: &Catalog) -> bool {
        let mut changed = false;
        for (name, entry) in &other.tables {
            match self.tables.get_mut(name) {
                None => {
                    self.tables.insert(name.clone(), entry.clone());
                    changed = true;
                }
                Some(mine) => {
                    for (column, tags) in &entry.columns {
                        if !mine.columns.contains_key(column) {
                            mine.columns.insert(column.clone(), tags.clone());
                            changed = true;
                        }
                    }
                }
            }
        }
        changed
    }

    /// The catalog file of `lake`, or `None` when it has none.
    ///
    /// # Errors
    /// Storage errors; a file that is not a catalog (naming it).
    pub async fn read(lake: &Lake) -> Result<Option<Self>> {
        let Some(bytes) = lake.read(CATALOG_FILE).await? else {
            return Ok(None);
        };
        let catalog = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a catalog file", lake.display(CATALOG_FILE)))?;
        Ok(Some(catalog))
    }

    /// The catalog of `lake` with the pipeline's entries filled in (nothing is written).
    ///
    /// # Errors
    /// As [`Catalog::read`].
    pub async fn load(lake: &Lake) -> Result<Self> {
        let mut catalog = Self::read(lake).await?.unwrap_or_default();
        catalog.fill_from(&Self::builtin());
        Ok(catalog)
    }

    /// Write the catalog file when the lake has none, or add the pipeline's missing entries
    /// to it. Returns whether the file was written.
    ///
    /// # Errors
    /// Storage errors; an unreadable catalog file.
    pub async fn ensure(lake: &Lake) -> Result<bool> {
        let existing = Self::read(lake).await?;
        let mut catalog = existing.clone().unwrap_or_default();
        if !catalog.fill_from(&Self::builtin()) && existing.is_some() {
            return Ok(false);
        }
        let mut text = serde_json::to_string_pretty(&catalog)?;
        text.push('\n');
        lake.replace(CATALOG_FILE, text.into()).await?;
        Ok(true)
    }
}

/// `layer.table` from a two- or three-level name (`medilake.silver.patients_scd`,
/// `silver.patients_scd`).
///
/// # Errors
/// Any other shape, or another catalog's name.
pub fn short_name(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let (layer, table) = match parts.as_slice() {
        [catalog, layer, table] if *catalog == CATALOG => (*layer, *table),
        [catalog, _, _] => {
            bail!("unknown catalog `{catalog}` (this lake's catalog is `{CATALOG}`)")
        }
        [layer, table] => (*layer, *table),
        _ => bail!("`{name}` is not a table name (use {CATALOG}.<layer>.<table>)"),
    };
    if !LAYERS.contains(&layer) {
        bail!("unknown layer `{layer}` (one of {})", LAYERS.join(", "));
    }
    if table.is_empty() || table.contains('/') {
        bail!("`{name}` is not a table name (use {CATALOG}.<layer>.<table>)");
    }
    Ok(format!("{layer}.{table}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_pipeline_tables_are_catalogued_with_phi_tags() {
        let catalog = Catalog::builtin();
        assert_eq!(catalog.tables.len(), 7 + 7 + 4);
        let patients = &catalog.tables["silver.patients_scd"];
        for (column, tag) in [
            ("first_name", "phi:name"),
            ("address_line1", "phi:address"),
            ("phone", "phi:phone"),
            ("email", "phi:email"),
            ("insurance_member_id", "phi:member_id"),
        ] {
            assert_eq!(patients.columns[column], [tag], "{column}");
        }
        assert!(!patients.columns.contains_key("sex"));
        assert_eq!(
            catalog.tables["silver.quarantine"].columns["raw_record"],
            ["phi:raw"]
        );
        assert!(
            catalog.tables["gold.lab_abnormal_trends"]
                .columns
                .is_empty()
        );
        assert!(catalog.tables.values().all(|t| !t.description.is_empty()));
    }

    #[test]
    fn names_resolve_at_two_or_three_levels() {
        assert_eq!(
            short_name("medilake.silver.patients_scd").unwrap(),
            "silver.patients_scd"
        );
        assert_eq!(short_name("gold.x").unwrap(), "gold.x");
        for bad in ["other.silver.x", "platinum.x", "x", "a.b.c.d", "silver."] {
            assert!(short_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn hand_edits_survive_and_missing_entries_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &HashMap::new()).unwrap();
        assert!(Catalog::ensure(&lake).await.unwrap());
        assert!(
            !Catalog::ensure(&lake).await.unwrap(),
            "second time: nothing new"
        );
        let mut edited = Catalog::read(&lake).await.unwrap().unwrap();
        let entry = edited.tables.get_mut("silver.patients_scd").unwrap();
        entry.owner = "privacy-office".into();
        entry.columns.insert("sex".into(), vec!["sensitive".into()]);
        entry.columns.remove("email");
        edited.tables.remove("gold.lab_abnormal_trends");
        std::fs::write(
            dir.path().join(CATALOG_FILE),
            serde_json::to_string(&edited).unwrap(),
        )
        .unwrap();
        assert!(Catalog::ensure(&lake).await.unwrap());
        let after = Catalog::read(&lake).await.unwrap().unwrap();
        let entry = &after.tables["silver.patients_scd"];
        assert_eq!(entry.owner, "privacy-office");
        assert_eq!(entry.columns["sex"], ["sensitive"]);
        assert_eq!(entry.columns["email"], ["phi:email"]);
        assert!(after.tables.contains_key("gold.lab_abnormal_trends"));
    }

    #[tokio::test]
    async fn a_broken_catalog_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CATALOG_FILE), "{not json").unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &HashMap::new()).unwrap();
        let err = format!("{:#}", Catalog::load(&lake).await.unwrap_err());
        assert!(err.contains("_catalog.json is not a catalog file"), "{err}");
    }
}
