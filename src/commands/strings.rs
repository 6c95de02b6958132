//! The strings family, mirroring Redis 7.0.15's t_string.c: GET, SET (and its
//! SETNX/SETEX/PSETEX/GETSET variants), GETDEL, GETEX, MGET, MSET, MSETNX,
//! INCR/DECR/INCRBY/DECRBY/INCRBYFLOAT, APPEND, STRLEN, GETRANGE/SUBSTR,
//! SETRANGE and LCS.
//!
//! GET and SET are the hot path: they parse options in place and allocate
//! nothing but the stored key/value.

use super::table::{Combine, Ctx, HopLost, PlanFn, Table, Tx};
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::{note, NOTIFY_GENERIC, NOTIFY_STRING};
use crate::util::num::{incr_by_float, string2ll};

pub fn register(t: &mut Table) {
    t.keyed("get", get);
    t.keyed("set", set);
    t.keyed("setnx", setnx);
    t.keyed("setex", setex);
    t.keyed("psetex", psetex);
    t.keyed("getset", getset);
    t.keyed("getdel", getdel);
    t.keyed("getex", getex);
    t.keyed_split("mget", mget, Combine::Merge);
    t.keyed_split("mset", mset, Combine::AllOk);
    t.plan("msetnx", MSETNX);
    t.keyed("incr", incr);
    t.keyed("decr", decr);
    t.keyed("incrby", incrby);
    t.keyed("decrby", decrby);
    t.keyed("incrbyfloat", incrbyfloat);
    t.keyed("append", append);
    t.keyed("strlen", strlen);
    t.keyed("getrange", getrange);
    t.keyed("substr", getrange);
    t.keyed("setrange", setrange);
    t.plan("lcs", LCS);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

use crate::util::num::i64_to_buf as int_str;

/// The string form of a value without allocating (ints are formatted into
/// `buf`); None when the value is not a string.
#[inline]
#[allow(unreachable_patterns)]
pub(super) fn str_of<'a>(v: &'a Value, buf: &'a mut [u8; 20]) -> Option<&'a [u8]> {
    match v {
        Value::Int(i) => Some(int_str(*i, buf)),
        Value::Small(s) => Some(s.as_bytes()),
        Value::Str { data, .. } => Some(data),
        _ => None,
    }
}

/// addReplyBulk of a string value, or WRONGTYPE.
#[inline]
fn reply_str(out: &mut Reply, v: &Value) {
    let mut buf = [0u8; 20];
    match str_of(v, &mut buf) {
        Some(b) => out.bulk(b),
        None => out.error(err::WRONGTYPE),
    }
}

/// getGenericCommand: replies the value (or null); false on WRONGTYPE.
#[inline]
fn get_generic(ctx: &mut Ctx, key: &[u8], out: &mut Reply) -> bool {
    match ctx.lookup_read(key) {
        None => {
            out.null();
            true
        }
        Some(e) => {
            let mut buf = [0u8; 20];
            match str_of(&e.val, &mut buf) {
                Some(b) => {
                    out.bulk(b);
                    true
                }
                None => {
                    out.error(err::WRONGTYPE);
                    false
                }
            }
        }
    }
}

/// The argument as C sees it (`char *` stops at the first NUL), for option names.
#[inline]
pub(super) fn cstr(b: &[u8]) -> &[u8] {
    match memchr::memchr(0, b) {
        Some(z) => &b[..z],
        None => b,
    }
}

/// The configured proto-max-bulk-len.
pub(super) fn proto_max_bulk_len() -> i64 {
    crate::runtime::rt_ref()
        .config
        .read()
        .map(|c| c.proto_max_bulk_len())
        .unwrap_or(512 << 20)
        .min(i64::MAX as u64) as i64
}

/// checkStringLength: false (after replying) when size+append is too big.
fn check_string_length(size: i64, append: i64, out: &mut Reply) -> bool {
    if size as i128 + append as i128 > proto_max_bulk_len() as i128 {
        out.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return false;
    }
    true
}

fn invalid_expire(cmd: &str, out: &mut Reply) {
    out.error(&format!("ERR invalid expire time in '{cmd}' command"));
}

// ---------------------------------------------------------------------------
// SET / GETEX option parsing (parseExtendedStringArgumentsOrReply)
// ---------------------------------------------------------------------------

const NX: u16 = 1 << 0;
const XX: u16 = 1 << 1;
const EX: u16 = 1 << 2;
const PX: u16 = 1 << 3;
const KEEPTTL: u16 = 1 << 4;
const GET: u16 = 1 << 5;
const EXAT: u16 = 1 << 6;
const PXAT: u16 = 1 << 7;
const PERSIST: u16 = 1 << 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ExtArgs {
    flags: u16,
    /// Argument index of the expire value, 0 when none.
    expire: usize,
    /// True when the expire is in milliseconds (PX, PXAT).
    unit_ms: bool,
}

/// Parses SET (`set == true`, options from argv[3]) or GETEX (from argv[2])
/// options; Err(()) means "ERR syntax error".
fn parse_ext(args: &Args, set: bool) -> Result<ExtArgs, ()> {
    let mut a = ExtArgs {
        flags: 0,
        expire: 0,
        unit_ms: false,
    };
    let argc = args.len();
    let mut j = if set { 3 } else { 2 };
    while j < argc {
        let opt = cstr(args.get(j));
        let has_next = j + 1 < argc;
        let f = a.flags;
        let eq = |w: &[u8]| opt.eq_ignore_ascii_case(w);
        if eq(b"nx") && f & XX == 0 && set {
            a.flags |= NX;
        } else if eq(b"xx") && f & NX == 0 && set {
            a.flags |= XX;
        } else if eq(b"get") && set {
            a.flags |= GET;
        } else if eq(b"keepttl") && f & (PERSIST | EX | EXAT | PX | PXAT) == 0 && set {
            a.flags |= KEEPTTL;
        } else if eq(b"persist") && !set && f & (EX | EXAT | PX | PXAT | KEEPTTL) == 0 {
            a.flags |= PERSIST;
        } else if eq(b"ex") && f & (KEEPTTL | PERSIST | EXAT | PX | PXAT) == 0 && has_next {
            a.flags |= EX;
            a.expire = j + 1;
            j += 1;
        } else if eq(b"px") && f & (KEEPTTL | PERSIST | EX | EXAT | PXAT) == 0 && has_next {
            a.flags |= PX;
            a.unit_ms = true;
            a.expire = j + 1;
            j += 1;
        } else if eq(b"exat") && f & (KEEPTTL | PERSIST | EX | PX | PXAT) == 0 && has_next {
            a.flags |= EXAT;
            a.expire = j + 1;
            j += 1;
        } else if eq(b"pxat") && f & (KEEPTTL | PERSIST | EX | EXAT | PX) == 0 && has_next {
            a.flags |= PXAT;
            a.unit_ms = true;
            a.expire = j + 1;
            j += 1;
        } else {
            return Err(());
        }
        j += 1;
    }
    Ok(a)
}

enum ExpireErr {
    NotInt,
    Invalid,
}

/// getExpireMillisecondsOrReply: the absolute expire time in ms.
fn expire_ms(arg: &[u8], flags: u16, unit_ms: bool, now: u64) -> Result<i64, ExpireErr> {
    let mut ms = string2ll(arg).ok_or(ExpireErr::NotInt)?;
    if ms <= 0 || (!unit_ms && ms > i64::MAX / 1000) {
        return Err(ExpireErr::Invalid);
    }
    if !unit_ms {
        ms *= 1000;
    }
    if flags & (PX | EX) != 0 {
        ms = ms.wrapping_add(now as i64);
    }
    if ms <= 0 {
        return Err(ExpireErr::Invalid);
    }
    Ok(ms)
}

fn expire_or_reply(arg: &[u8], flags: u16, unit_ms: bool, now: u64, cmd: &str, out: &mut Reply) -> Option<i64> {
    match expire_ms(arg, flags, unit_ms, now) {
        Ok(ms) => Some(ms),
        Err(ExpireErr::NotInt) => {
            out.error(err::NOT_INT);
            None
        }
        Err(ExpireErr::Invalid) => {
            invalid_expire(cmd, out);
            None
        }
    }
}

// ---------------------------------------------------------------------------
// GET / SET and variants
// ---------------------------------------------------------------------------

fn get(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    get_generic(ctx, args.get(1), out);
}

/// What setGenericCommand replies when it sets / aborts (SETNX uses 1 / 0).
#[derive(Clone, Copy)]
enum SetReplies {
    OkNull,
    OneZero,
}

/// setGenericCommand. `expire` is the expire argument's index (0 = none).
#[allow(clippy::too_many_arguments)]
fn set_generic(ctx: &mut Ctx, cmd: &str, flags: u16, key: &[u8], val: &[u8], expire: usize, unit_ms: bool, args: &Args, replies: SetReplies, out: &mut Reply) {
    let now = ctx.now;
    let mut ms = 0i64;
    if expire != 0 {
        match expire_or_reply(args.get(expire), flags, unit_ms, now, cmd, out) {
            Some(m) => ms = m,
            None => return,
        }
    }
    if flags & GET != 0 && !get_generic(ctx, key, out) {
        return;
    }
    let db = ctx.db();
    if flags & (NX | XX | KEEPTTL) != 0 {
        // lookupKeyWrite: also drops the key if it has expired.
        let found = db.lookup_write(key, now).is_some();
        if (flags & NX != 0 && found) || (flags & XX != 0 && !found) {
            if flags & GET == 0 {
                match replies {
                    SetReplies::OkNull => out.null(),
                    SetReplies::OneZero => out.int(0),
                }
            }
            return;
        }
    } else if db.has_volatile() {
        // Expire a stale key first so the expired-keys count matches Redis.
        db.peek(key, now);
    }
    let v = Value::from_bytes(val);
    if expire != 0 {
        db.set(key, v, ms as u64, now);
    } else if flags & KEEPTTL != 0 {
        db.set_keep_ttl(key, v, now);
    } else {
        db.set(key, v, 0, now);
    }
    ctx.notify(NOTIFY_STRING, "set", key);
    if expire != 0 {
        ctx.notify(NOTIFY_GENERIC, "expire", key);
    }
    if flags & GET == 0 {
        match replies {
            SetReplies::OkNull => out.ok(),
            SetReplies::OneZero => out.int(1),
        }
    }
}

fn set(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let a = if args.len() == 3 {
        ExtArgs {
            flags: 0,
            expire: 0,
            unit_ms: false,
        }
    } else {
        match parse_ext(&args, true) {
            Ok(a) => a,
            Err(()) => return out.error(err::SYNTAX),
        }
    };
    set_generic(
        ctx,
        "set",
        a.flags,
        args.get(1),
        args.get(2),
        a.expire,
        a.unit_ms,
        &args,
        SetReplies::OkNull,
        out,
    );
}

fn setnx(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    set_generic(ctx, "setnx", NX, args.get(1), args.get(2), 0, false, &args, SetReplies::OneZero, out);
}

fn setex(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    set_generic(ctx, "setex", EX, args.get(1), args.get(3), 2, false, &args, SetReplies::OkNull, out);
}

fn psetex(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    set_generic(ctx, "psetex", PX, args.get(1), args.get(3), 2, true, &args, SetReplies::OkNull, out);
}

fn getset(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    if !get_generic(ctx, key, out) {
        return;
    }
    let now = ctx.now;
    ctx.db().set(key, Value::from_bytes(args.get(2)), 0, now);
    ctx.notify(NOTIFY_STRING, "set", key);
}

fn getdel(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    if !get_generic(ctx, key, out) {
        return;
    }
    if ctx.db().remove(key).is_some() {
        ctx.notify(NOTIFY_GENERIC, "del", key);
    }
}

fn getex(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let a = match parse_ext(&args, false) {
        Ok(a) => a,
        Err(()) => return out.error(err::SYNTAX),
    };
    let key = args.get(1);
    let now = ctx.now;
    let Some(e) = ctx.lookup_read(key) else { return out.null() };
    if !e.val.is_string() {
        return out.error(err::WRONGTYPE);
    }
    let mut ms = 0i64;
    if a.expire != 0 {
        match expire_or_reply(args.get(a.expire), a.flags, a.unit_ms, now, "getex", out) {
            Some(m) => ms = m,
            None => return,
        }
    }
    reply_str(out, &e.val);
    let db = ctx.db();
    if a.flags & (PXAT | EXAT) != 0 && ms as u64 <= now {
        db.remove(key);
        ctx.notify(NOTIFY_GENERIC, "del", key);
    } else if a.expire != 0 {
        db.set_expire(key, ms as u64);
        ctx.notify(NOTIFY_GENERIC, "expire", key);
    } else if a.flags & PERSIST != 0 && db.persist(key) {
        ctx.notify(NOTIFY_GENERIC, "persist", key);
    }
}

// ---------------------------------------------------------------------------
// MGET / MSET / MSETNX
// ---------------------------------------------------------------------------

fn mget(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    out.array_len(args.len() - 1);
    for i in 1..args.len() {
        match ctx.lookup_read(args.get(i)) {
            Some(e) => {
                let mut buf = [0u8; 20];
                match str_of(&e.val, &mut buf) {
                    Some(b) => out.bulk(b),
                    None => out.null(),
                }
            }
            None => out.null(),
        }
    }
}

fn mset(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let now = ctx.now;
    let db = ctx.db();
    let mut i = 1;
    while i + 1 < args.len() {
        let key = args.get(i);
        if db.has_volatile() {
            // setKey's lookupKeyWrite: a stale key counts as expired first.
            db.peek(key, now);
        }
        db.set(key, Value::from_bytes(args.get(i + 1)), 0, now);
        i += 2;
    }
    if crate::runtime::notify::wanted(NOTIFY_STRING) {
        for i in (1..args.len().saturating_sub(1)).step_by(2) {
            ctx.notify(NOTIFY_STRING, "set", args.get(i));
        }
    }
    out.ok();
}

/// MSETNX on any number of shards: check that no key exists anywhere, then
/// set them all (both steps on every shard of the keys at once).
const MSETNX: PlanFn = |tx, args, out| Box::pin(msetnx_plan(tx, args, out));

async fn msetnx_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let pairs = crate::util::group_by_shard(
        (1..args.len().saturating_sub(1))
            .step_by(2)
            .map(|i| (tx.shard_of_arg(i), (args.get(i).to_vec(), args.get(i + 1).to_vec()))),
    );
    let checks = pairs
        .iter()
        .map(|(s, kvs)| {
            let keys: Vec<Vec<u8>> = kvs.iter().map(|kv| kv.0.clone()).collect();
            (*s, move |ctx: &mut Ctx| {
                let now = ctx.now;
                let d = ctx.db();
                keys.iter().any(|k| d.lookup_write(k, now).is_some())
            })
        })
        .collect();
    if tx.hop_each(checks).await?.into_iter().any(|busy| busy) {
        out.int(0);
        return Ok(());
    }
    let sets = pairs
        .into_iter()
        .map(|(s, kvs)| {
            (s, move |ctx: &mut Ctx| {
                let now = ctx.now;
                for (k, v) in &kvs {
                    ctx.db().set(k, Value::from_bytes(v), 0, now);
                    ctx.notify(NOTIFY_STRING, "set", k);
                }
            })
        })
        .collect();
    tx.hop_each(sets).await?;
    out.int(1);
    Ok(())
}

