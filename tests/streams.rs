//! The streams family against a real redis-server 7.0.15 (Tessera at 2
//! shards, keys on both shards, RESP2 then RESP3), byte for byte: every
//! command with valid and invalid arguments, deterministic explicit IDs.
//!
//! One named rule masks what legitimately differs between two servers run
//! side by side (`Mask::Times`): unix-ms timestamps (`*` IDs are not used;
//! NACK delivery times, consumer seen-times) and the idle figures derived
//! from them (XPENDING's idle, XINFO CONSUMERS' idle) are zeroed before
//! comparing. Everything else (IDs, counters, lag, entries-read, node counts
//! of XINFO STREAM, PEL contents) must be identical.
//!
//! Every stream command also changes `server.dirty` (rdb_changes_since_last_save)
//! and the keyspace hit / miss counters by what Redis's changes them.
//!
//! Also: XREAD over streams on both shards, blocking XREAD / XREADGROUP woken
//! from the other shard, the NOGROUP / UNBLOCKED endings, several consumers
//! of one group getting each entry exactly once (2 and 4 shards), DUMP /
//! RESTORE both ways with identical XINFO STREAM FULL, XRANGE and XPENDING,
//! and the keyspace events of every stream command.

mod common;

use common::*;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq)]
enum Mask {
    None,
    /// Zero unix-ms timestamps and idle times (see the module doc).
    Times,
}

