//! The streaming snapshot writer shared by SAVE and BGSAVE: a forkless,
//! point-in-time RDB file of every shard, never held whole in memory.
//!
//! 1. **The point.** One acquisition of a shared whole-shard lock on every
//!    shard (`exec::on_every_shard`, as KEYS and DBSIZE): no cross-shard
//!    transaction is half applied. Each database gets its copy-on-write
//!    state (`Db::snapshot_begin`, keyspace/cow.rs) and the locks go at once.
//! 2. **The walk.** The coordinator (the task of the shard that asked) pulls
//!    the file's bytes one bounded step at a time (`Db::snapshot_step`:
//!    about [`STEP_BYTES`]), each step a job in the owning shard's inbox, so
//!    every shard keeps serving between steps. BGSAVE walks all shards at
//!    once, paced, and writes parts as they come (a SELECTDB when the
//!    database changes); SAVE goes database by database, shard by shard
//!    (Redis's layout). Writes after the point go through the pre-write
//!    hook, which saves a key's old value the first time it changes.
//! 3. **The file.** Streamed with direct I/O (glommio's DMA stream writer:
//!    aligned buffers, write-behind) to a temp file, or buffered I/O with
//!    one logged warning when the filesystem refuses `O_DIRECT`; closed
//!    (fdatasync), fsynced (its final size), renamed over `dbfilename`, the
//!    directory fsynced, as rdbSave does.

use super::rdb::encode::{file_header, AccessHint, Encoder};
use super::rdb::{opcode, CRC64};
use crate::exec::on_every_shard;
use crate::keyspace::cow::{PointStats, SnapshotSink};
use crate::keyspace::Entry;
use crate::runtime::locks::Mode;
use crate::runtime::{self, Ctx};
use futures_lite::AsyncWriteExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bytes a shard serializes per step before yielding back to its clients.
pub const STEP_BYTES: usize = 256 << 10;

/// A background save lets a shard rest this many times as long as its last
/// step took before asking it for the next: serialization takes about a third
/// of a shard's time at most, and the clients keep the rest (there is no
/// spare core a forked child would use; measured in ARCHITECTURE.md).
const BACKGROUND_REST: u32 = 2;

/// Which access hint precedes each key (rdbSaveKeyValuePair: IDLE under an
/// LRU policy, FREQ under LFU, nothing otherwise).
#[derive(Clone, Copy)]
enum Hints {
    None,
    Lru,
    Lfu,
}

/// The RDB encoder as the keyspace's snapshot sink.
struct RdbSink {
    enc: Encoder,
    hints: Hints,
    now: u64,
}

impl SnapshotSink for RdbSink {
    fn put(&mut self, key: &[u8], entry: &Entry, expire_at: u64) {
        let hint = match self.hints {
            Hints::None => AccessHint::None,
            Hints::Lru => AccessHint::Idle(crate::keyspace::db::idle_secs(entry.lru(), self.now)),
            Hints::Lfu => AccessHint::Freq(crate::keyspace::access::lfu_counter(entry.lfu(), self.now) as u8),
        };
        self.enc.put_key_value(key, &entry.val, expire_at, hint);
    }
    fn pending(&self) -> usize {
        self.enc.buf.len()
    }
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.enc.buf)
    }
}

/// What a finished snapshot reports.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Bytes the pre-write hooks serialized (rdb_last_cow_size).
    pub cow_bytes: u64,
    /// Keys written.
    pub keys: u64,
}

