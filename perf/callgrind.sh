#!/usr/bin/env bash
# User-space instructions per request, Tessera vs redis-server, under
# `valgrind --tool=callgrind`: a number that stays stable on noisy machines
# (it does not depend on what else runs on the box, unlike ops/s or CPU time).
#
# For each server: start it under callgrind (Tessera with 1 shard), wait for
# PING, zero the counters (callgrind_control -z), run a fixed request mix
# (default: redis-benchmark -t set,get -n 20000 -P 16 -c 10 -r 10000, i.e.
# 20,000 SET + 20,000 GET), dump the counters (callgrind_control -d), and
# divide the dump's total Ir by the number of requests. Prints both numbers
# and the ratio Tessera/Redis, and keeps the callgrind files plus a
# callgrind_annotate top-functions listing for each server.
#
# If Tessera cannot run under valgrind (glommio drives everything through
# io_uring, which valgrind only partly understands), the script says so and
# falls back to `perf stat -e instructions:u` on the normally running servers,
# if the VM exposes that hardware counter (`perf stat -e instructions:u true`
# tells); otherwise it reports that neither method works here (exit status 3).
#
# Usage: perf/callgrind.sh [--requests 20000] [--pipeline 16] [--clients 10] [--keys 10000]
#                          [--load redis-benchmark|loadgen] [--method auto|callgrind|perf]
#                          [--out-dir DIR] [--start-timeout 60]
# Valgrind slows the server ~50x: keep --requests small (the default run takes ~20 s).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

REQUESTS=20000
PIPELINE=16
CLIENTS=10
KEYS=10000
LOAD=redis-benchmark
METHOD=auto
OUT_DIR=""
START_TIMEOUT=60
CLIENT_CPUS=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; cat <<'EOF'
Options:
  --requests N       requests per command (SET and GET each; default 20000)
  --pipeline N       pipeline depth (default 16)
  --clients N        connections (default 10)
  --keys N           key space (-r / --keys, default 10000)
  --load TOOL        redis-benchmark (default) or loadgen (tessera-loadgen --ratio 1:1 --requests 2N)
  --method M         auto (callgrind, then perf stat), callgrind, or perf
  --client-cpus L    pin the load generator (taskset -c L)
  --out-dir DIR      keep callgrind files and the summary here (default: a new temp dir)
  --start-timeout S  seconds to wait for a server under valgrind to answer PING (default 60)
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --requests) REQUESTS=$2; shift ;;
        --pipeline) PIPELINE=$2; shift ;;
        --clients) CLIENTS=$2; shift ;;
        --keys) KEYS=$2; shift ;;
        --load) LOAD=$2; shift ;;
        --method) METHOD=$2; shift ;;
        --client-cpus) CLIENT_CPUS=$2; shift ;;
        --out-dir) OUT_DIR=$2; shift ;;
        --start-timeout) START_TIMEOUT=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "callgrind.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$LOAD" in redis-benchmark|loadgen) ;; *) echo "callgrind.sh: --load must be redis-benchmark or loadgen" >&2; exit 2 ;; esac
case "$METHOD" in auto|callgrind|perf) ;; *) echo "callgrind.sh: --method must be auto, callgrind or perf" >&2; exit 2 ;; esac

log() { echo "callgrind: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

TESSERA="$ROOT/target/release/tessera"
LOADGEN="$ROOT/target/release/tessera-loadgen"
if [[ ! -x "$TESSERA" || ( $LOAD == loadgen && ! -x "$LOADGEN" ) ]]; then
    log "building release binaries (cargo build --release --workspace)"
    (cd "$ROOT" && cargo build --release --workspace) || fail "cargo build failed"
fi
command -v redis-server >/dev/null || fail "redis-server not found (make deps)"
[[ $LOAD == loadgen ]] || command -v redis-benchmark >/dev/null || fail "redis-benchmark not found (make deps)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-callgrind.XXXXXX")"
[[ -n "$OUT_DIR" ]] || OUT_DIR="$WORK/out"
mkdir -p "$OUT_DIR"
# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STOP_TRIES=100 # valgrind needs longer to exit
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pids "${PIDS[@]:-}"
    log "files: $OUT_DIR (server logs: $WORK)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ping_ok() {
    timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
        printf "PING\r\n" >&3; IFS= read -r line <&3; [[ $line == +PONG* ]]' 2>/dev/null
}
send_cmd() {  # send_cmd PORT WORDS... (inline command, reply ignored)
    local port=$1; shift
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1; printf "%s\r\n" "$*" >&3; IFS= read -r -t 4 _ <&3 || true' _ "$@" 2>/dev/null || true
}

