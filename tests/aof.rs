//! The AOF against redis-server 7.0.15: Tessera's multi-part AOF directory is
//! accepted by redis-check-aof and loaded by redis-server with the same data;
//! Redis's (with and without RDB preamble) is loaded by Tessera; truncated
//! tails follow `aof-load-truncated`; `kill -9` under `appendfsync always`
//! never loses an acknowledged write nor half of a cross-shard MSET.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

type Data = BTreeMap<(usize, String), (String, i64)>;

fn sorted(v: &Value) -> String {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| String::from_utf8_lossy(x.as_bytes().unwrap()).into_owned())
        .collect();
    s.sort();
    s.join(",")
}

/// A key as a client sees it: type and contents (unordered types sorted).
fn describe(c: &mut Client, key: &str) -> String {
    let t = match c.cmd_value(&["TYPE", key]) {
        Value::Simple(s) => s,
        v => panic!("TYPE {key}: {v:?}"),
    };
    let body = match t.as_str() {
        "string" => String::from_utf8_lossy(c.cmd_value(&["GET", key]).as_bytes().unwrap_or_default()).into_owned(),
        "list" => format!("{:?}", c.cmd_value(&["LRANGE", key, "0", "-1"])),
        "set" => sorted(&c.cmd_value(&["SMEMBERS", key])),
        "hash" => sorted(&c.cmd_value(&["HGETALL", key])),
        "zset" => format!("{:?}", c.cmd_value(&["ZRANGE", key, "0", "-1", "WITHSCORES"])),
        "stream" => format!("{:?}", c.cmd_value(&["XRANGE", key, "-", "+"])),
        other => panic!("unexpected type {other}"),
    };
    format!("{t}:{body}")
}

fn snapshot(c: &mut Client, dbs: &[usize]) -> Data {
    let mut out = BTreeMap::new();
    for &db in dbs {
        assert_eq!(c.cmd(&["SELECT", &db.to_string()]), b"+OK\r\n");
        let keys = c.cmd_value(&["KEYS", "*"]);
        for k in keys.as_array().unwrap() {
            let k = String::from_utf8(k.as_bytes().unwrap().to_vec()).unwrap();
            let ttl = c.cmd_value(&["PTTL", &k]).as_int().unwrap();
            out.insert((db, k.clone()), (describe(c, &k), ttl));
        }
    }
    assert_eq!(c.cmd(&["SELECT", "0"]), b"+OK\r\n");
    out
}

fn assert_same(got: &Data, want: &Data, what: &str) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: the same keys");
    for (k, (d, ttl)) in want {
        let (gd, gttl) = &got[k];
        assert_eq!(gd, d, "{what}: {k:?}");
        if *ttl < 0 {
            assert_eq!(gttl, ttl, "{what}: {k:?} has no TTL");
        } else {
            assert!((gttl - ttl).abs() < 20_000 && *gttl > 0, "{what}: {k:?} TTL {gttl} vs {ttl}");
        }
    }
}

fn ok(c: &mut Client, args: &[&str]) {
    let r = c.cmd(args);
    assert!(!r.starts_with(b"-"), "{args:?} -> {}", String::from_utf8_lossy(&r));
}

