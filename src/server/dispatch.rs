//! Command dispatch for one connection: lookup, checks, routing to the
//! owning shard (inline, forwarded in per-shard batches, or as a cross-shard
//! transaction), and splicing the replies back in request order.

use super::client::{Client, ReplyMode};
use crate::commands::table::{self, flags, Command, Handler};
use crate::exec::{self, Batch, Route};
use crate::protocol::{Args, Reply};
use crate::runtime::track::{as_caller, AsCaller, Caller};
use crate::runtime::{self, with_shard};

enum Seg {
    /// Bytes in `Pipeline::local`.
    Local(usize, usize),
    /// The next reply of that shard's batch; dropped when `keep` is false (CLIENT REPLY).
    Remote(usize, bool),
}

/// Replies of one read that are not final yet because some commands were
/// forwarded to other shards.
pub struct Pipeline {
    batches: Vec<Option<Box<Batch>>>,
    /// Batches back from their shards, kept for reuse.
    spare: Vec<Option<Box<Batch>>>,
    /// Per shard: the returned batch, the reply index and byte offset being spliced.
    back: Vec<Option<(Box<Batch>, usize, usize)>>,
    segs: Vec<Seg>,
    local: Reply,
    pending: bool,
    /// The current command's route (reused: no allocation per command).
    route: Route,
    /// `pipeline-ordering strict` (default): a write waits until every earlier
    /// command of this connection that went to another shard has run.
    ordered: bool,
    /// The shard the latest keyed commands all went to, and how many in a
    /// row: what connection migration (`server/migrate.rs`) looks at.
    pub streak_shard: usize,
    pub streak: u32,
}

impl Pipeline {
    /// Counts a keyed command's shard into the streak (None: it spans shards).
    #[inline]
    fn note_target(&mut self, target: Option<usize>) {
        match target {
            Some(s) if s == self.streak_shard => self.streak = self.streak.saturating_add(1),
            Some(s) => {
                self.streak_shard = s;
                self.streak = 1;
            }
            None => self.streak = 0,
        }
    }

    pub fn new(shards: usize, ordered: bool) -> Self {
        let none = || {
            let mut v = Vec::with_capacity(shards);
            v.resize_with(shards, || None);
            v
        };
        Pipeline {
            batches: none(),
            spare: none(),
            back: {
                let mut v = Vec::with_capacity(shards);
                v.resize_with(shards, || None);
                v
            },
            segs: Vec::new(),
            local: Reply::new(false),
            pending: false,
            route: Route::default(),
            ordered,
            streak_shard: runtime::shard_id(),
            streak: 0,
        }
    }

    /// True when a batch for a shard other than `shard` is waiting to be sent:
    /// a write for `shard` must not overtake it.
    fn pending_elsewhere(&self, shard: usize) -> bool {
        self.pending && self.batches.iter().enumerate().any(|(s, b)| s != shard && b.is_some())
    }

    /// Where a reply produced now must go: straight to `out` while nothing is
    /// pending, else into the local side buffer (spliced in at flush).
    fn sink<'a>(&'a mut self, out: &'a mut Reply) -> &'a mut Reply {
        if self.pending {
            self.local.resp3 = out.resp3;
            &mut self.local
        } else {
            out
        }
    }

