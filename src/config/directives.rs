//! The directive table: every configuration name Redis 7.0.15 knows (plus
//! Tessera's own `threads`), with aliases, flags, types, defaults and
//! validation, and the per-type set / get / rewrite logic of Redis's
//! config.c.

use super::parse::{fmt_double_trimmed, memtoull, repr, string2d, string2ll, strtoll_full};

// ---------------------------------------------------------------------------
// Flags (config.c names)
// ---------------------------------------------------------------------------
pub const MODIFIABLE: u8 = 0;
pub const IMMUTABLE: u8 = 1 << 0;
pub const PROTECTED: u8 = 1 << 1;
pub const MULTI_ARG: u8 = 1 << 2;
pub const HIDDEN: u8 = 1 << 3;
pub const SENSITIVE: u8 = 1 << 4;
pub const DENY_LOADING: u8 = 1 << 5;

/// Directives Tessera actually honours. Everything else in the table is
/// accepted, stored and reported by CONFIG GET, and listed in the
/// "not supported yet" startup warning when set to a non-default value.
/// Add a name here once the server implements it.
pub const IMPLEMENTED: &[&str] = &[
    "port",
    "bind",
    "protected-mode",
    "timeout",
    "tcp-keepalive",
    "maxclients",
    "databases",
    "requirepass",
    "enable-debug-command",
    "loglevel",
    "logfile",
    "dir",
    "threads",
    "pipeline-ordering",
    "net-engine",
    // The access clock OBJECT FREQ / IDLETIME report (keyspace/access.rs),
    // maxmemory eviction (keyspace/evict.rs), lazy freeing (keyspace/lazyfree.rs).
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "maxmemory-eviction-tenacity",
    "lfu-log-factor",
    "lfu-decay-time",
    "lazyfree-lazy-eviction",
    "lazyfree-lazy-expire",
    "lazyfree-lazy-server-del",
    "lazyfree-lazy-user-del",
    "lazyfree-lazy-user-flush",
    // The cron's share of a key table resize (keyspace/table.rs).
    "activerehashing",
    "io-threads", // has its own dedicated warning
    "daemonize",  // "no" is what Tessera does; "yes" has its own warning
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "client-output-buffer-limit",
    // The compact encodings' thresholds (keyspace/types/), read on each write that may convert.
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "list-max-listpack-size",
    // Sparse HyperLogLogs are promoted to dense past it (keyspace/types/hll.rs).
    "hll-sparse-max-bytes",
    // Where a stream closes a node (keyspace/types/stream.rs).
    "stream-node-max-bytes",
    "stream-node-max-entries",
    // Scripts past it get BUSY replies elsewhere and can be killed (scripting/).
    "busy-reply-threshold",
    // Client-side caching's key table, split between the shards (runtime/track.rs).
    "tracking-table-max-keys",
    // Keyspace notifications (runtime/notify.rs), every class but 'n'.
    "notify-keyspace-events",
    // RDB (persistence/): the file SAVE writes and start-up loads, LZF, CRC64.
    "dbfilename",
    "rdbcompression",
    "rdbchecksum",
    // BGSAVE (persistence/snapshot.rs): save points, MISCONF, the test delay.
    "save",
    "stop-writes-on-bgsave-error",
    "rdb-key-save-delay",
    "key-load-delay",
    // The AOF (persistence/aof.rs).
    "appendonly",
    "appendfsync",
    "appendfilename",
    "appenddirname",
    "aof-use-rdb-preamble",
    "aof-load-truncated",
    "aof-timestamp-enabled",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
];

/// File-only directives (not CONFIG GET/SET-able) that Tessera implements.
/// `rename-command` and `user` are stored but not applied until listed here.
pub const IMPLEMENTED_SPECIAL: &[&str] = &[];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumFmt {
    Integer,
    Memory,
    MemoryPercent,
    Octal,
}

pub type StrCheck = fn(&[u8], &super::Config) -> Result<(), &'static str>;
pub type EnumCheck = fn(i64) -> Result<(), &'static str>;

#[derive(Clone, Copy)]
pub enum Kind {
    Bool(bool),
    /// `default: None` is a NULL default. `empty_is_null`: an empty value is
    /// stored as NULL (EMPTY_STRING_IS_NULL).
    Str {
        default: Option<&'static str>,
        empty_is_null: bool,
        check: Option<StrCheck>,
    },
    Enum {
        items: &'static [(&'static str, i64)],
        default: i64,
        bitflags: bool,
        check: Option<EnumCheck>,
    },
    /// Bounds are C `long long` values; `unsigned` types (unsigned int,
    /// unsigned long long, size_t) are bound-checked in the unsigned domain,
    /// exactly like numericBoundaryCheck.
    Num {
        lo: i64,
        hi: i64,
        default: i64,
        fmt: NumFmt,
        unsigned: bool,
    },
    Dir,
    Save,
    ObufLimits,
    OomValues,
    Notify,
    Bind,
    ReplicaOf,
    Percentiles,
}

pub struct Def {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub flags: u8,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Str(Option<Vec<u8>>),
    Enum(i64),
    Num(i128),
    Dir(Vec<u8>),
    Save(Vec<(i64, i64)>),
    Obuf([(u64, u64, i64); 3]),
    Oom([i64; 3]),
    Notify(u32),
    Bind(Vec<Vec<u8>>),
    ReplicaOf(Option<(Vec<u8>, i64)>),
    Percentiles(Vec<f64>),
}

// ---------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------
pub static MAXMEMORY_POLICY: &[(&str, i64)] = &[
    ("volatile-lru", 0),
    ("volatile-lfu", 1),
    ("volatile-random", 2),
    ("volatile-ttl", 3),
    ("allkeys-lru", 4),
    ("allkeys-lfu", 5),
    ("allkeys-random", 6),
    ("noeviction", 7),
];
pub static SYSLOG_FACILITY: &[(&str, i64)] = &[
    ("user", 8),
    ("local0", 128),
    ("local1", 136),
    ("local2", 144),
    ("local3", 152),
    ("local4", 160),
    ("local5", 168),
    ("local6", 176),
    ("local7", 184),
];
pub static LOGLEVEL: &[(&str, i64)] = &[("debug", 0), ("verbose", 1), ("notice", 2), ("warning", 3)];
pub static SUPERVISED: &[(&str, i64)] = &[("upstart", 1), ("systemd", 2), ("auto", 3), ("no", 0)];
/// Tessera's `pipeline-ordering`: strict (a connection's writes become visible in
/// the order sent, as in Redis) or relaxed (commands of one pipeline read that
/// go to different shards may take effect in any order).
pub static PIPELINE_ORDERING: &[(&str, i64)] = &[("strict", 1), ("relaxed", 0)];
/// Tessera's `net-engine`: each shard's own io_uring socket loop (falling back,
/// with a warning, where the kernel refuses it) or glommio's socket API.
pub static NET_ENGINE: &[(&str, i64)] = &[("io_uring", 1), ("glommio", 0)];
pub static AOF_FSYNC: &[(&str, i64)] = &[("everysec", 2), ("always", 1), ("no", 0)];
pub static REPL_DISKLESS_LOAD: &[(&str, i64)] = &[("disabled", 0), ("on-empty-db", 1), ("swapdb", 2)];
pub static TLS_AUTH_CLIENTS: &[(&str, i64)] = &[("no", 0), ("yes", 1), ("optional", 2)];
pub static OOM_SCORE_ADJ: &[(&str, i64)] = &[("no", 0), ("yes", 1), ("relative", 1), ("absolute", 2)];
pub static ACL_PUBSUB_DEFAULT: &[(&str, i64)] = &[("allchannels", 1), ("resetchannels", 0)];
pub static SANITIZE_DUMP_PAYLOAD: &[(&str, i64)] = &[("no", 0), ("yes", 1), ("clients", 2)];
pub static PROTECTED_ACTION: &[(&str, i64)] = &[("no", 0), ("yes", 1), ("local", 2)];
pub static CLUSTER_ENDPOINT_TYPE: &[(&str, i64)] = &[("ip", 0), ("hostname", 1), ("unknown-endpoint", 2)];
pub static PROPAGATION_ERROR_BEHAVIOR: &[(&str, i64)] = &[("ignore", 0), ("panic", 1), ("panic-on-replicas", 2)];
pub static SHUTDOWN_ON_SIG: &[(&str, i64)] = &[("default", 0), ("save", 1), ("nosave", 2), ("now", 4), ("force", 8)];

