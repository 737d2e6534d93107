#!/usr/bin/env python3
"""Deterministic generator of lab-result JSON lines for the write and maintenance benchmarks.

Usage: gen_labs.py OUT_DIR N [--parts P] [--seed S] [--jobs J]

Writes N rows as P part files OUT_DIR/part-00000.jsonl ... (default 10 parts; the
first N % P parts get one row more). Python standard library only. The output is
byte-identical for the same N, P and seed, whatever --jobs is: every part has its own
random.Random seeded with (seed, part index).

Columns, one JSON object per line, always in this order:

  lab_result_id   string  "LR" + 10 digits, unique, ascending within a part
  encounter_id    long    patient_id * 1000 + a visit number 0..199
  patient_id      long    ~50,000 patients (1,000,001 .. 1,050,000), mildly skewed
  loinc_code      string  one of 44 real LOINC codes, weighted (panels are common)
  test_name       string  the LOINC short name of the code
  value           double  normal around the reference range, 2 decimals; ~3% null
  unit            string  the UCUM unit of the code
  reference_low   double
  reference_high  double
  result_date     string  YYYY-MM-DD, uniform over 1,840 days from 2019-01-01

Rows are in random date order (as lab feeds arrive batched by source, not by day), so
every part touches nearly every date partition.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
from multiprocessing import Pool

# (code, short name, unit, reference low, reference high, weight)
LOINC = [
    ("2345-7", "Glucose SerPl-mCnc", "mg/dL", 70.0, 99.0, 9),
    ("2160-0", "Creat SerPl-mCnc", "mg/dL", 0.6, 1.3, 9),
    ("3094-0", "BUN SerPl-mCnc", "mg/dL", 7.0, 20.0, 8),
    ("2951-2", "Sodium SerPl-sCnc", "mmol/L", 135.0, 145.0, 9),
    ("2823-3", "Potassium SerPl-sCnc", "mmol/L", 3.5, 5.1, 9),
    ("2075-0", "Chloride SerPl-sCnc", "mmol/L", 98.0, 107.0, 8),
    ("2028-9", "CO2 SerPl-sCnc", "mmol/L", 22.0, 29.0, 8),
    ("17861-6", "Calcium SerPl-mCnc", "mg/dL", 8.6, 10.3, 7),
    ("2885-2", "Prot SerPl-mCnc", "g/dL", 6.0, 8.3, 4),
    ("1751-7", "Albumin SerPl-mCnc", "g/dL", 3.5, 5.0, 4),
    ("1975-2", "Bilirub SerPl-mCnc", "mg/dL", 0.1, 1.2, 4),
    ("6768-6", "ALP SerPl-cCnc", "U/L", 44.0, 147.0, 4),
    ("1742-6", "ALT SerPl-cCnc", "U/L", 7.0, 56.0, 4),
    ("1920-8", "AST SerPl-cCnc", "U/L", 10.0, 40.0, 4),
    ("718-7", "Hgb Bld-mCnc", "g/dL", 12.0, 17.5, 8),
    ("4544-3", "Hct VFr Bld Auto", "%", 36.0, 50.0, 8),
    ("6690-2", "WBC # Bld Auto", "10*3/uL", 4.5, 11.0, 8),
    ("789-8", "RBC # Bld Auto", "10*6/uL", 4.2, 5.9, 7),
    ("777-3", "Platelet # Bld Auto", "10*3/uL", 150.0, 400.0, 7),
    ("787-2", "MCV RBC Auto", "fL", 80.0, 100.0, 6),
    ("785-6", "MCH RBC Qn Auto", "pg", 27.0, 33.0, 6),
    ("786-4", "MCHC RBC Auto-mCnc", "g/dL", 32.0, 36.0, 6),
    ("788-0", "RDW RBC Auto-Rto", "%", 11.5, 14.5, 6),
    ("4548-4", "Hgb A1c MFr Bld", "%", 4.0, 5.6, 3),
    ("2093-3", "Cholest SerPl-mCnc", "mg/dL", 125.0, 200.0, 3),
    ("2085-9", "HDLc SerPl-mCnc", "mg/dL", 40.0, 60.0, 3),
    ("13457-7", "LDLc SerPl Calc-mCnc", "mg/dL", 0.0, 100.0, 3),
    ("2571-8", "Trigl SerPl-mCnc", "mg/dL", 0.0, 150.0, 3),
    ("3016-3", "TSH SerPl-aCnc", "m[IU]/L", 0.4, 4.0, 2),
    ("3024-7", "T4 Free SerPl-mCnc", "ng/dL", 0.8, 1.8, 1),
    ("2498-4", "Iron SerPl-mCnc", "ug/dL", 60.0, 170.0, 1),
    ("2276-4", "Ferritin SerPl-mCnc", "ng/mL", 20.0, 250.0, 1),
    ("2132-9", "Vit B12 SerPl-mCnc", "pg/mL", 200.0, 900.0, 1),
    ("1989-3", "25(OH)D3 SerPl-mCnc", "ng/mL", 30.0, 100.0, 1),
    ("2601-3", "Magnesium SerPl-mCnc", "mg/dL", 1.7, 2.2, 2),
    ("2777-1", "Phosphate SerPl-mCnc", "mg/dL", 2.5, 4.5, 2),
    ("1988-5", "CRP SerPl-mCnc", "mg/L", 0.0, 10.0, 2),
    ("5902-2", "PT Time PPP", "s", 11.0, 13.5, 2),
    ("6301-6", "INR PPP", "{INR}", 0.8, 1.1, 2),
    ("33914-3", "GFR/BSA pred SerPl MDRD", "mL/min/{1.73_m2}", 60.0, 120.0, 3),
    ("2157-6", "CK SerPl-cCnc", "U/L", 22.0, 198.0, 1),
    ("14804-9", "LDH SerPl L to P-cCnc", "U/L", 140.0, 280.0, 1),
    ("10839-9", "Troponin I SerPl-mCnc", "ng/mL", 0.0, 0.04, 1),
    ("30934-4", "BNP SerPl-mCnc", "pg/mL", 0.0, 100.0, 1),
]

PATIENTS = 50_000
FIRST_PATIENT = 1_000_001
DAYS = 1_840
FIRST_DAY = dt.date(2019, 1, 1)
NULL_FRACTION = 0.03


def part_rows(n: int, parts: int, i: int) -> tuple[int, int]:
    """(first row index, row count) of part i."""
    base, extra = divmod(n, parts)
    start = i * base + min(i, extra)
    return start, base + (1 if i < extra else 0)


def write_part(args: tuple[str, int, int, int, int]) -> str:
    out_dir, n, parts, i, seed = args
    start, count = part_rows(n, parts, i)
    rng = random.Random(f"{seed}/{i}")
    # Pre-rendered per-code JSON fragments: the loop only formats the varying fields.
    codes = []
    for code, name, unit, low, high, _w in LOINC:
        mid = (low + high) / 2
        sd = max((high - low) / 3, 0.01)
        tail = (
            f',"unit":"{unit}","reference_low":{low!r},"reference_high":{high!r},"result_date":"'
        )
        codes.append((f',"loinc_code":"{code}","test_name":"{name}","value":', mid, sd, tail))
    weights = [w for *_rest, w in LOINC]
    cum = []
    total = 0
    for w in weights:
        total += w
        cum.append(total)
    dates = [(FIRST_DAY + dt.timedelta(days=d)).isoformat() for d in range(DAYS)]
    path = os.path.join(out_dir, f"part-{i:05d}.jsonl")
    tmp = path + ".tmp"
    chunk = []
    random_ = rng.random
    gauss = rng.gauss
    randrange = rng.randrange
    choices = rng.choices
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in range(start, start + count):
            # Mild skew: a third of the rows come from the first 5,000 patients.
            if random_() < 1 / 3:
                patient = FIRST_PATIENT + randrange(PATIENTS // 10)
            else:
                patient = FIRST_PATIENT + randrange(PATIENTS)
            encounter = patient * 1000 + randrange(200)
            frag, mid, sd, tail = codes[choices(range(len(codes)), cum_weights=cum)[0]]
            if random_() < NULL_FRACTION:
                value = "null"
            else:
                value = f"{max(gauss(mid, sd), 0.0):.2f}"
            chunk.append(
                f'{{"lab_result_id":"LR{row:010d}","encounter_id":{encounter},'
                f'"patient_id":{patient}{frag}{value}{tail}{dates[randrange(DAYS)]}"}}\n'
            )
            if len(chunk) >= 10_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    os.replace(tmp, path)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("n", type=int)
    p.add_argument("--parts", type=int, default=10)
    p.add_argument("--seed", type=int, default=20240101)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    if a.n < 1 or a.parts < 1 or a.parts > a.n:
        p.error("need 1 <= parts <= n")
    os.makedirs(a.out_dir, exist_ok=True)
    tasks = [(a.out_dir, a.n, a.parts, i, a.seed) for i in range(a.parts)]
    if a.jobs > 1 and a.parts > 1:
        with Pool(min(a.jobs, a.parts)) as pool:
            for path in pool.imap_unordered(write_part, tasks):
                print(path, file=sys.stderr) if a.parts <= 20 else None
    else:
        for t in tasks:
            write_part(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