/// Progress of the snapshot in flight, for INFO (current_save_keys_*).
pub static KEYS_TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static KEYS_DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The copy-on-write figure as the walk last sampled it (after each step,
/// as Redis's child reports its COW), when, and its peak.
static COW_SAMPLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COW_SAMPLE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COW_PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Samples the hooks' copy-on-write bytes (after each step of the walk).
fn sample_cow() {
    let v = crate::keyspace::cow::COW_NOW.load(Ordering::Relaxed);
    COW_SAMPLE.store(v, Ordering::Relaxed);
    COW_SAMPLE_MS.store(runtime::now_ms(), Ordering::Relaxed);
    COW_PEAK.fetch_max(v, Ordering::Relaxed);
}

/// Back to "no snapshot running" (all zero, as Redis without a child).
fn reset_progress() {
    KEYS_TOTAL.store(0, Ordering::Relaxed);
    KEYS_DONE.store(0, Ordering::Relaxed);
    crate::keyspace::cow::COW_NOW.store(0, Ordering::Relaxed);
    COW_SAMPLE.store(0, Ordering::Relaxed);
    COW_SAMPLE_MS.store(0, Ordering::Relaxed);
    COW_PEAK.store(0, Ordering::Relaxed);
}

/// INFO's fields for the snapshot in flight (Redis's fork fields, all zero
/// when none runs): current_cow_peak, current_cow_size, current_cow_size_age
/// (seconds since the last sample), current_fork_perc (keys written of the
/// point's keys), current_save_keys_processed / current_save_keys_total.
pub fn progress_fields() -> String {
    let (done, total) = (KEYS_DONE.load(Ordering::Relaxed), KEYS_TOTAL.load(Ordering::Relaxed));
    let at = COW_SAMPLE_MS.load(Ordering::Relaxed);
    let age = if at == 0 { 0 } else { runtime::now_ms().saturating_sub(at) / 1000 };
    let perc = if total == 0 { 0.0 } else { done as f64 * 100.0 / total as f64 };
    format!(
        "current_cow_peak:{}\r\ncurrent_cow_size:{}\r\ncurrent_cow_size_age:{age}\r\ncurrent_fork_perc:{perc:.2}\r\ncurrent_save_keys_processed:{done}\r\ncurrent_save_keys_total:{total}\r\n",
        COW_PEAK.load(Ordering::Relaxed),
        COW_SAMPLE.load(Ordering::Relaxed),
    )
}

/// Direct I/O refused once: said once per process.
static DIRECT_IO_WARNED: AtomicBool = AtomicBool::new(false);

/// Drops every shard's snapshot state, whatever ended the save (done, an
/// error, the future dropped): no copy-on-write state may outlive it.
struct Abort {
    armed: bool,
}

impl Abort {
    async fn now(mut self) {
        self.armed = false;
        let _ = runtime::broadcast(|s| s.dbs.iter_mut().for_each(|d| d.snapshot_abort())).await;
    }
}

impl Drop for Abort {
    fn drop(&mut self) {
        if self.armed {
            let me = runtime::shard_id();
            for s in 0..runtime::nshards() {
                let job = || runtime::with_shard(|sh| sh.dbs.iter_mut().for_each(|d| d.snapshot_abort()));
                if s == me {
                    job();
                } else {
                    runtime::send(s, Box::new(job));
                }
            }
        }
    }
}

/// The output file: direct I/O, or buffered when the filesystem refuses it.
enum Out {
    Dma(glommio::io::DmaStreamWriter),
    Buffered(glommio::io::StreamWriter),
}

impl Out {
    async fn create(tmp: &str) -> std::io::Result<Out> {
        match glommio::io::DmaFile::create(tmp).await {
            Ok(f) => Ok(Out::Dma(
                glommio::io::DmaStreamWriterBuilder::new(f)
                    .with_buffer_size(1 << 20)
                    .with_write_behind(4)
                    .build(),
            )),
            Err(e) => {
                if !DIRECT_IO_WARNED.swap(true, Ordering::Relaxed) {
                    crate::log_warning!(
                        "WARNING: direct I/O (O_DIRECT) is refused for the RDB temp file ({}); writing it with buffered I/O",
                        e
                    );
                }
                let _ = std::fs::remove_file(tmp);
                let f = glommio::io::BufferedFile::create(tmp).await.map_err(std::io::Error::from)?;
                Ok(Out::Buffered(glommio::io::StreamWriterBuilder::new(f).with_buffer_size(1 << 20).build()))
            }
        }
    }

    async fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Dma(w) => w.write_all(b).await,
            Out::Buffered(w) => w.write_all(b).await,
        }
    }

    /// Flushes and fdatasyncs (both writers sync on close).
    async fn close(self) -> std::io::Result<()> {
        match self {
            Out::Dma(mut w) => w.close().await,
            Out::Buffered(mut w) => w.close().await,
        }
    }
}

/// A snapshot's point, taken: every database's copy-on-write state is
/// installed; [`Point::write`] streams it to the file.
pub struct Point {
    points: Vec<Vec<PointStats>>,
    functions: Vec<u8>,
    checksum: bool,
    delay: i64,
    abort: Abort,
    /// An AOF rewrite's base: `aof-base 1` in the header, and the changes it
    /// holds still count as unsaved (Redis's dirty is the RDB's).
    aof_base: bool,
    /// The file's format, chosen with the point (its sinks write it).
    format: Format,
}

