//! MULTI / EXEC / DISCARD / WATCH / UNWATCH.
//!
//! * Differential against a real redis-server 7.0.15 (RESP2 then RESP3,
//!   Tessera at 2 shards, keys spread over both): queuing, EXECABORT,
//!   runtime errors inside EXEC, cross-shard and whole-keyspace commands in a
//!   transaction, blocking commands that cannot block, WATCH touched by other
//!   connections, by FLUSHALL, by expiry, pipelined transactions.
//! * Concurrency at 2 and 4 shards: no client sees a transaction half done,
//!   a WATCH retry loop loses no increment, a transfer keeps the sum.

mod common;

use common::diff::*;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn script_queue_and_errors(d: &mut Diff) {
    d.ss(&[
        "MULTI",
        "SET a 1",
        "INCR a",
        "SET b 2",
        "MGET a b c",
        "MSET c 3 d 4",
        "RENAME c k1",
        "EXISTS a b c d k1",
        "LPUSH l x y",
        "DEL a b",
        "EXEC",
        "MULTI",
        "EXEC",
        "MULTI",
        "SET a 1",
        "NOSUCHCOMMAND x",
        "GET a",
        "EXEC",
        "GET a",
        "MULTI",
        "SET a",
        "EXEC",
        "MULTI",
        "MSET a 1 b",
        "SET a x",
        "INCR a",
        "LPUSH a v",
        "GET a",
        "EXEC",
        "EXEC",
        "DISCARD",
        "MULTI",
        "MULTI",
        "WATCH a",
        "SET a y",
        "EXEC",
        "MULTI",
        "SET a 1",
        "EXEC extra",
        "EXEC",
        "GET a",
        "MULTI",
        "SET a 2",
        "DISCARD",
        "GET a",
        "MULTI",
        "SHUTDOWN",
        "EXEC",
        "MULTI",
        "SET a 3",
        "RESET",
        "EXEC",
        "GET a",
    ]);
}

fn script_connection_and_keyspace_commands(d: &mut Diff) {
    d.ss(&[
        "MULTI",
        "PING",
        "ECHO hi",
        "SET a 0",
        "SELECT 1",
        "SET a 9",
        "SET b 8",
        "DBSIZE",
        "GET a",
        "SELECT 0",
        "GET a",
        "DBSIZE",
        "EXEC",
        "GET a",
        "SELECT 1",
        "GET a",
        "FLUSHDB",
        "SELECT 0",
        "MULTI",
        "CLIENT SETNAME tx",
        "CLIENT GETNAME",
        "KEYS *",
        "FLUSHDB",
        "SET c 1",
        "SET d 2",
        "MSET k0 a k1 b k2 c",
        "KEYS k1",
        "DBSIZE",
        "EXEC",
        "MULTI",
        "FLUSHALL",
        "DBSIZE",
        "EXEC",
        "RPUSH ids 3 1 2",
        "MSET w_1 30 w_2 10 w_3 20 n_1 x n_2 y n_3 z",
        "MULTI",
        "SORT ids BY w_* GET n_*",
        "SORT ids BY w_* GET # STORE sorted",
        "LRANGE sorted 0 -1",
        "EXEC",
        "FLUSHALL",
    ]);
}

fn script_blocking_inside_multi(d: &mut Diff) {
    d.ss(&[
        "MULTI",
        "BLPOP a b 0",
        "BRPOP c 1",
        "BRPOPLPUSH a b 0",
        "BLMOVE c d LEFT RIGHT 0",
        "BZPOPMIN a b 0",
        "BLMPOP 0 2 a b LEFT",
        "EXEC",
        "MULTI",
        "RPUSH b 1 2 3",
        "RPUSH d 4",
        "BLPOP a b 0",
        "BLMOVE b c LEFT RIGHT 0",
        "BRPOPLPUSH d a 0",
        "BLMPOP 0 2 a b RIGHT COUNT 5",
        "LRANGE a 0 -1",
        "LRANGE c 0 -1",
        "BLPOP a b -1",
        "EXEC",
        "FLUSHALL",
    ]);
}

