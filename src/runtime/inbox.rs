//! A shard's mailbox: a lock-free queue of jobs plus a parked flag.
//!
//! Senders push and wake the shard only when it has parked, so a busy shard
//! drains batches in its own loop without any wake-up. With the shard's own
//! socket ring (`server/net/uring.rs`) the ring's driver drains the inbox and
//! a wake-up is one write to the ring's eventfd; on the glommio fallback an
//! inbox task parks and is woken through glommio's foreign wake.

use atomic_waker::AtomicWaker;
use crossbeam_queue::SegQueue;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::task::{Context, Poll};

pub type Job = Box<dyn FnOnce() + Send>;

/// Queues a MSG_RING wake-up of the ring with this fd from the calling
/// thread's own ring; false when the thread has none (then an eventfd is
/// written). The flag asks for it to be submitted now rather than with the
/// sender's next ring entry: the target is parked and nothing else would
/// wake it meanwhile (a sender busy with a long pipeline, or preempted, may
/// enter its ring only much later).
pub type RingWake = fn(i32, usize, bool) -> bool;
pub static RING_WAKE: std::sync::OnceLock<RingWake> = std::sync::OnceLock::new();

/// The shard is running: it drains its inbox without being woken.
pub const AWAKE: u8 = 0;
/// The socket driver waits in its own ring.
pub const IN_RING: u8 = 1;
/// The executor is parked in glommio (or the fallback inbox task sleeps).
pub const PARKED: u8 = 2;

pub struct Inbox {
    queue: SegQueue<Job>,
    waker: AtomicWaker,
    /// How the shard sleeps: [`AWAKE`], [`IN_RING`] or [`PARKED`].
    parked: AtomicU8,
    /// The eventfd to write for each way of sleeping (-1: wake through `waker`):
    /// while waiting in its own ring the driver reads one; while the executor is
    /// parked glommio reads the other (a write from here wakes it directly, never
    /// through an eventfd signalled from inside another eventfd's wake-up, which
    /// the kernel defers).
    evfd: [AtomicI32; 3],
    /// The shard's socket ring fd, or -1, and the shard's index.
    ring_fd: AtomicI32,
    shard: std::sync::atomic::AtomicUsize,
    /// Loop passes of the shard (the watchdog's sign of life).
    passes: AtomicU64,
    /// Wake-ups the watchdog had to deliver (INFO `watchdog_rescues`).
    pub rescues: AtomicU64,
    /// The watchdog's view at its last tick.
    last_seen: AtomicU64,
    /// The driver yielded with work to do (it must run again soon).
    runnable: AtomicBool,
    /// The shard thread's id (the watchdog reads its state in /proc).
    tid: AtomicI32,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            queue: SegQueue::new(),
            waker: AtomicWaker::new(),
            parked: AtomicU8::new(AWAKE),
            evfd: [AtomicI32::new(-1), AtomicI32::new(-1), AtomicI32::new(-1)],
            ring_fd: AtomicI32::new(-1),
            shard: std::sync::atomic::AtomicUsize::new(0),
            passes: AtomicU64::new(0),
            rescues: AtomicU64::new(0),
            last_seen: AtomicU64::new(u64::MAX),
            runnable: AtomicBool::new(false),
            tid: AtomicI32::new(0),
        }
    }
}

