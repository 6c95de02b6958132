//! maxmemory eviction, as Redis's evict.c: approximated LRU / LFU / TTL
//! through an eviction pool of [`EVPOOL_SIZE`] candidates refilled by
//! sampling `maxmemory-samples` keys per database, or random keys.
//!
//! **The budget is one pool for the process.** The figure compared with
//! `maxmemory` is the counting allocator's process-wide `used_memory`
//! (`util::alloc::used_memory_exceeds`: exact near the limit, a couple of
//! loads away from it) minus `mem_not_counted_for_evict`. Each shard
//! evicts only its own keys, before running a command on them, whenever the
//! process is over budget (Redis's performEvictions in processCommand); the
//! shard cron does the same every 100 ms, so idle shards give back their
//! share too. There is no fixed per-shard quota: a shard whose keys grow may
//! use room the others leave unused, and since the slots spread keys evenly
//! over shards, so do the evictions. While several shards evict at once each
//! re-reads the shared figure every 16 keys and stops once the process is
//! back under the limit, so together they do not free much more than the
//! excess.

use super::access;
use super::db::Db;
use crate::util::alloc;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::AcqRel, Ordering::Relaxed, Ordering::Release};

/// shared.oomerr, byte for byte.
pub const OOM_ERR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// The most a shard may be over the budget and still leave the eviction to
/// a shard with idler keys (about one pipelined batch of small writes).
const DEFER_MAX: u64 = 4 << 10;

/// Redis's EVPOOL_SIZE.
pub const EVPOOL_SIZE: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    fn from_u8(v: u8) -> Policy {
        use Policy::*;
        [
            NoEviction,
            AllkeysLru,
            AllkeysLfu,
            AllkeysRandom,
            VolatileLru,
            VolatileLfu,
            VolatileRandom,
            VolatileTtl,
        ][(v as usize).min(7)]
    }

    /// MAXMEMORY_FLAG_ALLKEYS.
    fn allkeys(self) -> bool {
        matches!(self, Policy::AllkeysLru | Policy::AllkeysLfu | Policy::AllkeysRandom)
    }
}

static MAXMEMORY: AtomicU64 = AtomicU64::new(0);
static POLICY: AtomicU8 = AtomicU8::new(Policy::NoEviction as u8);
static SAMPLES: AtomicU32 = AtomicU32::new(5);
static TENACITY: AtomicU32 = AtomicU32::new(10);
/// Bytes the limit does not count (Redis: replica output buffers and the AOF
/// buffer). Whatever holds such buffers adds and removes them here.
pub static NOT_COUNTED: AtomicU64 = AtomicU64::new(0);

/// INFO stats `evicted_keys`.
static EVICTED_KEYS: AtomicU64 = AtomicU64::new(0);
/// Over the limit since this wall-clock ms (0 = not): `current_eviction_exceeded_time`.
static EXCEEDED_SINCE: AtomicU64 = AtomicU64::new(0);
/// Total ms spent over the limit: `total_eviction_exceeded_time`.
static EXCEEDED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Applies `maxmemory`, `maxmemory-policy`, `maxmemory-samples`, `maxmemory-eviction-tenacity`.
pub fn configure(maxmemory: u64, policy: Policy, samples: u32, tenacity: u32) {
    MAXMEMORY.store(maxmemory, Relaxed);
    POLICY.store(policy as u8, Relaxed);
    SAMPLES.store(samples.max(1), Relaxed);
    TENACITY.store(tenacity.min(100), Relaxed);
}

#[inline]
pub fn maxmemory() -> u64 {
    MAXMEMORY.load(Relaxed)
}

pub fn policy() -> Policy {
    Policy::from_u8(POLICY.load(Relaxed))
}

pub fn evicted_keys() -> u64 {
    EVICTED_KEYS.load(Relaxed)
}

