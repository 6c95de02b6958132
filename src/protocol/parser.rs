//! RESP request parser. Multibulk requests are parsed in place: arguments are
//! byte ranges into the connection's read buffer, so nothing is copied on the
//! hot path. Inline requests (telnet style) are unescaped into a side buffer.
//! Limits and error texts follow Redis 7.0's processMultibulkBuffer and
//! processInlineBuffer.

use crate::util::sds::split_args_into;
use memchr::memchr;

/// Redis's PROTO_INLINE_MAX_SIZE.
pub const INLINE_MAX: usize = 64 * 1024;
/// Multibulk counts above this are refused (Redis 7.0 caps at INT_MAX).
pub const MULTIBULK_MAX: i64 = i32::MAX as i64;
/// Before authentication Redis accepts at most 10 arguments ...
pub const UNAUTH_MULTIBULK_MAX: i64 = 10;
/// ... of at most 16 KiB each.
pub const UNAUTH_BULK_MAX: i64 = 16384;

/// Where a parsed command's argument bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Ranges index the read buffer.
    Input,
    /// Ranges index the parser's inline scratch buffer.
    Inline,
}

/// A protocol error: the reply text (without '-') after which the connection closes.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtoError(pub String);

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    Incomplete,
    /// A frame with no command (empty inline line, `*0`): consume and ignore.
    Empty { consumed: usize },
    /// A command whose argument ranges were pushed into `args`.
    Command { consumed: usize, source: Source },
}

pub struct Parser {
    pub inline: Vec<u8>,
    pub max_bulk: i64,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            inline: Vec::new(),
            max_bulk: 512 * 1024 * 1024,
        }
    }
}

fn parse_len(s: &[u8]) -> Option<i64> {
    crate::util::num::string2ll(s)
}

impl Parser {
    /// Parses one request at the start of `buf`. `args` is cleared and filled
    /// with (start, end) ranges. `authed` is false while the connection still
    /// owes an AUTH, which tightens the limits as Redis does.
    pub fn parse(&mut self, buf: &[u8], args: &mut Vec<(usize, usize)>, authed: bool) -> Result<Parsed, ProtoError> {
        args.clear();
        if buf.is_empty() {
            return Ok(Parsed::Incomplete);
        }
        if buf[0] != b'*' {
            return self.parse_inline(buf, args);
        }
        let Some(cr) = memchr(b'\r', buf) else {
            if buf.len() > INLINE_MAX {
                return Err(ProtoError("ERR Protocol error: too big mbulk count string".into()));
            }
            return Ok(Parsed::Incomplete);
        };
        if cr + 1 >= buf.len() {
            return Ok(Parsed::Incomplete);
        }
        let count = match parse_len(&buf[1..cr]) {
            Some(n) if n <= MULTIBULK_MAX => n,
            _ => return Err(ProtoError("ERR Protocol error: invalid multibulk length".into())),
        };
        if count > UNAUTH_MULTIBULK_MAX && !authed {
            return Err(ProtoError("ERR Protocol error: unauthenticated multibulk length".into()));
        }
        let mut pos = cr + 2;
        if count <= 0 {
            return Ok(Parsed::Empty { consumed: pos });
        }
        // Do not trust the count for preallocation: a client could claim 2^31 args.
        args.reserve((count as usize).min(1024));
        for _ in 0..count {
            if pos >= buf.len() {
                return Ok(Parsed::Incomplete);
            }
            let Some(rel) = memchr(b'\r', &buf[pos..]) else {
                if buf.len() - pos > INLINE_MAX {
                    return Err(ProtoError("ERR Protocol error: too big bulk count string".into()));
                }
                return Ok(Parsed::Incomplete);
            };
            let cr = pos + rel;
            if cr + 1 >= buf.len() {
                return Ok(Parsed::Incomplete);
            }
            if buf[pos] != b'$' {
                let mut m = b"ERR Protocol error: expected '$', got '".to_vec();
                m.push(buf[pos]);
                m.push(b'\'');
                return Err(ProtoError(String::from_utf8_lossy(&m).into_owned()));
            }
            let len = match parse_len(&buf[pos + 1..cr]) {
                Some(n) if n >= 0 && n <= self.max_bulk => n,
                _ => return Err(ProtoError("ERR Protocol error: invalid bulk length".into())),
            };
            if len > UNAUTH_BULK_MAX && !authed {
                return Err(ProtoError("ERR Protocol error: unauthenticated bulk length".into()));
            }
            let start = cr + 2;
            let end = start + len as usize;
            // Redis skips the two bytes after the payload without checking them.
            if end + 2 > buf.len() {
                return Ok(Parsed::Incomplete);
            }
            args.push((start, end));
            pos = end + 2;
        }
        Ok(Parsed::Command {
            consumed: pos,
            source: Source::Input,
        })
    }

