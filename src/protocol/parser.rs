//! RESP request parser. Multibulk requests are parsed in place: arguments are
//! byte ranges into the connection's read buffer, so nothing is copied on the
//! hot path. Inline requests (telnet style) are unescaped into a side buffer.
//! Limits and error texts follow Redis 7.0's processMultibulkBuffer and
//! processInlineBuffer.
//!
//! Parsing is resumable, like Redis's `multibulklen` / `bulklen` / `argv`
//! client fields: an incomplete request keeps its remaining argument count,
//! the argument ranges parsed so far, the pending bulk length and how far a
//! line terminator was already searched for, so each byte is looked at once
//! however the request is split into reads. Arguments of at least
//! [`BIG_ARG`] bytes that have not fully arrived get their own buffer,
//! allocated at the announced size, which the connection reads straight into
//! ([`Parser::big_spare`]) instead of growing the shared read buffer.

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
/// Redis's PROTO_MBULK_BIG_ARG: bulks this big are read into their own buffer.
pub const BIG_ARG: i64 = 32 * 1024;
/// Tag bit of a span that names `Parser::big[start & !BIG_TAG]` instead of a
/// range of the read buffer (see [`crate::protocol::Args`]).
pub const BIG_TAG: usize = 1 << (usize::BITS - 1);

/// Where a parsed command's argument bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Ranges index the read buffer (tagged spans: `Parser::big`).
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
    /// Arguments of this request read into their own buffers (spans tagged [`BIG_TAG`]).
    pub big: Vec<Vec<u8>>,
    /// Arguments of the multibulk request in progress still to come (0: none in progress).
    remaining: i64,
    /// Length announced by the last `$` line, or -1 while that line is awaited.
    bulk: i64,
    /// Offset from the request's start where parsing resumes.
    pos: usize,
    /// Bytes after `pos` already searched for a line terminator.
    scanned: usize,
    /// The big argument being received: its buffer (length + CRLF) and bytes filled.
    filling: Option<(Vec<u8>, usize)>,
    /// Payload bytes of the arguments parsed so far (Redis's argv_len_sum).
    argv_len: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            inline: Vec::new(),
            max_bulk: 512 * 1024 * 1024,
            big: Vec::new(),
            remaining: 0,
            bulk: -1,
            pos: 0,
            scanned: 0,
            filling: None,
            argv_len: 0,
        }
    }
}

fn parse_len(s: &[u8]) -> Option<i64> {
    crate::util::num::string2ll(s)
}

impl Parser {
    /// Parses one request at the start of `buf`. `authed` is false while the
    /// connection still owes an AUTH, which tightens the limits as Redis does.
    ///
    /// Resumable: after `Incomplete`, call again with the same request start
    /// (the bytes already given unchanged, more appended) and the same `args`,
    /// which holds the arguments parsed so far; a new request clears it.
    pub fn parse(&mut self, buf: &[u8], args: &mut Vec<(usize, usize)>, authed: bool) -> Result<Parsed, ProtoError> {
        if self.idle() {
            args.clear();
            self.big.clear();
            self.argv_len = 0;
        }
        if buf.is_empty() {
            return Ok(Parsed::Incomplete);
        }
        let r = if buf[0] != b'*' {
            self.parse_inline(buf, args)
        } else {
            self.parse_multibulk(buf, args, authed)
        };
        match r {
            Ok(Parsed::Incomplete) => {}
            _ => self.finish_request(),
        }
        r
    }

    fn finish_request(&mut self) {
        self.remaining = 0;
        self.bulk = -1;
        self.pos = 0;
        self.scanned = 0;
        self.filling = None;
    }

    /// Finds the next `\r` at or after `pos`, never rescanning bytes searched before.
    fn find_cr(&mut self, buf: &[u8]) -> Option<usize> {
        let from = self.pos + self.scanned;
        match memchr(b'\r', &buf[from.min(buf.len())..]) {
            Some(rel) => {
                self.scanned = from + rel - self.pos;
                Some(from + rel)
            }
            None => {
                self.scanned = buf.len() - self.pos;
                None
            }
        }
    }

