//! The sorted-set family against a real redis-server 7.0.15, byte for byte,
//! in RESP2 and RESP3 (the differential harness of tests/common), plus a
//! seeded random differential run.

mod common;

use common::diff::*;

fn script_basic(d: &mut Diff) {
    // ZADD options and their conflicts
    d.ss(&[
        "ZADD z 1 a 2 b 3 c",
        "ZADD z",
        "ZADD z 1",
        "ZADD z 1 a 2",
        "ZADD z NX XX 1 a",
        "ZADD z GT LT 1 a",
        "ZADD z GT NX 1 a",
        "ZADD z LT NX 1 a",
        "ZADD z INCR 1 a 2 b",
        "ZADD z abc a",
        "ZADD z nan a",
        "ZADD z 1 a x b",
        "ZADD z NX 10 a 4 d",
        "ZADD z XX 10 a 5 e",
        "ZADD z CH 11 a 3 c 6 f",
        "ZADD z GT CH 1 a 20 b",
        "ZADD z LT CH 1 a 30 b",
        "ZADD z XX GT CH 100 a",
        "ZADD z INCR 5 a",
        "ZADD z INCR NX 5 a",
        "ZADD z INCR XX 5 zz",
        "ZADD z INCR GT -1 a",
        "ZADD z INCR LT -1 a",
        "ZADD z ch ch nx 1 new",
        "ZADD nokey XX 1 a",
        "ZADD nokey XX INCR 1 a",
        "EXISTS nokey",
        "ZADD z inf pinf -inf ninf +inf pinf2",
        "ZADD z INCR -inf pinf",
        "ZSCORE z pinf",
        "ZRANGE z 0 -1 WITHSCORES",
        "ZCARD z",
        "ZCARD nokey",
        "ZINCRBY z 1.5 a",
        "ZINCRBY z abc a",
        "ZINCRBY z 1 newm",
        "ZINCRBY nz 0.1 m",
        "ZINCRBY nz 0.2 m",
        "ZSCORE nz m",
        "ZINCRBY z nx m",
        "ZADD f 0.1 a 1e17 b 1e-5 c 123456789012345678 d 1.5e300 e -0 f 5e-324 g",
        "ZRANGE f 0 -1 WITHSCORES",
        "ZSCORE f f",
        "ZMSCORE f a b nosuch c",
        "ZMSCORE nokey a b",
        "ZADD z 1e400 a",
        "ZADD z 0x10 hex",
        "ZSCORE z hex",
        "ZADD z ' 1' a",
        "ZADD h 1e308 a",
        "ZINCRBY h 1e308 a",
        "ZINCRBY h -inf a",
        "ZSCORE h a",
        "ZADD h 1.7976931348623157e308 b -1.7976931348623157e308 c 2.2250738585072014e-308 d",
        "ZRANGE h 0 -1 WITHSCORES",
        "ZADD h 0.30000000000000004 e 1e-320 f",
        "ZINCRBY h 0.1 e",
        "ZCOUNT h 0.300000000000000000000000000000000000000000000000000000000000000000001 +inf",
        "ZCOUNT h (0.3000000000000000444089209850062616169452667236328125 +inf",
    ]);
    // ZREM, deletion of emptied keys
    d.ss(&[
        "ZADD r 1 a 2 b 3 c",
        "ZREM r a x",
        "ZREM r x y",
        "ZREM r b c d",
        "EXISTS r",
        "ZREM r a",
        "ZREM nokey a",
    ]);
    // WRONGTYPE
    d.ss(&[
        "SET s v",
        "ZADD s 1 a",
        "ZADD s XX 1 a",
        "ZADD s abc a",
        "ZINCRBY s 1 a",
        "ZREM s a",
        "ZCARD s",
        "ZSCORE s a",
        "ZMSCORE s a",
        "ZCOUNT s 0 1",
        "ZCOUNT s x 1",
        "ZLEXCOUNT s - +",
        "ZRANK s a",
        "ZREVRANK s a",
        "ZRANGE s 0 -1",
        "ZRANGE s x 1",
        "ZRANGEBYSCORE s 0 1",
        "ZRANGEBYLEX s - +",
        "ZPOPMIN s",
        "ZPOPMAX s 2",
        "ZPOPMIN s -1",
        "ZREMRANGEBYRANK s 0 1",
        "ZREMRANGEBYSCORE s 0 1",
        "ZREMRANGEBYLEX s - +",
        "ZREMRANGEBYLEX s x +",
    ]);
}

