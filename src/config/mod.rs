//! Tessera configuration: command line and redis.conf parsing, the directive
//! table, and the CONFIG GET / SET / REWRITE back ends, reproducing Redis
//! 7.0.15 (server.c `main` + config.c) behaviour and messages.
//!
//! Entry point: [`from_args`]. The resulting [`Config`] is plain data
//! (`Clone + Send + Sync`) meant to live behind an `RwLock`.
//!
//! What the server must do itself:
//! * `std::env::set_current_dir(cfg.dir())` at startup (parsing never changes
//!   the process state; `dir` is validated and resolved to an absolute path);
//!   at runtime `CONFIG SET dir` performs the `chdir` itself, as Redis does.
//! * print `cfg.warnings()` at startup (log level warning).
//! * on CONFIG SET, apply changed values that need action (new port / bind
//!   listeners, loglevel, maxclients ...); [`Config::set_from_client`]
//!   returns the names of the directives whose value changed.

pub mod directives;
mod load;
mod parse;
mod rewrite;
#[cfg(test)]
mod tests;

use directives::{Entry, Kind, Value, DEFS};

/// Compile-time index of a directive in `DEFS`.
macro_rules! idx {
    ($name:literal) => {{
        const I: usize = directives::index_of($name);
        I
    }};
}
use std::path::PathBuf;

pub use directives::{IMPLEMENTED, IMPLEMENTED_SPECIAL};
/// `notify-keyspace-events` flag bits (Redis NOTIFY_* values), as returned
/// by [`Config::notify_keyspace_events`].
pub use directives::{
    NOTIFY_ALL, NOTIFY_EVICTED, NOTIFY_EXPIRED, NOTIFY_GENERIC, NOTIFY_HASH, NOTIFY_KEYEVENT, NOTIFY_KEYSPACE, NOTIFY_KEY_MISS, NOTIFY_LIST, NOTIFY_LOADED,
    NOTIFY_MODULE, NOTIFY_NEW, NOTIFY_SET, NOTIFY_STREAM, NOTIFY_STRING, NOTIFY_ZSET,
};
pub use parse::split_args;

/// The Redis version Tessera reports compatibility with.
pub const REDIS_VERSION: &str = "7.0.15";

/// Result of parsing the command line.
#[derive(Debug)]
pub enum CliOutcome {
    /// Start the server with this configuration.
    Run(Config),
    /// `--version` / `-v` / `--help` / `-h`: `println!` this text and exit 0.
    /// (redis-server prints its usage on stderr and exits 1 for --help.)
    PrintAndExit(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugCmdMode {
    No,
    Yes,
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Verbose,
    Notice,
    Warning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxmemoryPolicy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    NoEviction,
}

/// All configuration values, plus what the command line / config file said
/// beyond plain directives.
#[derive(Clone, Debug)]
pub struct Config {
    /// One value per entry of `directives::DEFS`.
    pub(crate) values: Vec<Value>,
    /// Absolute path of the config file (as Redis's getAbsolutePath).
    pub(crate) config_file: Option<Vec<u8>>,
    pub(crate) rename_commands: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) users: Vec<Vec<Vec<u8>>>,
    pub(crate) module_configs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) io_threads_given: bool,
    /// A `save` directive was given (config file, command line or CONFIG SET).
    pub(crate) save_configured: bool,
    pub(crate) no_args: bool,
    /// When true, CONFIG SET dir really chdir()s (false in unit tests).
    pub(crate) live_chdir: bool,
}

/// Parse the command line (without argv[0]) the way redis-server does,
/// reading the config file, stdin (`-`) and `--directive value...` options.
/// `Err` holds the complete fatal message for stderr, without the final
/// newline: `eprintln!("{msg}")` then `exit(1)` reproduces redis-server's
/// output byte for byte. `PrintAndExit` text also has no final newline.
/// A directive's name as Redis registers it (primary name or alias, lower case), for error replies.
pub fn directive_name(name: &[u8]) -> Option<&'static str> {
    directives::lookup(name).map(|e| e.name())
}

pub fn from_args<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<CliOutcome, String> {
    let args: Vec<Vec<u8>> = args.into_iter().map(|a| parse::os_to_bytes(&a)).collect();
    load::from_args_impl(args, &mut || {
        use std::io::Read;
        let mut buf = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut buf);
        buf
    })
}

