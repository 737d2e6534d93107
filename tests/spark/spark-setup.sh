#!/usr/bin/env bash
# Installs the Spark peer: pyspark + delta-spark (tests/python/requirements-spark.txt) into
# the interop venv, and the Delta jars (tests/spark/pom.xml) through Maven into a cache
# folder that later runs reuse. Idempotent, guarded by stamps like tests/interop-setup.sh.
#
#   JARS="$(tests/spark/spark-setup.sh "$MEDILAKE_PYTHON")"
#
# Prints the jar directory as the only line on stdout (progress goes to stderr). Exits 3
# when Java 17+ or Maven is missing (the message names what to install), 1 on other errors.
#
# Environment:
#   MEDILAKE_SPARK_CACHE  jar cache (default: ~/.cache/medilake-spark)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${1:?usage: spark-setup.sh <venv python>}"
venv="$(cd "$(dirname "$python")/.." && pwd)"
req="$repo_root/tests/python/requirements-spark.txt"
pom="$repo_root/tests/spark/pom.xml"
log() { printf 'spark-setup: %s\n' "$*" >&2; }

missing=()
if ! command -v java >/dev/null 2>&1; then
    missing+=("Java 17 (e.g. apt-get install openjdk-17-jre-headless)")
else
    jv="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
    if [[ -z "$jv" || "$jv" -lt 17 ]]; then
        missing+=("Java 17 or newer (found: ${jv:-unknown})")
    fi
fi
command -v mvn >/dev/null 2>&1 || missing+=("Maven (e.g. apt-get install maven)")
if ((${#missing[@]})); then
    log "the Spark peer needs: ${missing[*]}"
    exit 3
fi

if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv/.medilake-spark.lock"
    flock 9
fi

# --- pyspark + delta-spark into the venv -----------------------------------------------
stamp="$venv/.medilake-spark.stamp"
want="$(sha256sum "$req" | cut -d' ' -f1)"
healthy() { "$python" -c 'import pyspark, delta, py4j' >/dev/null 2>&1; }
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && healthy; then
    log "reusing pyspark in $venv (requirements-spark.txt unchanged)"
else
    log "installing $(grep -cE '^[A-Za-z]' "$req") pinned packages from $req (pyspark is ~450 MB)"
    start=$SECONDS
    "$python" -m pip install --quiet --disable-pip-version-check --no-input --requirement "$req" >&2
    healthy || { log "pyspark/delta-spark fail to import after install"; exit 1; }
    printf '%s\n' "$want" >"$stamp"
    log "pip install took $((SECONDS - start))s"
fi

# --- Delta jars through Maven -------------------------------------------------------------
cache="${MEDILAKE_SPARK_CACHE:-$HOME/.cache/medilake-spark}"
jars="$cache/jars-$(sha256sum "$pom" | cut -c1-16)"
if [[ -f "$jars/.complete" ]] && compgen -G "$jars/delta-spark_*.jar" >/dev/null; then
    log "reusing Delta jars in $jars"
else
    log "fetching Delta jars with Maven into $jars"
    start=$SECONDS
    rm -rf "$jars.tmp"
    mkdir -p "$jars.tmp"
    mvn -B -q -f "$pom" dependency:copy-dependencies -DoutputDirectory="$jars.tmp" >&2 \
        || { log "mvn dependency:copy-dependencies failed (see above)"; exit 1; }
    touch "$jars.tmp/.complete"
    rm -rf "$jars"
    mv "$jars.tmp" "$jars"
    log "Maven fetch took $((SECONDS - start))s"
fi
printf '%s\n' "$jars"