// ---------------------------------------------------------------------------
// INCR family
// ---------------------------------------------------------------------------

#[allow(unreachable_patterns)]
fn incr_decr(ctx: &mut Ctx, key: &[u8], incr: i64, out: &mut Reply) {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    if let Some(mut e) = db.lookup_write(key, now) {
        let old = match &e.val {
            Value::Int(v) => *v,
            Value::Small(_) | Value::Str { .. } => match e.val.as_bytes().and_then(string2ll) {
                Some(v) => v,
                None => return out.error(err::NOT_INT),
            },
            _ => return out.error(err::WRONGTYPE),
        };
        let Some(v) = old.checked_add(incr) else { return out.error(err::OVERFLOW) };
        // dbOverwrite / in-place update: the TTL stays.
        *e.val_mut() = Value::Int(v);
        out.int(v);
        note(dbi, NOTIFY_STRING, "incrby", key);
        return;
    }
    db.set(key, Value::Int(incr), 0, now);
    out.int(incr);
    note(dbi, NOTIFY_STRING, "incrby", key);
}

fn incr(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    incr_decr(ctx, args.get(1), 1, out);
}

fn decr(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    incr_decr(ctx, args.get(1), -1, out);
}

fn incrby(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match string2ll(args.get(2)) {
        Some(n) => incr_decr(ctx, args.get(1), n, out),
        None => out.error(err::NOT_INT),
    }
}

