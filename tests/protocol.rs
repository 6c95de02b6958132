//! Wire-protocol behaviour compared with a real redis-server 7.0.15 byte for
//! byte: pipelining, inline commands, split frames, every protocol error
//! (including whether the connection is closed afterwards), authentication
//! limits with `--requirepass`, and clients that vanish mid-frame.
//!
//! Note: Redis 7.0 accepts multibulk counts up to INT_MAX once authenticated
//! (the 1024*1024 limit of older versions is gone); the tests follow 7.0.

mod common;

use common::*;
use std::time::Duration;

/// What a connection received: (bytes, closed by the server).
type Observed = (Vec<u8>, bool);

/// How long to wait for more data on connections the server keeps open.
const QUIET: Duration = Duration::from_millis(1200);

/// Send `data` on a fresh connection and return everything received until
/// the server closes the connection or stays quiet for `QUIET`.
fn observe(port: u16, data: &[u8]) -> (Vec<u8>, bool) {
    let mut c = Client::connect(port);
    // the server may close early (e.g. too big inline), so ignore write errors
    let _ = c.try_send_raw(data);
    c.read_until_close(QUIET)
}

/// Replace HELLO ids in a stream of replies (the only nondeterministic part
/// of the replies used here).
fn normalize_stream(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match frame_len(&b[i..]) {
            Ok(Some(n)) => {
                out.extend(normalize_hello_id(&Value::parse(&b[i..i + n])).encode());
                i += n;
            }
            _ => {
                out.extend_from_slice(&b[i..]);
                break;
            }
        }
    }
    out
}

fn show(r: &(Vec<u8>, bool)) -> String {
    format!("{} then {}", escape(&r.0), if r.1 { "CLOSED" } else { "still open" })
}

/// Run every case against both servers, all cases concurrently (each on its
/// own connections, so cases must not depend on each other's keys); collect
/// the mismatches.
fn compare_cases(tport: u16, rport: u16, cases: &[(&str, Vec<u8>)]) -> Vec<String> {
    let results: Vec<(Observed, Observed)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(_, data)| (s.spawn(move || observe(tport, data)), s.spawn(move || observe(rport, data))))
            .collect();
        handles.into_iter().map(|(t, r)| (t.join().unwrap(), r.join().unwrap())).collect()
    });
    let mut failures = Vec::new();
    for ((name, data), (t, r)) in cases.iter().zip(results) {
        let (tn, rn) = ((normalize_stream(&t.0), t.1), (normalize_stream(&r.0), r.1));
        if tn != rn {
            failures.push(format!(
                "case {name}: sent {}\n    redis:   {}\n    tessera: {}",
                escape(data),
                show(&r),
                show(&t)
            ));
        }
    }
    failures
}

