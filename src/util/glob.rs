//! Glob-style pattern matching with the exact semantics of Redis 7.0.15
//! `stringmatchlen()` (util.c), as shipped by Debian with the
//! CVE-2024-31228 fix (a `*` nesting limit of 1000).
//!
//! Supported syntax (identical to Redis):
//! * `?`        any single byte
//! * `*`        any sequence of bytes (consecutive stars collapse)
//! * `[abc]`    byte class; `[^abc]` negated (only `^`, not `!`);
//!   `[a-z]` ranges (reversed bounds such as `[z-a]` are swapped);
//!   `\x` inside a class matches `x` literally (always case-sensitively);
//!   an unterminated class runs to the end of the pattern.
//! * `\x`       matches `x` literally (a trailing lone `\` matches `\`).
//!
//! Byte values are compared the way the C code compares them: as *signed*
//! `char`s widened to `int` (this matters for ranges with bytes >= 0x80),
//! and with glibc's C-locale `tolower()` in `nocase` mode.
//!
//! The C implementation recurses once per `*`.  Because a failed recursive
//! match after a `*` either propagates a match upward or sets the
//! `skipLongerMatches` flag (which makes every caller fail), only the
//! innermost `*` is ever resumed; this port therefore runs iteratively with a
//! single backtrack point and a nesting counter, using O(1) stack regardless
//! of the pattern, while returning exactly what the recursive C code returns
//! (including `false` once more than 1000 nested stars would be needed).

/// Maximum `*` nesting Redis allows before giving up (returns no match).
const MAX_NESTING: u32 = 1000;

/// `(int)(char)b` on a platform where `char` is signed (x86-64, as Redis is
/// normally built).
#[inline(always)]
fn sc(b: u8) -> i32 {
    b as i8 as i32
}

/// glibc `tolower()` in the "C" locale for arguments in -128..=255.
/// Negative values other than EOF (-1) are mapped to their unsigned
/// counterpart (glibc's table does this to tolerate signed `char`s).
#[inline(always)]
fn lower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) {
        c + 32
    } else if c < -1 {
        c + 256
    } else {
        c
    }
}

