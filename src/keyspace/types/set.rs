//! The set value type: Redis 7.0's two encodings (7.0 has no listpack sets).
//!
//! * **intset** while every member is a canonical 64-bit integer and there
//!   are at most `set-max-intset-entries` of them: a sorted `Vec<i64>`, so
//!   SMEMBERS/SSCAN order is ascending, as Redis's intset.
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
    Ints(Vec<i64>),
    Table(Dict<()>),
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
    Ints(std::slice::Iter<'a, i64>),
    Table(Box<dyn Iterator<Item = (&'a [u8], &'a ())> + 'a>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;
    #[inline]
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Ints(i) => i.next().map(|v| Member::Int(*v)),
            SetIter::Table(t) => t.next().map(|(k, _)| Member::Str(k)),
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
                Set { repr: Repr::Table(n) }
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
        Set { repr: Repr::Ints(Vec::new()) }
    }

    /// setTypeCreate: an intset if `first` is an integer, else a hashtable.
    pub fn for_member(first: &[u8]) -> Set {
        if string2ll(first).is_some() {
            Set::new_intset()
        } else {
            Set {
                repr: Repr::Table(Dict::new()),
            }
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
            Repr::Ints(v) => v.capacity() * 8,
            Repr::Table(d) => d.overhead_bytes() + d.iter().map(|(k, _)| k.len()).sum::<usize>(),
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
            Repr::Ints(v) => string2ll(m).is_some_and(|x| v.binary_search(&x).is_ok()),
            Repr::Table(d) => d.contains(m),
        }
    }

    /// setTypeConvert to the hashtable encoding (a no-op when already there).
    pub fn convert(&mut self) {
        if let Repr::Ints(v) = &self.repr {
            let mut d = Dict::new();
            for x in v {
                let mut buf = [0u8; 20];
                d.insert_new(i64_to_buf(*x, &mut buf).into(), ());
            }
            self.repr = Repr::Table(d);
        }
    }

    /// setTypeAdd: true when `m` is new. An intset converts on a non-integer
    /// member or when it grows beyond `max_intset` members.
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Repr::Ints(v) = &mut self.repr {
            match string2ll(m) {
                Some(x) => {
                    return match v.binary_search(&x) {
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
            Repr::Ints(v) => match string2ll(m).map(|x| v.binary_search(&x)) {
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
            Repr::Ints(v) => SetIter::Ints(v.iter()),
            Repr::Table(d) => SetIter::Table(Box::new(d.iter())),
        }
    }

    /// A random member (setTypeRandomElement); `rand` yields u64s.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<Member<'_>> {
        match &self.repr {
            Repr::Ints(v) => {
                if v.is_empty() {
                    None
                } else {
                    Some(Member::Int(v[(rand() % v.len() as u64) as usize]))
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
