//! A shard's mailbox: a lock-free queue of jobs plus a parked flag.
//!
//! Senders push and wake the shard's inbox task only when it has parked, so a
//! busy shard drains batches in its own loop without any wake-up; an idle one
//! sleeps in io_uring (glommio's foreign wake writes its eventfd). Zero CPU
//! when idle, one eventfd write per wake-up when busy-then-idle.

use atomic_waker::AtomicWaker;
use crossbeam_queue::SegQueue;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub type Job = Box<dyn FnOnce() + Send>;

pub struct Inbox {
    queue: SegQueue<Job>,
    waker: AtomicWaker,
    parked: AtomicBool,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            queue: SegQueue::new(),
            waker: AtomicWaker::new(),
            parked: AtomicBool::new(false),
        }
    }
}

impl Inbox {
    pub fn push(&self, job: Job) {
        self.queue.push(job);
        // Pairs with the fence in `poll`: either we see `parked`, or the receiver sees the job.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Wakes the shard's inbox task even with nothing queued (the watchdog's
    /// tick): the wake goes through glommio's foreign-wake eventfd, which pulls
    /// a sleeping executor back through its reactor loop.
    pub fn kick(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.waker.wake();
        }
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
                // A panicking job (a bug) must not take the shard down: its reply
                // channel is dropped, which its sender turns into an error reply.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                    crate::log_warning!("BUG: a cross-shard job panicked; its command was answered with an error");
                }
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
