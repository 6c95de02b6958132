//! DEBUG POPULATE against a real redis-server 7.0.15, with Tessera at 1 and
//! 2 shards: the same commands on both and every reply compared byte for
//! byte — the default prefix, custom prefixes (empty, with a NUL, long
//! enough to be cut at 127 bytes and to make later keys collide with
//! earlier ones), sizes smaller and larger than `value:<j>` (NUL padding),
//! the embstr / raw boundary, existing keys kept (of any type) and expired
//! ones replaced, count 0, the argument errors, another db, MULTI; then every
//! key of both servers (KEYS, GET, STRLEN, OBJECT ENCODING, TYPE), DEBUG
//! HELP's POPULATE lines in Redis's place, `rdb_changes_since_last_save`
//! and the keyspace hit / miss counters left alone, WATCH broken only by a
//! key that was added, `new` keyspace events and a tracking invalidation.
//! A million keys on 2 shards are compared by sample. Tessera only: a size
//! the allocator refuses fails the command (Redis would abort).

mod common;

use common::*;
use std::time::{Duration, Instant};

struct Pair {
    t: Client,
    r: Client,
}

impl Pair {
    fn new(ts: &TesseraServer, rs: &RedisServer) -> Pair {
        Pair {
            t: ts.client(),
            r: rs.client(),
        }
    }

    /// One command on both; the raw replies must be identical.
    #[track_caller]
    fn same(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let t = self.t.cmd_bytes(args);
        let r = self.r.cmd_bytes(args);
        assert_eq!(escape(&t), escape(&r), "reply of {}", fmt_cmd(args));
        t
    }

    #[track_caller]
    fn same_s(&mut self, args: &[&str]) -> Vec<u8> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.same(&a)
    }

    /// Many commands pipelined on both; every reply must match.
    #[track_caller]
    fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) {
        for c in cmds {
            let a: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
            self.t.send(&a);
            self.r.send(&a);
        }
        for c in cmds {
            let t = self.t.read_reply_raw();
            let r = self.r.read_reply_raw();
            assert_eq!(escape(&t), escape(&r), "reply of {}", fmt_cmd(c));
        }
    }

    /// The same INFO field on both servers, as numbers.
    fn info(&mut self, section: &str, field: &str) -> (u64, u64) {
        let get = |c: &mut Client| {
            let v = c.cmd_value(&["INFO", section]);
            let text = v.as_str().expect("INFO text");
            info_field(&text, field)
                .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
                .parse::<u64>()
                .expect("a number")
        };
        (get(&mut self.t), get(&mut self.r))
    }
}

