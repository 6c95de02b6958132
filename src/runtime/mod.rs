//! The shard runtime: one glommio executor per core, each owning a partition
//! of the keyspace (by hash slot) and the connections the kernel gives it.
//! Shards talk only through their inboxes (lock-free queues of jobs).

pub mod blocking;
pub mod clock;
pub mod inbox;
pub mod locks;
pub mod notify;
pub mod propagate;
pub mod reply;
pub mod track;
pub mod tx;

use crate::keyspace::Db;
use inbox::{Inbox, Job};
use locks::LockTable;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

/// The number of databases (fixed at start-up): plans and key rules need it
/// without touching a shard.
static DATABASES: AtomicUsize = AtomicUsize::new(16);

pub fn databases() -> usize {
    DATABASES.load(Ordering::Relaxed)
}

/// DEBUG SET-ACTIVE-EXPIRE: whether the cron samples and deletes expired keys.
pub static ACTIVE_EXPIRE: AtomicBool = AtomicBool::new(true);

/// `activerehashing`: whether the cron moves a key table's resize along
/// (a millisecond a tick) besides the inserts and removals that do.
pub static ACTIVE_REHASHING: AtomicBool = AtomicBool::new(true);

/// Which shard owns a hash slot: contiguous slot ranges, like cluster slot ranges.
#[inline]
pub fn shard_of_slot(slot: u16, shards: usize) -> usize {
    (slot as usize * shards) >> 14
}

#[inline]
pub fn shard_of_key(key: &[u8], shards: usize) -> usize {
    if shards == 1 {
        0
    } else {
        shard_of_slot(crate::util::slot::key_hash_slot(key), shards)
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Per-shard counters, summed across shards by INFO.
#[derive(Default, Clone, Debug)]
pub struct ShardStats {
    pub commands: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_stale_perc: f64,
    pub connections_received: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub expire_cycles: u64,
    /// Per command (indexed by `Command::id`): INFO commandstats.
    pub cmd: Vec<CmdStat>,
    /// Error replies by their first word: INFO errorstats.
    pub errors: std::collections::BTreeMap<String, u64>,
}

#[derive(Default, Clone, Debug)]
pub struct CmdStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Latency distribution (INFO latencystats), allocated on first use.
    pub hist: Option<Box<LatencyHist>>,
}

impl CmdStat {
    /// Records one execution that took `ns` nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.usec += ns / 1000;
        self.hist.get_or_insert_with(|| Box::new(LatencyHist::default())).record(ns);
    }
}

/// Log-linear histogram of nanoseconds: 16 sub-buckets per power of two
/// (about 6 % resolution), mergeable across shards.
#[derive(Clone, Debug)]
pub struct LatencyHist {
    counts: Vec<u64>,
}

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist { counts: vec![0; 64 * 16] }
    }
}

impl LatencyHist {
    fn index(ns: u64) -> usize {
        let v = ns.max(1);
        let exp = 63 - v.leading_zeros() as usize;
        let sub = if exp >= 4 {
            ((v >> (exp - 4)) & 15) as usize
        } else {
            ((v << (4 - exp)) & 15) as usize
        };
        exp * 16 + sub
    }

    /// Upper bound (ns) of a bucket.
    fn upper(i: usize) -> f64 {
        let (exp, sub) = (i / 16, i % 16);
        (2f64).powi(exp as i32) * (1.0 + (sub as f64 + 1.0) / 16.0)
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
    }

    pub fn merge(&mut self, o: &LatencyHist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
    }

    /// The value (µs) at percentile `p` (0–100).
    pub fn percentile_us(&self, p: f64) -> f64 {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let want = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Self::upper(i) / 1000.0;
            }
        }
        0.0
    }
}

impl ShardStats {
    #[inline]
    pub fn cmd_mut(&mut self, id: usize) -> &mut CmdStat {
        if self.cmd.len() <= id {
            self.cmd.resize(id + 1, CmdStat::default());
        }
        &mut self.cmd[id]
    }

