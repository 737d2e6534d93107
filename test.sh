#!/usr/bin/env bash
# The one test command (README "Quick start"; .ci/run runs it too).
#
#   ./test.sh [extra cargo test args...]     e.g.  ./test.sh -p delta-core
#
# 1. tests/interop-setup.sh: the pinned Python peers (delta-rs, DuckDB + delta
#    extension) in .venv, installed once and reused while requirements.txt is unchanged;
# 2. tables written by delta-rs into target/interop/deltars, regenerated only when
#    the generator scripts or requirements change;
# 3. tests/objectstores/emulators.sh: moto (S3) and Azurite (Azure Blob) on loopback;
# 4. cargo test --workspace --locked (unit, integration and doc tests).
#
# Environment the Rust tests read (exported here; see README "Tests"):
#   MEDILAKE_CONFORMANCE_DIR  Spark/kernel-written conformance tables
#                             (default: ../shared/conformance when it exists)
#   MEDILAKE_PYTHON           the venv's python, with deltalake/duckdb/pyarrow
#   MEDILAKE_PEER_READER      tests/python/read_with_peers.py (absolute path)
#   MEDILAKE_DELTARS_TABLES   the delta-rs-written tables and their *.expected.json
#   MEDILAKE_SPARK_ADDR       host:port of the Spark peer (tests/spark/spark_peer.py: one
#                             Spark + Delta session for the whole run, started here in the
#                             background and stopped when this script exits); set it
#                             yourself to reuse a peer you started
#   MEDILAKE_S3_URL           s3://medilake-test on moto and az://medilake-test on Azurite,
#   MEDILAKE_AZURE_URL        loopback emulators started here and stopped when this script
#                             exits, with the AWS_*/AZURE_* variables object_store reads
#                             (tests/objectstores/emulators.sh; set both to use your own)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root="$(pwd)"

say() { printf 'test.sh: %s\n' "$*" >&2; }

# --- conformance tables -------------------------------------------------------
if [[ -z "${MEDILAKE_CONFORMANCE_DIR:-}" ]]; then
    if [[ -d "$root/../shared/conformance" ]]; then
        MEDILAKE_CONFORMANCE_DIR="$(cd "$root/../shared/conformance" && pwd)"
    elif [[ "${CI:-}" == "true" ]]; then
        say "CI=true but ../shared/conformance does not exist; set MEDILAKE_CONFORMANCE_DIR"
        exit 1
    else
        say "no ../shared/conformance and MEDILAKE_CONFORMANCE_DIR unset: conformance tests will be skipped"
    fi
fi
[[ -n "${MEDILAKE_CONFORMANCE_DIR:-}" ]] && export MEDILAKE_CONFORMANCE_DIR

# --- Python peers ---------------------------------------------------------------
MEDILAKE_PYTHON="$(tests/interop-setup.sh)"
export MEDILAKE_PYTHON
export MEDILAKE_PEER_READER="$root/tests/python/read_with_peers.py"

# --- delta-rs-written tables ----------------------------------------------------
tables="$root/target/interop/deltars"
stamp_want="$(cat tests/python/make_deltars_tables.py tests/python/interop_json.py \
    tests/python/requirements.txt | sha256sum | cut -d' ' -f1)"
if [[ -f "$tables/.stamp" && "$(cat "$tables/.stamp")" == "$stamp_want" && -f "$tables/manifest.json" ]]; then
    say "reusing delta-rs tables in $tables"
else
    say "writing delta-rs tables into $tables"
    # Build beside, then swap in: an interrupted run never leaves a half-made set
    # that a later run would take for complete.
    rm -rf "$tables.tmp"
    mkdir -p "$(dirname "$tables")"
    "$MEDILAKE_PYTHON" tests/python/make_deltars_tables.py "$tables.tmp" >&2
    printf '%s\n' "$stamp_want" >"$tables.tmp/.stamp"
    rm -rf "$tables"
    mv "$tables.tmp" "$tables"
fi
export MEDILAKE_DELTARS_TABLES="$tables"

# --- background servers, stopped whatever happens ------------------------------------
spark_pid=""
stop_spark() {
    if [[ -n "$spark_pid" ]] && kill -0 "$spark_pid" 2>/dev/null; then
        kill "$spark_pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$spark_pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$spark_pid" 2>/dev/null || true
    fi
}
# shellcheck source=tests/objectstores/emulators.sh
source tests/objectstores/emulators.sh
stop_servers() {
    stop_spark
    emulators_stop
}
trap stop_servers EXIT