    fn parse_inline(&mut self, buf: &[u8], args: &mut Vec<(usize, usize)>) -> Result<Parsed, ProtoError> {
        let Some(nl) = memchr(b'\n', buf) else {
            if buf.len() > INLINE_MAX {
                return Err(ProtoError("ERR Protocol error: too big inline request".into()));
            }
            return Ok(Parsed::Incomplete);
        };
        let consumed = nl + 1;
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
        self.inline.clear();
        if !split_args_into(&buf[..line_end], &mut self.inline, args) {
            return Err(ProtoError("ERR Protocol error: unbalanced quotes in request".into()));
        }
        if args.is_empty() {
            return Ok(Parsed::Empty { consumed });
        }
        Ok(Parsed::Command {
            consumed,
            source: Source::Inline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtoError> {
        let mut p = Parser::default();
        let mut args = Vec::new();
        let mut pos = 0;
        let mut cmds = Vec::new();
        loop {
            match p.parse(&input[pos..], &mut args, true)? {
                Parsed::Incomplete => return Ok(cmds),
                Parsed::Empty { consumed } => pos += consumed,
                Parsed::Command { consumed, source } => {
                    let base: &[u8] = if source == Source::Input { &input[pos..] } else { &p.inline };
                    cmds.push(args.iter().map(|&(s, e)| base[s..e].to_vec()).collect());
                    pos += consumed;
                }
            }
        }
    }

    #[test]
    fn pipelined_multibulk_commands_parse_in_order() {
        let cmds = parse_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n").unwrap();
        assert_eq!(cmds, vec![vec![b"PING".to_vec()], vec![b"SET".to_vec(), b"k".to_vec(), b"".to_vec()]]);
    }

    #[test]
    fn every_split_point_of_a_frame_is_incomplete_until_the_end() {
        let frame = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        let mut p = Parser::default();
        let mut args = Vec::new();
        for cut in 0..frame.len() {
            assert_eq!(p.parse(&frame[..cut], &mut args, true).unwrap(), Parsed::Incomplete, "cut {cut}");
        }
        assert_eq!(
            p.parse(frame, &mut args, true).unwrap(),
            Parsed::Command {
                consumed: frame.len(),
                source: Source::Input
            }
        );
    }

    #[test]
    fn inline_commands_split_like_sdssplitargs() {
        let cmds = parse_all(b"set k \"a b\\x41\\n\"  'it\\'s'\r\nPING\n\r\n").unwrap();
        assert_eq!(cmds[0], vec![b"set".to_vec(), b"k".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()]);
        assert_eq!(cmds[1], vec![b"PING".to_vec()]);
        assert_eq!(cmds.len(), 2);
    }

    fn err(input: &[u8], authed: bool) -> String {
        let mut p = Parser::default();
        let mut args = Vec::new();
        p.parse(input, &mut args, authed).unwrap_err().0
    }

    #[test]
    fn protocol_errors_use_redis_texts() {
        assert_eq!(err(b"*abc\r\n", true), "ERR Protocol error: invalid multibulk length");
        assert_eq!(err(b"*3000000000\r\n", true), "ERR Protocol error: invalid multibulk length");
        assert_eq!(err(b"*1\r\n$-5\r\n", true), "ERR Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$600000000\r\n", true), "ERR Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n+foo\r\n", true), "ERR Protocol error: expected '$', got '+'");
        assert_eq!(err(b"set \"k\r\n", true), "ERR Protocol error: unbalanced quotes in request");
        assert_eq!(err(b"set \"k\"x\r\n", true), "ERR Protocol error: unbalanced quotes in request");
        assert_eq!(err(&vec![b'a'; INLINE_MAX + 1], true), "ERR Protocol error: too big inline request");
        let mut big = b"*".to_vec();
        big.extend(vec![b'1'; INLINE_MAX + 1]);
        assert_eq!(err(&big, true), "ERR Protocol error: too big mbulk count string");
        let mut bigbulk = b"*1\r\n$".to_vec();
        bigbulk.extend(vec![b'1'; INLINE_MAX + 1]);
        assert_eq!(err(&bigbulk, true), "ERR Protocol error: too big bulk count string");
        assert_eq!(err(b"*11\r\n", false), "ERR Protocol error: unauthenticated multibulk length");
        assert_eq!(err(b"*1\r\n$16385\r\n", false), "ERR Protocol error: unauthenticated bulk length");
    }

    #[test]
    fn empty_frames_are_skipped() {
        assert_eq!(parse_all(b"*0\r\n\r\n   \r\n*-1\r\n*1\r\n$1\r\nx\r\n").unwrap(), vec![vec![b"x".to_vec()]]);
    }
}
