//! Reply encoder: writes RESP2 or RESP3 frames straight into the connection's
//! output buffer, so a whole pipeline's replies leave in one write.

/// An output buffer plus the protocol version the client negotiated with HELLO.
pub struct Reply {
    pub buf: Vec<u8>,
    pub resp3: bool,
}

impl Reply {
    pub fn new(resp3: bool) -> Self {
        Reply {
            buf: Vec::with_capacity(256),
            resp3,
        }
    }

    pub fn with_buf(buf: Vec<u8>, resp3: bool) -> Self {
        Reply { buf, resp3 }
    }

    pub fn resp3(&self) -> bool {
        self.resp3
    }

    #[inline]
    fn header(&mut self, prefix: u8, n: i64) {
        self.buf.push(prefix);
        crate::util::num::write_i64(&mut self.buf, n);
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string (`+...`); Redis never lets CR/LF into one.
    pub fn status(&mut self, s: &[u8]) {
        self.buf.push(b'+');
        self.buf.extend(s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply. `msg` carries its code ("ERR ...", "WRONGTYPE ..."); a
    /// leading '-' is added as Redis's addReplyError does, CR/LF become spaces.
    pub fn error(&mut self, msg: &str) {
        self.error_bytes(msg.as_bytes())
    }

    pub fn error_bytes(&mut self, msg: &[u8]) {
        if msg.first() != Some(&b'-') {
            self.buf.push(b'-');
        }
        self.buf.extend(msg.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn int(&mut self, v: i64) {
        self.header(b':', v);
    }

    #[inline]
    pub fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer rendered as a bulk string (Redis's addReplyBulkLongLong).
    pub fn bulk_int(&mut self, v: i64) {
        let mut tmp = Vec::with_capacity(24);
        crate::util::num::write_i64(&mut tmp, v);
        self.bulk(&tmp);
    }

    /// Null bulk string: `$-1` in RESP2, `_` in RESP3.
    #[inline]
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// Null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    #[inline]
    pub fn array_len(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, a flat array of 2n in RESP2.
    pub fn map_len(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    /// A set: `~n` in RESP3, an array in RESP2.
    pub fn set_len(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'~', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A push frame: `>n` in RESP3, an array in RESP2.
    pub fn push_len(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'>', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// A double as Redis's addReplyDouble: `,x` in RESP3, a bulk string in RESP2.
    pub fn double(&mut self, d: f64) {
        let mut tmp = Vec::with_capacity(32);
        if d.is_infinite() {
            tmp.extend_from_slice(if d > 0.0 { b"inf" } else { b"-inf" });
        } else {
            fmt_g17(&mut tmp, d);
        }
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(&tmp);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(&tmp);
        }
    }

    /// Verbatim string (`=len\r\ntxt:...` in RESP3, bulk in RESP2), as INFO and CLIENT LIST reply.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// Already encoded RESP bytes (a reply produced on another shard).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// `printf("%.17g")`, the format Redis uses for double replies.
pub fn fmt_g17(out: &mut Vec<u8>, d: f64) {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is large enough for any %.17g rendering and snprintf NUL-terminates.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.17g".as_ptr(), d) };
    out.extend_from_slice(&buf[..(n.max(0) as usize).min(buf.len() - 1)]);
}

/// Error strings shared by many commands (exact Redis 7.0 texts).
pub mod err {
    /// A shard failed to answer (its job panicked: a bug, logged where it happened).
    pub const SHARD_LOST: &str = "ERR internal error: a shard did not answer";
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_aggregates_follow_the_protocol_version() {
        let mut r2 = Reply::new(false);
        r2.null();
        r2.map_len(2);
        r2.set_len(1);
        assert_eq!(r2.buf, b"$-1\r\n*4\r\n*1\r\n");
        let mut r3 = Reply::new(true);
        r3.null();
        r3.map_len(2);
        r3.set_len(1);
        assert_eq!(r3.buf, b"_\r\n%2\r\n~1\r\n");
    }

    #[test]
    fn errors_get_a_dash_and_lose_newlines() {
        let mut r = Reply::new(false);
        r.error("ERR bad\r\nthing");
        assert_eq!(r.buf, b"-ERR bad  thing\r\n");
    }
}
