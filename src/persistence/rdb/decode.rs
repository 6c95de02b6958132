//! Reading RDB: values of every type and encoding Redis 7.0 reads (for the
//! types Tessera has), key records and the file around them. Every read is
//! bounds-checked and every blob validated before it is used: bad input is
//! an [`Error`] with its offset, never a panic, and no allocation is sized
//! by an unchecked length.
//!
//! Values are built as Redis's `rdbLoadObject` builds them, so the encoding
//! OBJECT ENCODING reports after a load is Redis's: e.g. a ZSET_2 small
//! enough becomes a listpack, a HASH_LISTPACK with more pairs than
//! `hash-max-listpack-entries` a hashtable, an intset keeps its width.

use super::legacy::{parse_intset, parse_ziplist, parse_zipmap};
use super::listpack::{self, Item};
use super::{len, opcode, types, Error, Limits, CONTAINER_PACKED, CONTAINER_PLAIN, CRC64, RDB_VERSION};
use crate::keyspace::types::stream::{Consumer, Group, Nack, StreamId, INVALID_ENTRIES_READ};
use crate::keyspace::types::{Hash, List, Set, Stream, ZSet};
use crate::keyspace::Value;
use crate::util::num::string2ll;
use std::borrow::Cow;

/// Why a value could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// An empty collection (Redis skips such keys when loading a file).
    Empty,
    Corrupt(Error),
}

impl From<Error> for LoadError {
    fn from(e: Error) -> LoadError {
        LoadError::Corrupt(e)
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Empty => f.write_str("empty key"),
            LoadError::Corrupt(e) => e.fmt(f),
        }
    }
}

type R<T> = Result<T, Error>;

