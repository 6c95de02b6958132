//! The wire protocol: request parsing and reply encoding. Knows nothing of storage.
pub mod parser;
pub mod reply;

pub use parser::{Parsed, Parser, ProtoError, Source};
pub use reply::Reply;

/// A parsed command's arguments: ranges into one byte buffer (the read buffer,
/// the inline scratch buffer, or a forwarded batch). `get(0)` is the name.
/// A span whose start has [`parser::BIG_TAG`] set names `big[start & !BIG_TAG]`
/// instead: a big argument the parser read into a buffer of its own. Use
/// `get`/`iter`/`tail` rather than indexing `data` with `spans` directly.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    pub data: &'a [u8],
    pub spans: &'a [(usize, usize)],
    pub big: &'a [Vec<u8>],
}

impl<'a> Args<'a> {
    pub fn new(data: &'a [u8], spans: &'a [(usize, usize)]) -> Self {
        Args { data, spans, big: &[] }
    }
    /// Arguments of which some may live in the parser's big-argument buffers.
    pub fn with_big(data: &'a [u8], spans: &'a [(usize, usize)], big: &'a [Vec<u8>]) -> Self {
        Args { data, spans, big }
    }
    /// The arguments from `i` on (e.g. the command inside COMMAND GETKEYS).
    pub fn tail(&self, i: usize) -> Args<'a> {
        Args {
            data: self.data,
            spans: &self.spans[i..],
            big: self.big,
        }
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
    /// Argument `i`; panics past the end (arity is checked before handlers run).
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        span(self.data, self.big, self.spans[i])
    }
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (data, big) = (self.data, self.big);
        self.spans.iter().map(move |&sp| span(data, big, sp))
    }
    /// True when argument `i` equals `word` ignoring ASCII case.
    #[inline]
    pub fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }
}

#[inline]
fn span<'a>(data: &'a [u8], big: &'a [Vec<u8>], (s, e): (usize, usize)) -> &'a [u8] {
    if s & parser::BIG_TAG != 0 {
        &big[s & !parser::BIG_TAG]
    } else {
        &data[s..e]
    }
}

/// Length of the complete RESP frame at the start of `b` (None if incomplete or
/// malformed). Used to split replies produced on other shards.
pub fn frame_len(b: &[u8]) -> Option<usize> {
    let t = *b.first()?;
    let nl = memchr::memchr(b'\n', b)?;
    let line = b.get(1..nl.checked_sub(1)?)?;
    let head = nl + 1;
    match t {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(head),
        b'$' | b'=' | b'!' => {
            let n = crate::util::num::string2ll(line)?;
            if n < 0 {
                return Some(head);
            }
            let end = head + n as usize + 2;
            (end <= b.len()).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = crate::util::num::string2ll(line)?;
            if n < 0 {
                return Some(head);
            }
            let items = if t == b'%' || t == b'|' { 2 * n as usize } else { n as usize };
            let mut pos = head;
            for _ in 0..items {
                pos += frame_len(&b[pos..])?;
            }
            Some(pos)
        }
        _ => None,
    }
}
