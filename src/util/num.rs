//! Number parsing/formatting with the exact semantics of Redis 7.0.15
//! (util.c `string2ll`, `string2d`, `d2string`, `ll2string`, networking.c
//! `addReplyDouble` formatting, and INCRBYFLOAT's `long double` arithmetic).
//!
//! `string2l` is not provided: on LP64 targets `long` == `long long`, so Redis
//! `string2l` is identical to `string2ll`.
//!
//! Float parsing and `%.17g` formatting go through the platform libc
//! (`strtod`, `snprintf`) so results are byte-identical to redis-server built
//! on the same libc. INCRBYFLOAT needs C `long double` and lives in
//! `ldouble.c` (compiled by build.rs).

use std::os::raw::{c_char, c_int};

/// Redis `LONG_STR_SIZE`: strings this long or longer are never integers.
const LONG_STR_SIZE: usize = 21;

/// Redis `MAX_LONG_DOUBLE_CHARS`.
pub const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

/// Strict string -> i64, as Redis `string2ll()`:
/// no leading/trailing spaces, no `+`, no leading zeros (except `"0"`),
/// `"-0"` is rejected, empty or >= 21 bytes rejected, overflow rejected.
/// Accepts exactly i64::MIN..=i64::MAX in canonical decimal form.
pub fn string2ll(s: &[u8]) -> Option<i64> {
    let slen = s.len();
    if slen == 0 || slen >= LONG_STR_SIZE {
        return None;
    }
    if slen == 1 && s[0] == b'0' {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let first = *digits.first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v: u64 = (first - b'0') as u64;
    for &c in &digits[1..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if negative {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        if v > i64::MAX as u64 {
            return None;
        }
        Some(v as i64)
    }
}

/// Redis `ll2string` into a stack buffer (i64::MIN needs all 20 bytes);
/// returns the digits. For hot paths that must not allocate.
#[inline]
pub fn i64_to_buf(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Append the decimal representation of `v` (as Redis `ll2string`).
/// No allocation beyond growing `out`.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(i64_to_buf(v, &mut buf));
}

/// Append the decimal representation of `v` (unsigned variant, like Redis
/// `ull2string`).
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "emscripten"))]
unsafe fn errno_ptr() -> *mut c_int {
    libc::__errno_location()
}
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "dragonfly"))]
unsafe fn errno_ptr() -> *mut c_int {
    libc::__error()
}
#[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
unsafe fn errno_ptr() -> *mut c_int {
    libc::__errno()
}