/// (total, current) ms over the limit, for INFO stats.
pub fn exceeded_ms(now_ms: u64) -> (u64, u64) {
    let since = EXCEEDED_SINCE.load(Relaxed);
    let cur = if since == 0 { 0 } else { now_ms.saturating_sub(since) };
    (EXCEEDED_TOTAL.load(Relaxed) + cur, cur)
}

/// CONFIG RESETSTAT.
pub fn reset_stats() {
    EVICTED_KEYS.store(0, Relaxed);
    EXCEEDED_TOTAL.store(0, Relaxed);
    EXCEEDED_SINCE.store(0, Relaxed);
}

/// The memory eviction compares with `maxmemory` (getMaxmemoryState's `used`):
/// exact, summed over the allocator's per-thread counters.
pub fn used() -> u64 {
    (alloc::used_memory() as u64).saturating_sub(NOT_COUNTED.load(Relaxed))
}

/// Whether maxmemory is set and the process is over it: the check before
/// every command (one load while maxmemory is unset; a few while the
/// process is far from the limit; the exact sum near it).
#[inline]
pub fn over_limit() -> bool {
    let m = maxmemory();
    m != 0 && alloc::used_memory_exceeds(m.saturating_add(NOT_COUNTED.load(Relaxed)) as usize)
}

/// Shards whose last eviction attempt found nothing they may evict (bit
/// `shard % 64`): the process is out of memory for `denyoom` commands when
/// it is over the limit and every shard failed.
static FAILING: AtomicU64 = AtomicU64::new(0);

/// Records a shard's last eviction outcome.
pub fn note_outcome(shard: usize, o: Outcome) {
    let bit = 1u64 << (shard % 64);
    if o == Outcome::Fail {
        if FAILING.load(Relaxed) & bit == 0 {
            FAILING.fetch_or(bit, Relaxed);
        }
    } else if FAILING.load(Relaxed) & bit != 0 {
        FAILING.fetch_and(!bit, Relaxed);
    }
}

/// Whether every shard's last attempt failed.
pub fn all_failing(nshards: usize) -> bool {
    let want = if nshards >= 64 { u64::MAX } else { (1u64 << nshards) - 1 };
    FAILING.load(Relaxed) & want == want
}

/// Over the limit with nothing evictable (`noeviction`, or every shard's
/// last attempt failed): the OOM rule's condition (performEvictions ==
/// EVICT_FAIL as processCommand sees it).
pub fn out_of_memory(nshards: usize) -> bool {
    over_limit() && (policy() == Policy::NoEviction || all_failing(nshards))
}

/// performEvictions' result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or brought under it).
    Ok,
    /// Keys were evicted but the time budget ran out before the process was
    /// under the limit: the next command (or the cron) continues.
    Running,
    /// Over the limit and nothing this shard may evict (or `noeviction`).
    Fail,
    /// Another shard (this one) holds idler keys: it is asked to evict.
    Deferred(usize),
}

/// evictionTimeLimitUs: the tenacity's time budget per call.
fn time_limit_us(tenacity: u32) -> u64 {
    if tenacity <= 10 {
        50 * tenacity as u64
    } else if tenacity < 100 {
        (500.0 * 1.15f64.powf(tenacity as f64 - 10.0)) as u64
    } else {
        u64::MAX
    }
}

struct Candidate {
    idle: u64,
    db: usize,
    key: Box<[u8]>,
}

#[derive(Default)]
struct State {
    /// Ascending by `idle`: the best candidate is last (EvictionPoolLRU).
    pool: Vec<Candidate>,
    /// Round robin over databases for the random policies (`next_db`).
    next_db: usize,
    rng: u64,
}

thread_local! {
    /// The shard's pool: a shard evicts only its own keys.
    static STATE: RefCell<State> = RefCell::new(State { rng: seed(), ..State::default() });
}

/// A per-thread sampling seed (the address of a thread-local differs per thread).
fn seed() -> u64 {
    thread_local!(static MARK: u8 = const { 0 });
    let addr = MARK.with(|m| m as *const u8 as u64);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (addr ^ t.rotate_left(17)) | 1
}