fn script_ranges(d: &mut Diff) {
    d.ss(&[
        "ZADD z 1 a 2 b 3 c 4 d 5 e 5 f 6 g",
        "ZRANGE z 0 -1",
        "ZRANGE z 0 -1 WITHSCORES",
        "ZRANGE z 2 3 withscores",
        "ZRANGE z -3 -1",
        "ZRANGE z -100 100",
        "ZRANGE z 5 2",
        "ZRANGE z 10 20",
        "ZRANGE z a 1",
        "ZRANGE z 0 -1 REV",
        "ZRANGE z 0 1 REV WITHSCORES",
        "ZRANGE z 0 -1 LIMIT 0 1",
        "ZRANGE z 0 -1 BYLEX WITHSCORES",
        "ZRANGE z 0 -1 BYSCORE BYLEX",
        "ZRANGE z 0 -1 REV REV",
        "ZRANGE z 0 -1 FOO",
        "ZRANGE z 0 -1 LIMIT 0",
        "ZRANGE z 0 -1 LIMIT x 1",
        "ZRANGE z (1 5 BYSCORE",
        "ZRANGE z 1 (5 BYSCORE WITHSCORES",
        "ZRANGE z -inf +inf BYSCORE",
        "ZRANGE z +inf -inf BYSCORE REV WITHSCORES",
        "ZRANGE z 5 1 BYSCORE REV",
        "ZRANGE z (5 (1 BYSCORE REV",
        "ZRANGE z 0 10 BYSCORE LIMIT 1 2",
        "ZRANGE z 0 10 BYSCORE LIMIT 1 -1",
        "ZRANGE z 0 10 BYSCORE LIMIT -1 2",
        "ZRANGE z 0 10 BYSCORE LIMIT 100 2",
        "ZRANGE z 0 10 BYSCORE LIMIT 2 0",
        "ZRANGE z 10 0 BYSCORE REV LIMIT 1 3 WITHSCORES",
        "ZRANGE z x 1 BYSCORE",
        "ZRANGE z ( 1 BYSCORE",
        "ZRANGE z '' 1 BYSCORE",
        "ZRANGE z 1 nan BYSCORE",
        "ZRANGE z ' 1' 3 BYSCORE",
        "ZRANGE z '(3' '(3' BYSCORE",
        "ZRANGE z 3 3 BYSCORE",
        "ZRANGEBYSCORE z 2 5",
        "ZRANGEBYSCORE z 2 5 WITHSCORES LIMIT 1 2",
        "ZRANGEBYSCORE z 2 5 REV",
        "ZRANGEBYSCORE z 2 5 BYSCORE",
        "ZREVRANGEBYSCORE z 5 2",
        "ZREVRANGEBYSCORE z 5 2 WITHSCORES LIMIT 0 2",
        "ZREVRANGEBYSCORE z 2 5",
        "ZREVRANGE z 0 2",
        "ZREVRANGE z 0 2 WITHSCORES",
        "ZREVRANGE z 0 2 REV",
        "ZREVRANGE z 0 2 LIMIT 0 1",
        "ZCOUNT z 2 5",
        "ZCOUNT z (2 (5",
        "ZCOUNT z -inf +inf",
        "ZCOUNT z 5 2",
        "ZCOUNT z a 2",
        "ZCOUNT nokey 0 1",
        "ZCOUNT nokey a 1",
        "ZRANK z a",
        "ZRANK z g",
        "ZRANK z nosuch",
        "ZRANK nokey a",
        "ZREVRANK z a",
        "ZREVRANK z f",
        "ZRANGE nokey 0 -1",
        "ZRANGE nokey 0 -1 BYSCORE",
    ]);
    // Lex ranges
    d.ss(&[
        "ZADD l 0 a 0 b 0 c 0 d 0 e 0 ab 0 ''",
        "ZRANGE l - + BYLEX",
        "ZRANGE l [a (c BYLEX",
        "ZRANGE l (a [c BYLEX",
        "ZRANGE l + - BYLEX REV",
        "ZRANGE l [c - BYLEX REV LIMIT 1 2",
        "ZRANGE l - + BYLEX LIMIT 2 2",
        "ZRANGE l a c BYLEX",
        "ZRANGE l '' c BYLEX",
        "ZRANGE l +x c BYLEX",
        "ZRANGE l [ [c BYLEX",
        "ZRANGE l ( + BYLEX",
        "ZRANGE l + + BYLEX",
        "ZRANGE l - - BYLEX",
        "ZRANGEBYLEX l - +",
        "ZRANGEBYLEX l - + LIMIT 1 1",
        "ZRANGEBYLEX l - + WITHSCORES",
        "ZREVRANGEBYLEX l + -",
        "ZREVRANGEBYLEX l [d [b",
        "ZREVRANGEBYLEX l [b [d",
        "ZLEXCOUNT l - +",
        "ZLEXCOUNT l [b (d",
        "ZLEXCOUNT l x +",
        "ZLEXCOUNT nokey - +",
        "ZLEXCOUNT nokey x +",
    ]);
    // ZREMRANGEBY*
    d.ss(&[
        "ZADD q 1 a 2 b 3 c 4 d 5 e",
        "ZREMRANGEBYRANK q 1 2",
        "ZRANGE q 0 -1",
        "ZREMRANGEBYRANK q 5 10",
        "ZREMRANGEBYRANK q -1 -1",
        "ZREMRANGEBYRANK q x 1",
        "ZREMRANGEBYRANK q 0 x",
        "ZREMRANGEBYRANK nokey 0 1",
        "ZREMRANGEBYRANK q 0 -1",
        "EXISTS q",
        "ZADD q 1 a 2 b 3 c 4 d 5 e",
        "ZREMRANGEBYSCORE q (1 3",
        "ZREMRANGEBYSCORE q 10 20",
        "ZREMRANGEBYSCORE q x 20",
        "ZREMRANGEBYSCORE q -inf +inf",
        "EXISTS q",
        "ZADD q 0 a 0 b 0 c 0 d",
        "ZREMRANGEBYLEX q [b (d",
        "ZREMRANGEBYLEX q x (d",
        "ZRANGE q 0 -1",
        "ZREMRANGEBYLEX q - +",
        "EXISTS q",
        "ZREMRANGEBYLEX nokey - +",
    ]);
    // ZPOPMIN / ZPOPMAX
    d.ss(&[
        "ZADD p 1 a 2 b 3 c 4 d",
        "ZPOPMIN p",
        "ZPOPMAX p",
        "ZPOPMIN p 0",
        "ZPOPMIN p -1",
        "ZPOPMIN p x",
        "ZPOPMIN p 1 2",
        "ZPOPMAX p 1",
        "ZPOPMIN p 10",
        "EXISTS p",
        "ZPOPMIN p",
        "ZPOPMIN p 3",
        "ZPOPMAX nokey",
    ]);
}

