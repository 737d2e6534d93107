//! Reference tables of the synthetic generator: real LOINC, ICD-10-CM, CPT and RxNorm codes
//! (with plausible adult reference ranges and units for the labs), and the made-up names,
//! places and facilities synthetic patients are drawn from. No real person is described.

/// A LOINC lab test: code, name, unit, reference range (low, high), and the decimals a value
/// is reported with.
pub(crate) struct Lab {
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) low: f64,
    pub(crate) high: f64,
    pub(crate) decimals: usize,
}

const fn lab(
    code: &'static str,
    name: &'static str,
    unit: &'static str,
    low: f64,
    high: f64,
    decimals: usize,
) -> Lab {
    Lab {
        code,
        name,
        unit,
        low,
        high,
        decimals,
    }
}

/// Common chemistry, haematology, lipid, liver, thyroid and coagulation tests.
pub(crate) const LABS: &[Lab] = &[
    lab(
        "2345-7",
        "Glucose [Mass/volume] in Serum or Plasma",
        "mg/dL",
        70.0,
        99.0,
        0,
    ),
    lab(
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "%",
        4.0,
        5.6,
        1,
    ),
    lab(
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        0.6,
        1.3,
        2,
    ),
    lab(
        "3094-0",
        "Urea nitrogen [Mass/volume] in Serum or Plasma",
        "mg/dL",
        7.0,
        20.0,
        0,
    ),
    lab(
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        135.0,
        145.0,
        0,
    ),
    lab(
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        3.5,
        5.1,
        1,
    ),
    lab(
        "2075-0",
        "Chloride [Moles/volume] in Serum or Plasma",
        "mmol/L",
        98.0,
        107.0,
        0,
    ),
    lab(
        "2028-9",
        "Carbon dioxide, total [Moles/volume] in Serum or Plasma",
        "mmol/L",
        22.0,
        29.0,
        0,
    ),
    lab(
        "17861-6",
        "Calcium [Mass/volume] in Serum or Plasma",
        "mg/dL",
        8.6,
        10.3,
        1,
    ),
    lab(
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        12.0,
        17.5,
        1,
    ),
    lab(
        "4544-3",
        "Hematocrit [Volume Fraction] of Blood by Automated count",
        "%",
        36.0,
        50.0,
        1,
    ),
    lab(
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "10*3/uL",
        4.5,
        11.0,
        1,
    ),
    lab(
        "777-3",
        "Platelets [#/volume] in Blood by Automated count",
        "10*3/uL",
        150.0,
        400.0,
        0,
    ),
    lab(
        "789-8",
        "Erythrocytes [#/volume] in Blood by Automated count",
        "10*6/uL",
        4.2,
        5.9,
        2,
    ),
    lab(
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        100.0,
        199.0,
        0,
    ),
    lab(
        "2571-8",
        "Triglyceride [Mass/volume] in Serum or Plasma",
        "mg/dL",
        35.0,
        149.0,
        0,
    ),
    lab(
        "2085-9",
        "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
        "mg/dL",
        40.0,
        60.0,
        0,
    ),
    lab(
        "13457-7",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
        "mg/dL",
        50.0,
        99.0,
        0,
    ),
    lab(
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        7.0,
        56.0,
        0,
    ),
    lab(
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        10.0,
        40.0,
        0,
    ),
    lab(
        "1975-2",
        "Bilirubin.total [Mass/volume] in Serum or Plasma",
        "mg/dL",
        0.1,
        1.2,
        1,
    ),
    lab(
        "1751-7",
        "Albumin [Mass/volume] in Serum or Plasma",
        "g/dL",
        3.5,
        5.0,
        1,
    ),
    lab(
        "3016-3",
        "Thyrotropin [Units/volume] in Serum or Plasma",
        "m[IU]/L",
        0.4,
        4.0,
        2,
    ),
    lab("5902-2", "Prothrombin time (PT)", "s", 11.0, 13.5, 1),
    lab(
        "6301-6",
        "INR in Platelet poor plasma by Coagulation assay",
        "{INR}",
        0.8,
        1.2,
        1,
    ),
    lab(
        "30522-7",
        "C reactive protein [Mass/volume] in Serum or Plasma by High sensitivity method",
        "mg/L",
        0.0,
        3.0,
        1,
    ),
    lab(
        "2532-0",
        "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        140.0,
        280.0,
        0,
    ),
];

