//! Client-side caching, the connection's half (Redis's tracking.c and the
//! CLIENT TRACKING family): a client's tracking mode, the caller record its
//! commands carry to the shards that own their keys, and the delivery of
//! invalidation messages (RESP3 `invalidate` pushes, or RESP2 messages on
//! `__redis__:invalidate` to a subscribed redirect target).
//!
//! The shards' tables (who may cache which key, the broadcast prefixes) are
//! `runtime/track.rs`. A tracking client, and a client others redirect their
//! invalidations to, listens for pushes while idle and never migrates to
//! another shard (the tables name it by shard).

use super::client::{self, Client, ClientShared};
use crate::commands::table::Command;
use crate::runtime::track::{self, Caller, ClientRef, Msg};
use crate::runtime::{self, with_shard};
use std::collections::BTreeSet;

/// A client's tracking mode (Redis's CLIENT_TRACKING_* flags).
#[derive(Default)]
pub struct TrackState {
    pub on: bool,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING yes (OPTIN) / no (OPTOUT) for the next command or transaction.
    pub caching: bool,
    pub broken_redir: bool,
    /// The client invalidations go to (0: this one), and its shard.
    pub redirect: u64,
    pub redirect_shard: u16,
    pub prefixes: BTreeSet<Vec<u8>>,
}

/// The caller record for `c`'s next command (None while no one tracks).
#[inline]
pub fn caller(c: &Client) -> Option<Caller> {
    if !track::active() {
        return None;
    }
    let t = c.shared.tracking.borrow();
    let remember = t.on && !t.bcast && !((t.optin && !t.caching) || (t.optout && t.caching));
    Some(Caller {
        client: ClientRef {
            id: c.id,
            shard: runtime::shard_id() as u16,
        },
        remember,
        // (Not while replies are off: the push would go with the dropped reply.)
        push_own: t.on && !t.bcast && !t.noloop && t.redirect == 0 && c.resp3 && c.reply_mode == super::client::ReplyMode::On,
    })
}

/// After a command: CLIENT CACHING applies to the next command (or
/// transaction) only, as Redis's resetClient.
#[inline]
pub fn after_command(c: &Client, cmd: &Command) {
    if c.multi.is_some() || cmd.meta.name.starts_with("client|") {
        return;
    }
    let mut t = c.shared.tracking.borrow_mut();
    if t.caching {
        t.caching = false;
    }
}

/// Whether pushes may arrive for `c` while it is idle; such a client also
/// stays on its shard (the tables and redirections name it by shard).
#[inline]
pub fn listens(c: &ClientShared) -> bool {
    c.push_target.get() || c.tracking.borrow().on
}

/// enableTracking. `redirect_shard` is where `redirect` is connected.
pub async fn enable(c: &mut Client, redirect: u64, redirect_shard: u16, opts: &TrackState, prefixes: Vec<Vec<u8>>) {
    let me = ClientRef {
        id: c.id,
        shard: runtime::shard_id() as u16,
    };
    {
        let mut t = c.shared.tracking.borrow_mut();
        if !t.on {
            track::client_on();
        }
        t.on = true;
        t.broken_redir = false;
        t.optin = opts.optin;
        t.optout = opts.optout;
        t.noloop = opts.noloop;
        t.redirect = redirect;
        t.redirect_shard = redirect_shard;
        if !opts.bcast {
            t.bcast = false;
        }
    }
    if opts.bcast {
        let mut new: Vec<Vec<u8>> = if prefixes.is_empty() { vec![Vec::new()] } else { prefixes };
        {
            let mut t = c.shared.tracking.borrow_mut();
            t.bcast = true;
            new.retain(|p| !t.prefixes.contains(p));
            for p in &new {
                t.prefixes.insert(p.clone());
            }
        }
        if !new.is_empty() {
            // Registered on every shard before the OK: a write after it is seen.
            let _ = runtime::broadcast(move |s: &mut runtime::Shard| {
                for p in &new {
                    s.track.add_prefix(p, me);
                }
            })
            .await;
        }
    }
}

/// disableTracking: the client's keys stay in the tables (dropped when they
/// change, as Redis does lazily); its prefixes go from every shard.
pub fn disable(c: &ClientShared) {
    let mut t = c.tracking.borrow_mut();
    if !t.on {
        return;
    }
    let prefixes: Vec<Vec<u8>> = std::mem::take(&mut t.prefixes).into_iter().collect();
    *t = TrackState::default();
    track::client_off();
    if !prefixes.is_empty() {
        let me = ClientRef {
            id: c.id,
            shard: runtime::shard_id() as u16,
        };
        for s in 0..runtime::nshards() {
            let p = prefixes.clone();
            let job = move || with_shard(|sh| sh.track.remove_prefixes(&p, me));
            if s == runtime::shard_id() && runtime::try_with_shard(|sh| sh.track.remove_prefixes(&prefixes, me)).is_some() {
                continue;
            }
            runtime::send(s, Box::new(job));
        }
    }
}

/// The shard client `id` is connected to, if any.
pub async fn find_client(id: u64) -> Option<u16> {
    let me = runtime::shard_id();
    if client::get(id).is_some() {
        return Some(me as u16);
    }
    let found = runtime::broadcast(move |s: &mut runtime::Shard| client::get(id).map(|_| s.id as u16))
        .await
        .ok()?;
    found.into_iter().flatten().next()
}

