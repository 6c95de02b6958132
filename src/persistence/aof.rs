//! The append-only file in Redis 7's multi-part layout: `appenddirname/`
//! holds `<appendfilename>.<seq>.base.rdb` (or `.base.aof`), the
//! `<appendfilename>.<seq>.incr.aof` files and `<appendfilename>.manifest`,
//! written exactly as Redis 7.0 writes them.
//!
//! **One writer for every shard.** The shards' propagation logs
//! (`runtime::propagate`) are handed to [`submit`], which appends them to one
//! pending buffer under a mutex, in the order they arrive (SELECT inserted
//! where the database changes); one writer thread writes the buffer with one
//! `write` and, for `appendfsync always`, one `fdatasync`, then publishes
//! the sequence number it covered. A cross-shard transaction's block arrives
//! in one piece (MULTI ... EXEC when it holds several commands), so a crash
//! leaves either all of it or a truncated tail that loading discards.
//!
//! **Group commit.** With `always`, a connection about to send replies waits
//! (`before_reply`) until the writer covered everything submitted so far;
//! every write submitted while an fsync runs is covered by the next one, so
//! one fdatasync acknowledges the writes of all connections of that round.
//! The writer wakes the waiting shards through their inboxes (one job per
//! shard per fsync). `everysec`: the writer fsyncs at most once a second, in
//! its own thread, so no shard ever waits for the disk; `no`: never.
//! Buffered writes + fdatasync, as Redis (appends are small: no direct I/O).

use crate::runtime::{self, propagate};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// INFO persistence's aof_* figures.
pub static ENABLED: AtomicBool = AtomicBool::new(false);
pub static REWRITING: AtomicBool = AtomicBool::new(false);
/// BGREWRITEAOF met a running BGSAVE: the cron starts it after (aof_rewrite_scheduled).
pub static REWRITE_SCHEDULED: AtomicBool = AtomicBool::new(false);
pub static REWRITES: AtomicU64 = AtomicU64::new(0);
pub static LAST_REWRITE_OK: AtomicBool = AtomicBool::new(true);
pub static LAST_WRITE_OK: AtomicBool = AtomicBool::new(true);
/// Seconds the last rewrite took (-1: none yet).
pub static LAST_REWRITE_SECS: AtomicU64 = AtomicU64::new(u64::MAX);
/// Unix seconds the running rewrite started (u64::MAX: none runs).
pub static REWRITE_STARTED: AtomicU64 = AtomicU64::new(u64::MAX);
/// Rewrites failed in a row (stat_aofrw_consecutive_failures).
pub static CONSECUTIVE_FAILURES: AtomicU64 = AtomicU64::new(0);
pub static CURRENT_SIZE: AtomicU64 = AtomicU64::new(0);
pub static BASE_SIZE: AtomicU64 = AtomicU64::new(0);
static FSYNC: AtomicU8 = AtomicU8::new(1);
/// auto-aof-rewrite-percentage / -min-size, and the size growth is measured from
/// (Redis's aof_rewrite_base_size: the total after start-up or the last rewrite).
static AUTO_PCT: AtomicU64 = AtomicU64::new(100);
static AUTO_MIN: AtomicU64 = AtomicU64::new(64 << 20);
static GROWTH_BASE: AtomicU64 = AtomicU64::new(0);
static PREAMBLE: AtomicBool = AtomicBool::new(true);
/// aof-timestamp-enabled: a `#TS:<unix seconds>` line before the records of a new second.
static TIMESTAMPS: AtomicBool = AtomicBool::new(false);

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub const ALWAYS: u8 = 0;
pub const EVERYSEC: u8 = 1;
pub const NO: u8 = 2;

/// The manifest: the base file, then the incr files in order, and the
/// last sequence numbers given (aofManifest's curr_base_file_seq and
/// curr_incr_file_seq: a new base or incr file takes the next one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub base: Option<(String, u64)>,
    pub incrs: Vec<(String, u64)>,
    pub base_seq: u64,
    pub incr_seq: u64,
}

impl Manifest {
    /// Parses a manifest as aofLoadManifestFromFile does (history entries dropped).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            if !w.len().is_multiple_of(2) {
                return Err("Invalid AOF manifest file format".into());
            }
            let (mut name, mut seq, mut ty) = (None, None, None);
            for kv in w.chunks(2) {
                match kv[0] {
                    "file" => name = Some(kv[1].to_string()),
                    "seq" => seq = kv[1].parse::<u64>().ok(),
                    "type" => ty = kv[1].chars().next(),
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(ty)) = (name, seq.filter(|q| *q != 0), ty) else {
                return Err("Invalid AOF manifest file format".into());
            };
            match ty {
                'b' => {
                    if m.base.is_some() {
                        return Err("Found duplicate base file information".into());
                    }
                    m.base_seq = seq;
                    m.base = Some((name, seq));
                }
                'i' => {
                    if seq <= m.incr_seq {
                        return Err("Found a non-monotonic sequence number".into());
                    }
                    m.incr_seq = seq;
                    m.incrs.push((name, seq));
                }
                'h' => {}
                _ => return Err("Unknown AOF file type".into()),
            }
        }
        Ok(m)
    }

    /// As getAofManifestAsString writes it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some((n, q)) = &self.base {
            s.push_str(&format!("file {n} seq {q} type b\n"));
        }
        for (n, q) in &self.incrs {
            s.push_str(&format!("file {n} seq {q} type i\n"));
        }
        s
    }

    /// getNewBaseFileNameAndMarkPreAsHistory's name: the next base sequence.
    fn next_base_name(&mut self, filename: &str, preamble: bool) -> (String, u64) {
        self.base_seq += 1;
        let n = format!("{}.{}.base.{}", filename, self.base_seq, if preamble { "rdb" } else { "aof" });
        (n, self.base_seq)
    }

    /// getNewIncrAofName: the next incr sequence, appended to the incr files.
    fn next_incr_name(&mut self, filename: &str) -> (String, u64) {
        self.incr_seq += 1;
        let n = format!("{}.{}.incr.aof", filename, self.incr_seq);
        self.incrs.push((n.clone(), self.incr_seq));
        (n, self.incr_seq)
    }
}

