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

/// One argument of a `COMMAND DOCS` argument tree, rendered as argv words.
/// `full` takes optional arguments, repeats `multiple` ones and picks the last
/// alternative of a `oneof`; otherwise only what is required, first choice.
fn gen_args(args: &[Value], full: bool, n: &mut usize, out: &mut Vec<Vec<u8>>) {
    for a in args {
        let flags: Vec<String> = a
            .get("flags")
            .and_then(|f| f.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        let has = |f: &str| flags.iter().any(|x| x == f);
        if has("optional") && !full {
            continue;
        }
        let reps = if has("multiple") && full { 2 } else { 1 };
        let token = a.get("token").and_then(|t| t.as_str());
        let ty = a.get("type").and_then(|t| t.as_str()).unwrap_or_default();
        let subs = a.get("arguments").and_then(|s| s.as_array().cloned()).unwrap_or_default();
        for rep in 0..reps {
            if let Some(t) = &token {
                if rep == 0 || has("multiple_token") {
                    out.push(t.as_bytes().to_vec());
                }
            }
            *n += 1;
            match ty.as_str() {
                "key" => out.push(format!("key:{n}").into_bytes()),
                "integer" => out.push(b"1".to_vec()),
                "double" => out.push(b"1.5".to_vec()),
                "pattern" => out.push(b"p*".to_vec()),
                "unix-time" => out.push(b"1700000000".to_vec()),
                "pure-token" => {
                    if token.is_none() {
                        out.push(b"token".to_vec());
                    }
                }
                "oneof" => {
                    let pick = if full { subs.last() } else { subs.first() };
                    gen_args(pick.map(std::slice::from_ref).unwrap_or(&[]), full, n, out);
                }
                "block" => gen_args(&subs, full, n, out),
                _ => out.push(format!("s{n}").into_bytes()),
            }
        }
    }
}

/// Hand-written argvs: the movablekeys commands (numkeys, keywords, getkeys
/// procs), variable-flag commands, edge cases of the spec search and errors.
const GETKEYS_CASES: &[&[&str]] = &[
    &["SORT", "k"],
    &["SORT", "k", "BY", "w*", "GET", "#", "GET", "o*", "LIMIT", "0", "5", "ALPHA", "STORE", "dst"],
    &["SORT", "k", "STORE", "d1", "STORE", "d2"],
    &["SORT", "k", "GET", "STORE"],
    &["SORT", "k", "BY", "store", "STORE"],
    &["SORT", "k", "LIMIT", "STORE", "x", "y"],
    &["SORT_RO", "k", "BY", "w*", "GET", "#"],
    &["SORT_RO", "k", "STORE", "d"],
    &["MIGRATE", "h", "6379", "k", "0", "5000"],
    &["MIGRATE", "h", "6379", "", "0", "5000", "COPY", "REPLACE", "KEYS", "a", "b", "c"],
    &["MIGRATE", "h", "6379", "", "0", "5000", "AUTH", "keys", "KEYS", "a"],
    &["MIGRATE", "h", "6379", "", "0", "5000", "AUTH2", "u", "keys", "KEYS", "a", "b"],
    &["MIGRATE", "h", "6379", "k", "0", "5000", "KEYS", "a"],
    &["MIGRATE", "h", "6379", "", "0", "5000", "KEYS"],
    &["MIGRATE", "h", "6379", "", "0", "5000"],
    &["GEORADIUS", "k", "0", "0", "10", "km", "STORE", "d"],
    &["GEORADIUS", "k", "0", "0", "10", "km", "STOREDIST", "d", "STORE", "e"],
    &["GEORADIUS", "k", "0", "0", "10", "km", "WITHDIST", "STORE"],
    &["GEORADIUS", "k", "0", "0", "10", "km", "COUNT", "3", "ASC"],
    &["GEORADIUSBYMEMBER", "k", "m", "10", "km", "STORE", "d"],
    &["GEORADIUSBYMEMBER", "k", "m", "10", "km", "STOREDIST", "d"],
    &["GEORADIUS_RO", "k", "0", "0", "10", "km", "STORE", "d"],
    &["GEOSEARCHSTORE", "d", "s", "FROMMEMBER", "m", "BYRADIUS", "1", "km"],
    &["EVAL", "return 1", "0"],
    &["EVAL", "return 1", "2", "a", "b", "c"],
    &["EVAL", "return 1", "3", "a", "b"],
    &["EVAL", "return 1", "-1", "a"],
    &["EVAL", "return 1", "x", "a"],
    &["EVAL", "return 1", " 1", "a"],
    &["EVAL", "return 1", "1x", "a"],
    &["EVALSHA", "abc", "1", "a"],
    &["EVAL_RO", "return 1", "1", "a", "b"],
    &["EVALSHA_RO", "abc", "2", "a", "b"],
    &["FCALL", "f", "0"],
    &["FCALL", "f", "2", "a", "b"],
    &["FCALL_RO", "f", "1", "a", "b"],
    &["FCALL_RO", "f", "4294967297", "a"],
    &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2", "AGGREGATE", "MAX"],
    &["ZUNIONSTORE", "d", "0", "a"],
    &["ZUNIONSTORE", "d", "3", "a", "b"],
    &["ZINTERSTORE", "d", "1", "a"],
    &["ZDIFFSTORE", "d", "2", "a", "b"],
    &["ZUNION", "2", "a", "b", "WITHSCORES"],
    &["ZINTER", "1", "a"],
    &["ZINTER", "-2", "a"],
    &["ZDIFF", "3", "a", "b", "c"],
    &["ZINTERCARD", "2", "a", "b", "LIMIT", "5"],
    &["ZINTERCARD", "4294967297", "a"],
    &["ZINTERCARD", "99999999999999999999", "a"],
    &["SINTERCARD", "2", "a", "b"],
    &["SINTERCARD", "3", "a", "b"],
    &["SINTER", "a", "b"],
    &["LMPOP", "2", "a", "b", "LEFT", "COUNT", "2"],
    &["LMPOP", "0", "a", "LEFT"],
    &["BLMPOP", "0", "2", "a", "b", "RIGHT"],
    &["BLMPOP", "0", "5", "a", "b", "RIGHT"],
    &["ZMPOP", "1", "a", "MIN"],
    &["BZMPOP", "1.5", "2", "a", "b", "MAX", "COUNT", "1"],
    &["BZMPOP", "1", "x", "a", "MAX"],
    &["XREAD", "STREAMS", "s", "0"],
    &["XREAD", "COUNT", "2", "BLOCK", "0", "STREAMS", "a", "b", "0", "0"],
    &["XREAD", "STREAMS", "a", "b", "0"],
    &["XREAD", "COUNT", "1", "STREAMS", "a"],
    &["XREAD", "STREAMS", "STREAMS", "0"],
    &["XREAD", "COUNT", "STREAMS", "STREAMS", "a", "0"],
    &["XREAD", "BOGUS", "STREAMS", "a", "0"],
    &["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "NOACK", "STREAMS", "a", "b", ">", ">"],
    &["XREADGROUP", "GROUP", "STREAMS", "c", "STREAMS", "a", ">"],
    &["XREADGROUP", "GROUP", "g", "c", "STREAMS"],
    &["SET", "k", "v"],
    &["SET", "k", "v", "EX", "10", "GET"],
    &["SET", "k", "v", "get"],
    &["SET", "k", "get"],
    &["SET", "k", "v", "GETX"],
    &["SET", "k", "v", "get\0trail"],
    &["SET", "k", "v", "NX", "KEEPTTL"],
    &["BITFIELD", "k"],
    &["BITFIELD", "k", "GET", "u8", "0"],
    &["BITFIELD", "k", "GET", "u8", "0", "OVERFLOW", "SAT", "GET", "i4", "8"],
    &["BITFIELD", "k", "GET", "u8", "0", "SET", "u8", "0", "1"],
    &["BITFIELD", "k", "INCRBY", "u8", "0", "1"],
    &["BITFIELD", "k", "GET", "u8"],
    &["BITFIELD", "k", "OVERFLOW"],
    &["BITFIELD", "k", "bogus"],
    &["BITFIELD_RO", "k", "GET", "u8", "0"],
    &["MSET", "a", "1", "b", "2"],
    &["MSET", "a", "1", "b"],
    &["MSETNX", "a", "1", "b", "2", "c"],
    &["MGET", "a", "b", "c"],
    &["DEL", "a", "b"],
    &["RENAME", "a", "b"],
    &["SMOVE", "a", "b", "m"],
    &["LMOVE", "a", "b", "LEFT", "RIGHT"],
    &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"],
    &["BRPOPLPUSH", "a", "b", "0"],
    &["BLPOP", "a", "b", "c", "0"],
    &["BZPOPMIN", "a", "0"],
    &["PFMERGE", "d", "a", "b"],
    &["PFCOUNT", "a", "b"],
    &["BITOP", "AND", "d", "a", "b"],
    &["OBJECT", "ENCODING", "k"],
    &["object", "encoding", "k"],
    &["OBJECT", "object|encoding", "k"],
    &["OBJECT", "NOSUCH", "k"],
    &["OBJECT"],
    &["OBJECT", "HELP"],
    &["MEMORY", "USAGE", "k", "SAMPLES", "5"],
    &["XINFO", "STREAM", "s", "FULL"],
    &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"],
    &["CLIENT", "ID"],
    &["CONFIG"],
    &["CONFIG", "GET", "x"],
    &["SPUBLISH", "ch", "m"],
    &["SSUBSCRIBE", "a", "b"],
    &["PUBLISH", "ch", "m"],
    &["PING"],
    &["KEYS", "*"],
    &["GET"],
    &["GET", "a", "b"],
    &["SET", "a"],
    &["NOSUCHCOMMAND", "a"],
    &["get|x", "a"],
    &["COMMAND", "GETKEYS", "GET", "a"],
    &["WATCH", "a", "b"],
    &["EXISTS", "a", "a"],
    &["LCS", "a", "b", "IDX"],
    &["COPY", "a", "b", "DB", "1"],
];

/// COMMAND GETKEYS and GETKEYSANDFLAGS for every command Redis 7.0 lists
/// (implemented by Tessera or not), with argvs generated from Redis's own
/// COMMAND DOCS (required-only, full, too short, one too many, name only)
/// plus [`GETKEYS_CASES`], compared byte for byte in RESP2 and RESP3.
#[test]
fn command_getkeys_every_command_matches_redis() {
    let ts = TesseraServer::start(2, &[]);
    let rs = RedisServer::start(&[]);
    let mut t = ts.client();
    let mut r = rs.client();
    let redis_names = command_list(&mut r);
    assert!(redis_names.len() > 300, "redis COMMAND LIST has {} names", redis_names.len());
    let mut argvs: Vec<Vec<Vec<u8>>> = GETKEYS_CASES.iter().map(|c| c.iter().map(|a| a.as_bytes().to_vec()).collect()).collect();
    // commands with a real (not not_key) key spec: each must get keys at least once
    let mut keyed: Vec<(String, usize)> = Vec::new();
    for name in &redis_names {
        let info = r.cmd_value(&["COMMAND", "INFO", name]);
        let entry = info.as_array().and_then(|a| a.first().cloned()).expect("COMMAND INFO entry");
        let entry = entry.as_array().expect("COMMAND INFO entry is an array").clone();
        let arity = entry[1].as_int().expect("arity");
        let specs = entry[8].as_array().cloned().unwrap_or_default();
        let real_key = specs.iter().any(|s| {
            let f = s.get("flags").and_then(|f| f.as_array().cloned()).unwrap_or_default();
            !f.iter().any(|x| x.as_str().as_deref() == Some("not_key"))
        });
        let docs = r.cmd_value(&["COMMAND", "DOCS", name]);
        let doc = docs.as_pairs().and_then(|p| p.into_iter().next()).map(|(_, d)| d).expect("COMMAND DOCS entry");
        let doc_args = doc.get("arguments").and_then(|a| a.as_array().cloned()).unwrap_or_default();
        let prefix: Vec<Vec<u8>> = name.split('|').map(|w| w.to_ascii_uppercase().into_bytes()).collect();
        let first = argvs.len();
        for full in [false, true] {
            let mut argv = prefix.clone();
            let mut n = 0;
            gen_args(&doc_args, full, &mut n, &mut argv);
            let need = arity.unsigned_abs() as usize;
            while argv.len() < need {
                argv.push(b"pad".to_vec());
            }
            if full {
                let mut extra = argv.clone();
                extra.push(b"extra".to_vec());
                argvs.push(extra);
            }
            argvs.push(argv);
        }
        let need = arity.unsigned_abs() as usize;
        if need > prefix.len() + 1 {
            let mut short = argvs[first].clone();
            short.truncate(need - 1);
            argvs.push(short);
        }
        argvs.push(prefix.clone());
        if real_key {
            keyed.push((name.clone(), first));
        }
    }
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut redis_keys = vec![false; argvs.len()];
    for proto in ["2", "3"] {
        if proto == "3" {
            assert!(!t.cmd(&["HELLO", "3"]).starts_with(b"-"));
            assert!(!r.cmd(&["HELLO", "3"]).starts_with(b"-"));
        }
        for (i, argv) in argvs.iter().enumerate() {
            for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
                let mut args: Vec<&[u8]> = vec![b"COMMAND", sub.as_bytes()];
                args.extend(argv.iter().map(|a| a.as_slice()));
                let tb = t.cmd_bytes(&args);
                let rb = r.cmd_bytes(&args);
                compared += 1;
                redis_keys[i] |= !rb.starts_with(b"-");
                if tb != rb {
                    failures.push(format!(
                        "RESP{proto} {}\n    redis:   {}\n    tessera: {}",
                        fmt_cmd(&args),
                        escape(&rb),
                        escape(&tb)
                    ));
                }
            }
        }
        // errors of COMMAND GETKEYS itself
        for extra in [&["COMMAND", "GETKEYS"][..], &["COMMAND", "GETKEYSANDFLAGS"][..], &["COMMAND", "HELP"][..]] {
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
    // the generated argvs really reach the key specs: every keyed command
    // (one whose argvs run from its first generated one to the next command's)
    // gets keys from Redis for at least one of them or a hand-written case
    let ends: Vec<usize> = keyed.iter().skip(1).map(|(_, f)| *f).chain([argvs.len()]).collect();
    let mut no_keys = Vec::new();
    for ((name, first), end) in keyed.iter().zip(ends) {
        let words: Vec<Vec<u8>> = name.split('|').map(|w| w.to_ascii_uppercase().into_bytes()).collect();
        let got = argvs.iter().enumerate().any(|(i, a)| {
            redis_keys[i]
                && a.len() >= words.len()
                && a.iter().zip(&words).all(|(x, w)| x.eq_ignore_ascii_case(w))
                && ((*first..end).contains(&i) || i < GETKEYS_CASES.len())
        });
        if !got {
            no_keys.push(name.clone());
        }
    }
    let with_keys = redis_keys.iter().filter(|k| **k).count();
    eprintln!(
        "command_getkeys_every_command: compared {compared} GETKEYS/GETKEYSANDFLAGS replies ({} argvs for {} Redis commands, {with_keys} argvs with keys)",
        argvs.len(),
        redis_names.len()
    );
    assert!(no_keys.is_empty(), "generated argvs never got keys from redis for: {no_keys:?}");
    assert!(
        failures.is_empty(),
        "{} GETKEYS/GETKEYSANDFLAGS mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
