#!/usr/bin/env bash
# MERGE (upsert) of 1M source rows into 5M lab rows in about 20 clustered files:
# `medilake table merge --when-matched update-all --when-not-matched insert-all` vs delta-rs
# `DeltaTable(p).merge(src, "t.lab_result_id = s.lab_result_id").when_matched_update_all()
# .when_not_matched_insert_all().execute()`, each on its own copy of the same table.
#
# The table: gen_labs.py's 5M rows written by 17 `medilake table write` appends, then
# clustered by (patient_id, loinc_code) with `medilake table optimize --zorder-by` into about
# 20 files (as clustering.sh makes it). The source (one parquet file, written by pyarrow):
# every 10th row of the data with `value` + 1 (500k updates, 10% of the table) and every 10th
# row, offset 5, under a new `lab_result_id` (500k inserts). Whole processes, under
# /usr/bin/time -v; afterwards the rows copied, files rewritten and bytes written of each
# engine's commit (from its metrics and from the add actions in its log).
#
# A third run, "medilake-dv", merges into a copy with delta.enableDeletionVectors=true
# (set by one metadata-only commit before the timing): matched rows are marked in deletion
# vectors instead of copying their files, so only updated and inserted rows are written.
# Its "bytes of changed rows" line compares the data bytes written with the bytes those
# rows alone take when written by the same writer (a plain append of the source).
#
# usage: tests/bench/merge.sh [ROWS] [PARTS]   (default 5000000 rows in 17 parts)
# env:   see common.sh
source "$(dirname "$0")/common.sh"
ROWS="${1:-5000000}" PARTS="${2:-17}"
DATA="$BENCH_DIR/labs-$ROWS-in-$PARTS"
BASE="$BENCH_DIR/cluster-base-$ROWS-$PARTS"
CLUSTERED="$BENCH_DIR/merge-base-$ROWS-$PARTS"
SOURCE="$BENCH_DIR/merge-source-$ROWS-$PARTS.parquet"
[ -f "$DATA/part-$(printf %05d $((PARTS - 1))).jsonl" ] || python3 "$GEN" "$DATA" "$ROWS" --parts "$PARTS"
if [ ! -f "$BASE/.complete" ]; then
  rm -rf "$BASE"
  for f in "$DATA"/part-*.jsonl; do "$MEDILAKE" table write "$BASE" --input "$f" >/dev/null; done
  touch "$BASE/.complete"
fi
if [ ! -f "$CLUSTERED/.complete" ]; then
  rm -rf "$CLUSTERED"; cp -a "$BASE" "$CLUSTERED"; rm -f "$CLUSTERED/.complete"
  BYTES=$(find "$BASE" -path '*/_delta_log' -prune -o -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s }')
  "$MEDILAKE" table optimize "$CLUSTERED" --zorder-by patient_id,loinc_code --target-size "$((BYTES / 20))" >/dev/null
  "$MEDILAKE" table vacuum "$CLUSTERED" --retain-hours 0 --force >/dev/null 2>&1 || true
  touch "$CLUSTERED/.complete"
fi
if [ ! -f "$SOURCE" ]; then
  "$PYTHON" - "$DATA" "$SOURCE" <<'PY'
import glob, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.json as pj, pyarrow.parquet as pq
opts = pj.ParseOptions(explicit_schema=pa.schema([("result_date", pa.string())]))
updates, inserts = [], []
offset = 0
for path in sorted(glob.glob(f"{sys.argv[1]}/part-*.jsonl")):
    t = pj.read_json(path, parse_options=opts)
    u = t.filter(pa.array([(offset + i) % 10 == 0 for i in range(t.num_rows)]))
    u = u.set_column(u.schema.get_field_index("value"), "value", pc.add(u["value"], 1.0))
    n = t.filter(pa.array([(offset + i) % 10 == 5 for i in range(t.num_rows)]))
    offset += t.num_rows
    n = n.set_column(n.schema.get_field_index("lab_result_id"), "lab_result_id", pc.binary_join_element_wise("NEW", n["lab_result_id"], ""))
    updates.append(u); inserts.append(n)
source = pa.concat_tables(updates + inserts)
pq.write_table(source, sys.argv[2])
print(f"source: {source.num_rows} rows ({sum(x.num_rows for x in updates)} updates)", file=sys.stderr)
PY
fi
RESULTS="$BENCH_DIR/merge.tsv"; : >"$RESULTS"
machine
echo "# table: $(find "$CLUSTERED" -path '*/_delta_log' -prune -o -name '*.parquet' -print | wc -l) clustered data files, $(find "$CLUSTERED" -path '*/_delta_log' -prune -o -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s }') bytes; source $(du -b "$SOURCE" | cut -f1) bytes"

