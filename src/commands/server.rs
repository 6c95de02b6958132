//! Server commands: COMMAND, INFO, CONFIG, DBSIZE, FLUSHDB, FLUSHALL, TIME,
//! LASTSAVE, SHUTDOWN, MONITOR, DEBUG. Most visit every shard.

use super::connection::write_help;
use super::doc::CommandMeta;
use super::table::{self, flags, AsyncFn, Command, Table};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::{self, now_ms, now_us, Shard, ShardStats};
use crate::server::client::{self, Client, ClientShared};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

pub fn register(t: &mut Table) {
    t.client("command", command_all);
    t.client("command|count", command_count);
    t.client("command|list", command_list);
    t.client("command|info", command_info);
    t.client("command|docs", command_docs);
    t.client("command|getkeys", command_getkeys);
    t.client("command|help", command_help);
    t.asynch("info", INFO);
    t.client("config|get", config_get);
    t.client("config|set", config_set);
    t.asynch("config|resetstat", CONFIG_RESETSTAT);
    t.client("config|rewrite", config_rewrite);
    t.client("config|help", config_help);
    t.asynch("dbsize", DBSIZE);
    t.asynch("flushdb", FLUSHDB);
    t.asynch("flushall", FLUSHALL);
    t.client("time", time);
    t.client("lastsave", lastsave);
    t.client("shutdown", shutdown);
    t.client("monitor", monitor);
    t.asynch("debug", DEBUG);
}

// ---------------------------------------------------------------- COMMAND

fn write_command_info(cmd: &Command, out: &mut Reply) {
    let subs: Vec<&CommandMeta> = cmd.subcommand_metas();
    cmd.meta.write_info(out, &subs);
}

fn command_all(_c: &mut Client, _args: Args, out: &mut Reply) {
    let cmds = table::table().commands();
    out.array_len(cmds.len());
    for c in cmds {
        write_command_info(c, out);
    }
}

fn command_count(_c: &mut Client, _args: Args, out: &mut Reply) {
    out.int(table::table().commands().len() as i64);
}

/// All implemented names: top-level commands and "container|sub" names.
fn all_names() -> Vec<(&'static str, &'static Command)> {
    let mut v = Vec::new();
    for c in table::table().commands() {
        v.push((c.meta.name, c));
        for s in &c.subs {
            v.push((s.meta.name, *s));
        }
    }
    v
}

fn command_list(_c: &mut Client, args: Args, out: &mut Reply) {
    let names = all_names();
    if args.len() == 2 {
        out.array_len(names.len());
        for (n, _) in names {
            out.bulk(n.as_bytes());
        }
        return;
    }
    if args.len() != 5 || !args.is(2, "filterby") {
        return out.error(err::SYNTAX);
    }
    let val = args.get(4);
    let keep: Vec<&str> = if args.is(3, "module") {
        Vec::new()
    } else if args.is(3, "aclcat") {
        let want = String::from_utf8_lossy(val).to_ascii_lowercase();
        names
            .iter()
            .filter(|(_, c)| c.meta.acl_categories.iter().any(|a| a.trim_start_matches('@') == want))
            .map(|(n, _)| *n)
            .collect()
    } else if args.is(3, "pattern") {
        names
            .iter()
            .filter(|(n, _)| crate::util::glob::glob_match(val, n.as_bytes(), true))
            .map(|(n, _)| *n)
            .collect()
    } else {
        return out.error(err::SYNTAX);
    };
    out.array_len(keep.len());
    for n in keep {
        out.bulk(n.as_bytes());
    }
}

/// Finds an implemented command by a user-given name ("get", "client|list").
fn find_by_name(name: &[u8]) -> Option<&'static Command> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    table::table().get(&lower)
}

fn command_info(_c: &mut Client, args: Args, out: &mut Reply) {
    if args.len() == 2 {
        return command_all(_c, args, out);
    }
    out.array_len(args.len() - 2);
    for i in 2..args.len() {
        match find_by_name(args.get(i)) {
            Some(c) => write_command_info(c, out),
            None => out.null(),
        }
    }
}

fn command_docs(_c: &mut Client, args: Args, out: &mut Reply) {
    let found: Vec<&Command> = if args.len() == 2 {
        table::table().commands()
    } else {
        (2..args.len()).filter_map(|i| find_by_name(args.get(i))).collect()
    };
    out.map_len(found.len());
    for c in found {
        out.bulk(c.meta.name.as_bytes());
        let subs = c.subcommand_metas();
        c.meta.write_docs(out, &subs);
    }
}

