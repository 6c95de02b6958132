//! The bitmap family, following Redis 7.0.15's bitops.c: SETBIT, GETBIT,
//! BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO.
//!
//! Bitmaps are plain strings (bit 0 is the most significant bit of byte 0).
//! Writes make the string "raw" as Redis's dbUnshareStringValue does; the
//! write hook (WATCH, tracking, blocked clients) fires only when a byte
//! changes or the string grows, as Redis's signalModifiedKey. BITCOUNT,
//! BITPOS and BITOP work on u64 words. BITOP's keys may live on several
//! shards: it is a plan, run under the transaction layer's locks.

use super::strings::{cstr, proto_max_bulk_len, str_of};
use super::table::{Ctx, HopLost, PlanFn, Table, Tx};
use crate::keyspace::{Db, Value};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::notify::{note, NOTIFY_GENERIC, NOTIFY_STRING};
use crate::util::num::string2ll;

pub fn register(t: &mut Table) {
    t.keyed("setbit", setbit);
    t.keyed("getbit", getbit);
    t.keyed("bitcount", bitcount);
    t.keyed("bitpos", bitpos);
    t.plan("bitop", BITOP);
    t.keyed("bitfield", bitfield);
    t.keyed("bitfield_ro", bitfield_ro);
}

const OFFSET_ERR: &str = "ERR bit offset is not an integer or out of range";
const BIT_ERR: &str = "ERR bit is not an integer or out of range";
const TYPE_ERR: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// getBitOffsetFromArgument: a bit offset below proto-max-bulk-len bytes.
/// With `bits` (BITFIELD) a `#N` offset means N * bits.
fn bit_offset(arg: &[u8], bits: Option<u32>) -> Option<u64> {
    let (digits, mul) = match bits {
        Some(b) if arg.first() == Some(&b'#') => (&arg[1..], b as i64),
        _ => (arg, 1),
    };
    let v = string2ll(digits)?.wrapping_mul(mul);
    if v < 0 || (v >> 3) >= proto_max_bulk_len() {
        return None;
    }
    Some(v as u64)
}

/// Reply when a bitmap cannot be allocated (Redis would abort on OOM; a
/// huge proto-max-bulk-len makes that reachable from a client).
const ALLOC_ERR: &str = "ERR Insufficient memory, failed allocating the bitmap";

/// A zeroed string of `len` bytes, or None when it cannot be allocated.
fn zeroed(len: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0);
    Some(v)
}

/// sdsgrowzero: extends `data` to `len` bytes with zeros; false when the
/// memory cannot be allocated (nothing changed then).
fn grow_zero(data: &mut Vec<u8>, len: usize) -> bool {
    if len <= data.len() {
        return true;
    }
    if data.try_reserve_exact(len - data.len()).is_err() {
        return false;
    }
    data.resize(len, 0);
    true
}

/// Fires the write hook for `key` (signalModifiedKey) after an in-place change.
fn signal(db: &mut Db, key: &[u8], now: u64) {
    if let Some(mut e) = db.lookup_write(key, now) {
        e.val_mut();
    }
}

/// Loads 8 bytes as a native-endian word (popcount and equality only).
#[inline]
fn word(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_ne_bytes(a)
}

/// redisPopcount: the number of set bits, a word at a time.
pub fn popcount(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(32);
    let (mut c0, mut c1, mut c2, mut c3) = (0u64, 0u64, 0u64, 0u64);
    for c in &mut chunks {
        c0 += word(&c[0..8]).count_ones() as u64;
        c1 += word(&c[8..16]).count_ones() as u64;
        c2 += word(&c[16..24]).count_ones() as u64;
        c3 += word(&c[24..32]).count_ones() as u64;
    }
    let mut n = c0 + c1 + c2 + c3;
    let mut words = chunks.remainder().chunks_exact(8);
    for w in &mut words {
        n += word(w).count_ones() as u64;
    }
    for &b in words.remainder() {
        n += b.count_ones() as u64;
    }
    n
}

