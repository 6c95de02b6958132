//! `client-output-buffer-limit`, as networking.c's checkClientOutputBufferLimits
//! and closeClientOnOutputBufferLimitReached: a client whose pending output
//! reaches the hard limit, or stays at or above the soft limit for more than
//! the soft seconds, is closed.
//!
//! Tessera keeps a connection's pending replies in one contiguous buffer, not
//! in Redis's fixed 16 KiB client buffer plus a reply list. The limits count
//! what Redis would hold in its reply list: the pending bytes beyond the
//! first [`REPLY_CHUNK`] (so, as in Redis, a reply that fits in the fixed
//! buffer never trips a limit). The same figures are CLIENT LIST's obl/oll/omem.

use std::cell::Cell;

/// Redis's PROTO_REPLY_CHUNK_BYTES: the size of its fixed per-client reply buffer.
pub const REPLY_CHUNK: usize = 16 * 1024;

/// The classes of `client-output-buffer-limit` (indexes into the config value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientClass {
    #[default]
    Normal = 0,
    Replica = 1,
    Pubsub = 2,
}

/// Pending output split as Redis would hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObufFigures {
    /// Bytes in the fixed reply buffer (CLIENT LIST `obl`).
    pub obl: usize,
    /// 16 KiB reply-list nodes needed for the rest (`oll`).
    pub oll: usize,
    /// Bytes beyond the fixed buffer (`omem`): what the limits compare.
    pub omem: usize,
}

pub fn figures(pending: usize) -> ObufFigures {
    let obl = pending.min(REPLY_CHUNK);
    let omem = pending - obl;
    ObufFigures {
        obl,
        oll: omem.div_ceil(REPLY_CHUNK),
        omem,
    }
}

/// The limits of `class` in force: (hard bytes, soft bytes, soft seconds).
pub fn limits(class: ClientClass) -> (u64, u64, i64) {
    crate::runtime::rt_ref()
        .config
        .read()
        .map(|c| c.client_output_buffer_limit(class as usize))
        .unwrap_or((0, 0, 0))
}

/// True when a client with `pending` output bytes must be closed at
/// `now_secs` (unix seconds) under `limits`. `soft_since` is the client's
/// soft-limit clock (Redis's obuf_soft_limit_reached_time), updated as a side
/// effect; unlike Redis it also restarts when the output drains.
pub fn reached(limits: (u64, u64, i64), soft_since: &Cell<Option<u64>>, pending: usize, now_secs: u64) -> bool {
    let used = figures(pending).omem as u64;
    let (hard, soft, soft_secs) = limits;
    if hard != 0 && used >= hard {
        return true;
    }
    if soft != 0 && used >= soft {
        match soft_since.get() {
            None => {
                soft_since.set(Some(now_secs));
                false
            }
            Some(t) => now_secs.saturating_sub(t) as i64 > soft_secs,
        }
    } else {
        soft_since.set(None);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_split_like_redis_buffer_and_list() {
        assert_eq!(figures(0), ObufFigures { obl: 0, oll: 0, omem: 0 });
        assert_eq!(figures(100), ObufFigures { obl: 100, oll: 0, omem: 0 });
        assert_eq!(
            figures(REPLY_CHUNK + 1),
            ObufFigures {
                obl: REPLY_CHUNK,
                oll: 1,
                omem: 1
            }
        );
        assert_eq!(
            figures(3 * REPLY_CHUNK),
            ObufFigures {
                obl: REPLY_CHUNK,
                oll: 2,
                omem: 2 * REPLY_CHUNK
            }
        );
    }

    #[test]
    fn hard_limit_closes_at_once() {
        let c = Cell::new(None);
        let l = (1 << 20, 0, 0);
        assert!(!reached(l, &c, REPLY_CHUNK + (1 << 20) - 1, 100));
        assert!(reached(l, &c, REPLY_CHUNK + (1 << 20), 100));
        assert!(!reached(l, &c, REPLY_CHUNK, 100), "fits the fixed buffer");
    }

    #[test]
    fn soft_limit_needs_more_than_soft_seconds() {
        let c = Cell::new(None);
        let l = (0, 1000, 2);
        let big = REPLY_CHUNK + 5000;
        assert!(!reached(l, &c, big, 100)); // first seen
        assert!(!reached(l, &c, big, 102)); // elapsed 2 <= 2
        assert!(reached(l, &c, big, 103));
        // dropping below the soft limit restarts the clock
        let c = Cell::new(None);
        assert!(!reached(l, &c, big, 100));
        assert!(!reached(l, &c, REPLY_CHUNK, 101));
        assert!(!reached(l, &c, big, 103));
        assert!(!reached(l, &c, big, 105));
        assert!(reached(l, &c, big, 106));
    }

    #[test]
    fn zero_limits_never_close() {
        let c = Cell::new(None);
        assert!(!reached((0, 0, 0), &c, 1 << 30, 1));
        assert!(!reached((0, 0, 0), &c, 1 << 30, 1000));
    }
}
