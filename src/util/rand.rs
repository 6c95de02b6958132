//! The one cheap PRNG of the server (xorshift64*): sampling for RANDOMKEY,
//! active expiry and the LFU counter's probabilistic increments. Not for
//! anything security-related.

/// xorshift64*: advances `state` (never 0) and returns the next value.
#[inline]
pub fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    if x == 0 {
        x = 0x9E37_79B9_7F4A_7C15;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A uniform double in [0, 1).
#[inline]
pub fn unit(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_spread_over_the_unit_interval() {
        let mut s = 1;
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let u = super::unit(&mut s);
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (800..1200).contains(&b)), "{buckets:?}");
    }
}
