//! The load engine: one event loop per thread, closed-loop and open-loop
//! (intended-time) request pacing, reply counting and latency recording.
//!
//! The worker logic (request generation, pacing, reply counting, stats,
//! verify, reconnects) is shared; only the I/O layer differs ([`Io`]):
//! * `io_uring` (default): completion-based, one ring per thread, one RECV in
//!   flight per connection into its own read buffer, at most one SEND in
//!   flight per connection, the pacing timerfd read with a READ op, one
//!   `io_uring_enter` per loop iteration;
//! * `epoll`: readiness-based, non-blocking `std` sockets, `read`/`write`.

use crate::cli::Engine;
use crate::keygen::{next_key, KeyState, Rng};
use crate::resp::{Reply, RespCounter};
use crate::workload::{encode, verify_value, CmdKind, Workload};
use hdrhistogram::Histogram;
use io_uring::{opcode, squeue, types, IoUring};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

pub const NS: u64 = 1_000_000_000;
const TIMER_TOKEN: u64 = u64::MAX;
const PRELOAD_TMPL: u32 = u32::MAX;
const MAX_RECONNECT_FAILURES: u32 = 20;
const RECONNECT_BACKOFF_NS: u64 = 200_000_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_CHUNK: usize = 64 * 1024;
const MAX_VERIFY_EXAMPLES: usize = 5;
// io_uring user_data: connection index << 8 | operation.
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_TIMER: u64 = 3;
const OP_CANCEL: u64 = 4;
/// How long dropping a worker waits for cancelled io_uring operations before leaking their buffers.
const URING_DRAIN_NS: u64 = 2_000_000_000;

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC, same clock as timerfd).
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NS + ts.tv_nsec as u64
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub user: Option<String>,
    pub password: Option<String>,
    pub resp3: bool,
    pub db: Option<u32>,
}

/// Everything one run (against one server) needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub addr: SocketAddr,
    pub auth: Auth,
    pub threads: usize,
    pub conns_per_thread: usize,
    pub pipeline: usize,
    pub cpus: Vec<usize>,
    pub workload: Arc<Workload>,
    pub requests: Option<u64>,
    pub duration_ns: u64,
    pub warmup_ns: u64,
    pub rate: Option<f64>,
    pub preload: bool,
    pub verify: bool,
    pub hdr_intervals: bool,
    pub progress: bool,
    pub seed: u64,
    pub drain_timeout_ns: u64,
    /// A connection with requests outstanding that receives nothing for this long is dropped.
    pub reply_timeout_ns: u64,
    /// I/O engine (io_uring falls back to epoll if the ring cannot be set up).
    pub engine: Engine,
}

#[repr(align(128))]
#[derive(Default)]
struct PaddedCounter(AtomicU64);

/// State shared by the worker threads and the main (progress) thread.
pub struct Shared {
    abort: AtomicBool,
    barrier: Barrier,
    start_ns: AtomicU64,
    counters: Vec<PaddedCounter>,
    pub progress_hist: Mutex<Histogram<u64>>,
    pub phase_main: AtomicBool,
}

impl Shared {
    pub fn new(threads: usize) -> Shared {
        Shared {
            abort: AtomicBool::new(false),
            barrier: Barrier::new(threads),
            start_ns: AtomicU64::new(0),
            counters: (0..threads).map(|_| PaddedCounter::default()).collect(),
            progress_hist: Mutex::new(Histogram::new(3).expect("histogram")),
            phase_main: AtomicBool::new(false),
        }
    }

