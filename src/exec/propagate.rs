//! What a command propagates (the AOF's records): its arguments verbatim,
//! or the rewrite Redis makes so that replaying it later gives the same data
//! (relative expiries become absolute, results of randomness or of
//! floating-point arithmetic become plain writes, blocking forms become their
//! non-blocking ones). The rewrites read the command's own reply where Redis
//! reads its result. The stream itself is `runtime::propagate`.

use crate::commands::table::Command;
use crate::protocol::Args;
use crate::runtime::propagate;

thread_local! {
    /// Set by `exec::execute_top` for the `execute` it calls: the shard's
    /// `dirty` before the command (taken at once, so nested calls see none).
    pub static TOP: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Records a command that ran at top level on this shard (inline, or in a
/// forwarded batch) if it changed data (`dirty` moved, as Redis's call()).
#[inline]
pub fn record_top(cmd: &Command, args: &Args, db: usize, now: u64, reply: &[u8], dirtied: bool) {
    // What the handler propagates instead of itself goes out even when it
    // changed no `dirty` (alsoPropagate is independent of it in Redis).
    if let Some(cmds) = propagate::take_also(args.get(0).as_ptr()) {
        return put_all(db, cmds, propagate::record);
    }
    if dirtied {
        record(cmd, args, db, now, reply, propagate::record);
    }
}

fn put_all(db: usize, cmds: Vec<Vec<Vec<u8>>>, mut put: impl FnMut(usize, &[&[u8]])) {
    for c in cmds {
        let v: Vec<&[u8]> = c.iter().map(|a| &a[..]).collect();
        put(db, &v);
    }
}

/// The total of the shard's `dirty` counters (Redis's server.dirty).
#[inline]
pub fn dirty(s: &crate::runtime::Shard) -> u64 {
    s.dbs.iter().map(|d| d.hook.dirty).sum()
}

/// Whether a reply is a success (coordinators that cannot see `dirty`
/// propagate a write command unless it failed).
pub fn succeeded(reply: &[u8]) -> bool {
    reply.first() != Some(&b'-')
}

/// Hands the command's propagated form to `put` (zero or more commands).
pub fn record(cmd: &Command, args: &Args, db: usize, now: u64, reply: &[u8], mut put: impl FnMut(usize, &[&[u8]])) {
    if let Some(cmds) = propagate::take_also(args.get(0).as_ptr()) {
        return put_all(db, cmds, put);
    }
    if !REWRITTEN.contains(&cmd.meta.name) {
        // Verbatim (most writes): no allocation for up to 16 arguments.
        let n = args.len();
        if n <= 16 {
            let mut argv: [&[u8]; 16] = [&[]; 16];
            for (i, a) in argv.iter_mut().enumerate().take(n) {
                *a = args.get(i);
            }
            return put(db, &argv[..n]);
        }
    }
    let argv: Vec<&[u8]> = (0..args.len()).map(|i| args.get(i)).collect();
    match rewrite(cmd.meta.name, &argv, now, reply) {
        Some(cmds) => {
            for c in cmds {
                let v: Vec<&[u8]> = c.iter().map(|a| &a[..]).collect();
                put(db, &v);
            }
        }
        None => put(db, &argv),
    }
}

fn num(v: &[u8]) -> Option<i64> {
    crate::util::num::string2ll(v)
}

/// SET's and GETEX's expiry options: (ms per unit, absolute).
fn expire_unit(o: &[u8]) -> Option<(i64, bool)> {
    if ci(o, "ex") {
        Some((1000, false))
    } else if ci(o, "px") {
        Some((1, false))
    } else if ci(o, "exat") {
        Some((1000, true))
    } else if ci(o, "pxat") {
        Some((1, true))
    } else {
        None
    }
}

fn ci(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// The payload of a bulk-string reply (`$n\r\n...\r\n`).
fn bulk_of(reply: &[u8]) -> Option<Vec<u8>> {
    let rest = reply.strip_prefix(b"$")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let n: usize = std::str::from_utf8(&rest[..nl.checked_sub(1)?]).ok()?.parse().ok()?;
    rest.get(nl + 1..nl + 1 + n).map(|b| b.to_vec())
}

fn del_verb() -> Vec<u8> {
    if crate::keyspace::lazyfree::LAZY_EXPIRE.load(std::sync::atomic::Ordering::Relaxed) {
        b"UNLINK".to_vec()
    } else {
        b"DEL".to_vec()
    }
}

/// The bulk strings of a (possibly nested) reply, in order.
fn bulks(mut r: &[u8], out: &mut Vec<Vec<u8>>) -> Option<()> {
    fn one<'a>(r: &'a [u8], out: &mut Vec<Vec<u8>>) -> Option<&'a [u8]> {
        let nl = memchr::memchr(b'\n', r)?;
        let head = &r[1..nl.checked_sub(1)?];
        let rest = &r[nl + 1..];
        match r.first()? {
            b'$' => {
                let n = num(head)?;
                if n < 0 {
                    return Some(rest);
                }
                let n = n as usize;
                out.push(rest.get(..n)?.to_vec());
                rest.get(n + 2..)
            }
            b'*' | b'~' | b'>' => {
                let n = num(head)?.max(0);
                let mut rest = rest;
                for _ in 0..n {
                    rest = one(rest, out)?;
                }
                Some(rest)
            }
            b'%' => {
                let n = num(head)?.max(0);
                let mut rest = rest;
                for _ in 0..2 * n {
                    rest = one(rest, out)?;
                }
                Some(rest)
            }
            b',' | b':' | b'+' => {
                out.push(head.to_vec());
                Some(rest)
            }
            _ => Some(rest),
        }
    }
    while !r.is_empty() {
        r = one(r, out)?;
    }
    Some(())
}

type Cmds = Vec<Vec<Vec<u8>>>;

/// The commands [`rewrite`] may change.
const REWRITTEN: &[&str] = &[
    "set",
    "setex",
    "psetex",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "getex",
    "incrbyfloat",
    "hincrbyfloat",
    "spop",
    "xadd",
    "blpop",
    "brpop",
    "bzpopmin",
    "bzpopmax",
    "brpoplpush",
    "blmove",
    "blmpop",
    "bzmpop",
];

/// Redis's rewrites (None: propagate verbatim).
fn rewrite(name: &str, a: &[&[u8]], now: u64, reply: &[u8]) -> Option<Cmds> {
    let v = |s: &[u8]| s.to_vec();
    let abs_expire = |unit_ms: i64, absolute: bool, t: i64| -> i64 {
        let ms = t.saturating_mul(unit_ms);
        if absolute {
            ms
        } else {
            ms.saturating_add(now as i64)
        }
    };
    match name {
        // SET with EX/PX/EXAT/PXAT: SET key value PXAT <ms> (setGenericCommand).
        "set" => {
            let mut at = None;
            let mut i = 3;
            while i < a.len() {
                let o = a[i];
                let unit = expire_unit(o);
                if let (Some((u, abs)), Some(t)) = (unit, a.get(i + 1).and_then(|t| num(t))) {
                    at = Some(abs_expire(u, abs, t));
                    i += 1;
                }
                i += 1;
            }
            let at = at?;
            Some(vec![vec![v(b"SET"), v(a[1]), v(a[2]), v(b"PXAT"), at.to_string().into_bytes()]])
        }
        "setex" | "psetex" => {
            let u = if name == "setex" { 1000 } else { 1 };
            let at = abs_expire(u, false, num(a[2])?);
            Some(vec![vec![v(b"SET"), v(a[1]), v(a[3]), v(b"PXAT"), at.to_string().into_bytes()]])
        }
        // The EXPIRE family: PEXPIREAT with the absolute time, or a deletion
        // when that time has passed (expireGenericCommand).
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let (u, abs) = match name {
                "expire" => (1000, false),
                "pexpire" => (1, false),
                "expireat" => (1000, true),
                _ => (1, true),
            };
            let at = abs_expire(u, abs, num(a[2])?);
            if at <= now as i64 {
                return Some(vec![vec![del_verb(), v(a[1])]]);
            }
            let mut c = vec![v(b"PEXPIREAT"), v(a[1]), at.to_string().into_bytes()];
            c.extend(a[3..].iter().map(|x| v(x)));
            Some(vec![c])
        }
        // GETEX: PEXPIREAT, PERSIST or a deletion, never itself.
        "getex" => {
            let mut i = 2;
            while i < a.len() {
                let o = a[i];
                if ci(o, "persist") {
                    return Some(vec![vec![v(b"PERSIST"), v(a[1])]]);
                }
                let unit = expire_unit(o);
                if let (Some((u, abs)), Some(t)) = (unit, a.get(i + 1).and_then(|t| num(t))) {
                    let at = abs_expire(u, abs, t);
                    if at <= now as i64 {
                        return Some(vec![vec![del_verb(), v(a[1])]]);
                    }
                    return Some(vec![vec![v(b"PEXPIREAT"), v(a[1]), at.to_string().into_bytes()]]);
                }
                i += 1;
            }
            None
        }
        // Floating point results propagate as the value they produced.
        "incrbyfloat" => {
            let mut r = Vec::new();
            bulks(reply, &mut r)?;
            Some(vec![vec![v(b"SET"), v(a[1]), r.pop()?, v(b"KEEPTTL")]])
        }
        "hincrbyfloat" => {
            let mut r = Vec::new();
            bulks(reply, &mut r)?;
            Some(vec![vec![v(b"HSET"), v(a[1]), v(a[2]), r.pop()?]])
        }
        // SPOP: the members it popped, as SREM.
        // XADD with `*` or `ms-*` where its handler's own record is not at
        // hand (a coordinator's): the ID from its reply.
        "xadd" => {
            let id = bulk_of(reply)?;
            let mut i = 2;
            while i < a.len() {
                let o = a[i];
                if ci(o, "maxlen") || ci(o, "minid") {
                    i += if a.get(i + 1).is_some_and(|n| *n == b"~" || *n == b"=") { 3 } else { 2 };
                } else if ci(o, "limit") {
                    i += 2;
                } else if ci(o, "nomkstream") {
                    i += 1;
                } else {
                    break;
                }
            }
            let pos = i;
            if pos >= a.len() || !(a[pos] == b"*" || a[pos].ends_with(b"-*")) {
                return None;
            }
            let mut c: Vec<Vec<u8>> = a.iter().map(|x| v(x)).collect();
            c[pos] = id;
            Some(vec![c])
        }
        "spop" => {
            let mut r = Vec::new();
            bulks(reply, &mut r)?;
            if r.is_empty() {
                return Some(Vec::new());
            }
            let mut c = vec![v(b"SREM"), v(a[1])];
            c.extend(r);
            Some(vec![c])
        }
        // Blocking forms served at once: their non-blocking forms.
        "blpop" | "brpop" => {
            let mut r = Vec::new();
            bulks(reply, &mut r)?;
            let key = r.first()?.clone();
            Some(vec![vec![v(if name == "blpop" { b"LPOP" } else { b"RPOP" }), key]])
        }
        "bzpopmin" | "bzpopmax" => {
            let mut r = Vec::new();
            bulks(reply, &mut r)?;
            let key = r.first()?.clone();
            Some(vec![vec![v(if name == "bzpopmin" { b"ZPOPMIN" } else { b"ZPOPMAX" }), key]])
        }
        "brpoplpush" => Some(vec![vec![v(b"RPOPLPUSH"), v(a[1]), v(a[2])]]),
        "blmove" => Some(vec![vec![v(b"LMOVE"), v(a[1]), v(a[2]), v(a[3]), v(a[4])]]),
        "blmpop" | "bzmpop" => {
            // Reply: [key, [elements...]] (zsets: [member, score] pairs).
            let mut r = Vec::new();
            bulks(reply, &mut r)?;
            let key = r.first()?.clone();
            let n = if name == "bzmpop" { (r.len() - 1) / 2 } else { r.len() - 1 };
            let numkeys = num(a[2])? as usize;
            let dir = a.get(3 + numkeys)?;
            let verb: &[u8] = match (name, ci(dir, "left") || ci(dir, "min")) {
                ("blmpop", true) => b"LPOP",
                ("blmpop", false) => b"RPOP",
                (_, true) => b"ZPOPMIN",
                (_, false) => b"ZPOPMAX",
            };
            Some(vec![vec![v(verb), key, n.to_string().into_bytes()]])
        }
        _ => None,
    }
}