/// ICD-10-CM codes with their descriptions.
pub(crate) const ICD10: &[(&str, &str)] = &[
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("I10", "Essential (primary) hypertension"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    (
        "J44.9",
        "Chronic obstructive pulmonary disease, unspecified",
    ),
    (
        "I25.10",
        "Atherosclerotic heart disease of native coronary artery without angina pectoris",
    ),
    ("I50.9", "Heart failure, unspecified"),
    ("N18.30", "Chronic kidney disease, stage 3 unspecified"),
    ("E03.9", "Hypothyroidism, unspecified"),
    (
        "F32.9",
        "Major depressive disorder, single episode, unspecified",
    ),
    ("F41.1", "Generalized anxiety disorder"),
    ("M54.50", "Low back pain, unspecified"),
    ("J06.9", "Acute upper respiratory infection, unspecified"),
    ("J18.9", "Pneumonia, unspecified organism"),
    ("N39.0", "Urinary tract infection, site not specified"),
    ("R07.9", "Chest pain, unspecified"),
    ("R51.9", "Headache, unspecified"),
    (
        "K21.9",
        "Gastro-esophageal reflux disease without esophagitis",
    ),
    ("I48.91", "Unspecified atrial fibrillation"),
    ("E66.9", "Obesity, unspecified"),
    ("M17.11", "Unilateral primary osteoarthritis, right knee"),
    ("A09", "Infectious gastroenteritis and colitis, unspecified"),
    ("U07.1", "COVID-19"),
    ("I63.9", "Cerebral infarction, unspecified"),
    ("K35.80", "Unspecified acute appendicitis"),
    (
        "Z00.00",
        "Encounter for general adult medical examination without abnormal findings",
    ),
];

/// CPT codes with short descriptions.
pub(crate) const CPT: &[(&str, &str)] = &[
    (
        "99203",
        "Office or other outpatient visit, new patient, low MDM",
    ),
    (
        "99213",
        "Office or other outpatient visit, established patient, low MDM",
    ),
    (
        "99214",
        "Office or other outpatient visit, established patient, moderate MDM",
    ),
    ("99284", "Emergency department visit, moderate MDM"),
    ("99285", "Emergency department visit, high MDM"),
    ("99223", "Initial hospital inpatient care, high MDM"),
    ("99232", "Subsequent hospital inpatient care, moderate MDM"),
    (
        "99238",
        "Hospital discharge day management, 30 minutes or less",
    ),
    ("36415", "Collection of venous blood by venipuncture"),
    ("80053", "Comprehensive metabolic panel"),
    ("85025", "Complete blood count with automated differential"),
    ("83036", "Hemoglobin A1c"),
    ("80061", "Lipid panel"),
    (
        "93000",
        "Electrocardiogram, routine, with interpretation and report",
    ),
    ("71046", "Radiologic examination, chest, 2 views"),
    (
        "70450",
        "Computed tomography, head or brain, without contrast",
    ),
    (
        "74177",
        "Computed tomography, abdomen and pelvis, with contrast",
    ),
    ("93306", "Echocardiography, transthoracic, complete"),
    ("45378", "Colonoscopy, flexible, diagnostic"),
    ("44970", "Laparoscopy, surgical, appendectomy"),
    ("27447", "Arthroplasty, knee, total"),
    ("90471", "Immunization administration, one vaccine"),
    (
        "96372",
        "Therapeutic injection, subcutaneous or intramuscular",
    ),
    ("81001", "Urinalysis, automated, with microscopy"),
];

/// RxNorm clinical drugs: code, name, dose, frequency.
pub(crate) const RXNORM: &[(&str, &str, &str, &str)] = &[
    (
        "860975",
        "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
        "500 mg",
        "once daily",
    ),
    (
        "314076",
        "lisinopril 10 MG Oral Tablet",
        "10 mg",
        "once daily",
    ),
    (
        "197361",
        "amlodipine 5 MG Oral Tablet",
        "5 mg",
        "once daily",
    ),
    (
        "259255",
        "atorvastatin 80 MG Oral Tablet",
        "80 mg",
        "once daily at bedtime",
    ),
    (
        "312961",
        "simvastatin 20 MG Oral Tablet",
        "20 mg",
        "once daily at bedtime",
    ),
    (
        "310798",
        "hydrochlorothiazide 25 MG Oral Tablet",
        "25 mg",
        "once daily",
    ),
    (
        "866924",
        "metoprolol tartrate 25 MG Oral Tablet",
        "25 mg",
        "twice daily",
    ),
    (
        "309362",
        "clopidogrel 75 MG Oral Tablet",
        "75 mg",
        "once daily",
    ),
    (
        "855332",
        "warfarin sodium 5 MG Oral Tablet",
        "5 mg",
        "once daily",
    ),
    (
        "313782",
        "acetaminophen 325 MG Oral Tablet",
        "650 mg",
        "every 6 hours as needed",
    ),
    (
        "310965",
        "ibuprofen 200 MG Oral Tablet",
        "400 mg",
        "every 8 hours as needed",
    ),
    (
        "197806",
        "ibuprofen 600 MG Oral Tablet",
        "600 mg",
        "three times daily",
    ),
    (
        "849574",
        "naproxen sodium 220 MG Oral Tablet",
        "220 mg",
        "twice daily",
    ),
    (
        "308182",
        "amoxicillin 250 MG Oral Capsule",
        "500 mg",
        "three times daily",
    ),
    (
        "834060",
        "penicillin V potassium 250 MG Oral Tablet",
        "250 mg",
        "four times daily",
    ),
    (
        "745679",
        "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        "2 puffs",
        "every 4 hours as needed",
    ),
    (
        "895994",
        "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
        "2 puffs",
        "twice daily",
    ),
    (
        "312617",
        "prednisone 5 MG Oral Tablet",
        "10 mg",
        "once daily",
    ),
    (
        "1049221",
        "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet",
        "1 tablet",
        "every 6 hours as needed",
    ),
    (
        "106892",
        "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML Injectable Suspension",
        "20 units",
        "twice daily",
    ),
];

/// Synthetic given names.
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ava", "Liam", "Noah", "Emma", "Olivia", "Mateo", "Sofia", "Elijah", "Amara", "Hiro", "Priya",
    "Lucas", "Chloe", "Diego", "Fatima", "Grace", "Ivan", "Jamal", "Keiko", "Leila", "Marco",
    "Nadia", "Oscar", "Rosa", "Samuel", "Tara", "Uma", "Victor", "Wen", "Yusuf",
];

