//! Pub/Sub: who is subscribed to what, and the delivery of messages.
//!
//! The registry (channel -> subscribers, pattern -> subscribers, shard
//! channel -> subscribers) is process-wide behind a read-write lock:
//! PUBLISH must count every receiver on every shard at the moment it runs,
//! and subscriptions change far less often than messages flow. A subscriber
//! is (shard, client id); its own subscriptions live in its `ClientShared`.
//!
//! A message for a client on another shard — or on this one, other than the
//! publisher itself — goes through that shard's FIFO inbox, as MONITOR lines
//! do, so messages arrive in the order they were published. The target shard
//! formats it for the client's protocol (RESP2 array or RESP3 push) and drops
//! it if the client unsubscribed meanwhile (Redis never delivers a message
//! after the unsubscribe reply). A publisher subscribed to its own channel
//! gets the message before the PUBLISH reply, as in Redis.

use super::client::{self, ClientShared};
use crate::protocol::Reply;
use crate::runtime;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// The three kinds of subscription.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn idx(self) -> usize {
        self as usize
    }
}

/// A client's own subscriptions. Patterns keep their subscription order
/// (Redis keeps a list, PUNSUBSCRIBE without arguments walks it).
#[derive(Default)]
pub struct Subs {
    pub channels: HashSet<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub shard: HashSet<Vec<u8>>,
}

impl Subs {
    /// Channels plus patterns: the count SUBSCRIBE / PSUBSCRIBE replies carry.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Every subscription: whether the client is in subscribed mode.
    pub fn total(&self) -> usize {
        self.count() + self.shard.len()
    }

    fn has(&self, kind: Kind, name: &[u8]) -> bool {
        match kind {
            Kind::Channel => self.channels.contains(name),
            Kind::Pattern => self.patterns.iter().any(|p| p == name),
            Kind::Shard => self.shard.contains(name),
        }
    }
}

type Subscribers = HashMap<Vec<u8>, Vec<(usize, u64)>>;

/// channels, patterns, shard channels.
static REGISTRY: RwLock<[Option<Subscribers>; 3]> = RwLock::new([None, None, None]);

fn with_reg<R>(kind: Kind, f: impl FnOnce(&mut Subscribers) -> R) -> R {
    let mut g = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    f(g[kind.idx()].get_or_insert_with(HashMap::new))
}

/// Subscribes `c` to `name`; false if it already was.
pub fn subscribe(c: &ClientShared, kind: Kind, name: &[u8]) -> bool {
    {
        let mut s = c.subs.borrow_mut();
        let added = match kind {
            Kind::Channel => s.channels.insert(name.to_vec()),
            Kind::Shard => s.shard.insert(name.to_vec()),
            Kind::Pattern => {
                let new = !s.patterns.iter().any(|p| p == name);
                if new {
                    s.patterns.push(name.to_vec());
                }
                new
            }
        };
        if !added {
            return false;
        }
    }
    let me = (runtime::shard_id(), c.id);
    with_reg(kind, |r| r.entry(name.to_vec()).or_default().push(me));
    c.set_pubsub_class();
    true
}

/// Unsubscribes `c` from `name`; false if it was not subscribed.
pub fn unsubscribe(c: &ClientShared, kind: Kind, name: &[u8]) -> bool {
    {
        let mut s = c.subs.borrow_mut();
        let removed = match kind {
            Kind::Channel => s.channels.remove(name),
            Kind::Shard => s.shard.remove(name),
            Kind::Pattern => match s.patterns.iter().position(|p| p == name) {
                Some(i) => {
                    s.patterns.remove(i);
                    true
                }
                None => false,
            },
        };
        if !removed {
            return false;
        }
    }
    with_reg(kind, |r| {
        if let Some(v) = r.get_mut(name) {
            v.retain(|&(_, id)| id != c.id);
            if v.is_empty() {
                r.remove(name);
            }
        }
    });
    c.set_pubsub_class();
    true
}

/// The client's subscriptions of one kind, in the order an unsubscribe
/// without arguments answers them.
pub fn names(c: &ClientShared, kind: Kind) -> Vec<Vec<u8>> {
    let s = c.subs.borrow();
    match kind {
        Kind::Channel => s.channels.iter().cloned().collect(),
        Kind::Pattern => s.patterns.clone(),
        Kind::Shard => s.shard.iter().cloned().collect(),
    }
}

/// Drops every subscription of a client that leaves (or RESETs).
pub fn forget(c: &ClientShared) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for n in names(c, kind) {
            unsubscribe(c, kind, &n);
        }
    }
}

/// One message on its way to the subscribers on one shard.
struct Message {
    kind: Kind,
    channel: Vec<u8>,
    payload: Vec<u8>,
}