fn command_getkeys(_c: &mut Client, args: Args, out: &mut Reply) {
    let sub = Args::new(args.data, &args.spans[2..]);
    let cmd = match table::lookup(&sub) {
        Ok(c) => c,
        Err(_) => return out.error("ERR Invalid command specified"),
    };
    let has_keys = cmd.meta.info.items().get(8).map(|k| !k.items().is_empty()).unwrap_or(false);
    if !has_keys {
        return out.error("ERR The command has no key arguments");
    }
    if !cmd.arity_ok(sub.len()) {
        return out.error("ERR Invalid number of arguments specified for command");
    }
    let keys: Vec<usize> = cmd.key_positions(sub.len()).collect();
    if keys.is_empty() {
        return out.error("ERR Invalid arguments specified for command");
    }
    out.array_len(keys.len());
    for i in keys {
        out.bulk(sub.get(i));
    }
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

fn command_help(_c: &mut Client, _args: Args, out: &mut Reply) {
    write_help(out, COMMAND_HELP);
}

// ---------------------------------------------------------------- INFO

const INFO: AsyncFn = |c, args, out| Box::pin(info(c, args, out));

#[derive(Default)]
struct ShardInfo {
    stats: ShardStats,
    keys: Vec<(usize, usize, u64)>,
    clients: usize,
    mem: usize,
}

fn shard_info(s: &mut Shard) -> ShardInfo {
    let now = now_ms();
    let mut mem = 0usize;
    let keys = s
        .dbs
        .iter()
        .map(|db| {
            mem += db.keys.len() * 64 + db.keys.buckets() * 8;
            (db.len(), db.expires_len(), db.avg_ttl(now))
        })
        .collect();
    let mut stats = s.stats.clone();
    stats.expired_stale_perc = s.dbs.iter().map(|d| d.expired).sum::<u64>() as f64;
    ShardInfo {
        stats,
        keys,
        clients: client::count(),
        mem,
    }
}

fn human_bytes(n: u64) -> String {
    let f = n as f64;
    if f < 1024.0 {
        format!("{n}B")
    } else if f < 1024.0 * 1024.0 {
        format!("{:.2}K", f / 1024.0)
    } else if f < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", f / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", f / (1024.0 * 1024.0 * 1024.0))
    }
}

fn rusage(who: i32) -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe {
        libc::getrusage(who, &mut ru);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_stime), t(ru.ru_utime))
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// INFO sections in Redis 7.0 order; "default" is all but commandstats and latencystats.
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

async fn info(_c: &mut Client, args: Args<'_>, out: &mut Reply) {
    let mut want: Vec<String> = Vec::new();
    for i in 1..args.len() {
        want.push(String::from_utf8_lossy(args.get(i)).to_ascii_lowercase());
    }
    let every = want.iter().any(|w| w == "all" || w == "everything");
    let default = want.is_empty() || want.iter().any(|w| w == "default");
    let sections: Vec<&str> = ALL_SECTIONS
        .iter()
        .copied()
        .filter(|s| every || (default && !matches!(*s, "commandstats" | "latencystats")) || want.iter().any(|w| w == s))
        .collect();
    let infos = runtime::broadcast(shard_info).await;
    let text = render_info(&sections, &infos);
    out.verbatim(text.as_bytes());
}

