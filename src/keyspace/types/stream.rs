//! The stream type, laid out as Redis 7.0's t_stream.c lays it out: an
//! ordered map from each node's *master ID* to a node that is a real Redis
//! listpack (a master entry of field names, then entries with IDs
//! delta-encoded against the master ID and, when their fields equal the
//! master's, only their values). Nodes close at `stream-node-max-bytes` /
//! `stream-node-max-entries` exactly where Redis closes them, so approximate
//! trimming (`~`), XINFO's node counts and RDB's STREAM_LISTPACKS payloads
//! (the nodes are written as they are) agree with Redis. A range seek is
//! O(log nodes) in the `BTreeMap` plus a scan of one node (≤ 100 entries by
//! default).
//!
//! Consumer groups keep their pending entries (PEL) in ordered maps, as the
//! rax trees of Redis do: a group's PEL maps IDs to NACKs naming their
//! consumer, each consumer keeps the set of its own pending IDs.

use crate::util::num::string2ll;
use std::collections::{BTreeMap, BTreeSet};

/// A stream entry ID: milliseconds and sequence, ordered as Redis compares them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }
    pub fn is_zero(&self) -> bool {
        self.ms == 0 && self.seq == 0
    }
    /// streamIncrID: None when already the greatest ID.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                return None;
            }
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }
    /// streamDecrID: None when already 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                return None;
            }
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }
    /// "<ms>-<seq>".
    pub fn write(&self, out: &mut Vec<u8>) {
        crate::util::num::write_u64(out, self.ms);
        out.push(b'-');
        crate::util::num::write_u64(out, self.seq);
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(41);
        self.write(&mut v);
        v
    }
    /// The 128-bit big-endian form Redis uses as rax key and in RDB.
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }
    pub fn decode(b: &[u8]) -> Option<StreamId> {
        if b.len() != 16 {
            return None;
        }
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        Some(StreamId::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq)))
    }
}

/// Redis's string2ull: string2ll for the common case, else strtoull's rules
/// (leading spaces, a sign, no trailing garbage, no overflow).
pub fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = string2ll(s) {
        return (v >= 0).then_some(v as u64);
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        match v.checked_mul(10).and_then(|x| x.checked_add((s[i] - b'0') as u64)) {
            Some(x) => v = x,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || i != s.len() || overflow {
        return None;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

// ---------------------------------------------------------------- listpack primitives

/// A listpack element: an integer or a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            Elem::Int(v) => {
                let mut buf = [0u8; 20];
                f(crate::util::num::i64_to_buf(v, &mut buf))
            }
            Elem::Str(s) => f(s),
        }
    }
    pub fn to_vec(&self) -> Vec<u8> {
        self.with(|b| b.to_vec())
    }
    fn int(&self) -> i64 {
        match *self {
            Elem::Int(v) => v,
            Elem::Str(s) => string2ll(s).unwrap_or(0),
        }
    }
    fn eq_bytes(&self, b: &[u8]) -> bool {
        self.with(|x| x == b)
    }
}

/// The listpack byte layout (6-byte header, entries, 0xFF), as listpack.c:
/// the one encoder of entries (the RDB's `listpack::Builder` writes with it).
pub mod lp {
    use super::Elem;
    use crate::util::num::string2ll;

    pub const HDR: usize = 6;
    const EOF: u8 = 0xFF;

    pub fn new(cap: usize) -> Vec<u8> {
        let mut b = Vec::with_capacity(cap.max(HDR + 1));
        b.extend_from_slice(&[(HDR + 1) as u8, 0, 0, 0, 0, 0, EOF]);
        b
    }

    fn backlen_len(l: usize) -> usize {
        if l <= 127 {
            1
        } else if l < 16383 {
            2
        } else if l < 2097151 {
            3
        } else if l < 268435455 {
            4
        } else {
            5
        }
    }