/// redisBitpos: the position of the first `bit` in `s`. For a clear bit in
/// a string of all ones it is the first bit past the end; for a set bit in
/// a string of zeros, -1.
pub fn first_bit(s: &[u8], bit: bool) -> i64 {
    let skip: u8 = if bit { 0 } else { 0xff };
    let skipw: u64 = if bit { 0 } else { u64::MAX };
    let mut i = 0;
    while i + 8 <= s.len() && word(&s[i..]) == skipw {
        i += 8;
    }
    while i < s.len() && s[i] == skip {
        i += 1;
    }
    if i == s.len() {
        return if bit { -1 } else { s.len() as i64 * 8 };
    }
    let b = if bit { s[i] } else { !s[i] };
    (i as i64) * 8 + b.leading_zeros() as i64
}

/// BIT / BYTE unit argument (strcasecmp): Some(true) for BIT.
fn unit(arg: &[u8]) -> Option<bool> {
    let a = cstr(arg);
    if a.eq_ignore_ascii_case(b"bit") {
        Some(true)
    } else if a.eq_ignore_ascii_case(b"byte") {
        Some(false)
    } else {
        None
    }
}

/// The edge masks of a BIT range (bits of the first / last byte outside it),
/// and the range converted to bytes.
/// BITCOUNT / BITPOS's range over a string of `bytes` bytes: negative
/// indexes from the end, clamped to the string; in BIT units, the byte range
/// and the masks of the bits outside it in the first and last bytes.
fn clamp_range(mut start: i64, mut end: i64, bytes: i64, isbit: bool) -> (i64, i64, u8, u8) {
    let totlen = if isbit { bytes << 3 } else { bytes };
    if start < 0 {
        start += totlen;
    }
    if end < 0 {
        end += totlen;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= totlen {
        end = totlen - 1;
    }
    if isbit && start <= end {
        return bit_range(start, end);
    }
    (start, end, 0, 0)
}

fn bit_range(start: i64, end: i64) -> (i64, i64, u8, u8) {
    let first = (!((1u32 << (8 - (start & 7))) - 1) & 0xff) as u8;
    let last = ((1u32 << (7 - (end & 7))) - 1) as u8;
    (start >> 3, end >> 3, first, last)
}

// ---------------------------------------------------------------------------
// SETBIT / GETBIT
// ---------------------------------------------------------------------------

fn setbit(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(off) = bit_offset(args.get(2), None) else {
        return out.error(OFFSET_ERR);
    };
    let on = match string2ll(args.get(3)) {
        Some(v) if v & !1 == 0 => v == 1,
        _ => return out.error(BIT_ERR),
    };
    let key = args.get(1);
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let byte = (off >> 3) as usize;
    let shift = 7 - (off & 7) as u32;
    let found = db.lookup_write(key, now).map(|e| e.val.is_string());
    match found {
        None => {
            let Some(mut data) = zeroed(byte + 1) else { return out.error(ALLOC_ERR) };
            data[byte] |= (on as u8) << shift;
            db.set(key, Value::Str { data, raw: true }, 0, now);
            note(dbi, NOTIFY_STRING, "setbit", key);
            return out.int(0);
        }
        Some(false) => return out.error(err::WRONGTYPE),
        Some(true) => {}
    }
    // dbUnshareStringValue: a change of representation only.
    let Some(data) = db.repr_mut(key).and_then(|v| v.make_raw()) else {
        return out.error(err::WRONGTYPE);
    };
    let dirty = data.len() < byte + 1;
    if !grow_zero(data, byte + 1) {
        return out.error(ALLOC_ERR);
    }
    let old = (data[byte] >> shift) & 1 == 1;
    if dirty || old != on {
        data[byte] = (data[byte] & !(1 << shift)) | ((on as u8) << shift);
        signal(db, key, now);
        note(dbi, NOTIFY_STRING, "setbit", key);
    }
    out.int(old as i64);
}

fn getbit(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Some(off) = bit_offset(args.get(2), None) else {
        return out.error(OFFSET_ERR);
    };
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.int(0) };
    let mut buf = [0u8; 20];
    let Some(s) = str_of(&e.val, &mut buf) else {
        return out.error(err::WRONGTYPE);
    };
    let byte = (off >> 3) as usize;
    let bit = byte < s.len() && (s[byte] >> (7 - (off & 7))) & 1 == 1;
    out.int(bit as i64);
}

