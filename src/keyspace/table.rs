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
//! A key's TTL lives in its node too (8 bytes after the name, only for keys
//! that have one), with its index in `volatile`, the array of the nodes of
//! keys with a TTL that active expiry and the volatile-* policies sample
//! (uniformly: a random index). Setting or removing a TTL reallocates the
//! node (one size more or less); nothing else ever moves one.
//!
//! A slot is `node address / 8 (45 bits) | displacement (7) | next (12)`,
//! where *next* holds the hash bits just above the home bits: a lookup
//! compares them before it touches a node, and a resize moves slots
//! without touching nodes (doubling takes a key's next bit as its new home
//! bit, halving gives the dropped home bit back), so growing a table of
//! millions of keys is one pass over the slot array. `valid` counts the
//! next bits still known (a doubling uses one, a halving returns one);
//! only a doubling with none left reads every node to rehash, which with 12
//! bits happens at 2^15 slots and next at 2^27. Displacement is capped at
//! 127; a run that would exceed it grows the table (it does not happen at
//! these loads with a keyed hash).
//!
//! Resizes of a table of [`INCREMENTAL_MIN`] slots or more are incremental,
//! as Redis's rehash: the new slot array takes every insert, and the old
//! one is moved into it one home at a time, in home order ([`MOVE_STEP`]
//! keys per insert or removal, and up to a millisecond per cron tick under
//! `activerehashing yes`). Taking a home's keys out of the old array is
//! backward-shift deletion, so the old array stays a valid Robin Hood table
//! and a key whose old home is not yet moved is found there by the same
//! probe; a lookup tries it first, then the new array. So no operation
//! ever rebuilds millions of slots at once (the 7.3M-key doubling of a SET
//! load stalled its shard for 355 ms when it did).

use super::value::{Item, Value};
use crate::util::alloc::Prefault;
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
    /// The header (bit 7: the key has a TTL; bits 0-6: the key's length,
    /// or 127 and four bytes of length), the key bytes, then for a key with
    /// a TTL its expiry (u64, Unix ms) and its index in `volatile` (u32).
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

    /// The key's absolute expiry in Unix ms; 0 = none.
    #[inline]
    pub fn expire_at(&self) -> u64 {
        if self.tail[0] & TTL_FLAG == 0 {
            return 0;
        }
        let (h, n) = hdr(&self.tail);
        u64::from_le_bytes(self.tail[h + n..h + n + 8].try_into().expect("8 bytes"))
    }

    #[inline]
    fn set_expire_in_place(&mut self, at: u64) {
        let (h, n) = hdr(&self.tail);
        self.tail[h + n..h + n + 8].copy_from_slice(&at.to_le_bytes());
    }

    /// Index in `volatile` (a key with a TTL).
    #[inline]
    fn vol_idx(&self) -> usize {
        let (h, n) = hdr(&self.tail);
        u32::from_le_bytes(self.tail[h + n + 8..h + n + 12].try_into().expect("4 bytes")) as usize
    }

    #[inline]
    fn set_vol_idx(&mut self, i: usize) {
        let (h, n) = hdr(&self.tail);
        self.tail[h + n + 8..h + n + 12].copy_from_slice(&(i as u32).to_le_bytes());
    }
}

const TTL_FLAG: u8 = 0x80;
const LONG_KEY: u8 = 0x7F;
/// Expiry (8) and `volatile` index (4).
const TTL_BYTES: usize = 12;

/// The length header of a tail: (header bytes, key length).
#[inline]
fn hdr(tail: &[u8]) -> (usize, usize) {
    let b = tail[0] & !TTL_FLAG;
    if b < LONG_KEY {
        (1, b as usize)
    } else {
        (5, u32::from_le_bytes([tail[1], tail[2], tail[3], tail[4]]) as usize)
    }
}

#[inline]
fn hdr_len(klen: usize) -> usize {
    if klen < LONG_KEY as usize {
        1
    } else {
        5
    }
}

/// A node's tail length.
#[inline]
fn tail_size(klen: usize, ttl: bool) -> usize {
    hdr_len(klen) + klen + if ttl { TTL_BYTES } else { 0 }
}

#[inline]
fn layout(tail: usize) -> Layout {
    // Cannot fail: the size is far below isize::MAX for any key Redis accepts.
    Layout::from_size_align((TAIL_OFF + tail + 7) & !7, 8).expect("node layout")
}

/// The bytes a key of `klen` bytes takes as a node, with or without a TTL
/// (before allocator rounding).
pub fn node_size(klen: usize, ttl: bool) -> usize {
    layout(tail_size(klen, ttl)).size()
}