/// A cursor over RDB bytes; offsets are absolute in `buf`.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// A reader of `buf` starting at `pos`.
    pub fn at(buf: &'a [u8], pos: usize) -> Reader<'a> {
        Reader { buf, pos }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn err<T>(&self, at: usize, reason: impl Into<String>) -> R<T> {
        Err(Error {
            offset: at,
            reason: reason.into(),
        })
    }

    pub fn u8(&mut self) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.err(self.pos, "unexpected end of input"),
        }
    }

    pub fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.remaining() {
            return self.err(self.pos, format!("unexpected end of input: {} bytes needed, {} left", n, self.remaining()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// rdbLoadLenByRef: (value, is it a special string encoding).
    pub fn len(&mut self) -> R<(u64, bool)> {
        let at = self.pos;
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3f) as u64, false),
            1 => ((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false),
            2 if b == len::BITS32 => {
                let d = self.take(4)?;
                (u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as u64, false)
            }
            2 if b == len::BITS64 => {
                let d = self.take(8)?;
                (u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]), false)
            }
            2 => return self.err(at, format!("unknown length encoding {b} in rdbLoadLen()")),
            _ => ((b & 0x3f) as u64, true),
        })
    }

    /// A length that must not be a string encoding.
    pub fn plain_len(&mut self) -> R<u64> {
        let at = self.pos;
        match self.len()? {
            (n, false) => Ok(n),
            (_, true) => self.err(at, "a string encoding where a length was expected"),
        }
    }

    /// A length used as an in-memory size.
    fn size(&mut self) -> R<usize> {
        let at = self.pos;
        let n = self.plain_len()?;
        usize::try_from(n).or_else(|_| self.err(at, "length out of range"))
    }

    /// rdbGenericLoadStringObject: a raw, int-encoded or LZF string.
    pub fn string(&mut self) -> R<Cow<'a, [u8]>> {
        let at = self.pos;
        match self.len()? {
            (n, false) => {
                let n = usize::try_from(n).or_else(|_| self.err(at, "string length out of range"))?;
                Ok(Cow::Borrowed(self.take(n)?))
            }
            (e, true) => {
                let v = match e as u8 {
                    len::ENC_INT8 => self.u8()? as i8 as i64,
                    len::ENC_INT16 => {
                        let d = self.take(2)?;
                        i16::from_le_bytes([d[0], d[1]]) as i64
                    }
                    len::ENC_INT32 => {
                        let d = self.take(4)?;
                        i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64
                    }
                    len::ENC_LZF => {
                        let clen = self.size()?;
                        let ulen = self.size()?;
                        let data = self.take(clen)?;
                        // A back reference expands 3 bytes into at most 264:
                        // refuse lengths no LZF input of this size can reach.
                        if ulen > clen.saturating_mul(90).saturating_add(64) {
                            return self.err(at, format!("LZF string of {clen} bytes cannot expand to {ulen}"));
                        }
                        return match super::lzf::decompress(data, ulen) {
                            Ok(v) => Ok(Cow::Owned(v)),
                            Err(why) => self.err(at, format!("Invalid LZF compressed string: {why}")),
                        };
                    }
                    other => return self.err(at, format!("Unknown RDB string encoding type {other}")),
                };
                let mut b = Vec::with_capacity(20);
                crate::util::num::write_i64(&mut b, v);
                Ok(Cow::Owned(b))
            }
        }
    }

    /// Moves past a string without decoding it.
    pub fn skip_string(&mut self) -> R<()> {
        let at = self.pos;
        match self.len()? {
            (n, false) => {
                let n = usize::try_from(n).or_else(|_| self.err(at, "string length out of range"))?;
                self.take(n)?;
            }
            (e, true) => match e as u8 {
                len::ENC_INT8 => drop(self.take(1)?),
                len::ENC_INT16 => drop(self.take(2)?),
                len::ENC_INT32 => drop(self.take(4)?),
                len::ENC_LZF => {
                    let clen = self.size()?;
                    self.size()?;
                    self.take(clen)?;
                }
                other => return self.err(at, format!("Unknown RDB string encoding type {other}")),
            },
        }
        Ok(())
    }

    /// rdbLoadMillisecondTime.
    pub fn millis(&mut self) -> R<i64> {
        let d = self.take(8)?;
        Ok(i64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]))
    }

    /// rdbLoadDoubleValue (ZSET's string scores): 253 NaN, 254 +inf, 255
    /// -inf, else a length and the number's text.
    fn double_text(&mut self) -> R<f64> {
        let at = self.pos;
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let t = self.take(n as usize)?;
                match strtod_prefix(t) {
                    Some(v) => Ok(v),
                    None => self.err(at, "invalid double value"),
                }
            }
        }
    }

    fn double_bin(&mut self) -> R<f64> {
        let d = self.take(8)?;
        Ok(f64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]))
    }

    /// Moves past a value of type `t` without building it (the loader's
    /// parser thread; the owning shard decodes it).
    pub fn skip_value(&mut self, t: u8) -> R<()> {
        let at = self.pos;
        match t {
            types::STRING
            | types::HASH_ZIPMAP
            | types::LIST_ZIPLIST
            | types::SET_INTSET
            | types::ZSET_ZIPLIST
            | types::HASH_ZIPLIST
            | types::HASH_LISTPACK
            | types::ZSET_LISTPACK => self.skip_string(),
            types::LIST | types::SET | types::LIST_QUICKLIST => {
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                }
                Ok(())
            }
            types::HASH => {
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                    self.skip_string()?;
                }
                Ok(())
            }
            types::ZSET => {
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                    self.double_text()?;
                }
                Ok(())
            }
            types::ZSET_2 => {
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                    self.take(8)?;
                }
                Ok(())
            }
            types::LIST_QUICKLIST_2 => {
                for _ in 0..self.plain_len()? {
                    self.plain_len()?;
                    self.skip_string()?;
                }
                Ok(())
            }
            types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => {
                let v2 = t == types::STREAM_LISTPACKS_2;
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                    self.skip_string()?;
                }
                for _ in 0..if v2 { 8 } else { 3 } {
                    self.plain_len()?;
                }
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                    for _ in 0..if v2 { 3 } else { 2 } {
                        self.plain_len()?;
                    }
                    for _ in 0..self.plain_len()? {
                        self.take(24)?;
                        self.plain_len()?;
                    }
                    for _ in 0..self.plain_len()? {
                        self.skip_string()?;
                        self.take(8)?;
                        let n = self.plain_len()?;
                        let bytes = n.checked_mul(16).and_then(|b| usize::try_from(b).ok()).ok_or_else(|| Error {
                            offset: self.pos,
                            reason: "stream PEL size out of range".into(),
                        })?;
                        self.take(bytes)?;
                    }
                }
                Ok(())
            }
            _ => self.err(at, unsupported_type(t)),
        }
    }

    /// rdbLoadObject: a value of type `t`, built with the encodings Redis's
    /// loader would choose under `lim`.
    pub fn value(&mut self, t: u8, lim: &Limits) -> Result<Value, LoadError> {
        let at = self.pos;
        Ok(match t {
            types::STRING => string_value(self.string()?),
            types::LIST => {
                let n = self.plain_len()?;
                if n == 0 {
                    return Err(LoadError::Empty);
                }
                let mut l = List::new();
                for _ in 0..n {
                    l.push_back(&self.string()?);
                }
                Value::List(Box::new(l))
            }
            types::SET => self.set(lim)?,
            types::ZSET | types::ZSET_2 => self.zset(t == types::ZSET_2, lim)?,
            types::HASH => self.hash(lim)?,
            types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => self.quicklist(t == types::LIST_QUICKLIST_2)?,
            types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => self.stream(t == types::STREAM_LISTPACKS_2)?,
            types::HASH_ZIPMAP => {
                let blob = self.string()?;
                let pairs = parse_zipmap(&blob).or_else(|e| self.err(at, format!("Zipmap integrity check failed: {e}")))?;
                let maxlen = pairs.iter().map(|(f, v)| f.len().max(v.len())).max().unwrap_or(0);
                let to_table = pairs.len() > lim.hash_entries || maxlen > lim.hash_value;
                self.hash_from_pairs(pairs.iter().map(|(f, v)| (Item::Str(f), Item::Str(v))), to_table, at)?
            }
            types::LIST_ZIPLIST => {
                let blob = self.string()?;
                let items = parse_ziplist(&blob).or_else(|e| self.err(at, format!("List ziplist integrity check failed: {e}")))?;
                if items.is_empty() {
                    return Err(LoadError::Empty);
                }
                let mut l = List::new();
                for i in items {
                    i.with(|b| l.push_back(b));
                }
                Value::List(Box::new(l))
            }
            types::SET_INTSET => {
                let blob = self.string()?;
                let (width, members) = parse_intset(&blob).or_else(|e| self.err(at, format!("Intset integrity check failed: {e}")))?;
                let mut s = Set::from_intset(width, &members);
                if members.len() > lim.set_intset {
                    s.convert();
                }
                Value::Set(Box::new(s))
            }
            types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
                let blob = self.string()?;
                let items = if t == types::ZSET_ZIPLIST {
                    parse_ziplist(&blob)
                } else {
                    listpack::parse(&blob)
                };
                let items = items.or_else(|e| self.err(at, format!("Zset listpack integrity check failed: {e}")))?;
                if items.len() % 2 != 0 {
                    return Err(corrupt(at, "Zset listpack with an odd number of elements"));
                }
                if items.is_empty() {
                    return Err(LoadError::Empty);
                }
                let n = items.len() / 2;
                let mut z = ZSet::new(n > lim.zset_entries);
                for p in items.chunks_exact(2) {
                    let score = match p[1] {
                        Item::Int(v) => v as f64,
                        Item::Str(s) => strtod_prefix(s).unwrap_or(0.0),
                    };
                    if score.is_nan() {
                        return Err(corrupt(at, "Zset with NAN score detected"));
                    }
                    let dup = p[0].with(|m| {
                        if z.score(m).is_some() {
                            return true;
                        }
                        z.insert_new(score, m);
                        false
                    });
                    if dup {
                        return Err(corrupt(at, "Duplicate zset fields detected"));
                    }
                }
                Value::ZSet(z)
            }
            types::HASH_ZIPLIST | types::HASH_LISTPACK => {
                let blob = self.string()?;
                let items = if t == types::HASH_ZIPLIST {
                    parse_ziplist(&blob)
                } else {
                    listpack::parse(&blob)
                };
                let items = items.or_else(|e| self.err(at, format!("Hash listpack integrity check failed: {e}")))?;
                if items.len() % 2 != 0 {
                    return Err(corrupt(at, "Hash listpack with an odd number of elements"));
                }
                let to_table = items.len() / 2 > lim.hash_entries;
                self.hash_from_pairs(items.chunks_exact(2).map(|p| (p[0], p[1])), to_table, at)?
            }
            _ => return Err(corrupt(at, unsupported_type(t))),
        })
    }

    fn set(&mut self, lim: &Limits) -> Result<Value, LoadError> {
        let at = self.pos;
        let n = self.plain_len()?;
        if n == 0 {
            return Err(LoadError::Empty);
        }
        let mut s = if n > lim.set_intset.min(1 << 30) as u64 {
            Set::new_table()
        } else {
            Set::new_intset()
        };
        for _ in 0..n {
            let m = self.string()?;
            // The intset converts on the first non-integer member only: n fits it.
            if !s.add(&m, usize::MAX) {
                return Err(corrupt(at, "Duplicate set members detected"));
            }
        }
        Ok(Value::Set(Box::new(s)))
    }

    fn zset(&mut self, binary: bool, lim: &Limits) -> Result<Value, LoadError> {
        let at = self.pos;
        let n = self.plain_len()?;
        if n == 0 {
            return Err(LoadError::Empty);
        }
        let mut elems: Vec<(f64, Cow<'a, [u8]>)> = Vec::with_capacity((n as usize).min(self.remaining()));
        let (mut maxlen, mut total) = (0usize, 0usize);
        for _ in 0..n {
            let m = self.string()?;
            let s = if binary { self.double_bin()? } else { self.double_text()? };
            if s.is_nan() {
                return Err(corrupt(at, "Zset with NAN score detected"));
            }
            maxlen = maxlen.max(m.len());
            total = total.saturating_add(m.len());
            elems.push((s, m));
        }
        // Redis builds a skiplist and converts it when small enough.
        let packed = elems.len() <= lim.zset_entries && maxlen <= lim.zset_value && total <= 1 << 30;
        elems.sort_by(|a, b| crate::keyspace::types::zset::cmp_elem(a.0, &a.1, b.0, &b.1));
        let mut z = ZSet::new(!packed);
        for (s, m) in &elems {
            if z.score(m).is_some() {
                return Err(corrupt(at, "Duplicate zset fields detected"));
            }
            z.insert_new(*s, m);
        }
        Ok(Value::ZSet(z))
    }

    fn hash(&mut self, lim: &Limits) -> Result<Value, LoadError> {
        let at = self.pos;
        let n = self.plain_len()?;
        if n == 0 {
            return Err(LoadError::Empty);
        }
        let mut h = Hash::new();
        if n > lim.hash_entries as u64 {
            h.convert();
        }
        for _ in 0..n {
            let f = self.string()?;
            let v = self.string()?;
            // A listpack hash converts when a string is longer than the limit.
            if !h.set(&f, &v, usize::MAX, lim.hash_value) {
                return Err(corrupt(at, "Duplicate hash fields detected"));
            }
        }
        Ok(Value::Hash(h))
    }

    /// A hash from a blob's pairs: a listpack, or a hashtable when `to_table`.
    fn hash_from_pairs<'b>(&self, pairs: impl Iterator<Item = (Item<'b>, Item<'b>)>, to_table: bool, at: usize) -> Result<Value, LoadError> {
        let mut h = Hash::new();
        if to_table {
            h.convert();
        }
        for (f, v) in pairs {
            let new = f.with(|f| v.with(|v| h.set(f, v, usize::MAX, usize::MAX)));
            if !new {
                return Err(corrupt(at, "Duplicate hash fields detected"));
            }
        }
        if h.is_empty() {
            return Err(LoadError::Empty);
        }
        Ok(Value::Hash(h))
    }

    /// LIST_QUICKLIST (ziplist nodes) and LIST_QUICKLIST_2 (a container
    /// marker, then a listpack or, for a plain node, the element itself).
    fn quicklist(&mut self, v2: bool) -> Result<Value, LoadError> {
        let n = self.plain_len()?;
        if n == 0 {
            return Err(LoadError::Empty);
        }
        let mut l = List::new();
        for _ in 0..n {
            let mut container = CONTAINER_PACKED;
            if v2 {
                let at = self.pos;
                container = self.plain_len()?;
                if container != CONTAINER_PACKED && container != CONTAINER_PLAIN {
                    return Err(corrupt(at, "Quicklist integrity check failed."));
                }
            }
            let at = self.pos;
            let blob = self.string()?;
            if blob.is_empty() {
                return Err(corrupt(at, "empty quicklist node"));
            }
            if container == CONTAINER_PLAIN {
                l.push_back(&blob);
                continue;
            }
            let items = if v2 {
                listpack::parse(&blob).or_else(|e| self.err(at, format!("Listpack integrity check failed: {e}")))?
            } else {
                parse_ziplist(&blob).or_else(|e| self.err(at, format!("Ziplist integrity check failed: {e}")))?
            };
            for i in items {
                i.with(|b| l.push_back(b));
            }
        }
        if l.is_empty() {
            return Err(LoadError::Empty);
        }
        Ok(Value::List(Box::new(l)))
    }
}