fn mask(v: &Value) -> Value {
    const TS: i64 = 1_000_000_000_000;
    fn arr(items: &[Value]) -> Vec<Value> {
        let mut out: Vec<Value> = items.iter().map(mask).collect();
        // XPENDING's extended entries: [id, consumer, idle, count].
        if out.len() == 4 && matches!((&out[0], &out[1], &out[2], &out[3]), (Value::Bulk(a), Value::Bulk(_), Value::Int(_), Value::Int(_)) if a.contains(&b'-'))
        {
            out[2] = Value::Int(0);
        }
        // "idle" followed by its figure (RESP2 flat maps).
        for i in 0..out.len().saturating_sub(1) {
            if out[i] == Value::Bulk(b"idle".to_vec()) {
                out[i + 1] = Value::Int(0);
            }
        }
        out
    }
    match v {
        Value::Int(n) if *n > TS => Value::Int(0),
        Value::Array(a) => Value::Array(arr(a)),
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, x)| {
                    let x = if *k == Value::Bulk(b"idle".to_vec()) { Value::Int(0) } else { mask(x) };
                    (mask(k), x)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// rdb_changes_since_last_save (server.dirty), keyspace_hits, keyspace_misses.
fn counters(c: &mut Client) -> [i64; 3] {
    let i = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
    let j = String::from_utf8_lossy(&c.cmd(&["INFO", "stats"])).into_owned();
    let n = |s: &str, f: &str| info_field(s, f).and_then(|v| v.parse().ok()).unwrap_or(-1);
    [n(&i, "rdb_changes_since_last_save"), n(&j, "keyspace_hits"), n(&j, "keyspace_misses")]
}

struct Pair {
    t: Client,
    r: Client,
}

impl Pair {
    fn new(ts: &TesseraServer, rs: &RedisServer, proto: &str) -> Pair {
        let mut p = Pair {
            t: ts.client(),
            r: rs.client(),
        };
        p.t.cmd(&["HELLO", proto]);
        p.r.cmd(&["HELLO", proto]);
        p
    }

    fn cmp(&mut self, args: &[&str], m: Mask) -> Vec<u8> {
        // A stream command changes Redis's counters as Redis does.
        let stream_cmd = args[0].starts_with(['X', 'x']);
        let before = stream_cmd.then(|| (counters(&mut self.t), counters(&mut self.r)));
        let t = self.t.cmd(args);
        let r = self.r.cmd(args);
        if let Some((t0, r0)) = before {
            let (t1, r1) = (counters(&mut self.t), counters(&mut self.r));
            let d = |a: [i64; 3], b: [i64; 3]| [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            assert_eq!(d(t0, t1), d(r0, r1), "[dirty, keyspace_hits, keyspace_misses] of {:?}", args);
        }
        if m == Mask::Times {
            let (tv, rv) = (mask(&Value::parse(&t)), mask(&Value::parse(&r)));
            assert_eq!(escape(&tv.encode()), escape(&rv.encode()), "reply of {:?} (times masked)", args);
        } else {
            assert_eq!(escape(&t), escape(&r), "reply of {:?}", args);
        }
        t
    }

    fn same(&mut self, args: &[&str]) -> Vec<u8> {
        self.cmp(args, Mask::None)
    }

    fn masked(&mut self, args: &[&str]) -> Vec<u8> {
        self.cmp(args, Mask::Times)
    }

    fn both(&mut self, args: &[&str]) {
        self.t.cmd(args);
        self.r.cmd(args);
    }
}

fn escape(b: &[u8]) -> String {
    let s: String = b.iter().flat_map(|c| std::ascii::escape_default(*c)).map(|c| c as char).collect();
    if s.len() > 1500 {
        format!("{}...({} bytes)", &s[..1500], b.len())
    } else {
        s
    }
}

/// A key with `prefix` on each of the shards.
fn keys_on(prefix: &str, shards: usize) -> Vec<String> {
    let mut k: Vec<Option<String>> = vec![None; shards];
    for i in 0.. {
        let key = format!("{prefix}:{i}");
        let s = local_shard_of(key.as_bytes(), shards);
        if k[s].is_none() {
            k[s] = Some(key);
        }
        if k.iter().all(|x| x.is_some()) {
            break;
        }
    }
    k.into_iter().map(|x| x.unwrap()).collect()
}

fn start() -> (TesseraServer, RedisServer) {
    (TesseraServer::start(2, &[]), RedisServer::start(&[]))
}

#[test]
fn stream_commands_match_redis_resp2_resp3() {
    let (ts, rs) = start();
    for proto in ["2", "3"] {
        let mut p = Pair::new(&ts, &rs, proto);
        let ks = keys_on(&format!("p{proto}:s"), 2);
        for k in &ks {
            let k = k.as_str();
            // XADD: explicit, partial (ms-*), options, errors.
            p.same(&["XADD", k, "1-1", "a", "1", "b", "2"]);
            p.same(&["XADD", k, "1-*", "a", "3", "b", "4"]);
            p.same(&["XADD", k, "2", "a", "5", "b", "6"]);
            p.same(&["XADD", k, "2-*", "x", "long value here", "b", "-17"]);
            p.same(&["XADD", k, "1", "a", "1"]);
            p.same(&["XADD", k, "2-1", "a", "1"]);
            p.same(&["XADD", k, "0-0", "a", "1"]);
            p.same(&["XADD", k, "0-*", "a", "1"]);
            p.same(&["XADD", k, "3-0", "a"]);
            p.same(&["XADD", k, "3-0"]);
            p.same(&["XADD", k, "abc", "a", "1"]);
            p.same(&["XADD", k, "3-x", "a", "1"]);
            p.same(&["XADD", k, "-", "a", "1"]);
            p.same(&["XADD", k, "+", "a", "1"]);
            p.same(&["XADD", k, "MAXLEN", "-1", "3-0", "a", "1"]);
            p.same(&["XADD", k, "MAXLEN", "x", "3-0", "a", "1"]);
            p.same(&["XADD", k, "MAXLEN", "10", "MINID", "1", "3-0", "a", "1"]);
            p.same(&["XADD", k, "LIMIT", "10", "3-0", "a", "1"]);
            p.same(&["XADD", k, "MAXLEN", "10", "LIMIT", "10", "3-0", "a", "1"]);
            p.same(&["XADD", k, "MAXLEN", "~", "10", "LIMIT", "-1", "3-0", "a", "1"]);
            p.same(&["XADD", k, "MINID", "abc", "3-0", "a", "1"]);
            p.same(&["XADD", k, "NOMKSTREAM", "MAXLEN", "=", "100", "3-0", "a", "1"]);
            p.same(&["XADD", k, "MAXLEN", "~", "100", "LIMIT", "5", "3-5", "z", "1"]);
            p.same(&["XADD", "nomk:none", "NOMKSTREAM", "1-1", "a", "1"]);
            p.same(&["EXISTS", "nomk:none"]);
            for i in 10..40 {
                let id = format!("{i}-0");
                if i % 4 == 0 {
                    p.same(&["XADD", k, &id, "a", &i.to_string(), "other", "field"]);
                } else {
                    p.same(&["XADD", k, &id, "a", &i.to_string(), "b", "x"]);
                }
            }
            p.same(&["XLEN", k]);
            // XRANGE / XREVRANGE.
            p.same(&["XRANGE", k, "-", "+"]);
            p.same(&["XRANGE", k, "-", "+", "COUNT", "3"]);
            p.same(&["XRANGE", k, "(1-1", "+", "COUNT", "2"]);
            p.same(&["XRANGE", k, "2", "2"]);
            p.same(&["XRANGE", k, "(2-0", "(12-0"]);
            p.same(&["XRANGE", k, "-", "+", "COUNT", "0"]);
            p.same(&["XRANGE", k, "-", "+", "COUNT", "-5"]);
            p.same(&["XRANGE", k, "-", "+", "COUNT"]);
            p.same(&["XRANGE", k, "-", "+", "COUNT", "x"]);
            p.same(&["XRANGE", k, "-", "+", "LIMIT", "1"]);
            p.same(&["XRANGE", k, "(-", "+"]);
            p.same(&["XRANGE", k, "(18446744073709551615-18446744073709551615", "+"]);
            p.same(&["XRANGE", k, "-", "(0-0"]);
            p.same(&["XRANGE", k, "x", "+"]);
            p.same(&["XRANGE", k, "20", "10"]);
            p.same(&["XREVRANGE", k, "+", "-"]);
            p.same(&["XREVRANGE", k, "+", "-", "COUNT", "4"]);
            p.same(&["XREVRANGE", k, "(30-0", "(10", "COUNT", "4"]);
            p.same(&["XREVRANGE", k, "15", "15"]);
            p.same(&["XRANGE", "missing", "-", "+"]);
            p.same(&["XREVRANGE", "missing", "+", "-"]);
            // XDEL, XINFO STREAM's counters and first entry.
            p.same(&["XDEL", k, "1-1", "12-0", "999-0"]);
            p.same(&["XDEL", k, "1-1"]);
            p.same(&["XDEL", k, "bad"]);
            p.same(&["XDEL", "missing", "1-1"]);
            p.same(&["XINFO", "STREAM", k]);
            p.same(&["XINFO", "STREAM", k, "FULL"]);
            p.same(&["XINFO", "STREAM", k, "FULL", "COUNT", "3"]);
            p.same(&["XINFO", "STREAM", k, "FULL", "COUNT", "0"]);
            p.same(&["XINFO", "STREAM", k, "FULL", "COUNT", "x"]);
            p.same(&["XINFO", "STREAM", k, "FULL", "COUNTS", "3"]);
            p.same(&["XINFO", "STREAM", k, "PARTIAL"]);
            p.same(&["XINFO", "STREAM", "missing"]);
            p.same(&["XINFO", "HELP"]);
            p.same(&["XINFO", "HELP", "x"]);
            p.same(&["XINFO", "NOPE", k]);
            // XTRIM exact and approximate (node boundaries), MINID.
            p.same(&["XTRIM", k, "MAXLEN", "30"]);
            p.same(&["XTRIM", k, "MAXLEN", "~", "5"]);
            p.same(&["XTRIM", k, "MINID", "=", "15"]);
            p.same(&["XTRIM", k, "MINID", "~", "15", "LIMIT", "0"]);
            p.same(&["XTRIM", k]);
            p.same(&["XTRIM", k, "LIMIT", "5"]);
            p.same(&["XTRIM", k, "MAXLEN", "5", "LIMIT", "5"]);
            p.same(&["XTRIM", k, "FOO", "5"]);
            p.same(&["XTRIM", "missing", "MAXLEN", "0"]);
            p.same(&["XINFO", "STREAM", k]);
            // XSETID.
            p.same(&["XSETID", k, "1-0"]);
            p.same(&["XSETID", k, "100-0", "ENTRIESADDED", "1"]);
            p.same(&["XSETID", k, "100-0", "ENTRIESADDED", "-1"]);
            p.same(&["XSETID", k, "100-0", "MAXDELETEDID", "200-0"]);
            p.same(&["XSETID", k, "100-0", "ENTRIESADDED", "1000", "MAXDELETEDID", "50-0"]);
            p.same(&["XSETID", k, "100-0", "BOGUS", "1"]);
            p.same(&["XSETID", k, "+"]);
            p.same(&["XSETID", "missing", "1-0"]);
            p.same(&["XINFO", "STREAM", k]);
            let full = format!("{k}:full");
            p.same(&["XADD", &full, "18446744073709551615-18446744073709551614", "a", "1"]);
            p.same(&["XADD", &full, "18446744073709551615-*", "a", "1"]);
            p.same(&["XADD", &full, "18446744073709551615-*", "a", "1"]);
            p.same(&["XADD", &full, "*", "a", "1"]);
            p.same(&["XREAD", "STREAMS", &full, "18446744073709551615-18446744073709551614"]);
            p.same(&["XADD", &format!("{k}:big"), "1-0", "f", &"x".repeat(5000), "g", &"y".repeat(70)]);
            p.same(&["XRANGE", &format!("{k}:big"), "-", "+"]);
            // Wrong types.
            p.same(&["SET", "str", "x"]);
            for c in [
                vec!["XADD", "str", "1-1", "a", "b"],
                vec!["XLEN", "str"],
                vec!["XRANGE", "str", "-", "+"],
                vec!["XDEL", "str", "1-1"],
                vec!["XTRIM", "str", "MAXLEN", "1"],
                vec!["XSETID", "str", "1-1"],
                vec!["XINFO", "STREAM", "str"],
                vec!["XGROUP", "CREATE", "str", "g", "0"],
                vec!["XACK", "str", "g", "1-1"],
                vec!["XPENDING", "str", "g"],
                vec!["XCLAIM", "str", "g", "c", "0", "1-1"],
                vec!["XAUTOCLAIM", "str", "g", "c", "0", "0"],
                vec!["XREAD", "STREAMS", "str", "0"],
                vec!["XREADGROUP", "GROUP", "g", "c", "STREAMS", "str", ">"],
            ] {
                p.same(&c);
            }
            p.same(&["TYPE", k]);
            p.same(&["OBJECT", "ENCODING", k]);
        }
        p.same(&["DEL", "str"]);
    }
}

#[test]
fn consumer_groups_match_redis_resp2_resp3() {
    let (ts, rs) = start();
    for proto in ["2", "3"] {
        let mut p = Pair::new(&ts, &rs, proto);
        for k in keys_on(&format!("g{proto}:s"), 2) {
            let k = k.as_str();
            for i in 1..=12 {
                p.same(&["XADD", k, &format!("{i}-0"), "f", &i.to_string()]);
            }
            // XGROUP CREATE / SETID / DESTROY / CREATECONSUMER / DELCONSUMER.
            p.same(&["XGROUP", "CREATE", k, "g1", "0"]);
            p.same(&["XGROUP", "CREATE", k, "g1", "0"]);
            p.same(&["XGROUP", "CREATE", k, "g2", "$"]);
            p.same(&["XGROUP", "CREATE", k, "g3", "5-0", "ENTRIESREAD", "5"]);
            p.same(&["XGROUP", "CREATE", k, "g4", "0", "ENTRIESREAD", "-2"]);
            p.same(&["XGROUP", "CREATE", k, "g4", "0", "ENTRIESREAD", "x"]);
            p.same(&["XGROUP", "CREATE", k, "g4", "0", "BOGUS"]);
            p.same(&["XGROUP", "CREATE", k, "g4", "+"]);
            p.same(&["XGROUP", "CREATE", k, "g4", "bad"]);
            p.same(&["XGROUP", "CREATE", "nokey", "g", "0"]);
            p.same(&["XGROUP", "CREATE", &format!("{k}:mk"), "g", "$", "MKSTREAM"]);
            p.same(&["XINFO", "STREAM", &format!("{k}:mk")]);
            p.same(&["XGROUP", "SETID", k, "nogroup", "0"]);
            p.same(&["XGROUP", "SETID", k, "g3", "6", "ENTRIESREAD", "6"]);
            p.same(&["XGROUP", "SETID", k, "g3", "6", "ENTRIESREAD"]);
            p.same(&["XGROUP", "SETID", k, "g3", "-"]);
            p.same(&["XGROUP", "CREATECONSUMER", k, "g1", "alice"]);
            p.same(&["XGROUP", "CREATECONSUMER", k, "g1", "alice"]);
            p.same(&["XGROUP", "CREATECONSUMER", k, "nog", "alice"]);
            p.same(&["XGROUP", "DELCONSUMER", k, "g1", "nobody"]);
            p.same(&["XGROUP", "DESTROY", k, "g2"]);
            p.same(&["XGROUP", "DESTROY", k, "g2"]);
            p.same(&["XGROUP", "DESTROY", "nokey", "g2"]);
            p.same(&["XGROUP", "HELP"]);
            p.same(&["XGROUP", "NOPE", k]);
            p.same(&["XINFO", "GROUPS", k]);
            // XREADGROUP: new entries, history, NOACK, errors.
            p.same(&["XREADGROUP", "GROUP", "g1", "alice", "COUNT", "3", "STREAMS", k, ">"]);
            p.same(&["XREADGROUP", "GROUP", "g1", "bob", "COUNT", "2", "STREAMS", k, ">"]);
            p.same(&["XREADGROUP", "GROUP", "g1", "alice", "STREAMS", k, "0"]);
            p.same(&["XREADGROUP", "GROUP", "g1", "alice", "COUNT", "1", "STREAMS", k, "1-0"]);
            p.same(&["XREADGROUP", "GROUP", "g1", "carol", "NOACK", "COUNT", "2", "STREAMS", k, ">"]);
            p.same(&["XREADGROUP", "GROUP", "g1", "alice", "STREAMS", k, "$"]);
            p.same(&["XREADGROUP", "GROUP", "nog", "alice", "STREAMS", k, ">"]);
            p.same(&["XREADGROUP", "GROUP", "g1", "alice", "STREAMS", k]);
            p.same(&["XREADGROUP", "STREAMS", k, ">"]);
            p.same(&["XREADGROUP", "GROUP", "g1", "alice", "STREAMS", k, "x"]);
            p.same(&["XREAD", "GROUP", "g1", "alice", "STREAMS", k, ">"]);
            p.same(&["XREAD", "NOACK", "STREAMS", k, ">"]);
            p.same(&["XREAD", "STREAMS", k, ">"]);
            p.same(&["XINFO", "GROUPS", k]);
            p.masked(&["XINFO", "CONSUMERS", k, "g1"]);
            p.same(&["XINFO", "CONSUMERS", k, "nog"]);
            p.masked(&["XINFO", "STREAM", k, "FULL"]);
            // XPENDING summary and extended.
            p.same(&["XPENDING", k, "g1"]);
            p.masked(&["XPENDING", k, "g1", "-", "+", "10"]);
            p.masked(&["XPENDING", k, "g1", "-", "+", "10", "bob"]);
            p.masked(&["XPENDING", k, "g1", "(1-0", "+", "2"]);
            p.same(&["XPENDING", k, "g1", "-", "+", "10", "nobody"]);
            p.same(&["XPENDING", k, "g1", "IDLE", "100000", "-", "+", "10"]);
            p.same(&["XPENDING", k, "g1", "IDLE", "x", "-", "+", "10"]);
            p.same(&["XPENDING", k, "g1", "IDLE", "10", "-", "+"]);
            p.same(&["XPENDING", k, "g1", "-", "+"]);
            p.same(&["XPENDING", k, "g1", "-", "+", "x"]);
            p.same(&["XPENDING", k, "nog"]);
            p.same(&["XPENDING", "nokey", "g1"]);
            // XACK.
            p.same(&["XACK", k, "g1", "1-0", "2-0", "77-0"]);
            p.same(&["XACK", k, "g1", "1-0", "bad"]);
            p.same(&["XACK", k, "nog", "1-0"]);
            p.same(&["XACK", "nokey", "g1", "1-0"]);
            p.same(&["XPENDING", k, "g1"]);
            // XCLAIM: options, deleted entries, FORCE, LASTID.
            p.masked(&["XCLAIM", k, "g1", "dave", "0", "3-0", "4-0"]);
            p.same(&["XCLAIM", k, "g1", "dave", "0", "3-0", "JUSTID"]);
            p.same(&["XCLAIM", k, "g1", "erin", "3600000", "3-0", "JUSTID"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "5-0", "IDLE", "5000", "RETRYCOUNT", "7", "JUSTID"]);
            p.masked(&["XPENDING", k, "g1", "-", "+", "10"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "10-0", "FORCE", "JUSTID"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "11-0", "FORCE", "RETRYCOUNT", "3", "JUSTID", "LASTID", "11-0"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "999-0", "FORCE", "JUSTID"]);
            p.same(&["XCLAIM", k, "g1", "erin", "x", "5-0"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "5-0", "IDLE", "x"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "5-0", "TIME", "x"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "5-0", "RETRYCOUNT", "x"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "5-0", "LASTID", "x"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "5-0", "WHAT"]);
            p.same(&["XCLAIM", k, "nog", "erin", "0", "5-0"]);
            p.same(&["XDEL", k, "4-0"]);
            p.same(&["XCLAIM", k, "g1", "erin", "0", "4-0", "JUSTID"]);
            p.masked(&["XINFO", "STREAM", k, "FULL"]);
            p.same(&["XINFO", "GROUPS", k]);
            // XAUTOCLAIM: cursor, COUNT, deleted entries.
            p.same(&["XDEL", k, "6-0"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "0", "0", "COUNT", "2", "JUSTID"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "0", "(5-0", "COUNT", "1", "JUSTID"]);
            p.masked(&["XAUTOCLAIM", k, "g1", "frank", "0", "0"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "3600000", "0"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "0", "0", "COUNT", "0"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "0", "0", "COUNT", "x"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "0", "0", "BOGUS"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "x", "0"]);
            p.same(&["XAUTOCLAIM", k, "g1", "frank", "0", "bad"]);
            p.same(&["XAUTOCLAIM", k, "nog", "frank", "0", "0"]);
            p.same(&["XAUTOCLAIM", "nokey", "g1", "frank", "0", "0"]);
            p.masked(&["XPENDING", k, "g1", "-", "+", "100"]);
            p.same(&["XGROUP", "DELCONSUMER", k, "g1", "frank"]);
            p.same(&["XPENDING", k, "g1"]);
            // Lag and entries-read after deletions and trims.
            p.same(&["XADD", k, "20-0", "f", "20"]);
            p.same(&["XINFO", "GROUPS", k]);
            p.same(&["XTRIM", k, "MAXLEN", "3"]);
            p.same(&["XINFO", "GROUPS", k]);
            p.same(&["XGROUP", "SETID", k, "g3", "$"]);
            p.same(&["XINFO", "GROUPS", k]);
            p.masked(&["XINFO", "STREAM", k, "FULL"]);
            // Copies and renames carry everything, to any shard.
            for dst in keys_on(&format!("{k}:copy"), 2) {
                p.same(&["COPY", k, &dst]);
                p.masked(&["XINFO", "STREAM", &dst, "FULL"]);
                p.same(&["RENAME", &dst, &format!("{dst}:renamed")]);
                p.masked(&["XINFO", "STREAM", &format!("{dst}:renamed"), "FULL"]);
            }
        }
        // The lookups count as Redis's (read lookups hit or miss, write lookups do not).
        for f in ["keyspace_hits", "keyspace_misses"] {
            assert_eq!(stat(&mut p.t, f), stat(&mut p.r, f), "{f}");
        }
    }
}

fn stat(c: &mut Client, name: &str) -> Option<String> {
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "stats"])).into_owned();
    info_field(&info, name)
}