    fn note_local(&mut self, start: usize) {
        if self.pending {
            let end = self.local.buf.len();
            if end > start {
                self.segs.push(Seg::Local(start, end));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_remote(
        &mut self,
        shard: usize,
        cmd: &'static Command,
        args: &Args,
        keys: &[exec::KeyArg],
        db: usize,
        resp3: bool,
        keep: bool,
        now: u64,
        caller: Option<Caller>,
    ) {
        if self.batches[shard].is_none() {
            let b = match self.spare[shard].take() {
                Some(mut b) => {
                    b.recycle(db, resp3);
                    b
                }
                None => Box::new(Batch::new(db, resp3)),
            };
            self.batches[shard] = Some(b);
        }
        if let Some(b) = self.batches[shard].as_mut() {
            b.push(cmd, args, keys, now, caller);
        }
        self.segs.push(Seg::Remote(shard, keep));
        self.pending = true;
    }

    /// Sends the batches, waits for every reply and splices them in order.
    pub async fn flush(&mut self, out: &mut Reply) {
        if !self.pending {
            return;
        }
        // Send every batch first (they run in parallel on their shards), then collect.
        let mut rxs: [Option<crate::runtime::reply::ReplyRx<Box<Batch>>>; 8] = Default::default();
        let mut more = Vec::new();
        for (shard, b) in self.batches.iter_mut().enumerate() {
            if let Some(b) = b.take() {
                let rx = exec::forward(shard, b);
                match rxs.get_mut(shard) {
                    Some(slot) => *slot = Some(rx),
                    None => more.push((shard, rx)),
                }
            }
        }
        for (shard, rx) in rxs.iter_mut().enumerate() {
            if let Some(rx) = rx.take() {
                self.back[shard] = rx.await.ok().map(|b| (b, 0, 0));
            }
        }
        for (shard, rx) in more {
            self.back[shard] = rx.await.ok().map(|b| (b, 0, 0));
        }
        for seg in self.segs.drain(..) {
            match seg {
                Seg::Local(s, e) => out.raw(&self.local.buf[s..e]),
                Seg::Remote(shard, keep) => {
                    let Some((r, idx, pos)) = self.back[shard].as_mut() else {
                        // The shard lost the batch (a bug): every command in it gets an error.
                        if keep {
                            out.error("ERR internal error: a forwarded command was lost");
                        }
                        continue;
                    };
                    {
                        let end = r.ends.get(*idx).copied().unwrap_or(r.out.len());
                        if r.out.get(*pos) == Some(&b'-') {
                            let (cmd, reply) = (r.cmds.get(*idx).map(|c| c.cmd), &r.out[*pos..end]);
                            with_shard(|sh| {
                                if let Some(cmd) = cmd {
                                    count_failed(sh, cmd, reply);
                                }
                            });
                        }
                        if keep {
                            out.buf.extend_from_slice(&r.out[*pos..end]);
                        }
                        *pos = end;
                        *idx += 1;
                    }
                }
            }
        }
        for (shard, b) in self.back.iter_mut().enumerate() {
            if let Some((b, _, _)) = b.take() {
                // Keep ordinary-sized buffers only: one huge pipeline must not pin its memory.
                if b.data.capacity() <= 1 << 20 && b.out.capacity() <= 1 << 20 {
                    self.spare[shard] = Some(b);
                }
            }
        }
        self.local.buf.clear();
        self.pending = false;
    }
}

/// What [`dispatch_now`] left to do.
pub enum Now {
    /// The request ran (or was forwarded, or refused) without waiting.
    Done,
    /// It must wait (a flush, a lock turn, a pause, another shard's reply):
    /// [`dispatch_later`] finishes it.
    Later(&'static Command, bool),
}

/// Executes one parsed request as far as it can without an await: the
/// common case (a keyed command run inline or queued for another shard)
/// never builds the async path's future, which is large (it holds every
/// slow path's state) and costs a copy per request to set up.
pub fn dispatch_now(c: &mut Client, pipe: &mut Pipeline, args: &Args<'_>, out: &mut Reply) -> Now {
    let Some((cmd, keep)) = prologue(c, pipe, args, out) else { return Now::Done };
    let caller = super::tracking::caller(c);
    let paused = runtime::rt_ref().pause_until.load(std::sync::atomic::Ordering::Relaxed) != 0;
    let done = match cmd.handler {
        Handler::Keyed(_) | Handler::Plan(_) => {
            // The route is computed once and travels with the command.
            let mut route = std::mem::take(&mut pipe.route);
            route.compute(cmd, args, runtime::nshards());
            pipe.note_target(route.target);
            let done = !paused && keyed_now(c, pipe, cmd, args, &route, out, keep, caller);
            pipe.route = route;
            done
        }
        // PING/ECHO do not depend on ordering with forwarded commands.
        Handler::Client(f) if !paused && cmd.has(flags::FAST) && matches!(cmd.meta.name, "ping" | "echo") => {
            run_client(c, pipe, cmd, f, *args, out, keep);
            true
        }
        _ => false,
    };
    if !done {
        return Now::Later(cmd, keep);
    }
    feed_monitors(c, args);
    if caller.is_some() {
        super::tracking::after_command(c, cmd);
    }
    Now::Done
}

/// Finishes a request [`dispatch_now`] returned as `Later` for.
pub async fn dispatch_later(c: &mut Client, pipe: &mut Pipeline, cmd: &'static Command, args: Args<'_>, out: &mut Reply, keep: bool) {
    let caller = super::tracking::caller(c);
    if runtime::rt_ref().pause_until.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        pipe.flush(out).await;
        super::pause::wait_pause(cmd).await;
    }
    match cmd.handler {
        Handler::Keyed(_) | Handler::Plan(_) => {
            // Computed by dispatch_now.
            let route = std::mem::take(&mut pipe.route);
            keyed(c, pipe, cmd, args, &route, out, keep, caller).await;
            pipe.route = route;
        }
        Handler::Block(_) => {
            // A blocked client runs nothing else until it is served: its later
            // commands wait, as in Redis.
            pipe.flush(out).await;
            let mut route = std::mem::take(&mut pipe.route);
            route.compute(cmd, &args, runtime::nshards());
            let mark = out.buf.len();
            let t0 = runtime::clock::ticks();
            AsCaller::new(Caller::nested(caller), exec::block::run(cmd, args, &route, c.db, c.resp3, &c.shared, out)).await;
            pipe.route = route;
            with_shard(|sh| {
                sh.stats.cmd_mut(cmd.id).record(runtime::clock::elapsed_ns(t0));
                count_failed(sh, cmd, &out.buf[mark..]);
            });
            if !keep {
                out.buf.truncate(mark);
            }
        }
        Handler::Client(f) => {
            if !cmd.has(flags::FAST) || !matches!(cmd.meta.name, "ping" | "echo") {
                pipe.flush(out).await;
            }
            run_client(c, pipe, cmd, f, args, out, keep);
        }
        Handler::Async(f) => {
            pipe.flush(out).await;
            let mark = out.buf.len();
            let t0 = runtime::clock::ticks();
            let db = c.db;
            // A write's record goes with the transaction it begins (written before
            // its locks go), or here after it if it began none.
            let pending = (runtime::propagate::on() && cmd.has(flags::WRITE)).then(|| {
                let mut l = runtime::propagate::Log::default();
                exec::propagate::record(cmd, &args, db, runtime::now_ms(), b"", |d, v| l.push(d, v));
                std::rc::Rc::new(std::cell::RefCell::new(Some(l)))
            });
            runtime::propagate::WithPending::new(pending.clone(), AsCaller::new(Caller::nested(caller), f(c, args, out))).await;
            if let Some(l) = pending.and_then(|p| p.borrow_mut().take()) {
                if exec::propagate::succeeded(&out.buf[mark..]) {
                    runtime::propagate::record_log(&l);
                }
            }
            with_shard(|sh| {
                sh.stats.cmd_mut(cmd.id).record(runtime::clock::elapsed_ns(t0));
                count_failed(sh, cmd, &out.buf[mark..]);
            });
            if !keep {
                out.buf.truncate(mark);
            }
        }
    }
    feed_monitors(c, &args);
    if caller.is_some() {
        super::tracking::after_command(c, cmd);
    }
}

/// Like Redis's call(): monitors see a command after it ran, with the db it left selected.
#[inline]
fn feed_monitors(c: &Client, args: &Args<'_>) {
    if runtime::rt_ref().monitors.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        super::monitor::feed(c, args);
    }
}

/// Lookup, reply mode, arity and auth checks, and the call counters: the
/// command to run and whether its reply is kept, or None when refused here.
fn prologue(c: &mut Client, pipe: &mut Pipeline, args: &Args<'_>, out: &mut Reply) -> Option<(&'static Command, bool)> {
    out.resp3 = c.resp3;
    let looked = table::lookup(args);
    // CLIENT REPLY decides its own reply (ON answers OK even when replies were off);
    // for every other command the mode in force before it applies, as Redis's flags.
    let keep = if matches!(&looked, Ok(cmd) if cmd.meta.name == "client|reply") {
        true
    } else {
        match c.reply_mode {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::SkipNext => {
                c.reply_mode = ReplyMode::Skipping;
                false
            }
            ReplyMode::Skipping => {
                c.reply_mode = ReplyMode::On;
                true
            }
        }
    };
    let cmd = match looked {
        Ok(cmd) => cmd,
        Err(e) => {
            let mark = pipe.sink(out).buf.len();
            table::write_lookup_error(e, args, pipe.sink(out));
            reject_in_multi(c, false, pipe.sink(out), mark);
            with_shard(|sh| sh.stats.count_error(&pipe.sink(out).buf[mark..]));
            finish_local(c, pipe, out, mark, keep);
            return None;
        }
    };
    c.shared.last_cmd.set(cmd.meta.name);
    if !cmd.arity_ok(args.len()) || (c.multi.is_none() && !cmd.groups_ok(args.len())) {
        let mark = pipe.sink(out).buf.len();
        table::write_arity_error(cmd, pipe.sink(out));
        reject_in_multi(c, cmd.meta.name == "exec", pipe.sink(out), mark);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return None;
    }
    if !c.authed && !cmd.has(flags::NOAUTH) {
        let mark = pipe.sink(out).buf.len();
        pipe.sink(out).error(crate::protocol::reply::err::NOAUTH);
        reject_in_multi(c, cmd.meta.name == "exec", pipe.sink(out), mark);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return None;
    }
    if c.multi.is_some() && cmd.has(flags::NO_MULTI) {
        let mark = pipe.sink(out).buf.len();
        pipe.sink(out).error("ERR Command not allowed inside a transaction");
        reject_in_multi(c, false, pipe.sink(out), mark);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return None;
    }
    // maxmemory (processCommand's performEvictions and OOM rule), before the disk check as in Redis.
    if crate::keyspace::evict::maxmemory() != 0 {
        evict_for_keyless(cmd);
        if oom_refuses(c, cmd, args) {
            let mark = pipe.sink(out).buf.len();
            pipe.sink(out).error(crate::keyspace::evict::OOM_ERR);
            reject_in_multi(c, cmd.meta.name == "exec", pipe.sink(out), mark);
            count_rejected(cmd, &pipe.sink(out).buf[mark..]);
            finish_local(c, pipe, out, mark, keep);
            return None;
        }
    }
    // writeCommandsDeniedByDiskError: after a failed background save, writes
    // (and PING) get MISCONF while stop-writes-on-bgsave-error says so.
    if crate::persistence::save::writes_denied()
        && (cmd.has(flags::WRITE)
            || cmd.meta.name == "ping"
            || (cmd.meta.name == "exec" && c.multi.as_ref().is_some_and(|q| q.any_has(flags::WRITE)))
            || crate::commands::scripting::write_script(cmd, args))
    {
        let mark = pipe.sink(out).buf.len();
        pipe.sink(out).error(crate::persistence::save::MISCONF);
        reject_in_multi(c, cmd.meta.name == "exec", pipe.sink(out), mark);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return None;
    }
    // RESP2 subscribed mode runs only the subscription commands (RESP3 has no limit).
    if !c.resp3 && c.shared.subscribed() && !crate::commands::pubsub::allowed_in_subscribed_mode(cmd.meta.name) {
        let mark = pipe.sink(out).buf.len();
        pipe.sink(out).error(&format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.meta.name
        ));
        reject_in_multi(c, cmd.meta.name == "exec", pipe.sink(out), mark);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return None;
    }
    // Start-up is loading dump.rdb: only `loading` commands run (processCommand).
    if crate::persistence::load::LOADING.load(std::sync::atomic::Ordering::Relaxed) && !cmd.has(flags::LOADING) {
        let mark = pipe.sink(out).buf.len();
        pipe.sink(out).error(crate::persistence::load::LOADING_ERR);
        reject_in_multi(c, cmd.meta.name == "exec", pipe.sink(out), mark);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return None;
    }
    // A script on some shard has run past busy-reply-threshold (its own
    // shard's clients simply wait for it).
    if crate::scripting::busy() && !cmd.has(flags::ALLOW_BUSY) {
        let mark = pipe.sink(out).buf.len();
        pipe.sink(out).error(crate::scripting::busy_error());
        reject_in_multi(c, cmd.meta.name == "exec", pipe.sink(out), mark);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return None;
    }
    // Inside MULTI everything but the transaction's own commands is queued
    // (queueMultiCommand), unless the transaction is already doomed.
    if let Some(q) = c.multi.as_mut() {
        if !matches!(cmd.meta.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset") {
            if !q.aborted && !c.shared.watch.borrow().dirty() {
                q.push(cmd, args);
                c.shared.multi.set(q.len() as i64);
                c.shared.multi_mem.set(q.mem());
            }
            let mark = pipe.sink(out).buf.len();
            pipe.sink(out).status(b"QUEUED");
            finish_local(c, pipe, out, mark, keep);
            return None;
        }
    }
    // Counted once per executed command, on the connection's shard (INFO sums shards).
    with_shard(|sh| {
        sh.stats.commands += 1;
        sh.stats.cmd_mut(cmd.id).calls += 1;
    });
    Some((cmd, keep))
}

/// performEvictions before a command without keys (INFO, CONFIG, PING...):
/// it allocates on this shard (its reply, a new connection's buffers), so
/// this shard evicts, as Redis does before every command. Keyed commands
/// evict on the shards owning their keys (`exec::execute`).
#[inline]
fn evict_for_keyless(cmd: &'static Command) {
    if matches!(cmd.handler, Handler::Client(_) | Handler::Async(_)) && crate::keyspace::evict::over_limit() {
        with_shard(|sh| sh.evict());
    }
}

/// Whether Redis would refuse `cmd` with -OOM: the process is over the
/// limit with nothing evictable (`noeviction`, or every shard's last
/// eviction attempt failed), and the command is `denyoom`, an EXEC with a
/// queued `denyoom` command, or anything but EXEC / DISCARD / QUIT / RESET
/// inside MULTI. The evictions themselves run on the shards owning the keys
/// (`exec::execute`, the cron): evicting here would make the connection's
/// shard pay for every shard's writes.
#[cold]
fn oom_refuses(c: &Client, cmd: &'static Command, args: &Args<'_>) -> bool {
    if !crate::keyspace::evict::out_of_memory(runtime::nshards()) {
        return false;
    }
    let name = cmd.meta.name;
    cmd.has(flags::DENYOOM)
        || (name == "exec" && c.multi.as_ref().is_some_and(|q| q.any_has(flags::DENYOOM)))
        || (c.multi.is_some() && !matches!(name, "exec" | "discard" | "quit" | "reset"))
        || crate::commands::scripting::denyoom_script(cmd, args)
}

/// rejectCommand inside MULTI: a refused command dooms the transaction
/// (EXECABORT at EXEC); a refused EXEC discards it, its error prefixed with
/// `EXECABORT Transaction discarded because of:`.
fn reject_in_multi(c: &mut Client, is_exec: bool, reply: &mut Reply, mark: usize) {
    let Some(q) = c.multi.as_mut() else { return };
    if !is_exec {
        q.aborted = true;
        return;
    }
    // Redis builds these errors without the generic "ERR " (its addReplyError adds it).
    let e = &reply.buf[mark..];
    let e = e.strip_prefix(b"-").unwrap_or(e);
    let err = e.strip_prefix(b"ERR ").unwrap_or(e).to_vec();
    reply.buf.truncate(mark);
    reply.buf.extend_from_slice(b"-EXECABORT Transaction discarded because of: ");
    reply.buf.extend_from_slice(&err);
    c.end_multi();
    c.shared.watch.borrow_mut().unwatch_all();
}

/// A connection-level command (the shard's state is not the handler's).
fn run_client(c: &mut Client, pipe: &mut Pipeline, cmd: &'static Command, f: table::ClientFn, args: Args<'_>, out: &mut Reply, keep: bool) {
    let mark = pipe.sink(out).buf.len();
    let t0 = runtime::clock::ticks();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c, args, pipe.sink(out))));
    if r.is_err() {
        pipe.sink(out).buf.truncate(mark);
        exec::internal_error(cmd, pipe.sink(out));
    }
    with_shard(|sh| {
        sh.stats.cmd_mut(cmd.id).record(runtime::clock::elapsed_ns(t0));
        count_failed(sh, cmd, &pipe.sink(out).buf[mark..]);
    });
    finish_local(c, pipe, out, mark, keep);
}

