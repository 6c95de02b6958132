//! MULTI/EXEC/WATCH on the transaction layer: the queue a client fills after
//! MULTI, its WATCHed keys, and EXEC, which runs the queue as one distributed
//! transaction (`runtime::tx::Tx`) so no other client sees it half done,
//! whichever shards its keys live on.
//!
//! EXEC locks, in one acquisition, the union of what its commands need:
//! every key of every queued command in the command's lock mode, the watched
//! keys (shared), and the whole of every shard (exclusive) when a command
//! touches more than its arguments name (FLUSHALL, KEYS, DBSIZE, SELECT...).
//! Under those locks it checks the watches, then runs the queue:
//!
//! * a run of consecutive commands that each stay on one shard travels as one
//!   hop per shard, all sent at once; their replies are spliced back in queue
//!   order (the keys of different shards are disjoint and all locked, so the
//!   order between shards is invisible);
//! * a connection command (SELECT, CLIENT SETNAME, PING...) runs on the
//!   connection between them;
//! * a command with its own cross-shard strategy (MSET over shards, RENAME,
//!   FLUSHALL, SORT BY...) runs as usual inside [`Within`], so its own
//!   `Tx::begin` joins EXEC's transaction instead of locking again.

use super::{execute, lock_keys, Batch, Route};
use crate::commands::table::{Command, Handler};
use crate::protocol::{Args, Reply};
use crate::runtime::locks::{fingerprint, LockReq, Mode};
use crate::runtime::tx::{run_on, Tx, Within};
use crate::runtime::{self, shard_id, with_shard, Ctx};
use crate::server::client::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One queued command: its table entry and its arguments' spans.
#[derive(Clone, Copy)]
struct Queued {
    cmd: &'static Command,
    args: (usize, usize),
}

/// The commands a client queued after MULTI, arguments back to back.
#[derive(Default)]
pub struct Queue {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
    cmds: Vec<Queued>,
    /// A command was refused while queuing (CLIENT_DIRTY_EXEC): EXEC answers EXECABORT.
    pub aborted: bool,
}

