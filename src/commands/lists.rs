//! The lists family, mirroring Redis 7.0.15's t_list.c: LPUSH RPUSH LPUSHX
//! RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM LTRIM LPOS, the moves
//! LMOVE RPOPLPUSH and LMPOP (plans: their keys may live on several shards),
//! and the blocking BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP.
//!
//! Argument errors are checked in Redis's order (which differs per command:
//! LRANGE parses its indexes before looking the key up, LINDEX after), and a
//! list popped to empty is deleted, as Redis does.

use super::table::{parse_timeout, BlockResult, Ctx, HopLost, PlanFn, Table, Tx};
use crate::keyspace::db::EntryMut;
use crate::keyspace::types::List;
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::{note, NOTIFY_GENERIC, NOTIFY_LIST};
use crate::util::num::string2ll;

pub fn register(t: &mut Table) {
    t.keyed("lpush", lpush);
    t.keyed("rpush", rpush);
    t.keyed("lpushx", lpushx);
    t.keyed("rpushx", rpushx);
    t.keyed("lpop", lpop);
    t.keyed("rpop", rpop);
    t.keyed("llen", llen);
    t.keyed("lrange", lrange);
    t.keyed("lindex", lindex);
    t.keyed("lset", lset);
    t.keyed("linsert", linsert);
    t.keyed("lrem", lrem);
    t.keyed("ltrim", ltrim);
    t.keyed("lpos", lpos);
    t.plan("lmove", LMOVE);
    t.plan("rpoplpush", RPOPLPUSH);
    t.plan("lmpop", LMPOP);
    t.blocking("blpop", blpop);
    t.blocking("brpop", brpop);
    t.blocking("blmove", blmove);
    t.blocking("brpoplpush", brpoplpush);
    t.blocking("blmpop", blmpop);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const OUT_OF_RANGE: &str = "ERR index out of range";
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";

/// getLongFromObjectOrReply.
#[inline]
fn parse_long(b: &[u8], out: &mut Reply) -> Option<i64> {
    let v = string2ll(b);
    if v.is_none() {
        out.error(err::NOT_INT);
    }
    v
}

/// getPositiveLongFromObjectOrReply: one error for a negative count and for
/// a non-number alike (`msg`, or "must be positive").
fn parse_positive(b: &[u8], msg: Option<&str>, out: &mut Reply) -> Option<i64> {
    match string2ll(b) {
        Some(v) if v >= 0 => Some(v),
        _ => {
            out.error(msg.unwrap_or(MUST_BE_POSITIVE));
            None
        }
    }
}

/// getListPositionFromObjectOrReply: LEFT is the head.
pub fn parse_where(b: &[u8]) -> Option<bool> {
    if b.eq_ignore_ascii_case(b"left") {
        Some(true)
    } else if b.eq_ignore_ascii_case(b"right") {
        Some(false)
    } else {
        None
    }
}

/// What a key holds, as a list command sees it.
enum Found<T> {
    Missing,
    WrongType,
    List(T),
}

/// The list behind a write lookup (None: another type).
#[inline]
fn list_of<'a>(e: &'a mut EntryMut<'_>) -> Option<&'a mut List> {
    match e.val_mut() {
        Value::List(l) => Some(l),
        _ => None,
    }
}

#[inline]
fn is_list(v: &Value) -> bool {
    matches!(v, Value::List(_))
}

/// Stores a new list (the key is known to be absent).
fn create(ctx: &mut Ctx, key: &[u8], l: List) {
    let now = ctx.now;
    ctx.db().set(key, Value::List(Box::new(l)), 0, now);
}

/// Pops up to `count` elements from one end as owned values (for hops, which
/// return data to the coordinator), deleting the key when it empties.
fn pop_key(ctx: &mut Ctx, key: &[u8], left: bool, count: usize) -> Found<Vec<Vec<u8>>> {
    match pop_key_quiet(ctx, key, left, count) {
        Found::List((vals, empty)) => {
            pop_events(ctx.db, key, left, !vals.is_empty(), empty);
            Found::List(vals)
        }
        Found::Missing => Found::Missing,
        Found::WrongType => Found::WrongType,
    }
}

/// The events of a pop: `lpop`/`rpop`, then `del` when the list emptied.
fn pop_events(db: usize, key: &[u8], left: bool, popped: bool, emptied: bool) {
    if popped {
        note(db, NOTIFY_LIST, if left { "lpop" } else { "rpop" }, key);
    }
    if emptied {
        note(db, NOTIFY_GENERIC, "del", key);
    }
}

/// Like [`pop_key`] without the events (a move sends them after its push),
/// also saying whether the list emptied.
fn pop_key_quiet(ctx: &mut Ctx, key: &[u8], left: bool, count: usize) -> Found<(Vec<Vec<u8>>, bool)> {
    let now = ctx.now;
    let db = ctx.db();
    let mark = db.hook.dirty;
    let (vals, empty) = {
        let Some(mut e) = db.lookup_write(key, now) else { return Found::Missing };
        match &e.val {
            Value::List(l) if l.is_empty() => return Found::Missing,
            Value::List(_) => {}
            _ => return Found::WrongType,
        }
        let Some(l) = list_of(&mut e) else { return Found::WrongType };
        let n = count.min(l.len());
        let vals: Vec<Vec<u8>> = if left {
            let v = l.iter().take(n).map(|x| x.to_vec()).collect();
            l.remove_front(n);
            v
        } else {
            let v = l.iter_rev().take(n).map(|x| x.to_vec()).collect();
            l.remove_back(n);
            v
        };
        (vals, l.is_empty())
    };
    if empty {
        db.remove(key);
    }
    db.dirty_since(mark, vals.len() as u64);
    Found::List((vals, empty))
}

/// Pops up to `n` elements from one end straight into the reply (no copy),
/// after `head(out, popped)` wrote what precedes them; deletes an emptied key.
/// The pops' hot path: nothing is allocated.
fn pop_into(ctx: &mut Ctx, key: &[u8], left: bool, n: usize, out: &mut Reply, head: impl FnOnce(&mut Reply, usize)) -> Found<()> {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let mark = db.hook.dirty;
    let popped;
    let empty = {
        let Some(mut e) = db.lookup_write(key, now) else { return Found::Missing };
        match &e.val {
            Value::List(l) if l.is_empty() => return Found::Missing,
            Value::List(_) => {}
            _ => return Found::WrongType,
        }
        let Some(l) = list_of(&mut e) else { return Found::WrongType };
        let n = n.min(l.len());
        popped = n;
        head(out, n);
        if n > 0 {
            note(dbi, NOTIFY_LIST, if left { "lpop" } else { "rpop" }, key);
        }
        if left {
            for v in l.iter().take(n) {
                out.bulk(v);
            }
            l.remove_front(n);
        } else {
            for v in l.iter_rev().take(n) {
                out.bulk(v);
            }
            l.remove_back(n);
        }
        l.is_empty()
    };
    if empty {
        db.remove(key);
        note(dbi, NOTIFY_GENERIC, "del", key);
    }
    db.dirty_since(mark, popped as u64);
    Found::List(())
}

/// The range reply of LRANGE (and the index arithmetic Redis uses).
fn range_bounds(start: i64, end: i64, llen: i64) -> Option<(usize, usize)> {
    let mut start = if start < 0 { llen.saturating_add(start) } else { start };
    let mut end = if end < 0 { llen.saturating_add(end) } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return None;
    }
    if end >= llen {
        end = llen - 1;
    }
    Some((start as usize, (end - start + 1) as usize))
}

