//! The access clock of every entry, as Redis keeps it in `robj.lru`: the LRU
//! clock (seconds) under LRU and other policies, or under an LFU policy the
//! logarithmic access counter with its decay time (evict.c: LFULogIncr,
//! LFUDecrAndReturn). OBJECT IDLETIME / FREQ read it; eviction will.
//!
//! The policy is process-wide (CONFIG SET maxmemory-policy / lfu-log-factor /
//! lfu-decay-time store it here), read with one relaxed load per access.

use super::db::lru_clock;
use super::table::Entry;
use super::value::Item;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Redis's LFU_INIT_VAL: the counter of a new object.
pub const LFU_INIT_VAL: u32 = 5;

static LFU: AtomicBool = AtomicBool::new(false);
static LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Applies `maxmemory-policy` (LFU or not), `lfu-log-factor`, `lfu-decay-time`.
pub fn configure(lfu: bool, log_factor: u32, decay_time: u32) {
    LFU.store(lfu, Ordering::Relaxed);
    LOG_FACTOR.store(log_factor, Ordering::Relaxed);
    DECAY_TIME.store(decay_time, Ordering::Relaxed);
}

#[inline]
pub fn lfu_policy() -> bool {
    LFU.load(Ordering::Relaxed)
}

/// LFUGetTimeInMinutes: 16 bits of minutes.
#[inline]
fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 65535) as u32
}

/// A new entry's LFU word: now, LFU_INIT_VAL.
#[inline]
pub fn lfu_init(now_ms: u64) -> u32 {
    (minutes(now_ms) << 8) | LFU_INIT_VAL
}

/// A new object's access clock (createObject): the LFU word under an LFU
/// policy, the LRU clock otherwise.
#[inline]
pub fn init(now_ms: u64) -> u32 {
    if lfu_policy() {
        lfu_init(now_ms)
    } else {
        lru_clock(now_ms)
    }
}

/// LFUDecrAndReturn: the counter after the decay of the minutes since its last access.
pub fn lfu_counter(lfu: u32, now_ms: u64) -> u32 {
    let ldt = lfu >> 8;
    let counter = lfu & 255;
    let now = minutes(now_ms);
    let elapsed = if now >= ldt { now - ldt } else { 65535 - ldt + now };
    let decay = DECAY_TIME.load(Ordering::Relaxed);
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods)
}

/// LFULogIncr: grows the counter with probability 1/((counter-5)*factor+1).
fn lfu_log_incr(counter: u32, rng: &mut u64) -> u32 {
    if counter == 255 {
        return 255;
    }
    let r = crate::util::rand::unit(rng);
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * LOG_FACTOR.load(Ordering::Relaxed) as f64 + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// Records an access (lookupKey without LOOKUP_NOTOUCH): updateLFU or the LRU clock.
#[inline]
pub fn touch(e: &mut Entry, now_ms: u64, rng: &mut u64) {
    if lfu_policy() {
        let c = lfu_log_incr(lfu_counter(e.lfu(), now_ms), rng);
        e.set_meta((minutes(now_ms) << 8) | c);
    } else {
        e.set_meta(lru_clock(now_ms));
    }
}

/// objectSetLRUOrLFU: the access clock of an object that RESTORE (IDLETIME /
/// FREQ) or an RDB file (IDLE / FREQ opcodes) describes. Under an LFU policy
/// the counter is set when given; otherwise the LRU clock is moved back by
/// the idle seconds (wrapping as Redis's 24-bit clock does).
pub fn set_hint(e: &mut Item, idle_secs: Option<u64>, freq: Option<u8>, now_ms: u64) {
    if lfu_policy() {
        if let Some(f) = freq {
            e.meta = (minutes(now_ms) << 8) | f as u32;
        }
    } else if let Some(idle) = idle_secs {
        let max = super::db::LRU_CLOCK_MAX as i64;
        let mut abs = lru_clock(now_ms) as i64 - idle.min(i64::MAX as u64 / 2) as i64;
        if abs < 0 {
            abs += max;
        }
        e.meta = (abs as u64 & max as u64) as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays_per_minute() {
        let mut rng = 42u64;
        let mut c = LFU_INIT_VAL;
        for _ in 0..1000 {
            c = lfu_log_incr(c, &mut rng);
        }
        // With factor 10, 1000 hits take the counter to about 15-20 (Redis's table: 18).
        assert!((10..=25).contains(&c), "counter {c}");
        let word = (minutes(0) << 8) | c;
        assert_eq!(lfu_counter(word, 0), c);
        assert_eq!(lfu_counter(word, 3 * 60_000), c - 3, "one point per minute with decay time 1");
        assert_eq!(lfu_counter(word, 600 * 60_000), 0);
    }

    #[test]
    fn hints_set_the_idle_time() {
        let now = 10_000_000;
        let mut e = Item::new(crate::keyspace::Value::Int(1), now);
        set_hint(&mut e, Some(100), None, now);
        assert_eq!(super::super::db::idle_secs(e.meta, now), 100);
        set_hint(&mut e, Some(20_000), None, now);
        assert_eq!(super::super::db::idle_secs(e.meta, now), 20_000, "wraps below zero");
    }
}
