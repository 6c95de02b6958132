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

// ---------------------------------------------------------------------------
// Connection robustness: resumable parsing, output buffer limits, the
// cross-protocol-scripting guard, CLIENT LIST buffer fields.
// ---------------------------------------------------------------------------

/// `MSET big <big_len bytes> k0 v0 k1 v1 ...` with `pairs` 1000-byte values.
fn big_mset(tag: &str, big_len: usize, pairs: usize) -> Vec<u8> {
    let big: Vec<u8> = (0..big_len).map(|i| b'a' + (i % 26) as u8).collect();
    let keys: Vec<String> = (0..pairs).map(|i| format!("{tag}:{i}")).collect();
    let vals: Vec<Vec<u8>> = (0..pairs).map(|i| format!("{i:>1000}").into_bytes()).collect();
    let bigkey = format!("{tag}:big");
    let mut args: Vec<&[u8]> = vec![b"MSET", bigkey.as_bytes(), &big];
    for (k, v) in keys.iter().zip(&vals) {
        args.push(k.as_bytes());
        args.push(v);
    }
    encode_command(&args)
}

/// Sends `req` in `chunk`-byte writes and returns how long until its reply came.
/// CPU time the server's threads have used so far (ns, from schedstat):
/// unlike the client's wall clock it does not depend on how the kernel
/// happened to batch the small writes into reads, or on what else runs.
fn server_cpu_ns(pid: u32) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("server tasks").flatten() {
        if let Ok(st) = std::fs::read_to_string(t.path().join("schedstat")) {
            total += st.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

/// Sends `req` in `chunk`-byte writes; returns (wall time, server CPU ns).
fn timed_send(c: &mut Client, pid: u32, req: &[u8], chunk: usize) -> (Duration, u64) {
    let cpu0 = server_cpu_ns(pid);
    let t = std::time::Instant::now();
    for part in req.chunks(chunk) {
        c.send_raw(part);
    }
    assert_eq!(c.read_reply_raw(), b"+OK\r\n");
    (t.elapsed(), server_cpu_ns(pid) - cpu0)
}

/// A multibulk request arriving in many small reads is parsed in linear time:
/// the parser resumes where it stopped instead of re-parsing every argument
/// parsed so far on each read (which made an 8x bigger request ~64x costlier).
/// Measured as the server's CPU, the best of three runs of each size.
#[test]
fn huge_multibulk_in_small_chunks_parses_in_linear_time() {
    let ts = TesseraServer::start(1, &[]);
    let mut c = ts.client();
    // ~12.5 MB and ~100 MB: one big argument (read into its own buffer) and many small ones.
    let small = big_mset("s", 4 << 20, 8_500);
    let large = big_mset("l", 32 << 20, 68_000);
    assert!(large.len() > 100_000_000);
    // How the kernel batches the small writes into the server's reads varies
    // from run to run (the same send costs 15 or 100 ms): the best of three
    // alternating runs of each size compares like with like.
    let (mut w_small, mut c_small, mut w_large, mut c_large) = (Duration::MAX, u64::MAX, Duration::MAX, u64::MAX);
    for _ in 0..3 {
        let (w, cpu) = timed_send(&mut c, ts.pid, &small, 1024);
        (w_small, c_small) = (w_small.min(w), c_small.min(cpu));
        let (w, cpu) = timed_send(&mut c, ts.pid, &large, 1024);
        (w_large, c_large) = (w_large.min(w), c_large.min(cpu));
    }
    let ratio = c_large as f64 / c_small.max(1) as f64;
    eprintln!(
        "{} bytes: server CPU {:.1} ms (wall {:?}); {} bytes: server CPU {:.1} ms (wall {:?}); CPU ratio {ratio:.1}",
        small.len(),
        c_small as f64 / 1e6,
        w_small,
        large.len(),
        c_large as f64 / 1e6,
        w_large
    );
    assert!(ratio < 30.0, "8x the bytes took {ratio:.1}x the server CPU ({c_small} ns vs {c_large} ns)");
    assert_eq!(c.cmd(&["STRLEN", "l:big"]), b":33554432\r\n");
    // byte i of the big value is b'a' + i % 26
    assert_eq!(c.cmd(&["GETRANGE", "l:big", "33554429", "-1"]), b"$3\r\nzab\r\n");
    assert_eq!(c.cmd(&["GETRANGE", "l:big", "0", "3"]), b"$4\r\nabcd\r\n");
    assert_eq!(c.cmd(&["STRLEN", "l:67999"]), b":1000\r\n");
    assert_eq!(c.cmd(&["GETRANGE", "l:67999", "995", "-1"]), b"$5\r\n67999\r\n");
    assert_eq!(c.cmd(&["STRLEN", "s:big"]), b":4194304\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), b":76502\r\n");
}

/// client-query-buffer-limit counts what is received and not yet parsed into
/// arguments (Redis's querybuf), including a big argument being received.
#[test]
fn query_buffer_limit_closes_like_redis() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    for port in [ts.port, rs.port] {
        let mut admin = Client::connect(port);
        assert_eq!(admin.cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"]), b"+OK\r\n");
        // A 3 MB argument: closed once 1 MB of it arrived, without a reply.
        let mut c = Client::connect(port);
        c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n");
        let _ = c.try_send_raw(&vec![b'x'; 2_000_000]);
        let (got, closed) = c.read_until_close(Duration::from_secs(3));
        assert!(got.is_empty() && closed, "port {port}: {} then closed={closed}", escape(&got));
        // Many small complete arguments are not query buffer: a 2 MB MSET passes.
        let mut c = Client::connect(port);
        let req = big_mset("q", 0, 2000);
        for part in req.chunks(4096) {
            c.send_raw(part);
        }
        assert_eq!(c.read_reply_raw(), b"+OK\r\n", "port {port}");
        assert_eq!(admin.cmd(&["STRLEN", "q:1999"]), b":1000\r\n");
    }
    assert!(
        ts.log().contains("Closing client that reached max query buffer length: id="),
        "{}",
        ts.log_tail(20)
    );
}

/// `client-output-buffer-limit normal 1mb 0 0`: a client that pipelines GETs
/// of a 100 KB value without reading is disconnected (and logged as Redis
/// does); one that reads each reply is not. Checked against Redis too.
#[test]
fn output_buffer_hard_limit_disconnects_like_redis() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let value = vec![b'v'; 100 * 1024];
    for port in [ts.port, rs.port] {
        let mut admin = Client::connect(port);
        assert_eq!(admin.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 0 0"]), b"+OK\r\n");
        assert_eq!(admin.cmd_bytes(&[b"SET", b"big", &value]), b"+OK\r\n");
        let mut greedy = Client::connect(port);
        let mut req = Vec::new();
        for _ in 0..200 {
            req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
        }
        greedy.send_raw(&req);
        std::thread::sleep(Duration::from_millis(300));
        let (got, closed) = greedy.read_until_close(Duration::from_secs(3));
        assert!(closed, "port {port}: the greedy client is still open");
        assert!(got.len() < 200 * value.len(), "port {port}: got every reply");

        let mut polite = Client::connect(port);
        for _ in 0..30 {
            let r = polite.cmd(&["GET", "big"]);
            assert_eq!(r.len(), value.len() + 11, "port {port}");
        }
        assert_eq!(polite.cmd(&["PING"]), b"+PONG\r\n");
    }
    let log = ts.log();
    assert!(
        log.contains(" scheduled to be closed ASAP for overcoming of output buffer limits.") && log.contains("# Client id="),
        "{}",
        ts.log_tail(20)
    );
}

/// The soft limit: output that stays above it for more than the soft seconds
/// closes the client even though it sends nothing more (Redis's clientsCron).
#[test]
fn output_buffer_soft_limit_closes_a_stuck_client() {
    let ts = TesseraServer::start(2, &[]);
    let mut admin = ts.client();
    assert_eq!(admin.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "normal 0 1mb 1"]), b"+OK\r\n");
    let value = vec![b'v'; 4 << 20];
    assert_eq!(admin.cmd_bytes(&[b"SET", b"big", &value]), b"+OK\r\n");
    // One 4 MB reply under no hard limit: written as far as the socket takes.
    let mut stuck = Client::connect(ts.port);
    let mut req = Vec::new();
    for _ in 0..8 {
        req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    // Eight replies in one read are 32 MB pending: far over the soft limit.
    // The test does not read: after more than 1 s the server must close it.
    stuck.send_raw(&req);
    std::thread::sleep(Duration::from_millis(3500));
    let (got, closed) = stuck.read_until_close(Duration::from_secs(3));
    assert!(closed, "still open after {} bytes", got.len());
    assert!(got.len() < 8 * value.len());
    assert!(ts.log().contains(" closed for overcoming of output buffer limits."), "{}", ts.log_tail(20));
    // A client that reads its (equally big) replies is not closed.
    let mut ok = ts.client();
    for _ in 0..3 {
        assert_eq!(ok.cmd(&["GET", "big"]).len(), value.len() + 12);
    }
    assert_eq!(ok.cmd(&["PING"]), b"+PONG\r\n");
}

/// Redis's cross protocol scripting guard: a `POST` or `Host:` command closes
/// the connection at once, without any reply (not even to earlier commands of
/// the same read), and is logged. Compared with redis-server.
#[test]
fn post_and_host_commands_abort_the_connection_like_redis() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("http request", b("POST / HTTP/1.1\r\nHost: localhost\r\n\r\nPING\r\n")),
        ("after a command of the same read", b("PING\r\nPOST /x HTTP/1.1\r\nPING\r\n")),
        ("host header as multibulk", b("*1\r\n$4\r\nPING\r\n*2\r\n$5\r\nHoSt:\r\n$1\r\nx\r\n")),
        ("lower case post inline", b("post\r\n")),
        ("POSTX is just unknown", b("*1\r\n$5\r\nPOSTX\r\n")),
        ("host without colon is just unknown", b("host x\r\n")),
    ];
    let failures = compare_cases(ts.port, rs.port, &cases);
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    let (got, closed) = observe(ts.port, b"PING\r\nPOST / HTTP/1.1\r\n");
    assert!(got.is_empty() && closed);
    let msg = "# Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. This is likely due to an attacker attempting to use Cross Protocol Scripting to compromise your Redis instance. Connection aborted.";
    assert!(rs.log().contains(msg), "redis logs it: {}", rs.log_tail(5));
    // Logged once a minute at most, as Redis.
    assert_eq!(ts.log().matches(msg).count(), 1, "{}", ts.log_tail(20));
    let mut c = ts.client();
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
}

