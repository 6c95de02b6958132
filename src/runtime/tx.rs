//! The transaction primitive every multi-shard operation runs through.
//!
//! A [`Tx`] is created for one command (or, later, one EXEC or script). It
//! either runs **inline** on the shard that owns every key (no locks: the
//! steps run synchronously, so nothing can interleave), or **distributed**:
//!
//! 1. *acquire*: lock requests go to every shard at once as non-queuing
//!    `try_acquire`s (one round trip when nothing conflicts); if any shard
//!    refuses, the granted ones are released and the locks are then taken
//!    shard by shard **in ascending shard order**, queued FIFO, so no
//!    wait-for cycle (deadlock) can form;
//! 2. *hops*: closures run on the owning shards, all hops of a step sent at
//!    once and awaited together ([`Tx::hop_each`]), with the transaction's
//!    db and time (taken after the locks were granted);
//! 3. *release*: by the guard's `Drop`, whatever ends the transaction (done,
//!    error, a panicking hop, a dropped future), so no lock can leak.
//!
//! The same command code runs in both modes (see `commands::table::PlanFn`).

use super::locks::{LockReq, Mode, TxId};
use super::track::as_caller;
use super::{now_ms, send, shard_id, with_shard, Ctx, Shard};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

static NEXT_TX: AtomicU64 = AtomicU64::new(1);

/// A fresh transaction id (never 0: 0 means "no owner").
pub fn next_tx_id() -> TxId {
    NEXT_TX.fetch_add(1, Ordering::Relaxed)
}

/// A hop whose shard failed to answer (its job panicked): the command answers an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopLost;

enum Kind<'s> {
    /// Every key is on this shard, which the caller already holds.
    Inline(&'s mut Shard),
    /// Locks taken on these shards (sorted); hops travel as jobs.
    Distributed { shards: Vec<usize> },
    /// Run from a thread that cannot await (a Lua script that holds every
    /// shard's lock): hops on `home` are direct calls, hops elsewhere block
    /// this thread until that shard answers (`runtime::call_blocking`).
    Blocking { home: &'s mut Shard, shards: Vec<usize> },
}

pub struct Tx<'s> {
    pub id: TxId,
    /// Joined an enclosing transaction (EXEC, a script) whose locks cover it:
    /// it took none and releases none.
    borrowed: bool,
    pub db: usize,
    /// The command's time (ms): one value for every hop, taken after the lock wait.
    pub now: u64,
    kind: Kind<'s>,
    /// Owning shard of each key argument (position, shard), from the command's route.
    keys: Vec<(u32, u16)>,
    /// The client the transaction runs for (client-side caching), set on
    /// every shard it hops to.
    pub caller: Option<super::track::Caller>,
    /// What the transaction propagates (`propagate.rs`), handed to the
    /// stream when it ends, before its locks are released.
    block: super::propagate::Log,
    /// The pending record of the command that began it (`propagate::WithPending`).
    pending: Option<super::propagate::Pending>,
}

