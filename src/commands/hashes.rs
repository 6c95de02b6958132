//! The hashes family, mirroring Redis 7.0.15's t_hash.c: HSET/HMSET, HSETNX,
//! HGET, HMGET, HGETALL, HKEYS, HVALS, HDEL, HLEN, HEXISTS, HSTRLEN, HINCRBY,
//! HINCRBYFLOAT, HRANDFIELD and HSCAN. Every hash key lives on one shard, so
//! all of them are keyed handlers.

use super::table::{Ctx, Table};
use crate::keyspace::db::EntryMut;
use crate::keyspace::types::{limits, Hash};
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::{note, NOTIFY_GENERIC, NOTIFY_HASH};
use crate::util::glob::glob_match;
use crate::util::num::{hincr_by_float, string2ll, validate_hincr};

pub fn register(t: &mut Table) {
    t.keyed("hset", hset);
    t.keyed("hmset", hset);
    t.keyed("hsetnx", hsetnx);
    t.keyed("hget", hget);
    t.keyed("hmget", hmget);
    t.keyed("hgetall", hgetall);
    t.keyed("hkeys", hkeys);
    t.keyed("hvals", hvals);
    t.keyed("hdel", hdel);
    t.keyed("hlen", hlen);
    t.keyed("hexists", hexists);
    t.keyed("hstrlen", hstrlen);
    t.keyed("hincrby", hincrby);
    t.keyed("hincrbyfloat", hincrbyfloat);
    t.keyed("hrandfield", hrandfield);
    t.keyed("hscan", hscan);
}

// ---------------------------------------------------------------------------
// Shared helpers (also used by the sets family)
// ---------------------------------------------------------------------------

/// (hash-max-listpack-entries, hash-max-listpack-value) for a write to `h`:
/// only a listpack hash can convert, so a hashtable one reads no configuration.
fn limits_for(h: &Hash) -> (usize, usize) {
    if !h.is_packed() {
        return (usize::MAX, usize::MAX);
    }
    (limits::hash_entries(), limits::hash_value())
}

/// What C code sees of an argument (strcasecmp stops at a NUL).
pub(crate) fn cstr(b: &[u8]) -> &[u8] {
    match memchr::memchr(0, b) {
        Some(z) => &b[..z],
        None => b,
    }
}

pub(crate) fn opt_is(arg: &[u8], word: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// getLongFromObjectOrReply with Redis's messages: Err(message).
pub(crate) fn parse_long(arg: &[u8], msg: Option<&'static str>) -> Result<i64, String> {
    string2ll(arg).ok_or_else(|| msg.unwrap_or(err::NOT_INT).to_string())
}

/// getRangeLongFromObjectOrReply.
pub(crate) fn parse_range(arg: &[u8], min: i64, max: i64, msg: Option<&'static str>) -> Result<i64, String> {
    let v = parse_long(arg, msg)?;
    if v < min || v > max {
        return Err(match msg {
            Some(m) => m.to_string(),
            None => format!("ERR value is out of range, value must between {min} and {max}"),
        });
    }
    Ok(v)
}

/// HSCAN / SSCAN options (scanGenericCommand on an object: no TYPE).
pub(crate) struct ObjScanOpts {
    pub count: usize,
    pub pattern: Option<Vec<u8>>,
}

pub(crate) fn parse_obj_scan_opts(args: &Args) -> Result<ObjScanOpts, &'static str> {
    let mut o = ObjScanOpts { count: 10, pattern: None };
    let mut i = 3;
    while i < args.len() {
        let j = args.len() - i;
        let a = args.get(i);
        if opt_is(a, "count") && j >= 2 {
            let v = string2ll(args.get(i + 1)).ok_or(err::NOT_INT)?;
            if v < 1 {
                return Err(err::SYNTAX);
            }
            o.count = v.min(i64::MAX >> 8) as usize;
        } else if opt_is(a, "match") && j >= 2 {
            let p = args.get(i + 1);
            o.pattern = if p == b"*" { None } else { Some(p.to_vec()) };
        } else {
            return Err(err::SYNTAX);
        }
        i += 2;
    }
    Ok(o)
}

/// The reply of an object SCAN: `[cursor, [elements...]]`, the elements
/// already encoded in `items` (`n` of them).
pub(crate) fn scan_reply(out: &mut Reply, cursor: u64, n: usize, items: &[u8]) {
    out.array_len(2);
    let mut b = Vec::with_capacity(20);
    crate::util::num::write_u64(&mut b, cursor);
    out.bulk(&b);
    out.array_len(n);
    out.raw(items);
}