    fn push_backlen(b: &mut Vec<u8>, l: usize) {
        let l = l as u64;
        match backlen_len(l as usize) {
            1 => b.push(l as u8),
            2 => b.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]),
            3 => b.extend_from_slice(&[(l >> 14) as u8, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128]),
            4 => b.extend_from_slice(&[
                (l >> 21) as u8,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]),
            _ => b.extend_from_slice(&[
                (l >> 28) as u8,
                ((l >> 21) & 127) as u8 | 128,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]),
        }
    }

    /// The encoded entry (encoding + data + backlen) of an integer.
    pub fn encode_int(v: i64, b: &mut Vec<u8>) {
        let start = b.len();
        match v {
            0..=127 => b.push(v as u8),
            -4096..=4095 => {
                let u = if v < 0 { (1i64 << 13) + v } else { v } as u64;
                b.push((u >> 8) as u8 | 0xC0);
                b.push(u as u8);
            }
            -32768..=32767 => {
                b.push(0xF1);
                b.extend_from_slice(&(v as i16).to_le_bytes());
            }
            -8388608..=8388607 => {
                b.push(0xF2);
                b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            -2147483648..=2147483647 => {
                b.push(0xF3);
                b.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {
                b.push(0xF4);
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        let l = b.len() - start;
        push_backlen(b, l);
    }

    /// lpAppend's encoding of a string: a canonical integer is stored as one.
    pub fn encode_str(s: &[u8], b: &mut Vec<u8>) {
        if s.len() <= 20 {
            if let Some(v) = string2ll(s) {
                return encode_int(v, b);
            }
        }
        let start = b.len();
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.push(0xE0 | (n >> 8) as u8);
            b.push(n as u8);
        } else {
            b.push(0xF0);
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
        let l = b.len() - start;
        push_backlen(b, l);
    }

    /// Bytes an element adds to a listpack.
    pub fn str_size(s: &[u8]) -> usize {
        let mut v = Vec::new();
        if s.len() <= 20 && string2ll(s).is_some() {
            encode_str(s, &mut v);
            return v.len();
        }
        let n = s.len();
        let l = if n < 64 {
            1 + n
        } else if n < 4096 {
            2 + n
        } else {
            5 + n
        };
        l + backlen_len(l)
    }

    pub fn total(lp: &[u8]) -> usize {
        u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize
    }

    fn set_total(lp: &mut [u8]) {
        let n = lp.len() as u32;
        lp[0..4].copy_from_slice(&n.to_le_bytes());
    }

    fn add_count(lp: &mut [u8], n: usize) {
        let c = u16::from_le_bytes([lp[4], lp[5]]);
        if c != u16::MAX {
            let v = (c as usize + n).min(u16::MAX as usize) as u16;
            lp[4..6].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Appends already-encoded entries (`n` of them) before the end byte.
    pub fn append_encoded(lp: &mut Vec<u8>, enc: &[u8], n: usize) {
        lp.pop();
        lp.extend_from_slice(enc);
        lp.push(EOF);
        set_total(lp);
        add_count(lp, n);
    }

    /// The element at `p` and the offset of the next one (None at the end).
    /// The listpack is trusted (built here, or validated when loaded).
    #[inline]
    pub fn get(lp: &[u8], p: usize) -> (Elem<'_>, usize) {
        let b = lp[p];
        let (e, l) = if b & 0x80 == 0 {
            (Elem::Int((b & 0x7f) as i64), 1)
        } else if b & 0xC0 == 0x80 {
            let n = (b & 0x3f) as usize;
            (Elem::Str(&lp[p + 1..p + 1 + n]), 1 + n)
        } else if b & 0xE0 == 0xC0 {
            let u = (((b & 0x1f) as u64) << 8) | lp[p + 1] as u64;
            (Elem::Int(sign_extend(u, 13)), 2)
        } else if b & 0xF0 == 0xE0 {
            let n = (((b & 0x0f) as usize) << 8) | lp[p + 1] as usize;
            (Elem::Str(&lp[p + 2..p + 2 + n]), 2 + n)
        } else {
            match b {
                0xF0 => {
                    let n = u32::from_le_bytes([lp[p + 1], lp[p + 2], lp[p + 3], lp[p + 4]]) as usize;
                    (Elem::Str(&lp[p + 5..p + 5 + n]), 5 + n)
                }
                0xF1 => (Elem::Int(i16::from_le_bytes([lp[p + 1], lp[p + 2]]) as i64), 3),
                0xF2 => {
                    let u = lp[p + 1] as u64 | (lp[p + 2] as u64) << 8 | (lp[p + 3] as u64) << 16;
                    (Elem::Int(sign_extend(u, 24)), 4)
                }
                0xF3 => (Elem::Int(i32::from_le_bytes([lp[p + 1], lp[p + 2], lp[p + 3], lp[p + 4]]) as i64), 5),
                _ => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&lp[p + 1..p + 9]);
                    (Elem::Int(i64::from_le_bytes(a)), 9)
                }
            }
        };
        (e, p + l + backlen_len(l))
    }

    pub fn is_end(lp: &[u8], p: usize) -> bool {
        lp[p] == EOF
    }

    fn sign_extend(u: u64, bits: u32) -> i64 {
        let shift = 64 - bits;
        ((u << shift) as i64) >> shift
    }

    /// lpReplaceInteger of the element at `p`; returns the size change.
    pub fn replace_int(lp: &mut Vec<u8>, p: usize, v: i64) -> isize {
        let (_, next) = get(lp, p);
        let mut enc = Vec::with_capacity(10);
        encode_int(v, &mut enc);
        let delta = enc.len() as isize - (next - p) as isize;
        lp.splice(p..next, enc);
        set_total(lp);
        delta
    }
}

// ---------------------------------------------------------------- nodes

/// Entry flags (stream.h).
const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// STREAM_LISTPACK_MAX_SIZE.
pub const LISTPACK_MAX_SIZE: usize = 1 << 30;
/// STREAM_LISTPACK_MAX_PRE_ALLOCATE.
const MAX_PRE_ALLOCATE: usize = 4096;

/// One entry's place in a node.
#[derive(Clone, Copy, Debug)]
struct RawEntry {
    id: StreamId,
    flags: i64,
    flags_off: usize,
    /// First field (or value, with SAMEFIELDS).
    body_off: usize,
    nfields: usize,
    /// After its lp-count.
    end_off: usize,
}

/// A node's master entry, decoded.
struct Master<'a> {
    count: i64,
    deleted: i64,
    fields: Vec<Elem<'a>>,
    first_entry: usize,
}

fn master(lp: &[u8]) -> Master<'_> {
    let p = lp::HDR;
    let (c, p) = lp::get(lp, p);
    let (d, p) = lp::get(lp, p);
    let (n, mut p) = lp::get(lp, p);
    let n = n.int().max(0) as usize;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let (f, q) = lp::get(lp, p);
        fields.push(f);
        p = q;
    }
    let (_, p) = lp::get(lp, p); // the master's 0 terminator
    Master {
        count: c.int(),
        deleted: d.int(),
        fields,
        first_entry: p,
    }
}

