//! The streams family, mirroring Redis 7.0.15's t_stream.c: XADD XLEN XRANGE
//! XREVRANGE XDEL XTRIM XSETID XREAD, the consumer groups (XGROUP *,
//! XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM) and XINFO.
//!
//! Every stream lives on one shard, so all but XREAD / XREADGROUP are keyed
//! handlers. XREAD / XREADGROUP are blocking handlers: on one shard they run
//! as one [`xread`] call; over keys on several shards [`xread_cross`] checks
//! every key in order, then serves each on its shard and joins the replies
//! (Redis answers with every stream that has data, not the first one). A
//! client blocked on `$` waits for IDs past the last ID at the moment it
//! blocked ([`pin_ids`] rewrites `$` before the waiter is registered).
//!
//! State changes that Redis propagates as other commands are handed to the
//! propagation stream as those (`runtime::propagate::also`): XADD with the
//! ID it generated, approximate trims as exact ones, XREADGROUP / XCLAIM /
//! XAUTOCLAIM as `XCLAIM ... FORCE JUSTID LASTID` per entry ([`xclaim_argv`]),
//! NOACK reads as `XGROUP SETID` ([`setid_argv`]) and CREATECONSUMER.

use super::hashes::{cstr, opt_is};
use super::table::{BlockResult, Ctx, HopLost, Table, Tx};
use crate::keyspace::db::EntryMut;
use crate::keyspace::types::stream::{AddError, Elem, Group, Nack, Stream, StreamId, TrimBy, INVALID_ENTRIES_READ};
use crate::keyspace::types::{limits, stream::string2ull};
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::NOTIFY_STREAM;
use crate::server::client::Client;
use crate::util::num::string2ll;

pub fn register(t: &mut Table) {
    t.keyed("xadd", xadd);
    t.keyed("xlen", xlen);
    t.keyed("xrange", xrange);
    t.keyed("xrevrange", xrevrange);
    t.keyed("xdel", xdel);
    t.keyed("xtrim", xtrim);
    t.keyed("xsetid", xsetid);
    t.keyed("xack", xack);
    t.keyed("xpending", xpending);
    t.keyed("xclaim", xclaim);
    t.keyed("xautoclaim", xautoclaim);
    t.blocking("xread", xread);
    t.blocking("xreadgroup", xread);
    t.keyed("xgroup|create", xgroup);
    t.keyed("xgroup|setid", xgroup);
    t.keyed("xgroup|destroy", xgroup);
    t.keyed("xgroup|createconsumer", xgroup);
    t.keyed("xgroup|delconsumer", xgroup);
    t.client("xgroup|help", xgroup_help);
    t.keyed("xinfo|stream", xinfo);
    t.keyed("xinfo|groups", xinfo);
    t.keyed("xinfo|consumers", xinfo);
    t.client("xinfo|help", xinfo_help);
}

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

// ---------------------------------------------------------------- helpers

/// streamGenericParseIDOrReply: `missing_seq` fills a lone `<ms>`; `strict`
/// refuses `-` and `+`; with `seq_given`, `<ms>-*` is accepted.
fn parse_id_full(arg: &[u8], missing_seq: u64, strict: bool, seq_given: Option<&mut bool>) -> Option<StreamId> {
    if arg.len() > 127 {
        return None;
    }
    let b = cstr(arg);
    if strict && (b == b"-" || b == b"+") {
        return None;
    }
    let mut sg = true;
    let r = (|| {
        if b == b"-" {
            return Some(StreamId::MIN);
        }
        if b == b"+" {
            return Some(StreamId::MAX);
        }
        match memchr::memchr(b'-', b) {
            Some(d) => {
                let ms = string2ull(&b[..d])?;
                let rest = &b[d + 1..];
                let seq = if seq_given.is_some() && rest == b"*" {
                    sg = false;
                    0
                } else {
                    string2ull(rest)?
                };
                Some(StreamId::new(ms, seq))
            }
            None => Some(StreamId::new(string2ull(b)?, missing_seq)),
        }
    })();
    if let Some(s) = seq_given {
        *s = sg;
    }
    r
}

fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, &'static str> {
    parse_id_full(arg, missing_seq, false, None).ok_or(INVALID_ID)
}

fn parse_strict(arg: &[u8], missing_seq: u64) -> Result<StreamId, &'static str> {
    parse_id_full(arg, missing_seq, true, None).ok_or(INVALID_ID)
}

/// streamParseIntervalIDOrReply: a `(` prefix makes the bound exclusive.
fn parse_interval(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), &'static str> {
    if arg.len() > 1 && arg[0] == b'(' {
        Ok((parse_strict(&arg[1..], missing_seq)?, true))
    } else {
        Ok((parse_id(arg, missing_seq)?, false))
    }
}

/// Start/end of a range query with exclusions applied.
fn parse_range_bounds(start: &[u8], end: &[u8]) -> Result<(StreamId, StreamId), &'static str> {
    let (mut s, sx) = parse_interval(start, 0)?;
    if sx {
        s = s.incr().ok_or("ERR invalid start ID for the interval")?;
    }
    let (mut e, ex) = parse_interval(end, u64::MAX)?;
    if ex {
        e = e.decr().ok_or("ERR invalid end ID for the interval")?;
    }
    Ok((s, e))
}

fn parse_ll(arg: &[u8], msg: Option<&'static str>) -> Result<i64, String> {
    string2ll(arg).ok_or_else(|| match msg {
        Some(m) => format!("ERR {m}"),
        None => err::NOT_INT.to_string(),
    })
}

fn put_id(out: &mut Reply, id: StreamId) {
    let mut b = Vec::with_capacity(41);
    id.write(&mut b);
    out.bulk(&b);
}

fn put_entry(out: &mut Reply, id: StreamId, f: &[(Elem<'_>, Elem<'_>)]) {
    out.array_len(2);
    put_id(out, id);
    out.array_len(f.len() * 2);
    for (a, b) in f {
        a.with(|x| out.bulk(x));
        b.with(|x| out.bulk(x));
    }
}

/// The entries in [start, end] as an array (streamReplyWithRange without a group).
fn reply_range(out: &mut Reply, s: &Stream, start: StreamId, end: StreamId, count: usize, rev: bool) -> usize {
    let mut body = Reply::new(out.resp3());
    let mut n = 0;
    s.range(start, end, rev, |id, f| {
        put_entry(&mut body, id, f);
        n += 1;
        count == 0 || n < count
    });
    out.array_len(n);
    out.raw(&body.buf);
    n
}

/// One entry as its [id, fields] pair (STREAM_RWR_RAWENTRIES); false if absent.
fn reply_one(out: &mut Reply, s: &Stream, id: StreamId) -> bool {
    let mut found = false;
    s.range(id, id, false, |id, f| {
        put_entry(out, id, f);
        found = true;
        false
    });
    found
}

/// addReplySubcommandSyntaxError.
fn sub_syntax(args: &Args, out: &mut Reply) {
    let cmd = cstr(args.get(0)).to_ascii_uppercase();
    let sub = cstr(args.get(1));
    let sub = &sub[..sub.len().min(128)];
    let mut m = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    m.extend_from_slice(sub);
    m.extend_from_slice(b"'. Try ");
    m.extend_from_slice(&cmd);
    m.extend_from_slice(b" HELP.");
    out.error_bytes(&m);
}

fn help(args: &Args, lines: &[&str], out: &mut Reply) {
    let mut head = cstr(args.get(0)).to_ascii_uppercase();
    head.extend_from_slice(b" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    out.array_len(lines.len() + 3);
    out.status(&head);
    for l in lines {
        out.status(l.as_bytes());
    }
    out.status(b"HELP");
    out.status(b"    Prints this help.");
}

/// The stream at `key` for reading: Ok(None) when missing, Err on WRONGTYPE.
fn read_stream<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Stream>, ()> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.val {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(()),
        },
    }
}

