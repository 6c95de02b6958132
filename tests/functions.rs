//! Redis 7.0 functions: FUNCTION LOAD [REPLACE] / DELETE / FLUSH / LIST /
//! STATS / KILL / HELP, FCALL, FCALL_RO.
//!
//! * Differential against a real redis-server 7.0.15 (RESP2 then RESP3,
//!   Tessera at 2 shards; the keys a, b, c, d spread over both shards): the
//!   shebang and every load error byte for byte, the load-time environment
//!   (only `redis.register_function`, `redis.log`, the LOG_ constants and the
//!   version), REPLACE keeping the old library when the new one fails,
//!   function names global across libraries, FCALL's KEYS / ARGV, declared
//!   keys on both shards and undeclared keys (the global mode), runtime
//!   errors (`script: <function>, on @user_function:<line>.`), flags
//!   (no-writes enforced, FCALL_RO), FUNCTION LIST / STATS / DELETE / FLUSH,
//!   FCALL inside MULTI/EXEC, libraries seen by connections on every shard.
//! * FUNCTION LIST of a library with several functions is compared with the
//!   functions sorted by name (Redis emits its dict's order); every other
//!   reply byte for byte. Tests never list several libraries at once for the
//!   same reason.
//! * A slow function: BUSY names FUNCTION KILL, SCRIPT KILL refuses,
//!   FUNCTION STATS shows it, FUNCTION KILL stops it.
//! * Concurrency at 4 shards: a function moving a value between two keys on
//!   different shards is never seen half done by MGET or by a reading function.

mod common;

use common::diff::*;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn lib(name: &str, body: &str) -> String {
    format!("#!lua name={name}\n{body}")
}

fn load(d: &mut Diff, code: &str) {
    d.c(&["FUNCTION", "LOAD", code]);
}

// ------------------------------------------------------------ loading

