#!/usr/bin/env python3
"""Memory per element of lists, hashes, sets and sorted sets: Tessera vs
redis-server, same data, same run.

For each case the server is flushed, INFO memory `used_memory` read, the
data loaded (pipelined, 1000 elements per command), `used_memory` read again;
the difference divided by the number of elements is the cost per element.
The same cases are then run again, each in a fresh server, reading the
resident set size instead: that figure includes each allocator's rounding and
page overhead (Tessera's used_memory counts requested sizes, Redis's counts
jemalloc's usable sizes), but also what a process touches once whatever the
data (socket buffers, allocator caches: about 6 MB for Tessera here, seen as
the same excess in every case), so it is fair only for the large cases. (A
warm-up load does not help: mimalloc keeps and reuses the freed pages, so
Tessera's RSS then does not grow at all.)
Cases: one key of 1M elements of each type, 100K keys of 10 elements
each (keys included in the cost), and string keys (`key:N` -> 16-byte
values, the issue's case): loaded with SET, with SET ... EX on every key,
and with DEBUG POPULATE N key 16 (both servers run with
enable-debug-command). `--string-keys` sets their number (1M by default;
10M for the README's figures).

Usage: perf/memory_per_element.py [--tessera target/release/tessera] [--big 1000000]
       [--small-keys 100000] [--string-keys 1000000] [--no-rss] [--json out.json]
"""
import argparse, json, os, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_per_request import free_port, wait_ping  # noqa: E402


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _reply(self):
        while True:
            r = self._parse(0)
            if r is not None:
                v, n = r
                self.buf = self.buf[n:]
                return v
            d = self.s.recv(1 << 20)
            if not d:
                raise RuntimeError("closed")
            self.buf += d

    def _parse(self, i):
        nl = self.buf.find(b"\r\n", i)
        if nl < 0:
            return None
        t, line = self.buf[i:i + 1], self.buf[i + 1:nl]
        if t in b"+-:":
            return line, nl + 2
        if t == b"$":
            n = int(line)
            if n < 0:
                return None, nl + 2
            if len(self.buf) < nl + 2 + n + 2:
                return None
            return self.buf[nl + 2:nl + 2 + n], nl + 4 + n
        if t == b"*":
            n, j, items = int(line), nl + 2, []
            for _ in range(max(n, 0)):
                r = self._parse(j)
                if r is None:
                    return None
                items.append(r[0])
                j = r[1]
            return items, j
        raise RuntimeError(f"bad reply {self.buf[i:i+40]!r}")

    def cmds(self, reqs, window=200):
        """Sends requests pipelined, `window` at a time; returns the replies.
        A request may be a `(bytes, count)` pair: `count` commands at once."""
        out = []
        for i in range(0, len(reqs), window):
            part = reqs[i:i + window]
            self.s.sendall(b"".join(r[0] if isinstance(r, tuple) else r for r in part))
            for r in part:
                out.extend(self._reply() for _ in range(r[1] if isinstance(r, tuple) else 1))
        return out

    def used_memory(self):
        info = self.cmds([enc("INFO", "memory")])[0].decode()
        for line in info.splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise RuntimeError("no used_memory")


def strings(n, ttl):
    """SET key:N <16 bytes> [EX 100000] for N < n, 1000 commands a request."""
    reqs = []
    for s in range(0, n, 1000):
        part = []
        for i in range(s, min(n, s + 1000)):
            k, v = b"key:%d" % i, (b"value:%d" % i).ljust(16, b"\0")
            if ttl:
                part.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n$2\r\nEX\r\n$6\r\n100000\r\n" % (len(k), k, v))
            else:
                part.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, v))
        reqs.append((b"".join(part), len(part)))
    return reqs