impl Default for Config {
    fn default() -> Self {
        let cwd = std::env::current_dir().map(|p| parse::path_to_bytes(&p)).unwrap_or_else(|_| b"/".to_vec());
        Config::with_cwd(&cwd)
    }
}

impl Config {
    pub(crate) fn with_cwd(cwd: &[u8]) -> Config {
        Config {
            values: DEFS.iter().map(|d| directives::default_value(d, cwd)).collect(),
            config_file: None,
            rename_commands: Vec::new(),
            users: Vec::new(),
            module_configs: Vec::new(),
            io_threads_given: false,
            save_configured: false,
            no_args: false,
            live_chdir: true,
        }
    }

    // ---- internal typed access -------------------------------------------
    #[inline]
    pub(crate) fn value(&self, name: &str) -> &Value {
        &self.values[directives::index_of(name)]
    }
    pub(crate) fn num(&self, name: &str) -> i128 {
        match self.value(name) {
            Value::Num(n) => *n,
            v => panic!("{name} is not numeric: {v:?}"),
        }
    }
    pub(crate) fn bool_value(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(b) => *b,
            v => panic!("{name} is not a bool: {v:?}"),
        }
    }
    pub(crate) fn str_value(&self, name: &str) -> Option<Vec<u8>> {
        match self.value(name) {
            Value::Str(s) => s.clone(),
            v => panic!("{name} is not a string: {v:?}"),
        }
    }
    pub(crate) fn bind_raw(&self) -> Vec<Vec<u8>> {
        match self.value("bind") {
            Value::Bind(b) => b.clone(),
            _ => unreachable!(),
        }
    }
    pub(crate) fn dir_bytes(&self) -> Vec<u8> {
        match self.value("dir") {
            Value::Dir(d) => d.clone(),
            _ => unreachable!(),
        }
    }
    fn lossy(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[inline]
    fn num_at(&self, idx: usize) -> i128 {
        match &self.values[idx] {
            Value::Num(n) => *n,
            _ => unreachable!(),
        }
    }
    #[inline]
    fn bool_value_at(&self, idx: usize) -> bool {
        matches!(&self.values[idx], Value::Bool(true))
    }
    #[inline]
    fn enum_value_at(&self, idx: usize) -> i64 {
        match &self.values[idx] {
            Value::Enum(e) => *e,
            _ => unreachable!(),
        }
    }
    #[inline]
    fn str_value_at(&self, idx: usize) -> Option<Vec<u8>> {
        match &self.values[idx] {
            Value::Str(s) => s.clone(),
            _ => unreachable!(),
        }
    }
    // ---- public typed accessors ------------------------------------------
    /// TCP port; 0 means no TCP listener.
    pub fn port(&self) -> u16 {
        self.num_at(idx!("port")) as u16
    }
    /// Bind addresses in order, with the leading `-` (optional address:
    /// failing to bind it is not fatal) stripped into the flag. `*` means
    /// every IPv4 address, `::*` every IPv6 address. Empty = no TCP listener.
    pub fn bind(&self) -> Vec<(String, bool)> {
        self.bind_raw()
            .iter()
            .map(|a| match a.strip_prefix(b"-") {
                Some(rest) => (Self::lossy(rest), true),
                None => (Self::lossy(a), false),
            })
            .collect()
    }
    pub fn protected_mode(&self) -> bool {
        self.bool_value_at(idx!("protected-mode"))
    }
    /// Client idle timeout in seconds (0 = never).
    pub fn timeout_secs(&self) -> u64 {
        self.num_at(idx!("timeout")) as u64
    }
    pub fn tcp_keepalive(&self) -> u64 {
        self.num_at(idx!("tcp-keepalive")) as u64
    }
    pub fn maxclients(&self) -> u64 {
        self.num_at(idx!("maxclients")) as u64
    }
    pub fn databases(&self) -> usize {
        self.num_at(idx!("databases")) as usize
    }
    /// `None` when no password is required.
    pub fn requirepass(&self) -> Option<Vec<u8>> {
        self.str_value_at(idx!("requirepass"))
    }
    pub fn enable_debug_command(&self) -> DebugCmdMode {
        Self::protected_action(self.enum_value_at(idx!("enable-debug-command")))
    }
    pub fn enable_module_command(&self) -> DebugCmdMode {
        Self::protected_action(self.enum_value_at(idx!("enable-module-command")))
    }
    pub fn enable_protected_configs(&self) -> DebugCmdMode {
        Self::protected_action(self.enum_value_at(idx!("enable-protected-configs")))
    }
    fn protected_action(v: i64) -> DebugCmdMode {
        match v {
            1 => DebugCmdMode::Yes,
            2 => DebugCmdMode::Local,
            _ => DebugCmdMode::No,
        }
    }
    pub fn loglevel(&self) -> LogLevel {
        match self.enum_value_at(idx!("loglevel")) {
            0 => LogLevel::Debug,
            1 => LogLevel::Verbose,
            3 => LogLevel::Warning,
            _ => LogLevel::Notice,
        }
    }
    /// Log file path ("" = standard output).
    pub fn logfile(&self) -> String {
        Self::lossy(&self.str_value_at(idx!("logfile")).unwrap_or_default())
    }
    /// Absolute working directory (the server must chdir there at startup).
    pub fn dir(&self) -> String {
        match &self.values[idx!("dir")] {
            Value::Dir(d) => Self::lossy(d),
            _ => unreachable!(),
        }
    }
    /// Number of shards (threads); 0 = one per CPU in the affinity mask.
    pub fn threads(&self) -> usize {
        self.num_at(idx!("threads")) as usize
    }
    /// (hash-max-listpack-entries, hash-max-listpack-value).
    pub fn hash_max_listpack(&self) -> (usize, usize) {
        (
            Self::clamp_usize(self.num_at(idx!("hash-max-listpack-entries"))),
            Self::clamp_usize(self.num_at(idx!("hash-max-listpack-value"))),
        )
    }
    /// (zset-max-listpack-entries, zset-max-listpack-value).
    pub fn zset_max_listpack(&self) -> (usize, usize) {
        (
            Self::clamp_usize(self.num_at(idx!("zset-max-listpack-entries"))),
            Self::clamp_usize(self.num_at(idx!("zset-max-listpack-value"))),
        )
    }
    pub fn set_max_intset_entries(&self) -> usize {
        Self::clamp_usize(self.num_at(idx!("set-max-intset-entries")))
    }
    pub fn hll_sparse_max_bytes(&self) -> usize {
        Self::clamp_usize(self.num_at(idx!("hll-sparse-max-bytes")))
    }
    /// (stream-node-max-bytes, stream-node-max-entries).
    pub fn stream_node_limits(&self) -> (usize, usize) {
        (
            Self::clamp_usize(self.num_at(idx!("stream-node-max-bytes"))),
            Self::clamp_usize(self.num_at(idx!("stream-node-max-entries"))),
        )
    }
    pub fn list_max_listpack_size(&self) -> i64 {
        self.num_at(idx!("list-max-listpack-size")) as i64
    }
    fn clamp_usize(n: i128) -> usize {
        n.clamp(0, usize::MAX as i128) as usize
    }
    pub fn lfu_log_factor(&self) -> u32 {
        self.num_at(idx!("lfu-log-factor")) as u32
    }
    pub fn lfu_decay_time(&self) -> u32 {
        self.num_at(idx!("lfu-decay-time")) as u32
    }
    /// `pipeline-ordering strict` (the default).
    pub fn pipeline_ordering_strict(&self) -> bool {
        self.enum_value_at(idx!("pipeline-ordering")) != 0
    }
    /// `net-engine io_uring` (the default): the shard's own socket ring.
    pub fn net_engine_uring(&self) -> bool {
        self.enum_value_at(idx!("net-engine")) != 0
    }
    pub fn proto_max_bulk_len(&self) -> u64 {
        self.num_at(idx!("proto-max-bulk-len")) as u64
    }
    pub fn client_query_buffer_limit(&self) -> u64 {
        self.num_at(idx!("client-query-buffer-limit")) as u64
    }
    /// `client-output-buffer-limit` of one class (0 normal, 1 replica, 2 pubsub):
    /// (hard bytes, soft bytes, soft seconds); 0 disables a limit.
    pub fn client_output_buffer_limit(&self, class: usize) -> (u64, u64, i64) {
        match &self.values[idx!("client-output-buffer-limit")] {
            Value::Obuf(v) => v[class.min(2)],
            _ => unreachable!(),
        }
    }
    /// `hz`, already clamped to 1..=500 as Redis does.
    pub fn hz(&self) -> u32 {
        self.num_at(idx!("hz")) as u32
    }
    pub fn maxmemory(&self) -> u64 {
        self.num_at(idx!("maxmemory")) as u64
    }
    pub fn maxmemory_policy(&self) -> MaxmemoryPolicy {
        use MaxmemoryPolicy::*;
        match self.enum_value_at(idx!("maxmemory-policy")) {
            0 => VolatileLru,
            1 => VolatileLfu,
            2 => VolatileRandom,
            3 => VolatileTtl,
            4 => AllkeysLru,
            5 => AllkeysLfu,
            6 => AllkeysRandom,
            _ => NoEviction,
        }
    }
    pub fn maxmemory_samples(&self) -> u32 {
        self.num_at(idx!("maxmemory-samples")) as u32
    }
    pub fn tcp_backlog(&self) -> u32 {
        self.num_at(idx!("tcp-backlog")) as u32
    }
    pub fn unixsocket(&self) -> Option<String> {
        self.str_value_at(idx!("unixsocket")).map(|s| Self::lossy(&s))
    }
    pub fn unixsocketperm(&self) -> u32 {
        self.num_at(idx!("unixsocketperm")) as u32
    }
    pub fn pidfile(&self) -> Option<String> {
        self.str_value_at(idx!("pidfile")).map(|s| Self::lossy(&s))
    }
    pub fn daemonize(&self) -> bool {
        self.bool_value_at(idx!("daemonize"))
    }
    pub fn always_show_logo(&self) -> bool {
        self.bool_value_at(idx!("always-show-logo"))
    }
    pub fn appendonly(&self) -> bool {
        self.bool_value_at(idx!("appendonly"))
    }
    pub fn dbfilename(&self) -> String {
        Self::lossy(&self.str_value_at(idx!("dbfilename")).unwrap_or_default())
    }
    /// `rdb-key-save-delay`: microseconds a snapshot sleeps per key (tests).
    pub fn rdb_key_save_delay(&self) -> i64 {
        self.num_at(idx!("rdb-key-save-delay")) as i64
    }
    /// `key-load-delay`: microseconds loading sleeps per key (tests).
    pub fn key_load_delay(&self) -> i64 {
        self.num_at(idx!("key-load-delay")) as i64
    }
    pub fn stop_writes_on_bgsave_error(&self) -> bool {
        self.bool_value_at(idx!("stop-writes-on-bgsave-error"))
    }
    /// RDB save points: (seconds, changes).
    pub fn save_params(&self) -> Vec<(i64, i64)> {
        match &self.values[idx!("save")] {
            Value::Save(s) => s.clone(),
            _ => unreachable!(),
        }
    }
    /// The save points SHUTDOWN must honour. Redis 7's built-in default
    /// ("3600 1 300 100 60 10000") only counts when the user asked for it: a
    /// server started without any `save` line behaves as if none were
    /// configured, so plain SHUTDOWN and SIGTERM exit cleanly while
    /// persistence is not implemented; an explicit `save` line is honoured.
    pub fn shutdown_save_points(&self) -> Vec<(i64, i64)> {
        if self.save_configured {
            self.save_params()
        } else {
            Vec::new()
        }
    }
    /// `notify-keyspace-events` as Redis's NOTIFY_* bit flags.
    pub fn notify_keyspace_events(&self) -> u32 {
        match &self.values[idx!("notify-keyspace-events")] {
            Value::Notify(f) => *f,
            _ => unreachable!(),
        }
    }
    /// `tracking-table-max-keys` (0: unlimited).
    pub fn tracking_table_max_keys(&self) -> u64 {
        self.num_at(idx!("tracking-table-max-keys")) as u64
    }
    pub fn slowlog_log_slower_than(&self) -> i64 {
        self.num_at(idx!("slowlog-log-slower-than")) as i64
    }
    pub fn slowlog_max_len(&self) -> u64 {
        self.num_at(idx!("slowlog-max-len")) as u64
    }
    pub fn latency_tracking_info_percentiles(&self) -> Vec<f64> {
        match &self.values[idx!("latency-tracking-info-percentiles")] {
            Value::Percentiles(p) => p.clone(),
            _ => unreachable!(),
        }
    }
    /// `rename-command` lines from the config file, in order (not applied by
    /// this module; the command table owner must validate and apply them).
    pub fn rename_commands(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.rename_commands
    }
    /// `user` lines from the config file (arguments after `user`).
    pub fn users(&self) -> &[Vec<Vec<u8>>] {
        &self.users
    }
    /// Absolute path of the config file (what CONFIG REWRITE writes).
    pub fn config_file(&self) -> Option<PathBuf> {
        self.config_file.as_ref().map(|b| parse::bytes_to_path(b))
    }
    /// Whether a directive (name or alias, any case) is SENSITIVE (its CONFIG
    /// SET value must be redacted from slowlog / MONITOR).
    pub fn is_sensitive(name: &[u8]) -> bool {
        directives::lookup(name)
            .map(|e| DEFS[e.idx].flags & directives::SENSITIVE != 0)
            .unwrap_or(false)
    }
    /// The current value of one directive (name or alias, any case), exactly
    /// as CONFIG GET renders it; `None` for unknown names.
    pub fn get_value(&self, name: &[u8]) -> Option<Vec<u8>> {
        directives::lookup(name).map(|e| directives::render(&DEFS[e.idx], &self.values[e.idx]))
    }

    /// Startup warnings, each one line, to be logged once.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.no_args {
            w.push(
                "Warning: no config file specified, using the default config. In order to specify a config file use tessera /path/to/redis.conf".to_string(),
            );
        }
        if self.io_threads_given {
            w.push(format!(
                "io-threads {} is ignored: Tessera is thread-per-core (every shard thread does its own I/O); use 'threads N' (--threads N) to choose the number of shards",
                self.num_at(idx!("io-threads"))
            ));
        }
        if self.daemonize() {
            w.push("daemonize yes is not supported: Tessera always runs in the foreground (use a process supervisor)".to_string());
        }
        let mut unsupported: Vec<&str> = Vec::new();
        for (idx, d) in DEFS.iter().enumerate() {
            if IMPLEMENTED.contains(&d.name) {
                continue;
            }
            let cwd: &[u8] = match &self.values[idx!("dir")] {
                Value::Dir(x) => x,
                _ => b"/",
            };
            if self.values[idx] != directives::default_value(d, cwd) {
                unsupported.push(d.name);
            }
        }
        if !self.rename_commands.is_empty() && !IMPLEMENTED_SPECIAL.contains(&"rename-command") {
            unsupported.push("rename-command");
        }
        if !self.users.is_empty() && !IMPLEMENTED_SPECIAL.contains(&"user") {
            unsupported.push("user");
        }
        if !unsupported.is_empty() {
            w.push(format!("Directives not supported yet, accepted and ignored: {}", unsupported.join(", ")));
        }
        w
    }

    /// CONFIG GET with one or more glob patterns (case-insensitive). Exact
    /// names (no `*?[`) are looked up directly and may name hidden directives;
    /// the reply key is then the name as given. Results are de-duplicated
    /// case-insensitively, first occurrence wins.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        self.get_bytes(patterns).into_iter().map(|(k, v)| (Self::lossy(&k), Self::lossy(&v))).collect()
    }

    /// Binary-safe CONFIG GET (values such as requirepass may be arbitrary bytes).
    pub fn get_bytes(&self, patterns: &[&[u8]]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut matches: Vec<(Vec<u8>, Entry)> = Vec::new();
        let has = |m: &Vec<(Vec<u8>, Entry)>, k: &[u8]| m.iter().any(|(x, _)| x.eq_ignore_ascii_case(k));
        for pat in patterns {
            if !pat.iter().any(|c| matches!(c, b'[' | b'*' | b'?')) {
                if has(&matches, pat) {
                    continue;
                }
                if let Some(e) = directives::lookup(pat) {
                    matches.push((pat.to_vec(), e));
                }
                continue;
            }
            for e in directives::entries() {
                if DEFS[e.idx].flags & directives::HIDDEN != 0 {
                    continue;
                }
                let name = e.name().as_bytes();
                if has(&matches, name) {
                    continue;
                }
                if crate::util::glob::glob_match(pat, name, true) {
                    matches.push((name.to_vec(), e));
                }
            }
        }
        matches
            .into_iter()
            .map(|(k, e)| (k, directives::render(&DEFS[e.idx], &self.values[e.idx])))
            .collect()
    }

    /// CONFIG SET from a non-local client (see [`Config::set_from_client`]).
    pub fn set(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        self.set_from_client(pairs, false).map(|_| ())
    }

    /// CONFIG SET name value [name value ...], all or nothing. `is_local_client`
    /// matters for PROTECTED directives (dir, dbfilename) when
    /// `enable-protected-configs` is `local`. On success returns the primary
    /// names of the directives whose value changed (for the server to apply:
    /// port / bind listeners, maxclients, loglevel ...). `Err` is the error
    /// reply text without the leading '-'.
    pub fn set_from_client(&mut self, pairs: &[(&[u8], &[u8])], is_local_client: bool) -> Result<Vec<&'static str>, String> {
        let mut set_entries: Vec<Option<Entry>> = vec![None; pairs.len()];
        let mut invalid_arg_name: Option<&[u8]> = None;
        let mut err: Option<(&[u8], &str)> = None;
        let mut invalid = false;
        for (i, (name, _)) in pairs.iter().enumerate() {
            let e = match directives::lookup(name) {
                None => {
                    if !invalid {
                        invalid_arg_name = Some(name);
                        invalid = true;
                    }
                    continue;
                }
                Some(e) => e,
            };
            if invalid {
                continue;
            }
            let flags = DEFS[e.idx].flags;
            let protected_ok = match self.enum_value_at(idx!("enable-protected-configs")) {
                1 => true,
                2 => is_local_client,
                _ => false,
            };
            if flags & directives::IMMUTABLE != 0 || (flags & directives::PROTECTED != 0 && !protected_ok) {
                let msg = if flags & directives::IMMUTABLE != 0 {
                    "can't set immutable config"
                } else {
                    "can't set protected config"
                };
                err = Some((name, msg));
                invalid = true;
                continue;
            }
            if set_entries[..i].contains(&Some(e)) {
                err = Some((name, "duplicate parameter"));
                invalid = true;
            }
            set_entries[i] = Some(e);
        }
        if invalid {
            if let Some(n) = invalid_arg_name {
                return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{}'", Self::lossy(n)));
            }
            let (n, msg) = err.expect("error recorded");
            return Err(format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", Self::lossy(n), msg));
        }

        let mut new = self.clone();
        let old_dir = self.dir_bytes();
        for (i, (_, value)) in pairs.iter().enumerate() {
            let e = set_entries[i].unwrap();
            let def = &DEFS[e.idx];
            let args: Vec<Vec<u8>> = if def.flags & directives::MULTI_ARG != 0 {
                parse::split_spaces(value)
            } else {
                vec![value.to_vec()]
            };
            if let Err(msg) = new.set_directive(e.idx, &args, None) {
                if self.live_chdir && new.dir_bytes() != old_dir {
                    let _ = std::env::set_current_dir(parse::bytes_to_path(&old_dir));
                }
                return Err(format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", e.name(), msg));
            }
        }
        new.clamp_hz();
        // resizeReplicationBacklog() enforces CONFIG_REPL_BACKLOG_MIN_SIZE.
        if let Value::Num(n) = &mut new.values[directives::index_of("repl-backlog-size")] {
            if *n < 16 * 1024 {
                *n = 16 * 1024;
            }
        }
        let changed: Vec<&'static str> = DEFS
            .iter()
            .enumerate()
            .filter(|(idx, _)| new.values[*idx] != self.values[*idx])
            .map(|(_, d)| d.name)
            .collect();
        *self = new;
        Ok(changed)
    }

    /// Whether Tessera really behaves as directive `idx`'s current value says,
    /// so that CONFIG SET may answer OK (the CONFIG command checks it after a
    /// successful `set`; `set` itself stays a faithful port of Redis's
    /// config.c). Implemented directives: always.
    /// Others only at the value that describes what Tessera does anyway:
    /// `save ""` (no snapshots: Tessera never saves) and, for every other
    /// directive, its Redis default (`appendonly no`, `maxmemory 0`, `hz 10`
    /// — the default is the behaviour of a feature Tessera lacks). Anything
    /// else would be an OK for a setting that is silently ignored.
    pub fn value_is_honoured(&self, name: &[u8]) -> bool {
        let Some(e) = directives::lookup(name) else {
            return false;
        };
        let d = &DEFS[e.idx];
        if IMPLEMENTED.contains(&d.name) {
            return true;
        }
        match (&self.values[e.idx], d.name) {
            (Value::Save(points), "save") => points.is_empty(),
            (v, _) => *v == directives::default_value(d, &self.dir_bytes()),
        }
    }

    /// Set one directive from already split arguments. `save_loaded` is
    /// `Some` while loading a config (first `save` line replaces the default
    /// list, later ones append), `None` at runtime.
    pub(crate) fn set_directive(&mut self, idx: usize, args: &[Vec<u8>], save_loaded: Option<&mut bool>) -> Result<(), String> {
        let def = &DEFS[idx];
        let newv = match def.kind {
            Kind::Dir => {
                if args.len() != 1 {
                    return Err("wrong number of arguments".into());
                }
                Value::Dir(self.resolve_dir(&args[0], save_loaded.is_none())?)
            }
            Kind::Save => {
                self.save_configured = true;
                let Value::Save(new_pairs) = directives::parse_value(def, args, self)? else {
                    unreachable!()
                };
                // A single "" argument always resets the list (even while loading).
                let reset = args.len() == 1 && args[0].is_empty();
                match save_loaded {
                    Some(flag) => {
                        let mut cur = if *flag && !reset {
                            match &self.values[idx] {
                                Value::Save(p) => p.clone(),
                                _ => Vec::new(),
                            }
                        } else {
                            Vec::new()
                        };
                        *flag = true;
                        cur.extend(new_pairs);
                        Value::Save(cur)
                    }
                    None => Value::Save(new_pairs),
                }
            }
            Kind::Str { .. } if def.name == "requirepass" || def.name == "masterauth" => {
                // SDS configs are binary safe.
                if args[0].is_empty() {
                    Value::Str(None)
                } else {
                    Value::Str(Some(args[0].clone()))
                }
            }
            _ => directives::parse_value(def, args, self)?,
        };
        self.values[idx] = newv;
        Ok(())
    }

    /// `dir`: at load time resolve against the current (virtual) directory
    /// and check it; at runtime really chdir (when live_chdir).
    fn resolve_dir(&self, arg: &[u8], runtime: bool) -> Result<Vec<u8>, String> {
        let arg = &arg[..arg.iter().position(|&c| c == 0).unwrap_or(arg.len())];
        if runtime && self.live_chdir {
            std::env::set_current_dir(parse::bytes_to_path(arg)).map_err(|e| parse::strerror(&e))?;
            return std::env::current_dir().map(|p| parse::path_to_bytes(&p)).map_err(|e| parse::strerror(&e));
        }
        let base = self.dir_bytes();
        if arg.is_empty() {
            return Err("No such file or directory".into());
        }
        let target = parse::join_path(&base, arg);
        let canon = std::fs::canonicalize(parse::bytes_to_path(&target)).map_err(|e| parse::strerror(&e))?;
        let md = std::fs::metadata(&canon).map_err(|e| parse::strerror(&e))?;
        if !md.is_dir() {
            return Err("Not a directory".into());
        }
        Ok(parse::path_to_bytes(&canon))
    }

    /// Redis keeps hz within CONFIG_MIN_HZ..=CONFIG_MAX_HZ.
    pub(crate) fn clamp_hz(&mut self) {
        let idx = directives::index_of("hz");
        if let Value::Num(n) = &mut self.values[idx] {
            *n = (*n).clamp(1, 500);
        }
    }

    /// CONFIG REWRITE: rewrite the config file in place the way Redis 7.0
    /// does. `Err` is the error reply text without the leading '-'.
    pub fn rewrite(&self) -> Result<(), String> {
        rewrite::rewrite(self)
    }
}
