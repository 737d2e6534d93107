#!/usr/bin/env bash
# JSON lines to Delta, partitioned by day: `medilake table write` vs delta-rs
# (pyarrow.json.read_json per file + one write_deltalake, see
# tests/python/bench_write_deltars.py). Whole processes, under /usr/bin/time -v.
#
# usage: tests/bench/write_throughput.sh [ROWS]     (default 5070000, 10 part files)
# env:   see common.sh; DELTARS_PER_FILE=1 also times delta-rs with one
#        write_deltalake (one commit) per input file.
source "$(dirname "$0")/common.sh"
ROWS="${1:-5070000}"
DATA="$BENCH_DIR/labs-$ROWS"
[ -f "$DATA/part-00009.jsonl" ] || python3 "$GEN" "$DATA" "$ROWS" --parts 10
RESULTS="$BENCH_DIR/write-$ROWS.tsv"; : >"$RESULTS"
OURS="$BENCH_DIR/write-ours" THEIRS="$BENCH_DIR/write-deltars"
machine
echo "# $ROWS rows, $(du -sh "$DATA" | cut -f1) of JSON lines in 10 files, partitioned by result_date"
cat "$DATA"/part-*.jsonl >/dev/null   # both read the input from the page cache

for run in $(seq "$REPEATS"); do
  rm -rf "$OURS" "$THEIRS" "$THEIRS-pf"; sync; quiet
  timed medilake "$BENCH_DIR/write-ours.log" -- \
    "$MEDILAKE" table write "$OURS" --input "$DATA"/part-*.jsonl --partition-by result_date
  sync; quiet
  timed delta-rs "$BENCH_DIR/write-deltars.log" -- \
    "$PYTHON" "$DELTARS" write "$THEIRS" --input "$DATA"/part-*.jsonl --partition-by result_date
  if [ "${DELTARS_PER_FILE:-0}" = 1 ]; then
    sync; quiet
    timed delta-rs-per-file "$BENCH_DIR/write-deltars-pf.log" -- \
      "$PYTHON" "$DELTARS" write "$THEIRS-pf" --input "$DATA"/part-*.jsonl --partition-by result_date --per-file
  fi
  for t in "$OURS" "$THEIRS"; do
    echo "#   $(basename "$t"): $(find "$t" -path '*/_delta_log' -prune -o -name '*.parquet' -print | wc -l) data files, $(du -sh --exclude=_delta_log "$t" | cut -f1)"
  done
done
echo
summary "$RESULTS"
awk -F'\t' -v rows="$ROWS" '{ print $1, $2 }' "$RESULTS" | sort -k1,1 -k2,2g | awk -v rows="$ROWS" '
  $1 != l { if (l != "") out(); l = $1; n = 0 } { n++; a[n] = $2 }
  function out() { m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2; printf "%-28s median %.0f rows/s (best %.0f)\n", l, rows / m, rows / a[1] }
  END { out() }'
