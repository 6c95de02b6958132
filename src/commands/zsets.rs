//! The sorted-set family, mirroring Redis 7.0.15's t_zset.c: argument
//! parsing order, error texts, reply shapes (RESP2 flat WITHSCORES arrays,
//! RESP3 [member, double] pairs) and encoding transitions.
//!
//! Multi-key commands whose keys may live on several shards (ZUNION, ZINTER,
//! ZDIFF and their STORE forms, ZINTERCARD, ZRANGESTORE, ZMPOP) are plans:
//! the inputs are fetched where they live, the result is computed on the
//! coordinator and stored on the destination's shard.

use super::table::{BlockResult, Ctx, HopLost, PlanFn, Table, Tx};
use crate::keyspace::types::zset::{AddFlags, AddOutcome, Limits, ZSet};
use crate::keyspace::types::Set;
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::{note, NOTIFY_GENERIC, NOTIFY_ZSET};
use crate::util::num::{string2d, string2ll};

pub fn register(t: &mut Table) {
    t.keyed("zadd", zadd);
    t.keyed("zincrby", zincrby);
    t.keyed("zrem", zrem);
    t.keyed("zcard", zcard);
    t.keyed("zscore", zscore);
    t.keyed("zmscore", zmscore);
    t.keyed("zcount", zcount);
    t.keyed("zlexcount", zlexcount);
    t.keyed("zrank", zrank);
    t.keyed("zrevrank", zrevrank);
    t.keyed("zrange", zrange);
    t.keyed("zrevrange", zrevrange);
    t.keyed("zrangebyscore", zrangebyscore);
    t.keyed("zrevrangebyscore", zrevrangebyscore);
    t.keyed("zrangebylex", zrangebylex);
    t.keyed("zrevrangebylex", zrevrangebylex);
    t.keyed("zpopmin", zpopmin);
    t.keyed("zpopmax", zpopmax);
    t.keyed("zremrangebyrank", zremrangebyrank);
    t.keyed("zremrangebyscore", zremrangebyscore);
    t.keyed("zremrangebylex", zremrangebylex);
    t.plan("zrangestore", ZRANGESTORE);
    t.plan("zunionstore", ZUNIONSTORE);
    t.plan("zinterstore", ZINTERSTORE);
    t.plan("zdiffstore", ZDIFFSTORE);
    t.plan("zunion", ZUNION);
    t.plan("zinter", ZINTER);
    t.plan("zdiff", ZDIFF);
    t.plan("zintercard", ZINTERCARD);
    t.plan("zmpop", ZMPOP);
    t.keyed("zrandmember", zrandmember);
    t.keyed("zscan", zscan);
    t.blocking("bzpopmin", bzpopmin);
    t.blocking("bzpopmax", bzpopmax);
    t.blocking("bzmpop", bzmpop);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The argument as C sees it (`char *` stops at the first NUL), for option names.
#[inline]
fn cstr(b: &[u8]) -> &[u8] {
    match memchr::memchr(0, b) {
        Some(z) => &b[..z],
        None => b,
    }
}

#[inline]
fn opt_is(arg: &[u8], word: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// C `strtod` over a NUL-terminated copy, requiring it to consume the whole
/// C string (zslParseRange: leading spaces and "" are accepted, NaN is not).
fn strtod_c(s: &[u8]) -> Option<f64> {
    let s = cstr(s);
    // NUL-terminated copy: on the stack for the usual short bounds.
    let mut stack = [0u8; 64];
    let heap: Vec<u8>;
    let buf: &[u8] = if s.len() < stack.len() {
        stack[..s.len()].copy_from_slice(s);
        &stack[..=s.len()]
    } else {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s);
        v.push(0);
        heap = v;
        &heap
    };
    let start = buf.as_ptr() as *const libc::c_char;
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `buf` is NUL-terminated and lives across the call.
    let v = unsafe { libc::strtod(start, &mut end) };
    let consumed = (end as usize).wrapping_sub(start as usize);
    (consumed == s.len() && !v.is_nan()).then_some(v)
}

/// getLongFromObjectOrReply.
fn parse_long(arg: &[u8], out: &mut Reply) -> Option<i64> {
    let v = string2ll(arg);
    if v.is_none() {
        out.error(err::NOT_INT);
    }
    v
}

/// getRangeLongFromObjectOrReply with a message for both failures.
fn parse_range_long(arg: &[u8], min: i64, out: &mut Reply, msg: &str) -> Option<i64> {
    match string2ll(arg) {
        Some(v) if v >= min => Some(v),
        _ => {
            out.error(msg);
            None
        }
    }
}

/// Borrow the sorted set of an entry's value; Err on another type.
#[inline]
fn as_zset(v: &Value) -> Result<&ZSet, ()> {
    match v {
        Value::ZSet(z) => Ok(z),
        _ => Err(()),
    }
}

/// The reply header of `n` elements, with or without scores.
#[inline]
fn elems_header(out: &mut Reply, n: usize, withscores: bool) {
    out.array_len(if withscores && !out.resp3 { n * 2 } else { n });
}

/// One element of a WITHSCORES-able reply.
#[inline]
fn elem(out: &mut Reply, m: &[u8], s: f64, withscores: bool) {
    if withscores && out.resp3 {
        out.array_len(2);
    }
    out.bulk(m);
    if withscores {
        out.double(s);
    }
}

/// A (score, member) list as ZRANGE / ZUNION reply it.
fn reply_elems<'a>(out: &mut Reply, n: usize, it: impl Iterator<Item = (f64, &'a [u8])>, withscores: bool) {
    elems_header(out, n, withscores);
    for (s, m) in it {
        elem(out, m, s, withscores);
    }
}

/// Stores `z` at `key` (or deletes the key when it is empty), as the STORE
/// commands' setKey / dbDelete.
pub(crate) fn store_result(ctx: &mut Ctx, key: &[u8], z: ZSet, event: &'static str) {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    if z.is_empty() {
        if db.remove(key).is_some() {
            note(dbi, NOTIFY_GENERIC, "del", key);
        }
    } else {
        db.set(key, Value::ZSet(z), 0, now);
        note(dbi, NOTIFY_ZSET, event, key);
    }
}

// ---------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------

/// zrangespec.
#[derive(Clone, Copy, Debug)]
struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

impl ScoreRange {
    /// zslParseRange.
    fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let one = |b: &[u8]| -> Option<(f64, bool)> {
            if b.first() == Some(&b'(') {
                Some((strtod_c(&b[1..])?, true))
            } else {
                Some((strtod_c(b)?, false))
            }
        };
        let (min, minex) = one(min)?;
        let (max, maxex) = one(max)?;
        Some(ScoreRange { min, max, minex, maxex })
    }
    fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }
    fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }
    /// The ranks [lo, hi) of the elements in range.
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let lo = z.count_while(|s, _| !self.gte_min(s));
        let hi = z.count_while(|s, _| self.lte_max(s));
        (lo, hi.max(lo))
    }
}