/// Synthetic family names.
pub(crate) const LAST_NAMES: &[&str] = &[
    "Abernathy",
    "Bergstrom",
    "Castellano",
    "Dunmore",
    "Eklund",
    "Fairbanks",
    "Galloway",
    "Holloway",
    "Iverson",
    "Jablonski",
    "Kowalczyk",
    "Lindqvist",
    "Montague",
    "Nakamura",
    "Okonkwo",
    "Pemberton",
    "Quintero",
    "Rasmussen",
    "Sandoval",
    "Thornbury",
    "Underwood",
    "Valdivia",
    "Whitcombe",
    "Yamamura",
    "Zielinski",
];

/// Street names for synthetic addresses.
pub(crate) const STREETS: &[&str] = &[
    "Maple Ave",
    "Oak St",
    "Cedar Ln",
    "Willow Dr",
    "Birch Rd",
    "Elm St",
    "Harbor Blvd",
    "Sunset Way",
    "Lakeview Ter",
    "Orchard Ct",
    "Ridge Rd",
    "Meadow Ln",
    "Park Pl",
    "Hillcrest Dr",
    "River Rd",
];

/// Cities with their state and a ZIP prefix.
pub(crate) const CITIES: &[(&str, &str, &str)] = &[
    ("Springfield", "IL", "627"),
    ("Riverton", "WY", "825"),
    ("Fairview", "OR", "970"),
    ("Greenville", "SC", "296"),
    ("Franklin", "TN", "370"),
    ("Madison", "WI", "537"),
    ("Georgetown", "TX", "786"),
    ("Salem", "MA", "019"),
    ("Clinton", "IA", "527"),
    ("Arlington", "VA", "222"),
];

/// Insurance payers.
pub(crate) const INSURERS: &[&str] = &[
    "Aetna",
    "Blue Cross Blue Shield",
    "Cigna",
    "UnitedHealthcare",
    "Humana",
    "Kaiser Permanente",
    "Medicare",
    "Medicaid",
    "Self-pay",
];

/// Facilities of the synthetic health system.
pub(crate) const FACILITIES: &[&str] = &[
    "St. Brigid Medical Center",
    "Riverside General Hospital",
    "Lakeside Community Clinic",
    "Northgate Regional Hospital",
];

/// Departments for inpatient stays.
pub(crate) const INPATIENT_DEPARTMENTS: &[&str] = &[
    "Cardiology",
    "Internal Medicine",
    "Orthopedics",
    "General Surgery",
    "Neurology",
    "Pulmonology",
];

/// Departments for outpatient visits.
pub(crate) const OUTPATIENT_DEPARTMENTS: &[&str] = &[
    "Family Medicine",
    "Endocrinology",
    "Cardiology",
    "Nephrology",
    "Psychiatry",
    "Orthopedics",
];
