#!/usr/bin/env python3
"""Turn ../shared/conformance/INDEX.md into tests/conformance/expectations.json.

The index is prose for people; the conformance test needs one record per table:
where its root is, the version to check, the expected row count (and whether an
`expected/` folder holds the rows), the row count per version (null = data not
shipped, "gone" = history cleaned up, time travel must fail), the live-file count,
and whether the table is NEGATIVE (loading must fail). Run it again whenever the
index changes; the output is committed.
"""
import json
import re
import sys
from pathlib import Path

SOURCES = {
    "A": "delta-kernel-rs-golden",
    "B": "delta-kernel-rs-data",
    "C": "delta-rs",
    "D": "delta-golden",
    "E": "delta-spark-tests",
    "F": "delta-kernel-java-tests",
    "G": "dat",
}


def main(index_path: Path, out: Path) -> None:
    source = None
    tables = []
    for line in index_path.read_text().splitlines():
        m = re.match(r"## Source ([A-G])", line)
        if m:
            source = m.group(1)
            continue
        if line.startswith("## ") and not line.startswith("## Source"):
            source = None
        if source is None or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        check = cells[-1]
        exercises = cells[-2]
        folder = Path(SOURCES[source]) / name
        root = folder / "delta" if source in ("A", "G") or name == "stats-writing-all-types" else folder
        if source == "B" and name == "stats-writing-all-types":
            root = folder / "delta"
        rec = {
            "name": name,
            "source": source,
            "root": str(root),
            "feature": re.sub(r"\*\*|`|<br>", "", exercises)[:160],
            "negative": "NEGATIVE" in check,
            "version": None,
            "rows": None,
            "expected_dir": None,
            "rows_by_version": None,
            "live_files": None,
            "dv_rows_removed": None,
        }
        m = re.search(r"v(\d+): \*\*(\d+) rows?\*\*", check)
        if m:
            rec["version"], rec["rows"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"\*\*(\d+) rows?\*\* at v(\d+)", check)
        if m:
            rec["rows"], rec["version"] = int(m.group(1)), int(m.group(2))
        if "= `expected/`" in check:
            rec["expected_dir"] = str(folder / "expected")
        if source == "G":
            rec["expected_dir"] = str(folder / "expected")
        m = re.search(r"\((\d+) live files?", check)
        if m:
            rec["live_files"] = int(m.group(1))
        m = re.search(r"(\d+) rows removed by DVs", check)
        if m:
            rec["dv_rows_removed"] = int(m.group(1))
        m = re.search(r"v(\d+) (?:has|must have) (?:exactly )?\*\*(\d+)\*\* live files?", check)
        if m:
            rec["version"], rec["live_files"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"v(\d+) (?:has|must have) (\d+) live files?", check)
        if m and rec["live_files"] is None:
            rec["version"], rec["live_files"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"snapshot at v(\d+) has exactly \*\*(\d+)\*\* live file", check)
        if m:
            rec["version"], rec["live_files"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"latest snapshot has \*\*(\d+)\*\* live files", check)
        if m:
            rec["live_files"] = int(m.group(1))
        m = re.search(r"v(\d+): (\d+) live files", check)
        if m and rec["live_files"] is None:
            rec["version"], rec["live_files"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"v(\d+), (\d+) live files", check)
        if m and rec["live_files"] is None:
            rec["version"], rec["live_files"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"v(\d+) has (\d+) live files?", check)
        if m and rec["live_files"] is None:
            rec["version"], rec["live_files"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"rows by version: ([0-9?✗,…]+)", check)
        if m and "…" not in m.group(1):
            per = []
            for v in m.group(1).split(","):
                per.append(None if v == "?" else "gone" if v == "✗" else int(v))
            rec["rows_by_version"] = per
        m = re.search(r"per-version expected \(([^)]*)\)", check)
        if m:
            rec["dat_versions"] = [int(v) for v in re.findall(r"v(\d+):", m.group(1))]
        tables.append(rec)
    out.write_text(json.dumps(tables, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(tables)} tables -> {out}")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    index = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent.parent.parent / "shared/conformance/INDEX.md"
    main(index, here / "expectations.json")