/// C-locale `isspace()`.
#[inline]
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Strict string -> f64, as Redis `string2d()` (libc `strtod`):
/// rejects empty input, leading whitespace, any trailing bytes (including an
/// embedded NUL), overflow to +-HUGE_VAL, underflow to zero, and NaN.
/// Accepts whatever strtod accepts in full, e.g. `"inf"`, `"-Infinity"`,
/// `"1e5"`, hex floats `"0x10"` / `"0x1p-2"`, `".5"`, `"5."`, `"+1"`,
/// denormals (ERANGE but non-zero).
pub fn string2d(s: &[u8]) -> Option<f64> {
    let slen = s.len();
    if slen == 0 || c_isspace(s[0]) {
        return None;
    }
    // NUL-terminated copy: on the stack for the usual short inputs.
    let mut stack = [0u8; 128];
    let mut heap: Vec<u8>;
    let buf: &mut [u8] = if slen < stack.len() {
        stack[..slen].copy_from_slice(s);
        stack[slen] = 0;
        &mut stack[..=slen]
    } else {
        heap = Vec::with_capacity(slen + 1);
        heap.extend_from_slice(s);
        heap.push(0);
        &mut heap[..]
    };
    let start = buf.as_ptr() as *const c_char;
    let mut end: *mut c_char = std::ptr::null_mut();
    // SAFETY: `buf` is NUL-terminated and outlives the call; errno is the
    // calling thread's.
    let (v, err) = unsafe {
        *errno_ptr() = 0;
        let v = libc::strtod(start, &mut end);
        (v, *errno_ptr())
    };
    let consumed = (end as usize).wrapping_sub(start as usize);
    if consumed != slen {
        return None;
    }
    if err == libc::ERANGE && (v.is_infinite() || v == 0.0) {
        return None;
    }
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// Redis `double2ll()`: the value as i64 if it is integral and within
/// [-(2^62), 2^62] (where the conversion is exact).
pub fn double2ll(d: f64) -> Option<i64> {
    // (double)(-LLONG_MAX/2) and (double)(LLONG_MAX/2) are -2^62 and 2^62.
    let lim = (i64::MAX / 2) as f64;
    if d < -lim || d > lim || d.is_nan() {
        return None;
    }
    let ll = d as i64;
    if ll as f64 == d {
        Some(ll)
    } else {
        None
    }
}

fn snprintf_g17(out: &mut Vec<u8>, v: f64) {
    let mut buf = [0u8; 128];
    // SAFETY: the format string is NUL-terminated and takes one double; the
    // buffer size is passed, so snprintf never writes past it.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut c_char, buf.len(), c"%.17g".as_ptr(), v) };
    if n > 0 {
        let n = (n as usize).min(buf.len() - 1);
        out.extend_from_slice(&buf[..n]);
    }
}

/// Append the Redis 7.0 `d2string()` representation of `v`:
/// `"nan"`, `"inf"`, `"-inf"`, `"0"`, `"-0"`, integers in [-(2^62), 2^62]
/// printed without a fraction, otherwise `"%.17g"`.
///
/// Note: this is what Redis uses e.g. for sorted-set scores stored in
/// listpacks. Double *replies* (ZSCORE, ZINCRBY, ... in RESP2 and RESP3) use
/// [`fmt_double_reply`] instead, which differs for large integral values
/// (`1e17` -> `"1e+17"` there, `"100000000000000000"` here).
pub fn d2string(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
    } else if v.is_infinite() {
        out.extend_from_slice(if v < 0.0 { b"-inf" } else { b"inf" });
    } else if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
    } else if let Some(ll) = double2ll(v) {
        write_i64(out, ll);
    } else {
        snprintf_g17(out, v);
    }
}

/// Append the text Redis 7.0 `addReplyDouble()` sends for `v` (the RESP2
/// bulk string payload, or the RESP3 double payload after `,`):
/// `"inf"` / `"-inf"` for infinities, otherwise libc `"%.17g"`
/// (so NaN is glibc's `"nan"` or `"-nan"`).
pub fn fmt_double_reply(out: &mut Vec<u8>, v: f64) {
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else {
        snprintf_g17(out, v);
    }
}

/// INCRBYFLOAT failure. Both variants map to fixed Redis 7.0.15 error
/// replies (verified against redis-server 7.0.15):
///
/// * `NotFloat`: `-ERR value is not a valid float` — given both when the
///   stored string is not a valid float (checked first) and when the
///   increment is not a valid float.
/// * `NanOrInf`: `-ERR increment would produce NaN or Infinity` — the sum
///   is NaN or +-Infinity (e.g. `INCRBYFLOAT k inf`, or overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrFloatError {
    NotFloat,
    NanOrInf,
}

impl IncrFloatError {
    /// The error reply text, without the leading `-` and trailing CRLF.
    pub fn message(self) -> &'static str {
        match self {
            IncrFloatError::NotFloat => "ERR value is not a valid float",
            IncrFloatError::NanOrInf => "ERR increment would produce NaN or Infinity",
        }
    }
}

/// HINCRBYFLOAT failure, in the order Redis 7.0.15 checks them:
///
/// * `IncrNotFloat`: `-ERR value is not a valid float` (bad increment,
///   checked before anything else, even before the key type).
/// * `IncrNanOrInf`: `-ERR value is NaN or Infinity` (increment is +-inf).
/// * `HashValueNotFloat`: `-ERR hash value is not a float` (stored field).
/// * `NanOrInf`: `-ERR increment would produce NaN or Infinity` (the sum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HIncrFloatError {
    IncrNotFloat,
    IncrNanOrInf,
    HashValueNotFloat,
    NanOrInf,
}

