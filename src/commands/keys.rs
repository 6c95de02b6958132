//! The generic keyspace family (Redis 7.0 db.c, expire.c, object.c):
//! DEL UNLINK EXISTS TOUCH TYPE KEYS SCAN RANDOMKEY RENAME RENAMENX COPY MOVE
//! OBJECT EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST.
//!
//! Keyed commands run on the shard owning their keys. RENAME, RENAMENX and
//! COPY are plans (`table::PlanFn`): written once, run inline when both keys
//! are on one shard and as a transaction otherwise. KEYS, SCAN, RANDOMKEY run
//! on every shard under shared whole-shard locks; the SCAN cursor carries the
//! shard index in its low part (`dict_cursor * nshards + shard`).

use super::table::{Combine, Ctx, HopLost, PlanFn, Table, Tx};
use crate::exec::on_every_shard;
use crate::keyspace::db::idle_secs;
use crate::keyspace::{Db, Entry};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::locks::Mode;
use crate::runtime::notify::{note, NOTIFY_GENERIC};
use crate::runtime::{self, Shard};
use crate::server::client::Client;
use crate::util::glob::glob_match;
use crate::util::num::string2ll;
use std::future::Future;
use std::pin::Pin;

type BoxFut<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

const SAME_OBJECT: &str = "ERR source and destination objects are the same";
const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

pub fn register(t: &mut Table) {
    t.keyed_split("del", del, Combine::Sum);
    t.keyed_split("unlink", unlink, Combine::Sum);
    t.keyed_split("exists", exists, Combine::Sum);
    t.keyed_split("touch", touch, Combine::Sum);
    t.keyed("type", type_cmd);
    t.asynch("keys", keys_cmd);
    t.asynch("scan", scan_cmd);
    t.asynch("randomkey", randomkey_cmd);
    t.plan("rename", RENAME);
    t.plan("renamenx", RENAMENX);
    t.plan("copy", COPY).other_db = Some(copy_dst_db);
    t.keyed("move", move_cmd).other_db = Some(move_dst_db);
    t.client("object", object_container);
    t.keyed("object|encoding", object_encoding);
    t.keyed("object|refcount", object_refcount);
    t.keyed("object|idletime", object_idletime);
    t.keyed("object|freq", object_freq);
    t.client("object|help", object_help);
    t.keyed("expire", expire);
    t.keyed("pexpire", pexpire);
    t.keyed("expireat", expireat);
    t.keyed("pexpireat", pexpireat);
    t.keyed("ttl", ttl);
    t.keyed("pttl", pttl);
    t.keyed("expiretime", expiretime);
    t.keyed("pexpiretime", pexpiretime);
    t.keyed("persist", persist);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// What C code sees of an argument through `ptr`: the bytes up to the first NUL
/// (strcasecmp, "%s" and strtoul stop there).
fn cstr(b: &[u8]) -> &[u8] {
    match memchr::memchr(0, b) {
        Some(z) => &b[..z],
        None => b,
    }
}

/// `!strcasecmp(arg->ptr, word)`.
fn opt_is(arg: &[u8], word: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// Redis's addReplyErrorFormat: the formatted text loses CR/LF at both ends,
/// and inner ones become spaces (done by `Reply::error_bytes`).
fn error_fmt(out: &mut Reply, msg: &[u8]) {
    let mut m = msg;
    while let Some((&c, rest)) = m.split_last() {
        if c == b'\r' || c == b'\n' {
            m = rest;
        } else {
            break;
        }
    }
    out.error_bytes(m);
}

/// dbSyncDelete after expireIfNeeded: an already expired key counts as absent.
/// DEL / UNLINK of one key; the value is freed in the background when
/// `lazy` and it is big (keyspace/lazyfree.rs).
fn delete_key(db: &mut Db, key: &[u8], now: u64, lazy: bool) -> bool {
    if db.has_volatile() && db.peek(key, now).is_none() {
        return false;
    }
    match db.remove(key) {
        Some(e) => {
            crate::keyspace::lazyfree::free_entry(e, lazy);
            true
        }
        None => false,
    }
}

/// getIntFromObjectOrReply(c, o, &v, NULL).
fn parse_int(arg: &[u8]) -> Result<i32, String> {
    let v = string2ll(arg).ok_or_else(|| err::NOT_INT.to_string())?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(format!("ERR value is out of range, value must between {} and {}", i32::MIN, i32::MAX));
    }
    Ok(v as i32)
}

/// A database index as MOVE / COPY DB check it (selectDb).
fn parse_db(arg: &[u8], databases: usize) -> Result<usize, String> {
    let v = parse_int(arg)?;
    if v < 0 || v as usize >= databases {
        return Err(err::DB_INDEX.to_string());
    }
    Ok(v as usize)
}

/// The maxmemory policy has MAXMEMORY_FLAG_LFU.
fn lfu_policy() -> bool {
    crate::keyspace::access::lfu_policy()
}

fn reply_status_or_int(out: &mut Reply, nx: bool, ok: bool) {
    if nx {
        out.int(ok as i64);
    } else {
        out.ok();
    }
}

// ---------------------------------------------------------------------------
// DEL UNLINK EXISTS TOUCH TYPE
// ---------------------------------------------------------------------------

fn del(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    del_generic(
        ctx,
        args,
        out,
        crate::keyspace::lazyfree::LAZY_USER_DEL.load(std::sync::atomic::Ordering::Relaxed),
    );
}

fn unlink(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    del_generic(ctx, args, out, true);
}

fn del_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, lazy: bool) {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let mut n = 0;
    for k in args.iter().skip(1) {
        if delete_key(db, k, now, lazy) {
            n += 1;
            note(dbi, NOTIFY_GENERIC, "del", k);
        }
    }
    out.int(n);
}

fn exists(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.lookup_read_with(k, true).is_some() {
            n += 1;
        }
    }
    out.int(n);
}

fn touch(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.lookup_read_with(k, false).is_some() {
            n += 1;
        }
    }
    out.int(n);
}

fn type_cmd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let name = ctx.lookup_read_with(args.get(1), true).map(|e| e.val.type_name()).unwrap_or("none");
    out.status(name.as_bytes());
}

// ---------------------------------------------------------------------------
// KEYS SCAN RANDOMKEY (every shard)
// ---------------------------------------------------------------------------

