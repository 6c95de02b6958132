//! The socket loop: the shard's own io_uring ring (multishot receive into
//! provided buffers, batched sends) and the glommio fallback behave the same
//! under partial frames, big arguments, big replies, many connections with
//! large pipelines (provided buffers running out), and disconnects; and the
//! watchdog never has to rescue a shard.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::Duration;

fn field(c: &mut Client, section: &str, name: &str) -> String {
    let info = String::from_utf8(c.cmd(&["INFO", section])).unwrap();
    info_field(&info, name).unwrap_or_else(|| panic!("INFO has no {name}"))
}

/// The same checks on whatever engine `server` runs.
fn workload(server: &TesseraServer) {
    let mut c = server.client();
    // A pipeline of 2000 commands in one write.
    let mut req = Vec::new();
    for i in 0..1000 {
        req.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$6\r\nk{i:05}\r\n$3\r\nv{:02}\r\n", i % 100).as_bytes());
        req.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$6\r\nk{i:05}\r\n").as_bytes());
    }
    c.send_raw(&req);
    for i in 0..1000 {
        assert_eq!(c.read_reply_raw(), b"+OK\r\n");
        assert_eq!(c.read_reply_raw(), format!("$3\r\nv{:02}\r\n", i % 100).into_bytes());
    }
    // A request dribbled one byte at a time.
    for b in b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$5\r\nhello\r\n" {
        c.send_raw(&[*b]);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(c.read_reply_raw(), b"+OK\r\n");
    // A 3 MiB argument (read into its own buffer) and its reply (many sends).
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    assert_eq!(c.cmd_bytes(&[b"SET", b"big", &big]), b"+OK\r\n");
    let mut want = format!("${}\r\n", big.len()).into_bytes();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"\r\n");
    assert_eq!(c.cmd(&["GET", "big"]), want);
    // Inline commands split across reads.
    c.send_raw(b"PI");
    std::thread::sleep(Duration::from_millis(5));
    c.send_raw(b"NG\r\n");
    assert_eq!(c.read_reply_raw(), b"+PONG\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), b":1002\r\n");
}

#[test]
fn io_uring_loop_serves_every_shard() {
    let server = TesseraServer::start(2, &[]);
    let mut c = server.client();
    assert_eq!(field(&mut c, "stats", "io_uring_socket_shards"), "2");
    workload(&server);
    let passes: u64 = field(&mut c, "stats", "io_uring_loop_passes").parse().unwrap();
    let enters: u64 = field(&mut c, "stats", "io_uring_enters").parse().unwrap();
    assert!(passes > 0 && enters > 0, "passes {passes} enters {enters}");
}

#[test]
fn glommio_engine_serves_the_same() {
    let server = TesseraServer::start(2, &["--net-engine", "glommio"]);
    let mut c = server.client();
    assert_eq!(field(&mut c, "stats", "io_uring_socket_shards"), "0");
    workload(&server);
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "net-engine", "io_uring"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'net-engine') - can't set immutable config\r\n"
    );
}

#[test]
fn missing_kernel_support_falls_back_with_one_warning() {
    let server = TesseraServer::start_opts(
        2,
        StartOpts {
            env: &[("TESSERA_NO_IO_URING_SOCKETS", "1")],
            ..Default::default()
        },
    );
    let mut c = server.client();
    assert_eq!(field(&mut c, "stats", "io_uring_socket_shards"), "0");
    workload(&server);
    let log = server.log();
    assert_eq!(log.matches("the io_uring socket loop is unavailable").count(), 1, "{log}");
}

/// Many connections each write a large pipeline before reading anything: the
/// provided buffers run out and connections get their receive back later.
#[test]
fn large_pipelines_on_many_connections_lose_nothing() {
    let server = TesseraServer::start(2, &[]);
    let port = server.port;
    let threads: Vec<_> = (0..12)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.set_timeout(Duration::from_secs(60));
                let n = 20_000;
                let mut req = Vec::new();
                for i in 0..n {
                    let k = format!("c{t}:k{i}");
                    req.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$16\r\n{:016}\r\n", k.len(), i).as_bytes());
                }
                // Written from another thread while this one reads: nothing may deadlock.
                let mut w = c.stream().try_clone().unwrap();
                let writer = std::thread::spawn(move || w.write_all(&req).unwrap());
                for _ in 0..n {
                    assert_eq!(c.read_reply_raw(), b"+OK\r\n");
                }
                writer.join().unwrap();
                assert_eq!(c.cmd(&["GET", &format!("c{t}:k{}", n - 1)]), format!("$16\r\n{:016}\r\n", n - 1).into_bytes());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = server.client();
    assert_eq!(c.cmd(&["DBSIZE"]), b":240000\r\n");
    assert_eq!(field(&mut c, "stats", "watchdog_rescues"), "0");
}

