//! Client-side caching, the shard's half (Redis's tracking.c): which
//! clients may hold which of this shard's keys, and the invalidations a write
//! to them sends.
//!
//! * **Remembering.** A read-only command run for a tracking client (default
//!   mode) records its keys here, on the shard that owns them, at the moment
//!   it reads them: a write can only come after, and is then seen. The
//!   client on whose behalf a command runs is the thread's [`Caller`], set by
//!   whoever runs it (dispatch, a forwarded batch, a transaction's hop).
//! * **Invalidating.** The write path's hook lists the keys changed while
//!   anyone tracks (`keyspace::db::RECORD_CHANGED`); `Shard::after_write`
//!   hands them to [`Table::changed`]. Each tracked key's readers are told
//!   once and forgotten; broadcast (BCAST) prefixes collect the keys and send
//!   them when the shard's current run of work ends (one push per prefix,
//!   keys in byte order, as Redis sends them before it sleeps).
//! * **Delivery** is the server layer's ([`SINK`]): one job per client shard
//!   with that shard's messages; there the client's own flags (still
//!   tracking? NOLOOP? redirected?) decide, as in Redis's sendTrackingMessage.
//!
//! The broadcast prefixes are the same on every shard (registered everywhere
//! before CLIENT TRACKING answers), since any shard may own a matching key.
//! `tracking-table-max-keys` is split evenly between the shards.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Clients with tracking on, process-wide (INFO `tracking_clients`; while 0
/// and no key is tracked, nothing here costs anything).
pub static CLIENTS: AtomicUsize = AtomicUsize::new(0);
/// Keys in the shards' tables, process-wide. While some remain, writes are
/// still checked against them even when no client tracks any more: Redis
/// drops a key's entry when the key changes, whoever still tracks.
pub static KEYS: AtomicUsize = AtomicUsize::new(0);
/// `tracking-table-max-keys` (0: no limit).
pub static MAX_KEYS: AtomicU64 = AtomicU64::new(1_000_000);

/// Whether anyone tracks, or any key is still tracked: the check every
/// other path pays.
#[inline]
pub fn active() -> bool {
    CLIENTS.load(Ordering::Relaxed) != 0 || KEYS.load(Ordering::Relaxed) != 0
}

pub fn client_on() {
    if CLIENTS.fetch_add(1, Ordering::Relaxed) == 0 {
        crate::keyspace::db::RECORD_CHANGED.store(true, Ordering::Relaxed);
    }
}

pub fn client_off() {
    if CLIENTS.fetch_sub(1, Ordering::Relaxed) == 1 && KEYS.load(Ordering::Relaxed) == 0 {
        crate::keyspace::db::RECORD_CHANGED.store(false, Ordering::Relaxed);
    }
}

fn keys_added() {
    if KEYS.fetch_add(1, Ordering::Relaxed) == 0 {
        crate::keyspace::db::RECORD_CHANGED.store(true, Ordering::Relaxed);
    }
}

fn keys_removed(n: usize) {
    if n != 0 && KEYS.fetch_sub(n, Ordering::Relaxed) == n && CLIENTS.load(Ordering::Relaxed) == 0 {
        crate::keyspace::db::RECORD_CHANGED.store(false, Ordering::Relaxed);
    }
}

/// A client, by id and the shard it is connected to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClientRef {
    pub id: u64,
    pub shard: u16,
}

/// The client a command runs for, and whether its reads are to be remembered.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub client: ClientRef,
    pub remember: bool,
    /// The command runs at top level for a RESP3 default-mode client that
    /// gets its own invalidations (no redirect, no NOLOOP): those go right
    /// after the command's reply, in its reply bytes, as Redis sends a
    /// current client's pending invalidations after its reply.
    pub push_own: bool,
}

impl Caller {
    /// The same caller inside a command that assembles a reply of its own
    /// (EXEC, a script, a split command): its own invalidations wait for the
    /// whole reply (the ordinary delivery, after the read's replies).
    pub fn nested(c: Option<Caller>) -> Option<Caller> {
        c.map(|c| Caller { push_own: false, ..c })
    }
}

