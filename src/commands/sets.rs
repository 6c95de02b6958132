//! The sets family, mirroring Redis 7.0.15's t_set.c.
//!
//! Single-key commands (SADD SREM SCARD SMEMBERS SISMEMBER SMISMEMBER SPOP
//! SRANDMEMBER SSCAN) are keyed handlers. The multi-key ones (SMOVE, SINTER,
//! SINTERCARD, SUNION, SDIFF and the STORE forms) are plans: their keys may
//! live on several shards, so they fetch copies of the sets where they live,
//! compute here, and write the destination where it lives, all under the
//! transaction's locks (inline, without messages, when every key is local).

use super::hashes::{empty_scan, matches, opt_is, parse_obj_scan_opts, parse_range, scan_reply};
use super::table::{Ctx, HopLost, PlanFn, Table, Tx};
use crate::keyspace::db::EntryMut;
use crate::keyspace::types::set::Member;
use crate::keyspace::types::Set;
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::{note, NOTIFY_GENERIC, NOTIFY_SET};

pub fn register(t: &mut Table) {
    t.keyed("sadd", sadd);
    t.keyed("srem", srem);
    t.keyed("scard", scard);
    t.keyed("smembers", smembers);
    t.keyed("sismember", sismember);
    t.keyed("smismember", smismember);
    t.keyed("spop", spop);
    t.keyed("srandmember", srandmember);
    t.keyed("sscan", sscan);
    t.plan("smove", SMOVE);
    t.plan("sinter", SINTER);
    t.plan("sintercard", SINTERCARD);
    t.plan("sinterstore", SINTERSTORE);
    t.plan("sunion", SUNION);
    t.plan("sunionstore", SUNIONSTORE);
    t.plan("sdiff", SDIFF);
    t.plan("sdiffstore", SDIFFSTORE);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// set-max-intset-entries (read per write that may convert).
fn max_intset() -> usize {
    crate::keyspace::types::limits::set_intset_entries()
}

#[inline]
fn bulk_member(out: &mut Reply, m: Member) {
    match m {
        Member::Int(v) => out.bulk_int(v),
        Member::Str(s) => out.bulk(s),
    }
}

/// The set at `key` for reading: Ok(None) when missing, Err on WRONGTYPE.
fn read_set<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Set>, ()> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.val {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(()),
        },
    }
}

/// The set inside an entry already checked to hold one.
fn stored_mut<'e>(e: &'e mut EntryMut) -> &'e mut Set {
    match e.val_mut() {
        Value::Set(s) => s,
        _ => unreachable!("type checked on open"),
    }
}

fn stored<'e>(e: &'e EntryMut) -> &'e Set {
    match &e.val {
        Value::Set(s) => s,
        _ => unreachable!("type checked on open"),
    }
}

enum Opened<R> {
    Missing,
    WrongType,
    Done(R),
}

thread_local! {
    /// The key `write_set` just deleted because it emptied: its `del` event
    /// is sent by [`emptied_event`] right after the command's own event.
    static EMPTIED: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Sends the `del` of a key the last `write_set` emptied, if it did.
fn emptied_event(key: &[u8]) {
    if let Some(db) = EMPTIED.with(|e| e.take()) {
        note(db, NOTIFY_GENERIC, "del", key);
    }
}

/// lookupKeyWrite and run `f` on the stored set (the write hook fires only
/// if `f` takes the set mutably); an emptied set is deleted afterwards.
fn write_set<R>(ctx: &mut Ctx, key: &[u8], f: impl FnOnce(&mut EntryMut) -> R) -> Opened<R> {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let found = match db.lookup_write(key, now) {
        None => None,
        Some(mut e) => {
            if !matches!(e.val, Value::Set(_)) {
                return Opened::WrongType;
            }
            let r = f(&mut e);
            Some((r, stored(&e).is_empty()))
        }
    };
    match found {
        None => Opened::Missing,
        Some((r, empty)) => {
            if empty {
                db.remove(key);
                // The caller's own event comes first; the del follows it.
                EMPTIED.with(|e| e.set(Some(dbi)));
            }
            Opened::Done(r)
        }
    }
}

// ---------------------------------------------------------------------------
// Single-key commands
// ---------------------------------------------------------------------------

fn sadd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    // Only an intset can convert: a hashtable set reads no configuration.
    let limit = |s: &Set| if s.is_intset() { max_intset() } else { usize::MAX };
    let add_all = |s: &mut Set| {
        let max = limit(s);
        (2..args.len()).filter(|&i| s.add(args.get(i), max)).count() as i64
    };
    let mark = ctx.db().hook.dirty;
    let r = write_set(ctx, args.get(1), |e| {
        if (2..args.len()).all(|i| stored(e).contains(args.get(i))) {
            return 0;
        }
        add_all(stored_mut(e))
    });
    match r {
        Opened::Done(n) => {
            if n > 0 {
                ctx.db().dirty_since(mark, n as u64);
                ctx.notify(NOTIFY_SET, "sadd", args.get(1));
            }
            out.int(n)
        }
        Opened::WrongType => out.error(err::WRONGTYPE),
        Opened::Missing => {
            let mut s = Set::for_member(args.get(2));
            let n = add_all(&mut s);
            let now = ctx.now;
            ctx.db().set(args.get(1), Value::Set(Box::new(s)), 0, now);
            ctx.db().dirty_since(mark, n as u64);
            ctx.notify(NOTIFY_SET, "sadd", args.get(1));
            out.int(n);
        }
    }
}