/// Node boundaries (stream-node-max-entries / -bytes) decide approximate
/// trims and XINFO's radix-tree figures: both must agree with Redis.
#[test]
fn node_boundaries_and_approximate_trims_match_redis() {
    let (ts, rs) = start();
    let mut p = Pair::new(&ts, &rs, "2");
    for (entries, bytes) in [("100", "4096"), ("7", "4096"), ("0", "300"), ("3", "0")] {
        p.same(&["CONFIG", "SET", "stream-node-max-entries", entries]);
        p.same(&["CONFIG", "SET", "stream-node-max-bytes", bytes]);
        let k = format!("nodes:{entries}:{bytes}");
        for i in 1..=700u64 {
            let v = "v".repeat((i % 23) as usize);
            let id = format!("{}-{}", i * 1000 + (i % 3), i % 5);
            if i % 7 == 0 {
                p.both(&["XADD", &k, &id, "f", &v, "g", &i.to_string(), "extra", "1"]);
            } else {
                p.both(&["XADD", &k, &id, "f", &v, "g", &i.to_string()]);
            }
        }
        p.same(&["XINFO", "STREAM", &k]);
        p.same(&["XDEL", &k, "5000-0", "7001-2", "100000-0"]);
        p.same(&["XTRIM", &k, "MAXLEN", "~", "650"]);
        p.same(&["XTRIM", &k, "MINID", "~", "300000"]);
        p.same(&["XTRIM", &k, "MAXLEN", "~", "10", "LIMIT", "30"]);
        p.same(&["XADD", &k, "MAXLEN", "~", "200", "9999999-0", "f", "x"]);
        p.same(&["XINFO", "STREAM", &k]);
        p.same(&["XRANGE", &k, "-", "+", "COUNT", "50"]);
        p.same(&["XREVRANGE", &k, "+", "-", "COUNT", "50"]);
        p.same(&["DUMP", &k]);
    }
    p.same(&["CONFIG", "SET", "stream-node-max-entries", "100"]);
    p.same(&["CONFIG", "SET", "stream-node-max-bytes", "4096"]);
}

