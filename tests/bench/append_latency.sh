#!/usr/bin/env bash
# Latency of small blind appends as the table grows: MediLake (delta-core's
# table.write().execute(), crates/pipeline/benches/append_latency.rs) vs delta-rs
# (write_deltalake(mode="append") in a Python loop, tests/python/bench_write_deltars.py).
# Each run creates a table and makes APPENDS appends of ROWS rows, timing each one.
#
# usage: tests/bench/append_latency.sh [APPENDS] [ROWS]    (default 1000 appends of 1 row)
# env:   see common.sh; APPEND_BENCH=path of an already built bench executable
#        (default: cargo bench -p pipeline --bench append_latency)
source "$(dirname "$0")/common.sh"
APPENDS="${1:-1000}" ROWS="${2:-1}"
RESULTS="$BENCH_DIR/appends.tsv"; : >"$RESULTS"
machine
if [ -z "${APPEND_BENCH:-}" ]; then
  (cd "$REPO" && cargo bench -p pipeline --bench append_latency --no-run)
  ours() { (cd "$REPO" && cargo bench -q -p pipeline --bench append_latency -- "$@"); }
else
  ours() { "$APPEND_BENCH" "$@"; }
fi
for run in $(seq "$REPEATS"); do
  rm -rf "$BENCH_DIR/appends-ours" "$BENCH_DIR/appends-deltars"; quiet
  ours --appends "$APPENDS" --rows "$ROWS" --dir "$BENCH_DIR/appends-ours" \
    --csv "$BENCH_DIR/appends-ours-$run.csv" | tee "$BENCH_DIR/appends-ours-$run.txt"
  quiet
  "$PYTHON" "$DELTARS" appends "$BENCH_DIR/appends-deltars" --appends "$APPENDS" --rows "$ROWS" \
    --csv "$BENCH_DIR/appends-deltars-$run.csv" | tee "$BENCH_DIR/appends-deltars-$run.txt"
  for e in ours deltars; do
    awk -v e="$e" '/^p50_first100_ms|^p50_last100_ms|^p90_ms|^max_ms|^total_s/ { printf "%s\t%s\t%s\n", e, $1, $2 }' \
      "$BENCH_DIR/appends-$e-$run.txt" >>"$RESULTS"
  done
done
echo
echo "# median over $REPEATS runs (min in brackets); ms per append, total_s for all $APPENDS"
for e in ours deltars; do
  for k in p50_first100_ms p50_last100_ms p90_ms max_ms total_s; do
    v=$(awk -F'\t' -v e="$e" -v k="$k" '$1 == e && $2 == k { print $3 }' "$RESULTS")
    printf "%-8s %-16s %8s  [%s]\n" "$e" "$k" "$(echo "$v" | median)" "$(echo "$v" | sort -g | head -1)"
  done
done
