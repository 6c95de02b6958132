//! Loading dump.rdb at start-up, before any shard serves a client.
//!
//! The file is read into memory once and shared (`Arc`). One thread (the
//! main thread) walks its records — opcodes, keys, the extent of each value
//! (`Reader::skip_value`, lengths only) — and sends each key, with where its
//! value starts, to the shard that owns it, in batches. Each shard decodes
//! its own values from the shared bytes and inserts them through its
//! databases' write path, so decoding (the expensive part: building lists,
//! hashes, sets) runs on every shard in parallel while the parser goes on.
//! Any error (a corrupt value, a duplicated key, a bad CRC) stops the load
//! and the server exits, as Redis does.

use super::rdb::decode::{FileParser, LoadError, Reader, Record};
use super::rdb::Limits;
use crate::keyspace::access::set_hint;
use crate::keyspace::Item as KeyItem;
use crate::runtime::{self, shard_of_key, Shard};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Keys loaded / dropped as expired by the last load (INFO persistence).
/// Start-up is loading dump.rdb: commands without the `loading` flag get
/// -LOADING (processCommand), INFO shows the progress below.
pub static LOADING: AtomicBool = AtomicBool::new(false);
static LOAD_START_S: AtomicU64 = AtomicU64::new(0);
static LOAD_TOTAL: AtomicU64 = AtomicU64::new(0);
static LOAD_DONE: AtomicU64 = AtomicU64::new(0);
static LOAD_USED_MEM: AtomicU64 = AtomicU64::new(0);

/// shared.loadingerr, without its CRLF.
pub const LOADING_ERR: &str = "LOADING Redis is loading the dataset in memory";

/// INFO persistence's loading_* fields (only while loading, as Redis), with
/// Redis's percentage and ETA formulas.
pub fn info_loading() -> String {
    if !LOADING.load(Ordering::Relaxed) {
        return String::new();
    }
    let (start, total, done, used) = (
        LOAD_START_S.load(Ordering::Relaxed),
        LOAD_TOTAL.load(Ordering::Relaxed),
        LOAD_DONE.load(Ordering::Relaxed),
        LOAD_USED_MEM.load(Ordering::Relaxed),
    );
    let (mut perc, mut remaining) = (0.0, 1i64);
    if total > 0 {
        perc = done as f64 / total as f64 * 100.0;
        remaining = total as i64 - done as i64;
    } else if used > 0 {
        perc = (done as f64 / used as f64 * 100.0).min(99.99);
        remaining = (used as i64 - done as i64).max(1);
    }
    let elapsed = (runtime::now_ms() / 1000).saturating_sub(start) as i64;
    let eta = if elapsed == 0 { 1 } else { elapsed * remaining / (done as i64 + 1) };
    format!(
        "loading_start_time:{start}\r\nloading_total_bytes:{total}\r\nloading_rdb_used_mem:{used}\r\nloading_loaded_bytes:{done}\r\nloading_loaded_perc:{perc:.2}\r\nloading_eta_seconds:{eta}\r\n"
    )
}

pub static LAST_LOADED: AtomicU64 = AtomicU64::new(0);
pub static LAST_EXPIRED: AtomicU64 = AtomicU64::new(0);

/// Keys per message to a shard.
const BATCH: usize = 1024;

/// One key for its shard: the value is decoded there.
struct Item {
    db: usize,
    key: Box<[u8]>,
    rtype: u8,
    value_at: usize,
    expire_ms: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
}

/// What a shard reports once its part is in.
#[derive(Default, Debug)]
pub struct Outcome {
    pub loaded: u64,
    pub expired: u64,
    pub empty: u64,
    pub error: Option<String>,
}

/// Decides, once every shard reported, whether the shards go on to serve.
#[derive(Default)]
pub struct Gate {
    state: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Gate {
    pub fn open(&self, go: bool) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(go);
        self.cv.notify_all();
    }