fn script_encoding(d: &mut Diff) {
    let mut cmd = vec!["ZADD".to_string(), "e".to_string()];
    for i in 0..128 {
        cmd.push(i.to_string());
        cmd.push(format!("m{i}"));
    }
    let refs: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
    d.c(&refs);
    d.ss(&[
        "OBJECT ENCODING e",
        "ZADD e 1 m1",
        "OBJECT ENCODING e",
        "ZADD e 1000 extra",
        "OBJECT ENCODING e",
    ]);
    d.ss(&["ZREMRANGEBYRANK e 0 100", "OBJECT ENCODING e", "ZCARD e"]);
    let long = "x".repeat(65);
    d.c(&["ZADD", "e2", "1", "short"]);
    d.s("OBJECT ENCODING e2");
    d.c(&["ZADD", "e2", "1", &long]);
    d.s("OBJECT ENCODING e2");
    d.c(&["ZADD", "e3", "1", &long]);
    d.ss(&["OBJECT ENCODING e3", "ZRANGE e2 0 -1 WITHSCORES", "ZRANK e2 short"]);
    d.ss(&["ZADD e4 1 a", "OBJECT ENCODING e4", "TYPE e4", "ZPOPMIN e4", "TYPE e4"]);
}

/// Multi-key commands; "a"/"b" and "c"/"d" live on different shards.
fn script_multi(d: &mut Diff) {
    d.ss(&[
        "ZADD a 1 x 2 y 3 z",
        "ZADD b 10 y 20 z 30 w",
        "ZADD c 0.1 x 0.2 w",
        "SET str v",
        "ZUNION 2 a b",
        "ZUNION 2 a b WITHSCORES",
        "ZUNION 3 a b c WITHSCORES AGGREGATE MIN",
        "ZUNION 3 a b c WITHSCORES AGGREGATE MAX WEIGHTS 1 2 3",
        "ZUNION 2 a b WEIGHTS 1 inf WITHSCORES",
        "ZUNION 2 a b WEIGHTS 1 -inf AGGREGATE SUM WITHSCORES",
        "ZUNION 2 a nokey WITHSCORES",
        "ZUNION 2 a b WEIGHTS 1",
        "ZUNION 2 a b WEIGHTS 1 x",
        "ZUNION 2 a b AGGREGATE foo",
        "ZUNION 2 a b AGGREGATE",
        "ZUNION 2 a b FOO",
        "ZUNION 0 a",
        "ZUNION -1 a",
        "ZUNION x a",
        "ZUNION 3 a b",
        "ZUNION 2 a str",
        "ZUNION 2 a str FOO",
        "ZINTER 2 a b",
        "ZINTER 2 a b WITHSCORES",
        "ZINTER 2 a b WITHSCORES AGGREGATE MAX WEIGHTS 2 0.5",
        "ZINTER 3 a b c",
        "ZINTER 2 a a WITHSCORES",
        "ZINTER 2 a nokey",
        "ZINTER 2 str a",
        "ZINTER 0 a",
        "ZDIFF 2 a b",
        "ZDIFF 2 a b WITHSCORES",
        "ZDIFF 3 a b c WITHSCORES",
        "ZDIFF 1 a",
        "ZDIFF 2 nokey a",
        "ZDIFF 2 a b WEIGHTS 1 2",
        "ZDIFF 2 a b AGGREGATE SUM",
        "ZDIFF 0 a",
        "ZINTERCARD 2 a b",
        "ZINTERCARD 2 a b LIMIT 1",
        "ZINTERCARD 2 a b LIMIT 0",
        "ZINTERCARD 2 a b LIMIT -1",
        "ZINTERCARD 2 a b LIMIT x",
        "ZINTERCARD 2 a b WITHSCORES",
        "ZINTERCARD 0 a",
        "ZINTERCARD 2 a str",
        "ZINTERCARD 1 nokey",
        "ZUNIONSTORE d 2 a b",
        "ZRANGE d 0 -1 WITHSCORES",
        "OBJECT ENCODING d",
        "ZUNIONSTORE d 2 a b WITHSCORES",
        "ZINTERSTORE d 2 a b WEIGHTS 1 2 AGGREGATE MIN",
        "ZRANGE d 0 -1 WITHSCORES",
        "ZINTERSTORE d 2 a c",
        "EXISTS d",
        "ZDIFFSTORE d 2 a c",
        "ZRANGE d 0 -1 WITHSCORES",
        "ZDIFFSTORE d 2 a a",
        "EXISTS d",
        "SET d v",
        "ZUNIONSTORE d 1 a",
        "TYPE d",
        "ZUNIONSTORE d 1 str",
        "ZUNIONSTORE d 0 a",
        "ZUNIONSTORE a 2 a b",
        "ZRANGE a 0 -1 WITHSCORES",
    ]);
    // ZRANGESTORE
    d.ss(&[
        "ZADD k0 1 a 2 b 3 c 4 d",
        "ZRANGESTORE k2 k0 0 -1",
        "ZRANGE k2 0 -1 WITHSCORES",
        "ZRANGESTORE k2 k0 1 2 REV",
        "ZRANGE k2 0 -1 WITHSCORES",
        "ZRANGESTORE k2 k0 (1 +inf BYSCORE LIMIT 1 1",
        "ZRANGE k2 0 -1 WITHSCORES",
        "ZRANGESTORE k2 k0 [c - BYLEX REV",
        "ZRANGE k2 0 -1 WITHSCORES",
        "ZRANGESTORE k2 k0 0 -1 WITHSCORES",
        "ZRANGESTORE k2 k0 5 10",
        "EXISTS k2",
        "ZRANGESTORE k2 k0 x 1",
        "ZRANGESTORE k2 nokey 0 -1",
        "ZRANGESTORE k2 str 0 -1",
        "ZRANGESTORE str k0 0 0",
        "TYPE str",
    ]);
    // ZMPOP
    d.ss(&[
        "ZADD c 5 v",
        "ZMPOP 1 nokey MIN",
        "ZMPOP 2 nokey c MIN",
        "ZMPOP 2 nokey c MAX COUNT 2",
        "ZMPOP 2 a c MIN COUNT 10",
        "EXISTS a",
        "ZMPOP 3 nokey str c MIN",
        "ZMPOP 0 a MIN",
        "ZMPOP -1 a MIN",
        "ZMPOP x a MIN",
        "ZMPOP 1 a",
        "ZMPOP 2 a MIN",
        "ZMPOP 1 a FOO",
        "ZMPOP 1 a MIN COUNT",
        "ZMPOP 1 a MIN COUNT 0",
        "ZMPOP 1 a MIN COUNT x",
        "ZMPOP 1 a MIN COUNT 1 COUNT 1",
        "ZMPOP 1 c MAX COUNT 1",
        "ZMPOP 1 c MAX",
        "ZADD b 1 q 2 r",
        "ZMPOP 2 a b MAX COUNT 2",
        "ZMPOP 2 b a MIN",
    ]);
    // Sorted sets moved and copied between shards keep members, scores, encoding
    d.ss(&[
        "ZADD k1 1 x 2.5 y inf z",
        "COPY k1 k3",
        "ZRANGE k3 0 -1 WITHSCORES",
        "RENAME k3 k0",
        "ZSCORE k0 y",
        "TYPE k0",
        "OBJECT ENCODING k0",
        "EXPIRE k1 100",
        "ZADD k1 3 w",
        "TTL k1",
        "ZPOPMIN k1 10",
        "TTL k1",
        "DEL k0",
    ]);
    // ZRANDMEMBER: only replies that do not depend on randomness
    d.ss(&[
        "ZADD r 1 a 2 b 3 c",
        "ZRANDMEMBER nokey",
        "ZRANDMEMBER nokey 5",
        "ZRANDMEMBER r 0",
        "ZRANDMEMBER r 3 WITHSCORES",
        "ZRANDMEMBER r 10 WITHSCORES",
        "ZRANDMEMBER r 10",
        "ZRANDMEMBER r x",
        "ZRANDMEMBER r 1 FOO",
        "ZRANDMEMBER r 1 WITHSCORES x",
        "ZRANDMEMBER r -9223372036854775808",
        "ZRANDMEMBER r 9223372036854775807 WITHSCORES",
        "ZRANDMEMBER str",
        "ZRANDMEMBER str 1",
    ]);
}

