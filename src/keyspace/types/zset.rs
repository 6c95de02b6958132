//! The zset value type: elements ordered by (score, member), in Redis's two
//! encodings.
//!
//! * **listpack** while small (`zset-max-listpack-entries` elements, every
//!   member at most `zset-max-listpack-value` bytes): one exact-size buffer
//!   of packed elements in (score, member) order, searched linearly like
//!   Redis's listpack. An integral score takes a zigzag varint (one byte for
//!   -64..63), any other score its 8 bytes, so a short member costs about
//!   its length plus two or three bytes.
//! * **skiplist** beyond: a chunked sorted vector — chunks of at most
//!   [`CHUNK_MAX`] elements with a Fenwick tree over their lengths, so a rank
//!   or a position is found with two binary searches and a tree walk, and an
//!   insert moves at most one chunk's elements — plus a member -> score map.
//!   Members are shared between the two (one refcounted allocation each).
//!
//! Like Redis 7.0 a set never converts back to listpack once it became
//! "skiplist".

use crate::util::varint::{get as get_varint, put as put_varint};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Largest chunk before it is split in two.
const CHUNK_MAX: usize = 256;

/// A skiplist member, shared by the order and the map: a thin pointer (8
/// bytes, the length lives in the allocation), so an element of the order
/// is 16 bytes and a map slot 16 + 1.
#[derive(Clone)]
struct Member(triomphe::ThinArc<(), u8>);

impl Member {
    fn new(m: &[u8]) -> Member {
        Member(triomphe::ThinArc::from_header_and_slice((), m))
    }
}

impl std::ops::Deref for Member {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.0.slice
    }
}

impl std::borrow::Borrow<[u8]> for Member {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self
    }
}

/// Hashes and compares as the bytes, as `Borrow<[u8]>` requires.
impl std::hash::Hash for Member {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl PartialEq for Member {
    #[inline]
    fn eq(&self, o: &Member) -> bool {
        **self == **o
    }
}

impl Eq for Member {}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

type Elem = (f64, Member);

/// (score, member) order: scores numerically (never NaN), then memcmp.
#[inline]
pub fn cmp_elem(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2).unwrap_or(Ordering::Equal).then_with(|| m1.cmp(m2))
}

/// A sorted set value.
#[derive(Clone, Debug)]
pub struct ZSet {
    repr: Repr,
}

/// 24 bytes, so `Value` holds a zset inline: a small zset is one allocation.
#[derive(Clone, Debug)]
enum Repr {
    Pack(Pack),
    Skip(Box<Skip>),
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::new(false)
    }
}

impl PartialEq for ZSet {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && self.encoding() == o.encoding() && self.iter().zip(o.iter()).all(|(a, b)| a.0.to_bits() == b.0.to_bits() && a.1 == b.1)
    }
}
/// What [`ZSet::add`] was asked to do (Redis's ZADD_IN_* flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddFlags {
    pub incr: bool,
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

/// What [`ZSet::add`] did (Redis's ZADD_OUT_* flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AddOutcome {
    Added(f64),
    Updated(f64),
    /// The element exists and kept its score (or the score was equal).
    Unchanged(f64),
    /// Nothing done (NX on an existing member, XX on a missing one, GT/LT).
    Nop,
    /// The increment produced NaN.
    Nan,
}

/// zset-max-listpack-entries and zset-max-listpack-value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

impl Limits {
    /// For a set already in "skiplist": the thresholds no longer matter.
    pub const UNBOUNDED: Limits = Limits {
        entries: usize::MAX,
        value: usize::MAX,
    };

    /// The configured thresholds (the relaxed atomics CONFIG SET publishes).
    pub fn from_config() -> Limits {
        Limits {
            entries: super::limits::zset_entries(),
            value: super::limits::zset_value(),
        }
    }
}

// -- listpack ---------------------------------------------------------------

/// Packed elements in order, each `varint(len << 1 | int) score member`:
/// `int` set = the score is an integer written as a zigzag varint, else its
/// 8 bytes (little endian). The buffer is exactly as long as its content
/// (like a listpack, reallocated on every change): no slack in small sets.
#[derive(Clone, Debug, Default)]
struct Pack {
    buf: Box<[u8]>,
    /// Number of elements.
    n: u32,
}

