#!/usr/bin/env python3
"""Times delta-rs (the `deltalake` wheel) reading a benchmark table, in-process.

Usage: bench_deltars.py TABLE_DIR [--repeat N] [--scan] [--verify-checkpoint] [--json]

  (default)            times DeltaTable(TABLE_DIR): the snapshot load, files included
  --scan               also times DeltaTable(TABLE_DIR).to_pyarrow_table(): a full scan
  --repeat N           timed repetitions after the first (default 10)
  --verify-checkpoint  (tables with a checkpoint) checks that delta-rs reads the newest
                       checkpoint as the JSON commits it stands for: in a temporary
                       directory (hard links, or copies), one log holds only the JSON
                       commits up to the checkpoint's version, another only the
                       checkpoint, `_last_checkpoint` and later commits, so delta-rs
                       cannot fall back to the commits; both are loaded at that version
                       and every add (path, size, modification time, statistics) must
                       be the same
  --json               prints one JSON object instead of `key value` lines

The tables are the ones the Rust benches generate in target/bench-tables/ (see
crates/delta-core/benches/common/mod.rs); the figures are in BENCHMARKS.md.

"first" is the first load in this process (after `import deltalake`); "min" and
"median" are over the --repeat loads that follow, "cpu_mean" is their mean CPU time
(user + system, every thread of the process). Every load builds a new DeltaTable,
so nothing is reused between loads except what the operating system caches.

delta-rs only reads here: the script refuses to report figures if anything under
TABLE_DIR changed while it ran (names, sizes and modification times are compared).

Exit codes: 0 figures printed; 1 the table changed, or --verify-checkpoint found a
difference; 2 usage error; 3 delta-rs failed to read the table (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root, with its size and modification time in ns."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def timed(fn, repeat: int) -> tuple[float, list[float], float, object]:
    """Runs fn once, then `repeat` more times.

    Returns (first wall ms, the later wall ms, mean CPU ms of the later runs, last result).
    CPU time is the whole process's (every thread, user + system): delta-rs works on
    threads of its own, and CPU time is far less moved than wall time by other work on
    the machine.
    """
    t0 = time.perf_counter()
    result = fn()
    first = (time.perf_counter() - t0) * 1e3
    later = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        later.append((time.perf_counter() - t0) * 1e3)
    cpu = (time.process_time() - cpu0) * 1e3 / repeat if repeat else float("nan")
    return first, later, cpu, result


def summary(prefix: str, first: float, later: list[float], cpu: float) -> dict[str, float]:
    out = {f"{prefix}_first_ms": round(first, 2)}
    if later:
        out[f"{prefix}_min_ms"] = round(min(later), 2)
        out[f"{prefix}_median_ms"] = round(statistics.median(later), 2)
        out[f"{prefix}_cpu_mean_ms"] = round(cpu, 2)
    return out


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def partial_log_copy(table: Path, dest: Path, checkpoint: bool) -> int:
    """Copies part of table's _delta_log into dest; returns the newest checkpoint version.

    checkpoint=True: the newest checkpoint, `_last_checkpoint` and the commits after it.
    checkpoint=False: every JSON commit up to and including that version, nothing else.
    """
    log = table / "_delta_log"
    hint = json.loads((log / "_last_checkpoint").read_text())
    version = int(hint["version"])
    (dest / "_delta_log").mkdir(parents=True)
    prefix = f"{version:020d}.checkpoint"
    for entry in log.iterdir():
        name = entry.name
        is_commit = name.endswith(".json") and len(name) == 25 and name[:20].isdigit()
        if checkpoint:
            keep = name == "_last_checkpoint" or name.startswith(prefix)
            keep = keep or (is_commit and int(name[:20]) > version)
        else:
            keep = is_commit and int(name[:20]) <= version
        if keep and entry.is_file():
            link_or_copy(entry, dest / "_delta_log" / name)
    if checkpoint and not any(
        e.name.startswith(prefix) for e in (dest / "_delta_log").iterdir()
    ):
        raise SystemExit(f"no checkpoint file for version {version} in {log}")
    return version


def add_actions(dt) -> dict[str, dict]:
    """path -> every column delta-rs reports for that add (size, time, statistics)."""
    import pyarrow as pa

    rows = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    return {row["path"]: row for row in rows}


def verify_checkpoint(table: Path) -> dict[str, object]:
    """Does delta-rs read our checkpoint as the JSON commits it stands for?"""
    from deltalake import DeltaTable

    if not (table / "_delta_log" / "_last_checkpoint").is_file():
        return {"checkpoint_version": None, "checkpoint_read_ok": None}
    with tempfile.TemporaryDirectory(prefix="bench-cp-check-") as tmp:
        from_json = Path(tmp) / "json_only"
        from_checkpoint = Path(tmp) / "checkpoint_only"
        cp_version = partial_log_copy(table, from_json, checkpoint=False)
        partial_log_copy(table, from_checkpoint, checkpoint=True)
        dt_json = DeltaTable(str(from_json), version=cp_version)
        expected = add_actions(dt_json)
        dt_cp = DeltaTable(str(from_checkpoint), version=cp_version)
        got = add_actions(dt_cp)
        same = got == expected and dt_cp.version() == dt_json.version() == cp_version
    result = {
        "checkpoint_version": cp_version,
        "files_from_json_commits": len(expected),
        "files_from_checkpoint": len(got),
        "checkpoint_read_ok": same,
    }
    if not same:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        differing = sorted(p for p in set(got) & set(expected) if got[p] != expected[p])[:5]
        result["examples"] = {"missing": missing, "extra": extra, "differing": differing}
        if differing:
            p = differing[0]
            result["example_values"] = {"expected": expected[p], "got": got[p]}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("table", type=Path)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--scan", action="store_true")
    parser.add_argument("--verify-checkpoint", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    table = args.table.resolve()
    if not (table / "_delta_log").is_dir() or args.repeat < 0:
        parser.print_usage(sys.stderr)
        print(f"not a Delta table (no _delta_log): {table}", file=sys.stderr)
        return 2

    before = tree_state(table)
    t0 = time.perf_counter()
    import deltalake
    from deltalake import DeltaTable

    report: dict[str, object] = {
        "table": str(table),
        "deltalake": deltalake.__version__,
        "import_ms": round((time.perf_counter() - t0) * 1e3, 2),
    }
    try:
        first, later, cpu, dt = timed(lambda: DeltaTable(str(table)), args.repeat)
        report["version"] = dt.version()
        report["files"] = len(dt.file_uris())
        report.update(summary("load", first, later, cpu))
        if args.scan:
            first, later, cpu, data = timed(
                lambda: DeltaTable(str(table)).to_pyarrow_table(), args.repeat
            )
            report["rows"] = data.num_rows
            report.update(summary("scan", first, later, cpu))
        if args.verify_checkpoint:
            report.update(verify_checkpoint(table))
    except Exception as e:  # noqa: BLE001 - any delta-rs failure is reported the same way
        print(f"deltars: {type(e).__name__}: {e}", file=sys.stderr)
        return 3

    if tree_state(table) != before:
        print(f"the table changed while delta-rs read it: {table}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, default=str))
    else:
        for k, v in report.items():
            print(f"{k} {v}")
    if args.verify_checkpoint and report.get("checkpoint_read_ok") is False:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
