//! Blocking commands (BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN,
//! BZPOPMAX, BZMPOP): where a client waits, and who serves it.
//!
//! **Attempt and register are one step.** The command first runs on the
//! shard(s) owning its keys under the transaction layer's locks; if nothing
//! can be served, the client is registered as a *waiter* on every shard that
//! owns one of its keys before the locks are released, so no push can slip in
//! between the attempt and the registration (no lost wake-up).
//!
//! **The owning shard serves.** A write to a blocked-on key marks it ready in
//! the keyspace's post-write hook (`WriteHook::block_on`); after the command
//! (or the hop, or the lock release that made it visible) the shard runs
//! [`serve_ready`]: the key's waiters in FIFO order (Redis's order), each
//! served by the family's own [`BlockFn`] with `only = Some(pos)`, the pop
//! done right there on the owning shard, and the reply bytes sent to the
//! waiting connection. A waiter registered on several shards carries one
//! [`Handle`] whose state is claimed by compare-and-swap, so exactly one
//! shard serves it: an element is delivered to one client or stays.
//! Keys held by an in-flight transaction are served after it releases them.
//!
//! **Moves across shards** (BLMOVE / BRPOPLPUSH whose source and destination
//! live on different shards) cannot be served by one shard: their waiter is
//! *notified* instead and runs the move again as a cross-shard transaction.
//!
//! The waiting connection watches its deadline, CLIENT UNBLOCK, CLIENT KILL
//! and the peer closing the socket; whatever ends the wait cancels the handle
//! first (so no shard serves it afterwards) and unregisters it everywhere.

use super::{key_pos, lock_keys, Route, SHARED_KEY};
use crate::commands::table::{BlockFn, BlockResult, Command, Handler};
use crate::protocol::{Args, Reply};
use crate::runtime::locks::{fingerprint, LockReq, Mode};
use crate::runtime::reply;
use crate::runtime::tx::{HopLost, Tx};
use crate::runtime::{self, send, shard_id, with_shard, Ctx, Shard};
use crate::server::client::ClientShared;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::blocking::{by_client, Handle, Wake};

// ---------------------------------------------------------------- per-shard registry

/// A blocked command as registered on one shard.
struct Waiter {
    handle: Arc<Handle>,
    f: BlockFn,
    notify: bool,
    db: usize,
    resp3: bool,
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// The key argument positions owned by this shard.
    keys: Vec<usize>,
    /// The blocked client (client-side caching): a shard that serves it does
    /// so on its behalf, as Redis's `current_client` is the receiver.
    caller: Option<crate::runtime::track::Caller>,
}

impl Waiter {
    fn key(&self, pos: usize) -> &[u8] {
        let (s, e) = self.spans[pos];
        &self.data[s..e]
    }
}

/// A blocked-on key: (db, key).
type DbKey = (usize, Box<[u8]>);

#[derive(Default)]
struct Registry {
    /// FIFO of waiters per (db, key).
    queues: HashMap<DbKey, VecDeque<Rc<Waiter>>, ahash::RandomState>,
    by_handle: HashMap<u64, Rc<Waiter>, ahash::RandomState>,
    /// Ready keys held by a transaction: served once it releases them.
    deferred: Vec<DbKey>,
}

