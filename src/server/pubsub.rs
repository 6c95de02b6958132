//! Pub/Sub: who is subscribed to what, and the delivery of messages.
//!
//! **Per-shard registry.** Each shard keeps, thread-local and lock-free:
//! - its own subscribers: (kind, channel or pattern) -> the clients on this
//!   shard subscribed to it;
//! - a *directory* of every shard's subscriber counts per channel and
//!   pattern, the same on every shard.
//!
//! PUBLISH reads only its shard's directory: the receivers are the sum of
//! the counts of the channel and of every matching pattern, and each shard
//! with receivers gets **one** message (carrying the matched patterns), which
//! that shard hands to its own subscribers. Subscriptions change far less
//! often than messages flow, so a (un)subscribe pays instead: it updates
//! every shard's directory and answers once every shard has applied it.
//!
//! **Exactly the messages published after the subscribe.** A new local
//! subscription records which shards have acknowledged its directory update
//! (`Sub::ready`); each acknowledgement travels back through the same FIFO
//! inbox as that shard's messages. A message from shard j is handed to a
//! subscriber only once j's acknowledgement arrived: j counted the
//! subscriber in a PUBLISH exactly when it had applied the update, i.e. when
//! the message follows the acknowledgement. So PUBLISH's count is exactly the
//! number of clients that get the message, and nothing published before a
//! subscribe reaches it. An unsubscribe stops delivery at once (the local
//! entry goes) and answers after every directory dropped it.
//!
//! A message for a client on another shard, or on this one other than the
//! publisher itself, goes through that shard's FIFO inbox, as MONITOR lines
//! do, so messages arrive in the order they were published. The target shard
//! formats it for the client's protocol (RESP2 array or RESP3 push). A
//! publisher subscribed to its own channel gets the message before the
//! PUBLISH reply, as in Redis.

use super::client::{self, ClientShared};
use crate::protocol::Reply;
use crate::runtime;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

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

/// A subscription on this shard: the client, and which shards' directories
/// have acknowledged its arrival (`ready`) and, once it is being dropped,
/// its departure (`gone`); one bit per shard (shards past 63 always count as
/// acknowledged). `gen` tells a client's successive subscriptions apart.
struct Sub {
    id: u64,
    gen: u64,
    ready: u64,
    gone: u64,
}

fn bit(shard: usize) -> u64 {
    if shard < 64 {
        1 << shard
    } else {
        0
    }
}

fn all_shards() -> u64 {
    let n = runtime::nshards();
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

impl Sub {
    /// Whether a message sent by shard `from` is this subscription's.
    fn takes_from(&self, from: usize) -> bool {
        from >= 64 || (self.ready & bit(from) != 0 && self.gone & bit(from) == 0)
    }
}

/// One shard's registry: its subscribers and the directory of every shard's counts.
#[derive(Default)]
struct Registry {
    local: [HashMap<Vec<u8>, Vec<Sub>>; 3],
    /// (kind) name -> subscribers per shard.
    dir: [HashMap<Vec<u8>, Vec<u32>>; 3],
    /// Pending acknowledgements of this shard's (un)subscribes: token -> (left, waker).
    acks: HashMap<u64, (usize, Option<std::task::Waker>)>,
    next: u64,
}

thread_local! {
    static REG: RefCell<Registry> = RefCell::new(Registry::default());
}

fn with_reg<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    REG.with(|r| f(&mut r.borrow_mut()))
}

impl Registry {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Adds `delta` to `from`'s count of each name in the directory.
    fn apply(&mut self, kind: Kind, names: &[(Vec<u8>, u64)], from: usize, delta: i32) {
        let n = runtime::nshards();
        let d = &mut self.dir[kind.idx()];
        for (name, _) in names {
            let counts = d.entry(name.clone()).or_insert_with(|| vec![0; n]);
            if counts.len() <= from {
                counts.resize(from + 1, 0);
            }
            counts[from] = (counts[from] as i64 + delta as i64).max(0) as u32;
            if counts.iter().all(|&c| c == 0) {
                d.remove(name);
            }
        }
    }