fn load_cases(d: &mut Diff) {
    d.s("FUNCTION FLUSH");
    // the shebang
    for code in [
        "return 1",
        "#!lua",
        "#!lua\nreturn 1",
        "#!lua name=x foo=bar\n",
        "#!lua name=x name=y\n",
        "#!lua name=\n",
        "#!lua name=a-b\n",
        "#!js name=abc\n",
        "#! lua name=abc\n",
        "#!lua name=\"q q\"\n",
        "#!lua name=\"unbalanced\n",
        "#!\n",
        "#!lua name=nul\0\nredis.register_function('f', function() return 1 end)",
        "",
    ] {
        load(d, code);
    }
    load(d, "#!LUA name=upper\nredis.register_function('up', function() return 'up' end)");
    load(d, "#!lua  NAME=spaced   \r\nredis.register_function('spaced', function() return 'sp' end)");
    d.ss(&["FCALL up 0", "FCALL spaced 0"]);
    // the load-time environment
    for body in [
        "error('x')",
        "return string.len('x')",
        "local s = string",
        "redis.call('set', 'x', 'y')",
        "redis.setresp(3)",
        "local p = pcall",
        "x = 5",
        "redis.x = 5",
        "redis.log = 1",
        "rawset(redis, 'a', 1)",
        "local k = KEYS",
        "redis.log(redis.LOG_WARNING)",
        "redis.log('x', 'y')",
        "while true do end",
        "syntax error here",
        "return 1",
        "",
    ] {
        load(d, &lib("env", body));
    }
    load(
        d,
        &lib(
            "envok",
            "redis.log(redis.LOG_NOTICE, 'loading', 1, 2.5)\nlocal v = redis.REDIS_VERSION .. ' ' .. redis.REDIS_VERSION_NUM .. ' ' .. redis.LOG_DEBUG .. redis.LOG_VERBOSE .. redis.LOG_NOTICE .. redis.LOG_WARNING\nredis.register_function('envok', function() return v end)",
        ),
    );
    d.s("FCALL envok 0");
    // redis.register_function's arguments
    for body in [
        "redis.register_function('a b', function() end)",
        "redis.register_function('', function() end)",
        "redis.register_function('ab', function() end)\nredis.register_function('ab', function() end)",
        "redis.register_function()",
        "redis.register_function(1, 2, 3)",
        "redis.register_function({})",
        "redis.register_function({function_name = 'x'})",
        "redis.register_function({callback = function() end})",
        "redis.register_function({function_name = 'x', callback = function() end, flags = {'no-writes', 'bad'}})",
        "redis.register_function({function_name = 'x', callback = function() end, flags = 'no-writes'})",
        "redis.register_function({function_name = 'x', callback = function() end, other = 1})",
        "redis.register_function({function_name = {}, callback = function() end})",
        "redis.register_function({function_name = 'x', callback = 1})",
        "redis.register_function({function_name = 'x', callback = function() end, description = {}})",
        "redis.register_function({[1] = 'x'})",
        "redis.register_function(5)",
        "redis.register_function({}, function() end)",
        "redis.register_function('x', 5)",
        "redis.register_function('x', nil)",
        "redis.register_function{function_name = 'x', callback = function() end, flags = {1}}",
        "redis.register_function{function_name = 'x', callback = function() end, flags = {{}}}",
        "redis.register_function('ok1', function() end)\nredis.register_function('bad name', function() end)",
    ] {
        load(d, &lib("reg", body));
    }
    // names and descriptions given as numbers; every flag, in any case
    load(
        d,
        &lib(
            "numbers",
            "redis.register_function({function_name = 12, callback = function() return 'twelve' end, description = 3.5})",
        ),
    );
    d.ss(&["FCALL 12 0", "FUNCTION LIST LIBRARYNAME numbers"]);
    load(
        d,
        &lib(
            "flags",
            "redis.register_function{function_name = 'allflags', callback = function() return 1 end, flags = {'ALLOW-CROSS-SLOT-KEYS', 'no-cluster', 'allow-stale', 'Allow-Oom', 'no-writes'}, description = 'every flag'}",
        ),
    );
    d.ss(&["FUNCTION LIST LIBRARYNAME flags", "FCALL_RO allflags 0"]);
    // a callback kept from load time cannot register at run time
    load(
        d,
        &lib(
            "keep",
            "local r = redis\nredis.register_function('keep', function() return r.register_function('z', function() end) end)",
        ),
    );
    d.s("FCALL keep 0");
    load(
        d,
        &lib(
            "keep2",
            "local r = redis\nredis.register_function('keep2', function() return r.call('ping') end)",
        ),
    );
    d.s("FCALL keep2 0");
    load(
        d,
        &lib("keep3", "redis.register_function('keep3', function() return type(redis.register_function) end)"),
    );
    d.s("FCALL keep3 0");

    // already exists, REPLACE, a failing REPLACE keeps the old library
    let v1 = lib("rr", "redis.register_function('rr', function() return 1 end)");
    load(d, &v1);
    load(d, &v1);
    d.c(&[
        "FUNCTION",
        "LOAD",
        "REPLACE",
        &lib("rr", "redis.register_function('rr', function() return 2 end)"),
    ]);
    d.s("FCALL rr 0");
    d.c(&[
        "FUNCTION",
        "LOAD",
        "replace",
        &lib("rr", "redis.register_function('rr', function() return 3 end)\nerror('no')"),
    ]);
    d.c(&[
        "FUNCTION",
        "LOAD",
        "replace",
        &lib("rr", "redis.register_function('up', function() return 3 end)"),
    ]);
    d.c(&["FUNCTION", "LOAD", "replace", &lib("rr", "syntax error")]);
    d.s("FCALL rr 0");
    d.c(&[
        "FUNCTION",
        "LOAD",
        "REPLACE",
        "REPLACE",
        &lib("rr", "redis.register_function('rr2', function() return 'two' end)"),
    ]);
    d.ss(&["FCALL rr 0", "FCALL rr2 0", "FUNCTION LIST LIBRARYNAME rr WITHCODE"]);
    // function names are global across libraries, case-insensitively;
    // library names are case-sensitive
    load(d, &lib("other", "redis.register_function('UP', function() return 1 end)"));
    load(d, &lib("RR", "redis.register_function('rr3', function() return 'RR' end)"));
    d.ss(&["FCALL RR3 0", "FCALL Up 0", "FCALL_RO UP 0"]);
    // the arguments of FUNCTION LOAD
    d.ss(&["FUNCTION LOAD", "FUNCTION LOAD replace", "FUNCTION LOAD foo x", "FUNCTION LOAD replace foo x"]);

    // LIST, DELETE, STATS, FLUSH
    d.ss(&[
        "FUNCTION LIST LIBRARYNAME",
        "FUNCTION LIST foo",
        "FUNCTION LIST WITHCODE WITHCODE",
        "FUNCTION LIST LIBRARYNAME a LIBRARYNAME b",
        "FUNCTION LIST LIBRARYNAME nomatch*",
        "FUNCTION LIST withcode libraryname UPP?R",
        "FUNCTION LIST LIBRARYNAME o[t]her",
        "FUNCTION STATS",
        "FUNCTION DELETE",
        "FUNCTION DELETE nosuch",
        "FUNCTION DELETE rr x",
        "FUNCTION DELETE rr",
        "FUNCTION DELETE rr",
        "FCALL rr 0",
        "FUNCTION DELETE Rr",
        "FUNCTION STATS",
        "FUNCTION FLUSH x",
        "FUNCTION FLUSH async x",
        "FUNCTION FLUSH lazy",
        "FUNCTION FLUSH SYNC",
        "FUNCTION STATS",
        "FUNCTION LIST",
        "FCALL up 0",
        "FUNCTION FLUSH async",
        "FUNCTION FLUSH",
        "FUNCTION KILL",
        "FUNCTION KILL x",
        "FUNCTION STATS x",
        "FUNCTION HELP",
        "FUNCTION HELP x",
        "FUNCTION nosuch",
        "FUNCTION",
    ]);
    load(
        d,
        &lib(
            "only",
            "redis.register_function{function_name = 'only', description = 'the only one', callback = function() return 1 end}",
        ),
    );
    d.ss(&["FUNCTION LIST", "FUNCTION LIST WITHCODE", "FUNCTION STATS", "FUNCTION FLUSH"]);
}

