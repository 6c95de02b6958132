//! The shard's own socket ring: a completion-driven io_uring loop run as one
//! glommio task (the *driver*), which glommio keeps for tasks, timers and files.
//!
//! - The ring is created on the shard's thread with `COOP_TASKRUN |
//!   TASKRUN_FLAG` (the kernel never interrupts the thread to run our
//!   completion work; it flags it), a plain ring as the fallback;
//!   `SINGLE_ISSUER | DEFER_TASKRUN` only when asked for (see `setup`).
//! - Listeners get a multishot ACCEPT; each connection a multishot RECV into
//!   one shared provided-buffer ring. The connection parses straight from the
//!   buffer and gives it back once parsed ([`UringConn::consume`]).
//! - Replies are SENDs pushed by connection tasks; one `io_uring_enter` per
//!   driver pass submits them all and runs the kernel's pending receive work.
//!   One SEND per connection is in flight; later replies are appended behind it.
//!
//! Wake-up protocol (why no wake-up is lost; ARCHITECTURE.md has the whole
//! argument): an idle driver publishes how it sleeps in its inbox (`IN_RING`:
//! waiting in this ring; `PARKED`: glommio parked on this ring's eventfd),
//! fences, and looks once more at the inbox, the queues and the ring's
//! TASKRUN flag before sleeping. A sender pushes its job before it reads that
//! state and wakes the shard by MSG_RING from its own ring, or else by writing
//! the eventfd the shard sleeps on (never one whose wake-up would have to
//! signal another eventfd: the kernel defers such nested signals). The kernel
//! sets TASKRUN before it checks whether the ring's eventfd is enabled, which
//! the driver does before its last look. Connection tasks that queue a SEND
//! while the driver is idle wake it locally.

use crate::runtime;
use crate::runtime::inbox::{AWAKE, IN_RING, PARKED};
use crate::server::client::BufStats;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};

/// Provided buffers: count and size (8 MiB of receive space per shard at most,
/// touched only as far as the traffic needs).
const BUF_COUNT: u16 = 512;
const BUF_SIZE: usize = 16 * 1024;
const BGID: u16 = 0;
/// Received chunks a connection may hold before its receive is paused.
const RX_MAX: usize = 32;
const RING_ENTRIES: u32 = 1024;
/// Send buffers larger than this are not kept for reuse.
const SEND_BUF_KEEP: usize = 64 * 1024;

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_CANCEL: u64 = 4;
/// The read of the inbox eventfd, kept armed in our own ring.
const OP_INBOX: u64 = 5;
/// A MSG_RING wake-up from another shard's ring (nothing to do: jobs are drained every pass).
const OP_WAKE: u64 = 6;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The idle path's knobs, read once per shard at start-up.
struct Knobs {
    /// How long an idle driver waits in its own ring before parking the whole
    /// executor (µs; 0: park at once). glommio's park costs a membarrier and
    /// several ring operations, a wait in our ring one `io_uring_enter`;
    /// glommio's timers and foreign wake-ups are late by at most this much.
    wait_us: u64,
    /// Busy-poll before that wait (µs; 0: none).
    spin_us: u64,
    /// Cross-shard wake-ups by MSG_RING rather than eventfd writes.
    msg_ring: bool,
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            wait_us: env_u64("TESSERA_RING_WAIT_US", 200),
            spin_us: env_u64("TESSERA_RING_SPIN_US", 0),
            msg_ring: env_u64("TESSERA_MSG_RING", 1) != 0,
        }
    }
}

#[inline]
fn ud(op: u64, idx: u32, gen: u32) -> u64 {
    op | (idx as u64) << 8 | (gen as u64) << 32
}

#[inline]
fn ud_split(u: u64) -> (u64, u32, u32) {
    (u & 0xff, ((u >> 8) & 0xff_ffff) as u32, (u >> 32) as u32)
}

/// Process-wide counters of the socket loops (INFO).
pub struct NetCounters {
    /// Shards serving sockets through their own ring.
    pub shards: AtomicU64,
    /// Idle waits inside our own ring, and those that timed out into a park.
    pub ring_waits: AtomicU64,
    pub ring_wait_timeouts: AtomicU64,
    pub spin_hits: AtomicU64,
    pub msg_ring_wakes: AtomicU64,
    pub enters: AtomicU64,
    pub passes: AtomicU64,
    pub idle_waits: AtomicU64,
    pub completions: AtomicU64,
    /// Connections handed to another shard (`server/migrate.rs`).
    pub migrations: AtomicU64,
}

pub static COUNTERS: NetCounters = NetCounters {
    shards: AtomicU64::new(0),
    ring_waits: AtomicU64::new(0),
    ring_wait_timeouts: AtomicU64::new(0),
    spin_hits: AtomicU64::new(0),
    msg_ring_wakes: AtomicU64::new(0),
    enters: AtomicU64::new(0),
    passes: AtomicU64::new(0),
    idle_waits: AtomicU64::new(0),
    completions: AtomicU64::new(0),
    migrations: AtomicU64::new(0),
};