fn srem(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let mark = ctx.db().hook.dirty;
    let r = write_set(ctx, args.get(1), |e| {
        let mut deleted = 0;
        for i in 2..args.len() {
            if !stored(e).contains(args.get(i)) {
                continue;
            }
            let s = stored_mut(e);
            s.remove(args.get(i));
            deleted += 1;
            if s.is_empty() {
                break;
            }
        }
        deleted
    });
    match r {
        Opened::Done(n) => {
            if n > 0 {
                ctx.db().dirty_since(mark, n as u64);
                ctx.notify(NOTIFY_SET, "srem", args.get(1));
            }
            emptied_event(args.get(1));
            out.int(n)
        }
        Opened::WrongType => out.error(err::WRONGTYPE),
        Opened::Missing => out.int(0),
    }
}

fn scard(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match read_set(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(s) => out.int(s.map_or(0, |s| s.len() as i64)),
    }
}

fn sismember(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match read_set(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(s) => out.int(s.is_some_and(|s| s.contains(args.get(2))) as i64),
    }
}

fn smismember(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let s = match read_set(ctx, args.get(1)) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(s) => s,
    };
    out.array_len(args.len() - 2);
    for i in 2..args.len() {
        out.int(s.is_some_and(|s| s.contains(args.get(i))) as i64);
    }
}

/// SMEMBERS is SINTER of one key in Redis 7.0: a set reply in the set's order.
fn smembers(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match read_set(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) => out.set_len(0),
        Ok(Some(s)) => {
            out.set_len(s.len());
            for m in s.iter() {
                bulk_member(out, m);
            }
        }
    }
}

fn spop(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    if args.len() == 3 {
        return spop_count(ctx, args, out);
    } else if args.len() > 3 {
        return out.error(err::SYNTAX);
    }
    let mut seed = ctx.shard.rand();
    let mark = ctx.db().hook.dirty;
    let r = write_set(ctx, args.get(1), |e| stored_mut(e).pop_random(|| crate::util::rand::next(&mut seed)));
    match r {
        Opened::Done(Some(m)) => {
            ctx.db().dirty_since(mark, 1);
            ctx.notify(NOTIFY_SET, "spop", args.get(1));
            emptied_event(args.get(1));
            out.bulk(&m)
        }
        Opened::Done(None) | Opened::Missing => out.null(),
        Opened::WrongType => out.error(err::WRONGTYPE),
    }
}

