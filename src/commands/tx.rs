//! MULTI, EXEC, DISCARD, WATCH, UNWATCH (Redis's multi.c). Queuing happens in
//! dispatch (every command after MULTI but these); the queue, the watches and
//! EXEC's atomic run across shards live in the transaction layer
//! (`exec/multi.rs`).

use super::table::{AsyncFn, Table};
use crate::protocol::{Args, Reply};
use crate::server::client::Client;

pub fn register(t: &mut Table) {
    t.client("multi", multi);
    t.client("discard", discard);
    t.client("unwatch", unwatch);
    t.asynch("watch", WATCH);
    t.asynch("exec", EXEC);
}

fn multi(c: &mut Client, _args: Args, out: &mut Reply) {
    if c.multi.is_some() {
        return out.error("ERR MULTI calls can not be nested");
    }
    c.multi = Some(Default::default());
    c.shared.multi.set(0);
    out.ok();
}

/// discardTransaction: the queue goes and so do the watches.
pub fn discard_transaction(c: &mut Client) {
    c.end_multi();
    c.shared.watch.borrow_mut().unwatch_all();
}

fn discard(c: &mut Client, _args: Args, out: &mut Reply) {
    if c.multi.is_none() {
        return out.error("ERR DISCARD without MULTI");
    }
    discard_transaction(c);
    out.ok();
}

fn unwatch(c: &mut Client, _args: Args, out: &mut Reply) {
    c.shared.watch.borrow_mut().unwatch_all();
    out.ok();
}

const WATCH: AsyncFn = |c, args, out| Box::pin(watch(c, args, out));

async fn watch(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if c.multi.is_some() {
        return out.error("ERR WATCH inside MULTI is not allowed");
    }
    // No point in watching once a watched key has changed.
    if !c.shared.watch.borrow().dirty() {
        // The set leaves the client while the shards register it (the borrow
        // must not live across the await).
        let mut ws = std::mem::take(&mut *c.shared.watch.borrow_mut());
        ws.watch(c.db, &args).await;
        *c.shared.watch.borrow_mut() = ws;
    }
    out.ok();
}

const EXEC: AsyncFn = |c, args, out| Box::pin(exec(c, args, out));

async fn exec(c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    let Some(q) = c.end_multi() else {
        return out.error("ERR EXEC without MULTI");
    };
    let mut ws = std::mem::take(&mut *c.shared.watch.borrow_mut());
    if q.aborted {
        ws.unwatch_all();
        return out.error("EXECABORT Transaction discarded because of previous errors.");
    }
    // As in Redis the client is still in MULTI while EXEC runs (CLIENT LIST
    // inside the transaction shows flag x and the queue's length).
    c.shared.multi.set(q.len() as i64);
    c.shared.multi_mem.set(q.mem());
    crate::exec::multi::exec(c, q, &mut ws, out).await;
    c.shared.multi.set(-1);
    c.shared.multi_mem.set(0);
    // EXEC always ends the watches (the check removed them from the shards).
    ws.unwatch_all();
}
