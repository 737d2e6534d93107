#!/usr/bin/env python3
"""Write the sample Delta table data/sample/patients with delta-rs.

Usage (from the repository root):

    .venv/bin/python data/sample/make_sample.py            # writes data/sample/patients
    .venv/bin/python data/sample/make_sample.py OUT_DIR    # writes OUT_DIR instead

The rows are synthetic and deterministic (no randomness, fixed dates and times): 40
made-up patients partitioned by `state`. The table has three commits:

  v0  WRITE   create the table with patients 1-30   (partitioned by state)
  v1  WRITE   append patients 31-40, recording app transaction `ingest-job` -> 1
  v2  DELETE  delete the inactive patients (`active = false`), which rewrites the
              files holding them (delta-rs does not write deletion vectors)

What is *not* deterministic: delta-rs names data files with random UUIDs, the table id
is a fresh GUID and commitInfo timestamps are the wall-clock time of the run. So
re-running the script produces the same rows but a different set of file names.

The target directory is removed first. Needs the `deltalake` and `pyarrow` packages
(the repository's .venv has them; `tests/interop-setup.sh` creates it).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake

FIRST_NAMES = [
    "Ada", "Bruno", "Chioma", "Dmitri", "Elif", "Farid", "Greta", "Hiro",
    "Ines", "Jonas", "Kalani", "Leila", "Mateo", "Nadia", "Oskar", "Priya",
    "Quinn", "Rosa", "Sven", "Tala",
]
LAST_NAMES = ["Adler", "Berg", "Costa", "Dubois", "Eze", "Fischer", "Garcia", "Hale"]
STATES = ["CA", "NY", "TX"]

SCHEMA = pa.schema(
    [
        pa.field("patient_id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("birth_date", pa.date32()),
        pa.field("state", pa.string()),
        pa.field("admitted_at", pa.timestamp("us", tz="UTC")),
        pa.field("weight_kg", pa.float64()),
        pa.field("copay", pa.decimal128(8, 2)),
        pa.field("active", pa.bool_()),
    ]
)


def patient(i: int) -> dict:
    """Patient number i (1-based); every field is a pure function of i."""
    name = f"{FIRST_NAMES[(i * 7) % len(FIRST_NAMES)]} {LAST_NAMES[(i * 3) % len(LAST_NAMES)]}"
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=(i * 977) % 27000)
    admitted = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
        hours=i * 37, minutes=(i * 13) % 60, seconds=i % 60
    )
    return {
        "patient_id": i,
        # every 11th patient has no name on file, to show nulls
        "name": None if i % 11 == 0 else name,
        "birth_date": birth,
        "state": STATES[i % len(STATES)],
        "admitted_at": admitted,
        "weight_kg": None if i % 13 == 0 else round(48.0 + (i * 17 % 600) / 10.0, 1),
        "copay": Decimal(f"{(i * 523) % 5000 / 100:.2f}"),
        "active": i % 6 != 0,
    }


def batch(ids: range) -> pa.Table:
    return pa.Table.from_pylist([patient(i) for i in ids], schema=SCHEMA)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "patients"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    uri = str(out)
    props = WriterProperties(compression="SNAPPY")

    write_deltalake(
        uri,
        batch(range(1, 31)),
        partition_by=["state"],
        mode="error",
        name="patients",
        description="Synthetic patients (sample data, no real people)",
        configuration={"delta.logRetentionDuration": "interval 3650 days"},
        writer_properties=props,
        commit_properties=CommitProperties(custom_metadata={"source": "make_sample.py"}),
    )
    write_deltalake(
        uri,
        batch(range(31, 41)),
        mode="append",
        writer_properties=props,
        commit_properties=CommitProperties(
            custom_metadata={"source": "make_sample.py"},
            app_transactions=[Transaction(app_id="ingest-job", version=1)],
        ),
    )
    DeltaTable(uri).delete(
        "active = false",
        writer_properties=props,
        commit_properties=CommitProperties(custom_metadata={"source": "make_sample.py"}),
    )

    table = DeltaTable(uri)
    rows = table.to_pyarrow_table().num_rows
    print(f"wrote {uri}: version {table.version()}, {rows} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: pyarrow's and delta-rs's native thread pools race at
    # exit and abort with status 134 after all work is done (same workaround as
    # tests/python/make_deltars_tables.py). Everything is written and flushed by now.
    os._exit(0)