    /// Counts an error reply (`-CODE message`) by its code.
    pub fn count_error(&mut self, reply: &[u8]) {
        let code = reply.get(1..).unwrap_or_default();
        let end = code.iter().position(|&b| b == b' ' || b == b'\r').unwrap_or(code.len());
        let code = String::from_utf8_lossy(&code[..end]).into_owned();
        *self.errors.entry(code).or_insert(0) += 1;
    }
}

/// Everything one shard owns. Only its own thread touches it.
pub struct Shard {
    pub id: usize,
    pub dbs: Vec<Db>,
    /// Where `active_rehash` looks first (Redis's static rehash_db).
    pub rehash_db: usize,
    pub stats: ShardStats,
    pub locks: LockTable,
    /// Clients blocked on this shard's keys (registrations), kept by the
    /// blocking layer: while 0, a write costs the blocking layer one compare.
    pub waiters: usize,
    /// Client-side caching: who may cache which of this shard's keys.
    pub track: track::Table,
    rng: u64,
}

/// The blocking layer's entry point (`exec::block::serve_ready`), set at
/// startup: the runtime calls it after writes and lock releases without
/// depending on the command layer.
pub static SERVE_BLOCKED: OnceLock<fn(&mut Shard)> = OnceLock::new();

impl Shard {
    pub fn new(id: usize, databases: usize) -> Self {
        DATABASES.store(databases, Ordering::Relaxed);
        let mut dbs = Vec::with_capacity(databases);
        dbs.resize_with(databases, Db::default);
        dbs.iter_mut().enumerate().for_each(|(i, d)| d.index = i);
        Shard {
            id,
            dbs,
            rehash_db: 0,
            stats: ShardStats::default(),
            locks: LockTable::default(),
            waiters: 0,
            track: track::Table::default(),
            rng: 0x2545F4914F6CDD1D ^ (id as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15) ^ now_us(),
        }
    }

    /// After a command, a hop or a lock release: serves clients blocked on
    /// keys that became ready (Redis's handleClientsBlockedOnKeys after call()).
    #[inline]
    pub fn after_write(&mut self) {
        if propagate::on() {
            propagate::drain_expired(self);
        }
        if track::active() {
            self.track_changes();
        }
        if notify::any() {
            self.publish_notes();
        }
        if self.waiters != 0 {
            if let Some(f) = SERVE_BLOCKED.get() {
                f(self);
            }
            // The pops that served blocked clients have events of their own.
            if notify::any() {
                self.publish_notes();
            }
            // And invalidations (those of a served client went out as it was served).
            if track::active() {
                self.track_changes();
            }
        }
    }

    /// Tells the clients that may cache the keys just changed (and the
    /// broadcast prefixes matching them) that they changed.
    #[cold]
    pub fn track_changes(&mut self) {
        for dbi in 0..self.dbs.len() {
            if !self.dbs[dbi].hook.has_changed() {
                continue;
            }
            let keys = self.dbs[dbi].hook.take_changed();
            if self.track.changed(keys) {
                // Broadcast keys go out once this run of work yields, all together.
                send(self.id, Box::new(|| with_shard(|s| s.track.flush_bcast())));
            }
        }
    }

    /// Publishes the collected keyspace events (the hook's expired keys first:
    /// a command that met an expired key saw it expire before it ran).
    #[cold]
    fn publish_notes(&mut self) {
        if notify::holding() {
            return;
        }
        let mut notes = Vec::new();
        for (dbi, db) in self.dbs.iter_mut().enumerate() {
            for key in db.hook.take_expired() {
                notes.push(notify::Note {
                    class: notify::NOTIFY_EXPIRED,
                    event: "expired",
                    db: dbi,
                    key,
                });
            }
        }
        // `new` events no later event of the command flushed.
        notify::flush_created();
        notes.append(&mut notify::take());
        if !notes.is_empty() {
            notify::publish(notes);
        }
    }

