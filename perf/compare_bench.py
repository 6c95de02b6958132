#!/usr/bin/env python3
"""Benchmark driver and report writer behind perf/compare.sh.

perf/compare.sh starts the two servers (pinned, on free ports) and then calls

  compare_bench.py run    --tessera-port P --tessera-pid PID --redis-port P --redis-pid PID
                          --loadgen PATH --client-cpus 1 --json OUT.json [--quick] [...]
  compare_bench.py report --json OUT.json --md OUT.md --png OUT.png

`run` runs every case against both servers in alternating rounds
(Tessera, Redis, Tessera, Redis, ...), with tessera-loadgen and with
redis-benchmark, and stores every raw result plus medians in OUT.json.
`report` turns that JSON into the Markdown report and the PNG plot; it can be
re-run on an old JSON file.

Any failure (a server that died or stopped answering, a benchmark that exited
non-zero, printed a server error or returned nothing) makes `run` exit 1.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no perf/__pycache__ left behind in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pngplot  # noqa: E402

SERVERS = ("tessera", "redis")
LABEL = {"tessera": "Tessera", "redis": "Redis"}
COLORS = {"Tessera": (31, 119, 180), "Redis": (214, 39, 40)}
PCTS = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("p99.99", 99.99)]

# The mixed-types workload: strings commands and generic-key commands only.
# Separate key namespaces so no command meets a value of the wrong kind
# (INCR only touches ctr:*, APPEND only app:*), i.e. zero expected errors.
MIXED_TEMPLATES = [
    "30:GET __key__",
    "15:SET __key__ __data__",
    "10:INCR ctr:__key__",
    "5:INCRBY ctr:__key__ 7",
    "10:APPEND app:__key__ __data__",
    "10:MGET __key__ __key__ __key__ __key__",
    "5:MSET __key__ __data__ __key__ __data__",
    "5:EXISTS __key__",
    "3:EXPIRE __key__ 3600",
    "3:TTL __key__",
    "2:STRLEN __key__",
    "2:GETRANGE __key__ 0 1",
]


class Failure(Exception):
    pass


def die_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------
# Server health
# ---------------------------------------------------------------------------

def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def resp_cmd(port, *args, timeout=10.0):
    """Send one command, return the first reply line (enough for PING/FLUSHALL)."""
    payload = f"*{len(args)}\r\n".encode()
    for a in args:
        b = str(a).encode()
        payload += b"$%d\r\n%s\r\n" % (len(b), b)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode(errors="replace")


def check_server(name, port, pid):
    if not pid_alive(pid):
        raise Failure(f"{LABEL[name]} (pid {pid}) is no longer running")
    try:
        r = resp_cmd(port, "PING")
    except OSError as e:
        raise Failure(f"{LABEL[name]} on port {port} does not answer PING: {e}")
    if r != "+PONG":
        raise Failure(f"{LABEL[name]} on port {port} answered PING with {r!r}")


# ---------------------------------------------------------------------------
# Running one benchmark process
# ---------------------------------------------------------------------------

def run_cmd(cmd, timeout):
    """Run a benchmark command; returns (stdout, stderr, seconds). Raises Failure."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise Failure(f"timed out after {timeout}s: {shlex.join(cmd)}")
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()
        raise
    if p.returncode != 0:
        raise Failure(f"exit status {p.returncode}: {shlex.join(cmd)}\n{err.strip()[-2000:]}\n{out.strip()[-1000:]}")
    return out, err, time.time() - t0


def taskset(cpus):
    return ["taskset", "-c", cpus] if cpus else []


def cpu_count(cpus):
    n = 0
    for part in cpus.split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part.strip():
            n += 1
    return max(1, n)


# --- tessera-loadgen -------------------------------------------------------

