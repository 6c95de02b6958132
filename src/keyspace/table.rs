//! The key table of a database: open addressing with Robin Hood probing and
//! backward-shift deletion, one 8-byte slot per position, each pointing at a
//! node that holds the key's entry *and the key* in one allocation.
//!
//! Why not the chained [`Dict`](super::dict::Dict): there a key costs a node
//! (key pointer, entry, chain pointer), an allocation for the key, one for
//! the value and a bucket. Here `key:N` with a 16-byte value is one 48-byte
//! block (the value inline in [`Value::Small`], the key after the entry)
//! plus its slot: about 56-65 bytes a key at the table's load, where Redis
//! spends 104-109.
//!
//! SCAN and the snapshot walk keep the chained table's guarantees. A key's
//! *home* is `hash & mask`, as its bucket would be, and Robin Hood keeps
//! every probe run sorted by home, so the keys of one home are one
//! contiguous run found from the home slot by their displacement. The
//! reverse-binary cursor then works on homes exactly as Redis's dictScan
//! works on buckets, across resizes (both are powers of two).
//!
//! A slot is `node pointer (48 bits) | displacement (8) | hash tag (8)`:
//! a lookup compares tags before it touches a node. Displacement is capped
//! at 255; a run that would exceed it grows the table (it does not happen
//! at these loads with a keyed hash). Resizes are done at once, as the
//! chained table's.

use super::value::{Item, Value};
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// A stored key: its value, its access clock and (not visible) its name,
/// all in the table's node. Unsized, so it is only ever seen by reference:
/// [`Item`] is the owned form, for a key moved out of a table.
#[repr(C)]
pub struct Entry {
    pub val: Value,
    /// The access clock: the LRU clock under LRU and the other policies,
    /// the LFU word under an LFU policy (one field, as Redis's `robj.lru`).
    meta: u32,
    /// `klen` (one byte, or 255 and four more) then the key bytes.
    tail: [u8],
}

/// Where `tail` starts: after the value (32 bytes) and `meta`.
const TAIL_OFF: usize = std::mem::size_of::<Value>() + 4;
const _: () = assert!(std::mem::size_of::<Value>() == 32 && std::mem::align_of::<Value>() == 8);

impl Entry {
    /// The LRU clock (meaningful unless the policy is LFU).
    #[inline]
    pub fn lru(&self) -> u32 {
        self.meta
    }

    /// The LFU word (meaningful under an LFU policy).
    #[inline]
    pub fn lfu(&self) -> u32 {
        self.meta
    }

    #[inline]
    pub fn meta(&self) -> u32 {
        self.meta
    }

    #[inline]
    pub(super) fn set_meta(&mut self, m: u32) {
        self.meta = m;
    }

    /// The key's name.
    #[inline]
    pub fn key(&self) -> &[u8] {
        let (h, n) = hdr(&self.tail);
        &self.tail[h..h + n]
    }
}

/// The length header of a tail: (header bytes, key length).
#[inline]
fn hdr(tail: &[u8]) -> (usize, usize) {
    let b = tail[0];
    if b < 255 {
        (1, b as usize)
    } else {
        (5, u32::from_le_bytes([tail[1], tail[2], tail[3], tail[4]]) as usize)
    }
}

#[inline]
fn hdr_len(klen: usize) -> usize {
    if klen < 255 {
        1
    } else {
        5
    }
}

#[inline]
fn layout(tail: usize) -> Layout {
    // Cannot fail: the size is far below isize::MAX for any key Redis accepts.
    Layout::from_size_align((TAIL_OFF + tail + 7) & !7, 8).expect("node layout")
}

/// The bytes a key of `klen` bytes takes as a node (before allocator rounding).
pub fn node_size(klen: usize) -> usize {
    layout(hdr_len(klen) + klen).size()
}

/// The tail length of the node at `p`.
///
/// SAFETY: `p` is a live node.
#[inline]
unsafe fn tail_len(p: *const u8) -> usize {
    let b = *p.add(TAIL_OFF);
    if b < 255 {
        1 + b as usize
    } else {
        let mut l = [0u8; 4];
        std::ptr::copy_nonoverlapping(p.add(TAIL_OFF + 1), l.as_mut_ptr(), 4);
        5 + u32::from_le_bytes(l) as usize
    }
}

