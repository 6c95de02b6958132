//! FCALL, FCALL_RO and FUNCTION LOAD / DELETE / FLUSH / LIST / STATS / KILL /
//! HELP (Redis 7.0's functions.c). The registry and the per-VM loading are
//! in `scripting/functions.rs`; where a function runs and which locks it
//! takes is EVAL's code (`scripting::execute`). FUNCTION DUMP / RESTORE use
//! Redis's payload: FUNCTION2 records as in an RDB file, the RDB version and
//! a CRC64 (`persistence/rdb`).

use super::table::{AsyncFn, Table};
use crate::protocol::{Args, Reply};
use crate::scripting::functions::{self, FLAG_NAMES, NO_WRITES};
use crate::scripting::{self, Target};
use crate::server::client::Client;
use std::sync::Arc;

pub fn register(t: &mut Table) {
    t.asynch("fcall", FCALL);
    t.asynch("fcall_ro", FCALL_RO);
    t.client("function|load", function_load);
    t.client("function|delete", function_delete);
    t.client("function|flush", function_flush);
    t.client("function|list", function_list);
    t.client("function|stats", function_stats);
    t.client("function|kill", function_kill);
    t.client("function|help", function_help);
    t.client("function|dump", function_dump);
    t.client("function|restore", function_restore);
}

const FCALL: AsyncFn = |c, args, out| Box::pin(fcall(c, args, out, false));
const FCALL_RO: AsyncFn = |c, args, out| Box::pin(fcall(c, args, out, true));

async fn fcall(c: &mut Client, args: Args<'_>, out: &mut Reply, ro: bool) {
    let Some((lib, index)) = functions::lookup(args.get(1)) else {
        return out.error("ERR Function not found");
    };
    let numkeys = match crate::util::num::string2ll(args.get(2)) {
        Some(n) => n,
        None => return out.error("ERR Bad number of keys provided"),
    };
    if numkeys > args.len() as i64 - 3 {
        return out.error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return out.error("ERR Number of keys can't be negative");
    }
    let no_writes = lib.functions[index].flags & NO_WRITES != 0;
    if ro && !no_writes {
        return out.error("ERR Can not execute a script with write flag using *_ro command.");
    }
    let head: Arc<[Vec<u8>]> = (0..3).map(|i| args.get(i).to_vec()).collect();
    let name = if ro { "fcall_ro" } else { "fcall" };
    let cmd = super::table::table().get(name).expect("registered");
    let target = Target::Function { lib, index, head };
    super::scripting::execute(c, &args, out, cmd, target, numkeys as usize, ro || no_writes).await
}

/// Redis's addReplySubcommandSyntaxError.
fn subcommand_syntax_error(args: &Args, out: &mut Reply) {
    let sub = args.get(1);
    let mut m = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    m.extend_from_slice(&sub[..sub.len().min(128)]);
    m.extend_from_slice(b"'. Try ");
    m.extend(args.get(0).iter().map(|c| c.to_ascii_uppercase()));
    m.extend_from_slice(b" HELP.");
    out.error_bytes(&m);
}

fn function_load(_c: &mut Client, args: Args, out: &mut Reply) {
    let mut replace = false;
    let mut pos = 2;
    while pos < args.len() - 1 {
        let a = args.get(pos);
        pos += 1;
        if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
            continue;
        }
        let mut m = b"ERR Unknown option given: ".to_vec();
        m.extend_from_slice(a);
        return out.error_bytes(&m);
    }
    if pos >= args.len() {
        return out.error("ERR Function code is missing");
    }
    match functions::load(args.get(pos), replace) {
        Ok(name) => out.bulk(name.as_bytes()),
        Err(e) => out.error(&e),
    }
}

fn function_delete(_c: &mut Client, args: Args, out: &mut Reply) {
    match functions::delete(args.get(2)) {
        Ok(()) => out.ok(),
        Err(e) => out.error(e),
    }
}