def loadgen_cmd(a, case, port, seed):
    threads = min(cpu_count(a.client_cpus), case["conns"])
    per_thread = max(1, case["conns"] // threads)
    cmd = taskset(a.client_cpus) + [
        a.loadgen, "--host", "127.0.0.1", "--port", str(port),
        "--threads", str(threads), "--connections", str(per_thread),
        "--pipeline", str(case["pipeline"]), "--keys", str(a.keys), "--data-size", str(a.data_size),
        "--duration", f"{a.duration}s", "--warmup", f"{a.warmup}s",
        "--seed", str(seed), "--json", "--no-progress", "--max-error-rate", "0",
    ]
    if case["workload"] == "setget":
        cmd += ["--ratio", a.ratio]
    else:
        for t in MIXED_TEMPLATES:
            cmd += ["--command", t]
    return cmd


def preload_cmd(a, port):
    return taskset(a.client_cpus) + [
        a.loadgen, "--host", "127.0.0.1", "--port", str(port), "--threads", "1", "--connections", "8",
        "--pipeline", "64", "--ratio", "1:0", "--distribution", "sequential", "--keys", str(a.keys),
        "--data-size", str(a.data_size), "--requests", str(a.keys), "--json", "--no-progress",
        "--max-error-rate", "0",
    ]


def parse_loadgen(out):
    try:
        doc = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise Failure(f"tessera-loadgen printed no JSON: {out[-500:]!r}")
    if doc.get("requests", 0) <= 0:
        raise Failure("tessera-loadgen completed no requests")
    if doc.get("errors"):
        raise Failure(f"tessera-loadgen saw errors: {doc['errors']}")
    lat = doc["latency_us"]
    m = {"throughput": doc["throughput_ops_per_sec"], "requests": doc["requests"],
         "duration_secs": doc["duration_secs"], "max": lat.get("max")}
    for k, _ in PCTS:
        m[k] = lat.get(k)
    return {"TOTAL": m}, doc


# --- redis-benchmark -------------------------------------------------------

def rb_requests(a, case, est):
    """Requests per redis-benchmark test, sized for ~a.rb_seconds at the estimated rate."""
    if a.rb_requests:
        return a.rb_requests
    rate = est or (60_000 if case["pipeline"] == 1 else 400_000)
    n = int(rate * a.rb_seconds)
    return max(5_000, min(n, 5_000_000))


def rb_cmd(a, case, port, n):
    threads = cpu_count(a.client_cpus)
    cmd = taskset(a.client_cpus) + [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(case["conns"]), "-n", str(n),
        "-r", str(a.keys), "-d", str(a.data_size), "-P", str(case["pipeline"]), "-t", "set,get",
        "--precision", "3",
    ]
    if threads > 1:
        cmd += ["--threads", str(threads)]
    return cmd


def parse_rb(out, err):
    text = out.replace("\r", "\n")
    if re.search(r"Error from server|Could not connect", text + err):
        lines = [l for l in (text + err).splitlines() if re.search(r"Error|ERR|Could not", l)]
        raise Failure("redis-benchmark reported errors: " + " | ".join(lines[:3]))
    res = {}
    parts = re.split(r"^====== (.+?) ======\s*$", text, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2]):
        name = name.strip().split()[0].upper()
        m = re.search(r"throughput summary:\s*([\d.]+) requests per second", body)
        s = re.search(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
                      r"\s+([\d.]+)\s+([\d.]+)", body)
        if not m or not s:
            raise Failure(f"cannot parse redis-benchmark output for {name}")
        tot = re.search(r"(\d+) requests completed in ([\d.]+) seconds", body)
        pd = body.split("Latency by percentile distribution:", 1)[-1].split("Cumulative distribution", 1)[0]
        dist = [(float(p), float(v) * 1000.0) for p, v in
                re.findall(r"^\s*([\d.]+)% <= ([\d.]+) milliseconds", pd, flags=re.M)]

        def at(p):
            for q, v in dist:
                if q >= p:
                    return v
            return dist[-1][1] if dist else None

        r = {"throughput": float(m.group(1)),
             "requests": int(tot.group(1)) if tot else None,
             "duration_secs": float(tot.group(2)) if tot else None,
             "p50": float(s.group(3)) * 1000.0, "p99": float(s.group(5)) * 1000.0,
             # redis-benchmark prints no p90/p99.9/p99.99: take the first point of
             # its HdrHistogram percentile distribution at or above them.
             "p90": at(90.0), "p99.9": at(99.9), "p99.99": at(99.99),
             "max": float(s.group(6)) * 1000.0, "avg": float(s.group(1)) * 1000.0,
             "p95": float(s.group(4)) * 1000.0}
        if not r["requests"]:
            raise Failure(f"redis-benchmark completed no {name} requests")
        res[name] = r
    if set(res) != {"SET", "GET"}:
        raise Failure(f"redis-benchmark output lacks SET/GET results (found {sorted(res)})")
    return res


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def make_cases(a):
    def c(tool, workload, pipeline, conns):
        name = f"{'loadgen' if tool == 'loadgen' else 'redis-benchmark'} " \
               f"{'SET/GET ' + a.ratio if workload == 'setget' and tool == 'loadgen' else ('mixed' if workload == 'mixed' else 'SET,GET')}" \
               f" P{pipeline} c{conns}"
        return {"name": name, "tool": tool, "workload": workload, "pipeline": pipeline, "conns": conns}

    if a.quick:
        cases = [c("loadgen", "setget", 1, 50), c("loadgen", "setget", 16, 500), c("loadgen", "mixed", 16, 50),
                 c("redis-benchmark", "setget", 1, 50), c("redis-benchmark", "setget", 16, 500)]
    else:
        cases = []
        for conns in (50, 500):
            for p in (1, 16):
                cases.append(c("loadgen", "setget", p, conns))
        for conns in (50, 500):
            for p in (1, 16):
                cases.append(c("loadgen", "mixed", p, conns))
        for conns in (50, 500):
            for p in (1, 16):
                cases.append(c("redis-benchmark", "setget", p, conns))
    if a.only:
        pat = re.compile(a.only)
        cases = [x for x in cases if pat.search(x["name"])]
        if not cases:
            raise Failure(f"--only {a.only!r} matches no case")
    return cases


