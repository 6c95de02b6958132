#!/usr/bin/env bash
# CPU flame graph of Tessera under load, with `perf record -e cpu-clock`.
#
# cpu-clock is a software event (a timer interrupt samples whatever runs), so
# it works on VMs without hardware performance counters. The script starts
# Tessera pinned to --server-cpus on a free port, drives it with
# tessera-loadgen or redis-benchmark pinned to --client-cpus, records the
# Tessera process for --seconds with call graphs, then writes:
#
#   OUT/perf.data        the raw recording (perf report -i OUT/perf.data)
#   OUT/perf.script      `perf script` text
#   OUT/stacks.folded    folded stacks ("frame;frame;... count"), always
#   OUT/flame.svg        flame graph: inferno-flamegraph if installed, else
#                        flamegraph.pl, else a simple built-in SVG (stackcollapse.py)
#   OUT/top.txt          hottest functions, self and total
#
# Requirements: perf (Debian: apt-get install linux-perf; Ubuntu:
# apt-get install linux-tools-$(uname -r) linux-tools-generic). Not as root:
# sysctl kernel.perf_event_paranoid=1 (or lower). Optional, for the
# interactive SVG: cargo install inferno (inferno-collapse-perf, inferno-flamegraph),
# or git clone https://github.com/brendangregg/FlameGraph and put it on PATH.
#
# Stacks: release builds have no frame pointers, so the default call graph
# is DWARF unwinding (--call-graph dwarf; bigger perf.data, slower perf script).
# For cheaper, deeper fp stacks build with
#   RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --bin tessera
# and pass --call-graph fp.
#
# Usage: perf/flamegraph.sh [--seconds 10] [--load loadgen|redis-benchmark]
#            [--pipeline 16] [--clients 50] [--ratio 1:1] [--keys 100000] [--data-size 3]
#            [--shards 1] [--server-cpus 0] [--client-cpus 1] [--freq 999]
#            [--call-graph dwarf|fp|none] [--out-dir DIR] [--tessera PATH]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

SECONDS_REC=10
LOAD=""
PIPELINE=16
CLIENTS=50
RATIO=1:1
KEYS=100000
DATA_SIZE=3
SHARDS=1
SERVER_CPUS=0
CLIENT_CPUS=1
FREQ=999
CALLGRAPH=dwarf
OUT_DIR=""
TESSERA="$ROOT/target/release/tessera"
LOADGEN="$ROOT/target/release/tessera-loadgen"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECONDS_REC=$2; shift ;;
        --load) LOAD=$2; shift ;;
        --pipeline) PIPELINE=$2; shift ;;
        --clients) CLIENTS=$2; shift ;;
        --ratio) RATIO=$2; shift ;;
        --keys) KEYS=$2; shift ;;
        --data-size) DATA_SIZE=$2; shift ;;
        --shards) SHARDS=$2; shift ;;
        --server-cpus) SERVER_CPUS=$2; shift ;;
        --client-cpus) CLIENT_CPUS=$2; shift ;;
        --freq) FREQ=$2; shift ;;
        --call-graph) CALLGRAPH=$2; shift ;;
        --out-dir) OUT_DIR=$2; shift ;;
        --tessera) TESSERA=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "flamegraph.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "flamegraph: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

if ! command -v perf >/dev/null 2>&1; then
    cat >&2 <<'EOF'
flamegraph: `perf` is not installed. Install it with
    Debian:  sudo apt-get install linux-perf
    Ubuntu:  sudo apt-get install linux-tools-common linux-tools-generic linux-tools-$(uname -r)
    Fedora:  sudo dnf install perf
EOF
    exit 1
fi
if ! perf record -q -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
    log "perf cannot record here (kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?'))."
    log "Run as root, or: sudo sysctl kernel.perf_event_paranoid=1"
    exit 1
fi

if [[ ! -x "$TESSERA" || ( "$LOAD" != redis-benchmark && ! -x "$LOADGEN" ) ]]; then
    log "building release binaries (cargo build --release --workspace)"
    (cd "$ROOT" && cargo build --release --workspace) || fail "cargo build failed"
fi
if [[ -z "$LOAD" ]]; then
    if [[ -x "$LOADGEN" ]]; then LOAD=loadgen; else LOAD=redis-benchmark; fi
fi
case "$CALLGRAPH" in
    dwarf) CG=(--call-graph dwarf,16384) ;;
    fp) CG=(--call-graph fp) ;;
    none) CG=() ;;
    *) fail "--call-graph must be dwarf, fp or none" ;;
esac

SHORT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)
[[ -n "$OUT_DIR" ]] || OUT_DIR="${TMPDIR:-/tmp}/tessera-flame-$(date +%Y%m%d-%H%M%S)-$SHORT"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-flame-work.XXXXXX")"

# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pids "${PIDS[@]:-}"
    if [[ $rc == 0 ]]; then rm -rf "$WORK"; else log "server log kept in $WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
ping_ok() {
    timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$PORT"' || exit 1
        printf "PING\r\n" >&3; IFS= read -r line <&3; [[ $line == +PONG* ]]' 2>/dev/null
}

