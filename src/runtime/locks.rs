//! Per-shard intent locks for cross-shard transactions (a small VLL).
//!
//! Locks are on key fingerprints (db + key) or on the whole shard, in shared
//! or exclusive mode, and each has an owner (a transaction id), so a
//! transaction's own later steps pass its own locks. Requests that conflict
//! queue FIFO; a release grants only the queued requests that no longer
//! conflict (it wakes nobody else). Single-shard commands take no locks when
//! nothing conflicts; when something does, they queue like a transaction (so
//! a stream of transactions on a hot key cannot starve them), run when
//! granted, and release at once.
//!
//! Everything an owner holds or has queued on a shard is dropped by one
//! `release(owner)`, which is what a transaction guard sends when it is
//! dropped (finished, failed, panicked or cancelled): no lock can leak.

use std::collections::{HashMap, VecDeque};

/// A transaction id: unique per process (see `runtime::next_tx_id`).
pub type TxId = u64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl Mode {
    #[inline]
    fn compatible(self, other: Mode) -> bool {
        self == Mode::Shared && other == Mode::Shared
    }
}

/// Fingerprint of (db, key). Collisions only cause extra waiting, never wrong results.
#[inline]
pub fn fingerprint(db: usize, key: &[u8]) -> u64 {
    // Fixed seeds: a fingerprint must be the same wherever it is computed.
    let s = ahash::RandomState::with_seeds(0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344);
    s.hash_one((db, key))
}

/// What one owner asks for on one shard.
#[derive(Clone, Debug, Default)]
pub struct LockReq {
    /// Key fingerprints and modes (deduplicated by `normalize`).
    pub keys: Vec<(u64, Mode)>,
    /// A lock on the whole shard: FLUSHALL (exclusive), KEYS/SCAN/DBSIZE (shared).
    pub shard: Option<Mode>,
}

impl LockReq {
    pub fn shard_wide(mode: Mode) -> Self {
        LockReq {
            keys: Vec::new(),
            shard: Some(mode),
        }
    }

    /// Sorts and deduplicates the keys; a key asked for in both modes is exclusive.
    pub fn normalize(&mut self) {
        self.keys.sort_unstable_by_key(|k| (k.0, k.1 == Mode::Shared));
        self.keys.dedup_by_key(|k| k.0);
    }

    fn conflicts_with(&self, other: &LockReq) -> bool {
        if let Some(m) = self.shard {
            if let Some(o) = other.shard {
                if !m.compatible(o) {
                    return true;
                }
            }
            if other.keys.iter().any(|k| !m.compatible(k.1)) {
                return true;
            }
        }
        if let Some(o) = other.shard {
            if self.keys.iter().any(|k| !o.compatible(k.1)) {
                return true;
            }
        }
        self.keys.iter().any(|(f, m)| other.keys.iter().any(|(g, n)| f == g && !m.compatible(*n)))
    }
}

/// How a queued request is told it was granted.
pub type Grant = super::reply::ReplyTx<()>;

struct Pending {
    owner: TxId,
    req: LockReq,
    grant: Grant,
}

#[derive(Default)]
pub struct LockTable {
    /// Holders per key fingerprint.
    keys: HashMap<u64, Vec<(TxId, Mode)>>,
    /// Holders of the whole-shard lock.
    shard: Vec<(TxId, Mode)>,
    /// What each owner holds here, for `release(owner)`.
    owned: HashMap<TxId, LockReq>,
    /// Key locks held, in total and exclusive (for whole-shard requests).
    held_keys: usize,
    held_exclusive: usize,
    queue: VecDeque<Pending>,
}