/// Blocking pops, only where they do not block (data present, or errors).
fn script_blocking(d: &mut Diff) {
    d.ss(&[
        "ZADD {t}a 1 x 2 y 3 z",
        "SET {t}s v",
        "BZPOPMIN {t}a 0",
        "BZPOPMAX {t}a 1.5",
        "BZPOPMIN {t}none {t}a 0",
        "BZPOPMIN {t}a abc",
        "BZPOPMIN {t}a -1",
        "BZPOPMIN {t}s 0",
        "BZPOPMIN {t}none {t}s {t}a 0",
        "BZPOPMIN {t}s abc",
        "EXISTS {t}a",
        "ZADD {t}a 1 x 2 y 3 z",
        "BZMPOP 0 1 {t}a MIN",
        "BZMPOP 0 2 {t}none {t}a MAX COUNT 5",
        "EXISTS {t}a",
        "ZADD {t}a 1 x 2 y 3 z",
        "BZMPOP 0.01 2 {t}a {t}s MIN COUNT 2",
        "BZMPOP 0 2 {t}none {t}s MIN",
        "BZMPOP abc 0 {t}a MIN",
        "BZMPOP abc 1 {t}a FOO",
        "BZMPOP -1 1 {t}a MIN",
        "BZMPOP abc 1 {t}a MIN",
        "BZMPOP 0 1 {t}a MIN COUNT 0",
        "BZMPOP 0 3 {t}a MIN",
        "BZMPOP 0 1 {t}a MAX",
        "EXISTS {t}a",
    ]);
}

