//! The HyperLogLog family against a real redis-server 7.0.15 (Tessera at 2
//! shards, keys on both shards, RESP2 then RESP3): every reply and the
//! value's bytes (GET) are compared byte for byte — PFADD results, PFCOUNT
//! estimates (10 to 100000 elements), sparse opcodes and their promotion to
//! dense (at the default and a lowered `hll-sparse-max-bytes`), PFMERGE and
//! multi-key PFCOUNT across shards, corrupt and wrong-typed values, PFDEBUG.
//! Values are also carried between the servers (GET/SET, DUMP/RESTORE), and
//! WATCH shows the write hook fires exactly when Redis signals a change.

mod common;

use common::*;

struct Pair {
    t: Client,
    r: Client,
}

impl Pair {
    /// One command on both; the raw replies must be identical.
    fn same(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let t = self.t.cmd_bytes(args);
        let r = self.r.cmd_bytes(args);
        assert_eq!(escape(&t), escape(&r), "reply of {}", show(args));
        t
    }

    fn same_s(&mut self, args: &[&str]) -> Vec<u8> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.same(&a)
    }

    /// Many commands pipelined on both; every reply must match.
    fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) {
        for c in cmds {
            let a: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
            self.t.send(&a);
            self.r.send(&a);
        }
        for c in cmds {
            let r = self.r.read_reply_raw();
            let t = self.t.read_reply_raw();
            let a: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
            assert_eq!(escape(&t), escape(&r), "reply of {}", show(&a));
        }
    }

    /// The key's value must be the same bytes on both; returns them.
    fn same_value(&mut self, key: &str) -> Vec<u8> {
        self.same_s(&["GET", key])
    }
}

fn show(args: &[&[u8]]) -> String {
    let s: Vec<String> = args
        .iter()
        .take(6)
        .map(|a| String::from_utf8_lossy(&a[..a.len().min(40)]).into_owned())
        .collect();
    s.join(" ")
}

fn escape(b: &[u8]) -> String {
    let s: String = b.iter().flat_map(|c| std::ascii::escape_default(*c)).map(|c| c as char).collect();
    if s.len() > 400 {
        format!("{}...({} bytes)", &s[..400], b.len())
    } else {
        s
    }
}

/// The bulk payload of a RESP bulk reply.
fn bulk(raw: &[u8]) -> Vec<u8> {
    Value::parse(raw).as_bytes().expect("a bulk reply").to_vec()
}

/// A key with `prefix` on each of the two shards.
fn keys2(prefix: &str) -> (String, String) {
    let mut k = [None, None];
    for i in 0.. {
        let key = format!("{prefix}:{i}");
        let s = local_shard_of(key.as_bytes(), 2);
        if k[s].is_none() {
            k[s] = Some(key);
        }
        if k[0].is_some() && k[1].is_some() {
            break;
        }
    }
    let [a, b] = k;
    (a.unwrap(), b.unwrap())
}

fn pfadd_batch(key: &str, elems: impl Iterator<Item = String>) -> Vec<Vec<u8>> {
    let mut c = vec![b"PFADD".to_vec(), key.as_bytes().to_vec()];
    c.extend(elems.map(|e| e.into_bytes()));
    c
}

fn encoding(p: &mut Pair, key: &str) -> String {
    String::from_utf8_lossy(&p.same_s(&["PFDEBUG", "ENCODING", key])).trim().to_string()
}

fn start() -> (TesseraServer, RedisServer) {
    (TesseraServer::start(2, &[]), RedisServer::start(&[]))
}

