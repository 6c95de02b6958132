//! RDB against real Redis 7.0.15: DUMP / RESTORE payloads both ways (and
//! byte-identical where Redis's bytes are deterministic), RESTORE's errors,
//! loading a dump.rdb written by redis-server, SAVE read back by
//! redis-check-rdb and redis-server, SHUTDOWN's final save.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The dataset: every type in every encoding Redis 7.0 has for it, small
/// and large, compressible strings, integers of every width.
fn dataset() -> Vec<Vec<String>> {
    let mut cmds: Vec<Vec<String>> = Vec::new();
    let mut add = |v: Vec<String>| cmds.push(v);
    let s = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    add(s(&["SET", "str:small", "hello"]));
    add(s(&["SET", "str:int", "12345"]));
    add(s(&["SET", "str:neg", "-7"]));
    add(s(&["SET", "str:i32", "-2147483648"]));
    add(s(&["SET", "str:bigint", "12345678901"]));
    add(s(&["SET", "str:notint", "007"]));
    add(s(&["SET", "str:empty", ""]));
    add(s(&["SET", "str:long", &"x".repeat(200)]));
    add(s(&["SET", "str:text", &"the quick brown fox jumps over the lazy dog ".repeat(40)]));
    let noise: String = (0..120u32).map(|i| (b'!' + ((i * 7919 + 13) % 90) as u8) as char).collect();
    add(s(&["SET", "str:noise", &noise]));
    add(s(&["SET", "str:raw", "ab"]));
    add(s(&["APPEND", "str:raw", "cd"]));
    add(s(&["RPUSH", "list:small", "a", "1", "b", "-2", "", "300"]));
    let mut big = s(&["RPUSH", "list:big"]);
    big.extend((0..2000).map(|i| format!("item-{i}")));
    add(big);
    let mut fat = s(&["RPUSH", "list:fat"]);
    fat.extend((0..12).map(|i| format!("{i}{}", "y".repeat(3000))));
    add(fat);
    let mut ints = s(&["RPUSH", "list:ints"]);
    ints.extend((0..700).map(|i| (i * 97 - 30000).to_string()));
    add(ints);
    add(s(&["SADD", "set:ints", "1", "2", "3", "-4"]));
    add(s(&["SADD", "set:wide", "70000", "-5", "9223372036854775807"]));
    add(s(&["SADD", "set:strs", "a", "b", "c", "10"]));
    let mut many = s(&["SADD", "set:many"]);
    many.extend((0..600).map(|i| i.to_string()));
    add(many);
    add(s(&["HSET", "hash:small", "f", "v", "n", "12", "neg", "-99999999999"]));
    add(s(&["HSET", "hash:longval", "f", &"z".repeat(100)]));
    let mut hbig = s(&["HSET", "hash:big"]);
    for i in 0..600 {
        hbig.push(format!("field:{i}"));
        hbig.push(format!("value:{}", i * 3));
    }
    add(hbig);
    add(s(&["ZADD", "zset:small", "1", "a", "2.5", "b", "-3", "c", "1e300", "d"]));
    add(s(&["ZADD", "zset:inf", "+inf", "x", "-inf", "y", "0", "z"]));
    add(s(&["ZADD", "zset:frac", "0.1", "a", "1e-5", "b", "3.14159", "c"]));
    add(s(&["ZADD", "zset:longm", "1", &"m".repeat(100), "2", "short"]));
    let mut zbig = s(&["ZADD", "zset:big"]);
    for i in 0..300 {
        zbig.push(format!("{}", (i % 23) as f64 * 0.25));
        zbig.push(format!("member:{i}"));
    }
    add(zbig);
    cmds
}

/// Keys whose Redis encoding is written in a deterministic order (no
/// hashtable iteration): their DUMP must be byte-identical.
fn deterministic(key: &str) -> bool {
    !matches!(key, "set:strs" | "set:many" | "hash:longval" | "hash:big")
}

fn run_all(c: &mut Client, cmds: &[Vec<String>]) {
    for cmd in cmds {
        let args: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
        let r = c.cmd(&args);
        assert!(!r.starts_with(b"-"), "{} -> {}", fmt_cmd(&args), escape(&r));
    }
}

fn keys_of(cmds: &[Vec<String>]) -> Vec<String> {
    let mut k: Vec<String> = cmds.iter().map(|c| c[1].clone()).collect();
    k.dedup();
    k
}