/// What a snapshot writes: an RDB file, or (an AOF rewrite's base with
/// `aof-use-rdb-preamble no`) the commands that rebuild the data, after
/// `head` (the rewrite's `#TS:` annotation, if any).
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    Rdb,
    Commands { head: Vec<u8> },
}

/// Takes the point (step 1): one shared whole-shard lock on every shard.
pub async fn take_point() -> Result<Point, String> {
    take_point_with(|| (), Format::Rdb).await
}

/// [`take_point`] with `at_cut` run on each shard under its lock, right
/// before its copy-on-write state is installed (the AOF rewrite switches
/// to a new incr file there).
pub async fn take_point_with(at_cut: impl Fn() + Send + Sync + Clone + 'static, format: Format) -> Result<Point, String> {
    let (policy, delay) = match runtime::rt_ref().config.read() {
        Ok(c) => (c.maxmemory_policy(), c.rdb_key_save_delay()),
        Err(_) => return Err("config lock poisoned".into()),
    };
    use crate::config::MaxmemoryPolicy::*;
    let hints = match policy {
        AllkeysLru | VolatileLru => Hints::Lru,
        AllkeysLfu | VolatileLfu => Hints::Lfu,
        _ => Hints::None,
    };
    let compress = super::compression();
    let abort = Abort { armed: true };
    let commands = format != Format::Rdb;
    let points: Vec<Vec<PointStats>> = on_every_shard(0, Mode::Shared, move |ctx: &mut Ctx| {
        at_cut();
        let now = ctx.now;
        ctx.shard
            .dbs
            .iter_mut()
            .map(|db| {
                let sink: Box<dyn SnapshotSink> = if commands {
                    Box::<super::rewrite::CommandSink>::default()
                } else {
                    Box::new(RdbSink {
                        enc: Encoder::new(compress),
                        hints,
                        now,
                    })
                };
                db.snapshot_begin(sink)
            })
            .collect()
    })
    .await
    .map_err(|_| {
        crate::log_warning!("Write error saving DB on disk: a shard did not answer");
        "a shard did not answer".to_string()
    })?;
    let libraries = crate::scripting::functions::libraries(None);
    let mut libs = Encoder::new(compress);
    if commands {
        super::rewrite::put_functions(&mut libs.buf, libraries.iter().map(|l| &l.code[..]));
    } else {
        for lib in &libraries {
            libs.put_u8(opcode::FUNCTION2);
            libs.put_string(&lib.code);
        }
    }
    reset_progress();
    KEYS_TOTAL.store(points.iter().flatten().map(|p| p.keys).sum(), Ordering::Relaxed);
    COW_SAMPLE_MS.store(runtime::now_ms(), Ordering::Relaxed);
    Ok(Point {
        points,
        functions: libs.buf,
        checksum: super::checksum(),
        delay,
        abort,
        aof_base: false,
        format,
    })
}

impl Point {
    /// Marks the point as an AOF base file (see the field).
    pub fn aof_base(mut self) -> Point {
        self.aof_base = true;
        self
    }

    /// rdbSave of the point to `path` through the temp file `tmp` (steps 2
    /// and 3). Err: why it failed (already logged, as Redis logs it).
    /// `background`: BGSAVE paces itself ([`BACKGROUND_REST`]); SAVE does not.
    pub async fn write(self, path: &str, tmp: &str, background: bool) -> Result<Outcome, String> {
        let Point {
            points,
            functions,
            checksum,
            delay,
            abort,
            aof_base,
            format,
        } = self;
        write_point(points, functions, checksum, delay, abort, aof_base, format, path, tmp, background).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_point(
    points: Vec<Vec<PointStats>>,
    functions: Vec<u8>,
    checksum: bool,
    delay: i64,
    abort: Abort,
    aof_base: bool,
    format: Format,
    path: &str,
    tmp: &str,
    background: bool,
) -> Result<Outcome, String> {
    // 2. + 3. The walk, streamed to the temp file.
    let r = stream(tmp, &functions, &points, checksum, delay, aof_base, &format, background).await;
    abort.now().await;
    reset_progress();
    let outcome = match r {
        Ok(o) => o,
        Err((op, e)) => {
            let _ = std::fs::remove_file(tmp);
            let m = if op == "open" {
                let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "unknown".into());
                format!("Failed opening the temp RDB file {} (in server root dir {}) for saving: {}", tmp, cwd, e)
            } else {
                format!("Write error saving DB on disk({op}): {e}")
            };
            crate::log_warning!("{}", m);
            return Err(m);
        }
    };
    if let Err(e) = std::fs::rename(tmp, path) {
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "unknown".into());
        let m = format!(
            "Error moving temp DB file {} on the final destination {} (in server root dir {}): {}",
            tmp, path, cwd, e
        );
        crate::log_warning!("{}", m);
        let _ = std::fs::remove_file(tmp);
        return Err(m);
    }
    // fsyncFileDir: the rename itself must reach the disk.
    let dir = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        let m = format!("Write error saving DB on disk(fsyncFileDir): {e}");
        crate::log_warning!("{}", m);
        return Err(m);
    }
    if aof_base {
        return Ok(outcome);
    }
    // Only what is in the file stops counting as a change.
    let dirty: Arc<Vec<Vec<u64>>> = Arc::new(points.iter().map(|p| p.iter().map(|d| d.dirty).collect()).collect());
    let _ = runtime::broadcast(move |s| {
        if let Some(mine) = dirty.get(s.id) {
            for (db, d) in s.dbs.iter_mut().zip(mine) {
                db.hook.dirty = db.hook.dirty.saturating_sub(*d);
            }
        }
    })
    .await;
    Ok(outcome)
}