    /// Shard `from` applied the change of these local subscriptions.
    fn acknowledged(&mut self, kind: Kind, names: &[(Vec<u8>, u64)], from: usize, delta: i32) {
        let all = all_shards();
        let local = &mut self.local[kind.idx()];
        for (name, gen) in names {
            let Some(v) = local.get_mut(name) else { continue };
            if let Some(sub) = v.iter_mut().find(|s| s.gen == *gen) {
                if delta > 0 {
                    sub.ready |= bit(from);
                } else {
                    sub.gone |= bit(from);
                }
            }
            if delta < 0 {
                // Every shard dropped it: nothing can be on its way any more.
                v.retain(|s| s.gen != *gen || s.gone & all != all);
                if v.is_empty() {
                    local.remove(name);
                }
            }
        }
    }
}

/// Tells every shard's directory about this shard's change and, with `wait`, resolves once all applied it.
/// Each acknowledgement comes back through this shard's inbox, behind every
/// message that shard sent before applying the change: it marks where the
/// subscription starts (or stops) taking that shard's messages.
async fn spread(kind: Kind, names: Vec<(Vec<u8>, u64)>, delta: i32, wait: bool) {
    if names.is_empty() {
        return;
    }
    let n = runtime::nshards();
    let me = runtime::shard_id();
    let token = if wait {
        with_reg(|r| {
            let t = r.next_id();
            r.acks.insert(t, (n, None));
            t
        })
    } else {
        0
    };
    // The acknowledgement of shard `from`, run here (through this shard's inbox).
    let ack = move |names: Arc<Vec<(Vec<u8>, u64)>>, from: usize| -> crate::runtime::inbox::Job {
        Box::new(move || {
            with_reg(|r| {
                r.acknowledged(kind, &names, from, delta);
                if let Some(a) = r.acks.get_mut(&token) {
                    a.0 -= 1;
                    if a.0 == 0 {
                        if let Some(w) = a.1.take() {
                            w.wake();
                        }
                    }
                }
            })
        })
    };
    // This shard's directory changes at once (its own later PUBLISHes and
    // PUBSUB see it); its acknowledgement is queued now, behind the messages
    // it had queued for itself before the change and ahead of later ones.
    with_reg(|r| r.apply(kind, &names, me, delta));
    let names = Arc::new(names);
    runtime::send(me, ack(names.clone(), me));
    for s in (0..n).filter(|&s| s != me) {
        let names = names.clone();
        runtime::send(
            s,
            Box::new(move || {
                with_reg(|r| r.apply(kind, &names, me, delta));
                runtime::send(me, ack(names, runtime::shard_id()));
            }),
        );
    }
    if token == 0 {
        return;
    }
    /// Forgets the token if the waiting command is dropped.
    struct Forget(u64);
    impl Drop for Forget {
        fn drop(&mut self) {
            let t = self.0;
            let _ = REG.try_with(|r| r.try_borrow_mut().map(|mut r| r.acks.remove(&t)));
        }
    }
    let _forget = Forget(token);
    futures_lite::future::poll_fn(|cx| {
        with_reg(|r| match r.acks.get_mut(&token) {
            Some(a) if a.0 > 0 => {
                a.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
            _ => std::task::Poll::Ready(()),
        })
    })
    .await;
}

/// Subscribes `c` to each name (in order): the subscription count after
/// each, for the confirmations, once every shard knows.
pub async fn subscribe(c: &ClientShared, kind: Kind, names: &[&[u8]]) -> Vec<i64> {
    let mut counts = Vec::with_capacity(names.len());
    let mut added: Vec<(Vec<u8>, u64)> = Vec::new();
    for name in names {
        let new = {
            let mut s = c.subs.borrow_mut();
            match kind {
                Kind::Channel => s.channels.insert(name.to_vec()),
                Kind::Shard => s.shard.insert(name.to_vec()),
                Kind::Pattern => {
                    let new = !s.patterns.iter().any(|p| p == name);
                    if new {
                        s.patterns.push(name.to_vec());
                    }
                    new
                }
            }
        };
        if new {
            let gen = with_reg(|r| {
                let gen = r.next_id();
                r.local[kind.idx()].entry(name.to_vec()).or_default().push(Sub {
                    id: c.id,
                    gen,
                    ready: 0,
                    gone: 0,
                });
                gen
            });
            added.push((name.to_vec(), gen));
        }
        counts.push(count_of(c, kind));
    }
    c.set_pubsub_class();
    spread(kind, added, 1, true).await;
    counts
}

/// The count a (un)subscribe confirmation carries: channels + patterns, or
/// shard channels for the shard kind (Redis 7.0).
fn count_of(c: &ClientShared, kind: Kind) -> i64 {
    let s = c.subs.borrow();
    (if kind == Kind::Shard { s.shard.len() } else { s.count() }) as i64
}

/// Ends the client's subscription to `name` (its confirmation counts and
/// subscribed mode follow at once); the registry entry's generation, for
/// [`spread`], or None if it had none.
fn leave(c: &ClientShared, kind: Kind, name: &[u8]) -> Option<u64> {
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
            return None;
        }
    }
    with_reg(|r| {
        r.local[kind.idx()]
            .get(name)
            .and_then(|v| v.iter().filter(|s| s.id == c.id && s.gone == 0).map(|s| s.gen).max())
    })
}