/// The provided-buffer ring: entry ring shared with the kernel plus the buffers.
struct BufRing {
    ring: *mut types::BufRingEntry,
    ring_layout: std::alloc::Layout,
    mem: Vec<u8>,
    tail: u16,
    free: usize,
}

impl BufRing {
    fn new(ring: &IoUring) -> std::io::Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(BUF_COUNT as usize * std::mem::size_of::<types::BufRingEntry>(), 4096)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: non-zero layout; zeroed memory is a valid empty ring.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut types::BufRingEntry;
        if ptr.is_null() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        }
        let mut b = BufRing {
            ring: ptr,
            ring_layout: layout,
            mem: vec![0u8; BUF_COUNT as usize * BUF_SIZE],
            tail: 0,
            free: 0,
        };
        // SAFETY: the entry ring lives as long as the driver, which unregisters nothing
        // before the ring itself is destroyed (Driver drops the ring first).
        unsafe { ring.submitter().register_buf_ring_with_flags(ptr as u64, BUF_COUNT, BGID, 0)? };
        for bid in 0..BUF_COUNT {
            b.push(bid);
        }
        b.publish();
        Ok(b)
    }

    fn push(&mut self, bid: u16) {
        let mask = BUF_COUNT - 1;
        // SAFETY: the index is masked into the ring we allocated.
        let e = unsafe { &mut *self.ring.add((self.tail & mask) as usize) };
        e.set_addr(self.mem.as_ptr() as u64 + bid as u64 * BUF_SIZE as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.free += 1;
    }

    /// Makes pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field overlays entry 0's reserved field, as the kernel expects.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring) as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the kernel ring is gone by now.
        unsafe { std::alloc::dealloc(self.ring as *mut u8, self.ring_layout) };
    }
}

#[derive(Default)]
struct Slot {
    gen: u32,
    fd: RawFd,
    open: bool,
    /// The connection task finished: free once no operation is in flight.
    closing: bool,
    rx: VecDeque<(u16, u32)>,
    rx_done: bool,
    recv_armed: bool,
    recv_cancelled: bool,
    rx_waker: Option<Waker>,
    /// The SEND in flight: its buffer and how much of it was written.
    tx: Option<(Vec<u8>, usize)>,
    /// Bytes queued behind the SEND in flight.
    tx_more: Vec<u8>,
    tx_broken: bool,
    tx_waker: Option<Waker>,
    out_pending: Option<Rc<ClientBufs>>,
    /// The connection is moving to another shard: its receive is cancelled
    /// and must not be re-armed here.
    detaching: bool,
}

/// What the driver updates for CLIENT LIST when a send completes.
pub type ClientBufs = crate::server::client::ClientShared;

struct Listener {
    fd: RawFd,
    gen: u32,
    armed: bool,
    retired: bool,
}

pub struct Driver {
    ring: IoUring,
    bufs: BufRing,
    evfd: RawFd,
    /// Written by other shards to wake this one (read by our own ring).
    inbox_evfd: RawFd,
    inbox_buf: Box<u64>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    backlog: VecDeque<squeue::Entry>,
    listeners: Vec<Listener>,
    /// Slots whose multishot RECV must be re-armed.
    rearm: Vec<u32>,
    /// Slots waiting for a free provided buffer to re-arm.
    starved: Vec<u32>,
    listen_gen: u32,
    /// Spare send buffers.
    vecs: Vec<Vec<u8>>,
    idle_waker: Option<Waker>,
    cqes: Vec<(u64, i32, u32)>,
    accepted: Vec<RawFd>,
}

