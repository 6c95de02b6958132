//! Keyspace notifications against a real redis-server 7.0.15: the same
//! commands on both, a subscriber to `__keyspace@*__:*` and
//! `__keyevent@*__:*` on each, and after every command the messages each
//! subscriber received must be identical (event names, order, channels).
//! Tessera runs 2 shards, so the keys, the subscriber and the writer sit on
//! different shards.

mod common;

use common::*;
use std::time::Duration;

/// Commands in order; `sleep` lines wait (for lazy expiry).
const SCRIPT: &[&str] = &[
    "SET s v",
    "SET s v EX 100",
    "SETEX s2 100 v",
    "SETNX s v",
    "SETNX s3 v",
    "GETSET s w",
    "APPEND s x",
    "SETRANGE s 1 yy",
    "INCR n",
    "DECRBY n 3",
    "INCRBYFLOAT f 1.5",
    "MSET a 1 b 2 c 3",
    "MSETNX a 1 z 2",
    "GETEX s EX 50",
    "GETEX s PERSIST",
    "GETDEL s3",
    "EXPIRE a 100",
    "PEXPIRE a 0",
    "PERSIST b",
    "EXPIRE b 100",
    "PERSIST b",
    "RENAME b bb",
    "RENAME c k1",
    "COPY k1 k2",
    "MOVE k2 1",
    "DEL bb k1 nokey",
    "UNLINK n f",
    "RPUSH l a b c d e",
    "LPUSH l z",
    "LPUSHX nol x",
    "LINSERT l BEFORE a q",
    "LSET l 0 zz",
    "LREM l 1 q",
    "LTRIM l 0 4",
    "LPOP l",
    "RPOP l 2",
    "LMOVE l l2 LEFT RIGHT",
    "RPOPLPUSH l l3",
    "LMOVE l l LEFT RIGHT",
    "LPOP l 5",
    "RPUSH m x",
    "LMPOP 2 nol m LEFT",
    "HSET h f1 v1 f2 v2",
    "HSETNX h f1 x",
    "HSETNX h f3 x",
    "HINCRBY h n 5",
    "HINCRBYFLOAT h fl 0.5",
    "HDEL h f1 nof",
    "HDEL h f2 f3 n fl",
    "SADD st a b c",
    "SADD st a",
    "SREM st a",
    "SMOVE st st2 b",
    "SPOP st",
    "SADD st x y z",
    "SPOP st 5",
    "SADD s1 1 2 3",
    "SADD s2 2 3 4",
    "SINTERSTORE si s1 s2",
    "SUNIONSTORE su s1 s2",
    "SDIFFSTORE sd s1 s2",
    "SINTERSTORE si s1 nokey",
    "ZADD z 1 a 2 b 3 c 4 d",
    "ZADD z 1 a",
    "ZADD z INCR 5 a",
    "ZINCRBY z 1 b",
    "ZREM z c",
    "ZREMRANGEBYSCORE z 0 2",
    "ZADD z 1 m 2 n 3 o",
    "ZREMRANGEBYRANK z 0 0",
    "ZREMRANGEBYLEX z [a [z",
    "ZPOPMIN z",
    "ZPOPMAX z 10",
    "ZADD za 1 a 2 b",
    "ZADD zb 2 b 3 c",
    "ZUNIONSTORE zu 2 za zb",
    "ZINTERSTORE zi 2 za zb",
    "ZDIFFSTORE zd 2 za zb",
    "ZRANGESTORE zr za 0 -1",
    "ZINTERSTORE zi 2 za nokey",
    "ZMPOP 1 za MIN COUNT 5",
    "RPUSH ids 3 1 2",
    "SORT ids STORE sorted",
    "SORT nokey STORE sorted",
    "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
    "GEOADD g NX 13.361389 38.115556 Palermo",
    "GEOADD g XX CH 13.4 38.1 Palermo",
    "GEOSEARCHSTORE gs g FROMMEMBER Palermo BYRADIUS 200 km",
    "GEOSEARCHSTORE gs g FROMMEMBER Palermo BYRADIUS 200 km STOREDIST",
    "GEORADIUS g 15 37 200 km STORE gr",
    "GEORADIUSBYMEMBER g Palermo 200 km STOREDIST gr",
    "GEOSEARCHSTORE gs g FROMLONLAT 0 0 BYRADIUS 1 km",
    "GEORADIUS nokey 15 37 200 km STORE gr",
    "GEORADIUS nokey 15 37 200 km STORE gr",
    "SET e 1 PX 1",
    "sleep",
    "GET e",
    "GET missing",
    "FLUSHALL",
];

/// Everything `c` received until the marker message `mark`.
fn until_mark(c: &mut Client, mark: &str) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let v = c.read_value();
        let is_mark = v
            .as_array()
            .is_some_and(|a| a.len() == 3 && a[1].as_str().as_deref() == Some("mark") && a[2].as_str().as_deref() == Some(mark));
        if is_mark {
            return got;
        }
        got.push(v);
    }
}

fn run(port: u16, classes: &str) -> Vec<Vec<Value>> {
    let mut w = Client::connect(port);
    w.cmd(&["FLUSHALL"]);
    assert_eq!(w.cmd(&["CONFIG", "SET", "notify-keyspace-events", classes]), b"+OK\r\n");
    let mut sub = Client::connect(port);
    sub.set_timeout(Duration::from_secs(10));
    sub.send_strs(&["PSUBSCRIBE", "__key*__:*"]);
    sub.read_value();
    sub.send_strs(&["SUBSCRIBE", "mark"]);
    sub.read_value();
    let mut seen = Vec::new();
    for (i, line) in SCRIPT.iter().enumerate() {
        if *line == "sleep" {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let args: Vec<&str> = line.split(' ').collect();
        w.cmd(&args);
        let mark = i.to_string();
        w.cmd(&["PUBLISH", "mark", &mark]);
        seen.push(until_mark(&mut sub, &mark));
    }
    w.cmd(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    seen
}

fn compare(classes: &str, min_events: usize) {
    let redis = RedisServer::start(&[]);
    let tessera = TesseraServer::start(2, &[]);
    let r = run(redis.port, classes);
    let t = run(tessera.port, classes);
    let mut events = 0;
    for (i, (a, b)) in t.iter().zip(r.iter()).enumerate() {
        let show = |v: &[Value]| v.iter().map(|m| escape(&m.encode())).collect::<Vec<_>>().join(" | ");
        assert_eq!(
            a,
            b,
            "after `{}` (classes {classes}):\n tessera {}\n redis   {}",
            SCRIPT.iter().filter(|l| **l != "sleep").nth(i).unwrap(),
            show(a),
            show(b)
        );
        events += b.len();
    }
    assert!(events >= min_events, "the script must produce events ({events})");
}

#[test]
fn keyspace_and_keyevent_notifications_match_redis_for_every_family() {
    compare("KEA", 100);
}

#[test]
fn notification_classes_filter_like_redis() {
    compare("Kl$x", 20);
    compare("Egm", 20);
}

/// The `n` class (dbAdd's `new` event, not part of `A`): before the
/// command's own event, for every way a key comes to exist (SET, MSET, list,
/// hash, set and zset creation, RENAME, COPY, MOVE, the *STORE commands),
/// in the same order as Redis.
#[test]
fn new_key_events_match_redis() {
    compare("KEAn", 130);
    compare("En", 20);
}