#[test]
fn zsets_blocking_with_data() {
    run_scripted("zsets_blocking", script_blocking);
}

/// ZSCAN of a listpack answers everything at once, in order: exact.
fn script_zscan(d: &mut Diff) {
    d.ss(&[
        "ZADD lp 1e17 a 0.1 b 1.5 c inf d -inf e 123456789012345678 f -0 g 5e-324 h 3 i 1e20 j -7 k",
        "ZSCAN lp 0",
        "ZSCAN lp 0 MATCH [a-c] COUNT 1",
        "ZSCAN lp 0 TYPE string",
        "ZSCAN lp 0 COUNT 0",
        "ZSCAN lp 0 COUNT x",
        "ZSCAN lp 0 MATCH",
        "ZSCAN lp abc",
        "ZSCAN lp -1",
        "ZSCAN nokey 0 FOO",
        "ZSCAN nokey x",
        "SET str v",
        "ZSCAN str 0",
        "ZSCAN str 0 FOO",
    ]);
}

#[test]
fn zsets_zscan_listpack() {
    run_scripted("zsets_zscan", script_zscan);
}

/// ZSCAN of a skiplist: every member present for the whole scan comes back,
/// while members are added and removed between the calls.
#[test]
fn zscan_skiplist_guarantee() {
    let srv = common::TesseraServer::start(SHARDS, &[]);
    let mut c = srv.client();
    for i in 0..1000 {
        c.cmd(&["ZADD", "big", &i.to_string(), &format!("m{i}")]);
    }
    assert_eq!(c.cmd_value(&["OBJECT", "ENCODING", "big"]).as_str().unwrap(), "skiplist");
    let mut cursor = "0".to_string();
    let mut seen = std::collections::BTreeMap::new();
    let mut step = 0;
    loop {
        let v = c.cmd_value(&["ZSCAN", "big", &cursor, "COUNT", "25"]);
        let a = v.as_array().unwrap();
        cursor = a[0].as_str().unwrap();
        for p in a[1].as_array().unwrap().chunks(2) {
            seen.insert(p[0].as_str().unwrap(), p[1].as_str().unwrap());
        }
        // churn: members m1000.. come and go, m0..m499 are removed late
        c.cmd(&["ZADD", "big", "1", &format!("x{step}")]);
        c.cmd(&["ZREM", "big", &format!("x{}", step / 2)]);
        step += 1;
        assert!(step < 10_000, "ZSCAN does not terminate");
        if cursor == "0" {
            break;
        }
    }
    for i in 0..1000 {
        let m = format!("m{i}");
        assert_eq!(seen.get(&m).map(|s| s.as_str()), Some(i.to_string().as_str()), "{m} missing or wrong score");
    }
    let v = c.cmd_value(&["ZSCAN", "big", "0", "MATCH", "m99*", "COUNT", "100000"]);
    let a = v.as_array().unwrap();
    assert_eq!(a[0].as_str().unwrap(), "0");
    assert_eq!(a[1].as_array().unwrap().len(), 2 * 11);
}

