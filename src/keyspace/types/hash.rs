//! The hash value type: Redis's two encodings.
//!
//! * **listpack** while small (`hash-max-listpack-entries` pairs, every field
//!   and value at most `hash-max-listpack-value` bytes): one packed buffer of
//!   length-prefixed field/value strings in insertion order, searched
//!   linearly like Redis's listpack — a couple of bytes of overhead per
//!   string, and HGETALL/HSCAN order is insertion order, as in Redis.
//! * **hashtable** beyond: a [`Dict`] (chained, reverse-binary SCAN cursor, so
//!   HSCAN keeps Redis's guarantees across resizes).
//!
//! Conversion is one way (listpack -> hashtable), as in Redis. The limits are
//! passed in by the caller (they are configuration).

use crate::keyspace::dict::Dict;
use crate::util::small::SmallBytes;
use crate::util::varint;

/// A hash value.
pub struct Hash {
    repr: Repr,
}

/// 24 bytes, so `Value` holds a hash inline: a small hash is one allocation.
enum Repr {
    Pack(Pack),
    Table(Box<Dict<SmallBytes>>),
}

/// Packed field/value strings: `varint(len) bytes` for the field, then the
/// value. The buffer is exactly as long as its content (like a listpack,
/// which is reallocated on every change): no growth slack in small hashes.
#[derive(Clone, Default)]
struct Pack {
    buf: Box<[u8]>,
    /// Number of pairs.
    n: u32,
}

#[inline]
fn put_len(buf: &mut Vec<u8>, n: usize) {
    varint::put(buf, n as u64);
}

/// Reads the string at `at`: (start, end) of its bytes.
#[inline]
fn get_str(buf: &[u8], mut at: usize) -> (usize, usize) {
    let n = varint::get(buf, &mut at) as usize;
    (at, at + n)
}

/// One pair's position in the buffer.
struct Slot {
    start: usize,
    val: (usize, usize),
}

impl Pack {
    /// Edits the buffer as a Vec, then gives back any slack.
    fn edit<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        let r = f(&mut v);
        self.buf = v.into_boxed_slice();
        r
    }

    fn iter(&self) -> PackIter<'_> {
        PackIter { buf: &self.buf, at: 0 }
    }

    fn find(&self, field: &[u8]) -> Option<Slot> {
        let buf = &self.buf;
        let mut at = 0;
        while at < buf.len() {
            let f = get_str(buf, at);
            let v = get_str(buf, f.1);
            if &buf[f.0..f.1] == field {
                return Some(Slot { start: at, val: v });
            }
            at = v.1;
        }
        None
    }

    /// The `i`th pair (0-based), or None.
    fn nth(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.iter().nth(i)
    }
}

pub struct PackIter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let f = get_str(self.buf, self.at);
        let v = get_str(self.buf, f.1);
        self.at = v.1;
        Some((&self.buf[f.0..f.1], &self.buf[v.0..v.1]))
    }
}

/// A hashtable hash's iterator (the `Dict`'s, boxed: its type is unnameable).
pub type TableIter<'a> = dyn Iterator<Item = (&'a [u8], &'a SmallBytes)> + 'a;

/// Iterates a hash's pairs in its encoding's order.
pub enum HashIter<'a> {
    Pack(PackIter<'a>),
    Table(Box<TableIter<'a>>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HashIter::Pack(p) => p.next(),
            HashIter::Table(t) => t.next().map(|(k, v)| (k, &**v)),
        }
    }
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        match &self.repr {
            Repr::Pack(p) => Hash { repr: Repr::Pack(p.clone()) },
            Repr::Table(d) => {
                let mut n = Dict::new();
                for (k, v) in d.iter() {
                    n.insert_new(k.into(), v.clone());
                }
                Hash {
                    repr: Repr::Table(Box::new(n)),
                }
            }
        }
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding())?;
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))))
            .finish()
    }
}

/// Same fields with the same values (encoding and order do not matter).
impl PartialEq for Hash {
    fn eq(&self, o: &Hash) -> bool {
        self.len() == o.len() && self.iter().all(|(k, v)| o.get(k) == Some(v))
    }
}

