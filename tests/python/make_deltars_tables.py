#!/usr/bin/env python3
"""Writes Delta tables with delta-rs for MediLake's read-interop tests.

Usage: make_deltars_tables.py OUT_DIR

For every table NAME it creates:
  OUT_DIR/NAME/                 the Delta table (written by delta-rs)
  OUT_DIR/NAME.expected.json    {"versions": {"0": [rows], "1": [rows], ...}}
and once:
  OUT_DIR/manifest.json         table names, latest versions, checkpoints, generator versions

The rows of each version are what delta-rs itself reads back at that version
(`DeltaTable(path, version=v).to_pyarrow_table()`), in the canonical JSON form of
interop_json.py, ordered by canonical line. The data is deterministic (fixed
seeds); file names, commit timestamps and UUIDs in the log are not.

Automatic post-commit checkpoints and log cleanup are switched off, so the only
checkpoints are the explicit `create_checkpoint()` calls listed in the manifest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import random
import shutil
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, PostCommitHookProperties, write_deltalake
from deltalake import __version__ as deltalake_version

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop_json  # noqa: E402

# No automatic checkpoints or log cleanup: the tables' shapes are what the script says.
HOOKS = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)

UTC = dt.timezone.utc


def write(path: Path, data: pa.Table, **kw) -> None:
    write_deltalake(str(path), data, post_commithook_properties=HOOKS, **kw)


def delete(path: Path, predicate: str) -> dict:
    return DeltaTable(str(path)).delete(predicate, post_commithook_properties=HOOKS)


def checkpoint(path: Path) -> int:
    t = DeltaTable(str(path))
    t.create_checkpoint()
    return t.version()


# ---------------------------------------------------------------- tables


def make_partitioned(path: Path) -> dict:
    """Partitioned by a string and an int column; NULL partition values; awkward characters."""
    rng = random.Random(101)
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("site", pa.string()),
            ("ward", pa.int32()),
            ("reading", pa.float64()),
            ("note", pa.string()),
        ]
    )
    sites = ["north", "south east", "a/b", "100%", "x y/z%20", None, "Zürich"]
    wards = [1, 2, -7, None]
    next_id = 0
    for _ in range(5):
        n = rng.randint(8, 16)
        rows = []
        for _ in range(n):
            rows.append(
                {
                    "id": next_id,
                    "site": rng.choice(sites),
                    "ward": rng.choice(wards),
                    "reading": round(rng.uniform(-50, 50), 3),
                    "note": rng.choice(["ok", None, "recheck", "ünïcødé ✓"]),
                }
            )
            next_id += 1
        write(path, pa.Table.from_pylist(rows, schema=schema), mode="append", partition_by=["site", "ward"])
    return {"partition_by": ["site", "ward"], "checkpoints": []}


def make_many_commits(path: Path) -> dict:
    """30 small appends, a checkpoint, 5 more appends."""
    rng = random.Random(202)
    schema = pa.schema([("id", pa.int64()), ("batch", pa.int32()), ("value", pa.string())])
    next_id = 0
    cps = []
    for batch in range(35):
        n = rng.randint(1, 4)
        rows = [{"id": next_id + i, "batch": batch, "value": f"v{rng.randint(0, 999):03d}"} for i in range(n)]
        next_id += n
        write(path, pa.Table.from_pylist(rows, schema=schema), mode="append")
        if batch == 29:
            cps.append(checkpoint(path))
    return {"partition_by": [], "checkpoints": cps}


def make_overwrite_delete(path: Path) -> dict:
    """append, append, overwrite, delete with a predicate, append."""
    rng = random.Random(303)
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64())])

    def batch(start: int, n: int) -> pa.Table:
        return pa.Table.from_pylist(
            [{"id": start + i, "name": f"p{start + i}", "score": round(rng.uniform(0, 100), 2)} for i in range(n)],
            schema=schema,
        )

    write(path, batch(0, 10), mode="append")  # v0
    write(path, batch(10, 10), mode="append")  # v1
    write(path, batch(100, 12), mode="overwrite")  # v2
    metrics = delete(path, "id >= 104 AND id < 108")  # v3
    assert metrics.get("num_deleted_rows") == 4, metrics
    write(path, batch(200, 5), mode="append")  # v4
    return {"partition_by": [], "checkpoints": []}


def make_schema_evolution(path: Path) -> dict:
    """append, append with an extra nullable column (schema_mode=merge), append."""
    rng = random.Random(404)
    s0 = pa.schema([("id", pa.int64()), ("name", pa.string())])
    s1 = pa.schema([("id", pa.int64()), ("name", pa.string()), ("weight_kg", pa.float64())])
    write(path, pa.Table.from_pylist([{"id": i, "name": f"n{i}"} for i in range(6)], schema=s0), mode="append")
    rows = [{"id": i, "name": f"n{i}", "weight_kg": (round(rng.uniform(40, 120), 1) if i % 3 else None)} for i in range(6, 12)]
    write(path, pa.Table.from_pylist(rows, schema=s1), mode="append", schema_mode="merge")
    rows = [{"id": i, "name": None if i == 13 else f"n{i}", "weight_kg": round(rng.uniform(40, 120), 1)} for i in range(12, 18)]
    write(path, pa.Table.from_pylist(rows, schema=s1), mode="append")
    return {"partition_by": [], "checkpoints": []}


def all_types_schema() -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.int32()),
            ("i8", pa.int8()),
            ("i16", pa.int16()),
            ("i32", pa.int32()),
            ("i64", pa.int64()),
            ("f32", pa.float32()),
            ("f64", pa.float64()),
            ("dec10_2", pa.decimal128(10, 2)),
            ("dec38_10", pa.decimal128(38, 10)),
            ("s", pa.string()),
            ("bin", pa.binary()),
            ("flag", pa.bool_()),
            ("d", pa.date32()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("ts_ntz", pa.timestamp("us")),
            ("ints", pa.list_(pa.int32())),
            ("st", pa.struct([("a", pa.int32()), ("b", pa.string())])),
            ("m", pa.map_(pa.string(), pa.int32())),
        ]
    )


def make_all_types(path: Path) -> dict:
    """Every primitive and nested type we support, with nulls and edge values. Two appends."""
    rng = random.Random(505)
    D = decimal.Decimal
    fixed = [
        # id, i8, i16, i32, i64, f32, f64, dec10_2, dec38_10, s, bin, flag, d, ts, ts_ntz, ints, st, m
        (0, 0, 0, 0, 0, 0.0, 0.0, D("0.00"), D("0E-10"), "", b"", False,
         dt.date(1970, 1, 1), dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(1970, 1, 1), [], {"a": 0, "b": ""}, []),
        (1, 127, 32767, 2147483647, 9223372036854775807, 3.4028234663852886e38, 1.7976931348623157e308,
         D("99999999.99"), D("9999999999999999999999999999.9999999999"), "héllo wörld ✓ 日本語 🩺", b"\x00\x01\xff\xfe",
         True, dt.date(9999, 12, 31), dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),
         dt.datetime(2262, 4, 11, 23, 47, 16, 854775), [1, None, 3], {"a": None, "b": "x"}, [("k1", 1), ("k2", None)]),
        (2, -128, -32768, -2147483648, -9223372036854775808, -1.5, -2.5e-300, D("-99999999.99"),
         D("-0.0000000001"), "line\nbreak \"quoted\" \\ tab\t", b"binary\x80data", False, dt.date(1, 1, 1),
         dt.datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC), dt.datetime(1677, 9, 21, 0, 12, 43, 145225),
         [None], {"a": -1, "b": None}, [("", 0)]),
        (3, None, None, None, None, float("nan"), float("nan"), None, None, None, None, None, None, None, None,
         None, None, None),
        (4, 1, 2, 3, 4, float("inf"), float("-inf"), D("12.30"), D("12345678901234567890.0123456789"), "ascii",
         b"\x7f", True, dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 12, 30, 45, 123456, tzinfo=UTC),
         dt.datetime(2024, 2, 29, 12, 30, 45, 123456), [7, 8, 9, 10], {"a": 42, "b": "forty-two"},
         [("a", 1), ("b", 2), ("c", 3)]),
        (5, -1, -2, -3, -4, float("-inf"), -0.0, D("-0.01"), D("1.5"), "Ωmega", b"\xde\xad\xbe\xef", None,
         dt.date(1969, 12, 31), dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         dt.datetime(1969, 12, 31, 23, 59, 59, 999999), [], None, []),
    ]
    names = all_types_schema().names
    first = [dict(zip(names, r)) for r in fixed]
    write(path, pa.Table.from_pylist(first, schema=all_types_schema()), mode="append")

    second = []
    for i in range(6, 40):
        null = lambda p=0.15: rng.random() < p  # noqa: E731
        second.append(
            {
                "id": i,
                "i8": None if null() else rng.randint(-128, 127),
                "i16": None if null() else rng.randint(-32768, 32767),
                "i32": None if null() else rng.randint(-(2**31), 2**31 - 1),
                "i64": None if null() else rng.randint(-(2**63), 2**63 - 1),
                "f32": None if null() else rng.uniform(-1e6, 1e6),
                "f64": None if null() else rng.uniform(-1e12, 1e12),
                "dec10_2": None if null() else D(rng.randint(-(10**10) + 1, 10**10 - 1)).scaleb(-2),
                "dec38_10": None if null() else D(rng.randint(-(10**38) + 1, 10**38 - 1)).scaleb(-10),
                "s": None if null() else "".join(rng.choice("abcxyzäöü€ 漢字") for _ in range(rng.randint(0, 12))),
                "bin": None if null() else bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 8))),
                "flag": None if null() else rng.random() < 0.5,
                "d": None if null() else dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(-20000, 20000)),
                "ts": None if null() else dt.datetime(2000, 1, 1, tzinfo=UTC)
                + dt.timedelta(microseconds=rng.randint(-(10**15), 10**15)),
                "ts_ntz": None if null() else dt.datetime(2000, 1, 1)
                + dt.timedelta(microseconds=rng.randint(-(10**15), 10**15)),
                "ints": None if null() else [None if null(0.1) else rng.randint(-1000, 1000) for _ in range(rng.randint(0, 5))],
                "st": None if null() else {"a": None if null() else rng.randint(0, 99), "b": None if null() else f"b{i}"},
                "m": None if null() else [(f"k{j}", None if null(0.1) else rng.randint(0, 9)) for j in range(rng.randint(0, 3))],
            }
        )
    write(path, pa.Table.from_pylist(second, schema=all_types_schema()), mode="append")
    return {"partition_by": [], "checkpoints": []}


def make_checkpointed_partitioned(path: Path) -> dict:
    """Partitioned by a date column; 12 appends, a checkpoint, 2 deletes."""
    rng = random.Random(606)
    schema = pa.schema([("id", pa.int64()), ("day", pa.date32()), ("patient", pa.string()), ("dose_mg", pa.int32())])
    next_id = 0
    for k in range(12):
        rows = []
        for _ in range(rng.randint(5, 12)):
            rows.append(
                {
                    "id": next_id,
                    "day": dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 9)),
                    "patient": f"P{rng.randint(1, 20):03d}",
                    "dose_mg": rng.choice([5, 10, 20, 40, None]),
                }
            )
            next_id += 1
        write(path, pa.Table.from_pylist(rows, schema=schema), mode="append", partition_by=["day"])
    cp = checkpoint(path)
    m1 = delete(path, "day = '2024-01-03'")  # whole partition: files removed only
    m2 = delete(path, "dose_mg = 40")  # data predicate: files rewritten
    assert m1.get("num_deleted_rows", 0) > 0 and m2.get("num_deleted_rows", 0) > 0, (m1, m2)
    return {"partition_by": ["day"], "checkpoints": [cp]}


TABLES = {
    "partitioned": make_partitioned,
    "many_commits": make_many_commits,
    "overwrite_delete": make_overwrite_delete,
    "schema_evolution": make_schema_evolution,
    "all_types": make_all_types,
    "checkpointed_partitioned": make_checkpointed_partitioned,
}


def expected(path: Path) -> dict:
    latest = DeltaTable(str(path)).version()
    versions = {}
    for v in range(latest + 1):
        versions[str(v)] = interop_json.rows(DeltaTable(str(path), version=v).to_pyarrow_table())
    return {"versions": versions}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--only", action="append", choices=sorted(TABLES), help="make only these tables (repeatable)")
    args = ap.parse_args()
    out: Path = args.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)

    manifest = {
        "generator": "tests/python/make_deltars_tables.py",
        "deltalake": deltalake_version,
        "pyarrow": pa.__version__,
        "tables": {},
    }
    print(f"delta-rs {deltalake_version}, pyarrow {pa.__version__} -> {out}")
    for name, make in TABLES.items():
        if args.only and name not in args.only:
            continue
        path = out / name
        if path.exists():
            shutil.rmtree(path)
        info = make(path)
        exp = expected(path)
        (out / f"{name}.expected.json").write_text(
            json.dumps(exp, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
        )
        latest = len(exp["versions"]) - 1
        counts = [len(exp["versions"][str(v)]) for v in range(latest + 1)]
        info = {"latest_version": latest, "rows_per_version": counts, **info}
        manifest["tables"][name] = info
        cps = ",".join(map(str, info["checkpoints"])) or "-"
        print(f"  {name:26s} versions 0..{latest:<3d} rows at latest {counts[-1]:4d}  checkpoints {cps}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(manifest['tables'])} tables and their .expected.json files")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: pyarrow's and delta-rs's native thread pools race
    # at exit and abort ("terminate called without an active exception", status
    # 134) in a fraction of runs after all work is done (delta-rs issue #2184,
    # arrow issue #34314). Everything is written and flushed by now.
    os._exit(code)