fn decrby(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match string2ll(args.get(2)) {
        Some(i64::MIN) => out.error("ERR decrement would overflow"),
        Some(n) => incr_decr(ctx, args.get(1), -n, out),
        None => out.error(err::NOT_INT),
    }
}

fn incrbyfloat(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    if let Some(mut e) = db.lookup_write(key, now) {
        let mut buf = [0u8; 20];
        let Some(cur) = str_of(&e.val, &mut buf) else {
            return out.error(err::WRONGTYPE);
        };
        match incr_by_float(Some(cur), args.get(2)) {
            Ok(r) => {
                out.bulk(&r);
                *e.val_mut() = Value::plain(r);
                note(dbi, NOTIFY_STRING, "incrbyfloat", key);
            }
            Err(er) => out.error(er.message()),
        }
        return;
    }
    match incr_by_float(None, args.get(2)) {
        Ok(r) => {
            out.bulk(&r);
            db.set(key, Value::plain(r), 0, now);
            note(dbi, NOTIFY_STRING, "incrbyfloat", key);
        }
        Err(e) => out.error(e.message()),
    }
}

// ---------------------------------------------------------------------------
// APPEND / STRLEN / GETRANGE / SETRANGE
// ---------------------------------------------------------------------------

fn append(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let tail = args.get(2);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    if let Some(mut e) = db.lookup_write(key, now) {
        let mut buf = [0u8; 20];
        let Some(cur) = str_of(&e.val, &mut buf) else {
            return out.error(err::WRONGTYPE);
        };
        if !check_string_length(cur.len() as i64, tail.len() as i64, out) {
            return;
        }
        let Some(data) = e.val_mut().make_raw() else {
            return out.error(err::WRONGTYPE);
        };
        data.extend_from_slice(tail);
        out.int(data.len() as i64);
        note(dbi, NOTIFY_STRING, "append", key);
        return;
    }
    db.set(key, Value::from_bytes(tail), 0, now);
    out.int(tail.len() as i64);
    note(dbi, NOTIFY_STRING, "append", key);
}

