//! Differential tests: the same command sequences are sent to Tessera (2
//! shards) and to a real redis-server 7.0.15, and the replies are compared
//! BYTE FOR BYTE, in RESP2 and (after `HELLO 3` on both) in RESP3.
//!
//! The only exceptions are replies Redis itself documents as
//! nondeterministic; each is relaxed by one named rule of the [`RULES`] table
//! (and error replies are always compared exactly, whatever the rule).
//!
//! Environment:
//! * `TESSERA_DIFF_SEED=N`: seed of the random command generator (default 42;
//!   the seed is printed on success and on failure).
//! * `TESSERA_DIFF_RANDOM=N`: number of random commands per protocol.
//! * `TESSERA_DIFF_KEEP_GOING=1`: do not stop at the first mismatch; collect
//!   them all (up to 300) and print them at the end (the test still fails).
//! * `TESSERA_DIFF_LOG=/path/prefix`: log every command and both replies to
//!   `/path/prefix.<test name>`.
//! * `TESSERA_TEST_AGAINST_REDIS=1`: debug aid, both sides are redis-server
//!   (proves the comparison logic; every test here must pass that way).

mod common;

use common::diff::*;

use std::collections::BTreeSet;
use std::time::Duration;

fn script_connection(d: &mut Diff) {
    let proto = d.proto().to_string();
    // PING / ECHO
    d.ss(&["PING", "PING hello", "PING a b", "ping", "ECHO", "ECHO x", "ECHO a b"]);
    d.c(&["PING", ""]);
    d.c(&["ECHO", ""]);
    d.cb(&[b"ECHO", b"\x00\xff\r\n\"'"]);
    let big = "x".repeat(100_000);
    d.c(&["ECHO", &big]);
    // HELLO
    d.ss(&[
        "HELLO",
        "HELLO 2",
        "HELLO 3",
        "HELLO 4",
        "HELLO 1",
        "HELLO 0",
        "HELLO abc",
        "HELLO -1",
        "HELLO 3 FOO",
    ]);
    d.ss(&[
        "HELLO 2 SETNAME myname",
        "CLIENT GETNAME",
        "HELLO 3 AUTH default anything",
        "HELLO 3 AUTH default",
        "HELLO 3 SETNAME",
    ]);
    d.c(&["HELLO", "2", "SETNAME", "bad name"]);
    d.c(&["HELLO", "3", "AUTH", "nosuchuser", "x"]);
    d.c(&["HELLO", &proto]);
    // AUTH (no password configured)
    d.ss(&["AUTH x", "AUTH default x", "AUTH a b c", "AUTH", "AUTH nosuchuser x"]);
    // SELECT
    d.ss(&[
        "SELECT 1",
        "SET k v",
        "GET k",
        "SELECT 0",
        "GET k",
        "SELECT 15",
        "SELECT 16",
        "SELECT -1",
        "SELECT abc",
        "SELECT",
        "SELECT 1 2",
        "SELECT 0",
    ]);
    // RESET
    d.ss(&["SELECT 3", "CLIENT SETNAME n1", "RESET", "CLIENT GETNAME", "GET k", "RESET x"]);
    d.c(&["HELLO", &proto]);
}

fn script_client(d: &mut Diff) {
    // CLIENT ...
    d.ss(&["CLIENT ID", "CLIENT ID x", "CLIENT", "CLIENT FOO", "CLIENT HELP", "CLIENT HELP x"]);
    d.ss(&[
        "CLIENT SETNAME foo",
        "CLIENT GETNAME",
        "CLIENT SETNAME",
        "CLIENT GETNAME x",
        "CLIENT SETNAME a b",
    ]);
    d.c(&["CLIENT", "SETNAME", "a b"]);
    d.c(&["CLIENT", "SETNAME", "a\nb"]);
    d.c(&["CLIENT", "SETNAME", "é"]);
    d.c(&["CLIENT", "SETNAME", ""]);
    d.s("CLIENT GETNAME");
    d.s("CLIENT SETNAME conn0");
    d.ss(&[
        "CLIENT LIST ID $MYID",
        "CLIENT INFO",
        "CLIENT INFO x",
        "CLIENT LIST TYPE pubsub",
        "CLIENT LIST TYPE master",
    ]);
    d.ss(&[
        "CLIENT LIST TYPE replica",
        "CLIENT LIST TYPE foo",
        "CLIENT LIST ID abc",
        "CLIENT LIST ID 99999999",
        "CLIENT LIST ID",
        "CLIENT LIST foo",
    ]);
    d.ss(&["CLIENT LIST ID $MYID 99999999", "CLIENT LIST ID 0", "CLIENT LIST ID -5"]);
    // CLIENT KILL
    let other = d.open();
    let (t, r) = d.pair_ids(other);
    d.set_var("$OTHERID", t, r);
    d.ss(&["CLIENT KILL ID $OTHERID"]);
    d.expect_closed(other, "connection killed by CLIENT KILL ID");
    d.ss(&[
        "CLIENT KILL ID $OTHERID",
        "CLIENT KILL 1.2.3.4:5",
        "CLIENT KILL ID abc",
        "CLIENT KILL ID 0",
        "CLIENT KILL ID $MYID SKIPME yes",
    ]);
    d.ss(&[
        "CLIENT KILL ID $MYID SKIPME maybe",
        "CLIENT KILL TYPE pubsub",
        "CLIENT KILL TYPE foo",
        "CLIENT KILL FOO bar",
        "CLIENT KILL ID",
    ]);
    d.ss(&[
        "CLIENT KILL USER nosuchuser",
        "CLIENT KILL LADDR 1.2.3.4:5",
        "CLIENT KILL ADDR 1.2.3.4:5",
        "CLIENT KILL",
        "CLIENT KILL MAXAGE 10",
    ]);
    // CLIENT NO-EVICT / REPLY / PAUSE / SETINFO
    d.ss(&[
        "CLIENT NO-EVICT on",
        "CLIENT NO-EVICT off",
        "CLIENT NO-EVICT maybe",
        "CLIENT NO-EVICT",
        "CLIENT NO-EVICT on off",
    ]);
    d.ss(&["CLIENT REPLY ON", "CLIENT REPLY FOO", "CLIENT REPLY", "CLIENT REPLY ON x"]);
    d.noreply(&["CLIENT", "REPLY", "OFF"]);
    d.noreply(&["SET", "rk", "1"]);
    d.noreply(&["GET", "rk"]);
    d.s("CLIENT REPLY ON");
    d.noreply(&["CLIENT", "REPLY", "SKIP"]);
    d.noreply(&["SET", "rk", "2"]);
    d.s("GET rk");
    d.ss(&[
        "CLIENT PAUSE 10",
        "CLIENT PAUSE 20 WRITE",
        "CLIENT PAUSE 20 ALL",
        "CLIENT UNPAUSE",
        "CLIENT PAUSE abc",
        "CLIENT PAUSE -1",
    ]);
    d.ss(&["CLIENT PAUSE 10 FOO", "CLIENT PAUSE", "CLIENT UNPAUSE x", "CLIENT UNPAUSE", "GET rk"]);
    d.ss(&["CLIENT SETINFO lib-name x", "CLIENT SETINFO lib-ver 1.0", "CLIENT SETINFO"]);
}

fn script_server(d: &mut Diff) {
    // INFO
    d.ss(&[
        "SET k1 v",
        "SET k2 v EX 100000",
        "INFO",
        "INFO server",
        "INFO keyspace",
        "INFO server clients",
        "INFO nosuch",
        "INFO all",
        "INFO everything",
        "INFO default",
        "INFO SERVER",
    ]);
    // CONFIG
    d.ss(&[
        "CONFIG GET maxmemory",
        "CONFIG GET maxmemory*",
        "CONFIG GET maxmemory timeout",
        "CONFIG GET nosuch",
        "CONFIG GET MAXMEMORY",
    ]);
    // Memory values (maxmemory is exercised with eviction in tests/memory.rs).
    d.ss(&[
        "CONFIG SET proto-max-bulk-len 100mb",
        "CONFIG GET proto-max-bulk-len",
        "CONFIG SET proto-max-bulk-len 512mb",
        "CONFIG SET maxmemory abc",
        "CONFIG SET maxmemory -1",
        "CONFIG SET nosuch 1",
    ]);
    d.ss(&[
        "CONFIG SET databases 5",
        "CONFIG SET timeout 0 maxmemory 0",
        "CONFIG GET maxmemory",
        "CONFIG SET timeout",
        "CONFIG SET timeout 1 maxmemory",
    ]);
    d.ss(&[
        "CONFIG SET timeout 0 timeout 1",
        "CONFIG GET timeout",
        "CONFIG SET",
        "CONFIG GET",
        "CONFIG FOO",
        "CONFIG",
        "CONFIG RESETSTAT",
        "CONFIG RESETSTAT x",
    ]);
    d.ss(&[
        "CONFIG SET proto-max-bulk-len 1000",
        "CONFIG GET proto-max-bulk-len",
        "CONFIG GET databases",
        "CONFIG SET lfu-log-factor 10",
    ]);
    d.ss(&[
        "CONFIG SET maxmemory-policy allkeys-lfu",
        "CONFIG GET maxmemory-policy",
        "SET f 1",
        "GET f",
        "OBJECT FREQ f",
    ]);
    d.ss(&[
        "CONFIG SET maxmemory-policy bogus",
        "CONFIG SET maxmemory-policy noeviction",
        "OBJECT FREQ f",
        "CONFIG SET MAXMEMORY 0",
    ]);
    d.ss(&["CONFIG GET timeout maxmemory-policy", "CONFIG GET *memory-pol*", "CONFIG SET timeout 0"]);
    // DBSIZE / FLUSHDB / FLUSHALL
    d.ss(&[
        "DBSIZE",
        "DBSIZE x",
        "MSET a 1 b 2 c 3 d 4",
        "DBSIZE",
        "SELECT 1",
        "SET a 1",
        "DBSIZE",
        "FLUSHDB",
        "DBSIZE",
        "SELECT 0",
        "DBSIZE",
    ]);
    d.ss(&[
        "FLUSHDB ASYNC",
        "DBSIZE",
        "SET a 1",
        "FLUSHDB SYNC",
        "FLUSHDB FOO",
        "FLUSHDB a b",
        "SET a 1",
        "SELECT 2",
        "SET b 1",
        "FLUSHALL",
    ]);
    d.ss(&["DBSIZE", "SELECT 0", "DBSIZE", "FLUSHALL ASYNC", "FLUSHALL SYNC", "FLUSHALL X", "FLUSHALL a b"]);
    // TIME / LASTSAVE / DEBUG
    d.ss(&["TIME", "TIME x", "LASTSAVE", "LASTSAVE x", "DEBUG SLEEP 0", "DEBUG SLEEP 0.01", "DEBUG"]);
}