/// Formats one message as `c`'s protocol wants it.
fn format(out: &mut Reply, kind: Kind, pattern: Option<&[u8]>, channel: &[u8], payload: &[u8]) {
    match pattern {
        Some(p) => {
            out.push_len(4);
            out.bulk(b"pmessage");
            out.bulk(p);
        }
        None => {
            out.push_len(3);
            out.bulk(if kind == Kind::Shard { b"smessage" } else { b"message" });
        }
    }
    out.bulk(channel);
    out.bulk(payload);
}

/// Appends a message to a client's pushed output, if it still holds the
/// subscription it was sent for, and wakes its connection.
fn deliver(cl: &ClientShared, m: &Message, pattern: Option<&[u8]>) {
    let sub_kind = if pattern.is_some() { Kind::Pattern } else { m.kind };
    if !cl.subs.borrow().has(sub_kind, pattern.unwrap_or(&m.channel)) {
        return;
    }
    let mut r = Reply::with_buf(std::mem::take(&mut *cl.pushed.borrow_mut()), cl.resp.get() == 3);
    format(&mut r, m.kind, pattern, &m.channel, &m.payload);
    *cl.pushed.borrow_mut() = r.buf;
    if let Some(w) = cl.push_waker.borrow_mut().take() {
        w.wake();
    }
}

/// PUBLISH / SPUBLISH: sends `payload` to every subscriber of `channel`
/// (and, for PUBLISH, of every matching pattern), returning how many
/// receivers it had. Messages for the publisher itself go into `out`, ahead
/// of the reply the caller writes next.
pub fn publish(c: &ClientShared, kind: Kind, channel: &[u8], payload: &[u8], out: &mut Reply) -> usize {
    publish_from(Some((c, out)), kind, channel, payload)
}

/// A message from the server itself (keyspace notifications): every
/// receiver, the local ones too, gets it through its shard's inbox.
pub fn publish_system(channel: &[u8], payload: &[u8]) {
    publish_from(None, Kind::Channel, channel, payload);
}

fn publish_from(mut from: Option<(&ClientShared, &mut Reply)>, kind: Kind, channel: &[u8], payload: &[u8]) -> usize {
    // (shard, id, pattern)
    let mut targets: Vec<(usize, u64, Option<Vec<u8>>)> = Vec::new();
    {
        let g = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        if let Some(subs) = g[kind.idx()].as_ref().and_then(|r| r.get(channel)) {
            targets.extend(subs.iter().map(|&(s, id)| (s, id, None)));
        }
        if kind == Kind::Channel {
            if let Some(pats) = g[Kind::Pattern.idx()].as_ref() {
                for (p, subs) in pats {
                    if crate::util::glob::glob_match(p, channel, false) {
                        targets.extend(subs.iter().map(|&(s, id)| (s, id, Some(p.clone()))));
                    }
                }
            }
        }
    }
    let n = targets.len();
    if n == 0 {
        return 0;
    }
    let m = Arc::new(Message {
        kind,
        channel: channel.to_vec(),
        payload: payload.to_vec(),
    });
    for (shard, group) in crate::util::group_by_shard(targets.into_iter().map(|(s, id, p)| (s, (id, p)))) {
        let mut group = group;
        if let Some((c, out)) = from.as_mut().filter(|_| shard == runtime::shard_id()) {
            // The publisher's own messages: straight into its reply stream.
            group.retain(|(id, p)| {
                if *id != c.id {
                    return true;
                }
                if c.subs
                    .borrow()
                    .has(if p.is_some() { Kind::Pattern } else { kind }, p.as_deref().unwrap_or(channel))
                {
                    format(out, kind, p.as_deref(), channel, payload);
                }
                false
            });
            if group.is_empty() {
                continue;
            }
        }
        let m = m.clone();
        runtime::send(
            shard,
            Box::new(move || {
                for (id, p) in group {
                    if let Some(cl) = client::get(id) {
                        deliver(&cl, &m, p.as_deref());
                    }
                }
            }),
        );
    }
    n
}

/// PUBSUB CHANNELS / SHARDCHANNELS: active channels matching `pattern`.
pub fn channels(kind: Kind, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
    let g = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    g[kind.idx()]
        .as_ref()
        .map(|r| {
            r.keys()
                .filter(|ch| pattern.is_none_or(|p| crate::util::glob::glob_match(p, ch, false)))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Subscribers of one channel (PUBSUB NUMSUB / SHARDNUMSUB).
pub fn numsub(kind: Kind, channel: &[u8]) -> usize {
    let g = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    g[kind.idx()].as_ref().and_then(|r| r.get(channel)).map_or(0, |v| v.len())
}

/// Distinct channels, patterns and shard channels with a subscriber (INFO,
/// PUBSUB NUMPAT).
pub fn sizes() -> [usize; 3] {
    let g = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    [0, 1, 2].map(|i| g[i].as_ref().map_or(0, |r| r.len()))
}