fn strlen(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match ctx.lookup_read(args.get(1)) {
        None => out.int(0),
        Some(e) => {
            let mut buf = [0u8; 20];
            match str_of(&e.val, &mut buf) {
                Some(b) => out.int(b.len() as i64),
                None => out.error(err::WRONGTYPE),
            }
        }
    }
}

fn getrange(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(mut start) = string2ll(args.get(2)) else {
        return out.error(err::NOT_INT);
    };
    let Some(mut end) = string2ll(args.get(3)) else {
        return out.error(err::NOT_INT);
    };
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.bulk(b"") };
    let mut buf = [0u8; 20];
    let Some(s) = str_of(&e.val, &mut buf) else {
        return out.error(err::WRONGTYPE);
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return out.bulk(b"");
    }
    if start < 0 {
        start = len.wrapping_add(start);
    }
    if end < 0 {
        end = len.wrapping_add(end);
    }
    if start < 0 {
        start = 0;
    }
    if end < 0 {
        end = 0;
    }
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        out.bulk(b"");
    } else {
        out.bulk(&s[start as usize..=end as usize]);
    }
}

fn setrange(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let value = args.get(3);
    let Some(offset) = string2ll(args.get(2)) else {
        return out.error(err::NOT_INT);
    };
    if offset < 0 {
        return out.error("ERR offset is out of range");
    }
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    if let Some(mut e) = db.lookup_write(key, now) {
        let mut buf = [0u8; 20];
        let Some(cur) = str_of(&e.val, &mut buf) else {
            return out.error(err::WRONGTYPE);
        };
        if value.is_empty() {
            return out.int(cur.len() as i64);
        }
        if !check_string_length(offset, value.len() as i64, out) {
            return;
        }
        let Some(data) = e.val_mut().make_raw() else {
            return out.error(err::WRONGTYPE);
        };
        let off = offset as usize;
        let need = off + value.len();
        if need > data.len() {
            grow_zero(data, need);
        }
        data[off..need].copy_from_slice(value);
        out.int(data.len() as i64);
        note(dbi, NOTIFY_STRING, "setrange", key);
        return;
    }
    if value.is_empty() {
        return out.int(0);
    }
    if !check_string_length(offset, value.len() as i64, out) {
        return;
    }
    let off = offset as usize;
    // Zeroed allocation (fresh pages) like sdsnewlen(NULL, len).
    let mut data = vec![0u8; off + value.len()];
    data[off..].copy_from_slice(value);
    out.int(data.len() as i64);
    db.set(key, Value::Str { data, raw: true }, 0, now);
    note(dbi, NOTIFY_STRING, "setrange", key);
}