fn script_misc(d: &mut Diff) {
    let big = "x".repeat(100_000);
    // MONITOR: lines fed by commands on other connections
    let feeder = d.open();
    let m = d.open();
    d.c_on(m, &["MONITOR"]);
    d.c(&["SET", "mk", "a b"]);
    d.cb(&[b"ECHO", b"x\x00y\"z\n"]);
    d.c_on(feeder, &["GET", "mk"]);
    d.s("DEL mk nosuch");
    d.c_on(feeder, &["SELECT", "3"]);
    d.c_on(feeder, &["EXISTS", "mk"]);
    for _ in 0..6 {
        d.read_with_rule(m, "<MONITOR feed line>", "monitor");
    }
    d.close(m);
    d.close(feeder);
    // COMMAND INFO / DOCS / GETKEYS for implemented commands
    d.ss(&[
        "COMMAND INFO get",
        "COMMAND INFO get set mget",
        "COMMAND INFO nosuch",
        "COMMAND INFO GET nosuch",
        "COMMAND DOCS get",
        "COMMAND DOCS nosuch",
    ]);
    d.ss(&[
        "COMMAND DOCS set",
        "COMMAND GETKEYS SET a b",
        "COMMAND GETKEYS MSET a 1 b 2",
        "COMMAND GETKEYS GET",
        "COMMAND GETKEYS PING",
        "COMMAND GETKEYS nosuch",
    ]);
    d.ss(&[
        "COMMAND GETKEYS LCS a b",
        "COMMAND GETKEYS",
        "COMMAND GETKEYS COPY a b DB 1",
        "COMMAND GETKEYS RENAME a b",
        "COMMAND GETKEYS DEL a b c",
    ]);
    d.ss(&["COMMAND FOO", "COMMAND INFO client|id", "COMMAND DOCS client|kill"]);
    // unknown commands
    d.ss(&["foo a b", "FOO", "foo", "foo  a   b  c d e f"]);
    d.c(&["foo", &"y".repeat(300), "b"]);
    d.c(&["foo", &"a".repeat(100), &"b".repeat(100), "c"]);
    d.c(&[&"z".repeat(200), "a"]);
    d.c(&["foo", "a\nb", "c\r\nd"]);
    d.c(&["", "x"]);
    d.c(&[""]);
    d.c(&["CLIENTX", "ID"]);
    // inline commands
    d.raw(b"PING\r\n", 1);
    d.raw(b"PING\n", 1);
    d.raw(b"ping  hello\r\n", 1);
    d.raw(b"set ik \"hello world\"\r\n", 1);
    d.raw(b"get ik\r\n", 1);
    d.raw(b"echo \"\\x41\\n\\t\\\\\"\r\n", 1);
    d.raw(b"echo 'single \\' quoted'\r\n", 1);
    d.raw(b"\r\n\r\nPING\r\n", 1);
    d.raw(b"  \t ECHO   x  \r\n", 1);
    d.raw(b"*0\r\nPING\r\n", 1);
    d.raw(b"*-1\r\nPING\r\n", 1);
    d.raw(b"PING\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 3);
    d.raw(b"nosuchinline a b\r\n", 1);
    d.raw(b"echo \"\"\r\n", 1);
    d.raw(b"echo ''\r\n", 1);
    d.raw(b"SET \"\" ''\r\nGET \"\"\r\n", 2);
    // empty / odd arguments
    d.c(&["SET", "", ""]);
    d.c(&["GET", ""]);
    d.c(&["EXISTS", ""]);
    d.cb(&[b"SET", b"\x00\r\n", b"\xff\x00"]);
    d.cb(&[b"GET", b"\x00\r\n"]);
    d.c(&["SET", "sp ace", "v a l"]);
    d.c(&["GET", "sp ace"]);
    d.c(&["SET", "big", &big]);
    d.c(&["STRLEN", "big"]);
    d.s("FLUSHALL");
    // QUIT at the end (closes connection 0; run_scripted reconnects)
    d.ss(&["QUIT"]);
    d.expect_closed(0, "QUIT");
}

/// Non-string keys for WRONGTYPE checks: wl (list), ws (set), wh (hash),
/// wz (zset). A type whose creating command Tessera does not implement yet
/// (not in its COMMAND LIST) is skipped on BOTH sides, so the rest of the
/// script still runs; the keys are then simply missing on both sides.
fn make_wrongtype_keys(d: &mut Diff) {
    for line in ["RPUSH wl x y", "SADD ws m", "HSET wh f v", "ZADD wz 1 m"] {
        let cmd = line.split(' ').next().unwrap().to_ascii_lowercase();
        if d.has(&cmd) {
            d.s(line);
        }
    }
}

fn script_keyspace(d: &mut Diff) {
    d.ss(&["FLUSHALL", "SET a 1", "SET b 2", "SET c 3"]);
    make_wrongtype_keys(d);
    // DEL / UNLINK / EXISTS
    d.ss(&[
        "DEL a b nosuch",
        "DEL",
        "DEL c",
        "DEL c",
        "MSET a 1 b 2 c 3 d 4",
        "UNLINK d a nosuch",
        "UNLINK",
        "UNLINK b b b",
        "DEL wl ws",
    ]);
    make_wrongtype_keys(d);
    d.ss(&[
        "MSET a 1 b 2 c 3 d 4",
        "EXISTS a b c d nosuch",
        "EXISTS a a a",
        "EXISTS",
        "EXISTS nosuch",
        "EXISTS wl wh ws wz",
    ]);
    // TYPE
    d.ss(&["TYPE a", "TYPE wl", "TYPE ws", "TYPE wh", "TYPE wz", "TYPE nosuch", "TYPE", "TYPE a b"]);
    // KEYS
    d.ss(&[
        "KEYS *",
        "KEYS ?",
        "KEYS [a-c]",
        "KEYS [^a]*",
        "KEYS w*",
        "KEYS *\\*",
        "KEYS nomatch",
        "KEYS",
        "KEYS a b",
        "KEYS [",
        "KEYS \\a",
    ]);
    d.c(&["SET", "a*b", "x"]);
    d.c(&["KEYS", "a\\*b"]);
    d.c(&["KEYS", "a*"]);
    d.c(&["KEYS", "*"]);
    // SCAN
    d.ss(&[
        "SCAN 0",
        "SCAN 0 MATCH w*",
        "SCAN 0 COUNT 1",
        "SCAN 0 TYPE list",
        "SCAN 0 TYPE string MATCH [ab]",
        "SCAN 0 COUNT 0",
    ]);
    d.ss(&[
        "SCAN 0 COUNT -1",
        "SCAN 0 COUNT abc",
        "SCAN abc",
        "SCAN 0 FOO",
        "SCAN 0 MATCH",
        "SCAN 0 TYPE nosuchtype",
        "SCAN",
        "SCAN 0 count 2 match *",
    ]);
    d.ss(&["SCAN 1.5", "SCAN 0 TYPE hash", "SCAN 0 TYPE zset", "SCAN 0 TYPE set"]);
    // RANDOMKEY
    d.ss(&["RANDOMKEY", "RANDOMKEY", "RANDOMKEY", "RANDOMKEY x", "SELECT 5", "RANDOMKEY", "SELECT 0"]);
    // RENAME / RENAMENX across shards
    d.ss(&[
        "RENAME a na",
        "GET na",
        "EXISTS a",
        "RENAME na na",
        "RENAME nosuch x",
        "RENAME b c",
        "GET c",
        "GET b",
        "RENAME wl wl2",
        "TYPE wl2",
    ]);
    d.ss(&["RENAME", "RENAME a", "RENAME a b c", "RENAME nosuch nosuch"]);
    d.ss(&["SET t v EX 100000", "RENAME t k0", "TTL k0", "RENAME k0 k2", "TTL k2", "PERSIST k2"]);
    d.ss(&[
        "SET a 1",
        "SET b 2",
        "RENAMENX a b",
        "RENAMENX a e",
        "GET e",
        "RENAMENX nosuch x",
        "RENAMENX e e",
        "RENAMENX",
        "RENAMENX e",
    ]);
    // COPY
    d.ss(&[
        "COPY e f",
        "COPY e f",
        "COPY e f REPLACE",
        "COPY nosuch x",
        "COPY e e",
        "COPY e g DB 1",
        "SELECT 1",
        "GET g",
        "SELECT 0",
    ]);
    d.ss(&[
        "COPY e g DB 16",
        "COPY e g DB abc",
        "COPY e g DB -1",
        "COPY e g FOO",
        "COPY e g DB",
        "COPY e",
        "COPY wl2 wlc",
        "TYPE wlc",
    ]);
    d.ss(&[
        "SET t v EX 100000",
        "COPY t t3",
        "TTL t3",
        "COPY e g REPLACE DB 1",
        "COPY e g DB 1 REPLACE REPLACE",
        "COPY wh c REPLACE",
        "TYPE c",
    ]);
    // MOVE
    d.ss(&[
        "MOVE e 1",
        "MOVE e 1",
        "SET e x",
        "MOVE e 1",
        "MOVE e 0",
        "MOVE e 16",
        "MOVE e abc",
        "MOVE e -1",
        "MOVE nosuch 1",
        "MOVE",
        "MOVE e",
    ]);
    d.ss(&["MOVE wz 2", "SELECT 2", "TYPE wz", "MOVE wz 0", "SELECT 0", "TYPE wz"]);
    // TOUCH
    d.ss(&["TOUCH a b c nosuch", "TOUCH", "TOUCH a a"]);
    // OBJECT
    d.s("SET ei 12345");
    d.s("SET ei2 -5");
    d.s("SET ebig 123456789012345678901");
    d.s("SET es hello");
    d.c(&["SET", "er", &"r".repeat(44)]);
    d.c(&["SET", "eb", &"r".repeat(45)]);
    d.s("SET es2 hello");
    d.s("APPEND es2 x");
    d.s("SET ef 1.5");
    d.s("SETRANGE esr 0 abc");
    d.s("SET eint 10");
    d.s("INCR eint");
    for k in [
        "ei", "ei2", "ebig", "es", "er", "eb", "es2", "ef", "esr", "eint", "wl2", "ws", "wh", "wz", "nosuch",
    ] {
        d.c(&["OBJECT", "ENCODING", k]);
    }
    for k in ["ei", "es", "eb", "eint", "wh", "nosuch"] {
        d.c(&["OBJECT", "REFCOUNT", k]);
    }
    d.ss(&[
        "OBJECT IDLETIME es",
        "OBJECT IDLETIME nosuch",
        "OBJECT FREQ es",
        "OBJECT FREQ nosuch",
        "OBJECT HELP",
        "OBJECT FOO",
        "OBJECT",
    ]);
    d.ss(&[
        "OBJECT ENCODING",
        "OBJECT ENCODING a b",
        "OBJECT HELP x",
        "OBJECT REFCOUNT",
        "OBJECT IDLETIME",
        "OBJECT FREQ",
    ]);
    d.s("DBSIZE");
}

fn script_expire(d: &mut Diff) {
    let now = d.now_s;
    let fut = (now + 1_000_000).to_string();
    let fut2 = (now + 2_000_000).to_string();
    let fut_ms = ((now + 1_000_000) * 1000 + 123).to_string();
    let fut2_ms = ((now + 2_000_000) * 1000 + 456).to_string();
    d.ss(&[
        "FLUSHALL",
        "SET k0 v",
        "EXPIRE k0 10000",
        "TTL k0",
        "PTTL k0",
        "EXPIRETIME k0",
        "PEXPIRETIME k0",
    ]);
    d.ss(&[
        "EXPIRE k0 20000 NX",
        "EXPIRE k0 20000 XX",
        "TTL k0",
        "EXPIRE k0 5000 GT",
        "EXPIRE k0 30000 GT",
        "EXPIRE k0 3000 LT",
        "EXPIRE k0 40000 LT",
        "TTL k0",
    ]);
    d.ss(&[
        "EXPIRE k0 100 NX XX",
        "EXPIRE k0 100 GT LT",
        "EXPIRE k0 100 NX GT",
        "EXPIRE k0 100 XX LT",
        "EXPIRE k0 100 FOO",
        "EXPIRE k0 100 nx nx",
    ]);
    d.ss(&[
        "EXPIRE k0 200 xx gt",
        "TTL k0",
        "EXPIRE k0 abc",
        "EXPIRE k0 1.5",
        "EXPIRE k0 9223372036854775807",
        "EXPIRE k0 -9223372036854775808",
    ]);
    d.ss(&[
        "EXPIRE k0 9223372036854775",
        "EXPIRE k0 9223372036854776",
        "EXPIRE k0 ''",
        "EXPIRE nosuch 100",
        "EXPIRE",
        "EXPIRE k0",
        "TTL k0",
    ]);
    // persistent keys and GT/LT
    d.ss(&[
        "SET k1 v",
        "EXPIRE k1 100 GT",
        "TTL k1",
        "EXPIRE k1 100 XX",
        "EXPIRE k1 100000 LT",
        "TTL k1",
        "PERSIST k1",
        "PERSIST k1",
        "PERSIST nosuch",
    ]);
    d.ss(&[
        "TTL k1",
        "TTL nosuch",
        "PTTL k1",
        "PTTL nosuch",
        "EXPIRETIME k1",
        "EXPIRETIME nosuch",
        "PEXPIRETIME k1",
        "PEXPIRETIME nosuch",
    ]);
    d.ss(&["PERSIST", "PERSIST a b", "TTL", "PTTL a b", "EXPIRETIME", "PEXPIRETIME a b"]);
    // zero / negative → delete
    d.ss(&[
        "EXPIRE k1 0",
        "EXISTS k1",
        "SET k1 v",
        "EXPIRE k1 -5",
        "EXISTS k1",
        "SET k1 v",
        "PEXPIRE k1 0",
        "EXISTS k1",
        "SET k1 v",
        "PEXPIRE k1 -1",
        "GET k1",
    ]);
    // PEXPIRE
    d.ss(&[
        "SET k2 v",
        "PEXPIRE k2 100000000",
        "PTTL k2",
        "TTL k2",
        "PEXPIRE k2 200000000 NX",
        "PEXPIRE k2 200000000 XX",
        "PEXPIRE k2 50000000 GT",
    ]);
    d.ss(&[
        "PEXPIRE k2 300000000 GT",
        "PEXPIRE k2 1000000 LT",
        "PTTL k2",
        "PEXPIRE k2 9223372036854775807",
        "PEXPIRE k2 9223372036854775000",
        "PEXPIRE k2 abc",
    ]);
    d.ss(&[
        "PEXPIRE k2 -9223372036854775808",
        "PEXPIRE k2 1 FOO",
        "PEXPIRE nosuch 1000",
        "PEXPIRE k2",
        "PTTL k2",
    ]);
    // EXPIREAT / PEXPIREAT
    d.ss(&["SET k3 v"]);
    d.c(&["EXPIREAT", "k3", &fut]);
    d.ss(&["EXPIRETIME k3", "PEXPIRETIME k3", "TTL k3"]);
    d.c(&["EXPIREAT", "k3", &fut2, "NX"]);
    d.c(&["EXPIREAT", "k3", &fut2, "LT"]);
    d.c(&["EXPIREAT", "k3", &fut2, "GT"]);
    d.c(&["EXPIREAT", "k3", &fut, "GT"]);
    d.c(&["EXPIREAT", "k3", &fut, "XX"]);
    d.ss(&[
        "EXPIRETIME k3",
        "EXPIREAT k3 abc",
        "EXPIREAT k3 9223372036854775807",
        "EXPIREAT k3 -9223372036854775808",
        "EXPIREAT k3 100 FOO",
    ]);
    d.ss(&[
        "EXPIREAT k3 1",
        "EXISTS k3",
        "SET k3 v",
        "EXPIREAT k3 0",
        "EXISTS k3",
        "SET k3 v",
        "EXPIREAT k3 -1",
        "EXISTS k3",
        "EXPIREAT nosuch 1",
    ]);
    d.ss(&["SET k4 v"]);
    d.c(&["PEXPIREAT", "k4", &fut_ms]);
    d.ss(&["PEXPIRETIME k4", "EXPIRETIME k4", "PTTL k4"]);
    d.c(&["PEXPIREAT", "k4", &fut2_ms, "GT"]);
    d.c(&["PEXPIREAT", "k4", &fut_ms, "GT"]);
    d.c(&["PEXPIREAT", "k4", &fut_ms, "LT"]);
    d.c(&["PEXPIREAT", "k4", &fut_ms, "NX"]);
    d.ss(&[
        "PEXPIRETIME k4",
        "PEXPIREAT k4 abc",
        "PEXPIREAT k4 9223372036854775807",
        "PEXPIREAT k4 1000",
        "EXISTS k4",
        "PEXPIREAT nosuch 1000",
    ]);
    d.ss(&["PEXPIREAT", "PEXPIREAT k4", "EXPIREAT k4"]);
    // wrong types and other keys
    make_wrongtype_keys(d);
    d.ss(&[
        "EXPIRE wl 100000",
        "TTL wl",
        "PERSIST wl",
        "TTL wl",
        "PEXPIRE wh 100000000",
        "PTTL wh",
        "EXPIRETIME wh",
    ]);
    // key expiry interplay with SET / RENAME / GETEX
    d.ss(&[
        "SET k5 v EX 100000",
        "SET k5 w",
        "TTL k5",
        "SET k5 v EX 100000",
        "SET k5 w KEEPTTL",
        "TTL k5",
        "GETEX k5 PERSIST",
        "TTL k5",
    ]);
    d.ss(&[
        "SET k6 v PX 100000000",
        "RENAME k6 k7",
        "PTTL k7",
        "SETEX k7 100000 v",
        "TTL k7",
        "DBSIZE",
        "KEYS *",
    ]);
    // expired keys disappear (short TTLs checked after they elapse)
    d.ss(&[
        "SET short1 v PX 30",
        "SET short2 v",
        "PEXPIRE short2 30",
        "SETEX short3 1 v",
        "PSETEX short4 30 v",
    ]);
    std::thread::sleep(Duration::from_millis(1100));
    d.ss(&[
        "GET short1",
        "EXISTS short2",
        "TTL short3",
        "PTTL short4",
        "GET short4",
        "DBSIZE",
        "KEYS short*",
    ]);
}

fn script_strings(d: &mut Diff) {
    let now = d.now_s;
    let fut = (now + 1_000_000).to_string();
    let fut_ms = ((now + 1_000_000) * 1000).to_string();
    d.s("FLUSHALL");
    make_wrongtype_keys(d);
    // GET / SET
    d.ss(&["GET a", "SET a 1", "GET a", "GET", "GET a b", "GET wl", "SET", "SET a", "SET wl x", "TYPE wl"]);
    make_wrongtype_keys(d);
    d.ss(&[
        "SET a 1 NX",
        "SET b 1 NX",
        "SET a 2 XX",
        "SET nx1 2 XX",
        "GET nx1",
        "SET a 3 NX XX",
        "SET a 3 XX NX",
        "SET a 3 GET",
        "SET c 3 GET",
    ]);
    d.ss(&[
        "SET a 4 NX GET",
        "SET e 4 NX GET",
        "SET a 5 XX GET",
        "SET ws x GET",
        "TYPE ws",
        "SET wh x NX GET",
        "SET wh x XX GET",
    ]);
    d.ss(&[
        "SET a v EX 100000",
        "TTL a",
        "SET a v PX 100000000",
        "PTTL a",
        "SET a v EX 0",
        "SET a v EX -1",
        "SET a v PX 0",
        "SET a v EX abc",
    ]);
    d.ss(&[
        "SET a v EX 1.5",
        "SET a v EX",
        "SET a v EX 100 PX 100",
        "SET a v EX 100 EX 100",
        "SET a v EX 100 KEEPTTL",
        "SET a v KEEPTTL PX 100",
    ]);
    d.ss(&[
        "SET a v EX 9223372036854775807",
        "SET a v PX 9223372036854775807",
        "SET a v EX 9223372036854775",
        "SET a v EX 9223372036854776",
    ]);
    d.ss(&[
        "SET a v PX -9223372036854775808",
        "SET a v EXAT 0",
        "SET a v PXAT -1",
        "SET a v EXAT 1",
        "EXISTS a",
        "SET a v PXAT 100",
        "EXISTS a",
    ]);
    d.c(&["SET", "a", "v", "EXAT", &fut]);
    d.ss(&["EXPIRETIME a", "TTL a"]);
    d.c(&["SET", "a", "v", "PXAT", &fut_ms]);
    d.ss(&["PEXPIRETIME a"]);
    d.c(&["SET", "a", "v", "EXAT", &fut, "PX", "100"]);
    d.ss(&[
        "SET a w KEEPTTL",
        "TTL a",
        "SET a w KEEPTTL GET",
        "SET a w KEEPTTL XX GET",
        "SET a w",
        "TTL a",
        "SET a w FOO",
        "SET a w GET GET",
    ]);
    d.ss(&[
        "SET a w NX NX",
        "SET a w XX XX",
        "SET a w EX 10 EXAT 10",
        "SET a w ex 100000 nx",
        "SET a w px 100000000 xx get",
        "PTTL a",
    ]);
    d.ss(&[
        "SET a w PXAT abc",
        "SET a w EXAT 9223372036854775807",
        "SET a w PXAT 9223372036854775807",
        "SET nk 1 EX 100000 NX GET",
        "TTL nk",
    ]);
    // SETNX / SETEX / PSETEX
    d.ss(&["SETNX sn 1", "SETNX sn 2", "GET sn", "SETNX sn", "SETNX", "SETNX wl x", "SETNX sn 1 2"]);
    d.ss(&[
        "SETEX se 100000 v",
        "TTL se",
        "SETEX se 0 v",
        "SETEX se -1 v",
        "SETEX se abc v",
        "SETEX se 100",
        "SETEX se 9223372036854775807 v",
    ]);
    d.ss(&[
        "SETEX wl 100000 x",
        "TYPE wl",
        "PSETEX pe 100000000 v",
        "PTTL pe",
        "PSETEX pe 0 v",
        "PSETEX pe -5 v",
        "PSETEX pe x v",
        "PSETEX pe",
    ]);
    d.ss(&["SETEX se 1.5 v", "PSETEX pe 9223372036854775807 v"]);
    make_wrongtype_keys(d);
    // GETSET / GETDEL / GETEX
    d.ss(&[
        "GETSET gs 1",
        "GETSET gs 2",
        "GET gs",
        "GETSET wl x",
        "GETSET gs",
        "GETSET",
        "SET gs v EX 100000",
        "GETSET gs w",
        "TTL gs",
    ]);
    d.ss(&["GETDEL gs", "GETDEL gs", "GETDEL wl", "GETDEL", "GETDEL a b", "EXISTS gs"]);
    d.ss(&[
        "SET ge v",
        "GETEX ge",
        "GETEX ge EX 100000",
        "TTL ge",
        "GETEX ge PX 200000000",
        "PTTL ge",
        "GETEX ge PERSIST",
        "TTL ge",
    ]);
    d.c(&["GETEX", "ge", "EXAT", &fut]);
    d.ss(&["EXPIRETIME ge"]);
    d.c(&["GETEX", "ge", "PXAT", &fut_ms]);
    d.ss(&[
        "PEXPIRETIME ge",
        "GETEX ge EX 0",
        "GETEX ge EX -1",
        "GETEX ge EX abc",
        "GETEX ge EX 100 PX 100",
        "GETEX ge EX 100 PERSIST",
        "GETEX ge FOO",
    ]);
    d.ss(&[
        "GETEX ge EX",
        "GETEX nosuch",
        "GETEX nosuch EX 100",
        "GETEX wl",
        "GETEX wl EX 100",
        "GETEX",
        "GETEX ge PERSIST PERSIST",
        "GETEX ge EXAT 1",
    ]);
    d.ss(&[
        "EXISTS ge",
        "SET ge v",
        "GETEX ge PX 9223372036854775807",
        "GETEX ge EX 9223372036854775807",
        "GETEX ge ex 100000 ex 100000",
        "TTL ge",
    ]);
    // MGET / MSET / MSETNX across shards
    d.ss(&[
        "MSET a 1 b 2 c 3 d 4",
        "MGET a b c d nosuch wl",
        "MGET",
        "MGET a",
        "MSET a",
        "MSET a 1 b",
        "MSET",
        "MSET wl x",
        "TYPE wl",
    ]);
    d.ss(&[
        "MSET a 1 a 2",
        "GET a",
        "MSETNX a 1 x 2",
        "EXISTS x",
        "MSETNX x 1 y 2 k0 3 k1 4",
        "MGET x y k0 k1",
        "MSETNX x",
        "MSETNX x 1 y",
    ]);
    d.ss(&[
        "MSETNX z 1 z 2",
        "GET z",
        "MSETNX",
        "MSET k2 v EX 10",
        "MGET k2 EX",
        "MSETNX wh 1 nosuch2 2",
        "EXISTS nosuch2",
    ]);
    make_wrongtype_keys(d);
    // INCR family
    d.ss(&[
        "INCR i",
        "INCR i",
        "DECR i",
        "INCRBY i 10",
        "DECRBY i 5",
        "INCRBY i -3",
        "DECRBY i -3",
        "GET i",
        "INCR wl",
        "INCR",
    ]);
    d.ss(&[
        "SET i 9223372036854775806",
        "INCR i",
        "INCR i",
        "GET i",
        "SET i -9223372036854775807",
        "DECR i",
        "DECR i",
        "DECRBY i 1",
    ]);
    d.ss(&[
        "SET i 0",
        "DECRBY i -9223372036854775808",
        "INCRBY i 9223372036854775807",
        "INCRBY i 9223372036854775808",
        "INCRBY i abc",
        "INCRBY i 1.5",
    ]);
    d.ss(&[
        "INCRBY i",
        "INCRBY i ''",
        "DECRBY i -9223372036854775807",
        "SET i abc",
        "INCR i",
        "SET i 1.5",
        "INCR i",
        "SET i ' 1'",
        "INCR i",
    ]);
    d.ss(&[
        "SET i 1 ",
        "SET i 007",
        "INCR i",
        "SET i +1",
        "INCR i",
        "SET i -0",
        "INCR i",
        "SET i 0x10",
        "INCR i",
        "SET i 1e3",
        "INCR i",
    ]);
    d.c(&["SET", "i", " 1"]);
    d.s("INCR i");
    d.c(&["SET", "i", "1 "]);
    d.s("INCR i");
    d.c(&["SET", "i", ""]);
    d.s("INCR i");
    d.c(&["SET", "i", "18446744073709551616"]);
    d.ss(&[
        "INCR i",
        "SET i 12345",
        "INCRBY i 0",
        "OBJECT ENCODING i",
        "DECR wl",
        "DECRBY wl 1",
        "INCRBY wl 1",
        "DECRBY",
        "INCR a b",
    ]);
    // INCRBYFLOAT
    d.ss(&[
        "SET f 0.1",
        "INCRBYFLOAT f 0.2",
        "GET f",
        "INCRBYFLOAT f 1e3",
        "INCRBYFLOAT f -1.5e-3",
        "INCRBYFLOAT f 1.7976931348623157e308",
    ]);
    d.ss(&[
        "INCRBYFLOAT f inf",
        "INCRBYFLOAT f -inf",
        "INCRBYFLOAT f nan",
        "INCRBYFLOAT f abc",
        "INCRBYFLOAT f",
        "INCRBYFLOAT nf 3",
        "GET nf",
    ]);
    d.ss(&[
        "INCRBYFLOAT nf 0",
        "INCRBYFLOAT nf 1.0",
        "INCRBYFLOAT nf 5e-324",
        "GET nf",
        "SET nf 1e308",
        "INCRBYFLOAT nf 1e308",
        "GET nf",
    ]);
    d.ss(&[
        "SET nf 10.50",
        "INCRBYFLOAT nf 0.1",
        "SET nf 3",
        "INCRBYFLOAT nf 1.5",
        "INCRBYFLOAT nf -4.5",
        "INCRBYFLOAT nf 0x10",
    ]);
    d.ss(&[
        "SET nf abc",
        "INCRBYFLOAT nf 1",
        "INCRBYFLOAT wl 1",
        "SET nf 1",
        "INCRBYFLOAT nf 1e-20",
        "INCRBYFLOAT nf 123456789012345678901234567890",
    ]);
    d.ss(&[
        "SET nf 5.0e3",
        "INCRBYFLOAT nf 1",
        "INCRBYFLOAT nf ''",
        "INCRBYFLOAT nf ' 1'",
        "INCRBYFLOAT nf 1.",
        "INCRBYFLOAT nf .5",
        "INCRBYFLOAT nf -.5e1",
    ]);
    d.c(&["INCRBYFLOAT", "nf", " 1"]);
    d.c(&["INCRBYFLOAT", "nf", "1 "]);
    d.ss(&[
        "INCRBYFLOAT nf +1",
        "INCRBYFLOAT nf 1E2",
        "INCRBYFLOAT nf infinity",
        "GET nf",
        "INCRBYFLOAT",
        "SET nf 0",
        "INCRBYFLOAT nf -0.0",
    ]);
    // APPEND / STRLEN
    d.ss(&[
        "APPEND ap hello",
        "APPEND ap ' world'",
        "GET ap",
        "STRLEN ap",
        "STRLEN nosuch",
        "STRLEN wl",
        "APPEND wl x",
        "APPEND",
        "APPEND ap",
        "STRLEN",
    ]);
    d.ss(&[
        "SET ap 123",
        "APPEND ap 4",
        "GET ap",
        "OBJECT ENCODING ap",
        "STRLEN ap",
        "SET ap 12345",
        "STRLEN ap",
        "APPEND ap ''",
        "APPEND new ''",
        "EXISTS new",
    ]);
    // GETRANGE / SUBSTR
    d.s("SET gr 'This is a string'");
    for (s, e) in [
        ("0", "3"),
        ("-3", "-1"),
        ("0", "-1"),
        ("10", "100"),
        ("5", "3"),
        ("-100", "5"),
        ("100", "200"),
        ("-1", "-5"),
        ("0", "0"),
        ("-1", "-1"),
    ] {
        d.c(&["GETRANGE", "gr", s, e]);
        d.c(&["SUBSTR", "gr", s, e]);
    }
    d.ss(&[
        "GETRANGE gr 0 9223372036854775807",
        "GETRANGE gr -9223372036854775808 9223372036854775807",
        "GETRANGE gr a 1",
        "GETRANGE gr 0",
    ]);
    d.ss(&[
        "GETRANGE nosuch 0 -1",
        "GETRANGE wl 0 1",
        "SUBSTR wl 0 1",
        "GETRANGE gr 0 1 2",
        "SET gr ''",
        "GETRANGE gr 0 -1",
        "GETRANGE gr -1 0",
    ]);
    d.ss(&[
        "SET gr 1234",
        "GETRANGE gr 1 2",
        "SUBSTR gr 0 -2",
        "GETRANGE gr 9223372036854775807 9223372036854775807",
        "GETRANGE gr 1.5 2",
    ]);
    // SETRANGE
    d.ss(&[
        "SET sr hello",
        "SETRANGE sr 1 ipp",
        "GET sr",
        "SETRANGE sr 10 x",
        "GET sr",
        "STRLEN sr",
        "SETRANGE sr -1 x",
        "SETRANGE sr abc x",
    ]);
    d.ss(&[
        "SETRANGE sr 536870911 x",
        "SETRANGE sr 536870912 x",
        "SETRANGE sr 536870912 ''",
        "SETRANGE nosuch 5 ''",
        "EXISTS nosuch",
    ]);
    d.ss(&[
        "SETRANGE nsr 3 abc",
        "GET nsr",
        "SETRANGE nsr 0 ''",
        "SETRANGE wl 0 x",
        "SETRANGE sr 0",
        "SETRANGE",
        "SETRANGE sr 9223372036854775807 x",
    ]);
    d.ss(&[
        "SET sr 12",
        "SETRANGE sr 0 3",
        "GET sr",
        "OBJECT ENCODING sr",
        "SETRANGE sr 1 ''",
        "SETRANGE sr 1.5 x",
    ]);
    // LCS (keys on different shards)
    d.ss(&[
        "MSET a ohmytext b mynewtext",
        "LCS a b",
        "LCS a b LEN",
        "LCS a b IDX",
        "LCS a b IDX MINMATCHLEN 4",
        "LCS a b IDX WITHMATCHLEN",
    ]);
    d.ss(&[
        "LCS a b IDX MINMATCHLEN 2 WITHMATCHLEN",
        "LCS a b LEN IDX",
        "LCS a b MINMATCHLEN -1",
        "LCS a b MINMATCHLEN abc",
        "LCS a b FOO",
        "LCS a b IDX LEN",
    ]);
    d.ss(&[
        "LCS a nosuch",
        "LCS nosuch nosuch2",
        "LCS nosuch nosuch2 IDX",
        "LCS a wl",
        "LCS wl a",
        "LCS a",
        "LCS",
        "LCS a b MINMATCHLEN",
        "LCS a a",
    ]);
    d.ss(&[
        "LCS a b WITHMATCHLEN",
        "LCS a b LEN MINMATCHLEN 3",
        "LCS a b idx minmatchlen 0 withmatchlen",
        "MSET c '' d abc",
        "LCS c d IDX",
        "LCS d c LEN",
    ]);
    d.ss(&[
        "MSET k0 ABCBDAB k1 BDCABA",
        "LCS k0 k1",
        "LCS k0 k1 IDX WITHMATCHLEN",
        "LCS k1 k0 IDX",
        "LCS k0 k1 MINMATCHLEN 9223372036854775807 IDX",
    ]);
    d.s("DBSIZE");
}

/// MEMORY (sizes and reports by the `memory-usage` / `memory-report`
/// rules, errors exactly) and the OOM rule with `maxmemory 1`: every denyoom
/// command refused, reads served, MULTI doomed, EXEC refused with a queued
/// write, flagged scripts refused unless `no-writes` / `allow-oom`.
fn script_memory(d: &mut Diff) {
    d.ss(&[
        "SET s:1 0123456789abcdef",
        "SET n:1 12345",
        "SET big:1 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "RPUSH l:1 a b c d e f g h i j",
        "HSET h:1 f1 v1 f2 v2 f3 v3 f4 v4 f5 v5",
        "SADD st:1 1 2 3 4 5 6 7 8 9 10",
        "ZADD z:1 1 a 2 b 3 c 4 d 5 e",
        "SET t:1 v EX 100",
        "MEMORY USAGE s:1",
        "MEMORY USAGE n:1",
        "MEMORY USAGE big:1",
        "MEMORY USAGE l:1",
        "MEMORY USAGE h:1 SAMPLES 0",
        "MEMORY USAGE st:1 SAMPLES 5",
        "MEMORY USAGE z:1",
        "MEMORY USAGE t:1",
        "MEMORY USAGE nosuch",
        "MEMORY USAGE s:1 SAMPLES -1",
        "MEMORY USAGE s:1 SAMPLES x",
        "MEMORY USAGE s:1 SAMPLES",
        "MEMORY USAGE s:1 FOO 1",
        "MEMORY USAGE",
        "MEMORY HELP",
        "MEMORY STATS",
        "MEMORY STATS x",
        "MEMORY DOCTOR",
        "MEMORY MALLOC-STATS",
        "MEMORY PURGE",
        "MEMORY PURGE x",
        "MEMORY FOO",
        "MEMORY",
        "OBJECT FREQ s:1",
        "OBJECT IDLETIME s:1",
    ]);
    d.ss(&[
        "CONFIG SET maxmemory 1",
        "CONFIG GET maxmemory",
        "SET k v",
        "APPEND s:1 x",
        "GET s:1",
        "DEL s:1",
        "UNLINK n:1",
        "EXISTS s:1 n:1",
        "LPUSH l:1 x",
        "LRANGE l:1 0 -1",
        "MULTI",
        "GET h:1",
        "EXEC",
        "MULTI",
        "SET a b",
        "EXEC",
        "MULTI",
        "DEL a",
        "EXEC",
    ]);
    for body in [
        "return 1",
        "#!lua\nreturn 1",
        "#!lua flags=no-writes\nreturn 1",
        "#!lua flags=allow-oom\nreturn 1",
        // Compatibility mode: the first denyoom call before any write is refused.
        "return redis.call('set', KEYS[1], 'b')",
        "return redis.pcall('set', KEYS[1], 'b')",
        "return redis.call('get', KEYS[1])",
        "#!lua flags=allow-oom\nreturn redis.call('set', KEYS[1], 'b')",
    ] {
        d.c(&["EVAL", body, "1", "ev:k"]);
    }
    d.ss(&[
        "CONFIG SET maxmemory-policy volatile-lru",
        "SET k v",
        "CONFIG SET maxmemory-policy noeviction",
        "CONFIG SET maxmemory 0",
        "SET k v",
        "GET k",
    ]);
}

#[test]
fn scripted_memory() {
    run_scripted("memory", script_memory);
}

#[test]
fn scripted_connection() {
    run_scripted("connection", script_connection);
}

#[test]
fn scripted_client() {
    run_scripted("client", script_client);
}

#[test]
fn scripted_server() {
    run_scripted("server", script_server);
}

/// MONITOR, COMMAND INFO/DOCS/GETKEYS, unknown commands, inline commands,
/// odd arguments, QUIT.
#[test]
fn scripted_misc() {
    run_scripted("misc", script_misc);
}

#[test]
fn scripted_keyspace() {
    run_scripted("keyspace", script_keyspace);
}

#[test]
fn scripted_expire() {
    run_scripted("expire", script_expire);
}

#[test]
fn scripted_strings() {
    run_scripted("strings", script_strings);
}

// ---------------------------------------------------------------------------
// Seeded random command generator
// ---------------------------------------------------------------------------

/// SplitMix64: tiny, stable across crate versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

struct Gen {
    rng: Rng,
    now_s: u64,
    used_k: BTreeSet<u64>,
}

const RKEYS: &[&str] = &["a", "b", "c", "d", "k0", "k1", "k2", "k3"];
const RVALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "42",
    "9223372036854775807",
    "-9223372036854775808",
    "3.14",
    "1e3",
    "abc",
    "hello world",
    "  1",
    "1 ",
    "0x10",
    "+1",
    "007",
    "inf",
    "-inf",
    "nan",
    "9223372036854775806",
    "-9223372036854775807",
    "10.5",
    "0.1",
    "mynewtext",
    "ohmytext",
    "\x00\u{ff}\r\n",
];
const RINTS: &[&str] = &[
    "1",
    "-1",
    "0",
    "100",
    "-100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "abc",
    "1.5",
    "",
    " 1",
    "+5",
    "007",
];
const RFLOATS: &[&str] = &[
    "0.1",
    "0.2",
    "-0.3",
    "1e10",
    "1.5e-5",
    "inf",
    "-inf",
    "nan",
    "abc",
    "1e308",
    "5e-324",
    "3",
    "0",
    "1.7976931348623157e308",
    " 1",
    "-1e308",
    "2.5",
    "1e-17",
    "100000000000000000000",
    ".5",
    "1.",
    "",
];
const ROFFSETS: &[&str] = &[
    "0",
    "1",
    "2",
    "5",
    "-1",
    "-2",
    "-100",
    "100",
    "1000",
    "9223372036854775807",
    "-9223372036854775808",
    "abc",
    "3",
];