/// The empty scan reply (shared.emptyscan) for a missing key.
pub(crate) fn empty_scan(out: &mut Reply) {
    out.array_len(2);
    out.bulk(b"0");
    out.array_len(0);
}

#[inline]
pub(crate) fn matches(pattern: &Option<Vec<u8>>, s: &[u8]) -> bool {
    pattern.as_deref().is_none_or(|p| glob_match(p, s, false))
}

/// The hash at `key` for reading: Ok(None) when missing, Err on WRONGTYPE.
fn read_hash<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Hash>, ()> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.val {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(()),
        },
    }
}

/// A hash opened for writing: the stored one (changed only through
/// `get_mut`, which fires the write hook) or a new one not stored yet.
enum Slot<'e, 'a> {
    Stored(&'e mut EntryMut<'a>),
    New(&'e mut Hash),
}

impl Slot<'_, '_> {
    fn get(&self) -> &Hash {
        match self {
            Slot::Stored(e) => match &e.val {
                Value::Hash(h) => h,
                _ => unreachable!("type checked on open"),
            },
            Slot::New(h) => h,
        }
    }
    fn get_mut(&mut self) -> &mut Hash {
        match self {
            Slot::Stored(e) => match e.val_mut() {
                Value::Hash(h) => h,
                _ => unreachable!("type checked on open"),
            },
            Slot::New(h) => h,
        }
    }
}

enum Opened<R> {
    Missing,
    WrongType,
    Done(R),
}

/// lookupKeyWrite (+ create when `create`, as hashTypeLookupWriteOrCreate)
/// and run `f`; afterwards an emptied hash is deleted and a new non-empty one stored.
fn write_hash<R>(ctx: &mut Ctx, key: &[u8], create: bool, f: impl FnOnce(&mut Slot) -> R) -> Opened<R> {
    let now = ctx.now;
    let db = ctx.db();
    let mut f = Some(f);
    let found = match db.lookup_write(key, now) {
        None => None,
        Some(mut e) => {
            if !matches!(e.val, Value::Hash(_)) {
                return Opened::WrongType;
            }
            let mut slot = Slot::Stored(&mut e);
            let r = f.take().map(|f| f(&mut slot));
            Some((r, slot.get().is_empty()))
        }
    };
    if let Some((r, empty)) = found {
        if empty {
            db.remove(key);
        }
        return r.map_or(Opened::Missing, Opened::Done);
    }
    let Some(f) = f else { return Opened::Missing };
    if !create {
        return Opened::Missing;
    }
    let mut h = Hash::new();
    let r = f(&mut Slot::New(&mut h));
    if !h.is_empty() {
        db.set(key, Value::Hash(h), 0, now);
    }
    Opened::Done(r)
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

/// hashTypeTryConversion: any argument longer than hash-max-listpack-value
/// converts a listpack hash before anything is inserted.
fn try_conversion(h: &mut Hash, args: &Args, from: usize, max_value: usize) {
    if h.is_packed() && (from..args.len()).any(|i| args.get(i).len() > max_value) {
        h.convert();
    }
}

/// HSET and HMSET (hsetCommand): the count of new fields, or +OK for HMSET.
fn hset(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let hmset = args.get(0).get(1).is_some_and(|c| *c == b'm' || *c == b'M');
    if args.len() % 2 == 1 {
        let name = if hmset { "hmset" } else { "hset" };
        return out.error(&format!("ERR wrong number of arguments for '{name}' command"));
    }
    let mark = ctx.db().hook.dirty;
    let r = write_hash(ctx, args.get(1), true, |s| {
        let (maxe, maxv) = limits_for(s.get());
        let h = s.get_mut();
        try_conversion(h, &args, 2, maxv);
        let mut created = 0;
        for i in (2..args.len()).step_by(2) {
            created += h.set(args.get(i), args.get(i + 1), maxe, maxv) as i64;
        }
        created
    });
    if let Opened::Done(_) = r {
        // server.dirty += (argc - 2) / 2: every pair, new or not.
        ctx.db().dirty_since(mark, (args.len() as u64 - 2) / 2);
        ctx.notify(NOTIFY_HASH, "hset", args.get(1));
    }
    match r {
        Opened::WrongType => out.error(err::WRONGTYPE),
        Opened::Done(n) if !hmset => out.int(n),
        _ => out.ok(),
    }
}

fn hsetnx(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let r = write_hash(ctx, args.get(1), true, |s| {
        if s.get().contains(args.get(2)) {
            return 0;
        }
        let (maxe, maxv) = limits_for(s.get());
        let h = s.get_mut();
        try_conversion(h, &args, 2, maxv);
        h.set(args.get(2), args.get(3), maxe, maxv);
        1
    });
    match r {
        Opened::Done(n) => {
            if n == 1 {
                ctx.notify(NOTIFY_HASH, "hset", args.get(1));
            }
            out.int(n)
        }
        _ => out.error(err::WRONGTYPE),
    }
}

fn hdel(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let mark = ctx.db().hook.dirty;
    let r = write_hash(ctx, args.get(1), false, |s| {
        let mut deleted = 0;
        for i in 2..args.len() {
            if !s.get().contains(args.get(i)) {
                continue;
            }
            let h = s.get_mut();
            h.remove(args.get(i));
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
        deleted
    });
    match r {
        Opened::Missing => out.int(0),
        Opened::WrongType => out.error(err::WRONGTYPE),
        Opened::Done(n) => {
            if n > 0 {
                let key = args.get(1);
                ctx.db().dirty_since(mark, n as u64);
                note(ctx.db, NOTIFY_HASH, "hdel", key);
                if ctx.db().entry(key).is_none() {
                    note(ctx.db, NOTIFY_GENERIC, "del", key);
                }
            }
            out.int(n)
        }
    }
}

fn hincrby(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(incr) = string2ll(args.get(3)) else {
        return out.error(err::NOT_INT);
    };
    let field = args.get(2);
    let r = write_hash(ctx, args.get(1), true, |s| {
        let old = match s.get().get(field) {
            Some(v) => string2ll(v).ok_or("ERR hash value is not an integer")?,
            None => 0,
        };
        let v = old.checked_add(incr).ok_or(err::OVERFLOW)?;
        let (maxe, maxv) = limits_for(s.get());
        let mut buf = [0u8; 20];
        s.get_mut().set(field, crate::util::num::i64_to_buf(v, &mut buf), maxe, maxv);
        Ok(v)
    });
    match r {
        Opened::Done(Ok(v)) => {
            ctx.notify(NOTIFY_HASH, "hincrby", args.get(1));
            out.int(v)
        }
        Opened::Done(Err(e)) => out.error(e),
        _ => out.error(err::WRONGTYPE),
    }
}

fn hincrbyfloat(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    if let Err(e) = validate_hincr(args.get(3)) {
        return out.error(e.message());
    }
    let field = args.get(2);
    let r = write_hash(ctx, args.get(1), true, |s| {
        let v = hincr_by_float(s.get().get(field), args.get(3)).map_err(|e| e.message())?;
        let (maxe, maxv) = limits_for(s.get());
        s.get_mut().set(field, &v, maxe, maxv);
        Ok(v)
    });
    match r {
        Opened::Done(Ok(v)) => {
            ctx.notify(NOTIFY_HASH, "hincrbyfloat", args.get(1));
            out.bulk(&v)
        }
        Opened::Done(Err(e)) => out.error(e),
        _ => out.error(err::WRONGTYPE),
    }
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

fn hget(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match read_hash(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) => out.null(),
        Ok(Some(h)) => match h.get(args.get(2)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        },
    }
}

fn hmget(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let h = match read_hash(ctx, args.get(1)) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(h) => h,
    };
    out.array_len(args.len() - 2);
    for i in 2..args.len() {
        match h.and_then(|h| h.get(args.get(i))) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
}

/// genericHgetallCommand: fields and/or values in the hash's order.
fn hgetall_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, keys: bool, vals: bool) {
    let both = keys && vals;
    match read_hash(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) if both => out.map_len(0),
        Ok(None) => out.array_len(0),
        Ok(Some(h)) => {
            if both {
                out.map_len(h.len());
            } else {
                out.array_len(h.len());
            }
            for (k, v) in h.iter() {
                if keys {
                    out.bulk(k);
                }
                if vals {
                    out.bulk(v);
                }
            }
        }
    }
}

fn hgetall(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    hgetall_generic(ctx, args, out, true, true)
}

fn hkeys(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    hgetall_generic(ctx, args, out, true, false)
}

fn hvals(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    hgetall_generic(ctx, args, out, false, true)
}

/// HLEN / HEXISTS / HSTRLEN: an integer computed from the hash, 0 when missing.
fn int_of(ctx: &mut Ctx, args: &Args, out: &mut Reply, f: impl FnOnce(&Hash) -> i64) {
    match read_hash(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) => out.int(0),
        Ok(Some(h)) => out.int(f(h)),
    }
}