impl Reader<'_> {
    fn id_pair(&mut self) -> R<StreamId> {
        Ok(StreamId::new(self.plain_len()?, self.plain_len()?))
    }

    fn raw_id(&mut self) -> R<StreamId> {
        let at = self.pos;
        StreamId::decode(self.take(16)?).ok_or_else(|| Error {
            offset: at,
            reason: "bad stream ID".into(),
        })
    }

    /// STREAM_LISTPACKS (Redis 5/6) and STREAM_LISTPACKS_2 (7.0), as
    /// rdbLoadObject reads them; every node listpack is checked as
    /// streamValidateListpackIntegrity's deep mode does (and its counts
    /// against its entries' flags) before the stream uses it.
    fn stream(&mut self, v2: bool) -> Result<Value, LoadError> {
        let mut s = Stream::new();
        let nodes = self.plain_len()?;
        let mut live_total: u64 = 0;
        for _ in 0..nodes {
            let at = self.pos;
            let key = self.string()?;
            let Some(mid) = StreamId::decode(&key) else {
                return Err(corrupt(at, "Stream node key entry is not the size of a stream ID"));
            };
            let at = self.pos;
            let lp = self.string()?.into_owned();
            let live = validate_stream_listpack(&lp).map_err(|e| corrupt(at, format!("Stream listpack integrity check failed: {e}")))?;
            if !s.push_loaded_node(mid, lp) {
                return Err(corrupt(at, "Listpack re-added with existing key"));
            }
            live_total += live;
        }
        let at = self.pos;
        s.length = self.plain_len()?;
        s.last_id = self.id_pair()?;
        if v2 {
            s.first_id = self.id_pair()?;
            s.max_deleted_entry_id = self.id_pair()?;
            s.entries_added = self.plain_len()?;
        } else {
            s.entries_added = s.length;
            s.first_id = s.edge_id(true).unwrap_or(StreamId::MAX);
        }
        if s.length != live_total {
            return Err(corrupt(at, "Stream length inconsistent with rax entries"));
        }
        let ngroups = self.plain_len()?;
        for _ in 0..ngroups {
            let at = self.pos;
            let name: Box<[u8]> = self.string()?.into_owned().into();
            let last = self.id_pair()?;
            let entries_read = if v2 {
                self.plain_len()? as i64
            } else {
                s.estimate_distance(last).map(|v| v as i64).unwrap_or(INVALID_ENTRIES_READ)
            };
            if s.groups.contains_key(&name) {
                return Err(corrupt(at, format!("Duplicated consumer group name {}", String::from_utf8_lossy(&name))));
            }
            let mut g = Group::new(last, entries_read);
            let mut owners: std::collections::BTreeMap<StreamId, Option<Box<[u8]>>> = Default::default();
            let mut times = Vec::new();
            for _ in 0..self.plain_len()? {
                let at = self.pos;
                let id = self.raw_id()?;
                let t = self.millis()?;
                let c = self.plain_len()?;
                if owners.insert(id, None).is_some() {
                    return Err(corrupt(at, "Duplicated global PEL entry loading stream consumer group"));
                }
                times.push((id, t as u64, c));
            }
            for _ in 0..self.plain_len()? {
                let at = self.pos;
                let cname: Box<[u8]> = self.string()?.into_owned().into();
                let seen = self.millis()? as u64;
                if g.consumers.contains_key(&cname) {
                    return Err(corrupt(at, "Duplicate stream consumer detected."));
                }
                let mut c = Consumer {
                    seen_time: seen,
                    pel: Default::default(),
                };
                for _ in 0..self.plain_len()? {
                    let at = self.pos;
                    let id = self.raw_id()?;
                    match owners.get_mut(&id) {
                        None => return Err(corrupt(at, "Consumer entry not found in group global PEL")),
                        Some(o) => *o = Some(cname.clone()),
                    }
                    if !c.pel.insert(id) {
                        return Err(corrupt(at, "Duplicated consumer PEL entry  loading a stream consumer group"));
                    }
                }
                g.consumers.insert(cname, c);
            }
            for (id, t, c) in times {
                let Some(Some(owner)) = owners.remove(&id) else {
                    return Err(corrupt(at, "Stream CG PEL entry without consumer"));
                };
                g.pel.insert(
                    id,
                    Nack {
                        delivery_time: t,
                        delivery_count: c,
                        consumer: owner,
                    },
                );
            }
            s.groups.insert(name, g);
        }
        Ok(Value::Stream(Box::new(s)))
    }
}