/// One end of a zlexrangespec.
#[derive(Clone, Debug)]
enum LexBound {
    NegInf,
    PosInf,
    Val(Vec<u8>, bool),
}

#[derive(Clone, Debug)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    /// zslParseLexRangeItem for both ends.
    fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        let one = |b: &[u8]| -> Option<LexBound> {
            match b.first() {
                Some(b'+') if cstr(b).len() == 1 => Some(LexBound::PosInf),
                Some(b'-') if cstr(b).len() == 1 => Some(LexBound::NegInf),
                Some(b'(') => Some(LexBound::Val(b[1..].to_vec(), true)),
                Some(b'[') => Some(LexBound::Val(b[1..].to_vec(), false)),
                _ => None,
            }
        };
        Some(LexRange {
            min: one(min)?,
            max: one(max)?,
        })
    }
    fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Val(b, ex) => {
                if *ex {
                    m > &b[..]
                } else {
                    m >= &b[..]
                }
            }
        }
    }
    fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::PosInf => true,
            LexBound::NegInf => false,
            LexBound::Val(b, ex) => {
                if *ex {
                    m < &b[..]
                } else {
                    m <= &b[..]
                }
            }
        }
    }
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let lo = z.count_while(|_, m| !self.gte_min(m));
        let hi = z.count_while(|_, m| self.lte_max(m));
        (lo, hi.max(lo))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

#[derive(Clone, Debug)]
enum RangeKind {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed ZRANGE-family request.
#[derive(Clone, Debug)]
struct RangeReq {
    kind: RangeKind,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
}

impl RangeReq {
    /// The selection as (start, count) in the iteration direction: ranks
    /// from the front, or from the back when `rev`.
    fn select(&self, z: &ZSet) -> (usize, usize) {
        let len = z.len() as i64;
        let (lo, hi) = match &self.kind {
            RangeKind::Rank(start, end) => {
                let (mut start, mut end) = (*start, *end);
                if start < 0 {
                    start += len;
                }
                if end < 0 {
                    end += len;
                }
                if start < 0 {
                    start = 0;
                }
                if start > end || start >= len {
                    return (0, 0);
                }
                if end >= len {
                    end = len - 1;
                }
                return (start as usize, (end - start + 1) as usize);
            }
            RangeKind::Score(r) => r.ranks(z),
            RangeKind::Lex(r) => r.ranks(z),
        };
        // LIMIT: a negative offset skips everything, a negative count means all.
        if self.offset < 0 {
            return (0, 0);
        }
        let avail = (hi - lo) as u64;
        let off = (self.offset as u64).min(avail);
        let n = avail - off;
        let n = if self.limit < 0 { n } else { n.min(self.limit as u64) };
        let start = if self.rev { z.len() - hi } else { lo };
        (start + off as usize, n as usize)
    }
}

/// zrangeGenericCommand's parsing (Step 1 and 2); errors are replied.
fn parse_zrange(args: &Args, argc_start: usize, store: bool, mut rt: RangeType, mut dir: Direction, out: &mut Reply) -> Option<RangeReq> {
    let mut minidx = argc_start + 1;
    let mut maxidx = argc_start + 2;
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let argc = args.len();
    let mut j = argc_start + 3;
    while j < argc {
        let a = args.get(j);
        let left = argc - j - 1;
        if !store && opt_is(a, "withscores") {
            withscores = true;
        } else if opt_is(a, "limit") && left >= 2 {
            offset = parse_long(args.get(j + 1), out)?;
            limit = parse_long(args.get(j + 2), out)?;
            j += 2;
        } else if dir == Direction::Auto && opt_is(a, "rev") {
            dir = Direction::Reverse;
        } else if rt == RangeType::Auto && opt_is(a, "bylex") {
            rt = RangeType::Lex;
        } else if rt == RangeType::Auto && opt_is(a, "byscore") {
            rt = RangeType::Score;
        } else {
            out.error(err::SYNTAX);
            return None;
        }
        j += 1;
    }
    if rt == RangeType::Auto {
        rt = RangeType::Rank;
    }
    let rev = dir == Direction::Reverse;
    // Redis tests `opt_limit != -1` only: "LIMIT 5 -1" passes as no limit.
    if limit != -1 && rt == RangeType::Rank {
        out.error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
        return None;
    }
    if withscores && rt == RangeType::Lex {
        out.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return None;
    }
    if rev && rt != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let kind = match rt {
        RangeType::Auto | RangeType::Rank => {
            let s = parse_long(args.get(minidx), out)?;
            let e = parse_long(args.get(maxidx), out)?;
            RangeKind::Rank(s, e)
        }
        RangeType::Score => match ScoreRange::parse(args.get(minidx), args.get(maxidx)) {
            Some(r) => RangeKind::Score(r),
            None => {
                out.error("ERR min or max is not a float");
                return None;
            }
        },
        RangeType::Lex => match LexRange::parse(args.get(minidx), args.get(maxidx)) {
            Some(r) => RangeKind::Lex(r),
            None => {
                out.error("ERR min or max not valid string range item");
                return None;
            }
        },
    };
    Some(RangeReq {
        kind,
        rev,
        withscores: withscores || store,
        offset,
        limit,
    })
}

fn zrange_generic(ctx: &mut Ctx, args: Args, rt: RangeType, dir: Direction, out: &mut Reply) {
    let Some(req) = parse_zrange(&args, 1, false, rt, dir, out) else { return };
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.array_len(0) };
    let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    let (start, n) = req.select(z);
    reply_elems(out, n, z.range(start, n, req.rev), req.withscores);
}

fn zrange(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrange_generic(ctx, args, RangeType::Auto, Direction::Auto, out)
}
fn zrevrange(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrange_generic(ctx, args, RangeType::Rank, Direction::Reverse, out)
}
fn zrangebyscore(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrange_generic(ctx, args, RangeType::Score, Direction::Forward, out)
}
fn zrevrangebyscore(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrange_generic(ctx, args, RangeType::Score, Direction::Reverse, out)
}
fn zrangebylex(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrange_generic(ctx, args, RangeType::Lex, Direction::Forward, out)
}
fn zrevrangebylex(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrange_generic(ctx, args, RangeType::Lex, Direction::Reverse, out)
}

// ---------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM
// ---------------------------------------------------------------------------

