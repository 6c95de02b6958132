//! One-shot replies delivered on the shard that waits for them.
//!
//! A reply sent from another shard's thread is not handed to the waiting task
//! directly (that would be a foreign wake, which glommio only processes when its
//! reactor runs: while the shard's socket loop is busy, not for up to a preempt
//! period). It travels back as a job in the waiter's inbox instead, which the
//! busy loop drains every pass and which wakes a parked shard.

use futures_channel::oneshot;

pub type ReplyRx<T> = oneshot::Receiver<T>;

pub struct ReplyTx<T: Send + 'static> {
    tx: Option<oneshot::Sender<T>>,
    origin: usize,
}

/// A reply channel whose receiver waits on this thread's shard.
pub fn channel<T: Send + 'static>() -> (ReplyTx<T>, ReplyRx<T>) {
    let (tx, rx) = oneshot::channel();
    (
        ReplyTx {
            tx: Some(tx),
            origin: super::shard_id(),
        },
        rx,
    )
}

impl<T: Send + 'static> ReplyTx<T> {
    /// The receiver is gone (its waiter gave up).
    pub fn is_canceled(&self) -> bool {
        self.tx.as_ref().is_none_or(|t| t.is_canceled())
    }

    pub fn send(mut self, v: T) {
        let Some(tx) = self.tx.take() else { return };
        if super::shard_id() == self.origin {
            let _ = tx.send(v);
        } else {
            super::send(
                self.origin,
                Box::new(move || {
                    let _ = tx.send(v);
                }),
            );
        }
    }
}

impl<T: Send + 'static> Drop for ReplyTx<T> {
    fn drop(&mut self) {
        // Dropped unsent (a panicking job): the waiter learns it on its own shard too.
        if let Some(tx) = self.tx.take() {
            if super::shard_id() != self.origin {
                super::send(self.origin, Box::new(move || drop(tx)));
            }
        }
    }
}
