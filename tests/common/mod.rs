//! Shared harness for Tessera's integration tests.
//!
//! * [`free_port`] picks a port nobody answers on.
//! * [`TesseraServer`] / [`RedisServer`] spawn a server on a free port, wait
//!   for it to answer PING, verify (via `INFO server` / `process_id`) that the
//!   process that answers is the one we spawned, and stop it on `Drop`
//!   (SIGTERM, then SIGKILL after a timeout), printing the server log when the
//!   test is panicking.
//! * [`Client`] is a minimal blocking RESP2/RESP3 client with read timeouts
//!   returning exact reply bytes ([`Client::read_reply_raw`]) or parsed
//!   [`Value`]s.
//!
//! Debug aid: with `TESSERA_TEST_AGAINST_REDIS=1`, [`TesseraServer::start`]
//! starts a real `redis-server` instead of Tessera (the `--threads` argument is
//! dropped). This is how the comparison logic of the differential suites was
//! proven before the server existed; it is useful to check whether a failing
//! test is a test bug (it must pass redis-vs-redis, except for tests that check
//! Tessera-only behaviour, which say so).
#![allow(dead_code)]

pub mod diff;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Read/write timeout of every test client: a hung server fails the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to answer its first PING.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `Drop` waits after SIGTERM before sending SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// True when the debug aid `TESSERA_TEST_AGAINST_REDIS=1` is set.
pub fn against_redis() -> bool {
    matches!(std::env::var("TESSERA_TEST_AGAINST_REDIS").as_deref(), Ok("1") | Ok("yes") | Ok("true"))
}

// ---------------------------------------------------------------------------
// Ports and temp dirs
// ---------------------------------------------------------------------------

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago and on which nothing
/// answers. Tessera binds with SO_REUSEPORT, so binding alone would not detect
/// a running Tessera; we also try to connect. Ports are never handed out twice
/// within one test process.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            l.local_addr().unwrap().port()
        };
        {
            let mut g = HANDED_OUT.lock().unwrap();
            let set = g.get_or_insert_with(HashSet::new);
            if set.contains(&port) {
                continue;
            }
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                continue; // somebody (an SO_REUSEPORT server?) listens there
            }
            set.insert(port);
        }
        return port;
    }
    panic!("could not find a free port");
}

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("tessera-test-{}-{}-{}-{}", tag, std::process::id(), n, nanos));
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

// ---------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------

/// Path of the Tessera binary built by cargo for this test run.
pub fn tessera_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tessera")
}

/// A spawned server process (Tessera or redis-server). Stopped on drop.
pub struct ServerProcess {
    child: Option<Child>,
    pub port: u16,
    pub pid: u32,
    pub dir: PathBuf,
    pub log_path: PathBuf,
    /// "tessera" or "redis" (what was actually started).
    pub kind: &'static str,
    /// Password used by [`ServerProcess::client`] (from `--requirepass`).
    pub password: Option<String>,
    exited: Option<ExitStatus>,
    /// The command line that started it.
    pub cmdline: String,
}

/// Options for starting a server; see [`TesseraServer::start_opts`].
#[derive(Default, Clone)]
pub struct StartOpts<'a> {
    /// Config file passed as the first positional argument.
    pub config_file: Option<&'a Path>,
    /// Extra `--directive value` arguments.
    pub extra_args: &'a [&'a str],
    /// Password to AUTH with for the readiness/pid check (defaults to the
    /// value of `--requirepass` in `extra_args`).
    pub password: Option<&'a str>,
    /// Use this port instead of a fresh free one.
    pub port: Option<u16>,
    /// Extra environment variables for the server process.
    pub env: &'a [(&'a str, &'a str)],
}

fn requirepass_of(args: &[&str]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a.eq_ignore_ascii_case("--requirepass") {
            return it.next().map(|s| s.to_string()).filter(|s| !s.is_empty());
        }
    }
    None
}

