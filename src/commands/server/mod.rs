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
    t.client("lastsave", lastsave);
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
    match crate::persistence::save::save().await {
        Ok(()) => out.ok(),
        Err(_) => out.error("ERR"),
    }
}

const SHUTDOWN: AsyncFn = |c, args, out| Box::pin(shutdown(c, args, out));

async fn shutdown(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    let (mut abort, mut other, mut save, mut nosave, mut force) = (false, false, false, false, false);
    for i in 1..args.len() {
        if args.is(i, "nosave") {
            nosave = true;
            other = true;
        } else if args.is(i, "save") {
            save = true;
            other = true;
        } else if args.is(i, "now") {
            other = true;
        } else if args.is(i, "force") {
            force = true;
            other = true;
        } else if args.is(i, "abort") {
            abort = true;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    if (abort && other) || (save && nosave) {
        return out.error(err::SYNTAX);
    }
    if abort {
        return out.error("ERR No shutdown in progress.");
    }
    crate::log_warning!("User requested shutdown...");
    if !final_save_allows_exit(save, nosave, force).await {
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