/// SAFETY: `p` is a live node, not otherwise borrowed for `'a`.
#[inline]
unsafe fn entry_mut<'a>(p: *mut u8) -> &'a mut Entry {
    &mut *(std::ptr::slice_from_raw_parts_mut(p, tail_len(p)) as *mut Entry)
}

/// SAFETY: `p` is a live node, not mutably borrowed for `'a`.
#[inline]
unsafe fn entry_ref<'a>(p: *const u8) -> &'a Entry {
    &*(std::ptr::slice_from_raw_parts(p, tail_len(p)) as *const Entry)
}

fn new_node(key: &[u8], item: Item) -> NonNull<u8> {
    let h = hdr_len(key.len());
    let lay = layout(h + key.len());
    // SAFETY: a non-zero size; every field is written before the node is read.
    unsafe {
        let p = alloc(lay);
        if p.is_null() {
            handle_alloc_error(lay);
        }
        std::ptr::write(p as *mut Value, item.val);
        std::ptr::write(p.add(TAIL_OFF - 4) as *mut u32, item.meta);
        let t = p.add(TAIL_OFF);
        if h == 1 {
            *t = key.len() as u8;
        } else {
            *t = 255;
            std::ptr::copy_nonoverlapping((key.len() as u32).to_le_bytes().as_ptr(), t.add(1), 4);
        }
        std::ptr::copy_nonoverlapping(key.as_ptr(), t.add(h), key.len());
        NonNull::new_unchecked(p)
    }
}

/// Moves the entry out of the node at `p` and frees the node.
///
/// SAFETY: `p` is a live node that nothing refers to any more.
unsafe fn take_node(p: *mut u8) -> Item {
    let lay = layout(tail_len(p));
    let val = std::ptr::read(p as *const Value);
    let meta = std::ptr::read(p.add(TAIL_OFF - 4) as *const u32);
    dealloc(p, lay);
    Item { val, meta }
}

const PTR_BITS: u32 = 48;
const PTR_MASK: u64 = (1 << PTR_BITS) - 1;
const MAX_DIST: u32 = 255;

#[inline]
fn sptr(s: u64) -> *mut u8 {
    (s & PTR_MASK) as usize as *mut u8
}

#[inline]
fn sdist(s: u64) -> u32 {
    ((s >> PTR_BITS) & 0xFF) as u32
}

#[inline]
fn tag_of(h: u64) -> u64 {
    h >> 56
}

#[inline]
fn stag(s: u64) -> u64 {
    s >> 56
}

#[inline]
fn mk(p: *mut u8, dist: u32, tag: u64) -> u64 {
    let a = p as usize as u64;
    assert!(a >> PTR_BITS == 0, "node address above 2^48");
    a | ((dist as u64) << PTR_BITS) | (tag << 56)
}

const MIN_SLOTS: usize = 8;

pub struct KeyTable {
    slots: Vec<u64>,
    len: usize,
    /// Sum of the nodes' sizes minus their key bytes: the table's share of
    /// INFO's used_memory_overhead (with the slot array).
    node_bytes: usize,
    hasher: ahash::RandomState,
}

// SAFETY: the table owns its nodes exclusively (no shared or interior
// state); `Value` is Send and Sync.
unsafe impl Send for KeyTable {}
unsafe impl Sync for KeyTable {}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable {
            slots: Vec::new(),
            len: 0,
            node_bytes: 0,
            hasher: ahash::RandomState::new(),
        }
    }
}

