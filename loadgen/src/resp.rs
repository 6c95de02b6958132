//! Allocation-free, resumable RESP2/RESP3 reply counter.
//!
//! The load generator never builds reply objects: it only needs to know
//! where each top-level reply ends, whether it is an error (and the first
//! word of the error message), and, for `--verify`, the payload of a
//! top-level bulk string. Elements are consumed one at a time and a flat
//! "slots still expected" counter replaces a stack, so a reply that is split
//! over many reads is never re-parsed from the start.

/// Largest bulk length accepted (protects against garbage turning into a
/// huge allocation).
pub const MAX_BULK: i64 = 512 * 1024 * 1024;
/// Largest aggregate length accepted.
const MAX_AGG: i64 = 1 << 32;

/// What a completed top-level reply was. Ranges index the slice that was
/// passed to [`RespCounter::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Anything that is not an error, bulk string, null or push.
    Other,
    /// An error reply (`-` or `!`); the range is the first word of the message.
    Error { kind: (usize, usize) },
    /// A top-level bulk string (`$` or `=` verbatim); the range is the payload.
    Bulk { data: (usize, usize) },
    /// A null (`$-1`, `*-1`, `_`).
    Null,
    /// A RESP3 out-of-band push (`>`): not the answer to a request.
    Push,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError;

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("protocol error in server reply")
    }
}

#[derive(Debug, Clone, Copy)]
struct Elem {
    ty: u8,
    /// Slots this element adds (aggregate length, doubled for maps/attributes).
    children: u64,
    /// Payload range for bulk/line types (relative to the element start).
    payload: (usize, usize),
    null: bool,
}

/// Resumable counter of complete RESP replies.
#[derive(Debug, Default, Clone)]
pub struct RespCounter {
    /// Slots still expected to complete the current top-level reply (0 = between replies).
    remaining: u64,
    /// Type byte of the current top-level reply.
    top: u8,
    /// The current top-level reply started with an attribute (`|`).
    attr_top: bool,
}

impl RespCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when no reply is partially consumed.
    #[cfg(test)]
    pub fn idle(&self) -> bool {
        self.remaining == 0
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Consume elements from `buf` until one top-level reply completes or
    /// the data runs out. Returns the bytes consumed (always whole
    /// elements; the caller must drop them) and the reply if one completed.
    #[inline]
    pub fn feed(&mut self, buf: &[u8]) -> Result<(usize, Option<Reply>), ProtocolError> {
        let mut pos = 0usize;
        loop {
            let (len, e) = match parse_elem(&buf[pos..])? {
                None => return Ok((pos, None)),
                Some(x) => x,
            };
            let start = pos;
            pos += len;
            let at_top = self.remaining == 0 || (self.attr_top && self.remaining == 1);
            if self.remaining == 0 {
                self.remaining = 1;
            }
            if e.ty == b'|' {
                // An attribute does not fill a slot: its pairs come first,
                // then the element it annotates.
                if at_top {
                    self.attr_top = true;
                }
                self.remaining += e.children;
                continue;
            }
            if at_top {
                self.top = e.ty;
                self.attr_top = false;
            }
            self.remaining = self.remaining - 1 + e.children;
            if self.remaining == 0 {
                let reply = if !at_top {
                    // A completed aggregate.
                    if self.top == b'>' {
                        Reply::Push
                    } else {
                        Reply::Other
                    }
                } else {
                    classify(buf, start, &e)
                };
                return Ok((pos, Some(reply)));
            }
        }
    }
}

#[inline]
fn classify(buf: &[u8], start: usize, e: &Elem) -> Reply {
    if e.null {
        return Reply::Null;
    }
    match e.ty {
        b'-' | b'!' => {
            let (a, b) = (start + e.payload.0, start + e.payload.1);
            let msg = &buf[a..b];
            let w = msg.iter().position(|&c| c == b' ').unwrap_or(msg.len());
            Reply::Error { kind: (a, a + w) }
        }
        b'$' | b'=' => Reply::Bulk {
            data: (start + e.payload.0, start + e.payload.1),
        },
        b'_' => Reply::Null,
        b'>' => Reply::Push, // empty push aggregate
        _ => Reply::Other,
    }
}

/// Find "\r\n" starting at `from`; returns the index of '\r'.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\r' {
            return if buf[i + 1] == b'\n' { Some(i) } else { None };
        }
        i += 1;
    }
    None
}

/// Parse a signed decimal terminated by CRLF at `buf[1..]`.
/// Ok(None) = incomplete, Err = malformed.
#[inline]
fn parse_len(buf: &[u8]) -> Result<Option<(i64, usize)>, ProtocolError> {
    let mut i = 1;
    let mut neg = false;
    if i < buf.len() && buf[i] == b'-' {
        neg = true;
        i += 1;
    }
    let digits_start = i;
    let mut v: i64 = 0;
    while i < buf.len() {
        let c = buf[i];
        if c.is_ascii_digit() {
            if i - digits_start >= 18 {
                return Err(ProtocolError);
            }
            v = v * 10 + (c - b'0') as i64;
            i += 1;
        } else if c == b'\r' {
            if i == digits_start {
                return Err(ProtocolError);
            }
            if i + 1 >= buf.len() {
                return Ok(None);
            }
            if buf[i + 1] != b'\n' {
                return Err(ProtocolError);
            }
            return Ok(Some((if neg { -v } else { v }, i + 2)));
        } else {
            return Err(ProtocolError);
        }
    }
    Ok(None)
}

