//! The HASH and SET families against a real redis-server 7.0.15 (differential,
//! RESP2 then RESP3, Tessera at 2 shards), plus a cross-shard SMOVE atomicity
//! test at 2 and 4 shards.
//!
//! Replies are compared byte for byte, except where Redis's own order is a
//! hash table's (hashtable-encoded hashes and sets: compared as multisets,
//! see [`unordered`]) or random (HRANDFIELD, SPOP, SRANDMEMBER: compared by
//! shape, size and membership, see [`random_shape`]). Listpack hashes and
//! intsets are compared exactly: their order is insertion / ascending order.

mod common;

use common::diff::*;
use common::*;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------
// Comparison helpers on top of the harness
// ---------------------------------------------------------------------------

/// Sends `args` on connection 0 of both sides; returns (tessera, redis) replies.
fn send_both(d: &mut Diff, args: &[String]) -> (Vec<u8>, Vec<u8>) {
    let what = fmt_cmd(args);
    d.record(what);
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let p = d.conns[0].as_mut().expect("connection 0");
    p.t.send(&refs);
    p.r.send(&refs);
    let r = p.r.read_reply_raw();
    let t = p.t.read_reply_raw();
    d.compared += 1;
    (t, r)
}

fn report(d: &mut Diff, args: &[String], rule: &str, t: &[u8], r: &[u8], res: Result<(), String>) {
    if let Err(e) = res {
        d.fail(&fmt_cmd(args), rule, &escape(t), &escape(r), &e);
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Map(_) => "map",
        Value::Int(_) => "int",
        Value::Bulk(_) => "bulk",
        Value::Null | Value::NullBulk | Value::NullArray => "null",
        _ => "other",
    }
}

/// Elements of an aggregate as a sorted multiset; `pairs` groups a flat
/// array two by two (RESP2 HGETALL / HRANDFIELD WITHVALUES / HSCAN items).
fn multiset(v: &Value, pairs: bool) -> Option<Vec<Vec<u8>>> {
    let mut e: Vec<Vec<u8>> = match v {
        Value::Map(p) => p.iter().map(|(k, v)| [k.encode(), v.encode()].concat()).collect(),
        _ if pairs => v.as_array()?.chunks(2).map(|c| c.iter().flat_map(|x| x.encode()).collect()).collect(),
        _ => v.as_array()?.iter().map(|x| x.encode()).collect(),
    };
    e.sort();
    Some(e)
}

/// Same reply type and the same elements in any order (a hashtable's order
/// is Redis's dict order, which Tessera cannot reproduce). Errors and
/// scalars must be byte-equal.
fn unordered_with(d: &mut Diff, line: &str, pairs: bool) {
    let args = split_words(line);
    let (t, r) = send_both(d, &args);
    if t == r {
        return;
    }
    let res = (|| {
        let (tv, rv) = (parse(&t)?, parse(&r)?);
        if kind(&tv) != kind(&rv) || tv.is_error() || rv.is_error() {
            return Err("reply types differ".to_string());
        }
        match (multiset(&tv, pairs), multiset(&rv, pairs)) {
            (Some(a), Some(b)) if a == b => Ok(()),
            (Some(_), Some(_)) => Err("elements differ".to_string()),
            _ => Err("bytes differ".to_string()),
        }
    })();
    report(d, &args, "unordered", &t, &r, res);
}

fn unordered(d: &mut Diff, line: &str) {
    unordered_with(d, line, false)
}

/// HGETALL-like: pairs in any order (RESP3 maps, RESP2 flat arrays).
fn unordered_pairs(d: &mut Diff, line: &str) {
    unordered_with(d, line, true)
}

/// A random reply: same type, same number of elements; every element (or
/// pair) of Tessera's reply is one of `allowed` (encoded RESP), and
/// distinct when `distinct`.
fn random_shape(d: &mut Diff, line: &str, allowed: &[&str], pairs: bool, distinct: bool) {
    let args = split_words(line);
    let (t, r) = send_both(d, &args);
    let res = (|| {
        let (tv, rv) = (parse(&t)?, parse(&r)?);
        if tv.is_error() || rv.is_error() {
            return if t == r { Ok(()) } else { Err("errors differ".to_string()) };
        }
        if kind(&tv) != kind(&rv) {
            return Err("reply types differ".to_string());
        }
        let elems = |v: &Value| -> Vec<Vec<u8>> {
            match v {
                Value::Bulk(_) => vec![v.encode()],
                Value::Null | Value::NullBulk | Value::NullArray => vec![],
                _ => multiset(v, pairs).unwrap_or_default(),
            }
        };
        let (te, re) = (elems(&tv), elems(&rv));
        if te.len() != re.len() {
            return Err(format!("sizes differ: {} vs {}", te.len(), re.len()));
        }
        let ok: BTreeSet<Vec<u8>> = allowed.iter().map(|a| encode_words(a)).collect();
        for e in &te {
            if !ok.contains(e) {
                return Err(format!("unexpected element {}", escape(e)));
            }
        }
        for e in &re {
            if !ok.contains(e) {
                return Err(format!("(test bug) redis element {} not in the allowed list", escape(e)));
            }
        }
        if distinct && te.iter().collect::<BTreeSet<_>>().len() != te.len() {
            return Err("elements repeat".to_string());
        }
        Ok(())
    })();
    report(d, &args, "random-shape", &t, &r, res);
}