/// Every type, TTLs, several databases, and the commands Redis rewrites.
fn populate(c: &mut Client) {
    for db in ["0", "3"] {
        ok(c, &["SELECT", db]);
        ok(c, &["SET", "s:plain", "hello"]);
        ok(c, &["SET", "s:ex", "v", "EX", "1000"]);
        ok(c, &["SETEX", "s:setex", "2000", "v"]);
        ok(c, &["SET", "s:f", "1.5"]);
        ok(c, &["INCRBYFLOAT", "s:f", "0.25"]);
        ok(c, &["INCR", "s:n"]);
        ok(c, &["RPUSH", "l", "a", "b", "c", "d"]);
        ok(c, &["LPOP", "l"]);
        ok(c, &["HSET", "h", "f1", "v1", "f2", "2"]);
        ok(c, &["HINCRBYFLOAT", "h", "f2", "0.5"]);
        ok(c, &["SADD", "set", "m1", "m2", "m3", "m4"]);
        ok(c, &["SPOP", "set"]);
        ok(c, &["SADD", "iset", "1", "2", "3"]);
        ok(c, &["ZADD", "z", "1", "one", "2.5", "two", "3", "three"]);
        ok(c, &["ZINCRBY", "z", "1", "one"]);
        ok(c, &["EXPIRE", "h", "3000"]);
        ok(c, &["MSET", "{a}m", "1", "{b}m", "2", "{c}m", "3"]);
        ok(c, &["DEL", "{a}gone", "{b}gone"]);
        ok(c, &["RENAME", "{a}m", "{b}renamed"]);
        ok(
            c,
            &[
                "EVAL",
                "redis.call('set', KEYS[1], ARGV[1]); redis.call('rpush', KEYS[2], ARGV[1]); return 1",
                "2",
                "{x}k",
                "{x}l",
                "lua",
            ],
        );
        ok(c, &["SET", "gone", "x"]);
        ok(c, &["PEXPIRE", "gone", "1"]);
    }
    ok(c, &["SELECT", "0"]);
    c.send_raw(b"MULTI\r\nSET {a}tx 1\r\nSET {b}tx 2\r\nINCR {c}tx\r\nEXEC\r\n");
    for _ in 0..5 {
        c.read_reply_raw();
    }
    std::thread::sleep(Duration::from_millis(20));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn check_aof(dir: &Path) -> String {
    let out = run_to_exit(
        "redis-check-aof",
        &["appendonlydir/appendonly.aof.manifest".to_string()],
        dir,
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(0), "redis-check-aof: {}{}", out.stdout, out.stderr);
    out.stdout
}

#[test]
fn tessera_aof_is_valid_for_redis_check_aof_and_loads_in_redis_server() {
    let mut t = TesseraServer::start(2, &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = t.client();
    // FLUSHALL / FLUSHDB over both shards propagate too.
    ok(&mut c, &["MSET", "{a}pre", "1", "{b}pre", "2"]);
    ok(&mut c, &["FLUSHALL"]);
    ok(&mut c, &["SELECT", "3"]);
    ok(&mut c, &["MSET", "{a}pre", "1", "{b}pre", "2"]);
    ok(&mut c, &["FLUSHDB"]);
    ok(&mut c, &["SELECT", "0"]);
    populate(&mut c);
    // A rewrite in the middle: the base holds the data so far, the new incr the rest.
    assert_eq!(c.cmd(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
    for _ in 0..200 {
        if info_field(&String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])), "aof_rewrite_in_progress").as_deref() == Some("0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&mut c, &["SELECT", "3"]);
    ok(&mut c, &["RPUSH", "after", "x", "y"]);
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["ZADD", "after", "5", "e"]);
    let want = snapshot(&mut c, &[0, 3]);
    assert!(want.contains_key(&(0, "{a}tx".into())) && want.contains_key(&(3, "{x}l".into())));
    let dir = t.dir.clone();
    t.stop();
    let report = check_aof(&dir);
    assert!(report.contains("All AOF files and manifest are valid"), "{report}");
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );

    let rdir = temp_dir("aof-into-redis");
    copy_dir(&dir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let redis = RedisServer::start(&["--dir", &rdir.display().to_string(), "--appendonly", "yes"]);
    let got = snapshot(&mut redis.client(), &[0, 3]);
    assert_same(&got, &want, "redis-server loading Tessera's AOF");

    // And Tessera itself restarts from it (4 shards this time).
    let tdir = temp_dir("aof-again");
    copy_dir(&dir.join("appendonlydir"), &tdir.join("appendonlydir"));
    let again = TesseraServer::start(4, &["--dir", &tdir.display().to_string(), "--appendonly", "yes"]);
    assert_same(&snapshot(&mut again.client(), &[0, 3]), &want, "Tessera reloading its AOF");
}

#[test]
fn tessera_loads_redis_aof_with_and_without_rdb_preamble() {
    for preamble in ["yes", "no"] {
        let mut redis = RedisServer::start(&["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        let mut r = redis.client();
        populate(&mut r);
        assert_eq!(r.cmd(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
        for _ in 0..200 {
            if info_field(&String::from_utf8_lossy(&r.cmd(&["INFO", "persistence"])), "aof_rewrite_in_progress").as_deref() == Some("0") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ok(&mut r, &["HSET", "later", "k", "v"]);
        ok(&mut r, &["SELECT", "3"]);
        ok(&mut r, &["SADD", "later", "a"]);
        ok(&mut r, &["SELECT", "0"]);
        let want = snapshot(&mut r, &[0, 3]);
        let rdir = redis.dir.clone();
        drop(r);
        redis.stop();
        let tdir = temp_dir("redis-aof-into-tessera");
        copy_dir(&rdir.join("appendonlydir"), &tdir.join("appendonlydir"));
        drop(redis);
        let t = TesseraServer::start(2, &["--dir", &tdir.display().to_string(), "--appendonly", "yes"]);
        assert_same(&snapshot(&mut t.client(), &[0, 3]), &want, &format!("preamble {preamble}"));
    }
}

#[test]
fn truncated_tail_is_trimmed_or_refused_as_aof_load_truncated_says() {
    let mut t = TesseraServer::start(2, &["--appendonly", "yes"]);
    let mut c = t.client();
    // A FLUSHALL over both shards is in the file (replayed, it removes these).
    ok(&mut c, &["MSET", "{a}old", "1", "{b}old", "2"]);
    ok(&mut c, &["FLUSHALL"]);
    ok(&mut c, &["SET", "kept", "1"]);
    ok(&mut c, &["RPUSH", "list", "a"]);
    let dir = t.dir.clone();
    t.stop();
    let incr = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&incr)
        .unwrap()
        .write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$2\r\nv")
        .unwrap();

    let refused = run_tessera_to_exit(
        &[
            "--port",
            &free_port().to_string(),
            "--dir",
            &dir.display().to_string(),
            "--appendonly",
            "yes",
            "--aof-load-truncated",
            "no",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(refused.status.and_then(|s| s.code()), Some(1));
    let all = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        all.contains("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof"),
        "{all}"
    );

    let t = TesseraServer::start(2, &["--dir", &dir.display().to_string(), "--appendonly", "yes", "--aof-load-truncated", "yes"]);
    let mut c = t.client();
    assert_eq!(c.cmd(&["GET", "kept"]), b"$1\r\n1\r\n");
    assert_eq!(c.cmd(&["EXISTS", "lost", "{a}old", "{b}old"]), b":0\r\n");
    assert_eq!(c.cmd(&["LLEN", "list"]), b":1\r\n");
    let log = t.log();
    assert!(
        log.contains("!!! Warning: short read while loading the AOF file appendonly.aof.1.incr.aof!!!"),
        "{log}"
    );
    assert!(
        log.contains("AOF appendonly.aof.1.incr.aof loaded anyway because aof-load-truncated is enabled"),
        "{log}"
    );
}

#[test]
fn kill_9_under_appendfsync_always_loses_no_acknowledged_write_and_no_half_mset() {
    let dir = temp_dir("aof-crash");
    let dir_s = dir.display().to_string();
    let mut acked: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); 6];
    for round in 0..4u64 {
        let mut t = TesseraServer::start(2, &["--dir", &dir_s, "--appendonly", "yes", "--appendfsync", "always"]);
        // What earlier rounds acknowledged is all there.
        let mut c = t.client();
        for (w, keys) in acked.iter().enumerate() {
            for (k, v) in keys {
                let a = c.cmd_value(&["GET", &format!("{{a}}{k}")]);
                let b = c.cmd_value(&["GET", &format!("{{b}}{k}")]);
                let (a, b) = (
                    String::from_utf8_lossy(a.as_bytes().unwrap_or(b"")).into_owned(),
                    String::from_utf8_lossy(b.as_bytes().unwrap_or(b"")).into_owned(),
                );
                assert_eq!(a, b, "round {round} writer {w}: MSET half recovered for {k}");
                let got: u64 = a.parse().unwrap_or(0);
                assert!(got >= *v, "round {round} writer {w}: {k} acknowledged {v}, found {got}");
            }
        }
        let port = t.port;
        let handles: Vec<_> = (0..6)
            .map(|w| {
                std::thread::spawn(move || {
                    let mut c = Client::connect(port);
                    c.set_timeout(Duration::from_secs(5));
                    let mut mine = BTreeMap::new();
                    let start = round * 1_000_000;
                    for i in 0..100_000u64 {
                        let k = format!("w{w}:{}", i % 10);
                        let v = (start + i).to_string();
                        let mut batch = Vec::new();
                        for _ in 0..8 {
                            batch.extend(encode_command(&[
                                b"MSET",
                                format!("{{a}}{k}").as_bytes(),
                                v.as_bytes(),
                                format!("{{b}}{k}").as_bytes(),
                                v.as_bytes(),
                            ]));
                        }
                        if c.try_send_raw(&batch).is_err() {
                            break;
                        }
                        let mut all = true;
                        for _ in 0..8 {
                            match c.try_read_reply_raw() {
                                Ok(r) if r == b"+OK\r\n" => {}
                                _ => {
                                    all = false;
                                    break;
                                }
                            }
                        }
                        if !all {
                            break;
                        }
                        mine.insert(k, start + i);
                    }
                    mine
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + 150 * round));
        t.signal(9);
        for (w, h) in handles.into_iter().enumerate() {
            acked[w].extend(h.join().unwrap());
        }
        let _ = t.wait_exit(Duration::from_secs(5));
    }
    let t = TesseraServer::start(2, &["--dir", &dir_s, "--appendonly", "yes"]);
    let mut c = t.client();
    let mut checked = 0;
    for keys in &acked {
        for (k, v) in keys {
            let a: u64 = String::from_utf8_lossy(c.cmd_value(&["GET", &format!("{{a}}{k}")]).as_bytes().unwrap_or(b"0"))
                .parse()
                .unwrap();
            let b: u64 = String::from_utf8_lossy(c.cmd_value(&["GET", &format!("{{b}}{k}")]).as_bytes().unwrap_or(b"0"))
                .parse()
                .unwrap();
            assert_eq!(a, b, "MSET half recovered for {k}");
            assert!(a >= *v, "{k}: acknowledged {v}, found {a}");
            checked += 1;
        }
    }
    assert!(checked > 0);
    let report = check_aof(&dir);
    assert!(
        report.contains("All AOF files and manifest are valid") || report.contains("truncated"),
        "{report}"
    );
}

fn wait_rewrite(c: &mut Client) {
    for _ in 0..250 {
        let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
        if info_field(&info, "aof_rewrite_in_progress").as_deref() == Some("0") && info_field(&info, "aof_rewrites").as_deref() != Some("0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the rewrite did not finish");
}

#[test]
fn config_set_appendonly_yes_starts_with_a_rewrite_of_the_current_data() {
    let mut t = TesseraServer::start(2, &[]);
    let mut c = t.client();
    ok(&mut c, &["MSET", "{a}x", "1", "{b}y", "2"]);
    ok(&mut c, &["SADD", "s", "a", "b"]);
    assert_eq!(
        info_field(&String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])), "aof_enabled").as_deref(),
        Some("0")
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), b"+OK\r\n");
    wait_rewrite(&mut c);
    ok(&mut c, &["LPUSH", "l", "after"]);
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
    assert_eq!(info_field(&info, "aof_enabled").as_deref(), Some("1"));
    assert_eq!(info_field(&info, "aof_last_bgrewrite_status").as_deref(), Some("ok"));
    assert!(info_field(&info, "aof_base_size").unwrap().parse::<u64>().unwrap() > 0);
    let want = snapshot(&mut c, &[0]);
    let dir = t.dir.clone();
    t.stop();
    check_aof(&dir);
    let rdir = temp_dir("aof-runtime-into-redis");
    copy_dir(&dir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let redis = RedisServer::start(&["--dir", &rdir.display().to_string(), "--appendonly", "yes"]);
    assert_same(&snapshot(&mut redis.client(), &[0]), &want, "after CONFIG SET appendonly yes");
}

#[test]
fn auto_rewrite_starts_once_the_file_grew_past_min_size_and_percentage() {
    let t = TesseraServer::start(
        2,
        &[
            "--appendonly",
            "yes",
            "--auto-aof-rewrite-min-size",
            "4096",
            "--auto-aof-rewrite-percentage",
            "100",
        ],
    );
    let mut c = t.client();
    let v = "x".repeat(200);
    for i in 0..40 {
        ok(&mut c, &["SET", &format!("k{i}"), &v]);
    }
    wait_rewrite(&mut c);
    assert!(t.log().contains("Starting automatic rewriting of AOF on"), "{}", t.log());
    for i in 0..40 {
        assert_eq!(describe(&mut c, &format!("k{i}")), format!("string:{v}"));
    }
}

#[test]
fn served_blocking_pops_and_moves_propagate_as_their_non_blocking_forms() {
    let mut t = TesseraServer::start(2, &["--appendonly", "yes", "--appendfsync", "always"]);
    let port = t.port;
    let mut c = t.client();
    ok(&mut c, &["RPUSH", "{a}now", "1", "2"]);
    assert_eq!(c.cmd(&["BLPOP", "{a}now", "1"]), b"*2\r\n$6\r\n{a}now\r\n$1\r\n1\r\n");
    // Served later: a pop on the key's shard, a move across shards.
    let waiter = std::thread::spawn(move || {
        let mut w = Client::connect(port);
        let pop = w.cmd(&["BLPOP", "{a}q", "10"]);
        let mv = w.cmd(&["BLMOVE", "{a}src", "{b}dst", "LEFT", "RIGHT", "10"]);
        let in_exec = w.cmd(&["BRPOP", "{a}m", "10"]);
        (pop, mv, in_exec)
    });
    std::thread::sleep(Duration::from_millis(200));
    ok(&mut c, &["RPUSH", "{a}q", "x", "y"]);
    std::thread::sleep(Duration::from_millis(200));
    ok(&mut c, &["RPUSH", "{a}src", "e1", "e2"]);
    std::thread::sleep(Duration::from_millis(200));
    // Pushed by an EXEC: the pop it serves follows it in the file.
    c.send_raw(b"MULTI\r\nRPUSH {a}m p1 p2\r\nSET {a}k v\r\nEXEC\r\n");
    for _ in 0..4 {
        c.read_reply_raw();
    }
    let (pop, mv, in_exec) = waiter.join().unwrap();
    assert_eq!(in_exec, b"*2\r\n$4\r\n{a}m\r\n$2\r\np2\r\n");
    assert_eq!(pop, b"*2\r\n$4\r\n{a}q\r\n$1\r\nx\r\n");
    assert_eq!(mv, b"$2\r\ne1\r\n");
    let want = snapshot(&mut c, &[0]);
    let dir = t.dir.clone();
    t.stop();
    check_aof(&dir);
    let rdir = temp_dir("aof-blocking-into-redis");
    copy_dir(&dir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let redis = RedisServer::start(&["--dir", &rdir.display().to_string(), "--appendonly", "yes"]);
    assert_same(&snapshot(&mut redis.client(), &[0]), &want, "served blocking commands");
}

/// A stream's state after a replay: entries, groups (last ID, entries-read,
/// lag), every pending entry's consumer and delivery count, the consumers
/// (idle times left out). `core`: only what replay must give back exactly
/// (entries, groups' last IDs, who holds each pending entry); Redis's own
/// replay loses the rest too (entries-read after XCLAIM LASTID, delivery
/// counts of history reads: both checked against redis-server below).
fn stream_state(c: &mut Client, key: &str, groups: &[&str], core: bool) -> String {
    let mut s = String::from_utf8_lossy(&c.cmd(&["XRANGE", key, "-", "+"])).into_owned();
    for g in c.cmd_value(&["XINFO", "GROUPS", key]).as_array().unwrap() {
        let f = g.as_array().unwrap();
        let text = |v: &Value| match v {
            Value::Int(i) => i.to_string(),
            Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            _ => "nil".into(),
        };
        let shown = if core { 8 } else { f.len() };
        s.push_str(&format!("\n{}", f[..shown].iter().map(text).collect::<Vec<_>>().join(" ")));
    }
    for g in groups {
        let pending = c.cmd_value(&["XPENDING", key, g, "-", "+", "100"]);
        for p in pending.as_array().unwrap() {
            let f = p.as_array().unwrap();
            s.push_str(&format!(
                "\n{g} {} {}",
                String::from_utf8_lossy(f[0].as_bytes().unwrap()),
                String::from_utf8_lossy(f[1].as_bytes().unwrap())
            ));
            if !core {
                s.push_str(&format!(" {}", f[3].as_int().unwrap()));
            }
        }
        for cons in c.cmd_value(&["XINFO", "CONSUMERS", key, g]).as_array().unwrap() {
            let f = cons.as_array().unwrap();
            s.push_str(&format!(" {}:{}", String::from_utf8_lossy(f[1].as_bytes().unwrap()), f[3].as_int().unwrap()));
        }
    }
    s
}

#[test]
fn streams_propagate_as_redis_does_and_replay_to_the_same_ids_and_groups() {
    let mut t = TesseraServer::start(2, &["--appendonly", "yes", "--stream-node-max-entries", "2"]);
    let mut c = t.client();
    // Generated IDs, an approximate trim (whole nodes of 2), explicit-ms IDs.
    for i in 0..7 {
        ok(&mut c, &["XADD", "{a}s", "*", "f", &i.to_string()]);
    }
    ok(&mut c, &["XADD", "{a}s", "MAXLEN", "~", "3", "*", "f", "7"]);
    ok(&mut c, &["XADD", "{a}s", "99999999999999-*", "f", "8"]);
    ok(&mut c, &["XTRIM", "{a}s", "MINID", "~", "0-1"]);
    ok(&mut c, &["XGROUP", "CREATE", "{a}s", "g", "0"]);
    ok(&mut c, &["XGROUP", "CREATE", "{a}s", "n", "0"]);
    // Deliveries, then claims that depend on idle time (replay must not re-decide them).
    ok(&mut c, &["XREADGROUP", "GROUP", "g", "alice", "COUNT", "3", "STREAMS", "{a}s", ">"]);
    std::thread::sleep(Duration::from_millis(30));
    let first = c.cmd_value(&["XRANGE", "{a}s", "-", "+", "COUNT", "1"]);
    let first_id = String::from_utf8_lossy(first.as_array().unwrap()[0].as_array().unwrap()[0].as_bytes().unwrap()).into_owned();
    ok(&mut c, &["XCLAIM", "{a}s", "g", "bob", "20", &first_id]);
    ok(&mut c, &["XAUTOCLAIM", "{a}s", "g", "carol", "20", "0-0", "COUNT", "1"]);
    ok(&mut c, &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "{a}s", "0"]);
    // NOACK: only the group's last ID and the consumer propagate.
    ok(&mut c, &["XREADGROUP", "GROUP", "n", "dave", "NOACK", "COUNT", "2", "STREAMS", "{a}s", ">"]);
    // The other shard, and an XREADGROUP that reads nothing.
    ok(&mut c, &["XADD", "{b}t", "*", "x", "1"]);
    ok(&mut c, &["XGROUP", "CREATE", "{b}t", "g", "$"]);
    ok(&mut c, &["XREADGROUP", "GROUP", "g", "erin", "STREAMS", "{b}t", ">"]);
    let want = (stream_state(&mut c, "{a}s", &["g", "n"], true), stream_state(&mut c, "{b}t", &["g"], true));
    assert!(want.0.contains("bob") && want.0.contains("carol") && want.0.contains("dave"), "{}", want.0);
    let dir = t.dir.clone();
    t.stop();
    let incr = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    assert!(!incr.contains("XREADGROUP") && !incr.contains("XAUTOCLAIM"), "{incr}");
    assert!(incr.contains("XCLAIM") && incr.contains("SETID") && incr.contains("CREATECONSUMER"), "{incr}");
    assert!(
        !incr.contains("\r\n*\r\n") && !incr.contains("~"),
        "generated IDs and approximate trims are made explicit: {incr}"
    );
    let report = check_aof(&dir);
    assert!(report.contains("All AOF files and manifest are valid"), "{report}");

    let tdir = temp_dir("aof-streams-again");
    copy_dir(&dir.join("appendonlydir"), &tdir.join("appendonlydir"));
    let restarted = TesseraServer::start(2, &["--dir", &tdir.display().to_string(), "--appendonly", "yes"]);
    let mut again = restarted.client();
    let core = (
        stream_state(&mut again, "{a}s", &["g", "n"], true),
        stream_state(&mut again, "{b}t", &["g"], true),
    );
    assert_eq!(core, want, "Tessera replaying its AOF");
    let full = (
        stream_state(&mut again, "{a}s", &["g", "n"], false),
        stream_state(&mut again, "{b}t", &["g"], false),
    );
    let rdir = temp_dir("aof-streams-into-redis");
    copy_dir(&dir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let redis = RedisServer::start(&["--dir", &rdir.display().to_string(), "--appendonly", "yes", "--stream-node-max-entries", "2"]);
    let mut r = redis.client();
    let got = (stream_state(&mut r, "{a}s", &["g", "n"], false), stream_state(&mut r, "{b}t", &["g"], false));
    assert_eq!(got, full, "redis-server loading Tessera's AOF");
}

/// The files of `appenddirname`, sorted (none: the directory does not exist).
fn aof_files(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir.join("appendonlydir")) else {
        return vec!["<no appendonlydir>".into()];
    };
    let mut v: Vec<String> = rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Waits until `n` rewrites are done (aof_rewrites counts them; Redis at the start).
fn wait_rewrites(c: &mut Client, n: u64) {
    for _ in 0..500 {
        let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
        let done = info_field(&info, "aof_rewrites").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if info_field(&info, "aof_rewrite_in_progress").as_deref() == Some("0") && done >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("rewrite {n} did not finish");
}

/// INFO persistence's aof fields a client compares (the rewrite's duration
/// only as "ran": Redis counts whole seconds of wall clock).
fn aof_info(c: &mut Client) -> String {
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
    let mut out = Vec::new();
    for f in [
        "aof_enabled",
        "aof_rewrite_in_progress",
        "aof_rewrite_scheduled",
        "aof_current_rewrite_time_sec",
        "aof_last_bgrewrite_status",
        "aof_rewrites",
        "aof_rewrites_consecutive_failures",
        "aof_last_write_status",
    ] {
        out.push(format!("{f}:{}", info_field(&info, f).unwrap_or_default()));
    }
    let secs = info_field(&info, "aof_last_rewrite_time_sec").unwrap_or_default();
    out.push(format!("rewrite ran:{}", secs != "-1"));
    out.push(format!("aof_current_size shown:{}", info_field(&info, "aof_current_size").is_some()));
    out.join(" ")
}

/// BGREWRITEAOF with appendonly no, twice, then CONFIG SET appendonly yes,
/// a restart with appendonly yes, a restart with appendonly no and one more
/// BGREWRITEAOF then appendonly yes: what a client and the directory show
/// at each step. `start(args)` starts the server under test.
fn aof_off_transcript(start: &dyn Fn(&[&str]) -> ServerProcess) -> (Vec<String>, Data, ServerProcess) {
    let mut t = Vec::new();
    let mut s = start(&["--appendonly", "no"]);
    let dir = s.dir.clone();
    let d = dir.display().to_string();
    let mut c = s.client();
    populate(&mut c);
    t.push(format!("before: {} {:?}", aof_info(&mut c), aof_files(&dir)));
    let r = c.cmd(&["BGREWRITEAOF"]);
    t.push(format!("reply 1: {}", String::from_utf8_lossy(&r)));
    wait_rewrites(&mut c, 1);
    t.push(format!("after 1: {} {:?}", aof_info(&mut c), aof_files(&dir)));
    t.push(format!(
        "manifest 1: {:?}",
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
    ));
    ok(&mut c, &["SET", "between", "1"]);
    let r = c.cmd(&["BGREWRITEAOF"]);
    t.push(format!("reply 2: {}", String::from_utf8_lossy(&r)));
    wait_rewrites(&mut c, 2);
    t.push(format!("after 2: {} {:?}", aof_info(&mut c), aof_files(&dir)));
    t.push(format!(
        "manifest 2: {:?}",
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
    ));
    t.push(format!("check-aof 2: {}", check_aof(&dir).contains("All AOF files and manifest are valid")));
    let r = c.cmd(&["CONFIG", "SET", "appendonly", "yes"]);
    t.push(format!("config set: {}", String::from_utf8_lossy(&r)));
    wait_rewrites(&mut c, 3);
    t.push(format!("after yes: {} {:?}", aof_info(&mut c), aof_files(&dir)));
    t.push(format!(
        "manifest yes: {:?}",
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
    ));
    ok(&mut c, &["SELECT", "3"]);
    ok(&mut c, &["RPUSH", "after-yes", "x", "y"]);
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["SET", "after-yes", "v"]);
    let want = snapshot(&mut c, &[0, 3]);
    drop(c);
    s.stop();
    t.push(format!("check-aof yes: {}", check_aof(&dir).contains("All AOF files and manifest are valid")));

    // A restart with appendonly yes loads the base and the incr file.
    let mut again = start(&["--appendonly", "yes", "--dir", &d]);
    let got = snapshot(&mut again.client(), &[0, 3]);
    let same = got.len() == want.len()
        && want.iter().all(|(k, (d, ttl))| {
            got.get(k)
                .is_some_and(|(gd, gttl)| gd == d && (if *ttl < 0 { gttl == ttl } else { (gttl - ttl).abs() < 20_000 && *gttl > 0 }))
        });
    t.push(format!("restart yes: same data {same} {:?}", aof_files(&dir)));
    again.stop();

    // A restart with appendonly no (nothing loaded), one BGREWRITEAOF: the
    // manifest's sequence numbers go on, the incr file becomes history.
    let mut off = start(&["--appendonly", "no", "--dir", &d]);
    let mut c = off.client();
    t.push(format!("restart no: dbsize {:?}", c.cmd_value(&["DBSIZE"])));
    ok(&mut c, &["SET", "third", "3"]);
    let r = c.cmd(&["BGREWRITEAOF"]);
    t.push(format!("reply 3: {}", String::from_utf8_lossy(&r)));
    wait_rewrites(&mut c, 1);
    t.push(format!("after 3: {} {:?}", aof_info(&mut c), aof_files(&dir)));
    t.push(format!(
        "manifest 3: {:?}",
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
    ));
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), b"+OK\r\n");
    wait_rewrites(&mut c, 2);
    t.push(format!("after yes 2: {} {:?}", aof_info(&mut c), aof_files(&dir)));
    t.push(format!(
        "manifest yes 2: {:?}",
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
    ));
    drop(c);
    off.stop();
    (t, want, s)
}

#[test]
fn bgrewriteaof_with_appendonly_no_writes_a_base_and_manifest_as_redis() {
    let (want_t, want_data, redis) = aof_off_transcript(&|args| RedisServer::start(args).0);
    let (got_t, got_data, tessera) = aof_off_transcript(&|args| TesseraServer::start(2, args).0);
    for (i, w) in want_t.iter().enumerate() {
        assert_eq!(got_t.get(i), Some(w), "step {i}\nredis:   {want_t:#?}\ntessera: {got_t:#?}");
    }
    assert_eq!(got_t.len(), want_t.len());
    // SPOP picks at random: the same keys (each server's own contents are
    // compared with what it reloads, in the transcript's "same data").
    assert_eq!(got_data.keys().collect::<Vec<_>>(), want_data.keys().collect::<Vec<_>>());
    // Tessera's directory (after CONFIG SET appendonly yes and the last
    // rewrite) is accepted by redis-check-aof and loaded by redis-server.
    check_aof(&tessera.dir);
    let rdir = temp_dir("aof-off-into-redis");
    copy_dir(&tessera.dir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let r = RedisServer::start(&["--dir", &rdir.display().to_string(), "--appendonly", "yes"]);
    let mut rc = r.client();
    let mut t = TesseraServer::start(2, &["--dir", &tessera.dir.display().to_string(), "--appendonly", "yes"]);
    let mut tc = t.client();
    assert_same(
        &snapshot(&mut rc, &[0, 3]),
        &snapshot(&mut tc, &[0, 3]),
        "redis-server and Tessera loading Tessera's directory",
    );
    assert_eq!(rc.cmd(&["GET", "third"]), b"$1\r\n3\r\n");
    drop(tc);
    t.stop();
    drop(redis);
}

/// Sleeps until 100 ms into the next wall-clock second (so that what
/// follows falls within one second on both servers).
fn next_second() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let into = now.subsec_millis() as u64;
    std::thread::sleep(Duration::from_millis(1000 - into + 100));
}

/// `#TS:<digits>` annotations with the digits replaced, and the seconds in order.
fn normalize_ts(b: &[u8]) -> (String, Vec<u64>) {
    let text = String::from_utf8_lossy(b).into_owned();
    let mut out = String::new();
    let mut secs = Vec::new();
    for l in text.split_inclusive('\n') {
        if let Some(r) = l.strip_prefix("#TS:") {
            secs.push(r.trim_end().parse::<u64>().unwrap());
            out.push_str("#TS:<secs>\r\n");
        } else {
            out.push_str(l);
        }
    }
    (out, secs)
}

/// CONFIG SET aof-timestamp-enabled yes, then writes in three seconds: the
/// incr file as the server wrote it.
fn timestamped_incr(s: &ServerProcess) -> Vec<u8> {
    let mut c = s.client();
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "aof-timestamp-enabled"]),
        b"*2\r\n$21\r\naof-timestamp-enabled\r\n$2\r\nno\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "aof-timestamp-enabled", "yes"]), b"+OK\r\n");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "aof-timestamp-enabled"]),
        b"*2\r\n$21\r\naof-timestamp-enabled\r\n$3\r\nyes\r\n"
    );
    next_second();
    ok(&mut c, &["SET", "a", "1"]);
    ok(&mut c, &["SELECT", "2"]);
    ok(&mut c, &["RPUSH", "l", "x"]);
    next_second();
    ok(&mut c, &["SET", "b", "2"]);
    ok(&mut c, &["MSET", "{a}m", "1", "{b}m", "2"]);
    next_second();
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["SET", "c", "3"]);
    std::fs::read(s.dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap()
}

#[test]
fn aof_timestamp_annotations_as_redis_writes_and_reads_them() {
    let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut tessera = TesseraServer::start(2, &["--appendonly", "yes", "--appendfsync", "always"]);
    let want = timestamped_incr(&redis);
    let got = timestamped_incr(&tessera);
    let (want_n, want_secs) = normalize_ts(&want);
    let (got_n, got_secs) = normalize_ts(&got);
    assert_eq!(got_n, want_n, "the incr file, annotations normalized");
    assert_eq!(got_secs.len(), 3);
    assert!(got_secs.windows(2).all(|w| w[1] == w[0] + 1), "{got_secs:?}");
    assert_eq!(want_secs.len(), 3);
    redis.stop();
    tessera.stop();
    let report = check_aof(&tessera.dir);
    assert!(report.contains("All AOF files and manifest are valid"), "{report}");

    let data = |c: &mut Client| {
        let mut v = Vec::new();
        for (db, k) in [("0", "a"), ("2", "l"), ("2", "b"), ("2", "{a}m"), ("2", "{b}m"), ("0", "c")] {
            ok(c, &["SELECT", db]);
            if c.cmd(&["EXISTS", k]) == b":1\r\n" {
                v.push(format!("{db}/{k}={}", describe(c, k)));
            }
        }
        v
    };
    let full = vec![
        "0/a=string:1".to_string(),
        "2/l=list:Array([Bulk([120])])".into(),
        "2/b=string:2".into(),
        "2/{a}m=string:1".into(),
        "2/{b}m=string:2".into(),
        "0/c=string:3".into(),
    ];
    // redis-server loads Tessera's annotated AOF; Tessera loads Redis's and its own.
    for (from, what) in [(&tessera.dir, "redis-server loading Tessera's"), (&redis.dir, "")] {
        let d = temp_dir("aof-ts");
        copy_dir(&from.join("appendonlydir"), &d.join("appendonlydir"));
        if what.is_empty() {
            let t = TesseraServer::start(2, &["--dir", &d.display().to_string(), "--appendonly", "yes"]);
            assert_eq!(data(&mut t.client()), full, "Tessera loading Redis's annotated AOF");
        } else {
            let r = RedisServer::start(&["--dir", &d.display().to_string(), "--appendonly", "yes"]);
            assert_eq!(data(&mut r.client()), full, "{what}");
        }
    }
    let d = temp_dir("aof-ts-self");
    copy_dir(&tessera.dir.join("appendonlydir"), &d.join("appendonlydir"));
    {
        let t = TesseraServer::start(2, &["--dir", &d.display().to_string(), "--appendonly", "yes", "--aof-timestamp-enabled", "yes"]);
        assert_eq!(data(&mut t.client()), full, "Tessera reloading its annotated AOF");
    }

    // redis-check-aof --truncate-to-timestamp on Tessera's file: what
    // follows the first second's records goes; both servers load the rest.
    let d = temp_dir("aof-ts-trunc");
    copy_dir(&tessera.dir.join("appendonlydir"), &d.join("appendonlydir"));
    let out = run_to_exit(
        "redis-check-aof",
        &[
            "--truncate-to-timestamp".to_string(),
            got_secs[0].to_string(),
            "appendonlydir/appendonly.aof.manifest".to_string(),
        ],
        &d,
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Successfully truncated AOF"), "{}", out.stdout);
    let cut = std::fs::read(d.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    let at = got.windows(4).enumerate().filter(|(_, w)| w == b"#TS:").nth(1).unwrap().0;
    assert_eq!(cut, got[..at].to_vec());
    let first = &full[..2];
    let d2 = temp_dir("aof-ts-trunc-redis");
    copy_dir(&d.join("appendonlydir"), &d2.join("appendonlydir"));
    let t = TesseraServer::start(2, &["--dir", &d.display().to_string(), "--appendonly", "yes"]);
    let r = RedisServer::start(&["--dir", &d2.display().to_string(), "--appendonly", "yes"]);
    for (c, who) in [(&mut t.client(), "Tessera"), (&mut r.client(), "redis-server")] {
        assert_eq!(data(c), first, "{who} after the truncation");
    }
}

#[test]
fn aof_timestamp_in_an_aof_base_as_redis_writes_it() {
    // aof-use-rdb-preamble no: the fresh base is an AOF holding the rewrite's annotation.
    let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--aof-timestamp-enabled", "yes"];
    let redis = RedisServer::start(&args);
    let tessera = TesseraServer::start(2, &args);
    let base = |s: &ServerProcess| std::fs::read(s.dir.join("appendonlydir/appendonly.aof.1.base.aof")).unwrap();
    let (rb, rs) = normalize_ts(&base(&redis));
    let (tb, ts) = normalize_ts(&base(&tessera));
    assert_eq!(tb, rb);
    assert_eq!((ts.len(), rs.len()), (1, 1));
    assert!(!tessera.log().contains("accepted and ignored"), "{}", tessera.log());
    let mut c = tessera.client();
    ok(&mut c, &["SET", "k", "v"]);
    drop(c);
    let dir = tessera.dir.clone();
    let mut tessera = tessera;
    tessera.stop();
    check_aof(&dir);
    let d = temp_dir("aof-ts-base");
    copy_dir(&dir.join("appendonlydir"), &d.join("appendonlydir"));
    let r = RedisServer::start(&["--dir", &d.display().to_string(), "--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    assert_eq!(r.client().cmd(&["GET", "k"]), b"$1\r\nv\r\n");
}

#[test]
fn rewrite_without_rdb_preamble_writes_commands_redis_check_aof_and_redis_server_accept() {
    // aof-use-rdb-preamble no: the rewrite's base is commands (`.base.aof`,
    // rewriteAppendOnlyFileRio), opened by its `#TS:` annotation.
    let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--aof-timestamp-enabled", "yes"];
    let mut t = TesseraServer::start(2, &args);
    let mut c = t.client();
    populate(&mut c);
    // Collections past AOF_REWRITE_ITEMS_PER_CMD (64) and past the compact encodings.
    let many: Vec<String> = (0..150).map(|i| format!("e{i}")).collect();
    let mut rpush = vec!["RPUSH", "{a}big:l"];
    rpush.extend(many.iter().map(|s| s.as_str()));
    ok(&mut c, &rpush);
    let mut sadd = vec!["SADD", "{b}big:s"];
    sadd.extend(many.iter().map(|s| s.as_str()));
    ok(&mut c, &sadd);
    let ints: Vec<String> = (0..100).map(|i| (i * 7).to_string()).collect();
    let mut iadd = vec!["SADD", "{c}big:i"];
    iadd.extend(ints.iter().map(|s| s.as_str()));
    ok(&mut c, &iadd);
    let pairs: Vec<String> = (0..150).flat_map(|i| [format!("{}.25", i % 40), format!("m{i}")]).collect();
    let mut zadd = vec!["ZADD", "{a}big:z"];
    zadd.extend(pairs.iter().map(|s| s.as_str()));
    ok(&mut c, &zadd);
    let mut hset = vec!["HSET", "{b}big:h"];
    hset.extend(pairs.iter().map(|s| s.as_str()));
    ok(&mut c, &hset);
    ok(&mut c, &["PEXPIRE", "{b}big:h", "5000000"]);
    // Streams: entries, a deleted one, groups with pending entries and an idle consumer; an empty stream.
    for i in 0..5 {
        ok(&mut c, &["XADD", "{a}s", &format!("{}-1", i + 1), "f", &i.to_string(), "n", "12"]);
    }
    ok(&mut c, &["XDEL", "{a}s", "2-1"]);
    ok(&mut c, &["XGROUP", "CREATE", "{a}s", "g", "0"]);
    ok(&mut c, &["XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "{a}s", ">"]);
    ok(&mut c, &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "{a}s", "0"]);
    ok(&mut c, &["XGROUP", "CREATECONSUMER", "{a}s", "g", "idle"]);
    ok(&mut c, &["XGROUP", "CREATE", "{a}s", "later", "$"]);
    ok(&mut c, &["XADD", "{b}empty", "7-7", "x", "y"]);
    ok(&mut c, &["XDEL", "{b}empty", "7-7"]);
    let lib = "#!lua name=rwlib\nredis.register_function('rwf', function(keys, args) return 'rw' end)";
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", lib]), b"$5\r\nrwlib\r\n");
    let streams = |c: &mut Client| (stream_state(c, "{a}s", &["g", "later"], false), stream_state(c, "{b}empty", &[], false));
    let want_streams = streams(&mut c);
    assert_eq!(c.cmd(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
    wait_rewrite(&mut c);
    ok(&mut c, &["SET", "after", "1"]);
    let want = snapshot(&mut c, &[0, 3]);
    drop(c);
    let dir = t.dir.clone();
    t.stop();
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    let base = std::fs::read(dir.join("appendonlydir/appendonly.aof.2.base.aof")).unwrap();
    let text = String::from_utf8_lossy(&base);
    assert!(text.starts_with("#TS:"), "{}", &text[..40.min(text.len())]);
    for cmd in [
        "FUNCTION",
        "SELECT",
        "RPUSH",
        "SADD",
        "ZADD",
        "HMSET",
        "PEXPIREAT",
        "XADD",
        "XSETID",
        "XGROUP",
        "XCLAIM",
        "CREATECONSUMER",
        "MAXLEN",
    ] {
        assert!(text.contains(&format!("\r\n{cmd}\r\n")), "{cmd} missing from the base");
    }
    assert!(!text.contains("REDIS0"), "no RDB preamble");
    let report = check_aof(&dir);
    assert!(report.contains("All AOF files and manifest are valid"), "{report}");

    let rdir = temp_dir("aof-cmd-base-into-redis");
    copy_dir(&dir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let redis = RedisServer::start(&["--dir", &rdir.display().to_string(), "--appendonly", "yes"]);
    let mut r = redis.client();
    assert_same(&snapshot(&mut r, &[0, 3]), &want, "redis-server loading Tessera's command base");
    assert_eq!(streams(&mut r), want_streams, "redis-server: the streams and their groups");
    assert_eq!(r.cmd(&["FCALL", "rwf", "0"]), b"$2\r\nrw\r\n");

    let tdir = temp_dir("aof-cmd-base-again");
    copy_dir(&dir.join("appendonlydir"), &tdir.join("appendonlydir"));
    let again = TesseraServer::start(4, &["--dir", &tdir.display().to_string(), "--appendonly", "yes"]);
    let mut a = again.client();
    assert_same(&snapshot(&mut a, &[0, 3]), &want, "Tessera reloading its command base");
    assert_eq!(streams(&mut a), want_streams, "Tessera: the streams and their groups");
    assert_eq!(a.cmd(&["FCALL", "rwf", "0"]), b"$2\r\nrw\r\n");
}