/// evictionPoolPopulate's insertion: keep the EVPOOL_SIZE greatest idles.
fn pool_insert(pool: &mut Vec<Candidate>, idle: u64, db: usize, key: &[u8]) {
    // After candidates of the same score: the fresher sample goes first (as
    // Redis's idle, which grows with the time of sampling).
    let k = pool.iter().position(|c| c.idle > idle).unwrap_or(pool.len());
    if k == 0 && pool.len() >= EVPOOL_SIZE {
        // Worse than every candidate of a full pool.
        return;
    }
    if pool.iter().any(|c| c.db == db && &*c.key == key) {
        return;
    }
    pool.insert(k, Candidate { idle, db, key: key.into() });
    if pool.len() > EVPOOL_SIZE {
        pool.remove(0);
    }
}

/// The idle score of a sampled key: greater = evict first. For LRU it is
/// the last access second counted backwards, not the idle time: the same
/// order as Redis's idle at any one instant, but a score does not age, so
/// candidates sampled at different times (in the pool, and across shards in
/// `BEST`) compare right.
fn score(policy: Policy, e: &super::table::Entry, expire_at: u64, now_ms: u64) -> u64 {
    match policy {
        Policy::AllkeysLru | Policy::VolatileLru => {
            let accessed = (now_ms / 1000).saturating_sub(super::db::idle_secs(e.lru(), now_ms));
            (u64::MAX >> 1) - accessed
        }
        Policy::AllkeysLfu | Policy::VolatileLfu => 255 - access::lfu_counter(e.lfu(), now_ms) as u64,
        _ => u64::MAX - expire_at,
    }
}

/// Picks the next key to evict on this shard (its db and name), or None.
/// What [`pick`] found.
enum Pick {
    Key(usize, Box<[u8]>),
    /// Another shard's best candidate is idler than ours: it should evict.
    Defer(usize),
    Nothing,
}

/// Each shard's best candidate score after its last pool refill (0 = none):
/// a shard evicts only when its own best is at least as idle as every other
/// shard's, so the shards together approximate one global pool. Without it
/// the shard receiving the most commands evicts the most, and under a skewed
/// load it gave up warm keys while another shard kept cold ones (measured:
/// allkeys-lru 6 points below Redis's hit ratio at 2 shards).
static BEST: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// Per shard: another shard asked it to evict and the request is queued.
static REQUESTED: [AtomicBool; 64] = [const { AtomicBool::new(false) }; 64];

/// Marks a request to `shard` as queued; false if one already is.
pub fn begin_request(shard: usize) -> bool {
    !REQUESTED[shard % 64].swap(true, AcqRel)
}

/// `shard` took its queued request.
pub fn end_request(shard: usize) {
    REQUESTED[shard % 64].store(false, Release);
}

/// The other shard with the idlest published candidate, if idler than
/// `mine`, whether or not a request to it is already queued: a shard busy
/// with a pipeline takes requests late, and evicting our fresher keys in the
/// meantime emptied the other shards of their newest writes while the busy
/// one kept keys seconds older. What bounds the excess meanwhile is
/// `DEFER_MAX`, past which every shard evicts its own.
fn idler_shard(me: usize, nshards: usize, mine: u64) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (j, slot) in BEST.iter().enumerate().take(nshards.min(64)) {
        if j == me % 64 {
            continue;
        }
        let b = slot.load(Relaxed);
        if b > mine && best.is_none_or(|(_, x)| b > x) {
            best = Some((j, b));
        }
    }
    best.map(|(j, _)| j)
}