fn render_info(sections: &[&str], infos: &[ShardInfo]) -> String {
    let rt = runtime::rt_ref();
    let now = now_ms();
    let mut s = String::with_capacity(4096);
    let mut total = ShardStats::default();
    for i in infos {
        total.commands += i.stats.commands;
        total.keyspace_hits += i.stats.keyspace_hits;
        total.keyspace_misses += i.stats.keyspace_misses;
        total.connections_received += i.stats.connections_received;
        total.rejected_connections += i.stats.rejected_connections;
        total.net_input_bytes += i.stats.net_input_bytes;
        total.net_output_bytes += i.stats.net_output_bytes;
    }
    let expired: f64 = infos.iter().map(|i| i.stats.expired_stale_perc).sum();
    let mem: usize = infos.iter().map(|i| i.mem).sum::<usize>() + 1_000_000;
    let (port, cfg_file, hz, maxmem, policy) = match rt.config.read() {
        Ok(c) => (
            c.port(),
            c.config_file().map(|p| p.display().to_string()).unwrap_or_default(),
            first_value(&c, "hz").unwrap_or_else(|| "10".into()),
            first_value(&c, "maxmemory").unwrap_or_else(|| "0".into()),
            first_value(&c, "maxmemory-policy").unwrap_or_else(|| "noeviction".into()),
        ),
        Err(_) => (0, String::new(), "10".into(), "0".into(), "noeviction".into()),
    };
    let mut first = true;
    for sec in sections {
        if !first {
            s.push_str("\r\n");
        }
        first = false;
        match *sec {
            "server" => {
                let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
                // SAFETY: uname fills the struct we own.
                unsafe { libc::uname(&mut uts) };
                let cs = |a: &[libc::c_char]| unsafe { std::ffi::CStr::from_ptr(a.as_ptr()) }.to_string_lossy().into_owned();
                let up = (now - rt.start_ms) / 1000;
                let _ = write!(
                    s,
                    "# Server\r\nredis_version:{}\r\ntessera_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:io_uring\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{:040x}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nshards:{}\r\n",
                    crate::REDIS_VERSION,
                    env!("CARGO_PKG_VERSION"),
                    cs(&uts.sysname),
                    cs(&uts.release),
                    cs(&uts.machine),
                    std::process::id(),
                    ((rt.start_ms as u128) * 0x9E3779B97F4A7C15u128) ^ std::process::id() as u128,
                    port,
                    now_us(),
                    up,
                    up / 86400,
                    hz,
                    hz,
                    crate::keyspace::db::lru_clock(now),
                    std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
                    cfg_file,
                    rt.nshards
                );
            }
            "clients" => {
                let _ = write!(
                    s,
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
                    infos.iter().map(|i| i.clients).sum::<usize>(),
                    rt.maxclients.load(Ordering::Relaxed)
                );
            }
            "memory" => {
                let rss = rss_bytes();
                let total_mem = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) as u64 * libc::sysconf(libc::_SC_PAGESIZE) as u64 };
                let maxmem_n: u64 = maxmem.parse().unwrap_or(0);
                let _ = write!(
                    s,
                    "# Memory\r\nused_memory:{mem}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{mem}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:100.00%\r\nused_memory_overhead:1000000\r\nused_memory_startup:1000000\r\nused_memory_dataset:{}\r\ntotal_system_memory:{total_mem}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:0\r\nused_memory_scripts:0\r\nnumber_of_cached_scripts:0\r\nmaxmemory:{maxmem_n}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:mimalloc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
                    human_bytes(mem as u64),
                    human_bytes(rss),
                    human_bytes(mem as u64),
                    mem.saturating_sub(1_000_000),
                    human_bytes(total_mem),
                    human_bytes(maxmem_n),
                    if mem > 0 { rss as f64 / mem as f64 } else { 0.0 }
                );
            }
            "persistence" => {
                let _ = write!(
                    s,
                    "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\naof_last_write_status:ok\r\n",
                    rt.lastsave.load(Ordering::Relaxed)
                );
            }
            "stats" => {
                let _ = write!(
                    s,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:0.00\r\ninstantaneous_output_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nevicted_keys:0\r\nevicted_clients:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:0\r\npubsub_patterns:0\r\npubsubshard_channels:0\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntracking_total_keys:0\r\ntracking_total_items:0\r\ntracking_total_prefixes:0\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:0\r\ntotal_writes_processed:0\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\n",
                    total.connections_received,
                    total.commands,
                    total.net_input_bytes,
                    total.net_output_bytes,
                    total.rejected_connections,
                    expired as u64,
                    total.keyspace_hits,
                    total.keyspace_misses,
                    infos.iter().map(|i| i.stats.errors.values().sum::<u64>()).sum::<u64>()
                );
            }
            "replication" => {
                s.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:0000000000000000000000000000000000000000\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n");
            }
            "cpu" => {
                let (sys, user) = rusage(libc::RUSAGE_SELF);
                let (csys, cuser) = rusage(libc::RUSAGE_CHILDREN);
                let _ = write!(
                    s,
                    "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:{csys:.6}\r\nused_cpu_user_children:{cuser:.6}\r\n"
                );
            }
            "modules" => s.push_str("# Modules\r\n"),
            "errorstats" => {
                s.push_str("# Errorstats\r\n");
                let mut errs: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
                for i in infos {
                    for (k, v) in &i.stats.errors {
                        *errs.entry(k.as_str()).or_insert(0) += v;
                    }
                }
                for (k, v) in errs {
                    let _ = write!(s, "errorstat_{k}:count={v}\r\n");
                }
            }
            "commandstats" | "latencystats" => {
                s.push_str(if *sec == "commandstats" { "# Commandstats\r\n" } else { "# Latencystats\r\n" });
                for cmd in table::table().all() {
                    let mut tot = runtime::CmdStat::default();
                    let mut hist = runtime::LatencyHist::default();
                    for i in infos {
                        if let Some(c) = i.stats.cmd.get(cmd.id) {
                            tot.calls += c.calls;
                            tot.usec += c.usec;
                            tot.rejected += c.rejected;
                            tot.failed += c.failed;
                            if let Some(h) = &c.hist {
                                hist.merge(h);
                            }
                        }
                    }
                    if tot.calls == 0 && tot.rejected == 0 {
                        continue;
                    }
                    if *sec == "commandstats" {
                        let per = if tot.calls > 0 { tot.usec as f64 / tot.calls as f64 } else { 0.0 };
                        let _ = write!(
                            s,
                            "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                            cmd.meta.name, tot.calls, tot.usec, per, tot.rejected, tot.failed
                        );
                    } else if tot.calls > 0 {
                        let _ = write!(
                            s,
                            "latency_percentiles_usec_{}:p50={:.3},p99={:.3},p99.9={:.3}\r\n",
                            cmd.meta.name,
                            hist.percentile_us(50.0),
                            hist.percentile_us(99.0),
                            hist.percentile_us(99.9)
                        );
                    }
                }
            }
            "cluster" => s.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
            "keyspace" => {
                s.push_str("# Keyspace\r\n");
                let ndb = infos.first().map(|i| i.keys.len()).unwrap_or(0);
                for db in 0..ndb {
                    let (mut keys, mut exp, mut ttl_sum, mut ttl_n) = (0usize, 0usize, 0u64, 0u64);
                    for i in infos {
                        let (k, e, t) = i.keys[db];
                        keys += k;
                        exp += e;
                        if t > 0 {
                            ttl_sum += t;
                            ttl_n += 1;
                        }
                    }
                    if keys > 0 {
                        let _ = write!(s, "db{db}:keys={keys},expires={exp},avg_ttl={}\r\n", ttl_sum.checked_div(ttl_n).unwrap_or(0));
                    }
                }
            }
            _ => {}
        }
    }
    s
}