/// The manifest while no writer exists (`appendonly no` since start-up):
/// read at start-up as aofLoadManifestFromDisk does, updated by BGREWRITEAOF,
/// and taken by the writer when CONFIG SET appendonly yes opens it.
static OFF_MANIFEST: Mutex<Option<Manifest>> = Mutex::new(None);

#[derive(Clone)]
pub struct Settings {
    pub dirname: String,
    pub filename: String,
    pub load_truncated: bool,
}

struct Pending {
    buf: Vec<u8>,
    /// The database the file's last command ran in (-1: a new file, SELECT first).
    file_db: i64,
    submitted: u64,
    /// A rewrite's cut: shards that reached it, and where the new incr file begins.
    cuts: usize,
    switch_at: Option<usize>,
    stop: bool,
    /// The writer sleeps on the condvar: only then does a submit wake it (a
    /// futex call per submit otherwise).
    idle: bool,
    /// aof_cur_timestamp: the second of the last `#TS:` annotation written.
    cur_ts: u64,
}

struct Files {
    manifest: Manifest,
    incr: std::fs::File,
    /// The sequence of the incr file being written (0 while `wait_rewrite`).
    incr_seq: u64,
    /// AOF_WAIT_REWRITE: CONFIG SET appendonly yes opened the writer on
    /// `temp-<appendfilename>.incr`, outside the manifest, until the first
    /// rewrite names it as the next incr file next to its base.
    wait_rewrite: bool,
}

struct Writer {
    st: Mutex<Pending>,
    cv: Condvar,
    synced: AtomicU64,
    /// `Pending::submitted`, readable without the lock.
    submitted: AtomicU64,
    files: Mutex<Files>,
    settings: Settings,
    waiting: Vec<AtomicBool>,
}

static WRITER: OnceLock<Writer> = OnceLock::new();
static WRITER_THREAD: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);

/// Publishes `appendfsync`, `aof-use-rdb-preamble` and `aof-timestamp-enabled` (start-up, CONFIG SET).
pub fn configure(c: &crate::config::Config) {
    let f = match c.get_value(b"appendfsync").as_deref() {
        Some(b"always") => ALWAYS,
        Some(b"no") => NO,
        _ => EVERYSEC,
    };
    FSYNC.store(f, Ordering::Relaxed);
    propagate::FSYNC.store(f, Ordering::Relaxed);
    PREAMBLE.store(c.bool_value("aof-use-rdb-preamble"), Ordering::Relaxed);
    TIMESTAMPS.store(c.bool_value("aof-timestamp-enabled"), Ordering::Relaxed);
    let num = |n: &[u8]| c.get_value(n).and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()));
    if let Some(p) = num(b"auto-aof-rewrite-percentage") {
        AUTO_PCT.store(p, Ordering::Relaxed);
    }
    if let Some(m) = num(b"auto-aof-rewrite-min-size") {
        AUTO_MIN.store(m, Ordering::Relaxed);
    }
}

/// serverCron's automatic rewrite: once the AOF is past the minimum size and
/// has grown by the percentage since the last rewrite (or start-up).
pub fn auto_rewrite_check() {
    if REWRITING.load(Ordering::Relaxed) || super::save::bgsave_in_progress() {
        return;
    }
    // A scheduled rewrite starts whatever appendonly says (serverCron).
    if REWRITE_SCHEDULED.load(Ordering::Relaxed) {
        if !REWRITING.swap(true, Ordering::AcqRel) {
            REWRITE_SCHEDULED.store(false, Ordering::Relaxed);
            spawn_rewrite();
        }
        return;
    }
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let (pct, min) = (AUTO_PCT.load(Ordering::Relaxed), AUTO_MIN.load(Ordering::Relaxed));
    let cur = CURRENT_SIZE.load(Ordering::Relaxed);
    if pct == 0 || cur <= min {
        return;
    }
    let base = GROWTH_BASE.load(Ordering::Relaxed).max(1);
    let growth = (cur * 100 / base).saturating_sub(100);
    if growth >= pct && !REWRITING.swap(true, Ordering::AcqRel) {
        crate::log_notice!("Starting automatic rewriting of AOF on {}% growth", growth);
        spawn_rewrite();
    }
}