    /// maxmemory (keyspace/evict.rs): evicts this shard's keys while the
    /// process is over the limit, skipping keys an in-flight transaction
    /// holds; notifies `evicted`, and records the outcome for the OOM rule.
    #[cold]
    pub fn evict(&mut self) -> crate::keyspace::evict::Outcome {
        self.evict_as(false)
    }

    /// `evict`, `force`d when another shard deferred to this one.
    fn evict_as(&mut self, force: bool) -> crate::keyspace::evict::Outcome {
        let now = now_ms();
        let locks = &self.locks;
        let free = |dbi: usize, k: &[u8]| locks.is_empty() || !locks.must_wait(0, std::iter::once((locks::fingerprint(dbi, k), locks::Mode::Exclusive)), None);
        let notes = notify::wanted(notify::NOTIFY_EVICTED);
        let r = crate::keyspace::evict::perform(&mut self.dbs, self.id, nshards(), force, now, &free, &mut |dbi, k| {
            if notes {
                notify::note(dbi, notify::NOTIFY_EVICTED, "evicted", k);
            }
        });
        crate::keyspace::evict::note_outcome(self.id, r);
        self.after_write();
        match r {
            crate::keyspace::evict::Outcome::Running => schedule_eviction(self.id),
            crate::keyspace::evict::Outcome::Deferred(j) => request_eviction(j),
            _ => {}
        }
        r
    }

    /// xorshift64*: cheap randomness for sampling (RANDOMKEY, active expiry).
    pub fn rand(&mut self) -> u64 {
        crate::util::rand::next(&mut self.rng)
    }

    /// Redis's databasesCron rehash: the first database (from where the
    /// last tick stopped) with a key table resize in progress moves it on
    /// for up to `budget_us`, 100 keys at a time (dictRehashMilliseconds).
    pub fn active_rehash(&mut self, budget_us: u64) {
        let n = self.dbs.len();
        for _ in 0..n {
            let db = &mut self.dbs[self.rehash_db % n];
            if db.resizing() {
                let start = now_us();
                while db.move_keys(100) && now_us() - start < budget_us {}
                return;
            }
            self.rehash_db = (self.rehash_db + 1) % n;
        }
    }

    /// Active expiry for every db: Redis's cycle in miniature — sample 20 keys,
    /// repeat while more than a quarter were expired, within a time budget.
    pub fn active_expire(&mut self, budget_us: u64) {
        let start = now_us();
        let now = now_ms();
        let mut rng = self.rng;
        let mut next = move || crate::util::rand::next(&mut rng);
        let locks = &self.locks;
        for (dbi, db) in self.dbs.iter_mut().enumerate() {
            loop {
                if !db.has_volatile() {
                    break;
                }
                // A key held by an in-flight transaction is left to it.
                let free = |k: &[u8]| locks.is_empty() || !locks.must_wait(0, std::iter::once((locks::fingerprint(dbi, k), locks::Mode::Exclusive)), None);
                let (sampled, expired) = db.expire_sample(20, now, &mut next, free);
                if sampled == 0 || expired * 4 <= sampled || now_us() - start > budget_us {
                    break;
                }
            }
        }
        self.rng = next();
        self.stats.expire_cycles += 1;
        self.after_write();
    }
}