/// lookupKeyWrite: Ok(None) when missing, Err on WRONGTYPE.
fn write_stream<'a>(ctx: &'a mut Ctx, key: &'a [u8]) -> Result<Option<EntryMut<'a>>, ()> {
    let now = ctx.now;
    match ctx.db().lookup_write(key, now) {
        None => Ok(None),
        Some(e) if matches!(e.val, Value::Stream(_)) => Ok(Some(e)),
        Some(_) => Err(()),
    }
}

/// The stream of an entry opened by [`write_stream`]; `signal` = the change
/// is signalModifiedKey'd (WATCH, tracking), as Redis does for this command.
fn stream_of<'e>(e: &'e mut EntryMut<'_>, signal: bool) -> &'e mut Stream {
    let v = if signal { e.val_mut() } else { e.val_unsignalled() };
    match v {
        Value::Stream(s) => s,
        _ => unreachable!("type checked on open"),
    }
}

fn add_dirty(ctx: &mut Ctx, n: u64) {
    ctx.db().hook.dirty += n;
}

// ---------------------------------------------------------------- XADD / XTRIM

struct TrimArgs {
    by: Option<TrimBy>,
    approx: bool,
    limit: i64,
    id: Option<(StreamId, bool)>,
    nomkstream: bool,
    idpos: usize,
    /// Where `~` and the threshold are (the propagated form rewrites them).
    approx_pos: usize,
    thresh_pos: usize,
}

/// streamRewriteApproxSpecifier + streamRewriteTrimArgument: an approximate
/// trim propagates as the exact one it amounted to (`=` and the length, or
/// the first ID left), so replaying it cannot trim differently.
fn propagate_trim(t: &TrimArgs, s: &Stream, argv: &mut [Vec<u8>]) {
    if !t.approx {
        return;
    }
    argv[t.approx_pos] = b"=".to_vec();
    argv[t.thresh_pos] = match t.by {
        Some(TrimBy::MaxLen(_)) => s.length.to_string().into_bytes(),
        _ => s.edge_id(true).unwrap_or(StreamId::MAX).to_bytes(),
    };
}

/// streamParseAddOrTrimArgsOrReply.
fn parse_add_trim(args: &Args, xadd: bool) -> Result<TrimArgs, String> {
    let mut t = TrimArgs {
        by: None,
        approx: false,
        limit: 0,
        id: None,
        nomkstream: false,
        idpos: 0,
        approx_pos: 0,
        thresh_pos: 0,
    };
    let argc = args.len();
    let mut i = 2;
    let mut limit_given = false;
    while i < argc {
        let moreargs = argc - 1 - i;
        let opt = args.get(i);
        if xadd && opt == b"*" {
            break;
        } else if (opt_is(opt, "maxlen") || opt_is(opt, "minid")) && moreargs > 0 {
            if t.by.is_some() {
                return Err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible".into());
            }
            t.approx = false;
            let next = args.get(i + 1);
            if moreargs >= 2 && cstr(next) == b"~" {
                t.approx = true;
                i += 1;
                t.approx_pos = i;
            } else if moreargs >= 2 && cstr(next) == b"=" {
                i += 1;
            }
            t.thresh_pos = i + 1;
            let thresh = args.get(i + 1);
            i += 1;
            t.by = Some(if opt_is(opt, "maxlen") {
                let v = parse_ll(thresh, None)?;
                if v < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                TrimBy::MaxLen(v as u64)
            } else {
                TrimBy::MinId(parse_strict(thresh, 0)?)
            });
        } else if opt_is(opt, "limit") && moreargs > 0 {
            let v = parse_ll(args.get(i + 1), None)?;
            if v < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            t.limit = v;
            limit_given = true;
            i += 1;
        } else if xadd && opt_is(opt, "nomkstream") {
            t.nomkstream = true;
        } else if xadd {
            let mut sg = true;
            let id = parse_id_full(opt, 0, true, Some(&mut sg)).ok_or(INVALID_ID)?;
            t.id = Some((id, sg));
            break;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if t.limit != 0 && t.by.is_none() {
        return Err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into());
    }
    if !xadd && t.by.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    if !crate::persistence::aof::LOADED.load(std::sync::atomic::Ordering::Acquire) {
        // mustObeyClient: the AOF's trims were made exact when written (see
        // `propagate_trim`); no limit, whatever it says.
        t.limit = 0;
    } else if limit_given {
        if !t.approx {
            return Err("ERR syntax error, LIMIT cannot be used without the special ~ option".into());
        }
    } else if t.approx {
        let l = 100i64.saturating_mul(limits::stream_node_max_entries() as i64);
        t.limit = if l <= 0 {
            10000
        } else if l > 1_000_000 {
            1_000_000
        } else {
            l
        };
    } else {
        t.limit = 0;
    }
    t.idpos = i;
    Ok(t)
}

fn xadd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let t = match parse_add_trim(&args, true) {
        Ok(t) => t,
        Err(e) => return out.error(&e),
    };
    let field_pos = t.idpos + 1;
    let argc = args.len();
    if argc < field_pos + 2 || (argc - field_pos) % 2 == 1 {
        return out.error("ERR wrong number of arguments for 'xadd' command");
    }
    if let Some((id, true)) = t.id {
        if id.is_zero() {
            return out.error("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let key = args.get(1);
    let now = ctx.now;
    let found = match write_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(e) => e.is_some(),
    };
    let created = !found;
    if created {
        if t.nomkstream {
            return out.null();
        }
        ctx.db().set(key, Value::Stream(Box::default()), 0, now);
    }
    let fv: Vec<&[u8]> = (field_pos..argc).map(|i| args.get(i)).collect();
    let mut e = match write_stream(ctx, key) {
        Ok(Some(e)) => e,
        _ => return out.error(err::SHARD_LOST),
    };
    let r = {
        let s = match e.val_unsignalled() {
            Value::Stream(s) => s,
            _ => unreachable!(),
        };
        if s.last_id == StreamId::MAX {
            Err("ERR The stream has exhausted the last possible ID, unable to add more items")
        } else {
            match s.append(&fv, t.id, now) {
                Ok(id) => Ok(id),
                Err(AddError::TooSmall) => Err("ERR The ID specified in XADD is equal or smaller than the target stream top item"),
                Err(AddError::TooLarge) => Err("ERR Elements are too large to be stored"),
            }
        }
    };
    let id = match r {
        Ok(id) => id,
        Err(m) => return out.error(m),
    };
    put_id(out, id);
    // A new key was signalled (and counted) when it was added.
    let s = stream_of(&mut e, !created);
    let trimmed = match t.by {
        Some(by) => s.trim(by, t.approx, t.limit),
        None => 0,
    };
    if crate::runtime::propagate::on() && (!matches!(t.id, Some((_, true))) || t.approx) {
        let mut argv: Vec<Vec<u8>> = (0..argc).map(|i| args.get(i).to_vec()).collect();
        // The ID it generated (XADD's rewriteClientCommandArgument).
        argv[t.idpos] = id.to_bytes();
        propagate_trim(&t, s, &mut argv);
        crate::runtime::propagate::also(args.get(0).as_ptr(), argv);
    }
    drop(e);
    ctx.notify(NOTIFY_STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(NOTIFY_STREAM, "xtrim", key);
    }
}

fn xtrim(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let t = match parse_add_trim(&args, false) {
        Ok(t) => t,
        Err(e) => return out.error(&e),
    };
    let key = args.get(1);
    let mut e = match write_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return out.int(0),
        Ok(Some(e)) => e,
    };
    let by = t.by.expect("XTRIM has a strategy");
    let deleted = {
        let s = stream_of(&mut e, false);
        let n = s.trim(by, t.approx, t.limit);
        if crate::runtime::propagate::on() && t.approx {
            let mut argv: Vec<Vec<u8>> = (0..args.len()).map(|i| args.get(i).to_vec()).collect();
            propagate_trim(&t, s, &mut argv);
            crate::runtime::propagate::also(args.get(0).as_ptr(), argv);
        }
        n
    };
    if deleted > 0 {
        e.mark_modified();
        drop(e);
        add_dirty(ctx, deleted as u64 - 1);
        ctx.notify(NOTIFY_STREAM, "xtrim", key);
    }
    out.int(deleted);
}

// ---------------------------------------------------------------- XLEN XRANGE XDEL XSETID

fn xlen(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match read_stream(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) => out.int(0),
        Ok(Some(s)) => out.int(s.length as i64),
    }
}