#[test]
fn hll_differential_resp2_resp3() {
    let (ts, rs) = start();
    for proto in ["2", "3"] {
        let mut p = Pair {
            t: ts.client(),
            r: rs.client(),
        };
        p.t.cmd(&["HELLO", proto]);
        p.r.cmd(&["HELLO", proto]);
        let pre = format!("p{proto}");
        let (a0, a1) = keys2(&format!("{pre}:a"));
        let (b0, b1) = keys2(&format!("{pre}:b"));

        // Small sets, both shards.
        for k in [&a0, &a1] {
            p.same_s(&["PFADD", k, "x", "y", "z"]);
            p.same_s(&["PFADD", k, "x"]);
            p.same_s(&["PFADD", k]);
            p.same_value(k);
            p.same_s(&["PFCOUNT", k]);
            // The cached cardinality is now in the value.
            let v = p.same_value(k);
            assert_eq!(bulk(&v)[15] & 0x80, 0, "PFCOUNT left the cache invalid");
            p.same_s(&["PFDEBUG", "DECODE", k]);
        }
        p.same_s(&["PFADD", &format!("{pre}:empty")]);
        p.same_s(&["PFCOUNT", &format!("{pre}:empty")]);
        p.same_value(&format!("{pre}:empty"));
        p.same_s(&["PFCOUNT", &format!("{pre}:missing")]);

        // One element at a time through the sparse encoding and its promotion.
        let mut was_sparse = false;
        for batch in 0..25 {
            let cmds: Vec<Vec<Vec<u8>>> = (0..100).map(|i| pfadd_batch(&b0, std::iter::once(format!("e{}", batch * 100 + i)))).collect();
            p.pipeline(&cmds);
            p.same_value(&b0);
            p.same_s(&["PFCOUNT", &b0]);
            let enc = encoding(&mut p, &b0);
            was_sparse |= enc.contains("sparse");
            if batch % 5 == 0 && enc.contains("sparse") {
                p.same_s(&["PFDEBUG", "DECODE", &b0]);
            }
        }
        assert!(was_sparse && encoding(&mut p, &b0).contains("dense"), "2500 adds should promote to dense");

        // Large: 100000 elements in pipelined multi-element batches.
        let cmds: Vec<Vec<Vec<u8>>> = (0..100)
            .map(|b| pfadd_batch(&b1, (0..1000).map(move |i| format!("big{}", b * 1000 + i))))
            .collect();
        p.pipeline(&cmds);
        let n = Value::parse(&p.same_s(&["PFCOUNT", &b1])).as_int().unwrap();
        assert!((97_000..103_000).contains(&n), "estimate {n}");
        p.same_value(&b1);
        p.same_s(&["PFCOUNT", &b1]);
        // 10 elements on shard 1.
        let (c0, c1) = keys2(&format!("{pre}:c"));
        p.pipeline(&[pfadd_batch(&c1, (0..10).map(|i| format!("ten{i}")))]);
        p.same_s(&["PFCOUNT", &c1]);
        p.same_value(&c1);

        // Union counts across shards (missing keys count as empty).
        p.same_s(&["PFCOUNT", &a0, &a1]);
        p.same_s(&["PFCOUNT", &b0, &b1, &c1, &format!("{pre}:missing")]);
        p.same_s(&["PFCOUNT", &a1, &c1]);

        // PFMERGE: sparse sources into a new sparse destination, then dense ones.
        p.same_s(&["PFMERGE", &c0, &a0, &a1, &c1]);
        p.same_value(&c0);
        assert!(encoding(&mut p, &c0).contains("sparse"));
        p.same_s(&["PFCOUNT", &c0]);
        p.same_s(&["PFMERGE", &c0, &b0, &b1]);
        p.same_value(&c0);
        p.same_s(&["PFCOUNT", &c0]);
        let (d0, d1) = keys2(&format!("{pre}:d"));
        p.same_s(&["PFMERGE", &d1, &format!("{pre}:nothing")]);
        p.same_value(&d1);
        p.same_s(&["PFMERGE", &d1, &a0, &b0]);
        p.same_value(&d1);
        p.same_s(&["COMMAND", "GETKEYS", "PFMERGE", &d0]);
        p.same_s(&["COMMAND", "GETKEYS", "PFMERGE", &d0, &a1]);
        p.same_s(&["PFMERGE", &d0]);
        p.same_value(&d0);
        p.same_s(&["OBJECT", "ENCODING", &d0]);
        p.same_s(&["PFMERGE", &d0, &a1]);
        p.same_value(&d0);

        // A lowered hll-sparse-max-bytes promotes earlier.
        p.same_s(&["CONFIG", "SET", "hll-sparse-max-bytes", "100"]);
        p.same_s(&["CONFIG", "GET", "hll-sparse-max-bytes"]);
        let (e0, e1) = keys2(&format!("{pre}:e"));
        for k in [&e0, &e1] {
            let mut promoted = false;
            for i in 0..80 {
                p.same_s(&["PFADD", k, &format!("s{i}")]);
                p.same_value(k);
                promoted |= encoding(&mut p, k).contains("dense");
            }
            assert!(promoted, "a 100-byte limit should promote within 80 adds");
        }
        p.same_s(&["PFMERGE", &e0, &a0, &a1]);
        p.same_value(&e0);
        p.same_s(&["CONFIG", "SET", "hll-sparse-max-bytes", "3000"]);

        // Wrong types and non-HLL strings.
        let (w0, w1) = keys2(&format!("{pre}:w"));
        p.same_s(&["SET", &w0, "not an hll at all"]);
        p.same_s(&["LPUSH", &w1, "x"]);
        let int_key = format!("{pre}:int");
        p.same_s(&["SET", &int_key, "12345"]);
        for k in [&w0, &w1, &int_key] {
            p.same_s(&["PFADD", k, "x"]);
            p.same_s(&["PFCOUNT", k]);
            p.same_s(&["PFDEBUG", "ENCODING", k]);
            p.same_s(&["PFMERGE", &d0, k]);
            p.same_s(&["PFMERGE", k, &a0]);
        }
        p.same_s(&["PFCOUNT", &a0, &w1, &w0]);
        p.same_s(&["PFCOUNT", &a1, &w0, &w1]);
        p.same_value(&d0);

        // Corrupt values (set with SET on both, on both shards).
        let mut hdr_sparse_invalid = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
        let mut short_val = hdr_sparse_invalid.clone();
        short_val.push(0x80); // one register only
        let mut truncated_xzero = hdr_sparse_invalid.clone();
        truncated_xzero.push(0x7f);
        let mut overflow = hdr_sparse_invalid.clone();
        overflow.extend_from_slice(b"\x7f\xff\x80"); // 16385 registers
        let mut cached_ok = b"HYLL\x01\0\0\0\x07\0\0\0\0\0\0\0".to_vec();
        cached_ok.push(0x80); // corrupt body, but a valid cached count
        let mut dense_short = b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
        dense_short.extend_from_slice(&[0u8; 100]);
        let mut bad_enc = b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
        bad_enc.extend_from_slice(b"\x7f\xff");
        let bad_magic = b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff".to_vec();
        hdr_sparse_invalid.truncate(15);
        let cases: Vec<Vec<u8>> = vec![
            short_val,
            truncated_xzero,
            overflow,
            cached_ok,
            dense_short,
            bad_enc,
            bad_magic,
            hdr_sparse_invalid,
        ];
        for (i, v) in cases.iter().enumerate() {
            let (k0, k1) = keys2(&format!("{pre}:bad{i}"));
            for k in [&k0, &k1] {
                p.same(&[b"SET", k.as_bytes(), v]);
                p.same_s(&["PFCOUNT", k]);
                p.same_s(&["PFCOUNT", k, &a0]);
                p.same_s(&["PFCOUNT", &a1, k]);
                p.same_s(&["PFMERGE", &d1, k]);
                p.same_s(&["PFDEBUG", "DECODE", k]);
                p.same_s(&["PFDEBUG", "GETREG", k]);
                p.same_s(&["PFADD", k, "a", "b", "c", "d"]);
                p.same_value(k);
                p.same_s(&["PFMERGE", k, &a0]);
                p.same_value(k);
            }
        }
        p.same_value(&d1);

        // PFDEBUG.
        let (g0, g1) = keys2(&format!("{pre}:g"));
        p.same_s(&["PFADD", &g0, "1", "2", "3"]);
        p.same_s(&["PFDEBUG", "DECODE", &g0]);
        p.same_s(&["PFDEBUG", "decode", &g0, "extra"]);
        p.same_s(&["PFDEBUG", "ENCODING", &g0]);
        p.same_s(&["PFDEBUG", "NOPE", &g0]);
        p.same_s(&["PFDEBUG", "GETREG", &g1]);
        p.same_s(&["PFDEBUG", "GETREG", &g0]);
        p.same_value(&g0);
        p.same_s(&["PFDEBUG", "DECODE", &g0]);
        p.same_s(&["PFADD", &g1, "q"]);
        p.same_s(&["PFDEBUG", "TODENSE", &g1]);
        p.same_s(&["PFDEBUG", "TODENSE", &g1]);
        p.same_value(&g1);
        p.same_s(&["PFDEBUG", "GETREG", &b1]);
        p.same_s(&["PFADD"]);
        p.same_s(&["PFCOUNT"]);
        p.same_s(&["PFMERGE"]);
        p.same_s(&["PFDEBUG", "GETREG"]);

        // Interchange: Redis's bytes into Tessera and back, by GET/SET and DUMP/RESTORE.
        let (x0, x1) = keys2(&format!("{pre}:x"));
        for (src, dst) in [(&c1, &x0), (&b1, &x1), (&a0, &x1)] {
            let from_redis = bulk(&p.r.cmd(&["GET", src]));
            let from_tessera = bulk(&p.t.cmd(&["GET", src]));
            assert_eq!(from_redis, from_tessera);
            // Invalidate the cache so the count is really computed.
            let mut v = from_redis.clone();
            v[15] |= 0x80;
            p.t.cmd_bytes(&[b"SET", dst.as_bytes(), &v]);
            p.r.cmd_bytes(&[b"SET", dst.as_bytes(), &v]);
            p.same_s(&["OBJECT", "ENCODING", dst]);
            p.same_s(&["PFCOUNT", dst]);
            p.same_s(&["OBJECT", "ENCODING", dst]);
            p.same_value(dst);
            p.same_s(&["PFADD", dst, "one more", "and another"]);
            p.same_value(dst);
            let dump_r = bulk(&p.r.cmd(&["DUMP", dst]));
            let dump_t = bulk(&p.t.cmd(&["DUMP", dst]));
            let y = format!("{dst}:restored");
            let rt = p.t.cmd_bytes(&[b"RESTORE", y.as_bytes(), b"0", &dump_r, b"REPLACE"]);
            assert_eq!(rt, b"+OK\r\n", "RESTORE of Redis's DUMP into Tessera: {}", escape(&rt));
            let rr = p.r.cmd_bytes(&[b"RESTORE", y.as_bytes(), b"0", &dump_t, b"REPLACE"]);
            assert_eq!(rr, b"+OK\r\n", "RESTORE of Tessera's DUMP into Redis: {}", escape(&rr));
            p.same_value(&y);
            p.same_s(&["PFCOUNT", &y]);
        }
    }
}

