//! MONITOR: the process-wide list of monitor clients and the feed that sends
//! each executed command to them, as Redis's replicationFeedMonitors.

use super::client::{self, Client, ClientShared};
use crate::commands::table::{self, flags};
use crate::protocol::Args;
use crate::runtime::{self, now_us};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// MONITOR clients: (shard, client id). Consulted only while `rt.monitors > 0`.
static MONITORS: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());

/// Makes `c` a MONITOR client (idempotent).
pub fn add(c: &Client) {
    if c.shared.monitor.get() {
        return;
    }
    c.shared.monitor.set(true);
    if let Ok(mut m) = MONITORS.lock() {
        m.push((runtime::shard_id(), c.id));
    }
    runtime::rt_ref().monitors.fetch_add(1, Ordering::SeqCst);
}

pub fn remove(c: &Rc<ClientShared>) {
    c.monitor.set(false);
    if let Ok(mut m) = MONITORS.lock() {
        let before = m.len();
        m.retain(|&(_, id)| id != c.id);
        if m.len() < before {
            runtime::rt_ref().monitors.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Sends one command line to every MONITOR client, as replicationFeedMonitors.
pub fn feed(c: &Client, args: &Args) {
    let Ok(cmd) = table::lookup(args) else { return };
    if cmd.has(flags::ADMIN) || matches!(cmd.meta.name, "auth" | "hello" | "monitor") {
        return;
    }
    let us = now_us();
    let mut line = format!("+{}.{:06} [{} {}] ", us / 1_000_000, us % 1_000_000, c.db, c.shared.addr).into_bytes();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        crate::util::sds::repr_into(&mut line, a);
    }
    line.extend_from_slice(b"\r\n");
    let targets: Vec<(usize, u64)> = MONITORS.lock().map(|m| m.clone()).unwrap_or_default();
    for (shard, id) in targets {
        let l = line.clone();
        let deliver = move || {
            client::for_each(|cl| {
                if cl.id == id && cl.monitor.get() {
                    cl.pushed.borrow_mut().extend_from_slice(&l);
                    if let Some(w) = cl.push_waker.borrow_mut().take() {
                        w.wake();
                    }
                }
            })
        };
        // Always through the monitor shard's FIFO inbox, even from that shard, so lines
        // fed by different shards keep the order in which the commands ran.
        runtime::send(shard, Box::new(deliver));
    }
}
