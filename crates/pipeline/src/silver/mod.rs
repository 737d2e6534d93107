//! The silver layer's logic, over Arrow batches (no I/O): typed conformance under declared
//! rules ([`conform`]), deduplication keeping the latest record per key
//! ([`latest_per_key`]) and derived fields ([`derive()`]).
//!
//! The counts reconcile by construction: for every entity, bronze rows = silver rows +
//! quarantined + dropped + duplicates removed.

pub mod conform;
pub mod entities;
pub mod parse;
pub mod scd2;
pub mod spill;
pub mod stage;

use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, UInt32Array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int64Type, Schema, TimestampMicrosecondType,
};
use chrono::NaiveDate;

use conform::{EntitySpec, SOURCE_FILE, SOURCE_LINE};

/// Keep the latest record of every key: the greatest by the spec's version column (nulls
/// first), then by ingestion order (source file, then line). Rows without a key are kept
/// (rules quarantine those before this step). Returns the kept rows, in key order, and the
/// number of rows removed (exact duplicates and superseded versions alike).
///
/// # Errors
/// A batch without the key or lineage columns of `spec`'s silver schema.
pub fn latest_per_key(spec: &EntitySpec, batch: &RecordBatch) -> Result<(RecordBatch, u64)> {
    let key = batch
        .column_by_name(spec.key)
        .with_context(|| format!("silver {} has no key column {}", spec.entity, spec.key))?
        .as_string::<i32>();
    let version = match spec.version_column {
        Some(c) => Some(
            batch
                .column_by_name(c)
                .with_context(|| format!("silver {} has no column {c}", spec.entity))?
                .as_primitive::<TimestampMicrosecondType>(),
        ),
        None => None,
    };
    let file = batch
        .column_by_name(SOURCE_FILE)
        .context("no _source_file column")?
        .as_string::<i32>();
    let line = batch
        .column_by_name(SOURCE_LINE)
        .context("no _source_line column")?
        .as_primitive::<Int64Type>();
    let opt = |valid: bool, v: i64| valid.then_some(v);
    let mut order: Vec<usize> = (0..batch.num_rows()).collect();
    order.sort_by(|&a, &b| {
        let k = |i: usize| key.is_valid(i).then(|| key.value(i));
        let v = |i: usize| version.and_then(|v| opt(v.is_valid(i), v.value(i)));
        let f = |i: usize| file.is_valid(i).then(|| file.value(i));
        let l = |i: usize| line.is_valid(i).then(|| line.value(i));
        (k(a), v(a), f(a), l(a), a).cmp(&(k(b), v(b), f(b), l(b), b))
    });
    let mut keep: Vec<u32> = Vec::with_capacity(order.len());
    for (n, &i) in order.iter().enumerate() {
        let next_same = order
            .get(n + 1)
            .is_some_and(|&j| key.is_valid(i) && key.is_valid(j) && key.value(i) == key.value(j));
        if !next_same {
            keep.push(u32::try_from(i).context("a batch over 4 billion rows")?);
        }
    }
    let removed = (batch.num_rows() - keep.len()) as u64;
    let kept = take_record_batch(batch, &UInt32Array::from(keep))?;
    Ok((kept, removed))
}

/// Days since 1970-01-01 of `as_of`.
fn epoch_days(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from(date.signed_duration_since(epoch).num_days()).unwrap_or(i32::MAX)
}