impl<'s> Tx<'s> {
    /// A transaction whose keys all live on `shard`, which the caller is running on.
    pub fn inline(shard: &'s mut Shard, db: usize, now: u64) -> Tx<'s> {
        Tx {
            id: 0,
            borrowed: false,
            db,
            now,
            kind: Kind::Inline(shard),
            keys: Vec::new(),
            caller: None,
            block: Default::default(),
            pending: None,
        }
    }

    /// A transaction for a command run from a blocked thread (see [`Kind::Blocking`]).
    pub fn blocking(home: &'s mut Shard, db: usize, now: u64, keys: Vec<(u32, u16)>) -> Tx<'s> {
        let mut shards: Vec<usize> = keys.iter().map(|k| k.1 as usize).collect();
        shards.sort_unstable();
        shards.dedup();
        Tx {
            id: 0,
            borrowed: true,
            db,
            now,
            kind: Kind::Blocking { home, shards },
            keys,
            caller: None,
            block: Default::default(),
            pending: None,
        }
    }

    /// Records a command this transaction ran (its coordinator's view: the
    /// whole MSET, RENAME, EXEC block...), written when it ends. A borrowed
    /// transaction records nothing: its enclosing EXEC records the command;
    /// an inline one neither: `exec::execute` records what ran on the shard.
    pub fn propagate(&mut self, db: usize, argv: &[&[u8]]) {
        if !self.borrowed && !self.is_inline() && super::propagate::on() {
            self.block.push(db, argv);
        }
    }

    /// Like [`Tx::propagate`] for a whole log (EXEC's MULTI ... EXEC block).
    pub fn propagate_log(&mut self, l: &super::propagate::Log) {
        if !self.borrowed && !self.is_inline() && super::propagate::on() {
            self.block.append(l);
        }
    }

    pub fn is_borrowed(&self) -> bool {
        self.borrowed
    }

    /// The shard owning key argument `i` (from the route; no rehashing).
    pub fn shard_of_arg(&self, i: usize) -> usize {
        match &self.kind {
            Kind::Inline(s) => s.id,
            Kind::Distributed { .. } | Kind::Blocking { .. } => self.keys.iter().find(|k| k.0 as usize == i).map(|k| k.1 as usize).unwrap_or_else(shard_id),
        }
    }

    /// Whether argument `i`, a key, was routed (its shard is locked or, in
    /// inline mode, is this shard): a command that finds a key its key
    /// specs did not name must not write it elsewhere.
    pub fn routes_arg(&self, i: usize, key: &[u8]) -> bool {
        match &self.kind {
            Kind::Inline(s) => super::shard_of_key(key, super::nshards()) == s.id,
            Kind::Distributed { .. } | Kind::Blocking { .. } => self.keys.iter().any(|k| k.0 as usize == i),
        }
    }

    /// Every shard holding a key argument, ascending.
    pub fn shards(&self) -> Vec<usize> {
        match &self.kind {
            Kind::Inline(s) => vec![s.id],
            Kind::Distributed { shards } | Kind::Blocking { shards, .. } => shards.clone(),
        }
    }

    pub fn is_inline(&self) -> bool {
        matches!(self.kind, Kind::Inline(_))
    }

    /// Runs `f` on `shard` with the transaction's db and time.
    pub fn hop<R, F>(&mut self, shard: usize, f: F) -> Hop<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Ctx) -> R + Send + 'static,
    {
        let (db, now, caller) = (self.db, self.now, self.caller);
        match &mut self.kind {
            Kind::Inline(s) => {
                debug_assert_eq!(s.id, shard, "an inline transaction hopped to another shard");
                Hop::Ready(Some(Ok(as_caller(caller, || f(&mut Ctx { shard: s, db, now })))))
            }
            Kind::Blocking { home, .. } => {
                if shard == home.id {
                    let r = as_caller(caller, || {
                        let r = f(&mut Ctx { shard: home, db, now });
                        home.after_write();
                        r
                    });
                    return Hop::Ready(Some(Ok(r)));
                }
                let r = super::call_blocking(shard, std::time::Duration::from_secs(10), move |s| {
                    as_caller(caller, || f(&mut Ctx { shard: s, db, now }))
                });
                Hop::Ready(Some(r.ok_or(HopLost)))
            }
            Kind::Distributed { .. } => {
                if shard == shard_id() {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        with_shard(|s| {
                            as_caller(caller, || {
                                super::propagate::flush_round();
                                let r = f(&mut Ctx { shard: s, db, now });
                                s.after_write();
                                super::propagate::flush_round();
                                r
                            })
                        })
                    }));
                    return Hop::Ready(Some(r.map_err(|_| HopLost)));
                }
                let (tx, rx) = super::reply::channel();
                send(
                    shard,
                    Box::new(move || {
                        let r = with_shard(|s| {
                            as_caller(caller, || {
                                super::propagate::flush_round();
                                let r = f(&mut Ctx { shard: s, db, now });
                                s.after_write();
                                super::propagate::flush_round();
                                r
                            })
                        });
                        tx.send(r);
                    }),
                );
                Hop::Remote(rx)
            }
        }
    }

    /// Runs one closure per shard, all sent before any is awaited.
    pub async fn hop_each<R, F>(&mut self, parts: Vec<(usize, F)>) -> Result<Vec<R>, HopLost>
    where
        R: Send + 'static,
        F: FnOnce(&mut Ctx) -> R + Send + 'static,
    {
        let hops: Vec<Hop<R>> = parts.into_iter().map(|(s, f)| self.hop(s, f)).collect();
        let mut out = Vec::with_capacity(hops.len());
        for h in hops {
            out.push(h.await?);
        }
        Ok(out)
    }

    /// Locks `parts` (shard, request) and returns the distributed transaction.
    /// The guard is armed before the first request leaves, so a dropped
    /// future releases whatever was granted or queued.
    pub async fn begin(db: usize, mut parts: Vec<(usize, LockReq)>, keys: Vec<(u32, u16)>) -> Tx<'static> {
        parts.sort_by_key(|p| p.0);
        let (outer, outer_now) = AMBIENT.with(|a| a.get());
        if outer != 0 {
            // Inside EXEC or a script: its locks already cover this command.
            return Tx {
                id: outer,
                borrowed: true,
                db,
                now: outer_now,
                kind: Kind::Distributed {
                    shards: parts.iter().map(|p| p.0).collect(),
                },
                keys,
                caller: super::track::caller(),
                block: Default::default(),
                pending: None,
            };
        }
        let pending = super::propagate::ambient().filter(|p| p.borrow().is_some());
        let mut tx = Tx {
            id: next_tx_id(),
            borrowed: false,
            db,
            now: 0,
            kind: Kind::Distributed {
                shards: parts.iter().map(|p| p.0).collect(),
            },
            keys,
            caller: super::track::caller(),
            block: Default::default(),
            pending,
        };
        let owner = tx.id;
        // Phase 1: every shard at once, without queuing.
        let mut tries = Vec::with_capacity(parts.len());
        for (shard, req) in &parts {
            let req = req.clone();
            tries.push(run_on(*shard, move |s| s.locks.try_acquire(owner, req)));
        }
        let mut granted = Vec::with_capacity(parts.len());
        for t in tries {
            granted.push(t.await.unwrap_or(false));
        }
        if granted.iter().any(|g| !g) {
            // Phase 2: give back what was granted, then queue in ascending shard order.
            for (i, (shard, _)) in parts.iter().enumerate() {
                if granted[i] {
                    release_on(*shard, owner);
                }
            }
            for (shard, req) in parts {
                let (gtx, grx) = super::reply::channel();
                let _ = run_on(shard, move |s| s.locks.acquire(owner, req, gtx)).await;
                let _ = grx.await;
            }
        }
        tx.now = now_ms();
        tx
    }

    /// Locks the whole of every shard in `mode` (FLUSHALL, KEYS, SCAN, DBSIZE...).
    pub async fn begin_all(db: usize, mode: Mode) -> Tx<'static> {
        let parts = (0..super::nshards()).map(|s| (s, LockReq::shard_wide(mode))).collect();
        Tx::begin(db, parts, Vec::new()).await
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.borrowed {
            return;
        }
        // The transaction's effects enter the stream while it still holds its locks.
        if let Some(l) = self.pending.take().and_then(|p| p.borrow_mut().take()) {
            self.block.append(&l);
        }
        super::propagate::submit(&self.block);
        if let Kind::Distributed { shards } = &self.kind {
            for &s in shards {
                release_on(s, self.id);
            }
        }
    }
}

