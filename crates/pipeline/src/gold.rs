//! The gold layer's aggregations, as pure functions from silver batches to one gold batch.
//!
//! * `disease_prevalence_daily`: per day and ICD-10 code, the diagnoses made, the distinct
//!   patients diagnosed that day, and the cumulative distinct patients with the code so far.
//! * `lab_abnormal_trends`: per day and LOINC code, the results, the high and low ones, their
//!   rates, and the abnormal rate over the 7 calendar days ending that day.
//!
//! Rows come out ordered by day, then code. Rows without a day or a code are left out (silver
//! rules quarantine them before).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Date32Type, Field, Schema};

fn column<'a>(batch: &'a RecordBatch, name: &str, table: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .with_context(|| format!("{table} has no column {name}"))
}

/// `gold.disease_prevalence_daily` from `silver.diagnoses_clean`.
///
/// # Errors
/// A batch without `diagnosis_date`, `icd10_code` or `patient_id`.
pub fn disease_prevalence_daily(diagnoses: &[RecordBatch]) -> Result<RecordBatch> {
    // (day, code) -> (diagnoses, patients that day)
    let mut days: BTreeMap<(i32, String), (u64, HashSet<String>)> = BTreeMap::new();
    for batch in diagnoses {
        let day = column(batch, "diagnosis_date", "diagnoses")?.as_primitive::<Date32Type>();
        let code = column(batch, "icd10_code", "diagnoses")?.as_string::<i32>();
        let patient = column(batch, "patient_id", "diagnoses")?.as_string::<i32>();
        for i in 0..batch.num_rows() {
            if day.is_null(i) || code.is_null(i) {
                continue;
            }
            let entry = days
                .entry((day.value(i), code.value(i).to_owned()))
                .or_default();
            entry.0 += 1;
            if patient.is_valid(i) {
                entry.1.insert(patient.value(i).to_owned());
            }
        }
    }
    let mut seen: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let (mut d, mut c, mut n, mut p, mut cum) = (vec![], vec![], vec![], vec![], vec![]);
    for ((day, code), (count, patients)) in days {
        let so_far = seen.entry(code.clone()).or_default();
        so_far.extend(patients.iter().cloned());
        d.push(day);
        n.push(count);
        p.push(patients.len() as u64);
        cum.push(so_far.len() as u64);
        c.push(code);
    }
    let schema = Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("icd10_code", DataType::Utf8, false),
        Field::new("new_diagnoses", DataType::UInt64, false),
        Field::new("distinct_patients", DataType::UInt64, false),
        Field::new("cumulative_patients", DataType::UInt64, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Date32Array::from(d)),
            Arc::new(StringArray::from(c)),
            Arc::new(UInt64Array::from(n)),
            Arc::new(UInt64Array::from(p)),
            Arc::new(UInt64Array::from(cum)),
        ],
    )?)
}