fn first_value(c: &crate::config::Config, name: &str) -> Option<String> {
    c.get(&[name.as_bytes()]).into_iter().next().map(|(_, v)| v)
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

/// Pushes config values that the runtime caches in atomics.
pub fn apply_runtime_config(c: &crate::config::Config) {
    let rt = runtime::rt_ref();
    if let Ok(mut p) = rt.requirepass.write() {
        *p = c.requirepass();
    }
    rt.timeout_secs.store(c.timeout_secs(), Ordering::Relaxed);
    rt.maxclients.store(c.maxclients(), Ordering::Relaxed);
    crate::server::log::set_level(crate::server::log::level_code(c.loglevel()));
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
                apply_runtime_config(&c);
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
    runtime::broadcast(|s: &mut Shard| {
        s.stats = ShardStats::default();
        for db in s.dbs.iter_mut() {
            db.expired = 0;
        }
    })
    .await;
    out.ok();
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

// ---------------------------------------------------------------- DBSIZE, FLUSH*

const DBSIZE: AsyncFn = |c, args, out| Box::pin(dbsize(c, args, out));

async fn dbsize(c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    let db = c.db;
    let n: usize = runtime::broadcast(move |s: &mut Shard| s.dbs[db].len()).await.into_iter().sum();
    out.int(n as i64);
}

/// FLUSHDB/FLUSHALL's optional ASYNC|SYNC argument.
fn flush_flags_ok(args: &Args) -> bool {
    match args.len() {
        1 => true,
        2 => args.is(1, "async") || args.is(1, "sync"),
        _ => false,
    }
}

const FLUSHDB: AsyncFn = |c, args, out| Box::pin(flushdb(c, args, out));

async fn flushdb(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if !flush_flags_ok(&args) {
        return out.error(err::SYNTAX);
    }
    let db = c.db;
    runtime::broadcast(move |s: &mut Shard| s.dbs[db].clear()).await;
    out.ok();
}

const FLUSHALL: AsyncFn = |c, args, out| Box::pin(flushall(c, args, out));

async fn flushall(_c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if !flush_flags_ok(&args) {
        return out.error(err::SYNTAX);
    }
    runtime::broadcast(|s: &mut Shard| s.dbs.iter_mut().for_each(|d| d.clear())).await;
    out.ok();
}

// ---------------------------------------------------------------- TIME, LASTSAVE, SHUTDOWN

fn time(_c: &mut Client, _args: Args, out: &mut Reply) {
    let us = now_us();
    out.array_len(2);
    out.bulk_int((us / 1_000_000) as i64);
    out.bulk_int((us % 1_000_000) as i64);
}

fn lastsave(_c: &mut Client, _args: Args, out: &mut Reply) {
    out.int(runtime::rt_ref().lastsave.load(Ordering::Relaxed) as i64);
}

fn shutdown(c: &mut Client, args: Args, out: &mut Reply) {
    let (mut abort, mut other, mut save, mut nosave) = (false, false, false, false);
    for i in 1..args.len() {
        if args.is(i, "nosave") {
            nosave = true;
            other = true;
        } else if args.is(i, "save") {
            save = true;
            other = true;
        } else if args.is(i, "now") || args.is(i, "force") {
            other = true;
        } else if args.is(i, "abort") {
            abort = true;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    if (abort && other) || (save && nosave) {
        return out.error(err::SYNTAX);
    }
    if abort {
        return out.error("ERR No shutdown in progress.");
    }
    crate::log_warning!("User requested shutdown...");
    crate::server::initiate_shutdown();
    // Redis answers nothing: the connection just closes.
    c.close_after_reply = true;
}

// ---------------------------------------------------------------- MONITOR

/// MONITOR clients: (shard, client id). Consulted only while `rt.monitors > 0`.
static MONITORS: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());

fn monitor(c: &mut Client, _args: Args, out: &mut Reply) {
    if c.shared.monitor.get() {
        return out.ok();
    }
    c.shared.monitor.set(true);
    if let Ok(mut m) = MONITORS.lock() {
        m.push((runtime::shard_id(), c.id));
    }
    runtime::rt_ref().monitors.fetch_add(1, Ordering::SeqCst);
    out.ok();
}

pub fn unregister_monitor(c: &Rc<ClientShared>) {
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
pub fn feed_monitors(c: &Client, args: &Args) {
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

/// CLIENT PAUSE: holds a command while the pause applies to it.
pub async fn wait_pause(cmd: &Command) {
    let rt = runtime::rt_ref();
    loop {
        let until = rt.pause_until.load(Ordering::SeqCst);
        let now = now_ms();
        if until == 0 || until <= now {
            return;
        }
        let writes_only = rt.pause_writes_only.load(Ordering::SeqCst);
        if writes_only && !cmd.has(flags::WRITE) {
            return;
        }
        glommio::timer::sleep(std::time::Duration::from_millis((until - now).min(10))).await;
    }
}

// ---------------------------------------------------------------- DEBUG

const DEBUG: AsyncFn = |c, args, out| Box::pin(debug(c, args, out));

fn debug_allowed(c: &Client) -> bool {
    match runtime::rt_ref().debug_mode.load(Ordering::Relaxed) {
        1 => true,
        2 => c.shared.addr.starts_with("127.") || c.shared.addr.starts_with("[::1]"),
        _ => false,
    }
}

const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Prints this help.",
];

async fn debug(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    if !debug_allowed(c) {
        return out.error("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    }
    if args.len() == 2 && args.is(1, "help") {
        return write_help(out, DEBUG_HELP);
    }
    if args.len() == 3 && args.is(1, "sleep") {
        let secs = crate::util::num::string2d(args.get(2)).or_else(|| strtod_prefix(args.get(2))).unwrap_or(0.0);
        let us = (secs * 1e6) as i64;
        if us > 0 {
            let d = std::time::Duration::from_micros(us as u64);
            // Stall every shard, as DEBUG SLEEP stalls all of Redis.
            let me = runtime::shard_id();
            for s in 0..runtime::nshards() {
                if s != me {
                    runtime::send(s, Box::new(move || std::thread::sleep(d)));
                }
            }
            std::thread::sleep(d);
        }
        return out.ok();
    }
    if args.len() == 3 && args.is(1, "set-active-expire") {
        // atoi semantics, as Redis.
        let on = strtod_prefix(args.get(2)).map(|v| v as i64 != 0).unwrap_or(false);
        runtime::ACTIVE_EXPIRE.store(on, Ordering::Relaxed);
        return out.ok();
    }
    let mut m = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    m.extend_from_slice(args.get(1));
    m.extend_from_slice(b"'. Try DEBUG HELP.");
    out.error_bytes(&m);
}

/// strtod on the longest numeric prefix (Redis's DEBUG SLEEP ignores trailing junk).
fn strtod_prefix(b: &[u8]) -> Option<f64> {
    let mut end = 0;
    for (i, ch) in b.iter().enumerate() {
        if ch.is_ascii_digit() || matches!(ch, b'.' | b'-' | b'+' | b'e' | b'E') {
            end = i + 1;
        } else {
            break;
        }
    }
    (1..=end).rev().find_map(|e| std::str::from_utf8(&b[..e]).ok()?.parse::<f64>().ok())
}