/// A key as a client sees it: type, encoding and contents (sets and
/// hashtable hashes sorted), all one string.
fn describe(c: &mut Client, key: &str) -> String {
    let t = c.cmd_value(&["TYPE", key]);
    let t = match t {
        Value::Simple(s) => s,
        v => panic!("TYPE {key}: {v:?}"),
    };
    let enc = c.cmd_value(&["OBJECT", "ENCODING", key]).as_str().unwrap_or_default();
    let body = match t.as_str() {
        "string" => escape(c.cmd_value(&["GET", key]).as_bytes().unwrap_or_default()),
        "list" => format!("{:?}", c.cmd_value(&["LRANGE", key, "0", "-1"])),
        "set" => {
            let mut v: Vec<String> = c
                .cmd_value(&["SMEMBERS", key])
                .as_array()
                .unwrap()
                .iter()
                .map(|x| escape(x.as_bytes().unwrap()))
                .collect();
            v.sort();
            v.join(",")
        }
        "hash" => {
            let flat = c.cmd_value(&["HGETALL", key]);
            let a = flat.as_array().unwrap();
            let mut v: Vec<String> = a
                .chunks(2)
                .map(|p| format!("{}={}", escape(p[0].as_bytes().unwrap()), escape(p[1].as_bytes().unwrap())))
                .collect();
            if enc != "listpack" {
                v.sort();
            }
            v.join(",")
        }
        "zset" => format!("{:?}", c.cmd_value(&["ZRANGE", key, "0", "-1", "WITHSCORES"])),
        "none" => String::new(),
        other => panic!("unexpected type {other}"),
    };
    format!("{t}/{enc}/{body}")
}

fn dump(c: &mut Client, key: &str) -> Vec<u8> {
    match c.cmd_value(&["DUMP", key]) {
        Value::Bulk(b) => b,
        v => panic!("DUMP {key}: {v:?}"),
    }
}

fn restore(c: &mut Client, key: &str, ttl: &str, payload: &[u8], extra: &[&str]) -> Vec<u8> {
    let mut args: Vec<&[u8]> = vec![b"RESTORE", key.as_bytes(), ttl.as_bytes(), payload];
    args.extend(extra.iter().map(|s| s.as_bytes()));
    c.cmd_bytes(&args)
}

#[test]
fn dump_and_restore_interoperate_with_redis() {
    let redis = RedisServer::start(&[]);
    let tessera = TesseraServer::start(2, &[]);
    let (mut r, mut t) = (redis.client(), tessera.client());
    let cmds = dataset();
    run_all(&mut r, &cmds);
    run_all(&mut t, &cmds);
    for key in keys_of(&cmds) {
        let want = describe(&mut r, &key);
        assert_eq!(describe(&mut t, &key), want, "same commands, same key: {key}");
        let from_redis = dump(&mut r, &key);
        let from_tessera = dump(&mut t, &key);
        if deterministic(&key) {
            assert_eq!(escape(&from_tessera), escape(&from_redis), "DUMP {key} differs from Redis's");
        }
        // Redis's payload restored by Redis and by Tessera, and Tessera's by Redis:
        // the same value in the encoding Redis's loader picks.
        let copy = format!("copy:{key}");
        assert_eq!(restore(&mut r, &copy, "0", &from_redis, &[]), b"+OK\r\n", "{key}");
        let want = describe(&mut r, &copy);
        assert_eq!(restore(&mut t, &copy, "0", &from_redis, &[]), b"+OK\r\n", "{key}");
        assert_eq!(describe(&mut t, &copy), want, "{key} restored by Tessera");
        let copy2 = format!("copy2:{key}");
        assert_eq!(restore(&mut r, &copy2, "0", &from_tessera, &[]), b"+OK\r\n", "{key}");
        assert_eq!(describe(&mut r, &copy2), want, "{key} restored by Redis");
    }
}