fn redis_args(port: u16, dir: &Path, opts: &StartOpts) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(cf) = opts.config_file {
        args.push(cf.display().to_string());
    }
    for a in [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--enable-debug-command",
        "yes",
        "--dir",
        &dir.display().to_string(),
    ] {
        args.push(a.to_string());
    }
    args.extend(opts.extra_args.iter().map(|s| s.to_string()));
    args
}

fn tessera_args(port: u16, threads: usize, opts: &StartOpts) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(cf) = opts.config_file {
        args.push(cf.display().to_string());
    }
    for a in ["--port", &port.to_string(), "--threads", &threads.to_string(), "--enable-debug-command", "yes"] {
        args.push(a.to_string());
    }
    args.extend(opts.extra_args.iter().map(|s| s.to_string()));
    args
}

impl ServerProcess {
    fn spawn(kind: &'static str, program: &str, args: Vec<String>, port: u16, dir: PathBuf, password: Option<String>) -> ServerProcess {
        Self::spawn_env(kind, program, args, port, dir, password, &[])
    }

    fn spawn_env(
        kind: &'static str,
        program: &str,
        args: Vec<String>,
        port: u16,
        dir: PathBuf,
        password: Option<String>,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let log_path = dir.join("server.log");
        let log = File::create(&log_path).expect("create log file");
        let log2 = log.try_clone().unwrap();
        let child = Command::new(program)
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .envs(env.iter().copied())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {program} {args:?}: {e}"));
        let pid = child.id();
        let cmdline = format!("{program} {}", fmt_cmd(&args));
        let mut sp = ServerProcess {
            child: Some(child),
            port,
            pid,
            dir,
            log_path,
            kind,
            password,
            exited: None,
            cmdline,
        };
        sp.wait_ready();
        sp
    }

    /// Wait until the server answers PING (or NOAUTH), then check that the
    /// process answering is ours.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        loop {
            if let Some(st) = self.try_wait() {
                panic!("{} (pid {}) exited during startup with {st}\n{}", self.kind, self.pid, self.log_tail(200));
            }
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let mut c = Client::from_stream(s, self.port);
                c.set_timeout(Duration::from_secs(2));
                c.send(&[b"PING"]);
                if let Ok(r) = c.try_read_reply_raw() {
                    if r == b"+PONG\r\n" || r.starts_with(b"-NOAUTH") {
                        break;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{} on port {} did not answer PING within {:?}\n{}",
                    self.kind,
                    self.port,
                    STARTUP_TIMEOUT,
                    self.log_tail(200)
                );
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let mut c = self.client();
        c.send_strs(&["INFO", "server"]);
        let info = match c.try_read_reply_raw() {
            Ok(b) => Value::parse(&b),
            Err(e) => panic!(
                "{} (pid {}, port {}) answered PING but then `INFO server` on a new connection failed: {e:?}\n{}",
                self.kind,
                self.pid,
                self.port,
                self.log_tail(200)
            ),
        };
        let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_else(|| panic!("INFO server returned {info:?}"))).to_string();
        let pid = info_field(&text, "process_id").unwrap_or_else(|| panic!("INFO server has no process_id:\n{text}"));
        if pid != self.pid.to_string() {
            panic!(
                "port {}: INFO server says process_id:{pid} but we spawned pid {}: another server answered on this port\n{}",
                self.port,
                self.pid,
                self.log_tail(200)
            );
        }
    }

    /// A connected client, authenticated if the server has a password.
    pub fn client(&self) -> Client {
        let mut c = Client::connect(self.port);
        if let Some(p) = &self.password {
            let r = c.cmd(&["AUTH", p]);
            assert_eq!(r, b"+OK\r\n", "AUTH failed: {}", escape(&r));
        }
        c
    }

    /// A connected client that does not authenticate.
    pub fn raw_client(&self) -> Client {
        Client::connect(self.port)
    }

    /// Non-blocking check whether the process exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        if let Some(ch) = self.child.as_mut() {
            if let Ok(Some(st)) = ch.try_wait() {
                self.exited = Some(st);
            }
        }
        self.exited
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a signal to the process if it is still running.
    pub fn signal(&mut self, sig: i32) {
        if self.try_wait().is_none() {
            unsafe {
                libc::kill(self.pid as libc::pid_t, sig);
            }
        }
    }

    /// Whole log (stdout + stderr) of the server.
    pub fn log(&self) -> String {
        fs::read(&self.log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "----- {} (pid {}, port {}) started as: {}\n----- log ({}, last {} of {} lines) -----\n{}\n----- end of log -----",
            self.kind,
            self.pid,
            self.port,
            self.cmdline,
            self.log_path.display(),
            all.len() - start,
            all.len(),
            all[start..].join("\n")
        )
    }

    /// Stop the server: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.try_wait().is_none() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(STOP_TIMEOUT).is_none() {
                eprintln!(
                    "{} pid {} did not stop within {:?} after SIGTERM; sending SIGKILL",
                    self.kind, self.pid, STOP_TIMEOUT
                );
                if let Some(ch) = self.child.as_mut() {
                    let _ = ch.kill();
                    if let Ok(st) = ch.wait() {
                        self.exited = Some(st);
                    }
                }
            }
        }
        self.exited
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.stop();
        if panicking {
            eprintln!("{}", self.log_tail(150));
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Parse `name:value` out of an INFO reply.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let l = l.trim_end_matches('\r');
        l.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(|v| v.to_string())
    })
}