/// Runs a rewrite in the background on this shard (REWRITING already set).
pub fn spawn_rewrite() {
    glommio::spawn_local(async {
        // glommio polls a new task at once: let the caller (CONFIG SET, under
        // the config's write lock) return before the rewrite reads the config.
        futures_lite::future::yield_now().await;
        REWRITE_STARTED.store(unix_now(), Ordering::Relaxed);
        let ok = rewrite().await.is_ok();
        REWRITE_STARTED.store(u64::MAX, Ordering::Relaxed);
        LAST_REWRITE_OK.store(ok, Ordering::Relaxed);
        if ok {
            CONSECUTIVE_FAILURES.store(0, Ordering::Relaxed);
        } else {
            CONSECUTIVE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        // AOF_WAIT_REWRITE until a rewrite succeeds: the cron tries again.
        let waiting = WRITER.get().is_some_and(|w| w.files.lock().unwrap_or_else(|e| e.into_inner()).wait_rewrite);
        if !ok && waiting && ENABLED.load(Ordering::Relaxed) {
            REWRITE_SCHEDULED.store(true, Ordering::Relaxed);
        }
        REWRITES.fetch_add(1, Ordering::Relaxed);
        REWRITING.store(false, Ordering::Release);
    })
    .detach();
}

/// dirCreateIfMissing(appenddirname), as rewriteAppendOnlyFileBackground
/// does first; Err: Redis's log line.
pub fn ensure_dir() -> Result<(), String> {
    let dir = match WRITER.get() {
        Some(w) => w.settings.dirname.clone(),
        None => runtime::rt_ref()
            .config
            .read()
            .map(|c| settings_of(&c).dirname)
            .map_err(|_| "config lock poisoned".to_string())?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("Can't open or create append-only dir {dir}: {e}"))
}

fn path(s: &Settings, name: &str) -> String {
    format!("{}/{}", s.dirname, name)
}

fn fsync_dir(dir: &str) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes the manifest as persistAofManifest does: temp file, fsync, rename, fsync the dir.
fn persist_manifest(s: &Settings, m: &Manifest) -> Result<(), String> {
    let tmp = path(s, &format!("temp-{}.manifest", s.filename));
    let dst = path(s, &format!("{}.manifest", s.filename));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(m.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dst)?;
        fsync_dir(&s.dirname)
    })();
    r.map_err(|e| {
        let m = format!("Can't persist the AOF manifest file {dst}: {e}");
        crate::log_warning!("{}", m);
        m
    })
}

/// What start-up must load, in order.
pub struct LoadPlan {
    pub base: Option<(String, bool)>,
    pub incrs: Vec<String>,
}

fn settings_of(c: &crate::config::Config) -> Settings {
    Settings {
        dirname: String::from_utf8_lossy(&c.str_value("appenddirname").unwrap_or_else(|| b"appendonlydir".to_vec())).into_owned(),
        filename: String::from_utf8_lossy(&c.str_value("appendfilename").unwrap_or_else(|| b"appendonly.aof".to_vec())).into_owned(),
        load_truncated: c.bool_value("aof-load-truncated"),
    }
}

