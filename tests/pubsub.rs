//! Pub/Sub against a real redis-server 7.0.15 (byte-identical replies and
//! messages over several connections, RESP2 and RESP3, Tessera at 4 shards
//! so the connections sit on different shards), and under concurrency:
//! every message reaches every subscription exactly once, in each
//! publisher's order; clients that leave leave no subscription behind.

mod common;

use common::*;
use std::time::Duration;

/// Everything the connection receives within a short quiet period.
fn drain(c: &mut Client) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        match c.try_read_reply_raw() {
            Ok(r) => all.extend_from_slice(&r),
            Err(ReadError::Timeout(p)) if p.is_empty() => return all,
            // Half a frame: the rest is on its way.
            Err(ReadError::Timeout(_)) => {}
            Err(ReadError::Closed(p)) => {
                all.extend_from_slice(&p);
                return all;
            }
            Err(e) => panic!("port {}: {e:?}", c.port),
        }
    }
}

/// (connection, request) steps; after each, what every connection received.
const SCRIPT: &[(usize, &str)] = &[
    (0, "SUBSCRIBE ch1 ch2\r\n"),
    (2, "HELLO 3\r\n"),
    (2, "PSUBSCRIBE ch* x?\r\n"),
    (0, "GET k\r\nPING\r\nPING hi\r\nSET k v\r\n"),
    (1, "PUBLISH ch1 hello\r\nPUBLISH nope x\r\nPUBLISH xy z\r\nPUBLISH ch2 two\r\n"),
    (1, "PUBSUB NUMSUB ch1 ch2 ch3\r\nPUBSUB NUMPAT\r\nPUBSUB CHANNELS ch1\r\nPUBSUB CHANNELS zz*\r\nPUBSUB NUMSUB\r\n"),
    (2, "PUBLISH ch2 self\r\nPING\r\nGET k\r\nPUBSUB NUMSUB ch1\r\n"),
    (0, "SUBSCRIBE ch1\r\nUNSUBSCRIBE ch1\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nPING\r\nGET k\r\n"),
    (2, "PUNSUBSCRIBE x?\r\nPUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nSSUBSCRIBE s1 s2\r\nSPUBLISH s1 m\r\nPUBLISH s1 not-shard\r\n"),
    (1, "SPUBLISH s2 n\r\nPUBSUB SHARDNUMSUB s1 s3\r\nPUBSUB SHARDCHANNELS s1\r\n"),
    (2, "SUNSUBSCRIBE s1\r\nSUNSUBSCRIBE\r\nSUNSUBSCRIBE\r\nPUBSUB SHARDNUMSUB s1\r\n"),
    (1, "SUBSCRIBE\r\nPSUBSCRIBE\r\nPUBLISH\r\nSUBSCRIBE z\r\nPUBLISH z 1\r\nSET a b\r\nPSUBSCRIBE p*\r\nRESET\r\nGET k\r\nPUBSUB NUMSUB z\r\nPUBSUB NUMPAT\r\n"),
    (0, "SUBSCRIBE q\r\nHELLO 3\r\nGET k\r\nPING\r\nQUIT\r\n"),
    (1, "PUBLISH q gone\r\nPUBSUB NUMSUB q\r\n"),
];

/// The bytes, with HELLO's client id (which differs between the servers) blanked.
fn mask_id(b: &[u8]) -> String {
    let s = escape(b);
    let tag = "$2\\r\\nid\\r\\n:";
    match s.find(tag) {
        Some(at) => {
            let from = at + tag.len();
            let to = from + s[from..].find('\\').unwrap_or(0);
            format!("{}N{}", &s[..from], &s[to..])
        }
        None => s,
    }
}

fn run_script(port: u16) -> Vec<Vec<u8>> {
    let mut conns: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = Client::connect(port);
            c.set_timeout(Duration::from_millis(150));
            c
        })
        .collect();
    let mut seen = Vec::new();
    for (who, req) in SCRIPT {
        conns[*who].send_raw(req.as_bytes());
        for c in conns.iter_mut() {
            seen.push(drain(c));
        }
    }
    seen
}

#[test]
fn pubsub_replies_and_messages_match_redis() {
    let redis = RedisServer::start(&[]);
    let tessera = TesseraServer::start(4, &[]);
    let want = run_script(redis.port);
    let got = run_script(tessera.port);
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let (step, conn) = (i / 3, i % 3);
        assert_eq!(mask_id(g), mask_id(w), "step {step} ({:?}), connection {conn}", SCRIPT[step].1);
    }
}