/// The matching, not logically expired keys of one shard's db, as RESP bulks.
/// Like Redis's KEYS, expired keys are skipped but not deleted.
pub fn keys_shard(db: &Db, pattern: &[u8], now: u64) -> (usize, Vec<u8>) {
    let allkeys = pattern == b"*";
    let mut r = Reply::new(false);
    let mut n = 0;
    for (k, _) in db.iter() {
        if (allkeys || glob_match(pattern, k, false)) && !db.is_expired(k, now) {
            r.bulk(k);
            n += 1;
        }
    }
    (n, r.buf)
}

fn keys_cmd<'a>(c: &'a mut Client, args: Args<'a>, out: &'a mut Reply) -> BoxFut<'a> {
    Box::pin(async move {
        let pattern = args.get(1).to_vec();
        let dbi = c.db;
        let Ok(parts) = on_every_shard(dbi, Mode::Shared, move |ctx: &mut Ctx| keys_shard(&ctx.shard.dbs[dbi], &pattern, ctx.now)).await else {
            return out.error(err::SHARD_LOST);
        };
        out.array_len(parts.iter().map(|p| p.0).sum());
        for (_, bytes) in parts {
            out.raw(&bytes);
        }
    })
}

/// parseScanCursorOrReply: strtoul() semantics (an optional sign, decimal
/// digits, nothing after them; a leading space or an overflow is invalid).
pub fn parse_scan_cursor(arg: &[u8]) -> Option<u64> {
    let s = cstr(arg);
    if let Some(&c) = s.first() {
        if matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            return None;
        }
    }
    let mut i = 0;
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            i = 1;
        }
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
    if i == start {
        // No digits: strtoul leaves the end pointer at the start of the string.
        return if s.is_empty() { Some(0) } else { None };
    }
    if i != s.len() || overflow {
        return None;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SCAN's options, shared by every shard step.
#[derive(Clone)]
pub struct ScanOpts {
    pub count: usize,
    /// None when there is no pattern or it is exactly "*".
    pub pattern: Option<Vec<u8>>,
    pub typename: Option<Vec<u8>>,
}

/// What one shard step of a SCAN produced.
#[derive(Default)]
pub struct ScanStep {
    /// Keys that passed the filters, as RESP bulks.
    pub bulks: Vec<u8>,
    pub nkeys: usize,
    /// Keys collected before filtering (what COUNT bounds).
    pub collected: usize,
    /// Next dict cursor of this shard (0 = the shard is done).
    pub cursor: u64,
    /// Iterations left of the maxiterations budget.
    pub iters_left: u64,
}

/// One shard's part of scanGenericCommand: dictScan until `want` keys were
/// collected, the iteration budget runs out or the dict is done; then the
/// MATCH, TYPE and expired-key filters (expired keys are deleted).
pub fn scan_shard(s: &mut Shard, dbi: usize, cursor: u64, want: usize, iters: u64, opts: &ScanOpts, now: u64) -> ScanStep {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cur = cursor;
    let mut iters = iters;
    loop {
        cur = s.dbs[dbi].scan(cur, |k, _| keys.push(k.to_vec()));
        if cur == 0 || keys.len() >= want {
            break;
        }
        if iters == 0 {
            break;
        }
        iters -= 1;
    }
    let mut r = Reply::new(false);
    let mut nkeys = 0;
    for k in &keys {
        if let Some(p) = &opts.pattern {
            if !glob_match(p, k, false) {
                continue;
            }
        }
        if let Some(t) = &opts.typename {
            // lookupKeyReadWithFlags(LOOKUP_NOTOUCH) + getObjectTypeName.
            let found = s.dbs[dbi].peek(k, now).map(|e| e.val.type_name());
            if found.is_some() {
                s.stats.keyspace_hits += 1;
            } else {
                s.stats.keyspace_misses += 1;
            }
            if !cstr(t).eq_ignore_ascii_case(found.unwrap_or("none").as_bytes()) {
                continue;
            }
        }
        // expireIfNeeded: a key that is present but logically expired is deleted.
        let db = &mut s.dbs[dbi];
        if db.is_expired(k, now) {
            db.peek(k, now);
            continue;
        }
        r.bulk(k);
        nkeys += 1;
    }
    ScanStep {
        bulks: r.buf,
        nkeys,
        collected: keys.len(),
        cursor: cur,
        iters_left: iters,
    }
}

/// Parses SCAN's arguments after the cursor, as scanGenericCommand.
pub fn parse_scan_opts(args: &Args) -> Result<ScanOpts, &'static str> {
    let mut opts = ScanOpts {
        count: 10,
        pattern: None,
        typename: None,
    };
    let mut i = 2;
    while i < args.len() {
        let j = args.len() - i;
        let a = args.get(i);
        if opt_is(a, "count") && j >= 2 {
            let v = string2ll(args.get(i + 1)).ok_or(err::NOT_INT)?;
            if v < 1 {
                return Err(err::SYNTAX);
            }
            opts.count = v.min(i64::MAX >> 8) as usize;
            i += 2;
        } else if opt_is(a, "match") && j >= 2 {
            let p = args.get(i + 1);
            opts.pattern = if p == b"*" { None } else { Some(p.to_vec()) };
            i += 2;
        } else if opt_is(a, "type") && j >= 2 {
            opts.typename = Some(args.get(i + 1).to_vec());
            i += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    Ok(opts)
}

/// The cross-shard part of SCAN: the cursor is `dict_cursor * n + shard`.
/// Steps through the shards in order (`step(shard, dict_cursor, want, iters)`
/// runs one shard step) until COUNT keys were collected, the iteration budget
/// is spent or the last shard is done. Returns (next cursor, keys, bulks).
pub async fn scan_walk<F, Fut>(n: u64, cursor: u64, count: usize, mut step: F) -> (u64, usize, Vec<u8>)
where
    F: FnMut(usize, u64, usize, u64) -> Fut,
    Fut: Future<Output = ScanStep>,
{
    let mut shard = cursor % n;
    let mut dcur = cursor / n;
    let mut collected = 0usize;
    // Redis's maxiterations: ten dict steps per requested element.
    let mut iters = (count as u64).saturating_mul(10);
    let mut bulks: Vec<u8> = Vec::new();
    let mut nkeys = 0usize;
    let next = loop {
        let st = step(shard as usize, dcur, count - collected, iters).await;
        bulks.extend_from_slice(&st.bulks);
        nkeys += st.nkeys;
        collected += st.collected;
        iters = st.iters_left;
        if st.cursor != 0 {
            break st.cursor * n + shard;
        }
        // This shard is done: go on with the next one, from its start.
        shard += 1;
        dcur = 0;
        if shard == n {
            break 0;
        }
        if collected >= count || iters == 0 {
            break shard;
        }
        iters -= 1;
    };
    (next, nkeys, bulks)
}

fn scan_cmd<'a>(c: &'a mut Client, args: Args<'a>, out: &'a mut Reply) -> BoxFut<'a> {
    Box::pin(async move {
        let Some(cursor) = parse_scan_cursor(args.get(1)) else {
            out.error("ERR invalid cursor");
            return;
        };
        let opts = match parse_scan_opts(&args) {
            Ok(o) => o,
            Err(e) => {
                out.error(e);
                return;
            }
        };
        let n = runtime::nshards() as u64;
        let dbi = c.db;
        // One call is atomic like Redis's: the shards it may visit are locked
        // (shared) so it cannot see half of a cross-shard transaction.
        let visit: Vec<usize> = ((cursor % n) as usize..n as usize).collect();
        let mut tx = Tx::begin(
            dbi,
            visit.iter().map(|&s| (s, crate::runtime::locks::LockReq::shard_wide(Mode::Shared))).collect(),
            Vec::new(),
        )
        .await;
        let lost = std::cell::Cell::new(false);
        let (next, nkeys, bulks) = scan_walk(n, cursor, opts.count, |shard, dcur, want, iters| {
            let o = opts.clone();
            let hop = tx.hop(shard, move |ctx: &mut Ctx| scan_shard(ctx.shard, dbi, dcur, want, iters, &o, ctx.now));
            let lost = &lost;
            async move {
                hop.await.unwrap_or_else(|_| {
                    lost.set(true);
                    ScanStep::default()
                })
            }
        })
        .await;
        drop(tx);
        if lost.get() {
            return out.error(err::SHARD_LOST);
        }
        out.array_len(2);
        let mut cur = Vec::with_capacity(20);
        crate::util::num::write_u64(&mut cur, next);
        out.bulk(&cur);
        out.array_len(nkeys);
        out.raw(&bulks);
    })
}