fn xrange(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    xrange_generic(ctx, args, out, false)
}

fn xrevrange(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    xrange_generic(ctx, args, out, true)
}

fn xrange_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, rev: bool) {
    let (sa, ea) = if rev { (args.get(3), args.get(2)) } else { (args.get(2), args.get(3)) };
    let (start, end) = match parse_range_bounds(sa, ea) {
        Ok(x) => x,
        Err(e) => return out.error(e),
    };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        let additional = args.len() - j - 1;
        if cstr(args.get(j)).eq_ignore_ascii_case(b"count") && additional >= 1 {
            count = match parse_ll(args.get(j + 1), None) {
                Ok(v) => v.max(0),
                Err(e) => return out.error(&e),
            };
            j += 1;
        } else {
            return out.error(err::SYNTAX);
        }
        j += 1;
    }
    match read_stream(ctx, args.get(1)) {
        Err(()) => out.error(err::WRONGTYPE),
        Ok(None) => out.array_len(0),
        Ok(Some(_)) if count == 0 => out.null_array(),
        Ok(Some(s)) => {
            let c = if count == -1 { 0 } else { count as usize };
            reply_range(out, s, start, end, c, rev);
        }
    }
}

fn xdel(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let mut e = match write_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return out.int(0),
        Ok(Some(e)) => e,
    };
    let mut ids = Vec::with_capacity(args.len() - 2);
    for j in 2..args.len() {
        match parse_strict(args.get(j), 0) {
            Ok(id) => ids.push(id),
            Err(m) => return out.error(m),
        }
    }
    let deleted = {
        let s = stream_of(&mut e, false);
        let mut deleted = 0;
        let mut first_entry = false;
        for id in ids {
            if s.delete(id) {
                if id == s.first_id {
                    first_entry = true;
                }
                if id > s.max_deleted_entry_id {
                    s.max_deleted_entry_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if s.length == 0 {
                s.first_id = StreamId::MIN;
            } else if first_entry {
                s.first_id = s.edge_id(true).unwrap_or(StreamId::MAX);
            }
        }
        deleted
    };
    if deleted > 0 {
        e.mark_modified();
        drop(e);
        add_dirty(ctx, deleted - 1);
        ctx.notify(NOTIFY_STREAM, "xdel", key);
    }
    out.int(deleted as i64);
}

fn xsetid(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let id = match parse_strict(args.get(2), 0) {
        Ok(x) => x,
        Err(m) => return out.error(m),
    };
    let mut max_xdel = StreamId::MIN;
    let mut entries_added: i64 = -1;
    let mut i = 3;
    while i < args.len() {
        let moreargs = args.len() - 1 - i;
        let opt = args.get(i);
        if opt_is(opt, "entriesadded") && moreargs > 0 {
            match parse_ll(args.get(i + 1), None) {
                Err(e) => return out.error(&e),
                Ok(v) if v < 0 => return out.error("ERR entries_added must be positive"),
                Ok(v) => entries_added = v,
            }
            i += 2;
        } else if opt_is(opt, "maxdeletedid") && moreargs > 0 {
            match parse_strict(args.get(i + 1), 0) {
                Err(m) => return out.error(m),
                Ok(v) if id < v => return out.error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"),
                Ok(v) => max_xdel = v,
            }
            i += 2;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    let key = args.get(1);
    let mut e = match write_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return out.error(err::NO_SUCH_KEY),
        Ok(Some(e)) => e,
    };
    {
        let s = stream_of(&mut e, false);
        if s.length > 0 {
            if id < s.last_valid_id() {
                return out.error("ERR The ID specified in XSETID is smaller than the target stream top item");
            }
            if entries_added != -1 && s.length > entries_added as u64 {
                return out.error("ERR The entries_added specified in XSETID is smaller than the target stream length");
            }
        }
        s.last_id = id;
        if entries_added != -1 {
            s.entries_added = entries_added as u64;
        }
        if !max_xdel.is_zero() {
            s.max_deleted_entry_id = max_xdel;
        }
    }
    drop(e);
    add_dirty(ctx, 1);
    out.ok();
    ctx.notify(NOTIFY_STREAM, "xsetid", key);
}

// ---------------------------------------------------------------- XREAD / XREADGROUP

/// XREAD / XREADGROUP options.
#[derive(Clone, Debug)]
pub struct XreadOpts {
    /// BLOCK's milliseconds (0 = forever), None without BLOCK.
    block: Option<i64>,
    count: usize,
    streams_arg: usize,
    n: usize,
    /// Argument positions of the group and consumer names.
    group: Option<(usize, usize)>,
    noack: bool,
}

/// XREADGROUP's count when blocked without COUNT (XREAD_BLOCKED_DEFAULT_COUNT).
const BLOCKED_DEFAULT_COUNT: usize = 1000;

/// xreadCommand's option parsing, errors in its order.
fn parse_xread(args: &Args) -> Result<XreadOpts, String> {
    let xreadgroup = args.get(0).len() == 10;
    let mut o = XreadOpts {
        block: None,
        count: 0,
        streams_arg: 0,
        n: 0,
        group: None,
        noack: false,
    };
    let argc = args.len();
    let mut i = 1;
    while i < argc {
        let moreargs = argc - i - 1;
        let a = args.get(i);
        if opt_is(a, "block") && moreargs > 0 {
            if crate::scripting::in_script() {
                let mut m = b"ERR ".to_vec();
                m.extend_from_slice(cstr(args.get(0)));
                return Err(String::from_utf8_lossy(&m).into_owned() + " command is not allowed with BLOCK option from scripts");
            }
            i += 1;
            let t = parse_ll(args.get(i), Some("timeout is not an integer or out of range"))?;
            if t < 0 {
                return Err("ERR timeout is negative".into());
            }
            o.block = Some(t);
        } else if opt_is(a, "count") && moreargs > 0 {
            i += 1;
            o.count = parse_ll(args.get(i), None)?.max(0) as usize;
        } else if opt_is(a, "streams") && moreargs > 0 {
            o.streams_arg = i + 1;
            let c = argc - o.streams_arg;
            if !c.is_multiple_of(2) {
                return Err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.".into());
            }
            o.n = c / 2;
            break;
        } else if opt_is(a, "group") && moreargs >= 2 {
            if !xreadgroup {
                return Err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            o.group = Some((i + 1, i + 2));
            i += 2;
        } else if opt_is(a, "noack") {
            if !xreadgroup {
                return Err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            o.noack = true;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if o.streams_arg == 0 {
        return Err(err::SYNTAX.into());
    }
    if xreadgroup && o.group.is_none() {
        return Err("ERR Missing GROUP option for XREADGROUP".into());
    }
    Ok(o)
}

/// What a stream is read from: entries after an ID, or the group's new ones (`>`).
#[derive(Clone, Copy, Debug)]
enum Want {
    After(StreamId),
    New,
}

/// One key's checks (type, group, ID), as xreadCommand's second loop.
fn check_one(ctx: &mut Ctx, args: &Args, o: &XreadOpts, i: usize) -> Result<Want, Vec<u8>> {
    let key = args.get(o.streams_arg + i);
    let idarg = args.get(o.streams_arg + o.n + i);
    let s = match read_stream(ctx, key) {
        Err(()) => return Err(err::WRONGTYPE.as_bytes().to_vec()),
        Ok(s) => s,
    };
    if let Some((g, _)) = o.group {
        let gname = args.get(g);
        if s.is_none_or(|s| !s.groups.contains_key(gname)) {
            let mut m = b"NOGROUP No such key '".to_vec();
            m.extend_from_slice(cstr(key));
            m.extend_from_slice(b"' or consumer group '");
            m.extend_from_slice(cstr(gname));
            m.extend_from_slice(b"' in XREADGROUP with GROUP option");
            return Err(m);
        }
    }
    let idc = cstr(idarg);
    if idc == b"$" {
        if o.group.is_some() {
            return Err(b"ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".to_vec());
        }
        return Ok(Want::After(s.map(|s| s.last_id).unwrap_or(StreamId::MIN)));
    }
    if idc == b">" {
        if o.group.is_none() {
            return Err(b"ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.".to_vec());
        }
        return Ok(Want::New);
    }
    parse_strict(idarg, 0).map(Want::After).map_err(|m| m.as_bytes().to_vec())
}

/// Serves one stream synchronously if it has something (xreadCommand's third
/// loop): writes `key, entries` (RESP2: as a 2-array) and returns true.
fn serve_one(ctx: &mut Ctx, args: &Args, o: &XreadOpts, i: usize, want: Want, out: &mut Reply) -> bool {
    let key = args.get(o.streams_arg + i);
    let now = ctx.now;
    let Ok(Some(s)) = read_stream(ctx, key) else { return false };
    let (gt, history) = match (o.group, want) {
        (Some(_), Want::After(id)) => (id, true),
        (Some((g, _)), Want::New) => {
            if s.length == 0 {
                return false;
            }
            let last = s.groups.get(args.get(g)).map(|g| g.last_id).unwrap_or(StreamId::MAX);
            if s.last_valid_id() <= last {
                return false;
            }
            (last, false)
        }
        (None, Want::After(id)) => {
            if s.length == 0 || s.last_valid_id() <= id {
                return false;
            }
            (id, false)
        }
        (None, Want::New) => return false,
    };
    if !out.resp3() {
        out.array_len(2);
    }
    out.bulk(key);
    let start = gt.incr().unwrap_or(StreamId::MIN);
    match o.group {
        None => {
            reply_range(out, s, start, StreamId::MAX, o.count, false);
        }
        Some((g, c)) => {
            let (gname, cname) = (args.get(g), args.get(c));
            let created = read_group(ctx, key, gname, cname, start, o.count, o.noack, history, now, out, args.get(0).as_ptr());
            add_dirty(ctx, 1 + created as u64);
            if created {
                ctx.notify(NOTIFY_STREAM, "xgroup-createconsumer", key);
            }
        }
    }
    true
}

/// streamReplyWithRange with a group (and its history form): the entries
/// array, the group's and consumer's PEL updated. True if the consumer was created.
#[allow(clippy::too_many_arguments)]
fn read_group(
    ctx: &mut Ctx,
    key: &[u8],
    gname: &[u8],
    cname: &[u8],
    start: StreamId,
    count: usize,
    noack: bool,
    history: bool,
    now: u64,
    out: &mut Reply,
    origin: *const u8,
) -> bool {
    let prop = crate::runtime::propagate::on();
    let Ok(Some(mut e)) = write_stream(ctx, key) else {
        out.array_len(0);
        return false;
    };
    let s = stream_of(&mut e, false);
    let Some(mut g) = s.groups.remove(gname) else {
        out.array_len(0);
        return false;
    };
    let created = !g.consumers.contains_key(cname);
    let consumer = g.consumers.entry(cname.into()).or_insert_with(|| crate::keyspace::types::stream::Consumer {
        seen_time: now,
        pel: Default::default(),
    });
    consumer.seen_time = now;
    if created && noack && prop {
        // streamPropagateConsumerCreation: no XCLAIM will create it.
        crate::runtime::propagate::also(
            origin,
            vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), gname.to_vec(), cname.to_vec()],
        );
    }
    let mut body = Reply::new(out.resp3());
    let mut n = 0usize;
    if history {
        let ids: Vec<StreamId> = consumer.pel.range(start..).take(if count == 0 { usize::MAX } else { count }).copied().collect();
        for id in ids {
            if reply_one(&mut body, s, id) {
                if let Some(nack) = g.pel.get_mut(&id) {
                    nack.delivery_time = now;
                    nack.delivery_count = nack.delivery_count.wrapping_add(1);
                }
            } else {
                body.array_len(2);
                put_id(&mut body, id);
                body.null_array();
            }
            n += 1;
        }
    } else {
        let mut ids = Vec::new();
        s.range(start, StreamId::MAX, false, |id, f| {
            put_entry(&mut body, id, f);
            ids.push(id);
            count == 0 || ids.len() < count
        });
        n = ids.len();
        let last_before = g.last_id;
        for id in ids {
            s.advance_group(&mut g, id);
            if !noack {
                if let Some(nack) = g.pel.get_mut(&id) {
                    nack.delivery_time = now;
                    nack.delivery_count = 1;
                    g.reassign(id, cname);
                } else {
                    g.pel.insert(
                        id,
                        Nack {
                            delivery_time: now,
                            delivery_count: 1,
                            consumer: cname.into(),
                        },
                    );
                    if let Some(c) = g.consumers.get_mut(cname) {
                        c.pel.insert(id);
                    }
                }
                if prop {
                    // Each delivery as streamPropagateXCLAIM (LASTID: the group's, now).
                    crate::runtime::propagate::also(origin, xclaim_argv(key, gname, g.last_id, id, &g.pel[&id]));
                }
            }
        }
        if noack && prop && g.last_id != last_before {
            crate::runtime::propagate::also(origin, setid_argv(key, gname, &g));
        }
    }
    s.groups.insert(gname.into(), g);
    out.array_len(n);
    out.raw(&body.buf);
    created
}

/// XREAD and XREADGROUP (a [`super::table::BlockFn`]): see the module doc.
fn xread(ctx: &mut Ctx, args: Args, only: Option<usize>, out: &mut Reply) -> BlockResult {
    let o = match parse_xread(&args) {
        Ok(o) => o,
        Err(e) => {
            if only.is_none() {
                out.error(&e);
                return BlockResult::Done;
            }
            return BlockResult::Wait { deadline_ms: 0 };
        }
    };
    // XREADGROUP propagates only what its reads did, as XCLAIM / XGROUP
    // (preventCommandPropagation; read_group adds them).
    if o.group.is_some() && crate::runtime::propagate::on() {
        crate::runtime::propagate::prevent(args.get(0).as_ptr());
    }
    if let Some(pos) = only {
        return serve_blocked(ctx, &args, &o, pos, out);
    }
    let mut wants = Vec::with_capacity(o.n);
    for i in 0..o.n {
        match check_one(ctx, &args, &o, i) {
            Ok(w) => wants.push(w),
            Err(e) => {
                out.error_bytes(&e);
                return BlockResult::Done;
            }
        }
    }
    let mut body = Reply::new(out.resp3());
    let mut n = 0;
    for (i, w) in wants.iter().enumerate() {
        if serve_one(ctx, &args, &o, i, *w, &mut body) {
            n += 1;
        }
    }
    finish(ctx.now, &o, n, body, out)
}

/// The reply once every stream was tried: the served ones, or block, or null.
fn finish(now: u64, o: &XreadOpts, n: usize, body: Reply, out: &mut Reply) -> BlockResult {
    if n > 0 {
        if out.resp3() {
            out.map_len(n);
        } else {
            out.array_len(n);
        }
        out.raw(&body.buf);
        return BlockResult::Done;
    }
    if let Some(ms) = o.block {
        let deadline = if ms == 0 { 0 } else { now.saturating_add(ms as u64) };
        return BlockResult::Wait { deadline_ms: deadline };
    }
    out.null_array();
    BlockResult::Done
}

/// serveClientsBlockedOnStreamKey for one waiter on the key at `pos`.
fn serve_blocked(ctx: &mut Ctx, args: &Args, o: &XreadOpts, pos: usize, out: &mut Reply) -> BlockResult {
    const WAIT: BlockResult = BlockResult::Wait { deadline_ms: 0 };
    let key = args.get(pos);
    let i = pos - o.streams_arg;
    let now = ctx.now;
    let s = match ctx.db().peek(key, now).map(|e| &e.val) {
        Some(Value::Stream(s)) => s,
        _ => {
            if o.group.is_some() {
                out.error("UNBLOCKED the stream key no longer exists");
                return BlockResult::Done;
            }
            return WAIT;
        }
    };
    let gt = match o.group {
        Some((g, _)) => match s.groups.get(args.get(g)) {
            Some(g) => g.last_id,
            None => {
                out.error("NOGROUP the consumer group this client was blocked on no longer exists");
                return BlockResult::Done;
            }
        },
        None => match parse_strict(args.get(o.streams_arg + o.n + i), 0) {
            Ok(id) => id,
            Err(_) => return WAIT,
        },
    };
    if s.last_id <= gt {
        return WAIT;
    }
    let start = gt.incr().unwrap_or(StreamId::MIN);
    let count = if o.count == 0 { BLOCKED_DEFAULT_COUNT } else { o.count };
    if out.resp3() {
        out.map_len(1);
    } else {
        out.array_len(1);
        out.array_len(2);
    }
    out.bulk(key);
    match o.group {
        None => {
            reply_range(out, s, start, StreamId::MAX, count, false);
        }
        Some((g, c)) => {
            let created = read_group(ctx, key, args.get(g), args.get(c), start, count, o.noack, false, now, out, args.get(0).as_ptr());
            add_dirty(ctx, 1 + created as u64);
            if created {
                ctx.notify(NOTIFY_STREAM, "xgroup-createconsumer", key);
            }
        }
    }
    BlockResult::Done
}

/// The waiter's arguments with every `$` among the keys at `keys` replaced
/// by the stream's current last ID (what Redis resolves when it blocks).
pub fn pin_ids(ctx: &mut Ctx, data: &[u8], spans: &[(usize, usize)], keys: &[usize]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let args = Args::new(data, spans);
    let Ok(o) = parse_xread(&args) else { return (data.to_vec(), spans.to_vec()) };
    let now = ctx.now;
    let mut nd = Vec::with_capacity(data.len() + 32);
    let mut ns = Vec::with_capacity(spans.len());
    for p in 0..args.len() {
        let a = args.get(p);
        let st = nd.len();
        let is_id = p >= o.streams_arg + o.n;
        let key_pos = p.wrapping_sub(o.n);
        if is_id && cstr(a) == b"$" && keys.contains(&key_pos) {
            let last = match ctx.db().peek(args.get(key_pos), now).map(|e| &e.val) {
                Some(Value::Stream(s)) => s.last_id,
                _ => StreamId::MIN,
            };
            last.write(&mut nd);
        } else {
            nd.extend_from_slice(a);
        }
        ns.push((st, nd.len()));
    }
    (nd, ns)
}

/// XREAD / XREADGROUP over keys on several shards: parse, check every key
/// in order (the first error wins, nothing served), serve each stream on
/// its shard, join the replies. Ok(Some(deadline)) = nothing served and
/// BLOCK given: the caller registers the waiters (nothing written yet).
pub async fn xread_cross(tx: &mut Tx<'_>, data: &[u8], spans: &[(usize, usize)], resp3: bool, out: &mut Reply) -> Result<Option<u64>, HopLost> {
    let args = Args::new(data, spans);
    let o = match parse_xread(&args) {
        Ok(o) => o,
        Err(e) => {
            out.error(&e);
            return Ok(None);
        }
    };
    let (d, sp) = (data.to_vec(), spans.to_vec());
    let mut wants = Vec::with_capacity(o.n);
    for i in 0..o.n {
        let shard = tx.shard_of_arg(o.streams_arg + i);
        let (d, sp, o2) = (d.clone(), sp.clone(), o.clone());
        let r = tx.hop(shard, move |ctx: &mut Ctx| check_one(ctx, &Args::new(&d, &sp), &o2, i)).await?;
        match r {
            Ok(w) => wants.push(w),
            Err(e) => {
                out.error_bytes(&e);
                return Ok(None);
            }
        }
    }
    let mut body = Reply::new(resp3);
    let mut n = 0;
    for (i, w) in wants.into_iter().enumerate() {
        let shard = tx.shard_of_arg(o.streams_arg + i);
        let (d, sp, o2) = (d.clone(), sp.clone(), o.clone());
        let r = tx
            .hop(shard, move |ctx: &mut Ctx| {
                let mut b = Reply::new(resp3);
                serve_one(ctx, &Args::new(&d, &sp), &o2, i, w, &mut b).then_some(b.buf)
            })
            .await?;
        if let Some(b) = r {
            body.raw(&b);
            n += 1;
        }
    }
    match finish(tx.now, &o, n, body, out) {
        BlockResult::Wait { deadline_ms } => Ok(Some(deadline_ms)),
        BlockResult::Done => Ok(None),
    }
}

// ---------------------------------------------------------------- XGROUP

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

fn xgroup_help(_c: &mut Client, args: Args, out: &mut Reply) {
    help(&args, XGROUP_HELP, out)
}

fn nogroup_for_key(gname: &[u8], key: &[u8]) -> Vec<u8> {
    let mut m = b"NOGROUP No such consumer group '".to_vec();
    m.extend_from_slice(cstr(gname));
    m.extend_from_slice(b"' for key name '");
    m.extend_from_slice(cstr(key));
    m.extend_from_slice(b"'");
    m
}

fn xgroup(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let opt = cstr(args.get(1)).to_ascii_lowercase();
    let argc = args.len();
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let create = opt == b"create";
    let setid = opt == b"setid";
    let mut i = 5;
    while i < argc {
        if create && opt_is(args.get(i), "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && opt_is(args.get(i), "entriesread") && i + 1 < argc {
            match parse_ll(args.get(i + 1), None) {
                Err(e) => return out.error(&e),
                Ok(v) if v < 0 && v != INVALID_ENTRIES_READ => return out.error("ERR value for ENTRIESREAD must be positive or -1"),
                Ok(v) => entries_read = v,
            }
            i += 2;
        } else {
            return sub_syntax(&args, out);
        }
    }
    let key = args.get(2);
    let gname = args.get(3);
    let now = ctx.now;
    let (exists, has_group, last_id) = match write_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => (false, false, StreamId::MIN),
        Ok(Some(mut e)) => {
            let s = stream_of(&mut e, false);
            (true, s.groups.contains_key(gname), s.last_id)
        }
    };
    if !mkstream {
        if !exists {
            return out.error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        }
        if !has_group && matches!(&opt[..], b"setid" | b"createconsumer" | b"delconsumer") {
            return out.error_bytes(&nogroup_for_key(gname, key));
        }
    }
    match &opt[..] {
        b"create" if (5..=8).contains(&argc) => {
            let id = if cstr(args.get(4)) == b"$" {
                last_id
            } else {
                match parse_strict(args.get(4), 0) {
                    Ok(id) => id,
                    Err(m) => return out.error(m),
                }
            };
            if !exists {
                ctx.db().set(key, Value::Stream(Box::default()), 0, now);
            }
            let Ok(Some(mut e)) = write_stream(ctx, key) else {
                return out.error(err::SHARD_LOST);
            };
            let s = stream_of(&mut e, false);
            if s.groups.contains_key(gname) {
                drop(e);
                return out.error("BUSYGROUP Consumer Group name already exists");
            }
            s.groups.insert(gname.into(), Group::new(id, entries_read));
            drop(e);
            if exists {
                // MKSTREAM's new key already counted as the change.
                add_dirty(ctx, 1);
            }
            out.ok();
            ctx.notify(NOTIFY_STREAM, "xgroup-create", key);
        }
        b"setid" if argc == 5 || argc == 7 => {
            let id = if cstr(args.get(4)) == b"$" {
                last_id
            } else {
                match parse_id(args.get(4), 0) {
                    Ok(id) => id,
                    Err(m) => return out.error(m),
                }
            };
            let Ok(Some(mut e)) = write_stream(ctx, key) else {
                return out.error(err::SHARD_LOST);
            };
            let s = stream_of(&mut e, false);
            if let Some(g) = s.groups.get_mut(gname) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            drop(e);
            add_dirty(ctx, 1);
            out.ok();
            ctx.notify(NOTIFY_STREAM, "xgroup-setid", key);
        }
        b"destroy" if argc == 4 => {
            if !has_group {
                return out.int(0);
            }
            let Ok(Some(mut e)) = write_stream(ctx, key) else {
                return out.error(err::SHARD_LOST);
            };
            stream_of(&mut e, false).groups.remove(gname);
            drop(e);
            add_dirty(ctx, 1);
            out.int(1);
            ctx.notify(NOTIFY_STREAM, "xgroup-destroy", key);
            // Clients blocked in XREADGROUP on it get -NOGROUP.
            ctx.db().hook.signal_ready(key);
        }
        b"createconsumer" if argc == 5 => {
            let cname = args.get(4);
            let Ok(Some(mut e)) = write_stream(ctx, key) else {
                return out.error(err::SHARD_LOST);
            };
            let s = stream_of(&mut e, false);
            let created = match s.groups.get_mut(gname) {
                Some(g) if !g.consumers.contains_key(cname) => {
                    g.consumers.insert(
                        cname.into(),
                        crate::keyspace::types::stream::Consumer {
                            seen_time: now,
                            pel: Default::default(),
                        },
                    );
                    true
                }
                _ => false,
            };
            drop(e);
            if created {
                add_dirty(ctx, 1);
                ctx.notify(NOTIFY_STREAM, "xgroup-createconsumer", key);
            }
            out.int(created as i64);
        }
        b"delconsumer" if argc == 5 => {
            let cname = args.get(4);
            let Ok(Some(mut e)) = write_stream(ctx, key) else {
                return out.error(err::SHARD_LOST);
            };
            let s = stream_of(&mut e, false);
            let pending = s.groups.get_mut(gname).and_then(|g| g.del_consumer(cname));
            drop(e);
            if pending.is_some() {
                add_dirty(ctx, 1);
                ctx.notify(NOTIFY_STREAM, "xgroup-delconsumer", key);
            }
            out.int(pending.unwrap_or(0) as i64);
        }
        _ => sub_syntax(&args, out),
    }
}

// ---------------------------------------------------------------- XACK XPENDING

fn xack(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let has_group = match read_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => false,
        Ok(Some(s)) => s.groups.contains_key(args.get(2)),
    };
    if !has_group {
        return out.int(0);
    }
    let mut ids = Vec::with_capacity(args.len() - 3);
    for j in 3..args.len() {
        match parse_strict(args.get(j), 0) {
            Ok(id) => ids.push(id),
            Err(m) => return out.error(m),
        }
    }
    let Ok(Some(mut e)) = write_stream(ctx, key) else { return out.int(0) };
    let s = stream_of(&mut e, false);
    let mut acked = 0;
    if let Some(g) = s.groups.get_mut(args.get(2)) {
        for id in &ids {
            if g.ack(id) {
                acked += 1;
            }
        }
    }
    drop(e);
    add_dirty(ctx, acked);
    out.int(acked as i64);
}

fn nogroup_key_or_group(key: &[u8], gname: &[u8]) -> Vec<u8> {
    let mut m = b"NOGROUP No such key '".to_vec();
    m.extend_from_slice(cstr(key));
    m.extend_from_slice(b"' or consumer group '");
    m.extend_from_slice(cstr(gname));
    m.extend_from_slice(b"'");
    m
}

fn xpending(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let argc = args.len();
    let justinfo = argc == 3;
    let (key, gname) = (args.get(1), args.get(2));
    if argc != 3 && !(6..=9).contains(&argc) {
        return out.error(err::SYNTAX);
    }
    let mut minidle = 0i64;
    let mut range = (StreamId::MIN, StreamId::MAX);
    let mut count = 0i64;
    let mut consumer: Option<&[u8]> = None;
    if argc >= 6 {
        let mut startidx = 3;
        if opt_is(args.get(3), "idle") {
            minidle = match parse_ll(args.get(4), None) {
                Ok(v) => v,
                Err(e) => return out.error(&e),
            };
            if argc < 8 {
                return out.error(err::SYNTAX);
            }
            startidx += 2;
        }
        count = match parse_ll(args.get(startidx + 2), None) {
            Ok(v) => v.max(0),
            Err(e) => return out.error(&e),
        };
        range = match parse_range_bounds(args.get(startidx), args.get(startidx + 1)) {
            Ok(r) => r,
            Err(m) => return out.error(m),
        };
        if startidx + 3 < argc {
            consumer = Some(args.get(startidx + 3));
        }
    }
    let now = ctx.now;
    let s = match read_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(s) => s,
    };
    let Some(g) = s.and_then(|s| s.groups.get(gname)) else {
        return out.error_bytes(&nogroup_key_or_group(key, gname));
    };
    if justinfo {
        out.array_len(4);
        out.int(g.pel.len() as i64);
        if g.pel.is_empty() {
            out.null();
            out.null();
            out.null_array();
        } else {
            put_id(out, *g.pel.keys().next().expect("non-empty"));
            put_id(out, *g.pel.keys().next_back().expect("non-empty"));
            let with: Vec<_> = g.consumers.iter().filter(|(_, c)| !c.pel.is_empty()).collect();
            out.array_len(with.len());
            for (name, c) in with {
                out.array_len(2);
                out.bulk(name);
                out.bulk_int(c.pel.len() as i64);
            }
        }
        return;
    }
    let ids: Box<dyn Iterator<Item = StreamId>> = match consumer {
        Some(cn) => match g.consumers.get(cn) {
            None => return out.array_len(0),
            Some(c) => Box::new(c.pel.range(range.0..).copied()),
        },
        None => Box::new(g.pel.range(range.0..).map(|(k, _)| *k)),
    };
    let mut body = Reply::new(out.resp3());
    let mut n = 0;
    if range.0 <= range.1 {
        for id in ids {
            if count == 0 || id > range.1 {
                break;
            }
            let Some(nack) = g.pel.get(&id) else { continue };
            let idle = (now as i64).wrapping_sub(nack.delivery_time as i64);
            if minidle != 0 && idle < minidle {
                continue;
            }
            n += 1;
            count -= 1;
            body.array_len(4);
            put_id(&mut body, id);
            body.bulk(&nack.consumer);
            body.int(idle.max(0));
            body.int(nack.delivery_count as i64);
        }
    }
    out.array_len(n);
    out.raw(&body.buf);
}

// ---------------------------------------------------------------- XCLAIM XAUTOCLAIM

/// The command Redis propagates for a PEL change (streamPropagateXCLAIM):
/// `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID last`.
pub fn xclaim_argv(key: &[u8], group: &[u8], last_id: StreamId, id: StreamId, nack: &Nack) -> Vec<Vec<u8>> {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        nack.consumer.to_vec(),
        b"0".to_vec(),
        id.to_bytes(),
        b"TIME".to_vec(),
        nack.delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        nack.delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        last_id.to_bytes(),
    ]
}