fn pick(dbs: &[Db], policy: Policy, now_ms: u64, may_delete: &dyn Fn(usize, &[u8]) -> bool, me: usize, nshards: usize, force: bool) -> Pick {
    let allkeys = policy.allkeys();
    STATE.with(|st| {
        let mut st = st.borrow_mut();
        let st = &mut *st;
        let mut rng = st.rng;
        let mut rand = || crate::util::rand::next(&mut rng);
        let r = if matches!(policy, Policy::AllkeysRandom | Policy::VolatileRandom) {
            // Random policies need no comparison between shards.
            let mut found = None;
            for _ in 0..dbs.len() {
                st.next_db = st.next_db.wrapping_add(1);
                let j = st.next_db % dbs.len();
                let db = &dbs[j];
                let n = if allkeys { db.len() } else { db.expires_len() };
                if n == 0 {
                    continue;
                }
                // A few tries past keys an in-flight transaction holds.
                for _ in 0..8 {
                    if let Some(k) = db.random_key(!allkeys, &mut rand) {
                        if may_delete(j, &k) {
                            found = Some((j, k));
                            break;
                        }
                    }
                }
                if found.is_some() {
                    break;
                }
            }
            found.map_or(Pick::Nothing, |(d, k)| Pick::Key(d, k))
        } else {
            let samples = SAMPLES.load(Relaxed) as usize;
            let mut found = None;
            // Bounded refills: a pool of only held or vanished keys must not spin.
            for _ in 0..16 {
                let mut total = 0;
                for (i, db) in dbs.iter().enumerate() {
                    let n = if allkeys { db.len() } else { db.expires_len() };
                    if n == 0 {
                        continue;
                    }
                    total += n;
                    db.sample(!allkeys, samples, &mut rand, |k, e, at| {
                        let idle = score(policy, e, at, now_ms);
                        pool_insert(&mut st.pool, idle, i, k);
                    });
                }
                if total == 0 {
                    break;
                }
                let mine = st.pool.last().map_or(0, |c| c.idle.max(1));
                BEST[me % 64].store(mine, Relaxed);
                if !force && nshards > 1 {
                    if let Some(j) = idler_shard(me, nshards, mine) {
                        st.rng = rng;
                        return Pick::Defer(j);
                    }
                }
                while let Some(c) = st.pool.pop() {
                    let Some((e, at)) = dbs[c.db].held(!allkeys, &c.key) else { continue };
                    // Accessed since it was sampled: no longer the candidate it
                    // was (Redis evicts it anyway; under a skewed load that threw
                    // out hot keys sampled while briefly cold).
                    if score(policy, e, at, now_ms) < c.idle {
                        continue;
                    }
                    if may_delete(c.db, &c.key) {
                        found = Some((c.db, c.key));
                        break;
                    }
                }
                if found.is_some() {
                    break;
                }
            }
            if found.is_none() {
                BEST[me % 64].store(0, Relaxed);
            }
            found.map_or(Pick::Nothing, |(d, k)| Pick::Key(d, k))
        };
        st.rng = rng;
        r
    })
}