/// The deep check of a stream node (streamValidateListpackIntegrity), plus
/// its live count against its flags. Returns the live entries.
fn validate_stream_listpack(lp: &[u8]) -> Result<u64, String> {
    let items = listpack::parse(lp)?;
    let mut it = items.iter();
    let int = |e: Option<&Item>| -> Result<i64, String> {
        match e {
            Some(Item::Int(v)) => Ok(*v),
            Some(Item::Str(s)) => string2ll(s).ok_or_else(|| "a stream counter is not an integer".to_string()),
            None => Err("stream listpack ends early".into()),
        }
    };
    let count = int(it.next())?;
    let deleted = int(it.next())?;
    let master_fields = int(it.next())?;
    if count < 0 || deleted < 0 || master_fields < 0 || count + deleted == 0 {
        return Err("bad master entry".into());
    }
    for _ in 0..master_fields {
        it.next().ok_or("stream listpack ends early")?;
    }
    if int(it.next())? != 0 {
        return Err("master entry without its zero terminator".into());
    }
    let mut live = 0i64;
    for _ in 0..count + deleted {
        let flags = int(it.next())?;
        int(it.next())?;
        int(it.next())?;
        let mut fields = master_fields;
        let mut extra = 3;
        if flags & 2 == 0 {
            fields = int(it.next())?;
            if fields < 0 {
                return Err("negative field count".into());
            }
            for _ in 0..fields {
                it.next().ok_or("stream listpack ends early")?;
            }
            extra += fields + 1;
        }
        for _ in 0..fields {
            it.next().ok_or("stream listpack ends early")?;
        }
        if int(it.next())? != fields + extra {
            return Err("bad lp-count".into());
        }
        if flags & 1 == 0 {
            live += 1;
        }
    }
    if it.next().is_some() {
        return Err("trailing elements".into());
    }
    if live != count {
        return Err("master count does not match the live entries".into());
    }
    Ok(live as u64)
}

