//! Stored values. Strings remember Redis's encoding choice (int / embstr / raw)
//! because OBJECT ENCODING and OBJECT REFCOUNT expose it.

use super::types::{Hash, List, Set, Stream, ZSet};
use crate::util::num::{string2ll, write_i64};

/// Redis's OBJ_SHARED_INTEGERS: small integers are shared objects.
pub const SHARED_INTEGERS: i64 = 10000;
/// Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT.
pub const EMBSTR_LIMIT: usize = 44;

/// Values must be Send: cross-shard RENAME/COPY move them between shards.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string holding a canonical 64-bit integer ("int" encoding).
    Int(i64),
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
        Value::Str { data: b.to_vec(), raw: false }
    }

    /// A string that Redis creates without trying the int encoding (e.g. INCRBYFLOAT's result).
    pub fn plain(data: Vec<u8>) -> Value {
        Value::Str { data, raw: false }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::Str { .. } => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Str { .. })
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
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
            Value::Int(_) => 0,
            Value::Str { data, .. } => data.capacity(),
            Value::List(l) => std::mem::size_of::<List>() + l.mem_usage(),
            Value::Hash(h) => h.mem_usage(),
            Value::Set(x) => std::mem::size_of::<Set>() + x.mem_usage(),
            Value::ZSet(z) => z.mem_usage(),
            Value::Stream(s) => std::mem::size_of::<Stream>() + s.mem_usage(),
        }
    }
}

/// A key's slot in the keyspace. Its TTL is kept by the `Db` (see db.rs).
#[derive(Clone, Debug)]
pub struct Entry {
    pub val: Value,
    /// LRU clock (seconds, 24 bits as Redis) of the last access, for OBJECT IDLETIME.
    pub lru: u32,
    /// LFU word (16 bits of minutes, 8 bits of counter), for OBJECT FREQ under LFU.
    pub lfu: u32,
}

impl Entry {
    /// A new object created at `now_ms` (createObject's access clock).
    pub fn new(val: Value, now_ms: u64) -> Entry {
        Entry {
            val,
            lru: super::db::lru_clock(now_ms),
            lfu: super::access::lfu_init(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's footprint is dominated by its table node: keep the value and
    /// the entry at these sizes (hashes live inline in the value).
    #[test]
    fn value_and_entry_stay_small() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }
}