/// spopWithCountCommand: the whole set when count >= size (and the key is
/// deleted), else `count` random members; when few would remain, the
/// remaining members are drawn into a new set instead (Redis's CASE 3, which
/// also decides the new set's encoding).
fn spop_count(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let count = match parse_range(args.get(2), 0, i64::MAX, Some("ERR value is out of range, must be positive")) {
        Ok(c) => c as usize,
        Err(e) => return out.error(&e),
    };
    let mut seed = ctx.shard.rand();
    let mut rnd = move || crate::util::rand::next(&mut seed);
    let max = max_intset();
    let key = args.get(1);
    let mark = ctx.db().hook.dirty;
    let mut popped = 0;
    let r = write_set(ctx, key, |e| {
        let mut reply = Reply::new(out.resp3());
        if count == 0 {
            reply.set_len(0);
            return reply;
        }
        let size = stored(e).len();
        popped = count.min(size);
        if count >= size {
            // sunionDiffGenericCommand of the one set: a fresh set's order.
            let s = stored_mut(e);
            let mut u = Set::new_intset();
            for m in s.iter() {
                m.with(|b| u.add(b, max));
            }
            reply.set_len(u.len());
            for m in u.iter() {
                bulk_member(&mut reply, m);
            }
            *s = Set::new_intset();
            return reply;
        }
        reply.set_len(count);
        let remaining = size - count;
        let s = stored_mut(e);
        if remaining * 5 > count {
            for _ in 0..count {
                if let Some(m) = s.pop_random(&mut rnd) {
                    reply.bulk(&m);
                }
            }
        } else {
            let mut newset: Option<Set> = None;
            for _ in 0..remaining {
                let Some(m) = s.pop_random(&mut rnd) else { break };
                newset.get_or_insert_with(|| Set::for_member(&m)).add(&m, max);
            }
            for m in s.iter() {
                bulk_member(&mut reply, m);
            }
            if let Some(n) = newset {
                *s = n;
            }
        }
        reply
    });
    match r {
        Opened::Done(reply) => {
            if count > 0 {
                ctx.db().dirty_since(mark, popped as u64);
                ctx.notify(NOTIFY_SET, "spop", key);
            }
            emptied_event(key);
            out.raw(&reply.buf)
        }
        Opened::Missing => out.set_len(0),
        Opened::WrongType => out.error(err::WRONGTYPE),
    }
}

fn srandmember(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    if args.len() == 3 {
        return srandmember_count(ctx, args, out);
    } else if args.len() > 3 {
        return out.error(err::SYNTAX);
    }
    let mut seed = ctx.shard.rand();
    match read_set(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) => out.null(),
        Ok(Some(s)) => match s.random(|| crate::util::rand::next(&mut seed)) {
            Some(m) => bulk_member(out, m),
            None => out.null(),
        },
    }
}

/// srandmemberWithCountCommand: negative counts may repeat members; positive
/// ones are distinct (the whole set, in its order, when count >= size).
fn srandmember_count(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let l = match parse_range(args.get(2), -i64::MAX, i64::MAX, None) {
        Ok(l) => l,
        Err(e) => return out.error(&e),
    };
    let (count, uniq) = if l >= 0 { (l as usize, true) } else { (l.unsigned_abs() as usize, false) };
    let mut seed = ctx.shard.rand();
    let mut rnd = move || crate::util::rand::next(&mut seed);
    let s = match read_set(ctx, args.get(1)) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return out.array_len(0),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return out.array_len(0);
    }
    let size = s.len();
    if !uniq || count == 1 {
        out.array_len(count);
        for _ in 0..count {
            if let Some(m) = s.random(&mut rnd) {
                bulk_member(out, m);
            }
        }
        return;
    }
    if count >= size {
        out.array_len(size);
        for m in s.iter() {
            bulk_member(out, m);
        }
        return;
    }
    out.array_len(count);
    if count * 3 > size {
        let mut all: Vec<Member> = s.iter().collect();
        while all.len() > count {
            let i = (rnd() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        for m in all {
            bulk_member(out, m);
        }
    } else {
        let mut seen: std::collections::HashSet<Member> = std::collections::HashSet::with_capacity(count);
        while seen.len() < count {
            let Some(m) = s.random(&mut rnd) else { break };
            if seen.insert(m) {
                bulk_member(out, m);
            }
        }
    }
}

fn sscan(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(cursor) = super::keys::parse_scan_cursor(args.get(2)) else {
        return out.error("ERR invalid cursor");
    };
    let s = match read_set(ctx, args.get(1)) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return empty_scan(out),
        Ok(Some(s)) => s,
    };
    let o = match parse_obj_scan_opts(&args) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    let mut items = Reply::new(out.resp3());
    let mut n = 0;
    let mut add = |m: &[u8]| {
        if matches(&o.pattern, m) {
            items.bulk(m);
            n += 1;
        }
    };
    let next = if s.is_intset() {
        for m in s.iter() {
            m.with(&mut add);
        }
        0
    } else {
        let mut iters = o.count.saturating_mul(10);
        let mut collected = 0usize;
        let mut cur = cursor;
        loop {
            cur = s
                .scan(cur, |m| {
                    collected += 1;
                    add(m);
                })
                .unwrap_or(0);
            if cur == 0 || iters == 0 || collected >= o.count {
                break;
            }
            iters -= 1;
        }
        cur
    };
    scan_reply(out, next, n, &items.buf);
}

