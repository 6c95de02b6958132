//! A chained hash table with power-of-two buckets, like Redis's dict.
//!
//! Why not hashbrown: SCAN must never miss a key that is present for the whole
//! iteration, even when the table grows or shrinks between calls. Redis gets
//! that from chaining plus a reverse-binary cursor (dictScan); open addressing
//! moves entries on resize and gives no such guarantee. Resizes here are done
//! at once (no incremental rehash), so there is always exactly one table.

/// No cached hash: it would cost 8 bytes per key (a tenth of a small key's
/// footprint); lookups compare lengths first, and resizes rehash.
struct Node<V> {
    key: Box<[u8]>,
    val: V,
    next: Option<Box<Node<V>>>,
}

pub struct Dict<V> {
    table: Vec<Option<Box<Node<V>>>>,
    len: usize,
    hasher: ahash::RandomState,
}

const MIN_BUCKETS: usize = 4;

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Dict<V> {
    pub fn new() -> Self {
        Dict {
            table: Vec::new(),
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

    pub fn buckets(&self) -> usize {
        self.table.len()
    }

    /// Bytes of table structure (bucket array + one node per entry), for INFO's used_memory_overhead.
    pub fn overhead_bytes(&self) -> usize {
        self.table.capacity() * std::mem::size_of::<Option<Box<Node<V>>>>() + self.len * std::mem::size_of::<Node<V>>()
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.table.len().wrapping_sub(1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        if self.table.is_empty() {
            return None;
        }
        let h = self.hash(key);
        let mut cur = self.table[h as usize & self.mask()].as_deref();
        while let Some(n) = cur {
            if &*n.key == key {
                return Some(&n.val);
            }
            cur = n.next.as_deref();
        }
        None
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.table.is_empty() {
            return None;
        }
        let h = self.hash(key);
        let idx = h as usize & self.mask();
        let mut cur = self.table[idx].as_deref_mut();
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
        if self.len >= self.table.len() {
            self.resize((self.len + 1).next_power_of_two().max(MIN_BUCKETS));
        }
        let h = self.hash(&key);
        let idx = h as usize & self.mask();
        let next = self.table[idx].take();
        self.table[idx] = Some(Box::new(Node { key, val, next }));
        self.len += 1;
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<(Box<[u8]>, V)> {
        if self.table.is_empty() {
            return None;
        }
        let h = self.hash(key);
        let idx = h as usize & self.mask();
        let mut cur = &mut self.table[idx];
        loop {
            let found = match cur {
                None => return None,
                Some(n) => &*n.key == key,
            };
            if found {
                let mut n = cur.take()?;
                *cur = n.next.take();
                self.len -= 1;
                self.maybe_shrink();
                return Some((n.key, n.val));
            }
            cur = &mut cur.as_mut()?.next;
        }
    }

    /// Shrinks when under 1/8 full, like Redis's htNeedsResize (10%).
    fn maybe_shrink(&mut self) {
        let cap = self.table.len();
        if cap > MIN_BUCKETS && self.len * 8 < cap {
            self.resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, buckets: usize) {
        let mut new: Vec<Option<Box<Node<V>>>> = Vec::with_capacity(buckets);
        new.resize_with(buckets, || None);
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
        for slot in self.table.iter_mut() {
            let mut cur = slot.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
        self.table = Vec::new();
        self.len = 0;
    }

    /// Visits one bucket step of a SCAN and returns the next cursor (0 = done).
    /// Reverse-binary increment of the cursor, as Redis's dictScan, so every
    /// element present for the whole scan is returned at least once even if
    /// the table is resized between calls.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.table.is_empty() {
            return 0;
        }
        let m0 = self.mask() as u64;
        let mut cur = self.table[(cursor & m0) as usize].as_deref();
        while let Some(n) = cur {
            f(&n.key, &n.val);
            cur = n.next.as_deref();
        }
        scan_next(cursor, m0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.table.iter().flat_map(|slot| {
            let mut cur = slot.as_deref();
            std::iter::from_fn(move || {
                let n = cur?;
                cur = n.next.as_deref();
                Some((&*n.key, &n.val))
            })
        })
    }

    /// A random entry: random buckets until a non-empty one, then a random
    /// element of its chain (Redis's dictGetRandomKey). `rand` yields u64s.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask() as u64;
        loop {
            let idx = (rand() & mask) as usize;
            if let Some(head) = self.table[idx].as_deref() {
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
