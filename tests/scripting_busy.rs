//! A script that runs past `busy-reply-threshold`: clients on the other shards
//! get Redis's BUSY error, SCRIPT KILL stops a script that wrote nothing
//! (UNKILLABLE once it wrote, NOTBUSY when none runs), and the script's own
//! caller gets the kill error. Clients on the script's own shard wait for it:
//! that shard's thread is running the script.

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
