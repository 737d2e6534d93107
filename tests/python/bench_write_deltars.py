#!/usr/bin/env python3
"""delta-rs (the `deltalake` wheel) side of the write and maintenance benchmarks.

Usage:
  bench_write_deltars.py write TABLE --input FILE... [--partition-by COL] [--per-file]
  bench_write_deltars.py appends TABLE --appends N [--rows R] [--csv FILE]
  bench_write_deltars.py compact TABLE [--target-size BYTES]
  bench_write_deltars.py zorder TABLE --columns a,b [--target-size BYTES]
  bench_write_deltars.py vacuum TABLE [--retain-hours H] [--lite]
  bench_write_deltars.py merge TABLE --source FILE.parquet --key COL

`write`   JSON lines to Delta, as deltalake users do it: every file read with
          `pyarrow.json.read_json`, then `write_deltalake(TABLE, ..., mode="append",
          partition_by=[COL])`. By default the files are streamed (one file in memory at
          a time) into ONE `write_deltalake` call, so one commit, as `medilake table write`
          makes; `--per-file` instead calls `write_deltalake` once per file (one commit
          each). `result_date` is read as a string: pyarrow would otherwise infer
          `timestamp[s]` from `YYYY-MM-DD` and the partition values would differ from
          MediLake's (which keeps JSON strings as strings); every other column's type is
          inferred from the first file and then imposed on all files.
`appends` creates TABLE with one write of R rows (default 1), then makes N appends of R
          rows, each `write_deltalake(TABLE, <R-row pyarrow table>, mode="append")` on the
          path, timed from the call to its return; the same rows as
          crates/pipeline/benches/append_latency.rs. Prints the p50 of the first and of the
          last 100 appends (and p90, max, mean); `--csv` writes `append,ms` per append.
`compact` `DeltaTable(TABLE).optimize.compact(target_size=...)`.
`zorder`  `DeltaTable(TABLE).optimize.z_order(columns, target_size=...)`.
`vacuum`  `DeltaTable(TABLE).vacuum(retention_hours=H (default 0), dry_run=False,
          enforce_retention_duration=False, full=True)`: full mode lists the table's
          directory for untracked files too, as `medilake table vacuum` does; `--lite`
          only deletes the files named by tombstones.

`merge`   `DeltaTable(TABLE).merge(<the parquet file read with pyarrow>, "t.COL = s.COL",
          source_alias="s", target_alias="t").when_matched_update_all()
          .when_not_matched_insert_all().execute()`, the upsert of MERGE's benchmark.

Each command prints `key value` lines: its own in-process seconds and what delta-rs
reported. Whole-process time and peak memory are measured from outside (see
tests/bench/*.sh, which use /usr/bin/time -v).

Ends with os._exit after flushing: pyarrow's and delta-rs's native thread pools otherwise
abort the interpreter at exit in a fraction of runs (see tests/python/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def cmd_write(a: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.json as pj
    from deltalake import write_deltalake

    partition_by = [c for c in (a.partition_by or "").split(",") if c] or None
    files = a.input
    t0 = time.perf_counter()
    first = pj.read_json(
        files[0],
        parse_options=pj.ParseOptions(explicit_schema=pa.schema([("result_date", pa.string())])),
    )
    schema = first.schema
    parse = pj.ParseOptions(explicit_schema=schema)

    def tables():
        yield first
        for f in files[1:]:
            yield pj.read_json(f, parse_options=parse)

    rows = 0
    if a.per_file:
        for t in tables():
            rows += t.num_rows
            write_deltalake(a.table, t, mode="append", partition_by=partition_by)
    else:
        def batches():
            nonlocal rows, first
            for t in tables():
                rows += t.num_rows
                yield from t.to_batches()
            first = None  # let the first file's table go

        reader = pa.RecordBatchReader.from_batches(schema, batches())
        write_deltalake(a.table, reader, mode="append", partition_by=partition_by)
    seconds = time.perf_counter() - t0
    print(f"engine deltalake-{_version()}")
    print(f"rows {rows}")
    print(f"seconds {seconds:.3f}")
    print(f"rows_per_s {rows / seconds:.0f}")


def lab_table(first: int, rows: int):
    """The same rows as append_latency.rs's lab_batch."""
    import pyarrow as pa

    ids = range(first, first + rows)
    patient = [1_000_001 + i % 50_000 for i in ids]
    return pa.table(
        {
            "lab_result_id": pa.array([f"LR{i:010d}" for i in ids], pa.string()),
            "encounter_id": pa.array([p * 1000 + 7 for p in patient], pa.int64()),
            "patient_id": pa.array(patient, pa.int64()),
            "loinc_code": pa.array(["2345-7"] * rows, pa.string()),
            "test_name": pa.array(["Glucose SerPl-mCnc"] * rows, pa.string()),
            "value": pa.array([70.0 + (i % 60) / 2.0 for i in ids], pa.float64()),
            "unit": pa.array(["mg/dL"] * rows, pa.string()),
            "reference_low": pa.array([70.0] * rows, pa.float64()),
            "reference_high": pa.array([99.0] * rows, pa.float64()),
            "result_date": pa.array(["2024-01-01"] * rows, pa.string()),
        }
    )


