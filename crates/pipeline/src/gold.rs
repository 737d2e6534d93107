//! The gold layer's aggregations: one accumulator per gold table, fed silver batches as a
//! scan streams them ([`GoldTable::add`]), then turned into the gold batch
//! ([`GoldTable::finish`]). The state held is the aggregate (per day and code, per patient,
//! per inpatient stay), never the silver rows.
//!
//! * `disease_prevalence_daily`: per day and ICD-10 code, the diagnoses made, the distinct
//!   patients diagnosed that day, and the cumulative distinct patients with the code so far.
//! * `lab_abnormal_trends`: per day and LOINC code, the results, the high and low ones, their
//!   rates, and the abnormal rate over the 7 calendar days ending that day.
//! * `hospital_utilization_metrics`: per facility, department and day, inpatient admissions
//!   and discharges, emergency visits, the average and median length of stay of the inpatient
//!   stays admitted that day, and 30-day readmissions (an inpatient admission within 30 days
//!   after the same patient's previous inpatient discharge, at any facility).
//! * `patient_clinical_summary`: per current patient (SCD2 `is_current`), demographics, age
//!   at the as-of date, encounters, last visit, inpatient days, active medications, distinct
//!   chronic diagnoses ([`CHRONIC_ICD10_PREFIXES`]), abnormal lab results, last lab date.
//!
//! Rows come out ordered by their keys. Rows without a day or a code are left out (silver
//! rules quarantine them before).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema, TimestampMicrosecondType};

/// Row counts as Delta's `long` (Delta has no unsigned types).
fn as_long(values: Vec<u64>) -> Int64Array {
    values
        .into_iter()
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
        .collect()
}

fn column<'a>(batch: &'a RecordBatch, name: &str, table: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .with_context(|| format!("{table} has no column {name}"))
}

/// The value at `i` of a string column, owned.
fn text(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_owned())
}

/// A gold table being computed from the silver batches of its inputs.
pub trait GoldTable {
    /// The silver tables read and, for each, the columns used.
    fn inputs(&self) -> &'static [(&'static str, &'static [&'static str])];

    /// Fold in one batch of the silver table `input` (one of [`GoldTable::inputs`]).
    ///
    /// # Errors
    /// A batch without a column this table reads.
    fn add(&mut self, input: &str, batch: &RecordBatch) -> Result<()>;

    /// The gold rows.
    ///
    /// # Errors
    /// Arrow errors building the batch.
    fn finish(self: Box<Self>) -> Result<RecordBatch>;
}

/// Feed `batches` of the single input of `table` and finish it.
fn fold(mut table: Box<dyn GoldTable>, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let input = table.inputs()[0].0;
    for batch in batches {
        table.add(input, batch)?;
    }
    table.finish()
}

/// `gold.disease_prevalence_daily` from `silver.diagnoses_clean`.
///
/// # Errors
/// A batch without `diagnosis_date`, `icd10_code` or `patient_id`.
pub fn disease_prevalence_daily(diagnoses: &[RecordBatch]) -> Result<RecordBatch> {
    fold(Box::new(Prevalence::default()), diagnoses)
}

/// The accumulator of `gold.disease_prevalence_daily`.
#[derive(Debug, Default)]
pub struct Prevalence {
    /// (day, code) -> (diagnoses, patients that day)
    days: BTreeMap<(i32, String), (u64, HashSet<String>)>,
}

impl GoldTable for Prevalence {
    fn inputs(&self) -> &'static [(&'static str, &'static [&'static str])] {
        &[(
            "diagnoses_clean",
            &["diagnosis_date", "icd10_code", "patient_id"],
        )]
    }

    fn add(&mut self, _input: &str, batch: &RecordBatch) -> Result<()> {
        let day = column(batch, "diagnosis_date", "diagnoses")?.as_primitive::<Date32Type>();
        let code = column(batch, "icd10_code", "diagnoses")?.as_string::<i32>();
        let patient = column(batch, "patient_id", "diagnoses")?.as_string::<i32>();
        for i in 0..batch.num_rows() {
            if day.is_null(i) || code.is_null(i) {
                continue;
            }
            let entry = self
                .days
                .entry((day.value(i), code.value(i).to_owned()))
                .or_default();
            entry.0 += 1;
            if patient.is_valid(i) {
                entry.1.insert(patient.value(i).to_owned());
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<RecordBatch> {
        let mut seen: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        let (mut d, mut c, mut n, mut p, mut cum) = (vec![], vec![], vec![], vec![], vec![]);
        for ((day, code), (count, patients)) in self.days {
            let so_far = seen.entry(code.clone()).or_default();
            p.push(patients.len() as u64);
            so_far.extend(patients);
            d.push(day);
            n.push(count);
            cum.push(so_far.len() as u64);
            c.push(code);
        }
        let schema = Schema::new(vec![
            Field::new("day", DataType::Date32, false),
            Field::new("icd10_code", DataType::Utf8, false),
            Field::new("new_diagnoses", DataType::Int64, false),
            Field::new("distinct_patients", DataType::Int64, false),
            Field::new("cumulative_patients", DataType::Int64, false),
        ]);
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Date32Array::from(d)),
                Arc::new(StringArray::from(c)),
                Arc::new(as_long(n)),
                Arc::new(as_long(p)),
                Arc::new(as_long(cum)),
            ],
        )?)
    }
}