#[test]
fn xread_over_streams_on_both_shards() {
    let (ts, rs) = start();
    for proto in ["2", "3"] {
        let mut p = Pair::new(&ts, &rs, proto);
        let ks = keys_on(&format!("r{proto}"), 2);
        let (a, b) = (ks[0].as_str(), ks[1].as_str());
        p.same(&["XADD", a, "1-0", "x", "1"]);
        p.same(&["XADD", a, "2-0", "x", "2"]);
        p.same(&["XADD", b, "5-0", "y", "5"]);
        p.same(&["XREAD", "STREAMS", a, b, "0", "0"]);
        p.same(&["XREAD", "COUNT", "1", "STREAMS", a, b, "0", "0"]);
        p.same(&["XREAD", "STREAMS", a, b, "1-0", "5-0"]);
        p.same(&["XREAD", "STREAMS", a, b, "2-0", "5-0"]);
        p.same(&["XREAD", "STREAMS", a, b, "$", "$"]);
        p.same(&["XREAD", "STREAMS", a, "missing", "0", "0"]);
        p.same(&["XREAD", "STREAMS", a, b, "0", "bad"]);
        p.same(&["XREAD", "STREAMS", a, b, "0"]);
        p.same(&["XREAD", "COUNT", "x", "STREAMS", a, "0"]);
        p.same(&["XREAD", "BLOCK", "x", "STREAMS", a, "0"]);
        p.same(&["XREAD", "BLOCK", "-1", "STREAMS", a, "0"]);
        p.same(&["XREAD", "BLOCK", "10", "STREAMS", a, b, "$", "$"]);
        p.same(&["XREAD", "BLOCK", "10", "STREAMS", a, b, "0", "$"]);
        p.same(&["XREAD", "FOO", "STREAMS", a, "0"]);
        p.same(&["XREAD", "COUNT", "1"]);
        p.same(&["XGROUP", "CREATE", a, "g", "0"]);
        p.same(&["XGROUP", "CREATE", b, "g", "0"]);
        p.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", a, b, ">", ">"]);
        p.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", a, b, "0", "0"]);
        p.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", a, b, ">", ">"]);
        p.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", a, "missing", ">", ">"]);
        p.same(&["XREADGROUP", "GROUP", "g", "c", "BLOCK", "10", "STREAMS", a, b, ">", ">"]);
        p.same(&["XPENDING", a, "g"]);
        p.same(&["XPENDING", b, "g"]);
        // Scripts may not use BLOCK; without it they read.
        p.same(&["EVAL", "return redis.pcall('XREAD','BLOCK','0','STREAMS',KEYS[1],'$')", "1", a]);
        p.same(&[
            "EVAL",
            "return redis.pcall('xreadgroup','GROUP','g','c','BLOCK','0','STREAMS',KEYS[1],'>')",
            "1",
            a,
        ]);
        p.same(&["EVAL", "return redis.call('XREAD','STREAMS',KEYS[1],'0')", "1", a]);
        // Inside MULTI, BLOCK does not block.
        for c in [&mut p.t, &mut p.r] {
            c.cmd(&["MULTI"]);
            c.cmd(&["XREAD", "BLOCK", "0", "STREAMS", a, b, "$", "$"]);
        }
        p.same(&["EXEC"]);
    }
}