#[test]
fn restore_options_and_errors_match_redis() {
    let redis = RedisServer::start(&[]);
    let tessera = TesseraServer::start(2, &[]);
    let (mut r, mut t) = (redis.client(), tessera.client());
    for c in [&mut r, &mut t] {
        assert_eq!(c.cmd(&["SET", "src", "payload value"]), b"+OK\r\n");
        assert_eq!(c.cmd(&["SET", "busy", "x"]), b"+OK\r\n");
    }
    let good = dump(&mut r, "src");
    assert_eq!(dump(&mut t, "src"), good);
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xff;
    let mut newer = good.clone();
    newer[n - 10] = 11;
    // A checksummed payload whose body is not a value: Bad data format.
    let mut junk = vec![0u8, 0x7f, b'a'];
    junk.extend_from_slice(&10u16.to_le_bytes());
    let crc = tessera::persistence::rdb::CRC64.checksum(&junk);
    junk.extend_from_slice(&crc.to_le_bytes());
    let mut empty_list = vec![18u8, 0];
    empty_list.extend_from_slice(&10u16.to_le_bytes());
    let crc = tessera::persistence::rdb::CRC64.checksum(&empty_list);
    empty_list.extend_from_slice(&crc.to_le_bytes());
    let cases: Vec<(String, Vec<u8>, Vec<&str>)> = vec![
        ("a".into(), good.clone(), vec![]),
        ("busy".into(), good.clone(), vec![]),
        ("busy".into(), good.clone(), vec!["REPLACE"]),
        ("b".into(), good.clone(), vec!["IDLETIME", "-1"]),
        ("b".into(), good.clone(), vec!["IDLETIME", "x"]),
        ("b".into(), good.clone(), vec!["FREQ", "256"]),
        ("b".into(), good.clone(), vec!["FREQ", "-1"]),
        ("b".into(), good.clone(), vec!["IDLETIME", "5", "FREQ", "5"]),
        ("b".into(), good.clone(), vec!["FREQ", "5", "IDLETIME", "5"]),
        ("b".into(), good.clone(), vec!["IDLETIME"]),
        ("b".into(), good.clone(), vec!["NOPE"]),
        ("c".into(), good.clone(), vec!["REPLACE", "ABSTTL", "IDLETIME", "10"]),
        ("d".into(), bad_crc, vec![]),
        ("d".into(), newer, vec![]),
        ("d".into(), b"short".to_vec(), vec![]),
        ("d".into(), junk, vec![]),
        ("d".into(), empty_list, vec![]),
    ];
    for (key, payload, extra) in &cases {
        for ttl in ["0", "-1", "abc", "100000"] {
            let want = restore(&mut r, key, ttl, payload, extra);
            let got = restore(&mut t, key, ttl, payload, extra);
            assert_eq!(escape(&got), escape(&want), "RESTORE {key} {ttl} <payload> {extra:?}");
            for c in [&mut r, &mut t] {
                c.cmd(&["DEL", "a", "b", "c", "d"]);
            }
        }
    }
    // ABSTTL in the past: OK, nothing created; REPLACE then deletes the old key.
    for c in [&mut r, &mut t] {
        assert_eq!(restore(c, "old", "1000", &good, &["ABSTTL"]), b"+OK\r\n");
        assert_eq!(c.cmd(&["EXISTS", "old"]), b":0\r\n");
        assert_eq!(restore(c, "busy", "1000", &good, &["ABSTTL", "REPLACE"]), b"+OK\r\n");
        assert_eq!(c.cmd(&["EXISTS", "busy"]), b":0\r\n");
        assert_eq!(restore(c, "ttl", "100000", &good, &[]), b"+OK\r\n");
        let pttl: i64 = String::from_utf8_lossy(&c.cmd(&["PTTL", "ttl"])[1..]).trim().parse().unwrap();
        assert!((99_000..=100_000).contains(&pttl), "{pttl}");
        assert_eq!(restore(c, "idle", "0", &good, &["IDLETIME", "1000"]), b"+OK\r\n");
        let idle = c.cmd(&["OBJECT", "IDLETIME", "idle"]);
        assert!(idle == b":1000\r\n" || idle == b":1001\r\n", "{}", escape(&idle));
        assert_eq!(c.cmd(&["DUMP", "nosuchkey"]), b"$-1\r\n");
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]), b"+OK\r\n");
        assert_eq!(restore(c, "freq", "0", &good, &["FREQ", "77"]), b"+OK\r\n");
        assert_eq!(c.cmd(&["OBJECT", "FREQ", "freq"]), b":77\r\n");
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]), b"+OK\r\n");
        assert_eq!(c.cmd(&["GET", "freq"]), b"$13\r\npayload value\r\n");
    }
}
/// Every key of every non-empty database, described, with its TTL.
fn snapshot(c: &mut Client, dbs: usize) -> BTreeMap<(usize, String), (String, i64)> {
    let mut out = BTreeMap::new();
    for db in 0..dbs {
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

fn assert_same_data(got: &BTreeMap<(usize, String), (String, i64)>, want: &BTreeMap<(usize, String), (String, i64)>, what: &str) {
    let gk: Vec<_> = got.keys().collect();
    let wk: Vec<_> = want.keys().collect();
    assert_eq!(gk, wk, "{what}: the same keys");
    for (k, (d, ttl)) in want {
        let (gd, gttl) = &got[k];
        assert_eq!(gd, d, "{what}: {k:?}");
        if *ttl < 0 {
            assert_eq!(gttl, ttl, "{what}: {k:?} has no TTL");
        } else {
            assert!((gttl - ttl).abs() < 15_000 && *gttl > 0, "{what}: {k:?} TTL {gttl} vs {ttl}");
        }
    }
}

/// The dataset spread over databases 0, 3 and 9, with TTLs on some keys.
fn populate_dbs(c: &mut Client) {
    let cmds = dataset();
    for db in ["0", "3", "9"] {
        assert_eq!(c.cmd(&["SELECT", db]), b"+OK\r\n");
        run_all(c, &cmds);
        for (i, key) in keys_of(&cmds).iter().enumerate() {
            if i % 3 == 0 {
                assert_eq!(c.cmd(&["EXPIRE", key, &(1000 + i).to_string()]), b":1\r\n");
            }
        }
    }
    assert_eq!(c.cmd(&["SELECT", "0"]), b"+OK\r\n");
}

fn copy_file(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
}

#[test]
fn tessera_loads_a_dump_written_by_redis() {
    let redis = RedisServer::start(&[]);
    let mut r = redis.client();
    populate_dbs(&mut r);
    // Keys that expire between the save and the load are dropped by the loader.
    assert_eq!(r.cmd(&["SET", "soon", "gone", "PX", "300"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SELECT", "3"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SET", "soon3", "gone", "PX", "300"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SELECT", "0"]), b"+OK\r\n");
    // A function library (a FUNCTION2 record): loaded with the data.
    let lib = "#!lua name=mylib\nredis.register_function('f', function() return 1 end)";
    assert_eq!(r.cmd(&["FUNCTION", "LOAD", lib]), b"$5\r\nmylib\r\n");
    // DEBUG RELOAD: Redis saves dump.rdb and loads it back, so what it shows
    // is what its own loader builds (e.g. "embstr" for an appended string).
    assert_eq!(r.cmd(&["DEBUG", "RELOAD"]), b"+OK\r\n");
    std::thread::sleep(Duration::from_millis(400));
    let want = snapshot(&mut r, 16);
    assert!(!want.contains_key(&(0, "soon".to_string())));
    let dir = temp_dir("rdb-load");
    copy_file(&redis.dir.join("dump.rdb"), &dir.join("dump.rdb"));
    let dir_s = dir.display().to_string();
    let tessera = TesseraServer::start(2, &["--dir", &dir_s]);
    let mut t = tessera.client();
    assert_same_data(&snapshot(&mut t, 16), &want, "Tessera after loading Redis's dump.rdb");
    let log = tessera.log();
    assert!(log.contains("DB loaded from disk"), "{}", tessera.log_tail(30));
    assert!(log.contains("keys expired: 2"), "{}", tessera.log_tail(30));
    // The library came with the data, and runs on every shard.
    assert_eq!(t.cmd(&["FCALL", "f", "0"]), b":1\r\n");
    assert_eq!(t.cmd(&["FUNCTION", "LIST", "WITHCODE"]), r.cmd(&["FUNCTION", "LIST", "WITHCODE"]));
    for _ in 0..4 {
        assert_eq!(tessera.client().cmd(&["FCALL", "f", "0"]), b":1\r\n");
    }
    let info = t.cmd_value(&["INFO", "persistence"]).as_str().unwrap();
    assert_eq!(info_field(&info, "rdb_changes_since_last_save").as_deref(), Some("0"), "{info}");
    assert_eq!(info_field(&info, "rdb_last_load_keys_expired").as_deref(), Some("2"), "{info}");
    assert_eq!(t.cmd(&["DBSIZE"]), r.cmd(&["DBSIZE"]));
}

#[test]
fn a_damaged_dump_stops_start_up_with_its_offset() {
    let redis = RedisServer::start(&[]);
    let mut r = redis.client();
    run_all(&mut r, &dataset());
    assert_eq!(r.cmd(&["SAVE"]), b"+OK\r\n");
    let good = std::fs::read(redis.dir.join("dump.rdb")).unwrap();
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x55;
    assert_eq!(r.cmd(&["XADD", "stream", "*", "f", "v"]).first(), Some(&b'$'));
    assert_eq!(r.cmd(&["SAVE"]), b"+OK\r\n");
    let with_stream = std::fs::read(redis.dir.join("dump.rdb")).unwrap();
    // A stream is no damage: the file loads (tests/streams.rs checks the values).
    let sdir = temp_dir("rdb-stream");
    std::fs::write(sdir.join("dump.rdb"), &with_stream).unwrap();
    let sd = sdir.display().to_string();
    let ts = TesseraServer::start(2, &["--dir", &sd]);
    assert_eq!(ts.client().cmd(&["XLEN", "stream"]), b":1\r\n");
    drop(ts);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 20].to_vec(), "Internal error in RDB reading offset"),
        ("flipped", flipped, "Internal error in RDB reading offset"),
        ("not an RDB", b"hello world".to_vec(), "Wrong signature"),
    ];
    for (what, bytes, want) in cases {
        let dir = temp_dir("rdb-bad");
        std::fs::write(dir.join("dump.rdb"), &bytes).unwrap();
        let port = free_port().to_string();
        let args: Vec<String> = ["--port", &port, "--threads", "2", "--dir", &dir.display().to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = run_to_exit(tessera_bin(), &args, &dir, Duration::from_secs(20));
        assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{what}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains(want), "{what}: {}", out.stdout);
    }
}
#[test]
fn save_writes_a_file_redis_reads() {
    let mut tessera = TesseraServer::start(2, &[]);
    let mut t = tessera.client();
    populate_dbs(&mut t);
    let before = t.cmd_value(&["LASTSAVE"]).as_int().unwrap();
    let info = t.cmd_value(&["INFO", "persistence"]).as_str().unwrap();
    assert_ne!(info_field(&info, "rdb_changes_since_last_save").as_deref(), Some("0"));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(t.cmd(&["SAVE"]), b"+OK\r\n");
    assert!(t.cmd_value(&["LASTSAVE"]).as_int().unwrap() > before);
    let info = t.cmd_value(&["INFO", "persistence"]).as_str().unwrap();
    assert_eq!(info_field(&info, "rdb_changes_since_last_save").as_deref(), Some("0"), "{info}");
    assert_eq!(info_field(&info, "rdb_saves").as_deref(), Some("1"), "{info}");
    assert_eq!(info_field(&info, "rdb_last_bgsave_status").as_deref(), Some("ok"), "{info}");
    assert!(tessera.log().contains("DB saved on disk"), "{}", tessera.log_tail(20));
    let file = tessera.dir.join("dump.rdb");
    let check = run_to_exit("redis-check-rdb", &[file.display().to_string()], &tessera.dir, Duration::from_secs(30));
    assert_eq!(
        check.status.and_then(|s| s.code()),
        Some(0),
        "redis-check-rdb:\n{}\n{}",
        check.stdout,
        check.stderr
    );
    assert!(check.stdout.contains("RDB looks OK"), "{}", check.stdout);
    let mem = snapshot(&mut t, 16);
    // Tessera loads it back, at another shard count ...
    tessera.stop();
    let tdir = temp_dir("rdb-reload");
    copy_file(&file, &tdir.join("dump.rdb"));
    let tdir_s = tdir.display().to_string();
    let again = TesseraServer::start(3, &["--dir", &tdir_s]);
    let reloaded = snapshot(&mut again.client(), 16);
    // (a loaded string is embstr or raw by its length, whatever it was before)
    let plain = |m: &BTreeMap<(usize, String), (String, i64)>| -> BTreeMap<(usize, String), (String, i64)> {
        m.iter()
            .map(|(k, (d, t))| (k.clone(), (d.replacen("string/raw/", "string/embstr/", 1), *t)))
            .collect()
    };
    assert_same_data(&plain(&reloaded), &plain(&mem), "Tessera (3 shards) after loading its own dump.rdb");
    // ... and real Redis loads the same.
    let rdir = temp_dir("rdb-save");
    copy_file(&file, &rdir.join("dump.rdb"));
    let rdir_s = rdir.display().to_string();
    let redis = RedisServer::start(&["--dir", &rdir_s]);
    assert_same_data(&snapshot(&mut redis.client(), 16), &reloaded, "redis-server after loading Tessera's dump.rdb");
}

/// The values of every key in an RDB file (database 0), read with Tessera's
/// own decoder.
fn read_dump(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    use tessera::persistence::rdb::decode::{FileParser, Reader, Record};
    let f = std::fs::read(path).unwrap();
    let mut p = FileParser::new(&f).unwrap();
    let lim = tessera::persistence::rdb::Limits {
        hash_entries: 512,
        hash_value: 64,
        set_intset: 512,
        zset_entries: 128,
        zset_value: 64,
    };
    let mut out = BTreeMap::new();
    loop {
        match p.next_record().unwrap() {
            Record::Key(k) => {
                let v = Reader::at(&f, k.value_at).value(k.rtype, &lim).unwrap();
                out.insert(k.key.to_vec(), v.str_bytes().map(|b| b.to_vec()).unwrap_or_default());
            }
            Record::Eof(_) => return out,
            _ => {}
        }
    }
}

/// SAVE's snapshot is one instant for every shard: a writer keeps setting
/// 16 keys spread over the shards to the same value with one MSET (a
/// cross-shard transaction); every saved file holds 16 equal values.
#[test]
fn save_is_a_consistent_cut_across_shards() {
    let tessera = TesseraServer::start(4, &[]);
    let keys: Vec<String> = (0..16).map(|i| format!("cut:{i}")).collect();
    let shards: std::collections::HashSet<usize> = keys.iter().map(|k| local_shard_of(k.as_bytes(), 4)).collect();
    assert!(shards.len() >= 3, "the keys must span shards");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = tessera.port;
    let writer = {
        let (stop, keys) = (stop.clone(), keys.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 200_000 {
                let v = i.to_string();
                let mut args: Vec<&str> = vec!["MSET"];
                for k in &keys {
                    args.push(k);
                    args.push(&v);
                }
                assert_eq!(c.cmd(&args), b"+OK\r\n");
                i += 1;
            }
            i
        })
    };
    let mut c = tessera.client();
    let file = tessera.dir.join("dump.rdb");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.cmd(&["SAVE"]), b"+OK\r\n");
        let data = read_dump(&file);
        let vals: Vec<&Vec<u8>> = keys.iter().filter_map(|k| data.get(k.as_bytes())).collect();
        if vals.is_empty() {
            continue;
        }
        assert_eq!(vals.len(), keys.len(), "all or none of the keys");
        assert!(vals.iter().all(|v| *v == vals[0]), "a torn snapshot: {vals:?}");
        seen.insert(vals[0].clone());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(
        writes > 0 && seen.len() >= 2,
        "the saves saw the writer progress ({writes} writes, {} states)",
        seen.len()
    );
}