# last_commit TABLE: files added, files removed and bytes added by the newest commit.
last_commit() {
  "$PYTHON" - "$1" <<'PY'
import glob, json, sys
log = sorted(glob.glob(f"{sys.argv[1]}/_delta_log/*.json"))[-1]
adds = removes = size = marked = 0
removed = set()
for line in open(log):
    a = json.loads(line)
    if "remove" in a: removed.add(a["remove"]["path"])
for line in open(log):
    a = json.loads(line)
    if "add" in a:
        if a["add"]["path"] in removed: marked += 1
        else: adds += 1; size += a["add"]["size"]
print(f"files added {adds}, removed {len(removed) - marked}, kept with a deletion vector {marked}, data bytes written {size}")
PY
}

dv_copy() {
  rm -rf "$BENCH_DIR/merge-dv"; cp -a "$CLUSTERED" "$BENCH_DIR/merge-dv"
  "$MEDILAKE" table set-property "$BENCH_DIR/merge-dv" delta.enableDeletionVectors=true >/dev/null
}
for run in $(seq "$REPEATS"); do
  for t in ours deltars; do rm -rf "$BENCH_DIR/merge-$t"; cp -a "$CLUSTERED" "$BENCH_DIR/merge-$t"; done
  dv_copy
  cat "$CLUSTERED"/*.parquet "$SOURCE" >/dev/null; sync
  quiet
  timed medilake "$BENCH_DIR/merge-ours.log" -- "$MEDILAKE" table merge "$BENCH_DIR/merge-ours" \
    --source "$SOURCE" --on "t.lab_result_id = s.lab_result_id" \
    --when-matched update-all --when-not-matched insert-all --json
  quiet
  timed medilake-dv "$BENCH_DIR/merge-dv.log" -- "$MEDILAKE" table merge "$BENCH_DIR/merge-dv" \
    --source "$SOURCE" --on "t.lab_result_id = s.lab_result_id" \
    --when-matched update-all --when-not-matched insert-all --json
  quiet
  timed delta-rs "$BENCH_DIR/merge-deltars.log" -- "$PYTHON" "$DELTARS" merge "$BENCH_DIR/merge-deltars" \
    --source "$SOURCE" --key lab_result_id
done
echo
summary "$RESULTS"
# CPU time (user + system, all threads) of one more run of each: it moves much less than
# wall time with the load other processes put on a shared machine.
for t in ours deltars; do rm -rf "$BENCH_DIR/merge-$t"; cp -a "$CLUSTERED" "$BENCH_DIR/merge-$t"; done
/usr/bin/time -f "medilake cpu %U+%S s, wall %e s" "$MEDILAKE" table merge "$BENCH_DIR/merge-ours" \
  --source "$SOURCE" --on "t.lab_result_id = s.lab_result_id" \
  --when-matched update-all --when-not-matched insert-all --json >/dev/null
dv_copy
/usr/bin/time -f "medilake-dv cpu %U+%S s, wall %e s" "$MEDILAKE" table merge "$BENCH_DIR/merge-dv" \
  --source "$SOURCE" --on "t.lab_result_id = s.lab_result_id" \
  --when-matched update-all --when-not-matched insert-all --json >/dev/null
/usr/bin/time -f "delta-rs cpu %U+%S s, wall %e s" "$PYTHON" "$DELTARS" merge "$BENCH_DIR/merge-deltars" \
  --source "$SOURCE" --key lab_result_id >/dev/null
echo
echo "# medilake: $(cat "$BENCH_DIR/merge-ours.log")"
echo "#   $(last_commit "$BENCH_DIR/merge-ours")"
echo "# medilake-dv: $(cat "$BENCH_DIR/merge-dv.log")"
echo "#   $(last_commit "$BENCH_DIR/merge-dv")"
rm -rf "$BENCH_DIR/merge-source-only"
"$MEDILAKE" table write "$BENCH_DIR/merge-source-only" --input "$SOURCE" >/dev/null
echo "#   bytes of changed rows: $(find "$BENCH_DIR/merge-source-only" -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s }') when the source alone is appended (same writer); deletion vector files: $(find "$BENCH_DIR/merge-dv" -maxdepth 1 -name 'deletion_vector_*.bin' -printf '%s\n' | awk '{ s += $1; n++ } END { printf "%d files, %d bytes", n, s }')"
echo "# delta-rs: $(grep -E 'metric_num_(target_rows_(copied|updated|inserted)|target_files_(added|removed))' "$BENCH_DIR/merge-deltars.log" | tr '\n' ' ')"
echo "#   $(last_commit "$BENCH_DIR/merge-deltars")"
