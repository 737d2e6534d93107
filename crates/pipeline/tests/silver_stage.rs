//! The silver and gold stages over a small bronze lake written here (bronze's shape: every contract
//! field as text plus lineage columns): counts reconcile, quarantined rows carry their rule
//! and line, a rerun commits nothing, a new bronze batch is processed alone (CDC update by
//! MERGE), and the SCD2 history has one current row per patient.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::Table;
use futures::StreamExt;
use pipeline::lake::Lake;
use pipeline::silver::stage;

/// A bronze batch of `fields` (text) from `file`, lines 1.., batch `batch`.
fn bronze(fields: &[&str], rows: &[Vec<Option<&str>>], file: &str, batch: &str) -> RecordBatch {
    let mut schema: Vec<Field> = fields
        .iter()
        .map(|f| Field::new(*f, DataType::Utf8, true))
        .collect();
    schema.push(Field::new("_source_file", DataType::Utf8, true));
    schema.push(Field::new("_source_line", DataType::Int64, true));
    schema.push(Field::new("_batch_id", DataType::Utf8, true));
    let mut columns: Vec<Arc<dyn arrow::array::Array>> = (0..fields.len())
        .map(|j| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[j]).collect::<Vec<_>>(),
            )) as _
        })
        .collect();
    columns.push(Arc::new(StringArray::from(vec![file; rows.len()])));
    columns.push(Arc::new(Int64Array::from(
        (1..=rows.len() as i64).collect::<Vec<_>>(),
    )));
    columns.push(Arc::new(StringArray::from(vec![batch; rows.len()])));
    RecordBatch::try_new(Arc::new(Schema::new(schema)), columns).unwrap()
}

async fn append(lake: &std::path::Path, entity: &str, batch: RecordBatch) {
    let table = Table::open(
        lake.join("bronze").join(entity).to_str().unwrap(),
        &HashMap::new(),
    )
    .unwrap();
    let _ = table
        .write()
        .execute(futures::stream::iter([Ok(batch)]).boxed())
        .await
        .unwrap();
}

const ENCOUNTER: [&str; 9] = [
    "encounter_id",
    "patient_id",
    "encounter_date",
    "admit_ts",
    "discharge_ts",
    "encounter_type",
    "department",
    "facility",
    "attending_provider",
];
const PATIENT: [&str; 5] = ["patient_id", "updated_at", "city", "insurance", "op"];

fn encounter<'a>(
    id: Option<&'a str>,
    date: &'a str,
    admit: &'a str,
    discharge: &'a str,
) -> Vec<Option<&'a str>> {
    vec![
        id,
        Some("p1"),
        Some(date),
        Some(admit),
        Some(discharge),
        Some("inpatient"),
        Some("Cardiology"),
        Some("General"),
        Some("Dr. X"),
    ]
}

async fn version(lake: &std::path::Path, layer: &str, name: &str) -> u64 {
    Table::open(
        lake.join(layer).join(name).to_str().unwrap(),
        &HashMap::new(),
    )
    .unwrap()
    .snapshot()
    .await
    .unwrap()
    .version()
}

