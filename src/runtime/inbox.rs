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
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::task::{Context, Poll};

pub type Job = Box<dyn FnOnce() + Send>;

pub struct Inbox {
    queue: SegQueue<Job>,
    waker: AtomicWaker,
    parked: AtomicBool,
    /// The socket ring's eventfd, or -1 (wake through `waker`).
    evfd: AtomicI32,
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
            parked: AtomicBool::new(false),
            evfd: AtomicI32::new(-1),
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
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        let fd = self.evfd.load(Ordering::Acquire);
        if fd >= 0 {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes to the shard's eventfd, which lives as long as the process.
            unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
        } else {
            self.waker.wake();
        }
    }

    /// The socket ring's driver takes over: wake-ups go to its eventfd.
    pub fn set_eventfd(&self, fd: i32) {
        self.evfd.store(fd, Ordering::Release);
    }

    pub fn register(&self, w: &std::task::Waker) {
        self.waker.register(w);
    }

    pub fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::SeqCst);
        if parked {
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

    /// The watchdog's tick: a shard that made no pass since the last tick while
    /// jobs wait for it (or, `stuck` says, its loop is runnable but its thread
    /// sleeps) lost a wake-up. Two ticks in a row are needed, so a push racing
    /// the tick is not taken for one. Returns true when it woke the shard.
    pub fn watch(&self) -> bool {
        let passes = self.passes.load(Ordering::Relaxed);
        let last = self.last_seen.swap(passes, Ordering::Relaxed);
        if last != passes {
            return false;
        }
        let stuck = || self.runnable.load(Ordering::SeqCst) && thread_sleeps(self.tid.load(Ordering::Relaxed));
        let lost = self.has_jobs() && self.parked.load(Ordering::SeqCst);
        if !lost && !stuck() {
            return false;
        }
        self.rescues.fetch_add(1, Ordering::Relaxed);
        crate::log_warning!("BUG: a shard slept with work waiting; the watchdog woke it");
        self.parked.store(false, Ordering::SeqCst);
        self.waker.wake();
        let fd = self.evfd.load(Ordering::Acquire);
        if fd >= 0 {
            let one: u64 = 1;
            // SAFETY: as in `wake`.
            unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
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
            inbox.parked.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if inbox.queue.is_empty() {
                return Poll::Pending;
            }
            inbox.parked.store(false, Ordering::SeqCst);
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