/// Returns true if `string` matches the glob `pattern` (Redis `stringmatchlen`).
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let plen = pattern.len();
    let slen = string.len();
    // Emulates reading the NUL terminator that follows every sds string.
    let at = |i: usize| -> u8 { pattern.get(i).copied().unwrap_or(0) };

    let mut p = 0usize;
    let mut s = 0usize;
    // Backtrack point of the innermost '*': (pattern index after the star,
    // string index the rest of the pattern is currently tried at).
    let mut star: Option<(usize, usize)> = None;
    let mut nesting: u32 = 0;

    'attempt: loop {
        // One invocation of the C `stringmatchlen_impl` body starting at
        // (p, s) with `nesting`. `break 'body` means "returned 0".
        'body: {
            while p < plen && s < slen {
                match pattern[p] {
                    b'*' => {
                        while p + 1 < plen && pattern[p + 1] == b'*' {
                            p += 1;
                        }
                        if plen - p == 1 {
                            return true;
                        }
                        // Recursive call with nesting+1. If that exceeds the
                        // limit every attempt returns 0, the star loop runs
                        // out of string and sets skipLongerMatches: no match.
                        if nesting + 1 > MAX_NESTING {
                            return false;
                        }
                        nesting += 1;
                        p += 1;
                        star = Some((p, s));
                        continue 'attempt;
                    }
                    b'?' => {
                        s += 1;
                    }
                    b'[' => {
                        p += 1;
                        let not = at(p) == b'^';
                        if not {
                            p += 1;
                        }
                        let mut matched = false;
                        loop {
                            if at(p) == b'\\' && plen - p >= 2 {
                                p += 1;
                                if pattern[p] == string[s] {
                                    matched = true;
                                }
                            } else if at(p) == b']' {
                                break;
                            } else if p >= plen {
                                p -= 1;
                                break;
                            } else if plen - p >= 3 && pattern[p + 1] == b'-' {
                                let mut start = sc(pattern[p]);
                                let mut end = sc(pattern[p + 2]);
                                let mut c = sc(string[s]);
                                if start > end {
                                    std::mem::swap(&mut start, &mut end);
                                }
                                if nocase {
                                    start = lower(start);
                                    end = lower(end);
                                    c = lower(c);
                                }
                                p += 2;
                                if c >= start && c <= end {
                                    matched = true;
                                }
                            } else if !nocase {
                                if pattern[p] == string[s] {
                                    matched = true;
                                }
                            } else if lower(sc(pattern[p])) == lower(sc(string[s])) {
                                matched = true;
                            }
                            p += 1;
                        }
                        if not {
                            matched = !matched;
                        }
                        if !matched {
                            break 'body;
                        }
                        s += 1;
                    }
                    first => {
                        let pc = if first == b'\\' && plen - p >= 2 {
                            p += 1;
                            pattern[p]
                        } else {
                            first
                        };
                        let sch = string[s];
                        let equal = if nocase { lower(sc(pc)) == lower(sc(sch)) } else { pc == sch };
                        if !equal {
                            break 'body;
                        }
                        s += 1;
                    }
                }
                p += 1;
                if s == slen {
                    while p < plen && pattern[p] == b'*' {
                        p += 1;
                    }
                    break;
                }
            }
            if p >= plen && s == slen {
                return true;
            }
        }

        // The current attempt returned 0: resume the innermost star loop.
        match star {
            None => return false,
            Some((pn, ss)) => {
                let ns = ss + 1;
                if ns >= slen {
                    // Star loop exhausted: skipLongerMatches, everything fails.
                    return false;
                }
                star = Some((pn, ns));
                p = pn;
                s = ns;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }
    fn mi(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), true)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        assert!(m("hello", "hello"));
        assert!(!m("hello", "hell"));
        assert!(!m("hell", "hello"));
        assert!(m("h?llo", "hello"));
        assert!(m("h?llo", "hallo"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("*", "anything"));
        assert!(m("**", "x"));
        assert!(m("a*", "a"));
        assert!(m("a**", "a"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYYcd"));
        assert!(m("*c", "abc"));
        assert!(!m("*c", "abd"));
        assert!(m("*a*a*a", "aaaa"));
        assert!(m("user:*", "user:1000"));
        assert!(!m("user:*", "users:1000"));
        assert!(m("?", "\u{1}"));
        assert!(!m("??", "a"));
    }

    #[test]
    fn empty_string_only_matches_empty_pattern() {
        // Redis never enters the loop for an empty subject, so trailing
        // stars are not stripped: "*" does not match "" (verified with
        // KEYS ** on redis-server 7.0.15).
        assert!(!m("*", ""));
        assert!(!m("**", ""));
        assert!(!m("?", ""));
        assert!(!m("[a]", ""));
        assert!(m("", ""));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        // reversed range bounds are swapped
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("[z-a]", "m"));
        // '!' is not a negation operator
        assert!(m("[!a]", "!"));
        assert!(m("[!a]", "a"));
        assert!(!m("[!a]", "b"));
        // escapes inside classes
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(m("[a\\-z]", "-"));
        assert!(!m("[a\\-z]", "b"));
        // ']' first closes an empty class, which never matches
        assert!(!m("[]a]", "]a]"));
        assert!(!m("[]", "a"));
        assert!(m("[^]", "a"));
        assert!(m("[^]", "]"));
        // unterminated classes run to the end of the pattern
        assert!(m("[abc", "a"));
        assert!(m("[abc", "c"));
        assert!(!m("[abc", "d"));
        assert!(!m("[", "a"));
        assert!(m("[^", "a"));
        assert!(m("[^", "["));
        assert!(!m("[^a", "a"));
        assert!(m("[^a", "b"));
        // a leading dash is literal ...
        assert!(m("[-a]", "-"));
        assert!(m("[-a]", "a"));
        // ... but "[a-]" is the range 'a'..']' (swapped to ']'..'a') of an
        // unterminated class, exactly as in Redis
        assert!(!m("[a-]", "-"));
        assert!(m("[a-]", "a"));
        assert!(m("[a-]", "^"));
        assert!(m("[a-]]", "_"));
        // lone backslash at end of class
        assert!(m("[\\", "\\"));
        assert!(!m("[\\", "a"));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("\\?", "?"));
        assert!(!m("\\?", "a"));
        assert!(m("\\[a]", "[a]"));
        assert!(m("a\\", "a\\"));
        assert!(m("\\", "\\"));
        assert!(m("\\a", "a"));
        assert!(m("*\\*", "abc*"));
        assert!(!m("*\\*", "abc"));
    }

    #[test]
    fn nocase() {
        assert!(mi("HeLLo", "hello"));
        assert!(!m("HeLLo", "hello"));
        assert!(mi("h[A-Z]llo", "hello"));
        assert!(mi("H[a-z]LLO", "HELLO"));
        assert!(mi("[^A]", "b"));
        assert!(!mi("[^A]", "a"));
        assert!(mi("*FOO*", "xxfooxx"));
        // escaped class members compare case-sensitively even with nocase
        assert!(!mi("[\\A]", "a"));
        assert!(mi("[\\A]", "A"));
        // high bytes are not case-folded
        assert!(mi("\u{e9}", "\u{e9}"));
        assert!(!mi("\u{c9}", "\u{e9}"));
    }

    #[test]
    fn signed_char_ranges() {
        // Bytes >= 0x80 compare as negative (signed char), so [a-\xff]
        // is swapped to [\xff-a] = [-1, 97].
        let p = b"[a-\xff]";
        assert!(glob_match(p, b"a", false));
        assert!(glob_match(p, b"0", false));
        assert!(glob_match(p, b"\xff", false));
        assert!(!glob_match(p, b"b", false));
        assert!(!glob_match(p, b"\x80", false));
        // [\x80-\xff] covers all high bytes
        let p = b"[\x80-\xff]";
        assert!(glob_match(p, b"\x80", false));
        assert!(glob_match(p, b"\xc3", false));
        assert!(!glob_match(p, b"a", false));
        // nocase: tolower maps -128..-2 to 128..254 but leaves -1 (EOF)
        // as is, so [\x80-a] becomes the empty range [128, 97].
        assert!(glob_match(b"[\x80-a]", b"a", false));
        assert!(!glob_match(b"[\x80-a]", b"a", true));
        assert!(glob_match(b"[\xff-a]", b"\xff", true));
        assert!(!glob_match(b"[\xfe-a]", b"\xfe", true));
    }

    #[test]
    fn binary_and_nul_bytes() {
        assert!(glob_match(b"a\0b", b"a\0b", false));
        assert!(glob_match(b"a?b", b"a\0b", false));
        assert!(glob_match(b"*\0", b"xyz\0", false));
        assert!(!glob_match(b"a\0", b"a", false));
        assert!(glob_match(b"[\0]", b"\0", false));
    }

    #[test]
    fn nesting_limit() {
        // 1000 nested stars are fine; the 1001st star that needs to recurse
        // makes the match fail, as in Redis (CVE-2024-31228 fix).
        let mut pat = Vec::new();
        for _ in 0..1000 {
            pat.extend_from_slice(b"a*");
        }
        pat.push(b'a');
        let subj = vec![b'a'; 1001];
        assert!(glob_match(&pat, &subj, false));

        let mut pat = Vec::new();
        for _ in 0..1001 {
            pat.extend_from_slice(b"a*");
        }
        pat.push(b'a');
        let subj = vec![b'a'; 1002];
        assert!(!glob_match(&pat, &subj, false));

        // A trailing star never recurses, so it matches even at the limit.
        let mut pat = Vec::new();
        for _ in 0..1001 {
            pat.extend_from_slice(b"a*");
        }
        assert!(glob_match(&pat, &subj, false));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let pat = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let subj = vec![b'a'; 10_000];
        let t = std::time::Instant::now();
        assert!(!glob_match(pat, &subj, false));
        assert!(t.elapsed().as_secs() < 2);
        // very long star patterns must not overflow the stack
        let pat = "*x".repeat(100_000);
        let subj = "x".repeat(100_000);
        assert!(!glob_match(pat.as_bytes(), subj.as_bytes(), false));
        let pat = "*".repeat(1_000_000);
        assert!(glob_match(pat.as_bytes(), b"abc", false));
    }

    #[test]
    fn no_panic_on_arbitrary_input() {
        // Small deterministic exhaustive-ish sweep over a tricky alphabet.
        let alphabet: &[u8] = b"*?[]^\\-a\xff";
        let subjects: &[&[u8]] = &[b"", b"a", b"-", b"]", b"\\", b"\xff", b"a-", b"[]", b"aa"];
        let mut pat = Vec::new();
        for n in 0..(alphabet.len().pow(4)) {
            pat.clear();
            let mut k = n;
            for _ in 0..4 {
                pat.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
                if k == 0 {
                    break;
                }
            }
            for s in subjects {
                let _ = glob_match(&pat, s, false);
                let _ = glob_match(&pat, s, true);
            }
        }
    }
}
