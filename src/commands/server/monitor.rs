//! MONITOR: the command; the feed lives in the server layer (`server/monitor.rs`).

use crate::commands::table::Table;
use crate::protocol::{Args, Reply};
use crate::server::client::Client;

pub fn register(t: &mut Table) {
    t.client("monitor", monitor);
}

fn monitor(c: &mut Client, _args: Args, out: &mut Reply) {
    crate::server::monitor::add(c);
    out.ok();
}