impl HIncrFloatError {
    /// The error reply text, without the leading `-` and trailing CRLF.
    pub fn message(self) -> &'static str {
        match self {
            HIncrFloatError::IncrNotFloat => "ERR value is not a valid float",
            HIncrFloatError::IncrNanOrInf => "ERR value is NaN or Infinity",
            HIncrFloatError::HashValueNotFloat => "ERR hash value is not a float",
            HIncrFloatError::NanOrInf => "ERR increment would produce NaN or Infinity",
        }
    }
}

const LD_OK: c_int = 0;
const LD_CUR_NOT_FLOAT: c_int = 1;
const LD_INCR_NOT_FLOAT: c_int = 2;
const LD_NAN_OR_INF: c_int = 3;
const LD_OUT_TOO_SMALL: c_int = 4;

extern "C" {
    fn tessera_incrbyfloat(
        cur: *const c_char,
        curlen: usize,
        has_cur: c_int,
        incr: *const c_char,
        incrlen: usize,
        out: *mut c_char,
        outcap: usize,
        outlen: *mut usize,
    ) -> c_int;
    fn tessera_string2ld_valid(s: *const c_char, slen: usize) -> c_int;
}

/// Raw call: returns the C status code and the formatted result.
fn incr_raw(cur: Option<&[u8]>, incr: &[u8]) -> (c_int, Vec<u8>) {
    let (cp, cl, has) = match cur {
        Some(c) => (c.as_ptr() as *const c_char, c.len(), 1),
        None => (std::ptr::null(), 0, 0),
    };
    let mut buf = [0u8; MAX_LONG_DOUBLE_CHARS];
    let mut outlen: usize = 0;
    // SAFETY: all pointers are valid for the given lengths; the C side only
    // reads `cur`/`incr` within their lengths and writes at most `outcap`
    // bytes to `out`.
    let rc = unsafe {
        tessera_incrbyfloat(
            cp,
            cl,
            has,
            incr.as_ptr() as *const c_char,
            incr.len(),
            buf.as_mut_ptr() as *mut c_char,
            buf.len(),
            &mut outlen,
        )
    };
    match rc {
        LD_OK => (rc, buf[..outlen.min(buf.len())].to_vec()),
        LD_OUT_TOO_SMALL => {
            // Cannot happen (the C side formats into a buffer of the same
            // size), but handle it without truncation anyway.
            let mut v = vec![0u8; outlen];
            let mut l2: usize = 0;
            // SAFETY: as above, with a buffer of the required size.
            let rc2 = unsafe {
                tessera_incrbyfloat(
                    cp,
                    cl,
                    has,
                    incr.as_ptr() as *const c_char,
                    incr.len(),
                    v.as_mut_ptr() as *mut c_char,
                    v.len(),
                    &mut l2,
                )
            };
            v.truncate(l2.min(v.len()));
            (if rc2 == LD_OUT_TOO_SMALL { LD_NAN_OR_INF } else { rc2 }, v)
        }
        _ => (rc, Vec::new()),
    }
}