fn hlen(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    int_of(ctx, &args, out, |h| h.len() as i64)
}

fn hexists(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    int_of(ctx, &args, out, |h| h.contains(args.get(2)) as i64)
}

fn hstrlen(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    int_of(ctx, &args, out, |h| h.get(args.get(2)).map_or(0, |v| v.len() as i64))
}

// ---------------------------------------------------------------------------
// HRANDFIELD
// ---------------------------------------------------------------------------

/// hrandfieldCommand: parse count / WITHVALUES (before the key lookup, as Redis).
fn hrandfield(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    if args.len() >= 3 {
        let l = match parse_range(args.get(2), -i64::MAX, i64::MAX, None) {
            Ok(l) => l,
            Err(e) => return out.error(&e),
        };
        let mut withvalues = false;
        if args.len() > 4 || (args.len() == 4 && !opt_is(args.get(3), "withvalues")) {
            return out.error(err::SYNTAX);
        } else if args.len() == 4 {
            withvalues = true;
            if !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
                return out.error("ERR value is out of range");
            }
        }
        return hrandfield_count(ctx, &args, l, withvalues, out);
    }
    // The seed is drawn first: the hash stays borrowed from the shard below.
    let mut seed = ctx.shard.rand();
    match read_hash(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) => out.null(),
        Ok(Some(h)) => match h.random(|| crate::util::rand::next(&mut seed)) {
            Some((k, _)) => out.bulk(k),
            None => out.null(),
        },
    }
}