/// performEvictions for one shard: while the process is over `maxmemory`,
/// evict this shard's keys by the policy. `may_delete(db, key)` refuses keys
/// held by an in-flight transaction; every eviction goes through
/// [`Db::evict`] (the write hook's `Evicted`) and is reported to `on_evict`
/// (keyspace notifications).
///
/// `me` is the shard's id among `nshards`; an LRU / LFU / TTL eviction
/// defers to another shard holding an idler candidate ([`Outcome::Deferred`])
/// unless `force` (the eviction that shard was asked for evicts at least one
/// key of its own, so deferrals cannot bounce).
#[allow(clippy::too_many_arguments)]
pub fn perform(
    dbs: &mut [Db],
    me: usize,
    nshards: usize,
    mut force: bool,
    now_ms: u64,
    may_delete: &dyn Fn(usize, &[u8]) -> bool,
    on_evict: &mut dyn FnMut(usize, &[u8]),
) -> Outcome {
    let max = maxmemory();
    if max == 0 {
        return Outcome::Ok;
    }
    let used = used();
    if used <= max {
        note_exceeded(false, now_ms);
        return Outcome::Ok;
    }
    let policy = policy();
    if policy == Policy::NoEviction {
        note_exceeded(true, now_ms);
        return Outcome::Fail;
    }
    let tofree = (used - max) as i64;
    let limit = time_limit_us(TENACITY.load(Relaxed));
    let t0 = std::time::Instant::now();
    let mut freed: i64 = 0;
    let mut keys_freed = 0u64;
    let mut result = Outcome::Ok;
    // A deferral leaves this command running over the budget until the other
    // shard evicts: fine for the few bytes one command adds, not for a burst
    // (new connections, a big value), which is freed here and now.
    let local = used - max > DEFER_MAX;
    while freed < tofree {
        let (dbi, key) = match pick(dbs, policy, now_ms, may_delete, me, nshards, force || local) {
            Pick::Key(d, k) => (d, k),
            Pick::Defer(j) => {
                result = Outcome::Deferred(j);
                break;
            }
            Pick::Nothing => {
                // cant_free: nothing (more) this shard may evict.
                result = Outcome::Fail;
                break;
            }
        };
        force = false;
        let before = alloc::thread_net() as i64;
        dbs[dbi].evict(&key);
        freed += before - alloc::thread_net() as i64;
        EVICTED_KEYS.fetch_add(1, Relaxed);
        on_evict(dbi, &key);
        keys_freed += 1;
        if keys_freed.is_multiple_of(16) {
            // Other shards free at the same time, and lazily freed values
            // leave later: the shared figure says when to stop.
            if !over_limit() {
                break;
            }
            if t0.elapsed().as_micros() as u64 > limit {
                result = Outcome::Running;
                break;
            }
        }
    }
    if result == Outcome::Fail && !over_limit() {
        // Other shards' evictions or the lazyfree thread brought us under.
        result = Outcome::Ok;
    }
    note_exceeded(result != Outcome::Ok || over_limit(), now_ms);
    result
}

/// stat_last_eviction_exceeded_time / stat_total_eviction_exceeded_time.
fn note_exceeded(over: bool, now_ms: u64) {
    let since = EXCEEDED_SINCE.load(Relaxed);
    if over {
        if since == 0 {
            let _ = EXCEEDED_SINCE.compare_exchange(0, now_ms.max(1), Relaxed, Relaxed);
        }
    } else if since != 0 && EXCEEDED_SINCE.compare_exchange(since, 0, Relaxed, Relaxed).is_ok() {
        EXCEEDED_TOTAL.fetch_add(now_ms.saturating_sub(since), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_the_sixteen_idlest_in_ascending_order() {
        let mut pool = Vec::new();
        for i in 0..40u64 {
            pool_insert(&mut pool, (i * 7919) % 40, 0, format!("k{i}").as_bytes());
        }
        assert_eq!(pool.len(), EVPOOL_SIZE);
        let idles: Vec<u64> = pool.iter().map(|c| c.idle).collect();
        assert_eq!(idles, (24..40).collect::<Vec<u64>>());
        // A candidate below a full pool's minimum is not taken.
        pool_insert(&mut pool, 3, 0, b"low");
        assert!(!pool.iter().any(|c| &*c.key == b"low"));
    }

    #[test]
    fn of_equal_scores_the_fresher_sample_is_evicted_first() {
        let mut pool = Vec::new();
        pool_insert(&mut pool, 5, 0, b"older");
        pool_insert(&mut pool, 5, 0, b"fresher");
        pool_insert(&mut pool, 4, 0, b"less idle");
        let order: Vec<&[u8]> = pool.iter().rev().map(|c| &*c.key).collect();
        assert_eq!(order, [&b"fresher"[..], b"older", b"less idle"]);
    }

    #[test]
    fn tenacity_time_limits_follow_redis() {
        assert_eq!(time_limit_us(10), 500);
        assert_eq!(time_limit_us(0), 0);
        assert_eq!(time_limit_us(11), 575);
        assert_eq!(time_limit_us(100), u64::MAX);
    }
}
