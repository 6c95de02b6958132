//! One logical database (SELECT index) on one shard: the key table
//! (keyspace/table.rs), which also keeps each key's TTL in its node and the
//! keys that have one in an array that active expiry samples (Redis's
//! `db->expires`, without a second copy of every name).
//!
//! **The write path.** The tables are private. Reads go through
//! [`Db::lookup_read`] / [`Db::peek`] (shared references only; the first
//! updates the access clock), writes through the mutating methods below or
//! through [`Db::lookup_write`], whose [`EntryMut`] hands out `&mut Value`
//! only via `val_mut()`. Every mutation therefore passes one place,
//! [`WriteHook::fire`]: "key K in this db changed, this way". WATCH, keyspace
//! notifications, AOF, snapshot copy-on-write, memory accounting and blocked
//! clients hang on it; today it counts `dirty` (changes since the last save)
//! and, when a consumer turned it on, logs the events. No handler can change
//! a value without passing through it: the types do not allow it.

use super::access;
use super::cow::{Cow, PointStats, SnapshotSink, Step};
use super::lazyfree;
use super::table::{Entry, KeyTable};
use super::value::{Item, Value};

/// Whether a key expiring at `at` (0 = never) is expired at `now_ms`.
#[inline]
pub fn expired_at(at: u64, now_ms: u64) -> bool {
    at != 0 && at < now_ms
}

pub const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;

#[inline]
pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) as u32) & LRU_CLOCK_MAX
}

/// Idle seconds since `lru` as Redis's estimateObjectIdleTime.
pub fn idle_secs(lru: u32, now_ms: u64) -> u64 {
    let now = lru_clock(now_ms);
    if now >= lru {
        (now - lru) as u64
    } else {
        (LRU_CLOCK_MAX - lru + now) as u64
    }
}

/// How a key changed (the post-write hook's event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// Created or overwritten with a new value.
    Set,
    /// Its value was modified in place (APPEND, INCR, SETRANGE...).
    Modify,
    /// Its TTL was set or removed.
    Ttl,
    /// Deleted by a command.
    Delete,
    /// Deleted because its TTL passed (lazily or by the active cycle).
    Expired,
    /// Added by loading an RDB file (not a command's change: `dirty` stays).
    Load,
    /// Deleted by maxmemory eviction (`Db::evict`; no command's change).
    Evicted,
    /// Added by DEBUG POPULATE (`Db::populate`): a change WATCH, tracking,
    /// blocked clients and `new` events see, but not counted in `dirty`, as
    /// debug.c never bumps server.dirty (nothing propagates, no save is due).
    Populate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    pub key: Box<[u8]>,
    pub kind: WriteKind,
}

/// Keyspace notifications want expired keys (set from `notify-keyspace-events`).
pub static RECORD_EXPIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Keyspace notifications want the `new` event (class `n`): keys added.
pub static RECORD_NEW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Client-side caching wants every changed key (some client tracks keys).
pub static RECORD_CHANGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The single post-write hook of a database.
#[derive(Default)]
pub struct WriteHook {
    /// Modifications made by commands (Redis's `server.dirty`; expiry excluded).
    pub dirty: u64,
    /// Events since the last `take_events`, kept only while a consumer wants them.
    log: Option<Vec<KeyEvent>>,
    /// Keys some client is blocked on (BLPOP, BZPOPMIN...), with their number
    /// of waiters: a write to one of them makes it *ready* (signalKeyAsReady).
    blocked: std::collections::HashMap<Box<[u8]>, usize, ahash::RandomState>,
    /// Blocked-on keys written since the blocking layer last looked.
    ready: Vec<Box<[u8]>>,
    /// Keys expired since the runtime last looked, kept while notifications want them.
    expired_keys: Vec<Box<[u8]>>,
    /// WATCHed keys and their watchers (Redis's `db->watched_keys`).
    watched: std::collections::HashMap<Box<[u8]>, Vec<Watcher>, ahash::RandomState>,
    /// Keys changed since the runtime last looked, kept while clients track
    /// keys (signalModifiedKey's trackingInvalidateKey), each with whether it
    /// expired (an expiry has no client, as Redis's).
    changed: Vec<(Box<[u8]>, bool)>,
    /// Keys expired or evicted (true) since the propagation stream last
    /// looked (while it is on): they propagate as DEL / UNLINK, as Redis's
    /// deleteExpiredKeyAndPropagate and performEvictions' propagateDeletion.
    propagate_expired: Vec<(Box<[u8]>, bool)>,
}

