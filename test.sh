#!/usr/bin/env bash
# The one test command (README "Quick start"; .ci/run runs it too).
#
#   ./test.sh [extra cargo test args...]     e.g.  ./test.sh -p delta-core
#
# 1. tests/interop-setup.sh: the pinned Python peers (delta-rs, DuckDB + delta
#    extension) in .venv, installed once and reused while requirements.txt is unchanged;
# 2. tables written by delta-rs into target/interop/deltars, regenerated only when
#    the generator scripts or requirements change;
# 3. cargo test --workspace --locked (unit, integration and doc tests).
#
# Environment the Rust tests read (exported here; see README "Tests"):
#   MEDILAKE_CONFORMANCE_DIR  Spark/kernel-written conformance tables
#                             (default: ../shared/conformance when it exists)
#   MEDILAKE_PYTHON           the venv's python, with deltalake/duckdb/pyarrow
#   MEDILAKE_PEER_READER      tests/python/read_with_peers.py (absolute path)
#   MEDILAKE_DELTARS_TABLES   the delta-rs-written tables and their *.expected.json
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

say "MEDILAKE_CONFORMANCE_DIR=${MEDILAKE_CONFORMANCE_DIR:-<unset>}"
say "MEDILAKE_PYTHON=$MEDILAKE_PYTHON"
say "MEDILAKE_DELTARS_TABLES=$MEDILAKE_DELTARS_TABLES"

# --- Rust ---------------------------------------------------------------------
exec cargo test --workspace --locked "$@"
