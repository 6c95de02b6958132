//! Writing RDB: values in the encodings Redis 7.0 writes, key records, file
//! header and trailer, DUMP payloads.

use super::legacy::write_intset;
use super::listpack::Builder;
use super::{len, opcode, types, CONTAINER_PACKED, CONTAINER_PLAIN, CRC64, RDB_VERSION};
use crate::keyspace::types::{Hash, List, Set, Stream, ZSet};
use crate::keyspace::Value;
use crate::util::num::{double2ll, string2ll, write_i64};

/// quicklist's packed_threshold: an element this large gets a plain node.
const PACKED_THRESHOLD: usize = 1 << 30;
/// quicklist's SIZE_SAFETY_LIMIT and SIZE_ESTIMATE_OVERHEAD.
const SIZE_SAFETY_LIMIT: usize = 8192;
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// quicklist's optimization_level (fill -1 ... -5).
const LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];

/// Appends RDB items to a byte buffer.
pub struct Encoder {
    pub buf: Vec<u8>,
    /// `rdbcompression`: LZF for strings longer than 20 bytes when it pays.
    pub compress: bool,
    /// `list-max-listpack-size`: how list nodes are split.
    pub list_fill: i64,
}

/// The access hint saved before a key (rdbSaveKeyValuePair under an LRU or
/// LFU `maxmemory-policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessHint {
    None,
    /// Seconds since the last access (RDB_OPCODE_IDLE).
    Idle(u64),
    /// The LFU counter (RDB_OPCODE_FREQ).
    Freq(u8),
}

impl Encoder {
    pub fn new(compress: bool) -> Encoder {
        Encoder {
            buf: Vec::new(),
            compress,
            list_fill: crate::keyspace::types::limits::list_fill(),
        }
    }

