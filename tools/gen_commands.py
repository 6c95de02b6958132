#!/usr/bin/env python3
"""Generate src/commands/meta.rs from a live redis-server 7.0.15.

Tessera answers COMMAND INFO / COMMAND DOCS / COMMAND COUNT / COMMAND LIST and
extracts keys exactly like Redis 7.0.15. Rather than transcribing Redis's JSON
command table by hand, this script asks a real redis-server for the metadata
of every command listed in tools/commands.txt and writes it out as static Rust
data (see src/commands/doc.rs for the types):

  * `COMMAND INFO name` -> the entry minus its 10th element (subcommands),
  * `COMMAND DOCS name` -> the doc map minus its "subcommands" key,
  * every subcommand of a container command, recursively, the same way.

Replies are read over raw RESP3 (after `HELLO 3`) with their full type
information so that Tessera can render them in RESP2 or RESP3 byte for byte as
Redis does.

Redis keeps subcommands in a hash table seeded randomly at startup, so the order
in which it lists them changes from one process to the next; this script sorts
them (and the top-level commands) by name, which makes the output deterministic.

Usage: python3 tools/gen_commands.py [--redis-server PATH] [--out PATH]
Stdlib only. The redis-server it starts is always stopped.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_LIST = os.path.join(HERE, "commands.txt")
DEFAULT_OUT = os.path.join(ROOT, "src", "commands", "meta.rs")
EXPECTED_VERSION = "7.0.15"


# --------------------------------------------------------------------------
# RESP3 client
# --------------------------------------------------------------------------

class RespError(Exception):
    pass


class Value:
    """A RESP3 value with its type byte.

    kind is one of: '+' simple string, '$' blob string, ':' integer, '_' null,
    ',' double, '#' boolean, '*' array, '~' set, '%' map, '=' verbatim string,
    '(' big number. val is str (strings), int, float, bool, None, a list of
    Values ('*', '~') or a list of (Value, Value) pairs ('%').
    """

    __slots__ = ("kind", "val")

    def __init__(self, kind, val):
        self.kind = kind
        self.val = val

    def __repr__(self):
        return "Value(%r, %r)" % (self.kind, self.val)

    def text(self):
        if self.kind not in "+$=":
            raise ValueError("expected a string, got %r" % (self,))
        return self.val

    def items(self):
        if self.kind not in "*~":
            raise ValueError("expected an array or set, got %r" % (self,))
        return self.val

    def pairs(self):
        if self.kind != "%":
            raise ValueError("expected a map, got %r" % (self,))
        return self.val

    def get(self, key):
        for k, v in self.pairs():
            if k.kind in "+$" and k.val == key:
                return v
        return None


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RespError("connection closed by server")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = self.buf[:i]
                self.buf = self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data = self.buf[:n]
        if self.buf[n:n + 2] != b"\r\n":
            raise RespError("blob not terminated by CRLF")
        self.buf = self.buf[n + 2:]
        return data

    @staticmethod
    def _str(b):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise RespError("non UTF-8 string in reply: %r" % (b,))

    def read(self):
        line = self._line()
        if not line:
            raise RespError("empty line in reply")
        t = chr(line[0])
        rest = line[1:]
        if t == "+":
            return Value("+", self._str(rest))
        if t == "-":
            raise RespError(self._str(rest))
        if t == ":":
            return Value(":", int(rest))
        if t == "_":
            return Value("_", None)
        if t == ",":
            return Value(",", float(rest))
        if t == "#":
            if rest not in (b"t", b"f"):
                raise RespError("bad boolean %r" % (rest,))
            return Value("#", rest == b"t")
        if t == "(":
            return Value("(", int(rest))
        if t in "$=!":
            n = int(rest)
            if n < 0:
                return Value("_", None)  # RESP2 null bulk (not expected after HELLO 3)
            data = self._exact(n)
            if t == "!":
                raise RespError(self._str(data))
            if t == "=":
                return Value("=", self._str(data))  # keeps the "txt:" prefix
            return Value("$", self._str(data))
        if t in "*~>":
            n = int(rest)
            if n < 0:
                return Value("_", None)
            items = [self.read() for _ in range(n)]
            if t == ">":
                raise RespError("unexpected push message %r" % (items,))
            return Value(t, items)
        if t in "%|":
            n = int(rest)
            pairs = [(self.read(), self.read()) for _ in range(n)]
            if t == "|":  # attribute: metadata preceding the actual reply
                return self.read()
            return Value("%", pairs)
        raise RespError("unknown RESP type byte %r" % (t,))

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()


# --------------------------------------------------------------------------
# redis-server lifecycle
# --------------------------------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Server:
    def __init__(self, binary):
        self.binary = binary
        self.proc = None
        self.port = None
        self.dir = None
        self.log = None

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="tessera-gen-")
        last = "not started"
        for _attempt in range(5):
            self.port = free_port()
            logpath = os.path.join(self.dir, "redis-%d.log" % self.port)
            self.log = open(logpath, "wb")
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", self.dir],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    c = Conn(self.port)
                    try:
                        if c.call("PING").val == "PONG":
                            return self.port
                    finally:
                        c.close()
                except (OSError, RespError):
                    time.sleep(0.05)
            self.log.close()
            with open(logpath, "rb") as f:
                last = f.read().decode("utf-8", "replace")
            self._kill()
        raise RuntimeError("could not start %s:\n%s" % (self.binary, last))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        self._kill()
        if self.log is not None and not self.log.closed:
            self.log.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# --------------------------------------------------------------------------
# Capture
# --------------------------------------------------------------------------

def read_command_list(path):
    names = []
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line != "*" and (line != line.lower() or "|" in line or " " in line):
                raise SystemExit("%s: bad command name %r" % (path, line))
            if line in names:
                raise SystemExit("%s: duplicate command %r" % (path, line))
            names.append(line)
    return names


class Meta:
    def __init__(self, info, docs, subcommands):
        self.info = info              # Value('*', 9 items)
        self.docs = docs              # Value('%', pairs without "subcommands")
        self.subcommands = subcommands  # [Meta], sorted by name
        items = info.items()
        self.name = items[0].text()
        if self.name != self.name.lower():
            # doc.rs binary-searches the table case-insensitively by lower-case name.
            raise ValueError("command name %r is not lower-case" % self.name)
        self.arity = int_of(items[1])
        self.flags = [v.text() for v in items[2].items()]
        self.first_key = int_of(items[3])
        self.last_key = int_of(items[4])
        self.key_step = int_of(items[5])
        self.acl_categories = [v.text() for v in items[6].items()]
        self.tips = [v.text() for v in items[7].items()]


def int_of(v):
    if v.kind != ":":
        raise ValueError("expected an integer, got %r" % (v,))
    return v.val


def split_entry(entry, docs):
    """entry: full COMMAND INFO entry; docs: its COMMAND DOCS value map."""
    items = entry.items()
    if entry.kind != "*" or len(items) != 10:
        raise ValueError("unexpected COMMAND INFO entry shape: %r" % (entry,))
    name = items[0].text()
    info = Value("*", items[:9])
    sub_entries = items[9].items()

    doc_pairs = [(k, v) for (k, v) in docs.pairs() if not (k.kind in "+$" and k.val == "subcommands")]
    sub_docs_v = docs.get("subcommands")
    sub_docs = {}
    if sub_docs_v is not None:
        for k, v in sub_docs_v.pairs():
            sub_docs[k.text()] = v
    if sorted(sub_docs) != sorted(e.items()[0].text() for e in sub_entries):
        raise ValueError("%s: INFO and DOCS disagree on subcommands" % name)
    if sub_entries and sub_docs_v is None:
        raise ValueError("%s: subcommands but no docs subcommands" % name)

    subs = []
    for e in sorted(sub_entries, key=lambda e: e.items()[0].text()):
        sname = e.items()[0].text()
        if not sname.startswith(name + "|"):
            raise ValueError("subcommand %r of %r" % (sname, name))
        subs.append(split_entry(e, sub_docs[sname]))
    return Meta(info, Value("%", doc_pairs), subs)


def capture(port, names):
    c = Conn(port)
    try:
        hello = c.call("HELLO", "3")
        version = hello.get("version")
        if version is None or version.text() != EXPECTED_VERSION:
            raise SystemExit("need redis-server %s, got %r" % (EXPECTED_VERSION, version))
        if int_of(hello.get("proto")) != 3:
            raise SystemExit("HELLO 3 did not switch to RESP3")
        if "*" in names:
            # `*`: every top-level command the server has (COMMAND GETKEYS and
            # key extraction need the key specs of commands Tessera lacks too).
            listed = [v.text() for v in c.call("COMMAND", "LIST").items()]
            extra = sorted(n for n in listed if "|" not in n and n not in names)
            names = [n for n in names if n != "*"] + extra
        metas = []
        for name in names:
            info = c.call("COMMAND", "INFO", name)
            entries = info.items()
            if len(entries) != 1 or entries[0].kind == "_":
                raise SystemExit("redis-server does not know command %r" % name)
            docs = c.call("COMMAND", "DOCS", name)
            pairs = docs.pairs()
            if len(pairs) != 1 or pairs[0][0].text() != name:
                raise SystemExit("unexpected COMMAND DOCS reply for %r: %r" % (name, docs))
            meta = split_entry(entries[0], pairs[0][1])
            if meta.name != name:
                raise SystemExit("COMMAND INFO %s answered for %r" % (name, meta.name))
            metas.append(meta)
        return sorted(metas, key=lambda m: m.name)
    finally:
        c.close()


# --------------------------------------------------------------------------
# Rust emitter
# --------------------------------------------------------------------------

WIDTH = 100


def rust_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o >= 0x7f:
            out.append("\\u{%x}" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def leaf(v):
    """Single-line rendering of a scalar, or None if v is a container."""
    k = v.kind
    if k == "+":
        return "Doc::Status(%s)" % rust_str(v.val)
    if k == "$":
        return "Doc::Bulk(%s)" % rust_str(v.val)
    if k == ":":
        return "Doc::Int(%d)" % v.val
    if k == "_":
        return "Doc::Null"
    if k in "*~%":
        return None
    raise SystemExit("RESP3 type %r (%r) has no Doc variant yet; add one to doc.rs "
                     "and to this generator" % (k, v))


def inline(v):
    """Single-line rendering of v, or None if v holds nested containers."""
    s = leaf(v)
    if s is not None:
        return s
    ctor = {"*": "Array", "~": "Set", "%": "Map"}[v.kind]
    if v.kind == "%":
        parts = []
        for k, x in v.val:
            a, b = leaf(k), leaf(x)
            if a is None or b is None:
                return None
            parts.append("(%s, %s)" % (a, b))
    else:
        parts = []
        for x in v.val:
            a = leaf(x)
            if a is None:
                return None
            parts.append(a)
    return "Doc::%s(&[%s])" % (ctor, ", ".join(parts))


def emit_doc(v, indent, prefix, suffix, out):
    """Append lines rendering v as `prefix <v> suffix` at indent."""
    pad = "    " * indent
    one = inline(v)
    if one is not None and (leaf(v) is not None
                            or len(pad) + len(prefix) + len(one) + len(suffix) <= WIDTH):
        out.append(pad + prefix + one + suffix)
        return
    ctor = {"*": "Array", "~": "Set", "%": "Map"}[v.kind]
    out.append(pad + prefix + "Doc::%s(&[" % ctor)
    if v.kind == "%":
        for k, x in v.val:
            kl = leaf(k)
            if kl is None:
                raise SystemExit("map with a non-scalar key: %r" % (k,))
            emit_doc(x, indent + 1, "(%s, " % kl, "),", out)
    else:
        for x in v.val:
            emit_doc(x, indent + 1, "", ",", out)
    out.append(pad + "])" + suffix)


def str_slice(items):
    return "&[%s]" % ", ".join(rust_str(s) for s in items)


def emit_meta(m, indent, out):
    pad = "    " * indent
    p1 = pad + "    "
    out.append(pad + "CommandMeta {")
    out.append(p1 + "name: %s," % rust_str(m.name))
    out.append(p1 + "arity: %d," % m.arity)
    out.append(p1 + "flags: %s," % str_slice(m.flags))
    out.append(p1 + "first_key: %d," % m.first_key)
    out.append(p1 + "last_key: %d," % m.last_key)
    out.append(p1 + "key_step: %d," % m.key_step)
    out.append(p1 + "acl_categories: %s," % str_slice(m.acl_categories))
    out.append(p1 + "tips: %s," % str_slice(m.tips))
    emit_doc(m.info, indent + 1, "info: ", ",", out)
    emit_doc(m.docs, indent + 1, "docs: ", ",", out)
    if m.subcommands:
        out.append(p1 + "subcommands: &[")
        for s in m.subcommands:
            emit_meta(s, indent + 2, out)
        out.append(p1 + "],")
    else:
        out.append(p1 + "subcommands: &[],")
    out.append(pad + "},")


def render(metas):
    out = [
        "// @generated by tools/gen_commands.py from redis-server %s -- DO NOT EDIT." % EXPECTED_VERSION,
        "// Edit tools/commands.txt and re-run `python3 tools/gen_commands.py` instead.",
        "//",
        "// One entry per command of tools/commands.txt, sorted by name; subcommands sorted",
        "// by name. Inside `info`/`docs` the order of Redis's replies is kept as is.",
        "",
        "use super::doc::{CommandMeta, Doc};",
        "",
        "/// Number of top-level commands in [`COMMANDS`].",
        "pub const COMMAND_COUNT: usize = %d;" % len(metas),
        "",
        "#[rustfmt::skip]",
        "pub static COMMANDS: &[CommandMeta] = &[",
    ]
    for m in metas:
        emit_meta(m, 1, out)
    out.append("];")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-server", default=os.environ.get("REDIS_SERVER", "/usr/bin/redis-server"))
    ap.add_argument("--commands", default=DEFAULT_LIST)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    names = read_command_list(args.commands)
    server = Server(args.redis_server)
    try:
        port = server.start()
        metas = capture(port, names)
    finally:
        server.stop()

    text = render(metas)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", newline="\n") as f:
        f.write(text)
    os.replace(tmp, args.out)
    nsubs = sum(len(m.subcommands) for m in metas)
    print("wrote %s: %d commands, %d subcommands" % (args.out, len(metas), nsubs), file=sys.stderr)


if __name__ == "__main__":
    main()