// ---------------------------------------------------------------------------
// BITCOUNT / BITPOS
// ---------------------------------------------------------------------------

fn bitcount(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let argc = args.len();
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.int(0) };
    let mut buf = [0u8; 20];
    let Some(p) = str_of(&e.val, &mut buf) else {
        return out.error(err::WRONGTYPE);
    };
    let (mut start, mut end);
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    if argc == 4 || argc == 5 {
        let totlen = p.len() as i64;
        let Some(s) = string2ll(args.get(2)) else { return out.error(err::NOT_INT) };
        let Some(e) = string2ll(args.get(3)) else { return out.error(err::NOT_INT) };
        (start, end) = (s, e);
        if start < 0 && end < 0 && start > end {
            return out.int(0);
        }
        let mut isbit = false;
        if argc == 5 {
            match unit(args.get(4)) {
                Some(b) => isbit = b,
                None => return out.error(err::SYNTAX),
            }
        }
        (start, end, first_mask, last_mask) = clamp_range(start, end, totlen, isbit);
    } else if argc == 2 {
        start = 0;
        end = p.len() as i64 - 1;
    } else {
        return out.error(err::SYNTAX);
    }
    if start > end {
        return out.int(0);
    }
    let (s, e) = (start as usize, end as usize);
    let mut count = popcount(&p[s..=e]) as i64;
    count -= (p[s] & first_mask).count_ones() as i64;
    count -= (p[e] & last_mask).count_ones() as i64;
    out.int(count);
}

