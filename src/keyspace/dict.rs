//! A chained hash table with power-of-two buckets, like Redis's dict.
//!
//! Why not hashbrown: SCAN must never miss a key that is present for the whole
//! iteration, even when the table grows or shrinks between calls. Redis gets
//! that from chaining plus a reverse-binary cursor (dictScan); open addressing
//! moves entries on resize and gives no such guarantee.
//!
//! Resizes of a table of [`INCREMENTAL_MIN`] buckets or more are
//! incremental, as Redis's rehash: the new bucket array takes every insert
//! and the old one is moved into it bucket by bucket, in bucket order, a
//! few per insert or removal, so a set or hash of millions of elements
//! never rehashes them all in one command. An element whose old bucket is
//! not moved yet is found there; lookups try it first, then the new array.
//! A doubling's new array is faulted in ahead of it by the inserts before
//! it (`util::alloc::Prefault`), not all at once by the first ones after.

use crate::util::alloc::Prefault;

/// No cached hash: it would cost 8 bytes per key (a tenth of a small key's
/// footprint); lookups compare lengths first, and resizes rehash.
struct Node<V> {
    key: Box<[u8]>,
    val: V,
    next: Option<Box<Node<V>>>,
}

type Bucket<V> = Option<Box<Node<V>>>;

pub struct Dict<V> {
    table: Vec<Bucket<V>>,
    /// A resize in progress (Redis's `ht_table[0]` while rehashing): the
    /// previous buckets, those below `moved` already emptied into `table`.
    old: Vec<Bucket<V>>,
    /// Old buckets already moved (Redis's `rehashidx`).
    moved: usize,
    /// The next doubling's buckets, faulted in ahead of it.
    next: Prefault<Bucket<V>>,
    len: usize,
    hasher: ahash::RandomState,
}

const MIN_BUCKETS: usize = 4;

/// Tables from this many buckets resize incrementally (smaller ones at once).
pub const INCREMENTAL_MIN: usize = 1 << 12;

