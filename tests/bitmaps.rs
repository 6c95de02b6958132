//! The bitmap family (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO) against a real redis-server 7.0.15: every reply compared byte
//! for byte, RESP2 then RESP3, Tessera at 2 shards (BITOP's keys on both).
//! Plus a check that a cross-shard BITOP is atomic against a MULTI that
//! flips its two sources on different shards.

mod common;

use common::diff::*;
use common::*;

/// A deterministic byte string (xorshift).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn script_setbit_getbit(d: &mut Diff) {
    d.ss(&[
        "SETBIT bm 7 1",
        "SETBIT bm 7 1",
        "GET bm",
        "OBJECT ENCODING bm",
        "SETBIT bm 7 0",
        "SETBIT bm 100 1",
        "STRLEN bm",
        "GET bm",
        "GETBIT bm 100",
        "GETBIT bm 101",
        "GETBIT bm 99",
        "GETBIT bm 1000000",
        "GETBIT nokey 5",
        "GETBIT nokey x",
        "GETBIT bm -1",
        "GETBIT bm x",
        "GETBIT bm 4294967295",
        "GETBIT bm 4294967296",
        "SETBIT bm -1 1",
        "SETBIT bm abc 1",
        "SETBIT bm 0x10 1",
        "SETBIT bm ' 1' 1",
        "SETBIT bm 01 1",
        "SETBIT bm 1 2",
        "SETBIT bm 1 -1",
        "SETBIT bm 1 x",
        "SETBIT bm 1 ''",
        "SETBIT bm 4294967296 1",
        "SETBIT bm 18446744073709551616 1",
        "SETBIT bm abc 7",
        "SETBIT bm #1 1",
        "GETBIT bm #1",
        "SETBIT bm 1",
        "GETBIT bm",
        // An embstr / int string becomes raw even when no bit changes.
        "SET s abc",
        "OBJECT ENCODING s",
        "SETBIT s 0 0",
        "OBJECT ENCODING s",
        "GET s",
        "SET n 12345",
        "OBJECT ENCODING n",
        "GETBIT n 2",
        "GETBIT n 3",
        "GETBIT n 39",
        "GETBIT n 40",
        "SETBIT n 3 1",
        "GET n",
        "OBJECT ENCODING n",
        "SET e ''",
        "GETBIT e 0",
        "SETBIT e 0 1",
        "GET e",
        // TTL survives SETBIT.
        "SET t x EX 100",
        "SETBIT t 20 1",
        "TTL t",
        "GET t",
        // Wrong types.
        "RPUSH l x",
        "SETBIT l 0 1",
        "GETBIT l 0",
        "SETBIT l -1 1",
        "DEL bm s n e t",
    ]);
    // A pattern of bits on the two shards' keys; GET shows the same bytes.
    for key in ["a", "b"] {
        for off in [0u64, 3, 8, 15, 63, 64, 200, 1023] {
            let o = off.to_string();
            d.c(&["SETBIT", key, &o, "1"]);
            d.c(&["GETBIT", key, &o]);
        }
        d.c(&["GET", key]);
        d.c(&["STRLEN", key]);
        d.c(&["SETBIT", key, "15", "0"]);
        d.c(&["GET", key]);
    }
    d.s("DEL a b l");
}