#[test]
fn zsets_multi_key() {
    assert_keys_span_shards(&["a", "b", "c", "d", "k0", "k2"], SHARDS);
    run_scripted("zsets_multi_key", script_multi);
}

#[test]
fn zrandmember_shapes() {
    let srv = common::TesseraServer::start(SHARDS, &[]);
    let mut c = srv.client();
    c.cmd(&["ZADD", "r", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "6", "f", "7", "g"]);
    let members: Vec<&str> = vec!["a", "b", "c", "d", "e", "f", "g"];
    for _ in 0..20 {
        let one = c.cmd_value(&["ZRANDMEMBER", "r"]);
        assert!(members.contains(&one.as_str().unwrap().as_str()));
        for n in ["2", "5", "-3", "-20", "1"] {
            let v = c.cmd_value(&["ZRANDMEMBER", "r", n]);
            let a = v.as_array().unwrap();
            let want: usize = n.trim_start_matches('-').parse().unwrap();
            assert_eq!(a.len(), want);
            let got: Vec<String> = a.iter().map(|x| x.as_str().unwrap()).collect();
            assert!(got.iter().all(|g| members.contains(&g.as_str())));
            if !n.starts_with('-') {
                let uniq: std::collections::BTreeSet<&String> = got.iter().collect();
                assert_eq!(uniq.len(), got.len(), "ZRANDMEMBER {n} repeated a member");
            }
        }
        let v = c.cmd_value(&["ZRANDMEMBER", "r", "-4", "WITHSCORES"]);
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 8);
        for p in a.chunks(2) {
            let m = p[0].as_str().unwrap();
            let idx = members.iter().position(|x| *x == m).unwrap();
            assert_eq!(p[1].as_str().unwrap(), (idx + 1).to_string());
        }
    }
}