#[test]
fn function_load_replace_list_delete_flush_like_redis() {
    run_scripted("functions_load", load_cases);
}

/// FUNCTION DUMP and RESTORE against redis-server: the payload of one
/// library is byte for byte Redis's (its code LZF-compressed as Redis
/// compresses it, version, CRC64); payloads move both ways; every policy
/// (APPEND, REPLACE, FLUSH) and every error answers as Redis does, and a
/// failed restore changes nothing.
#[test]
fn function_dump_and_restore_like_redis() {
    let t = TesseraServer::start(2, &[]);
    let r = RedisServer::start(&[]);
    let (mut tc, mut rc) = (t.client(), r.client());
    let long = format!(
        "#!lua name=big\nredis.register_function('big', function() return '{}' end)",
        "abcdefgh".repeat(40)
    );
    let one = "#!lua name=one\nredis.register_function('f1', function() return 1 end)";
    let other = "#!lua name=other\nredis.register_function('f1', function() return 2 end)";
    let both = |tc: &mut Client, rc: &mut Client, args: &[&[u8]], what: &str| -> Vec<u8> {
        let (a, b) = (tc.cmd_bytes(args), rc.cmd_bytes(args));
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "{what}");
        a
    };
    for code in [long.as_str(), one] {
        both(&mut tc, &mut rc, &[b"FUNCTION", b"FLUSH"], "flush");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"LOAD", code.as_bytes()], "load");
        // Byte for byte the same payload.
        let dump = both(&mut tc, &mut rc, &[b"FUNCTION", b"DUMP"], "dump");
        let payload = Value::parse(&dump);
        let Value::Bulk(payload) = payload else { panic!("{payload:?}") };
        // Each server restores the other's payload (the same bytes) after a flush.
        both(&mut tc, &mut rc, &[b"FUNCTION", b"FLUSH"], "flush");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &payload], "restore");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"LIST", b"WITHCODE"], "list");
        // APPEND (the default, and explicit) refuses an existing library; REPLACE and FLUSH do not.
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &payload], "append again");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &payload, b"APPEND"], "append again");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &payload, b"replace"], "replace");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &payload, b"FLUSH"], "flush policy");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"LIST", b"WITHCODE"], "list");
        // Errors.
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &payload, b"MERGE"], "policy");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &payload, b"FLUSH", b"x"], "arity");
        let mut bad = payload.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &bad], "checksum");
        both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", b"short"], "short");
    }
    // A function name another library holds: refused, nothing changes.
    both(&mut tc, &mut rc, &[b"FUNCTION", b"FLUSH"], "flush");
    both(&mut tc, &mut rc, &[b"FUNCTION", b"LOAD", other.as_bytes()], "load other");
    let Value::Bulk(theirs) = Value::parse(&both(&mut tc, &mut rc, &[b"FUNCTION", b"DUMP"], "dump other")) else {
        panic!()
    };
    both(&mut tc, &mut rc, &[b"FUNCTION", b"FLUSH"], "flush");
    both(&mut tc, &mut rc, &[b"FUNCTION", b"LOAD", one.as_bytes()], "load one");
    both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &theirs], "function collision");
    both(
        &mut tc,
        &mut rc,
        &[b"FUNCTION", b"RESTORE", &theirs, b"REPLACE"],
        "function collision under replace",
    );
    both(&mut tc, &mut rc, &[b"FCALL", b"f1", b"0"], "the old library still runs");
    both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &theirs, b"FLUSH"], "flush policy");
    both(&mut tc, &mut rc, &[b"FCALL", b"f1", b"0"], "the restored library runs");
    // A key's DUMP payload is not a function.
    both(&mut tc, &mut rc, &[b"SET", b"k", b"v"], "set");
    let Value::Bulk(key_payload) = Value::parse(&both(&mut tc, &mut rc, &[b"DUMP", b"k"], "dump k")) else {
        panic!()
    };
    both(&mut tc, &mut rc, &[b"FUNCTION", b"RESTORE", &key_payload], "not a function");
    // Every shard runs what was restored.
    for _ in 0..4 {
        assert_eq!(t.client().cmd(&["FCALL", "f1", "0"]), b":2\r\n");
    }
}

