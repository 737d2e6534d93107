//! SCD Type 2 history of patients (`silver.patients_scd`), as a pure function of every
//! conformed patient record seen so far.
//!
//! A patient's records are ordered by `updated_at`, then by ingestion order (source file,
//! line), so a late-arriving update lands at its place in history however late it came.
//! A record whose tracked columns (address and insurance) differ from the version before it
//! opens a new version (`valid_from` = its `updated_at`); one that changes only other
//! columns (a phone number, a corrected name) updates the open version in place (Type 1),
//! and an exact repeat changes nothing. `valid_to` is the next version's `valid_from`, and
//! exactly one version per patient, the last, is current. `row_hash` is a stable FNV-1a hash
//! of the tracked columns.

use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt32Array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};

use super::conform::{SOURCE_FILE, SOURCE_LINE};

/// The columns whose change opens a new version.
pub const TRACKED: [&str; 7] = [
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zip",
    "insurance",
    "insurance_member_id",
];

/// The history and how many records it absorbed without a new version.
#[derive(Debug)]
pub struct History {
    /// The versions: the patient columns of each version's latest record, then `row_hash`,
    /// `valid_from`, `valid_to`, `is_current`.
    pub rows: RecordBatch,
    /// Records that opened no version (Type 1 updates and exact repeats).
    pub absorbed: u64,
}

/// FNV-1a over the tracked values (a 0xff byte ends each value; null is a lone 0xfe).
fn row_hash(columns: &[&StringArray], row: usize) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    for c in columns {
        if c.is_valid(row) {
            c.value(row).bytes().for_each(&mut eat);
            eat(0xff);
        } else {
            eat(0xfe);
        }
    }
    format!("{hash:016x}")
}