/// A Tessera server (or, with `TESSERA_TEST_AGAINST_REDIS=1`, a redis-server).
pub struct TesseraServer(pub ServerProcess);

impl TesseraServer {
    /// `tessera --port P --threads N --enable-debug-command yes <extra_args>`.
    pub fn start(threads: usize, extra_args: &[&str]) -> TesseraServer {
        Self::start_opts(
            threads,
            StartOpts {
                extra_args,
                ..Default::default()
            },
        )
    }

    pub fn start_opts(threads: usize, opts: StartOpts) -> TesseraServer {
        let port = opts.port.unwrap_or_else(free_port);
        let password = opts.password.map(|s| s.to_string()).or_else(|| requirepass_of(opts.extra_args));
        if against_redis() {
            let dir = temp_dir("redis-as-tessera");
            let args = redis_args(port, &dir, &opts);
            return TesseraServer(ServerProcess::spawn("redis(as tessera)", "redis-server", args, port, dir, password));
        }
        let dir = temp_dir("tessera");
        let args = tessera_args(port, threads, &opts);
        TesseraServer(ServerProcess::spawn_env("tessera", tessera_bin(), args, port, dir, password, opts.env))
    }
}

impl Deref for TesseraServer {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}
impl DerefMut for TesseraServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

/// A real redis-server (7.0.15) in a temp dir.
pub struct RedisServer(pub ServerProcess);

impl RedisServer {
    /// `redis-server --port P --save "" --appendonly no --daemonize no --enable-debug-command yes <extra_args>`.
    pub fn start(extra_args: &[&str]) -> RedisServer {
        Self::start_opts(StartOpts {
            extra_args,
            ..Default::default()
        })
    }

    pub fn start_opts(opts: StartOpts) -> RedisServer {
        let port = opts.port.unwrap_or_else(free_port);
        let password = opts.password.map(|s| s.to_string()).or_else(|| requirepass_of(opts.extra_args));
        let dir = temp_dir("redis");
        let args = redis_args(port, &dir, &opts);
        RedisServer(ServerProcess::spawn("redis", "redis-server", args, port, dir, password))
    }
}

impl Deref for RedisServer {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}
impl DerefMut for RedisServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

