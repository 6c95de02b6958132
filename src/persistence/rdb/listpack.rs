//! Redis's listpack, as RDB stores it (HASH_LISTPACK, ZSET_LISTPACK and the
//! nodes of LIST_QUICKLIST_2): a 6-byte header (total bytes u32 LE, element
//! count u16 LE, 65535 = unknown), the entries, and an 0xFF end byte. Each
//! entry is its encoding and data followed by a "backlen" (the length of
//! encoding + data, 1-5 bytes, written backwards).
//!
//! [`Builder`] writes the bytes Redis's `lpAppend` writes (a string that is a
//! canonical 64-bit integer is stored in the smallest integer encoding), so a
//! DUMP of a listpack value is byte-identical to Redis's. [`parse`] validates
//! a listpack completely (header, every entry inside the buffer, backlens,
//! count) before anything is built from it.

use crate::keyspace::types::stream::lp;
use crate::util::num::string2ll;

const HDR: usize = 6;
const EOF: u8 = 0xFF;
const NUMELE_UNKNOWN: u16 = u16::MAX;

/// An element as stored: an integer or a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Item<'_> {
    /// The element's string form.
    pub fn to_vec(&self) -> Vec<u8> {
        match *self {
            Item::Int(v) => {
                let mut b = Vec::with_capacity(20);
                crate::util::num::write_i64(&mut b, v);
                b
            }
            Item::Str(s) => s.to_vec(),
        }
    }

    /// Runs `f` on the string form (integers formatted on the stack).
    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            Item::Int(v) => {
                let mut buf = [0u8; 20];
                f(crate::util::num::i64_to_buf(v, &mut buf))
            }
            Item::Str(s) => f(s),
        }
    }
}

/// Bytes of the encoding + data of `e` (lpEncodeGetType's `enclen`).
fn enc_len(e: &[u8]) -> usize {
    match string2ll(e) {
        Some(v) => int_enc_len(v),
        None => str_enc_len(e.len()),
    }
}

fn int_enc_len(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    }
}

fn str_enc_len(n: usize) -> usize {
    if n < 64 {
        1 + n
    } else if n < 4096 {
        2 + n
    } else {
        5 + n
    }
}

/// lpEncodeBacklen's size for an entry of `l` bytes.
fn backlen_len(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

/// Bytes one element adds to a listpack.
pub fn entry_size(e: &[u8]) -> usize {
    let l = enc_len(e);
    l + backlen_len(l)
}

/// Writes a listpack entry by entry.
pub struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; HDR]);
        Builder { buf, count: 0 }
    }

    /// Total bytes the listpack has once finished (lpBytes).
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// lpAppend of a string (an integer-looking string is stored as an integer).
    pub fn push(&mut self, e: &[u8]) {
        lp::encode_str(e, &mut self.buf);
        self.count += 1;
    }

    /// lpAppendInteger.
    pub fn push_int(&mut self, v: i64) {
        lp::encode_int(v, &mut self.buf);
        self.count += 1;
    }

    /// The finished listpack bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < NUMELE_UNKNOWN as usize {
            self.count as u16
        } else {
            NUMELE_UNKNOWN
        };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

fn sign_extend(u: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((u << shift) as i64) >> shift
}

