//! Leaf utilities with exact Redis 7.0 semantics.

pub mod alloc;
pub mod glob;
pub mod num;
pub mod sds;
pub mod slot;