/// Add the entity's derived columns: `length_of_stay_days` for encounters (whole days from
/// admission to discharge, inpatient encounters only), `abnormal_flag` for lab results (`L`,
/// `H` or `N` against the reference range; null without a value or a range) and `is_active`
/// for medications (status active and no end date or one after `as_of`); then the
/// partition column of a partitioned entity (`encounter_month`, `result_month`: `YYYY-MM`).
/// Other entities are returned as they are.
///
/// # Errors
/// A batch without the columns of `spec`'s silver schema.
pub fn derive(spec: &EntitySpec, batch: &RecordBatch, as_of: NaiveDate) -> Result<RecordBatch> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("silver {} has no column {name}", spec.entity))
    };
    let (field, values): (Field, ArrayRef) = match spec.entity {
        "encounters" => {
            let kind = column("encounter_type")?.as_string::<i32>();
            let admit = column("admit_ts")?.as_primitive::<TimestampMicrosecondType>();
            let discharge = column("discharge_ts")?.as_primitive::<TimestampMicrosecondType>();
            let mut b = Int64Builder::new();
            const DAY_MICROS: i64 = 86_400_000_000;
            for i in 0..batch.num_rows() {
                let inpatient = kind.is_valid(i) && kind.value(i) == "inpatient";
                if inpatient && admit.is_valid(i) && discharge.is_valid(i) {
                    let days = discharge.value(i).div_euclid(DAY_MICROS)
                        - admit.value(i).div_euclid(DAY_MICROS);
                    b.append_value(days);
                } else {
                    b.append_null();
                }
            }
            (
                Field::new("length_of_stay_days", DataType::Int64, true),
                Arc::new(b.finish()),
            )
        }
        "lab_results" => {
            let value = column("value")?.as_primitive::<Float64Type>();
            let low = column("reference_low")?.as_primitive::<Float64Type>();
            let high = column("reference_high")?.as_primitive::<Float64Type>();
            let mut b = StringBuilder::new();
            for i in 0..batch.num_rows() {
                let v = value.is_valid(i).then(|| value.value(i));
                let lo = low.is_valid(i).then(|| low.value(i));
                let hi = high.is_valid(i).then(|| high.value(i));
                let flag = match (v, lo, hi) {
                    (None, _, _) | (Some(_), None, None) => None,
                    (Some(v), Some(lo), _) if v < lo => Some("L"),
                    (Some(v), _, Some(hi)) if v > hi => Some("H"),
                    _ => Some("N"),
                };
                b.append_option(flag);
            }
            (
                Field::new("abnormal_flag", DataType::Utf8, true),
                Arc::new(b.finish()),
            )
        }
        "medications" => {
            let status = column("status")?.as_string::<i32>();
            let end = column("end_date")?.as_primitive::<Date32Type>();
            let today = epoch_days(as_of);
            let mut b = BooleanBuilder::new();
            for i in 0..batch.num_rows() {
                let active = status.is_valid(i) && status.value(i) == "active";
                let open = !end.is_valid(i) || end.value(i) > today;
                b.append_value(active && open);
            }
            (
                Field::new("is_active", DataType::Boolean, false),
                Arc::new(b.finish()),
            )
        }
        _ => return with_partition_column(spec, batch.clone()),
    };
    with_partition_column(spec, with_column(batch, field, values)?)
}

/// `batch` with one more column.
fn with_column(batch: &RecordBatch, field: Field, values: ArrayRef) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(field);
    let mut columns = batch.columns().to_vec();
    columns.push(values);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Add the spec's partition column (`YYYY-MM` of its date column, null without a date).
fn with_partition_column(spec: &EntitySpec, batch: RecordBatch) -> Result<RecordBatch> {
    let Some((date, month)) = spec.partition_by else {
        return Ok(batch);
    };
    let days = batch
        .column_by_name(date)
        .with_context(|| format!("silver {} has no column {date}", spec.entity))?
        .as_primitive::<Date32Type>();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut b = StringBuilder::new();
    for i in 0..batch.num_rows() {
        let value = days
            .is_valid(i)
            .then(|| epoch.checked_add_signed(chrono::Duration::days(i64::from(days.value(i)))))
            .flatten()
            .map(|d| d.format("%Y-%m").to_string());
        b.append_option(value);
    }
    with_column(
        &batch,
        Field::new(month, DataType::Utf8, true),
        Arc::new(b.finish()),
    )
}

#[cfg(test)]
mod tests {
    use super::conform::{Action, conform, quarantine_schema};
    use super::entities::{ENCOUNTERS, LAB_RESULTS, MEDICATIONS, PATIENTS};
    use super::*;
    use arrow::array::StringArray;