/// The part of [`keyed`] that needs no await: true when the command ran on
/// this shard or was queued for another; false (nothing done) otherwise.
#[allow(clippy::too_many_arguments)]
fn keyed_now(
    c: &mut Client,
    pipe: &mut Pipeline,
    cmd: &'static Command,
    args: &Args<'_>,
    route: &Route,
    out: &mut Reply,
    keep: bool,
    caller: Option<Caller>,
) -> bool {
    let db = c.db;
    if runtime::nshards() > 1 && cmd.wide.and_then(|w| w(args)).is_some() {
        return false;
    }
    let Some(s) = route.target else { return false };
    if pipe.ordered && cmd.has(flags::WRITE) && pipe.pending_elsewhere(s) {
        return false;
    }
    if s != runtime::shard_id() {
        let now = runtime::clock::wall_ms();
        pipe.push_remote(s, cmd, args, &route.keys, db, c.resp3, keep, now, caller);
        return true;
    }
    let mark = pipe.sink(out).buf.len();
    let ran = with_shard(|sh| {
        if exec::must_wait(sh, cmd, args, &route.keys, db) {
            return false;
        }
        // The command's time, taken once.
        let now = runtime::clock::wall_ms();
        as_caller(caller, || exec::execute_top(sh, cmd, *args, db, now, pipe.sink(out)));
        count_failed(sh, cmd, &pipe.sink(out).buf[mark..]);
        true
    });
    if ran {
        finish_local(c, pipe, out, mark, keep);
    }
    ran
}