def median(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def summarize(case):
    """Medians per server and per-round ratios Tessera/Redis for every result row."""
    rows = {}
    names = []
    for r in case["runs"]:
        for row in r["metrics"]:
            if row not in names:
                names.append(row)
    for row in names:
        per = {s: [r["metrics"][row] for r in case["runs"] if r["server"] == s and row in r["metrics"]]
               for s in SERVERS}
        med = {s: {k: median([m.get(k) for m in per[s]]) for k in ["throughput", "max"] + [p for p, _ in PCTS]}
               for s in SERVERS}
        ratios = {}
        for k in ["throughput", "p50", "p99", "p99.9"]:
            rs = []
            for mt, mr in zip(per["tessera"], per["redis"]):
                if mt.get(k) and mr.get(k):
                    rs.append(mt[k] / mr[k])
            ratios[k] = {"median": median(rs), "min": min(rs) if rs else None, "max": max(rs) if rs else None,
                         "per_round": rs}
        rows[row] = {"median": med, "ratio_tessera_over_redis": ratios, "rounds": len(per["tessera"])}
    case["summary"] = rows


def run_all(a):
    meta_ports = {"tessera": a.tessera_port, "redis": a.redis_port}
    pids = {"tessera": a.tessera_pid, "redis": a.redis_pid}
    cases = make_cases(a)
    doc = {"meta": collect_meta(a), "cases": cases}
    t_start = time.time()
    est = {}  # (pipeline, conns) -> max throughput seen with loadgen SET/GET, to size redis-benchmark
    for ci, case in enumerate(cases):
        print(f"[{ci + 1}/{len(cases)}] {case['name']}", flush=True)
        for s in SERVERS:
            check_server(s, meta_ports[s], pids[s])
            r = resp_cmd(meta_ports[s], "FLUSHALL")
            if r != "+OK":
                raise Failure(f"{LABEL[s]}: FLUSHALL answered {r!r}")
        case["preload"] = {}
        if case["tool"] == "loadgen":
            for s in SERVERS:
                cmd = preload_cmd(a, meta_ports[s])
                out, err, secs = run_cmd(cmd, a.timeout)
                _, raw = parse_loadgen(out)
                case["preload"][s] = {"command": shlex.join(cmd), "seconds": round(secs, 3),
                                      "throughput": raw["throughput_ops_per_sec"]}
        else:
            n = rb_requests(a, case, est.get((case["pipeline"], case["conns"])))
            case["requests_per_test"] = n
        case["commands"] = {}
        case["runs"] = []
        for rnd in range(1, a.rounds + 1):
            seed = a.seed + 1000 * ci + rnd
            for s in SERVERS:
                port = meta_ports[s]
                if case["tool"] == "loadgen":
                    cmd = loadgen_cmd(a, case, port, seed)
                    out, err, secs = run_cmd(cmd, a.duration + a.warmup + a.timeout)
                    metrics, raw = parse_loadgen(out)
                    if case["workload"] == "setget":
                        for k, v in raw.get("per_command", {}).items():
                            lat = v["latency_us"]
                            metrics[k] = {"throughput": v["throughput_ops_per_sec"], "requests": v["requests"],
                                          "max": lat.get("max"), **{p: lat.get(p) for p, _ in PCTS}}
                else:
                    cmd = rb_cmd(a, case, port, case["requests_per_test"])
                    out, err, secs = run_cmd(cmd, a.timeout + 20 * a.rb_seconds)
                    metrics = parse_rb(out, err)
                    raw = {"stdout": out, "stderr": err}
                check_server(s, port, pids[s])
                case["commands"].setdefault(s, shlex.join(cmd))
                case["runs"].append({"round": rnd, "server": s, "wall_secs": round(secs, 3),
                                     "metrics": metrics, "raw": raw})
                tp = metrics.get("TOTAL", metrics.get("GET", {})).get("throughput", 0)
                print(f"    round {rnd} {LABEL[s]:<8} {tp:>12.0f} ops/s  "
                      + "  ".join(f"{k} {metrics[k]['throughput']:.0f}" for k in metrics if k != "TOTAL"),
                      flush=True)
        summarize(case)
        if case["tool"] == "loadgen" and case["workload"] == "setget":
            est[(case["pipeline"], case["conns"])] = max(
                case["summary"]["TOTAL"]["median"][s]["throughput"] or 0 for s in SERVERS)
    doc["meta"]["total_seconds"] = round(time.time() - t_start, 1)
    doc["meta"]["loadavg_end"] = read_first("/proc/loadavg")
    return doc


# ---------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------

def read_first(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return None


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def binary_info(path):
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None
    return {"path": path, "size": st.st_size,
            "mtime": datetime.datetime.fromtimestamp(st.st_mtime).astimezone().isoformat(timespec="seconds")}


def collect_meta(a):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    root = a.repo
    commit = sh(["git", "-C", root, "rev-parse", "HEAD"])
    dirty = bool(sh(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"]))
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit, "commit_short": commit[:7], "dirty": dirty,
        "nproc": os.cpu_count(), "nproc_available": len(os.sched_getaffinity(0)),
        "kernel": os.uname().release, "cpu_model": cpu, "memory": mem,
        "loadavg_start": read_first("/proc/loadavg"),
        "redis_version": sh(["redis-server", "--version"]),
        "redis_benchmark_version": sh(["redis-benchmark", "--version"]),
        "server_cpus": a.server_cpus, "client_cpus": a.client_cpus,
        "server_commands": {"tessera": a.tessera_cmd, "redis": a.redis_cmd},
        "compare_command": a.invocation,
        "binaries": {k: binary_info(v) for k, v in (("tessera", a.tessera_bin), ("tessera-loadgen", a.loadgen))},
        "settings": {"quick": a.quick, "rounds": a.rounds, "duration_secs": a.duration, "warmup_secs": a.warmup,
                     "keys": a.keys, "data_size": a.data_size, "ratio": a.ratio, "rb_seconds": a.rb_seconds,
                     "seed": a.seed, "mixed_templates": MIXED_TEMPLATES},
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def f_ops(v):
    return "-" if v is None else f"{v:,.0f}"


def f_us(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def f_ratio(r):
    if not r or r.get("median") is None:
        return "-"
    if r["min"] is not None and len(r.get("per_round", [])) > 1:
        return f"**{r['median']:.2f}** ({r['min']:.2f}–{r['max']:.2f})"
    return f"**{r['median']:.2f}**"


def rows_of(case):
    """(label, summary) rows to show for a case: TOTAL for loadgen, SET and GET for redis-benchmark."""
    s = case["summary"]
    if case["tool"] == "loadgen":
        return [(case["name"], s["TOTAL"])]
    return [(case["name"].replace("SET,GET", k), s[k]) for k in ("SET", "GET") if k in s]


def write_report(doc, md_path, png_path, json_name):
    m = doc["meta"]
    st = m["settings"]
    L = []
    L.append(f"# Tessera vs Redis — {m['date'][:10]} — {m['commit_short']}{' (dirty tree)' if m['dirty'] else ''}")
    L.append("")
    L.append("Generated by `perf/compare.sh`" + (" **--quick** (smoke run, numbers are not meaningful)"
                                                 if st["quick"] else "") + ".")
    L.append("")
    L.append("## Setup")
    L.append("")
    L.append(f"- git commit: `{m['commit']}`{' + uncommitted changes' if m['dirty'] else ''}")
    for name, b in (m.get("binaries") or {}).items():
        if b:
            L.append(f"- `{name}`: `{b['path']}`, built {b['mtime']} ({b['size']:,} bytes)")
    L.append(f"- machine: {m['nproc']} CPUs (`nproc`), kernel `{m['kernel']}`, CPU `{m['cpu_model']}`, "
             f"memory {m['memory']}")
    L.append(f"- load average before / after: `{m['loadavg_start']}` / `{m.get('loadavg_end')}` "
             "(other jobs share this machine; compare ratios, not absolute numbers)")
    L.append(f"- {m['redis_version']}; {m['redis_benchmark_version']}")
    L.append(f"- both servers pinned to CPU(s) `{m['server_cpus']}` (only one is under load at a time); "
             f"clients pinned to CPU(s) `{m['client_cpus']}`")
    L.append(f"- {st['rounds']} round{'s' if st['rounds'] != 1 else ''} per case, alternating Tessera, Redis, Tessera, Redis, ...; "
             f"numbers are medians over rounds, ratios are medians of the per-round ratios (min–max in brackets)")
    L.append(f"- loadgen runs: {st['duration_secs']} s after {st['warmup_secs']} s warm-up; "
             f"{st['keys']:,} keys (preloaded before each case), {st['data_size']}-byte values; "
             f"redis-benchmark: `-n` sized for ~{st['rb_seconds']} s per test, `-r {st['keys']}`")
    L.append(f"- total benchmark time {m.get('total_seconds')} s")
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("Throughput ratio > 1 means Tessera is faster; latency ratio < 1 means Tessera is faster. "
             "Latencies in microseconds (p50 / p99 / p99.9).")
    L.append("")
    L.append("| case | Tessera ops/s | Redis ops/s | throughput T/R | Tessera p50 / p99 / p99.9 | "
             "Redis p50 / p99 / p99.9 | p99 T/R |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for case in doc["cases"]:
        for label, s in rows_of(case):
            t, r = s["median"]["tessera"], s["median"]["redis"]
            rt = s["ratio_tessera_over_redis"]
            L.append(f"| {label} | {f_ops(t['throughput'])} | {f_ops(r['throughput'])} | {f_ratio(rt['throughput'])} "
                     f"| {f_us(t['p50'])} / {f_us(t['p99'])} / {f_us(t['p99.9'])} "
                     f"| {f_us(r['p50'])} / {f_us(r['p99'])} / {f_us(r['p99.9'])} | {f_ratio(rt['p99'])} |")
    L.append("")
    if png_path:
        L.append(f"![latency by percentile]({os.path.basename(png_path)})")
        L.append("")
        L.append("Latency by percentile (median of rounds; log scale). redis-benchmark prints p50 and p99; its "
                 "p90/p99.9/p99.99 points are read off its percentile distribution (first point at or above).")
        L.append("")
    anomalies = find_anomalies(doc)
    if anomalies:
        L.append("### Anomalies")
        L.append("")
        L.append("Rounds whose throughput was below a quarter of the same server's median for that case "
                 "(a stall or a noisy neighbour; the medians above are robust to one such round, but a stall "
                 "in Tessera deserves a look):")
        L.append("")
        for a in anomalies:
            L.append(f"- {a}")
        L.append("")
    L.append("### Per round")
    L.append("")
    L.append("| case | round | Tessera ops/s | Redis ops/s | ratio | Tessera p99 | Redis p99 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for case in doc["cases"]:
        keys = ["TOTAL"] if case["tool"] == "loadgen" else ["SET", "GET"]
        for k in keys:
            label = case["name"] if k == "TOTAL" else case["name"].replace("SET,GET", k)
            by = {}
            for r in case["runs"]:
                by.setdefault(r["round"], {})[r["server"]] = r["metrics"].get(k, {})
            for rnd in sorted(by):
                t, rr = by[rnd].get("tessera", {}), by[rnd].get("redis", {})
                ratio = (t.get("throughput") or 0) / rr["throughput"] if rr.get("throughput") else None
                L.append(f"| {label} | {rnd} | {f_ops(t.get('throughput'))} | {f_ops(rr.get('throughput'))} | "
                         f"{'-' if ratio is None else f'{ratio:.2f}'} | {f_us(t.get('p99'))} | {f_us(rr.get('p99'))} |")
    L.append("")
    L.append("## Exact commands")
    L.append("")
    L.append("Report produced by:")
    L.append("")
    L.append("```")
    L.append(m.get("compare_command") or "perf/compare.sh")
    L.append("```")
    L.append("")
    L.append("Servers (ports are picked free at start):")
    L.append("")
    L.append("```")
    L.append(m["server_commands"]["tessera"])
    L.append(m["server_commands"]["redis"])
    L.append("```")
    L.append("")
    L.append("Before each case both servers get `FLUSHALL`; loadgen cases then preload the key space with "
             "`tessera-loadgen --ratio 1:0 --distribution sequential --requests KEYS`. The mixed workload's "
             "templates (weight:command):")
    L.append("")
    L.append("```")
    L.extend(st["mixed_templates"])
    L.append("```")
    L.append("")
    L.append("Benchmark commands (first round; later rounds differ only in `--seed`):")
    L.append("")
    for case in doc["cases"]:
        L.append(f"- {case['name']}:")
        L.append("  ```")
        for s in SERVERS:
            if s in case.get("commands", {}):
                L.append(f"  {case['commands'][s]}")
        L.append("  ```")
    L.append("")
    L.append(f"Raw data: [`{json_name}`]({json_name}) (every run's full loadgen JSON or redis-benchmark output).")
    L.append("")
    L.append("Regenerate this report from it: `python3 perf/compare_bench.py report --json "
             f"{json_name} --md {os.path.basename(md_path)} --png {os.path.basename(png_path or 'plot.png')}`")
    L.append("")
    with open(md_path, "w") as f:
        f.write("\n".join(L))


def find_anomalies(doc, frac=0.25):
    out = []
    for case in doc["cases"]:
        keys = ["TOTAL"] if case["tool"] == "loadgen" else ["SET", "GET"]
        for k in keys:
            label = case["name"] if k == "TOTAL" else case["name"].replace("SET,GET", k)
            for srv in SERVERS:
                runs = [r for r in case["runs"] if r["server"] == srv and k in r["metrics"]]
                med = median([r["metrics"][k].get("throughput") for r in runs])
                for r in runs:
                    m = r["metrics"][k]
                    if med and m.get("throughput") is not None and m["throughput"] < frac * med:
                        out.append(f"{label}, round {r['round']}, {LABEL[srv]}: {m['throughput']:,.0f} ops/s "
                                   f"(median {med:,.0f}), max latency {f_us(m.get('max'))} us, "
                                   f"run took {r.get('wall_secs')} s")
    return out


def write_png(doc, png_path):
    panels = []
    for case in doc["cases"]:
        for label, s in rows_of(case):
            series = {}
            for srv in SERVERS:
                med = s["median"][srv]
                series[LABEL[srv]] = [(p, med.get(k)) for k, p in PCTS if med.get(k)]
            panels.append({"title": label, "series": series})
    m = doc["meta"]
    title = f"Tessera vs Redis latency by percentile  {m['commit_short']}{'+dirty' if m['dirty'] else ''}"
    sub = f"{m['date'][:16]}  {m['cpu_model']}  kernel {m['kernel']}  servers on cpu {m['server_cpus']}, " \
          f"clients on cpu {m['client_cpus']}  median of {m['settings']['rounds']} rounds"
    pngplot.percentile_grid(png_path, title, panels, COLORS, cols=4, pw=340, ph=250, subtitle=sub)


def main():
    signal.signal(signal.SIGTERM, die_on_signal)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--tessera-port", type=int, required=True)
    r.add_argument("--tessera-pid", type=int, required=True)
    r.add_argument("--redis-port", type=int, required=True)
    r.add_argument("--redis-pid", type=int, required=True)
    r.add_argument("--tessera-cmd", default="")
    r.add_argument("--redis-cmd", default="")
    r.add_argument("--invocation", default="")
    r.add_argument("--loadgen", required=True)
    r.add_argument("--tessera-bin", help="the tessera binary (recorded in the report)")
    r.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r.add_argument("--server-cpus", default="0")
    r.add_argument("--client-cpus", default="1")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--rounds", type=int)
    r.add_argument("--duration", type=float, help="seconds per loadgen run")
    r.add_argument("--warmup", type=float)
    r.add_argument("--rb-seconds", type=float, help="target seconds per redis-benchmark test")
    r.add_argument("--rb-requests", type=int, help="fixed -n for redis-benchmark (overrides --rb-seconds)")
    r.add_argument("--keys", type=int)
    r.add_argument("--data-size", type=int, default=3)
    r.add_argument("--ratio", default="1:1", help="loadgen SET:GET ratio")
    r.add_argument("--seed", type=int, default=42)
    r.add_argument("--only", help="regex: run only the cases whose name matches")
    r.add_argument("--timeout", type=float, default=120.0)
    r.add_argument("--json", required=True)
    p = sub.add_parser("report")
    p.add_argument("--json", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--png")
    a = ap.parse_args()

    if a.cmd == "report":
        with open(a.json) as f:
            doc = json.load(f)
        if a.png:
            write_png(doc, a.png)
        write_report(doc, a.md, a.png, os.path.basename(a.json))
        return 0

    q = a.quick
    a.rounds = a.rounds or (1 if q else 3)
    a.duration = a.duration if a.duration is not None else (1.0 if q else 3.0)
    a.warmup = a.warmup if a.warmup is not None else (0.0 if q else 0.5)
    a.rb_seconds = a.rb_seconds if a.rb_seconds is not None else (0.5 if q else 2.5)
    a.keys = a.keys or (10_000 if q else 100_000)
    if q:
        a.timeout = min(a.timeout, 60.0)
    try:
        doc = run_all(a)
    except Failure as e:
        print(f"compare: FAILED: {e}", file=sys.stderr)
        return 1
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
