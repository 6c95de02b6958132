//! The differential harness shared by the differential suites: the same
//! commands to Tessera and a real redis-server, replies compared byte for
//! byte (RESP2 and RESP3) except where a named normalisation rule applies.
#![allow(dead_code)]

use super::*;
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SHARDS: usize = 2;
pub const HISTORY: usize = 8;

// ---------------------------------------------------------------------------
// Normalisation rules: ONE table. Everything not matched here is compared
// byte for byte. Error replies are always compared byte for byte.
// ---------------------------------------------------------------------------

pub type CompareFn = fn(&mut Client, &mut Client, &[Vec<u8>], &[Vec<u8>], &[u8], &[u8]) -> Result<(), String>;

pub struct Rule {
    pub name: &'static str,
    pub what: &'static str,
    pub applies: fn(&[Vec<u8>]) -> bool,
    pub compare: CompareFn,
}

pub static RULES: &[Rule] = &[
    Rule {
        name: "time",
        what: "TIME -> compare shape only (array of 2 digit strings, seconds within 5 s)",
        applies: |a| is(a, "TIME"),
        compare: cmp_time,
    },
    Rule {
        name: "lastsave",
        what: "LASTSAVE -> both integers (start/save time of each process)",
        applies: |a| is(a, "LASTSAVE"),
        compare: cmp_both_int,
    },
    Rule {
        name: "client-id",
        what: "CLIENT ID -> both positive integers",
        applies: |a| is_sub(a, "CLIENT", "ID"),
        compare: cmp_client_id,
    },
    Rule {
        name: "client-list",
        what: "CLIENT LIST / CLIENT INFO -> same reply type, same lines, same field names in the same order, \
               equal values for name db sub psub ssub multi flags cmd user redir resp",
        applies: |a| is_sub(a, "CLIENT", "LIST") || is_sub(a, "CLIENT", "INFO"),
        compare: cmp_client_list,
    },
    Rule {
        name: "info",
        what: "INFO -> same reply type, same section headers in order, every line `# Section` or `field:value`, \
               equal redis_version/redis_mode, keyspace lines equal except avg_ttl",
        applies: |a| is(a, "INFO"),
        compare: cmp_info,
    },
    Rule {
        name: "hello-id",
        what: "HELLO -> byte for byte after replacing the value of the `id` field by 0",
        applies: |a| is(a, "HELLO"),
        compare: cmp_hello,
    },
    Rule {
        name: "keys-order",
        what: "KEYS -> compared as sorted sets; SCAN -> first reply shape, then iterated to cursor 0 on both sides \
               and the union of elements compared as sets",
        applies: |a| is(a, "KEYS") || is(a, "SCAN"),
        compare: cmp_keys_or_scan,
    },
    Rule {
        name: "set-order",
        what: "SMEMBERS / SINTER / SUNION / SDIFF -> same reply type, elements compared as sorted multisets \
               (a hashtable-encoded set has no defined order)",
        applies: |a| is(a, "SMEMBERS") || is(a, "SINTER") || is(a, "SUNION") || is(a, "SDIFF"),
        compare: cmp_unordered,
    },
    Rule {
        name: "randomkey",
        what: "RANDOMKEY -> nil on both sides, or on both a key that EXISTS on its side",
        applies: |a| is(a, "RANDOMKEY"),
        compare: cmp_randomkey,
    },
    Rule {
        name: "object-idletime/freq",
        what: "OBJECT IDLETIME -> integers within 2 s; OBJECT FREQ -> integers in 0..=255 (LFU counter is probabilistic)",
        applies: |a| is_sub(a, "OBJECT", "IDLETIME") || is_sub(a, "OBJECT", "FREQ"),
        compare: cmp_object_timing,
    },
    Rule {
        name: "ttl-drift",
        what: "TTL/EXPIRETIME -> integers within 2 s, PTTL/PEXPIRETIME -> within 2000 ms; negative values exact",
        applies: |a| is(a, "TTL") || is(a, "PTTL") || is(a, "EXPIRETIME") || is(a, "PEXPIRETIME"),
        compare: cmp_ttl,
    },
    Rule {
        name: "config-get-order",
        what: "CONFIG GET -> same reply type, (name, value) pairs compared as sorted sets (Redis emits dict order)",
        applies: |a| is_sub(a, "CONFIG", "GET"),
        compare: cmp_config_get,
    },
    Rule {
        name: "memory-usage",
        what: "MEMORY USAGE -> nil on both sides, or integers with Tessera's within [Redis/2, 2*Redis+64] \
               (different allocators and layouts: its table node, name and value sizes, not jemalloc's)",
        applies: |a| is_sub(a, "MEMORY", "USAGE"),
        compare: cmp_memory_usage,
    },
    Rule {
        name: "memory-report",
        what: "MEMORY STATS -> maps whose Tessera keys are Redis's keys in Redis's order (a subset: it leaves out \
               replication, cluster, AOF and jemalloc figures), integer/double values; MEMORY DOCTOR / \
               MALLOC-STATS -> both text replies of the same type (process figures and allocator reports differ)",
        applies: |a| is_sub(a, "MEMORY", "STATS") || is_sub(a, "MEMORY", "DOCTOR") || is_sub(a, "MEMORY", "MALLOC-STATS"),
        compare: cmp_memory_report,
    },
    Rule {
        name: "monitor",
        what: "MONITOR feed lines -> timestamp and client address replaced (checked for shape), rest exact",
        applies: |_| false, // applied explicitly to lines read from a MONITOR connection
        compare: cmp_monitor_line,
    },
];