/// Releases everything `owner` holds or queued on `shard`.
fn release_on(shard: usize, owner: TxId) {
    let release = move |s: &mut Shard| {
        s.locks.release(owner);
        // Keys the transaction held may have become ready meanwhile.
        s.after_write();
    };
    if shard == shard_id() && super::try_with_shard(release).is_some() {
        return;
    }
    send(shard, Box::new(move || with_shard(release)));
}

thread_local! {
    /// The transaction (id, time) whose [`Within`] future is being polled on
    /// this thread, or 0: set only for the duration of that poll, so another
    /// connection's task polled in between never sees it.
    static AMBIENT: std::cell::Cell<(TxId, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Whether the command being polled runs inside EXEC or a script (Redis's
/// `server.in_exec` / `in_script`): BGSAVE is then only scheduled.
pub fn in_transaction() -> bool {
    AMBIENT.with(|a| a.get().0 != 0)
}

/// A future run inside transaction `tx` (EXEC, a script): every [`Tx::begin`]
/// it makes joins `tx` instead of locking, because `tx` already holds a
/// superset of what the command needs (its keys, or every shard). Taking
/// locks of its own would wait forever behind its own transaction.
pub struct Within<'a, T> {
    owner: (TxId, u64),
    fut: Pin<Box<dyn Future<Output = T> + 'a>>,
}

impl<'a, T> Within<'a, T> {
    pub fn new(tx: &Tx<'_>, fut: impl Future<Output = T> + 'a) -> Self {
        Within {
            owner: (tx.id, tx.now),
            fut: Box::pin(fut),
        }
    }
}

impl<T> Future for Within<'_, T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let prev = AMBIENT.with(|a| a.replace(this.owner));
        struct Restore((TxId, u64));
        impl Drop for Restore {
            fn drop(&mut self) {
                AMBIENT.with(|a| a.set(self.0));
            }
        }
        let _restore = Restore(prev);
        this.fut.as_mut().poll(cx)
    }
}

/// Runs `f` on `shard` (directly when it is ours) and yields its result.
pub fn run_on<R, F>(shard: usize, f: F) -> Hop<R>
where
    R: Send + 'static,
    F: FnOnce(&mut Shard) -> R + Send + 'static,
{
    if shard == shard_id() {
        return Hop::Ready(Some(Ok(with_shard(f))));
    }
    let (tx, rx) = super::reply::channel();
    send(
        shard,
        Box::new(move || {
            tx.send(with_shard(f));
        }),
    );
    Hop::Remote(rx)
}

/// The result of one hop: ready at once (inline or own shard) or a reply to await.
pub enum Hop<R> {
    Ready(Option<Result<R, HopLost>>),
    Remote(futures_channel::oneshot::Receiver<R>),
}

impl<R> Unpin for Hop<R> {}

impl<R> Future for Hop<R> {
    type Output = Result<R, HopLost>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Hop::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(HopLost))),
            Hop::Remote(rx) => Pin::new(rx).poll(cx).map(|r| r.map_err(|_| HopLost)),
        }
    }
}

/// A single-shard command's place in its shard's lock queue: taken when one
/// of its keys is held by a transaction, released when dropped.
pub struct QueuedTurn {
    owner: TxId,
}

impl QueuedTurn {
    pub fn owner(&self) -> TxId {
        self.owner
    }
}

impl Drop for QueuedTurn {
    fn drop(&mut self) {
        release_on(shard_id(), self.owner);
    }
}

/// Queues `req` on this shard (FIFO with transactions) and resolves once granted.
pub async fn queue_turn(req: LockReq) -> QueuedTurn {
    let turn = QueuedTurn { owner: next_tx_id() };
    let (gtx, grx) = super::reply::channel();
    let owner = turn.owner;
    with_shard(|s| s.locks.acquire(owner, req, gtx));
    let _ = grx.await;
    turn
}
