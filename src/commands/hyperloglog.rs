//! The HyperLogLog family, mirroring Redis 7.0.15's hyperloglog.c: PFADD,
//! PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST. The values are plain strings in
//! Redis's exact representation (`keyspace/types/hll.rs`), so GET, SET,
//! DUMP and RESTORE carry them between Redis and Tessera unchanged.
//!
//! PFCOUNT of several keys and PFMERGE are plans: each shard merges its
//! keys' registers (in argument order, reporting its first error), and the
//! result — the union's count, or the destination's new registers — is
//! computed or written under the transaction's locks.
//!
//! PFCOUNT is a read-only command (its keys take shared locks) that may
//! write the cached cardinality of a single key, as Redis does: only the
//! cache bytes change, on the shard's thread, and the write hook fires.

use super::table::{Ctx, HopLost, PlanFn, Table, Tx};
use crate::keyspace::types::hll::{self, NotHll, INVALID_ERR, NOT_HLL_ERR, REGISTERS};
use crate::keyspace::types::limits::hll_sparse_max_bytes;
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::{note, NOTIFY_STRING};
use crate::server::client::Client;

pub fn register(t: &mut Table) {
    t.keyed("pfadd", pfadd);
    t.plan("pfcount", PFCOUNT);
    t.plan("pfmerge", PFMERGE);
    t.keyed("pfdebug", pfdebug);
    t.client("pfselftest", pfselftest);
}

/// The HLL bytes of a value, or why it is not one (isHLLObjectOrReply).
fn hll_bytes(v: &Value) -> Result<&[u8], NotHll> {
    match v {
        Value::Small(_) | Value::Str { .. } => {
            let data = v.as_bytes().unwrap_or_default();
            hll::check(Some(data)).map(|_| data)
        }
        Value::Int(_) => Err(NotHll::Invalid),
        _ => Err(NotHll::WrongType),
    }
}

fn not_hll_msg(e: NotHll) -> &'static str {
    match e {
        NotHll::WrongType => err::WRONGTYPE,
        NotHll::Invalid => NOT_HLL_ERR,
    }
}

/// dbUnshareStringValue on a checked HLL: the value becomes a raw string
/// (a representation change: nothing is signalled).
fn unshared(v: &mut Value) -> &mut Vec<u8> {
    v.make_raw().expect("checked as an HLL string")
}

// ---------------------------------------------------------------------------
// PFADD
// ---------------------------------------------------------------------------

/// PFADD on an existing key: the number of raised registers, or the error
/// to reply; None when the key is missing.
fn add_existing(db: &mut crate::keyspace::db::Db, key: &[u8], now: u64, args: &Args, max_bytes: usize) -> Option<Result<u64, &'static str>> {
    let mut e = db.lookup_write(key, now)?;
    if let Err(x) = hll_bytes(&e.val) {
        return Some(Err(not_hll_msg(x)));
    }
    let h = unshared(e.val_unsignalled());
    let mut updated = 0u64;
    for j in 2..args.len() {
        match hll::add(h, args.get(j), max_bytes) {
            Ok(changed) => updated += changed as u64,
            // Registers raised so far stay, unsignalled, as in Redis.
            Err(_) => return Some(Err(INVALID_ERR)),
        }
    }
    if updated > 0 {
        hll::invalidate_cache(h);
        e.mark_modified();
    }
    Some(Ok(updated))
}

fn pfadd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let max_bytes = hll_sparse_max_bytes();
    let db = ctx.db();
    match add_existing(db, key, now, &args, max_bytes) {
        Some(Err(msg)) => return out.error(msg),
        Some(Ok(updated)) => {
            if updated > 0 {
                // server.dirty += updated: the hook counted one.
                db.hook.dirty += updated - 1;
                note(dbi, NOTIFY_STRING, "pfadd", key);
            }
            return out.int((updated > 0) as i64);
        }
        None => {}
    }
    let mut h = hll::new_sparse();
    let mut updated = 0u64;
    for j in 2..args.len() {
        match hll::add(&mut h, args.get(j), max_bytes) {
            Ok(changed) => updated += changed as u64,
            // A fresh HLL is never corrupt; reply as Redis would anyway.
            Err(_) => return out.error(INVALID_ERR),
        }
    }
    hll::invalidate_cache(&mut h);
    db.set(key, Value::Str { data: h, raw: true }, 0, now);
    // server.dirty += 1 (the new key, counted by the hook) + the raised registers.
    db.hook.dirty += updated;
    note(dbi, NOTIFY_STRING, "pfadd", key);
    out.int(1);
}