impl Gen {
    /// A fresh relative TTL multiple of 1000 s (distinct values are >= 1000 s
    /// apart, so GT/LT comparisons never depend on timing), in seconds.
    fn fresh_k(&mut self) -> u64 {
        loop {
            let k = 1 + self.rng.below(100_000) as u64;
            if self.used_k.insert(k) {
                return k;
            }
        }
    }

    fn key(&mut self) -> String {
        match self.rng.below(100) {
            0..=84 => self.rng.pick(RKEYS).to_string(),
            85..=91 => "wl".to_string(),
            92..=95 => "nx".to_string(),
            _ => "".to_string(),
        }
    }

    fn value(&mut self) -> String {
        if self.rng.chance(3) {
            return "v".repeat(200);
        }
        if self.rng.chance(20) {
            return format!("v{}", self.rng.below(1000));
        }
        self.rng.pick(RVALUES).to_string()
    }

    /// (option name, value) for an expiration option. `past_ok`: may use an
    /// absolute time in the past (fine for GETEX, which deletes the key; SET
    /// stores such a key as logically expired and DBSIZE then depends on
    /// Redis' active expiry timing).
    fn ttl_opt(&mut self, past_ok: bool) -> Vec<String> {
        let k = self.fresh_k();
        let now = self.now_s;
        let (name, v) = match self.rng.below(14) {
            0 | 1 => ("EX", (k * 1000).to_string()),
            2 | 3 => ("PX", (k * 1_000_000).to_string()),
            4 => ("EXAT", (now + k * 1000).to_string()),
            5 => ("PXAT", ((now + k * 1000) * 1000).to_string()),
            6 => ("EX", self.rng.pick(&["0", "-1", "abc", "1.5", "9223372036854775807", ""]).to_string()),
            7 => ("PX", self.rng.pick(&["0", "-5", "x", "9223372036854775807"]).to_string()),
            8 if past_ok => ("EXAT", self.rng.pick(&["1", "0", "100", "-1"]).to_string()),
            9 if past_ok => ("PXAT", self.rng.pick(&["1", "1000", "abc"]).to_string()),
            8 => ("EXAT", self.rng.pick(&["0", "-1", "abc"]).to_string()),
            9 => ("PXAT", self.rng.pick(&["0", "abc"]).to_string()),
            10 => ("KEEPTTL", String::new()),
            11 => ("PERSIST", String::new()),
            12 => ("ex", (k * 1000).to_string()),
            _ => ("px", (k * 1_000_000).to_string()),
        };
        if v.is_empty() && (name == "KEEPTTL" || name == "PERSIST") {
            vec![name.to_string()]
        } else {
            vec![name.to_string(), v]
        }
    }