/// IDLE (LRU policies) and FREQ (LFU policies) before each key: written by
/// SAVE, applied by redis-server and by Tessera when they load the file.
#[test]
fn access_hints_survive_save_and_load() {
    for (policy, opt, value, read) in [("allkeys-lru", "IDLETIME", "5000", "IDLETIME"), ("allkeys-lfu", "FREQ", "99", "FREQ")] {
        let tessera = TesseraServer::start(2, &["--maxmemory-policy", policy]);
        let mut t = tessera.client();
        assert_eq!(t.cmd(&["SET", "src", "v"]), b"+OK\r\n");
        let p = dump(&mut t, "src");
        assert_eq!(restore(&mut t, "k", "0", &p, &[opt, value]), b"+OK\r\n");
        assert_eq!(t.cmd(&["SAVE"]), b"+OK\r\n");
        let check = |c: &mut Client, who: &str| {
            let got = c.cmd_value(&["OBJECT", read, "k"]).as_int().unwrap_or(-1);
            let want: i64 = value.parse().unwrap();
            assert!((want - 2..=want + 2).contains(&got), "{who} {policy}: OBJECT {read} {got}, want {want}");
        };
        let dir = temp_dir("rdb-hints");
        copy_file(&tessera.dir.join("dump.rdb"), &dir.join("dump.rdb"));
        let dir_s = dir.display().to_string();
        let redis = RedisServer::start(&["--dir", &dir_s, "--maxmemory-policy", policy]);
        check(&mut redis.client(), "redis-server");
        let again = TesseraServer::start(2, &["--dir", &dir_s, "--maxmemory-policy", policy]);
        check(&mut again.client(), "tessera");
    }
}

