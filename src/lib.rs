//! Tessera: a Redis 7.0-compatible, thread-per-core, shared-nothing in-memory store.
//!
//! Data flows one way: socket (server) -> protocol -> command table (arity,
//! keys) -> runtime (which shard, forwarded or transactional) -> family handler
//! on the owning shard -> keyspace -> reply bytes back to the connection.

pub mod commands;
pub mod config;
pub mod exec;
pub mod keyspace;
pub mod persistence;
pub mod protocol;
pub mod runtime;
pub mod scripting;
pub mod server;
pub mod util;

/// The Redis version whose behaviour Tessera matches (INFO, HELLO): clients gate features on it.
pub const REDIS_VERSION: &str = "7.0.15";