thread_local! {
    static REG: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Installs [`serve_ready`] as the runtime's hook.
pub fn install() {
    let _ = runtime::SERVE_BLOCKED.set(serve_ready);
}

fn register(s: &mut Shard, w: Waiter) {
    let w = Rc::new(w);
    REG.with(|r| {
        let mut r = r.borrow_mut();
        for &pos in &w.keys {
            let k: Box<[u8]> = w.key(pos).into();
            s.dbs[w.db].hook.block_on(&k);
            r.queues.entry((w.db, k)).or_default().push_back(w.clone());
        }
        r.by_handle.insert(w.handle.id, w.clone());
    });
    s.waiters += 1;
}

/// Removes a handle's registration on this shard (no-op when already gone).
fn unregister(s: &mut Shard, id: u64) {
    let w = REG.with(|r| {
        let mut r = r.borrow_mut();
        let w = r.by_handle.remove(&id)?;
        for &pos in &w.keys {
            let k = (w.db, Box::<[u8]>::from(w.key(pos)));
            if let Some(q) = r.queues.get_mut(&k) {
                q.retain(|x| x.handle.id != id);
                if q.is_empty() {
                    r.queues.remove(&k);
                }
            }
        }
        Some(w)
    });
    if let Some(w) = w {
        for &pos in &w.keys {
            s.dbs[w.db].hook.unblock_on(w.key(pos));
        }
        s.waiters -= 1;
    }
}

fn unregister_on(shard: usize, id: u64) {
    if shard == shard_id() && runtime::try_with_shard(|s| unregister(s, id)).is_some() {
        return;
    }
    send(shard, Box::new(move || with_shard(|s| unregister(s, id))));
}

/// Serves the clients blocked on every key that became ready (see the module doc).
pub fn serve_ready(s: &mut Shard) {
    loop {
        let mut ready = REG.with(|r| std::mem::take(&mut r.borrow_mut().deferred));
        for db in 0..s.dbs.len() {
            if s.dbs[db].hook.has_ready() {
                ready.extend(s.dbs[db].hook.take_ready().into_iter().map(|k| (db, k)));
            }
        }
        if ready.is_empty() {
            return;
        }
        let mut progressed = false;
        for (db, key) in ready {
            let held = !s.locks.is_empty() && s.locks.must_wait(0, std::iter::once((fingerprint(db, &key), Mode::Exclusive)), None);
            if held {
                REG.with(|r| {
                    let mut r = r.borrow_mut();
                    if !r.deferred.iter().any(|d| d.0 == db && d.1 == key) {
                        r.deferred.push((db, key));
                    }
                });
                continue;
            }
            progressed = true;
            serve_key(s, db, key);
        }
        if !progressed {
            return;
        }
    }
}

fn serve_key(s: &mut Shard, db: usize, key: Box<[u8]>) {
    let qk = (db, key);
    loop {
        let Some(w) = REG.with(|r| r.borrow().queues.get(&qk).and_then(|q| q.front().cloned())) else {
            return;
        };
        if !w.handle.claim() {
            // Served elsewhere, timed out or gone: its registration here is stale.
            unregister(s, w.handle.id);
            continue;
        }
        if w.notify {
            w.handle.finish(Wake::Retry);
            unregister(s, w.handle.id);
            continue;
        }
        let Some(pos) = w.keys.iter().copied().find(|&p| w.key(p) == &*qk.1) else {
            w.handle.unclaim();
            return;
        };
        let mut out = Reply::new(w.resp3);
        let now = runtime::now_ms();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let args = Args::new(&w.data, &w.spans);
            crate::runtime::track::as_caller(w.caller, || (w.f)(&mut Ctx { shard: s, db, now }, args, Some(pos), &mut out))
        }));
        match r {
            Ok(BlockResult::Done) => {
                if runtime::propagate::on() {
                    // The pop it made, as its non-blocking form; in the stream before
                    // its reply leaves (the waiter's shard waits for what was submitted).
                    let args = Args::new(&w.data, &w.spans);
                    if let Ok(cmd) = crate::commands::table::lookup(&args) {
                        super::propagate::record(cmd, &args, db, now, &out.buf, runtime::propagate::record);
                    }
                    runtime::propagate::flush_round();
                }
                w.handle.finish(Wake::Served(out.buf));
                unregister(s, w.handle.id);
                // Its writes invalidate now (after its reply), as its own.
                if crate::runtime::track::active() {
                    crate::runtime::track::as_caller(w.caller, || s.track_changes());
                }
            }
            _ => {
                // Nothing (left) for this key: the rest of its queue waits too.
                w.handle.unclaim();
                return;
            }
        }
    }
}

// ---------------------------------------------------------------- the connection's side

/// Owned arguments (they travel to other shards and stay while blocked).
#[derive(Clone)]
struct Owned {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Owned {
    fn from_args(args: &Args) -> Self {
        let mut o = Owned {
            data: Vec::new(),
            spans: Vec::with_capacity(args.len()),
        };
        for a in args.iter() {
            o.push(a);
        }
        o
    }
    fn push(&mut self, a: &[u8]) {
        let s = self.data.len();
        self.data.extend_from_slice(a);
        self.spans.push((s, self.data.len()));
    }
    fn args(&self) -> Args<'_> {
        Args::new(&self.data, &self.spans)
    }
}