/// CONFIG SET rdbcompression takes effect for DUMP; SAVE writes `dbfilename`.
#[test]
fn compression_and_file_name_follow_config_set() {
    let redis = RedisServer::start(&[]);
    let tessera = TesseraServer::start(2, &[]);
    let text = "compress me, compress me, compress me, compress me".repeat(3);
    for c in [&mut redis.client(), &mut tessera.client()] {
        assert_eq!(c.cmd(&["SET", "t", &text]), b"+OK\r\n");
        assert_eq!(c.cmd(&["CONFIG", "SET", "rdbcompression", "no"]), b"+OK\r\n");
    }
    let plain = dump(&mut redis.client(), "t");
    assert_eq!(dump(&mut tessera.client(), "t"), plain);
    assert!(plain.windows(text.len()).any(|w| w == text.as_bytes()), "stored verbatim");
    // dbfilename (protected from CONFIG SET, as in Redis) from the command line.
    let named = TesseraServer::start(2, &["--dbfilename", "other.rdb"]);
    let mut t = named.client();
    assert_eq!(t.cmd(&["SET", "t", &text]), b"+OK\r\n");
    assert_eq!(t.cmd(&["SAVE"]), b"+OK\r\n");
    assert!(named.dir.join("other.rdb").is_file());
    assert!(!named.dir.join("dump.rdb").exists());
    let read = read_dump(&named.dir.join("other.rdb"));
    assert_eq!(read.get(&b"t"[..]).map(|v| v.as_slice()), Some(text.as_bytes()));
}