fn cmd(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// Every key of the selected db on both servers (sorted, so the order of
/// KEYS does not matter), then each key's bytes, length, encoding and type.
fn same_keyspace(p: &mut Pair) -> usize {
    let keys = |c: &mut Client| {
        let v = c.cmd_value(&["KEYS", "*"]);
        let mut ks: Vec<Vec<u8>> = v
            .as_array()
            .expect("KEYS array")
            .iter()
            .map(|k| k.as_bytes().expect("a key").to_vec())
            .collect();
        ks.sort();
        ks
    };
    let (tk, rk) = (keys(&mut p.t), keys(&mut p.r));
    assert_eq!(
        tk.iter().map(|k| escape(k)).collect::<Vec<_>>(),
        rk.iter().map(|k| escape(k)).collect::<Vec<_>>(),
        "KEYS *"
    );
    let mut cmds = Vec::new();
    for k in &rk {
        cmds.push(cmd(&[b"TYPE", k]));
        cmds.push(cmd(&[b"OBJECT", b"ENCODING", k]));
        cmds.push(cmd(&[b"DUMP", k]));
        cmds.push(cmd(&[b"GET", k]));
        cmds.push(cmd(&[b"STRLEN", k]));
    }
    p.pipeline(&cmds);
    rk.len()
}

fn populate_script(p: &mut Pair) {
    p.same_s(&["FLUSHALL"]);
    // Arity and arguments (getPositiveLongFromObjectOrReply hands its own
    // message down, so a non-integer gets the range error too).
    for args in [
        &["DEBUG", "POPULATE"][..],
        &["DEBUG", "POPULATE", "1", "a", "2", "3"],
        &["DEBUG", "populate", ""],
        &["DEBUG", "POPULATE", "-1"],
        &["DEBUG", "POPULATE", "abc"],
        &["DEBUG", "POPULATE", "1.5"],
        &["DEBUG", "POPULATE", "+5"],
        &["DEBUG", "POPULATE", "007"],
        &["DEBUG", "POPULATE", "-0"],
        &["DEBUG", "POPULATE", " 3"],
        &["DEBUG", "POPULATE", "3 "],
        &["DEBUG", "POPULATE", "0x10"],
        &["DEBUG", "POPULATE", "9223372036854775808"],
        &["DEBUG", "POPULATE", "99999999999999999999"],
        &["DEBUG", "POPULATE", "-9223372036854775808"],
        &["DEBUG", "POPULATE", "5", "bad", "-1"],
        &["DEBUG", "POPULATE", "5", "bad", "x"],
        &["DEBUG", "POPULATE", "5", "bad", "9223372036854775808"],
        &["DEBUG", "POPULATE", "-5", "bad", "x"],
        &["DEBUG", "POPULATE", "0"],
        &["DEBUG", "POPULATE", "0", "zero", "5"],
    ] {
        p.same_s(args);
    }
    p.same_s(&["DBSIZE"]);

    // Keys that exist are kept, whatever their type; an expired one is
    // replaced (lookupKeyWrite deletes it first).
    p.same_s(&["SET", "key:3", "mine"]);
    p.same_s(&["SET", "key:4", "12345"]);
    p.same_s(&["RPUSH", "key:7", "a", "b"]);
    p.same_s(&["SET", "key:9", "old", "PX", "1"]);
    p.same_s(&["SET", "key:11", "keeps-its-ttl", "EX", "1000"]);
    sleep_ms(20);
    let dirty0 = p.info("persistence", "rdb_changes_since_last_save");
    let hits0 = p.info("stats", "keyspace_hits");
    let misses0 = p.info("stats", "keyspace_misses");
    p.same_s(&["DEBUG", "POPULATE", "20"]);
    p.same_s(&["Debug", "PoPuLaTe", "25", "key"]);
    // lookupKeyWrite counts no keyspace hit or miss.
    assert_eq!(p.info("stats", "keyspace_hits"), hits0, "keyspace_hits (tessera, redis)");
    assert_eq!(p.info("stats", "keyspace_misses"), misses0, "keyspace_misses (tessera, redis)");
    p.same_s(&["DBSIZE"]);
    for k in ["key:0", "key:3", "key:4", "key:9", "key:11", "key:19", "key:24", "key:25"] {
        p.same_s(&["GET", k]);
        p.same_s(&["OBJECT", "ENCODING", k]);
        // The TTL itself may tick between the two servers: only whether there is one.
        let ttl = |c: &mut Client| c.cmd_value(&["TTL", k]).as_int().expect("TTL").signum();
        assert_eq!(ttl(&mut p.t), ttl(&mut p.r), "TTL {k} (sign)");
    }
    p.same_s(&["TYPE", "key:7"]);
    p.same_s(&["LRANGE", "key:7", "0", "-1"]);

    // Sizes: cut, exact, padded with NULs, the embstr / raw boundary.
    for (prefix, size) in [
        ("s0", "0"),
        ("s1", "1"),
        ("s3", "3"),
        ("s7", "7"),
        ("s8", "8"),
        ("s10", "10"),
        ("s44", "44"),
        ("s45", "45"),
        ("s100", "100"),
        ("s5000", "5000"),
    ] {
        p.same_s(&["DEBUG", "POPULATE", "15", prefix, size]);
        for j in [0, 9, 10, 14] {
            let k = format!("{prefix}:{j}");
            p.same_s(&["GET", &k]);
            p.same_s(&["STRLEN", &k]);
            p.same_s(&["OBJECT", "ENCODING", &k]);
        }
    }
    // Values that look like numbers are still created as strings.
    p.same_s(&["DEBUG", "POPULATE", "3", "", "1"]);
    p.same_s(&["GET", ":2"]);
    p.same_s(&["OBJECT", "ENCODING", ":2"]);

    // Prefixes: %s stops at a NUL; the key is cut at 127 bytes, so with a
    // 125-byte prefix key:10 and key:11 become key:1 (kept) again.
    p.same(&[b"DEBUG", b"POPULATE", b"4", b"nul\0after"]);
    let long130 = "L".repeat(130);
    let long125 = "M".repeat(125);
    let long126 = "N".repeat(126);
    p.same_s(&["DEBUG", "POPULATE", "3", &long130]);
    p.same_s(&["DEBUG", "POPULATE", "12", &long125, "20"]);
    p.same_s(&["DEBUG", "POPULATE", "12", &long126]);
    p.same_s(&["GET", &format!("{long125}:1")]);
    p.same_s(&["DBSIZE"]);
    p.same(&[b"DEBUG", b"POPULATE", b"3", "ключ".as_bytes()]);

    // Another db, and MULTI.
    p.same_s(&["SELECT", "3"]);
    p.same_s(&["DEBUG", "POPULATE", "7", "db3"]);
    p.same_s(&["DBSIZE"]);
    p.same_s(&["MULTI"]);
    p.same_s(&["DEBUG", "POPULATE", "5", "tx", "2"]);
    p.same_s(&["DBSIZE"]);
    p.same_s(&["GET", "tx:4"]);
    p.same_s(&["EXEC"]);
    assert_eq!(same_keyspace(p), 12);
    p.same_s(&["SELECT", "0"]);
    p.same_s(&["DBSIZE"]);
    let n = same_keyspace(p);
    assert!(n > 150, "{n} keys in db 0");

    // No change counted (nothing to propagate, no save due): every write
    // since `dirty0` was a DEBUG POPULATE.
    assert_eq!(
        p.info("persistence", "rdb_changes_since_last_save"),
        dirty0,
        "rdb_changes_since_last_save (tessera, redis)"
    );
}

/// WATCH sees the keys DEBUG POPULATE added (signalModifiedKey) and not the
/// ones it skipped.
fn populate_watch(p: &mut Pair, ts: &TesseraServer, rs: &RedisServer) {
    let mut other = Pair::new(ts, rs);
    p.same_s(&["SET", "w:1", "exists"]);
    for (watched, expect_nil) in [("w:1", false), ("w:2", true), ("w:100", false)] {
        p.same_s(&["WATCH", watched]);
        other.same_s(&["DEBUG", "POPULATE", "3", "w"]);
        p.same_s(&["MULTI"]);
        p.same_s(&["PING"]);
        let r = p.same_s(&["EXEC"]);
        assert_eq!(r == b"*-1\r\n", expect_nil, "EXEC after WATCH {watched}: {}", escape(&r));
        other.same_s(&["DEL", "w:0", "w:2"]);
    }
}

/// `new` keyspace events for the keys added, none for the keys kept.
fn populate_events(p: &mut Pair, ts: &TesseraServer, rs: &RedisServer) {
    p.same_s(&["SET", "ev:1", "x"]);
    p.same_s(&["CONFIG", "SET", "notify-keyspace-events", "En"]);
    let mut subs = Pair::new(ts, rs);
    subs.same_s(&["SUBSCRIBE", "__keyevent@0__:new"]);
    p.same_s(&["DEBUG", "POPULATE", "4", "ev"]);
    p.same_s(&["SET", "ev:end", "x"]);
    let read = |c: &mut Client| {
        let mut got: Vec<String> = (0..4)
            .map(|_| {
                let v = c.read_value();
                let a = v.as_array().expect("a message").clone();
                assert_eq!(a[1].as_bytes(), Some(&b"__keyevent@0__:new"[..]));
                a[2].as_str().expect("the key")
            })
            .collect();
        // At 2 shards each shard publishes its own keys: the order between
        // shards is not Redis's (one thread), the set is.
        got.sort();
        got
    };
    let (t, r) = (read(&mut subs.t), read(&mut subs.r));
    assert_eq!(t, r, "`new` events (tessera, redis)");
    assert_eq!(r, ["ev:0", "ev:2", "ev:3", "ev:end"], "ev:1 existed");
    p.same_s(&["CONFIG", "SET", "notify-keyspace-events", ""]);
}

/// A key added by DEBUG POPULATE invalidates a client that tracks it.
fn populate_tracking(ts: &TesseraServer, rs: &RedisServer) {
    let mut reader = Pair::new(ts, rs);
    let mut writer = Pair::new(ts, rs);
    // HELLO's reply carries the client id: not compared.
    reader.t.cmd(&["HELLO", "3"]);
    reader.r.cmd(&["HELLO", "3"]);
    reader.same_s(&["CLIENT", "TRACKING", "ON"]);
    reader.same_s(&["GET", "trk:1"]);
    writer.same_s(&["DEBUG", "POPULATE", "2", "trk"]);
    let (t, r) = (reader.t.read_reply_raw(), reader.r.read_reply_raw());
    assert_eq!(escape(&t), escape(&r), "invalidation push");
    reader.same_s(&["GET", "trk:1"]);
}

/// DEBUG HELP lists POPULATE where Redis does; every line Tessera prints is
/// Redis's, in Redis's order (its own TESSERA-* subcommands aside).
fn populate_help(p: &mut Pair) {
    let lines = |c: &mut Client| -> Vec<String> {
        let v = c.cmd_value(&["DEBUG", "HELP"]);
        v.as_array().expect("help lines").iter().map(|l| l.as_str().expect("a line")).collect()
    };
    let (t, r) = (lines(&mut p.t), lines(&mut p.r));
    // Tessera's own subcommands (TESSERA-*, with their indented lines) aside.
    let mut own = false;
    let t: Vec<String> = t
        .into_iter()
        .filter(|l| {
            if !l.starts_with(' ') {
                own = l.starts_with("TESSERA-");
            }
            !own
        })
        .collect();
    let mut it = r.iter();
    for l in &t {
        assert!(it.any(|x| x == l), "DEBUG HELP line {l:?} is not Redis's, or out of Redis's order");
    }
    let at = |v: &[String]| v.iter().position(|l| l.starts_with("POPULATE")).expect("a POPULATE line");
    let (ti, ri) = (at(&t), at(&r));
    assert_eq!(t[ti..ti + 5], r[ri..ri + 5], "the POPULATE lines");
    assert!(
        t[ti + 5].starts_with("RELOAD") && r[ri + 5].starts_with("PROTOCOL"),
        "POPULATE comes before RELOAD"
    );
}

#[test]
fn debug_populate_matches_redis() {
    let rs = RedisServer::start(&[]);
    for shards in [1, 2] {
        let ts = TesseraServer::start(shards, &[]);
        let mut p = Pair::new(&ts, &rs);
        populate_help(&mut p);
        populate_script(&mut p);
        p.same_s(&["FLUSHALL"]);
        populate_watch(&mut p, &ts, &rs);
        populate_events(&mut p, &ts, &rs);
        populate_tracking(&ts, &rs);
        p.same_s(&["FLUSHALL"]);
    }
}

/// A million keys on 2 shards: the count, a sample of keys, seconds.
#[test]
fn debug_populate_a_million_keys() {
    let rs = RedisServer::start(&[]);
    let ts = TesseraServer::start(2, &[]);
    let mut p = Pair::new(&ts, &rs);
    p.t.set_timeout(Duration::from_secs(60));
    p.r.set_timeout(Duration::from_secs(60));
    p.same_s(&["SET", "big:777", "kept"]);
    let t0 = Instant::now();
    p.same_s(&["DEBUG", "POPULATE", "1000000", "big", "12"]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(30), "DEBUG POPULATE 1000000 on both took {took:?}");
    p.same_s(&["DBSIZE"]);
    let mut cmds = Vec::new();
    let mut x = 12345u64;
    for j in [0u64, 1, 777, 999_999, 1_000_000].into_iter().chain((0..200).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % 1_000_000
    })) {
        let k = format!("big:{j}").into_bytes();
        cmds.push(cmd(&[b"GET", &k]));
        cmds.push(cmd(&[b"OBJECT", b"ENCODING", &k]));
    }
    p.pipeline(&cmds);
    p.same_s(&["FLUSHALL"]);
}

