//! Process-level behaviour: startup with various shard counts, SIGTERM,
//! SHUTDOWN, config errors, config files, runtime config, cross-shard
//! effects of DEBUG SLEEP / CLIENT KILL / CONFIG SET requirepass, idle
//! timeout, and redis-cli compatibility.

mod common;

use common::*;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

fn basic_ops(server: &TesseraServer, shards: usize) {
    let mut c = server.client();
    let keys: Vec<String> = (0..100).map(|i| format!("key:{i}")).collect();
    let used: std::collections::BTreeSet<usize> = keys.iter().map(|k| local_shard_of(k.as_bytes(), shards)).collect();
    assert_eq!(used.len(), shards, "test keys should cover every shard");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.cmd(&["SET", k, &i.to_string()]), b"+OK\r\n");
    }
    assert_eq!(c.cmd(&["DBSIZE"]), b":100\r\n");
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(|k| k.as_str()));
    let v = c.cmd_value(&args);
    let arr = v.as_array().expect("MGET array");
    for (i, x) in arr.iter().enumerate() {
        assert_eq!(x.as_bytes(), Some(i.to_string().as_bytes()));
    }
    assert_eq!(c.cmd(&["INCR", "key:7"]), b":8\r\n");
    assert_eq!(c.cmd(&["RENAME", "key:1", "key:2"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), b":99\r\n");
    let mut args = vec!["DEL"];
    args.extend(keys.iter().map(|k| k.as_str()));
    assert_eq!(c.cmd(&args), b":99\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), b":0\r\n");
    // many connections (spread over shards by SO_REUSEPORT) all see the same data
    assert_eq!(c.cmd(&["SET", "shared", "x"]), b"+OK\r\n");
    for _ in 0..8 {
        let mut o = server.client();
        assert_eq!(o.cmd(&["GET", "shared"]), b"$1\r\nx\r\n");
    }
}

#[test]
fn starts_with_1_shard() {
    let s = TesseraServer::start(1, &[]);
    basic_ops(&s, 1);
}

#[test]
fn starts_with_3_shards() {
    let s = TesseraServer::start(3, &[]);
    basic_ops(&s, 3);
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut s = TesseraServer::start(2, &[]);
    let mut idle = s.client();
    let mut busy = s.client();
    assert_eq!(busy.cmd(&["SET", "a", "1"]), b"+OK\r\n");
    let t0 = Instant::now();
    s.signal(libc::SIGTERM);
    let st = s
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("did not exit within 5 s of SIGTERM\n{}", s.log_tail(50)));
    assert_eq!(st.code(), Some(0), "exit status after SIGTERM: {st:?}\n{}", s.log_tail(50));
    eprintln!("SIGTERM -> exit 0 in {:?}", t0.elapsed());
    assert!(
        idle.closed_within(Duration::from_secs(2)),
        "client connection still open after the server exited"
    );
}

fn shutdown_case(args: &[&str]) {
    // Redis: no reply, the connection is closed, exit code 0
    let mut r = RedisServer::start(&[]);
    let mut rc = r.client();
    rc.send_strs(args);
    let rres = rc.read_until_close(Duration::from_secs(5));
    let rst = r.wait_exit(Duration::from_secs(5));
    assert_eq!(rst.and_then(|s| s.code()), Some(0), "redis-server exit after {args:?}");

    let mut s = TesseraServer::start(2, &[]);
    let mut bystanders: Vec<Client> = (0..4).map(|_| s.client()).collect();
    for b in bystanders.iter_mut() {
        assert_eq!(b.cmd(&["PING"]), b"+PONG\r\n");
    }
    let mut c = s.client();
    c.send_strs(args);
    let tres = c.read_until_close(Duration::from_secs(5));
    assert_eq!(
        (escape(&tres.0), tres.1),
        (escape(&rres.0), rres.1),
        "{args:?}: (bytes received, connection closed) differ from Redis"
    );
    let st = s
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{args:?}: process still running 5 s later\n{}", s.log_tail(50)));
    assert_eq!(st.code(), Some(0), "{args:?}: exit status {st:?}\n{}", s.log_tail(50));
    for b in bystanders.iter_mut() {
        assert!(b.closed_within(Duration::from_secs(2)), "other connections must be closed too");
    }
}

