//! LEB128 varints, the length prefix of the packed (listpack-like) encodings
//! of hashes and sorted sets.

/// Appends `n` as a varint.
#[inline]
pub fn put(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Reads the varint at `*at`, advancing `*at` past it.
#[inline]
pub fn get(buf: &[u8], at: &mut usize) -> u64 {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*at];
        *at += 1;
        n |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return n;
        }
        shift += 7;
    }
}

/// Bytes `n` takes as a varint.
#[inline]
pub fn len(mut n: u64) -> usize {
    let mut l = 1;
    while n >= 0x80 {
        n >>= 7;
        l += 1;
    }
    l
}

#[cfg(test)]
mod tests {
    #[test]
    fn varints_round_trip_at_every_width() {
        for n in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            super::put(&mut b, n);
            assert_eq!(b.len(), super::len(n));
            let mut at = 0;
            assert_eq!(super::get(&b, &mut at), n);
            assert_eq!(at, b.len());
        }
    }
}