/// hrandfieldWithCountCommand: negative counts may repeat fields; positive
/// ones return distinct fields (the whole hash when count >= size). With
/// WITHVALUES RESP3 nests each pair in an array, RESP2 flattens.
fn hrandfield_count(ctx: &mut Ctx, args: &Args, l: i64, withvalues: bool, out: &mut Reply) {
    let mut seed = ctx.shard.rand();
    let mut rnd = move || crate::util::rand::next(&mut seed);
    let h = match read_hash(ctx, args.get(1)) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return out.array_len(0),
        Ok(Some(h)) => h,
    };
    let size = h.len();
    let (count, uniq) = if l >= 0 {
        (l as u64 as usize, true)
    } else {
        (l.unsigned_abs() as usize, false)
    };
    if count == 0 {
        return out.array_len(0);
    }
    let resp3 = out.resp3();
    let pair = |out: &mut Reply, k: &[u8], v: &[u8]| {
        if withvalues && resp3 {
            out.array_len(2);
        }
        out.bulk(k);
        if withvalues {
            out.bulk(v);
        }
    };
    let header = |out: &mut Reply, n: usize| out.array_len(if withvalues && !resp3 { n * 2 } else { n });
    // CASE 1: repeats allowed (or a single field).
    if !uniq || count == 1 {
        header(out, count);
        for _ in 0..count {
            if let Some((k, v)) = h.random(&mut rnd) {
                pair(out, k, v);
            }
        }
        return;
    }
    header(out, count.min(size));
    // CASE 2: the whole hash, in its order.
    if count >= size {
        for (k, v) in h.iter() {
            pair(out, k, v);
        }
        return;
    }
    if count * 3 > size {
        // CASE 3: close to the size: drop random pairs until `count` remain.
        let mut all: Vec<(&[u8], &[u8])> = h.iter().collect();
        while all.len() > count {
            let i = (rnd() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        for (k, v) in all {
            pair(out, k, v);
        }
    } else {
        // CASE 4: much bigger than count: draw until `count` distinct fields.
        let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::with_capacity(count);
        while seen.len() < count {
            let Some((k, v)) = h.random(&mut rnd) else { break };
            if seen.insert(k) {
                pair(out, k, v);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// HSCAN
// ---------------------------------------------------------------------------

fn hscan(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(cursor) = super::keys::parse_scan_cursor(args.get(2)) else {
        return out.error("ERR invalid cursor");
    };
    let h = match read_hash(ctx, args.get(1)) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return empty_scan(out),
        Ok(Some(h)) => h,
    };
    let o = match parse_obj_scan_opts(&args) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    let mut items = Reply::new(out.resp3());
    let mut n = 0;
    let mut add = |k: &[u8], v: &[u8]| {
        if matches(&o.pattern, k) {
            items.bulk(k);
            items.bulk(v);
            n += 2;
        }
    };
    let next = if h.is_packed() {
        for (k, v) in h.iter() {
            add(k, v);
        }
        0
    } else {
        // Fields and values both count: COUNT is doubled, as Redis does.
        let count = o.count.saturating_mul(2);
        let mut iters = count.saturating_mul(10);
        let mut collected = 0usize;
        let mut cur = cursor;
        loop {
            cur = h
                .scan(cur, |k, v| {
                    collected += 2;
                    add(k, v);
                })
                .unwrap_or(0);
            if cur == 0 || iters == 0 || collected >= count {
                break;
            }
            iters -= 1;
        }
        cur
    };
    scan_reply(out, next, n, &items.buf);
}
