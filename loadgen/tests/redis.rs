//! End-to-end tests of tessera-loadgen against a real redis-server started on
//! a free port. Every server is owned by a guard that kills it on drop (also
//! when the test panics), and the child gets PR_SET_PDEATHSIG so it dies with
//! the test process even if the guard never runs.
//!
//! The tests take a global lock so that they run one at a time: several of
//! them drive the server at full speed and would disturb the latency
//! assertions of the others on a 2-core machine.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const BIN: &str = env!("CARGO_BIN_EXE_tessera-loadgen");

fn find_redis() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push("/usr/bin".into());
    dirs.push("/usr/local/bin".into());
    dirs.into_iter().map(|d| d.join("redis-server")).find(|p| p.is_file())
}

struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start redis-server on a free port, or None (with a message) if it is not installed.
fn start_redis() -> Option<Redis> {
    let Some(bin) = find_redis() else {
        eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server); test not run");
        return None;
    };
    for _attempt in 0..5 {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tessera-loadgen-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"])
            .args(["--enable-debug-command", "yes"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; kill the server if the test process dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn redis-server");
        let mut r = Redis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = r.child.try_wait() {
                break; // exited (port taken?): retry with another port
            }
            if let Ok(reply) = command(port, "PING") {
                if reply.starts_with("+PONG") {
                    return Some(r);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(r);
    }
    panic!("could not start redis-server");
}

/// Send one inline command on a fresh connection and return the first reply line.
fn command(port: u16, cmd: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).to_string())
}

fn loadgen(port: u16, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tessera-loadgen");
    eprintln!("tessera-loadgen {args:?} -> {:?}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn json_of(out: &Output) -> Value {
    let s = String::from_utf8(out.stdout.clone()).expect("utf8 stdout");
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {s}"))
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p).unwrap_or_else(|| panic!("missing {path:?} in {v}"));
    }
    cur.as_f64().unwrap_or_else(|| panic!("{path:?} is not a number: {cur}"))
}

fn check_latency(v: &Value, what: &str) {
    let keys = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];
    let mut prev = 0.0;
    for k in keys {
        let x = v
            .get(k)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{what}: latency_us.{k} missing: {v}"));
        assert!(x >= prev, "{what}: {k}={x} < previous {prev}");
        prev = x;
    }
}

#[test]
fn json_output_matches_schema() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    let out = loadgen(
        r.port,
        &["--duration", "1s", "-c", "4", "-P", "4", "--ratio", "1:1", "--keys", "1000", "--json"],
    );
    assert!(out.status.success());
    let d = json_of(&out);
    let tp = num(&d, &["throughput_ops_per_sec"]);
    assert!(tp > 0.0);
    let req = d["requests"].as_u64().expect("requests is an integer");
    assert!(req > 0);
    let dur = num(&d, &["duration_secs"]);
    assert!((dur - 1.0).abs() < 1e-6, "duration {dur}");
    assert!((tp - req as f64 / dur).abs() / tp < 0.01);
    check_latency(&d["latency_us"], "total");
    let per = d["per_command"].as_object().expect("per_command object");
    assert_eq!(per.len(), 2);
    let mut sum = 0u64;
    for name in ["SET", "GET"] {
        let c = &per[name];
        assert!(num(c, &["throughput_ops_per_sec"]) > 0.0);
        check_latency(&c["latency_us"], name);
        sum += c["requests"].as_u64().unwrap();
    }
    assert_eq!(sum, req);
    assert!(d["errors"].as_object().expect("errors object").is_empty(), "{}", d["errors"]);
    let cfg = d["config"].as_object().expect("config object");
    for k in [
        "host",
        "port",
        "threads",
        "connections",
        "pipeline",
        "ratio",
        "keys",
        "key_prefix",
        "distribution",
        "data_size",
        "duration",
        "warmup",
        "rate",
        "resp",
        "load_model",
        "json",
    ] {
        assert!(cfg.contains_key(k), "config.{k} missing: {cfg:?}");
    }
    assert_eq!(cfg["port"].as_u64(), Some(r.port as u64));
    assert_eq!(cfg["load_model"], "closed");
}

