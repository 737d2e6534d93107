#!/usr/bin/env python3
"""Shows how delta-rs understands a table's per-file statistics and prunes with them.

Usage:
  peer_stats.py TABLE_DIR [--version N]
      One JSON object per live file, sorted by path, nothing else on stdout:
        {"path": "<add.path as in the log>",
         "num_records": n | null,
         "null_count": {"<col>" | "<struct>.<field>": n | null, ...},
         "min": {"<col>": <canonical value> | null, ...},
         "max": {...},
         "partition": {"<col>": <canonical value> | null, ...}}
      from DeltaTable(TABLE_DIR, version=N).get_add_actions(flatten=True): delta-rs
      parses each add's `stats` JSON into typed columns; a bound it cannot parse (or that
      is absent) is null. Values are in the canonical JSON form of interop_json.py.

  peer_stats.py TABLE_DIR [--version N] --filter 'DNF_JSON'
      One JSON object: how delta-rs prunes with the filter, e.g. [["id", ">", 100]]
      (a list of (column, op, value) triples = AND; a list of such lists = OR):
        {"files":     [paths of DeltaTable.file_uris(file_pruning_predicate=filter)],
         "fragments": [paths of the pyarrow dataset fragments whose partition/stats
                       expression may satisfy the filter],
         "total_files": n,
         "rows":      [canonical rows of to_pyarrow_table(filters=filter)], sorted}
      Paths are relative to TABLE_DIR and percent-decoded (file system paths).
      JSON has no dates, timestamps or decimals: a value may be one of
      {"date": "YYYY-MM-DD"}, {"timestamp": "ISO-8601 with offset"},
      {"timestamp_ntz": "ISO-8601 without offset"}, {"decimal": "123.40"}.

Exit codes: 0 printed; 2 usage error or no _delta_log/; 3 delta-rs failed (message on
stderr, prefixed `deltars:`).
"""

from __future__ import annotations

import argparse
import decimal
import json
import os
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop_json  # noqa: E402


def add_actions(table_dir: Path, version: int | None) -> list[dict]:
    import pyarrow as pa
    from deltalake import DeltaTable

    dt = DeltaTable(str(table_dir), version=version)
    t = pa.table(dt.get_add_actions(flatten=True))
    cols = [(f.name, f.type, t.column(i).to_pylist()) for i, f in enumerate(t.schema)]
    out = []
    for r in range(t.num_rows):
        entry: dict = {"null_count": {}, "min": {}, "max": {}, "partition": {}}
        for name, typ, values in cols:
            v = values[r]
            if name == "path":
                entry["path"] = v
            elif name == "num_records":
                entry["num_records"] = v
            else:
                prefix, _, column = name.partition(".")
                if prefix in entry and column:
                    entry[prefix][column] = interop_json.value(v, typ)
        out.append(entry)
    out.sort(key=lambda e: e["path"])
    return out


def relative(table_dir: Path, uri: str) -> str:
    """A file URI or absolute path from delta-rs as a path relative to the table root."""
    if uri.startswith("file://"):
        uri = urllib.parse.unquote(urllib.parse.urlparse(uri).path)
    root = str(table_dir.resolve())
    p = str(Path(uri))
    if p.startswith(root + os.sep):
        return p[len(root) + 1 :]
    return p


def typed(v):
    """A filter value from JSON: typed values are one-key objects (see the usage)."""
    import datetime as dt

    if isinstance(v, list):
        return [typed(x) for x in v]
    if not isinstance(v, dict):
        return v
    ((kind, text),) = v.items()
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "timestamp":
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {text!r} needs an offset")
        return parsed
    if kind == "timestamp_ntz":
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            raise ValueError(f"timestamp_ntz {text!r} must not have an offset")
        return parsed
    if kind == "decimal":
        return decimal.Decimal(text)
    raise ValueError(f"unknown typed filter value {v!r}")


def prune(table_dir: Path, version: int | None, dnf: list) -> dict:
    from deltalake import DeltaTable
    from pyarrow.parquet import filters_to_expression

    # JSON has no tuples: make each innermost [col, op, value] a tuple.
    def conj(items: list) -> list:
        return [(c, op, typed(v)) for c, op, v in items]

    if dnf and isinstance(dnf[0], list) and dnf[0] and isinstance(dnf[0][0], list):
        filters = [conj(c) for c in dnf]
    else:
        filters = conj(dnf)
    dt = DeltaTable(str(table_dir), version=version)
    # delta-rs encodes tuple values to partition strings and cannot encode a Decimal.
    def plain(f):
        return [(c, op, str(v) if isinstance(v, decimal.Decimal) else v) for c, op, v in f]

    uri_filters = [plain(c) for c in filters] if isinstance(filters[0], list) else plain(filters)
    files = sorted(relative(table_dir, u) for u in dt.file_uris(file_pruning_predicate=uri_filters))
    total = len(dt.file_uris())
    ds = dt.to_pyarrow_dataset()
    expr = filters_to_expression(filters)
    fragments = sorted(relative(table_dir, f.path) for f in ds.get_fragments(filter=expr))
    t = dt.to_pyarrow_table(filters=filters)
    rows = [json.loads(interop_json.line(r)) for r in interop_json.rows(t)]
    return {"files": files, "fragments": fragments, "total_files": total, "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table_dir", type=Path)
    ap.add_argument("--version", type=int, default=None)
    ap.add_argument("--filter", default=None, help="DNF filter as JSON, e.g. '[[\"id\", \">\", 100]]'")
    args = ap.parse_args()
    if not (args.table_dir / "_delta_log").is_dir():
        print(f"peer_stats: {args.table_dir} has no _delta_log/", file=sys.stderr)
        return 2
    try:
        dnf = json.loads(args.filter) if args.filter is not None else None
    except json.JSONDecodeError as e:
        print(f"peer_stats: --filter is not JSON: {e}", file=sys.stderr)
        return 2
    try:
        if dnf is None:
            lines = [interop_json.line(e) for e in add_actions(args.table_dir, args.version)]
        else:
            lines = [interop_json.line(prune(args.table_dir, args.version, dnf))]
    except Exception as e:  # noqa: BLE001 - any failure of the peer is reported the same way
        print(f"peer_stats: deltars: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    out = sys.stdout
    out.reconfigure(encoding="utf-8")
    out.writelines(l + "\n" for l in lines)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # As read_with_peers.py: skip interpreter teardown (native thread pools abort at exit).
    os._exit(code)
