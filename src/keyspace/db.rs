//! One logical database (SELECT index) on one shard: the key table plus a
//! second table of the keys that carry a TTL, sampled by active expiry.

use super::dict::Dict;
use super::value::{Entry, Value};

pub const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;

#[inline]
pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) as u32) & LRU_CLOCK_MAX
}

/// Idle seconds since `lru` as Redis's estimateObjectIdleTime.
pub fn idle_secs(lru: u32, now_ms: u64) -> u64 {
    let now = lru_clock(now_ms);
    if now >= lru {
        (now - lru) as u64
    } else {
        (LRU_CLOCK_MAX - lru + now) as u64
    }
}

#[derive(Default)]
pub struct Db {
    pub keys: Dict<Entry>,
    /// Keys that have a TTL (values unused). Kept in step with `Entry::expire_at`.
    pub volatile: Dict<()>,
    /// Keys removed by lazy or active expiry since the last read of this counter.
    pub expired: u64,
}

impl Db {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.volatile.len()
    }

    /// Deletes the key if its TTL has passed; true when it did.
    #[inline]
    fn expire_if_needed(&mut self, key: &[u8], now_ms: u64) -> bool {
        let expired = match self.keys.get(key) {
            Some(e) => e.is_expired(now_ms),
            None => return false,
        };
        if expired {
            self.remove(key);
            self.expired += 1;
        }
        expired
    }

    /// Looks a key up, deleting it first if expired, and touches its LRU clock.
    #[inline]
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        if !self.volatile.is_empty() {
            self.expire_if_needed(key, now_ms);
        }
        let e = self.keys.get_mut(key)?;
        e.lru = lru_clock(now_ms);
        Some(e)
    }

    /// Like `get` but leaves the LRU clock alone (OBJECT, TTL-style peeks).
    pub fn peek(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        if !self.volatile.is_empty() {
            self.expire_if_needed(key, now_ms);
        }
        self.keys.get_mut(key)
    }

    pub fn exists(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.peek(key, now_ms).is_some()
    }

    /// Stores a value with the given expiry (0 = none), replacing any old key.
    pub fn set(&mut self, key: &[u8], val: Value, expire_at: u64, now_ms: u64) {
        let lru = lru_clock(now_ms);
        match self.keys.get_mut(key) {
            Some(e) => {
                let had_ttl = e.expire_at != 0;
                *e = Entry { val, expire_at, lru };
                if had_ttl && expire_at == 0 {
                    self.volatile.remove(key);
                } else if !had_ttl && expire_at != 0 {
                    self.volatile.insert_new(key.into(), ());
                }
            }
            None => {
                self.keys.insert_new(key.into(), Entry { val, expire_at, lru });
                if expire_at != 0 {
                    self.volatile.insert_new(key.into(), ());
                }
            }
        }
    }

    /// Replaces only the value of an existing or new key, keeping any TTL (KEEPTTL).
    pub fn set_keep_ttl(&mut self, key: &[u8], val: Value, now_ms: u64) {
        match self.keys.get_mut(key) {
            Some(e) => {
                e.val = val;
                e.lru = lru_clock(now_ms);
            }
            None => self.set(key, val, 0, now_ms),
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let (_, e) = self.keys.remove(key)?;
        if e.expire_at != 0 {
            self.volatile.remove(key);
        }
        Some(e)
    }

    /// Sets the TTL of an existing key (the caller has checked it exists).
    pub fn set_expire(&mut self, key: &[u8], at: u64) {
        if let Some(e) = self.keys.get_mut(key) {
            let had = e.expire_at != 0;
            e.expire_at = at;
            if !had {
                self.volatile.insert_new(key.into(), ());
            }
        }
    }

    /// Removes the TTL; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        match self.keys.get_mut(key) {
            Some(e) if e.expire_at != 0 => {
                e.expire_at = 0;
                self.volatile.remove(key);
                true
            }
            _ => false,
        }
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.volatile.clear();
    }

    /// One round of Redis-style active expiry: sample up to `samples` keys with
    /// a TTL, delete the expired ones. Returns (sampled, expired).
    pub fn expire_sample(&mut self, samples: usize, now_ms: u64, mut rand: impl FnMut() -> u64) -> (usize, usize) {
        let mut sampled = 0;
        let mut victims: Vec<Box<[u8]>> = Vec::new();
        let n = samples.min(self.volatile.len());
        for _ in 0..n {
            let Some((k, _)) = self.volatile.random(&mut rand) else { break };
            sampled += 1;
            if let Some(e) = self.keys.get(k) {
                if e.is_expired(now_ms) && !victims.iter().any(|v| &**v == k) {
                    victims.push(k.into());
                }
            }
        }
        let expired = victims.len();
        for k in victims {
            self.remove(&k);
        }
        self.expired += expired as u64;
        (sampled, expired)
    }

    /// Average remaining TTL in ms over a sample, as INFO keyspace's avg_ttl.
    pub fn avg_ttl(&self, now_ms: u64) -> u64 {
        let mut sum = 0u64;
        let mut n = 0u64;
        for (k, _) in self.volatile.iter().take(64) {
            if let Some(e) = self.keys.get(k) {
                sum += e.expire_at.saturating_sub(now_ms);
                n += 1;
            }
        }
        sum.checked_div(n).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_vanish_on_access() {
        let mut db = Db::default();
        db.set(b"k", Value::from_bytes(b"v"), 1000, 0);
        assert!(db.get(b"k", 1000).is_some(), "alive at its expiry millisecond, as Redis");
        assert!(db.get(b"k", 1001).is_none());
        assert_eq!(db.expires_len(), 0);
        assert_eq!(db.expired, 1);
    }

    #[test]
    fn overwriting_without_ttl_clears_the_volatile_entry() {
        let mut db = Db::default();
        db.set(b"k", Value::Int(1), 5000, 0);
        assert_eq!(db.expires_len(), 1);
        db.set(b"k", Value::Int(2), 0, 0);
        assert_eq!(db.expires_len(), 0);
        db.set_expire(b"k", 10);
        assert_eq!(db.expires_len(), 1);
        assert!(db.persist(b"k"));
        assert_eq!(db.expires_len(), 0);
    }

    #[test]
    fn active_expiry_sampling_removes_only_expired_keys() {
        let mut db = Db::default();
        for i in 0..100 {
            let at = if i % 2 == 0 { 10 } else { 1_000_000 };
            db.set(format!("k{i}").as_bytes(), Value::Int(i), at, 0);
        }
        let mut x = 88172645463325252u64;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            db.expire_sample(20, 100, &mut rand);
        }
        assert_eq!(db.len(), 50);
        assert!(db.keys.iter().all(|(_, e)| e.expire_at == 1_000_000));
    }
}