fn read_entry(lp: &[u8], p: usize, master_id: StreamId, master_fields: usize) -> RawEntry {
    let (f, q) = lp::get(lp, p);
    let flags = f.int();
    let (ms, q) = lp::get(lp, q);
    let (seq, mut q) = lp::get(lp, q);
    let id = StreamId::new(master_id.ms.wrapping_add(ms.int() as u64), master_id.seq.wrapping_add(seq.int() as u64));
    let nfields;
    let skip;
    if flags & FLAG_SAMEFIELDS != 0 {
        nfields = master_fields;
        skip = nfields;
    } else {
        let (n, r) = lp::get(lp, q);
        q = r;
        nfields = n.int().max(0) as usize;
        skip = nfields * 2;
    }
    let body = q;
    for _ in 0..skip {
        q = lp::get(lp, q).1;
    }
    let (_, end) = lp::get(lp, q); // lp-count
    RawEntry {
        id,
        flags,
        flags_off: p,
        body_off: body,
        nfields,
        end_off: end,
    }
}

/// Every entry of a node (deleted ones included), in order.
fn node_entries(lp: &[u8], master_id: StreamId) -> (Master<'_>, Vec<RawEntry>) {
    let m = master(lp);
    let mut v = Vec::with_capacity((m.count + m.deleted).max(0) as usize);
    let mut p = m.first_entry;
    while !lp::is_end(lp, p) {
        let e = read_entry(lp, p, master_id, m.fields.len());
        p = e.end_off;
        v.push(e);
    }
    (m, v)
}

/// The field/value pairs of an entry.
fn entry_fields<'a>(lp: &'a [u8], m: &Master<'a>, e: &RawEntry, out: &mut Vec<(Elem<'a>, Elem<'a>)>) {
    out.clear();
    let mut p = e.body_off;
    if e.flags & FLAG_SAMEFIELDS != 0 {
        for f in &m.fields {
            let (v, q) = lp::get(lp, p);
            out.push((*f, v));
            p = q;
        }
    } else {
        for _ in 0..e.nfields {
            let (f, q) = lp::get(lp, p);
            let (v, r) = lp::get(lp, q);
            out.push((f, v));
            p = r;
        }
    }
}

