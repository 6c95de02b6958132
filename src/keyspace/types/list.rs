//! The list value type: a deque of packed nodes, like Redis's quicklist of
//! listpacks. Each node is one byte buffer holding several elements, each
//! stored as `varint(len) bytes reversed-varint(len)`, so a node can be walked
//! from either end (the listpack "backlen" idea). A small element costs its
//! bytes plus two (Redis's listpack: the same), and both ends are O(1)
//! amortised: pushes and pops touch only the first or last node, whose size is
//! bounded by [`NODE_BYTES`].

use std::collections::VecDeque;

/// Byte budget of a node at Redis's default `list-max-listpack-size -2` (8 KB),
/// and the safety limit of a count-limited node (SIZE_SAFETY_LIMIT).
pub const NODE_BYTES: usize = 8192;

/// quicklist's optimization_level: the byte budgets of fill -1 ... -5.
const LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];

/// The byte budget of a node under `fill` (list-max-listpack-size), when
/// the limit is a size; None for a count limit (or a fill below -5).
#[inline]
fn size_budget(fill: i64) -> Option<usize> {
    if fill < 0 {
        LEVELS.get((-(fill + 1)) as usize).copied()
    } else {
        None
    }
}

/// Up to this many bytes a node's buffer grows exactly, not by doubling.
const EXACT_GROWTH: usize = 512;

/// One packed node.
#[derive(Clone, Debug, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

/// LEB128 of `len` into `tmp`; returns the number of bytes used.
#[inline]
fn varint(mut len: usize, tmp: &mut [u8; 10]) -> usize {
    let mut k = 0;
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            tmp[k] = b;
            return k + 1;
        }
        tmp[k] = b | 0x80;
        k += 1;
    }
}

/// Bytes an element of `len` takes in a node.
#[inline]
fn entry_size(len: usize) -> usize {
    let mut tmp = [0u8; 10];
    2 * varint(len, &mut tmp) + len
}

/// Writes one encoded element to the end of `buf`.
#[inline]
fn encode_into(buf: &mut Vec<u8>, e: &[u8]) {
    let mut tmp = [0u8; 10];
    let k = varint(e.len(), &mut tmp);
    buf.extend_from_slice(&tmp[..k]);
    buf.extend_from_slice(e);
    buf.extend(tmp[..k].iter().rev());
}