fn corrupt(at: usize, reason: impl Into<String>) -> LoadError {
    LoadError::Corrupt(Error {
        offset: at,
        reason: reason.into(),
    })
}

fn unsupported_type(t: u8) -> String {
    match t {
        types::MODULE | types::MODULE_2 => format!("module value (type {t}): Tessera has no modules"),
        _ => format!("Unknown RDB encoding type {t}"),
    }
}

/// A loaded string as tryObjectEncoding leaves it: "int" when it is a
/// canonical 64-bit integer, else embstr / raw by length.
fn string_value(s: Cow<'_, [u8]>) -> Value {
    if s.len() <= 20 {
        if let Some(v) = string2ll(&s) {
            return Value::Int(v);
        }
    }
    Value::plain(s.into_owned())
}

/// C `strtod` on the bytes (as `sscanf("%lg")` / zzlStrtod read a score):
/// the number at the start, None when there is none.
fn strtod_prefix(b: &[u8]) -> Option<f64> {
    let mut c = Vec::with_capacity(b.len() + 1);
    c.extend_from_slice(b);
    c.push(0);
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let v = unsafe { libc::strtod(c.as_ptr() as *const libc::c_char, &mut end) };
    if std::ptr::eq(end as *const libc::c_char, c.as_ptr() as *const libc::c_char) {
        None
    } else {
        Some(v)
    }
}