/// `gold.lab_abnormal_trends` from `silver.lab_results_clean` (with its `abnormal_flag`).
///
/// # Errors
/// A batch without `result_date`, `loinc_code` or `abnormal_flag`.
pub fn lab_abnormal_trends(labs: &[RecordBatch]) -> Result<RecordBatch> {
    fold(Box::new(LabTrends::default()), labs)
}

/// The accumulator of `gold.lab_abnormal_trends`.
#[derive(Debug, Default)]
pub struct LabTrends {
    /// (code, day) -> (results, high, low)
    counts: BTreeMap<(String, i32), (u64, u64, u64)>,
}

impl GoldTable for LabTrends {
    fn inputs(&self) -> &'static [(&'static str, &'static [&'static str])] {
        &[(
            "lab_results_clean",
            &["result_date", "loinc_code", "abnormal_flag"],
        )]
    }

    fn add(&mut self, _input: &str, batch: &RecordBatch) -> Result<()> {
        let day = column(batch, "result_date", "lab results")?.as_primitive::<Date32Type>();
        let code = column(batch, "loinc_code", "lab results")?.as_string::<i32>();
        let flag = column(batch, "abnormal_flag", "lab results")?.as_string::<i32>();
        for i in 0..batch.num_rows() {
            if day.is_null(i) || code.is_null(i) {
                continue;
            }
            let entry = self
                .counts
                .entry((code.value(i).to_owned(), day.value(i)))
                .or_default();
            entry.0 += 1;
            match flag.is_valid(i).then(|| flag.value(i)) {
                Some("H") => entry.1 += 1,
                Some("L") => entry.2 += 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<RecordBatch> {
        let counts = self.counts;
        #[allow(clippy::cast_precision_loss, reason = "a rate of row counts")]
        let rate = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 / whole as f64
            }
        };
        // Rolling 7 days per code: the window (day - 6 ..= day) over this code's days.
        let rows: BTreeSet<(i32, String)> = counts
            .keys()
            .map(|(code, day)| (*day, code.clone()))
            .collect();
        let (mut d, mut c, mut results, mut high, mut low) =
            (vec![], vec![], vec![], vec![], vec![]);
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
            Field::new("results", DataType::Int64, false),
            Field::new("abnormal_high", DataType::Int64, false),
            Field::new("abnormal_low", DataType::Int64, false),
            Field::new("high_rate", DataType::Float64, false),
            Field::new("low_rate", DataType::Float64, false),
            Field::new("abnormal_rate_7d", DataType::Float64, false),
        ]);
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Date32Array::from(d)),
                Arc::new(StringArray::from(c)),
                Arc::new(as_long(results)),
                Arc::new(as_long(high)),
                Arc::new(as_long(low)),
                Arc::new(Float64Array::from(high_rate)),
                Arc::new(Float64Array::from(low_rate)),
                Arc::new(Float64Array::from(rolling)),
            ],
        )?)
    }
}

/// ICD-10 categories counted as chronic conditions: diabetes (E10, E11), hyperlipidaemia
/// (E78), obesity (E66), hypertension (I10-I13), ischaemic heart disease (I25), heart failure
/// (I50), atrial fibrillation (I48), COPD (J44), asthma (J45), chronic kidney disease (N18),
/// depression (F32, F33), hypothyroidism (E03), osteoarthritis (M17), rheumatoid arthritis (M06).
pub const CHRONIC_ICD10_PREFIXES: &[&str] = &[
    "E10", "E11", "E78", "E66", "I10", "I11", "I12", "I13", "I25", "I50", "I48", "J44", "J45",
    "N18", "F32", "F33", "E03", "M17", "M06",
];

const DAY_MICROS: i64 = 86_400_000_000;

/// `gold.hospital_utilization_metrics` from `silver.encounters_clean` (with its
/// `length_of_stay_days`).
///
/// # Errors
/// A batch without the encounters' silver columns.
pub fn hospital_utilization_metrics(encounters: &[RecordBatch]) -> Result<RecordBatch> {
    fold(Box::new(Utilization::default()), encounters)
}

/// Counts of one facility, department and day.
#[derive(Debug, Default)]
struct Day {
    admissions: u64,
    discharges: u64,
    emergency: u64,
    stays: Vec<i64>,
    readmissions: u64,
}

/// The accumulator of `gold.hospital_utilization_metrics`.
#[derive(Debug, Default)]
pub struct Utilization {
    /// Inpatient stays per patient: (admit micros, discharge micros).
    stays: BTreeMap<String, Vec<(i64, Option<i64>)>>,
    days: BTreeMap<(String, String, i32), Day>,
    /// Inpatient admissions: (facility, department, day, patient, admit micros).
    admissions: Vec<(String, String, i32, String, i64)>,
}