impl Hash {
    /// An empty listpack-encoded hash (createHashObject).
    pub fn new() -> Hash {
        Hash {
            repr: Repr::Pack(Pack::default()),
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }

    /// Heap bytes held beyond the struct itself.
    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.buf.len(),
            Repr::Table(d) => std::mem::size_of::<Dict<SmallBytes>>() + d.overhead_bytes() + d.iter().map(|(k, v)| k.len() + v.heap_len()).sum::<usize>(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.n as usize,
            Repr::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Pack(p) => p.find(field).map(|s| &p.buf[s.val.0..s.val.1]),
            Repr::Table(d) => d.get(field).map(|v| &**v),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match &self.repr {
            Repr::Pack(p) => p.find(field).is_some(),
            Repr::Table(d) => d.contains(field),
        }
    }

    /// hashTypeConvert to the hashtable encoding (a no-op when already there).
    pub fn convert(&mut self) {
        if let Repr::Pack(p) = &self.repr {
            let mut d = Dict::new();
            for (k, v) in p.iter() {
                d.insert(k, SmallBytes::new(v));
            }
            self.repr = Repr::Table(Box::new(d));
        }
    }

    /// hashTypeSet: sets `field` to `value`; true when the field is new.
    /// A listpack hash converts first if either string is longer than
    /// `max_value`, and after the insert if it has more than `max_entries` pairs.
    pub fn set(&mut self, field: &[u8], value: &[u8], max_entries: usize, max_value: usize) -> bool {
        if self.is_packed() && (field.len() > max_value || value.len() > max_value) {
            self.convert();
        }
        let new = match &mut self.repr {
            Repr::Pack(p) => match p.find(field) {
                Some(s) => {
                    let mut enc = Vec::with_capacity(value.len() + 2);
                    put_len(&mut enc, value.len());
                    enc.extend_from_slice(value);
                    let hdr = s.val.0 - varint_len(s.val.1 - s.val.0);
                    p.edit(|b| {
                        b.splice(hdr..s.val.1, enc);
                    });
                    false
                }
                None => {
                    p.edit(|b| {
                        b.reserve_exact(field.len() + value.len() + varint_len(field.len()) + varint_len(value.len()));
                        put_len(b, field.len());
                        b.extend_from_slice(field);
                        put_len(b, value.len());
                        b.extend_from_slice(value);
                    });
                    p.n += 1;
                    true
                }
            },
            Repr::Table(d) => match d.get_mut(field) {
                Some(v) => {
                    *v = SmallBytes::new(value);
                    false
                }
                None => {
                    d.insert_new(field.into(), SmallBytes::new(value));
                    true
                }
            },
        };
        if self.is_packed() && self.len() > max_entries {
            self.convert();
        }
        new
    }

    /// hashTypeDelete: true when the field existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(p) => match p.find(field) {
                Some(s) => {
                    p.edit(|b| {
                        b.drain(s.start..s.val.1);
                    });
                    p.n -= 1;
                    true
                }
                None => false,
            },
            Repr::Table(d) => d.remove(field).is_some(),
        }
    }

    /// Every pair, in insertion order for a listpack hash.
    pub fn iter(&self) -> HashIter<'_> {
        match &self.repr {
            Repr::Pack(p) => HashIter::Pack(p.iter()),
            Repr::Table(d) => HashIter::Table(Box::new(d.iter())),
        }
    }

    /// A random pair (hashTypeRandomElement); `rand` yields u64s.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Pack(p) => {
                if p.n == 0 {
                    return None;
                }
                p.nth((rand() % p.n as u64) as usize)
            }
            Repr::Table(d) => d.random(rand).map(|(k, v)| (k, &**v)),
        }
    }

    /// One HSCAN step of a hashtable hash (see `Dict::scan`); None for a
    /// listpack hash, which HSCAN returns whole with cursor 0.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &[u8])) -> Option<u64> {
        match &self.repr {
            Repr::Pack(_) => None,
            Repr::Table(d) => Some(d.scan(cursor, |k, v| f(k, v))),
        }
    }
}

#[inline]
fn varint_len(n: usize) -> usize {
    varint::len(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_fits_inline_in_a_value() {
        assert_eq!(std::mem::size_of::<Hash>(), 24);
    }

    #[test]
    fn listpack_keeps_insertion_order_and_replaces_in_place() {
        let mut h = Hash::new();
        assert!(h.set(b"a", b"1", 128, 64));
        assert!(h.set(b"b", b"2", 128, 64));
        assert!(h.set(b"c", &[7u8; 200][..60], 128, 64));
        assert!(!h.set(b"a", &[9u8; 63], 128, 64));
        assert!(!h.set(b"b", b"", 128, 64));
        let order: Vec<&[u8]> = h.iter().map(|p| p.0).collect();
        assert_eq!(order, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(h.get(b"a"), Some(&[9u8; 63][..]));
        assert_eq!(h.get(b"b"), Some(&b""[..]));
        assert_eq!(h.encoding(), "listpack");
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"c").map(|v| v.len()), Some(60));
    }

    #[test]
    fn converts_on_long_strings_and_many_entries() {
        let mut h = Hash::new();
        h.set(b"f", &[1u8; 65], 128, 64);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        for i in 0..4 {
            h.set(format!("f{i}").as_bytes(), b"v", 3, 64);
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 4);
        let c = h.clone();
        assert_eq!(c, h);
        // Long varints survive the packed form.
        let mut h = Hash::new();
        let long = vec![b'x'; 300];
        h.set(&long, &long, 128, 1000);
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(h.get(&long), Some(&long[..]));
        h.set(&long, b"s", 128, 1000);
        assert_eq!(h.get(&long), Some(&b"s"[..]));
    }
}
