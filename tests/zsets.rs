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