    /// Measured replies so far, over all threads.
    pub fn completed(&self) -> u64 {
        self.counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    /// All threads meet; the leader picks a common start time slightly in the future.
    fn sync_start(&self) -> u64 {
        if self.barrier.wait().is_leader() {
            self.start_ns.store(now_ns() + 2_000_000, Ordering::SeqCst);
        }
        self.barrier.wait();
        self.start_ns.load(Ordering::SeqCst)
    }
}

/// What one thread measured.
pub struct ThreadResult {
    pub hists: Vec<Histogram<u64>>,
    pub errors: Vec<(String, u64)>,
    pub intervals: Vec<Vec<Histogram<u64>>>,
    pub measure_start_ns: u64,
    pub last_reply_ns: u64,
    pub preload_ns: u64,
    pub preload_errors: u64,
    pub verify_checked: u64,
    pub verify_mismatches: u64,
    pub verify_examples: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Send time (closed loop) or intended send time (open loop).
    t: u64,
    key: u64,
    tmpl: u32,
    vseq: u32,
    vlen: u32,
    measured: bool,
}

struct Conn {
    gidx: u64,
    stream: Option<TcpStream>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Requests are encoded here (epoll: written from `wpos`; io_uring: swapped into `sbuf` when no SEND is in flight).
    wbuf: Vec<u8>,
    wpos: usize,
    want_out: bool,
    // io_uring only. Invariants: while `recv_busy`, `rbuf` is never resized (the kernel writes
    // into `rbuf[rend..]`); while `send_busy`, `sbuf` is not touched (the kernel reads `sbuf[spos..]`).
    sbuf: Vec<u8>,
    spos: usize,
    recv_busy: bool,
    send_busy: bool,
    /// A failed connection whose operations are still in flight (shut down and cancelled);
    /// it is closed, and may be re-opened, once they have completed.
    closing: Option<TcpStream>,
    inflight: VecDeque<Pending>,
    parser: RespCounter,
    rng: Rng,
    ks: KeyState,
    keybuf: Vec<u8>,
    valbuf: Vec<u8>,
    /// Closed loop with --requests: measured requests left to send.
    quota: Option<u64>,
    preload_next: u64,
    /// Open loop backlog: `backlog_n` due requests, the first with thread-local index `backlog_j`.
    backlog_j: u64,
    backlog_n: u64,
    reconnect_at: u64,
    /// Last time bytes arrived (or the first request went out on an idle connection).
    last_rx: u64,
    failures: u32,
    dead: bool,
    // --verify state (this connection owns keys k with k % total_conns == gidx).
    vmap: HashMap<u64, (u32, u32)>,
    vseq: u32,
    vfailed: HashSet<u32>,
}

struct Stats {
    hists: Vec<Histogram<u64>>,
    errors: Vec<(String, u64)>,
    intervals: Option<Vec<Vec<Histogram<u64>>>>,
    progress: Option<Histogram<u64>>,
    progress_pending: u64,
    measure_start: u64,
    last_reply: u64,
    preload_errors: u64,
    v_checked: u64,
    v_mismatch: u64,
    v_examples: Vec<String>,
    scratch: Vec<u8>,
    nstats: usize,
}

impl Stats {
    fn add_error(&mut self, kind: &[u8], n: u64) {
        if n == 0 {
            return;
        }
        if let Some(e) = self.errors.iter_mut().find(|e| e.0.as_bytes() == kind) {
            e.1 += n;
            return;
        }
        let mut k: String = String::from_utf8_lossy(&kind[..kind.len().min(40)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        if k.is_empty() {
            k = "(empty)".into();
        }
        if let Some(e) = self.errors.iter_mut().find(|e| e.0 == k) {
            e.1 += n;
        } else {
            self.errors.push((k, n));
        }
    }

    #[inline]
    fn record(&mut self, stat: usize, lat_ns: u64, now: u64) {
        let us = (lat_ns + 500) / 1000;
        let _ = self.hists[stat].record(us);
        if let Some(p) = self.progress.as_mut() {
            let _ = p.record(us);
            self.progress_pending += 1;
        }
        if let Some(iv) = self.intervals.as_mut() {
            let sec = (now.saturating_sub(self.measure_start) / NS) as usize;
            while iv.len() <= sec {
                iv.push((0..self.nstats).map(|_| Histogram::new(3).expect("histogram")).collect());
            }
            let _ = iv[sec][stat].record(us);
        }
        self.last_reply = now;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PhaseKind {
    Preload,
    Closed,
    Open,
}

struct Phase {
    kind: PhaseKind,
    measure_start: u64,
    /// No new request is started at/after this time.
    send_end: u64,
    /// Give up waiting for replies at this time.
    hard_end: u64,
    // Open loop generator (thread-local request index j -> connection j % n).
    t0: u64,
    period: f64,
    next_j: u64,
    gen_quota: Option<u64>,
    gen_done: bool,
}

impl Phase {
    #[inline]
    fn t_of(&self, j: u64) -> u64 {
        self.t0 + (j as f64 * self.period) as u64
    }
}

/// The readiness/completion layer of one worker thread.
enum Io {
    Epoll { epfd: i32, events: Vec<libc::epoll_event> },
    Uring(Box<Uring>),
}

/// One io_uring per thread (boxed: `tbuf` must keep its address while a timer READ is in flight).
struct Uring {
    ring: IoUring,
    /// Target of the timerfd READ.
    tbuf: [u8; 8],
    timer_busy: bool,
    /// Submitted operations whose completion has not been reaped yet (cancels included).
    ops: usize,
    cqes: Vec<(u64, i32)>,
}

impl Uring {
    /// Set up a ring, trying the cheapest task-run modes first.
    fn new(entries: u32) -> std::io::Result<Uring> {
        let mut b = IoUring::builder();
        b.setup_single_issuer().setup_defer_taskrun();
        let ring = match b.build(entries) {
            Ok(r) => r,
            Err(_) => match IoUring::builder().setup_coop_taskrun().build(entries) {
                Ok(r) => r,
                Err(_) => IoUring::builder().build(entries)?,
            },
        };
        Ok(Uring {
            ring,
            tbuf: [0; 8],
            timer_busy: false,
            ops: 0,
            cqes: Vec::with_capacity(entries as usize * 2),
        })
    }

    /// Queue one operation. Safety: every buffer `e` points to must stay valid and unmoved until
    /// its completion has been reaped.
    unsafe fn push(&mut self, e: &squeue::Entry) -> bool {
        for _ in 0..4 {
            if self.ring.submission().push(e).is_ok() {
                self.ops += 1;
                return true;
            }
            // Full submission queue (cannot happen with the ring sized for all operations): submit.
            let _ = self.ring.submit();
        }
        false
    }

    fn push_cancel(&mut self, user_data: u64) {
        let e = opcode::AsyncCancel::new(user_data).build().user_data(OP_CANCEL);
        // SAFETY: a cancel references no buffer.
        unsafe { self.push(&e) };
    }

    /// Wakes connection `i`'s in-flight operations (shutdown makes RECV see EOF
    /// and SEND fail) and cancels them. The socket and its buffers must stay
    /// alive until their completions arrive.
    fn abort_conn_ops(&mut self, i: usize, fd: i32, recv_busy: bool, send_busy: bool) {
        if !recv_busy && !send_busy {
            return;
        }
        // SAFETY: shutdown on a socket the caller owns.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        if recv_busy {
            self.push_cancel((i as u64) << 8 | OP_RECV);
        }
        if send_busy {
            self.push_cancel((i as u64) << 8 | OP_SEND);
        }
    }

    fn push_timer_read(&mut self, tfd: i32) {
        let e = opcode::Read::new(types::Fd(tfd), self.tbuf.as_mut_ptr(), 8).build().user_data(OP_TIMER);
        // SAFETY: `tbuf` lives in the boxed `Uring`, which is only dropped after the drain in `Worker::drop`.
        self.timer_busy = unsafe { self.push(&e) };
    }

    /// Submit what is queued, wait for at least `want` completions, and copy them out.
    fn enter(&mut self, want: usize) -> std::io::Result<()> {
        let r = if want > 0 {
            self.ring.submit_and_wait(want)
        } else {
            // Nothing to wait for, but GETEVENTS so that deferred task work (completions) runs.
            let n = self.ring.submission().len() as u32;
            // SAFETY: plain io_uring_enter without an argument.
            unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(n, 0, io_uring::EnterFlags::GETEVENTS.bits(), None)
            }
        };
        self.reap();
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ETIME)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn reap(&mut self) {
        let before = self.cqes.len();
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            self.cqes.push((cqe.user_data(), cqe.result()));
        }
        self.ops -= (self.cqes.len() - before).min(self.ops);
    }
}

struct Worker<'a> {
    tid: usize,
    spec: &'a RunSpec,
    wl: &'a Workload,
    shared: &'a Shared,
    io: Io,
    tfd: i32,
    armed: u64,
    conns: Vec<Conn>,
    st: Stats,
    total_conns: u64,
    disconnected: usize,
    /// Requests in flight over all connections.
    inflight_total: u64,
    /// Closed loop with --requests: measured requests left over all connections (else u64::MAX).
    quota_total: u64,
    /// Open loop: due-but-unsent requests over all connections.
    backlog_total: u64,
}

/// Run one thread of the load. Errors are fatal set-up failures.
pub fn run_thread(tid: usize, spec: &RunSpec, shared: &Shared) -> Result<ThreadResult, String> {
    if !spec.cpus.is_empty() {
        let cpu = spec.cpus[tid % spec.cpus.len()];
        if let Err(e) = pin_to_cpu(cpu) {
            eprintln!("tessera-loadgen: warning: thread {tid}: cannot pin to CPU {cpu}: {e}");
        }
    }
    let mut w = match Worker::new(tid, spec, shared) {
        Ok(w) => w,
        Err(e) => {
            shared.abort.store(true, Ordering::SeqCst);
            shared.sync_start();
            return Err(e);
        }
    };
    let start = shared.sync_start();
    if shared.abort.load(Ordering::SeqCst) {
        return Err("aborted".into());
    }
    let mut preload_ns = 0;
    if spec.preload {
        let ph = Phase {
            kind: PhaseKind::Preload,
            measure_start: u64::MAX,
            send_end: u64::MAX,
            hard_end: u64::MAX,
            t0: 0,
            period: 0.0,
            next_j: 0,
            gen_quota: None,
            gen_done: true,
        };
        w.wait_until(start);
        w.run_phase(ph);
        preload_ns = now_ns().saturating_sub(start);
    }
    let start = if spec.preload { shared.sync_start() } else { start };
    shared.phase_main.store(true, Ordering::Relaxed);
    let measure_start = start + spec.warmup_ns;
    let (send_end, hard_end) = if spec.requests.is_some() {
        (u64::MAX, u64::MAX)
    } else {
        let e = measure_start + spec.duration_ns;
        (e, e + spec.drain_timeout_ns)
    };
    w.st.measure_start = measure_start;
    let mut ph = Phase {
        kind: PhaseKind::Closed,
        measure_start,
        send_end,
        hard_end,
        t0: start,
        period: 0.0,
        next_j: 0,
        gen_quota: None,
        gen_done: true,
    };
    if let Some(rate) = spec.rate {
        let thread_rate = rate / spec.threads as f64;
        ph.kind = PhaseKind::Open;
        ph.period = 1e9 / thread_rate;
        // Stagger threads inside one period so that the global schedule is even.
        ph.t0 = start + (ph.period * tid as f64 / spec.threads as f64) as u64;
        ph.gen_done = false;
        ph.gen_quota = spec.requests.map(|n| share(n, spec.threads as u64, tid as u64));
    } else if let Some(n) = spec.requests {
        w.quota_total = 0;
        for c in w.conns.iter_mut() {
            let q = share(n, w.total_conns, c.gidx);
            c.quota = Some(q);
            w.quota_total += q;
        }
    }
    w.wait_until(start);
    w.run_phase(ph);
    let st = &mut w.st;
    Ok(ThreadResult {
        hists: std::mem::take(&mut st.hists),
        errors: std::mem::take(&mut st.errors),
        intervals: st.intervals.take().unwrap_or_default(),
        measure_start_ns: measure_start,
        last_reply_ns: st.last_reply,
        preload_ns,
        preload_errors: st.preload_errors,
        verify_checked: st.v_checked,
        verify_mismatches: st.v_mismatch,
        verify_examples: std::mem::take(&mut st.v_examples),
    })
}

/// Share `n` items over `parts`; the share of part `i`.
pub fn share(n: u64, parts: u64, i: u64) -> u64 {
    n / parts + u64::from(i < n % parts)
}

fn pin_to_cpu(cpu: usize) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data; CPU_SET checks nothing but cpu < 1024 is enforced by the parser.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(())
}

