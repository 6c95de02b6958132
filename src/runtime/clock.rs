//! A cheap clock for per-command latency statistics. On x86_64 the TSC
//! (`rdtsc`, a few ns) is read instead of `clock_gettime` (tens of ns through
//! the vDSO on VMs); ticks are converted to nanoseconds with a ratio
//! calibrated once at start-up. `wall_ms` extrapolates the wall clock from it.

use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds per tick, as fixed point with 16 fractional bits.
static NS_PER_TICK_Q16: OnceLock<u64> = OnceLock::new();

#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        fallback_ns()
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fallback_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Measures the tick rate against the monotonic clock (about 10 ms, once).
pub fn calibrate() {
    NS_PER_TICK_Q16.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1 << 16;
        }
        let (t0, i0) = (ticks(), Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (t1, ns) = (ticks(), i0.elapsed().as_nanos() as u64);
        let dt = t1.wrapping_sub(t0).max(1);
        ((ns as u128) << 16).checked_div(dt as u128).unwrap_or(1 << 16) as u64
    });
}

/// Nanoseconds between two `ticks()` readings.
#[inline]
pub fn elapsed_ns(start: u64) -> u64 {
    let q = *NS_PER_TICK_Q16.get_or_init(|| 1 << 16);
    ((ticks().wrapping_sub(start) as u128 * q as u128) >> 16) as u64
}

thread_local! {
    /// (wall µs, ticks) of the last real clock read on this thread.
    static WALL_BASE: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Ticks between real wall-clock reads (about 20 ms), once calibrated.
fn rebase_ticks() -> u64 {
    let q = *NS_PER_TICK_Q16.get_or_init(|| 1 << 16);
    ((20_000_000u128 << 16) / q.max(1) as u128) as u64
}

/// The wall clock in Unix ms for one command (Redis's call() takes the time
/// per command): extrapolated from the TSC between real reads at most 20 ms
/// apart, so a clock step shows within 20 ms and a read costs a few ns.
#[inline]
pub fn wall_ms() -> u64 {
    let t = ticks();
    let (us, t0) = WALL_BASE.with(|b| b.get());
    let dt = t.wrapping_sub(t0);
    if us == 0 || dt > rebase_ticks() {
        let now = super::now_us();
        WALL_BASE.with(|b| b.set((now, t)));
        return now / 1000;
    }
    let q = *NS_PER_TICK_Q16.get_or_init(|| 1 << 16);
    let ns = ((dt as u128 * q as u128) >> 16) as u64;
    (us + ns / 1000) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_command_wall_clock_follows_the_real_one() {
        calibrate();
        for _ in 0..50 {
            let (a, b) = (wall_ms(), crate::runtime::now_ms());
            assert!(a.abs_diff(b) <= 2, "wall_ms {a} vs now_ms {b}");
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
    }

    #[test]
    fn calibrated_ticks_track_wall_time() {
        calibrate();
        let t = ticks();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let ns = elapsed_ns(t);
        assert!((15_000_000..200_000_000).contains(&ns), "20 ms measured as {ns} ns");
    }
}
