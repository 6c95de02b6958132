//! Leaf utilities with exact Redis 7.0 semantics.

pub mod alloc;
pub mod geohash;
pub mod glob;
pub mod num;
pub mod rand;
pub mod sds;
pub mod slot;
pub mod small;
pub mod varint;

/// Groups `(shard, item)` pairs by shard, shards ascending, items in their
/// original order: the one grouping every multi-shard operation uses.
pub fn group_by_shard<T>(items: impl IntoIterator<Item = (usize, T)>) -> Vec<(usize, Vec<T>)> {
    let mut groups: Vec<(usize, Vec<T>)> = Vec::new();
    for (s, t) in items {
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => g.1.push(t),
            None => groups.push((s, vec![t])),
        }
    }
    groups.sort_by_key(|g| g.0);
    groups
}
