//! The Redis RDB format, version 10 as Redis 7.0 writes it: values (DUMP /
//! RESTORE payloads) and whole files (dump.rdb).
//!
//! * [`encode`]: values and files as Redis 7.0 writes them — strings
//!   int-encoded or LZF-compressed as `rdbSaveRawString` decides, lists as
//!   LIST_QUICKLIST_2 of listpack nodes split as RPUSH would split them, sets
//!   as SET_INTSET or SET, sorted sets as ZSET_LISTPACK or ZSET_2, hashes as
//!   HASH_LISTPACK or HASH, expiry, LRU/LFU hints, AUX fields, EOF, CRC64.
//! * [`decode`]: everything Redis 7.0 can read for the types Tessera has,
//!   including the older encodings (ziplists, LIST_QUICKLIST, ZSET with
//!   string scores, HASH_ZIPMAP, plain LIST), every input validated: a
//!   corrupt or truncated input is an [`Error`] naming the offset, never a
//!   panic.
//! * `listpack`, `legacy` (ziplist, zipmap, intset), `lzf`: the blobs.
//!
//! This module knows bytes and values only; `persistence::save` and
//! `persistence::load` put files and shards together.

pub mod decode;
pub mod encode;
pub mod legacy;
pub mod listpack;
pub mod lzf;
#[cfg(test)]
mod tests;

/// RDB_VERSION of Redis 7.0.
pub const RDB_VERSION: u16 = 10;

/// Object types (RDB_TYPE_*).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;

    /// rdbIsObjectType.
    pub fn is_object_type(t: u8) -> bool {
        t <= 7 || (9..=19).contains(&t)
    }
}

/// File opcodes (RDB_OPCODE_*).
pub mod opcode {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Length-encoding markers (RDB_6BITLEN ... RDB_64BITLEN, RDB_ENCVAL) and
/// special string encodings (RDB_ENC_*).
pub(crate) mod len {
    pub const BITS32: u8 = 0x80;
    pub const BITS64: u8 = 0x81;
    pub const ENC_INT8: u8 = 0;
    pub const ENC_INT16: u8 = 1;
    pub const ENC_INT32: u8 = 2;
    pub const ENC_LZF: u8 = 3;
}

/// QUICKLIST_NODE_CONTAINER_*.
pub(crate) const CONTAINER_PLAIN: u64 = 1;
pub(crate) const CONTAINER_PACKED: u64 = 2;

/// CRC-64/Jones as Redis computes it (crc64.c): the catalog's CRC_64_REDIS.
pub const CRC64: crc::Crc<u64, crc::Table<16>> = crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// A value or file that cannot be read: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the input (the file, or the DUMP payload) where the
    /// problem was found.
    pub offset: usize,
    pub reason: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "offset {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for Error {}

/// The compact-encoding thresholds a loaded value is converted with
/// (`*-max-listpack-*`, `set-max-intset-entries`), as Redis's loader applies
/// them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub hash_entries: usize,
    pub hash_value: usize,
    pub set_intset: usize,
    pub zset_entries: usize,
    pub zset_value: usize,
}

impl Limits {
    /// The configured thresholds (keyspace/types/limits.rs).
    pub fn current() -> Limits {
        use crate::keyspace::types::limits as l;
        Limits {
            hash_entries: l::hash_entries(),
            hash_value: l::hash_value(),
            set_intset: l::set_intset_entries(),
            zset_entries: l::zset_entries(),
            zset_value: l::zset_value(),
        }
    }
}
