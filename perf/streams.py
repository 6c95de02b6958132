#!/usr/bin/env python3
"""Streams: memory per entry and a job-queue load, Tessera vs redis-server,
same run, alternating servers.

memory:   1M `XADD s <i>-0 f1 <i> f2 v<i> f3 x` (explicit IDs, pipelined 1000
          at a time) into a fresh server; INFO memory `used_memory` before and
          after, divided by the entries.
jobqueue: 2 producer processes XADD --entries entries (pipeline depth 8) into
          one stream while 10 consumer processes of one group loop
          `XREADGROUP GROUP g cN COUNT 10 BLOCK 100 STREAMS q >` + one XACK of
          what they got. Reports entries/s through the queue (first XADD to
          last XACK) and the server's CPU (utime+stime from /proc) per entry.
          Checks that every entry was acknowledged exactly once.
Each figure is the median of --runs runs, servers alternating.

Usage: perf/streams.py [--tessera target/release/tessera] [--threads 2]
       [--entries 60000] [--runs 3] [--skip-memory] [--xadd 1000000]
"""
import argparse, multiprocessing as mp, os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_per_request import free_port, wait_ping, cpu_secs  # noqa: E402
from memory_per_element import Conn, enc  # noqa: E402


def start(cmd, port):
    p = subprocess.Popen(cmd + ["--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
    wait_ping(port, p)
    return p


def memory(cmd, n):
    port = free_port()
    p = start(cmd, port)
    try:
        c = Conn(port)
        before = c.used_memory()
        loader = Conn(port)
        reqs = [enc("XADD", "s", "%d-0" % (i + 1), "f1", i, "f2", "v%d" % i, "f3", "x") for i in range(n)]
        for r in loader.cmds(reqs, window=1000):
            if isinstance(r, bytes) and r.startswith(b"ERR"):
                raise RuntimeError(r)
        loader.s.close()
        time.sleep(0.3)
        after = c.used_memory()
        nodes = None
        info = c.cmds([enc("XINFO", "STREAM", "s")])[0]
        for k, v in zip(info[::2], info[1::2]):
            if k == b"radix-tree-keys":
                nodes = int(v)
        return (after - before) / n, nodes
    finally:
        p.kill()
        p.wait()


def producer(port, n, start_evt):
    c = Conn(port)
    start_evt.wait()
    reqs = [enc("XADD", "q", "*", "job", i, "payload", "x" * 16) for i in range(n)]
    c.cmds(reqs, window=8)


def consumer(port, name, done, out_q):
    c = Conn(port)
    got = 0
    ids = []
    while True:
        r = c.cmds([enc("XREADGROUP", "GROUP", "g", name, "COUNT", 10, "BLOCK", 100, "STREAMS", "q", ">")])[0]
        if not r:
            if done.is_set():
                break
            continue
        entries = r[0][1]
        batch = [e[0] for e in entries]
        c.cmds([enc("XACK", "q", "g", *batch)])
        got += len(batch)
        ids.extend(batch)
    out_q.put((got, ids, time.time()))


def jobqueue(cmd, entries):
    port = free_port()
    p = start(cmd, port)
    try:
        c = Conn(port)
        c.cmds([enc("XGROUP", "CREATE", "q", "g", "$", "MKSTREAM")])
        start_evt, done, out_q = mp.Event(), mp.Event(), mp.Queue()
        cons = [mp.Process(target=consumer, args=(port, "c%d" % i, done, out_q)) for i in range(10)]
        prods = [mp.Process(target=producer, args=(port, entries // 2, start_evt)) for _ in range(2)]
        for x in cons + prods:
            x.start()
        time.sleep(0.5)
        cpu0, t0 = cpu_secs(p.pid), time.time()
        start_evt.set()
        for x in prods:
            x.join()
        # Wait for the consumers to drain, then stop them.
        while True:
            pend = c.cmds([enc("XINFO", "GROUPS", "q")])[0][0]
            d = dict(zip(pend[::2], pend[1::2]))
            if int(d[b"lag"] or 0) == 0 and int(d[b"pending"]) == 0:
                break
            time.sleep(0.01)
        t1, cpu1 = time.time(), cpu_secs(p.pid)
        done.set()
        results = [out_q.get() for _ in cons]
        for x in cons:
            x.join()
        total = sum(r[0] for r in results)
        all_ids = [i for r in results for i in r[1]]
        assert total == entries and len(set(all_ids)) == entries, (total, len(set(all_ids)))
        return entries / (t1 - t0), (cpu1 - cpu0) / entries * 1e6
    finally:
        p.kill()
        p.wait()


def xadd_bench(cmd, n, pipeline):
    """redis-benchmark XADD (one stream, `*` IDs): requests/s and server CPU per request."""
    import re
    port = free_port()
    p = start(cmd, port)
    try:
        c0 = cpu_secs(p.pid)
        out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n), "-P", str(pipeline), "-q",
                              "XADD", "s", "*", "f1", "v1", "f2", "42"], capture_output=True, text=True, timeout=600).stdout
        c1 = cpu_secs(p.pid)
        rps = float(re.findall(r"([\d.]+) requests per second", out)[-1])
        return rps, (c1 - c0) / n * 1e6
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="target/release/tessera")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--entries", type=int, default=60000)
    ap.add_argument("--memory-entries", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--xadd", type=int, default=0, help="also redis-benchmark this many XADDs at -P 16 and -P 1")
    a = ap.parse_args()
    servers = {
        "redis": ["redis-server", "--save", "", "--appendonly", "no"],
        "tessera": [os.path.abspath(a.tessera), "--threads", str(a.threads), "--save", ""],
    }
    if not a.skip_memory:
        for name, cmd in servers.items():
            b, nodes = memory(cmd, a.memory_entries)
            print(f"memory {name:8} {b:8.2f} B/entry ({a.memory_entries} entries, {nodes} nodes)")
    for pipe in [16, 1] if a.xadd else []:
        xr = {k: [] for k in servers}
        for _ in range(a.runs):
            for name, cmd in servers.items():
                xr[name].append(xadd_bench(cmd, a.xadd if pipe == 16 else a.xadd // 5, pipe))
        for name, rs in xr.items():
            print(f"xadd -P {pipe:2} {name:8} {statistics.median(r[0] for r in rs):9.0f} req/s  {statistics.median(r[1] for r in rs):6.3f} us server CPU/req")
    res = {k: [] for k in servers}
    for _ in range(a.runs if a.entries else 0):
        for name, cmd in servers.items():
            res[name].append(jobqueue(cmd, a.entries))
    for name, rs in res.items():
        if not rs:
            continue
        rate = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        runs = ", ".join(f"{r[0]:.0f}/s {r[1]:.2f}us" for r in rs)
        print(f"jobqueue {name:8} {rate:9.0f} entries/s  {cpu:6.2f} us server CPU/entry  (runs: {runs})")


if __name__ == "__main__":
    main()
