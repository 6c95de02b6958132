#!/usr/bin/env bash
# Tessera vs redis-server, side by side, on the same pinned core(s).
#
# Starts both servers on free ports, pinned with taskset to the same CPU(s),
# runs the same workloads on both in alternating rounds (T R T R ...) with
# tessera-loadgen and redis-benchmark, and writes a Markdown report, a PNG
# latency-percentile plot and the raw JSON:
#
#   perf/results/<date>-<shortcommit>.{md,json,png}     (full run, ~6 minutes)
#   $TMPDIR/tessera-compare.XXXX/...                     (--quick, ~30 seconds)
#
# Usage: perf/compare.sh [--quick] [--server-cpus 0] [--client-cpus 1] [--shards N]
#                        [--rounds N] [--duration SECS] [--warmup SECS] [--keys N]
#                        [--data-size BYTES] [--ratio S:G] [--rb-seconds SECS]
#                        [--only REGEX] [--out-dir DIR] [--build] [--keep-logs]
#                        [--tessera-arg ARG]... [--redis-arg ARG]...
# Run `perf/compare.sh --help` or see perf/README.md for every option.
#
# Exit status: 0 on success; 1 if a server fails to start or dies, a benchmark
# exits non-zero / reports errors, or the report cannot be written; 2 on bad usage.
# Every process it starts is stopped on exit (trap EXIT), also on Ctrl-C.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
INVOCATION="perf/compare.sh${*:+ $*}"

QUICK=0
SERVER_CPUS=0
CLIENT_CPUS=1
SHARDS=""
OUT_DIR=""
BUILD=0
KEEP_LOGS=0
T_EXTRA=()
R_EXTRA=()
PASS=()   # options handed to compare_bench.py run

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --quick              smoke run: 5 cases, 1 round of ~1 s each, report in a temp dir
                       (used by `make test`; numbers are not meaningful)
  --server-cpus LIST   CPU list both servers are pinned to (taskset -c), default 0
  --client-cpus LIST   CPU list the benchmark clients are pinned to, default 1
  --shards N           Tessera --threads (default: number of CPUs in --server-cpus)
  --rounds N           rounds per server per case (default 3; quick 1)
  --duration SECS      measured seconds per loadgen run (default 3; quick 1)
  --warmup SECS        loadgen warm-up seconds before measuring (default 0.5; quick 0)
  --rb-seconds SECS    target seconds per redis-benchmark test; -n is sized from the
                       loadgen SET/GET throughput of the same pipeline/connections (default 2.5)
  --rb-requests N      fixed redis-benchmark -n instead
  --keys N             key space (loadgen --keys, redis-benchmark -r) (default 100000; quick 10000)
  --data-size BYTES    value size (default 3, like redis-benchmark)
  --ratio S:G          loadgen SET:GET weights for the SET/GET cases (default 1:1)
  --only REGEX         run only the cases whose name matches, e.g. 'loadgen.*P16'
  --seed N             base seed for loadgen (default 42)
  --out-dir DIR        where to write the report (default perf/results; quick: a temp dir)
  --build              run `cargo build --release --workspace` first even if binaries exist
  --profile P          which cargo profile's binaries to use: release (default) or debug;
                       `make test` runs --quick with debug, the binaries its tests just built
  --keep-logs          keep the server logs / work dir (printed at the end)
  --tessera-arg ARG    extra argument for tessera (repeatable), e.g. --tessera-arg --hz --tessera-arg 100
  --redis-arg ARG      extra argument for redis-server (repeatable)
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1; PASS+=(--quick) ;;
        --server-cpus) SERVER_CPUS="$2"; shift ;;
        --client-cpus) CLIENT_CPUS="$2"; shift ;;
        --shards) SHARDS="$2"; shift ;;
        --out-dir) OUT_DIR="$2"; shift ;;
        --build) BUILD=1 ;;
        --profile) PROFILE="$2"; shift ;;
        --keep-logs) KEEP_LOGS=1 ;;
        --tessera-arg) T_EXTRA+=("$2"); shift ;;
        --redis-arg) R_EXTRA+=("$2"); shift ;;
        --rounds|--duration|--warmup|--rb-seconds|--rb-requests|--keys|--data-size|--ratio|--only|--seed|--timeout)
            [[ $# -ge 2 ]] || { echo "compare.sh: $1 needs a value" >&2; exit 2; }
            PASS+=("$1" "$2"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "compare: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

for tool in python3 taskset redis-server redis-benchmark; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (make deps installs redis-server and redis-tools)"
done

NCPU=$(nproc)
if [[ "$NCPU" -lt 2 && "$SERVER_CPUS" == 0 && "$CLIENT_CPUS" == 1 ]]; then
    log "only 1 CPU: servers and clients share CPU 0"
    CLIENT_CPUS=0
fi
count_cpus() { python3 -c 'import sys
n=0
for p in sys.argv[1].split(","):
    if "-" in p: a,b=p.split("-"); n+=int(b)-int(a)+1
    elif p.strip(): n+=1
print(n)' "$1"; }
[[ -n "$SHARDS" ]] || SHARDS=$(count_cpus "$SERVER_CPUS")
taskset -c "$SERVER_CPUS" true 2>/dev/null || fail "cannot pin to --server-cpus $SERVER_CPUS"
taskset -c "$CLIENT_CPUS" true 2>/dev/null || fail "cannot pin to --client-cpus $CLIENT_CPUS"

PROFILE="${PROFILE:-release}"
case "$PROFILE" in
    release) PROFILE_FLAG=(--release) ;;
    debug) PROFILE_FLAG=() ;;
    *) echo "compare.sh: --profile must be release or debug" >&2; exit 2 ;;
esac
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
TESSERA="$TARGET_DIR/$PROFILE/tessera"
LOADGEN="$TARGET_DIR/$PROFILE/tessera-loadgen"
if [[ $BUILD == 1 || ! -x "$TESSERA" || ! -x "$LOADGEN" ]]; then
    log "building $PROFILE binaries (cargo build ${PROFILE_FLAG[*]} --workspace)"
    (cd "$ROOT" && cargo build "${PROFILE_FLAG[@]}" --workspace) || fail "cargo build failed"
fi
[[ -x "$TESSERA" && -x "$LOADGEN" ]] || fail "missing $TESSERA or $LOADGEN after the build"

# ---------------------------------------------------------------------------
# Process bookkeeping: everything we start is stopped on exit.
# ---------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-compare.XXXXXX")"
# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pids "${PIDS[@]:-}"
    if [[ $KEEP_LOGS == 1 || $rc != 0 ]]; then
        log "server logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_ports() {
    python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}