pub fn is(a: &[Vec<u8>], name: &str) -> bool {
    a.first().is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes()))
}

pub fn is_sub(a: &[Vec<u8>], name: &str, sub: &str) -> bool {
    is(a, name) && a.get(1).is_some_and(|c| c.eq_ignore_ascii_case(sub.as_bytes()))
}

pub fn rule_for(args: &[Vec<u8>]) -> Option<&'static Rule> {
    RULES.iter().find(|r| (r.applies)(args))
}

pub fn rule_by_name(name: &str) -> &'static Rule {
    RULES.iter().find(|r| r.name == name).expect("rule")
}

pub fn parse(b: &[u8]) -> Result<Value, String> {
    match Value::try_parse(b) {
        Ok((v, n)) if n == b.len() => Ok(v),
        Ok(_) => Err(format!("trailing bytes in {}", escape(b))),
        Err(e) => Err(format!("unparsable reply {}: {e}", escape(b))),
    }
}

pub fn cmp_time(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let secs = |b: &[u8]| -> Result<i64, String> {
        let v = parse(b)?;
        let a = v
            .as_array()
            .filter(|a| a.len() == 2 && matches!(v, Value::Array(_)))
            .ok_or("not an array of 2")?;
        let mut out = 0;
        for (i, x) in a.iter().enumerate() {
            let Value::Bulk(d) = x else { return Err("element not a bulk string".into()) };
            if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
                return Err("element not digits".into());
            }
            if i == 0 {
                out = String::from_utf8_lossy(d).parse::<i64>().map_err(|e| e.to_string())?;
            }
        }
        Ok(out)
    };
    let (ts, rs) = (secs(t).map_err(|e| format!("tessera: {e}"))?, secs(r).map_err(|e| format!("redis: {e}"))?);
    if (ts - rs).abs() > 5 {
        return Err(format!("clocks differ by {} s", ts - rs));
    }
    Ok(())
}

pub fn cmp_both_int(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    match (parse(t)?, parse(r)?) {
        (Value::Int(_), Value::Int(_)) => Ok(()),
        _ => Err("expected an integer on both sides".into()),
    }
}

pub fn cmp_client_id(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    match (parse(t)?, parse(r)?) {
        (Value::Int(a), Value::Int(b)) if a > 0 && b > 0 => Ok(()),
        _ => Err("expected a positive integer on both sides".into()),
    }
}

/// Type byte plus verbatim format, and the text of a bulk/verbatim reply.
pub fn text_reply(b: &[u8]) -> Result<(String, String), String> {
    match parse(b)? {
        Value::Bulk(d) => Ok(("$".into(), String::from_utf8_lossy(&d).into_owned())),
        Value::Verbatim(f, d) => Ok((format!("={f}"), String::from_utf8_lossy(&d).into_owned())),
        other => Err(format!("not a string reply: {other:?}")),
    }
}

