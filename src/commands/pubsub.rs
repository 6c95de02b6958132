//! Pub/Sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH,
//! PUBSUB. The registry and the delivery are `server/pubsub.rs`.

use super::table::Table;
use crate::protocol::{Args, Reply};
use crate::server::client::Client;
use crate::server::pubsub::{self, Kind};

pub fn register(t: &mut Table) {
    t.asynch("subscribe", |c, a, o| Box::pin(subscribe(c, a, o, Kind::Channel)));
    t.asynch("psubscribe", |c, a, o| Box::pin(subscribe(c, a, o, Kind::Pattern)));
    t.asynch("ssubscribe", |c, a, o| Box::pin(subscribe(c, a, o, Kind::Shard)));
    t.asynch("unsubscribe", |c, a, o| Box::pin(unsubscribe(c, a, o, Kind::Channel)));
    t.asynch("punsubscribe", |c, a, o| Box::pin(unsubscribe(c, a, o, Kind::Pattern)));
    t.asynch("sunsubscribe", |c, a, o| Box::pin(unsubscribe(c, a, o, Kind::Shard)));
    t.client("publish", |c, a, o| publish(c, a, o, Kind::Channel));
    t.client("spublish", |c, a, o| publish(c, a, o, Kind::Shard));
    t.client("pubsub|channels", |_c, a, o| channels(a, o, Kind::Channel));
    t.client("pubsub|shardchannels", |_c, a, o| channels(a, o, Kind::Shard));
    t.client("pubsub|numsub", |_c, a, o| numsub(a, o, Kind::Channel));
    t.client("pubsub|shardnumsub", |_c, a, o| numsub(a, o, Kind::Shard));
    t.client("pubsub|numpat", |_c, _a, o| o.int(pubsub::sizes()[1] as i64));
    t.client("pubsub|help", |_c, _a, o| super::connection::write_help(o, PUBSUB_HELP));
}

/// The commands a RESP2 client in subscribed mode may run (processCommand).
pub fn allowed_in_subscribed_mode(name: &str) -> bool {
    matches!(
        name,
        "ping" | "subscribe" | "ssubscribe" | "unsubscribe" | "sunsubscribe" | "psubscribe" | "punsubscribe" | "quit" | "reset"
    )
}

fn kind_words(kind: Kind) -> (&'static [u8], &'static [u8]) {
    match kind {
        Kind::Channel => (b"subscribe", b"unsubscribe"),
        Kind::Pattern => (b"psubscribe", b"punsubscribe"),
        Kind::Shard => (b"ssubscribe", b"sunsubscribe"),
    }
}

fn confirm(out: &mut Reply, word: &[u8], name: Option<&[u8]>, count: i64) {
    out.push_len(3);
    out.bulk(word);
    match name {
        Some(n) => out.bulk(n),
        None => out.null(),
    }
    out.int(count);
}

async fn subscribe(c: &mut Client, args: Args<'_>, out: &mut Reply, kind: Kind) {
    let word = kind_words(kind).0;
    let names: Vec<&[u8]> = (1..args.len()).map(|i| args.get(i)).collect();
    let counts = pubsub::subscribe(&c.shared, kind, &names).await;
    for (n, cnt) in names.iter().zip(counts) {
        confirm(out, word, Some(n), cnt);
    }
}

async fn unsubscribe(c: &mut Client, args: Args<'_>, out: &mut Reply, kind: Kind) {
    let word = kind_words(kind).1;
    let names = (args.len() > 1).then(|| (1..args.len()).map(|i| args.get(i).to_vec()).collect());
    let done = pubsub::unsubscribe(&c.shared, kind, names).await;
    // Messages that arrived while every shard dropped the subscriptions were
    // published before the unsubscribe: they go out ahead of its confirmations.
    let early = std::mem::take(&mut *c.shared.pushed.borrow_mut());
    out.raw(&early);
    if done.is_empty() {
        // Nothing to leave: one confirmation with a null name.
        let s = c.shared.subs.borrow();
        let cnt = if kind == Kind::Shard { s.shard.len() } else { s.count() };
        return confirm(out, word, None, cnt as i64);
    }
    for (n, cnt) in done {
        confirm(out, word, Some(&n), cnt);
    }
}

fn publish(c: &mut Client, args: Args, out: &mut Reply, kind: Kind) {
    let n = pubsub::publish(&c.shared, kind, args.get(1), args.get(2), out);
    out.int(n as i64);
}

fn channels(args: Args, out: &mut Reply, kind: Kind) {
    let pat = (args.len() > 2).then(|| args.get(2));
    let v = pubsub::channels(kind, pat);
    out.array_len(v.len());
    for ch in v {
        out.bulk(&ch);
    }
}

fn numsub(args: Args, out: &mut Reply, kind: Kind) {
    // A flat array in RESP3 too (Redis 7.0).
    out.array_len(2 * (args.len() - 2));
    for i in 2..args.len() {
        out.bulk(args.get(i));
        out.int(pubsub::numsub(kind, args.get(i)) as i64);
    }
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];
