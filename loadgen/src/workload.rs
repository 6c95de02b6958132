//! What to send: command templates, weights, keys, values, and the RESP
//! encoder that writes straight into a connection's reusable buffer.

use crate::keygen::{Distribution, Rng};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Lit(Vec<u8>),
    Key,
    Data,
}

/// One piece of an encoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Pre-encoded bytes (array header and all-literal arguments).
    Raw(Vec<u8>),
    /// An argument containing placeholders.
    Arg(Vec<Seg>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdKind {
    Set,
    Get,
    Other,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub text: String,
    pub name: String,
    pub weight: u32,
    pub parts: Vec<Part>,
    pub uses_data: bool,
    pub kind: CmdKind,
    /// Index into the statistics slots (templates with the same command name share one).
    pub stat: usize,
}

#[derive(Debug, Clone)]
pub enum Sizes {
    Fixed(usize),
    Range(usize, usize),
    /// (size, cumulative weight)
    List(Vec<(usize, u64)>, u64),
}

impl Sizes {
    pub fn max(&self) -> usize {
        match self {
            Sizes::Fixed(n) => *n,
            Sizes::Range(_, b) => *b,
            Sizes::List(v, _) => v.iter().map(|x| x.0).max().unwrap_or(0),
        }
    }

    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> usize {
        match self {
            Sizes::Fixed(n) => *n,
            Sizes::Range(a, b) => a + rng.below((b - a + 1) as u64) as usize,
            Sizes::List(v, total) => {
                let r = rng.below(*total);
                for &(sz, cum) in v {
                    if r < cum {
                        return sz;
                    }
                }
                v.last().map(|x| x.0).unwrap_or(0)
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Sizes::Fixed(n) => format!("{n}"),
            Sizes::Range(a, b) => format!("{a}-{b}"),
            Sizes::List(v, _) => {
                let mut prev = 0;
                v.iter()
                    .map(|&(s, c)| {
                        let w = c - prev;
                        prev = c;
                        format!("{s}:{w}")
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Workload {
    /// Templates in the weighted mix (weight 0 ones are never picked).
    pub templates: Vec<Template>,
    /// Cumulative weights, same order as `templates`.
    cum: Vec<u64>,
    total_weight: u64,
    /// Template used by --preload (SET __key__ __data__); not in the mix.
    pub preload: Template,
    pub stat_names: Vec<String>,
    pub keys: u64,
    pub prefix: Vec<u8>,
    pub dist: Distribution,
    pub sizes: Sizes,
    filler: Vec<u8>,
    /// The default SET/GET mix (required by --verify).
    pub is_set_get: bool,
}

/// Split a template into words; double or single quotes group words.
pub fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => cur.push(ch),
            None if ch == '"' || ch == '\'' => {
                quote = Some(ch);
                in_word = true;
            }
            None if ch.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(ch);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quote in command template {s:?}"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn split_placeholders(arg: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut rest = arg;
    loop {
        let k = rest.find("__key__");
        let d = rest.find("__data__");
        let next = match (k, d) {
            (None, None) => None,
            (Some(a), None) => Some((a, Seg::Key, 7)),
            (None, Some(b)) => Some((b, Seg::Data, 8)),
            (Some(a), Some(b)) => Some(if a < b { (a, Seg::Key, 7) } else { (b, Seg::Data, 8) }),
        };
        match next {
            None => {
                if !rest.is_empty() {
                    segs.push(Seg::Lit(rest.as_bytes().to_vec()));
                }
                return segs;
            }
            Some((at, seg, len)) => {
                if at > 0 {
                    segs.push(Seg::Lit(rest.as_bytes()[..at].to_vec()));
                }
                segs.push(seg);
                rest = &rest[at + len..];
            }
        }
    }
}

/// Split an optional "WEIGHT:" prefix off a template.
pub fn split_weight_prefix(s: &str) -> (Option<u32>, &str) {
    let t = s.trim_start();
    if let Some((w, rest)) = t.split_once(':') {
        if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) && !rest.trim().is_empty() {
            if let Ok(w) = w.parse() {
                return (Some(w), rest);
            }
        }
    }
    (None, s)
}

pub fn compile_template(text: &str, weight: u32) -> Result<Template, String> {
    let words = tokenize(text)?;
    if words.is_empty() {
        return Err(format!("empty command template {text:?}"));
    }
    let name = words[0].to_ascii_uppercase();
    let mut parts: Vec<Part> = Vec::new();
    let mut raw = format!("*{}\r\n", words.len()).into_bytes();
    let mut uses_data = false;
    for w in &words {
        let segs = split_placeholders(w);
        let literal = segs.iter().all(|s| matches!(s, Seg::Lit(_)));
        if literal {
            raw.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
            raw.extend_from_slice(w.as_bytes());
            raw.extend_from_slice(b"\r\n");
        } else {
            uses_data |= segs.contains(&Seg::Data);
            if !raw.is_empty() {
                parts.push(Part::Raw(std::mem::take(&mut raw)));
            }
            parts.push(Part::Arg(segs));
        }
    }
    if !raw.is_empty() {
        parts.push(Part::Raw(raw));
    }
    Ok(Template {
        text: text.to_string(),
        name,
        weight,
        parts,
        uses_data,
        kind: CmdKind::Other,
        stat: 0,
    })
}

impl Workload {
    pub fn new(mut templates: Vec<Template>, is_set_get: bool, keys: u64, prefix: &str, dist: Distribution, sizes: Sizes) -> Result<Workload, String> {
        if keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        let mut stat_names: Vec<String> = Vec::new();
        for t in templates.iter_mut() {
            t.stat = match stat_names.iter().position(|n| *n == t.name) {
                Some(i) => i,
                None => {
                    stat_names.push(t.name.clone());
                    stat_names.len() - 1
                }
            };
        }
        let mut cum = Vec::new();
        let mut total = 0u64;
        for t in &templates {
            total += t.weight as u64;
            cum.push(total);
        }
        if total == 0 {
            return Err("all command weights are zero".into());
        }
        let mut preload = compile_template("SET __key__ __data__", 1)?;
        preload.kind = CmdKind::Set;
        preload.stat = usize::MAX;
        // Filler for values: printable, not all the same byte.
        let max = sizes.max();
        let filler: Vec<u8> = (0..max).map(|i| b'a' + (i % 26) as u8).collect();
        Ok(Workload {
            templates,
            cum,
            total_weight: total,
            preload,
            stat_names,
            keys,
            prefix: prefix.as_bytes().to_vec(),
            dist,
            sizes,
            filler,
            is_set_get,
        })
    }

    /// The default SET/GET mix with the given weights.
    pub fn set_get(set_w: u32, get_w: u32, keys: u64, prefix: &str, dist: Distribution, sizes: Sizes) -> Result<Workload, String> {
        let mut set = compile_template("SET __key__ __data__", set_w)?;
        set.kind = CmdKind::Set;
        let mut get = compile_template("GET __key__", get_w)?;
        get.kind = CmdKind::Get;
        Workload::new(vec![set, get], true, keys, prefix, dist, sizes)
    }

    /// Pick a template index by weight.
    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> usize {
        if self.cum.len() == 1 {
            return 0;
        }
        let r = rng.below(self.total_weight);
        let mut i = 0;
        while i + 1 < self.cum.len() && r >= self.cum[i] {
            i += 1;
        }
        i
    }

    #[inline]
    pub fn filler(&self, len: usize) -> &[u8] {
        &self.filler[..len]
    }

    /// Write the key name for index `k` into `out` (cleared first).
    #[inline]
    pub fn key_name(&self, k: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.prefix);
        push_u64(out, k);
    }
}

const DIGITS2: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Append the decimal form of `v` (two digits per step).
#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i] = DIGITS2[d];
        tmp[i + 1] = DIGITS2[d + 1];
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        tmp[i] = DIGITS2[d];
        tmp[i + 1] = DIGITS2[d + 1];
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Encode one request from `t` into `out` (appending).
#[inline]
pub fn encode(t: &Template, out: &mut Vec<u8>, key: &[u8], data: &[u8]) {
    for p in &t.parts {
        match p {
            Part::Raw(b) => out.extend_from_slice(b),
            Part::Arg(segs) => {
                let mut len = 0usize;
                for s in segs {
                    len += match s {
                        Seg::Lit(b) => b.len(),
                        Seg::Key => key.len(),
                        Seg::Data => data.len(),
                    };
                }
                out.push(b'$');
                push_u64(out, len as u64);
                out.extend_from_slice(b"\r\n");
                for s in segs {
                    match s {
                        Seg::Lit(b) => out.extend_from_slice(b),
                        Seg::Key => out.extend_from_slice(key),
                        Seg::Data => out.extend_from_slice(data),
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// The value written by --verify for (key, seq): "v<key>:<seq>:" padded
/// with '.' up to `target` bytes (longer than `target` when needed).
pub fn verify_value(out: &mut Vec<u8>, key: u64, seq: u32, target: usize) {
    out.clear();
    out.push(b'v');
    push_u64(out, key);
    out.push(b':');
    push_u64(out, seq as u64);
    out.push(b':');
    while out.len() < target {
        out.push(b'.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(t: &Template, key: &[u8], data: &[u8]) -> String {
        let mut v = Vec::new();
        encode(t, &mut v, key, data);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn encodes_set_get_and_templates() {
        let set = compile_template("SET __key__ __data__", 1).unwrap();
        assert_eq!(enc(&set, b"key:12", b"abc"), "*3\r\n$3\r\nSET\r\n$6\r\nkey:12\r\n$3\r\nabc\r\n");
        let get = compile_template("get __key__", 1).unwrap();
        assert_eq!(get.name, "GET");
        assert_eq!(enc(&get, b"k", b""), "*2\r\n$3\r\nget\r\n$1\r\nk\r\n");
        let h = compile_template("HSET h:__key__ f \"x y\" __data__-__key__", 1).unwrap();
        assert!(h.uses_data);
        assert_eq!(
            enc(&h, b"k1", b"dd"),
            "*5\r\n$4\r\nHSET\r\n$4\r\nh:k1\r\n$1\r\nf\r\n$3\r\nx y\r\n$5\r\ndd-k1\r\n"
        );
        let ping = compile_template("PING", 1).unwrap();
        assert_eq!(enc(&ping, b"k", b"d"), "*1\r\n$4\r\nPING\r\n");
        assert!(compile_template("  ", 1).is_err());
        assert!(compile_template("SET 'a", 1).is_err());
    }

    #[test]
    fn weight_prefix() {
        assert_eq!(split_weight_prefix("3:HSET h f v"), (Some(3), "HSET h f v"));
        assert_eq!(split_weight_prefix("HSET h:__key__ f v"), (None, "HSET h:__key__ f v"));
        assert_eq!(split_weight_prefix("12:"), (None, "12:"));
    }

    #[test]
    fn pick_follows_weights() {
        let w = Workload::set_get(1, 3, 10, "k", Distribution::Uniform, Sizes::Fixed(3)).unwrap();
        let mut rng = Rng::new(5);
        let mut c = [0u32; 2];
        for _ in 0..40_000 {
            c[w.pick(&mut rng)] += 1;
        }
        let frac = c[0] as f64 / 40_000.0;
        assert!((frac - 0.25).abs() < 0.02, "{frac}");
        let w = Workload::set_get(0, 1, 10, "k", Distribution::Uniform, Sizes::Fixed(3)).unwrap();
        assert!((0..1000).all(|_| w.pick(&mut rng) == 1));
    }

    #[test]
    fn sizes_pick() {
        let mut rng = Rng::new(1);
        let s = Sizes::List(vec![(10, 1), (20, 4)], 4);
        let mut c10 = 0;
        for _ in 0..10_000 {
            let v = s.pick(&mut rng);
            assert!(v == 10 || v == 20);
            c10 += (v == 10) as u32;
        }
        assert!((2000..3000).contains(&c10));
        let r = Sizes::Range(5, 7);
        for _ in 0..1000 {
            assert!((5..=7).contains(&r.pick(&mut rng)));
        }
        assert_eq!(s.describe(), "10:1,20:3");
    }

    #[test]
    fn verify_values() {
        let mut v = Vec::new();
        verify_value(&mut v, 42, 7, 3);
        assert_eq!(v, b"v42:7:");
        verify_value(&mut v, 1, 2, 10);
        assert_eq!(v, b"v1:2:.....");
        let mut k = Vec::new();
        push_u64(&mut k, 0);
        push_u64(&mut k, 18446744073709551615);
        assert_eq!(k, b"018446744073709551615");
        for v in [0u64, 5, 9, 10, 42, 99, 100, 101, 999, 1000, 123456789, 1 << 40] {
            let mut b = Vec::new();
            push_u64(&mut b, v);
            assert_eq!(b, v.to_string().into_bytes());
        }
    }
}