/// The propagation stream (AOF) wants expired keys.
pub static PROPAGATE_EXPIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    /// Keys added on this thread's shard, with their db, since the runtime
    /// last looked (dbAdd's `new` event), kept while notifications want them.
    static CREATED: std::cell::RefCell<Vec<(usize, Box<[u8]>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The keys added since the last call, with their db (while [`RECORD_NEW`]).
pub fn take_created() -> Vec<(usize, Box<[u8]>)> {
    CREATED.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// Whether keys were added since the last [`take_created`].
#[inline]
pub fn has_created() -> bool {
    CREATED.with(|c| !c.borrow().is_empty())
}

/// One client's WATCH of a key: the flag to raise when the key changes (the
/// client's CLIENT_DIRTY_CAS, shared by all its watches on every shard).
pub struct Watcher {
    pub flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The key was logically expired when watched: its deletion is no change
    /// (Redis's `watchedKey.expired`).
    pub expired: bool,
}

impl WriteHook {
    #[inline]
    fn fire(&mut self, key: &[u8], kind: WriteKind) {
        if !matches!(kind, WriteKind::Expired | WriteKind::Load | WriteKind::Evicted | WriteKind::Populate) {
            self.dirty += 1;
        }
        if let Some(l) = self.log.as_mut() {
            l.push(KeyEvent { key: key.into(), kind });
        }
        if !self.watched.is_empty() {
            self.touch_watched(key, kind);
        }
        if kind == WriteKind::Expired && RECORD_EXPIRED.load(std::sync::atomic::Ordering::Relaxed) {
            self.expired_keys.push(key.into());
        }
        if RECORD_CHANGED.load(std::sync::atomic::Ordering::Relaxed) {
            self.changed.push((key.into(), matches!(kind, WriteKind::Expired | WriteKind::Evicted)));
        }
        if matches!(kind, WriteKind::Expired | WriteKind::Evicted) && PROPAGATE_EXPIRED.load(std::sync::atomic::Ordering::Relaxed) {
            self.propagate_expired.push((key.into(), kind == WriteKind::Evicted));
        }
        if !self.blocked.is_empty()
            && matches!(kind, WriteKind::Set | WriteKind::Modify | WriteKind::Populate)
            && self.blocked.contains_key(key)
            && !self.ready.iter().any(|k| &**k == key)
        {
            self.ready.push(key.into());
        }
    }

    /// touchWatchedKey: every watcher of `key` is made dirty, except one that
    /// watched it already expired and now sees it deleted (no logical change).
    #[cold]
    fn touch_watched(&mut self, key: &[u8], kind: WriteKind) {
        let Some(ws) = self.watched.get_mut(key) else { return };
        let gone = matches!(kind, WriteKind::Delete | WriteKind::Expired | WriteKind::Evicted);
        for w in ws {
            if w.expired && gone {
                w.expired = false;
            } else {
                w.flag.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }

    /// WATCH: `flag` is raised when `key` changes. A client watches a key once.
    pub fn watch(&mut self, key: &[u8], flag: &std::sync::Arc<std::sync::atomic::AtomicBool>, expired: bool) {
        let ws = self.watched.entry(key.into()).or_default();
        if !ws.iter().any(|w| std::sync::Arc::ptr_eq(&w.flag, flag)) {
            ws.push(Watcher { flag: flag.clone(), expired });
        }
    }

    /// UNWATCH of one key; returns whether that watch was live and the key has
    /// expired since (EXEC's isWatchedKeyExpired, given `expired_now`).
    pub fn unwatch(&mut self, key: &[u8], flag: &std::sync::Arc<std::sync::atomic::AtomicBool>, expired_now: bool) -> bool {
        let Some(ws) = self.watched.get_mut(key) else { return false };
        let mut hit = false;
        if let Some(i) = ws.iter().position(|w| std::sync::Arc::ptr_eq(&w.flag, flag)) {
            hit = !ws[i].expired && expired_now;
            ws.swap_remove(i);
        }
        if ws.is_empty() {
            self.watched.remove(key);
        }
        hit
    }

    /// Whether `flag`'s watch of `key` sees it expired since WATCH (`expired_now`),
    /// leaving the watch in place.
    pub fn watch_expired(&self, key: &[u8], flag: &std::sync::Arc<std::sync::atomic::AtomicBool>, expired_now: bool) -> bool {
        expired_now
            && self
                .watched
                .get(key)
                .is_some_and(|ws| ws.iter().any(|w| std::sync::Arc::ptr_eq(&w.flag, flag) && !w.expired))
    }

    /// Number of watched keys (INFO `watching_clients` style figures).
    pub fn watched_keys(&self) -> usize {
        self.watched.len()
    }

    /// Keys expired since the last call (for the `expired` notifications).
    pub fn take_expired(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.expired_keys)
    }

    /// The keys changed since the last call (while [`RECORD_CHANGED`]).
    pub fn take_propagate_expired(&mut self) -> Vec<(Box<[u8]>, bool)> {
        std::mem::take(&mut self.propagate_expired)
    }

    pub fn has_propagate_expired(&self) -> bool {
        !self.propagate_expired.is_empty()
    }

    pub fn take_changed(&mut self) -> Vec<(Box<[u8]>, bool)> {
        std::mem::take(&mut self.changed)
    }

    /// Whether keys changed since the last [`WriteHook::take_changed`].
    #[inline]
    pub fn has_changed(&self) -> bool {
        !self.changed.is_empty()
    }

    /// A client blocks on `key` (one call per waiter).
    pub fn block_on(&mut self, key: &[u8]) {
        *self.blocked.entry(key.into()).or_insert(0) += 1;
    }

    /// A waiter on `key` is gone (served, timed out, disconnected).
    pub fn unblock_on(&mut self, key: &[u8]) {
        if let Some(n) = self.blocked.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.blocked.remove(key);
            }
        }
    }

    /// signalKeyAsReady without a change (XGROUP DESTROY wakes XREADGROUP
    /// waiters so they learn their group is gone).
    pub fn signal_ready(&mut self, key: &[u8]) {
        if self.blocked.contains_key(key) && !self.ready.iter().any(|k| &**k == key) {
            self.ready.push(key.into());
        }
    }

    /// Blocked-on keys written since the last call (handleClientsBlockedOnKeys' list).
    pub fn take_ready(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.ready)
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Starts (or stops) keeping events for a consumer.
    pub fn set_logging(&mut self, on: bool) {
        self.log = if on { Some(self.log.take().unwrap_or_default()) } else { None };
    }

    pub fn take_events(&mut self) -> Vec<KeyEvent> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

/// A key looked up for writing. Reading through it changes nothing; the first
/// `val_mut()` marks it modified, and the hook fires when it is dropped.
pub struct EntryMut<'a> {
    entry: &'a mut Entry,
    key: &'a [u8],
    hook: &'a mut WriteHook,
    modified: bool,
}

impl EntryMut<'_> {
    /// The value, for an in-place change (fires the hook with `Modify`).
    #[inline]
    pub fn val_mut(&mut self) -> &mut Value {
        self.modified = true;
        &mut self.entry.val
    }

    /// The value, for a change that counts as a modification only in some
    /// outcomes (PFADD that raises no register, PFDEBUG's encoding change,
    /// PFCOUNT's cache): the caller calls [`EntryMut::mark_modified`] exactly
    /// when Redis would signal the key as modified.
    #[inline]
    pub fn val_unsignalled(&mut self) -> &mut Value {
        &mut self.entry.val
    }

    /// Fires the hook (`Modify`) when the handle is dropped.
    #[inline]
    pub fn mark_modified(&mut self) {
        self.modified = true;
    }
}