impl Node {
    /// The element starting at byte `off`: (bytes, offset of the next element).
    #[inline]
    fn at(&self, off: usize) -> (&[u8], usize) {
        let (mut len, mut shift, mut k) = (0usize, 0u32, off);
        loop {
            let b = self.buf[k];
            len |= ((b & 0x7f) as usize) << shift;
            k += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let hdr = k - off;
        (&self.buf[k..k + len], k + len + hdr)
    }

    /// The element ending at byte `end`: (bytes, offset where it starts).
    #[inline]
    fn before(&self, end: usize) -> (&[u8], usize) {
        let (mut len, mut shift, mut k) = (0usize, 0u32, end);
        loop {
            k -= 1;
            let b = self.buf[k];
            len |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let hdr = end - k;
        let start = k - len;
        (&self.buf[start..k], start - hdr)
    }

    /// _quicklistNodeAllowInsert: whether one more element of `add` encoded
    /// bytes joins this node under `list-max-listpack-size` (a byte budget
    /// for -1..-5; an element count, within 8 KB, for a positive value; one
    /// element per node for 0 or below -5, as in Redis).
    #[inline]
    fn fits(&self, add: usize) -> bool {
        if self.count == 0 {
            return true;
        }
        let sz = self.buf.len() + add;
        let fill = super::limits::list_fill();
        match size_budget(fill) {
            Some(b) => sz <= b,
            None => sz <= NODE_BYTES && (self.count as i64) < fill,
        }
    }

    /// Room for `add` more bytes. A small node grows exactly (as a listpack
    /// is reallocated on every insert; mimalloc's realloc stays in place within
    /// a size class), so a 10-element list carries no slack; a larger one
    /// grows by doubling, but never past the node budget (plain doubling would
    /// leave up to half of a full node unused).
    #[inline]
    fn reserve(&mut self, add: usize) {
        let need = self.buf.len() + add;
        if need > self.buf.capacity() {
            let target = if need <= EXACT_GROWTH {
                need
            } else {
                let budget = size_budget(super::limits::list_fill()).unwrap_or(NODE_BYTES);
                (self.buf.capacity() * 2).clamp(need, budget.max(need))
            };
            self.buf.reserve_exact(target - self.buf.len());
        }
    }

    fn push_back(&mut self, e: &[u8]) {
        self.reserve(entry_size(e.len()));
        encode_into(&mut self.buf, e);
        self.count += 1;
    }

    fn push_front(&mut self, e: &[u8]) {
        let mut tmp = [0u8; 10];
        let k = varint(e.len(), &mut tmp);
        let total = 2 * k + e.len();
        self.reserve(total);
        let old = self.buf.len();
        self.buf.resize(old + total, 0);
        self.buf.copy_within(0..old, total);
        self.buf[..k].copy_from_slice(&tmp[..k]);
        self.buf[k..k + e.len()].copy_from_slice(e);
        for (i, b) in tmp[..k].iter().rev().enumerate() {
            self.buf[k + e.len() + i] = *b;
        }
        self.count += 1;
    }

    /// Byte offset just past the first `n` elements.
    fn offset_of(&self, n: usize) -> usize {
        let mut off = 0;
        for _ in 0..n {
            off = self.at(off).1;
        }
        off
    }

    /// Byte offset where the last `n` elements start.
    fn offset_from_end(&self, n: usize) -> usize {
        let mut end = self.buf.len();
        for _ in 0..n {
            end = self.before(end).1;
        }
        end
    }

    fn elems(&self) -> Vec<Vec<u8>> {
        let mut v = Vec::with_capacity(self.count as usize);
        let mut off = 0;
        while off < self.buf.len() {
            let (e, next) = self.at(off);
            v.push(e.to_vec());
            off = next;
        }
        v
    }
}

/// A list value.
#[derive(Clone, Debug, Default)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
}

impl PartialEq for List {
    /// Equal elements in order, whatever the node split.
    fn eq(&self, o: &List) -> bool {
        self.len == o.len && self.iter().eq(o.iter())
    }
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    /// The name OBJECT ENCODING reports: Redis 7.0 lists are always quicklists
    /// (the listpack encoding for small lists came with 7.2).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Heap bytes held beyond the struct itself.
    pub fn mem_usage(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>() + self.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push_back(&mut self, e: &[u8]) {
        let add = entry_size(e.len());
        match self.nodes.back_mut() {
            Some(n) if n.fits(add) => n.push_back(e),
            _ => {
                // A list that fills a node is a big one: its next node starts
                // at the full budget (no growth reallocations).
                let cap = match size_budget(super::limits::list_fill()) {
                    Some(b) if !self.nodes.is_empty() => b.max(add),
                    _ => add,
                };
                let mut n = Node {
                    buf: Vec::with_capacity(cap),
                    count: 0,
                };
                n.push_back(e);
                if self.nodes.capacity() == 0 {
                    // VecDeque's first growth is to 4 nodes; most lists need one.
                    self.nodes.reserve_exact(1);
                }
                self.nodes.push_back(n);
            }
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, e: &[u8]) {
        let add = entry_size(e.len());
        match self.nodes.front_mut() {
            Some(n) if n.fits(add) => n.push_front(e),
            _ => {
                // A list that fills a node is a big one: its next node starts
                // at the full budget (no growth reallocations).
                let cap = match size_budget(super::limits::list_fill()) {
                    Some(b) if !self.nodes.is_empty() => b.max(add),
                    _ => add,
                };
                let mut n = Node {
                    buf: Vec::with_capacity(cap),
                    count: 0,
                };
                n.push_back(e);
                if self.nodes.capacity() == 0 {
                    // VecDeque's first growth is to 4 nodes; most lists need one.
                    self.nodes.reserve_exact(1);
                }
                self.nodes.push_front(n);
            }
        }
        self.len += 1;
    }

    pub fn push(&mut self, e: &[u8], left: bool) {
        if left {
            self.push_front(e)
        } else {
            self.push_back(e)
        }
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.front_mut()?;
        let (e, next) = n.at(0);
        let v = e.to_vec();
        n.buf.drain(..next);
        n.count -= 1;
        if n.count == 0 {
            self.nodes.pop_front();
        }
        self.len -= 1;
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.back_mut()?;
        let (e, start) = n.before(n.buf.len());
        let v = e.to_vec();
        n.buf.truncate(start);
        n.count -= 1;
        if n.count == 0 {
            self.nodes.pop_back();
        }
        self.len -= 1;
        Some(v)
    }

    pub fn pop(&mut self, left: bool) -> Option<Vec<u8>> {
        if left {
            self.pop_front()
        } else {
            self.pop_back()
        }
    }

    /// Removes the first `n` elements (whole nodes are dropped without a walk).
    pub fn remove_front(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(f) = self.nodes.front_mut() else { break };
            if f.count as usize <= n {
                n -= f.count as usize;
                self.nodes.pop_front();
            } else {
                let off = f.offset_of(n);
                f.buf.drain(..off);
                f.count -= n as u32;
                n = 0;
            }
        }
    }

    /// Removes the last `n` elements.
    pub fn remove_back(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(b) = self.nodes.back_mut() else { break };
            if b.count as usize <= n {
                n -= b.count as usize;
                self.nodes.pop_back();
            } else {
                let off = b.offset_from_end(n);
                b.buf.truncate(off);
                b.count -= n as u32;
                n = 0;
            }
        }
    }

