//! The compact blobs older Redis versions put in RDB files, read-only:
//! ziplists (lists before 3.2 / quicklist nodes before 7.0, small hashes and
//! zsets before 7.0), zipmaps (hashes before 2.6) — and intsets, which Redis
//! 7.0 still writes (SET_INTSET), with their writer.
//!
//! Every parser validates the whole blob (header sizes, every entry inside
//! the buffer, the end marker, the counts) and returns the elements; nothing
//! is built from a blob that does not validate.

use super::listpack::Item;

/// A ziplist: `zlbytes u32, zltail u32, zllen u16`, entries, 0xFF. An entry
/// is `prevlen` (1 byte, or 0xFE + u32), an encoding (strings: 6, 14 or 32
/// bit lengths; integers: 8, 16, 24, 32, 64 bit or a 4-bit immediate) and
/// its data. All integers little endian, string lengths big endian.
pub fn parse_ziplist(zl: &[u8]) -> Result<Vec<Item<'_>>, String> {
    const HDR: usize = 10;
    if zl.len() < HDR + 1 {
        return Err(format!("ziplist of {} bytes is shorter than its header", zl.len()));
    }
    let bytes = u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize;
    let tail = u32::from_le_bytes([zl[4], zl[5], zl[6], zl[7]]) as usize;
    let count = u16::from_le_bytes([zl[8], zl[9]]);
    if bytes != zl.len() {
        return Err(format!("ziplist header says {} bytes, the string has {}", bytes, zl.len()));
    }
    let end = zl.len() - 1;
    if zl[end] != 0xFF {
        return Err("ziplist does not end with its end byte".into());
    }
    let mut items = Vec::new();
    let mut p = HDR;
    let mut prev_len = 0usize;
    let mut last_start = HDR;
    while p < end {
        let get = |from: usize, n: usize| -> Result<&[u8], String> {
            zl.get(from..from.checked_add(n).ok_or("ziplist length overflows")?)
                .filter(|_| from + n <= end)
                .ok_or_else(|| "ziplist entry past the end".to_string())
        };
        let (prevlen, pl) = if zl[p] < 254 {
            (zl[p] as usize, 1)
        } else if zl[p] == 254 {
            let d = get(p + 1, 4)?;
            (u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize, 5)
        } else {
            return Err(format!("invalid ziplist prevlen at {p}"));
        };
        if prevlen != prev_len {
            return Err(format!("ziplist prevlen {} does not match the previous entry ({}) at {}", prevlen, prev_len, p));
        }
        let e = p + pl;
        let enc = *get(e, 1)?.first().ok_or("ziplist entry past the end")?;
        let (item, hl, dl): (Item, usize, usize) = match enc >> 6 {
            0 => {
                let n = (enc & 0x3f) as usize;
                (Item::Str(get(e + 1, n)?), 1, n)
            }
            1 => {
                let d = get(e, 2)?;
                let n = (((d[0] & 0x3f) as usize) << 8) | d[1] as usize;
                (Item::Str(get(e + 2, n)?), 2, n)
            }
            2 => {
                let d = get(e, 5)?;
                let n = u32::from_be_bytes([d[1], d[2], d[3], d[4]]) as usize;
                (Item::Str(get(e + 5, n)?), 5, n)
            }
            _ => match enc {
                0xC0 => {
                    let d = get(e + 1, 2)?;
                    (Item::Int(i16::from_le_bytes([d[0], d[1]]) as i64), 1, 2)
                }
                0xD0 => {
                    let d = get(e + 1, 4)?;
                    (Item::Int(i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64), 1, 4)
                }
                0xE0 => {
                    let d = get(e + 1, 8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(d);
                    (Item::Int(i64::from_le_bytes(a)), 1, 8)
                }
                0xF0 => {
                    let d = get(e + 1, 3)?;
                    let v = (i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8) as i64;
                    (Item::Int(v), 1, 3)
                }
                0xFE => {
                    let d = get(e + 1, 1)?;
                    (Item::Int(d[0] as i8 as i64), 1, 1)
                }
                0xF1..=0xFD => (Item::Int((enc & 0x0f) as i64 - 1), 1, 0),
                _ => return Err(format!("invalid ziplist entry encoding 0x{enc:02x} at {e}")),
            },
        };
        items.push(item);
        last_start = p;
        prev_len = pl + hl + dl;
        p += prev_len;
    }
    if !items.is_empty() && tail != last_start {
        return Err(format!("ziplist tail offset {} does not point at its last entry ({})", tail, last_start));
    }
    if count != u16::MAX && count as usize != items.len() {
        return Err(format!("ziplist header counts {} entries, it holds {}", count, items.len()));
    }
    Ok(items)
}