    /// A bronze batch: every column text, lineage from `file` with lines 1.., batch `b1`.
    fn bronze(columns: &[(&str, Vec<Option<&str>>)], file: &str) -> RecordBatch {
        let rows = columns[0].1.len();
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (name, values) in columns {
            fields.push(Field::new(*name, DataType::Utf8, true));
            arrays.push(Arc::new(StringArray::from(values.clone())));
        }
        let lines: Vec<String> = (1..=rows).map(|l| l.to_string()).collect();
        for (name, values) in [
            (SOURCE_FILE, vec![file.to_owned(); rows]),
            (SOURCE_LINE, lines),
            (conform::BATCH_ID, vec!["b1".to_owned(); rows]),
        ] {
            fields.push(Field::new(name, DataType::Utf8, true));
            arrays.push(Arc::new(StringArray::from(values)));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    #[test]
    fn bad_rows_are_quarantined_with_every_failed_rule_and_counts_reconcile() {
        let batch = bronze(
            &[
                (
                    "encounter_id",
                    vec![Some("e1"), None, Some("e3"), Some("e4"), Some("e5")],
                ),
                (
                    "patient_id",
                    vec![Some("p1"), Some("p2"), Some("p3"), Some("p4"), Some("p5")],
                ),
                (
                    "encounter_date",
                    vec![
                        Some("2024-01-02"),
                        Some("2024-01-02"),
                        Some("2023-02-30"),
                        Some("2024-01-03"),
                        Some(" 2024-01-04 "),
                    ],
                ),
                (
                    "admit_ts",
                    vec![
                        Some("2024-01-02T08:00:00"),
                        None,
                        None,
                        Some("2024-01-03T10:00:00"),
                        Some("2024-01-04T09:00:00"),
                    ],
                ),
                (
                    "discharge_ts",
                    vec![
                        Some("2024-01-05T12:00:00"),
                        None,
                        None,
                        Some("2024-01-02T10:00:00"),
                        Some(""),
                    ],
                ),
                (
                    "encounter_type",
                    vec![
                        Some("Inpatient"),
                        Some("outpatient"),
                        Some("emergency"),
                        Some("inpatient"),
                        Some("telehealth"),
                    ],
                ),
            ],
            "encounters/part-00001.jsonl",
        );
        let out = conform(&ENCOUNTERS, &batch).unwrap();
        assert_eq!(out.rows.num_rows(), 1);
        assert_eq!(out.quarantine.num_rows(), 4);
        assert_eq!(out.quarantine.schema(), quarantine_schema());
        let rules = out.quarantine.column(1).as_string::<i32>();
        let got: Vec<&str> = (0..4).map(|i| rules.value(i)).collect();
        assert_eq!(
            got,
            [
                "id_not_null",
                "valid_encounter_date",
                "discharge_after_admit",
                "known_encounter_type"
            ]
        );
        let lines = out.quarantine.column(3).as_primitive::<Int64Type>();
        assert_eq!(lines.values().to_vec(), vec![2, 3, 4, 5]);
        assert_eq!(
            out.rows.num_rows() + out.quarantine.num_rows() + out.dropped as usize,
            batch.num_rows()
        );
        // The raw record is the whole bronze row; the error never carries it.
        assert!(
            out.quarantine
                .column(5)
                .as_string::<i32>()
                .value(1)
                .contains("2023-02-30")
        );
        let derived = derive(
            &ENCOUNTERS,
            &out.rows,
            NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        )
        .unwrap();
        let los = derived
            .column_by_name("length_of_stay_days")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(los.value(0), 3);
        let kind = derived
            .column_by_name("encounter_type")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(kind.value(0), "inpatient");
    }

    #[test]
    fn a_fail_rule_stops_with_file_and_line_but_no_value() {
        let mut spec = ENCOUNTERS;
        let rules: &'static [conform::Rule] = Box::leak(
            spec.rules
                .iter()
                .map(|r| conform::Rule {
                    action: if r.name == "id_not_null" {
                        Action::Fail
                    } else {
                        r.action
                    },
                    ..*r
                })
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        spec.rules = rules;
        let batch = bronze(
            &[
                ("encounter_id", vec![Some("e1"), None]),
                ("patient_id", vec![Some("SECRET"), Some("SECRET")]),
            ],
            "encounters/a.json",
        );
        let err = conform(&spec, &batch).unwrap_err().to_string();
        assert!(
            err.contains("encounters/a.json:2") && err.contains("id_not_null"),
            "{err}"
        );
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn latest_record_per_key_wins() {
        let batch = bronze(
            &[
                (
                    "patient_id",
                    vec![Some("p1"), Some("p1"), Some("p2"), Some("p1"), Some("p2")],
                ),
                (
                    "updated_at",
                    vec![
                        Some("2024-01-02T00:00:00"),
                        Some("2024-03-01T00:00:00"),
                        Some("2024-01-01T00:00:00"),
                        Some("2024-02-01T00:00:00"),
                        Some("2024-01-01T00:00:00"),
                    ],
                ),
                (
                    "city",
                    vec![
                        Some("a"),
                        Some("newest"),
                        Some("x"),
                        Some("late but older"),
                        Some("x"),
                    ],
                ),
                (
                    "op",
                    vec![Some("I"), Some("U"), Some("I"), Some("U"), Some("I")],
                ),
            ],
            "patients/part-1.jsonl",
        );
        let out = conform(&PATIENTS, &batch).unwrap();
        let (kept, removed) = latest_per_key(&PATIENTS, &out.rows).unwrap();
        assert_eq!((kept.num_rows(), removed), (2, 3));
        let city = kept.column_by_name("city").unwrap().as_string::<i32>();
        assert_eq!((city.value(0), city.value(1)), ("newest", "x"));
    }

    #[test]
    fn lab_flags_and_active_medications() {
        let labs = bronze(
            &[
                (
                    "lab_result_id",
                    vec![Some("l1"), Some("l2"), Some("l3"), Some("l4"), Some("l5")],
                ),
                ("patient_id", vec![Some("p"); 5]),
                (
                    "loinc_code",
                    vec![
                        Some("2345-7"),
                        Some("2345-7"),
                        Some("2345-7"),
                        Some("2345-7"),
                        Some("2345-7"),
                    ],
                ),
                (
                    "value",
                    vec![Some("50"), Some("150"), Some("99"), None, Some("N/A")],
                ),
                ("reference_low", vec![Some("70"); 5]),
                ("reference_high", vec![Some("100"); 5]),
                ("result_date", vec![Some("2024-01-01"); 5]),
            ],
            "lab_results.json",
        );
        let out = conform(&LAB_RESULTS, &labs).unwrap();
        assert_eq!((out.rows.num_rows(), out.quarantine.num_rows()), (4, 1));
        let present = out
            .failures
            .iter()
            .find(|(n, _)| *n == "value_present")
            .unwrap();
        assert_eq!(present.1, 1, "a missing value is counted, the row kept");
        let derived = derive(
            &LAB_RESULTS,
            &out.rows,
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        )
        .unwrap();
        let flag = derived
            .column_by_name("abnormal_flag")
            .unwrap()
            .as_string::<i32>();
        let got: Vec<Option<&str>> = (0..4)
            .map(|i| flag.is_valid(i).then(|| flag.value(i)))
            .collect();
        assert_eq!(got, [Some("L"), Some("H"), Some("N"), None]);

        let meds = bronze(
            &[
                (
                    "medication_id",
                    vec![Some("m1"), Some("m2"), Some("m3"), Some("m4")],
                ),
                ("patient_id", vec![Some("p"); 4]),
                ("start_date", vec![Some("2024-01-01"); 4]),
                (
                    "end_date",
                    vec![None, Some("2024-12-31"), Some("2024-03-01"), None],
                ),
                (
                    "status",
                    vec![
                        Some("active"),
                        Some("Active"),
                        Some("active"),
                        Some("completed"),
                    ],
                ),
            ],
            "medications.json",
        );
        let out = conform(&MEDICATIONS, &meds).unwrap();
        let derived = derive(
            &MEDICATIONS,
            &out.rows,
            NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        )
        .unwrap();
        let active = derived.column_by_name("is_active").unwrap().as_boolean();
        assert_eq!(
            (0..4).map(|i| active.value(i)).collect::<Vec<_>>(),
            [true, true, false, false]
        );
    }
}