// ---------------------------------------------------------------------------
// Pushes
// ---------------------------------------------------------------------------

/// pushGenericCommand: `xx` is the -X variant (only an existing list).
fn push_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, left: bool, xx: bool) {
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let event = if left { "lpush" } else { "rpush" };
    let mark = ctx.db().hook.dirty;
    let pushed = (args.len() - 2) as u64;
    let appended = match ctx.db().lookup_write(key, now) {
        Some(mut e) => {
            if !is_list(&e.val) {
                return out.error(err::WRONGTYPE);
            }
            let Some(l) = list_of(&mut e) else { return out.error(err::WRONGTYPE) };
            for j in 2..args.len() {
                l.push(args.get(j), left);
            }
            out.int(l.len() as i64);
            true
        }
        None => false,
    };
    if appended {
        ctx.db().dirty_since(mark, pushed);
        return note(dbi, NOTIFY_LIST, event, key);
    }
    if xx {
        return out.int(0);
    }
    let mut l = List::new();
    for j in 2..args.len() {
        l.push(args.get(j), left);
    }
    out.int(l.len() as i64);
    create(ctx, key, l);
    ctx.db().dirty_since(mark, pushed);
    note(dbi, NOTIFY_LIST, event, key);
}

fn lpush(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    push_generic(ctx, args, out, true, false)
}
fn rpush(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    push_generic(ctx, args, out, false, false)
}
fn lpushx(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    push_generic(ctx, args, out, true, true)
}
fn rpushx(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    push_generic(ctx, args, out, false, true)
}

