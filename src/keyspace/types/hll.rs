//! HyperLogLog in Redis's exact string representation, so that a value
//! written by Redis (GET / DUMP) works here and the other way round, and a
//! count is the same integer.
//!
//! Layout: a 16-byte header — `HYLL`, the encoding (0 dense, 1 sparse), three
//! unused bytes, the cached cardinality as 8 little-endian bytes whose last
//! byte's top bit marks the cache invalid — then the registers:
//! - dense: 16384 registers of 6 bits packed little-endian (12288 bytes);
//! - sparse: run-length opcodes, `00xxxxxx` ZERO (1..64 zero registers),
//!   `01xxxxxx yyyyyyyy` XZERO (1..16384 zero registers), `1vvvvvxx` VAL
//!   (1..4 registers of value 1..32).
//!
//! Element hashing is MurmurHash64A with seed 0xadc83b19: the low 14 bits
//! pick the register, the position of the lowest set bit of the rest (plus
//! one) is the candidate value. The estimate is Ertl's improved estimator
//! (arXiv:1702.01284), as Redis 7 computes it.
//!
//! Functions return `Err(Corrupt)` on a malformed sparse body; the commands
//! turn it into `-INVALIDOBJ`.

pub const HDR: usize = 16;
pub const P: u32 = 14;
pub const Q: u32 = 64 - P;
pub const REGISTERS: usize = 1 << P;
pub const BITS: usize = 6;
pub const REG_MAX: u8 = (1 << BITS) - 1;
pub const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
const SEED: u64 = 0xadc8_3b19;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
/// 0.5 / ln(2).
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// A malformed sparse representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Why a string is not usable as an HLL (isHLLObjectOrReply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotHll {
    /// Not a string at all: the usual WRONGTYPE.
    WrongType,
    /// A string, but not an HLL (bad size, magic or encoding).
    Invalid,
}

pub const INVALID_ERR: &str = "INVALIDOBJ Corrupted HLL object detected";
pub const NOT_HLL_ERR: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

/// MurmurHash64A (Austin Appleby), little-endian reads.
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= (*b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element addresses and the value it proposes (1..=51).
#[inline]
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// A fresh sparse HLL: the header and one XZERO covering every register.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 8);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(XZERO_MAX_LEN);
        push_xzero(&mut v, n);
        left -= n;
    }
    v
}

/// isHLLObjectOrReply's checks on a string's bytes (`None`: an int-encoded string).
pub fn check(bytes: Option<&[u8]>) -> Result<(), NotHll> {
    let b = bytes.ok_or(NotHll::Invalid)?;
    if b.len() < HDR || &b[..4] != b"HYLL" || b[4] > SPARSE || (b[4] == DENSE && b.len() != DENSE_SIZE) {
        return Err(NotHll::Invalid);
    }
    Ok(())
}

#[inline]
pub fn encoding(h: &[u8]) -> u8 {
    h[4]
}

pub fn cache_valid(h: &[u8]) -> bool {
    h[15] & 0x80 == 0
}

pub fn invalidate_cache(h: &mut [u8]) {
    h[15] |= 0x80;
}

pub fn cached(h: &[u8]) -> u64 {
    u64::from_le_bytes(h[8..16].try_into().unwrap())
}

pub fn set_cached(h: &mut [u8], card: u64) {
    h[8..16].copy_from_slice(&card.to_le_bytes());
}

// --------------------------------------------------------------------------
// Dense registers
// --------------------------------------------------------------------------

#[inline]
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let bit = i * BITS;
    let (byte, fb) = (bit / 8, bit % 8);
    let b0 = regs[byte] as u16;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> fb) | (b1 << (8 - fb))) as u8) & REG_MAX
}

#[inline]
pub fn dense_put(regs: &mut [u8], i: usize, v: u8) {
    let bit = i * BITS;
    let (byte, fb) = (bit / 8, bit % 8);
    let v = v as u16;
    let lo = regs[byte] as u16 & !((REG_MAX as u16) << fb);
    regs[byte] = (lo | (v << fb)) as u8;
    if let Some(b1) = regs.get_mut(byte + 1) {
        let fb8 = 8 - fb;
        let keep = *b1 & !((REG_MAX as u16 >> fb8) as u8);
        *b1 = keep | (v >> fb8) as u8;
    }
}