/// zaddGenericCommand.
fn zadd_generic(ctx: &mut Ctx, args: Args, mut f: AddFlags, out: &mut Reply) {
    let argc = args.len();
    let mut ch = false;
    let mut si = 2;
    while si < argc {
        let o = args.get(si);
        if opt_is(o, "nx") {
            f.nx = true;
        } else if opt_is(o, "xx") {
            f.xx = true;
        } else if opt_is(o, "ch") {
            ch = true;
        } else if opt_is(o, "incr") {
            f.incr = true;
        } else if opt_is(o, "gt") {
            f.gt = true;
        } else if opt_is(o, "lt") {
            f.lt = true;
        } else {
            break;
        }
        si += 1;
    }
    let elements = argc - si;
    if !elements.is_multiple_of(2) || elements == 0 {
        return out.error(err::SYNTAX);
    }
    let elements = elements / 2;
    if f.nx && f.xx {
        return out.error("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return out.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 1 {
        return out.error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores: smallvec_scores::Scores = Default::default();
    for j in 0..elements {
        match string2d(args.get(si + j * 2)) {
            Some(s) => scores.push(s),
            None => return out.error(err::NOT_FLOAT),
        }
    }
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let pairs = || (0..elements).map(|j| (scores.get(j), args.get(si + 1 + j * 2)));
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    let mut tally = |o: AddOutcome| -> bool {
        match o {
            AddOutcome::Added(v) => {
                added += 1;
                processed += 1;
                last = v;
            }
            AddOutcome::Updated(v) => {
                updated += 1;
                processed += 1;
                last = v;
            }
            AddOutcome::Unchanged(v) => {
                processed += 1;
                last = v;
            }
            AddOutcome::Nop => {}
            AddOutcome::Nan => {
                nan = true;
                return false;
            }
        }
        true
    };
    let mark = db.hook.dirty;
    // Scoped: the entry's borrow ends before the count below.
    {
        let found = db.lookup_write(key, now);
        match found {
            Some(mut e) => {
                let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
                // The config is read only while the set may still convert.
                let lim = if z.is_skiplist() { Limits::UNBOUNDED } else { Limits::from_config() };
                // Only a real change may fire the write hook (signalModifiedKey);
                // without one the state never moves, so a dry run is exact.
                if pairs().any(|(s, m)| would_change(z, s, m, f)) {
                    if let Value::ZSet(z) = e.val_mut() {
                        for (s, m) in pairs() {
                            if !tally(z.add(s, m, f, lim)) {
                                break;
                            }
                        }
                    }
                } else {
                    for (s, m) in pairs() {
                        if !tally(dry_add(z, s, m, f)) {
                            break;
                        }
                    }
                }
            }
            None => {
                drop(found);
                if f.xx {
                    return if f.incr { out.null() } else { out.int(0) };
                }
                let lim = Limits::from_config();
                let first = args.get(si + 1);
                let mut z = ZSet::new(lim.entries == 0 || lim.value < first.len());
                for (s, m) in pairs() {
                    if !tally(z.add(s, m, f, lim)) {
                        break;
                    }
                }
                if !z.is_empty() {
                    db.set(key, Value::ZSet(z), 0, now);
                }
            }
        }
    }
    if added > 0 || updated > 0 {
        db.dirty_since(mark, (added + updated) as u64);
        note(dbi, NOTIFY_ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    if nan {
        return out.error("ERR resulting score is not a number (NaN)");
    }
    if f.incr {
        if processed > 0 {
            out.double(last)
        } else {
            out.null()
        }
    } else {
        out.int(if ch { added + updated } else { added })
    }
}

/// What zsetAdd of (s, m) answers when it changes nothing.
fn dry_add(z: &ZSet, s: f64, m: &[u8], f: AddFlags) -> AddOutcome {
    match z.score(m) {
        None => AddOutcome::Nop,
        Some(cur) => {
            if f.nx {
                return AddOutcome::Nop;
            }
            let new = if f.incr { s + cur } else { s };
            if (f.lt && new >= cur) || (f.gt && new <= cur) {
                AddOutcome::Nop
            } else {
                AddOutcome::Unchanged(new)
            }
        }
    }
}

/// Whether zsetAdd of (s, m) would add or change something in `z`.
fn would_change(z: &ZSet, s: f64, m: &[u8], f: AddFlags) -> bool {
    match z.score(m) {
        None => !f.xx,
        Some(cur) => {
            if f.nx {
                return false;
            }
            let new = if f.incr { s + cur } else { s };
            if new.is_nan() {
                return true;
            }
            !((f.lt && new >= cur) || (f.gt && new <= cur)) && new != cur
        }
    }
}

/// The parsed scores of one ZADD (usually a handful; no allocation up to 8).
mod smallvec_scores {
    #[derive(Default)]
    pub struct Scores {
        inline: [f64; 8],
        n: usize,
        heap: Vec<f64>,
    }
    impl Scores {
        pub fn push(&mut self, v: f64) {
            if self.n < 8 {
                self.inline[self.n] = v;
            } else {
                self.heap.push(v);
            }
            self.n += 1;
        }
        pub fn get(&self, i: usize) -> f64 {
            if i < 8 {
                self.inline[i]
            } else {
                self.heap[i - 8]
            }
        }
    }
}

pub(crate) fn zadd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zadd_generic(ctx, args, AddFlags::default(), out)
}

fn zincrby(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zadd_generic(
        ctx,
        args,
        AddFlags {
            incr: true,
            ..Default::default()
        },
        out,
    )
}

fn zrem(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let mark = db.hook.dirty;
    let mut deleted = 0;
    let emptied;
    {
        let Some(mut e) = db.lookup_write(key, now) else { return out.int(0) };
        let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
        if !(2..args.len()).any(|j| z.score(args.get(j)).is_some()) {
            return out.int(0);
        }
        let Value::ZSet(z) = e.val_mut() else { return };
        for j in 2..args.len() {
            if z.remove(args.get(j)).is_some() {
                deleted += 1;
            }
            if z.is_empty() {
                break;
            }
        }
        emptied = z.is_empty();
    }
    if deleted > 0 {
        note(dbi, NOTIFY_ZSET, "zrem", key);
    }
    if emptied {
        db.remove(key);
        note(dbi, NOTIFY_GENERIC, "del", key);
    }
    db.dirty_since(mark, deleted as u64);
    out.int(deleted);
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

fn zcard(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match ctx.lookup_read(args.get(1)) {
        None => out.int(0),
        Some(e) => match as_zset(&e.val) {
            Ok(z) => out.int(z.len() as i64),
            Err(()) => out.error(err::WRONGTYPE),
        },
    }
}

fn zscore(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.null() };
    let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    match z.score(args.get(2)) {
        Some(s) => out.double(s),
        None => out.null(),
    }
}

fn zmscore(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let z = match ctx.lookup_read(args.get(1)) {
        None => None,
        Some(e) => match as_zset(&e.val) {
            Ok(z) => Some(z),
            Err(()) => return out.error(err::WRONGTYPE),
        },
    };
    out.array_len(args.len() - 2);
    for j in 2..args.len() {
        match z.and_then(|z| z.score(args.get(j))) {
            Some(s) => out.double(s),
            None => out.null(),
        }
    }
}

fn zcount(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(r) = ScoreRange::parse(args.get(2), args.get(3)) else {
        return out.error("ERR min or max is not a float");
    };
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.int(0) };
    let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    let (lo, hi) = r.ranks(z);
    out.int((hi - lo) as i64);
}

fn zlexcount(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(r) = LexRange::parse(args.get(2), args.get(3)) else {
        return out.error("ERR min or max not valid string range item");
    };
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.int(0) };
    let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    let (lo, hi) = r.ranks(z);
    out.int((hi - lo) as i64);
}

fn zrank_generic(ctx: &mut Ctx, args: Args, rev: bool, out: &mut Reply) {
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.null() };
    let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    match z.rank(args.get(2)) {
        Some(r) => out.int(if rev { (z.len() - 1 - r) as i64 } else { r as i64 }),
        None => out.null(),
    }
}

