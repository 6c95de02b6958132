//! INFO: per-shard figures gathered and rendered in Redis 7.0's sections.

use crate::commands::table::{self, AsyncFn, Table};
use crate::protocol::{Args, Reply};
use crate::runtime::{self, now_ms, now_us, Shard, ShardStats};
use crate::server::client::{self, Client};
use crate::server::metrics;
use crate::server::net::uring;
use crate::util::alloc;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

pub fn register(t: &mut Table) {
    t.asynch("info", INFO);
}

// ---------------------------------------------------------------- INFO

const INFO: AsyncFn = |c, args, out| Box::pin(info(c, args, out));

#[derive(Default)]
struct ShardInfo {
    stats: ShardStats,
    keys: Vec<(usize, usize, u64)>,
    clients: usize,
    /// Bytes of key-table structure (buckets + nodes) over this shard's databases.
    overhead: usize,
    /// This shard's instantaneous rates (ops/s, input B/s, output B/s).
    inst: [u64; 3],
    /// Changes made by commands (the write hook's `dirty`, summed over dbs).
    dirty: u64,
    /// Client-side caching: tracked keys, their client ids, broadcast prefixes.
    track: (usize, usize, usize),
}

fn shard_info(s: &mut Shard) -> ShardInfo {
    let now = now_ms();
    let mut overhead = 0usize;
    let keys = s
        .dbs
        .iter()
        .map(|db| {
            overhead += db.overhead_bytes();
            (db.len(), db.expires_len(), db.avg_ttl(now))
        })
        .collect();
    let mut stats = s.stats.clone();
    stats.expired_stale_perc = s.dbs.iter().map(|d| d.expired).sum::<u64>() as f64;
    ShardInfo {
        stats,
        keys,
        clients: client::count(),
        overhead,
        inst: metrics::instantaneous(),
        dirty: s.dbs.iter().map(|d| d.hook.dirty).sum(),
        track: s.track.figures(),
    }
}

