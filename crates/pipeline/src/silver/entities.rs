//! The silver specs of the six EHR entities: typed columns and declared rules.
//!
//! Rule actions: a record without its id, its patient, or a date the row cannot stand
//! without is quarantined; so is an impossible value (an unparsable date, a discharge before
//! the admission, a malformed code, a non-numeric lab value, an unknown category). A missing
//! lab value is only counted (`expect`): the result exists, its value was not reported.

use super::conform::{Action, Check, Column, EntitySpec, Kind, Rule};
use super::parse::CodeSystem;

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

const fn rule(name: &'static str, check: Check, action: Action) -> Rule {
    Rule {
        name,
        check,
        action,
    }
}

/// `patients` (every CDC version; SCD Type 2 is built from these rows).
pub const PATIENTS: EntitySpec = EntitySpec {
    entity: "patients",
    table: "patients_scd",
    key: "patient_id",
    partition_by: None,
    version_column: Some("updated_at"),
    columns: &[
        col("patient_id", Kind::Text),
        col("first_name", Kind::Text),
        col("last_name", Kind::Text),
        col("birth_date", Kind::Date),
        col("sex", Kind::Upper),
        col("address_line1", Kind::Text),
        col("address_line2", Kind::Text),
        col("city", Kind::Text),
        col("state", Kind::Upper),
        col("zip", Kind::Text),
        col("phone", Kind::Text),
        col("email", Kind::Text),
        col("insurance", Kind::Text),
        col("insurance_member_id", Kind::Text),
        col("op", Kind::Upper),
        col("updated_at", Kind::Timestamp),
    ],
    rules: &[
        rule(
            "id_not_null",
            Check::NotNull("patient_id"),
            Action::Quarantine,
        ),
        rule(
            "valid_birth_date",
            Check::Parses("birth_date"),
            Action::Quarantine,
        ),
        rule(
            "updated_at_present",
            Check::NotNull("updated_at"),
            Action::Quarantine,
        ),
        rule(
            "valid_updated_at",
            Check::Parses("updated_at"),
            Action::Quarantine,
        ),
        rule(
            "known_op",
            Check::OneOf("op", &["I", "U"]),
            Action::Quarantine,
        ),
        rule(
            "known_sex",
            Check::OneOf("sex", &["F", "M", "U", "X"]),
            Action::Expect,
        ),
    ],
};