// ---------------------------------------------------------------- consumer groups

/// SCG_INVALID_ENTRIES_READ.
pub const INVALID_ENTRIES_READ: i64 = -1;

/// A pending entry (streamNACK).
#[derive(Clone, Debug, PartialEq)]
pub struct Nack {
    pub delivery_time: u64,
    pub delivery_count: u64,
    pub consumer: Box<[u8]>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    pub seen_time: u64,
    pub pel: BTreeSet<StreamId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Drops a pending entry from the group and its consumer; true if it was there.
    pub fn ack(&mut self, id: &StreamId) -> bool {
        match self.pel.remove(id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(id);
                }
                true
            }
            None => false,
        }
    }

    /// Gives the pending entry `id` to `consumer` (which must exist).
    pub fn reassign(&mut self, id: StreamId, consumer: &[u8]) {
        let Some(n) = self.pel.get_mut(&id) else { return };
        if &*n.consumer != consumer {
            if let Some(c) = self.consumers.get_mut(&n.consumer) {
                c.pel.remove(&id);
            }
            n.consumer = consumer.into();
            if let Some(c) = self.consumers.get_mut(consumer) {
                c.pel.insert(id);
            }
        }
    }

    /// streamDelConsumer: the consumer and its pending entries; how many it had.
    pub fn del_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }
}

// ---------------------------------------------------------------- the stream

/// How a trim is bounded (streamAddTrimArgs).
#[derive(Clone, Copy, Debug)]
pub enum TrimBy {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// Master ID -> node listpack.
    nodes: BTreeMap<StreamId, Vec<u8>>,
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_entry_id: StreamId,
    pub entries_added: u64,
    /// Consumer groups by name (a rax in Redis: byte order, shorter first).
    pub groups: BTreeMap<Box<[u8]>, Group>,
}