/// The client's registrations, undone whatever ends the wait (a dropped future too).
struct Guard {
    handle: Arc<Handle>,
    client: u64,
    shards: Vec<usize>,
    shared: Rc<ClientShared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.handle.cancel();
        for &s in &self.shards {
            unregister_on(s, self.handle.id);
        }
        if let Ok(mut m) = by_client().lock() {
            if m.get(&self.client).is_some_and(|h| Arc::ptr_eq(h, &self.handle)) {
                m.remove(&self.client);
            }
        }
        self.shared.blocked.set(false);
        crate::server::metrics::BLOCKED_CLIENTS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the first attempt (and registration) found.
enum Attempt {
    /// Replied (data or an error).
    Done(Vec<u8>),
    /// Registered; blocks until this deadline (0 = forever).
    Blocked(u64),
}

/// XREAD / XREADGROUP: every stream with data answers (not the first one),
/// and a `$` is pinned to the stream's last ID when the client blocks.
fn is_stream(cmd: &Command) -> bool {
    matches!(cmd.meta.name, "xread" | "xreadgroup")
}

/// A stream waiter's arguments with `$` resolved on this shard (its `keys`).
fn pin(ctx: &mut Ctx, a: &Owned, keys: &[usize]) -> Owned {
    let (data, spans) = crate::commands::streams::pin_ids(ctx, &a.data, &a.spans, keys);
    Owned { data, spans }
}

/// A moving command (BLMOVE, BRPOPLPUSH): its serve needs both of its keys.
fn is_move(cmd: &Command) -> bool {
    matches!(cmd.meta.name, "blmove" | "brpoplpush")
}

/// The command reduced to one of its keys, for a first attempt that visits
/// keys on several shards one at a time in the command's order.
fn sub_args(cmd: &Command, a: &Owned, keys: &[usize], pos: usize) -> Owned {
    let args = a.args();
    let mut o = Owned {
        data: Vec::new(),
        spans: Vec::new(),
    };
    match cmd.meta.name {
        // BLMPOP / BZMPOP timeout numkeys key... options
        "blmpop" | "bzmpop" => {
            o.push(args.get(0));
            o.push(args.get(1));
            o.push(b"1");
            o.push(args.get(pos));
            let last = keys.iter().copied().max().unwrap_or(2);
            for i in last + 1..args.len() {
                o.push(args.get(i));
            }
        }
        // BLPOP / BRPOP / BZPOPMIN / BZPOPMAX key... timeout
        _ => {
            o.push(args.get(0));
            o.push(args.get(pos));
            o.push(args.get(args.len() - 1));
        }
    }
    o
}

/// A blocking command that served at once propagates as its non-blocking form.
fn record_pop(args: Args, db: usize, now: u64, reply: &[u8]) {
    if runtime::propagate::on() {
        if let Ok(cmd) = crate::commands::table::lookup(&args) {
            super::propagate::record(cmd, &args, db, now, reply, runtime::propagate::record);
        }
    }
}

/// Attempt on this shard; with nothing to serve, register the waiter here.
#[allow(clippy::too_many_arguments)]
fn attempt_here(s: &mut Shard, f: BlockFn, a: &Owned, keys: Vec<usize>, db: usize, now: u64, resp3: bool, handle: &Arc<Handle>, stream: bool) -> Attempt {
    let mut out = Reply::new(resp3);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut Ctx { shard: s, db, now }, a.args(), None, &mut out)));
    s.after_write();
    match r {
        Ok(BlockResult::Done) => {
            record_pop(a.args(), db, now, &out.buf);
            Attempt::Done(out.buf)
        }
        Ok(BlockResult::Wait { deadline_ms }) => {
            let pinned;
            let a = if stream {
                pinned = pin(&mut Ctx { shard: s, db, now }, a, &keys);
                &pinned
            } else {
                a
            };
            register(
                s,
                Waiter {
                    handle: handle.clone(),
                    f,
                    notify: false,
                    caller: crate::runtime::track::caller(),
                    db,
                    resp3,
                    data: a.data.clone(),
                    spans: a.spans.clone(),
                    keys,
                },
            );
            Attempt::Blocked(deadline_ms)
        }
        Err(_) => Attempt::Done(b"-ERR internal error while executing a blocking command\r\n".to_vec()),
    }
}

