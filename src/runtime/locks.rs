//! Per-shard intent locks for cross-shard transactions (a small VLL).
//!
//! A transaction locks key fingerprints on every shard it touches, shard by
//! shard in ascending shard order (so two transactions can never wait on each
//! other in a cycle), runs its hops, then unlocks. Single-shard commands never
//! take locks: they only check that none of their keys is held, and wait if
//! one is. When no transaction is in flight the table is empty and the check
//! is one `is_empty()`.

use std::collections::{HashMap, VecDeque};
use std::task::Waker;

/// Fingerprint of (db, key). Collisions only cause extra waiting, never wrong results.
pub fn fingerprint(db: usize, key: &[u8]) -> u64 {
    // Fixed seeds: a fingerprint must be the same wherever it is computed.
    let s = ahash::RandomState::with_seeds(0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344);
    s.hash_one((db, key))
}

struct Pending {
    fps: Vec<u64>,
    grant: futures_channel::oneshot::Sender<()>,
}

#[derive(Default)]
pub struct LockTable {
    held: HashMap<u64, u32>,
    queue: VecDeque<Pending>,
    /// Single-shard commands (and batch continuations) waiting for any release.
    waiters: Vec<Waker>,
}

impl LockTable {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    #[inline]
    pub fn is_locked(&self, fp: u64) -> bool {
        !self.held.is_empty() && self.held.contains_key(&fp)
    }

    fn conflicts(&self, fps: &[u64]) -> bool {
        fps.iter().any(|f| self.held.contains_key(f))
    }

    fn take(&mut self, fps: &[u64]) {
        for f in fps {
            *self.held.entry(*f).or_insert(0) += 1;
        }
    }

    /// Requests exclusive locks on `fps` (deduplicated by the caller). Granted
    /// at once when free and nobody is queued for them; otherwise queued FIFO.
    pub fn acquire(&mut self, fps: Vec<u64>) -> futures_channel::oneshot::Receiver<()> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let queued_conflict = self.queue.iter().any(|p| p.fps.iter().any(|f| fps.contains(f)));
        if !queued_conflict && !self.conflicts(&fps) {
            self.take(&fps);
            let _ = tx.send(());
        } else {
            self.queue.push_back(Pending { fps, grant: tx });
        }
        rx
    }

    pub fn release(&mut self, fps: &[u64]) {
        for f in fps {
            if let Some(c) = self.held.get_mut(f) {
                *c -= 1;
                if *c == 0 {
                    self.held.remove(f);
                }
            }
        }
        // Grant queued requests that no longer conflict with held locks nor
        // with an earlier request still waiting (FIFO among conflicting ones).
        let mut i = 0;
        let mut blocked: Vec<u64> = Vec::new();
        while i < self.queue.len() {
            let ok = {
                let p = &self.queue[i];
                !self.conflicts(&p.fps) && !p.fps.iter().any(|f| blocked.contains(f))
            };
            if ok {
                if let Some(p) = self.queue.remove(i) {
                    if p.grant.is_canceled() {
                        continue;
                    }
                    self.take(&p.fps);
                    let _ = p.grant.send(());
                }
            } else {
                blocked.extend_from_slice(&self.queue[i].fps);
                i += 1;
            }
        }
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    pub fn wait(&mut self, w: Waker) {
        self.waiters.push(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_requests_are_granted_in_order_after_release() {
        let mut t = LockTable::default();
        let mut a = t.acquire(vec![1, 2]);
        let mut b = t.acquire(vec![2, 3]);
        let mut c = t.acquire(vec![4]);
        assert_eq!(a.try_recv(), Ok(Some(())));
        assert_eq!(b.try_recv(), Ok(None));
        assert_eq!(c.try_recv(), Ok(Some(())));
        assert!(t.is_locked(2));
        t.release(&[1, 2]);
        assert_eq!(b.try_recv(), Ok(Some(())));
        assert!(!t.is_locked(1));
        t.release(&[2, 3]);
        t.release(&[4]);
        assert!(t.is_empty());
    }

    #[test]
    fn a_later_request_does_not_overtake_a_queued_conflicting_one() {
        let mut t = LockTable::default();
        let _a = t.acquire(vec![1]);
        let mut b = t.acquire(vec![1, 2]);
        let mut c = t.acquire(vec![2]);
        assert_eq!(c.try_recv(), Ok(None), "c must queue behind b, which wants key 2 too");
        t.release(&[1]);
        assert_eq!(b.try_recv(), Ok(Some(())));
        assert_eq!(c.try_recv(), Ok(None));
        t.release(&[1, 2]);
        assert_eq!(c.try_recv(), Ok(Some(())));
    }
}
