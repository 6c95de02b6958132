//! BGSAVE without fork (persistence/snapshot.rs, keyspace/cow.rs): the file
//! is one consistent point under concurrent cross-shard writes, as loaded by
//! redis-server; a kill -9 mid-save keeps the previous dump; save points;
//! MISCONF after a failed save, byte for byte with redis-server; DEBUG RELOAD.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATIC_KEYS: usize = 4000;
const WRITERS: usize = 3;
/// Keys each writer deletes one per transaction (pre:{w}:{t}).
const PRE: usize = 6000;

fn wait_info(c: &mut Client, what: &str, mut ok: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let info = c.cmd_value(&["INFO", "persistence"]).as_str().unwrap().to_string();
        if ok(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bgsave_done(c: &mut Client) -> String {
    wait_info(c, "the background save", |i| info_field(i, "rdb_bgsave_in_progress").as_deref() == Some("0"))
}

fn pipeline(c: &mut Client, cmds: &[Vec<String>]) {
    for chunk in cmds.chunks(500) {
        let mut buf = Vec::new();
        for cmd in chunk {
            let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
            buf.extend_from_slice(&encode_command(&args));
        }
        c.send_raw(&buf);
        for _ in chunk {
            let r = c.read_reply_raw();
            assert!(!r.starts_with(b"-"), "{}", String::from_utf8_lossy(&r));
        }
    }
}

fn check_rdb(file: &Path, dir: &Path) {
    let check = run_to_exit("redis-check-rdb", &[file.display().to_string()], dir, Duration::from_secs(30));
    assert_eq!(
        check.status.and_then(|s| s.code()),
        Some(0),
        "redis-check-rdb:\n{}\n{}",
        check.stdout,
        check.stderr
    );
    assert!(check.stdout.contains("RDB looks OK"), "{}", check.stdout);
}

/// One writer's transactions: (sent, acknowledged) per transaction number.
type Times = Vec<(Instant, Instant)>;

/// Writers run `MULTI; SET a:w t; SET b:w t; INCR cnt:w; RPUSH list:w t;
/// SET new:w:t t; DEL pre:w:t; EXEC` (keys on every shard) while BGSAVE
/// runs slowly (rdb-key-save-delay). The file, loaded by redis-server, must
/// be exactly the dataset after some transaction v_w of each writer: every
/// transaction acknowledged before BGSAVE was sent is in it, none sent after
/// its reply is, created keys after the point are absent and deleted ones
/// present, in-place changes (INCR, RPUSH) show the point's value.
fn bgsave_is_one_point(shards: usize) {
    let tessera = TesseraServer::start(shards, &[]);
    let mut c = tessera.client();
    let mut load: Vec<Vec<String>> = (0..STATIC_KEYS).map(|i| vec!["SET".into(), format!("s:{i}"), format!("value-{i}")]).collect();
    for w in 0..WRITERS {
        load.extend((1..=PRE).map(|t| vec!["SET".into(), format!("pre:{w}:{t}"), "x".into()]));
    }
    pipeline(&mut c, &load);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, port) = (stop.clone(), tessera.port);
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut times: Times = Vec::new();
                for t in 1..=PRE {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let ts = t.to_string();
                    let cmds: Vec<Vec<String>> = vec![
                        vec!["MULTI".into()],
                        vec!["SET".into(), format!("a:{w}"), ts.clone()],
                        vec!["SET".into(), format!("b:{w}"), ts.clone()],
                        vec!["INCR".into(), format!("cnt:{w}")],
                        vec!["RPUSH".into(), format!("list:{w}"), ts.clone()],
                        vec!["SET".into(), format!("new:{w}:{t}"), ts.clone()],
                        vec!["DEL".into(), format!("pre:{w}:{t}")],
                        vec!["EXEC".into()],
                    ];
                    let mut buf = Vec::new();
                    for cmd in &cmds {
                        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
                        buf.extend_from_slice(&encode_command(&args));
                    }
                    let sent = Instant::now();
                    c.send_raw(&buf);
                    let mut last = Vec::new();
                    for _ in &cmds {
                        last = c.read_reply_raw();
                    }
                    assert!(last.starts_with(b"*6\r\n"), "EXEC: {}", String::from_utf8_lossy(&last));
                    times.push((sent, Instant::now()));
                }
                times
            })
        })
        .collect();
    // Let every writer get going, then save slowly while they write.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "50"]), b"+OK\r\n");
    let t0 = Instant::now();
    assert_eq!(c.cmd(&["BGSAVE"]), b"+Background saving started\r\n");
    let t1 = Instant::now();
    let during = c.cmd_value(&["INFO", "persistence"]).as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(400));
    let mid = c.cmd_value(&["INFO", "persistence"]).as_str().unwrap().to_string();
    let info = bgsave_done(&mut c);
    stop.store(true, Ordering::Relaxed);
    let times: Vec<Times> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        info_field(&info, "rdb_last_bgsave_status").as_deref(),
        Some("ok"),
        "{info}\n{}",
        tessera.log_tail(20)
    );
    assert_eq!(info_field(&during, "rdb_bgsave_in_progress").as_deref(), Some("1"), "{during}");
    let acked_during: usize = times.iter().map(|ts| ts.iter().filter(|(s, _)| *s > t1).count()).sum();
    let cow: u64 = info_field(&info, "rdb_last_cow_size").unwrap().parse().unwrap();
    if acked_during >= 30 {
        assert!(cow > 0, "writes during the walk were copied first ({acked_during} transactions): {info}");
    }
    // The fork fields describe the walk while it runs, and are zero after.
    let num = |i: &str, f: &str| info_field(i, f).unwrap().parse::<f64>().unwrap();
    if info_field(&mid, "rdb_bgsave_in_progress").as_deref() == Some("1") {
        let (done, total) = (num(&mid, "current_save_keys_processed"), num(&mid, "current_save_keys_total"));
        assert!(total > 0.0 && done <= total, "{mid}");
        assert!((num(&mid, "current_fork_perc") - done * 100.0 / total).abs() < 0.01, "{mid}");
        assert!(num(&mid, "current_cow_peak") >= num(&mid, "current_cow_size"), "{mid}");
        assert!(num(&mid, "current_cow_size") <= cow as f64, "{mid}");
    }
    for f in ["current_cow_peak", "current_cow_size", "current_fork_perc", "current_save_keys_total"] {
        assert_eq!(num(&info, f), 0.0, "{f} after the save: {info}");
    }
    assert!(tessera.log().contains("Background saving terminated with success"));

    let file = tessera.dir.join("dump.rdb");
    check_rdb(&file, &tessera.dir);
    let rdir = temp_dir("bgsave-point");
    std::fs::copy(&file, rdir.join("dump.rdb")).unwrap();
    let rdir_s = rdir.display().to_string();
    let redis = RedisServer::start(&["--dir", &rdir_s]);
    let mut r = redis.client();
    let mut want: BTreeMap<String, String> = (0..STATIC_KEYS).map(|i| (format!("s:{i}"), format!("value-{i}"))).collect();
    let mut lists = Vec::new();
    for (w, ts) in times.iter().enumerate() {
        let v: usize = String::from_utf8(r.cmd_value(&["GET", &format!("a:{w}")]).as_bytes().unwrap().to_vec())
            .unwrap()
            .parse()
            .unwrap();
        let before = ts.iter().take_while(|(_, ack)| *ack < t0).count();
        let after = ts.iter().position(|(sent, _)| *sent > t1).map_or(usize::MAX, |i| i + 1);
        assert!(
            v >= before && v < after,
            "writer {w}: the file holds transaction {v}; acknowledged before BGSAVE: {before}, first sent after its reply: {after}"
        );
        for k in ["a", "b", "cnt"] {
            want.insert(format!("{k}:{w}"), v.to_string());
        }
        for t in 1..=PRE {
            if t <= v {
                want.insert(format!("new:{w}:{t}"), t.to_string());
            } else {
                want.insert(format!("pre:{w}:{t}"), "x".into());
            }
        }
        lists.push((format!("list:{w}"), (1..=v).map(|t| t.to_string()).collect::<Vec<_>>()));
    }
    let keys: BTreeSet<String> = r
        .cmd_value(&["KEYS", "*"])
        .as_array()
        .unwrap()
        .iter()
        .map(|k| String::from_utf8(k.as_bytes().unwrap().to_vec()).unwrap())
        .collect();
    let mut want_keys: BTreeSet<String> = want.keys().cloned().collect();
    want_keys.extend(lists.iter().map(|(k, _)| k.clone()));
    let missing: Vec<_> = want_keys.difference(&keys).take(5).collect();
    let extra: Vec<_> = keys.difference(&want_keys).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "keys missing from the file: {missing:?}, keys that should not be there: {extra:?}"
    );
    let names: Vec<&String> = want.keys().collect();
    for chunk in names.chunks(1000) {
        let mut args = vec!["MGET"];
        args.extend(chunk.iter().map(|s| s.as_str()));
        let got = r.cmd_value(&args);
        for (k, v) in chunk.iter().zip(got.as_array().unwrap()) {
            assert_eq!(v.as_bytes(), Some(want[*k].as_bytes()), "{k}");
        }
    }
    for (k, items) in lists {
        let got: Vec<String> = r
            .cmd_value(&["LRANGE", &k, "0", "-1"])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| String::from_utf8(e.as_bytes().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(got, items, "{k}");
    }
}