/// Tessera uses mimalloc: like a Redis built without jemalloc (no
/// HAVE_DEFRAG), active defragmentation cannot be enabled.
fn check_active_defrag(v: bool) -> Result<(), &'static str> {
    if v {
        return Err("Active defragmentation cannot be enabled: it requires a Redis server compiled with a modified Jemalloc like the one shipped by default with the Redis source distribution");
    }
    Ok(())
}

fn check_shutdown_flags(v: i64) -> Result<(), &'static str> {
    if v & 1 != 0 && v & 2 != 0 {
        return Err("shutdown options SAVE and NOSAVE can't be used simultaneously");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// String validators
// ---------------------------------------------------------------------------
fn path_is_base_name(v: &[u8]) -> bool {
    !v.contains(&b'/') && !v.contains(&b'\\')
}

fn check_dbfilename(v: &[u8], _: &super::Config) -> Result<(), &'static str> {
    if !path_is_base_name(v) {
        return Err("dbfilename can't be a path, just a filename");
    }
    Ok(())
}

fn check_aof_filename(v: &[u8], _: &super::Config) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("appendfilename can't be empty");
    }
    if !path_is_base_name(v) {
        return Err("appendfilename can't be a path, just a filename");
    }
    Ok(())
}

fn check_aof_dirname(v: &[u8], _: &super::Config) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("appenddirname can't be empty");
    }
    if !path_is_base_name(v) {
        return Err("appenddirname can't be a path, just a dirname");
    }
    Ok(())
}

fn check_announced_hostname(v: &[u8], _: &super::Config) -> Result<(), &'static str> {
    if v.len() >= 256 {
        return Err("Hostnames must be less than 256 characters");
    }
    for &c in v {
        if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'.') {
            return Err("Hostnames may only contain alphanumeric characters, hyphens or dots");
        }
    }
    Ok(())
}

/// validateProcTitleTemplate: expand with an empty title; unknown variables,
/// bad syntax or an all-blank expansion are errors.
fn check_proc_title_template(v: &[u8], cfg: &super::Config) -> Result<(), &'static str> {
    const ERR: &str = "template format is invalid or contains unknown variables";
    let mut res: Vec<u8> = Vec::new();
    let mut p = 0usize;
    let v = &v[..v.iter().position(|&c| c == 0).unwrap_or(v.len())];
    while p < v.len() {
        let sv = match v[p..].iter().position(|&c| c == b'{') {
            None => {
                res.extend_from_slice(&v[p..]);
                break;
            }
            Some(off) => p + off,
        };
        res.extend_from_slice(&v[p..sv]);
        let sv = sv + 1;
        if sv >= v.len() {
            return Err(ERR);
        }
        if v[sv] == b'{' {
            res.push(b'{');
            p = sv + 1;
            continue;
        }
        let ev = match v[sv..].iter().position(|&c| c == b'}') {
            None => return Err(ERR),
            Some(off) => sv + off,
        };
        let var = &v[sv..ev];
        let val: Vec<u8> = match var {
            b"title" => Vec::new(),
            b"listen-addr" => {
                let port = cfg.num("port") as i64;
                let tls = cfg.num("tls-port") as i64;
                if port != 0 || tls != 0 {
                    let bind = cfg.bind_raw();
                    let addr = bind.first().cloned().unwrap_or_else(|| b"*".to_vec());
                    let mut s = addr;
                    s.extend_from_slice(format!(":{}", if port != 0 { port } else { tls }).as_bytes());
                    s
                } else {
                    let mut s = b"unixsocket:".to_vec();
                    s.extend_from_slice(&cfg.str_value("unixsocket").unwrap_or_default());
                    s
                }
            }
            b"server-mode" => {
                if cfg.bool_value("cluster-enabled") {
                    b"[cluster]".to_vec()
                } else {
                    Vec::new()
                }
            }
            b"config-file" => match &cfg.config_file {
                Some(p) => p.clone(),
                None => b"-".to_vec(),
            },
            b"port" => format!("{}", cfg.num("port")).into_bytes(),
            b"tls-port" => format!("{}", cfg.num("tls-port")).into_bytes(),
            b"unixsocket" => cfg.str_value("unixsocket").unwrap_or_default(),
            _ => return Err(ERR),
        };
        res.extend_from_slice(&val);
        p = ev + 1;
    }
    if res.iter().all(|&c| c == b' ') {
        return Err(ERR);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Table constructors
// ---------------------------------------------------------------------------
const fn b(name: &'static str, alias: Option<&'static str>, flags: u8, d: bool) -> Def {
    Def {
        name,
        alias,
        flags,
        kind: Kind::Bool(d),
    }
}
const fn s(name: &'static str, alias: Option<&'static str>, flags: u8, empty_is_null: bool, d: Option<&'static str>, check: Option<StrCheck>) -> Def {
    Def {
        name,
        alias,
        flags,
        kind: Kind::Str {
            default: d,
            empty_is_null,
            check,
        },
    }
}
const fn e(name: &'static str, alias: Option<&'static str>, flags: u8, items: &'static [(&'static str, i64)], d: i64) -> Def {
    Def {
        name,
        alias,
        flags,
        kind: Kind::Enum {
            items,
            default: d,
            bitflags: false,
            check: None,
        },
    }
}
/// Signed integer config.
const fn i(name: &'static str, alias: Option<&'static str>, flags: u8, lo: i64, hi: i64, d: i64) -> Def {
    Def {
        name,
        alias,
        flags,
        kind: Kind::Num {
            lo,
            hi,
            default: d,
            fmt: NumFmt::Integer,
            unsigned: false,
        },
    }
}
/// Unsigned (unsigned int / size_t / unsigned long long) integer config.
const fn u(name: &'static str, alias: Option<&'static str>, flags: u8, lo: i64, hi: i64, d: i64) -> Def {
    Def {
        name,
        alias,
        flags,
        kind: Kind::Num {
            lo,
            hi,
            default: d,
            fmt: NumFmt::Integer,
            unsigned: true,
        },
    }
}
/// Memory config (signed storage).
const fn m(name: &'static str, alias: Option<&'static str>, flags: u8, lo: i64, hi: i64, d: i64) -> Def {
    Def {
        name,
        alias,
        flags,
        kind: Kind::Num {
            lo,
            hi,
            default: d,
            fmt: NumFmt::Memory,
            unsigned: false,
        },
    }
}
/// Memory config (unsigned storage).
const fn mu(name: &'static str, alias: Option<&'static str>, flags: u8, lo: i64, hi: i64, d: i64) -> Def {
    Def {
        name,
        alias,
        flags,
        kind: Kind::Num {
            lo,
            hi,
            default: d,
            fmt: NumFmt::Memory,
            unsigned: true,
        },
    }
}
const fn sp(name: &'static str, alias: Option<&'static str>, flags: u8, kind: Kind) -> Def {
    Def { name, alias, flags, kind }
}