/// Calls `f(i, register i)` for every dense register, four per three bytes.
#[inline]
fn for_each_dense(regs: &[u8], mut f: impl FnMut(usize, u8)) {
    for (g, c) in regs.chunks_exact(3).enumerate() {
        let w = c[0] as u32 | (c[1] as u32) << 8 | (c[2] as u32) << 16;
        let i = g * 4;
        f(i, (w & 63) as u8);
        f(i + 1, ((w >> 6) & 63) as u8);
        f(i + 2, ((w >> 12) & 63) as u8);
        f(i + 3, ((w >> 18) & 63) as u8);
    }
}

/// Raises register `i` to `v`; true when it changed.
#[inline]
fn dense_raise(regs: &mut [u8], i: usize, v: u8) -> bool {
    if v > dense_get(regs, i) {
        dense_put(regs, i, v);
        true
    } else {
        false
    }
}

// --------------------------------------------------------------------------
// Sparse opcodes
// --------------------------------------------------------------------------

#[inline]
fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
#[inline]
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
#[inline]
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
#[inline]
fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}
/// An XZERO's length; a truncated one (no second byte) reads a zero, as the
/// string's terminator reads in Redis.
#[inline]
fn xzero_len(h: &[u8], p: usize) -> usize {
    ((((h[p] & 0x3f) as usize) << 8) | h.get(p + 1).copied().unwrap_or(0) as usize) + 1
}
#[inline]
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
#[inline]
fn val_len(b: u8) -> usize {
    (b & 3) as usize + 1
}
#[inline]
fn val_op(v: u8, len: usize) -> u8 {
    (((v as usize - 1) << 2) | (len - 1)) as u8 | 0x80
}
fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(((l >> 8) | 0x40) as u8);
    out.push((l & 0xff) as u8);
}
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        push_xzero(out, len);
    } else {
        out.push((len - 1) as u8);
    }
}

/// Calls `f(first_register, run_length, value)` for each opcode of a sparse
/// body; stops (returning false) at a VAL run that would pass the last
/// register. Returns whether it covered exactly all registers.
fn sparse_runs(h: &[u8], mut f: impl FnMut(usize, usize, u8)) -> bool {
    let mut p = HDR;
    let mut idx = 0usize;
    while p < h.len() {
        let b = h[p];
        if is_zero(b) {
            idx += zero_len(b);
            p += 1;
        } else if is_xzero(b) {
            idx += xzero_len(h, p);
            p += 2;
        } else {
            let (len, v) = (val_len(b), val_value(b));
            if idx + len > REGISTERS {
                return false;
            }
            f(idx, len, v);
            idx += len;
            p += 1;
        }
    }
    idx == REGISTERS
}

/// Converts a sparse HLL to dense in place (the header, cached cardinality
/// included, is kept). A dense one is left alone.
pub fn to_dense(h: &mut Vec<u8>) -> Result<(), Corrupt> {
    if encoding(h) == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&h[..HDR]);
    dense[4] = DENSE;
    let regs = &mut dense[HDR..];
    let ok = sparse_runs(h, |first, len, v| {
        for i in first..first + len {
            dense_put(regs, i, v);
        }
    });
    if !ok {
        return Err(Corrupt);
    }
    *h = dense;
    Ok(())
}