thread_local! {
    /// An eviction job is queued in this shard's inbox (evictionTimeProc).
    static EVICTION_QUEUED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Redis's evictionTimeProc: an eviction that ran out of its time budget
/// goes on from the shard's inbox (after the work already queued) until the
/// process is under the limit; queues one job at a time.
pub fn schedule_eviction(shard: usize) {
    if EVICTION_QUEUED.with(|q| q.replace(true)) {
        return;
    }
    send(
        shard,
        Box::new(|| {
            EVICTION_QUEUED.with(|q| q.set(false));
            if crate::keyspace::evict::over_limit() {
                with_shard(|s| s.evict());
            }
        }),
    );
}

/// Asks `shard` to evict its idler keys (one queued request at a time).
fn request_eviction(shard: usize) {
    if !crate::keyspace::evict::begin_request(shard) {
        return;
    }
    send(
        shard,
        Box::new(move || {
            crate::keyspace::evict::end_request(shard);
            if crate::keyspace::evict::over_limit() {
                with_shard(|s| s.evict_as(true));
            }
        }),
    );
}

thread_local! {
    static SHARD: RefCell<Option<Shard>> = const { RefCell::new(None) };
    static SHARD_ID: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

pub fn install_shard(s: Shard) {
    SHARD_ID.with(|i| i.set(s.id));
    SHARD.with(|c| *c.borrow_mut() = Some(s));
}

/// The id of the shard running on this thread.
#[inline]
pub fn shard_id() -> usize {
    SHARD_ID.with(|i| i.get())
}

/// Like `with_shard`, but None instead of a panic when the shard is already borrowed
/// (a guard dropped while its shard is in use).
pub fn try_with_shard<R>(f: impl FnOnce(&mut Shard) -> R) -> Option<R> {
    SHARD.with(|c| {
        let mut b = c.try_borrow_mut().ok()?;
        b.as_mut().map(f)
    })
}

/// What a handler sees: the owning shard, the client's db, the command's time (ms).
pub struct Ctx<'a> {
    pub shard: &'a mut Shard,
    pub db: usize,
    pub now: u64,
}

impl Ctx<'_> {
    #[inline]
    pub fn db(&mut self) -> &mut Db {
        &mut self.shard.dbs[self.db]
    }

    /// notifyKeyspaceEvent: `event` (Redis's name) of `class` on `key`.
    #[inline]
    pub fn notify(&self, class: u32, event: &'static str, key: &[u8]) {
        notify::note(self.db, class, event, key);
    }

    /// Redis's lookupKeyRead: lazy expiry, the access clock, keyspace hit/miss counters.
    #[inline]
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<&crate::keyspace::Entry> {
        self.lookup_read_with(key, false)
    }

    /// lookupKeyReadWithFlags: with `notouch` (LOOKUP_NOTOUCH) the access clock is left alone.
    #[inline]
    pub fn lookup_read_with(&mut self, key: &[u8], notouch: bool) -> Option<&crate::keyspace::Entry> {
        let (now, dbi) = (self.now, self.db);
        let Shard { dbs, stats, .. } = &mut *self.shard;
        let db = &mut dbs[dbi];
        let e = if notouch { db.peek(key, now) } else { db.lookup_read(key, now) };
        if e.is_some() {
            stats.keyspace_hits += 1;
        } else {
            stats.keyspace_misses += 1;
            notify::note(dbi, notify::NOTIFY_KEY_MISS, "keymiss", key);
        }
        e
    }
}

/// Runs `f` with this thread's shard. Must not be nested.
#[inline]
pub fn with_shard<R>(f: impl FnOnce(&mut Shard) -> R) -> R {
    SHARD.with(|c| {
        let mut b = c.borrow_mut();
        let s = b.as_mut().expect("with_shard called off a shard thread");
        f(s)
    })
}

/// Process-wide state shared by all shards. Nothing here is on the per-command path
/// except atomics that are read (not written) per command.
pub struct Runtime {
    pub nshards: usize,
    pub inboxes: Vec<Inbox>,
    pub config: RwLock<crate::config::Config>,
    pub next_client_id: AtomicU64,
    pub connected_clients: AtomicUsize,
    pub shutting_down: AtomicBool,
    pub start_ms: u64,
    pub lastsave: AtomicU64,
    /// CLIENT PAUSE: until when (ms) and whether only writes are paused.
    pub pause_until: AtomicU64,
    pub pause_writes_only: AtomicBool,
    /// Number of MONITOR clients; commands are fed to them only when non-zero.
    pub monitors: AtomicUsize,
    pub requirepass: RwLock<Option<Vec<u8>>>,
    pub debug_mode: AtomicUsize,
    pub timeout_secs: AtomicU64,
    pub maxclients: AtomicU64,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn init(rt: Runtime) -> &'static Runtime {
    let _ = RUNTIME.set(rt);
    rt_ref()
}

