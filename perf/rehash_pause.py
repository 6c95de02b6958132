#!/usr/bin/env python3
"""The longest pause of a growing keyspace: N SETs (`key:N` -> 16-byte
values) in pipelined batches of 10K, each batch timed from its send to its
last reply, against Tessera and redis-server in turns (same run).
A table resize that is done at once shows up as one slow batch; an
incremental one (Redis's rehash, Tessera's key table) spreads it out.

Usage: perf/rehash_pause.py target/release/tessera [N=10000000] [rounds=3] [threads=1] [set|sadd]
(`sadd`: N members `m:N` added to one set, whose hashtable grows instead.)
Prints, per server and round, the slowest batch (and the key count it
reached), p99, p50 and the total, then the medians over the rounds."""
import os, socket, subprocess, sys, tempfile, time, statistics

TESSERA = os.path.abspath(sys.argv[1])
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
THREADS = sys.argv[4] if len(sys.argv) > 4 else "1"
MODE = sys.argv[5] if len(sys.argv) > 5 else "set"
BATCH = 10_000
REPLY = 5 if MODE == "set" else 4  # +OK\r\n or :1\r\n
VAL = b"v" * 16


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def connect(port, deadline=30):
    end = time.time() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)


def read_exact_replies(sock, n):
    """Reads n `+OK\\r\\n` replies."""
    want = REPLY * n
    got = 0
    while got < want:
        b = sock.recv(1 << 20)
        if not b:
            raise SystemExit("connection closed")
        if b"-" in b:
            raise SystemExit(f"error reply: {b[:200]!r}")
        got += len(b)


def batch(start):
    parts = []
    for i in range(start, start + BATCH):
        if MODE == "set":
            k = b"key:%d" % i
            parts.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, VAL))
        else:
            m = b"m:%d" % i
            parts.append(b"*3\r\n$4\r\nSADD\r\n$1\r\ns\r\n$%d\r\n%s\r\n" % (len(m), m))
    return b"".join(parts)


def run(kind, port):
    d = tempfile.mkdtemp(prefix=f"rehash-{kind}-")
    if kind == "redis":
        args = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", d]
    else:
        args = [TESSERA, "--port", str(port), "--threads", THREADS, "--save", "", "--dir", d]
    p = subprocess.Popen(args, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s = connect(port)
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        time.sleep(0.2)
        info = s.recv(1 << 16)
        assert b"process_id:%d" % p.pid in info, "not our server"
        times = []
        nxt = batch(0)
        t_all = time.time()
        for b0 in range(0, N, BATCH):
            cur = nxt
            t0 = time.perf_counter()
            s.sendall(cur)
            read_exact_replies(s, BATCH)
            times.append((time.perf_counter() - t0) * 1000)
            if b0 + BATCH < N:
                nxt = batch(b0 + BATCH)
        total = time.time() - t_all
        worst = max(range(len(times)), key=lambda i: times[i])
        st = sorted(times)
        return {
            "max_ms": times[worst],
            "at_keys": (worst + 1) * BATCH,
            "p99_ms": st[int(len(st) * 0.99)],
            "p50_ms": st[len(st) // 2],
            "total_s": total,
        }
    finally:
        p.terminate()
        p.wait(30)


def main():
    res = {"tessera": [], "redis": []}
    for r in range(ROUNDS):
        for kind in (["tessera", "redis"] if r % 2 == 0 else ["redis", "tessera"]):
            x = run(kind, free_port())
            res[kind].append(x)
            print(f"round {r} {kind:8}: max {x['max_ms']:.1f} ms (at {x['at_keys']} keys), "
                  f"p99 {x['p99_ms']:.1f} ms, p50 {x['p50_ms']:.2f} ms, total {x['total_s']:.2f} s", flush=True)
    for kind, xs in res.items():
        m = {f: statistics.median(x[f] for x in xs) for f in ("max_ms", "p99_ms", "p50_ms", "total_s")}
        print(f"median {kind:8}: max {m['max_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms, "
              f"p50 {m['p50_ms']:.2f} ms, total {m['total_s']:.2f} s")


if __name__ == "__main__":
    main()
