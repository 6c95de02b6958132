//! The set value type: Redis 7.0's two encodings (7.0 has no listpack sets).
//!
//! * **intset** while every member is a canonical 64-bit integer and there
//!   are at most `set-max-intset-entries` of them: a sorted vector of the
//!   narrowest width that holds every member (16, 32 or 64 bits, upgraded
//!   as needed, never downgraded — Redis's intset), so memory per member is
//!   Redis's and SMEMBERS/SSCAN order is ascending, as Redis's.
//! * **hashtable** otherwise: a [`Dict`] of members (reverse-binary SCAN
//!   cursor, as Redis's dict).
//!
//! Conversion is one way (intset -> hashtable), as in Redis; the limit is
//! passed in by the caller (it is configuration).

use crate::keyspace::dict::Dict;
use crate::util::num::{i64_to_buf, string2ll};

/// A set value.
pub struct Set {
    repr: Repr,
}

enum Repr {
    Ints(Ints),
    /// Boxed: a set of a few integers stays the size of its intset.
    Table(Box<Dict<()>>),
}

/// A sorted intset of one width.
#[derive(Clone)]
enum Ints {
    W16(Vec<i16>),
    W32(Vec<i32>),
    W64(Vec<i64>),
}

impl Ints {
    fn len(&self) -> usize {
        match self {
            Ints::W16(v) => v.len(),
            Ints::W32(v) => v.len(),
            Ints::W64(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> i64 {
        match self {
            Ints::W16(v) => v[i] as i64,
            Ints::W32(v) => v[i] as i64,
            Ints::W64(v) => v[i],
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Ints::W16(v) => v.capacity() * 2,
            Ints::W32(v) => v.capacity() * 4,
            Ints::W64(v) => v.capacity() * 8,
        }
    }

    /// Binary search; a value wider than the encoding sorts before or after all.
    fn search(&self, x: i64) -> Result<usize, usize> {
        let outside = |len: usize| Err(if x < 0 { 0 } else { len });
        match self {
            Ints::W16(v) => i16::try_from(x).map_or_else(|_| outside(v.len()), |y| v.binary_search(&y)),
            Ints::W32(v) => i32::try_from(x).map_or_else(|_| outside(v.len()), |y| v.binary_search(&y)),
            Ints::W64(v) => v.binary_search(&x),
        }
    }

    /// intsetUpgradeAndAdd's upgrade: widen every member so `x` fits.
    fn widen_for(&mut self, x: i64) {
        let need = if i16::try_from(x).is_ok() {
            2
        } else if i32::try_from(x).is_ok() {
            4
        } else {
            8
        };
        let have = match self {
            Ints::W16(_) => 2,
            Ints::W32(_) => 4,
            Ints::W64(_) => 8,
        };
        if need <= have {
            return;
        }
        let all = (0..self.len()).map(|i| self.get(i));
        *self = if need == 4 {
            Ints::W32(all.map(|v| v as i32).collect())
        } else {
            Ints::W64(all.collect())
        };
    }

    fn insert(&mut self, i: usize, x: i64) {
        self.widen_for(x);
        match self {
            Ints::W16(v) => v.insert(i, x as i16),
            Ints::W32(v) => v.insert(i, x as i32),
            Ints::W64(v) => v.insert(i, x),
        }
    }

    fn remove(&mut self, i: usize) {
        match self {
            Ints::W16(v) => {
                v.remove(i);
            }
            Ints::W32(v) => {
                v.remove(i);
            }
            Ints::W64(v) => {
                v.remove(i);
            }
        }
    }
}

/// One member as stored: an intset integer or a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Member<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Member<'_> {
    /// Runs `f` on the member's string form (integers formatted on the stack).
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            Member::Int(v) => {
                let mut buf = [0u8; 20];
                f(i64_to_buf(v, &mut buf))
            }
            Member::Str(s) => f(s),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.with(|b| b.to_vec())
    }
}

/// Iterates a set's members in its encoding's order.
pub enum SetIter<'a> {
    Ints(IntsIter<'a>),
    Table(Box<dyn Iterator<Item = (&'a [u8], &'a ())> + 'a>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;
    #[inline]
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Ints(i) => i.next().map(Member::Int),
            SetIter::Table(t) => t.next().map(|(k, _)| Member::Str(k)),
        }
    }
}