/// EXEC's propagated block: each queued write command that succeeded (its
/// rewrite), in queue order, with the database SELECT gave it; `replies`
/// holds the queue's replies back to back. Wrapped in MULTI/EXEC when it
/// holds more than one command (Redis's propagatePendingCommands).
pub fn exec_block<'a>(mut db: usize, now: u64, cmds: impl Iterator<Item = (&'static Command, Args<'a>)>, mut replies: &[u8]) -> propagate::Log {
    let mut log = propagate::Log::default();
    for (cmd, args) in cmds {
        let len = crate::protocol::frame_len(replies).unwrap_or(replies.len());
        let reply = &replies[..len];
        replies = &replies[len..];
        if cmd.meta.name == "select" && succeeded(reply) {
            if let Some(d) = num(args.get(1)) {
                db = d as usize;
            }
            continue;
        }
        if cmd.has(crate::commands::table::flags::WRITE) && succeeded(reply) {
            record(cmd, &args, db, now, reply, |d, v| log.push(d, v));
        }
    }
    if log.cmds > 1 {
        log.wrapped()
    } else {
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(c: &Cmds) -> Vec<String> {
        c.iter()
            .map(|x| x.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn xadd_without_its_handlers_record_takes_the_id_from_its_reply() {
        let r = b"$15\r\n1700000000000-3\r\n";
        assert_eq!(
            s(&rewrite("xadd", &[b"XADD", b"s", b"MAXLEN", b"=", b"5", b"*", b"f", b"v"], 0, r).unwrap()),
            ["XADD s MAXLEN = 5 1700000000000-3 f v"]
        );
        assert_eq!(
            s(&rewrite("xadd", &[b"XADD", b"s", b"NOMKSTREAM", b"1700000000000-*", b"f", b"v"], 0, r).unwrap()),
            ["XADD s NOMKSTREAM 1700000000000-3 f v"]
        );
        // An explicit ID, or a null reply (NOMKSTREAM on a missing key): as it was.
        assert!(rewrite("xadd", &[b"XADD", b"s", b"1-1", b"f", b"v"], 0, b"$3\r\n1-1\r\n").is_none());
        assert!(rewrite("xadd", &[b"XADD", b"s", b"*", b"f", b"v"], 0, b"$-1\r\n").is_none());
    }

    #[test]
    fn relative_expiries_become_absolute_as_redis_propagates_them() {
        let now = 1_000_000;
        assert_eq!(
            s(&rewrite("set", &[b"set", b"k", b"v", b"EX", b"10"], now, b"+OK\r\n").unwrap()),
            ["SET k v PXAT 1010000"]
        );
        assert_eq!(
            s(&rewrite("setex", &[b"setex", b"k", b"5", b"v"], now, b"+OK\r\n").unwrap()),
            ["SET k v PXAT 1005000"]
        );
        assert_eq!(
            s(&rewrite("expire", &[b"expire", b"k", b"10", b"NX"], now, b":1\r\n").unwrap()),
            ["PEXPIREAT k 1010000 NX"]
        );
        assert_eq!(s(&rewrite("expire", &[b"expire", b"k", b"-1"], now, b":1\r\n").unwrap()), ["DEL k"]);
        assert!(rewrite("set", &[b"set", b"k", b"v"], now, b"+OK\r\n").is_none());
        assert_eq!(s(&rewrite("getex", &[b"getex", b"k", b"persist"], now, b"$1\r\nv\r\n").unwrap()), ["PERSIST k"]);
    }

    #[test]
    fn results_replace_randomness_and_floats() {
        assert_eq!(
            s(&rewrite("incrbyfloat", &[b"incrbyfloat", b"k", b"0.1"], 0, b"$3\r\n1.1\r\n").unwrap()),
            ["SET k 1.1 KEEPTTL"]
        );
        assert_eq!(
            s(&rewrite("spop", &[b"spop", b"s", b"2"], 0, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n").unwrap()),
            ["SREM s a b"]
        );
        assert_eq!(
            s(&rewrite("blpop", &[b"blpop", b"a", b"b", b"0"], 0, b"*2\r\n$1\r\nb\r\n$1\r\nx\r\n").unwrap()),
            ["LPOP b"]
        );
        assert_eq!(
            s(&rewrite(
                "blmpop",
                &[b"blmpop", b"0", b"1", b"l", b"RIGHT", b"COUNT", b"5"],
                0,
                b"*2\r\n$1\r\nl\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
            )
            .unwrap()),
            ["RPOP l 2"]
        );
    }
}