/// Parse one element (not its children). Ok(None) = need more data.
#[inline]
fn parse_elem(buf: &[u8]) -> Result<Option<(usize, Elem)>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let ty = buf[0];
    match ty {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {
            let Some(cr) = find_crlf(buf, 1) else {
                // A lone '\r' not followed by '\n' is malformed; otherwise incomplete.
                if buf.len() >= 2 && buf[..buf.len() - 1].contains(&b'\r') {
                    return Err(ProtocolError);
                }
                return Ok(None);
            };
            Ok(Some((
                cr + 2,
                Elem {
                    ty,
                    children: 0,
                    payload: (1, cr),
                    null: ty == b'_',
                },
            )))
        }
        b'$' | b'!' | b'=' => {
            let Some((n, hdr)) = parse_len(buf)? else { return Ok(None) };
            if n < 0 {
                if n != -1 {
                    return Err(ProtocolError);
                }
                return Ok(Some((
                    hdr,
                    Elem {
                        ty,
                        children: 0,
                        payload: (hdr, hdr),
                        null: true,
                    },
                )));
            }
            if n > MAX_BULK {
                return Err(ProtocolError);
            }
            let n = n as usize;
            let total = hdr + n + 2;
            if buf.len() < total {
                return Ok(None);
            }
            if buf[hdr + n] != b'\r' || buf[hdr + n + 1] != b'\n' {
                return Err(ProtocolError);
            }
            Ok(Some((
                total,
                Elem {
                    ty,
                    children: 0,
                    payload: (hdr, hdr + n),
                    null: false,
                },
            )))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some((n, hdr)) = parse_len(buf)? else { return Ok(None) };
            if n < 0 {
                if n != -1 || ty != b'*' {
                    return Err(ProtocolError);
                }
                return Ok(Some((
                    hdr,
                    Elem {
                        ty,
                        children: 0,
                        payload: (0, 0),
                        null: true,
                    },
                )));
            }
            if n > MAX_AGG {
                return Err(ProtocolError);
            }
            let children = if ty == b'%' || ty == b'|' { 2 * n as u64 } else { n as u64 };
            Ok(Some((
                hdr,
                Elem {
                    ty,
                    children,
                    payload: (0, 0),
                    null: false,
                },
            )))
        }
        _ => Err(ProtocolError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `data` split at every possible point into two (and three) pieces,
    /// emulating a socket read buffer, and collect the replies.
    fn run_split(data: &[u8], cuts: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut c = RespCounter::new();
        let mut prev = 0;
        let mut bounds = cuts.to_vec();
        bounds.push(data.len());
        for &b in &bounds {
            buf.extend_from_slice(&data[prev..b]);
            prev = b;
            loop {
                let (used, r) = c.feed(&buf).unwrap();
                let desc = r.map(|r| match r {
                    Reply::Other => "other".to_string(),
                    Reply::Null => "null".to_string(),
                    Reply::Push => "push".to_string(),
                    Reply::Error { kind } => {
                        format!("err:{}", String::from_utf8_lossy(&buf[kind.0..kind.1]))
                    }
                    Reply::Bulk { data } => {
                        format!("bulk:{}", String::from_utf8_lossy(&buf[data.0..data.1]))
                    }
                });
                buf.drain(..used);
                match desc {
                    Some(d) => out.push(d),
                    None => break,
                }
            }
        }
        out
    }

    const STREAM: &[u8] = b"+OK\r\n$5\r\nhello\r\n$-1\r\n-ERR unknown command 'X'\r\n:42\r\n\
*2\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n$0\r\n\r\n-WRONGTYPE Operation\r\n*0\r\n*-1\r\n\
%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n_\r\n_\r\n>2\r\n+message\r\n+x\r\n|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n\
!9\r\nSYNTAX xy\r\n,1.5\r\n#t\r\n(123\r\n~2\r\n+a\r\n+b\r\n=7\r\ntxt:abc\r\n";

    fn expected() -> Vec<&'static str> {
        vec![
            "other",
            "bulk:hello",
            "null",
            "err:ERR",
            "other",
            "other",
            "bulk:",
            "err:WRONGTYPE",
            "other",
            "null",
            "other",
            "null",
            "push",
            "bulk:hi",
            "err:SYNTAX",
            "other",
            "other",
            "other",
            "other",
            "bulk:txt:abc",
        ]
    }

    #[test]
    fn whole_buffer() {
        assert_eq!(run_split(STREAM, &[]), expected());
    }

    #[test]
    fn every_two_way_split() {
        for cut in 0..=STREAM.len() {
            assert_eq!(run_split(STREAM, &[cut]), expected(), "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let cuts: Vec<usize> = (1..STREAM.len()).collect();
        assert_eq!(run_split(STREAM, &cuts), expected());
    }

    #[test]
    fn three_way_splits() {
        let n = STREAM.len();
        for a in (0..n).step_by(3) {
            for b in (a..n).step_by(7) {
                assert_eq!(run_split(STREAM, &[a, b]), expected(), "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn malformed_is_error_not_panic() {
        for bad in [
            &b"?foo\r\n"[..],
            b"$abc\r\n",
            b"$3\r\nabcd\r\n",
            b"*-5\r\n",
            b"$-2\r\n",
            b"+OK\rX\n",
            b"$99999999999999999999\r\n",
        ] {
            let mut c = RespCounter::new();
            assert!(c.feed(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn incomplete_consumes_whole_elements_only() {
        let mut c = RespCounter::new();
        let (used, r) = c.feed(b"*2\r\n$3\r\nabc\r\n$3\r\nde").unwrap();
        assert_eq!(r, None);
        assert_eq!(used, 13);
        assert!(!c.idle());
        let (used, r) = c.feed(b"$3\r\ndef\r\n+OK\r\n").unwrap();
        assert_eq!((used, r), (9, Some(Reply::Other)));
        assert!(c.idle());
    }
}