/// Marks client `id` on `shard` as a redirect target: it listens for pushes
/// while idle and stays on its shard.
pub fn mark_target(id: u64, shard: u16) {
    let mark = move || {
        if let Some(cl) = client::get(id) {
            cl.push_target.set(true);
            if let Some(w) = cl.push_waker.borrow_mut().take() {
                w.wake();
            }
        }
    };
    if shard as usize == runtime::shard_id() {
        mark();
    } else {
        runtime::send(shard as usize, Box::new(mark));
    }
}

fn keys_array(keys: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + keys.iter().map(|k| k.len() + 16).sum::<usize>());
    b.extend_from_slice(format!("*{}\r\n", keys.len()).as_bytes());
    for k in keys {
        b.extend_from_slice(format!("${}\r\n", k.len()).as_bytes());
        b.extend_from_slice(k);
        b.extend_from_slice(b"\r\n");
    }
    b
}

/// Appends to a client's pushed output and wakes its connection.
fn push(cl: &ClientShared, bytes: &[u8]) {
    cl.pushed.borrow_mut().extend_from_slice(bytes);
    if let Some(w) = cl.push_waker.borrow_mut().take() {
        w.wake();
    }
}

/// The receiving end of sendTrackingMessage: `target` gets the message if
/// it speaks RESP3, or, as a redirect target in subscribed mode, as a
/// `__redis__:invalidate` message.
/// `value` is what follows `invalidate`: an array of keys, or a null meaning
/// every key (in the tracking client's protocol, as Redis's `shared.null[c->resp]`).
fn write_to(target: &ClientShared, redirected: bool, value: &[u8]) {
    if target.resp.get() == 3 {
        let mut b = b">2\r\n$10\r\ninvalidate\r\n".to_vec();
        b.extend_from_slice(value);
        push(target, &b);
    } else if redirected && target.subscribed() {
        let mut b = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n".to_vec();
        b.extend_from_slice(value);
        push(target, &b);
    }
}

/// sendTrackingMessage for `cl` (on this shard).
fn send_tracking(cl: &ClientShared, p: Vec<u8>) {
    let (redirect, rshard) = {
        let t = cl.tracking.borrow();
        (t.redirect, t.redirect_shard)
    };
    if redirect == 0 {
        return write_to(cl, false, &p);
    }
    let origin = (cl.id, runtime::shard_id());
    if rshard as usize == runtime::shard_id() {
        match client::get(redirect) {
            Some(r) => write_to(&r, true, &p),
            None => broken_redirect(cl),
        }
        return;
    }
    runtime::send(
        rshard as usize,
        Box::new(move || match client::get(redirect) {
            Some(r) => write_to(&r, true, &p),
            None => runtime::send(
                origin.1,
                Box::new(move || {
                    if let Some(cl) = client::get(origin.0) {
                        broken_redirect(&cl);
                    }
                }),
            ),
        }),
    );
}

/// The redirect target is gone: flagged, and a RESP3 client is told.
fn broken_redirect(cl: &ClientShared) {
    let redirect = {
        let mut t = cl.tracking.borrow_mut();
        if !t.on {
            return;
        }
        t.broken_redir = true;
        t.redirect
    };
    if cl.resp.get() == 3 {
        push(cl, format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{redirect}\r\n").as_bytes());
    }
}

/// The sink `runtime::track` delivers through: messages for this shard's clients.
pub fn deliver(msgs: Vec<Msg>) {
    for m in msgs {
        match m {
            Msg::Key { to, key, writer } => {
                let Some(cl) = client::get(to) else { continue };
                {
                    let t = cl.tracking.borrow();
                    if !t.on || t.bcast || (t.noloop && writer == to) {
                        continue;
                    }
                }
                send_tracking(&cl, keys_array(&[&key]));
            }
            Msg::Bcast { to, keys } => {
                let Some(cl) = client::get(to) else { continue };
                let noloop = {
                    let t = cl.tracking.borrow();
                    if !t.on || !t.bcast {
                        continue;
                    }
                    t.noloop
                };
                let ks: Vec<&[u8]> = keys.iter().filter(|(_, w)| !noloop || *w != to).map(|(k, _)| &**k).collect();
                if ks.is_empty() {
                    continue;
                }
                send_tracking(&cl, keys_array(&ks));
            }
            Msg::Flush { to } => {
                let Some(cl) = client::get(to) else { continue };
                if !cl.tracking.borrow().on {
                    continue;
                }
                let null: &[u8] = if cl.resp.get() == 3 { b"_\r\n" } else { b"$-1\r\n" };
                send_tracking(&cl, null.to_vec());
            }
        }
    }
}

/// trackingInvalidateKeysOnFlush on this shard: its tracking clients hear
/// that every key is invalid, and its table is emptied. FLUSHDB / FLUSHALL
/// run it once on every shard.
pub fn flushed(s: &mut runtime::Shard) {
    if !track::active() {
        return;
    }
    s.track.forget_keys();
    let mut to = Vec::new();
    client::for_each(|cl| {
        if cl.tracking.borrow().on {
            to.push(Msg::Flush { to: cl.id });
        }
    });
    if !to.is_empty() {
        // After the flush's own reply, like any invalidation.
        let me = runtime::shard_id();
        runtime::send(me, Box::new(move || deliver(to)));
    }
}

/// The CLIENT LIST flags (`t`, `R`, `B`) and `redir=` of a client.
pub fn list_fields(c: &ClientShared) -> (bool, bool, bool, i64) {
    let t = c.tracking.borrow();
    (t.on, t.broken_redir, t.bcast, if t.on { t.redirect as i64 } else { -1 })
}

/// Installs the delivery sink (start-up).
pub fn install() {
    let _ = track::SINK.set(deliver);
}
