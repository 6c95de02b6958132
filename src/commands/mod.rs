//! Commands: the declarative table plus one file per command family.
//!
//! - `strings.rs`: GET, SET, INCR, APPEND, MSET, LCS, ...
//! - `bitmaps.rs`: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD(_RO)
//! - `keys.rs`: DEL, EXISTS, EXPIRE, TTL, RENAME, COPY, SCAN, OBJECT, ...
//! - `dump.rs`: DUMP, RESTORE (RDB payloads)
//! - `lists.rs`, `hashes.rs`, `sets.rs`, `zsets.rs`: the aggregate types (blocking pops included)
//! - `connection.rs`: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT
//! - `pubsub.rs`: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB
//! - `hyperloglog.rs`: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST (Redis's HLL bytes)
//! - `sort.rs`: SORT, SORT_RO
//! - `scripting.rs`, `functions.rs`: EVAL / SCRIPT, FCALL / FUNCTION
//! - `server.rs`: COMMAND, INFO, CONFIG, DBSIZE, FLUSH*, TIME, SHUTDOWN, MONITOR, DEBUG

pub mod bitmaps;
pub mod connection;
pub mod doc;
pub mod dump;
pub mod functions;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod keys;
pub mod keyspec;
pub mod lists;
pub mod meta;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod table;
pub mod tracking;
pub mod tx;
pub mod zsets;

pub use table::{table, Command, Ctx};

/// Registers every implemented command.
pub fn register_all(t: &mut table::Table) {
    strings::register(t);
    bitmaps::register(t);
    keys::register(t);
    dump::register(t);
    connection::register(t);
    server::register(t);
    lists::register(t);
    hashes::register(t);
    hyperloglog::register(t);
    sets::register(t);
    zsets::register(t);
    geo::register(t);
    sort::register(t);
    pubsub::register(t);
    tx::register(t);
    scripting::register(t);
    tracking::register(t);
    functions::register(t);
    streams::register(t);
}