/// Raises register `index` of a sparse HLL to `count`, editing the opcodes
/// in place as Redis does (so the bytes match), or promoting to dense when
/// the value does not fit a VAL opcode or the string would pass `max_bytes`.
fn sparse_set(h: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(h, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let mut end = h.len();
    let mut p = HDR;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut span = 0usize;
    while p < end {
        let b = h[p];
        let oplen;
        if is_zero(b) {
            span = zero_len(b);
            oplen = 1;
        } else if is_val(b) {
            span = val_len(b);
            oplen = 1;
        } else {
            span = xzero_len(h, p);
            oplen = 2;
        }
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let b = h[p];
    let xz = is_xzero(b);
    let next = if xz { p + 2 } else { p + 1 };
    let next = (next < end).then_some(next);

    let updated_in_place = if is_val(b) {
        let old = val_value(b);
        if old >= count {
            return Ok(false);
        }
        if val_len(b) == 1 {
            h[p] = val_op(count, 1);
            true
        } else {
            false
        }
    } else if is_zero(b) && zero_len(b) == 1 {
        h[p] = val_op(count, 1);
        true
    } else {
        false
    };

    if !updated_in_place {
        // Step 2: split the opcode into up to three.
        let last = first + span - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        if is_val(b) {
            let cur = val_value(b);
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        } else {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        // Step 3: put the sequence in place of the opcode.
        let oldlen = if xz { 2 } else { 1 };
        let delta = seq.len() as isize - oldlen as isize;
        let new_len = (h.len() as isize + delta) as usize;
        if delta > 0 && new_len > max_bytes {
            return promote(h, index, count);
        }
        match next {
            Some(n) => {
                h.splice(p..n, seq);
            }
            None => {
                h.truncate(p);
                h.extend_from_slice(&seq);
                h.truncate(new_len);
            }
        }
        end = h.len();
    }

    // Step 4: merge adjacent VAL opcodes of the same value, a few opcodes
    // from the previous one on.
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < end && scan > 0 {
        scan -= 1;
        let b = h[p];
        if is_xzero(b) {
            p += 2;
            continue;
        }
        if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(h[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(h[p + 1]));
            if v1 == v2 {
                let len = val_len(b) + val_len(h[p + 1]);
                if len <= VAL_MAX_LEN {
                    h[p + 1] = val_op(v1, len);
                    h.remove(p);
                    end -= 1;
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate_cache(h);
    Ok(true)
}

fn promote(h: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(h)?;
    Ok(dense_raise(&mut h[HDR..], index, count))
}

/// Sets register `index` to at least `count` in either encoding.
fn set_register(h: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Corrupt> {
    match encoding(h) {
        DENSE => Ok(dense_raise(&mut h[HDR..], index, count)),
        SPARSE => sparse_set(h, index, count, max_bytes),
        _ => Err(Corrupt),
    }
}

/// hllAdd: true when a register changed. The cache is not touched (PFADD
/// invalidates it once, after all the elements).
pub fn add(h: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(ele);
    set_register(h, index, count, max_bytes)
}

/// hllMerge: raises `max[i]` to each register of `h` (a checked HLL).
pub fn merge_into(max: &mut [u8; REGISTERS], h: &[u8]) -> Result<(), Corrupt> {
    if encoding(h) == DENSE {
        for_each_dense(&h[HDR..], |i, v| {
            if v > max[i] {
                max[i] = v;
            }
        });
        return Ok(());
    }
    let ok = sparse_runs(h, |first, len, v| {
        for m in &mut max[first..first + len] {
            if v > *m {
                *m = v;
            }
        }
    });
    if ok {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Writes merged registers into the HLL `h` (PFMERGE's destination), in
/// register order, as Redis does (a sparse destination may promote).
pub fn store_max(h: &mut Vec<u8>, max: &[u8; REGISTERS], max_bytes: usize) {
    for (i, &v) in max.iter().enumerate() {
        if v != 0 {
            // A corrupt sparse destination cannot reach here (it was merged
            // first); Redis ignores the result too.
            let _ = set_register(h, i, v, max_bytes);
        }
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// The estimate from a histogram of register values.
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// hllCount of a checked HLL (a sparse body that does not cover exactly the
/// registers is corrupt).
pub fn count(h: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0u64; 64];
    if encoding(h) == DENSE {
        for_each_dense(&h[HDR..], |_, v| histo[v as usize] += 1);
    } else {
        // The histogram counts every opcode (no overflow stop), then the
        // total decides.
        let mut p = HDR;
        let mut idx = 0usize;
        while p < h.len() {
            let b = h[p];
            if is_zero(b) {
                let n = zero_len(b);
                idx += n;
                histo[0] += n as u64;
                p += 1;
            } else if is_xzero(b) {
                let n = xzero_len(h, p);
                idx += n;
                histo[0] += n as u64;
                p += 2;
            } else {
                let n = val_len(b);
                idx += n;
                histo[val_value(b) as usize] += n as u64;
                p += 1;
            }
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&histo))
}

/// The count of merged registers (PFCOUNT of several keys).
pub fn count_raw(max: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u64; 64];
    for &v in max.iter() {
        histo[(v & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// PFDEBUG DECODE's text of a sparse body.
pub fn decode(h: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mut p = HDR;
    while p < h.len() {
        let b = h[p];
        if is_zero(b) {
            let _ = write!(s, "z:{} ", zero_len(b));
            p += 1;
        } else if is_xzero(b) {
            let _ = write!(s, "Z:{} ", xzero_len(h, p));
            p += 2;
        } else {
            let _ = write!(s, "v:{},{} ", val_value(b), val_len(b));
            p += 1;
        }
    }
    s.trim_matches(' ').to_string()
}

/// PFSELFTEST: register access, then the error of dense and sparse counts
/// (which must agree) at cardinalities 1, 10, ... 10^7. `rand` gives random
/// 31-bit values.
pub fn selftest(mut rand: impl FnMut() -> u32, max_bytes: usize) -> Result<(), String> {
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let mut bytes = [0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (rand() & REG_MAX as u32) as u8;
            *b = r;
            dense_put(&mut dense[HDR..], i, r);
        }
        for (i, b) in bytes.iter().enumerate() {
            let v = dense_get(&dense[HDR..], i);
            if v != *b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {v}"));
            }
        }
    }
    dense[HDR..].fill(0);
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed = rand() as u64 | (rand() as u64) << 32;
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_le_bytes();
        let (index, c) = pat_len(&ele);
        dense_raise(&mut dense[HDR..], index, c);
        set_register(&mut sparse, index, c, max_bytes).map_err(|_| "TESTFAILED sparse HLL corrupted".to_string())?;
        if j != checkpoint {
            continue;
        }
        if (j as usize) < max_bytes / 2 && encoding(&sparse) != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let d = count(&dense).unwrap_or(0);
        if count(&sparse) != Ok(d) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - d as i64).unsigned_abs();
        let maxerr = if j == 10 { 1 } else { (relerr * 6.0 * checkpoint as f64).ceil() as u64 };
        if abserr > maxerr {
            return Err(format!("TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_roundtrip_and_sparse_matches_dense() {
        let mut s = new_sparse();
        assert_eq!(s.len(), HDR + 2);
        let mut d = new_sparse();
        to_dense(&mut d).unwrap();
        for i in 0..2000u32 {
            let e = i.to_string();
            let a = add(&mut s, e.as_bytes(), 3000).unwrap();
            let b = add(&mut d, e.as_bytes(), 3000).unwrap();
            assert_eq!(a, b, "element {i}");
        }
        let mut s2 = s.clone();
        to_dense(&mut s2).unwrap();
        assert_eq!(s2[HDR..], d[HDR..]);
        assert_eq!(count(&s), count(&d));
        let n = count(&d).unwrap();
        assert!((1900..2100).contains(&n), "{n}");
    }

    #[test]
    fn dense_iteration_matches_register_access() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR];
        let mut x: u32 = 12345;
        for i in 0..REGISTERS {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            dense_put(&mut regs, i, ((x >> 16) & 63) as u8);
        }
        let mut n = 0;
        for_each_dense(&regs, |i, v| {
            assert_eq!(v, dense_get(&regs, i), "register {i}");
            n += 1;
        });
        assert_eq!(n, REGISTERS);
    }

    #[test]
    fn corrupt_sparse_is_reported() {
        let mut s = new_sparse();
        s.truncate(HDR + 1);
        assert_eq!(count(&s), Err(Corrupt));
        let mut t = new_sparse();
        t.push(0x80 | 3);
        assert_eq!(count(&t), Err(Corrupt));
        let mut max = [0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &t), Err(Corrupt));
    }
}