/// Coordinated omission: a 0.5 s server stall in the middle of the run.
#[test]
fn open_loop_sees_stall_closed_loop_hides_it() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    let port = r.port;
    let run = |extra: &[&str]| {
        let staller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2500));
            command(port, "DEBUG SLEEP 0.5").expect("DEBUG SLEEP")
        });
        let mut args = vec!["--duration", "5", "-c", "10", "-P", "1", "--keys", "10000", "--json"];
        args.extend_from_slice(extra);
        let out = loadgen(port, &args);
        let reply = staller.join().unwrap();
        assert!(reply.starts_with("+OK"), "DEBUG SLEEP replied {reply:?}");
        assert!(out.status.success());
        json_of(&out)
    };

    let open = run(&["--rate", "2000"]);
    let p99 = num(&open, &["latency_us", "p99"]);
    let req = open["requests"].as_u64().unwrap();
    eprintln!("open loop: requests {req} p99 {p99} us max {}", num(&open, &["latency_us", "max"]));
    assert!((9000..=10000).contains(&req), "open loop at 2000/s for 5 s sent {req}");
    assert!(p99 >= 100_000.0, "open loop p99 {p99} us should include the 0.5 s stall");
    assert_eq!(open["config"]["load_model"], "open");

    let closed = run(&[]);
    let p99 = num(&closed, &["latency_us", "p99"]);
    let max = num(&closed, &["latency_us", "max"]);
    eprintln!("closed loop: requests {} p99 {p99} us max {max}", closed["requests"]);
    assert!(max >= 400_000.0, "the stall should show up in the closed-loop max ({max})");
    assert!(p99 < 50_000.0, "closed loop p99 {p99} us should hide the stall (coordinated omission)");
}

#[test]
fn verify_finds_no_mismatches() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    let out = loadgen(
        r.port,
        &[
            "--verify",
            "--preload",
            "--keys",
            "5000",
            "-c",
            "8",
            "-P",
            "8",
            "--ratio",
            "1:1",
            "--duration",
            "2",
            "--json",
        ],
    );
    assert!(out.status.success(), "exit {:?}", out.status);
    let d = json_of(&out);
    assert_eq!(d["verify"]["mismatches"].as_u64(), Some(0), "{}", d["verify"]);
    assert!(d["verify"]["checked"].as_u64().unwrap() > 1000);
    assert_eq!(d["preload"]["errors"].as_u64(), Some(0));
    assert!(d["errors"].as_object().unwrap().is_empty());
    // Sequential keys + zipf + RESP3 + several threads, with --requests.
    for extra in [["--distribution", "sequential"], ["--distribution", "zipf:0.99"]] {
        let mut args = vec!["--verify", "--keys", "3000", "-t", "2", "-c", "3", "-P", "4", "--resp", "3"];
        args.extend_from_slice(&["--data-size-range", "1-40", "--requests", "30000", "--json"]);
        args.extend_from_slice(&extra);
        let out = loadgen(r.port, &args);
        assert!(out.status.success());
        let d = json_of(&out);
        assert_eq!(d["verify"]["mismatches"].as_u64(), Some(0));
        assert_eq!(d["requests"].as_u64(), Some(30000));
    }
}

#[test]
fn verify_detects_foreign_writes() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    let port = r.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let vandal = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 65536];
        std::thread::sleep(Duration::from_millis(300));
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let mut cmds = String::new();
            for k in 0..100 {
                cmds.push_str(&format!("SET key:{k} bogus\r\n"));
            }
            s.write_all(cmds.as_bytes()).unwrap();
            let mut got = 0;
            while got < 500 {
                got += s.read(&mut buf).unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let out = loadgen(port, &["--verify", "--preload", "--keys", "100", "-c", "2", "--duration", "1.5", "--json"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    vandal.join().unwrap();
    assert_eq!(out.status.code(), Some(4), "mismatches must give exit code 4");
    let d = json_of(&out);
    assert!(d["verify"]["mismatches"].as_u64().unwrap() > 0);
    let ex = d["verify"]["examples"].as_array().unwrap();
    assert!(!ex.is_empty() && ex[0].as_str().unwrap().contains("bogus"), "{ex:?}");
}

#[test]
fn error_kinds_and_max_error_rate() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    assert!(command(r.port, "LPUSH key:1 x").unwrap().starts_with(':'));
    let args = [
        "--duration",
        "1",
        "-c",
        "2",
        "--keys",
        "2",
        "--command",
        "2:GET __key__",
        "--command",
        "NOSUCHCMD __key__",
        "--json",
        "--max-error-rate",
        "0.01",
    ];
    let out = loadgen(r.port, &args);
    assert_eq!(out.status.code(), Some(3), "error rate above the limit must give exit code 3");
    let d = json_of(&out);
    let errors = d["errors"].as_object().unwrap();
    assert!(errors["ERR"].as_u64().unwrap() > 0, "{errors:?}");
    assert!(errors["WRONGTYPE"].as_u64().unwrap() > 0, "{errors:?}");
    assert!(d["per_command"]["NOSUCHCMD"]["requests"].as_u64().unwrap() > 0);
    // Within the limit: exit 0.
    let out = loadgen(r.port, &["--duration", "0.5", "-c", "2", "--keys", "1000", "--max-error-rate", "0.9", "--json"]);
    assert!(out.status.success());
}

#[test]
fn survives_killed_connections() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    let port = r.port;
    let killer = std::thread::spawn(move || {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(400));
            let _ = command(port, "CLIENT KILL TYPE normal SKIPME yes");
        }
    });
    let out = loadgen(port, &["--duration", "2", "-c", "5", "-P", "4", "--json"]);
    killer.join().unwrap();
    assert!(out.status.success(), "must not crash: {:?}", out.status);
    let d = json_of(&out);
    assert!(d["errors"]["connection"].as_u64().unwrap_or(0) > 0, "{}", d["errors"]);
    assert!(d["requests"].as_u64().unwrap() > 100);
}