/// aofLoadManifestFromDisk: the manifest if the directory and the file
/// exist (an empty one otherwise); a manifest that does not parse is fatal.
fn read_manifest(settings: &Settings) -> Result<Manifest, String> {
    let mpath = path(settings, &format!("{}.manifest", settings.filename));
    match std::fs::read_to_string(&mpath) {
        Ok(t) => Manifest::parse(&t).map_err(|e| format!("\n*** FATAL AOF MANIFEST FILE ERROR ***\n{e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(format!("Fatal error: can't open the AOF manifest {mpath} for reading: {e}")),
    }
}

/// Start-up with `appendonly no`: the manifest is read all the same (Redis
/// reads it before loading), so that BGREWRITEAOF and a later CONFIG SET
/// appendonly yes continue its sequence numbers.
pub fn load_manifest_off(c: &crate::config::Config) -> Result<(), String> {
    let m = read_manifest(&settings_of(c))?;
    *OFF_MANIFEST.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
    Ok(())
}

/// Start-up with `appendonly yes`: reads the manifest (or creates the
/// directory, an empty base and the first incr file as Redis does) and opens
/// the last incr file for appending. Returns what to load.
pub fn open(c: &crate::config::Config, nshards: usize) -> Result<LoadPlan, String> {
    open_with(c, nshards, false)
}

/// [`open`], or with `wait_rewrite` (CONFIG SET appendonly yes, as
/// startAppendOnly + openNewIncrAofForAppend in AOF_WAIT_REWRITE): the
/// manifest known so far, no base created, and the writes going to
/// `temp-<appendfilename>.incr` until the rewrite that follows ends.
fn open_with(c: &crate::config::Config, nshards: usize, wait_rewrite: bool) -> Result<LoadPlan, String> {
    let settings = settings_of(c);
    configure(c);
    if let Err(e) = std::fs::create_dir_all(&settings.dirname) {
        return Err(format!("Can't open or create append-only dir {}: {}", settings.dirname, e));
    }
    let known = if wait_rewrite {
        OFF_MANIFEST.lock().unwrap_or_else(|e| e.into_inner()).take()
    } else {
        None
    };
    let mut manifest = match known {
        Some(m) => m,
        None => read_manifest(&settings)?,
    };
    let plan = LoadPlan {
        base: manifest.base.as_ref().map(|(n, _)| (path(&settings, n), n.ends_with(".rdb"))),
        incrs: manifest.incrs.iter().map(|(n, _)| path(&settings, n)).collect(),
    };
    let mut cur_ts = 0;
    let (incr, incr_seq) = if wait_rewrite {
        let n = format!("temp-{}.incr", settings.filename);
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path(&settings, &n))
            .and_then(|f| f.set_len(0).map(|_| f))
            .map_err(|e| format!("Can't open the append-only file {n}: {e}"))?;
        crate::log_notice!("Creating AOF incr file {} on background rewrite", n);
        (f, 0)
    } else {
        // An empty data set: a base file is created first (aofOpenIfNeededOnServerStart).
        if manifest.base.is_none() && manifest.incrs.is_empty() {
            let preamble = PREAMBLE.load(Ordering::Relaxed);
            let (name, seq) = manifest.next_base_name(&settings.filename, preamble);
            let bytes = if preamble {
                empty_rdb()
            } else {
                // rewriteAppendOnlyFileRio of nothing: its timestamp annotation only.
                let mut b = Vec::new();
                if TIMESTAMPS.load(Ordering::Relaxed) {
                    cur_ts = unix_now();
                    b.extend_from_slice(format!("#TS:{cur_ts}\r\n").as_bytes());
                }
                b
            };
            write_synced(&path(&settings, &name), &bytes).map_err(|e| format!("Can't open the append-only file {name}: {e}"))?;
            crate::log_notice!("Creating AOF base file {} on server start", name);
            manifest.base = Some((name, seq));
        }
        let (n, q, new) = match manifest.incrs.last() {
            Some((n, q)) => (n.clone(), *q, false),
            None => {
                let (n, q) = manifest.next_incr_name(&settings.filename);
                (n, q, true)
            }
        };
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path(&settings, &n))
            .map_err(|e| format!("Can't open the append-only file {n}: {e}"))?;
        persist_manifest(&settings, &manifest)?;
        if new {
            crate::log_notice!("Creating AOF incr file {} on server start", n);
        } else {
            crate::log_notice!("Opening AOF incr file {} on server start", n);
        }
        (f, q)
    };
    let w = Writer {
        st: Mutex::new(Pending {
            buf: Vec::new(),
            file_db: -1,
            submitted: 0,
            cuts: 0,
            switch_at: None,
            stop: false,
            idle: false,
            cur_ts,
        }),
        cv: Condvar::new(),
        synced: AtomicU64::new(0),
        submitted: AtomicU64::new(0),
        files: Mutex::new(Files {
            manifest,
            incr,
            incr_seq,
            wait_rewrite,
        }),
        settings,
        waiting: (0..nshards).map(|_| AtomicBool::new(false)).collect(),
    };
    if WRITER.set(w).is_err() {
        return Err("the AOF is already open".into());
    }
    update_sizes();
    let _ = propagate::SINK.set(submit);
    let h = std::thread::Builder::new()
        .name("aof-writer".into())
        .spawn(writer_loop)
        .map_err(|e| format!("cannot start the AOF writer: {e}"))?;
    *WRITER_THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(plan)
}

/// Starts the stream once loading is done (loading must not feed the file it reads).
pub fn start_propagating() {
    if WRITER.get().is_some() {
        crate::keyspace::db::PROPAGATE_EXPIRED.store(true, Ordering::Relaxed);
        propagate::ON.store(true, Ordering::Release);
    }
}

/// CONFIG SET appendonly: on — the files are opened (created if needed),
/// the stream starts and a rewrite makes the new base from the current data,
/// as startAppendOnly; off — the stream stops and what is pending is written.
pub fn switch(c: &crate::config::Config) -> Result<(), String> {
    if c.bool_value("appendonly") {
        if WRITER.get().is_none() {
            open_with(c, runtime::nshards(), true)?;
        }
        ENABLED.store(true, Ordering::Relaxed);
        start_propagating();
        if !REWRITING.swap(true, Ordering::AcqRel) {
            spawn_rewrite();
        } else {
            // The running one (appendonly no) is dropped when it ends; a new one follows.
            crate::log_warning!("AOF was enabled but there is already an AOF rewriting in background. Stopping background AOF and starting a rewrite now.");
            REWRITE_SCHEDULED.store(true, Ordering::Relaxed);
        }
    } else {
        propagate::flush_round();
        propagate::ON.store(false, Ordering::Release);
        crate::keyspace::db::PROPAGATE_EXPIRED.store(false, Ordering::Relaxed);
        ENABLED.store(false, Ordering::Relaxed);
    }
    Ok(())
}

