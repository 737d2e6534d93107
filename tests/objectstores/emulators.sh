#!/usr/bin/env bash
# Loopback object-store emulators for the object-store suites (issue 7): moto 5.2.5 (S3,
# single-threaded, moto_serial.py) and Azurite 3.37.0 (Azure Blob). Recipes, pitfalls and
# measurements: ../shared/OBJECT_STORES.md.
#
# Two ways to use it:
#
#   source tests/objectstores/emulators.sh     (./test.sh does this)
#   emulators_up || exit 1                     install if needed, start, export the env
#   ...                                        (and call emulators_stop on exit)
#
#   tests/objectstores/emulators.sh CMD...     run one command with the emulators up, e.g.
#   tests/objectstores/emulators.sh cargo test -p medilake-tests --test object_stores
#
# Install (idempotent, cached under target/emulators/): moto into its own venv
# (target/emulators/venv, from tests/objectstores/requirements.txt; re-installed when that
# file's hash or the Python version changes) and Azurite from npm (target/emulators/node).
# Start: both bind 127.0.0.1 on ports the kernel picks; Azurite keeps blobs in memory and
# never sends telemetry. Then the bucket and container `medilake-test` are created.
#
# Exported for the tests (object_store's `from_env` builders and delta-rs read these):
#   MEDILAKE_S3_URL=s3://medilake-test        MEDILAKE_AZURE_URL=az://medilake-test
#   MEDILAKE_S3_ENDPOINT, AWS_ENDPOINT, AWS_ENDPOINT_URL = http://127.0.0.1:<moto port>
#   AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummy)
#   AWS_EC2_METADATA_DISABLED=true
#   AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:<azurite port>
#   AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY (the public emulator account)
# Credentials are always set (dummy ones), so no client falls back to a cloud metadata
# endpoint. AWS_CONDITIONAL_PUT is deliberately not set: object_store 0.14 already sends
# If-None-Match for create-only puts by default.
#
# When MEDILAKE_S3_URL and MEDILAKE_AZURE_URL are already set, nothing is started (point
# them, and the AWS_/AZURE_ variables, at servers you run yourself).
#
# Failure policy (emulators_up): under CI=true an emulator that cannot be installed or
# started fails (status 1); otherwise one line says the object-store suites will skip, the
# MEDILAKE_S3_URL/MEDILAKE_AZURE_URL variables stay unset, and the status is 0.
#
# Needs: python3 (>= 3.10, with venv), node >= 18 and npm, curl.

emu_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
emu_dir="${MEDILAKE_EMULATOR_DIR:-$emu_root/target/emulators}"
emu_moto_pid=""
emu_azurite_pid=""
# The bucket (S3) and container (Azure) every test shares; tests use their own prefixes.
emu_bucket="medilake-test"
emu_azurite_version="3.37.0"

emu_say() { printf 'emulators: %s\n' "$*" >&2; }
emu_now_ms() { date +%s%3N; }

# Install moto (venv) and Azurite (npm) unless the cached copies are current. A subshell:
# the install lock is released when it ends, whatever happens.
emulators_install() (
    local req="$emu_root/tests/objectstores/requirements.txt"
    local venv="$emu_dir/venv" node="$emu_dir/node"
    local py="${MEDILAKE_BOOTSTRAP_PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || { emu_say "no $py on PATH"; return 1; }
    command -v npm >/dev/null 2>&1 || { emu_say "no npm on PATH (Azurite comes from npm)"; return 1; }
    command -v curl >/dev/null 2>&1 || { emu_say "no curl on PATH"; return 1; }
    local node_major
    node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    ((node_major >= 18)) || { emu_say "Azurite needs node >= 18 (found: ${node_major})"; return 1; }
    mkdir -p "$emu_dir"
    # One installer at a time per folder (two test runs at once).
    if command -v flock >/dev/null 2>&1; then
        exec 8>"$emu_dir/.install.lock"
        flock 8
    fi
    local want start
    want="$(sha256sum "$req" | cut -d' ' -f1) python-$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    if [[ -x "$venv/bin/python" && "$(cat "$venv/.stamp" 2>/dev/null)" == "$want" ]]; then
        :
    else
        start=$(emu_now_ms)
        rm -rf "$venv"
        "$py" -m venv "$venv" || return 1
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
            --requirement "$req" >&2 || { emu_say "pip install of $req failed"; return 1; }
        printf '%s\n' "$want" >"$venv/.stamp"
        emu_say "moto installed into $venv in $(( $(emu_now_ms) - start )) ms"
    fi
    if [[ -x "$node/node_modules/.bin/azurite-blob" && "$(cat "$node/.stamp" 2>/dev/null)" == "$emu_azurite_version" ]]; then
        :
    else
        start=$(emu_now_ms)
        rm -rf "$node"
        npm install --prefix "$node" --no-audit --no-fund --loglevel=error \
            "azurite@$emu_azurite_version" >&2 || { emu_say "npm install azurite@$emu_azurite_version failed"; return 1; }
        printf '%s\n' "$emu_azurite_version" >"$node/.stamp"
        emu_say "Azurite installed into $node in $(( $(emu_now_ms) - start )) ms"
    fi
)

