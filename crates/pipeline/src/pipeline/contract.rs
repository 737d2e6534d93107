//! The source contract: the six EHR entities and their fields, in one place.
//!
//! The generator writes exactly these fields (plus the defects it injects), and bronze keeps
//! them as raw text: a field not listed here is "rescued" into `_rescued_data`.

/// One source entity: its name (also its folder or file stem under the data directory and its
/// bronze table name), its fields in contract order, its key and its main date field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    /// `patients`, `encounters`, ...
    pub name: &'static str,
    /// The contract fields, in order.
    pub fields: &'static [&'static str],
    /// The record's id field (null ids are one of the injected defects).
    pub id_field: &'static str,
    /// The date field the generator corrupts (impossible, `N/A`, US format, empty).
    pub date_field: &'static str,
}

/// Patients, with CDC: `op` is `I` for the first version and `U` for later ones.
pub const PATIENTS: Entity = Entity {
    name: "patients",
    fields: &[
        "patient_id",
        "first_name",
        "last_name",
        "birth_date",
        "sex",
        "address_line1",
        "address_line2",
        "city",
        "state",
        "zip",
        "phone",
        "email",
        "insurance",
        "insurance_member_id",
        "op",
        "updated_at",
    ],
    id_field: "patient_id",
    date_field: "birth_date",
};

/// Encounters (visits and stays).
pub const ENCOUNTERS: Entity = Entity {
    name: "encounters",
    fields: &[
        "encounter_id",
        "patient_id",
        "encounter_date",
        "admit_ts",
        "discharge_ts",
        "encounter_type",
        "department",
        "facility",
        "attending_provider",
    ],
    id_field: "encounter_id",
    date_field: "encounter_date",
};

/// Diagnoses (ICD-10-CM).
pub const DIAGNOSES: Entity = Entity {
    name: "diagnoses",
    fields: &[
        "diagnosis_id",
        "encounter_id",
        "patient_id",
        "icd10_code",
        "description",
        "diagnosis_date",
        "is_primary",
    ],
    id_field: "diagnosis_id",
    date_field: "diagnosis_date",
};

/// Procedures (CPT).
pub const PROCEDURES: Entity = Entity {
    name: "procedures",
    fields: &[
        "procedure_id",
        "encounter_id",
        "patient_id",
        "cpt_code",
        "description",
        "procedure_date",
    ],
    id_field: "procedure_id",
    date_field: "procedure_date",
};

/// Lab results (LOINC).
pub const LAB_RESULTS: Entity = Entity {
    name: "lab_results",
    fields: &[
        "lab_result_id",
        "encounter_id",
        "patient_id",
        "loinc_code",
        "test_name",
        "value",
        "unit",
        "reference_low",
        "reference_high",
        "result_date",
    ],
    id_field: "lab_result_id",
    date_field: "result_date",
};

/// Medication orders (RxNorm); `end_date` is null while the medication is active.
pub const MEDICATIONS: Entity = Entity {
    name: "medications",
    fields: &[
        "medication_id",
        "patient_id",
        "encounter_id",
        "rxnorm_code",
        "drug_name",
        "dose",
        "frequency",
        "start_date",
        "end_date",
        "status",
    ],
    id_field: "medication_id",
    date_field: "start_date",
};

/// Every entity, in the order the pipeline processes them.
pub const ENTITIES: [Entity; 6] = [
    PATIENTS,
    ENCOUNTERS,
    DIAGNOSES,
    PROCEDURES,
    LAB_RESULTS,
    MEDICATIONS,
];

/// The entity called `name`, if it is one of the six.
#[must_use]
pub fn entity(name: &str) -> Option<Entity> {
    ENTITIES.iter().copied().find(|e| e.name == name)
}
