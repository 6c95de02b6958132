//! `rdb_changes_since_last_save` (Redis's `server.dirty`, which drives the
//! `save <seconds> <changes>` points) counts what Redis counts, command by
//! command: one per element for the multi-element writes (RPUSH of three
//! counts 3, HSET per pair, ZADD per added or updated member, SREM / HDEL /
//! ZREM / LREM per removed element, pops per popped element), one for a pop
//! that empties its key, and one for LMOVE and RENAME, also when source and
//! destination live on different shards. Differential: the same sequence on
//! Tessera (1 and 2 shards) and redis-server, the counter's delta compared
//! after every command.

mod common;

use common::*;

const SEQUENCE: &[&str] = &[
    "RPUSH l a b c",
    "LPUSH l x y",
    "RPUSHX l z w",
    "LPUSHX nol a",
    "LINSERT l BEFORE a q",
    "LSET l 0 v",
    "LREM l 0 a",
    "RPUSH l a a a b",
    "LREM l 2 a",
    "LTRIM l 1 -2",
    "LTRIM l 0 -1",
    "LPOP l 2",
    "RPOP l",
    "LMOVE l l2 LEFT RIGHT",
    "RPOPLPUSH l l2",
    "LMOVE l2 l2 LEFT RIGHT",
    "LMPOP 2 nol l2 LEFT COUNT 5",
    "SADD s a b c",
    "SADD s a d",
    "SREM s a x b",
    "SADD s 1 2 3 4 5",
    "SPOP s 100",
    "SADD s 1 2",
    "SMOVE s s2 1",
    "SMOVE s s2 nope",
    "SINTERSTORE s3 s s2",
    "HSET h a 1 b 2 c 3",
    "HSET h a 9",
    "HSETNX h d 4",
    "HDEL h a b z",
    "HINCRBY h n 5",
    "HMSET h x 1 y 2",
    "HDEL h c d n x y",
    "ZADD z 1 a 2 b 3 c",
    "ZADD z 5 a 2 b 4 d",
    "ZADD z NX 7 a 8 e",
    "ZADD z INCR 1 a",
    "ZINCRBY z 2 b",
    "ZREM z a x c",
    "ZADD z 1 p 2 q 3 r 4 s",
    "ZREMRANGEBYSCORE z 1 2",
    "ZREMRANGEBYRANK z 0 0",
    "ZPOPMIN z 2",
    "ZPOPMAX z 10",
    "ZADD z 1 m 2 n",
    "ZMPOP 1 z MIN COUNT 5",
    "SET k v",
    "RENAME k k2",
    "RENAME k2 k2",
    "SET k v",
    "RENAMENX k k2",
    "DEL k k2 nosuch",
];

fn dirty(c: &mut Client) -> i64 {
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
    info_field(&info, "rdb_changes_since_last_save")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rdb_changes_since_last_save in {info}"))
}

#[test]
fn every_write_counts_its_changes_as_redis_does_at_1_and_2_shards() {
    let rs = RedisServer::start(&[]);
    for shards in [1, 2] {
        let ts = TesseraServer::start(shards, &[]);
        let (mut t, mut r) = (ts.client(), rs.client());
        r.cmd(&["FLUSHALL"]);
        for line in SEQUENCE {
            let args: Vec<&str> = line.split(' ').collect();
            let (t0, r0) = (dirty(&mut t), dirty(&mut r));
            let (tr, rr) = (t.cmd(&args), r.cmd(&args));
            // SPOP of a whole hashtable set answers in each server's hash order.
            if !line.starts_with("SPOP") {
                assert_eq!(escape(&tr), escape(&rr), "{shards} shards: reply of {line}");
            }
            let (td, rd) = (dirty(&mut t) - t0, dirty(&mut r) - r0);
            assert_eq!(td, rd, "{shards} shards: changes counted for {line} (tessera, redis)");
        }
    }
}
