//! Low-level text helpers that reproduce the Redis 7.0 C routines the
//! configuration code relies on: `sdssplitargs`, `sdscatrepr`, `string2ll`,
//! `memtoull`, `strtoll`, `string2d`, `%f` trimming and `strerror`.

/// C `isspace` in the "C" locale.
#[inline]
pub(crate) fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

pub use crate::util::sds::{repr, split_args};

/// Redis `string2ll`: strict base-10 signed 64-bit parse (no spaces, no '+',
/// no leading zeros).
pub fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// C `strtoull(s, &end, 10)` on a buffer that holds only digits: no digits
/// gives 0, overflow saturates.
fn digits_to_u64_saturating(d: &[u8]) -> u64 {
    let mut v: u64 = 0;
    for &c in d {
        v = match v.checked_mul(10).and_then(|x| x.checked_add((c - b'0') as u64)) {
            Some(x) => x,
            None => return u64::MAX,
        };
    }
    v
}

/// Redis `memtoull`: "<digits>[b|k|kb|m|mb|g|gb]" (unit case-insensitive,
/// k = 1000, kb = 1024, ...). `None` is a parse error.
pub fn memtoull(s: &[u8]) -> Option<u64> {
    if s.first() == Some(&b'-') {
        return None;
    }
    let nd = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let unit = &s[nd..];
    let mul: u64 = if unit.is_empty() || unit.eq_ignore_ascii_case(b"b") {
        1
    } else if unit.eq_ignore_ascii_case(b"k") {
        1000
    } else if unit.eq_ignore_ascii_case(b"kb") {
        1024
    } else if unit.eq_ignore_ascii_case(b"m") {
        1000 * 1000
    } else if unit.eq_ignore_ascii_case(b"mb") {
        1024 * 1024
    } else if unit.eq_ignore_ascii_case(b"g") {
        1000 * 1000 * 1000
    } else if unit.eq_ignore_ascii_case(b"gb") {
        1024 * 1024 * 1024
    } else {
        return None;
    };
    if nd >= 128 {
        return None;
    }
    let val = digits_to_u64_saturating(&s[..nd]);
    if val > u64::MAX / mul {
        return None;
    }
    Some(val * mul)
}

/// C `strtoll(s, &end, base)` followed by a `*end == '\0'` check, the way
/// Redis uses it: leading whitespace and a sign are accepted, overflow
/// saturates (errno is not looked at). Returns `None` when characters are
/// left over. An empty string parses as 0, as in C.
pub fn strtoll_full(s: &[u8], base: u32) -> Option<i64> {
    strtoll_ex(s, base).map(|(v, _, _)| v)
}

/// Like `strtoll_full` but also reports (overflowed, had_digits).
pub fn strtoll_ex(s: &[u8], base: u32) -> Option<(i64, bool, bool)> {
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    let s = &s[..end];
    let mut i = 0;
    while i < s.len() && c_isspace(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: u128 = 0;
    let mut overflow = false;
    while i < s.len() {
        let d = match (s[i] as char).to_digit(base) {
            Some(d) => d,
            None => break,
        };
        v = v * base as u128 + d as u128;
        if v > (i64::MAX as u128) + 1 {
            overflow = true;
            v = (i64::MAX as u128) + 1;
        }
        i += 1;
    }
    if i == start {
        // No conversion: endptr = original string.
        return if s.is_empty() { Some((0, false, false)) } else { None };
    }
    if i != s.len() {
        return None;
    }
    let val = if neg {
        if v > i64::MAX as u128 {
            i64::MIN
        } else {
            -(v as i64)
        }
    } else if v > i64::MAX as u128 {
        overflow = true;
        i64::MAX
    } else {
        v as i64
    };
    Some((val, overflow, true))
}

/// Redis `string2d` (strtod based): no leading space, whole string consumed,
/// no NaN, no overflow.
pub fn string2d(s: &[u8]) -> Option<f64> {
    if s.is_empty() || c_isspace(s[0]) {
        return None;
    }
    let st = std::str::from_utf8(s).ok()?;
    let lower = st.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if body.starts_with("nan") {
        return None;
    }
    let v: f64 = match st.parse() {
        Ok(v) => v,
        Err(_) => parse_hex_float(st)?,
    };
    if v.is_nan() {
        return None;
    }
    if v.is_infinite() && !(body == "inf" || body == "infinity") {
        return None; // ERANGE overflow
    }
    Some(v)
}

/// strtod's hexadecimal form: [+-]0x<hex>[.<hex>][p[+-]<dec>].
fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X"))?;
    let (mant, exp) = match rest.find(['p', 'P']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int_part.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    if let Some(e) = exp {
        let e: i32 = e.parse().ok()?;
        v *= 2f64.powi(e);
    }
    Some(if neg { -v } else { v })
}

/// `sprintf("%f")` followed by Redis `trimDoubleString`.
pub fn fmt_double_trimmed(v: f64) -> String {
    let mut s = format!("{:.6}", v);
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// `strerror(errno)` text for an I/O error, without Rust's " (os error N)".
pub fn strerror(e: &std::io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        let s = std::io::Error::from_raw_os_error(code).to_string();
        if let Some(idx) = s.rfind(" (os error ") {
            return s[..idx].to_string();
        }
        return s;
    }
    e.to_string()
}

/// Trim the given set of bytes from both ends (sdstrim).
pub fn trim_set<'a>(s: &'a [u8], set: &[u8]) -> &'a [u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && set.contains(&s[a]) {
        a += 1;
    }
    while b > a && set.contains(&s[b - 1]) {
        b -= 1;
    }
    &s[a..b]
}

/// `sdssplitlen(s, " ")`: split on single spaces; an empty input yields no
/// elements (used by CONFIG SET for multi-argument directives).
pub fn split_spaces(s: &[u8]) -> Vec<Vec<u8>> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(|&c| c == b' ').map(|x| x.to_vec()).collect()
}

/// Redis `getAbsolutePath`.
pub fn absolute_path(cwd: &[u8], filename: &[u8]) -> Vec<u8> {
    let rel = trim_set(filename, b" \r\n\t");
    if rel.first() == Some(&b'/') {
        return rel.to_vec();
    }
    let mut abs = cwd.to_vec();
    if !abs.is_empty() && *abs.last().unwrap() != b'/' {
        abs.push(b'/');
    }
    let mut rel = rel;
    while rel.len() >= 3 && &rel[..3] == b"../" {
        rel = &rel[3..];
        if abs.len() > 1 {
            // Drop the last path element (abs ends with '/').
            let mut p = abs.len() - 2;
            while abs[p] != b'/' {
                p -= 1;
            }
            abs.truncate(p + 1);
        }
    }
    abs.extend_from_slice(rel);
    abs
}

#[cfg(unix)]
pub fn bytes_to_path(b: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

#[cfg(unix)]
pub fn path_to_bytes(p: &std::path::Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

#[cfg(unix)]
pub fn os_to_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

/// Join `rel` onto `base` unless it is absolute (plain string joining, like
/// the kernel resolving a relative path against a cwd).
pub fn join_path(base: &[u8], rel: &[u8]) -> Vec<u8> {
    if rel.first() == Some(&b'/') || base.is_empty() {
        return rel.to_vec();
    }
    let mut out = base.to_vec();
    if *out.last().unwrap() != b'/' {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
    out
}
