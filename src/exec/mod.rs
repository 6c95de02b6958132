//! The transaction layer: between dispatch (server/) and the command families.
//!
//! * [`Route`]: a command's key positions and their owning shards, computed
//!   once per command from the table and carried through dispatch, locking,
//!   batching and splitting.
//! * [`execute`]: runs a command on the shard that owns all its keys (a
//!   `Keyed` handler, or a `Plan` with an inline transaction).
//! * [`Batch`]: the commands of one pipeline read bound for one shard, run in
//!   order by the owner ([`forward`]).
//! * [`run_cross`]: a command whose keys span shards, as a distributed
//!   transaction (`runtime::tx::Tx`): split into per-shard parts, or a plan.
//! * [`on_every_shard`]: FLUSHALL, DBSIZE, KEYS, SCAN... under whole-shard locks.

pub mod block;
pub mod multi;
pub mod propagate;

use crate::commands::keyspec::{self, KeyRef};
use crate::commands::table::{flags, Combine, Command, Cross, Handler, PlanFn};
use crate::protocol::{Args, Reply};
use crate::runtime::locks::{fingerprint, LockReq, Mode};
use crate::runtime::tx::{queue_turn, HopLost, Tx};
use crate::runtime::{self, send, shard_id, with_shard, Ctx, Shard};
use std::task::{Context, Poll};

/// A key argument: its position in argv, with [`SHARED_KEY`] set when the
/// command only reads it (key-spec flag RO, or a read-only command).
pub type KeyArg = u32;
pub const SHARED_KEY: KeyArg = 1 << 31;

#[inline]
pub fn key_pos(k: KeyArg) -> usize {
    (k & !SHARED_KEY) as usize
}

#[inline]
fn key_lock_mode(k: KeyArg) -> Mode {
    if k & SHARED_KEY != 0 {
        Mode::Shared
    } else {
        Mode::Exclusive
    }
}

/// Where a command's keys live: computed once per command.
#[derive(Default, Debug)]
pub struct Route {
    /// The keys in the command's order, as [`KeyArg`]s (position + lock mode).
    pub keys: Vec<KeyArg>,
    /// Scratch for the key-spec extraction.
    refs: Vec<KeyRef>,
    /// The owning shard of each key.
    pub shards: Vec<u16>,
    /// The shard owning every key (for a keyless command: the connection's own),
    /// or None when the keys span shards.
    pub target: Option<usize>,
}

impl Route {
    /// Finds the keys from the command's key specs (`commands/keyspec.rs`).
    pub fn compute(&mut self, cmd: &Command, args: &Args, nshards: usize) {
        self.keys.clear();
        self.shards.clear();
        self.refs.clear();
        // Arguments that name no key are the handler's to reject (as Redis).
        let _ = keyspec::keys_for_route(cmd.specs, args, &mut self.refs);
        let mut target = None;
        let mut spans = false;
        let write = !cmd.has(flags::READONLY);
        for r in &self.refs {
            if r.flags & keyspec::flags::NOT_KEY != 0 {
                continue;
            }
            let i = r.pos;
            let s = runtime::shard_of_key(args.get(i), nshards);
            let shared = !write || r.flags & keyspec::flags::RO != 0;
            self.keys.push(i as u32 | if shared { SHARED_KEY } else { 0 });
            self.shards.push(s as u16);
            match target {
                None => target = Some(s),
                Some(t) if t != s => spans = true,
                _ => {}
            }
        }
        self.target = if spans { None } else { Some(target.unwrap_or_else(shard_id)) };
    }

    /// The keys grouped by owning shard (ascending), each group in the command's order.
    pub fn by_shard(&self) -> Vec<(usize, Vec<KeyArg>)> {
        crate::util::group_by_shard(self.shards.iter().map(|&s| s as usize).zip(self.keys.iter().copied()))
    }
}