fn bitpos(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let argc = args.len();
    let bit = match string2ll(args.get(2)) {
        Some(b @ (0 | 1)) => b == 1,
        Some(_) => return out.error("ERR The bit argument must be 1 or 0."),
        None => return out.error(err::NOT_INT),
    };
    let Some(e) = ctx.lookup_read(args.get(1)) else {
        return out.int(if bit { -1 } else { 0 });
    };
    let mut buf = [0u8; 20];
    let Some(p) = str_of(&e.val, &mut buf) else {
        return out.error(err::WRONGTYPE);
    };
    let (mut start, mut end);
    let mut end_given = false;
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    if (4..=6).contains(&argc) {
        let totlen = p.len() as i64;
        let Some(s) = string2ll(args.get(3)) else { return out.error(err::NOT_INT) };
        start = s;
        let mut isbit = false;
        if argc == 6 {
            match unit(args.get(5)) {
                Some(b) => isbit = b,
                None => return out.error(err::SYNTAX),
            }
        }
        if argc >= 5 {
            let Some(e) = string2ll(args.get(4)) else { return out.error(err::NOT_INT) };
            end = e;
            end_given = true;
        } else if isbit {
            end = (totlen << 3) + 7;
        } else {
            end = totlen - 1;
        }
        (start, end, first_mask, last_mask) = clamp_range(start, end, totlen, isbit);
    } else if argc == 3 {
        start = 0;
        end = p.len() as i64 - 1;
    } else {
        return out.error(err::SYNTAX);
    }
    if start > end {
        return out.int(-1);
    }
    let mut bytes = end - start + 1;
    let pos = 'search: {
        if first_mask != 0 {
            let mut c = if bit {
                p[start as usize] & !first_mask
            } else {
                p[start as usize] | first_mask
            };
            if last_mask != 0 && bytes == 1 {
                c = if bit { c & !last_mask } else { c | last_mask };
            }
            let pos = first_bit(&[c], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'search pos;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - (last_mask != 0) as i64;
        if cur > 0 {
            let s = start as usize;
            let pos = first_bit(&p[s..s + cur as usize], bit);
            if bytes == cur || (pos != -1 && pos != cur << 3) {
                break 'search pos;
            }
            start += cur;
            bytes -= cur;
        }
        let c = if bit { p[end as usize] & !last_mask } else { p[end as usize] | last_mask };
        first_bit(&[c], bit)
    };
    if end_given && !bit && pos == bytes << 3 {
        return out.int(-1);
    }
    out.int(if pos != -1 { pos + (start << 3) } else { pos });
}

// ---------------------------------------------------------------------------
// BITOP
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// The result of `op` over the sources (None = missing key, an empty
/// string): as long as the longest source, shorter ones padded with zeros.
pub fn bitop_compute(op: BitOp, src: &[Option<&[u8]>]) -> Vec<u8> {
    let lens = src.iter().map(|s| s.map_or(0, |s| s.len()));
    let maxlen = lens.max().unwrap_or(0);
    if maxlen == 0 {
        return Vec::new();
    }
    let mut res = vec![0u8; maxlen];
    let first = src[0].unwrap_or(b"");
    res[..first.len()].copy_from_slice(first);
    if op == BitOp::Not {
        let mut it = res.chunks_exact_mut(8);
        for w in &mut it {
            let v = !word(w);
            w.copy_from_slice(&v.to_ne_bytes());
        }
        for b in it.into_remainder() {
            *b = !*b;
        }
        return res;
    }
    for s in &src[1..] {
        let s = s.unwrap_or(b"");
        let n = s.len();
        {
            let (head, _) = res.split_at_mut(n);
            let mut rw = head.chunks_exact_mut(8);
            let mut sw = s.chunks_exact(8);
            for (r, x) in (&mut rw).zip(&mut sw) {
                let (a, b) = (word(r), word(x));
                let v = match op {
                    BitOp::And => a & b,
                    BitOp::Or => a | b,
                    _ => a ^ b,
                };
                r.copy_from_slice(&v.to_ne_bytes());
            }
            for (r, &x) in rw.into_remainder().iter_mut().zip(sw.remainder()) {
                match op {
                    BitOp::And => *r &= x,
                    BitOp::Or => *r |= x,
                    _ => *r ^= x,
                }
            }
        }
        if op == BitOp::And {
            res[n..].fill(0);
        }
    }
    res
}

/// Stores BITOP's result at `dst` (setKey, a raw string; no TTL) or deletes
/// `dst` when the result is empty; replies the result's length.
fn bitop_store(ctx: &mut Ctx, dst: &[u8], res: Vec<u8>, out: &mut Reply) {
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let n = res.len();
    if n > 0 {
        db.lookup_write(dst, now);
        db.set(dst, Value::Str { data: res, raw: true }, 0, now);
        note(dbi, NOTIFY_STRING, "set", dst);
    } else if db.remove(dst).is_some() {
        note(dbi, NOTIFY_GENERIC, "del", dst);
    }
    out.int(n as i64);
}

/// BITOP on the destination's shard: `partials` are the other shards'
/// results over their own sources (see [`bitop_plan`]); the sources living
/// here (`local`) are read in place. NOT's one source, computed elsewhere,
/// arrives as the result itself.
fn bitop_at_dst(ctx: &mut Ctx, op: BitOp, dst: &[u8], local: &[Vec<u8>], partials: Vec<Option<Vec<u8>>>, out: &mut Reply) {
    for k in local {
        if let Some(e) = ctx.lookup_read(k) {
            if !e.val.is_string() {
                return out.error(err::WRONGTYPE);
            }
        }
    }
    // NOT's result, or one shard's result with nothing to fold in: stored as
    // it came (no second 64 MiB allocation for the common two-shard case).
    if local.is_empty() && partials.len() == 1 {
        let res = partials.into_iter().next().flatten().unwrap_or_default();
        // AND with a missing key's shard is all zeros of no length here: the
        // only partial is the whole result either way.
        return bitop_store(ctx, dst, res, out);
    }
    let db = ctx.db();
    let here: Vec<Option<std::borrow::Cow<'_, [u8]>>> = local.iter().map(|k| db.entry(k).and_then(|e| e.val.str_bytes())).collect();
    let srcs: Vec<Option<&[u8]>> = partials.iter().map(|p| p.as_deref()).chain(here.iter().map(|h| h.as_deref())).collect();
    let res = bitop_compute(op, &srcs);
    drop(srcs);
    drop(here);
    drop(partials);
    bitop_store(ctx, dst, res, out);
}

/// One shard's part of a cross-shard BITOP: the operation over the sources
/// it owns (read in place), None when they are all missing, Err when one is
/// not a string.
type Partial = Result<Option<Vec<u8>>, ()>;

const BITOP: PlanFn = |tx, args, out| Box::pin(bitop_plan(tx, args, out));

/// BITOP over shards. AND, OR and XOR are associative and commutative, and a
/// shorter operand counts as zero-padded, so each shard other than the
/// destination's folds its own sources in place and sends one result (a
/// move, not a copy of every source: measured, copying two 64 MiB sources
/// across shards cost 8x Redis's time, nearly all of it in page faults); the
/// destination's shard folds those with its own sources and stores.
async fn bitop_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply) -> Result<(), HopLost> {
    let name = cstr(args.get(1));
    let op = if name.eq_ignore_ascii_case(b"and") {
        BitOp::And
    } else if name.eq_ignore_ascii_case(b"or") {
        BitOp::Or
    } else if name.eq_ignore_ascii_case(b"xor") {
        BitOp::Xor
    } else if name.eq_ignore_ascii_case(b"not") {
        BitOp::Not
    } else {
        out.error(err::SYNTAX);
        return Ok(());
    };
    if op == BitOp::Not && args.len() != 4 {
        out.error("ERR BITOP NOT must be called with a single source key.");
        return Ok(());
    }
    let dst = args.get(2).to_vec();
    let dst_shard = tx.shard_of_arg(2);
    let resp3 = out.resp3();
    let mut local: Vec<Vec<u8>> = Vec::new();
    let mut remote: Vec<(usize, Vec<u8>)> = Vec::new();
    for j in 3..args.len() {
        let s = tx.shard_of_arg(j);
        if s == dst_shard {
            local.push(args.get(j).to_vec());
        } else {
            remote.push((s, args.get(j).to_vec()));
        }
    }
    let mut partials: Vec<Option<Vec<u8>>> = Vec::new();
    if !remote.is_empty() {
        let groups = crate::util::group_by_shard(remote);
        let parts: Vec<_> = groups
            .into_iter()
            .map(|(s, ks)| {
                (s, move |ctx: &mut Ctx| -> Partial {
                    let mut present = false;
                    for k in &ks {
                        match ctx.lookup_read(k) {
                            None => {}
                            Some(e) if e.val.is_string() => present = true,
                            Some(_) => return Err(()),
                        }
                    }
                    if !present && op != BitOp::Not {
                        return Ok(None);
                    }
                    let db = ctx.db();
                    let vals: Vec<Option<std::borrow::Cow<'_, [u8]>>> = ks.iter().map(|k| db.entry(k).and_then(|e| e.val.str_bytes())).collect();
                    let srcs: Vec<Option<&[u8]>> = vals.iter().map(|v| v.as_deref()).collect();
                    Ok(Some(bitop_compute(op, &srcs)))
                })
            })
            .collect();
        for p in tx.hop_each(parts).await? {
            match p {
                Ok(p) => partials.push(p),
                Err(()) => {
                    out.error(err::WRONGTYPE);
                    return Ok(());
                }
            }
        }
    }
    let bytes = tx
        .hop(dst_shard, move |ctx: &mut Ctx| {
            let mut r = Reply::new(resp3);
            bitop_at_dst(ctx, op, &dst, &local, partials, &mut r);
            r.buf
        })
        .await?;
    out.raw(&bytes);
    Ok(())
}