/// Pulls every shard's steps in file order and writes them; Err: (rdbSave's
/// operation name, the error).
#[allow(clippy::too_many_arguments)]
async fn stream(
    tmp: &str,
    functions: &[u8],
    points: &[Vec<PointStats>],
    checksum: bool,
    delay: i64,
    aof_base: bool,
    format: &Format,
    background: bool,
) -> Result<Outcome, (&'static str, std::io::Error)> {
    let mut out = Out::create(tmp).await.map_err(|e| ("open", e))?;
    let mut digest = CRC64.digest();
    let mut outcome = Outcome::default();
    // rdb-key-save-delay: microseconds per key (debugDelay), slept in
    // batches of at least 1 ms (a timer's granularity).
    let (max_keys, sleep) = if delay > 0 {
        let per = (1000 / delay as u64).max(1);
        (per, Some(std::time::Duration::from_micros(delay as u64)))
    } else {
        (u64::MAX, None)
    };
    let io = |e: std::io::Error| ("rdbSaveRio", e);
    let commands = *format != Format::Rdb;
    let head = match format {
        Format::Rdb => file_header(runtime::now_ms() / 1000, crate::util::alloc::used_memory() as u64, aof_base),
        Format::Commands { head } => head.clone(),
    };
    digest.update(&head);
    out.write(&head).await.map_err(io)?;
    digest.update(functions);
    out.write(functions).await.map_err(io)?;
    parallel(&mut out, &mut digest, &mut outcome, points, max_keys, sleep, background, commands).await?;
    finish(out, digest, checksum, tmp, commands).await?;
    Ok(outcome)
}

/// A shard's part of a background save: its databases with keys at the
/// point, the step in flight, and when it may be asked for the next.
struct Lane {
    shard: usize,
    dbs: Vec<usize>,
    at: usize,
    inflight: Option<runtime::tx::Hop<Option<(crate::keyspace::cow::Step, std::time::Duration)>>>,
    not_before: std::time::Instant,
}

fn pull(shard: usize, db: usize, max_keys: u64) -> runtime::tx::Hop<Option<(crate::keyspace::cow::Step, std::time::Duration)>> {
    runtime::tx::run_on(shard, move |s| {
        let t = std::time::Instant::now();
        s.dbs.get_mut(db).map(|d| (d.snapshot_step(STEP_BYTES, max_keys), t.elapsed()))
    })
}

