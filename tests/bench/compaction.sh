#!/usr/bin/env bash
# Compaction of 1,000 small files (1,000 appends of 1,000 lab rows each, about 26 KB a file):
# `medilake table optimize` vs delta-rs `DeltaTable(p).optimize.compact()`, each on its own
# copy of the same table (made once by 1,000 `medilake table write` appends); then VACUUM of
# the 1,000 files the compaction removed, with retention 0: `medilake table vacuum
# --retain-hours 0 --force` vs delta-rs `vacuum(retention_hours=0, full=True, ...)`.
# Whole processes, under /usr/bin/time -v.
#
# usage: tests/bench/compaction.sh [FILES] [ROWS_PER_FILE]   (default 1000 1000)
source "$(dirname "$0")/common.sh"
FILES="${1:-1000}" PER="${2:-1000}"
DATA="$BENCH_DIR/labs-small-$FILES-$PER"
BASE="$BENCH_DIR/compact-base-$FILES-$PER"
[ -f "$DATA/part-$(printf %05d $((FILES - 1))).jsonl" ] || python3 "$GEN" "$DATA" $((FILES * PER)) --parts "$FILES"
if [ ! -f "$BASE/.complete" ]; then
  rm -rf "$BASE"
  for f in "$DATA"/part-*.jsonl; do "$MEDILAKE" table write "$BASE" --input "$f" >/dev/null; done
  touch "$BASE/.complete"
fi
RESULTS="$BENCH_DIR/compact.tsv"; : >"$RESULTS"
machine
echo "# base: $(find "$BASE" -path '*/_delta_log' -prune -o -name '*.parquet' -print | wc -l) data files, $(du -sb --exclude=_delta_log "$BASE" | cut -f1) bytes (median $(find "$BASE" -path '*/_delta_log' -prune -o -name '*.parquet' -printf '%s\n' | median) bytes a file)"
for run in $(seq "$REPEATS"); do
  rm -rf "$BENCH_DIR/compact-ours" "$BENCH_DIR/compact-deltars"
  cp -a "$BASE" "$BENCH_DIR/compact-ours"; cp -a "$BASE" "$BENCH_DIR/compact-deltars"
  cat "$BASE"/*.parquet >/dev/null; sync; quiet
  timed medilake "$BENCH_DIR/compact-ours.log" -- "$MEDILAKE" table optimize "$BENCH_DIR/compact-ours" --json
  quiet
  timed delta-rs "$BENCH_DIR/compact-deltars.log" -- "$PYTHON" "$DELTARS" compact "$BENCH_DIR/compact-deltars"
  sync; quiet
  timed medilake-vacuum "$BENCH_DIR/vacuum-ours.log" -- "$MEDILAKE" table vacuum "$BENCH_DIR/compact-ours" \
    --retain-hours 0 --force --json
  quiet
  timed delta-rs-vacuum "$BENCH_DIR/vacuum-deltars.log" -- "$PYTHON" "$DELTARS" vacuum "$BENCH_DIR/compact-deltars" \
    --retain-hours 0
done
for t in ours deltars; do
  echo "# after ($t): $("$MEDILAKE" table files "$BENCH_DIR/compact-$t" --json | tail -1) live files," \
    "$(find "$BENCH_DIR/compact-$t" -path '*/_delta_log' -prune -o -name '*.parquet' -print | wc -l) data files left after VACUUM"
done
echo
summary "$RESULTS"