#[test]
fn bgsave_under_concurrent_writes_is_one_point_at_2_shards() {
    bgsave_is_one_point(2);
}

#[test]
fn bgsave_under_concurrent_writes_is_one_point_at_4_shards() {
    bgsave_is_one_point(4);
}

#[test]
fn kill_9_during_bgsave_leaves_the_previous_dump_valid() {
    let mut tessera = TesseraServer::start(2, &[]);
    let mut c = tessera.client();
    let cmds: Vec<Vec<String>> = (0..3000).map(|i| vec!["SET".into(), format!("k{i}"), format!("v{i}")]).collect();
    pipeline(&mut c, &cmds);
    assert_eq!(c.cmd(&["SAVE"]), b"+OK\r\n");
    let file = tessera.dir.join("dump.rdb");
    let before = std::fs::read(&file).unwrap();
    pipeline(
        &mut c,
        &cmds.iter().map(|c| vec![c[0].clone(), c[1].clone(), "changed".into()]).collect::<Vec<_>>(),
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "1000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["BGSAVE"]), b"+Background saving started\r\n");
    let tmp = tessera.dir.join(format!("temp-bgsave-{}.rdb", tessera.pid));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tmp.exists() {
        assert!(Instant::now() < deadline, "no temp file {}", tmp.display());
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    tessera.signal(9);
    assert!(tessera.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(std::fs::read(&file).unwrap(), before, "dump.rdb is the previous SAVE's");
    check_rdb(&file, &tessera.dir);
}

#[test]
fn save_points_trigger_a_background_save() {
    let tessera = TesseraServer::start(2, &["--save", "1 3"]);
    let mut c = tessera.client();
    for k in ["a", "b", "c"] {
        assert_eq!(c.cmd(&["SET", k, "1"]), b"+OK\r\n");
    }
    let info = wait_info(&mut c, "a save point's BGSAVE", |i| {
        info_field(i, "rdb_saves").as_deref() == Some("1") && info_field(i, "rdb_bgsave_in_progress").as_deref() == Some("0")
    });
    assert_eq!(info_field(&info, "rdb_changes_since_last_save").as_deref(), Some("0"), "{info}");
    assert_eq!(info_field(&info, "rdb_last_bgsave_status").as_deref(), Some("ok"), "{info}");
    assert!(tessera.log().contains("3 changes in 1 seconds. Saving..."), "{}", tessera.log_tail(10));
    check_rdb(&tessera.dir.join("dump.rdb"), &tessera.dir);
    // CONFIG SET save "" turns them off: more changes, no more saves.
    assert_eq!(c.cmd(&["CONFIG", "SET", "save", ""]), b"+OK\r\n");
    for k in ["d", "e", "f", "g"] {
        assert_eq!(c.cmd(&["SET", k, "1"]), b"+OK\r\n");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let info = c.cmd_value(&["INFO", "persistence"]).as_str().unwrap().to_string();
    assert_eq!(info_field(&info, "rdb_saves").as_deref(), Some("1"), "{info}");
}

/// A failed BGSAVE (dump.rdb is a directory: the rename fails, even for
/// root) with save points and stop-writes-on-bgsave-error: writes and PING
/// answer MISCONF, reads work, a transaction is doomed — the same bytes as
/// redis-server; a successful BGSAVE clears it.
#[test]
fn failed_bgsave_denies_writes_like_redis() {
    let tessera = TesseraServer::start(2, &["--save", "3600 1"]);
    let redis = RedisServer::start(&["--save", "3600 1"]);
    let mut replies: Vec<Vec<Vec<u8>>> = Vec::new();
    for (s, dir) in [(&tessera.0, &tessera.dir), (&redis.0, &redis.dir)] {
        let mut c = s.client();
        assert_eq!(c.cmd(&["SET", "k", "v"]), b"+OK\r\n");
        let lib = "#!lua name=lib\nredis.register_function('w', function() return 1 end)\nredis.register_function{function_name='r', callback=function() return 2 end, flags={'no-writes'}}";
        assert_eq!(c.cmd(&["FUNCTION", "LOAD", lib]), b"$3\r\nlib\r\n");
        // A transaction queued before the failure, executed after it.
        let mut queued = s.client();
        assert_eq!(queued.cmd(&["MULTI"]), b"+OK\r\n");
        assert_eq!(queued.cmd(&["SET", "k", "queued"]), b"+QUEUED\r\n");
        let mut reads = s.client();
        assert_eq!(reads.cmd(&["MULTI"]), b"+OK\r\n");
        assert_eq!(reads.cmd(&["GET", "k"]), b"+QUEUED\r\n");
        std::fs::create_dir(dir.join("dump.rdb")).unwrap();
        std::fs::write(dir.join("dump.rdb").join("x"), b"x").unwrap();
        assert_eq!(c.cmd(&["BGSAVE"]), b"+Background saving started\r\n");
        let info = wait_info(&mut c, "the failed save", |i| {
            info_field(i, "rdb_bgsave_in_progress").as_deref() == Some("0") && info_field(i, "rdb_last_bgsave_status").as_deref() == Some("err")
        });
        assert_eq!(info_field(&info, "rdb_last_bgsave_status").as_deref(), Some("err"));
        let mut got = vec![queued.cmd(&["EXEC"]), reads.cmd(&["EXEC"])];
        for cmd in [
            &["SET", "k", "w"][..],
            &["GET", "k"],
            &["PING"],
            &["INCR", "n"],
            &["DEL", "k"],
            &["EXISTS", "k"],
            &["MULTI"],
            &["SET", "k", "x"],
            &["GET", "k"],
            &["EXEC"],
            // Scripts: a shebang script that may write is a write command; a
            // compatibility-mode one fails at its first write, not after one.
            &["EVAL", "return redis.call('GET', 'k')", "0"],
            &["EVAL", "return redis.call('SET', 'k', 's')", "0"],
            &["EVAL", "return redis.pcall('SET', 'k', 's')", "0"],
            &["EVAL", "#!lua\nreturn redis.call('GET', 'k')", "0"],
            &["EVAL", "#!lua flags=no-writes\nreturn redis.call('GET', 'k')", "0"],
            &["FCALL", "w", "0"],
            &["FCALL", "r", "0"],
            &["FCALL_RO", "r", "0"],
            &["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"],
            &["SET", "k", "y"],
            &["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"],
            &["SET", "k", "z"],
        ] {
            got.push(c.cmd(cmd));
        }
        std::fs::remove_dir_all(dir.join("dump.rdb")).unwrap();
        got.push(c.cmd(&["BGSAVE"]));
        wait_info(&mut c, "the good save", |i| {
            info_field(i, "rdb_bgsave_in_progress").as_deref() == Some("0") && info_field(i, "rdb_last_bgsave_status").as_deref() == Some("ok")
        });
        got.push(c.cmd(&["SET", "k", "after"]));
        got.push(c.cmd(&["GET", "k"]));
        replies.push(got);
    }
    assert!(
        String::from_utf8_lossy(&replies[0][2]).starts_with("-MISCONF "),
        "{:?}",
        String::from_utf8_lossy(&replies[0][2])
    );
    for (i, (t, r)) in replies[0].iter().zip(&replies[1]).enumerate() {
        assert_eq!(String::from_utf8_lossy(t), String::from_utf8_lossy(r), "reply {i}");
    }
}

#[test]
fn bgsave_and_save_errors_match_redis() {
    let tessera = TesseraServer::start(2, &[]);
    let redis = RedisServer::start(&[]);
    let mut replies: Vec<Vec<Vec<u8>>> = Vec::new();
    for s in [&tessera.0, &redis.0] {
        let mut c = s.client();
        let cmds: Vec<Vec<String>> = (0..2000).map(|i| vec!["SET".into(), format!("k{i}"), "v".into()]).collect();
        pipeline(&mut c, &cmds);
        let mut got = vec![c.cmd(&["BGSAVE", "foo"]), c.cmd(&["BGSAVE", "SCHEDULE", "x"])];
        assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "1000"]), b"+OK\r\n");
        got.push(c.cmd(&["BGSAVE"]));
        got.push(c.cmd(&["BGSAVE"]));
        got.push(c.cmd(&["BGSAVE", "SCHEDULE"]));
        got.push(c.cmd(&["SAVE"]));
        let info = c.cmd_value(&["INFO", "persistence"]).as_str().unwrap().to_string();
        got.push(info_field(&info, "rdb_bgsave_in_progress").unwrap().into_bytes());
        assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]), b"+OK\r\n");
        replies.push(got);
    }
    for (i, (t, r)) in replies[0].iter().zip(&replies[1]).enumerate() {
        assert_eq!(String::from_utf8_lossy(t), String::from_utf8_lossy(r), "reply {i}");
    }
}