fn script_bitcount(d: &mut Diff) {
    d.ss(&[
        "SET foo foobar",
        "BITCOUNT foo",
        "BITCOUNT foo 0 0",
        "BITCOUNT foo 1 1",
        "BITCOUNT foo 1 1 BYTE",
        "BITCOUNT foo 1 1 byte",
        "BITCOUNT foo 5 30 BIT",
        "BITCOUNT foo 0 -1 bit",
        "BITCOUNT foo -3 -1",
        "BITCOUNT foo -1 -3",
        "BITCOUNT foo -1 -3 xyz",
        "BITCOUNT foo -100 100",
        "BITCOUNT foo -100 100 BIT",
        "BITCOUNT foo 2 1",
        "BITCOUNT foo 7 7 BIT",
        "BITCOUNT foo 9223372036854775807 -9223372036854775808",
        "BITCOUNT foo -9223372036854775808 9223372036854775807 BIT",
        "BITCOUNT foo 0",
        "BITCOUNT foo 0 1 2",
        "BITCOUNT foo 0 1 BIT 3",
        "BITCOUNT foo 0 1 bits",
        "BITCOUNT foo a 1",
        "BITCOUNT foo 1 a",
        "BITCOUNT foo 1.5 2",
        "BITCOUNT nokey",
        "BITCOUNT nokey 0",
        "BITCOUNT nokey a b",
        "BITCOUNT nokey 0 1 nope",
        "BITCOUNT",
        "SET n -12345",
        "BITCOUNT n",
        "BITCOUNT n 1 -2",
        "BITCOUNT n 3 17 BIT",
        "SET empty ''",
        "BITCOUNT empty",
        "BITCOUNT empty 0 -1",
        "BITCOUNT empty 0 -1 bit",
        "BITCOUNT empty 0",
        "LPUSH l x",
        "BITCOUNT l",
        "BITCOUNT l 0 -1 nope",
    ]);
    // Long strings: the word-at-a-time path with edges in every position.
    let v = bytes(1, 203);
    d.cb(&[b"SET", b"c", &v]);
    let ones = vec![0xffu8; 77];
    d.cb(&[b"SET", b"d", &ones]);
    for key in ["c", "d"] {
        d.c(&["BITCOUNT", key]);
        for (s, e) in [(0i64, -1i64), (1, 40), (3, 3), (-50, -2), (7, 199), (31, 33), (0, 1000), (-1000, 5)] {
            let (s, e) = (s.to_string(), e.to_string());
            d.c(&["BITCOUNT", key, &s, &e]);
            d.c(&["BITCOUNT", key, &s, &e, "BYTE"]);
            d.c(&["BITCOUNT", key, &s, &e, "BIT"]);
        }
        for (s, e) in [(5i64, 1600i64), (13, 13), (9, 14), (-9, -1), (255, 777), (0, 0), (-1615, -3)] {
            let (s, e) = (s.to_string(), e.to_string());
            d.c(&["BITCOUNT", key, &s, &e, "BIT"]);
        }
    }
    d.s("DEL foo n empty l c d");
}

fn script_bitpos(d: &mut Diff) {
    d.ss(&[
        "BITPOS nokey 1",
        "BITPOS nokey 0",
        "BITPOS nokey 0 a",
        "BITPOS nokey 0 1 2 nope",
        "BITPOS nokey 2",
        "BITPOS nokey x",
        "SET empty ''",
        "BITPOS empty 0",
        "BITPOS empty 1",
        "BITPOS empty 0 0",
        "BITPOS empty 0 0 -1 BIT",
        "RPUSH l x",
        "BITPOS l 1",
        "BITPOS l 2",
        "SET n 12345",
        "BITPOS n 1",
        "BITPOS n 0 1",
        "BITPOS n 1 3 30 BIT",
    ]);
    let mut zeros_tail = vec![0xffu8; 40];
    zeros_tail.extend_from_slice(&[0u8; 3]);
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("p1", vec![0xff, 0xf0, 0x00]),
        ("p2", vec![0xffu8; 20]),
        ("p3", vec![0u8; 20]),
        ("p4", bytes(7, 41)),
        ("p5", zeros_tail),
        ("p6", vec![0x00, 0x00, 0x01]),
    ];
    for (k, v) in &values {
        d.cb(&[b"SET", k.as_bytes(), v]);
    }
    let starts = ["0", "1", "2", "7", "-1", "-9", "-30", "100"];
    let ends = ["0", "1", "-1", "2", "15", "-3", "-100", "400"];
    for (k, _) in &values {
        for bit in ["0", "1"] {
            d.c(&["BITPOS", k, bit]);
            for s in starts {
                d.c(&["BITPOS", k, bit, s]);
                for e in ends {
                    d.c(&["BITPOS", k, bit, s, e]);
                    d.c(&["BITPOS", k, bit, s, e, "BIT"]);
                }
            }
            d.c(&["BITPOS", k, bit, "3", "-1", "byte"]);
            d.c(&["BITPOS", k, bit, "13", "330", "bit"]);
        }
    }
    d.ss(&[
        "BITPOS p1 2",
        "BITPOS p1 -1",
        "BITPOS p1 x",
        "BITPOS p1 0 a",
        "BITPOS p1 0 1 a",
        "BITPOS p1 0 1 2 bits",
        "BITPOS p1 0 1 2 BIT extra",
        "BITPOS p1 0 a 2 nope",
        "BITPOS p1",
        "DEL empty l n p1 p2 p3 p4 p5 p6",
    ]);
}