/// The tail length of the node at `p`.
///
/// SAFETY: `p` is a live node.
#[inline]
unsafe fn tail_len(p: *const u8) -> usize {
    let b = *p.add(TAIL_OFF);
    let ttl = if b & TTL_FLAG != 0 { TTL_BYTES } else { 0 };
    let b = b & !TTL_FLAG;
    if b < LONG_KEY {
        1 + b as usize + ttl
    } else {
        let mut l = [0u8; 4];
        std::ptr::copy_nonoverlapping(p.add(TAIL_OFF + 1), l.as_mut_ptr(), 4);
        5 + u32::from_le_bytes(l) as usize + ttl
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

/// A node for `key`; with `ttl`, its expiry and `volatile` index.
fn new_node(key: &[u8], item: Item, ttl: Option<(u64, usize)>) -> NonNull<u8> {
    let h = hdr_len(key.len());
    let lay = layout(tail_size(key.len(), ttl.is_some()));
    // SAFETY: a non-zero size; every field is written before the node is read.
    unsafe {
        let p = alloc(lay);
        if p.is_null() {
            handle_alloc_error(lay);
        }
        std::ptr::write(p as *mut Value, item.val);
        std::ptr::write(p.add(TAIL_OFF - 4) as *mut u32, item.meta);
        let t = p.add(TAIL_OFF);
        let flag = if ttl.is_some() { TTL_FLAG } else { 0 };
        if h == 1 {
            *t = key.len() as u8 | flag;
        } else {
            *t = LONG_KEY | flag;
            std::ptr::copy_nonoverlapping((key.len() as u32).to_le_bytes().as_ptr(), t.add(1), 4);
        }
        std::ptr::copy_nonoverlapping(key.as_ptr(), t.add(h), key.len());
        if let Some((at, vi)) = ttl {
            let x = t.add(h + key.len());
            std::ptr::copy_nonoverlapping(at.to_le_bytes().as_ptr(), x, 8);
            std::ptr::copy_nonoverlapping((vi as u32).to_le_bytes().as_ptr(), x.add(8), 4);
        }
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

const ADDR_BITS: u32 = 45;
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;
const DIST_SHIFT: u32 = ADDR_BITS;
const DIST_ONE: u64 = 1 << DIST_SHIFT;
const MAX_DIST: u32 = 127;
const NEXT_SHIFT: u32 = 52;
/// Hash bits kept above the home bits.
const NEXT_BITS: u32 = 12;
const NEXT_MASK: u64 = (1 << NEXT_BITS) - 1;

#[inline]
fn sptr(s: u64) -> *mut u8 {
    ((s & ADDR_MASK) << 3) as usize as *mut u8
}

#[inline]
fn sdist(s: u64) -> u32 {
    ((s >> DIST_SHIFT) & 0x7F) as u32
}

#[inline]
fn snext(s: u64) -> u64 {
    s >> NEXT_SHIFT
}

#[inline]
fn mk(p: *mut u8, dist: u32, next: u64) -> u64 {
    let a = p as usize as u64;
    assert!(a >> (ADDR_BITS + 3) == 0 && a & 7 == 0, "node address above 2^48 or unaligned");
    (a >> 3) | ((dist as u64) << DIST_SHIFT) | ((next & NEXT_MASK) << NEXT_SHIFT)
}

/// The slot word `s` moved to a table of `2^bits` slots: its home there
/// and its next bits, given the old table's `2^old_bits` slots and its
/// home `home` in it. Needs `bits - old_bits` known next bits to grow.
#[inline]
fn rehome(s: u64, home: usize, old_bits: u32, bits: u32) -> (usize, u64) {
    let next = snext(s);
    if bits >= old_bits {
        let k = bits - old_bits;
        (home | (((next & ((1 << k) - 1)) as usize) << old_bits), next >> k)
    } else {
        let k = old_bits - bits;
        let dropped = (home >> bits) as u64;
        (home & ((1 << bits) - 1), ((next << k) | dropped) & NEXT_MASK)
    }
}

const MIN_SLOTS: usize = 8;

/// Tables from this many slots resize incrementally (smaller ones at once:
/// rebuilding 4K slots costs less than a moving step's bookkeeping over it).
pub const INCREMENTAL_MIN: usize = 1 << 12;

/// Keys moved per insert or removal during a resize (and up to 8 times as
/// many homes visited). A doubling starts at 7/8 load and must end before
/// the new array is 7/8 full, i.e. within 7/8 of the old size in inserts:
/// at least 8/7 homes each, here about 4.5.
pub const MOVE_STEP: usize = 4;

/// Marks a slot index (from [`KeyTable::slot_of`]) as one of the old array.
const OLD: usize = 1 << (usize::BITS - 1);

pub struct KeyTable {
    slots: Vec<u64>,
    len: usize,
    /// How many low bits of every slot's `next` are the key's hash bits
    /// just above its home bits (the rest is unknown).
    valid: u32,
    /// A resize in progress (Redis's `ht_table[0]` while rehashing): the
    /// previous slot array, whose homes below `moved` are in `slots` now.
    /// Empty when no resize is in progress.
    old: Vec<u64>,
    /// `valid` of the old array.
    old_valid: u32,
    /// Old homes already moved (Redis's `rehashidx`).
    moved: usize,
    /// The next doubling's array, faulted in ahead of it.
    next: Prefault<u64>,
    /// The nodes of the keys that have a TTL (each knows its index here).
    volatile: Vec<NonNull<u8>>,
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
            valid: NEXT_BITS,
            old: Vec::new(),
            old_valid: NEXT_BITS,
            moved: 0,
            next: Prefault::default(),
            volatile: Vec::new(),
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

    /// Slots allocated (the new array's, while a resize is in progress).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether an incremental resize is in progress.
    #[inline]
    pub fn resizing(&self) -> bool {
        !self.old.is_empty()
    }

    /// Bytes of table structure: the slot array and each node minus its key
    /// bytes and TTL bytes (the entry header and the value struct), for
    /// INFO's overhead and MEMORY STATS' `overhead.hashtable.main`.
    pub fn overhead_bytes(&self) -> usize {
        (self.slots.capacity() + self.old.capacity()) * 8 + self.next.bytes() + self.node_bytes
    }

    /// What the TTLs cost: the `volatile` array and each TTL's bytes in its
    /// node (MEMORY STATS' `overhead.hashtable.expires`).
    pub fn ttl_bytes(&self) -> usize {
        self.volatile.capacity() * 8 + self.volatile.len() * TTL_BYTES
    }

    /// Keys with a TTL.
    #[inline]
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    #[inline]
    fn bits(&self) -> u32 {
        self.slots.len().trailing_zeros()
    }

    /// (home, next bits) of hash `h` at the current size.
    #[inline]
    fn split(&self, h: u64) -> (usize, u64) {
        (h as usize & self.mask(), (h >> self.bits()) & NEXT_MASK)
    }

    /// The slot index holding `key` (flagged [`OLD`] in the old array).
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let h = self.hash(key);
        if !self.old.is_empty() && h as usize & (self.old.len() - 1) >= self.moved {
            if let Some(i) = probe(&self.old, self.old_valid, h, key) {
                return Some(i | OLD);
            }
        }
        probe(&self.slots, self.valid, h, key)
    }

    /// The slot word at index `i` (from `find`).
    #[inline]
    fn word(&self, i: usize) -> u64 {
        if i & OLD != 0 {
            self.old[i & !OLD]
        } else {
            self.slots[i]
        }
    }

    #[inline]
    fn word_mut(&mut self, i: usize) -> &mut u64 {
        if i & OLD != 0 {
            &mut self.old[i & !OLD]
        } else {
            &mut self.slots[i]
        }
    }

    /// The slot holding `key`, for [`KeyTable::at`] / [`KeyTable::at_mut`]
    /// (valid until the table is next changed).
    #[inline]
    pub fn slot_of(&self, key: &[u8]) -> Option<usize> {
        self.find(key)
    }

    /// The entry in an occupied slot (from [`KeyTable::slot_of`]).
    #[inline]
    pub fn at(&self, i: usize) -> &Entry {
        let s = self.word(i);
        assert!(s != 0, "an empty slot");
        // SAFETY: an occupied slot points at a live node, borrowed with the table.
        unsafe { entry_ref(sptr(s)) }
    }

    #[inline]
    pub fn at_mut(&mut self, i: usize) -> &mut Entry {
        let s = self.word(i);
        assert!(s != 0, "an empty slot");
        // SAFETY: as `at`, borrowed mutably with the table.
        unsafe { entry_mut(sptr(s)) }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        // SAFETY: a live node, borrowed with the table.
        self.find(key).map(|i| unsafe { entry_ref(sptr(self.word(i))) })
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        // SAFETY: a live node, borrowed mutably with the table.
        self.find(key).map(|i| unsafe { entry_mut(sptr(self.word(i))) })
    }

    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Inserts a key known to be absent, with its expiry (0 = none).
    pub fn insert_new(&mut self, key: &[u8], item: Item, expire_at: u64) {
        if !self.old.is_empty() {
            self.move_homes(MOVE_STEP);
        } else if self.slots.len() >= INCREMENTAL_MIN {
            // SAFETY: zero is a u64.
            unsafe { self.next.step(self.len, self.slots.len() / 8 * 7, self.slots.len() * 2) };
        }
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            // A resize still in progress here (only a shrink's can be) ends first.
            self.finish_resize();
            self.start_resize((self.slots.len() * 2).max(MIN_SLOTS));
        }
        let ttl = (expire_at != 0).then_some((expire_at, self.volatile.len()));
        let node = new_node(key, item, ttl);
        if ttl.is_some() {
            self.volatile.push(node);
        }
        self.len += 1;
        self.node_bytes += node_size(key.len(), false) - key.len();
        let h = self.hash(key);
        self.place(node.as_ptr(), h);
    }

    /// Sets (`at` != 0) or removes the TTL of a stored key; false if absent.
    /// Adding or removing one reallocates the node at its size.
    pub fn set_expire(&mut self, key: &[u8], at: u64) -> bool {
        let Some(i) = self.find(key) else { return false };
        let s = self.word(i);
        let p = sptr(s);
        // SAFETY: a live node, borrowed with the table.
        let e = unsafe { entry_mut(p) };
        let had = e.expire_at() != 0;
        if had && at != 0 {
            e.set_expire_in_place(at);
            return true;
        }
        if !had && at == 0 {
            return true;
        }
        let ttl = if had {
            self.unvolatile(e.vol_idx());
            None
        } else {
            Some((at, self.volatile.len()))
        };
        // SAFETY: the node is unlinked below (its slot is overwritten).
        let item = unsafe { take_node(p) };
        let node = new_node(key, item, ttl);
        if ttl.is_some() {
            self.volatile.push(node);
        }
        *self.word_mut(i) = (s & !ADDR_MASK) | (mk(node.as_ptr(), 0, 0) & ADDR_MASK);
        true
    }

    /// Removes entry `vi` of `volatile` (the last one takes its place).
    fn unvolatile(&mut self, vi: usize) {
        self.volatile.swap_remove(vi);
        if let Some(&moved) = self.volatile.get(vi) {
            // SAFETY: a live node of this table.
            unsafe { entry_mut(moved.as_ptr()) }.set_vol_idx(vi);
        }
    }

    /// A random key with a TTL, uniform over them.
    pub fn random_volatile(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &Entry)> {
        if self.volatile.is_empty() {
            return None;
        }
        let p = self.volatile[(rand() % self.volatile.len() as u64) as usize];
        // SAFETY: a live node, borrowed with the table.
        let e = unsafe { entry_ref(p.as_ptr()) };
        Some((e.key(), e))
    }

    /// The keys that have a TTL.
    pub fn iter_volatile(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.volatile.iter().map(|p| {
            // SAFETY: a live node, borrowed with the table.
            let e = unsafe { entry_ref(p.as_ptr()) };
            (e.key(), e)
        })
    }

    /// Places a node (already counted in `len`) in the new array, growing
    /// the table at once if a probe run would exceed the displacement cap.
    fn place(&mut self, mut p: *mut u8, h: u64) {
        let (mut home, mut next) = self.split(h);
        loop {
            match place_into(&mut self.slots, mk(p, 0, next), home) {
                Ok(()) => return,
                Err(homeless) => {
                    // Another node was displaced out of the cap: grow, then place it.
                    self.resize(self.slots.len() * 2);
                    p = homeless;
                    // SAFETY: a live node.
                    (home, next) = self.split(self.hash(unsafe { entry_ref(p) }.key()));
                }
            }
        }
    }

    /// Sizes the table for `total` keys (at once: a pre-size for a load);
    /// false if the slot array cannot be allocated (the table is then
    /// unchanged).
    pub fn try_reserve(&mut self, total: usize) -> bool {
        let Some(want) = total.checked_mul(8).map(|x| x / 7 + 1).and_then(usize::checked_next_power_of_two) else {
            return false;
        };
        if want <= self.slots.len() {
            return true;
        }
        let mut probe: Vec<u64> = Vec::new();
        if probe.try_reserve_exact(want).is_err() {
            return false;
        }
        drop(probe);
        self.resize(want);
        true
    }

    /// Starts resizing to `n` slots (a power of two, no resize in
    /// progress): incrementally for a table of [`INCREMENTAL_MIN`] slots or
    /// more, the old array moving in over the next operations; else at once.
    fn start_resize(&mut self, n: usize) {
        debug_assert!(self.old.is_empty());
        if self.slots.len() < INCREMENTAL_MIN || self.len == 0 {
            self.resize(n);
            return;
        }
        // A doubling's array was faulted in beforehand, 4 KiB at a time
        // (`Prefault`), and gets huge pages once the resize ends
        // (khugepaged collapses it in the background).
        let new = self.next.take(n).unwrap_or_else(|| {
            let v = crate::util::alloc::zeroed_words(n);
            crate::util::alloc::advise_pages(&v, false);
            v
        });
        self.old_valid = self.valid;
        self.valid = next_valid(self.valid, self.bits(), n.trailing_zeros());
        self.old = std::mem::replace(&mut self.slots, new);
        self.moved = 0;
        self.move_homes(MOVE_STEP);
    }

    /// Moves old homes into the new array, in home order, until `keys`
    /// keys have moved or `8 * keys` homes have been visited (a shrink's
    /// old array is mostly empty homes), and ends the resize when none is
    /// left; whether one is still in progress. A home's keys leave the old
    /// array by backward-shift deletion, so what remains there is a valid
    /// table for `find`.
    pub fn move_homes(&mut self, keys: usize) -> bool {
        if self.old.is_empty() {
            return false;
        }
        let old_bits = self.old.len().trailing_zeros();
        let (bits, mask) = (self.bits(), self.mask());
        let omask = self.old.len() - 1;
        let fast = bits < old_bits || bits - old_bits <= self.old_valid;
        let end = self.moved.saturating_add(keys.saturating_mul(8)).min(self.old.len());
        let mut budget = keys;
        while self.moved < end && budget > 0 {
            let b = self.moved;
            let (mut i, mut k) = (b, 0u32);
            while k <= MAX_DIST {
                let s = self.old[i];
                if s == 0 || sdist(s) < k {
                    break;
                }
                if sdist(s) > k {
                    // A key of an earlier home (runs are sorted by home).
                    i = (i + 1) & omask;
                    k += 1;
                    continue;
                }
                // A key of home `b`: the next slot shifts into `i`.
                backshift(&mut self.old, i);
                budget = budget.saturating_sub(1);
                let (home, next) = if fast {
                    rehome(s, b, old_bits, bits)
                } else {
                    // SAFETY: a live node.
                    let h = self.hasher.hash_one(unsafe { entry_ref(sptr(s)) }.key());
                    (h as usize & mask, (h >> bits) & NEXT_MASK)
                };
                if let Err(homeless) = place_into(&mut self.slots, (s & ADDR_MASK) | (next << NEXT_SHIFT), home) {
                    // The displacement cap in the new array: rebuild both
                    // at twice its size at once, then place the node left out.
                    self.resize(self.slots.len() * 2);
                    // SAFETY: a live node.
                    let h = self.hash(unsafe { entry_ref(homeless) }.key());
                    self.place(homeless, h);
                    return false;
                }
            }
            self.moved += 1;
        }
        if self.moved == self.old.len() {
            self.old = Vec::new();
            self.moved = 0;
            advise_huge(&self.slots);
            return false;
        }
        true
    }

    /// Ends a resize in progress at once.
    fn finish_resize(&mut self) {
        self.move_homes(usize::MAX);
    }

    /// Rebuilds the slots at `n` (a power of two) positions at once, taking
    /// in the old array of a resize in progress: from the slot words alone
    /// while enough next bits are known, else by rehashing every name (and
    /// then all next bits are known again).
    fn resize(&mut self, mut n: usize) {
        let old = std::mem::take(&mut self.old);
        let cur = std::mem::take(&mut self.slots);
        self.moved = 0;
        self.next.clear();
        let sources = [(&old, self.old_valid), (&cur, self.valid)];
        loop {
            let bits = n.trailing_zeros();
            let mut new = crate::util::alloc::zeroed_words(n);
            advise_huge(&new);
            let mut valid = NEXT_BITS;
            let mut ok = true;
            'all: for &(src, src_valid) in &sources {
                if src.is_empty() {
                    continue;
                }
                let (sbits, smask) = (src.len().trailing_zeros(), src.len() - 1);
                let fast = bits < sbits || bits - sbits <= src_valid;
                valid = valid.min(if fast { next_valid(src_valid, sbits, bits) } else { NEXT_BITS });
                for (i, &s) in src.iter().enumerate().filter(|(_, s)| **s != 0) {
                    let (home, next) = if fast {
                        rehome(s, i.wrapping_sub(sdist(s) as usize) & smask, sbits, bits)
                    } else {
                        // SAFETY: a live node.
                        let h = self.hasher.hash_one(unsafe { entry_ref(sptr(s)) }.key());
                        (h as usize & (n - 1), (h >> bits) & NEXT_MASK)
                    };
                    if place_into(&mut new, (s & ADDR_MASK) | (next << NEXT_SHIFT), home).is_err() {
                        ok = false;
                        break 'all;
                    }
                }
            }
            if ok {
                self.valid = valid;
                self.slots = new;
                return;
            }
            n *= 2;
        }
    }

    /// Removes the key; its entry and expiry (0 = none) back.
    pub fn remove(&mut self, key: &[u8]) -> Option<(Item, u64)> {
        let i = self.find(key)?;
        let p = sptr(self.word(i));
        // SAFETY: a live node.
        let e = unsafe { entry_ref(p) };
        let at = e.expire_at();
        if at != 0 {
            let vi = e.vol_idx();
            self.unvolatile(vi);
        }
        if i & OLD != 0 {
            backshift(&mut self.old, i & !OLD);
        } else {
            backshift(&mut self.slots, i);
        }
        self.len -= 1;
        self.node_bytes -= node_size(key.len(), false) - key.len();
        self.move_homes(MOVE_STEP);
        self.next.shrunk(self.len, self.slots.len() / 8 * 7);
        self.maybe_shrink();
        // SAFETY: unlinked from the table: nothing refers to it.
        Some((unsafe { take_node(p) }, at))
    }

    /// Shrinks when under 1/8 full, as the chained table does (not while
    /// a resize is in progress).
    fn maybe_shrink(&mut self) {
        let cap = self.slots.len();
        if self.len == 0 {
            self.slots = Vec::new();
            self.old = Vec::new();
            self.next.clear();
            self.moved = 0;
            self.valid = NEXT_BITS;
        } else if self.old.is_empty() && cap > MIN_SLOTS && self.len * 8 < cap {
            let want = (self.len * 8 / 7 + 1).next_power_of_two().max(MIN_SLOTS);
            if want < cap {
                self.start_resize(want);
            }
        }
    }

    /// Frees every node.
    pub fn clear(&mut self) {
        for s in std::mem::take(&mut self.slots).into_iter().chain(std::mem::take(&mut self.old)) {
            if s != 0 {
                // SAFETY: each node is freed once; the slots are gone.
                drop(unsafe { take_node(sptr(s)) });
            }
        }
        self.len = 0;
        self.node_bytes = 0;
        self.volatile = Vec::new();
        self.valid = NEXT_BITS;
        self.moved = 0;
        self.next.clear();
    }

    /// The smaller and the larger slot array of a resize in progress.
    fn pair(&self) -> (&[u64], &[u64]) {
        if self.old.len() < self.slots.len() {
            (&self.old, &self.slots)
        } else {
            (&self.slots, &self.old)
        }
    }

    /// One SCAN step: the keys of one home, then the next cursor (0 = done).
    /// Reverse-binary increment, as Redis's dictScan: every key present for
    /// the whole scan is returned at least once across resizes. During one,
    /// a step covers a home of the smaller array and every home of the
    /// larger one that expands it, in both arrays, as dictScan does with
    /// its two tables: so a key is seen wherever the moving has put it.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &Entry)) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        if self.old.is_empty() {
            let m0 = self.mask() as u64;
            visit_home(&self.slots, (cursor & m0) as usize, |e| f(e.key(), e));
            return super::dict::scan_next(cursor, m0);
        }
        let (small, big) = self.pair();
        let (m0, m1) = ((small.len() - 1) as u64, (big.len() - 1) as u64);
        let mut v = cursor;
        visit_home(small, (v & m0) as usize, |e| f(e.key(), e));
        loop {
            visit_home(big, (v & m1) as usize, |e| f(e.key(), e));
            v = super::dict::scan_next(v, m1);
            if v & (m0 ^ m1) == 0 {
                return v;
            }
        }
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
    /// once, and "visited already" is `snapshot_pos(key) < pos`, which is
    /// what the copy-on-write hook asks (keyspace/cow.rs). During a resize
    /// the home is the smaller array's, and its range is read in both.
    pub fn snapshot_step(&self, pos: u64, mut f: impl FnMut(&[u8], &Entry)) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let mut keep = |e: &Entry| {
            if self.hasher.hash_one(e.key()).reverse_bits() >= pos {
                f(e.key(), e);
            }
        };
        let (small, big) = if self.old.is_empty() { (&self.slots[..], &[][..]) } else { self.pair() };
        let sbits = small.len().trailing_zeros();
        let idx = (pos.reverse_bits() as usize) & (small.len() - 1);
        visit_home(small, idx, &mut keep);
        if !big.is_empty() {
            for j in 0..big.len() >> sbits {
                visit_home(big, idx | (j << sbits), &mut keep);
            }
        }
        snapshot_next(idx, sbits)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.old.iter().chain(self.slots.iter()).filter(|s| **s != 0).map(|&s| {
            // SAFETY: a live node, borrowed with the table.
            let e = unsafe { entry_ref(sptr(s)) };
            (e.key(), e)
        })
    }

    /// A random entry, uniform over the keys: random slots (of both arrays
    /// during a resize) until an occupied one. `rand` yields u64s.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &Entry)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask() as u64;
        let (a, total) = (self.old.len() as u64, (self.old.len() + self.slots.len()) as u64);
        loop {
            let s = if a == 0 {
                self.slots[(rand() & mask) as usize]
            } else {
                let r = rand() % total;
                if r < a {
                    self.old[r as usize]
                } else {
                    self.slots[(r - a) as usize]
                }
            };
            if s != 0 {
                // SAFETY: a live node, borrowed with the table.
                let e = unsafe { entry_ref(sptr(s)) };
                return Some((e.key(), e));
            }
        }
    }
}