fn zrank(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrank_generic(ctx, args, false, out)
}
fn zrevrank(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zrank_generic(ctx, args, true, out)
}

// ---------------------------------------------------------------------------
// ZREMRANGEBY*
// ---------------------------------------------------------------------------

enum RemRange {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// zremrangeGenericCommand.
fn zremrange(ctx: &mut Ctx, args: Args, r: RemRange, out: &mut Reply) {
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let mark = db.hook.dirty;
    let deleted;
    let emptied;
    {
        let Some(mut e) = db.lookup_write(key, now) else { return out.int(0) };
        let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
        let (lo, hi) = match &r {
            RemRange::Rank(start, end) => {
                let llen = z.len() as i64;
                let (mut start, mut end) = (*start, *end);
                if start < 0 {
                    start += llen;
                }
                if end < 0 {
                    end += llen;
                }
                if start < 0 {
                    start = 0;
                }
                if start > end || start >= llen {
                    return out.int(0);
                }
                if end >= llen {
                    end = llen - 1;
                }
                (start as usize, end as usize + 1)
            }
            RemRange::Score(r) => r.ranks(z),
            RemRange::Lex(r) => r.ranks(z),
        };
        if lo >= hi {
            return out.int(0);
        }
        let Value::ZSet(z) = e.val_mut() else { return };
        deleted = z.remove_ranks(lo, hi);
        emptied = z.is_empty();
    }
    if deleted > 0 {
        let event = match r {
            RemRange::Rank(..) => "zremrangebyrank",
            RemRange::Score(_) => "zremrangebyscore",
            RemRange::Lex(_) => "zremrangebylex",
        };
        note(dbi, NOTIFY_ZSET, event, key);
    }
    if emptied {
        db.remove(key);
        note(dbi, NOTIFY_GENERIC, "del", key);
    }
    db.dirty_since(mark, deleted as u64);
    out.int(deleted as i64);
}

fn zremrangebyrank(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(s) = parse_long(args.get(2), out) else { return };
    let Some(e) = parse_long(args.get(3), out) else { return };
    zremrange(ctx, args, RemRange::Rank(s, e), out)
}

fn zremrangebyscore(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match ScoreRange::parse(args.get(2), args.get(3)) {
        Some(r) => zremrange(ctx, args, RemRange::Score(r), out),
        None => out.error("ERR min or max is not a float"),
    }
}

fn zremrangebylex(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match LexRange::parse(args.get(2), args.get(3)) {
        Some(r) => zremrange(ctx, args, RemRange::Lex(r), out),
        None => out.error("ERR min or max not valid string range item"),
    }
}

// ---------------------------------------------------------------------------
// ZPOPMIN / ZPOPMAX (and the pop shared with ZMPOP and the blocking forms)
// ---------------------------------------------------------------------------

/// How a pop replies (genericZpopCommand's use_nested_array / emitkey).
#[derive(Clone, Copy, PartialEq, Eq)]
enum PopShape {
    /// ZPOPMIN/ZPOPMAX: flat in RESP2 (or without COUNT), pairs in RESP3 with COUNT.
    Plain { nested: bool },
    /// BZPOPMIN/BZPOPMAX: [key, member, score].
    WithKey,
    /// ZMPOP/BZMPOP: [key, [[member, score], ...]].
    Nested,
}

/// Pops up to `count` elements from the non-empty zset at `key` and replies.
fn pop_from(ctx: &mut Ctx, key: &[u8], max: bool, count: usize, shape: PopShape, out: &mut Reply) {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let mark = db.hook.dirty;
    let emptied;
    let popped;
    {
        let Some(mut e) = db.lookup_write(key, now) else { return };
        let Value::ZSet(z) = e.val_mut() else { return };
        let n = count.min(z.len());
        popped = n;
        if n > 0 {
            note(dbi, NOTIFY_ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        }
        match shape {
            PopShape::Plain { nested: false } => out.array_len(n * 2),
            PopShape::Plain { nested: true } => out.array_len(n),
            PopShape::WithKey => {
                out.array_len(n * 2 + 1);
                out.bulk(key);
            }
            PopShape::Nested => {
                out.array_len(2);
                out.bulk(key);
                out.array_len(n);
            }
        }
        let nested = matches!(shape, PopShape::Plain { nested: true } | PopShape::Nested);
        for _ in 0..n {
            let rank = if max { z.len() - 1 } else { 0 };
            let (s, m) = z.pop_at(rank);
            if nested {
                out.array_len(2);
            }
            out.bulk(&m);
            out.double(s);
        }
        emptied = z.is_empty();
    }
    if emptied {
        db.remove(key);
        note(dbi, NOTIFY_GENERIC, "del", key);
    }
    db.dirty_since(mark, popped as u64);
}

/// zpopMinMaxCommand.
fn zpop(ctx: &mut Ctx, args: Args, max: bool, out: &mut Reply) {
    if args.len() > 3 {
        return out.error(err::SYNTAX);
    }
    let mut count: i64 = -1;
    if args.len() == 3 {
        match parse_range_long(args.get(2), 0, out, "ERR value is out of range, must be positive") {
            Some(c) => count = c,
            None => return,
        }
    }
    let nested = out.resp3 && count != -1;
    let key = args.get(1);
    let now = ctx.now;
    match ctx.db().lookup_write(key, now) {
        None => return out.array_len(0),
        Some(e) => {
            if as_zset(&e.val).is_err() {
                return out.error(err::WRONGTYPE);
            }
        }
    }
    if count == 0 {
        return out.array_len(0);
    }
    let count = if count == -1 { 1 } else { count as usize };
    pop_from(ctx, key, max, count, PopShape::Plain { nested }, out);
}

fn zpopmin(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zpop(ctx, args, false, out)
}
fn zpopmax(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    zpop(ctx, args, true, out)
}

// ---------------------------------------------------------------------------
// Multi-key plans: inputs fetched where they live, computed here
// ---------------------------------------------------------------------------

/// One input of ZUNION/ZINTER/ZDIFF as fetched from its shard: its elements
/// in order (a plain set's members score 1), None when the key is missing.
type Fetched = Result<Option<Elems>, ()>;

/// Owned (score, member) pairs.
type Elems = Vec<(f64, Vec<u8>)>;

/// A plain set as a sorted-set input: every member with score 1 (as zuiNext gives them).
fn set_input(s: &Set) -> Vec<(f64, Vec<u8>)> {
    s.iter().map(|m| (1.0, m.to_vec())).collect()
}

/// Reads one input of a set operation (lookupKeyRead: counts hits/misses).
fn fetch_input(ctx: &mut Ctx, key: &[u8]) -> Fetched {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.val {
            Value::ZSet(z) => Ok(Some(z.iter().map(|(s, m)| (s, m.to_vec())).collect())),
            Value::Set(s) => Ok(Some(set_input(s))),
            _ => Err(()),
        },
    }
}

/// Fetches the keys at argument positions `first..first+n`, every shard at once.
async fn fetch_inputs(tx: &mut Tx<'_>, args: &Args<'_>, first: usize, n: usize) -> Result<Vec<Fetched>, HopLost> {
    let groups = crate::util::group_by_shard((0..n).map(|i| (tx.shard_of_arg(first + i), (i, args.get(first + i).to_vec()))));
    let parts = groups
        .into_iter()
        .map(|(s, keys)| {
            (s, move |ctx: &mut Ctx| {
                keys.into_iter().map(|(i, k)| (i, fetch_input(ctx, &k))).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<(usize, Fetched)> = tx.hop_each(parts).await?.into_iter().flatten().collect();
    all.sort_by_key(|p| p.0);
    Ok(all.into_iter().map(|p| p.1).collect())
}

/// A result set in Redis's order, with its ZSet built for storing.
pub(crate) fn build_zset(mut elems: Vec<(f64, Vec<u8>)>, lim: Limits) -> (ZSet, Vec<(f64, Vec<u8>)>) {
    elems.sort_by(|a, b| crate::keyspace::types::zset::cmp_elem(a.0, &a.1, b.0, &b.1));
    let maxlen = elems.iter().map(|e| e.1.len()).max().unwrap_or(0);
    let mut z = ZSet::for_size(elems.len(), maxlen, lim);
    for (s, m) in &elems {
        z.insert_new(*s, m);
    }
    (z, elems)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggr {
    Sum,
    Min,
    Max,
}

/// zunionInterAggregate.
#[inline]
fn aggregate(target: &mut f64, val: f64, a: Aggr) {
    match a {
        Aggr::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggr::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggr::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

const ZUNIONSTORE: PlanFn = |tx, args, out| Box::pin(setop_plan(tx, args, out, SetOp::Union, true, false));
const ZINTERSTORE: PlanFn = |tx, args, out| Box::pin(setop_plan(tx, args, out, SetOp::Inter, true, false));
const ZDIFFSTORE: PlanFn = |tx, args, out| Box::pin(setop_plan(tx, args, out, SetOp::Diff, true, false));
const ZUNION: PlanFn = |tx, args, out| Box::pin(setop_plan(tx, args, out, SetOp::Union, false, false));
const ZINTER: PlanFn = |tx, args, out| Box::pin(setop_plan(tx, args, out, SetOp::Inter, false, false));
const ZDIFF: PlanFn = |tx, args, out| Box::pin(setop_plan(tx, args, out, SetOp::Diff, false, false));
const ZINTERCARD: PlanFn = |tx, args, out| Box::pin(setop_plan(tx, args, out, SetOp::Inter, false, true));

/// zunionInterDiffGenericCommand.
async fn setop_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply, op: SetOp, store: bool, card_only: bool) -> Result<(), HopLost> {
    let nk = if store { 2 } else { 1 };
    let argc = args.len();
    let Some(setnum) = parse_long(args.get(nk), out) else { return Ok(()) };
    if setnum < 1 {
        let name = String::from_utf8_lossy(args.get(0)).to_ascii_lowercase();
        out.error(&format!("ERR at least 1 input key is needed for '{name}' command"));
        return Ok(());
    }
    if setnum > (argc - (nk + 1)) as i64 {
        out.error(err::SYNTAX);
        return Ok(());
    }
    let setnum = setnum as usize;
    let inputs = fetch_inputs(tx, &args, nk + 1, setnum).await?;
    if inputs.iter().any(|i| i.is_err()) {
        out.error(err::WRONGTYPE);
        return Ok(());
    }
    let mut weights = vec![1.0f64; setnum];
    let mut aggr = Aggr::Sum;
    let mut withscores = false;
    let mut limit: i64 = 0;
    let mut j = nk + 1 + setnum;
    while j < argc {
        let remaining = argc - j;
        let a = args.get(j);
        if op != SetOp::Diff && !card_only && remaining > setnum && opt_is(a, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                match string2d(args.get(j)) {
                    Some(v) => *w = v,
                    None => {
                        out.error("ERR weight value is not a float");
                        return Ok(());
                    }
                }
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && opt_is(a, "aggregate") {
            let v = args.get(j + 1);
            aggr = if opt_is(v, "sum") {
                Aggr::Sum
            } else if opt_is(v, "min") {
                Aggr::Min
            } else if opt_is(v, "max") {
                Aggr::Max
            } else {
                out.error(err::SYNTAX);
                return Ok(());
            };
            j += 2;
        } else if !store && !card_only && opt_is(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && opt_is(a, "limit") {
            match parse_range_long(args.get(j + 1), 0, out, "ERR LIMIT can't be negative") {
                Some(l) => limit = l,
                None => return Ok(()),
            }
            j += 2;
        } else {
            out.error(err::SYNTAX);
            return Ok(());
        }
    }
    let mut srcs: Vec<(Elems, f64)> = inputs
        .into_iter()
        .zip(weights)
        .map(|(i, w)| (i.ok().flatten().unwrap_or_default(), w))
        .collect();
    if op != SetOp::Diff {
        // Smallest first, as Redis sorts its inputs by cardinality.
        srcs.sort_by_key(|s| s.0.len());
    }
    let mut result: Vec<(f64, Vec<u8>)> = Vec::new();
    let mut card: i64 = 0;
    match op {
        SetOp::Inter => {
            if !srcs[0].0.is_empty() {
                let maps: Vec<std::collections::HashMap<&[u8], f64>> = srcs[1..].iter().map(|s| s.0.iter().map(|(sc, m)| (&m[..], *sc)).collect()).collect();
                let (first, w0) = &srcs[0];
                for (s, m) in first {
                    let mut score = w0 * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    let mut all = true;
                    for (k, map) in maps.iter().enumerate() {
                        match map.get(&m[..]) {
                            Some(v) => aggregate(&mut score, v * srcs[k + 1].1, aggr),
                            None => {
                                all = false;
                                break;
                            }
                        }
                    }
                    if !all {
                        continue;
                    }
                    if card_only {
                        card += 1;
                        if limit != 0 && card >= limit {
                            break;
                        }
                    } else {
                        result.push((score, m.clone()));
                    }
                }
            }
        }
        SetOp::Union => {
            let mut acc: std::collections::HashMap<Vec<u8>, f64> = std::collections::HashMap::new();
            for (src, w) in &srcs {
                for (s, m) in src {
                    let mut score = w * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, score, aggr),
                        None => {
                            acc.insert(m.clone(), score);
                        }
                    }
                }
            }
            result = acc.into_iter().map(|(m, s)| (s, m)).collect();
        }
        SetOp::Diff => {
            let others: Vec<std::collections::HashSet<&[u8]>> = srcs[1..].iter().map(|s| s.0.iter().map(|e| &e.1[..]).collect()).collect();
            result = srcs[0].0.iter().filter(|(_, m)| !others.iter().any(|o| o.contains(&m[..]))).cloned().collect();
        }
    }
    if card_only {
        out.int(card);
        return Ok(());
    }
    let (z, elems) = build_zset(result, Limits::from_config());
    if store {
        let n = z.len();
        let dst = args.get(1).to_vec();
        let event = match op {
            SetOp::Union => "zunionstore",
            SetOp::Inter => "zinterstore",
            SetOp::Diff => "zdiffstore",
        };
        tx.hop(tx.shard_of_arg(1), move |ctx: &mut Ctx| store_result(ctx, &dst, z, event)).await?;
        out.int(n as i64);
    } else {
        reply_elems(out, elems.len(), elems.iter().map(|(s, m)| (*s, &m[..])), withscores);
    }
    Ok(())
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
const ZRANGESTORE: PlanFn = |tx, args, out| Box::pin(zrangestore_plan(tx, args, out));

async fn zrangestore_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let Some(req) = parse_zrange(&args, 2, true, RangeType::Auto, Direction::Auto, out) else {
        return Ok(());
    };
    let src = args.get(2).to_vec();
    let picked: Fetched = tx
        .hop(tx.shard_of_arg(2), move |ctx: &mut Ctx| match ctx.lookup_read(&src) {
            None => Ok(None),
            Some(e) => match &e.val {
                Value::ZSet(z) => {
                    let (start, n) = req.select(z);
                    Ok(Some(z.range(start, n, req.rev).map(|(s, m)| (s, m.to_vec())).collect()))
                }
                _ => Err(()),
            },
        })
        .await?;
    let Ok(picked) = picked else {
        out.error(err::WRONGTYPE);
        return Ok(());
    };
    let (z, _) = build_zset(picked.unwrap_or_default(), Limits::from_config());
    let n = z.len();
    let dst = args.get(1).to_vec();
    tx.hop(tx.shard_of_arg(1), move |ctx: &mut Ctx| store_result(ctx, &dst, z, "zrangestore"))
        .await?;
    out.int(n as i64);
    Ok(())
}

/// ZMPOP / BZMPOP arguments after numkeys: (first key position, key count, max, count).
fn parse_mpop(args: &Args, nk: usize, out: &mut Reply) -> Option<(usize, usize, bool, usize)> {
    let numkeys = parse_range_long(args.get(nk), 1, out, "ERR numkeys should be greater than 0")?;
    let argc = args.len();
    let where_idx = (nk as i64).saturating_add(numkeys).saturating_add(1);
    if where_idx >= argc as i64 {
        out.error(err::SYNTAX);
        return None;
    }
    let where_idx = where_idx as usize;
    let w = args.get(where_idx);
    let max = if opt_is(w, "min") {
        false
    } else if opt_is(w, "max") {
        true
    } else {
        out.error(err::SYNTAX);
        return None;
    };
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < argc {
        if count == -1 && opt_is(args.get(j), "count") && j + 1 < argc {
            count = parse_range_long(args.get(j + 1), 1, out, "ERR count should be greater than 0")?;
            j += 2;
        } else {
            out.error(err::SYNTAX);
            return None;
        }
    }
    Some((nk + 1, numkeys as usize, max, if count == -1 { 1 } else { count as usize }))
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: the first existing key
/// (in argument order, on any shard) is popped.
const ZMPOP: PlanFn = |tx, args, out| Box::pin(zmpop_plan(tx, args, out));

async fn zmpop_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let Some((first, n, max, count)) = parse_mpop(&args, 1, out) else {
        return Ok(());
    };
    let resp3 = out.resp3;
    // Keys in order, a run of keys on one shard per hop; like Redis, the
    // lookups stop at the first existing key, which is popped in the same hop.
    let mut i = 0;
    while i < n {
        let shard = tx.shard_of_arg(first + i);
        let mut j = i;
        while j < n && tx.shard_of_arg(first + j) == shard {
            j += 1;
        }
        let keys: Vec<Vec<u8>> = (i..j).map(|k| args.get(first + k).to_vec()).collect();
        let served: Option<Result<Vec<u8>, ()>> = tx
            .hop(shard, move |ctx: &mut Ctx| {
                for k in keys {
                    match zset_at(ctx, &k) {
                        Ok(false) => continue,
                        Err(()) => return Some(Err(())),
                        Ok(true) => {
                            let mut r = Reply::new(resp3);
                            pop_from(ctx, &k, max, count, PopShape::Nested, &mut r);
                            return Some(Ok(r.buf));
                        }
                    }
                }
                None
            })
            .await?;
        match served {
            Some(Ok(bytes)) => {
                out.raw(&bytes);
                return Ok(());
            }
            Some(Err(())) => {
                out.error(err::WRONGTYPE);
                return Ok(());
            }
            None => i = j,
        }
    }
    out.null_array();
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER
// ---------------------------------------------------------------------------

/// A random rank below `n` (n > 0) from a local xorshift state (seeded from
/// the shard's generator, so the set can stay borrowed while sampling).
#[inline]
fn rand_rank(state: &mut u64, n: usize) -> usize {
    (crate::util::rand::next(state) % n as u64) as usize
}

/// zrandmemberCommand / zrandmemberWithCountCommand.
fn zrandmember(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let argc = args.len();
    let mut rng = ctx.shard.rand() | 1;
    if argc < 3 {
        let Some(e) = ctx.lookup_read(args.get(1)) else { return out.null() };
        let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
        return out.bulk(z.get(rand_rank(&mut rng, z.len())).1);
    }
    let l = match string2ll(args.get(2)) {
        Some(v) if v >= -i64::MAX => v,
        Some(_) => return out.error(&format!("ERR value is out of range, value must between {} and {}", -i64::MAX, i64::MAX)),
        None => return out.error(err::NOT_INT),
    };
    let mut withscores = false;
    if argc > 4 || (argc == 4 && !opt_is(args.get(3), "withscores")) {
        return out.error(err::SYNTAX);
    } else if argc == 4 {
        withscores = true;
        if !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
            return out.error("ERR value is out of range");
        }
    }
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.array_len(0) };
    let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    let size = z.len();
    let (count, uniq) = if l >= 0 { (l as u64, true) } else { (l.unsigned_abs(), false) };
    if count == 0 {
        return out.array_len(0);
    }
    // CASE 1: repeats allowed (or one element): streamed, never materialised.
    if !uniq || count == 1 {
        elems_header(out, count as usize, withscores);
        for _ in 0..count {
            let (s, m) = z.get(rand_rank(&mut rng, size));
            elem(out, m, s, withscores);
        }
        return;
    }
    let picks: Vec<usize> = if count >= size as u64 {
        // CASE 2: the whole set, as zuiNext walks it (from the tail).
        (0..size).rev().collect()
    } else if count * 3 > size as u64 {
        // CASE 3: remove random elements until `count` remain.
        let mut keep: Vec<usize> = (0..size).collect();
        while keep.len() as u64 > count {
            let i = rand_rank(&mut rng, keep.len());
            keep.swap_remove(i);
        }
        keep
    } else {
        // CASE 4: sample until `count` distinct ranks were drawn.
        let mut seen = std::collections::HashSet::with_capacity(count as usize);
        let mut v = Vec::with_capacity(count as usize);
        while (v.len() as u64) < count {
            let r = rand_rank(&mut rng, size);
            if seen.insert(r) {
                v.push(r);
            }
        }
        v
    };
    elems_header(out, picks.len(), withscores);
    for r in picks {
        let (s, m) = z.get(r);
        elem(out, m, s, withscores);
    }
}

// ---------------------------------------------------------------------------
// Blocking pops: BZPOPMIN / BZPOPMAX / BZMPOP
// ---------------------------------------------------------------------------

/// The key at `pos` is a sorted set (non-empty by construction); false when
/// missing. Err on another type.
fn zset_at(ctx: &mut Ctx, key: &[u8]) -> Result<bool, ()> {
    let now = ctx.now;
    match ctx.db().lookup_write(key, now) {
        None => Ok(false),
        Some(e) => match &e.val {
            Value::ZSet(_) => Ok(true),
            _ => Err(()),
        },
    }
}

/// blockingGenericZpopCommand over the keys at `keys` (argument positions),
/// once the timeout is known.
#[allow(clippy::too_many_arguments)]
fn block_pop(
    ctx: &mut Ctx,
    args: &Args,
    keys: std::ops::Range<usize>,
    only: Option<usize>,
    deadline_ms: u64,
    max: bool,
    count: usize,
    shape: PopShape,
    out: &mut Reply,
) -> BlockResult {
    if let Some(pos) = only {
        // Woken for one key: serve it if it holds a sorted set, else keep waiting.
        let key = args.get(pos);
        if zset_at(ctx, key) == Ok(true) {
            pop_from(ctx, key, max, count, shape, out);
            return BlockResult::Done;
        }
        return BlockResult::Wait { deadline_ms };
    }
    for pos in keys {
        let key = args.get(pos);
        match zset_at(ctx, key) {
            Ok(false) => continue,
            Err(()) => {
                out.error(err::WRONGTYPE);
                return BlockResult::Done;
            }
            Ok(true) => {
                pop_from(ctx, key, max, count, shape, out);
                return BlockResult::Done;
            }
        }
    }
    BlockResult::Wait { deadline_ms }
}

/// The deadline of a blocked retry (`only` set): the timeout parsed again,
/// its error (already replied on the first attempt) discarded.
fn retry_deadline(arg: &[u8], now: u64) -> u64 {
    let mut scratch = Reply::new(false);
    super::table::parse_timeout(arg, now, &mut scratch).unwrap_or(0)
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout: [key, member, score].
fn bzpop(ctx: &mut Ctx, args: Args, only: Option<usize>, max: bool, out: &mut Reply) -> BlockResult {
    let argc = args.len();
    let targ = args.get(argc - 1);
    let deadline_ms = if only.is_some() {
        retry_deadline(targ, ctx.now)
    } else {
        match super::table::parse_timeout(targ, ctx.now, out) {
            Some(d) => d,
            None => return BlockResult::Done,
        }
    };
    block_pop(ctx, &args, 1..argc - 1, only, deadline_ms, max, 1, PopShape::WithKey, out)
}

fn bzpopmin(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    bzpop(ctx, args, only, false, out)
}

fn bzpopmax(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    bzpop(ctx, args, only, true, out)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]. As in Redis,
/// numkeys / MIN|MAX / COUNT are checked before the timeout.
fn bzmpop(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    let parsed = if only.is_some() {
        parse_mpop(&args, 2, &mut Reply::new(false))
    } else {
        parse_mpop(&args, 2, out)
    };
    let Some((first, n, max, count)) = parsed else {
        return if only.is_some() {
            BlockResult::Wait { deadline_ms: 0 }
        } else {
            BlockResult::Done
        };
    };
    let deadline_ms = if only.is_some() {
        retry_deadline(args.get(1), ctx.now)
    } else {
        match super::table::parse_timeout(args.get(1), ctx.now, out) {
            Some(d) => d,
            None => return BlockResult::Done,
        }
    };
    block_pop(ctx, &args, first..first + n, only, deadline_ms, max, count, PopShape::Nested, out)
}

// ---------------------------------------------------------------------------
// ZSCAN
// ---------------------------------------------------------------------------

/// ZSCAN key cursor [MATCH pattern] [COUNT count]: the cursor is checked
/// before the key, the options after its type (scanGenericCommand).
fn zscan(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(cursor) = super::keys::parse_scan_cursor(args.get(2)) else {
        return out.error("ERR invalid cursor");
    };
    let Some(e) = ctx.lookup_read(args.get(1)) else {
        out.array_len(2);
        out.bulk(b"0");
        return out.array_len(0);
    };
    let Ok(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    let mut count: usize = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let left = args.len() - i;
        let a = args.get(i);
        if opt_is(a, "count") && left >= 2 {
            match string2ll(args.get(i + 1)) {
                None => return out.error(err::NOT_INT),
                Some(v) if v < 1 => return out.error(err::SYNTAX),
                Some(v) => count = v.min(i64::MAX >> 8) as usize,
            }
            i += 2;
        } else if opt_is(a, "match") && left >= 2 {
            let p = args.get(i + 1);
            pattern = if p == b"*" { None } else { Some(p) };
            i += 2;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    let (next, items) = z.scan(cursor, count);
    let skiplist = z.is_skiplist();
    let items: Vec<(f64, &[u8])> = match pattern {
        Some(p) => items.into_iter().filter(|(_, m)| crate::util::glob::glob_match(p, m, false)).collect(),
        None => items,
    };
    out.array_len(2);
    let mut cur = Vec::with_capacity(20);
    crate::util::num::write_u64(&mut cur, next);
    out.bulk(&cur);
    out.array_len(items.len() * 2);
    let mut buf = Vec::with_capacity(32);
    for (s, m) in items {
        out.bulk(m);
        buf.clear();
        // A listpack holds the score as d2string text; the dict path formats %.17Lg.
        if skiplist {
            crate::util::num::fmt_double_reply(&mut buf, s);
        } else {
            crate::util::num::d2string(&mut buf, s);
        }
        out.bulk(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Shard;

    const NOW: u64 = 1_700_000_000_000;

    fn run_block(s: &mut Shard, f: super::super::table::BlockFn, argv: &[&str], only: Option<usize>) -> (BlockResult, String) {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for a in argv {
            let st = data.len();
            data.extend_from_slice(a.as_bytes());
            spans.push((st, data.len()));
        }
        let args = Args::new(&data, &spans);
        let mut out = Reply::new(false);
        let mut ctx = Ctx { shard: s, db: 0, now: NOW };
        let r = f(&mut ctx, args, only, &mut out);
        (r, String::from_utf8(out.buf).unwrap())
    }

    fn put(s: &mut Shard, key: &str, elems: &[(f64, &str)]) {
        let mut z = ZSet::new(false);
        for (sc, m) in elems {
            z.insert_new(*sc, m.as_bytes());
        }
        s.dbs[0].set(key.as_bytes(), Value::ZSet(z), 0, NOW);
    }

    #[test]
    fn blocking_pops_serve_wait_and_retry() {
        let mut s = Shard::new(0, 16);
        // Nothing to serve: wait until the timeout (1.5 s from now; 0 = forever).
        assert_eq!(
            run_block(&mut s, bzpopmin, &["bzpopmin", "a", "b", "1.5"], None).0,
            BlockResult::Wait { deadline_ms: NOW + 1500 }
        );
        assert_eq!(
            run_block(&mut s, bzpopmin, &["bzpopmin", "a", "0"], None).0,
            BlockResult::Wait { deadline_ms: 0 }
        );
        // A bad timeout is an error, even with data.
        put(&mut s, "b", &[(1.0, "x"), (2.0, "y")]);
        let (r, out) = run_block(&mut s, bzpopmin, &["bzpopmin", "b", "x"], None);
        assert_eq!((r, out.as_str()), (BlockResult::Done, "-ERR timeout is not a float or out of range\r\n"));
        // The first non-empty key is served.
        let (r, out) = run_block(&mut s, bzpopmax, &["bzpopmax", "a", "b", "0"], None);
        assert_eq!((r, out.as_str()), (BlockResult::Done, "*3\r\n$1\r\nb\r\n$1\r\ny\r\n$1\r\n2\r\n"));
        // A retry for one key: a missing or wrong-typed key keeps waiting, silently.
        assert!(matches!(run_block(&mut s, bzpopmin, &["bzpopmin", "a", "b", "0"], Some(1)), (BlockResult::Wait { .. }, ref o) if o.is_empty()));
        s.dbs[0].set(b"a", Value::from_bytes(b"str"), 0, NOW);
        assert!(matches!(run_block(&mut s, bzpopmin, &["bzpopmin", "a", "b", "0"], Some(1)), (BlockResult::Wait { .. }, ref o) if o.is_empty()));
        let (r, out) = run_block(&mut s, bzpopmin, &["bzpopmin", "a", "b", "0"], None);
        assert_eq!((r, out.as_str()), (BlockResult::Done, format!("-{}\r\n", err::WRONGTYPE).as_str()));
        let (r, out) = run_block(&mut s, bzpopmin, &["bzpopmin", "a", "b", "0"], Some(2));
        assert_eq!((r, out.as_str()), (BlockResult::Done, "*3\r\n$1\r\nb\r\n$1\r\nx\r\n$1\r\n1\r\n"));
        assert!(s.dbs[0].entry(b"b").is_none(), "the emptied set is deleted");
        // BZMPOP: argument errors before the timeout, then [key, [[member, score]...]].
        let (_, out) = run_block(&mut s, bzmpop, &["bzmpop", "x", "0", "k", "MIN"], None);
        assert_eq!(out, "-ERR numkeys should be greater than 0\r\n");
        put(&mut s, "k", &[(1.0, "p"), (2.0, "q"), (3.0, "r")]);
        let (r, out) = run_block(&mut s, bzmpop, &["bzmpop", "0", "2", "nokey", "k", "MAX", "COUNT", "2"], None);
        assert_eq!(r, BlockResult::Done);
        assert_eq!(out, "*2\r\n$1\r\nk\r\n*2\r\n*2\r\n$1\r\nr\r\n$1\r\n3\r\n*2\r\n$1\r\nq\r\n$1\r\n2\r\n");
        let (r, _) = run_block(&mut s, bzmpop, &["bzmpop", "0", "2", "nokey", "k", "MIN"], Some(3));
        assert_eq!(r, BlockResult::Wait { deadline_ms: 0 });
        let (r, out) = run_block(&mut s, bzmpop, &["bzmpop", "0", "2", "nokey", "k", "MIN"], Some(4));
        assert_eq!((r, out.as_str()), (BlockResult::Done, "*2\r\n$1\r\nk\r\n*1\r\n*2\r\n$1\r\np\r\n$1\r\n1\r\n"));
    }

    #[test]
    fn range_bounds_parse_like_strtod() {
        assert_eq!(strtod_c(b""), Some(0.0));
        assert_eq!(strtod_c(b" 1"), Some(1.0));
        assert_eq!(strtod_c(b"1 "), None);
        assert_eq!(strtod_c(b"nan"), None);
        assert_eq!(strtod_c(b"2\0junk"), Some(2.0));
        assert_eq!(strtod_c(b"-inf"), Some(f64::NEG_INFINITY));
        let r = ScoreRange::parse(b"(1", b"+inf").unwrap();
        assert!(r.minex && !r.maxex && !r.gte_min(1.0) && r.gte_min(1.5));
        assert!(LexRange::parse(b"+x", b"+").is_none());
        assert!(LexRange::parse(b"", b"+").is_none());
        assert!(LexRange::parse(b"[", b"(").is_some());
    }
}