thread_local! {
    static DRIVER: RefCell<Option<Driver>> = const { RefCell::new(None) };
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// True on a shard whose sockets go through its own ring.
pub fn active() -> bool {
    ACTIVE.with(|a| a.get())
}

fn with<R>(f: impl FnOnce(&mut Driver) -> R) -> R {
    DRIVER.with(|d| f(d.borrow_mut().as_mut().expect("socket ring not installed")))
}

/// Why the ring could not be used (logged once, then the shard falls back).
pub fn setup() -> Result<(), String> {
    if std::env::var_os("TESSERA_NO_IO_URING_SOCKETS").is_some() {
        // Stands in for a kernel without what the ring needs (the fallback's test).
        return Err("TESSERA_NO_IO_URING_SOCKETS is set".into());
    }
    // COOP_TASKRUN by default: with DEFER_TASKRUN, a shard parked in glommio
    // (on this ring's eventfd) was woken 10-30 ms late on Linux 6.18 and a
    // 2-shard server fell to a tenth of its throughput (ARCHITECTURE.md,
    // "The ring's flags"); `TESSERA_RING_DEFER_TASKRUN=1` tries it first.
    let mut b = IoUring::builder();
    b.setup_single_issuer().setup_defer_taskrun().setup_taskrun_flag();
    let defer = env_u64("TESSERA_RING_DEFER_TASKRUN", 0) != 0;
    let built = if defer {
        b.build(RING_ENTRIES)
    } else {
        Err(std::io::Error::other("DEFER_TASKRUN not asked for"))
    };
    let ring = match built {
        Ok(r) => r,
        Err(_) => match IoUring::builder().setup_coop_taskrun().setup_taskrun_flag().build(RING_ENTRIES) {
            Ok(r) => r,
            Err(_) => IoUring::new(RING_ENTRIES).map_err(|e| format!("io_uring_setup: {e}"))?,
        },
    };
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|e| format!("io_uring probe: {e}"))?;
    for (code, name) in [
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::MsgRingData::CODE, "MSG_RING"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("io_uring lacks {name}"));
        }
    }
    let bufs = BufRing::new(&ring).map_err(|e| format!("io_uring provided buffers: {e}"))?;
    // A blocking eventfd: glommio's read of it waits through io_uring's poll.
    // SAFETY: plain syscall.
    let evfd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if evfd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: plain syscall.
    let inbox_evfd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    let registered = ring.submitter().register_eventfd(evfd);
    if inbox_evfd < 0 || registered.is_err() {
        let why = match registered {
            Err(e) => format!("io_uring eventfd: {e}"),
            Ok(()) => format!("eventfd: {}", std::io::Error::last_os_error()),
        };
        // SAFETY: closing the eventfds made above (the ring, dropped on return, unregisters).
        unsafe {
            libc::close(evfd);
            if inbox_evfd >= 0 {
                libc::close(inbox_evfd);
            }
        }
        return Err(why);
    }
    let mut d = Driver {
        ring,
        bufs,
        evfd,
        inbox_evfd,
        inbox_buf: Box::new(0),
        slots: Vec::new(),
        free_slots: Vec::new(),
        backlog: VecDeque::new(),
        listeners: Vec::new(),
        rearm: Vec::new(),
        starved: Vec::new(),
        listen_gen: 0,
        vecs: Vec::new(),
        idle_waker: None,
        cqes: Vec::with_capacity(256),
        accepted: Vec::new(),
    };
    d.arm_inbox();
    // Our own completions need not signal glommio while the driver runs.
    d.ring.completion().disable_eventfd();
    DRIVER.with(|x| *x.borrow_mut() = Some(d));
    ACTIVE.with(|a| a.set(true));
    COUNTERS.shards.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// [`crate::runtime::inbox::RING_WAKE`]: wakes the shard whose ring is `target`
/// with a MSG_RING from this thread's ring, if it has one.
pub fn msg_ring_wake(target: RawFd, shard: usize, now: bool) -> bool {
    DRIVER
        .try_with(|d| {
            let Ok(mut d) = d.try_borrow_mut() else { return false };
            let Some(d) = d.as_mut() else { return false };
            let e = opcode::MsgRingData::new(types::Fd(target), 0, ud(OP_WAKE, 0, 0), None)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(ud(OP_WAKE, shard as u32, 1));
            d.push(e);
            if now {
                // A parked target waits for nothing else: submit at once (one
                // io_uring_enter, still no eventfd signalled from a wake-up).
                COUNTERS.enters.fetch_add(1, Ordering::Relaxed);
                let _ = d.ring.submitter().submit();
            } else {
                // Waiting in its ring, the target looks at its inbox within
                // its wait's timeout anyway; our next entry submits it.
                d.wake_idle();
            }
            COUNTERS.msg_ring_wakes.fetch_add(1, Ordering::Relaxed);
            true
        })
        .unwrap_or(false)
}

/// The ring's own eventfd (glommio reads it while the executor is parked).
pub fn eventfd() -> RawFd {
    with(|d| d.evfd)
}

/// The eventfd other shards write to wake this one.
pub fn inbox_eventfd() -> RawFd {
    with(|d| d.inbox_evfd)
}

impl Driver {
    fn arm_inbox(&mut self) {
        let e = opcode::Read::new(types::Fd(self.inbox_evfd), &mut *self.inbox_buf as *mut u64 as *mut u8, 8)
            .build()
            .user_data(ud(OP_INBOX, 0, 0));
        self.push(e);
    }