// ---------------------------------------------------------------------------
// Multi-key plans
// ---------------------------------------------------------------------------

/// The set operations of SINTER, SINTERCARD, SUNION and SDIFF (and the STORE forms).
#[derive(Clone, Copy)]
enum Op {
    Inter,
    /// SINTERCARD with its LIMIT (0 = none).
    InterCard(usize),
    Union,
    Diff,
}

impl Op {
    /// The event of the STORE variant (sinterstore, sunionstore, sdiffstore).
    fn store_event(&self) -> &'static str {
        match self {
            Op::Inter | Op::InterCard(_) => "sinterstore",
            Op::Union => "sunionstore",
            Op::Diff => "sdiffstore",
        }
    }
}

/// The sets at `keys` on this shard, looked up as Redis does (lazy expiry,
/// hit/miss counters, stopping at the first wrong type), then borrowed together.
fn local_sets<'a>(ctx: &'a mut Ctx, keys: &[Vec<u8>]) -> Result<Vec<Option<&'a Set>>, ()> {
    for k in keys {
        read_set(ctx, k)?;
    }
    let db = &ctx.shard.dbs[ctx.db];
    Ok(keys
        .iter()
        .map(|k| match db.entry(k).map(|e| &e.val) {
            Some(Value::Set(s)) => Some(&**s),
            _ => None,
        })
        .collect())
}

/// Members in one buffer (`varint(len) bytes` each), in a set's iteration
/// order: what crosses shards in a set operation, one allocation for a
/// whole set instead of one per member.
#[derive(Default)]
struct Packed {
    buf: Vec<u8>,
    n: usize,
}

impl Packed {
    fn push(&mut self, m: &[u8]) {
        let mut n = m.len();
        while n >= 0x80 {
            self.buf.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.buf.push(n as u8);
        self.buf.extend_from_slice(m);
        self.n += 1;
    }

    fn of(set: &Set) -> Packed {
        let mut p = Packed::default();
        p.buf.reserve(set.len() * 10);
        for m in set.iter() {
            m.with(|b| p.push(b));
        }
        p
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= self.buf.len() {
                return None;
            }
            let (mut n, mut shift) = (0usize, 0);
            loop {
                let b = self.buf[at];
                at += 1;
                n |= ((b & 0x7f) as usize) << shift;
                if b & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            at += n;
            Some(&self.buf[at - n..at])
        })
    }

    /// Keeps the members for which `keep` holds, in order.
    fn retain(self, mut keep: impl FnMut(&[u8]) -> bool) -> Packed {
        let mut out = Packed::default();
        out.buf.reserve(self.buf.len());
        for m in self.iter() {
            if keep(m) {
                out.push(m);
            }
        }
        out
    }
}

/// Keys of one shard: (argument position, key).
type ShardKeys = Vec<(usize, Vec<u8>)>;

/// The keys at argument positions `pos`, grouped by owning shard.
fn key_groups(tx: &Tx<'_>, args: &Args<'_>, pos: std::ops::Range<usize>) -> Vec<(usize, ShardKeys)> {
    crate::util::group_by_shard(pos.map(|i| (tx.shard_of_arg(i), (i, args.get(i).to_vec()))))
}

