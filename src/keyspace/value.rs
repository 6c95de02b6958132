//! Stored values. Strings remember Redis's encoding choice (int / embstr / raw)
//! because OBJECT ENCODING and OBJECT REFCOUNT expose it.

use super::types::{Hash, List, Set, Stream, ZSet};
use crate::util::num::{string2ll, write_i64};

/// Redis's OBJ_SHARED_INTEGERS: small integers are shared objects.
pub const SHARED_INTEGERS: i64 = 10000;
/// Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT.
pub const EMBSTR_LIMIT: usize = 44;
/// Strings up to this length that were not modified in place live inside
/// the value (no allocation of their own): a `key:N -> 16-byte value` key
/// costs its table node and nothing else.
pub const SMALL_MAX: usize = 30;

/// A short string stored inline (reported as "embstr", as Redis would).
#[derive(Clone, Copy)]
pub struct Small {
    len: u8,
    buf: [u8; SMALL_MAX],
}

impl Small {
    #[inline]
    pub fn new(b: &[u8]) -> Option<Small> {
        if b.len() > SMALL_MAX {
            return None;
        }
        let mut buf = [0u8; SMALL_MAX];
        buf[..b.len()].copy_from_slice(b);
        Some(Small { len: b.len() as u8, buf })
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl PartialEq for Small {
    fn eq(&self, o: &Small) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl std::fmt::Debug for Small {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Values must be Send: cross-shard RENAME/COPY move them between shards.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string holding a canonical 64-bit integer ("int" encoding).
    Int(i64),
    /// A string of at most [`SMALL_MAX`] bytes, inline.
    Small(Small),
    /// Any other string; `raw` is true once it was modified in place (APPEND,
    /// SETRANGE) or created raw, which Redis reports as "raw" even when short.
    Str { data: Vec<u8>, raw: bool },
    /// A list (`keyspace/types/list.rs`).
    List(Box<List>),
    /// A hash (`keyspace/types/hash.rs`), inline: 24 bytes, so a small hash
    /// is a single allocation.
    Hash(Hash),
    /// A set (`keyspace/types/set.rs`).
    Set(Box<Set>),
    /// A sorted set (`keyspace/types/zset.rs`), inline: 24 bytes, so a small
    /// zset is a single allocation.
    ZSet(ZSet),
    /// A stream (`keyspace/types/stream.rs`).
    Stream(Box<Stream>),
}

impl Value {
    /// A string value as SET stores it after tryObjectEncoding.
    pub fn from_bytes(b: &[u8]) -> Value {
        if b.len() <= 20 {
            if let Some(v) = string2ll(b) {
                return Value::Int(v);
            }
        }
        match Small::new(b) {
            Some(s) => Value::Small(s),
            None => Value::Str { data: b.to_vec(), raw: false },
        }
    }

    /// A string that Redis creates without trying the int encoding (e.g. INCRBYFLOAT's result).
    pub fn plain(data: Vec<u8>) -> Value {
        match Small::new(&data) {
            Some(s) => Value::Small(s),
            None => Value::Str { data, raw: false },
        }
    }

    /// The bytes of a string that is not int-encoded; None for ints and
    /// non-string types.
    #[inline]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Small(s) => Some(s.as_bytes()),
            Value::Str { data, .. } => Some(data),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::Small(_) | Value::Str { .. } => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Small(_) | Value::Str { .. })
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Small(_) => "embstr",
            Value::Str { data, raw } => {
                if *raw || data.len() > EMBSTR_LIMIT {
                    "raw"
                } else {
                    "embstr"
                }
            }
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(x) => x.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }

    pub fn refcount(&self) -> i64 {
        match self {
            Value::Int(v) if (0..SHARED_INTEGERS).contains(v) => i32::MAX as i64,
            _ => 1,
        }
    }

    /// The string bytes (formatting ints); None for non-string types.
    pub fn str_bytes(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Value::Int(v) => {
                let mut b = Vec::with_capacity(20);
                write_i64(&mut b, *v);
                Some(std::borrow::Cow::Owned(b))
            }
            Value::Small(s) => Some(std::borrow::Cow::Borrowed(s.as_bytes())),
            Value::Str { data, .. } => Some(std::borrow::Cow::Borrowed(data)),
            _ => None,
        }
    }

    /// Length of the string form.
    pub fn str_len(&self) -> Option<usize> {
        match self {
            Value::Int(v) => {
                let mut b = Vec::with_capacity(20);
                write_i64(&mut b, *v);
                Some(b.len())
            }
            Value::Small(s) => Some(s.len as usize),
            Value::Str { data, .. } => Some(data.len()),
            _ => None,
        }
    }

    /// Mutable raw bytes for in-place edits (APPEND, SETRANGE); converts to raw.
    pub fn make_raw(&mut self) -> Option<&mut Vec<u8>> {
        if let Value::Int(v) = self {
            let mut b = Vec::with_capacity(20);
            write_i64(&mut b, *v);
            *self = Value::Str { data: b, raw: true };
        } else if let Value::Small(s) = self {
            *self = Value::Str {
                data: s.as_bytes().to_vec(),
                raw: true,
            };
        }
        match self {
            Value::Str { data, raw } => {
                *raw = true;
                Some(data)
            }
            _ => None,
        }
    }

    /// A hash's field (SORT's `key->field` patterns); None for a missing
    /// field or a value that is not a hash.
    pub fn hash_field(&self, field: &[u8]) -> Option<Vec<u8>> {
        match self {
            Value::Hash(h) => h.get(field).map(|v| v.to_vec()),
            _ => None,
        }
    }

    /// A new list of `items` in order (SORT ... STORE).
    pub fn list_from(items: Vec<Vec<u8>>) -> Value {
        let mut l = List::new();
        for i in &items {
            l.push_back(i);
        }
        Value::List(Box::new(l))
    }

    /// Rough heap footprint, for INFO memory.
    pub fn mem_usage(&self) -> usize {
        match self {
            Value::Int(_) | Value::Small(_) => 0,
            Value::Str { data, .. } => data.capacity(),
            Value::List(l) => std::mem::size_of::<List>() + l.mem_usage(),
            Value::Hash(h) => h.mem_usage(),
            Value::Set(x) => std::mem::size_of::<Set>() + x.mem_usage(),
            Value::ZSet(z) => z.mem_usage(),
            Value::Stream(s) => std::mem::size_of::<Stream>() + s.mem_usage(),
        }
    }
}

/// A key's entry out of its table (the table keeps it as an
/// [`Entry`](super::table::Entry) beside the key): what a deletion returns
/// and RENAME, MOVE, RESTORE and loading hand to the table.
#[derive(Clone, Debug)]
pub struct Item {
    pub val: Value,
    /// The access clock: LRU clock, or the LFU word under an LFU policy.
    pub meta: u32,
}

impl Item {
    /// A new object created at `now_ms` (createObject's access clock).
    pub fn new(val: Value, now_ms: u64) -> Item {
        Item {
            val,
            meta: super::access::init(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's footprint is its table node: keep the value at this size
    /// (hashes, zsets and strings up to SMALL_MAX bytes live inline in it).
    #[test]
    fn value_stays_small() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
    }
}
