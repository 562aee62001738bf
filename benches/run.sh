#!/usr/bin/env bash
# The benchmark suite in one command: wasmfn and its peers over HTTP (benches/http), the
# in-process cold-start breakdown (wasmfn bench), deploy -> first response
# (benches/deploy/run.py), then the storage benchmark (benches/storage/run.py) and outbound
# calls (benches/outbound/run.py: a function that calls a REST service, wasmfn vs CPython), 100 KB
# of JSON in and out (benches/json/run.py: wasmfn vs ixoncdkingress, gunicorn and uvicorn), the
# document store (benches/documents/run.py: a logbook's find/$push/positional update, wasmfn on
# sled and PostgreSQL vs the CPython servers on mongomock; benches/pg_documents: the PostgreSQL
# store at 100,000 documents, scan vs pushed down vs indexed), pure-Python packages
# (benches/imports/run.py), the cold start of each example (benches/coldstart/run.py) and the
# development loop (benches/devloop/run.py: build and `wasmfn dev` edit times).
#
#   bash benches/run.sh [--quick] [--duration SECONDS] [--only wasmfn,ixoncdkingress,...]
#                       [--no-build] [--wasmfn-bin PATH] [--spin-bin PATH]
#
# Installs what it needs with pinned versions and caches it in benches/.cache: wrk (apt-get),
# matplotlib (benches/requirements.txt), the peers (see benches/README.md). Results:
# benches/out/http.{json,md}, plots: benches/plots/. Extra `wasmfn serve` / `wasmtime serve`
# arguments: WASMFN_SERVE_ARGS, WASMTIME_SERVE_ARGS.
set -euo pipefail

BENCHES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCHES")"
CACHE="$BENCHES/.cache"
OUT="$BENCHES/out"
VENV="$CACHE/venv"
COMMAND="bash benches/run.sh${*:+ $*}"

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<'EOF'

  --quick            3 s runs with 1 s warm-up (default: 10 s runs, 2 s warm-up)
  --duration S       seconds per measured run
  --only LIST        systems to run: wasmfn, ixoncdkingress, gunicorn, uvicorn,
                     process-per-call, wasmtime-serve, spin and spin-reuse (with
                     --spin-bin), inprocess (wasmfn bench),
                     deploy (deploy -> first response), storage (the storage benchmark), outbound (a
                     function calling a local REST service), json (100 KB of
                     JSON in and out), documents (the document store: a
                     logbook), pgdocuments (the PostgreSQL store at 100k
                     documents, with and without indexes), imports (pure-Python packages), coldstart (a
                     new function's cold start, per example, plotted),
                     devloop (build and `wasmfn dev` edit times) and cluster
                     (1/2/3 servers sharing PostgreSQL behind HAProxy, the async
                     queue); default all
  --no-build         serve with the existing target/release/wasmfn (no cargo build)
  --wasmfn-bin PATH  serve with this wasmfn binary (implies --no-build)
  --spin-bin PATH    Fermyon Spin binary for the spin peers (default $SPIN_BIN); no
                     registry serves Spin, so the suite runs them only when given one
EOF
}

driver_args=()
quick=0
duration=""
only=""
wasmfn_bin="${WASMFN_BIN:-$REPO/target/release/wasmfn}"
build_wasmfn=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --duration) duration="${2:?--duration needs SECONDS}"; shift ;;
    --duration=*) duration="${1#*=}" ;;
    --only) only="${2:?--only needs a comma-separated list}"; shift ;;
    --only=*) only="${1#*=}" ;;
    --no-build) build_wasmfn=0 ;;
    --wasmfn-bin) wasmfn_bin="${2:?--wasmfn-bin needs a PATH}"; build_wasmfn=0; shift ;;
    --wasmfn-bin=*) wasmfn_bin="${1#*=}"; build_wasmfn=0 ;;
    --spin-bin) driver_args+=(--spin-bin "${2:?--spin-bin needs a PATH}"); shift ;;
    --spin-bin=*) driver_args+=(--spin-bin "${1#*=}") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  driver_args+=(--quick)
fi
if [ -n "$duration" ]; then
  driver_args+=(--duration "$duration")
fi
if [ -n "${WASMFN_BIN:-}" ]; then
  build_wasmfn=0