/// The (fingerprint, mode) pairs a command touches among `positions`, plus its
/// key in another database (MOVE, COPY ... DB) when that key is on `shard`.
pub fn lock_keys(cmd: &Command, args: &Args, keys: &[KeyArg], db: usize) -> Vec<(u64, Mode)> {
    let mut v: Vec<(u64, Mode)> = keys.iter().map(|&k| (fingerprint(db, args.get(key_pos(k))), key_lock_mode(k))).collect();
    if let Some((pos, odb)) = cmd.other_db.and_then(|f| f(args, db)) {
        if keys.iter().any(|&k| key_pos(k) == pos) {
            v.push((fingerprint(odb, args.get(pos)), Mode::Exclusive));
        }
    }
    v
}

/// True when a transaction holds one of the command's keys on this shard.
#[inline]
pub fn must_wait(s: &Shard, cmd: &Command, args: &Args, keys: &[KeyArg], db: usize) -> bool {
    if s.locks.is_empty() {
        return false;
    }
    s.locks.must_wait(0, lock_keys(cmd, args, keys, db).into_iter(), None)
}

/// Waits for the command's turn in this shard's lock queue (see `locks.rs`).
pub async fn wait_turn(cmd: &Command, args: &Args<'_>, keys: &[KeyArg], db: usize) -> runtime::tx::QueuedTurn {
    let req = LockReq {
        keys: lock_keys(cmd, args, keys, db),
        shard: None,
    };
    queue_turn(req).await
}

/// [`execute`] for a command run at top level (inline for its connection, or
/// in a forwarded batch): what it changed is recorded in the propagation
/// stream (`propagate.rs`), on this shard.
#[inline]
pub fn execute_top(s: &mut Shard, cmd: &'static Command, args: Args, db: usize, now: u64, out: &mut Reply) {
    if !runtime::propagate::on() {
        return execute(s, cmd, args, db, now, out);
    }
    propagate::TOP.set(Some(propagate::dirty(s)));
    execute(s, cmd, args, db, now, out);
}

/// Runs a command whose keys are all on `s` (the calling shard).
#[inline]
pub fn execute(s: &mut Shard, cmd: &'static Command, args: Args, db: usize, now: u64, out: &mut Reply) {
    // Taken first: a nested execute (inside a handler) is not a top-level command.
    let top = propagate::TOP.take();
    if runtime::propagate::on() {
        runtime::propagate::clear_also();
    }
    // Redis's performEvictions before a command, on the shard owning its keys
    // (evictions change no `dirty`; their DELs are recorded before the command).
    if crate::keyspace::evict::over_limit() {
        s.evict();
    }
    let mark = out.buf.len();
    let t0 = runtime::clock::ticks();
    // A handler bug must not take the shard (and every connection on it) down.
    let ok = match cmd.handler {
        Handler::Keyed(f) => {
            let mut ctx = Ctx { shard: s, db, now };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut ctx, args, out))).is_ok()
        }
        Handler::Plan(f) => run_plan_inline(s, f, args, db, now, out),
        Handler::Block(f) => {
            // Where a client cannot block (a forwarded batch, MULTI, a script):
            // the command runs once and, with nothing to serve, times out at once.
            let mut ctx = Ctx { shard: s, db, now };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut ctx, args, None, out))) {
                Ok(crate::commands::table::BlockResult::Wait { .. }) => {
                    block_timeout_reply(cmd, out);
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        }
        Handler::Client(_) | Handler::Async(_) => false,
    };
    if !ok {
        out.buf.truncate(mark);
        internal_error(cmd, out);
    }
    s.stats.cmd_mut(cmd.id).record(runtime::clock::elapsed_ns(t0));
    if let Some(d0) = top {
        // Recorded after the expiry deletes it met and before the blocked
        // clients its write serves (their pops follow it, as in Redis).
        runtime::propagate::drain_expired(s);
        propagate::record_top(cmd, &args, db, now, &out.buf[mark..], propagate::dirty(s) != d0);
    }
    s.after_write();
    if runtime::track::active() {
        // The caller's own invalidations, right after its reply (top level only).
        runtime::track::take_own(&mut out.buf);
    }
    // After the invalidations of what the command changed (a read's lazy
    // expiries): the keys it read stay tracked, as in Redis, where the expiry
    // comes during the lookup and trackingRememberKeys after the command.
    if runtime::track::active() {
        remember_reads(s, cmd, &args);
    }
}

