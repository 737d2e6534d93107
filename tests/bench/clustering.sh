#!/usr/bin/env bash
# Clustering 5M lab rows by (patient_id, loinc_code): `medilake table optimize --zorder-by`
# with the Hilbert and with the Morton curve vs delta-rs
# `DeltaTable(p).optimize.z_order([...], target_size=...)`, each on its own copy of the same
# unpartitioned table of about 4 MiB files (made once by `medilake table write` appends).
# Whole processes, under /usr/bin/time -v; afterwards `medilake table clustering` measures
# the files a point probe reads on each result.
#
# usage: tests/bench/clustering.sh [ROWS] [PARTS]   (default 5000000 rows in 17 appends)
# env:   see common.sh; TARGET_OURS / TARGET_DELTARS: target file sizes in bytes (default:
#        the base table's data bytes / 20, for about 20 files)
source "$(dirname "$0")/common.sh"
ROWS="${1:-5000000}" PARTS="${2:-17}"
DATA="$BENCH_DIR/labs-$ROWS-in-$PARTS"
BASE="$BENCH_DIR/cluster-base-$ROWS-$PARTS"
[ -f "$DATA/part-$(printf %05d $((PARTS - 1))).jsonl" ] || python3 "$GEN" "$DATA" "$ROWS" --parts "$PARTS"
if [ ! -f "$BASE/.complete" ]; then
  rm -rf "$BASE"
  for f in "$DATA"/part-*.jsonl; do "$MEDILAKE" table write "$BASE" --input "$f" >/dev/null; done
  touch "$BASE/.complete"
fi
BYTES=$(find "$BASE" -path '*/_delta_log' -prune -o -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s }')
TARGET_OURS="${TARGET_OURS:-$((BYTES / 20))}"
TARGET_DELTARS="${TARGET_DELTARS:-$((BYTES / 20))}"
COLS=patient_id,loinc_code
RESULTS="$BENCH_DIR/cluster.tsv"; : >"$RESULTS"
machine
echo "# base: $(find "$BASE" -path '*/_delta_log' -prune -o -name '*.parquet' -print | wc -l) data files, $BYTES bytes; target size: medilake $TARGET_OURS, delta-rs $TARGET_DELTARS"
for run in $(seq "$REPEATS"); do
  for t in hilbert morton deltars; do
    rm -rf "$BENCH_DIR/cluster-$t"; cp -a "$BASE" "$BENCH_DIR/cluster-$t"
  done
  cat "$BASE"/*.parquet >/dev/null; sync
  for curve in hilbert morton; do
    quiet
    timed "medilake-$curve" "$BENCH_DIR/cluster-$curve.log" -- "$MEDILAKE" table optimize "$BENCH_DIR/cluster-$curve" \
      --zorder-by "$COLS" --curve "$curve" --target-size "$TARGET_OURS" --json
  done
  quiet
  timed delta-rs "$BENCH_DIR/cluster-deltars.log" -- "$PYTHON" "$DELTARS" zorder "$BENCH_DIR/cluster-deltars" \
    --columns "$COLS" --target-size "$TARGET_DELTARS"
done
echo
summary "$RESULTS"
echo
echo "# files read per point probe (medilake table clustering --columns $COLS, 200 sampled values)"
printf "%-10s %6s %12s %12s %12s\n" table files patient_id loinc_code combined
for t in base hilbert morton deltars; do
  dir="$BENCH_DIR/cluster-$t"; [ "$t" = base ] && dir="$BASE"
  "$MEDILAKE" table clustering "$dir" --columns "$COLS" --json >"$BENCH_DIR/cluster-$t.probe.json"
  "$PYTHON" - "$t" "$BENCH_DIR/cluster-$t.probe.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
cols = {tuple(c["columns"]): c for c in r["columns"]}
f = lambda c: f'{c["averageFiles"]:.2f} (max {c["maxFiles"]})'
print(f'{sys.argv[1]:<10} {r["totalFiles"]:>6} {f(cols[("patient_id",)]):>12} {f(cols[("loinc_code",)]):>12} {f(r["combined"]):>12}')
PY
done