/// A zipmap (HASH_ZIPMAP): `zmlen` (a count, 254+ = unknown), then per pair
/// `len key len free value <free bytes>` (a length is one byte < 254, or
/// 254 + u32), and 0xFF. Returns (field, value) pairs.
/// A (field, value) pair of a blob.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

pub fn parse_zipmap(zm: &[u8]) -> Result<Vec<Pair<'_>>, String> {
    if zm.len() < 2 {
        return Err("zipmap too short".into());
    }
    let count = zm[0];
    let mut p = 1;
    let mut pairs = Vec::new();
    let len_at = |p: &mut usize| -> Result<Option<usize>, String> {
        match zm.get(*p) {
            None => Err("zipmap entry past the end".into()),
            Some(255) => Ok(None),
            Some(254) => {
                let d = zm.get(*p + 1..*p + 5).ok_or("zipmap length past the end")?;
                *p += 5;
                Ok(Some(u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize))
            }
            Some(&n) => {
                *p += 1;
                Ok(Some(n as usize))
            }
        }
    };
    while let Some(kl) = len_at(&mut p)? {
        let key = zm
            .get(p..p.checked_add(kl).ok_or("zipmap length overflows")?)
            .ok_or("zipmap key past the end")?;
        p += kl;
        let Some(vl) = len_at(&mut p)? else {
            return Err("zipmap key without a value".into());
        };
        let free = *zm.get(p).ok_or("zipmap value past the end")? as usize;
        p += 1;
        let val = zm
            .get(p..p.checked_add(vl).ok_or("zipmap length overflows")?)
            .ok_or("zipmap value past the end")?;
        p += vl + free;
        pairs.push((key, val));
    }
    if p != zm.len() - 1 {
        return Err("zipmap end byte is not the last byte".into());
    }
    if count < 254 && count as usize != pairs.len() {
        return Err(format!("zipmap header counts {} pairs, it holds {}", count, pairs.len()));
    }
    Ok(pairs)
}

