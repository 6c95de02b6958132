//! The AOF rewrite's command format (`aof-use-rdb-preamble no`): the
//! commands rewriteAppendOnlyFileRio emits to rebuild each key, as a
//! snapshot sink. The walk, the copy-on-write hook and the file are the
//! snapshot's (`snapshot.rs`); only the bytes per key differ from the RDB
//! sink, so a `.base.aof` is consistent at the same point a `.base.rdb` is.

use crate::keyspace::cow::SnapshotSink;
use crate::keyspace::types::set::Member;
use crate::keyspace::types::stream::StreamId;
use crate::keyspace::{Entry, Value};
use crate::util::num::{write_i64, write_u64};

/// AOF_REWRITE_ITEMS_PER_CMD: elements per RPUSH / SADD / ZADD / HMSET.
const ITEMS_PER_CMD: usize = 64;

/// The command-format sink: one key's commands per `put`.
#[derive(Default)]
pub struct CommandSink {
    buf: Vec<u8>,
}

impl SnapshotSink for CommandSink {
    fn put(&mut self, key: &[u8], entry: &Entry, expire_at: u64) {
        put_key(&mut self.buf, key, &entry.val, expire_at);
    }
    fn pending(&self) -> usize {
        self.buf.len()
    }
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

fn count(buf: &mut Vec<u8>, c: u8, n: usize) {
    buf.push(c);
    write_u64(buf, n as u64);
    buf.extend_from_slice(b"\r\n");
}

fn bulk(buf: &mut Vec<u8>, b: &[u8]) {
    count(buf, b'$', b.len());
    buf.extend_from_slice(b);
    buf.extend_from_slice(b"\r\n");
}

/// rioWriteBulkLongLong.
fn bulk_i64(buf: &mut Vec<u8>, v: i64) {
    let mut t = Vec::with_capacity(20);
    write_i64(&mut t, v);
    bulk(buf, &t);
}

/// rioWriteBulkStreamID: "<ms>-<seq>".
fn bulk_id(buf: &mut Vec<u8>, id: StreamId) {
    let mut t = Vec::with_capacity(41);
    id.write(&mut t);
    bulk(buf, &t);
}

/// rioWriteBulkDouble: `%.17g`.
fn bulk_f64(buf: &mut Vec<u8>, d: f64) {
    let mut t = Vec::with_capacity(32);
    crate::util::num::fmt_double_reply(&mut t, d); // glibc prints infinities as "inf" too
    bulk(buf, &t);
}

/// The header of the next chunk when `done` elements of `total` are
/// written and a chunk starts here (rewriteListObject's `count == 0`).
fn chunk(buf: &mut Vec<u8>, done: usize, total: usize, per: usize, cmd: &[u8], key: &[u8]) {
    if done.is_multiple_of(ITEMS_PER_CMD) {
        let n = (total - done).min(ITEMS_PER_CMD);
        count(buf, b'*', 2 + n * per);
        bulk(buf, cmd);
        bulk(buf, key);
    }
}

/// One key as rewriteAppendOnlyFileRio writes it: its value's commands,
/// then PEXPIREAT when it has a TTL.
pub fn put_key(buf: &mut Vec<u8>, key: &[u8], v: &Value, expire_at: u64) {
    match v {
        Value::Int(i) => {
            count(buf, b'*', 3);
            bulk(buf, b"SET");
            bulk(buf, key);
            bulk_i64(buf, *i);
        }
        Value::Small(_) | Value::Str { .. } => {
            count(buf, b'*', 3);
            bulk(buf, b"SET");
            bulk(buf, key);
            bulk(buf, v.as_bytes().unwrap_or_default());
        }
        Value::List(l) => {
            let total = l.len();
            for (i, e) in l.iter().enumerate() {
                chunk(buf, i, total, 1, b"RPUSH", key);
                bulk(buf, e);
            }
        }
        Value::Set(s) => {
            let total = s.len();
            for (i, m) in s.iter().enumerate() {
                chunk(buf, i, total, 1, b"SADD", key);
                match m {
                    Member::Int(n) => bulk_i64(buf, n),
                    Member::Str(b) => bulk(buf, b),
                }
            }
        }
        Value::ZSet(z) => {
            let total = z.len();
            for (i, (score, m)) in z.iter().enumerate() {
                chunk(buf, i, total, 2, b"ZADD", key);
                bulk_f64(buf, score);
                bulk(buf, m);
            }
        }
        Value::Hash(h) => {
            let total = h.len();
            for (i, (f, val)) in h.iter().enumerate() {
                chunk(buf, i, total, 2, b"HMSET", key);
                bulk(buf, f);
                bulk(buf, val);
            }
        }
        Value::Stream(s) => put_stream(buf, key, s),
    }
    if expire_at != 0 {
        count(buf, b'*', 3);
        bulk(buf, b"PEXPIREAT");
        bulk(buf, key);
        bulk_i64(buf, expire_at as i64);
    }
}

/// rewriteStreamObject: XADD per entry (the `MAXLEN 0` trick for an empty
/// stream), XSETID with the counters, then per group XGROUP CREATE and an
/// XCLAIM ... JUSTID FORCE per pending entry of each consumer (XGROUP
/// CREATECONSUMER for one with none).
fn put_stream(buf: &mut Vec<u8>, key: &[u8], s: &crate::keyspace::types::stream::Stream) {
    if s.length > 0 {
        s.range(StreamId::MIN, StreamId::MAX, false, |id, fields| {
            count(buf, b'*', 3 + fields.len() * 2);
            bulk(buf, b"XADD");
            bulk(buf, key);
            bulk_id(buf, id);
            for (f, v) in fields {
                f.with(|b| bulk(buf, b));
                v.with(|b| bulk(buf, b));
            }
            true
        });
    } else {
        count(buf, b'*', 7);
        for a in [&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"] {
            bulk(buf, a);
        }
    }
    count(buf, b'*', 7);
    bulk(buf, b"XSETID");
    bulk(buf, key);
    bulk_id(buf, s.last_id);
    bulk(buf, b"ENTRIESADDED");
    bulk_i64(buf, s.entries_added as i64);
    bulk(buf, b"MAXDELETEDID");
    bulk_id(buf, s.max_deleted_entry_id);
    for (name, g) in &s.groups {
        count(buf, b'*', 7);
        for a in [&b"XGROUP"[..], b"CREATE", key, name] {
            bulk(buf, a);
        }
        bulk_id(buf, g.last_id);
        bulk(buf, b"ENTRIESREAD");
        bulk_i64(buf, g.entries_read);
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                count(buf, b'*', 5);
                for a in [&b"XGROUP"[..], b"CREATECONSUMER", key, name, cname] {
                    bulk(buf, a);
                }
                continue;
            }
            for id in &c.pel {
                let Some(n) = g.pel.get(id) else { continue };
                count(buf, b'*', 12);
                for a in [&b"XCLAIM"[..], key, name, cname, b"0"] {
                    bulk(buf, a);
                }
                bulk_id(buf, *id);
                bulk(buf, b"TIME");
                bulk_i64(buf, n.delivery_time as i64);
                bulk(buf, b"RETRYCOUNT");
                bulk_i64(buf, n.delivery_count as i64);
                bulk(buf, b"JUSTID");
                bulk(buf, b"FORCE");
            }
        }
    }
}

