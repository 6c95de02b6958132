//! The zset value type: elements ordered by (score, member) with O(log n)
//! rank lookups, plus a member -> score map once the set outgrows the
//! compact ("listpack") encoding.
//!
//! The order is kept in a chunked sorted vector: chunks of at most
//! [`CHUNK_MAX`] elements, with a Fenwick tree over the chunk lengths, so a
//! rank or a position is found with two binary searches and a tree walk, and
//! an insert moves at most one chunk's elements. Members are shared between
//! the order and the map (`Arc<[u8]>`), so the bytes are stored once.
//!
//! "listpack" (the small encoding, Redis's zset-max-listpack-entries /
//! -value) has no map: member lookups scan, as Redis's listpack does. Like
//! Redis 7.0 a set never converts back to listpack once it became "skiplist".

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest chunk before it is split in two.
const CHUNK_MAX: usize = 256;

type Member = Arc<[u8]>;
type Elem = (f64, Member);

/// (score, member) order: scores numerically (never NaN), then memcmp.
#[inline]
pub fn cmp_elem(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2).unwrap_or(Ordering::Equal).then_with(|| m1.cmp(m2))
}

#[derive(Clone, Debug, Default)]
pub struct ZSet {
    chunks: Vec<Vec<Elem>>,
    /// Fenwick tree (1-based) over `chunks[i].len()`.
    fen: Vec<usize>,
    len: usize,
    /// Some = "skiplist" encoding.
    dict: Option<HashMap<Member, f64, ahash::RandomState>>,
}

impl PartialEq for ZSet {
    fn eq(&self, o: &Self) -> bool {
        self.len == o.len && self.encoding() == o.encoding() && self.iter().zip(o.iter()).all(|(a, b)| a.0.to_bits() == b.0.to_bits() && a.1 == b.1)
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

    /// The configured thresholds.
    pub fn from_config() -> Limits {
        let cfg = crate::runtime::rt_ref().config.read();
        let get = |name: &[u8], dflt: usize| {
            cfg.as_ref()
                .ok()
                .and_then(|c| c.get_value(name))
                .and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()))
                .map(|v| v.min(usize::MAX as u64) as usize)
                .unwrap_or(dflt)
        };
        Limits {
            entries: get(b"zset-max-listpack-entries", 128),
            value: get(b"zset-max-listpack-value", 64),
        }
    }
}

impl ZSet {
    /// An empty set in the given encoding.
    pub fn new(skiplist: bool) -> ZSet {
        ZSet {
            dict: if skiplist { Some(HashMap::default()) } else { None },
            ..Default::default()
        }
    }

    /// The encoding Redis would create for a new set of `n` elements whose
    /// longest member is `maxlen` bytes (zsetTypeCreate).
    pub fn for_size(n: usize, maxlen: usize, lim: Limits) -> ZSet {
        ZSet::new(n > lim.entries || maxlen > lim.value)
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        if self.dict.is_some() {
            "skiplist"
        } else {
            "listpack"
        }
    }

    pub fn is_skiplist(&self) -> bool {
        self.dict.is_some()
    }

    /// Heap bytes held beyond the struct itself.
    pub fn mem_usage(&self) -> usize {
        let mut n = self.chunks.capacity() * std::mem::size_of::<Vec<Elem>>() + self.fen.capacity() * 8;
        for c in &self.chunks {
            n += c.capacity() * std::mem::size_of::<Elem>();
            n += c.iter().map(|e| e.1.len() + 16).sum::<usize>();
        }
        if let Some(d) = &self.dict {
            n += d.capacity() * (std::mem::size_of::<(Member, f64)>() + 1);
        }
        n
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Switches to the "skiplist" encoding (zsetConvert).
    pub fn convert_to_skiplist(&mut self) {
        if self.dict.is_some() {
            return;
        }
        let mut d: HashMap<Member, f64, ahash::RandomState> = HashMap::with_capacity_and_hasher(self.len, Default::default());
        for c in &self.chunks {
            for (s, m) in c {
                d.insert(m.clone(), *s);
            }
        }
        self.dict = Some(d);
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

    // -- Positions ----------------------------------------------------------

    /// How many elements satisfy `before` (a predicate true for a prefix of the order).
    pub fn count_while(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| c.last().is_some_and(|e| before(e.0, &e.1)));
        if ci == self.chunks.len() {
            return self.len;
        }
        self.prefix(ci) + self.chunks[ci].partition_point(|e| before(e.0, &e.1))
    }

    /// The element at `rank` (0-based, < len).
    pub fn get(&self, rank: usize) -> (f64, &[u8]) {
        let (ci, off) = self.at(rank);
        let e = &self.chunks[ci][off];
        (e.0, &e.1)
    }

    /// Every element in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (f64, &[u8])> + '_ {
        self.chunks.iter().flat_map(|c| c.iter().map(|e| (e.0, &e.1[..])))
    }