    /// The node holding element `i` and the element's rank inside it.
    fn locate(&self, mut i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        if i < self.len / 2 {
            for (ni, n) in self.nodes.iter().enumerate() {
                if i < n.count as usize {
                    return Some((ni, i));
                }
                i -= n.count as usize;
            }
            None
        } else {
            // From the tail: `r` elements follow element i.
            let mut r = self.len - 1 - i;
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                if r < n.count as usize {
                    return Some((ni, n.count as usize - 1 - r));
                }
                r -= n.count as usize;
            }
            None
        }
    }

    /// Element `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let (ni, k) = self.locate(i)?;
        let n = &self.nodes[ni];
        let off = n.offset_of(k);
        Some(n.at(off).0)
    }

    /// Elements from index `i` towards the tail.
    pub fn iter_from(&self, i: usize) -> Iter<'_> {
        match self.locate(i) {
            Some((ni, k)) => Iter {
                list: self,
                node: ni,
                off: self.nodes[ni].offset_of(k),
            },
            None => Iter {
                list: self,
                node: self.nodes.len(),
                off: 0,
            },
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Elements from index `i` towards the head.
    pub fn iter_rev_from(&self, i: usize) -> RevIter<'_> {
        match self.locate(i) {
            Some((ni, k)) => {
                let n = &self.nodes[ni];
                RevIter {
                    list: self,
                    node: ni + 1,
                    end: n.offset_from_end(n.count as usize - 1 - k),
                }
            }
            None => RevIter { list: self, node: 0, end: 0 },
        }
    }

    /// Elements from the tail towards the head.
    pub fn iter_rev(&self) -> RevIter<'_> {
        match self.len {
            0 => RevIter { list: self, node: 0, end: 0 },
            n => self.iter_rev_from(n - 1),
        }
    }

    /// Replaces node `ni` by the packed `elems` (none, one or several nodes).
    fn replace_node(&mut self, ni: usize, elems: Vec<Vec<u8>>) {
        let old = self.nodes[ni].count as usize;
        self.len = self.len - old + elems.len();
        let mut packed: Vec<Node> = Vec::new();
        for e in &elems {
            let add = entry_size(e.len());
            match packed.last_mut() {
                Some(n) if n.fits(add) => n.push_back(e),
                _ => {
                    let mut n = Node::default();
                    n.push_back(e);
                    packed.push(n);
                }
            }
        }
        self.nodes.remove(ni);
        for (j, n) in packed.into_iter().enumerate() {
            self.nodes.insert(ni + j, n);
        }
    }

    /// Sets element `i`; false when out of range.
    pub fn set(&mut self, i: usize, e: &[u8]) -> bool {
        let Some((ni, k)) = self.locate(i) else { return false };
        let mut v = self.nodes[ni].elems();
        v[k] = e.to_vec();
        self.replace_node(ni, v);
        true
    }

    /// Inserts `e` so that it becomes element `i` (`i == len` appends).
    pub fn insert(&mut self, i: usize, e: &[u8]) {
        if i == 0 {
            return self.push_front(e);
        }
        if i >= self.len {
            return self.push_back(e);
        }
        let Some((ni, k)) = self.locate(i) else { return };
        let mut v = self.nodes[ni].elems();
        v.insert(k, e.to_vec());
        self.replace_node(ni, v);
    }

    /// LREM: removes up to `limit` elements equal to `e` (0 = all), from the
    /// head, or from the tail when `from_tail`. Returns how many went.
    pub fn remove_matching(&mut self, e: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let room = |removed: usize| limit == 0 || removed < limit;
        let mut ni = if from_tail { self.nodes.len() } else { 0 };
        loop {
            if !room(removed) {
                break;
            }
            let cur = if from_tail {
                if ni == 0 {
                    break;
                }
                ni - 1
            } else {
                if ni >= self.nodes.len() {
                    break;
                }
                ni
            };
            let n = &self.nodes[cur];
            // Nodes without a match are left alone (no decoding).
            let mut off = 0;
            let mut any = false;
            while off < n.buf.len() {
                let (x, next) = n.at(off);
                if x == e {
                    any = true;
                    break;
                }
                off = next;
            }
            let mut gone = false;
            if any {
                let v = n.elems();
                let mut keep = vec![true; v.len()];
                let idx: Box<dyn Iterator<Item = usize>> = if from_tail { Box::new((0..v.len()).rev()) } else { Box::new(0..v.len()) };
                for j in idx {
                    if room(removed) && v[j] == e {
                        keep[j] = false;
                        removed += 1;
                    }
                }
                let v: Vec<Vec<u8>> = v.into_iter().zip(keep).filter(|(_, k)| *k).map(|(x, _)| x).collect();
                gone = v.is_empty();
                // Removal never grows a node: it is replaced by at most one.
                self.replace_node(cur, v);
            }
            if from_tail {
                ni -= 1;
            } else if !gone {
                ni += 1;
            }
        }
        removed
    }
}