/// A random live key of one shard's db (deleting expired keys it draws, as
/// dbRandomKey), with the db's size afterwards.
pub fn random_shard(s: &mut Shard, dbi: usize, now: u64) -> (usize, Option<Vec<u8>>) {
    let mut x = s.rand() | 1;
    let mut rng = move || crate::util::rand::next(&mut x);
    let db = &mut s.dbs[dbi];
    loop {
        let (key, expired) = match db.random(&mut rng) {
            None => return (0, None),
            Some((k, _)) => (k.to_vec(), db.is_expired(k, now)),
        };
        if expired {
            // Deletes it (the same expiry rule), so the loop shrinks the table.
            if db.peek(&key, now).is_some() {
                return (db.len(), Some(key));
            }
            continue;
        }
        return (db.len(), Some(key));
    }
}

fn randomkey_cmd<'a>(c: &'a mut Client, _args: Args<'a>, out: &'a mut Reply) -> BoxFut<'a> {
    Box::pin(async move {
        let dbi = c.db;
        let Ok(parts) = on_every_shard(dbi, Mode::Shared, move |ctx: &mut Ctx| random_shard(ctx.shard, dbi, ctx.now)).await else {
            return out.error(err::SHARD_LOST);
        };
        let total: u64 = parts.iter().map(|p| p.0 as u64).sum();
        if total == 0 {
            out.null();
            return;
        }
        // Pick a shard with probability proportional to its size.
        let mut r = runtime::with_shard(|s| s.rand()) % total;
        for (len, key) in parts {
            if r < len as u64 {
                match key {
                    Some(k) => out.bulk(&k),
                    None => out.null(),
                }
                return;
            }
            r -= len as u64;
        }
        out.null();
    })
}

// ---------------------------------------------------------------------------
// RENAME RENAMENX COPY MOVE
// ---------------------------------------------------------------------------

const RENAME: PlanFn = |tx, args, out| Box::pin(rename_plan(tx, args, out, false));
const RENAMENX: PlanFn = |tx, args, out| Box::pin(rename_plan(tx, args, out, true));

/// RENAME / RENAMENX (renameGenericCommand): check the source (and for NX the
/// destination), then move the entry with its TTL.
async fn rename_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply, nx: bool) -> Result<(), HopLost> {
    let (src, dst) = (args.get(1).to_vec(), args.get(2).to_vec());
    let (ss, ds) = (tx.shard_of_arg(1), tx.shard_of_arg(2));
    let k = src.clone();
    let found = tx.hop(ss, move |ctx: &mut Ctx| {
        let now = ctx.now;
        ctx.db().lookup_write(&k, now).is_some()
    });
    let k = dst.clone();
    let taken = tx.hop(ds, move |ctx: &mut Ctx| {
        let now = ctx.now;
        ctx.db().lookup_write(&k, now).is_some()
    });
    let (found, taken) = (found.await?, taken.await?);
    if !found {
        out.error(err::NO_SUCH_KEY);
        return Ok(());
    }
    if src == dst {
        reply_status_or_int(out, nx, false);
        return Ok(());
    }
    if taken && nx {
        out.int(0);
        return Ok(());
    }
    // Under the locks the source was found above; if active expiry removed it
    // since, the renamed key would have expired by now anyway.
    let k = src.clone();
    // renameGenericCommand counts one change (server.dirty++), the destination's.
    let entry = tx
        .hop(ss, move |ctx: &mut Ctx| {
            let db = ctx.db();
            let mark = db.hook.dirty;
            let e = db.take(&k);
            db.dirty_since(mark, 0);
            e
        })
        .await?;
    if let Some((e, at)) = entry {
        tx.hop(ds, move |ctx: &mut Ctx| {
            let now = ctx.now;
            let db = ctx.db();
            db.lookup_write(&dst, now);
            db.set_entry(&dst, e, at);
            // Redis's order: the destination is added (`new`), then both events.
            ctx.notify(NOTIFY_GENERIC, "rename_from", &src);
            ctx.notify(NOTIFY_GENERIC, "rename_to", &dst);
        })
        .await?;
    }
    reply_status_or_int(out, nx, true);
    Ok(())
}