fn write_synced(p: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(p)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// An RDB with no keys, as a base file (header with `aof-base 1`, EOF, CRC).
fn empty_rdb() -> Vec<u8> {
    super::snapshot::empty_file(true)
}

/// The stream's consumer: appends a log to the pending buffer.
fn submit(l: &propagate::Log) {
    let Some(w) = WRITER.get() else { return };
    let Some(first) = l.first_db else { return };
    let mut st = w.st.lock().unwrap_or_else(|e| e.into_inner());
    // genAofTimestampAnnotationIfNeeded: the first records of a new second
    // are preceded by its annotation (before their SELECT, as feedAppendOnlyFile).
    if TIMESTAMPS.load(Ordering::Relaxed) {
        let now = runtime::now_ms() / 1000;
        if st.cur_ts < now {
            st.cur_ts = now;
            st.buf.extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
        }
    }
    if st.file_db != first as i64 {
        propagate::encode(&mut st.buf, &[b"SELECT", first.to_string().as_bytes()]);
    }
    st.buf.extend_from_slice(&l.buf);
    st.file_db = l.db as i64;
    st.submitted += 1;
    w.submitted.store(st.submitted, Ordering::SeqCst);
    let wake = std::mem::take(&mut st.idle);
    drop(st);
    if wake {
        w.cv.notify_one();
    }
}

/// A rewrite's snapshot reached one shard (under its lock, after its round
/// log was flushed); at the last one, the writes that follow go to a new incr file.
fn cut(nshards: usize) {
    let Some(w) = WRITER.get() else { return };
    let mut st = w.st.lock().unwrap_or_else(|e| e.into_inner());
    st.cuts += 1;
    if st.cuts == nshards {
        st.cuts = 0;
        st.switch_at = Some(st.buf.len());
        st.file_db = -1;
        st.submitted += 1;
        w.submitted.store(st.submitted, Ordering::SeqCst);
    }
    drop(st);
    w.cv.notify_one();
}

fn writer_loop() {
    let Some(w) = WRITER.get() else { return };
    let mut last_fsync = Instant::now();
    let mut unsynced = false;
    let mut spare = Vec::new();
    loop {
        let (mut buf, switch_at, seq) = {
            let mut st = w.st.lock().unwrap_or_else(|e| e.into_inner());
            while st.buf.is_empty() && st.switch_at.is_none() && !st.stop {
                crate::util::alloc::publish_pending();
                st.idle = true;
                let (g, to) = w.cv.wait_timeout(st, Duration::from_millis(1000)).unwrap_or_else(|e| e.into_inner());
                st = g;
                st.idle = false;
                if to.timed_out() && unsynced {
                    break;
                }
            }
            if st.stop && st.buf.is_empty() {
                let f = w.files.lock().unwrap_or_else(|e| e.into_inner());
                let _ = f.incr.sync_data();
                return;
            }
            let seq = st.submitted;
            let sw = st.switch_at.take();
            let b = std::mem::replace(&mut st.buf, std::mem::take(&mut spare));
            (b, sw, seq)
        };
        let policy = FSYNC.load(Ordering::Relaxed);
        let mut files = w.files.lock().unwrap_or_else(|e| e.into_inner());
        let split = switch_at.unwrap_or(buf.len());
        let mut ok = files.incr.write_all(&buf[..split]).is_ok();
        if let Some(_at) = switch_at {
            if files.wait_rewrite || !ENABLED.load(Ordering::Relaxed) {
                // AOF_WAIT_REWRITE: what came before the point is in the
                // snapshot; the temp incr file starts at the point. AOF off
                // (a writer left from an earlier appendonly yes): nothing
                // is recorded, no new incr file (openNewIncrAofForAppend).
                if files.wait_rewrite {
                    ok &= files.incr.set_len(0).is_ok();
                }
            } else {
                ok &= files.incr.sync_data().is_ok();
                let mut m = files.manifest.clone();
                let (name, seq_new) = m.next_incr_name(&w.settings.filename);
                match std::fs::OpenOptions::new().append(true).create(true).open(path(&w.settings, &name)) {
                    Ok(f) => {
                        if persist_manifest(&w.settings, &m).is_ok() {
                            crate::log_notice!("Creating AOF incr file {} on background rewrite", name);
                            files.incr = f;
                            files.incr_seq = seq_new;
                            files.manifest = m;
                        } else {
                            ok = false;
                        }
                    }
                    Err(e) => {
                        crate::log_warning!("Can't open the append-only file {}: {}", name, e);
                        ok = false;
                    }
                }
            }
            ok &= files.incr.write_all(&buf[split..]).is_ok();
        }
        unsynced |= !buf.is_empty();
        let sync_now = match policy {
            ALWAYS => true,
            EVERYSEC => last_fsync.elapsed() >= Duration::from_secs(1),
            _ => false,
        };
        if sync_now && unsynced {
            if let Err(e) = files.incr.sync_data() {
                crate::log_warning!("Fail to fsync the AOF file: {}", e);
                ok = false;
            }
            last_fsync = Instant::now();
            unsynced = false;
        }
        drop(files);
        if !ok {
            LAST_WRITE_OK.store(false, Ordering::Relaxed);
            if policy == ALWAYS {
                crate::log_warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                std::process::exit(1);
            }
            crate::log_warning!("Error writing to the AOF file: {}", std::io::Error::last_os_error());
        } else {
            LAST_WRITE_OK.store(true, Ordering::Relaxed);
        }
        CURRENT_SIZE.fetch_add(buf.len() as u64, Ordering::Relaxed);
        buf.clear();
        spare = buf;
        w.synced.store(seq, Ordering::SeqCst);
        for (i, f) in w.waiting.iter().enumerate() {
            if f.swap(false, Ordering::SeqCst) {
                runtime::send(i, Box::new(wake_local));
            }
        }
    }
}

thread_local! {
    static WAITERS: std::cell::RefCell<Vec<(u64, std::task::Waker)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn wake_local() {
    let Some(w) = WRITER.get() else { return };
    let synced = w.synced.load(Ordering::SeqCst);
    let rest = WAITERS.with(|ws| {
        let mut ws = ws.borrow_mut();
        let mut i = 0;
        while i < ws.len() {
            if ws[i].0 <= synced {
                ws.swap_remove(i).1.wake();
            } else {
                i += 1;
            }
        }
        !ws.is_empty()
    });
    if rest {
        w.waiting[runtime::shard_id()].store(true, Ordering::SeqCst);
    }
}

struct SyncWait(u64);

impl std::future::Future for SyncWait {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let Some(w) = WRITER.get() else { return std::task::Poll::Ready(()) };
        if w.synced.load(Ordering::SeqCst) >= self.0 {
            return std::task::Poll::Ready(());
        }
        WAITERS.with(|ws| ws.borrow_mut().push((self.0, cx.waker().clone())));
        w.waiting[runtime::shard_id()].store(true, Ordering::SeqCst);
        if w.synced.load(Ordering::SeqCst) >= self.0 {
            return std::task::Poll::Ready(());
        }
        std::task::Poll::Pending
    }
}

/// Before a connection sends its replies: its shard's records enter the
/// stream and, with `appendfsync always`, the replies wait for the fsync
/// covering everything submitted so far (group commit).
#[inline]
pub async fn before_reply() {
    if !propagate::on() {
        return;
    }
    propagate::flush_round();
    if FSYNC.load(Ordering::Relaxed) != ALWAYS {
        return;
    }
    let Some(w) = WRITER.get() else { return };
    let seq = w.submitted.load(Ordering::SeqCst);
    if w.synced.load(Ordering::SeqCst) < seq {
        SyncWait(seq).await;
    }
}

/// Shutdown: everything pending is written and fsynced.
pub fn stop() {
    let Some(w) = WRITER.get() else { return };
    propagate::flush_round();
    let mut st = w.st.lock().unwrap_or_else(|e| e.into_inner());
    st.stop = true;
    drop(st);
    w.cv.notify_all();
    // Everything pending is on disk before the process exits.
    if let Some(h) = WRITER_THREAD.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = h.join();
    }
}