#[test]
fn shutdown_exits_zero_and_closes_connection() {
    shutdown_case(&["SHUTDOWN"]);
}

#[test]
fn shutdown_nosave_exits_zero_and_closes_connection() {
    shutdown_case(&["SHUTDOWN", "NOSAVE"]);
}

#[test]
fn shutdown_bad_option_is_an_error_like_redis() {
    let s = TesseraServer::start(2, &[]);
    let r = RedisServer::start(&[]);
    let reply = |c: &mut Client, args: &[&str]| -> String {
        c.send_strs(args);
        match c.try_read_reply_raw() {
            Ok(b) => escape(&b),
            Err(e) => format!("<no reply: {e:?}>"),
        }
    };
    for args in [&["SHUTDOWN", "FOO"][..], &["SHUTDOWN", "NOSAVE", "SAVE"][..], &["SHUTDOWN", "ABORT"][..]] {
        let rr = reply(&mut r.client(), args);
        let tr = reply(&mut s.client(), args);
        assert_eq!(tr, rr, "{args:?}: tessera (left) vs redis (right)");
    }
    assert_eq!(s.client().cmd(&["PING"]), b"+PONG\r\n");
}

fn expect_config_error(args: &[&str]) {
    expect_config_error_on(args, true)
}

/// `stderr_only`: the message must be on stderr (Redis logs some fatal
/// errors, e.g. a missing config file, to stdout; then either will do).
fn expect_config_error_on(args: &[&str], stderr_only: bool) {
    let out = run_tessera_to_exit(args, Duration::from_secs(10));
    let st = out
        .status
        .unwrap_or_else(|| panic!("{args:?}: still running after 10 s (killed); stderr: {}", out.stderr));
    assert!(!st.success(), "{args:?} must exit non-zero, got {st:?}");
    let msg = if stderr_only {
        out.stderr.clone()
    } else {
        format!("{}{}", out.stderr, out.stdout)
    };
    assert!(!msg.trim().is_empty(), "{args:?}: expected a message on stderr (stdout was {:?})", out.stdout);
    eprintln!("{args:?} -> {st:?}, stderr: {}", out.stderr.trim());
}

#[test]
fn bad_config_exits_nonzero_with_message() {
    let p = free_port().to_string();
    expect_config_error(&["--port", "abc"]);
    expect_config_error(&["--port", "70000"]);
    expect_config_error(&["--port", &p, "--maxclients", "0"]);
    expect_config_error(&["--port", &p, "--maxmemory-policy", "bogus"]);
    expect_config_error(&["--port", &p, "--databases", "abc"]);
    expect_config_error(&["--port", &p, "--no-such-directive", "1"]);
    expect_config_error_on(&["/nonexistent/dir/tessera.conf", "--port", &p], false);
}

