//! LZF, the compression RDB strings use (RDB_ENC_LZF).
//!
//! The format: a control byte `000LLLLL` starts a literal run of L+1 bytes;
//! `LLLooooo oooooooo` is a back reference of L+2 bytes (L < 7) at distance
//! o+1; `111ooooo LLLLLLLL oooooooo` one of L+9 bytes.
//!
//! The compressor is the LZF algorithm with the parameters Redis builds it
//! with (a 2^16-slot hash of the next three bytes, "very fast" mode: after a
//! match only its last two positions are hashed, matches of at most 264
//! bytes within 8 KiB, the output bounded by the caller), so a string
//! compresses to the bytes Redis writes and DUMP payloads compare equal. The
//! one difference: Redis leaves its hash table uninitialised between calls,
//! so a stale slot may occasionally offer it a match a fresh table would not;
//! the output is valid either way. Written for Tessera from the format (the
//! `lzf` crate is deprecated and cannot bound the output the way Redis does).

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// The hash table, per thread and reused: a slot holds `generation << 32 |
/// position + 1` and counts only for the call of its generation, so every
/// call sees an empty table without clearing 512 KiB (SAVE compresses
/// millions of short strings).
struct Table {
    slots: Vec<u64>,
    generation: u64,
}

impl Table {
    #[inline]
    fn get(&self, i: usize) -> usize {
        let v = self.slots[i];
        if v >> 32 == self.generation {
            (v & 0xffff_ffff) as usize
        } else {
            0
        }
    }

    #[inline]
    fn set(&mut self, i: usize, pos_plus_one: usize) {
        self.slots[i] = self.generation << 32 | pos_plus_one as u64;
    }
}

thread_local! {
    static TABLE: std::cell::RefCell<Table> = const { std::cell::RefCell::new(Table { slots: Vec::new(), generation: 0 }) };
}

/// Compresses `input` into at most `max_out` bytes; None when it does not
/// fit (or either length is zero), like `lzf_compress` returning 0.
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    if input.is_empty() || max_out == 0 || input.len() >= u32::MAX as usize {
        return None;
    }
    TABLE.with(|t| match t.try_borrow_mut() {
        Ok(mut t) => {
            if t.slots.is_empty() {
                t.slots = vec![0; HSIZE];
            }
            t.generation += 1;
            if t.generation >= u32::MAX as u64 {
                t.slots.iter_mut().for_each(|s| *s = 0);
                t.generation = 1;
            }
            compress_with(input, max_out, &mut t)
        }
        Err(_) => compress_with(
            input,
            max_out,
            &mut Table {
                slots: vec![0; HSIZE],
                generation: 1,
            },
        ),
    })
}