thread_local! {
    /// Invalidation pushes for the current (top-level) command's own client.
    static OWN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends the current command's own invalidation pushes after its reply.
#[inline]
pub fn take_own(out: &mut Vec<u8>) {
    OWN.with(|o| {
        let mut o = o.borrow_mut();
        if !o.is_empty() {
            out.extend_from_slice(&o);
            o.clear();
        }
    })
}

thread_local! {
    static CALLER: Cell<Option<Caller>> = const { Cell::new(None) };
}

/// Runs `f` on behalf of `c` (nothing to set when no one tracks).
#[inline]
pub fn as_caller<R>(c: Option<Caller>, f: impl FnOnce() -> R) -> R {
    if c.is_none() {
        return f();
    }
    let prev = CALLER.with(|x| x.replace(c));
    let r = f();
    CALLER.with(|x| x.set(prev));
    r
}

#[inline]
pub fn caller() -> Option<Caller> {
    CALLER.with(|x| x.get())
}

/// What a client's shard is told.
pub enum Msg {
    /// `key` changed (by `writer`, 0 = the server): for a default-mode client.
    Key { to: u64, key: Box<[u8]>, writer: u64 },
    /// The keys a broadcast prefix collected, each with its last writer.
    Bcast { to: u64, keys: std::sync::Arc<Vec<(Box<[u8]>, u64)>> },
    /// Every key is invalid (FLUSHDB / FLUSHALL).
    Flush { to: u64 },
}

/// Delivers messages to clients on this shard (the server layer installs it).
pub type Sink = fn(Vec<Msg>);
pub static SINK: OnceLock<Sink> = OnceLock::new();

/// Keys changed under one broadcast prefix, and its clients.
#[derive(Default)]
struct Prefix {
    clients: Vec<ClientRef>,
    keys: BTreeMap<Box<[u8]>, u64>,
}

/// One shard's tracking state.
#[derive(Default)]
pub struct Table {
    /// Tracked key -> the clients that may cache it.
    keys: HashMap<Box<[u8]>, Vec<ClientRef>, ahash::RandomState>,
    /// Client ids across `keys` (INFO `tracking_total_items`).
    items: usize,
    /// Broadcast prefixes (the same set on every shard).
    prefixes: BTreeMap<Box<[u8]>, Prefix>,
    /// A flush of the prefixes' keys is scheduled.
    bcast_due: bool,
}

impl Table {
    /// trackingRememberKeys: `who` may now cache `key`.
    pub fn remember(&mut self, key: &[u8], who: ClientRef) {
        let v = match self.keys.entry(key.into()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                keys_added();
                e.insert(Vec::new())
            }
        };
        if !v.contains(&who) {
            v.push(who);
            self.items += 1;
        }
    }

    /// Keys written on this shard (in the order written), by the current
    /// caller, each with whether it expired.
    /// Returns whether broadcast keys are waiting for [`Table::flush_bcast`].
    pub fn changed(&mut self, keys: Vec<(Box<[u8]>, bool)>) -> bool {
        let writer = caller().map_or(0, |c| c.client.id);
        let own = caller().filter(|c| c.push_own);
        let mut out: Vec<(u16, Msg)> = Vec::new();
        for (key, expired) in keys {
            if !self.prefixes.is_empty() {
                // An expiry has no writer for the prefixes (Redis broadcasts it
                // with a NULL client, so NOLOOP does not hide it); a reader's
                // NOLOOP below still compares with the caller, as Redis's
                // `target == current_client`.
                let by = if expired { 0 } else { writer };
                for (p, st) in self.prefixes.iter_mut() {
                    if key.starts_with(p) {
                        st.keys.insert(key.clone(), by);
                    }
                }
            }
            if let Some(readers) = self.keys.remove(&key) {
                keys_removed(1);
                self.items -= readers.len();
                for r in readers {
                    if let Some(c) = own.filter(|c| c.client == r) {
                        let _ = c;
                        OWN.with(|o| {
                            let mut o = o.borrow_mut();
                            o.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$");
                            o.extend_from_slice(key.len().to_string().as_bytes());
                            o.extend_from_slice(b"\r\n");
                            o.extend_from_slice(&key);
                            o.extend_from_slice(b"\r\n");
                        });
                        continue;
                    }
                    out.push((
                        r.shard,
                        Msg::Key {
                            to: r.id,
                            key: key.clone(),
                            writer,
                        },
                    ));
                }
            }
        }
        send(out);
        let due = !self.bcast_due && self.prefixes.values().any(|p| !p.keys.is_empty());
        if due {
            self.bcast_due = true;
        }
        due
    }

    /// trackingBroadcastInvalidationMessages: every prefix's collected keys to its clients.
    pub fn flush_bcast(&mut self) {
        self.bcast_due = false;
        let mut out: Vec<(u16, Msg)> = Vec::new();
        for st in self.prefixes.values_mut() {
            if st.keys.is_empty() {
                continue;
            }
            let keys = std::sync::Arc::new(std::mem::take(&mut st.keys).into_iter().collect::<Vec<_>>());
            for c in &st.clients {
                out.push((c.shard, Msg::Bcast { to: c.id, keys: keys.clone() }));
            }
        }
        send(out);
    }

    /// enableBcastTrackingForPrefix on this shard.
    pub fn add_prefix(&mut self, prefix: &[u8], who: ClientRef) {
        let st = self.prefixes.entry(prefix.into()).or_default();
        if !st.clients.contains(&who) {
            st.clients.push(who);
        }
    }

    /// disableTracking's half on this shard: `who` leaves these prefixes.
    pub fn remove_prefixes(&mut self, prefixes: &[Vec<u8>], who: ClientRef) {
        for p in prefixes {
            if let Some(st) = self.prefixes.get_mut(p.as_slice()) {
                st.clients.retain(|c| *c != who);
                if st.clients.is_empty() {
                    self.prefixes.remove(p.as_slice());
                }
            }
        }
    }

    /// trackingInvalidateKeysOnFlush's reclaim: nothing is tracked any more.
    pub fn forget_keys(&mut self) {
        keys_removed(self.keys.len());
        self.keys = Default::default();
        self.items = 0;
    }

    /// trackingLimitUsedSlots: over this shard's share of
    /// `tracking-table-max-keys`, keys are dropped (their readers told, as if
    /// the key had changed) until it is under again, at most `effort` of them.
    pub fn limit(&mut self, shards: usize, effort: usize) {
        let max = MAX_KEYS.load(Ordering::Relaxed) as usize;
        if max == 0 {
            return;
        }
        let share = max.div_ceil(shards.max(1));
        if self.keys.len() <= share {
            return;
        }
        let over = (self.keys.len() - share).min(effort);
        // Hash order is as good as Redis's random walk for picking victims.
        let victims: Vec<Box<[u8]>> = self.keys.keys().take(over).cloned().collect();
        let mut out = Vec::new();
        for key in victims {
            if let Some(readers) = self.keys.remove(&key) {
                keys_removed(1);
                self.items -= readers.len();
                for r in readers {
                    out.push((
                        r.shard,
                        Msg::Key {
                            to: r.id,
                            key: key.clone(),
                            writer: 0,
                        },
                    ));
                }
            }
        }
        send(out);
    }

    /// (keys, items, prefixes) for INFO.
    pub fn figures(&self) -> (usize, usize, usize) {
        (self.keys.len(), self.items, self.prefixes.len())
    }
}