#[test]
fn zsets_basic() {
    run_scripted("zsets_basic", script_basic);
}

#[test]
fn zsets_ranges() {
    run_scripted("zsets_ranges", script_ranges);
}

#[test]
fn zsets_encoding() {
    run_scripted("zsets_encoding", script_encoding);
}

// ---------------------------------------------------------------------------
// Seeded random differential run
// ---------------------------------------------------------------------------

/// SplitMix64: tiny and stable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const SCORES: &[&str] = &[
    "0", "1", "-1", "2", "3", "1.5", "0.1", "0.2", "-0.3", "inf", "-inf", "+inf", "1e300", "-2.5", "7", "10", "100", "abc", "nan",
];
const BOUNDS: &[&str] = &["-inf", "+inf", "0", "1", "(1", "2", "(2.5", "3", "-1", "(0", "10", "(inf", "x"];
const LEX: &[&str] = &["-", "+", "[a", "(a", "[m3", "(m5", "[m", "[z", "(m", "x"];
const RANKS: &[&str] = &["0", "1", "2", "-1", "-2", "5", "-10", "100", "3"];

fn member(r: &mut Rng, key: &str) -> String {
    if key == "big" || key == "l" {
        format!("m{}", r.below(300))
    } else {
        format!("m{}", r.below(12))
    }
}