// ---------------------------------------------------------------------------
// BITFIELD / BITFIELD_RO
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FieldOp {
    Get,
    Set,
    Incr,
}

#[derive(Clone, Copy, Debug)]
struct Field {
    offset: u64,
    val: i64,
    op: FieldOp,
    ow: Overflow,
    bits: u32,
    signed: bool,
}

/// getBitfieldTypeFromArgument: (signed, bits) for i1..i64 / u1..u63.
fn field_type(arg: &[u8]) -> Option<(bool, u32)> {
    let p = cstr(arg);
    let signed = match p.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return None,
    };
    let n = string2ll(&p[1..])?;
    if n < 1 || (signed && n > 64) || (!signed && n > 63) {
        return None;
    }
    Some((signed, n as u32))
}

/// getUnsignedBitfield: `bits` bits from bit `offset`, most significant first.
fn get_field(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..bits as u64 {
        let o = offset + j;
        let b = (p[(o >> 3) as usize] >> (7 - (o & 7))) & 1;
        v = (v << 1) | b as u64;
    }
    v
}

/// getSignedBitfield: the field sign-extended.
fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_field(p, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

/// setUnsignedBitfield: the low `bits` bits of `v` at bit `offset`.
fn set_field(p: &mut [u8], offset: u64, bits: u32, v: u64) {
    for j in 0..bits as u64 {
        let bit = ((v >> (bits as u64 - 1 - j)) & 1) as u8;
        let o = offset + j;
        let shift = 7 - (o & 7);
        let byte = &mut p[(o >> 3) as usize];
        *byte = (*byte & !(1 << shift)) | (bit << shift);
    }
}

/// checkUnsignedBitfieldOverflow: whether value + incr leaves u<bits>, and
/// the value to store instead (for WRAP and SAT).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (bool, u64) {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || {
        let mask = if bits >= 64 { 0 } else { u64::MAX << bits };
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > maxincr) {
        return (true, if ow == Overflow::Wrap { wrap() } else { max });
    }
    if incr < 0 && incr < minincr {
        return (true, if ow == Overflow::Wrap { wrap() } else { 0 });
    }
    (false, 0)
}