struct CopyOpts {
    dst_db: usize,
    replace: bool,
}

fn parse_copy_opts(args: &Args, src_db: usize, databases: usize) -> Result<CopyOpts, String> {
    let mut o = CopyOpts {
        dst_db: src_db,
        replace: false,
    };
    let mut j = 3;
    while j < args.len() {
        let additional = args.len() - j - 1;
        if opt_is(args.get(j), "replace") {
            o.replace = true;
        } else if opt_is(args.get(j), "db") && additional >= 1 {
            o.dst_db = parse_db(args.get(j + 1), databases)?;
            j += 1;
        } else {
            return Err(err::SYNTAX.to_string());
        }
        j += 1;
    }
    Ok(o)
}

/// COPY ... DB n writes `newkey` (argument 2) in database n: it is locked there too.
fn copy_dst_db(args: &Args, db: usize) -> Option<(usize, usize)> {
    let o = parse_copy_opts(args, db, runtime::databases()).ok()?;
    (o.dst_db != db).then_some((2, o.dst_db))
}

/// MOVE key db writes `key` in database db: it is locked there too.
fn move_dst_db(args: &Args, _db: usize) -> Option<(usize, usize)> {
    parse_db(args.get(2), runtime::databases()).ok().map(|d| (1, d))
}

const COPY: PlanFn = |tx, args, out| Box::pin(copy_plan(tx, args, out));

/// COPY (copyCommand): read the source where it lives, write the copy with its TTL.
async fn copy_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let o = match parse_copy_opts(&args, tx.db, runtime::databases()) {
        Ok(o) => o,
        Err(e) => {
            out.error(&e);
            return Ok(());
        }
    };
    let (key, newkey) = (args.get(1).to_vec(), args.get(2).to_vec());
    if o.dst_db == tx.db && key == newkey {
        out.error(SAME_OBJECT);
        return Ok(());
    }
    let (ss, ds) = (tx.shard_of_arg(1), tx.shard_of_arg(2));
    let src = tx
        .hop(ss, move |ctx: &mut Ctx| {
            let val = ctx.lookup_read_with(&key, false).map(|e| e.val.clone())?;
            Some((val, ctx.db().expire_at(&key)))
        })
        .await?;
    let Some((val, expire_at)) = src else {
        out.int(0);
        return Ok(());
    };
    let (dst_db, replace) = (o.dst_db, o.replace);
    let done = tx
        .hop(ds, move |ctx: &mut Ctx| {
            let now = ctx.now;
            let db = &mut ctx.shard.dbs[dst_db];
            if db.lookup_write(&newkey, now).is_some() && !replace {
                return false;
            }
            db.set(&newkey, val, expire_at, now);
            note(dst_db, NOTIFY_GENERIC, "copy_to", &newkey);
            true
        })
        .await?;
    out.int(done as i64);
    Ok(())
}

fn move_cmd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let dst_db = match parse_db(args.get(2), ctx.shard.dbs.len()) {
        Ok(d) => d,
        Err(e) => return out.error(&e),
    };
    if dst_db == ctx.db {
        out.error(SAME_OBJECT);
        return;
    }
    let key = args.get(1);
    let now = ctx.now;
    if ctx.db().lookup_write(key, now).is_none() {
        out.int(0);
        return;
    }
    if ctx.shard.dbs[dst_db].lookup_write(key, now).is_some() {
        out.int(0);
        return;
    }
    // The same object moves (dbAdd + setExpire): its access clock goes with it.
    if let Some((e, at)) = ctx.db().take(key) {
        ctx.shard.dbs[dst_db].set_entry(key, e, at);
        ctx.notify(NOTIFY_GENERIC, "move_from", key);
        note(dst_db, NOTIFY_GENERIC, "move_to", key);
    }
    out.int(1);
}

// ---------------------------------------------------------------------------
// OBJECT
// ---------------------------------------------------------------------------

/// Never reached: the arity check and the subcommand lookup come first.
fn object_container(_c: &mut Client, args: Args, out: &mut Reply) {
    let sub = args.iter().nth(1).unwrap_or(b"");
    let mut m = b"ERR unknown subcommand '".to_vec();
    m.extend_from_slice(&cstr(sub)[..cstr(sub).len().min(128)]);
    m.extend_from_slice(b"'. Try OBJECT HELP.");
    out.error_bytes(&m);
}

/// objectCommandLookup: no LRU touch, a null reply for a missing key.
fn object_lookup<'a>(ctx: &'a mut Ctx, args: &Args, out: &mut Reply) -> Option<&'a Entry> {
    let e = ctx.lookup_read_with(args.get(2), true);
    if e.is_none() {
        out.null();
    }
    e
}

fn object_encoding(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    if let Some(e) = object_lookup(ctx, &args, out) {
        let enc = e.val.encoding();
        out.bulk(enc.as_bytes());
    }
}

fn object_refcount(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    if let Some(e) = object_lookup(ctx, &args, out) {
        let rc = e.val.refcount();
        out.int(rc);
    }
}

fn object_idletime(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let now = ctx.now;
    if let Some(e) = object_lookup(ctx, &args, out) {
        let lru = e.lru();
        if lfu_policy() {
            out.error(LFU_SELECTED);
            return;
        }
        out.int(idle_secs(lru, now) as i64);
    }
}

fn object_freq(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let now = ctx.now;
    if let Some(e) = object_lookup(ctx, &args, out) {
        if !lfu_policy() {
            out.error(LFU_NOT_SELECTED);
            return;
        }
        out.int(crate::keyspace::access::lfu_counter(e.lfu(), now) as i64);
    }
}

const OBJECT_HELP: &[&str] = &[
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
];