/// FUNCTION libraries travel in dump.rdb both ways (FUNCTION2 records, as
/// Redis's rdbSaveFunctions writes them): Tessera saves them, redis-server
/// and a restarted Tessera load them and their functions run.
#[test]
fn function_libraries_are_saved_and_loaded_like_redis() {
    let tessera = TesseraServer::start(2, &[]);
    let mut t = tessera.client();
    let lib = "#!lua name=keep\nredis.register_function{function_name='inc', callback=function(keys) return redis.call('INCR', keys[1]) end}\nredis.register_function{function_name='ro', callback=function() return 'ro' end, flags={'no-writes'}}";
    assert_eq!(t.cmd(&["FUNCTION", "LOAD", lib]), b"$4\r\nkeep\r\n");
    assert_eq!(t.cmd(&["FCALL", "inc", "1", "n"]), b":1\r\n");
    assert_eq!(t.cmd(&["SAVE"]), b"+OK\r\n");
    let file = tessera.dir.join("dump.rdb");
    let check = run_to_exit("redis-check-rdb", &[file.display().to_string()], &tessera.dir, Duration::from_secs(30));
    assert_eq!(
        check.status.and_then(|s| s.code()),
        Some(0),
        "redis-check-rdb:\n{}\n{}",
        check.stdout,
        check.stderr
    );
    let rdir = temp_dir("rdb-functions");
    copy_file(&file, &rdir.join("dump.rdb"));
    let rdir_s = rdir.display().to_string();
    let redis = RedisServer::start(&["--dir", &rdir_s]);
    let mut r = redis.client();
    assert_eq!(r.cmd(&["FCALL", "inc", "1", "n"]), b":2\r\n");
    assert_eq!(r.cmd(&["FCALL_RO", "ro", "0"]), b"$2\r\nro\r\n");
    // The library's code, byte for byte (the order of its functions in
    // FUNCTION LIST is Redis's dict order, not comparable).
    let code = format!("${}\r\n{lib}\r\n", lib.len()).into_bytes();
    let listed = r.cmd(&["FUNCTION", "LIST", "WITHCODE"]);
    assert!(listed.windows(code.len()).any(|w| w == code.as_slice()), "{}", String::from_utf8_lossy(&listed));
    let tdir = temp_dir("rdb-functions-t");
    copy_file(&file, &tdir.join("dump.rdb"));
    let tdir_s = tdir.display().to_string();
    let again = TesseraServer::start(2, &["--dir", &tdir_s]);
    for _ in 0..4 {
        let mut c = again.client();
        assert_eq!(c.cmd(&["FCALL_RO", "ro", "0"]), b"$2\r\nro\r\n");
    }
    assert_eq!(again.client().cmd(&["FCALL", "inc", "1", "n"]), b":2\r\n");
}