fn lock_parts(cmd: &Command, args: &Args, route: &Route, db: usize) -> Vec<(usize, LockReq)> {
    route
        .by_shard()
        .into_iter()
        .map(|(s, ks)| {
            let ks: Vec<_> = ks.into_iter().map(|k| k & !SHARED_KEY).collect();
            (
                s,
                LockReq {
                    keys: lock_keys(cmd, args, &ks, db),
                    shard: None,
                },
            )
        })
        .collect()
}

fn route_keys(route: &Route) -> Vec<(u32, u16)> {
    route.keys.iter().map(|&k| key_pos(k) as u32).zip(route.shards.iter().copied()).collect()
}

/// Runs a blocking command for a connection: attempt, block, and write the reply.
pub async fn run(cmd: &'static Command, args: Args<'_>, route: &Route, db: usize, resp3: bool, shared: &Rc<ClientShared>, out: &mut Reply) {
    let Handler::Block(f) = cmd.handler else {
        return out.error("ERR internal error: not a blocking command");
    };
    let a = Owned::from_args(&args);
    loop {
        let (rtx, rrx) = reply::channel::<Wake>();
        let handle = Arc::new(Handle::new(rtx));
        let groups = route.by_shard();
        let shards: Vec<usize> = groups.iter().map(|g| g.0).collect();
        let attempt = match attempt(cmd, f, &a, &args, route, db, resp3, &handle).await {
            Ok(x) => x,
            Err(HopLost) => {
                handle.cancel();
                for &s in &shards {
                    unregister_on(s, handle.id);
                }
                return super::internal_error(cmd, out);
            }
        };
        let deadline = match attempt {
            Attempt::Done(bytes) => {
                out.raw(&bytes);
                return;
            }
            Attempt::Blocked(d) => d,
        };
        crate::server::metrics::BLOCKED_CLIENTS.fetch_add(1, Ordering::Relaxed);
        shared.blocked.set(true);
        if let Ok(mut m) = by_client().lock() {
            m.insert(shared.id, handle.clone());
        }
        let guard = Guard {
            handle: handle.clone(),
            client: shared.id,
            shards,
            shared: shared.clone(),
        };
        match wait(&handle, rrx, deadline, shared).await {
            Some(Wake::Served(bytes)) => {
                out.raw(&bytes);
                return;
            }
            Some(Wake::Retry) => {
                drop(guard);
                continue;
            }
            Some(Wake::Unblocked { error: true }) => {
                out.error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
                return;
            }
            Some(Wake::Unblocked { error: false }) | None => {
                // A client that really blocked gets a null array on timeout,
                // the moves too (replyToBlockedClientTimedOut).
                if !shared.killed.get() {
                    out.null_array();
                }
                return;
            }
        }
    }
}