fi
driver_args+=(--wasmfn-bin "$wasmfn_bin")
if [ "$build_wasmfn" = 1 ]; then
  driver_args+=(--build-wasmfn)
fi

wants() {  # wants NAME: is NAME selected by --only (everything is when --only is absent)?
  [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]
}

started=$(date +%s)
mkdir -p "$CACHE" "$OUT"

# The one load generator, from Debian.
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "run.sh: installing wrk with apt-get"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    echo "run.sh: wrk is missing: install it (Debian: sudo apt-get install wrk) and run again" >&2
    exit 1
  fi
fi

# The driver is standard-library Python; the venv adds the pinned matplotlib for the plots.
python="$VENV/bin/python"
wanted_sha=$(sha256sum "$BENCHES/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$wanted_sha" ]; then
  echo "run.sh: installing benches/requirements.txt into $VENV"
  if python3 -m venv --clear "$VENV" \
     && "$python" -m pip install --disable-pip-version-check --quiet -r "$BENCHES/requirements.txt"; then
    echo "$wanted_sha" > "$VENV/.requirements.sha256"
  else
    echo "run.sh: could not install matplotlib; running without plots" >&2
    python="$(command -v python3)"
  fi
fi

status=0
# The HTTP systems asked for (all when --only is absent).
http_only=""
if [ -n "$only" ]; then
  http_only=$(echo "$only" | tr ',' '\n' | grep -vxE 'storage|inprocess|deploy|outbound|json|documents|pgdocuments|imports|coldstart|devloop|cluster' | paste -sd, - || true)
fi
if [ -n "$http_only" ]; then
  driver_args+=(--only "$http_only")
fi
if [ -z "$only" ] || [ -n "$http_only" ]; then
  BENCH_COMMAND="$COMMAND" "$python" "$BENCHES/http/run.py" "${driver_args[@]}" || status=$?
fi

# In process: the cold-start breakdown, pooled calls, memory per instance, 1 vs 2 callers.
if wants inprocess; then
  echo "== in-process benchmark (wasmfn bench)"
  if [ ! -x "$wasmfn_bin" ]; then
    (cd "$REPO" && cargo build --release --bin wasmfn)
  fi
  runs=300 seconds=5
  if [ "$quick" = 1 ]; then runs=50 seconds=2; fi
  (cd "$REPO" && "$wasmfn_bin" bench examples/hello-world --builds 0 --compiles 0 \
      --runs "$runs" --seconds "$seconds") | tee "$OUT/inprocess.txt" || {
    echo "run.sh: the in-process benchmark failed" >&2
    status=1
  }
  # Cores: one caller already keeps more than one core busy (the pool's keeper and the memory
  # resets run beside the call), so 1 vs 2 callers says little about scaling. The same run
  # pinned to one core (taskset) against all cores, back to back, does.
  if command -v taskset >/dev/null 2>&1; then
    echo "== cores: fresh-instance throughput, 2 callers, on 1 core and on all $(nproc) cores"
    for cpus in one all; do
      pin=()
      if [ "$cpus" = one ]; then pin=(taskset -c 0); fi
      (cd "$REPO" && "${pin[@]}" "$wasmfn_bin" bench examples/hello-world --builds 0 \
          --compiles 0 --runs 1 --live 0 --seconds "$seconds" --json) >"$OUT/cores-$cpus.json" || {
        echo "run.sh: the cores benchmark failed" >&2
        status=1
      }
    done
    "$python" - "$OUT" <<'PY' | tee "$OUT/cores.txt"
import json, os, sys
out = sys.argv[1]
rate = {}
for cpus in ("one", "all"):
    with open(os.path.join(out, f"cores-{cpus}.json")) as f:
        rate[cpus] = dict(json.load(f)["invocations_per_second"])[2]
print(f"1 core: {rate['one']:.0f}/s; {os.cpu_count()} cores: {rate['all']:.0f}/s "
      f"({rate['all'] / rate['one']:.2f}x)")
PY
  fi
fi