impl GoldTable for Utilization {
    fn inputs(&self) -> &'static [(&'static str, &'static [&'static str])] {
        &[(
            "encounters_clean",
            &[
                "patient_id",
                "facility",
                "department",
                "encounter_type",
                "encounter_date",
                "admit_ts",
                "discharge_ts",
                "length_of_stay_days",
            ],
        )]
    }

    fn add(&mut self, _input: &str, batch: &RecordBatch) -> Result<()> {
        let t = "encounters";
        let patient = column(batch, "patient_id", t)?.as_string::<i32>();
        let facility = column(batch, "facility", t)?.as_string::<i32>();
        let department = column(batch, "department", t)?.as_string::<i32>();
        let kind = column(batch, "encounter_type", t)?.as_string::<i32>();
        let date = column(batch, "encounter_date", t)?.as_primitive::<Date32Type>();
        let admit = column(batch, "admit_ts", t)?.as_primitive::<TimestampMicrosecondType>();
        let discharge =
            column(batch, "discharge_ts", t)?.as_primitive::<TimestampMicrosecondType>();
        let los = column(batch, "length_of_stay_days", t)?.as_primitive::<Int64Type>();
        let day_of = |micros: i64| i32::try_from(micros.div_euclid(DAY_MICROS)).ok();
        for i in 0..batch.num_rows() {
            let f = text(facility, i).unwrap_or_default();
            let d = text(department, i).unwrap_or_default();
            match kind.is_valid(i).then(|| kind.value(i)) {
                Some("emergency") if date.is_valid(i) => {
                    self.days
                        .entry((f, d, date.value(i)))
                        .or_default()
                        .emergency += 1;
                }
                Some("inpatient") => {
                    let admitted = admit.is_valid(i).then(|| admit.value(i));
                    let discharged = discharge.is_valid(i).then(|| discharge.value(i));
                    let admit_day = admitted
                        .and_then(day_of)
                        .or_else(|| date.is_valid(i).then(|| date.value(i)));
                    let who = text(patient, i).unwrap_or_default();
                    if let Some(day) = admit_day {
                        let entry = self.days.entry((f.clone(), d.clone(), day)).or_default();
                        entry.admissions += 1;
                        if los.is_valid(i) {
                            entry.stays.push(los.value(i));
                        }
                        if let Some(a) = admitted {
                            self.admissions
                                .push((f.clone(), d.clone(), day, who.clone(), a));
                        }
                    }
                    if let Some(day) = discharged.and_then(day_of) {
                        self.days.entry((f, d, day)).or_default().discharges += 1;
                    }
                    if let Some(a) = admitted {
                        self.stays.entry(who).or_default().push((a, discharged));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<RecordBatch> {
        let Utilization {
            stays,
            mut days,
            admissions,
        } = *self;
        // A readmission: the patient had an inpatient discharge in the 30 days before
        // admitting.
        for (f, d, day, patient, admitted) in admissions {
            let readmitted = stays.get(&patient).is_some_and(|list| {
                list.iter().any(|(_, discharged)| {
                    discharged
                        .is_some_and(|dis| dis <= admitted && admitted - dis <= 30 * DAY_MICROS)
                })
            });
            if readmitted {
                days.entry((f, d, day)).or_default().readmissions += 1;
            }
        }
        let mut out: [Vec<u64>; 4] = Default::default();
        let (mut fac, mut dep, mut day_col, mut avg, mut median) =
            (vec![], vec![], vec![], vec![], vec![]);
        for ((f, d, day), mut v) in days {
            fac.push(f);
            dep.push(d);
            day_col.push(day);
            out[0].push(v.admissions);
            out[1].push(v.discharges);
            out[2].push(v.emergency);
            out[3].push(v.readmissions);
            v.stays.sort_unstable();
            #[allow(clippy::cast_precision_loss, reason = "days of a stay")]
            let as_f = |x: i64| x as f64;
            let n = v.stays.len();
            avg.push(
                (n > 0).then(|| v.stays.iter().map(|s| as_f(*s)).sum::<f64>() / as_f(n as i64)),
            );
            median.push((n > 0).then(|| {
                if n % 2 == 1 {
                    as_f(v.stays[n / 2])
                } else {
                    f64::midpoint(as_f(v.stays[n / 2 - 1]), as_f(v.stays[n / 2]))
                }
            }));
        }
        let [admissions, discharges, emergency, readmissions] = out;
        let schema = Schema::new(vec![
            Field::new("facility", DataType::Utf8, false),
            Field::new("department", DataType::Utf8, false),
            Field::new("day", DataType::Date32, false),
            Field::new("admissions", DataType::Int64, false),
            Field::new("discharges", DataType::Int64, false),
            Field::new("ed_visits", DataType::Int64, false),
            Field::new("avg_length_of_stay_days", DataType::Float64, true),
            Field::new("median_length_of_stay_days", DataType::Float64, true),
            Field::new("readmissions_30d", DataType::Int64, false),
        ]);
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(fac)),
                Arc::new(StringArray::from(dep)),
                Arc::new(Date32Array::from(day_col)),
                Arc::new(as_long(admissions)),
                Arc::new(as_long(discharges)),
                Arc::new(as_long(emergency)),
                Arc::new(Float64Array::from(avg)),
                Arc::new(Float64Array::from(median)),
                Arc::new(as_long(readmissions)),
            ],
        )?)
    }
}