/// Client-side caching: a read-only command run for a tracking client
/// (`runtime::track::Caller`) makes its keys tracked for that client, here
/// where they were read, before any later write can run.
#[cold]
fn remember_reads(s: &mut Shard, cmd: &Command, args: &Args) {
    let Some(c) = runtime::track::caller() else { return };
    if !c.remember || !cmd.has(flags::READONLY) {
        return;
    }
    let mut refs = Vec::new();
    let _ = keyspec::keys_for_route(cmd.specs, args, &mut refs);
    for r in refs {
        if r.flags & keyspec::flags::NOT_KEY == 0 {
            s.track.remember(args.get(r.pos), c.client);
        }
    }
    s.track.limit(runtime::nshards(), 100);
}

/// The reply of a blocking command that could not block (a forwarded batch,
/// MULTI, a script) and found nothing: a null bulk for the moves (BLMOVE,
/// BRPOPLPUSH), a null array for the pops.
pub fn block_timeout_reply(cmd: &Command, out: &mut Reply) {
    if matches!(cmd.meta.name, "blmove" | "brpoplpush") {
        out.null();
    } else {
        out.null_array();
    }
}

/// A plan whose keys are all on this shard: every hop is a direct call, so one
/// poll completes it. Returns false if it panicked or (a bug) did not complete.
pub fn run_plan_inline(s: &mut Shard, f: PlanFn, args: Args, db: usize, now: u64, out: &mut Reply) -> bool {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut tx = Tx::inline(s, db, now);
        let mut fut = f(&mut tx, args, out);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(())))
    }));
    r.unwrap_or(false)
}

/// The reply for a command whose handler panicked (a bug): logged, answered, survived.
pub fn internal_error(cmd: &Command, out: &mut Reply) {
    crate::log_warning!("BUG: handler of '{}' panicked; the command was answered with an error", cmd.meta.name);
    out.error(&format!("ERR internal error while executing '{}'", cmd.meta.name));
}

// ---------------------------------------------------------------- forwarded batches

/// Commands of one pipeline read bound for one shard.
pub struct Batch {
    pub db: usize,
    pub resp3: bool,
    pub data: Vec<u8>,
    pub spans: Vec<(usize, usize)>,
    /// Key positions of every command, back to back (from its `Route`).
    pub keys: Vec<KeyArg>,
    pub cmds: Vec<BatchCmd>,
    /// Filled by the owning shard: every reply, back to back ...
    pub out: Vec<u8>,
    /// ... and the end offset in `out` of each command's reply.
    pub ends: Vec<usize>,
}

#[derive(Clone, Copy)]
pub struct BatchCmd {
    pub cmd: &'static Command,
    /// Argument spans `spans[args.0..args.1]`, key positions `keys[keys.0..keys.1]`.
    pub args: (usize, usize),
    pub keys: (usize, usize),
    /// The time the connection assigned to the command (ms).
    pub now: u64,
    /// The client it runs for, while anyone tracks keys (client-side caching).
    pub caller: Option<runtime::track::Caller>,
}

impl Batch {
    pub fn new(db: usize, resp3: bool) -> Self {
        Batch {
            db,
            resp3,
            data: Vec::with_capacity(256),
            spans: Vec::with_capacity(16),
            keys: Vec::with_capacity(8),
            cmds: Vec::with_capacity(8),
            out: Vec::with_capacity(256),
            ends: Vec::with_capacity(8),
        }
    }

    /// Empties a batch that came back so the connection can send it again:
    /// a steady pipeline then forwards without allocating buffers.
    pub fn recycle(&mut self, db: usize, resp3: bool) {
        self.db = db;
        self.resp3 = resp3;
        self.data.clear();
        self.spans.clear();
        self.keys.clear();
        self.cmds.clear();
        self.out.clear();
        self.ends.clear();
    }