impl KeyTable {
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of table structure: the slot array and each node minus its key
    /// bytes (the entry header and the value struct), for INFO's overhead.
    pub fn overhead_bytes(&self) -> usize {
        self.slots.capacity() * 8 + self.node_bytes
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot index holding `key`.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let h = self.hash(key);
        let mask = self.mask();
        let tag = tag_of(h);
        let mut i = h as usize & mask;
        let mut d = 0u32;
        loop {
            let s = self.slots[i];
            if s == 0 || sdist(s) < d {
                return None;
            }
            // SAFETY: occupied slots point at live nodes.
            if sdist(s) == d && stag(s) == tag && unsafe { entry_ref(sptr(s)) }.key() == key {
                return Some(i);
            }
            d += 1;
            if d > MAX_DIST {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        // SAFETY: a live node, borrowed with the table.
        self.find(key).map(|i| unsafe { entry_ref(sptr(self.slots[i])) })
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        // SAFETY: a live node, borrowed mutably with the table.
        self.find(key).map(|i| unsafe { entry_mut(sptr(self.slots[i])) })
    }

    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Inserts a key known to be absent; returns its entry.
    pub fn insert_new(&mut self, key: &[u8], item: Item) -> &mut Entry {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.resize((self.slots.len() * 2).max(MIN_SLOTS));
        }
        let p = new_node(key, item).as_ptr();
        self.len += 1;
        self.node_bytes += node_size(key.len()) - key.len();
        let h = self.hash(key);
        self.place(p, h);
        // SAFETY: just inserted; borrowed mutably with the table.
        unsafe { entry_mut(p) }
    }

    /// Places a node (already counted in `len`), growing the table if a
    /// probe run would exceed the displacement cap.
    fn place(&mut self, mut p: *mut u8, mut h: u64) {
        loop {
            match place_into(&mut self.slots, p, h) {
                Ok(()) => return,
                Err(homeless) => {
                    // Another node was displaced out of the cap: grow, then place it.
                    self.resize(self.slots.len() * 2);
                    p = homeless;
                    // SAFETY: a live node.
                    h = self.hash(unsafe { entry_ref(p) }.key());
                }
            }
        }
    }

    /// Rebuilds the slots at `n` (a power of two) positions.
    fn resize(&mut self, mut n: usize) {
        loop {
            let mut new = vec![0u64; n];
            let mut ok = true;
            for &s in self.slots.iter().filter(|s| **s != 0) {
                let p = sptr(s);
                // SAFETY: a live node.
                let h = self.hasher.hash_one(unsafe { entry_ref(p) }.key());
                if place_into(&mut new, p, h).is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                self.slots = new;
                return;
            }
            n *= 2;
        }
    }

    /// Removes the key; its entry back.
    pub fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let i = self.find(key)?;
        let p = sptr(self.slots[i]);
        self.unslot(i);
        self.node_bytes -= node_size(key.len()) - key.len();
        self.maybe_shrink();
        // SAFETY: unlinked from the table: nothing refers to it.
        Some(unsafe { take_node(p) })
    }

    /// Backward-shift deletion of slot `i`.
    fn unslot(&mut self, mut i: usize) {
        let mask = self.mask();
        loop {
            let n = (i + 1) & mask;
            let s = self.slots[n];
            if s == 0 || sdist(s) == 0 {
                self.slots[i] = 0;
                break;
            }
            self.slots[i] = s - (1 << PTR_BITS);
            i = n;
        }
        self.len -= 1;
    }

    /// Shrinks when under 1/8 full, as the chained table does.
    fn maybe_shrink(&mut self) {
        let cap = self.slots.len();
        if self.len == 0 {
            self.slots = Vec::new();
        } else if cap > MIN_SLOTS && self.len * 8 < cap {
            let want = (self.len * 8 / 7 + 1).next_power_of_two().max(MIN_SLOTS);
            if want < cap {
                self.resize(want);
            }
        }
    }

    /// Frees every node.
    pub fn clear(&mut self) {
        for s in std::mem::take(&mut self.slots) {
            if s != 0 {
                // SAFETY: each node is freed once; the slots are gone.
                drop(unsafe { take_node(sptr(s)) });
            }
        }
        self.len = 0;
        self.node_bytes = 0;
    }

