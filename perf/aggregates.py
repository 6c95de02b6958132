#!/usr/bin/env python3
"""Big-collection operations, Tessera vs redis-server in the same run: ZADD of
1M members into one sorted set, ZRANGE / ZRANK on it, and SINTER of two
100K-member sets whose keys live on different Tessera shards.

Each phase reports wall time and server CPU (utime+stime from /proc) of both
servers, the servers pinned to --server-cpus, this client on --bench-cpus.

Usage: perf/aggregates.py [--tessera target/release/tessera] [--shards 2]
       [--members 1000000] [--set-size 100000] [--json out.json]
"""
import argparse, json, os, random, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_per_request import cpu_secs, free_port, wait_ping  # noqa: E402
from memory_per_element import Conn, enc  # noqa: E402


def phases(c, a):
    out = {}
    rnd = random.Random(7)

    def timed(name, reqs, window=200):
        t0, c0 = time.time(), cpu_secs(c.pid)
        r = c.cmds(reqs, window)
        out[name] = {"wall_s": time.time() - t0, "cpu_s": cpu_secs(c.pid) - c0, "requests": len(reqs)}
        return r

    chunk = 1000
    reqs = []
    for s in range(0, a.members, chunk):
        args = ["ZADD", "zbig"]
        for i in range(s, min(a.members, s + chunk)):
            args += [rnd.random() * 1e6, "m%08d" % i]
        reqs.append(enc(*args))
    timed("ZADD 1M members (1000 per command)", reqs)
    n = 20000
    timed(f"ZRANGE at random ranks, 10 members x{n}", [enc("ZRANGE", "zbig", s, s + 9) for s in (rnd.randrange(a.members) for _ in range(n))])
    timed(f"ZRANK of random members x{n}", [enc("ZRANK", "zbig", "m%08d" % rnd.randrange(a.members)) for _ in range(n)])
    timed(f"ZRANGEBYSCORE 10-member windows x{n}", [enc("ZRANGEBYSCORE", "zbig", x, "+inf", "LIMIT", 0, 10) for x in (rnd.random() * 1e6 for _ in range(n))])
    # Two sets, half overlapping; the key names are chosen to sit on different shards.
    for key, base in ((a.set_a, 0), (a.set_b, a.set_size // 2)):
        reqs = []
        for s in range(0, a.set_size, chunk):
            reqs.append(enc("SADD", key, *["s%08d" % (base + i) for i in range(s, min(a.set_size, s + chunk))]))
        c.cmds(reqs)
    r = timed(f"SINTER of two {a.set_size}-member sets x20", [enc("SINTER", a.set_a, a.set_b) for _ in range(20)], window=1)
    assert len(r[0]) == a.set_size // 2, len(r[0])
    timed("SINTERCARD of the same x20", [enc("SINTERCARD", 2, a.set_a, a.set_b) for _ in range(20)], window=1)
    return out


class Server:
    def __init__(self, cmd, cpus):
        self.port = free_port()
        self.p = subprocess.Popen(["taskset", "-c", cpus] + cmd + ["--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
        wait_ping(self.port, self.p)


def run(cmd, a):
    s = Server(cmd, a.server_cpus)
    try:
        c = Conn(s.port)
        c.pid = s.p.pid
        return phases(c, a)
    finally:
        s.p.kill()
        s.p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="target/release/tessera")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--set-size", type=int, default=100_000)
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--bench-cpus", default="1")
    ap.add_argument("--json")
    a = ap.parse_args()
    # Hash tags {a} (slot 15495) and {b} (slot 3300): different shards of a 2-shard Tessera.
    a.set_a, a.set_b = "sa{a}", "sb{b}"
    os.sched_setaffinity(0, {int(x) for x in a.bench_cpus.split(",")})
    r = run(["redis-server", "--save", "", "--appendonly", "no"], a)
    t = run([os.path.abspath(a.tessera), "--threads", str(a.shards)], a)
    print(f"Tessera shards={a.shards}, server cpus {a.server_cpus}, client cpus {a.bench_cpus}")
    print("| phase | redis wall s | tessera wall s | redis CPU s | tessera CPU s | CPU ratio T/R |")
    print("|---|---|---|---|---|---|")
    for k in r:
        ratio = t[k]["cpu_s"] / r[k]["cpu_s"] if r[k]["cpu_s"] > 0 else float("nan")
        print(f"| {k} | {r[k]['wall_s']:.3f} | {t[k]['wall_s']:.3f} | {r[k]['cpu_s']:.2f} | {t[k]['cpu_s']:.2f} | {ratio:.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"redis": r, "tessera": t}, f, indent=1)


if __name__ == "__main__":
    main()