/// Unsubscribes `c` from each name (every subscription of the kind when
/// `names` is None): (name, count after) per confirmation, once every shard
/// dropped them.
pub async fn unsubscribe(c: &ClientShared, kind: Kind, names: Option<Vec<Vec<u8>>>) -> Vec<(Vec<u8>, i64)> {
    let names = names.unwrap_or_else(|| self::names(c, kind));
    let mut out = Vec::with_capacity(names.len());
    let mut removed = Vec::new();
    for n in names {
        if let Some(gen) = leave(c, kind, &n) {
            removed.push((n.clone(), gen));
        }
        let cnt = count_of(c, kind);
        out.push((n, cnt));
    }
    c.set_pubsub_class();
    spread(kind, removed, -1, true).await;
    out
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

/// Drops every subscription of a client that leaves (or RESETs); the other
/// shards' directories follow without being waited for.
pub fn forget(c: &ClientShared) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        let mut removed = Vec::new();
        for n in names(c, kind) {
            if let Some(gen) = leave(c, kind, &n) {
                removed.push((n, gen));
            }
        }
        if !removed.is_empty() {
            // Nothing awaits inside when `wait` is false: one poll sends everything.
            let mut fut = std::pin::pin!(spread(kind, removed, -1, false));
            let _ = fut.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        }
    }
    c.set_pubsub_class();
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

/// Appends a message to a client's pushed output and wakes its connection.
fn deliver(cl: &ClientShared, m: &Message, pattern: Option<&[u8]>) {
    let mut r = Reply::with_buf(std::mem::take(&mut *cl.pushed.borrow_mut()), cl.resp.get() == 3);
    format(&mut r, m.kind, pattern, &m.channel, &m.payload);
    *cl.pushed.borrow_mut() = r.buf;
    if let Some(w) = cl.push_waker.borrow_mut().take() {
        w.wake();
    }
}