/// Non-empty old buckets moved per insert or removal during a resize (and
/// up to 8 times as many visited). A doubling starts at one element per
/// bucket and must end before the new array reaches it, within the old
/// size in inserts: at least one bucket each.
const MOVE_STEP: usize = 4;

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Dict<V> {
    pub fn new() -> Self {
        Dict {
            table: Vec::new(),
            old: Vec::new(),
            moved: 0,
            next: Prefault::default(),
            len: 0,
            hasher: ahash::RandomState::new(),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Buckets of the (new, during a resize) table.
    pub fn buckets(&self) -> usize {
        self.table.len()
    }

    /// Whether an incremental resize is in progress.
    #[inline]
    pub fn resizing(&self) -> bool {
        !self.old.is_empty()
    }

    /// Bytes of table structure (bucket arrays + one node per entry), for INFO's used_memory_overhead.
    pub fn overhead_bytes(&self) -> usize {
        (self.table.capacity() + self.old.capacity()) * std::mem::size_of::<Bucket<V>>() + self.next.bytes() + self.len * std::mem::size_of::<Node<V>>()
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.table.len().wrapping_sub(1)
    }

    /// The bucket holding `key` (hash `h`): (in the old array, index).
    #[inline]
    fn locate(&self, key: &[u8], h: u64) -> Option<(bool, usize)> {
        if !self.old.is_empty() {
            let idx = h as usize & (self.old.len() - 1);
            if idx >= self.moved && chain_find(&self.old[idx], key).is_some() {
                return Some((true, idx));
            }
        }
        if self.table.is_empty() {
            return None;
        }
        let idx = h as usize & self.mask();
        chain_find(&self.table[idx], key).map(|_| (false, idx))
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let h = self.hash(key);
        if !self.old.is_empty() {
            let idx = h as usize & (self.old.len() - 1);
            if idx >= self.moved {
                if let Some(n) = chain_find(&self.old[idx], key) {
                    return Some(&n.val);
                }
            }
        }
        chain_find(&self.table[h as usize & self.mask()], key).map(|n| &n.val)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let (in_old, idx) = self.locate(key, self.hash(key))?;
        let mut cur = if in_old {
            self.old[idx].as_deref_mut()
        } else {
            self.table[idx].as_deref_mut()
        };
        while let Some(n) = cur {
            if &*n.key == key {
                return Some(&mut n.val);
            }
            cur = n.next.as_deref_mut();
        }
        None
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: &[u8], val: V) -> Option<V> {
        if let Some(slot) = self.get_mut(key) {
            return Some(std::mem::replace(slot, val));
        }
        self.insert_new(key.into(), val);
        None
    }

    /// Inserts a key known to be absent.
    pub fn insert_new(&mut self, key: Box<[u8]>, val: V) {
        if !self.move_buckets(MOVE_STEP) && self.table.len() >= INCREMENTAL_MIN {
            // SAFETY: `None` of an `Option<Box<_>>` is all zeros.
            unsafe { self.next.step(self.len, self.table.len(), self.table.len() * 2) };
        }
        if self.len >= self.table.len() {
            // A resize still in progress here (only a shrink's can be) ends first.
            self.move_buckets(usize::MAX);
            self.start_resize((self.len + 1).next_power_of_two().max(MIN_BUCKETS));
        }
        let h = self.hash(&key);
        let idx = h as usize & self.mask();
        let next = self.table[idx].take();
        self.table[idx] = Some(Box::new(Node { key, val, next }));
        self.len += 1;
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<(Box<[u8]>, V)> {
        if self.len == 0 {
            return None;
        }
        let (in_old, idx) = self.locate(key, self.hash(key))?;
        let mut cur = if in_old { &mut self.old[idx] } else { &mut self.table[idx] };
        loop {
            let found = match cur {
                None => return None,
                Some(n) => &*n.key == key,
            };
            if found {
                let mut n = cur.take()?;
                *cur = n.next.take();
                self.len -= 1;
                self.move_buckets(MOVE_STEP);
                self.next.shrunk(self.len, self.table.len());
                self.maybe_shrink();
                return Some((n.key, n.val));
            }
            cur = &mut cur.as_mut()?.next;
        }
    }

    /// Shrinks when under 1/8 full, like Redis's htNeedsResize (10%); not
    /// while a resize is in progress.
    fn maybe_shrink(&mut self) {
        let cap = self.table.len();
        if self.old.is_empty() && cap > MIN_BUCKETS && self.len * 8 < cap {
            self.start_resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    /// Starts resizing to `buckets`: incrementally from [`INCREMENTAL_MIN`]
    /// buckets, else at once.
    fn start_resize(&mut self, buckets: usize) {
        if self.table.len() < INCREMENTAL_MIN {
            self.resize(buckets);
            return;
        }
        // A doubling's buckets were faulted in beforehand (`Prefault`).
        let new = self.next.take(buckets).unwrap_or_else(|| {
            let v = empty_buckets(buckets);
            crate::util::alloc::advise_pages(&v, false);
            v
        });
        self.old = std::mem::replace(&mut self.table, new);
        self.moved = 0;
        self.move_buckets(MOVE_STEP);
    }

    /// Moves old buckets into the new array, in order, until `buckets`
    /// non-empty ones have moved or 8 times as many have been visited; ends
    /// the resize when none is left. Whether one is still in progress.
    pub fn move_buckets(&mut self, buckets: usize) -> bool {
        if self.old.is_empty() {
            return false;
        }
        let mask = self.mask();
        let end = self.moved.saturating_add(buckets.saturating_mul(8)).min(self.old.len());
        let mut budget = buckets;
        while self.moved < end && budget > 0 {
            let mut cur = self.old[self.moved].take();
            budget -= cur.is_some() as usize;
            while let Some(mut n) = cur {
                cur = n.next.take();
                let idx = self.hasher.hash_one(&*n.key) as usize & mask;
                n.next = self.table[idx].take();
                self.table[idx] = Some(n);
            }
            self.moved += 1;
        }
        if self.moved == self.old.len() {
            self.old = Vec::new();
            self.moved = 0;
            return false;
        }
        true
    }

    /// Rebuilds at `buckets` at once (small tables).
    fn resize(&mut self, buckets: usize) {
        self.next.clear();
        let mut new = empty_buckets::<V>(buckets);
        let mask = buckets - 1;
        for slot in self.table.iter_mut() {
            let mut cur = slot.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
                let idx = self.hasher.hash_one(&*n.key) as usize & mask;
                n.next = new[idx].take();
                new[idx] = Some(n);
            }
        }
        self.table = new;
    }

    pub fn clear(&mut self) {
        // Drop chains iteratively: a long chain dropped recursively could overflow the stack.
        for slot in self.table.iter_mut().chain(self.old.iter_mut()) {
            let mut cur = slot.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
        self.table = Vec::new();
        self.old = Vec::new();
        self.next.clear();
        self.moved = 0;
        self.len = 0;
    }

    /// Visits one bucket step of a SCAN and returns the next cursor (0 = done).
    /// Reverse-binary increment of the cursor, as Redis's dictScan, so every
    /// element present for the whole scan is returned at least once even if
    /// the table is resized between calls. During a resize, a step covers a
    /// bucket of the smaller array and every bucket of the larger one that
    /// expands it (dictScan's two tables).
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.table.is_empty() {
            return 0;
        }
        let mut visit = |b: &Bucket<V>| {
            let mut cur = b.as_deref();
            while let Some(n) = cur {
                f(&n.key, &n.val);
                cur = n.next.as_deref();
            }
        };
        if self.old.is_empty() {
            let m0 = self.mask() as u64;
            visit(&self.table[(cursor & m0) as usize]);
            return scan_next(cursor, m0);
        }
        let (small, big) = if self.old.len() < self.table.len() {
            (&self.old, &self.table)
        } else {
            (&self.table, &self.old)
        };
        let (m0, m1) = ((small.len() - 1) as u64, (big.len() - 1) as u64);
        let mut v = cursor;
        visit(&small[(v & m0) as usize]);
        loop {
            visit(&big[(v & m1) as usize]);
            v = scan_next(v, m1);
            if v & (m0 ^ m1) == 0 {
                return v;
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.old.iter().chain(self.table.iter()).flat_map(|slot| {
            let mut cur = slot.as_deref();
            std::iter::from_fn(move || {
                let n = cur?;
                cur = n.next.as_deref();
                Some((&*n.key, &n.val))
            })
        })
    }

    /// A random entry: random buckets (of both arrays during a resize)
    /// until a non-empty one, then a random element of its chain (Redis's
    /// dictGetRandomKey). `rand` yields u64s.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask() as u64;
        let (a, total) = (self.old.len() as u64, (self.old.len() + self.table.len()) as u64);
        loop {
            let bucket = if a == 0 {
                &self.table[(rand() & mask) as usize]
            } else {
                let r = rand() % total;
                if r < a {
                    &self.old[r as usize]
                } else {
                    &self.table[(r - a) as usize]
                }
            };
            if let Some(head) = bucket.as_deref() {
                let mut n = 1;
                let mut c = head.next.as_deref();
                while let Some(x) = c {
                    n += 1;
                    c = x.next.as_deref();
                }
                let mut pick = (rand() % n) as usize;
                let mut c = head;
                while pick > 0 {
                    c = c.next.as_deref()?;
                    pick -= 1;
                }
                return Some((&c.key, &c.val));
            }
        }
    }
}

/// `n` empty buckets, whose pages are faulted in as they are first written
/// (`util::alloc::zeroed_vec`), not all at once.
fn empty_buckets<V>(n: usize) -> Vec<Bucket<V>> {
    // SAFETY: `None` of an `Option<Box<_>>` is the null pointer, all zeros.
    unsafe { crate::util::alloc::zeroed_vec(n) }
}

/// The node of `key` in a chain.
#[inline]
fn chain_find<'a, V>(b: &'a Bucket<V>, key: &[u8]) -> Option<&'a Node<V>> {
    let mut cur = b.as_deref();
    while let Some(n) = cur {
        if &*n.key == key {
            return Some(n);
        }
        cur = n.next.as_deref();
    }
    None
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The SCAN cursor after bucket `cursor & mask`: the reverse-binary
/// increment of Redis's dictScan (shared with the key table's homes).
#[inline]
pub(super) fn scan_next(cursor: u64, mask: u64) -> u64 {
    (cursor | !mask).reverse_bits().wrapping_add(1).reverse_bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn insert_get_remove_roundtrip() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            assert!(d.insert(format!("k{i}").as_bytes(), i).is_none());
        }
        assert_eq!(d.len(), 1000);
        assert_eq!(d.insert(b"k5", 55), Some(5));
        assert_eq!(d.get(b"k5"), Some(&55));
        for i in 0..1000u32 {
            assert!(d.remove(format!("k{i}").as_bytes()).is_some());
        }
        assert!(d.is_empty());
        assert!(d.buckets() <= MIN_BUCKETS);
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_resizes() {
        let mut d = Dict::new();
        for i in 0..500u32 {
            d.insert(format!("stable{i}").as_bytes(), ());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |k, _| {
                seen.insert(k.to_vec());
            });
            // Grow and shrink the table between calls.
            step += 1;
            if step.is_multiple_of(3) {
                for j in 0..200 {
                    d.insert(format!("tmp{step}-{j}").as_bytes(), ());
                }
            } else {
                let tmp: Vec<Vec<u8>> = d.iter().filter(|(k, _)| k.starts_with(b"tmp")).map(|(k, _)| k.to_vec()).collect();
                for k in tmp {
                    d.remove(&k);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500u32 {
            assert!(seen.contains(format!("stable{i}").as_bytes()), "missed stable{i}");
        }
    }

    /// A big table grows and shrinks over the operations that follow, and
    /// every element stays findable (get, get_mut, remove, iter, random)
    /// while the old buckets are moved.
    #[test]
    fn elements_stay_findable_while_a_resize_is_in_progress() {
        let mut d: Dict<u32> = Dict::new();
        let mut model = std::collections::HashMap::new();
        let mut x = 0x2545F4914F6CDD1Du64;
        let mut during = 0u32;
        for round in 0..4u32 {
            let (grow, target) = (round % 2 == 0, if round % 2 == 0 { 30_000 } else { 200 });
            while if grow { model.len() < target } else { model.len() > target } {
                let r = crate::util::rand::next(&mut x);
                let k = (r % 50_000) as u32;
                if (r & (3 << 40) != 0) == grow {
                    if d.insert(format!("e{k}").as_bytes(), k).is_none() {
                        assert!(model.insert(k, k).is_none());
                    } else {
                        *d.get_mut(format!("e{k}").as_bytes()).expect("present") = k + 1;
                        model.insert(k, k + 1);
                    }
                } else if let Some(&k) = model.keys().next() {
                    assert_eq!(d.remove(format!("e{k}").as_bytes()).map(|x| x.1), model.remove(&k));
                }
                if d.resizing() {
                    during += 1;
                    if during.is_multiple_of(701) {
                        for (k, v) in &model {
                            assert_eq!(d.get(format!("e{k}").as_bytes()), Some(v), "e{k}");
                        }
                        assert_eq!(d.iter().count(), model.len());
                        let (_, v) = d.random(|| crate::util::rand::next(&mut x)).expect("an element");
                        assert!(model.values().any(|m| m == v));
                    }
                }
            }
        }
        assert!(during > 5_000, "few operations during a resize: {during}");
        assert_eq!(d.len(), model.len());
    }

    /// SSCAN/HSCAN's guarantee holds while old buckets move between calls.
    #[test]
    fn scan_misses_nothing_while_a_resize_moves_elements() {
        let mut d: Dict<()> = Dict::new();
        for i in 0..7000u32 {
            d.insert(format!("stable{i}").as_bytes(), ());
        }
        let mut seen = HashSet::new();
        let (mut cursor, mut step, mut during, mut tmp, mut rm) = (0u64, 0u32, 0u32, 0u32, 0u32);
        loop {
            cursor = d.scan(cursor, |k, _| {
                seen.insert(k.to_vec());
            });
            step += 1;
            during += d.resizing() as u32;
            if (step / 2500) % 2 == 0 {
                d.insert(format!("tmp{tmp}").as_bytes(), ());
                tmp += 1;
            } else {
                for _ in 0..3 {
                    if rm < tmp {
                        assert!(d.remove(format!("tmp{rm}").as_bytes()).is_some());
                        rm += 1;
                    }
                }
            }
            if cursor == 0 {
                break;
            }
        }
        assert!(during > 100, "only {during} steps during a resize");
        for i in 0..7000u32 {
            assert!(seen.contains(format!("stable{i}").as_bytes()), "missed stable{i}");
        }
    }

    #[test]
    fn random_returns_members() {
        let mut d = Dict::new();
        assert!(d.random(|| 7).is_none());
        d.insert(b"a", 1);
        d.insert(b"b", 2);
        let mut x = 0x9E3779B97F4A7C15u64;
        for _ in 0..50 {
            let (k, _) = d.random(|| crate::util::rand::next(&mut x)).unwrap();
            assert!(k == b"a" || k == b"b");
        }
    }
}