/// The silver inputs of [`patient_clinical_summary`].
#[derive(Clone, Copy, Debug)]
pub struct ClinicalInputs<'a> {
    /// `silver.patients_scd` (only `is_current` rows are summarised).
    pub patients: &'a [RecordBatch],
    /// `silver.encounters_clean` with `length_of_stay_days`.
    pub encounters: &'a [RecordBatch],
    /// `silver.diagnoses_clean`.
    pub diagnoses: &'a [RecordBatch],
    /// `silver.medications_clean` with `is_active`.
    pub medications: &'a [RecordBatch],
    /// `silver.lab_results_clean` with `abnormal_flag`.
    pub labs: &'a [RecordBatch],
}

/// `gold.patient_clinical_summary`: one row per current patient, ordered by `patient_id`.
///
/// # Errors
/// A batch without the silver columns it reads.
pub fn patient_clinical_summary(
    inputs: ClinicalInputs<'_>,
    as_of: chrono::NaiveDate,
) -> Result<RecordBatch> {
    let mut table: Box<dyn GoldTable> = Box::new(ClinicalSummary::new(as_of));
    for (input, batches) in [
        ("patients_scd", inputs.patients),
        ("encounters_clean", inputs.encounters),
        ("diagnoses_clean", inputs.diagnoses),
        ("medications_clean", inputs.medications),
        ("lab_results_clean", inputs.labs),
    ] {
        for batch in batches {
            table.add(input, batch)?;
        }
    }
    table.finish()
}

/// What the summary counts for one patient.
#[derive(Debug, Default)]
struct Acc {
    encounters: u64,
    last_visit: Option<i32>,
    inpatient_days: i64,
    active_medications: u64,
    chronic: BTreeSet<String>,
    abnormal_labs: u64,
    last_lab: Option<i32>,
}

/// The demographic columns of the summary, from `patients_scd`.
const DEMOGRAPHICS: [&str; 6] = [
    "first_name",
    "last_name",
    "sex",
    "city",
    "state",
    "insurance",
];

/// A current patient's demographics and birth date.
type Demographics = ([Option<String>; DEMOGRAPHICS.len()], Option<i32>);

/// The accumulator of `gold.patient_clinical_summary`.
#[derive(Debug)]
pub struct ClinicalSummary {
    as_of: chrono::NaiveDate,
    acc: BTreeMap<String, Acc>,
    patients: BTreeMap<String, Demographics>,
}

impl ClinicalSummary {
    /// An empty summary, ages counted at `as_of`.
    #[must_use]
    pub fn new(as_of: chrono::NaiveDate) -> Self {
        Self {
            as_of,
            acc: BTreeMap::new(),
            patients: BTreeMap::new(),
        }
    }
}