# Start both servers, wait until they answer, create the bucket and container, export the
# environment. On failure both are stopped again and the status is 1.
emulators_start() {
    local run="$emu_dir/run.$$" old
    # Logs of earlier runs whose shell is gone.
    for old in "$emu_dir"/run.*; do
        [[ -d "$old" ]] && ! kill -0 "${old##*.}" 2>/dev/null && rm -rf "$old"
    done
    rm -rf "$run"
    mkdir -p "$run"
    local start
    start=$(emu_now_ms)
    # Plain commands with `&` so $! is the server itself, not a subshell.
    "$emu_dir/venv/bin/python" "$emu_root/tests/objectstores/moto_serial.py" "$run/moto.port" \
        >"$run/moto.log" 2>&1 &
    emu_moto_pid=$!
    "$emu_dir/node/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort 0 \
        --inMemoryPersistence --extentMemoryLimit 1024 --disableTelemetry \
        --skipApiVersionCheck --loose >"$run/azurite.log" 2>&1 &
    emu_azurite_pid=$!
    local s3_port="" az_port="" i
    for i in $(seq 300); do
        [[ -z "$s3_port" && -s "$run/moto.port" ]] && s3_port="$(cat "$run/moto.port")"
        [[ -z "$az_port" ]] && az_port="$(sed -n 's|.*successfully listens on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
            "$run/azurite.log" | head -n 1)"
        [[ -n "$s3_port" && -n "$az_port" ]] && break
        kill -0 "$emu_moto_pid" 2>/dev/null || break
        kill -0 "$emu_azurite_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$s3_port" || -z "$az_port" ]]; then
        [[ -z "$s3_port" ]] && { emu_say "moto did not start; its log:"; tail -n 20 "$run/moto.log" >&2; }
        [[ -z "$az_port" ]] && { emu_say "Azurite did not start; its log:"; tail -n 20 "$run/azurite.log" >&2; }
        emulators_stop
        return 1
    fi
    local s3="http://127.0.0.1:$s3_port" az="http://127.0.0.1:$az_port"
    if ! "$emu_dir/venv/bin/python" "$emu_root/tests/objectstores/make_buckets.py" "$s3" "$az" "$emu_bucket"; then
        emulators_stop
        return 1
    fi
    export MEDILAKE_S3_URL="s3://$emu_bucket" MEDILAKE_AZURE_URL="az://$emu_bucket"
    export MEDILAKE_S3_ENDPOINT="$s3" AWS_ENDPOINT="$s3" AWS_ENDPOINT_URL="$s3"
    export AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=medilake-test AWS_SECRET_ACCESS_KEY=medilake-test
    export AWS_EC2_METADATA_DISABLED=true
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONDITIONAL_PUT
    export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL="$az"
    export AZURE_STORAGE_ACCOUNT_NAME=devstoreaccount1
    export AZURE_STORAGE_ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
    emu_say "moto (S3) at $s3, Azurite at $az, bucket/container $emu_bucket; up in $(( $(emu_now_ms) - start )) ms (logs: $run)"
}

# Stop both servers (SIGTERM, then SIGKILL after 5 s). Safe to call twice.
emulators_stop() {
    local pid
    for pid in $emu_moto_pid $emu_azurite_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $emu_moto_pid $emu_azurite_pid; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    emu_moto_pid=""
    emu_azurite_pid=""
}

# Install and start, with the CI policy described at the top.
emulators_up() {
    if [[ -n "${MEDILAKE_S3_URL:-}" && -n "${MEDILAKE_AZURE_URL:-}" ]]; then
        emu_say "using MEDILAKE_S3_URL=$MEDILAKE_S3_URL and MEDILAKE_AZURE_URL=$MEDILAKE_AZURE_URL as set"
        return 0
    fi
    unset MEDILAKE_S3_URL MEDILAKE_AZURE_URL
    if emulators_install && emulators_start; then
        return 0
    fi
    if [[ "${CI:-}" == "true" ]]; then
        emu_say "CI=true and the object-store emulators are unavailable (see above)"
        return 1
    fi
    emu_say "object-store suites (S3, Azure) will be skipped: the emulators are unavailable (see above)"
    return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    (($# > 0)) || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
    trap emulators_stop EXIT
    emulators_up
    "$@"
fi