ping_ok() {
    timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
        printf "PING\r\n" >&3; IFS= read -r line <&3; [[ $line == +PONG* ]]' 2>/dev/null
}

# start_server NAME PORT CMD... : starts CMD in $WORK/NAME, waits for PING, sets STARTED_PID
start_server() {
    local name=$1 port=$2; shift 2
    mkdir -p "$WORK/$name"
    (cd "$WORK/$name" && exec "$@") >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -20 "$WORK/$name.log" >&2 || true
            fail "$name exited during start-up: $*"
        fi
        if ping_ok "$port"; then
            STARTED_PID=$pid
            return 0
        fi
        sleep 0.1
    done
    tail -20 "$WORK/$name.log" >&2 || true
    fail "$name did not answer PING on port $port within 20 s: $*"
}

read -r T_PORT R_PORT < <(free_ports)
T_CMD=(taskset -c "$SERVER_CPUS" "$TESSERA" --port "$T_PORT" --threads "$SHARDS" --bind 127.0.0.1
       --save "" --appendonly no --dir "$WORK/tessera" "${T_EXTRA[@]}")
R_CMD=(taskset -c "$SERVER_CPUS" redis-server --port "$R_PORT" --bind 127.0.0.1
       --save "" --appendonly no --dir "$WORK/redis" --daemonize no "${R_EXTRA[@]}")

log "work dir $WORK; servers on CPU(s) $SERVER_CPUS, clients on CPU(s) $CLIENT_CPUS"
start_server tessera "$T_PORT" "${T_CMD[@]}"
T_PID=$STARTED_PID
log "Tessera ($SHARDS shard(s)) pid $T_PID port $T_PORT"
start_server redis "$R_PORT" "${R_CMD[@]}"
R_PID=$STARTED_PID
log "redis-server pid $R_PID port $R_PORT"

# ---------------------------------------------------------------------------
# Output location
# ---------------------------------------------------------------------------
SHORT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)
NAME="$(date +%Y-%m-%d)-$SHORT"
if [[ -z "$OUT_DIR" ]]; then
    if [[ $QUICK == 1 ]]; then OUT_DIR="$WORK/report"; KEEP_REPORT_IN_WORK=1; else OUT_DIR="$ROOT/perf/results"; fi
fi
mkdir -p "$OUT_DIR"
if [[ -e "$OUT_DIR/$NAME.md" ]]; then NAME="$NAME-$(date +%H%M%S)"; fi

quote() { local out="" a; for a in "$@"; do out+="$(printf '%q' "$a") "; done; echo "${out% }"; }

python3 "$HERE/compare_bench.py" run \
    --tessera-port "$T_PORT" --tessera-pid "$T_PID" --redis-port "$R_PORT" --redis-pid "$R_PID" \
    --tessera-cmd "$(quote "${T_CMD[@]}")" --redis-cmd "$(quote "${R_CMD[@]}")" \
    --invocation "$INVOCATION" --loadgen "$LOADGEN" --tessera-bin "$TESSERA" --repo "$ROOT" \
    --server-cpus "$SERVER_CPUS" --client-cpus "$CLIENT_CPUS" \
    --json "$OUT_DIR/$NAME.json" "${PASS[@]}" || fail "benchmark run failed (server logs: $WORK)"

python3 "$HERE/compare_bench.py" report --json "$OUT_DIR/$NAME.json" --md "$OUT_DIR/$NAME.md" \
    --png "$OUT_DIR/$NAME.png" || fail "could not write the report"

# A quick run's report lives in the work dir; keep it (and say where) instead of deleting it.
if [[ ${KEEP_REPORT_IN_WORK:-0} == 1 ]]; then
    FINAL="$(mktemp -d "${TMPDIR:-/tmp}/tessera-compare-report.XXXXXX")"
    mv "$OUT_DIR"/"$NAME".* "$FINAL"/
    OUT_DIR="$FINAL"
fi

echo
sed -n '/^| case | Tessera ops/,/^$/p' "$OUT_DIR/$NAME.md"
echo "report: $OUT_DIR/$NAME.md"
echo "plot:   $OUT_DIR/$NAME.png"
echo "data:   $OUT_DIR/$NAME.json"
