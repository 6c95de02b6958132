//! Server commands, one file per concern: `command.rs` (COMMAND), `info.rs`
//! (INFO), `config.rs` (CONFIG), `debug.rs` (DEBUG), `monitor.rs` (MONITOR),
//! `memory.rs` (MEMORY, the maxmemory / lazyfree directives);
//! DBSIZE, FLUSHDB, FLUSHALL, TIME, SAVE, LASTSAVE and SHUTDOWN live here.

mod command;
mod config;
mod debug;
mod info;
mod memory;
mod monitor;

pub use config::{apply_runtime_config, configure_encodings};
pub use memory::configure_memory;

use crate::commands::table::{AsyncFn, Table};
use crate::exec::on_every_shard;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::locks::Mode;
use crate::runtime::Ctx;
use crate::runtime::{self, now_us};
use crate::server::client::Client;
use std::sync::atomic::Ordering;

pub fn register(t: &mut Table) {
    t.asynch("dbsize", DBSIZE);
    t.asynch("flushdb", FLUSHDB);
    t.asynch("flushall", FLUSHALL);
    t.client("time", time);
    t.asynch("save", SAVE);
    t.asynch("bgrewriteaof", BGREWRITEAOF);
    t.client("lastsave", lastsave);
    t.asynch("bgsave", BGSAVE);
    t.asynch("shutdown", SHUTDOWN);
    command::register(t);
    info::register(t);
    config::register(t);
    monitor::register(t);
    debug::register(t);
    memory::register(t);
}

// ---------------------------------------------------------------- DBSIZE, FLUSH*

const DBSIZE: AsyncFn = |c, args, out| Box::pin(dbsize(c, args, out));

async fn dbsize(c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    let db = c.db;
    match on_every_shard(db, Mode::Shared, move |ctx: &mut Ctx| ctx.shard.dbs[db].len()).await {
        Ok(n) => out.int(n.into_iter().sum::<usize>() as i64),
        Err(_) => out.error(err::SHARD_LOST),
    }
}

/// FLUSHDB/FLUSHALL's optional ASYNC|SYNC argument.
fn flush_flags_ok(args: &Args) -> bool {
    match args.len() {
        1 => true,
        2 => args.is(1, "async") || args.is(1, "sync"),
        _ => false,
    }
}

/// getFlushCommandFlags: ASYNC, SYNC, or `lazyfree-lazy-user-flush`.
fn flush_async(args: &Args) -> bool {
    if args.len() == 2 {
        args.is(1, "async")
    } else {
        crate::keyspace::lazyfree::LAZY_USER_FLUSH.load(Ordering::Relaxed)
    }
}

const FLUSHDB: AsyncFn = |c, args, out| Box::pin(flushdb(c, args, out));

async fn flushdb(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if !flush_flags_ok(&args) {
        return out.error(err::SYNTAX);
    }
    let db = c.db;
    let lazy = flush_async(&args);
    match on_every_shard(db, Mode::Exclusive, move |ctx: &mut Ctx| {
        if lazy {
            ctx.shard.dbs[db].clear_async();
        } else {
            ctx.shard.dbs[db].clear();
        }
        crate::server::tracking::flushed(ctx.shard);
    })
    .await
    {
        Ok(_) => out.ok(),
        Err(_) => out.error(err::SHARD_LOST),
    }
}

const FLUSHALL: AsyncFn = |c, args, out| Box::pin(flushall(c, args, out));

async fn flushall(_c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if !flush_flags_ok(&args) {
        return out.error(err::SYNTAX);
    }
    let lazy = flush_async(&args);
    match on_every_shard(0, Mode::Exclusive, move |ctx: &mut Ctx| {
        if lazy {
            ctx.shard.dbs.iter_mut().for_each(|d| d.clear_async());
        } else {
            ctx.shard.dbs.iter_mut().for_each(|d| d.clear());
        }
        crate::server::tracking::flushed(ctx.shard);
    })
    .await
    {
        Ok(_) => out.ok(),
        Err(_) => out.error(err::SHARD_LOST),
    }
}

// ---------------------------------------------------------------- TIME, LASTSAVE, SHUTDOWN

fn time(_c: &mut Client, _args: Args, out: &mut Reply) {
    let us = now_us();
    out.array_len(2);
    out.bulk_int((us / 1_000_000) as i64);
    out.bulk_int((us % 1_000_000) as i64);
}

fn lastsave(_c: &mut Client, _args: Args, out: &mut Reply) {
    out.int(runtime::rt_ref().lastsave.load(Ordering::Relaxed) as i64);
}

const SAVE: AsyncFn = |c, args, out| Box::pin(save(c, args, out));

/// SAVE: a synchronous RDB snapshot (persistence/save.rs); Redis answers a
/// bare "-ERR" when it fails (the log says why).
async fn save(_c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    if crate::persistence::save::bgsave_in_progress() {
        return out.error("ERR Background save already in progress");
    }
    match crate::persistence::save::save().await {
        Ok(()) => out.ok(),
        Err(_) => out.error("ERR"),
    }
}

const BGSAVE: AsyncFn = |c, args, out| Box::pin(bgsave(c, args, out));