# start NAME PORT CMD... -> STARTED_PID, or returns 1 if no PING within START_TIMEOUT
start() {
    local name=$1 port=$2; shift 2
    mkdir -p "$WORK/$name"
    (cd "$WORK/$name" && exec "$@") >"$WORK/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$STARTED_PID" 2>/dev/null || { log "$name exited during start-up:"; tail -5 "$WORK/$name.log" >&2; return 1; }
        ping_ok "$port" && return 0
        sleep 0.5
    done
    log "$name did not answer PING within ${START_TIMEOUT}s"
    return 1
}

# stop PID PORT: SHUTDOWN NOSAVE, then TERM, then KILL; waits so valgrind writes its files
stop() {
    local pid=$1 port=$2
    send_cmd "$port" SHUTDOWN NOSAVE
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

pin() { if [[ -n "$CLIENT_CPUS" ]]; then echo taskset -c "$CLIENT_CPUS"; fi; }

# run_load PORT -> prints the number of requests sent
TOTAL_REQUESTS=$((2 * REQUESTS))
LOAD_CMD_TEXT=""
run_load() {
    local port=$1 cmd
    if [[ $LOAD == redis-benchmark ]]; then
        cmd=($(pin) redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$REQUESTS" -r "$KEYS"
             -P "$PIPELINE" -t set,get -q)
    else
        cmd=($(pin) "$LOADGEN" --host 127.0.0.1 --port "$port" --connections "$CLIENTS" --pipeline "$PIPELINE"
             --keys "$KEYS" --ratio 1:1 --requests "$TOTAL_REQUESTS" --seed 1 --no-progress --max-error-rate 0)
    fi
    LOAD_CMD_TEXT="${cmd[*]}"
    timeout 900 "${cmd[@]}" >"$WORK/load.$port.out" 2>&1 || { cat "$WORK/load.$port.out" >&2; return 1; }
}

# ---------------------------------------------------------------------------
# Method 1: callgrind
# ---------------------------------------------------------------------------
declare -A IR
callgrind_one() {  # callgrind_one NAME CMD... (the port is substituted for @PORT@)
    local name=$1; shift
    local port; port=$(free_port)
    local args=() a
    for a in "$@"; do args+=("${a//@PORT@/$port}"); done
    local out="$OUT_DIR/callgrind.$name.out"
    rm -f "$out" "$out".*
    log "$name: starting under callgrind (valgrind is ~50x slower; start-up takes a few seconds)"
    start "$name" "$port" valgrind --tool=callgrind --callgrind-out-file="$out" "${args[@]}" || return 1
    local pid=$STARTED_PID zeroed=1
    callgrind_control -z "$pid" >/dev/null 2>&1 || zeroed=0
    [[ $zeroed == 1 ]] || log "$name: callgrind_control -z failed; the count includes start-up and shutdown"
    log "$name: running $TOTAL_REQUESTS requests"
    run_load "$port" || { log "$name: the load generator failed"; stop "$pid" "$port"; return 1; }
    local dumped=1
    if [[ $zeroed == 1 ]]; then callgrind_control -d "$pid" >/dev/null 2>&1 || dumped=0; fi
    stop "$pid" "$port"
    local file="$out"
    if [[ $zeroed == 1 && $dumped == 1 ]]; then
        file=$(ls -1 "$out".* 2>/dev/null | head -1 || true)
    fi
    [[ -n "$file" && -s "$file" ]] || { log "$name: no callgrind output"; return 1; }
    local ir; ir=$(awk '/^(totals|summary):/ {print $2; exit}' "$file")
    [[ -n "$ir" ]] || { log "$name: no totals in $file"; return 1; }
    IR[$name]=$ir
    # --threshold=100: in a callgrind_control dump the frames that were live at the zeroing
    # (thread start, the executor loop) show up first with ~100%; the real hot spots follow.
    callgrind_annotate --auto=no --threshold=100 "$file" 2>/dev/null | head -70 >"$OUT_DIR/top-functions.$name.txt" || true
    log "$name: $ir Ir"
}

method_callgrind() {
    command -v valgrind >/dev/null || { log "valgrind not installed (apt-get install valgrind)"; return 1; }
    if ! callgrind_one tessera "$TESSERA" --port @PORT@ --threads 1 --bind 127.0.0.1 --save "" --appendonly no; then
        log "Tessera cannot be measured under valgrind here (glommio's io_uring use is only partly"
        log "supported by valgrind: the server may hang or never answer). See $WORK/tessera.log"
        return 1
    fi
    callgrind_one redis redis-server --port @PORT@ --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        || { log "redis-server under callgrind failed"; return 1; }
    report callgrind "Ir (user-space instructions, valgrind callgrind)"
}

# ---------------------------------------------------------------------------
# Method 2: perf stat -e instructions:u
# ---------------------------------------------------------------------------
perf_one() {
    local name=$1; shift
    local port; port=$(free_port)
    local args=() a
    for a in "$@"; do args+=("${a//@PORT@/$port}"); done
    start "$name" "$port" "${args[@]}" || return 1
    local pid=$STARTED_PID
    perf stat -e instructions:u -x, -o "$OUT_DIR/perf-stat.$name.csv" -p "$pid" &
    local ppid=$!
    PIDS+=("$ppid")
    sleep 0.5
    run_load "$port" || { kill -INT "$ppid" 2>/dev/null; stop "$pid" "$port"; return 1; }
    kill -INT "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    stop "$pid" "$port"
    local ir; ir=$(awk -F, '/instructions/ {print $1; exit}' "$OUT_DIR/perf-stat.$name.csv")
    [[ "$ir" =~ ^[0-9]+$ ]] || { log "$name: perf stat gave no instruction count"; return 1; }
    IR[$name]=$ir
}

method_perf() {
    command -v perf >/dev/null || { log "perf not installed (Debian: apt-get install linux-perf)"; return 1; }
    if ! perf stat -e instructions:u -x, true 2>&1 | grep -q '^[0-9]'; then
        log "perf stat -e instructions:u is not supported here (no hardware counters on this VM)"
        return 1
    fi
    perf_one tessera taskset -c 0 "$TESSERA" --port @PORT@ --threads 1 --bind 127.0.0.1 --save "" --appendonly no || return 1
    perf_one redis taskset -c 0 redis-server --port @PORT@ --bind 127.0.0.1 --save "" --appendonly no --daemonize no || return 1
    report perf "instructions:u (perf stat, hardware counter; includes idle-loop work during the run)"
}

report() {
    local method=$1 what=$2
    python3 - "$method" "$what" "${IR[tessera]}" "${IR[redis]}" "$TOTAL_REQUESTS" "$LOAD_CMD_TEXT" "$OUT_DIR" <<'EOF'
import json, sys, os
method, what, t, r, n, load, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
tp, rp = t / n, r / n
lines = [
    f"method: {method} — {what}",
    f"load:   {load}  (port differs per server; {n} requests)",
    "",
    f"{'server':<10} {'instructions':>16} {'per request':>12}",
    f"{'Tessera':<10} {t:>16,} {tp:>12,.0f}",
    f"{'Redis':<10} {r:>16,} {rp:>12,.0f}",
    "",
    f"ratio Tessera/Redis: {tp / rp:.3f}  (< 1: Tessera executes fewer user-space instructions per request)",
]
text = "\n".join(lines)
print(text)
open(os.path.join(out, "summary.txt"), "w").write(text + "\n")
json.dump({"method": method, "requests": n, "load": load, "tessera_instructions": t, "redis_instructions": r,
           "tessera_per_request": tp, "redis_per_request": rp, "ratio_tessera_over_redis": tp / rp},
          open(os.path.join(out, "summary.json"), "w"), indent=1)
EOF
}

case "$METHOD" in
    callgrind) method_callgrind || fail "callgrind measurement failed" ;;
    perf) method_perf || fail "perf stat measurement failed" ;;
    auto)
        if ! method_callgrind; then
            log "falling back to perf stat -e instructions:u"
            if ! method_perf; then
                log "neither callgrind nor perf stat -e instructions:u works on this machine."
                log "For a CPU-time (not instruction) comparison use perf/cpu_per_request.py."
                exit 3
            fi
        fi ;;
esac