const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const UINT_MAX: i64 = u32::MAX as i64;
const LONG_MAX: i64 = i64::MAX;
const ULLONG_MAX: i64 = -1; // (long long)ULLONG_MAX, compared as unsigned
const MB: i64 = 1024 * 1024;
const N: Option<&'static str> = None;
const NULL_STR: Option<&'static str> = None;
const EMPTY_IS_NULL: bool = true;
const ALLOW_EMPTY: bool = false;

pub static DEFS: &[Def] = &[
    // ---- bool ----
    b("rdbchecksum", N, IMMUTABLE, true),
    b("daemonize", N, IMMUTABLE, false),
    b("io-threads-do-reads", N, IMMUTABLE, false),
    b("always-show-logo", N, IMMUTABLE, false),
    b("protected-mode", N, MODIFIABLE, true),
    b("rdbcompression", N, MODIFIABLE, true),
    b("rdb-del-sync-files", N, MODIFIABLE, false),
    b("activerehashing", N, MODIFIABLE, true),
    b("stop-writes-on-bgsave-error", N, MODIFIABLE, true),
    b("set-proc-title", N, IMMUTABLE, true),
    b("dynamic-hz", N, MODIFIABLE, true),
    b("lazyfree-lazy-eviction", N, MODIFIABLE, false),
    b("lazyfree-lazy-expire", N, MODIFIABLE, false),
    b("lazyfree-lazy-server-del", N, MODIFIABLE, false),
    b("lazyfree-lazy-user-del", N, MODIFIABLE, false),
    b("lazyfree-lazy-user-flush", N, MODIFIABLE, false),
    b("repl-disable-tcp-nodelay", N, MODIFIABLE, false),
    b("repl-diskless-sync", N, MODIFIABLE, true),
    b("aof-rewrite-incremental-fsync", N, MODIFIABLE, true),
    b("no-appendfsync-on-rewrite", N, MODIFIABLE, false),
    b("cluster-require-full-coverage", N, MODIFIABLE, true),
    b("rdb-save-incremental-fsync", N, MODIFIABLE, true),
    b("aof-load-truncated", N, MODIFIABLE, true),
    b("aof-use-rdb-preamble", N, MODIFIABLE, true),
    b("aof-timestamp-enabled", N, MODIFIABLE, false),
    b("cluster-replica-no-failover", Some("cluster-slave-no-failover"), MODIFIABLE, false),
    b("replica-lazy-flush", Some("slave-lazy-flush"), MODIFIABLE, false),
    b("replica-serve-stale-data", Some("slave-serve-stale-data"), MODIFIABLE, true),
    b("replica-read-only", Some("slave-read-only"), MODIFIABLE, true),
    b("replica-ignore-maxmemory", Some("slave-ignore-maxmemory"), MODIFIABLE, true),
    b("jemalloc-bg-thread", N, MODIFIABLE, true),
    b("activedefrag", N, MODIFIABLE, false),
    b("syslog-enabled", N, IMMUTABLE, false),
    b("cluster-enabled", N, IMMUTABLE, false),
    b("appendonly", N, MODIFIABLE | DENY_LOADING, false),
    b("cluster-allow-reads-when-down", N, MODIFIABLE, false),
    b("cluster-allow-pubsubshard-when-down", N, MODIFIABLE, true),
    b("crash-log-enabled", N, MODIFIABLE, true),
    b("crash-memcheck-enabled", N, MODIFIABLE, true),
    b("use-exit-on-panic", N, MODIFIABLE | HIDDEN, false),
    b("disable-thp", N, IMMUTABLE, true),
    b("cluster-allow-replica-migration", N, MODIFIABLE, true),
    b("replica-announced", N, MODIFIABLE, true),
    b("latency-tracking", N, MODIFIABLE, true),
    b("aof-disable-auto-gc", N, MODIFIABLE, false),
    b("replica-ignore-disk-write-errors", N, MODIFIABLE, false),
    // ---- string ----
    s("aclfile", N, IMMUTABLE, ALLOW_EMPTY, Some(""), None),
    s("unixsocket", N, IMMUTABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("pidfile", N, IMMUTABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("replica-announce-ip", Some("slave-announce-ip"), MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("masteruser", N, MODIFIABLE | SENSITIVE, EMPTY_IS_NULL, NULL_STR, None),
    s("cluster-announce-ip", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("cluster-config-file", N, IMMUTABLE, ALLOW_EMPTY, Some("nodes.conf"), None),
    s(
        "cluster-announce-hostname",
        N,
        MODIFIABLE,
        EMPTY_IS_NULL,
        NULL_STR,
        Some(check_announced_hostname),
    ),
    s("syslog-ident", N, IMMUTABLE, ALLOW_EMPTY, Some("redis"), None),
    s("dbfilename", N, MODIFIABLE | PROTECTED, ALLOW_EMPTY, Some("dump.rdb"), Some(check_dbfilename)),
    s("appendfilename", N, IMMUTABLE, ALLOW_EMPTY, Some("appendonly.aof"), Some(check_aof_filename)),
    s("appenddirname", N, IMMUTABLE, ALLOW_EMPTY, Some("appendonlydir"), Some(check_aof_dirname)),
    s("server_cpulist", N, IMMUTABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("bio_cpulist", N, IMMUTABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("aof_rewrite_cpulist", N, IMMUTABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("bgsave_cpulist", N, IMMUTABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("ignore-warnings", N, MODIFIABLE, ALLOW_EMPTY, Some(""), None),
    s(
        "proc-title-template",
        N,
        MODIFIABLE,
        ALLOW_EMPTY,
        Some("{title} {listen-addr} {server-mode}"),
        Some(check_proc_title_template),
    ),
    s("bind-source-addr", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("logfile", N, IMMUTABLE, ALLOW_EMPTY, Some(""), None),
    s("masterauth", N, MODIFIABLE | SENSITIVE, EMPTY_IS_NULL, NULL_STR, None),
    s("requirepass", N, MODIFIABLE | SENSITIVE, EMPTY_IS_NULL, NULL_STR, None),
    // ---- enum ----
    e("supervised", N, IMMUTABLE, SUPERVISED, 0),
    e("syslog-facility", N, IMMUTABLE, SYSLOG_FACILITY, 128),
    e("repl-diskless-load", N, MODIFIABLE | DENY_LOADING, REPL_DISKLESS_LOAD, 0),
    e("loglevel", N, MODIFIABLE, LOGLEVEL, 2),
    e("maxmemory-policy", N, MODIFIABLE, MAXMEMORY_POLICY, 7),
    e("appendfsync", N, MODIFIABLE, AOF_FSYNC, 2),
    e("oom-score-adj", N, MODIFIABLE, OOM_SCORE_ADJ, 0),
    e("acl-pubsub-default", N, MODIFIABLE, ACL_PUBSUB_DEFAULT, 0),
    e("sanitize-dump-payload", N, MODIFIABLE, SANITIZE_DUMP_PAYLOAD, 0),
    e("enable-protected-configs", N, IMMUTABLE, PROTECTED_ACTION, 0),
    e("enable-debug-command", N, IMMUTABLE, PROTECTED_ACTION, 0),
    e("enable-module-command", N, IMMUTABLE, PROTECTED_ACTION, 0),
    e("cluster-preferred-endpoint-type", N, MODIFIABLE, CLUSTER_ENDPOINT_TYPE, 0),
    e("propagation-error-behavior", N, MODIFIABLE, PROPAGATION_ERROR_BEHAVIOR, 0),
    sp(
        "shutdown-on-sigint",
        N,
        MODIFIABLE | MULTI_ARG,
        Kind::Enum {
            items: SHUTDOWN_ON_SIG,
            default: 0,
            bitflags: true,
            check: Some(check_shutdown_flags),
        },
    ),
    sp(
        "shutdown-on-sigterm",
        N,
        MODIFIABLE | MULTI_ARG,
        Kind::Enum {
            items: SHUTDOWN_ON_SIG,
            default: 0,
            bitflags: true,
            check: Some(check_shutdown_flags),
        },
    ),
    // ---- int ----
    i("databases", N, IMMUTABLE, 1, INT_MAX, 16),
    i("port", N, MODIFIABLE, 0, 65535, 6379),
    i("io-threads", N, IMMUTABLE, 1, 128, 1),
    i("auto-aof-rewrite-percentage", N, MODIFIABLE, 0, INT_MAX, 100),
    i(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        MODIFIABLE,
        0,
        INT_MAX,
        10,
    ),
    i("list-max-listpack-size", Some("list-max-ziplist-size"), MODIFIABLE, INT_MIN, INT_MAX, -2),
    i("tcp-keepalive", N, MODIFIABLE, 0, INT_MAX, 300),
    i("cluster-migration-barrier", N, MODIFIABLE, 0, INT_MAX, 1),
    i("active-defrag-cycle-min", N, MODIFIABLE, 1, 99, 1),
    i("active-defrag-cycle-max", N, MODIFIABLE, 1, 99, 25),
    i("active-defrag-threshold-lower", N, MODIFIABLE, 0, 1000, 10),
    i("active-defrag-threshold-upper", N, MODIFIABLE, 0, 1000, 100),
    i("lfu-log-factor", N, MODIFIABLE, 0, INT_MAX, 10),
    i("lfu-decay-time", N, MODIFIABLE, 0, INT_MAX, 1),
    i("replica-priority", Some("slave-priority"), MODIFIABLE, 0, INT_MAX, 100),
    i("repl-diskless-sync-delay", N, MODIFIABLE, 0, INT_MAX, 5),
    i("maxmemory-samples", N, MODIFIABLE, 1, INT_MAX, 5),
    i("maxmemory-eviction-tenacity", N, MODIFIABLE, 0, 100, 10),
    i("timeout", N, MODIFIABLE, 0, INT_MAX, 0),
    i("replica-announce-port", Some("slave-announce-port"), MODIFIABLE, 0, 65535, 0),
    i("tcp-backlog", N, IMMUTABLE, 0, INT_MAX, 511),
    i("cluster-port", N, IMMUTABLE, 0, 65535, 0),
    i("cluster-announce-bus-port", N, MODIFIABLE, 0, 65535, 0),
    i("cluster-announce-port", N, MODIFIABLE, 0, 65535, 0),
    i("cluster-announce-tls-port", N, MODIFIABLE, 0, 65535, 0),
    i("repl-timeout", N, MODIFIABLE, 1, INT_MAX, 60),
    i("repl-ping-replica-period", Some("repl-ping-slave-period"), MODIFIABLE, 1, INT_MAX, 10),
    i("list-compress-depth", N, MODIFIABLE, 0, INT_MAX, 0),
    i("rdb-key-save-delay", N, MODIFIABLE | HIDDEN, INT_MIN, INT_MAX, 0),
    i("key-load-delay", N, MODIFIABLE | HIDDEN, INT_MIN, INT_MAX, 0),
    i("active-expire-effort", N, MODIFIABLE, 1, 10, 1),
    i("hz", N, MODIFIABLE, 0, INT_MAX, 10),
    i("min-replicas-to-write", Some("min-slaves-to-write"), MODIFIABLE, 0, INT_MAX, 0),
    i("min-replicas-max-lag", Some("min-slaves-max-lag"), MODIFIABLE, 0, INT_MAX, 10),
    i("watchdog-period", N, MODIFIABLE | HIDDEN, 0, INT_MAX, 0),
    i("shutdown-timeout", N, MODIFIABLE, 0, INT_MAX, 10),
    i("repl-diskless-sync-max-replicas", N, MODIFIABLE, 0, INT_MAX, 0),
    // ---- unsigned int ----
    u("maxclients", N, MODIFIABLE, 1, UINT_MAX, 10000),
    sp(
        "unixsocketperm",
        N,
        IMMUTABLE,
        Kind::Num {
            lo: 0,
            hi: 0o777,
            default: 0,
            fmt: NumFmt::Octal,
            unsigned: true,
        },
    ),
    u("socket-mark-id", N, IMMUTABLE, 0, UINT_MAX, 0),
    // ---- unsigned long ----
    i("active-defrag-max-scan-fields", N, MODIFIABLE, 1, LONG_MAX, 1000),
    i("slowlog-max-len", N, MODIFIABLE, 0, LONG_MAX, 128),
    i("acllog-max-len", N, MODIFIABLE, 0, LONG_MAX, 128),
    // ---- long long ----
    i("busy-reply-threshold", Some("lua-time-limit"), MODIFIABLE, 0, LONG_MAX, 5000),
    i("cluster-node-timeout", N, MODIFIABLE, 0, LONG_MAX, 15000),
    i("slowlog-log-slower-than", N, MODIFIABLE, -1, LONG_MAX, 10000),
    i("latency-monitor-threshold", N, MODIFIABLE, 0, LONG_MAX, 0),
    m("proto-max-bulk-len", N, MODIFIABLE, MB, LONG_MAX, 512 * MB),
    i("stream-node-max-entries", N, MODIFIABLE, 0, LONG_MAX, 100),
    m("repl-backlog-size", N, MODIFIABLE, 1, LONG_MAX, MB),
    // ---- unsigned long long ----
    mu("maxmemory", N, MODIFIABLE, 0, ULLONG_MAX, 0),
    mu("cluster-link-sendbuf-limit", N, MODIFIABLE, 0, ULLONG_MAX, 0),
    // ---- size_t ----
    u("hash-max-listpack-entries", Some("hash-max-ziplist-entries"), MODIFIABLE, 0, LONG_MAX, 512),
    u("set-max-intset-entries", N, MODIFIABLE, 0, LONG_MAX, 512),
    u("zset-max-listpack-entries", Some("zset-max-ziplist-entries"), MODIFIABLE, 0, LONG_MAX, 128),
    mu("active-defrag-ignore-bytes", N, MODIFIABLE, 1, LONG_MAX, 100 * MB),
    mu("hash-max-listpack-value", Some("hash-max-ziplist-value"), MODIFIABLE, 0, LONG_MAX, 64),
    mu("stream-node-max-bytes", N, MODIFIABLE, 0, LONG_MAX, 4096),
    mu("zset-max-listpack-value", Some("zset-max-ziplist-value"), MODIFIABLE, 0, LONG_MAX, 64),
    mu("hll-sparse-max-bytes", N, MODIFIABLE, 0, LONG_MAX, 3000),
    u("tracking-table-max-keys", N, MODIFIABLE, 0, LONG_MAX, 1000000),
    mu("client-query-buffer-limit", N, MODIFIABLE, MB, LONG_MAX, 1024 * MB),
    // ---- ssize_t ----
    sp(
        "maxmemory-clients",
        N,
        MODIFIABLE,
        Kind::Num {
            lo: -100,
            hi: LONG_MAX,
            default: 0,
            fmt: NumFmt::MemoryPercent,
            unsigned: false,
        },
    ),
    // ---- time_t / off_t ----
    i("repl-backlog-ttl", N, MODIFIABLE, 0, LONG_MAX, 3600),
    m("auto-aof-rewrite-min-size", N, MODIFIABLE, 0, LONG_MAX, 64 * MB),
    i("loading-process-events-interval-bytes", N, MODIFIABLE | HIDDEN, 1024, INT_MAX, 2 * MB),
    // ---- TLS ----
    i("tls-port", N, MODIFIABLE, 0, 65535, 0),
    i("tls-session-cache-size", N, MODIFIABLE, 0, INT_MAX, 20 * 1024),
    i("tls-session-cache-timeout", N, MODIFIABLE, 0, INT_MAX, 300),
    b("tls-cluster", N, MODIFIABLE, false),
    b("tls-replication", N, MODIFIABLE, false),
    e("tls-auth-clients", N, MODIFIABLE, TLS_AUTH_CLIENTS, 1),
    b("tls-prefer-server-ciphers", N, MODIFIABLE, false),
    b("tls-session-caching", N, MODIFIABLE, true),
    s("tls-cert-file", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-key-file", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-key-file-pass", N, MODIFIABLE | SENSITIVE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-client-cert-file", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-client-key-file", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-client-key-file-pass", N, MODIFIABLE | SENSITIVE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-dh-params-file", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-ca-cert-file", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-ca-cert-dir", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-protocols", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-ciphers", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    s("tls-ciphersuites", N, MODIFIABLE, EMPTY_IS_NULL, NULL_STR, None),
    // ---- special ----
    sp("dir", N, MODIFIABLE | PROTECTED | DENY_LOADING, Kind::Dir),
    sp("save", N, MODIFIABLE | MULTI_ARG, Kind::Save),
    sp("client-output-buffer-limit", N, MODIFIABLE | MULTI_ARG, Kind::ObufLimits),
    sp("oom-score-adj-values", N, MODIFIABLE | MULTI_ARG, Kind::OomValues),
    sp("notify-keyspace-events", N, MODIFIABLE, Kind::Notify),
    sp("bind", N, MODIFIABLE | MULTI_ARG, Kind::Bind),
    sp("replicaof", Some("slaveof"), IMMUTABLE | MULTI_ARG, Kind::ReplicaOf),
    sp("latency-tracking-info-percentiles", N, MODIFIABLE | MULTI_ARG, Kind::Percentiles),
    // ---- Tessera ----
    i("threads", N, IMMUTABLE, 0, 1024, 0),
    e("pipeline-ordering", N, MODIFIABLE, PIPELINE_ORDERING, 1),
    e("net-engine", N, IMMUTABLE, NET_ENGINE, 1),
];

/// Deprecated directives accepted (and ignored) in config files:
/// (name, argc_min, argc_max) counting the name itself.
pub static DEPRECATED: &[(&str, usize, usize)] = &[
    ("list-max-ziplist-entries", 2, 2),
    ("list-max-ziplist-value", 2, 2),
    ("lua-replicate-commands", 2, 2),
];

pub const OBUF_DEFAULTS: [(u64, u64, i64); 3] = [(0, 0, 0), (256 * 1024 * 1024, 64 * 1024 * 1024, 60), (32 * 1024 * 1024, 8 * 1024 * 1024, 60)];
pub const OOM_DEFAULTS: [i64; 3] = [0, 200, 800];
pub const DEFAULT_BIND: [&str; 2] = ["*", "-::*"];

/// A name as registered in Redis's `configs` dict: either a primary name or
/// an alias of the directive `idx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub idx: usize,
    pub alias: bool,
}

impl Entry {
    pub fn name(&self) -> &'static str {
        let d = &DEFS[self.idx];
        if self.alias {
            d.alias.unwrap()
        } else {
            d.name
        }
    }
}

/// Case-insensitive lookup of a primary name or alias.
pub fn lookup(name: &[u8]) -> Option<Entry> {
    for (idx, d) in DEFS.iter().enumerate() {
        if d.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(Entry { idx, alias: false });
        }
        if let Some(a) = d.alias {
            if a.as_bytes().eq_ignore_ascii_case(name) {
                return Some(Entry { idx, alias: true });
            }
        }
    }
    None
}

/// Index of a primary name in `DEFS`, usable in constants (a typo is a
/// compile error when evaluated in a `const`).
pub const fn index_of(name: &str) -> usize {
    const fn eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    let mut i = 0;
    while i < DEFS.len() {
        if eq(DEFS[i].name.as_bytes(), name.as_bytes()) {
            return i;
        }
        i += 1;
    }
    panic!("unknown directive")
}

/// All registered entries (primary names and aliases) in table order.
pub fn entries() -> impl Iterator<Item = Entry> {
    DEFS.iter().enumerate().flat_map(|(idx, d)| {
        let a = d.alias.map(|_| Entry { idx, alias: true });
        std::iter::once(Entry { idx, alias: false }).chain(a)
    })
}

pub fn default_value(def: &Def, cwd: &[u8]) -> Value {
    match def.kind {
        Kind::Bool(d) => Value::Bool(d),
        Kind::Str { default, .. } => Value::Str(default.map(|x| x.as_bytes().to_vec())),
        Kind::Enum { default, .. } => Value::Enum(default),
        Kind::Num { default, unsigned, .. } => Value::Num(if unsigned { default as u64 as i128 } else { default as i128 }),
        Kind::Dir => Value::Dir(cwd.to_vec()),
        Kind::Save => Value::Save(vec![(3600, 1), (300, 100), (60, 10000)]),
        Kind::ObufLimits => Value::Obuf(OBUF_DEFAULTS),
        Kind::OomValues => Value::Oom(OOM_DEFAULTS),
        Kind::Notify => Value::Notify(0),
        Kind::Bind => Value::Bind(DEFAULT_BIND.iter().map(|x| x.as_bytes().to_vec()).collect()),
        Kind::ReplicaOf => Value::ReplicaOf(None),
        Kind::Percentiles => Value::Percentiles(vec![50.0, 99.0, 99.9]),
    }
}

// ---------------------------------------------------------------------------
// Enum helpers
// ---------------------------------------------------------------------------
pub fn enum_error(items: &[(&str, i64)]) -> String {
    let names: Vec<&str> = items.iter().map(|x| x.0).collect();
    let mut s = format!("argument(s) must be one of the following: {}", names.join(", "));
    s.truncate(255); // LOADBUF_SIZE - 1
    s
}

fn enum_get_value(items: &[(&str, i64)], args: &[Vec<u8>], bitflags: bool) -> Option<i64> {
    if args.is_empty() || (!bitflags && args.len() != 1) {
        return None;
    }
    let mut values = 0i64;
    for a in args {
        let mut matched = false;
        for (n, v) in items {
            if n.as_bytes().eq_ignore_ascii_case(a) {
                values |= *v;
                matched = true;
            }
        }
        if !matched {
            return None;
        }
    }
    Some(values)
}

pub fn enum_name(items: &[(&str, i64)], value: i64, bitflags: bool) -> String {
    let mut names: Option<String> = None;
    let mut unmatched = value;
    for (n, v) in items {
        if value == *v {
            return n.to_string();
        }
        if bitflags && *v != 0 && *v == (unmatched & *v) {
            names = Some(match names {
                Some(x) => format!("{x} {n}"),
                None => n.to_string(),
            });
            unmatched &= !*v;
        }
    }
    match names {
        Some(n) if unmatched == 0 => n,
        _ => "unknown".to_string(),
    }
}

// ---------------------------------------------------------------------------
// Notify keyspace events
// ---------------------------------------------------------------------------
pub const NOTIFY_KEYSPACE: u32 = 1 << 0;
pub const NOTIFY_KEYEVENT: u32 = 1 << 1;
pub const NOTIFY_GENERIC: u32 = 1 << 2;
pub const NOTIFY_STRING: u32 = 1 << 3;
pub const NOTIFY_LIST: u32 = 1 << 4;
pub const NOTIFY_SET: u32 = 1 << 5;
pub const NOTIFY_HASH: u32 = 1 << 6;
pub const NOTIFY_ZSET: u32 = 1 << 7;
pub const NOTIFY_EXPIRED: u32 = 1 << 8;
pub const NOTIFY_EVICTED: u32 = 1 << 9;
pub const NOTIFY_STREAM: u32 = 1 << 10;
pub const NOTIFY_KEY_MISS: u32 = 1 << 11;
pub const NOTIFY_LOADED: u32 = 1 << 12;
pub const NOTIFY_MODULE: u32 = 1 << 13;
pub const NOTIFY_NEW: u32 = 1 << 14;
pub const NOTIFY_ALL: u32 =
    NOTIFY_GENERIC | NOTIFY_STRING | NOTIFY_LIST | NOTIFY_SET | NOTIFY_HASH | NOTIFY_ZSET | NOTIFY_EXPIRED | NOTIFY_EVICTED | NOTIFY_STREAM | NOTIFY_MODULE;

pub fn notify_from_str(s: &[u8]) -> Option<u32> {
    let mut flags = 0u32;
    for &c in s {
        if c == 0 {
            break;
        }
        flags |= match c {
            b'A' => NOTIFY_ALL,
            b'g' => NOTIFY_GENERIC,
            b'$' => NOTIFY_STRING,
            b'l' => NOTIFY_LIST,
            b's' => NOTIFY_SET,
            b'h' => NOTIFY_HASH,
            b'z' => NOTIFY_ZSET,
            b'x' => NOTIFY_EXPIRED,
            b'e' => NOTIFY_EVICTED,
            b'K' => NOTIFY_KEYSPACE,
            b'E' => NOTIFY_KEYEVENT,
            b't' => NOTIFY_STREAM,
            b'm' => NOTIFY_KEY_MISS,
            b'd' => NOTIFY_MODULE,
            b'n' => NOTIFY_NEW,
            _ => return None,
        };
    }
    Some(flags)
}

pub fn notify_to_string(flags: u32) -> String {
    let mut r = String::new();
    if flags & NOTIFY_ALL == NOTIFY_ALL {
        r.push('A');
    } else {
        for (f, c) in [
            (NOTIFY_GENERIC, 'g'),
            (NOTIFY_STRING, '$'),
            (NOTIFY_LIST, 'l'),
            (NOTIFY_SET, 's'),
            (NOTIFY_HASH, 'h'),
            (NOTIFY_ZSET, 'z'),
            (NOTIFY_EXPIRED, 'x'),
            (NOTIFY_EVICTED, 'e'),
            (NOTIFY_STREAM, 't'),
            (NOTIFY_MODULE, 'd'),
            (NOTIFY_NEW, 'n'),
        ] {
            if flags & f != 0 {
                r.push(c);
            }
        }
    }
    if flags & NOTIFY_KEYSPACE != 0 {
        r.push('K');
    }
    if flags & NOTIFY_KEYEVENT != 0 {
        r.push('E');
    }
    if flags & NOTIFY_KEY_MISS != 0 {
        r.push('m');
    }
    r
}

// ---------------------------------------------------------------------------
// Parsing a value (the `set` half of each type interface)
// ---------------------------------------------------------------------------

/// Parse `args` for directive `def` into a new value. `cur` is the current
/// value. Errors are the Redis error strings. `Dir` is handled by the caller.
pub fn parse_value(def: &Def, args: &[Vec<u8>], cfg: &super::Config) -> Result<Value, String> {
    match def.kind {
        Kind::Bool(_) => {
            let a = &args[0];
            if a.eq_ignore_ascii_case(b"yes") {
                if def.name == "activedefrag" {
                    check_active_defrag(true).map_err(|e| e.to_string())?;
                }
                Ok(Value::Bool(true))
            } else if a.eq_ignore_ascii_case(b"no") {
                Ok(Value::Bool(false))
            } else {
                Err("argument must be 'yes' or 'no'".into())
            }
        }
        Kind::Str { empty_is_null, check, .. } => {
            let a = &args[0];
            // C strings stop at the first NUL.
            let a = &a[..a.iter().position(|&c| c == 0).unwrap_or(a.len())];
            if let Some(check) = check {
                check(a, cfg).map_err(|e| e.to_string())?;
            }
            if empty_is_null && a.is_empty() {
                Ok(Value::Str(None))
            } else {
                Ok(Value::Str(Some(a.to_vec())))
            }
        }
        Kind::Enum { items, bitflags, check, .. } => {
            let v = enum_get_value(items, args, bitflags).ok_or_else(|| enum_error(items))?;
            if let Some(check) = check {
                check(v).map_err(|e| e.to_string())?;
            }
            Ok(Value::Enum(v))
        }
        Kind::Num { lo, hi, fmt, unsigned, .. } => {
            let a = &args[0];
            let ll = parse_numeric(a, fmt)?;
            bound_check(ll, lo, hi, fmt, unsigned)?;
            Ok(Value::Num(if unsigned { ll as u64 as i128 } else { ll as i128 }))
        }
        Kind::Dir => unreachable!("dir is handled by the caller"),
        Kind::Save => parse_save(args).map(Value::Save),
        Kind::ObufLimits => parse_obuf(args, cfg),
        Kind::OomValues => {
            if args.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut vals = [0i64; 3];
            for (k, a) in args.iter().enumerate() {
                match strtoll_full(a, 10) {
                    Some(v) if (-2000..=2000).contains(&v) => vals[k] = v,
                    _ => return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into()),
                }
            }
            Ok(Value::Oom(vals))
        }
        Kind::Notify => {
            if args.len() != 1 {
                return Err("wrong number of arguments".into());
            }
            notify_from_str(&args[0])
                .map(Value::Notify)
                .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())
        }
        Kind::Bind => {
            if args.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            if args.len() == 1 && args[0].is_empty() {
                return Ok(Value::Bind(Vec::new()));
            }
            Ok(Value::Bind(args.to_vec()))
        }
        Kind::ReplicaOf => {
            if args.len() != 2 {
                return Err("wrong number of arguments".into());
            }
            if args[0].eq_ignore_ascii_case(b"no") && args[1].eq_ignore_ascii_case(b"one") {
                return Ok(Value::ReplicaOf(None));
            }
            // strtol(argv[1], &ptr, 10) and a 0..65535 check.
            match strtoll_full(&args[1], 10) {
                Some(p) if (0..=65535).contains(&p) => Ok(Value::ReplicaOf(Some((args[0].clone(), p)))),
                _ => Err("Invalid master port".into()),
            }
        }
        Kind::Percentiles => {
            if args.len() == 1 && args[0].is_empty() {
                return Ok(Value::Percentiles(Vec::new()));
            }
            let mut out = Vec::with_capacity(args.len());
            for a in args {
                let v = string2d(a).ok_or_else(|| "Invalid latency-tracking-info-percentiles parameters".to_string())?;
                if !(0.0..=100.0).contains(&v) {
                    return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                }
                out.push(v);
            }
            Ok(Value::Percentiles(out))
        }
    }
}

/// numericParseString: returns the C `long long` the value parses to.
fn parse_numeric(a: &[u8], fmt: NumFmt) -> Result<i64, String> {
    // C strings stop at the first NUL.
    let a = &a[..a.iter().position(|&c| c == 0).unwrap_or(a.len())];
    if matches!(fmt, NumFmt::Memory | NumFmt::MemoryPercent) {
        if let Some(v) = memtoull(a) {
            return Ok(v as i64);
        }
    }
    if fmt == NumFmt::MemoryPercent && a.len() > 1 && a[a.len() - 1] == b'%' {
        if let Some(v) = string2ll(&a[..a.len() - 1]) {
            if v >= 0 {
                return Ok(-v);
            }
        }
    }
    if fmt == NumFmt::Octal {
        if let Some((v, overflow, _)) = super::parse::strtoll_ex(a, 8) {
            if !overflow {
                return Ok(v);
            }
        }
    }
    if fmt == NumFmt::Integer {
        if let Some(v) = string2ll(a) {
            return Ok(v);
        }
    }
    Err(match fmt {
        NumFmt::MemoryPercent => "argument must be a memory or percent value",
        NumFmt::Memory => "argument must be a memory value",
        NumFmt::Octal => "argument couldn't be parsed as an octal number",
        NumFmt::Integer => "argument couldn't be parsed into an integer",
    }
    .into())
}

fn bound_check(ll: i64, lo: i64, hi: i64, fmt: NumFmt, unsigned: bool) -> Result<(), String> {
    if unsigned {
        let (v, lo, hi) = (ll as u64, lo as u64, hi as u64);
        if v > hi || v < lo {
            return Err(if fmt == NumFmt::Octal {
                format!("argument must be between {:o} and {:o} inclusive", lo, hi)
            } else {
                format!("argument must be between {} and {} inclusive", lo, hi)
            });
        }
    } else if fmt == NumFmt::MemoryPercent && ll < 0 {
        if ll < lo {
            return Err(format!("percentage argument must be less or equal to {}", -(lo as i128)));
        }
    } else if ll > hi || ll < lo {
        return Err(format!("argument must be between {} and {} inclusive", lo, hi));
    }
    Ok(())
}

fn parse_save(args: &[Vec<u8>]) -> Result<Vec<(i64, i64)>, String> {
    let args: &[Vec<u8>] = if args.len() == 1 && args[0].is_empty() { &[] } else { args };
    if args.len() % 2 == 1 {
        return Err("Invalid save parameters".into());
    }
    let mut out = Vec::new();
    for (j, a) in args.iter().enumerate() {
        let v = strtoll_full(a, 10).ok_or_else(|| "Invalid save parameters".to_string())?;
        if (j % 2 == 0 && v < 1) || (j % 2 == 1 && v < 0) {
            return Err("Invalid save parameters".into());
        }
    }
    for pair in args.chunks(2) {
        let secs = strtoll_full(&pair[0], 10).unwrap();
        let changes = strtoll_full(&pair[1], 10).unwrap() as i32 as i64; // stored in an int
        out.push((secs, changes));
    }
    Ok(out)
}

fn client_class(name: &[u8]) -> Option<usize> {
    if name.eq_ignore_ascii_case(b"normal") {
        Some(0)
    } else if name.eq_ignore_ascii_case(b"slave") || name.eq_ignore_ascii_case(b"replica") {
        Some(1)
    } else if name.eq_ignore_ascii_case(b"pubsub") {
        Some(2)
    } else {
        None // "master" is rejected too
    }
}

fn parse_obuf(args: &[Vec<u8>], cfg: &super::Config) -> Result<Value, String> {
    if !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut vals = match cfg.values[index_of("client-output-buffer-limit")] {
        Value::Obuf(v) => v,
        _ => OBUF_DEFAULTS,
    };
    let mut staged: Vec<(usize, (u64, u64, i64))> = Vec::new();
    for ch in args.chunks(4) {
        let class = client_class(&ch[0]).ok_or_else(|| "Invalid client class specified in buffer limit configuration.".to_string())?;
        let hard = memtoull(&ch[1]);
        let soft = memtoull(&ch[2]);
        let secs = parse_strtoll_prefix(&ch[3]);
        match (hard, soft, secs) {
            (Some(h), Some(s), (secs, true)) if secs as i32 >= 0 => staged.push((class, (h, s, secs as i32 as i64))),
            _ => return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into()),
        }
    }
    for (class, v) in staged {
        vals[class] = v;
    }
    Ok(Value::Obuf(vals))
}

/// `strtoll(s, &eptr, 10)` returning (value, *eptr == '\0').
fn parse_strtoll_prefix(s: &[u8]) -> (i64, bool) {
    match strtoll_full(s, 10) {
        Some(v) => (v, true),
        None => (0, false),
    }
}

// ---------------------------------------------------------------------------
// Rendering (CONFIG GET)
// ---------------------------------------------------------------------------
pub fn render(def: &Def, v: &Value) -> Vec<u8> {
    match (&def.kind, v) {
        (_, Value::Bool(b)) => {
            if *b {
                b"yes".to_vec()
            } else {
                b"no".to_vec()
            }
        }
        (_, Value::Str(s)) => s.clone().unwrap_or_default(),
        (Kind::Enum { items, bitflags, .. }, Value::Enum(x)) => enum_name(items, *x, *bitflags).into_bytes(),
        (Kind::Num { fmt, .. }, Value::Num(n)) => render_num(*fmt, *n).into_bytes(),
        (_, Value::Dir(d)) => d.clone(),
        (_, Value::Save(p)) => p.iter().map(|(s, c)| format!("{s} {c}")).collect::<Vec<_>>().join(" ").into_bytes(),
        (_, Value::Obuf(o)) => {
            let names = ["normal", "slave", "pubsub"];
            (0..3)
                .map(|k| format!("{} {} {} {}", names[k], o[k].0, o[k].1, o[k].2))
                .collect::<Vec<_>>()
                .join(" ")
                .into_bytes()
        }
        (_, Value::Oom(o)) => format!("{} {} {}", o[0], o[1], o[2]).into_bytes(),
        (_, Value::Notify(f)) => notify_to_string(*f).into_bytes(),
        (_, Value::Bind(b)) => b.join(&b' '),
        (_, Value::ReplicaOf(None)) => Vec::new(),
        (_, Value::ReplicaOf(Some((h, p)))) => {
            let mut s = h.clone();
            s.extend_from_slice(format!(" {p}").as_bytes());
            s
        }
        (_, Value::Percentiles(p)) => p.iter().map(|x| fmt_double_trimmed(*x)).collect::<Vec<_>>().join(" ").into_bytes(),
        _ => Vec::new(),
    }
}

fn render_num(fmt: NumFmt, n: i128) -> String {
    match fmt {
        NumFmt::MemoryPercent if n < 0 => format!("{}%", -n),
        NumFmt::Octal => format!("{:o}", n),
        _ => format!("{}", n),
    }
}

// ---------------------------------------------------------------------------
// Rewrite lines (CONFIG REWRITE): (line, force)
// ---------------------------------------------------------------------------

/// rewriteConfigFormatMemory
pub fn format_memory(bytes: i64) -> String {
    const GB: i64 = 1024 * 1024 * 1024;
    const MBY: i64 = 1024 * 1024;
    const KB: i64 = 1024;
    if bytes != 0 && bytes % GB == 0 {
        format!("{}gb", bytes / GB)
    } else if bytes != 0 && bytes % MBY == 0 {
        format!("{}mb", bytes / MBY)
    } else if bytes != 0 && bytes % KB == 0 {
        format!("{}kb", bytes / KB)
    } else {
        format!("{}", bytes)
    }
}

pub enum RewriteAction {
    /// Lines to write for the option, each with its `force` flag.
    Lines(Vec<(Vec<u8>, bool)>),
    /// Only mark the option as processed (its old lines get blanked).
    MarkProcessed,
}

fn line(name: &str, rest: &[u8]) -> Vec<u8> {
    let mut l = name.as_bytes().to_vec();
    l.push(b' ');
    l.extend_from_slice(rest);
    l
}

pub fn rewrite_lines(def: &Def, v: &Value) -> RewriteAction {
    let name = def.name;
    let one = |l: Vec<u8>, force: bool| RewriteAction::Lines(vec![(l, force)]);
    match (&def.kind, v) {
        (Kind::Bool(d), Value::Bool(b)) => one(line(name, if *b { b"yes" } else { b"no" }), b != d),
        (Kind::Str { .. }, Value::Str(None)) => RewriteAction::MarkProcessed,
        (Kind::Str { default, .. }, Value::Str(Some(s))) => {
            let force = !matches!(default, Some(d) if d.as_bytes() == &s[..]);
            one(line(name, &repr(s)), force)
        }
        (Kind::Enum { items, default, bitflags, .. }, Value::Enum(x)) => one(line(name, enum_name(items, *x, *bitflags).as_bytes()), x != default),
        (Kind::Num { default, fmt, unsigned, .. }, Value::Num(n)) => {
            // Values are handled as C long long, like GET_NUMERIC_TYPE.
            let val = *n as i64;
            let defv = if *unsigned { *default as u64 as i128 as i64 } else { *default };
            match fmt {
                NumFmt::MemoryPercent if val < 0 => one(line(name, format!("{}%", -(val as i128)).as_bytes()), -(val as i128) != defv as i128),
                NumFmt::Memory | NumFmt::MemoryPercent => one(line(name, format_memory(val).as_bytes()), val != defv),
                NumFmt::Octal => one(line(name, format!("{:o}", val).as_bytes()), val != defv),
                NumFmt::Integer => one(line(name, format!("{}", val).as_bytes()), val != defv),
            }
        }
        (_, Value::Dir(d)) => one(line(name, &repr(d)), true),
        (_, Value::Save(p)) => {
            if p.is_empty() {
                one(b"save \"\"".to_vec(), true)
            } else {
                RewriteAction::Lines(p.iter().map(|(s, c)| (format!("save {s} {c}").into_bytes(), true)).collect())
            }
        }
        (_, Value::Obuf(o)) => {
            let names = ["normal", "replica", "pubsub"];
            RewriteAction::Lines(
                (0..3)
                    .map(|k| {
                        let force = o[k] != OBUF_DEFAULTS[k];
                        let l = format!(
                            "{} {} {} {} {}",
                            name,
                            names[k],
                            format_memory(o[k].0 as i64),
                            format_memory(o[k].1 as i64),
                            o[k].2
                        );
                        (l.into_bytes(), force)
                    })
                    .collect(),
            )
        }
        (_, Value::Oom(o)) => one(format!("{} {} {} {}", name, o[0], o[1], o[2]).into_bytes(), *o != OOM_DEFAULTS),
        (_, Value::Notify(f)) => one(line(name, &repr(notify_to_string(*f).as_bytes())), *f != 0),
        (_, Value::Bind(b)) => {
            let is_default = b.len() == DEFAULT_BIND.len() && b.iter().zip(DEFAULT_BIND.iter()).all(|(x, y)| x == y.as_bytes());
            if is_default {
                RewriteAction::MarkProcessed
            } else if b.is_empty() {
                one(line(name, b"\"\""), true)
            } else {
                one(line(name, &b.join(&b' ')), true)
            }
        }
        (_, Value::ReplicaOf(None)) => RewriteAction::MarkProcessed,
        (_, Value::ReplicaOf(Some((h, p)))) => {
            let mut rest = h.clone();
            rest.extend_from_slice(format!(" {p}").as_bytes());
            one(line(name, &rest), true)
        }
        (_, Value::Percentiles(p)) => {
            if p.is_empty() {
                one(line(name, b"\"\""), true)
            } else {
                let rest = p.iter().map(|x| fmt_double_trimmed(*x)).collect::<Vec<_>>().join(" ");
                one(line(name, rest.as_bytes()), true)
            }
        }
        _ => RewriteAction::MarkProcessed,
    }
}
