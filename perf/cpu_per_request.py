#!/usr/bin/env python3
"""Server CPU per request, Tessera vs redis-server, measured side by side.

The protocol of the core issue: each server pinned with taskset, redis-benchmark
pinned to another core, `-c 50 -r 1000000 -t set,get` at -P 16 and -P 1, runs
alternating A B A B A B; CPU = utime+stime of the server process from
/proc/PID/stat over the run. Reports medians of per-pair ratios Tessera/Redis.

Usage: perf/cpu_per_request.py [--tessera target/release/tessera] [--shards 1]
       [--server-cpus 0] [--bench-cpus 1] [--runs 3] [--quick] [--json out.json]
       [--tessera-args '--pipeline-ordering relaxed'] [--cases set16,get1]
       [--tests lpush,sadd,zadd --pipelines 16 --requests 1000000]
"""
import argparse, json, os, re, socket, statistics, subprocess, sys, time

CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def wait_ping(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not answer PING")


def start(kind, args, port):
    if kind == "redis":
        cmd = ["taskset", "-c", args.server_cpus, "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    else:
        cmd = ["taskset", "-c", args.server_cpus, args.tessera, "--port", str(port), "--threads", str(args.shards)] + args.tessera_args.split()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
    wait_ping(port, p)
    return p


# Tests that need data first, filled before the CPU clock starts: pops pop
# real elements (a fresh server's key is empty), and LRANGE_N runs as a raw
# command, since `-t lrange_N` times its own LPUSH fill with the LRANGEs.
PREFILL = {"lpop": "lpush", "rpop": "rpush", "spop": "sadd", "zpopmin": "zadd",
           "lrange_100": "lpush", "lrange_300": "lpush", "lrange_500": "lpush", "lrange_600": "lpush"}


def bench(port, args, test, pipeline, n, rand=1000000):
    what = ["-t", test]
    if test.startswith("lrange_"):
        what = ["LRANGE", "mylist", "0", str(int(test.split("_")[1]) - 1)]
    cmd = ["taskset", "-c", args.bench_cpus, "redis-benchmark", "-p", str(port), "-c", "50", "-r", str(rand),
           "-P", str(pipeline), "-n", str(n), "-q"] + what
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    # "inf" when a short run (a prefill) finished within the clock's resolution.
    m = re.findall(r"([\d.]+|inf) requests per second", out)
    if not m:
        raise RuntimeError(f"redis-benchmark output not understood: {out!r}")
    return float(m[-1])


def run_case(kind, args, test, pipeline, n):
    port = free_port()
    p = start(kind, args, port)
    try:
        if test in PREFILL:
            # Distinct members (-r 1e9) so a set or zset holds about n of them.
            fill_n = 1000 if test.startswith("lrange_") else n
            bench(port, args, PREFILL[test], 16, fill_n, rand=1000000000)
        c0 = cpu_secs(p.pid)
        rps = bench(port, args, test, pipeline, n)
        c1 = cpu_secs(p.pid)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return {"rps": rps, "cpu_us_per_req": (c1 - c0) * 1e6 / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="target/release/tessera")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--bench-cpus", default="1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small request counts (smoke test)")
    ap.add_argument("--json")
    ap.add_argument("--tessera-args", default="", help="extra server arguments, e.g. '--pipeline-ordering relaxed'")
    ap.add_argument("--cases", default="", help="only these cases, e.g. 'set16,get16'")
    ap.add_argument("--tests", default="", help="other redis-benchmark tests instead, e.g. 'lpush,sadd,zadd' (each run alone, on a fresh server)")
    ap.add_argument("--pipelines", default="16", help="pipeline depths for --tests, e.g. '16,1'")
    ap.add_argument("--requests", type=int, default=1_000_000, help="requests per run for --tests")
    args = ap.parse_args()
    args.tessera = os.path.abspath(args.tessera)
    cases = [("set", 16, 2_000_000), ("get", 16, 2_000_000), ("set", 1, 300_000), ("get", 1, 300_000)]
    if args.tests:
        cases = [(t, int(p), args.requests) for t in args.tests.split(",") for p in args.pipelines.split(",")]
    elif args.cases:
        want = set(args.cases.split(","))
        cases = [c for c in cases if f"{c[0]}{c[1]}" in want]
    if args.quick:
        cases = [(t, p, n // 50) for t, p, n in cases]
        args.runs = 1
    results = []
    for test, pipe, n in cases:
        pairs = []
        for _ in range(args.runs):
            r = run_case("redis", args, test, pipe, n)
            t = run_case("tessera", args, test, pipe, n)
            pairs.append((r, t))
        cpu_ratio = statistics.median(t["cpu_us_per_req"] / r["cpu_us_per_req"] for r, t in pairs if r["cpu_us_per_req"] > 0) if any(r["cpu_us_per_req"] > 0 for r, _ in pairs) else float("nan")
        rps_ratio = statistics.median(t["rps"] / r["rps"] for r, t in pairs)
        results.append({
            "test": test.upper(), "pipeline": pipe, "requests": n,
            "redis_cpu_us": statistics.median(r["cpu_us_per_req"] for r, _ in pairs),
            "tessera_cpu_us": statistics.median(t["cpu_us_per_req"] for _, t in pairs),
            "redis_rps": statistics.median(r["rps"] for r, _ in pairs),
            "tessera_rps": statistics.median(t["rps"] for _, t in pairs),
            "cpu_ratio": cpu_ratio, "rps_ratio": rps_ratio, "runs": pairs,
        })
    geo = statistics.geometric_mean([r["cpu_ratio"] for r in results if r["cpu_ratio"] == r["cpu_ratio"] and r["cpu_ratio"] > 0]) if results else float("nan")
    print(f"Tessera shards={args.shards} server cpus={args.server_cpus} bench cpus={args.bench_cpus} runs={args.runs}")
    print("| test | P | redis µs/req | tessera µs/req | CPU ratio T/R | redis req/s | tessera req/s | throughput ratio T/R |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['test']} | {r['pipeline']} | {r['redis_cpu_us']:.3f} | {r['tessera_cpu_us']:.3f} | {r['cpu_ratio']:.2f} | {r['redis_rps']:.0f} | {r['tessera_rps']:.0f} | {r['rps_ratio']:.2f} |")
    print(f"geometric mean of CPU ratios: {geo:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shards": args.shards, "results": results, "cpu_ratio_geomean": geo}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
