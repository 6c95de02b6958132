//! The propagation stream: the commands that changed data, as Redis's
//! `propagate()` feeds them to the AOF (and later to replicas).
//!
//! Where a record goes is decided by where its effect was serialized:
//!
//! * work that stayed on one shard (a command run inline or in a forwarded
//!   batch, EXEC or a script whose keys are all on it, expiry deletes) goes to
//!   the shard's **round log**, in execution order; the log is handed to the
//!   consumer (`SINK`) before replies leave (`flush_round`), at the end of a
//!   forwarded batch, at the start and end of every transaction hop, and by
//!   the cron;
//! * work under a cross-shard transaction (a split MSET/DEL, a cross-shard
//!   plan, EXEC, FLUSHALL) is recorded by its coordinator into the
//!   transaction's **block** (`runtime::tx::Tx::propagate`), handed to the
//!   consumer in one piece when the transaction ends, *before* its locks are
//!   released. Every participating shard flushed its round log before the
//!   transaction's hop ran there, so anything that conflicted with the
//!   transaction is ordered before or after it in the consumer's stream, as
//!   the locks ordered it in memory; non-conflicting work may interleave.
//!
//! A record carries its database; the consumer inserts SELECT where the
//! database changes (`Log` does it inside a log, the consumer between logs).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

/// Someone consumes the stream (AOF on and not loading): while false nothing
/// is recorded and a write costs one relaxed load.
pub static ON: AtomicBool = AtomicBool::new(false);

/// The consumer of flushed logs (the AOF writer), set at start-up.
pub static SINK: OnceLock<fn(&Log)> = OnceLock::new();

/// `appendfsync` as the connections need it: 0 always, 1 everysec, 2 no.
pub static FSYNC: AtomicU8 = AtomicU8::new(1);

#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Commands encoded as RESP, with the database of the first and the last one.
#[derive(Default, Debug)]
pub struct Log {
    pub buf: Vec<u8>,
    pub first_db: Option<usize>,
    pub db: usize,
    /// Commands in it (SELECTs not counted).
    pub cmds: usize,
}

fn put_len(buf: &mut Vec<u8>, c: u8, mut n: usize) {
    // No allocation: this runs for every argument of every write.
    let mut tmp = [0u8; 24];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.push(c);
    buf.extend_from_slice(&tmp[i..]);
    buf.extend_from_slice(b"\r\n");
}

/// One command as a RESP array of bulk strings (the AOF's format).
pub fn encode(buf: &mut Vec<u8>, argv: &[&[u8]]) {
    put_len(buf, b'*', argv.len());
    for a in argv {
        put_len(buf, b'$', a.len());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

impl Log {
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends a command run in `db`, preceded by a SELECT if the log's last
    /// command ran in another database.
    pub fn push(&mut self, db: usize, argv: &[&[u8]]) {
        self.switch(db);
        encode(&mut self.buf, argv);
        self.cmds += 1;
    }

    fn switch(&mut self, db: usize) {
        match self.first_db {
            None => self.first_db = Some(db),
            Some(_) if self.db != db => encode(&mut self.buf, &[b"SELECT", db.to_string().as_bytes()]),
            _ => {}
        }
        self.db = db;
    }

    /// Appends another log (its SELECTs adjusted to this one's database).
    pub fn append(&mut self, other: &Log) {
        if let Some(d) = other.first_db {
            self.switch(d);
            self.buf.extend_from_slice(&other.buf);
            self.db = other.db;
            self.cmds += other.cmds;
        }
    }

    /// This log as one MULTI/EXEC block (Redis wraps a transaction's or a
    /// script's effects so that a crash never replays half of them).
    pub fn wrapped(&self) -> Log {
        let mut l = Log::default();
        if let Some(d) = self.first_db {
            l.push(d, &[b"MULTI"]);
            l.append(self);
            l.push(self.db, &[b"EXEC"]);
        }
        l
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.first_db = None;
        self.cmds = 0;
    }
}

thread_local! {
    /// alsoPropagate + preventCommandPropagation for the command running on
    /// this thread: what its handler asked to propagate instead of itself
    /// (XADD with the ID it generated, XREADGROUP as XCLAIMs...), with the
    /// address of the command's arguments, so that only the record of that
    /// very command takes it (see `exec::propagate::record`).
    static ALSO: RefCell<(usize, Vec<Vec<Vec<u8>>>)> = const { RefCell::new((0, Vec::new())) };
    static ROUND: RefCell<Log> = RefCell::new(Log::default());
    /// Nesting of explicit blocks on this thread (EXEC run here, a script):
    /// records go to the innermost one.
    static BLOCKS: RefCell<Vec<Log>> = const { RefCell::new(Vec::new()) };
}

/// A handler's `alsoPropagate`: `argv` goes to the stream in the place of
/// the command whose arguments start at `origin` (several calls add up).
pub fn also(origin: *const u8, argv: Vec<Vec<u8>>) {
    ALSO.with(|a| {
        let mut a = a.borrow_mut();
        if a.0 != origin as usize {
            a.1.clear();
            a.0 = origin as usize;
        }
        a.1.push(argv);
    });
}

/// A handler's `preventCommandPropagation`: the command at `origin`
/// propagates only what [`also`] gave (maybe nothing).
pub fn prevent(origin: *const u8) {
    ALSO.with(|a| {
        let mut a = a.borrow_mut();
        if a.0 != origin as usize {
            a.1.clear();
            a.0 = origin as usize;
        }
    });
}

/// What the handler of the command at `origin` asked to propagate instead
/// of it; anything left by another command is dropped.
pub fn take_also(origin: *const u8) -> Option<Vec<Vec<Vec<u8>>>> {
    ALSO.with(|a| {
        let mut a = a.borrow_mut();
        if a.0 == 0 {
            return None;
        }
        let mine = a.0 == origin as usize;
        a.0 = 0;
        let cmds = std::mem::take(&mut a.1);
        mine.then_some(cmds)
    })
}

/// Forgets what an earlier command left (each `execute` starts clean).
#[inline]
pub fn clear_also() {
    ALSO.with(|a| {
        let mut a = a.borrow_mut();
        if a.0 != 0 {
            a.0 = 0;
            a.1.clear();
        }
    });
}

/// Records a command on this thread: into the innermost open block, or the
/// shard's round log.
pub fn record(db: usize, argv: &[&[u8]]) {
    if !on() {
        return;
    }
    let in_block = BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        match b.last_mut() {
            Some(l) => {
                l.push(db, argv);
                true
            }
            None => false,
        }
    });
    if !in_block {
        ROUND.with(|r| r.borrow_mut().push(db, argv));
    }
}

