//! INFO's `instantaneous_*` figures, sampled like Redis's `trackInstantaneousMetric`:
//! every 100 ms (each shard's cron) the shard's cumulative counters are
//! turned into a per-second rate kept in a ring of `STATS_METRIC_SAMPLES`;
//! the figure is the ring's mean. Each shard keeps its own ring in a
//! thread-local (nothing added per command); INFO sums the shards' means,
//! which equals the mean of the summed rates since all rings tick together.

use std::cell::RefCell;
use std::sync::atomic::AtomicUsize;

/// Redis's STATS_METRIC_SAMPLES.
const SAMPLES: usize = 16;

pub const OPS: usize = 0;
pub const NET_INPUT: usize = 1;
pub const NET_OUTPUT: usize = 2;
const METRICS: usize = 3;

#[derive(Default, Clone, Copy)]
struct Metric {
    last_time_ms: u64,
    last_count: u64,
    samples: [u64; SAMPLES],
    idx: usize,
}

thread_local! {
    static RING: RefCell<[Metric; METRICS]> = RefCell::new([Metric::default(); METRICS]);
}

/// Clients blocked in a blocking command. Tessera has no blocking command yet,
/// so nothing increments it; INFO's `blocked_clients` reads it so that the
/// blocking implementation only has to count here.
pub static BLOCKED_CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// One sample of this shard's cumulative `counts` (indexed by OPS, NET_INPUT, NET_OUTPUT).
pub fn track(counts: [u64; METRICS], now_ms: u64) {
    RING.with(|r| {
        for (m, current) in r.borrow_mut().iter_mut().zip(counts) {
            let t = now_ms.saturating_sub(m.last_time_ms);
            // A counter below the last reading was reset (CONFIG RESETSTAT).
            let ops = current.saturating_sub(m.last_count);
            m.samples[m.idx] = if t > 0 && m.last_time_ms > 0 { ops * 1000 / t } else { 0 };
            m.idx = (m.idx + 1) % SAMPLES;
            m.last_time_ms = now_ms;
            m.last_count = current;
        }
    });
}

/// Mean of this shard's samples per metric (per second).
pub fn instantaneous() -> [u64; METRICS] {
    RING.with(|r| {
        let r = r.borrow();
        std::array::from_fn(|i| r[i].samples.iter().sum::<u64>() / SAMPLES as u64)
    })
}

/// Redis's resetServerStats: forget the samples; the next reading is the new baseline.
pub fn reset(now_ms: u64) {
    RING.with(|r| {
        for m in r.borrow_mut().iter_mut() {
            *m = Metric {
                last_time_ms: now_ms,
                ..Metric::default()
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_the_mean_of_the_ring() {
        reset(1000);
        // 50 ops in each of 8 ticks of 100 ms: 500/s for half the ring.
        for i in 1..=8u64 {
            track([i * 50, i * 1024, 0], 1000 + i * 100);
        }
        assert_eq!(instantaneous(), [250, 5120, 0]);
        // Idle for a full ring: back to zero.
        for i in 9..=24u64 {
            track([400, 8 * 1024, 0], 1000 + i * 100);
        }
        assert_eq!(instantaneous(), [0, 0, 0]);
        // A reset counter does not produce a huge rate.
        track([0, 0, 0], 3600);
        assert_eq!(instantaneous(), [0, 0, 0]);
    }
}