/// Sends each client shard its messages (one job per shard), in order.
fn send(mut out: Vec<(u16, Msg)>) {
    if out.is_empty() {
        return;
    }
    let Some(&sink) = SINK.get() else { return };
    // Stable: a client gets its invalidations in the order the keys changed.
    out.sort_by_key(|(s, _)| *s);
    let mut it = out.into_iter().peekable();
    while let Some((s, m)) = it.next() {
        let mut group = vec![m];
        while it.peek().is_some_and(|(t, _)| *t == s) {
            group.push(it.next().expect("peeked").1);
        }
        // A job even on this shard: the client gets it after the reply of the
        // command that wrote (Redis defers a current client's own invalidation too).
        super::send(s as usize, Box::new(move || sink(group)));
    }
}

/// A future polled on behalf of `caller` (the [`Caller`] is the thread's
/// while it runs, as `tx::Within` does for a transaction's owner): what an
/// async command does on this shard, and the transactions it begins, know
/// whom they run for.
pub struct AsCaller<F> {
    caller: Option<Caller>,
    fut: F,
}

impl<F: std::future::Future> AsCaller<F> {
    pub fn new(caller: Option<Caller>, fut: F) -> Self {
        AsCaller { caller, fut }
    }
}

impl<F: std::future::Future> std::future::Future for AsCaller<F> {
    type Output = F::Output;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // SAFETY: `fut` is never moved out of the pinned wrapper.
        let this = unsafe { self.get_unchecked_mut() };
        let fut = unsafe { std::pin::Pin::new_unchecked(&mut this.fut) };
        as_caller(this.caller, || fut.poll(cx))
    }
}
