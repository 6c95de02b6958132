//! Keyspace notifications (Redis's notify.c): the configured classes, the
//! events a shard collected during a command, and their publication on
//! `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>`.
//!
//! Families name their events (`Ctx::notify`, with Redis's event names);
//! the write path's hook records expired keys. Both land in the shard's
//! queue, published after the command (or hop, or expiry cycle) by
//! `Shard::after_write` through the Pub/Sub layer's sink, so a subscriber
//! sees a command's events in Redis's order.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub use crate::config::directives::{
    NOTIFY_EVICTED, NOTIFY_EXPIRED, NOTIFY_GENERIC, NOTIFY_HASH, NOTIFY_KEYEVENT, NOTIFY_KEYSPACE, NOTIFY_KEY_MISS, NOTIFY_LIST, NOTIFY_NEW, NOTIFY_SET,
    NOTIFY_STREAM, NOTIFY_STRING, NOTIFY_ZSET,
};

/// `notify-keyspace-events` as flags, published by CONFIG SET and start-up.
static FLAGS: AtomicU32 = AtomicU32::new(0);

pub fn configure(flags: u32) {
    FLAGS.store(flags, Ordering::Relaxed);
    crate::keyspace::db::RECORD_EXPIRED.store(
        flags & NOTIFY_EXPIRED != 0 && flags & (NOTIFY_KEYSPACE | NOTIFY_KEYEVENT) != 0,
        Ordering::Relaxed,
    );
    crate::keyspace::db::RECORD_NEW.store(flags & NOTIFY_NEW != 0 && flags & (NOTIFY_KEYSPACE | NOTIFY_KEYEVENT) != 0, Ordering::Relaxed);
}

/// Whether an event of `class` is published at all.
#[inline]
pub fn wanted(class: u32) -> bool {
    let f = FLAGS.load(Ordering::Relaxed);
    f & class != 0 && f & (NOTIFY_KEYSPACE | NOTIFY_KEYEVENT) != 0
}

/// Any notification class is on (the one check the write path pays otherwise).
#[inline]
pub fn any() -> bool {
    FLAGS.load(Ordering::Relaxed) != 0
}

thread_local! {
    /// This shard's events of the running command, published after it.
    static NOTES: std::cell::RefCell<Vec<Note>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// notifyKeyspaceEvent: `event` (Redis's name) of `class` on `key` in `db`.
#[inline]
pub fn note(db: usize, class: u32, event: &'static str, key: &[u8]) {
    if wanted(NOTIFY_NEW) {
        flush_created();
    }
    if wanted(class) {
        NOTES.with(|n| {
            n.borrow_mut().push(Note {
                class,
                event,
                db,
                key: key.into(),
            })
        });
    }
}

/// Queues the `new` events of the keys added since last asked: they come
/// before any later event, as Redis's dbAdd notifies when it adds the key.
#[inline]
pub fn flush_created() {
    if crate::keyspace::db::has_created() {
        let keys = crate::keyspace::db::take_created();
        NOTES.with(|n| {
            n.borrow_mut().extend(keys.into_iter().map(|(db, key)| Note {
                class: NOTIFY_NEW,
                event: "new",
                db,
                key,
            }))
        });
    }
}

thread_local! {
    static HOLD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a part of a multi-shard command) keeping its events back, and
/// returns them: the coordinator publishes every part's events in the
/// command's key order.
pub fn held<R>(f: impl FnOnce() -> R) -> (R, Vec<Note>) {
    HOLD.with(|h| h.set(true));
    let r = f();
    HOLD.with(|h| h.set(false));
    (r, take())
}

/// Events are being kept back by [`held`].
pub fn holding() -> bool {
    HOLD.with(|h| h.get())
}

/// The events collected so far on this shard.
pub fn take() -> Vec<Note> {
    if wanted(NOTIFY_NEW) {
        flush_created();
    }
    NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

/// One event waiting for publication.
pub struct Note {
    pub class: u32,
    pub event: &'static str,
    pub db: usize,
    pub key: Box<[u8]>,
}

/// Publishes a message on a channel (the Pub/Sub layer installs it).
pub type Sink = fn(&[u8], &[u8]);
pub static SINK: OnceLock<Sink> = OnceLock::new();

/// Publishes `notes` in order (notifyKeyspaceEvent for each).
pub fn publish(notes: Vec<Note>) {
    let Some(sink) = SINK.get() else { return };
    let f = FLAGS.load(Ordering::Relaxed);
    for n in notes {
        if f & n.class == 0 {
            continue;
        }
        if f & NOTIFY_KEYSPACE != 0 {
            let mut ch = format!("__keyspace@{}__:", n.db).into_bytes();
            ch.extend_from_slice(&n.key);
            sink(&ch, n.event.as_bytes());
        }
        if f & NOTIFY_KEYEVENT != 0 {
            let ch = format!("__keyevent@{}__:{}", n.db, n.event);
            sink(ch.as_bytes(), &n.key);
        }
    }
}