impl LockTable {
    /// True when nothing is held or queued: the single-shard fast path.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.queue.is_empty()
    }

    /// Whether `owner` may touch `fp` in `mode` given what is held now.
    fn key_conflicts(&self, owner: TxId, fp: u64, mode: Mode) -> bool {
        if self.shard.iter().any(|&(o, m)| o != owner && !m.compatible(mode)) {
            return true;
        }
        match self.keys.get(&fp) {
            Some(h) => h.iter().any(|&(o, m)| o != owner && !m.compatible(mode)),
            None => false,
        }
    }

    fn shard_conflicts(&self, owner: TxId, mode: Mode) -> bool {
        if self.shard.iter().any(|&(o, m)| o != owner && !m.compatible(mode)) {
            return true;
        }
        let (mut mine, mut mine_excl) = (0, 0);
        if let Some(r) = self.owned.get(&owner) {
            mine = r.keys.len();
            mine_excl = r.keys.iter().filter(|k| k.1 == Mode::Exclusive).count();
        }
        match mode {
            Mode::Exclusive => self.held_keys > mine,
            Mode::Shared => self.held_exclusive > mine_excl,
        }
    }

    fn held_conflicts(&self, owner: TxId, req: &LockReq) -> bool {
        if let Some(m) = req.shard {
            if self.shard_conflicts(owner, m) {
                return true;
            }
        }
        req.keys.iter().any(|&(f, m)| self.key_conflicts(owner, f, m))
    }

    /// True when a command of `owner` (0: none) touching these keys must wait:
    /// another owner holds a conflicting lock. Queued requests are not
    /// consulted: a single-shard command runs at once and holds nothing, so
    /// letting it pass a queued transaction cannot starve that transaction.
    pub fn must_wait(&self, owner: TxId, keys: impl Iterator<Item = (u64, Mode)>, shard_mode: Option<Mode>) -> bool {
        if self.owned.is_empty() {
            return false;
        }
        if let Some(m) = shard_mode {
            if self.shard_conflicts(owner, m) {
                return true;
            }
        }
        for (f, m) in keys {
            if self.key_conflicts(owner, f, m) {
                return true;
            }
        }
        false
    }

    fn queued_conflicts(&self, owner: TxId, req: &LockReq, upto: usize) -> bool {
        self.queue.iter().take(upto).any(|p| p.owner != owner && p.req.conflicts_with(req))
    }

    fn take(&mut self, owner: TxId, req: LockReq) {
        for &(f, m) in &req.keys {
            self.keys.entry(f).or_default().push((owner, m));
            self.held_keys += 1;
            if m == Mode::Exclusive {
                self.held_exclusive += 1;
            }
        }
        if let Some(m) = req.shard {
            self.shard.push((owner, m));
        }
        match self.owned.get_mut(&owner) {
            Some(r) => {
                r.keys.extend_from_slice(&req.keys);
                if req.shard.is_some() && r.shard != Some(Mode::Exclusive) {
                    r.shard = req.shard;
                }
            }
            None => {
                self.owned.insert(owner, req);
            }
        }
    }

    /// Grants `req` now if nothing held or queued conflicts; never queues.
    pub fn try_acquire(&mut self, owner: TxId, mut req: LockReq) -> bool {
        req.normalize();
        if self.held_conflicts(owner, &req) || self.queued_conflicts(owner, &req, usize::MAX) {
            return false;
        }
        self.take(owner, req);
        true
    }

    /// Grants `req` at once when possible, else queues it FIFO; `grant` fires when held.
    pub fn acquire(&mut self, owner: TxId, mut req: LockReq, grant: Grant) {
        req.normalize();
        if !self.held_conflicts(owner, &req) && !self.queued_conflicts(owner, &req, usize::MAX) {
            self.take(owner, req);
            grant.send(());
        } else {
            self.queue.push_back(Pending { owner, req, grant });
        }
    }

    /// Drops everything `owner` holds or has queued here, then grants what became free.
    pub fn release(&mut self, owner: TxId) {
        self.queue.retain(|p| p.owner != owner);
        if let Some(r) = self.owned.remove(&owner) {
            for (f, m) in r.keys {
                if let Some(h) = self.keys.get_mut(&f) {
                    if let Some(i) = h.iter().position(|&(o, hm)| o == owner && hm == m) {
                        h.swap_remove(i);
                        self.held_keys -= 1;
                        if m == Mode::Exclusive {
                            self.held_exclusive -= 1;
                        }
                    }
                    if h.is_empty() {
                        self.keys.remove(&f);
                    }
                }
            }
            self.shard.retain(|&(o, _)| o != owner);
        }
        self.grant_queued();
    }

    /// Grants queued requests in FIFO order among conflicting ones.
    fn grant_queued(&mut self) {
        let mut i = 0;
        while i < self.queue.len() {
            let ok = {
                let p = &self.queue[i];
                !self.held_conflicts(p.owner, &p.req) && !self.queued_conflicts(p.owner, &p.req, i)
            };
            if ok {
                if let Some(p) = self.queue.remove(i) {
                    if p.grant.is_canceled() {
                        // Nobody waits for it (a dropped transaction): its release follows.
                        continue;
                    }
                    self.take(p.owner, p.req);
                    p.grant.send(());
                }
            } else {
                i += 1;
            }
        }
    }

    /// Number of owners holding something here (INFO, tests).
    pub fn owners(&self) -> usize {
        self.owned.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_channel::oneshot;

    fn x(fps: &[u64]) -> LockReq {
        LockReq {
            keys: fps.iter().map(|&f| (f, Mode::Exclusive)).collect(),
            shard: None,
        }
    }

    fn s(fps: &[u64]) -> LockReq {
        LockReq {
            keys: fps.iter().map(|&f| (f, Mode::Shared)).collect(),
            shard: None,
        }
    }

    fn req(t: &mut LockTable, owner: TxId, r: LockReq) -> oneshot::Receiver<()> {
        let (tx, rx) = crate::runtime::reply::channel();
        t.acquire(owner, r, tx);
        rx
    }

    #[test]
    fn conflicting_requests_are_granted_in_order_after_release() {
        let mut t = LockTable::default();
        let mut a = req(&mut t, 1, x(&[1, 2]));
        let mut b = req(&mut t, 2, x(&[2, 3]));
        let mut c = req(&mut t, 3, x(&[4]));
        assert_eq!(a.try_recv(), Ok(Some(())));
        assert_eq!(b.try_recv(), Ok(None));
        assert_eq!(c.try_recv(), Ok(Some(())));
        assert!(t.must_wait(0, [(2, Mode::Shared)].into_iter(), None));
        t.release(1);
        assert_eq!(b.try_recv(), Ok(Some(())));
        assert!(!t.must_wait(0, [(1, Mode::Exclusive)].into_iter(), None));
        t.release(2);
        t.release(3);
        assert!(t.is_empty());
    }

    #[test]
    fn a_later_request_does_not_overtake_a_queued_conflicting_one() {
        let mut t = LockTable::default();
        let _a = req(&mut t, 1, x(&[1]));
        let mut b = req(&mut t, 2, x(&[1, 2]));
        let mut c = req(&mut t, 3, x(&[2]));
        assert_eq!(c.try_recv(), Ok(None), "c must queue behind b, which wants key 2 too");
        t.release(1);
        assert_eq!(b.try_recv(), Ok(Some(())));
        assert_eq!(c.try_recv(), Ok(None));
        t.release(2);
        assert_eq!(c.try_recv(), Ok(Some(())));
    }

    #[test]
    fn shared_locks_coexist_and_exclude_writers() {
        let mut t = LockTable::default();
        let mut a = req(&mut t, 1, s(&[7]));
        let mut b = req(&mut t, 2, s(&[7]));
        assert_eq!(a.try_recv(), Ok(Some(())));
        assert_eq!(b.try_recv(), Ok(Some(())));
        assert!(!t.must_wait(0, [(7, Mode::Shared)].into_iter(), None), "readers pass readers");
        assert!(t.must_wait(0, [(7, Mode::Exclusive)].into_iter(), None), "writers wait");
        let mut w = req(&mut t, 3, x(&[7]));
        assert_eq!(w.try_recv(), Ok(None));
        t.release(1);
        assert_eq!(w.try_recv(), Ok(None));
        t.release(2);
        assert_eq!(w.try_recv(), Ok(Some(())));
    }

    #[test]
    fn an_owner_passes_its_own_locks() {
        let mut t = LockTable::default();
        assert!(t.try_acquire(9, x(&[1])));
        assert!(!t.must_wait(9, [(1, Mode::Exclusive)].into_iter(), None));
        assert!(t.must_wait(8, [(1, Mode::Shared)].into_iter(), None));
        assert!(t.try_acquire(9, LockReq::shard_wide(Mode::Exclusive)), "its own key locks do not block it");
        assert!(!t.try_acquire(8, s(&[2])));
        t.release(9);
        assert!(t.is_empty());
    }

    #[test]
    fn shard_wide_modes_conflict_as_documented() {
        let mut t = LockTable::default();
        assert!(t.try_acquire(1, s(&[5])));
        assert!(t.try_acquire(2, LockReq::shard_wide(Mode::Shared)), "KEYS passes readers");
        assert!(!t.try_acquire(3, LockReq::shard_wide(Mode::Exclusive)), "FLUSHALL waits for everyone");
        assert!(
            t.must_wait(0, [(6, Mode::Exclusive)].into_iter(), None),
            "a write waits while KEYS holds the shard"
        );
        assert!(!t.must_wait(0, [(6, Mode::Shared)].into_iter(), None), "a read does not");
        let mut f = req(&mut t, 3, LockReq::shard_wide(Mode::Exclusive));
        let mut later = req(&mut t, 4, s(&[9]));
        assert_eq!(later.try_recv(), Ok(None), "queued behind the queued FLUSHALL");
        t.release(1);
        assert_eq!(f.try_recv(), Ok(None));
        t.release(2);
        assert_eq!(f.try_recv(), Ok(Some(())));
        assert_eq!(later.try_recv(), Ok(None));
        t.release(3);
        assert_eq!(later.try_recv(), Ok(Some(())));
    }

    #[test]
    fn releasing_a_dropped_request_leaves_nothing_behind() {
        let mut t = LockTable::default();
        assert!(t.try_acquire(1, x(&[1])));
        let rx = req(&mut t, 2, x(&[1]));
        drop(rx);
        t.release(1);
        // The grant found no receiver: the lock was not taken.
        t.release(2);
        assert!(t.is_empty());
        // A granted request whose owner then vanished is released by owner id.
        let rx = req(&mut t, 3, x(&[1]));
        drop(rx);
        t.release(3);
        assert!(t.is_empty());
    }
}