    fn expire_cmd(&mut self) -> Vec<String> {
        let k = self.fresh_k();
        let now = self.now_s;
        let key = self.key();
        let (cmd, t) = match self.rng.below(4) {
            0 => ("EXPIRE", (k * 1000).to_string()),
            1 => ("PEXPIRE", (k * 1_000_000).to_string()),
            2 => ("EXPIREAT", (now + k * 1000).to_string()),
            _ => ("PEXPIREAT", ((now + k * 1000) * 1000).to_string()),
        };
        let t = if self.rng.chance(12) {
            // never a small positive relative TTL: it would expire during the run
            let past_ok = cmd.ends_with("AT");
            let pool: &[&str] = if past_ok {
                &["0", "-1", "abc", "9223372036854775807", "1", "100", ""]
            } else {
                &["0", "-1", "abc", "9223372036854775807", "-9223372036854775808", "1.5", ""]
            };
            self.rng.pick(pool).to_string()
        } else {
            t
        };
        let mut v = vec![cmd.to_string(), key, t];
        let n = match self.rng.below(10) {
            0..=4 => 0,
            5..=8 => 1,
            _ => 2,
        };
        for _ in 0..n {
            v.push(self.rng.pick(&["NX", "XX", "GT", "LT", "nx", "gt", "FOO"]).to_string());
        }
        v
    }