/// addReplyHelp.
fn object_help(_c: &mut Client, args: Args, out: &mut Reply) {
    let mut head = cstr(args.get(0)).to_ascii_uppercase();
    head.extend_from_slice(b" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    out.array_len(OBJECT_HELP.len() + 3);
    out.status(&head);
    for l in OBJECT_HELP {
        out.status(l.as_bytes());
    }
    out.status(b"HELP");
    out.status(b"    Prints this help.");
}

// ---------------------------------------------------------------------------
// EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST
// ---------------------------------------------------------------------------

const EXPIRE_NX: u8 = 1;
const EXPIRE_XX: u8 = 2;
const EXPIRE_GT: u8 = 4;
const EXPIRE_LT: u8 = 8;

fn expire(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let now = ctx.now as i64;
    expire_generic(ctx, args, out, now, true, "expire")
}

fn pexpire(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let now = ctx.now as i64;
    expire_generic(ctx, args, out, now, false, "pexpire")
}

fn expireat(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    expire_generic(ctx, args, out, 0, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    expire_generic(ctx, args, out, 0, false, "pexpireat")
}

/// parseExtendedExpireArgumentsOrReply.
fn parse_expire_flags(args: &Args, out: &mut Reply) -> Option<u8> {
    let mut flags = 0u8;
    for i in 3..args.len() {
        let a = args.get(i);
        if opt_is(a, "nx") {
            flags |= EXPIRE_NX;
        } else if opt_is(a, "xx") {
            flags |= EXPIRE_XX;
        } else if opt_is(a, "gt") {
            flags |= EXPIRE_GT;
        } else if opt_is(a, "lt") {
            flags |= EXPIRE_LT;
        } else {
            let mut m = b"ERR Unsupported option ".to_vec();
            m.extend_from_slice(cstr(a));
            error_fmt(out, &m);
            return None;
        }
    }
    if flags & EXPIRE_NX != 0 && flags & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT) != 0 {
        out.error("ERR NX and XX, GT or LT options at the same time are not compatible");
        return None;
    }
    if flags & EXPIRE_GT != 0 && flags & EXPIRE_LT != 0 {
        out.error("ERR GT and LT options at the same time are not compatible");
        return None;
    }
    Some(flags)
}

/// expireGenericCommand: `basetime` is 0 for the *AT forms, now for relative ones.
fn expire_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, basetime: i64, seconds: bool, name: &str) {
    let Some(flags) = parse_expire_flags(&args, out) else { return };
    let Some(mut when) = string2ll(args.get(2)) else {
        out.error(err::NOT_INT);
        return;
    };
    let invalid = || format!("ERR invalid expire time in '{name}' command");
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            out.error(&invalid());
            return;
        }
        when *= 1000;
    }
    if when > i64::MAX - basetime {
        out.error(&invalid());
        return;
    }
    when += basetime;

    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    if db.lookup_write(key, now).is_none() {
        out.int(0);
        return;
    }
    let current_at = db.expire_at(key);
    if flags != 0 {
        let current: i64 = if current_at == 0 { -1 } else { current_at as i64 };
        if flags & EXPIRE_NX != 0 && current != -1 {
            out.int(0);
            return;
        }
        if flags & EXPIRE_XX != 0 && current == -1 {
            out.int(0);
            return;
        }
        if flags & EXPIRE_GT != 0 && (when <= current || current == -1) {
            out.int(0);
            return;
        }
        if flags & EXPIRE_LT != 0 && current != -1 && when >= current {
            out.int(0);
            return;
        }
    }
    // checkAlreadyExpired: a time in the past (or now) deletes the key.
    if when <= now as i64 {
        db.remove(key);
        note(dbi, NOTIFY_GENERIC, "del", key);
    } else {
        db.set_expire(key, when as u64);
        note(dbi, NOTIFY_GENERIC, "expire", key);
    }
    out.int(1);
}

/// ttlGenericCommand.
fn ttl_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, ms: bool, abs: bool) {
    let now = ctx.now as i64;
    if ctx.lookup_read_with(args.get(1), true).is_none() {
        out.int(-2);
        return;
    }
    let at = ctx.db().expire_at(args.get(1));
    if at == 0 {
        out.int(-1);
        return;
    }
    let expire = at as i64;
    let mut ttl = if abs { expire } else { expire - now };
    if ttl < 0 {
        ttl = 0;
    }
    // gcc evaluates Redis's (ttl+500)/1000 without wrapping; i128 gives the same answer.
    out.int(if ms { ttl } else { ((ttl as i128 + 500) / 1000) as i64 });
}

fn ttl(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    ttl_generic(ctx, args, out, false, false)
}

fn pttl(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    ttl_generic(ctx, args, out, true, false)
}

fn expiretime(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    ttl_generic(ctx, args, out, false, true)
}

fn pexpiretime(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    ttl_generic(ctx, args, out, true, true)
}