    /// Calls `f` for every key whose home is slot `b`.
    #[inline]
    fn visit_home(&self, b: usize, mut f: impl FnMut(&Entry)) {
        let mask = self.mask();
        let mut i = b;
        for k in 0..=MAX_DIST {
            let s = self.slots[i];
            if s == 0 {
                return;
            }
            let d = sdist(s);
            if d == k {
                // SAFETY: a live node, borrowed with the table.
                f(unsafe { entry_ref(sptr(s)) });
            } else if d < k {
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// One SCAN step: the keys of one home, then the next cursor (0 = done).
    /// Reverse-binary increment, as Redis's dictScan: every key present for
    /// the whole scan is returned at least once across resizes.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &Entry)) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        let m0 = self.mask() as u64;
        self.visit_home((cursor & m0) as usize, |e| f(e.key(), e));
        let mut v = cursor | !m0;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// A key's position in snapshot order: its hash with the bits reversed
    /// (home `b` of a 2^n table holds exactly the keys whose position's top
    /// n bits are `b`'s low n bits reversed).
    #[inline]
    pub fn snapshot_pos(&self, key: &[u8]) -> u64 {
        self.hash(key).reverse_bits()
    }

    /// One step of a snapshot walk: the keys of the home holding position
    /// `pos` whose position is `>= pos`, and where the next step starts
    /// (`None`: the walk is over). Monotone in position whatever resizes
    /// happen between steps, so a key present throughout is visited exactly
    /// once (the chained table's `snapshot_step`, same order).
    pub fn snapshot_step(&self, pos: u64, mut f: impl FnMut(&[u8], &Entry)) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let bits = self.slots.len().trailing_zeros();
        let idx = (pos.reverse_bits() as usize) & self.mask();
        self.visit_home(idx, |e| {
            if self.hasher.hash_one(e.key()).reverse_bits() >= pos {
                f(e.key(), e);
            }
        });
        let start = (idx as u64).reverse_bits();
        start.checked_add(1u64 << (64 - bits))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.slots.iter().filter(|s| **s != 0).map(|&s| {
            // SAFETY: a live node, borrowed with the table.
            let e = unsafe { entry_ref(sptr(s)) };
            (e.key(), e)
        })
    }

    /// A random entry, uniform over the keys: random slots until an occupied
    /// one. `rand` yields u64s.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &Entry)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask() as u64;
        loop {
            let s = self.slots[(rand() & mask) as usize];
            if s != 0 {
                // SAFETY: a live node, borrowed with the table.
                let e = unsafe { entry_ref(sptr(s)) };
                return Some((e.key(), e));
            }
        }
    }
}

/// Robin Hood insertion of node `p` (hash `h`) into `slots`; the node left
/// without a place if a run would exceed [`MAX_DIST`].
fn place_into(slots: &mut [u64], p: *mut u8, h: u64) -> Result<(), *mut u8> {
    let mask = slots.len() - 1;
    let mut cur = mk(p, 0, tag_of(h));
    let mut i = h as usize & mask;
    loop {
        let s = slots[i];
        if s == 0 {
            slots[i] = cur;
            return Ok(());
        }
        if sdist(s) < sdist(cur) {
            slots[i] = cur;
            cur = s;
        }
        if sdist(cur) == MAX_DIST {
            return Err(sptr(cur));
        }
        cur += 1 << PTR_BITS;
        i = (i + 1) & mask;
    }
}

impl Drop for KeyTable {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn item(i: i64) -> Item {
        Item { val: Value::Int(i), meta: 7 }
    }

    fn int(e: &Entry) -> i64 {
        match e.val {
            Value::Int(i) => i,
            _ => -1,
        }
    }