fn function_flush(_c: &mut Client, args: Args, out: &mut Reply) {
    if args.len() > 3 {
        return subcommand_syntax_error(&args, out);
    }
    if args.len() == 3 && !args.is(2, "sync") && !args.is(2, "async") {
        return out.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    functions::flush();
    out.ok();
}

fn function_list(_c: &mut Client, args: Args, out: &mut Reply) {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        if !with_code && a.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
            i += 1;
            continue;
        }
        if pattern.is_none() && a.eq_ignore_ascii_case(b"libraryname") {
            if i >= args.len() - 1 {
                return out.error("ERR library name argument was not given");
            }
            pattern = Some(args.get(i + 1));
            i += 2;
            continue;
        }
        let mut m = b"ERR Unknown argument ".to_vec();
        m.extend_from_slice(a);
        return out.error_bytes(&m);
    }
    let libs = functions::libraries(pattern);
    out.array_len(libs.len());
    for lib in &libs {
        out.map_len(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array_len(lib.functions.len());
        for f in &lib.functions {
            out.map_len(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.desc {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> = FLAG_NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| f.flags & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            out.set_len(names.len());
            for n in names {
                out.status(n.as_bytes());
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
}

fn function_stats(_c: &mut Client, _args: Args, out: &mut Reply) {
    write_function_stats(out)
}

/// FUNCTION STATS's reply, from process-wide state only (the busy responder
/// answers it too, from its own thread, while a function is slow).
pub fn write_function_stats(out: &mut Reply) {
    let running = match scripting::running_function() {
        Ok(r) => r,
        Err(e) => return out.error(e),
    };
    out.map_len(2);
    out.bulk(b"running_script");
    match running {
        None => out.null(),
        Some(f) => {
            out.map_len(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"command");
            out.array_len(f.command.len());
            for a in &f.command {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(f.duration_ms as i64);
        }
    }
    let (libs, funcs) = functions::counts();
    out.bulk(b"engines");
    out.map_len(1);
    out.bulk(b"LUA");
    out.map_len(2);
    out.bulk(b"libraries_count");
    out.int(libs as i64);
    out.bulk(b"functions_count");
    out.int(funcs as i64);
}

fn function_kill(_c: &mut Client, _args: Args, out: &mut Reply) {
    match scripting::kill(false) {
        Ok(()) => out.ok(),
        Err(e) => out.error(e),
    }
}

/// FUNCTION DUMP (functionDumpCommand): every library's code as FUNCTION2
/// records, then the 2-byte RDB version and the CRC64, little endian.
fn function_dump(_c: &mut Client, _args: Args, out: &mut Reply) {
    use crate::persistence::rdb::{encode::Encoder, opcode, CRC64, RDB_VERSION};
    let mut e = Encoder::new(crate::persistence::compression());
    for lib in functions::libraries(None) {
        e.put_u8(opcode::FUNCTION2);
        e.put_string(&lib.code);
    }
    let mut p = e.buf;
    p.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    out.bulk(&p);
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE] (functionRestoreCommand).
fn function_restore(_c: &mut Client, args: Args, out: &mut Reply) {
    use crate::persistence::rdb::{decode, opcode};
    use functions::RestorePolicy;
    if args.len() > 4 {
        return subcommand_syntax_error(&args, out);
    }
    let policy = if args.len() == 4 {
        if args.is(3, "append") {
            RestorePolicy::Append
        } else if args.is(3, "replace") {
            RestorePolicy::Replace
        } else if args.is(3, "flush") {
            RestorePolicy::Flush
        } else {
            return out.error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.");
        }
    } else {
        RestorePolicy::Append
    };
    let p = args.get(2);
    if !decode::verify_payload(p, false) {
        return out.error("ERR DUMP payload version or checksum are wrong");
    }
    let mut r = decode::Reader::new(&p[..p.len() - 10]);
    let mut codes = Vec::new();
    while r.pos() < p.len() - 10 {
        match r.u8() {
            Ok(opcode::FUNCTION) => return out.error("ERR Pre-GA function format not supported"),
            Ok(opcode::FUNCTION2) => {}
            Ok(_) => return out.error("ERR given type is not a function"),
            Err(_) => return out.error("ERR can not read data type"),
        }
        match r.string() {
            Ok(code) => codes.push(code.into_owned()),
            Err(_) => return out.error("ERR Failed loading library payload"),
        }
    }
    match functions::restore(&codes, policy) {
        Ok(()) => out.ok(),
        Err(e) => out.error(&e),
    }
}

/// FUNCTION HELP (Redis's text).
const FUNCTION_HELP: &[&str] = &[
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
];

fn function_help(_c: &mut Client, _args: Args, out: &mut Reply) {
    out.array_len(FUNCTION_HELP.len() + 3);
    out.status(b"FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    for l in FUNCTION_HELP {
        out.status(l.as_bytes());
    }
    out.status(b"HELP");
    out.status(b"    Prints this help.");
}