#[tokio::test]
async fn silver_reconciles_reruns_nothing_and_merges_new_batches() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let lake_uri = &Lake::open(lake.to_str().unwrap(), &HashMap::new()).unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
    append(
        lake,
        "encounters",
        bronze(
            &ENCOUNTER,
            &[
                encounter(
                    Some("e1"),
                    "2024-01-02",
                    "2024-01-02T08:00:00",
                    "2024-01-05T10:00:00",
                ),
                encounter(
                    Some("e1"),
                    "2024-01-02",
                    "2024-01-02T08:00:00",
                    "2024-01-05T10:00:00",
                ),
                encounter(
                    None,
                    "2024-01-03",
                    "2024-01-03T08:00:00",
                    "2024-01-04T10:00:00",
                ),
                encounter(
                    Some("e3"),
                    "2023-02-30",
                    "2024-01-03T08:00:00",
                    "2024-01-04T10:00:00",
                ),
                encounter(
                    Some("e4"),
                    "2024-01-04",
                    "2024-01-04T08:00:00",
                    "2024-01-03T10:00:00",
                ),
                encounter(
                    Some("e5"),
                    "2024-01-05",
                    "2024-01-05T08:00:00",
                    "2024-01-06T10:00:00",
                ),
            ],
            "encounters/part-00001.jsonl",
            "b1",
        ),
    )
    .await;
    append(
        lake,
        "patients",
        bronze(
            &PATIENT,
            &[
                vec![
                    Some("p1"),
                    Some("2024-01-01T00:00:00"),
                    Some("Austin"),
                    Some("Aetna"),
                    Some("I"),
                ],
                vec![
                    Some("p2"),
                    Some("2024-01-01T00:00:00"),
                    Some("Waco"),
                    Some("Cigna"),
                    Some("I"),
                ],
                vec![
                    None,
                    Some("2024-01-01T00:00:00"),
                    Some("Nowhere"),
                    Some("Cigna"),
                    Some("I"),
                ],
            ],
            "patients/part-00001.jsonl",
            "b1",
        ),
    )
    .await;

    let first = stage::run(lake_uri, as_of).await.unwrap();
    let enc = first
        .iter()
        .find(|s| s.table == "silver.encounters_clean")
        .unwrap();
    assert_eq!(
        (enc.rows_in, enc.inserted, enc.duplicates, enc.quarantined),
        (6, 2, 1, 3),
        "{enc:?}"
    );
    assert!(enc.reconciles(), "{enc:?}");
    let pat = first
        .iter()
        .find(|s| s.table == "silver.patients_scd")
        .unwrap();
    assert_eq!(
        (pat.rows_in, pat.inserted, pat.quarantined),
        (3, 2, 1),
        "{pat:?}"
    );
    assert!(pat.reconciles(), "{pat:?}");

    // The quarantine names the rules and lines.
    let q = Table::open(
        lake.join("silver/quarantine").to_str().unwrap(),
        &HashMap::new(),
    )
    .unwrap();
    let batches = q
        .snapshot()
        .await
        .unwrap()
        .scan()
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut found = Vec::new();
    for b in &batches {
        let rules = b.column_by_name("rules").unwrap().as_string::<i32>();
        let lines = b
            .column_by_name("_source_line")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        let table = b.column_by_name("table").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            found.push(format!(
                "{} {} {}",
                table.value(i),
                lines.value(i),
                rules.value(i)
            ));
        }
    }
    found.sort();
    assert_eq!(
        found,
        [
            "silver.encounters_clean 3 id_not_null",
            "silver.encounters_clean 4 valid_encounter_date",
            "silver.encounters_clean 5 discharge_after_admit",
            "silver.patients_scd 3 id_not_null",
        ]
    );

    // A rerun with no new bronze data commits nothing.
    let versions = (
        version(lake, "silver", "encounters_clean").await,
        version(lake, "silver", "patients_scd").await,
        version(lake, "silver", "quarantine").await,
    );
    let again = stage::run(lake_uri, as_of).await.unwrap();
    assert!(
        again.iter().all(|s| s.version.is_none() && s.rows_in == 0),
        "{again:?}"
    );
    assert_eq!(
        versions,
        (
            version(lake, "silver", "encounters_clean").await,
            version(lake, "silver", "patients_scd").await,
            version(lake, "silver", "quarantine").await,
        )
    );

    // A new batch: a CDC update of e5, a new encounter, a patient moving (new SCD version),
    // and a late record that predates it.
    append(
        lake,
        "encounters",
        bronze(
            &ENCOUNTER,
            &[
                encounter(
                    Some("e5"),
                    "2024-01-05",
                    "2024-01-05T08:00:00",
                    "2024-01-08T10:00:00",
                ),
                encounter(
                    Some("e6"),
                    "2024-02-01",
                    "2024-02-01T08:00:00",
                    "2024-02-01T18:00:00",
                ),
            ],
            "encounters/part-00002.jsonl",
            "b2",
        ),
    )
    .await;
    append(
        lake,
        "patients",
        bronze(
            &PATIENT,
            &[
                vec![
                    Some("p1"),
                    Some("2024-03-01T00:00:00"),
                    Some("Dallas"),
                    Some("Aetna"),
                    Some("U"),
                ],
                vec![
                    Some("p1"),
                    Some("2024-02-01T00:00:00"),
                    Some("Austin"),
                    Some("Humana"),
                    Some("U"),
                ],
            ],
            "patients/part-00002.jsonl",
            "b2",
        ),
    )
    .await;
    let third = stage::run(lake_uri, as_of).await.unwrap();
    let enc = third
        .iter()
        .find(|s| s.table == "silver.encounters_clean")
        .unwrap();
    assert_eq!(
        (enc.rows_in, enc.inserted, enc.updated),
        (2, 1, 1),
        "{enc:?}"
    );
    let pat = third
        .iter()
        .find(|s| s.table == "silver.patients_scd")
        .unwrap();
    assert_eq!((pat.rows_in, pat.inserted), (2, 2), "{pat:?}");
    assert!(
        third.iter().all(stage::SilverSummary::reconciles),
        "{third:?}"
    );

    let scd = Table::open(
        lake.join("silver/patients_scd").to_str().unwrap(),
        &HashMap::new(),
    )
    .unwrap();
    let batches = scd
        .snapshot()
        .await
        .unwrap()
        .scan()
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let id = b.column_by_name("patient_id").unwrap().as_string::<i32>();
        let city = b.column_by_name("city").unwrap().as_string::<i32>();
        let insurance = b.column_by_name("insurance").unwrap().as_string::<i32>();
        let current = b.column_by_name("is_current").unwrap().as_boolean();
        for i in 0..b.num_rows() {
            rows.push(format!(
                "{} {} {} {}",
                id.value(i),
                city.value(i),
                insurance.value(i),
                current.value(i)
            ));
        }
    }
    rows.sort();
    assert_eq!(
        rows,
        [
            "p1 Austin Aetna false",
            "p1 Austin Humana false",
            "p1 Dallas Aetna true",
            "p2 Waco Cigna true",
        ]
    );
    // The updated encounter carries its new length of stay.
    let enc_table = Table::open(
        lake.join("silver/encounters_clean").to_str().unwrap(),
        &HashMap::new(),
    )
    .unwrap();
    let batches = enc_table
        .snapshot()
        .await
        .unwrap()
        .scan()
        .with_predicate(delta_core::expression::parse("encounter_id = 'e5'").unwrap())
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let los: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name("length_of_stay_days")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>()
                .clone();
            let ids = b
                .column_by_name("encounter_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..b.num_rows())
                .filter(move |i| ids.value(*i) == "e5")
                .map(move |i| a.value(i))
        })
        .collect();
    assert_eq!(los, [3]);

    // Gold from silver; a second gold run with unchanged silver writes nothing.
    let gold = pipeline::gold::run(lake_uri, as_of).await.unwrap();
    assert_eq!(gold.len(), 4);
    let summary = gold
        .iter()
        .find(|g| g.table == "gold.patient_clinical_summary")
        .unwrap();
    assert_eq!((summary.rows, summary.version), (2, Some(0)), "{gold:?}");
    let utilization = gold
        .iter()
        .find(|g| g.table == "gold.hospital_utilization_metrics")
        .unwrap();
    assert!(
        utilization.rows > 0 && utilization.version == Some(0),
        "{gold:?}"
    );
    // No diagnoses or labs in bronze: those gold tables wait for their silver inputs.
    let prevalence = gold
        .iter()
        .find(|g| g.table == "gold.disease_prevalence_daily")
        .unwrap();
    assert_eq!(prevalence.version, None);
    let again = pipeline::gold::run(lake_uri, as_of).await.unwrap();
    assert!(again.iter().all(|g| g.version.is_none()), "{again:?}");
}