/// Largest magnitude written as an integer: every integer up to 2^53 is
/// exact in an f64, so the round trip is exact.
const PACK_INT_MAX: f64 = 9007199254740992.0;

/// Appends one encoded element.
fn encode(out: &mut Vec<u8>, s: f64, m: &[u8]) {
    if s.fract() == 0.0 && s.abs() <= PACK_INT_MAX {
        put_varint(out, ((m.len() as u64) << 1) | 1);
        let i = s as i64;
        put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
    } else {
        put_varint(out, (m.len() as u64) << 1);
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.extend_from_slice(m);
}

/// Decodes the element at `at`: (score, member start, member end = next element).
#[inline]
fn decode(buf: &[u8], mut at: usize) -> (f64, usize, usize) {
    let h = get_varint(buf, &mut at);
    let s = if h & 1 == 1 {
        let z = get_varint(buf, &mut at);
        ((z >> 1) as i64 ^ -((z & 1) as i64)) as f64
    } else {
        let s = f64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
        at += 8;
        s
    };
    let end = at + (h >> 1) as usize;
    (s, at, end)
}

/// Forward walk over a [`Pack`]: (score, member, byte offset of the element).
struct PackIter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = (f64, &'a [u8], usize);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let here = self.at;
        let (s, a, b) = decode(self.buf, here);
        self.at = b;
        Some((s, &self.buf[a..b], here))
    }
}

impl Pack {
    fn iter(&self) -> PackIter<'_> {
        PackIter { buf: &self.buf, at: 0 }
    }

    /// Byte offset of the element at `rank` (or the end when rank == n).
    fn offset_of(&self, rank: usize) -> usize {
        self.iter().nth(rank).map_or(self.buf.len(), |e| e.2)
    }

    /// Replaces bytes `a..b` with `with`, reallocating to the exact size.
    fn splice(&mut self, a: usize, b: usize, with: &[u8]) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        if with.len() > b - a {
            v.reserve_exact(with.len() - (b - a));
        }
        v.splice(a..b, with.iter().copied());
        self.buf = v.into_boxed_slice();
    }

    fn insert(&mut self, s: f64, m: &[u8]) {
        // Scores are stored as Redis's listpack stores them: -0 reads back as 0.
        let s = if s == 0.0 { 0.0 } else { s };
        let at = self.iter().find(|e| cmp_elem(e.0, e.1, s, m) != Ordering::Less).map_or(self.buf.len(), |e| e.2);
        let mut enc = Vec::with_capacity(m.len() + 10);
        encode(&mut enc, s, m);
        self.splice(at, at, &enc);
        self.n += 1;
    }

    /// (score, start, end) of the element `m`.
    fn find(&self, m: &[u8]) -> Option<(f64, usize, usize)> {
        let mut at = 0;
        while at < self.buf.len() {
            let (s, a, b) = decode(&self.buf, at);
            if &self.buf[a..b] == m {
                return Some((s, at, b));
            }
            at = b;
        }
        None
    }

    fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let (s, a, b) = self.find(m)?;
        self.splice(a, b, &[]);
        self.n -= 1;
        Some(s)
    }

    /// Removes ranks `start..end` (end <= n, start < end).
    fn remove_ranks(&mut self, start: usize, end: usize) {
        let a = self.offset_of(start);
        let b = PackIter { buf: &self.buf, at: a }.nth(end - start).map_or(self.buf.len(), |e| e.2);
        self.splice(a, b, &[]);
        self.n -= (end - start) as u32;
    }
}

// -- skiplist ---------------------------------------------------------------

/// The big encoding: the order in chunks, plus member -> score.
#[derive(Clone, Debug, Default)]
struct Skip {
    chunks: Vec<Vec<Elem>>,
    /// Fenwick tree (1-based) over `chunks[i].len()`.
    fen: Vec<usize>,
    len: usize,
    dict: HashMap<Member, f64, ahash::RandomState>,
}

impl Skip {
    fn mem_usage(&self) -> usize {
        let mut n = self.chunks.capacity() * std::mem::size_of::<Vec<Elem>>() + self.fen.capacity() * 8;
        for c in &self.chunks {
            n += c.capacity() * std::mem::size_of::<Elem>();
            // The member's allocation: refcount, length, bytes.
            n += c.iter().map(|e| e.1.len() + 16).sum::<usize>();
        }
        n + self.dict.capacity() * (std::mem::size_of::<(Member, f64)>() + 1)
    }