#[test]
fn hdr_logs_are_loadable() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let _l = serial();
    let Some(r) = start_redis() else { return };
    let dir = std::env::temp_dir().join(format!("tessera-loadgen-hdr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = format!("{}/run-", dir.display());
    let out = loadgen(r.port, &["--duration", "1.5", "-c", "3", "--json", "--hdr-out", &prefix]);
    assert!(out.status.success());
    let d = json_of(&out);
    for (name, want) in [
        ("SET", d["per_command"]["SET"]["requests"].as_u64().unwrap()),
        ("TOTAL", d["requests"].as_u64().unwrap()),
    ] {
        let text = std::fs::read(format!("{prefix}{name}.hlog")).unwrap();
        let mut total = 0u64;
        let mut intervals = 0;
        let mut de = Deserializer::new();
        for e in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(ih) = e.expect("parse log line") {
                let bytes = base64_decode(ih.encoded_histogram());
                let h: hdrhistogram::Histogram<u64> = de.deserialize(&mut &bytes[..]).expect("V2 histogram");
                total += h.len();
                intervals += 1;
            }
        }
        assert!(intervals >= 2, "{name}: {intervals} intervals");
        assert_eq!(total, want, "{name}: histogram counts add up to the reported requests");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let b: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for chunk in b.chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

#[test]
fn exact_request_counts_csv_and_compare() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    let out = loadgen(r.port, &["--requests", "12345", "-c", "7", "-P", "3", "--warmup", "0.2", "--json"]);
    assert!(out.status.success());
    assert_eq!(json_of(&out)["requests"].as_u64(), Some(12345));
    let out = loadgen(r.port, &["--requests", "500", "--rate", "1000", "-c", "4", "-t", "2", "--json"]);
    assert!(out.status.success());
    let d = json_of(&out);
    assert_eq!(d["requests"].as_u64(), Some(500));
    assert!((num(&d, &["throughput_ops_per_sec"]) - 1000.0).abs() < 100.0, "{}", d["throughput_ops_per_sec"]);

    let out = loadgen(r.port, &["--duration", "0.5", "-c", "2", "--csv"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("target,command,throughput_ops_per_sec"));
    assert!(lines.iter().any(|l| l.contains(",TOTAL,")));

    let cmp = format!("127.0.0.1:{}", r.port);
    let out = loadgen(r.port, &["--duration", "0.3", "-c", "2", "--compare", &cmp, "--rounds", "2", "--json"]);
    assert!(out.status.success());
    let d = json_of(&out);
    let c = &d["compare"];
    assert_eq!(c["runs"].as_array().unwrap().len(), 4);
    for m in ["throughput", "p50", "p99"] {
        let s = &c["ratio_b_over_a"][m];
        let (lo, med, hi) = (num(s, &["min"]), num(s, &["median"]), num(s, &["max"]));
        assert!(lo <= med && med <= hi, "{m}: {s}");
        assert_eq!(s["per_round"].as_array().unwrap().len(), 2);
    }
    assert!(num(&d, &["throughput_ops_per_sec"]) > 0.0);
    let out = loadgen(r.port, &["--duration", "0.3", "-c", "2", "--compare", &cmp, "--rounds", "1"]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("ratio B/A"));
}

#[test]
fn both_engines_complete_exact_request_counts() {
    let _l = serial();
    let Some(r) = start_redis() else { return };
    for engine in ["epoll", "io_uring"] {
        let out = loadgen(
            r.port,
            &["--engine", engine, "--requests", "20011", "-c", "10", "-P", "8", "--ratio", "1:1", "--json"],
        );
        assert!(out.status.success(), "{engine}");
        let d = json_of(&out);
        assert_eq!(d["config"]["engine"].as_str(), Some(engine));
        assert_eq!(d["requests"].as_u64(), Some(20011), "{engine}");
        assert_eq!(
            d["errors"].as_object().map(|e| e.values().filter_map(|v| v.as_u64()).sum::<u64>()),
            Some(0),
            "{engine}: {}",
            d["errors"]
        );
        assert_eq!(num(&d, &["error_rate"]), 0.0, "{engine}");
    }
}

#[test]
fn bad_arguments_and_unreachable_server() {
    let _l = serial();
    for args in [
        &["--ratio", "0:0"][..],
        &["--duration", "10x"],
        &["--data-size-list", "3"],
        &["--distribution", "zipf:-1"],
        &["--verify", "--command", "PING"],
        &["--requests", "5", "--duration", "5"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let port = free_port().to_string();
    let out = Command::new(BIN).args(["--port", &port, "--duration", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("connect"));
}