/// Output of a server process that was expected to exit on its own.
pub struct ExitOutput {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `program args` and wait up to `timeout` for it to exit by itself (for
/// config errors). Kills it if it is still running after the timeout
/// (`status` is then `None`).
pub fn run_to_exit(program: &str, args: &[String], dir: &Path, timeout: Duration) -> ExitOutput {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(File::create(&out_path).unwrap()))
        .stderr(Stdio::from(File::create(&err_path).unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    ExitOutput {
        status,
        stdout: String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned(),
    }
}

/// Run Tessera (or redis-server under the debug aid) with exactly `args`
/// (no --port/--threads added) expecting it to exit by itself.
pub fn run_tessera_to_exit(args: &[&str], timeout: Duration) -> ExitOutput {
    let dir = temp_dir("tessera-exit");
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let prog = if against_redis() { "redis-server" } else { tessera_bin() };
    let out = run_to_exit(prog, &args, &dir, timeout);
    let _ = fs::remove_dir_all(&dir);
    out
}

// ---------------------------------------------------------------------------
// RESP client
// ---------------------------------------------------------------------------

/// Why a reply could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection (the bytes of an incomplete frame, if any).
    Closed(Vec<u8>),
    /// No complete reply within the timeout (the partial bytes, if any).
    Timeout(Vec<u8>),
    Io(io::Error),
    /// The bytes are not valid RESP.
    Protocol(String),
}

/// Minimal blocking RESP client.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    pub port: u16,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(s, port)
    }

    pub fn from_stream(stream: TcpStream, port: u16) -> Client {
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        Client {
            stream,
            buf: Vec::new(),
            pos: 0,
            port,
        }
    }

    pub fn set_timeout(&mut self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).ok();
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Encode `args` as a multibulk and send it.
    pub fn send(&mut self, args: &[&[u8]]) {
        let data = encode_command(args);
        self.send_raw(&data);
    }

    pub fn send_strs(&mut self, args: &[&str]) {
        let v: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&v);
    }

    pub fn send_raw(&mut self, data: &[u8]) {
        self.stream.write_all(data).unwrap_or_else(|e| panic!("write to port {}: {e}", self.port));
    }

    /// Like `send_raw` but returns the error instead of panicking (for
    /// writes to connections the server may have closed).
    pub fn try_send_raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)
    }

    /// Exact bytes of one complete reply frame (an attribute `|` frame is
    /// returned together with the reply it annotates).
    pub fn try_read_reply_raw(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            match frame_len(&self.buf[self.pos..]) {
                Ok(Some(n)) => {
                    let out = self.buf[self.pos..self.pos + n].to_vec();
                    self.pos += n;
                    if self.pos == self.buf.len() {
                        self.buf.clear();
                        self.pos = 0;
                    }
                    return Ok(out);
                }
                Ok(None) => {}
                Err(e) => return Err(ReadError::Protocol(format!("{e} in {}", escape(&self.buf[self.pos..])))),
            }
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(ReadError::Closed(self.buf[self.pos..].to_vec())),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
                    return Err(ReadError::Timeout(self.buf[self.pos..].to_vec()))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(ReadError::Closed(self.buf[self.pos..].to_vec())),
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Exact bytes of one complete reply frame; panics on timeout/EOF.
    #[track_caller]
    pub fn read_reply_raw(&mut self) -> Vec<u8> {
        match self.try_read_reply_raw() {
            Ok(r) => r,
            Err(ReadError::Timeout(p)) => panic!("port {}: no complete reply within timeout (partial: {})", self.port, escape(&p)),
            Err(ReadError::Closed(p)) => panic!("port {}: connection closed while waiting for a reply (partial: {})", self.port, escape(&p)),
            Err(e) => panic!("port {}: reading reply: {e:?}", self.port),
        }
    }

    #[track_caller]
    pub fn read_value(&mut self) -> Value {
        Value::parse(&self.read_reply_raw())
    }

    /// Send a command and return the exact bytes of its reply.
    #[track_caller]
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        self.send_strs(args);
        self.read_reply_raw()
    }

    #[track_caller]
    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.read_reply_raw()
    }

    #[track_caller]
    pub fn cmd_value(&mut self, args: &[&str]) -> Value {
        Value::parse(&self.cmd(args))
    }

    /// Everything the server sends until it closes the connection or `wait`
    /// passes without new data. Returns (bytes, closed). Bytes already
    /// buffered are included.
    pub fn read_until_close(&mut self, wait: Duration) -> (Vec<u8>, bool) {
        let mut out = self.buf[self.pos..].to_vec();
        self.buf.clear();
        self.pos = 0;
        self.stream.set_read_timeout(Some(wait)).ok();
        let mut tmp = [0u8; 65536];
        let closed = loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => break true,
                Ok(n) => out.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => break false,
                Err(_) => break true, // reset
            }
        };
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        (out, closed)
    }

    /// True if the server closes the connection within `wait` (any data sent
    /// before the close is discarded).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.read_until_close(wait).1
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Encode a command as a RESP multibulk.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn find_crlf(b: &[u8], from: usize) -> Option<usize> {
    if from >= b.len() {
        return None;
    }
    memchr_crlf(&b[from..]).map(|i| i + from)
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\r' && b[i + 1] == b'\n' {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn parse_len(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(line)))
}

