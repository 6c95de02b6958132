//! CONFIG GET / SET / RESETSTAT / REWRITE / HELP.

use crate::commands::connection::write_help;
use crate::commands::table::{AsyncFn, Table};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::{self, Shard, ShardStats};
use crate::server::client::Client;
use std::sync::atomic::Ordering;

pub fn register(t: &mut Table) {
    t.client("config|get", config_get);
    t.client("config|set", config_set);
    t.asynch("config|resetstat", CONFIG_RESETSTAT);
    t.client("config|rewrite", config_rewrite);
    t.client("config|help", config_help);
}

// ---------------------------------------------------------------- CONFIG

fn config_get(_c: &mut Client, args: Args, out: &mut Reply) {
    let pats: Vec<&[u8]> = (2..args.len()).map(|i| args.get(i)).collect();
    let pairs = match runtime::rt_ref().config.read() {
        Ok(c) => c.get(&pats),
        Err(_) => Vec::new(),
    };
    out.map_len(pairs.len());
    for (k, v) in pairs {
        out.bulk(k.as_bytes());
        out.bulk(v.as_bytes());
    }
}

/// Publishes the compact encodings' thresholds to the value types.
pub fn configure_encodings(c: &crate::config::Config) {
    let (hash_entries, hash_value) = c.hash_max_listpack();
    let (zset_entries, zset_value) = c.zset_max_listpack();
    crate::keyspace::types::limits::configure(crate::keyspace::types::limits::EncodingConfig {
        hash_entries,
        hash_value,
        set_intset: c.set_max_intset_entries(),
        zset_entries,
        zset_value,
        list_fill: c.list_max_listpack_size(),
    });
    crate::keyspace::types::limits::set_hll_sparse_max_bytes(c.hll_sparse_max_bytes());
    let (b, e) = c.stream_node_limits();
    crate::keyspace::types::limits::set_stream_node_limits(b, e);
}

/// Pushes config values that the runtime caches in atomics.
pub fn apply_runtime_config(c: &crate::config::Config) {
    configure_encodings(c);
    crate::persistence::configure(c);
    crate::persistence::aof::configure(c);
    let rt = runtime::rt_ref();
    if let Ok(mut p) = rt.requirepass.write() {
        *p = c.requirepass();
    }
    rt.timeout_secs.store(c.timeout_secs(), Ordering::Relaxed);
    rt.maxclients.store(c.maxclients(), Ordering::Relaxed);
    crate::server::log::set_level(crate::server::log::level_code(c.loglevel()));
    super::memory::configure_memory(c);
    runtime::notify::configure(c.notify_keyspace_events());
    runtime::track::MAX_KEYS.store(c.tracking_table_max_keys(), Ordering::Relaxed);
}

fn config_set(_c: &mut Client, args: Args, out: &mut Reply) {
    if !args.len().is_multiple_of(2) {
        return out.error(err::SYNTAX);
    }
    let pairs: Vec<(&[u8], &[u8])> = (2..args.len()).step_by(2).map(|i| (args.get(i), args.get(i + 1))).collect();
    let rt = runtime::rt_ref();
    let res = match rt.config.write() {
        Ok(mut c) => {
            let before = c.clone();
            c.set(&pairs).and_then(|_| {
                // Tessera accepts every Redis directive but must not answer OK for one it ignores.
                if let Some((name, _)) = pairs.iter().find(|(n, _)| !c.value_is_honoured(n)) {
                    let name = crate::config::directive_name(name).unwrap_or_default();
                    *c = before.clone();
                    return Err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - not supported by Tessera yet"
                    ));
                }
                // Redis re-listens at once when port or bind change; undo everything if it cannot.
                let which = if c.port() != before.port() {
                    Some("port")
                } else if c.bind() != before.bind() {
                    Some("bind")
                } else {
                    None
                };
                if let Some(which) = which {
                    if let Err(e) = crate::server::rebind(c.port(), &c.bind(), c.tcp_backlog(), which) {
                        *c = before;
                        return Err(e);
                    }
                }
                // appendonly switched: startAppendOnly (open, then a rewrite) / stopAppendOnly.
                if c.bool_value("appendonly") != before.bool_value("appendonly") {
                    if let Err(e) = crate::persistence::aof::switch(&c) {
                        *c = before;
                        return Err(format!("ERR CONFIG SET failed (possibly related to argument 'appendonly') - {e}"));
                    }
                }
                apply_runtime_config(&c);
                super::memory::maxmemory_changed(before.maxmemory(), c.maxmemory());
                Ok(())
            })
        }
        Err(_) => Err("ERR config lock poisoned".to_string()),
    };
    match res {
        Ok(()) => out.ok(),
        Err(e) => out.error(&e),
    }
}

const CONFIG_RESETSTAT: AsyncFn = |c, args, out| Box::pin(config_resetstat(c, args, out));

async fn config_resetstat(_c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    match runtime::broadcast(|s: &mut Shard| {
        s.stats = ShardStats::default();
        crate::server::metrics::reset(runtime::now_ms());
        for db in s.dbs.iter_mut() {
            db.expired = 0;
        }
        crate::keyspace::evict::reset_stats();
        crate::keyspace::lazyfree::reset_stats();
    })
    .await
    {
        Ok(_) => out.ok(),
        Err(_) => out.error(crate::protocol::reply::err::SHARD_LOST),
    }
}

fn config_rewrite(_c: &mut Client, _args: Args, out: &mut Reply) {
    let res = match runtime::rt_ref().config.read() {
        Ok(c) => c.rewrite(),
        Err(_) => Err("ERR config lock poisoned".to_string()),
    };
    match res {
        Ok(()) => out.ok(),
        Err(e) => out.error(&e),
    }
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];

fn config_help(_c: &mut Client, _args: Args, out: &mut Reply) {
    write_help(out, CONFIG_HELP);
}