/// Tessera only (Redis aborts on an allocation it cannot make): a size the
/// allocator refuses fails the command, the server lives on.
#[test]
fn debug_populate_unallocatable_size_fails_cleanly() {
    let ts = TesseraServer::start(2, &[]);
    let mut c = ts.client();
    for size in ["9223372036854775807", "4611686018427387904"] {
        let r = c.cmd(&["DEBUG", "POPULATE", "3", "huge", size]);
        assert_eq!(
            escape(&r),
            escape(format!("-ERR DEBUG POPULATE could not allocate a value of {size} bytes\r\n").as_bytes())
        );
    }
    assert_eq!(c.cmd(&["DBSIZE"]), b":0\r\n");
    // A large value that fits is not written page by page: 3 x 256 MiB.
    assert_eq!(c.cmd(&["DEBUG", "POPULATE", "3", "big", "268435456"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["STRLEN", "big:2"]), b":268435456\r\n");
    assert_eq!(escape(&c.cmd(&["GETRANGE", "big:2", "0", "9"])), escape(b"$10\r\nvalue:2\0\0\0\r\n"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", ts.pid)).expect("/proc status");
    let rss_kb: u64 = info_field(&status, "VmRSS")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    assert!(rss_kb < 256 << 10, "VmRSS {rss_kb} kB after 768 MiB of zeroed values");
    assert_eq!(c.cmd(&["FLUSHALL"]), b"+OK\r\n");
}