/// BGSAVE [SCHEDULE] (rdb.c bgsaveCommand): a forkless background snapshot
/// (persistence/snapshot.rs), answered once its point is taken. No other
/// kind of child exists here, so SCHEDULE changes nothing outside EXEC.
async fn bgsave(_c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if args.len() > 1 && !(args.len() == 2 && args.is(1, "schedule")) {
        return out.error(err::SYNTAX);
    }
    if crate::persistence::save::bgsave_in_progress() {
        return out.error("ERR Background save already in progress");
    }
    // An AOF rewrite holds the one snapshot: SCHEDULE waits for it, as a fork waits for the AOF child.
    if crate::persistence::aof::REWRITING.load(std::sync::atomic::Ordering::Relaxed) {
        if args.len() == 2 {
            crate::persistence::save::schedule_bgsave();
            return out.status(b"Background saving scheduled");
        }
        return out
            .error("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.");
    }
    // Inside EXEC the point would cut through the transaction (server.in_exec).
    if crate::runtime::tx::in_transaction() {
        crate::persistence::save::schedule_bgsave();
        return out.status(b"Background saving scheduled");
    }
    if !crate::persistence::save::bgsave_start().await {
        return out.error("ERR Background save already in progress");
    }
    out.status(b"Background saving started");
}

const BGREWRITEAOF: AsyncFn = |c, args, out| Box::pin(bgrewriteaof(c, args, out));

/// BGREWRITEAOF: the rewrite runs in the background (its own task on this
/// shard); the reply comes at once, as Redis's. With `appendonly no` it
/// writes a new base file and the manifest only (as Redis 7.0).
async fn bgrewriteaof(_c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    use crate::persistence::aof;
    use std::sync::atomic::Ordering;
    if aof::REWRITING.load(Ordering::Acquire) {
        return out.error("ERR Background append only file rewriting already in progress");
    }
    // A BGSAVE holds the one snapshot: the cron starts the rewrite after it (hasActiveChildProcess).
    if crate::persistence::save::bgsave_in_progress() {
        aof::REWRITE_SCHEDULED.store(true, Ordering::Relaxed);
        // A rewrite asked for by hand resets the count, as bgrewriteaofCommand.
        aof::CONSECUTIVE_FAILURES.store(0, Ordering::Relaxed);
        return out.status(b"Background append only file rewriting scheduled");
    }
    // rewriteAppendOnlyFileBackground's one early failure: the directory
    // (with appendonly no it may not exist yet: the rewrite makes a base there).
    if let Err(e) = aof::ensure_dir() {
        crate::log_warning!("{}", e);
        aof::LAST_REWRITE_OK.store(false, Ordering::Relaxed);
        return out.error("ERR Can't execute an AOF background rewriting. Please check the server logs for more information.");
    }
    if aof::REWRITING.swap(true, Ordering::AcqRel) {
        return out.error("ERR Background append only file rewriting already in progress");
    }
    aof::spawn_rewrite();
    out.status(b"Background append only file rewriting started");
}

const SHUTDOWN: AsyncFn = |c, args, out| Box::pin(shutdown(c, args, out));

/// SHUTDOWN's options, parsed as shutdownCommand parses them.
pub struct ShutdownOpts {
    pub abort: bool,
    pub save: bool,
    pub nosave: bool,
    pub force: bool,
}

/// SHUTDOWN's arguments, or the error for a bad combination; ABORT with
/// nothing to abort is refused here too (no shutdown ever waits).
pub fn parse_shutdown(args: &Args<'_>) -> Result<ShutdownOpts, &'static str> {
    let (mut other, mut o) = (
        false,
        ShutdownOpts {
            abort: false,
            save: false,
            nosave: false,
            force: false,
        },
    );
    for i in 1..args.len() {
        if args.is(i, "nosave") {
            o.nosave = true;
            other = true;
        } else if args.is(i, "save") {
            o.save = true;
            other = true;
        } else if args.is(i, "now") {
            other = true;
        } else if args.is(i, "force") {
            o.force = true;
            other = true;
        } else if args.is(i, "abort") {
            o.abort = true;
        } else {
            return Err(err::SYNTAX);
        }
    }
    if (o.abort && other) || (o.save && o.nosave) {
        return Err(err::SYNTAX);
    }
    if o.abort {
        return Err("ERR No shutdown in progress.");
    }
    // A slow script: only NOSAVE may stop the server, and it stops the
    // script whatever it wrote (Redis exits under it).
    if crate::scripting::busy() {
        if !o.nosave {
            return Err(crate::scripting::busy_error());
        }
        crate::scripting::kill_for_shutdown();
    }
    Ok(o)
}

async fn shutdown(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    let o = match parse_shutdown(&args) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    crate::log_warning!("User requested shutdown...");
    if !final_save_allows_exit(o.save, o.nosave, o.force).await {
        return out.error("ERR Errors trying to SHUTDOWN. Check logs.");
    }
    crate::server::initiate_shutdown();
    // Redis answers nothing: the connection just closes.
    c.close_after_reply = true;
}

/// Redis's finishShutdown: a final RDB save is due with SAVE, or when save
/// points are configured and NOSAVE is not given; if it fails, only FORCE
/// exits anyway. Save points count only when a `save` directive was given
/// (see `Config::shutdown_save_points`). Shared with SIGTERM/SIGINT.
pub async fn final_save_allows_exit(save: bool, nosave: bool, force: bool) -> bool {
    let points = runtime::rt_ref().config.read().map(|c| !c.shutdown_save_points().is_empty()).unwrap_or(false);
    if !((points && !nosave) || save) {
        return true;
    }
    crate::log_notice!("Saving the final RDB snapshot before exiting.");
    if crate::persistence::save::save().await.is_ok() {
        return true;
    }
    if force {
        crate::log_warning!("Error trying to save the DB. Exit anyway.");
        true
    } else {
        crate::log_warning!("Error trying to save the DB, can't exit.");
        false
    }
}
