#!/usr/bin/env python3
"""Bitmaps and HyperLogLog, Tessera vs redis-server in the same run.

Phases (each: wall time and server CPU, utime+stime from /proc):
* a 64 MiB bitmap: BITCOUNT of all of it, BITCOUNT of 1 MiB byte ranges and
  of bit ranges, BITPOS, BITOP AND / OR / XOR / NOT of two 64 MiB strings
  (the sources on one shard, the destination on the other with 2 shards);
* HyperLogLog: PFADD of 1M elements 100 per command into one key, PFCOUNT of
  that key (cached and after a change), PFCOUNT of three keys (a union, the
  keys on different shards), PFMERGE;
* a PFADD / PFCOUNT load from redis-benchmark (`-c 50 -P 1` and `-P 16`,
  random elements), server CPU per request.

Runs alternate Redis, Tessera, Redis, Tessera... (--runs); the table shows
medians. Servers are pinned to --server-cpus, clients to --bench-cpus.

Usage: perf/types_bench.py [--tessera target/release/tessera] [--shards 2]
       [--runs 3] [--json out.json]
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_per_request import cpu_secs, free_port, wait_ping  # noqa: E402
from memory_per_element import Conn, enc  # noqa: E402

MIB = 1 << 20


def phases(c, a):
    out = {}
    rnd = random.Random(11)

    def timed(name, reqs, window=1):
        t0, c0 = time.time(), cpu_secs(c.pid)
        r = c.cmds(reqs, window)
        out[name] = {"wall_s": time.time() - t0, "cpu_s": cpu_secs(c.pid) - c0, "requests": len(reqs)}
        return r

    size = a.bitmap_mib * MIB
    # Two random bitmaps built from 1 MiB SETRANGE writes.
    for key in (a.bm_a, a.bm_b):
        c.cmds([enc("SETRANGE", key, off, rnd.randbytes(MIB)) for off in range(0, size, MIB)], 4)
    r = timed(f"BITCOUNT of {a.bitmap_mib} MiB x20", [enc("BITCOUNT", a.bm_a) for _ in range(20)])
    assert 0 < int(r[0]) < size * 8, r[0]
    timed("BITCOUNT of 1 MiB byte ranges x200", [enc("BITCOUNT", a.bm_a, s, s + MIB - 1) for s in (rnd.randrange(size - MIB) for _ in range(200))])
    timed("BITCOUNT of 8 Mbit BIT ranges x200", [enc("BITCOUNT", a.bm_a, s, s + 8 * MIB - 1, "BIT") for s in (rnd.randrange(8 * (size - MIB)) for _ in range(200))])
    c.cmds([enc("SETRANGE", a.bm_c, 0, b"\x00" * (size - 1) + b"\x01")])
    timed(f"BITPOS 1 in {a.bitmap_mib} MiB of zeros x20", [enc("BITPOS", a.bm_c, 1) for _ in range(20)])
    for op in ("AND", "OR", "XOR"):
        r = timed(f"BITOP {op} of two {a.bitmap_mib} MiB strings x5", [enc("BITOP", op, a.bm_dst, a.bm_a, a.bm_b) for _ in range(5)])
        assert int(r[0]) == size, r[0]
    timed(f"BITOP NOT of {a.bitmap_mib} MiB x5", [enc("BITOP", "NOT", a.bm_dst, a.bm_a) for _ in range(5)])
    c.cmds([enc("DEL", a.bm_a, a.bm_b, a.bm_c), enc("DEL", a.bm_dst)])

    n = a.hll_elements
    timed(f"PFADD {n} elements, 100 per command", [enc("PFADD", a.hll_a, *["e%d" % (s + i) for i in range(100)]) for s in range(0, n, 100)], window=64)
    for key, base in ((a.hll_b, n // 2), (a.hll_c, n)):
        c.cmds([enc("PFADD", key, *["e%d" % (base + s + i) for i in range(100)]) for s in range(0, n // 4, 100)], 64)
    r = timed("PFCOUNT of one key (cached) x20000", [enc("PFCOUNT", a.hll_a) for _ in range(20000)], window=64)
    assert abs(int(r[0]) - n) < n * 0.05, r[0]
    reqs = []
    for i in range(2000):
        reqs += [enc("PFADD", a.hll_a, "x%d" % i), enc("PFCOUNT", a.hll_a)]
    timed("PFADD of a new element + PFCOUNT x2000", reqs, window=1)
    timed("PFCOUNT of three keys (union) x2000", [enc("PFCOUNT", a.hll_a, a.hll_b, a.hll_c) for _ in range(2000)], window=16)
    timed("PFMERGE of three keys x2000", [enc("PFMERGE", a.hll_dst, a.hll_a, a.hll_b, a.hll_c) for _ in range(2000)], window=16)
    for p in (1, 16):
        for cmd in (["PFADD", a.hll_load, "__rand_int__"], ["PFCOUNT", a.hll_load]):
            name = f"redis-benchmark {cmd[0]} -c 50 -P {p}"
            nreq = a.bench_requests * (4 if p == 16 else 1)
            t0, c0 = time.time(), cpu_secs(c.pid)
            subprocess.run(["taskset", "-c", a.bench_cpus, "redis-benchmark", "-p", str(c.port), "-c", "50", "-P", str(p), "-n", str(nreq), "-r", "1000000", "-q", *cmd],
                           check=True, stdout=subprocess.DEVNULL)
            wall, cpu = time.time() - t0, cpu_secs(c.pid) - c0
            out[name] = {"wall_s": wall, "cpu_s": cpu, "requests": nreq, "rps": nreq / wall, "cpu_us_per_req": cpu * 1e6 / nreq}
    return out


def run(cmd, a):
    port = free_port()
    # An empty working directory: no dump.rdb of another run is loaded.
    wd = tempfile.mkdtemp(prefix="types-bench-")
    p = subprocess.Popen(["taskset", "-c", a.server_cpus] + cmd + ["--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=wd)
    try:
        wait_ping(port, p)
        c = Conn(port)
        c.pid, c.port = p.pid, port
        return phases(c, a)
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(wd, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="target/release/tessera")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bitmap-mib", type=int, default=64)
    ap.add_argument("--hll-elements", type=int, default=1_000_000)
    ap.add_argument("--bench-requests", type=int, default=200_000)
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--bench-cpus", default="1")
    ap.add_argument("--json")
    a = ap.parse_args()
    # {a} (slot 15495) and {b} (slot 3300) sit on different shards of a 2-shard Tessera.
    a.bm_a, a.bm_b, a.bm_c, a.bm_dst = "bm1{a}", "bm2{a}", "bm3{a}", "bmdst{b}"
    a.hll_a, a.hll_b, a.hll_c, a.hll_dst, a.hll_load = "h1{a}", "h2{b}", "h3{a}", "hdst{b}", "hload"
    os.sched_setaffinity(0, {int(x) for x in a.bench_cpus.split(",")})
    runs = {"redis": [], "tessera": []}
    for _ in range(a.runs):
        runs["redis"].append(run(["redis-server", "--save", "", "--appendonly", "no"], a))
        runs["tessera"].append(run([os.path.abspath(a.tessera), "--threads", str(a.shards)], a))
    med = lambda kind, k, f: statistics.median(r[k][f] for r in runs[kind])  # noqa: E731
    print(f"Tessera shards={a.shards}, server cpus {a.server_cpus}, client cpus {a.bench_cpus}, medians of {a.runs} alternating runs")
    print("| phase | redis wall s | tessera wall s | redis CPU s | tessera CPU s | CPU ratio T/R |")
    print("|---|---|---|---|---|---|")
    for k in runs["redis"][0]:
        rc, tc = med("redis", k, "cpu_s"), med("tessera", k, "cpu_s")
        ratio = tc / rc if rc > 0 else float("nan")
        extra = ""
        if "rps" in runs["redis"][0][k]:
            extra = f" ({med('redis', k, 'rps'):.0f} vs {med('tessera', k, 'rps'):.0f} req/s)"
        print(f"| {k}{extra} | {med('redis', k, 'wall_s'):.3f} | {med('tessera', k, 'wall_s'):.3f} | {rc:.2f} | {tc:.2f} | {ratio:.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