/// `valid` after moving slot words from a `2^old_bits` to a `2^bits` array:
/// a doubling uses a known next bit, a halving gives one back; a growth
/// with too few left rehashes every name (all known again).
#[inline]
fn next_valid(valid: u32, old_bits: u32, bits: u32) -> u32 {
    if bits >= old_bits {
        valid.checked_sub(bits - old_bits).unwrap_or(NEXT_BITS)
    } else {
        (valid + (old_bits - bits)).min(NEXT_BITS)
    }
}

/// The slot index of `key` (hash `h`) in `slots`, whose words have `valid`
/// known next bits.
#[inline]
fn probe(slots: &[u64], valid: u32, h: u64, key: &[u8]) -> Option<usize> {
    let mask = slots.len() - 1;
    let home = h as usize & mask;
    let vmask = (1u64 << valid) - 1;
    let tag = (h >> slots.len().trailing_zeros()) & vmask;
    let mut i = home;
    let mut d = 0u32;
    loop {
        let s = slots[i];
        if s == 0 || sdist(s) < d {
            return None;
        }
        // SAFETY: occupied slots point at live nodes.
        if sdist(s) == d && snext(s) & vmask == tag && unsafe { entry_ref(sptr(s)) }.key() == key {
            return Some(i);
        }
        d += 1;
        if d > MAX_DIST {
            return None;
        }
        i = (i + 1) & mask;
    }
}