impl std::ops::Deref for EntryMut<'_> {
    type Target = Entry;
    #[inline]
    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl Drop for EntryMut<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.modified {
            self.hook.fire(self.key, WriteKind::Modify);
        }
    }
}

#[derive(Default)]
pub struct Db {
    keys: KeyTable,
    /// Keys removed by lazy or active expiry since the last read of this counter.
    pub expired: u64,
    pub hook: WriteHook,
    /// State of the LFU counter's random increments.
    rng: u64,
    /// Its SELECT index (for the events it records).
    pub index: usize,
    /// A snapshot in progress (keyspace/cow.rs): the pre-write hook's state.
    cow: Option<Box<Cow>>,
}

impl Db {
    /// The pre-write hook: every mutating path calls it with the key it is
    /// about to change, before changing it (copy-on-write for a snapshot in
    /// progress). One branch when no snapshot runs.
    #[inline]
    fn pre_write(&mut self, key: &[u8]) {
        if let Some(c) = self.cow.as_deref_mut() {
            c.before_change(key, &self.keys);
        }
    }

    /// Takes a snapshot's point: from now on the database's state as it is
    /// here is what [`Db::snapshot_step`] writes, whatever changes follow.
    pub fn snapshot_begin(&mut self, sink: Box<dyn SnapshotSink>) -> PointStats {
        let point = PointStats {
            keys: self.keys.len() as u64,
            expires: self.keys.volatile_len() as u64,
            dirty: self.hook.dirty,
        };
        // An empty database has nothing to preserve: no hook state at all.
        self.cow = (point.keys > 0).then(|| Box::new(Cow::new(sink, point)));
        point
    }

    /// Writes the next part of the snapshot: up to about `budget` bytes or
    /// `max_keys` keys, plus what the pre-write hook saved since the last
    /// step. When `done`, the snapshot is finished and removed.
    pub fn snapshot_step(&mut self, budget: usize, max_keys: u64) -> Step {
        let Some(c) = self.cow.as_deref_mut() else {
            return Step {
                bytes: Vec::new(),
                keys: 0,
                done: true,
                cow_bytes: 0,
            };
        };
        c.walk(&self.keys, budget, max_keys);
        let step = Step {
            bytes: c.sink.take(),
            keys: std::mem::take(&mut c.keys),
            done: c.pos.is_none(),
            cow_bytes: c.cow_bytes,
        };
        if step.done {
            self.cow = None;
        }
        step
    }