/// checkSignedBitfieldOverflow, the same for i<bits>.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (bool, i64) {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        return (true, if ow == Overflow::Wrap { wrap() } else { max });
    }
    if value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        return (true, if ow == Overflow::Wrap { wrap() } else { min });
    }
    (false, 0)
}

/// Parses the subcommands; None after replying an error.
fn parse_fields(args: &Args, out: &mut Reply) -> Option<Vec<Field>> {
    let argc = args.len();
    let mut ops = Vec::new();
    let mut ow = Overflow::Wrap;
    let mut j = 2;
    while j < argc {
        let rem = argc - j - 1;
        let sub = cstr(args.get(j));
        let op = if sub.eq_ignore_ascii_case(b"get") && rem >= 2 {
            FieldOp::Get
        } else if sub.eq_ignore_ascii_case(b"set") && rem >= 3 {
            FieldOp::Set
        } else if sub.eq_ignore_ascii_case(b"incrby") && rem >= 3 {
            FieldOp::Incr
        } else if sub.eq_ignore_ascii_case(b"overflow") && rem >= 1 {
            let t = cstr(args.get(j + 1));
            ow = if t.eq_ignore_ascii_case(b"wrap") {
                Overflow::Wrap
            } else if t.eq_ignore_ascii_case(b"sat") {
                Overflow::Sat
            } else if t.eq_ignore_ascii_case(b"fail") {
                Overflow::Fail
            } else {
                out.error("ERR Invalid OVERFLOW type specified");
                return None;
            };
            j += 2;
            continue;
        } else {
            out.error(err::SYNTAX);
            return None;
        };
        let Some((signed, bits)) = field_type(args.get(j + 1)) else {
            out.error(TYPE_ERR);
            return None;
        };
        let Some(offset) = bit_offset(args.get(j + 2), Some(bits)) else {
            out.error(OFFSET_ERR);
            return None;
        };
        let mut val = 0;
        if op != FieldOp::Get {
            match string2ll(args.get(j + 3)) {
                Some(v) => val = v,
                None => {
                    out.error(err::NOT_INT);
                    return None;
                }
            }
        }
        ops.push(Field {
            offset,
            val,
            op,
            ow,
            bits,
            signed,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Some(ops)
}

/// A GET on a string that may be shorter than the field: read from a
/// zero-padded copy of the (at most 9) bytes it covers.
fn reply_get(p: &[u8], f: &Field, out: &mut Reply) {
    let byte = f.offset >> 3;
    let mut buf = [0u8; 9];
    if byte < p.len() as u64 {
        let s = &p[byte as usize..];
        let n = s.len().min(9);
        buf[..n].copy_from_slice(&s[..n]);
    }
    let off = f.offset - byte * 8;
    if f.signed {
        out.int(get_signed(&buf, off, f.bits));
    } else {
        out.int(get_field(&buf, off, f.bits) as i64);
    }
}

/// Runs the operations on `p` (long enough for every write); replies each
/// and returns how many changed the string (`dirty`: it grew, so all count).
fn run_fields(p: &mut [u8], ops: &[Field], dirty: bool, out: &mut Reply) -> usize {
    let mut changes = 0;
    out.array_len(ops.len());
    for f in ops {
        if f.op == FieldOp::Get {
            reply_get(p, f, out);
            continue;
        }
        if f.signed {
            let old = get_signed(p, f.offset, f.bits);
            let (overflow, new, ret) = if f.op == FieldOp::Incr {
                let (o, w) = signed_overflow(old, f.val, f.bits, f.ow);
                let new = if o { w } else { old.wrapping_add(f.val) };
                (o, new, new)
            } else {
                let (o, w) = signed_overflow(f.val, 0, f.bits, f.ow);
                (o, if o { w } else { f.val }, old)
            };
            if overflow && f.ow == Overflow::Fail {
                out.null();
                continue;
            }
            out.int(ret);
            set_field(p, f.offset, f.bits, new as u64);
            if dirty || old != new {
                changes += 1;
            }
        } else {
            let old = get_field(p, f.offset, f.bits);
            let (overflow, new, ret) = if f.op == FieldOp::Incr {
                let (o, w) = unsigned_overflow(old, f.val, f.bits, f.ow);
                let new = if o { w } else { old.wrapping_add(f.val as u64) };
                (o, new, new)
            } else {
                let v = f.val as u64;
                let (o, w) = unsigned_overflow(v, 0, f.bits, f.ow);
                (o, if o { w } else { v }, old)
            };
            if overflow && f.ow == Overflow::Fail {
                out.null();
                continue;
            }
            out.int(ret as i64);
            set_field(p, f.offset, f.bits, new);
            if dirty || old != new {
                changes += 1;
            }
        }
    }
    changes
}

fn bitfield_generic(ctx: &mut Ctx, args: Args, out: &mut Reply, ro: bool) {
    let Some(ops) = parse_fields(&args, out) else { return };
    let key = args.get(1);
    let highest = ops.iter().filter(|f| f.op != FieldOp::Get).map(|f| f.offset + f.bits as u64 - 1).max();
    let Some(highest) = highest else {
        // Only GETs: a read.
        let e = ctx.lookup_read(key);
        let mut buf = [0u8; 20];
        let p: &[u8] = match e {
            None => b"",
            Some(e) => match str_of(&e.val, &mut buf) {
                Some(p) => p,
                None => return out.error(err::WRONGTYPE),
            },
        };
        out.array_len(ops.len());
        for f in &ops {
            reply_get(p, f, out);
        }
        return;
    };
    if ro {
        return out.error("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let (now, dbi) = (ctx.now, ctx.db);
    let db = ctx.db();
    let need = (highest >> 3) as usize + 1;
    let found = db.lookup_write(key, now).map(|e| e.val.is_string());
    match found {
        None => {
            let Some(mut data) = zeroed(need) else { return out.error(ALLOC_ERR) };
            let changes = run_fields(&mut data, &ops, true, out);
            db.set(key, Value::Str { data, raw: true }, 0, now);
            if changes > 0 {
                note(dbi, NOTIFY_STRING, "setbit", key);
            }
            return;
        }
        Some(false) => return out.error(err::WRONGTYPE),
        Some(true) => {}
    }
    let Some(data) = db.repr_mut(key).and_then(|v| v.make_raw()) else {
        return out.error(err::WRONGTYPE);
    };
    let dirty = data.len() < need;
    if !grow_zero(data, need) {
        return out.error(ALLOC_ERR);
    }
    let changes = run_fields(data, &ops, dirty, out);
    if changes > 0 {
        signal(db, key, now);
        note(dbi, NOTIFY_STRING, "setbit", key);
    }
}

fn bitfield(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    bitfield_generic(ctx, args, out, false);
}

fn bitfield_ro(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    bitfield_generic(ctx, args, out, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_pos(s: &[u8], bit: bool) -> i64 {
        for i in 0..s.len() * 8 {
            if ((s[i / 8] >> (7 - i % 8)) & 1 == 1) == bit {
                return i as i64;
            }
        }
        if bit {
            -1
        } else {
            s.len() as i64 * 8
        }
    }

    #[test]
    fn word_paths_match_bytewise() {
        let mut x = 0x9e3779b97f4a7c15u64;
        for len in 0..80usize {
            let mut s: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let naive: u64 = s.iter().map(|b| b.count_ones() as u64).sum();
            assert_eq!(popcount(&s), naive);
            assert_eq!(first_bit(&s, true), naive_pos(&s, true));
            assert_eq!(first_bit(&s, false), naive_pos(&s, false));
            if len > 3 {
                s[..len - 2].fill(0xff);
                assert_eq!(first_bit(&s, false), naive_pos(&s, false));
                s[..len - 2].fill(0);
                assert_eq!(first_bit(&s, true), naive_pos(&s, true));
            }
            let t: Vec<u8> = s.iter().rev().copied().take(len / 2 + 1).collect();
            for op in [BitOp::And, BitOp::Or, BitOp::Xor] {
                let r = bitop_compute(op, &[Some(&s), Some(&t), None]);
                assert_eq!(r.len(), s.len().max(t.len()));
                for (i, &b) in r.iter().enumerate() {
                    let (a, c) = (s.get(i).copied().unwrap_or(0), t.get(i).copied().unwrap_or(0));
                    let e = match op {
                        BitOp::And => 0,
                        BitOp::Or => a | c,
                        _ => a ^ c,
                    };
                    assert_eq!(b, e);
                }
            }
            let r = bitop_compute(BitOp::Not, &[Some(&s)]);
            assert!(r.iter().zip(&s).all(|(a, b)| *a == !*b));
        }
    }

    #[test]
    fn field_overflow_rules() {
        assert_eq!(unsigned_overflow(255, 1, 8, Overflow::Wrap), (true, 0));
        assert_eq!(unsigned_overflow(255, 1, 8, Overflow::Sat), (true, 255));
        assert_eq!(unsigned_overflow(0, -1, 8, Overflow::Sat), (true, 0));
        assert_eq!(unsigned_overflow(0, -1, 8, Overflow::Wrap), (true, 255));
        assert_eq!(signed_overflow(127, 1, 8, Overflow::Wrap), (true, -128));
        assert_eq!(signed_overflow(-128, -1, 8, Overflow::Sat), (true, -128));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Wrap), (true, i64::MIN));
        assert_eq!(signed_overflow(5, -3, 64, Overflow::Wrap), (false, 0));
        let mut p = [0u8; 3];
        set_field(&mut p, 3, 13, 0x1abc);
        assert_eq!(get_field(&p, 3, 13), 0x1abc);
        assert_eq!(get_signed(&p, 3, 13), 0x1abc - 0x2000);
    }
}