fn script_bitop(d: &mut Diff) {
    // a/b and c/d are on different shards.
    d.ss(&[
        "SET a foobar",
        "SET b abcdef",
        "BITOP AND dest a b",
        "GET dest",
        "OBJECT ENCODING dest",
        "BITOP OR dest a b",
        "GET dest",
        "BITOP XOR dest a b",
        "GET dest",
        "BITOP xor dest a b a",
        "GET dest",
        "BITOP NOT dest a",
        "GET dest",
        "BITOP not a a",
        "GET a",
        "BITOP NOT dest a b",
        "BITOP NOT dest",
        "BITOP nand dest a",
        "BITOP AND dest",
        "BITOP ''",
        "BITOP AND dest nokey1 nokey2",
        "EXISTS dest",
        "SET dest x",
        "BITOP OR dest nokey1",
        "EXISTS dest",
        "SET dest x EX 100",
        "BITOP OR dest a nokey",
        "TTL dest",
        "GET dest",
        "BITOP AND dest a nokey",
        "GET dest",
        "BITOP XOR dest nokey a",
        "GET dest",
        "SET short ab",
        "BITOP AND dest a short",
        "GET dest",
        "BITOP OR dest short a b",
        "GET dest",
        "SET n 12345",
        "BITOP NOT x n",
        "GET x",
        "BITOP OR n n a",
        "GET n",
        "OBJECT ENCODING n",
        "SET e ''",
        "BITOP AND dest e e",
        "EXISTS dest",
        "BITOP OR dest a e",
        "GET dest",
        "RPUSH l x",
        "BITOP AND dest a l",
        "BITOP AND dest l nokey",
        "BITOP NOT dest l",
        "BITOP AND l a",
        "TYPE l",
        "GET dest",
    ]);
    // Long values (the word loops) on both shards, all four operations.
    let v1 = bytes(11, 300);
    let v2 = bytes(12, 257);
    let v3 = bytes(13, 33);
    d.cb(&[b"SET", b"c", &v1]);
    d.cb(&[b"SET", b"d", &v2]);
    d.cb(&[b"SET", b"k0", &v3]);
    for op in ["AND", "OR", "XOR"] {
        for dst in ["k1", "k2", "c"] {
            d.c(&["BITOP", op, dst, "c", "d", "k0", "nokey", "k3"]);
            d.c(&["GET", dst]);
            d.c(&["BITCOUNT", dst]);
            d.cb(&[b"SET", b"c", &v1]);
        }
        d.c(&["BITOP", op, "k2", "d", "c"]);
        d.c(&["GET", "k2"]);
    }
    d.c(&["BITOP", "NOT", "k2", "c"]);
    d.c(&["GET", "k2"]);
    d.c(&["BITOP", "NOT", "d", "d"]);
    d.c(&["GET", "d"]);
    d.s("DEL a b c d k0 k1 k2 dest x n e l short");
}