def percentile(sorted_values: list[float], p: float) -> float:
    import math

    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def cmd_appends(a: argparse.Namespace) -> None:
    from deltalake import write_deltalake

    if os.path.exists(a.table):
        sys.exit(f"{a.table} exists already")
    t0 = time.perf_counter()
    write_deltalake(a.table, lab_table(0, a.rows), mode="append")
    create_ms = (time.perf_counter() - t0) * 1e3
    latencies = []
    for i in range(a.appends):
        data = lab_table((i + 1) * a.rows, a.rows)
        t0 = time.perf_counter()
        write_deltalake(a.table, data, mode="append")
        latencies.append((time.perf_counter() - t0) * 1e3)
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("append,ms\n")
            for i, ms in enumerate(latencies, 1):
                f.write(f"{i},{ms:.3f}\n")
    w = min(100, len(latencies))
    s = sorted(latencies)
    print(f"engine deltalake-{_version()}")
    print(f"appends {a.appends}")
    print(f"rows_per_append {a.rows}")
    print(f"create_ms {create_ms:.2f}")
    print(f"p50_first100_ms {statistics.median(latencies[:w]):.2f}")
    print(f"p50_last100_ms {statistics.median(latencies[-w:]):.2f}")
    print(f"p50_ms {percentile(s, 50):.2f}")
    print(f"p90_ms {percentile(s, 90):.2f}")
    print(f"p99_ms {percentile(s, 99):.2f}")
    print(f"max_ms {s[-1]:.2f}")
    print(f"mean_ms {statistics.fmean(latencies):.2f}")
    print(f"total_s {sum(latencies) / 1e3:.2f}")


def _print_metrics(metrics: dict) -> None:
    for k, v in metrics.items():
        if k in ("filesAdded", "filesRemoved"):
            v = json.dumps(v, sort_keys=True)
        print(f"metric_{k} {v}")


def cmd_compact(a: argparse.Namespace) -> None:
    from deltalake import DeltaTable

    t0 = time.perf_counter()
    metrics = DeltaTable(a.table).optimize.compact(target_size=a.target_size)
    seconds = time.perf_counter() - t0
    print(f"engine deltalake-{_version()}")
    print(f"seconds {seconds:.3f}")
    _print_metrics(metrics)


def cmd_zorder(a: argparse.Namespace) -> None:
    from deltalake import DeltaTable

    columns = [c for c in a.columns.split(",") if c]
    t0 = time.perf_counter()
    metrics = DeltaTable(a.table).optimize.z_order(columns, target_size=a.target_size)
    seconds = time.perf_counter() - t0
    print(f"engine deltalake-{_version()}")
    print(f"seconds {seconds:.3f}")
    _print_metrics(metrics)


def cmd_vacuum(a: argparse.Namespace) -> None:
    from deltalake import DeltaTable

    t0 = time.perf_counter()
    deleted = DeltaTable(a.table).vacuum(
        retention_hours=a.retain_hours,
        dry_run=False,
        enforce_retention_duration=False,
        full=not a.lite,
    )
    seconds = time.perf_counter() - t0
    print(f"engine deltalake-{_version()}")
    print(f"seconds {seconds:.3f}")
    print(f"files_deleted {len(deleted)}")


def cmd_merge(a: argparse.Namespace) -> None:
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    t0 = time.perf_counter()
    source = pq.read_table(a.source)
    metrics = (
        DeltaTable(a.table)
        .merge(source, f"t.{a.key} = s.{a.key}", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    seconds = time.perf_counter() - t0
    print(f"engine deltalake-{_version()}")
    print(f"seconds {seconds:.3f}")
    _print_metrics(metrics)


def _version() -> str:
    import deltalake

    return deltalake.__version__


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("table")
    w.add_argument("--input", nargs="+", required=True)
    w.add_argument("--partition-by")
    w.add_argument("--per-file", action="store_true")
    ap = sub.add_parser("appends")
    ap.add_argument("table")
    ap.add_argument("--appends", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--csv")
    c = sub.add_parser("compact")
    c.add_argument("table")
    c.add_argument("--target-size", type=int)
    z = sub.add_parser("zorder")
    z.add_argument("table")
    z.add_argument("--columns", required=True)
    z.add_argument("--target-size", type=int)
    v = sub.add_parser("vacuum")
    v.add_argument("table")
    v.add_argument("--retain-hours", type=int, default=0)
    v.add_argument("--lite", action="store_true")
    m = sub.add_parser("merge")
    m.add_argument("table")
    m.add_argument("--source", required=True)
    m.add_argument("--key", required=True)
    a = p.parse_args()
    {
        "write": cmd_write,
        "appends": cmd_appends,
        "compact": cmd_compact,
        "zorder": cmd_zorder,
        "vacuum": cmd_vacuum,
        "merge": cmd_merge,
    }[a.command](a)


if __name__ == "__main__":
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 - report and exit non-zero
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