    /// Copies a command's arguments and key positions into the batch.
    pub fn push(&mut self, cmd: &'static Command, args: &Args, keys: &[KeyArg], now: u64, caller: Option<runtime::track::Caller>) {
        let first = self.spans.len();
        for a in args.iter() {
            let s = self.data.len();
            self.data.extend_from_slice(a);
            self.spans.push((s, self.data.len()));
        }
        let k = self.keys.len();
        self.keys.extend_from_slice(keys);
        self.cmds.push(BatchCmd {
            cmd,
            args: (first, self.spans.len()),
            keys: (k, self.keys.len()),
            now,
            caller,
        });
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }
}

struct BatchRun {
    b: Box<Batch>,
    next: usize,
}

impl BatchRun {
    /// Runs commands until done (true) or one meets a transaction's lock (false).
    /// `turn_held`: the next command already has its turn in the lock queue.
    fn run(&mut self, mut turn_held: bool) -> bool {
        let b = &mut *self.b;
        let mut out = Reply::with_buf(std::mem::take(&mut b.out), b.resp3);
        let done = with_shard(|s| {
            while self.next < b.cmds.len() {
                let c = b.cmds[self.next];
                let args = Args::new(&b.data, &b.spans[c.args.0..c.args.1]);
                if !turn_held && must_wait(s, c.cmd, &args, &b.keys[c.keys.0..c.keys.1], b.db) {
                    return false;
                }
                turn_held = false;
                runtime::track::as_caller(c.caller, || execute_top(s, c.cmd, args, b.db, c.now, &mut out));
                b.ends.push(out.buf.len());
                self.next += 1;
            }
            // Their records enter the stream before the replies go back.
            runtime::propagate::flush_round();
            true
        });
        b.out = out.buf;
        done
    }
}

/// Executes a batch on this shard and sends it back, replies filled in, through `reply`.
fn exec_batch(b: Box<Batch>, reply: runtime::reply::ReplyTx<Box<Batch>>) {
    let mut run = BatchRun { b, next: 0 };
    if run.run(false) {
        reply.send(run.b);
        return;
    }
    // A command met a lock: queue for its turn (FIFO with transactions), run it
    // holding the turn, and go on; the rest of the batch keeps its order.
    glommio::spawn_local(async move {
        loop {
            let turn = {
                let b = &run.b;
                let c = b.cmds[run.next];
                let args = Args::new(&b.data, &b.spans[c.args.0..c.args.1]);
                wait_turn(c.cmd, &args, &b.keys[c.keys.0..c.keys.1], b.db).await
            };
            // The lock wait took time: the command's clock is taken again.
            let now = runtime::now_ms();
            let i = run.next;
            run.b.cmds[i].now = run.b.cmds[i].now.max(now);
            let done = run.run(true);
            drop(turn);
            if done {
                reply.send(run.b);
                return;
            }
        }
    })
    .detach();
}

/// Sends a batch to its owning shard; the receiver yields it back with its replies
/// (or is cancelled if the shard lost it, which the caller answers with errors).
pub fn forward(shard: usize, b: Box<Batch>) -> runtime::reply::ReplyRx<Box<Batch>> {
    let (tx, rx) = runtime::reply::channel();
    send(shard, Box::new(move || exec_batch(b, tx)));
    rx
}

// ---------------------------------------------------------------- cross-shard commands