fn read_with_timeout(c: &mut Client, d: Duration) -> Vec<u8> {
    c.set_timeout(d);
    let r = c.read_reply_raw();
    c.set_timeout(IO_TIMEOUT);
    r
}

/// Waits until `n` clients are blocked (INFO clients).
fn wait_blocked(c: &mut Client, n: i64) {
    for _ in 0..400 {
        let info = String::from_utf8_lossy(&c.cmd(&["INFO", "clients"])).into_owned();
        if info_field(&info, "blocked_clients").and_then(|v| v.parse::<i64>().ok()) == Some(n) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never saw {n} blocked clients");
}

#[test]
fn blocking_reads_are_woken_across_shards() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    for proto in ["2", "3"] {
        let ks = keys_on(&format!("b{proto}"), 2);
        let (a, b) = (ks[0].clone(), ks[1].clone());
        let mut replies = Vec::new();
        for srv in [ts.port, rs.port] {
            let mut ctl = Client::connect(srv);
            let mut w = Client::connect(srv);
            w.cmd(&["HELLO", proto]);
            ctl.cmd(&["XADD", &a, "1-0", "f", "v"]);
            // XREAD $ on both shards, woken by an XADD on the second.
            w.send_strs(&["XREAD", "BLOCK", "0", "STREAMS", &a, &b, "$", "$"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["XADD", &b, "7-0", "g", "w"]);
            let r1 = read_with_timeout(&mut w, Duration::from_secs(10));
            // XREADGROUP > woken by an XADD; then its group destroyed; then its key deleted.
            ctl.cmd(&["XGROUP", "CREATE", &b, "grp", "$"]);
            // Without the group on every key it fails at once (NOGROUP), blocking nothing.
            let early = w.cmd(&["XREADGROUP", "GROUP", "grp", "c1", "BLOCK", "0", "STREAMS", &a, &b, ">", ">"]);
            replies.push((r1, Vec::new()));
            ctl.cmd(&["XGROUP", "CREATE", &a, "grp", "$"]);
            w.send_strs(&["XREADGROUP", "GROUP", "grp", "c1", "BLOCK", "0", "STREAMS", &a, &b, ">", ">"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["XADD", &b, "8-0", "g", "x"]);
            let r2 = read_with_timeout(&mut w, Duration::from_secs(10));
            w.send_strs(&["XREADGROUP", "GROUP", "grp", "c1", "BLOCK", "0", "STREAMS", &b, ">"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["XGROUP", "DESTROY", &b, "grp"]);
            let r3 = read_with_timeout(&mut w, Duration::from_secs(10));
            ctl.cmd(&["XGROUP", "CREATE", &b, "grp", "$"]);
            w.send_strs(&["XREADGROUP", "GROUP", "grp", "c1", "BLOCK", "0", "STREAMS", &b, ">"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["DEL", &b]);
            let r4 = read_with_timeout(&mut w, Duration::from_secs(10));
            ctl.cmd(&["XGROUP", "CREATE", &b, "grp", "$", "MKSTREAM"]);
            w.send_strs(&["XREADGROUP", "GROUP", "grp", "c1", "BLOCK", "0", "STREAMS", &b, ">"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["FLUSHALL"]);
            let r4b = read_with_timeout(&mut w, Duration::from_secs(10));
            // A stream that expires (active expiry: nobody touches it).
            ctl.cmd(&["XGROUP", "CREATE", &b, "grp", "$", "MKSTREAM"]);
            w.send_strs(&["XREADGROUP", "GROUP", "grp", "c1", "BLOCK", "0", "STREAMS", &b, ">"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["PEXPIRE", &b, "30"]);
            let r4c = read_with_timeout(&mut w, Duration::from_secs(10));
            ctl.cmd(&["XADD", &a, "1-0", "f", "v"]);
            // A timeout, and CLIENT UNBLOCK.
            let r5 = w.cmd(&["XREAD", "BLOCK", "50", "STREAMS", &a, "$"]);
            let id = String::from_utf8_lossy(&w.cmd(&["CLIENT", "ID"])).trim_start_matches(':').trim().to_string();
            w.send_strs(&["XREAD", "BLOCK", "0", "STREAMS", &a, "$"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]);
            let r6 = read_with_timeout(&mut w, Duration::from_secs(10));
            // One key: XREAD $ and an explicit ID, XREADGROUP with COUNT.
            w.send_strs(&["XREAD", "BLOCK", "0", "STREAMS", &a, "$"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["XADD", &a, "9-0", "h", "1"]);
            let r7 = read_with_timeout(&mut w, Duration::from_secs(10));
            w.send_strs(&["XREAD", "BLOCK", "0", "STREAMS", &a, "9-0"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["XADD", &a, "10-0", "h", "2"]);
            let r8 = read_with_timeout(&mut w, Duration::from_secs(10));
            ctl.cmd(&["XGROUP", "CREATE", &a, "g2", "$"]);
            w.send_strs(&["XREADGROUP", "GROUP", "g2", "c", "COUNT", "1", "BLOCK", "0", "STREAMS", &a, ">"]);
            wait_blocked(&mut ctl, 1);
            ctl.cmd(&["MULTI"]);
            ctl.cmd(&["XADD", &a, "11-0", "h", "3"]);
            ctl.cmd(&["XADD", &a, "12-0", "h", "4"]);
            ctl.cmd(&["EXEC"]);
            let r9 = read_with_timeout(&mut w, Duration::from_secs(10));
            let r10 = ctl.cmd(&["XPENDING", &a, "g2"]);
            replies.last_mut().unwrap().1 = [early, r2, r3, r4, r4b, r4c, r5, r6, r7, r8, r9, r10].concat();
            ctl.cmd(&["DEL", &a, &b]);
        }
        assert_eq!(escape(&replies[0].0), escape(&replies[1].0), "XREAD woken (RESP{proto})");
        assert_eq!(escape(&replies[0].1), escape(&replies[1].1), "XREADGROUP endings (RESP{proto})");
    }
}

/// Several consumers of one group block in XREADGROUP on streams on every
/// shard while producers add entries: every entry is delivered exactly once.
fn each_entry_exactly_once(shards: usize) {
    let ts = TesseraServer::start(shards, &[]);
    let ks = keys_on("q", shards);
    let mut ctl = ts.client();
    for k in &ks {
        ctl.cmd(&["XGROUP", "CREATE", k, "workers", "$", "MKSTREAM"]);
    }
    const CONSUMERS: usize = 4;
    const PER_KEY: usize = 150;
    let port = ts.port;
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    for c in 0..CONSUMERS {
        let ks = ks.clone();
        let produced = produced.clone();
        handles.push(std::thread::spawn(move || {
            let mut cl = Client::connect(port);
            let mut got = Vec::new();
            // An empty read once every entry was added: nothing is left undelivered.
            let mut done = false;
            while !done {
                let finished = produced.load(std::sync::atomic::Ordering::SeqCst);
                let mut args = vec!["XREADGROUP", "GROUP", "workers"];
                let name = format!("c{c}");
                args.push(&name);
                args.extend(["COUNT", "7", "BLOCK", "300", "STREAMS"]);
                for k in &ks {
                    args.push(k);
                }
                args.extend(std::iter::repeat_n(">", ks.len()));
                let v = cl.cmd_value(&args);
                let Value::Array(streams) = v else {
                    done = finished;
                    continue;
                };
                for s in streams {
                    let Value::Array(kv) = s else { panic!("stream reply") };
                    let key = kv[0].as_str().unwrap();
                    let Value::Array(entries) = &kv[1] else { panic!("entries") };
                    for e in entries {
                        let Value::Array(e) = e else { panic!("entry") };
                        let id = e[0].as_str().unwrap();
                        cl.cmd(&["XACK", &key, "workers", &id]);
                        got.push(format!("{key}/{id}"));
                    }
                }
            }
            got
        }));
    }
    let mut producers = Vec::new();
    for (i, k) in ks.iter().enumerate() {
        let k = k.clone();
        producers.push(std::thread::spawn(move || {
            let mut cl = Client::connect(port);
            for n in 1..=PER_KEY {
                cl.cmd(&["XADD", &k, &format!("{}-{}", n, i), "n", &n.to_string()]);
            }
        }));
    }
    for p in producers {
        p.join().unwrap();
    }
    produced.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut all: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, all.len(), "an entry was delivered twice");
    assert_eq!(all.len(), PER_KEY * ks.len(), "an entry was never delivered");
    for k in &ks {
        let v = ctl.cmd_value(&["XPENDING", k, "workers"]);
        let Value::Array(a) = v else { panic!() };
        assert_eq!(a[0], Value::Int(0), "everything was acknowledged");
    }
}

#[test]
fn consumers_of_one_group_get_each_entry_once_at_2_shards() {
    each_entry_exactly_once(2);
}

#[test]
fn consumers_of_one_group_get_each_entry_once_at_4_shards() {
    each_entry_exactly_once(4);
}

fn bulk(raw: &[u8]) -> Vec<u8> {
    Value::parse(raw).as_bytes().expect("a bulk reply").to_vec()
}

#[test]
fn dump_restore_carries_streams_both_ways() {
    let (ts, rs) = start();
    let mut p = Pair::new(&ts, &rs, "2");
    for k in keys_on("d", 2) {
        let k = k.as_str();
        for i in 1..=250 {
            let f = if i % 9 == 0 { "other" } else { "f" };
            p.both(&["XADD", k, &format!("{i}-{}", i % 4), f, &"x".repeat(i % 30), "n", &i.to_string()]);
        }
        p.both(&["XDEL", k, "3-3", "100-0", "250-2"]);
        p.both(&["XGROUP", "CREATE", k, "g", "0"]);
        p.both(&["XGROUP", "CREATE", k, "h", "$"]);
        p.both(&["XREADGROUP", "GROUP", "g", "a", "COUNT", "5", "STREAMS", k, ">"]);
        p.both(&["XREADGROUP", "GROUP", "g", "b", "COUNT", "3", "STREAMS", k, ">"]);
        p.both(&["XACK", k, "g", "2-2"]);
        p.both(&["XGROUP", "CREATECONSUMER", k, "g", "idle"]);
        // Tessera's value restored into Redis and Redis's into Tessera.
        let td = bulk(&p.t.cmd(&["DUMP", k]));
        let rd = bulk(&p.r.cmd(&["DUMP", k]));
        let tk = format!("{k}:fromredis");
        let rk = format!("{k}:fromtessera");
        assert_eq!(
            Value::parse(&p.t.cmd_bytes(&[b"RESTORE", tk.as_bytes(), b"0", &rd])),
            Value::Simple("OK".into())
        );
        assert_eq!(
            Value::parse(&p.r.cmd_bytes(&[b"RESTORE", rk.as_bytes(), b"0", &td])),
            Value::Simple("OK".into())
        );
        // (key on Tessera, key on Redis) holding the same stream.
        for (tkey, rkey) in [(tk.as_str(), k), (k, rk.as_str())] {
            for args in [
                vec!["XINFO", "STREAM", "#", "FULL", "COUNT", "0"],
                vec!["XRANGE", "#", "-", "+"],
                vec!["XPENDING", "#", "g", "-", "+", "100"],
                vec!["XINFO", "GROUPS", "#"],
            ] {
                let ta: Vec<&str> = args.iter().map(|x| if *x == "#" { tkey } else { x }).collect();
                let ra: Vec<&str> = args.iter().map(|x| if *x == "#" { rkey } else { x }).collect();
                let t = mask(&Value::parse(&p.t.cmd(&ta)));
                let r = mask(&Value::parse(&p.r.cmd(&ra)));
                assert_eq!(escape(&t.encode()), escape(&r.encode()), "{:?} after RESTORE", args);
            }
        }
        // Identical bytes apart from the times: re-DUMP of the restored copies.
        let t2 = bulk(&p.t.cmd(&["DUMP", &tk]));
        assert_eq!(t2.len(), rd.len(), "DUMP of a restored stream has Redis's size");
    }
    p.same(&["RESTORE", "bad", "0", "\x13garbage\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00"]);
}

#[test]
fn stream_commands_fire_keyspace_events_as_redis() {
    let (ts, rs) = start();
    let mut events = Vec::new();
    for port in [ts.port, rs.port] {
        let mut c = Client::connect(port);
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
        let mut sub = Client::connect(port);
        sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]);
        let k = "ev";
        for cmd in [
            vec!["XADD", k, "1-0", "a", "1"],
            vec!["XADD", k, "MAXLEN", "1", "2-0", "a", "1"],
            vec!["XADD", k, "3-0", "a", "1"],
            vec!["XDEL", k, "3-0"],
            vec!["XDEL", k, "3-0"],
            vec!["XTRIM", k, "MAXLEN", "0"],
            vec!["XSETID", k, "5-0"],
            vec!["XGROUP", "CREATE", k, "g", "0"],
            vec!["XGROUP", "CREATE", "ev2", "g", "0", "MKSTREAM"],
            vec!["XGROUP", "SETID", k, "g", "0"],
            vec!["XGROUP", "CREATECONSUMER", k, "g", "c"],
            vec!["XADD", k, "6-0", "a", "1"],
            vec!["XREADGROUP", "GROUP", "g", "d", "STREAMS", k, ">"],
            vec!["XCLAIM", k, "g", "e", "0", "6-0"],
            vec!["XAUTOCLAIM", k, "g", "f", "0", "0"],
            vec!["XGROUP", "DELCONSUMER", k, "g", "c"],
            vec!["XGROUP", "DESTROY", k, "g"],
            vec!["DEL", k, "ev2"],
        ] {
            c.cmd(&cmd);
        }
        c.cmd(&["PUBLISH", "__keyevent@0__:end", "x"]);
        let mut got = Vec::new();
        loop {
            let v = sub.read_value();
            let Value::Array(a) = v else { continue };
            let ch = a[2].as_str().unwrap_or_default();
            if ch.ends_with(":end") {
                break;
            }
            got.push(format!("{ch} {}", a[3].as_str().unwrap_or_default()));
        }
        events.push(got);
    }
    assert_eq!(events[0], events[1]);
}

#[test]
fn watch_sees_the_changes_redis_signals() {
    let (ts, rs) = start();
    let mut out = Vec::new();
    for port in [ts.port, rs.port] {
        let mut c = Client::connect(port);
        let mut o = Client::connect(port);
        c.cmd(&["XADD", "w", "1-0", "a", "1"]);
        c.cmd(&["XGROUP", "CREATE", "w", "g", "0"]);
        let mut r = Vec::new();
        for other in [
            vec!["XADD", "w", "2-0", "a", "1"],
            vec!["XREADGROUP", "GROUP", "g", "c", "STREAMS", "w", ">"],
            vec!["XACK", "w", "g", "1-0"],
            vec!["XGROUP", "SETID", "w", "g", "0"],
            vec!["XDEL", "w", "1-0"],
            vec!["XDEL", "w", "1-0"],
            vec!["XSETID", "w", "9-0"],
            vec!["XTRIM", "w", "MAXLEN", "5"],
        ] {
            c.cmd(&["WATCH", "w"]);
            c.cmd(&["MULTI"]);
            c.cmd(&["PING"]);
            o.cmd(&other);
            r.push(c.cmd(&["EXEC"]));
        }
        out.push(r);
    }
    assert_eq!(
        out[0].iter().map(|x| escape(x)).collect::<Vec<_>>(),
        out[1].iter().map(|x| escape(x)).collect::<Vec<_>>()
    );
}

#[test]
fn save_and_restart_keep_streams_and_redis_reads_the_file() {
    let ts = TesseraServer::start(2, &[]);
    let mut c = ts.client();
    for k in keys_on("f", 2) {
        for i in 1..=120 {
            c.cmd(&["XADD", &k, &format!("{i}-0"), "a", &i.to_string()]);
        }
        c.cmd(&["XDEL", &k, "7-0"]);
        c.cmd(&["XGROUP", "CREATE", &k, "g", "0"]);
        c.cmd(&["XREADGROUP", "GROUP", "g", "x", "COUNT", "4", "STREAMS", &k, ">"]);
    }
    assert_eq!(c.cmd(&["SAVE"]), b"+OK\r\n");
    let file = ts.dir.join("dump.rdb");
    let check = run_to_exit("redis-check-rdb", &[file.to_string_lossy().into_owned()], &ts.dir, Duration::from_secs(20));
    assert!(check.stdout.contains("RDB looks OK"), "redis-check-rdb: {}{}", check.stdout, check.stderr);
    // Redis loads Tessera's file and answers as Tessera does.
    let rdir = temp_dir("redis-load");
    std::fs::copy(&file, rdir.join("dump.rdb")).unwrap();
    let rs = RedisServer::start_opts(StartOpts {
        extra_args: &["--dir", rdir.to_str().unwrap(), "--dbfilename", "dump.rdb"],
        ..Default::default()
    });
    let mut r = rs.client();
    // And a restarted Tessera (another one, from the same file) as well.
    let tdir = temp_dir("tessera-load");
    std::fs::copy(&file, tdir.join("dump.rdb")).unwrap();
    let td = tdir.display().to_string();
    let ts2 = TesseraServer::start(4, &["--dir", &td]);
    let mut t2 = ts2.client();
    for k in keys_on("f", 2) {
        for args in [
            vec!["XINFO", "STREAM", &k, "FULL"],
            vec!["XRANGE", &k, "-", "+"],
            vec!["XPENDING", &k, "g", "-", "+", "10"],
        ] {
            let t = escape(&mask(&Value::parse(&c.cmd(&args))).encode());
            let rr = escape(&mask(&Value::parse(&r.cmd(&args))).encode());
            let t2v = escape(&mask(&Value::parse(&t2.cmd(&args))).encode());
            assert_eq!(t, rr, "{args:?} after Redis loaded the file");
            assert_eq!(t, t2v, "{args:?} after Tessera loaded the file");
        }
    }
}

/// A seeded random mix of stream commands on small nodes, the same on both
/// servers: every reply equal (times masked), on both shards.
#[test]
fn random_stream_commands_match_redis() {
    let (ts, rs) = start();
    random_round(&ts, &rs, 20261203, "3", "6", "4096", 1200);
    random_round(&ts, &rs, 7, "2", "0", "180", 800);
}

fn random_round(ts: &TesseraServer, rs: &RedisServer, seed: u64, proto: &str, entries: &str, bytes: &str, steps: usize) {
    use rand::{Rng, SeedableRng};
    let mut p = Pair::new(ts, rs, proto);
    p.same(&["CONFIG", "SET", "stream-node-max-entries", entries]);
    p.same(&["CONFIG", "SET", "stream-node-max-bytes", bytes]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let keys = keys_on(&format!("rnd{seed}"), 2);
    let mut ms = [0u64; 2];
    for k in &keys {
        p.same(&["XGROUP", "CREATE", k, "g", "0", "MKSTREAM"]);
        p.same(&["XGROUP", "CREATE", k, "h", "$"]);
    }
    let id = |rng: &mut rand::rngs::StdRng, top: u64| format!("{}-{}", rng.gen_range(0..top + 2), rng.gen_range(0..3));
    for step in 0..steps {
        let ki = rng.gen_range(0..2);
        let k = keys[ki].as_str();
        let top = ms[ki];
        let c: Vec<String> = match rng.gen_range(0..100) {
            0..=34 => {
                ms[ki] += rng.gen_range(0..3);
                let idarg = match rng.gen_range(0..10) {
                    0 => format!("{}-*", ms[ki]),
                    1 => id(&mut rng, top),
                    _ => format!("{}-{}", ms[ki], rng.gen_range(0..2)),
                };
                let mut v = vec!["XADD".to_string(), k.to_string()];
                match rng.gen_range(0..8) {
                    0 => v.extend(["MAXLEN".into(), "~".into(), rng.gen_range(0..30).to_string()]),
                    1 => v.extend(["MINID".into(), "=".into(), id(&mut rng, top)]),
                    _ => {}
                }
                v.push(idarg);
                let nf = rng.gen_range(1..4);
                for f in 0..nf {
                    let name = if rng.gen_bool(0.8) {
                        format!("f{f}")
                    } else {
                        format!("x{}", rng.gen_range(0..3))
                    };
                    v.push(name);
                    v.push(if rng.gen_bool(0.5) {
                        rng.gen_range(-5..300).to_string()
                    } else {
                        "v".repeat(rng.gen_range(0..40))
                    });
                }
                v
            }
            35..=44 => {
                let mut v = vec!["XDEL".to_string(), k.to_string()];
                for _ in 0..rng.gen_range(1..4) {
                    v.push(id(&mut rng, top));
                }
                v
            }
            45..=49 => {
                let mut v = vec!["XTRIM".to_string(), k.to_string()];
                let approx = rng.gen_bool(0.5);
                if rng.gen_bool(0.5) {
                    v.extend(["MAXLEN".into(), if approx { "~" } else { "=" }.into(), rng.gen_range(0..40).to_string()]);
                } else {
                    v.extend(["MINID".into(), if approx { "~" } else { "=" }.into(), id(&mut rng, top)]);
                }
                if approx && rng.gen_bool(0.3) {
                    v.extend(["LIMIT".into(), rng.gen_range(0..20).to_string()]);
                }
                v
            }
            50..=59 => {
                let (a, b) = (id(&mut rng, top), id(&mut rng, top));
                let a = if rng.gen_bool(0.2) { format!("({a}") } else { a };
                let mut v = if rng.gen_bool(0.5) {
                    vec!["XRANGE".to_string(), k.to_string(), a, b]
                } else {
                    vec!["XREVRANGE".to_string(), k.to_string(), b, a]
                };
                if rng.gen_bool(0.5) {
                    v.extend(["COUNT".into(), rng.gen_range(0..8).to_string()]);
                }
                v
            }
            60..=69 => {
                let g = if rng.gen_bool(0.8) { "g" } else { "h" };
                let cons = format!("c{}", rng.gen_range(0..3));
                let mut v = vec![
                    "XREADGROUP".to_string(),
                    "GROUP".into(),
                    g.into(),
                    cons,
                    "COUNT".into(),
                    rng.gen_range(1..5).to_string(),
                ];
                if rng.gen_bool(0.2) {
                    v.push("NOACK".into());
                }
                v.extend(["STREAMS".into(), k.to_string(), if rng.gen_bool(0.8) { ">".into() } else { "0".into() }]);
                v
            }
            70..=77 => {
                let mut v = vec!["XACK".to_string(), k.to_string(), "g".into()];
                for _ in 0..rng.gen_range(1..4) {
                    v.push(id(&mut rng, top));
                }
                v
            }
            78..=82 => {
                let mut v = vec!["XCLAIM".to_string(), k.to_string(), "g".into(), format!("c{}", rng.gen_range(0..4)), "0".into()];
                for _ in 0..rng.gen_range(1..3) {
                    v.push(id(&mut rng, top));
                }
                v.push("JUSTID".into());
                if rng.gen_bool(0.3) {
                    v.push("FORCE".into());
                }
                v
            }
            83..=86 => vec![
                "XAUTOCLAIM".to_string(),
                k.to_string(),
                "g".into(),
                format!("c{}", rng.gen_range(0..4)),
                "0".into(),
                id(&mut rng, top),
                "COUNT".into(),
                rng.gen_range(1..4).to_string(),
                "JUSTID".into(),
            ],
            87..=89 => vec!["XPENDING".to_string(), k.to_string(), "g".into()],
            90..=92 => vec!["XINFO".to_string(), "GROUPS".into(), k.to_string()],
            93..=95 => vec!["XINFO".to_string(), "STREAM".into(), k.to_string()],
            96 => vec!["XGROUP".to_string(), "SETID".into(), k.to_string(), "h".into(), id(&mut rng, top)],
            97 => vec!["XINFO".to_string(), "STREAM".into(), k.to_string(), "FULL".into()],
            98 => vec!["XLEN".to_string(), k.to_string()],
            _ => vec![
                "XREAD".to_string(),
                "COUNT".into(),
                "3".into(),
                "STREAMS".into(),
                keys[0].clone(),
                keys[1].clone(),
                id(&mut rng, top),
                "0".into(),
            ],
        };
        let a: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        let _ = step;
        p.masked(&a);
    }
    for k in &keys {
        p.masked(&["XINFO", "STREAM", k, "FULL", "COUNT", "0"]);
        // The payloads differ only in the NACK and consumer times.
        let (t, r) = (p.t.cmd(&["DUMP", k]), p.r.cmd(&["DUMP", k]));
        assert_eq!(t.len(), r.len(), "DUMP size of {k}");
    }
    p.same(&["CONFIG", "SET", "stream-node-max-entries", "100"]);
    p.same(&["CONFIG", "SET", "stream-node-max-bytes", "4096"]);
}

/// Client-side caching: a tracked stream read is invalidated by the writes
/// Redis signals (XADD, XDEL, XTRIM), not by group state changes
/// (XREADGROUP, XACK, XGROUP SETID). After each write a sentinel key of the
/// same slot is written too; the pushes up to the sentinel's are what the
/// write invalidated (no timing involved).
#[test]
fn tracking_invalidates_on_the_writes_redis_signals() {
    let (ts, rs) = start();
    let mut out = Vec::new();
    for port in [ts.port, rs.port] {
        let mut c = Client::connect(port);
        let mut o = Client::connect(port);
        c.cmd(&["HELLO", "3"]);
        c.cmd(&["CLIENT", "TRACKING", "on"]);
        o.cmd(&["XADD", "{tr}", "1-0", "a", "1"]);
        o.cmd(&["XGROUP", "CREATE", "{tr}", "g", "0"]);
        let mut r = Vec::new();
        for other in [
            vec!["XREADGROUP", "GROUP", "g", "c", "STREAMS", "{tr}", ">"],
            vec!["XACK", "{tr}", "g", "1-0"],
            vec!["XGROUP", "SETID", "{tr}", "g", "0"],
            vec!["XADD", "{tr}", "2-0", "a", "1"],
            vec!["XDEL", "{tr}", "1-0"],
            vec!["XTRIM", "{tr}", "MAXLEN", "0"],
        ] {
            c.cmd(&["XLEN", "{tr}"]);
            c.cmd(&["GET", "{tr}:sentinel"]);
            o.cmd(&other);
            o.cmd(&["SET", "{tr}:sentinel", "x"]);
            let mut pushed = Vec::new();
            loop {
                let v = c.read_value();
                let Value::Push(items) = &v else { panic!("unexpected {v:?}") };
                let Value::Array(keys) = &items[1] else { panic!("unexpected {v:?}") };
                let keys: Vec<String> = keys.iter().filter_map(|k| k.as_str()).collect();
                if keys.iter().any(|k| k == "{tr}:sentinel") {
                    pushed.extend(keys.into_iter().filter(|k| k != "{tr}:sentinel"));
                    break;
                }
                pushed.extend(keys);
            }
            r.push(pushed);
        }
        out.push(r);
    }
    assert_eq!(out[0], out[1]);
    assert!(out[0][..3].iter().all(|x| x.is_empty()), "group changes invalidate nothing: {:?}", out[0]);
    assert_eq!(out[0][3], vec!["{tr}".to_string()], "XADD invalidates");
}

/// Waiters of one group are served in the order they blocked (Redis's
/// FIFO): two entries added at once go to the first two, the third waits.
#[test]
fn group_waiters_are_served_in_fifo_order() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let mut all = Vec::new();
    for port in [ts.port, rs.port] {
        let mut ctl = Client::connect(port);
        ctl.cmd(&["XGROUP", "CREATE", "fifo", "g", "$", "MKSTREAM"]);
        let mut ws: Vec<Client> = (0..3).map(|_| Client::connect(port)).collect();
        for (i, w) in ws.iter_mut().enumerate() {
            let name = format!("c{i}");
            w.send_strs(&["XREADGROUP", "GROUP", "g", &name, "COUNT", "1", "BLOCK", "0", "STREAMS", "fifo", ">"]);
            wait_blocked(&mut ctl, i as i64 + 1);
        }
        ctl.cmd(&["MULTI"]);
        ctl.cmd(&["XADD", "fifo", "1-0", "n", "1"]);
        ctl.cmd(&["XADD", "fifo", "2-0", "n", "2"]);
        ctl.cmd(&["EXEC"]);
        let mut got = vec![
            read_with_timeout(&mut ws[0], Duration::from_secs(10)),
            read_with_timeout(&mut ws[1], Duration::from_secs(10)),
        ];
        wait_blocked(&mut ctl, 1);
        ctl.cmd(&["XADD", "fifo", "3-0", "n", "3"]);
        got.push(read_with_timeout(&mut ws[2], Duration::from_secs(10)));
        all.push(got);
    }
    assert_eq!(
        all[0].iter().map(|x| escape(x)).collect::<Vec<_>>(),
        all[1].iter().map(|x| escape(x)).collect::<Vec<_>>()
    );
}