// ---------------------------------------------------------------------------
// Pops
// ---------------------------------------------------------------------------

/// popGenericCommand: without a count a bulk (or null), with one an array
/// (or a null array for a missing key).
fn pop_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, left: bool) {
    if args.len() > 3 {
        let name = if left { "lpop" } else { "rpop" };
        return out.error(&format!("ERR wrong number of arguments for '{name}' command"));
    }
    let count = if args.len() == 3 {
        match parse_positive(args.get(2), None, out) {
            Some(c) => Some(c as usize),
            None => return,
        }
    } else {
        None
    };
    let key = args.get(1);
    if count == Some(0) {
        // Redis's fast path, after the key's type check.
        let now = ctx.now;
        return match ctx.db().lookup_write(key, now) {
            None => out.null_array(),
            Some(e) if !is_list(&e.val) => out.error(err::WRONGTYPE),
            Some(_) => out.array_len(0),
        };
    }
    let counted = count.is_some();
    let head = |out: &mut Reply, n: usize| {
        if counted {
            out.array_len(n)
        }
    };
    match pop_into(ctx, key, left, count.unwrap_or(1), out, head) {
        Found::Missing if counted => out.null_array(),
        Found::Missing => out.null(),
        Found::WrongType => out.error(err::WRONGTYPE),
        Found::List(()) => {}
    }
}

fn lpop(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    pop_generic(ctx, args, out, true)
}
fn rpop(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    pop_generic(ctx, args, out, false)
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

fn llen(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match ctx.lookup_read(args.get(1)) {
        None => out.int(0),
        Some(e) => match &e.val {
            Value::List(l) => out.int(l.len() as i64),
            _ => out.error(err::WRONGTYPE),
        },
    }
}

fn lrange(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(start) = parse_long(args.get(2), out) else { return };
    let Some(end) = parse_long(args.get(3), out) else { return };
    match ctx.lookup_read(args.get(1)) {
        None => out.array_len(0),
        Some(e) => match &e.val {
            Value::List(l) => match range_bounds(start, end, l.len() as i64) {
                None => out.array_len(0),
                Some((from, n)) => {
                    out.array_len(n);
                    for v in l.iter_from(from).take(n) {
                        out.bulk(v);
                    }
                }
            },
            _ => out.error(err::WRONGTYPE),
        },
    }
}

/// A Redis index (negative counts from the tail) as a position, if in range.
fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { (len as i64).checked_add(i)? } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let idx = args.get(2);
    match ctx.lookup_read(args.get(1)) {
        None => out.null(),
        Some(e) => match &e.val {
            Value::List(l) => {
                let Some(i) = parse_long(idx, out) else { return };
                match resolve_index(i, l.len()).and_then(|i| l.get(i)) {
                    Some(v) => out.bulk(v),
                    None => out.null(),
                }
            }
            _ => out.error(err::WRONGTYPE),
        },
    }
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len].
fn lpos(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let (mut rank, mut count, mut maxlen): (i64, Option<i64>, i64) = (1, None, 0);
    let mut j = 3;
    while j < args.len() {
        let opt = args.get(j);
        let more = j + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"rank") && more {
            j += 1;
            let Some(r) = parse_long(args.get(j), out) else { return };
            if r == 0 {
                return out.error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                );
            }
            rank = r;
        } else if opt.eq_ignore_ascii_case(b"count") && more {
            j += 1;
            let Some(c) = parse_positive(args.get(j), Some("ERR COUNT can't be negative"), out) else {
                return;
            };
            count = Some(c);
        } else if opt.eq_ignore_ascii_case(b"maxlen") && more {
            j += 1;
            let Some(m) = parse_positive(args.get(j), Some("ERR MAXLEN can't be negative"), out) else {
                return;
            };
            maxlen = m;
        } else {
            return out.error(err::SYNTAX);
        }
        j += 1;
    }
    // A negative rank searches from the tail. Redis negates it in C, so
    // LONG_MIN stays negative there: "any match", the first one found.
    let from_tail = rank < 0;
    let rank = if from_tail { rank.wrapping_neg() } else { rank };
    let ele = args.get(2);
    let Some(e) = ctx.lookup_read(args.get(1)) else {
        return match count {
            Some(_) => out.array_len(0),
            None => out.null(),
        };
    };
    let Value::List(l) = &e.val else { return out.error(err::WRONGTYPE) };
    let llen = l.len() as i64;
    let found = if from_tail {
        lpos_scan(l.iter_rev(), ele, rank, count, maxlen, |i| llen - i - 1)
    } else {
        lpos_scan(l.iter(), ele, rank, count, maxlen, |i| i)
    };
    match count {
        Some(_) => {
            out.array_len(found.len());
            for p in found {
                out.int(p);
            }
        }
        None => match found.first() {
            Some(p) => out.int(*p),
            None => out.null(),
        },
    }
}