    /// Drops a snapshot in progress (the save failed or was abandoned).
    pub fn snapshot_abort(&mut self) {
        self.cow = None;
    }

    /// Whether a snapshot of this database is in progress.
    pub fn snapshot_active(&self) -> bool {
        self.cow.is_some()
    }

    /// Whether the key table is resizing (incrementally).
    pub fn resizing(&self) -> bool {
        self.keys.resizing()
    }

    /// Moves a resize of the key table on by about `keys` keys; whether
    /// one is still in progress.
    pub fn move_keys(&mut self, keys: usize) -> bool {
        self.keys.move_homes(keys)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.keys.volatile_len()
    }

    /// Whether the TTL index lists `key` (tests of the index's consistency).
    pub fn in_volatile(&self, key: &[u8]) -> bool {
        self.expire_at(key) != 0
    }

    pub fn has_volatile(&self) -> bool {
        self.keys.volatile_len() != 0
    }

    /// Bytes of table structure (buckets and nodes) of both tables: INFO's overhead.
    pub fn overhead_bytes(&self) -> usize {
        self.keys.overhead_bytes() + self.keys.ttl_bytes()
    }

    /// Table structure bytes of (the key table, the TTL table): MEMORY STATS.
    pub fn table_bytes(&self) -> (usize, usize) {
        (self.keys.overhead_bytes(), self.keys.ttl_bytes())
    }

    /// The key's absolute expiry in Unix ms; 0 = none (or no such key).
    #[inline]
    pub fn expire_at(&self, key: &[u8]) -> u64 {
        if self.keys.volatile_len() == 0 {
            return 0;
        }
        self.keys.get(key).map_or(0, |e| e.expire_at())
    }

    /// Redis's keyIsExpired: a key lives through its expiry millisecond (`now > when`).
    /// The one definition every lookup, scan and sampler uses.
    #[inline]
    pub fn is_expired(&self, key: &[u8], now_ms: u64) -> bool {
        expired_at(self.expire_at(key), now_ms)
    }

    /// Deletes a key whose TTL has passed (lazy expiry).
    fn expire_now(&mut self, key: &[u8]) {
        let gone = self.unlink(key);
        self.signal_deleted_stream(key, gone.as_ref().map(|g| &g.0));
        if let Some((e, _)) = gone {
            lazyfree::free_entry(e, lazyfree::LAZY_EXPIRE.load(std::sync::atomic::Ordering::Relaxed));
        }
        self.expired += 1;
        self.hook.fire(key, WriteKind::Expired);
    }

    /// The key's slot in the table after lazy expiry (None: absent, or it
    /// has just expired): one probe, since the TTL is in the node.
    #[inline]
    fn live_slot(&mut self, key: &[u8], now_ms: u64) -> Option<usize> {
        let i = self.keys.slot_of(key)?;
        if self.keys.volatile_len() != 0 && expired_at(self.keys.at(i).expire_at(), now_ms) {
            self.expire_now(key);
            return None;
        }
        Some(i)
    }

    /// Redis's lookupKeyRead: lazy expiry, then the access clock (LRU or LFU).
    #[inline]
    pub fn lookup_read(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let i = self.live_slot(key, now_ms)?;
        let e = self.keys.at_mut(i);
        access::touch(e, now_ms, &mut self.rng);
        Some(e)
    }

    /// Redis's lookupKeyWrite: lazy expiry and the access clock; changes
    /// through the returned handle fire the hook.
    #[inline]
    pub fn lookup_write<'a>(&'a mut self, key: &'a [u8], now_ms: u64) -> Option<EntryMut<'a>> {
        let i = self.live_slot(key, now_ms)?;
        if self.cow.is_some() {
            self.pre_write(key);
        }
        let e = self.keys.at_mut(i);
        access::touch(e, now_ms, &mut self.rng);
        Some(EntryMut {
            entry: e,
            key,
            hook: &mut self.hook,
            modified: false,
        })
    }

    /// `lookup_write` for a key the command has just looked up (and touched)
    /// with `lookup_read`: no second access-clock touch (PFCOUNT writing
    /// its cached cardinality).
    pub fn lookup_write_untouched<'a>(&'a mut self, key: &'a [u8], now_ms: u64) -> Option<EntryMut<'a>> {
        let i = self.live_slot(key, now_ms)?;
        if self.cow.is_some() {
            self.pre_write(key);
        }
        Some(EntryMut {
            entry: self.keys.at_mut(i),
            key,
            hook: &mut self.hook,
            modified: false,
        })
    }

