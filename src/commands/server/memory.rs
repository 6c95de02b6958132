//! MEMORY USAGE / STATS / DOCTOR / MALLOC-STATS / PURGE / HELP (object.c's
//! memoryCommand), and the memory directives' publication to the keyspace
//! (maxmemory and its policy, the LFU parameters, lazyfree).

use crate::commands::connection::write_help;
use crate::commands::table::{AsyncFn, Table};
use crate::keyspace::evict::{self, Policy};
use crate::keyspace::{access, lazyfree, Value};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::{self, Ctx, Shard};
use crate::server::client::Client;
use crate::util::alloc;
use crate::util::num::string2ll;

pub fn register(t: &mut Table) {
    t.keyed("memory|usage", memory_usage);
    t.asynch("memory|stats", MEMORY_STATS);
    t.asynch("memory|doctor", MEMORY_DOCTOR);
    t.client("memory|malloc-stats", memory_malloc_stats);
    t.asynch("memory|purge", MEMORY_PURGE);
    t.client("memory|help", memory_help);
}

/// Publishes maxmemory, its policy, samples and tenacity, activerehashing, the LFU
/// parameters and the lazyfree directives (start-up and CONFIG SET).
pub fn configure_memory(c: &crate::config::Config) {
    use crate::config::MaxmemoryPolicy as P;
    let policy = match c.maxmemory_policy() {
        P::VolatileLru => Policy::VolatileLru,
        P::VolatileLfu => Policy::VolatileLfu,
        P::VolatileRandom => Policy::VolatileRandom,
        P::VolatileTtl => Policy::VolatileTtl,
        P::AllkeysLru => Policy::AllkeysLru,
        P::AllkeysLfu => Policy::AllkeysLfu,
        P::AllkeysRandom => Policy::AllkeysRandom,
        P::NoEviction => Policy::NoEviction,
    };
    access::configure(
        matches!(policy, Policy::VolatileLfu | Policy::AllkeysLfu),
        c.lfu_log_factor(),
        c.lfu_decay_time(),
    );
    crate::runtime::ACTIVE_REHASHING.store(c.bool_value("activerehashing"), std::sync::atomic::Ordering::Relaxed);
    let tenacity = c.num("maxmemory-eviction-tenacity").clamp(0, 100) as u32;
    evict::configure(c.maxmemory(), policy, c.maxmemory_samples(), tenacity);
    lazyfree::configure(
        c.bool_value("lazyfree-lazy-eviction"),
        c.bool_value("lazyfree-lazy-expire"),
        c.bool_value("lazyfree-lazy-server-del"),
        c.bool_value("lazyfree-lazy-user-del"),
        c.bool_value("lazyfree-lazy-user-flush"),
    );
}

/// updateMaxmemory after CONFIG SET: warns when the new limit is below the
/// current usage and makes every shard evict at once.
pub fn maxmemory_changed(old: u64, new: u64) {
    if new == 0 || new == old {
        return;
    }
    let used = evict::used();
    if new < used {
        crate::log_warning!("WARNING: the new maxmemory value set via CONFIG SET ({}) is smaller than the current memory usage ({}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy.", new, used);
    }
    for s in 0..runtime::nshards() {
        runtime::send(
            s,
            Box::new(|| {
                if evict::over_limit() {
                    runtime::with_shard(|sh| sh.evict());
                }
            }),
        );
    }
}

// ---------------------------------------------------------------- USAGE

extern "C" {
    /// The size class mimalloc gives a request of `size` bytes.
    fn mi_good_size(size: usize) -> usize;
    fn mi_usable_size(p: *const std::ffi::c_void) -> usize;
    fn mi_collect(force: bool);
    fn mi_stats_print_out(out: Option<unsafe extern "C" fn(*const std::os::raw::c_char, *mut std::ffi::c_void)>, arg: *mut std::ffi::c_void);
}

fn good_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        // SAFETY: a pure function of its argument.
        unsafe { mi_good_size(n) }
    }
}

/// Aggregates up to this many elements are measured exactly (a copy's
/// allocations); bigger ones by their structure, as Redis samples them.
const MEASURE_UP_TO: usize = 4096;

