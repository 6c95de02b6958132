//! Blocking commands against the real binary at 2 and 4 shards: clients
//! blocked on keys owned by other shards are woken by pushes from other
//! connections, in FIFO order, with fractional timeouts, CLIENT UNBLOCK,
//! disconnects that leave nothing behind, and no element lost or duplicated
//! under parallel producers and consumers.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::runtime::shard_of_slot;
use tessera::util::slot::key_hash_slot;

fn shard_of(key: &str, shards: usize) -> usize {
    shard_of_slot(key_hash_slot(key.as_bytes()), shards)
}

/// One key per shard, named `{tag}{i}`, in shard order.
fn key_per_shard(tag: &str, shards: usize) -> Vec<String> {
    let mut out: Vec<Option<String>> = vec![None; shards];
    let mut i = 0;
    while out.iter().any(|k| k.is_none()) {
        let k = format!("{tag}{i}");
        let s = shard_of(&k, shards);
        if out[s].is_none() {
            out[s] = Some(k);
        }
        i += 1;
    }
    out.into_iter().map(|k| k.unwrap()).collect()
}

fn blocked_clients(c: &mut Client) -> i64 {
    let info = String::from_utf8(c.cmd(&["INFO", "clients"])).unwrap();
    info_field(&info, "blocked_clients").and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// Waits until INFO reports `n` blocked clients.
fn wait_blocked(c: &mut Client, n: i64) {
    let t0 = Instant::now();
    while blocked_clients(c) != n {
        assert!(t0.elapsed() < Duration::from_secs(10), "blocked_clients never reached {n}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{}\r\n", s.len(), s)
}

fn pair(k: &str, v: &str) -> Vec<u8> {
    format!("*2\r\n{}{}", bulk(k), bulk(v)).into_bytes()
}

#[test]
fn blpop_on_keys_of_every_shard_is_woken_by_a_push_on_any_of_them() {
    for shards in [2, 4] {
        let srv = TesseraServer::start(shards, &[]);
        let keys = key_per_shard("bk", shards);
        let mut admin = srv.client();
        for (i, target) in keys.iter().enumerate() {
            let mut waiter = srv.client();
            let mut args: Vec<&str> = vec!["BLPOP"];
            args.extend(keys.iter().map(|k| k.as_str()));
            args.push("0");
            waiter.send_strs(&args);
            wait_blocked(&mut admin, 1);
            let v = format!("v{i}");
            assert_eq!(admin.cmd(&["RPUSH", target, &v]), b":1\r\n");
            assert_eq!(waiter.read_reply_raw(), pair(target, &v), "{shards} shards, key {target}");
            assert_eq!(admin.cmd(&["EXISTS", target]), b":0\r\n", "the element went to the waiter only");
            wait_blocked(&mut admin, 0);
        }
    }
}

#[test]
fn blocked_clients_are_served_in_fifo_order() {
    let srv = TesseraServer::start(2, &[]);
    let mut admin = srv.client();
    let mut waiters: Vec<Client> = Vec::new();
    for i in 0..4 {
        let mut w = srv.client();
        w.send_strs(&["BRPOP", "fifo", "0"]);
        wait_blocked(&mut admin, i + 1);
        waiters.push(w);
    }
    // One push of four elements: each waiter in arrival order gets the next one.
    assert_eq!(admin.cmd(&["LPUSH", "fifo", "a", "b", "c", "d"]), b":4\r\n");
    for (w, v) in waiters.iter_mut().zip(["a", "b", "c", "d"]) {
        assert_eq!(w.read_reply_raw(), pair("fifo", v));
    }
    assert_eq!(admin.cmd(&["EXISTS", "fifo"]), b":0\r\n");
}

#[test]
fn fractional_timeouts_expire_and_zero_blocks_until_served() {
    let srv = TesseraServer::start(2, &[]);
    let mut c = srv.client();
    let t0 = Instant::now();
    assert_eq!(c.cmd(&["BLPOP", "nothing", "0.25"]), b"*-1\r\n");
    let el = t0.elapsed();
    assert!(el >= Duration::from_millis(240) && el < Duration::from_secs(3), "timeout took {el:?}");
    assert_eq!(c.cmd(&["BZPOPMIN", "nothing", "0.1"]), b"*-1\r\n");
    assert_eq!(
        c.cmd(&["BLMOVE", "nothing", "dst", "LEFT", "RIGHT", "0.1"]),
        b"*-1\r\n",
        "a timed-out move is a null array"
    );
    // RESP3: the timeout is a null.
    c.cmd(&["HELLO", "3"]);
    assert_eq!(c.cmd(&["BLPOP", "nothing", "0.05"]), b"_\r\n");
    // Errors of the timeout argument.
    let mut c = srv.client();
    assert_eq!(c.cmd(&["BLPOP", "k", "-1"]), b"-ERR timeout is negative\r\n");
    assert_eq!(c.cmd(&["BLPOP", "k", "abc"]), b"-ERR timeout is not a float or out of range\r\n");
    // Timeout 0 waits for as long as it takes.
    let mut admin = srv.client();
    c.send_strs(&["BLPOP", "late", "0"]);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(blocked_clients(&mut admin), 1);
    admin.cmd(&["RPUSH", "late", "x"]);
    assert_eq!(c.read_reply_raw(), pair("late", "x"));
}

#[test]
fn a_disconnected_blocked_client_leaves_nothing_behind() {
    for shards in [2, 4] {
        let srv = TesseraServer::start(shards, &[]);
        let keys = key_per_shard("dk", shards);
        let mut admin = srv.client();
        {
            let mut w = srv.client();
            let mut args: Vec<&str> = vec!["BLPOP"];
            args.extend(keys.iter().map(|k| k.as_str()));
            args.push("0");
            w.send_strs(&args);
            wait_blocked(&mut admin, 1);
        }
        // The socket is closed: the server notices and unregisters the waiter.
        wait_blocked(&mut admin, 0);
        for k in &keys {
            assert_eq!(admin.cmd(&["RPUSH", k, "kept"]), b":1\r\n");
        }
        std::thread::sleep(Duration::from_millis(50));
        for k in &keys {
            assert_eq!(admin.cmd(&["LLEN", k]), b":1\r\n", "{k}: the push stays in the list");
        }
    }
}

#[test]
fn client_unblock_ends_a_wait_with_a_timeout_or_an_error() {
    let srv = TesseraServer::start(2, &[]);
    let mut admin = srv.client();
    let mut w = srv.client();
    let id = String::from_utf8(w.cmd(&["CLIENT", "ID"])).unwrap();
    let id = id.trim_start_matches(':').trim().to_string();
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]), b":0\r\n", "not blocked yet");
    w.send_strs(&["BLPOP", "u1", "u2", "0"]);
    wait_blocked(&mut admin, 1);
    let list = String::from_utf8(admin.cmd(&["CLIENT", "LIST"])).unwrap();
    assert!(list.lines().any(|l| l.contains(&format!("id={id} ")) && l.contains(" flags=b ")), "{list}");
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"]), b":1\r\n");
    assert_eq!(w.read_reply_raw(), b"*-1\r\n");
    w.send_strs(&["BZPOPMAX", "z1", "0"]);
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), b":1\r\n");
    assert_eq!(w.read_reply_raw(), b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), b":0\r\n");
    assert_eq!(
        admin.cmd(&["CLIENT", "UNBLOCK", &id, "bad"]),
        b"-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
    // The unblocked client works normally afterwards.
    assert_eq!(w.cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn commands_pipelined_behind_a_blocked_one_run_after_it_in_order() {
    let srv = TesseraServer::start(2, &[]);
    let mut admin = srv.client();
    let mut w = srv.client();
    let mut req = encode_command(&[b"BLPOP", b"pq", b"0"]);
    req.extend(encode_command(&[b"RPUSH", b"pq", b"after"]));
    req.extend(encode_command(&[b"LRANGE", b"pq", b"0", b"-1"]));
    w.send_raw(&req);
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd(&["LLEN", "pq"]), b":0\r\n", "the RPUSH behind the BLPOP has not run");
    admin.cmd(&["RPUSH", "pq", "first"]);
    assert_eq!(w.read_reply_raw(), pair("pq", "first"));
    assert_eq!(w.read_reply_raw(), b":1\r\n");
    assert_eq!(w.read_reply_raw(), format!("*1\r\n{}", bulk("after")).into_bytes());
}

#[test]
fn blmove_across_shards_and_bzpopmin_are_served_by_writes() {
    for shards in [2, 4] {
        let srv = TesseraServer::start(shards, &[]);
        let keys = key_per_shard("mv", shards);
        let (src, dst) = (&keys[0], &keys[1]);
        let mut admin = srv.client();
        let mut w = srv.client();
        w.send_strs(&["BLMOVE", src, dst, "RIGHT", "LEFT", "0"]);
        wait_blocked(&mut admin, 1);
        admin.cmd(&["RPUSH", src, "a", "b"]);
        assert_eq!(w.read_reply_raw(), bulk("b").into_bytes());
        assert_eq!(admin.cmd(&["LRANGE", dst, "0", "-1"]), format!("*1\r\n{}", bulk("b")).into_bytes());
        assert_eq!(admin.cmd(&["LRANGE", src, "0", "-1"]), format!("*1\r\n{}", bulk("a")).into_bytes());
        // BRPOPLPUSH on one shard.
        w.send_strs(&["BRPOPLPUSH", "{t}s", "{t}d", "0"]);
        wait_blocked(&mut admin, 1);
        admin.cmd(&["LPUSH", "{t}s", "x"]);
        assert_eq!(w.read_reply_raw(), bulk("x").into_bytes());
        assert_eq!(admin.cmd(&["LLEN", "{t}d"]), b":1\r\n");
        // BZPOPMIN over (fresh) keys on every shard.
        let keys = key_per_shard("zz", shards);
        let mut args: Vec<&str> = vec!["BZPOPMIN"];
        args.extend(keys.iter().map(|k| k.as_str()));
        args.push("0");
        w.send_strs(&args);
        wait_blocked(&mut admin, 1);
        let last = keys.last().unwrap();
        admin.cmd(&["ZADD", last, "2", "two", "1", "one"]);
        assert_eq!(w.read_reply_raw(), format!("*3\r\n{}{}{}", bulk(last), bulk("one"), bulk("1")).into_bytes());
        assert_eq!(admin.cmd(&["ZCARD", last]), b":1\r\n");
    }
}

#[test]
fn parallel_blocking_consumers_neither_lose_nor_duplicate_elements() {
    for shards in [2, 4] {
        let srv = TesseraServer::start(shards, &[]);
        let keys = key_per_shard("q", shards);
        let port = srv.0.port;
        let stop = Arc::new(AtomicBool::new(false));
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let keys = keys.clone();
            let stop = stop.clone();
            consumers.push(std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut got: Vec<String> = Vec::new();
                let mut args: Vec<&str> = vec!["BLPOP"];
                args.extend(keys.iter().map(|k| k.as_str()));
                args.push("0.2");
                loop {
                    let v = c.cmd_value(&args);
                    match v.as_array() {
                        Some(a) => got.push(a[1].as_str().unwrap()),
                        None if stop.load(Ordering::Relaxed) => return got,
                        None => {}
                    }
                }
            }));
        }
        const PER_PRODUCER: usize = 400;
        let mut producers = Vec::new();
        for p in 0..3 {
            let keys = keys.clone();
            producers.push(std::thread::spawn(move || {
                let mut c = Client::connect(port);
                for i in 0..PER_PRODUCER {
                    let k = &keys[i % keys.len()];
                    let v = format!("p{p}-{i}");
                    let r = c.cmd(&["RPUSH", k, &v]);
                    assert!(r.starts_with(b":"), "{r:?}");
                }
            }));
        }
        for p in producers {
            p.join().unwrap();
        }
        // Let the consumers drain, then stop them.
        let mut admin = srv.client();
        let t0 = Instant::now();
        loop {
            let left: i64 = keys
                .iter()
                .map(|k| {
                    String::from_utf8(admin.cmd(&["LLEN", k]))
                        .unwrap()
                        .trim_start_matches(':')
                        .trim()
                        .parse::<i64>()
                        .unwrap()
                })
                .sum();
            if left == 0 || t0.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        let mut all: Vec<String> = Vec::new();
        for c in consumers {
            all.extend(c.join().unwrap());
        }
        for k in &keys {
            let rest = admin.cmd_value(&["LRANGE", k, "0", "-1"]);
            all.extend(rest.as_array().unwrap().iter().map(|v| v.as_str().unwrap()));
        }
        let unique: BTreeSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "{shards} shards: an element was delivered twice");
        assert_eq!(all.len(), 3 * PER_PRODUCER, "{shards} shards: an element was lost");
    }
}