pub fn cmp_client_list(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    const EXACT: &[&str] = &["name", "db", "sub", "psub", "ssub", "multi", "flags", "cmd", "user", "redir", "resp"];
    let (tk, tt) = text_reply(t)?;
    let (rk, rt) = text_reply(r)?;
    if tk != rk {
        return Err(format!("reply type {tk} vs {rk}"));
    }
    if tt.ends_with('\n') != rt.ends_with('\n') {
        return Err("trailing newline differs".into());
    }
    let tl: Vec<&str> = tt.lines().collect();
    let rl: Vec<&str> = rt.lines().collect();
    if tl.len() != rl.len() {
        return Err(format!("{} lines vs {} lines", tl.len(), rl.len()));
    }
    for (a, b) in tl.iter().zip(rl.iter()) {
        let fa: Vec<(&str, &str)> = a.split(' ').map(|f| f.split_once('=').unwrap_or((f, "<no =>"))).collect();
        let fb: Vec<(&str, &str)> = b.split(' ').map(|f| f.split_once('=').unwrap_or((f, "<no =>"))).collect();
        let na: Vec<&str> = fa.iter().map(|x| x.0).collect();
        let nb: Vec<&str> = fb.iter().map(|x| x.0).collect();
        if na != nb {
            return Err(format!("field names differ: {na:?} vs {nb:?}"));
        }
        for ((n, va), (_, vb)) in fa.iter().zip(fb.iter()) {
            if EXACT.contains(n) && va != vb {
                return Err(format!("field {n}: {va:?} vs {vb:?}"));
            }
        }
    }
    Ok(())
}

pub fn cmp_info(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let (tk, tt) = text_reply(t)?;
    let (rk, rt) = text_reply(r)?;
    if tk != rk {
        return Err(format!("reply type {tk} vs {rk}"));
    }
    pub fn digest(s: &str) -> Result<(Vec<String>, Vec<String>), String> {
        let mut sections = Vec::new();
        let mut exact = Vec::new();
        for l in s.split("\r\n") {
            if l.is_empty() {
                continue;
            }
            if let Some(h) = l.strip_prefix("# ") {
                sections.push(h.to_string());
                continue;
            }
            let Some((k, v)) = l.split_once(':') else {
                return Err(format!("bad INFO line {l:?}"));
            };
            if k == "redis_version" || k == "redis_mode" {
                exact.push(l.to_string());
            } else if k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()) && !k[2..].is_empty() {
                let kept: Vec<&str> = v.split(',').filter(|f| !f.starts_with("avg_ttl=")).collect();
                exact.push(format!("{k}:{}", kept.join(",")));
            }
        }
        Ok((sections, exact))
    }
    let (ts, te) = digest(&tt).map_err(|e| format!("tessera: {e}"))?;
    let (rs, re) = digest(&rt).map_err(|e| format!("redis: {e}"))?;
    if ts != rs {
        return Err(format!("sections {ts:?} vs {rs:?}"));
    }
    if te != re {
        return Err(format!("fields {te:?} vs {re:?}"));
    }
    Ok(())
}

pub fn cmp_hello(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let a = normalize_hello_id(&parse(t)?).encode();
    let b = normalize_hello_id(&parse(r)?).encode();
    if a != b {
        return Err(format!("after id normalisation: {} vs {}", escape(&a), escape(&b)));
    }
    Ok(())
}

pub fn sorted_elems(v: &Value) -> Option<Vec<Vec<u8>>> {
    let mut e: Vec<Vec<u8>> = v.as_array()?.iter().map(|x| x.encode()).collect();
    e.sort();
    Some(e)
}

pub fn scan_all(c: &mut Client, args: &[Vec<u8>], first: &[u8]) -> Result<BTreeSet<Vec<u8>>, String> {
    let mut set = BTreeSet::new();
    let mut reply = first.to_vec();
    for _ in 0..100_000 {
        let v = parse(&reply)?;
        let Some(parts) = v.as_array().filter(|p| p.len() == 2 && matches!(v, Value::Array(_))) else {
            return Err(format!("SCAN reply not an array of 2: {}", escape(&reply)));
        };
        let Value::Bulk(cursor) = &parts[0] else {
            return Err("SCAN cursor is not a bulk string".into());
        };
        if cursor.is_empty() || !cursor.iter().all(u8::is_ascii_digit) {
            return Err("SCAN cursor not numeric".into());
        }
        let Value::Array(items) = &parts[1] else {
            return Err("SCAN elements not an array".into());
        };
        for it in items {
            set.insert(it.encode());
        }
        if cursor == b"0" {
            return Ok(set);
        }
        let mut next = args.to_vec();
        next[1] = cursor.clone();
        let refs: Vec<&[u8]> = next.iter().map(|a| a.as_slice()).collect();
        c.send(&refs);
        reply = c.try_read_reply_raw().map_err(|e| format!("SCAN continuation: {e:?}"))?;
    }
    Err("SCAN did not terminate".into())
}