/// Why an append failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AddError {
    /// The ID is not greater than the last one (EDOM).
    TooSmall,
    /// Elements too large (ERANGE).
    TooLarge,
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes (master ID, listpack) in order, for RDB.
    pub fn nodes(&self) -> impl Iterator<Item = (&StreamId, &Vec<u8>)> {
        self.nodes.iter()
    }

    /// Adds a node as loaded from RDB (already validated by the caller);
    /// false if a node with this master ID exists.
    pub fn push_loaded_node(&mut self, master_id: StreamId, lp: Vec<u8>) -> bool {
        match self.nodes.entry(master_id) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(lp);
                true
            }
        }
    }

    /// raxSize(s->rax)->numnodes of the rax Redis would hold for these
    /// nodes' 16-byte keys: its root, every key, every branching prefix and
    /// each branch's first child (rax keeps compressed runs maximal).
    pub fn rax_nodes(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|k| k.encode()).collect();
        let mut set: std::collections::HashSet<(usize, &[u8])> = std::collections::HashSet::new();
        for w in keys.windows(2) {
            let l = w[0].iter().zip(w[1].iter()).take_while(|(a, b)| a == b).count();
            if l > 0 {
                set.insert((l, &w[0][..l]));
            }
            if l + 1 < 16 {
                set.insert((l + 1, &w[0][..l + 1]));
                set.insert((l + 1, &w[1][..l + 1]));
            }
        }
        1 + keys.len() + set.len()
    }

    /// The listpack entry bytes of `fields` (name, value pairs) and whether
    /// they match `master` (SAMEFIELDS).
    pub fn append(&mut self, fv: &[&[u8]], use_id: Option<(StreamId, bool)>, now_ms: u64) -> Result<StreamId, AddError> {
        let numfields = fv.len() / 2;
        let id = match use_id {
            Some((id, true)) => id,
            Some((id, false)) => {
                if self.last_id.ms == id.ms {
                    if self.last_id.seq == u64::MAX {
                        return Err(AddError::TooSmall);
                    }
                    StreamId::new(id.ms, self.last_id.seq + 1)
                } else {
                    id
                }
            }
            None => {
                if now_ms > self.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    // streamIncrID wraps to 0-0 at the end, which then fails below.
                    self.last_id.incr().unwrap_or(StreamId::MIN)
                }
            }
        };
        if id <= self.last_id {
            return Err(AddError::TooSmall);
        }
        let totelelen: usize = fv.iter().map(|e| e.len()).sum();
        if totelelen > LISTPACK_MAX_SIZE {
            return Err(AddError::TooLarge);
        }
        let max_bytes = match super::limits::stream_node_max_bytes() {
            0 => LISTPACK_MAX_SIZE,
            n if n > LISTPACK_MAX_SIZE => LISTPACK_MAX_SIZE,
            n => n,
        };
        let max_entries = super::limits::stream_node_max_entries();
        // Can we append to the tail node?
        let mut tail = self.nodes.iter_mut().next_back().map(|(k, v)| (*k, v));
        if let Some((_, lp)) = &mut tail {
            let mut new_node = lp.len() + totelelen >= max_bytes;
            if !new_node && max_entries > 0 {
                let m = master(lp);
                if m.count + m.deleted >= max_entries as i64 {
                    new_node = true;
                }
            }
            if new_node {
                // lpShrinkToFit. A fresh exact allocation: mimalloc keeps a
                // block in place when it shrinks by less than half.
                **lp = lp.as_slice().to_vec();
                tail = None;
            }
        }
        let mut enc = Vec::with_capacity(16 + totelelen + fv.len() * 2);
        let (master_id, same) = match tail {
            None => {
                let prealloc = match super::limits::stream_node_max_bytes() {
                    n if n > 0 && n < MAX_PRE_ALLOCATE => n,
                    _ => MAX_PRE_ALLOCATE,
                };
                let mut lp = lp::new(prealloc);
                let mut m = Vec::new();
                lp::encode_int(1, &mut m);
                lp::encode_int(0, &mut m);
                lp::encode_int(numfields as i64, &mut m);
                for i in 0..numfields {
                    lp::encode_str(fv[i * 2], &mut m);
                }
                lp::encode_int(0, &mut m);
                lp::append_encoded(&mut lp, &m, numfields + 4);
                self.nodes.insert(id, lp);
                (id, true)
            }
            Some((mid, lp)) => {
                let m = master(lp);
                let same = m.fields.len() == numfields && m.fields.iter().enumerate().all(|(i, f)| f.eq_bytes(fv[i * 2]));
                let count = m.count;
                lp::replace_int(lp, lp::HDR, count + 1);
                (mid, same)
            }
        };
        let flags = if same { FLAG_SAMEFIELDS } else { 0 };
        lp::encode_int(flags, &mut enc);
        lp::encode_int(id.ms.wrapping_sub(master_id.ms) as i64, &mut enc);
        lp::encode_int(id.seq.wrapping_sub(master_id.seq) as i64, &mut enc);
        let mut n = 3;
        if !same {
            lp::encode_int(numfields as i64, &mut enc);
            n += 1;
        }
        for i in 0..numfields {
            if !same {
                lp::encode_str(fv[i * 2], &mut enc);
                n += 1;
            }
            lp::encode_str(fv[i * 2 + 1], &mut enc);
            n += 1;
        }
        let mut lp_count = numfields as i64 + 3;
        if !same {
            lp_count += numfields as i64 + 1;
        }
        lp::encode_int(lp_count, &mut enc);
        n += 1;
        let lp = self.nodes.get_mut(&master_id).expect("tail node");
        lp::append_encoded(lp, &enc, n);
        self.length += 1;
        self.entries_added = self.entries_added.wrapping_add(1);
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    /// Visits the live entries in [start, end] (forward, or backward with
    /// `rev`) until `f` returns false.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, mut f: impl FnMut(StreamId, &[(Elem<'_>, Elem<'_>)]) -> bool) {
        if start > end {
            return;
        }
        let mut fields = Vec::new();
        // The node holding `start` is the last one whose master ID <= start.
        let first_key = self.nodes.range(..=start).next_back().map(|(k, _)| *k).unwrap_or(start);
        let iter: Box<dyn Iterator<Item = (&StreamId, &Vec<u8>)>> = if rev {
            Box::new(self.nodes.range(first_key..=end).rev())
        } else {
            Box::new(self.nodes.range(first_key..=end))
        };
        for (mid, lp) in iter {
            let (m, entries) = node_entries(lp, *mid);
            let mut visit = |e: &RawEntry| -> Option<bool> {
                if e.flags & FLAG_DELETED != 0 {
                    return None;
                }
                if e.id < start || e.id > end {
                    return None;
                }
                entry_fields(lp, &m, e, &mut fields);
                Some(f(e.id, &fields))
            };
            if rev {
                for e in entries.iter().rev() {
                    if e.id < start {
                        return;
                    }
                    if visit(e) == Some(false) {
                        return;
                    }
                }
            } else {
                for e in entries.iter() {
                    if e.id > end {
                        return;
                    }
                    if visit(e) == Some(false) {
                        return;
                    }
                }
            }
        }
    }

    /// The first / last live entry's ID (streamGetEdgeID with skip_tombstones).
    pub fn edge_id(&self, first: bool) -> Option<StreamId> {
        let mut r = None;
        self.range(StreamId::MIN, StreamId::MAX, !first, |id, _| {
            r = Some(id);
            false
        });
        r
    }

    /// streamLastValidID: the last live entry, 0-0 when none.
    pub fn last_valid_id(&self) -> StreamId {
        self.edge_id(false).unwrap_or(StreamId::MIN)
    }

    pub fn exists(&self, id: StreamId) -> bool {
        let mut found = false;
        self.range(id, id, false, |_, _| {
            found = true;
            false
        });
        found
    }

    /// streamDeleteItem: marks the entry deleted (or drops its emptied node).
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((mid, lp)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let mid = *mid;
        let (count, deleted, entries) = {
            let (m, e) = node_entries(lp, mid);
            (m.count, m.deleted, e)
        };
        let Some(e) = entries.iter().find(|e| e.id == id && e.flags & FLAG_DELETED == 0).copied() else {
            return false;
        };
        self.length -= 1;
        if count == 1 {
            self.nodes.remove(&mid);
            return true;
        }
        // Flags are 0..3: same size in place; then the master's counters.
        lp::replace_int(lp, e.flags_off, e.flags | FLAG_DELETED);
        lp::replace_int(lp, lp::HDR, count - 1);
        let (_, p) = lp::get(lp, lp::HDR);
        lp::replace_int(lp, p, deleted + 1);
        true
    }

    /// streamTrim: the number of entries removed.
    pub fn trim(&mut self, by: TrimBy, approx: bool, limit: i64) -> i64 {
        let mut deleted: i64 = 0;
        while let Some(mid) = self.nodes.keys().next().copied() {
            if let TrimBy::MaxLen(maxlen) = by {
                if self.length <= maxlen {
                    break;
                }
            }
            let (count, marked, entries) = {
                let (m, e) = node_entries(&self.nodes[&mid], mid);
                (m.count, m.deleted, e)
            };
            if limit != 0 && deleted + count > limit {
                break;
            }
            let remove_node = match by {
                TrimBy::MaxLen(maxlen) => self.length.saturating_sub(count as u64) >= maxlen,
                TrimBy::MinId(min) => {
                    // lpGetEdgeStreamID(lp, 0, ...): the node's last entry, deleted or not.
                    entries.last().map(|e| e.id).unwrap_or(mid) < min
                }
            };
            if remove_node {
                self.nodes.remove(&mid);
                self.length = self.length.saturating_sub(count as u64);
                deleted += count;
                continue;
            }
            if approx {
                break;
            }
            let lp = self.nodes.get_mut(&mid).expect("node");
            let mut from_lp = 0i64;
            for e in &entries {
                let stop = match by {
                    TrimBy::MaxLen(maxlen) => self.length <= maxlen,
                    TrimBy::MinId(min) => e.id >= min,
                };
                if stop {
                    break;
                }
                if e.flags & FLAG_DELETED == 0 {
                    lp::replace_int(lp, e.flags_off, e.flags | FLAG_DELETED);
                    from_lp += 1;
                    self.length -= 1;
                }
            }
            deleted += from_lp;
            lp::replace_int(lp, lp::HDR, count - from_lp);
            let (_, p) = lp::get(lp, lp::HDR);
            lp::replace_int(lp, p, marked + from_lp);
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge_id(true).unwrap_or(StreamId::MAX);
        }
        deleted
    }

    /// The first entry ID, deleted or not (streamGetEdgeID(s,1,0)) — for the
    /// propagated MINID of an approximate trim.
    pub fn first_raw_id(&self) -> StreamId {
        match self.nodes.iter().next() {
            Some((mid, lp)) => {
                let m = master(lp);
                if lp::is_end(lp, m.first_entry) {
                    StreamId::MAX
                } else {
                    read_entry(lp, m.first_entry, *mid, m.fields.len()).id
                }
            }
            None => StreamId::MAX,
        }
    }

    /// streamRangeHasTombstones.
    pub fn range_has_tombstones(&self, start: Option<StreamId>, end: Option<StreamId>) -> bool {
        if self.length == 0 || self.max_deleted_entry_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_entry_id {
            return false;
        }
        let s = start.unwrap_or(StreamId::MIN);
        let e = end.unwrap_or(StreamId::MAX);
        s <= self.max_deleted_entry_id && self.max_deleted_entry_id <= e
    }

    /// streamEstimateDistanceFromFirstEverEntry: None = unknown.
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        } else if id > self.last_id {
            return None;
        }
        if self.max_deleted_entry_id.is_zero() || self.max_deleted_entry_id < self.first_id {
            // (A loaded file may claim fewer added entries than it holds.)
            if id < self.first_id {
                return Some(self.entries_added.wrapping_sub(self.length));
            } else if id == self.first_id {
                return Some(self.entries_added.wrapping_sub(self.length).wrapping_add(1));
            }
        }
        None
    }

    /// streamReplyWithCGLag's figure: None = null.
    pub fn group_lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.range_has_tombstones(Some(g.last_id), None) {
            return Some((self.entries_added as i64).wrapping_sub(g.entries_read));
        }
        self.estimate_distance(g.last_id).map(|r| (self.entries_added as i64).wrapping_sub(r as i64))
    }

    /// The group's read counter after delivering `id` (streamReplyWithRange).
    pub fn advance_group(&self, g: &mut Group, id: StreamId) {
        if id > g.last_id {
            if g.entries_read != INVALID_ENTRIES_READ && !self.range_has_tombstones(Some(id), None) {
                g.entries_read = g.entries_read.wrapping_add(1);
            } else if self.entries_added != 0 {
                g.entries_read = self.estimate_distance(id).map(|v| v as i64).unwrap_or(INVALID_ENTRIES_READ);
            }
            g.last_id = id;
        }
    }

    /// Heap bytes, roughly (INFO memory is measured by the allocator).
    pub fn mem_usage(&self) -> usize {
        self.nodes.values().map(|v| v.capacity() + 48).sum::<usize>()
            + self
                .groups
                .values()
                .map(|g| g.pel.len() * 64 + g.consumers.values().map(|c| 64 + c.pel.len() * 24).sum::<usize>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &mut Stream, ms: u64, seq: u64, fv: &[&[u8]]) {
        s.append(fv, Some((StreamId::new(ms, seq), true)), 0).unwrap();
    }

    fn ids(s: &Stream, rev: bool) -> Vec<StreamId> {
        let mut v = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, rev, |id, _| {
            v.push(id);
            true
        });
        v
    }

    #[test]
    fn appends_ranges_and_deletes_across_nodes() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            if i % 3 == 0 {
                add(&mut s, i, 0, &[b"a", b"1", b"b", b"x"]);
            } else {
                add(&mut s, i, 0, &[b"a", b"1"]);
            }
        }
        assert_eq!(s.length, 250);
        assert_eq!(s.node_count(), 3, "100 entries a node");
        assert_eq!(ids(&s, false).len(), 250);
        let r = ids(&s, true);
        assert_eq!(r[0], StreamId::new(250, 0));
        assert!(s.delete(StreamId::new(3, 0)));
        assert!(!s.delete(StreamId::new(3, 0)));
        assert_eq!(s.length, 249);
        let mut got = Vec::new();
        s.range(StreamId::new(2, 0), StreamId::new(4, 0), false, |id, f| {
            got.push((id, f.iter().map(|(a, b)| (a.to_vec(), b.to_vec())).collect::<Vec<_>>()));
            true
        });
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(s.append(&[b"a", b"1"], Some((StreamId::new(5, 0), true)), 0), Err(AddError::TooSmall));
        // Trim to 120 exactly, then approximately.
        assert_eq!(s.trim(TrimBy::MaxLen(120), false, 0), 129);
        assert_eq!(s.length, 120);
        assert_eq!(s.first_id, StreamId::new(131, 0));
        assert_eq!(s.trim(TrimBy::MinId(StreamId::new(240, 0)), true, 0), 70);
        assert_eq!(s.length, 50);
    }

    #[test]
    fn parses_ids_as_strtoull() {
        assert_eq!(string2ull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(string2ull(b"18446744073709551616"), None);
        assert_eq!(string2ull(b"-1"), None);
        assert_eq!(string2ull(b" +5"), Some(5));
        assert_eq!(string2ull(b""), None);
    }
}
