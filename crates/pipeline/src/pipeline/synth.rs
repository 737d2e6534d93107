//! The seeded synthetic EHR generator behind `medilake generate`.
//!
//! Invariants:
//! - **Deterministic:** one ChaCha8 stream seeded with `--seed` drives every choice, in a
//!   fixed order, so the same seed and patient count give byte-identical files.
//! - **Streaming:** patients are generated one at a time and each record is written at once
//!   to the part file of its period; memory does not grow with `--patients`.
//! - **Time-ordered parts:** the years 2021-2024 are cut into `parts` equal periods and
//!   `part-0000k.jsonl` holds the records dated in period k (except the late CDC updates,
//!   which arrive one or two parts after their period, on purpose).
//! - **Dirty on purpose**, and every defect written is counted in `manifest.json` per entity
//!   (duplicates repeat their record's defects, so the counts describe the lines in the files).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Datelike, Duration, NaiveDate};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::codes::{
    CITIES, CPT, FACILITIES, FIRST_NAMES, ICD10, INPATIENT_DEPARTMENTS, INSURERS, LABS, LAST_NAMES,
    OUTPATIENT_DEPARTMENTS, RXNORM, STREETS,
};
use super::contract::{ENTITIES, Entity};

/// The default seed of `medilake generate`.
pub const DEFAULT_SEED: u64 = 42;
/// The default most encounters per patient (about 100 rows per patient in all).
pub const DEFAULT_MAX_ENCOUNTERS: u32 = 12;
/// The default number of time-ordered part files per entity.
pub const DEFAULT_PARTS: u32 = 6;
/// Days covered by the generated history (2021-01-01 through 2024-12-31).
const SPAN_DAYS: i64 = 1461;
/// Write buffer per part file (6 entities × parts files are open at once).
const BUFFER_BYTES: usize = 256 * 1024;

/// Per-record defect rates, in records per 10 000.
mod rate {
    pub(super) const NULL_ID: u32 = 30;
    pub(super) const BAD_DATE: u32 = 120;
    pub(super) const EXTRA_FIELD: u32 = 100;
    pub(super) const DUPLICATE: u32 = 50;
    pub(super) const CORRUPT_LINE: u32 = 10;
    pub(super) const DISCHARGE_BEFORE_ADMIT: u32 = 100;
    pub(super) const NULL_LAB_VALUE: u32 = 100;
    pub(super) const NON_NUMERIC_LAB_VALUE: u32 = 100;
    pub(super) const LATE_UPDATE: u32 = 2000;
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    /// Number of distinct patients.
    pub patients: u64,
    /// The seed of the random stream.
    pub seed: u64,
    /// Time-ordered part files per entity (at least 1).
    pub parts: u32,
    /// Most encounters per patient (at least 1; a patient has between `min(4, this)` and
    /// this many). The default, 12, gives about 100 rows per patient; the bundled sample uses
    /// 2 to stay small.
    pub max_encounters: u32,
}

/// What was generated: the content of `manifest.json`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest as JSON (`seed`, `patients`, `parts`, and per entity its `files`
    /// (path and line count), `lines`, `records` and `defects`).
    pub json: Value,
    /// Non-empty lines written, all entities.
    pub total_lines: u64,
}

/// A field value as it will be written.
enum V {
    Str(String),
    /// A JSON number or boolean, written as is.
    Raw(String),
    Null,
}

fn s(text: impl Into<String>) -> V {
    V::Str(text.into())
}

/// The open part files of one entity and the counts for the manifest.
struct Sink {
    entity: Entity,
    paths: Vec<PathBuf>,
    writers: Vec<BufWriter<File>>,
    lines: Vec<u64>,
    defects: BTreeMap<&'static str, u64>,
}