/// WATCH sees a PFADD / PFMERGE / PFCOUNT exactly when Redis signals the key:
/// PFADD that raises no register and PFCOUNT with a valid cache do not touch it.
#[test]
fn hll_write_hook_matches_redis() {
    let (ts, rs) = start();
    let mut p = Pair {
        t: ts.client(),
        r: rs.client(),
    };
    let mut w = Pair {
        t: ts.client(),
        r: rs.client(),
    };
    let (k0, k1) = keys2("watch");
    p.same_s(&["PFADD", &k0, "a", "b"]);
    p.same_s(&["PFADD", &k1, "c"]);
    let steps: Vec<Vec<&str>> = vec![
        vec!["PFADD", &k0, "a"],         // no change
        vec!["PFCOUNT", &k0],            // cache invalid: written
        vec!["PFCOUNT", &k0],            // cache valid: untouched
        vec!["PFADD", &k0, "zzz"],       // change
        vec!["PFCOUNT", &k0, &k1],       // union: read only
        vec!["PFMERGE", &k1, &k0],       // written
        vec!["PFDEBUG", "TODENSE", &k0], // encoding change: not signalled
        vec!["PFDEBUG", "ENCODING", &k0],
    ];
    for s in &steps {
        let key = if s[0] == "PFMERGE" { &k1 } else { &k0 };
        w.same_s(&["WATCH", key]);
        p.same_s(s);
        w.same_s(&["MULTI"]);
        w.same_s(&["PING"]);
        w.same_s(&["EXEC"]);
    }
}

