//! Ports of Redis's sds helpers whose exact behaviour clients and config files
//! depend on: `sdssplitargs` (inline requests, redis.conf lines) and
//! `sdscatrepr` (MONITOR lines, CONFIG REWRITE).

use memchr::memchr;

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Redis's sdssplitargs: splits a line into arguments honouring "double" quotes
/// (with \n \r \t \b \a \xHH escapes) and 'single' quotes. Unescaped bytes go to
/// `out`, their ranges to `args`. Like the C original, the line ends at a NUL
/// byte. Returns false on unbalanced quotes.
pub fn split_args_into(line: &[u8], out: &mut Vec<u8>, args: &mut Vec<(usize, usize)>) -> bool {
    let line = match memchr(0, line) {
        Some(z) => &line[..z],
        None => line,
    };
    let at = |i: usize| -> u8 { line.get(i).copied().unwrap_or(0) };
    let mut p = 0usize;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return true;
        }
        let start = out.len();
        let (mut inq, mut insq, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\' && at(p + 1) == b'x' && hex_val(at(p + 2)).is_some() && hex_val(at(p + 3)).is_some() {
                    out.push(hex_val(at(p + 2)).unwrap_or(0) * 16 + hex_val(at(p + 3)).unwrap_or(0));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    out.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        o => o,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return false;
                    }
                    done = true;
                } else if c == 0 {
                    return false;
                } else {
                    out.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    out.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return false;
                    }
                    done = true;
                } else if c == 0 {
                    return false;
                } else {
                    out.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => out.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push((start, out.len()));
    }
}

/// `sdssplitargs` returning owned arguments; None on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut buf = Vec::with_capacity(line.len());
    let mut spans = Vec::new();
    if !split_args_into(line, &mut buf, &mut spans) {
        return None;
    }
    Some(spans.into_iter().map(|(s, e)| buf[s..e].to_vec()).collect())
}

/// `sdscatrepr`: appends a double-quoted, escaped rendering of `s`.
pub fn repr_into(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
        }
    }
    out.push(b'"');
}

/// `sdscatrepr` into a new buffer.
pub fn repr(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    repr_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_args_handles_quotes_escapes_and_errors() {
        assert_eq!(
            split_args(b"set k \"a b\\x41\\n\"  'it\\'s'"),
            Some(vec![b"set".to_vec(), b"k".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()])
        );
        assert_eq!(split_args(b"\"unterminated"), None);
        assert_eq!(split_args(b"\"a\"b"), None);
        assert_eq!(split_args(b"   "), Some(vec![]));
        assert_eq!(split_args(b"a\0b c"), Some(vec![b"a".to_vec()]));
    }

    #[test]
    fn repr_escapes_like_sdscatrepr() {
        assert_eq!(repr(b"a\"b\\\n\x01\xff"), b"\"a\\\"b\\\\\\n\\x01\\xff\"".to_vec());
    }
}