/// Validates a whole listpack and returns its elements in order.
pub fn parse(lp: &[u8]) -> Result<Vec<Item<'_>>, String> {
    if lp.len() < HDR + 1 {
        return Err(format!("listpack of {} bytes is shorter than its header", lp.len()));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err(format!("listpack header says {} bytes, the string has {}", total, lp.len()));
    }
    if lp[lp.len() - 1] != EOF {
        return Err("listpack does not end with its end byte".into());
    }
    let numele = u16::from_le_bytes([lp[4], lp[5]]);
    let end = lp.len() - 1;
    let mut items = Vec::new();
    let mut p = HDR;
    while p < end {
        let b = lp[p];
        let need = |n: usize| -> Result<&[u8], String> {
            lp.get(p..p + n)
                .filter(|_| p + n <= end)
                .ok_or_else(|| "listpack entry past the end".to_string())
        };
        let (item, l) = if b & 0x80 == 0 {
            (Item::Int((b & 0x7f) as i64), 1)
        } else if b & 0xC0 == 0x80 {
            let n = (b & 0x3f) as usize;
            let d = need(1 + n)?;
            (Item::Str(&d[1..]), 1 + n)
        } else if b & 0xE0 == 0xC0 {
            let d = need(2)?;
            let u = (((d[0] & 0x1f) as u64) << 8) | d[1] as u64;
            (Item::Int(sign_extend(u, 13)), 2)
        } else if b & 0xF0 == 0xE0 {
            let d = need(2)?;
            let n = (((d[0] & 0x0f) as usize) << 8) | d[1] as usize;
            let d = need(2 + n)?;
            (Item::Str(&d[2..]), 2 + n)
        } else {
            match b {
                0xF0 => {
                    let d = need(5)?;
                    let n = u32::from_le_bytes([d[1], d[2], d[3], d[4]]) as usize;
                    let d = need(5usize.checked_add(n).ok_or("listpack string length overflows")?)?;
                    (Item::Str(&d[5..]), 5 + n)
                }
                0xF1 => {
                    let d = need(3)?;
                    (Item::Int(i16::from_le_bytes([d[1], d[2]]) as i64), 3)
                }
                0xF2 => {
                    let d = need(4)?;
                    let u = d[1] as u64 | (d[2] as u64) << 8 | (d[3] as u64) << 16;
                    (Item::Int(sign_extend(u, 24)), 4)
                }
                0xF3 => {
                    let d = need(5)?;
                    (Item::Int(i32::from_le_bytes([d[1], d[2], d[3], d[4]]) as i64), 5)
                }
                0xF4 => {
                    let d = need(9)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&d[1..9]);
                    (Item::Int(i64::from_le_bytes(a)), 9)
                }
                _ => return Err(format!("invalid listpack entry encoding 0x{b:02x} at {p}")),
            }
        };
        let bl = backlen_len(l);
        let back = need(l + bl)?;
        // The backlen, read backwards from its last byte.
        let (mut v, mut shift) = (0u64, 0u32);
        for (i, &c) in back[l..].iter().rev().enumerate() {
            v |= ((c & 127) as u64) << shift;
            let last = i + 1 == bl;
            if (c & 128 == 0) != last {
                return Err(format!("invalid listpack backlen at {p}"));
            }
            shift += 7;
        }
        if v as usize != l {
            return Err(format!("listpack backlen {} does not match entry length {} at {}", v, l, p));
        }
        items.push(item);
        p += l + bl;
    }
    if numele != NUMELE_UNKNOWN && numele as usize != items.len() {
        return Err(format!("listpack header counts {} elements, it holds {}", numele, items.len()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_what_redis_writes_and_parses_it_back() {
        // DUMP of RPUSH l a 1 (Redis 7.0.15): the node listpack.
        let mut b = Builder::new();
        b.push(b"a");
        b.push(b"1");
        assert_eq!(b.finish(), b"\x0c\x00\x00\x00\x02\x00\x81a\x02\x01\x01\xff");
        let vals: Vec<i64> = vec![
            0,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -32768,
            32767,
            40000,
            -8388608,
            8388607,
            9000000,
            i32::MIN as i64,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ];
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 200];
        let mut b = Builder::new();
        for v in &vals {
            b.push(v.to_string().as_bytes());
        }
        b.push(b"");
        b.push(&mid);
        b.push(&long);
        b.push(b"007");
        let lp = b.finish();
        let items = parse(&lp).unwrap();
        let got: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        let mut want: Vec<Vec<u8>> = vals.iter().map(|v| v.to_string().into_bytes()).collect();
        want.extend([b"".to_vec(), mid.clone(), long.clone(), b"007".to_vec()]);
        assert_eq!(got, want);
        assert!(matches!(items[0], Item::Int(0)) && matches!(items[items.len() - 1], Item::Str(_)));
    }

    #[test]
    fn rejects_damage() {
        let mut b = Builder::new();
        b.push(b"hello");
        b.push(b"12345");
        let lp = b.finish();
        assert!(parse(&lp[..lp.len() - 1]).is_err());
        for i in 0..lp.len() {
            for bit in 0..8 {
                let mut d = lp.clone();
                d[i] ^= 1 << bit;
                let _ = parse(&d); // never panics
            }
        }
        let mut d = lp.clone();
        d[4] = 3;
        assert!(parse(&d).is_err(), "count mismatch");
    }
}