// ---------------------------------------------------------------------------
// DUMP payloads
// ---------------------------------------------------------------------------

/// verifyDumpPayload: at least the 10-byte footer, a version not newer than
/// ours, and (unless `skip_crc`) a matching CRC64.
pub fn verify_payload(p: &[u8], skip_crc: bool) -> bool {
    if p.len() < 10 {
        return false;
    }
    let footer = &p[p.len() - 10..];
    let ver = u16::from_le_bytes([footer[0], footer[1]]);
    if ver > RDB_VERSION {
        return false;
    }
    if skip_crc {
        return true;
    }
    let crc = CRC64.checksum(&p[..p.len() - 8]);
    crc.to_le_bytes() == footer[2..10]
}

/// The value of a verified DUMP payload (rdbLoadObjectType + rdbLoadObject).
pub fn payload_value(p: &[u8], lim: &Limits) -> Result<Value, LoadError> {
    let body = &p[..p.len().saturating_sub(10)];
    let mut r = Reader::new(body);
    let t = r.u8()?;
    if !types::is_object_type(t) {
        return Err(LoadError::Corrupt(Error {
            offset: 0,
            reason: format!("invalid object type {t}"),
        }));
    }
    r.value(t, lim)
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// One item of an RDB file (after the magic), in file order.
#[derive(Debug)]
pub enum Record<'a> {
    Aux(Cow<'a, [u8]>, Cow<'a, [u8]>),
    SelectDb(u64),
    ResizeDb(u64, u64),
    /// A function library's code (FUNCTION / FUNCTION2 opcodes).
    Function(Cow<'a, [u8]>),
    Key(KeyRecord<'a>),
    /// The EOF opcode; the CRC64 that follows it (version >= 5), if any.
    Eof(Option<u64>),
}

/// A key and where its value starts (the parser moved past it).
#[derive(Debug)]
pub struct KeyRecord<'a> {
    /// The database selected by the last SELECTDB (0 before any).
    pub db: u64,
    /// Absolute expiry in Unix ms (EXPIRETIME / EXPIRETIME_MS), if any.
    pub expire_ms: Option<i64>,
    /// RDB_OPCODE_IDLE seconds / RDB_OPCODE_FREQ counter before the key.
    pub idle: Option<u64>,
    pub freq: Option<u8>,
    pub rtype: u8,
    pub key: Cow<'a, [u8]>,
    /// Offset of the value in the file (decode it with `Reader::at(..).value`).
    pub value_at: usize,
}

/// Walks an RDB file record by record.
pub struct FileParser<'a> {
    r: Reader<'a>,
    pub version: u32,
    db: u64,
    done: bool,
}