fn script_bitfield(d: &mut Diff) {
    d.ss(&[
        "BITFIELD bf SET u8 0 255",
        "GET bf",
        "OBJECT ENCODING bf",
        "BITFIELD bf GET u8 0",
        "BITFIELD bf INCRBY u8 0 1",
        "BITFIELD bf GET u8 0 GET i8 0 GET u4 4 GET i3 1",
        "BITFIELD bf SET i8 #0 100 SET i8 #1 -100 GET i8 #0 GET u4 #3 INCRBY u16 #2 1000",
        "GET bf",
        "BITFIELD bf GET u8 #-1",
        "BITFIELD bf GET u8 #",
        "BITFIELD bf GET u8 '# 1'",
        "BITFIELD bf GET u8 #+1",
        "BITFIELD bf GET i64 #1000",
        "BITFIELD bf GET i64 #67108863",
        "BITFIELD bf GET i64 #67108864",
        "BITFIELD bf GET u8 #536870911",
        "BITFIELD bf GET u8 #536870912",
        "BITFIELD bf GET i64 #9223372036854775807",
        "BITFIELD bf GET i64 #144115188075855871",
        "BITFIELD bf GET i64 #-144115188075855872",
        "BITFIELD bf SET u8 ## 1",
        "BITFIELD bf INCRBY i3 #5 9223372036854775807 GET u24 #0",
        "BITFIELD bf GET i64 0 GET u63 1 GET i1 7 GET u1 7",
        "BITFIELD bf SET i64 0 -1 GET u63 0 GET u63 1 GET i64 1",
        "GET bf",
        "BITFIELD bf GET u64 0",
        "BITFIELD bf GET i65 0",
        "BITFIELD bf GET x8 0",
        "BITFIELD bf GET i0 0",
        "BITFIELD bf GET u-1 0",
        "BITFIELD bf GET i 0",
        "BITFIELD bf GET '' 0",
        "BITFIELD bf GET I8 0",
        "BITFIELD bf GET u8",
        "BITFIELD bf GET u8 x",
        "BITFIELD bf GET u8 -1",
        "BITFIELD bf GET u8 4294967296",
        "BITFIELD bf GET u8 4294967295",
        "BITFIELD bf FOO",
        "BITFIELD bf GET u8 0 FOO",
        "BITFIELD bf OVERFLOW bad GET u8 0",
        "BITFIELD bf OVERFLOW",
        "BITFIELD bf OVERFLOW sat",
        "BITFIELD bf SET u8 0 x",
        "BITFIELD bf SET u8 0",
        "BITFIELD bf INCRBY u8 0 1.5",
        "BITFIELD bf SET u8 -1 1",
        "BITFIELD bf SET u64 0 1",
        "BITFIELD bf GET u8 0 SET x8 0 1",
        "BITFIELD bf",
        "BITFIELD nokey GET u8 0 GET i64 100",
        "EXISTS nokey",
        "BITFIELD_RO bf GET u8 0 GET i4 4",
        "BITFIELD_RO bf SET u8 0 1",
        "BITFIELD_RO bf INCRBY u8 0 1",
        "BITFIELD_RO bf OVERFLOW SAT GET u8 0",
        "BITFIELD_RO bf SET u8 0 x",
        "BITFIELD_RO bf GET u64 0",
        "BITFIELD_RO nokey GET u8 0",
        "BITFIELD_RO nokey SET u8 0 1",
        "BITFIELD_RO bf",
        "RPUSH l x",
        "BITFIELD l GET u8 0",
        "BITFIELD l SET u8 0 1",
        "BITFIELD_RO l GET u8 0",
        "BITFIELD l GET u8 x",
        // A failed write on a missing key still creates it (zeroed).
        "BITFIELD fl OVERFLOW FAIL SET u8 0 256",
        "EXISTS fl",
        "GET fl",
        "BITFIELD fl OVERFLOW FAIL SET u8 0 255 INCRBY u8 0 1 OVERFLOW WRAP INCRBY u8 0 1 OVERFLOW SAT INCRBY u8 0 -2",
        "GET fl",
        // Int and embstr strings.
        "SET n 12345",
        "BITFIELD n GET u8 0 GET u16 8",
        "BITFIELD_RO n GET i8 32 GET u8 40",
        "BITFIELD n SET u8 0 65",
        "GET n",
        "OBJECT ENCODING n",
        "SET s hello",
        "BITFIELD s GET u8 0",
        "OBJECT ENCODING s",
        "BITFIELD s SET u8 0 104",
        "OBJECT ENCODING s",
        "BITFIELD s SET u8 100 1",
        "GET s",
        "SET t x EX 100",
        "BITFIELD t INCRBY u2 100 1",
        "TTL t",
        "GET t",
        "DEL bf fl n s t l",
    ]);
    // Overflow behaviours over widths and values.
    let types = ["i8", "u8", "i5", "u1", "i1", "u7", "i16", "i64", "u63", "u32", "i33"];
    let incrs = [
        "1",
        "-1",
        "100",
        "-100",
        "9223372036854775807",
        "-9223372036854775808",
        "4294967296",
        "-4294967297",
    ];
    let vals = [
        "0",
        "-1",
        "127",
        "128",
        "255",
        "256",
        "-129",
        "9223372036854775807",
        "-9223372036854775808",
        "4611686018427387904",
    ];
    for ow in ["WRAP", "SAT", "FAIL"] {
        for ty in types {
            for v in vals {
                d.c(&["BITFIELD", "bo", "OVERFLOW", ow, "SET", ty, "3", v, "GET", ty, "3"]);
            }
            for (i, inc) in incrs.iter().enumerate() {
                let v = vals[i % vals.len()];
                d.c(&[
                    "BITFIELD", "bo", "SET", ty, "5", v, "OVERFLOW", ow, "INCRBY", ty, "5", inc, "INCRBY", ty, "5", inc, "GET", ty, "5",
                ]);
            }
            d.c(&["GET", "bo"]);
        }
    }
    d.s("DEL bo");
}