/// INCRBYFLOAT arithmetic exactly as Redis 7.0.15: `cur` is the stored
/// string value (`None` when the key does not exist, counted as 0), `incr`
/// the increment argument. Both are parsed with Redis `string2ld` rules
/// (strtold; no leading space, no trailing bytes, no overflow / underflow to
/// zero, no NaN, length 1..5119), added as C `long double`, and the sum is
/// formatted as `ld2string(LD_STR_HUMAN)` (`"%.17Lf"`, trailing zeros and
/// `.` trimmed, `"-0"` -> `"0"`).
pub fn incr_by_float(cur: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, IncrFloatError> {
    let (rc, out) = incr_raw(cur, incr);
    match rc {
        LD_OK => Ok(out),
        LD_CUR_NOT_FLOAT | LD_INCR_NOT_FLOAT => Err(IncrFloatError::NotFloat),
        _ => Err(IncrFloatError::NanOrInf),
    }
}

/// HINCRBYFLOAT arithmetic exactly as Redis 7.0.15 (same parsing and
/// formatting as [`incr_by_float`], different check order and errors, see
/// [`HIncrFloatError`]). `cur` is the stored field value, `None` if the
/// field (or key) does not exist. The caller must do the key type check
/// *after* `IncrNotFloat`/`IncrNanOrInf` (Redis validates the increment
/// first), i.e. call [`validate_hincr`] before looking at the key.
pub fn hincr_by_float(cur: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, HIncrFloatError> {
    validate_hincr(incr)?;
    let (rc, out) = incr_raw(cur, incr);
    match rc {
        LD_OK => Ok(out),
        LD_CUR_NOT_FLOAT => Err(HIncrFloatError::HashValueNotFloat),
        LD_INCR_NOT_FLOAT => Err(HIncrFloatError::IncrNotFloat),
        _ => Err(HIncrFloatError::NanOrInf),
    }
}

/// The increment checks HINCRBYFLOAT performs before touching the key.
pub fn validate_hincr(incr: &[u8]) -> Result<(), HIncrFloatError> {
    if !string2ld_valid(incr) {
        return Err(HIncrFloatError::IncrNotFloat);
    }
    // string2ld never yields NaN, so the value is +-inf iff adding it to
    // zero produces a non-finite sum.
    match incr_raw(None, incr).0 {
        LD_NAN_OR_INF => Err(HIncrFloatError::IncrNanOrInf),
        _ => Ok(()),
    }
}

/// True if `s` is a valid float by Redis `string2ld()` rules (C `long
/// double`, which accepts a wider range than f64).
pub fn string2ld_valid(s: &[u8]) -> bool {
    // SAFETY: pointer/length describe a valid slice; C only reads it.
    unsafe { tessera_string2ld_valid(s.as_ptr() as *const c_char, s.len()) != 0 }
}

/// Redis's string2ld as a value (within f64's range; beyond it, ±inf, which
/// every caller treats as out of range as Redis does for long doubles).
pub fn string2ld(s: &[u8]) -> Option<f64> {
    if !string2ld_valid(s) {
        return None;
    }
    std::str::from_utf8(s).ok()?.trim_start().parse::<f64>().ok().filter(|v| !v.is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d2s(v: f64) -> String {
        let mut o = Vec::new();
        d2string(&mut o, v);
        String::from_utf8(o).unwrap()
    }
    fn reply(v: f64) -> String {
        let mut o = Vec::new();
        fmt_double_reply(&mut o, v);
        String::from_utf8(o).unwrap()
    }
    fn ll(v: i64) -> String {
        let mut o = Vec::new();
        write_i64(&mut o, v);
        String::from_utf8(o).unwrap()
    }
    fn ibf(cur: Option<&str>, incr: &str) -> Result<String, IncrFloatError> {
        incr_by_float(cur.map(|s| s.as_bytes()), incr.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn string2ll_cases() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"1"), Some(1));
        assert_eq!(string2ll(b"99"), Some(99));
        assert_eq!(string2ll(b"-99"), Some(-99));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string2ll(b"9223372036854775808"), None);
        assert_eq!(string2ll(b"-9223372036854775809"), None);
        assert_eq!(string2ll(b"18446744073709551615"), None);
        assert_eq!(string2ll(b"18446744073709551616"), None);
        assert_eq!(string2ll(b"99999999999999999999"), None);
        assert_eq!(string2ll(b"-99999999999999999999"), None); // 21 bytes
        assert_eq!(string2ll(b""), None);
        assert_eq!(string2ll(b"-"), None);
        assert_eq!(string2ll(b"-0"), None);
        assert_eq!(string2ll(b"00"), None);
        assert_eq!(string2ll(b"01"), None);
        assert_eq!(string2ll(b"+1"), None);
        assert_eq!(string2ll(b" 1"), None);
        assert_eq!(string2ll(b"1 "), None);
        assert_eq!(string2ll(b"1a"), None);
        assert_eq!(string2ll(b"1\0"), None);
        assert_eq!(string2ll(b"1.0"), None);
        assert_eq!(string2ll(b"0x10"), None);
        assert_eq!(string2ll(b"--1"), None);
        // leading zeros make it too long / invalid anyway
        assert_eq!(string2ll(b"000000000000000000001"), None);
    }

    #[test]
    fn write_i64_cases() {
        for v in [0i64, 1, -1, 9, 10, -10, 12345, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert_eq!(ll(v), v.to_string());
            assert_eq!(string2ll(ll(v).as_bytes()), Some(v));
        }
        let mut o = b"x".to_vec();
        write_u64(&mut o, u64::MAX);
        assert_eq!(o, b"x18446744073709551615");
    }

    #[test]
    fn string2d_cases() {
        assert_eq!(string2d(b"1"), Some(1.0));
        assert_eq!(string2d(b"-1.5"), Some(-1.5));
        assert_eq!(string2d(b"+1.5"), Some(1.5));
        assert_eq!(string2d(b"1e5"), Some(1e5));
        assert_eq!(string2d(b".5"), Some(0.5));
        assert_eq!(string2d(b"5."), Some(5.0));
        assert_eq!(string2d(b"0x10"), Some(16.0));
        assert_eq!(string2d(b"0x1p-2"), Some(0.25));
        assert_eq!(string2d(b"inf"), Some(f64::INFINITY));
        assert_eq!(string2d(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(string2d(b"+inf"), Some(f64::INFINITY));
        assert_eq!(string2d(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(string2d(b"-0"), Some(0.0));
        assert!(string2d(b"-0").unwrap().is_sign_negative());
        assert_eq!(string2d(b"1.7976931348623157e308"), Some(f64::MAX));
        // denormal: ERANGE but not zero -> accepted
        assert_eq!(string2d(b"4.9e-324"), Some(4.9e-324));
        // overflow / underflow to zero
        assert_eq!(string2d(b"1e309"), None);
        assert_eq!(string2d(b"-1e309"), None);
        assert_eq!(string2d(b"1e-400"), None);
        // 0 written as an underflowing literal is zero without ERANGE
        assert_eq!(string2d(b"0e-400"), Some(0.0));
        assert_eq!(string2d(b"nan"), None);
        assert_eq!(string2d(b"NaN"), None);
        assert_eq!(string2d(b"-nan"), None);
        assert_eq!(string2d(b""), None);
        assert_eq!(string2d(b" 1"), None);
        assert_eq!(string2d(b"\t1"), None);
        assert_eq!(string2d(b"1 "), None);
        assert_eq!(string2d(b"1\0"), None);
        assert_eq!(string2d(b"\0"), None);
        assert_eq!(string2d(b"abc"), None);
        assert_eq!(string2d(b"1e"), None);
        assert_eq!(string2d(b"-"), None);
        assert_eq!(string2d(b"."), None);
        // long inputs take the heap path
        let long = format!("1{}", "0".repeat(300));
        assert_eq!(string2d(long.as_bytes()), Some(1e300));
        let long = format!("0.{}1", "0".repeat(200));
        assert_eq!(string2d(long.as_bytes()), Some(1e-201));
        let long = format!("{} ", "1".repeat(200));
        assert_eq!(string2d(long.as_bytes()), None);
    }

    #[test]
    fn d2string_cases() {
        assert_eq!(d2s(f64::NAN), "nan");
        assert_eq!(d2s(f64::INFINITY), "inf");
        assert_eq!(d2s(f64::NEG_INFINITY), "-inf");
        assert_eq!(d2s(0.0), "0");
        assert_eq!(d2s(-0.0), "-0");
        assert_eq!(d2s(1.0), "1");
        assert_eq!(d2s(-3.0), "-3");
        assert_eq!(d2s(1.5), "1.5");
        assert_eq!(d2s(0.1), "0.10000000000000001");
        assert_eq!(d2s(1e17), "100000000000000000");
        assert_eq!(d2s(4611686018427387904.0), "4611686018427387904"); // 2^62
        assert_eq!(d2s(-4611686018427387904.0), "-4611686018427387904");
        assert_eq!(d2s(9223372036854775808.0), "9.2233720368547758e+18");
        assert_eq!(d2s(1e300), "1.0000000000000001e+300");
        assert_eq!(d2s(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(d2s(5e-324), "4.9406564584124654e-324");
        assert_eq!(d2s(-2.5), "-2.5");
    }

    #[test]
    fn double_reply_cases() {
        assert_eq!(reply(1.0), "1");
        assert_eq!(reply(1.5), "1.5");
        assert_eq!(reply(0.1), "0.10000000000000001");
        assert_eq!(reply(1e17), "1e+17");
        assert_eq!(reply(0.0), "0");
        assert_eq!(reply(-0.0), "-0");
        assert_eq!(reply(f64::INFINITY), "inf");
        assert_eq!(reply(f64::NEG_INFINITY), "-inf");
        assert_eq!(reply(123456789.0), "123456789");
    }

    // Expected strings below were produced by redis-server 7.0.15
    // (INCRBYFLOAT, with SET for the stored value).
    #[test]
    fn incr_by_float_matches_redis() {
        use IncrFloatError::*;
        assert_eq!(ibf(Some("10.5"), "0.1").unwrap(), "10.6");
        assert_eq!(ibf(Some("0.1"), "0.2").unwrap(), "0.3");
        assert_eq!(ibf(Some("5.0e3"), "2.0e2").unwrap(), "5200");
        assert_eq!(ibf(Some("3"), "-3").unwrap(), "0");
        assert_eq!(ibf(Some("-3"), "3").unwrap(), "0");
        assert_eq!(ibf(None, "1.5").unwrap(), "1.5");
        assert_eq!(ibf(None, "0").unwrap(), "0");
        assert_eq!(ibf(None, "-0").unwrap(), "0");
        assert_eq!(ibf(Some("10"), "1").unwrap(), "11");
        assert_eq!(ibf(Some("1"), "1e5").unwrap(), "100001");
        assert_eq!(ibf(Some("0"), "0x10").unwrap(), "16");
        assert_eq!(ibf(Some("0x10"), "1").unwrap(), "17");
        assert_eq!(ibf(Some("1"), "+1").unwrap(), "2");
        assert_eq!(ibf(Some("1"), ".5").unwrap(), "1.5");
        assert_eq!(ibf(Some("1"), "5.").unwrap(), "6");
        assert_eq!(ibf(None, "1e-17").unwrap(), "0.00000000000000001");
        assert_eq!(ibf(None, "1e-18").unwrap(), "0");
        assert_eq!(ibf(None, "-1e-18").unwrap(), "0");
        assert_eq!(ibf(None, "3.0e-5").unwrap(), "0.00003");
        assert_eq!(ibf(None, "1e-5000").unwrap_err(), NotFloat);
        assert_eq!(ibf(None, "1e-4940").unwrap(), "0"); // long double denormal
        assert_eq!(ibf(Some("9223372036854775807"), "1").unwrap(), "9223372036854775808");
        assert_eq!(
            ibf(Some("1e300"), "1").unwrap(),
            concat!(
                "10000000000000000000089973240795591938705239442732907479382600823212656465961809357558491520837504",
                "97190350372508614274835903592556184672983913096260520748646287327135641843653294084255107606016789",
                "726652932370030551382947620994540294772781889620606179267611627097410650567187386105690089424915104006144"
            )
        );
        // long double has far more range than double: no overflow here
        assert_eq!(
            ibf(Some("1.7976931348623157e308"), "1.7976931348623157e308").unwrap(),
            concat!(
                "35953862697246313999184209354820886809677289388865835697062884153035325704624879270940373721677417",
                "11288575868388510413786174167269022721107157945560529552341469979553725767896712363265880911888698",
                "59074894581254961338834769297758245552436667197907705664206565009503223382416235440319971852753604933726679072768"
            )
        );
        assert_eq!(
            ibf(Some("1.7976931348623157e308"), "1.7976931348623157e309").unwrap(),
            concat!(
                "19774624483485472700720752826519487634964915050421232230689733507080830040767832373882759389814550",
                "54438304108404264850693099450992739400627138380096673690916367424602104924184226175128633979215142",
                "674387786077546067597186352888290897022628844693230880502092470937895315957222160559011175755126770215399704231936"
            )
        );
        assert_eq!(ibf(Some("1e4932"), "1e4932").unwrap_err(), NanOrInf);
        assert_eq!(ibf(None, "1e5000").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("1"), "inf").unwrap_err(), NanOrInf);
        assert_eq!(ibf(Some("1"), "-inf").unwrap_err(), NanOrInf);
        assert_eq!(ibf(Some("inf"), "1").unwrap_err(), NanOrInf);
        assert_eq!(ibf(Some("1"), "nan").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("1"), "abc").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("abc"), "1").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("1"), "  1").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("1"), "1 ").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("1"), "").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some(""), "1").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some(" 1"), "1").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("1"), "1\0").unwrap_err(), NotFloat);
        assert_eq!(ibf(Some("1.1"), "1.1").unwrap(), "2.2");
        assert_eq!(ibf(Some("1.23"), "-1.23").unwrap(), "0");
        assert_eq!(ibf(Some("-1.5"), "0.25").unwrap(), "-1.25");
        assert_eq!(ibf(Some("3.0e3"), "200").unwrap(), "3200");
        assert_eq!(ibf(None, "0.1").unwrap(), "0.1");
        assert_eq!(ibf(Some("0.1"), "0.1").unwrap(), "0.2");
        assert_eq!(ibf(Some("1"), "0.3333333333333333333").unwrap(), "1.33333333333333333");
        // 5119 bytes is the longest accepted input (stored value or increment)
        let long = format!("1.{}", "0".repeat(5117));
        assert_eq!(long.len(), 5119);
        assert_eq!(ibf(None, &long).unwrap(), "1");
        assert_eq!(ibf(Some(&long), "1").unwrap(), "2");
        let long = format!("1.{}", "0".repeat(5118));
        assert_eq!(ibf(None, &long).unwrap_err(), NotFloat);
        assert_eq!(ibf(Some(&long), "1").unwrap_err(), NotFloat);
        // overflowing long double
        let long = format!("1{}", "0".repeat(5000));
        assert_eq!(ibf(None, &long).unwrap_err(), NotFloat);
    }

    #[test]
    fn hincr_by_float_errors() {
        use HIncrFloatError::*;
        let h = |c: Option<&str>, i: &str| hincr_by_float(c.map(|s| s.as_bytes()), i.as_bytes());
        assert_eq!(h(Some("abc"), "x").unwrap_err(), IncrNotFloat);
        assert_eq!(h(Some("abc"), "inf").unwrap_err(), IncrNanOrInf);
        assert_eq!(h(Some("abc"), "1").unwrap_err(), HashValueNotFloat);
        assert_eq!(h(Some("inf"), "1").unwrap_err(), NanOrInf);
        assert_eq!(h(Some("1e4932"), "1e4932").unwrap_err(), NanOrInf);
        assert_eq!(h(Some("10.5"), "0.1").unwrap(), b"10.6");
        assert_eq!(h(None, "2").unwrap(), b"2");
        assert!(string2ld_valid(b"1e4000"));
        assert!(!string2ld_valid(b"1e5000"));
        assert!(!string2ld_valid(b"nan"));
    }
}
