//! Connection migration: a connection whose commands keep going to one other
//! shard moves there — its socket, its client state and the bytes received
//! but not yet parsed — so the shard that owns its keys serves it without a
//! hop per pipeline batch (Dragonfly migrates connections the same way).
//!
//! A connection moves only when quiescent: every earlier command has run and
//! been answered, and no request is half received. The old shard's ring lets
//! go of the socket first (`Transport::detach`), so no byte is read twice or
//! lost, and the new shard parses the carried bytes before anything it
//! receives itself: the connection's order is kept across the move. Only
//! between shards that all drive their sockets through their own ring.
//!
//! What moves is listed in [`Moved`]; per-connection state added later
//! (a MULTI queue, subscriptions, WATCHed keys) must move too, or keep the
//! connection where it is (the conditions in `conn.rs`).

use super::client::{self, Client, ClientShared};
use super::net::uring;
use crate::runtime;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// Consecutive commands whose keys all live on one other shard after which
/// a connection moves there (`TESSERA_MIGRATE_AFTER`; 0 turns it off).
const DEFAULT_AFTER: u32 = 64;

pub fn threshold() -> u32 {
    static AFTER: OnceLock<u32> = OnceLock::new();
    *AFTER.get_or_init(|| {
        std::env::var("TESSERA_MIGRATE_AFTER")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_AFTER)
    })
}

/// True when connections may move: several shards, every one of them
/// serving its sockets through its own ring.
pub fn possible() -> bool {
    let n = runtime::nshards();
    n > 1 && threshold() > 0 && uring::active() && uring::COUNTERS.shards.load(Ordering::Relaxed) as usize == n
}

/// What the connection loop restores on the new shard.
pub struct Resume {
    pub db: usize,
    pub resp3: bool,
    pub authed: bool,
    /// Received and not yet parsed: parsed first.
    pub bytes: Vec<u8>,
}

/// Everything that moves with a connection (plain data: it crosses threads).
struct Moved {
    id: u64,
    fd: RawFd,
    addr: String,
    laddr: String,
    created_ms: u64,
    last_interaction_ms: u64,
    name: Option<Vec<u8>>,
    last_cmd: &'static str,
    no_evict: bool,
    class: super::obuf::ClientClass,
    resume: Resume,
}

/// Sends the detached connection `c` (socket `fd`, unparsed `bytes`) to
/// `target`, which serves it from there on. This shard forgets it.
pub fn hand_over(c: &Client, fd: RawFd, bytes: Vec<u8>, target: usize) {
    let sh = &c.shared;
    let m = Moved {
        id: sh.id,
        fd,
        addr: sh.addr.clone(),
        laddr: sh.laddr.clone(),
        created_ms: sh.created_ms,
        last_interaction_ms: sh.last_interaction_ms.get(),
        name: sh.name.borrow().clone(),
        last_cmd: sh.last_cmd.get(),
        no_evict: sh.no_evict.get(),
        class: sh.bufs.class.get(),
        resume: Resume {
            db: c.db,
            resp3: c.resp3,
            authed: c.authed,
            bytes,
        },
    };
    client::unregister(sh.id);
    uring::COUNTERS.migrations.fetch_add(1, Ordering::Relaxed);
    runtime::send(target, Box::new(move || adopt(m)));
}

/// A connection accepted off the shard while its script was slow
/// (`server::busy`): what it has been told and has sent so far.
pub struct Accepted {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub created_ms: u64,
    pub authed: bool,
    /// Received and not answered: parsed first.
    pub bytes: Vec<u8>,
}

/// Gives `shard` a connection accepted for it by the busy responder;
/// `settle` (run there first) applies the statistics of what was answered.
pub fn adopt_accepted(shard: usize, a: Accepted, fd: std::os::fd::OwnedFd, settle: Box<dyn FnOnce() + Send>) {
    use std::os::fd::IntoRawFd;
    let fd = fd.into_raw_fd();
    // The ring's sockets are blocking ones, as its ACCEPT makes them.
    // SAFETY: plain fcntl on a socket we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
    let now = runtime::now_ms();
    let m = Moved {
        id: a.id,
        fd,
        addr: a.addr,
        laddr: a.laddr,
        created_ms: a.created_ms,
        last_interaction_ms: now,
        name: None,
        last_cmd: "NULL",
        no_evict: false,
        class: super::obuf::ClientClass::Normal,
        resume: Resume {
            db: 0,
            resp3: false,
            authed: a.authed,
            bytes: a.bytes,
        },
    };
    runtime::send(
        shard,
        Box::new(move || {
            settle();
            adopt(m)
        }),
    );
}

/// Takes a moved connection in on this shard.
fn adopt(m: Moved) {
    let shared = Rc::new(ClientShared::new(m.id, m.fd, m.addr, m.laddr, m.created_ms, m.last_interaction_ms));
    *shared.name.borrow_mut() = m.name;
    shared.last_cmd.set(m.last_cmd);
    shared.no_evict.set(m.no_evict);
    shared.bufs.class.set(m.class);
    client::register(shared.clone());
    let t = uring::UringConn::open(m.fd, shared.clone());
    super::spawn_conn(t, shared, Some(m.resume));
}