/// The size limit (proto-max-bulk-len) on offsets, at 1 MB on both servers.
fn script_limits(d: &mut Diff) {
    d.ss(&[
        "CONFIG SET proto-max-bulk-len 1048576",
        "SETBIT big 8388608 1",
        "GETBIT big 8388608",
        "EXISTS big",
        "SETBIT big 8388607 1",
        "STRLEN big",
        "BITCOUNT big",
        "BITPOS big 1",
        "BITPOS big 0 -1",
        "BITCOUNT big -1 -1",
        "BITFIELD big GET u8 #1048575 GET u8 #1048576",
        "BITFIELD big SET u8 #1048575 1 GET u8 #1048575",
        "BITFIELD big SET i64 8388607 -1",
        "STRLEN big",
        "BITFIELD big SET i64 8388608 -1",
        "BITFIELD_RO big GET u8 8388608",
        "BITOP NOT big2 big",
        "BITCOUNT big2",
        "DEL big big2",
        "CONFIG SET proto-max-bulk-len 536870912",
    ]);
}

/// Keyspace notifications: the event names of each command.
fn script_notifications(d: &mut Diff) {
    let sub = d.open();
    d.s("CONFIG SET notify-keyspace-events KEA");
    d.c_on(sub, &["SUBSCRIBE", "__keyevent@0__:setbit", "__keyevent@0__:set", "__keyevent@0__:del"]);
    for _ in 0..2 {
        d.compare_replies(sub, "SUBSCRIBE confirmation", &[], &[], None);
    }
    let events = [
        ("SETBIT a 3 1", true),
        ("SETBIT a 3 1", false),
        ("SETBIT a 3 0", true),
        ("BITFIELD a GET u8 0", false),
        ("BITFIELD a SET u8 0 0", false),
        ("BITFIELD a SET u8 0 7", true),
        ("BITFIELD a OVERFLOW FAIL INCRBY u8 0 255", false),
        ("BITOP NOT b a", true),
        ("BITOP AND b nokey", true),
        ("BITOP AND b nokey", false),
    ];
    for (cmd, fires) in events {
        d.s(cmd);
        if fires {
            d.compare_replies(sub, &format!("event of {cmd}"), &[], &[], None);
        }
    }
    // Nothing else was published: the next message is this PUBLISH's.
    d.s("PUBLISH __keyevent@0__:del marker");
    d.compare_replies(sub, "marker message", &[], &[], None);
    d.close(sub);
    d.s("CONFIG SET notify-keyspace-events ''");
    d.s("DEL a b");
}