/// The heap bytes of a value. Strings: the usable size of their buffer.
/// Aggregates: what the allocator counts while a copy of the value is
/// built on this thread (the counting allocator's own figure), or, past
/// [`MEASURE_UP_TO`] elements with SAMPLES other than 0, the structure's
/// own accounting.
fn value_bytes(v: &Value, all: bool) -> usize {
    let len = match v {
        Value::Int(_) | Value::Small(_) => return 0,
        Value::Str { data, .. } => {
            if data.capacity() == 0 {
                return 0;
            }
            // SAFETY: a live block of the global allocator (mimalloc).
            return if alloc::counting() {
                unsafe { mi_usable_size(data.as_ptr() as *const _) }
            } else {
                data.capacity()
            };
        }
        Value::List(l) => l.len(),
        Value::Hash(h) => h.len(),
        Value::Set(s) => s.len(),
        Value::ZSet(z) => z.len(),
        // Entries live in listpack nodes: a copy per node.
        Value::Stream(s) => s.node_count(),
    };
    if (all || len <= MEASURE_UP_TO) && alloc::counting() {
        let before = alloc::thread_net();
        let copy = v.clone();
        let after = alloc::thread_net();
        drop(copy);
        return (after - before).max(0) as usize;
    }
    v.mem_usage()
}

