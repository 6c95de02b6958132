//! CLIENT TRACKING, CLIENT CACHING, CLIENT GETREDIR, CLIENT TRACKINGINFO
//! (Redis's networking.c clientCommand): argument checks and replies. The
//! client's mode and the delivery are `server/tracking.rs`; the shards'
//! tables `runtime/track.rs`.

use super::table::{AsyncFn, Table};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::server::client::Client;
use crate::server::tracking::{self, TrackState};

pub fn register(t: &mut Table) {
    t.asynch("client|tracking", CLIENT_TRACKING);
    t.client("client|caching", client_caching);
    t.client("client|getredir", client_getredir);
    t.client("client|trackinginfo", client_trackinginfo);
}

const CLIENT_TRACKING: AsyncFn = |c, args, out| Box::pin(client_tracking(c, args, out));

/// Whether two prefixes would both match some key (one starts the other).
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

async fn client_tracking(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    let mut opts = TrackState::default();
    let mut redir: u64 = 0;
    let mut redir_shard: u16 = 0;
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = args.len() - 1 - j > 0;
        if args.is(j, "redirect") && more {
            j += 1;
            if redir != 0 {
                return out.error("ERR A client can only redirect to a single other client");
            }
            let Some(id) = crate::util::num::string2ll(args.get(j)) else {
                return out.error(err::NOT_INT);
            };
            // Required to exist now, though it may go away later (Redis's sanity check).
            match tracking::find_client(id as u64).await.filter(|_| id > 0) {
                Some(s) => {
                    redir = id as u64;
                    redir_shard = s;
                }
                None => return out.error("ERR The client ID you want redirect to does not exist"),
            }
        } else if args.is(j, "bcast") {
            opts.bcast = true;
        } else if args.is(j, "optin") {
            opts.optin = true;
        } else if args.is(j, "optout") {
            opts.optout = true;
        } else if args.is(j, "noloop") {
            opts.noloop = true;
        } else if args.is(j, "prefix") && more {
            j += 1;
            prefixes.push(args.get(j).to_vec());
        } else {
            return out.error(err::SYNTAX);
        }
        j += 1;
    }
    if args.is(2, "on") {
        let check = {
            let t = c.shared.tracking.borrow();
            if !opts.bcast && !prefixes.is_empty() {
                Err("ERR PREFIX option requires BCAST mode to be enabled".to_string())
            } else if t.on && t.bcast != opts.bcast {
                Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into())
            } else if opts.bcast && (opts.optin || opts.optout) {
                Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into())
            } else if opts.optin && opts.optout {
                Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into())
            } else if (opts.optin && t.optout) || (opts.optout && t.optin) {
                Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into())
            } else if opts.bcast {
                prefix_collision(&t, &prefixes)
            } else {
                Ok(())
            }
        };
        if let Err(e) = check {
            return out.error(&e);
        }
        if redir != 0 {
            tracking::mark_target(redir, redir_shard);
        }
        tracking::enable(c, redir, redir_shard, &opts, prefixes).await;
    } else if args.is(2, "off") {
        tracking::disable(&c.shared);
    } else {
        return out.error(err::SYNTAX);
    }
    out.ok();
}

/// checkPrefixCollisionsOrReply: no new prefix may overlap one the client
/// has, nor another new one.
fn prefix_collision(t: &TrackState, prefixes: &[Vec<u8>]) -> Result<(), String> {
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, p) in prefixes.iter().enumerate() {
        if let Some(old) = t.prefixes.iter().find(|o| overlap(o, p)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                show(p),
                show(old)
            ));
        }
        if let Some(q) = prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                show(p),
                show(q)
            ));
        }
    }
    Ok(())
}

fn client_caching(c: &mut Client, args: Args, out: &mut Reply) {
    let mut t = c.shared.tracking.borrow_mut();
    if !t.on {
        return out.error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    }
    if args.is(2, "yes") {
        if !t.optin {
            return out.error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
        }
    } else if args.is(2, "no") {
        if !t.optout {
            return out.error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
        }
    } else {
        return out.error(err::SYNTAX);
    }
    t.caching = true;
    out.ok();
}

fn client_getredir(c: &mut Client, _args: Args, out: &mut Reply) {
    let t = c.shared.tracking.borrow();
    out.int(if t.on { t.redirect as i64 } else { -1 });
}

fn client_trackinginfo(c: &mut Client, _args: Args, out: &mut Reply) {
    let t = c.shared.tracking.borrow();
    let mut fl: Vec<&[u8]> = vec![if t.on { b"on" } else { b"off" }];
    if t.bcast {
        fl.push(b"bcast");
    }
    if t.optin {
        fl.push(b"optin");
        if t.caching {
            fl.push(b"caching-yes");
        }
    }
    if t.optout {
        fl.push(b"optout");
        if t.caching {
            fl.push(b"caching-no");
        }
    }
    if t.noloop {
        fl.push(b"noloop");
    }
    if t.broken_redir {
        fl.push(b"broken_redirect");
    }
    out.map_len(3);
    out.bulk(b"flags");
    out.set_len(fl.len());
    for f in fl {
        out.bulk(f);
    }
    out.bulk(b"redirect");
    out.int(if t.on { t.redirect as i64 } else { -1 });
    out.bulk(b"prefixes");
    out.array_len(t.prefixes.len());
    for p in &t.prefixes {
        out.bulk(p);
    }
}
