//! DEBUG (gated by enable-debug-command).

use crate::commands::connection::write_help;
use crate::commands::table::{AsyncFn, Table};
use crate::exec::on_every_shard;
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::locks::Mode;
use crate::runtime::{self, Ctx};
use crate::server::client::Client;
use std::sync::atomic::Ordering;

pub fn register(t: &mut Table) {
    t.asynch("debug", DEBUG);
}

// ---------------------------------------------------------------- DEBUG

const DEBUG: AsyncFn = |c, args, out| Box::pin(debug(c, args, out));

fn debug_allowed(c: &Client) -> bool {
    match runtime::rt_ref().debug_mode.load(Ordering::Relaxed) {
        1 => true,
        2 => c.shared.addr.starts_with("127.") || c.shared.addr.starts_with("[::1]"),
        _ => false,
    }
}

const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from RDB.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys will generate an exception and kill the server.",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "    Examples:",
    "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
    "      the database.",
    "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
    "      existing RDB file.",
    "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
    "      file to the database.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "TESSERA-PANIC-HOP <key> [<key> ...]",
    "    Lock the keys as a transaction, then panic inside the hop to the shard of",
    "    the last key (tests that a failed hop answers an error and leaks no lock).",
    "HELP",
    "    Prints this help.",
];

async fn debug(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if !debug_allowed(c) {
        return out.error("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    }
    if args.len() == 2 && args.is(1, "help") {
        return write_help(out, DEBUG_HELP);
    }
    if args.len() == 3 && args.is(1, "sleep") {
        let secs = crate::util::num::string2d(args.get(2)).or_else(|| strtod_prefix(args.get(2))).unwrap_or(0.0);
        let us = (secs * 1e6) as i64;
        if us > 0 {
            let d = std::time::Duration::from_micros(us as u64);
            // Stall every shard, as DEBUG SLEEP stalls all of Redis.
            let me = runtime::shard_id();
            for s in 0..runtime::nshards() {
                if s != me {
                    runtime::send(s, Box::new(move || std::thread::sleep(d)));
                }
            }
            std::thread::sleep(d);
        }
        return out.ok();
    }
    if (3..=5).contains(&args.len()) && args.is(1, "populate") {
        return populate(c.db, &args, out).await;
    }
    if args.len() >= 2 && args.is(1, "reload") {
        return reload(&args, out).await;
    }
    if args.len() >= 3 && args.is(1, "tessera-panic-hop") {
        return panic_hop(c.db, &args, out).await;
    }
    if args.len() == 3 && args.is(1, "set-active-expire") {
        // atoi semantics, as Redis.
        let on = strtod_prefix(args.get(2)).map(|v| v as i64 != 0).unwrap_or(false);
        runtime::ACTIVE_EXPIRE.store(on, Ordering::Relaxed);
        return out.ok();
    }
    let mut m = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    m.extend_from_slice(args.get(1));
    m.extend_from_slice(b"'. Try DEBUG HELP.");
    out.error_bytes(&m);
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: SAVE, empty every database
/// (and the function libraries), load dump.rdb back (debug.c).
async fn reload(args: &Args<'_>, out: &mut Reply) {
    let (mut flush, mut save, mut merge) = (true, true, false);
    for i in 2..args.len() {
        if args.is(i, "merge") {
            merge = true;
        } else if args.is(i, "noflush") {
            flush = false;
        } else if args.is(i, "nosave") {
            save = false;
        } else {
            return out.error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.");
        }
    }
    if save && crate::persistence::save::save().await.is_err() {
        return out.error("ERR");
    }
    let (path, databases) = match runtime::rt_ref().config.read() {
        Ok(c) => (c.dbfilename(), c.databases()),
        Err(_) => return out.error("ERR"),
    };
    fn empty(s: &mut runtime::Shard) {
        s.dbs.iter_mut().for_each(|d| d.clear());
        crate::server::tracking::flushed(s);
    }
    let flush = flush.then_some(empty as fn(&mut runtime::Shard));
    if crate::persistence::load::reload(&path, databases, flush, merge).await.is_err() {
        return out.error("ERR Error trying to load the RDB dump");
    }
    crate::log_warning!("DB reloaded by DEBUG RELOAD");
    out.ok();
}

/// DEBUG POPULATE <count> [<prefix>] [<size>] (debug.c): string keys
/// `<prefix>:<j>` for j in 0..count (prefix "key"; the key snprintf'd into
/// 128 bytes, so cut at 127, and the prefix taken as a C string, so cut at
/// its first NUL), each holding `value:<j>`, or with a size, exactly `size`
/// bytes of that text cut or padded with NULs; a key that exists is kept.
/// Values are created as createStringObject does (embstr / raw, never int).
/// Every shard walks all of 0..count and adds the keys it owns, in the
/// client's db, under a whole-shard lock of every shard (as FLUSHDB), so no
/// cross-shard transaction sees it half done. Not counted in `dirty`, so not
/// propagated (debug.c never bumps server.dirty).
async fn populate(db: usize, args: &Args<'_>, out: &mut Reply) {
    // getPositiveLongFromObjectOrReply passes its message down, so a
    // non-integer gets the range error too (verified against redis-server).
    const RANGE: &str = "ERR value is out of range, must be positive";
    let positive = |b: &[u8]| crate::util::num::string2ll(b).filter(|v| *v >= 0);
    let Some(count) = positive(args.get(2)) else {
        return out.error(RANGE);
    };
    let size = if args.len() == 5 {
        match positive(args.get(4)) {
            Some(s) => s as u64,
            None => return out.error(RANGE),
        }
    } else {
        0
    };
    let prefix: std::sync::Arc<[u8]> = if args.len() == 3 {
        b"key"[..].into()
    } else {
        let p = args.get(3);
        p[..memchr::memchr(0, p).unwrap_or(p.len())].into()
    };
    let count = count as u64;
    let r = on_every_shard(db, Mode::Exclusive, move |ctx: &mut Ctx| populate_shard(ctx, &prefix, count, size)).await;
    match r {
        Ok(parts) => match parts.into_iter().find_map(|p| p.err()) {
            None => out.ok(),
            Some(PopulateError::Expand) => out.error("ERR OOM in dictTryExpand"),
            Some(PopulateError::Value(size)) => out.error(&format!("ERR DEBUG POPULATE could not allocate a value of {size} bytes")),
        },
        Err(_) => out.error(err::SHARD_LOST),
    }
}

/// Why a shard's part of DEBUG POPULATE failed.
enum PopulateError {
    /// The key table could not be grown for the count (dictTryExpand).
    Expand,
    /// A value of this many bytes could not be allocated (Redis aborts on
    /// it; here the keys added so far stay and the command fails).
    Value(u64),
}

/// This shard's part of DEBUG POPULATE: the table is first sized for its
/// share of the keys, as dictTryExpand sizes Redis's for all of them.
fn populate_shard(ctx: &mut Ctx, prefix: &[u8], count: u64, size: u64) -> Result<(), PopulateError> {
    // snprintf(buf, 128, "%s:%lu", ...): at most 127 bytes.
    const KEY_MAX: usize = 127;
    let (n, me, now) = (runtime::nshards(), ctx.shard.id, ctx.now);
    let db = ctx.db();
    let share = usize::try_from(count / n as u64).unwrap_or(usize::MAX);
    if !db.try_reserve(share) {
        return Err(PopulateError::Expand);
    }
    let mut key = Vec::with_capacity(prefix.len() + 22);
    key.extend_from_slice(prefix);
    key.push(b':');
    let base = key.len();
    let mut text = b"value:".to_vec();
    for j in 0..count {
        key.truncate(base);
        crate::util::num::write_u64(&mut key, j);
        let k = &key[..key.len().min(KEY_MAX)];
        if runtime::shard_of_key(k, n) != me {
            continue;
        }
        db.populate(k, now, || -> Result<Value, PopulateError> {
            text.truncate(6);
            crate::util::num::write_u64(&mut text, j);
            if size == 0 {
                return Ok(Value::plain(text.clone()));
            }
            // createStringObject(NULL, size) is zeroed; the text is copied over its start.
            let mut v = zeroed(size).ok_or(PopulateError::Value(size))?;
            let n = text.len().min(v.len());
            v[..n].copy_from_slice(&text[..n]);
            Ok(Value::plain(v))
        })?;
    }
    Ok(())
}

/// `len` zero bytes, or None if the allocator refuses them (zcalloc would
/// abort). Zeroed by the allocator, so the pages of a large value are not
/// touched here (fresh pages from the OS are zero already).
fn zeroed(len: u64) -> Option<Vec<u8>> {
    let len = usize::try_from(len).ok()?;
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: `layout` has a non-zero size (checked above).
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a live block of the global allocator with `layout`
    // (size `len`, align 1, as Vec<u8> allocates), and all `len` bytes are
    // initialised (zero): a Vec of that length and capacity owns it.
    Some(unsafe { Vec::from_raw_parts(p, len, len) })
}

/// strtod on the longest numeric prefix (Redis's DEBUG SLEEP ignores trailing junk).
fn strtod_prefix(b: &[u8]) -> Option<f64> {
    let mut end = 0;
    for (i, ch) in b.iter().enumerate() {
        if ch.is_ascii_digit() || matches!(ch, b'.' | b'-' | b'+' | b'e' | b'E') {
            end = i + 1;
        } else {
            break;
        }
    }
    (1..=end).rev().find_map(|e| std::str::from_utf8(&b[..e]).ok()?.parse::<f64>().ok())
}

/// DEBUG TESSERA-PANIC-HOP: a transaction whose hop panics (a handler bug
/// simulated). The shard survives, the client gets an error, the guard
/// releases every lock.
async fn panic_hop(db: usize, args: &Args<'_>, out: &mut Reply) {
    use crate::runtime::locks::{fingerprint, LockReq, Mode};
    use crate::runtime::tx::Tx;
    let n = runtime::nshards();
    let keys = (2..args.len())
        .map(|i| args.get(i))
        .map(|k| (runtime::shard_of_key(k, n), (fingerprint(db, k), Mode::Exclusive)));
    let parts = crate::util::group_by_shard(keys)
        .into_iter()
        .map(|(s, keys)| (s, LockReq { keys, shard: None }))
        .collect();
    let last = runtime::shard_of_key(args.get(args.len() - 1), n);
    let mut tx = Tx::begin(db, parts, Vec::new()).await;
    let r = tx
        .hop(last, |_ctx: &mut crate::runtime::Ctx| -> () {
            panic!("DEBUG TESSERA-PANIC-HOP");
        })
        .await;
    drop(tx);
    match r {
        Ok(()) => out.ok(),
        Err(_) => out.error("ERR internal error: the hop panicked (DEBUG TESSERA-PANIC-HOP)"),
    }
}
