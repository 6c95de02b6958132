//! Per-shard storage: databases, values and expiry. Knows no sockets and no commands.
pub mod access;
pub mod cow;
pub mod db;
pub mod dict;
pub mod evict;
pub mod lazyfree;
pub mod table;
pub mod types;
pub mod value;

pub use db::Db;
pub use table::Entry;
pub use value::{Item, Value};