/// The schema of `silver.patients_scd` for a conformed patients schema.
pub fn scd_schema(patients: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = patients
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("row_hash", DataType::Utf8, false));
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    fields.push(Field::new("valid_from", ts.clone(), false));
    fields.push(Field::new("valid_to", ts, true));
    fields.push(Field::new("is_current", DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// Build the history of every patient in `records` (conformed patient rows with a
/// `patient_id` and an `updated_at`; rules quarantine rows without them).
///
/// # Errors
/// A batch without the patients' silver columns, or with a null key or `updated_at`.
pub fn history(records: &RecordBatch) -> Result<History> {
    let column = |name: &str| {
        records
            .column_by_name(name)
            .with_context(|| format!("patients have no column {name}"))
    };
    let id = column("patient_id")?.as_string::<i32>();
    let updated = column("updated_at")?.as_primitive::<TimestampMicrosecondType>();
    let file = column(SOURCE_FILE)?.as_string::<i32>();
    let line = column(SOURCE_LINE)?.as_primitive::<Int64Type>();
    if id.null_count() > 0 || updated.null_count() > 0 {
        anyhow::bail!("patients_scd needs a patient_id and an updated_at on every record");
    }
    let tracked: Vec<&StringArray> = TRACKED
        .iter()
        .map(|c| Ok(column(c)?.as_string::<i32>()))
        .collect::<Result<_>>()?;
    let mut order: Vec<usize> = (0..records.num_rows()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| {
            (
                id.value(i),
                updated.value(i),
                file.is_valid(i).then(|| file.value(i)),
                line.is_valid(i).then(|| line.value(i)),
                i,
            )
        };
        key(a).cmp(&key(b))
    });
    // Versions: (representative row = the run's latest record, valid_from, hash).
    let mut versions: Vec<(usize, i64, String)> = Vec::new();
    let mut patient_of_version: Vec<usize> = Vec::new();
    let mut absorbed = 0u64;
    for (n, &i) in order.iter().enumerate() {
        let hash = row_hash(&tracked, i);
        let same_patient = n > 0 && id.value(order[n - 1]) == id.value(i);
        match versions.last_mut() {
            Some((rep, _, h)) if same_patient && *h == hash => {
                *rep = i;
                absorbed += 1;
            }
            _ => {
                versions.push((i, updated.value(i), hash));
                patient_of_version.push(i);
            }
        }
    }
    let reps: Vec<u32> = versions
        .iter()
        .map(|(r, _, _)| u32::try_from(*r).context("over 4 billion patient records"))
        .collect::<Result<_>>()?;
    let base = take_record_batch(records, &UInt32Array::from(reps))?;
    let mut valid_to = Vec::with_capacity(versions.len());
    let mut current = Vec::with_capacity(versions.len());
    for (v, &first) in patient_of_version.iter().enumerate() {
        let next = patient_of_version
            .get(v + 1)
            .filter(|&&n| id.value(n) == id.value(first))
            .map(|_| versions[v + 1].1);
        valid_to.push(next);
        current.push(next.is_none());
    }
    let mut columns: Vec<ArrayRef> = base.columns().to_vec();
    columns.push(Arc::new(StringArray::from_iter_values(
        versions.iter().map(|(_, _, h)| h.as_str()),
    )));
    columns.push(Arc::new(TimestampMicrosecondArray::from(
        versions.iter().map(|(_, f, _)| *f).collect::<Vec<_>>(),
    )));
    columns.push(Arc::new(TimestampMicrosecondArray::from(valid_to)));
    columns.push(Arc::new(BooleanArray::from(current)));
    let rows = RecordBatch::try_new(scd_schema(&records.schema()), columns)?;
    Ok(History { rows, absorbed })
}

#[cfg(test)]
mod tests {
    use super::super::conform::conform;
    use super::super::entities::PATIENTS;
    use super::*;

    type Input = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    fn records(rows: &[Input]) -> RecordBatch {
        // (patient_id, updated_at, city, insurance, phone), one file, lines in order.
        let text = |f: fn(&Input) -> &'static str| -> ArrayRef {
            Arc::new(StringArray::from(
                rows.iter().map(|r| Some(f(r))).collect::<Vec<_>>(),
            ))
        };
        let n = rows.len();
        let fields = [
            "patient_id",
            "updated_at",
            "city",
            "insurance",
            "phone",
            "op",
            SOURCE_FILE,
            SOURCE_LINE,
        ];
        let columns: Vec<ArrayRef> = vec![
            text(|r| r.0),
            text(|r| r.1),
            text(|r| r.2),
            text(|r| r.3),
            text(|r| r.4),
            Arc::new(StringArray::from(vec!["U"; n])),
            Arc::new(StringArray::from(vec!["patients/part-1.jsonl"; n])),
            Arc::new(StringArray::from(
                (1..=n).map(|l| l.to_string()).collect::<Vec<_>>(),
            )),
        ];
        let schema = Schema::new(
            fields
                .iter()
                .map(|f| Field::new(*f, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let bronze = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
        conform(&PATIENTS, &bronze).unwrap().rows
    }

    #[test]
    fn versions_open_on_tracked_changes_and_late_updates_land_in_place() {
        let batch = records(&[
            ("p1", "2024-01-01T00:00:00", "Austin", "Aetna", "111"),
            ("p1", "2024-03-01T00:00:00", "Dallas", "Aetna", "111"),
            // Arrives late, but happened between the two: a new version in the middle.
            ("p1", "2024-02-01T00:00:00", "Austin", "Cigna", "111"),
            // Only the phone changes: the open version is updated in place.
            ("p1", "2024-04-01T00:00:00", "Dallas", "Aetna", "222"),
            // An exact repeat.
            ("p1", "2024-04-01T00:00:00", "Dallas", "Aetna", "222"),
            ("p2", "2024-01-05T00:00:00", "Waco", "Medicare", "333"),
        ]);
        let h = history(&batch).unwrap();
        assert_eq!((h.rows.num_rows(), h.absorbed), (4, 2));
        let city = h.rows.column_by_name("city").unwrap().as_string::<i32>();
        let phone = h.rows.column_by_name("phone").unwrap().as_string::<i32>();
        let current = h.rows.column_by_name("is_current").unwrap().as_boolean();
        let from = h
            .rows
            .column_by_name("valid_from")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let to = h
            .rows
            .column_by_name("valid_to")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let got: Vec<(&str, bool)> = (0..4).map(|i| (city.value(i), current.value(i))).collect();
        assert_eq!(
            got,
            [
                ("Austin", false),
                ("Austin", false),
                ("Dallas", true),
                ("Waco", true)
            ]
        );
        assert_eq!(
            phone.value(2),
            "222",
            "a Type 1 change updates the open version"
        );
        // Intervals chain without gaps or overlaps; the current one is open.
        assert_eq!(to.value(0), from.value(1));
        assert_eq!(to.value(1), from.value(2));
        assert!(to.is_null(2) && to.is_null(3));
        let hash = h
            .rows
            .column_by_name("row_hash")
            .unwrap()
            .as_string::<i32>();
        assert_ne!(hash.value(0), hash.value(1));
        assert_eq!(hash.value(0).len(), 16);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the arrival order: one current version per patient, intervals that chain
        /// without gaps or overlaps, a new version exactly where the tracked values change
        /// in time order, and every record accounted for.
        #[test]
        fn history_invariants(
            raw in proptest::collection::vec((0u8..4, 0u8..20, 0u8..3, 0u8..2, 0u8..2), 1..40)
        ) {
            const IDS: [&str; 4] = ["p0", "p1", "p2", "p3"];
            const CITIES: [&str; 3] = ["Austin", "Dallas", "Waco"];
            const PLANS: [&str; 2] = ["Aetna", "Cigna"];
            const PHONES: [&str; 2] = ["111", "222"];
            let days: Vec<String> = (0..20).map(|d| format!("2024-01-{:02}T00:00:00", d + 1)).collect();
            let days: &'static [String] = Box::leak(days.into_boxed_slice());
            let rows: Vec<Input> = raw
                .iter()
                .map(|(p, d, c, i, ph)| {
                    (IDS[*p as usize], days[*d as usize].as_str(), CITIES[*c as usize], PLANS[*i as usize], PHONES[*ph as usize])
                })
                .collect();
            let batch = records(&rows);
            let h = history(&batch).unwrap();
            proptest::prop_assert_eq!(h.rows.num_rows() as u64 + h.absorbed, rows.len() as u64);
            let id = h.rows.column_by_name("patient_id").unwrap().as_string::<i32>();
            let from = h.rows.column_by_name("valid_from").unwrap().as_primitive::<TimestampMicrosecondType>();
            let to = h.rows.column_by_name("valid_to").unwrap().as_primitive::<TimestampMicrosecondType>();
            let current = h.rows.column_by_name("is_current").unwrap().as_boolean();
            for p in IDS {
                let versions: Vec<usize> = (0..h.rows.num_rows()).filter(|&i| id.value(i) == p).collect();
                let mut model: Vec<&Input> = rows.iter().filter(|r| r.0 == p).collect();
                model.sort_by_key(|r| r.1);
                let mut changes = 0;
                let mut last: Option<(&str, &str)> = None;
                for r in &model {
                    if last != Some((r.2, r.3)) {
                        changes += 1;
                        last = Some((r.2, r.3));
                    }
                }
                proptest::prop_assert_eq!(versions.len(), changes, "{}", p);
                if versions.is_empty() {
                    continue;
                }
                proptest::prop_assert_eq!(versions.iter().filter(|&&i| current.value(i)).count(), 1);
                for w in versions.windows(2) {
                    proptest::prop_assert!(from.value(w[0]) <= from.value(w[1]));
                    proptest::prop_assert_eq!(to.value(w[0]), from.value(w[1]));
                }
                let last = *versions.last().unwrap();
                proptest::prop_assert!(current.value(last) && to.is_null(last));
            }
        }
    }
}