impl Sink {
    fn new(out: &Path, entity: Entity, parts: u32) -> Result<Self> {
        let dir = out.join(entity.name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut paths = Vec::new();
        let mut writers = Vec::new();
        for part in 1..=parts {
            let path = dir.join(format!("part-{part:05}.jsonl"));
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            writers.push(BufWriter::with_capacity(BUFFER_BYTES, file));
            paths.push(path);
        }
        let lines = vec![0; paths.len()];
        Ok(Self {
            entity,
            paths,
            writers,
            lines,
            defects: BTreeMap::new(),
        })
    }

    fn count(&mut self, defect: &'static str) {
        self.count_n(defect, 1);
    }

    fn count_n(&mut self, defect: &'static str, n: u32) {
        if n > 0 {
            *self.defects.entry(defect).or_default() += u64::from(n);
        }
    }

    fn finish(mut self, out: &Path) -> Result<(Value, u64)> {
        let mut files = Vec::new();
        for ((path, writer), lines) in self.paths.iter().zip(&mut self.writers).zip(&self.lines) {
            writer
                .flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            let relative = path.strip_prefix(out).unwrap_or(path);
            files.push(json!({"path": relative.to_string_lossy(), "lines": lines}));
        }
        let lines: u64 = self.lines.iter().sum();
        let corrupt = self.defects.get("corrupt_line").copied().unwrap_or(0);
        let defects: serde_json::Map<String, Value> = self
            .defects
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        Ok((
            json!({
                "files": files,
                "lines": lines,
                "records": lines - corrupt,
                "defects": defects,
            }),
            lines,
        ))
    }
}

/// The generator state: the random stream, the sinks, and id counters.
struct Generator {
    rng: ChaCha8Rng,
    sinks: Vec<Sink>,
    parts: u32,
    start: NaiveDate,
    next_id: [u64; 6],
    line: String,
    max_encounters: u32,
}

/// Index of each entity in [`ENTITIES`] (and in `Generator::sinks`).
const PAT: usize = 0;
const ENC: usize = 1;
const DX: usize = 2;
const PX: usize = 3;
const LAB: usize = 4;
const MED: usize = 5;

/// Generate `options.patients` patients into `out` (`out/<entity>/part-0000k.jsonl` and
/// `out/manifest.json`).
///
/// # Errors
/// I/O errors creating or writing the files (naming the file).
pub fn generate(out: &Path, options: &GenerateOptions) -> Result<Manifest> {
    let parts = options.parts.max(1);
    let mut sinks = Vec::new();
    for entity in ENTITIES {
        sinks.push(Sink::new(out, entity, parts)?);
    }
    let mut generator = Generator {
        rng: ChaCha8Rng::seed_from_u64(options.seed),
        sinks,
        parts,
        start: NaiveDate::from_ymd_opt(2021, 1, 1).context("start date")?,
        next_id: [0; 6],
        line: String::with_capacity(1024),
        max_encounters: options.max_encounters,
    };
    for index in 0..options.patients {
        generator.patient(index)?;
    }
    let mut entities = serde_json::Map::new();
    let mut total_lines = 0;
    for sink in generator.sinks {
        let name = sink.entity.name;
        let (doc, lines) = sink.finish(out)?;
        total_lines += lines;
        entities.insert(name.to_owned(), doc);
    }
    let json = json!({
        "generator": "medilake generate",
        "seed": options.seed,
        "patients": options.patients,
        "parts": parts,
        "max_encounters": options.max_encounters,
        "total_lines": total_lines,
        "entities": entities,
    });
    let path = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(&path, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Manifest { json, total_lines })
}

impl Generator {
    fn chance(&mut self, per_10k: u32) -> bool {
        self.rng.random_range(0..10_000) < per_10k
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn id(&mut self, entity: usize, prefix: &str) -> String {
        self.next_id[entity] += 1;
        format!("{prefix}{:08}", self.next_id[entity])
    }

    fn date(&self, day: i64) -> NaiveDate {
        self.start + Duration::days(day)
    }

    /// The part file (0-based) of a day of the history.
    fn part_of(&self, day: i64) -> usize {
        let day = day.clamp(0, SPAN_DAYS - 1);
        usize::try_from(day * i64::from(self.parts) / SPAN_DAYS).unwrap_or(0)
    }

    fn timestamp(&mut self, day: i64) -> String {
        let hour = self.rng.random_range(6..22);
        let minute = self.rng.random_range(0..60);
        let second = self.rng.random_range(0..60);
        format!("{}T{hour:02}:{minute:02}:{second:02}", self.date(day))
    }

    fn address(&mut self) -> [(&'static str, V); 5] {
        let number = self.rng.random_range(1..9999);
        let street = self.pick(STREETS);
        let line2 = if self.chance(2500) {
            V::Str(format!("Apt {}", self.rng.random_range(1..400)))
        } else {
            V::Null
        };
        let (city, state, zip) = self.pick(CITIES);
        let zip_tail = self.rng.random_range(0..100);
        [
            ("address_line1", s(format!("{number} {street}"))),
            ("address_line2", line2),
            ("city", s(city)),
            ("state", s(state)),
            ("zip", s(format!("{zip}{zip_tail:02}"))),
        ]
    }

    fn insurance(&mut self) -> [(&'static str, V); 2] {
        let payer = self.pick(INSURERS);
        let member = if payer == "Self-pay" {
            V::Null
        } else {
            let letters: String = (0..3)
                .map(|_| char::from(b'A' + self.rng.random_range(0..26u8)))
                .collect();
            V::Str(format!(
                "{letters}{:09}",
                self.rng.random_range(0..1_000_000_000u32)
            ))
        };
        [("insurance", s(payer)), ("insurance_member_id", member)]
    }

    /// One patient: the `I` record, CDC updates, encounters and everything under them.
    fn patient(&mut self, index: u64) -> Result<()> {
        let patient_id = format!("P{:08}", index + 1);
        let first = self.pick(FIRST_NAMES);
        let last = self.pick(LAST_NAMES);
        let birth = NaiveDate::from_ymd_opt(1930, 1, 1).context("date")?
            + Duration::days(self.rng.random_range(0..32_000));
        let sex = if self.rng.random_bool(0.5) { "F" } else { "M" };
        let first_day = self.rng.random_range(0..SPAN_DAYS / 3);
        let mut fields: Vec<(&'static str, V)> = vec![
            ("patient_id", s(&patient_id)),
            ("first_name", s(first)),
            ("last_name", s(last)),
            ("birth_date", s(birth.to_string())),
            ("sex", s(sex)),
        ];
        fields.extend(self.address());
        fields.push((
            "phone",
            s(format!(
                "555-{:03}-{:04}",
                self.rng.random_range(100..1000),
                self.rng.random_range(0..10_000)
            )),
        ));
        fields.push((
            "email",
            s(format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                index + 1
            )),
        ));
        fields.extend(self.insurance());
        fields.push(("op", s("I")));
        let updated_at = self.timestamp(first_day);
        fields.push(("updated_at", s(updated_at)));
        let part = self.part_of(first_day);
        self.emit(
            PAT,
            part,
            fields.iter().map(|(k, v)| (*k, clone_v(v))).collect(),
        )?;

        // CDC: zero to two later versions with a new address and/or a new insurer.
        let mut day = first_day;
        let updates = match self.rng.random_range(0..100) {
            0..70 => 0,
            70..95 => 1,
            _ => 2,
        };
        for _ in 0..updates {
            day = (day + self.rng.random_range(30..400)).min(SPAN_DAYS - 1);
            let moves = self.rng.random_bool(0.6);
            let switches = !moves || self.rng.random_bool(0.3);
            if moves {
                let address = self.address();
                for (name, value) in address {
                    set(&mut fields, name, value);
                }
            }
            if switches {
                let insurance = self.insurance();
                for (name, value) in insurance {
                    set(&mut fields, name, value);
                }
            }
            set(&mut fields, "op", s("U"));
            let stamp = self.timestamp(day);
            set(&mut fields, "updated_at", s(stamp));
            let natural = self.part_of(day);
            let mut part = natural;
            if self.chance(rate::LATE_UPDATE) {
                let delay = self.rng.random_range(1..3);
                part = (natural + delay).min(self.parts as usize - 1);
            }
            let repeats = self.emit(
                PAT,
                part,
                fields.iter().map(|(k, v)| (*k, clone_v(v))).collect(),
            )?;
            self.sinks[PAT].count_n("cdc_update", repeats);
            if part > natural {
                self.sinks[PAT].count_n("late_cdc_update", repeats);
            }
        }

        let most = self.max_encounters.max(1);
        let encounters = self.rng.random_range(most.min(4)..=most);
        for _ in 0..encounters {
            let day = self.rng.random_range(first_day..SPAN_DAYS);
            self.encounter(&patient_id, day)?;
        }
        Ok(())
    }

    fn encounter(&mut self, patient_id: &str, day: i64) -> Result<()> {
        let encounter_id = self.id(ENC, "E");
        let part = self.part_of(day);
        let date = self.date(day);
        let kind = match self.rng.random_range(0..100) {
            0..65 => "outpatient",
            65..85 => "emergency",
            _ => "inpatient",
        };
        let department = match kind {
            "inpatient" => self.pick(INPATIENT_DEPARTMENTS),
            "emergency" => "Emergency Medicine",
            _ => self.pick(OUTPATIENT_DEPARTMENTS),
        };
        let admit = date.and_hms_opt(0, 0, 0).context("time")?
            + Duration::seconds(self.rng.random_range(6 * 3600..22 * 3600));
        let stay_minutes = match kind {
            "inpatient" => self.rng.random_range(24 * 60..10 * 24 * 60),
            "emergency" => self.rng.random_range(90..12 * 60),
            _ => self.rng.random_range(20..180),
        };
        let mut discharge = admit + Duration::minutes(stay_minutes);
        let backwards = self.chance(rate::DISCHARGE_BEFORE_ADMIT);
        if backwards {
            discharge = admit - Duration::minutes(self.rng.random_range(30..48 * 60));
        }
        let facility = self.pick(FACILITIES);
        let provider = format!("PRV{:05}", self.rng.random_range(1..400));
        let fields = vec![
            ("encounter_id", s(&encounter_id)),
            ("patient_id", s(patient_id)),
            ("encounter_date", s(date.to_string())),
            ("admit_ts", s(admit.format("%Y-%m-%dT%H:%M:%S").to_string())),
            (
                "discharge_ts",
                s(discharge.format("%Y-%m-%dT%H:%M:%S").to_string()),
            ),
            ("encounter_type", s(kind)),
            ("department", s(department)),
            ("facility", s(facility)),
            ("attending_provider", s(provider)),
        ];
        let repeats = self.emit(ENC, part, fields)?;
        // Counted per written copy: a duplicated line repeats its defects.
        if backwards {
            self.sinks[ENC].count_n("discharge_before_admit", repeats);
        }

        let diagnoses = self.rng.random_range(1..3);
        for n in 0..diagnoses {
            let (code, description) = self.pick(ICD10);
            let fields = vec![
                ("diagnosis_id", s(self.id(DX, "D"))),
                ("encounter_id", s(&encounter_id)),
                ("patient_id", s(patient_id)),
                ("icd10_code", s(code)),
                ("description", s(description)),
                ("diagnosis_date", s(date.to_string())),
                (
                    "is_primary",
                    V::Raw(if n == 0 { "true" } else { "false" }.into()),
                ),
            ];
            self.emit(DX, part, fields)?;
        }
        let procedures = self.rng.random_range(0..3);
        for _ in 0..procedures {
            let (code, description) = self.pick(CPT);
            let fields = vec![
                ("procedure_id", s(self.id(PX, "X"))),
                ("encounter_id", s(&encounter_id)),
                ("patient_id", s(patient_id)),
                ("cpt_code", s(code)),
                ("description", s(description)),
                ("procedure_date", s(date.to_string())),
            ];
            self.emit(PX, part, fields)?;
        }
        let labs = self.rng.random_range(4..12);
        for _ in 0..labs {
            self.lab(&encounter_id, patient_id, day)?;
        }
        let medications = self.rng.random_range(0..3);
        for _ in 0..medications {
            let (code, name, dose, frequency) = self.pick(RXNORM);
            let (end, status) = if self.rng.random_bool(0.6) {
                let end = date + Duration::days(self.rng.random_range(7..180));
                let status = if self.rng.random_bool(0.8) {
                    "completed"
                } else {
                    "stopped"
                };
                (s(end.to_string()), status)
            } else {
                (V::Null, "active")
            };
            let fields = vec![
                ("medication_id", s(self.id(MED, "M"))),
                ("patient_id", s(patient_id)),
                ("encounter_id", s(&encounter_id)),
                ("rxnorm_code", s(code)),
                ("drug_name", s(name)),
                ("dose", s(dose)),
                ("frequency", s(frequency)),
                ("start_date", s(date.to_string())),
                ("end_date", end),
                ("status", s(status)),
            ];
            self.emit(MED, part, fields)?;
        }
        Ok(())
    }

    fn lab(&mut self, encounter_id: &str, patient_id: &str, day: i64) -> Result<()> {
        let test = &LABS[self.rng.random_range(0..LABS.len())];
        let day = (day + self.rng.random_range(0..2)).min(SPAN_DAYS - 1);
        let part = self.part_of(day);
        // Mostly in range; about a fifth below or above it.
        let width = test.high - test.low;
        let u: f64 = self.rng.random_range(-0.25..1.25);
        let value = (test.low + u * width).max(0.0);
        let decimals = test.decimals;
        let mut defect = None;
        let value = if self.chance(rate::NULL_LAB_VALUE) {
            defect = Some("null_lab_value");
            V::Null
        } else if self.chance(rate::NON_NUMERIC_LAB_VALUE) {
            defect = Some("non_numeric_lab_value");
            s(self.pick(&["pending", "see comment", "hemolyzed", "<0.1", "QNS"]))
        } else {
            V::Raw(format!("{value:.decimals$}"))
        };
        let fields = vec![
            ("lab_result_id", s(self.id(LAB, "L"))),
            ("encounter_id", s(encounter_id)),
            ("patient_id", s(patient_id)),
            ("loinc_code", s(test.code)),
            ("test_name", s(test.name)),
            ("value", value),
            ("unit", s(test.unit)),
            ("reference_low", V::Raw(format!("{:.decimals$}", test.low))),
            (
                "reference_high",
                V::Raw(format!("{:.decimals$}", test.high)),
            ),
            ("result_date", s(self.date(day).to_string())),
        ];
        let repeats = self.emit(LAB, part, fields)?;
        if let Some(defect) = defect {
            self.sinks[LAB].count_n(defect, repeats);
        }
        Ok(())
    }

    /// Apply the generic defects (null id, bad date, extra field, duplicate, corrupt line)
    /// and write the record. Returns how many times the record was written (0 when it was
    /// turned into a corrupt line, 2 when duplicated).
    ///
    /// Entity-specific defects are counted by the caller, once per written copy.
    fn emit(
        &mut self,
        entity: usize,
        part: usize,
        mut fields: Vec<(&'static str, V)>,
    ) -> Result<u32> {
        let contract = self.sinks[entity].entity;
        let mut defects: Vec<&'static str> = Vec::new();
        if self.chance(rate::NULL_ID) {
            set(&mut fields, contract.id_field, V::Null);
            defects.push("null_id");
        }
        if self.chance(rate::BAD_DATE) {
            let (kind, text) = self.bad_date(&fields, contract.date_field);
            set(&mut fields, contract.date_field, s(text));
            defects.push(kind);
        }
        if self.chance(rate::EXTRA_FIELD) {
            let (name, value) = self.pick(&[
                ("source_system", "LEGACY-EHR"),
                ("feed_version", "2.3"),
                ("ingest_note", "manual correction"),
            ]);
            fields.push((name, s(value)));
            defects.push("extra_field");
        }
        self.line.clear();
        render(&mut self.line, &fields);
        let corrupt = self.chance(rate::CORRUPT_LINE);
        let copies = if corrupt {
            // A truncated write: the record is cut in the middle, not valid JSON.
            let cut = self.line.len() / 2;
            let mut cut_at = cut;
            while !self.line.is_char_boundary(cut_at) {
                cut_at -= 1;
            }
            self.line.truncate(cut_at);
            self.sinks[entity].count("corrupt_line");
            1
        } else if self.chance(rate::DUPLICATE) {
            self.sinks[entity].count("duplicate");
            2
        } else {
            1
        };
        let sink = &mut self.sinks[entity];
        if !corrupt {
            for _ in 0..copies {
                for defect in &defects {
                    sink.count(defect);
                }
            }
        }
        self.line.push('\n');
        for _ in 0..copies {
            sink.writers[part]
                .write_all(self.line.as_bytes())
                .with_context(|| format!("cannot write {}", sink.paths[part].display()))?;
            sink.lines[part] += 1;
        }
        Ok(if corrupt { 0 } else { copies })
    }

    /// A broken version of the record's date: impossible, `N/A`, US format or empty.
    fn bad_date(&mut self, fields: &[(&'static str, V)], field: &str) -> (&'static str, String) {
        let good = fields.iter().find_map(|(k, v)| match (k, v) {
            (k, V::Str(text)) if *k == field => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
            _ => None,
        });
        let year = good.map_or(2023, |d| d.year());
        match self.rng.random_range(0..4) {
            0 => {
                let text = self.pick(&["02-30", "02-31", "04-31", "13-01", "06-00"]);
                ("impossible_date", format!("{year}-{text}"))
            }
            1 => ("na_date", "N/A".to_owned()),
            2 => (
                "us_format_date",
                good.map_or_else(
                    || format!("03/14/{year}"),
                    |d| d.format("%m/%d/%Y").to_string(),
                ),
            ),
            _ => ("empty_date", String::new()),
        }
    }
}

fn clone_v(value: &V) -> V {
    match value {
        V::Str(text) => V::Str(text.clone()),
        V::Raw(text) => V::Raw(text.clone()),
        V::Null => V::Null,
    }
}

fn set(fields: &mut [(&'static str, V)], name: &str, value: V) {
    if let Some(slot) = fields.iter_mut().find(|(k, _)| *k == name) {
        slot.1 = value;
    }
}

/// One JSON object on one line, fields in the given order.
fn render(line: &mut String, fields: &[(&'static str, V)]) {
    line.push('{');
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        line.push('"');
        line.push_str(name);
        line.push_str("\":");
        match value {
            V::Null => line.push_str("null"),
            V::Raw(text) => line.push_str(text),
            V::Str(text) => {
                line.push('"');
                for c in text.chars() {
                    match c {
                        '"' => line.push_str("\\\""),
                        '\\' => line.push_str("\\\\"),
                        c if u32::from(c) < 0x20 => {
                            let _ = write!(line, "\\u{:04x}", u32::from(c));
                        }
                        c => line.push(c),
                    }
                }
                line.push('"');
            }
        }
    }
    line.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_lines_are_json_objects() {
        let mut line = String::new();
        render(
            &mut line,
            &[
                ("a", s("x\"y\\z")),
                ("b", V::Raw("1.5".into())),
                ("c", V::Null),
            ],
        );
        let value: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value, json!({"a": "x\"y\\z", "b": 1.5, "c": null}));
    }
}