/// Redis's bytesToHuman.
fn human_bytes(n: u64) -> String {
    let f = n as f64;
    const K: f64 = 1024.0;
    if f < K {
        format!("{n}B")
    } else if f < K * K {
        format!("{:.2}K", f / K)
    } else if f < K * K * K {
        format!("{:.2}M", f / (K * K))
    } else if f < K * K * K * K {
        format!("{:.2}G", f / (K * K * K))
    } else if f < K * K * K * K * K {
        format!("{:.2}T", f / (K * K * K * K))
    } else {
        format!("{:.2}P", f / (K * K * K * K * K))
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
    // Sampled before the shards' figures are gathered: INFO's own
    // temporaries (tens of KiB of per-command stats) are not the dataset's.
    let used = alloc::sample() as u64;
    let Ok(infos) = runtime::broadcast(shard_info).await else {
        return out.error(crate::protocol::reply::err::SHARD_LOST);
    };
    let text = render_info(&sections, &infos, used);
    out.verbatim(text.as_bytes());
}

fn render_info(sections: &[&str], infos: &[ShardInfo], used: u64) -> String {
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
    let inst: [u64; 3] = std::array::from_fn(|k| infos.iter().map(|i| i.inst[k]).sum());
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
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:{}\r\nclients_in_timeout_table:0\r\n",
                    infos.iter().map(|i| i.clients).sum::<usize>(),
                    rt.maxclients.load(Ordering::Relaxed),
                    metrics::BLOCKED_CLIENTS.load(Ordering::Relaxed),
                    runtime::track::CLIENTS.load(Ordering::Relaxed)
                );
            }
            "memory" => render_memory(&mut s, infos, &maxmem, &policy, used),
            "persistence" => {
                let _ = write!(
                    s,
                    "# Persistence\r\nloading:{}\r\nasync_loading:0\r\n{}{}rdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\n",
                    crate::persistence::load::LOADING.load(Ordering::Relaxed) as u8,
                    crate::persistence::snapshot::progress_fields(),
                    crate::persistence::save::info_fields(infos.iter().map(|i| i.dirty).sum::<u64>()),
                    crate::persistence::load::LAST_EXPIRED.load(Ordering::Relaxed),
                    crate::persistence::load::LAST_LOADED.load(Ordering::Relaxed)
                );
                s.push_str(&crate::persistence::load::info_loading());
                render_aof(&mut s);
            }
            "stats" => {
                let pubsub = crate::server::pubsub::sizes();
                let _ = write!(
                    s,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{}\r\nsync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\nexpired_keys:{}\r\nevicted_keys:{}\r\ntotal_eviction_exceeded_time:{}\r\ncurrent_eviction_exceeded_time:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nio_uring_socket_shards:{}\r\nio_uring_enters:{}\r\nio_uring_loop_passes:{}\r\nio_uring_spin_hits:{}\r\nio_uring_msg_ring_wakes:{}\r\nio_uring_ring_waits:{}\r\nio_uring_ring_wait_timeouts:{}\r\nio_uring_idle_waits:{}\r\nio_uring_completions:{}\r\nio_uring_connection_migrations:{}\r\nwatchdog_rescues:{}\r\n",
                    total.connections_received,
                    total.commands,
                    inst[metrics::OPS],
                    total.net_input_bytes,
                    total.net_output_bytes,
                    inst[metrics::NET_INPUT] as f64 / 1024.0,
                    inst[metrics::NET_OUTPUT] as f64 / 1024.0,
                    total.rejected_connections,
                    expired as u64,
                    crate::keyspace::evict::evicted_keys(),
                    crate::keyspace::evict::exceeded_ms(now).0,
                    crate::keyspace::evict::exceeded_ms(now).1,
                    total.keyspace_hits,
                    total.keyspace_misses,
                    pubsub[0],
                    pubsub[1],
                    pubsub[2],
                    infos.iter().map(|i| i.track.0).sum::<usize>(),
                    infos.iter().map(|i| i.track.1).sum::<usize>(),
                    // Every shard holds the same prefixes.
                    infos.iter().map(|i| i.track.2).max().unwrap_or(0),
                    infos.iter().map(|i| i.stats.errors.values().sum::<u64>()).sum::<u64>(),
                    uring::COUNTERS.shards.load(Ordering::Relaxed),
                    uring::COUNTERS.enters.load(Ordering::Relaxed),
                    uring::COUNTERS.passes.load(Ordering::Relaxed),
                    uring::COUNTERS.spin_hits.load(Ordering::Relaxed),
                    uring::COUNTERS.msg_ring_wakes.load(Ordering::Relaxed),
                    uring::COUNTERS.ring_waits.load(Ordering::Relaxed),
                    uring::COUNTERS.ring_wait_timeouts.load(Ordering::Relaxed),
                    uring::COUNTERS.idle_waits.load(Ordering::Relaxed),
                    uring::COUNTERS.completions.load(Ordering::Relaxed),
                    uring::COUNTERS.migrations.load(Ordering::Relaxed),
                    rt.inboxes.iter().map(|i| i.rescues.load(Ordering::Relaxed)).sum::<u64>()
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

/// INFO memory, in Redis 7.0's field order. Fields Tessera cannot measure
/// (jemalloc's allocator_*, Lua VM, replication and client buffers) are left out.
fn render_memory(s: &mut String, infos: &[ShardInfo], maxmem: &str, policy: &str, used: u64) {
    let peak = (alloc::peak() as u64).max(used);
    let startup = alloc::startup() as u64;
    // Redis: startup + buffers + the key tables' structure; Tessera's client buffers are not counted.
    let overhead = startup + infos.iter().map(|i| i.overhead as u64).sum::<u64>();
    let dataset = used.saturating_sub(overhead);
    let net_usage = if used > startup { used - startup } else { 1 };
    let rss = alloc::rss_bytes().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let total_mem = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) as u64 * libc::sysconf(libc::_SC_PAGESIZE) as u64 };
    let maxmem_n: u64 = maxmem.parse().unwrap_or(0);
    let scripts = crate::scripting::cached_count();
    let (libraries, functions) = crate::scripting::functions::counts();
    let h = human_bytes;
    let _ = write!(
        s,
        "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{overhead}\r\nused_memory_startup:{startup}\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\ntotal_system_memory:{total_mem}\r\ntotal_system_memory_human:{}\r\nnumber_of_cached_scripts:{scripts}\r\nnumber_of_functions:{functions}\r\nnumber_of_libraries:{libraries}\r\nmaxmemory:{maxmem_n}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:{}\r\nmem_allocator:{}\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:{}\r\nlazyfreed_objects:{}\r\n",
        h(used),
        h(rss),
        h(peak),
        used as f64 * 100.0 / peak.max(1) as f64,
        dataset as f64 * 100.0 / net_usage as f64,
        h(total_mem),
        h(maxmem_n),
        rss as f64 / used.max(1) as f64,
        rss as i64 - used as i64,
        crate::keyspace::evict::NOT_COUNTED.load(Ordering::Relaxed),
        alloc::allocator_name(),
        crate::keyspace::lazyfree::pending(),
        crate::keyspace::lazyfree::freed(),
    );
}

fn first_value(c: &crate::config::Config, name: &str) -> Option<String> {
    c.get(&[name.as_bytes()]).into_iter().next().map(|(_, v)| v)
}

/// INFO persistence's aof_* fields, from persistence/aof.rs's counters.
fn render_aof(s: &mut String) {
    use crate::persistence::aof::*;
    use std::fmt::Write;
    let on = ENABLED.load(Ordering::Relaxed);
    let secs = LAST_REWRITE_SECS.load(Ordering::Relaxed);
    let ok = |b: bool| if b { "ok" } else { "err" };
    let _ = write!(
        s,
        "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\n",
        on as u8,
        REWRITING.load(Ordering::Relaxed) as u8,
        REWRITE_SCHEDULED.load(Ordering::Relaxed) as u8,
        if secs == u64::MAX { -1 } else { secs as i64 },
        match REWRITE_STARTED.load(Ordering::Relaxed) {
            u64::MAX => -1,
            t => crate::persistence::aof::unix_now().saturating_sub(t) as i64,
        },
        ok(LAST_REWRITE_OK.load(Ordering::Relaxed)),
        REWRITES.load(Ordering::Relaxed),
        CONSECUTIVE_FAILURES.load(Ordering::Relaxed),
        ok(LAST_WRITE_OK.load(Ordering::Relaxed)),
    );
    if on {
        let _ = write!(
            s,
            "aof_current_size:{}\r\naof_base_size:{}\r\n",
            CURRENT_SIZE.load(Ordering::Relaxed),
            BASE_SIZE.load(Ordering::Relaxed)
        );
    }
}