/// The first attempt under the keys' locks, registering the waiter before they are released.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    cmd: &'static Command,
    f: BlockFn,
    a: &Owned,
    args: &Args<'_>,
    route: &Route,
    db: usize,
    resp3: bool,
    handle: &Arc<Handle>,
) -> Result<Attempt, HopLost> {
    let me = shard_id();
    let keys: Vec<usize> = route.keys.iter().map(|&k| key_pos(k)).collect();
    let stream = is_stream(cmd);
    if let Some(t) = route.target {
        let all = keys.clone();
        if t == me && with_shard(|s| s.locks.is_empty()) {
            let now = runtime::now_ms();
            return Ok(with_shard(|s| attempt_here(s, f, a, all, db, now, resp3, handle, stream)));
        }
        let mut tx = Tx::begin(db, lock_parts(cmd, args, route, db), route_keys(route)).await;
        let (a, h) = (a.clone(), handle.clone());
        return tx
            .hop(t, move |ctx: &mut Ctx| attempt_here(ctx.shard, f, &a, all, ctx.db, ctx.now, resp3, &h, stream))
            .await;
    }
    let mut tx = Tx::begin(db, lock_parts(cmd, args, route, db), route_keys(route)).await;
    if is_move(cmd) {
        return move_attempt(&mut tx, cmd, a, resp3, handle).await;
    }
    let mut deadline = 0;
    if stream {
        // Every key checked in order, then each stream served on its shard.
        let mut out = Reply::new(resp3);
        match crate::commands::streams::xread_cross(&mut tx, &a.data, &a.spans, resp3, &mut out).await? {
            None => return Ok(Attempt::Done(out.buf)),
            Some(d) => deadline = d,
        }
    }
    // Keys on several shards: try them one by one in the command's order ...
    for &pos in keys.iter().filter(|_| !stream) {
        let sub = sub_args(cmd, a, &keys, pos);
        let shard = tx.shard_of_arg(pos);
        let r = tx
            .hop(shard, move |ctx: &mut Ctx| {
                let mut out = Reply::new(resp3);
                let r = f(ctx, sub.args(), None, &mut out);
                if let BlockResult::Done = r {
                    record_pop(sub.args(), ctx.db, ctx.now, &out.buf);
                }
                (r, out.buf)
            })
            .await?;
        match r {
            (BlockResult::Done, bytes) => return Ok(Attempt::Done(bytes)),
            (BlockResult::Wait { deadline_ms }, _) => deadline = deadline_ms,
        }
    }
    // ... then register on every owning shard before the locks go.
    let hops = route
        .by_shard()
        .into_iter()
        .map(|(s, ks)| {
            let (a, h) = (a.clone(), handle.clone());
            let ks: Vec<usize> = ks.into_iter().map(key_pos).collect();
            (s, move |ctx: &mut Ctx| {
                let db = ctx.db;
                let a = if stream { pin(ctx, &a, &ks) } else { a };
                register(
                    ctx.shard,
                    Waiter {
                        handle: h,
                        f,
                        notify: false,
                        caller: crate::runtime::track::caller(),
                        db,
                        resp3,
                        data: a.data,
                        spans: a.spans,
                        keys: ks,
                    },
                )
            })
        })
        .collect();
    tx.hop_each(hops).await?;
    Ok(Attempt::Blocked(deadline))
}

/// The (from_left, to_left) ends of BLMOVE / BRPOPLPUSH; None: a syntax error.
fn move_sides(cmd: &Command, args: &Args) -> Option<(bool, bool)> {
    if cmd.meta.name == "brpoplpush" {
        return Some((false, true));
    }
    let side = crate::commands::lists::parse_where;
    side(args.get(3)).zip(side(args.get(4)))
}

/// BLMOVE / BRPOPLPUSH whose source and destination are on different shards:
/// the move runs as a transaction; with an empty source the client waits to
/// be notified by the source's shard and then tries again.
async fn move_attempt(tx: &mut Tx<'_>, cmd: &'static Command, a: &Owned, resp3: bool, handle: &Arc<Handle>) -> Result<Attempt, HopLost> {
    let args = a.args();
    let mut out = Reply::new(resp3);
    let Some(deadline) = crate::commands::table::parse_timeout(args.get(args.len() - 1), tx.now, &mut out) else {
        return Ok(Attempt::Done(out.buf));
    };
    let Some((from_left, to_left)) = move_sides(cmd, &args) else {
        out.error(crate::protocol::reply::err::SYNTAX);
        return Ok(Attempt::Done(out.buf));
    };
    if crate::commands::lists::lmove_tx(tx, 1, 2, from_left, to_left, &args, &mut out).await? {
        // It moved an element (a null reply: nothing to move): written with the transaction's block.
        if runtime::propagate::on() && out.buf.first() == Some(&b'$') && !out.buf.starts_with(b"$-1") {
            let (db, now) = (tx.db, tx.now);
            super::propagate::record(cmd, &args, db, now, &out.buf, |d, v| tx.propagate(d, v));
        }
        return Ok(Attempt::Done(out.buf));
    }
    let src = tx.shard_of_arg(1);
    let (a, h) = (a.clone(), handle.clone());
    let f = match cmd.handler {
        Handler::Block(f) => f,
        _ => return Err(HopLost),
    };
    tx.hop(src, move |ctx: &mut Ctx| {
        let db = ctx.db;
        register(
            ctx.shard,
            Waiter {
                handle: h,
                f,
                notify: true,
                caller: crate::runtime::track::caller(),
                db,
                resp3,
                data: a.data,
                spans: a.spans,
                keys: vec![1],
            },
        )
    })
    .await?;
    Ok(Attempt::Blocked(deadline))
}