/// An intset's members, ascending.
pub enum IntsIter<'a> {
    W16(std::slice::Iter<'a, i16>),
    W32(std::slice::Iter<'a, i32>),
    W64(std::slice::Iter<'a, i64>),
}

impl Iterator for IntsIter<'_> {
    type Item = i64;
    #[inline]
    fn next(&mut self) -> Option<i64> {
        match self {
            IntsIter::W16(i) => i.next().map(|v| *v as i64),
            IntsIter::W32(i) => i.next().map(|v| *v as i64),
            IntsIter::W64(i) => i.next().copied(),
        }
    }
}

impl Default for Set {
    fn default() -> Self {
        Set::new_intset()
    }
}

impl Clone for Set {
    fn clone(&self) -> Self {
        match &self.repr {
            Repr::Ints(v) => Set { repr: Repr::Ints(v.clone()) },
            Repr::Table(d) => {
                let mut n = Dict::new();
                for (k, _) in d.iter() {
                    n.insert_new(k.into(), ());
                }
                Set {
                    repr: Repr::Table(Box::new(n)),
                }
            }
        }
    }
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding())?;
        f.debug_set()
            .entries(self.iter().map(|m| String::from_utf8_lossy(&m.to_vec()).into_owned()))
            .finish()
    }
}

/// Same members (encoding and order do not matter).
impl PartialEq for Set {
    fn eq(&self, o: &Set) -> bool {
        self.len() == o.len() && self.iter().all(|m| m.with(|b| o.contains(b)))
    }
}

impl Set {
    /// An empty intset (createIntsetObject).
    pub fn new_intset() -> Set {
        Set {
            repr: Repr::Ints(Ints::W16(Vec::new())),
        }
    }

    /// setTypeCreate: an intset if `first` is an integer, else a hashtable.
    pub fn for_member(first: &[u8]) -> Set {
        if string2ll(first).is_some() {
            Set::new_intset()
        } else {
            Set {
                repr: Repr::Table(Box::default()),
            }
        }
    }

    /// An empty hashtable set (createSetObject).
    pub fn new_table() -> Set {
        Set {
            repr: Repr::Table(Box::default()),
        }
    }

    /// An intset of `width` bytes per member (2, 4 or 8) holding `members`,
    /// which the caller has checked are strictly ascending and fit the width
    /// (an intset loaded from RDB keeps the width it was saved with).
    pub fn from_intset(width: u8, members: &[i64]) -> Set {
        let ints = match width {
            2 => Ints::W16(members.iter().map(|&v| v as i16).collect()),
            4 => Ints::W32(members.iter().map(|&v| v as i32).collect()),
            _ => Ints::W64(members.to_vec()),
        };
        Set { repr: Repr::Ints(ints) }
    }

    /// The bytes per member of an intset (2, 4 or 8); None for a hashtable.
    pub fn intset_width(&self) -> Option<u8> {
        match &self.repr {
            Repr::Ints(Ints::W16(_)) => Some(2),
            Repr::Ints(Ints::W32(_)) => Some(4),
            Repr::Ints(Ints::W64(_)) => Some(8),
            Repr::Table(_) => None,
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Ints(_))
    }