/// Blocking connect + HELLO/AUTH/SELECT, then switch to non-blocking.
pub fn connect(addr: &SocketAddr, auth: &Auth) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_nodelay(true).ok();
    handshake(&mut s, auth)?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(s)
}

fn encode_args(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn handshake(s: &mut TcpStream, auth: &Auth) -> Result<(), String> {
    let mut names: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let user = auth.user.as_deref().unwrap_or("default");
    if auth.resp3 {
        match &auth.password {
            Some(pw) => encode_args(&mut out, &["HELLO", "3", "AUTH", user, pw]),
            None => encode_args(&mut out, &["HELLO", "3"]),
        }
        names.push("HELLO 3");
    } else if let Some(pw) = &auth.password {
        match &auth.user {
            Some(u) => encode_args(&mut out, &["AUTH", u, pw]),
            None => encode_args(&mut out, &["AUTH", pw]),
        }
        names.push("AUTH");
    }
    let db;
    if let Some(d) = auth.db {
        db = d.to_string();
        encode_args(&mut out, &["SELECT", &db]);
        names.push("SELECT");
    }
    if names.is_empty() {
        return Ok(());
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(&out).map_err(|e| format!("handshake write: {e}"))?;
    let mut buf = vec![0u8; 0];
    let mut start = 0;
    let mut parser = RespCounter::new();
    let mut got = 0;
    let mut chunk = [0u8; 4096];
    while got < names.len() {
        let (used, r) = parser.feed(&buf[start..]).map_err(|e| format!("handshake: {e}"))?;
        match r {
            Some(Reply::Error { kind }) => {
                let a = start + kind.0;
                let end = buf[a..].iter().position(|&c| c == b'\r').map(|p| a + p).unwrap_or(buf.len());
                return Err(format!("{} failed: {}", names[got], String::from_utf8_lossy(&buf[a..end])));
            }
            Some(Reply::Push) => {}
            Some(_) => got += 1,
            None => {
                let n = s.read(&mut chunk).map_err(|e| format!("handshake read: {e}"))?;
                if n == 0 {
                    return Err("server closed the connection during handshake".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        start += used;
    }
    s.set_read_timeout(None).ok();
    Ok(())
}

fn epoll_ctl(epfd: i32, op: i32, fd: i32, events: u32, token: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: valid epoll fd and event pointer.
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

enum ConnErr {
    Protocol,
}

impl<'a> Drop for Worker<'a> {
    fn drop(&mut self) {
        if let Io::Uring(u) = &mut self.io {
            // Buffers must outlive the operations that use them: shut down and cancel everything
            // still in flight, then wait for all completions before anything is freed.
            for (i, c) in self.conns.iter().enumerate() {
                if let Some(s) = c.stream.as_ref().or(c.closing.as_ref()) {
                    u.abort_conn_ops(i, s.as_raw_fd(), c.recv_busy, c.send_busy);
                }
            }
            if u.timer_busy {
                u.push_cancel(OP_TIMER);
                // Also let the timer fire at once, in case the READ is past cancelling.
                let mut its: libc::itimerspec = unsafe { std::mem::zeroed() };
                its.it_value.tv_nsec = 1;
                // SAFETY: valid timerfd and itimerspec.
                unsafe { libc::timerfd_settime(self.tfd, 0, &its, std::ptr::null_mut()) };
            }
            let give_up = now_ns() + URING_DRAIN_NS;
            let ts = types::Timespec::new().nsec(50_000_000);
            while u.ops > 0 && now_ns() < give_up {
                let args = types::SubmitArgs::new().timespec(&ts);
                let _ = u.ring.submitter().submit_with_args(1, &args);
                u.reap();
                u.cqes.clear();
            }
            if u.ops > 0 {
                // The kernel may still write into these buffers: leak them rather than free them.
                eprintln!(
                    "tessera-loadgen: warning: {} io_uring operations did not complete; leaking their buffers",
                    u.ops
                );
                std::mem::forget(std::mem::take(&mut self.conns));
                if let Io::Uring(u) = std::mem::replace(&mut self.io, Io::Epoll { epfd: -1, events: Vec::new() }) {
                    std::mem::forget(u);
                }
            }
        }
        self.conns.clear();
        // SAFETY: fds owned by this worker.
        unsafe {
            libc::close(self.tfd);
            if let Io::Epoll { epfd, .. } = self.io {
                if epfd >= 0 {
                    libc::close(epfd);
                }
            }
        }
    }
}

impl<'a> Worker<'a> {
    fn new(tid: usize, spec: &'a RunSpec, shared: &'a Shared) -> Result<Worker<'a>, String> {
        let mut io = None;
        if spec.engine == Engine::IoUring {
            // Room for every operation that can be queued in one loop iteration
            // (RECV, SEND and two cancels per connection, plus the timer).
            let entries = (4 * spec.conns_per_thread as u32 + 16).next_power_of_two().min(32768);
            match Uring::new(entries) {
                Ok(u) => io = Some(Io::Uring(Box::new(u))),
                Err(e) => {
                    static WARNED: AtomicBool = AtomicBool::new(false);
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        eprintln!("tessera-loadgen: warning: io_uring unavailable ({e}), falling back to the epoll engine");
                    }
                }
            }
        }
        let io = match io {
            Some(io) => io,
            None => {
                // SAFETY: plain syscall; result checked.
                let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
                if epfd < 0 {
                    return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
                }
                let events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
                Io::Epoll { epfd, events }
            }
        };
        // io_uring reads the timerfd with a (blocking) READ op; epoll needs it non-blocking.
        let tflags = match io {
            Io::Epoll { .. } => libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            Io::Uring(_) => libc::TFD_CLOEXEC,
        };
        // SAFETY: plain syscall; result checked.
        let tfd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, tflags) };
        if tfd < 0 {
            if let Io::Epoll { epfd, .. } = io {
                // SAFETY: our own fd.
                unsafe { libc::close(epfd) };
            }
            return Err(format!("timerfd_create: {}", std::io::Error::last_os_error()));
        }
        let wl: &Workload = &spec.workload;
        let nstats = wl.stat_names.len();
        let total_conns = (spec.threads * spec.conns_per_thread) as u64;
        let mut w = Worker {
            tid,
            spec,
            wl,
            shared,
            io,
            tfd,
            armed: 0,
            conns: Vec::new(),
            st: Stats {
                hists: (0..nstats).map(|_| Histogram::new(3).expect("histogram")).collect(),
                errors: Vec::new(),
                intervals: if spec.hdr_intervals { Some(Vec::new()) } else { None },
                progress: if spec.progress { Some(Histogram::new(3).expect("histogram")) } else { None },
                progress_pending: 0,
                measure_start: u64::MAX,
                last_reply: 0,
                preload_errors: 0,
                v_checked: 0,
                v_mismatch: 0,
                v_examples: Vec::new(),
                scratch: Vec::new(),
                nstats,
            },
            total_conns,
            disconnected: 0,
            inflight_total: 0,
            quota_total: u64::MAX,
            backlog_total: 0,
        };
        match &mut w.io {
            Io::Epoll { epfd, .. } => epoll_ctl(*epfd, libc::EPOLL_CTL_ADD, tfd, libc::EPOLLIN as u32, TIMER_TOKEN).map_err(|e| format!("epoll_ctl: {e}"))?,
            Io::Uring(u) => u.push_timer_read(tfd),
        }
        for i in 0..spec.conns_per_thread {
            let gidx = (tid * spec.conns_per_thread + i) as u64;
            let stream = connect(&spec.addr, &spec.auth)?;
            let seq_start = share(wl.keys, total_conns, 0) * gidx % wl.keys;
            w.conns.push(Conn {
                gidx,
                stream: Some(stream),
                rbuf: vec![0u8; READ_CHUNK],
                rstart: 0,
                rend: 0,
                wbuf: Vec::with_capacity(4096),
                wpos: 0,
                want_out: false,
                sbuf: Vec::with_capacity(4096),
                spos: 0,
                recv_busy: false,
                send_busy: false,
                closing: None,
                inflight: VecDeque::with_capacity(spec.pipeline),
                parser: RespCounter::new(),
                rng: Rng::new(spec.seed.wrapping_add(gidx.wrapping_mul(0x2545_F491_4F6C_DD1D))),
                ks: KeyState::new(seq_start),
                keybuf: Vec::with_capacity(64),
                valbuf: Vec::new(),
                quota: None,
                preload_next: gidx,
                backlog_j: 0,
                backlog_n: 0,
                reconnect_at: 0,
                last_rx: 0,
                failures: 0,
                dead: false,
                vmap: HashMap::new(),
                vseq: 0,
                vfailed: HashSet::new(),
            });
            w.attach(i).map_err(|e| format!("attaching connection: {e}"))?;
        }
        Ok(w)
    }

    /// Register a freshly (re)connected socket with the I/O layer.
    fn attach(&mut self, i: usize) -> std::io::Result<()> {
        let Some(s) = self.conns[i].stream.as_ref() else { return Ok(()) };
        match &mut self.io {
            Io::Epoll { epfd, .. } => epoll_ctl(*epfd, libc::EPOLL_CTL_ADD, s.as_raw_fd(), libc::EPOLLIN as u32, i as u64),
            Io::Uring(_) => {
                // Blocking socket: io_uring tries the operation non-blocking and arms an internal poll.
                s.set_nonblocking(false)?;
                if self.submit_recv(i) {
                    Ok(())
                } else {
                    Err(std::io::Error::other("io_uring submission queue full"))
                }
            }
        }
    }

    /// io_uring: keep one RECV in flight into the free tail of the read buffer.
    fn submit_recv(&mut self, i: usize) -> bool {
        let Io::Uring(u) = &mut self.io else { return true };
        let c = &mut self.conns[i];
        let Some(fd) = c.stream.as_ref().map(|s| s.as_raw_fd()) else { return true };
        debug_assert!(!c.recv_busy);
        make_room(c);
        let space = &mut c.rbuf[c.rend..];
        let e = opcode::Recv::new(types::Fd(fd), space.as_mut_ptr(), space.len() as u32)
            .build()
            .user_data((i as u64) << 8 | OP_RECV);
        // SAFETY: `rbuf` is neither resized nor freed while `recv_busy` (see `Conn`, `Worker::drop`).
        c.recv_busy = unsafe { u.push(&e) };
        c.recv_busy
    }

    /// io_uring: if no SEND is in flight, send what has been encoded (or the rest of a short send).
    fn submit_send(&mut self, i: usize) -> bool {
        let Io::Uring(u) = &mut self.io else { return true };
        let c = &mut self.conns[i];
        let Some(s) = c.stream.as_ref() else { return true };
        if c.send_busy {
            return true;
        }
        if c.spos == c.sbuf.len() {
            if c.wbuf.is_empty() {
                return true;
            }
            c.sbuf.clear();
            std::mem::swap(&mut c.sbuf, &mut c.wbuf);
            c.spos = 0;
        }
        let data = &c.sbuf[c.spos..];
        let e = opcode::Send::new(types::Fd(s.as_raw_fd()), data.as_ptr(), data.len() as u32)
            .build()
            .user_data((i as u64) << 8 | OP_SEND);
        // SAFETY: `sbuf` is not touched while `send_busy` and not freed before the drain in `Worker::drop`.
        c.send_busy = unsafe { u.push(&e) };
        c.send_busy
    }

    fn wait_until(&self, t: u64) {
        let now = now_ns();
        if t > now {
            std::thread::sleep(Duration::from_nanos(t - now));
        }
    }

    fn arm_timer(&mut self, deadline: u64) {
        if deadline == self.armed {
            return;
        }
        self.armed = deadline;
        let mut its: libc::itimerspec = unsafe { std::mem::zeroed() };
        if deadline != u64::MAX {
            let d = deadline.max(1);
            its.it_value.tv_sec = (d / NS) as libc::time_t;
            its.it_value.tv_nsec = (d % NS) as libc::c_long;
        }
        // SAFETY: valid timerfd and itimerspec.
        unsafe { libc::timerfd_settime(self.tfd, libc::TFD_TIMER_ABSTIME, &its, std::ptr::null_mut()) };
    }

    fn publish_progress(&mut self) {
        if self.st.progress_pending > 0 {
            self.shared.counters[self.tid].0.fetch_add(self.st.progress_pending, Ordering::Relaxed);
            self.st.progress_pending = 0;
        }
    }

    fn merge_progress_hist(&mut self) {
        if let Some(p) = self.st.progress.as_mut() {
            if let Ok(mut g) = self.shared.progress_hist.lock() {
                let _ = g.add(&*p);
            }
            p.reset();
        }
    }

    fn run_phase(&mut self, mut ph: Phase) {
        let n = self.conns.len();
        let progress = self.st.progress.is_some();
        let mut next_tick = now_ns() + NS;
        let housekeeping = (self.spec.reply_timeout_ns / 4).clamp(1_000_000, NS / 4);
        let mut next_check = now_ns() + housekeeping;
        // Kick off every connection.
        let now = now_ns();
        for i in 0..n {
            self.service(i, &ph, now);
        }
        loop {
            let now = now_ns();
            // Open loop: hand every request whose intended time has come to its connection.
            if ph.kind == PhaseKind::Open && !ph.gen_done {
                let first_j = ph.next_j;
                loop {
                    let t = ph.t_of(ph.next_j);
                    if t >= ph.send_end {
                        ph.gen_done = true;
                        break;
                    }
                    if t > now {
                        break;
                    }
                    if t >= ph.measure_start {
                        if let Some(q) = ph.gen_quota.as_mut() {
                            if *q == 0 {
                                ph.gen_done = true;
                                break;
                            }
                            *q -= 1;
                        }
                    }
                    let c = &mut self.conns[(ph.next_j % n as u64) as usize];
                    ph.next_j += 1;
                    if c.dead {
                        if t >= ph.measure_start {
                            self.st.add_error(b"connection", 1);
                        }
                        continue;
                    }
                    if c.backlog_n == 0 {
                        c.backlog_j = ph.next_j - 1;
                    }
                    c.backlog_n += 1;
                    self.backlog_total += 1;
                }
                // Only the connections that just received work need a look.
                let last_j = ph.next_j.min(first_j + n as u64);
                for j in first_j..last_j {
                    self.service((j % n as u64) as usize, &ph, now);
                }
            }
            if self.disconnected > 0 {
                self.reconnect_due(&ph, now);
            }
            if now >= next_check {
                self.check_stalled(&ph, now);
                next_check = now + housekeeping;
            }
            if progress && now >= next_tick {
                self.publish_progress();
                self.merge_progress_hist();
                next_tick = now + NS;
            }
            if self.finished(&ph, now) {
                break;
            }
            if now >= ph.hard_end {
                self.give_up(&ph);
                break;
            }
            // Next timed event.
            let mut dl = u64::MAX;
            if ph.kind == PhaseKind::Open && !ph.gen_done {
                dl = dl.min(ph.t_of(ph.next_j));
            }
            if now < ph.send_end {
                dl = dl.min(ph.send_end);
            } else {
                dl = dl.min(ph.hard_end);
            }
            if progress {
                dl = dl.min(next_tick);
            }
            if self.inflight_total > 0 {
                dl = dl.min(next_check);
            }
            if self.disconnected > 0 {
                for c in &self.conns {
                    if c.stream.is_none() && c.closing.is_none() && !c.dead {
                        dl = dl.min(c.reconnect_at);
                    }
                }
            }
            let wait = dl > now;
            if wait {
                self.arm_timer(dl);
            }
            let ok = match self.io {
                Io::Epoll { .. } => self.epoll_step(&ph, wait),
                Io::Uring(_) => self.uring_step(&ph, wait),
            };
            if !ok {
                self.give_up(&ph);
                break;
            }
            if progress {
                self.publish_progress();
            }
        }
        self.publish_progress();
        self.merge_progress_hist();
    }

    /// io_uring: one `io_uring_enter` (submit everything queued, wait for a completion if `wait`),
    /// then handle the completions. False on a fatal error.
    fn uring_step(&mut self, ph: &Phase, wait: bool) -> bool {
        let Io::Uring(u) = &mut self.io else { return false };
        if let Err(e) = u.enter(usize::from(wait)) {
            eprintln!("tessera-loadgen: io_uring_enter: {e}");
            return false;
        }
        self.on_completions(ph);
        true
    }

    /// epoll: one `epoll_wait` (blocking if `wait`), then handle the ready sockets. False on a fatal error.
    fn epoll_step(&mut self, ph: &Phase, wait: bool) -> bool {
        let Io::Epoll { epfd, events } = &mut self.io else { return false };
        let mut events = std::mem::take(events);
        let epfd = *epfd;
        let n = self.conns.len();
        // SAFETY: events buffer is valid for its length.
        let nev = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, if wait { -1 } else { 0 }) };
        let mut ok = true;
        if nev < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                eprintln!("tessera-loadgen: epoll_wait: {e}");
                ok = false;
            }
        }
        for ev in events.iter().take(nev.max(0) as usize).copied() {
            let token = ev.u64;
            if token == TIMER_TOKEN {
                let mut b = [0u8; 8];
                // SAFETY: reading 8 bytes from our timerfd into a local buffer.
                unsafe { libc::read(self.tfd, b.as_mut_ptr() as *mut libc::c_void, 8) };
                self.armed = 0;
                continue;
            }
            let i = token as usize;
            if i >= n || self.conns[i].stream.is_none() {
                continue;
            }
            let flags = ev.events;
            let mut ok = true;
            if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                ok = self.on_readable(i, ph).is_ok();
            }
            if ok && flags & libc::EPOLLOUT as u32 != 0 {
                ok = self.flush(i).is_ok();
                if !ok {
                    self.conn_failed(i, ph, now_ns(), b"connection");
                }
            }
            if ok {
                self.service(i, ph, 0);
            }
        }
        if let Io::Epoll { events: e, .. } = &mut self.io {
            *e = events;
        }
        ok
    }

    /// Whether the phase is over (everything sent and answered).
    fn finished(&self, ph: &Phase, now: u64) -> bool {
        // Cheap early outs for the hot path.
        match ph.kind {
            PhaseKind::Closed if now < ph.send_end && self.spec.requests.is_none() => return false,
            PhaseKind::Open if !ph.gen_done => return false,
            _ => {}
        }
        match ph.kind {
            PhaseKind::Preload => self.conns.iter().all(|c| c.dead || (c.preload_next >= self.wl.keys && c.inflight.is_empty())),
            PhaseKind::Closed => self.inflight_total == 0 && (now >= ph.send_end || self.quota_total == 0),
            PhaseKind::Open => ph.gen_done && self.backlog_total == 0 && self.inflight_total == 0,
        }
    }

    /// Drain timeout: count what is still outstanding as errors.
    fn give_up(&mut self, ph: &Phase) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let mut lost = c.inflight.iter().filter(|p| p.measured).count() as u64;
            if ph.kind == PhaseKind::Open {
                for m in 0..c.backlog_n {
                    if ph.t_of(c.backlog_j + m * self.conns.len() as u64) >= ph.measure_start {
                        lost += 1;
                    }
                }
            }
            let kind: &[u8] = if c.stream.is_some() { b"timeout" } else { b"connection" };
            self.st.add_error(kind, lost);
        }
    }

    /// Issue as many requests as the load model allows on connection `i`, then write them.
    /// `now` = 0 means "read the clock if needed".
    fn service(&mut self, i: usize, ph: &Phase, now: u64) {
        if self.conns[i].stream.is_none() {
            return;
        }
        let pipeline = self.spec.pipeline;
        let nconns = self.conns.len() as u64;
        let mut issued = false;
        match ph.kind {
            PhaseKind::Preload => {
                while self.conns[i].inflight.len() < pipeline && self.conns[i].preload_next < self.wl.keys {
                    self.issue(i, 0, false, true);
                    issued = true;
                }
            }
            PhaseKind::Closed => {
                let c = &self.conns[i];
                if c.inflight.len() < pipeline && c.quota != Some(0) {
                    let t = if now == 0 { now_ns() } else { now };
                    if t < ph.send_end {
                        let measured = t >= ph.measure_start;
                        while self.conns[i].inflight.len() < pipeline && self.conns[i].quota != Some(0) {
                            if measured {
                                if let Some(q) = self.conns[i].quota.as_mut() {
                                    *q -= 1;
                                    self.quota_total -= 1;
                                }
                            }
                            self.issue(i, t, measured, false);
                            issued = true;
                        }
                    }
                }
            }
            PhaseKind::Open => {
                while self.conns[i].backlog_n > 0 && self.conns[i].inflight.len() < pipeline {
                    let c = &mut self.conns[i];
                    let t = ph.t_of(c.backlog_j);
                    c.backlog_j += nconns;
                    c.backlog_n -= 1;
                    self.backlog_total -= 1;
                    self.issue(i, t, t >= ph.measure_start, false);
                    issued = true;
                }
            }
        }
        if (issued || self.conns[i].wpos < self.conns[i].wbuf.len()) && self.flush(i).is_err() {
            self.conn_failed(i, ph, now_ns(), b"connection");
        }
    }

    /// Encode one request into connection `i`'s write buffer.
    #[inline]
    fn issue(&mut self, i: usize, t: u64, measured: bool, preload: bool) {
        let wl = self.wl;
        let verify = self.spec.verify;
        let total = self.total_conns;
        let c = &mut self.conns[i];
        let (ti, key) = if preload {
            let k = c.preload_next;
            c.preload_next += total;
            (PRELOAD_TMPL, k)
        } else {
            let ti = wl.pick(&mut c.rng);
            let mut k = next_key(&wl.dist, wl.keys, &mut c.ks, &mut c.rng);
            if verify {
                k = own_key(k, c.gidx, total, wl.keys);
            }
            (ti as u32, k)
        };
        let tmpl = if preload { &wl.preload } else { &wl.templates[ti as usize] };
        wl.key_name(key, &mut c.keybuf);
        let mut p = Pending {
            t,
            key,
            tmpl: ti,
            vseq: 0,
            vlen: 0,
            measured,
        };
        if tmpl.uses_data {
            let size = wl.sizes.pick(&mut c.rng);
            if verify && tmpl.kind == CmdKind::Set {
                c.vseq += 1;
                verify_value(&mut c.valbuf, key, c.vseq, size);
                p.vseq = c.vseq;
                p.vlen = c.valbuf.len() as u32;
                c.vmap.insert(key, (p.vseq, p.vlen));
                encode(tmpl, &mut c.wbuf, &c.keybuf, &c.valbuf);
            } else {
                encode(tmpl, &mut c.wbuf, &c.keybuf, wl.filler(size));
            }
        } else {
            if verify && tmpl.kind == CmdKind::Get {
                if let Some(&(s, l)) = c.vmap.get(&key) {
                    p.vseq = s;
                    p.vlen = l;
                }
            }
            encode(tmpl, &mut c.wbuf, &c.keybuf, &[]);
        }
        if c.inflight.is_empty() {
            c.last_rx = now_ns();
        }
        c.inflight.push_back(p);
        self.inflight_total += 1;
    }

    /// Write as much of the buffer as the socket takes (io_uring: queue a SEND unless one is in flight).
    fn flush(&mut self, i: usize) -> Result<(), ()> {
        let epfd = match &self.io {
            Io::Epoll { epfd, .. } => *epfd,
            Io::Uring(_) => return if self.submit_send(i) { Ok(()) } else { Err(()) },
        };
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_ref() else { return Err(()) };
        let mut s: &TcpStream = stream;
        while c.wpos < c.wbuf.len() {
            match s.write(&c.wbuf[c.wpos..]) {
                Ok(0) => return Err(()),
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !c.want_out {
                        c.want_out = true;
                        let _ = epoll_ctl(epfd, libc::EPOLL_CTL_MOD, stream.as_raw_fd(), (libc::EPOLLIN | libc::EPOLLOUT) as u32, i as u64);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        c.wbuf.clear();
        c.wpos = 0;
        if c.want_out {
            c.want_out = false;
            let _ = epoll_ctl(epfd, libc::EPOLL_CTL_MOD, stream.as_raw_fd(), libc::EPOLLIN as u32, i as u64);
        }
        Ok(())
    }

    /// epoll: read until the socket is drained.
    fn on_readable(&mut self, i: usize, ph: &Phase) -> Result<(), ()> {
        loop {
            let c = &mut self.conns[i];
            make_room(c);
            let space = c.rbuf.len() - c.rend;
            let Some(stream) = c.stream.as_ref() else { return Err(()) };
            let mut s: &TcpStream = stream;
            let res = s.read(&mut c.rbuf[c.rend..]);
            let n = match res {
                Ok(0) => {
                    self.conn_failed(i, ph, now_ns(), b"connection");
                    return Err(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.conn_failed(i, ph, now_ns(), b"connection");
                    return Err(());
                }
            };
            self.on_data(i, n, ph)?;
            if n < space {
                return Ok(());
            }
        }
    }

    /// `n` bytes arrived at `rbuf[rend..]` (both engines): count and check the replies.
    fn on_data(&mut self, i: usize, n: usize, ph: &Phase) -> Result<(), ()> {
        let c = &mut self.conns[i];
        c.rend += n;
        let now = now_ns();
        c.last_rx = now;
        match self.process_replies(i, now) {
            Ok(()) => Ok(()),
            Err(ConnErr::Protocol) => {
                self.st.add_error(b"protocol", 1);
                self.conn_failed(i, ph, now, b"connection");
                Err(())
            }
        }
    }

    /// io_uring: handle the completions of one `enter`.
    fn on_completions(&mut self, ph: &Phase) {
        let Io::Uring(u) = &mut self.io else { return };
        let mut cqes = std::mem::take(&mut u.cqes);
        for &(ud, res) in &cqes {
            let op = ud & 0xff;
            let i = (ud >> 8) as usize;
            match op {
                OP_TIMER => {
                    if let Io::Uring(u) = &mut self.io {
                        u.timer_busy = false;
                        self.armed = 0;
                        if res != -libc::ECANCELED {
                            u.push_timer_read(self.tfd);
                        }
                    }
                }
                OP_RECV => self.on_recv(i, res, ph),
                OP_SEND => self.on_send(i, res, ph),
                _ => {} // cancel results
            }
        }
        cqes.clear();
        if let Io::Uring(u) = &mut self.io {
            u.cqes = cqes;
        }
    }

    fn on_recv(&mut self, i: usize, res: i32, ph: &Phase) {
        let c = &mut self.conns[i];
        c.recv_busy = false;
        if c.stream.is_none() {
            self.finish_close(i);
            return;
        }
        if res > 0 {
            if self.on_data(i, res as usize, ph).is_err() {
                return;
            }
        } else if res == 0 || !matches!(-res, libc::EINTR | libc::EAGAIN | libc::ENOBUFS | libc::ECANCELED) {
            self.conn_failed(i, ph, now_ns(), b"connection");
            return;
        }
        if !self.submit_recv(i) {
            self.conn_failed(i, ph, now_ns(), b"connection");
            return;
        }
        self.service(i, ph, 0);
    }

    fn on_send(&mut self, i: usize, res: i32, ph: &Phase) {
        let c = &mut self.conns[i];
        c.send_busy = false;
        if c.stream.is_none() {
            self.finish_close(i);
            return;
        }
        if res > 0 {
            c.spos += res as usize;
        } else if res == 0 || !matches!(-res, libc::EINTR | libc::EAGAIN | libc::ENOBUFS | libc::ECANCELED) {
            self.conn_failed(i, ph, now_ns(), b"connection");
            return;
        }
        // Rest of a short send, else the next batch.
        if !self.submit_send(i) {
            self.conn_failed(i, ph, now_ns(), b"connection");
        }
    }

    /// io_uring: a failed connection's last operation completed; close it for good.
    fn finish_close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.recv_busy && !c.send_busy {
            c.closing = None;
            c.sbuf.clear();
            c.spos = 0;
            c.rstart = 0;
            c.rend = 0;
        }
    }

    fn process_replies(&mut self, i: usize, now: u64) -> Result<(), ConnErr> {
        let wl = self.wl;
        let verify = self.spec.verify;
        let c = &mut self.conns[i];
        let st = &mut self.st;
        let before = c.inflight.len();
        let res = Self::replies_inner(wl, verify, c, st, now);
        self.inflight_total -= (before - self.conns[i].inflight.len()) as u64;
        res
    }

    #[inline]
    fn replies_inner(wl: &Workload, verify: bool, c: &mut Conn, st: &mut Stats, now: u64) -> Result<(), ConnErr> {
        loop {
            let base = c.rstart;
            let (used, r) = match c.parser.feed(&c.rbuf[base..c.rend]) {
                Ok(x) => x,
                Err(_) => return Err(ConnErr::Protocol),
            };
            c.rstart += used;
            let Some(r) = r else { break };
            if r == Reply::Push {
                continue;
            }
            let Some(p) = c.inflight.pop_front() else { return Err(ConnErr::Protocol) };
            let buf = &c.rbuf[base..];
            let is_err = matches!(r, Reply::Error { .. });
            if p.tmpl == PRELOAD_TMPL {
                if is_err {
                    st.preload_errors += 1;
                    if verify {
                        c.vfailed.insert(p.vseq);
                    }
                }
                continue;
            }
            let tmpl = &wl.templates[p.tmpl as usize];
            if let Reply::Error { kind } = r {
                if p.measured {
                    st.add_error(&buf[kind.0..kind.1], 1);
                }
                if verify && tmpl.kind == CmdKind::Set {
                    c.vfailed.insert(p.vseq);
                }
            }
            if verify && tmpl.kind == CmdKind::Get && p.vseq != 0 && !c.vfailed.contains(&p.vseq) {
                st.v_checked += 1;
                verify_value(&mut st.scratch, p.key, p.vseq, p.vlen as usize);
                let got: Option<&[u8]> = match r {
                    Reply::Bulk { data } => Some(&buf[data.0..data.1]),
                    _ => None,
                };
                if got != Some(&st.scratch[..]) {
                    st.v_mismatch += 1;
                    if st.v_examples.len() < MAX_VERIFY_EXAMPLES {
                        let mut k = Vec::new();
                        wl.key_name(p.key, &mut k);
                        let got_s = match (r, got) {
                            (_, Some(g)) => {
                                format!("{:?}", String::from_utf8_lossy(&g[..g.len().min(80)]))
                            }
                            (Reply::Null, _) => "(nil)".to_string(),
                            (Reply::Error { kind }, _) => {
                                format!("error {}", String::from_utf8_lossy(&buf[kind.0..kind.1]))
                            }
                            _ => "(non-bulk reply)".to_string(),
                        };
                        st.v_examples.push(format!(
                            "GET {}: expected {:?}, got {}",
                            String::from_utf8_lossy(&k),
                            String::from_utf8_lossy(&st.scratch),
                            got_s
                        ));
                    }
                }
            }
            if p.measured {
                st.record(tmpl.stat, now.saturating_sub(p.t), now);
            }
        }
        if c.rstart == c.rend {
            c.rstart = 0;
            c.rend = 0;
        } else if c.rstart > c.rbuf.len() / 2 {
            c.rbuf.copy_within(c.rstart..c.rend, 0);
            c.rend -= c.rstart;
            c.rstart = 0;
        }
        Ok(())
    }

    /// Socket error, EOF or protocol error: drop the connection, count what was lost.
    fn conn_failed(&mut self, i: usize, ph: &Phase, now: u64, kind: &[u8]) {
        let verify = self.spec.verify;
        let c = &mut self.conns[i];
        if c.stream.is_none() {
            return;
        }
        let lost = c.inflight.iter().filter(|p| p.measured).count() as u64;
        if verify {
            for p in c.inflight.iter() {
                if p.vseq != 0 && (p.tmpl == PRELOAD_TMPL || self.wl.templates[p.tmpl as usize].kind == CmdKind::Set) {
                    c.vfailed.insert(p.vseq);
                }
            }
        }
        let preload_lost = c.inflight.iter().filter(|p| p.tmpl == PRELOAD_TMPL).count() as u64;
        self.inflight_total -= c.inflight.len() as u64;
        c.inflight.clear();
        c.parser.reset();
        c.rstart = 0;
        c.rend = 0;
        c.wbuf.clear();
        c.wpos = 0;
        c.want_out = false;
        let stream = c.stream.take(); // closing the fd removes it from the epoll set
        if let (Io::Uring(u), Some(s)) = (&mut self.io, stream) {
            if c.recv_busy || c.send_busy {
                u.abort_conn_ops(i, s.as_raw_fd(), c.recv_busy, c.send_busy);
                c.closing = Some(s);
            } else {
                c.sbuf.clear();
                c.spos = 0;
            }
        }
        c.reconnect_at = now; // first retry at once
        self.disconnected += 1;
        if ph.kind == PhaseKind::Preload {
            self.st.preload_errors += preload_lost.max(1);
        } else {
            self.st.add_error(kind, lost.max(1));
        }
    }

    /// Drop connections that have waited too long for a reply.
    fn check_stalled(&mut self, ph: &Phase, now: u64) {
        let limit = self.spec.reply_timeout_ns;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.stream.is_some() && !c.inflight.is_empty() && now.saturating_sub(c.last_rx) > limit {
                self.conn_failed(i, ph, now, b"timeout");
            }
        }
    }

    fn reconnect_due(&mut self, ph: &Phase, now: u64) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.stream.is_some() || c.closing.is_some() || c.dead || now < c.reconnect_at {
                continue;
            }
            // No point reconnecting once this connection has nothing left to do.
            let idle = match ph.kind {
                PhaseKind::Preload => c.preload_next >= self.wl.keys,
                PhaseKind::Closed => now >= ph.send_end || c.quota == Some(0),
                PhaseKind::Open => ph.gen_done && c.backlog_n == 0,
            };
            if idle {
                self.mark_dead(i, ph);
                continue;
            }
            match connect(&self.spec.addr, &self.spec.auth) {
                Ok(s) => {
                    self.conns[i].stream = Some(s);
                    if self.attach(i).is_err() {
                        self.conns[i].stream = None;
                        continue;
                    }
                    let c = &mut self.conns[i];
                    c.failures = 0;
                    self.disconnected -= 1;
                    self.service(i, ph, 0);
                }
                Err(_) => {
                    let c = &mut self.conns[i];
                    c.failures += 1;
                    c.reconnect_at = now_ns() + RECONNECT_BACKOFF_NS;
                    if c.failures >= MAX_RECONNECT_FAILURES {
                        self.mark_dead(i, ph);
                    }
                    if ph.kind == PhaseKind::Preload {
                        self.st.preload_errors += 1;
                    } else {
                        self.st.add_error(b"connection", 1);
                    }
                }
            }
        }
    }
}