// ------------------------------------------------------------ FCALL

fn fcall_cases(d: &mut Diff) {
    d.s("FUNCTION FLUSH");
    load(
        d,
        &lib(
            "calls",
            r#"
redis.register_function('echo', function(keys, args) return {#keys, #args, keys, args} end)
redis.register_function('setget', function(keys, args)
  redis.call('SET', keys[1], args[1])
  redis.call('SET', keys[2], args[2])
  return redis.call('MGET', keys[1], keys[2])
end)
redis.register_function('incr_undeclared', function(keys, args)
  return {redis.call('INCR', args[1]), redis.call('INCR', args[2])}
end)
redis.register_function('types', function(keys, args)
  return {1, 2.9, 'str', true, false, {ok = 'fine'}, {1, {2, 3}}}
end)
redis.register_function('resp3', function(keys, args)
  redis.setresp(3)
  return redis.call('HGETALL', keys[1])
end)
redis.register_function('status', function() return redis.status_reply('DONE') end)
redis.register_function('err', function() return redis.error_reply('MYERR went wrong') end)
redis.register_function('raise', function() error('boom') end)
redis.register_function('raise_table', function() error({err = 'CODE custom'}) end)
redis.register_function('nil_index', function() local t = nil
  return t.x end)
redis.register_function('bad_cmd', function() return redis.call('nosuch') end)
redis.register_function('wrongtype', function(keys)
  return redis.call('LPUSH', keys[1], 'x')
end)
redis.register_function('pcall_wrongtype', function(keys)
  local r = redis.pcall('LPUSH', keys[1], 'x')
  return {type(r), r.err}
end)
redis.register_function('globals', function() return KEYS end)
redis.register_function('argv_global', function() return ARGV end)
redis.register_function('setglobal', function() newglobal = 1 end)
redis.register_function('sha', function(keys, args) return redis.sha1hex(args[1]) end)
redis.register_function('libs', function(keys, args)
  return {cjson.encode({1, 2}), string.len(args[1]), math.floor(2.5), bit.band(7, 3), type(table.concat)}
end)
redis.register_function('select', function(keys, args)
  redis.call('SELECT', 1)
  redis.call('SET', keys[1], 'db1')
  return redis.call('GET', keys[1])
end)
"#,
        ),
    );
    d.ss(&[
        "FCALL echo 0",
        "FCALL echo 2 a b x y z",
        "FCALL ECHO 1 a",
        "FCALL echo 0 a b",
        "FCALL nosuch 0",
        "FCALL echo x",
        "FCALL echo -1",
        "FCALL echo 1.5 a",
        "FCALL echo 3 a b",
        "FCALL echo 99999999999999999999 a",
        "FCALL echo",
        // declared keys on both shards (global mode)
        "FCALL setget 2 a b 1 2",
        "FCALL setget 2 c d 3 4",
        "FCALL setget 2 a c 5 6",
        "MGET a b c d",
        // undeclared keys, on both shards
        "FCALL incr_undeclared 0 a b",
        "FCALL incr_undeclared 0 c d",
        "FCALL incr_undeclared 1 a a b",
        "MGET a b c d",
        "FCALL types 0",
        "HSET h f v",
        "FCALL resp3 1 h",
        "FCALL status 0",
        "FCALL err 0",
        "FCALL raise 0",
        "FCALL raise_table 0",
        "FCALL nil_index 0",
        "FCALL bad_cmd 0",
        "SET str abc",
        "FCALL wrongtype 1 str",
        "FCALL pcall_wrongtype 1 str",
        // an EVAL's KEYS / ARGV are not globals for a function on the same shard
        "EVAL 'return 1' 1 a x",
        "FCALL globals 1 a",
        "EVAL 'return 1' 1 b x",
        "FCALL globals 1 b",
        "FCALL argv_global 1 a",
        "FCALL setglobal 0",
        "FCALL sha 0 abc",
        "FCALL libs 0 hello",
        "FCALL select 1 k0",
        "GET k0",
        "SELECT 1",
        "GET k0",
        "DEL k0",
        "SELECT 0",
    ]);

    // flags: no-writes is enforced, FCALL_RO needs it
    load(
        d,
        &lib(
            "flagged",
            r#"
redis.register_function{function_name = 'ro', flags = {'no-writes'}, callback = function(keys, args)
  return redis.call(args[1], keys[1], unpack(args, 2))
end}
redis.register_function{function_name = 'rw', callback = function(keys, args)
  return redis.call(args[1], keys[1], unpack(args, 2))
end}
redis.register_function{function_name = 'ro_pcall', flags = {'no-writes'}, callback = function(keys, args)
  local r = redis.pcall('SET', keys[1], 'x')
  return r.err
end}
"#,
        ),
    );
    d.ss(&[
        "FCALL ro 1 a GET",
        "FCALL ro 1 a SET v",
        "FCALL ro 1 b DEL",
        "FCALL ro_pcall 1 a",
        "FCALL_RO ro 1 b GET",
        "FCALL_RO ro 1 b INCR",
        "FCALL_RO rw 1 a GET",
        "FCALL_RO rw 1 a SET v",
        "FCALL_RO nosuch 0",
        "FCALL rw 1 a SET v",
        "FCALL rw 1 a GET",
        "MGET a b",
    ]);
    d.s("FUNCTION FLUSH");
    d.s("FLUSHALL");
}

#[test]
fn fcall_and_fcall_ro_like_redis() {
    run_scripted("functions_fcall", fcall_cases);
}

// ------------------------------------------------------------ MULTI / EXEC

fn multi_cases(d: &mut Diff) {
    d.s("FUNCTION FLUSH");
    load(
        d,
        &lib(
            "tx",
            r#"
redis.register_function('incrby', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)
redis.register_function{function_name = 'get', flags = {'no-writes'}, callback = function(keys) return redis.call('GET', keys[1]) end}
redis.register_function('move', function(keys, args)
  local v = redis.call('GET', keys[1]) or 0
  redis.call('SET', keys[1], v - args[1])
  return redis.call('INCRBY', keys[2], args[1])
end)
"#,
        ),
    );
    d.ss(&[
        "SET a 10",
        "MULTI",
        "FCALL incrby 1 a 5",
        "FCALL incrby 1 b 3",
        "FCALL move 2 a b 4",
        "FCALL_RO get 1 a",
        "FCALL_RO incrby 1 a 1",
        "FCALL nosuch 0",
        "FCALL incrby 1 str 1",
        "FCALL incrby x",
        "EXEC",
        "MGET a b",
        // a queuing error aborts the whole transaction
        "MULTI",
        "FCALL incrby 1 c 1",
        "FCALL",
        "EXEC",
        "EXISTS c",
    ]);
    // functions loaded, replaced and deleted inside a transaction
    d.s("MULTI");
    d.c(&[
        "FUNCTION",
        "LOAD",
        "REPLACE",
        &lib("tx2", "redis.register_function('late', function() return 'late' end)"),
    ]);
    d.ss(&["FCALL late 0", "FUNCTION DELETE tx2", "FCALL late 0", "FUNCTION STATS", "EXEC"]);
    // WATCH still applies
    let o = d.open();
    d.s("WATCH a");
    d.c_on(o, &["FCALL", "incrby", "1", "a", "100"]);
    d.ss(&["MULTI", "FCALL incrby 1 a 1", "EXEC", "GET a"]);
    d.close(o);
    let cmds = |lines: &[&str]| -> Vec<Vec<String>> { lines.iter().map(|l| split_words(l)).collect() };
    d.pipeline_on(
        0,
        &cmds(&["MULTI", "FCALL incrby 1 c 1", "FCALL incrby 1 d 2", "FCALL move 2 c d 1", "EXEC", "MGET c d"]),
    );
    d.s("FUNCTION FLUSH");
    d.s("FLUSHALL");
}

#[test]
fn fcall_inside_multi_exec_like_redis() {
    run_scripted("functions_multi", multi_cases);
}

// ------------------------------------------------------------ every shard sees the libraries

fn shards_cases(d: &mut Diff) {
    d.s("FUNCTION FLUSH");
    // Several connections (on either shard); a function with a declared key
    // runs on that key's shard, so the calls with `a` and with `b` run on
    // both shards' VMs whatever the connection.
    let conns: Vec<usize> = (0..4).map(|_| d.open()).collect();
    load(
        d,
        &lib(
            "shared",
            "redis.register_function('version', function(keys) redis.call('INCR', keys[1]) return 'v1' end)",
        ),
    );
    for &o in &conns {
        d.c_on(o, &["FCALL", "version", "1", "a"]);
        d.c_on(o, &["FCALL", "version", "1", "b"]);
    }
    d.c_on(
        conns[1],
        &[
            "FUNCTION",
            "LOAD",
            "REPLACE",
            &lib(
                "shared",
                "redis.register_function('version', function(keys) redis.call('INCR', keys[1]) return 'v2' end)",
            ),
        ],
    );
    for &o in &conns {
        d.c_on(o, &["FCALL", "version", "1", "a"]);
        d.c_on(o, &["FCALL", "version", "1", "b"]);
        d.c_on(o, &["FUNCTION", "STATS"]);
    }
    d.c_on(conns[2], &["FUNCTION", "DELETE", "shared"]);
    for &o in &conns {
        d.c_on(o, &["FCALL", "version", "1", "a"]);
        d.c_on(o, &["FCALL", "version", "1", "b"]);
        d.c_on(o, &["FUNCTION", "LIST"]);
    }
    d.c_on(
        conns[3],
        &[
            "FUNCTION",
            "LOAD",
            &lib("shared", "redis.register_function('version', function(keys) return 'v3' end)"),
        ],
    );
    // SCRIPT FLUSH rebuilds the VMs: the functions stay.
    d.s("SCRIPT FLUSH");
    for &o in &conns {
        d.c_on(o, &["FCALL", "version", "0"]);
        d.c_on(o, &["FCALL", "version", "1", "a"]);
        d.c_on(o, &["FCALL", "version", "1", "b"]);
    }
    d.c_on(conns[0], &["FUNCTION", "FLUSH"]);
    for &o in &conns {
        d.c_on(o, &["FCALL", "version", "1", "a"]);
        d.c_on(o, &["FCALL", "version", "1", "b"]);
    }
    d.s("MGET a b");
    for o in conns {
        d.close(o);
    }
    d.s("FLUSHALL");
}

#[test]
fn libraries_are_seen_by_every_shard_like_redis() {
    run_scripted("functions_shards", shards_cases);
}

/// FUNCTION LIST of a library with several functions: Redis lists them in
/// its dict's order, so both replies are compared with the functions sorted.
#[test]
fn function_list_of_several_functions_like_redis() {
    fn sorted(v: &Value) -> Value {
        let Some(libs) = v.as_array() else { return v.clone() };
        let libs = libs
            .iter()
            .map(|l| match l {
                Value::Map(fields) => Value::Map(fields.iter().map(|(k, f)| (k.clone(), sort_functions(k, f))).collect()),
                Value::Array(items) => Value::Array(
                    items
                        .chunks(2)
                        .flat_map(|p| [p[0].clone(), p.get(1).map(|f| sort_functions(&p[0], f)).unwrap_or(Value::Null)])
                        .collect(),
                ),
                other => other.clone(),
            })
            .collect();
        Value::Array(libs)
    }
    fn sort_functions(k: &Value, f: &Value) -> Value {
        if k.as_bytes() != Some(b"functions") {
            return f.clone();
        }
        let mut fs = f.as_array().cloned().unwrap_or_default();
        fs.sort_by_key(|x| format!("{x:?}"));
        Value::Array(fs)
    }
    let mut d = Diff::new("functions_list_sorted");
    let code = lib(
        "many",
        "redis.register_function('f1', function() return 1 end)\nredis.register_function{function_name = 'f2', callback = function() return 2 end, flags = {'no-writes', 'allow-oom'}, description = 'two'}\nredis.register_function{function_name = 'f3', callback = function() return 3 end, description = 'three'}",
    );
    for proto in ["2", "3"] {
        d.c(&["HELLO", proto]);
        d.s("FUNCTION FLUSH");
        load(&mut d, &code);
        for args in [
            vec!["FUNCTION", "LIST"],
            vec!["FUNCTION", "LIST", "WITHCODE"],
            vec!["FUNCTION", "LIST", "LIBRARYNAME", "m*"],
        ] {
            let p = d.conns[0].as_mut().unwrap();
            let t = p.t.cmd_value(&args);
            let r = p.r.cmd_value(&args);
            assert_eq!(sorted(&t), sorted(&r), "RESP{proto} {args:?}");
            assert_eq!(t.as_array().map(|a| a.len()), Some(1), "{t:?}");
        }
        d.ss(&["FCALL f1 0", "FCALL_RO f2 0", "FCALL f3 0", "FUNCTION STATS"]);
    }
    d.finish();
}

// ------------------------------------------------------------ a slow function

/// Connections until one answers within `wait` (on another shard than the
/// running function); the others are kept (their replies come later).
fn other_shard_client(port: u16, wait: Duration, parked: &mut Vec<Client>) -> (Client, Vec<u8>) {
    for _ in 0..32 {
        let mut c = Client::connect(port);
        c.set_timeout(wait);
        c.send_strs(&["PING"]);
        match c.try_read_reply_raw() {
            Ok(r) => return (c, r),
            Err(_) => parked.push(c),
        }
    }
    panic!("no connection landed on a shard without the running function");
}

#[test]
fn slow_functions_show_in_function_stats_and_function_kill_stops_them() {
    let srv = TesseraServer::start(2, &["--busy-reply-threshold", "100"]);
    let port = srv.port;
    let mut admin = srv.client();
    let code = lib("slow", "redis.register_function('spin', function(keys, args) while true do end end)");
    assert_eq!(admin.cmd(&["FUNCTION", "LOAD", &code]), b"$4\r\nslow\r\n");
    assert_eq!(admin.cmd(&["FUNCTION", "KILL"]), b"-NOTBUSY No scripts in execution right now.\r\n");

    let mut runner = srv.client();
    runner.set_timeout(Duration::from_secs(20));
    runner.send_strs(&["FCALL", "spin", "1", "k", "arg"]);
    std::thread::sleep(Duration::from_millis(400));
    let mut parked = Vec::new();
    let (mut other, first) = other_shard_client(port, Duration::from_millis(300), &mut parked);
    assert_eq!(
        first,
        b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
    );
    other.set_timeout(Duration::from_secs(5));
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]),
        b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
    );
    let stats = other.cmd_value(&["FUNCTION", "STATS"]);
    let pairs = stats.as_pairs().unwrap_or_else(|| panic!("{stats:?}"));
    assert_eq!(pairs[0].0.as_str().as_deref(), Some("running_script"));
    let running = pairs[0].1.as_pairs().unwrap_or_else(|| panic!("{stats:?}"));
    assert_eq!(running[0].1.as_str().as_deref(), Some("spin"));
    let cmd: Vec<String> = running[1].1.as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(cmd, ["FCALL", "spin", "1", "k", "arg"]);
    assert!(running[2].1.as_int().is_some_and(|ms| ms >= 100), "{stats:?}");
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]), b"+OK\r\n");
    assert_eq!(
        runner.read_reply_raw(),
        b"-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.\r\n"
    );
    for c in parked.iter_mut() {
        c.set_timeout(Duration::from_secs(5));
        assert_eq!(c.read_reply_raw(), b"+PONG\r\n");
    }
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]), b"-NOTBUSY No scripts in execution right now.\r\n");
    let stats = other.cmd_value(&["FUNCTION", "STATS"]);
    assert!(stats.as_pairs().unwrap()[0].1.is_null(), "{stats:?}");

    // A slow EVAL: FUNCTION KILL and FUNCTION STATS refuse it.
    runner.send_strs(&["EVAL", "while true do end", "0"]);
    std::thread::sleep(Duration::from_millis(400));
    let mut parked = Vec::new();
    let (mut other, first) = other_shard_client(port, Duration::from_millis(300), &mut parked);
    assert_eq!(
        first,
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    other.set_timeout(Duration::from_secs(5));
    let busy_eval = b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]), busy_eval);
    assert_eq!(other.cmd(&["FUNCTION", "STATS"]), busy_eval);
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), b"+OK\r\n");
    assert!(runner.read_reply_raw().starts_with(b"-ERR Script killed by user with SCRIPT KILL..."));
    for c in parked.iter_mut() {
        c.set_timeout(Duration::from_secs(5));
        assert_eq!(c.read_reply_raw(), b"+PONG\r\n");
    }
}

