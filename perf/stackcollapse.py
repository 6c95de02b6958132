#!/usr/bin/env python3
"""Stack folding and a minimal flame graph, stdlib only (used by perf/flamegraph.sh
when neither inferno nor the FlameGraph perl scripts are installed).

  perf script -i perf.data | stackcollapse.py collapse > stacks.folded
  stackcollapse.py svg --title "Tessera" < stacks.folded > flame.svg
  stackcollapse.py top [-n 25] < stacks.folded          # hottest functions (self and total)

The folded format is Brendan Gregg's: one line per distinct stack,
"root;caller;...;leaf COUNT", root first. It is what inferno-collapse-perf
and stackcollapse-perf.pl produce, so the files are interchangeable.
The SVG here is deliberately simple (hover titles, no search or zoom);
install inferno (`cargo install inferno`) for the interactive one.
"""
import argparse
import collections
import html
import re
import sys
import zlib

HEADER = re.compile(r"^(\S.*?)\s+(\d+)(?:/(\d+))?\s+(?:\[\d+\]\s+)?[\d.]+:\s")
FRAME = re.compile(r"^\s+([0-9a-fA-F]+)\s+(.*?)(?:\s+\((.*)\))?$")
OFFSET = re.compile(r"\+0x[0-9a-fA-F]+$")


def collapse(inp, out, include_comm=True):
    counts = collections.Counter()
    comm = None
    stack = []

    def flush():
        if comm is not None and stack:
            frames = list(reversed(stack))
            if include_comm:
                frames.insert(0, comm)
            counts[";".join(frames)] += 1

    for line in inp:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, stack = None, []
            continue
        if not line[0].isspace():
            flush()
            m = HEADER.match(line)
            comm = m.group(1).strip().replace(" ", "_") if m else line.split()[0]
            stack = []
            continue
        m = FRAME.match(line)
        if not m:
            continue
        sym, dso = m.group(2).strip(), (m.group(3) or "")
        sym = OFFSET.sub("", sym)
        if not sym or sym == "[unknown]":
            sym = "[" + (dso.rsplit("/", 1)[-1] or "unknown") + "]"
        stack.append(sym.replace(";", ":"))
    flush()
    for k, v in sorted(counts.items()):
        out.write(f"{k} {v}\n")


def read_folded(inp):
    for line in inp:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, n = line.rpartition(" ")
        try:
            yield stack.split(";"), int(n)
        except ValueError:
            continue


def top(inp, n):
    self_c, total_c = collections.Counter(), collections.Counter()
    all_n = 0
    for frames, c in read_folded(inp):
        all_n += c
        self_c[frames[-1]] += c
        for f in set(frames):
            total_c[f] += c
    if not all_n:
        print("no samples")
        return
    print(f"{all_n} samples")
    print(f"{'self %':>7}  function")
    for f, c in self_c.most_common(n):
        print(f"{100.0 * c / all_n:>6.2f}%  {f}")
    print()
    print(f"{'total %':>7}  function")
    for f, c in total_c.most_common(n):
        print(f"{100.0 * c / all_n:>6.2f}%  {f}")


def svg(inp, out, title, width=1200, fh=16):
    root = {"n": 0, "kids": {}}
    for frames, c in read_folded(inp):
        root["n"] += c
        node = root
        for f in frames:
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += c
    depth = 0

    def d(node, lvl):
        nonlocal depth
        depth = max(depth, lvl)
        for k in node["kids"].values():
            d(k, lvl + 1)

    d(root, 0)
    total = max(1, root["n"])
    pad_top = 40
    height = pad_top + (depth + 1) * fh + 10
    scale = (width - 20) / total
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="monospace" font-size="11">',
             f'<rect width="100%" height="100%" fill="#f8f8f8"/>',
             f'<text x="{width // 2}" y="22" text-anchor="middle" font-size="16">{html.escape(title)}</text>']

    def color(name):
        h = zlib.crc32(name.encode())
        return f"rgb({205 + h % 50},{(h >> 8) % 160 + 40},{(h >> 16) % 50})"

    def emit(name, node, x, lvl):
        w = node["n"] * scale
        if w < 0.3:
            return
        y = height - 10 - (lvl + 1) * fh
        pct = 100.0 * node["n"] / total
        label = f"{name} ({node['n']} samples, {pct:.2f}%)"
        parts.append(f'<g><title>{html.escape(label)}</title><rect x="{x:.1f}" y="{y}" width="{w:.1f}" '
                     f'height="{fh - 1}" fill="{color(name)}" rx="2"/>')
        chars = int((w - 4) / 6.6)
        if chars >= 3:
            t = name if len(name) <= chars else name[: chars - 2] + ".."
            parts.append(f'<text x="{x + 2:.1f}" y="{y + fh - 4}">{html.escape(t)}</text>')
        parts.append("</g>")
        cx = x
        for k in sorted(node["kids"]):
            emit(k, node["kids"][k], cx, lvl + 1)
            cx += node["kids"][k]["n"] * scale

    emit("all", root, 10, 0)
    parts.append("</svg>")
    out.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collapse", help="perf script output (stdin) -> folded stacks (stdout)")
    c.add_argument("--no-comm", action="store_true", help="do not put the thread name as the root frame")
    s = sub.add_parser("svg", help="folded stacks (stdin) -> SVG flame graph (stdout)")
    s.add_argument("--title", default="Flame graph")
    s.add_argument("--width", type=int, default=1200)
    t = sub.add_parser("top", help="folded stacks (stdin) -> hottest functions")
    t.add_argument("-n", type=int, default=25)
    a = ap.parse_args()
    if a.cmd == "collapse":
        collapse(sys.stdin, sys.stdout, not a.no_comm)
    elif a.cmd == "svg":
        svg(sys.stdin, sys.stdout, a.title, a.width)
    else:
        top(sys.stdin, a.n)


if __name__ == "__main__":
    main()