impl<'a> Worker<'a> {
    /// Give up on a disconnected connection: its remaining work is dropped.
    fn mark_dead(&mut self, i: usize, ph: &Phase) {
        let n = self.conns.len() as u64;
        let c = &mut self.conns[i];
        c.dead = true;
        self.disconnected -= 1;
        if let Some(q) = c.quota.take() {
            self.quota_total -= q;
            c.quota = Some(0);
        }
        let mut lost = 0;
        for m in 0..c.backlog_n {
            if ph.t_of(c.backlog_j + m * n) >= ph.measure_start {
                lost += 1;
            }
        }
        self.backlog_total -= c.backlog_n;
        c.backlog_n = 0;
        self.st.add_error(b"connection", lost);
    }
}

/// Make sure the read buffer has free space at its end (compact, else grow).
fn make_room(c: &mut Conn) {
    if c.rend == c.rbuf.len() {
        if c.rstart > 0 {
            c.rbuf.copy_within(c.rstart..c.rend, 0);
            c.rend -= c.rstart;
            c.rstart = 0;
        } else {
            let l = c.rbuf.len();
            c.rbuf.resize(l * 2, 0);
        }
    }
}

/// Map key `k` onto the keys owned by connection `c` of `total` (k' % total == c).
#[inline]
pub fn own_key(k: u64, c: u64, total: u64, keys: u64) -> u64 {
    let o = k - k % total + c;
    if o >= keys {
        o - total
    } else {
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_key_stays_in_partition_and_range() {
        for keys in [10u64, 11, 97, 1000] {
            for total in [1u64, 3, 10] {
                if keys < total {
                    continue;
                }
                for c in 0..total {
                    for k in 0..keys {
                        let o = own_key(k, c, total, keys);
                        assert!(o < keys && o % total == c, "k={k} c={c} total={total} keys={keys} -> {o}");
                    }
                }
            }
        }
    }

    #[test]
    fn shares_add_up() {
        for n in [0u64, 1, 7, 100, 1001] {
            for parts in [1u64, 3, 50] {
                assert_eq!((0..parts).map(|i| share(n, parts, i)).sum::<u64>(), n);
            }
        }
    }
}
