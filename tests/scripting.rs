//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD / EXISTS /
//! FLUSH.
//!
//! * Differential against a real redis-server 7.0.15 (RESP2 then RESP3,
//!   Tessera at 2 shards; the keys a, b, c, d spread over both shards): Lua ->
//!   reply conversion, reply -> Lua conversion through redis.call (with and
//!   without redis.setresp(3)), every error text byte for byte (they embed the
//!   script's sha1 and the line number), KEYS / ARGV, declared and undeclared
//!   keys on several shards, the script cache, the bundled libraries
//!   (cjson, cmsgpack, bit, struct), the sandbox, EVAL inside MULTI/EXEC.
//! * Concurrency at 4 shards: a script moving a value between two declared
//!   keys on different shards is never seen half done (by MGET nor by another
//!   script), and INCR of an undeclared key from four clients loses nothing.
//!
//! Every case was run against redis-server 7.0.15 first; only replies that do
//! not depend on time, memory addresses, hash-table iteration order (maps and
//! sets have one element), the PRNG state left by earlier scripts
//! (`math.random` is always seeded in the same script) or x86 undefined
//! behaviour (`return 1e20` / `math.huge` converted to an integer; NaN's sign)
//! are compared. Never use `error({})` here: it crashes redis-server 7.0.15
//! (SIGSEGV in luaCallFunction).
//!
//! Lua code is written inside `'...'` arguments of `Diff::s` (no escapes, so
//! the Lua strings use double quotes), or passed with `Diff::c` / `Diff::cb`
//! when it needs newlines or binary bytes.

mod common;

use common::diff::*;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// SHA-1 of `data` as 40 lower-case hex digits (what SCRIPT LOAD returns for a
/// script body). Checked against known vectors in `sha1_helper_matches_known_vectors`.
fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

fn sha(body: &str) -> String {
    sha1_hex(body.as_bytes())
}