/// A command with keys: inline on this shard, forwarded in a batch, or a
/// cross-shard transaction.
#[allow(clippy::too_many_arguments)]
async fn keyed(c: &mut Client, pipe: &mut Pipeline, cmd: &'static Command, args: Args<'_>, route: &Route, out: &mut Reply, keep: bool, caller: Option<Caller>) {
    let db = c.db;
    if let Some(mode) = cmd.wide.and_then(|w| w(&args)).filter(|_| runtime::nshards() > 1) {
        pipe.flush(out).await;
        let mark = out.buf.len();
        AsCaller::new(Caller::nested(caller), exec::run_wide(cmd, args, route, db, mode, out)).await;
        with_shard(|sh| count_failed(sh, cmd, &out.buf[mark..]));
        if !keep {
            out.buf.truncate(mark);
        }
        return;
    }
    match route.target {
        Some(s) => {
            // Per-connection order: a write becomes visible only after every
            // earlier command of this connection on other shards has run.
            if pipe.ordered && cmd.has(flags::WRITE) && pipe.pending_elsewhere(s) {
                pipe.flush(out).await;
            }
            if s != runtime::shard_id() {
                let now = runtime::clock::wall_ms();
                pipe.push_remote(s, cmd, &args, &route.keys, db, c.resp3, keep, now, caller);
                return;
            }
            // A transaction holds one of the keys: queue for a turn (FIFO with
            // transactions, so a stream of them cannot starve this command).
            let turn = if with_shard(|sh| exec::must_wait(sh, cmd, &args, &route.keys, db)) {
                pipe.flush(out).await;
                Some(exec::wait_turn(cmd, &args, &route.keys, db).await)
            } else {
                None
            };
            // The command's time, taken once (after any wait).
            let now = runtime::clock::wall_ms();
            let mark = pipe.sink(out).buf.len();
            with_shard(|sh| {
                as_caller(caller, || exec::execute_top(sh, cmd, args, db, now, pipe.sink(out)));
                count_failed(sh, cmd, &pipe.sink(out).buf[mark..]);
            });
            drop(turn);
            finish_local(c, pipe, out, mark, keep);
        }
        None => {
            pipe.flush(out).await;
            let mark = out.buf.len();
            AsCaller::new(Caller::nested(caller), exec::run_cross(cmd, args, route, db, out)).await;
            with_shard(|sh| count_failed(sh, cmd, &out.buf[mark..]));
            if !keep {
                out.buf.truncate(mark);
            }
        }
    }
}

/// An error reply from an executed command: failed_calls and errorstats.
#[inline]
fn count_failed(sh: &mut runtime::Shard, cmd: &Command, reply: &[u8]) {
    if reply.first() == Some(&b'-') {
        sh.stats.cmd_mut(cmd.id).failed += 1;
        sh.stats.count_error(reply);
    }
}

/// A command refused before running (arity, NOAUTH): rejected_calls and errorstats.
fn count_rejected(cmd: &Command, reply: &[u8]) {
    with_shard(|sh| {
        sh.stats.cmd_mut(cmd.id).rejected += 1;
        sh.stats.count_error(reply);
    });
}

fn finish_local(_c: &mut Client, pipe: &mut Pipeline, out: &mut Reply, mark: usize, keep: bool) {
    if !keep {
        pipe.sink(out).buf.truncate(mark);
        return;
    }
    pipe.note_local(mark);
}