/// Backward-shift deletion of slot `i`: the run after it moves back one.
fn backshift(slots: &mut [u64], mut i: usize) {
    let mask = slots.len() - 1;
    loop {
        let n = (i + 1) & mask;
        let s = slots[n];
        if s == 0 || sdist(s) == 0 {
            slots[i] = 0;
            return;
        }
        slots[i] = s - DIST_ONE;
        i = n;
    }
}

/// Calls `f` for every key whose home is slot `b` of `slots`.
#[inline]
fn visit_home<'a>(slots: &'a [u64], b: usize, mut f: impl FnMut(&'a Entry)) {
    let mask = slots.len() - 1;
    let mut i = b;
    for k in 0..=MAX_DIST {
        let s = slots[i];
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

/// Where a snapshot walk goes after home `idx` of a `2^bits` table: the
/// first position past the home's range (`None`: the walk is over).
#[inline]
fn snapshot_next(idx: usize, bits: u32) -> Option<u64> {
    (idx as u64).reverse_bits().checked_add(1u64 << (64 - bits))
}

/// Asks for transparent huge pages under a big slot array: a lookup is a
/// random access into it, and 4 KiB pages would cost a TLB miss on most of
/// them. Advisory: without THP nothing changes.
fn advise_huge(slots: &[u64]) {
    crate::util::alloc::advise_pages(slots, true);
}

/// Robin Hood insertion of slot word `cur` (displacement 0) at its `home`
/// in `slots`; the node left without a place if a run would exceed
/// [`MAX_DIST`].
fn place_into(slots: &mut [u64], mut cur: u64, home: usize) -> Result<(), *mut u8> {
    let mask = slots.len() - 1;
    let mut i = home;
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
        cur += DIST_ONE;
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
            t.insert_new(format!("k{i}").as_bytes(), item(i), if i % 3 == 0 { 1000 + i as u64 } else { 0 });
        }
        t.insert_new(&long, item(-2), 0);
        assert_eq!(t.volatile_len(), 1667);
        assert_eq!(t.len(), 5001);
        assert_eq!(t.get(&long).map(|e| e.key().len()), Some(300));
        for i in 0..5000i64 {
            let e = t.get(format!("k{i}").as_bytes()).expect("present");
            assert_eq!((int(e), e.key(), e.meta()), (i, format!("k{i}").as_bytes(), 7));
            assert_eq!(e.expire_at(), if i % 3 == 0 { 1000 + i as u64 } else { 0 });
        }
        t.get_mut(b"k3").expect("present").val = Value::Int(33);
        assert_eq!(t.get(b"k3").map(int), Some(33));
        assert!(t.get(b"nope").is_none());
        for i in 0..5000i64 {
            let (x, at) = t.remove(format!("k{i}").as_bytes()).expect("present");
            assert_eq!(x.val, Value::Int(if i == 3 { 33 } else { i }));
            assert_eq!(at, if i % 3 == 0 { 1000 + i as u64 } else { 0 });
            assert!(!t.contains(format!("k{i}").as_bytes()));
        }
        assert!(t.remove(&long).is_some());
        assert!(t.is_empty());
        assert_eq!(t.volatile_len(), 0);
        assert_eq!(t.capacity(), 0);
        assert_eq!(t.overhead_bytes(), 0);
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_resizes() {
        let mut t = KeyTable::default();
        for i in 0..500 {
            t.insert_new(format!("stable{i}").as_bytes(), item(i), 0);
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
                    t.insert_new(k.as_bytes(), item(0), 0);
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
            t.insert_new(format!("stable{i}").as_bytes(), item(i), 0);
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
                    t.insert_new(format!("tmp{step}-{j}").as_bytes(), item(0), 0);
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
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut x = 0x2545F4914F6CDD1Du64;
        for _ in 0..60_000 {
            let r = crate::util::rand::next(&mut x);
            let k = (r % 3000) as u32;
            let key = format!("k{k}");
            if r & (1 << 40) == 0 {
                if model.insert(k, 0).is_none() {
                    t.insert_new(key.as_bytes(), item(k as i64), 0);
                } else {
                    // Add, change or remove its TTL: the node moves.
                    let at = (r >> 20) % 3;
                    assert!(t.set_expire(key.as_bytes(), at));
                    model.insert(k, at);
                }
            } else if let Some(at) = model.remove(&k) {
                assert_eq!(t.remove(key.as_bytes()).map(|x| x.1), Some(at));
            }
        }
        assert_eq!(t.len(), model.len());
        assert_eq!(t.volatile_len(), model.values().filter(|a| **a != 0).count());
        for (k, at) in &model {
            assert_eq!(t.get(format!("k{k}").as_bytes()).map(|e| e.expire_at()), Some(*at));
        }
        for (i, (_, e)) in t.iter_volatile().enumerate() {
            assert_eq!(e.vol_idx(), i);
        }
        check_runs(&t);
        for k in model.keys() {
            assert!(t.contains(format!("k{k}").as_bytes()));
        }
    }

    /// Each node at its home plus its displacement, each run sorted by home,
    /// the known next bits equal to the hash's; in both arrays during a
    /// resize, with no key of an already moved home left in the old one.
    fn check_runs(t: &KeyTable) {
        check_array(t, &t.slots, t.valid, 0);
        if !t.old.is_empty() {
            check_array(t, &t.old, t.old_valid, t.moved);
        }
        let n = t.old.iter().chain(&t.slots).filter(|s| **s != 0).count();
        assert_eq!(n, t.len());
    }

    fn check_array(t: &KeyTable, slots: &[u64], valid: u32, moved: usize) {
        let mask = slots.len() - 1;
        let bits = slots.len().trailing_zeros();
        for (i, &s) in slots.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let e = unsafe { entry_ref(sptr(s)) };
            let h = t.hash(e.key());
            let home = h as usize & mask;
            assert!(home >= moved, "a key of moved home {home} left in the old array");
            assert_eq!((home + sdist(s) as usize) & mask, i);
            let vmask = (1u64 << valid) - 1;
            assert_eq!(snext(s) & vmask, (h >> bits) & vmask, "next bits of slot {i}");
            let prev = slots[(i + mask) & mask];
            if sdist(s) > 0 {
                assert!(prev != 0 && sdist(prev) + 1 >= sdist(s), "a gap or an unsorted run before slot {i}");
            }
        }
    }

    /// A doubling of a big table leaves the old array to the operations
    /// that follow (no insert rebuilds it), and they finish moving it
    /// before the new array needs to grow.
    #[test]
    fn a_big_table_grows_incrementally_over_the_inserts_that_follow() {
        let mut t = KeyTable::default();
        let key = |i: u32| format!("key:{i}");
        let mut i = 0;
        while !t.resizing() {
            t.insert_new(key(i).as_bytes(), item(i as i64), 0);
            i += 1;
        }
        assert!(t.old.len() >= INCREMENTAL_MIN && t.slots.len() == t.old.len() * 2);
        assert!(t.moved <= 8 * MOVE_STEP, "moved {} homes at once", t.moved);
        let start = i;
        let old_len = t.old.len();
        while t.resizing() {
            t.insert_new(key(i).as_bytes(), item(i as i64), 0);
            i += 1;
            if i % 512 == 0 {
                check_runs(&t);
            }
        }
        assert!(((i - start) as usize) <= old_len / MOVE_STEP + 1);
        assert!((t.len() + 1) * 8 <= t.slots.len() * 7, "moved before the new array filled");
        check_runs(&t);
        for j in 0..i {
            assert_eq!(t.get(key(j).as_bytes()).map(int), Some(j as i64), "key:{j}");
        }
    }

    /// The doubling's array is allocated at 15/16 of the load that grows
    /// the table and faulted in by the inserts up to 31/32 of it, then the
    /// doubling starts on it; removals well below that load give it back.
    #[test]
    fn the_doubling_starts_on_an_array_faulted_in_beforehand() {
        let mut t = KeyTable::default();
        let key = |i: usize| format!("key:{i}");
        let mut i = 0;
        let add = |t: &mut KeyTable, i: &mut usize| {
            t.insert_new(key(*i).as_bytes(), item(*i as i64), 0);
            *i += 1;
        };
        while t.slots.len() < INCREMENTAL_MIN * 4 || t.len() * 16 < t.slots.len() / 8 * 7 * 15 {
            assert!(t.next.array().is_empty() || t.slots.len() >= INCREMENTAL_MIN);
            add(&mut t, &mut i);
        }
        add(&mut t, &mut i);
        let cap = t.slots.len();
        assert_eq!(t.next.array().len(), cap * 2, "allocated at 15/16 of the growth load");
        while t.len() < cap / 8 * 7 * 31 / 32 + 1 {
            add(&mut t, &mut i);
        }
        assert_eq!(t.next.touched(), (cap * 2 * 8).div_ceil(4096), "every page faulted in by 31/32");
        let ptr = t.next.array().as_ptr();
        assert!(t.next.array().iter().all(|w| *w == 0));
        while !t.resizing() {
            add(&mut t, &mut i);
        }
        assert_eq!(t.slots.as_ptr(), ptr, "the doubling took the prefaulted array");
        assert!(t.next.array().is_empty());
        check_runs(&t);
        while t.resizing() {
            add(&mut t, &mut i);
        }
        let cap = t.slots.len();
        while t.next.array().is_empty() {
            add(&mut t, &mut i);
        }
        let mut j = 0;
        while t.len() * 4 >= cap / 8 * 7 * 3 {
            assert!(t.remove(key(j).as_bytes()).is_some());
            j += 1;
        }
        assert!(t.next.array().is_empty(), "given back under 3/4 of the growth load");
        for k in j..i {
            assert_eq!(t.get(key(k).as_bytes()).map(int), Some(k as i64), "key:{k}");
        }
    }

    /// Random inserts, removals and TTL changes across many incremental
    /// grows and shrinks: every key stays findable at every step, the
    /// arrays stay valid, and random / iter / volatile see exactly the keys.
    #[test]
    fn keys_stay_findable_while_resizes_are_in_progress() {
        let mut t = KeyTable::default();
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut x = 0x9E3779B97F4A7C15u64;
        let mut during = 0u32;
        for round in 0..6u32 {
            // Grow to 40K keys, then shrink to a few hundred.
            let (target, grow) = if round % 2 == 0 { (40_000usize, true) } else { (300, false) };
            while if grow { model.len() < target } else { model.len() > target } {
                let r = crate::util::rand::next(&mut x);
                let k = (r % 60_000) as u32;
                let key = format!("k{k}");
                let insert = if grow { r & (3 << 40) != 0 } else { r & (3 << 40) == 0 };
                if insert {
                    if model.insert(k, 0).is_none() {
                        t.insert_new(key.as_bytes(), item(k as i64), 0);
                    } else {
                        let at = (r >> 20) % 3;
                        assert!(t.set_expire(key.as_bytes(), at));
                        model.insert(k, at);
                    }
                } else if let Some((&k, &at)) = model.iter().next() {
                    assert_eq!(t.remove(format!("k{k}").as_bytes()).map(|x| x.1), Some(at));
                    model.remove(&k);
                }
                if t.resizing() {
                    during += 1;
                    if during.is_multiple_of(997) {
                        check_runs(&t);
                        for (k, at) in &model {
                            assert_eq!(t.get(format!("k{k}").as_bytes()).map(|e| e.expire_at()), Some(*at), "k{k}");
                        }
                        assert_eq!(t.iter().count(), model.len());
                        let (_, e) = t.random(|| crate::util::rand::next(&mut x)).expect("a key");
                        assert!(model.contains_key(&(int(e) as u32)));
                    }
                }
            }
        }
        assert!(during > 10_000, "few operations ran during a resize: {during}");
        check_runs(&t);
        assert_eq!(t.len(), model.len());
        assert_eq!(t.volatile_len(), model.values().filter(|a| **a != 0).count());
        for (i, (_, e)) in t.iter_volatile().enumerate() {
            assert_eq!(e.vol_idx(), i);
        }
    }

    /// SCAN and the snapshot walk keep their guarantees when the old array
    /// is being moved between their steps.
    #[test]
    fn scan_and_snapshot_walk_miss_nothing_while_a_resize_moves_keys() {
        for walk in [false, true] {
            let mut t = KeyTable::default();
            for i in 0..6000 {
                t.insert_new(format!("stable{i}").as_bytes(), item(i), 0);
            }
            let mut seen: HashMap<Vec<u8>, u32> = Default::default();
            let (mut cursor, mut pos) = (0u64, Some(0u64));
            let (mut step, mut during, mut tmp, mut rm) = (0u32, 0u32, 0u32, 0u32);
            loop {
                if walk {
                    let Some(p) = pos else { break };
                    pos = t.snapshot_step(p, |k, _| *seen.entry(k.to_vec()).or_default() += 1);
                } else {
                    cursor = t.scan(cursor, |k, _| *seen.entry(k.to_vec()).or_default() += 1);
                }
                step += 1;
                during += t.resizing() as u32;
                // Grow through a doubling, then delete back through a shrink.
                if (step / 3000) % 2 == 0 {
                    t.insert_new(format!("tmp{tmp}").as_bytes(), item(0), 0);
                    tmp += 1;
                } else {
                    for _ in 0..2 {
                        if rm < tmp {
                            assert!(t.remove(format!("tmp{rm}").as_bytes()).is_some());
                            rm += 1;
                        }
                    }
                }
                if !walk && cursor == 0 {
                    break;
                }
            }
            assert!(during > 100, "walk={walk}: only {during} steps during a resize");
            for i in 0..6000 {
                let n = seen.get(format!("stable{i}").as_bytes()).copied().unwrap_or(0);
                if walk {
                    assert_eq!(n, 1, "stable{i}");
                } else {
                    assert!(n >= 1, "missed stable{i}");
                }
            }
        }
    }

    /// Growth and shrinking by several sizes at once move slots by their
    /// next bits (and rehash when none are left): every key stays findable.
    #[test]
    fn resizes_from_the_slots_alone_keep_every_key_findable() {
        let mut t = KeyTable::default();
        let key = |i: u32| format!("key:{i}");
        for i in 0..200_000 {
            t.insert_new(key(i).as_bytes(), item(i as i64), 0);
        }
        check_runs(&t);
        for i in 0..199_000 {
            assert!(t.remove(key(i).as_bytes()).is_some());
        }
        check_runs(&t);
        assert!(t.capacity() <= 8192, "shrunk: {}", t.capacity());
        assert!(t.try_reserve(300_000));
        check_runs(&t);
        for i in 0..100_000 {
            t.insert_new(key(i).as_bytes(), item(i as i64), 0);
        }
        check_runs(&t);
        for i in (0..100_000).chain(199_000..200_000) {
            assert_eq!(t.get(key(i).as_bytes()).map(int), Some(i as i64), "key:{i}");
        }
        assert_eq!(t.len(), 101_000);
    }

    #[test]
    fn random_returns_members() {
        let mut t = KeyTable::default();
        assert!(t.random(|| 7).is_none());
        t.insert_new(b"a", item(1), 0);
        t.insert_new(b"b", item(2), 5);
        let mut x = 0x9E3779B97F4A7C15u64;
        for _ in 0..50 {
            let (k, _) = t.random(|| crate::util::rand::next(&mut x)).unwrap();
            assert!(k == b"a" || k == b"b");
            assert_eq!(t.random_volatile(|| crate::util::rand::next(&mut x)).map(|(k, _)| k), Some(&b"b"[..]));
        }
    }

    /// `key:N` with a 16-byte value: one 48-byte node, nothing else (64
    /// with a TTL).
    #[test]
    fn a_short_key_with_a_short_string_is_one_48_byte_node() {
        assert_eq!(node_size(b"key:1234567".len(), false), 48);
        assert_eq!(node_size(b"key:1234567".len(), true), 64);
        assert!(matches!(Value::from_bytes(&[b'v'; 16]), Value::Small(_)));
    }
}