/// An allowed element as the encoded RESP it appears as: "x" is a bulk, "x=y"
/// a field/value pair (nested array in RESP3 replies is flattened by
/// `multiset` for RESP2; in RESP3 it is an array of 2).
fn encode_words(a: &str) -> Vec<u8> {
    let bulk = |s: &str| format!("${}\r\n{}\r\n", s.len(), s).into_bytes();
    match a.split_once('=') {
        Some((k, v)) => [bulk(k), bulk(v)].concat(),
        None => bulk(a),
    }
}

/// Like [`random_shape`] for WITHVALUES replies: in RESP3 each pair is a
/// nested 2-array, which is re-encoded to the flat form first.
fn random_pairs(d: &mut Diff, line: &str, allowed: &[&str], distinct: bool) {
    if d.proto() == 3 {
        // Nested pairs: flatten both sides before comparing.
        let args = split_words(line);
        let (t, r) = send_both(d, &args);
        let res = (|| {
            let (tv, rv) = (parse(&t)?, parse(&r)?);
            if tv.is_error() || rv.is_error() {
                return if t == r { Ok(()) } else { Err("errors differ".to_string()) };
            }
            let flat = |v: &Value| -> Result<Vec<Vec<u8>>, String> {
                let a = v.as_array().ok_or("not an array")?;
                a.iter()
                    .map(|p| match p.as_array() {
                        Some(kv) if kv.len() == 2 => Ok([kv[0].encode(), kv[1].encode()].concat()),
                        _ => Err("a pair is not an array of 2".to_string()),
                    })
                    .collect()
            };
            let (te, re) = (flat(&tv)?, flat(&rv)?);
            if te.len() != re.len() {
                return Err("sizes differ".to_string());
            }
            let ok: BTreeSet<Vec<u8>> = allowed.iter().map(|a| encode_words(a)).collect();
            if let Some(e) = te.iter().find(|e| !ok.contains(*e)) {
                return Err(format!("unexpected pair {}", escape(e)));
            }
            if distinct && te.iter().collect::<BTreeSet<_>>().len() != te.len() {
                return Err("pairs repeat".to_string());
            }
            Ok(())
        })();
        report(d, &args, "random-pairs", &t, &r, res);
    } else {
        random_shape(d, line, allowed, true, distinct);
    }
}

/// HSCAN / SSCAN iterated to cursor 0 on both sides; the union of elements
/// (pairs for HSCAN) compared as sets.
fn scan_union(d: &mut Diff, line: &str, pairs: bool) {
    let args = split_words(line);
    let (t, r) = send_both(d, &args);
    if t == r && (t.starts_with(b"-") || t.starts_with(b"*2\r\n$1\r\n0\r\n")) {
        return;
    }
    let mut walk = |tess: bool, first: Vec<u8>| -> Result<BTreeSet<Vec<u8>>, String> {
        let mut set = BTreeSet::new();
        let mut reply = first;
        for _ in 0..100_000 {
            let v = parse(&reply)?;
            let parts = v.as_array().filter(|p| p.len() == 2).ok_or("not an array of 2")?;
            let Value::Bulk(cursor) = &parts[0] else {
                return Err("cursor not a bulk".into());
            };
            let items = multiset(&parts[1], pairs).ok_or("items not an array")?;
            set.extend(items);
            if cursor == b"0" {
                return Ok(set);
            }
            let mut next = args.clone();
            next[2] = String::from_utf8_lossy(cursor).into_owned();
            let p = d.conns[0].as_mut().unwrap();
            let c = if tess { &mut p.t } else { &mut p.r };
            c.send_strs(&next.iter().map(|s| s.as_str()).collect::<Vec<_>>());
            reply = c.read_reply_raw();
        }
        Err("scan did not end".into())
    };
    let res = (|| {
        let a = walk(true, t.clone())?;
        let b = walk(false, r.clone())?;
        if a != b {
            return Err(format!("scanned sets differ ({} vs {} elements)", a.len(), b.len()));
        }
        Ok(())
    })();
    report(d, &args, "scan-union", &t, &r, res);
}