fn compress_with(input: &[u8], max_out: usize, htab: &mut Table) -> Option<Vec<u8>> {
    let in_len = input.len();
    // A little slack: the C code advances `op` past the end before it checks.
    let mut out = vec![0u8; max_out + 4];
    let out_end = max_out;
    let mut op: usize = 1; // start run
    let mut lit: usize = 0;
    let mut ip: usize = 0;
    if in_len >= 3 {
        let mut hval: u32 = ((input[0] as u32) << 8) | input[1] as u32;
        while ip < in_len - 2 {
            hval = (hval << 8) | input[ip + 2] as u32;
            let slot = idx(hval);
            let prev = htab.get(slot);
            htab.set(slot, ip + 1);
            let matched = prev != 0 && {
                let r = prev - 1;
                let off = ip - r - 1;
                off < MAX_OFF && r > 0 && input[r + 2] == input[ip + 2] && input[r] == input[ip] && input[r + 1] == input[ip + 1]
            };
            if matched {
                let r = prev - 1;
                let off = ip - r - 1;
                let mut len: usize = 2;
                let maxlen = (in_len - ip - len).min(MAX_REF);
                if op + 3 + 1 >= out_end && op - (lit == 0) as usize + 3 + 1 >= out_end {
                    return None;
                }
                out[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
                op -= (lit == 0) as usize; // undo run if length is zero
                'scan: {
                    if maxlen > 16 {
                        for _ in 0..16 {
                            len += 1;
                            if input[r + len] != input[ip + len] {
                                break 'scan;
                            }
                        }
                    }
                    loop {
                        len += 1;
                        if !(len < maxlen && input[r + len] == input[ip + len]) {
                            break;
                        }
                    }
                }
                len -= 2; // now the number of octets - 1
                ip += 1;
                if len < 7 {
                    out[op] = ((off >> 8) + (len << 5)) as u8;
                    op += 1;
                } else {
                    out[op] = ((off >> 8) + (7 << 5)) as u8;
                    out[op + 1] = (len - 7) as u8;
                    op += 2;
                }
                out[op] = off as u8;
                op += 1;
                lit = 0;
                op += 1; // start run
                ip += len + 1;
                if ip >= in_len - 2 {
                    break;
                }
                // "Very fast" mode: hash the last two positions of the match.
                ip -= 2;
                hval = ((input[ip] as u32) << 8) | input[ip + 1] as u32;
                hval = (hval << 8) | input[ip + 2] as u32;
                htab.set(idx(hval), ip + 1);
                ip += 1;
                hval = (hval << 8) | input[ip + 2] as u32;
                htab.set(idx(hval), ip + 1);
                ip += 1;
            } else {
                if op >= out_end {
                    return None;
                }
                lit += 1;
                out[op] = input[ip];
                op += 1;
                ip += 1;
                if lit == MAX_LIT {
                    out[op - lit - 1] = (lit - 1) as u8;
                    lit = 0;
                    op += 1;
                }
            }
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < in_len {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1); // end run
    op -= (lit == 0) as usize;
    out.truncate(op);
    Some(out)
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, &'static str> {
    let mut out: Vec<u8> = Vec::new();
    // ztrymalloc: a length no allocation can hold is an error, not an abort.
    out.try_reserve_exact(out_len).map_err(|_| "cannot allocate the LZF output")?;
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < (1 << 5) {
            let n = ctrl + 1;
            if out.len() + n > out_len {
                return Err("LZF output longer than announced");
            }
            let lits = input.get(ip..ip + n).ok_or("LZF literal run past the input")?;
            out.extend_from_slice(lits);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip).ok_or("LZF back reference past the input")? as usize;
                ip += 1;
            }
            let lo = *input.get(ip).ok_or("LZF back reference past the input")? as usize;
            ip += 1;
            let dist = ((ctrl & 0x1f) << 8) + lo + 1;
            let n = len + 2;
            if out.len() + n > out_len {
                return Err("LZF output longer than announced");
            }
            if dist > out.len() {
                return Err("LZF back reference before the start");
            }
            let from = out.len() - dist;
            if dist >= n {
                out.extend_from_within(from..from + n);
            } else {
                for i in 0..n {
                    let b = out[from + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != out_len {
        return Err("LZF output shorter than announced");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) {
        if let Some(c) = compress(data, data.len() + 64) {
            assert_eq!(decompress(&c, data.len()).unwrap(), data, "len {}", data.len());
        }
    }

    #[test]
    fn round_trips() {
        roundtrip(b"a");
        roundtrip(b"ab");
        roundtrip(b"abc");
        roundtrip(&[b'a'; 1000]);
        roundtrip(b"hello hello hello hello hello world world world");
        let mut x = 12345u64;
        for n in [5usize, 31, 32, 33, 64, 300, 5000, 70_000] {
            let v: Vec<u8> = (0..n).map(|i| (crate::util::rand::next(&mut x) % 4) as u8 + (i % 3) as u8).collect();
            roundtrip(&v);
            let v: Vec<u8> = (0..n).map(|_| crate::util::rand::next(&mut x) as u8).collect();
            roundtrip(&v);
        }
    }

    /// What Redis 7.0.15 writes (the LZF part of `DUMP` payloads).
    #[test]
    fn compresses_like_redis() {
        assert_eq!(compress(&[b'a'; 32], 28).unwrap(), b"\x01aa\xe0\x13\x00\x01aa");
        let s = b"hello hello hello hello hello world world world";
        assert_eq!(compress(s, s.len() - 4).unwrap(), b"\x06hello h\xe0\x0e\x05\x04world\xe0\x01\x05\x01ld");
        let s = b"abcdefghij".repeat(50);
        assert_eq!(compress(&s, s.len() - 4).unwrap(), b"\x0aabcdefghija\xe0\xff\x09\xe1\xd6\x0d\x01ij");
        assert_eq!(decompress(b"\x01aa\xe0\x13\x00\x01aa", 32).unwrap(), [b'a'; 32]);
    }

    #[test]
    fn bounded_output_and_corrupt_input() {
        let data = [b'x'; 100];
        assert!(compress(&data, 2).is_none());
        let random: Vec<u8> = (0..=255u8).collect();
        assert!(compress(&random, random.len() - 4).is_none(), "incompressible");
        assert!(decompress(&[0x05, 1, 2], 6).is_err(), "truncated literal");
        assert!(decompress(&[0x00, 1, 0x20, 0x05], 4).is_err(), "reference before start");
        assert!(decompress(&[0x00, 1], 2).is_err(), "short output");
        assert!(decompress(&[0x01, 1, 2], 1).is_err(), "long output");
    }
}
