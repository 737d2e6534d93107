#!/usr/bin/env bash
# Creates (or reuses) the Python virtualenv the interop tests use: delta-rs,
# pyarrow, DuckDB and DuckDB's delta extension, pinned in
# tests/python/requirements.txt.
#
# Idempotent: the venv lives at <repo>/.venv and carries a stamp holding the
# hash of the requirements file and the interpreter version; when both match
# and the imports still work, nothing is installed. Needs only PyPI.
#
# Prints the venv's python path as the only line on stdout (progress goes to
# stderr), so callers can do:  PY="$(tests/interop-setup.sh)"
#
# Environment:
#   MEDILAKE_BOOTSTRAP_PYTHON  interpreter to create the venv with (default: python3)
#   MEDILAKE_VENV              venv location (default: <repo>/.venv)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MEDILAKE_VENV:-$repo_root/.venv}"
req="$repo_root/tests/python/requirements.txt"
bootstrap="${MEDILAKE_BOOTSTRAP_PYTHON:-python3}"
stamp="$venv/.medilake-requirements.stamp"

log() { printf 'interop-setup: %s\n' "$*" >&2; }

command -v "$bootstrap" >/dev/null 2>&1 || { log "no '$bootstrap' on PATH"; exit 1; }
"$bootstrap" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || { log "$bootstrap is older than Python 3.10 (deltalake needs >= 3.10)"; exit 1; }

# Serialise concurrent runs (two test invocations at once) on the same venv.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv.lock"
    flock 9
fi

py_version="$("$bootstrap" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
want="$(sha256sum "$req" | cut -d' ' -f1) python-$py_version"

# Checks that the installed packages import and the DuckDB extension binary is present.
healthy() {
    "$venv/bin/python" - <<'PY' >/dev/null 2>&1
import pathlib, deltalake, pyarrow, duckdb, duckdb_ext
p = pathlib.Path(duckdb_ext.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
assert any(p.glob("*/delta.duckdb_extension")), p
PY
}

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && healthy; then
    log "reusing $venv (requirements unchanged)"
else
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 \
        || [[ "$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" != "$py_version" ]]; then
        log "creating venv at $venv with $bootstrap ($py_version)"
        rm -rf "$venv"
        "$bootstrap" -m venv "$venv"
    fi
    log "installing $(grep -cE '^[A-Za-z]' "$req") pinned packages from $req"
    start=$SECONDS
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input --requirement "$req" >&2
    healthy || { log "installed packages fail to import; see: $venv/bin/python -c 'import deltalake, duckdb, duckdb_ext'"; exit 1; }
    printf '%s\n' "$want" >"$stamp"
    log "installed in $((SECONDS - start))s"
fi

printf '%s\n' "$venv/bin/python"