/// "CMD key p0 v0 p1 v1 ..." with `n` generated pairs (or members when `vals` is false).
fn many(cmd: &str, key: &str, prefix: &str, n: usize, vals: bool) -> String {
    let mut s = format!("{cmd} {key}");
    for i in 0..n {
        s.push_str(&format!(" {prefix}{i}"));
        if vals {
            s.push_str(&format!(" v{i}"));
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Hashes
// ---------------------------------------------------------------------------

fn script_hashes(d: &mut Diff) {
    d.ss(&[
        "HSET h f1 v1 f2 v2",
        "HSET h f1 x f3 v3",
        "HGET h f1",
        "HGET h nope",
        "HGET nokey f",
        "HMGET h f1 nope f3",
        "HMGET nokey a b",
        "HGETALL h",
        "HKEYS h",
        "HVALS h",
        "HGETALL nokey",
        "HKEYS nokey",
        "HVALS nokey",
        "HLEN h",
        "HLEN nokey",
        "HEXISTS h f1",
        "HEXISTS h zz",
        "HEXISTS nokey f",
        "HSTRLEN h f1",
        "HSTRLEN h zz",
        "HSTRLEN nokey f",
        "HSET h",
        "HSET h f",
        "HSET h f v g",
        "HMSET h f v g",
        "HMSET h a 1 b 2",
        "HGETALL h",
        "HSET h '' ''",
        "HGET h ''",
        "HSTRLEN h ''",
        "HSETNX h f1 y",
        "HSETNX h new y",
        "HSETNX nokey2 f v",
        "HGETALL nokey2",
        "HSETNX h x",
    ]);
    // HINCRBY / HINCRBYFLOAT
    d.ss(&[
        "HINCRBY h n 5",
        "HINCRBY h n -10",
        "HINCRBY h f1 1",
        "HINCRBY h n abc",
        "HINCRBY h n 1.5",
        "HSET h big 9223372036854775807 small -9223372036854775808 sp ' 1' z 007",
        "HINCRBY h big 1",
        "HINCRBY h big 0",
        "HINCRBY h small -1",
        "HINCRBY h sp 1",
        "HINCRBY h z 1",
        "HINCRBY newh f -3",
        "HGETALL newh",
        "HINCRBYFLOAT h fl 1.5",
        "HINCRBYFLOAT h fl 0.1",
        "HINCRBYFLOAT h fl -1.6",
        "HINCRBYFLOAT h n 2.5",
        "HINCRBYFLOAT h f1 1",
        "HINCRBYFLOAT h fl abc",
        "HINCRBYFLOAT h fl inf",
        "HINCRBYFLOAT h fl -inf",
        "HINCRBYFLOAT h fl nan",
        "HINCRBYFLOAT h fl 1e400",
        "HINCRBYFLOAT h fl 5.0e3",
        "HINCRBYFLOAT h fl ' 1'",
        "HINCRBYFLOAT nokey3 f 3",
        "HGET h fl",
        "OBJECT ENCODING h",
        "HLEN h",
    ]);
    // The 401-byte float result converted h to a hashtable, as in Redis.
    unordered_pairs(d, "HGETALL h");
    // HDEL and the deletion of an emptied hash
    d.ss(&[
        "HDEL h f1 nope f2",
        "HDEL nokey f",
        "HDEL h",
        "HSET d a 1 b 2",
        "HDEL d a a b c",
        "EXISTS d",
        "HSET d a 1",
        "HDEL d a",
        "TYPE d",
        "HLEN d",
    ]);
    // WRONGTYPE against a string, in Redis's check order
    d.ss(&[
        "SET s str",
        "HSET s f v",
        "HMSET s f v",
        "HSET s f v g",
        "HSETNX s f v",
        "HGET s f",
        "HMGET s f",
        "HGETALL s",
        "HKEYS s",
        "HVALS s",
        "HDEL s f",
        "HLEN s",
        "HEXISTS s f",
        "HSTRLEN s f",
        "HINCRBY s f 1",
        "HINCRBY s f abc",
        "HINCRBYFLOAT s f 1",
        "HINCRBYFLOAT s f abc",
        "HINCRBYFLOAT s f inf",
        "HRANDFIELD s",
        "HRANDFIELD s 2",
        "HRANDFIELD s 2 WITHVALUES",
        "HRANDFIELD s abc",
        "HSCAN s 0",
        "HSCAN s 0 COUNT 0",
        "HSCAN s abc",
        "GET s",
    ]);
    // OBJECT ENCODING transitions
    let long = "x".repeat(65);
    let edge = "y".repeat(64);
    d.ss(&["HSET e f v", "OBJECT ENCODING e"]);
    d.c(&["HSET", "e", "g", &edge]);
    d.s("OBJECT ENCODING e");
    d.c(&["HSET", "e", "g", &long]);
    d.s("OBJECT ENCODING e");
    d.c(&["HSET", "e2", &long, "v"]);
    d.s("OBJECT ENCODING e2");
    d.c(&["HSETNX", "e3", "f", &long]);
    d.s("OBJECT ENCODING e3");
    d.s("HSET e4 f 1");
    d.c(&["HINCRBY", "e4", &long, "1"]);
    d.s("OBJECT ENCODING e4");
    d.s("HSET e5 f 1");
    d.c(&["HINCRBYFLOAT", "e5", &long, "1.5"]);
    d.s("OBJECT ENCODING e5");
    d.s(&many("HSET", "e6", "f", 512, true));
    d.s("OBJECT ENCODING e6");
    d.s("HSET e6 one more");
    d.s("OBJECT ENCODING e6");
    d.s("HDEL e6 one f0 f1 f2");
    d.s("OBJECT ENCODING e6");
    // (hash-max-listpack-* are not CONFIG SET-able in Tessera yet; the
    // limits themselves are unit-tested in keyspace/types/hash.rs.)
    // A hashtable hash: order-insensitive reads
    d.s(&many("HSET", "big", "f", 600, true));
    d.ss(&["OBJECT ENCODING big", "HLEN big", "HGET big f599", "HMGET big f0 nope f300", "HSTRLEN big f10"]);
    unordered_pairs(d, "HGETALL big");
    unordered(d, "HKEYS big");
    unordered(d, "HVALS big");
    unordered(d, "HRANDFIELD big 1000");
    unordered_pairs(d, "HGETALL e");
    // HRANDFIELD
    d.ss(&[
        "DEL r",
        "HRANDFIELD r",
        "HRANDFIELD r 0",
        "HRANDFIELD r 3",
        "HRANDFIELD r -3 WITHVALUES",
        "HSET r a 1 b 2 c 3 d 4 e 5",
        "HRANDFIELD r 0",
        "HRANDFIELD r 0 WITHVALUES",
        "HRANDFIELD r 5",
        "HRANDFIELD r 100",
        "HRANDFIELD r 100 WITHVALUES",
        "HRANDFIELD r 5 withvalues",
        "HRANDFIELD r abc",
        "HRANDFIELD r 1.5",
        "HRANDFIELD r 1 foo",
        "HRANDFIELD r 1 WITHVALUES x",
        "HRANDFIELD r -9223372036854775808",
        "HRANDFIELD r 9223372036854775807 WITHVALUES",
        "HRANDFIELD r -4611686018427387904 WITHVALUES",
        "HRANDFIELD r 4611686018427387904 WITHVALUES",
    ]);
    let fields = ["a", "b", "c", "d", "e"];
    let pairs = ["a=1", "b=2", "c=3", "d=4", "e=5"];
    random_shape(d, "HRANDFIELD r", &fields, false, true);
    random_shape(d, "HRANDFIELD r 1", &fields, false, true);
    random_shape(d, "HRANDFIELD r 2", &fields, false, true);
    random_shape(d, "HRANDFIELD r 4", &fields, false, true);
    random_shape(d, "HRANDFIELD r -1", &fields, false, false);
    random_shape(d, "HRANDFIELD r -20", &fields, false, false);
    random_pairs(d, "HRANDFIELD r 3 WITHVALUES", &pairs, true);
    random_pairs(d, "HRANDFIELD r -20 WITHVALUES", &pairs, false);
    random_pairs(d, "HRANDFIELD r 1 WITHVALUES", &pairs, true);
    let big_fields: Vec<String> = (0..600).map(|i| format!("f{i}")).collect();
    let big_pairs: Vec<String> = (0..600).map(|i| format!("f{i}=v{i}")).collect();
    let bf: Vec<&str> = big_fields.iter().map(|s| s.as_str()).collect();
    let bp: Vec<&str> = big_pairs.iter().map(|s| s.as_str()).collect();
    random_shape(d, "HRANDFIELD big", &bf, false, true);
    random_shape(d, "HRANDFIELD big 10", &bf, false, true);
    random_shape(d, "HRANDFIELD big 500", &bf, false, true);
    random_shape(d, "HRANDFIELD big -50", &bf, false, false);
    random_pairs(d, "HRANDFIELD big 30 WITHVALUES", &bp, true);
    random_pairs(d, "HRANDFIELD big 400 WITHVALUES", &bp, true);
    // HSCAN
    d.ss(&[
        "HSCAN r 0",
        "HSCAN r 0 MATCH [ab]*",
        "HSCAN r 0 MATCH * COUNT 1",
        "HSCAN r 0 COUNT 0",
        "HSCAN r 0 COUNT -1",
        "HSCAN r 0 COUNT abc",
        "HSCAN r 0 COUNT",
        "HSCAN r 0 TYPE string",
        "HSCAN r 0 foo bar",
        "HSCAN r abc",
        "HSCAN r -1",
        "HSCAN r 18446744073709551616",
        "HSCAN nokey 0",
        "HSCAN nokey 0 COUNT 0",
        "HSCAN nokey abc",
        "HSCAN r 123",
    ]);
    scan_union(d, "HSCAN big 0", true);
    scan_union(d, "HSCAN big 0 COUNT 7", true);
    scan_union(d, "HSCAN big 0 MATCH f1* COUNT 50", true);
    scan_union(d, "HSCAN big 0 MATCH nomatch*", true);
    // In-place changes keep the TTL; an emptied hash goes with it. COPY and
    // RENAME carry hashes across shards (a/b are on different shards).
    d.ss(&[
        "HSET t f v",
        "EXPIRE t 100",
        "HSET t g w",
        "HINCRBY t n 1",
        "HDEL t f",
        "TTL t",
        "HDEL t g n",
        "TTL t",
        "EXISTS t",
        "DEL a b",
        "HSET a x 1 y 2 z 3",
        "COPY a b",
        "HGETALL b",
        "OBJECT ENCODING b",
        "RENAME b k0",
        "HGETALL k0",
        "COPY big a REPLACE",
        "OBJECT ENCODING a",
        "HLEN a",
        "DEL a b k0",
    ]);
}

#[test]
fn hashes_differential() {
    run_scripted("hashes", script_hashes);
}

// ---------------------------------------------------------------------------
// Sets
// ---------------------------------------------------------------------------

fn script_sets(d: &mut Diff) {
    // Single-key commands on an intset (ascending order: compared exactly)
    d.ss(&[
        "SADD si 3 1 2 2 -5",
        "SMEMBERS si",
        "OBJECT ENCODING si",
        "SADD si 10",
        "SADD si 1",
        "SADD si",
        "SCARD si",
        "SCARD nokey",
        "SISMEMBER si 1",
        "SISMEMBER si 01",
        "SISMEMBER si x",
        "SISMEMBER nokey x",
        "SMISMEMBER si 1 x 3 -5",
        "SMISMEMBER nokey a b",
        "SMISMEMBER si",
        "SMEMBERS nokey",
        "SREM si 1 x",
        "SREM nokey a",
        "SMEMBERS si",
        "SREM si 2 3 -5 10 11",
        "EXISTS si",
        "SADD si 9223372036854775807 -9223372036854775808 0",
        "SMEMBERS si",
        "SADD si 9223372036854775808",
    ]);
    unordered(d, "SMEMBERS si");
    d.ss(&["OBJECT ENCODING si", "DEL si", "SADD si 5 4 3 2 1 0", "SMEMBERS si"]);
    // Encodings
    d.ss(&[
        "SADD ss a b c",
        "OBJECT ENCODING ss",
        "SADD mixed 1 2 x",
        "OBJECT ENCODING mixed",
        "SADD m2 x 1",
        "OBJECT ENCODING m2",
        "SADD e 1",
        "OBJECT ENCODING e",
        "SADD e 007",
        "OBJECT ENCODING e",
        "SADD e2 -0",
        "OBJECT ENCODING e2",
        "SADD e3 ' 1'",
        "OBJECT ENCODING e3",
    ]);
    unordered(d, "SMEMBERS ss");
    unordered(d, "SMEMBERS mixed");
    d.s(&many("SADD", "e4", "", 512, false));
    d.ss(&[
        "OBJECT ENCODING e4",
        "SCARD e4",
        "SADD e4 512",
        "OBJECT ENCODING e4",
        "SREM e4 512 0 1",
        "OBJECT ENCODING e4",
    ]);
    d.s(&many("SADD", "big", "", 600, false));
    d.ss(&["OBJECT ENCODING big", "SCARD big", "SISMEMBER big 599", "SMISMEMBER big 0 600 -1"]);
    unordered(d, "SMEMBERS big");
    // SSCAN
    d.ss(&[
        "SSCAN si 0",
        "SSCAN si 0 MATCH 1*",
        "SSCAN si 0 MATCH [2-4] COUNT 1",
        "SSCAN si 99",
        "SSCAN si 0 COUNT 0",
        "SSCAN si 0 COUNT abc",
        "SSCAN si 0 TYPE set",
        "SSCAN si abc",
        "SSCAN nokey 0",
        "SSCAN nokey 0 COUNT 0",
    ]);
    scan_union(d, "SSCAN ss 0", false);
    scan_union(d, "SSCAN big 0", false);
    scan_union(d, "SSCAN big 0 COUNT 3", false);
    scan_union(d, "SSCAN big 0 MATCH 1* COUNT 20", false);
    // SPOP
    d.ss(&[
        "SPOP nokey",
        "SPOP nokey 3",
        "SPOP nokey 0",
        "SPOP si 0",
        "SPOP si -1",
        "SPOP si abc",
        "SPOP si 1 2",
        "SADD one x",
        "SPOP one",
        "EXISTS one",
        "SADD one 7",
        "SPOP one 1",
        "EXISTS one",
        "SADD p 5 3 1",
        "SPOP p 10",
        "EXISTS p",
        "SADD p 5 3 1",
        "SPOP p 3",
        "EXISTS p",
    ]);
    d.s("SADD q a b c");
    unordered(d, "SPOP q 3");
    d.s("EXISTS q");
    let ten: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    let ten_refs: Vec<&str> = ten.iter().map(|s| s.as_str()).collect();
    d.s("SADD p 1 2 3 4 5 6 7 8 9 10");
    random_shape(d, "SPOP p", &ten_refs, false, true);
    random_shape(d, "SPOP p 3", &ten_refs, false, true);
    d.s("SCARD p");
    random_shape(d, "SPOP p 5", &ten_refs, false, true);
    d.ss(&["SCARD p", "OBJECT ENCODING p", "DEL p"]);
    // SPOP's CASE 3 builds a new set from what remains: all integers -> intset.
    d.s("SADD h3 x 1 2 3 4 5 6 7 8 9");
    d.ss(&["SREM h3 x", "OBJECT ENCODING h3"]);
    random_shape(d, "SPOP h3 8", &ten_refs, false, true);
    d.ss(&["SCARD h3", "OBJECT ENCODING h3", "DEL h3"]);
    // SRANDMEMBER
    d.ss(&[
        "SRANDMEMBER nokey",
        "SRANDMEMBER nokey 5",
        "SRANDMEMBER nokey -5",
        "SRANDMEMBER si 0",
        "SRANDMEMBER si 6",
        "SRANDMEMBER si 100",
        "SRANDMEMBER si abc",
        "SRANDMEMBER si 1 2",
        "SRANDMEMBER si -9223372036854775808",
        "SRANDMEMBER si 9223372036854775807",
    ]);
    unordered(d, "SRANDMEMBER ss 100");
    let six = ["0", "1", "2", "3", "4", "5"];
    random_shape(d, "SRANDMEMBER si", &six, false, true);
    random_shape(d, "SRANDMEMBER si 1", &six, false, true);
    random_shape(d, "SRANDMEMBER si 3", &six, false, true);
    random_shape(d, "SRANDMEMBER si 5", &six, false, true);
    random_shape(d, "SRANDMEMBER si -20", &six, false, false);
    let big: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    let big_refs: Vec<&str> = big.iter().map(|s| s.as_str()).collect();
    random_shape(d, "SRANDMEMBER big", &big_refs, false, true);
    random_shape(d, "SRANDMEMBER big 10", &big_refs, false, true);
    random_shape(d, "SRANDMEMBER big 300", &big_refs, false, true);
    random_shape(d, "SRANDMEMBER big -30", &big_refs, false, false);
    d.s("SCARD big");
    // WRONGTYPE, in Redis's check order
    d.ss(&[
        "SET s str",
        "HSET hs f v",
        "SADD s x",
        "SADD hs x",
        "HSET ss f v",
        "SREM s x",
        "SCARD s",
        "SMEMBERS s",
        "SISMEMBER s x",
        "SMISMEMBER s x",
        "SPOP s",
        "SPOP s 2",
        "SPOP s abc",
        "SRANDMEMBER s",
        "SRANDMEMBER s 2",
        "SRANDMEMBER s abc",
        "SSCAN s 0",
        "SSCAN s abc",
        "SSCAN s 0 COUNT 0",
        "GET s",
    ]);
    // SMOVE (a/b and c/d are on different shards)
    d.ss(&[
        "SADD src 1 2",
        "SMOVE src dst 1",
        "SMOVE src dst 1",
        "SMOVE nokey dst 1",
        "SMOVE s dst 1",
        "SMOVE src s 2",
        "SMOVE nokey s 1",
        "SMOVE src src 2",
        "SMOVE src src 9",
        "SMOVE src dst 2",
        "EXISTS src",
        "SMEMBERS dst",
        "OBJECT ENCODING dst",
        "SMOVE dst nd x",
        "SADD dst x",
        "SMOVE dst nd x",
        "OBJECT ENCODING nd",
        "SMOVE dst nd 1",
        "OBJECT ENCODING nd",
        "SADD a 1 2 3",
        "SMOVE a b 2",
        "SMEMBERS a",
        "SMEMBERS b",
        "SMOVE a b 2",
        "SMOVE a b 1",
        "SMOVE a b 3",
        "EXISTS a",
        "SMEMBERS b",
        "SMOVE b s 1",
        "SMOVE s b 1",
        "SMOVE b a 1",
        "SMOVE b c x",
        "SMOVE b c 2",
        "SMEMBERS c",
        "OBJECT ENCODING c",
        "SMOVE",
        "SMOVE a b",
        "DEL a b c d",
    ]);
    // SINTER / SINTERCARD / SINTERSTORE across shards
    d.ss(&[
        "SADD a 1 2 3 4 5",
        "SADD b 3 4 5 6",
        "SADD c 4 5 6 7 x",
        "SADD d 5",
        "SINTER a b",
        "SINTER a b c",
        "SINTER a b c d",
        "SINTER b a",
        "SINTER a",
        "SINTER a nokey",
        "SINTER nokey a",
        "SINTER a s",
        "SINTER nokey s",
        "SINTER s nokey",
        "SINTER a a",
        "SINTERSTORE k0 a b",
        "SMEMBERS k0",
        "OBJECT ENCODING k0",
        "SINTERSTORE k0 a c",
        "SMEMBERS k0",
        "SINTERSTORE k0 a nokey",
        "EXISTS k0",
        "SINTERSTORE k0 a b",
        "SINTERSTORE k0 a s",
        "SMEMBERS k0",
        "SINTERSTORE k0 c d a",
        "SINTERSTORE k0 a b d c",
        "SMEMBERS k0",
        "SINTERSTORE k2 b",
        "SMEMBERS k2",
        "SINTERSTORE str2 a b",
        "SET str2 x",
        "SINTERSTORE str2 a b",
        "TYPE str2",
        "SINTERSTORE k2 nokey",
        "EXISTS k2",
        "SINTERSTORE k2",
    ]);
    unordered(d, "SINTER c a");
    unordered(d, "SINTER c c");
    d.ss(&[
        "SINTERCARD 2 a b",
        "SINTERCARD 3 a b c",
        "SINTERCARD 4 a b c d",
        "SINTERCARD 2 a b LIMIT 2",
        "SINTERCARD 2 a b LIMIT 1",
        "SINTERCARD 2 a b LIMIT 0",
        "SINTERCARD 2 a b LIMIT 100",
        "SINTERCARD 2 a b limit -1",
        "SINTERCARD 2 a b LIMIT abc",
        "SINTERCARD 2 a b LIMIT",
        "SINTERCARD 2 a b LIMIT 1 LIMIT 3",
        "SINTERCARD 2 a b FOO 1",
        "SINTERCARD 0 a",
        "SINTERCARD -1 a",
        "SINTERCARD abc a",
        "SINTERCARD 3 a b",
        "SINTERCARD 1 a b",
        "SINTERCARD 2 a nokey",
        "SINTERCARD 2 a s",
        "SINTERCARD 2 nokey s",
        "SINTERCARD 1 c",
        "SINTERCARD",
        "SINTERCARD 1",
    ]);
    // SUNION / SDIFF and their STORE forms
    d.ss(&[
        "SUNION a b",
        "SUNION a b d",
        "SUNION nokey",
        "SUNION nokey a",
        "SUNION a s",
        "SUNION nokey s",
        "SUNIONSTORE k0 a b",
        "SMEMBERS k0",
        "OBJECT ENCODING k0",
        "SUNIONSTORE k0 nokey",
        "EXISTS k0",
        "SUNIONSTORE k0 a s",
        "SDIFF a b",
        "SDIFF a b c",
        "SDIFF b a",
        "SDIFF a a",
        "SDIFF a b a",
        "SDIFF nokey a",
        "SDIFF a nokey",
        "SDIFF a nokey b",
        "SDIFF a s",
        "SDIFF s a",
        "SDIFF nokey s",
        "SDIFFSTORE k0 a b",
        "SMEMBERS k0",
        "SDIFFSTORE k0 a a",
        "EXISTS k0",
        "SDIFFSTORE k2 c a",
        "OBJECT ENCODING k2",
        "SDIFFSTORE k2 a s",
    ]);
    unordered(d, "SUNION a c");
    unordered(d, "SUNION c d nokey");
    unordered(d, "SDIFF c a");
    unordered(d, "SMEMBERS k2");
    // SDIFF's second algorithm (others small) fills the result first: the
    // intermediate set grows past the intset limit and stays a hashtable.
    d.s(&many("SADD", "a", "", 600, false));
    d.s(&many("SADD", "b", "", 100, false));
    d.ss(&[
        "SADD c 100 101 102",
        "SDIFFSTORE k0 a b c",
        "OBJECT ENCODING k0",
        "SCARD k0",
        "SDIFFSTORE k0 a b",
        "OBJECT ENCODING k0",
        "SCARD k0",
    ]);
    unordered(d, "SDIFF a b c");
    d.ss(&[
        "SINTERSTORE k2 a b",
        "OBJECT ENCODING k2",
        "SCARD k2",
        "SUNIONSTORE k2 b c",
        "OBJECT ENCODING k2",
        "SCARD k2",
    ]);
    // TTLs: SPOP/SREM change in place (the TTL stays); the STORE forms replace
    // the destination (no TTL); COPY/RENAME carry sets across shards.
    d.ss(&["SADD tt 1 2 3 4 5 6 7 8 9 10", "EXPIRE tt 100", "SREM tt 1"]);
    let nine = ["2", "3", "4", "5", "6", "7", "8", "9", "10"];
    random_shape(d, "SPOP tt 8", &nine, false, true);
    d.ss(&["TTL tt", "SCARD tt"]);
    random_shape(d, "SPOP tt", &nine, false, true);
    d.ss(&[
        "EXISTS tt",
        "SET k0 x EX 100",
        "SINTERSTORE k0 a b",
        "TTL k0",
        "DEL k0",
        "COPY a k0",
        "OBJECT ENCODING k0",
        "SCARD k0",
        "RENAME k0 b",
        "SCARD b",
        "SDIFF a b",
    ]);
    // Every key on one shard (a hash tag): the one-step path of the same plans.
    d.ss(&[
        "SADD {t}a 1 2 3 4",
        "SADD {t}b 3 4 5",
        "SADD {t}x 4 y",
        "SET {t}s str",
        "SINTER {t}a {t}b",
        "SINTER {t}a {t}b {t}x",
        "SINTER {t}a {t}nokey",
        "SINTER {t}a {t}s",
        "SINTERCARD 2 {t}a {t}b",
        "SINTERCARD 2 {t}a {t}b LIMIT 1",
        "SINTERCARD 2 {t}a {t}s",
        "SINTERSTORE {t}d {t}a {t}b",
        "SMEMBERS {t}d",
        "OBJECT ENCODING {t}d",
        "SINTERSTORE {t}d {t}a {t}nokey",
        "EXISTS {t}d",
        "SUNION {t}a {t}b",
        "SUNIONSTORE {t}d {t}a {t}b",
        "SMEMBERS {t}d",
        "SUNIONSTORE {t}d {t}a {t}s",
        "SDIFF {t}a {t}b",
        "SDIFF {t}a {t}a",
        "SDIFFSTORE {t}d {t}a {t}b {t}x",
        "SMEMBERS {t}d",
        "SDIFFSTORE {t}d {t}b {t}b",
        "EXISTS {t}d",
        "SDIFFSTORE {t}s {t}a {t}b",
        "TYPE {t}s",
        "SMOVE {t}a {t}b 1",
        "SMOVE {t}a {t}x 2",
        "OBJECT ENCODING {t}x",
        "SMEMBERS {t}a",
        "SMEMBERS {t}b",
    ]);
    unordered(d, "SUNION {t}a {t}x");
    unordered(d, "SMEMBERS {t}x");
    d.s("DBSIZE");
}

#[test]
fn sets_differential() {
    run_scripted("sets", script_sets);
}

// ---------------------------------------------------------------------------
// Cross-shard SMOVE atomicity
// ---------------------------------------------------------------------------

mod atomic {
    use super::common::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tessera::runtime::shard_of_slot;
    use tessera::util::slot::key_hash_slot;

    const MEMBERS: usize = 40;

    fn shard_of(key: &str, shards: usize) -> usize {
        let slot = key_hash_slot(key.as_bytes());
        assert_eq!(slot, local_key_slot(key.as_bytes()));
        shard_of_slot(slot, shards)
    }

    /// One set key per shard.
    fn keys_per_shard(shards: usize) -> Vec<String> {
        let mut keys: Vec<Option<String>> = vec![None; shards];
        let mut i = 0;
        while keys.iter().any(|k| k.is_none()) {
            let k = format!("smv:{i}");
            let s = shard_of(&k, shards);
            if keys[s].is_none() {
                keys[s] = Some(k);
            }
            i += 1;
        }
        keys.into_iter().map(|k| k.expect("filled")).collect()
    }

    fn members_of(c: &mut Client, cmd: &str, keys: &[String]) -> Vec<Vec<u8>> {
        let mut args: Vec<&str> = vec![cmd];
        args.extend(keys.iter().map(|k| k.as_str()));
        let v = c.cmd_value(&args);
        let arr = v.as_array().unwrap_or_else(|| panic!("{cmd} returned {v:?}"));
        arr.iter().map(|x| x.as_bytes().expect("bulk member").to_vec()).collect()
    }

    /// Writers SMOVE members between sets on different shards while a
    /// reader checks, with single atomic commands, that the union always
    /// holds every member (nothing lost) and no two sets share one (nothing
    /// duplicated). Afterwards the cardinalities add up.
    pub fn smove_is_atomic(shards: usize) {
        let server = TesseraServer::start(shards, &[]);
        let keys = Arc::new(keys_per_shard(shards));
        let all: Vec<String> = (0..MEMBERS).map(|i| format!("m{i}")).collect();
        {
            let mut c = server.client();
            for (i, m) in all.iter().enumerate() {
                let k = &keys[i % keys.len()];
                assert_eq!(c.cmd(&["SADD", k, m]), b":1\r\n");
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (moves, reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        std::thread::scope(|s| {
            for w in 0..3u64 {
                let (keys, stop, moves) = (keys.clone(), stop.clone(), moves.clone());
                let mut c = server.client();
                s.spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (w + 1);
                    let mut rnd = move |n: usize| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % n as u64) as usize
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let a = rnd(keys.len());
                        let b = (a + 1 + rnd(keys.len() - 1)) % keys.len();
                        let m = format!("m{}", rnd(MEMBERS));
                        let r = c.cmd(&["SMOVE", &keys[a], &keys[b], &m]);
                        assert!(r == b":1\r\n" || r == b":0\r\n", "SMOVE replied {}", escape(&r));
                        moves.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let (keys, stop2, reads2) = (keys.clone(), stop.clone(), reads.clone());
            let mut c = server.client();
            let reader = s.spawn(move || {
                let mut pair = 0usize;
                while !stop2.load(Ordering::Relaxed) {
                    let mut u = members_of(&mut c, "SUNION", &keys);
                    u.sort();
                    u.dedup();
                    assert_eq!(u.len(), MEMBERS, "SUNION saw {} members: a torn SMOVE", u.len());
                    let (i, j) = (pair % keys.len(), (pair + 1) % keys.len());
                    pair += 1;
                    let n = c.cmd(&["SINTERCARD", "2", &keys[i], &keys[j]]);
                    assert_eq!(n, b":0\r\n", "a member is in two sets at once");
                    reads2.fetch_add(1, Ordering::Relaxed);
                }
            });
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_millis(1500));
            while t0.elapsed() < Duration::from_secs(12) && (moves.load(Ordering::Relaxed) < 200 || reads.load(Ordering::Relaxed) < 100) {
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::Relaxed);
            if let Err(e) = reader.join() {
                std::panic::resume_unwind(e);
            }
        });
        assert!(
            moves.load(Ordering::Relaxed) >= 200 && reads.load(Ordering::Relaxed) >= 100,
            "too few operations"
        );
        let mut c = server.client();
        let mut total = 0;
        for k in keys.iter() {
            total += c.cmd_value(&["SCARD", k]).as_int().expect("SCARD");
        }
        assert_eq!(total as usize, MEMBERS);
        let mut u = members_of(&mut c, "SUNION", &keys);
        u.sort();
        let mut want: Vec<Vec<u8>> = all.iter().map(|m| m.as_bytes().to_vec()).collect();
        want.sort();
        assert_eq!(u, want);
    }
}

#[test]
fn smove_cross_shard_atomic_2_shards() {
    atomic::smove_is_atomic(2);
}

#[test]
fn smove_cross_shard_atomic_4_shards() {
    atomic::smove_is_atomic(4);
}

// ---------------------------------------------------------------------------
// Encoding limits from the configuration
// ---------------------------------------------------------------------------

/// Both servers started with small listpack / intset limits (Tessera does not
/// accept CONFIG SET for them yet): the conversions must happen at the same
/// points, and the replies of the small encodings stay byte-identical.
#[test]
fn encoding_limits_from_config() {
    let conf = [
        "--hash-max-listpack-entries",
        "3",
        "--hash-max-listpack-value",
        "4",
        "--set-max-intset-entries",
        "3",
    ];
    let t = TesseraServer::start(SHARDS, &conf);
    let r = RedisServer::start(&conf);
    let (mut tc, mut rc) = (t.client(), r.client());
    let script = [
        "CONFIG GET hash-max-listpack-entries",
        "HSET h a 1 b 2 c 3",
        "OBJECT ENCODING h",
        "HGETALL h",
        "HSET h d 4",
        "OBJECT ENCODING h",
        "HSET v f 1234",
        "OBJECT ENCODING v",
        "HSET v g 12345",
        "OBJECT ENCODING v",
        "HSET w abcde 1",
        "OBJECT ENCODING w",
        "HSETNX x f 12345",
        "OBJECT ENCODING x",
        "HSET y f 1",
        "HINCRBY y abcde 1",
        "OBJECT ENCODING y",
        "HSET z f 9999",
        "HINCRBY z f 1",
        "OBJECT ENCODING z",
        "HINCRBYFLOAT z g 0.5",
        "OBJECT ENCODING z",
        "HSET z2 f 1 g 2",
        "HINCRBYFLOAT z2 f 0.25",
        "OBJECT ENCODING z2",
        "HGETALL z2",
        "SADD s 3 2 1",
        "OBJECT ENCODING s",
        "SMEMBERS s",
        "SADD s 0",
        "OBJECT ENCODING s",
        "SADD a 1 2",
        "SADD b 2 3",
        "SUNIONSTORE u a b",
        "OBJECT ENCODING u",
        "SMEMBERS u",
        "SADD b 4 5",
        "SUNIONSTORE u a b",
        "OBJECT ENCODING u",
        "SMOVE b a 4",
        "OBJECT ENCODING a",
        "SMOVE b a 5",
        "OBJECT ENCODING a",
    ];
    for line in script {
        let args = split_words(line);
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (tr, rr) = (tc.cmd(&refs), rc.cmd(&refs));
        if line.starts_with("CONFIG GET") {
            continue;
        }
        assert_eq!(escape(&tr), escape(&rr), "{line}");
    }
}