/// The `name=value` fields of one CLIENT LIST line.
fn fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split(' ')
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// CLIENT LIST line of client `id`, as seen by `admin`.
fn client_line(admin: &mut Client, id: i64) -> std::collections::HashMap<String, String> {
    let list = admin.cmd_value(&["CLIENT", "LIST", "ID", &id.to_string()]).as_str().unwrap_or_default();
    fields(list.trim_end())
}

fn num(f: &std::collections::HashMap<String, String>, k: &str) -> usize {
    f.get(k).unwrap_or_else(|| panic!("no {k} in {f:?}")).parse().unwrap()
}

/// Polls `id`'s CLIENT LIST line until `ok` holds (the server reads and
/// writes asynchronously to the test).
fn wait_line(admin: &mut Client, id: i64, ok: impl Fn(&std::collections::HashMap<String, String>) -> bool) -> std::collections::HashMap<String, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let f = client_line(admin, id);
        if ok(&f) || std::time::Instant::now() > deadline {
            return f;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// qbuf, qbuf-free, argv-mem, obl, oll, omem, rbs, tot-mem come from the real
/// buffers. qbuf and argv-mem are compared with Redis (same definitions).
#[test]
fn client_list_buffer_fields_follow_the_buffers() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    for port in [ts.port, rs.port] {
        let mut admin = Client::connect(port);
        // Its own request is still in the query buffer and argv while CLIENT INFO runs.
        let own = fields(admin.cmd_value(&["CLIENT", "INFO"]).as_str().unwrap().trim_end());
        assert_eq!((num(&own, "qbuf"), num(&own, "argv-mem")), (26, 10), "port {port}: {own:?}");
        // Half a small request: GET parsed into argv, "ab" of the key pending.
        let mut a = Client::connect(port);
        let a_id = a.cmd_value(&["CLIENT", "ID"]).as_int().unwrap();
        a.send_raw(b"*2\r\n$3\r\nGET\r\n$5\r\nab");
        let f = wait_line(&mut admin, a_id, |f| num(f, "qbuf") == 2);
        assert_eq!((num(&f, "qbuf"), num(&f, "argv-mem")), (2, 3), "port {port}: {f:?}");
        // Part of a big argument: it is the query buffer, sized for the whole bulk.
        let mut b = Client::connect(port);
        let b_id = b.cmd_value(&["CLIENT", "ID"]).as_int().unwrap();
        b.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n");
        b.send_raw(&[b'x'; 1000]);
        let f = wait_line(&mut admin, b_id, |f| num(f, "qbuf") == 1000);
        assert_eq!((num(&f, "qbuf"), num(&f, "argv-mem")), (1000, 4), "port {port}: {f:?}");
        assert!(num(&f, "qbuf-free") >= 99002, "port {port}: {f:?}");
        if port == ts.port && ts.kind == "tessera" {
            assert_eq!(num(&f, "qbuf-free"), 99002, "{f:?}");
            assert!(num(&f, "tot-mem") > 100_000, "{f:?}");
        }
        b.send_raw(&[b'x'; 99002]);
        assert_eq!(b.read_reply_raw(), b"+OK\r\n");
        let f = wait_line(&mut admin, b_id, |f| num(f, "qbuf") == 0);
        assert_eq!((num(&f, "qbuf"), num(&f, "argv-mem")), (0, 0), "port {port}: {f:?}");
        // A reply the client does not read stays pending: obl/oll/omem show it.
        let value = vec![b'v'; 24 << 20];
        assert_eq!(admin.cmd_bytes(&[b"SET", b"huge", &value]), b"+OK\r\n");
        let mut c = Client::connect(port);
        let c_id = c.cmd_value(&["CLIENT", "ID"]).as_int().unwrap();
        c.send_raw(b"*2\r\n$3\r\nGET\r\n$4\r\nhuge\r\n");
        let f = wait_line(&mut admin, c_id, |f| num(f, "omem") > 0);
        let omem = num(&f, "omem");
        assert!(omem > 1 << 20 && omem <= 25 << 20, "port {port}: {f:?}");
        assert!(num(&f, "tot-mem") > omem, "port {port}: {f:?}");
        if port == ts.port && ts.kind == "tessera" {
            assert_eq!(num(&f, "obl"), 16384, "{f:?}");
            assert_eq!(num(&f, "oll"), omem.div_ceil(16384), "{f:?}");
        }
        let mut got = 0;
        while got < value.len() + 13 {
            let (bytes, closed) = c.read_until_close(Duration::from_millis(200));
            got += bytes.len();
            assert!(!closed, "port {port}: closed after {got} bytes");
        }
        let f = wait_line(&mut admin, c_id, |f| num(f, "omem") == 0);
        assert_eq!((num(&f, "obl"), num(&f, "oll"), num(&f, "omem")), (0, 0, 0), "port {port}: {f:?}");
        drop(a);
    }
}