/// Owned arguments for a part of a split command.
struct Part {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Part {
    fn push(&mut self, a: &[u8]) {
        let s = self.data.len();
        self.data.extend_from_slice(a);
        self.spans.push((s, self.data.len()));
    }
}

/// Runs a command whose keys span shards as one distributed transaction.
pub async fn run_cross(cmd: &'static Command, args: Args<'_>, route: &Route, db: usize, out: &mut Reply) {
    let groups = route.by_shard();
    let keys = || {
        route
            .keys
            .iter()
            .map(|&k| key_pos(k) as u32)
            .zip(route.shards.iter().copied())
            .collect::<Vec<_>>()
    };
    let lock_parts = || -> Vec<(usize, LockReq)> {
        groups
            .iter()
            .map(|(s, ks)| {
                (
                    *s,
                    LockReq {
                        keys: lock_keys(cmd, &args, ks, db),
                        shard: None,
                    },
                )
            })
            .collect()
    };
    match (&cmd.handler, cmd.cross) {
        (Handler::Keyed(_), Cross::Split(combine)) => {
            let step = cmd.meta.key_step.max(1) as usize;
            let mut tx = Tx::begin(db, lock_parts(), keys()).await;
            let resp3 = out.resp3;
            // One sub-command per shard: the name, then that shard's key groups in order.
            let mut hops = Vec::with_capacity(groups.len());
            let mut positions: Vec<Vec<usize>> = Vec::with_capacity(groups.len());
            for (s, ks) in &groups {
                let mut part = Part {
                    data: Vec::new(),
                    spans: Vec::new(),
                };
                part.push(args.get(0));
                let idx: Vec<usize> = ks.iter().map(|&k| key_pos(k)).collect();
                for &k in &idx {
                    for j in k..(k + step).min(args.len()) {
                        part.push(args.get(j));
                    }
                }
                positions.push(idx);
                hops.push((*s, move |ctx: &mut Ctx| {
                    let mut r = Reply::new(resp3);
                    let (db, now) = (ctx.db, ctx.now);
                    // The parts' keyspace events go out together, in the command's key order.
                    let ((), notes) = runtime::notify::held(|| execute(ctx.shard, cmd, Args::new(&part.data, &part.spans), db, now, &mut r));
                    (r.buf, notes)
                }));
            }
            match tx.hop_each(hops).await {
                Ok(parts) => {
                    if parts.iter().any(|(p, _)| propagate::succeeded(p)) && cmd.has(flags::WRITE) {
                        let now = tx.now;
                        propagate::record(cmd, &args, db, now, b"", |d, v| tx.propagate(d, v));
                    }
                    drop(tx);
                    let (parts, notes): (Vec<Vec<u8>>, Vec<Vec<runtime::notify::Note>>) = parts.into_iter().unzip();
                    let mut notes: Vec<runtime::notify::Note> = notes.into_iter().flatten().collect();
                    if !notes.is_empty() {
                        let pos = |k: &[u8]| route.keys.iter().map(|&p| key_pos(p)).find(|&p| args.get(p) == k).unwrap_or(usize::MAX);
                        notes.sort_by_key(|n| pos(&n.key));
                        runtime::notify::publish(notes);
                    }
                    combine_parts(combine, &positions, &parts, args.len(), out);
                }
                Err(HopLost) => internal_error(cmd, out),
            }
        }
        (Handler::Plan(f), _) => {
            let mut tx = Tx::begin(db, lock_parts(), keys()).await;
            let mark = out.buf.len();
            if f(&mut tx, args, out).await.is_err() {
                out.buf.truncate(mark);
                internal_error(cmd, out);
            } else if cmd.has(flags::WRITE) && propagate::succeeded(&out.buf[mark..]) {
                let now = tx.now;
                propagate::record(cmd, &args, db, now, &out.buf[mark..], |d, v| tx.propagate(d, v));
            }
            remember_cross(&mut tx, cmd, &args, route).await;
        }
        _ => out.error("CROSSSLOT Keys in request don't hash to the same slot"),
    }
}

/// Client-side caching for a read-only plan over several shards (SINTER,
/// SUNION, ZUNION...): its keys become tracked on their shards while the
/// transaction still holds them, so no write can slip in between.
async fn remember_cross(tx: &mut Tx<'_>, cmd: &Command, args: &Args<'_>, route: &Route) {
    let Some(c) = tx.caller.filter(|c| c.remember && cmd.has(flags::READONLY)) else {
        return;
    };
    let hops: Vec<(usize, _)> = route
        .by_shard()
        .into_iter()
        .map(|(s, ks)| {
            let keys: Vec<Vec<u8>> = ks.iter().map(|&k| args.get(key_pos(k)).to_vec()).collect();
            (s, move |ctx: &mut Ctx| keys.iter().for_each(|k| ctx.shard.track.remember(k, c.client)))
        })
        .collect();
    let _ = tx.hop_each(hops).await;
}

/// A plan that reads keys its arguments do not name (SORT with BY / GET
/// patterns) runs with every shard locked in `mode`.
pub async fn run_wide(cmd: &'static Command, args: Args<'_>, route: &Route, db: usize, mode: Mode, out: &mut Reply) {
    let Handler::Plan(f) = cmd.handler else {
        return run_cross(cmd, args, route, db, out).await;
    };
    let parts = (0..runtime::nshards()).map(|s| (s, LockReq::shard_wide(mode))).collect();
    let keys = route.keys.iter().map(|&k| key_pos(k) as u32).zip(route.shards.iter().copied()).collect();
    let mut tx = Tx::begin(db, parts, keys).await;
    let mark = out.buf.len();
    if f(&mut tx, args, out).await.is_err() {
        out.buf.truncate(mark);
        internal_error(cmd, out);
    } else if cmd.has(flags::WRITE) && propagate::succeeded(&out.buf[mark..]) {
        let now = tx.now;
        propagate::record(cmd, &args, db, now, &out.buf[mark..], |d, v| tx.propagate(d, v));
    }
}

pub fn combine_parts(combine: Combine, groups: &[Vec<usize>], parts: &[Vec<u8>], argc: usize, out: &mut Reply) {
    if let Some(e) = parts.iter().find(|p| p.first() == Some(&b'-')) {
        out.raw(e);
        return;
    }
    match combine {
        Combine::AllOk => out.ok(),
        Combine::Sum => {
            let total: i64 = parts
                .iter()
                .map(|p| {
                    p.strip_prefix(b":")
                        .and_then(|r| r.strip_suffix(b"\r\n"))
                        .and_then(crate::util::num::string2ll)
                        .unwrap_or(0)
                })
                .sum();
            out.int(total);
        }
        Combine::Merge => {
            // Each part is an array of one element per key, in the part's key order.
            let mut slots: Vec<Option<&[u8]>> = vec![None; argc];
            for (idx, p) in groups.iter().zip(parts) {
                let mut pos = match memchr::memchr(b'\n', p) {
                    Some(nl) => nl + 1,
                    None => continue,
                };
                for &i in idx {
                    let len = crate::protocol::frame_len(&p[pos..]).unwrap_or(p.len() - pos);
                    slots[i] = Some(&p[pos..pos + len]);
                    pos += len;
                }
            }
            let elems: Vec<&[u8]> = slots.into_iter().flatten().collect();
            out.array_len(elems.len());
            for e in elems {
                out.raw(e);
            }
        }
    }
}

/// Runs `f` on every shard (in shard order) under a whole-shard lock in `mode`,
/// so no cross-shard transaction is seen half done (KEYS, SCAN, DBSIZE: shared;
/// FLUSHDB, FLUSHALL: exclusive).
pub async fn on_every_shard<R, F>(db: usize, mode: Mode, f: F) -> Result<Vec<R>, HopLost>
where
    R: Send + 'static,
    F: Fn(&mut Ctx) -> R + Send + Sync + Clone + 'static,
{
    let n = runtime::nshards();
    if n == 1 {
        let now = runtime::now_ms();
        return Ok(vec![with_shard(|s| f(&mut Ctx { shard: s, db, now }))]);
    }
    let mut tx = Tx::begin_all(db, mode).await;
    let hops = (0..n).map(|s| (s, f.clone())).collect();
    tx.hop_each(hops).await
}

/// Like [`on_every_shard`] for some shards only.
pub async fn on_shards<R, F>(db: usize, mode: Mode, shards: &[usize], f: F) -> Result<Vec<R>, HopLost>
where
    R: Send + 'static,
    F: Fn(&mut Ctx) -> R + Send + Sync + Clone + 'static,
{
    if shards.len() == 1 && shards[0] == shard_id() && runtime::nshards() == 1 {
        let now = runtime::now_ms();
        return Ok(vec![with_shard(|s| f(&mut Ctx { shard: s, db, now }))]);
    }
    let parts = shards.iter().map(|&s| (s, LockReq::shard_wide(mode))).collect();
    let mut tx = Tx::begin(db, parts, Vec::new()).await;
    let hops = shards.iter().map(|&s| (s, f.clone())).collect();
    tx.hop_each(hops).await
}