fn assert_alive(ts: &mut TesseraServer) {
    assert!(ts.try_wait().is_none(), "server exited: {:?}\n{}", ts.try_wait(), ts.log_tail(50));
    let mut c = ts.client();
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[test]
fn protocol_errors_match_redis() {
    let mut ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid multibulk length (letters)", b("*abc\r\n")),
        ("invalid multibulk length (empty)", b("*\r\n")),
        ("invalid multibulk length (> INT_MAX)", b("*2147483648\r\n")),
        ("multibulk length 1024*1024+1 is accepted in 7.0 (waits)", b("*1048577\r\n")),
        ("negative multibulk length is ignored", b("*-5\r\nPING\r\n")),
        ("zero multibulk length is ignored", b("*0\r\nPING\r\n")),
        ("$-5 as inline command", b("$-5\r\n")),
        ("invalid bulk length (negative)", b("*1\r\n$-5\r\n")),
        ("invalid bulk length (letters)", b("*1\r\n$abc\r\n")),
        ("invalid bulk length (empty)", b("*1\r\n$\r\n")),
        ("bulk length > proto-max-bulk-len", b("*1\r\n$536870913\r\n")),
        ("bulk length == proto-max-bulk-len waits", b("*1\r\n$536870912\r\n")),
        ("expected '$', got 'x'", b("*3\r\n$3\r\nSET\r\nx\r\n")),
        ("expected '$', got ':'", b("*3\r\n$3\r\nSET\r\n:1\r\n")),
        ("expected '$' with no newline yet waits", b("*3\r\n$3\r\nSET\r\nx")),
        ("expected '$' after a complete command", b("*1\r\n$4\r\nPING\r\n*1\r\n+PING\r\n")),
        ("unbalanced quotes (double)", b("set \"a b\r\n")),
        ("unbalanced quotes (single)", b("set 'a\r\n")),
        ("closing quote not followed by space", b("set \"a\"b c\r\n")),
        ("closing single quote not followed by space", b("set 'a'b c\r\n")),
        ("unbalanced quotes after good commands", b("PING\r\nECHO \"x\r\n")),
        ("inline then error keeps earlier replies", b("PING\r\n*x\r\n")),
        ("inline with LF only", b("PING\nPING\n")),
        ("empty inline lines", b("\r\n\n\r\nPING\r\n")),
        ("leading space makes it inline", b(" *1\r\n")),
        ("pipelined good then bad bulk length", b("*1\r\n$4\r\nPING\r\n*1\r\n$-1\r\n")),
    ];
    // too big requests: exactly at and past PROTO_INLINE_MAX_SIZE (64 KiB)
    cases.push(("inline of 64 KiB without newline waits", vec![b'a'; 64 * 1024]));
    cases.push(("too big inline request", vec![b'a'; 64 * 1024 + 1]));
    let mut mb = b"*".to_vec();
    mb.extend(vec![b'1'; 64 * 1024]);
    cases.push(("too big mbulk count string", mb));
    let mut bb = b"*1\r\n$".to_vec();
    bb.extend(vec![b'1'; 64 * 1024]);
    cases.push(("too big bulk count string", bb));
    let failures = compare_cases(ts.port, rs.port, &cases);
    assert_alive(&mut ts);
    assert!(failures.is_empty(), "{} protocol mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn small_proto_max_bulk_len_matches_redis() {
    let mut ts = TesseraServer::start(2, &["--proto-max-bulk-len", "1mb"]);
    let rs = RedisServer::start(&["--proto-max-bulk-len", "1mb"]);
    let big = "x".repeat(1024 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bulk length 1mb+1 rejected", b("*1\r\n$1048577\r\n")),
        ("bulk length 1mb accepted (waits)", b("*1\r\n$1048576\r\n")),
        ("1mb argument works", encode_command(&[b"SET", b"k", big.as_bytes()])),
        ("SETRANGE past the limit", b("SETRANGE k4 1048576 x\r\nSETRANGE k4 1048575 x\r\nSTRLEN k4\r\n")),
        ("APPEND past the limit", {
            let mut v = encode_command(&[b"SET", b"k2", big.as_bytes()]);
            v.extend(b("APPEND k2 x\r\nSTRLEN k2\r\nAPPEND k3 x\r\n"));
            v
        }),
    ];
    let failures = compare_cases(ts.port, rs.port, &cases);
    assert_alive(&mut ts);
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn auth_and_unauthenticated_limits_match_redis() {
    let mut ts = TesseraServer::start(2, &["--requirepass", "secret"]);
    let rs = RedisServer::start(&["--requirepass", "secret"]);
    let auth = "AUTH secret\r\n";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unauthenticated multibulk length", b("*11\r\n")),
        ("multibulk length 10 is fine unauthenticated (waits)", b("*10\r\n")),
        ("unauthenticated bulk length", b("*1\r\n$16385\r\n")),
        ("bulk length 16384 is fine unauthenticated (waits)", b("*1\r\n$16384\r\n")),
        ("NOAUTH (inline)", b("GET x\r\n")),
        ("NOAUTH (multibulk)", encode_command(&[b"GET", b"x"])),
        ("NOAUTH for PING", b("PING\r\n")),
        ("NOAUTH for unknown command", b("nosuch a\r\n")),
        ("NOAUTH for wrong arity", b("GET\r\n")),
        ("AUTH wrong password", b("AUTH wrong\r\nGET x\r\n")),
        ("AUTH default wrong", b("AUTH default wrong\r\n")),
        ("AUTH wrong user", b("AUTH nobody secret\r\n")),
        ("AUTH syntax error", b("AUTH a b c\r\n")),
        ("AUTH no args", b("AUTH\r\n")),
        ("AUTH ok", b("AUTH secret\r\nGET x\r\nSET x 1\r\nGET x\r\n")),
        ("AUTH default ok", b("AUTH default secret\r\nGET y\r\n")),
        ("after AUTH big multibulk is fine", format!("{auth}*11\r\n").into_bytes()),
        ("after AUTH big bulk is fine", format!("{auth}*1\r\n$16385\r\n").into_bytes()),
        (
            "after AUTH 11 args",
            format!("{auth}MSET a 1 b 2 c 3 d 4 e 5\r\nMGET a b c d e\r\n").into_bytes(),
        ),
        ("HELLO 3 before AUTH", b("HELLO 3\r\n")),
        ("HELLO without args before AUTH", b("HELLO\r\n")),
        ("HELLO 3 AUTH wrong", b("HELLO 3 AUTH default wrong\r\n")),
        ("HELLO 3 AUTH ok", b("HELLO 3 AUTH default secret\r\nGET nosuch\r\nPING\r\n")),
        ("HELLO 2 AUTH ok", b("HELLO 2 AUTH default secret\r\nGET nosuch\r\n")),
        ("HELLO 3 AUTH wrong user", b("HELLO 3 AUTH nobody secret\r\n")),
        ("HELLO 3 AUTH missing password", b("HELLO 3 AUTH default\r\n")),
        ("HELLO 4 AUTH", b("HELLO 4 AUTH default secret\r\n")),
        ("HELLO 3 AUTH SETNAME", b("HELLO 3 AUTH default secret SETNAME me\r\nCLIENT GETNAME\r\n")),
        ("QUIT before AUTH", b("QUIT\r\n")),
        ("RESET before AUTH", b("RESET\r\nGET x\r\n")),
        ("RESET after AUTH deauthenticates", b("AUTH secret\r\nRESET\r\nGET x\r\n")),
        ("protocol error before AUTH", b("*abc\r\n")),
    ];
    let failures = compare_cases(ts.port, rs.port, &cases);
    assert_alive(&mut ts);
    assert!(failures.is_empty(), "{} auth mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// 1,000 commands in one write, keys spread across shards: replies in order
/// and byte-identical to Redis.
#[test]
fn pipelining_1000_commands() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let mut data = Vec::new();
    let mut n = 0;
    for i in 0..200 {
        let k = format!("p{i}");
        let k2 = format!("p{}", i + 1);
        data.extend(encode_command(&[b"SET", k.as_bytes(), format!("v{i}").as_bytes()]));
        data.extend(encode_command(&[b"GET", k.as_bytes()]));
        data.extend(encode_command(&[b"INCR", format!("c{}", i % 7).as_bytes()]));
        data.extend(encode_command(&[b"MGET", k.as_bytes(), k2.as_bytes(), b"p0"]));
        if i % 2 == 0 {
            data.extend(format!("APPEND {k} x\r\n").into_bytes()); // inline in the middle
        } else {
            data.extend(encode_command(&[b"EXISTS", k.as_bytes(), b"p0", b"nosuch"]));
        }
        n += 5;
    }
    assert_eq!(n, 1000);
    // the shards really are mixed
    let shards: std::collections::BTreeSet<usize> = (0..200).map(|i| local_shard_of(format!("p{i}").as_bytes(), 2)).collect();
    assert_eq!(shards.len(), 2);
    let mut t = ts.client();
    let mut r = rs.client();
    t.send_raw(&data);
    r.send_raw(&data);
    for i in 0..n {
        let rr = r.read_reply_raw();
        let tr = t.read_reply_raw();
        assert_eq!(escape(&tr), escape(&rr), "pipelined reply #{i} differs");
    }
    // nothing extra
    assert_eq!(t.read_until_close(Duration::from_millis(300)), (Vec::new(), false));
    // a pipeline of 1000 PINGs and GETs written in one go, read after the write
    let mut data = Vec::new();
    for i in 0..1000 {
        data.extend(encode_command(&[b"GET", format!("p{}", i % 250).as_bytes()]));
    }
    t.send_raw(&data);
    r.send_raw(&data);
    for i in 0..1000 {
        let rr = r.read_reply_raw();
        let tr = t.read_reply_raw();
        assert_eq!(escape(&tr), escape(&rr), "second pipeline reply #{i} differs");
    }
}

/// The same request stream written byte by byte produces the same replies.
#[test]
fn split_frames_byte_by_byte() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let mut data = Vec::new();
    data.extend(encode_command(&[b"SET", b"a", b"hello\r\nworld"]));
    data.extend(encode_command(&[b"SET", b"b", b""]));
    data.extend(b"GET a\r\n");
    data.extend(encode_command(&[b"MGET", b"a", b"b", b"c"]));
    data.extend(b"ECHO \"quoted \\x41 arg\"\n");
    data.extend(encode_command(&[b"ECHO", &vec![b'z'; 3000]]));
    data.extend(b"\r\n");
    data.extend(encode_command(&[b"PING"]));
    data.extend(b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n");
    let expected = 8;
    let mut t = ts.client();
    let mut r = rs.client();
    for (i, byte) in data.iter().enumerate() {
        t.send_raw(&[*byte]);
        r.send_raw(&[*byte]);
        if i < 120 {
            std::thread::sleep(Duration::from_millis(1)); // force separate segments
        }
    }
    for i in 0..expected {
        let rr = r.read_reply_raw();
        let tr = t.read_reply_raw();
        assert_eq!(escape(&tr), escape(&rr), "reply #{i} differs");
    }
    assert_eq!(t.read_until_close(Duration::from_millis(300)), (Vec::new(), false));
    // random split points
    let mut seed = 7u64;
    for round in 0..20 {
        let mut i = 0;
        while i < data.len() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = 1 + (seed >> 33) as usize % 50;
            let end = (i + len).min(data.len());
            t.send_raw(&data[i..end]);
            r.send_raw(&data[i..end]);
            i = end;
        }
        for j in 0..expected {
            let rr = r.read_reply_raw();
            let tr = t.read_reply_raw();
            assert_eq!(escape(&tr), escape(&rr), "round {round} reply #{j} differs");
        }
    }
}

/// Clients that disconnect mid-frame (or with lots of unread output) must not
/// disturb the server.
#[test]
fn client_closing_mid_frame_does_not_crash() {
    let mut ts = TesseraServer::start(2, &[]);
    let big = "x".repeat(100_000);
    {
        let mut c = ts.client();
        assert_eq!(c.cmd(&["SET", "big", &big]), b"+OK\r\n");
    }
    let partials: Vec<Vec<u8>> = vec![
        b("*3\r\n$3\r\nSET\r\n$1\r\na"),
        b("*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\nhel"),
        b("*3\r\n"),
        b("*"),
        b("*3\r\n$3"),
        b("SET a \"unterminated"),
        b("SET a b"),
        {
            let mut v = b("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n");
            v.extend(vec![b'y'; 100_000]);
            v
        },
    ];
    for p in &partials {
        let mut c = ts.raw_client();
        c.send_raw(p);
        drop(c);
    }
    // lots of pending output, never read
    for _ in 0..5 {
        let mut c = ts.raw_client();
        let mut data = Vec::new();
        for _ in 0..200 {
            data.extend(encode_command(&[b"GET", b"big"]));
        }
        let _ = c.try_send_raw(&data);
        std::thread::sleep(Duration::from_millis(20));
        drop(c);
    }
    // half-closed: shut down our write side after a complete command
    {
        let mut c = ts.raw_client();
        c.send_raw(b"PING\r\n");
        c.shutdown_write();
        let (got, _) = c.read_until_close(Duration::from_secs(2));
        assert_eq!(escape(&got), escape(b"+PONG\r\n"), "reply to a command sent before shutdown(SHUT_WR)");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_alive(&mut ts);
    let mut c = ts.client();
    assert_eq!(c.cmd(&["GET", "a"]), b"$-1\r\n", "no partial SET may have been executed");
    assert_eq!(c.cmd(&["EXISTS", "k"]), b":0\r\n");
    assert_eq!(c.cmd(&["STRLEN", "big"]), b":100000\r\n");
}

/// Inline commands compared with Redis byte for byte.
#[test]
fn inline_commands_match_redis() {
    let mut ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("inline set/get", b("SET a \"hello world\"\r\nGET a\r\n")),
        ("hex escapes", b("ECHO \"\\x41\\x4a\\x00\\xff\"\r\n")),
        ("bad hex escape kept literally", b("ECHO \"\\xzz\"\r\n")),
        ("escapes", b("ECHO \"\\n\\r\\t\\b\\a\\\\\\\"\"\r\n")),
        ("single quote escape", b("ECHO 'it\\'s'\r\n")),
        ("empty quoted args", b("ECHO \"\"\r\nECHO ''\r\n")),
        ("tabs and spaces", b("\tECHO\t  x\t\r\n")),
        ("unknown inline", b("nosuch a b\r\n")),
        ("inline wrong arity", b("GET\r\n")),
        ("inline with trailing spaces", b("PING   \r\n")),
        ("only spaces", b("   \r\nPING\r\n")),
        (
            "mixed multibulk and inline",
            b("*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\nECHO y\r\n"),
        ),
        ("lowercase command", b("ping\r\n")),
        ("CR only is part of the line", b("PING\rPING\r\n")),
    ];
    let failures = compare_cases(ts.port, rs.port, &cases);
    assert_alive(&mut ts);
    assert!(failures.is_empty(), "{} inline mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// The harness' own RESP2/RESP3 frame reader (no server involved).
#[test]
fn harness_resp_frame_parser() {
    let frames: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR x\r\n",
        b":-12\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"_\r\n",
        b"$0\r\n\r\n",
        b"$5\r\na\r\nbc\r\n",
        b",3.14\r\n",
        b",inf\r\n",
        b"#t\r\n",
        b"(12345678901234567890\r\n",
        b"!5\r\nERR x\r\n",
        b"=8\r\ntxt:abcd\r\n",
        b"*2\r\n*1\r\n:1\r\n%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n",
        b"%2\r\n$2\r\nid\r\n:7\r\n$1\r\nx\r\n*0\r\n",
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n",
        b"|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n",
    ];
    for f in frames {
        assert_eq!(frame_len(f).unwrap(), Some(f.len()), "{}", escape(f));
        for cut in 0..f.len() {
            assert_eq!(frame_len(&f[..cut]).unwrap(), None, "prefix {} of {}", cut, escape(f));
        }
        assert_eq!(Value::parse(f).encode(), f.to_vec(), "round trip of {}", escape(f));
    }
    let mut two = b"+a\r\n".to_vec();
    two.extend(b":1\r\n");
    assert_eq!(frame_len(&two).unwrap(), Some(4));
    assert!(frame_len(b"?x\r\n").is_err());
    let hello = Value::parse(b"%2\r\n$2\r\nid\r\n:7\r\n$1\r\nx\r\n*0\r\n");
    assert_eq!(normalize_hello_id(&hello).encode(), b"%2\r\n$2\r\nid\r\n:0\r\n$1\r\nx\r\n*0\r\n".to_vec());
}