T_CMD=(taskset -c "$SERVER_CPUS" "$TESSERA" --port "$PORT" --threads "$SHARDS" --bind 127.0.0.1
       --save "" --appendonly no --dir "$WORK")
(cd "$WORK" && exec "${T_CMD[@]}") >"$WORK/tessera.log" 2>&1 &
TPID=$!
PIDS+=("$TPID")
for i in $(seq 200); do
    kill -0 "$TPID" 2>/dev/null || { tail -20 "$WORK/tessera.log" >&2; fail "tessera exited during start-up"; }
    ping_ok && break
    [[ $i == 200 ]] && fail "tessera did not answer PING within 20 s"
    sleep 0.1
done
log "Tessera pid $TPID port $PORT (CPU(s) $SERVER_CPUS, $SHARDS shard(s)); load: $LOAD on CPU(s) $CLIENT_CPUS"

RUN_FOR=$((SECONDS_REC + 4))
if [[ $LOAD == loadgen ]]; then
    L_CMD=(taskset -c "$CLIENT_CPUS" "$LOADGEN" --host 127.0.0.1 --port "$PORT" --connections "$CLIENTS"
           --pipeline "$PIPELINE" --ratio "$RATIO" --keys "$KEYS" --data-size "$DATA_SIZE"
           --duration "${RUN_FOR}s" --no-progress)
else
    L_CMD=(taskset -c "$CLIENT_CPUS" redis-benchmark -h 127.0.0.1 -p "$PORT" -c "$CLIENTS" -P "$PIPELINE"
           -r "$KEYS" -d "$DATA_SIZE" -t set,get -n 2000000000 -q)
fi
"${L_CMD[@]}" >"$WORK/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
sleep 1.5   # connect and warm up before recording
kill -0 "$LPID" 2>/dev/null || { cat "$WORK/load.out" >&2; fail "load generator exited early"; }

log "recording $SECONDS_REC s: perf record -e cpu-clock -F $FREQ ${CG[*]} -p $TPID"
perf record -q -e cpu-clock -F "$FREQ" "${CG[@]}" -p "$TPID" -o "$OUT_DIR/perf.data" -- sleep "$SECONDS_REC" \
    >"$WORK/perf-record.log" 2>&1 || { cat "$WORK/perf-record.log" >&2; fail "perf record failed"; }
kill -INT "$LPID" 2>/dev/null || true
kill -0 "$TPID" 2>/dev/null || fail "tessera died during the recording (log: $WORK/tessera.log)"

log "perf script (DWARF unwinding can take a minute)"
perf script -i "$OUT_DIR/perf.data" --no-inline >"$OUT_DIR/perf.script" 2>"$WORK/perf-script.err" \
    || { tail "$WORK/perf-script.err" >&2; fail "perf script failed"; }

if command -v inferno-collapse-perf >/dev/null 2>&1; then
    COLLAPSE="inferno-collapse-perf"
    inferno-collapse-perf <"$OUT_DIR/perf.script" >"$OUT_DIR/stacks.folded"
elif command -v stackcollapse-perf.pl >/dev/null 2>&1; then
    COLLAPSE="stackcollapse-perf.pl"
    stackcollapse-perf.pl <"$OUT_DIR/perf.script" >"$OUT_DIR/stacks.folded"
else
    COLLAPSE="perf/stackcollapse.py collapse"
    python3 "$HERE/stackcollapse.py" collapse <"$OUT_DIR/perf.script" >"$OUT_DIR/stacks.folded"
fi
[[ -s "$OUT_DIR/stacks.folded" ]] || fail "no samples were collected"

TITLE="Tessera $SHORT, $LOAD P$PIPELINE c$CLIENTS, ${SECONDS_REC}s cpu-clock"
if command -v inferno-flamegraph >/dev/null 2>&1; then
    SVG="inferno-flamegraph"
    inferno-flamegraph --title "$TITLE" <"$OUT_DIR/stacks.folded" >"$OUT_DIR/flame.svg"
elif command -v flamegraph.pl >/dev/null 2>&1; then
    SVG="flamegraph.pl"
    flamegraph.pl --title "$TITLE" <"$OUT_DIR/stacks.folded" >"$OUT_DIR/flame.svg"
else
    SVG="perf/stackcollapse.py svg (basic; cargo install inferno for the interactive one)"
    python3 "$HERE/stackcollapse.py" svg --title "$TITLE" <"$OUT_DIR/stacks.folded" >"$OUT_DIR/flame.svg"
fi
python3 "$HERE/stackcollapse.py" top -n 25 <"$OUT_DIR/stacks.folded" >"$OUT_DIR/top.txt"

{
    echo "tessera:  ${T_CMD[*]}"
    echo "load:     ${L_CMD[*]}"
    echo "record:   perf record -e cpu-clock -F $FREQ ${CG[*]} -p PID -- sleep $SECONDS_REC"
    echo "collapse: $COLLAPSE"
    echo "svg:      $SVG"
} >"$OUT_DIR/commands.txt"

head -32 "$OUT_DIR/top.txt"
echo
echo "folded stacks: $OUT_DIR/stacks.folded"
echo "flame graph:   $OUT_DIR/flame.svg   ($SVG)"
echo "raw:           $OUT_DIR/perf.data   (perf report -i $OUT_DIR/perf.data)"
