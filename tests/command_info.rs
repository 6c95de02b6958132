//! COMMAND introspection compared with a real redis-server 7.0.15:
//! for every command in Tessera's `COMMAND LIST`, `COMMAND INFO name` and
//! `COMMAND DOCS name` must be byte-for-byte identical (RESP2 and RESP3).
//!
//! Container commands (CLIENT, CONFIG, OBJECT, ...): Redis' reply is reduced
//! to the subcommands Tessera's own reply lists, and subcommands are compared
//! in name order (Redis emits them in the order of a randomly seeded dict).
//! Everything else is compared exactly. All mismatches are collected and
//! reported together.

mod common;

use common::*;

fn name_of(v: &Value) -> Vec<u8> {
    v.as_bytes().map(|b| b.to_ascii_lowercase()).unwrap_or_default()
}

/// In a COMMAND INFO entry (array), the subcommands are element 9.
/// Keep only `keep` (if given) and sort them by name.
fn normalize_info_entry(v: &Value, keep: Option<&[Vec<u8>]>) -> Value {
    let Value::Array(items) = v else { return v.clone() };
    let mut items = items.clone();
    if items.len() >= 10 {
        if let Value::Array(subs) = &items[9] {
            let mut subs: Vec<Value> = subs
                .iter()
                .filter(|s| match (keep, s) {
                    (Some(k), Value::Array(e)) => e.first().is_some_and(|n| k.contains(&name_of(n))),
                    _ => true,
                })
                .cloned()
                .collect();
            subs.sort_by_key(|s| match s {
                Value::Array(e) => e.first().map(name_of).unwrap_or_default(),
                _ => Vec::new(),
            });
            items[9] = Value::Array(subs);
        }
    }
    Value::Array(items)
}