impl Inbox {
    pub fn push(&self, job: Job) {
        self.queue.push(job);
        // Pairs with the fence in `poll`: either we see `parked`, or the receiver sees the job.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) != AWAKE {
            let mode = self.parked.swap(AWAKE, Ordering::SeqCst);
            if mode != AWAKE {
                self.wake(mode);
            }
        }
    }

    /// Like [`push`](Self::push), for a sender that blocks its thread until
    /// the job is done (a script's call to another shard): the wake-up is an
    /// eventfd write now, never a MSG_RING left for the sender's next ring
    /// entry, which a blocked thread would never make.
    pub fn push_now(&self, job: Job) {
        self.queue.push(job);
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) != AWAKE {
            let mode = self.parked.swap(AWAKE, Ordering::SeqCst);
            if mode != AWAKE {
                self.wake_eventfd(mode);
            }
        }
    }

    fn wake(&self, mode: u8) {
        // From a shard with its own socket ring: a MSG_RING into the target's
        // ring, submitted with the sender's next io_uring_enter (no syscall of its own).
        let ring = self.ring_fd.load(Ordering::Acquire);
        if ring >= 0 {
            if let Some(hook) = RING_WAKE.get() {
                if hook(ring, self.shard.load(Ordering::Relaxed), mode == PARKED) {
                    return;
                }
            }
        }
        self.wake_eventfd(mode);
    }

    /// Writes the eventfd the shard sleeps on in `mode` (or wakes the inbox task).
    fn wake_eventfd(&self, mode: u8) {
        let fd = self.evfd[mode as usize].load(Ordering::Acquire);
        if fd >= 0 {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes to the shard's eventfd, which lives as long as the process.
            unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
        } else {
            self.waker.wake();
        }
    }

    /// The shard's socket ring, target of MSG_RING wake-ups from other rings.
    pub fn set_ring_fd(&self, fd: i32, shard: usize) {
        self.shard.store(shard, Ordering::Relaxed);
        self.ring_fd.store(fd, Ordering::Release);
    }

    /// A MSG_RING wake-up failed: wake by eventfd, whichever way the shard sleeps.
    pub fn wake_by_eventfd(&self) {
        for m in [IN_RING, PARKED] {
            let fd = self.evfd[m as usize].load(Ordering::Acquire);
            if fd >= 0 {
                let one: u64 = 1;
                // SAFETY: as in `wake`.
                unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
            }
        }
    }

    /// The socket ring's driver takes over: wake-ups go to these eventfds.
    pub fn set_eventfds(&self, in_ring: i32, parked: i32) {
        self.evfd[IN_RING as usize].store(in_ring, Ordering::Release);
        self.evfd[PARKED as usize].store(parked, Ordering::Release);
    }

    pub fn register(&self, w: &std::task::Waker) {
        self.waker.register(w);
    }

    /// Publishes how the shard is about to sleep ([`AWAKE`] once it runs again).
    pub fn set_parked(&self, mode: u8) {
        self.parked.store(mode, Ordering::SeqCst);
        if mode != AWAKE {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    pub fn has_jobs(&self) -> bool {
        !self.queue.is_empty()
    }

    pub fn note_pass(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    /// The driver yields with more to do (true) or starts a pass (false).
    pub fn set_runnable(&self, r: bool) {
        self.runnable.store(r, Ordering::Relaxed);
    }

    /// Called on the shard's thread once.
    pub fn set_thread(&self) {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    }

    /// Runs up to [`JOBS_PER_POLL`] queued jobs; returns how many ran.
    pub fn drain(&self) -> usize {
        let mut ran = 0;
        while ran < JOBS_PER_POLL {
            let Some(job) = self.queue.pop() else { break };
            run_job(job);
            ran += 1;
        }
        ran
    }

    /// The watchdog's tick: a shard whose thread sleeps, with no pass since the
    /// last tick, while jobs wait for it or its driver is runnable, lost a wake-up. Two ticks in a row are needed, so a push racing
    /// the tick is not taken for one. Returns true when it woke the shard.
    pub fn watch(&self) -> bool {
        let passes = self.passes.load(Ordering::Relaxed);
        let last = self.last_seen.swap(passes, Ordering::Relaxed);
        if last != passes {
            return false;
        }
        // Jobs waiting, or the driver runnable, while the shard's thread sleeps.
        let waiting = self.has_jobs() || self.runnable.load(Ordering::SeqCst);
        if !waiting || !thread_sleeps(self.tid.load(Ordering::Relaxed)) {
            return false;
        }
        self.rescues.fetch_add(1, Ordering::Relaxed);
        let mode = self.parked.swap(AWAKE, Ordering::SeqCst);
        crate::log_warning!(
            "BUG: a shard slept with work waiting; the watchdog woke it (sleeping as {}, jobs waiting: {}, driver runnable: {})",
            ["awake", "in-ring", "parked"].get(mode as usize).unwrap_or(&"?"),
            self.has_jobs(),
            self.runnable.load(Ordering::SeqCst)
        );
        self.waker.wake();
        for m in [IN_RING, PARKED] {
            if m == mode || mode == AWAKE {
                self.wake(m);
            }
        }
        true
    }

    /// The shard's receive loop: runs jobs as they come, forever.
    pub fn serve(&'static self) -> InboxServe {
        InboxServe { inbox: self }
    }
}

pub struct InboxServe {
    inbox: &'static Inbox,
}

/// Jobs run per poll before yielding so connections on the shard get a turn.
const JOBS_PER_POLL: usize = 256;

impl Future for InboxServe {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inbox = self.inbox;
        let mut ran = 0;
        loop {
            while let Some(job) = inbox.queue.pop() {
                inbox.note_pass();
                run_job(job);
                ran += 1;
                if ran >= JOBS_PER_POLL {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            inbox.waker.register(cx.waker());
            inbox.parked.store(PARKED, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if inbox.queue.is_empty() {
                return Poll::Pending;
            }
            inbox.parked.store(AWAKE, Ordering::SeqCst);
        }
    }
}

/// A panicking job (a bug) must not take the shard down: its reply channel is
/// dropped, which its sender turns into an error reply.
fn run_job(job: Job) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        crate::log_warning!("BUG: a cross-shard job panicked; its command was answered with an error");
    }
}

/// True when thread `tid` of this process is asleep (state S or D in /proc).
fn thread_sleeps(tid: i32) -> bool {
    if tid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|c| c == 'S' || c == 'D')
}