/// Every key's set size (None = missing), looked up where it lives as Redis
/// looks them up (lazy expiry, hit/miss counters, in order on each shard);
/// Err(()) when one is not a set.
async fn probe_sizes(tx: &mut Tx<'_>, args: &Args<'_>, pos: std::ops::Range<usize>) -> Result<Result<Vec<Option<usize>>, ()>, HopLost> {
    let base = pos.start;
    let mut sizes = vec![None; pos.len()];
    let parts = key_groups(tx, args, pos)
        .into_iter()
        .map(|(s, keys)| {
            (s, move |ctx: &mut Ctx| {
                let names: Vec<Vec<u8>> = keys.iter().map(|k| k.1.clone()).collect();
                local_sets(ctx, &names).map(|sets| keys.iter().map(|k| k.0).zip(sets.iter().map(|s| s.map(|s| s.len()))).collect::<Vec<_>>())
            })
        })
        .collect();
    for part in tx.hop_each(parts).await? {
        match part {
            Ok(found) => {
                for (i, n) in found {
                    sizes[i - base] = n;
                }
            }
            Err(()) => return Ok(Err(())),
        }
    }
    Ok(Ok(sizes))
}

/// The set at argument `i`, packed where it lives (empty when missing).
async fn fetch_packed(tx: &mut Tx<'_>, args: &Args<'_>, i: usize) -> Result<Packed, HopLost> {
    let key = args.get(i).to_vec();
    tx.hop(tx.shard_of_arg(i), move |ctx: &mut Ctx| {
        match ctx.shard.dbs[ctx.db].entry(&key).map(|e| &e.val) {
            Some(Value::Set(s)) => Packed::of(s),
            _ => Packed::default(),
        }
    })
    .await
}

/// Passes `cand` through every shard holding one of the keys at `pos`
/// (argument `skip` excepted), in order: with `inter` each shard keeps the
/// members that all its sets contain (intersection), otherwise those none of
/// them contains (difference). Missing keys are no sets.
async fn filter_through(tx: &mut Tx<'_>, args: &Args<'_>, pos: std::ops::Range<usize>, skip: usize, mut cand: Packed, inter: bool) -> Result<Packed, HopLost> {
    for (s, keys) in key_groups(tx, args, pos) {
        let names: Vec<Vec<u8>> = keys.into_iter().filter(|k| k.0 != skip).map(|k| k.1).collect();
        if names.is_empty() || cand.n == 0 {
            continue;
        }
        cand = tx
            .hop(s, move |ctx: &mut Ctx| {
                let db = &ctx.shard.dbs[ctx.db];
                let sets: Vec<&Set> = names
                    .iter()
                    .filter_map(|k| match db.entry(k).map(|e| &e.val) {
                        Some(Value::Set(s)) => Some(&**s),
                        _ => None,
                    })
                    .collect();
                if inter {
                    cand.retain(|m| sets.iter().all(|s| s.contains(m)))
                } else {
                    cand.retain(|m| !sets.iter().any(|s| s.contains(m)))
                }
            })
            .await?;
    }
    Ok(cand)
}

/// A set built as Redis builds a result (a new intset converting as members come).
fn build(members: impl Iterator<Item = impl AsRef<[u8]>>) -> Set {
    let max = max_intset();
    let mut dst = Set::new_intset();
    for m in members {
        dst.add(m.as_ref(), max);
    }
    dst
}