    /// Polls for kernel work (the TASKRUN flag) or a job, at most `us` µs.
    fn spin(&mut self, us: u64, inbox: &runtime::inbox::Inbox) -> bool {
        let t0 = std::time::Instant::now();
        let lim = std::time::Duration::from_micros(us);
        loop {
            for _ in 0..64 {
                if self.ring.submission().taskrun() || inbox.has_jobs() {
                    COUNTERS.spin_hits.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                std::hint::spin_loop();
            }
            if t0.elapsed() > lim {
                return false;
            }
        }
    }

    /// Waits in our own ring for a completion, at most `us` µs; true if one came.
    fn ring_wait(&mut self, us: u64) -> bool {
        let ts = types::Timespec::new().sec(us / 1_000_000).nsec(((us % 1_000_000) * 1000) as u32);
        let args = types::SubmitArgs::new().timespec(&ts);
        COUNTERS.enters.fetch_add(1, Ordering::Relaxed);
        COUNTERS.ring_waits.fetch_add(1, Ordering::Relaxed);
        let _ = self.ring.submitter().submit_with_args(1, &args);
        let got = !self.ring.completion().is_empty();
        if !got {
            COUNTERS.ring_wait_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        got
    }

    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every entry's buffers outlive the operation (owned by the driver).
        if self.backlog.is_empty() && unsafe { self.ring.submission().push(&e) }.is_ok() {
            return;
        }
        self.backlog.push_back(e);
    }

    /// Returns a buffer to the kernel; connections starved of buffers get their receive back.
    fn give_back(&mut self, bid: u16) {
        self.bufs.push(bid);
        if !self.starved.is_empty() {
            self.rearm.append(&mut self.starved);
            self.wake_idle();
        }
    }

    fn wake_idle(&mut self) {
        if let Some(w) = self.idle_waker.take() {
            w.wake();
        }
    }

    fn arm_recv(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if !s.open || s.closing || s.detaching || s.recv_armed || s.rx_done {
            return;
        }
        s.recv_armed = true;
        s.recv_cancelled = false;
        let e = opcode::RecvMulti::new(types::Fd(s.fd), BGID).build().user_data(ud(OP_RECV, idx, s.gen));
        self.push(e);
    }

    fn submit_send(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        let Some((buf, sent)) = s.tx.as_ref() else { return };
        let e = opcode::Send::new(types::Fd(s.fd), buf[*sent..].as_ptr(), (buf.len() - sent) as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(OP_SEND, idx, s.gen));
        self.push(e);
    }

    fn unsent(s: &Slot) -> usize {
        s.tx.as_ref().map_or(0, |(b, n)| b.len() - n) + s.tx_more.len()
    }

    /// Publishes the slot's unsent bytes and held send memory for CLIENT LIST.
    fn publish_out(s: &Slot) {
        if let Some(c) = &s.out_pending {
            let unsent = Self::unsent(s);
            c.bufs.out_pending.set(unsent);
            c.bufs.out_held.set(s.tx.as_ref().map_or(0, |(b, _)| b.capacity()) + s.tx_more.capacity());
            if unsent == 0 {
                c.bufs.soft_since.set(None);
            }
        }
    }

    fn arm_listener(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        if l.armed || l.retired {
            return;
        }
        l.armed = true;
        let e = opcode::AcceptMulti::new(types::Fd(l.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(OP_ACCEPT, i as u32, l.gen));
        self.push(e);
    }

    /// The connection is done: cancel its receive, end a send in flight, free
    /// the slot once the kernel has let go of both.
    fn begin_close(&mut self, idx: u32, gen: u32) {
        let s = &mut self.slots[idx as usize];
        if s.gen != gen || !s.open || s.closing {
            return;
        }
        s.closing = true;
        s.rx_waker = None;
        s.tx_waker = None;
        if s.tx.is_some() {
            // Unsent replies of a closing connection are dropped, as Redis's freeClient.
            // SAFETY: shutting the socket down ends the SEND in flight.
            unsafe { libc::shutdown(s.fd, libc::SHUT_RDWR) };
        }
        if s.recv_armed && !s.recv_cancelled {
            s.recv_cancelled = true;
            let e = opcode::AsyncCancel::new(ud(OP_RECV, idx, gen)).build().user_data(ud(OP_CANCEL, idx, gen));
            self.push(e);
        }
        self.maybe_free(idx);
        self.wake_idle();
    }

    /// Frees a closing slot once nothing of it is in flight.
    fn maybe_free(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if !s.closing || s.recv_armed || s.tx.is_some() {
            return;
        }
        // SAFETY: the slot owned the fd; no operation refers to it any more.
        unsafe { libc::close(s.fd) };
        for (bid, _) in self.release(idx) {
            self.give_back(bid);
        }
    }

    /// Puts a slot with nothing in flight back on the free list (its fd is
    /// closed or handed over by the caller); returns the chunks it still held,
    /// for the caller to give back.
    fn release(&mut self, idx: u32) -> Vec<(u16, u32)> {
        let s = &mut self.slots[idx as usize];
        let rx: Vec<(u16, u32)> = s.rx.drain(..).collect();
        let gen = s.gen.wrapping_add(1);
        // Everything else back to its defaults (open() sets up the next user).
        *s = Slot { gen, ..Default::default() };
        self.free_slots.push(idx);
        rx
    }

    /// One pass: submit what is queued, run the kernel's pending work, handle completions.
    fn pass(&mut self) -> bool {
        let mut progress = false;
        for idx in std::mem::take(&mut self.rearm) {
            let s = &self.slots[idx as usize];
            if !s.open || s.closing || s.rx_done {
                continue;
            }
            if self.bufs.free == 0 {
                // Retried when a buffer comes back (`give_back`).
                self.starved.push(idx);
            } else if s.rx.len() < RX_MAX / 2 {
                self.arm_recv(idx);
            }
            // Otherwise the connection re-arms once it has drained (`UringConn::next`).
        }
        while let Some(e) = self.backlog.front() {
            // SAFETY: as in `push`.
            if unsafe { self.ring.submission().push(e) }.is_err() {
                break;
            }
            self.backlog.pop_front();
        }
        self.bufs.publish();
        let mut sq = self.ring.submission();
        sq.sync();
        let to_submit = sq.len();
        let need = to_submit > 0 || sq.taskrun() || sq.cq_overflow();
        drop(sq);
        if need {
            COUNTERS.enters.fetch_add(1, Ordering::Relaxed);
            // SAFETY: a plain io_uring_enter; GETEVENTS runs the deferred task work.
            let r = unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(to_submit as u32, 0, 1 /* IORING_ENTER_GETEVENTS */, None)
            };
            if let Err(e) = r {
                if !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR)) {
                    crate::log_warning!("io_uring_enter: {}", e);
                }
            }
            progress |= to_submit > 0;
        }
        let mut cqes = std::mem::take(&mut self.cqes);
        {
            let mut cq = self.ring.completion();
            cq.sync();
            for c in &mut cq {
                cqes.push((c.user_data(), c.result(), c.flags()));
            }
        }
        if !cqes.is_empty() {
            progress = true;
            COUNTERS.completions.fetch_add(cqes.len() as u64, Ordering::Relaxed);
        }
        for &(u, res, flags) in &cqes {
            self.complete(u, res, flags);
        }
        cqes.clear();
        self.cqes = cqes;
        progress
    }

    fn complete(&mut self, u: u64, res: i32, flags: u32) {
        let (op, idx, gen) = ud_split(u);
        match op {
            OP_RECV => {
                let bid = cqueue::buffer_select(flags);
                if bid.is_some() {
                    self.bufs.free -= 1;
                }
                let Some(s) = self.slots.get_mut(idx as usize).filter(|s| s.gen == gen && s.open) else {
                    if let Some(b) = bid {
                        self.give_back(b);
                    }
                    return;
                };
                let more = cqueue::more(flags);
                if !more {
                    s.recv_armed = false;
                }
                let mut cancel = false;
                if res > 0 {
                    if let Some(b) = bid {
                        s.rx.push_back((b, res as u32));
                    }
                    if s.rx.len() >= RX_MAX && more && !s.recv_cancelled {
                        // The connection is not keeping up: stop receiving until it does.
                        s.recv_cancelled = true;
                        cancel = true;
                    } else if !more && !s.detaching {
                        self.rearm.push(idx);
                    }
                } else if s.detaching && (res == -libc::ENOBUFS || res == -libc::ECANCELED) {
                    // Moving away: the receive ends here.
                } else if res == -libc::ENOBUFS || (res == -libc::ECANCELED && !s.closing) {
                    self.rearm.push(idx);
                } else {
                    s.rx_done = true;
                }
                if let Some(w) = s.rx_waker.take() {
                    w.wake();
                }
                let armed = s.recv_armed;
                if cancel {
                    let e = opcode::AsyncCancel::new(ud(OP_RECV, idx, gen)).build().user_data(ud(OP_CANCEL, idx, gen));
                    self.push(e);
                }
                if !armed {
                    self.maybe_free(idx);
                }
            }
            OP_SEND => {
                let Some(s) = self.slots.get_mut(idx as usize).filter(|s| s.gen == gen && s.open) else {
                    return;
                };
                let mut done = false;
                let mut resubmit = false;
                if res < 0 {
                    s.tx_broken = true;
                    s.tx_more = Vec::new();
                    s.tx = None;
                    done = true;
                } else if let Some((buf, sent)) = s.tx.as_mut() {
                    *sent += res as usize;
                    if *sent < buf.len() {
                        resubmit = true;
                    } else if s.tx_more.is_empty() {
                        let (mut v, _) = s.tx.take().expect("send in flight");
                        v.clear();
                        if v.capacity() <= SEND_BUF_KEEP && self.vecs.len() < 64 {
                            self.vecs.push(v);
                        }
                        done = true;
                    } else {
                        buf.clear();
                        std::mem::swap(buf, &mut s.tx_more);
                        *sent = 0;
                        resubmit = true;
                    }
                }
                Self::publish_out(s);
                if done {
                    if let Some(w) = s.tx_waker.take() {
                        w.wake();
                    }
                }
                if resubmit {
                    self.submit_send(idx);
                }
                if done {
                    self.maybe_free(idx);
                }
            }
            OP_WAKE if gen == 1 => {
                // Only failures are reported (SKIP_SUCCESS): wake that shard the other way.
                if let Some(i) = runtime::rt_ref().inboxes.get(idx as usize) {
                    i.wake_by_eventfd();
                }
            }
            OP_INBOX => {
                // Jobs are drained after every pass; just keep the read armed.
                self.arm_inbox();
            }
            OP_ACCEPT => {
                let Some(l) = self.listeners.get_mut(idx as usize).filter(|l| l.gen == gen) else {
                    if res >= 0 {
                        // SAFETY: a connection accepted on a retired listener: not ours to serve.
                        unsafe { libc::close(res) };
                    }
                    return;
                };
                if !cqueue::more(flags) {
                    l.armed = false;
                }
                if res >= 0 {
                    self.accepted.push(res);
                } else if !l.retired && res != -libc::ECANCELED {
                    crate::log_warning!("Accepting client connection: {}", std::io::Error::from_raw_os_error(-res));
                }
                if !self.listeners[idx as usize].armed && !self.listeners[idx as usize].retired {
                    if res == -libc::EMFILE || res == -libc::ENFILE || res == -libc::ENOMEM || res == -libc::ENOBUFS {
                        // Back off instead of spinning, as the glommio path does.
                        glommio::spawn_local(async move {
                            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                            with(|d| {
                                d.arm_listener(idx as usize);
                                d.wake_idle();
                            });
                        })
                        .detach();
                    } else {
                        self.arm_listener(idx as usize);
                    }
                }
            }
            _ => {}
        }
    }

    fn pending_work(&mut self) -> bool {
        if !self.backlog.is_empty() || !self.rearm.is_empty() {
            return true;
        }
        let sq = self.ring.submission();
        if !sq.is_empty() || sq.taskrun() || sq.cq_overflow() {
            return true;
        }
        drop(sq);
        !self.ring.completion().is_empty()
    }
}