    // -- Fenwick tree over chunk lengths ----------------------------------

    fn rebuild_fen(&mut self) {
        let n = self.chunks.len();
        self.fen.clear();
        self.fen.resize(n + 1, 0);
        for i in 1..=n {
            self.fen[i] += self.chunks[i - 1].len();
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                let v = self.fen[i];
                self.fen[j] += v;
            }
        }
    }

    fn fen_add(&mut self, ci: usize, delta: isize) {
        let mut i = ci + 1;
        while i < self.fen.len() {
            self.fen[i] = (self.fen[i] as isize + delta) as usize;
            i += i & i.wrapping_neg();
        }
    }

    /// Elements in chunks before `ci`.
    fn prefix(&self, ci: usize) -> usize {
        let mut i = ci;
        let mut s = 0;
        while i > 0 {
            s += self.fen[i];
            i &= i - 1;
        }
        s
    }

    /// (chunk, offset) of the element at `rank` (< len).
    fn at(&self, rank: usize) -> (usize, usize) {
        let n = self.chunks.len();
        let mut pos = 0;
        let mut rem = rank;
        let mut step = if n == 0 { 0 } else { 1usize << (usize::BITS - 1 - n.leading_zeros()) };
        while step > 0 {
            let nxt = pos + step;
            if nxt <= n && self.fen[nxt] <= rem {
                pos = nxt;
                rem -= self.fen[nxt];
            }
            step >>= 1;
        }
        (pos, rem)
    }

    fn count_while(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| c.last().is_some_and(|e| before(e.0, &e.1)));
        if ci == self.chunks.len() {
            return self.len;
        }
        self.prefix(ci) + self.chunks[ci].partition_point(|e| before(e.0, &e.1))
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = (f64, &[u8])> + '_ {
        self.chunks.iter().flat_map(|c| c.iter().map(|e| (e.0, &e.1[..])))
    }

    fn insert_elem(&mut self, s: f64, m: Member) {
        if self.chunks.is_empty() {
            self.chunks.push(Vec::with_capacity(4));
            self.rebuild_fen();
        }
        let mut ci = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|e| cmp_elem(e.0, &e.1, s, &m) == Ordering::Less));
        if ci == self.chunks.len() {
            ci -= 1;
        }
        let c = &mut self.chunks[ci];
        let off = c.partition_point(|e| cmp_elem(e.0, &e.1, s, &m) == Ordering::Less);
        c.insert(off, (s, m));
        self.len += 1;
        if c.len() > CHUNK_MAX {
            let tail = c.split_off(c.len() / 2);
            // The left half keeps the doubled buffer otherwise (4x its length).
            c.shrink_to_fit();
            self.chunks.insert(ci + 1, tail);
            self.rebuild_fen();
        } else {
            self.fen_add(ci, 1);
        }
    }

    /// (chunk, offset) of the element (s, m).
    fn find(&self, s: f64, m: &[u8]) -> Option<(usize, usize)> {
        let ci = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|e| cmp_elem(e.0, &e.1, s, m) == Ordering::Less));
        let c = self.chunks.get(ci)?;
        let off = c.partition_point(|e| cmp_elem(e.0, &e.1, s, m) == Ordering::Less);
        (off < c.len() && c[off].1[..] == *m).then_some((ci, off))
    }

    fn take_at(&mut self, ci: usize, off: usize) -> Elem {
        let e = self.chunks[ci].remove(off);
        self.len -= 1;
        let left = self.chunks[ci].len();
        if left == 0 {
            self.chunks.remove(ci);
            self.rebuild_fen();
        } else if left < CHUNK_MAX / 8 && self.merge_small(ci) {
            self.rebuild_fen();
        } else {
            Self::trim(&mut self.chunks[ci]);
            self.fen_add(ci, -1);
        }
        e
    }

    /// Gives back the buffer of a chunk that shrank to under a quarter of it.
    fn trim(c: &mut Vec<Elem>) {
        if c.capacity() > 16 && c.capacity() > 4 * c.len() {
            c.shrink_to(2 * c.len());
        }
    }

    /// Merges the small chunk `ci` into a neighbour when both fit in one
    /// chunk, so removals do not leave a trail of tiny chunks.
    fn merge_small(&mut self, ci: usize) -> bool {
        let n = self.chunks[ci].len();
        if ci + 1 < self.chunks.len() && self.chunks[ci + 1].len() + n <= CHUNK_MAX {
            let next = self.chunks.remove(ci + 1);
            self.chunks[ci].extend(next);
            return true;
        }
        if ci > 0 && self.chunks[ci - 1].len() + n <= CHUNK_MAX {
            let cur = self.chunks.remove(ci);
            self.chunks[ci - 1].extend(cur);
            return true;
        }
        Self::trim(&mut self.chunks[ci]);
        false
    }

    fn insert_new(&mut self, s: f64, m: &[u8]) {
        let m = Member::new(m);
        self.dict.insert(m.clone(), s);
        self.insert_elem(s, m);
    }

    fn set_score(&mut self, m: &[u8], old: f64, new: f64) {
        if let Some((ci, off)) = self.find(old, m) {
            let (_, mm) = self.take_at(ci, off);
            if let Some(v) = self.dict.get_mut(m) {
                *v = new;
            }
            self.insert_elem(new, mm);
        }
    }

    fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let s = self.dict.remove(m)?;
        if let Some((ci, off)) = self.find(s, m) {
            self.take_at(ci, off);
        }
        Some(s)
    }

    /// Removes ranks `start..end` (end <= len, start < end).
    fn remove_ranks(&mut self, start: usize, end: usize) {
        let mut n = end - start;
        let (mut ci, mut off) = self.at(start);
        while n > 0 {
            let c = &mut self.chunks[ci];
            let k = (c.len() - off).min(n);
            for (_, m) in c.drain(off..off + k) {
                self.dict.remove(&m[..]);
            }
            n -= k;
            if c.is_empty() {
                self.chunks.remove(ci);
            } else {
                Self::trim(c);
                ci += 1;
            }
            off = 0;
        }
        self.len -= end - start;
        self.rebuild_fen();
    }

    /// One ZSCAN step, walked in the order of a fixed per-set hash of the
    /// member (the cursor is the next hash value), so every member present
    /// for the whole scan is returned, however the set changes in between.
    fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<(f64, &[u8])>) {
        let hs = self.dict.hasher();
        let lo = cursor.max(1);
        let mut cand: Vec<(u64, f64, &[u8])> = self
            .dict
            .iter()
            .filter_map(|(m, s)| {
                let k = (hs.hash_one(&m[..]) >> 1) + 1;
                (k >= lo).then_some((k, *s, &m[..]))
            })
            .collect();
        let total = cand.len();
        let count = count.max(1);
        let mut next = 0;
        if total > count {
            cand.select_nth_unstable_by_key(count - 1, |c| c.0);
            let kth = cand[count - 1].0;
            cand.retain(|c| c.0 <= kth);
            if cand.len() < total {
                next = kth + 1;
            }
        }
        cand.sort_unstable_by_key(|c| c.0);
        (next, cand.into_iter().map(|c| (c.1, c.2)).collect())
    }
}