    fn keys(&mut self, min: usize, max: usize) -> Vec<String> {
        let n = min + self.rng.below(max - min + 1);
        (0..n).map(|_| self.key()).collect()
    }

    fn command(&mut self) -> Vec<String> {
        let s = |x: &str| x.to_string();
        let mut v: Vec<String> = match self.rng.below(48) {
            0..=3 => vec![s("GET"), self.key()],
            4..=7 => {
                let mut v = vec![s("SET"), self.key(), self.value()];
                for _ in 0..self.rng.below(3) {
                    match self.rng.below(5) {
                        0 => v.push(s(self.rng.pick(&["NX", "XX", "nx", "xx"]))),
                        1 => v.push(s("GET")),
                        2 if self.rng.chance(30) => v.push(s(self.rng.pick(&["FOO", "EX", "KEEPTTL", "PERSIST"]))),
                        _ => v.extend(self.ttl_opt(false)),
                    }
                }
                v
            }
            8 => vec![s("SETNX"), self.key(), self.value()],
            9 => {
                let k = self.fresh_k();
                let t = if self.rng.chance(15) {
                    s(self.rng.pick(&["0", "-1", "abc"]))
                } else {
                    (k * 1000).to_string()
                };
                vec![s("SETEX"), self.key(), t, self.value()]
            }
            10 => {
                let k = self.fresh_k();
                let t = if self.rng.chance(15) {
                    s(self.rng.pick(&["0", "-1", "abc"]))
                } else {
                    (k * 1_000_000).to_string()
                };
                vec![s("PSETEX"), self.key(), t, self.value()]
            }
            11 => vec![s("GETSET"), self.key(), self.value()],
            12 => vec![s("GETDEL"), self.key()],
            13 => {
                let mut v = vec![s("GETEX"), self.key()];
                if self.rng.chance(70) {
                    v.extend(self.ttl_opt(true));
                }
                v
            }
            14 | 15 => {
                let mut v = vec![s("MGET")];
                v.extend(self.keys(1, 5));
                v
            }
            16 | 17 => {
                let mut v = vec![s(if self.rng.chance(70) { "MSET" } else { "MSETNX" })];
                for _ in 0..1 + self.rng.below(4) {
                    v.push(self.key());
                    v.push(self.value());
                }
                v
            }
            18 => vec![s(self.rng.pick(&["INCR", "DECR"])), self.key()],
            19 | 20 => vec![s(self.rng.pick(&["INCRBY", "DECRBY"])), self.key(), s(self.rng.pick(RINTS))],
            21 | 22 => vec![s("INCRBYFLOAT"), self.key(), s(self.rng.pick(RFLOATS))],
            23 => vec![s("APPEND"), self.key(), self.value()],
            24 => vec![s("STRLEN"), self.key()],
            25 => vec![
                s(self.rng.pick(&["GETRANGE", "SUBSTR"])),
                self.key(),
                s(self.rng.pick(ROFFSETS)),
                s(self.rng.pick(ROFFSETS)),
            ],
            26 => {
                let off = if self.rng.chance(10) {
                    s(self.rng.pick(&["-1", "536870912", "abc", "9223372036854775807"]))
                } else {
                    self.rng.below(300).to_string()
                };
                vec![s("SETRANGE"), self.key(), off, self.value()]
            }
            27 => match self.rng.below(3) {
                // LCS only on dedicated short keys (LCS is O(N*M))
                0 => vec![
                    s("SET"),
                    s(self.rng.pick(&["l1", "l2"])),
                    s(self.rng.pick(&["ohmytext", "mynewtext", "", "abcabc", "xbxcx", "ABCBDAB"])),
                ],
                _ => {
                    let mut v = vec![s("LCS"), s(self.rng.pick(&["l1", "l2", "nx", "wl"])), s(self.rng.pick(&["l1", "l2", "nx"]))];
                    for _ in 0..self.rng.below(3) {
                        match self.rng.below(5) {
                            0 => v.push(s("LEN")),
                            1 | 2 => v.push(s("IDX")),
                            3 => v.push(s("WITHMATCHLEN")),
                            _ => {
                                v.push(s("MINMATCHLEN"));
                                v.push(s(self.rng.pick(&["0", "1", "2", "3", "-1", "x"])));
                            }
                        }
                    }
                    v
                }
            },
            28 | 29 => {
                let mut v = vec![s(self.rng.pick(&["DEL", "UNLINK", "EXISTS", "TOUCH"]))];
                v.extend(self.keys(1, 4));
                v
            }
            30 => vec![s("TYPE"), self.key()],
            31 => vec![s(self.rng.pick(&["RENAME", "RENAMENX"])), self.key(), self.key()],
            32 => {
                let mut v = vec![s("COPY"), self.key(), self.key()];
                if self.rng.chance(30) {
                    v.push(s("REPLACE"));
                }
                if self.rng.chance(15) {
                    v.push(s("DB"));
                    v.push(s(self.rng.pick(&["1", "0", "16", "x"])));
                }
                v
            }
            33 => vec![s("MOVE"), self.key(), s(self.rng.pick(&["1", "1", "0", "16"]))],
            34..=36 => self.expire_cmd(),
            37 | 38 => vec![s(self.rng.pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"])), self.key()],
            39 => vec![s("PERSIST"), self.key()],
            40 => match self.rng.below(5) {
                0 => vec![s("KEYS"), s(self.rng.pick(&["*", "k*", "[ab]", "?", "*1*"]))],
                1 | 2 => {
                    let mut v = vec![s("SCAN"), s("0")];
                    if self.rng.chance(50) {
                        v.push(s("MATCH"));
                        v.push(s(self.rng.pick(&["*", "k*", "[a-c]"])));
                    }
                    if self.rng.chance(50) {
                        v.push(s("COUNT"));
                        v.push(s(self.rng.pick(&["1", "2", "10", "0", "abc"])));
                    }
                    if self.rng.chance(20) {
                        v.push(s("TYPE"));
                        v.push(s(self.rng.pick(&["string", "list", "hash"])));
                    }
                    v
                }
                3 => vec![s("RANDOMKEY")],
                _ => vec![s("DBSIZE")],
            },
            41 => vec![s("OBJECT"), s(self.rng.pick(&["ENCODING", "ENCODING", "REFCOUNT", "FREQ"])), self.key()],
            42 => vec![s("RPUSH"), s("wl"), self.value()],
            43 => vec![s("ECHO"), self.value()],
            44 => vec![s(self
                .rng
                .pick(&["GET", "SET", "MGET", "INCRBY", "EXPIRE", "GETRANGE", "COPY", "LCS", "OBJECT", "TTL"]))],
            45 => vec![
                s("SET"),
                self.key(),
                self.value(),
                s(self.rng.pick(&["KEEPTTL", "GET", "XX", "NX"])),
                s(self.rng.pick(&["GET", "XX", "EX"])),
            ],
            46 => vec![s("INCRBY"), self.key(), self.rng.below(100).to_string()],
            _ => vec![s("SET"), self.key(), self.rng.below(20_000).to_string()],
        };
        // occasionally break the arity
        if v.len() > 1 && self.rng.chance(3) {
            if self.rng.chance(50) {
                v.pop();
            } else {
                v.push(s("extra"));
            }
        }
        if self.rng.chance(5) {
            v[0] = v[0].to_lowercase();
        }
        v
    }
}

const RMEMBERS: &[&str] = &["a", "b", "c", "1", "2", "3", "10", "-5", "x y", "", "m1", "m2"];
const RSCORES: &[&str] = &["0", "1", "2", "-1", "1.5", "0.1", "inf", "-inf", "+inf", "3e2", "abc", "nan", "(1", "(2", "10"];

impl Gen {
    fn member(&mut self) -> String {
        if self.rng.chance(10) {
            return format!("m{}", self.rng.below(30));
        }
        self.rng.pick(RMEMBERS).to_string()
    }

    fn members(&mut self, max: usize) -> Vec<String> {
        (0..1 + self.rng.below(max)).map(|_| self.member()).collect()
    }

    fn index(&mut self) -> String {
        self.rng.pick(&["0", "1", "-1", "2", "-2", "5", "-100", "100", "abc"]).to_string()
    }

    /// A command of the list, hash, set or sorted-set families (or a generic
    /// one over them) on the shared keys, so types mix on the same keys.
    /// Collections stay small, so Redis's compact encodings (and their
    /// orders) apply on both sides.
    fn typed_command(&mut self) -> Vec<String> {
        let s = |x: &str| x.to_string();
        let k = self.key();
        let mut v: Vec<String> = match self.rng.below(41) {
            0..=2 => {
                let mut v = vec![s(self.rng.pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"])), k];
                v.extend(self.members(4));
                v
            }
            3 => {
                let mut v = vec![s(self.rng.pick(&["LPOP", "RPOP"])), k];
                if self.rng.chance(50) {
                    v.push(s(self.rng.pick(&["0", "1", "2", "10", "-1", "abc"])));
                }
                v
            }
            4 => vec![s("LRANGE"), k, self.index(), self.index()],
            5 => vec![s(self.rng.pick(&["LLEN", "TYPE", "EXISTS", "OBJECT"])), k],
            6 => vec![s("LINDEX"), k, self.index()],
            7 => vec![s("LSET"), k, self.index(), self.member()],
            8 => vec![s("LREM"), k, self.index(), self.member()],
            9 => vec![s("LTRIM"), k, self.index(), self.index()],
            10 => vec![s("LINSERT"), k, s(self.rng.pick(&["BEFORE", "AFTER", "X"])), self.member(), self.member()],
            11 => vec![
                s("LMOVE"),
                k,
                self.key(),
                s(self.rng.pick(&["LEFT", "RIGHT"])),
                s(self.rng.pick(&["LEFT", "RIGHT", "UP"])),
            ],
            12 => vec![s("LPOS"), k, self.member()],
            13..=14 => {
                // Short values: the hash stays listpack-encoded, whose order is defined.
                let mut v = vec![s("HSET"), k];
                for _ in 0..1 + self.rng.below(3) {
                    v.push(self.member());
                    v.push(self.member());
                }
                v
            }
            15 => vec![s(self.rng.pick(&["HGET", "HEXISTS", "HSTRLEN", "HDEL"])), k, self.member()],
            16 => vec![s(self.rng.pick(&["HGETALL", "HKEYS", "HVALS", "HLEN"])), k],
            17 => vec![s(self.rng.pick(&["HINCRBY", "HINCRBYFLOAT"])), k, self.member(), self.value()],
            18 => {
                let mut v = vec![s("HMGET"), k];
                v.extend(self.members(3));
                v
            }
            19..=20 => {
                let mut v = vec![s(self.rng.pick(&["SADD", "SREM"])), k];
                v.extend(self.members(4));
                v
            }
            21 => vec![s(self.rng.pick(&["SCARD", "SMEMBERS"])), k],
            22 => vec![s(self.rng.pick(&["SISMEMBER", "SMISMEMBER"])), k, self.member()],
            23 => vec![s(self.rng.pick(&["SINTER", "SUNION", "SDIFF", "SINTERCARD"])), self.key(), self.key()],
            24 => vec![s(self.rng.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])), k, self.key(), self.key()],
            25 => vec![s("SMOVE"), k, self.key(), self.member()],
            26..=28 => {
                let mut v = vec![s("ZADD"), k];
                if self.rng.chance(30) {
                    v.push(s(self.rng.pick(&["NX", "XX", "GT", "LT", "CH", "INCR"])));
                }
                for _ in 0..1 + self.rng.below(3) {
                    v.push(s(self.rng.pick(RSCORES)));
                    v.push(self.member());
                }
                v
            }
            29 => vec![s("ZINCRBY"), k, s(self.rng.pick(RSCORES)), self.member()],
            30 => vec![s(self.rng.pick(&["ZSCORE", "ZRANK", "ZREVRANK", "ZREM"])), k, self.member()],
            31 => {
                let mut v = vec![s("ZRANGE"), k, self.index(), self.index()];
                if self.rng.chance(50) {
                    v.push(s("WITHSCORES"));
                }
                v
            }
            32 => vec![
                s(self.rng.pick(&["ZRANGEBYSCORE", "ZCOUNT", "ZREMRANGEBYSCORE"])),
                k,
                s(self.rng.pick(RSCORES)),
                s(self.rng.pick(RSCORES)),
            ],
            33 => vec![s(self.rng.pick(&["ZPOPMIN", "ZPOPMAX"])), k],
            34 => vec![s(self.rng.pick(&["ZCARD", "ZRANDMEMBER"])), k].into_iter().take(2).collect(),
            35 => vec![
                s(self.rng.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])),
                k,
                s("2"),
                self.key(),
                self.key(),
            ],
            36 => vec![
                s(self.rng.pick(&["ZUNION", "ZINTER", "ZDIFF"])),
                s("2"),
                self.key(),
                self.key(),
                s("WITHSCORES"),
            ],
            37 => vec![s("RENAME"), k, self.key()],
            38 => vec![s("DEL"), k],
            // Sorted (never BY nosort): a hashtable set's own order is Tessera's.
            39 => {
                let mut v = vec![s(self.rng.pick(&["SORT", "SORT_RO"])), k];
                for opt in [&["ALPHA"][..], &["DESC"], &["LIMIT", "1", "2"]] {
                    if self.rng.chance(50) {
                        v.extend(opt.iter().map(|o| s(o)));
                    }
                }
                v
            }
            _ => vec![s("SET"), k, self.value()],
        };
        // ZRANDMEMBER without a count on a one-member set is deterministic only then.
        if v[0] == "ZRANDMEMBER" {
            v[0] = s("ZCARD");
        }
        if v[0] == "OBJECT" {
            v.insert(1, s("ENCODING"));
        }
        if v.len() > 1 && self.rng.chance(3) {
            if self.rng.chance(50) {
                v.pop();
            } else {
                v.push(s("extra"));
            }
        }
        v
    }
}