/// PFSELFTEST passes on both; PFADD and PFMERGE notify `pfadd` (keyevent)
/// only when they change something; PFCOUNT and PFMERGE work inside
/// MULTI/EXEC and Lua scripts across shards.
#[test]
fn hll_selftest_notifications_multi() {
    let (ts, rs) = start();
    let mut p = Pair {
        t: ts.client(),
        r: rs.client(),
    };
    p.same_s(&["PFSELFTEST"]);
    p.same_s(&["CONFIG", "SET", "notify-keyspace-events", "E$"]);
    let mut sub = Pair {
        t: ts.client(),
        r: rs.client(),
    };
    sub.same_s(&["SUBSCRIBE", "__keyevent@0__:pfadd"]);
    let (k0, k1) = keys2("notify");
    p.same_s(&["PFADD", &k0, "a"]);
    p.same_s(&["PFADD", &k0, "a"]); // no change: no event
    p.same_s(&["PFCOUNT", &k0]); // no event
    p.same_s(&["PFMERGE", &k1, &k0]);
    p.same_s(&["PFADD", &k1, "b"]);
    p.same_s(&["PFADD", &k1]); // no change: no event
    let mut got = (Vec::new(), Vec::new());
    for _ in 0..3 {
        got.0.push(sub.t.read_value().encode());
        got.1.push(sub.r.read_value().encode());
    }
    got.0.sort();
    got.1.sort();
    assert_eq!(got.0, got.1, "pfadd keyevents");
    // Nothing else is pending: the next reply is the PING's.
    sub.same_s(&["PING"]);

    p.same_s(&["MULTI"]);
    p.same_s(&["PFADD", &k0, "m1", "m2"]);
    p.same_s(&["PFMERGE", &k0, &k1]);
    p.same_s(&["PFCOUNT", &k0, &k1]);
    p.same_s(&["PFCOUNT", &k0]);
    p.same_s(&["EXEC"]);
    p.same_value(&k0);
    p.same_value(&k1);

    // From Lua, keys on both shards.
    let script = "redis.call('PFADD', KEYS[1], 'l1', 'l2'); redis.call('PFMERGE', KEYS[2], KEYS[1]); \
                  return {redis.call('PFCOUNT', KEYS[1]), redis.call('PFCOUNT', KEYS[1], KEYS[2]), redis.call('PFDEBUG', 'ENCODING', KEYS[2])}";
    p.same_s(&["EVAL", script, "2", &k0, &k1]);
    p.same_value(&k0);
    p.same_value(&k1);
    p.same_s(&["EVAL", "return redis.pcall('PFCOUNT', KEYS[1], KEYS[2])", "2", &k0, "notify:list"]);
    p.same_s(&["RPUSH", "notify:list", "x"]);
    p.same_s(&["EVAL", "return redis.pcall('PFCOUNT', KEYS[2], KEYS[1])", "2", &k0, "notify:list"]);
}