// ---------------------------------------------------------------------------
// PFCOUNT
// ---------------------------------------------------------------------------

const PFCOUNT: PlanFn = |tx, args, out| Box::pin(pfcount_plan(tx, args, out));

/// PFCOUNT of one key: the cached cardinality, or a new count written to the
/// cache (a modification of the string, signalled as Redis does).
fn pfcount_one(ctx: &mut Ctx, key: &[u8], out: &mut Reply) {
    let now = ctx.now;
    let need = match ctx.lookup_read(key) {
        None => return out.int(0),
        Some(e) => match hll_bytes(&e.val) {
            Err(x) => return out.error(not_hll_msg(x)),
            Ok(h) if hll::cache_valid(h) => Err(hll::cached(h)),
            Ok(h) => Ok(hll::count(h)),
        },
    };
    let Some(mut e) = ctx.db().lookup_write_untouched(key, now) else {
        return out.int(0);
    };
    let h = unshared(e.val_unsignalled());
    match need {
        Err(card) => out.int(card as i64),
        Ok(Err(_)) => out.error(INVALID_ERR),
        Ok(Ok(card)) => {
            hll::set_cached(h, card);
            e.mark_modified();
            out.int(card as i64);
        }
    }
}

/// One shard's part of a union: its keys (argument positions from `first`)
/// merged into registers, or the first failing position and its error.
type Part = Result<(Box<[u8; REGISTERS]>, bool), (usize, &'static str)>;

fn merge_local(ctx: &mut Ctx, keys: &[(usize, Vec<u8>)]) -> Part {
    let mut max: Box<[u8; REGISTERS]> = Box::new([0; REGISTERS]);
    let mut dense = false;
    for (pos, k) in keys {
        let Some(e) = ctx.lookup_read(k) else { continue };
        let h = hll_bytes(&e.val).map_err(|x| (*pos, not_hll_msg(x)))?;
        dense |= hll::encoding(h) == hll::DENSE;
        hll::merge_into(&mut max, h).map_err(|_| (*pos, INVALID_ERR))?;
    }
    Ok((max, dense))
}

/// Merges the registers of the keys at argument positions `from..` on every
/// shard; the error of the first failing key in argument order wins.
async fn union(tx: &mut Tx<'_>, args: &Args<'_>, from: usize) -> Result<Result<(Box<[u8; REGISTERS]>, bool), &'static str>, HopLost> {
    let groups = crate::util::group_by_shard((from..args.len()).map(|i| (tx.shard_of_arg(i), (i, args.get(i).to_vec()))));
    let parts = groups.into_iter().map(|(s, keys)| (s, move |ctx: &mut Ctx| merge_local(ctx, &keys))).collect();
    let parts: Vec<Part> = tx.hop_each(parts).await?;
    let mut max: Box<[u8; REGISTERS]> = Box::new([0; REGISTERS]);
    let mut dense = false;
    let mut first_err: Option<(usize, &'static str)> = None;
    for p in parts {
        match p {
            Ok((m, d)) => {
                dense |= d;
                for (a, b) in max.iter_mut().zip(m.iter()) {
                    if *b > *a {
                        *a = *b;
                    }
                }
            }
            Err(e) => {
                if first_err.is_none_or(|f| e.0 < f.0) {
                    first_err = Some(e);
                }
            }
        }
    }
    Ok(match first_err {
        Some((_, msg)) => Err(msg),
        None => Ok((max, dense)),
    })
}

async fn pfcount_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    if args.len() == 2 {
        let key = args.get(1).to_vec();
        let resp3 = out.resp3();
        let bytes = tx
            .hop(tx.shard_of_arg(1), move |ctx: &mut Ctx| {
                let mut r = Reply::new(resp3);
                pfcount_one(ctx, &key, &mut r);
                r.buf
            })
            .await?;
        out.raw(&bytes);
        return Ok(());
    }
    match union(tx, &args, 1).await? {
        Ok((max, _)) => out.int(hll::count_raw(&max) as i64),
        Err(msg) => out.error(msg),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// PFMERGE
// ---------------------------------------------------------------------------

const PFMERGE: PlanFn = |tx, args, out| Box::pin(pfmerge_plan(tx, args, out));

/// PFMERGE dest src...: every key (the destination included) is merged, then
/// the destination — created sparse if missing, made dense if any input was
/// dense — gets the registers and an invalid cache.
async fn pfmerge_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let (max, dense) = match union(tx, &args, 1).await? {
        Ok(m) => m,
        Err(msg) => {
            out.error(msg);
            return Ok(());
        }
    };
    let dst = args.get(1).to_vec();
    let resp3 = out.resp3();
    let bytes = tx
        .hop(tx.shard_of_arg(1), move |ctx: &mut Ctx| {
            let mut r = Reply::new(resp3);
            merge_store(ctx, &dst, &max, dense, &mut r);
            r.buf
        })
        .await?;
    out.raw(&bytes);
    Ok(())
}

fn merge_store(ctx: &mut Ctx, dst: &[u8], max: &[u8; REGISTERS], dense: bool, out: &mut Reply) {
    let (now, dbi) = (ctx.now, ctx.db);
    let max_bytes = hll_sparse_max_bytes();
    let db = ctx.db();
    let write = |h: &mut Vec<u8>| -> bool {
        if dense && hll::to_dense(h).is_err() {
            return false;
        }
        hll::store_max(h, max, max_bytes);
        hll::invalidate_cache(h);
        true
    };
    if let Some(mut e) = db.lookup_write(dst, now) {
        // Checked as an HLL by the merge, under the same locks.
        if hll_bytes(&e.val).is_err() {
            return out.error(NOT_HLL_ERR);
        }
        let h = unshared(e.val_unsignalled());
        if !write(h) {
            return out.error(INVALID_ERR);
        }
        e.mark_modified();
        drop(e);
        note(dbi, NOTIFY_STRING, "pfadd", dst);
        return out.ok();
    }
    let mut h = hll::new_sparse();
    if !write(&mut h) {
        return out.error(INVALID_ERR);
    }
    db.set(dst, Value::Str { data: h, raw: true }, 0, now);
    note(dbi, NOTIFY_STRING, "pfadd", dst);
    out.ok();
}

// ---------------------------------------------------------------------------
// PFDEBUG / PFSELFTEST
// ---------------------------------------------------------------------------

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key. The key is checked before the
/// subcommand, as in Redis; encoding changes are not signalled.
fn pfdebug(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let sub = args.get(1);
    let key = args.get(2);
    let now = ctx.now;
    let db = ctx.db();
    let Some(mut e) = db.lookup_write(key, now) else {
        return out.error("ERR The specified key does not exist");
    };
    if let Err(x) = hll_bytes(&e.val) {
        return out.error(not_hll_msg(x));
    }
    let h = unshared(e.val_unsignalled());
    let name = String::from_utf8_lossy(sub);
    let arity_err = || format!("ERR Wrong number of arguments for the '{name}' subcommand");
    let mut converted = false;
    match sub.to_ascii_lowercase().as_slice() {
        b"getreg" => {
            if args.len() != 3 {
                return out.error(&arity_err());
            }
            if hll::encoding(h) == hll::SPARSE {
                if hll::to_dense(h).is_err() {
                    return out.error(INVALID_ERR);
                }
                converted = true;
            }
            out.array_len(REGISTERS);
            let regs = &h[hll::HDR..];
            for i in 0..REGISTERS {
                out.int(hll::dense_get(regs, i) as i64);
            }
        }
        b"decode" => {
            if args.len() != 3 {
                return out.error(&arity_err());
            }
            if hll::encoding(h) != hll::SPARSE {
                return out.error("ERR HLL encoding is not sparse");
            }
            out.bulk(hll::decode(h).as_bytes());
        }
        b"encoding" => {
            if args.len() != 3 {
                return out.error(&arity_err());
            }
            out.status(if hll::encoding(h) == hll::DENSE { b"dense" } else { b"sparse" });
        }
        b"todense" => {
            if args.len() != 3 {
                return out.error(&arity_err());
            }
            if hll::encoding(h) == hll::SPARSE {
                if hll::to_dense(h).is_err() {
                    return out.error(INVALID_ERR);
                }
                converted = true;
            }
            out.int(converted as i64);
        }
        _ => return out.error(&format!("ERR Unknown PFDEBUG subcommand '{name}'")),
    }
    drop(e);
    if converted {
        // server.dirty++ (propagation), without signalling the key.
        db.hook.dirty += 1;
    }
}

fn pfselftest(_c: &mut Client, _args: Args, out: &mut Reply) {
    let mut s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let rand = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 33) as u32
    };
    match hll::selftest(rand, hll_sparse_max_bytes()) {
        Ok(()) => out.ok(),
        Err(msg) => out.error(&msg),
    }
}