/// rewriteFunctions: `FUNCTION LOAD <code>` per library.
pub fn put_functions<'a>(buf: &mut Vec<u8>, codes: impl IntoIterator<Item = &'a [u8]>) {
    for code in codes {
        count(buf, b'*', 3);
        bulk(buf, b"FUNCTION");
        bulk(buf, b"LOAD");
        bulk(buf, code);
    }
}

/// `SELECT <db>` (the rewrite's, before a database's keys).
pub fn put_select(buf: &mut Vec<u8>, db: usize) {
    count(buf, b'*', 2);
    bulk(buf, b"SELECT");
    bulk_i64(buf, db as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_chunked_in_rpushes_of_64_with_the_ttl_after() {
        let mut l = crate::keyspace::types::list::List::default();
        for i in 0..65 {
            l.push_back(i.to_string().as_bytes());
        }
        let mut b = Vec::new();
        put_key(&mut b, b"k", &Value::List(Box::new(l)), 1234);
        let (cmds, read) = crate::persistence::aof::parse_commands(&b);
        assert_eq!(read, crate::persistence::aof::Read::Ok);
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].len(), 2 + 64);
        assert_eq!(cmds[0][0], b"RPUSH");
        assert_eq!(cmds[1], vec![b"RPUSH".to_vec(), b"k".to_vec(), b"64".to_vec()]);
        assert_eq!(cmds[2], vec![b"PEXPIREAT".to_vec(), b"k".to_vec(), b"1234".to_vec()]);
    }
}
