//! One client connection: read, parse every complete request in the buffer,
//! run them (locally, forwarded in per-shard batches, or as cross-shard
//! transactions), and write all replies of the read in one go, in order.

use super::client::{self, Client, ClientShared, ReplyMode};
use crate::commands::table::{self, flags, Command, Cross, Handler};
use crate::protocol::{Args, Parsed, Parser, Reply, Source};
use crate::runtime::{self, tx, with_shard};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::rc::Rc;

enum Seg {
    /// Bytes in `Pipeline::local`.
    Local(usize, usize),
    /// The next reply of that shard's batch; dropped when `keep` is false (CLIENT REPLY).
    Remote(usize, bool),
}

/// Replies of one read that are not final yet because some commands were
/// forwarded to other shards.
pub struct Pipeline {
    batches: Vec<Option<Box<tx::Batch>>>,
    /// Batches back from their shards, kept for reuse.
    spare: Vec<Option<Box<tx::Batch>>>,
    /// Per shard: the returned batch, the reply index and byte offset being spliced.
    back: Vec<Option<(Box<tx::Batch>, usize, usize)>>,
    segs: Vec<Seg>,
    local: Reply,
    pending: bool,
}

impl Pipeline {
    pub fn new(shards: usize) -> Self {
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
        }
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

    fn push_remote(&mut self, shard: usize, cmd: &'static Command, args: &Args, db: usize, resp3: bool, keep: bool) {
        if self.batches[shard].is_none() {
            let b = match self.spare[shard].take() {
                Some(mut b) => {
                    b.recycle(db, resp3);
                    b
                }
                None => Box::new(tx::Batch::new(db, resp3)),
            };
            self.batches[shard] = Some(b);
        }
        if let Some(b) = self.batches[shard].as_mut() {
            b.push(cmd, args);
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
        let mut rxs: [Option<futures_channel::oneshot::Receiver<Box<tx::Batch>>>; 8] = Default::default();
        let mut more = Vec::new();
        for (shard, b) in self.batches.iter_mut().enumerate() {
            if let Some(b) = b.take() {
                let rx = tx::forward(shard, b);
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
                    if let Some((r, idx, pos)) = self.back[shard].as_mut() {
                        let end = r.ends.get(*idx).copied().unwrap_or(r.out.len());
                        if r.out.get(*pos) == Some(&b'-') {
                            let (cmd, reply) = (r.cmds.get(*idx).map(|c| c.0), &r.out[*pos..end]);
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

/// Executes one parsed request.
pub async fn dispatch(c: &mut Client, pipe: &mut Pipeline, args: Args<'_>, out: &mut Reply) {
    out.resp3 = c.resp3;
    let looked = table::lookup(&args);
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
            table::write_lookup_error(e, &args, pipe.sink(out));
            with_shard(|sh| sh.stats.count_error(&pipe.sink(out).buf[mark..]));
            finish_local(c, pipe, out, mark, keep);
            return;
        }
    };
    c.shared.last_cmd.set(cmd.meta.name);
    if !cmd.arity_ok(args.len()) || !step_ok(cmd, args.len()) {
        let mark = pipe.sink(out).buf.len();
        table::write_arity_error(cmd, pipe.sink(out));
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return;
    }
    if !c.authed && !cmd.has(flags::NOAUTH) {
        let mark = pipe.sink(out).buf.len();
        pipe.sink(out).error(crate::protocol::reply::err::NOAUTH);
        count_rejected(cmd, &pipe.sink(out).buf[mark..]);
        finish_local(c, pipe, out, mark, keep);
        return;
    }
    // Counted once per executed command, on the connection's shard (INFO sums shards).
    with_shard(|sh| {
        sh.stats.commands += 1;
        sh.stats.cmd_mut(cmd.id).calls += 1;
    });
    let rt = runtime::rt_ref();
    if rt.pause_until.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        pipe.flush(out).await;
        crate::commands::server::wait_pause(cmd).await;
    }
    match cmd.handler {
        Handler::Keyed(_) => {
            let n = runtime::nshards();
            match target_shard(cmd, &args, n) {
                Some(s) if s == runtime::shard_id() => {
                    let locked = with_shard(|sh| tx::keys_locked(sh, cmd, &args, c.db));
                    if locked {
                        pipe.flush(out).await;
                        let fps = tx::key_fps(cmd, &args, c.db);
                        loop {
                            runtime::wait_unlocked(&fps).await;
                            if !with_shard(|sh| tx::keys_locked(sh, cmd, &args, c.db)) {
                                break;
                            }
                        }
                    }
                    let now = c.now_ms;
                    let db = c.db;
                    let mark = pipe.sink(out).buf.len();
                    with_shard(|sh| {
                        tx::run_keyed(sh, cmd, args, db, now, pipe.sink(out));
                        count_failed(sh, cmd, &pipe.sink(out).buf[mark..]);
                    });
                    finish_local(c, pipe, out, mark, keep);
                }
                Some(s) => pipe.push_remote(s, cmd, &args, c.db, c.resp3, keep),
                None => {
                    pipe.flush(out).await;
                    let mark = out.buf.len();
                    match cmd.cross {
                        Cross::Split(comb) => tx::run_split(cmd, args, c.db, c.resp3, comb, out).await,
                        Cross::Custom(f) => f(c, args, out).await,
                        Cross::None => {
                            // Keys on several shards for a command that cannot span them.
                            out.error("CROSSSLOT Keys in request don't hash to the same slot");
                        }
                    }
                    with_shard(|sh| count_failed(sh, cmd, &out.buf[mark..]));
                    if !keep {
                        out.buf.truncate(mark);
                    }
                }
            }
        }
        Handler::Client(f) => {
            // PING/ECHO do not depend on ordering with forwarded commands.
            if !cmd.has(flags::FAST) || !matches!(cmd.meta.name, "ping" | "echo") {
                pipe.flush(out).await;
            }
            let mark = pipe.sink(out).buf.len();
            let t0 = runtime::clock::ticks();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c, args, pipe.sink(out))));
            if r.is_err() {
                pipe.sink(out).buf.truncate(mark);
                tx::internal_error(cmd, pipe.sink(out));
            }
            with_shard(|sh| {
                sh.stats.cmd_mut(cmd.id).record(runtime::clock::elapsed_ns(t0));
                count_failed(sh, cmd, &pipe.sink(out).buf[mark..]);
            });
            finish_local(c, pipe, out, mark, keep);
        }
        Handler::Async(f) => {
            pipe.flush(out).await;
            let mark = out.buf.len();
            let t0 = runtime::clock::ticks();
            f(c, args, out).await;
            with_shard(|sh| {
                sh.stats.cmd_mut(cmd.id).record(runtime::clock::elapsed_ns(t0));
                count_failed(sh, cmd, &out.buf[mark..]);
            });
            if !keep {
                out.buf.truncate(mark);
            }
        }
    }
    // Like Redis's call(): monitors see a command after it ran, with the db it left selected.
    if rt.monitors.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        crate::commands::server::feed_monitors(c, &args);
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

/// MSET-style commands need whole key/value groups (Redis checks this in the handler).
fn step_ok(cmd: &Command, argc: usize) -> bool {
    let step = cmd.meta.key_step;
    if step <= 1 || cmd.meta.last_key >= 0 || cmd.meta.first_key <= 0 {
        return true;
    }
    argc.saturating_sub(cmd.meta.first_key as usize).is_multiple_of(step as usize)
}

fn finish_local(_c: &mut Client, pipe: &mut Pipeline, out: &mut Reply, mark: usize, keep: bool) {
    if !keep {
        pipe.sink(out).buf.truncate(mark);
        return;
    }
    pipe.note_local(mark);
}

/// The shard owning all of the command's keys, or None if they span shards.
#[inline]
fn target_shard(cmd: &Command, args: &Args, n: usize) -> Option<usize> {
    if n == 1 {
        return Some(0);
    }
    let mut it = cmd.key_positions(args.len());
    let first = match it.next() {
        Some(i) => runtime::shard_of_key(args.get(i), n),
        None => return Some(runtime::shard_id()),
    };
    for i in it {
        if runtime::shard_of_key(args.get(i), n) != first {
            return None;
        }
    }
    Some(first)
}

/// Resolves when lines were pushed to this (MONITOR) client or it was killed.
async fn wait_push(shared: &ClientShared) {
    futures_lite::future::poll_fn(|cx| {
        if !shared.pushed.borrow().is_empty() || shared.killed.get() {
            std::task::Poll::Ready(())
        } else {
            *shared.push_waker.borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    })
    .await
}

/// Serves one accepted connection until it closes.
pub async fn serve(mut stream: TcpStream, shared: Rc<ClientShared>) {
    let rt = runtime::rt_ref();
    let authed = rt.requirepass.read().map(|p| p.is_none()).unwrap_or(true);
    let mut c = Client::new(shared.clone(), authed);
    let (max_bulk, qbuf_limit) = rt
        .config
        .read()
        .map(|c| (c.proto_max_bulk_len(), c.client_query_buffer_limit()))
        .unwrap_or((512 << 20, 1 << 30));
    let mut parser = Parser {
        max_bulk: max_bulk.min(i64::MAX as u64) as i64,
        ..Parser::default()
    };
    let mut rbuf: Vec<u8> = vec![0; 16 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(16);
    let mut out = Reply::with_buf(Vec::with_capacity(16 * 1024), false);
    let mut pipe = Pipeline::new(runtime::nshards());
    'conn: loop {
        if start == end {
            start = 0;
            end = 0;
        } else if start > 0 && end == rbuf.len() {
            rbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == rbuf.len() {
            let grow = rbuf.len().max(16 * 1024);
            rbuf.resize(rbuf.len() + grow, 0);
        }
        let read = if shared.monitor.get() {
            // A MONITOR client also gets lines pushed by other connections.
            let ev = futures_lite::future::or(async { Some(stream.read(&mut rbuf[end..]).await) }, async {
                wait_push(&shared).await;
                None
            })
            .await;
            match ev {
                Some(r) => r,
                None => {
                    let data = std::mem::take(&mut *shared.pushed.borrow_mut());
                    if !data.is_empty() && stream.write_all(&data).await.is_err() {
                        break;
                    }
                    if shared.killed.get() {
                        break;
                    }
                    continue;
                }
            }
        } else {
            stream.read(&mut rbuf[end..]).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.killed.get() {
            break;
        }
        end += n;
        if (end - start) as u64 > qbuf_limit {
            // As Redis's readQueryFromClient: no reply, the client is just closed.
            crate::log_warning!(
                "Closing client that reached max query buffer length: id={} addr={} qbuf={}",
                shared.id,
                shared.addr,
                end - start
            );
            break;
        }
        // One clock read per read: every command of this pipeline sees the same time.
        c.now_ms = runtime::now_ms();
        shared.last_interaction_ms.set(c.now_ms);
        let mut close = false;
        loop {
            match parser.parse(&rbuf[start..end], &mut spans, c.authed) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty { consumed }) => start += consumed,
                Ok(Parsed::Command { consumed, source }) => {
                    let data: &[u8] = match source {
                        Source::Input => &rbuf[start..end],
                        Source::Inline => &parser.inline,
                    };
                    dispatch(&mut c, &mut pipe, Args::new(data, &spans), &mut out).await;
                    start += consumed;
                    if c.close_after_reply {
                        close = true;
                        break;
                    }
                }
                Err(e) => {
                    pipe.flush(&mut out).await;
                    out.error(&e.0);
                    close = true;
                    break;
                }
            }
        }
        pipe.flush(&mut out).await;
        shared.qbuf.set(end - start);
        if !out.buf.is_empty() {
            with_shard(|s| s.stats.net_output_bytes += out.buf.len() as u64);
            if stream.write_all(&out.buf).await.is_err() {
                break 'conn;
            }
            out.buf.clear();
        }
        if close || shared.killed.get() {
            break;
        }
        // Keep the read buffer from growing without bound after a huge request.
        if start == end && rbuf.len() > 256 * 1024 {
            rbuf = vec![0; 16 * 1024];
            start = 0;
            end = 0;
        }
    }
    let _ = stream.close().await;
    if shared.monitor.get() {
        crate::commands::server::unregister_monitor(&shared);
    }
    client::unregister(shared.id);
    rt.connected_clients.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}