/// `hll-sparse-max-bytes` given at start-up applies as in Redis.
#[test]
fn hll_sparse_max_bytes_at_startup() {
    let ts = TesseraServer::start(2, &["--hll-sparse-max-bytes", "120"]);
    let rs = RedisServer::start(&["--hll-sparse-max-bytes", "120"]);
    let mut p = Pair {
        t: ts.client(),
        r: rs.client(),
    };
    p.same_s(&["CONFIG", "GET", "hll-sparse-max-bytes"]);
    let (k0, k1) = keys2("startup");
    for k in [&k0, &k1] {
        let mut promoted_at = None;
        for i in 0..100 {
            p.same_s(&["PFADD", k, &format!("el{i}")]);
            p.same_value(k);
            if promoted_at.is_none() && encoding(&mut p, k).contains("dense") {
                promoted_at = Some(i);
            }
        }
        let at = promoted_at.expect("promoted within 100 adds");
        assert!(at > 10, "promoted too early ({at}) for a 120-byte limit");
    }
    // server.dirty as Redis counts it: one per raised register, PFCOUNT's
    // cache write, PFMERGE, PFDEBUG's conversion.
    let (m0, m1) = keys2("dirty");
    p.same_s(&["PFADD", &m0, "a", "b", "c", "a"]);
    p.same_s(&["PFADD", &m0, "a", "d"]);
    p.same_s(&["PFCOUNT", &m0]);
    p.same_s(&["PFCOUNT", &m0]);
    p.same_s(&["PFMERGE", &m1, &m0, &k0]);
    p.same_s(&["PFADD", &m1, "q"]);
    p.same_s(&["PFDEBUG", "TODENSE", &m1]);
    p.same_s(&["PFDEBUG", "TODENSE", &m0]);
    p.same_s(&["PFDEBUG", "GETREG", &m0]);
    let field = |c: &mut Client| {
        let info = String::from_utf8_lossy(&bulk(&c.cmd(&["INFO", "persistence"]))).into_owned();
        info_field(&info, "rdb_changes_since_last_save")
    };
    assert_eq!(field(&mut p.t), field(&mut p.r), "rdb_changes_since_last_save");
    // Keyspace hits and misses: PFCOUNT and PFMERGE's sources read, PFADD and PFDEBUG write.
    p.same_s(&["PFCOUNT", "dirty:missing", &m0, &m1]);
    p.same_s(&["PFMERGE", "dirty:new", "dirty:missing"]);
    let stats = |c: &mut Client| {
        let info = String::from_utf8_lossy(&bulk(&c.cmd(&["INFO", "stats"]))).into_owned();
        (info_field(&info, "keyspace_hits"), info_field(&info, "keyspace_misses"))
    };
    assert_eq!(stats(&mut p.t), stats(&mut p.r), "keyspace_hits, keyspace_misses");
}