/// A client that pipelines big GETs and reads nothing, then leaves; another
/// that leaves mid-request: the server carries on and forgets both.
#[test]
fn disconnects_mid_request_and_mid_reply_leave_the_server_healthy() {
    let server = TesseraServer::start(2, &[]);
    let mut c = server.client();
    let big = vec![b'x'; 1 << 20];
    assert_eq!(c.cmd_bytes(&[b"SET", b"big", &big]), b"+OK\r\n");
    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let mut req = Vec::new();
        for _ in 0..50 {
            req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
        }
        s.write_all(&req).unwrap();
        let mut first = [0u8; 1024];
        let _ = s.read(&mut first);
        drop(s);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$100000\r\nabc").unwrap();
        drop(s);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if field(&mut c, "clients", "connected_clients") == "1" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "connections were not released");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.cmd(&["EXISTS", "a"]), b":0\r\n");
    assert_eq!(c.cmd(&["STRLEN", "big"]), b":1048576\r\n");
}

/// Cross-shard traffic on 4 shards from several clients: every shard parks and
/// wakes constantly, and no wake-up is ever lost (the watchdog counts rescues).
#[test]
fn no_wake_up_is_lost_under_cross_shard_load() {
    let server = TesseraServer::start(4, &[]);
    let port = server.port;
    let threads: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                for round in 0..300 {
                    let mut req = Vec::new();
                    for i in 0..8 {
                        req.extend_from_slice(
                            format!(
                                "*5\r\n$4\r\nMSET\r\n$4\r\na{t}{i}x\r\n$1\r\n{}\r\n$4\r\nb{t}{i}y\r\n$1\r\n{}\r\n",
                                round % 10,
                                round % 10
                            )
                            .as_bytes(),
                        );
                        req.extend_from_slice(format!("*3\r\n$4\r\nMGET\r\n$4\r\na{t}{i}x\r\n$4\r\nb{t}{i}y\r\n").as_bytes());
                    }
                    c.send_raw(&req);
                    for _ in 0..8 {
                        assert_eq!(c.read_reply_raw(), b"+OK\r\n");
                        let v = format!("*2\r\n$1\r\n{}\r\n$1\r\n{}\r\n", round % 10, round % 10);
                        assert_eq!(c.read_reply_raw(), v.into_bytes());
                    }
                    if round % 50 == 0 {
                        // Idle gaps let every shard park.
                        std::thread::sleep(Duration::from_millis(3));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = server.client();
    assert_eq!(field(&mut c, "stats", "io_uring_socket_shards"), "4");
    assert_eq!(field(&mut c, "stats", "watchdog_rescues"), "0");
}

/// Single-key commands forwarded to the other shard, with pauses long enough
/// for both shards to park their executors between commands: every wake-up
/// of a parked shard (by another shard's job, then by its reply) arrives.
#[test]
fn forwarded_commands_wake_parked_shards_by_msg_ring() {
    let wakes = forwarded_round_trips(&[]);
    assert!(wakes > 0, "no MSG_RING wake-up was used");
}

/// The same through eventfd writes (a waker writes the eventfd its target
/// sleeps on: the ring's READ, or glommio's).
#[test]
fn forwarded_commands_wake_parked_shards_by_eventfd() {
    assert_eq!(forwarded_round_trips(&[("TESSERA_MSG_RING", "0")]), 0);
}

/// Returns INFO `io_uring_msg_ring_wakes`.
fn forwarded_round_trips(env: &[(&str, &str)]) -> u64 {
    let server = TesseraServer::start_opts(2, StartOpts { env, ..Default::default() });
    let port = server.port;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.set_timeout(Duration::from_secs(5));
                for i in 0..40 {
                    let k = format!("p{t}:{i}");
                    assert_eq!(c.cmd(&["SET", &k, "1"]), b"+OK\r\n", "SET {k} (a lost wake-up times out)");
                    assert_eq!(c.cmd(&["GET", &k]), b"$1\r\n1\r\n");
                    std::thread::sleep(Duration::from_millis(if i % 4 == 0 { 3 } else { 1 }));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = server.client();
    let parks: u64 = field(&mut c, "stats", "io_uring_idle_waits").parse().unwrap();
    assert!(parks > 0, "the shards never parked");
    assert_eq!(field(&mut c, "stats", "watchdog_rescues"), "0");
    field(&mut c, "stats", "io_uring_msg_ring_wakes").parse().unwrap()
}

/// CONFIG SET port hands every shard's ring new listeners: new connections
/// reach every shard on the new port, the old port is closed, and a
/// connection made before keeps working.
#[test]
fn config_set_port_moves_every_shards_listener() {
    let server = TesseraServer::start(2, &[]);
    let mut before = server.client();
    let new_port = free_port();
    assert_eq!(before.cmd(&["CONFIG", "SET", "port", &new_port.to_string()]), b"+OK\r\n");
    for i in 0..16 {
        let mut c = Client::connect(new_port);
        assert_eq!(c.cmd(&["SET", &format!("moved{i}"), "1"]), b"+OK\r\n");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the old port still accepts");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(before.cmd(&["DBSIZE"]), b":16\r\n");
    assert_eq!(field(&mut before, "stats", "watchdog_rescues"), "0");
}

/// Connections whose commands all go to the other shard move there: replies
/// stay in order with nothing lost or repeated — bytes that arrive while a
/// connection moves included — and a moved client keeps its id, name, db and
/// protocol. Random keys never move a connection.
#[test]
fn connections_move_to_the_shard_of_their_keys() {
    let server = TesseraServer::start(2, &[]);
    let port = server.port;
    let incr = |key: &str| format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).into_bytes();
    // 16 connections: some are accepted by the shard that does not own {q}
    // (all on the other one: a chance of 2^-16).
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.set_timeout(Duration::from_secs(30));
                assert_eq!(c.cmd(&["CLIENT", "SETNAME", &format!("c{t}")]), b"+OK\r\n");
                assert_eq!(c.cmd(&["SELECT", "3"]), b"+OK\r\n");
                assert_eq!(c.cmd(&["HELLO", "3"])[0], b'%');
                let id = c.cmd(&["CLIENT", "ID"]);
                let key = format!("{{q}}:n{t}");
                let mut next = 1;
                if t % 2 == 0 {
                    // Waves answered before the next is sent: quiescent points.
                    for _ in 0..20 {
                        let req: Vec<u8> = (0..50).flat_map(|_| incr(&key)).collect();
                        c.send_raw(&req);
                        for _ in 0..50 {
                            assert_eq!(c.read_reply_raw(), format!(":{next}\r\n").into_bytes());
                            next += 1;
                        }
                    }
                }
                // A stream written one command at a time from another thread
                // while this one reads: a move finds more bytes on the way.
                let n = 3000;
                let mut w = c.stream().try_clone().unwrap();
                let one = incr(&key);
                let writer = std::thread::spawn(move || {
                    for _ in 0..n {
                        w.write_all(&one).unwrap();
                    }
                });
                for _ in 0..n {
                    assert_eq!(c.read_reply_raw(), format!(":{next}\r\n").into_bytes());
                    next += 1;
                }
                writer.join().unwrap();
                assert_eq!(c.cmd(&["CLIENT", "ID"]), id);
                let info = String::from_utf8(c.cmd(&["CLIENT", "INFO"])).unwrap();
                for want in [format!(" name=c{t} "), " db=3 ".to_string(), " resp=3".to_string()] {
                    assert!(info.contains(&want), "{want:?} not in {info}");
                }
                assert_eq!(c.cmd(&["HGETALL", "{q}:none"]), b"%0\r\n");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = server.client();
    let moved: u64 = field(&mut c, "stats", "io_uring_connection_migrations").parse().unwrap();
    assert!((1..=16).contains(&moved), "{moved} migrations for 16 connections");
    assert_eq!(c.cmd(&["SELECT", "3"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), b":16\r\n");
    assert_eq!(field(&mut c, "clients", "connected_clients"), "1");
    // Commands on random keys: no connection moves.
    for i in 0..500 {
        c.send_strs(&["SET", &format!("r{i}"), "v"]);
    }
    for _ in 0..500 {
        assert_eq!(c.read_reply_raw(), b"+OK\r\n");
    }
    let after: u64 = field(&mut c, "stats", "io_uring_connection_migrations").parse().unwrap();
    assert_eq!(after, moved);
    assert_eq!(field(&mut c, "stats", "watchdog_rescues"), "0");
}
