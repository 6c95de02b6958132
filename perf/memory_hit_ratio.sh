#!/usr/bin/env bash
# Hit ratio and eviction under load: Tessera vs redis-server in the same run.
#
# For each server and policy (allkeys-lru, allkeys-lfu): start it empty,
# preload every key with the bundled loadgen, set maxmemory to the memory
# before the preload plus 50 % of what the preload added (the working set),
# wait for the evictions, reset the stats, then run a zipfian GET/SET load
# of a fixed number of requests (the same seeded sequence for both servers:
# a run of fixed duration would give the faster server more SETs, which
# refill evicted hot keys, and so a better ratio) and report keyspace_hits /
# (hits + misses), the throughput, and the peak used_memory sampled every
# 50 ms against maxmemory.
#
# The LRU clock counts seconds, so LRU's hit ratio also depends on how long
# the run lasts: RATE=OPS paces both servers (open loop) to the same wall time.
#
# Usage: [RATE=OPS] [SHARDS=N] perf/memory_hit_ratio.sh [KEYS] [REQUESTS] [THETA]
# Needs release builds: cargo build --release -p tessera -p tessera-loadgen
set -euo pipefail
KEYS=${1:-200000}
REQS=${2:-2000000}
THETA=${3:-0.99}
DATA=${DATA:-64}
T=${CARGO_TARGET_DIR:-target}/release
PORT=${PORT:-17910}

info() { redis-cli -p "$PORT" info "$1" | tr -d '\r' | grep "^$2:" | cut -d: -f2; }

run_one() { # name policy
  local name=$1 policy=$2
  if [ "$name" = tessera ]; then
    "$T/tessera" --port "$PORT" --threads "${SHARDS:-2}" --maxmemory-policy "$policy" --logfile /tmp/hit-tessera.log &
  else
    redis-server --port "$PORT" --save "" --appendonly no --maxmemory-policy "$policy" --logfile /tmp/hit-redis.log &
  fi
  local pid=$!
  for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local used0 used1 max
  used0=$(info memory used_memory)
  "$T/tessera-loadgen" --port "$PORT" --keys "$KEYS" -d "$DATA" --preload -n 1 -c 10 -P 16 --no-progress >/dev/null
  used1=$(info memory used_memory)
  max=$((used0 + (used1 - used0) / 2))
  redis-cli -p "$PORT" config set maxmemory "$max" >/dev/null
  for _ in $(seq 200); do [ "$(info memory used_memory)" -le "$max" ] && break; sleep 0.05; done
  redis-cli -p "$PORT" config resetstat >/dev/null
  local peak=0
  "$T/tessera-loadgen" --port "$PORT" --keys "$KEYS" -d "$DATA" --distribution "zipf:$THETA" --ratio 1:10 \
    -n "$REQS" -c 10 -P 8 --seed 7 ${RATE:+--rate "$RATE"} --json --no-progress >/tmp/hit-load.$name.json &
  local load=$!
  # Sampling starts once the load's connections are up: the instant they
  # connect, both servers hold their buffers before the first command evicts
  # for them (Redis: ~140 KiB over for 10 new idle connections), and whether
  # a sample lands in that instant is luck of timing, not eviction.
  sleep 0.3
  ( while true; do u=$(info memory used_memory 2>/dev/null || echo 0); echo "$u"; sleep 0.05; done ) >/tmp/hit-samples.$name &
  local sampler=$!
  wait "$load"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  local json
  json=$(cat /tmp/hit-load.$name.json)
  peak=$(sort -n /tmp/hit-samples.$name | tail -1)
  local hits misses evicted ops
  hits=$(info stats keyspace_hits)
  misses=$(info stats keyspace_misses)
  evicted=$(info stats evicted_keys)
  local keys
  keys=$(redis-cli -p "$PORT" dbsize)
  ops=$(echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["throughput_ops_per_sec"]))' 2>/dev/null || echo "?")
  python3 - "$name" "$policy" "$hits" "$misses" "$evicted" "$ops" "$max" "$peak" "$used1" "$used0" "$keys" <<'EOF'
import sys
n, p, h, m, e, ops, mx, peak, u1, u0, keys = sys.argv[1:]
h, m, mx, peak, u1, u0 = int(h), int(m), int(mx), int(peak), int(u1), int(u0)
print(f"{n:8} {p:12} hit_ratio={100*h/max(h+m,1):6.2f}%  ops/s={ops:>8}  evicted={e:>8} keys={keys:>7}  "
      f"working_set={(u1-u0)/2**20:7.1f}MiB maxmemory={mx/2**20:7.1f}MiB peak={peak/2**20:7.1f}MiB over_by={(peak-mx)/2**10:8.1f}KiB")
EOF
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for policy in ${POLICIES:-allkeys-lru allkeys-lfu}; do
  for name in ${NAMES:-tessera redis}; do
    run_one "$name" "$policy"
  done
done