/// Length of the complete RESP frame at the start of `b`, `None` if more bytes
/// are needed.
pub fn frame_len(b: &[u8]) -> Result<Option<usize>, String> {
    frame_end(b, 0)
}

fn frame_end(b: &[u8], i: usize) -> Result<Option<usize>, String> {
    if i >= b.len() {
        return Ok(None);
    }
    let Some(le) = find_crlf(b, i + 1) else { return Ok(None) };
    let after_line = le + 2;
    match b[i] {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => Ok(Some(after_line)),
        b'$' | b'!' | b'=' => {
            let n = parse_len(&b[i + 1..le])?;
            if n < 0 {
                return Ok(Some(after_line));
            }
            let end = after_line + n as usize + 2;
            if b.len() < end {
                return Ok(None);
            }
            if &b[end - 2..end] != b"\r\n" {
                return Err("bulk string not terminated by CRLF".into());
            }
            Ok(Some(end))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_len(&b[i + 1..le])?;
            if n < 0 {
                return Ok(Some(after_line));
            }
            let elems = if matches!(b[i], b'%' | b'|') { n * 2 } else { n };
            let mut p = after_line;
            for _ in 0..elems {
                match frame_end(b, p)? {
                    Some(e) => p = e,
                    None => return Ok(None),
                }
            }
            if b[i] == b'|' {
                // the attribute annotates the following reply
                return frame_end(b, p);
            }
            Ok(Some(p))
        }
        c => Err(format!("unexpected RESP type byte {:?}", c as char)),
    }
}

// ---------------------------------------------------------------------------
// Parsed replies
// ---------------------------------------------------------------------------

/// A parsed reply. Keeps enough detail that [`Value::encode`] reproduces the
/// original bytes for canonical encodings.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 `$-1`
    NullBulk,
    /// RESP2 `*-1`
    NullArray,
    /// RESP3 `_`
    Null,
    /// RESP3 `,` (textual form kept)
    Double(String),
    Bool(bool),
    BigNumber(String),
    BlobError(Vec<u8>),
    /// RESP3 `=`: (format, data)
    Verbatim(String, Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Push(Vec<Value>),
    Attribute(Vec<(Value, Value)>, Box<Value>),
}

impl Value {
    #[track_caller]
    pub fn parse(b: &[u8]) -> Value {
        match Self::try_parse(b) {
            Ok((v, n)) if n == b.len() => v,
            Ok((_, n)) => panic!("trailing bytes after reply at {n}: {}", escape(b)),
            Err(e) => panic!("cannot parse reply {}: {e}", escape(b)),
        }
    }

    /// Parse one frame; returns the value and the number of bytes consumed.
    pub fn try_parse(b: &[u8]) -> Result<(Value, usize), String> {
        Self::parse_at(b, 0)
    }