/// Replaces this shard's listeners with `fds` (start-up, CONFIG SET port/bind).
pub fn set_listeners(fds: Vec<RawFd>) {
    with(|d| {
        for (i, l) in d.listeners.iter_mut().enumerate() {
            if !l.retired {
                l.retired = true;
                if l.armed {
                    let e = opcode::AsyncCancel::new(ud(OP_ACCEPT, i as u32, l.gen)).build().user_data(ud(OP_CANCEL, 0, 0));
                    // SAFETY: the listener fd stays open until its accept is cancelled below.
                    if unsafe { d.ring.submission().push(&e) }.is_err() {
                        d.backlog.push_back(e);
                    }
                }
                l.gen = l.gen.wrapping_add(1);
            }
        }
        // Cancel now, then close the old sockets: the kernel holds its own reference meanwhile.
        let _ = d.ring.submitter().submit();
        for l in d.listeners.drain(..) {
            // SAFETY: we own the listener fds.
            unsafe { libc::close(l.fd) };
        }
        for (i, fd) in fds.into_iter().enumerate() {
            d.listen_gen = d.listen_gen.wrapping_add(1);
            d.listeners.push(Listener {
                fd,
                gen: d.listen_gen,
                armed: false,
                retired: false,
            });
            d.arm_listener(i);
        }
        d.wake_idle();
    });
}