def load(kind, big, small_keys, string_keys):
    """(name, elements, requests) for every case."""
    cases = []
    if string_keys:
        cases.append(("string", string_keys, strings(string_keys, False)))
        cases.append(("string+ttl", string_keys, strings(string_keys, True)))
        cases.append(("populate", string_keys, [enc("DEBUG", "POPULATE", string_keys, "key", 16)]))
    chunk = 1000
    def one_key(name, cmd, elem):
        reqs = []
        for s in range(0, big, chunk):
            args = [cmd, name]
            for i in range(s, min(big, s + chunk)):
                args.extend(elem(i))
            reqs.append(enc(*args))
        return reqs
    cases.append(("list 1M", big, one_key("L", "RPUSH", lambda i: ["v%07d" % i])))
    cases.append(("hash 1M", big, one_key("H", "HSET", lambda i: ["f%07d" % i, "v%07d" % i])))
    cases.append(("set 1M", big, one_key("S", "SADD", lambda i: ["m%07d" % i])))
    cases.append(("zset 1M", big, one_key("Z", "ZADD", lambda i: [i, "m%07d" % i])))
    def many(cmd, elems):
        return [enc(cmd, "k%07d" % k, *[x for i in range(10) for x in elems(i)]) for k in range(small_keys)]
    n = small_keys * 10
    cases.append(("list 10x", n, many("RPUSH", lambda i: ["v%07d" % i])))
    cases.append(("hash 10x", n, many("HSET", lambda i: ["f%07d" % i, "v%07d" % i])))
    cases.append(("set 10x", n, many("SADD", lambda i: ["m%07d" % i])))
    cases.append(("zset 10x", n, many("ZADD", lambda i: [i, "m%07d" % i])))
    return cases


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure(cmdline, cases, rss=False):
    """Bytes per element of every case: the `used_memory` difference (one
    server, FLUSHALL between cases) or, with `rss`, the resident-set
    difference of a fresh server per case. The data is loaded over its own
    connection, closed before the second reading, so the loader's query and
    reply buffers are not counted (for either server)."""
    res = {}
    p = None
    try:
        for name, n, reqs in cases:
            if p is None:
                port = free_port()
                p = subprocess.Popen(cmdline + ["--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
                wait_ping(port, p)
            c = Conn(port)
            c.cmds([enc("FLUSHALL")])
            time.sleep(0.2)
            before = rss_kb(p.pid) * 1024 if rss else c.used_memory()
            c.s.close()
            loader = Conn(port)
            for r in loader.cmds(reqs, window=200 if len(reqs) > 1 else 1):
                if isinstance(r, bytes) and r.startswith(b"ERR"):
                    raise RuntimeError(f"{name}: {r!r}")
            loader.s.close()
            time.sleep(0.3)
            c = Conn(port)
            after = rss_kb(p.pid) * 1024 if rss else c.used_memory()
            c.s.close()
            res[name] = (after - before) / n
            if rss:
                p.kill()
                p.wait()
                p = None
        return res
    finally:
        if p is not None:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="target/release/tessera")
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--small-keys", type=int, default=100_000)
    ap.add_argument("--string-keys", type=int, default=1_000_000)
    ap.add_argument("--no-rss", action="store_true", help="skip the RSS pass (fresh server per case)")
    ap.add_argument("--json")
    a = ap.parse_args()
    tessera = os.path.abspath(a.tessera)
    cases = load("x", a.big, a.small_keys, a.string_keys)
    debug = ["--enable-debug-command", "yes"]
    redis = ["redis-server", "--save", "", "--appendonly", "no"] + debug
    ours = [tessera, "--threads", "1"] + debug
    r, t = measure(redis, cases), measure(ours, cases)
    if a.no_rss:
        rr, tr = {k: float("nan") for k in r}, {k: float("nan") for k in t}
    else:
        rr, tr = measure(redis, cases, rss=True), measure(ours, cases, rss=True)
    print(f"{'':10} {'used_memory B/elem':^32} {'RSS B/elem (fresh server)':^32}")
    print(f"{'case':10} {'redis':>10} {'tessera':>10} {'ratio':>8} {'redis':>10} {'tessera':>10} {'ratio':>8}")
    for name, _, _ in cases:
        print(f"{name:10} {r[name]:10.2f} {t[name]:10.2f} {t[name] / r[name]:8.3f} {rr[name]:10.2f} {tr[name]:10.2f} {tr[name] / rr[name]:8.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"used_memory": {"redis": r, "tessera": t}, "rss": None if a.no_rss else {"redis": rr, "tessera": tr}}, f, indent=1)


if __name__ == "__main__":
    main()