/// WATCH: only a change of the bitmap aborts a transaction.
fn script_watch(d: &mut Diff) {
    let other = d.open();
    d.s("SETBIT w 5 1");
    for cmd in [
        "SETBIT w 5 1",
        "SETBIT w 5 0",
        "SETBIT w 1 0",
        "SETBIT w 100 0",
        "BITFIELD w GET u8 0",
        "BITFIELD w SET u8 0 0",
        "BITFIELD w INCRBY u8 0 1",
        "BITFIELD w OVERFLOW FAIL SET u4 0 16",
        "BITFIELD w SET u8 #20 0",
        "BITOP OR w w",
    ] {
        d.s("WATCH w");
        d.c_on(other, &split_words(cmd).iter().map(|s| s.as_str()).collect::<Vec<_>>());
        d.s("MULTI");
        d.s("GETBIT w 0");
        d.s("EXEC");
    }
    d.close(other);
    // Client tracking: only a change of the bitmap invalidates it.
    let tr = d.open();
    d.c_on(tr, &["HELLO", "3"]);
    d.c_on(tr, &["CLIENT", "TRACKING", "on"]);
    for (cmd, invalidates) in [
        ("SETBIT w 0 0", false),
        ("BITFIELD w SET u1 1 0", false),
        ("SETBIT w 0 1", true),
        ("BITFIELD w OVERFLOW FAIL INCRBY u8 0 255", false),
        ("BITFIELD w INCRBY u8 0 1", true),
        ("BITOP NOT w w", true),
    ] {
        d.c_on(tr, &["GET", "w"]);
        d.s(cmd);
        if invalidates {
            d.compare_replies(tr, &format!("invalidation after {cmd}"), &[], &[], None);
        }
        d.c_on(tr, &["PING"]);
    }
    d.close(tr);
    d.s("DEL w");
}

fn script_all(d: &mut Diff) {
    script_setbit_getbit(d);
    script_bitcount(d);
    script_bitpos(d);
    script_bitop(d);
    script_bitfield(d);
    script_limits(d);
    script_notifications(d);
    script_watch(d);
    // MULTI with the bitmap commands queued (BITOP across shards inside EXEC).
    d.ss(&[
        "MULTI",
        "SETBIT a 1 1",
        "SETBIT b 2 1",
        "BITOP OR c a b",
        "BITFIELD c GET u8 0",
        "BITCOUNT c",
        "BITPOS c 1",
        "BITOP NOT c a b",
        "EXEC",
        "DEL a b c",
    ]);
}

#[test]
fn bitmaps_differential() {
    run_scripted("bitmaps", script_all);
}

