//! Redis Cluster key hashing: CRC16-XMODEM (Redis crc16.c) and the
//! `keyHashSlot` hash-tag rule (cluster.c), 16384 slots.

/// Number of cluster hash slots.
pub const CLUSTER_SLOTS: u16 = 16384;

/// CRC16/XMODEM: poly 0x1021, init 0, no reflection, no final xor.
const CRC16_TABLE: [u16; 256] = build_table();

const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC16 as Redis `crc16()` (XMODEM variant).
#[inline]
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc = (crc << 8) ^ CRC16_TABLE[(((crc >> 8) as u8) ^ b) as usize];
    }
    crc
}

/// The bytes that are hashed for `key`: the content of the first `{...}`
/// if that content is non-empty (first `{`, then the first `}` after it),
/// otherwise the whole key.
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(s) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[s + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return &key[s + 1..s + 1 + len];
            }
        }
    }
    key
}

/// Redis Cluster hash slot of `key` (0..16384), as `keyHashSlot()`.
#[inline]
pub fn key_hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (CLUSTER_SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_vectors() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
        // first table entries from Redis crc16.c
        assert_eq!(&CRC16_TABLE[..8], &[0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7]);
        assert_eq!(CRC16_TABLE[255], 0x1ef0);
    }

    // Slots verified with CLUSTER KEYSLOT on redis-server 7.0.15.
    #[test]
    fn keyslot_vectors() {
        assert_eq!(key_hash_slot(b"foo"), 12182);
        assert_eq!(key_hash_slot(b"bar"), 5061);
        assert_eq!(key_hash_slot(b""), 0);
        assert_eq!(key_hash_slot(b"123456789"), 12739);
        assert_eq!(key_hash_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_hash_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_hash_slot(b"foo{{bar}}zap"), 4015);
        assert_eq!(key_hash_slot(b"foo{bar}{zap}"), 5061);
        assert_eq!(key_hash_slot(b"foo{bar"), 15278);
        assert_eq!(key_hash_slot(b"{"), 4092);
        assert_eq!(key_hash_slot(b"}{"), 12793);
        assert_eq!(key_hash_slot(b"{}"), 15257);
        assert_eq!(key_hash_slot(b"a}b{c}"), 7365);
        assert_eq!(key_hash_slot(b"{user1000}.following"), key_hash_slot(b"{user1000}.followers"));
        assert_eq!(key_hash_slot(b"{user1000}.following"), key_hash_slot(b"user1000"));
        // empty tag: the whole key is hashed
        assert_eq!(key_hash_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 0x3FFF);
        assert_ne!(key_hash_slot(b"foo{}{bar}"), key_hash_slot(b"bar"));
        // first '{' then first '}' after it
        assert_eq!(key_hash_slot(b"foo{{bar}}zap"), key_hash_slot(b"{bar"));
        assert_eq!(key_hash_slot(b"foo{bar}{zap}"), key_hash_slot(b"bar"));
        // no closing brace
        assert_eq!(key_hash_slot(b"foo{bar"), crc16(b"foo{bar") & 0x3FFF);
        assert_eq!(key_hash_slot(b"{"), crc16(b"{") & 0x3FFF);
        assert_eq!(key_hash_slot(b"}{"), crc16(b"}{") & 0x3FFF);
        assert_eq!(key_hash_slot(b"{}"), crc16(b"{}") & 0x3FFF);
        assert_eq!(key_hash_slot(b"a}b{c}"), key_hash_slot(b"c"));
    }

    #[test]
    fn hash_tag_cases() {
        assert_eq!(hash_tag(b"foo"), b"foo");
        assert_eq!(hash_tag(b"{a}"), b"a");
        assert_eq!(hash_tag(b"x{a}y"), b"a");
        assert_eq!(hash_tag(b"{}a"), b"{}a");
        assert_eq!(hash_tag(b"{{a}}"), b"{a");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(hash_tag(b"{\xff}"), b"\xff");
    }
}