impl Queue {
    pub fn push(&mut self, cmd: &'static Command, args: &Args) {
        let first = self.spans.len();
        for a in args.iter() {
            let s = self.data.len();
            self.data.extend_from_slice(a);
            self.spans.push((s, self.data.len()));
        }
        self.cmds.push(Queued {
            cmd,
            args: (first, self.spans.len()),
        });
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Whether a queued command has `flag` (EXEC counts as a write, or as
    /// denyoom, when one of its commands is: processCommand's mstate.cmd_flags).
    pub fn any_has(&self, flag: u32) -> bool {
        self.cmds.iter().any(|q| q.cmd.has(flag))
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Bytes held by the queue (CLIENT LIST `multi-mem`).
    pub fn mem(&self) -> usize {
        self.data.capacity() + self.spans.capacity() * std::mem::size_of::<(usize, usize)>() + self.cmds.capacity() * std::mem::size_of::<Queued>()
    }

    fn args(&self, q: &Queued) -> Args<'_> {
        Args::new(&self.data, &self.spans[q.args.0..q.args.1])
    }
}

/// (db, key) pairs bound for one shard.
type DbKeys = Vec<(usize, Box<[u8]>)>;

/// The keys a client WATCHes, each registered on its owning shard's database
/// (`keyspace::db::Watcher`) with the client's dirty flag.
pub struct WatchSet {
    /// Raised by a write to any watched key (CLIENT_DIRTY_CAS). Replaced by a
    /// fresh flag when the watches end, so a late write to a key no longer
    /// watched cannot dirty a later transaction.
    pub flag: Arc<AtomicBool>,
    /// (db, key, owning shard), in WATCH order, each once.
    pub keys: Vec<(usize, Box<[u8]>, usize)>,
}

impl Default for WatchSet {
    fn default() -> Self {
        WatchSet {
            flag: Arc::new(AtomicBool::new(false)),
            keys: Vec::new(),
        }
    }
}

impl WatchSet {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn dirty(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Per-client bytes of the watch list (part of CLIENT LIST `multi-mem`, as in Redis).
    pub fn mem(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<(usize, Box<[u8]>, usize)>()
    }

    /// WATCH: registers each key on its shard, noting whether it is already
    /// expired there (Redis's `watchedKey.expired`).
    pub async fn watch(&mut self, db: usize, args: &Args<'_>) {
        let n = runtime::nshards();
        let mut fresh: Vec<(usize, Vec<Box<[u8]>>)> = Vec::new();
        for key in args.iter().skip(1) {
            if self.keys.iter().any(|(d, k, _)| *d == db && &**k == key) {
                continue;
            }
            let s = runtime::shard_of_key(key, n);
            self.keys.push((db, key.into(), s));
            match fresh.iter_mut().find(|(fs, _)| *fs == s) {
                Some((_, v)) => v.push(key.into()),
                None => fresh.push((s, vec![key.into()])),
            }
        }
        let hops: Vec<_> = fresh
            .into_iter()
            .map(|(s, keys)| {
                let flag = self.flag.clone();
                run_on(s, move |sh| {
                    let now = runtime::now_ms();
                    let d = &mut sh.dbs[db];
                    for k in keys {
                        let expired = d.is_expired(&k, now);
                        d.hook.watch(&k, &flag, expired);
                    }
                })
            })
            .collect();
        for h in hops {
            let _ = h.await;
        }
    }

    /// UNWATCH (also DISCARD, EXEC, RESET, a closed connection): the shards
    /// drop the registrations on their own time; the flag is replaced now.
    pub fn unwatch_all(&mut self) {
        if self.keys.is_empty() {
            self.flag.store(false, Ordering::Release);
            return;
        }
        for (s, keys) in self.by_shard() {
            let flag = self.flag.clone();
            let job = move |sh: &mut crate::runtime::Shard| {
                for (db, k) in keys {
                    if let Some(d) = sh.dbs.get_mut(db) {
                        d.hook.unwatch(&k, &flag, false);
                    }
                }
            };
            if s == shard_id() {
                // Directly, unless the shard is busy (a panic path): then as a job.
                let mut job = Some(job);
                if runtime::try_with_shard(|sh| job.take().map(|j| j(sh))).is_some() {
                    continue;
                }
                if let Some(j) = job {
                    runtime::send(s, Box::new(move || runtime::with_shard(j)));
                }
                continue;
            }
            // Nobody waits for the answer: the flag is replaced below.
            drop(run_on(s, job));
        }
        *self = WatchSet::default();
    }

    fn by_shard(&self) -> Vec<(usize, DbKeys)> {
        let mut v: Vec<(usize, DbKeys)> = Vec::new();
        for (db, k, s) in &self.keys {
            match v.iter_mut().find(|(vs, _)| vs == s) {
                Some((_, ks)) => ks.push((*db, k.clone())),
                None => v.push((*s, vec![(*db, k.clone())])),
            }
        }
        v
    }
}

/// How EXEC runs one queued command.
enum Step {
    /// Every key on this shard: part of a per-shard hop.
    One(usize),
    /// Keys on several shards, or more than its keys (its own cross-shard path).
    Cross,
    /// A connection command, run on the connection.
    Client,
    /// A command that visits every shard (FLUSHALL, KEYS, DBSIZE...).
    Async,
    /// Arguments its handler refuses before touching anything (MSET's
    /// incomplete pairs): the arity error, in its place in the reply.
    Refused,
}

/// Connection commands that change what later queued commands address.
fn changes_routing(cmd: &Command) -> bool {
    matches!(cmd.meta.name, "select")
}

/// EXEC (the queue is non-empty or not; aborted queues never get here):
/// locks, checks the watches, runs every command and writes the reply array.
pub async fn exec(c: &mut Client, q: Queue, watch: &mut WatchSet, out: &mut Reply) {
    if exec_here(c, &q, watch, out) {
        return;
    }
    if let Some(s) = one_other_shard(&q, watch, c.db) {
        if exec_there(s, c, &q, watch, out).await {
            return;
        }
    } else if exec_pair(c, &q, watch, out).await {
        return;
    }
    let n = runtime::nshards();
    let db = c.db;
    let mut routes: Vec<Route> = Vec::with_capacity(q.cmds.len());
    let mut steps: Vec<Step> = Vec::with_capacity(q.cmds.len());
    let mut parts: Vec<LockReq> = vec![LockReq::default(); n];
    let mut used = vec![false; n];
    let mut global = false;
    for qc in &q.cmds {
        let args = q.args(qc);
        let mut r = Route::default();
        let step = match qc.cmd.handler {
            _ if !qc.cmd.groups_ok(args.len()) => Step::Refused,
            Handler::Keyed(_) | Handler::Plan(_) | Handler::Block(_) => {
                r.compute(qc.cmd, &args, n);
                let wide = if n > 1 { qc.cmd.wide.and_then(|w| w(&args)) } else { None };
                if let Some(mode) = wide {
                    for (s, p) in parts.iter_mut().enumerate() {
                        p.shard = Some(if p.shard == Some(Mode::Exclusive) { Mode::Exclusive } else { mode });
                        used[s] = true;
                    }
                }
                for (s, ks) in r.by_shard() {
                    parts[s].keys.extend(lock_keys(qc.cmd, &args, &ks, db));
                    used[s] = true;
                }
                match r.target {
                    Some(s) if wide.is_none() => Step::One(s),
                    _ => Step::Cross,
                }
            }
            Handler::Client(_) => {
                global |= changes_routing(qc.cmd);
                Step::Client
            }
            Handler::Async(_) => {
                global = true;
                Step::Async
            }
        };
        routes.push(r);
        steps.push(step);
    }
    for (wdb, k, s) in &watch.keys {
        parts[*s].keys.push((fingerprint(*wdb, k), Mode::Shared));
        used[*s] = true;
    }
    let lock_parts: Vec<(usize, LockReq)> = if global {
        (0..n).map(|s| (s, LockReq::shard_wide(Mode::Exclusive))).collect()
    } else {
        parts.into_iter().enumerate().filter(|(s, _)| used[*s]).collect()
    };
    let mut tx = Tx::begin(db, lock_parts, Vec::new()).await;

    // Under the locks no watched key can change any more: check them
    // (modified, or expired since WATCH) and drop the registrations.
    if !watch.is_empty() {
        let flag = watch.flag.clone();
        let hops = watch
            .by_shard()
            .into_iter()
            .map(|(s, keys)| {
                let flag = flag.clone();
                (s, move |ctx: &mut Ctx| {
                    let now = ctx.now;
                    unwatch_checking(ctx.shard, &keys, &flag, now)
                })
            })
            .collect();
        let expired = tx.hop_each(hops).await.map(|v| v.into_iter().any(|e| e)).unwrap_or(true);
        let dirty = expired || watch.dirty();
        // The registrations are gone (the hops removed them).
        *watch = WatchSet::default();
        if dirty {
            out.null_array();
            return;
        }
    }

    out.array_len(q.cmds.len());
    let (start_db, body) = (c.db, out.buf.len());
    let mut i = 0;
    while i < q.cmds.len() {
        match steps[i] {
            Step::One(_) => {
                let mut j = i;
                while j < q.cmds.len() && matches!(steps[j], Step::One(_)) {
                    j += 1;
                }
                run_group(&mut tx, c, &q, &steps[i..j], i, out).await;
                i = j;
            }
            Step::Refused => {
                let qc = q.cmds[i];
                let mark = out.buf.len();
                crate::commands::table::write_arity_error(qc.cmd, out);
                count(qc.cmd, None, &out.buf[mark..]);
                i += 1;
            }
            Step::Client => {
                let qc = q.cmds[i];
                if let Handler::Client(f) = qc.cmd.handler {
                    run_client(c, qc.cmd, f, q.args(&qc), out);
                }
                i += 1;
            }
            Step::Async => {
                let qc = q.cmds[i];
                if let Handler::Async(f) = qc.cmd.handler {
                    let mark = out.buf.len();
                    let t0 = runtime::clock::ticks();
                    Within::new(&tx, f(c, q.args(&qc), out)).await;
                    count(qc.cmd, Some(t0), &out.buf[mark..]);
                }
                out.resp3 = c.resp3;
                i += 1;
            }
            Step::Cross => {
                let qc = q.cmds[i];
                let args = q.args(&qc);
                let route = &routes[i];
                let mark = out.buf.len();
                let db = c.db;
                let resp3 = c.resp3;
                let wide = if n > 1 { qc.cmd.wide.and_then(|w| w(&args)) } else { None };
                match (&qc.cmd.handler, wide) {
                    (_, Some(mode)) => Within::new(&tx, super::run_wide(qc.cmd, args, route, db, mode, out)).await,
                    (Handler::Block(_), None) => Within::new(&tx, super::block::once(qc.cmd, args, route, db, resp3, out)).await,
                    _ => Within::new(&tx, super::run_cross(qc.cmd, args, route, db, out)).await,
                }
                count(qc.cmd, None, &out.buf[mark..]);
                i += 1;
            }
        }
    }
    if runtime::propagate::on() {
        // Written when `tx` ends, before its locks go.
        let log = super::propagate::exec_block(start_db, tx.now, q.cmds.iter().map(|qc| (qc.cmd, q.args(qc))), &out.buf[body..]);
        tx.propagate_log(&log);
    }
}

/// The common transaction: every key (and watched key) on this shard and no
/// other transaction in flight here. Then, as for a single-shard command, no
/// lock is needed: nothing below awaits, so nothing can interleave. False
/// (nothing done) when the general path must run it.
fn exec_here(c: &mut Client, q: &Queue, watch: &mut WatchSet, out: &mut Reply) -> bool {
    let (me, n) = (shard_id(), runtime::nshards());
    if watch.keys.iter().any(|k| k.2 != me) || !with_shard(|s| s.locks.is_empty()) {
        return false;
    }
    let mut r = Route::default();
    for qc in &q.cmds {
        let args = q.args(qc);
        match qc.cmd.handler {
            _ if !qc.cmd.groups_ok(args.len()) => {}
            Handler::Keyed(_) | Handler::Plan(_) | Handler::Block(_) => {
                r.compute(qc.cmd, &args, n);
                if r.target != Some(me) || (n > 1 && qc.cmd.wide.and_then(|w| w(&args)).is_some()) {
                    return false;
                }
            }
            Handler::Client(_) if !changes_routing(qc.cmd) => {}
            _ => return false,
        }
    }
    let now = runtime::clock::wall_ms();
    if !watch.is_empty() {
        let flag = watch.flag.clone();
        let expired = with_shard(|sh| {
            let mut expired = false;
            for (kdb, k, _) in &watch.keys {
                let d = &mut sh.dbs[*kdb];
                let gone = d.is_expired(k, now);
                expired |= d.hook.unwatch(k, &flag, gone);
            }
            expired
        });
        let dirty = expired || watch.dirty();
        *watch = WatchSet::default();
        if dirty {
            out.null_array();
            return true;
        }
    }
    out.array_len(q.cmds.len());
    let on = runtime::propagate::on();
    if on {
        runtime::propagate::begin_block();
    }
    for qc in &q.cmds {
        let args = q.args(qc);
        let mark = out.buf.len();
        match qc.cmd.handler {
            _ if !qc.cmd.groups_ok(args.len()) => {
                crate::commands::table::write_arity_error(qc.cmd, out);
                count(qc.cmd, None, &out.buf[mark..]);
            }
            Handler::Client(f) => run_client(c, qc.cmd, f, args, out),
            _ => {
                let db = c.db;
                with_shard(|sh| {
                    if on {
                        // Recorded as it runs, before the blocked clients it serves.
                        super::propagate::TOP.set(Some(super::propagate::dirty(sh)));
                    }
                    execute(sh, qc.cmd, args, db, now, out)
                });
                count(qc.cmd, None, &out.buf[mark..]);
            }
        }
    }
    if on {
        // Nothing interleaved: the block joins this shard's round log.
        let log = runtime::propagate::end_block();
        runtime::propagate::record_log(&if log.cmds > 1 { log.wrapped() } else { log });
    }
    true
}

/// The one other shard owning every key of a queue made only of keyed
/// commands (and every watched key), if there is one.
fn one_other_shard(q: &Queue, watch: &WatchSet, _db: usize) -> Option<usize> {
    let (me, n) = (shard_id(), runtime::nshards());
    let mut target = None;
    let mut r = Route::default();
    for qc in &q.cmds {
        let args = q.args(qc);
        match qc.cmd.handler {
            Handler::Keyed(_) | Handler::Plan(_) | Handler::Block(_) if qc.cmd.groups_ok(args.len()) => {
                r.compute(qc.cmd, &args, n);
                if r.keys.is_empty() || (n > 1 && qc.cmd.wide.and_then(|w| w(&args)).is_some()) {
                    return None;
                }
                match (r.target, target) {
                    (Some(t), None) if t != me => target = Some(t),
                    (Some(t), Some(u)) if t == u => {}
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    let t = target?;
    watch.keys.iter().all(|k| k.2 == t).then_some(t)
}

/// [`exec_here`] for a queue whose keys all live on one other shard: the
/// whole transaction travels there as one job (one round trip, no locks)
/// and runs if no transaction is in flight on that shard. False (nothing
/// done, the watches untouched) when the general path must run it.
async fn exec_there(shard: usize, c: &Client, q: &Queue, watch: &mut WatchSet, out: &mut Reply) -> bool {
    let now = runtime::clock::wall_ms();
    let mut b = Box::new(Batch::new(c.db, c.resp3));
    for qc in &q.cmds {
        b.push(qc.cmd, &q.args(qc), &[], now, crate::runtime::track::caller());
    }
    let watched: Vec<(usize, Box<[u8]>)> = watch.keys.iter().map(|(d, k, _)| (*d, k.clone())).collect();
    let flag = watch.flag.clone();
    let job = move |sh: &mut crate::runtime::Shard| -> Option<(Box<Batch>, bool)> {
        if !sh.locks.is_empty() {
            return None;
        }
        if unwatch_checking(sh, &watched, &flag, now) || flag.load(Ordering::Acquire) {
            return Some((b, true));
        }
        if runtime::propagate::on() {
            // Recorded here, where it ran: ordered with this shard's other writes.
            runtime::propagate::begin_block();
            run_batch_recording(sh, &mut b, true);
            let log = runtime::propagate::end_block();
            runtime::propagate::record_log(&if log.cmds > 1 { log.wrapped() } else { log });
            runtime::propagate::flush_round();
        } else {
            run_batch(sh, &mut b);
        }
        Some((b, false))
    };
    let (b, dirty) = match run_on(shard, job).await {
        Ok(Some(done)) => done,
        Ok(None) => return false,
        Err(_) => {
            // The job was lost (a bug): whatever ran cannot be run again.
            *watch = WatchSet::default();
            out.error(crate::protocol::reply::err::SHARD_LOST);
            return true;
        }
    };
    *watch = WatchSet::default();
    if dirty {
        out.null_array();
        return true;
    }
    out.array_len(b.cmds.len());
    let mut pos = 0;
    for (bc, &end) in b.cmds.iter().zip(&b.ends) {
        out.raw(&b.out[pos..end]);
        count(bc.cmd, None, &b.out[pos..end]);
        pos = end;
    }
    true
}

/// A queue of single-shard commands over this shard and exactly one other:
/// this shard's locks are taken at once (they are ours), and the other
/// shard takes its locks, runs its part and releases them in the same job;
/// then this shard's part runs and its locks go. Every lock is held before
/// anything runs (two-phase locking), in one round trip instead of two. False (nothing done, the watches untouched) when a lock is busy
/// on either side: the general path queues for it.
async fn exec_pair(c: &Client, q: &Queue, watch: &mut WatchSet, out: &mut Reply) -> bool {
    let (me, n) = (shard_id(), runtime::nshards());
    // Its other side releases its locks before this side runs: the general
    // path keeps them all until the block is in the propagation stream.
    if n < 2 || runtime::propagate::on() {
        return false;
    }
    let db = c.db;
    let mut other = None;
    let mut remote: Vec<bool> = Vec::with_capacity(q.cmds.len());
    let (mut mine, mut theirs) = (LockReq::default(), LockReq::default());
    let mut r = Route::default();
    for qc in &q.cmds {
        let args = q.args(qc);
        match qc.cmd.handler {
            Handler::Keyed(_) | Handler::Plan(_) | Handler::Block(_) if qc.cmd.groups_ok(args.len()) => {
                r.compute(qc.cmd, &args, n);
                if qc.cmd.wide.and_then(|w| w(&args)).is_some() {
                    return false;
                }
                let t = match r.target {
                    Some(t) => t,
                    None => return false,
                };
                let here = t == me;
                if !here {
                    match other {
                        None => other = Some(t),
                        Some(o) if o == t => {}
                        Some(_) => return false,
                    }
                }
                let keys = lock_keys(qc.cmd, &args, &r.keys, db);
                if here { &mut mine } else { &mut theirs }.keys.extend(keys);
                remote.push(!here);
            }
            _ => return false,
        }
    }
    let Some(t) = other else { return false };
    if !remote.iter().any(|r| !r) || watch.keys.iter().any(|k| k.2 != me && k.2 != t) {
        return false;
    }
    for (wdb, k, s) in &watch.keys {
        if *s == me { &mut mine } else { &mut theirs }.keys.push((fingerprint(*wdb, k), Mode::Shared));
    }
    let id = crate::runtime::tx::next_tx_id();
    if !with_shard(|s| s.locks.try_acquire(id, mine)) {
        return false;
    }
    let release_mine = move || {
        with_shard(|s| {
            s.locks.release(id);
            s.after_write();
        })
    };
    let now = runtime::clock::wall_ms();
    let flag = watch.flag.clone();
    let here: Vec<(usize, Box<[u8]>)> = watch.keys.iter().filter(|k| k.2 == me).map(|(d, k, _)| (*d, k.clone())).collect();
    let there: Vec<(usize, Box<[u8]>)> = watch.keys.iter().filter(|k| k.2 == t).map(|(d, k, _)| (*d, k.clone())).collect();
    // This side's watches, under its locks (left in place in case the other side is busy).
    let expired_here = with_shard(|sh| here.iter().any(|(d, k)| sh.dbs[*d].hook.watch_expired(k, &flag, sh.dbs[*d].is_expired(k, now))));
    if expired_here || watch.dirty() {
        release_mine();
        watch.unwatch_all();
        out.null_array();
        return true;
    }
    let mut b = Box::new(Batch::new(db, c.resp3));
    for (qc, _) in q.cmds.iter().zip(&remote).filter(|(_, r)| **r) {
        b.push(qc.cmd, &q.args(qc), &[], now, crate::runtime::track::caller());
    }
    let theirs_flag = flag.clone();
    let job = move |sh: &mut crate::runtime::Shard| -> Option<(Box<Batch>, bool)> {
        if !sh.locks.try_acquire(id, theirs) {
            return None;
        }
        if unwatch_checking(sh, &there, &theirs_flag, now) || theirs_flag.load(Ordering::Acquire) {
            sh.locks.release(id);
            sh.after_write();
            return Some((b, true));
        }
        run_batch(sh, &mut b);
        // Every lock of the transaction is held and this side is done: its
        // locks may go (two-phase locking's shrinking phase). This shard's
        // new values are visible now, and the other side's keys stay locked
        // until its part has run, so no reader sees one without the other.
        sh.locks.release(id);
        sh.after_write();
        Some((b, false))
    };
    let release_theirs = move || {
        crate::runtime::send(
            t,
            Box::new(move || {
                with_shard(|s| {
                    s.locks.release(id);
                    s.after_write();
                })
            }),
        )
    };
    let (b, dirty) = match run_on(t, job).await {
        Ok(Some(done)) => done,
        Ok(None) => {
            release_mine();
            return false;
        }
        Err(_) => {
            release_mine();
            release_theirs();
            *watch = WatchSet::default();
            out.error(crate::protocol::reply::err::SHARD_LOST);
            return true;
        }
    };
    // The other side removed its watches; this side's go now.
    with_shard(|sh| {
        for (d, k) in &here {
            sh.dbs[*d].hook.unwatch(k, &flag, false);
        }
    });
    *watch = WatchSet::default();
    if dirty {
        release_mine();
        out.null_array();
        return true;
    }
    let mut local = Reply::new(c.resp3);
    let mut ends = Vec::with_capacity(remote.len());
    with_shard(|sh| {
        for (qc, _) in q.cmds.iter().zip(&remote).filter(|(_, r)| !**r) {
            execute(sh, qc.cmd, q.args(qc), db, now, &mut local);
            ends.push(local.buf.len());
        }
    });
    release_mine();
    out.array_len(q.cmds.len());
    let (mut ri, mut rpos, mut li, mut lpos) = (0, 0, 0, 0);
    for (qc, is_remote) in q.cmds.iter().zip(&remote) {
        let reply = if *is_remote {
            let end = b.ends[ri];
            ri += 1;
            let s = &b.out[rpos..end];
            rpos = end;
            s
        } else {
            let end = ends[li];
            li += 1;
            let s = &local.buf[lpos..end];
            lpos = end;
            s
        };
        out.raw(reply);
        count(qc.cmd, None, reply);
    }
    true
}

/// A queued connection command, run on the connection (a panic answers an
/// error); later replies follow the protocol it may have switched to.
fn run_client(c: &mut Client, cmd: &'static Command, f: crate::commands::table::ClientFn, args: Args, out: &mut Reply) {
    let mark = out.buf.len();
    let t0 = runtime::clock::ticks();
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c, args, out))).is_err() {
        out.buf.truncate(mark);
        super::internal_error(cmd, out);
    }
    out.resp3 = c.resp3;
    count(cmd, Some(t0), &out.buf[mark..]);
}

/// Runs a batch's commands on `sh` in order, filling its replies and their ends.
fn run_batch(sh: &mut crate::runtime::Shard, b: &mut Batch) {
    run_batch_recording(sh, b, false)
}

/// `record`: each command that changed data is recorded as it runs (into the
/// block the caller opened), before the blocked clients its write serves.
fn run_batch_recording(sh: &mut crate::runtime::Shard, b: &mut Batch, record: bool) {
    let mut r = Reply::with_buf(std::mem::take(&mut b.out), b.resp3);
    for bc in &b.cmds {
        let args = Args::new(&b.data, &b.spans[bc.args.0..bc.args.1]);
        if record {
            super::propagate::TOP.set(Some(super::propagate::dirty(sh)));
        }
        crate::runtime::track::as_caller(bc.caller, || execute(sh, bc.cmd, args, b.db, bc.now, &mut r));
        b.ends.push(r.buf.len());
    }
    b.out = r.buf;
}

/// EXEC's watch check on one shard: removes `flag`'s watches of `keys` and
/// says whether one of them expired since WATCH (isWatchedKeyExpired).
fn unwatch_checking(sh: &mut crate::runtime::Shard, keys: &[(usize, Box<[u8]>)], flag: &Arc<AtomicBool>, now: u64) -> bool {
    let mut expired = false;
    for (kdb, k) in keys {
        let d = &mut sh.dbs[*kdb];
        let gone = d.is_expired(k, now);
        expired |= d.hook.unwatch(k, flag, gone);
    }
    expired
}

/// Counts a command run by EXEC as Redis's call() does: calls, failures, and
/// the time when `t0` is given (commands run by `execute` recorded theirs).
fn count(cmd: &Command, t0: Option<u64>, reply: &[u8]) {
    with_shard(|sh| {
        sh.stats.commands += 1;
        let st = sh.stats.cmd_mut(cmd.id);
        st.calls += 1;
        if let Some(t0) = t0 {
            st.record(runtime::clock::elapsed_ns(t0));
        }
        if reply.first() == Some(&b'-') {
            sh.stats.cmd_mut(cmd.id).failed += 1;
            sh.stats.count_error(reply);
        }
    });
}

/// Runs queued commands `first..first + steps.len()`, each on one shard: one
/// hop per shard (sent together), replies spliced back in queue order.
async fn run_group(tx: &mut Tx<'_>, c: &Client, q: &Queue, steps: &[Step], first: usize, out: &mut Reply) {
    let (db, resp3, now) = (c.db, c.resp3, tx.now);
    let mut batches: Vec<(usize, Box<Batch>)> = Vec::new();
    for (k, st) in steps.iter().enumerate() {
        let Step::One(s) = *st else { continue };
        let qc = q.cmds[first + k];
        let b = match batches.iter_mut().find(|(bs, _)| *bs == s) {
            Some((_, b)) => b,
            None => {
                batches.push((s, Box::new(Batch::new(db, resp3))));
                &mut batches.last_mut().expect("just pushed").1
            }
        };
        b.push(qc.cmd, &q.args(&qc), &[], now, crate::runtime::track::caller());
    }
    let shards: Vec<usize> = batches.iter().map(|(s, _)| *s).collect();
    let hops = batches
        .into_iter()
        .map(|(s, mut b)| {
            (s, move |ctx: &mut Ctx| {
                run_batch(ctx.shard, &mut b);
                b
            })
        })
        .collect();
    let done = tx.hop_each(hops).await;
    let Ok(done) = done else {
        for k in 0..steps.len() {
            super::internal_error(q.cmds[first + k].cmd, out);
        }
        return;
    };
    // Splice: the k-th command of shard s is the next unread reply of its batch.
    let mut cursor: Vec<(usize, usize)> = vec![(0, 0); done.len()];
    for (k, st) in steps.iter().enumerate() {
        let Step::One(s) = *st else { continue };
        let bi = shards.iter().position(|&x| x == s).unwrap_or(0);
        let b = &done[bi];
        let (idx, pos) = cursor[bi];
        let end = b.ends.get(idx).copied().unwrap_or(b.out.len());
        let reply = &b.out[pos..end];
        out.raw(reply);
        cursor[bi] = (idx + 1, end);
        count(q.cmds[first + k].cmd, None, reply);
    }
}
