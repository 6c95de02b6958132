//! Copy-on-write for a forkless snapshot of one database (BGSAVE, SAVE).
//!
//! At the snapshot's point the database gets a [`Cow`]; from then on the
//! snapshot is written incrementally by [`Db::snapshot_step`] (a walk of the
//! key table in [`KeyTable::snapshot_step`] order) while commands keep changing
//! the table. The **pre-write hook** (`Db::pre_write`, called by every
//! mutating path of `db.rs` before it changes anything) keeps the snapshot
//! the point's: the first time a key is about to change after the point,
//! and the walk has not reached it yet, its value *as it is now* — the
//! point's, since nothing changed it before without this hook — is
//! serialized at once and the key is remembered in `handled`; a key that
//! does not exist at that first change did not exist at the point, and is
//! remembered too, so the walk skips it if it is created. The walk skips
//! handled keys (and forgets them as it passes). So every key present at
//! the point is written exactly once, and no key created after it is.
//!
//! FLUSHDB / FLUSHALL during the walk move the whole tables aside
//! (`detached`) instead of freeing them: the walk goes on over them, and
//! everything in the new, empty tables is after the point.
//!
//! `keyspace` cannot know the RDB format (it is a layer below), so the
//! encoding is the [`SnapshotSink`] the persistence layer installs.
//!
//! [`Db::snapshot_step`]: super::db::Db::snapshot_step
//! [`KeyTable::snapshot_step`]: super::table::KeyTable::snapshot_step

use super::table::{Entry, KeyTable};

/// Where a snapshot's keys are encoded (the RDB encoder, in `persistence`).
pub trait SnapshotSink {
    /// Appends one key (its entry and absolute expiry, 0 = none).
    fn put(&mut self, key: &[u8], entry: &Entry, expire_at: u64);
    /// Bytes appended since the last `take`.
    fn pending(&self) -> usize;
    /// The bytes appended since the last `take`.
    fn take(&mut self) -> Vec<u8>;
}

/// What a database looked like at the snapshot's point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointStats {
    pub keys: u64,
    pub expires: u64,
    /// The database's `dirty` at the point: what a successful save clears.
    pub dirty: u64,
}

/// One step's output.
pub struct Step {
    pub bytes: Vec<u8>,
    /// Keys written by this step (walk and hook).
    pub keys: u64,
    /// The walk is over and the snapshot removed from the database.
    pub done: bool,
    /// Total bytes the pre-write hook serialized for this database (set when done).
    pub cow_bytes: u64,
}

/// Bytes the pre-write hooks of every database serialized during the
/// snapshot in progress (one relaxed add per saved key, only while one
/// runs): the figure INFO's current_cow_size samples.
pub static COW_NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A database's snapshot in progress.
pub struct Cow {
    /// Walk position (see `KeyTable::snapshot_step`); `None` once the walk is over.
    pub(super) pos: Option<u64>,
    /// Keys the walk must skip: serialized early by the hook, or absent at the point.
    pub(super) handled: std::collections::HashSet<Box<[u8]>, ahash::RandomState>,
    /// The point's tables, moved aside by a FLUSH during the walk.
    pub(super) detached: Option<Box<KeyTable>>,
    pub(super) sink: Box<dyn SnapshotSink>,
    /// Bytes serialized by the hook (Redis's rdb_last_cow_size counterpart).
    pub(super) cow_bytes: u64,
    /// Keys written since the last step returned.
    pub(super) keys: u64,
    pub point: PointStats,
}

impl Cow {
    pub(super) fn new(sink: Box<dyn SnapshotSink>, point: PointStats) -> Cow {
        Cow {
            pos: Some(0),
            handled: Default::default(),
            detached: None,
            sink,
            cow_bytes: 0,
            keys: 0,
            point,
        }
    }

    /// The pre-write hook: `key` of the live tables is about to change.
    #[inline]
    pub(super) fn before_change(&mut self, key: &[u8], keys: &KeyTable) {
        let Some(pos) = self.pos else { return };
        if self.detached.is_some() || keys.snapshot_pos(key) < pos || self.handled.contains(key) {
            return;
        }
        if let Some(e) = keys.get(key) {
            let before = self.sink.pending();
            self.sink.put(key, e, e.expire_at());
            let n = (self.sink.pending() - before) as u64;
            self.cow_bytes += n;
            COW_NOW.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            self.keys += 1;
        }
        self.handled.insert(key.into());
    }