/// MEMORY USAGE key [SAMPLES count]: the key's table node, its name, its
/// value, and its TTL-table node when it has a TTL (Tessera keeps the TTL
/// in a second table, with a copy of the name).
fn memory_usage(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let mut all = false;
    let mut j = 3;
    while j < args.len() {
        if args.is(j, "samples") && j + 1 < args.len() {
            let Some(n) = string2ll(args.get(j + 1)) else {
                return out.error(err::NOT_INT);
            };
            if n < 0 {
                return out.error(err::SYNTAX);
            }
            all = n == 0;
            j += 2;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    let key = args.get(2);
    let db = ctx.db();
    let Some(e) = db.entry(key) else { return out.null() };
    // The table node: entry, value struct, name and TTL in one block.
    let node = good_size(crate::keyspace::table::node_size(key.len(), e.expire_at() != 0));
    out.int((node + value_bytes(&e.val, all)) as i64);
}

// ---------------------------------------------------------------- STATS, DOCTOR

/// getMemoryOverheadData's figures that Tessera computes.
struct Overhead {
    peak: u64,
    total: u64,
    startup: u64,
    /// Per non-empty db: (index, main table bytes, TTL table bytes).
    dbs: Vec<(usize, u64, u64)>,
    overhead: u64,
    keys: u64,
    rss: u64,
    scripts: usize,
}

impl Overhead {
    fn dataset(&self) -> u64 {
        self.total.saturating_sub(self.overhead)
    }
    fn dataset_perc(&self) -> f64 {
        let net = self.total.saturating_sub(self.startup).max(1);
        self.dataset() as f64 * 100.0 / net as f64
    }
    fn peak_perc(&self) -> f64 {
        self.total as f64 * 100.0 / self.peak.max(1) as f64
    }
    fn frag(&self) -> f64 {
        self.rss as f64 / self.total.max(1) as f64
    }
}

async fn overhead() -> Option<Overhead> {
    let per = runtime::broadcast(|s: &mut Shard| s.dbs.iter().map(|d| (d.len(), d.table_bytes())).collect::<Vec<_>>())
        .await
        .ok()?;
    let total = alloc::sample() as u64;
    let peak = (alloc::peak() as u64).max(total);
    let startup = alloc::startup() as u64;
    let mut dbs = Vec::new();
    let mut keys = 0u64;
    let mut tables = 0u64;
    let ndb = per.first().map_or(0, |p| p.len());
    for i in 0..ndb {
        let (mut n, mut main, mut exp) = (0usize, 0u64, 0u64);
        for p in &per {
            n += p[i].0;
            main += p[i].1 .0 as u64;
            exp += p[i].1 .1 as u64;
        }
        tables += main + exp;
        if n > 0 {
            keys += n as u64;
            dbs.push((i, main, exp));
        }
    }
    Some(Overhead {
        peak,
        total,
        startup,
        dbs,
        overhead: startup + tables,
        keys,
        rss: alloc::rss_bytes().unwrap_or(0),
        scripts: crate::scripting::cached_count(),
    })
}

const MEMORY_STATS: AsyncFn = |c, args, out| Box::pin(memory_stats(c, args, out));

/// MEMORY STATS with the fields Tessera computes (no replication, cluster
/// links, AOF buffer or jemalloc figures), in Redis's order.
async fn memory_stats(_c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    let Some(mh) = overhead().await else { return out.error(err::SHARD_LOST) };
    out.map_len(11 + mh.dbs.len());
    let int = |out: &mut Reply, k: &str, v: u64| {
        out.bulk(k.as_bytes());
        out.int(v as i64);
    };
    int(out, "peak.allocated", mh.peak);
    int(out, "total.allocated", mh.total);
    int(out, "startup.allocated", mh.startup);
    for &(i, main, exp) in &mh.dbs {
        out.bulk(format!("db.{i}").as_bytes());
        out.map_len(2);
        int(out, "overhead.hashtable.main", main);
        int(out, "overhead.hashtable.expires", exp);
    }
    int(out, "overhead.total", mh.overhead);
    int(out, "keys.count", mh.keys);
    int(out, "keys.bytes-per-key", mh.total.saturating_sub(mh.startup).checked_div(mh.keys).unwrap_or(0));
    int(out, "dataset.bytes", mh.dataset());
    out.bulk(b"dataset.percentage");
    out.double(mh.dataset_perc());
    out.bulk(b"peak.percentage");
    out.double(mh.peak_perc());
    out.bulk(b"fragmentation");
    out.double(mh.frag());
    out.bulk(b"fragmentation.bytes");
    out.int(mh.rss as i64 - mh.total as i64);
}

const MEMORY_DOCTOR: AsyncFn = |c, args, out| Box::pin(memory_doctor(c, args, out));

/// getMemoryDoctorReport, with the checks whose figures Tessera has.
async fn memory_doctor(_c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    let Some(mh) = overhead().await else { return out.error(err::SHARD_LOST) };
    out.verbatim(doctor_report(&mh).as_bytes());
}

fn doctor_report(mh: &Overhead) -> String {
    let empty = mh.total < 5 << 20;
    let (mut big_peak, mut high_frag, mut many_scripts) = (false, false, false);
    if !empty {
        big_peak = (mh.peak as f32 / mh.total as f32) > 1.5;
        high_frag = mh.frag() > 1.4 && mh.rss.saturating_sub(mh.total) > 10 << 20;
        many_scripts = mh.scripts > 1000;
    }
    if empty {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into();
    }
    if !big_peak && !high_frag && !many_scripts {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into();
    }
    let mut s = String::from("Sam, I detected a few issues in this Redis instance memory implants:\n\n");
    if big_peak {
        s.push_str(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n");
    }
    if high_frag {
        s.push_str(&format!(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"{}\".\n\n", alloc::allocator_name()));
    }
    if many_scripts {
        s.push_str(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n");
    }
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}

// ---------------------------------------------------------------- MALLOC-STATS, PURGE, HELP

unsafe extern "C" fn collect_stats(msg: *const std::os::raw::c_char, arg: *mut std::ffi::c_void) {
    if msg.is_null() || arg.is_null() {
        return;
    }
    // SAFETY: `arg` is the String passed below; `msg` a NUL-terminated line from mimalloc.
    let s = &mut *(arg as *mut String);
    s.push_str(&std::ffi::CStr::from_ptr(msg).to_string_lossy());
}

/// MEMORY MALLOC-STATS: mimalloc's own statistics report (Redis prints jemalloc's).
fn memory_malloc_stats(_c: &mut Client, _args: Args, out: &mut Reply) {
    let mut s = String::new();
    // SAFETY: the callback only appends to `s`, which outlives the call.
    unsafe { mi_stats_print_out(Some(collect_stats), &mut s as *mut String as *mut std::ffi::c_void) };
    out.verbatim(s.as_bytes());
}

const MEMORY_PURGE: AsyncFn = |c, args, out| Box::pin(memory_purge(c, args, out));

/// MEMORY PURGE: every shard's mimalloc heap returns its free pages
/// (`mi_collect(true)` on each thread), after the lazyfree thread is done.
async fn memory_purge(_c: &mut Client, _args: Args<'_>, out: &mut Reply) {
    // SAFETY: mi_collect has no preconditions.
    match runtime::broadcast(|_s: &mut Shard| unsafe { mi_collect(true) }).await {
        Ok(_) => out.ok(),
        Err(_) => out.error("ERR Error purging dirty pages"),
    }
}

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

fn memory_help(_c: &mut Client, _args: Args, out: &mut Reply) {
    write_help(out, MEMORY_HELP);
}