/// streamPropagateGroupID: `XGROUP SETID key group last ENTRIESREAD n`.
pub fn setid_argv(key: &[u8], group: &[u8], g: &Group) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group.to_vec(),
        g.last_id.to_bytes(),
        b"ENTRIESREAD".to_vec(),
        g.entries_read.to_string().into_bytes(),
    ]
}

fn ensure_consumer(g: &mut Group, name: &[u8], now: u64) -> bool {
    match g.consumers.get_mut(name) {
        Some(c) => {
            c.seen_time = now;
            false
        }
        None => {
            g.consumers.insert(
                name.into(),
                crate::keyspace::types::stream::Consumer {
                    seen_time: now,
                    pel: Default::default(),
                },
            );
            true
        }
    }
}

fn xclaim(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let (key, gname, cname) = (args.get(1), args.get(2), args.get(3));
    let has_group = match read_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => false,
        Ok(Some(s)) => s.groups.contains_key(gname),
    };
    if !has_group {
        return out.error_bytes(&nogroup_key_or_group(key, gname));
    }
    let minidle = match parse_ll(args.get(4), Some("Invalid min-idle-time argument for XCLAIM")) {
        Ok(v) => v.max(0),
        Err(e) => return out.error(&e),
    };
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match parse_id_full(args.get(j), 0, true, None) {
            Some(id) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let now = ctx.now as i64;
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < args.len() {
        let moreargs = args.len() - 1 - j;
        let opt = args.get(j);
        if opt_is(opt, "force") {
            force = true;
        } else if opt_is(opt, "justid") {
            justid = true;
        } else if opt_is(opt, "idle") && moreargs > 0 {
            j += 1;
            match parse_ll(args.get(j), Some("Invalid IDLE option argument for XCLAIM")) {
                Ok(v) => deliverytime = now.wrapping_sub(v),
                Err(e) => return out.error(&e),
            }
        } else if opt_is(opt, "time") && moreargs > 0 {
            j += 1;
            match parse_ll(args.get(j), Some("Invalid TIME option argument for XCLAIM")) {
                Ok(v) => deliverytime = v,
                Err(e) => return out.error(&e),
            }
        } else if opt_is(opt, "retrycount") && moreargs > 0 {
            j += 1;
            match parse_ll(args.get(j), Some("Invalid RETRYCOUNT option argument for XCLAIM")) {
                Ok(v) => retrycount = v,
                Err(e) => return out.error(&e),
            }
        } else if opt_is(opt, "lastid") && moreargs > 0 {
            j += 1;
            match parse_strict(args.get(j), 0) {
                Ok(v) => last_id = v,
                Err(m) => return out.error(m),
            }
        } else {
            let mut m = b"ERR Unrecognized XCLAIM option '".to_vec();
            m.extend_from_slice(cstr(opt));
            m.push(b'\'');
            return out.error_bytes(&m);
        }
        j += 1;
    }
    if deliverytime != -1 {
        if deliverytime < 0 || deliverytime > now {
            deliverytime = now;
        }
    } else {
        deliverytime = now;
    }
    let Ok(Some(mut e)) = write_stream(ctx, key) else { return out.array_len(0) };
    let s = stream_of(&mut e, false);
    let Some(mut g) = s.groups.remove(gname) else { return out.array_len(0) };
    let mut dirty = 0u64;
    let lastid_changed = last_id > g.last_id;
    if lastid_changed {
        g.last_id = last_id;
    }
    let mut created = false;
    let mut have_consumer = false;
    let mut body = Reply::new(out.resp3());
    let mut n = 0;
    let prop = crate::runtime::propagate::on();
    let origin = args.get(0).as_ptr();
    if prop {
        crate::runtime::propagate::prevent(origin);
    }
    let mut claims = 0usize;
    for id in ids {
        let in_pel = g.pel.contains_key(&id);
        if !s.exists(id) {
            if in_pel {
                if prop {
                    // The NACK's deletion, as the XCLAIM that makes it (streamPropagateXCLAIM).
                    crate::runtime::propagate::also(origin, xclaim_argv(key, gname, g.last_id, id, &g.pel[&id]));
                }
                claims += 1;
                g.ack(&id);
                dirty += 1;
            }
            continue;
        }
        let mut fresh = false;
        if force && !in_pel {
            fresh = true;
        } else if !in_pel {
            continue;
        }
        if !fresh && minidle != 0 {
            let idle = now.wrapping_sub(g.pel[&id].delivery_time as i64);
            if idle < minidle {
                continue;
            }
        }
        if !have_consumer {
            created = ensure_consumer(&mut g, cname, now as u64);
            have_consumer = true;
        }
        if fresh {
            g.pel.insert(
                id,
                Nack {
                    delivery_time: deliverytime as u64,
                    delivery_count: 1,
                    consumer: cname.into(),
                },
            );
            if let Some(c) = g.consumers.get_mut(cname) {
                c.pel.insert(id);
            }
        } else {
            g.reassign(id, cname);
        }
        let nack = g.pel.get_mut(&id).expect("in the PEL");
        nack.delivery_time = deliverytime as u64;
        if retrycount >= 0 {
            nack.delivery_count = retrycount as u64;
        } else if !justid {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        }
        if justid {
            put_id(&mut body, id);
        } else {
            reply_one(&mut body, s, id);
        }
        if prop {
            crate::runtime::propagate::also(origin, xclaim_argv(key, gname, g.last_id, id, &g.pel[&id]));
        }
        claims += 1;
        n += 1;
        dirty += 1;
    }
    if lastid_changed && claims == 0 {
        // Propagated as XGROUP SETID when no XCLAIM carried it.
        if prop {
            crate::runtime::propagate::also(origin, setid_argv(key, gname, &g));
        }
        dirty += 1;
    }
    s.groups.insert(gname.into(), g);
    drop(e);
    add_dirty(ctx, dirty + created as u64);
    if created {
        ctx.notify(NOTIFY_STREAM, "xgroup-createconsumer", key);
    }
    out.array_len(n);
    out.raw(&body.buf);
}