#[test]
fn bgsave_inside_exec_is_scheduled_then_runs() {
    let tessera = TesseraServer::start(2, &[]);
    let mut c = tessera.client();
    assert_eq!(c.cmd(&["SET", "a", "1"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "b", "2"]), b"+QUEUED\r\n");
    assert_eq!(c.cmd(&["BGSAVE"]), b"+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), b"*2\r\n+OK\r\n+Background saving scheduled\r\n");
    let info = wait_info(&mut c, "the scheduled save", |i| {
        info_field(i, "rdb_saves").as_deref() == Some("1") && info_field(i, "rdb_bgsave_in_progress").as_deref() == Some("0")
    });
    assert_eq!(info_field(&info, "rdb_last_bgsave_status").as_deref(), Some("ok"));
    check_rdb(&tessera.dir.join("dump.rdb"), &tessera.dir);
}

#[test]
fn debug_reload_keeps_the_data_like_redis() {
    let tessera = TesseraServer::start(2, &[]);
    let redis = RedisServer::start(&[]);
    let mut replies: Vec<Vec<Vec<u8>>> = Vec::new();
    for s in [&tessera.0, &redis.0] {
        let mut c = s.client();
        let mut got = Vec::new();
        for cmd in [
            &["SET", "s", "string"][..],
            &["RPUSH", "l", "a", "b", "c"],
            &["HSET", "h", "f", "v", "g", "w"],
            &["SADD", "set", "1", "2", "3"],
            &["ZADD", "z", "1", "a", "2.5", "b"],
            &["SET", "ttl", "x", "EX", "1000"],
            &["SELECT", "5"],
            &["SET", "in5", "five"],
            &["SELECT", "0"],
            &["DEBUG", "RELOAD", "BOGUS"],
            &["DEBUG", "RELOAD"],
            &["DBSIZE"],
            &["GET", "s"],
            &["LRANGE", "l", "0", "-1"],
            &["HGET", "h", "g"],
            &["SMEMBERS", "set"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            &["TTL", "ttl"],
            &["SELECT", "5"],
            &["GET", "in5"],
            &["SELECT", "0"],
            // NOSAVE: what the file holds replaces what is in memory.
            &["SET", "later", "x"],
            &["DEL", "s"],
            &["DEBUG", "RELOAD", "NOSAVE"],
            &["EXISTS", "later"],
            &["GET", "s"],
            // NOSAVE NOFLUSH MERGE: the file's keys win, the others stay.
            &["SET", "s", "changed"],
            &["SET", "extra", "y"],
            &["DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"],
            &["GET", "s"],
            &["GET", "extra"],
            &["DBSIZE"],
        ] {
            got.push(c.cmd(cmd));
        }
        replies.push(got);
    }
    for (i, (t, r)) in replies[0].iter().zip(&replies[1]).enumerate() {
        assert_eq!(String::from_utf8_lossy(t), String::from_utf8_lossy(r), "reply {i}");
    }
}

/// A server process started without waiting for it to be ready (it is
/// loading); killed on drop.
struct Loading(std::process::Child);

impl Drop for Loading {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// While start-up loads dump.rdb (slowed by key-load-delay), connections are
/// served: commands without the `loading` flag answer -LOADING, INFO shows
/// loading:1 and the progress fields — the same bytes as redis-server.
#[test]
fn start_up_answers_loading_while_it_loads_like_redis() {
    let src = TesseraServer::start(2, &[]);
    let mut c = src.client();
    let cmds: Vec<Vec<String>> = (0..20000).map(|i| vec!["SET".into(), format!("k{i}"), "v".into()]).collect();
    pipeline(&mut c, &cmds);
    assert_eq!(c.cmd(&["SAVE"]), b"+OK\r\n");
    let file = src.dir.join("dump.rdb");
    let mut seen: Vec<Vec<Vec<u8>>> = Vec::new();
    for kind in ["tessera", "redis"] {
        let dir = temp_dir("bgsave-loading");
        std::fs::copy(&file, dir.join("dump.rdb")).unwrap();
        let port = free_port();
        let ps = port.to_string();
        let dir_s = dir.display().to_string();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let mut cmd = if kind == "tessera" {
            let mut c = std::process::Command::new(tessera_bin());
            c.args(["--port", &ps, "--threads", "2", "--key-load-delay", "100"]);
            c
        } else {
            let mut c = std::process::Command::new("redis-server");
            // (Redis serves clients every loading-process-events-interval-bytes of the file.)
            c.args([
                "--port",
                &ps,
                "--save",
                "",
                "--dir",
                &dir_s,
                "--key-load-delay",
                "100",
                "--loading-process-events-interval-bytes",
                "1024",
            ]);
            c
        };
        let _proc = Loading(cmd.current_dir(&dir).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut c = loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                break Client::from_stream(s, port);
            }
            assert!(Instant::now() < deadline, "{kind} never listened");
            std::thread::sleep(Duration::from_millis(2));
        };
        c.set_timeout(Duration::from_secs(20));
        let mut got = vec![c.cmd(&["PING"]), c.cmd(&["GET", "k1"]), c.cmd(&["SET", "x", "1"])];
        let info = c.cmd_value(&["INFO", "persistence"]).as_str().unwrap().to_string();
        assert_eq!(info_field(&info, "loading").as_deref(), Some("1"), "{kind}: {info}");
        let perc: f64 = info_field(&info, "loading_loaded_perc").unwrap().parse().unwrap();
        assert!((0.0..=100.0).contains(&perc), "{info}");
        assert!(info_field(&info, "loading_total_bytes").unwrap().parse::<u64>().unwrap() > 100_000, "{info}");
        // Loaded: everything answers, every key is there.
        while c.cmd(&["PING"]) != b"+PONG\r\n" {
            assert!(Instant::now() < deadline, "{kind} never finished loading");
            std::thread::sleep(Duration::from_millis(20));
        }
        got.push(c.cmd(&["DBSIZE"]));
        let info = c.cmd_value(&["INFO", "persistence"]).as_str().unwrap().to_string();
        assert_eq!(info_field(&info, "loading").as_deref(), Some("0"), "{kind}: {info}");
        assert_eq!(info_field(&info, "loading_loaded_perc"), None, "{kind}: {info}");
        seen.push(got);
    }
    assert_eq!(seen[0][0], b"-LOADING Redis is loading the dataset in memory\r\n");
    for (i, (t, r)) in seen[0].iter().zip(&seen[1]).enumerate() {
        assert_eq!(String::from_utf8_lossy(t), String::from_utf8_lossy(r), "reply {i}");
    }
}

/// FLUSHALL and FLUSHDB while a BGSAVE walks: the point's tables are kept
/// aside, so the file still holds every key of the point and none of the
/// keys written after the flush.
#[test]
fn flush_during_bgsave_keeps_the_point() {
    let tessera = TesseraServer::start(2, &[]);
    let mut c = tessera.client();
    let mut cmds: Vec<Vec<String>> = (0..3000).map(|i| vec!["SET".into(), format!("k{i}"), format!("v{i}")]).collect();
    cmds.push(vec!["SELECT".into(), "2".into()]);
    cmds.extend((0..500).map(|i| vec!["RPUSH".into(), format!("l{i}"), "a".into(), "b".into()]));
    cmds.push(vec!["SELECT".into(), "0".into()]);
    pipeline(&mut c, &cmds);
    assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "200"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["BGSAVE"]), b"+Background saving started\r\n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(c.cmd(&["SET", "k1", "changed"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["FLUSHALL"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "k2", "after"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "fresh", "after"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SELECT", "2"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["RPUSH", "l1", "c"]), b":1\r\n");
    assert_eq!(c.cmd(&["FLUSHDB"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SELECT", "0"]), b"+OK\r\n");
    let info = bgsave_done(&mut c);
    assert_eq!(info_field(&info, "rdb_last_bgsave_status").as_deref(), Some("ok"), "{info}");
    assert_eq!(c.cmd(&["DBSIZE"]), b":2\r\n");
    let file = tessera.dir.join("dump.rdb");
    check_rdb(&file, &tessera.dir);
    let rdir = temp_dir("bgsave-flush");
    std::fs::copy(&file, rdir.join("dump.rdb")).unwrap();
    let rdir_s = rdir.display().to_string();
    let redis = RedisServer::start(&["--dir", &rdir_s]);
    let mut r = redis.client();
    assert_eq!(r.cmd(&["DBSIZE"]), b":3000\r\n");
    assert_eq!(r.cmd(&["GET", "k1"]), b"$2\r\nv1\r\n");
    assert_eq!(r.cmd(&["GET", "k2"]), b"$2\r\nv2\r\n");
    assert_eq!(r.cmd(&["EXISTS", "fresh"]), b":0\r\n");
    assert_eq!(r.cmd(&["SELECT", "2"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":500\r\n");
    assert_eq!(r.cmd(&["LRANGE", "l1", "0", "-1"]), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
}