    /// Elements from rank `start` forward (or backward when `rev`, ranks
    /// counted from the end), at most `n`.
    pub fn range(&self, start: usize, n: usize, rev: bool) -> Box<dyn Iterator<Item = (f64, &[u8])> + '_> {
        if start >= self.len || n == 0 {
            return Box::new(std::iter::empty());
        }
        if !rev {
            let (ci, off) = self.at(start);
            let first = self.chunks[ci][off..].iter();
            let rest = self.chunks[ci + 1..].iter().flat_map(|c| c.iter());
            Box::new(first.chain(rest).map(|e| (e.0, &e.1[..])).take(n))
        } else {
            let (ci, off) = self.at(self.len - 1 - start);
            let first = self.chunks[ci][..=off].iter().rev();
            let rest = self.chunks[..ci].iter().rev().flat_map(|c| c.iter().rev());
            Box::new(first.chain(rest).map(|e| (e.0, &e.1[..])).take(n))
        }
    }

    /// The score of `m`.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match &self.dict {
            Some(d) => d.get(m).copied(),
            None => self.iter().find(|e| e.1 == m).map(|e| e.0),
        }
    }

    /// 0-based rank of `m` in ascending order.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        let s = self.score(m)?;
        Some(self.count_while(|es, em| cmp_elem(es, em, s, m) == Ordering::Less))
    }

    // -- Changes ------------------------------------------------------------

    fn insert_elem(&mut self, s: f64, m: Member) {
        // A listpack stores scores as text where -0 reads back as 0.
        let s = if self.dict.is_none() && s == 0.0 { 0.0 } else { s };
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

    /// (chunk, offset) of the element (s, m), which must exist.
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

    /// Adds a member known to be absent.
    pub fn insert_new(&mut self, s: f64, m: &[u8]) {
        let m: Member = Arc::from(m);
        if let Some(d) = &mut self.dict {
            d.insert(m.clone(), s);
        }
        self.insert_elem(s, m);
    }

    fn set_score(&mut self, m: &[u8], old: f64, new: f64) {
        if let Some((ci, off)) = self.find(old, m) {
            let (_, mm) = self.take_at(ci, off);
            if let Some(d) = &mut self.dict {
                if let Some(v) = d.get_mut(m) {
                    *v = new;
                }
            }
            self.insert_elem(new, mm);
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
                self.set_score(m, cur, score);
                return AddOutcome::Updated(score);
            }
            return AddOutcome::Unchanged(score);
        }
        if f.xx {
            return AddOutcome::Nop;
        }
        if self.dict.is_none() && (self.len + 1 > lim.entries || m.len() > lim.value) {
            self.convert_to_skiplist();
        }
        self.insert_new(score, m);
        AddOutcome::Added(score)
    }

    /// Removes `m`, returning its score.
    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let s = match &mut self.dict {
            Some(d) => d.remove(m)?,
            None => self.score(m)?,
        };
        if let Some((ci, off)) = self.find(s, m) {
            self.take_at(ci, off);
        }
        Some(s)
    }

    /// Removes the elements of ranks `start..end`, returning how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len);
        if start >= end {
            return 0;
        }
        let mut n = end - start;
        let removed = n;
        let (mut ci, off) = self.at(start);
        let mut off = off;
        while n > 0 {
            let c = &mut self.chunks[ci];
            let k = (c.len() - off).min(n);
            for (_, m) in c.drain(off..off + k) {
                if let Some(d) = &mut self.dict {
                    d.remove(&m[..]);
                }
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
        self.len -= removed;
        self.rebuild_fen();
        removed
    }

    /// Removes and returns the element at `rank`.
    pub fn pop_at(&mut self, rank: usize) -> (f64, Vec<u8>) {
        let (ci, off) = self.at(rank);
        let (s, m) = self.take_at(ci, off);
        if let Some(d) = &mut self.dict {
            d.remove(&m[..]);
        }
        (s, m.to_vec())
    }

    /// One ZSCAN step. A listpack answers everything at once (cursor 0). A
    /// skiplist is walked in the order of a fixed per-set hash of the member
    /// (the cursor is the next hash value), so every member present for the
    /// whole scan is returned, however the set changes in between.
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<(f64, &[u8])>) {
        let Some(d) = &self.dict else { return (0, self.iter().collect()) };
        let hs = d.hasher();
        let lo = cursor.max(1);
        let mut cand: Vec<(u64, f64, &[u8])> = d
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
        assert!(z.chunks.len() <= 500 / 16, "{} chunks for 500 elements", z.chunks.len());
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
}
