//! The compact encodings' thresholds (`hash-max-listpack-*`,
//! `set-max-intset-entries`, `zset-max-listpack-*`, `list-max-listpack-size`),
//! as the types read them on every write that may convert or split.
//!
//! They are configuration, but a write must not take the configuration lock
//! (one cache line shared by every shard): CONFIG SET and start-up store the
//! values here, in relaxed atomics that writes only read.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};

static HASH_ENTRIES: AtomicUsize = AtomicUsize::new(512);
static HASH_VALUE: AtomicUsize = AtomicUsize::new(64);
static SET_INTSET: AtomicUsize = AtomicUsize::new(512);
static ZSET_ENTRIES: AtomicUsize = AtomicUsize::new(128);
static ZSET_VALUE: AtomicUsize = AtomicUsize::new(64);
static LIST_FILL: AtomicI64 = AtomicI64::new(-2);
static HLL_SPARSE_MAX: AtomicUsize = AtomicUsize::new(3000);

/// `hll-sparse-max-bytes`: a sparse HyperLogLog that would grow past it is
/// promoted to dense.
#[inline]
pub fn hll_sparse_max_bytes() -> usize {
    HLL_SPARSE_MAX.load(Relaxed)
}

pub fn set_hll_sparse_max_bytes(n: usize) {
    HLL_SPARSE_MAX.store(n, Relaxed);
}

/// The values of the directives, as the configuration holds them.
#[derive(Clone, Copy, Debug)]
pub struct EncodingConfig {
    pub hash_entries: usize,
    pub hash_value: usize,
    pub set_intset: usize,
    pub zset_entries: usize,
    pub zset_value: usize,
    pub list_fill: i64,
}

/// Publishes new thresholds (start-up, CONFIG SET); later writes use them.
pub fn configure(c: EncodingConfig) {
    HASH_ENTRIES.store(c.hash_entries, Relaxed);
    HASH_VALUE.store(c.hash_value, Relaxed);
    SET_INTSET.store(c.set_intset, Relaxed);
    ZSET_ENTRIES.store(c.zset_entries, Relaxed);
    ZSET_VALUE.store(c.zset_value, Relaxed);
    LIST_FILL.store(c.list_fill, Relaxed);
}

#[inline]
pub fn hash_entries() -> usize {
    HASH_ENTRIES.load(Relaxed)
}
#[inline]
pub fn hash_value() -> usize {
    HASH_VALUE.load(Relaxed)
}
#[inline]
pub fn set_intset_entries() -> usize {
    SET_INTSET.load(Relaxed)
}
#[inline]
pub fn zset_entries() -> usize {
    ZSET_ENTRIES.load(Relaxed)
}
#[inline]
pub fn zset_value() -> usize {
    ZSET_VALUE.load(Relaxed)
}
/// `list-max-listpack-size`: negative = a node byte budget (-1 = 4 KB ... -5 =
/// 64 KB), positive = an element count per node (within 8 KB).
#[inline]
pub fn list_fill() -> i64 {
    LIST_FILL.load(Relaxed)
}

static STREAM_NODE_MAX_BYTES: AtomicUsize = AtomicUsize::new(4096);
static STREAM_NODE_MAX_ENTRIES: AtomicUsize = AtomicUsize::new(100);

/// `stream-node-max-bytes` (0 = no limit but the listpack's own).
#[inline]
pub fn stream_node_max_bytes() -> usize {
    STREAM_NODE_MAX_BYTES.load(Relaxed)
}
/// `stream-node-max-entries` (0 = no limit).
#[inline]
pub fn stream_node_max_entries() -> usize {
    STREAM_NODE_MAX_ENTRIES.load(Relaxed)
}
pub fn set_stream_node_limits(bytes: usize, entries: usize) {
    STREAM_NODE_MAX_BYTES.store(bytes, Relaxed);
    STREAM_NODE_MAX_ENTRIES.store(entries, Relaxed);
}