fn info_subcommands(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) if items.len() >= 10 => items[9]
            .as_array()
            .map(|subs| subs.iter().filter_map(|s| s.as_array().and_then(|e| e.first()).map(name_of)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// COMMAND DOCS reply: a map (RESP3) or flat array (RESP2) name -> doc map.
/// Within a doc map, the "subcommands" field is itself such a map.
fn doc_pairs(v: &Value) -> Option<Vec<(Value, Value)>> {
    v.as_pairs()
}

fn rebuild_like(orig: &Value, pairs: Vec<(Value, Value)>) -> Value {
    match orig {
        Value::Map(_) => Value::Map(pairs),
        _ => Value::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
    }
}

fn normalize_doc(doc: &Value, keep: Option<&[Vec<u8>]>) -> Value {
    let Some(fields) = doc_pairs(doc) else { return doc.clone() };
    let fields = fields
        .into_iter()
        .map(|(k, v)| {
            if k.as_bytes() == Some(b"subcommands") {
                if let Some(mut subs) = doc_pairs(&v) {
                    if let Some(keep) = keep {
                        subs.retain(|(n, _)| keep.contains(&name_of(n)));
                    }
                    subs.sort_by_key(|(n, _)| name_of(n));
                    let subs = subs.into_iter().map(|(n, d)| (n, normalize_doc(&d, None))).collect();
                    return (k, rebuild_like(&v, subs));
                }
            }
            (k, v)
        })
        .collect();
    rebuild_like(doc, fields)
}

fn doc_subcommands(reply: &Value) -> Vec<Vec<u8>> {
    let Some(top) = doc_pairs(reply) else { return Vec::new() };
    let Some((_, doc)) = top.first() else { return Vec::new() };
    doc.get("subcommands")
        .and_then(|s| doc_pairs(&s))
        .map(|p| p.iter().map(|(n, _)| name_of(n)).collect())
        .unwrap_or_default()
}

fn normalize_docs_reply(reply: &Value, keep: Option<&[Vec<u8>]>) -> Value {
    let Some(top) = doc_pairs(reply) else { return reply.clone() };
    let top = top.into_iter().map(|(n, d)| (n, normalize_doc(&d, keep))).collect();
    rebuild_like(reply, top)
}

fn command_list(c: &mut Client) -> Vec<String> {
    let v = c.cmd_value(&["COMMAND", "LIST"]);
    let arr = v.as_array().unwrap_or_else(|| panic!("COMMAND LIST returned {v:?}"));
    arr.iter().map(|x| x.as_str().unwrap_or_else(|| panic!("COMMAND LIST element {x:?}"))).collect()
}

#[test]
fn command_info_and_docs_match_redis() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let mut t = ts.client();
    let mut r = rs.client();
    let mut names = command_list(&mut t);
    names.sort();
    assert!(!names.is_empty(), "Tessera's COMMAND LIST is empty");
    let mut failures: Vec<String> = Vec::new();
    let mut compared = 0;
    for proto in ["2", "3"] {
        if proto == "3" {
            assert!(!t.cmd(&["HELLO", "3"]).starts_with(b"-"));
            assert!(!r.cmd(&["HELLO", "3"]).starts_with(b"-"));
        }
        for name in &names {
            // COMMAND INFO
            let tb = t.cmd(&["COMMAND", "INFO", name]);
            let rb = r.cmd(&["COMMAND", "INFO", name]);
            compared += 1;
            if tb != rb {
                let tv = Value::parse(&tb);
                let rv = Value::parse(&rb);
                let te = tv.as_array().and_then(|a| a.first().cloned()).unwrap_or(Value::Null);
                let re = rv.as_array().and_then(|a| a.first().cloned()).unwrap_or(Value::Null);
                let keep = info_subcommands(&te);
                let tn = normalize_info_entry(&te, None).encode();
                let rn = normalize_info_entry(&re, Some(&keep)).encode();
                if tn != rn {
                    failures.push(format!(
                        "RESP{proto} COMMAND INFO {name}\n    redis:   {}\n    tessera: {}",
                        escape(&rn),
                        escape(&tn)
                    ));
                }
            }
            // COMMAND DOCS
            let tb = t.cmd(&["COMMAND", "DOCS", name]);
            let rb = r.cmd(&["COMMAND", "DOCS", name]);
            compared += 1;
            if tb != rb {
                let tv = Value::parse(&tb);
                let rv = Value::parse(&rb);
                let keep = doc_subcommands(&tv);
                let tn = normalize_docs_reply(&tv, None).encode();
                let rn = normalize_docs_reply(&rv, Some(&keep)).encode();
                if tn != rn {
                    failures.push(format!(
                        "RESP{proto} COMMAND DOCS {name}\n    redis:   {}\n    tessera: {}",
                        escape(&rn),
                        escape(&tn)
                    ));
                }
            }
        }
    }
    eprintln!("command_info: compared {compared} COMMAND INFO/DOCS replies for {} commands", names.len());
    assert!(failures.is_empty(), "{} COMMAND INFO/DOCS mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// Redis 7.0's `COMMAND LIST` lists subcommands too (`config|get`), while
/// `COMMAND COUNT` and `COMMAND` count top-level commands only; so the count
/// must equal the number of `COMMAND LIST` names without a `|`. Checked on
/// redis-server as well, so the relation itself is proven.
#[test]
fn command_count_matches_list() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    for (side, mut c) in [("redis", rs.client()), ("tessera", ts.client())] {
        let names = command_list(&mut c);
        let top: Vec<&String> = names.iter().filter(|n| !n.contains('|')).collect();
        let count = c.cmd_value(&["COMMAND", "COUNT"]).as_int().expect("COMMAND COUNT is an integer");
        assert_eq!(count as usize, top.len(), "{side}: COMMAND COUNT vs number of top-level names in COMMAND LIST");
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{side}: COMMAND LIST has duplicates");
        let all = c.cmd_value(&["COMMAND"]);
        let all = all.as_array().expect("COMMAND returns an array");
        assert_eq!(all.len(), top.len(), "{side}: COMMAND (no args) entries vs COMMAND COUNT");
        for n in &names {
            assert_eq!(n.to_ascii_lowercase(), *n, "{side}: COMMAND LIST names are lower case: {n}");
            if let Some((parent, _)) = n.split_once('|') {
                assert!(names.iter().any(|x| x == parent), "{side}: {n} listed without its container {parent}");
            }
        }
        // COMMAND INFO of every listed command is non-null; a container's
        // subcommands in COMMAND INFO are exactly those in COMMAND LIST
        for n in &names {
            let v = c.cmd_value(&["COMMAND", "INFO", n]);
            let e = v.as_array().and_then(|a| a.first().cloned());
            assert!(matches!(e, Some(Value::Array(_))), "{side}: COMMAND INFO {n} returned {v:?}");
            if !n.contains('|') {
                let mut subs: Vec<String> = info_subcommands(&e.unwrap()).iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
                subs.sort();
                let mut listed: Vec<String> = names.iter().filter(|x| x.starts_with(&format!("{n}|"))).cloned().collect();
                listed.sort();
                assert_eq!(subs, listed, "{side}: subcommands of {n} in COMMAND INFO vs COMMAND LIST");
            }
        }
    }
}

#[test]
fn command_getkeys_matches_redis() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let mut t = ts.client();
    let mut r = rs.client();
    let listed = command_list(&mut t);
    let cases: &[&[&str]] = &[
        &["SET", "a", "b"],
        &["SET", "a", "b", "EX", "10", "GET"],
        &["GET", "a"],
        &["MSET", "a", "1", "b", "2", "c", "3"],
        &["MSETNX", "a", "1", "b", "2"],
        &["MGET", "a", "b", "c"],
        &["DEL", "a", "b", "c"],
        &["UNLINK", "x", "y"],
        &["EXISTS", "a", "a"],
        &["TOUCH", "a", "b"],
        &["RENAME", "a", "b"],
        &["RENAMENX", "a", "b"],
        &["COPY", "a", "b", "DB", "1", "REPLACE"],
        &["MOVE", "a", "1"],
        &["LCS", "a", "b", "IDX"],
        &["EXPIRE", "a", "10", "NX"],
        &["GETEX", "a", "PERSIST"],
        &["INCRBYFLOAT", "a", "1.5"],
        &["SETRANGE", "a", "1", "x"],
        &["OBJECT", "ENCODING", "a"],
        &["TYPE", "a"],
        &["APPEND", "k", "v"],
        &["GETDEL", "k"],
        &["RPUSH", "l", "a", "b"],
        &["HSET", "h", "f", "v"],
        &["SADD", "s", "m"],
        &["ZADD", "z", "1", "m"],
        &["EVAL", "return 1", "2", "a", "b", "c"],
        &["SORT", "a", "STORE", "b"],
        &["XREAD", "STREAMS", "s1", "s2", "0", "0"],
        &["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"],
        // errors
        &["PING"],
        &["GET"],
        &["SET", "a"],
        &["MSET", "a"],
        &["NOSUCHCOMMAND", "a"],
        &["KEYS", "*"],
        &["CLIENT", "ID"],
    ];
    let mut failures = Vec::new();
    let mut compared = 0;
    for proto in ["2", "3"] {
        if proto == "3" {
            t.cmd(&["HELLO", "3"]);
            r.cmd(&["HELLO", "3"]);
        }
        for case in cases {
            let top = case[0].to_ascii_lowercase();
            let known = listed.contains(&top) || case[0] == "NOSUCHCOMMAND";
            if !known {
                continue;
            }
            let mut args = vec!["COMMAND", "GETKEYS"];
            args.extend_from_slice(case);
            let tb = t.cmd(&args);
            let rb = r.cmd(&args);
            compared += 1;
            if tb != rb {
                failures.push(format!(
                    "RESP{proto} {}\n    redis:   {}\n    tessera: {}",
                    fmt_cmd(&args),
                    escape(&rb),
                    escape(&tb)
                ));
            }
        }
        let mut extras = vec![
            &["COMMAND", "GETKEYS"][..],
            &["COMMAND", "INFO", "nosuch"][..],
            &["COMMAND", "DOCS", "nosuch"][..],
        ];
        if listed.iter().any(|n| n == "command|getkeysandflags") {
            extras.push(&["COMMAND", "GETKEYSANDFLAGS", "SET", "a", "b"][..]);
            extras.push(&["COMMAND", "GETKEYSANDFLAGS", "LCS", "a", "b"][..]);
        }
        for extra in extras {
            let tb = t.cmd(extra);
            let rb = r.cmd(extra);
            compared += 1;
            if tb != rb {
                failures.push(format!(
                    "RESP{proto} {}\n    redis:   {}\n    tessera: {}",
                    fmt_cmd(extra),
                    escape(&rb),
                    escape(&tb)
                ));
            }
        }
    }
    eprintln!("command_getkeys: compared {compared} replies");
    assert!(compared >= 20, "too few GETKEYS cases ran ({compared}): is COMMAND LIST complete?");
    assert!(failures.is_empty(), "{} COMMAND GETKEYS mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn normalizers_are_order_insensitive() {
    // a container entry with subcommands in different orders normalises equal
    let sub = |n: &str| Value::Array(vec![Value::Bulk(n.as_bytes().to_vec()), Value::Int(2)]);
    let mk = |subs: Vec<Value>| {
        let mut v: Vec<Value> = (0..9).map(Value::Int).collect();
        v.push(Value::Array(subs));
        Value::Array(v)
    };
    let a = mk(vec![sub("client|id"), sub("client|list")]);
    let b = mk(vec![sub("client|list"), sub("client|kill"), sub("client|id")]);
    let keep = info_subcommands(&a);
    assert_eq!(normalize_info_entry(&a, None), normalize_info_entry(&b, Some(&keep)));
}
