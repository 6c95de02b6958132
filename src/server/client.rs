//! Per-connection state, and the per-shard registry that CLIENT LIST/KILL and
//! the idle-timeout sweeper read. The registry is thread-local: a shard only
//! ever sees its own connections; cross-shard CLIENT commands broadcast.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::rc::Rc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
    /// Set while executing the command whose reply is skipped.
    Skipping,
}

/// Sizes of a connection's buffers, set by its loop once per read or write
/// (the loop owns the buffers; CLIENT LIST on any connection reads these).
#[derive(Default)]
pub struct BufStats {
    /// Free room in the query buffer (Redis's sdsavail(querybuf)).
    pub qbuf_free: Cell<usize>,
    /// Payload bytes of the arguments of a request still being received.
    pub argv_mem: Cell<usize>,
    /// Memory of the read buffer and of big-argument buffers.
    pub in_mem: Cell<usize>,
    /// Reply bytes produced and not yet written to the socket.
    pub out_pending: Cell<usize>,
    /// Memory of reply buffers handed to the socket loop and not yet written.
    pub out_held: Cell<usize>,
    /// Allocated size of the reply buffer (`rbs`).
    pub out_cap: Cell<usize>,
    /// Most reply bytes the buffer held since it was last reallocated (`rbp`).
    pub out_peak: Cell<usize>,
    /// Which `client-output-buffer-limit` class applies.
    pub class: Cell<super::obuf::ClientClass>,
    /// When the output was first seen at or above the soft limit (unix seconds).
    pub soft_since: Cell<Option<u64>>,
}

/// What other tasks on the shard (CLIENT LIST, KILL, timeouts) may read or poke.
pub struct ClientShared {
    pub id: u64,
    pub fd: RawFd,
    pub addr: String,
    pub laddr: String,
    pub created_ms: u64,
    pub name: RefCell<Option<Vec<u8>>>,
    pub last_interaction_ms: Cell<u64>,
    pub db: Cell<usize>,
    pub last_cmd: Cell<&'static str>,
    pub resp: Cell<u8>,
    pub killed: Cell<bool>,
    pub monitor: Cell<bool>,
    /// Waiting in a blocking command (CLIENT LIST flag `b`).
    pub blocked: Cell<bool>,
    pub no_evict: Cell<bool>,
    pub qbuf: Cell<usize>,
    /// Buffer sizes published by the connection loop for CLIENT LIST.
    pub bufs: BufStats,
    /// Lines pushed to a MONITOR client by other connections, and the task to wake.
    pub pushed: RefCell<Vec<u8>>,
    pub push_waker: RefCell<Option<std::task::Waker>>,
    /// Pub/Sub subscriptions (`server/pubsub.rs` keeps the registry in step).
    pub subs: RefCell<super::pubsub::Subs>,
    /// WATCHed keys and their dirty flag (`exec/multi.rs`).
    pub watch: RefCell<crate::exec::multi::WatchSet>,
    /// Commands queued since MULTI (-1 outside MULTI), and the queue's bytes,
    /// published for CLIENT LIST (`multi=`, `multi-mem=`, flag `x`).
    pub multi: Cell<i64>,
    pub multi_mem: Cell<usize>,
    /// CLIENT TRACKING mode (`server/tracking.rs`).
    pub tracking: RefCell<super::tracking::TrackState>,
    /// Another client redirects its invalidations here: pushes may arrive.
    pub push_target: Cell<bool>,
}

impl ClientShared {
    /// A new connection's state (accepted now, or moved here at `now`).
    pub fn new(id: u64, fd: RawFd, addr: String, laddr: String, created_ms: u64, now: u64) -> ClientShared {
        ClientShared {
            id,
            fd,
            addr,
            laddr,
            created_ms,
            name: RefCell::new(None),
            last_interaction_ms: Cell::new(now),
            db: Cell::new(0),
            last_cmd: Cell::new("NULL"),
            resp: Cell::new(2),
            killed: Cell::new(false),
            monitor: Cell::new(false),
            blocked: Cell::new(false),
            no_evict: Cell::new(false),
            qbuf: Cell::new(0),
            bufs: Default::default(),
            pushed: RefCell::new(Vec::new()),
            push_waker: RefCell::new(None),
            subs: RefCell::new(Default::default()),
            watch: RefCell::new(Default::default()),
            multi: Cell::new(-1),
            multi_mem: Cell::new(0),
            tracking: RefCell::new(Default::default()),
            push_target: Cell::new(false),
        }
    }

    /// Bytes of the MULTI queue and the watch list (Redis's multiStateMemOverhead).
    pub fn multi_state_mem(&self) -> usize {
        self.multi_mem.get() + self.watch.borrow().mem()
    }

    /// In subscribed mode (any channel, pattern or shard channel).
    pub fn subscribed(&self) -> bool {
        self.subs.borrow().total() > 0
    }

    /// The output-limit class follows subscribed mode, as Redis's getClientType.
    pub fn set_pubsub_class(&self) {
        use super::obuf::ClientClass;
        let c = &self.bufs.class;
        if self.subscribed() {
            if c.get() == ClientClass::Normal {
                c.set(ClientClass::Pubsub);
            }
        } else if c.get() == ClientClass::Pubsub {
            c.set(ClientClass::Normal);
        }
    }