    /// Lazy expiry without touching the access clock (OBJECT, TTL-style peeks).
    pub fn peek(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let i = self.live_slot(key, now_ms)?;
        Some(self.keys.at(i))
    }

    /// The value for a change of representation only (an encoding conversion,
    /// as SORT converts a listpack sorted set): no element, score or TTL
    /// changes, so, as in Redis, neither the hook nor the access clock is
    /// told. Anything else goes through the mutating methods or `lookup_write`.
    pub fn repr_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.keys.get_mut(key).map(|e| &mut e.val)
    }

    /// The stored entry as it is: no expiry, no access clock (scans, samplers).
    pub fn entry(&self, key: &[u8]) -> Option<&Entry> {
        self.keys.get(key)
    }

    pub fn exists(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.peek(key, now_ms).is_some()
    }

    /// Every stored entry (expired ones included: callers filter).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.keys.iter()
    }

    /// One SCAN step over the key table (see `KeyTable::scan`).
    pub fn scan(&self, cursor: u64, f: impl FnMut(&[u8], &Entry)) -> u64 {
        self.keys.scan(cursor, f)
    }

    /// A random stored entry (expired ones included).
    pub fn random(&self, rand: impl FnMut() -> u64) -> Option<(&[u8], &Entry)> {
        self.keys.random(rand)
    }

    /// Stores a value with the given expiry (0 = none), replacing any old key.
    pub fn set(&mut self, key: &[u8], val: Value, expire_at: u64, now_ms: u64) {
        let mut e = Item::new(val, now_ms);
        // dbOverwrite: under an LFU policy the new value keeps the old one's counter.
        if access::lfu_policy() {
            if let Some(old) = self.keys.get(key) {
                e.meta = old.lfu();
            }
        }
        self.set_entry(key, e, expire_at);
    }

    /// Stores an entry (a new one, or one moved by RENAME / MOVE with its
    /// access clock) with the given expiry (0 = none), replacing any old key.
    pub fn set_entry(&mut self, key: &[u8], entry: Item, expire_at: u64) {
        self.pre_write(key);
        match self.keys.get_mut(key) {
            Some(e) => {
                let old = std::mem::replace(&mut e.val, entry.val);
                e.set_meta(entry.meta);
                lazyfree::free_server_del(Item { val: old, meta: 0 });
                self.keys.set_expire(key, expire_at);
            }
            None => self.insert_absent(key, entry, expire_at),
        }
        self.hook.fire(key, WriteKind::Set);
    }

    /// DEBUG POPULATE's step for one key (debug.c): lookupKeyWrite (a key
    /// whose TTL passed is deleted first; a live one is touched and kept:
    /// `Ok(false)`), else dbAdd of `val()` without a TTL (nothing added if
    /// it fails). The hook fires [`WriteKind::Populate`]: everything a `Set`
    /// tells but `dirty`.
    pub fn populate<E>(&mut self, key: &[u8], now_ms: u64, val: impl FnOnce() -> Result<Value, E>) -> Result<bool, E> {
        if self.lookup_write(key, now_ms).is_some() {
            return Ok(false);
        }
        let entry = Item::new(val()?, now_ms);
        self.pre_write(key);
        self.insert_absent(key, entry, 0);
        self.hook.fire(key, WriteKind::Populate);
        Ok(true)
    }

    /// dbAdd's table side for a key known to be absent (the caller ran the
    /// pre-write hook and fires the post-write one).
    fn insert_absent(&mut self, key: &[u8], entry: Item, expire_at: u64) {
        self.keys.insert_new(key, entry, expire_at);
        if RECORD_NEW.load(std::sync::atomic::Ordering::Relaxed) {
            let i = self.index;
            CREATED.with(|c| c.borrow_mut().push((i, key.into())));
        }
    }

    /// Sizes the key table for `additional` more keys (dictTryExpand);
    /// false if the slot array cannot be allocated (nothing changed).
    pub fn try_reserve(&mut self, additional: usize) -> bool {
        self.keys.try_reserve(self.keys.len().saturating_add(additional))
    }

    /// dbAddRDBLoad: adds a key read from an RDB file with its expiry (0 =
    /// none); the key back (and nothing changed) if it already exists.
    pub fn add_loaded(&mut self, key: Box<[u8]>, entry: Item, expire_at: u64) -> Result<(), Box<[u8]>> {
        if self.keys.contains(&key) {
            return Err(key);
        }
        self.pre_write(&key);
        self.hook.fire(&key, WriteKind::Load);
        self.keys.insert_new(&key, entry, expire_at);
        Ok(())
    }

    /// Replaces only the value of an existing or new key, keeping any TTL (KEEPTTL).
    pub fn set_keep_ttl(&mut self, key: &[u8], val: Value, now_ms: u64) {
        self.pre_write(key);
        match self.keys.get_mut(key) {
            Some(e) => {
                let old = std::mem::replace(&mut e.val, val);
                access::touch(e, now_ms, &mut self.rng);
                lazyfree::free_server_del(Item { val: old, meta: 0 });
                self.hook.fire(key, WriteKind::Set);
            }
            None => self.set(key, val, 0, now_ms),
        }
    }

    /// Removes the key from both tables without telling the hook: the entry and its expiry.
    fn unlink(&mut self, key: &[u8]) -> Option<(Item, u64)> {
        self.pre_write(key);
        self.keys.remove(key)
    }

    /// Deletes a key (a command's DEL, RENAME's source, MOVE...).
    pub fn remove(&mut self, key: &[u8]) -> Option<Item> {
        self.take(key).map(|(e, _)| e)
    }

    /// Deletes a key, returning its entry and expiry (RENAME and MOVE carry both).
    pub fn take(&mut self, key: &[u8]) -> Option<(Item, u64)> {
        let r = self.unlink(key)?;
        self.signal_deleted_stream(key, Some(&r.0));
        self.hook.fire(key, WriteKind::Delete);
        Some(r)
    }

    /// signalDeletedKeyAsReady: a deleted stream wakes its XREADGROUP
    /// waiters (they are told the key is gone); other types wake nobody.
    #[inline]
    fn signal_deleted_stream(&mut self, key: &[u8], e: Option<&Item>) {
        if !self.hook.blocked.is_empty() && matches!(e.map(|e| &e.val), Some(Value::Stream(_))) {
            self.hook.signal_ready(key);
        }
    }

    /// Sets the TTL of an existing key (the caller has checked it exists).
    pub fn set_expire(&mut self, key: &[u8], at: u64) {
        if self.keys.contains(key) {
            self.pre_write(key);
            self.keys.set_expire(key, at);
            self.hook.fire(key, WriteKind::Ttl);
        }
    }

    /// Removes the TTL; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        if self.expire_at(key) == 0 {
            return false;
        }
        self.pre_write(key);
        self.keys.set_expire(key, 0);
        self.hook.fire(key, WriteKind::Ttl);
        true
    }

    /// FLUSHDB: every key is deleted (one event per key while a consumer logs).
    pub fn clear(&mut self) {
        self.clear_events();
        self.clear_tables(false);
    }

    /// FLUSHDB / FLUSHALL ASYNC (emptyDbAsync): what `clear` does, but the
    /// old tables are freed by the lazyfree thread.
    pub fn clear_async(&mut self) {
        self.clear_events();
        self.clear_tables(true);
    }

    /// The hook's side of a flush: the deletions it logs, `dirty`, the watches,
    /// the blocked readers of streams.
    fn clear_events(&mut self) {
        if !self.hook.blocked.is_empty() {
            // Clients blocked in XREADGROUP on a stream that goes learn it
            // (emptyDbStructure's signalDeletedKeyAsReady).
            let gone: Vec<Box<[u8]>> = self
                .hook
                .blocked
                .keys()
                .filter(|k| matches!(self.keys.get(k).map(|e| &e.val), Some(Value::Stream(_))))
                .cloned()
                .collect();
            for k in gone {
                self.hook.signal_ready(&k);
            }
        }
        if self.hook.log.is_some() {
            let keys: Vec<Box<[u8]>> = self.keys.iter().map(|(k, _)| k.into()).collect();
            for k in keys {
                self.hook.fire(&k, WriteKind::Delete);
            }
        } else {
            self.hook.dirty += self.keys.len() as u64;
            if !self.hook.watched.is_empty() {
                // touchAllWatchedKeysInDb: the watched keys that existed change.
                let present: Vec<Box<[u8]>> = self.hook.watched.keys().filter(|k| self.keys.contains(k)).cloned().collect();
                for k in present {
                    self.hook.touch_watched(&k, WriteKind::Delete);
                }
            }
        }
    }

    /// The tables' side of a flush; `lazy`: freed by the lazyfree thread.
    fn clear_tables(&mut self, lazy: bool) {
        match self.cow.as_deref_mut() {
            // A snapshot still walking keeps the point's tables (copy-on-write
            // of the whole database); the new tables are all after the point.
            Some(c) if c.pos.is_some() && c.detached.is_none() => {
                c.detached = Some(Box::new(std::mem::take(&mut self.keys)));
            }
            _ if lazy => {
                let n = self.keys.len();
                lazyfree::free_tables(Box::new(std::mem::take(&mut self.keys)), n);
            }
            _ => {
                self.keys.clear();
            }
        }
    }

    /// The maxmemory eviction of a key (the one way evict.rs deletes):
    /// the hook fires `Evicted` (WATCH, tracking, the propagation stream's
    /// DEL / UNLINK); the value goes to the lazyfree thread under
    /// `lazyfree-lazy-eviction`.
    pub fn evict(&mut self, key: &[u8]) -> bool {
        let Some((e, _)) = self.unlink(key) else { return false };
        self.signal_deleted_stream(key, Some(&e));
        lazyfree::free_entry(e, lazyfree::LAZY_EVICTION.load(std::sync::atomic::Ordering::Relaxed));
        self.hook.fire(key, WriteKind::Evicted);
        true
    }

    /// Calls `f(key, entry, expire_at)` for up to `n` random keys of the key
    /// table, or (`volatile`) of the keys with a TTL: eviction's sampling.
    pub(super) fn sample(&self, volatile: bool, n: usize, rand: &mut dyn FnMut() -> u64, mut f: impl FnMut(&[u8], &Entry, u64)) {
        for _ in 0..n {
            let picked = if volatile {
                self.keys.random_volatile(&mut *rand)
            } else {
                self.keys.random(&mut *rand)
            };
            let Some((k, e)) = picked else { return };
            f(k, e, e.expire_at());
        }
    }

    /// A random key of the key table or (`volatile`) of the keys with a TTL.
    pub(super) fn random_key(&self, volatile: bool, rand: &mut dyn FnMut() -> u64) -> Option<Box<[u8]>> {
        if volatile {
            self.keys.random_volatile(rand).map(|(k, _)| k.into())
        } else {
            self.keys.random(rand).map(|(k, _)| k.into())
        }
    }

    /// Redis's `server.dirty += n` for the command that began when
    /// `hook.dirty` read `mark`: a command that changes several elements
    /// counts each (RPUSH of three counts 3) and a pop that empties its key
    /// counts its elements only, where the hook counted one per key event.
    #[inline]
    pub fn dirty_since(&mut self, mark: u64, n: u64) {
        self.hook.dirty = mark + n;
    }

    /// The key's entry and expiry if it is (still) in the key table and,
    /// when `volatile`, has a TTL.
    pub(super) fn held(&self, volatile: bool, key: &[u8]) -> Option<(&Entry, u64)> {
        let e = self.keys.get(key)?;
        let at = e.expire_at();
        (!volatile || at != 0).then_some((e, at))
    }

    /// One round of Redis-style active expiry: sample up to `samples` keys with
    /// a TTL, delete the expired ones that `may_delete` allows (keys held by an
    /// in-flight transaction are skipped). Returns (sampled, expired).
    pub fn expire_sample(&mut self, samples: usize, now_ms: u64, mut rand: impl FnMut() -> u64, may_delete: impl Fn(&[u8]) -> bool) -> (usize, usize) {
        let mut sampled = 0;
        let mut victims: Vec<Box<[u8]>> = Vec::new();
        let n = samples.min(self.keys.volatile_len());
        for _ in 0..n {
            let Some((k, e)) = self.keys.random_volatile(&mut rand) else { break };
            let at = e.expire_at();
            sampled += 1;
            if expired_at(at, now_ms) && !victims.iter().any(|v| &**v == k) && may_delete(k) {
                victims.push(k.into());
            }
        }
        let expired = victims.len();
        for k in victims {
            let gone = self.unlink(&k);
            self.signal_deleted_stream(&k, gone.as_ref().map(|g| &g.0));
            if let Some((e, _)) = gone {
                lazyfree::free_entry(e, lazyfree::LAZY_EXPIRE.load(std::sync::atomic::Ordering::Relaxed));
            }
            self.hook.fire(&k, WriteKind::Expired);
        }
        self.expired += expired as u64;
        (sampled, expired)
    }

    /// Average remaining TTL in ms over a sample, as INFO keyspace's avg_ttl.
    pub fn avg_ttl(&self, now_ms: u64) -> u64 {
        let mut sum = 0u64;
        let mut n = 0u64;
        for (_, e) in self.keys.iter_volatile().take(64) {
            let at = e.expire_at();
            sum += at.saturating_sub(now_ms);
            n += 1;
        }
        sum.checked_div(n).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_vanish_on_access() {
        let mut db = Db::default();
        db.set(b"k", Value::from_bytes(b"v"), 1000, 0);
        assert!(db.lookup_read(b"k", 1000).is_some(), "alive at its expiry millisecond, as Redis");
        assert!(db.lookup_read(b"k", 1001).is_none());
        assert_eq!(db.expires_len(), 0);
        assert_eq!(db.expired, 1);
    }

    #[test]
    fn overwriting_without_ttl_clears_the_volatile_entry() {
        let mut db = Db::default();
        db.set(b"k", Value::Int(1), 5000, 0);
        assert_eq!(db.expires_len(), 1);
        db.set(b"k", Value::Int(2), 0, 0);
        assert_eq!(db.expires_len(), 0);
        db.set_expire(b"k", 10);
        assert_eq!(db.expires_len(), 1);
        assert!(db.persist(b"k"));
        assert_eq!(db.expires_len(), 0);
    }

    #[test]
    fn every_mutation_fires_the_write_hook_and_reads_do_not() {
        let mut db = Db::default();
        db.hook.set_logging(true);
        let ev = |k: &str, kind| KeyEvent {
            key: k.as_bytes().into(),
            kind,
        };
        db.set(b"a", Value::Int(1), 0, 0);
        db.set(b"b", Value::Int(1), 500, 0);
        assert!(db.lookup_read(b"a", 0).is_some());
        assert!(db.peek(b"a", 0).is_some());
        // A write lookup that only reads changes nothing ...
        assert_eq!(db.lookup_write(b"a", 0).map(|e| e.lru()), db.entry(b"a").map(|e| e.lru()));
        // ... an in-place change fires once, when the handle is dropped.
        if let Some(mut e) = db.lookup_write(b"a", 0) {
            *e.val_mut() = Value::Int(2);
            *e.val_mut() = Value::Int(3);
        }
        db.set_expire(b"a", 900);
        db.persist(b"a");
        db.set_keep_ttl(b"b", Value::Int(5), 0);
        assert!(db.lookup_read(b"b", 501).is_none(), "lazily expired");
        db.remove(b"a");
        db.set(b"c", Value::Int(1), 0, 0);
        db.clear();
        assert_eq!(
            db.take_events_for_test(),
            vec![
                ev("a", WriteKind::Set),
                ev("b", WriteKind::Set),
                ev("a", WriteKind::Modify),
                ev("a", WriteKind::Ttl),
                ev("a", WriteKind::Ttl),
                ev("b", WriteKind::Set),
                ev("b", WriteKind::Expired),
                ev("a", WriteKind::Delete),
                ev("c", WriteKind::Set),
                ev("c", WriteKind::Delete),
            ]
        );
        assert_eq!(db.hook.dirty, 9, "expiry is not a command's change");
    }

    impl Db {
        fn take_events_for_test(&mut self) -> Vec<KeyEvent> {
            self.hook.take_events()
        }
    }

    #[test]
    fn populate_adds_only_absent_keys_and_counts_no_dirty() {
        let mut db = Db::default();
        db.set(b"live", Value::from_bytes(b"old"), 0, 0);
        db.set(b"gone", Value::from_bytes(b"old"), 10, 0);
        let dirty = db.hook.dirty;
        db.hook.set_logging(true);
        let v = |s: &str| -> Result<Value, ()> { Ok(Value::plain(s.as_bytes().to_vec())) };
        assert_eq!(db.populate(b"live", 100, || v("new")), Ok(false), "an existing key is kept");
        assert_eq!(db.populate(b"gone", 100, || v("new")), Ok(true), "an expired one is replaced");
        assert_eq!(db.populate(b"fresh", 100, || v("new")), Ok(true));
        assert_eq!(db.populate(b"failed", 100, || Err::<Value, _>(7)), Err(7));
        assert!(db.entry(b"failed").is_none(), "a failed value adds nothing");
        assert_eq!(db.entry(b"live").map(|e| e.val.clone()), Some(Value::from_bytes(b"old")));
        assert_eq!(db.entry(b"gone").map(|e| e.val.clone()), Some(Value::plain(b"new".to_vec())));
        assert_eq!(db.expires_len(), 0);
        assert_eq!(
            db.take_events_for_test(),
            vec![
                KeyEvent {
                    key: (*b"gone").into(),
                    kind: WriteKind::Expired
                },
                KeyEvent {
                    key: (*b"gone").into(),
                    kind: WriteKind::Populate
                },
                KeyEvent {
                    key: (*b"fresh").into(),
                    kind: WriteKind::Populate
                },
            ]
        );
        assert_eq!(db.hook.dirty, dirty, "DEBUG POPULATE counts no change");
    }

    #[test]
    fn active_expiry_sampling_removes_only_expired_unheld_keys() {
        let mut db = Db::default();
        for i in 0..100 {
            let at = if i % 2 == 0 { 10 } else { 1_000_000 };
            db.set(format!("k{i}").as_bytes(), Value::Int(i), at, 0);
        }
        let mut x = 88172645463325252u64;
        let mut rand = || crate::util::rand::next(&mut x);
        for _ in 0..200 {
            db.expire_sample(20, 100, &mut rand, |k| k != b"k0");
        }
        assert_eq!(db.len(), 51, "k0 is held by a transaction and stays");
        assert!(db.entry(b"k0").is_some());
        assert!(db.iter().all(|(k, _)| db.expire_at(k) == 1_000_000 || k == b"k0"));
    }
}