fn xautoclaim(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let (key, gname, cname) = (args.get(1), args.get(2), args.get(3));
    // Looked up first (the hit or miss counts), reported after the arguments.
    let found = match read_stream(ctx, key) {
        Err(()) => Err(()),
        Ok(None) => Ok(false),
        Ok(Some(s)) => Ok(s.groups.contains_key(gname)),
    };
    let minidle = match parse_ll(args.get(4), Some("Invalid min-idle-time argument for XAUTOCLAIM")) {
        Ok(v) => v.max(0),
        Err(e) => return out.error(&e),
    };
    let (mut start, sx) = match parse_interval(args.get(5), 0) {
        Ok(x) => x,
        Err(m) => return out.error(m),
    };
    if sx {
        match start.incr() {
            Some(s) => start = s,
            None => return out.error("ERR invalid start ID for the interval"),
        }
    }
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let moreargs = args.len() - 1 - j;
        let opt = args.get(j);
        if opt_is(opt, "count") && moreargs > 0 {
            let max = i64::MAX / 16;
            match string2ll(args.get(j + 1)) {
                Some(v) if (1..=max).contains(&v) => count = v,
                _ => return out.error("ERR COUNT must be > 0"),
            }
            j += 1;
        } else if opt_is(opt, "justid") {
            justid = true;
        } else {
            return out.error(err::SYNTAX);
        }
        j += 1;
    }
    match found {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(false) => return out.error_bytes(&nogroup_key_or_group(key, gname)),
        Ok(true) => {}
    }
    let now = ctx.now;
    let Ok(Some(mut e)) = write_stream(ctx, key) else { return out.array_len(0) };
    let s = stream_of(&mut e, false);
    let Some(mut g) = s.groups.remove(gname) else { return out.array_len(0) };
    let mut attempts = count.saturating_mul(10);
    let mut deleted = Vec::new();
    let mut body = Reply::new(out.resp3());
    let mut n = 0;
    let mut dirty = 0u64;
    let mut created = false;
    let mut have_consumer = false;
    let mut cursor = start;
    let mut next: Option<StreamId> = g.pel.range(cursor..).next().map(|(k, _)| *k);
    let prop = crate::runtime::propagate::on();
    let origin = args.get(0).as_ptr();
    if prop {
        crate::runtime::propagate::prevent(origin);
    }
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let Some(id) = next else { break };
        cursor = id;
        if !s.exists(id) {
            if prop {
                crate::runtime::propagate::also(origin, xclaim_argv(key, gname, g.last_id, id, &g.pel[&id]));
            }
            g.ack(&id);
            deleted.push(id);
            dirty += 1;
            count -= 1;
            next = g.pel.range(cursor..).next().map(|(k, _)| *k);
            continue;
        }
        next = cursor.incr().and_then(|c| g.pel.range(c..).next().map(|(k, _)| *k));
        if minidle != 0 {
            let idle = (now as i64).wrapping_sub(g.pel[&id].delivery_time as i64);
            if idle < minidle {
                continue;
            }
        }
        if !have_consumer {
            created = ensure_consumer(&mut g, cname, now);
            have_consumer = true;
        }
        g.reassign(id, cname);
        let nack = g.pel.get_mut(&id).expect("in the PEL");
        nack.delivery_time = now;
        if !justid {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        }
        if justid {
            put_id(&mut body, id);
        } else {
            reply_one(&mut body, s, id);
        }
        if prop {
            crate::runtime::propagate::also(origin, xclaim_argv(key, gname, g.last_id, id, &g.pel[&id]));
        }
        n += 1;
        count -= 1;
        dirty += 1;
    }
    // The cursor: the entry after the last one looked at (raxNext once more).
    let end = next.unwrap_or(StreamId::MIN);
    s.groups.insert(gname.into(), g);
    drop(e);
    add_dirty(ctx, dirty + created as u64);
    if created {
        ctx.notify(NOTIFY_STREAM, "xgroup-createconsumer", key);
    }
    out.array_len(3);
    put_id(out, end);
    out.array_len(n);
    out.raw(&body.buf);
    out.array_len(deleted.len());
    for id in deleted {
        put_id(out, id);
    }
}