/// A set operation whose keys live on several shards. Nothing is copied set
/// by set: the sizes are probed first; an intersection ships the smallest
/// set's members (packed) through the other shards, which keep those their
/// sets all contain; a difference ships the first set's members the same way
/// (or, when Redis's cost model picks its second algorithm, the packed
/// others); a union packs every set once. Results and their encodings are
/// built as the single-shard path builds them.
async fn setop_cross(
    tx: &mut Tx<'_>,
    args: &Args<'_>,
    out: &mut Reply,
    op: Op,
    keys: std::ops::Range<usize>,
    sameset: bool,
    store: bool,
) -> Result<(), HopLost> {
    let sizes = match probe_sizes(tx, args, keys.clone()).await? {
        Ok(s) => s,
        Err(()) => {
            out.error(err::WRONGTYPE);
            return Ok(());
        }
    };
    let result: Option<Packed> = match op {
        Op::Inter | Op::InterCard(_) => {
            if sizes.iter().any(|s| s.is_none()) {
                None
            } else {
                // The smallest set (the first of equal sizes), as the local path iterates it.
                let (small, _) = sizes.iter().enumerate().min_by_key(|(_, n)| n.unwrap_or(0)).unwrap_or((0, &None));
                let small = keys.start + small;
                let cand = fetch_packed(tx, args, small).await?;
                Some(filter_through(tx, args, keys.clone(), small, cand, true).await?)
            }
        }
        Op::Union => {
            let mut all = Packed::default();
            for i in keys.clone() {
                if sizes[i - keys.start].is_some() {
                    let p = fetch_packed(tx, args, i).await?;
                    for m in p.iter() {
                        all.push(m);
                    }
                }
            }
            Some(all)
        }
        Op::Diff => match sizes[0] {
            None => None,
            Some(_) if sameset => None,
            Some(n0) => {
                let present = sizes.iter().flatten().count();
                let two: usize = sizes.iter().flatten().sum();
                let first = fetch_packed(tx, args, keys.start).await?;
                if present * n0 / 2 <= two {
                    Some(filter_through(tx, args, keys.start + 1..keys.end, keys.start, first, false).await?)
                } else {
                    // Redis's second algorithm: everything, then remove each other set's members.
                    let mut dst = build(first.iter());
                    for i in keys.start + 1..keys.end {
                        if dst.is_empty() {
                            break;
                        }
                        if sizes[i - keys.start].is_some() {
                            for m in fetch_packed(tx, args, i).await?.iter() {
                                dst.remove(m);
                            }
                        }
                    }
                    return finish_set(tx, args, out, dst, store, op.store_event()).await;
                }
            }
        },
    };
    let result = result.unwrap_or_default();
    if let Op::InterCard(limit) = op {
        out.int(if limit == 0 { result.n } else { result.n.min(limit) } as i64);
        return Ok(());
    }
    match op {
        Op::Inter if !store => {
            // The intersection replies in the smallest set's order, as Redis.
            out.set_len(result.n);
            for m in result.iter() {
                out.bulk(m);
            }
            Ok(())
        }
        _ => finish_set(tx, args, out, build(result.iter()), store, op.store_event()).await,
    }
}

/// Replies a computed set, or stores it at argument 1 where that key lives.
async fn finish_set(tx: &mut Tx<'_>, args: &Args<'_>, out: &mut Reply, result: Set, store: bool, event: &'static str) -> Result<(), HopLost> {
    if !store {
        out.set_len(result.len());
        for m in result.iter() {
            bulk_member(out, m);
        }
        return Ok(());
    }
    let dst = args.get(1).to_vec();
    let resp3 = out.resp3();
    let bytes = tx
        .hop(tx.shard_of_arg(1), move |ctx: &mut Ctx| {
            let mut r = Reply::new(resp3);
            store_local(ctx, &dst, result, event, &mut r);
            r.buf
        })
        .await?;
    out.raw(&bytes);
    Ok(())
}

/// Stores `result` at `dst` on this shard (setKey), or deletes `dst` when the
/// result is empty; replies the result's size.
fn store_local(ctx: &mut Ctx, dst: &[u8], result: Set, event: &'static str, out: &mut Reply) {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    out.int(result.len() as i64);
    db.lookup_write(dst, now);
    if result.is_empty() {
        if db.remove(dst).is_some() {
            note(dbi, NOTIFY_GENERIC, "del", dst);
        }
    } else {
        db.set(dst, Value::Set(Box::new(result)), 0, now);
        note(dbi, NOTIFY_SET, event, dst);
    }
}