    #[test]
    fn insert_get_remove_roundtrip_with_short_and_long_keys() {
        let mut t = KeyTable::default();
        let long = vec![b'x'; 300];
        for i in 0..5000i64 {
            t.insert_new(format!("k{i}").as_bytes(), item(i));
        }
        t.insert_new(&long, item(-2));
        assert_eq!(t.len(), 5001);
        assert_eq!(t.get(&long).map(|e| e.key().len()), Some(300));
        for i in 0..5000i64 {
            let e = t.get(format!("k{i}").as_bytes()).expect("present");
            assert_eq!((int(e), e.key(), e.meta()), (i, format!("k{i}").as_bytes(), 7));
        }
        t.get_mut(b"k3").expect("present").val = Value::Int(33);
        assert_eq!(t.get(b"k3").map(int), Some(33));
        assert!(t.get(b"nope").is_none());
        for i in 0..5000i64 {
            assert_eq!(t.remove(format!("k{i}").as_bytes()).map(|x| x.val), Some(Value::Int(if i == 3 { 33 } else { i })));
            assert!(!t.contains(format!("k{i}").as_bytes()));
        }
        assert!(t.remove(&long).is_some());
        assert!(t.is_empty());
        assert_eq!(t.capacity(), 0);
        assert_eq!(t.overhead_bytes(), 0);
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_resizes() {
        let mut t = KeyTable::default();
        for i in 0..500 {
            t.insert_new(format!("stable{i}").as_bytes(), item(i));
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = t.scan(cursor, |k, _| {
                seen.insert(k.to_vec());
            });
            step += 1;
            if step.is_multiple_of(3) {
                for j in 0..200 {
                    let k = format!("tmp{step}-{j}");
                    t.insert_new(k.as_bytes(), item(0));
                }
            } else {
                let tmp: Vec<Vec<u8>> = t.iter().filter(|(k, _)| k.starts_with(b"tmp")).map(|(k, _)| k.to_vec()).collect();
                for k in tmp {
                    t.remove(&k);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(format!("stable{i}").as_bytes()), "missed stable{i}");
        }
    }

    #[test]
    fn snapshot_walk_visits_every_stable_key_exactly_once_despite_resizes() {
        let mut t = KeyTable::default();
        for i in 0..2000 {
            t.insert_new(format!("stable{i}").as_bytes(), item(i));
        }
        let mut seen: HashMap<Vec<u8>, u32> = Default::default();
        let mut pos = Some(0u64);
        let mut step = 0u32;
        while let Some(p) = pos {
            pos = t.snapshot_step(p, |k, _| {
                *seen.entry(k.to_vec()).or_default() += 1;
            });
            step += 1;
            if step % 50 == 1 {
                for j in 0..5000 {
                    t.insert_new(format!("tmp{step}-{j}").as_bytes(), item(0));
                }
            } else if step % 50 == 25 {
                let tmp: Vec<Vec<u8>> = t.iter().filter(|(k, _)| k.starts_with(b"tmp")).map(|(k, _)| k.to_vec()).collect();
                for k in tmp {
                    t.remove(&k);
                }
            }
        }
        for i in 0..2000 {
            assert_eq!(seen.get(format!("stable{i}").as_bytes()), Some(&1), "stable{i}");
        }
    }

    /// The invariant every lookup and scan relies on: each run sorted by
    /// home, each node at its home plus its recorded displacement.
    #[test]
    fn probe_runs_stay_sorted_by_home_under_random_inserts_and_removes() {
        let mut t = KeyTable::default();
        let mut model: HashSet<u32> = HashSet::new();
        let mut x = 0x2545F4914F6CDD1Du64;
        for _ in 0..60_000 {
            let r = crate::util::rand::next(&mut x);
            let k = (r % 3000) as u32;
            let key = format!("k{k}");
            if r & (1 << 40) == 0 {
                if model.insert(k) {
                    t.insert_new(key.as_bytes(), item(k as i64));
                }
            } else if model.remove(&k) {
                assert!(t.remove(key.as_bytes()).is_some());
            }
        }
        assert_eq!(t.len(), model.len());
        let mask = t.mask();
        for (i, &s) in t.slots.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let e = unsafe { entry_ref(sptr(s)) };
            let home = t.hash(e.key()) as usize & mask;
            assert_eq!((home + sdist(s) as usize) & mask, i);
            let prev = t.slots[(i + mask) & mask];
            if sdist(s) > 0 {
                assert!(prev != 0 && sdist(prev) + 1 >= sdist(s), "a gap or an unsorted run before slot {i}");
            }
        }
        for k in &model {
            assert!(t.contains(format!("k{k}").as_bytes()));
        }
    }

    #[test]
    fn random_returns_members() {
        let mut t = KeyTable::default();
        assert!(t.random(|| 7).is_none());
        t.insert_new(b"a", item(1));
        t.insert_new(b"b", item(2));
        let mut x = 0x9E3779B97F4A7C15u64;
        for _ in 0..50 {
            let (k, _) = t.random(|| crate::util::rand::next(&mut x)).unwrap();
            assert!(k == b"a" || k == b"b");
        }
    }

    /// `key:N` with a 16-byte value: one 48-byte node, nothing else.
    #[test]
    fn a_short_key_with_a_short_string_is_one_48_byte_node() {
        assert_eq!(node_size(b"key:1234567".len()), 48);
        assert!(matches!(Value::from_bytes(&[b'v'; 16]), Value::Small(_)));
    }
}
