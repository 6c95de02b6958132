//! A script that runs past `busy-reply-threshold`: clients on the other shards
//! get Redis's BUSY error, SCRIPT KILL stops a script that wrote nothing
//! (UNKILLABLE once it wrote, NOTBUSY when none runs), and the script's own
//! caller gets the kill error. New connections to the script's own shard
//! (every connection with one shard) are answered by the busy responder, as
//! Redis answers while a script is slow; connections that shard already
//! served wait for it: its thread is running the script.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Connections until one answers within `wait` (it is on another shard than
/// the running script); the others are kept (their replies come later).
fn other_shard_client(port: u16, wait: Duration, parked: &mut Vec<Client>) -> (Client, Vec<u8>) {
    for _ in 0..32 {
        let mut c = Client::connect(port);
        c.set_timeout(wait);
        c.send_strs(&["PING"]);
        match c.try_read_reply_raw() {
            Ok(r) => return (c, r),
            Err(_) => parked.push(c),
        }
    }
    panic!("no connection landed on a shard without the running script");
}

#[test]
fn busy_scripts_answer_busy_elsewhere_and_script_kill_stops_them() {
    let srv = TesseraServer::start(2, &["--busy-reply-threshold", "100"]);
    let port = srv.port;
    let mut admin = srv.client();
    assert_eq!(admin.cmd(&["SCRIPT", "KILL"]), b"-NOTBUSY No scripts in execution right now.\r\n");

    let mut runner = srv.client();
    runner.set_timeout(Duration::from_secs(20));
    runner.send_strs(&["EVAL", "while true do end", "0"]);
    std::thread::sleep(Duration::from_millis(400));
    let mut parked = Vec::new();
    let (mut other, first) = other_shard_client(port, Duration::from_millis(300), &mut parked);
    assert_eq!(
        first, b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
        "a client elsewhere must get BUSY"
    );
    other.set_timeout(Duration::from_secs(5));
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), b"+OK\r\n");
    let killed = runner.read_reply_raw();
    let text = String::from_utf8_lossy(&killed).into_owned();
    assert!(text.starts_with("-ERR Script killed by user with SCRIPT KILL... script: "), "{text}");
    assert!(text.ends_with(", on @user_script:1.\r\n"), "{text}");
    // The clients that waited on the script's shard are served now.
    for c in parked.iter_mut() {
        c.set_timeout(Duration::from_secs(5));
        assert_eq!(c.read_reply_raw(), b"+PONG\r\n");
    }
    assert_eq!(other.cmd(&["PING"]), b"+PONG\r\n");

    // A script that wrote cannot be killed; it ends by itself (within 4 s).
    // Each loop turn is a redis.call, so the 100 000-instruction hook can
    // take a while (much longer in a debug build) to notice it is slow: ask
    // until BUSY comes.
    let slow = "redis.call('set', KEYS[1], 'x') local t = redis.call('time')[1] while redis.call('time')[1] - t < 4 do end return 'done'";
    runner.send_strs(&["EVAL", slow, "1", "w"]);
    std::thread::sleep(Duration::from_millis(400));
    let mut parked = Vec::new();
    let (mut other, mut first) = other_shard_client(port, Duration::from_millis(200), &mut parked);
    let deadline = Instant::now() + Duration::from_millis(2500);
    while !first.starts_with(b"-BUSY") && Instant::now() < deadline {
        assert_eq!(first, b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(50));
        first = other.cmd(&["PING"]);
    }
    assert!(first.starts_with(b"-BUSY"), "{}", escape(&first));
    other.set_timeout(Duration::from_secs(5));
    assert!(other
        .cmd(&["SCRIPT", "KILL"])
        .starts_with(b"-UNKILLABLE Sorry the script already executed write commands"));
    assert_eq!(runner.read_reply_raw(), b"$4\r\ndone\r\n");
    assert_eq!(other.cmd(&["GET", "w"]), b"$1\r\nx\r\n");
    for c in parked.iter_mut() {
        c.set_timeout(Duration::from_secs(5));
        assert_eq!(c.read_reply_raw(), b"+PONG\r\n");
    }
}

