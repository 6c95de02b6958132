#!/usr/bin/env python3
"""Throughput and server CPU per operation of MULTI/EXEC, EVALSHA and PUBLISH,
Tessera next to redis-server in the same run (issue 9's figures).

Each server is pinned to --server-cpus, the load to --bench-cpus; runs
alternate Redis, Tessera, Redis, Tessera... and the medians are reported.

* exec1: MULTI, SET k v, INCR n, EXEC with both keys in one hash slot
  ({u<i>}a, {u<i>}b), pipelined 32 transactions per write on 16 connections;
* exec1x2: exec1 on a 2-shard Tessera (about half the transactions have
  their slot on the other shard than their connection);
* exec2: the same with the two keys on different shards of a 2-shard Tessera
  (chosen by their hash slots: a cross-shard transaction every time);
* evalsha: redis-benchmark running EVALSHA of a 2-command script on one key;
* publish: 100 subscribers (RESP2 connections reading everything), a
  redis-benchmark publisher; reports publishes/s and messages delivered.

Usage: perf/tx_scripts_bench.py [--tessera target/release/tessera] [--runs 3]
       [--cases exec1,exec1x2,exec2,evalsha,publish] [--seconds 4]
"""
import argparse, os, selectors, socket, statistics, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(__file__))
from cpu_per_request import cpu_secs, free_port, wait_ping  # noqa: E402

SCRIPT = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[1] .. ':n')"


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def start(kind, args, shards, port):
    if kind == "redis":
        cmd = ["taskset", "-c", args.server_cpus, "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    else:
        cmd = ["taskset", "-c", args.server_cpus, args.tessera, "--port", str(port), "--threads", str(shards)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
    wait_ping(port, p)
    return p


def crc16(data):
    """CRC16-XMODEM, Redis Cluster's key slot hash."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def shard_of(key, shards=2):
    return (crc16(key.encode()) % 16384) * shards // 16384


def cross_pair(n):
    """Two keys that live on different shards of a 2-shard Tessera."""
    a = f"ua{n}"
    i = 0
    while shard_of(f"ub{n}.{i}") == shard_of(a):
        i += 1
    return a, f"ub{n}.{i}"


def exec_load(port, seconds, cross, conns=16, depth=32):
    """Pipelined transactions; returns the number of EXECs answered."""
    batches = []
    for c in range(conns):
        parts = []
        for i in range(depth):
            n = c * depth + i
            ka, kb = cross_pair(n) if cross else (f"{{u{n}}}a", f"{{u{n}}}b")
            parts += [resp("MULTI"), resp("SET", ka, "v"), resp("INCR", kb), resp("EXEC")]
        batches.append(b"".join(parts))
    # Each transaction's replies: +OK +QUEUED +QUEUED *2 +OK :n -> count EXECs by "*2\r\n".
    sel = selectors.DefaultSelector()
    socks = []
    for c in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, [c, 0, b""])
        socks.append(s)
        s.sendall(batches[c])
    done = 0
    end = time.time() + seconds
    while time.time() < end:
        for key, _ in sel.select(timeout=0.5):
            st = key.data
            data = key.fileobj.recv(1 << 20)
            if not data:
                raise RuntimeError("server closed the connection")
            buf = st[2] + data
            got = buf.count(b"*2\r\n")
            # Keep the tail that might hold a split "*2\r\n".
            st[2] = buf[-3:]
            st[1] += got
            done += got
            if st[1] >= depth:
                st[1] -= depth
                key.fileobj.sendall(batches[st[0]])
    for s in socks:
        s.close()
    return done


def bench(args, kind, case):
    port = free_port()
    shards = 2 if case in ("exec2", "exec1x2") else 1
    p = start(kind, args, shards, port)
    try:
        out = {}
        if case in ("exec1", "exec1x2", "exec2"):
            c0 = cpu_secs(p.pid)
            t0 = time.time()
            n = exec_load(port, args.seconds, cross=(case == "exec2"))
            dt, cpu = time.time() - t0, cpu_secs(p.pid) - c0
            out = {"ops": n / dt, "cpu_us": cpu * 1e6 / max(n, 1)}
        elif case == "evalsha":
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(resp("SCRIPT", "LOAD", SCRIPT))
            sha = s.recv(1024).split(b"\r\n")[1].decode()
            s.close()
            n = args.requests
            cmd = ["taskset", "-c", args.bench_cpus, "redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n), "-r", "100000", "-q",
                   "EVALSHA", sha, "1", "k:__rand_int__", "v"]
            c0 = cpu_secs(p.pid)
            t0 = time.time()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            dt, cpu = time.time() - t0, cpu_secs(p.pid) - c0
            out = {"ops": n / dt, "cpu_us": cpu * 1e6 / n}
        elif case == "publish":
            subs = []
            received = [0]
            lock = threading.Lock()
            stop = threading.Event()
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(resp("SUBSCRIBE", "ch"))
                subs.append(s)
            time.sleep(0.5)

            def reader(socks):
                sel = selectors.DefaultSelector()
                for s in socks:
                    s.setblocking(False)
                    sel.register(s, selectors.EVENT_READ)
                while not stop.is_set():
                    for key, _ in sel.select(timeout=0.2):
                        try:
                            d = key.fileobj.recv(1 << 20)
                        except BlockingIOError:
                            continue
                        with lock:
                            received[0] += d.count(b"$7\r\nmessage\r\n")

            th = threading.Thread(target=reader, args=(subs,))
            th.start()
            n = args.requests // 10
            cmd = ["taskset", "-c", args.bench_cpus, "redis-benchmark", "-p", str(port), "-c", "10", "-n", str(n), "-q", "PUBLISH", "ch", "hello"]
            c0 = cpu_secs(p.pid)
            t0 = time.time()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            dt, cpu = time.time() - t0, cpu_secs(p.pid) - c0
            time.sleep(1.0)
            stop.set()
            th.join()
            for s in subs:
                s.close()
            out = {"ops": n / dt, "cpu_us": cpu * 1e6 / n, "delivered": received[0] / (n * 100)}
        return out
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="target/release/tessera")
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--bench-cpus", default="1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--requests", type=int, default=300000)
    ap.add_argument("--cases", default="exec1,exec1x2,exec2,evalsha,publish")
    args = ap.parse_args()
    args.tessera = os.path.abspath(args.tessera)
    for case in args.cases.split(","):
        res = {"redis": [], "tessera": []}
        for _ in range(args.runs):
            for kind in ("redis", "tessera"):
                res[kind].append(bench(args, kind, case))
        med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in res.items()}
        r, t = med["redis"], med["tessera"]
        extra = f"  delivered redis {r['delivered']:.3f} tessera {t['delivered']:.3f}" if "delivered" in r else ""
        print(f"{case:8s} redis {r['ops']:10.0f}/s {r['cpu_us']:6.2f} us/op | tessera {t['ops']:10.0f}/s {t['cpu_us']:6.2f} us/op"
              f" | throughput x{t['ops'] / r['ops']:.2f}, cpu/op x{t['cpu_us'] / r['cpu_us']:.2f}{extra}", flush=True)


if __name__ == "__main__":
    main()