/// Appends a finished log (a block) where `record` would put a command.
pub fn record_log(l: &Log) {
    if l.is_empty() {
        return;
    }
    let in_block = BLOCKS.with(|b| match b.borrow_mut().last_mut() {
        Some(top) => {
            top.append(l);
            true
        }
        None => false,
    });
    if !in_block {
        ROUND.with(|r| r.borrow_mut().append(l));
    }
}

/// Opens a block on this thread: later records go into it until `end_block`.
pub fn begin_block() {
    BLOCKS.with(|b| b.borrow_mut().push(Log::default()));
}

/// Closes the innermost block and returns it.
pub fn end_block() -> Log {
    BLOCKS.with(|b| b.borrow_mut().pop()).unwrap_or_default()
}

/// Hands the shard's round log to the consumer.
pub fn flush_round() {
    if !on() {
        return;
    }
    ROUND.with(|r| {
        let mut r = r.borrow_mut();
        if !r.is_empty() {
            if let Some(sink) = SINK.get() {
                sink(&r);
            }
            r.clear();
        }
    });
}

/// Hands a block straight to the consumer (a cross-shard transaction's,
/// before its locks go).
pub fn submit(l: &Log) {
    if l.is_empty() || !on() {
        return;
    }
    if let Some(sink) = SINK.get() {
        sink(l);
    }
}

/// Records the expired keys the write hooks collected (expiry deletes come
/// before the command that met them: the hooks are drained right after it
/// ran, before its own record).
pub fn drain_expired(s: &mut super::Shard) {
    use crate::keyspace::lazyfree::{LAZY_EVICTION, LAZY_EXPIRE};
    for (dbi, db) in s.dbs.iter_mut().enumerate() {
        if db.hook.has_propagate_expired() {
            for (k, evicted) in db.hook.take_propagate_expired() {
                // lazyfree-lazy-expire / lazyfree-lazy-eviction: UNLINK instead of DEL.
                let lazy = if evicted { &LAZY_EVICTION } else { &LAZY_EXPIRE };
                let verb: &[u8] = if lazy.load(Ordering::Relaxed) { b"UNLINK" } else { b"DEL" };
                record(dbi, &[verb, &k]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_inserts_select_on_db_change_and_wraps_blocks() {
        let mut l = Log::default();
        l.push(0, &[b"SET", b"a", b"1"]);
        l.push(3, &[b"DEL", b"b"]);
        assert_eq!(l.first_db, Some(0));
        assert_eq!(l.db, 3);
        assert_eq!(
            &l.buf[..],
            &b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL\r\n$1\r\nb\r\n"[..]
        );
        let w = l.wrapped();
        assert!(w.buf.starts_with(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET"));
        assert!(w.buf.ends_with(b"*1\r\n$4\r\nEXEC\r\n"));
        assert_eq!((w.first_db, w.db), (Some(0), 3));
    }
}

/// The record of a command whose handler may begin a cross-shard
/// transaction (FLUSHALL, FLUSHDB...): the first transaction begun while the
/// handler is polled takes it and writes it with its block, before its locks
/// go; otherwise the caller records it after the handler.
pub type Pending = std::rc::Rc<RefCell<Option<Log>>>;

thread_local! {
    static AMBIENT: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The pending record of the handler being polled on this thread, if any.
pub fn ambient() -> Option<Pending> {
    AMBIENT.with(|a| a.borrow().clone())
}

/// Polls `fut` with `slot` as the ambient pending record (set only during
/// its own polls, so another task polled in between never sees it).
pub struct WithPending<F> {
    slot: Option<Pending>,
    fut: std::pin::Pin<Box<F>>,
}

impl<F> WithPending<F> {
    pub fn new(slot: Option<Pending>, fut: F) -> Self {
        WithPending { slot, fut: Box::pin(fut) }
    }
}

impl<F: std::future::Future> std::future::Future for WithPending<F> {
    type Output = F::Output;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.get_mut();
        let prev = AMBIENT.with(|a| std::mem::replace(&mut *a.borrow_mut(), this.slot.clone()));
        struct Restore(Option<Pending>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let p = self.0.take();
                AMBIENT.with(|a| *a.borrow_mut() = p);
            }
        }
        let _r = Restore(prev);
        this.fut.as_mut().poll(cx)
    }
}