/// Forward iterator over a list's elements.
pub struct Iter<'a> {
    list: &'a List,
    node: usize,
    off: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let n = self.list.nodes.get(self.node)?;
            if self.off < n.buf.len() {
                let (e, next) = n.at(self.off);
                self.off = next;
                return Some(e);
            }
            self.node += 1;
            self.off = 0;
        }
    }
}

/// Backward iterator; `node` is one past the current node (0 = done).
pub struct RevIter<'a> {
    list: &'a List,
    node: usize,
    end: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.node == 0 {
                return None;
            }
            let n = &self.list.nodes[self.node - 1];
            if self.end > 0 {
                let (e, start) = n.before(self.end);
                self.end = start;
                return Some(e);
            }
            self.node -= 1;
            if self.node > 0 {
                self.end = self.list.nodes[self.node - 1].buf.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_check(l: &List, m: &VecDeque<Vec<u8>>) {
        assert_eq!(l.len(), m.len());
        let a: Vec<&[u8]> = l.iter().collect();
        let b: Vec<&[u8]> = m.iter().map(|x| x.as_slice()).collect();
        assert_eq!(a, b);
        let ra: Vec<&[u8]> = l.iter_rev().collect();
        let rb: Vec<&[u8]> = m.iter().rev().map(|x| x.as_slice()).collect();
        assert_eq!(ra, rb);
        assert_eq!(l.nodes.iter().map(|n| n.count as usize).sum::<usize>(), l.len());
        for i in [0, m.len() / 3, m.len() / 2, m.len().saturating_sub(1)] {
            assert_eq!(l.get(i), m.get(i).map(|x| x.as_slice()));
            assert_eq!(l.iter_from(i).next(), m.get(i).map(|x| x.as_slice()));
            assert_eq!(l.iter_rev_from(i).next(), m.get(i).map(|x| x.as_slice()));
        }
    }

    #[test]
    fn matches_a_deque_model_under_random_operations() {
        random_model_run();
    }

    /// Node layout is not semantics: every `list-max-listpack-size` gives the
    /// same answers. (The setting is process-wide; the other tests only
    /// assert layout at budgets of at most 8 KB, which these stay within.)
    #[test]
    fn every_fill_setting_keeps_list_semantics() {
        let set = |f| {
            super::super::limits::configure(super::super::limits::EncodingConfig {
                hash_entries: 512,
                hash_value: 64,
                set_intset: 512,
                zset_entries: 128,
                zset_value: 64,
                list_fill: f,
            })
        };
        for f in [1, 3, 0, -1, -6] {
            set(f);
            random_model_run();
        }
        set(-2);
        let mut l = List::new();
        set(2);
        for _ in 0..5 {
            l.push_back(b"x");
        }
        assert_eq!(l.nodes.len(), 3, "2 elements per node");
        set(-2);
    }

    fn random_model_run() {
        let mut l = List::new();
        let mut m: VecDeque<Vec<u8>> = VecDeque::new();
        let mut seed = 12345u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..20000 {
            let r = rnd();
            let len = match r % 10 {
                0 => 200 + (r >> 8) as usize % 20000,
                1..=3 => (r >> 8) as usize % 200,
                _ => (r >> 8) as usize % 8,
            };
            let e: Vec<u8> = (0..len).map(|i| (i as u64 + r) as u8 % 4 + b'a').collect();
            match (r >> 32) % 12 {
                0..=2 => {
                    l.push_back(&e);
                    m.push_back(e);
                }
                3..=5 => {
                    l.push_front(&e);
                    m.push_front(e);
                }
                6 => assert_eq!(l.pop_front(), m.pop_front()),
                7 => assert_eq!(l.pop_back(), m.pop_back()),
                8 if !m.is_empty() => {
                    let i = (r >> 40) as usize % m.len();
                    assert!(l.set(i, &e));
                    m[i] = e;
                }
                9 => {
                    let i = (r >> 40) as usize % (m.len() + 1);
                    l.insert(i, &e);
                    m.insert(i, e);
                }
                10 if step % 7 == 0 => {
                    let target = m.get(m.len() / 2).cloned().unwrap_or_default();
                    let lim = (r >> 40) as usize % 3;
                    let tail = r & 1 == 1;
                    let got = l.remove_matching(&target, lim, tail);
                    let mut want = 0;
                    if tail {
                        let mut i = m.len();
                        while i > 0 {
                            i -= 1;
                            if (lim == 0 || want < lim) && m[i] == target {
                                m.remove(i);
                                want += 1;
                            }
                        }
                    } else {
                        let mut i = 0;
                        while i < m.len() {
                            if (lim == 0 || want < lim) && m[i] == target {
                                m.remove(i);
                                want += 1;
                            } else {
                                i += 1;
                            }
                        }
                    }
                    assert_eq!(got, want);
                }
                11 => {
                    let a = (r >> 40) as usize % 5;
                    let b = (r >> 44) as usize % 5;
                    l.remove_front(a);
                    l.remove_back(b);
                    for _ in 0..a {
                        m.pop_front();
                    }
                    for _ in 0..b {
                        m.pop_back();
                    }
                }
                _ => {}
            }
            if step % 97 == 0 {
                model_check(&l, &m);
            }
        }
        model_check(&l, &m);
        let c = l.clone();
        assert_eq!(c, l);
    }

    #[test]
    fn small_elements_cost_two_bytes_of_overhead() {
        let mut l = List::new();
        for _ in 0..10000 {
            l.push_back(b"hello");
        }
        let bytes: usize = l.nodes.iter().map(|n| n.buf.len()).sum();
        assert_eq!(bytes, 10000 * 7);
        // Full nodes do not carry doubling slack.
        let cap: usize = l.nodes.iter().map(|n| n.buf.capacity()).sum();
        assert!(cap <= bytes + NODE_BYTES, "{cap} bytes allocated for {bytes}");
        assert_eq!(l.encoding(), "quicklist");
    }
}