/// The persistent eventfd read through glommio's ring.
type EvRead = Pin<Box<dyn Future<Output = ()>>>;

fn ev_read(file: Rc<glommio::io::BufferedFile>) -> EvRead {
    Box::pin(async move {
        let _ = file.read_at(0, 8).await;
    })
}

/// The driver task: passes while there is work, then parks on the eventfd.
pub async fn run(accept: impl Fn(RawFd)) {
    let me = runtime::shard_id();
    let inbox = &runtime::rt_ref().inboxes[me];
    let evfd = eventfd();
    // SAFETY: a dup the BufferedFile owns (and closes on drop); the original stays with the ring.
    let file = Rc::new(unsafe { glommio::io::BufferedFile::from_raw_fd(libc::dup(evfd)) });
    let mut evread: Option<EvRead> = None;
    inbox.set_eventfds(inbox_eventfd(), evfd);
    let knobs = Knobs::from_env();
    if knobs.msg_ring {
        let _ = runtime::inbox::RING_WAKE.set(msg_ring_wake);
        inbox.set_ring_fd(with(|d| d.ring.as_raw_fd()), me);
    }
    inbox.set_thread();
    let wait_us = knobs.wait_us;
    let mut quiet = false;
    loop {
        COUNTERS.passes.fetch_add(1, Ordering::Relaxed);
        inbox.note_pass();
        inbox.set_runnable(false);
        let (progress, accepted) = with(|d| {
            let p = d.pass();
            (p, std::mem::take(&mut d.accepted))
        });
        for fd in &accepted {
            accept(*fd);
        }
        let jobs = inbox.drain();
        if progress || jobs > 0 || !accepted.is_empty() {
            quiet = false;
            inbox.set_runnable(true);
            futures_lite::future::yield_now().await;
            continue;
        }
        if !quiet {
            // Nothing for us: let every task woken meanwhile run first, so the
            // wait below holds up no one.
            quiet = true;
            inbox.set_runnable(true);
            futures_lite::future::yield_now().await;
            continue;
        }
        quiet = false;
        inbox.set_runnable(false);
        // A short spin while still AWAKE: other shards push without a wake-up.
        if knobs.spin_us > 0 && with(|d| d.spin(knobs.spin_us, inbox)) {
            continue;
        }
        // Going idle: publish `parked`, then look once more (see the module comment).
        inbox.set_parked(IN_RING);
        if inbox.has_jobs() || with(|d| d.pending_work()) {
            inbox.set_parked(AWAKE);
            continue;
        }
        if wait_us > 0 && with(|d| d.ring_wait(wait_us)) {
            inbox.set_parked(AWAKE);
            continue;
        }
        // Still nothing: park the executor. Our completions signal the eventfd
        // glommio waits on from now on; look once more after enabling it.
        with(|d| d.ring.completion().enable_eventfd());
        inbox.set_parked(PARKED);
        if inbox.has_jobs() || with(|d| d.pending_work()) {
            with(|d| d.ring.completion().disable_eventfd());
            inbox.set_parked(AWAKE);
            continue;
        }
        COUNTERS.idle_waits.fetch_add(1, Ordering::Relaxed);
        let local = Rc::new(Cell::new(false));
        futures_lite::future::poll_fn(|cx| {
            let r = evread.get_or_insert_with(|| ev_read(file.clone()));
            if r.as_mut().poll(cx).is_ready() {
                evread = None;
                return Poll::Ready(());
            }
            if local.get() {
                return Poll::Ready(());
            }
            local.set(true);
            inbox.register(cx.waker());
            with(|d| d.idle_waker = Some(cx.waker().clone()));
            // First poll registered the wakers: sleep until one fires.
            Poll::Pending
        })
        .await;
        with(|d| {
            d.idle_waker = None;
            d.ring.completion().disable_eventfd();
        });
        inbox.set_parked(AWAKE);
    }
}