# --- object-store emulators (tests/objectstores/) -----------------------------------
# moto (S3, single-threaded) and Azurite (Azure Blob) on loopback, installed once into
# target/emulators/. Under CI a failure here fails the run; outside CI the S3 and Azure
# suites skip.
emulators_up || exit 1

# --- Spark peer (tests/spark/) ----------------------------------------------------
# pyspark + delta-spark into the venv, the Delta jars through Maven (cached), then one
# Spark session in the background for the whole cargo test run. Under CI a Spark that
# cannot be installed or started fails the run here; outside CI the Spark suites skip.
spark_unavailable() {
    if [[ "${CI:-}" == "true" ]]; then
        say "CI=true and the Spark peer is unavailable: $*"
        exit 1
    fi
    say "Spark suites will be skipped: $*"
}
if [[ -z "${MEDILAKE_SPARK_ADDR:-}" ]]; then
    spark_setup_rc=0
    spark_jars="$(tests/spark/spark-setup.sh "$MEDILAKE_PYTHON")" || spark_setup_rc=$?
    if ((spark_setup_rc == 3)); then
        spark_unavailable "Java 17 or Maven is missing (see the spark-setup line above)"
    elif ((spark_setup_rc != 0)); then
        spark_unavailable "tests/spark/spark-setup.sh failed (exit $spark_setup_rc)"
    else
        spark_work="$root/target/spark"
        mkdir -p "$spark_work"
        export MEDILAKE_SPARK_SUMMARY="$spark_work/summary.txt"
        rm -f "$MEDILAKE_SPARK_SUMMARY"
        rm -f "$spark_work/port"
        spark_start=$SECONDS
        MEDILAKE_SPARK_WORK="$spark_work" "$MEDILAKE_PYTHON" tests/spark/spark_peer.py \
            --jars "$spark_jars" --port-file "$spark_work/port" >"$spark_work/peer.log" 2>&1 &
        spark_pid=$!
        while [[ ! -s "$spark_work/port" ]] && kill -0 "$spark_pid" 2>/dev/null \
            && ((SECONDS - spark_start < 300)); do
            sleep 0.5
        done
        if [[ -s "$spark_work/port" ]]; then
            MEDILAKE_SPARK_ADDR="$(cat "$spark_work/port")"
            export MEDILAKE_SPARK_ADDR
            say "Spark peer up in $((SECONDS - spark_start))s at $MEDILAKE_SPARK_ADDR (log: $spark_work/peer.log)"
            # Let Spark write its tables while cargo compiles; spark_writes_we_read.rs asks
            # for the same folder and finds them ready (or waits for them; any failure is
            # reported there).
            "$MEDILAKE_PYTHON" tests/spark/spark_client.py \
                "{\"op\":\"make_tables\",\"out\":\"$spark_work/spark-written\"}" \
                >"$spark_work/make_tables.log" 2>&1 &
        else
            tail -n 30 "$spark_work/peer.log" >&2 || true
            stop_spark
            spark_unavailable "the Spark session did not start (log: $spark_work/peer.log)"
        fi
    fi
fi

say "MEDILAKE_CONFORMANCE_DIR=${MEDILAKE_CONFORMANCE_DIR:-<unset>}"
say "MEDILAKE_PYTHON=$MEDILAKE_PYTHON"
say "MEDILAKE_DELTARS_TABLES=$MEDILAKE_DELTARS_TABLES"
say "MEDILAKE_SPARK_ADDR=${MEDILAKE_SPARK_ADDR:-<unset>}"
say "MEDILAKE_S3_URL=${MEDILAKE_S3_URL:-<unset>} MEDILAKE_AZURE_URL=${MEDILAKE_AZURE_URL:-<unset>}"

# --- Rust ---------------------------------------------------------------------
# Property tests explore from a fixed seed so that a run is repeatable; set
# PROPTEST_RNG_SEED yourself to explore elsewhere.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261125}"
# Not exec: the EXIT trap must stop the Spark peer and the emulators afterwards. set -e passes on the status.
cargo test --workspace --locked "$@"
if [[ -n "${MEDILAKE_SPARK_SUMMARY:-}" && -f "$MEDILAKE_SPARK_SUMMARY" ]]; then
    say "Spark suites (tests/SPARK.md):"
    sed 's/^/    /' "$MEDILAKE_SPARK_SUMMARY" >&2
fi