    fn parse_at(b: &[u8], i: usize) -> Result<(Value, usize), String> {
        if i >= b.len() {
            return Err("incomplete".into());
        }
        let le = find_crlf(b, i + 1).ok_or("incomplete line")?;
        let line = &b[i + 1..le];
        let s = || String::from_utf8_lossy(line).into_owned();
        let after = le + 2;
        let bulk = |n: i64| -> Result<(Vec<u8>, usize), String> {
            let end = after + n as usize;
            if b.len() < end + 2 {
                return Err("incomplete bulk".into());
            }
            Ok((b[after..end].to_vec(), end + 2))
        };
        Ok(match b[i] {
            b'+' => (Value::Simple(s()), after),
            b'-' => (Value::Error(s()), after),
            b':' => (Value::Int(s().parse().map_err(|_| format!("bad integer {}", s()))?), after),
            b',' => (Value::Double(s()), after),
            b'(' => (Value::BigNumber(s()), after),
            b'#' => (Value::Bool(line == b"t"), after),
            b'_' => (Value::Null, after),
            b'$' | b'!' | b'=' => {
                let n = parse_len(line)?;
                if n < 0 {
                    if b[i] == b'$' {
                        return Ok((Value::NullBulk, after));
                    }
                    return Err("negative length".into());
                }
                let (data, end) = bulk(n)?;
                let v = match b[i] {
                    b'$' => Value::Bulk(data),
                    b'!' => Value::BlobError(data),
                    _ => {
                        if data.len() < 4 || data[3] != b':' {
                            return Err("bad verbatim string".into());
                        }
                        Value::Verbatim(String::from_utf8_lossy(&data[..3]).into_owned(), data[4..].to_vec())
                    }
                };
                (v, end)
            }
            b'*' | b'~' | b'>' => {
                let n = parse_len(line)?;
                if n < 0 {
                    if b[i] == b'*' {
                        return Ok((Value::NullArray, after));
                    }
                    return Err("negative length".into());
                }
                let mut p = after;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let (v, e) = Self::parse_at(b, p)?;
                    items.push(v);
                    p = e;
                }
                let v = match b[i] {
                    b'*' => Value::Array(items),
                    b'~' => Value::Set(items),
                    _ => Value::Push(items),
                };
                (v, p)
            }
            b'%' | b'|' => {
                let n = parse_len(line)?;
                let mut p = after;
                let mut pairs = Vec::with_capacity(n.max(0) as usize);
                for _ in 0..n {
                    let (k, e) = Self::parse_at(b, p)?;
                    let (v, e2) = Self::parse_at(b, e)?;
                    pairs.push((k, v));
                    p = e2;
                }
                if b[i] == b'|' {
                    let (inner, e) = Self::parse_at(b, p)?;
                    (Value::Attribute(pairs, Box::new(inner)), e)
                } else {
                    (Value::Map(pairs), p)
                }
            }
            c => return Err(format!("unexpected type byte {:?}", c as char)),
        })
    }

    /// Encode back to RESP bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        let line = |out: &mut Vec<u8>, t: u8, s: &[u8]| {
            out.push(t);
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        };
        match self {
            Value::Simple(s) => line(out, b'+', s.as_bytes()),
            Value::Error(s) => line(out, b'-', s.as_bytes()),
            Value::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Value::Double(s) => line(out, b',', s.as_bytes()),
            Value::BigNumber(s) => line(out, b'(', s.as_bytes()),
            Value::Bool(v) => line(out, b'#', if *v { b"t" } else { b"f" }),
            Value::Null => out.extend_from_slice(b"_\r\n"),
            Value::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Value::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Value::Bulk(d) | Value::BlobError(d) => {
                line(out, if matches!(self, Value::Bulk(_)) { b'$' } else { b'!' }, d.len().to_string().as_bytes());
                out.extend_from_slice(d);
                out.extend_from_slice(b"\r\n");
            }
            Value::Verbatim(f, d) => {
                line(out, b'=', (d.len() + 4).to_string().as_bytes());
                out.extend_from_slice(f.as_bytes());
                out.push(b':');
                out.extend_from_slice(d);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(v) | Value::Set(v) | Value::Push(v) => {
                let t = match self {
                    Value::Array(_) => b'*',
                    Value::Set(_) => b'~',
                    _ => b'>',
                };
                line(out, t, v.len().to_string().as_bytes());
                for x in v {
                    x.encode_into(out);
                }
            }
            Value::Map(p) => {
                line(out, b'%', p.len().to_string().as_bytes());
                for (k, v) in p {
                    k.encode_into(out);
                    v.encode_into(out);
                }
            }
            Value::Attribute(p, inner) => {
                line(out, b'|', p.len().to_string().as_bytes());
                for (k, v) in p {
                    k.encode_into(out);
                    v.encode_into(out);
                }
                inner.encode_into(out);
            }
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_) | Value::BlobError(_))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::NullBulk | Value::NullArray)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// Bytes of a bulk, simple or verbatim string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Verbatim(_, b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<String> {
        self.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// Elements of an array/set/push.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }

    /// Key/value pairs of a RESP3 map, or of a RESP2 flat array of pairs.
    pub fn as_pairs(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Map(p) => Some(p.clone()),
            Value::Array(v) if v.len() % 2 == 0 => Some(v.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()),
            _ => None,
        }
    }

    /// Look up a field by (string) name in a map or flat pair array.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.as_pairs()?
            .into_iter()
            .find(|(k, _)| k.as_bytes() == Some(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// Replace the value of HELLO's `id` field (connection id, nondeterministic)
/// by 0, in a RESP2 flat array or RESP3 map. Other replies are unchanged.
pub fn normalize_hello_id(v: &Value) -> Value {
    let fix = |k: &Value, val: &Value| -> Value {
        if k.as_bytes() == Some(b"id") && matches!(val, Value::Int(_)) {
            Value::Int(0)
        } else {
            val.clone()
        }
    };
    match v {
        Value::Map(p) => Value::Map(p.iter().map(|(k, val)| (k.clone(), fix(k, val))).collect()),
        Value::Array(items) if items.len() % 2 == 0 && items.first().and_then(|x| x.as_bytes()) == Some(b"server") => {
            let mut out = items.clone();
            for i in (0..out.len()).step_by(2) {
                out[i + 1] = fix(&items[i], &items[i + 1]);
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

/// Printable escaped form of raw bytes, e.g. `"+OK\r\n"`.
pub fn escape(b: &[u8]) -> String {
    const MAX: usize = 600;
    let mut s = String::with_capacity(b.len().min(MAX) + 2);
    s.push('"');
    for &c in b.iter().take(MAX) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    if b.len() > MAX {
        let _ = write!(s, "...({} bytes total)", b.len());
    }
    s
}

/// Human-readable form of a command, e.g. `SET "a b" 1`.
pub fn fmt_cmd<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            if !a.is_empty() && a.len() <= 80 && a.iter().all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\\') {
                String::from_utf8_lossy(a).into_owned()
            } else {
                escape(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Key slots (independent re-implementation, used to pick keys on every shard)
// ---------------------------------------------------------------------------

/// CRC16-CCITT (XMODEM), as used by Redis Cluster.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Redis Cluster hash slot with `{hash tag}` support.
pub fn local_key_slot(key: &[u8]) -> u16 {
    if let Some(s) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[s + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return crc16(&key[s + 1..s + 1 + len]) & 16383;
            }
        }
    }
    crc16(key) & 16383
}

/// shard = slot * shards / 16384 (Tessera's documented mapping).
pub fn local_shard_of(key: &[u8], shards: usize) -> usize {
    local_key_slot(key) as usize * shards / 16384
}

/// Sleep helper.
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