#[test]
fn sha1_helper_matches_known_vectors() {
    assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(
        sha1_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
    );
    assert_eq!(sha1_hex(&[b'a'; 1000]), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    // What redis-server 7.0.15 answers to SCRIPT LOAD of these bodies.
    assert_eq!(sha(r#"return "loaded""#), "e0c82beb678ad47bd658710d9905611aa4a0b187");
    assert_eq!(sha(r#"return "cached""#), "87a13fe13dcad2b3b5313dc171ca151cfaaa134b");
    assert_eq!(
        sha(r#"return redis.call("INCRBY", KEYS[1], ARGV[1])"#),
        "7d6a962aa4923dd6a700f73ce6ad148d2fc16ec9"
    );
}

// ------------------------------------------------------ Lua -> reply conversion

fn script_lua_to_reply(d: &mut Diff) {
    d.ss(&[
        // numbers: integers, truncation toward zero, negative
        "EVAL 'return 1' 0",
        "EVAL 'return 0' 0",
        "EVAL 'return -42' 0",
        "EVAL 'return 3.7' 0",
        "EVAL 'return -3.7' 0",
        "EVAL 'return 0.5' 0",
        "EVAL 'return 2^53' 0",
        "EVAL 'return 10 / 4' 0",
        "EVAL 'return 7 % 3' 0",
        // strings
        r#"EVAL 'return "hello"' 0"#,
        r#"EVAL 'return ""' 0"#,
        r#"EVAL 'return "3.7"' 0"#,
        r#"EVAL 'return "10" + 5' 0"#,
        // booleans and nil
        "EVAL 'return true' 0",
        "EVAL 'return false' 0",
        "EVAL 'return nil' 0",
        "EVAL 'return' 0",
        "EVAL '' 0",
        // tables as arrays: stop at the first nil, false inside is a nil bulk
        "EVAL 'return {}' 0",
        r#"EVAL 'return {1,2,3,"x"}' 0"#,
        "EVAL 'return {1,2,nil,4}' 0",
        "EVAL 'return {nil,2}' 0",
        "EVAL 'return {1,false,3}' 0",
        "EVAL 'return {1,true,3}' 0",
        r#"EVAL 'return {1.5,"a",{2,{3,"b"}},{}}' 0"#,
        "EVAL 'return {x=1,y=2}' 0",
        "EVAL 'return {1,2,x=3}' 0",
        "EVAL 'return {1, function() end, 3}' 0",
        "EVAL 'return function() end' 0",
        "EVAL 'return {1, cjson.null, 3}' 0",
        // status and error tables
        r#"EVAL 'return {ok="fine"}' 0"#,
        r#"EVAL 'return {err="bad thing"}' 0"#,
        r#"EVAL 'return {err="MYERR bad thing"}' 0"#,
        r#"EVAL 'return {ok="x",err="y"}' 0"#,
        r#"EVAL 'return {1,{err="inner"},3}' 0"#,
        r#"EVAL 'return {1,{ok="inner"},3}' 0"#,
        r#"EVAL 'return {err="line1\nline2"}' 0"#,
        r#"EVAL 'return {ok="a\nb"}' 0"#,
        // err / ok fields that are not strings: treated as a plain table
        "EVAL 'return {err=1}' 0",
        "EVAL 'return {err=true}' 0",
        "EVAL 'return {err={}}' 0",
        "EVAL 'return {ok=1}' 0",
        "EVAL 'return {ok=false}' 0",
        "EVAL 'return {err=1, 7, 8}' 0",
        // redis.status_reply / redis.error_reply
        r#"EVAL 'return redis.status_reply("GOOD")' 0"#,
        r#"EVAL 'return redis.status_reply("")' 0"#,
        r#"EVAL 'return redis.status_reply("a\r\nb")' 0"#,
        r#"EVAL 'return redis.error_reply("plain message")' 0"#,
        r#"EVAL 'return redis.error_reply("CODE with code")' 0"#,
        r#"EVAL 'return redis.error_reply("-CODE with dash")' 0"#,
        r#"EVAL 'return redis.error_reply("")' 0"#,
        r#"EVAL 'return redis.error_reply("a\r\nb")' 0"#,
        r#"EVAL 'return {redis.status_reply("S"), redis.error_reply("E")}' 0"#,
        r#"EVAL 'local r = redis.error_reply("X y"); return {type(r), r.err}' 0"#,
        r#"EVAL 'local r = redis.status_reply("Z"); return {type(r), r.ok}' 0"#,
        "EVAL 'return redis.error_reply()' 0",
        "EVAL 'return redis.error_reply(5)' 0",
        "EVAL 'return redis.error_reply({})' 0",
        "EVAL 'return redis.status_reply()' 0",
        "EVAL 'return redis.status_reply(5)' 0",
    ]);
}

fn script_resp3_conversions(d: &mut Diff) {
    d.ss(&[
        // The RESP3 table forms convert without setresp(3) too (to RESP2
        // shapes on a RESP2 connection).
        "EVAL 'return {double=3.5}' 0",
        "EVAL 'return {map={a=1}}' 0",
        "EVAL 'return {set={a=true}}' 0",
        r#"EVAL 'return {big_number="123456789012345678901234567890"}' 0"#,
        // after redis.setresp(3)
        "EVAL 'redis.setresp(3); return {double=3.5}' 0",
        "EVAL 'redis.setresp(3); return {double=0.1}' 0",
        "EVAL 'redis.setresp(3); return {double=-2}' 0",
        "EVAL 'redis.setresp(3); return {double=1e300}' 0",
        "EVAL 'redis.setresp(3); return {double=1/0}' 0",
        "EVAL 'redis.setresp(3); return {double=-1/0}' 0",
        r#"EVAL 'redis.setresp(3); return {double="2.5"}' 0"#,
        "EVAL 'redis.setresp(3); return {map={a=1}}' 0",
        "EVAL 'redis.setresp(3); return {map={k={1,2}}}' 0",
        "EVAL 'redis.setresp(3); return {map={k=false}}' 0",
        "EVAL 'redis.setresp(3); return {map={k={double=1.5}}}' 0",
        "EVAL 'redis.setresp(3); return {map={}}' 0",
        "EVAL 'redis.setresp(3); return {set={a=true}}' 0",
        "EVAL 'redis.setresp(3); return {set={x=false}}' 0",
        "EVAL 'redis.setresp(3); return {set={}}' 0",
        r#"EVAL 'redis.setresp(3); return {big_number="123456789012345678901234567890"}' 0"#,
        "EVAL 'redis.setresp(3); return {big_number=12345}' 0",
        // booleans: #t / #f on RESP3 connections only after setresp(3)
        "EVAL 'redis.setresp(3); return true' 0",
        "EVAL 'redis.setresp(3); return false' 0",
        "EVAL 'redis.setresp(3); return nil' 0",
        "EVAL 'redis.setresp(3); return {1,true,false}' 0",
        "EVAL 'redis.setresp(3); return 3.7' 0",
        r#"EVAL 'redis.setresp(3); return {ok="st"}' 0"#,
        r#"EVAL 'redis.setresp(3); return {err="ERR3 e"}' 0"#,
        "EVAL 'redis.setresp(2); return false' 0",
        "EVAL 'redis.setresp(3); redis.setresp(2); return false' 0",
        r#"EVAL 'redis.setresp("3"); return false' 0"#,
        "EVAL 'return redis.setresp(3)' 0",
        // errors
        "EVAL 'redis.setresp(4)' 0",
        "EVAL 'redis.setresp(1)' 0",
        "EVAL 'redis.setresp()' 0",
        "EVAL 'redis.setresp(3,4)' 0",
        // setresp does not outlive its script
        "EVAL 'return false' 0",
        "EVAL 'return {1,true}' 0",
    ]);
}

#[test]
fn eval_converts_lua_values_to_replies_like_redis() {
    run_scripted("lua_to_reply", script_lua_to_reply);
}

#[test]
fn eval_converts_resp3_tables_and_booleans_after_setresp_like_redis() {
    run_scripted("lua_to_reply_resp3", script_resp3_conversions);
}

// ------------------------------------------------- reply -> Lua conversion

fn script_reply_to_lua(d: &mut Diff) {
    d.ss(&[
        "RPUSH l a b c",
        "HSET h f v",
        "ZADD z 1.5 m1 2 m2",
        "SADD st one",
        "SET s 10",
        // integer
        r#"EVAL 'return redis.call("INCR", KEYS[1])' 1 s"#,
        r#"EVAL 'return type(redis.call("INCR", KEYS[1]))' 1 s"#,
        r#"EVAL 'return redis.call("INCR", KEYS[1]) + 0.5' 1 s"#,
        // bulk
        r#"EVAL 'return redis.call("GET", KEYS[1])' 1 s"#,
        r#"EVAL 'return type(redis.call("GET", KEYS[1]))' 1 s"#,
        r#"EVAL 'return redis.call("GET", KEYS[1]) .. "!"' 1 s"#,
        // nil bulk -> false
        r#"EVAL 'return redis.call("GET", KEYS[1])' 1 nokey"#,
        r#"EVAL 'return type(redis.call("GET", KEYS[1]))' 1 nokey"#,
        r#"EVAL 'return tostring(redis.call("GET", KEYS[1]))' 1 nokey"#,
        r#"EVAL 'return redis.call("GET", KEYS[1]) == false' 1 nokey"#,
        // status -> {ok=...}
        r#"EVAL 'return redis.call("SET", KEYS[1], "1")' 1 x"#,
        r#"EVAL 'local r = redis.call("SET", KEYS[1], "1"); return {type(r), r.ok}' 1 x"#,
        r#"EVAL 'return {redis.call("SET", KEYS[1], "2")}' 1 x"#,
        r#"EVAL 'return redis.call("PING")' 0"#,
        r#"EVAL 'return redis.call("PING", "hi")' 0"#,
        r#"EVAL 'return redis.call("TYPE", KEYS[1])' 1 l"#,
        r#"EVAL 'return redis.call("TYPE", KEYS[1]).ok' 1 l"#,
        // error -> {err=...} through pcall
        r#"EVAL 'local r = redis.pcall("INCR", KEYS[1]); return {type(r), r.err}' 1 l"#,
        r#"EVAL 'return redis.pcall("INCR", KEYS[1])' 1 l"#,
        r#"EVAL 'local r = redis.pcall("INCR", KEYS[1]); return r' 1 l"#,
        // arrays, nested arrays
        r#"EVAL 'return redis.call("LRANGE", KEYS[1], 0, -1)' 1 l"#,
        r#"EVAL 'local r = redis.call("LRANGE", KEYS[1], 0, -1); return {type(r), #r, r[1], r[3]}' 1 l"#,
        r#"EVAL 'return redis.call("LRANGE", KEYS[1], 0, -1)' 1 nokey"#,
        r#"EVAL 'return #redis.call("LRANGE", KEYS[1], 0, -1)' 1 nokey"#,
        r#"EVAL 'return redis.call("MGET", KEYS[1], KEYS[2], KEYS[3])' 3 s nokey x"#,
        r#"EVAL 'local r = redis.call("MGET", KEYS[1], KEYS[2], KEYS[3]); return {type(r[1]), type(r[2]), type(r[3]), #r}' 3 s nokey x"#,
        r#"EVAL 'return redis.call("HGETALL", KEYS[1])' 1 h"#,
        r#"EVAL 'local r = redis.call("HGETALL", KEYS[1]); return {type(r), #r, r[1], r[2]}' 1 h"#,
        r#"EVAL 'return redis.call("ZRANGE", KEYS[1], 0, -1, "WITHSCORES")' 1 z"#,
        r#"EVAL 'return redis.call("ZSCORE", KEYS[1], "m1")' 1 z"#,
        r#"EVAL 'return redis.call("SMEMBERS", KEYS[1])' 1 st"#,
        r#"EVAL 'return {redis.call("LRANGE", KEYS[1], 0, 0), redis.call("HGETALL", KEYS[2]), redis.call("LLEN", KEYS[1])}' 2 l h"#,
        // with redis.setresp(3): maps, sets, doubles, nulls
        r#"EVAL 'redis.setresp(3); return redis.call("HGETALL", KEYS[1])' 1 h"#,
        r#"EVAL 'redis.setresp(3); local r = redis.call("HGETALL", KEYS[1]); return {type(r), type(r.map), r.map.f, #r}' 1 h"#,
        r#"EVAL 'redis.setresp(3); local r = redis.call("HGETALL", KEYS[1]); return type(r.map)' 1 nokey"#,
        r#"EVAL 'redis.setresp(3); return redis.call("HGETALL", KEYS[1])' 1 nokey"#,
        r#"EVAL 'redis.setresp(3); return redis.call("ZRANGE", KEYS[1], 0, -1, "WITHSCORES")' 1 z"#,
        r#"EVAL 'redis.setresp(3); local r = redis.call("ZRANGE", KEYS[1], 0, -1, "WITHSCORES"); return {type(r[1]), r[1][1], type(r[1][2]), type(r[1][2].double), tostring(r[1][2].double), tostring(r[2][2].double)}' 1 z"#,
        r#"EVAL 'redis.setresp(3); return redis.call("ZSCORE", KEYS[1], "m1")' 1 z"#,
        r#"EVAL 'redis.setresp(3); local r = redis.call("ZSCORE", KEYS[1], "m1"); return {type(r), r.double * 2}' 1 z"#,
        r#"EVAL 'redis.setresp(3); return redis.call("ZSCORE", KEYS[1], "nomember")' 1 z"#,
        r#"EVAL 'redis.setresp(3); return redis.call("SMEMBERS", KEYS[1])' 1 st"#,
        r#"EVAL 'redis.setresp(3); local r = redis.call("SMEMBERS", KEYS[1]); return {type(r.set), tostring(r.set.one)}' 1 st"#,
        r#"EVAL 'redis.setresp(3); return redis.call("GET", KEYS[1])' 1 nokey"#,
        r#"EVAL 'redis.setresp(3); return type(redis.call("GET", KEYS[1]))' 1 nokey"#,
        r#"EVAL 'redis.setresp(3); return {1, redis.call("GET", KEYS[1]), 3}' 1 nokey"#,
        r#"EVAL 'redis.setresp(3); return redis.call("GET", KEYS[1])' 1 s"#,
        r#"EVAL 'redis.setresp(3); return redis.call("LRANGE", KEYS[1], 0, -1)' 1 l"#,
        r#"EVAL 'redis.setresp(3); return redis.call("SET", KEYS[1], "3")' 1 x"#,
        r#"EVAL 'redis.setresp(3); return redis.call("EXISTS", KEYS[1])' 1 nokey"#,
        r#"EVAL 'redis.setresp(3); return redis.pcall("INCR", KEYS[1])' 1 l"#,
        // back to RESP2 conversions inside the same script
        r#"EVAL 'redis.setresp(3); redis.setresp(2); return redis.call("HGETALL", KEYS[1])' 1 h"#,
        r#"EVAL 'redis.setresp(3); redis.setresp(2); return type(redis.call("GET", KEYS[1]))' 1 nokey"#,
        // INCRBYFLOAT replies a bulk string
        r#"EVAL 'return redis.call("INCRBYFLOAT", KEYS[1], "0.5")' 1 s"#,
        r#"EVAL 'return type(redis.call("INCRBYFLOAT", KEYS[1], "0.5"))' 1 s"#,
    ]);
}

#[test]
fn redis_call_converts_replies_to_lua_values_like_redis() {
    run_scripted("reply_to_lua", script_reply_to_lua);
}

// ------------------------------------------------------------------ errors

fn script_command_errors(d: &mut Diff) {
    d.ss(&[
        "SET str abc",
        // a command error raised by redis.call ends the script
        r#"EVAL 'return redis.call("INCR", KEYS[1])' 1 str"#,
        r#"EVAL 'return redis.call("INCR", "str")' 0"#,
        r#"EVAL 'redis.call("INCR", KEYS[1]); return "unreached"' 1 str"#,
        r#"EVAL 'return redis.call("LPUSH", KEYS[1], "x")' 1 str"#,
        r#"EVAL 'return redis.call("RENAME", KEYS[1], KEYS[2])' 2 nokey b"#,
        // ... redis.pcall returns it
        r#"EVAL 'return redis.pcall("INCR", KEYS[1])' 1 str"#,
        r#"EVAL 'local r = redis.pcall("INCR", KEYS[1]); return {type(r), r.err}' 1 str"#,
        r#"EVAL 'return redis.pcall("LPUSH", KEYS[1], "x")' 1 str"#,
        r#"EVAL 'local r = redis.pcall("LPUSH", KEYS[1], "x"); return "after: " .. r.err' 1 str"#,
        r#"EVAL 'return redis.pcall("RENAME", KEYS[1], KEYS[2])' 2 nokey b"#,
        // a failed call in the middle keeps the writes before it
        r#"EVAL 'redis.call("SET", KEYS[1], "before"); redis.call("INCR", KEYS[2]); redis.call("SET", KEYS[1], "after")' 2 a str"#,
        "GET a",
        // unknown command, wrong arity, no arguments, bad argument types
        r#"EVAL 'return redis.call("nosuchcommand")' 0"#,
        r#"EVAL 'return redis.pcall("nosuchcommand", "a")' 0"#,
        r#"EVAL 'return redis.call("GET")' 0"#,
        r#"EVAL 'return redis.pcall("GET")' 0"#,
        r#"EVAL 'return redis.call("GET", "a", "b")' 0"#,
        r#"EVAL 'return redis.call("SET", "a")' 0"#,
        "EVAL 'return redis.call()' 0",
        "EVAL 'return redis.pcall()' 0",
        r#"EVAL 'return redis.call("SET", "k", {})' 0"#,
        r#"EVAL 'return redis.call("SET", "k", nil)' 0"#,
        r#"EVAL 'return redis.call("SET", "k", true)' 0"#,
        r#"EVAL 'return redis.pcall("SET", "k", true)' 0"#,
        "EVAL 'return redis.call({})' 0",
        "EVAL 'return redis.call(1)' 0",
        "EXISTS k",
        // numbers are accepted as arguments (converted like "%.17g")
        r#"EVAL 'redis.call("SET", "k", 10); return redis.call("GET", "k")' 0"#,
        r#"EVAL 'redis.call("SET", "k", 3.5); return redis.call("GET", "k")' 0"#,
        r#"EVAL 'redis.call("SET", "k", 0.1); return redis.call("GET", "k")' 0"#,
        r#"EVAL 'redis.call("SET", "k", -1/0); return redis.call("GET", "k")' 0"#,
        r#"EVAL 'redis.call("SET", "k", 123456789012345); return redis.call("GET", "k")' 0"#,
        r#"EVAL 'return redis.call("INCRBY", "k2", 5)' 0"#,
        // commands a script may not run (never a real SHUTDOWN: Redis refuses it)
        r#"EVAL 'return redis.call("multi")' 0"#,
        r#"EVAL 'return redis.call("exec")' 0"#,
        r#"EVAL 'return redis.call("watch", "a")' 0"#,
        r#"EVAL 'return redis.call("eval", "return 1", 0)' 0"#,
        r#"EVAL 'return redis.call("evalsha", "0000000000000000000000000000000000000000", 0)' 0"#,
        r#"EVAL 'return redis.call("script", "flush")' 0"#,
        r#"EVAL 'return redis.call("subscribe", "ch")' 0"#,
        r#"EVAL 'return redis.call("shutdown")' 0"#,
        r#"EVAL 'return redis.pcall("shutdown")' 0"#,
        r#"EVAL 'return redis.call("client", "list")' 0"#,
        r#"EVAL 'return redis.call("auth", "x")' 0"#,
        r#"EVAL 'return redis.call("hello")' 0"#,
        r#"EVAL 'return redis.call("reset")' 0"#,
        r#"EVAL 'return redis.call("blpop", "x", 0)' 0"#,
        r#"EVAL 'return redis.call("brpop", "x", 0)' 0"#,
        r#"EVAL 'return redis.call("blmove", "x", "y", "left", "left", 0)' 0"#,
        r#"EVAL 'return redis.call("bzpopmin", "x", 0)' 0"#,
        r#"EVAL 'return redis.pcall("multi")' 0"#,
        r#"EVAL 'local r = redis.pcall("exec"); return r.err' 0"#,
        "PING",
        // read-only scripts
        r#"EVAL_RO 'return redis.call("SET", KEYS[1], "v")' 1 w"#,
        r#"EVAL_RO 'return redis.pcall("SET", KEYS[1], "v")' 1 w"#,
        r#"EVAL_RO 'return redis.call("DEL", KEYS[1])' 1 str"#,
        r#"EVAL_RO 'return redis.call("INCR", "str")' 0"#,
        r#"EVAL_RO 'return redis.call("GET", KEYS[1])' 1 str"#,
        r#"EVAL_RO 'return {redis.call("EXISTS", KEYS[1]), redis.call("STRLEN", KEYS[1])}' 1 str"#,
        "EVAL_RO 'return 1' 0",
        "EXISTS w",
        "GET str",
    ]);
    // EVALSHA_RO of a loaded script that writes.
    let body = r#"return redis.call("SET", KEYS[1], "v")"#;
    d.c(&["SCRIPT", "LOAD", body]);
    d.c(&["EVALSHA_RO", &sha(body), "1", "w"]);
    d.c(&["EVALSHA", &sha(body), "1", "w"]);
    d.s("GET w");
    d.s("FLUSHALL");
}

fn script_lua_errors(d: &mut Diff) {
    d.ss(&[
        // the global table is protected
        "EVAL 'return x' 0",
        "EVAL 'return undefined_global' 0",
        "EVAL 'return _G.nothing' 0",
        "EVAL 'x = 1' 0",
        "EVAL 'myglobal = 5; return myglobal' 0",
        r#"EVAL 'rawset(_G, "x", 1)' 0"#,
        r#"EVAL 'return rawget(_G, "x")' 0"#,
        "EVAL 'setmetatable(_G, nil)' 0",
        "EVAL 'redis = nil' 0",
        "EVAL 'redis.call = nil' 0",
        "EVAL 'local t = {}; t.x = 1; return t.x' 0",
        "EVAL 'local x = 5; return x' 0",
        // compile errors
        "EVAL 'return 1 +' 0",
        r#"EVAL 'return "unterminated' 0"#,
        "EVAL 'local = 1' 0",
        "EVAL 'if true then' 0",
        "EVAL 'end' 0",
        "EVAL 'return 1 +' 5",
        // runtime errors
        "EVAL 'return 1 + {}' 0",
        r#"EVAL 'return "a" + 1' 0"#,
        "EVAL 'local t = nil; return t.x' 0",
        "EVAL 'return math.random(0)' 0",
        // error() with a string, with a level, with a table
        r#"EVAL 'error("my message")' 0"#,
        r#"EVAL 'error("MYCODE my message")' 0"#,
        r#"EVAL 'error("my message", 0)' 0"#,
        r#"EVAL 'error("my message", 2)' 0"#,
        r#"EVAL 'error({err="TABLEERR in a table"})' 0"#,
        r#"EVAL 'error({err="no code here"})' 0"#,
        r#"EVAL 'error(redis.error_reply("ECODE reply error"))' 0"#,
        "EVAL 'error(42)' 0",
        "EVAL 'error()' 0",
        // pcall inside Lua: Redis's pcall hands back error tables as strings
        r#"EVAL 'return {pcall(function() error("inner") end)}' 0"#,
        r#"EVAL 'local ok, e = pcall(function() error("plain", 0) end); return {tostring(ok), type(e), e}' 0"#,
        r#"EVAL 'local ok, e = pcall(function() error({err="X"}) end); return {tostring(ok), type(e), e}' 0"#,
        r#"EVAL 'local ok, e = pcall(function() return 1, 2 end); return {tostring(ok), e}' 0"#,
        r#"EVAL 'return {xpcall(function() error("boom", 0) end, function(m) return "handled: " .. m end)}' 0"#,
        "SET str abc",
        r#"EVAL 'local ok, e = pcall(redis.call, "INCR", "str"); return {tostring(ok), type(e), e}' 0"#,
        r#"EVAL 'local ok, e = pcall(redis.call, "nosuch"); return {tostring(ok), type(e), e}' 0"#,
        r#"EVAL 'local ok, e = pcall(redis.call, "INCR", "cnt"); return {tostring(ok), e}' 0"#,
        // numkeys errors
        "EVAL 'return 1' -1",
        "EVAL 'return 1' 1",
        "EVAL 'return 1' 2 a",
        "EVAL 'return 1' x",
        "EVAL 'return 1' 1.5",
        "EVAL 'return 1' ''",
        "EVAL 'return 1' 99999999999999999999",
        "EVAL 'return 1'",
        "EVAL",
        "EVAL_RO 'return 1' -1",
        "EVAL_RO 'return 1' 3 a",
        // EVALSHA errors
        "EVALSHA 0000000000000000000000000000000000000000 0",
        "EVALSHA 0000000000000000000000000000000000000000 -1",
        "EVALSHA 0000000000000000000000000000000000000000 x",
        "EVALSHA 0000000000000000000000000000000000000000 2 a",
        "EVALSHA abc 0",
        "EVALSHA '' 0",
        "EVALSHA_RO 0000000000000000000000000000000000000000 0",
        "EVALSHA",
        "EVALSHA_RO",
        "FLUSHALL",
    ]);
    // Multi-line scripts: the line numbers in the messages.
    d.c(&["SET", "str", "abc"]);
    d.c(&["EVAL", "local x = 1\nlocal y = 2\nreturn redis.call(\"INCR\", KEYS[1])", "1", "str"]);
    d.c(&["EVAL", "local function f()\n  error(\"deep\")\nend\nf()", "0"]);
    d.c(&["EVAL", "\n\nreturn x", "0"]);
    d.c(&["EVAL", "local t = {}\n\nreturn t.a.b", "0"]);
    d.c(&["EVAL", "local a = 1\nreturn 1 +", "0"]);
    d.s("FLUSHALL");
}

#[test]
fn redis_call_errors_match_redis_byte_for_byte() {
    run_scripted("script_command_errors", script_command_errors);
}

#[test]
fn lua_compile_runtime_and_numkeys_errors_match_redis_byte_for_byte() {
    run_scripted("script_lua_errors", script_lua_errors);
}

// ------------------------------------------------------------- KEYS / ARGV

fn script_keys_and_argv(d: &mut Diff) {
    d.ss(&[
        "EVAL 'return {#KEYS, #ARGV}' 0",
        "EVAL 'return {#KEYS, #ARGV}' 2 a b c d e",
        "EVAL 'return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]}' 2 a b c d e",
        "EVAL 'return KEYS' 4 a b c d",
        "EVAL 'return ARGV' 1 a b c",
        "EVAL 'return ARGV' 0 a b c",
        "EVAL 'return {type(KEYS), type(ARGV), type(KEYS[1]), type(ARGV[1])}' 1 k 5",
        "EVAL 'return ARGV[1] + 1' 0 41",
        "EVAL 'return ARGV[1] .. ARGV[2]' 0 41 1",
        "EVAL 'return KEYS[1] == nil' 0",
        "EVAL 'return #ARGV[1]' 0 ''",
        "EVAL 'return KEYS[1]' 1 ''",
        "EVAL 'return string.len(ARGV[1])' 0 'a b c'",
        "EVAL_RO 'return {KEYS[2], ARGV[1]}' 2 c d x",
        // declared keys on both shards: read and write several
        r#"EVAL 'redis.call("MSET", KEYS[1], ARGV[1], KEYS[2], ARGV[2], KEYS[3], ARGV[3], KEYS[4], ARGV[4]); return redis.call("MGET", KEYS[1], KEYS[2], KEYS[3], KEYS[4])' 4 a b c d 1 2 3 4"#,
        "MGET a b c d",
        r#"EVAL 'return {redis.call("INCR", KEYS[1]), redis.call("INCRBY", KEYS[2], 10), redis.call("DECR", KEYS[3]), redis.call("GET", KEYS[4])}' 4 a b c d"#,
        r#"EVAL 'local s = 0; for i = 1, #KEYS do s = s + redis.call("GET", KEYS[i]) end; return s' 4 a b c d"#,
        r#"EVAL 'local v = redis.call("GET", KEYS[1]); redis.call("SET", KEYS[1], v - 1); redis.call("SET", KEYS[2], redis.call("GET", KEYS[2]) + 1); return redis.call("MGET", KEYS[1], KEYS[2])' 2 a b"#,
        "DEL c d",
        r#"EVAL 'redis.call("LPUSH", KEYS[1], "x", "y"); redis.call("RPUSH", KEYS[2], "z"); return {redis.call("LRANGE", KEYS[1], 0, -1), redis.call("LRANGE", KEYS[2], 0, -1)}' 2 c d"#,
        r#"EVAL 'return redis.call("RPOPLPUSH", KEYS[1], KEYS[2])' 2 c d"#,
        "LRANGE c 0 -1",
        "LRANGE d 0 -1",
        r#"EVAL 'return redis.call("RENAME", KEYS[1], KEYS[2])' 2 a b"#,
        r#"EVAL 'return redis.call("MGET", KEYS[1], KEYS[2])' 2 a b"#,
        "MGET a b",
        r#"EVAL 'return redis.call("RENAME", KEYS[1], KEYS[2])' 2 a b"#,
        r#"EVAL 'return redis.call("RENAMENX", KEYS[1], KEYS[2])' 2 b k0"#,
        "MGET b k0",
        r#"EVAL 'return redis.call("DEL", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])' 5 a b c d k0"#,
        r#"EVAL 'return redis.call("EXISTS", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])' 5 a b c d k0"#,
        "EXISTS a b c d k0",
        // keys the script did not declare
        r#"EVAL 'return redis.call("SET", ARGV[1], ARGV[2])' 0 k1 v"#,
        r#"EVAL 'return redis.call("SET", ARGV[1], ARGV[2])' 0 k2 w"#,
        "MGET k1 k2",
        r#"EVAL 'return redis.call("MGET", "k1", "k2", "k3")' 0"#,
        r#"EVAL 'return redis.call("GET", ARGV[1])' 1 k1 k2"#,
        // a queue library building key names from ARGV
        r#"EVAL 'local q = ARGV[1]; redis.call("RPUSH", q .. ":pending", ARGV[2]); redis.call("INCR", q .. ":count"); return {redis.call("LLEN", q .. ":pending"), redis.call("GET", q .. ":count")}' 0 jobs j1"#,
        r#"EVAL 'local q = ARGV[1]; redis.call("RPUSH", q .. ":pending", ARGV[2]); redis.call("INCR", q .. ":count"); return {redis.call("LLEN", q .. ":pending"), redis.call("GET", q .. ":count")}' 0 jobs j2"#,
        r#"EVAL 'local j = redis.call("LPOP", ARGV[1] .. ":pending"); redis.call("HSET", ARGV[1] .. ":active", j, "1"); return {j, redis.call("HLEN", ARGV[1] .. ":active")}' 0 jobs"#,
        "LRANGE jobs:pending 0 -1",
        "HGETALL jobs:active",
        "GET jobs:count",
        r#"EVAL 'for i = 1, #ARGV do redis.call("SET", "gen:" .. i, ARGV[i]) end; return redis.call("MGET", "gen:1", "gen:2", "gen:3", "gen:4")' 0 w x y z"#,
        r#"EVAL 'local k = redis.call("KEYS", "gen:*"); table.sort(k); return k' 0"#,
        r#"EVAL 'return redis.call("DEL", "gen:1", "gen:2", "gen:3", "gen:4", "gen:5")' 0"#,
        r#"EVAL 'return redis.call("DBSIZE")' 0"#,
        // SELECT inside a script changes the database of its later calls only
        r#"EVAL 'redis.call("SELECT", 1); redis.call("SET", "dbk", "one"); return redis.call("GET", "dbk")' 0"#,
        "GET dbk",
        "SELECT 1",
        "GET dbk",
        r#"EVAL 'return redis.call("GET", KEYS[1])' 1 dbk"#,
        "FLUSHDB",
        "SELECT 0",
        "FLUSHALL",
    ]);
    // Binary-safe keys and arguments.
    d.cb(&[b"EVAL", b"return {ARGV[1], #ARGV[1]}", b"0", b"a\x00b\r\n\xff"]);
    d.cb(&[b"EVAL", b"return {KEYS[1], #KEYS[1]}", b"1", b"k\x00\xfe"]);
    d.cb(&[b"EVAL", b"return {ARGV[1] == \"a\\0b\", #ARGV[1]}", b"0", b"a\x00b"]);
    d.cb(&[
        b"EVAL",
        b"redis.call(\"SET\", KEYS[1], ARGV[1]); return redis.call(\"GET\", KEYS[1])",
        b"1",
        b"bin\x00key",
        b"\x00\x01\r\n\xfe\xff",
    ]);
    d.cb(&[b"EVAL", b"return redis.call(\"STRLEN\", KEYS[1])", b"1", b"bin\x00key"]);
    d.cb(&[b"GET", b"bin\x00key"]);
    d.cb(&[b"EVAL", b"return \"a\\0b\"", b"0"]);
    d.cb(&[b"EVAL", b"return redis.sha1hex(ARGV[1])", b"0", b"\x00\xff"]);
    d.s("FLUSHALL");
}

#[test]
fn keys_and_argv_reach_scripts_and_scripts_touch_keys_on_every_shard_like_redis() {
    run_scripted("keys_argv", script_keys_and_argv);
}

// ------------------------------------------------------------ script cache

fn script_cache(d: &mut Diff) {
    // The cache survives FLUSHALL, so each run starts from an empty one.
    d.s("SCRIPT FLUSH");
    let loaded = r#"return "loaded""#;
    let kv = "return {KEYS[1], ARGV[1]}";
    let cached = r#"return "cached""#;
    let incrby = r#"return redis.call("INCRBY", KEYS[1], ARGV[1])"#;
    let none = "0000000000000000000000000000000000000000";
    d.c(&["SCRIPT", "EXISTS", &sha(loaded), none]);
    d.c(&["SCRIPT", "LOAD", loaded]);
    d.c(&["SCRIPT", "LOAD", loaded]);
    d.c(&["EVALSHA", &sha(loaded), "0"]);
    d.c(&["EVALSHA_RO", &sha(loaded), "0"]);
    // upper-case shas are found too
    d.c(&["EVALSHA", &sha(loaded).to_uppercase(), "0"]);
    d.c(&["EVALSHA_RO", &sha(loaded).to_uppercase(), "0"]);
    d.c(&["SCRIPT", "EXISTS", &sha(loaded).to_uppercase()]);
    // a sha with one character more or less is not
    d.c(&["EVALSHA", &format!("{}0", sha(loaded)), "0"]);
    d.c(&["EVALSHA", &sha(loaded)[..39], "0"]);
    d.c(&["SCRIPT", "LOAD", kv]);
    d.c(&["EVALSHA", &sha(kv), "1", "a", "x"]);
    d.c(&["EVALSHA", &sha(kv), "0", "x"]);
    d.c(&["EVALSHA", &sha(kv), "2", "a"]);
    d.c(&["SCRIPT", "EXISTS", &sha(loaded), none, &sha(kv), &sha(cached)]);
    // EVAL caches its script
    d.c(&["EVAL", cached, "0"]);
    d.c(&["SCRIPT", "EXISTS", &sha(cached)]);
    d.c(&["EVALSHA", &sha(cached), "0"]);
    // a script that does not compile is not cached
    d.s("EVAL 'return 1 +' 0");
    d.c(&["SCRIPT", "EXISTS", &sha("return 1 +")]);
    d.s("SCRIPT LOAD 'return 1 +'");
    d.c(&["SCRIPT", "EXISTS", &sha("return 1 +")]);
    // a script whose body is a runtime error is cached
    d.s("EVAL 'return x' 0");
    d.c(&["SCRIPT", "EXISTS", &sha("return x")]);
    d.c(&["EVALSHA", &sha("return x"), "0"]);
    // the sha is the sha1 of the body, as redis.sha1hex computes it
    d.c(&["EVAL", "return redis.sha1hex(ARGV[1])", "0", loaded]);
    d.c(&["EVAL", "return redis.sha1hex(ARGV[1]) == ARGV[2]", "0", incrby, &sha(incrby)]);
    d.c(&["SCRIPT", "LOAD", incrby]);
    d.c(&["EVALSHA", &sha(incrby), "1", "a", "5"]);
    d.c(&["EVALSHA", &sha(incrby), "1", "b", "7"]);
    d.c(&["EVALSHA", &sha(incrby), "1", "a", "5"]);
    d.s("MGET a b");
    // FLUSH forgets everything; EVAL loads again
    d.s("SCRIPT FLUSH");
    d.c(&["SCRIPT", "EXISTS", &sha(loaded), &sha(kv), &sha(cached), &sha(incrby)]);
    d.c(&["EVALSHA", &sha(loaded), "0"]);
    d.c(&["EVALSHA_RO", &sha(cached), "0"]);
    d.c(&["EVAL", loaded, "0"]);
    d.c(&["SCRIPT", "EXISTS", &sha(loaded), &sha(kv)]);
    d.s("SCRIPT FLUSH ASYNC");
    d.c(&["SCRIPT", "EXISTS", &sha(loaded)]);
    d.c(&["SCRIPT", "LOAD", loaded]);
    d.s("SCRIPT FLUSH SYNC");
    d.c(&["SCRIPT", "EXISTS", &sha(loaded)]);
    d.c(&["SCRIPT", "LOAD", kv]);
    d.s("SCRIPT FLUSH async");
    d.c(&["SCRIPT", "EXISTS", &sha(kv)]);
    // FLUSHALL does not flush the script cache
    d.c(&["SCRIPT", "LOAD", kv]);
    d.s("FLUSHALL");
    d.c(&["SCRIPT", "EXISTS", &sha(kv)]);
    // scripts are shared by every connection
    let o = d.open();
    d.c_on(o, &["EVALSHA", &sha(kv), "1", "from", "other"]);
    d.c_on(o, &["SCRIPT", "LOAD", loaded]);
    d.c(&["EVALSHA", &sha(loaded), "0"]);
    d.c_on(o, &["SCRIPT", "FLUSH"]);
    d.c(&["SCRIPT", "EXISTS", &sha(loaded), &sha(kv)]);
    d.close(o);
    // syntax errors
    d.ss(&[
        "SCRIPT FLUSH foo",
        "SCRIPT FLUSH SYNC ASYNC",
        "SCRIPT LOAD",
        "SCRIPT LOAD a b",
        "SCRIPT EXISTS",
        "SCRIPT EXISTS abc",
        "SCRIPT",
        "SCRIPT FOO",
        "SCRIPT foo bar",
        "SCRIPT HELP",
        "SCRIPT KILL",
    ]);
    d.s("SCRIPT FLUSH");
    d.s("FLUSHALL");
}

#[test]
fn script_load_exists_flush_and_evalsha_behave_like_redis() {
    run_scripted("script_cache", script_cache);
}

// ----------------------------------------------------- libraries and helpers

fn script_libraries(d: &mut Diff) {
    d.ss(&[
        // redis.* helpers and constants
        r#"EVAL 'return redis.sha1hex("")' 0"#,
        r#"EVAL 'return redis.sha1hex("return \"loaded\"")' 0"#,
        "EVAL 'return redis.sha1hex(123)' 0",
        "EVAL 'return redis.sha1hex()' 0",
        r#"EVAL 'return redis.sha1hex("a", "b")' 0"#,
        r#"EVAL 'return redis.log(redis.LOG_WARNING, "from the scripting test")' 0"#,
        r#"EVAL 'redis.log(redis.LOG_NOTICE, "x", "y", 3); return "logged"' 0"#,
        r#"EVAL 'return {redis.log(redis.LOG_DEBUG, "d")}' 0"#,
        "EVAL 'return redis.log(redis.LOG_DEBUG)' 0",
        "EVAL 'return redis.log()' 0",
        r#"EVAL 'return redis.log(99, "x")' 0"#,
        r#"EVAL 'return redis.log("x", "y")' 0"#,
        "EVAL 'return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}' 0",
        "EVAL 'return redis.REDIS_VERSION' 0",
        "EVAL 'return redis.REDIS_VERSION_NUM' 0",
        r#"EVAL 'return string.format("%06x", redis.REDIS_VERSION_NUM)' 0"#,
        "EVAL 'return type(redis.REDIS_VERSION_NUM)' 0",
        "EVAL 'return redis.replicate_commands()' 0",
        "EVAL 'return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}' 0",
        "EVAL 'return {type(redis.call), type(redis.pcall), type(redis.setresp), type(redis.set_repl), type(redis.sha1hex)}' 0",
        // cjson
        r#"EVAL 'return cjson.encode({1,2,"three"})' 0"#,
        "EVAL 'return cjson.encode({a=1})' 0",
        "EVAL 'return cjson.encode({})' 0",
        r#"EVAL 'return cjson.encode("str\"ing")' 0"#,
        "EVAL 'return cjson.encode(3.5)' 0",
        "EVAL 'return cjson.encode(true)' 0",
        "EVAL 'return cjson.encode(cjson.null)' 0",
        "EVAL 'return cjson.encode({1,{2,{3}}})' 0",
        "EVAL 'return cjson.encode({0.1, 1e20, -5})' 0",
        "EVAL 'return cjson.encode({[1]=1, [3]=3})' 0",
        "EVAL 'return cjson.encode({[1]=1, [100]=3})' 0",
        "EVAL 'return cjson.encode(function() end)' 0",
        "EVAL 'local t = {}; t[1] = t; return cjson.encode(t)' 0",
        r#"EVAL 'local t = cjson.decode(ARGV[1]); return {t.a, t.b[2], type(t.c), tostring(t.d)}' 0 '{"a":"x","b":[1,2,3],"c":null,"d":true}'"#,
        r#"EVAL 'return cjson.decode("[1,2,3]")' 0"#,
        "EVAL 'return cjson.decode(ARGV[1])' 0 '\"hi\"'",
        "EVAL 'return cjson.decode(ARGV[1])' 0 1.5",
        "EVAL 'return cjson.decode(ARGV[1])' 0 '{bad'",
        "EVAL 'return cjson.encode(cjson.decode(ARGV[1]))' 0 '[1,\"a\",[true,false]]'",
        "EVAL 'return cjson.decode(ARGV[1]).k' 0 '{\"k\":{\"n\":[]}}'",
        // cmsgpack
        r#"EVAL 'return cmsgpack.pack(1, "a", {1,2})' 0"#,
        "EVAL 'return cmsgpack.pack({a=1})' 0",
        "EVAL 'return cmsgpack.pack(3.5)' 0",
        "EVAL 'return cmsgpack.pack(-1, 300, 70000, 5000000000)' 0",
        "EVAL 'return cmsgpack.pack(true, false, nil)' 0",
        r#"EVAL 'return {cmsgpack.unpack(cmsgpack.pack(1, "a", {1,2}))}' 0"#,
        r#"EVAL 'return cmsgpack.unpack(cmsgpack.pack({k="v"})).k' 0"#,
        "EVAL 'local a, b = cmsgpack.unpack(ARGV[1]); return {a, b}' 0 x",
        r#"EVAL 'return cmsgpack.unpack("")' 0"#,
        "EVAL 'return cmsgpack.unpack()' 0",
        "EVAL 'return cmsgpack.pack()' 0",
        // bit
        "EVAL 'return bit.band(0xff, 0x0f)' 0",
        "EVAL 'return bit.bor(1, 2, 4)' 0",
        "EVAL 'return bit.bxor(5, 3)' 0",
        "EVAL 'return bit.bnot(0)' 0",
        "EVAL 'return bit.lshift(1, 10)' 0",
        "EVAL 'return bit.rshift(-1, 28)' 0",
        "EVAL 'return bit.arshift(-256, 4)' 0",
        "EVAL 'return bit.tohex(255)' 0",
        "EVAL 'return bit.tohex(255, 4)' 0",
        "EVAL 'return bit.tohex(255, -4)' 0",
        "EVAL 'return bit.tohex(-1)' 0",
        "EVAL 'return bit.tobit(2^32 + 5)' 0",
        "EVAL 'return bit.bswap(0x12345678)' 0",
        "EVAL 'return bit.rol(1, 33)' 0",
        // struct
        r#"EVAL 'return struct.pack(">I2", 258)' 0"#,
        r#"EVAL 'return struct.pack("<i4", -2)' 0"#,
        r#"EVAL 'return struct.pack("B", 65)' 0"#,
        r#"EVAL 'return struct.pack("s", "abc")' 0"#,
        r#"EVAL 'return struct.pack("d", 1.5)' 0"#,
        r#"EVAL 'return {struct.unpack(">I2", ARGV[1])}' 0 AB"#,
        r#"EVAL 'return {struct.unpack("<i4", struct.pack("<i4", -2))}' 0"#,
        r#"EVAL 'return {struct.unpack("bc0", struct.pack("bc0", 3, "xyz"))}' 0"#,
        r#"EVAL 'return struct.size(">I2i4")' 0"#,
        r#"EVAL 'return struct.pack("Q")' 0"#,
        // math.random: deterministic once seeded in the same script
        "EVAL 'math.randomseed(42); return math.random(1000000)' 0",
        "EVAL 'math.randomseed(42); return math.random(1000000)' 0",
        "EVAL 'math.randomseed(7); return {math.random(1000), math.random(1000), math.random(1, 6)}' 0",
        "EVAL 'math.randomseed(7); return tostring(math.random())' 0",
        "EVAL 'math.randomseed(1); return math.random(5, 1)' 0",
        // string, tostring / tonumber, table, math
        r#"EVAL 'return string.upper("abc")' 0"#,
        r#"EVAL 'return string.rep("ab", 3)' 0"#,
        r#"EVAL 'return string.sub("hello", 2, -2)' 0"#,
        r#"EVAL 'return string.format("%d-%s-%5.2f", 7, "x", 3.14159)' 0"#,
        r#"EVAL 'return {string.find("hello world", "o w")}' 0"#,
        r#"EVAL 'return {string.gsub("hello", "l", "L")}' 0"#,
        r#"EVAL 'return string.match("key:123", "%d+")' 0"#,
        r#"EVAL 'return {string.byte("AB", 1, 2)}' 0"#,
        "EVAL 'return string.char(72, 105)' 0",
        r#"EVAL 'return string.reverse("abc")' 0"#,
        r#"EVAL 'return ("x"):rep(3)' 0"#,
        r#"EVAL 'local t = {}; for w in string.gmatch("a,b,c", "[^,]+") do t[#t+1] = w end; return t' 0"#,
        "EVAL 'return tostring(12)' 0",
        "EVAL 'return tostring(1.5)' 0",
        "EVAL 'return tostring(nil)' 0",
        "EVAL 'return tostring(true)' 0",
        "EVAL 'return tostring(1e100)' 0",
        "EVAL 'return tostring(0.1)' 0",
        "EVAL 'return tostring(1/3)' 0",
        "EVAL 'return tostring(-1/0)' 0",
        "EVAL 'return tostring(10 / 4)' 0",
        "EVAL 'return tostring(math.pi)' 0",
        r#"EVAL 'return tonumber("42")' 0"#,
        r#"EVAL 'return tonumber("0x10")' 0"#,
        r#"EVAL 'return tonumber("abc")' 0"#,
        r#"EVAL 'return tonumber("z", 36)' 0"#,
        r#"EVAL 'return tonumber("  12  ")' 0"#,
        r#"EVAL 'return type(tonumber("1.5"))' 0"#,
        r#"EVAL 'return table.concat({"a", "b", "c"}, ",")' 0"#,
        "EVAL 'return table.concat({1, 2, 3})' 0",
        "EVAL 'return table.concat({})' 0",
        "EVAL 'local t = {3, 1, 2}; table.sort(t); return t' 0",
        r#"EVAL 'local t = {"b", "c", "a"}; table.sort(t, function(x, y) return x > y end); return t' 0"#,
        "EVAL 'local t = {1}; table.insert(t, 2); table.insert(t, 1, 0); table.remove(t, 2); return t' 0",
        "EVAL 'return #{1, 2, 3}' 0",
        r##"EVAL 'return select("#", 1, 2, 3)' 0"##,
        "EVAL 'return {unpack({1, 2, 3})}' 0",
        "EVAL 'return math.floor(3.7)' 0",
        "EVAL 'return math.max(1, 5, 3)' 0",
        "EVAL 'return math.fmod(7, 3)' 0",
        "EVAL 'return _VERSION' 0",
        // the sandbox: what exists and what does not
        "EVAL 'return type(loadstring)' 0",
        r#"EVAL 'return loadstring("return 1 + 1")()' 0"#,
        r#"EVAL 'local f, e = loadstring("return +"); return {tostring(f), e}' 0"#,
        "EVAL 'return {type(load), type(pcall), type(xpcall), type(unpack), type(select), type(collectgarbage)}' 0",
        "EVAL 'return {type(string), type(math), type(table), type(coroutine), type(cjson), type(cmsgpack), type(bit), type(struct), type(redis)}' 0",
        "EVAL 'return type(os)' 0",
        "EVAL 'return type(io)' 0",
        "EVAL 'return type(require)' 0",
        "EVAL 'return type(dofile)' 0",
        "EVAL 'return type(loadfile)' 0",
        "EVAL 'return type(print)' 0",
        "EVAL 'return type(debug)' 0",
        "EVAL 'return type(package)' 0",
        "EVAL 'return type(setfenv)' 0",
        "EVAL 'return type(getfenv)' 0",
        "EVAL 'return type(newproxy)' 0",
        "EVAL 'return rawget(_G, \"os\") == nil' 0",
    ]);
}

#[test]
fn lua_libraries_helpers_and_sandbox_behave_like_redis() {
    run_scripted("script_libraries", script_libraries);
}

// -------------------------------------------------------------- MULTI/EXEC

fn script_multi(d: &mut Diff) {
    d.s("SCRIPT FLUSH");
    let incrby = r#"return redis.call("INCRBY", KEYS[1], ARGV[1])"#;
    d.ss(&[
        "SET str abc",
        "MULTI",
        r#"EVAL 'return redis.call("SET", KEYS[1], ARGV[1])' 1 a 1"#,
        r#"EVAL 'return redis.call("INCR", KEYS[1])' 1 a"#,
        r#"EVAL 'return redis.call("INCR", KEYS[1])' 1 str"#,
        r#"EVAL 'return redis.pcall("INCR", KEYS[1])' 1 str"#,
        "EVALSHA 0000000000000000000000000000000000000000 0",
        r#"EVAL 'redis.call("SET", KEYS[2], "from b"); return redis.call("MGET", KEYS[1], KEYS[2])' 2 a b"#,
        "EVAL 'return 1 +' 0",
        "EVAL 'return 1' x",
        "EVAL 'return 1' 3 a",
        r#"EVAL_RO 'return redis.call("GET", KEYS[1])' 1 b"#,
        r#"EVAL_RO 'return redis.call("DEL", KEYS[1])' 1 b"#,
        "GET a",
        "EXEC",
        "MGET a b",
        // a queuing error aborts the whole transaction, scripts included
        "MULTI",
        r#"EVAL 'return redis.call("SET", KEYS[1], "never")' 1 c"#,
        "EVAL 'return 1'",
        "EXEC",
        "EXISTS c",
    ]);
    // EVALSHA of a script loaded before, and SCRIPT inside MULTI
    d.c(&["SCRIPT", "LOAD", incrby]);
    d.s("MULTI");
    d.c(&["EVALSHA", &sha(incrby), "1", "a", "5"]);
    d.c(&["EVALSHA", &sha(incrby).to_uppercase(), "1", "d", "3"]);
    d.c(&["EVALSHA", &sha(incrby), "1", "str", "1"]);
    d.c(&["SCRIPT", "LOAD", r#"return "in multi""#]);
    d.c(&["SCRIPT", "EXISTS", &sha(incrby), &sha(r#"return "in multi""#)]);
    d.s("SCRIPT FLUSH");
    d.c(&["EVALSHA", &sha(incrby), "1", "a", "5"]);
    d.s("EXEC");
    d.s("MGET a d");
    // a script that errors in EXEC does not stop the rest; WATCH still applies
    let o = d.open();
    d.s("WATCH a");
    d.c_on(o, &["EVAL", r#"return redis.call("SET", KEYS[1], "other")"#, "1", "a"]);
    d.ss(&["MULTI", r#"EVAL 'return redis.call("GET", KEYS[1])' 1 a"#, "EXEC"]);
    d.s("WATCH a");
    d.ss(&["MULTI", r#"EVAL 'return redis.call("SET", KEYS[1], "mine")' 1 a"#, "EXEC", "GET a"]);
    d.close(o);
    // pipelined
    let cmds = |lines: &[&str]| -> Vec<Vec<String>> { lines.iter().map(|l| split_words(l)).collect() };
    d.pipeline_on(
        0,
        &cmds(&[
            "MULTI",
            r#"EVAL 'return redis.call("INCR", KEYS[1])' 1 c"#,
            r#"EVAL 'return redis.call("INCR", KEYS[1])' 1 d"#,
            r#"EVAL 'return redis.call("LPUSH", KEYS[1], "x")' 1 c"#,
            r#"EVAL 'return redis.call("MGET", KEYS[1], KEYS[2])' 2 c d"#,
            "EXEC",
            r#"EVAL 'return redis.call("MGET", KEYS[1], KEYS[2])' 2 c d"#,
        ]),
    );
    d.s("SCRIPT FLUSH");
    d.s("FLUSHALL");
}

#[test]
fn eval_and_evalsha_inside_multi_exec_like_redis() {
    run_scripted("script_multi", script_multi);
}

// -------------------------------------------------------------- concurrency

/// One key `prefix<i>` on each of the `shards` shards, in shard order.
fn keys_on_distinct_shards(shards: usize, prefix: &str) -> Vec<String> {
    let mut by_shard: Vec<Option<String>> = vec![None; shards];
    for i in 0..10_000 {
        let k = format!("{prefix}{i}");
        let s = local_shard_of(k.as_bytes(), shards);
        if by_shard[s].is_none() {
            by_shard[s] = Some(k);
        }
        if by_shard.iter().all(|x| x.is_some()) {
            break;
        }
    }
    let keys: Vec<String> = by_shard.into_iter().map(|k| k.expect("a key for every shard")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(local_shard_of(k.as_bytes(), shards), i);
    }
    keys
}

const MOVE: &str =
    r#"local v = redis.call("GET", KEYS[1]); redis.call("SET", KEYS[1], v - 1); redis.call("SET", KEYS[2], redis.call("GET", KEYS[2]) + 1); return v - 1"#;
const SUM: &str = r#"local out = {}; for i = 1, #KEYS do out[i] = redis.call("GET", KEYS[i]) end; return out"#;

/// Three clients run a script that moves 1 from one declared key to another
/// on a different shard; a reader checks with MGET and with a reading script
/// that the total never changes (no script is seen half done).
#[test]
fn scripts_moving_values_across_shards_are_never_seen_half_done_at_4_shards() {
    let shards = 4;
    let srv = TesseraServer::start(shards, &[]);
    let port = srv.port;
    let keys = Arc::new(keys_on_distinct_shards(shards, "acct:"));
    let mut c = srv.client();
    for k in keys.iter() {
        assert_eq!(c.cmd(&["SET", k, "1000"]), b"+OK\r\n");
    }
    let total = 1000 * keys.len() as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..3)
        .map(|w| {
            let (keys, stop) = (keys.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let from = &keys[(w + n) % keys.len()];
                    let to = &keys[(w + n + 1 + n % 3) % keys.len()];
                    assert_ne!(from, to);
                    let r = c.cmd_value(&["EVAL", MOVE, "2", from, to]);
                    assert!(matches!(r, Value::Int(_)), "move script replied {r:?}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let sum_of = |v: &Value, what: &str| -> i64 {
        let a = v.as_array().unwrap_or_else(|| panic!("{what} replied {v:?}"));
        assert_eq!(a.len(), keys.len(), "{what} replied {v:?}");
        a.iter()
            .map(|x| x.as_str().unwrap_or_else(|| panic!("{what} replied {v:?}")).parse::<i64>().unwrap())
            .sum()
    };
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(|k| k.as_str()));
    let nk = keys.len().to_string();
    let mut eval = vec!["EVAL", SUM, nk.as_str()];
    eval.extend(keys.iter().map(|k| k.as_str()));
    let mut eval_ro = eval.clone();
    eval_ro[0] = "EVAL_RO";
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut reads = 0;
    while Instant::now() < deadline {
        let v = c.cmd_value(&mget);
        assert_eq!(sum_of(&v, "MGET"), total, "MGET saw a script half done: {v:?}");
        let v = c.cmd_value(&eval);
        assert_eq!(sum_of(&v, "EVAL"), total, "a reading script saw a script half done: {v:?}");
        let v = c.cmd_value(&eval_ro);
        assert_eq!(sum_of(&v, "EVAL_RO"), total, "a read-only script saw a script half done: {v:?}");
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let moved: Vec<usize> = movers.into_iter().map(|m| m.join().unwrap()).collect();
    let v = c.cmd_value(&mget);
    assert_eq!(sum_of(&v, "MGET"), total, "final {v:?}");
    eprintln!("{reads} checked reads, moves per client {moved:?}, final {v:?}");
    assert!(reads > 20 && moved.iter().all(|&m| m > 20), "too little concurrency to mean anything");
}

/// Four clients INCR a key the script builds from ARGV (not declared), 200
/// times each: exactly 800 at the end; and the same with the counter of every
/// shard bumped by one script through undeclared keys.
#[test]
fn scripts_incrementing_undeclared_keys_lose_no_update_at_4_shards() {
    let shards = 4;
    let srv = TesseraServer::start(shards, &[]);
    let port = srv.port;
    let per = 200;
    let keys = keys_on_distinct_shards(shards, "all:");
    let all: String = keys.join(",");
    let incr = r#"return redis.call("INCR", ARGV[1] .. ":counter")"#;
    let incr_all = r#"local n = 0; for k in string.gmatch(ARGV[1], "[^,]+") do n = n + redis.call("INCR", k) end; return n"#;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let all = all.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut last = 0;
                for _ in 0..per {
                    let v = c.cmd_value(&["EVAL", incr, "0", "jobs"]);
                    let n = v.as_int().unwrap_or_else(|| panic!("INCR script replied {v:?}"));
                    assert!(n > last, "counter went from {last} to {n} for one client");
                    last = n;
                    let v = c.cmd_value(&["EVAL", incr_all, "0", &all]);
                    assert!(v.as_int().is_some(), "INCR-all script replied {v:?}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut c = srv.client();
    assert_eq!(c.cmd(&["GET", "jobs:counter"]), b"$3\r\n800\r\n");
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), b"$3\r\n800\r\n", "{k}");
    }
}

// ------------------------------------------------------------ the #!lua line

fn script_shebang(d: &mut Diff) {
    for body in [
        "#!js\nreturn 1",
        "#!lua",
        "#!",
        "#!\nreturn 1",
        "#! lua\nreturn 1",
        "#!lua \"x\nreturn 1",
        "#!lua flags=no-writes,,allow-oom\nreturn 1",
        "#!lua flags=No-writes\nreturn 1",
        "#!lua name=x\nreturn 1",
        "#!lua flags=bad\nreturn 1",
        "#!lua flags=\nreturn 1",
        "#!lua   flags=no-writes   flags=allow-stale\r\nreturn 1",
        "#!lua flags=no-writes,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nreturn 1",
        "#!lua\nreturn KEYS[1]",
    ] {
        d.c(&["EVAL", body, "1", "a"]);
        d.c(&["EVAL_RO", body, "1", "a"]);
    }
    // EVAL_RO / EVALSHA_RO refuse a #!lua script without no-writes; without
    // a #!lua line (compatibility mode) they run it read-only.
    let flagged = "#!lua flags=allow-oom\nreturn redis.call('GET', KEYS[1])";
    let ro = "#!lua flags=no-writes\nreturn redis.call('SET', KEYS[1], 'x')";
    for body in [flagged, ro, "return redis.call('GET', KEYS[1])", "return redis.call('SET', KEYS[1], 'x')"] {
        d.c(&["SCRIPT", "LOAD", body]);
        d.c(&["EVAL_RO", body, "1", "b"]);
        d.c(&["EVALSHA_RO", &sha(body), "1", "b"]);
        d.c(&["EVALSHA", &sha(body), "1", "b"]);
    }
    d.s("SCRIPT FLUSH");
    d.s("FLUSHALL");
}

#[test]
fn eval_shebang_lines_and_flags_like_redis() {
    run_scripted("script_shebang", script_shebang);
}
