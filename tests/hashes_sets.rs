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
}

#[test]
fn hashes_differential() {
    run_scripted("hashes", script_hashes);
}