/// True when the peer closed or reset the socket (it may still have unread data).
fn peer_closed(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Waits for a wake, the deadline, a kill or the peer closing. None: the wait
/// ended on this side (timed out or the client went away) and was cancelled.
async fn wait(handle: &Handle, mut rx: reply::ReplyRx<Wake>, deadline: u64, shared: &ClientShared) -> Option<Wake> {
    /// How often a blocked client checks that its peer is still there.
    const TICK_MS: u64 = 100;
    loop {
        let now = runtime::now_ms();
        let tick = if deadline == 0 { TICK_MS } else { deadline.saturating_sub(now).min(TICK_MS) };
        let woke = futures_lite::future::or(async { Some((&mut rx).await) }, async {
            glommio::timer::sleep(Duration::from_millis(tick.max(1))).await;
            None
        })
        .await;
        match woke {
            Some(Ok(w)) => return Some(w),
            // The sender vanished without a wake (a shard lost it): give up as a timeout.
            Some(Err(_)) => return None,
            None => {}
        }
        let gone = shared.killed.get() || peer_closed(shared.fd);
        let expired = deadline != 0 && runtime::now_ms() >= deadline;
        if (gone || expired) && handle.cancel() {
            return None;
        }
        // Otherwise a shard has served it: the reply is on its way.
        if !handle.waiting() && !gone && !expired {
            continue;
        }
    }
}

/// A blocking command where the client cannot block (inside EXEC, later a
/// script) and whose keys span shards: it runs once, in the command's key
/// order, and with nothing to serve answers its timeout reply at once. The
/// enclosing transaction's locks cover the keys (its `Tx::begin` joins it).
pub async fn once(cmd: &'static Command, args: Args<'_>, route: &Route, db: usize, resp3: bool, out: &mut Reply) {
    let Handler::Block(f) = cmd.handler else {
        return out.error("ERR internal error: not a blocking command");
    };
    let a = Owned::from_args(&args);
    let mut tx = Tx::begin(db, lock_parts(cmd, &args, route, db), route_keys(route)).await;
    let mark = out.buf.len();
    let r: Result<(), HopLost> = async {
        if is_move(cmd) {
            let args = a.args();
            if crate::commands::table::parse_timeout(args.get(args.len() - 1), tx.now, out).is_none() {
                return Ok(());
            }
            let Some((from_left, to_left)) = move_sides(cmd, &args) else {
                out.error(crate::protocol::reply::err::SYNTAX);
                return Ok(());
            };
            if !crate::commands::lists::lmove_tx(&mut tx, 1, 2, from_left, to_left, &args, out).await? {
                super::block_timeout_reply(cmd, out);
            }
            return Ok(());
        }
        if is_stream(cmd) {
            if crate::commands::streams::xread_cross(&mut tx, &a.data, &a.spans, resp3, out).await?.is_some() {
                super::block_timeout_reply(cmd, out);
            }
            return Ok(());
        }
        let keys: Vec<usize> = route.keys.iter().map(|&k| key_pos(k)).collect();
        for &pos in &keys {
            let sub = sub_args(cmd, &a, &keys, pos);
            let shard = tx.shard_of_arg(pos);
            let (r, bytes) = tx
                .hop(shard, move |ctx: &mut Ctx| {
                    let mut out = Reply::new(resp3);
                    let r = f(ctx, sub.args(), None, &mut out);
                    (r, out.buf)
                })
                .await?;
            if let BlockResult::Done = r {
                out.raw(&bytes);
                return Ok(());
            }
        }
        super::block_timeout_reply(cmd, out);
        Ok(())
    }
    .await;
    if r.is_err() {
        out.buf.truncate(mark);
        super::internal_error(cmd, out);
    }
}