// ------------------------------------------------------------ concurrency

/// One key `prefix<i>` on each of the `shards` shards, in shard order.
fn keys_on_distinct_shards(shards: usize, prefix: &str) -> Vec<String> {
    let mut by_shard: Vec<Option<String>> = vec![None; shards];
    for i in 0..10_000 {
        let k = format!("{prefix}{i}");
        let s = local_shard_of(k.as_bytes(), shards);
        if by_shard[s].is_none() {
            by_shard[s] = Some(k);
        }
        if by_shard.iter().all(|x| x.is_some()) {
            break;
        }
    }
    by_shard.into_iter().map(|k| k.expect("a key for every shard")).collect()
}

const BANK: &str = r#"#!lua name=bank
redis.register_function('move', function(keys)
  local v = redis.call('GET', keys[1])
  redis.call('SET', keys[1], v - 1)
  redis.call('SET', keys[2], redis.call('GET', keys[2]) + 1)
  return v - 1
end)
redis.register_function('move_undeclared', function(keys, args)
  redis.call('DECR', args[1])
  return redis.call('INCR', args[2])
end)
redis.register_function{function_name = 'sum', flags = {'no-writes'}, callback = function(keys)
  local out = {}
  for i = 1, #keys do out[i] = redis.call('GET', keys[i]) end
  return out
end}
"#;

