//! DUMP and RESTORE: a value as Redis's serialized payload (the RDB encoding
//! of the value, the 2-byte RDB version, a CRC64), read and written with
//! `persistence::rdb`, so payloads move between Tessera and Redis both ways.

use crate::commands::table::Table;
use crate::keyspace::access::set_hint;
use crate::keyspace::Item;
use crate::persistence::rdb::decode::{payload_value, verify_payload};
use crate::persistence::rdb::encode::dump_payload;
use crate::persistence::rdb::Limits;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::NOTIFY_GENERIC;
use crate::runtime::Ctx;
use crate::util::num::string2ll;

pub fn register(t: &mut Table) {
    t.keyed("dump", dump);
    t.keyed("restore", restore);
}

/// `!strcasecmp(arg->ptr, word)`: C compares up to the first NUL.
fn opt_is(arg: &[u8], word: &str) -> bool {
    let end = memchr::memchr(0, arg).unwrap_or(arg.len());
    arg[..end].eq_ignore_ascii_case(word.as_bytes())
}

/// DUMP key: the payload, or a null reply for a missing key.
fn dump(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    match ctx.lookup_read(args.get(1)) {
        Some(e) => {
            let p = dump_payload(&e.val, crate::persistence::compression());
            out.bulk(&p);
        }
        None => out.null(),
    }
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], with
/// restoreCommand's checks in its order: options, BUSYKEY, TTL, payload.
fn restore(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < args.len() {
        let additional = args.len() - j - 1;
        let a = args.get(j);
        if opt_is(a, "replace") {
            replace = true;
        } else if opt_is(a, "absttl") {
            absttl = true;
        } else if opt_is(a, "idletime") && additional >= 1 && freq.is_none() {
            let Some(v) = string2ll(args.get(j + 1)) else {
                return out.error(err::NOT_INT);
            };
            if v < 0 {
                return out.error("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle = Some(v);
            j += 1;
        } else if opt_is(a, "freq") && additional >= 1 && idle.is_none() {
            let Some(v) = string2ll(args.get(j + 1)) else {
                return out.error(err::NOT_INT);
            };
            if !(0..=255).contains(&v) {
                return out.error("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq = Some(v);
            j += 1;
        } else {
            return out.error(err::SYNTAX);
        }
        j += 1;
    }
    let key = args.get(1);
    let now = ctx.now;
    if !replace && ctx.db().lookup_write(key, now).is_some() {
        return out.error("BUSYKEY Target key name already exists.");
    }
    let Some(mut ttl) = string2ll(args.get(2)) else {
        return out.error(err::NOT_INT);
    };
    if ttl < 0 {
        return out.error("ERR Invalid TTL value, must be >= 0");
    }
    let payload = args.get(3);
    if !verify_payload(payload, false) {
        return out.error("ERR DUMP payload version or checksum are wrong");
    }
    let val = match payload_value(payload, &Limits::current()) {
        Ok(v) => v,
        Err(e) => {
            crate::log_verbose!("RESTORE of a bad payload: {}", e);
            return out.error("ERR Bad data format");
        }
    };
    let deleted = replace && ctx.db().remove(key).is_some();
    if ttl != 0 && !absttl {
        ttl = ttl.saturating_add(now as i64);
    }
    // checkAlreadyExpired: the key would be born expired.
    if ttl != 0 && ttl <= now as i64 {
        if deleted {
            ctx.notify(NOTIFY_GENERIC, "del", key);
        }
        return out.ok();
    }
    let mut entry = Item::new(val, now);
    set_hint(&mut entry, idle.map(|v| v as u64), freq.map(|v| v as u8), now);
    ctx.db().set_entry(key, entry, ttl as u64);
    ctx.notify(NOTIFY_GENERIC, "restore", key);
    out.ok();
}