/// On a receiving shard: the message to this shard's subscribers of its
/// channel and of the patterns the publisher matched, those ready for
/// messages from `from` (see the module comment), except `skip`.
fn deliver_here(m: &Message, patterns: &[Vec<u8>], from: usize, skip: u64) {
    let targets: Vec<(u64, Option<usize>)> = with_reg(|r| {
        let mut t = Vec::new();
        if let Some(v) = r.local[m.kind.idx()].get(&m.channel) {
            t.extend(v.iter().filter(|s| s.id != skip && s.takes_from(from)).map(|s| (s.id, None)));
        }
        for (i, p) in patterns.iter().enumerate() {
            if let Some(v) = r.local[Kind::Pattern.idx()].get(p) {
                t.extend(v.iter().filter(|s| s.id != skip && s.takes_from(from)).map(|s| (s.id, Some(i))));
            }
        }
        t
    });
    for (id, p) in targets {
        if let Some(cl) = client::get(id) {
            deliver(&cl, m, p.map(|i| patterns[i].as_slice()));
        }
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

/// PUBLISH run by a script: like a client's, without a publisher connection.
pub fn publish_anonymous(kind: Kind, channel: &[u8], payload: &[u8]) -> usize {
    publish_from(None, kind, channel, payload)
}

fn publish_from(mut from: Option<(&ClientShared, &mut Reply)>, kind: Kind, channel: &[u8], payload: &[u8]) -> usize {
    let n = runtime::nshards();
    // Per shard: receivers, and the matched patterns with subscribers there.
    let mut per: Vec<(usize, Vec<Vec<u8>>)> = vec![(0, Vec::new()); n];
    let total = with_reg(|r| {
        let mut total = 0;
        if let Some(counts) = r.dir[kind.idx()].get(channel) {
            for (s, &c) in counts.iter().enumerate().take(n) {
                per[s].0 += c as usize;
                total += c as usize;
            }
        }
        if kind == Kind::Channel && !r.dir[Kind::Pattern.idx()].is_empty() {
            for (p, counts) in &r.dir[Kind::Pattern.idx()] {
                if crate::util::glob::glob_match(p, channel, false) {
                    for (s, &c) in counts.iter().enumerate().take(n) {
                        if c > 0 {
                            per[s].0 += c as usize;
                            per[s].1.push(p.clone());
                            total += c as usize;
                        }
                    }
                }
            }
        }
        total
    });
    if total == 0 {
        return 0;
    }
    let me = runtime::shard_id();
    let m = Arc::new(Message {
        kind,
        channel: channel.to_vec(),
        payload: payload.to_vec(),
    });
    for (shard, (count, patterns)) in per.into_iter().enumerate() {
        if count == 0 {
            continue;
        }
        let mut skip = 0;
        if let Some((c, out)) = from.as_mut().filter(|_| shard == me) {
            // The publisher's own messages: straight into its reply stream.
            skip = c.id;
            let s = c.subs.borrow();
            if s.has(kind, channel) {
                format(out, kind, None, channel, payload);
            }
            for p in &patterns {
                if s.has(Kind::Pattern, p) {
                    format(out, kind, Some(p), channel, payload);
                }
            }
            if count == s.has(kind, channel) as usize + patterns.iter().filter(|p| s.has(Kind::Pattern, p)).count() {
                continue;
            }
        }
        let m = m.clone();
        runtime::send(shard, Box::new(move || deliver_here(&m, &patterns, me, skip)));
    }
    total
}

/// PUBSUB CHANNELS / SHARDCHANNELS: active channels matching `pattern`.
pub fn channels(kind: Kind, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
    with_reg(|r| {
        r.dir[kind.idx()]
            .keys()
            .filter(|ch| pattern.is_none_or(|p| crate::util::glob::glob_match(p, ch, false)))
            .cloned()
            .collect()
    })
}

/// Subscribers of one channel (PUBSUB NUMSUB / SHARDNUMSUB).
pub fn numsub(kind: Kind, channel: &[u8]) -> usize {
    with_reg(|r| r.dir[kind.idx()].get(channel).map_or(0, |v| v.iter().map(|&c| c as usize).sum()))
}

/// Distinct channels, patterns and shard channels with a subscriber (INFO,
/// PUBSUB NUMPAT).
pub fn sizes() -> [usize; 3] {
    with_reg(|r| [0, 1, 2].map(|i| r.dir[i].len()))
}