    fn parse_multibulk(&mut self, buf: &[u8], args: &mut Vec<(usize, usize)>, authed: bool) -> Result<Parsed, ProtoError> {
        if self.remaining == 0 {
            let Some(cr) = self.find_cr(buf) else {
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
            self.pos = cr + 2;
            self.scanned = 0;
            if count <= 0 {
                return Ok(Parsed::Empty { consumed: self.pos });
            }
            self.remaining = count;
            self.bulk = -1;
            // Do not trust the count for preallocation: a client could claim 2^31 args.
            args.reserve((count as usize).min(1024));
        }
        while self.remaining > 0 {
            if let Some((big, filled)) = self.filling.as_mut() {
                let take = (big.len() - *filled).min(buf.len() - self.pos);
                big[*filled..*filled + take].copy_from_slice(&buf[self.pos..self.pos + take]);
                *filled += take;
                self.pos += take;
                if *filled < big.len() {
                    return Ok(Parsed::Incomplete);
                }
                self.complete_big(args);
                continue;
            }
            if self.bulk < 0 {
                if self.pos >= buf.len() {
                    return Ok(Parsed::Incomplete);
                }
                let Some(cr) = self.find_cr(buf) else {
                    if buf.len() - self.pos > INLINE_MAX {
                        return Err(ProtoError("ERR Protocol error: too big bulk count string".into()));
                    }
                    return Ok(Parsed::Incomplete);
                };
                if cr + 1 >= buf.len() {
                    return Ok(Parsed::Incomplete);
                }
                let pos = self.pos;
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
                self.pos = cr + 2;
                self.scanned = 0;
                self.bulk = len;
                // As Redis: a big bulk not already in the buffer gets a buffer of its own.
                if len >= BIG_ARG && buf.len() - self.pos < len as usize + 2 {
                    self.filling = Some((vec![0; len as usize + 2], 0));
                    continue;
                }
            }
            let start = self.pos;
            let end = start + self.bulk as usize;
            // Redis skips the two bytes after the payload without checking them.
            if end + 2 > buf.len() {
                return Ok(Parsed::Incomplete);
            }
            args.push((start, end));
            self.argv_len += end - start;
            self.pos = end + 2;
            self.bulk = -1;
            self.remaining -= 1;
        }
        Ok(Parsed::Command {
            consumed: self.pos,
            source: Source::Input,
        })
    }

    fn complete_big(&mut self, args: &mut Vec<(usize, usize)>) {
        if let Some((mut big, _)) = self.filling.take() {
            big.truncate(big.len() - 2);
            self.argv_len += big.len();
            args.push((BIG_TAG | self.big.len(), big.len()));
            self.big.push(big);
        }
        self.bulk = -1;
        self.remaining -= 1;
    }

    /// The unfilled part of the big argument being received, when every byte
    /// of the read buffer has been parsed: the connection reads straight into it.
    pub fn big_spare(&mut self, buffered: usize) -> Option<&mut [u8]> {
        if self.pos < buffered {
            return None;
        }
        self.filling.as_mut().map(|(b, filled)| &mut b[*filled..])
    }

    /// Records `n` bytes read into [`Parser::big_spare`].
    pub fn big_filled(&mut self, n: usize) {
        if let Some((b, filled)) = self.filling.as_mut() {
            *filled = (*filled + n).min(b.len());
        }
    }

    /// Redis's `sdslen(querybuf)`: bytes received and not yet parsed into
    /// arguments (`buffered` is the read buffer's length from the request's
    /// start), plus the part of a big argument received so far.
    pub fn query_len(&self, buffered: usize) -> usize {
        buffered.saturating_sub(self.pos) + self.filling.as_ref().map_or(0, |f| f.1)
    }

    /// Free room in the big argument's buffer while one is being received.
    pub fn big_free(&self) -> Option<usize> {
        self.filling.as_ref().map(|(b, filled)| b.len() - filled)
    }

    /// Payload bytes of the arguments of the request in progress, or of the
    /// command just returned (argv-mem).
    pub fn argv_len(&self) -> usize {
        self.argv_len
    }

    /// True between requests: nothing of a request is held.
    pub fn idle(&self) -> bool {
        self.pos == 0 && self.filling.is_none()
    }

    /// Memory held by big-argument buffers (finished and in progress).
    pub fn big_mem(&self) -> usize {
        self.big.iter().map(|b| b.capacity()).sum::<usize>() + self.filling.as_ref().map_or(0, |f| f.0.capacity())
    }

    fn parse_inline(&mut self, buf: &[u8], args: &mut Vec<(usize, usize)>) -> Result<Parsed, ProtoError> {
        let from = self.scanned.min(buf.len());
        let Some(nl) = memchr(b'\n', &buf[from..]).map(|r| from + r) else {
            if buf.len() > INLINE_MAX {
                return Err(ProtoError("ERR Protocol error: too big inline request".into()));
            }
            self.scanned = buf.len();
            return Ok(Parsed::Incomplete);
        };
        let consumed = nl + 1;
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
        self.inline.clear();
        args.clear();
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

    /// Feeds `input` the way the connection does, `chunk` bytes per read:
    /// into the read buffer, or straight into a big argument's buffer.
    fn feed(input: &[u8], chunk: usize) -> Vec<Vec<Vec<u8>>> {
        let mut p = Parser::default();
        let mut args = Vec::new();
        let (mut buf, mut start, mut sent) = (Vec::new(), 0usize, 0usize);
        let mut cmds = Vec::new();
        while sent < input.len() {
            let n = chunk.min(input.len() - sent);
            match p.big_spare(buf.len() - start) {
                Some(spare) => {
                    let n = n.min(spare.len());
                    spare[..n].copy_from_slice(&input[sent..sent + n]);
                    p.big_filled(n);
                    sent += n;
                }
                None => {
                    buf.extend_from_slice(&input[sent..sent + n]);
                    sent += n;
                }
            }
            loop {
                match p.parse(&buf[start..], &mut args, true).unwrap() {
                    Parsed::Incomplete => break,
                    Parsed::Empty { consumed } => start += consumed,
                    Parsed::Command { consumed, source } => {
                        let data: &[u8] = if source == Source::Input { &buf[start..] } else { &p.inline };
                        let a = crate::protocol::Args::with_big(data, &args, &p.big);
                        cmds.push(a.iter().map(|x| x.to_vec()).collect());
                        start += consumed;
                    }
                }
            }
        }
        cmds
    }

    #[test]
    fn resumed_parsing_gives_the_same_commands_for_any_read_size() {
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n".to_vec();
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nECHO\r\n$40000\r\n");
        input.extend(vec![b'e'; 40000]);
        input.extend_from_slice(b"\r\n");
        let want = vec![
            vec![b"SET".to_vec(), b"k".to_vec(), big.clone()],
            vec![b"PING".to_vec()],
            vec![b"GET".to_vec(), b"k".to_vec()],
            vec![b"ECHO".to_vec(), vec![b'e'; 40000]],
        ];
        for chunk in [1, 2, 3, 7, 100, 4096, 16384, 40001, 1 << 20] {
            assert_eq!(feed(&input, chunk), want, "chunk {chunk}");
        }
    }

    #[test]
    fn a_big_argument_gets_a_buffer_of_its_announced_size() {
        let mut p = Parser::default();
        let mut args = Vec::new();
        let mut buf = b"*2\r\n$4\r\nECHO\r\n$50000\r\n".to_vec();
        buf.extend(vec![b'x'; 100]);
        assert_eq!(p.parse(&buf, &mut args, true).unwrap(), Parsed::Incomplete);
        assert_eq!(p.query_len(buf.len()), 100, "only the argument's bytes so far");
        assert_eq!(p.argv_len(), 4);
        let spare = p.big_spare(buf.len()).expect("reading into the argument");
        assert_eq!(spare.len(), 50002 - 100);
        spare[..49900].fill(b'y');
        spare[49900..].copy_from_slice(b"\r\n");
        p.big_filled(49902);
        assert_eq!(p.big_free(), Some(0));
        let r = p.parse(&buf, &mut args, true).unwrap();
        assert_eq!(
            r,
            Parsed::Command {
                consumed: buf.len(),
                source: Source::Input
            }
        );
        let a = crate::protocol::Args::with_big(&buf, &args, &p.big);
        assert_eq!(a.get(0), b"ECHO");
        assert_eq!(a.get(1).len(), 50000);
        assert_eq!(&a.get(1)[..101], &[&[b'x'; 100][..], b"y"].concat()[..]);
        assert_eq!(a.tail(1).get(0).len(), 50000);
        // a big bulk already complete in the buffer stays in place
        let mut whole = b"*1\r\n$40000\r\n".to_vec();
        whole.extend(vec![b'z'; 40000]);
        whole.extend_from_slice(b"\r\n");
        let mut p = Parser::default();
        assert!(matches!(p.parse(&whole, &mut args, true).unwrap(), Parsed::Command { .. }));
        assert!(p.big.is_empty());
        assert_eq!(args, vec![(12, 40012)]);
    }

    #[test]
    fn line_searches_resume_where_they_stopped() {
        let mut p = Parser::default();
        let mut args = Vec::new();
        let mut buf = b"*1\r\n$".to_vec();
        buf.extend(vec![b'1'; 1000]);
        assert_eq!(p.parse(&buf, &mut args, true).unwrap(), Parsed::Incomplete);
        assert_eq!(p.pos + p.scanned, buf.len(), "searched to the end once");
        buf.extend(vec![b'1'; INLINE_MAX]);
        assert_eq!(p.parse(&buf, &mut args, true).unwrap_err().0, "ERR Protocol error: too big bulk count string");
    }

    /// Total parsing work is linear in the request size however it is split:
    /// re-parsing from the request's start on every read made 8x the
    /// arguments in 8x the reads cost ~64x.
    #[test]
    fn parsing_a_request_fed_in_small_pieces_is_linear() {
        fn request(n: usize) -> Vec<u8> {
            let mut r = format!("*{n}\r\n").into_bytes();
            for i in 0..n {
                let a = format!("{i:>8}");
                r.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
            r
        }
        let time = |n: usize| {
            let req = request(n);
            let t = std::time::Instant::now();
            let cmds = feed(&req, 16);
            assert_eq!(cmds.len(), 1);
            assert_eq!(cmds[0].len(), n);
            t.elapsed().as_secs_f64()
        };
        let (small, large) = (time(4_000), time(32_000));
        assert!(large / small < 30.0, "8x the request took {:.1}x as long", large / small);
    }
}