    #[inline]
    pub fn put_u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// rdbSaveLen: 6, 14, 32 or 64 bits (big endian beyond 6).
    pub fn put_len(&mut self, n: u64) {
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else if n <= u32::MAX as u64 {
            self.buf.push(len::BITS32);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(len::BITS64);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// rdbEncodeInteger: the 8, 16 or 32-bit integer encoding, if `v` fits.
    fn put_encoded_int(&mut self, v: i64) -> bool {
        if let Ok(x) = i8::try_from(v) {
            self.buf.extend_from_slice(&[0xC0 | len::ENC_INT8, x as u8]);
        } else if let Ok(x) = i16::try_from(v) {
            self.buf.push(0xC0 | len::ENC_INT16);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else if let Ok(x) = i32::try_from(v) {
            self.buf.push(0xC0 | len::ENC_INT32);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else {
            return false;
        }
        true
    }

    /// rdbSaveRawString: int-encoded if it is a short canonical integer that
    /// fits 32 bits, LZF-compressed if compression is on, it is longer than
    /// 20 bytes and compresses by at least 4 bytes, verbatim otherwise.
    pub fn put_string(&mut self, s: &[u8]) {
        if s.len() <= 11 {
            if let Some(v) = string2ll(s) {
                if self.put_encoded_int(v) {
                    return;
                }
            }
        }
        if self.compress && s.len() > 20 {
            if let Some(c) = super::lzf::compress(s, s.len() - 4) {
                self.buf.push(0xC0 | len::ENC_LZF);
                self.put_len(c.len() as u64);
                self.put_len(s.len() as u64);
                self.buf.extend_from_slice(&c);
                return;
            }
        }
        self.put_len(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    /// rdbSaveLongLongAsStringObject: an int-encoded string object.
    pub fn put_int_string(&mut self, v: i64) {
        if !self.put_encoded_int(v) {
            let mut b = Vec::with_capacity(20);
            write_i64(&mut b, v);
            self.put_len(b.len() as u64);
            self.buf.extend_from_slice(&b);
        }
    }

    /// rdbSaveMillisecondTime: an i64, little endian.
    pub fn put_millis(&mut self, ms: i64) {
        self.buf.extend_from_slice(&ms.to_le_bytes());
    }

    /// rdbSaveObjectType + rdbSaveObject.
    pub fn put_typed_value(&mut self, v: &Value) {
        self.put_u8(value_type(v));
        self.put_value(v);
    }

    /// rdbSaveObject: the value in the encoding its type byte announces.
    pub fn put_value(&mut self, v: &Value) {
        match v {
            Value::Int(i) => self.put_int_string(*i),
            Value::Small(s) => self.put_string(s.as_bytes()),
            Value::Str { data, .. } => self.put_string(data),
            Value::List(l) => self.put_list(l),
            Value::Set(s) => self.put_set(s),
            Value::ZSet(z) => self.put_zset(z),
            Value::Hash(h) => self.put_hash(h),
            Value::Stream(st) => self.put_stream(st),
        }
    }

    /// STREAM_LISTPACKS_2, what Redis 7.0 writes (rdbSaveObject's OBJ_STREAM case): the nodes as
    /// they are (16-byte master ID + listpack), the stream's counters, then
    /// every group with its PEL and consumers.
    fn put_stream(&mut self, s: &Stream) {
        self.put_len(s.node_count() as u64);
        for (id, lp) in s.nodes() {
            self.put_string(&id.encode());
            self.put_string(lp);
        }
        self.put_len(s.length);
        for id in [s.last_id, s.first_id, s.max_deleted_entry_id] {
            self.put_len(id.ms);
            self.put_len(id.seq);
        }
        self.put_len(s.entries_added);
        self.put_len(s.groups.len() as u64);
        for (name, g) in &s.groups {
            self.put_string(name);
            self.put_len(g.last_id.ms);
            self.put_len(g.last_id.seq);
            self.put_len(g.entries_read as u64);
            self.put_len(g.pel.len() as u64);
            for (id, n) in &g.pel {
                self.buf.extend_from_slice(&id.encode());
                self.put_millis(n.delivery_time as i64);
                self.put_len(n.delivery_count);
            }
            self.put_len(g.consumers.len() as u64);
            for (cname, c) in &g.consumers {
                self.put_string(cname);
                self.put_millis(c.seen_time as i64);
                self.put_len(c.pel.len() as u64);
                for id in &c.pel {
                    self.buf.extend_from_slice(&id.encode());
                }
            }
        }
    }

    /// LIST_QUICKLIST_2: the listpack nodes RPUSH of these elements would
    /// build under `list-max-listpack-size` (quicklistPushTail's
    /// _quicklistNodeAllowInsert), each `container` + the node as a string.
    fn put_list(&mut self, l: &List) {
        enum Node<'a> {
            Packed(Builder),
            Plain(&'a [u8]),
        }
        let fill = self.list_fill;
        let mut nodes: Vec<Node> = Vec::new();
        for e in l.iter() {
            if e.len() >= PACKED_THRESHOLD {
                nodes.push(Node::Plain(e));
                continue;
            }
            let fits = match nodes.last() {
                Some(Node::Packed(b)) => allow_insert(b.bytes(), b.count(), fill, e.len()),
                _ => false,
            };
            if !fits {
                nodes.push(Node::Packed(Builder::new()));
            }
            if let Some(Node::Packed(b)) = nodes.last_mut() {
                b.push(e);
            }
        }
        self.put_len(nodes.len() as u64);
        for n in nodes {
            match n {
                Node::Packed(b) => {
                    self.put_len(CONTAINER_PACKED);
                    self.put_string(&b.finish());
                }
                Node::Plain(e) => {
                    self.put_len(CONTAINER_PLAIN);
                    self.put_string(e);
                }
            }
        }
    }

    /// SET_INTSET (the intset blob, at the width it has) or SET.
    fn put_set(&mut self, s: &Set) {
        match s.intset_width() {
            Some(w) => {
                let members: Vec<i64> = s
                    .iter()
                    .map(|m| match m {
                        crate::keyspace::types::set::Member::Int(v) => v,
                        crate::keyspace::types::set::Member::Str(b) => string2ll(b).unwrap_or(0),
                    })
                    .collect();
                self.put_string(&write_intset(w, members.into_iter()));
            }
            None => {
                self.put_len(s.len() as u64);
                for m in s.iter() {
                    m.with(|b| self.put_string(b));
                }
            }
        }
    }

    /// ZSET_LISTPACK (member, score pairs in order, as zzlInsertAt stores
    /// them) or ZSET_2 (from the greatest element down, binary scores).
    fn put_zset(&mut self, z: &ZSet) {
        if z.is_skiplist() {
            self.put_len(z.len() as u64);
            for (score, m) in z.range(0, z.len(), true) {
                self.put_string(m);
                self.buf.extend_from_slice(&score.to_le_bytes());
            }
        } else {
            let mut b = Builder::new();
            let mut sbuf = Vec::new();
            for (score, m) in z.iter() {
                b.push(m);
                match double2ll(score) {
                    Some(i) => b.push_int(i),
                    None => {
                        sbuf.clear();
                        crate::util::num::d2string(&mut sbuf, score);
                        b.push(&sbuf);
                    }
                }
            }
            self.put_string(&b.finish());
        }
    }

    /// HASH_LISTPACK (field, value in insertion order) or HASH.
    fn put_hash(&mut self, h: &Hash) {
        if h.is_packed() {
            let mut b = Builder::new();
            for (f, v) in h.iter() {
                b.push(f);
                b.push(v);
            }
            self.put_string(&b.finish());
        } else {
            self.put_len(h.len() as u64);
            for (f, v) in h.iter() {
                self.put_string(f);
                self.put_string(v);
            }
        }
    }

    /// rdbSaveKeyValuePair: expiry (absolute Unix ms, 0 = none), the access
    /// hint, type, key, value.
    pub fn put_key_value(&mut self, key: &[u8], v: &Value, expire_at: u64, hint: AccessHint) {
        if expire_at != 0 {
            self.put_u8(opcode::EXPIRETIME_MS);
            self.put_millis(expire_at as i64);
        }
        match hint {
            AccessHint::None => {}
            AccessHint::Idle(secs) => {
                self.put_u8(opcode::IDLE);
                self.put_len(secs);
            }
            AccessHint::Freq(f) => {
                self.put_u8(opcode::FREQ);
                self.put_u8(f);
            }
        }
        self.put_u8(value_type(v));
        self.put_string(key);
        self.put_value(v);
    }

    /// rdbSaveAuxField.
    pub fn put_aux(&mut self, key: &[u8], val: &[u8]) {
        self.put_u8(opcode::AUX);
        self.put_string(key);
        self.put_string(val);
    }

    /// SELECTDB + RESIZEDB, the start of a database's keys.
    pub fn put_db_start(&mut self, db: usize, keys: u64, expires: u64) {
        self.put_u8(opcode::SELECTDB);
        self.put_len(db as u64);
        self.put_u8(opcode::RESIZEDB);
        self.put_len(keys);
        self.put_len(expires);
    }
}

/// _quicklistNodeAllowInsert for a node of `node_bytes` / `count` and an
/// element of `sz` bytes under `fill`.
fn allow_insert(node_bytes: usize, count: usize, fill: i64, sz: usize) -> bool {
    let new_sz = node_bytes + sz + SIZE_ESTIMATE_OVERHEAD;
    if fill < 0 {
        if let Some(&level) = LEVELS.get((-(fill + 1)) as usize) {
            if new_sz <= level {
                return true;
            }
        }
    }
    if new_sz > SIZE_SAFETY_LIMIT {
        return false;
    }
    (count as i64) < fill
}

/// rdbSaveObjectType: the type byte of a value's current encoding.
pub fn value_type(v: &Value) -> u8 {
    match v {
        Value::Int(_) | Value::Small(_) | Value::Str { .. } => types::STRING,
        Value::List(_) => types::LIST_QUICKLIST_2,
        Value::Set(s) if s.is_intset() => types::SET_INTSET,
        Value::Set(_) => types::SET,
        Value::ZSet(z) if z.is_skiplist() => types::ZSET_2,
        Value::ZSet(_) => types::ZSET_LISTPACK,
        Value::Hash(h) if h.is_packed() => types::HASH_LISTPACK,
        Value::Hash(_) => types::HASH,
        Value::Stream(_) => types::STREAM_LISTPACKS_2,
    }
}

/// createDumpPayload: type + value, RDB version (2 bytes LE), CRC64 of all
/// that (8 bytes LE).
pub fn dump_payload(v: &Value, compress: bool) -> Vec<u8> {
    let mut e = Encoder::new(compress);
    e.put_typed_value(v);
    e.buf.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&e.buf);
    e.buf.extend_from_slice(&crc.to_le_bytes());
    e.buf
}

/// The magic and the AUX fields Redis 7.0 writes first (rdbSaveInfoAuxFields,
/// without replication info): redis-ver, redis-bits, ctime, used-mem, aof-base
/// (1 in an AOF's RDB preamble).
pub fn file_header(ctime_secs: u64, used_mem: u64, aof_base: bool) -> Vec<u8> {
    let mut e = Encoder::new(false);
    e.buf.extend_from_slice(format!("REDIS{:04}", RDB_VERSION).as_bytes());
    e.put_aux(b"redis-ver", crate::REDIS_VERSION.as_bytes());
    e.put_aux(b"redis-bits", b"64");
    e.put_aux(b"ctime", ctime_secs.to_string().as_bytes());
    e.put_aux(b"used-mem", used_mem.to_string().as_bytes());
    e.put_aux(b"aof-base", if aof_base { b"1" } else { b"0" });
    e.buf
}