# Deploy -> first response, compiling on deploy vs precompiled at build time.
# A benchmark of whole `wasmfn` commands (benches/NAME/run.py): the release binary, 3 runs
# (1 with --quick). Arguments: NAME and what it measures.
run_command_bench() {
  echo "== $2 (benches/$1/run.py)"
  if [ ! -x "$wasmfn_bin" ]; then
    (cd "$REPO" && cargo build --release --bin wasmfn)
  fi
  local runs=3
  if [ "$quick" = 1 ]; then runs=1; fi
  "$python" "$BENCHES/$1/run.py" --wasmfn "$wasmfn_bin" --out "$OUT" --runs "$runs" || {
    echo "run.sh: the $2 benchmark failed" >&2
    status=1
  }
}

if wants deploy; then
  run_command_bench deploy "deploy -> first response"
fi

if wants storage; then
  if [ -f "$BENCHES/storage/run.py" ]; then
    echo "== storage benchmark (benches/storage/run.py)"
    storage_args=(--wasmfn "$wasmfn_bin" --out "$OUT")
    storage_help="$("$python" "$BENCHES/storage/run.py" --help 2>&1 || true)"
    if [ "$quick" = 1 ] && [[ "$storage_help" == *--quick* ]]; then
      storage_args+=(--quick)
    fi
    if [ -n "$duration" ] && [[ "$storage_help" == *--duration* ]]; then
      storage_args+=(--duration "$duration")
    fi
    "$python" "$BENCHES/storage/run.py" "${storage_args[@]}" || {
      echo "run.sh: the storage benchmark failed (exit $?)" >&2
      status=1
    }
  else
    echo "== storage benchmark skipped: benches/storage/run.py does not exist"
  fi
fi

if wants devloop; then
  run_command_bench devloop "development loop"
fi

# A benchmark of one function served by several systems (benches/NAME/run.py, built on the HTTP
# benchmark's systems). Arguments: NAME and what it measures.
run_function_bench() {
  echo "== $2 (benches/$1/run.py)"
  if [ ! -x "$wasmfn_bin" ]; then
    (cd "$REPO" && cargo build --release --bin wasmfn)
  fi
  local args=(--wasmfn-bin "$wasmfn_bin" --out "$OUT")
  if [ "$quick" = 1 ]; then args+=(--quick); fi
  if [ -n "$duration" ]; then args+=(--duration "$duration"); fi
  "$python" "$BENCHES/$1/run.py" "${args[@]}" || {
    echo "run.sh: the $2 benchmark failed" >&2
    status=1
  }
}

if wants outbound; then
  run_function_bench outbound "outbound calls"
fi

if wants json; then
  run_function_bench json "100 KB of JSON in and out"
fi

if wants documents; then
  bash "$REPO/scripts/setup-postgres.sh"
  run_function_bench documents "the document store: a logbook"
fi

if wants pgdocuments; then
  bash "$REPO/scripts/setup-postgres.sh"
  echo "== the PostgreSQL document store at 100,000 documents (benches/pg_documents)"
  pg_args=()
  if [ "$quick" = 1 ]; then pg_args+=(--seconds 1); fi
  if [ -n "$duration" ]; then pg_args+=(--seconds "$duration"); fi
  (cd "$REPO" && cargo bench --locked -p wasmfn-host-apis --bench pg_documents -- "${pg_args[@]}") \
    | tee "$OUT/pg_documents.md" || {
    echo "run.sh: the pg_documents benchmark failed" >&2
    status=1
  }
fi

if wants imports; then
  run_function_bench imports "pure-Python packages"
fi

if wants coldstart; then
  run_command_bench coldstart "cold start of a new function, per example"
fi

if wants cluster; then
  bash "$REPO/scripts/setup-postgres.sh"
  bash "$REPO/scripts/setup-haproxy.sh"
  duration_arg=()
  if [ -n "$duration" ]; then duration_arg=(--duration "$duration"); fi
  if [ "$quick" = 1 ]; then duration_arg=(--duration 3); fi
  echo "== 1 vs 2 vs 3 servers sharing PostgreSQL, and the async queue (benches/cluster/run.py)"
  if [ ! -x "$wasmfn_bin" ]; then
    (cd "$REPO" && cargo build --release --bin wasmfn)
  fi
  "$python" "$BENCHES/cluster/run.py" --wasmfn "$wasmfn_bin" --out "$OUT" "${duration_arg[@]}" || {
    echo "run.sh: the cluster benchmark failed" >&2
    status=1
  }
fi

echo "== wall time: $(( $(date +%s) - started )) s"
exit "$status"