fn update_sizes() {
    let Some(w) = WRITER.get() else { return };
    let files = w.files.lock().unwrap_or_else(|e| e.into_inner());
    let size = |n: &str| std::fs::metadata(path(&w.settings, n)).map(|m| m.len()).unwrap_or(0);
    let base = files.manifest.base.as_ref().map(|(n, _)| size(n)).unwrap_or(0);
    let incr: u64 = files.manifest.incrs.iter().map(|(n, _)| size(n)).sum();
    BASE_SIZE.store(base, Ordering::Relaxed);
    CURRENT_SIZE.store(base + incr, Ordering::Relaxed);
    GROWTH_BASE.store(base + incr, Ordering::Relaxed);
}

// ---------------------------------------------------------------- rewrite

/// BGREWRITEAOF: a new base from one point-in-time snapshot of every shard
/// (the forkless writer BGSAVE uses: one shared lock on every shard for the
/// point, then streamed), a new incr file for the writes after the point
/// (switched at the same instant, see [`cut`]), the manifest updated
/// atomically, the old files deleted.
///
/// With `appendonly no` (rewriteAppendOnlyFileBackground in AOF_OFF) the
/// same snapshot makes the next base file and no incr file is opened: the
/// manifest then names the base alone, every earlier file is history and
/// removed (backgroundRewriteDoneHandler with no incr file open).
pub async fn rewrite() -> Result<(), String> {
    let writer = WRITER.get();
    let on = writer.is_some() && ENABLED.load(Ordering::Relaxed);
    let settings = match writer {
        Some(w) => w.settings.clone(),
        None => runtime::rt_ref()
            .config
            .read()
            .map(|c| settings_of(&c))
            .map_err(|_| "config lock poisoned".to_string())?,
    };
    if let Err(e) = std::fs::create_dir_all(&settings.dirname) {
        let m = format!("Can't open or create append-only dir {}: {}", settings.dirname, e);
        crate::log_warning!("{}", m);
        return Err(m);
    }
    let t0 = Instant::now();
    let n = runtime::nshards();
    // aof-use-rdb-preamble no: a base of commands (rewriteAppendOnlyFileRio),
    // opened by the rewrite's forced `#TS:` annotation when enabled.
    let preamble = PREAMBLE.load(Ordering::Relaxed);
    let format = if preamble {
        super::snapshot::Format::Rdb
    } else {
        let head = if TIMESTAMPS.load(Ordering::Relaxed) {
            format!("#TS:{}\r\n", unix_now()).into_bytes()
        } else {
            Vec::new()
        };
        super::snapshot::Format::Commands { head }
    };
    let (_turn, point) = super::save::aof_point(
        move || {
            if on {
                propagate::flush_round();
                cut(n);
            }
        },
        format,
    )
    .await?;
    if let (true, Some(w)) = (on, writer) {
        // The new incr file exists once the writer has passed the cut.
        while w.st.lock().unwrap_or_else(|e| e.into_inner()).switch_at.is_some() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let wait_seq = w.st.lock().unwrap_or_else(|e| e.into_inner()).submitted;
        while w.synced.load(Ordering::SeqCst) < wait_seq {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
    // The incr files the snapshot covers: those before the one opened at
    // the cut (every one when no file was opened for the writes after it).
    let (mut manifest, keep_from) = match writer {
        Some(w) => {
            let f = w.files.lock().unwrap_or_else(|e| e.into_inner());
            let keep = if on && !f.wait_rewrite { f.incr_seq } else { u64::MAX };
            (f.manifest.clone(), keep)
        }
        None => (OFF_MANIFEST.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default(), u64::MAX),
    };
    let (name, seq) = manifest.next_base_name(&settings.filename, preamble);
    let tmp_name = format!("temp-rewriteaof-bg-{}.aof", std::process::id());
    // Written to the temp file, then renamed into place (the snapshot writer's own steps).
    point.write(&path(&settings, &name), &path(&settings, &tmp_name), true).await?;
    crate::log_notice!("Successfully renamed the temporary AOF base file {} into {}", tmp_name, name);
    if ENABLED.load(Ordering::Relaxed) != on {
        // appendonly changed while it ran: Redis kills that child and starts
        // over (startAppendOnly) or stops (stopAppendOnly); nothing is kept.
        let _ = std::fs::remove_file(path(&settings, &name));
        return Ok(());
    }
    let mut old: Vec<String> = manifest.incrs.iter().rev().filter(|(_, q)| *q < keep_from).map(|(n, _)| n.clone()).collect();
    if let Some((b, _)) = manifest.base.take() {
        old.push(b);
    }
    manifest.base = Some((name, seq));
    manifest.incrs.retain(|(_, q)| *q >= keep_from);
    match writer {
        Some(w) => {
            let mut files = w.files.lock().unwrap_or_else(|e| e.into_inner());
            // The manifest may have moved on while the base was written (a
            // cut of a later rewrite cannot happen: one rewrite at a time).
            if on && files.wait_rewrite {
                // AOF_WAIT_REWRITE ends: the temp incr file is named as the next incr.
                let temp = format!("temp-{}.incr", settings.filename);
                let (incr_name, incr_seq) = manifest.next_incr_name(&settings.filename);
                if let Err(e) = std::fs::rename(path(&settings, &temp), path(&settings, &incr_name)) {
                    let m = format!("Error trying to rename the temporary AOF incr file {temp} into {incr_name}: {e}");
                    crate::log_warning!("{}", m);
                    let _ = std::fs::remove_file(path(&settings, &manifest.base.as_ref().map(|b| b.0.clone()).unwrap_or_default()));
                    return Err(m);
                }
                crate::log_notice!("Successfully renamed the temporary AOF incr file {} into {}", temp, incr_name);
                persist_manifest(&settings, &manifest)?;
                files.wait_rewrite = false;
                files.incr_seq = incr_seq;
            } else {
                persist_manifest(&settings, &manifest)?;
            }
            files.manifest = manifest;
        }
        None => {
            persist_manifest(&settings, &manifest)?;
            *OFF_MANIFEST.lock().unwrap_or_else(|e| e.into_inner()) = Some(manifest);
        }
    }
    for f in old {
        crate::log_notice!("Removing the history file {} in the background", f);
        let _ = std::fs::remove_file(path(&settings, &f));
    }
    if on {
        update_sizes();
    }
    LAST_REWRITE_SECS.store(t0.elapsed().as_secs(), Ordering::Relaxed);
    crate::log_notice!("Background AOF rewrite finished successfully");
    Ok(())
}

// ---------------------------------------------------------------- loading

/// How reading one AOF file ended.
#[derive(Debug, PartialEq)]
pub enum Read {
    Ok,
    /// A short read (or an unterminated MULTI) at `valid_up_to`.
    Truncated(usize),
    Format,
}

/// Parses AOF commands as loadSingleAppendOnlyFile reads them: `#`
/// annotations skipped, `*argc`, `$len`; returns the commands up to the last
/// complete one (an unterminated MULTI at the end is reverted).
pub fn parse_commands(b: &[u8]) -> (Vec<Vec<Vec<u8>>>, Read) {
    let mut cmds = Vec::new();
    let mut pos = 0;
    let mut in_multi: Option<(usize, usize)> = None;
    let line = |pos: usize| -> Option<(&[u8], usize)> {
        let nl = memchr::memchr(b'\n', &b[pos..])?;
        Some((&b[pos..pos + nl + 1], pos + nl + 1))
    };
    loop {
        if pos >= b.len() {
            break;
        }
        let Some((l, next)) = line(pos) else {
            return trunc(cmds, in_multi, pos);
        };
        if l[0] == b'#' {
            pos = next;
            continue;
        }
        if l[0] != b'*' {
            return (cmds, Read::Format);
        }
        let argc = atoi(&l[1..]);
        if argc < 1 {
            return (cmds, Read::Format);
        }
        let mut p = next;
        let mut argv = Vec::with_capacity(argc as usize);
        for _ in 0..argc {
            let Some((l, next)) = line(p) else {
                return trunc(cmds, in_multi, pos);
            };
            if l[0] != b'$' {
                return (cmds, Read::Format);
            }
            let len = atoi(&l[1..]).max(0) as usize;
            if next + len + 2 > b.len() {
                return trunc(cmds, in_multi, pos);
            }
            argv.push(b[next..next + len].to_vec());
            p = next + len + 2;
        }
        if argv[0].eq_ignore_ascii_case(b"multi") {
            in_multi = Some((pos, cmds.len()));
        } else if argv[0].eq_ignore_ascii_case(b"exec") {
            in_multi = None;
        }
        cmds.push(argv);
        pos = p;
    }
    if in_multi.is_some() {
        return trunc(cmds, in_multi, pos);
    }
    (cmds, Read::Ok)
}

fn trunc(mut cmds: Vec<Vec<Vec<u8>>>, in_multi: Option<(usize, usize)>, pos: usize) -> (Vec<Vec<Vec<u8>>>, Read) {
    match in_multi {
        Some((at, n)) => {
            cmds.truncate(n);
            (cmds, Read::Truncated(at))
        }
        None => (cmds, Read::Truncated(pos)),
    }
}

fn atoi(s: &[u8]) -> i64 {
    let s = std::str::from_utf8(s).unwrap_or("").trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(s.len());
    s[..end].parse().unwrap_or(0)
}

/// Reads one AOF-format file for replay, handling a truncated tail as
/// Redis: `aof-load-truncated yes` trims it (last file only) and warns, no
/// stops start-up; a format error stops it.
pub fn read_for_replay(p: &str, last: bool, load_truncated: bool) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let name = p.rsplit('/').next().unwrap_or(p).to_string();
    let bytes = std::fs::read(p).map_err(|e| format!("Fatal error: can't open the append log file {name} for reading: {e}"))?;
    let (cmds, how) = parse_commands(&bytes);
    match how {
        Read::Ok => Ok(cmds),
        Read::Format => Err(format!(
            "Bad file format reading the append only file {name}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
        )),
        Read::Truncated(at) => {
            if !last {
                return Err("Fatal error: the truncated file is not the last file".into());
            }
            if load_truncated {
                if cmds.last().map(|c| c[0].eq_ignore_ascii_case(b"exec")) != Some(true) && bytes[at..].starts_with(b"*1\r\n$5\r\nMULTI") {
                    crate::log_warning!("Revert incomplete MULTI/EXEC transaction in AOF file {}", name);
                }
                crate::log_warning!("!!! Warning: short read while loading the AOF file {}!!!", name);
                crate::log_warning!("!!! Truncating the AOF {} at offset {} !!!", name, at);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
                f.set_len(at as u64).map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
                crate::log_warning!("AOF {} loaded anyway because aof-load-truncated is enabled", name);
                Ok(cmds)
            } else {
                Err(format!("Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."))
            }
        }
    }
}

/// The `aof-load-truncated` setting and the files, for the replay.
pub fn settings() -> Option<Settings> {
    WRITER.get().map(|w| w.settings.clone())
}

/// Set once the AOF is loaded: shards start accepting clients.
pub static LOADED: AtomicBool = AtomicBool::new(true);

pub async fn wait_loaded() {
    while !LOADED.load(Ordering::Acquire) {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_redis_format() {
        let t = "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\nfile appendonly.aof.3.incr.aof seq 3 type i\n";
        let m = Manifest::parse(t).unwrap();
        assert_eq!(m.render(), t);
        assert_eq!((m.base_seq, m.incr_seq), (2, 3));
        assert!(Manifest::parse("file x seq 1 type z\n").is_err());
        assert!(Manifest::parse("file a seq 2 type i\nfile b seq 2 type i\n").is_err());
        assert!(Manifest::parse("file a seq 0 type b\n").is_err());
    }

    #[test]
    fn parse_discards_short_tail_and_unterminated_multi() {
        let full = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
        assert_eq!(parse_commands(full).1, Read::Ok);
        let short = &full[..full.len() - 3];
        let (c, r) = parse_commands(short);
        assert_eq!((c.len(), r), (1, Read::Truncated(23)));
        let mut m = full.to_vec();
        m.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n");
        let (c, r) = parse_commands(&m);
        assert_eq!((c.len(), r), (2, Read::Truncated(full.len())));
        assert_eq!(parse_commands(b"hello\r\n").1, Read::Format);
    }
}
