//! Cross-shard execution: forwarded batches and multi-shard transactions.
//!
//! Forwarding: a connection groups the single-shard commands of one pipeline
//! read by owning shard and sends each group as ONE job; the owner runs them
//! in order and answers with one buffer plus per-command end offsets.
//!
//! Transactions (multi-key commands whose keys span shards): strict two-phase
//! locking on key fingerprints. Locks are taken shard by shard in ascending
//! shard order (no deadlock cycles possible), then the hops run (in parallel
//! where independent), then every lock is released. Single-shard commands
//! take no locks; they only wait while one of their keys is held, so they
//! never queue behind transactions on unrelated keys.

use super::{call, locks::fingerprint, send, shard_id, wait_unlocked, with_shard, Shard};
use crate::commands::table::{Combine, Command, Ctx, Handler};
use crate::protocol::{Args, Reply};

/// Commands of one pipeline read bound for one shard.
pub struct Batch {
    pub db: usize,
    pub resp3: bool,
    pub data: Vec<u8>,
    pub spans: Vec<(usize, usize)>,
    /// (command, first span, end span)
    pub cmds: Vec<(&'static Command, usize, usize)>,
    /// Filled by the owning shard: every reply, back to back ...
    pub out: Vec<u8>,
    /// ... and the end offset in `out` of each command's reply.
    pub ends: Vec<usize>,
}

impl Batch {
    pub fn new(db: usize, resp3: bool) -> Self {
        Batch {
            db,
            resp3,
            data: Vec::with_capacity(256),
            spans: Vec::with_capacity(16),
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
        self.cmds.clear();
        self.out.clear();
        self.ends.clear();
    }

    /// Copies a command's arguments into the batch.
    pub fn push(&mut self, cmd: &'static Command, args: &Args) {
        let first = self.spans.len();
        for a in args.iter() {
            let s = self.data.len();
            self.data.extend_from_slice(a);
            self.spans.push((s, self.data.len()));
        }
        self.cmds.push((cmd, first, self.spans.len()));
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }
}

/// Runs a keyed handler against a shard.
#[inline]
pub fn run_keyed(s: &mut Shard, cmd: &'static Command, args: Args, db: usize, now: u64, out: &mut Reply) {
    if let Handler::Keyed(f) = cmd.handler {
        let mark = out.buf.len();
        let t0 = super::clock::ticks();
        let id = cmd.id;
        let mut ctx = Ctx { shard: s, db, now };
        // A handler bug must not take the shard (and every connection on it) down.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut ctx, args, out)));
        if r.is_err() {
            out.buf.truncate(mark);
            internal_error(cmd, out);
        }
        s.stats.cmd_mut(id).record(super::clock::elapsed_ns(t0));
    }
}

/// The reply for a command whose handler panicked (a bug): logged, answered, survived.
pub fn internal_error(cmd: &Command, out: &mut Reply) {
    crate::log_warning!("BUG: handler of '{}' panicked; the command was answered with an error", cmd.meta.name);
    out.error(&format!("ERR internal error while executing '{}'", cmd.meta.name));
}

/// True when one of the command's keys is held by a transaction on this shard.
pub fn keys_locked(s: &Shard, cmd: &Command, args: &Args, db: usize) -> bool {
    if s.locks.is_empty() {
        return false;
    }
    cmd.key_positions(args.len()).any(|i| s.locks.is_locked(fingerprint(db, args.get(i))))
}

pub fn key_fps(cmd: &Command, args: &Args, db: usize) -> Vec<u64> {
    cmd.key_positions(args.len()).map(|i| fingerprint(db, args.get(i))).collect()
}

struct BatchRun {
    b: Box<Batch>,
    next: usize,
}

impl BatchRun {
    /// Runs commands until done (true) or one hits a locked key (false).
    fn run(&mut self) -> bool {
        let now = super::now_ms();
        let b = &mut *self.b;
        let mut out = Reply::with_buf(std::mem::take(&mut b.out), b.resp3);
        let done = with_shard(|s| {
            while self.next < b.cmds.len() {
                let (cmd, a, e) = b.cmds[self.next];
                let args = Args::new(&b.data, &b.spans[a..e]);
                if keys_locked(s, cmd, &args, b.db) {
                    return false;
                }
                run_keyed(s, cmd, args, b.db, now, &mut out);
                b.ends.push(out.buf.len());
                self.next += 1;
            }
            true
        });
        b.out = out.buf;
        done
    }

