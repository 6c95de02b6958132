#!/usr/bin/env python3
"""BGSAVE under a SET load: Tessera (forkless) vs redis-server (fork), same run.
Usage: perf/bgsave_vs_redis.py target/release/tessera 5000000 [--no-bgsave]
(--no-bgsave: only SAVE and start-up load, e.g. issue 10's 10M-key figures).
The load runs against one server at a time; figures in ARCHITECTURE.md (Persistence)."""
import os, subprocess, sys, time, socket, shutil, re

TESSERA, N = sys.argv[1], int(sys.argv[2])
NO_BGSAVE = "--no-bgsave" in sys.argv[3:]
BASE = "/tmp/bgm"

def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=600).stdout

def info(port, sec):
    out = cli(port, "INFO", sec)
    return dict(l.split(":", 1) for l in out.replace("\r", "").split("\n") if ":" in l)

def wait_ping(port, t=600):
    d = time.time() + t
    while time.time() < d:
        try:
            if cli(port, "PING").strip() == "PONG":
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"port {port} not up")

def rss_kb(pid):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    except FileNotFoundError:
        return 0
    return 0

def children(pid):
    try:
        return [int(x) for x in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except FileNotFoundError:
        return []

def start(kind, port, d):
    os.makedirs(d, exist_ok=True)
    log = open(f"{d}/log.txt", "w")
    if kind == "redis":
        args = ["redis-server", "--port", str(port), "--save", "", "--dir", d, "--enable-debug-command", "yes"]
    else:
        args = [TESSERA, "--port", str(port), "--threads", "2", "--dir", d]
    p = subprocess.Popen(args, cwd=d, stdout=log, stderr=log)
    wait_ping(port)
    return p

def load_secs(d):
    m = re.findall(r"DB loaded from disk: ([0-9.]+) seconds", open(f"{d}/log.txt").read())
    return float(m[-1]) if m else None

def bgsave_under_load(kind, port, pid):
    bench = subprocess.Popen(["redis-benchmark", "-p", str(port), "-t", "set", "-n", "100000000", "-r", str(N), "-c", "32", "-P", "8", "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    base_ops = [int(info(port, "stats")["instantaneous_ops_per_sec"]) for _ in range(4) if not time.sleep(0.4)]
    base_rss = rss_kb(pid)
    base_used = int(info(port, "memory")["used_memory"])
    t0 = time.time()
    cli(port, "BGSAVE")
    ops, peak_rss, peak_child, peak_used = [], base_rss, 0, base_used
    while True:
        i = info(port, "persistence")
        if i.get("rdb_bgsave_in_progress") == "0" and time.time() - t0 > 0.2:
            break
        ops.append(int(info(port, "stats")["instantaneous_ops_per_sec"]))
        peak_rss = max(peak_rss, rss_kb(pid))
        peak_child = max([peak_child] + [rss_kb(c) for c in children(pid)])
        peak_used = max(peak_used, int(info(port, "memory")["used_memory"]))
        time.sleep(0.25)
    dur = time.time() - t0
    i = info(port, "persistence")
    bench.terminate(); bench.wait()
    return dict(kind=kind, base_ops=sum(base_ops)//max(1,len(base_ops)), during_ops=sum(ops)//max(1,len(ops)),
                dur=round(dur, 2), base_rss_mb=base_rss//1024, peak_rss_mb=peak_rss//1024, child_rss_mb=peak_child//1024,
                base_used_mb=base_used>>20, peak_used_mb=peak_used>>20, cow_bytes=int(i.get("rdb_last_cow_size", 0)),
                status=i.get("rdb_last_bgsave_status"))

shutil.rmtree(BASE + "/r", ignore_errors=True); shutil.rmtree(BASE + "/t", ignore_errors=True)
# 1. redis: populate, SAVE (timed)
r = start("redis", 7801, BASE + "/r")
# redis-benchmark's key names (key:%012d), so its SETs overwrite keys of the snapshot
cli(7801, "EVAL", "local v = string.rep('x', 100) for i = 0, tonumber(ARGV[1]) - 1 do redis.call('SET', string.format('key:%012d', i), v) end return 1", "0", str(N))
t = time.time(); cli(7801, "SAVE"); redis_save = time.time() - t
size = os.path.getsize(BASE + "/r/dump.rdb")
r.terminate(); r.wait()
os.makedirs(BASE + "/t", exist_ok=True)
shutil.copy(BASE + "/r/dump.rdb", BASE + "/t/dump.rdb")
# 2. load times
r = start("redis", 7801, BASE + "/r")
tp = start("tessera", 7802, BASE + "/t")
print(f"keys {N}, file {size>>20} MB")
print(f"load: redis {load_secs(BASE + '/r')} s, tessera {load_secs(BASE + '/t')} s")
t = time.time(); cli(7802, "SAVE"); tess_save = time.time() - t
print(f"SAVE: redis {redis_save:.2f} s, tessera {tess_save:.2f} s (tessera file {os.path.getsize(BASE + '/t/dump.rdb')>>20} MB)")
# 3. BGSAVE under load, one server at a time (the load generator needs the CPU too)
for kind, port, p in [] if NO_BGSAVE else [("redis", 7801, r), ("tessera", 7802, tp)]:
    print(bgsave_under_load(kind, port, p.pid))
for p in (r, tp):
    p.terminate(); p.wait()