/// An intset: `encoding u32` (2, 4 or 8 bytes per member), `length u32`, the
/// members ascending, all little endian. Returns (width, members).
pub fn parse_intset(is: &[u8]) -> Result<(u8, Vec<i64>), String> {
    if is.len() < 8 {
        return Err("intset shorter than its header".into());
    }
    let width = u32::from_le_bytes([is[0], is[1], is[2], is[3]]);
    let count = u32::from_le_bytes([is[4], is[5], is[6], is[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("invalid intset encoding {width}"));
    }
    let w = width as usize;
    if count.checked_mul(w).and_then(|n| n.checked_add(8)) != Some(is.len()) {
        return Err(format!("intset of {} members of {} bytes does not fill {} bytes", count, w, is.len()));
    }
    if count == 0 {
        return Err("empty intset".into());
    }
    let mut vals = Vec::with_capacity(count);
    for c in is[8..].chunks_exact(w) {
        let v = match w {
            2 => i16::from_le_bytes([c[0], c[1]]) as i64,
            4 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        };
        if vals.last().is_some_and(|&l| l >= v) {
            return Err("intset members are not strictly ascending".into());
        }
        vals.push(v);
    }
    Ok((width as u8, vals))
}

/// The intset blob of ascending `members` stored `width` bytes each.
pub fn write_intset(width: u8, members: impl ExactSizeIterator<Item = i64>) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + members.len() * width as usize);
    b.extend_from_slice(&(width as u32).to_le_bytes());
    b.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for v in members {
        match width {
            2 => b.extend_from_slice(&(v as i16).to_le_bytes()),
            4 => b.extend_from_slice(&(v as i32).to_le_bytes()),
            _ => b.extend_from_slice(&v.to_le_bytes()),
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ziplist as Redis 6 wrote it for RPUSH l a 1 300 -70000 "hello" 5000000000.
    fn sample_ziplist() -> Vec<u8> {
        let entries: Vec<Vec<u8>> = vec![
            vec![0x01, b'a'],                                  // 6-bit string
            vec![0xF2],                                        // immediate 1
            vec![0xC0, 0x2c, 0x01],                            // int16 300
            vec![0xF0, 0x90, 0xee, 0xfe],                      // int24 -70000
            [&[0x05][..], b"hello"].concat(),                  // string
            vec![0xE0, 0x00, 0xf2, 0x05, 0x2a, 0x01, 0, 0, 0], // int64 5000000000
        ];
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = 10;
        for e in entries {
            tail = 10 + body.len();
            body.push(prev as u8);
            body.extend_from_slice(&e);
            prev = e.len() + 1;
        }
        let total = 10 + body.len() + 1;
        let mut zl = Vec::new();
        zl.extend_from_slice(&(total as u32).to_le_bytes());
        zl.extend_from_slice(&(tail as u32).to_le_bytes());
        zl.extend_from_slice(&6u16.to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(0xFF);
        zl
    }

    #[test]
    fn ziplist_entries() {
        let zl = sample_ziplist();
        let got: Vec<Vec<u8>> = parse_ziplist(&zl).unwrap().iter().map(|i| i.to_vec()).collect();
        let want: Vec<&[u8]> = vec![b"a", b"1", b"300", b"-70000", b"hello", b"5000000000"];
        assert_eq!(got, want);
        for i in 0..zl.len() {
            let mut d = zl.clone();
            d[i] ^= 0x40;
            let _ = parse_ziplist(&d);
            let _ = parse_ziplist(&zl[..i]);
        }
        let mut d = zl.clone();
        d[8] = 5;
        assert!(parse_ziplist(&d).is_err());
    }

    #[test]
    fn zipmap_pairs() {
        let zm = b"\x02\x03foo\x03\x02bar\x00\x00\x01k\x01\x00v\xff";
        assert_eq!(parse_zipmap(zm).unwrap(), vec![(&b"foo"[..], &b"bar"[..]), (&b"k"[..], &b"v"[..])]);
        assert!(parse_zipmap(&zm[..zm.len() - 1]).is_err());
        for i in 0..zm.len() {
            let _ = parse_zipmap(&zm[..i]);
        }
    }

    #[test]
    fn intset_round_trip_and_checks() {
        let b = write_intset(4, [1i64, 2, 3, 70000].into_iter());
        // What Redis 7.0.15 DUMPs for SADD s 1 2 3 70000.
        assert_eq!(
            b,
            b"\x04\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x70\x11\x01\x00"
        );
        assert_eq!(parse_intset(&b).unwrap(), (4, vec![1, 2, 3, 70000]));
        assert!(parse_intset(&write_intset(2, [2i64, 1].into_iter())).is_err());
        assert!(parse_intset(&write_intset(2, std::iter::empty())).is_err());
        assert!(parse_intset(&b[..b.len() - 1]).is_err());
        assert!(parse_intset(b"\x03\x00\x00\x00\x00\x00\x00\x00").is_err());
    }
}