fn script_watch(d: &mut Diff) {
    let o = d.open();
    // A write by another connection aborts EXEC with a null array.
    d.s("SET w 1");
    d.s("WATCH w");
    d.c_on(o, &["SET", "w", "2"]);
    d.ss(&["MULTI", "GET w", "EXEC"]);
    // EXEC ended the watch.
    d.c_on(o, &["SET", "w", "3"]);
    d.ss(&["MULTI", "GET w", "EXEC"]);
    // Watched keys on every shard; a write to any one of them aborts.
    d.s("WATCH a b c d");
    d.c_on(o, &["SET", "d", "1"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("WATCH a b c d");
    d.ss(&["MULTI", "SET a 1", "SET b 1", "EXEC"]);
    // One key per shard: whichever shard the connection is on, one of them is
    // elsewhere (the transaction then travels there whole).
    for k in ["a", "b", "c", "d"] {
        d.c(&["WATCH", k]);
        d.c_on(o, &["SET", k, "x"]);
        d.ss(&["MULTI"]);
        d.c(&["INCR", k]);
        d.ss(&["EXEC"]);
        d.c(&["WATCH", k]);
        d.ss(&["MULTI"]);
        d.c(&["SET", k, "5"]);
        d.c(&["INCR", k]);
        d.c(&["GET", k]);
        d.ss(&["EXEC"]);
    }
    // UNWATCH forgets.
    d.s("WATCH a b");
    d.s("UNWATCH");
    d.c_on(o, &["SET", "a", "2"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    // Deleting a key that does not exist changes nothing; creating it does.
    d.s("WATCH nokey");
    d.c_on(o, &["DEL", "nokey"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("WATCH nokey");
    d.c_on(o, &["SET", "nokey", "1"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    // The transaction's own writes do not abort it.
    d.s("WATCH a");
    d.ss(&["MULTI", "SET a 5", "INCR a", "EXEC"]);
    // FLUSHALL touches the watched keys that existed, not the others.
    d.s("WATCH a");
    d.c_on(o, &["FLUSHALL"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("WATCH gone");
    d.c_on(o, &["FLUSHALL"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    // A watch is on (db, key).
    d.s("SELECT 1");
    d.s("WATCH a");
    d.c_on(o, &["SET", "a", "1"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("WATCH a");
    d.c_on(o, &["SELECT", "1"]);
    d.c_on(o, &["SET", "a", "2"]);
    d.c_on(o, &["SELECT", "0"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("SELECT 0");
    // A failed DISCARD keeps the watches; a real one drops them.
    d.s("WATCH a");
    d.s("DISCARD");
    d.c_on(o, &["SET", "a", "3"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("WATCH a");
    d.ss(&["MULTI", "DISCARD"]);
    d.c_on(o, &["SET", "a", "4"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    // Once dirty, more WATCHes change nothing; a queuing error still wins.
    d.s("WATCH a");
    d.c_on(o, &["SET", "a", "5"]);
    d.s("WATCH b");
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("WATCH a");
    d.c_on(o, &["SET", "a", "6"]);
    d.ss(&["MULTI", "NOSUCH", "EXEC"]);
    // RESET unwatches.
    d.s("WATCH a");
    d.s("RESET");
    d.c_on(o, &["SET", "a", "7"]);
    d.ss(&["MULTI", "PING", "EXEC"]);
    // Expiry: a key that expires after WATCH aborts; one already expired
    // when watched does not (its deletion is no change), unless recreated.
    d.s("SET e 1 PX 150");
    d.s("WATCH e");
    std::thread::sleep(Duration::from_millis(250));
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("SET e2 1 PX 20");
    std::thread::sleep(Duration::from_millis(60));
    d.s("WATCH e2");
    d.ss(&["MULTI", "PING", "EXEC"]);
    d.s("SET e3 1 PX 20");
    std::thread::sleep(Duration::from_millis(60));
    d.s("WATCH e3");
    d.c_on(o, &["SET", "e3", "back"]);
    d.ss(&["MULTI", "GET e3", "EXEC"]);
    d.s("FLUSHALL");
    d.close(o);
}

fn script_pipelined(d: &mut Diff) {
    let cmds = |lines: &[&str]| -> Vec<Vec<String>> { lines.iter().map(|l| split_words(l)).collect() };
    d.pipeline_on(
        0,
        &cmds(&[
            "SET a 1",
            "MULTI",
            "INCR a",
            "SET b x",
            "MGET a b c d",
            "EXEC",
            "GET a",
            "MULTI",
            "INCR b",
            "NOSUCH",
            "EXEC",
            "MULTI",
            "DEL a b c d",
            "EXEC",
            "WATCH k0",
            "SET k0 v",
            "MULTI",
            "GET k0",
            "EXEC",
        ]),
    );
    d.s("FLUSHALL");
}

#[test]
fn multi_exec_queues_and_reports_errors_like_redis() {
    run_scripted("tx_errors", script_queue_and_errors);
}

#[test]
fn multi_exec_runs_connection_and_whole_keyspace_commands_like_redis() {
    run_scripted("tx_conn_keyspace", script_connection_and_keyspace_commands);
}

#[test]
fn blocking_commands_inside_exec_do_not_block_like_redis() {
    run_scripted("tx_blocking", script_blocking_inside_multi);
}

#[test]
fn watch_aborts_exec_like_redis_across_shards() {
    run_scripted("tx_watch", script_watch);
}

#[test]
fn pipelined_transactions_match_redis() {
    run_scripted("tx_pipelined", script_pipelined);
}

// ---------------------------------------------------------------- concurrency

/// Keys spread over every shard.
fn spread(shards: usize, n: usize, prefix: &str) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let mut seen = vec![false; shards];
    for k in &keys {
        seen[local_shard_of(k.as_bytes(), shards)] = true;
    }
    assert!(seen.iter().all(|s| *s), "{keys:?} do not span {shards} shards");
    keys
}

/// Writers set every key to one generation inside MULTI/EXEC (one SET per key);
/// readers read them all inside MULTI/EXEC and with MGET: one generation each time.
fn exec_is_never_seen_half_done(shards: usize) {
    let srv = TesseraServer::start(shards, &[]);
    let port = srv.port;
    let keys = Arc::new(spread(shards, 8, "t"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (keys, stop) = (keys.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut g = 0u64;
            while !stop.load(Ordering::Relaxed) {
                g += 1;
                let v = format!("{w}:{g}");
                c.send_strs(&["MULTI"]);
                for k in keys.iter() {
                    c.send_strs(&["SET", k, &v]);
                }
                c.send_strs(&["EXEC"]);
                for _ in 0..keys.len() + 1 {
                    c.read_reply_raw();
                }
                let r = c.read_value();
                assert_eq!(r.as_array().map(|a| a.len()), Some(keys.len()), "EXEC reply {r:?}");
            }
            g
        }));
    }
    let mut checked = 0;
    let mut c = Client::connect(port);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        // Inside a transaction.
        c.send_strs(&["MULTI"]);
        for k in keys.iter() {
            c.send_strs(&["GET", k]);
        }
        c.send_strs(&["EXEC"]);
        for _ in 0..keys.len() + 1 {
            c.read_reply_raw();
        }
        let v = c.read_value();
        let vals: Vec<Option<String>> = v.as_array().expect("EXEC array").iter().map(|x| x.as_str()).collect();
        assert!(vals.iter().all(|x| *x == vals[0]), "EXEC of GETs saw a torn transaction: {vals:?}");
        // With one cross-shard MGET.
        let mut mget = vec!["MGET"];
        mget.extend(keys.iter().map(|k| k.as_str()));
        let v = c.cmd_value(&mget);
        let vals: Vec<Option<String>> = v.as_array().expect("MGET array").iter().map(|x| x.as_str()).collect();
        assert!(vals.iter().all(|x| *x == vals[0]), "MGET saw a torn transaction: {vals:?}");
        checked += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let gens: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    eprintln!("{shards} shards: {checked} checked reads, writer transactions {gens:?}");
    assert!(checked > 20 && gens.iter().all(|&g| g > 20), "too little concurrency to mean anything");
}

#[test]
fn exec_is_never_seen_half_done_at_2_shards() {
    exec_is_never_seen_half_done(2);
}

#[test]
fn exec_is_never_seen_half_done_at_4_shards() {
    exec_is_never_seen_half_done(4);
}

/// The optimistic-locking loop every client library documents: WATCH, read,
/// MULTI, write, EXEC, retry on a null reply. Two counters on different
/// shards, four clients: no increment may be lost or doubled.
#[test]
fn watch_retry_loops_lose_no_increment_at_4_shards() {
    let shards = 4;
    let srv = TesseraServer::start(shards, &[]);
    let port = srv.port;
    let (c1, c2) = ("cnt:a", "cnt:b");
    assert_ne!(local_shard_of(c1.as_bytes(), shards), local_shard_of(c2.as_bytes(), shards));
    let per = 150;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut retries = 0;
                for _ in 0..per {
                    loop {
                        assert_eq!(c.cmd(&["WATCH", c1, c2]), b"+OK\r\n");
                        let v = c.cmd_value(&["MGET", c1, c2]);
                        let a = v.as_array().unwrap();
                        let n1: i64 = a[0].as_str().map(|s| s.parse().unwrap()).unwrap_or(0);
                        let n2: i64 = a[1].as_str().map(|s| s.parse().unwrap()).unwrap_or(0);
                        assert_eq!(n1, n2, "the counters must move together");
                        c.send_strs(&["MULTI"]);
                        c.send_strs(&["SET", c1, &(n1 + 1).to_string()]);
                        c.send_strs(&["SET", c2, &(n2 + 1).to_string()]);
                        c.send_strs(&["EXEC"]);
                        for _ in 0..3 {
                            c.read_reply_raw();
                        }
                        let r = c.read_value();
                        if r.is_null() {
                            retries += 1;
                            continue;
                        }
                        assert_eq!(r.as_array().map(|a| a.len()), Some(2));
                        break;
                    }
                }
                retries
            })
        })
        .collect();
    let retries: Vec<i32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut c = srv.client();
    let v = c.cmd_value(&["MGET", c1, c2]);
    let a = v.as_array().unwrap();
    eprintln!("retries per client: {retries:?}");
    assert_eq!(a[0].as_str().as_deref(), Some("600"));
    assert_eq!(a[1].as_str().as_deref(), Some("600"));
}

/// Money moves between accounts on different shards with DECRBY + INCRBY in
/// one EXEC; readers sum every account in one EXEC: always the same total.
#[test]
fn transfers_in_exec_keep_the_total_at_2_shards() {
    let shards = 2;
    let srv = TesseraServer::start(shards, &[]);
    let port = srv.port;
    let accts = Arc::new(spread(shards, 6, "acct"));
    let mut c = srv.client();
    for a in accts.iter() {
        c.cmd(&["SET", a, "1000"]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..3)
        .map(|w| {
            let (accts, stop) = (accts.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut i = w;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (from, to) = (&accts[i % accts.len()], &accts[(i * 7 + 1) % accts.len()]);
                    i += 1;
                    c.send_strs(&["MULTI"]);
                    c.send_strs(&["DECRBY", from, "7"]);
                    c.send_strs(&["INCRBY", to, "7"]);
                    c.send_strs(&["EXEC"]);
                    for _ in 0..3 {
                        c.read_reply_raw();
                    }
                    assert!(c.read_value().as_array().is_some());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut reads = 0;
    while Instant::now() < deadline {
        c.send_strs(&["MULTI"]);
        for a in accts.iter() {
            c.send_strs(&["GET", a]);
        }
        c.send_strs(&["EXEC"]);
        for _ in 0..accts.len() + 1 {
            c.read_reply_raw();
        }
        let v = c.read_value();
        let sum: i64 = v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().parse::<i64>().unwrap()).sum();
        assert_eq!(sum, 6000, "a reader saw money in flight: {v:?}");
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let moved: Vec<i32> = movers.into_iter().map(|m| m.join().unwrap()).collect();
    eprintln!("{reads} reads, transfers {moved:?}");
    assert!(reads > 20 && moved.iter().all(|&m| m > 20));
}

/// A push inside EXEC serves a client blocked on the key (after EXEC), and
/// CLIENT LIST shows flag x, the queue length and flag d as Redis does.
#[test]
fn exec_wakes_blocked_clients_and_client_list_shows_multi_state() {
    let srv = TesseraServer::start(2, &[]);
    let mut blocked = srv.client();
    blocked.send_strs(&["BLPOP", "jobs", "5"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = srv.client();
    c.cmd(&["MULTI"]);
    c.cmd(&["RPUSH", "jobs", "j1"]);
    c.cmd(&["SET", "x", "1"]);
    let v = c.cmd_value(&["EXEC"]);
    assert_eq!(v.as_array().map(|a| a.len()), Some(2));
    let got = blocked.read_value();
    assert_eq!(
        got.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>()),
        Some(vec!["jobs".into(), "j1".into()])
    );

    let mut w = srv.client();
    let id = w.cmd_value(&["CLIENT", "ID"]).as_int().unwrap();
    let line = |c: &mut Client| -> String {
        let l = c.cmd_value(&["CLIENT", "LIST", "ID", &id.to_string()]).as_str().unwrap();
        l.trim_end().to_string()
    };
    let field = |l: &str, f: &str| -> String { l.split(' ').find_map(|kv| kv.strip_prefix(&format!("{f}="))).unwrap_or_default().to_string() };
    let l = line(&mut c);
    assert_eq!((field(&l, "flags"), field(&l, "multi")), ("N".into(), "-1".into()), "{l}");
    w.cmd(&["WATCH", "x"]);
    w.cmd(&["MULTI"]);
    w.cmd(&["GET", "x"]);
    w.cmd(&["GET", "y"]);
    let l = line(&mut c);
    assert_eq!((field(&l, "flags"), field(&l, "multi")), ("x".into(), "2".into()), "{l}");
    assert!(field(&l, "multi-mem").parse::<u64>().unwrap() > 0, "{l}");
    c.cmd(&["SET", "x", "2"]);
    let l = line(&mut c);
    assert_eq!(field(&l, "flags"), "xd", "{l}");
    assert!(w.cmd_value(&["EXEC"]).is_null());
    let l = line(&mut c);
    assert_eq!(
        (field(&l, "flags"), field(&l, "multi"), field(&l, "multi-mem")),
        ("N".into(), "-1".into(), "0".into()),
        "{l}"
    );
}