/// sinterGenericCommand / sunionDiffGenericCommand over the looked-up sets
/// (None = missing key). With `store` the result set is returned (to be
/// stored); otherwise the reply is written. Results are built as Redis
/// builds them (a new intset that converts as members come), so encodings
/// and intset order match; SDIFF picks Redis's algorithm for the same reason.
/// `sameset`: a later key names the first set again.
fn compute(op: Op, sets: &[Option<&Set>], sameset: bool, store: bool, out: &mut Reply) -> Option<Set> {
    let max = max_intset();
    if let Op::Inter | Op::InterCard(_) = op {
        if sets.iter().any(|s| s.is_none()) {
            match op {
                _ if store => return Some(Set::new_intset()),
                Op::InterCard(_) => out.int(0),
                _ => out.set_len(0),
            }
            return None;
        }
        // Iterate the smallest (stable: the first of equal sizes), in its order.
        let mut order: Vec<&Set> = sets.iter().flatten().copied().collect();
        order.sort_by_key(|s| s.len());
        let (first, rest) = order.split_first()?;
        let hits = first.iter().filter(|m| m.with(|b| rest.iter().all(|s| s.contains(b))));
        match op {
            Op::InterCard(limit) => {
                let n = if limit == 0 { hits.count() } else { hits.take(limit).count() };
                out.int(n as i64);
            }
            _ if store => {
                let mut dst = Set::new_intset();
                for m in hits {
                    m.with(|b| dst.add(b, max));
                }
                return Some(dst);
            }
            _ => {
                let mut body = Reply::new(out.resp3());
                let mut n = 0;
                for m in hits {
                    bulk_member(&mut body, m);
                    n += 1;
                }
                out.set_len(n);
                out.raw(&body.buf);
            }
        }
        return None;
    }
    let mut dst = Set::new_intset();
    if let Op::Union = op {
        for s in sets.iter().flatten() {
            for m in s.iter() {
                m.with(|b| dst.add(b, max));
            }
        }
    } else if let (Some(s0), false) = (sets[0], sameset) {
        let others = || sets[1..].iter().flatten();
        let present = sets.iter().flatten().count();
        let one = present * s0.len() / 2;
        let two: usize = sets.iter().flatten().map(|s| s.len()).sum();
        if one <= two {
            for m in s0.iter() {
                if !m.with(|b| others().any(|s| s.contains(b))) {
                    m.with(|b| dst.add(b, max));
                }
            }
        } else {
            for m in s0.iter() {
                m.with(|b| dst.add(b, max));
            }
            for s in others() {
                if dst.is_empty() {
                    break;
                }
                for m in s.iter() {
                    m.with(|b| dst.remove(b));
                }
            }
        }
    }
    if store {
        return Some(dst);
    }
    out.set_len(dst.len());
    for m in dst.iter() {
        bulk_member(out, m);
    }
    None
}

/// One set-operation command: keys at `keys`, destination at argument 1
/// when `store`. When every key lives on one shard the whole command runs
/// there in one step, on the stored sets; otherwise copies are fetched from
/// every shard at once, the result is computed here and stored where the
/// destination lives.
async fn setop(tx: &mut Tx<'_>, args: &Args<'_>, out: &mut Reply, op: Op, keys: std::ops::Range<usize>, store: bool) -> Result<(), HopLost> {
    let key0 = args.get(keys.start);
    // The same key again is the same object as the first set (Redis compares pointers).
    let sameset = keys.clone().skip(1).any(|i| args.get(i) == key0);
    let shards = tx.shards();
    if shards.len() == 1 {
        let names: Vec<Vec<u8>> = keys.map(|i| args.get(i).to_vec()).collect();
        let dst = store.then(|| args.get(1).to_vec());
        let resp3 = out.resp3();
        let bytes = tx
            .hop(shards[0], move |ctx: &mut Ctx| {
                let mut r = Reply::new(resp3);
                let result = match local_sets(ctx, &names) {
                    Ok(sets) => compute(op, &sets, sameset, dst.is_some(), &mut r),
                    Err(()) => {
                        r.error(err::WRONGTYPE);
                        return r.buf;
                    }
                };
                if let (Some(d), Some(set)) = (dst, result) {
                    store_local(ctx, &d, set, op.store_event(), &mut r);
                }
                r.buf
            })
            .await?;
        out.raw(&bytes);
        return Ok(());
    }
    setop_cross(tx, args, out, op, keys, sameset, store).await
}

const SINTER: PlanFn = |tx, args, out| Box::pin(async move { setop(tx, &args, out, Op::Inter, 1..args.len(), false).await });
const SINTERSTORE: PlanFn = |tx, args, out| Box::pin(async move { setop(tx, &args, out, Op::Inter, 2..args.len(), true).await });
const SUNION: PlanFn = |tx, args, out| Box::pin(async move { setop(tx, &args, out, Op::Union, 1..args.len(), false).await });
const SUNIONSTORE: PlanFn = |tx, args, out| Box::pin(async move { setop(tx, &args, out, Op::Union, 2..args.len(), true).await });
const SDIFF: PlanFn = |tx, args, out| Box::pin(async move { setop(tx, &args, out, Op::Diff, 1..args.len(), false).await });
const SDIFFSTORE: PlanFn = |tx, args, out| Box::pin(async move { setop(tx, &args, out, Op::Diff, 2..args.len(), true).await });
const SINTERCARD: PlanFn = |tx, args, out| Box::pin(sintercard_plan(tx, args, out));