// ---------------------------------------------------------------- XINFO

const XINFO_HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

fn xinfo_help(_c: &mut Client, args: Args, out: &mut Reply) {
    if args.len() != 2 {
        return sub_syntax(&args, out);
    }
    help(&args, XINFO_HELP, out)
}

fn put_lag(out: &mut Reply, s: &Stream, g: &Group) {
    match s.group_lag(g) {
        Some(v) => out.int(v),
        None => out.null(),
    }
}

fn put_entries_read(out: &mut Reply, g: &Group) {
    if g.entries_read != INVALID_ENTRIES_READ {
        out.int(g.entries_read);
    } else {
        out.null();
    }
}

fn xinfo(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(2);
    let now = ctx.now;
    let s = match read_stream(ctx, key) {
        Err(()) => return out.error(err::WRONGTYPE),
        Ok(None) => return out.error(err::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    let opt = cstr(args.get(1)).to_ascii_lowercase();
    match &opt[..] {
        b"consumers" if args.len() == 4 => {
            let Some(g) = s.groups.get(args.get(3)) else {
                return out.error_bytes(&nogroup_for_key(args.get(3), key));
            };
            out.array_len(g.consumers.len());
            for (name, c) in &g.consumers {
                out.map_len(3);
                out.bulk(b"name");
                out.bulk(name);
                out.bulk(b"pending");
                out.int(c.pel.len() as i64);
                out.bulk(b"idle");
                out.int((now as i64).wrapping_sub(c.seen_time as i64).max(0));
            }
        }
        b"groups" if args.len() == 3 => {
            out.array_len(s.groups.len());
            for (name, g) in &s.groups {
                out.map_len(6);
                out.bulk(b"name");
                out.bulk(name);
                out.bulk(b"consumers");
                out.int(g.consumers.len() as i64);
                out.bulk(b"pending");
                out.int(g.pel.len() as i64);
                out.bulk(b"last-delivered-id");
                put_id(out, g.last_id);
                out.bulk(b"entries-read");
                put_entries_read(out, g);
                out.bulk(b"lag");
                put_lag(out, s, g);
            }
        }
        b"stream" => xinfo_stream(s, &args, out),
        _ => sub_syntax(&args, out),
    }
}

fn xinfo_stream(s: &Stream, args: &Args, out: &mut Reply) {
    let optc = args.len() - 3;
    let mut full = true;
    let mut count: i64 = 10;
    if optc == 0 {
        full = false;
    } else {
        if optc != 1 && optc != 3 {
            return sub_syntax(args, out);
        }
        if !opt_is(args.get(3), "full") {
            return sub_syntax(args, out);
        }
        if optc == 3 {
            if !opt_is(args.get(4), "count") {
                return sub_syntax(args, out);
            }
            count = match parse_ll(args.get(5), None) {
                Ok(v) if v < 0 => 10,
                Ok(v) => v,
                Err(e) => return out.error(&e),
            };
        }
    }
    let count = count as usize;
    out.map_len(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.length as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(s.rax_nodes() as i64);
    out.bulk(b"last-generated-id");
    put_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    put_id(out, s.max_deleted_entry_id);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    put_id(out, s.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        out.bulk(b"first-entry");
        if !reply_first(out, s, false) {
            out.null();
        }
        out.bulk(b"last-entry");
        if !reply_first(out, s, true) {
            out.null();
        }
        return;
    }
    out.bulk(b"entries");
    reply_range(out, s, StreamId::MIN, StreamId::MAX, count, false);
    out.bulk(b"groups");
    out.array_len(s.groups.len());
    for (name, g) in &s.groups {
        out.map_len(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        put_id(out, g.last_id);
        out.bulk(b"entries-read");
        put_entries_read(out, g);
        out.bulk(b"lag");
        put_lag(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let pel: Vec<_> = g.pel.iter().take(if count == 0 { usize::MAX } else { count }).collect();
        out.array_len(pel.len());
        for (id, n) in pel {
            out.array_len(4);
            put_id(out, *id);
            out.bulk(&n.consumer);
            out.int(n.delivery_time as i64);
            out.int(n.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array_len(g.consumers.len());
        for (cname, c) in &g.consumers {
            out.map_len(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen_time as i64);
            out.bulk(b"pel-count");
            out.int(c.pel.len() as i64);
            out.bulk(b"pending");
            let ids: Vec<_> = c.pel.iter().take(if count == 0 { usize::MAX } else { count }).collect();
            out.array_len(ids.len());
            for id in ids {
                let n = &g.pel[id];
                out.array_len(3);
                put_id(out, *id);
                out.int(n.delivery_time as i64);
                out.int(n.delivery_count as i64);
            }
        }
    }
}

/// The first (or last) entry as a raw [id, fields] pair; false if none.
fn reply_first(out: &mut Reply, s: &Stream, rev: bool) -> bool {
    let mut found = false;
    s.range(StreamId::MIN, StreamId::MAX, rev, |id, f| {
        put_entry(out, id, f);
        found = true;
        false
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_as_redis() {
        assert_eq!(parse_id(b"5", 7), Ok(StreamId::new(5, 7)));
        assert_eq!(parse_id(b"5-3", 7), Ok(StreamId::new(5, 3)));
        assert_eq!(parse_id(b"-", 0), Ok(StreamId::MIN));
        assert_eq!(parse_id(b"+", 0), Ok(StreamId::MAX));
        assert!(parse_strict(b"+", 0).is_err());
        assert!(parse_id(b"5-x", 0).is_err());
        assert!(parse_id(b"-5", 0).is_err());
        let mut sg = true;
        assert_eq!(parse_id_full(b"5-*", 0, true, Some(&mut sg)), Some(StreamId::new(5, 0)));
        assert!(!sg);
        assert!(parse_id(b"5-*", 0).is_err());
    }

    #[test]
    fn propagation_commands_are_redis_forms() {
        let n = Nack {
            delivery_time: 1000,
            delivery_count: 2,
            consumer: b"c1"[..].into(),
        };
        let v = xclaim_argv(b"s", b"g", StreamId::new(9, 0), StreamId::new(3, 1), &n);
        assert_eq!(v.len(), 14);
        assert_eq!(v[5], b"3-1");
        assert_eq!(v[13], b"9-0");
        let g = Group::new(StreamId::new(4, 4), 7);
        assert_eq!(setid_argv(b"s", b"g", &g)[6], b"7");
    }
}