    /// Blocks until `open`; true to go on serving.
    /// The gate's state without waiting (None: not open yet).
    pub fn state(&self) -> Option<bool> {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(go) = *s {
                return go;
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A shard's side of the load.
pub struct ShardLoad {
    /// The file, set by the parser before it sends the first batch.
    file: Arc<OnceLock<Vec<u8>>>,
    rx: Receiver<Vec<Item>>,
    results: std::sync::mpsc::Sender<Outcome>,
    abort: Arc<AtomicBool>,
    pub gate: Arc<Gate>,
}

/// The parser's side of the load.
pub struct Loading {
    path: std::path::PathBuf,
    file: Arc<OnceLock<Vec<u8>>>,
    txs: Vec<SyncSender<Vec<Item>>>,
    results: Receiver<Outcome>,
    abort: Arc<AtomicBool>,
    gate: Arc<Gate>,
    started: std::time::Instant,
}

/// Prepares loading `path` (the `dbfilename` in `dir`): None when there is
/// no such file; otherwise the parser's half and one half per shard (the
/// shards start with theirs; the file is read by [`Loading::run`], once
/// the start-up memory has been measured).
pub fn open(path: &std::path::Path, nshards: usize) -> Result<Option<(Loading, Vec<ShardLoad>)>, String> {
    match std::fs::metadata(path) {
        Ok(m) => {
            LOAD_TOTAL.store(m.len(), Ordering::Relaxed);
            LOAD_START_S.store(runtime::now_ms() / 1000, Ordering::Relaxed);
            LOADING.store(true, Ordering::Relaxed);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let file = Arc::new(OnceLock::new());
    let (rtx, rrx) = std::sync::mpsc::channel();
    let abort = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Gate::default());
    let mut txs = Vec::with_capacity(nshards);
    let mut shards = Vec::with_capacity(nshards);
    for _ in 0..nshards {
        let (tx, rx) = sync_channel(8);
        txs.push(tx);
        shards.push(ShardLoad {
            file: file.clone(),
            rx,
            results: rtx.clone(),
            abort: abort.clone(),
            gate: gate.clone(),
        });
    }
    Ok(Some((
        Loading {
            path: path.to_path_buf(),
            file,
            txs,
            results: rrx,
            abort,
            gate,
            started: std::time::Instant::now(),
        },
        shards,
    )))
}

impl Loading {
    /// Parses the file, hands every key to its shard, waits for the shards,
    /// logs as Redis does and opens the gate. False: the load failed (logged;
    /// the shards are told to stop).
    pub fn run(mut self, databases: usize, verify_crc: bool) -> bool {
        let nshards = self.txs.len();
        self.started = std::time::Instant::now();
        let parsed = match std::fs::read(&self.path) {
            Ok(f) => {
                let file = self.file.get_or_init(|| f);
                parse(file, databases, verify_crc, nshards, &self.txs, &self.abort)
            }
            Err(e) => Err(format!("Fatal error loading the DB: {e}. Exiting.")),
        };
        drop(self.txs);
        let mut total = Outcome::default();
        let mut errors = Vec::new();
        for _ in 0..nshards {
            match self.results.recv() {
                Ok(o) => {
                    total.loaded += o.loaded;
                    total.expired += o.expired;
                    total.empty += o.empty;
                    errors.extend(o.error);
                }
                Err(_) => errors.push("a shard stopped while loading".to_string()),
            }
        }
        if let Err(e) = parsed {
            errors.insert(0, e);
        }
        if let Some(e) = errors.first() {
            crate::log_warning!("{}", e);
            crate::log_warning!("Terminating server after rdb file reading failure.");
            self.gate.open(false);
            return false;
        }
        LAST_LOADED.store(total.loaded, Ordering::Relaxed);
        LAST_EXPIRED.store(total.expired, Ordering::Relaxed);
        if total.empty > 0 {
            crate::log_warning!(
                "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
                total.loaded,
                total.expired,
                total.empty
            );
        } else {
            crate::log_notice!("Done loading RDB, keys loaded: {}, keys expired: {}.", total.loaded, total.expired);
        }
        crate::log_notice!("DB loaded from disk: {:.3} seconds", self.started.elapsed().as_secs_f64());
        LOADING.store(false, Ordering::Relaxed);
        self.gate.open(true);
        true
    }
}

/// Redis's rdbReportError wording, with the offset.
fn report(offset: usize, reason: &str) -> String {
    format!("Internal error in RDB reading offset {offset} -> {reason}")
}

/// The parser thread's walk: records in order, keys to their shards.
fn parse(file: &[u8], databases: usize, verify_crc: bool, nshards: usize, txs: &[SyncSender<Vec<Item>>], abort: &AtomicBool) -> Result<(), String> {
    let mut p = FileParser::new(file).map_err(|e| report(e.offset, &e.reason))?;
    let mut batches: Vec<Vec<Item>> = (0..nshards).map(|_| Vec::with_capacity(BATCH)).collect();
    let send = |s: usize, b: Vec<Item>| txs[s].send(b).map_err(|_| "a shard stopped while loading".to_string());
    loop {
        if abort.load(Ordering::Relaxed) {
            return Ok(()); // a shard reports why
        }
        match p.next_record().map_err(|e| report(e.offset, &e.reason))? {
            Record::Aux(k, v) => log_aux(&k, &v),
            Record::SelectDb(db) => {
                if db >= databases as u64 {
                    return Err(format!(
                        "FATAL: Data file was created with a Redis server configured to handle more than {databases} databases. Exiting"
                    ));
                }
            }
            Record::ResizeDb(..) => {}
            Record::Function(code) => {
                // rdbFunctionLoad: a library that does not load stops the load.
                if let Err(e) = crate::scripting::functions::load(&code, false) {
                    return Err(format!("Failed loading library, {}", e.strip_prefix("ERR ").unwrap_or(&e)));
                }
            }
            Record::Key(k) => {
                let s = shard_of_key(&k.key, nshards);
                batches[s].push(Item {
                    db: k.db as usize,
                    key: k.key.into_owned().into_boxed_slice(),
                    rtype: k.rtype,
                    value_at: k.value_at,
                    expire_ms: k.expire_ms,
                    idle: k.idle,
                    freq: k.freq,
                });
                if batches[s].len() >= BATCH {
                    let b = std::mem::replace(&mut batches[s], Vec::with_capacity(BATCH));
                    LOAD_DONE.store(p.pos() as u64, Ordering::Relaxed);
                    send(s, b)?;
                }
            }
            Record::Eof(sum) => {
                for (s, b) in batches.into_iter().enumerate() {
                    if !b.is_empty() {
                        send(s, b)?;
                    }
                }
                if let (Some(stored), true) = (sum, verify_crc) {
                    if stored == 0 {
                        crate::log_warning!("RDB file was saved with checksum disabled: no check performed.");
                    } else {
                        let expected = p.computed_crc();
                        if stored != expected {
                            crate::log_warning!("Wrong RDB checksum expected: ({:x}) but got ({:x}). Aborting now.", expected, stored);
                            return Err(report(p.pos() - 8, "RDB CRC error"));
                        }
                    }
                }
                return Ok(());
            }
        }
    }
}

/// The AUX fields Redis logs when it loads a file.
fn log_aux(k: &[u8], v: &[u8]) {
    let v_str = String::from_utf8_lossy(v);
    let num = |s: &str| s.trim().parse::<i64>().unwrap_or(0);
    if k.first() == Some(&b'%') {
        crate::log_notice!("RDB '{}': {}", String::from_utf8_lossy(k), v_str);
    } else if k.eq_ignore_ascii_case(b"redis-ver") {
        crate::log_notice!("Loading RDB produced by version {}", v_str);
    } else if k.eq_ignore_ascii_case(b"ctime") {
        let age = (runtime::now_ms() / 1000) as i64 - num(&v_str);
        crate::log_notice!("RDB age {} seconds", age.max(0));
    } else if k.eq_ignore_ascii_case(b"used-mem") {
        LOAD_USED_MEM.store(num(&v_str).max(0) as u64, Ordering::Relaxed);
        crate::log_notice!("RDB memory usage when created {:.2} Mb", num(&v_str) as f64 / (1024.0 * 1024.0));
    } else if k.eq_ignore_ascii_case(b"aof-base") && num(&v_str) != 0 {
        crate::log_notice!("RDB is base AOF");
    }
}

impl ShardLoad {
    /// This shard's part of the start-up load, run while the shard already
    /// answers its clients (-LOADING): batches are taken without blocking
    /// the thread, one batch between two turns of the socket loop. False if
    /// the load failed (the server exits).
    pub async fn run(self) -> bool {
        use std::sync::mpsc::TryRecvError;
        let nap = std::time::Duration::from_micros(200);
        // key-load-delay: microseconds per key (debugDelay), slept per batch.
        let delay = runtime::rt_ref().config.read().map(|c| c.key_load_delay()).unwrap_or(0).max(0) as u64;
        let lim = Limits::current();
        let mut out = Outcome::default();
        loop {
            match self.rx.try_recv() {
                Ok(batch) => {
                    let n = batch.len() as u64;
                    if out.error.is_none() {
                        let file = self.file.get().map(|f| &f[..]).unwrap_or_default();
                        runtime::with_shard(|shard| {
                            let now = runtime::now_ms();
                            for it in batch {
                                if let Err(e) = insert(shard, file, it, now, &lim, &mut out) {
                                    out.error = Some(e);
                                    self.abort.store(true, Ordering::Relaxed);
                                    break;
                                }
                            }
                        });
                    } // else drain: the parser must not block on us
                    if delay > 0 {
                        glommio::timer::sleep(std::time::Duration::from_micros(delay * n)).await;
                    } else {
                        futures_lite::future::yield_now().await;
                    }
                }
                Err(TryRecvError::Empty) => glommio::timer::sleep(nap).await,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let _ = self.results.send(out);
        loop {
            if let Some(go) = self.gate.state() {
                return go;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

fn insert(shard: &mut Shard, file: &[u8], it: Item, now: u64, lim: &Limits, out: &mut Outcome) -> Result<(), String> {
    let val = match Reader::at(file, it.value_at).value(it.rtype, lim) {
        Ok(v) => v,
        Err(LoadError::Empty) => {
            if out.empty < 10 {
                crate::log_warning!("rdbLoadObject skipping empty key: {}", String::from_utf8_lossy(&it.key));
            }
            out.empty += 1;
            return Ok(());
        }
        Err(LoadError::Corrupt(e)) => return Err(report(e.offset, &e.reason)),
    };
    // A master drops keys that expired while the file sat on disk.
    if let Some(at) = it.expire_ms {
        if at < now as i64 {
            out.expired += 1;
            return Ok(());
        }
    }
    let mut entry = KeyItem::new(val, now);
    set_hint(&mut entry, it.idle, it.freq, now);
    let expire = it.expire_ms.map_or(0, |at| at.max(1) as u64);
    if let Err(key) = shard.dbs[it.db].add_loaded(it.key, entry, expire) {
        return Err(format!(
            "RDB has duplicated key '{}' in DB {}: Duplicated key found in RDB file",
            String::from_utf8_lossy(&key),
            it.db
        ));
    }
    out.loaded += 1;
    Ok(())
}

/// DEBUG RELOAD's load (rdbLoad while serving): under an exclusive lock on
/// every shard, `flush` (when given) empties each shard first, then the
/// file is parsed here and its keys are inserted by the shards that own
/// them, batch by batch, with the start-up path's checks. `merge`
/// (RDBFLAGS_ALLOW_DUP): a key or library already present is replaced.
/// Err: why (logged).
pub async fn reload(path: &str, databases: usize, flush: Option<fn(&mut Shard)>, merge: bool) -> Result<(), String> {
    use crate::runtime::locks::Mode;
    use crate::runtime::tx::Tx;
    let nshards = runtime::nshards();
    let mut tx = Tx::begin_all(0, Mode::Exclusive).await;
    let lost = |_| "a shard did not answer".to_string();
    if let Some(f) = flush {
        tx.hop_each((0..nshards).map(|s| (s, move |ctx: &mut runtime::Ctx| f(ctx.shard))).collect())
            .await
            .map_err(lost)?;
        crate::scripting::functions::flush();
    }
    let started = std::time::Instant::now();
    let file: Arc<Vec<u8>> = Arc::new(std::fs::read(path).map_err(|e| {
        let m = format!("Fatal error loading the DB: {e}. Exiting.");
        crate::log_warning!("{}", m);
        m
    })?);
    let mut p = FileParser::new(&file).map_err(|e| report(e.offset, &e.reason))?;
    let mut batches: Vec<Vec<Item>> = (0..nshards).map(|_| Vec::with_capacity(BATCH)).collect();
    let mut total = Outcome::default();
    let lim = Arc::new(Limits::current());
    let verify = super::checksum();
    let result: Result<(), String> = async {
        loop {
            let full: Vec<usize> = (0..nshards).filter(|&s| batches[s].len() >= BATCH).collect();
            for s in full {
                let b = std::mem::replace(&mut batches[s], Vec::with_capacity(BATCH));
                let o = tx.hop(s, insert_batch(file.clone(), b, lim.clone(), merge)).await.map_err(lost)?;
                add_outcome(&mut total, o)?;
            }
            match p.next_record().map_err(|e| report(e.offset, &e.reason))? {
                Record::Aux(..) | Record::ResizeDb(..) => {}
                Record::SelectDb(db) => {
                    if db >= databases as u64 {
                        return Err(format!(
                            "FATAL: Data file was created with a Redis server configured to handle more than {databases} databases. Exiting"
                        ));
                    }
                }
                Record::Function(code) => {
                    if let Err(e) = crate::scripting::functions::load(&code, merge) {
                        return Err(format!("Failed loading library, {}", e.strip_prefix("ERR ").unwrap_or(&e)));
                    }
                }
                Record::Key(k) => {
                    let s = shard_of_key(&k.key, nshards);
                    batches[s].push(Item {
                        db: k.db as usize,
                        key: k.key.into_owned().into_boxed_slice(),
                        rtype: k.rtype,
                        value_at: k.value_at,
                        expire_ms: k.expire_ms,
                        idle: k.idle,
                        freq: k.freq,
                    });
                }
                Record::Eof(sum) => {
                    if let (Some(stored), true) = (sum, verify) {
                        if stored != 0 && stored != p.computed_crc() {
                            return Err(report(p.pos() - 8, "RDB CRC error"));
                        }
                    }
                    let parts: Vec<_> = std::mem::take(&mut batches)
                        .into_iter()
                        .enumerate()
                        .map(|(s, b)| (s, insert_batch(file.clone(), b, lim.clone(), merge)))
                        .collect();
                    for o in tx.hop_each(parts).await.map_err(lost)? {
                        add_outcome(&mut total, o)?;
                    }
                    return Ok(());
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        crate::log_warning!("{}", e);
        return Err(e);
    }
    LAST_LOADED.store(total.loaded, Ordering::Relaxed);
    LAST_EXPIRED.store(total.expired, Ordering::Relaxed);
    crate::log_notice!("Done loading RDB, keys loaded: {}, keys expired: {}.", total.loaded, total.expired);
    crate::log_notice!("DB loaded from disk: {:.3} seconds", started.elapsed().as_secs_f64());
    Ok(())
}

fn add_outcome(total: &mut Outcome, o: Outcome) -> Result<(), String> {
    total.loaded += o.loaded;
    total.expired += o.expired;
    total.empty += o.empty;
    o.error.map_or(Ok(()), Err)
}

/// One shard's part of a reload batch (a hop of the reload's transaction).
fn insert_batch(file: Arc<Vec<u8>>, batch: Vec<Item>, lim: Arc<Limits>, merge: bool) -> impl FnOnce(&mut runtime::Ctx) -> Outcome + Send + 'static {
    move |ctx| {
        let now = ctx.now;
        let mut out = Outcome::default();
        for it in batch {
            if merge && it.db < ctx.shard.dbs.len() {
                ctx.shard.dbs[it.db].remove(&it.key);
            }
            if let Err(e) = insert(ctx.shard, &file, it, now, &lim, &mut out) {
                out.error = Some(e);
                break;
            }
        }
        out
    }
}
