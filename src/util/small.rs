//! Short byte strings stored inline.
//!
//! A hashtable hash keeps one value per field; most values are short (ids,
//! counters, flags). Held inline they cost no allocation of their own and a
//! table node stays in the 48-byte size class, where a `Box<[u8]>` value
//! (16 bytes in the node plus an allocation) costs a class more: about 8-16
//! bytes per field. Safe code only: 24 bytes, as a `Vec` would take.

/// Bytes up to this length are stored inline.
pub const INLINE_MAX: usize = 22;

#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, buf: [u8; INLINE_MAX] },
    Heap(Box<[u8]>),
}

impl SmallBytes {
    #[inline]
    pub fn new(b: &[u8]) -> SmallBytes {
        if b.len() <= INLINE_MAX {
            let mut buf = [0u8; INLINE_MAX];
            buf[..b.len()].copy_from_slice(b);
            SmallBytes::Inline { len: b.len() as u8, buf }
        } else {
            SmallBytes::Heap(b.into())
        }
    }

    /// Heap bytes beyond the value itself (for MEMORY-style estimates).
    pub fn heap_len(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Heap(b) => b.len(),
        }
    }
}

impl std::ops::Deref for SmallBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, buf } => &buf[..*len as usize],
            SmallBytes::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_inline_and_heap_lengths() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        for n in [0, 1, 21, 22, 23, 100] {
            let v: Vec<u8> = (0..n as u8).collect();
            let s = SmallBytes::new(&v);
            assert_eq!(&*s, &v[..]);
            assert_eq!(matches!(s, SmallBytes::Inline { .. }), n <= INLINE_MAX);
            assert_eq!(&*s.clone(), &v[..]);
        }
    }
}