/// What a connection made while a slow script runs gets, step by step
/// (the caller's and the new connection's replies), on any server.
fn slow_script_session(port: u16, pass: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut log = Vec::new();
    let mut runner = Client::connect(port);
    runner.set_timeout(Duration::from_secs(20));
    if let Some(p) = pass {
        assert_eq!(runner.cmd(&["AUTH", p]), b"+OK\r\n");
    }
    runner.send_strs(&["EVAL", "while true do end", "0"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut c = Client::connect(port);
    c.set_timeout(Duration::from_secs(5));
    let mut steps: Vec<Vec<&str>> = Vec::new();
    if let Some(p) = pass {
        steps.push(vec!["PING"]);
        steps.push(vec!["SCRIPT", "KILL"]);
        steps.push(vec!["AUTH", "wrong"]);
        steps.push(vec!["AUTH", "default", p]);
    }
    steps.extend([
        vec!["PING"],
        vec!["GET", "x"],
        vec!["NOSUCH", "a", "b"],
        vec!["GET"],
        vec!["SCRIPT", "NOSUCH"],
        vec!["SHUTDOWN"],
        vec!["SHUTDOWN", "ABORT"],
        vec!["SHUTDOWN", "SAVE", "NOSAVE"],
        vec!["SHUTDOWN", "BOGUS"],
        vec!["FUNCTION", "KILL"],
    ]);
    for s in &steps {
        log.push((fmt_cmd(s), c.cmd(s)));
    }
    // Inline and pipelined requests are answered in order too.
    c.send_raw(b"PING\r\n*1\r\n$4\r\nPING\r\n");
    log.push(("inline + multibulk PING".into(), c.read_reply_raw()));
    log.push(("(second)".into(), c.read_reply_raw()));
    log.push(("SCRIPT KILL".into(), c.cmd(&["SCRIPT", "KILL"])));
    let killed = runner.read_reply_raw();
    let text = String::from_utf8_lossy(&killed).into_owned();
    assert!(text.starts_with("-ERR Script killed by user with SCRIPT KILL... script: "), "{text}");
    log.push(("after the kill: PING".into(), c.cmd(&["PING"])));
    log.push(("SCRIPT KILL again".into(), c.cmd(&["SCRIPT", "KILL"])));
    log.push(("SET".into(), c.cmd(&["SET", "k", "v"])));
    log.push(("runner GET".into(), runner.cmd(&["GET", "k"])));
    let stats = String::from_utf8_lossy(&c.cmd(&["INFO", "errorstats"])).into_owned();
    let mut lines: Vec<&str> = stats.lines().filter(|l| l.starts_with("errorstat_")).collect();
    lines.sort();
    log.push(("INFO errorstats".into(), lines.join("\n").into_bytes()));
    let cmdstats = String::from_utf8_lossy(&c.cmd(&["INFO", "commandstats"])).into_owned();
    for name in ["ping", "get", "script|kill", "shutdown", "function|kill"] {
        let line = cmdstats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .map(|l| l.split(',').filter(|f| f.contains("calls")).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        log.push((format!("cmdstat_{name}"), line.into_bytes()));
    }
    log
}

fn assert_same_session(redis: &[(String, Vec<u8>)], ours: &[(String, Vec<u8>)], what: &str) {
    assert_eq!(redis.len(), ours.len());
    for ((step, r), (_, t)) in redis.iter().zip(ours) {
        assert_eq!(escape(t), escape(r), "{what}: step {step}");
    }
}

#[test]
fn new_connections_to_the_busy_shard_get_redis_replies_and_can_kill_the_script() {
    let args = ["--busy-reply-threshold", "100"];
    let mut redis = RedisServer::start(&args);
    let want = slow_script_session(redis.port, None);
    redis.stop();
    // One shard: the script's shard is the only one. Two: the new connection
    // lands on either, and both answer alike.
    for shards in [1, 2] {
        let mut srv = TesseraServer::start(shards, &args);
        let got = slow_script_session(srv.port, None);
        assert_same_session(&want, &got, &format!("{shards} shard(s)"));
        srv.stop();
    }
}

#[test]
fn a_password_is_asked_before_busy_and_auth_is_answered_while_busy() {
    let args = ["--busy-reply-threshold", "100", "--requirepass", "s3cret"];
    let mut redis = RedisServer::start(&args);
    let want = slow_script_session(redis.port, Some("s3cret"));
    redis.stop();
    let mut srv = TesseraServer::start(1, &args);
    let got = slow_script_session(srv.port, Some("s3cret"));
    assert_same_session(&want, &got, "1 shard with requirepass");
    srv.stop();
}

#[test]
fn shutdown_nosave_stops_a_one_shard_server_under_a_runaway_script() {
    let mut srv = TesseraServer::start(1, &["--busy-reply-threshold", "100"]);
    let mut runner = srv.client();
    runner.set_timeout(Duration::from_secs(20));
    // It wrote: SCRIPT KILL could not stop it, SHUTDOWN NOSAVE still does.
    runner.send_strs(&["EVAL", "redis.call('set', 'w', '1') while true do end", "0"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut c = Client::connect(srv.port);
    c.set_timeout(Duration::from_secs(5));
    assert!(c
        .cmd(&["SCRIPT", "KILL"])
        .starts_with(b"-UNKILLABLE Sorry the script already executed write commands"));
    c.send_strs(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.closed_within(Duration::from_secs(5)), "SHUTDOWN NOSAVE answers nothing and closes");
    let st = srv.wait_exit(Duration::from_secs(10)).expect("the server exits under a runaway script");
    assert!(st.success(), "{st:?}\n{}", srv.log_tail(40));
}

#[test]
fn commands_that_must_wait_for_the_shard_keep_their_order_and_run_after_the_script() {
    let srv = TesseraServer::start(1, &["--busy-reply-threshold", "100"]);
    let mut runner = srv.client();
    runner.set_timeout(Duration::from_secs(20));
    runner.send_strs(&["EVAL", "while true do end", "0"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut c = Client::connect(srv.port);
    c.set_timeout(Duration::from_millis(300));
    // BUSY for a plain command; MULTI (allowed while busy, but it needs the
    // shard) and what follows it wait, in order.
    assert!(c.cmd(&["PING"]).starts_with(b"-BUSY"));
    let mut batch = Vec::new();
    for cmd in [
        &["MULTI"][..],
        &["SET", "a", "1"],
        &["INCR", "n"],
        &["EXEC"],
        &["CLIENT", "SETNAME", "waited"],
        &["GET", "a"],
    ] {
        batch.extend(encode_command(&cmd.iter().map(|s| s.as_bytes()).collect::<Vec<_>>()));
    }
    c.send_raw(&batch);
    assert!(c.try_read_reply_raw().is_err(), "nothing is answered before the script ends");
    let mut admin = Client::connect(srv.port);
    admin.set_timeout(Duration::from_secs(5));
    assert_eq!(admin.cmd(&["SCRIPT", "KILL"]), b"+OK\r\n");
    assert!(runner.read_reply_raw().starts_with(b"-ERR Script killed by user"));
    c.set_timeout(Duration::from_secs(5));
    let mut got = Vec::new();
    for _ in 0..6 {
        got.extend(c.read_reply_raw());
    }
    assert_eq!(escape(&got), escape(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:1\r\n+OK\r\n$1\r\n1\r\n"));
    // The connection now lives on the shard like any other.
    let list = String::from_utf8_lossy(&admin.cmd(&["CLIENT", "LIST"])).into_owned();
    assert!(list.lines().any(|l| l.contains("name=waited")), "{list}");
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
}