/// `gold.lab_abnormal_trends` from `silver.lab_results_clean` (with its `abnormal_flag`).
///
/// # Errors
/// A batch without `result_date`, `loinc_code` or `abnormal_flag`.
pub fn lab_abnormal_trends(labs: &[RecordBatch]) -> Result<RecordBatch> {
    // (code, day) -> (results, high, low)
    let mut counts: BTreeMap<(String, i32), (u64, u64, u64)> = BTreeMap::new();
    for batch in labs {
        let day = column(batch, "result_date", "lab results")?.as_primitive::<Date32Type>();
        let code = column(batch, "loinc_code", "lab results")?.as_string::<i32>();
        let flag = column(batch, "abnormal_flag", "lab results")?.as_string::<i32>();
        for i in 0..batch.num_rows() {
            if day.is_null(i) || code.is_null(i) {
                continue;
            }
            let entry = counts
                .entry((code.value(i).to_owned(), day.value(i)))
                .or_default();
            entry.0 += 1;
            match flag.is_valid(i).then(|| flag.value(i)) {
                Some("H") => entry.1 += 1,
                Some("L") => entry.2 += 1,
                _ => {}
            }
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate of row counts")]
    let rate = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    // Rolling 7 days per code: the window (day - 6 ..= day) over this code's days.
    let mut rows: BTreeSet<(i32, String)> = BTreeSet::new();
    for (code, day) in counts.keys() {
        rows.insert((*day, code.clone()));
    }
    let (mut d, mut c, mut results, mut high, mut low) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut high_rate, mut low_rate, mut rolling) = (vec![], vec![], vec![]);
    for (day, code) in rows {
        let (n, h, l) = counts[&(code.clone(), day)];
        let window = counts.range((code.clone(), day - 6)..=(code.clone(), day));
        let (wn, wa) = window.fold((0u64, 0u64), |(wn, wa), (_, (n, h, l))| {
            (wn + n, wa + h + l)
        });
        d.push(day);
        results.push(n);
        high.push(h);
        low.push(l);
        high_rate.push(rate(h, n));
        low_rate.push(rate(l, n));
        rolling.push(rate(wa, wn));
        c.push(code);
    }
    let schema = Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("loinc_code", DataType::Utf8, false),
        Field::new("results", DataType::UInt64, false),
        Field::new("abnormal_high", DataType::UInt64, false),
        Field::new("abnormal_low", DataType::UInt64, false),
        Field::new("high_rate", DataType::Float64, false),
        Field::new("low_rate", DataType::Float64, false),
        Field::new("abnormal_rate_7d", DataType::Float64, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Date32Array::from(d)),
            Arc::new(StringArray::from(c)),
            Arc::new(UInt64Array::from(results)),
            Arc::new(UInt64Array::from(high)),
            Arc::new(UInt64Array::from(low)),
            Arc::new(Float64Array::from(high_rate)),
            Arc::new(Float64Array::from(low_rate)),
            Arc::new(Float64Array::from(rolling)),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn diagnoses(rows: &[(i32, u8, u8)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("diagnosis_date", DataType::Date32, true),
            Field::new("icd10_code", DataType::Utf8, true),
            Field::new("patient_id", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Date32Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| format!("E1{}.9", r.1))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| format!("p{}", r.2)).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn labs(rows: &[(i32, u8, u8)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("result_date", DataType::Date32, true),
            Field::new("loinc_code", DataType::Utf8, true),
            Field::new("abnormal_flag", DataType::Utf8, true),
        ]);
        let flag = |f: u8| ["H", "L", "N"].get(usize::from(f)).copied();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Date32Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| format!("{}-1", r.1))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| flag(r.2)).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    proptest! {
        /// Each gold row equals a naive recomputation over all silver rows.
        #[test]
        fn prevalence_equals_naive_recomputation(
            rows in prop::collection::vec((0i32..15, 0u8..3, 0u8..6), 0..60),
        ) {
            let gold = disease_prevalence_daily(&[diagnoses(&rows)]).unwrap();
            let day = gold.column(0).as_primitive::<Date32Type>();
            let code = gold.column(1).as_string::<i32>();
            let cols: Vec<&UInt64Array> = (2..5).map(|i| gold.column(i).as_primitive()).collect();
            let mut expected_rows = BTreeSet::new();
            for r in &rows {
                expected_rows.insert((r.0, r.1));
            }
            prop_assert_eq!(gold.num_rows(), expected_rows.len());
            for i in 0..gold.num_rows() {
                let (d, c) = (day.value(i), code.value(i));
                let matches = |r: &&(i32, u8, u8)| format!("E1{}.9", r.1) == c;
                let on_day: Vec<_> = rows.iter().filter(matches).filter(|r| r.0 == d).collect();
                let patients: HashSet<u8> = on_day.iter().map(|r| r.2).collect();
                let cumulative: HashSet<u8> =
                    rows.iter().filter(matches).filter(|r| r.0 <= d).map(|r| r.2).collect();
                prop_assert_eq!(cols[0].value(i), on_day.len() as u64);
                prop_assert_eq!(cols[1].value(i), patients.len() as u64);
                prop_assert_eq!(cols[2].value(i), cumulative.len() as u64);
            }
        }

        #[test]
        fn lab_trends_equal_naive_recomputation(
            rows in prop::collection::vec((0i32..20, 0u8..3, 0u8..4), 0..80),
        ) {
            let gold = lab_abnormal_trends(&[labs(&rows)]).unwrap();
            let day = gold.column(0).as_primitive::<Date32Type>();
            let code = gold.column(1).as_string::<i32>();
            for i in 0..gold.num_rows() {
                let (d, c) = (day.value(i), code.value(i));
                let of_code: Vec<_> = rows.iter().filter(|r| format!("{}-1", r.1) == c).collect();
                let today: Vec<_> = of_code.iter().filter(|r| r.0 == d).collect();
                let high = today.iter().filter(|r| r.2 == 0).count() as u64;
                let low = today.iter().filter(|r| r.2 == 1).count() as u64;
                let window: Vec<_> = of_code.iter().filter(|r| r.0 <= d && r.0 > d - 7).collect();
                let abnormal = window.iter().filter(|r| r.2 < 2).count();
                prop_assert_eq!(gold.column(2).as_primitive::<arrow::datatypes::UInt64Type>().value(i), today.len() as u64);
                prop_assert_eq!(gold.column(3).as_primitive::<arrow::datatypes::UInt64Type>().value(i), high);
                prop_assert_eq!(gold.column(4).as_primitive::<arrow::datatypes::UInt64Type>().value(i), low);
                let rolling = gold.column(7).as_primitive::<arrow::datatypes::Float64Type>().value(i);
                prop_assert!((rolling - abnormal as f64 / window.len() as f64).abs() < 1e-12);
            }
        }
    }
}