/// SINTERCARD numkeys key [key ...] [LIMIT limit]: the arguments are checked
/// before any key is read, as Redis does.
async fn sintercard_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let numkeys = match parse_range(args.get(1), 1, i64::MAX, Some("ERR numkeys should be greater than 0")) {
        Ok(n) => n as usize,
        Err(e) => {
            out.error(&e);
            return Ok(());
        }
    };
    if numkeys > args.len() - 2 {
        out.error("ERR Number of keys can't be greater than number of args");
        return Ok(());
    }
    let mut limit = 0usize;
    let mut j = 2 + numkeys;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if opt_is(args.get(j), "limit") && more > 0 {
            j += 1;
            match parse_range(args.get(j), 0, i64::MAX, Some("ERR LIMIT can't be negative")) {
                Ok(l) => limit = l as usize,
                Err(e) => {
                    out.error(&e);
                    return Ok(());
                }
            }
        } else {
            out.error(err::SYNTAX);
            return Ok(());
        }
        j += 1;
    }
    setop(tx, &args, out, Op::InterCard(limit), 2..2 + numkeys, false).await
}

const SMOVE: PlanFn = |tx, args, out| Box::pin(smove_plan(tx, args, out));

/// What SMOVE learns about one of its keys.
enum Probe {
    Missing,
    WrongType,
    Set { has: bool },
}

/// SMOVE source destination member: both keys checked (in parallel), then
/// the member removed from the source and added to the destination (in
/// parallel; nothing can change in between under the locks).
async fn smove_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let (src, dst, member) = (args.get(1).to_vec(), args.get(2).to_vec(), args.get(3).to_vec());
    let probe = |key: Vec<u8>, member: Vec<u8>| {
        move |ctx: &mut Ctx| {
            let now = ctx.now;
            match ctx.db().lookup_write(&key, now) {
                None => Probe::Missing,
                Some(e) => match &e.val {
                    Value::Set(s) => Probe::Set { has: s.contains(&member) },
                    _ => Probe::WrongType,
                },
            }
        }
    };
    let (ss, ds) = (tx.shard_of_arg(1), tx.shard_of_arg(2));
    let hs = tx.hop(ss, probe(src.clone(), member.clone()));
    let hd = tx.hop(ds, probe(dst.clone(), member.clone()));
    let (ps, pd) = (hs.await?, hd.await?);
    let has = match (ps, pd) {
        (Probe::Missing, _) => {
            out.int(0);
            return Ok(());
        }
        (Probe::WrongType, _) | (_, Probe::WrongType) => {
            out.error(err::WRONGTYPE);
            return Ok(());
        }
        (Probe::Set { has }, _) => has,
    };
    if src == dst || !has {
        out.int(has as i64);
        return Ok(());
    }
    let m = member.clone();
    let remove = tx.hop(ss, move |ctx: &mut Ctx| {
        write_set(ctx, &src, |e| stored_mut(e).remove(&m));
        ctx.notify(NOTIFY_SET, "srem", &src);
        emptied_event(&src);
    });
    // The removal's events come before the addition's, as in Redis.
    remove.await?;
    let max = max_intset();
    let add = tx.hop(ds, move |ctx: &mut Ctx| {
        let r = write_set(ctx, &dst, |e| {
            if !stored(e).contains(&member) {
                stored_mut(e).add(&member, max);
                true
            } else {
                false
            }
        });
        if let Opened::Done(true) = r {
            ctx.notify(NOTIFY_SET, "sadd", &dst);
        }
        if let Opened::Missing = r {
            let mut s = Set::for_member(&member);
            s.add(&member, max);
            let now = ctx.now;
            ctx.db().set(&dst, Value::Set(Box::new(s)), 0, now);
            ctx.notify(NOTIFY_SET, "sadd", &dst);
        }
    });
    add.await?;
    out.int(1);
    Ok(())
}