fn random_zset_command(r: &mut Rng) -> Vec<String> {
    let key = ["a", "b", "big", "l"][r.below(4)];
    let lex_key = key == "l";
    let score = |r: &mut Rng| if lex_key { "0".to_string() } else { r.pick(SCORES).to_string() };
    let s = |x: &str| x.to_string();
    let mut c: Vec<String> = Vec::new();
    match r.below(20) {
        0..=3 => {
            c.push(s("ZADD"));
            c.push(s(key));
            for opt in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
                if r.below(8) == 0 && !(lex_key && opt == "INCR") {
                    c.push(s(opt));
                }
            }
            let n = if key == "big" || key == "l" { 10 + r.below(60) } else { 1 + r.below(3) };
            for _ in 0..n {
                c.push(score(r));
                c.push(member(r, key));
            }
        }
        4 if !lex_key => c.extend([s("ZINCRBY"), s(key), score(r), member(r, key)]),
        5 => {
            c.extend([s("ZREM"), s(key)]);
            for _ in 0..1 + r.below(3) {
                c.push(member(r, key));
            }
        }
        6 | 7 => {
            c.extend([s("ZRANGE"), s(key)]);
            match r.below(3) {
                0 => c.extend([s(r.pick(RANKS)), s(r.pick(RANKS))]),
                1 => {
                    c.extend([s(r.pick(BOUNDS)), s(r.pick(BOUNDS)), s("BYSCORE")]);
                    if r.below(3) == 0 {
                        c.extend([s("LIMIT"), s(r.pick(RANKS)), s(r.pick(RANKS))]);
                    }
                }
                _ => {
                    // Lex ranges are only defined when every score is equal.
                    c[1] = s("l");
                    c.extend([s(r.pick(LEX)), s(r.pick(LEX)), s("BYLEX")]);
                    if r.below(3) == 0 {
                        c.extend([s("LIMIT"), s(r.pick(RANKS)), s(r.pick(RANKS))]);
                    }
                }
            }
            if r.below(2) == 0 {
                c.push(s("REV"));
            }
            if r.below(2) == 0 {
                c.push(s("WITHSCORES"));
            }
        }
        8 => c.extend([s(["ZRANK", "ZREVRANK"][r.below(2)]), s(key), member(r, key)]),
        9 => c.extend([s("ZCOUNT"), s(key), s(r.pick(BOUNDS)), s(r.pick(BOUNDS))]),
        10 => c.extend([s("ZLEXCOUNT"), s("l"), s(r.pick(LEX)), s(r.pick(LEX))]),
        11 => c.extend([s("ZREMRANGEBYRANK"), s(key), s(r.pick(RANKS)), s(r.pick(RANKS))]),
        12 => c.extend([s("ZREMRANGEBYSCORE"), s(key), s(r.pick(BOUNDS)), s(r.pick(BOUNDS))]),
        13 => c.extend([s("ZREMRANGEBYLEX"), s("l"), s(r.pick(LEX)), s(r.pick(LEX))]),
        14 => c.extend([s(["ZPOPMIN", "ZPOPMAX"][r.below(2)]), s(key), s(r.pick(RANKS))]),
        15 => c.extend([s("ZMSCORE"), s(key), member(r, key), member(r, key)]),
        16 => c.extend([s("ZCARD"), s(key)]),
        17 => c.extend([s("OBJECT"), s("ENCODING"), s(key)]),
        18 => {
            c.extend([
                s(["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"][r.below(3)]),
                s(["c", "d"][r.below(2)]),
                s("2"),
                s("a"),
                s("b"),
            ]);
            if c[0] != "ZDIFFSTORE" && r.below(2) == 0 {
                c.extend([s("AGGREGATE"), s(["SUM", "MIN", "MAX"][r.below(3)])]);
            }
        }
        _ => c.extend([s("ZRANGE"), s(["c", "d"][r.below(2)]), s("0"), s("-1"), s("WITHSCORES")]),
    }
    c
}

fn script_random(d: &mut Diff) {
    let seed: u64 = std::env::var("TESSERA_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(42);
    let n: usize = std::env::var("TESSERA_DIFF_RANDOM").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    d.seed = Some(seed);
    let mut r = Rng(seed);
    for _ in 0..n {
        let cmd = random_zset_command(&mut r);
        let refs: Vec<&str> = cmd.iter().map(|x| x.as_str()).collect();
        d.c(&refs);
    }
    d.ss(&[
        "ZRANGE a 0 -1 WITHSCORES",
        "ZRANGE b 0 -1 WITHSCORES",
        "ZRANGE big 0 -1 WITHSCORES",
        "ZRANGE l 0 -1 WITHSCORES",
    ]);
    d.ss(&["OBJECT ENCODING big", "OBJECT ENCODING l", "ZCARD big", "ZCARD l"]);
}

#[test]
fn zsets_random_differential() {
    run_scripted("zsets_random", script_random);
}
