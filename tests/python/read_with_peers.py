#!/usr/bin/env python3
"""Reads a Delta table with a peer engine and prints its rows as canonical JSON lines.

Usage: read_with_peers.py TABLE_DIR [--version N] [--engine deltars|duckdb|both]
       read_with_peers.py TABLE_DIR --changes FROM

  deltars  delta-rs:  DeltaTable(TABLE_DIR, version=N).to_pyarrow_table(), or its
           DataFusion reader (QueryBuilder) for tables with deletion vectors or column
           mapping, which to_pyarrow_table refuses
  --changes  delta-rs's change data feed, DeltaTable.load_cdf(starting_version=FROM):
           the rows with _change_type and _commit_version (_commit_timestamp dropped)
  duckdb   DuckDB's delta extension: delta_scan(TABLE_DIR), or with --version
           ATTACH TABLE_DIR (TYPE delta, VERSION N); the extension is loaded from
           the binary shipped in the duckdb-ext-delta wheel (no network)
  both     (default) reads with both; prints the rows when they agree, otherwise
           prints a diff on stderr and exits 1

Output: one canonical JSON object per row (see interop_json.py), sorted, one per
line, nothing else on stdout. Exit codes: 0 rows printed; 1 the engines disagree
(--engine both); 2 usage error; 3 an engine failed to read the table (its
message is on stderr, prefixed by the engine name).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop_json  # noqa: E402


class ReadError(Exception):
    pass


def read_deltars(table: Path, version: int | None) -> list[str]:
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    dt = DeltaTable(str(table), version=version)
    features = set(dt.protocol().reader_features or [])
    if dt.protocol().min_reader_version == 2:
        features.add("columnMapping")
    if features & {"deletionVectors", "columnMapping"}:
        t = pa.table(QueryBuilder().register("t", dt).execute("SELECT * FROM t").read_all())
    else:
        t = dt.to_pyarrow_table()
    return [interop_json.line(r) for r in interop_json.rows(t)]


def changes_deltars(table: Path, start: int) -> list[str]:
    import pyarrow as pa
    from deltalake import DeltaTable

    t = pa.table(DeltaTable(str(table)).load_cdf(starting_version=start))
    t = t.drop_columns(["_commit_timestamp"])
    return [interop_json.line(r) for r in interop_json.rows(t)]


def duckdb_extension_path() -> Path:
    """The delta extension binary inside the duckdb-ext-delta wheel, for the installed DuckDB."""
    import duckdb
    import duckdb_ext

    root = Path(duckdb_ext.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
    found = sorted(root.glob("*/delta.duckdb_extension"))
    if not found:
        raise ReadError(f"no delta.duckdb_extension under {root}; run tests/interop-setup.sh")
    return found[0]


def duckdb_connect():
    import duckdb

    con = duckdb.connect(
        ":memory:",
        config={
            "allow_unsigned_extensions": "true",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        },
    )
    con.execute(f"LOAD '{duckdb_extension_path()}'")
    # TIMESTAMPTZ values come back as Arrow timestamps in the session zone; make it UTC.
    con.execute("SET TimeZone = 'UTC'")
    return con


def read_duckdb(table: Path, version: int | None) -> list[str]:
    con = duckdb_connect()
    try:
        uri = str(table.resolve())
        if version is None:
            rel = con.execute("SELECT * FROM delta_scan(?)", [uri])
        else:
            # delta_scan of the 1.4 extension takes no version; an attached table does.
            quoted = "'" + uri.replace("'", "''") + "'"
            con.execute(f"ATTACH {quoted} AS peer_table (TYPE delta, VERSION {int(version)})")
            rel = con.execute("SELECT * FROM peer_table")
        t = rel.fetch_arrow_table()
    finally:
        con.close()
    return [interop_json.line(r) for r in interop_json.rows(t)]


ENGINES = {"deltars": read_deltars, "duckdb": read_duckdb}


def read(engine: str, table: Path, version: int | None) -> list[str]:
    try:
        return ENGINES[engine](table, version)
    except ReadError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the peer is reported the same way
        raise ReadError(f"{engine}: {type(e).__name__}: {e}") from e


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table_dir", type=Path)
    ap.add_argument("--version", type=int, default=None, help="table version to read (default: latest)")
    ap.add_argument("--engine", choices=["deltars", "duckdb", "both"], default="both")
    ap.add_argument("--changes", type=int, default=None, help="print delta-rs's change data feed from this version")
    args = ap.parse_args()
    if not (args.table_dir / "_delta_log").is_dir():
        print(f"read_with_peers: {args.table_dir} has no _delta_log/", file=sys.stderr)
        return 2

    try:
        if args.changes is not None:
            try:
                lines = changes_deltars(args.table_dir, args.changes)
            except Exception as e:  # noqa: BLE001
                raise ReadError(f"deltars load_cdf: {type(e).__name__}: {e}") from e
        elif args.engine == "both":
            a = read("deltars", args.table_dir, args.version)
            b = read("duckdb", args.table_dir, args.version)
            if a != b:
                print(f"read_with_peers: delta-rs ({len(a)} rows) and duckdb ({len(b)} rows) disagree:", file=sys.stderr)
                sys.stderr.writelines(
                    d + "\n" for d in difflib.unified_diff(a, b, "deltars", "duckdb", lineterm="", n=0)
                )
                return 1
            lines = a
        else:
            lines = read(args.engine, args.table_dir, args.version)
    except ReadError as e:
        print(f"read_with_peers: {e}", file=sys.stderr)
        return 3

    out = sys.stdout
    out.reconfigure(encoding="utf-8")
    out.writelines(l + "\n" for l in lines)
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