/// Either encoding's iterator, without boxing.
enum Either<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;
    #[inline]
    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

impl ZSet {
    /// An empty set in the given encoding.
    pub fn new(skiplist: bool) -> ZSet {
        ZSet {
            repr: if skiplist { Repr::Skip(Box::default()) } else { Repr::Pack(Pack::default()) },
        }
    }

    /// The encoding Redis would create for a new set of `n` elements whose
    /// longest member is `maxlen` bytes (zsetTypeCreate).
    pub fn for_size(n: usize, maxlen: usize, lim: Limits) -> ZSet {
        ZSet::new(n > lim.entries || maxlen > lim.value)
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Skip(_) => "skiplist",
        }
    }

    pub fn is_skiplist(&self) -> bool {
        matches!(self.repr, Repr::Skip(_))
    }

    /// Heap bytes held beyond the struct itself.
    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.buf.len(),
            Repr::Skip(s) => std::mem::size_of::<Skip>() + s.mem_usage(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.n as usize,
            Repr::Skip(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Switches to the "skiplist" encoding (zsetConvert).
    pub fn convert_to_skiplist(&mut self) {
        let Repr::Pack(p) = &self.repr else { return };
        let mut sk = Box::<Skip>::default();
        sk.dict.reserve(p.n as usize);
        // In order: every insert appends to the last chunk.
        for (s, m, _) in p.iter() {
            sk.insert_new(s, m);
        }
        self.repr = Repr::Skip(sk);
    }

    // -- Positions ----------------------------------------------------------

    /// How many elements satisfy `before` (a predicate true for a prefix of the order).
    pub fn count_while(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.iter().take_while(|e| before(e.0, e.1)).count(),
            Repr::Skip(s) => s.count_while(before),
        }
    }

    /// The element at `rank` (0-based, < len).
    pub fn get(&self, rank: usize) -> (f64, &[u8]) {
        match &self.repr {
            Repr::Pack(p) => p.iter().nth(rank).map(|e| (e.0, e.1)).expect("rank < len"),
            Repr::Skip(s) => {
                let (ci, off) = s.at(rank);
                let e = &s.chunks[ci][off];
                (e.0, &e.1)
            }
        }
    }

    /// Every element in order.
    pub fn iter(&self) -> impl Iterator<Item = (f64, &[u8])> + '_ {
        match &self.repr {
            Repr::Pack(p) => Either::A(p.iter().map(|e| (e.0, e.1))),
            Repr::Skip(s) => Either::B(s.iter()),
        }
    }

    /// Elements from rank `start` forward (or backward when `rev`, ranks
    /// counted from the end), at most `n`.
    pub fn range(&self, start: usize, n: usize, rev: bool) -> Box<dyn Iterator<Item = (f64, &[u8])> + '_> {
        if start >= self.len() || n == 0 {
            return Box::new(std::iter::empty());
        }
        match &self.repr {
            Repr::Pack(p) if !rev => Box::new(p.iter().skip(start).take(n).map(|e| (e.0, e.1))),
            Repr::Pack(p) => {
                // Forward-only encoding: the prefix up to the last element wanted, reversed.
                let v: Vec<(f64, &[u8])> = p.iter().take(p.n as usize - start).map(|e| (e.0, e.1)).collect();
                Box::new(v.into_iter().rev().take(n))
            }
            Repr::Skip(s) if !rev => {
                let (ci, off) = s.at(start);
                let first = s.chunks[ci][off..].iter();
                let rest = s.chunks[ci + 1..].iter().flat_map(|c| c.iter());
                Box::new(first.chain(rest).map(|e| (e.0, &e.1[..])).take(n))
            }
            Repr::Skip(s) => {
                let (ci, off) = s.at(s.len - 1 - start);
                let first = s.chunks[ci][..=off].iter().rev();
                let rest = s.chunks[..ci].iter().rev().flat_map(|c| c.iter().rev());
                Box::new(first.chain(rest).map(|e| (e.0, &e.1[..])).take(n))
            }
        }
    }

    /// The score of `m`.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Pack(p) => p.find(m).map(|f| f.0),
            Repr::Skip(s) => s.dict.get(m).copied(),
        }
    }

    /// 0-based rank of `m` in ascending order.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Pack(p) => p.iter().position(|e| e.1 == m),
            Repr::Skip(sk) => {
                let s = sk.dict.get(m).copied()?;
                Some(sk.count_while(|es, em| cmp_elem(es, em, s, m) == Ordering::Less))
            }
        }
    }

    // -- Changes ------------------------------------------------------------

    /// Adds a member known to be absent (the caller chose the encoding).
    pub fn insert_new(&mut self, s: f64, m: &[u8]) {
        match &mut self.repr {
            Repr::Pack(p) => p.insert(s, m),
            Repr::Skip(sk) => sk.insert_new(s, m),
        }
    }

    /// zsetAdd: adds or updates `m` following the flags; converts to
    /// "skiplist" first when the new member would break the limits.
    pub fn add(&mut self, score: f64, m: &[u8], f: AddFlags, lim: Limits) -> AddOutcome {
        if score.is_nan() {
            return AddOutcome::Nan;
        }
        if let Some(cur) = self.score(m) {
            if f.nx {
                return AddOutcome::Nop;
            }
            let mut score = score;
            if f.incr {
                score += cur;
                if score.is_nan() {
                    return AddOutcome::Nan;
                }
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return AddOutcome::Nop;
            }
            if score != cur {
                match &mut self.repr {
                    Repr::Pack(p) => {
                        p.remove(m);
                        p.insert(score, m);
                    }
                    Repr::Skip(sk) => sk.set_score(m, cur, score),
                }
                return AddOutcome::Updated(score);
            }
            return AddOutcome::Unchanged(score);
        }
        if f.xx {
            return AddOutcome::Nop;
        }
        if !self.is_skiplist() && (self.len() + 1 > lim.entries || m.len() > lim.value) {
            self.convert_to_skiplist();
        }
        self.insert_new(score, m);
        AddOutcome::Added(score)
    }

    /// Removes `m`, returning its score.
    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Pack(p) => p.remove(m),
            Repr::Skip(sk) => sk.remove(m),
        }
    }

    /// Removes the elements of ranks `start..end`, returning how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match &mut self.repr {
            Repr::Pack(p) => p.remove_ranks(start, end),
            Repr::Skip(sk) => sk.remove_ranks(start, end),
        }
        end - start
    }

    /// Removes and returns the element at `rank` (< len).
    pub fn pop_at(&mut self, rank: usize) -> (f64, Vec<u8>) {
        match &mut self.repr {
            Repr::Pack(p) => {
                let at = p.offset_of(rank);
                let (s, a, b) = decode(&p.buf, at);
                let m = p.buf[a..b].to_vec();
                p.splice(at, b, &[]);
                p.n -= 1;
                (s, m)
            }
            Repr::Skip(sk) => {
                let (ci, off) = sk.at(rank);
                let (s, m) = sk.take_at(ci, off);
                sk.dict.remove(&m[..]);
                (s, m.to_vec())
            }
        }
    }

    /// One ZSCAN step. A listpack answers everything at once (cursor 0); a
    /// skiplist keeps SCAN's guarantee across changes (see [`Skip::scan`]).
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<(f64, &[u8])>) {
        match &self.repr {
            Repr::Pack(_) => (0, self.iter().collect()),
            Repr::Skip(sk) => sk.scan(cursor, count),
        }
    }

    /// Length of the longest member.
    pub fn max_member_len(&self) -> usize {
        self.iter().map(|e| e.1.len()).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits { entries: 4, value: 8 };

    #[test]
    fn order_rank_and_conversion() {
        let mut z = ZSet::new(false);
        let f = AddFlags::default();
        for i in 0..2000u32 {
            let m = format!("m{:05}", (i * 7919) % 2000);
            assert!(matches!(z.add((i % 10) as f64, m.as_bytes(), f, LIM), AddOutcome::Added(_)));
        }
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.len(), 2000);
        let all: Vec<(f64, Vec<u8>)> = z.iter().map(|(s, m)| (s, m.to_vec())).collect();
        for w in all.windows(2) {
            assert_eq!(cmp_elem(w[0].0, &w[0].1, w[1].0, &w[1].1), Ordering::Less);
        }
        for (i, (s, m)) in all.iter().enumerate().step_by(37) {
            assert_eq!(z.rank(m), Some(i));
            assert_eq!(z.get(i), (*s, &m[..]));
        }
        let rev: Vec<_> = z.range(3, 5, true).map(|e| e.1.to_vec()).collect();
        let want: Vec<_> = all.iter().rev().skip(3).take(5).map(|e| e.1.clone()).collect();
        assert_eq!(rev, want);
        assert_eq!(z.remove_ranks(100, 1500), 1400);
        assert_eq!(z.len(), 600);
        assert_eq!(z.get(100).1, &all[1500].1[..]);
        assert_eq!(z.score(&all[200].1), None);
        let m = all[1999].1.clone();
        assert!(matches!(z.add(-100.0, &m, AddFlags { incr: true, ..f }, LIM), AddOutcome::Updated(_)));
        assert_eq!(z.rank(&m), Some(0));
        assert_eq!(z.remove(&m), Some(-91.0));
        assert_eq!(z.len(), 599);
    }

    #[test]
    fn removals_merge_chunks_and_keep_order() {
        let mut z = ZSet::new(true);
        let f = AddFlags::default();
        for i in 0..5000u32 {
            z.add(((i * 7) % 5000) as f64, format!("{i}").as_bytes(), f, Limits::UNBOUNDED);
        }
        for i in (0..5000u32).filter(|i| i % 10 != 0) {
            assert!(z.remove(format!("{i}").as_bytes()).is_some());
        }
        assert_eq!(z.len(), 500);
        let Repr::Skip(sk) = &z.repr else { panic!("skiplist") };
        assert!(sk.chunks.len() <= 500 / 16, "{} chunks for 500 elements", sk.chunks.len());
        let v: Vec<f64> = z.iter().map(|e| e.0).collect();
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        for r in [0, 1, 250, 499] {
            let (s, m) = z.get(r);
            assert_eq!(z.rank(m), Some(r));
            assert_eq!(z.score(m), Some(s));
        }
        assert_eq!(z.pop_at(0).0, 0.0);
        assert_eq!(z.len(), 499);
    }

    #[test]
    fn listpack_round_trips_scores_and_matches_the_skiplist() {
        let scores = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            63.0,
            -64.0,
            64.0,
            1e15,
            -9007199254740992.0,
            9007199254740994.0,
            0.5,
            -2.25,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            5e-324,
        ];
        let mut pack = ZSet::new(false);
        let mut skip = ZSet::new(true);
        let f = AddFlags::default();
        for (i, &s) in scores.iter().enumerate() {
            let m = format!("m{}", i % 5).repeat(i % 3 + 1);
            assert_eq!(pack.add(s, m.as_bytes(), f, Limits::UNBOUNDED), skip.add(s, m.as_bytes(), f, Limits::UNBOUNDED));
        }
        assert_eq!(pack.encoding(), "listpack");
        let a: Vec<(u64, Vec<u8>)> = pack.iter().map(|(s, m)| (s.to_bits(), m.to_vec())).collect();
        // -0 is stored as 0 in a listpack only.
        let b: Vec<(u64, Vec<u8>)> = skip.iter().map(|(s, m)| ((if s == 0.0 { 0.0 } else { s }).to_bits(), m.to_vec())).collect();
        assert_eq!(a, b);
        for w in a.windows(2) {
            assert_ne!(cmp_elem(f64::from_bits(w[0].0), &w[0].1, f64::from_bits(w[1].0), &w[1].1), Ordering::Greater);
        }
        for r in 0..pack.len() {
            assert_eq!(pack.get(r).1, skip.get(r).1);
            assert_eq!(pack.rank(pack.get(r).1), skip.rank(skip.get(r).1));
            for n in 0..4 {
                for rev in [false, true] {
                    let x: Vec<_> = pack.range(r, n, rev).map(|e| e.1.to_vec()).collect();
                    let y: Vec<_> = skip.range(r, n, rev).map(|e| e.1.to_vec()).collect();
                    assert_eq!(x, y, "range({r}, {n}, {rev})");
                }
            }
        }
        assert_eq!(pack.count_while(|s, _| s < 1.0), skip.count_while(|s, _| s < 1.0));
        assert_eq!(pack.remove_ranks(2, 5), skip.remove_ranks(2, 5));
        assert_eq!(pack.pop_at(3).1, skip.pop_at(3).1);
        let m = pack.get(0).1.to_vec();
        assert_eq!(
            pack.add(2.0, &m, AddFlags { incr: true, ..f }, Limits::UNBOUNDED),
            skip.add(2.0, &m, AddFlags { incr: true, ..f }, Limits::UNBOUNDED)
        );
        assert_eq!(pack.remove(&m), skip.remove(&m));
        let x: Vec<_> = pack.iter().map(|e| e.1.to_vec()).collect();
        let y: Vec<_> = skip.iter().map(|e| e.1.to_vec()).collect();
        assert_eq!(x, y);
        pack.convert_to_skiplist();
        assert_eq!(pack.encoding(), "skiplist");
        assert_eq!(pack.len(), skip.len());
        for (_, m) in skip.iter() {
            assert_eq!(
                pack.score(m).map(f64::to_bits),
                skip.score(m).map(|s| (if s == 0.0 { 0.0 } else { s }).to_bits())
            );
        }
    }

    #[test]
    fn a_small_listpack_costs_a_few_bytes_over_its_members() {
        let mut z = ZSet::new(false);
        for i in 0..10 {
            z.add(i as f64, format!("m{i:07}").as_bytes(), AddFlags::default(), Limits::from_config());
        }
        assert_eq!(z.mem_usage(), 10 * (1 + 1 + 8));
        assert_eq!(std::mem::size_of::<ZSet>(), 24);
    }
}
