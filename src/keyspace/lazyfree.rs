//! Lazy freeing (Redis's lazyfree.c): a value whose freeing costs more than
//! [`LAZYFREE_THRESHOLD`] allocations is handed to one background thread
//! instead of being dropped on the shard's thread, so UNLINK of a 10M-element
//! set, FLUSHALL ASYNC or the eviction of a big key never stalls a shard.
//!
//! The background thread is started on first use and fed through a channel
//! (`std::sync::mpsc`: any shard may send, one thread receives). INFO's
//! `lazyfree_pending_objects` / `lazyfreed_objects` are counted as Redis
//! counts them: one object per value, or the number of keys of a flushed
//! database.

use super::value::{Item, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

/// Redis's LAZYFREE_THRESHOLD: values cheaper to free than this are freed at once.
pub const LAZYFREE_THRESHOLD: usize = 64;

/// `lazyfree-lazy-eviction`, `-expire`, `-server-del`, `-user-del`, `-user-flush`.
pub static LAZY_EVICTION: AtomicBool = AtomicBool::new(false);
pub static LAZY_EXPIRE: AtomicBool = AtomicBool::new(false);
pub static LAZY_SERVER_DEL: AtomicBool = AtomicBool::new(false);
pub static LAZY_USER_DEL: AtomicBool = AtomicBool::new(false);
pub static LAZY_USER_FLUSH: AtomicBool = AtomicBool::new(false);

static PENDING: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);

/// Something to drop off the shard's thread, and how many objects it counts for.
struct Job(Box<dyn Send>, usize);

static QUEUE: OnceLock<Sender<Job>> = OnceLock::new();

fn queue() -> &'static Sender<Job> {
    QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        // If the thread cannot start, the receiver is dropped with the closure:
        // every `send` then fails and callers free inline.
        let _ = std::thread::Builder::new().name("lazyfree".into()).spawn(move || {
            while let Ok(Job(garbage, n)) = rx.recv() {
                drop(garbage);
                crate::util::alloc::publish_pending();
                PENDING.fetch_sub(n, Relaxed);
                FREED.fetch_add(n, Relaxed);
            }
        });
        tx
    })
}

/// Applies the `lazyfree-lazy-*` directives.
pub fn configure(eviction: bool, expire: bool, server_del: bool, user_del: bool, user_flush: bool) {
    LAZY_EVICTION.store(eviction, Relaxed);
    LAZY_EXPIRE.store(expire, Relaxed);
    LAZY_SERVER_DEL.store(server_del, Relaxed);
    LAZY_USER_DEL.store(user_del, Relaxed);
    LAZY_USER_FLUSH.store(user_flush, Relaxed);
}

/// INFO's `lazyfree_pending_objects`.
pub fn pending() -> usize {
    PENDING.load(Relaxed)
}

/// INFO's `lazyfreed_objects`.
pub fn freed() -> usize {
    FREED.load(Relaxed)
}

/// CONFIG RESETSTAT (lazyfreeResetStats).
pub fn reset_stats() {
    FREED.store(0, Relaxed);
}

/// lazyfreeGetFreeEffort: how many allocations freeing `v` walks.
pub fn free_effort(v: &Value) -> usize {
    match v {
        // Quicklist nodes: Redis counts ql->len; a node holds up to 8 KB here too.
        Value::List(l) => l.len().div_ceil(128).max(1),
        Value::Set(s) if s.encoding() == "hashtable" => s.len(),
        Value::Hash(h) if h.encoding() == "hashtable" => h.len(),
        Value::ZSet(z) if z.encoding() == "skiplist" => z.len(),
        _ => 1,
    }
}

/// Sends `garbage` (counting `objects`) to the background thread; false if it is gone.
fn send(garbage: Box<dyn Send>, objects: usize) -> bool {
    PENDING.fetch_add(objects, Relaxed);
    match queue().send(Job(garbage, objects)) {
        Ok(()) => true,
        Err(e) => {
            PENDING.fetch_sub(objects, Relaxed);
            drop(e);
            false
        }
    }
}

/// Frees a deleted key's value: in the background when `lazy` and its free
/// effort is above the threshold (freeObjAsync), here otherwise.
pub fn free_entry(e: Item, lazy: bool) {
    if lazy && free_effort(&e.val) > LAZYFREE_THRESHOLD {
        send(Box::new(e), 1);
    }
}

/// Frees a replaced value (SET over a big key...): `lazyfree-lazy-server-del`.
pub fn free_server_del(e: Item) {
    free_entry(e, LAZY_SERVER_DEL.load(Relaxed));
}

/// Frees a flushed database's tables in the background (emptyDbAsync):
/// `keys` objects become pending until the thread has dropped them.
pub fn free_tables(tables: Box<dyn Send>, keys: usize) {
    if keys > 0 {
        send(tables, keys);
    }
}

/// Waits until the background thread has freed everything queued so far
/// (tests and MEMORY PURGE).
pub fn drain() {
    let t0 = std::time::Instant::now();
    while pending() > 0 && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_values_are_freed_in_the_background_small_ones_inline() {
        let mut s = crate::keyspace::types::Set::default();
        for i in 0..1000 {
            s.add(format!("m{i}").as_bytes(), 512);
        }
        let big = Item::new(Value::Set(Box::new(s)), 0);
        assert!(free_effort(&big.val) > LAZYFREE_THRESHOLD);
        let before = freed();
        free_entry(big, true);
        drain();
        assert!(freed() > before, "counted once the thread dropped it");
        let small = Item::new(Value::Int(5), 0);
        assert_eq!(free_effort(&small.val), 1);
        let before = freed();
        free_entry(small, true);
        assert_eq!(freed(), before, "freed inline");
    }
}
