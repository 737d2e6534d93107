# Shared helpers of the tests/bench/*.sh benchmark scripts (source it; bash only).
#
# Environment (all optional):
#   MEDILAKE   the CLI binary            (default: <repo>/target/release/medilake)
#   PYTHON     Python with deltalake     (default: <repo>/.venv/bin/python, made by
#                                          tests/interop-setup.sh)
#   BENCH_DIR  scratch space for data and tables (default: /tmp/medilake-bench); needs a
#              few GB free and is NOT cleaned up (generated data is reused across runs)
#   REPEATS    timed runs of each command (default 3)

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MEDILAKE="${MEDILAKE:-$REPO/target/release/medilake}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
BENCH_DIR="${BENCH_DIR:-/tmp/medilake-bench}"
REPEATS="${REPEATS:-3}"
GEN="$REPO/tests/bench/gen_labs.py"
DELTARS="$REPO/tests/python/bench_write_deltars.py"

[ -x "$MEDILAKE" ] || { echo "no $MEDILAKE: cargo build --release -p pipeline" >&2; exit 2; }
[ -x "$PYTHON" ] || { echo "no $PYTHON: run tests/interop-setup.sh" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$BENCH_DIR"

# Describe the machine and the builds once per script.
machine() {
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "# medilake $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- crates || echo '+changes'), deltalake $("$PYTHON" -c 'import deltalake; print(deltalake.__version__)'), load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# timed LABEL LOG -- CMD...: runs CMD under /usr/bin/time -v (stdout and stderr to LOG),
# fails if CMD fails, and appends "LABEL<TAB>wall_s<TAB>peak_MiB" to $RESULTS.
timed() {
  local label="$1" log="$2"; shift 3
  local tf; tf="$(mktemp)"
  if ! /usr/bin/time -v -o "$tf" "$@" >"$log" 2>&1; then
    echo "FAILED: $label (see $log)" >&2; cat "$tf" >&2; rm -f "$tf"; return 1
  fi
  awk -v label="$label" -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
    /Maximum resident set size/ { rss = $2 / 1024 }
    END { printf "%s\t%.2f\t%.0f\n", label, wall, rss }' "$tf" | tee -a "$RESULTS"
  rm -f "$tf"
}

# summary FILE: min and median of wall seconds and peak MiB per label.
summary() {
  sort -t$'\t' -k1,1 -k2,2g "$1" | awk -F'\t' '
    function med(a, n) { return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function flush() {
      if (label == "") return
      # wall values arrive sorted; sort the peaks by insertion (n is small)
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
      printf "%-28s runs %d  wall s min %8.2f median %8.2f   peak MiB min %6.0f median %6.0f\n", label, n, w[1], med(w, n), r[1], med(r, n)
    }
    $1 != label { flush(); label = $1; n = 0 }
    { n++; w[n] = $2; r[n] = $3 }
    END { flush() }'
}

# median of numbers on stdin
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# quiet: on a shared machine, wait (up to QUIET_WAIT seconds, default 600) until the
# 1-minute load average drops below QUIET_LOAD (default 1.0) before a measurement.
quiet() {
  local limit="${QUIET_LOAD:-1.0}" waited=0 max="${QUIET_WAIT:-600}"
  while awk -v l="$limit" '{ exit !($1 >= l) }' /proc/loadavg && [ "$waited" -lt "$max" ]; do
    sleep 5; waited=$((waited + 5))
  done
}