/// A writer flips two bitmaps on different shards in one MULTI (both equal
/// at all times) while readers BITOP XOR / AND them: the XOR must always be
/// all zeros and the AND equal to either source.
#[test]
fn bitop_across_shards_is_atomic() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let (ka, kb) = ("a", "b");
    assert_ne!(local_shard_of(ka.as_bytes(), 2), local_shard_of(kb.as_bytes(), 2));
    let server = TesseraServer::start(2, &[]);
    {
        let mut c = server.client();
        let v = bytes(1, 64);
        c.send(&[b"SET", ka.as_bytes(), &v]);
        assert_eq!(c.read_reply_raw(), b"+OK\r\n");
        c.send(&[b"SET", kb.as_bytes(), &v]);
        assert_eq!(c.read_reply_raw(), b"+OK\r\n");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let changed = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        {
            let (stop, writes) = (stop.clone(), writes.clone());
            let mut c = server.client();
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let off = ((i * 37) % 512).to_string();
                    let bit = if (i / 512).is_multiple_of(2) { "1" } else { "0" };
                    let r = c.cmd(&["MULTI"]);
                    assert_eq!(r, b"+OK\r\n");
                    assert_eq!(c.cmd(&["SETBIT", ka, &off, bit]), b"+QUEUED\r\n");
                    assert_eq!(c.cmd(&["SETBIT", kb, &off, bit]), b"+QUEUED\r\n");
                    let r = c.cmd(&["EXEC"]);
                    assert!(r.starts_with(b"*2\r\n"), "EXEC replied {}", escape(&r));
                    i += 1;
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut readers = Vec::new();
        for r in 0..2 {
            let (stop, reads, changed) = (stop.clone(), reads.clone(), changed.clone());
            let mut c = server.client();
            readers.push(s.spawn(move || {
                let x = if r == 0 { "x0" } else { "x1" };
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(c.cmd(&["BITOP", "XOR", x, ka, kb]), b":64\r\n");
                    assert_eq!(c.cmd(&["BITCOUNT", x]), b":0\r\n", "BITOP saw one source flipped and not the other");
                    // The AND of two equal bitmaps is either one: its count
                    // is a's at that moment (different counts over time show
                    // the writer really ran between reads).
                    assert_eq!(c.cmd(&["BITOP", "AND", x, kb, ka]), b":64\r\n");
                    let n = c.cmd_value(&["BITCOUNT", x]).as_int().expect("BITCOUNT");
                    if n != last {
                        changed.fetch_add(1, Ordering::Relaxed);
                        last = n;
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(1500));
        while t0.elapsed() < Duration::from_secs(10) && (writes.load(Ordering::Relaxed) < 300 || reads.load(Ordering::Relaxed) < 300) {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        for h in readers {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
    assert!(writes.load(Ordering::Relaxed) >= 300, "too few writes");
    assert!(reads.load(Ordering::Relaxed) >= 300, "too few reads");
    assert!(changed.load(Ordering::Relaxed) >= 10, "the readers never saw the bitmaps change");
    let mut c = server.client();
    assert_eq!(c.cmd(&["GET", ka]), c.cmd(&["GET", kb]));
}

/// With proto-max-bulk-len raised to its maximum an offset may name a
/// bitmap no machine can hold: Tessera replies an error and keeps serving
/// (Redis would abort on the allocation, so this is not differential).
#[test]
fn huge_offsets_with_raised_limit_do_not_kill_the_server() {
    let server = TesseraServer::start(2, &[]);
    let mut c = server.client();
    assert_eq!(c.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "9223372036854775807"]), b"+OK\r\n");
    let alloc_err = b"-ERR Insufficient memory, failed allocating the bitmap\r\n".to_vec();
    assert_eq!(c.cmd(&["SETBIT", "k", "9223372036854775807", "1"]), alloc_err);
    assert_eq!(c.cmd(&["EXISTS", "k"]), b":0\r\n");
    assert_eq!(c.cmd(&["BITFIELD", "k", "SET", "u8", "#1152921504606846975", "1"]), alloc_err);
    assert_eq!(c.cmd(&["SETBIT", "k", "7", "1"]), b":0\r\n");
    assert_eq!(c.cmd(&["SETBIT", "k", "9223372036854775807", "1"]), alloc_err);
    assert_eq!(c.cmd(&["BITFIELD", "k", "INCRBY", "i64", "9223372036854775000", "1"]), alloc_err);
    assert_eq!(c.cmd(&["GET", "k"]), b"$1\r\n\x01\r\n");
    assert_eq!(c.cmd(&["GETBIT", "k", "9223372036854775807"]), b":0\r\n");
    assert_eq!(c.cmd(&["BITFIELD_RO", "k", "GET", "i64", "9223372036854775000"]), b"*1\r\n:0\r\n");
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
}