/// The walk: every shard walks its databases at once; parts are written as
/// they come, each after a SELECTDB when the database changes (RESIZEDB,
/// with the point's totals, the first time), which rdbLoad accepts
/// anywhere. `background` (BGSAVE): a shard rests after each step
/// ([`BACKGROUND_REST`]) so its clients keep most of its time; SAVE does
/// not rest and asks for a shard's next step as soon as one arrives, so
/// the shards serialize while the coordinator writes. `rdb-key-save-delay`
/// paces either. `commands`: the steps are commands, and SELECT switches
/// the database.
#[allow(clippy::too_many_arguments)]
async fn parallel(
    out: &mut Out,
    digest: &mut crc::Digest<'static, u64, crc::Table<16>>,
    outcome: &mut Outcome,
    points: &[Vec<PointStats>],
    max_keys: u64,
    sleep: Option<std::time::Duration>,
    background: bool,
    commands: bool,
) -> Result<(), (&'static str, std::io::Error)> {
    let io = |e: std::io::Error| ("rdbSaveRio", e);
    let now = std::time::Instant::now();
    let mut lanes: Vec<Lane> = points
        .iter()
        .enumerate()
        .map(|(shard, p)| Lane {
            shard,
            dbs: p.iter().enumerate().filter(|(_, d)| d.keys > 0).map(|(i, _)| i).collect(),
            at: 0,
            inflight: None,
            not_before: now,
        })
        .filter(|l| !l.dbs.is_empty())
        .collect();
    let mut started = vec![false; points.iter().map(|p| p.len()).max().unwrap_or(0)];
    let mut current: Option<usize> = None;
    let mut turn = 0;
    while !lanes.is_empty() {
        let now = std::time::Instant::now();
        for l in lanes.iter_mut() {
            if l.inflight.is_none() && now >= l.not_before {
                l.inflight = Some(pull(l.shard, l.dbs[l.at], max_keys));
            }
        }
        // The next lane (round robin) with a step in flight; none: all rest.
        let Some(i) = (0..lanes.len()).map(|k| (turn + k) % lanes.len()).find(|&k| lanes[k].inflight.is_some()) else {
            let wake = lanes.iter().map(|l| l.not_before).min().unwrap_or(now);
            glommio::timer::sleep(wake.saturating_duration_since(now)).await;
            continue;
        };
        turn = i + 1;
        let Some(hop) = lanes[i].inflight.take() else { continue };
        let (step, took) = hop.await.ok().flatten().ok_or_else(|| io(std::io::Error::other("a shard did not answer")))?;
        let db = lanes[i].dbs[lanes[i].at];
        if step.done {
            outcome.cow_bytes += step.cow_bytes;
            lanes[i].at += 1;
        }
        let more = lanes[i].at < lanes[i].dbs.len();
        let rest = match sleep {
            Some(d) => Some(d * step.keys.max(1) as u32),
            None if background => Some(took * BACKGROUND_REST),
            None => None,
        };
        if more && rest.is_none() {
            // Unpaced: the shard serializes its next step while this is written.
            lanes[i].inflight = Some(pull(lanes[i].shard, lanes[i].dbs[lanes[i].at], max_keys));
        }
        if !step.bytes.is_empty() && current != Some(db) {
            let mut e = Encoder::new(false);
            if commands {
                super::rewrite::put_select(&mut e.buf, db);
            } else if !std::mem::replace(&mut started[db], true) {
                let keys = points.iter().filter_map(|p| p.get(db)).map(|d| d.keys).sum();
                let expires = points.iter().filter_map(|p| p.get(db)).map(|d| d.expires).sum();
                e.put_db_start(db, keys, expires);
            } else {
                e.put_u8(opcode::SELECTDB);
                e.put_len(db as u64);
            }
            digest.update(&e.buf);
            out.write(&e.buf).await.map_err(io)?;
            current = Some(db);
        }
        digest.update(&step.bytes);
        out.write(&step.bytes).await.map_err(io)?;
        outcome.keys += step.keys;
        KEYS_DONE.fetch_add(step.keys, Ordering::Relaxed);
        sample_cow();
        lanes[i].not_before = std::time::Instant::now() + rest.unwrap_or_default();
        if !more {
            lanes.remove(i);
        }
        futures_lite::future::yield_now().await;
    }
    Ok(())
}

/// An RDB file with no keys and no functions (an AOF's first base file).
pub fn empty_file(aof_base: bool) -> Vec<u8> {
    let mut out = file_header(runtime::now_ms() / 1000, crate::util::alloc::used_memory() as u64, aof_base);
    out.push(opcode::EOF);
    let crc = if super::checksum() { CRC64.checksum(&out) } else { 0 };
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// EOF, CRC64, flush and fsync of the temp file.
async fn finish(
    mut out: Out,
    mut digest: crc::Digest<'static, u64, crc::Table<16>>,
    checksum: bool,
    tmp: &str,
    commands: bool,
) -> Result<(), (&'static str, std::io::Error)> {
    let io = |e: std::io::Error| ("rdbSaveRio", e);
    if !commands {
        let mut tail = vec![opcode::EOF];
        digest.update(&tail);
        let crc = if checksum { digest.finalize() } else { 0 };
        tail.extend_from_slice(&crc.to_le_bytes());
        out.write(&tail).await.map_err(io)?;
    }
    out.close().await.map_err(|e| ("fsync", e))?;
    // The DMA writer truncates the padding after its fdatasync: make the
    // final size durable too before the rename publishes the file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| ("fsync", e))?;
    Ok(())
}