/// LPOS's walk: positions of the matches from the `rank`-th on, up to `count`
/// (None: the first only; 0: all), within the first `maxlen` elements (0: all).
fn lpos_scan<'a>(it: impl Iterator<Item = &'a [u8]>, ele: &[u8], rank: i64, count: Option<i64>, maxlen: i64, pos: impl Fn(i64) -> i64) -> Vec<i64> {
    let mut matches: i64 = 0;
    let mut found = Vec::new();
    for (index, x) in it.enumerate() {
        let index = index as i64;
        if maxlen != 0 && index >= maxlen {
            break;
        }
        if x == ele {
            matches += 1;
            if matches >= rank {
                found.push(pos(index));
                match count {
                    None => break,
                    Some(c) if c != 0 && matches - rank + 1 >= c => break,
                    _ => {}
                }
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Edits
// ---------------------------------------------------------------------------

fn lset(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let (now, dbi) = (ctx.now, ctx.db);
    let Some(mut e) = ctx.db().lookup_write(args.get(1), now) else {
        return out.error(err::NO_SUCH_KEY);
    };
    let Value::List(l) = &e.val else { return out.error(err::WRONGTYPE) };
    let Some(i) = parse_long(args.get(2), out) else { return };
    let Some(i) = resolve_index(i, l.len()) else { return out.error(OUT_OF_RANGE) };
    if let Some(l) = list_of(&mut e) {
        l.set(i, args.get(3));
    }
    out.ok();
    note(dbi, NOTIFY_LIST, "lset", args.get(1));
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the pivot.
fn linsert(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let w = args.get(2);
    let after = if w.eq_ignore_ascii_case(b"after") {
        true
    } else if w.eq_ignore_ascii_case(b"before") {
        false
    } else {
        return out.error(err::SYNTAX);
    };
    let (now, dbi) = (ctx.now, ctx.db);
    let Some(mut e) = ctx.db().lookup_write(args.get(1), now) else {
        return out.int(0);
    };
    let Value::List(l) = &e.val else { return out.error(err::WRONGTYPE) };
    let Some(at) = l.iter().position(|x| x == args.get(3)) else {
        return out.int(-1);
    };
    let Some(l) = list_of(&mut e) else { return out.error(err::WRONGTYPE) };
    l.insert(at + after as usize, args.get(4));
    out.int(l.len() as i64);
    note(dbi, NOTIFY_LIST, "linsert", args.get(1));
}

/// LREM key count element.
fn lrem(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(count) = parse_long(args.get(2), out) else { return };
    let (key, ele) = (args.get(1), args.get(3));
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let mark = db.hook.dirty;
    let (removed, empty) = {
        let Some(mut e) = db.lookup_write(key, now) else { return out.int(0) };
        let Value::List(l) = &e.val else { return out.error(err::WRONGTYPE) };
        // Only a real change reaches the write hook (Redis signals nothing otherwise).
        if !l.iter().any(|x| x == ele) {
            return out.int(0);
        }
        let Some(l) = list_of(&mut e) else { return out.error(err::WRONGTYPE) };
        let n = l.remove_matching(ele, count.unsigned_abs().min(usize::MAX as u64) as usize, count < 0);
        (n, l.is_empty())
    };
    if removed > 0 {
        note(dbi, NOTIFY_LIST, "lrem", key);
    }
    if empty {
        db.remove(key);
        note(dbi, NOTIFY_GENERIC, "del", key);
    }
    db.dirty_since(mark, removed as u64);
    out.int(removed as i64);
}

/// LTRIM key start stop.
fn ltrim(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(start) = parse_long(args.get(2), out) else { return };
    let Some(end) = parse_long(args.get(3), out) else { return };
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let mark = db.hook.dirty;
    let trimmed;
    let empty = {
        let Some(mut e) = db.lookup_write(key, now) else { return out.ok() };
        let Value::List(l) = &e.val else { return out.error(err::WRONGTYPE) };
        let llen = l.len();
        let (ltrim, rtrim) = match range_bounds(start, end, llen as i64) {
            None => (llen, 0),
            Some((from, n)) => (from, llen - from - n),
        };
        let Some(l) = list_of(&mut e) else { return out.error(err::WRONGTYPE) };
        l.remove_front(ltrim);
        l.remove_back(rtrim);
        trimmed = ltrim + rtrim;
        l.is_empty()
    };
    note(dbi, NOTIFY_LIST, "ltrim", key);
    if empty {
        db.remove(key);
        note(dbi, NOTIFY_GENERIC, "del", key);
    }
    db.dirty_since(mark, trimmed as u64);
    out.ok();
}

// ---------------------------------------------------------------------------
// LMOVE RPOPLPUSH (plans)
// ---------------------------------------------------------------------------

/// What one side of a move found.
enum Move {
    /// The source is missing (or empty): null reply.
    Missing,
    WrongType,
    Moved(Vec<u8>),
}

/// The whole move on one shard (source and destination both here): Redis's
/// lmoveGenericCommand, including the rotation of a list onto itself.
fn lmove_local(ctx: &mut Ctx, src: &[u8], dst: &[u8], from_left: bool, to_left: bool) -> Move {
    let mark = ctx.db().hook.dirty;
    let r = lmove_here(ctx, src, dst, from_left, to_left);
    if let Move::Moved(_) = r {
        // lmoveGenericCommand: server.dirty++ for the pop and push together.
        ctx.db().dirty_since(mark, 1);
    }
    r
}

fn lmove_here(ctx: &mut Ctx, src: &[u8], dst: &[u8], from_left: bool, to_left: bool) -> Move {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    match db.lookup_write(src, now) {
        None => return Move::Missing,
        Some(e) => match &e.val {
            Value::List(l) if l.is_empty() => return Move::Missing,
            Value::List(_) => {}
            _ => return Move::WrongType,
        },
    }
    let dst_exists = match db.lookup_write(dst, now) {
        None => false,
        Some(e) if !is_list(&e.val) => return Move::WrongType,
        Some(_) => true,
    };
    let (v, empty) = {
        let Some(mut e) = db.lookup_write(src, now) else { return Move::Missing };
        let Some(l) = list_of(&mut e) else { return Move::WrongType };
        let Some(v) = l.pop(from_left) else { return Move::Missing };
        if src == dst {
            l.push(&v, to_left);
            note(dbi, NOTIFY_LIST, if to_left { "lpush" } else { "rpush" }, dst);
            note(dbi, NOTIFY_LIST, if from_left { "lpop" } else { "rpop" }, src);
            return Move::Moved(v);
        }
        (v, l.is_empty())
    };
    push_one(ctx, dst, dst_exists, &v, to_left);
    if empty {
        ctx.db().remove(src);
    }
    pop_events(dbi, src, from_left, true, empty);
    Move::Moved(v)
}

/// lmoveHandlePush: pushes onto the (type-checked) destination, creating it.
fn push_one(ctx: &mut Ctx, dst: &[u8], exists: bool, v: &[u8], to_left: bool) {
    let now = ctx.now;
    let event = if to_left { "lpush" } else { "rpush" };
    if exists {
        let dbi = ctx.db;
        let pushed = match ctx.db().lookup_write(dst, now) {
            Some(mut e) => match list_of(&mut e) {
                Some(l) => {
                    l.push(v, to_left);
                    true
                }
                None => false,
            },
            None => false,
        };
        if pushed {
            note(dbi, NOTIFY_LIST, event, dst);
            return;
        }
    }
    let mut l = List::new();
    l.push(v, to_left);
    // Created first (its `new` event), then the push's.
    create(ctx, dst, l);
    note(ctx.db, NOTIFY_LIST, event, dst);
}

/// The type check of a move's source (without popping).
fn probe_src(ctx: &mut Ctx, src: &[u8]) -> Move {
    let now = ctx.now;
    match ctx.db().lookup_write(src, now) {
        None => Move::Missing,
        Some(e) => match &e.val {
            Value::List(l) if l.is_empty() => Move::Missing,
            Value::List(_) => Move::Moved(Vec::new()),
            _ => Move::WrongType,
        },
    }
}

/// LMOVE / RPOPLPUSH over a transaction: the key at `src_pos` pops, the key
/// at `dst_pos` receives. True when a reply was written (the moved element,
/// or WRONGTYPE); false when the source was missing and nothing was written.
/// Both keys on one shard: one hop. Otherwise: both type checks at once
/// (Redis checks the destination before popping), then the pop, then the push,
/// all under the transaction's locks, so nobody sees the element in flight.
pub async fn lmove_tx(
    tx: &mut Tx<'_>,
    src_pos: usize,
    dst_pos: usize,
    from_left: bool,
    to_left: bool,
    args: &Args<'_>,
    out: &mut Reply,
) -> Result<bool, HopLost> {
    let (src, dst) = (args.get(src_pos).to_vec(), args.get(dst_pos).to_vec());
    let (ss, ds) = (tx.shard_of_arg(src_pos), tx.shard_of_arg(dst_pos));
    let r = if ss == ds {
        tx.hop(ss, move |ctx: &mut Ctx| lmove_local(ctx, &src, &dst, from_left, to_left)).await?
    } else {
        let k = src.clone();
        let a = tx.hop(ss, move |ctx: &mut Ctx| probe_src(ctx, &k));
        let k = dst.clone();
        let b = tx.hop(ds, move |ctx: &mut Ctx| {
            let now = ctx.now;
            match ctx.db().lookup_write(&k, now) {
                None => Some(false),
                Some(e) if !is_list(&e.val) => None,
                Some(_) => Some(true),
            }
        });
        let (a, b) = (a.await?, b.await?);
        match (a, b) {
            (Move::Missing, _) => Move::Missing,
            (Move::WrongType, _) | (_, None) => Move::WrongType,
            (Move::Moved(_), Some(dst_exists)) => {
                let popped = tx
                    .hop(ss, move |ctx: &mut Ctx| match pop_key_quiet(ctx, &src, from_left, 1) {
                        Found::List((mut v, emptied)) => v.pop().map(|v| (v, emptied)),
                        _ => None,
                    })
                    .await?;
                match popped {
                    // Under the locks the source cannot have changed since the check.
                    None => Move::Missing,
                    Some((v, emptied)) => {
                        let moved = tx
                            .hop(ds, move |ctx: &mut Ctx| {
                                // The pop counted one change; lmoveGenericCommand
                                // counts one for the pop and push together.
                                let mark = ctx.db().hook.dirty;
                                push_one(ctx, &dst, dst_exists, &v, to_left);
                                ctx.db().dirty_since(mark, 0);
                                Move::Moved(v)
                            })
                            .await?;
                        // The source's events come after the push, as in Redis.
                        if crate::runtime::notify::any() {
                            let k = args.get(src_pos).to_vec();
                            tx.hop(ss, move |ctx: &mut Ctx| pop_events(ctx.db, &k, from_left, true, emptied)).await?;
                        }
                        moved
                    }
                }
            }
        }
    };
    Ok(match r {
        Move::Missing => false,
        Move::WrongType => {
            out.error(err::WRONGTYPE);
            true
        }
        Move::Moved(v) => {
            out.bulk(&v);
            true
        }
    })
}

const LMOVE: PlanFn = |tx, args, out| Box::pin(lmove_plan(tx, args, out));
const RPOPLPUSH: PlanFn = |tx, args, out| Box::pin(rpoplpush_plan(tx, args, out));

async fn lmove_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let (Some(from), Some(to)) = (parse_where(args.get(3)), parse_where(args.get(4))) else {
        out.error(err::SYNTAX);
        return Ok(());
    };
    if !lmove_tx(tx, 1, 2, from, to, &args, out).await? {
        out.null();
    }
    Ok(())
}

async fn rpoplpush_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    if !lmove_tx(tx, 1, 2, false, true, &args, out).await? {
        out.null();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// LMPOP (plan) and the shared [B]LMPOP parsing
// ---------------------------------------------------------------------------

/// Parsed `numkeys key... LEFT|RIGHT [COUNT n]` (lmpopGenericCommand).
struct Mpop {
    first_key: usize,
    numkeys: usize,
    left: bool,
    count: usize,
}

/// Parses [B]LMPOP from `numkeys_idx`; Err is the error reply.
fn parse_mpop(args: &Args, numkeys_idx: usize) -> Result<Mpop, &'static str> {
    const NUMKEYS: &str = "ERR numkeys should be greater than 0";
    const COUNT: &str = "ERR count should be greater than 0";
    let numkeys = match string2ll(args.get(numkeys_idx)) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(NUMKEYS),
    };
    let where_idx = (numkeys_idx as u64).saturating_add(numkeys).saturating_add(1);
    if where_idx >= args.len() as u64 {
        return Err(err::SYNTAX);
    }
    let where_idx = where_idx as usize;
    let Some(left) = parse_where(args.get(where_idx)) else {
        return Err(err::SYNTAX);
    };
    let mut count: Option<usize> = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        let more = j + 1 < args.len();
        if count.is_none() && args.get(j).eq_ignore_ascii_case(b"count") && more {
            j += 1;
            match string2ll(args.get(j)) {
                Some(c) if c >= 1 => count = Some(c as usize),
                _ => return Err(COUNT),
            }
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(Mpop {
        first_key: numkeys_idx + 1,
        numkeys: numkeys as usize,
        left,
        count: count.unwrap_or(1),
    })
}

/// The start of listPopRangeAndReplyWithKey's [key, [n elements]].
fn mpop_head(out: &mut Reply, key: &[u8], n: usize) {
    out.array_len(2);
    out.bulk(key);
    out.array_len(n);
}

/// listPopRangeAndReplyWithKey: [key, [elements]].
fn reply_key_elems(out: &mut Reply, key: &[u8], vals: &[Vec<u8>]) {
    out.array_len(2);
    out.bulk(key);
    out.array_len(vals.len());
    for v in vals {
        out.bulk(v);
    }
}

const LMPOP: PlanFn = |tx, args, out| Box::pin(lmpop_plan(tx, args, out));

/// LMPOP: the keys are tried in order, one hop per run of consecutive keys
/// on the same shard; the first non-empty list is popped (a wrong-typed key
/// met before it is an error).
async fn lmpop_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let m = match parse_mpop(&args, 1) {
        Ok(m) => m,
        Err(e) => {
            out.error(e);
            return Ok(());
        }
    };
    let end = m.first_key + m.numkeys;
    let mut i = m.first_key;
    while i < end {
        let shard = tx.shard_of_arg(i);
        let mut j = i + 1;
        while j < end && tx.shard_of_arg(j) == shard {
            j += 1;
        }
        let keys: Vec<Vec<u8>> = (i..j).map(|k| args.get(k).to_vec()).collect();
        let (left, count) = (m.left, m.count);
        let r = tx
            .hop(shard, move |ctx: &mut Ctx| {
                // Err: a wrong-typed key came first; Ok(Some): (key index, popped).
                for (n, k) in keys.iter().enumerate() {
                    match pop_key(ctx, k, left, count) {
                        Found::Missing => continue,
                        Found::WrongType => return Err(()),
                        Found::List(v) => return Ok(Some((n, v))),
                    }
                }
                Ok(None)
            })
            .await?;
        match r {
            Ok(None) => {}
            Err(()) => {
                out.error(err::WRONGTYPE);
                return Ok(());
            }
            Ok(Some((n, vals))) => {
                reply_key_elems(out, args.get(i + n), &vals);
                return Ok(());
            }
        }
        i = j;
    }
    out.null_array();
    Ok(())
}

// ---------------------------------------------------------------------------
// Blocking commands
// ---------------------------------------------------------------------------

/// The `Wait` of a retry (`only == Some(_)`): the client stays blocked and the
/// blocking layer keeps the deadline of the first attempt, so none is given
/// here (re-parsing the timeout against the retry's clock would extend it).
const RETRY_WAIT: u64 = 0;

/// BLPOP / BRPOP key... timeout (blockingPopGenericCommand): the timeout
/// first, then the first non-empty list in key order.
fn bpop_generic(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply, left: bool) -> BlockResult {
    let tpos = args.len() - 1;
    let single = |ctx: &mut Ctx, pos: usize, out: &mut Reply| match pop_into(ctx, args.get(pos), left, 1, out, |out, _| {
        out.array_len(2);
        out.bulk(args.get(pos));
    }) {
        Found::List(()) => Some(true),
        Found::WrongType => Some(false),
        Found::Missing => None,
    };
    match only {
        Some(pos) => {
            if (1..tpos).contains(&pos) && single(ctx, pos, out) == Some(true) {
                return BlockResult::Done;
            }
            BlockResult::Wait { deadline_ms: RETRY_WAIT }
        }
        None => {
            let Some(deadline_ms) = parse_timeout(args.get(tpos), ctx.now, out) else {
                return BlockResult::Done;
            };
            for pos in 1..tpos {
                match single(ctx, pos, out) {
                    Some(true) => return BlockResult::Done,
                    Some(false) => {
                        out.error(err::WRONGTYPE);
                        return BlockResult::Done;
                    }
                    None => {}
                }
            }
            BlockResult::Wait { deadline_ms }
        }
    }
}

fn blpop(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    bpop_generic(ctx, args, only, out, true)
}
fn brpop(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    bpop_generic(ctx, args, only, out, false)
}

/// BLMOVE / BRPOPLPUSH with both keys on this shard. Redis parses the
/// directions before the timeout. When retried (`only`), a source that is
/// missing or not a list keeps the client waiting; a wrong-typed destination
/// is answered with WRONGTYPE (Redis also sends it that error).
fn bmove_generic(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply, from_left: bool, to_left: bool, tpos: usize) -> BlockResult {
    let deadline_ms = match only {
        Some(pos) => {
            if pos != 1 {
                return BlockResult::Wait { deadline_ms: RETRY_WAIT };
            }
            let now = ctx.now;
            match ctx.db().lookup_write(args.get(1), now) {
                Some(e) if is_list(&e.val) => {}
                _ => return BlockResult::Wait { deadline_ms: RETRY_WAIT },
            }
            0
        }
        None => match parse_timeout(args.get(tpos), ctx.now, out) {
            Some(d) => d,
            None => return BlockResult::Done,
        },
    };
    // Only a same-shard move can run here; the blocking layer moves across
    // shards with `lmove_tx`.
    let nshards = crate::runtime::nshards();
    if crate::runtime::shard_of_key(args.get(2), nshards) != crate::runtime::shard_of_key(args.get(1), nshards) {
        out.error("CROSSSLOT Keys in request don't hash to the same slot");
        return BlockResult::Done;
    }
    match lmove_local(ctx, args.get(1), args.get(2), from_left, to_left) {
        Move::Missing => BlockResult::Wait { deadline_ms },
        Move::WrongType => {
            out.error(err::WRONGTYPE);
            BlockResult::Done
        }
        Move::Moved(v) => {
            out.bulk(&v);
            BlockResult::Done
        }
    }
}

fn blmove(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    let (Some(from), Some(to)) = (parse_where(args.get(3)), parse_where(args.get(4))) else {
        if only.is_some() {
            return BlockResult::Wait { deadline_ms: RETRY_WAIT };
        }
        out.error(err::SYNTAX);
        return BlockResult::Done;
    };
    bmove_generic(ctx, args, only, out, from, to, 5)
}

fn brpoplpush(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    bmove_generic(ctx, args, only, out, false, true, 3)
}

/// BLMPOP timeout numkeys key... LEFT|RIGHT [COUNT n]: Redis parses numkeys,
/// the direction and COUNT before the timeout.
fn blmpop(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    let m = match parse_mpop(&args, 2) {
        Ok(m) => m,
        Err(e) => {
            if only.is_some() {
                return BlockResult::Wait { deadline_ms: RETRY_WAIT };
            }
            out.error(e);
            return BlockResult::Done;
        }
    };
    let keys = m.first_key..m.first_key + m.numkeys;
    match only {
        Some(pos) => {
            if keys.contains(&pos) {
                if let Found::List(()) = pop_into(ctx, args.get(pos), m.left, m.count, out, |o, n| mpop_head(o, args.get(pos), n)) {
                    return BlockResult::Done;
                }
            }
            BlockResult::Wait { deadline_ms: RETRY_WAIT }
        }
        None => {
            let Some(deadline_ms) = parse_timeout(args.get(1), ctx.now, out) else {
                return BlockResult::Done;
            };
            for pos in keys {
                match pop_into(ctx, args.get(pos), m.left, m.count, out, |o, n| mpop_head(o, args.get(pos), n)) {
                    Found::Missing => {}
                    Found::WrongType => {
                        out.error(err::WRONGTYPE);
                        return BlockResult::Done;
                    }
                    Found::List(()) => return BlockResult::Done,
                }
            }
            BlockResult::Wait { deadline_ms }
        }
    }
}