    /// Walks until `budget` bytes are pending or `max_keys` keys are written.
    pub(super) fn walk(&mut self, live: &KeyTable, budget: usize, max_keys: u64) {
        let Cow {
            pos,
            handled,
            detached,
            sink,
            keys,
            ..
        } = self;
        let table = detached.as_deref().unwrap_or(live);
        while let Some(p) = *pos {
            if sink.pending() >= budget || *keys >= max_keys {
                break;
            }
            *pos = table.snapshot_step(p, |k, e| {
                if !handled.is_empty() && handled.remove(k) {
                    return;
                }
                sink.put(k, e, e.expire_at());
                *keys += 1;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::Db;
    use super::super::table::Entry;
    use super::super::value::Value;
    use super::SnapshotSink;
    use std::collections::HashMap;

    /// Records each key with its integer value (and expiry) as "bytes": the
    /// test decodes them back.
    #[derive(Default)]
    struct Rec(Vec<u8>);

    impl SnapshotSink for Rec {
        fn put(&mut self, key: &[u8], entry: &Entry, expire_at: u64) {
            let v = match entry.val {
                Value::Int(i) => i,
                _ => -1,
            };
            self.0
                .extend_from_slice(format!("{}={}@{};", String::from_utf8_lossy(key), v, expire_at).as_bytes());
        }
        fn pending(&self) -> usize {
            self.0.len()
        }
        fn take(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.0)
        }
    }

    fn parse(out: &[u8], into: &mut HashMap<String, (i64, u64)>) {
        for item in String::from_utf8_lossy(out).split(';').filter(|s| !s.is_empty()) {
            let (k, rest) = item.split_once('=').unwrap();
            let (v, at) = rest.split_once('@').unwrap();
            assert!(
                into.insert(k.to_string(), (v.parse().unwrap(), at.parse().unwrap())).is_none(),
                "{k} written twice"
            );
        }
    }

    #[test]
    fn snapshot_is_the_point_whatever_changes_during_the_walk() {
        let mut db = Db::default();
        let mut point = HashMap::new();
        for i in 0..3000i64 {
            let at = if i % 7 == 0 { 1_000_000 + i as u64 } else { 0 };
            db.set(format!("k{i}").as_bytes(), Value::Int(i), at, 0);
            point.insert(format!("k{i}"), (i, at));
        }
        let stats = db.snapshot_begin(Box::new(Rec::default()));
        assert_eq!(stats.keys, 3000);
        let mut got = HashMap::new();
        let mut round = 0i64;
        loop {
            let step = db.snapshot_step(200, u64::MAX);
            parse(&step.bytes, &mut got);
            if step.done {
                assert!(step.cow_bytes > 0, "the hook saved keys before they changed");
                break;
            }
            // Between steps: overwrite, modify in place, delete, expire-set,
            // persist, and create many keys (table growth) then delete them (shrink).
            round += 1;
            for j in 0..40 {
                let k = format!("k{}", (round * 97 + j * 13) % 3000);
                match j % 5 {
                    0 => db.set(k.as_bytes(), Value::Int(-5), 0, 0),
                    1 => {
                        if let Some(mut e) = db.lookup_write(k.as_bytes(), 0) {
                            *e.val_mut() = Value::Int(-6);
                        }
                    }
                    2 => {
                        db.remove(k.as_bytes());
                    }
                    3 => db.set_expire(k.as_bytes(), 77),
                    _ => {
                        db.persist(k.as_bytes());
                    }
                }
            }
            if round % 4 == 1 {
                for j in 0..4000 {
                    db.set(format!("new{round}-{j}").as_bytes(), Value::Int(1), 0, 0);
                }
            } else if round % 4 == 3 {
                for j in 0..4000 {
                    db.remove(format!("new{}-{j}", round - 2).as_bytes());
                }
            }
        }
        assert_eq!(got, point);
        assert!(!db.snapshot_active());
    }

    #[test]
    fn flush_during_the_walk_keeps_the_point_tables() {
        let mut db = Db::default();
        let mut point = HashMap::new();
        for i in 0..500i64 {
            db.set(format!("k{i}").as_bytes(), Value::Int(i), 0, 0);
            point.insert(format!("k{i}"), (i, 0));
        }
        db.snapshot_begin(Box::new(Rec::default()));
        let mut got = HashMap::new();
        parse(&db.snapshot_step(100, u64::MAX).bytes, &mut got);
        db.set(b"k1", Value::Int(-1), 0, 0);
        db.clear();
        assert_eq!(db.len(), 0);
        db.set(b"after", Value::Int(9), 0, 0);
        db.set(b"k2", Value::Int(-2), 0, 0);
        loop {
            let step = db.snapshot_step(100, u64::MAX);
            parse(&step.bytes, &mut got);
            if step.done {
                break;
            }
        }
        assert_eq!(got, point);
        assert_eq!(db.len(), 2);
    }
}