#[test]
fn config_file_with_quotes_and_include() {
    let dir = temp_dir("conf");
    let inc = dir.join("inc.conf");
    fs::write(&inc, "# included\ndatabases 5\nhz 20\n").unwrap();
    let main = dir.join("main.conf");
    fs::write(
        &main,
        format!(
            "# main config\n\nrequirepass \"pass word\"\ninclude \"{}\"\nmaxmemory-policy 'allkeys-lru'\n   timeout    300   \n",
            inc.display()
        ),
    )
    .unwrap();
    let opts = StartOpts {
        config_file: Some(&main),
        password: Some("pass word"),
        ..Default::default()
    };
    let s = TesseraServer::start_opts(2, opts.clone());
    let r = RedisServer::start_opts(opts);
    let mut tc = s.client(); // AUTH "pass word" succeeded
    let mut rc = r.client();
    for args in [
        &["CONFIG", "GET", "databases"][..],
        &["CONFIG", "GET", "hz"][..],
        &["CONFIG", "GET", "maxmemory-policy"][..],
        &["CONFIG", "GET", "timeout"][..],
        &["CONFIG", "GET", "requirepass"][..],
        &["SELECT", "4"][..],
        &["SELECT", "5"][..],
    ] {
        let (t, rr) = (tc.cmd(args), rc.cmd(args));
        assert_eq!(escape(&t), escape(&rr), "{args:?}");
    }
    let mut raw = s.raw_client();
    assert!(raw.cmd(&["GET", "x"]).starts_with(b"-NOAUTH"));
    assert_eq!(raw.cmd(&["AUTH", "pass word"]), b"+OK\r\n");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn databases_4_then_select_4_errors_like_redis() {
    let s = TesseraServer::start(2, &["--databases", "4"]);
    let r = RedisServer::start(&["--databases", "4"]);
    let mut tc = s.client();
    let mut rc = r.client();
    for args in [
        &["SELECT", "3"][..],
        &["SET", "k", "v"][..],
        &["SELECT", "4"][..],
        &["SELECT", "16"][..],
        &["CONFIG", "GET", "databases"][..],
        &["MOVE", "k", "4"][..],
        &["MOVE", "k", "0"][..],
        &["COPY", "k", "k2", "DB", "4"][..],
        &["SELECT", "0"][..],
        &["GET", "k"][..],
    ] {
        let (t, rr) = (tc.cmd(args), rc.cmd(args));
        assert_eq!(escape(&t), escape(&rr), "{args:?}");
    }
}

#[test]
fn config_set_requirepass_applies_on_every_shard() {
    let s = TesseraServer::start(2, &[]);
    let mut admin = s.client();
    assert_eq!(admin.cmd(&["CONFIG", "SET", "requirepass", "newpass"]), b"+OK\r\n");
    // the connection that set it stays authenticated (as in Redis)
    assert_eq!(admin.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    let mut conns: Vec<Client> = (0..8).map(|_| s.raw_client()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.cmd(&["GET", "k"]);
        assert_eq!(escape(&r), escape(b"-NOAUTH Authentication required.\r\n"), "new connection #{i} before AUTH");
        let r = c.cmd(&["AUTH", "wrong"]);
        assert_eq!(escape(&r), escape(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"));
        assert_eq!(c.cmd(&["AUTH", "newpass"]), b"+OK\r\n", "connection #{i}");
        assert_eq!(c.cmd(&["GET", "k"]), b"$1\r\nv\r\n", "connection #{i}");
    }
    // and back: no password needed on new connections of every shard
    assert_eq!(admin.cmd(&["CONFIG", "SET", "requirepass", ""]), b"+OK\r\n");
    for i in 0..8 {
        let mut c = s.raw_client();
        assert_eq!(c.cmd(&["GET", "k"]), b"$1\r\nv\r\n", "connection #{i} after clearing requirepass");
    }
}

#[test]
fn debug_sleep_stalls_every_shard() {
    let s = TesseraServer::start(2, &[]);
    let mut others: Vec<Client> = (0..8).map(|_| s.client()).collect();
    for o in others.iter_mut() {
        assert_eq!(o.cmd(&["PING"]), b"+PONG\r\n");
    }
    let mut sleeper = s.client();
    let t0 = Instant::now();
    sleeper.send_strs(&["DEBUG", "SLEEP", "0.3"]);
    std::thread::sleep(Duration::from_millis(50));
    for o in others.iter_mut() {
        o.send_strs(&["PING"]);
    }
    for (i, o) in others.iter_mut().enumerate() {
        assert_eq!(o.read_reply_raw(), b"+PONG\r\n");
        let e = t0.elapsed();
        assert!(
            e >= Duration::from_millis(250),
            "connection #{i} was answered {e:?} after DEBUG SLEEP 0.3 started: not stalled"
        );
    }
    assert_eq!(sleeper.read_reply_raw(), b"+OK\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // and afterwards everything is fast again
    let t1 = Instant::now();
    for o in others.iter_mut() {
        assert_eq!(o.cmd(&["PING"]), b"+PONG\r\n");
    }
    assert!(t1.elapsed() < Duration::from_millis(250), "still slow after DEBUG SLEEP: {:?}", t1.elapsed());
}

#[test]
fn idle_timeout_closes_idle_clients() {
    let s = TesseraServer::start(2, &["--timeout", "1"]);
    let mut idle: Vec<Client> = (0..4).map(|_| s.client()).collect();
    let mut active = s.client();
    for c in idle.iter_mut() {
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    }
    let t0 = Instant::now();
    // keep one client active for 2.5 s
    while t0.elapsed() < Duration::from_millis(2500) {
        assert_eq!(active.cmd(&["PING"]), b"+PONG\r\n", "an active client must not be closed by the idle timeout");
        std::thread::sleep(Duration::from_millis(250));
    }
    for (i, c) in idle.iter_mut().enumerate() {
        let (bytes, closed) = c.read_until_close(Duration::from_millis(3000));
        assert!(
            closed,
            "idle connection #{i} still open {:?} after its last command with timeout 1",
            t0.elapsed()
        );
        assert!(bytes.is_empty(), "nothing is sent when closing idle clients, got {}", escape(&bytes));
    }
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!(active.cmd(&["PING"]), b"+PONG\r\n");
    // CONFIG SET timeout 0 disables it
    assert_eq!(active.cmd(&["CONFIG", "SET", "timeout", "0"]), b"+OK\r\n");
    let mut c = s.client();
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    assert!(!c.closed_within(Duration::from_millis(2500)), "timeout 0 must not close idle clients");
}

#[test]
fn client_kill_id_across_shards() {
    let s = TesseraServer::start(2, &[]);
    let mut admin = s.client();
    let mut victims: Vec<Client> = (0..8).map(|_| s.client()).collect();
    let ids: Vec<String> = victims
        .iter_mut()
        .map(|c| c.cmd_value(&["CLIENT", "ID"]).as_int().unwrap().to_string())
        .collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), ids.len(), "client ids must be unique across shards: {ids:?}");
    // CLIENT LIST ID sees connections of every shard
    let mut args = vec!["CLIENT", "LIST", "ID"];
    args.extend(ids.iter().map(|s| s.as_str()));
    let list = admin.cmd_value(&args).as_str().unwrap();
    assert_eq!(list.lines().count(), 8, "CLIENT LIST ID ... should list all 8 connections:\n{list}");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", id]), b":1\r\n", "CLIENT KILL ID {id}");
        assert!(victims[i].closed_within(Duration::from_secs(2)), "connection {id} not closed by CLIENT KILL");
    }
    for id in &ids {
        assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", id]), b":0\r\n");
    }
    assert_eq!(admin.cmd(&["PING"]), b"+PONG\r\n");
    // a killed client's commands pipelined before the kill are not a problem
    let mut v = s.client();
    let id = v.cmd_value(&["CLIENT", "ID"]).as_int().unwrap().to_string();
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", &id]), b":1\r\n");
    assert!(v.closed_within(Duration::from_secs(2)));
}

#[test]
fn redis_cli_works() {
    let s = TesseraServer::start(2, &[]);
    let port = s.port.to_string();
    let run = |args: &[&str]| -> String {
        let out = Command::new("redis-cli").arg("-p").arg(&port).args(args).output().expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(&["ping"]), "PONG\n");
    assert_eq!(run(&["set", "foo", "bar baz"]), "OK\n");
    assert_eq!(run(&["get", "foo"]), "bar baz\n");
    assert_eq!(run(&["incr", "n"]), "1\n");
    assert_eq!(run(&["mget", "foo", "n", "nosuch"]), "bar baz\n1\n\n");
    assert_eq!(run(&["-3", "get", "nosuch"]), "\n");
    // interactive mode reading commands from stdin (redis-cli issues COMMAND DOCS / HELLO there)
    let mut child = Command::new("redis-cli")
        .arg("-p")
        .arg(&port)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"ping\nget foo\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "PONG\nbar baz\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