#[inline]
pub fn rt_ref() -> &'static Runtime {
    RUNTIME.get().expect("runtime not initialised")
}

#[inline]
pub fn nshards() -> usize {
    rt_ref().nshards
}

/// Sends a job to another shard's inbox.
pub fn send(shard: usize, job: Job) {
    rt_ref().inboxes[shard].push(job);
}

/// Runs `f` on another shard and blocks this thread until it answers, for
/// code that cannot await (a Lua script's `redis.call` on a key another shard
/// owns). Only a caller holding every shard's lock uses it, so the target is
/// never itself blocked waiting for this thread; `None` after `timeout` (the
/// job is then skipped if it has not started) or if the job panicked.
pub fn call_blocking<R, F>(shard: usize, timeout: std::time::Duration, f: F) -> Option<R>
where
    R: Send + 'static,
    F: FnOnce(&mut Shard) -> R + Send + 'static,
{
    use std::sync::{Arc, Condvar, Mutex};
    enum State<R> {
        Waiting,
        Running,
        Done(Option<R>),
        Abandoned,
    }
    let slot = Arc::new((Mutex::new(State::Waiting), Condvar::new()));
    let theirs = slot.clone();
    rt_ref().inboxes[shard].push_now(Box::new(move || {
        {
            let mut st = theirs.0.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(*st, State::Abandoned) {
                return;
            }
            *st = State::Running;
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_shard(|s| {
                let r = f(s);
                s.after_write();
                r
            })
        }))
        .ok();
        *theirs.0.lock().unwrap_or_else(|e| e.into_inner()) = State::Done(r);
        theirs.1.notify_all();
    }));
    let deadline = std::time::Instant::now() + timeout;
    let mut st = slot.0.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match std::mem::replace(&mut *st, State::Waiting) {
            State::Done(r) => return r,
            State::Running => *st = State::Running,
            State::Waiting | State::Abandoned => {
                let now = std::time::Instant::now();
                if now >= deadline {
                    *st = State::Abandoned;
                    return None;
                }
            }
        }
        let wait = deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(std::time::Duration::from_millis(1));
        st = slot.1.wait_timeout(st, wait).unwrap_or_else(|e| e.into_inner()).0;
    }
}

/// Runs `f` on every shard and collects the results in shard order (an error
/// if a shard's job panicked: the caller answers it, the shard lives on).
pub async fn broadcast<R, F>(f: F) -> Result<Vec<R>, tx::HopLost>
where
    R: Send + 'static,
    F: Fn(&mut Shard) -> R + Send + Sync + Clone + 'static,
{
    let n = nshards();
    let me = shard_id();
    let mut rxs = Vec::with_capacity(n);
    for s in 0..n {
        if s == me {
            rxs.push(None);
            continue;
        }
        let (tx, rx) = reply::channel();
        let g = f.clone();
        send(
            s,
            Box::new(move || {
                let r = with_shard(|sh| g(sh));
                tx.send(r);
            }),
        );
        rxs.push(Some(rx));
    }
    let mine = with_shard(|sh| f(sh));
    let mut out = Vec::with_capacity(n);
    let mut mine = Some(mine);
    for rx in rxs {
        match rx {
            None => out.push(mine.take().expect("own result")),
            Some(rx) => out.push(rx.await.map_err(|_| tx::HopLost)?),
        }
    }
    Ok(out)
}

pub fn next_client_id() -> u64 {
    rt_ref().next_client_id.fetch_add(1, Ordering::Relaxed)
}