/// One connection's half of the ring.
pub struct UringConn {
    idx: u32,
    gen: u32,
    /// The chunk being parsed: buffer id, length, bytes consumed.
    cur: Option<(u16, u32, u32)>,
    base: *const u8,
}

impl UringConn {
    /// Takes ownership of an accepted socket and starts receiving on it.
    pub fn open(fd: RawFd, shared: Rc<ClientBufs>) -> UringConn {
        with(|d| {
            let idx = match d.free_slots.pop() {
                Some(i) => i,
                None => {
                    d.slots.push(Slot::default());
                    (d.slots.len() - 1) as u32
                }
            };
            let s = &mut d.slots[idx as usize];
            let gen = s.gen;
            *s = Slot {
                gen,
                fd,
                open: true,
                out_pending: Some(shared),
                ..Default::default()
            };
            d.arm_recv(idx);
            d.wake_idle();
            UringConn {
                idx,
                gen,
                cur: None,
                base: d.bufs.mem.as_ptr(),
            }
        })
    }

    /// Takes the next received chunk, waiting for one; false at end of stream.
    async fn next(&mut self) -> bool {
        if self.cur.is_some() {
            return true;
        }
        let idx = self.idx;
        let got = futures_lite::future::poll_fn(|cx| {
            with(|d| {
                let s = &mut d.slots[idx as usize];
                if let Some((bid, len)) = s.rx.pop_front() {
                    if !s.recv_armed && !s.rx_done && s.rx.len() < RX_MAX / 2 {
                        d.rearm.push(idx);
                        d.wake_idle();
                    }
                    return Poll::Ready(Some((bid, len)));
                }
                if s.rx_done || s.tx_broken {
                    return Poll::Ready(None);
                }
                s.rx_waker = Some(cx.waker().clone());
                Poll::Pending
            })
        })
        .await;
        match got {
            Some((bid, len)) => {
                self.cur = Some((bid, len, 0));
                true
            }
            None => false,
        }
    }
}