/// After one huge request and one huge reply, a connection's buffers go back
/// to their usual size instead of pinning that memory. Tessera-only: Redis
/// gives its query buffer back later, from clientsCron (2 s idle or peak/2).
#[test]
fn buffers_shrink_after_a_huge_request_and_reply() {
    let ts = TesseraServer::start(1, &[]);
    let mut c = ts.client();
    let fresh = fields(c.cmd_value(&["CLIENT", "INFO"]).as_str().unwrap().trim_end());
    // 2 MB of small arguments all live in the read buffer until the command runs.
    let req = big_mset("m", 0, 2000);
    c.send_raw(&req);
    assert_eq!(c.read_reply_raw(), b"+OK\r\n");
    let value = vec![b'v'; 8 << 20];
    assert_eq!(c.cmd_bytes(&[b"SET", b"huge", &value]), b"+OK\r\n");
    assert_eq!(c.cmd(&["GET", "huge"]).len(), value.len() + 12);
    let after = fields(c.cmd_value(&["CLIENT", "INFO"]).as_str().unwrap().trim_end());
    assert_eq!(num(&after, "rbs"), num(&fresh, "rbs"), "{after:?}");
    assert!(num(&after, "tot-mem") < num(&fresh, "tot-mem") + 64 * 1024, "fresh {fresh:?}\nafter {after:?}");
}