#[test]
fn every_message_reaches_every_subscription_once_in_order() {
    let server = TesseraServer::start(4, &[]);
    let port = server.port;
    let (publishers, per) = (3usize, 400usize);
    // kind 0: SUBSCRIBE ch; 1: PSUBSCRIBE c*; 2: both (two copies of each message).
    let kinds = [0, 0, 1, 1, 2, 2];
    let mut subs: Vec<(usize, Client)> = kinds
        .iter()
        .map(|&k| {
            let mut c = Client::connect(port);
            c.set_timeout(Duration::from_secs(30));
            if k != 1 {
                c.send_strs(&["SUBSCRIBE", "ch"]);
                c.read_reply_raw();
            }
            if k != 0 {
                c.send_strs(&["PSUBSCRIBE", "c*"]);
                c.read_reply_raw();
            }
            (k, c)
        })
        .collect();
    let receivers = kinds.iter().map(|&k| if k == 2 { 2 } else { 1 }).sum::<usize>();
    let threads: Vec<_> = (0..publishers)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.set_timeout(Duration::from_secs(30));
                for i in 0..per {
                    c.send_strs(&["PUBLISH", "ch", &format!("{p}:{i}")]);
                    if i % 8 == 7 || i == per - 1 {
                        for _ in 0..(i % 8 + 1) {
                            assert_eq!(c.read_reply_raw(), format!(":{receivers}\r\n").into_bytes());
                        }
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = subs
        .drain(..)
        .map(|(k, mut c)| {
            std::thread::spawn(move || {
                let copies = if k == 2 { 2 } else { 1 };
                // Next expected number, per publisher and per subscription kind.
                let mut next = vec![[0usize; 2]; publishers];
                for _ in 0..copies * publishers * per {
                    let v = c.read_value();
                    let items = match v {
                        Value::Array(a) | Value::Push(a) => a,
                        other => panic!("not a message: {other:?}"),
                    };
                    let (slot, payload) = match items.len() {
                        3 => (0, items[2].clone()),
                        4 => (1, items[3].clone()),
                        n => panic!("{n} items"),
                    };
                    let Value::Bulk(b) = payload else { panic!("payload {payload:?}") };
                    let s = String::from_utf8(b).unwrap();
                    let (p, i) = s.split_once(':').unwrap();
                    let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
                    assert_eq!(i, next[p][slot], "subscriber kind {k}: publisher {p} out of order or lost");
                    next[p][slot] += 1;
                }
                c.send_strs(&["PING"]);
                assert_eq!(c.read_reply_raw(), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n", "no extra message");
            })
        })
        .collect();
    for t in threads.into_iter().chain(readers) {
        t.join().unwrap();
    }
}

#[test]
fn clients_that_leave_leave_no_subscription_behind() {
    let server = TesseraServer::start(4, &[]);
    let mut admin = server.client();
    let mut subs: Vec<Client> = (0..8)
        .map(|i| {
            let mut c = server.client();
            c.send_strs(&["SUBSCRIBE", "a", &format!("own{i}")]);
            c.read_reply_raw();
            c.read_reply_raw();
            c.send_strs(&["PSUBSCRIBE", "a*"]);
            c.read_reply_raw();
            c
        })
        .collect();
    assert_eq!(admin.cmd(&["PUBSUB", "NUMSUB", "a"]), b"*2\r\n$1\r\na\r\n:8\r\n");
    assert_eq!(admin.cmd(&["PUBLISH", "a", "x"]), b":16\r\n");
    let info = String::from_utf8(admin.cmd(&["INFO", "stats"])).unwrap();
    assert_eq!(info_field(&info, "pubsub_channels").as_deref(), Some("9"));
    assert_eq!(info_field(&info, "pubsub_patterns").as_deref(), Some("1"));
    // CLIENT LIST TYPE pubsub: exactly the subscribers, flagged P with their counts.
    let list = String::from_utf8(admin.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"])).unwrap();
    assert_eq!(list.matches("flags=P ").count(), 8, "{list}");
    assert_eq!(list.matches(" sub=2 psub=1 ssub=0 ").count(), 8, "{list}");
    let normal = String::from_utf8(admin.cmd(&["CLIENT", "LIST", "TYPE", "normal"])).unwrap();
    assert_eq!(normal.lines().filter(|l| l.contains("id=")).count(), 1, "{normal}");
    // Half leave by closing, then the other half are killed by type.
    let wait_numsub = |admin: &mut Client, n: usize| {
        let want = format!("*2\r\n$1\r\na\r\n:{n}\r\n").into_bytes();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = admin.cmd(&["PUBSUB", "NUMSUB", "a"]);
            if got == want {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still subscribed: {}", escape(&got));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    subs.truncate(4);
    wait_numsub(&mut admin, 4);
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]), b":4\r\n");
    drop(subs);
    wait_numsub(&mut admin, 0);
    assert_eq!(admin.cmd(&["PUBSUB", "NUMPAT"]), b":0\r\n");
    assert_eq!(admin.cmd(&["PUBSUB", "CHANNELS"]), b"*0\r\n");
    assert_eq!(admin.cmd(&["PUBLISH", "a", "x"]), b":0\r\n");
    let info = String::from_utf8(admin.cmd(&["INFO", "clients"])).unwrap();
    assert_eq!(info_field(&info, "connected_clients").as_deref(), Some("1"));
}

/// Subscribers keep joining and leaving (SUBSCRIBE / UNSUBSCRIBE and
/// PSUBSCRIBE / PUNSUBSCRIBE, connections on all 4 shards) while two
/// publishers publish: the receivers PUBLISH reports, summed, are exactly
/// the messages delivered, and no subscriber sees a message after its
/// unsubscribe confirmation (the next frame after it is its next
/// subscribe's confirmation).
#[test]
fn publish_counts_equal_deliveries_while_subscribers_churn_at_4_shards() {
    let server = TesseraServer::start(4, &[]);
    let port = server.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churners: Vec<_> = (0..8)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.set_timeout(Duration::from_secs(30));
                let (sub, unsub, name) = if i % 2 == 0 {
                    ("SUBSCRIBE", "UNSUBSCRIBE", "ch")
                } else {
                    ("PSUBSCRIBE", "PUNSUBSCRIBE", "c*")
                };
                let mut got = 0usize;
                let mut round = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.send_strs(&[sub, name]);
                    let conf = c.read_value();
                    assert!(
                        matches!(&conf, Value::Array(a) if a.first() == Some(&Value::Bulk(sub.to_ascii_lowercase().into_bytes()))),
                        "churner {i}: expected the {sub} confirmation, got {conf:?}"
                    );
                    // Stay subscribed for a varying number of messages.
                    let stay = 1 + (round * 7 + i) % 5;
                    for _ in 0..stay {
                        let m = c.read_value();
                        assert!(matches!(&m, Value::Array(a) if a.len() >= 3), "churner {i}: {m:?}");
                        got += 1;
                    }
                    c.send_strs(&[unsub, name]);
                    loop {
                        let v = c.read_value();
                        let Value::Array(a) = &v else { panic!("churner {i}: {v:?}") };
                        if a.first() == Some(&Value::Bulk(unsub.to_ascii_lowercase().into_bytes())) {
                            break;
                        }
                        got += 1;
                    }
                    round += 1;
                }
                c.send_strs(&["PING"]);
                assert_eq!(c.read_reply_raw(), b"+PONG\r\n", "churner {i}: a message after its unsubscribe");
                got
            })
        })
        .collect();
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.set_timeout(Duration::from_secs(30));
                let mut counted = 0usize;
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.send_strs(&["PUBLISH", "ch", &format!("{p}:{i}")]);
                    let r = c.read_reply_raw();
                    counted += std::str::from_utf8(&r[1..r.len() - 2]).unwrap().parse::<usize>().unwrap();
                    i += 1;
                }
                counted
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    // The publishers stop first; the churners then get every message already
    // counted before their next unsubscribe confirmation ... but one waiting
    // for a message that will never come would hang: keep one last publisher
    // feeding until every churner has finished.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let counted: usize = publishers.into_iter().map(|t| t.join().unwrap()).sum();
    let mut feeder = Client::connect(port);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waits: Vec<_> = churners
        .into_iter()
        .map(|t| {
            let done = done.clone();
            std::thread::spawn(move || {
                let g = t.join().unwrap();
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                g
            })
        })
        .collect();
    let mut fed = 0usize;
    while done.load(std::sync::atomic::Ordering::Relaxed) < 8 {
        let r = feeder.cmd(&["PUBLISH", "ch", "feed"]);
        fed += std::str::from_utf8(&r[1..r.len() - 2]).unwrap().parse::<usize>().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let got: usize = waits.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(counted > 100, "too few messages published to mean anything: {counted}");
    assert_eq!(got, counted + fed, "receivers counted by PUBLISH vs messages delivered");
    assert_eq!(feeder.cmd(&["PUBSUB", "NUMSUB", "ch"]), b"*2\r\n$2\r\nch\r\n:0\r\n");
    assert_eq!(feeder.cmd(&["PUBSUB", "NUMPAT"]), b":0\r\n");
}