impl UringConn {
    /// Lets go of the socket without closing it, for another shard to serve:
    /// waits for the replies in flight, cancels the receive and waits until
    /// the kernel has returned it, and hands back the fd with every byte
    /// received and not yet parsed. Err(self), still serving here, when the
    /// peer closed or a send failed meanwhile.
    async fn detach_socket(mut self) -> Result<(RawFd, Vec<u8>), UringConn> {
        use super::Transport;
        if self.cur.is_some() || !self.flush().await {
            return Err(self);
        }
        let (idx, gen) = (self.idx, self.gen);
        with(|d| {
            let s = &mut d.slots[idx as usize];
            s.detaching = true;
            if s.recv_armed && !s.recv_cancelled {
                s.recv_cancelled = true;
                let e = opcode::AsyncCancel::new(ud(OP_RECV, idx, gen)).build().user_data(ud(OP_CANCEL, idx, gen));
                d.push(e);
                d.wake_idle();
            }
        });
        futures_lite::future::poll_fn(|cx| {
            with(|d| {
                let s = &mut d.slots[idx as usize];
                if !s.recv_armed {
                    Poll::Ready(())
                } else {
                    s.rx_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        })
        .await;
        let moved = with(|d| {
            let s = &mut d.slots[idx as usize];
            if s.rx_done || s.tx_broken || s.tx.is_some() {
                // Ending here anyway: serve what is left (the receive stays down).
                s.detaching = false;
                return None;
            }
            let fd = s.fd;
            let rx = d.release(idx);
            let mut bytes = Vec::with_capacity(rx.iter().map(|r| r.1 as usize).sum());
            for (bid, len) in rx {
                let at = bid as usize * BUF_SIZE;
                bytes.extend_from_slice(&d.bufs.mem[at..at + len as usize]);
                d.give_back(bid);
            }
            Some((fd, bytes))
        });
        match moved {
            Some(m) => {
                // The slot is free: nothing of it is left to release on drop.
                std::mem::forget(self);
                Ok(m)
            }
            None => Err(self),
        }
    }
}

impl super::Transport for UringConn {
    async fn fill(&mut self) -> bool {
        self.next().await
    }

    fn chunk(&self) -> &[u8] {
        match self.cur {
            // SAFETY: the buffer is ours until `consume` gives it back; the pool never moves.
            Some((bid, len, off)) => unsafe { std::slice::from_raw_parts(self.base.add(bid as usize * BUF_SIZE + off as usize), (len - off) as usize) },
            None => &[],
        }
    }

    fn consume(&mut self, n: usize) {
        if let Some((bid, len, off)) = self.cur.as_mut() {
            *off = (*off + n as u32).min(*len);
            if *off == *len {
                let bid = *bid;
                self.cur = None;
                with(|d| d.give_back(bid));
            }
        }
    }

    async fn read_into(&mut self, dst: &mut [u8]) -> usize {
        if !self.next().await {
            return 0;
        }
        let c = self.chunk();
        let n = c.len().min(dst.len());
        dst[..n].copy_from_slice(&c[..n]);
        self.consume(n);
        n
    }

    async fn send(&mut self, out: &mut Vec<u8>, bufs: &BufStats) -> bool {
        if out.is_empty() {
            return true;
        }
        let idx = self.idx;
        with(|d| {
            let s = &mut d.slots[idx as usize];
            if s.tx_broken {
                out.clear();
                return false;
            }
            if s.tx.is_none() {
                let spare = d.vecs.pop().unwrap_or_else(|| Vec::with_capacity(out.capacity().min(SEND_BUF_KEEP)));
                let v = std::mem::replace(out, spare);
                s.tx = Some((v, 0));
                d.submit_send(idx);
                d.wake_idle();
            } else {
                s.tx_more.extend_from_slice(out);
                out.clear();
            }
            let _ = bufs;
            Driver::publish_out(&d.slots[idx as usize]);
            true
        })
    }

    async fn flush(&mut self) -> bool {
        let idx = self.idx;
        futures_lite::future::poll_fn(|cx| {
            with(|d| {
                let s = &mut d.slots[idx as usize];
                if s.tx_broken {
                    Poll::Ready(false)
                } else if s.tx.is_none() {
                    Poll::Ready(true)
                } else {
                    s.tx_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        })
        .await
    }

    async fn detach(self) -> Result<(RawFd, Vec<u8>), Self> {
        self.detach_socket().await
    }

    async fn close(mut self) {
        if let Some((bid, _, _)) = self.cur.take() {
            with(|d| d.give_back(bid));
        }
        let (idx, gen) = (self.idx, self.gen);
        with(|d| d.begin_close(idx, gen));
    }
}

impl Drop for UringConn {
    fn drop(&mut self) {
        // A connection task that panicked: release the slot as `close` would.
        let (idx, gen) = (self.idx, self.gen);
        let cur = self.cur.take();
        let _ = DRIVER.try_with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                if let Some(d) = d.as_mut() {
                    if let Some((bid, _, _)) = cur {
                        d.give_back(bid);
                    }
                    d.begin_close(idx, gen);
                }
            }
        });
    }
}