impl<'a> FileParser<'a> {
    /// Checks the magic ("REDIS" and a version 1..=10).
    pub fn new(buf: &'a [u8]) -> R<FileParser<'a>> {
        let mut r = Reader::new(buf);
        let magic = r.take(9).map_err(|_| Error {
            offset: 0,
            reason: "Short read: no RDB header".into(),
        })?;
        if &magic[..5] != b"REDIS" {
            return Err(Error {
                offset: 0,
                reason: "Wrong signature trying to load DB from file".into(),
            });
        }
        // atoi(): the leading digits.
        let version = magic[5..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .fold(0u32, |v, c| v * 10 + (c - b'0') as u32);
        if version < 1 || version > RDB_VERSION as u32 {
            return Err(Error {
                offset: 5,
                reason: format!("Can't handle RDB format version {version}"),
            });
        }
        Ok(FileParser {
            r,
            version,
            db: 0,
            done: false,
        })
    }

    pub fn pos(&self) -> usize {
        self.r.pos()
    }

    /// The next record. After `Eof` there are none (an error if asked).
    pub fn next_record(&mut self) -> R<Record<'a>> {
        if self.done {
            return self.r.err(self.r.pos(), "read past the EOF opcode");
        }
        let (mut expire_ms, mut idle, mut freq) = (None, None, None);
        loop {
            let at = self.r.pos();
            let t = self.r.u8()?;
            match t {
                opcode::EXPIRETIME => {
                    let d = self.r.take(4)?;
                    expire_ms = Some(i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64 * 1000);
                }
                opcode::EXPIRETIME_MS => expire_ms = Some(self.r.millis()?),
                opcode::FREQ => freq = Some(self.r.u8()?),
                opcode::IDLE => idle = Some(self.r.plain_len()?),
                opcode::EOF => {
                    self.done = true;
                    let sum = if self.version >= 5 {
                        let d = self.r.take(8)?;
                        Some(u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]))
                    } else {
                        None
                    };
                    return Ok(Record::Eof(sum));
                }
                opcode::SELECTDB => {
                    self.db = self.r.plain_len()?;
                    return Ok(Record::SelectDb(self.db));
                }
                opcode::RESIZEDB => {
                    let a = self.r.plain_len()?;
                    let b = self.r.plain_len()?;
                    return Ok(Record::ResizeDb(a, b));
                }
                opcode::AUX => {
                    let k = self.r.string()?;
                    let v = self.r.string()?;
                    return Ok(Record::Aux(k, v));
                }
                opcode::MODULE_AUX => {
                    return self
                        .r
                        .err(at, "The RDB file contains AUX module data Tessera can't load: Tessera has no modules");
                }
                opcode::FUNCTION2 => return Ok(Record::Function(self.r.string()?)),
                opcode::FUNCTION => {
                    // 7.0 release candidates: name, engine, optional description, code.
                    self.r.skip_string()?;
                    self.r.skip_string()?;
                    if self.r.plain_len()? != 0 {
                        self.r.skip_string()?;
                    }
                    return Ok(Record::Function(self.r.string()?));
                }
                t if types::is_object_type(t) => {
                    let key = self.r.string()?;
                    let value_at = self.r.pos();
                    self.r.skip_value(t)?;
                    return Ok(Record::Key(KeyRecord {
                        db: self.db,
                        expire_ms,
                        idle,
                        freq,
                        rtype: t,
                        key,
                        value_at,
                    }));
                }
                t => return self.r.err(at, format!("Unknown RDB opcode or type {t}")),
            }
        }
    }

    /// The CRC64 of the file up to (excluding) the 8 checksum bytes: call
    /// after `Eof(Some(_))`.
    pub fn computed_crc(&self) -> u64 {
        CRC64.checksum(&self.r.buf[..self.r.pos() - 8])
    }
}