    /// Closes the connection from outside its task: the pending read ends.
    pub fn kill(&self) {
        self.killed.set(true);
        // SAFETY: shutting a socket down is harmless even if the fd is closing.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
        if let Some(w) = self.push_waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// CLIENT LIST / CLIENT INFO line (without the trailing newline).
    ///
    /// Buffer fields, from the sizes the connection loop last published:
    /// qbuf / qbuf-free: bytes received and not parsed into arguments, and the
    /// free room where the next read lands; argv-mem: arguments of a request
    /// still being received; rbs / rbp: the reply buffer's allocation and its
    /// peak fill; obl / oll / omem: the pending (unwritten) replies split as
    /// Redis would hold them (see [`super::obuf`]); tot-mem: the client's
    /// structs plus every buffer it holds.
    pub fn info_line(&self, now_ms: u64) -> String {
        let name = self.name.borrow().as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
        // Redis's flag letters, in its order.
        let mut flags = String::new();
        if self.monitor.get() {
            flags.push('O');
        }
        if self.subscribed() {
            flags.push('P');
        }
        if self.multi.get() >= 0 {
            flags.push('x');
        }
        if self.blocked.get() {
            flags.push('b');
        }
        let (tracking, broken_redir, bcast, redir) = super::tracking::list_fields(self);
        if tracking {
            flags.push('t');
        }
        if broken_redir {
            flags.push('R');
        }
        if bcast {
            flags.push('B');
        }
        if self.watch.borrow().dirty() {
            flags.push('d');
        }
        if self.no_evict.get() {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let (sub, psub, ssub) = {
            let s = self.subs.borrow();
            (s.channels.len(), s.patterns.len(), s.shard.len())
        };
        let b = &self.bufs;
        let ob = super::obuf::figures(b.out_pending.get());
        let multi_mem = self.multi_state_mem();
        let tot_mem = std::mem::size_of::<ClientShared>() + std::mem::size_of::<Client>() + b.in_mem.get() + b.out_cap.get() + b.out_held.get() + multi_mem;
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp={} obl={} oll={} omem={} tot-mem={} events=r cmd={} user=default redir={} resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            name,
            now_ms.saturating_sub(self.created_ms) / 1000,
            now_ms.saturating_sub(self.last_interaction_ms.get()) / 1000,
            flags,
            self.db.get(),
            sub,
            psub,
            ssub,
            self.multi.get(),
            self.qbuf.get(),
            b.qbuf_free.get(),
            b.argv_mem.get(),
            multi_mem,
            b.out_cap.get(),
            b.out_peak.get(),
            ob.obl,
            ob.oll,
            ob.omem,
            tot_mem,
            self.last_cmd.get(),
            redir,
            self.resp.get()
        )
    }
}

/// The connection's own state, owned by its task.
pub struct Client {
    pub id: u64,
    pub db: usize,
    pub resp3: bool,
    pub authed: bool,
    pub reply_mode: ReplyMode,
    pub close_after_reply: bool,
    pub shared: Rc<ClientShared>,
    /// The MULTI queue, from MULTI to EXEC / DISCARD.
    pub multi: Option<crate::exec::multi::Queue>,
    /// Unix ms read once per socket read; the time every command of that read sees.
    pub now_ms: u64,
}

impl Client {
    pub fn new(shared: Rc<ClientShared>, authed: bool) -> Self {
        Client {
            id: shared.id,
            db: 0,
            resp3: false,
            authed,
            reply_mode: ReplyMode::On,
            close_after_reply: false,
            shared,
            multi: None,
            now_ms: crate::runtime::now_ms(),
        }
    }

    pub fn set_db(&mut self, db: usize) {
        self.db = db;
        self.shared.db.set(db);
    }

    /// Ends MULTI (EXEC, DISCARD, RESET): the queue goes, CLIENT LIST follows.
    pub fn end_multi(&mut self) -> Option<crate::exec::multi::Queue> {
        self.shared.multi.set(-1);
        self.shared.multi_mem.set(0);
        self.multi.take()
    }

    pub fn set_resp3(&mut self, v: bool) {
        self.resp3 = v;
        self.shared.resp.set(if v { 3 } else { 2 });
    }
}

thread_local! {
    static REGISTRY: RefCell<BTreeMap<u64, Rc<ClientShared>>> = const { RefCell::new(BTreeMap::new()) };
}

pub fn register(c: Rc<ClientShared>) {
    REGISTRY.with(|r| r.borrow_mut().insert(c.id, c));
}

/// This shard's client `id`, if connected here.
pub fn get(id: u64) -> Option<Rc<ClientShared>> {
    REGISTRY.with(|r| r.borrow().get(&id).cloned())
}

pub fn unregister(id: u64) {
    REGISTRY.with(|r| r.borrow_mut().remove(&id));
}

/// Visits this shard's clients in id order.
pub fn for_each(mut f: impl FnMut(&Rc<ClientShared>)) {
    let all: Vec<Rc<ClientShared>> = REGISTRY.with(|r| r.borrow().values().cloned().collect());
    for c in &all {
        f(c);
    }
}

pub fn count() -> usize {
    REGISTRY.with(|r| r.borrow().len())
}