    /// Heap bytes held beyond the struct itself.
    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.bytes(),
            Repr::Table(d) => std::mem::size_of::<Dict<()>>() + d.overhead_bytes() + d.iter().map(|(k, _)| k.len()).sum::<usize>(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.len(),
            Repr::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(v) => string2ll(m).is_some_and(|x| v.search(x).is_ok()),
            Repr::Table(d) => d.contains(m),
        }
    }

    /// setTypeConvert to the hashtable encoding (a no-op when already there).
    pub fn convert(&mut self) {
        if let Repr::Ints(v) = &self.repr {
            let mut d = Dict::new();
            for i in 0..v.len() {
                let mut buf = [0u8; 20];
                d.insert_new(i64_to_buf(v.get(i), &mut buf).into(), ());
            }
            self.repr = Repr::Table(Box::new(d));
        }
    }

    /// setTypeAdd: true when `m` is new. An intset converts on a non-integer
    /// member or when it grows beyond `max_intset` members.
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Repr::Ints(v) = &mut self.repr {
            match string2ll(m) {
                Some(x) => {
                    return match v.search(x) {
                        Ok(_) => false,
                        Err(i) => {
                            v.insert(i, x);
                            if v.len() > max_intset.min(1 << 30) {
                                self.convert();
                            }
                            true
                        }
                    };
                }
                None => self.convert(),
            }
        }
        match &mut self.repr {
            Repr::Table(d) => {
                if d.contains(m) {
                    false
                } else {
                    d.insert_new(m.into(), ());
                    true
                }
            }
            Repr::Ints(_) => false,
        }
    }

    /// setTypeRemove: true when `m` was a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(v) => match string2ll(m).map(|x| v.search(x)) {
                Some(Ok(i)) => {
                    v.remove(i);
                    true
                }
                _ => false,
            },
            Repr::Table(d) => d.remove(m).is_some(),
        }
    }

    /// Every member (ascending for an intset).
    pub fn iter(&self) -> SetIter<'_> {
        match &self.repr {
            Repr::Ints(Ints::W16(v)) => SetIter::Ints(IntsIter::W16(v.iter())),
            Repr::Ints(Ints::W32(v)) => SetIter::Ints(IntsIter::W32(v.iter())),
            Repr::Ints(Ints::W64(v)) => SetIter::Ints(IntsIter::W64(v.iter())),
            Repr::Table(d) => SetIter::Table(Box::new(d.iter())),
        }
    }

    /// A random member (setTypeRandomElement); `rand` yields u64s.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<Member<'_>> {
        match &self.repr {
            Repr::Ints(v) => {
                if v.len() == 0 {
                    None
                } else {
                    Some(Member::Int(v.get((rand() % v.len() as u64) as usize)))
                }
            }
            Repr::Table(d) => d.random(rand).map(|(k, _)| Member::Str(k)),
        }
    }

    /// Removes and returns a random member (SPOP).
    pub fn pop_random(&mut self, rand: impl FnMut() -> u64) -> Option<Vec<u8>> {
        let m = self.random(rand)?.to_vec();
        self.remove(&m);
        Some(m)
    }

    /// One SSCAN step of a hashtable set (see `Dict::scan`); None for an
    /// intset, which SSCAN returns whole with cursor 0.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8])) -> Option<u64> {
        match &self.repr {
            Repr::Ints(_) => None,
            Repr::Table(d) => Some(d.scan(cursor, |k, _| f(k))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intset_stays_sorted_and_converts() {
        let mut s = Set::for_member(b"5");
        assert_eq!(s.encoding(), "intset");
        for m in ["5", "-3", "10", "5", "0"] {
            s.add(m.as_bytes(), 512);
        }
        let v: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
        assert_eq!(v, vec![b"-3".to_vec(), b"0".to_vec(), b"5".to_vec(), b"10".to_vec()]);
        assert!(s.contains(b"10") && !s.contains(b"010") && !s.contains(b"x"));
        assert!(!s.remove(b"7") && s.remove(b"0"));
        s.add(b"x", 512);
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"10") && s.contains(b"x") && s.len() == 4);
        let mut t = Set::new_intset();
        for i in 0..4 {
            t.add(i.to_string().as_bytes(), 3);
        }
        assert_eq!(t.encoding(), "hashtable");
        assert_eq!(t.clone(), t);
        assert_eq!(Set::for_member(b"007").encoding(), "hashtable");
    }

    #[test]
    fn intset_widens_as_redis() {
        let mut s = Set::new_intset();
        s.add(b"5", 512);
        s.add(b"-7", 512);
        assert_eq!(s.mem_usage() % 2, 0);
        assert!(matches!(&s.repr, Repr::Ints(Ints::W16(_))));
        s.add(b"70000", 512);
        assert!(matches!(&s.repr, Repr::Ints(Ints::W32(_))));
        assert!(!s.contains(b"9223372036854775807") && !s.contains(b"-9223372036854775808"));
        s.add(b"-9223372036854775808", 512);
        assert!(matches!(&s.repr, Repr::Ints(Ints::W64(_))));
        assert!(s.remove(b"70000") && s.remove(b"-9223372036854775808"));
        // Never downgraded, as Redis.
        assert!(matches!(&s.repr, Repr::Ints(Ints::W64(_))));
        let v: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
        assert_eq!(v, vec![b"-7".to_vec(), b"5".to_vec()]);
        let mut t = Set::new_intset();
        t.add(b"40000", 512);
        assert!(!t.contains(b"-40000") && t.contains(b"40000"));
        t.add(b"1", 512);
        t.add(b"-40000", 512);
        let v: Vec<Vec<u8>> = t.iter().map(|m| m.to_vec()).collect();
        assert_eq!(v, vec![b"-40000".to_vec(), b"1".to_vec(), b"40000".to_vec()]);
    }

    #[test]
    fn pop_random_empties() {
        let mut s = Set::new_intset();
        s.add(b"1", 512);
        s.add(b"a", 512);
        let mut x = 7u64;
        let mut got = vec![s.pop_random(|| crate::util::rand::next(&mut x)).unwrap()];
        got.push(s.pop_random(|| crate::util::rand::next(&mut x)).unwrap());
        got.sort();
        assert_eq!(got, vec![b"1".to_vec(), b"a".to_vec()]);
        assert!(s.is_empty() && s.pop_random(|| 1).is_none());
    }
}