/// The typed generator against redis-server, with pipelines on several
/// connections: every type on the same keys, WRONGTYPE across them, and
/// cross-shard multi-key commands. Families Tessera lacks are skipped on both sides.
#[test]
fn random_commands_over_every_type() {
    let (mut d, mut g) = random_setup("random-types", 11);
    let n = random_count();
    for proto in [2, 3] {
        d.c(&["FLUSHALL"]);
        if proto == 3 {
            d.c(&["HELLO", "3"]);
        }
        let conns: Vec<usize> = std::iter::once(0).chain((0..2).map(|_| d.open())).collect();
        let mut sent = 0;
        while sent < n {
            let conn = conns[g.rng.below(conns.len())];
            let len = 1 + g.rng.below(8);
            let mut cmds = Vec::with_capacity(len);
            while cmds.len() < len {
                let cmd = g.typed_command();
                if d.has(&cmd[0].to_ascii_lowercase()) {
                    cmds.push(cmd);
                }
            }
            sent += cmds.len();
            if len == 1 {
                let refs: Vec<&str> = cmds[0].iter().map(|s| s.as_str()).collect();
                d.c_on(conn, &refs);
            } else {
                d.pipeline_on(conn, &cmds);
            }
        }
        for &c in conns.iter().skip(1) {
            d.close(c);
        }
        d.ss(&["DBSIZE", "KEYS *"]);
        for k in RKEYS {
            d.c(&["TYPE", k]);
        }
    }
    d.finish();
}

