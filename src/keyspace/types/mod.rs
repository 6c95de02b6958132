//! The aggregate value types, one file each: the data structures and their
//! compact encodings. They know no commands and no replies; the families in
//! `commands/` read and change them through the keyspace's write path.

pub mod hash;
pub mod hll;
pub mod limits;
pub mod list;
pub mod set;
pub mod stream;
pub mod zset;

pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use stream::Stream;
pub use zset::ZSet;
