//! Persistence: the RDB format (`rdb/`), SAVE (`save.rs`: a consistent
//! snapshot of every shard written to one file) and loading dump.rdb at
//! start-up (`load.rs`: one thread parses, the owning shards decode and
//! insert).
//!
//! Layering: `rdb/` knows bytes and values only (it imports `keyspace` and
//! `util`); `save.rs` and `load.rs` add the runtime (shards, the transaction
//! layer's whole-shard locks through `exec::on_every_shard`) and the
//! configuration. Commands (SAVE, DUMP,
//! RESTORE, SHUTDOWN) and start-up (`server`) call into here; nothing here
//! imports `commands` or `server`.

pub mod aof;
pub mod load;
pub mod rdb;
pub mod rewrite;
pub mod save;
pub mod snapshot;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// SAVE commands run (Redis's stat_rdb_saves: counted when a save starts).
pub static SAVES: AtomicU64 = AtomicU64::new(0);
/// Redis's lastbgsave_status: set to ok by every successful save; a failed
/// background save makes it err.
pub static LAST_SAVE_OK: AtomicBool = AtomicBool::new(true);

/// `stop-writes-on-bgsave-error yes` with save points configured (the
/// rest of writeCommandsDeniedByDiskError is `LAST_SAVE_OK`).
pub(crate) static STOP_WRITES: AtomicBool = AtomicBool::new(false);

static COMPRESSION: AtomicBool = AtomicBool::new(true);
static CHECKSUM: AtomicBool = AtomicBool::new(true);

/// Publishes `rdbcompression` and `rdbchecksum` (start-up, CONFIG SET), so
/// DUMP does not take the configuration lock.
pub fn configure(c: &crate::config::Config) {
    COMPRESSION.store(c.bool_value("rdbcompression"), Relaxed);
    CHECKSUM.store(c.bool_value("rdbchecksum"), Relaxed);
    STOP_WRITES.store(c.stop_writes_on_bgsave_error() && !c.shutdown_save_points().is_empty(), Relaxed);
}

/// `rdbcompression`: LZF for strings that shrink (DUMP, SAVE).
pub fn compression() -> bool {
    COMPRESSION.load(Relaxed)
}

/// `rdbchecksum`: write the CRC64 trailer on SAVE and verify it on load.
pub fn checksum() -> bool {
    CHECKSUM.load(Relaxed)
}