/// Three clients run functions moving 1 between keys on different shards
/// (declared, or built from ARGV); a reader checks with MGET and with a
/// reading function (FCALL_RO) that the total never changes.
#[test]
fn functions_moving_values_across_shards_are_never_seen_half_done_at_4_shards() {
    let shards = 4;
    let srv = TesseraServer::start(shards, &[]);
    let port = srv.port;
    let keys = Arc::new(keys_on_distinct_shards(shards, "acct:"));
    let mut c = srv.client();
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", BANK]), b"$4\r\nbank\r\n");
    for k in keys.iter() {
        assert_eq!(c.cmd(&["SET", k, "1000"]), b"+OK\r\n");
    }
    let total = 1000 * keys.len() as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..3)
        .map(|w| {
            let (keys, stop) = (keys.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let from = &keys[(w + n) % keys.len()];
                    let to = &keys[(w + n + 1 + n % 3) % keys.len()];
                    let r = if n % 4 == 3 {
                        c.cmd_value(&["FCALL", "move_undeclared", "0", from, to])
                    } else {
                        c.cmd_value(&["FCALL", "move", "2", from, to])
                    };
                    assert!(matches!(r, Value::Int(_)), "move replied {r:?}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let sum_of = |v: &Value, what: &str| -> i64 {
        let a = v.as_array().unwrap_or_else(|| panic!("{what} replied {v:?}"));
        assert_eq!(a.len(), keys.len(), "{what} replied {v:?}");
        a.iter()
            .map(|x| x.as_str().unwrap_or_else(|| panic!("{what} replied {v:?}")).parse::<i64>().unwrap())
            .sum()
    };
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(|k| k.as_str()));
    let nk = keys.len().to_string();
    let mut sum = vec!["FCALL_RO", "sum", nk.as_str()];
    sum.extend(keys.iter().map(|k| k.as_str()));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut reads = 0;
    while Instant::now() < deadline {
        let v = c.cmd_value(&mget);
        assert_eq!(sum_of(&v, "MGET"), total, "MGET saw a function half done: {v:?}");
        let v = c.cmd_value(&sum);
        assert_eq!(sum_of(&v, "FCALL_RO sum"), total, "a reading function saw a function half done: {v:?}");
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let moved: Vec<usize> = movers.into_iter().map(|m| m.join().unwrap()).collect();
    let v = c.cmd_value(&mget);
    assert_eq!(sum_of(&v, "MGET"), total, "final {v:?}");
    eprintln!("{reads} checked reads, moves per client {moved:?}, final {v:?}");
    assert!(reads > 20 && moved.iter().all(|&m| m > 20), "too little concurrency to mean anything");
}
