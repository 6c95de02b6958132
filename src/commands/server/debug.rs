//! DEBUG (gated by enable-debug-command).

use crate::commands::connection::write_help;
use crate::commands::table::{AsyncFn, Table};
use crate::protocol::{Args, Reply};
use crate::runtime::{self};
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