/// `encounters`.
pub const ENCOUNTERS: EntitySpec = EntitySpec {
    entity: "encounters",
    table: "encounters_clean",
    key: "encounter_id",
    partition_by: Some(("encounter_date", "encounter_month")),
    version_column: None,
    columns: &[
        col("encounter_id", Kind::Text),
        col("patient_id", Kind::Text),
        col("encounter_date", Kind::Date),
        col("admit_ts", Kind::Timestamp),
        col("discharge_ts", Kind::Timestamp),
        col("encounter_type", Kind::Lower),
        col("department", Kind::Text),
        col("facility", Kind::Text),
        col("attending_provider", Kind::Text),
    ],
    rules: &[
        rule(
            "id_not_null",
            Check::NotNull("encounter_id"),
            Action::Quarantine,
        ),
        rule(
            "patient_id_not_null",
            Check::NotNull("patient_id"),
            Action::Quarantine,
        ),
        rule(
            "encounter_date_present",
            Check::NotNull("encounter_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_encounter_date",
            Check::Parses("encounter_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_admit_ts",
            Check::Parses("admit_ts"),
            Action::Quarantine,
        ),
        rule(
            "valid_discharge_ts",
            Check::Parses("discharge_ts"),
            Action::Quarantine,
        ),
        rule(
            "discharge_after_admit",
            Check::NotBefore {
                later: "discharge_ts",
                earlier: "admit_ts",
            },
            Action::Quarantine,
        ),
        rule(
            "known_encounter_type",
            Check::OneOf("encounter_type", &["inpatient", "outpatient", "emergency"]),
            Action::Quarantine,
        ),
    ],
};

/// `diagnoses`.
pub const DIAGNOSES: EntitySpec = EntitySpec {
    entity: "diagnoses",
    table: "diagnoses_clean",
    key: "diagnosis_id",
    partition_by: None,
    version_column: None,
    columns: &[
        col("diagnosis_id", Kind::Text),
        col("encounter_id", Kind::Text),
        col("patient_id", Kind::Text),
        col("icd10_code", Kind::Code(CodeSystem::Icd10)),
        col("description", Kind::Text),
        col("diagnosis_date", Kind::Date),
        col("is_primary", Kind::Flag),
    ],
    rules: &[
        rule(
            "id_not_null",
            Check::NotNull("diagnosis_id"),
            Action::Quarantine,
        ),
        rule(
            "patient_id_not_null",
            Check::NotNull("patient_id"),
            Action::Quarantine,
        ),
        rule(
            "icd10_present",
            Check::NotNull("icd10_code"),
            Action::Quarantine,
        ),
        rule(
            "icd10_format",
            Check::Parses("icd10_code"),
            Action::Quarantine,
        ),
        rule(
            "diagnosis_date_present",
            Check::NotNull("diagnosis_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_diagnosis_date",
            Check::Parses("diagnosis_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_is_primary",
            Check::Parses("is_primary"),
            Action::Expect,
        ),
    ],
};

/// `procedures`.
pub const PROCEDURES: EntitySpec = EntitySpec {
    entity: "procedures",
    table: "procedures_clean",
    key: "procedure_id",
    partition_by: None,
    version_column: None,
    columns: &[
        col("procedure_id", Kind::Text),
        col("encounter_id", Kind::Text),
        col("patient_id", Kind::Text),
        col("cpt_code", Kind::Code(CodeSystem::Cpt)),
        col("description", Kind::Text),
        col("procedure_date", Kind::Date),
    ],
    rules: &[
        rule(
            "id_not_null",
            Check::NotNull("procedure_id"),
            Action::Quarantine,
        ),
        rule(
            "patient_id_not_null",
            Check::NotNull("patient_id"),
            Action::Quarantine,
        ),
        rule(
            "cpt_present",
            Check::NotNull("cpt_code"),
            Action::Quarantine,
        ),
        rule("cpt_format", Check::Parses("cpt_code"), Action::Quarantine),
        rule(
            "procedure_date_present",
            Check::NotNull("procedure_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_procedure_date",
            Check::Parses("procedure_date"),
            Action::Quarantine,
        ),
    ],
};

/// `lab_results`.
pub const LAB_RESULTS: EntitySpec = EntitySpec {
    entity: "lab_results",
    table: "lab_results_clean",
    key: "lab_result_id",
    partition_by: Some(("result_date", "result_month")),
    version_column: None,
    columns: &[
        col("lab_result_id", Kind::Text),
        col("encounter_id", Kind::Text),
        col("patient_id", Kind::Text),
        col("loinc_code", Kind::Code(CodeSystem::Loinc)),
        col("test_name", Kind::Text),
        col("value", Kind::Number),
        col("unit", Kind::Text),
        col("reference_low", Kind::Number),
        col("reference_high", Kind::Number),
        col("result_date", Kind::Date),
    ],
    rules: &[
        rule(
            "id_not_null",
            Check::NotNull("lab_result_id"),
            Action::Quarantine,
        ),
        rule(
            "patient_id_not_null",
            Check::NotNull("patient_id"),
            Action::Quarantine,
        ),
        rule(
            "loinc_present",
            Check::NotNull("loinc_code"),
            Action::Quarantine,
        ),
        rule(
            "loinc_format",
            Check::Parses("loinc_code"),
            Action::Quarantine,
        ),
        rule("value_numeric", Check::Parses("value"), Action::Quarantine),
        rule("value_present", Check::NotNull("value"), Action::Expect),
        rule(
            "valid_reference_low",
            Check::Parses("reference_low"),
            Action::Quarantine,
        ),
        rule(
            "valid_reference_high",
            Check::Parses("reference_high"),
            Action::Quarantine,
        ),
        rule(
            "result_date_present",
            Check::NotNull("result_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_result_date",
            Check::Parses("result_date"),
            Action::Quarantine,
        ),
    ],
};

/// `medications`.
pub const MEDICATIONS: EntitySpec = EntitySpec {
    entity: "medications",
    table: "medications_clean",
    key: "medication_id",
    partition_by: None,
    version_column: None,
    columns: &[
        col("medication_id", Kind::Text),
        col("patient_id", Kind::Text),
        col("encounter_id", Kind::Text),
        col("rxnorm_code", Kind::Code(CodeSystem::RxNorm)),
        col("drug_name", Kind::Text),
        col("dose", Kind::Text),
        col("frequency", Kind::Text),
        col("start_date", Kind::Date),
        col("end_date", Kind::Date),
        col("status", Kind::Lower),
    ],
    rules: &[
        rule(
            "id_not_null",
            Check::NotNull("medication_id"),
            Action::Quarantine,
        ),
        rule(
            "patient_id_not_null",
            Check::NotNull("patient_id"),
            Action::Quarantine,
        ),
        rule(
            "rxnorm_format",
            Check::Parses("rxnorm_code"),
            Action::Quarantine,
        ),
        rule(
            "start_date_present",
            Check::NotNull("start_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_start_date",
            Check::Parses("start_date"),
            Action::Quarantine,
        ),
        rule(
            "valid_end_date",
            Check::Parses("end_date"),
            Action::Quarantine,
        ),
        rule(
            "end_after_start",
            Check::NotBefore {
                later: "end_date",
                earlier: "start_date",
            },
            Action::Quarantine,
        ),
        rule(
            "known_status",
            Check::OneOf("status", &["active", "completed", "stopped", "on-hold"]),
            Action::Expect,
        ),
    ],
};

/// Every entity, in pipeline order.
pub const ALL: [&EntitySpec; 6] = [
    &PATIENTS,
    &ENCOUNTERS,
    &DIAGNOSES,
    &PROCEDURES,
    &LAB_RESULTS,
    &MEDICATIONS,
];