/// sdsgrowzero: extends `data` to `len` bytes with zeros (one memset).
pub(super) fn grow_zero(data: &mut Vec<u8>, len: usize) {
    let old = data.len();
    data.reserve_exact(len - old);
    // SAFETY: capacity is at least `len`; the bytes old..len are initialised
    // by write_bytes before the length covers them.
    unsafe {
        std::ptr::write_bytes(data.as_mut_ptr().add(old), 0, len - old);
        data.set_len(len);
    }
}

// ---------------------------------------------------------------------------
// LCS
// ---------------------------------------------------------------------------

const LCS_WRONGTYPE: &str = "ERR The specified keys must contain string values";

/// The LCS computation and reply once both values are known (lcsCommand
/// after its two lookups): option parsing, checks, the DP table, the reply.
fn lcs_reply(a: &[u8], b: &[u8], args: &Args, out: &mut Reply) {
    let mut minmatchlen: i64 = 0;
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let argc = args.len();
    let mut j = 3;
    while j < argc {
        let opt = cstr(args.get(j));
        let more = argc - 1 - j;
        if opt.eq_ignore_ascii_case(b"idx") {
            getidx = true;
        } else if opt.eq_ignore_ascii_case(b"len") {
            getlen = true;
        } else if opt.eq_ignore_ascii_case(b"withmatchlen") {
            withmatchlen = true;
        } else if opt.eq_ignore_ascii_case(b"minmatchlen") && more > 0 {
            match string2ll(args.get(j + 1)) {
                Some(v) => minmatchlen = v.max(0),
                None => return out.error(err::NOT_INT),
            }
            j += 1;
        } else {
            return out.error(err::SYNTAX);
        }
        j += 1;
    }
    if getlen && getidx {
        return out.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return out.error("ERR String too long for LCS");
    }
    let alen = a.len();
    let blen = b.len();
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    let bytes = cells as u128 * 4;
    if bytes > proto_max_bulk_len() as u128 {
        return out.error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    if getlen && !getidx {
        // Only the length is needed: two rows of the table suffice.
        let mut prev = vec![0u32; blen + 1];
        let mut cur = vec![0u32; blen + 1];
        for &ai in a {
            for jj in 1..=blen {
                cur[jj] = if ai == b[jj - 1] { prev[jj - 1] + 1 } else { prev[jj].max(cur[jj - 1]) };
            }
            std::mem::swap(&mut prev, &mut cur);
        }
        return out.int(prev[blen] as i64);
    }
    let mut lcs: Vec<u32> = Vec::new();
    if usize::try_from(cells).ok().is_none_or(|n| lcs.try_reserve_exact(n).is_err()) {
        return out.error("ERR Insufficient memory, failed allocating transient memory for LCS");
    }
    // SAFETY: the capacity is `cells`; every element is zeroed before the
    // length covers it.
    unsafe {
        std::ptr::write_bytes(lcs.as_mut_ptr(), 0, cells as usize);
        lcs.set_len(cells as usize);
    }
    let w = blen + 1;
    for i in 1..=alen {
        let ai = a[i - 1];
        let (prev, cur) = lcs[(i - 1) * w..(i + 1) * w].split_at_mut(w);
        for jj in 1..=blen {
            cur[jj] = if ai == b[jj - 1] { prev[jj - 1] + 1 } else { prev[jj].max(cur[jj - 1]) };
        }
    }
    let total = lcs[alen * w + blen];
    let computelcs = getidx || !getlen;
    let mut idx = total as usize;
    let mut result: Vec<u8> = if computelcs { vec![0; idx] } else { Vec::new() };
    // (a_start, a_end, b_start, b_end, match_len)
    let mut ranges: Vec<[u32; 5]> = Vec::new();
    let alen32 = alen as u32;
    let (mut astart, mut aend, mut bstart, mut bend) = (alen32, 0u32, 0u32, 0u32);
    let (mut i, mut jj) = (alen, blen);
    while computelcs && i > 0 && jj > 0 {
        let mut emit = false;
        if a[i - 1] == b[jj - 1] {
            result[idx - 1] = a[i - 1];
            if astart == alen32 {
                astart = (i - 1) as u32;
                aend = (i - 1) as u32;
                bstart = (jj - 1) as u32;
                bend = (jj - 1) as u32;
            } else if astart == i as u32 && bstart == jj as u32 {
                astart -= 1;
                bstart -= 1;
            } else {
                emit = true;
            }
            if astart == 0 || bstart == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            jj -= 1;
        } else {
            let l1 = lcs[(i - 1) * w + jj];
            let l2 = lcs[i * w + jj - 1];
            if l1 > l2 {
                i -= 1;
            } else {
                jj -= 1;
            }
            if astart != alen32 {
                emit = true;
            }
        }
        let match_len = aend.wrapping_sub(astart).wrapping_add(1);
        if emit {
            if (minmatchlen == 0 || match_len as i64 >= minmatchlen) && getidx {
                ranges.push([astart, aend, bstart, bend, match_len]);
            }
            astart = alen32;
        }
    }
    drop(lcs);
    if getidx {
        out.map_len(2);
        out.bulk(b"matches");
        out.array_len(ranges.len());
        for r in &ranges {
            out.array_len(2 + withmatchlen as usize);
            out.array_len(2);
            out.int(r[0] as i64);
            out.int(r[1] as i64);
            out.array_len(2);
            out.int(r[2] as i64);
            out.int(r[3] as i64);
            if withmatchlen {
                out.int(r[4] as i64);
            }
        }
        out.bulk(b"len");
        out.int(total as i64);
    } else if getlen {
        out.int(total as i64);
    } else {
        out.bulk(&result);
    }
}

/// LCS: fetch both values where they live (counting hits/misses there), then
/// compute here.
const LCS: PlanFn = |tx, args, out| Box::pin(lcs_plan(tx, args, out));

async fn lcs_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let fetch = |key: Vec<u8>| {
        move |ctx: &mut Ctx| -> Result<Option<Vec<u8>>, ()> {
            match ctx.lookup_read(&key) {
                None => Ok(None),
                Some(e) => {
                    let mut buf = [0u8; 20];
                    str_of(&e.val, &mut buf).map(|b| Some(b.to_vec())).ok_or(())
                }
            }
        }
    };
    let (s1, s2) = (tx.shard_of_arg(1), tx.shard_of_arg(2));
    let h1 = tx.hop(s1, fetch(args.get(1).to_vec()));
    let h2 = tx.hop(s2, fetch(args.get(2).to_vec()));
    let (a, b) = (h1.await?, h2.await?);
    match (a, b) {
        (Ok(a), Ok(b)) => lcs_reply(a.as_deref().unwrap_or(b""), b.as_deref().unwrap_or(b""), &args, out),
        _ => out.error(LCS_WRONGTYPE),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(words: &[&str]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for w in words {
            let s = data.len();
            data.extend_from_slice(w.as_bytes());
            spans.push((s, data.len()));
        }
        (data, spans)
    }

    fn parse(words: &[&str], set: bool) -> Result<ExtArgs, ()> {
        let (d, s) = args_of(words);
        parse_ext(&Args::new(&d, &s), set)
    }

    #[test]
    fn set_options_follow_redis_conflict_rules() {
        assert_eq!(parse(&["set", "k", "v", "nx"], true).unwrap().flags, NX);
        assert!(parse(&["set", "k", "v", "nx", "xx"], true).is_err());
        assert_eq!(parse(&["set", "k", "v", "NX", "nx", "GET"], true).unwrap().flags, NX | GET);
        let a = parse(&["set", "k", "v", "px", "10"], true).unwrap();
        assert_eq!((a.flags, a.expire, a.unit_ms), (PX, 4, true));
        // The same expire option may repeat (the last wins); different ones conflict.
        assert_eq!(parse(&["set", "k", "v", "ex", "1", "ex", "2"], true).unwrap().expire, 6);
        assert!(parse(&["set", "k", "v", "ex", "1", "px", "2"], true).is_err());
        assert!(parse(&["set", "k", "v", "ex"], true).is_err());
        assert!(parse(&["set", "k", "v", "keepttl", "ex", "1"], true).is_err());
        assert!(parse(&["set", "k", "v", "persist"], true).is_err());
        assert!(parse(&["getex", "k", "nx"], false).is_err());
        assert!(parse(&["getex", "k", "keepttl"], false).is_err());
        assert_eq!(parse(&["getex", "k", "persist"], false).unwrap().flags, PERSIST);
        assert!(parse(&["getex", "k", "persist", "ex", "1"], false).is_err());
        // C string semantics: an embedded NUL ends the option name.
        assert_eq!(parse(&["set", "k", "v", "nx\0junk"], true).unwrap().flags, NX);
    }

    #[test]
    fn expire_overflow_checks() {
        assert!(matches!(expire_ms(b"0", EX, false, 1000), Err(ExpireErr::Invalid)));
        assert!(matches!(expire_ms(b"abc", EX, false, 1000), Err(ExpireErr::NotInt)));
        assert!(matches!(expire_ms(b"9223372036854776", EX, false, 1000), Err(ExpireErr::Invalid)));
        assert!(matches!(expire_ms(b"9223372036854775807", PX, true, 1000), Err(ExpireErr::Invalid)));
        assert_eq!(expire_ms(b"5", EX, false, 1000).ok(), Some(6000));
        assert_eq!(expire_ms(b"5", EXAT, false, 1000).ok(), Some(5000));
        assert_eq!(expire_ms(b"9223372036854775807", PXAT, true, 1000).ok(), Some(i64::MAX));
    }

    #[test]
    fn int_formatting() {
        let mut b = [0u8; 20];
        assert_eq!(int_str(i64::MIN, &mut b), b"-9223372036854775808");
        assert_eq!(int_str(0, &mut b), b"0");
        assert_eq!(int_str(-7, &mut b), b"-7");
    }
}