fn random_count() -> usize {
    std::env::var("TESSERA_DIFF_RANDOM").ok().and_then(|s| s.parse().ok()).unwrap_or(2500)
}

/// A differential session and a generator seeded from TESSERA_DIFF_SEED (or `default_seed`).
fn random_setup(name: &str, default_seed: u64) -> (Diff, Gen) {
    assert_keys_span_shards(RKEYS, SHARDS);
    let seed: u64 = std::env::var("TESSERA_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default_seed);
    println!("differential[{name}]: seed {seed} (override with TESSERA_DIFF_SEED)");
    eprintln!("differential[{name}]: seed {seed} (override with TESSERA_DIFF_SEED)");
    let mut d = Diff::new(name);
    d.seed = Some(seed);
    let g = Gen {
        rng: Rng(seed),
        now_s: d.now_s,
        used_k: BTreeSet::new(),
    };
    (d, g)
}

#[test]
fn random_commands() {
    let (mut d, mut g) = random_setup("random", 42);
    let n = random_count();
    let started = std::time::Instant::now();
    for proto in [2, 3] {
        d.c(&["FLUSHALL"]);
        if proto == 3 {
            d.c(&["HELLO", "3"]);
        }
        let lists = d.has("rpush");
        if !lists {
            eprintln!("differential[random]: Tessera has no RPUSH: WRONGTYPE paths are not exercised");
        }
        for i in 0..n {
            if i % 250 == 0 && lists {
                d.s("RPUSH wl x"); // keep a wrong-type key around
            }
            let mut cmd = g.command();
            if cmd[0].eq_ignore_ascii_case("RPUSH") && !lists {
                cmd = vec!["TYPE".to_string(), "wl".to_string()];
            }
            let refs: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
            d.c(&refs);
        }
        d.ss(&["DBSIZE", "KEYS *", "SCAN 0"]);
        for k in RKEYS {
            d.c(&["GET", k]);
        }
        d.ss(&["SELECT 1", "KEYS *", "SELECT 0"]);
    }
    assert!(d.compared >= 2 * n, "compared only {}", d.compared);
    eprintln!("differential[random]: {:?} for {} replies", started.elapsed(), d.compared);
    d.finish();
}

/// The random generator over several connections, each sending pipelines of
/// 1-32 commands: forwarded per-shard batches, lock waits and reply splicing
/// are compared with Redis, not only single requests.
#[test]
fn random_pipelines_on_several_connections() {
    let (mut d, mut g) = random_setup("random-pipelines", 7);
    let n = random_count();
    let started = std::time::Instant::now();
    for proto in [2, 3] {
        d.c(&["FLUSHALL"]);
        if proto == 3 {
            d.c(&["HELLO", "3"]);
        }
        let conns: Vec<usize> = std::iter::once(0).chain((0..3).map(|_| d.open())).collect();
        let mut sent = 0;
        while sent < n {
            let conn = conns[g.rng.below(conns.len())];
            let len = 1 + g.rng.below(32);
            let mut cmds = Vec::with_capacity(len);
            for _ in 0..len {
                let mut cmd = g.command();
                // Rules that query the server again (SCAN's iteration, RANDOMKEY's
                // EXISTS) cannot run inside a pipeline; RPUSH may not exist.
                if is(&[cmd[0].as_bytes().to_vec()], "SCAN")
                    || is(&[cmd[0].as_bytes().to_vec()], "RANDOMKEY")
                    || is(&[cmd[0].as_bytes().to_vec()], "RPUSH")
                    || is(&[cmd[0].as_bytes().to_vec()], "SELECT")
                {
                    cmd = vec!["GET".to_string(), cmd.get(1).cloned().unwrap_or_else(|| "k".to_string())];
                }
                cmds.push(cmd);
            }
            sent += cmds.len();
            d.pipeline_on(conn, &cmds);
        }
        for &c in conns.iter().skip(1) {
            d.close(c);
        }
        d.ss(&["DBSIZE", "KEYS *"]);
        for k in RKEYS {
            d.c(&["GET", k]);
        }
    }
    assert!(d.compared >= 2 * n, "compared only {}", d.compared);
    eprintln!("differential[random-pipelines]: {:?} for {} replies", started.elapsed(), d.compared);
    d.finish();
}

#[test]
fn rules_table_is_well_formed() {
    let mut names = BTreeSet::new();
    for r in RULES {
        assert!(names.insert(r.name), "duplicate rule {}", r.name);
        assert!(!r.what.is_empty());
    }
    assert_eq!(split_words("SET a '' ' x y' b'c'"), vec!["SET", "a", "", " x y", "bc"]);
    // the MONITOR normaliser
    assert_eq!(
        normalize_monitor_line(b"+1700000000.123456 [0 127.0.0.1:5555] \"set\" \"k\"\r\n").unwrap(),
        "+<ts> [0 <addr>] \"set\" \"k\"\r\n"
    );
    assert!(normalize_monitor_line(b"+17000 [0 127.0.0.1:5555] \"set\"\r\n").is_err());
}