pub fn cmp_keys_or_scan(tc: &mut Client, rc: &mut Client, ta: &[Vec<u8>], ra: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    if is(ta, "KEYS") {
        let (tv, rv) = (parse(t)?, parse(r)?);
        if std::mem::discriminant(&tv) != std::mem::discriminant(&rv) {
            return Err("reply types differ".into());
        }
        let (Some(a), Some(b)) = (sorted_elems(&tv), sorted_elems(&rv)) else {
            return Err("not arrays".into());
        };
        if a != b {
            return Err(format!(
                "sorted keys differ: {:?} vs {:?}",
                a.iter().map(|x| escape(x)).collect::<Vec<_>>(),
                b.iter().map(|x| escape(x)).collect::<Vec<_>>()
            ));
        }
        return Ok(());
    }
    let a = scan_all(tc, ta, t).map_err(|e| format!("tessera: {e}"))?;
    let b = scan_all(rc, ra, r).map_err(|e| format!("redis: {e}"))?;
    if a != b {
        return Err(format!(
            "SCAN sets differ: {:?} vs {:?}",
            a.iter().map(|x| escape(x)).collect::<Vec<_>>(),
            b.iter().map(|x| escape(x)).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

pub fn cmp_unordered(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    if t.first() == Some(&b'-') || r.first() == Some(&b'-') || t.first() != r.first() {
        return if t == r { Ok(()) } else { Err("replies differ".into()) };
    }
    let (tv, rv) = (parse(t)?, parse(r)?);
    match (sorted_elems(&tv), sorted_elems(&rv)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (None, None) if t == r => Ok(()),
        _ => Err("elements differ (compared as sorted multisets)".into()),
    }
}

pub fn cmp_randomkey(tc: &mut Client, rc: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let (tv, rv) = (parse(t)?, parse(r)?);
    if tv.is_null() || rv.is_null() {
        return if t == r {
            Ok(())
        } else {
            Err("nil on one side only (or different nil encodings)".into())
        };
    }
    for (name, c, v) in [("tessera", tc, tv), ("redis", rc, rv)] {
        let Value::Bulk(k) = v else {
            return Err(format!("{name}: not a bulk string"));
        };
        let e = c.cmd_bytes(&[b"EXISTS", &k]);
        if e != b":1\r\n" {
            return Err(format!("{name}: RANDOMKEY returned {} which does not exist", escape(&k)));
        }
    }
    Ok(())
}

pub fn cmp_object_timing(_: &mut Client, _: &mut Client, ta: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let (tv, rv) = (parse(t)?, parse(r)?);
    if tv.is_null() || rv.is_null() {
        return if t == r { Ok(()) } else { Err("nil on one side only".into()) };
    }
    let (Value::Int(a), Value::Int(b)) = (tv, rv) else {
        return Err("expected integers".into());
    };
    if is_sub(ta, "OBJECT", "FREQ") {
        if !(0..=255).contains(&a) || !(0..=255).contains(&b) {
            return Err("FREQ out of 0..=255".into());
        }
    } else if (a - b).abs() > 2 || a < 0 || b < 0 {
        return Err(format!("idle times {a} vs {b}"));
    }
    Ok(())
}

pub fn cmp_memory_usage(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let (tv, rv) = (parse(t)?, parse(r)?);
    if tv.is_null() || rv.is_null() {
        return if t == r { Ok(()) } else { Err("nil on one side only".into()) };
    }
    let (Value::Int(a), Value::Int(b)) = (tv, rv) else {
        return Err("expected integers".into());
    };
    if a * 2 < b || a > 2 * b + 64 {
        return Err(format!("MEMORY USAGE {a} (Tessera) vs {b} (Redis)"));
    }
    Ok(())
}

pub fn cmp_memory_report(_: &mut Client, _: &mut Client, ta: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    if !is_sub(ta, "MEMORY", "STATS") {
        let (tk, _) = text_reply(t)?;
        let (rk, _) = text_reply(r)?;
        return if tk == rk { Ok(()) } else { Err(format!("reply types {tk} vs {rk}")) };
    }
    let (tv, rv) = (parse(t)?, parse(r)?);
    let (Some(tp), Some(rp)) = (tv.as_pairs(), rv.as_pairs()) else {
        return Err("expected maps".into());
    };
    let names = |p: &[(Value, Value)]| p.iter().map(|(k, _)| k.as_str().unwrap_or_default()).collect::<Vec<_>>();
    let (tn, rn) = (names(&tp), names(&rp));
    let mut it = rn.iter();
    for n in &tn {
        if !it.any(|x| x == n) {
            return Err(format!("MEMORY STATS field {n} not in Redis's, or out of Redis's order: {tn:?} vs {rn:?}"));
        }
    }
    for (k, v) in &tp {
        let ok = matches!(v, Value::Int(_) | Value::Double(_) | Value::Bulk(_)) || (k.as_str().is_some_and(|n| n.starts_with("db.")) && v.as_pairs().is_some());
        if !ok {
            return Err(format!("MEMORY STATS {k:?} has value {v:?}"));
        }
    }
    Ok(())
}

pub fn cmp_ttl(_: &mut Client, _: &mut Client, ta: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let (Value::Int(a), Value::Int(b)) = (parse(t)?, parse(r)?) else {
        return if t == r { Ok(()) } else { Err("not integers".into()) };
    };
    if a < 0 || b < 0 {
        return if t == r { Ok(()) } else { Err(format!("{a} vs {b}")) };
    }
    let tol = if is(ta, "PTTL") || is(ta, "PEXPIRETIME") { 2000 } else { 2 };
    if (a - b).abs() > tol {
        return Err(format!("{a} vs {b} (tolerance {tol})"));
    }
    Ok(())
}

pub fn cmp_config_get(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let (tv, rv) = (parse(t)?, parse(r)?);
    if std::mem::discriminant(&tv) != std::mem::discriminant(&rv) {
        return Err("reply types differ".into());
    }
    let pairs = |v: &Value| -> Result<Vec<Vec<u8>>, String> {
        let mut p: Vec<Vec<u8>> = v
            .as_pairs()
            .ok_or("not a map / pair array")?
            .into_iter()
            .map(|(k, v)| {
                let mut e = k.encode();
                e.extend(v.encode());
                e
            })
            .collect();
        p.sort();
        Ok(p)
    };
    let (a, b) = (pairs(&tv)?, pairs(&rv)?);
    if a != b {
        return Err(format!(
            "sorted pairs differ: {:?} vs {:?}",
            a.iter().map(|x| escape(x)).collect::<Vec<_>>(),
            b.iter().map(|x| escape(x)).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// `+1700000000.123456 [0 127.0.0.1:5555] "set" "k"` -> `+<ts> [0 <addr>] "set" "k"`.
pub fn normalize_monitor_line(b: &[u8]) -> Result<String, String> {
    let s = String::from_utf8_lossy(b).into_owned();
    let body = s.strip_prefix('+').ok_or("not a simple string")?;
    let (ts, rest) = body.split_once(' ').ok_or("no timestamp")?;
    let (sec, usec) = ts.split_once('.').ok_or("timestamp without '.'")?;
    if sec.is_empty() || !sec.bytes().all(|c| c.is_ascii_digit()) || usec.len() != 6 || !usec.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad timestamp {ts:?}"));
    }
    let rest = rest.strip_prefix('[').ok_or("no '['")?;
    let (inside, tail) = rest.split_once(']').ok_or("no ']'")?;
    let (db, addr) = inside.split_once(' ').ok_or("no db")?;
    let (ip, port) = addr.rsplit_once(':').ok_or("addr without port")?;
    if ip.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("bad addr {addr:?}"));
    }
    Ok(format!("+<ts> [{db} <addr>]{tail}"))
}

pub fn cmp_monitor_line(_: &mut Client, _: &mut Client, _: &[Vec<u8>], _: &[Vec<u8>], t: &[u8], r: &[u8]) -> Result<(), String> {
    let a = normalize_monitor_line(t).map_err(|e| format!("tessera: {e}"))?;
    let b = normalize_monitor_line(r).map_err(|e| format!("redis: {e}"))?;
    if a != b {
        return Err(format!("{a:?} vs {b:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The comparison driver
// ---------------------------------------------------------------------------

pub struct Pair {
    pub t: Client,
    pub r: Client,
    pub proto: u8,
}

pub struct Diff {
    pub name: String,
    pub conns: Vec<Option<Pair>>,
    /// placeholder -> (value for tessera, value for redis)
    pub vars: Vec<(String, Vec<u8>, Vec<u8>)>,
    pub history: VecDeque<String>,
    pub compared: usize,
    pub seed: Option<u64>,
    pub keep_going: bool,
    pub failures: Vec<String>,
    pub now_s: u64,
    /// Tessera's `COMMAND LIST` (used only to decide whether non-string keys
    /// can be created for WRONGTYPE checks).
    pub tessera_cmds: BTreeSet<String>,
    /// `TESSERA_DIFF_LOG=path`: every command and both replies are appended there.
    pub log: Option<std::fs::File>,
    // servers last: dropped after the clients
    pub tsrv: TesseraServer,
    pub rsrv: RedisServer,
}

pub fn reply_desc(r: &Result<Vec<u8>, String>) -> String {
    match r {
        Ok(b) => escape(b),
        Err(e) => e.clone(),
    }
}

impl Diff {
    pub fn new(name: &str) -> Diff {
        let tsrv = TesseraServer::start(SHARDS, &[]);
        let rsrv = RedisServer::start(&[]);
        let keep_going = matches!(std::env::var("TESSERA_DIFF_KEEP_GOING").as_deref(), Ok("1"));
        let tessera_cmds: BTreeSet<String> = tsrv
            .client()
            .cmd_value(&["COMMAND", "LIST"])
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let mut d = Diff {
            name: name.to_string(),
            conns: Vec::new(),
            vars: Vec::new(),
            history: VecDeque::new(),
            compared: 0,
            seed: None,
            keep_going,
            failures: Vec::new(),
            now_s: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
            tessera_cmds,
            log: std::env::var("TESSERA_DIFF_LOG").ok().map(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(format!("{p}.{name}"))
                    .expect("open TESSERA_DIFF_LOG")
            }),
            tsrv,
            rsrv,
        };
        d.conns.push(None);
        d.reconnect_main();
        d
    }

    pub fn pair_ids(&mut self, i: usize) -> (Vec<u8>, Vec<u8>) {
        let p = self.conns[i].as_mut().unwrap();
        let t = p.t.cmd_value(&["CLIENT", "ID"]).as_int().expect("tessera CLIENT ID").to_string().into_bytes();
        let r = p.r.cmd_value(&["CLIENT", "ID"]).as_int().expect("redis CLIENT ID").to_string().into_bytes();
        (t, r)
    }

    /// (Re)open connection 0 and set `$MYID`.
    pub fn reconnect_main(&mut self) {
        self.conns[0] = Some(Pair {
            t: self.tsrv.client(),
            r: self.rsrv.client(),
            proto: 2,
        });
        let (t, r) = self.pair_ids(0);
        self.set_var("$MYID", t, r);
    }

    /// Open another connection pair (in the protocol of connection 0).
    pub fn open(&mut self) -> usize {
        let proto = self.conns[0].as_ref().map_or(2, |p| p.proto);
        self.conns.push(Some(Pair {
            t: self.tsrv.client(),
            r: self.rsrv.client(),
            proto: 2,
        }));
        let i = self.conns.len() - 1;
        if proto == 3 {
            self.c_on(i, &["HELLO", "3"]);
        }
        i
    }

    pub fn close(&mut self, i: usize) {
        self.conns[i] = None;
    }

    pub fn set_var(&mut self, name: &str, t: Vec<u8>, r: Vec<u8>) {
        self.vars.retain(|v| v.0 != name);
        self.vars.push((name.to_string(), t, r));
    }

    pub fn subst(&self, args: &[&[u8]], tessera: bool) -> Vec<Vec<u8>> {
        args.iter()
            .map(|a| match self.vars.iter().find(|v| v.0.as_bytes() == *a) {
                Some(v) => {
                    if tessera {
                        v.1.clone()
                    } else {
                        v.2.clone()
                    }
                }
                None => a.to_vec(),
            })
            .collect()
    }

    pub fn record(&mut self, what: String) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(what);
    }

    pub fn fail(&mut self, what: &str, rule: &str, t: &str, r: &str, detail: &str) {
        let seed = self.seed.map(|s| format!(" (seed {s}; rerun with TESSERA_DIFF_SEED={s})")).unwrap_or_default();
        let hist: Vec<String> = self.history.iter().rev().skip(1).rev().map(|h| format!("      {h}")).collect();
        let msg = format!(
            "differential mismatch in {}{seed} at reply #{}\n  command: {what}\n  rule:    {rule}\n  redis:   {r}\n  tessera: {t}\n  detail:  {detail}\n  preceding commands (oldest first):\n{}",
            self.name,
            self.compared,
            if hist.is_empty() { "      (none)".to_string() } else { hist.join("\n") }
        );
        if self.keep_going && self.failures.len() < 300 {
            eprintln!("{msg}\n");
            self.failures.push(msg);
        } else {
            panic!("{msg}");
        }
    }

    pub fn read_pair(&mut self, i: usize) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
        let p = self.conns[i].as_mut().expect("connection pair is closed");
        let rd = |c: &mut Client| match c.try_read_reply_raw() {
            Ok(b) => Ok(b),
            Err(ReadError::Closed(p)) => Err(format!("<connection closed; partial {}>", escape(&p))),
            Err(ReadError::Timeout(p)) => Err(format!("<timeout; partial {}>", escape(&p))),
            Err(e) => Err(format!("<{e:?}>")),
        };
        let r = rd(&mut p.r);
        let t = rd(&mut p.t);
        (t, r)
    }

    /// Compare one reply on each side of connection `i` for command `args`.
    pub fn compare_replies(&mut self, i: usize, what: &str, ta: &[Vec<u8>], ra: &[Vec<u8>], forced_rule: Option<&'static Rule>) {
        let (t, r) = self.read_pair(i);
        self.compared += 1;
        if let Some(f) = self.log.as_mut() {
            use std::io::Write;
            let _ = writeln!(f, "#{} {what}\n  redis:   {}\n  tessera: {}", self.compared, reply_desc(&r), reply_desc(&t));
        }
        let rule = forced_rule.or_else(|| rule_for(ta));
        let rule_name = rule.map_or("exact", |r| r.name);
        // track protocol switches
        if let (Ok(tb), Ok(rb)) = (&t, &r) {
            let ok = |b: &[u8]| !b.starts_with(b"-");
            if ok(tb) && ok(rb) {
                if is(ta, "HELLO") && ta.len() >= 2 {
                    self.conns[i].as_mut().unwrap().proto = if ta[1] == b"3" { 3 } else { 2 };
                }
                if is(ta, "RESET") {
                    self.conns[i].as_mut().unwrap().proto = 2;
                }
            }
        }
        match (&t, &r) {
            (Ok(tb), Ok(rb)) => {
                if tb == rb {
                    return;
                }
                let is_err = |b: &[u8]| b.first().is_some_and(|c| *c == b'-' || *c == b'!');
                let res = match rule {
                    Some(rule) if !is_err(tb) && !is_err(rb) => {
                        let p = self.conns[i].as_mut().unwrap();
                        (rule.compare)(&mut p.t, &mut p.r, ta, ra, tb, rb)
                    }
                    _ => Err("bytes differ".to_string()),
                };
                if let Err(detail) = res {
                    self.fail(what, rule_name, &escape(tb), &escape(rb), &detail);
                }
            }
            _ => {
                let (td, rd) = (reply_desc(&t), reply_desc(&r));
                if td != rd || t.is_ok() != r.is_ok() {
                    // one side hung up or timed out: the streams are out of step, stop here
                    self.keep_going = false;
                    self.fail(what, rule_name, &td, &rd, "one side did not answer like the other");
                }
            }
        }
    }

    /// Send `args` on connection `i` of both sides and compare the replies.
    pub fn cb_on(&mut self, i: usize, args: &[&[u8]]) {
        let ta = self.subst(args, true);
        let ra = self.subst(args, false);
        let what = if i == 0 { fmt_cmd(&ta) } else { format!("[conn {i}] {}", fmt_cmd(&ta)) };
        self.record(what.clone());
        {
            let p = self.conns[i].as_mut().expect("connection pair is closed");
            let tr: Vec<&[u8]> = ta.iter().map(|a| a.as_slice()).collect();
            let rr: Vec<&[u8]> = ra.iter().map(|a| a.as_slice()).collect();
            p.t.send(&tr);
            p.r.send(&rr);
        }
        self.compare_replies(i, &what, &ta, &ra, None);
    }

    pub fn cb(&mut self, args: &[&[u8]]) {
        self.cb_on(0, args)
    }

    /// Send every command of `cmds` on connection `i` of both sides without
    /// waiting (one pipeline), then compare the replies in order.
    pub fn pipeline_on(&mut self, i: usize, cmds: &[Vec<String>]) {
        let mut sent = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            let ta = self.subst(&args, true);
            let ra = self.subst(&args, false);
            let what = format!("[conn {i}, pipeline of {}] {}", cmds.len(), fmt_cmd(&ta));
            self.record(what.clone());
            let p = self.conns[i].as_mut().expect("connection pair is closed");
            let tr: Vec<&[u8]> = ta.iter().map(|a| a.as_slice()).collect();
            let rr: Vec<&[u8]> = ra.iter().map(|a| a.as_slice()).collect();
            p.t.send(&tr);
            p.r.send(&rr);
            sent.push((what, ta, ra));
        }
        for (what, ta, ra) in sent {
            self.compare_replies(i, &what, &ta, &ra, None);
        }
    }

    pub fn c_on(&mut self, i: usize, args: &[&str]) {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cb_on(i, &v)
    }

    pub fn c(&mut self, args: &[&str]) {
        self.c_on(0, args)
    }

    /// Space separated command on connection 0; `'...'` groups one argument
    /// (no escapes), `''` is the empty argument.
    pub fn s(&mut self, line: &str) {
        let v = split_words(line);
        let refs: Vec<&str> = v.iter().map(|x| x.as_str()).collect();
        self.c(&refs)
    }

    pub fn ss(&mut self, lines: &[&str]) {
        for l in lines {
            self.s(l);
        }
    }

    /// Send without reading a reply (CLIENT REPLY OFF/SKIP, ...).
    pub fn noreply(&mut self, args: &[&str]) {
        self.record(format!("{} (no reply expected)", fmt_cmd(args)));
        let p = self.conns[0].as_mut().unwrap();
        p.t.send_strs(args);
        p.r.send_strs(args);
    }

    /// Send raw bytes on connection `i` and compare the next `n` replies exactly.
    pub fn raw_on(&mut self, i: usize, data: &[u8], n: usize) {
        let what = format!("raw {}", escape(data));
        self.record(what.clone());
        {
            let p = self.conns[i].as_mut().unwrap();
            p.t.send_raw(data);
            p.r.send_raw(data);
        }
        for _ in 0..n {
            self.compare_replies(i, &what, &[b"<raw>".to_vec()], &[b"<raw>".to_vec()], None);
        }
    }

    pub fn raw(&mut self, data: &[u8], n: usize) {
        self.raw_on(0, data, n)
    }

    /// Read one more reply on connection `i` of both sides and compare it
    /// with the named rule (e.g. MONITOR lines).
    pub fn read_with_rule(&mut self, i: usize, what: &str, rule: &str) {
        self.compare_replies(i, what, &[], &[], Some(rule_by_name(rule)));
    }

    /// Both sides must close connection `i` (within 2 s) and send nothing more.
    pub fn expect_closed(&mut self, i: usize, what: &str) {
        let p = self.conns[i].as_mut().unwrap();
        let (tb, tc) = p.t.read_until_close(Duration::from_secs(2));
        let (rb, rc) = p.r.read_until_close(Duration::from_secs(2));
        self.compared += 1;
        if tc != rc || tb != rb {
            let f = |b: &[u8], c: bool| format!("{} then {}", escape(b), if c { "closed" } else { "still open" });
            self.fail(what, "exact", &f(&tb, tc), &f(&rb, rc), "connection state after the command differs");
        }
        self.conns[i] = None;
    }

    /// Whether Tessera implements `cmd` (lower case).
    pub fn has(&self, cmd: &str) -> bool {
        self.tessera_cmds.contains(cmd)
    }

    pub fn proto(&self) -> u8 {
        self.conns[0].as_ref().map_or(2, |p| p.proto)
    }

    pub fn finish(self) {
        let seed = self.seed.map(|s| format!(" (seed {s})")).unwrap_or_default();
        println!("differential[{}]: compared {} replies{seed}", self.name, self.compared);
        eprintln!("differential[{}]: compared {} replies{seed}", self.name, self.compared);
        if !self.failures.is_empty() {
            panic!(
                "{} mismatches in {} (see above; first one repeated here):\n{}",
                self.failures.len(),
                self.name,
                self.failures[0]
            );
        }
    }
}

pub fn split_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for ch in line.chars() {
        if quoted {
            if ch == '\'' {
                quoted = false;
            } else {
                cur.push(ch);
            }
        } else if ch == '\'' {
            quoted = true;
            in_word = true;
        } else if ch == ' ' {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
        } else {
            cur.push(ch);
            in_word = true;
        }
    }
    assert!(!quoted, "unbalanced quote in script line {line:?}");
    if in_word {
        out.push(cur);
    }
    out
}

/// Keys used by the scripts, checked to span every shard.
pub const SPREAD_KEYS: &[&str] = &["a", "b", "c", "d", "k0", "k1", "k2", "k3"];

pub fn assert_keys_span_shards(keys: &[&str], shards: usize) {
    let mut seen = vec![false; shards];
    for k in keys {
        seen[local_shard_of(k.as_bytes(), shards)] = true;
    }
    assert!(seen.iter().all(|s| *s), "keys {keys:?} do not span all {shards} shards");
    for pair in [("a", "b"), ("c", "d"), ("k0", "k2")] {
        assert_ne!(
            local_shard_of(pair.0.as_bytes(), shards),
            local_shard_of(pair.1.as_bytes(), shards),
            "{pair:?} must be on different shards"
        );
    }
}

/// Run `script` in RESP2, then reconnect, FLUSHALL, HELLO 3 and run it again.
pub fn run_scripted(name: &str, script: fn(&mut Diff)) {
    assert_keys_span_shards(SPREAD_KEYS, SHARDS);
    let mut d = Diff::new(name);
    d.c(&["FLUSHALL"]);
    script(&mut d);
    d.reconnect_main();
    d.c(&["FLUSHALL"]);
    d.c(&["HELLO", "3"]);
    assert_eq!(d.proto(), 3);
    script(&mut d);
    d.finish();
}

// ---------------------------------------------------------------------------
// Scripted sequences
// ---------------------------------------------------------------------------