    fn blocking_fps(&self) -> Vec<u64> {
        let (cmd, a, e) = self.b.cmds[self.next];
        key_fps(cmd, &Args::new(&self.b.data, &self.b.spans[a..e]), self.b.db)
    }
}

/// Executes a batch on this shard and sends it back, replies filled in, through `reply`.
fn exec_batch(b: Box<Batch>, reply: futures_channel::oneshot::Sender<Box<Batch>>) {
    let mut run = BatchRun { b, next: 0 };
    if run.run() {
        let _ = reply.send(run.b);
        return;
    }
    glommio::spawn_local(async move {
        loop {
            let fps = run.blocking_fps();
            wait_unlocked(&fps).await;
            if run.run() {
                let _ = reply.send(run.b);
                return;
            }
        }
    })
    .detach();
}

/// Sends a batch to its owning shard; the receiver yields it back with its replies.
pub fn forward(shard: usize, b: Box<Batch>) -> futures_channel::oneshot::Receiver<Box<Batch>> {
    let (tx, rx) = futures_channel::oneshot::channel();
    send(shard, Box::new(move || exec_batch(b, tx)));
    rx
}

/// Locks held by one transaction: fingerprints per shard, in ascending shard order.
pub struct TxLocks {
    parts: Vec<(usize, Vec<u64>)>,
}

impl TxLocks {
    /// Acquires exclusive locks on `keys` (shard, db, key) shard by shard in
    /// ascending order; returns once all are held.
    pub async fn acquire(mut parts: Vec<(usize, Vec<u64>)>) -> TxLocks {
        parts.sort_by_key(|p| p.0);
        for (shard, fps) in parts.iter_mut() {
            fps.sort_unstable();
            fps.dedup();
            let f = fps.clone();
            let granted = call(*shard, move |s| s.locks.acquire(f)).await;
            let _ = granted.await;
        }
        TxLocks { parts }
    }

    pub fn release(self) {
        let me = shard_id();
        for (shard, fps) in self.parts {
            if shard == me {
                with_shard(|s| s.locks.release(&fps));
            } else {
                send(shard, Box::new(move || with_shard(|s| s.locks.release(&fps))));
            }
        }
    }
}

/// Groups a command's key positions by owning shard.
pub fn keys_by_shard(cmd: &Command, args: &Args) -> Vec<(usize, Vec<usize>)> {
    let n = super::nshards();
    let mut by: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in cmd.key_positions(args.len()) {
        let s = super::shard_of_key(args.get(i), n);
        match by.iter_mut().find(|p| p.0 == s) {
            Some(p) => p.1.push(i),
            None => by.push((s, vec![i])),
        }
    }
    by.sort_by_key(|p| p.0);
    by
}

/// Locks for the given key positions.
pub fn lock_parts(args: &Args, db: usize, groups: &[(usize, Vec<usize>)]) -> Vec<(usize, Vec<u64>)> {
    groups
        .iter()
        .map(|(s, idx)| (*s, idx.iter().map(|&i| fingerprint(db, args.get(i))).collect()))
        .collect()
}

/// Runs a multi-key command whose keys span shards by splitting it into one
/// sub-command per shard, under locks, and combining the parts.
pub async fn run_split(cmd: &'static Command, args: Args<'_>, db: usize, resp3: bool, combine: Combine, out: &mut Reply) {
    let groups = keys_by_shard(cmd, &args);
    let step = cmd.meta.key_step.max(1) as usize;
    let locks = TxLocks::acquire(lock_parts(&args, db, &groups)).await;
    // Build and run the sub-commands in parallel.
    let mut rxs = Vec::with_capacity(groups.len());
    for (shard, idx) in &groups {
        let mut b = Batch::new(db, resp3);
        let first = b.spans.len();
        let mut push = |a: &[u8]| {
            let s = b.data.len();
            b.data.extend_from_slice(a);
            b.spans.push((s, b.data.len()));
        };
        push(args.get(0));
        for &i in idx {
            for j in i..(i + step).min(args.len()) {
                push(args.get(j));
            }
        }
        let end = b.spans.len();
        b.cmds.push((cmd, first, end));
        let b = Box::new(b);
        let shard = *shard;
        rxs.push(call(shard, move |s| {
            let args = Args::new(&b.data, &b.spans[b.cmds[0].1..b.cmds[0].2]);
            let mut r = Reply::new(b.resp3);
            run_keyed(s, b.cmds[0].0, args, b.db, super::now_ms(), &mut r);
            r.buf
        }));
    }
    let mut parts = Vec::with_capacity(rxs.len());
    for rx in rxs {
        parts.push(rx.await);
    }
    locks.release();
    combine_parts(combine, &groups, &parts, args.len(), out);
}

fn combine_parts(combine: Combine, groups: &[(usize, Vec<usize>)], parts: &[Vec<u8>], argc: usize, out: &mut Reply) {
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
            for ((_, idx), p) in groups.iter().zip(parts) {
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