impl GoldTable for ClinicalSummary {
    fn inputs(&self) -> &'static [(&'static str, &'static [&'static str])] {
        &[
            (
                "patients_scd",
                &[
                    "patient_id",
                    "is_current",
                    "birth_date",
                    "first_name",
                    "last_name",
                    "sex",
                    "city",
                    "state",
                    "insurance",
                ],
            ),
            (
                "encounters_clean",
                &["patient_id", "encounter_date", "length_of_stay_days"],
            ),
            ("diagnoses_clean", &["patient_id", "icd10_code"]),
            ("medications_clean", &["patient_id", "is_active"]),
            (
                "lab_results_clean",
                &["patient_id", "abnormal_flag", "result_date"],
            ),
        ]
    }

    fn add(&mut self, input: &str, b: &RecordBatch) -> Result<()> {
        match input {
            "patients_scd" => {
                let p = column(b, "patient_id", input)?.as_string::<i32>();
                let current = column(b, "is_current", input)?.as_boolean();
                let born = column(b, "birth_date", input)?.as_primitive::<Date32Type>();
                let columns = DEMOGRAPHICS
                    .iter()
                    .map(|name| Ok(column(b, name, input)?.as_string::<i32>()))
                    .collect::<Result<Vec<_>>>()?;
                for i in 0..b.num_rows() {
                    if current.is_valid(i) && current.value(i) && p.is_valid(i) {
                        let values = std::array::from_fn(|k| text(columns[k], i));
                        let birth = born.is_valid(i).then(|| born.value(i));
                        self.patients.insert(p.value(i).to_owned(), (values, birth));
                    }
                }
            }
            "encounters_clean" => {
                let p = column(b, "patient_id", input)?.as_string::<i32>();
                let d = column(b, "encounter_date", input)?.as_primitive::<Date32Type>();
                let los = column(b, "length_of_stay_days", input)?.as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    let Some(id) = text(p, i) else { continue };
                    let a = self.acc.entry(id).or_default();
                    a.encounters += 1;
                    if d.is_valid(i) {
                        a.last_visit = a.last_visit.max(Some(d.value(i)));
                    }
                    if los.is_valid(i) {
                        a.inpatient_days += los.value(i);
                    }
                }
            }
            "diagnoses_clean" => {
                let p = column(b, "patient_id", input)?.as_string::<i32>();
                let c = column(b, "icd10_code", input)?.as_string::<i32>();
                for i in 0..b.num_rows() {
                    let (Some(id), Some(code)) = (text(p, i), text(c, i)) else {
                        continue;
                    };
                    if CHRONIC_ICD10_PREFIXES
                        .iter()
                        .any(|pre| code.starts_with(pre))
                    {
                        self.acc.entry(id).or_default().chronic.insert(code);
                    }
                }
            }
            "medications_clean" => {
                let p = column(b, "patient_id", input)?.as_string::<i32>();
                let active = column(b, "is_active", input)?.as_boolean();
                for i in 0..b.num_rows() {
                    let Some(id) = text(p, i) else { continue };
                    if active.is_valid(i) && active.value(i) {
                        self.acc.entry(id).or_default().active_medications += 1;
                    }
                }
            }
            _ => {
                let p = column(b, "patient_id", input)?.as_string::<i32>();
                let f = column(b, "abnormal_flag", input)?.as_string::<i32>();
                let d = column(b, "result_date", input)?.as_primitive::<Date32Type>();
                for i in 0..b.num_rows() {
                    let Some(id) = text(p, i) else { continue };
                    let a = self.acc.entry(id).or_default();
                    if matches!(text(f, i).as_deref(), Some("H" | "L")) {
                        a.abnormal_labs += 1;
                    }
                    if d.is_valid(i) {
                        a.last_lab = a.last_lab.max(Some(d.value(i)));
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<RecordBatch> {
        let ClinicalSummary {
            as_of,
            mut acc,
            patients,
        } = *self;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let mut strings: Vec<Vec<Option<String>>> = vec![Vec::new(); DEMOGRAPHICS.len()];
        let (mut ids, mut birth, mut age) = (vec![], vec![], vec![]);
        let mut counts: [Vec<u64>; 4] = Default::default();
        let (mut last_visit, mut inpatient_days, mut last_lab) = (vec![], vec![], vec![]);
        for (id, (values, born)) in patients {
            for (k, value) in values.into_iter().enumerate() {
                strings[k].push(value);
            }
            birth.push(born);
            age.push(born.and_then(|d| {
                let date = epoch.checked_add_signed(chrono::Duration::days(i64::from(d)))?;
                as_of.years_since(date).map(i64::from)
            }));
            let a = acc.remove(&id).unwrap_or_default();
            counts[0].push(a.encounters);
            counts[1].push(a.active_medications);
            counts[2].push(a.chronic.len() as u64);
            counts[3].push(a.abnormal_labs);
            last_visit.push(a.last_visit);
            inpatient_days.push(a.inpatient_days);
            last_lab.push(a.last_lab);
            ids.push(id);
        }
        let mut fields = vec![Field::new("patient_id", DataType::Utf8, false)];
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(ids))];
        for (name, values) in DEMOGRAPHICS.iter().zip(strings) {
            fields.push(Field::new(*name, DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from(values)));
        }
        let [encounters, active, chronic, abnormal] = counts;
        fields.extend([
            Field::new("birth_date", DataType::Date32, true),
            Field::new("age", DataType::Int64, true),
            Field::new("encounters", DataType::Int64, false),
            Field::new("last_visit", DataType::Date32, true),
            Field::new("inpatient_days", DataType::Int64, false),
            Field::new("active_medications", DataType::Int64, false),
            Field::new("chronic_conditions", DataType::Int64, false),
            Field::new("abnormal_labs", DataType::Int64, false),
            Field::new("last_lab_date", DataType::Date32, true),
        ]);
        columns.extend([
            Arc::new(Date32Array::from(birth)) as ArrayRef,
            Arc::new(Int64Array::from(age)),
            Arc::new(as_long(encounters)),
            Arc::new(Date32Array::from(last_visit)),
            Arc::new(Int64Array::from(inpatient_days)),
            Arc::new(as_long(active)),
            Arc::new(as_long(chronic)),
            Arc::new(as_long(abnormal)),
            Arc::new(Date32Array::from(last_lab)),
        ]);
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

/// What the gold stage did to one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoldSummary {
    /// The gold table (`gold.lab_abnormal_trends`).
    pub table: String,
    /// Its rows.
    pub rows: u64,
    /// The version written, or `None` when its silver inputs had not changed.
    pub version: Option<u64>,
    /// Data files written.
    pub files: u64,
    /// Wall time of finishing and writing the table, in milliseconds (the silver scans it
    /// shares with other gold tables are not counted).
    pub millis: u64,
}

/// The gold tables, by name, each with a fresh accumulator.
fn gold_tables(as_of: chrono::NaiveDate) -> Vec<(&'static str, Box<dyn GoldTable + Send>)> {
    vec![
        (
            "patient_clinical_summary",
            Box::new(ClinicalSummary::new(as_of)),
        ),
        (
            "hospital_utilization_metrics",
            Box::new(Utilization::default()),
        ),
        ("disease_prevalence_daily", Box::new(Prevalence::default())),
        ("lab_abnormal_trends", Box::new(LabTrends::default())),
    ]
}

/// The order silver tables are scanned in (every input of every gold table).
const SILVER_INPUTS: [&str; 5] = [
    "patients_scd",
    "encounters_clean",
    "diagnoses_clean",
    "medications_clean",
    "lab_results_clean",
];

/// Run the gold stage: each gold table is recomputed from silver and overwritten, unless
/// its silver inputs are unchanged since it was last written. The overwrite's app
/// transaction (`medilake-gold-<table>`) records the sum of the bronze versions its inputs
/// have processed, which grows whenever an input takes in new data.
///
/// Each silver table is scanned once, streaming only the columns the stale gold tables
/// read, and every batch is folded into their accumulators: memory holds the aggregates,
/// not the silver rows.
///
/// # Errors
/// Storage and commit errors; silver tables without the columns gold reads.
pub async fn run(lake: &crate::lake::Lake, as_of: chrono::NaiveDate) -> Result<Vec<GoldSummary>> {
    run_with(lake, as_of, &crate::progress::quiet).await
}

/// [`run`], reporting the silver scans and the gold writes.
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    lake: &crate::lake::Lake,
    as_of: chrono::NaiveDate,
    progress: &crate::progress::StepFn,
) -> Result<Vec<GoldSummary>> {
    use crate::progress::StepProgress;
    use delta_core::SaveMode;
    use futures::{StreamExt, TryStreamExt};
    let open = |layer: &str, name: &str| lake.table(layer, name);
    // Snapshots first (cheap): a gold table whose inputs have not moved reads no rows.
    let mut snapshots: BTreeMap<&str, Option<(u64, delta_core::Snapshot)>> = BTreeMap::new();
    for input in SILVER_INPUTS {
        let entry = match open("silver", input)?.snapshot().await {
            Ok(snapshot) => {
                // What the silver table holds is named by the bronze version it processed
                // (its app transaction), not by its own version, which maintenance commits
                // (OPTIMIZE, VACUUM) also move.
                let processed = snapshot
                    .app_transaction_version(&format!("medilake-silver-{input}"))
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or_else(|| snapshot.version());
                Some((processed, snapshot))
            }
            Err(delta_core::Error::NotATable { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        snapshots.insert(input, entry);
    }
    let mut out = Vec::new();
    // The gold tables to recompute: (name, table, app id, fingerprint, accumulator).
    let mut stale = Vec::new();
    for (gold, accumulator) in gold_tables(as_of) {
        let summary = GoldSummary {
            table: format!("gold.{gold}"),
            ..GoldSummary::default()
        };
        let inputs = accumulator.inputs();
        let mut fingerprint = 0u64;
        let mut missing = false;
        for (input, _) in inputs {
            match snapshots.get(input).and_then(Option::as_ref) {
                Some((processed, _)) => fingerprint += processed + 1,
                // A missing secondary input reads as empty; a missing main input (the
                // first) leaves the gold table for a later run.
                None => missing |= *input == inputs[0].0,
            }
        }
        if missing {
            out.push(summary);
            continue;
        }
        let table = open("gold", gold)?;
        let app = format!("medilake-gold-{gold}");
        let fingerprint = i64::try_from(fingerprint)?;
        if let Ok(snapshot) = table.snapshot().await
            && snapshot.app_transaction_version(&app) == Some(fingerprint)
        {
            out.push(summary);
            continue;
        }
        stale.push((summary, table, app, fingerprint, accumulator));
    }
    for input in SILVER_INPUTS {
        let Some((_, snapshot)) = snapshots.get(input).and_then(Option::as_ref) else {
            continue;
        };
        let mut columns: BTreeSet<&str> = BTreeSet::new();
        for (.., accumulator) in &stale {
            for (name, used) in accumulator.inputs() {
                if *name == input {
                    columns.extend(used.iter().copied());
                }
            }
        }
        if columns.is_empty() {
            continue;
        }
        let table = format!("silver.{input}");
        progress(StepProgress::Start {
            table: table.clone(),
            rows: snapshot
                .files()
                .iter()
                .filter_map(delta_core::action::Add::logical_rows)
                .sum(),
            what: "read for gold",
        });
        let mut batches = snapshot.scan().with_columns(columns).build()?.execute();
        while let Some(batch) = batches.try_next().await? {
            progress(StepProgress::Rows {
                table: table.clone(),
                rows: batch.num_rows() as u64,
            });
            for (.., accumulator) in &mut stale {
                if accumulator.inputs().iter().any(|(name, _)| *name == input) {
                    accumulator
                        .add(input, &batch)
                        .with_context(|| format!("silver.{input}"))?;
                }
            }
        }
        progress(StepProgress::Done {
            table,
            outcome: "read".to_owned(),
        });
    }
    for (mut summary, table, app, fingerprint, accumulator) in stale {
        let started = std::time::Instant::now();
        let batch = accumulator.finish()?;
        summary.rows = batch.num_rows() as u64;
        let report = table
            .write()
            .with_mode(SaveMode::Overwrite)
            .with_app_transaction(app, fingerprint)
            .execute(futures::stream::iter([Ok(batch)]).boxed())
            .await?;
        summary.version = report.version;
        summary.files = report.files_added;
        summary.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        progress(StepProgress::Done {
            table: summary.table.clone(),
            outcome: format!(
                "{} rows, version {}",
                summary.rows,
                report.version.unwrap_or_default()
            ),
        });
        out.push(summary);
    }
    // Report in the gold tables' order.
    let order: Vec<&str> = gold_tables(as_of).iter().map(|(name, _)| *name).collect();
    out.sort_by_key(|s| {
        order
            .iter()
            .position(|name| s.table.strip_prefix("gold.") == Some(*name))
    });
    Ok(out)
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

    /// (patient, facility, department, type, encounter day, admit, discharge, length of stay)
    type Encounter = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        i32,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );

    #[test]
    fn utilization_counts_admissions_discharges_ed_visits_stays_and_readmissions() {
        use arrow::array::TimestampMicrosecondArray;
        let h = 3_600_000_000i64;
        let day = |d: i64| d * DAY_MICROS;
        // (patient, facility, dept, type, encounter day, admit, discharge, los)
        let rows: Vec<Encounter> = vec![
            (
                "p1",
                "F",
                "Cardio",
                "inpatient",
                10,
                Some(day(10) + 8 * h),
                Some(day(13) + h),
                Some(3),
            ),
            (
                "p1",
                "F",
                "Cardio",
                "inpatient",
                20,
                Some(day(20) + h),
                Some(day(21)),
                Some(1),
            ),
            (
                "p2",
                "F",
                "Cardio",
                "inpatient",
                10,
                Some(day(10) + 9 * h),
                Some(day(12)),
                Some(2),
            ),
            (
                "p3",
                "F",
                "ED",
                "emergency",
                10,
                Some(day(10)),
                Some(day(10) + h),
                None,
            ),
            (
                "p2",
                "F",
                "Cardio",
                "inpatient",
                50,
                Some(day(50)),
                Some(day(51)),
                Some(1),
            ),
            ("p4", "F", "Clinic", "outpatient", 10, None, None, None),
        ];
        let schema = Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, true),
            Field::new("facility", DataType::Utf8, true),
            Field::new("department", DataType::Utf8, true),
            Field::new("encounter_type", DataType::Utf8, true),
            Field::new("encounter_date", DataType::Date32, true),
            Field::new(
                "admit_ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
            Field::new(
                "discharge_ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("length_of_stay_days", DataType::Int64, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                Arc::new(Date32Array::from(
                    rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMicrosecondArray::from(
                    rows.iter().map(|r| r.5).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMicrosecondArray::from(
                    rows.iter().map(|r| r.6).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.7).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let gold = hospital_utilization_metrics(&[batch]).unwrap();
        let lines: Vec<String> = (0..gold.num_rows())
            .map(|i| {
                let row = crate::output::row_to_json(&gold, i).unwrap();
                format!(
                    "{} {} {} a{} d{} e{} avg{} med{} r{}",
                    row["facility"].as_str().unwrap(),
                    row["department"].as_str().unwrap(),
                    row["day"].as_str().unwrap(),
                    row["admissions"],
                    row["discharges"],
                    row["ed_visits"],
                    row["avg_length_of_stay_days"],
                    row["median_length_of_stay_days"],
                    row["readmissions_30d"]
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                "F Cardio 1970-01-11 a2 d0 e0 avg2.5 med2.5 r0",
                "F Cardio 1970-01-13 a0 d1 e0 avgnull mednull r0",
                "F Cardio 1970-01-14 a0 d1 e0 avgnull mednull r0",
                "F Cardio 1970-01-21 a1 d0 e0 avg1.0 med1.0 r1",
                "F Cardio 1970-01-22 a0 d1 e0 avgnull mednull r0",
                "F Cardio 1970-02-20 a1 d0 e0 avg1.0 med1.0 r0",
                "F Cardio 1970-02-21 a0 d1 e0 avgnull mednull r0",
                "F ED 1970-01-11 a0 d0 e1 avgnull mednull r0",
            ]
        );
    }

    fn batch_of(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn clinical_summary_of_current_patients() {
        use arrow::array::BooleanArray;
        let s = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let patients = batch_of(vec![
            ("patient_id", s(vec![Some("p1"), Some("p1"), Some("p2")])),
            ("first_name", s(vec![Some("Ann"), Some("Ann"), Some("Bo")])),
            ("last_name", s(vec![Some("A"), Some("A"), Some("B")])),
            ("sex", s(vec![Some("F"), Some("F"), Some("M")])),
            ("city", s(vec![Some("Old"), Some("New"), Some("Waco")])),
            ("state", s(vec![Some("TX"); 3])),
            ("insurance", s(vec![Some("Aetna"); 3])),
            (
                "birth_date",
                Arc::new(Date32Array::from(vec![Some(0), Some(0), None])),
            ),
            (
                "is_current",
                Arc::new(BooleanArray::from(vec![false, true, true])),
            ),
        ]);
        let encounters = batch_of(vec![
            ("patient_id", s(vec![Some("p1"), Some("p1"), Some("p3")])),
            (
                "encounter_date",
                Arc::new(Date32Array::from(vec![Some(100), Some(200), Some(5)])),
            ),
            (
                "length_of_stay_days",
                Arc::new(Int64Array::from(vec![Some(3), None, Some(9)])),
            ),
        ]);
        let diagnoses = batch_of(vec![
            (
                "patient_id",
                s(vec![Some("p1"), Some("p1"), Some("p1"), Some("p2")]),
            ),
            (
                "icd10_code",
                s(vec![
                    Some("E11.9"),
                    Some("E11.9"),
                    Some("I10"),
                    Some("S52.5"),
                ]),
            ),
        ]);
        let medications = batch_of(vec![
            ("patient_id", s(vec![Some("p1"), Some("p2"), Some("p2")])),
            (
                "is_active",
                Arc::new(BooleanArray::from(vec![true, true, false])),
            ),
        ]);
        let labs = batch_of(vec![
            ("patient_id", s(vec![Some("p2"), Some("p2"), Some("p2")])),
            ("abnormal_flag", s(vec![Some("H"), Some("N"), Some("L")])),
            (
                "result_date",
                Arc::new(Date32Array::from(vec![Some(7), Some(9), None])),
            ),
        ]);
        let as_of = chrono::NaiveDate::from_ymd_opt(2000, 6, 1).unwrap();
        let gold = patient_clinical_summary(
            ClinicalInputs {
                patients: &[patients],
                encounters: &[encounters],
                diagnoses: &[diagnoses],
                medications: &[medications],
                labs: &[labs],
            },
            as_of,
        )
        .unwrap();
        let rows: Vec<serde_json::Value> = (0..gold.num_rows())
            .map(|i| crate::output::row_to_json(&gold, i).unwrap())
            .collect();
        assert_eq!(rows.len(), 2, "one row per current patient");
        assert_eq!(rows[0]["city"], "New");
        assert_eq!(rows[0]["age"], 30);
        assert_eq!(rows[0]["encounters"], 2);
        assert_eq!(rows[0]["last_visit"], "1970-07-20");
        assert_eq!(rows[0]["inpatient_days"], 3);
        assert_eq!(rows[0]["chronic_conditions"], 2);
        assert_eq!(rows[0]["active_medications"], 1);
        assert_eq!(rows[1]["age"], serde_json::Value::Null);
        assert_eq!(rows[1]["abnormal_labs"], 2);
        assert_eq!(rows[1]["last_lab_date"], "1970-01-10");
        assert_eq!(rows[1]["chronic_conditions"], 0);
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
            let cols: Vec<&Int64Array> = (2..5).map(|i| gold.column(i).as_primitive()).collect();
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
                prop_assert_eq!(cols[0].value(i), on_day.len() as i64);
                prop_assert_eq!(cols[1].value(i), patients.len() as i64);
                prop_assert_eq!(cols[2].value(i), cumulative.len() as i64);
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
                let high = today.iter().filter(|r| r.2 == 0).count() as i64;
                let low = today.iter().filter(|r| r.2 == 1).count() as i64;
                let window: Vec<_> = of_code.iter().filter(|r| r.0 <= d && r.0 > d - 7).collect();
                let abnormal = window.iter().filter(|r| r.2 < 2).count();
                prop_assert_eq!(gold.column(2).as_primitive::<arrow::datatypes::Int64Type>().value(i), today.len() as i64);
                prop_assert_eq!(gold.column(3).as_primitive::<arrow::datatypes::Int64Type>().value(i), high);
                prop_assert_eq!(gold.column(4).as_primitive::<arrow::datatypes::Int64Type>().value(i), low);
                let rolling = gold.column(7).as_primitive::<arrow::datatypes::Float64Type>().value(i);
                prop_assert!((rolling - abnormal as f64 / window.len() as f64).abs() < 1e-12);
            }
        }
    }
}
