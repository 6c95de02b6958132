//! Persistence: the RDB format (`rdb/`), SAVE (`save.rs`: a consistent
//! snapshot of every shard written to one file) and loading dump.rdb at
//! start-up (`load.rs`: one thread parses, the owning shards decode and
//! insert).
//!
//! Layering: `rdb/` knows bytes and values only (it imports `keyspace` and
//! `util`); `save.rs` and `load.rs` add the runtime (shards, the transaction
//! layer's whole-shard locks) and the configuration. Commands (SAVE, DUMP,
//! RESTORE, SHUTDOWN) and start-up (`server`) call into here; nothing here
//! imports `commands` or `server`.

pub mod rdb;
