#!/usr/bin/env python3
"""Tiny dependency-free PNG plotting (stdlib only: zlib + struct).

Used by perf/compare_bench.py to draw latency-percentile plots without
matplotlib or gnuplot. It knows how to do exactly one thing well enough:
a grid of panels, each with a log-scale latency axis (y) against the
"number of nines" percentile axis (x: p50, p90, p99, p99.9, p99.99), one
line per server.

    from pngplot import percentile_grid
    percentile_grid("out.png", "title", panels, series_colors)

panels: [{"title": str, "series": {name: [(percentile, value_us), ...]}}]
"""
import math
import struct
import zlib

# 5x7 bitmap font, one string per row ('#' = ink). Lower case is drawn as upper case.
FONT = {
    '0': ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
    '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
    '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
    '3': ['#####', '...#.', '..#..', '...#.', '....#', '#...#', '.###.'],
    '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
    '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
    '6': ['..##.', '.#...', '#....', '####.', '#...#', '#...#', '.###.'],
    '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
    '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
    '9': ['.###.', '#...#', '#...#', '.####', '....#', '...#.', '.##..'],
    'A': ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
    'B': ['####.', '#...#', '#...#', '####.', '#...#', '#...#', '####.'],
    'C': ['.###.', '#...#', '#....', '#....', '#....', '#...#', '.###.'],
    'D': ['###..', '#..#.', '#...#', '#...#', '#...#', '#..#.', '###..'],
    'E': ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
    'F': ['#####', '#....', '#....', '####.', '#....', '#....', '#....'],
    'G': ['.###.', '#...#', '#....', '#.###', '#...#', '#...#', '.####'],
    'H': ['#...#', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
    'I': ['.###.', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
    'J': ['..###', '...#.', '...#.', '...#.', '...#.', '#..#.', '.##..'],
    'K': ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'],
    'L': ['#....', '#....', '#....', '#....', '#....', '#....', '#####'],
    'M': ['#...#', '##.##', '#.#.#', '#.#.#', '#...#', '#...#', '#...#'],
    'N': ['#...#', '#...#', '##..#', '#.#.#', '#..##', '#...#', '#...#'],
    'O': ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
    'P': ['####.', '#...#', '#...#', '####.', '#....', '#....', '#....'],
    'Q': ['.###.', '#...#', '#...#', '#...#', '#.#.#', '#..#.', '.##.#'],
    'R': ['####.', '#...#', '#...#', '####.', '#.#..', '#..#.', '#...#'],
    'S': ['.####', '#....', '#....', '.###.', '....#', '....#', '####.'],
    'T': ['#####', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
    'U': ['#...#', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
    'V': ['#...#', '#...#', '#...#', '#...#', '#...#', '.#.#.', '..#..'],
    'W': ['#...#', '#...#', '#...#', '#.#.#', '#.#.#', '#.#.#', '.#.#.'],
    'X': ['#...#', '#...#', '.#.#.', '..#..', '.#.#.', '#...#', '#...#'],
    'Y': ['#...#', '#...#', '.#.#.', '..#..', '..#..', '..#..', '..#..'],
    'Z': ['#####', '....#', '...#.', '..#..', '.#...', '#....', '#####'],
    ' ': ['.....', '.....', '.....', '.....', '.....', '.....', '.....'],
    '.': ['.....', '.....', '.....', '.....', '.....', '.##..', '.##..'],
    ':': ['.....', '.##..', '.##..', '.....', '.##..', '.##..', '.....'],
    '/': ['.....', '....#', '...#.', '..#..', '.#...', '#....', '.....'],
    '-': ['.....', '.....', '.....', '.###.', '.....', '.....', '.....'],
    '_': ['.....', '.....', '.....', '.....', '.....', '.....', '#####'],
    '%': ['##...', '##..#', '...#.', '..#..', '.#...', '#..##', '...##'],
    '(': ['...#.', '..#..', '.#...', '.#...', '.#...', '..#..', '...#.'],
    ')': ['.#...', '..#..', '...#.', '...#.', '...#.', '..#..', '.#...'],
    ',': ['.....', '.....', '.....', '.....', '.##..', '..#..', '.#...'],
    '=': ['.....', '.....', '#####', '.....', '#####', '.....', '.....'],
    '+': ['.....', '..#..', '..#..', '#####', '..#..', '..#..', '.....'],
    '*': ['.....', '#.#.#', '.###.', '#####', '.###.', '#.#.#', '.....'],
    '?': ['.###.', '#...#', '....#', '...#.', '..#..', '.....', '..#..'],
    "'": ['..#..', '..#..', '.#...', '.....', '.....', '.....', '.....'],
    '<': ['...#.', '..#..', '.#...', '#....', '.#...', '..#..', '...#.'],
    '>': ['.#...', '..#..', '...#.', '....#', '...#.', '..#..', '.#...'],
    '[': ['.###.', '.#...', '.#...', '.#...', '.#...', '.#...', '.###.'],
    ']': ['.###.', '...#.', '...#.', '...#.', '...#.', '...#.', '.###.'],
    '|': ['..#..', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
    '!': ['..#..', '..#..', '..#..', '..#..', '..#..', '.....', '..#..'],
    '#': ['.#.#.', '.#.#.', '#####', '.#.#.', '#####', '.#.#.', '.#.#.'],
}

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (200, 200, 200)
LIGHT = (232, 232, 232)
DARK = (90, 90, 90)


class Canvas:
    def __init__(self, w, h, bg=WHITE):
        self.w, self.h = w, h
        self.px = [bytearray(bytes(bg) * w) for _ in range(h)]

    def set(self, x, y, c):
        x, y = int(x), int(y)
        if 0 <= x < self.w and 0 <= y < self.h:
            row = self.px[y]
            i = 3 * x
            row[i], row[i + 1], row[i + 2] = c

    def rect(self, x0, y0, x1, y1, c):
        for y in range(max(0, int(y0)), min(self.h, int(y1) + 1)):
            for x in range(max(0, int(x0)), min(self.w, int(x1) + 1)):
                self.set(x, y, c)

    def hline(self, x0, x1, y, c, dash=0):
        for x in range(int(min(x0, x1)), int(max(x0, x1)) + 1):
            if not dash or (x // dash) % 2 == 0:
                self.set(x, y, c)

    def vline(self, x, y0, y1, c, dash=0):
        for y in range(int(min(y0, y1)), int(max(y0, y1)) + 1):
            if not dash or (y // dash) % 2 == 0:
                self.set(x, y, c)

    def line(self, x0, y0, x1, y1, c, width=2):
        x0, y0, x1, y1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx = 1 if x0 < x1 else -1
        sy = 1 if y0 < y1 else -1
        err = dx + dy
        lo = -(width // 2)
        hi = lo + width
        while True:
            for ox in range(lo, hi):
                for oy in range(lo, hi):
                    self.set(x0 + ox, y0 + oy, c)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x, y, s, c=BLACK, scale=1):
        """Draw text with its top-left corner at (x, y); returns the width."""
        cx = int(x)
        for ch in str(s):
            g = FONT.get(ch) or FONT.get(ch.upper()) or FONT["?"]
            for r, row in enumerate(g):
                for col, b in enumerate(row):
                    if b == "#":
                        self.rect(cx + col * scale, y + r * scale, cx + col * scale + scale - 1,
                                  y + r * scale + scale - 1, c)
            cx += 6 * scale
        return cx - int(x)

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(r) for r in self.px)

        def chunk(tag, data):
            body = tag + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

        data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
        with open(path, "wb") as f:
            f.write(data)


def text_width(s, scale=1):
    return 6 * scale * len(str(s))


def nines(p):
    """Percentile -> position on the 'number of nines' axis (p50 -> 0.3, p99 -> 2)."""
    return -math.log10(max(1e-9, 1.0 - p / 100.0))


def fmt_us(v):
    if v >= 1_000_000:
        return f"{v / 1e6:g}s"
    if v >= 1000:
        return f"{v / 1000:g}ms"
    return f"{v:g}us"


def percentile_grid(path, title, panels, colors, cols=3, pw=430, ph=300, subtitle=""):
    """Draw one panel per case: latency (log y) against percentile (nines x)."""
    cols = max(1, min(cols, len(panels)))
    rows = max(1, (len(panels) + cols - 1) // cols)
    head = 58 if subtitle else 44
    W, H = cols * pw + 20, rows * ph + head + 10
    cv = Canvas(W, H)
    cv.text(12, 10, title, BLACK, 2)
    if subtitle:
        cv.text(12, 32, subtitle, DARK, 1)
    # legend, top right
    lx = W - 12
    for name in reversed(list(colors)):
        lx -= text_width(name, 2) + 34
        cv.line(lx, 17, lx + 22, 17, colors[name], 3)
        cv.text(lx + 28, 10, name, BLACK, 2)
    xticks = [(50, "p50"), (90, "p90"), (99, "p99"), (99.9, "p99.9"), (99.99, "p99.99")]
    for i, p in enumerate(panels):
        ox = 10 + (i % cols) * pw
        oy = head + (i // cols) * ph
        # plot area inside the panel
        L, R, T, B = ox + 58, ox + pw - 14, oy + 26, oy + ph - 30
        cv.text(ox + 8, oy + 6, p["title"][: (pw - 16) // 6], BLACK, 1)
        vals = [v for s in p["series"].values() for (_, v) in s if v and v > 0]
        if not vals:
            cv.text(L + 10, (T + B) // 2, "no data", DARK, 1)
            continue
        lo = 10 ** math.floor(math.log10(min(vals)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        if hi <= lo:
            hi = lo * 10
        ly0, ly1 = math.log10(lo), math.log10(hi)
        xmin, xmax = nines(50) - 0.15, nines(99.99) + 0.15

        def X(pct):
            return L + (nines(pct) - xmin) / (xmax - xmin) * (R - L)

        def Y(v):
            return B - (math.log10(max(v, lo)) - ly0) / (ly1 - ly0) * (B - T)

        # grid: decades with 2 and 5 minor lines
        d = lo
        while d <= hi * 1.0001:
            y = Y(d)
            cv.hline(L, R, y, GREY)
            lab = fmt_us(d)
            cv.text(L - 4 - text_width(lab), int(y) - 3, lab, DARK, 1)
            for m in (2, 5):
                if d * m < hi:
                    cv.hline(L, R, Y(d * m), LIGHT, dash=3)
            d *= 10
        for pct, lab in xticks:
            x = X(pct)
            cv.vline(x, T, B, LIGHT, dash=3)
            cv.text(int(x) - text_width(lab) // 2, B + 6, lab, DARK, 1)
        cv.hline(L, R, B, BLACK)
        cv.vline(L, T, B, BLACK)
        cv.hline(L, R, T, GREY)
        cv.vline(R, T, B, GREY)
        for name, pts in p["series"].items():
            c = colors.get(name, BLACK)
            pts = sorted((pc, v) for pc, v in pts if v and v > 0)
            for (p0, v0), (p1, v1) in zip(pts, pts[1:]):
                cv.line(X(p0), Y(v0), X(p1), Y(v1), c, 2)
            for pc, v in pts:
                x, y = X(pc), Y(v)
                cv.rect(x - 2, y - 2, x + 2, y + 2, c)
    cv.png(path)


if __name__ == "__main__":
    # Self-test: writes /tmp/pngplot-demo.png
    demo = [{"title": f"demo case {i}", "series": {
        "Tessera": [(50, 80 + i), (90, 120), (99, 300), (99.9, 900), (99.99, 2500)],
        "Redis": [(50, 100), (90, 150), (99, 420), (99.9, 1500)]}} for i in range(4)]
    percentile_grid("/tmp/pngplot-demo.png", "pngplot demo: latency by percentile", demo,
                    {"Tessera": (31, 119, 180), "Redis": (214, 39, 40)}, subtitle="median of rounds, microseconds")
    print("/tmp/pngplot-demo.png")