fn persist(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    if db.lookup_write(key, now).is_none() {
        out.int(0);
        return;
    }
    let done = db.persist(key);
    if done {
        note(dbi, NOTIFY_GENERIC, "persist", key);
    }
    out.int(done as i64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::table::KeyedFn;
    use crate::keyspace::Value;
    use std::cell::RefCell;
    use std::collections::HashSet;

    const NOW: u64 = 1_700_000_000_000;

    fn shard() -> Shard {
        Shard::new(0, 16)
    }

    fn run_db(s: &mut Shard, db: usize, now: u64, f: KeyedFn, argv: &[&str]) -> Vec<u8> {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for a in argv {
            let st = data.len();
            data.extend_from_slice(a.as_bytes());
            spans.push((st, data.len()));
        }
        let args = Args::new(&data, &spans);
        let mut out = Reply::new(false);
        let mut ctx = Ctx { shard: s, db, now };
        f(&mut ctx, args, &mut out);
        out.buf
    }

    /// The plans as keyed handlers: all keys on this shard, run inline.
    fn rename(ctx: &mut Ctx, args: Args, out: &mut Reply) {
        assert!(crate::exec::run_plan_inline(ctx.shard, RENAME, args, ctx.db, ctx.now, out));
    }
    fn renamenx(ctx: &mut Ctx, args: Args, out: &mut Reply) {
        assert!(crate::exec::run_plan_inline(ctx.shard, RENAMENX, args, ctx.db, ctx.now, out));
    }
    fn copy(ctx: &mut Ctx, args: Args, out: &mut Reply) {
        assert!(crate::exec::run_plan_inline(ctx.shard, COPY, args, ctx.db, ctx.now, out));
    }

    fn run(s: &mut Shard, now: u64, f: KeyedFn, argv: &[&str]) -> String {
        String::from_utf8(run_db(s, 0, now, f, argv)).unwrap()
    }

    fn set(s: &mut Shard, key: &str, expire_at: u64) {
        s.dbs[0].set(key.as_bytes(), Value::from_bytes(b"v"), expire_at, NOW);
    }

    #[test]
    fn every_read_command_lazily_expires_and_counts_it() {
        let cmds: &[(KeyedFn, &[&str], &str)] = &[
            (exists, &["exists", "k"], ":0\r\n"),
            (touch, &["touch", "k"], ":0\r\n"),
            (type_cmd, &["type", "k"], "+none\r\n"),
            (ttl, &["ttl", "k"], ":-2\r\n"),
            (pttl, &["pttl", "k"], ":-2\r\n"),
            (expiretime, &["expiretime", "k"], ":-2\r\n"),
            (object_encoding, &["object", "encoding", "k"], "$-1\r\n"),
            (object_refcount, &["object", "refcount", "k"], "$-1\r\n"),
            (del, &["del", "k"], ":0\r\n"),
            (persist, &["persist", "k"], ":0\r\n"),
            (expire, &["expire", "k", "100"], ":0\r\n"),
            (rename, &["rename", "k", "k2"], "-ERR no such key\r\n"),
            (renamenx, &["renamenx", "k", "k2"], "-ERR no such key\r\n"),
            (copy, &["copy", "k", "k2"], ":0\r\n"),
            (move_cmd, &["move", "k", "1"], ":0\r\n"),
        ];
        for (f, argv, want) in cmds {
            let mut s = shard();
            set(&mut s, "k", NOW + 10);
            // Still alive through its expiry millisecond (Redis: expired when now > when).
            assert_ne!(run(&mut s, NOW + 10, *f, argv), *want, "{argv:?} on a live key");
            let mut s = shard();
            set(&mut s, "k", NOW + 10);
            assert_eq!(run(&mut s, NOW + 11, *f, argv), *want, "{argv:?}");
            assert_eq!(s.dbs[0].len(), 0, "{argv:?} left the expired key");
            assert_eq!(s.dbs[0].expires_len(), 0, "{argv:?} left a volatile entry");
            assert_eq!(s.dbs[0].expired, 1, "{argv:?} did not count the expiry");
            assert_eq!(s.dbs[1].len(), 0, "{argv:?} resurrected the key elsewhere");
        }
    }

    #[test]
    fn expire_in_the_past_deletes_without_counting_an_expiry() {
        for argv in [
            &["expire", "k", "0"][..],
            &["expire", "k", "-10"],
            &["pexpire", "k", "0"],
            &["expireat", "k", "1"],
            &["pexpireat", "k", "0"],
            &["pexpireat", "k", "-9223372036854775808"],
        ] {
            let mut s = shard();
            set(&mut s, "k", 0);
            let f: KeyedFn = match argv[0] {
                "expire" => expire,
                "pexpire" => pexpire,
                "expireat" => expireat,
                _ => pexpireat,
            };
            assert_eq!(run(&mut s, NOW, f, argv), ":1\r\n", "{argv:?}");
            assert_eq!(s.dbs[0].len(), 0, "{argv:?}");
            assert_eq!(s.dbs[0].expires_len(), 0);
            assert_eq!(s.dbs[0].expired, 0, "an explicit delete is not an expiry");
        }
        // Exactly now also deletes (checkAlreadyExpired uses <=).
        let mut s = shard();
        set(&mut s, "k", 0);
        assert_eq!(run(&mut s, NOW, pexpireat, &["pexpireat", "k", &NOW.to_string()]), ":1\r\n");
        assert_eq!(s.dbs[0].len(), 0);
    }

    #[test]
    fn expire_options_follow_redis_rules() {
        let mut s = shard();
        set(&mut s, "k", 0);
        let r = |s: &mut Shard, a: &[&str]| run(s, NOW, expire, a);
        assert_eq!(r(&mut s, &["expire", "k", "100", "xx"]), ":0\r\n");
        assert_eq!(r(&mut s, &["expire", "k", "100", "gt"]), ":0\r\n", "GT treats no TTL as infinite");
        assert_eq!(r(&mut s, &["expire", "k", "100", "lt"]), ":1\r\n", "LT on a persistent key sets it");
        assert_eq!(s.dbs[0].expire_at(b"k"), NOW + 100_000);
        assert_eq!(s.dbs[0].expires_len(), 1);
        assert_eq!(r(&mut s, &["expire", "k", "50", "nx"]), ":0\r\n");
        assert_eq!(r(&mut s, &["expire", "k", "50", "gt"]), ":0\r\n");
        assert_eq!(r(&mut s, &["expire", "k", "100", "gt"]), ":0\r\n", "equal is not greater");
        assert_eq!(r(&mut s, &["expire", "k", "100", "lt"]), ":0\r\n", "equal is not less");
        assert_eq!(r(&mut s, &["expire", "k", "200", "GT", "xx"]), ":1\r\n");
        assert_eq!(r(&mut s, &["expire", "k", "150", "Lt"]), ":1\r\n");
        assert_eq!(s.dbs[0].expire_at(b"k"), NOW + 150_000);
        assert_eq!(
            r(&mut s, &["expire", "k", "1", "nx", "xx"]),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
        );
        assert_eq!(
            r(&mut s, &["expire", "k", "1", "gt", "lt"]),
            "-ERR GT and LT options at the same time are not compatible\r\n"
        );
        assert_eq!(r(&mut s, &["expire", "k", "1", "maybe\r\n"]), "-ERR Unsupported option maybe\r\n");
        assert_eq!(r(&mut s, &["expire", "k", "x", "nx"]), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            r(&mut s, &["expire", "k", "9223372036854776"]),
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(
            r(&mut s, &["expire", "k", "-9223372036854776"]),
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(
            run(&mut s, NOW, pexpire, &["pexpire", "k", "9223372036854775807"]),
            "-ERR invalid expire time in 'pexpire' command\r\n"
        );
        assert_eq!(run(&mut s, NOW, pexpireat, &["pexpireat", "k", "9223372036854775807"]), ":1\r\n");
        // A failed option check leaves the TTL alone; a missing key answers 0.
        assert_eq!(r(&mut s, &["expire", "nokey", "10"]), ":0\r\n");
    }

    #[test]
    fn ttl_family_rounds_like_redis() {
        let mut s = shard();
        set(&mut s, "k", NOW + 1499);
        assert_eq!(run(&mut s, NOW, ttl, &["ttl", "k"]), ":1\r\n");
        set(&mut s, "k", NOW + 1500);
        assert_eq!(run(&mut s, NOW, ttl, &["ttl", "k"]), ":2\r\n");
        assert_eq!(run(&mut s, NOW, pttl, &["pttl", "k"]), ":1500\r\n");
        assert_eq!(run(&mut s, NOW, expiretime, &["expiretime", "k"]), format!(":{}\r\n", (NOW + 2000) / 1000));
        assert_eq!(run(&mut s, NOW, pexpiretime, &["pexpiretime", "k"]), format!(":{}\r\n", NOW + 1500));
        set(&mut s, "p", 0);
        assert_eq!(run(&mut s, NOW, ttl, &["ttl", "p"]), ":-1\r\n");
        assert_eq!(run(&mut s, NOW, pexpiretime, &["pexpiretime", "p"]), ":-1\r\n");
        assert_eq!(run(&mut s, NOW, persist, &["persist", "k"]), ":1\r\n");
        assert_eq!(run(&mut s, NOW, persist, &["persist", "k"]), ":0\r\n");
        assert_eq!(s.dbs[0].expires_len(), 0);
    }

    #[test]
    fn rename_copy_and_move_carry_the_ttl_and_keep_the_volatile_index_in_step() {
        let mut s = shard();
        set(&mut s, "a", NOW + 5000);
        set(&mut s, "b", NOW + 9000);
        // Overwriting a volatile key with a persistent one drops its TTL.
        set(&mut s, "p", 0);
        assert_eq!(run(&mut s, NOW, rename, &["rename", "p", "b"]), "+OK\r\n");
        assert_eq!(s.dbs[0].expire_at(b"b"), 0);
        assert_eq!(s.dbs[0].expires_len(), 1);
        assert_eq!(run(&mut s, NOW, rename, &["rename", "a", "c"]), "+OK\r\n");
        assert_eq!(s.dbs[0].expire_at(b"c"), NOW + 5000);
        assert!(s.dbs[0].in_volatile(b"c") && !s.dbs[0].in_volatile(b"a"));
        assert_eq!(run(&mut s, NOW, renamenx, &["renamenx", "c", "b"]), ":0\r\n");
        assert_eq!(run(&mut s, NOW, renamenx, &["renamenx", "c", "c"]), ":0\r\n");
        assert_eq!(run(&mut s, NOW, rename, &["rename", "c", "c"]), "+OK\r\n");
        assert_eq!(run(&mut s, NOW, copy, &["copy", "c", "d"]), ":1\r\n");
        assert_eq!(s.dbs[0].expire_at(b"d"), NOW + 5000);
        assert_eq!(run(&mut s, NOW, copy, &["copy", "b", "d"]), ":0\r\n");
        assert_eq!(run(&mut s, NOW, copy, &["copy", "b", "d", "replace"]), ":1\r\n");
        assert_eq!(s.dbs[0].expire_at(b"d"), 0);
        assert_eq!(run(&mut s, NOW, copy, &["copy", "c", "c", "db", "2"]), ":1\r\n");
        assert_eq!(s.dbs[2].expires_len(), 1);
        assert_eq!(run(&mut s, NOW, move_cmd, &["move", "c", "3"]), ":1\r\n");
        assert_eq!(s.dbs[3].expire_at(b"c"), NOW + 5000);
        assert_eq!(s.dbs[3].expires_len(), 1);
        assert_eq!(s.dbs[0].expires_len(), 0);
        assert_eq!(
            run(&mut s, NOW, move_cmd, &["move", "d", "0"]),
            "-ERR source and destination objects are the same\r\n"
        );
        assert_eq!(run(&mut s, NOW, move_cmd, &["move", "d", "16"]), "-ERR DB index is out of range\r\n");
        assert_eq!(
            run(&mut s, NOW, copy, &["copy", "d", "d"]),
            "-ERR source and destination objects are the same\r\n"
        );
        // The moved key expires lazily in its new db.
        assert_eq!(String::from_utf8(run_db(&mut s, 3, NOW + 5001, exists, &["exists", "c"])).unwrap(), ":0\r\n");
        assert_eq!(s.dbs[3].expired, 1);
        assert_eq!(s.dbs[3].expires_len(), 0);
    }

    #[test]
    fn del_counts_duplicates_once_and_skips_expired_keys() {
        let mut s = shard();
        set(&mut s, "a", 0);
        set(&mut s, "b", NOW + 1);
        set(&mut s, "c", NOW + 100);
        assert_eq!(run(&mut s, NOW + 2, del, &["del", "a", "a", "b", "c", "zz"]), ":2\r\n");
        assert_eq!(s.dbs[0].len(), 0);
        assert_eq!(s.dbs[0].expires_len(), 0);
        set(&mut s, "a", 0);
        assert_eq!(run(&mut s, NOW, exists, &["exists", "a", "a", "zz"]), ":2\r\n");
    }

    #[test]
    fn keys_skips_expired_keys_without_deleting_them() {
        let mut s = shard();
        set(&mut s, "live", 0);
        set(&mut s, "dead", NOW + 1);
        set(&mut s, "later", NOW + 1000);
        let (n, bulks) = keys_shard(&s.dbs[0], b"*", NOW + 2);
        assert_eq!(n, 2);
        let text = String::from_utf8(bulks).unwrap();
        assert!(text.contains("live") && text.contains("later") && !text.contains("dead"));
        assert_eq!(keys_shard(&s.dbs[0], b"l*e", NOW + 2).0, 1);
        assert_eq!(s.dbs[0].len(), 3, "KEYS does not delete");
    }

    #[test]
    fn randomkey_never_returns_an_expired_key() {
        let mut s = shard();
        for i in 0..50 {
            set(&mut s, &format!("dead{i}"), NOW + 1);
        }
        set(&mut s, "live", 0);
        for _ in 0..20 {
            let (len, k) = random_shard(&mut s, 0, NOW + 2);
            assert_eq!(k.as_deref(), Some(&b"live"[..]));
            assert!(len >= 1);
        }
        let mut s = shard();
        for i in 0..10 {
            set(&mut s, &format!("dead{i}"), NOW + 1);
        }
        assert_eq!(random_shard(&mut s, 0, NOW + 2), (0, None));
        assert_eq!(s.dbs[0].expired, 10);
        assert_eq!(s.dbs[0].expires_len(), 0);
    }

    #[test]
    fn scan_cursor_parsing_is_strtoul() {
        assert_eq!(parse_scan_cursor(b"0"), Some(0));
        assert_eq!(parse_scan_cursor(b""), Some(0));
        assert_eq!(parse_scan_cursor(b"+7"), Some(7));
        assert_eq!(parse_scan_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_scan_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_scan_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_scan_cursor(b"5\0junk"), Some(5));
        for bad in [&b" 1"[..], b"\t1", b"1 ", b"0x1", b"+", b"-", b"a"] {
            assert_eq!(parse_scan_cursor(bad), None, "{bad:?}");
        }
    }

    fn opts(count: usize) -> ScanOpts {
        ScanOpts {
            count,
            pattern: None,
            typename: None,
        }
    }

    fn bulks_to_keys(b: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let len = crate::protocol::frame_len(&b[pos..]).unwrap();
            let frame = &b[pos..pos + len];
            let nl = frame.iter().position(|&c| c == b'\n').unwrap();
            v.push(frame[nl + 1..frame.len() - 2].to_vec());
            pos += len;
        }
        v
    }

    #[test]
    fn scan_filters_and_deletes_expired_keys() {
        let mut s = shard();
        for i in 0..100 {
            set(&mut s, &format!("k{i}"), if i % 4 == 0 { NOW + 1 } else { 0 });
        }
        let mut o = opts(1000);
        let st = scan_shard(&mut s, 0, 0, 1000, 10_000, &o, NOW + 2);
        assert_eq!(st.cursor, 0);
        assert_eq!(st.collected, 100);
        assert_eq!(st.nkeys, 75);
        assert_eq!(s.dbs[0].len(), 75);
        assert_eq!(s.dbs[0].expired, 25);
        o.pattern = Some(b"k1*".to_vec());
        o.typename = Some(b"STRING".to_vec());
        let st = scan_shard(&mut s, 0, 0, 1000, 10_000, &o, NOW + 2);
        let keys = bulks_to_keys(&st.bulks);
        assert!(keys.iter().all(|k| k.starts_with(b"k1")));
        assert_eq!(keys.len(), 9, "k1 k10..k19 minus the expired k12 and k16: {keys:?}");
        o.typename = Some(b"list".to_vec());
        assert_eq!(scan_shard(&mut s, 0, 0, 1000, 10_000, &o, NOW + 1).nkeys, 0);
    }

    #[test]
    fn multi_shard_scan_never_misses_a_key_despite_resizes() {
        let n = 3usize;
        let shards = RefCell::new((0..n).map(|i| Shard::new(i, 1)).collect::<Vec<_>>());
        for i in 0..600 {
            let k = format!("stable{i}");
            shards.borrow_mut()[i % n].dbs[0].set(k.as_bytes(), Value::Int(i as i64), 0, NOW);
        }
        for count in [1usize, 7, 10, 100, 5000] {
            let mut seen = HashSet::new();
            let mut cursor = 0u64;
            let mut round = 0u32;
            loop {
                let (next, nkeys, bulks) = futures_lite::future::block_on(scan_walk(n as u64, cursor, count, |shard, dcur, want, iters| {
                    let st = scan_shard(&mut shards.borrow_mut()[shard], 0, dcur, want, iters, &opts(count), NOW);
                    std::future::ready(st)
                }));
                let keys = bulks_to_keys(&bulks);
                assert_eq!(keys.len(), nkeys);
                seen.extend(keys);
                // Grow and shrink every shard's table between calls.
                round += 1;
                let mut sh = shards.borrow_mut();
                for (si, s) in sh.iter_mut().enumerate() {
                    if round % 2 == 1 {
                        for j in 0..300 {
                            s.dbs[0].set(format!("tmp{si}-{j}").as_bytes(), Value::Int(0), 0, NOW);
                        }
                    } else {
                        for j in 0..300 {
                            s.dbs[0].remove(format!("tmp{si}-{j}").as_bytes());
                        }
                    }
                }
                drop(sh);
                if next == 0 {
                    break;
                }
                cursor = next;
                assert!(round < 100_000, "scan does not terminate");
            }
            for i in 0..600 {
                assert!(seen.contains(format!("stable{i}").as_bytes()), "COUNT {count}: missed stable{i}");
            }
        }
    }

    #[test]
    fn active_expiry_reclaims_expired_keys_and_spares_the_rest() {
        let mut s = Shard::new(0, 2);
        let now = runtime::now_ms();
        for i in 0..2000 {
            let at = if i % 10 == 0 { now + 3_600_000 } else { now - 1 };
            s.dbs[0].set(format!("k{i}").as_bytes(), Value::Int(i), at, now);
            s.dbs[1].set(format!("k{i}").as_bytes(), Value::Int(i), 0, now);
        }
        // Mostly stale keys: the cycle keeps sampling until few are left.
        for _ in 0..50 {
            s.active_expire(1_000_000);
        }
        let db = &s.dbs[0];
        assert!(db.len() < 400, "active expiry left {} keys", db.len());
        assert!(db.len() >= 200, "active expiry removed live keys");
        assert_eq!(db.expired as usize, 2000 - db.len());
        assert_eq!(db.expires_len(), db.len());
        assert_eq!(s.dbs[1].len(), 2000, "persistent keys are never sampled");
        // Whatever is left that is expired still vanishes on access.
        let stale: Vec<Vec<u8>> = s.dbs[0].iter().filter(|(k, _)| s.dbs[0].expire_at(k) < now).map(|(k, _)| k.to_vec()).collect();
        for k in &stale {
            assert!(s.dbs[0].lookup_read(k, now).is_none());
        }
        assert_eq!(s.dbs[0].len(), 200);
        assert!(s.dbs[0].iter().all(|(k, _)| s.dbs[0].expire_at(k) > now));
    }

    #[test]
    fn object_help_and_encodings() {
        let mut s = shard();
        s.dbs[0].set(b"i", Value::from_bytes(b"42"), 0, NOW);
        s.dbs[0].set(b"e", Value::from_bytes(b"hello"), 0, NOW);
        assert_eq!(run(&mut s, NOW, object_encoding, &["object", "encoding", "i"]), "$3\r\nint\r\n");
        assert_eq!(run(&mut s, NOW, object_encoding, &["object", "encoding", "e"]), "$6\r\nembstr\r\n");
        assert_eq!(run(&mut s, NOW, object_refcount, &["object", "refcount", "i"]), ":2147483647\r\n");
        assert_eq!(run(&mut s, NOW, object_refcount, &["object", "refcount", "e"]), ":1\r\n");
        assert_eq!(s.stats.keyspace_hits, 4);
    }
}
